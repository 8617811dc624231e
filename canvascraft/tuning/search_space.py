"""Spec search-space dimensions -> Ray Tune sampling domains."""

from __future__ import annotations

from typing import Any

from ray import tune

from canvascraft.errors import SpecError
from canvascraft.spec import SearchDimension


def to_domain(name: str, dim: SearchDimension) -> Any:
    """One dimension as a ``ray.tune`` domain (choice, uniform, loguniform, randint)."""
    if dim.type == "choice":
        if not dim.values:
            raise SpecError(f"trainer.search_space.{name}.values: a 'choice' needs a non-empty list of values")
        return tune.choice(dim.values)
    if dim.low is None or dim.high is None or not dim.low < dim.high:
        raise SpecError(
            f"trainer.search_space.{name}: type {dim.type!r} needs low < high (got low={dim.low}, high={dim.high})"
        )
    if dim.type == "uniform":
        return tune.uniform(dim.low, dim.high)
    if dim.type == "loguniform":
        if dim.low <= 0:
            raise SpecError(f"trainer.search_space.{name}.low: loguniform needs low > 0 (got {dim.low})")
        return tune.loguniform(dim.low, dim.high)
    return tune.randint(int(dim.low), int(dim.high))


def to_param_space(search_space: dict[str, SearchDimension]) -> dict[str, Any]:
    """The whole search space as a Tune ``param_space`` fragment."""
    return {name: to_domain(name, dim) for name, dim in search_space.items()}
