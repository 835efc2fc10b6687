"""A corpus cut to the first N documents of each split, for benchmarks that cannot afford a whole split on 2 cores."""

from __future__ import annotations

from pathlib import Path

from ner_ray.data.corpora import load_corpus
from ner_ray.data.pubtator import write_pubtator


def cut_corpus(corpus: str, counts: dict[str, int], folder: Path) -> Path:
    """The first N documents of each split of `corpus` as a PubTator corpus folder (N = 0: all)."""
    folder.mkdir(parents=True, exist_ok=True)
    loaded = load_corpus(corpus, splits=tuple(counts))
    for split, count in counts.items():
        docs = loaded.splits[split]
        write_pubtator(folder / f"{split}.txt", docs[:count] if count else docs)
    return folder
