"""The run store: a folder of netCDF files that ``open_runs`` combines into experiments.

Layout written by ``kdtheory run``::

    <store>/<experiment>/experiment.json      the recipe (a different recipe is refused)
    <store>/<experiment>/teacher.nc           teacher logits, labels, features (once)
    <store>/<experiment>/teacher.pt           teacher weights (re-used on resume)
    <store>/<experiment>/cells/<method>__f<fraction>__s<seed>.nc   one trained student each

A store may also hold whole experiments as single ("combined") netCDF files anywhere outside a
``cells/`` folder, as ``kdtheory export`` or ``Dataset.to_netcdf`` write them.

Files of schema v1 (``kdtheory-runs/1``, dim ``method``) and v2 (``kdtheory-runs/2``, dim
``arm``) are read, in any mix, also within one experiment folder; what is returned is always v2.
Importing this module registers the :class:`kdtheory.store.accessor.KdAccessor` (``ds.kd``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from kdtheory.errors import SchemaError, SpecError, StoreError
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.atomic import write_atomic, write_text_atomic
from kdtheory.store.blocks import CELL_CHUNKS, require_dask
from kdtheory.store.schema import (
    ARM,
    ARM_COORDS,
    CELL_DIMS,
    CELL_KIND,
    CELL_RECORDS,
    NONFINITE_HINT,
    READABLE_SCHEMAS,
    SCHEMA,
    SCHEMA_V1,
    STORAGE_NOTE,
    TEACHER_KIND,
    UPGRADED_FROM,
    check_finite,
    combined_encoding,
    first_nonfinite,
    upgrade,
    validate_experiment,
)

#: the variables a store opened with ``chunks`` leaves on disk (the bulk of every store)
LAZY_VARIABLES = ("train_logits", "test_logits", "features")
CELLS_DIR = "cells"
TEACHER_FILE = "teacher.nc"
TEACHER_WEIGHTS = "teacher.pt"
EXPERIMENT_FILE = "experiment.json"
_SAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


# --------------------------------------------------------------------------- naming
def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (spec strings become experiment ids).

    The result holds only letters, digits and ``. _ = + -`` and never starts with a dot, so it
    is never ``.``, ``..`` or a hidden name: a folder named by it stays inside its parent.
    """
    return re.sub(r"^[._]+", "", _SAFE.sub("_", text)).rstrip("_") or "experiment"


def check_experiment_id(name: str) -> None:
    """Refuse an experiment id (``--name``) that cannot name a folder inside the store.

    Other characters are replaced by :func:`safe_name`; an id that is empty or starts with a
    dot (``..``, ``.``, ``.hidden``) would be renamed beyond recognition or name a folder
    outside the store, so it is an error.

    Raises
    ------
    SpecError
        Naming ``--name`` and what is accepted.
    """
    raw = _SAFE.sub("_", name).strip("_")
    if not raw or raw.startswith("."):
        raise SpecError(
            f"--name: {name!r} cannot be an experiment id: it names the folder of the "
            "experiment inside --out, so it must not be empty or start with '.'. Use letters, "
            "digits and . _ = + -, e.g. --name my-experiment."
        )


def format_fraction(fraction: float) -> str:
    """Fraction as written in file names and tables (``0.01``, ``1``)."""
    return f"{fraction:.6g}"


def cell_filename(method: str, fraction: float, seed: int) -> str:
    """File name of one cell."""
    return f"{safe_name(method)}__f{format_fraction(fraction)}__s{int(seed)}.nc"


