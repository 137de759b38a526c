"""Exceptions raised by kdtheory, each carrying a message a user can act on."""

from __future__ import annotations


class KDTheoryError(Exception):
    """Base class of every error kdtheory raises on bad input or bad state."""


class UnknownNameError(KDTheoryError, KeyError):
    """A plugin name (dataset, architecture, objective, hypothesis) is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(KDTheoryError):
    """Two plugins registered the same name."""


class SpecError(KDTheoryError, ValueError):
    """A method spec, option or config value cannot be parsed or is out of range."""


class SchemaError(KDTheoryError, ValueError):
    """A run-store file does not meet the run-store schema (v2, or v1 which is upgraded)."""


class StoreError(KDTheoryError):
    """A run store cannot be used (missing folder, config mismatch, ...)."""


class MissingRequirementError(KDTheoryError):
    """A hypothesis needs methods or variables the run store does not hold."""
