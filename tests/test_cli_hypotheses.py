"""`kdtheory list` / `kdtheory test` through typer's CliRunner, and third-party plugins found
through real entry-point discovery (a temporary dist-info on sys.path)."""

from __future__ import annotations

import csv
import io
import json
from functools import partial
from pathlib import Path

import numpy as np
import pluggy
import pytest
import xarray as xr
from helpers import cli_app, stderr_of
from typer.testing import CliRunner

import kdtheory
from kdtheory.cli import hypotheses as cli_hypotheses
from kdtheory.hypothesis.base import Hypothesis
from kdtheory.hypothesis.verdict import EffectRow, Verdict
from kdtheory.plugin import hookspecs
from kdtheory.plugin import manager as plugin_manager

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

EXAMPLE_PLUGIN = Path(__file__).parent / "example_plugin"
runner = CliRunner()
make_app = partial(cli_app, cli_hypotheses.register)


def stdout_of(result) -> str:
    try:
        return result.stdout
    except ValueError:
        return result.output


def experiment(exp_id: str, objectives=("label", "kd"), rng_seed: int = 0) -> xr.Dataset:
    """A tiny schema-v1 experiment in which KD beats label training by about 0.3 accuracy.

    Deliberately v1 (dim ``method``): the CLI tests read it from disk, so they also check that
    v1 files are upgraded when opened.
    """
    rng = np.random.default_rng(rng_seed)
    table = {
        "label": ("label", np.nan, 1.0, np.nan, 0.5),
        "kd": ("kd-T4", 4.0, 0.0, np.nan, 0.8),
        "ls": ("ls", np.nan, 1.0, 0.1, 0.5),
    }
    fractions, seeds, n_train, n_test, k = (0.5, 1.0), 4, 20, 60, 3
    test_labels = rng.integers(0, k, n_test)
    shape = (len(objectives), len(fractions), seeds)
    acc = np.array([table[o][4] for o in objectives])
    test_logits = rng.normal(0, 0.1, shape + (n_test, k))
    correct = rng.random(shape + (n_test,)) < acc[:, None, None, None]
    winner = np.where(correct, test_labels, (test_labels + 1) % k)
    np.put_along_axis(test_logits, winner[..., None], 5.0, axis=-1)
    in_train = np.zeros((len(fractions), seeds, n_train), bool)
    in_train[0, :, :10] = True
    in_train[1] = True
    dims = ("method", "fraction", "seed")
    ds = xr.Dataset(
        {
            "test_logits": (dims + ("test_sample", "class"), test_logits.astype("float32")),
            "train_logits": (
                dims + ("train_sample", "class"),
                rng.normal(size=shape + (n_train, k)).astype("float32"),
            ),
            "in_train": (("fraction", "seed", "train_sample"), in_train),
            "teacher_test_logits": (("test_sample", "class"), rng.normal(size=(n_test, k))),
            "teacher_train_logits": (("train_sample", "class"), rng.normal(size=(n_train, k))),
            "test_labels": (("test_sample",), test_labels.astype("int64")),
            "train_labels": (("train_sample",), rng.integers(0, k, n_train).astype("int64")),
        },
        coords={
            "method": [table[o][0] for o in objectives],
            "fraction": list(fractions),
            "seed": list(range(seeds)),
            "train_sample": np.arange(n_train),
            "test_sample": np.arange(n_test),
            "class": np.arange(k),
            "objective": ("method", list(objectives)),
            "temperature": ("method", [table[o][1] for o in objectives]),
            "alpha": ("method", [table[o][2] for o in objectives]),
            "smoothing": ("method", [table[o][3] for o in objectives]),
            "n_train": ("fraction", [10, 20]),
        },
        attrs={
            "schema": "kdtheory-runs/1",
            "experiment": exp_id,
            "dataset": "toy",
            "teacher": "mlp",
            "student": "mlp",
            "recipe": "{}",
            "kdtheory_version": kdtheory.__version__,
            "created": "2025-01-01T00:00:00",
            "storage_dtype": "float32",
        },
    )
    return ds


