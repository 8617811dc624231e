"""Reading a spec: a YAML path, a YAML/JSON string or a mapping, validated into a ``PipelineSpec``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from canvascraft.errors import SpecError
from canvascraft.spec.components import validate_components
from canvascraft.spec.field_errors import format_errors
from canvascraft.spec.pipeline import PipelineSpec


def parse_spec(data: Any, source: str = "<inline>") -> PipelineSpec:
    """Validate a spec mapping; raise SpecError listing every problem with its field path."""
    if not isinstance(data, dict):
        raise SpecError(f"spec {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"spec {source} is invalid:\n  " + "\n  ".join(format_errors(exc, "", PipelineSpec))) from None
    problems = validate_components(spec)
    if problems:
        raise SpecError(f"spec {source} is invalid:\n  " + "\n  ".join(problems))
    return spec


def read_spec(spec: str | Path | dict[str, Any]) -> tuple[Any, str]:
    """The unvalidated document of a spec given as a YAML path, a YAML/JSON string or a mapping, and its source."""
    if isinstance(spec, dict):
        return spec, "<inline>"
    text_or_path = str(spec)
    path = Path(text_or_path)
    if "\n" not in text_or_path and path.suffix in {".yaml", ".yml", ".json"}:
        if not path.is_file():
            raise SpecError(f"spec file {text_or_path!r} does not exist")
        return _load_yaml(path.read_text(), text_or_path), text_or_path
    return _load_yaml(text_or_path, "<inline>"), "<inline>"


def load_spec(spec: str | Path | dict[str, Any] | PipelineSpec) -> PipelineSpec:
    """Load a spec from a YAML path, a YAML/JSON string, a mapping or an already parsed spec."""
    if isinstance(spec, PipelineSpec):
        return spec
    return parse_spec(*read_spec(spec))


def _load_yaml(text: str, source: str) -> Any:
    """YAML load that reports the file and line of a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"spec {source} is not valid YAML: {exc}") from None
