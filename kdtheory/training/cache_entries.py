"""What kdtheory's caches of trained teachers and generated datasets share.

Both caches (:mod:`kdtheory.training.teacher_cache`, :mod:`kdtheory.training.dataset_cache`)
address an entry by the SHA-256 of the canonical JSON of its key's inputs
(:func:`canonical_json`), keep a ``<key>.json`` metadata file beside the payload, read that file
with :func:`read_metadata`, and refuse an entry by raising :class:`UnusableEntry` with the reason,
which the cache turns into a warning before it recomputes the entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["UnusableEntry", "canonical_json", "read_metadata"]


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
