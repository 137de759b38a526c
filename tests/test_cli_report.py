"""`kdtheory report` and `kdtheory plot` through typer's CliRunner on a small synthetic store."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from helpers import SMALL, cli_app, stderr_of
from typer.testing import CliRunner

from kdtheory.cli import report as cli_report
from kdtheory.testing.synthetic import make_store

runner = CliRunner()
make_app = partial(cli_app, cli_report.register)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    for name, ds in make_store(1, seed=11, **SMALL).items():
        ds.to_netcdf(folder / f"{name}.nc")
    return folder


def test_report_writes_the_folder(runs, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(
        make_app(),
        ["report", "--runs", str(runs), "--out", str(out), "--hypotheses", "data-efficiency"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in stderr_of(result)
    for name in (
        "index.html",
        "report.md",
        "verdicts.json",
        "figures/kd-gain.pdf",
        "figures/accuracy.png",
        "tables/verdicts-document.tex",
    ):
        assert (out / name).is_file(), name
    data = json.loads((out / "verdicts.json").read_text())
    assert [v["hypothesis"] for v in data["verdicts"]] == ["data-efficiency"]
    assert "report" in data["provenance"]["command"]
    assert "--hypotheses data-efficiency" in data["provenance"]["command"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hypotheses", "data-eficiency"], "Did you mean 'data-efficiency'"),
        (["--alpha", "0.7"], "--alpha"),
    ],
)
def test_report_usage_errors_exit_2(runs, tmp_path, args, message):
    result = runner.invoke(
        make_app(), ["report", "--runs", str(runs), "--out", str(tmp_path / "r"), *args]
    )
    assert result.exit_code == 2
    assert message in stderr_of(result)
    assert not (tmp_path / "r").exists()


def test_report_bad_store_exits_2(tmp_path):
    result = runner.invoke(
        make_app(), ["report", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert "does not exist" in stderr_of(result)


def test_report_refuses_a_foreign_folder(runs, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    result = runner.invoke(
        make_app(),
        ["report", "--runs", str(runs), "--out", str(tmp_path), "-H", "data-efficiency"],
    )
    assert result.exit_code == 2
    assert "not a kdtheory report" in stderr_of(result)


def test_plot_writes_one_figure(runs, tmp_path):
    out = tmp_path / "acc.png"
    result = runner.invoke(make_app(), ["plot", "accuracy", "--runs", str(runs), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("name", "output", "message"),
    [
        ("acuracy", "a.png", "Did you mean 'accuracy'"),
        ("temperature", "t.png", "temperature"),
        ("accuracy", "a.xyz", "cannot write"),
        ("accuracy", "a", "suffix"),
    ],
)
def test_plot_errors_exit_2(runs, tmp_path, name, output, message):
    result = runner.invoke(
        make_app(), ["plot", name, "--runs", str(runs), "-o", str(tmp_path / output)]
    )
    assert result.exit_code == 2
    assert message in stderr_of(result)


def test_plot_unknown_experiment_exits_2(runs, tmp_path):
    result = runner.invoke(
        make_app(),
        ["plot", "gaps", "--runs", str(runs), "-o", str(tmp_path / "g.png"), "-e", "nope"],
    )
    assert result.exit_code == 2
    assert "no experiment" in stderr_of(result)
