"""A content-addressed cache of generated datasets, shared by every sweep of a user.

A generated dataset (MNIST-1D) is a deterministic function of its generator's arguments and of
the code that runs it; generating it again in every ``kdtheory run`` costs seconds. A dataset
plugin therefore asks :func:`cached_arrays` for its generator's output: the arrays are stored
once under a key hashed from the generator's name, its arguments, the versions of the packages
whose code computes them, the Python version and :data:`ENTRY_FORMAT` (:func:`dataset_key`),
and any later load with the same key reads them back instead of generating them.

The cache a load uses is chosen by its caller (:func:`using`, as ``kdtheory run`` does for
``--dataset-cache``/``--no-dataset-cache``); without one, :func:`cached_arrays` generates, as
before. Layout of the cache folder (:func:`default_cache_dir`, or ``--dataset-cache DIR``)::

    <dir>/<key>.npz     the generator's arrays (numpy .npz; loaded with allow_pickle=False)
    <dir>/<key>.json    what the key hashes, each array's dtype and shape, and the SHA-256 of
                        the arrays' names, dtypes, shapes and bytes

Both files are written atomically (temporary file, then rename), the ``.npz`` first: an entry
whose ``.json`` is missing was interrupted and counts as absent. An entry that does not verify
(unreadable metadata, other key inputs, a file numpy refuses without pickle, other arrays than
recorded, a checksum that does not match, non-finite values) is never used:
:class:`DatasetCacheWarning` says why, and the dataset is generated again and the entry
replaced.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kdtheory.training.cache_entries import (
    EntryFolder,
    EntryKey,
    UnusableEntry,
    canonical_json,
    read_metadata,
)

__all__ = [
    "ENTRY_FORMAT",
    "DatasetCache",
    "DatasetCacheWarning",
    "DatasetKey",
    "active_cache",
    "cached_arrays",
    "dataset_key",
    "default_cache_dir",
    "open_dataset_cache",
    "using",
]

#: version of what a key means and an entry holds; raise it when what is stored changes
ENTRY_FORMAT = 1

_ACTIVE: contextvars.ContextVar[DatasetCache | None] = contextvars.ContextVar(
    "kdtheory_dataset_cache", default=None
)


class DatasetCacheWarning(UserWarning):
    """A dataset cache entry could not be used or written; the dataset is generated instead."""


def default_cache_dir() -> Path:
    """The user's dataset cache folder.

    ``$KDTHEORY_CACHE/datasets`` when ``KDTHEORY_CACHE`` is set, else
    ``$XDG_CACHE_HOME/kdtheory/datasets``, else ``~/.cache/kdtheory/datasets``.
    """
    return DatasetCache.default_root()


#: the address of one generated dataset (:class:`~kdtheory.training.cache_entries.EntryKey`):
#: ``digest`` hashes ``inputs``, what the arrays depend on (see :func:`dataset_key`)
DatasetKey = EntryKey


def dataset_key(
    generator: str, arguments: Mapping[str, Any], packages: Iterable[str] = ()
) -> DatasetKey:
    """The cache key of the arrays ``generator`` makes from ``arguments``.

    Parameters
    ----------
    generator : str
        Name of the generator (e.g. ``mnist1d``); two generators never share an entry.
    arguments : mapping
        Every argument that changes the arrays (JSON-serialisable values).
    packages : iterable of str
        Distributions whose code computes the arrays (e.g. ``mnist1d``, ``scipy``); their
        installed versions are hashed, and numpy's always (``"absent"`` for one not installed).

    Returns
    -------
    DatasetKey
    """
    names = sorted(set(packages) | {"numpy"})
    inputs = {
        "format": ENTRY_FORMAT,
        "generator": generator,
        "arguments": json.loads(json.dumps(dict(arguments), sort_keys=True)),
        "packages": {name: _version(name) for name in names},
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
    }
    return EntryKey.of(inputs)


def _version(distribution: str) -> str:
    from importlib import metadata  # only when a cache is used: not on every plugin load

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of the arrays' names, dtypes, shapes and bytes (in name order).

    The content, not the ``.npz`` file's bytes (its zip members carry the time they were
    written): two processes that store the same arrays at once leave an entry that verifies.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _layout(arrays: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
    """Each array's dtype and shape, as the metadata records them."""
    return {k: [np.asarray(v).dtype.str, list(np.shape(v))] for k, v in sorted(arrays.items())}


