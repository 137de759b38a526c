"""Run-store schema v1: names, dims and validation of experiment datasets and cell files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from kdtheory.errors import SchemaError

SCHEMA = "kdtheory-runs/1"
CELL_KIND = "cell"
TEACHER_KIND = "teacher"

#: variable -> dims of a combined experiment dataset
VARIABLE_DIMS: dict[str, tuple[str, ...]] = {
    "test_logits": ("method", "fraction", "seed", "test_sample", "class"),
    "train_logits": ("method", "fraction", "seed", "train_sample", "class"),
    "in_train": ("fraction", "seed", "train_sample"),
    "teacher_test_logits": ("test_sample", "class"),
    "teacher_train_logits": ("train_sample", "class"),
    "test_labels": ("test_sample",),
    "train_labels": ("train_sample",),
    "features": ("method", "fraction", "seed", "feature_sample", "feature"),
    "teacher_features": ("feature_sample", "teacher_feature"),
    "classifier_weight": ("method", "fraction", "seed", "class", "feature"),
    "classifier_bias": ("method", "fraction", "seed", "class"),
    "effective_smoothing": ("method", "fraction", "seed"),
    "loss_history": ("method", "fraction", "seed", "log_point"),
    "train_steps": ("method", "fraction", "seed"),
    "train_epochs": ("method", "fraction", "seed"),
    "final_train_loss": ("method", "fraction", "seed"),
    "train_accuracy": ("method", "fraction", "seed"),
    "loss_drop_last20": ("method", "fraction", "seed"),
    "diverged": ("method", "fraction", "seed"),
}
#: other dims accepted for a variable: stores written before per-cell budgets logged the loss
#: at fixed steps (``step``) rather than as interval means (``log_point``, with ``progress``)
LEGACY_DIMS: dict[str, tuple[str, ...]] = {
    "loss_history": ("method", "fraction", "seed", "step"),
}
#: per-cell training records: cell-file attribute -> combined variable (method, fraction, seed)
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
METHOD_COORDS = ("objective", "temperature", "alpha", "smoothing")
REQUIRED_ATTRS = ("schema", "experiment")
#: float variables whose storage may be quantized on disk
FLOAT_VARIABLES = (
    "test_logits",
    "train_logits",
    "teacher_test_logits",
    "teacher_train_logits",
    "features",
    "teacher_features",
    "classifier_weight",
    "classifier_bias",
    "loss_history",
    "final_train_loss",
)


def _fail(source: str | Path, what: str) -> SchemaError:
    return SchemaError(f"{source}: not a valid kdtheory run file (schema {SCHEMA}): {what}")


def validate_experiment(ds: xr.Dataset, source: str | Path = "<dataset>") -> None:
    """Check a combined experiment dataset against schema v1.

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
    schema = ds.attrs.get("schema")
    if schema != SCHEMA:
        raise _fail(source, f"attribute 'schema' is {schema!r}, expected {SCHEMA!r}")
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
    for coord in METHOD_COORDS:
        if coord not in ds.coords or ds[coord].dims != ("method",):
            raise _fail(source, f"coordinate {coord!r} along 'method' is missing")
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
    "error is at most 1.6e-5 of the largest value), zlib-compressed; read back as float32"
)


def packed_encoding(values: np.ndarray) -> dict:
    """CF int16 packing of a float array: ``scale_factor`` from its largest finite magnitude."""
    finite = np.abs(values[np.isfinite(values)]) if values.size else np.empty(0)
    top = float(finite.max()) if finite.size else 0.0
    scale = np.float32(top / 32000.0 if top > 0 else 1.0)
    return {"dtype": "int16", "scale_factor": scale, "_FillValue": np.int16(-32768)}


def combined_encoding(ds: xr.Dataset, pack: bool = True) -> dict[str, dict]:
    """netCDF encoding: zlib compression; float variables packed as int16 (see STORAGE_NOTE)."""
    enc: dict[str, dict] = {}
    for name, var in ds.data_vars.items():
        e: dict = {"zlib": True, "complevel": 6, "shuffle": True}
        if pack and name in FLOAT_VARIABLES and np.issubdtype(var.dtype, np.floating):
            e.update(packed_encoding(np.asarray(var.values)))
        enc[name] = e
    return enc
