"""Run-store schema v2: names, dims and validation of experiment datasets and cell files.

Schema v2 (``kdtheory-runs/2``) is schema v1 with the ``method`` dimension renamed to ``arm``:
``method`` is a keyword of xarray's ``sel`` and ``reindex`` (the fill method), so
``ds.test_logits.sel(method="kd-T4")`` silently returned every method. :func:`upgrade` turns a
v1 dataset into v2 in memory; every reader calls it, so v1 files keep opening.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from kdtheory.errors import SchemaError

if TYPE_CHECKING:
    import xarray as xr

#: the schema this version writes
SCHEMA = "kdtheory-runs/2"
#: the first schema: the arm dim was called ``method``; read and upgraded in memory
SCHEMA_V1 = "kdtheory-runs/1"
#: every schema a reader accepts (a file of another schema is refused)
READABLE_SCHEMAS = (SCHEMA_V1, SCHEMA)
#: the dim of the trained students' methods (labels such as ``label``, ``kd-T4``)
ARM = "arm"
#: its name in schema v1
V1_ARM = "method"
#: attribute an upgraded dataset carries: the schema its file(s) were written in
UPGRADED_FROM = "schema_upgraded_from"
#: the leading dims of per-cell variables; a cell whose values are all NaN is a missing cell
CELL_DIMS = (ARM, "fraction", "seed")
CELL_KIND = "cell"
TEACHER_KIND = "teacher"

#: variable -> dims of a combined experiment dataset
VARIABLE_DIMS: dict[str, tuple[str, ...]] = {
    "test_logits": (*CELL_DIMS, "test_sample", "class"),
    "train_logits": (*CELL_DIMS, "train_sample", "class"),
    "in_train": ("fraction", "seed", "train_sample"),
    "teacher_test_logits": ("test_sample", "class"),
    "teacher_train_logits": ("train_sample", "class"),
    "test_labels": ("test_sample",),
    "train_labels": ("train_sample",),
    "features": (*CELL_DIMS, "feature_sample", "feature"),
    "teacher_features": ("feature_sample", "teacher_feature"),
    "classifier_weight": (*CELL_DIMS, "class", "feature"),
    "classifier_bias": (*CELL_DIMS, "class"),
    "effective_smoothing": CELL_DIMS,
    "loss_history": (*CELL_DIMS, "log_point"),
    "train_steps": CELL_DIMS,
    "train_epochs": CELL_DIMS,
    "final_train_loss": CELL_DIMS,
    "train_accuracy": CELL_DIMS,
    "loss_drop_last20": CELL_DIMS,
    "diverged": CELL_DIMS,
}
#: other dims accepted for a variable: stores written before per-cell budgets logged the loss
#: at fixed steps (``step``) rather than as interval means (``log_point``, with ``progress``)
LEGACY_DIMS: dict[str, tuple[str, ...]] = {
    "loss_history": (*CELL_DIMS, "step"),
}
#: per-cell training records: cell-file attribute -> combined variable (arm, fraction, seed)
CELL_RECORDS = (
    "train_steps",
    "train_epochs",
    "final_train_loss",
    "train_accuracy",
    "loss_drop_last20",
    "diverged",
)
REQUIRED_VARIABLES = (
    "test_logits",
    "train_logits",
    "in_train",
    "teacher_test_logits",
    "teacher_train_logits",
    "test_labels",
    "train_labels",
)
#: coordinates along ``arm``: what each arm trained with
ARM_COORDS = ("objective", "temperature", "alpha", "smoothing")
REQUIRED_ATTRS = ("schema", "experiment")
#: float variables whose storage may be quantized on disk (``loss_history`` is not: it is
#: small, and the convergence criteria compare its last values, which int16 packing would
#: round to zero for a memorised cross-entropy)
FLOAT_VARIABLES = (
    "test_logits",
    "train_logits",
    "teacher_test_logits",
    "teacher_train_logits",
    "features",
    "teacher_features",
    "classifier_weight",
    "classifier_bias",
)
#: float variables that must be finite wherever a cell is present (``loss_history`` and the
#: training records are diagnostics: NaN where unknown, e.g. after a diverged step)
FINITE_VARIABLES = FLOAT_VARIABLES
#: (the per-cell training records, ``CELL_RECORDS``, are diagnostics too: NaN where unknown)


def _fail(source: str | Path, what: str) -> SchemaError:
    return SchemaError(f"{source}: not a valid kdtheory run file (schema {SCHEMA}): {what}")


def _named(ds: xr.Dataset, source: str | Path) -> str:
    """``source`` for error messages; for a v1 file upgraded on read, a note that the message
    uses v2's names (the file itself calls the ``arm`` dim ``method``)."""
    if ds.attrs.get(UPGRADED_FROM) == SCHEMA_V1:
        return (
            f"{source} (a {SCHEMA_V1} file, read as {SCHEMA}: its {V1_ARM!r} dim is called "
            f"{ARM!r} here)"
        )
    return str(source)


