"""A small name → factory registry (model families, corpora, engines, model aliases).

Entries may be lazy, registered as a "module:attr" string that is imported only on `get`, so that
naming a heavy component (vLLM, DeepSpeed) costs nothing until it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from ner_ray.errors import nearest

T = TypeVar("T")


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

    def get(self, name: str) -> T:
        """The factory registered as `name`, importing a lazy entry; unknown names list the valid ones."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} '{name}'; {nearest(name, self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._import(name, entry)
            self._entries[name] = entry  # later gets skip the import machinery
        return entry

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def is_loaded(self, name: str) -> bool:
        """Whether `name` is registered and its factory already imported (lazy entries are not until `get`)."""
        return name in self._entries and not isinstance(self._entries[name], str)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

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
