"""Atomic file writes: write to a temporary file in the same folder, then rename.

A process killed mid-write (SIGKILL, power loss) leaves its temporary file behind; the next
``kdtheory run`` removes such orphans from its store with :func:`sweep_orphans`.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; files should follow umask
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, as UTF-8, with its newlines untranslated.

    No newline translation (``newline=""``): a report, table or verdict written on Windows has
    the same bytes as one written on Linux, so checksums in provenance and diffs between machines
    agree.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def write_atomic(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path, suffix=Path(path).suffix + ".tmp") as tmp:
        writer(tmp)


#: names of the temporary files :func:`atomic_path` makes: ``.<target>.<8 random><suffix>``, the
#: random part from :func:`tempfile.mkstemp` and the suffix ``.tmp`` or ``.<ext>.tmp``
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}(?:\.[A-Za-z0-9]+)?\.tmp$")
#: a temporary file untouched for this long is an orphan (a write takes seconds, and a file
#: being written has its modification time updated as it grows)
ORPHAN_AGE_S = 3600.0


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is the name of a temporary file of :func:`atomic_path`."""
    return TEMP_NAME.match(name) is not None


def sweep_orphans(
    root: str | Path, min_age_s: float = ORPHAN_AGE_S, now: float | None = None
) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left under ``root``.

    Only files named like :func:`atomic_path`'s temporary files (see :data:`TEMP_NAME`), that
    are regular files (not links) and were last modified at least ``min_age_s`` seconds ago are
    removed, so a write in progress in another process keeps its file. Folders that cannot be
    read and files that vanish meanwhile are skipped; symbolic links to folders are not followed.

    Parameters
    ----------
    root : str or Path
        The folder to sweep (a run store); nothing happens when it does not exist.
    min_age_s : float
        How long a temporary file must have been left untouched.
    now : float, optional
        The current time (``time.time()``), for tests.

    Returns
    -------
    list of Path
        The files removed.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - min_age_s
    removed = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if not is_temp_name(name):
                continue
            path = Path(folder) / name
            try:
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_mtime <= cutoff:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
    return sorted(removed)
