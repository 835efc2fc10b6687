"""The error types users see: bad data files and bad study configs.

Both are ValueErrors whose message names the place (file and line, or config key) and what
would be valid, so that a user can fix the input without reading our code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class DataFormatError(ValueError):
    """A corpus file that cannot be read as its format says; the message starts with `file:line:`."""

    def __init__(self, source: str | Path, line: int | None, message: str):
        self.source = str(source)
        self.line = line
        self.reason = message
        where = f"{self.source}:{line}" if line is not None else self.source
        super().__init__(f"{where}: {message}")


class ConfigError(ValueError):
    """A study config (YAML or CLI override) that does not validate; names file, key and the fix."""


def nearest(name: str, valid: Iterable[str]) -> str:
    """A 'did you mean' phrase for an unknown name, or a list of the valid names when none is close."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'? (valid: {', '.join(valid)})"
    return f"valid: {', '.join(valid)}"
