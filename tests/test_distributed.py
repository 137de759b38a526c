"""Sweeps on a Dask LocalCluster: the same store as in-process, and no cell lost or trained twice
when a worker or the whole run is killed (SIGKILL), or when two runs share a store."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from kdtheory.cli.app import app
from kdtheory.errors import SpecError
from kdtheory.store import runs as st
from kdtheory.store.runs import open_runs
from kdtheory.training.distributed import (
    cluster_group_size,
    open_client,
    parse_cluster,
)
from kdtheory.training.sweep import (
    configs_from_options,
    parse_fractions,
    run_experiment,
    write_new_dataset,
)

pytest.importorskip("distributed")  # the `cluster` extra (part of `dev`)
pytestmark = pytest.mark.slow

#: a sweep of 12 cells whose groups of 2 cells take a few tenths of a second each, so that a
#: kill lands in the middle of it
CLI_ARGS = [
    "--dataset", "synthetic:n_train=240,n_test=120,num_classes=4,dim=8,seed=3",
    "--teacher", "mlp:width=32,depth=1",
    "--student", "mlp:width=16,depth=1",
    "--fractions", "0.1,0.5,1",
    "--seeds", "2",
    "--methods", "label,kd:T=4",
    "--steps", "200",
    "--teacher-steps", "80",
    "--batch-size", "16",
    "--feature-samples", "48",
    "--batch-cells", "2",
    "--device", "cpu",
]  # fmt: skip
N_CELLS = 12


def _config(**changes):
    """The experiment of ``CLI_ARGS``, built as the CLI builds it."""
    (cfg,) = configs_from_options(
        None,
        {
            "dataset": "synthetic:n_train=240,n_test=120,num_classes=4,dim=8,seed=3",
            "teacher": "mlp:width=32,depth=1",
            "student": "mlp:width=16,depth=1",
            "fractions": parse_fractions("0.1,0.5,1"),
            "seeds": (0, 1),
            "methods": ("label", "kd:T=4"),
            "steps": 200,
            "teacher_steps": 80,
            "batch_size": 16,
            "feature_samples": 48,
        }
        | changes,
    )
    return cfg


@pytest.fixture(scope="module")
def client():
    """One LocalCluster of 2 worker processes for the tests of this module."""
    with open_client("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The sweep trained in-process, in groups of 2 cells like the cluster runs."""
    out = tmp_path_factory.mktemp("in-process")
    run_experiment(_config(), out, device="cpu", batch_cells=2)
    return out


def _cells(store: Path) -> list[str]:
    return sorted(p.name for p in store.rglob("cells/*.nc"))


def assert_same_store(a: Path, b: Path, exact: bool = False) -> None:
    """Every variable of the two stores equal to float tolerance: 1e-4 of its largest value, a few
    steps of the store's int16 packing (3e-5 of the range), which float rounding can cross when
    a cell trains in a group of another size (a retried task trains only its missing cells).
    ``exact``: the same to the bit."""
    sa, sb = open_runs(a), open_runs(b)
    assert list(sa) == list(sb)
    for name in sa:
        da, db = sa[name], sb[name]
        assert set(da.data_vars) == set(db.data_vars)
        for var in da.data_vars:
            x, y = da[var].values, db[var].values
            if exact:
                np.testing.assert_array_equal(x, y, err_msg=var)
            elif np.issubdtype(x.dtype, np.floating):
                scale = float(np.nanmax(np.abs(x))) if np.isfinite(x).any() else 1.0
                np.testing.assert_allclose(x, y, rtol=0, atol=1e-4 * max(scale, 1.0), err_msg=var)
            else:
                np.testing.assert_array_equal(x, y, err_msg=var)


def test_cluster_store_equals_in_process(client, reference, tmp_path):
    report = run_experiment(_config(), tmp_path, device="cpu", batch_cells=2, client=client)
    assert (report.trained, report.skipped) == (N_CELLS, 0)
    assert _cells(tmp_path) == _cells(reference) and len(_cells(tmp_path)) == N_CELLS
    # the same groups as in-process; workers run one thread, so this process too for bits
    assert_same_store(reference, tmp_path, exact=torch.get_num_threads() == 1)
    again = run_experiment(_config(), tmp_path, device="cpu", batch_cells=2, client=client)
    assert (again.trained, again.skipped, again.teacher) == (0, N_CELLS, "store")


