"""`kdtheory run / inspect / export / plugins` end to end through typer's CliRunner."""

import gc
import shutil
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kdtheory.cli.app import app, main
from kdtheory.store.runs import open_runs

runner = CliRunner()

TINY_ARGS = [
    "--dataset", "synthetic:n_train=200,n_test=100,num_classes=3,dim=6",
    "--teacher", "mlp:width=32,depth=1",
    "--student", "mlp:width=16,depth=1",
    "--fractions", "0.2,1",
    "--seeds", "2",
    "--methods", "label,kd:T=4,alpha=0.5,kd-shuffled:T=4",
    "--steps", "30",
    "--teacher-steps", "60",
    "--batch-size", "16",
    "--feature-samples", "40",
    "--device", "cpu",
]  # fmt: skip


def test_run_inspect_export_end_to_end(tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", *TINY_ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "trained 12 cell(s)" in result.output
    assert "kd-T4-a0.5" in result.output  # summary table lists the methods
    store = open_runs(out)
    (ds,) = store.values()
    assert list(ds.arm.values) == ["label", "kd-T4-a0.5", "kd-shuffled-T4"]
    assert ds.alpha.values[1] == 0.5
    # a second run resumes: nothing to train
    again = runner.invoke(app, ["run", *TINY_ARGS, "--out", str(out)])
    assert again.exit_code == 0 and "trained 0 cell(s), skipped 12" in again.output

    # inspect names what is missing once a cell is gone
    victim = sorted(out.rglob("cells/label__f0.2__s1.nc"))[0]
    victim.unlink()
    shown = runner.invoke(app, ["inspect", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "missing 1 cell(s)" in shown.output and "label f=0.2 s=1" in shown.output
    assert "teacher: test acc" in shown.output
    assert "convergence:" in shown.output  # the one-line summary

    exported = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "shared")])
    assert exported.exit_code == 0, exported.output
    (combined,) = open_runs(tmp_path / "shared").values()
    assert np.isnan(combined.test_logits.sel({"arm": "label", "fraction": 0.2, "seed": 1})).all()


def test_run_errors_are_clear_and_exit_2(tmp_path):
    bad = runner.invoke(app, ["run", "--methods", "kd:T=4,temp=3", "--out", str(tmp_path)])
    assert bad.exit_code == 2
    assert "no option 'temp'" in bad.output and "Accepted options" in bad.output
    bad = runner.invoke(app, ["run", "--dataset", "mnist2d", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "Did you mean 'mnist1d'" in bad.output
    bad = runner.invoke(app, ["run", "--fractions", "0,0.5", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--fractions" in bad.output
    bad = runner.invoke(app, ["run", "--batch-cells", "many", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--batch-cells" in bad.output
    bad = runner.invoke(
        app, ["run", "--preset", "reference", "--title", "All", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "--title: preset 'reference' has" in bad.output
    bad = runner.invoke(
        app, ["run", "--preset", "smoke", "--device", "gpu0", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "device 'gpu0' is not a device name" in bad.output
    if not torch.cuda.is_available():
        bad = runner.invoke(
            app, ["run", "--preset", "smoke", "--device", "cuda", "--out", str(tmp_path)]
        )
        assert bad.exit_code == 2 and "sees no CUDA GPU" in bad.output
    assert not any(tmp_path.iterdir())


def test_inspect_refuses_a_bad_store(tmp_path):
    (tmp_path / "x.nc").write_text("garbage")
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "x.nc" in result.output
    missing = runner.invoke(app, ["inspect", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_plugins_lists_builtins_with_their_source():
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    for name in ("mnist1d", "digits", "mnist-5k", "synthetic", "npz", "mlp", "cnn", "vit",
                 "label", "kd", "ls", "kd-shuffled", "kd-mse"):  # fmt: skip
        assert name in result.output
    assert "kdtheory" in result.output  # the source distribution


def test_smoke_preset_runs(tmp_path):
    result = runner.invoke(
        app, ["run", "--preset", "smoke", "--out", str(tmp_path), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    (ds,) = open_runs(tmp_path).values()
    assert ds.sizes["arm"] == 4 and ds.sizes["fraction"] == 3 and ds.sizes["seed"] == 2
    assert not np.isnan(ds.test_logits.values).any()
    # the newcomer's first sweep is a converged one, with a teacher worth distilling from
    from kdtheory.store.convergence import check_experiment

    assert check_experiment("smoke", ds).ok, check_experiment("smoke", ds).warnings()
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize(("argv", "code"), [(["list"], 0), (["test", "no-such-thing"], 2)])
def test_the_console_script_freezes_the_heap_when_the_command_ends(monkeypatch, argv, code):
    # the installed `kdtheory` runs main(), which leaves the objects alive at the end to the
    # process exit instead of the shutdown's full collections, whether the command succeeded
    scripts = [e.value for e in entry_points(group="console_scripts") if e.name == "kdtheory"]
    assert scripts == ["kdtheory.cli.app:main"], (
        f"the installed kdtheory script runs {scripts}; reinstall with `pip install -e .`"
    )
    monkeypatch.setattr(sys, "argv", ["kdtheory", *argv])
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        with pytest.raises(SystemExit) as done:
            main()
        assert (done.value.code or 0) == code
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
