"""Provenance of a report: which runs, which code, which command.

:func:`store_hash` fingerprints a run store's content: SHA-256 over the sorted relative paths and
the bytes of every ``.nc`` and ``.json`` file under the store folder (a store opened from one
combined ``.nc`` file hashes that file). Any change to a cell, the teacher file, a recipe or the
set of files changes the hash, so a reader can tell which runs a table came from. A store held
only in memory (a dict of datasets) is hashed from its datasets' variables, coordinates and
attributes instead, and says so.

:func:`provenance` gathers the hash with the kdtheory version, the exact command, the package
versions, the hypotheses and where they come from, and each experiment's recipe and layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "HASHED_SUFFIXES",
    "dataset_hash",
    "provenance",
    "store_files",
    "store_hash",
]

#: File suffixes that enter a store's content hash.
HASHED_SUFFIXES = (".nc", ".json")

_CHUNK = 1 << 20
_PACKAGES = ("numpy", "xarray", "scipy", "statsmodels", "pandas", "matplotlib", "pluggy", "netCDF4")


def store_files(root: str | os.PathLike[str]) -> list[Path]:
    """The ``.nc`` / ``.json`` files of a store folder, sorted by relative POSIX path.

    A file path gives ``[path]``. Temporary files of an interrupted write (``*.tmp``) and
    anything else are not part of the store's content.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in HASHED_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _hash_files(root: Path, files: Sequence[Path]) -> tuple[str, int]:
    h = hashlib.sha256()
    h.update(b"kdtheory-store-hash/1\n")
    total = 0
    for path in files:
        rel = path.name if root.is_file() else path.relative_to(root).as_posix()
        size = path.stat().st_size
        total += size
        h.update(rel.encode("utf-8") + b"\0" + str(size).encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest(), total


def dataset_hash(ds: xr.Dataset) -> str:
    """SHA-256 of one dataset's variables, coordinates (names, dims, dtypes, values) and attrs."""
    h = hashlib.sha256()
    h.update(json.dumps(_plain(dict(ds.attrs)), sort_keys=True, default=str).encode())
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(f"\n{name}|{','.join(var.dims)}|{var.dtype.str}|{var.shape}\n".encode())
        values = np.asarray(var.values)
        if values.dtype == object:
            h.update(json.dumps([str(v) for v in values.ravel()]).encode())
        else:
            h.update(np.ascontiguousarray(values).tobytes())
    return "sha256:" + h.hexdigest()


def store_hash(store: Any) -> str:
    """Content hash (``"sha256:<hex>"``) of a run store.

    Parameters
    ----------
    store : path, RunStore or mapping of str to xarray.Dataset
        A path (folder or combined ``.nc`` file) or a store opened from one is hashed from its
        files (see the module docstring); an in-memory mapping from its datasets.
    """
    return _store_fingerprint(store)["hash"]


def _store_root(store: Any) -> Path | None:
    if isinstance(store, (str, os.PathLike)):
        return Path(store)
    path = getattr(store, "path", None)
    return Path(path) if path is not None else None


def _store_fingerprint(store: Any) -> dict[str, Any]:
    root = _store_root(store)
    if root is not None and root.exists():
        files = store_files(root)
        digest, total = _hash_files(root, files)
        return {
            "path": str(root),
            "hash": digest,
            "hash_method": (
                "sha256 over the sorted relative paths and bytes of the store's "
                f"{'/'.join(HASHED_SUFFIXES)} files"
            ),
            "n_files": len(files),
            "bytes": total,
        }
    if not isinstance(store, Mapping):
        raise TypeError(f"cannot hash a run store of type {type(store).__name__}")
    h = hashlib.sha256()
    h.update(b"kdtheory-memory-store-hash/1\n")
    for name in sorted(map(str, store)):
        h.update(f"{name}\0{dataset_hash(store[name])}\n".encode())
    return {
        "path": None,
        "hash": "sha256:" + h.hexdigest(),
        "hash_method": (
            "sha256 over the experiments' in-memory variables, coordinates and attributes "
            "(the store was not read from files)"
        ),
        "n_files": 0,
        "bytes": int(sum(int(ds.nbytes) for ds in store.values())),
    }


def _plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN to None."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _recipe(ds: xr.Dataset) -> Any:
    raw = ds.attrs.get("recipe")
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return _plain(raw)


def _relative(paths: Iterable[Any], root: Path | None) -> list[str]:
    out = []
    for p in paths:
        p = Path(p)
        if root is not None:
            base = root if root.is_dir() else root.parent
            try:
                out.append(p.resolve().relative_to(base.resolve()).as_posix() or ".")
                continue
            except ValueError:
                pass
        out.append(str(p))
    return out


def experiment_info(
    name: str, ds: xr.Dataset, sources: Iterable[Any] = (), root: Path | None = None
) -> dict[str, Any]:
    """What a reader needs to know about one experiment: recipe, specs, layout, files."""
    attrs = ds.attrs
    info: dict[str, Any] = {
        "recipe": _recipe(ds),
        "dataset": attrs.get("dataset"),
        "teacher": attrs.get("teacher"),
        "student": attrs.get("student"),
        "schema": attrs.get("schema"),
        "schema_upgraded_from": attrs.get("schema_upgraded_from"),
        "kdtheory_version": attrs.get("kdtheory_version"),
        "created": attrs.get("created"),
        "storage_dtype": attrs.get("storage_dtype"),
        "methods": ds.kd.arms,
        "fractions": _plain(ds["fraction"].values) if "fraction" in ds.coords else [],
        "n_train": _plain(ds["n_train"].values) if "n_train" in ds.coords else [],
        "seeds": _plain(ds["seed"].values) if "seed" in ds.coords else [],
        "variables": sorted(map(str, ds.data_vars)),
        "sources": _relative(sources, root),
    }
    if "objective" in ds.coords:
        info["objectives"] = [str(o) for o in ds["objective"].values]
    if "temperature" in ds.coords:
        info["temperatures"] = _plain(ds["temperature"].values)
    return _plain(info)


def _package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def provenance(
    store: Any,
    command: str | None = None,
    *,
    hypotheses: Sequence[str] = (),
    alpha: float | None = None,
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Provenance of a report on ``store``.

    Parameters
    ----------
    store : RunStore, mapping of str to xarray.Dataset, or path
    command : str, optional
        The exact command that produced the report (the CLI passes its argv); default: a
        description of the Python call.
    hypotheses : list of str
        Hypotheses tested.
    alpha : float, optional
        Significance level.
    sources : dict of str to str, optional
        Hypothesis name -> where it was registered from (plugin and distribution).

    Returns
    -------
    dict
        JSON-safe: ``kdtheory_version``, ``command``, ``created``, ``python``, ``platform``,
        ``packages``, ``alpha``, ``hypotheses``, ``hypothesis_sources``, ``store`` (path, hash,
        hash method, file count, bytes) and ``experiments`` (id -> display title, recipe, specs,
        methods, fractions, kappa, seeds, variables, source files).
    """
    import kdtheory

    if isinstance(store, (str, os.PathLike)):
        store = kdtheory.open_runs(store)
    from kdtheory.store.titles import experiment_titles

    root = _store_root(store)
    store_sources = getattr(store, "sources", {}) or {}
    titles = experiment_titles(store)
    if command is None:
        where = str(root) if root is not None else "<in-memory store>"
        command = (
            f"python: kdtheory.report.document.build_report({where!r}, hypotheses="
            f"{list(hypotheses)!r}, alpha={alpha!r})"
        )
    return _plain(
        {
            "kdtheory_version": kdtheory.__version__,
            "command": command,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": _package_versions(),
            "alpha": alpha,
            "hypotheses": list(hypotheses),
            "hypothesis_sources": dict(sources or {}),
            "store": _store_fingerprint(store),
            "experiments": {
                str(name): {
                    "title": titles.get(name, str(name)),
                    **experiment_info(str(name), ds, store_sources.get(name, ()), root),
                }
                for name, ds in store.items()
            },
        }
    )
