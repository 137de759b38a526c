"""Stores larger than memory: ``open_runs(path, chunks=...)`` reads lazily with Dask, and every
metric, hypothesis, check and export then works one chunk of cells at a time with the same
results as in memory."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from kdtheory.cli import common
from kdtheory.errors import SchemaError, StoreError
from kdtheory.hypothesis.family import run_all
from kdtheory.hypothesis.verdict import render
from kdtheory.metrics import accuracy
from kdtheory.store.blocks import is_lazy, reduce_by_blocks, reduce_cells
from kdtheory.store.runs import LAZY_VARIABLES, export_store, open_runs
from kdtheory.testing.cell_store import CellStoreShape, write_synthetic_cells

SMALL = CellStoreShape(
    n_train=300,
    n_test=120,
    n_classes=10,
    fractions=(0.1, 0.3, 1.0),
    n_seeds=3,
    n_feature_sample=60,
    n_features=8,
)


@pytest.fixture(scope="module")
def cell_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lazy") / "store"
    write_synthetic_cells(root, "synth-a", SMALL, seed=1)
    write_synthetic_cells(root, "synth-b", SMALL, seed=2)
    return root


def _masked(x):
    """``x`` without creation times and statsmodels' Date/Time summary lines."""
    if isinstance(x, dict):
        return {k: _masked(v) for k, v in x.items() if k != "created"}
    if isinstance(x, list):
        return [_masked(v) for v in x]
    if isinstance(x, str):
        return re.sub(r"(Date|Time):\s+\S+(?: \S+ \S+ \S+)?", r"\1: X", x)
    return x


def verdict_json(store) -> list:
    """Every verdict of ``kdtheory test all`` as JSON, clock lines masked."""
    return _masked(json.loads(render(run_all(store, alpha=0.05), "json")))


def test_lazy_store_keeps_bulk_on_disk_and_the_rest_in_memory(cell_store):
    store = open_runs(cell_store, chunks="cell")
    ds = store["synth-a"]
    for name in LAZY_VARIABLES:
        assert is_lazy(ds[name]), name
        assert ds[name].data.chunksize[:3] == (1, 1, 1)
    for name in ("teacher_train_logits", "train_labels", "in_train", "loss_history"):
        assert not is_lazy(ds[name]), name
    merged = open_runs(cell_store, chunks={"seed": -1})["synth-a"]
    assert merged["train_logits"].data.chunksize[:3] == (1, 1, SMALL.n_seeds)


def test_lazy_values_equal_in_memory(cell_store):
    eager, lazy = open_runs(cell_store), open_runs(cell_store, chunks="cell")
    for name in eager:
        for var in LAZY_VARIABLES:
            np.testing.assert_array_equal(eager[name][var].values, lazy[name][var].values)
        a, b = (
            eager[name].kd.accuracy(split="train", subset="unseen"),
            lazy[name].kd.accuracy(split="train", subset="unseen"),
        )
        assert not is_lazy(b)
        np.testing.assert_array_equal(a.values, b.values)


def test_every_hypothesis_gives_the_same_result_lazily(cell_store):
    assert verdict_json(open_runs(cell_store, chunks="cell")) == verdict_json(open_runs(cell_store))


def test_trained_store_gives_the_same_result_lazily(tiny_store):
    assert verdict_json(open_runs(tiny_store, chunks="cell")) == verdict_json(open_runs(tiny_store))


def test_reductions_see_one_chunk_of_cells_at_a_time(cell_store):
    ds = open_runs(cell_store, chunks="cell")["synth-a"]
    seen: list[tuple[int, ...]] = []

    @reduce_by_blocks
    def recording_accuracy(logits, labels, sample_dim):
        seen.append(tuple(logits.shape))
        return accuracy(logits, labels, sample_dim)

    out = recording_accuracy(ds["test_logits"], ds["test_labels"], "test_sample")
    cells = ds.sizes["arm"] * ds.sizes["fraction"] * ds.sizes["seed"]
    # dask may call a block function once more on an empty block to learn its output type
    real = [s for s in seen if 0 not in s]
    assert len(real) == cells
    assert set(real) == {(1, 1, 1, SMALL.n_test, SMALL.n_classes)}
    np.testing.assert_array_equal(
        out.transpose("arm", "fraction", "seed").values,
        accuracy(ds["test_logits"].load(), ds["test_labels"], "test_sample").values,
    )


