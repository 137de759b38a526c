"""What kdtheory's caches of trained teachers and generated datasets share.

Both caches (:mod:`kdtheory.training.teacher_cache`, :mod:`kdtheory.training.dataset_cache`)
address an entry by the SHA-256 of the canonical JSON of its key's inputs
(:func:`canonical_json`), keep a ``<key>.json`` metadata file beside the payload, read that file
with :func:`read_metadata`, and refuse an entry by raising :class:`UnusableEntry` with the reason,
which the cache turns into a warning before it recomputes the entry. :class:`EntryFolder` is the
folder both caches are: where an entry's files are, loading with that warning, and storing
atomically (payload first, so an interrupted write leaves no entry).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kdtheory.store.atomic import write_atomic, write_text_atomic
from kdtheory.training.cache_dirs import cache_dir, user_folder

__all__ = ["EntryFolder", "EntryKey", "UnusableEntry", "canonical_json", "read_metadata"]

T = TypeVar("T")
F = TypeVar("F", bound="EntryFolder")


class UnusableEntry(Exception):
    """Why a cache entry is not used (the message completes "entry ... is not used: ")."""


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no spaces: equal inputs give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def read_metadata(meta_path: Path, digest: str) -> dict[str, Any]:
    """The metadata of the entry at ``meta_path``, checked to name the key ``digest``.

    Raises
    ------
    UnusableEntry
        When the file cannot be read or parsed, is not a JSON object, or names another key.
    """
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnusableEntry(f"its metadata {meta_path.name} cannot be read ({exc})") from None
    if not isinstance(meta, dict) or meta.get("key") != digest:
        raise UnusableEntry(f"its metadata {meta_path.name} is for another key")
    return meta


@dataclass(frozen=True)
class EntryKey:
    """The address of one cache entry: ``digest`` hashes ``inputs`` (canonical JSON).

    Attributes
    ----------
    digest : str
        Hex SHA-256 of the canonical JSON of what was hashed; the entry's file name.
    inputs : dict
        What the entry depends on; JSON-serialisable, recorded in the entry's metadata.
    """

    digest: str
    inputs: dict[str, Any]

    @classmethod
    def of(cls, inputs: dict[str, Any], hashed: Any = None) -> EntryKey:
        """The key of ``inputs``, hashing ``hashed`` instead when given (a form of the inputs
        that leaves out what must not change the address)."""
        text = canonical_json(inputs if hashed is None else hashed)
        return cls(hashlib.sha256(text.encode()).hexdigest(), inputs)


class EntryFolder:
    """A cache folder of entries ``<digest><payload_suffix>`` plus ``<digest>.json``.

    Subclasses set :attr:`folder_name` (their folder under
    :func:`~kdtheory.training.cache_dirs.cache_root`), :attr:`payload_suffix`, :attr:`warning`
    (the category of their warnings), :attr:`kind` (``"teacher"``), :attr:`redo` (``"training the
    teacher"``) and :attr:`again` (``"trained"``), which word the warnings.

    Parameters
    ----------
    root : str or Path
        The cache folder; created on the first write.
    """

    folder_name: str = "entries"
    payload_suffix: str = ""
    warning: type[Warning] = UserWarning
    kind: str = "entry"
    redo: str = "computing it"
    again: str = "computed"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def default_root(cls) -> Path:
        """The user's folder of this cache: :attr:`folder_name` under
        :func:`~kdtheory.training.cache_dirs.cache_root`."""
        return cache_dir(cls.folder_name)

    @classmethod
    def from_option(cls: type[F], option: bool | str | Path) -> F | None:
        """The cache a ``--teacher-cache``/``--dataset-cache`` value names: ``True`` the
        user's (:meth:`default_root`), a folder (``~`` expanded) that one, ``False`` none."""
        if option is False:
            return None
        return cls(cls.default_root() if option is True else user_folder(option))

    def paths(self, key: EntryKey) -> tuple[Path, Path]:
        """The entry's payload and metadata (``.json``) files."""
        return (
            self.root / f"{key.digest}{self.payload_suffix}",
            self.root / f"{key.digest}.json",
        )

    def _load(self, key: EntryKey, verify: Callable[[Path, Path], T]) -> T | None:
        """``verify(payload, metadata)``'s result; None when there is no entry, or (with a
        warning naming the file and the reason) when ``verify`` raises :class:`UnusableEntry`."""
        payload, meta_path = self.paths(key)
        if not meta_path.exists():
            return None  # absent, or a write interrupted before its metadata: not an entry
        try:
            return verify(payload, meta_path)
        except UnusableEntry as exc:
            warnings.warn(
                f"{self.kind} cache entry {payload} is not used: {exc}; {self.redo} again and "
                "replacing the entry",
                self.warning,
                stacklevel=3,
            )
            return None

    def _store(
        self,
        key: EntryKey,
        write_payload: Callable[[Path], object],
        metadata: Callable[[], dict[str, Any]],
    ) -> Path | None:
        """Write the payload (``write_payload(temporary path)``), then ``metadata()`` as the
        ``.json``, each atomically; return the payload file. A folder that cannot be written
        costs only the reuse: a warning, and None."""
        payload, meta_path = self.paths(key)
        try:
            write_atomic(payload, write_payload)
            write_text_atomic(meta_path, json.dumps(metadata(), indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            warnings.warn(
                f"{self.kind} cache {self.root}: cannot store the {self.kind} "
                f"({exc.strerror or exc}); it will be {self.again} again next time",
                self.warning,
                stacklevel=3,
            )
            return None
        return payload