def upgrade(ds: xr.Dataset, source: str | Path = "<dataset>") -> xr.Dataset:
    """A schema-v1 dataset as schema v2 (in memory; the file is not touched).

    Renames the dim ``method`` (and its coordinate) to ``arm``, sets ``schema`` to
    ``kdtheory-runs/2`` and records ``schema_upgraded_from = "kdtheory-runs/1"``. The
    coordinate values (the method labels), the coordinates along the dim and every variable
    stay as they are. Works on combined experiments, cell files and teacher files (the latter two
    have no ``method`` dim: only the attributes change). A dataset of any other schema is
    returned unchanged, for :func:`validate_experiment` to judge.

    Parameters
    ----------
    ds : xarray.Dataset
        A dataset read from a run store.
    source : str or Path
        Named in the error (the file the dataset came from).

    Returns
    -------
    xarray.Dataset
        ``ds`` itself when it is not schema v1, else an upgraded shallow copy.

    Raises
    ------
    SchemaError
        If a v1 dataset already has something named ``arm`` (the rename would collide).

    Examples
    --------
    >>> import xarray as xr
    >>> v1 = xr.Dataset(coords={"method": ["label", "kd-T4"]}, attrs={"schema": SCHEMA_V1})
    >>> v2 = upgrade(v1)
    >>> list(v2.arm.values), v2.attrs["schema"]
    (['label', 'kd-T4'], 'kdtheory-runs/2')
    """
    if ds.attrs.get("schema") != SCHEMA_V1:
        return ds
    if V1_ARM in ds.dims or V1_ARM in ds.variables:
        if ARM in ds.dims or ARM in ds.variables:
            raise SchemaError(
                f"{source}: a {SCHEMA_V1} file with both {V1_ARM!r} and {ARM!r}; it cannot be "
                f"upgraded to {SCHEMA} (where {V1_ARM!r} is renamed {ARM!r})"
            )
        ds = ds.rename({V1_ARM: ARM})
    return ds.assign_attrs(schema=SCHEMA, **{UPGRADED_FROM: SCHEMA_V1})


