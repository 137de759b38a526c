"""Schema v2 (dim ``arm``) and the reading of schema-v1 files (dim ``method``) written before it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import SMALL

from kdtheory.errors import SchemaError
from kdtheory.hypothesis import run_all, toolkit
from kdtheory.store.runs import RunStore, export_store, open_runs
from kdtheory.store.schema import (
    ARM,
    SCHEMA,
    SCHEMA_V1,
    UPGRADED_FROM,
    combined_encoding,
    upgrade,
    validate_experiment,
)
from kdtheory.testing.synthetic import make_store

DATA = Path(__file__).resolve().parents[1] / "data"


def as_v1(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` as a schema-v1 writer stored it: dim ``method``, schema ``kdtheory-runs/1``."""
    old = ds.rename({ARM: "method"}) if ARM in ds.dims else ds.copy()
    old.attrs = {k: v for k, v in ds.attrs.items() if k != UPGRADED_FROM}
    old.attrs["schema"] = SCHEMA_V1
    return old


def write_v1(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` as a real v1 file: packed like ``kdtheory export`` wrote them."""
    old = as_v1(ds)
    for var in old.variables.values():
        var.encoding = {}
    old.to_netcdf(path, encoding=combined_encoding(old), engine="netcdf4")


def cell_as_v1(path: Path) -> None:
    """Rewrite a cell or teacher file in place as schema v1 (cells have no method dim)."""
    with xr.open_dataset(path, engine="netcdf4") as f:
        ds = f.load()
    ds.attrs["schema"] = SCHEMA_V1
    path.unlink()
    ds.to_netcdf(path, engine="netcdf4")


def file_schema_and_dims(path: Path) -> tuple[str, set[str]]:
    with xr.open_dataset(path, engine="netcdf4") as f:
        return f.attrs["schema"], set(map(str, f.dims))


def verdict_dicts(store) -> list[dict]:
    return [v.to_dict() for v in run_all(store)]


@pytest.fixture(scope="module")
def synthetic():
    return make_store(2, seed=11, **SMALL)


@pytest.fixture(scope="module")
def v1_and_v2(synthetic, tmp_path_factory):
    """The same experiments exported as v2 files and written as v1 files."""
    v2 = tmp_path_factory.mktemp("v2")
    export_store(RunStore(synthetic), v2)
    v1 = tmp_path_factory.mktemp("v1")
    for name, ds in synthetic.items():
        write_v1(ds, v1 / f"{name}.nc")
    return open_runs(v1), open_runs(v2), v1, v2


# ----------------------------------------------------------------------------- v1 files
def test_v1_file_on_disk_has_the_method_dim(v1_and_v2):
    _, _, v1_dir, _ = v1_and_v2
    for path in v1_dir.glob("*.nc"):
        schema, dims = file_schema_and_dims(path)
        assert schema == SCHEMA_V1 and "method" in dims and ARM not in dims


def test_v1_file_opens_with_an_arm_dim_and_the_same_data(v1_and_v2):
    old, new, _, _ = v1_and_v2
    assert list(old) == list(new)
    for name in new:
        a, b = old[name], new[name]
        assert "method" not in a.dims and a.sizes[ARM] == 4
        assert a.attrs["schema"] == SCHEMA and a.attrs[UPGRADED_FROM] == SCHEMA_V1
        assert UPGRADED_FROM not in b.attrs
        validate_experiment(a)
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def test_v1_store_gives_the_same_verdicts_as_v2(v1_and_v2, monkeypatch):
    monkeypatch.setattr(toolkit, "FIT_SUMMARIES", False)  # statsmodels summaries carry the time
    old, new, _, _ = v1_and_v2
    assert verdict_dicts(old) == verdict_dicts(new)


def test_shipped_data_store_is_v1_on_disk_and_opens_as_v2():
    files = sorted(DATA.glob("*.nc"))
    assert files
    assert all(file_schema_and_dims(p)[0] == SCHEMA_V1 for p in files), "data/ stays v1"
    store = open_runs(DATA)
    for ds in store.values():
        assert ds.attrs["schema"] == SCHEMA and ds.attrs[UPGRADED_FROM] == SCHEMA_V1
        assert ds.kd.arms == ["label", "kd-T4", "ls", "kd-shuffled-T4"]
        assert list(ds.objective.values) == ["label", "kd", "ls", "kd-shuffled"]


def test_upgrade_leaves_other_schemas_alone_and_refuses_a_collision():
    v2 = xr.Dataset(coords={ARM: ["a"]}, attrs={"schema": SCHEMA})
    assert upgrade(v2) is v2
    other = xr.Dataset(coords={"method": ["a"]}, attrs={"schema": "kdtheory-runs/9"})
    assert upgrade(other) is other
    with pytest.raises(SchemaError, match="kdtheory-runs/9"):
        validate_experiment(other, "x.nc")
    both = xr.Dataset(coords={"method": ["a"], ARM: ["b"]}, attrs={"schema": SCHEMA_V1})
    with pytest.raises(SchemaError, match="both 'method' and 'arm'"):
        upgrade(both, "both.nc")


def test_an_unupgraded_v1_dataset_is_refused_with_the_fix(synthetic):
    old = as_v1(synthetic["synthetic-0"])
    with pytest.raises(SchemaError, match="upgrade"):
        validate_experiment(old, "old.nc")
    with pytest.raises(ValueError, match="schema-v1 dim 'method'"):
        old.kd.accuracy()
    validate_experiment(upgrade(old), "old.nc")


def test_a_broken_v1_file_is_refused_naming_it(synthetic, tmp_path):
    bad = as_v1(synthetic["synthetic-0"]).drop_vars("temperature")
    bad.to_netcdf(tmp_path / "bad.nc", engine="netcdf4")
    with pytest.raises(SchemaError, match=r"bad\.nc.*'temperature' along 'arm'"):
        open_runs(tmp_path)


# ----------------------------------------------------------------------------- cells
@pytest.fixture
def v1_cell_store(tiny_store, tmp_path):
    """The tiny sweep's store with its teacher and every other cell rewritten as v1."""
    root = tmp_path / "mixed"
    shutil.copytree(tiny_store, root)
    (teacher,) = root.rglob("teacher.nc")
    cell_as_v1(teacher)
    for path in sorted(root.rglob("cells/*.nc"))[::2]:
        cell_as_v1(path)
    return root


def test_cells_of_both_schemas_combine(tiny_store, v1_cell_store):
    schemas = {xr.open_dataset(p).attrs["schema"] for p in v1_cell_store.rglob("cells/*.nc")}
    assert schemas == {SCHEMA, SCHEMA_V1}
    (mixed,) = open_runs(v1_cell_store).values()
    (fresh,) = open_runs(tiny_store).values()
    assert mixed.attrs["schema"] == SCHEMA and mixed.attrs[UPGRADED_FROM] == SCHEMA_V1
    assert fresh.attrs["schema"] == SCHEMA and UPGRADED_FROM not in fresh.attrs
    xr.testing.assert_identical(mixed.drop_attrs(), fresh.drop_attrs())


def test_a_v1_store_resumed_by_new_code_mixes_schemas_and_opens(tiny_store, v1_cell_store):
    from conftest import TINY

    from kdtheory.training.sweep import run_experiment

    gone = [p for p in sorted(v1_cell_store.rglob("cells/*.nc")) if "__s1" in p.name][:3]
    for path in gone:
        path.unlink()
    run_experiment(TINY, v1_cell_store, device="cpu")
    for path in gone:
        assert file_schema_and_dims(path)[0] == SCHEMA, "a resumed sweep writes v2 cells"
    (teacher,) = v1_cell_store.rglob("teacher.nc")
    assert file_schema_and_dims(teacher)[0] == SCHEMA_V1, "the v1 teacher is kept"
    (resumed,) = open_runs(v1_cell_store).values()
    (fresh,) = open_runs(tiny_store).values()
    xr.testing.assert_allclose(resumed["test_logits"], fresh["test_logits"])
    assert resumed.kd.arms == fresh.kd.arms


def test_sweep_writes_v2_cells(tiny_store):
    for path in [*tiny_store.rglob("cells/*.nc"), *tiny_store.rglob("teacher.nc")]:
        schema, dims = file_schema_and_dims(path)
        assert schema == SCHEMA and "method" not in dims


# ----------------------------------------------------------------------------- export
def test_export_of_a_v1_store_writes_v2(v1_and_v2, tmp_path):
    old, _, _, _ = v1_and_v2
    written = export_store(old, tmp_path / "out")
    assert len(written) == 2
    for path in written:
        schema, dims = file_schema_and_dims(path)
        assert schema == SCHEMA and ARM in dims and "method" not in dims
    again = open_runs(tmp_path / "out")
    for name in old:
        xr.testing.assert_identical(again[name].drop_attrs(), old[name].drop_attrs())


def test_export_of_a_mixed_cell_store_writes_v2(v1_cell_store, tmp_path):
    (path,) = export_store(open_runs(v1_cell_store), tmp_path / "out")
    schema, dims = file_schema_and_dims(path)
    assert schema == SCHEMA and ARM in dims
    recipe = json.loads(xr.open_dataset(path).attrs["recipe"])
    assert recipe["steps"] == 40


# ----------------------------------------------------------------------------- sel(arm=)
def _stores(tiny_store, v1_and_v2, synthetic):
    old, new, _, _ = v1_and_v2
    yield "cells", open_runs(tiny_store)
    yield "combined v1", old
    yield "combined v2", new
    yield "data/ (v1)", open_runs(DATA)
    yield "synthetic", synthetic


def test_sel_by_arm_selects_one_arm_on_every_kind_of_store(tiny_store, v1_and_v2, synthetic):
    for kind, store in _stores(tiny_store, v1_and_v2, synthetic):
        for ds in store.values():
            i = ds.kd.arms.index("kd-T4")
            one = ds.test_logits.sel(arm="kd-T4")
            assert ARM not in one.dims, kind
            np.testing.assert_array_equal(one.values, ds.test_logits.isel(arm=i).values)
            assert ds.sel(arm=["label", "kd-T4"]).kd.arms == ["label", "kd-T4"], kind
            assert float(ds.temperature.sel(arm="kd-T4")) == 4.0, kind


def test_a_mapping_of_v1_datasets_built_by_hand_is_upgraded_before_testing():
    """A user who builds the store mapping from v1 datasets (not through open_runs) gets the
    same verdict as on the v2 datasets: run_test upgrades them like open_runs does."""
    from kdtheory.hypothesis.family import run_test
    from kdtheory.store.schema import SCHEMA_V1
    from kdtheory.testing.synthetic import make_store

    store = make_store(n_experiments=1, seed=3)
    v1 = {
        name: ds.rename({"arm": "method"}).assign_attrs(schema=SCHEMA_V1)
        for name, ds in store.items()
    }
    assert "method" in next(iter(v1.values())).dims
    new = run_test("dark-knowledge", store)
    old = run_test("dark-knowledge", v1)
    assert old.as_json() == new.as_json()


def test_an_invalid_v1_file_is_named_as_v1_in_the_error(tmp_path):
    """A v1 file that fails validation after the in-memory upgrade: the error says it is a v1
    file whose 'method' dim is called 'arm' in the message, so the user is not sent looking for
    an 'arm' dim in a file that has none."""
    from kdtheory.errors import SchemaError
    from kdtheory.store.schema import SCHEMA_V1, upgrade, validate_experiment
    from kdtheory.testing.synthetic import make_store

    ds = next(iter(make_store(n_experiments=1, seed=1).values()))
    v1 = ds.rename({"arm": "method"}).assign_attrs(schema=SCHEMA_V1).drop_vars("objective")
    with pytest.raises(SchemaError) as err:
        validate_experiment(upgrade(v1, "old.nc"), "old.nc")
    message = str(err.value)
    assert "old.nc (a kdtheory-runs/1 file" in message and "'method' dim is called 'arm'" in message
    assert "coordinate 'objective'" in message
