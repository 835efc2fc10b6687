"""Every name a study file can use, mapped to what it stands for: model families, corpus formats, named
corpora, model aliases and Serve engines.

Entries are registered here as lazy "module:attr" strings, imported only on `get`, so that naming a
component costs nothing until it is used and validating a study imports no torch. Adding a family,
format, corpus or alias is one module and one line below. Plugins: the modules named in
$NER_RAY_PLUGINS (comma-separated) are imported before any lookup and may register their own entries.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from ner_ray.errors import nearest

T = TypeVar("T")
PLUGINS_ENV = "NER_RAY_PLUGINS"
_plugins_loaded: set[str] = set()


def load_plugins() -> None:
    """Import each module of $NER_RAY_PLUGINS once (each registers its components on import)."""
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module not in _plugins_loaded:
            _plugins_loaded.add(module)  # before the import: a plugin that looks a name up does not recurse
            try:
                importlib.import_module(module)
            except ImportError as err:
                _plugins_loaded.discard(module)
                raise ImportError(f"{PLUGINS_ENV} names the module {module!r}, which cannot be imported: {err}") from err


class Registry(Generic[T]):
    """Names of one kind of component (e.g. "model family") mapped to their factories."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._extras: dict[str, str] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, factory: T | str, *, extra: str = "") -> T | str: ...

    def register(self, name: str, factory: Any = None, *, extra: str = "") -> Any:
        """Register `factory` under `name`; with no factory, return a decorator that registers its target.

        A string factory must read "module:attr" and is imported on the first `get`. `extra` names the
        ner_ray extra (e.g. "gpu") whose install fixes a failed import, for the error message.
        """
        if factory is None:
            def decorator(target: T) -> T:
                self.register(name, target, extra=extra)
                return target

            return decorator
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            if not module or not attr:
                raise ValueError(f"lazy {self.kind} '{name}' must be given as 'module:attr', got {factory!r}")
        self._entries[name] = factory
        if extra:
            self._extras[name] = extra
        return factory

    def unregister(self, name: str) -> None:
        """Remove `name` (a plugin's entry, say); unknown names are a ValueError listing the valid ones."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} '{name}'; {nearest(name, self._entries)}")
        del self._entries[name]
        self._extras.pop(name, None)

    def get(self, name: str) -> T:
        """The factory registered as `name`, importing a lazy entry; unknown names list the valid ones."""
        load_plugins()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} '{name}'; {nearest(name, self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._import(name, entry)
            self._entries[name] = entry  # later gets skip the import machinery
        return entry

    def names(self) -> list[str]:
        """The registered names, sorted."""
        load_plugins()
        return sorted(self._entries)

    def unknown(self, name: str) -> str:
        """'' when `name` is registered, else why not: the phrase a validation error shows."""
        return "" if name in self else f"unknown {self.kind} '{name}'; {nearest(name, self.names())}"

    def is_loaded(self, name: str) -> bool:
        """Whether `name` is registered and its factory already imported (lazy entries are not until `get`)."""
        return name in self._entries and not isinstance(self._entries[name], str)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    def _import(self, name: str, target: str) -> T:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            hint = f"; install it with pip install 'ner_ray[{self._extras[name]}]'" if name in self._extras else ""
            raise ImportError(f"{self.kind} '{name}' needs the module '{err.name}', which is not installed{hint}") from err
        try:
            return getattr(module, attr)
        except AttributeError as err:
            # A registration that points nowhere is our bug, but the message should still say where.
            raise ImportError(f"{self.kind} '{name}': module '{module_name}' has no attribute '{attr}'") from err


# Model families (`model.family`): classes following ner_ray.families.base.Family.
FAMILIES: Registry[Any] = Registry("model family")
FAMILIES.register("token_cls", "ner_ray.families.token_cls:TokenClassification")
FAMILIES.register("crf", "ner_ray.families.crf:CrfTagging")
FAMILIES.register("multitask", "ner_ray.families.multitask:Multitask")
FAMILIES.register("fusion", "ner_ray.families.fusion:FusionTagging")
FAMILIES.register("span_gen", "ner_ray.families.span_gen:SpanGeneration")
FAMILIES.register("instruct", "ner_ray.families.instruct:Instruct")

# Corpus formats (`data.format`, `--format`): readers called as read(path, lenient=..., report=...).
# bigbio reads a dataset (a `save_to_disk` folder or a hub name) rather than one file per split.
FORMATS: Registry[Any] = Registry("corpus format")
FORMATS.register("pubtator", "ner_ray.data.pubtator:read_pubtator")
FORMATS.register("bioc", "ner_ray.data.bioc:read_bioc")
FORMATS.register("bio", "ner_ray.data.conll:read_bio")
FORMATS.register("span_jsonl", "ner_ray.data.jsonl:read_span_jsonl")
FORMATS.register("bigbio", "ner_ray.data.bigbio:load_bigbio")

# Named corpora (`data.corpus`): ner_ray.data.corpora.CorpusSpec objects.
CORPORA: Registry[Any] = Registry("corpus")
CORPORA.register("bc5cdr", "ner_ray.data.corpora:BC5CDR")
CORPORA.register("ncbi_disease", "ner_ray.data.corpora:NCBI_DISEASE")
CORPORA.register("demo", "ner_ray.data.corpora:DEMO")

# Model aliases (`model.name`): ner_ray.families.models.ModelAlias objects; any other name is a path or hub id.
MODELS: Registry[Any] = Registry("model alias")
MODELS.register("minilm-l6", "ner_ray.families.models:MINILM_L6")
MODELS.register("smollm2-135m", "ner_ray.families.models:SMOLLM2_135M")
MODELS.register("biobert", "ner_ray.families.models:BIOBERT")
MODELS.register("pubmedbert", "ner_ray.families.models:PUBMEDBERT")
MODELS.register("roberta-large", "ner_ray.families.models:ROBERTA_LARGE")
MODELS.register("openbiollm-8b", "ner_ray.families.models:OPENBIOLLM_8B")
MODELS.register("llama-3.2-3b-instruct", "ner_ray.families.models:LLAMA_32_3B_INSTRUCT")
MODELS.register("llama-3.1-8b", "ner_ray.families.models:LLAMA_31_8B")

# Serve engines (`serve.engine`, `ner-ray serve --engine`): classes following ner_ray.serve.engines.Engine.
ENGINES: Registry[Any] = Registry("serve engine")
ENGINES.register("hf", "ner_ray.serve.engines:HfEngine")
ENGINES.register("vllm", "ner_ray.serve.vllm_engine:VllmEngine")
