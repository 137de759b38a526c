"""The run store: a folder of netCDF files that ``open_runs`` combines into experiments.

Layout written by ``kdtheory run``::

    <store>/<experiment>/experiment.json      the recipe (a different recipe is refused)
    <store>/<experiment>/teacher.nc           teacher logits, labels, features (once)
    <store>/<experiment>/teacher.pt           teacher weights (re-used on resume)
    <store>/<experiment>/cells/<method>__f<fraction>__s<seed>.nc   one trained student each

A store may also hold whole experiments as single ("combined") netCDF files anywhere outside a
``cells/`` folder, as ``kdtheory export`` or ``Dataset.to_netcdf`` write them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from kdtheory.atomic import write_atomic, write_text_atomic
from kdtheory.errors import SchemaError, StoreError
from kdtheory.schema import (
    CELL_KIND,
    CELL_RECORDS,
    METHOD_COORDS,
    SCHEMA,
    STORAGE_NOTE,
    TEACHER_KIND,
    combined_encoding,
    validate_experiment,
)

CELLS_DIR = "cells"
TEACHER_FILE = "teacher.nc"
TEACHER_WEIGHTS = "teacher.pt"
EXPERIMENT_FILE = "experiment.json"
_SAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


# --------------------------------------------------------------------------- naming
def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (spec strings become experiment ids)."""
    return _SAFE.sub("_", text).strip("_") or "experiment"


def format_fraction(fraction: float) -> str:
    """Fraction as written in file names and tables (``0.01``, ``1``)."""
    return f"{fraction:.6g}"


def cell_filename(method: str, fraction: float, seed: int) -> str:
    """File name of one cell."""
    return f"{safe_name(method)}__f{format_fraction(fraction)}__s{int(seed)}.nc"


def experiment_dir(root: str | Path, experiment: str) -> Path:
    return Path(root) / safe_name(experiment)


def cell_path(root: str | Path, experiment: str, method: str, fraction: float, seed: int) -> Path:
    return experiment_dir(root, experiment) / CELLS_DIR / cell_filename(method, fraction, seed)


# --------------------------------------------------------------------------- writing
def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def ensure_experiment(root: str | Path, experiment: str, recipe: Mapping[str, Any]) -> Path:
    """Create the experiment folder with its recipe, or check the recipe matches.

    Raises
    ------
    StoreError
        If the folder holds the same experiment id with a different recipe.
    """
    folder = experiment_dir(root, experiment)
    path = folder / EXPERIMENT_FILE
    recipe = json.loads(json.dumps(dict(recipe)))
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path}: cannot read the experiment's recipe ({exc}).") from None
        old_recipe = old.get("recipe", {})
        if old_recipe != recipe:
            keys = sorted(set(old_recipe) | set(recipe))
            diffs = [
                f"{k}: store has {old_recipe.get(k)!r}, this run has {recipe.get(k)!r}"
                for k in keys
                if old_recipe.get(k) != recipe.get(k)
            ]
            raise StoreError(
                f"{path}: experiment {experiment!r} already exists with a different recipe "
                f"({'; '.join(diffs)}). Use another --out folder or --name, or the same "
                "options as the existing experiment."
            )
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        path,
        json.dumps({"experiment": experiment, "recipe": recipe, "created": now_iso()}, indent=2),
    )
    return folder


def write_dataset(ds: xr.Dataset, path: str | Path, pack: bool = True) -> None:
    """Write ``ds`` to ``path`` as compressed netCDF (floats packed as int16), atomically."""
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}
    if pack:
        ds.attrs["storage_dtype"] = STORAGE_NOTE
    encoding = combined_encoding(ds, pack)
    write_atomic(path, lambda tmp: ds.to_netcdf(tmp, encoding=encoding, engine="netcdf4"))


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
    """A read-only mapping of experiment id to its schema-v1 ``xarray.Dataset``.

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
                f"  {name}: methods={list(map(str, ds.method.values))} "
                f"fractions={len(ds.fraction)} seeds={len(ds.seed)} classes={ds.sizes['class']}"
            )
        return "\n".join(lines)


def _open(path: Path) -> xr.Dataset:
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.load()
    except Exception as exc:
        raise SchemaError(
            f"{path}: cannot be read as netCDF ({type(exc).__name__}: {exc}). The file is "
            "corrupt or not a kdtheory run file; delete it (a cell file is re-trained by "
            "re-running the same `kdtheory run`) or move it out of the store."
        ) from None


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise SchemaError(f"{path}: not a valid kdtheory run file (schema {SCHEMA}): {what}")


def _check_cell(ds: xr.Dataset, path: Path, teacher: xr.Dataset) -> None:
    _require(ds.attrs.get("schema") == SCHEMA, path, f"attribute 'schema' is not {SCHEMA!r}")
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


OBJECTIVE_ORDER = ("label", "kd", "ls", "kd-shuffled", "kd-mse")


def _method_order(info: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Methods in a stable, readable order: by objective (label first), temperature, label."""

    def key(m: str) -> tuple:
        obj = str(info[m].get("objective"))
        rank = OBJECTIVE_ORDER.index(obj) if obj in OBJECTIVE_ORDER else len(OBJECTIVE_ORDER)
        t = float(info[m].get("temperature", np.nan))
        return (rank, obj, np.inf if np.isnan(t) else t, m)

    return sorted(info, key=key)


