"""``example-kd-agreement``: KD students follow the teacher on samples they never saw."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from kdtheory.hypothesis.template import Options, PooledHypothesis
from kdtheory.hypothesis.toolkit import (
    Effect,
    ExperimentResult,
    Ruling,
    bare,
    cells,
    directional_ruling,
    kd_and,
    method_array,
    seed_means,
)
from kdtheory.metrics import fidelity
from kdtheory.stats import one_sample_t


class KDAgreement(PooledHypothesis):
    """KD students agree with the teacher more than label students on unseen test samples."""

    name = "example-kd-agreement"
    claim = "KD students agree with the teacher more than label students on unseen test samples."
    prediction = "Each seed's mean over fractions of KD − label test-set agreement is positive."
    required_objectives = ("label", "kd")
    required_variables = ("test_logits", "teacher_test_logits")
    run_hint = "label,kd:T=4"
    effect = "KD − label top-1 agreement with the teacher on test samples, points"
    model = "one-sided t-test across seeds of each seed's mean agreement gap over fractions"

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult:
        kd, label = kd_and(ds, opts)
        teacher = bare(ds["teacher_test_logits"])

        def agreement(method: str) -> np.ndarray:  # (fraction, seed), in points
            student = method_array(ds, "test_logits", method)
            return 100.0 * cells(fidelity(student, teacher, "test_sample"))

        more = seed_means(agreement(kd) - agreement(label))
        tests = {
            "more": Effect.of(one_sample_t(more, "greater", opts.alpha)),
            "less": Effect.of(one_sample_t(more, "less", opts.alpha)),
        }
        return ExperimentResult(name, tests, settings={"kd_method": kd, "label_method": label})

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        return directional_ruling(tests["more"], tests["less"], opts.alpha, "KD − label agreement")
