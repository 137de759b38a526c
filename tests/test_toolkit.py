"""The toolkit helpers the built-ins share, on small hand-made inputs with known answers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import xarray as xr

from kdtheory.hypothesis.sections import (
    accuracy_column,
    ci_column,
    estimate_columns,
    kappa_table,
    table_level,
)
from kdtheory.hypothesis.template import Options, PooledHypothesis
from kdtheory.hypothesis.toolkit import (
    Effect,
    Equivalence,
    ExperimentResult,
    Ruling,
    SkipExperiment,
    cell_records,
    directional_ruling,
    fraction_means,
    fraction_records,
    intersection_union,
    intersection_union_p,
    kd_and,
    mean_ci_columns,
    pick_kd,
    require,
    result_text,
)
from kdtheory.store.schema import SCHEMA

NAN = float("nan")


def experiment(
    arms: Mapping[str, tuple[str, float]] | None = None, fractions=(0.5, 0.25)
) -> xr.Dataset:
    """An experiment of two fractions (n_train 20 and 10, in that unsorted order) and three
    seeds; ``arms``: method → (objective, temperature)."""
    arms = arms or {"label": ("label", NAN), "kd-T2": ("kd", 2.0), "kd-T4": ("kd", 4.0)}
    shape = (len(arms), len(fractions), 3)
    return xr.Dataset(
        {"x": (("arm", "fraction", "seed"), np.zeros(shape))},
        coords={
            "arm": list(arms),
            "fraction": list(fractions),
            "seed": [7, 8, 9],
            "objective": ("arm", [o for o, _ in arms.values()]),
            "temperature": ("arm", [t for _, t in arms.values()]),
            "n_train": ("fraction", [int(40 * f) for f in fractions]),
        },
        attrs={"schema": SCHEMA, "experiment": "hand"},
    )


# ------------------------------------------------------------------------------ picking methods


def test_pick_kd_prefers_the_option_then_temperature_4_then_the_first():
    ds = experiment()
    assert pick_kd(ds, {"kd_method": None}) == "kd-T4"
    assert pick_kd(ds, {"kd_method": "kd-T2"}) == "kd-T2"
    assert pick_kd(ds, {}) == "kd-T4"  # a hypothesis without a kd_method option
    assert pick_kd(ds, {"kd_method": "label"}) is None  # not a kd method
    only_t2 = experiment({"label": ("label", NAN), "kd-T2": ("kd", 2.0)})
    assert pick_kd(only_t2, {}) == "kd-T2"


def test_kd_and_returns_the_pair_or_skips_naming_both():
    ds = experiment()
    assert kd_and(ds, {}) == ("kd-T4", "label")
    with pytest.raises(SkipExperiment) as info:
        kd_and(ds, {"ls_method": None}, "ls", option="ls_method")
    assert str(info.value) == (
        "needs a kd method and a ls method; it has label (label), kd-T2 (kd), kd-T4 (kd)"
    )
    with pytest.raises(SkipExperiment, match="^needs a kd method and an ls method"):
        kd_and(ds, {}, "ls", needs="a kd method and an ls method")
    with pytest.raises(SkipExperiment, match=r"\(options kd_method='nope'\)"):
        kd_and(ds, {"kd_method": "nope"})


def test_require_passes_a_method_through_and_skips_without_one():
    ds = experiment()
    assert require("kd-T2", ds, "a kd method", {}) == "kd-T2"
    with pytest.raises(SkipExperiment, match="^needs a kd-shuffled method; it has label"):
        require(None, ds, "a kd-shuffled method", {})


class _Picky(PooledHypothesis):
    """Tests KD − label on experiments with both; skips the rest through SkipExperiment."""

    name = "picky"
    claim = prediction = "KD beats label training."
    required_objectives = ("label", "kd")
    effect = "nothing"

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult:
        kd, label = kd_and(ds, opts)
        gain = Effect(1.0, 0.1, 0.8, 1.2, 0.001, 10.0, 3, 2.0, "greater")
        loss = Effect(1.0, 0.1, 0.8, 1.2, 0.999, 10.0, 3, 2.0, "less")
        return ExperimentResult(name, {"gain": gain, "loss": loss}, settings={"kd": kd})

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        return directional_ruling(tests["gain"], tests["loss"], opts.alpha, "gain")


def test_the_template_lists_an_experiment_skipped_by_SkipExperiment():
    store = {"both": experiment(), "no-label": experiment({"kd-T4": ("kd", 4.0)})}
    v = _Picky().test(store)
    assert [r.label for r in v.experiments] == ["both"]
    assert v.tables["skipped_experiments"] == [
        {
            "experiment": "no-label",
            "reason": "needs a kd method and a label method; it has kd-T4 (kd)",
        }
    ]
    assert "no-label" in v.reason


# ------------------------------------------------------------------------------ table records


def test_fraction_means_one_column_per_array_nan_cells_left_out():
    a = np.array([[1.0, 2.0, 3.0], [4.0, NAN, 8.0]])
    out = fraction_means(first=a, missing=None, second=10 * a)
    assert list(out) == ["first", "second"]
    assert out["first"] == [2.0, 6.0] and out["second"] == [20.0, 60.0]
    assert all(type(v) is float for v in out["first"])


def test_mean_ci_columns_names_and_values():
    v = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, NAN]])
    plain = mean_ci_columns(v, 0.05, "gain")
    assert list(plain) == ["gain", "ci_low", "ci_high", "n"]
    assert plain["gain"] == [2.0, 5.0] and plain["n"] == [3, 2]
    # the report's interval convention, 1 - 2 alpha: t(0.95, 2) * sd 1 / sqrt(3)
    half = 2.919985580355516 / math.sqrt(3)
    assert plain["ci_low"][0] == pytest.approx(2.0 - half)
    assert plain["ci_high"][0] == pytest.approx(2.0 + half)
    assert plain["ci_low"][1] == plain["ci_high"][1] == 5.0  # no spread
    prefixed = mean_ci_columns(v, 0.05, "d", prefix_ci=True, n_key="d_n")
    assert list(prefixed) == ["d", "d_ci_low", "d_ci_high", "d_n"]
    assert list(mean_ci_columns(v, 0.05, "r", prefix_ci=True, n_key=None)) == [
        "r",
        "r_ci_low",
        "r_ci_high",
    ]


def test_fraction_records_one_per_fraction_columns_in_order():
    ds = experiment()
    recs = fraction_records("e1", ds, {"a": [1, 2], "b": ["x", "y"]}, {"c": [0.5, 0.25]})
    assert recs == [
        {"experiment": "e1", "fraction": 0.5, "n_train": 20, "a": 1, "b": "x", "c": 0.5},
        {"experiment": "e1", "fraction": 0.25, "n_train": 10, "a": 2, "b": "y", "c": 0.25},
    ]
    assert list(recs[0]) == ["experiment", "fraction", "n_train", "a", "b", "c"]
    assert type(recs[0]["n_train"]) is int and type(recs[0]["fraction"]) is float
    with pytest.raises(ValueError, match="column 'a' has 3 values for 2 fractions"):
        fraction_records("e1", ds, {"a": [1, 2, 3]})


def test_cell_records_fraction_major_python_scalars():
    ds = experiment()
    v = np.arange(6, dtype=float).reshape(2, 3)
    recs = cell_records("e1", ds, {"v": v, "none": None, "n": np.array([[1, 2, 3]] * 2)}, arm="m")
    assert len(recs) == 6
    assert recs[0] == {
        "experiment": "e1",
        "arm": "m",
        "fraction": 0.5,
        "n_train": 20,
        "seed": 7,
        "v": 0.0,
        "n": 1,
    }
    assert [(r["fraction"], r["seed"], r["v"]) for r in recs[2:4]] == [
        (0.5, 9, 2.0),
        (0.25, 7, 3.0),
    ]
    assert type(recs[0]["v"]) is float and type(recs[0]["n"]) is int
    with pytest.raises(ValueError, match=r"shape \(3, 2\), not \(fraction, seed\) = \(2, 3\)"):
        cell_records("e1", ds, {"v": v.T})


# ------------------------------------------------------------------------------ deciding tests


def _effect(p: float, estimate: float = 1.0, alternative: str = "greater") -> Effect:
    return Effect(estimate, 0.5, 0.0, 2.0, p, 2.0, 5, 4.0, alternative)


def test_intersection_union_p_is_the_largest_and_nan_when_one_is_missing():
    assert intersection_union_p(_effect(0.01), _effect(0.04), None) == 0.04
    assert math.isnan(intersection_union_p(_effect(0.01), _effect(NAN)))
    assert math.isnan(intersection_union_p())
    assert math.isnan(intersection_union_p(None))


def test_intersection_union_shows_the_key_effect_with_the_largest_p():
    key, other = _effect(0.01, 3.0, "less"), _effect(0.03)
    shown, test = intersection_union(key, [key, other], "a and b", 0.05)
    assert test.name == "intersection-union: a and b"
    assert (test.outcome, test.kind) == ("supported", "less")
    assert shown.p_value == 0.03 and shown.estimate == 3.0
    assert (shown.ci_low, shown.ci_high) == (0.0, 2.0)


def test_equivalence_deciding_is_the_tost_inside_its_band():
    eq = Equivalence(0.02, True, -0.3, 0.4, -1.0, 1.0, 0.05, 0.2, 6, 5.0)
    shown, test = eq.deciding("TOST within ±1", "rejected", 0.05)
    assert (test.name, test.outcome, test.kind) == ("TOST within ±1", "rejected", "inside")
    assert (test.low, test.high) == (-1.0, 1.0)
    assert (shown.estimate, shown.p_value, shown.ci_low, shown.ci_high) == (0.05, 0.02, -0.3, 0.4)


# ------------------------------------------------------------------------------ words


def test_result_text_forms():
    e = Effect(0.123456, 0.1, -0.5, 0.75, 0.0312, 1.5, 8, 7.0)
    assert result_text(e) == "0.1235 [-0.5, 0.75], p = 0.0312"
    assert result_text(e, ci="CI") == "0.1235, CI [-0.5, 0.75], p = 0.0312"
    assert result_text(e, ci="95% CI", t_df=True) == (
        "0.1235, 95% CI [-0.5, 0.75], t=1.5, df=7, p = 0.0312"
    )
    assert result_text(e, digits=2) == "0.12 [-0.5, 0.75], p = 0.0312"


# ------------------------------------------------------------------------------ report tables


def test_table_columns_name_the_keys_mean_ci_columns_writes():
    acc = accuracy_column("KD", "kd")
    assert (acc.header, acc.key, acc.fmt) == ("KD acc. (%)", "kd_accuracy", ".1f")
    plain = ci_column(level=0.9)
    assert (plain.header, plain.key, plain.header_tex) == (
        "90% CI",
        ("ci_low", "ci_high"),
        "90\\% CI",
    )
    gap, gap_ci = estimate_columns("Gap", "gap", ".3f", header_tex="G", prefix_ci=True, level=0.8)
    assert (gap.header, gap.key, gap.fmt, gap.header_tex) == ("Gap", "gap", ".3f", "G")
    assert gap_ci.key == ("gap_ci_low", "gap_ci_high") and gap_ci.fmt == ".3f"
    assert gap_ci.header == "80% CI"  # the header follows the level, never a fixed 95%
    second = ci_column("d", level=0.9, suffix="(d)")
    assert second.header == "90% CI (d)" and second.header_tex == "90\\% CI (d)"


def test_kappa_table_writes_the_per_fraction_records_under_the_hypothesis_name(tmp_path):
    class _Verdict:
        hypothesis = "my-hyp"
        alpha = 0.05
        titles = {"e1": "Experiment one", "e2": "Experiment two"}
        tables = {
            "per_fraction": [
                {"experiment": "e1", "n_train": 10, "gain": 1.5},
                {"experiment": "e2", "n_train": 10, "gain": 2.5},
            ]
        }

    level = table_level(_Verdict())
    assert level == pytest.approx(0.9)
    columns = [estimate_columns("Gain", "gain", level=level)[0]]
    files = kappa_table(tmp_path, _Verdict(), columns, "Cap.")
    assert "tables/my-hyp-by-kappa.md" in files
    assert files.captions == {"tables/my-hyp-by-kappa.tex": "Cap."}
    md = (tmp_path / "tables" / "my-hyp-by-kappa.md").read_text()
    assert "κ" in md and "Gain" in md and "10" in md and "1.50" in md
    # groups shown by title; the CSV keeps the ids
    assert "Experiment one" in md and "| e1 |" not in md
    assert "\\emph{Experiment two}" in (tmp_path / "tables" / "my-hyp-by-kappa.tex").read_text()
    assert "e2" in (tmp_path / "tables" / "my-hyp-by-kappa.csv").read_text()
    other = kappa_table(tmp_path, _Verdict(), [], "Cap.", records=[{"n_train": 99}])
    assert "99" in (tmp_path / other[2]).read_text()
