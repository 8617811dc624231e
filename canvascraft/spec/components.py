"""Registry checks of a parsed spec: every brush, palette and trainer name exists and its params validate."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from canvascraft.errors import UnknownComponentError
from canvascraft.spec.base import ComponentSpec
from canvascraft.spec.field_errors import format_errors
from canvascraft.spec.pipeline import PipelineSpec


def validate_components(spec: PipelineSpec) -> list[str]:
    """Check every component name and its params against its registry; return error lines."""
    # The registries import torch/PIL code: load them only when a spec is checked, not when the spec is imported.
    from canvascraft.brushes import BRUSHES
    from canvascraft.palettes import PALETTES

    problems: list[str] = []
    sections: list[tuple[str, Any, list[ComponentSpec]]] = [
        ("brushes", BRUSHES, spec.brushes),
        ("features.palettes", PALETTES, spec.features.palettes),
    ]
    problems.extend(_validate_trainer(spec))
    if spec.tuner.workers_per_trial > 1:
        from canvascraft.tuning.resources import check_workers_per_trial

        problems.extend(check_workers_per_trial(spec))
    for section, registry, components in sections:
        for index, component in enumerate(components):
            where = f"{section}[{index}]"
            try:
                cls = registry.get(component.name)
            except UnknownComponentError as exc:
                problems.append(f"{where}.name: {exc}")
                continue
            try:
                cls.model_validate(component.params)
            except ValidationError as exc:
                problems.extend(format_errors(exc, f"{where}.params.", cls))
    return problems


def _validate_trainer(spec: PipelineSpec) -> list[str]:
    """The trainer name, its params (its own config model) and that every search dimension is a param."""
    if spec.trainer is None:
        return []
    from canvascraft.trainers import TRAINERS

    try:
        cls = TRAINERS.get(spec.trainer.name)
    except UnknownComponentError as exc:
        return [f"trainer.name: {exc}"]
    fields = cls.config_cls.model_fields
    problems = [
        f"trainer.search_space.{key}: not a parameter of trainer {spec.trainer.name!r}; "
        f"allowed keys: {', '.join(sorted(fields))}"
        for key in spec.trainer.search_space
        if key not in fields
    ]
    try:
        cls.config_cls.model_validate(spec.trainer.params)
    except ValidationError as exc:
        problems.extend(format_errors(exc, "trainer.params.", cls.config_cls))
    return problems