@pytest.fixture
def store_path(tmp_path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    experiment("exp_a").to_netcdf(root / "exp_a.nc")
    experiment("exp_b", rng_seed=1).to_netcdf(root / "exp_b.nc")
    return root


class Planted(Hypothesis):
    """A fake hypothesis with a preset p-value; needs label and kd."""

    claim = "Fake claim."
    prediction = "Fake prediction."
    required_objectives = ("label", "kd")
    run_hint = "label,kd:T=4"
    options = {"shift": 0.0}

    def __init__(self, name: str, p: float, objectives=("label", "kd")) -> None:
        self.name = name
        self.p = p
        self.required_objectives = objectives

    def test(self, store, alpha=0.05, shift=0.0):
        rows = [
            EffectRow(str(e), 0.1 + shift, 0.0, 0.2, self.p, 2.0, 4, "supported") for e in store
        ]
        return Verdict(
            hypothesis=self.name,
            claim=self.claim,
            prediction=self.prediction,
            decision="supported" if self.p < alpha else "inconclusive",
            alpha=alpha,
            effect="fake_effect",
            estimate=0.1 + shift,
            ci=(0.0, 0.2),
            p_value=self.p,
            model="fake model",
            statistic=2.0,
            reason="planted",
            experiments=rows,
            pooled=EffectRow("pooled", 0.1, 0.0, 0.2, self.p, 2.0, len(rows), "supported"),
        )


@pytest.fixture
def fake_registry(monkeypatch):
    pm = pluggy.PluginManager("kdtheory")
    pm.add_hookspecs(hookspecs)

    class FakePlugin:
        @kdtheory.hookimpl
        def kdtheory_register_hypotheses(self):
            return [
                Planted("fake-strong", 0.001),
                Planted("fake-weak", 0.04),
                Planted("fake-needs-ls", 0.01, objectives=("label", "ls")),
            ]

    pm.register(FakePlugin(), name="fakeplugin")
    regs = plugin_manager.build_registries(pm)
    monkeypatch.setattr(plugin_manager, "get_registries", lambda: regs)
    return regs


# ----------------------------------------------------------------------------- list


def test_list_text_and_json(fake_registry):
    result = runner.invoke(make_app(), ["list"])
    assert result.exit_code == 0, result.output
    out = stdout_of(result)
    for name in ("fake-strong", "fake-weak", "fake-needs-ls"):
        assert name in out
    assert "Fake claim." in out and "objectives label, ls" in out and "fakeplugin" in out
    result = runner.invoke(make_app(), ["list", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(stdout_of(result))
    assert [d["name"] for d in data] == ["fake-needs-ls", "fake-strong", "fake-weak"]
    assert data[0]["needs"] == {"objectives": ["label", "ls"], "variables": []}
    assert data[0]["source"] == "fakeplugin"


# ----------------------------------------------------------------------------- test


def test_test_one_hypothesis_text(fake_registry, store_path):
    result = runner.invoke(make_app(), ["test", "fake-strong", "--runs", str(store_path)])
    assert result.exit_code == 0, result.output
    out = stdout_of(result)
    assert "fake-strong: SUPPORTED" in out and "exp_a" in out and "exp_b" in out


@pytest.mark.parametrize("fmt", ["json", "markdown", "latex", "csv", "html", "latex-document"])
def test_test_formats(fake_registry, store_path, fmt):
    result = runner.invoke(
        make_app(), ["test", "fake-weak", "--runs", str(store_path), "--format", fmt]
    )
    assert result.exit_code == 0, result.output
    out = stdout_of(result)
    if fmt == "json":
        d = json.loads(out)
        assert d["hypothesis"] == "fake-weak" and d["p_adjusted"] is None
        assert Verdict.from_dict(d).decision == "supported"
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["experiment"] for r in rows] == ["exp_a", "exp_b", "pooled"]
    elif fmt == "latex":
        assert out.startswith("\\begin{tabularx}") and "exp\\_a" in out
    elif fmt == "markdown":
        assert out.startswith("### fake-weak")
    elif fmt == "html":
        assert "<table" in out
    else:
        assert "\\documentclass{article}" in out


def test_test_all_is_a_holm_family(fake_registry, store_path):
    result = runner.invoke(
        make_app(), ["test", "all", "--runs", str(store_path), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    by = {d["hypothesis"]: d for d in json.loads(stdout_of(result))}
    assert by["fake-strong"]["p_adjusted"] == pytest.approx(0.002)
    assert by["fake-weak"]["p_adjusted"] == pytest.approx(0.04)
    assert by["fake-weak"]["decision"] == "supported"  # 0.04 <= 0.05 after Holm
    assert by["fake-needs-ls"]["decision"] == "inconclusive"
    assert "kdtheory run --methods" in by["fake-needs-ls"]["reason"]
    result = runner.invoke(make_app(), ["test", "all", "--runs", str(store_path)])
    assert result.exit_code == 0
    assert "Holm" in stdout_of(result)


def test_test_options_and_output_file(fake_registry, store_path, tmp_path):
    out_file = tmp_path / "out" / "v.json"
    result = runner.invoke(
        make_app(),
        [
            "test",
            "fake-strong",
            "--runs",
            str(store_path),
            "--format",
            "json",
            "--option",
            "shift=0.5",
            "--output",
            str(out_file),
        ],
    )
    assert result.exit_code == 0, result.output
    assert stdout_of(result).strip() == ""
    assert "wrote 1 verdict" in stderr_of(result)
    assert json.loads(out_file.read_text())["estimate"] == pytest.approx(0.6)
    assert [p.name for p in out_file.parent.iterdir()] == ["v.json"]  # no temp file left


@pytest.mark.parametrize(
    "args, message",
    [
        (["test", "fake-strnog"], "Did you mean 'fake-strong'"),
        (["test", "fake-needs-ls"], "kdtheory run --methods label,kd:T=4"),
        (["test", "fake-strong", "--option", "shfit=1"], "no option 'shfit'"),
        (["test", "fake-strong", "--option", "shift"], "key=value"),
        (["test", "fake-strong", "--option", "shift=abc"], "cannot read 'abc'"),
        (["test", "fake-strong", "--alpha", "0.7"], "alpha"),
        (["test", "all", "--option", "nope=1"], "no hypothesis accepts option"),
    ],
)
def test_test_usage_errors_exit_2(fake_registry, store_path, args, message):
    result = runner.invoke(make_app(), args + ["--runs", str(store_path)])
    assert result.exit_code == 2, result.output
    assert message in stderr_of(result)
    assert stdout_of(result).strip() == "" or message not in stdout_of(result)


def test_test_unusable_store_exits_2(fake_registry, tmp_path):
    result = runner.invoke(make_app(), ["test", "fake-strong", "--runs", str(tmp_path / "no")])
    assert result.exit_code == 2
    assert "does not exist" in stderr_of(result)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.nc").write_text("not netcdf")
    result = runner.invoke(make_app(), ["test", "fake-strong", "--runs", str(bad)])
    assert result.exit_code == 2
    assert "x.nc" in stderr_of(result)


def test_bad_format_is_a_usage_error(fake_registry, store_path):
    result = runner.invoke(
        make_app(), ["test", "fake-strong", "--runs", str(store_path), "--format", "docx"]
    )
    assert result.exit_code == 2


def test_commands_are_on_the_main_app():
    from kdtheory.cli.app import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"list", "test"} <= names


# ----------------------------------------------------------------------------- plugins


def install_dist(site: Path, dist: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info with METADATA and entry_points.txt)."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[kdtheory]\n{lines}")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site folder on sys.path holding the example plugin 'installed' from its pyproject."""
    root = tmp_path / "site"
    root.mkdir()
    pyproject = tomllib.loads((EXAMPLE_PLUGIN / "pyproject.toml").read_text())
    install_dist(
        root, pyproject["project"]["name"], pyproject["project"]["entry-points"]["kdtheory"]
    )
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))  # the package's import path
    monkeypatch.syspath_prepend(str(root))
    plugin_manager.reset()
    yield root
    plugin_manager.reset()


def test_example_plugin_through_entry_points(site, store_path):
    result = runner.invoke(make_app(), ["list", "--format", "json"])
    assert result.exit_code == 0, result.output
    listed = {d["name"]: d for d in json.loads(stdout_of(result))}
    assert "example-kd-gain" in listed
    assert listed["example-kd-gain"]["source"].startswith("example")
    result = runner.invoke(make_app(), ["test", "example-kd-gain", "--runs", str(store_path)])
    assert result.exit_code == 0, result.output
    assert "example-kd-gain: SUPPORTED" in stdout_of(result)
    result = runner.invoke(
        make_app(),
        [
            "test",
            "example-kd-gain",
            "--runs",
            str(store_path),
            "--option",
            "min_fraction=0.9",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(stdout_of(result))["alternative"] == "greater"


def test_broken_plugin_warns_and_the_rest_works(site, store_path):
    (site / "kdtheory_broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    install_dist(site, "kdtheory-broken", {"broken": "kdtheory_broken_plugin"})
    result = runner.invoke(make_app(), ["list"])
    assert result.exit_code == 0, result.output
    err = stderr_of(result)
    assert "warning" in err and "'broken'" in err and "boom at import" in err
    assert "example-kd-gain" in stdout_of(result)
    result = runner.invoke(make_app(), ["test", "example-kd-gain", "--runs", str(store_path)])
    assert result.exit_code == 0, result.output


def test_plugin_warning_through_the_plugin_manager(site):
    (site / "kdtheory_missing_dep.py").write_text("import a_module_that_does_not_exist\n")
    install_dist(site, "kdtheory-missing", {"missingdep": "kdtheory_missing_dep"})
    with pytest.warns(plugin_manager.PluginLoadWarning, match="'missingdep'"):
        pm = plugin_manager.make_plugin_manager()
    assert "example-kd-gain" in plugin_manager.build_registries(pm).hypotheses


def test_duplicate_name_from_two_plugins_is_an_error_naming_both(site, store_path):
    (site / "kdtheory_copycat.py").write_text(
        "import kdtheory\n"
        "from kdtheory_example import KDGain\n"
        "@kdtheory.hookimpl\n"
        "def kdtheory_register_hypotheses():\n"
        "    return [KDGain()]\n"
    )
    install_dist(site, "kdtheory-copycat", {"copycat": "kdtheory_copycat"})
    result = runner.invoke(make_app(), ["list"])
    assert result.exit_code == 2
    err = stderr_of(result)
    assert "'example-kd-gain' is registered twice" in err
    assert "example" in err and "copycat" in err
    result = runner.invoke(make_app(), ["test", "example-kd-gain", "--runs", str(store_path)])
    assert result.exit_code == 2


def test_example_plugin_through_entry_points_passes_check_hypothesis(site):
    from kdtheory.hypothesis import get_hypothesis
    from kdtheory.testing import check_hypothesis

    effect = {"kd_gain": 3.0, "kd_gain_slope": 0.0}  # KD beats label training by 3 points
    null = {"kd_gain": 0.0, "kd_gain_slope": 0.0, "kd_rank_weight": 0.3}  # and then it does not
    for name in ("example-kd-gain", "example-kd-agreement"):
        hyp = get_hypothesis(name)
        assert type(hyp).__module__.startswith("kdtheory_example")
        report = check_hypothesis(hyp, effect=effect, null=null, n=10)
        assert report.passed and len(report.checks) == 8, str(report)


def test_docs_show_the_example_package_verbatim():
    doc = (Path(__file__).parents[1] / "docs" / "writing-hypotheses.md").read_text()
    for part in ("pyproject.toml", "kdtheory_example/__init__.py", "kdtheory_example/agreement.py"):
        source = (EXAMPLE_PLUGIN / part).read_text()
        assert source.strip() in doc, f"docs/writing-hypotheses.md is out of date with {part}"
