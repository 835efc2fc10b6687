"""Reading corpus files as strict UTF-8 and writing outputs atomically.

A non-UTF-8 byte is reported with its file and line; an output file is written to a temporary
name beside it and renamed into place, so a failure never leaves a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ner_ray.errors import DataFormatError


def read_text(path: str | Path) -> str:
    """The file's text; a DataFormatError naming file and line when it is not valid UTF-8."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataFormatError(
            path, line, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "re-encode the file as UTF-8"
        ) from None


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
