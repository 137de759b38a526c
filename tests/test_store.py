import shutil

import numpy as np
import pytest
import xarray as xr

import kdtheory
from kdtheory.errors import SchemaError, StoreError
from kdtheory.store.atomic import write_atomic
from kdtheory.store.runs import ensure_experiment, export_store, open_runs
from kdtheory.store.schema import SCHEMA, validate_experiment


def handmade(experiment="hand", methods=("label", "kd-T4"), fractions=(0.1, 1.0), seeds=(0, 1)):
    """A minimal schema-v2 experiment built with plain numpy/xarray."""
    rng = np.random.default_rng(0)
    M, F, S, N, T, K = len(methods), len(fractions), len(seeds), 20, 10, 3
    in_train = np.zeros((F, S, N), bool)
    for j, f in enumerate(fractions):
        in_train[j, :, : int(round(f * N))] = True
    return xr.Dataset(
        {
            "test_logits": (
                ("arm", "fraction", "seed", "test_sample", "class"),
                rng.normal(size=(M, F, S, T, K)).astype(np.float32),
            ),
            "train_logits": (
                ("arm", "fraction", "seed", "train_sample", "class"),
                rng.normal(size=(M, F, S, N, K)).astype(np.float32),
            ),
            "in_train": (("fraction", "seed", "train_sample"), in_train),
            "teacher_test_logits": (("test_sample", "class"), rng.normal(size=(T, K))),
            "teacher_train_logits": (("train_sample", "class"), rng.normal(size=(N, K))),
            "test_labels": (("test_sample",), rng.integers(0, K, T)),
            "train_labels": (("train_sample",), rng.integers(0, K, N)),
        },
        coords={
            "arm": list(methods),
            "fraction": list(fractions),
            "seed": list(seeds),
            "objective": ("arm", [m.split("-")[0] for m in methods]),
            "temperature": ("arm", [np.nan if m == "label" else 4.0 for m in methods]),
            "alpha": ("arm", [np.nan if m == "label" else 0.0 for m in methods]),
            "smoothing": ("arm", [np.nan] * M),
            "n_train": ("fraction", [int(round(f * N)) for f in fractions]),
        },
        attrs={"schema": SCHEMA, "experiment": experiment},
    )


def test_open_cell_store_meets_schema(tiny_store):
    store = kdtheory.open_runs(tiny_store)
    assert len(store) == 1
    (name,) = store
    ds = store[name]
    validate_experiment(ds)
    assert list(ds.arm.values) == ["label", "kd-T4", "ls", "kd-shuffled-T4"]
    assert list(ds.objective.values) == ["label", "kd", "ls", "kd-shuffled"]
    assert list(ds.fraction.values) == [0.1, 0.5, 1.0]
    assert list(ds.n_train.values) == [24, 120, 240]
    assert ds.in_train.sum("train_sample").values.tolist() == [[24, 24], [120, 120], [240, 240]]
    assert not np.isnan(ds.test_logits.values).any()
    assert ds.temperature.sel({"arm": "kd-T4"}).item() == 4.0
    assert np.isnan(ds.smoothing.sel({"arm": "ls"}).item())
    eff = ds.effective_smoothing.sel({"arm": "ls"}).values
    assert np.all((eff > 0) & (eff < 1))
    assert np.isnan(ds.effective_smoothing.sel({"arm": "label"}).values).all()
    # features: every cell has rows it trained on and rows it did not
    trained = ds.in_train.sel(train_sample=ds.feature_sample.values)
    assert (trained.sum("train_sample") > 0).all()
    assert (~trained).sel(fraction=[0.1, 0.5]).sum("train_sample").min() > 0
    assert ds.features.sizes["feature"] == ds.classifier_weight.sizes["feature"] == 16
    assert ds.attrs["schema"] == SCHEMA and "recipe" in ds.attrs


def test_export_round_trips_and_mixes_with_cells(tiny_store, tmp_path):
    store = open_runs(tiny_store)
    (path,) = export_store(store, tmp_path / "shared")
    combined = open_runs(tmp_path / "shared")
    name = next(iter(store))
    a, b = store[name], combined[name]
    np.testing.assert_allclose(a.test_logits, b.test_logits, rtol=1e-3, atol=1e-3)
    assert (a.in_train.values == b.in_train.values).all()
    assert list(b.arm.values) == list(a.arm.values)
    # a store can mix a cell folder and combined files of other experiments
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_store, mixed)
    handmade("other").to_netcdf(mixed / "other.nc")
    assert sorted(open_runs(mixed)) == sorted([name, "other"])
    # the same experiment twice is refused, naming both places
    shutil.copy(path, mixed / "dup.nc")
    with pytest.raises(StoreError, match="twice"):
        open_runs(mixed)


def test_store_built_by_hand_with_plain_xarray_opens(tmp_path):
    handmade().to_netcdf(tmp_path / "hand.nc")
    store = open_runs(tmp_path)
    assert list(store) == ["hand"]
    assert store["hand"].test_logits.shape == (2, 2, 2, 10, 3)
    assert open_runs(tmp_path / "hand.nc")["hand"].sizes["class"] == 3


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda ds: ds.assign_attrs(schema="other/1"), "attribute 'schema'"),
        (lambda ds: ds.drop_vars("train_labels"), "missing variable"),
        (lambda ds: ds.assign(test_labels=ds.test_labels + 5), "labels outside"),
        (
            lambda ds: ds.assign(test_logits=ds.test_logits.transpose("fraction", "arm", ...)),
            "has dims",
        ),
        (
            lambda ds: ds.assign(in_train=ds.in_train.copy(data=ds.in_train.values[::-1])),
            "not nested",
        ),
        (lambda ds: ds.drop_vars("objective"), "coordinate 'objective'"),
    ],
)
def test_bad_files_are_refused_with_file_name(tmp_path, corrupt, message):
    path = tmp_path / "bad.nc"
    corrupt(handmade()).to_netcdf(path)
    with pytest.raises(SchemaError, match=message) as info:
        open_runs(tmp_path)
    assert "bad.nc" in str(info.value)


def test_corrupt_and_partial_cell_files_are_refused(tiny_store, tmp_path):
    store = tmp_path / "s"
    shutil.copytree(tiny_store, store)
    cell = sorted(store.rglob("cells/*.nc"))[0]
    cell.write_bytes(cell.read_bytes()[:200])  # a truncated file
    with pytest.raises(SchemaError, match="cannot be read") as info:
        open_runs(store)
    assert cell.name in str(info.value)
    (store / "junk.nc").write_text("not netcdf")
    cell.unlink()
    with pytest.raises(SchemaError, match="junk.nc"):
        open_runs(store)


def test_foreign_netcdf_is_refused(tmp_path):
    xr.Dataset({"x": ("a", np.arange(3))}).to_netcdf(tmp_path / "foreign.nc")
    with pytest.raises(SchemaError, match="foreign.nc.*schema"):
        open_runs(tmp_path)


def test_missing_and_empty_stores(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        open_runs(tmp_path / "nope")
    with pytest.raises(StoreError, match="no kdtheory experiments"):
        open_runs(tmp_path)


def test_recipe_mismatch_is_an_error(tmp_path):
    ensure_experiment(tmp_path, "exp", {"steps": 10})
    ensure_experiment(tmp_path, "exp", {"steps": 10})  # same recipe: fine
    with pytest.raises(StoreError, match="steps: store has 10, this run has 20"):
        ensure_experiment(tmp_path, "exp", {"steps": 20})


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
