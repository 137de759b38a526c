"""kdtheory-example: two hypotheses built on kdtheory's template (``pip install -e .``, then
``kdtheory test example-kd-gain --runs data/``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import xarray as xr

import kdtheory
from kdtheory.hypothesis.template import Options, PooledHypothesis
from kdtheory.hypothesis.toolkit import (
    Effect,
    ExperimentResult,
    Ruling,
    accuracy_points,
    directional_ruling,
    kd_and,
    seed_means,
)
from kdtheory.stats import one_sample_t
from kdtheory_example.agreement import KDAgreement


class KDGain(PooledHypothesis):
    """Distilled students beat label-trained students on the test set."""

    name = "example-kd-gain"
    claim = "Students distilled from the teacher are more accurate than students trained on labels."
    prediction = "Each seed's mean gain over fractions, KD − label test accuracy, is positive."
    required_objectives = ("label", "kd")
    required_variables = ("test_logits", "test_labels")
    run_hint = "label,kd:T=4"
    options = {"min_fraction": 0.0, "kd_method": ""}
    effect = "KD − label test accuracy, points"
    model = "one-sided t-test across seeds of each seed's mean gain over fractions"

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult:
        kd, label = kd_and(ds, opts)  # or skip the experiment, saying why
        kept = ds["fraction"].values >= opts["min_fraction"]
        gain = seed_means((accuracy_points(ds, kd) - accuracy_points(ds, label))[kept])
        tests = {
            "gain": Effect.of(one_sample_t(gain, "greater", opts.alpha)),
            "loss": Effect.of(one_sample_t(gain, "less", opts.alpha)),
        }
        return ExperimentResult(name, tests, settings={"kd_method": kd, "label_method": label})

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        return directional_ruling(tests["gain"], tests["loss"], opts.alpha, "KD − label accuracy")


@kdtheory.hookimpl
def kdtheory_register_hypotheses() -> list[PooledHypothesis]:
    return [KDGain(), KDAgreement()]
