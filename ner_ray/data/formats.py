"""Corpus file formats: the name → reader registry and detection from a file name.

Every reader takes (path, lenient, report) and returns Documents; readers are imported lazily so
that naming a format costs nothing until a file of it is read.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ner_ray.data.document import Document, ParseReport
from ner_ray.errors import nearest

# format name -> (module, function); each function is called as f(path, lenient=..., report=...)
_READERS = {
    "pubtator": ("ner_ray.data.pubtator", "read_pubtator"),
    "bioc": ("ner_ray.data.bioc", "read_bioc"),
    "bio": ("ner_ray.data.conll", "read_bio"),
    "span_jsonl": ("ner_ray.data.jsonl", "read_span_jsonl"),
}
_SUFFIXES = {
    ".xml": "bioc",
    ".tsv": "bio", ".bio": "bio", ".iob": "bio", ".conll": "bio",
    ".jsonl": "span_jsonl",
    ".txt": "pubtator", ".pubtator": "pubtator",
}
FORMATS = tuple(_READERS)


def detect_format(path: str | Path) -> str:
    """The format a file name implies (`.xml` BioC, `.tsv` BIO, `.jsonl` span JSONL, `.txt` PubTator)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"{path}: cannot tell the corpus format from the suffix {suffix!r}; name it with a format "
            f"({', '.join(FORMATS)}) or use one of the suffixes {', '.join(sorted(_SUFFIXES))}"
        )
    return _SUFFIXES[suffix]


def read_documents(
    path: str | Path, fmt: str | None = None, lenient: bool = False, report: ParseReport | None = None
) -> list[Document]:
    """Read one corpus file in `fmt` (detected from the suffix when None)."""
    fmt = fmt or detect_format(path)
    if fmt not in _READERS:
        raise ValueError(f"unknown corpus format {fmt!r}; {nearest(fmt, FORMATS)}")
    module, name = _READERS[fmt]
    reader = getattr(importlib.import_module(module), name)
    return reader(path, lenient=lenient, report=report)
