"""Plain-dict registries filled by a decorator and by entry points (Strategy + Factory)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from canvascraft.errors import CanvasCraftError, ParameterError, UnknownComponentError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def name_and_params(component: Any) -> tuple[str, dict[str, Any]]:
    """``(name, params)`` of a spec component given as a ``ComponentSpec`` or a plain mapping."""
    if isinstance(component, dict):
        return component["name"], component.get("params") or {}
    return component.name, component.params


def validate_params(model: type[M], params: Any, kind: str, name: str) -> M:
    """Validate component params with its pydantic model; raise ParameterError naming each field and value."""
    try:
        return model.model_validate(params or {})
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}"
            + ("" if e["type"] == "missing" or not e["loc"] else f" (got {e.get('input')!r})")
            for e in exc.errors()
        )
        raise ParameterError(f"{kind} {name!r} has invalid params: {details}") from None


class Registry(Generic[T]):
    """Maps a component name to its class; third-party packages add to it via an entry-point group."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: ``@BRUSHES.register("resize")``."""

        def decorate(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise CanvasCraftError(f"{self.kind} {name!r} is already registered by {existing!r}")
            self._items[name] = obj
            return obj

        return decorate

    def load_entry_points(self, *, force: bool = False) -> None:
        """Import every ``[project.entry-points."<group>"]`` target once (or again with force)."""
        if self._entry_points_loaded and not force:
            return
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                self._items[ep.name] = ep.load()
            except Exception as exc:  # a broken plug-in must name itself, not crash the lookup
                raise CanvasCraftError(
                    f"{self.kind} entry point {ep.name!r} ({ep.value}) in group {self.group!r} failed to load: {exc}"
                ) from exc
        self._entry_points_loaded = True

    def get(self, name: str) -> T:
        """Return the component called ``name`` or raise with the allowed names."""
        if name not in self._items:
            self.load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownComponentError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        """Sorted names of every registered component, entry points included."""
        self.load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self.load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
