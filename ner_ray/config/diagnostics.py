"""Pydantic validation errors rewritten for people: `file:line: dotted.key: what is wrong, got X`.

Pure functions over `ValidationError.errors()` and the raw data that was validated; where a key
came from (a YAML line, a CLI override) is asked of a `locate` callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from ner_ray.config import keys
from ner_ray.errors import ConfigError, nearest

ConfigPath = tuple[Any, ...]
Locator = Callable[[ConfigPath], "str | None"]  # a config path -> "file:line" (or None: unknown)


def fail_at(path: ConfigPath, message: str) -> NoReturn:
    """Fail a model validator at `path` of the config (pydantic reports model-level errors at the root); `describe`
    names that path."""
    raise PydanticCustomError("config_path", "{message}", {"path": path, "message": message})


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping of keys", "model_attributes_type": "a mapping of keys",
    "none_required": "null",
}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}
_SEARCH_DOMAIN_KINDS = ("loguniform", "uniform", "randint", "choice", "grid")


def data_path(loc: tuple[Any, ...], data: Any) -> ConfigPath:
    """The part of a pydantic `loc` that indexes the validated data (drops union tags like 'list[str]')."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        path.append(part)
    return tuple(path)


def error_path(error: dict[str, Any], data: Any) -> ConfigPath:
    """Where one pydantic error points in the data; a missing key is named although the data lacks it."""
    ctx = error.get("ctx") or {}
    if error["type"] == "config_path":
        return tuple(ctx["path"])
    if error["type"] == "missing":
        return data_path(error["loc"][:-1], data) + tuple(error["loc"][-1:])
    return data_path(error["loc"], data)


def describe(error: dict[str, Any], path: ConfigPath, valid_keys: tuple[str, ...] = ()) -> str:
    """What is wrong, in words: 'expected an integer, got 'three'' (the key is not part of it)."""
    what, got = _what(error, path, valid_keys)
    return f"{what}, got {got}" if got else what


def _what(error: dict[str, Any], path: ConfigPath, valid_keys: tuple[str, ...] = ()) -> tuple[str, str]:
    """(what was expected or is wrong, the offending input or '' when the message says it already);
    `valid_keys`: the schema's dotted keys, for the 'did you mean' of an unknown key."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        if len(path) == 3 and path[0] == "search":
            return f"unknown key; {nearest(str(path[-1]), _SEARCH_DOMAIN_KINDS)}", ""
        return f"unknown key; {keys.key_hint(keys.join_path(path), valid_keys)}", ""
    if kind == "missing":
        return "required key missing", ""
    if kind in ("value_error", "assertion_error", "config_path"):
        return error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, "), ""
    if kind in _EXPECTED:
        what = f"expected {_EXPECTED[kind]}"
    elif kind == "literal_error":
        what = f"expected one of {ctx.get('expected', '?')}"
    elif kind in _BOUNDS:
        bound, sign = _BOUNDS[kind]
        what = f"must be {sign} {_number(ctx.get(bound))}"
    else:
        what = error["msg"][:1].lower() + error["msg"][1:]
    return what, _show(error.get("input"))


def error_lines(err: ValidationError, data: Any, locate: Locator | None = None, context: str = "",
                valid_keys: tuple[str, ...] = ()) -> list[str]:
    """One line per wrong key; the alternatives of a union that all failed share a line, joined by 'or'."""
    grouped: dict[ConfigPath, list[tuple[str, str]]] = {}
    for error in err.errors():
        path = error_path(error, data)
        what = _what(error, path, valid_keys)
        if what not in grouped.setdefault(path, []):
            grouped[path].append(what)
    lines = []
    for path, whats in sorted(grouped.items(), key=lambda item: _line_of(locate(item[0]) if locate else None)):
        where = locate(path) if locate else None
        key = keys.join_path(path)
        body = f"{context}{key}: " if key else context
        alternatives = list(dict.fromkeys(w for w, _ in whats))
        text = " or ".join([alternatives[0], *(w.removeprefix("expected ") for w in alternatives[1:])])
        got = whats[-1][1]
        lines.append(f"{where + ': ' if where else ''}{body}{text}{', got ' + got if got else ''}")
    return lines


def raise_config_error(err: ValidationError, data: Any, locate: Locator | None = None, context: str = "",
                       valid_keys: tuple[str, ...] = ()) -> NoReturn:
    """Raise the ConfigError for `err` (all its lines, so one run shows every mistake)."""
    raise ConfigError("\n".join(error_lines(err, data, locate, context, valid_keys))) from None


def _line_of(where: str | None) -> float:
    """The line number in a 'file:line' location, to list errors in file order (unknown lines last)."""
    tail = (where or "").rpartition(":")[2]
    return int(tail) if tail.isdigit() else float("inf")


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
