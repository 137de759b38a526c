"""Modelling factors: ``kdtheory test data-efficiency --by`` and its statistics, calibrated on
synthetic stores with a known answer (no interaction / a planted one)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kdtheory.errors import MissingRequirementError, SpecError
from kdtheory.hypotheses.data_efficiency import by_factor
from kdtheory.hypotheses.factor_report import factor_figure, factor_panels
from kdtheory.hypotheses.factors import check_factor, factor_test, teacher_fraction_of
from kdtheory.stats.factors import (
    group_contrasts,
    oneway_anova,
    paired_contrasts,
    repeated_measures_anova,
)
from kdtheory.testing.synthetic import make_experiment

ALPHA = 0.05


def _mc_limit(rate: float, n: int) -> float:
    """``rate`` plus two binomial standard errors: what a calibrated test stays under."""
    return rate + 2 * math.sqrt(rate * (1 - rate) / n)


# ------------------------------------------------------------------ the statistics
def test_repeated_measures_anova_matches_a_two_way_ols() -> None:
    """Without the correction the F is the level F of ``y ~ C(unit) + C(level)``."""
    import pandas as pd
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 4)) + np.array([0.0, 0.5, 1.0, 0.2]) + rng.normal(size=(6, 1))
    res = repeated_measures_anova(m)
    long = pd.DataFrame(
        [(u, lv, m[u, lv]) for u in range(6) for lv in range(4)], columns=["u", "lv", "y"]
    )
    table = anova_lm(ols("y ~ C(u) + C(lv)", long).fit())
    assert res.statistic == pytest.approx(float(table.loc["C(lv)", "F"]))
    assert 1 / 3 <= res.epsilon <= 1
    assert res.df_num == pytest.approx(3 * res.epsilon)
    assert res.df_den == pytest.approx(15 * res.epsilon)
    # the corrected p is never below the uncorrected one
    assert res.p_value >= float(table.loc["C(lv)", "PR(>F)"]) - 1e-12


def test_oneway_anova_matches_scipy_and_contrasts_are_t_intervals() -> None:
    from scipy import stats

    rng = np.random.default_rng(1)
    groups = ["a"] * 4 + ["b"] * 3 + ["c"] * 5
    values = rng.normal(size=12) + np.array([0.0] * 4 + [1.0] * 3 + [2.0] * 5)
    res = oneway_anova(values, groups)
    ref = stats.f_oneway(values[:4], values[4:7], values[7:])
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    (b, c) = group_contrasts(values, groups, ["a", "b", "c"])
    assert b.estimate == pytest.approx(values[4:7].mean() - values[:4].mean())
    assert b.df == 9 and c.n == 9
    lo, hi = c.interval(ALPHA)
    assert lo < c.estimate < hi


def test_paired_contrasts_equal_a_paired_t_test() -> None:
    from scipy import stats

    rng = np.random.default_rng(2)
    m = rng.normal(size=(5, 2)) + [0.0, 0.7]
    (c,) = paired_contrasts(m, ["x", "y"])
    t = stats.ttest_rel(m[:, 1], m[:, 0])
    assert c.estimate / c.std_error == pytest.approx(t.statistic)
    assert (c.level, c.reference, c.df) == ("y", "x", 4)
    # two levels: the repeated-measures F is the paired t squared, epsilon 1
    rm = repeated_measures_anova(m)
    assert rm.statistic == pytest.approx(t.statistic**2)
    assert rm.p_value == pytest.approx(t.pvalue)
    # equivalence: a difference far inside a wide margin is equivalent, outside a tiny one not
    assert c.equivalence_p(100.0) < 0.01
    assert c.equivalence_p(1e-6) > 0.5


def test_anova_needs_units_and_levels() -> None:
    assert math.isnan(repeated_measures_anova(np.ones((1, 3))).p_value)
    assert math.isnan(oneway_anova([1.0, 2.0], ["a", "b"]).p_value)


# ------------------------------------------------------------------ synthetic stores
#: synthetic arms renamed to KD temperatures: kd-T1's gain slope is kd_gain_slope -
#: ls_gap_slope, kd-T8's kd_gain_slope - shuffled_gap_slope
_AS_TEMPERATURE = {
    "label": ("label", "label", math.nan),
    "kd-T4": ("kd-T4", "kd", 4.0),
    "ls": ("kd-T1", "kd", 1.0),
    "kd-shuffled-T4": ("kd-T8", "kd", 8.0),
}

_SMALL = {"features": False, "n_seeds": 4, "n_test": 160, "n_train": 240}


def _temperature_experiment(seed: int, name: str = "e", **knobs: float):
    ds = make_experiment(seed, name, **{**_SMALL, **knobs})
    new = [_AS_TEMPERATURE[str(a)] for a in ds["arm"].values]
    return ds.assign_coords(
        arm=[a[0] for a in new],
        objective=("arm", [a[1] for a in new]),
        temperature=("arm", [a[2] for a in new]),
    )


def _between_experiment(seed: int, name: str, student: str, share: float, slope: float):
    ds = make_experiment(seed, name, methods=("label", "kd-T4"), kd_gain_slope=slope, **_SMALL)
    ds.attrs["student"] = student
    ds.attrs["recipe"] = json.dumps({"generator": "synthetic"})
    if share != 1:
        ds.attrs["teacher_fraction"] = share
    return ds


def _null_within(seed: int) -> dict:
    return {"e": _temperature_experiment(seed, ls_gap_slope=0.0, shuffled_gap_slope=0.0)}


def test_temperature_levels_and_a_planted_interaction_are_found() -> None:
    store = {"e": _temperature_experiment(3, ls_gap_slope=-4.0, shuffled_gap_slope=3.0)}
    res = factor_test(store, "temperature", ALPHA)
    assert [r["level"] for r in res.levels] == ["T=1", "T=4", "T=8"]
    assert res.design == "within" and res.units == "seeds"
    assert res.decision == "supported"
    slopes = {r["level"]: r["slope"] for r in res.levels}
    # planted: kd-T1 slope -2 + 4 = +2, kd-T4 -2, kd-T8 -2 - 3 = -5 (points per ln kappa)
    assert slopes["T=1"] > slopes["T=4"] > slopes["T=8"]
    assert slopes["T=1"] - slopes["T=4"] == pytest.approx(4.0, abs=1.5)
    text = res.as_text(details=True)
    assert "data-efficiency by temperature: SUPPORTED" in text
    assert "repeated-measures ANOVA" in text
    assert "\\paragraph{Data efficiency by temperature: supported.}" in res.as_latex()
    assert "<h3>data-efficiency by temperature" in res.as_html()
    doc = json.loads(res.as_json())
    assert doc["by"] == "temperature" and doc["decision"] == "supported"
    assert doc["test"]["p_value"] < ALPHA
    assert res.as_csv().splitlines()[0].startswith("experiment,")


@pytest.mark.parametrize("n_experiments", [1, 3])
def test_within_factor_null_keeps_its_level(n_experiments: int) -> None:
    """No interaction planted: the rejection rate stays at alpha within Monte Carlo error."""
    reps = 120 if n_experiments == 1 else 60
    rejected = 0
    for r in range(reps):
        store = {
            f"e{i}": _temperature_experiment(
                1000 * r + i, f"e{i}", ls_gap_slope=0.0, shuffled_gap_slope=0.0
            )
            for i in range(n_experiments)
        }
        res = factor_test(store, "temperature", ALPHA)
        assert math.isfinite(res.test.p_value)
        rejected += res.decision == "supported"
    assert rejected / reps <= _mc_limit(ALPHA, reps)


@pytest.mark.parametrize("n_experiments", [1, 3])
def test_within_factor_power(n_experiments: int) -> None:
    reps = 20
    found = 0
    for r in range(reps):
        store = {
            f"e{i}": _temperature_experiment(
                7000 + 100 * r + i, f"e{i}", ls_gap_slope=-3.0, shuffled_gap_slope=0.0
            )
            for i in range(n_experiments)
        }
        res = factor_test(store, "temperature", ALPHA)
        found += res.decision == "supported"
        if n_experiments > 1:
            assert res.units == "experiments" and res.test.n_units == n_experiments
    assert found / reps >= 0.8


def test_equivalent_levels_are_rejected() -> None:
    """Identical slopes and little noise: equivalence within the margin is shown."""
    store = {
        "e": _temperature_experiment(
            5,
            ls_gap_slope=0.0,
            shuffled_gap_slope=0.0,
            cell_sd=0.05,
            method_seed_sd=0.05,
            n_seeds=8,
            n_test=2000,
        )
    }
    res = factor_test(store, "temperature", ALPHA, slope_margin=1.0)
    assert res.decision == "rejected"
    assert max(c["tost_p"] for c in res.contrasts) < ALPHA


def _between_store(seed: int, slopes: dict[str, float], shares=(1.0,)) -> dict:
    store = {}
    for j, share in enumerate(shares):
        for i, (student, slope) in enumerate(slopes.items()):
            name = f"{student}-{share:g}"
            store[name] = _between_experiment(seed * 100 + 10 * j + i, name, student, share, slope)
    return store


@pytest.mark.parametrize("shares", [(1.0,), (0.25, 1.0)])
def test_between_factor_calibration(shares: tuple[float, ...]) -> None:
    null = {"mlp:width=32": -2.0, "mlp:width=64": -2.0, "mlp:width=128": -2.0}
    reps = 80 if len(shares) == 1 else 60
    rejected = sum(
        factor_test(_between_store(r, null, shares), "student", ALPHA).decision == "supported"
        for r in range(reps)
    )
    assert rejected / reps <= _mc_limit(ALPHA, reps)
    planted = {"mlp:width=32": -5.0, "mlp:width=64": -2.0, "mlp:width=128": 1.0}
    found = [
        factor_test(_between_store(500 + r, planted, shares), "student", ALPHA) for r in range(12)
    ]
    assert sum(f.decision == "supported" for f in found) / 12 >= 0.8
    res = found[0]
    assert res.design == "between"
    assert res.units == ("seeds" if len(shares) == 1 else "strata")
    # natural order of the students, not alphabetical
    assert [r["level"] for r in res.levels] == list(planted)


def test_teacher_fraction_levels_come_from_the_experiments() -> None:
    store = {}
    for i, (share, slope) in enumerate([(0.25, -6.0), (1.0, 0.0)]):
        name = f"t{share:g}"
        store[name] = _between_experiment(40 + i, name, "mlp", share, slope)
    assert teacher_fraction_of(store["t1"]) == 1.0
    assert teacher_fraction_of(store["t0.25"]) == 0.25
    res = factor_test(store, "teacher-fraction", ALPHA)
    assert [r["level"] for r in res.levels] == ["teacher share 0.25", "teacher share 1"]
    assert res.decision == "supported"


def test_confounded_experiments_are_not_compared() -> None:
    store = _between_store(1, {"mlp:width=32": -2.0, "mlp:width=64": 0.0})
    store["mlp:width=64-1"].attrs["recipe"] = json.dumps({"lr": 0.1})
    with pytest.raises(MissingRequirementError, match="also differ in their dataset"):
        factor_test(store, "student", ALPHA)


def test_a_single_level_says_what_to_run() -> None:
    store = {"e": make_experiment(0, "e", **_SMALL)}
    with pytest.raises(MissingRequirementError, match=r"only 'T=4'.*kd:T=1,kd:T=4,kd:T=8"):
        factor_test(store, "temperature", ALPHA)
    with pytest.raises(MissingRequirementError, match="--teacher-fraction 0.25,1"):
        factor_test(store, "teacher-fraction", ALPHA)


def test_unknown_factor_suggests_one() -> None:
    with pytest.raises(SpecError, match="Did you mean 'temperature'.*Choose one of: "):
        check_factor("temprature")
    with pytest.raises(SpecError, match="unknown factor"):
        by_factor({}, "width")


def test_options_reach_the_test() -> None:
    store = {"e": _temperature_experiment(3, ls_gap_slope=-4.0, shuffled_gap_slope=3.0)}
    res = by_factor(store, "temperature", ALPHA, slope_margin="2.5", pooling="hksj")
    assert res.slope_margin == 2.5
    with pytest.raises(SpecError, match="no option"):
        by_factor(store, "temperature", ALPHA, margin="1")


def test_factor_figure_draws_one_line_per_level() -> None:
    store = {"e": _temperature_experiment(3, ls_gap_slope=-4.0, shuffled_gap_slope=3.0)}
    panels = factor_panels(store, "temperature")
    assert [lv for lv, _, _ in panels[0][1]] == ["T=1", "T=4", "T=8"]
    fig = factor_figure(store, "temperature", result=factor_test(store, "temperature"))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["T=1", "T=4", "T=8"]
    assert any("Interaction: F(" in t.get_text() for t in fig.texts)


# ------------------------------------------------------------------ the command line
@pytest.fixture
def temperature_store(tmp_path):
    path = tmp_path / "store"
    path.mkdir()
    ds = _temperature_experiment(3, ls_gap_slope=-4.0, shuffled_gap_slope=3.0)
    ds.to_netcdf(path / "e.nc")
    return path


def test_cli_test_by_factor(temperature_store) -> None:
    from functools import partial

    from helpers import cli_app, stderr_of
    from typer.testing import CliRunner

    from kdtheory.cli import hypotheses as cli_hypotheses
    from kdtheory.cli import report as cli_report

    runner = CliRunner()
    app = partial(cli_app, cli_hypotheses.register)()
    runs = str(temperature_store)
    ok = runner.invoke(app, ["test", "data-efficiency", "--by", "temperature", "-r", runs])
    assert ok.exit_code == 0, ok.output
    assert "data-efficiency by temperature: SUPPORTED" in ok.stdout
    js = runner.invoke(
        app, ["test", "data-efficiency", "--by", "temperature", "-r", runs, "-f", "json"]
    )
    assert json.loads(js.stdout)["levels"][0]["level"] == "T=1"
    typo = runner.invoke(app, ["test", "data-efficiency", "--by", "temprature", "-r", runs])
    assert typo.exit_code == 2
    assert "Did you mean 'temperature'" in stderr_of(typo)
    single = runner.invoke(app, ["test", "data-efficiency", "--by", "student", "-r", runs])
    assert single.exit_code == 2
    assert "only 'synthetic-student'" in stderr_of(single)
    other = runner.invoke(app, ["test", "dark-knowledge", "--by", "student", "-r", runs])
    assert other.exit_code == 2 and "is not tested by factor" in stderr_of(other)

    plot_app = partial(cli_app, cli_report.register)()
    out = temperature_store.parent / "factor.png"
    drawn = runner.invoke(
        plot_app, ["plot", "factor", "--by", "temperature", "-r", runs, "-o", str(out)]
    )
    assert drawn.exit_code == 0, drawn.output
    assert out.stat().st_size > 10_000
    no_by = runner.invoke(plot_app, ["plot", "factor", "-r", runs, "-o", str(out)])
    assert no_by.exit_code == 2 and "give --by" in stderr_of(no_by)


def test_report_has_a_section_per_factor_with_levels(tmp_path) -> None:
    from kdtheory.report.document import build_report

    store = {"e": _temperature_experiment(3, ls_gap_slope=-4.0, shuffled_gap_slope=3.0)}
    out = build_report(store, tmp_path / "report", hypotheses="data-efficiency")
    md = (out / "report.md").read_text()
    assert "Data efficiency by temperature" in md
    assert "Data efficiency by student" not in md  # one student: no section
    assert (out / "figures" / "data-efficiency-by-temperature.png").is_file()
    assert (out / "tables" / "data-efficiency-by-temperature-levels.tex").is_file()
    assert "T=8" in (out / "tables" / "data-efficiency-by-temperature-levels.md").read_text()


def test_shipping_script_drops_only_the_feature_variables(tmp_path, capsys) -> None:
    import importlib.util
    from pathlib import Path

    from kdtheory import open_runs

    path = Path(__file__).parents[1] / "benchmarks" / "factors_store.py"
    spec = importlib.util.spec_from_file_location("factors_store", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    src = tmp_path / "runs"
    src.mkdir()
    ds = make_experiment(0, "e", n_seeds=3, n_test=100, n_train=150)
    assert "features" in ds
    ds.to_netcdf(src / "e.nc")
    module.main([str(src), str(tmp_path / "out")])
    assert "wrote 1 experiments" in capsys.readouterr().out
    back = open_runs(tmp_path / "out")["e"]
    assert not set(module.FEATURE_VARIABLES) & set(back.variables)
    assert {"test_logits", "train_logits", "in_train", "train_labels"} <= set(back.data_vars)
    assert np.array_equal(back.kd.accuracy().values, ds.kd.accuracy().values, equal_nan=True)
