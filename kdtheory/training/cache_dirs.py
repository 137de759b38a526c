"""Where kdtheory keeps its caches: one root folder, one sub-folder per kind of entry.

The root is ``$KDTHEORY_CACHE`` when set, else ``$XDG_CACHE_HOME/kdtheory``, else
``~/.cache/kdtheory``; trained teachers live in its ``teachers/``
(:mod:`kdtheory.training.teacher_cache`), generated datasets in its ``datasets/``
(:mod:`kdtheory.training.dataset_cache`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "cache_root", "user_folder"]

#: environment variable naming kdtheory's cache folder
CACHE_ENV = "KDTHEORY_CACHE"


def cache_root() -> Path:
    """kdtheory's cache folder: ``$KDTHEORY_CACHE``, ``$XDG_CACHE_HOME/kdtheory`` or
    ``~/.cache/kdtheory``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return user_folder(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = user_folder(xdg) if xdg else Path.home() / ".cache"
    return base / "kdtheory"


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cache entry (``teachers``, ``datasets``) under
    :func:`cache_root`."""
    return cache_root() / kind


def user_folder(path: str | Path) -> Path:
    """A folder as a user wrote it, with ``~`` expanded (the shell leaves it in
    ``--teacher-cache=~/c``)."""
    return Path(path).expanduser()
