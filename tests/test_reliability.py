"""The reliability matrix: faults and bad inputs against the `kdtheory` commands.

Every case asserts the exit status, the key words of the one-line error (the file, variable,
option or plugin it names and what fixes it), and that the run store is unchanged: a hash of every
file under it (names and contents) before and after. The cases are the fast ones of the matrix
in issue 12; the README's "Reliability" section lists what is covered.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from kdtheory.cli.app import app
from kdtheory.store.runs import open_runs, write_dataset

runner = CliRunner()

TINY_ARGS = [
    "--dataset", "synthetic:n_train=120,n_test=60,num_classes=3,dim=6",
    "--teacher", "mlp:width=16,depth=1",
    "--student", "mlp:width=8,depth=1",
    "--fractions", "0.25,1",
    "--seeds", "2",
    "--methods", "label,kd:T=4",
    "--steps", "10",
    "--teacher-steps", "20",
    "--batch-size", "16",
    "--feature-samples", "20",
    "--device", "cpu",
]  # fmt: skip
CELL = "kd-T4__f1__s0.nc"


def tree_hash(root: Path) -> str:
    """sha256 over the relative path and the bytes of every file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<link>")
    return digest.hexdigest()


def invoke(args: list[str]):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result) -> str:
    """The ``error: ...`` line of a failed command; fails the test when there is none."""
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert lines, result.output
    assert "Traceback" not in result.output, result.output
    return lines[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny real stores: ``base`` and ``lr2``, the same experiment trained with --lr 0.002."""
    root = tmp_path_factory.mktemp("reliability")
    stores = {}
    for name, extra in (("base", []), ("lr2", ["--lr", "0.002", "--seeds", "1"])):
        result = invoke(["run", *TINY_ARGS, *extra, "--out", root / name])
        assert result.exit_code == 0, result.output
        stores[name] = root / name
    return stores


@pytest.fixture
def store(trained: dict[str, Path], tmp_path: Path) -> Path:
    """A fresh copy of the base store for one test to damage."""
    return Path(shutil.copytree(trained["base"], tmp_path / "store"))


def experiment_folder(store: Path) -> Path:
    (folder,) = [p for p in store.iterdir() if p.is_dir()]
    return folder


def rewrite(path: Path, change: Callable[[xr.Dataset], None]) -> None:
    """Rewrite a netCDF file with ``change`` applied, floats stored as plain float32 (so that a
    non-finite value reaches the disk as it is, as a foreign tool would write it)."""
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    for var in ds.variables.values():
        var.encoding = {}
    change(ds)
    tmp = path.with_suffix(".rewrite")
    ds.to_netcdf(tmp, engine="netcdf4")
    os.replace(tmp, path)


def set_value(name: str, value: float, index: tuple = (0, 0)) -> Callable[[xr.Dataset], None]:
    def change(ds: xr.Dataset) -> None:
        values = ds[name].values.copy()
        values[index] = value
        ds[name] = (ds[name].dims, values)

    return change


READERS = {
    "inspect": lambda s, tmp: ["inspect", s],
    "test all": lambda s, tmp: ["test", "all", "--runs", s],
    "export": lambda s, tmp: ["export", s, "--out", tmp / "exported"],
}


def assert_refused(store: Path, tmp_path: Path, words: list[str]) -> None:
    """Every reader exits 2 with one line naming ``words``; the store stays as it was."""
    before = tree_hash(store)
    for reader, args in READERS.items():
        result = invoke(args(store, tmp_path))
        assert result.exit_code == 2, (reader, result.output)
        line = one_line_error(result)
        for word in words:
            assert word in line, (reader, word, line)
    assert tree_hash(store) == before
    assert not (tmp_path / "exported").exists()


# ------------------------------------------------------------------- case 1: non-finite values
@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("test_logits", np.inf, ["infinite"]),
        ("test_logits", -np.inf, ["infinite"]),
        ("train_logits", np.nan, ["1 NaN value(s)"]),
        ("features", np.nan, ["NaN"]),
    ],
)
def test_a_cell_file_with_non_finite_values_is_refused(store, tmp_path, variable, value, words):
    cell = experiment_folder(store) / "cells" / CELL
    rewrite(cell, set_value(variable, value))
    assert_refused(store, tmp_path, [CELL, repr(variable), *words, "re-run"])


def test_a_teacher_file_with_nan_is_refused(store, tmp_path):
    teacher = experiment_folder(store) / "teacher.nc"
    rewrite(teacher, set_value("teacher_test_logits", np.nan))
    assert_refused(store, tmp_path, ["teacher.nc", "'teacher_test_logits'", "NaN"])


@pytest.fixture
def combined(trained: dict[str, Path], tmp_path: Path) -> Path:
    """A store of one combined file (as `kdtheory export` writes) with one missing cell."""
    out = tmp_path / "shared"
    result = invoke(["export", trained["base"], "--out", out])
    assert result.exit_code == 0, result.output
    (file,) = out.glob("*.nc")

    def blank_one_cell(ds: xr.Dataset) -> None:
        for name in ("test_logits", "train_logits", "features", "classifier_weight",
                     "classifier_bias", "loss_history"):  # fmt: skip
            values = ds[name].values.copy()
            values[0, 0, 1] = np.nan  # label, f=0.25, seed 1: a missing cell
            ds[name] = (ds[name].dims, values)

    rewrite(file, blank_one_cell)
    return out


def test_a_missing_cell_stays_legal_in_a_combined_file(combined):
    shown = invoke(["inspect", combined])
    assert shown.exit_code == 0, shown.output
    assert "missing 1 cell(s)" in shown.output and "label f=0.25 s=1" in shown.output


@pytest.mark.parametrize(
    ("value", "index", "words"),
    [
        (np.inf, (1, 1, 0, 3, 0), ["infinite", "arm=kd-T4, fraction=1, seed=0"]),
        (np.nan, (1, 1, 0, 3, 0), ["NaN", "1 cell(s)", "arm=kd-T4, fraction=1, seed=0"]),
        (np.inf, (0, 0, 1, 3, 0), ["infinite", "arm=label, fraction=0.25, seed=1"]),
    ],
)
def test_a_combined_file_with_non_finite_values_in_a_present_cell_is_refused(
    combined, tmp_path, value, index, words
):
    (file,) = combined.glob("*.nc")
    rewrite(file, set_value("test_logits", value, index))
    assert_refused(combined, tmp_path, [file.name, "'test_logits'", *words])


def test_a_cell_missing_in_one_variable_but_present_in_another_is_refused(combined, tmp_path):
    (file,) = combined.glob("*.nc")
    rewrite(file, set_value("test_logits", np.nan, (1, 0, 0)))  # kd-T4 f=0.25 s=0: test only
    assert_refused(
        combined,
        tmp_path,
        [file.name, "arm=kd-T4, fraction=0.25, seed=0", "missing (all NaN) in variable "
         "'test_logits' but present in 'train_logits'"],
    )  # fmt: skip


def test_write_dataset_refuses_non_finite_values_instead_of_packing_them(trained, tmp_path):
    (ds,) = open_runs(trained["base"]).values()
    bad = ds.copy(deep=True)
    bad["test_logits"][1, 1, 0, 2, 0] = np.inf
    target = tmp_path / "x.nc"
    with pytest.raises(ValueError, match=r"refusing to write: variable 'test_logits' holds 1 inf"):
        write_dataset(bad, target)
    assert not target.exists() and not list(tmp_path.iterdir())
    missing = ds.copy(deep=True)
    for var in missing.data_vars.values():  # a whole missing cell is fine
        if var.dims[:3] == ("arm", "fraction", "seed") and var.dtype.kind == "f":
            var[1, 1, 0] = np.nan
    write_dataset(missing, target)
    back = open_runs(target)[str(ds.attrs["experiment"])]
    assert np.isnan(back.test_logits[1, 1, 0]).all()
    assert np.isfinite(back.test_logits[0]).all()


# ------------------------------------------------------------------- case 3: a foreign recipe
def test_a_cell_trained_with_another_recipe_is_refused(store, trained, tmp_path):
    (foreign,) = (experiment_folder(trained["lr2"]) / "cells").glob("label__f1__s0.nc")
    target = experiment_folder(store) / "cells" / "label__f1__s0.nc"
    shutil.copyfile(foreign, target)
    assert_refused(
        store, tmp_path, ["label__f1__s0.nc", "different recipe", "lr: this file has 0.002"]
    )


def test_a_teacher_file_from_another_recipe_is_refused(store, trained, tmp_path):
    shutil.copyfile(
        experiment_folder(trained["lr2"]) / "teacher.nc", experiment_folder(store) / "teacher.nc"
    )
    assert_refused(store, tmp_path, ["teacher.nc", "different recipe", "lr"])


@pytest.mark.parametrize("text", ["{not json", "[]", '{"recipe": 3}', ""])
def test_a_corrupt_experiment_json_is_an_error_naming_it(store, tmp_path, text):
    (experiment_folder(store) / "experiment.json").write_text(text)
    assert_refused(store, tmp_path, ["experiment.json", "recipe", "re-run"])
    before = tree_hash(store)
    again = invoke(["run", *TINY_ARGS, "--out", store])
    assert again.exit_code == 2 and "experiment.json" in one_line_error(again)
    assert tree_hash(store) == before


# ------------------------------------------------------------------- case 5: unreadable folders
def second_experiment(store: Path) -> Path:
    """Add a second experiment (a combined file under ``store/other/``); return its folder."""
    (ds,) = open_runs(experiment_folder(store)).values()
    ds = ds.copy()
    ds.attrs["experiment"] = "other"
    write_dataset(ds, store / "other" / "other.nc")
    return store / "other"


def test_an_unreadable_experiment_folder_is_an_error_not_left_out(store, tmp_path, monkeypatch):
    other = second_experiment(store)
    real_scandir = os.scandir

    def scandir(path=".", *args):
        if Path(os.fsdecode(path)).resolve() == other.resolve():
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)
    assert_refused(store, tmp_path, [str(other), "cannot read", "Permission denied", "chmod"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder whatever its mode")
def test_an_unreadable_experiment_folder_is_an_error_with_real_permissions(store, tmp_path):
    other = second_experiment(store)
    other.chmod(0)
    try:
        assert_refused(store, tmp_path, [str(other), "cannot read", "chmod"])
    finally:
        other.chmod(0o755)


# ------------------------------------------------------------------- export into the store
def test_export_refuses_to_write_inside_the_store(store, tmp_path):
    before = tree_hash(store)
    for out in (store, store / "exports", experiment_folder(store) / "cells"):
        result = invoke(["export", store, "--out", out])
        assert result.exit_code == 2, result.output
        assert "inside the run store" in one_line_error(result)
    assert tree_hash(store) == before
    assert open_runs(store)  # later commands still work


def test_export_refuses_to_overwrite_the_file_it_reads(combined):
    (file,) = combined.glob("*.nc")
    before = tree_hash(combined)
    result = invoke(["export", file, "--out", combined])
    assert result.exit_code == 2 and "overwrite the store file" in one_line_error(result)
    assert tree_hash(combined) == before


# ------------------------------------------------------------------- case 2: run options
@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--lr", "inf"], ["--lr", "finite number > 0"]),
        (["--lr", "nan"], ["--lr", "finite number > 0"]),
        (["--lr", "-0.1"], ["--lr", "finite number > 0"]),
        (["--teacher-lr", "inf"], ["--teacher-lr", "finite number > 0"]),
        (["--weight-decay", "-1"], ["--weight-decay", "finite number >= 0"]),
        (["--weight-decay", "nan"], ["--weight-decay", "finite number >= 0"]),
        (["--weight-decay", "inf"], ["--weight-decay", "finite number >= 0"]),
        (["--memory-budget", "1e999"], ["--memory-budget", "finite size"]),
        (["--memory-budget", "0"], ["--memory-budget", "at least 1 byte"]),
        (["--memory-budget", "1.2.3GB"], ["--memory-budget", "cannot read"]),
        (["--name", ".."], ["--name", "'..'", "must not be empty or start with '.'"]),
        (["--name", "."], ["--name", "'.'"]),
        (["--name", ".hidden"], ["--name", "'.hidden'"]),
        (["--seeds", "3", "--batch-cells", "0"], ["--batch-cells", ">= 1"]),
    ],
)
def test_bad_run_options_are_one_line_errors_and_write_nothing(store, tmp_path, options, words):
    before = tree_hash(tmp_path)
    result = invoke(["run", *TINY_ARGS, *options, "--out", store])
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    for word in words:
        assert word in line, (word, line)
    assert tree_hash(tmp_path) == before  # the store and the folder above it


def test_a_file_as_out_is_an_error(tmp_path):
    target = tmp_path / "not-a-folder"
    target.write_text("keep me")
    result = invoke(["run", *TINY_ARGS, "--out", target])
    assert result.exit_code == 2
    assert "is a file, not a folder" in one_line_error(result)
    assert target.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [target]
    below = invoke(["run", *TINY_ARGS, "--out", target / "store"])
    assert below.exit_code == 2
    line = one_line_error(below)
    assert str(target) in line and "must be folders, not files" in line


def test_a_read_only_store_is_an_error(store, monkeypatch):
    import kdtheory.store.atomic

    def mkstemp(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(kdtheory.store.atomic.tempfile, "mkstemp", mkstemp)
    before = tree_hash(store)
    result = invoke(["run", *TINY_ARGS, "--seeds", "3", "--out", store])  # 4 new cells to write
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert "cannot be written" in line and "Permission denied" in line and "s2.nc" in line
    assert "Choose a folder you can write to" in line
    assert tree_hash(store) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_store_is_an_error_with_real_permissions(store):
    folders = [p for p in store.rglob("*") if p.is_dir()] + [store]
    before = tree_hash(store)
    for folder in folders:
        folder.chmod(0o555)
    try:
        result = invoke(["run", *TINY_ARGS, "--seeds", "3", "--out", store])
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert f"--out {store}" in line and "not writable" in line
    assert tree_hash(store) == before


@pytest.mark.parametrize("how", ["netcdf", "errno"])
def test_a_full_disk_says_no_space_left(store, monkeypatch, how):
    import kdtheory.store.atomic
    import kdtheory.store.runs

    if how == "netcdf":  # what netCDF raises when HDF5 cannot write: no word about the disk

        def to_netcdf(self, path, *args, **kwargs):
            Path(path).write_bytes(b"\0" * 1000)  # a partial file
            raise RuntimeError("NetCDF: HDF error")

        monkeypatch.setattr(xr.Dataset, "to_netcdf", to_netcdf)
        usage = shutil.disk_usage(store)
        monkeypatch.setattr(
            kdtheory.store.runs.shutil, "disk_usage", lambda p: usage._replace(free=4096)
        )
    else:

        def mkstemp(*args, dir=None, **kwargs):
            raise OSError(28, "No space left on device", str(dir))

        monkeypatch.setattr(kdtheory.store.atomic.tempfile, "mkstemp", mkstemp)
    before = tree_hash(store)
    result = invoke(["run", *TINY_ARGS, "--seeds", "3", "--out", store])
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert "no space left on the device" in line and "s2.nc" in line and "re-run" in line
    assert tree_hash(store) == before  # no partial or temporary file left


def _save_checkpoint(kind: str, path: Path) -> None:
    import torch

    if kind == "garbage":
        path.write_bytes(os.urandom(256))
    elif kind == "pickled object":
        torch.save({"weight": torch.zeros(2), "note": Path("x")}, path)
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "truncated":
        torch.save({"weight": torch.zeros(64)}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "text":
        path.write_text("hello\n")
    else:
        torch.save({"weight": torch.zeros(2)}, path)


@pytest.mark.parametrize(
    "kind", ["garbage", "pickled object", "tensor", "truncated", "text", "wrong keys"]
)
def test_a_bad_teacher_checkpoint_is_an_error_that_does_not_advise_unsafe_loading(tmp_path, kind):
    checkpoint = tmp_path / "teacher.pt"
    _save_checkpoint(kind, checkpoint)
    out = tmp_path / "out"
    result = invoke(["run", *TINY_ARGS, "--teacher-checkpoint", checkpoint, "--out", out])
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert f"--teacher-checkpoint {checkpoint}" in line and "cannot load teacher weights" in line
    assert "torch.save(model.state_dict(), path)" in line
    assert "weights_only" not in result.output
    # nothing trained or cached ([ENGINE] removes the experiment.json a failed run leaves)
    assert not list(out.rglob("*.nc")) and not list(out.rglob("*.pt"))


@pytest.mark.parametrize(("make", "words"), [(None, "does not exist"), ("dir", "is a folder")])
def test_a_teacher_checkpoint_that_is_no_file_is_an_error(tmp_path, make, words):
    checkpoint = tmp_path / "teacher.pt"
    if make == "dir":
        checkpoint.mkdir()
    out = tmp_path / "out"
    result = invoke(["run", *TINY_ARGS, "--teacher-checkpoint", checkpoint, "--out", out])
    assert result.exit_code == 2
    line = one_line_error(result)
    assert f"--teacher-checkpoint: {checkpoint} {words}" in line and "torch.save" in line
    assert not out.exists()


def test_a_huge_npz_label_is_an_error_not_a_memory_error(tmp_path):
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 10)
    y[3] = 10**9
    np.savez(data, X_train=rng.normal(size=(20, 3)), y_train=y,
             X_test=rng.normal(size=(6, 3)), y_test=np.array([0, 1] * 3))  # fmt: skip
    out = tmp_path / "out"
    args = [a if a != TINY_ARGS[1] else f"npz:path={data}" for a in TINY_ARGS]
    result = invoke(["run", *args, "--out", out])
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert str(data) in line and "largest label 1000000000" in line and "0..K-1" in line
    assert not out.exists()


# ------------------------------------------------------------------- orphan temporary files
def test_atomic_writes_make_temporary_files_the_sweep_recognises(tmp_path):
    from kdtheory.store.atomic import atomic_path, is_temp_name

    for suffix in (None, ".nc.tmp", ".pt.tmp", ".json.tmp"):
        with atomic_path(tmp_path / "x.nc", suffix=suffix) as tmp:
            assert is_temp_name(tmp.name), tmp.name
            tmp.write_text("")
    for name in ("x.nc", ".x.nc", "notes.tmp", ".hidden.tmp", ".x.nc.ABCDEFGH.tmp"):
        assert not is_temp_name(name), name


def test_the_next_run_sweeps_orphan_temporary_files_only(store):
    cells = experiment_folder(store) / "cells"
    old = [
        cells / ".kd-T4__f1__s0.nc.ab12cd_4.nc.tmp",
        experiment_folder(store) / ".experiment.json.zz99yy88.tmp",
    ]
    kept = [
        cells / ".label__f1__s0.nc.qq11ww22.nc.tmp",  # fresh: maybe a write in progress
        cells / "notes.tmp",  # not the atomic writer's
        cells / ".hidden.tmp",
    ]
    for path in old + kept:
        path.write_bytes(b"partial")
    hour_ago = os.path.getmtime(cells / CELL) - 2 * 3600
    for path in old + kept[1:]:
        os.utime(path, (hour_ago, hour_ago))
    cell_hashes = {p.name: p.read_bytes() for p in cells.glob("*.nc")}
    result = invoke(["run", *TINY_ARGS, "--out", store])
    assert result.exit_code == 0, result.output
    assert "removed 2 orphan temporary file(s)" in result.output
    assert not any(p.exists() for p in old) and all(p.exists() for p in kept)
    assert {p.name: p.read_bytes() for p in cells.glob("*.nc")} == cell_hashes


# ------------------------------------------------------------------- plugins
def install_plugin(monkeypatch, plugin: object, name: str):
    """The built-in plugins plus ``plugin``, as every command sees them."""
    import kdtheory.training.sweep
    from kdtheory.plugin import manager as plugin_manager

    pm = plugin_manager.make_plugin_manager(entry_points=False)
    pm.register(plugin, name=name)
    regs = plugin_manager.build_registries(pm)
    monkeypatch.setattr(plugin_manager, "get_registries", lambda: regs)
    monkeypatch.setattr(kdtheory.training.sweep, "get_registries", lambda: regs)
    return regs


def garbage_plugin(hook: str, result: Callable[[], object]) -> object:
    import kdtheory

    class Plugin:
        pass

    def impl(self):
        return result()

    impl.__name__ = hook
    setattr(Plugin, hook, kdtheory.hookimpl(impl))
    return Plugin()


def _raise():
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("hook", "result", "words"),
    [
        ("kdtheory_register_datasets", lambda: 42, ["returned 42, not a list of dataset specs"]),
        ("kdtheory_register_datasets", lambda: "mnist1d", ["not a list of dataset specs"]),
        ("kdtheory_register_datasets", lambda: [object()], ["has no 'name'"]),
        ("kdtheory_register_architectures", _raise, ["raised RuntimeError: boom"]),
        ("kdtheory_register_objectives", lambda: [type("Spec", (), {"name": "x"})()],
         ["'x' has no callable 'make'"]),
        ("kdtheory_register_hypotheses", lambda: [{"name": "h"}], ["has no 'name'"]),
    ],
)  # fmt: skip
def test_a_plugin_hook_returning_garbage_is_named_and_skipped(monkeypatch, hook, result, words):
    install_plugin(monkeypatch, garbage_plugin(hook, result), "badplugin")
    listed = invoke(["plugins"])
    assert listed.exit_code == 0, listed.output
    assert "Traceback" not in listed.output
    warning = [ln for ln in listed.output.splitlines() if ln.startswith("warning: ")]
    assert len(warning) == 1, listed.output
    assert f"kdtheory plugin badplugin: {hook}()" in warning[0]
    assert "Fix the plugin or uninstall it" in warning[0]
    for word in words:
        assert word in warning[0], (word, warning[0])
    for builtin in ("mnist1d", "mlp", "kd-shuffled", "dark-knowledge"):
        assert builtin in listed.output
    hypotheses = invoke(["list"])
    assert hypotheses.exit_code == 0 and "dark-knowledge" in hypotheses.output


def test_a_run_still_works_next_to_a_broken_dataset_plugin(monkeypatch, tmp_path):
    install_plugin(
        monkeypatch, garbage_plugin("kdtheory_register_datasets", lambda: 42), "badplugin"
    )
    with pytest.warns(UserWarning, match="kdtheory plugin badplugin"):
        result = invoke(["run", *TINY_ARGS, "--seeds", "1", "--out", tmp_path / "out"])
    assert result.exit_code == 0, result.output


def test_plugins_lists_duplicate_names_instead_of_crashing(monkeypatch, tmp_path):
    from kdtheory.plugin.specs import DatasetSpec

    spec = DatasetSpec("mnist1d", "a second mnist1d", lambda: None)
    install_plugin(
        monkeypatch, garbage_plugin("kdtheory_register_datasets", lambda: [spec]), "dupplugin"
    )
    listed = invoke(["plugins"])
    assert listed.exit_code == 2
    line = one_line_error(listed)
    assert "dataset 'mnist1d' is registered twice" in line and "dupplugin" in line
    assert "hypotheses" in listed.output and "dark-knowledge" in listed.output  # the rest
    run = invoke(["run", *TINY_ARGS, "--dataset", "mnist1d", "--out", tmp_path / "out"])
    assert run.exit_code == 2 and "registered twice" in one_line_error(run)
    assert not (tmp_path / "out").exists()


def test_unknown_names_are_listed_with_a_correct_plural(store):
    result = invoke(["test", "dark-knowlege", "--runs", store])
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "Did you mean 'dark-knowledge'" in line and "Registered hypotheses:" in line
    assert "hypothesiss" not in result.output


# ------------------------------------------------------------------- report.md escaping
def test_report_md_shows_store_text_and_passes_no_html_through(tmp_path):
    from helpers import SMALL

    from kdtheory.testing.synthetic import make_store

    (ds,) = make_store(1, prefix="exp<script>alert(1)</script>", **SMALL).values()
    ds.attrs.update(
        dataset="<img src=x onerror=alert(2)>",
        teacher="[click](javascript:alert(3))",
        student="<!-- hidden -->",
    )
    methods = [m.replace("kd-T4", "kd<b>T4</b>") for m in map(str, ds.arm.values)]
    ds = ds.assign_coords(arm=np.array(methods, dtype=object))
    write_dataset(ds, tmp_path / "runs" / "exp.nc")
    out = tmp_path / "report"
    result = invoke(
        ["report", "--runs", tmp_path / "runs", "--out", out, "--hypotheses", "data-efficiency"]
    )
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    # parsed as GitHub would (raw HTML on): the only HTML is the report's own <details> blocks,
    # and no store text became a link; code blocks show the text as written
    from markdown_it import MarkdownIt

    def walk(tokens):
        for token in tokens:
            yield token
            yield from walk(token.children or [])

    tokens = list(walk(MarkdownIt("commonmark").enable("table").parse(md)))
    html = [t.content.strip() for t in tokens if t.type in ("html_inline", "html_block")]
    assert html and set(html) <= {"<details><summary>Fitted models</summary>", "</details>"}
    targets = [t.attrs.get("href") or t.attrs.get("src") for t in tokens if t.attrs]
    assert targets and not [t for t in targets if "javascript" in str(t)]
    for shown in ("exp&lt;script>alert(1)&lt;/script>", "&lt;img src=x", "kd&lt;b>T4&lt;/b>"):
        assert shown in md, shown
    assert "<details>" in md  # the report's own HTML stays
    page = (out / "index.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
