"""Dotted keys over a config schema (`train.lr`, `model.lora.r`, `search.train.lr`).

Lists the keys a schema class has, splits a dotted key into a path, suggests the nearest valid key,
and reads, sets, merges and flattens the raw nested dicts that YAML files and overrides produce. The
schema class is passed in (ner_ray.config.schema.StudyConfig), so this module imports no schema.
"""

from __future__ import annotations

import copy
import functools
import types
import typing
from typing import Any

from pydantic import BaseModel

from ner_ray.errors import ConfigError, nearest

TUNABLE_BLOCKS = ("data", "model", "train")
UNTUNABLE = ("data.train_split", "data.dev_split", "data.test_split")
_DICT_FIELDS = ("search",)  # fields whose keys are data (themselves dotted keys), not schema


def block_type(annotation: Any) -> type[BaseModel] | None:
    """The config block class an annotation holds (`LoraConfig | None` -> LoraConfig), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        blocks = [b for b in map(block_type, typing.get_args(annotation)) if b is not None]
        return blocks[0] if len(blocks) == 1 else None
    return None


@functools.cache
def schema_keys(root: type[BaseModel]) -> tuple[str, ...]:
    """Every dotted key of the schema `root`, blocks and leaves, in schema order."""
    out: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            out.append(prefix + name)
            block = block_type(info.annotation)
            if block is not None:
                walk(block, f"{prefix}{name}.")

    walk(root, "")
    return tuple(out)


def block_at(root: type[BaseModel], dotted: str) -> type[BaseModel] | None:
    """The block class a dotted key holds (`model.lora` -> LoraConfig), or None for a leaf."""
    model: type[BaseModel] | None = root
    for part in dotted.split("."):
        info = model.model_fields.get(part) if model is not None else None
        if info is None:
            return None
        model = block_type(info.annotation)
    return model


@functools.cache
def tunable_keys(root: type[BaseModel]) -> tuple[str, ...]:
    """The keys a search space may name: those under data, model and train, but for the splits (which data
    is trained, selected on and scored must not vary between trials)."""
    return tuple(k for k in schema_keys(root) if k.split(".")[0] in TUNABLE_BLOCKS and "." in k and k not in UNTUNABLE)


def key_hint(dotted: str, valid: tuple[str, ...]) -> str:
    """A 'did you mean' phrase for an unknown dotted key, drawn from the siblings of its first bad part."""
    parts = dotted.split(".")
    depth = 0
    while depth < len(parts) and ".".join(parts[: depth + 1]) in _prefixes(valid):
        depth += 1
    parent = ".".join(parts[:depth])
    siblings = sorted(k for k in _prefixes(valid) if k.rpartition(".")[0] == parent)
    return nearest(dotted if depth == len(parts) - 1 else ".".join(parts[: depth + 1]), siblings)


def _prefixes(valid: tuple[str, ...]) -> set[str]:
    return {".".join(k.split(".")[: i + 1]) for k in valid for i in range(k.count(".") + 1)}


def tunable_key_problem(key: str, root: type[BaseModel]) -> str:
    """Why `key` cannot be searched over ('' when it can)."""
    if key in tunable_keys(root):
        return ""
    if key in UNTUNABLE:
        return f"'{key}' is not searchable: every trial trains, selects and scores on the same splits"
    return (f"'{key}' is not a tunable key (search keys are dotted keys under {', '.join(TUNABLE_BLOCKS)}); "
            f"{key_hint(key, tunable_keys(root))}")


def split_key(dotted: str, root: type[BaseModel]) -> tuple[str, ...]:
    """The path of a dotted key in a raw config dict; `search.train.lr` -> ('search', 'train.lr')."""
    for field in _DICT_FIELDS:
        if dotted.startswith(field + ".") and len(dotted) > len(field) + 1:
            return (field, dotted[len(field) + 1 :])
    if dotted not in schema_keys(root):
        raise ConfigError(f"{dotted}: unknown key; {key_hint(dotted, schema_keys(root))}")
    return tuple(dotted.split("."))


def join_path(path: tuple[Any, ...]) -> str:
    """A path for messages: ('model', 'lora', 'r') -> 'model.lora.r', list indices as [i]."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def set_path(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `raw[path]`, creating missing or null blocks on the way (so model.lora.r=16 enables LoRA)."""
    node = raw
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def deep_merge(base: Any, override: Any) -> Any:
    """`override` on top of `base`: mappings merge key by key, anything else (lists, null) replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy_tree(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy_tree(value)
        return merged
    return copy_tree(override)


def copy_tree(value: Any) -> Any:
    """A deep copy of a raw config tree, so merges and updates never alias the caller's lists."""
    return copy.deepcopy(value)


def flatten(config: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every leaf of a config; a null block is one key; dict fields get one key per entry."""
    flat: dict[str, Any] = {}
    for name, info in type(config).model_fields.items():
        value = getattr(config, name)
        key = prefix + name
        if isinstance(value, BaseModel) and block_type(info.annotation) is not None:
            flat.update(flatten(value, key + "."))
        elif name in _DICT_FIELDS and not prefix:
            for entry, domain in value.items():
                flat[f"{key}.{entry}"] = domain.model_dump(exclude_none=True)
        else:
            flat[key] = copy_tree(value)
    return flat