def validate_experiment(ds: xr.Dataset, source: str | Path = "<dataset>") -> None:
    """Check a combined experiment dataset against schema v2 (upgrade v1 first, see
    :func:`upgrade`).

    Parameters
    ----------
    ds : xarray.Dataset
        The experiment.
    source : str or Path
        Named in error messages (the file the dataset came from).

    Raises
    ------
    SchemaError
        Naming ``source`` and the first problem found.
    """
    source = _named(ds, source)
    schema = ds.attrs.get("schema")
    if schema != SCHEMA:
        also = (
            "; upgrade it first with kdtheory.store.schema.upgrade (open_runs does)"
            if schema == SCHEMA_V1
            else f" (or {SCHEMA_V1!r}, which is upgraded when read)"
        )
        raise _fail(source, f"attribute 'schema' is {schema!r}, expected {SCHEMA!r}{also}")
    if not ds.attrs.get("experiment"):
        raise _fail(source, "attribute 'experiment' (the experiment id) is missing")
    missing = [v for v in REQUIRED_VARIABLES if v not in ds.data_vars]
    if missing:
        raise _fail(source, f"missing variable(s) {', '.join(missing)}")
    for name, dims in VARIABLE_DIMS.items():
        if name in ds.data_vars and tuple(ds[name].dims) not in (dims, LEGACY_DIMS.get(name)):
            raise _fail(
                source, f"variable {name!r} has dims {tuple(ds[name].dims)}, expected {dims}"
            )
    for coord in ARM_COORDS:
        if coord not in ds.coords or ds[coord].dims != (ARM,):
            raise _fail(source, f"coordinate {coord!r} along {ARM!r} is missing")
    if "n_train" not in ds.coords or ds["n_train"].dims != ("fraction",):
        raise _fail(source, "coordinate 'n_train' along 'fraction' is missing")
    fractions = np.asarray(ds["fraction"].values, dtype=float)
    if fractions.size and (np.any(fractions <= 0) or np.any(fractions > 1)):
        raise _fail(source, f"fractions must lie in (0, 1], got {fractions.tolist()}")
    if ds.sizes.get("class", 0) < 2:
        raise _fail(source, "dimension 'class' needs at least 2 classes")
    for name in ("train_labels", "test_labels"):
        labels = np.asarray(ds[name].values)
        if not np.issubdtype(labels.dtype, np.integer):
            raise _fail(source, f"variable {name!r} must hold integer labels, got {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= ds.sizes["class"]):
            raise _fail(source, f"variable {name!r} has labels outside 0..{ds.sizes['class'] - 1}")
    if ds["in_train"].dtype != bool:
        values = np.asarray(ds["in_train"].values)
        if not (np.issubdtype(values.dtype, np.integer) and np.isin(values, (0, 1)).all()):
            raise _fail(source, f"variable 'in_train' must be bool, got {ds['in_train'].dtype}")
        ds["in_train"] = ds["in_train"].astype(bool)
    if "feature_sample" in ds.dims:
        idx = np.asarray(ds["feature_sample"].values)
        n = ds.sizes["train_sample"]
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise _fail(source, "coordinate 'feature_sample' must hold training-set indices")
    _check_nested(ds, source)
    check_finite(ds, source)  # a lazily opened experiment: one chunk of cells at a time


class _NonFinite(NamedTuple):
    """Infinite and NaN counts of one float variable: per cell (``arm, fraction, seed``
    arrays) for a per-cell variable, else 0-d totals; ``size`` is the values per cell (or in
    all)."""

    inf: np.ndarray
    nan: np.ndarray
    size: int
    per_cell: bool


def _counts_of(values: np.ndarray, per_cell: bool) -> tuple[np.ndarray, np.ndarray]:
    if per_cell:
        flat = values.reshape(values.shape[:3] + (-1,))
        return np.isinf(flat).sum(axis=-1), np.isnan(flat).sum(axis=-1)
    return np.asarray(np.isinf(values).sum()), np.asarray(np.isnan(values).sum())


def _nonfinite_counts(values: Any, dims: tuple[str, ...]) -> _NonFinite | None:
    """Count the non-finite values of a variable (NumPy values, or a DataArray that may be
    Dask-backed: then one chunk of cells at a time); None for a non-float or empty one."""
    from kdtheory.store.blocks import is_lazy

    shape = tuple(values.shape)
    if not np.issubdtype(values.dtype, np.floating) or int(np.prod(shape)) == 0:
        return None
    per_cell = tuple(dims[:3]) == CELL_DIMS and len(shape) > 3
    size = int(np.prod(shape[3:])) if per_cell else int(np.prod(shape))
    if not (per_cell and is_lazy(values)):
        inf, nan = _counts_of(np.asarray(getattr(values, "values", values)), per_cell)
        return _NonFinite(inf, nan, size, per_cell)
    stats = _lazy_cell_stats(values)
    counts = stats[..., :2].astype(np.int64)
    return _NonFinite(counts[..., 0], counts[..., 1], size, per_cell)


#: :func:`_lazy_cell_stats` of the last lazily read variables, by the name of their Dask array
_LAZY_STATS: OrderedDict[str, np.ndarray] = OrderedDict()
_LAZY_STATS_SIZE = 64


def _cell_stats(_where: dict, block: np.ndarray) -> np.ndarray:
    """Per cell of ``block`` (cell dims first): infinities, NaNs, largest finite magnitude."""
    flat = block.reshape(block.shape[:3] + (-1,))
    finite = np.isfinite(flat)
    top = np.max(np.abs(np.where(finite, flat, 0.0)), axis=-1, initial=0.0)
    return np.stack([np.isinf(flat).sum(axis=-1), np.isnan(flat).sum(axis=-1), top], axis=-1)


def _lazy_cell_stats(var: Any) -> np.ndarray:
    """``(arm, fraction, seed, 3)``: per cell of a lazily read per-cell variable its number of
    infinities, of NaNs and its largest finite magnitude, in one pass over the data.

    Remembered by the Dask array's name (a key of its task graph: one name, one set of values;
    every ``open_runs`` makes new names, so a file read again is never served old numbers), so
    the finiteness check of ``open_runs``, the one ``export`` makes before writing anything, the
    one every write makes and the int16 packing scale read the logits once between them.
    """
    from kdtheory.store.blocks import reduce_cells

    key = str(var.data.name)
    hit = _LAZY_STATS.get(key)
    if hit is None:
        hit = _LAZY_STATS[key] = reduce_cells(var, CELL_DIMS, _cell_stats, extra=3)
        while len(_LAZY_STATS) > _LAZY_STATS_SIZE:
            _LAZY_STATS.popitem(last=False)
    return hit


def _bad_cells(c: _NonFinite) -> np.ndarray:
    """Cells with an infinity, or with NaN while not all NaN (a missing cell is all NaN)."""
    return (c.inf > 0) | ((c.nan > 0) & (c.nan < c.size))


def _describe(c: _NonFinite) -> str | None:
    n_inf = int(c.inf.sum())
    if n_inf:
        return f"holds {n_inf} infinite value(s)"
    if c.per_cell:
        partial = (c.nan > 0) & (c.nan < c.size)
        if not partial.any():
            return None  # only whole cells are NaN: missing cells
        return (
            f"holds {int(c.nan[partial].sum())} NaN value(s) in {int(partial.sum())} cell(s) "
            "that are otherwise present (a missing cell is all NaN; a present one must be finite)"
        )
    n_nan = int(c.nan.sum())
    return f"holds {n_nan} NaN value(s)" if n_nan else None


def nonfinite_problem(values: np.ndarray, dims: tuple[str, ...]) -> str | None:
    """What is non-finite in one variable's values, or None if nothing is wrong.

    Parameters
    ----------
    values : numpy.ndarray
        A float variable's values.
    dims : tuple of str
        Its dimension names. When they start with ``arm, fraction, seed`` the values of one
        cell may be all NaN: that is a missing cell (the filler of combined datasets), not an
        error. Anywhere else NaN is an error, and infinities always are.

    Returns
    -------
    str or None
        A description such as ``"holds 3 infinite value(s)"``.
    """
    counts = _nonfinite_counts(np.asarray(values), dims)
    return None if counts is None else _describe(counts)


def first_nonfinite(ds: xr.Dataset, variables: tuple[str, ...] = FINITE_VARIABLES) -> str | None:
    """The first variable of ``ds`` with values that are not allowed to be non-finite.

    A lazily opened (Dask-backed) experiment is checked one chunk of cells at a time.

    Parameters
    ----------
    ds : xarray.Dataset
        An experiment, a cell file or a teacher file.
    variables : tuple of str
        The variables to check (those of them that ``ds`` holds).

    Returns
    -------
    str or None
        ``"variable 'test_logits' holds 2 infinite value(s) (first at arm=kd-T4, ...)"``, or
        a cell missing in one variable but present in another; None when every checked
        variable is finite (NaN only in whole cells missing from every variable). A cell file
        whose ``diverged`` attribute is 1 holds no results (its outputs are NaN by design) and
        is not checked.
    """
    if int(ds.attrs.get("diverged", 0) or 0):
        return None
    missing: dict[str, np.ndarray] = {}
    for name in variables:
        if name not in ds.data_vars:
            continue
        var = ds[name]
        counts = _nonfinite_counts(var, tuple(map(str, var.dims)))
        if counts is None:
            continue
        problem = _describe(counts)
        if problem is not None:
            return f"variable {name!r} {problem}{_first_bad_cell(var, counts)}"
        if counts.per_cell:
            missing[name] = counts.nan == counts.size
    return _half_missing_cell(ds, missing)


def _half_missing_cell(ds: xr.Dataset, missing: dict[str, np.ndarray]) -> str | None:
    """A cell that is all NaN (missing) in one per-cell variable but present in another;
    ``missing`` maps each per-cell variable to its (arm, fraction, seed) all-NaN mask."""
    if not missing:
        return None
    first, reference = next(iter(missing.items()))
    for name, mask in missing.items():
        if mask.shape != reference.shape:
            continue
        differ = mask != reference
        if not differ.any():
            continue
        i, j, k = (int(x) for x in np.argwhere(differ)[0])
        gone, there = (first, name) if reference[i, j, k] else (name, first)
        m, f, s = (ds[d].values[n] for d, n in zip(CELL_DIMS, (i, j, k), strict=True))
        return (
            f"cell {ARM}={m!s}, fraction={float(f):g}, seed={s!s} is missing (all NaN) in "
            f"variable {gone!r} but present in {there!r}; a missing cell is NaN in every variable"
        )
    return None


#: what fixes a non-finite value, appended to the errors about them
NONFINITE_HINT = (
    "Non-finite logits or features come from diverged training or a damaged file; delete the "
    "affected cell file(s) and re-run the same `kdtheory run` (with a lower --lr if training "
    "diverged)"
)


def check_finite(
    ds: xr.Dataset, source: str | Path = "<dataset>", variables: tuple[str, ...] = FINITE_VARIABLES
) -> None:
    """Refuse infinite values, and NaN anywhere but in whole missing cells.

    Parameters
    ----------
    ds : xarray.Dataset
        An experiment, a cell file or a teacher file.
    source : str or Path
        Named in the error (the file the dataset came from).
    variables : tuple of str
        The variables to check (those of them that ``ds`` holds).

    Raises
    ------
    SchemaError
        Naming ``source``, the variable, what is non-finite and where, and what would fix it.
    """
    source = _named(ds, source)
    problem = first_nonfinite(ds, variables)
    if problem is not None:
        raise _fail(source, f"{problem}. {NONFINITE_HINT}.")


def _first_bad_cell(var: xr.DataArray, counts: _NonFinite) -> str:
    """``" (first at arm=kd-T4, fraction=0.1, seed=0)"`` for a per-cell variable."""
    if not counts.per_cell:
        return ""
    bad = _bad_cells(counts)
    if not bad.any():
        return ""
    index = [int(x) for x in np.argwhere(bad)[0]]
    m, f, s = (
        var[d].values[n] if d in var.coords else n for d, n in zip(CELL_DIMS, index, strict=True)
    )
    return f" (first at {ARM}={m!s}, fraction={float(f):g}, seed={s!s})"


def _check_nested(ds: xr.Dataset, source: str | Path) -> None:
    """Smaller fractions' subsets must lie inside larger ones' for the same seed."""
    in_train = ds["in_train"].transpose("fraction", "seed", "train_sample").values
    order = np.argsort(np.asarray(ds["fraction"].values, dtype=float))
    sorted_mask = in_train[order]
    if sorted_mask.shape[0] > 1:
        smaller, larger = sorted_mask[:-1], sorted_mask[1:]
        if np.any(smaller & ~larger):
            raise _fail(source, "'in_train' subsets are not nested across fractions")


#: how float variables are stored on disk (recorded in the ``storage_dtype`` attribute)
STORAGE_NOTE = (
    "int16 with a CF scale_factor per variable and file (max |value| / 32000, so the absolute "
    "error is at most 1.6e-5 of the largest value), zlib-compressed; read back as float32; "
    "loss_history and the training records are stored as float32"
)


def packed_encoding(values: Any) -> dict:
    """CF int16 packing of a float array: ``scale_factor`` from its largest finite magnitude.

    NaN is stored as the fill value (and reads back as NaN); infinities cannot be packed (they
    would read back as a wrong finite number), so they are refused.

    Parameters
    ----------
    values : numpy.ndarray or xarray.DataArray
        The values; a Dask-backed DataArray is scanned one chunk of cells at a time.

    Raises
    ------
    SchemaError
        If ``values`` holds an infinite value.
    """
    from kdtheory.store.blocks import is_lazy

    if is_lazy(values) and tuple(values.dims[:3]) == CELL_DIMS and values.ndim > 3:
        stats = _lazy_cell_stats(values)
        top = float(np.max(stats[..., 2], initial=0.0))
        n_inf = int(stats[..., 0].sum())
    else:
        array = np.asarray(values)
        if not array.size or not np.issubdtype(array.dtype, np.floating):
            array = np.zeros(0, np.float32)
        finite = np.isfinite(array)
        top = float(np.max(np.abs(np.where(finite, array, 0.0)), initial=0.0))
        n_inf = int(np.isinf(array).sum())
    if n_inf:
        raise SchemaError(f"cannot pack {n_inf} infinite value(s) as int16; {NONFINITE_HINT}")
    scale = np.float32(top / 32000.0 if top > 0 else 1.0)
    return {"dtype": "int16", "scale_factor": scale, "_FillValue": np.int16(-32768)}


#: zlib level of every written variable. The packed logits compress little at any level: level 1
#: wrote one-cell slices of ``data/``'s mnist1d experiment about 15 ms faster each than level 6,
#: into files 0.6% larger; reading is as fast (2026-11-30).
ZLIB_LEVEL = 1


def combined_encoding(ds: xr.Dataset, pack: bool = True) -> dict[str, dict]:
    """netCDF encoding: zlib compression; float variables packed as int16 (see STORAGE_NOTE).

    Variables along ``arm, fraction, seed`` with more dims are stored in one netCDF chunk per
    cell, so that a store opened lazily (``open_runs(chunks=...)``) reads a cell at a time.
    """
    enc: dict[str, dict] = {}
    for name, var in ds.data_vars.items():
        e: dict = {"zlib": True, "complevel": ZLIB_LEVEL, "shuffle": True}
        if pack and name in FLOAT_VARIABLES and np.issubdtype(var.dtype, np.floating):
            e.update(packed_encoding(var))
        if tuple(var.dims[:3]) == CELL_DIMS and var.ndim > 3 and var.size:
            e["chunksizes"] = (1, 1, 1, *var.shape[3:])
        enc[name] = e
    return enc
