"""Named corpora (bc5cdr, ncbi_disease, demo, registered in ner_ray.registry.CORPORA): their files, splits
and types, where to find them, and `load_corpus` for a named corpus, a file, a folder or a BigBio dataset.

A named corpus file is looked up in this order: an explicit data folder → `$NER_RAY_DATA` → the
user cache (`$NER_RAY_CACHE`, else `~/.cache/ner_ray`) → a download from its public source,
checked against its sha256 (`$NER_RAY_MIRROR` replaces the source with a mirror laid out like
`../shared/data`; `NER_RAY_OFFLINE=1` skips downloading). Data folders are laid out like `../shared/data`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ner_ray.data.document import Document, ParseReport
from ner_ray.data.download import download
from ner_ray.data.formats import detect_format, read_documents
from ner_ray.errors import nearest
from ner_ray.registry import CORPORA

SPLITS = ("train", "dev", "test")
_BMIP = "https://raw.githubusercontent.com/cambridgeltl/bmip-2018/0b66ee9245653b622cb6c36ba13d018b21b5b80e/BC5-CDR/original-data/"
_MTL = "https://raw.githubusercontent.com/cambridgeltl/MTL-Bioinformatics-2016/df0df02fae6dbb87d88ffcf323b9096528f06f84/data/BC5CDR-IOB/"
_NCBI = "https://raw.githubusercontent.com/spyysalo/ncbi-disease/5a266c6fc76fb2b5184cfa397ff0a5ecdb133aec/"


@dataclass(frozen=True)
class CorpusFile:
    """One split file: its path inside a data folder, its checksum and its public source."""

    path: str
    sha256: str
    url: str = ""


@dataclass(frozen=True)
class CorpusSpec:
    """A named corpus: entity types, and for each format (the first is the default) a file per split."""

    name: str
    entity_types: tuple[str, ...]
    forms: dict[str, dict[str, CorpusFile]]
    relation_types: tuple[str, ...] = ()
    type_map: dict[str, str] = field(default_factory=dict)  # source type -> merged type, for single-type NER
    citation: str = ""
    packaged: bool = False  # files ship inside the ner_ray package

    @property
    def default_format(self) -> str:
        return next(iter(self.forms))


def _pubtator_bc5cdr(stem: str, sha: str) -> CorpusFile:
    return CorpusFile(f"bc5cdr/{stem}", sha, _BMIP + stem)


BC5CDR = CorpusSpec(
    name="bc5cdr",
    entity_types=("Chemical", "Disease"),
    relation_types=("CID",),
    citation="Li J. et al., BioCreative V CDR task corpus, Database 2016, doi:10.1093/database/baw068",
    forms={
        "pubtator": {
            "train": _pubtator_bc5cdr("CDR_TrainingSet.PubTator.txt", "7afcec134e3d4871e74b0398d92850d3c9ac94c0bdc780003f2d60184c012bd8"),
            "dev": _pubtator_bc5cdr("CDR_DevelopmentSet.PubTator.txt", "9e18d8e700168887a7919e62f67ac2ce2357e3f409a48ee992906abdd80fe3e5"),
            "test": _pubtator_bc5cdr("CDR_TestSet.PubTator.txt", "a3c48d5f35bdfce20c2371778abedc9fd24d1da092207072e5181ad53c8d0e2f"),
        },
        "bioc": {
            "train": _pubtator_bc5cdr("CDR_TrainingSet.BioC.xml", "37d03c8ebb22369fbf8f2099e4bc6570accba8473e9129dddd6278e7e01e1adc"),
            "dev": _pubtator_bc5cdr("CDR_DevelopmentSet.BioC.xml", "6ec138899a4b6448b40adf4e159a06184f68f8a5a7e13575903c5e127d734d88"),
            "test": _pubtator_bc5cdr("CDR_TestSet.BioC.xml", "32d94f03c52e028931513ab52719b5bc7bb8e4fc0e3d99bba37e2b7442e3da35"),
        },
        "bio": {
            "train": CorpusFile("bc5cdr/BC5CDR-IOB/train.tsv", "b731361c0ed73afd04cc5fdad39afcdfd8f325d6e46c282339185a91d1af4c14", _MTL + "train.tsv"),
            "dev": CorpusFile("bc5cdr/BC5CDR-IOB/devel.tsv", "b909de65c4f7e3c23bb09ad52d654cdc92e96db941abe1a5dcf6f6010c03cff5", _MTL + "devel.tsv"),
            "test": CorpusFile("bc5cdr/BC5CDR-IOB/test.tsv", "e41a2843a5fff0cd8d1a88cb147968d61ae29336ca70cddc3d7fb8ff21dfa1e8", _MTL + "test.tsv"),
        },
    },
)

NCBI_DISEASE = CorpusSpec(
    name="ncbi_disease",
    entity_types=("SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"),
    type_map={t: "Disease" for t in ("SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention")},
    citation="Dogan R.I., Leaman R., Lu Z., NCBI disease corpus, J Biomed Inform 47:1-10, 2014",
    forms={
        "pubtator": {
            "train": CorpusFile("ncbi_disease/NCBItrainset_corpus.txt", "f311381b28a6d0f641f57f4a963bb83619c2bdec5cd9caabb1381f894d5db817", _NCBI + "original-data/train/NCBItrainset_corpus.txt"),
            "dev": CorpusFile("ncbi_disease/NCBIdevelopset_corpus.txt", "02db559974624ae9cbe6cd95d64d953e6926bb63afb6b25b63e53bd8b41a4b55", _NCBI + "original-data/devel/NCBIdevelopset_corpus.txt"),
            "test": CorpusFile("ncbi_disease/NCBItestset_corpus.txt", "61c8050bf6979ef7b943ec1158dfc03b651ea3367d4c37356f9de4841e85c9a3", _NCBI + "original-data/test/NCBItestset_corpus.txt"),
        },
        "bio": {
            "train": CorpusFile("ncbi_disease/conll/train.tsv", "5f87b0de649eccff21e6d6e49e304aace808056ecae55225ea31602192517be9", _NCBI + "conll/train.tsv"),
            "dev": CorpusFile("ncbi_disease/conll/devel.tsv", "b4e1e7efcc2a35047bf2f3d281648357470e674f555d4a26a0049ac37d59cc61", _NCBI + "conll/devel.tsv"),
            "test": CorpusFile("ncbi_disease/conll/test.tsv", "8f088ce45dc4746592188f9e69de3d89d87f3bb8f0ed8c4a287d018123fa148d", _NCBI + "conll/test.tsv"),
        },
    },
)

DEMO = CorpusSpec(
    name="demo",
    entity_types=("Chemical", "Disease"),
    relation_types=("CID",),
    citation="written for ner_ray (ner_ray/data/demo/README.md)",
    packaged=True,
    forms={"pubtator": {split: CorpusFile(f"{split}.txt", "") for split in SPLITS}},
)


class CorpusNotFoundError(FileNotFoundError):
    """A named corpus file found nowhere; the message names the three ways to provide it."""


@dataclass
class Corpus:
    """Documents by split, with what each split's reader reported and the file it came from."""

    name: str
    splits: dict[str, list[Document]]
    reports: dict[str, ParseReport]
    files: dict[str, Path]
    spec: CorpusSpec | None = None


