"""From a study's data block to encoded examples: corpus → documents → windows → family features.

Windows are cut at sentence ends to at most `data.max_length` subword tokens (special tokens
included); multi-window documents are stitched back by `predict.py`. Augmentation (entity swap /
mask) adds one augmented copy of every training document, seeded by `train.seed`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ner_ray.config import StudyConfig
from ner_ray.data.augment import build_mention_pool, entity_mask, entity_swap
from ner_ray.data.chunking import make_windows, split_sentences
from ner_ray.data.corpora import load_corpus
from ner_ray.data.document import Document, ParseReport
from ner_ray.families.base import Example, Family, LabelSet


@dataclass
class SplitData:
    """One split: its gold documents and their encoded windows (example.extra["doc_index"] points back)."""

    documents: list[Document]
    examples: list[Example]


@dataclass
class PreparedData:
    labels: LabelSet
    splits: dict[str, SplitData]
    report: ParseReport = field(default_factory=ParseReport)


def load_documents(config: StudyConfig) -> tuple[dict[str, list[Document]], tuple[str, ...]]:
    """Documents per split (types merged / filtered as the data block says) and the entity types."""
    data = config.data
    wanted = tuple(s for s in (data.train_split, data.dev_split, data.test_split) if s)
    fmt = None if data.format == "auto" else data.format
    corpus = load_corpus(data.corpus, fmt=fmt, splits=wanted, lenient=data.lenient)
    type_map = corpus.spec.type_map if (corpus.spec and data.merge_types) else {}
    splits = {}
    for split, docs in corpus.splits.items():
        docs = [doc.retyped(type_map) for doc in docs]
        if data.entity_types is not None:
            keep = set(data.entity_types)
            docs = [doc.with_spans([s for s in doc.spans if s.type in keep]) for doc in docs]
        splits[split] = docs
    if data.subsample is not None:
        splits[data.train_split] = splits[data.train_split][: data.subsample]
    types = data.entity_types or sorted({s.type for docs in splits.values() for d in docs for s in d.spans})
    if not types:
        raise ValueError(f"corpus {data.corpus!r} has no entity spans in splits {', '.join(wanted)}")
    return splits, tuple(types)


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


def encode_documents(docs: list[Document], family: Family, tokenizer, max_length: int, report: ParseReport) -> list[Example]:
    """Every window of every document, encoded by the family, in document order."""
    budget = max_length - tokenizer.num_special_tokens_to_add()

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    examples = []
    for index, doc in enumerate(docs):
        bounds = split_sentences(doc.text, protect=doc.spans)
        if family.sentence_windows:
            result = make_windows(doc, budget, count, sentence_bounds=bounds, report=report, pack=False)
        else:
            result = make_windows(doc, budget, count, sentence_bounds=bounds, report=report)
        for window in result.windows:
            example = family.encode(window, doc)
            example.extra["doc_index"] = index
            report.counts["misaligned_spans"] += example.misaligned
            examples.append(example)
    return examples


def prepare_data(config: StudyConfig, family_factory, tokenizer) -> tuple[PreparedData, Family]:
    """Load, window and encode every split; returns the data and the family built on its labels."""
    splits, types = load_documents(config)
    labels = LabelSet(types)
    family = family_factory(config, tokenizer, labels)
    report = ParseReport()
    mask_token = tokenizer.mask_token or tokenizer.unk_token
    prepared = {}
    for split, docs in splits.items():
        source = augment(docs, config, mask_token) if split == config.data.train_split else docs
        prepared[split] = SplitData(docs, encode_documents(source, family, tokenizer, config.data.max_length, report))
    return PreparedData(labels, prepared, report), family
