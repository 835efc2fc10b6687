"""Scores, computed one way everywhere: `evaluate(predict_fn, gold_documents)` hands the model the
documents without their annotations and scores what comes back against the gold; `evaluate_model` does
it for a saved model on a corpus split (`ner-ray evaluate`). Training scores its dev and test splits
through `score_documents` and `evaluate` too, so a figure in metrics.json, results.json, MLflow and
`ner-ray evaluate` is one number.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ner_ray.artifacts import PREDICTIONS, SCORES, write_json
from ner_ray.data.corpora import load_corpus
from ner_ray.data.document import Document
from ner_ray.data.pubtator import format_pubtator
from ner_ray.data.textio import write_text_atomic
from ner_ray.metrics import UNTYPED, evaluate_entities, evaluate_relations

Predict = Callable[[list[Document]], list[Document]]
Extra = Callable[[list[Document], list[Document]], dict[str, float]]
Progress = Callable[[int, int], None]  # (documents predicted so far, documents in all)
PROGRESS_CHUNK = 32  # documents predicted between two progress calls


def strip_gold(doc: Document) -> Document:
    """What a model may see of a document: its id, text and metadata, no spans and no relations."""
    return Document(doc.id, doc.text, [], [], dict(doc.meta))


def only_types(doc: Document, types: Iterable[str]) -> Document:
    keep = set(types)
    return Document(doc.id, doc.text, [s for s in doc.spans if s.type in keep], list(doc.relations), dict(doc.meta))


def score_documents(gold: Sequence[Document], predicted: Sequence[Document], types: Iterable[str] | None = None,
                    relations: bool = False, typed: bool = True) -> dict[str, Any]:
    """Entity scores (strict micro f1/precision/recall/tp/fp/fn, per_type, untyped, overlap; `types`: only
    these; `typed` False: every type counts as one, for a family that predicts untyped spans), relation scores
    when asked, and how many gold entities no predicted window held whole (`gold_crossing_windows`: misses by
    construction, from meta["windows"] of the predictions)."""
    gold, predicted = list(gold), list(predicted)
    if types is not None:  # untyped predictions carry no type to filter on: only the gold is restricted
        types = tuple(types)
        gold = [only_types(d, types) for d in gold]
        predicted = [only_types(d, types) for d in predicted] if typed else predicted
    if not typed:
        gold, predicted = [untyped(d) for d in gold], [untyped(d) for d in predicted]
    scores: dict[str, Any] = evaluate_entities(gold, predicted)
    if relations:
        scores["relations"] = evaluate_relations(gold, predicted)
    scores["documents"] = len(gold)
    scores["gold_crossing_windows"] = sum(_crossing(g, p) for g, p in zip(gold, predicted))
    return scores


def untyped(doc: Document) -> Document:
    """The document with every span typed UNTYPED (the type of an untyped span string)."""
    return doc.retyped({s.type: UNTYPED for s in doc.spans})


def _crossing(gold: Document, predicted: Document) -> int:
    windows = [(w["start"], w["end"]) for w in predicted.meta.get("windows", [])]
    if not windows:
        return 0
    return sum(1 for s in gold.spans if not any(a <= s.start and s.end <= b for a, b in windows))


def evaluate(predict: Predict, gold: Sequence[Document], extra: Extra | None = None, types: Iterable[str] | None = None,
             relations: bool = False, typed: bool = True) -> tuple[dict[str, Any], list[Document]]:
    """(scores, predicted documents) of `predict` on `gold`: the model sees the documents stripped of their
    annotations; `extra(gold, predicted)` adds a family's own metrics; `typed` as for score_documents."""
    gold = list(gold)
    predicted = predict([strip_gold(doc) for doc in gold])
    if [d.id for d in predicted] != [d.id for d in gold]:
        raise ValueError(f"predict returned {len(predicted)} documents for {len(gold)}, or in another order")
    scores = score_documents(gold, predicted, types, relations, typed)
    if extra is not None:
        scores.update(extra(gold, predicted))
    return scores, predicted


