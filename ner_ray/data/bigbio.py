"""Hugging Face datasets in the BigBio KB schema → Documents.

BigBio KB records hold passages and entities with character offsets and mention-level relations
(arg1_id/arg2_id name entities). `load_bigbio` is the edge that imports `datasets` (a local
`save_to_disk` folder, or the hub when it is reachable); `documents_from_bigbio` is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ner_ray.data.document import Document, ParseReport, Relation, Span
from ner_ray.errors import DataFormatError, nearest


def load_bigbio(
    name_or_path: str | Path,
    split: str,
    config_name: str | None = None,
    lenient: bool = False,
    report: ParseReport | None = None,
) -> list[Document]:
    """Documents of one split of a BigBio KB dataset.

    An existing path is read with `datasets.load_from_disk` (a DatasetDict, from which `split` is
    taken, or a single saved Dataset); anything else is a hub name for `datasets.load_dataset`,
    whose config defaults to "<name>_bigbio_kb" for "bigbio/<name>". See `documents_from_bigbio`.
    """
    import datasets  # the edge: importing ner_ray.data stays cheap

    path = Path(name_or_path)
    if path.exists():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"{path}: no split {split!r}; {nearest(split, loaded.keys())}")
            loaded = loaded[split]
        source = f"{path}[{split}]"
    else:
        name = str(name_or_path)
        if config_name is None and name.startswith("bigbio/"):
            config_name = f"{name.split('/', 1)[1]}_bigbio_kb"
        try:
            loaded = datasets.load_dataset(name, config_name, split=split)
        except Exception as err:  # offline, unknown name, script datasets: all end the same way for the user
            raise ValueError(
                f"could not load {name!r} (config {config_name!r}, split {split!r}) from the Hugging Face hub: "
                f"{type(err).__name__}: {err}. The hub may not be reachable from here; save the dataset "
                "with datasets' save_to_disk where it is, and pass that folder's path instead"
            ) from err
        source = f"{name}[{split}]"
    return documents_from_bigbio(loaded, source=source, lenient=lenient, report=report)


# Our split names -> the names BigBio datasets use for them, in order of preference.
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}


def load_bigbio_corpus(
    name_or_path: str, splits: Iterable[str], lenient: bool = False
) -> dict[str, tuple[list[Document], ParseReport]]:
    """(documents, report) of each of `splits` that the dataset has (`dev` is read from BigBio's `validation`)."""
    available = bigbio_splits(name_or_path)
    out = {}
    for split in splits:
        source = next((s for s in SPLIT_NAMES.get(split, (split,)) if s in available), None)
        if source is not None:
            report = ParseReport()
            out[split] = (load_bigbio(name_or_path, source, lenient=lenient, report=report), report)
    if not out:
        raise ValueError(f"{name_or_path}: no split among {', '.join(splits)} (the dataset has {', '.join(available) or 'none'})")
    return out


def bigbio_splits(name_or_path: str, config_name: str | None = None) -> list[str]:
    """The split names of a saved dataset folder, or of a hub dataset (asks the hub)."""
    import datasets

    path = Path(name_or_path)
    if path.exists():
        loaded = datasets.load_from_disk(str(path))
        return list(loaded.keys()) if isinstance(loaded, datasets.DatasetDict) else ["train"]
    if config_name is None and name_or_path.startswith("bigbio/"):
        config_name = f"{name_or_path.split('/', 1)[1]}_bigbio_kb"
    try:
        return list(datasets.get_dataset_split_names(name_or_path, config_name))
    except Exception as err:  # offline or unknown: the same advice as load_bigbio's
        raise ValueError(f"could not list the splits of {name_or_path!r} on the Hugging Face hub: {type(err).__name__}: "
                         f"{err}. Save the dataset with datasets' save_to_disk where the hub is reachable, and pass "
                         "that folder's path instead") from err


def documents_from_bigbio(
    records: Iterable[Mapping],
    source: str = "<bigbio>",
    lenient: bool = False,
    report: ParseReport | None = None,
) -> list[Document]:
    """One Document per BigBio KB record (a `datasets.Dataset` split, or a list of such dicts).

    Nested lists may also come columnar (a dict of lists, as features declared with
    `datasets.Sequence({...})` return them).

    Text: each passage's text pieces placed at their offsets, padded with spaces. Entities keep
    their offsets; one with several fragments becomes one span from the first start to the last
    end (`discontinuous_merged`; its fragment texts joined by " " kept as `surface`, the fragments
    in `note`). `concept` is the normalized db_ids joined by "|". An entity whose text differs
    from the document text at its offsets is an error naming the record; `lenient=True` skips it
    (`offset_mismatches`). Relations are mention-level in BigBio (BC5CDR's CID pairs are expanded
    to every pair of mentions); they are mapped back to `Relation(arg1 concept, arg2 concept,
    type)`: for an entity with several ids, a pair of ids is kept only when every mention pair
    carrying those ids is related. That leaves out the spurious pairs a composite mention
    ("D1|D2") adds, except for an id that occurs only inside such mentions: there the expansion
    lost the information and the pair is kept. Relations whose entities have no ids (or were
    skipped) are counted `relations_skipped`.
    """
    report = report if report is not None else ParseReport()
    docs = []
    for index, record in enumerate(records):
        where = f"record {index} (document_id {record.get('document_id')!r})"
        text, meta = _text(record, source, where)
        entities: dict[str, Span] = {}
        for entity in _rows(record.get("entities")):
            span = _entity(entity, text, source, where, lenient, report)
            if span is not None:
                entities[str(entity["id"])] = span
        relations = _relations(_rows(record.get("relations")), entities, source, where, report)
        meta["bigbio_id"] = str(record.get("id", ""))
        docs.append(Document(str(record["document_id"]), text, list(entities.values()), relations, meta))
    return docs


def _rows(value: list | Mapping | None) -> list[Mapping]:
    """A list of dicts, also from the columnar form (dict of lists) that `datasets.Sequence({...})` yields."""
    if not value:
        return []
    if isinstance(value, Mapping):
        return [dict(zip(value, row)) for row in zip(*value.values())]
    return list(value)


def _text(record: Mapping, source: str, where: str) -> tuple[str, dict]:
    pieces = []
    for passage in _rows(record.get("passages")):
        if len(passage["text"]) != len(passage["offsets"]):
            raise DataFormatError(source, None, f"{where}: passage {passage.get('id')!r} has "
                                  f"{len(passage['text'])} texts but {len(passage['offsets'])} offsets")
        for piece, (start, end) in zip(passage["text"], passage["offsets"]):
            if end - start != len(piece):
                raise DataFormatError(source, None, f"{where}: passage {passage.get('id')!r} offsets "
                                      f"{start}-{end} do not fit its text of length {len(piece)}")
            pieces.append((start, piece, passage.get("type")))
    text, meta = "", {}
    for start, piece, kind in sorted(pieces, key=lambda p: p[0]):
        if start < len(text):
            raise DataFormatError(source, None, f"{where}: passage text at {start} overlaps the text before it")
        text += " " * (start - len(text)) + piece
        if kind == "title" and "title_end" not in meta:
            meta["title_end"] = len(text)
    return text, meta


def _entity(
    entity: Mapping, text: str, source: str, where: str, lenient: bool, report: ParseReport
) -> Span | None:
    offsets = [(int(s), int(e)) for s, e in entity["offsets"]]
    if not offsets or any(not 0 <= s < e <= len(text) for s, e in offsets):
        problem = f"entity {entity['id']!r} offsets {offsets} fall outside the text (length {len(text)})"
    else:
        found = " ".join(text[s:e] for s, e in offsets)
        written = " ".join(entity.get("text") or [])
        problem = None
        if found != written:
            problem = f"entity {entity['id']!r} says {written!r} but its offsets cover {found!r}"
    if problem is not None:
        if not lenient:
            raise DataFormatError(source, None, f"{where}: {problem} (lenient=True skips such entities)")
        report.note("offset_mismatches", f"{source}: {where}: {problem}")
        return None
    concept = "|".join(str(norm["db_id"]) for norm in _rows(entity.get("normalized")))
    start, end = min(s for s, _ in offsets), max(e for _, e in offsets)
    if len(offsets) == 1:
        return Span(start, end, entity["type"], concept)
    report.counts["discontinuous_merged"] += 1
    fragments = ",".join(f"{s}-{e}" for s, e in offsets)
    return Span(start, end, entity["type"], concept, found, f"fragments {fragments}")


def _relations(
    relations: list[Mapping], entities: dict[str, Span], source: str, where: str, report: ParseReport
) -> list[Relation]:
    """Document-level relations from mention-level ones (see `documents_from_bigbio`)."""
    ids = {key: span.concept_ids for key, span in entities.items()}
    related = set()
    candidates: dict[Relation, None] = {}
    for rel in relations:
        arg1, arg2 = str(rel["arg1_id"]), str(rel["arg2_id"])
        if not ids.get(arg1) or not ids.get(arg2):
            report.note("relations_skipped", f"{source}: {where}: relation {rel.get('id')!r} between "
                        f"{arg1!r} and {arg2!r}: an argument is missing or has no normalized id")
            continue
        related.add((arg1, arg2, rel["type"]))
        for head in ids[arg1]:
            for tail in ids[arg2]:
                candidates.setdefault(Relation(head, tail, rel["type"]), None)
    kept = []
    for cand in candidates:
        heads = [key for key, values in ids.items() if cand.head in values]
        tails = [key for key, values in ids.items() if cand.tail in values]
        if all((h, t, cand.type) in related for h in heads for t in tails):
            kept.append(cand)
    return kept
