"""Name registries with "did you mean" errors, in the spirit of xarray's backend registry."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from kdtheory.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """``" Did you mean 'x' or 'y'?"`` for the candidates close to ``name``, else ``""``.

    Parameters
    ----------
    name : str
        What the user typed.
    candidates : iterable of str
        The accepted names.
    n : int
        At most this many suggestions.
    cutoff : float
        ``difflib`` similarity in [0, 1] a suggestion needs.

    Returns
    -------
    str
        Starts with a space, so it can follow a sentence directly.
    """
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=cutoff)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def plural(noun: str) -> str:
    """``"dataset"`` -> ``"datasets"``, ``"hypothesis"`` -> ``"hypotheses"``."""
    return noun[:-2] + "es" if noun.endswith("is") else noun + "s"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object and where it came from (a plugin's name)."""

    name: str
    obj: T
    source: str


class Registry(Generic[T]):
    """A mapping from names to registered plugin objects.

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages ("dataset", "objective", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, source: str) -> None:
        """Register ``obj`` under ``name``; a second registration of a name is an error."""
        if name in self._entries:
            first = self._entries[name].source
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice: by {first!r} and by {source!r}. "
                "Rename one of them or uninstall one of the plugins."
            )
        self._entries[name] = Entry(name, obj, source)

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise a "did you mean" error."""
        try:
            return self._entries[name].obj
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        hint = did_you_mean(name, known)
        return (
            f"unknown {self.kind} {name!r}.{hint} Registered {plural(self.kind)}: "
            f"{', '.join(known) if known else '(none)'}."
        )

    def source(self, name: str) -> str:
        """Where ``name`` was registered from."""
        self.get(name)
        return self._entries[name].source

    def entries(self) -> list[Entry[T]]:
        """All entries, sorted by name."""
        return [self._entries[k] for k in sorted(self._entries)]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