def combine_cells(folder: Path) -> xr.Dataset:
    """Combine an experiment folder of cell files into one schema-v1 dataset."""
    teacher_path = folder / TEACHER_FILE
    if not teacher_path.exists():
        raise SchemaError(
            f"{folder}: has a '{CELLS_DIR}' folder but no {TEACHER_FILE}; the experiment is "
            "incomplete. Re-run the same `kdtheory run` to recreate it."
        )
    teacher = _open(teacher_path)
    _require(teacher.attrs.get("schema") == SCHEMA, teacher_path, "attribute 'schema' is wrong")
    _require(teacher.attrs.get("kind") == TEACHER_KIND, teacher_path, "'kind' is not 'teacher'")
    meta: dict[str, Any] = {}
    if (folder / EXPERIMENT_FILE).exists():
        meta = json.loads((folder / EXPERIMENT_FILE).read_text(encoding="utf-8"))
    cells = []
    for path in sorted((folder / CELLS_DIR).glob("*.nc")):
        ds = _open(path)
        _check_cell(ds, path, teacher)
        cells.append((path, ds))
    fractions = sorted({float(c.attrs["fraction"]) for _, c in cells})
    seeds = sorted({int(c.attrs["seed"]) for _, c in cells})
    n_train: dict[float, int] = {}
    method_info: dict[str, dict[str, Any]] = {}
    for path, c in cells:
        f, m = float(c.attrs["fraction"]), c.attrs["method"]
        if n_train.setdefault(f, int(c.attrs["n_train"])) != int(c.attrs["n_train"]):
            raise SchemaError(f"{path}: n_train differs from other cells of fraction {f}")
        info = {k: c.attrs.get(k, np.nan) for k in METHOD_COORDS}
        method_info.setdefault(m, info)
    methods = _method_order(method_info)
    M, F, S = len(methods), len(fractions), len(seeds)
    mi = {m: i for i, m in enumerate(methods)}
    fi = {f: i for i, f in enumerate(fractions)}
    si = {s: i for i, s in enumerate(seeds)}
    N, T, K = teacher.sizes["train_sample"], teacher.sizes["test_sample"], teacher.sizes["class"]
    has_features = "teacher_features" in teacher.data_vars
    data: dict[str, Any] = {
        "test_logits": np.full((M, F, S, T, K), np.nan, np.float32),
        "train_logits": np.full((M, F, S, N, K), np.nan, np.float32),
        "in_train": np.zeros((F, S, N), bool),
        "effective_smoothing": np.full((M, F, S), np.nan, np.float32),
    }
    first = cells[0][1] if cells else None
    if has_features and first is not None and "features" in first.data_vars:
        P, D = first.sizes["feature_sample"], first.sizes["feature"]
        data["features"] = np.full((M, F, S, P, D), np.nan, np.float32)
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
        data["test_logits"][i] = c["test_logits"].values
        data["train_logits"][i] = c["train_logits"].values
        data["effective_smoothing"][i] = float(c.attrs.get("effective_smoothing", np.nan))
        for name in ("features", "classifier_weight", "classifier_bias", "loss_history"):
            if name in data:
                if name not in c.data_vars or c[name].shape != data[name].shape[3:]:
                    raise SchemaError(
                        f"{path}: variable {name!r} is missing or has shape "
                        f"{getattr(c.get(name), 'shape', None)}, unlike the experiment's other "
                        "cells (were they trained with a different recipe?)"
                    )
                data[name][i] = c[name].values
    cell = ("method", "fraction", "seed")
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
            "method": np.array(methods, dtype=object),
            "fraction": np.array(fractions, dtype=float),
            "seed": np.array(seeds, dtype=np.int64),
            "train_sample": np.arange(N),
            "test_sample": np.arange(T),
            "class": np.arange(K),
            "n_train": ("fraction", np.array([n_train[f] for f in fractions], dtype=np.int64)),
            "objective": (
                "method",
                np.array([method_info[m]["objective"] for m in methods], object),
            ),
        },
        attrs={k: v for k, v in teacher.attrs.items() if k != "kind"},
    )
    for coord in ("temperature", "alpha", "smoothing"):
        ds = ds.assign_coords(
            {coord: ("method", np.array([float(method_info[m][coord]) for m in methods]))}
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
    return ds


def open_runs(path: str | Path) -> RunStore:
    """Open a run store folder (cell files, combined files, or a mix).

    Parameters
    ----------
    path : str or Path
        The store folder, or a single combined ``.nc`` file.

    Returns
    -------
    RunStore
        Experiment id → ``xarray.Dataset`` in schema v1.

    Raises
    ------
    StoreError
        If the path does not exist or holds no experiment.
    SchemaError
        Naming the file, if any file does not meet the schema.
    """
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

    if root.is_file():
        ds = _open(root)
        validate_experiment(ds, root)
        add(ds, [root])
    else:
        for folder in sorted({p.parent.parent for p in root.rglob(f"{CELLS_DIR}/*.nc")}):
            ds = combine_cells(folder)
            validate_experiment(ds, folder)
            add(ds, [folder])
        for file in sorted(root.rglob("*.nc")):
            if file.parent.name == CELLS_DIR or file.name == TEACHER_FILE:
                continue
            ds = _open(file)
            validate_experiment(ds, file)
            add(ds, [file])
    if not experiments:
        raise StoreError(
            f"{root}: no kdtheory experiments found (no cell folders, no combined .nc files). "
            f"Run `kdtheory run --out {root}` first."
        )
    return RunStore(experiments, path=root, sources=sources)


def export_store(store: RunStore, out: str | Path) -> list[Path]:
    """Write each experiment of ``store`` as one combined netCDF file under ``out``."""
    out = Path(out)
    written = []
    for name, ds in store.items():
        target = out / f"{safe_name(name)}.nc"
        write_dataset(ds, target)
        written.append(target)
    return written
