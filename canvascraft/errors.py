"""Domain exceptions: one root, each message names the object, the field and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable


class CanvasCraftError(Exception):
    """Root of every error CanvasCraft raises on purpose."""


class SpecError(CanvasCraftError):
    """A pipeline spec (or a component built from it) is invalid."""


class UnknownComponentError(SpecError):
    """A registry was asked for a name it does not hold."""

    def __init__(self, kind: str, name: str, allowed: Iterable[str]) -> None:
        self.kind, self.name, self.allowed = kind, name, sorted(allowed)
        super().__init__(f"unknown {kind} {name!r}; allowed values: {', '.join(self.allowed) or '(none registered)'}")


class ParameterError(SpecError):
    """A component parameter is missing, of the wrong type or out of range."""


class SettingsError(CanvasCraftError):
    """Settings or the local stack are not usable as configured."""


class StorageError(CanvasCraftError):
    """An object store could not be read or written."""


class IngestError(CanvasCraftError):
    """Ingest could not produce a usable snapshot."""


class DatasetUnavailableError(CanvasCraftError):
    """A built-in dataset's files are not installed on this machine."""


class StackError(CanvasCraftError):
    """A local service of the embedded stack failed to start, stop or answer."""


class DriftError(CanvasCraftError):
    """A drift check cannot run: no incoming prefix, no champion, no reference table, mismatched columns."""
