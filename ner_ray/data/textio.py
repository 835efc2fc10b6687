"""Reading corpus files as strict UTF-8 and writing outputs atomically.

A non-UTF-8 byte is reported with its file and line; a leading byte-order mark is removed and noted
(editors on Windows add one; left in place it would become part of the first title or token); an
output file is written to a temporary name beside it and renamed into place, so a failure never
leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ner_ray.data.document import ParseReport
from ner_ray.errors import DataFormatError

BOM = "\ufeff"


def read_text(path: str | Path, report: ParseReport | None = None) -> str:
    """The file's text without a leading byte-order mark (noted in `report` as `bom_removed`); a
    DataFormatError naming file and line when it is not valid UTF-8."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataFormatError(
            path, line, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "re-encode the file as UTF-8"
        ) from None
    if text.startswith(BOM):
        text = text[len(BOM):]
        if report is not None:
            report.note("bom_removed", f"{path}:1: a UTF-8 byte-order mark at the start of the file was removed")
    return text


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` (UTF-8) so that the file is either whole or untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def new_folder(out: str | Path) -> Iterator[Path]:
    """A temporary folder beside `out`, renamed to `out` when the block succeeds (a folder is then either whole or
    absent), removed whatever happens."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield partial
        os.rename(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