def test_reduce_cells_puts_blocks_where_they_belong():
    import dask.array as da

    values = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    var = xr.DataArray(da.from_array(values, chunks=(1, 2, 4, 5)), dims=("a", "b", "c", "d"))
    out = reduce_cells(var, ("a", "b"), lambda where, block: block.sum(axis=(2, 3)))
    np.testing.assert_array_equal(out, values.sum(axis=(2, 3)))
    both = reduce_cells(
        var, ("a", "b"), lambda w, b: np.stack([b.min(axis=(2, 3)), b.max(axis=(2, 3))], -1), 2
    )
    np.testing.assert_array_equal(both[..., 1], values.max(axis=(2, 3)))


def poison(cell_file: Path, value: float) -> None:
    """Overwrite one stored logit of a cell file in place (packed int16 holds no inf or NaN,
    so the variable is rewritten unpacked)."""
    with xr.open_dataset(cell_file) as ds:
        ds = ds.load()
    logits = ds["train_logits"].values.copy()
    logits[3, 2] = value
    ds["train_logits"] = (ds["train_logits"].dims, logits)
    ds["train_logits"].encoding = {}
    ds.to_netcdf(cell_file.with_suffix(".tmp"))
    cell_file.with_suffix(".tmp").replace(cell_file)


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_lazy_open_refuses_nonfinite_cells_naming_the_cell(tmp_path, value):
    root = tmp_path / "store"
    folder = write_synthetic_cells(root, "synth", SMALL, seed=3)
    poison(folder / "cells" / "kd-T4__f0.3__s1.nc", value)
    with pytest.raises(SchemaError) as lazy:
        open_runs(root, chunks="cell")
    message = str(lazy.value)
    assert str(folder) in message and "train_logits" in message
    assert "arm=kd-T4, fraction=0.3, seed=1" in message
    with pytest.raises(SchemaError):
        open_runs(root)  # in memory the cell file itself is named


def test_lazy_export_streams_the_same_file(cell_store, tmp_path):
    eager_out, lazy_out = tmp_path / "eager", tmp_path / "lazy"
    export_store(open_runs(cell_store), eager_out)
    written = export_store(open_runs(cell_store, chunks="cell"), lazy_out)
    assert sorted(p.name for p in written) == ["synth-a.nc", "synth-b.nc"]
    for path in written:
        with xr.open_dataset(path) as a, xr.open_dataset(eager_out / path.name) as b:
            for name in a.data_vars:
                np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        with netCDF4.Dataset(path) as nc:  # one netCDF chunk per cell: lazy reads stay small
            assert nc["train_logits"].chunking() == [1, 1, 1, SMALL.n_train, SMALL.n_classes]
    # combined files read lazily give what they give in memory (export re-packs the logits
    # with one int16 scale per variable, so not bit for bit what the cell files give)
    assert verdict_json(open_runs(lazy_out, chunks="cell")) == verdict_json(open_runs(eager_out))


@pytest.mark.parametrize(
    ("chunks", "needle"),
    [({"class": 1}, "class"), ({"seed": 0}, "positive"), ("auto", "'cell'")],
)
def test_bad_chunks_are_refused_with_what_is_accepted(cell_store, chunks, needle):
    with pytest.raises(StoreError, match=needle):
        open_runs(cell_store, chunks=chunks)


def test_lazy_needs_dask_and_says_how_to_install_it(cell_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(StoreError, match=r"kdtheory\[cluster\]"):
        open_runs(cell_store, chunks="cell")


def test_cli_reads_a_large_store_lazily_by_default(cell_store, monkeypatch, capsys):
    monkeypatch.setattr(common, "LAZY_STORE_BYTES", 1000)
    store = common.open_store(cell_store, lazy=None)
    assert is_lazy(store["synth-a"]["train_logits"])
    assert "--in-memory" in capsys.readouterr().err
    monkeypatch.setattr(common, "LAZY_STORE_BYTES", 1 << 40)
    assert not is_lazy(common.open_store(cell_store, lazy=None)["synth-a"]["train_logits"])
    assert not is_lazy(common.open_store(cell_store, lazy=False)["synth-a"]["train_logits"])
