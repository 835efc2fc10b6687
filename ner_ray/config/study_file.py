"""Study files: YAML in, one validated StudyConfig per experiment out, errors pointing at the line.

The top-level keys of a study file are global defaults; an optional `experiments:` list of
`{name: ..., <block>: {...}}` overrides them per experiment (deep merge). `ner-ray config check FILE`
prints `check_study(FILE)`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ner_ray.config import diagnostics, keys
from ner_ray.config.schema import StudyConfig, study_keys
from ner_ray.errors import ConfigError, nearest

Lines = dict[tuple[Any, ...], int]  # path in the YAML document -> 1-based line of its key


class StudyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads `1e-5` as a float (YAML 1.1 wants `1.0e-5`; users write `1e-5`)."""


_FLOAT = (
    r"^[-+]?(?:\d[\d_]*)?\.\d[\d_]*(?:[eE][-+]?\d+)?$"  # .5  1.5  1.5e-3
    r"|^[-+]?\d[\d_]*\.[\d_]*(?:[eE][-+]?\d+)?$"  # 1.  1.e3
    r"|^[-+]?\d[\d_]*[eE][-+]?\d+$"  # 1e-5
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)
StudyLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_FLOAT), list("-+0123456789."))


@dataclass(frozen=True)
class Study:
    """A loaded study: its name, global defaults, and every experiment fully resolved and validated."""

    name: str
    defaults: StudyConfig
    experiments: dict[str, StudyConfig]
    path: Path | None = None
    overrides: tuple[str, ...] = ()

    def resolve(self, name: str) -> StudyConfig:
        """The resolved config of experiment `name`; unknown names list the valid ones."""
        if name not in self.experiments:
            raise ConfigError(f"study '{self.name}' has no experiment '{name}'; {nearest(name, self.experiments)}")
        return self.experiments[name]


def line_index(text: str, source: str) -> Lines:
    """The line of every key and list item in a YAML text; a key given twice in one mapping is an error."""
    lines: Lines = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = path + (key_node.value,)
                if child in lines:
                    raise ConfigError(
                        f"{source}:{key_node.start_mark.line + 1}: {keys.join_path(child)}: duplicate key "
                        f"(first at line {lines[child]}); YAML would keep only the last one")
                lines[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


def read_study_yaml(path: str | Path) -> tuple[dict[str, Any], Lines]:
    """A study file's data and key lines; missing files, bad bytes and bad YAML are ConfigErrors with file:line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such study file") from None
    except UnicodeDecodeError as err:
        line = Path(path).read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigError(f"{source}:{line}: not UTF-8 text ({err.reason})") from None
    try:
        lines = line_index(text, source)
        data = yaml.load(text, Loader=StudyLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        started = f" ({err.context} at line {err.context_mark.line + 1})" if err.context and err.context_mark else ""
        raise ConfigError(f"{where}: invalid YAML: {err.problem or err.context}{started}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: invalid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a study file is a mapping of blocks (data, model, train, ...), got {type(data).__name__}")
    return data, lines


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """`key=value` -> (path, value); the value is read as YAML, so `null`, `3e-4`, `[a, b]`, `{choice: [8, 16]}` work."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. train.lr=3e-4 or model.lora=null")
    try:
        path = keys.split_key(key, StudyConfig)
        value = yaml.load(value_text, Loader=StudyLoader)
    except ConfigError as err:
        raise ConfigError(f"override {text!r}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({getattr(err, 'problem', err)})") from None
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[tuple[str, ...], str]:
    """Set dotted `key=value` overrides in `raw` (in place); returns path -> override text, for messages."""
    applied: dict[tuple[str, ...], str] = {}
    for text in overrides:
        path, value = parse_override(text)
        keys.set_path(raw, path, value)
        applied[path] = text
    return applied


def load_study(path: str | Path, overrides: Iterable[str] = ()) -> Study:
    """Load, merge and validate a study file; every experiment is checked before this returns.

    Overrides apply to the global defaults before the experiments merge, so a value an experiment
    sets itself wins over the command line (its stanza is what makes it that experiment).
    """
    source, overrides = str(path), tuple(overrides)
    raw, lines = read_study_yaml(path)
    stanzas = raw.pop("experiments", None)
    top_level = [*StudyConfig.model_fields, "experiments"]
    for key in raw:
        if key not in top_level:
            raise ConfigError(f"{source}:{lines.get((key,), '?')}: {key}: unknown key; {nearest(str(key), top_level)}")
    raw.setdefault("name", Path(path).stem)
    set_by = apply_overrides(raw, overrides)
    defaults = _validate(raw, _locator(source, lines, set_by, None), "")
    if stanzas is None:
        return Study(defaults.name, defaults, {defaults.name: defaults}, Path(path), overrides)

    where = f"{source}:{lines.get(('experiments',), '?')}"
    if not isinstance(stanzas, list) or not stanzas:
        raise ConfigError(f"{where}: experiments: expected a non-empty list of {{name: ..., <block>: {{...}}}}")
    experiments: dict[str, StudyConfig] = {}
    locators: dict[str, diagnostics.Locator] = {}
    errors: list[str] = []
    for i, stanza in enumerate(stanzas):
        at = f"{source}:{lines[('experiments', i)]}"
        if not isinstance(stanza, dict) or not isinstance(stanza.get("name"), str) or not stanza["name"]:
            errors.append(f"{at}: experiments[{i}]: each experiment is a mapping with a name, "
                          "e.g. {name: lora-r8, model: {lora: {r: 8}}}")
            continue
        name = stanza["name"]
        if name in experiments:
            errors.append(f"{at}: experiments[{i}]: experiment name '{name}' is used twice")
            continue
        locators[name] = _locator(source, lines, set_by, ("experiments", i))
        try:
            experiments[name] = _validate(keys.deep_merge(raw, stanza), locators[name], f"experiment '{name}': ")
        except ConfigError as err:
            errors.append(str(err))
    if not errors:  # fusion names other experiments, which must be valid themselves first
        errors = _fusion_problems(experiments, locators)
    if errors:
        raise ConfigError("\n".join(errors))
    return Study(defaults.name, defaults, experiments, Path(path), overrides)


