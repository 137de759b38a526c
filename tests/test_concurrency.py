"""Two runs on one store, a killed run, a failed first run: nothing mixed, lost or trained twice."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config

from kdtheory.errors import StoreError
from kdtheory.store.runs import open_runs
from kdtheory.training.sweep import run_experiment

ROOT = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from kdtheory.errors import KDTheoryError
    from kdtheory.training.sweep import run_experiment
    changes = json.loads(sys.argv[2])
    try:
        report = run_experiment(tiny_config(**changes), sys.argv[1], device="cpu", batch_cells=1)
    except KDTheoryError as exc:
        print("REFUSED", exc, flush=True)
        sys.exit(3)
    print("TRAINED", report.trained, flush=True)
    """
).format(tests=str(ROOT))

SMALL = {"seeds": [0], "fractions": [0.5, 1.0], "methods": ["label", "kd:T=4"]}


def _start(store: Path, changes: dict) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(store), json.dumps(changes)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_two_identical_runs_at_once_train_each_cell_once(tmp_path):
    a, b = _start(tmp_path, SMALL), _start(tmp_path, SMALL)
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    trained = [int(o.split("TRAINED")[1].split()[0]) for o in outs]
    assert sum(trained) == 4  # 4 cells, each trained by exactly one of the two runs
    assert len(list(tmp_path.rglob("cells/*.nc"))) == 4


def test_two_runs_with_different_recipes_never_mix(tmp_path):
    a = _start(tmp_path, SMALL)
    b = _start(tmp_path, {**SMALL, "lr": 0.002})
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    codes = sorted((a.returncode, b.returncode))
    assert codes == [0, 3], outs  # one trains, the other is refused
    refused = next(o for o in outs if "REFUSED" in o)
    assert "different recipe" in refused and "lr" in refused
    (ds,) = open_runs(tmp_path).values()  # every cell has the experiment's recipe
    assert np.isfinite(ds.test_logits).all()


def test_a_killed_run_resumes_to_the_same_numbers(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    config = {**SMALL, "seeds": [0, 1]}
    run_experiment(tiny_config(**config), whole, device="cpu", batch_cells=1)
    proc = _start(killed, config)
    deadline = time.monotonic() + 300
    while len(list(killed.rglob("cells/*.nc"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(killed.rglob("cells/*.nc")))
    assert 2 <= written < 8, "the run should have been killed mid-sweep"
    report = run_experiment(tiny_config(**config), killed, device="cpu", batch_cells=1)
    assert report.trained == 8 - written and report.skipped == written
    # a write killed midway may leave its temporary file behind: never read as a cell, and
    # swept by a later `kdtheory run` once an hour old (tests/test_reliability.py)
    (a,) = open_runs(whole).values()
    (b,) = open_runs(killed).values()
    for name in ("test_logits", "train_logits", "features", "loss_history"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_a_run_that_fails_before_writing_anything_leaves_no_recipe_behind(tmp_path):
    bad = tmp_path / "not-a-checkpoint.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(StoreError):
        run_experiment(tiny_config(teacher_checkpoint=str(bad)), tmp_path / "s", device="cpu")
    assert not list((tmp_path / "s").rglob("experiment.json"))
    # the corrected command is not refused as "a different recipe"
    report = run_experiment(tiny_config(**SMALL), tmp_path / "s", device="cpu")
    assert report.trained == 4


def test_inspect_names_cells_of_the_sweep_that_were_never_started(tmp_path):
    from typer.testing import CliRunner

    from kdtheory.cli.app import app

    run_experiment(tiny_config(**SMALL), tmp_path, device="cpu")
    # a larger sweep of the same recipe was asked for; pretend it died after the teacher
    from kdtheory.store.runs import record_axes

    (exp,) = [p.name for p in tmp_path.iterdir() if p.is_dir()]
    record_axes(
        tmp_path, exp, {"methods": ["label", "kd-T4"], "fractions": [0.5, 1.0], "seeds": [0, 1]}
    )
    shown = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "missing 4 cell(s)" in shown.output and "kd-T4 f=1 s=1" in shown.output


def test_discarding_a_failed_first_run_keeps_the_lock_file(tmp_path):
    """Another run may wait on that very .lock: deleting it would let two runs in at once."""
    from kdtheory.store.runs import LOCK_FILE, discard_if_empty, ensure_experiment, experiment_lock

    with experiment_lock(tmp_path, "exp") as folder:
        ensure_experiment(tmp_path, "exp", {"lr": 1})
        (folder / "cells").mkdir()
        assert discard_if_empty(tmp_path, "exp")
    assert (folder / LOCK_FILE).exists() and not (folder / "experiment.json").exists()
    # a folder with a written file is never touched
    ensure_experiment(tmp_path, "exp", {"lr": 1})
    (folder / "teacher.nc").write_bytes(b"x")
    assert not discard_if_empty(tmp_path, "exp")
    assert (folder / "experiment.json").exists() and (folder / "teacher.nc").exists()
