"""Pydantic validation errors as ``field.path: message`` lines that name the allowed keys and the bad value."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError


def format_errors(exc: ValidationError, prefix: str, model: type[BaseModel] | None) -> list[str]:
    """Turn pydantic errors into ``field.path: message`` lines that also list allowed keys."""
    lines = []
    for err in exc.errors():
        path = prefix + ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, err["loc"][:-1]) if model else []
            message = f"unknown key; allowed keys: {', '.join(allowed)}"
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
            message += f" (got {err['input']!r})"  # a whole section as input says nothing the message does not
        if err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model at ``loc``, for unknown-key messages."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        current = _model_in(annotation)
    return sorted(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation such as ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None
