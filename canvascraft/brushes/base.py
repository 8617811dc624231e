"""Brush contract (the seeds' ``IPreProcessingBrush``), the brush registry and the composable ``BrushStack``."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torchvision.transforms import v2

from canvascraft.errors import CanvasCraftError
from canvascraft.hashing import stable_hash
from canvascraft.registry import Registry, name_and_params, validate_params

BRUSH_ENTRY_POINT_GROUP = "canvascraft.brushes"
# Random brushes draw from torch's one process-wide default generator (torchvision v2 takes no generator), so
# seeding it and drawing must not interleave with another thread's: pieces preprocessed on a thread pool would
# otherwise take each other's seeds. Held only while a random stack runs; deterministic stacks never wait.
_GLOBAL_RNG_LOCK = threading.Lock()


class Brush(BaseModel):
    """A preprocessing step: validated parameters plus a torchvision v2 transform built from them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str] = ""
    random: ClassVar[bool] = False  # True when the transform draws from torch's RNG
    # Code version: bump it when a change to the brush changes its output for the same params. It is part of the
    # resolved config (when above 1, so keys of brushes never bumped stay as they were), hence of the stack key, so
    # the pieces and shard sets of the old code are not reused.
    version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        version = cls.__dict__.get("version", cls.version)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise CanvasCraftError(f"brush class {cls.__qualname__}: version must be an int >= 1, got {version!r}")

    def config(self) -> dict[str, Any]:
        """The resolved brush as plain data: name, params (defaults filled in) and its code version when above 1."""
        entry: dict[str, Any] = {"name": self.name, "params": self.model_dump(mode="json")}
        if self.version != 1:
            entry["version"] = self.version
        return entry

    def transform(self) -> torch.nn.Module:
        """The torchvision ``v2`` transform this brush applies to a float CHW image tensor in [0, 1]."""
        raise NotImplementedError

    def __add__(self, other: Brush | BrushStack) -> BrushStack:
        return BrushStack((self,)) + other


BRUSHES: Registry[type[Brush]] = Registry("brush", BRUSH_ENTRY_POINT_GROUP)


def build_brush(name: str, params: dict[str, Any] | None = None) -> Brush:
    """Factory: look a brush up by name and validate its parameters (errors name the field and range)."""
    return validate_params(BRUSHES.get(name), params, "brush", name)


class BrushStack:
    """An ordered, immutable composition of brushes; ``a + b`` appends, order is kept."""

    def __init__(self, brushes: Iterable[Brush] = ()) -> None:
        self.brushes: tuple[Brush, ...] = tuple(brushes)
        self._compose = v2.Compose([b.transform() for b in self.brushes]) if self.brushes else v2.Identity()
        # the brushes before the first random one draw nothing: they run outside the RNG lock, in parallel
        first_random = next((i for i, b in enumerate(self.brushes) if b.random), len(self.brushes))
        self._deterministic_head = v2.Compose([b.transform() for b in self.brushes[:first_random]] or [v2.Identity()])
        self._random_tail = v2.Compose([b.transform() for b in self.brushes[first_random:]] or [v2.Identity()])

    @classmethod
    def from_spec(cls, components: Sequence[Any]) -> BrushStack:
        """Build from spec entries (objects or mappings with ``name`` and ``params``)."""
        return cls(build_brush(*name_and_params(component)) for component in components)

    def __add__(self, other: Brush | BrushStack) -> BrushStack:
        extra = other.brushes if isinstance(other, BrushStack) else (other,)
        return BrushStack(self.brushes + tuple(extra))

    def __len__(self) -> int:
        return len(self.brushes)

    def __repr__(self) -> str:
        return "BrushStack(" + " + ".join(f"{b.name}{b.model_dump()}" for b in self.brushes) + ")"

    def config(self) -> list[dict[str, Any]]:
        """The resolved stack (defaults filled in) as plain data: logged with runs and hashed."""
        return [b.config() for b in self.brushes]

    def stack_hash(self) -> str:
        """Content hash of the resolved stack: part of the preprocessed-shard cache key."""
        return stable_hash(self.config())

    def __call__(self, image: torch.Tensor, *, seed: int, key: str) -> torch.Tensor:
        """Apply the stack to one float CHW image; random brushes draw from a generator seeded by (seed, key).

        Seeding per image (not per batch) makes the output independent of order, batching and workers; a lock
        makes it independent of other threads applying random stacks at the same time.
        """
        if not any(b.random for b in self.brushes):
            return self._compose(image)
        image_seed = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little")
        image = self._deterministic_head(image)
        with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(image_seed)
            return self._random_tail(image)
