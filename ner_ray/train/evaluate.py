"""Score a trained model on any corpus: a saved model folder + a corpus split → entity metrics.

Only the types the corpus annotates are scored (a model fused from a chemical and a disease adapter,
scored on NCBI-disease, is judged on diseases only); predictions go through the same windows,
decoding and `evaluate_entities` as training, so the numbers match the trainer's.
"""

from __future__ import annotations

from pathlib import Path

from ner_ray.data.corpora import load_corpus
from ner_ray.data.document import Document, ParseReport
from ner_ray.metrics import evaluate_entities
from ner_ray.train.data import encode_documents
from ner_ray.train.predict import predict_ids, predicted_documents


def corpus_documents(corpus: str, split: str, merge_types: bool = True) -> tuple[list[Document], tuple[str, ...]]:
    """One split's documents (subtypes merged as in training) and the entity types the corpus annotates:
    a named corpus's declared types, else the types present in the split."""
    loaded = load_corpus(corpus, splits=(split,))
    if split not in loaded.splits:
        raise ValueError(f"corpus {corpus!r} has no split {split!r}; it has {', '.join(loaded.splits) or 'none'}")
    type_map = loaded.spec.type_map if (loaded.spec and merge_types) else {}
    docs = [doc.retyped(type_map) for doc in loaded.splits[split]]
    if loaded.spec is not None:
        types = tuple(dict.fromkeys(type_map.get(t, t) for t in loaded.spec.entity_types))
    else:
        types = tuple(sorted({s.type for doc in docs for s in doc.spans}))
    return docs, types


def evaluate_documents(family, model, documents: list[Document], types: tuple[str, ...] | list[str], batch_size: int = 32) -> dict:
    """`evaluate_entities` of a loaded model on gold documents, gold and predictions both restricted to `types`."""
    known, scored = set(family.labels.types), set(types)
    # The gold spans steer sentence windows and must be types the family can encode; scoring uses `scored`.
    inputs = [doc.with_spans([s for s in doc.spans if s.type in known]) for doc in documents]
    examples = encode_documents(inputs, family, family.tokenizer, family.config.data.max_length, ParseReport())
    ids = predict_ids(family, model, examples, batch_size)
    predicted = predicted_documents(inputs, examples, ids, family.labels, family.config.data.label_scheme)

    def only(doc: Document) -> Document:
        return doc.with_spans([s for s in doc.spans if s.type in scored])

    return evaluate_entities([only(d) for d in documents], [only(p) for p in predicted])


def evaluate_on_corpus(model_dir: str | Path, corpus: str, split: str = "test", types: list[str] | None = None,
                       batch_size: int = 32) -> dict:
    """Entity metrics (f1, precision, recall, per_type, untyped, overlap) of the model saved in `model_dir`
    on `split` of `corpus` (a named corpus or a path), scoring `types` or else the types the corpus annotates."""
    from ner_ray.train.export import load_model

    family, model = load_model(model_dir)
    documents, annotated = corpus_documents(corpus, split, family.config.data.merge_types)
    scored = tuple(types) if types is not None else annotated
    metrics = evaluate_documents(family, model, documents, scored, batch_size)
    return {**metrics, "corpus": corpus, "split": split, "types": list(scored)}