def cache_dir() -> Path:
    """The user cache for downloaded corpora."""
    root = os.environ.get("NER_RAY_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ner_ray"
    return Path(root) / "corpora"


def locate(spec: CorpusSpec, split: str, fmt: str | None = None, data_dir: str | Path | None = None) -> Path:
    """Find (or download) one split file of a named corpus, in the documented order."""
    fmt = fmt or spec.default_format
    if fmt not in spec.forms:
        raise ValueError(f"corpus {spec.name!r} has no {fmt!r} files; {nearest(fmt, spec.forms)}")
    if split not in spec.forms[fmt]:
        raise ValueError(f"corpus {spec.name!r} has no split {split!r}; {nearest(split, spec.forms[fmt])}")
    entry = spec.forms[fmt][split]
    if spec.packaged:
        return Path(str(resources.files("ner_ray") / "data" / spec.name / entry.path))
    looked = []
    for root in (data_dir, os.environ.get("NER_RAY_DATA"), cache_dir()):
        if root:
            # A folder laid out like ../shared/data, or the corpus folder itself (../shared/data/bc5cdr).
            for candidate in (Path(root) / entry.path, Path(root) / entry.path.split("/", 1)[1]):
                looked.append(str(candidate))
                if candidate.is_file():
                    return candidate
    return _download(spec, entry, looked)


def _download(spec: CorpusSpec, entry: CorpusFile, looked: list[str]) -> Path:
    mirror = os.environ.get("NER_RAY_MIRROR")
    url = mirror.rstrip("/") + "/" + entry.path if mirror else entry.url
    if os.environ.get("NER_RAY_OFFLINE") == "1":
        reason = "NER_RAY_OFFLINE=1 forbids downloading"
    else:
        try:
            return download(url, cache_dir() / entry.path, entry.sha256)
        except OSError as err:  # URLError and socket timeouts are OSErrors
            reason = f"downloading {url} failed: {err}"
    raise CorpusNotFoundError(
        f"corpus {spec.name!r}: {entry.path} was not found ({reason}). Provide it in one of three ways:\n"
        f"  1. pass the folder that holds it: --data-dir DIR (or data.corpus=PATH in a study),\n"
        f"  2. set NER_RAY_DATA to a folder laid out like DIR/{entry.path},\n"
        f"  3. put the file in the cache at {cache_dir() / entry.path} (or let ner_ray download it when online).\n"
        f"Looked in: {', '.join(looked) or 'nowhere (no data folder given)'}"
    )


def load_corpus(
    name_or_path: str | Path,
    fmt: str | None = None,
    splits: tuple[str, ...] | None = None,
    data_dir: str | Path | None = None,
    lenient: bool = False,
) -> Corpus:
    """Documents of a named corpus, of a corpus file or folder on disk, or (fmt "bigbio") of a BigBio KB
    dataset (a `save_to_disk` folder or a hub name), by split."""
    if fmt == "bigbio":
        from ner_ray.data.bigbio import load_bigbio_corpus

        loaded = load_bigbio_corpus(str(name_or_path), splits or SPLITS, lenient)
        name = Path(name_or_path).name if Path(name_or_path).exists() else str(name_or_path)
        return Corpus(name, {s: docs for s, (docs, _) in loaded.items()}, {s: r for s, (_, r) in loaded.items()},
                      {s: Path(name_or_path) for s in loaded})
    if str(name_or_path) in CORPORA:
        spec = CORPORA.get(str(name_or_path))
        files = {split: locate(spec, split, fmt, data_dir) for split in splits or SPLITS}
        return _read(spec.name, files, fmt, lenient, spec)
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: neither a file nor a folder, nor a named corpus; {nearest(str(path), CORPORA.names())}")
    files = {split_name(path): path} if path.is_file() else _files_in(path, fmt)
    if splits:
        files = {s: f for s, f in files.items() if s in splits}
    return _read(path.stem if path.is_file() else path.name, files, fmt, lenient, None)


def named_corpora() -> list[tuple[str, CorpusSpec]]:
    """(name, spec) of every registered corpus."""
    return [(name, CORPORA.get(name)) for name in CORPORA.names()]


def corpora_in(folder: Path) -> list[str]:
    """The named corpora that a data folder (laid out like ../shared/data) holds."""
    return [name for name, spec in named_corpora()
            if not spec.packaged and (folder / next(iter(spec.forms[spec.default_format].values())).path).is_file()]


def split_name(path: Path) -> str:
    """train / dev / test guessed from a file name (`CDR_DevelopmentSet`, `devel.tsv`, ...), else its stem."""
    stem = path.name.lower()
    for split, marks in (("train", ("train",)), ("dev", ("dev", "valid")), ("test", ("test",))):
        if any(mark in stem for mark in marks):
            return split
    return path.stem


def _files_in(folder: Path, fmt: str | None) -> dict[str, Path]:
    for _, spec in named_corpora():  # the folder of a named corpus: use its default form
        form = spec.forms[fmt or spec.default_format] if (fmt or spec.default_format) in spec.forms else {}
        hits = {split: folder / entry.path.split("/", 1)[-1] for split, entry in form.items()}
        if hits and not spec.packaged and all(p.is_file() for p in hits.values()):
            return hits
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        try:
            detected = detect_format(path)
        except ValueError:
            continue
        if path.is_file() and (fmt is None or detected == fmt):
            files.setdefault(split_name(path), path)
    if not files:
        raise FileNotFoundError(f"{folder}: no corpus files found (suffixes .txt, .xml, .tsv, .jsonl)")
    return files


def _read(name: str, files: dict[str, Path], fmt: str | None, lenient: bool, spec: CorpusSpec | None) -> Corpus:
    splits, reports = {}, {}
    for split, path in files.items():
        report = ParseReport()
        splits[split] = read_documents(path, fmt, lenient=lenient, report=report)
        reports[split] = report
    return Corpus(name, splits, reports, files, spec)
