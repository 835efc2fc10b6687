"""From a study's data block to what a training run needs: corpus → documents per split → the family
(built on the corpus's entity types) → training examples and dev examples.

Training windows may use the gold spans to keep entities whole and include one augmented copy of every
training document (entity swap / mask, seeded by `train.seed`); dev windows are cut from the text alone,
as test and served windows are (ner_ray.inference.encode). The test split is kept as documents: it is
scored once, at the end, through `ner_ray.inference.evaluate`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ner_ray.config import StudyConfig
from ner_ray.data.augment import build_mention_pool, entity_mask, entity_swap
from ner_ray.data.corpora import load_corpus
from ner_ray.data.document import Document, ParseReport
from ner_ray.inference.encode import encode_documents, evaluation_examples
from ner_ray.registry import FAMILIES


@dataclass
class TrainingData:
    """A run's data: the family, encoded training and dev windows, the gold dev and test documents."""

    family: Any
    train: list  # Examples (of the augmented training documents)
    dev_documents: list[Document]
    dev: list  # Examples of dev_documents, windows cut from the text alone, in length order (`evaluation_examples`)
    test_documents: list[Document] | None  # None: the corpus has no test split (or data.test_split is null)
    report: ParseReport = field(default_factory=ParseReport)


def load_documents(config: StudyConfig) -> tuple[dict[str, list[Document]], tuple[str, ...]]:
    """Documents per split (types merged / filtered as the data block says) and the entity types.

    The train and dev splits must exist; a missing test split is no test (never dev in its place).
    """
    data = config.data
    wanted = tuple(s for s in (data.train_split, data.dev_split, data.test_split) if s)
    fmt = None if data.format == "auto" else data.format
    corpus = load_corpus(data.corpus, fmt=fmt, splits=wanted, lenient=data.lenient)
    for role, split in (("data.train_split", data.train_split), ("data.dev_split", data.dev_split)):
        if split not in corpus.splits:
            raise ValueError(f"corpus {data.corpus!r} has no split {split!r} ({role}); it has "
                             f"{', '.join(corpus.splits) or 'none'}")
    type_map = corpus.spec.type_map if (corpus.spec and data.merge_types) else {}
    splits = {}
    for split, docs in corpus.splits.items():
        docs = [doc.retyped(type_map) for doc in docs]
        if data.entity_types is not None:
            keep = set(data.entity_types)
            docs = [doc.with_spans([s for s in doc.spans if s.type in keep]) for doc in docs]
        splits[split] = docs
    if data.subsample is not None:
        splits[data.train_split] = subsample(splits[data.train_split], data.subsample, config.train.seed)
    types = data.entity_types or sorted({s.type for docs in splits.values() for d in docs for s in d.spans})
    if not types:
        raise ValueError(f"corpus {data.corpus!r} has no entity spans in splits {', '.join(wanted)}")
    return splits, tuple(types)


def subsample(docs: list[Document], amount: int | float, seed: int) -> list[Document]:
    """The first `amount` documents (an integer), or a share of them (a fraction in (0, 1), at least one document)
    drawn at random with `seed`, kept in corpus order."""
    if isinstance(amount, int):
        return docs[:amount]
    keep = random.Random(seed).sample(range(len(docs)), max(1, round(len(docs) * amount)))
    return [docs[i] for i in sorted(keep)]


def augment(docs: list[Document], config: StudyConfig, mask_token: str) -> list[Document]:
    """The documents plus one swapped/masked copy of each (when data.augment asks for it)."""
    swap_p, mask_p = config.data.augment.swap_p, config.data.augment.mask_p
    if swap_p == 0 and mask_p == 0:
        return docs
    rng = random.Random(config.train.seed)
    pool = build_mention_pool(docs)
    copies = []
    for doc in docs:
        copy = entity_swap(doc, pool, swap_p, rng) if swap_p else doc
        copy = entity_mask(copy, mask_p, rng, mask_token=mask_token) if mask_p else copy
        copies.append(copy)
    return docs + copies


def prepare_data(config: StudyConfig, tokenizer: Any = None) -> TrainingData:
    """Load the splits, build the family on their entity types (its own tokenizer unless one is given), and
    encode the training and dev windows."""
    splits, types = load_documents(config)
    family = FAMILIES.get(config.model.family)(config, types, tokenizer)
    report = ParseReport()
    tok = family.tokenizer
    mask_token = getattr(tok, "mask_token", None) or getattr(tok, "unk_token", None) or "[MASK]"
    train_docs = augment(splits[config.data.train_split], config, mask_token)
    dev_docs = splits[config.data.dev_split]
    return TrainingData(
        family=family,
        train=encode_documents(train_docs, family, training=True, report=report),
        dev_documents=dev_docs,
        dev=evaluation_examples(dev_docs, family, report),
        test_documents=splits.get(config.data.test_split) if config.data.test_split else None,
        report=report,
    )
