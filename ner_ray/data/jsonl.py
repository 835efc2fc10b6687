"""The two JSONL formats of the seeds: span JSONL (seed 002) and instruct JSONL (seed 003).

Span JSONL: `{"task": "NER", "input": "<NER> <text>", "target": "<TAG> 0-7 ; 20-34", "doc_id", "dataset"}`
plus our `"spans": [[s, e, type], ...]` so that types survive a round trip. Instruct JSONL:
`{"prompt", "completion"}` plus any extra keys. Both are gold data: a bad line is an error at file:line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ner_ray.data.document import Document, ParseReport, Span
from ner_ray.data.span_string import UNTYPED, format_span_string, parse_span_string
from ner_ray.data.textio import read_text, write_text_atomic
from ner_ray.errors import DataFormatError

NER_TASK = "NER"
NER_PREFIX = "<NER> "


@dataclass
class InstructExample:
    """One prompt/completion pair; `extra` holds any other keys of its JSONL record (task, doc_id, ...)."""

    prompt: str
    completion: str
    extra: dict = field(default_factory=dict)


def format_span_jsonl(docs: Iterable[Document], dataset: str = "") -> str:
    """One span-JSONL record per document (a sentence or window is a Document too), one per line."""
    lines = []
    for doc in docs:
        spans = sorted({span.key for span in doc.spans})
        record = {
            "task": NER_TASK,
            "input": NER_PREFIX + doc.text,
            "target": format_span_string(doc.spans),
            "doc_id": doc.id,
            "dataset": dataset,
            "spans": [list(key) for key in spans],
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


def write_span_jsonl(path: str | Path, docs: Iterable[Document], dataset: str = "") -> Path:
    """Write documents as span JSONL, atomically."""
    return write_text_atomic(path, format_span_jsonl(docs, dataset))


def read_span_jsonl(path: str | Path, lenient: bool = False, report: ParseReport | None = None) -> list[Document]:
    """Read a span-JSONL file (strict UTF-8); see `parse_span_jsonl`."""
    return parse_span_jsonl(read_text(path, report), source=str(path), lenient=lenient, report=report)


def parse_span_jsonl(
    text: str, source: str = "<string>", lenient: bool = False, report: ParseReport | None = None
) -> list[Document]:
    """Parse span JSONL into one Document per record (text = `input` after "<NER> ").

    Span types come from `"spans"` when present, else they are `span_string.UNTYPED`. Malformed
    lines (bad JSON, missing or mistyped keys) are always errors naming `source:line`. A target
    item that does not parse (see `parse_span_string`), or `"spans"` that disagree with the
    target, is an error too; with `lenient=True` that record is skipped and counted as
    `skipped_records`. `meta` holds `dataset` and the record's `line`; a record without `doc_id`
    gets `"line<N>"`.
    """
    report = report if report is not None else ParseReport()
    docs = []
    for number, record in _records(text, source):
        _require(record, {"input": str, "target": str}, source, number)
        _optional(record, {"task": str, "doc_id": str, "dataset": str, "spans": list}, source, number)
        if record.get("task", NER_TASK) != NER_TASK:
            raise DataFormatError(source, number, f"task {record['task']!r}: span JSONL records have task {NER_TASK!r}")
        if not record["input"].startswith(NER_PREFIX):
            raise DataFormatError(
                source, number, f"'input' must start with {NER_PREFIX!r}, got {record['input'][:20]!r}"
            )
        body = record["input"][len(NER_PREFIX) :]
        try:
            spans = _spans(record, len(body), source, number)
        except DataFormatError as err:
            if not lenient:
                raise
            report.note("skipped_records", str(err))
            continue
        meta = {"dataset": record.get("dataset", ""), "line": number}
        docs.append(Document(record.get("doc_id", f"line{number}"), body, spans, [], meta))
    return docs


def _spans(record: dict, text_length: int, source: str, number: int) -> list[Span]:
    """The record's gold spans; any invalid target item or a `spans`/`target` disagreement raises."""
    parsed = parse_span_string(record["target"], text_length=text_length, span_type=UNTYPED)
    if parsed.invalid:
        kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(parsed.invalid.items()))
        raise DataFormatError(
            source, number, f"target {record['target']!r} has invalid items ({kinds}); expected "
            f"'<TAG> s-e ; s-e' with 0 <= s < e <= {text_length} (the length of the text after {NER_PREFIX!r})",
        )
    if "spans" not in record:
        return sorted(parsed.spans)
    spans = []
    for item in record["spans"]:
        if not (
            isinstance(item, list) and len(item) == 3 and all(type(v) is int for v in item[:2])
            and isinstance(item[2], str) and item[2]
        ):
            raise DataFormatError(source, number, f"'spans' item {item!r}: expected [start, end, type]")
        spans.append(Span(item[0], item[1], item[2]))
    if {(s.start, s.end) for s in spans} != {(s.start, s.end) for s in parsed.spans}:
        raise DataFormatError(
            source, number, f"'spans' {record['spans']!r} disagree with target {record['target']!r}: "
            "both must name the same offsets",
        )
    return sorted(set(spans))


def format_instruct_jsonl(examples: Iterable[InstructExample]) -> str:
    """One `{"prompt", "completion", **extra}` record per example, one per line."""
    lines = []
    for example in examples:
        clash = {"prompt", "completion"} & set(example.extra)
        if clash:
            raise ValueError(f"InstructExample.extra may not hold {sorted(clash)}: they are the record's own keys")
        record = {"prompt": example.prompt, "completion": example.completion, **example.extra}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


def write_instruct_jsonl(path: str | Path, examples: Iterable[InstructExample]) -> Path:
    """Write instruct examples as JSONL, atomically."""
    return write_text_atomic(path, format_instruct_jsonl(examples))


def read_instruct_jsonl(path: str | Path) -> list[InstructExample]:
    """Read an instruct-JSONL file (strict UTF-8); see `parse_instruct_jsonl`."""
    return parse_instruct_jsonl(read_text(path), source=str(path))


def parse_instruct_jsonl(text: str, source: str = "<string>") -> list[InstructExample]:
    """Parse instruct JSONL: string `prompt` and `completion` are required, other keys go to `extra`."""
    examples = []
    for number, record in _records(text, source):
        _require(record, {"prompt": str, "completion": str}, source, number)
        extra = {k: v for k, v in record.items() if k not in ("prompt", "completion")}
        examples.append(InstructExample(record["prompt"], record["completion"], extra))
    return examples


def _records(text: str, source: str) -> Iterable[tuple[int, dict]]:
    """(line number, JSON object) for each non-blank line.

    Split on "\\n" only: `str.splitlines` would also split at U+2028 and friends, which
    `json.dumps(ensure_ascii=False)` writes unescaped inside strings.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(source, number, f"not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataFormatError(source, number, f"expected a JSON object per line, got {type(record).__name__}")
        yield number, record


def _require(record: dict, keys: dict[str, type], source: str, number: int) -> None:
    for key, kind in keys.items():
        if key not in record:
            raise DataFormatError(source, number, f"missing key {key!r} (a record needs {', '.join(map(repr, keys))})")
    _optional(record, keys, source, number)


def _optional(record: dict, keys: dict[str, type], source: str, number: int) -> None:
    for key, kind in keys.items():
        if key in record and not isinstance(record[key], kind):
            raise DataFormatError(
                source, number, f"key {key!r} must be a {_JSON_NAMES[kind]}, got {type(record[key]).__name__}"
            )


_JSON_NAMES = {str: "string", list: "list", dict: "object"}