def flat_scores(scores: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics of a split (f1/precision/recall, per-type f1, untyped and overlap f1, and any
    extra scalar), unprefixed: `split_metrics` or the HF Trainer adds the split."""
    flat = {key: float(scores[key]) for key in ("f1", "precision", "recall")}
    flat.update({f"f1_{t}": float(prf["f1"]) for t, prf in scores["per_type"].items()})
    flat["untyped_f1"] = float(scores["untyped"]["f1"])
    flat["overlap_f1"] = float(scores["overlap"]["f1"])
    if "relations" in scores:
        flat["relation_f1"] = float(scores["relations"]["f1"])
    skip = {"tp", "fp", "fn", "documents"}
    flat.update({k: float(v) for k, v in scores.items() if k not in flat and k not in skip and isinstance(v, (int, float))})
    return flat


def split_metrics(scores: dict[str, Any], split: str) -> dict[str, float]:
    """`flat_scores` named by split: dev_f1, test_f1, test_f1_Disease, ..."""
    return {f"{split}_{key}": value for key, value in flat_scores(scores).items()}


def corpus_documents(corpus: str, split: str, merge_types: bool = True, fmt: str | None = None,
                     data_dir: str | Path | None = None) -> tuple[list[Document], tuple[str, ...]]:
    """One split's documents (subtypes merged as in training) and the entity types the corpus annotates:
    a named corpus's declared types, else the types present in the split."""
    loaded = load_corpus(corpus, fmt=fmt, splits=(split,), data_dir=data_dir)
    if split not in loaded.splits:
        raise ValueError(f"corpus {corpus!r} has no split {split!r}; it has {', '.join(loaded.splits) or 'none'}")
    type_map = loaded.spec.type_map if (loaded.spec and merge_types) else {}
    docs = [doc.retyped(type_map) for doc in loaded.splits[split]]
    if loaded.spec is not None:
        types = tuple(dict.fromkeys(type_map.get(t, t) for t in loaded.spec.entity_types))
    else:
        types = tuple(sorted({s.type for doc in docs for s in doc.spans}))
    return docs, types


def evaluate_model(model_dir: str | Path, corpus: str, split: str = "test", out: str | Path | None = None,
                   types: list[str] | None = None, batch_size: int | None = None, precision: str | None = None,
                   fmt: str | None = None, data_dir: str | Path | None = None,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Scores of the model saved in `model_dir` on `split` of `corpus` (a named corpus or a path; `fmt`,
    `data_dir` as for load_corpus), as `score_model` gives them. With `out`, writes them as scores.json, and
    predictions.pubtator, there; with `progress`, calls it as `score_predictions` does (`progress_bar`)."""
    from ner_ray.inference.model_files import load_model

    loaded = load_model(model_dir)
    documents, annotated = corpus_documents(corpus, split, loaded.family.config.data.merge_types, fmt, data_dir)
    result, predicted = score_model(loaded, documents, types if types is not None else annotated, corpus, split,
                                    batch_size, precision, progress)
    result = {"model": str(model_dir), **result}
    if out is not None:
        write_json(Path(out) / SCORES, result)
        write_text_atomic(Path(out) / PREDICTIONS, format_pubtator(predicted))
    return result


def score_model(loaded: Any, documents: Sequence[Document], types: Iterable[str], corpus: str, split: str,
                batch_size: int | None = None, precision: str | None = None,
                progress: Progress | None = None) -> tuple[dict[str, Any], list[Document]]:
    """A loaded model (`model_files.LoadedModel`) scored on gold `documents` of `split` of `corpus` (names for the
    record) on `types`, at the precision it trained in (or `precision`), as `score_predictions` gives it.
    `ner-ray evaluate` and Serve's /v1/ner/evaluate (hf engine) both call this."""
    from ner_ray.inference.predict import document_predictor

    used = precision or loaded.precision
    predict = document_predictor(loaded.family, loaded.model, batch_size, used)
    return score_predictions(loaded.family, predict, documents, types, corpus, split, used, progress)


def score_predictions(family: Any, predict: Predict, documents: Sequence[Document], types: Iterable[str], corpus: str,
                      split: str, precision: str, progress: Progress | None = None) -> tuple[dict[str, Any], list[Document]]:
    """`predict` (a family's model, however it runs) scored on gold `documents`: ({family, corpus, split, types,
    inference_precision, <split>_f1, <split>_precision, <split>_recall, <split>: the scores, as metrics.json's `test`
    block}, the predicted documents). With `progress`, documents are predicted PROGRESS_CHUNK at a time and
    `progress(done, total)` is called after each chunk."""
    if progress is not None:
        predict = in_chunks(predict, progress)
    scored = tuple(types)
    scores, predicted = evaluate(predict, documents, family.extra_metrics, scored, family.predicts_relations,
                                 family.typed_spans)
    result = {"family": family.name, "corpus": corpus, "split": split, "types": list(scored), "inference_precision": precision,
              **{f"{split}_{k}": scores[k] for k in ("f1", "precision", "recall")}, split: scores}
    return result, predicted


@contextmanager
def progress_bar(desc: str) -> Iterator[Progress]:
    """A `Progress` drawn as a tqdm bar on stderr (documents), opened at its first call; closed on leaving, error or not."""
    from tqdm.auto import tqdm

    bars = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="doc", desc=desc, file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


def in_chunks(predict: Predict, progress: Progress, chunk: int = PROGRESS_CHUNK) -> Predict:
    """`predict` run on `chunk` documents at a time, calling `progress(done, total)` before the first and after each."""
    def chunked(documents: list[Document]) -> list[Document]:
        predicted: list[Document] = []
        progress(0, len(documents))
        for start in range(0, len(documents), chunk):
            predicted += predict(documents[start:start + chunk])
            progress(len(predicted), len(documents))
        return predicted
    return chunked
