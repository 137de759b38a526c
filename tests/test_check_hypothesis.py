"""kdtheory.testing.check_hypothesis: the built-ins pass it, broken hypotheses fail it by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
import xarray as xr

from kdtheory.hypotheses import kdtheory_register_hypotheses
from kdtheory.hypothesis.template import Options, PooledHypothesis
from kdtheory.hypothesis.toolkit import (
    Effect,
    ExperimentResult,
    Ruling,
    accuracy_points,
    directional_ruling,
    pick_method,
    seed_means,
)
from kdtheory.stats import one_sample_t
from kdtheory.testing import HypothesisCheckError, check_hypothesis
from kdtheory.testing.calibration import DESIGNS, EFFECTS, NULLS

BUILTINS = {h.name: h for h in kdtheory_register_hypotheses()}
CHECKS = {
    "verdict",
    "json",
    "deterministic",
    "deciding-test",
    "requirements",
    "options",
    "power",
    "null-rate",
}
GAIN = {"kd_gain": 3.0, "kd_gain_slope": 0.0}
NO_GAIN = {"kd_gain": 0.0, "kd_gain_slope": 0.0}


def _first(cases, name):
    return next(c for c in cases if c.hypothesis == name and not c.per_experiment)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_the_builtins_pass(name):
    effect, null = _first(EFFECTS, name), _first(NULLS, name)
    report = check_hypothesis(
        BUILTINS[name],
        effect=effect.truth,
        null=null.truth,
        expected=effect.decision,
        wrong=null.decision,
        design=DESIGNS["single"][name],
        n=8,
    )
    assert report.passed and {c.name for c in report.checks} == CHECKS, str(report)


class Gain(PooledHypothesis):
    """A correct hypothesis: KD beats label training."""

    name = "check-gain"
    claim = "KD beats label training."
    prediction = "The per-seed mean gain is positive."
    required_objectives = ("label", "kd")
    required_variables = ("test_logits", "test_labels")
    run_hint = "label,kd:T=4"
    effect = "KD − label accuracy, points"

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult:
        kd, label = pick_method(ds, "kd"), pick_method(ds, "label")
        gain = seed_means(accuracy_points(ds, kd) - accuracy_points(ds, label))
        tests = {
            "gain": Effect.of(one_sample_t(gain, "greater", opts.alpha)),
            "loss": Effect.of(one_sample_t(gain, "less", opts.alpha)),
        }
        return ExperimentResult(name, tests)

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        return directional_ruling(tests["gain"], tests["loss"], opts.alpha, "gain")


class AlwaysSupported(Gain):
    name = "check-always-supported"

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        return replace(super().rule(tests, opts), decision="supported")


class ShowsTheWrongP(Gain):
    name = "check-wrong-p"

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        ruling = super().rule(tests, opts)
        return replace(ruling, shown=replace(ruling.shown, p_value=1.0 - ruling.shown.p_value))


class DeclaresNothing(Gain):
    name = "check-declares-nothing"
    required_objectives = ()
    required_variables = ()


def _check(hyp):
    return check_hypothesis(hyp, effect=GAIN, null=NO_GAIN, n=8)


def test_a_correct_hypothesis_passes():
    report = _check(Gain())
    assert report.passed and not report.failed
    assert "ok   null-rate" in str(report)


@pytest.mark.parametrize(
    ("hyp", "failed"),
    [
        (AlwaysSupported(), {"null-rate", "deciding-test"}),
        (ShowsTheWrongP(), {"deciding-test"}),
        (DeclaresNothing(), {"requirements"}),
    ],
    ids=["always-supported", "shown-p-disagrees", "declares-nothing"],
)
def test_a_broken_hypothesis_fails_naming_the_check(hyp, failed):
    with pytest.raises(HypothesisCheckError) as info:
        _check(hyp)
    assert isinstance(info.value, AssertionError)
    assert {c.name for c in info.value.report.failed} == failed
    message = str(info.value)
    assert f"hypothesis {hyp.name!r} failed {len(failed)} of {len(CHECKS)} checks" in message
    for name in failed:
        assert f"  - {name}: " in message


def test_a_wrong_planted_truth_fails_power_not_the_contract():
    # declaring the null as the effect: the hypothesis is fine, the power check says so
    with pytest.raises(HypothesisCheckError) as info:
        check_hypothesis(Gain(), effect=NO_GAIN, null=NO_GAIN, n=8)
    assert [c.name for c in info.value.report.failed] == ["power"]
    assert "'supported' in" in str(info.value)