def check_study(path: str | Path, overrides: Iterable[str] = ()) -> str:
    """A summary of a valid study: its defaults, search space and each experiment's differences from the defaults."""
    study = load_study(path, overrides)
    base = study.defaults.to_flat_dict()
    schema = StudyConfig().to_flat_dict()
    repeats = sorted({c.train.repeats for c in study.experiments.values()})
    each = f"{repeats[0]} repeat(s) each" if len(repeats) == 1 else "repeats vary (train.repeats)"
    out = [f"study '{study.name}' ({path}): {len(study.experiments)} experiment(s), {each}"]
    out.append("defaults (differing from the schema): " + (_diff(schema, base) or "none"))
    for name, config in study.experiments.items():
        out.append(f"  {name}: {_diff(base, config.to_flat_dict()) or 'as the defaults'}")
        if config.search:
            spaces = "; ".join(f"{k} {d.kind} {json.dumps(d.args)}" for k, d in config.search.items())
            out.append(f"    search ({config.tune.searcher.name}, {config.tune.num_samples} samples, "
                       f"{config.tune.scheduler.name}): {spaces}")
    return "\n".join(out)


def _validate(raw: dict[str, Any], locate: diagnostics.Locator, context: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as err:
        diagnostics.raise_config_error(err, raw, locate, context, study_keys())


def _locator(source: str, lines: Lines, set_by: dict[tuple[str, ...], str], stanza: tuple[Any, ...] | None) -> diagnostics.Locator:
    """Where a config path was written: the experiment's stanza, then an override, then the global defaults."""

    def locate(path: tuple[Any, ...]) -> str:
        for n in range(len(path), -1, -1):
            prefix = path[:n]
            if stanza is not None and stanza + prefix in lines:
                return f"{source}:{lines[stanza + prefix]}"
            if prefix in set_by:
                return f"{source}: override {set_by[prefix]!r}"
            if n and prefix in lines:
                return f"{source}:{lines[prefix]}"
        return source

    return locate


def _fusion_problems(experiments: dict[str, StudyConfig], locators: dict[str, diagnostics.Locator]) -> list[str]:
    """Fusion adapters named without a '/' must be LoRA experiments of this study (paths and hub ids are checked at run time)."""
    problems = []
    for name, config in experiments.items():
        fusion = config.model.fusion if config.model.family == "fusion" else None
        for j, adapter in enumerate(fusion.adapters if fusion else []):
            others = [n for n in experiments if n != name]
            where = f"{locators[name](('model', 'fusion', 'adapters', j))}: experiment '{name}': model.fusion.adapters[{j}]"
            if "/" in adapter:
                continue
            if adapter not in others:
                hint = nearest(adapter, others) if others else "the study has no other experiment"
                problems.append(f"{where}: '{adapter}' is not another experiment of this study; {hint} "
                                "(or give an adapter path containing '/')")
            elif experiments[adapter].model.lora is None:
                problems.append(f"{where}: experiment '{adapter}' trains no LoRA adapter (its model.lora is null)")
    return problems


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    """`key=value` for what `after` changes; a block that was null counts from its own defaults."""
    out = []
    for key, value in after.items():
        if key == "name":
            continue
        if key in before:
            if before[key] != value:
                out.append(f"{key}={_show(value)}")
            continue
        enabled = next((a for a in _ancestors(key) if before.get(a, ...) is None), None)
        if enabled and f"{enabled}=on" not in out:
            out.append(f"{enabled}=on")
        if enabled is None or _block_defaults().get(key, ...) != value:
            out.append(f"{key}={_show(value)}")
    dropped = [k for k in before if k not in after and not any(a in after for a in _ancestors(k))
               and not any(a.startswith(k + ".") for a in after)]
    return ", ".join(out + [f"{k}=null" for k in dropped])


def _ancestors(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


@functools.cache
def _block_defaults() -> dict[str, Any]:
    """The flat defaults of every block that can be built from defaults alone (e.g. model.lora when null in the schema)."""
    flat: dict[str, Any] = {}
    for key in study_keys():
        block = keys.block_at(StudyConfig, key)
        if block is not None:
            try:
                flat.update(keys.flatten(block(), key + "."))
            except ValidationError:  # a block with required fields (fusion) has no defaults
                pass
    return flat


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