class DatasetCache(EntryFolder):
    """Generated datasets by key in one folder: ``<key>.npz`` (arrays) and ``<key>.json``.

    Parameters
    ----------
    root : str or Path
        The cache folder; created on the first write.

    Attributes
    ----------
    origins : list of {"cache", "generated"}
        What each :func:`cached_arrays` call through this cache did, in order: ``"cache"`` (the
        arrays were read from a verified entry) or ``"generated"``.
    """

    folder_name = "datasets"
    payload_suffix = ".npz"
    warning = DatasetCacheWarning
    kind = "dataset"
    redo = "generating the dataset"
    again = "generated"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.origins: list[Literal["cache", "generated"]] = []

    def load(self, key: DatasetKey) -> dict[str, np.ndarray] | None:
        """The verified arrays of ``key``, or ``None`` when there is no entry or it does not
        verify.

        Warns
        -----
        DatasetCacheWarning
            When an entry exists but cannot be used (it names the file and the reason); the
            caller generates the dataset and :meth:`save` replaces the entry.
        """
        return self._load(key, lambda arrays, meta: self._verified(key, arrays, meta))

    def _verified(self, key: DatasetKey, arrays_path: Path, meta_path: Path) -> dict:
        meta = read_metadata(meta_path, key.digest)
        inputs = meta.get("inputs")
        if not isinstance(inputs, dict) or canonical_json(inputs) != canonical_json(key.inputs):
            raise UnusableEntry("it was stored for other generator arguments or package versions")
        try:
            blob = arrays_path.read_bytes()
        except OSError as exc:
            raise UnusableEntry(f"its arrays cannot be read ({exc.strerror or exc})") from None
        if not blob.startswith(b"PK\x03\x04"):  # numpy would take it for a pickle and say so
            raise UnusableEntry("it is not an .npz file (damaged)")
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception as exc:  # noqa: BLE001 - any failure to load means: do not use it
            raise UnusableEntry(
                f"numpy cannot read it with allow_pickle=False ({type(exc).__name__}: {exc})"
            ) from None
        if _layout(arrays) != meta.get("arrays"):
            raise UnusableEntry("its arrays are not those recorded in its metadata")
        if _digest(arrays) != meta.get("sha256"):
            raise UnusableEntry("the arrays' SHA-256 does not match the one recorded (damaged)")
        for name, a in arrays.items():
            if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
                raise UnusableEntry(f"its array {name!r} holds non-finite values")
        return arrays

    def save(self, key: DatasetKey, arrays: Mapping[str, np.ndarray]) -> Path | None:
        """Store ``arrays`` under ``key`` (atomically); return the ``.npz`` file.

        A folder that cannot be written costs only the reuse: :class:`DatasetCacheWarning`
        says so and ``None`` is returned; the caller goes on with its arrays.
        """
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        blob = buffer.getvalue()
        meta = {
            "key": key.digest,
            "inputs": key.inputs,
            "arrays": _layout(arrays),
            "sha256": _digest(arrays),
        }
        return self._store(key, lambda tmp: tmp.write_bytes(blob), lambda: meta)


def open_dataset_cache(dataset_cache: bool | str | Path) -> DatasetCache | None:
    """The dataset cache a sweep uses: ``True`` the user's (:func:`default_cache_dir`), a
    folder (``~`` expanded) that one, ``False`` none."""
    return DatasetCache.from_option(dataset_cache)


@contextlib.contextmanager
def using(cache: DatasetCache | None) -> Iterator[DatasetCache | None]:
    """Let the dataset loads inside the block use ``cache`` (None: generate, use no cache)."""
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def active_cache() -> DatasetCache | None:
    """The cache set by the innermost :func:`using` block, or None."""
    return _ACTIVE.get()


def cached_arrays(
    generator: str,
    arguments: Mapping[str, Any],
    generate: Callable[[], Mapping[str, np.ndarray]],
    packages: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """``generate()``'s arrays, read from the active cache when it holds them.

    With no active cache (outside :func:`using`, or ``using(None)``) this is ``generate()``.
    Otherwise the entry of :func:`dataset_key` ``(generator, arguments, packages)`` is loaded
    when it verifies; else the arrays are generated and stored.

    Parameters
    ----------
    generator : str
        Name of the generator.
    arguments : mapping
        Every argument of ``generate`` that changes its arrays.
    generate : callable
        Makes the arrays (a mapping of name to numpy array; numeric dtypes only).
    packages : iterable of str
        Distributions whose code ``generate`` runs (their versions are part of the key).

    Returns
    -------
    dict of str to numpy.ndarray
    """
    cache = _ACTIVE.get()
    if cache is None:
        return dict(generate())
    key = dataset_key(generator, arguments, packages)
    arrays = cache.load(key)
    if arrays is None:
        arrays = dict(generate())
        cache.save(key, arrays)
        cache.origins.append("generated")
    else:
        cache.origins.append("cache")
    return arrays