def cell_dataset(
    *,
    test_logits: np.ndarray,
    train_logits: np.ndarray,
    in_train: np.ndarray,
    features: np.ndarray,
    classifier_weight: np.ndarray,
    classifier_bias: np.ndarray,
    loss_history: np.ndarray,
    feature_sample: np.ndarray,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """One cell file's contents in the store's layout (``kind`` "cell"; see docs/schema.md).

    The one place that lays out a cell: ``kdtheory run`` and the synthetic cell-store writer
    (:mod:`kdtheory.testing.cell_store`) both build their cells here. Logits and features are
    stored as float32; ``progress`` places the loss history's points evenly in training.

    Parameters
    ----------
    test_logits, train_logits : numpy.ndarray
        ``(test_sample, class)`` and ``(train_sample, class)``.
    in_train : numpy.ndarray
        Boolean ``(train_sample,)``: the cell's training subset.
    features : numpy.ndarray
        ``(feature_sample, feature)`` penultimate activations.
    classifier_weight, classifier_bias : numpy.ndarray
        ``(class, feature)`` and ``(class,)``.
    loss_history : numpy.ndarray
        ``(log_point,)`` interval-mean training losses.
    feature_sample : numpy.ndarray
        The training-sample index of each feature row.
    attrs : dict
        The cell's attributes (experiment attributes, method, fraction, seed, diagnostics).
    """
    points = len(loss_history)
    return xr.Dataset(
        {
            "test_logits": (("test_sample", "class"), np.asarray(test_logits, np.float32)),
            "train_logits": (("train_sample", "class"), np.asarray(train_logits, np.float32)),
            "in_train": (("train_sample",), in_train),
            "features": (("feature_sample", "feature"), np.asarray(features, np.float32)),
            "classifier_weight": (("class", "feature"), classifier_weight),
            "classifier_bias": (("class",), classifier_bias),
            "loss_history": (("log_point",), loss_history),
        },
        coords={
            "feature_sample": feature_sample,
            "progress": ("log_point", np.arange(1, points + 1) / points),
        },
        attrs={**attrs, "kind": CELL_KIND},
    )


def experiment_dir(root: str | Path, experiment: str) -> Path:
    """The folder of ``experiment`` inside the store ``root`` (never outside it)."""
    return Path(root) / safe_name(experiment)


def cell_path(root: str | Path, experiment: str, method: str, fraction: float, seed: int) -> Path:
    return experiment_dir(root, experiment) / CELLS_DIR / cell_filename(method, fraction, seed)


# --------------------------------------------------------------------------- writing
def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


LOCK_FILE = ".lock"


@contextlib.contextmanager
def experiment_lock(
    root: str | Path, experiment: str, on_wait: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Hold the experiment's lock (an exclusive ``flock`` on ``<experiment>/.lock``).

    ``kdtheory run`` holds it from checking the recipe to writing the last cell, so two runs on
    one store never mix recipes or train a cell twice: the second waits (``on_wait`` is told
    why) and then skips the cells the first wrote. The lock is released when the process
    ends, also when it is killed, so a stale lock file never blocks a later run.
    """
    folder = experiment_dir(root, experiment)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(
                    f"{folder}: another `kdtheory run` is writing experiment {experiment!r}; "
                    "waiting for it to finish (its cells will be skipped here)"
                )
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield folder
    finally:
        handle.close()  # closing releases the lock


def recipe_diffs(a: Mapping[str, Any], b: Mapping[str, Any], a_name: str, b_name: str) -> str:
    """``"lr: store has 0.001, this run has 0.002; ..."``: the keys where two recipes differ."""
    keys = sorted(set(a) | set(b))
    return "; ".join(
        f"{k}: {a_name} has {a.get(k)!r}, {b_name} has {b.get(k)!r}"
        for k in keys
        if a.get(k) != b.get(k)
    )


def ensure_experiment(root: str | Path, experiment: str, recipe: Mapping[str, Any]) -> Path:
    """Create the experiment folder with its recipe, or check the recipe matches.

    Raises
    ------
    StoreError
        If the folder holds the same experiment id with a different recipe.
    SchemaError
        If its ``experiment.json`` cannot be read or holds no recipe.
    """
    folder = experiment_dir(root, experiment)
    path = folder / EXPERIMENT_FILE
    recipe = json.loads(json.dumps(dict(recipe)))
    if path.exists():
        old_recipe = (_read_meta(folder) or {}).get("recipe", {})
        if old_recipe != recipe:
            diffs = recipe_diffs(old_recipe, recipe, "store", "this run")
            raise StoreError(
                f"{path}: experiment {experiment!r} already exists with a different recipe "
                f"({diffs}). Use another --out folder or --name, or the same "
                "options as the existing experiment."
            )
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        path,
        json.dumps({"experiment": experiment, "recipe": recipe, "created": now_iso()}, indent=2),
    )
    return folder


def record_axes(root: str | Path, experiment: str, axes: Mapping[str, list[Any]]) -> None:
    """Add a sweep's axes (methods, fractions, seeds) to ``experiment.json``.

    The recorded axes are the union over every run into the experiment, so ``kdtheory
    inspect`` can name the cells a sweep asked for and that are not there yet.
    """
    path = experiment_dir(root, experiment) / EXPERIMENT_FILE
    meta = _read_meta(path.parent) or {}
    old = meta.get("axes") or {}
    merged = {}
    for key, values in axes.items():
        seen = list(old.get(key) or [])
        merged[key] = seen + [v for v in values if v not in seen]
    if merged != old:
        meta["axes"] = merged
        try:
            write_text_atomic(path, json.dumps(meta, indent=2))
        except OSError as exc:
            raise write_failure(path, exc) from None


def discard_if_empty(root: str | Path, experiment: str) -> bool:
    """Remove the recipe of an experiment folder that holds nothing else (but its lock).

    Called, under the lock, when a run fails before it wrote the teacher or any cell, so that
    the corrected command is not refused as "a different recipe". ``experiment.json`` and empty
    sub-folders go; the folder and its ``.lock`` stay, since another run may be waiting on that
    very file (deleting it would let a later run lock a new file while the waiting one holds
    the old). Returns True if the recipe was removed.
    """
    folder = experiment_dir(root, experiment)
    if not folder.is_dir():
        return False
    left = [p for p in folder.iterdir() if p.name not in (EXPERIMENT_FILE, LOCK_FILE)]
    if any(p.is_file() or any(q.is_file() for q in p.rglob("*")) for p in left):
        return False
    for sub in left:
        shutil.rmtree(sub, ignore_errors=True)
    recipe = folder / EXPERIMENT_FILE
    if recipe.exists():
        recipe.unlink()
        return True
    return False


#: below this many free bytes a failed write is reported as a full device
_NEARLY_FULL = 64 * 1024**2


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the device holding ``path`` (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return int(shutil.disk_usage(folder).free)
            except OSError:
                return None
    return None


def write_failure(path: Path, exc: BaseException) -> StoreError:
    """A StoreError for a write of ``path`` that failed with ``exc`` (says when the disk is full).

    netCDF reports a full disk as ``RuntimeError: NetCDF: HDF error``; the free space on the
    device, measured before the partial file is removed, tells that case apart.
    """
    free = _free_bytes(path.parent)
    if isinstance(exc, OSError) and exc.strerror:
        reason = f"{type(exc).__name__}: {exc.strerror}"
    else:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    full = getattr(exc, "errno", None) == errno.ENOSPC or (free is not None and free < _NEARLY_FULL)
    if full:
        return StoreError(
            f"{path}: cannot be written: no space left on the device ({free} bytes free; "
            f"{reason}). Free some space and re-run the same command; files already written are "
            "kept and a run resumes where it stopped."
        )
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EROFS:
        return StoreError(
            f"{path}: cannot be written ({reason}). Choose a folder you can write to, or fix "
            "its permissions."
        )
    return StoreError(
        f"{path}: cannot be written ({reason}; {free} bytes free on the device). Check the "
        "folder and the disk, then re-run the same command."
    )


def write_dataset(ds: xr.Dataset, path: str | Path, pack: bool = True) -> None:
    """Write ``ds`` to ``path`` as compressed netCDF (floats packed as int16), atomically.

    Raises
    ------
    SchemaError
        If a logit, feature or classifier variable holds an infinite value, or NaN outside a
        whole missing cell: int16 packing would store it as a wrong number, and a store never
        holds non-finite values where a cell is present. Nothing is written then.
    StoreError
        If the file cannot be written (a read-only folder, a full disk, ...); ``path`` is left
        as it was and no temporary file stays behind.
    """
    path = Path(path)
    problem = first_nonfinite(ds)
    if problem is not None:
        raise SchemaError(f"{path}: refusing to write: {problem}. {NONFINITE_HINT}.")
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}
    if pack:
        ds.attrs["storage_dtype"] = STORAGE_NOTE
    encoding = combined_encoding(ds, pack)

    def writer(tmp: Path) -> None:
        try:
            ds.to_netcdf(tmp, encoding=encoding, engine="netcdf4")
        except (RuntimeError, OSError) as exc:  # measured while the partial file still exists
            raise write_failure(path, exc) from None

    try:
        write_atomic(path, writer)
    except OSError as exc:  # creating the folder or the temporary file, or the final rename
        raise write_failure(path, exc) from None


def existing_cells(root: str | Path, experiment: str) -> set[str]:
    """File names of the cells already written for ``experiment``."""
    folder = experiment_dir(root, experiment) / CELLS_DIR
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.glob("*.nc")}


def diverged_cells(root: str | Path, experiment: str) -> set[str]:
    """File names of the written cells whose training diverged (attribute ``diverged = 1``)."""
    folder = experiment_dir(root, experiment) / CELLS_DIR
    out = set()
    for path in sorted(folder.glob("*.nc")) if folder.is_dir() else []:
        try:
            with xr.open_dataset(path, engine="netcdf4") as ds:
                if int(ds.attrs.get("diverged", 0)):
                    out.add(path.name)
        except Exception:  # noqa: BLE001 - an unreadable cell is reported by open_runs
            continue
    return out


# --------------------------------------------------------------------------- reading
class RunStore(Mapping[str, xr.Dataset]):
    """A read-only mapping of experiment id to its schema-v2 ``xarray.Dataset``.

    Attributes
    ----------
    path : Path or None
        The folder the store was read from.
    sources : dict
        Experiment id to the files it was read from.
    """

    def __init__(
        self,
        experiments: Mapping[str, xr.Dataset],
        path: Path | None = None,
        sources: Mapping[str, list[Path]] | None = None,
    ) -> None:
        self._experiments = dict(sorted(experiments.items()))
        self.path = path
        self.sources = dict(sources or {})

    def __getitem__(self, key: str) -> xr.Dataset:
        try:
            return self._experiments[key]
        except KeyError:
            raise KeyError(
                f"no experiment {key!r} in the store; experiments: {', '.join(self) or '(none)'}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._experiments)

    def __len__(self) -> int:
        return len(self._experiments)

    def __repr__(self) -> str:
        lines = [f"<RunStore {self.path or ''}: {len(self)} experiment(s)>"]
        for name, ds in self.items():
            lines.append(
                f"  {name}: arms={ds.kd.arms} "
                f"fractions={len(ds.fraction)} seeds={len(ds.seed)} classes={ds.sizes['class']}"
            )
        return "\n".join(lines)


def read_dataset(path: Path) -> xr.Dataset:
    """The netCDF file at ``path``, loaded into memory and closed (a run file: a cell, a
    teacher or a combined experiment).

    Raises
    ------
    SchemaError
        If the file cannot be read, naming it and what to do.
    """
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.load()
    except Exception as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception) -> SchemaError:
    return SchemaError(
        f"{path}: cannot be read as netCDF ({type(exc).__name__}: {exc}). The file is "
        "corrupt or not a kdtheory run file; delete it (a cell file is re-trained by "
        "re-running the same `kdtheory run`) or move it out of the store."
    )


def open_dataset_lazily(path: Path, chunks: Mapping[str, int]) -> xr.Dataset:
    """The netCDF file at ``path`` opened lazily: its bulk variables (``LAZY_VARIABLES``: the
    students' logits and features) become Dask arrays chunked by ``chunks`` along ``arm``,
    ``fraction`` and ``seed`` and whole along every other dim; everything else (labels, teacher
    logits, ``in_train``, per-cell records) is loaded. The file stays open while the data is
    used.

    Raises
    ------
    SchemaError
        If the file cannot be read, naming it and what to do.
    """
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
        arm = ARM if ARM in ds.dims else "method"  # schema v1 calls the arm dim "method"
        plan = {d: chunks.get(ARM if d == arm else d, -1) for d in ds.dims}
        big = [n for n in LAZY_VARIABLES if n in ds.data_vars]
        lazy = {n: ds[n].variable.chunk({d: plan[d] for d in ds[n].dims}) for n in big}
        return ds.drop_vars(big).load().assign(lazy)
    except Exception as exc:
        raise _unreadable(path, exc) from None


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise SchemaError(f"{path}: not a valid kdtheory run file (schema {SCHEMA}): {what}")


def _check_cell(ds: xr.Dataset, path: Path, teacher: xr.Dataset, check_values: bool = True) -> None:
    _require(
        ds.attrs.get("schema") in READABLE_SCHEMAS,
        path,
        f"attribute 'schema' is {ds.attrs.get('schema')!r}, not one of {READABLE_SCHEMAS}",
    )
    _require(ds.attrs.get("kind") == CELL_KIND, path, "attribute 'kind' is not 'cell'")
    for attr in ("experiment", "method", "fraction", "seed", "n_train", "objective"):
        _require(attr in ds.attrs, path, f"attribute {attr!r} is missing")
    _require(
        ds.attrs["experiment"] == teacher.attrs.get("experiment"),
        path,
        f"belongs to experiment {ds.attrs['experiment']!r}, not "
        f"{teacher.attrs.get('experiment')!r} of its folder",
    )
    dims = {
        "test_logits": ("test_sample", "class"),
        "train_logits": ("train_sample", "class"),
        "in_train": ("train_sample",),
    }
    for name, want in dims.items():
        _require(name in ds.data_vars, path, f"variable {name!r} is missing")
        _require(tuple(ds[name].dims) == want, path, f"variable {name!r} must have dims {want}")
    for dim in ("test_sample", "train_sample", "class"):
        _require(
            ds.sizes.get(dim) == teacher.sizes.get(dim),
            path,
            f"dimension {dim!r} has size {ds.sizes.get(dim)}, but the teacher file has "
            f"{teacher.sizes.get(dim)}",
        )
    _require(
        int(ds["in_train"].sum()) == int(ds.attrs["n_train"]),
        path,
        "'in_train' does not select n_train samples (partial or corrupt file)",
    )
    if check_values:
        check_finite(ds, path)


def _read_meta(folder: Path) -> dict[str, Any] | None:
    """``folder/experiment.json`` (recipe, sweep axes, ...), or None when the file is absent.

    Raises
    ------
    SchemaError
        Naming the file, if it is not JSON or holds no recipe.
    """
    path = folder / EXPERIMENT_FILE
    if not path.exists():
        return None
    fix = (
        "Restore it from a backup, or delete it and re-run the same `kdtheory run`, which "
        "writes it again (and checks every cell against it)."
    )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(
            f"{path}: cannot be read as the experiment's recipe ({type(exc).__name__}: {exc}). "
            f"{fix}"
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("recipe"), dict):
        raise SchemaError(
            f"{path}: holds no 'recipe' object (not a kdtheory experiment file). {fix}"
        )
    return meta


def _check_recipe(
    ds: xr.Dataset, path: Path, recipe: Mapping[str, Any] | None, origin: Path
) -> None:
    """A cell must have been trained with its experiment's recipe (from ``origin``)."""
    if recipe is None:
        return
    raw = ds.attrs.get("recipe")
    _require(raw is not None, path, "attribute 'recipe' (the training recipe) is missing")
    try:
        mine = json.loads(str(raw))
    except json.JSONDecodeError:
        mine = None
    _require(isinstance(mine, dict), path, "attribute 'recipe' is not a JSON object")
    if mine == dict(recipe):
        return
    diffs = recipe_diffs(mine, recipe, "this file", "the experiment")
    raise SchemaError(
        f"{path}: was trained with a different recipe than its experiment ({origin}): "
        f"{diffs}. Cells of different recipes must not be mixed; move the file to "
        "the store of its own recipe, or delete it and re-run the experiment's `kdtheory run` "
        "to train it again."
    )


OBJECTIVE_ORDER = ("label", "kd", "ls", "kd-shuffled", "kd-mse")


def _method_order(info: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Methods in a stable, readable order: by objective (label first), temperature, label."""

    def key(m: str) -> tuple:
        obj = str(info[m].get("objective"))
        rank = OBJECTIVE_ORDER.index(obj) if obj in OBJECTIVE_ORDER else len(OBJECTIVE_ORDER)
        t = float(info[m].get("temperature", np.nan))
        return (rank, obj, np.inf if np.isnan(t) else t, m)

    return sorted(info, key=key)


class _LazyCells:
    """The cells of one per-cell variable as Dask arrays, put together into one array of
    ``shape`` (``arm, fraction, seed, ...``) by :meth:`assemble`; missing cells are NaN."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self._cells: dict[tuple[int, int, int], Any] = {}

    def __setitem__(self, index: tuple[int, int, int], value: Any) -> None:
        self._cells[index] = value

    def assemble(self, chunks: Mapping[str, int]) -> Any:
        import dask.array as da

        inner = self.shape[3:]
        missing = da.full(inner, np.nan, dtype=np.float32, chunks=-1)

        def cell(index: tuple[int, int, int]) -> Any:
            value = self._cells.get(index)
            return missing if value is None else value.astype(np.float32)

        M, F, S = self.shape[:3]
        out = da.stack(
            [
                da.stack([da.stack([cell((m, f, s)) for s in range(S)]) for f in range(F)])
                for m in range(M)
            ]
        )
        wanted = tuple(chunks.get(d, 1) for d in CELL_DIMS)
        return out if wanted == (1, 1, 1) else out.rechunk(wanted + (-1,) * len(inner))


def combine_cells(folder: Path, chunks: Mapping[str, int] | None = None) -> xr.Dataset:
    """Combine an experiment folder of cell files into one schema-v2 dataset.

    The teacher file and the cells may be of schema v1 or v2, in any mix (a v1 store resumed
    by a newer kdtheory holds both): a cell file has no ``method`` or ``arm`` dim, only its
    ``method`` attribute (its label along ``arm``), so the two read alike. The result records
    ``schema_upgraded_from`` when any of them was v1.

    With ``chunks`` (see :func:`open_runs`) the logits and features stay on disk as Dask
    arrays, one chunk per cell (merged as ``chunks`` asks), and their values are not checked
    here: :func:`~kdtheory.store.schema.validate_experiment` checks the combined experiment
    chunk by chunk.
    """
    teacher_path = folder / TEACHER_FILE
    if not teacher_path.exists():
        raise SchemaError(
            f"{folder}: has a '{CELLS_DIR}' folder but no {TEACHER_FILE}; the experiment is "
            "incomplete. Re-run the same `kdtheory run` to recreate it."
        )
    teacher = read_dataset(teacher_path)
    _require(
        teacher.attrs.get("schema") in READABLE_SCHEMAS,
        teacher_path,
        f"attribute 'schema' is {teacher.attrs.get('schema')!r}, not one of {READABLE_SCHEMAS}",
    )
    _require(teacher.attrs.get("kind") == TEACHER_KIND, teacher_path, "'kind' is not 'teacher'")
    check_finite(teacher, teacher_path)
    meta = _read_meta(folder) or {}
    recipe = meta.get("recipe")
    origin = folder / EXPERIMENT_FILE
    if recipe is not None:
        _check_recipe(teacher, teacher_path, recipe, origin)
    elif teacher.attrs.get("recipe") is not None:  # no experiment.json: the teacher's recipe
        try:
            recipe = json.loads(str(teacher.attrs["recipe"]))
        except json.JSONDecodeError:
            recipe = None
        _require(isinstance(recipe, dict), teacher_path, "attribute 'recipe' is not JSON")
        origin = teacher_path
    cells = []
    for path in sorted((folder / CELLS_DIR).glob("*.nc")):
        ds = read_dataset(path) if chunks is None else open_dataset_lazily(path, {})
        # lazily read cells are checked for non-finite values together, in one pass over the
        # combined experiment (validate_experiment), which names the cell
        _check_cell(ds, path, teacher, check_values=chunks is None)
        _check_recipe(ds, path, recipe, origin)
        cells.append((path, ds))
    fractions = sorted({float(c.attrs["fraction"]) for _, c in cells})
    seeds = sorted({int(c.attrs["seed"]) for _, c in cells})
    n_train: dict[float, int] = {}
    method_info: dict[str, dict[str, Any]] = {}
    for path, c in cells:
        f, m = float(c.attrs["fraction"]), c.attrs["method"]
        if n_train.setdefault(f, int(c.attrs["n_train"])) != int(c.attrs["n_train"]):
            raise SchemaError(f"{path}: n_train differs from other cells of fraction {f}")
        info = {k: c.attrs.get(k, np.nan) for k in ARM_COORDS}
        method_info.setdefault(m, info)
    methods = _method_order(method_info)
    M, F, S = len(methods), len(fractions), len(seeds)
    mi = {m: i for i, m in enumerate(methods)}
    fi = {f: i for i, f in enumerate(fractions)}
    si = {s: i for i, s in enumerate(seeds)}
    N, T, K = teacher.sizes["train_sample"], teacher.sizes["test_sample"], teacher.sizes["class"]
    has_features = "teacher_features" in teacher.data_vars

    def per_cell(shape: tuple[int, ...]) -> Any:
        full = (M, F, S, *shape)
        return np.full(full, np.nan, np.float32) if chunks is None else _LazyCells(full)

    data: dict[str, Any] = {
        "test_logits": per_cell((T, K)),
        "train_logits": per_cell((N, K)),
        "in_train": np.zeros((F, S, N), bool),
        "effective_smoothing": np.full((M, F, S), np.nan, np.float32),
    }
    first = cells[0][1] if cells else None
    if has_features and first is not None and "features" in first.data_vars:
        P, D = first.sizes["feature_sample"], first.sizes["feature"]
        data["features"] = per_cell((P, D))
        data["classifier_weight"] = np.full((M, F, S, K, D), np.nan, np.float32)
        data["classifier_bias"] = np.full((M, F, S, K), np.nan, np.float32)
    records = [r for r in CELL_RECORDS if first is not None and r in first.attrs]
    for r in records:
        data[r] = np.full((M, F, S), np.nan, np.float32)
    if first is not None and "loss_history" in first.data_vars:
        history_dim = first["loss_history"].dims[0]  # log_point; step in older stores
        history_coord = "progress" if history_dim == "log_point" else history_dim
        history_axis = first[history_coord]
        data["loss_history"] = np.full((M, F, S, len(history_axis)), np.nan, np.float32)
    for path, c in cells:
        i = (mi[c.attrs["method"]], fi[float(c.attrs["fraction"])], si[int(c.attrs["seed"])])
        data["in_train"][i[1:]] = c["in_train"].values.astype(bool)
        for r in records:
            data[r][i] = float(c.attrs.get(r, np.nan))
        if int(c.attrs.get("diverged", 0)):
            continue  # a diverged cell's outputs are no result: left NaN, reported as diverged
        data["test_logits"][i] = c["test_logits"].data
        data["train_logits"][i] = c["train_logits"].data
        data["effective_smoothing"][i] = float(c.attrs.get("effective_smoothing", np.nan))
        for name in ("features", "classifier_weight", "classifier_bias", "loss_history"):
            if name in data:
                if name not in c.data_vars or c[name].shape != data[name].shape[3:]:
                    raise SchemaError(
                        f"{path}: variable {name!r} is missing or has shape "
                        f"{getattr(c.get(name), 'shape', None)}, unlike the experiment's other "
                        "cells (were they trained with a different recipe?)"
                    )
                data[name][i] = c[name].data
    for name, value in data.items():
        if isinstance(value, _LazyCells):
            data[name] = value.assemble(chunks or {})
    cell = CELL_DIMS
    ds = xr.Dataset(
        {
            "test_logits": (cell + ("test_sample", "class"), data["test_logits"]),
            "train_logits": (cell + ("train_sample", "class"), data["train_logits"]),
            "in_train": (("fraction", "seed", "train_sample"), data["in_train"]),
            "effective_smoothing": (cell, data["effective_smoothing"]),
            "teacher_test_logits": teacher["teacher_test_logits"].astype(np.float32),
            "teacher_train_logits": teacher["teacher_train_logits"].astype(np.float32),
            "test_labels": teacher["test_labels"].astype(np.int64),
            "train_labels": teacher["train_labels"].astype(np.int64),
        },
        coords={
            ARM: np.array(methods, dtype=object),
            "fraction": np.array(fractions, dtype=float),
            "seed": np.array(seeds, dtype=np.int64),
            "train_sample": np.arange(N),
            "test_sample": np.arange(T),
            "class": np.arange(K),
            "n_train": ("fraction", np.array([n_train[f] for f in fractions], dtype=np.int64)),
            "objective": (
                ARM,
                np.array([method_info[m]["objective"] for m in methods], object),
            ),
        },
        attrs={k: v for k, v in teacher.attrs.items() if k != "kind"},
    )
    for coord in ("temperature", "alpha", "smoothing"):
        ds = ds.assign_coords(
            {coord: (ARM, np.array([float(method_info[m][coord]) for m in methods]))}
        )
    if "features" in data:
        ds = ds.assign_coords(feature_sample=teacher["feature_sample"].values)
        ds["features"] = (cell + ("feature_sample", "feature"), data["features"])
        ds["classifier_weight"] = (cell + ("class", "feature"), data["classifier_weight"])
        ds["classifier_bias"] = (cell + ("class",), data["classifier_bias"])
        ds["teacher_features"] = teacher["teacher_features"].astype(np.float32)
    if "loss_history" in data:
        ds = ds.assign_coords({history_coord: (history_dim, history_axis.values)})
        ds["loss_history"] = (cell + (history_dim,), data["loss_history"])
    for r in records:
        ds[r] = (cell, data[r])
    if meta.get("recipe") is not None:
        ds.attrs["recipe"] = json.dumps(meta["recipe"], sort_keys=True)
    if meta.get("axes"):
        ds.attrs["sweep_axes"] = json.dumps(meta["axes"], sort_keys=True)
    ds.attrs["schema"] = SCHEMA
    ds.attrs.pop(UPGRADED_FROM, None)
    if any(f.attrs.get("schema") == SCHEMA_V1 for f in (teacher, *(c for _, c in cells))):
        ds.attrs[UPGRADED_FROM] = SCHEMA_V1
    return ds


def _netcdf_files(root: Path) -> list[Path]:
    """Every ``.nc`` file under ``root`` (symbolic links to folders are not followed).

    Unlike ``Path.rglob``, which skips a folder it cannot read, a folder that cannot be listed is
    an error: an experiment would otherwise be left out of every verdict without a word.

    Raises
    ------
    StoreError
        Naming the folder that cannot be read.
    """

    def fail(exc: OSError) -> None:
        where = exc.filename or root
        raise StoreError(
            f"{where}: cannot read this folder of the run store ({exc.strerror or exc}), so the "
            "experiments in it would be left out. Make it readable (e.g. chmod -R u+rX "
            f"{where}) or move it out of the store."
        )

    found = []
    for folder, dirs, names in os.walk(root, onerror=fail):
        dirs.sort()
        found += [Path(folder) / n for n in names if n.endswith(".nc")]
    return sorted(found)


def store_bytes(path: str | Path) -> int:
    """Bytes of the run files (``.nc``) of the store at ``path``, a folder or one file: what
    :func:`open_runs` would read.

    Raises
    ------
    StoreError
        If a folder of the store cannot be listed.
    """
    root = Path(path)
    files = [root] if root.is_file() else _netcdf_files(root)
    return sum(f.stat().st_size for f in files)


def as_store(store: Any) -> Mapping[str, xr.Dataset]:
    """A run store from what a user may pass: a path (opened with :func:`open_runs`), one
    experiment ``Dataset``, or a mapping of experiment id to ``Dataset``.

    Datasets of schema v1 in a mapping built by hand are upgraded as :func:`open_runs` upgrades
    v1 files (:func:`kdtheory.store.schema.upgrade`).

    Raises
    ------
    StoreError
        For anything else, or a store with no experiments.
    """
    if isinstance(store, (str, os.PathLike)):
        store = open_runs(store)
    if isinstance(store, xr.Dataset):
        store = {str(store.attrs.get("experiment", "experiment")): store}
    if not isinstance(store, Mapping):
        raise StoreError(
            "a run store must be a mapping of experiment id -> xarray.Dataset (as "
            f"kdtheory.open_runs returns) or a path; got {type(store).__name__}"
        )
    if len(store) == 0:
        raise StoreError("the run store holds no experiments")
    if any(ds.attrs.get("schema") == SCHEMA_V1 for ds in store.values()):
        store = {name: upgrade(ds, name) for name, ds in store.items()}
    return store


def cell_chunks(chunks: str | Mapping[str, int] | None) -> dict[str, int] | None:
    """The chunk sizes along ``arm``, ``fraction`` and ``seed`` that ``open_runs(chunks=...)``
    asks for (None: load into memory).

    Raises
    ------
    StoreError
        For anything but None, ``"cell"`` or a dict of those dims to positive sizes (``-1``:
        the whole dim), naming what is accepted; or when Dask is not installed.
    """
    if chunks is None:
        return None
    if isinstance(chunks, str) and chunks == "cell":
        plan: dict[str, int] = dict(CELL_CHUNKS)
    elif isinstance(chunks, Mapping):
        unknown = sorted(set(map(str, chunks)) - set(CELL_DIMS))
        if unknown:
            raise StoreError(
                f"chunks: cannot chunk along {', '.join(unknown)}; a store is chunked along "
                f"{', '.join(CELL_DIMS)} only (every cell is read whole)"
            )
        bad = {k: v for k, v in chunks.items() if not (isinstance(v, int) and (v > 0 or v == -1))}
        if bad:
            raise StoreError(f"chunks: sizes must be positive integers or -1, got {bad}")
        plan = dict(CELL_CHUNKS) | {str(k): int(v) for k, v in chunks.items()}
    else:
        raise StoreError(
            f"chunks: expected None, 'cell' or a dict such as {{'seed': 3}}, got {chunks!r}"
        )
    require_dask("opening a run store lazily (chunks=...)")
    _bound_file_caches()
    return plan


#: netCDF files xarray keeps open at once while a lazily opened store is read
LAZY_OPEN_FILES = 16
#: HDF5 chunk cache per variable of each netCDF file opened while a store is read lazily
LAZY_CHUNK_CACHE_BYTES = 4 << 20


def _bound_file_caches() -> None:
    """Bound the memory that open files hold while a store is read lazily.

    Every netCDF file xarray keeps open (128 by default) holds HDF5's chunk cache, so reading
    the cells of a large store one at a time would still keep the last chunk of each of 128
    cell files: measured on the large-store benchmark, peak memory grew with the size of a cell
    (2.6 GB at CIFAR-100 scale). This lowers, for the process, xarray's ``file_cache_maxsize``
    to ``LAZY_OPEN_FILES`` (never raising it) and netCDF4's default chunk cache for files opened
    from now on to ``LAZY_CHUNK_CACHE_BYTES`` (a cell's chunk is read once, whole, so the cache
    saves no reads).
    """
    import netCDF4

    if xr.get_options()["file_cache_maxsize"] > LAZY_OPEN_FILES:
        xr.set_options(file_cache_maxsize=LAZY_OPEN_FILES)
    size, nelems, preemption = netCDF4.get_chunk_cache()
    if size > LAZY_CHUNK_CACHE_BYTES:
        netCDF4.set_chunk_cache(LAZY_CHUNK_CACHE_BYTES, nelems, preemption)


def open_runs(path: str | Path, chunks: str | Mapping[str, int] | None = None) -> RunStore:
    """Open a run store folder (cell files, combined files, or a mix).

    Parameters
    ----------
    path : str or Path
        The store folder, or a single combined ``.nc`` file.
    chunks : {"cell"} or dict, optional
        None (default): load every experiment into memory. ``"cell"``, or a dict such as
        ``{"seed": 3}``: open lazily with Dask (a store larger than memory): the students'
        logits and features (``LAZY_VARIABLES``) stay on disk as Dask arrays chunked along
        ``arm``, ``fraction`` and ``seed`` (one cell per chunk unless the dict merges more),
        and every metric, hypothesis and export reads them one chunk at a time. Needs Dask
        (``pip install 'kdtheory[cluster]'``). Also lowers, for the process, the number of
        files xarray keeps open and netCDF's chunk cache (see ``_bound_file_caches``), which
        otherwise hold a cell's worth of memory per open file.

    Returns
    -------
    RunStore
        Experiment id → ``xarray.Dataset`` in schema v2 (v1 files are upgraded in memory:
        their ``method`` dim is called ``arm``, see :func:`kdtheory.store.schema.upgrade`).

    Raises
    ------
    StoreError
        If the path does not exist, holds no experiment or has a folder that cannot be read,
        or ``chunks`` is not understood or needs Dask that is not installed.
    SchemaError
        Naming the file, if any file does not meet the schema.
    """
    plan = cell_chunks(chunks)
    root = Path(path)
    if not root.exists():
        raise StoreError(
            f"run store {root} does not exist. Create one with `kdtheory run --out {root}` "
            "or point --runs at an existing store."
        )
    experiments: dict[str, xr.Dataset] = {}
    sources: dict[str, list[Path]] = {}

    def add(ds: xr.Dataset, files: list[Path]) -> None:
        exp = str(ds.attrs["experiment"])
        if exp in experiments:
            raise StoreError(
                f"experiment {exp!r} is in the store twice: {sources[exp][0]} and {files[0]}. "
                "Remove one of them."
            )
        experiments[exp] = ds
        sources[exp] = files

    def read(file: Path) -> xr.Dataset:
        return read_dataset(file) if plan is None else open_dataset_lazily(file, plan)

    if root.is_file():
        ds = upgrade(read(root), root)
        validate_experiment(ds, root)
        add(ds, [root])
    else:
        files = _netcdf_files(root)
        for folder in sorted({p.parent.parent for p in files if p.parent.name == CELLS_DIR}):
            ds = combine_cells(folder, plan)
            validate_experiment(ds, folder)
            add(ds, [folder])
        for file in files:
            if file.parent.name == CELLS_DIR or file.name == TEACHER_FILE:
                continue
            ds = upgrade(read(file), file)
            validate_experiment(ds, file)
            add(ds, [file])
    if not experiments:
        raise StoreError(
            f"{root}: no kdtheory experiments found (no cell folders, no combined .nc files). "
            f"Run `kdtheory run --out {root}` first."
        )
    return RunStore(experiments, path=root, sources=sources)


def _check_export_target(store: RunStore, out: Path, targets: Mapping[str, Path]) -> None:
    """Refuse an export that would write into the store it reads, or one file twice."""
    root = store.path
    if root is not None:
        root = Path(root).resolve()
        inside = root if root.is_dir() else None
        resolved = out.resolve()
        if inside is not None and (resolved == inside or inside in resolved.parents):
            raise StoreError(
                f"--out {out} lies inside the run store {store.path}; the exported files would "
                "be read as a second copy of each experiment by every later command. Export to "
                "a folder outside the store."
            )
        for target in targets.values():
            if target.resolve() == root:
                raise StoreError(
                    f"--out {out}: exporting would overwrite the store file {store.path} it "
                    "reads. Export to another folder."
                )
    seen: dict[Path, str] = {}
    for name, target in targets.items():
        if target in seen:
            raise StoreError(
                f"experiments {seen[target]!r} and {name!r} would both be exported as {target}; "
                "rename one of them (its 'experiment' attribute) first."
            )
        seen[target] = name


def export_store(store: RunStore, out: str | Path) -> list[Path]:
    """Write each experiment of ``store`` as one combined netCDF file under ``out``.

    Raises
    ------
    StoreError
        If ``out`` lies inside the store (later reads would see every experiment twice), a
        target is the store file itself, two experiments map to one file name, or a file
        cannot be written. Nothing is written when a check fails.
    SchemaError
        If an experiment holds non-finite values where a cell is present.
    """
    out = Path(out)
    targets = {name: out / f"{safe_name(name)}.nc" for name in store}
    _check_export_target(store, out, targets)
    for name, ds in store.items():
        problem = first_nonfinite(ds)
        if problem is not None:
            raise SchemaError(
                f"experiment {name!r}: refusing to export: {problem}. {NONFINITE_HINT}."
            )
    written = []
    for name, ds in store.items():
        write_dataset(ds, targets[name])
        written.append(targets[name])
    return written
