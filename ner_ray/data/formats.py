"""Corpus file formats: reading one file by format name (ner_ray.registry.FORMATS), and telling the
format from a file name.

Every file reader takes (path, lenient, report) and returns Documents; readers are imported lazily so
that naming a format costs nothing until a file of it is read. bigbio reads a whole dataset instead
(`ner_ray.data.corpora.load_corpus(..., fmt="bigbio")`).
"""

from __future__ import annotations

from pathlib import Path

from ner_ray.data.document import Document, ParseReport
from ner_ray.registry import FORMATS

_SUFFIXES = {
    ".xml": "bioc",
    ".tsv": "bio", ".bio": "bio", ".iob": "bio", ".conll": "bio",
    ".jsonl": "span_jsonl",
    ".txt": "pubtator", ".pubtator": "pubtator",
}
DATASET_FORMATS = ("bigbio",)  # formats read as a whole dataset, not file by file


def detect_format(path: str | Path) -> str:
    """The format a file name implies (`.xml` BioC, `.tsv` BIO, `.jsonl` span JSONL, `.txt` PubTator)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"{path}: cannot tell the corpus format from the suffix {suffix!r}; name it with a format "
            f"({', '.join(file_formats())}) or use one of the suffixes {', '.join(sorted(_SUFFIXES))}"
        )
    return _SUFFIXES[suffix]


def file_formats() -> list[str]:
    """The registered formats that read one file per split."""
    return [name for name in FORMATS.names() if name not in DATASET_FORMATS]


def read_documents(
    path: str | Path, fmt: str | None = None, lenient: bool = False, report: ParseReport | None = None
) -> list[Document]:
    """Read one corpus file in `fmt` (detected from the suffix when None)."""
    fmt = fmt or detect_format(path)
    if fmt in DATASET_FORMATS:
        raise ValueError(f"{path}: format {fmt!r} reads a whole dataset, not one file; load it with "
                         f"load_corpus(PATH_OR_HUB_NAME, fmt={fmt!r}) (data.format: {fmt} in a study)")
    reader = FORMATS.get(fmt)
    return reader(path, lenient=lenient, report=report)