def _worker_running_cells(client, timeout: float = 60.0) -> str:
    """The address of a worker running a task of cells, once one is (and a cell is written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for address, keys in client.processing().items():
            if any(str(k).startswith("kdtheory-cells-") for k in keys):
                return address
        time.sleep(0.02)
    raise AssertionError("no worker ran a task of cells")


def test_worker_killed_mid_sweep_every_cell_once(client, reference, tmp_path):
    cfg = _config()
    result: dict = {}

    def sweep() -> None:
        try:
            result["report"] = run_experiment(
                cfg, tmp_path, device="cpu", batch_cells=2, client=client
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=sweep)
    thread.start()
    cells = st.experiment_dir(tmp_path, cfg.experiment_id) / st.CELLS_DIR
    deadline = time.monotonic() + 60
    while not (cells.is_dir() and any(cells.glob("*.nc"))) and time.monotonic() < deadline:
        time.sleep(0.02)
    address = _worker_running_cells(client)
    pid = client.run(os.getpid, workers=[address])[address]
    os.kill(pid, signal.SIGKILL)
    written_at_kill = len(_cells(tmp_path))
    thread.join(timeout=120)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    report = result["report"]
    assert 0 < written_at_kill < N_CELLS  # the kill came mid-sweep
    assert report.trained + report.skipped == N_CELLS
    assert report.skipped == report.found_in_tasks  # only cells of the killed task's attempt
    assert _cells(tmp_path) == _cells(reference) and len(_cells(tmp_path)) == N_CELLS
    assert_same_store(reference, tmp_path)
    assert pid not in client.run(os.getpid).values()  # the nanny started a new process


def test_two_runs_at_once_on_one_store(client, reference, tmp_path):
    reports = []

    def sweep() -> None:
        reports.append(
            run_experiment(_config(), tmp_path, device="cpu", batch_cells=2, client=client)
        )

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(reports) == 2
    assert sorted(r.trained for r in reports) == [0, N_CELLS]  # the lock: one waits, skips all
    assert len(_cells(tmp_path)) == N_CELLS
    assert_same_store(reference, tmp_path)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_killed_run_resumes_without_training_a_cell_twice(reference, tmp_path):
    """SIGKILL on the `kdtheory run` process: its workers exit with it, and the same command
    trains exactly the cells that were missing."""
    kdtheory = Path(sys.executable).with_name("kdtheory")
    cmd = [str(kdtheory), "run", *CLI_ARGS, "--cluster", "local:2"]
    cmd += ["--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while len(_cells(tmp_path)) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.02)
        proc.kill()  # SIGKILL on the client only: its worker processes must not stay behind
        proc.wait()
        deadline = time.monotonic() + 30
        while not _group_gone(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _group_gone(proc.pid), "worker processes outlived the killed run"
    finally:
        if not _group_gone(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
    before = {p.name: p.stat().st_ino for p in tmp_path.rglob("cells/*.nc")}
    assert 2 <= len(before) < N_CELLS
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    summary = re.search(r"trained (\d+) cell\(s\), skipped (\d+) already done", again.stdout)
    assert summary is not None, again.stdout
    assert (int(summary[1]), int(summary[2])) == (N_CELLS - len(before), len(before))
    after = {p.name: p.stat().st_ino for p in tmp_path.rglob("cells/*.nc")}
    assert len(after) == N_CELLS
    assert {k: after[k] for k in before} == before  # the cells of the killed run kept as written
    assert_same_store(reference, tmp_path)


def test_write_new_dataset_never_replaces_a_cell(tmp_path):
    path = tmp_path / "cells" / "x.nc"
    first = xr.Dataset({"v": (("i",), np.arange(3.0))})
    assert write_new_dataset(first, path)
    assert not write_new_dataset(xr.Dataset({"v": (("i",), np.ones(3))}), path)
    with xr.open_dataset(path) as ds:
        np.testing.assert_array_equal(ds["v"].values, np.arange(3.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.nc"]  # no temporary file left


def test_cluster_options(tmp_path):
    assert parse_cluster("local:3") == 3
    for bad in ("local:0", "local", "slurm:2", "local:-1"):
        with pytest.raises(SpecError, match="local:N"):
            parse_cluster(bad)
    assert cluster_group_size(24, True, 24, 2) == 6  # about two tasks per worker thread
    assert cluster_group_size(3, True, 24, 2) == 3  # never above the memory budget's
    assert cluster_group_size(5, False, 24, 2) == 5  # --batch-cells N as given
    runner = CliRunner()
    both = runner.invoke(
        app, ["run", "--cluster", "local:1", "--scheduler", "tcp://x:1", "--out", str(tmp_path)]
    )
    assert both.exit_code == 2 and "give one of them" in both.output
    bad = runner.invoke(app, ["run", *CLI_ARGS, "--cluster", "local:0", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "local:N" in bad.output


def test_scheduler_address_runs_on_that_clusters_workers(client, reference, tmp_path):
    """--scheduler ADDRESS: the sweep runs on the workers of a running cluster, left running."""
    address = client.scheduler.address
    result = CliRunner().invoke(
        app, ["run", *CLI_ARGS, "--scheduler", address, "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert f"trained {N_CELLS} cell(s), skipped 0" in result.output
    assert_same_store(reference, tmp_path, exact=torch.get_num_threads() == 1)
    assert len(client.nthreads()) == 2  # the cluster is not closed by the run


def test_in_process_run_starts_no_cluster(tmp_path):
    """Without --cluster/--scheduler the sweep runs in this process as before: kdtheory's Dask
    code is not even imported and no process is started. (xarray itself imports dask, and dask
    distributed, on its first netCDF write when they are installed.)"""
    code = (
        "import sys, psutil\n"
        "from typer.testing import CliRunner\n"
        "from kdtheory.cli.app import app\n"
        f"args = {CLI_ARGS!r} + ['--steps', '5', '--out', {str(tmp_path)!r}]\n"
        "result = CliRunner().invoke(app, ['run', *args])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('kdtheory.training.distributed' in sys.modules, psutil.Process().children())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False []"
    assert len(_cells(tmp_path)) == N_CELLS
