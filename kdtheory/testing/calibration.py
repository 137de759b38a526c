"""Calibration of hypotheses on synthetic stores with a planted truth.

:func:`count_decisions` tests any hypothesis on ``n`` independent synthetic stores and counts its
decisions; :func:`kdtheory.testing.check.check_hypothesis` uses it for a third-party hypothesis.
The built-ins' cases below are shared by ``tests/test_hyp_calibration.py`` (small counts, run in
CI) and ``benchmarks/calibration.py`` (200+ stores per case, numbers recorded in the README).

A *case* is a hypothesis, a design (one experiment with 5 seeds, or 3 experiments with 3 seeds
each and small test sets), a planted truth (shared by the experiments, or per experiment) and
the decision that would be *wrong* under that truth (for a null) or *right* (for an effect).
:func:`run_case` tests the hypothesis on ``n`` independent stores and counts the decisions.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import binom

__all__ = [
    "DESIGNS",
    "EFFECTS",
    "NULLS",
    "Case",
    "count_decisions",
    "max_wrong",
    "model_summaries_off",
    "run_case",
    "upper_rate",
]

# Accuracy-based hypotheses never look at the training logits: a small train set keeps the
# stores cheap (the planted accuracies depend on log(kappa / kappa_max) only).
_ACC = {"n_train": 100, "features": False}
_METHODS = {
    "data-efficiency": ("label", "kd-T4"),
    "label-smoothing": ("kd-T4", "ls"),
    "dark-knowledge": ("label", "kd-T4", "kd-shuffled-T4"),
    "neural-collapse": ("label", "kd-T4"),
    "fidelity-decay": ("kd-T4",),
}


def _design(name: str, n_seeds: int, small: bool) -> dict[str, Any]:
    methods = {"methods": _METHODS[name], "n_seeds": n_seeds}
    if name == "neural-collapse":
        return {
            **methods,
            "n_test": 50,
            "n_train": 200,
            "fractions": (0.15, 0.4, 1.0),
            "n_feature_sample": 100,
            "n_seeds": min(n_seeds, 4),
        }
    if name == "fidelity-decay":
        return {**methods, "n_test": 100 if small else 300, "n_train": 300, "features": False}
    return {
        **methods,
        **_ACC,
        "n_test": 100 if small else (200 if name == "dark-knowledge" else 300),
    }


#: ``DESIGNS[design][hypothesis]``: keyword arguments of
#: :func:`kdtheory.testing.synthetic.make_store`.
#: ``"single"``: one experiment, 5 seeds; ``"multi"``: 3 experiments × 3 seeds, 100 test samples.
DESIGNS: dict[str, dict[str, dict[str, Any]]] = {
    "single": {n: {"n_experiments": 1, **_design(n, 5, False)} for n in _METHODS},
    "multi": {n: {"n_experiments": 3, **_design(n, 3, True)} for n in _METHODS},
}


@dataclass(frozen=True)
class Case:
    """One planted truth for one hypothesis.

    Attributes
    ----------
    hypothesis : str
    label : str
        Short description of the truth.
    truth : dict
        Knobs of :class:`kdtheory.testing.synthetic.Truth` shared by every experiment.
    decision : str
        Under a null: the decision that would be a wrong finding. Under an effect: the right one.
    per_experiment : tuple of dict
        Knobs per experiment (heterogeneous truths), for the multi-experiment design.
    """

    hypothesis: str
    label: str
    truth: Mapping[str, Any]
    decision: str
    per_experiment: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def fits(self, design: str) -> bool:
        """Whether the case applies to ``design``: truths that differ between experiments need
        several experiments."""
        return not (self.per_experiment and DESIGNS[design][self.hypothesis]["n_experiments"] < 2)


#: Truths under which ``decision`` is a wrong finding, at the least favourable point of the null.
NULLS: list[Case] = [
    Case(
        "data-efficiency", "gain flat in kappa", {"kd_gain": 2.0, "kd_gain_slope": 0.0}, "supported"
    ),
    Case(
        "data-efficiency",
        "slopes -1.5, 0, +1.5 (mean 0)",
        {"kd_gain": 2.0},
        "supported",
        ({"kd_gain_slope": -1.5}, {"kd_gain_slope": 0.0}, {"kd_gain_slope": 1.5}),
    ),
    Case(
        "data-efficiency",
        "slope -0.5 (TOST edge)",
        {"kd_gain": 2.0, "kd_gain_slope": -0.5},
        "rejected",
    ),
    Case(
        "label-smoothing",
        "LS better by the margin",
        {"ls_gap": -1.0, "ls_gap_slope": 0.0},
        "supported",
    ),
    Case("label-smoothing", "KD = LS everywhere", {"ls_gap": 0.0, "ls_gap_slope": 0.0}, "rejected"),
    Case(
        "dark-knowledge",
        "shuffling costs nothing",
        {"shuffled_gap": 0.0, "shuffled_gap_slope": 0.0},
        "supported",
    ),
    Case(
        "dark-knowledge",
        "KD ranks no more like the teacher than label",
        {"kd_rank_weight": 0.3, "label_rank_weight": 0.3},
        "supported",
    ),
    Case(
        "dark-knowledge",
        "KD − shuffled = margin (TOST edge)",
        {"shuffled_gap": 1.0, "shuffled_gap_slope": 0.0},
        "rejected",
    ),
    Case("neural-collapse", "equal collapse", {"nc1_log_ratio": 0.0}, "supported"),
    Case("neural-collapse", "equal collapse (H1 < 0)", {"nc1_log_ratio": 0.0}, "rejected"),
    Case("fidelity-decay", "b = -0.75 (band edge)", {"fidelity_b": -0.75}, "supported"),
    Case("fidelity-decay", "b = -1", {"fidelity_b": -1.0}, "supported"),
    Case(
        "fidelity-decay",
        "flat gap (b = 0)",
        {"fidelity_b": 0.0, "fidelity_gap_at_min": 0.08},
        "supported",
    ),
    Case("fidelity-decay", "b = -0.5 exactly", {"fidelity_b": -0.5}, "rejected"),
]

#: Planted effects and the verdict they should get (power).
EFFECTS: list[Case] = [
    Case("data-efficiency", "slope -2, gain 7 at 5%", {}, "supported"),
    Case("data-efficiency", "slope +2", {"kd_gain_slope": 2.0, "kd_gain": 7.0}, "rejected"),
    Case("label-smoothing", "KD beats LS", {}, "rejected"),
    Case(
        "label-smoothing",
        "KD = LS, low noise",
        {"ls_gap": 0.0, "ls_gap_slope": 0.0, "cell_sd": 0.15, "method_seed_sd": 0.1},
        "supported",
    ),
    Case("dark-knowledge", "KD beats shuffled, follows teacher", {}, "supported"),
    Case(
        "dark-knowledge",
        "KD worse than shuffled",
        {"shuffled_gap": -3.0, "shuffled_gap_slope": 0.0},
        "rejected",
    ),
    Case("neural-collapse", "log NC1 ratio 0.7", {}, "supported"),
    Case("neural-collapse", "log NC1 ratio -0.7", {"nc1_log_ratio": -0.7}, "rejected"),
    Case("fidelity-decay", "b = -0.5", {}, "supported"),
    Case("fidelity-decay", "b = -1", {"fidelity_b": -1.0}, "rejected"),
    Case("fidelity-decay", "plateau then cliff", {"fidelity_cliff": 1.5}, "rejected"),
]


def max_wrong(n: int, alpha: float = 0.05) -> int:
    """Upper 99% binomial quantile of the count of wrong findings in ``n`` stores at rate
    ``alpha``: more than this many is evidence (at 1%) that the rate exceeds alpha."""
    return int(binom.ppf(0.99, n, alpha))


def upper_rate(count: int, n: int, level: float = 0.99) -> float:
    """One-sided upper ``level`` Clopper–Pearson bound of a rate seen ``count`` times in ``n``."""
    if count >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(level, count + 1, n - count))


@contextmanager
def model_summaries_off() -> Iterator[None]:
    """Skip the pooled statsmodels fits whose text goes into ``Verdict.summaries`` (decisions
    never depend on them) while testing many stores."""
    import kdtheory.hypothesis.toolkit as toolkit

    before = toolkit.FIT_SUMMARIES
    toolkit.FIT_SUMMARIES = False
    try:
        yield
    finally:
        toolkit.FIT_SUMMARIES = before


def _decisions(args: tuple[Any, dict, dict, list | None, dict, list[int], float]) -> Counter:
    hypothesis, design, truth, per, options, seeds, alpha = args
    from kdtheory.testing.synthetic import make_store

    knobs = dict(design)
    n_exp = knobs.pop("n_experiments", 1)
    out: Counter = Counter()
    with model_summaries_off():
        for seed in seeds:
            store = make_store(n_exp, seed=seed, per_experiment=per, **knobs, **truth)
            out[hypothesis.test(store, alpha=alpha, **options).decision] += 1
    return out


def count_decisions(
    hypothesis: Any,
    design: Mapping[str, Any],
    truth: Mapping[str, Any],
    n: int,
    seed: int = 0,
    *,
    per_experiment: Sequence[Mapping[str, Any]] = (),
    alpha: float = 0.05,
    options: Mapping[str, Any] | None = None,
    workers: int | None = None,
) -> Counter:
    """Decisions of ``hypothesis`` on ``n`` independent synthetic stores with ``truth`` planted.

    Parameters
    ----------
    hypothesis : kdtheory.hypothesis.Hypothesis
    design : mapping
        Keyword arguments of :func:`kdtheory.testing.synthetic.make_store` that shape the sweep
        (``n_experiments``, ``methods``, ``n_seeds``, ``n_test``, ``features``, ...).
    truth : mapping
        Knobs of :class:`kdtheory.testing.synthetic.Truth` that plant the truth.
    n : int
        Number of stores; store ``i`` has generator seed ``seed * 100003 + i`` whatever the
        number of ``workers``.
    seed : int
    per_experiment : sequence of mapping
        Knobs per experiment (truths that differ between experiments).
    alpha : float
    options : mapping, optional
        Options of the hypothesis.
    workers : int, optional
        Forked processes (default ``min(2, cpu count)``; 1 when the hypothesis cannot be
        pickled).

    Returns
    -------
    collections.Counter
        Decision -> number of stores.
    """
    design = dict(design)
    n_exp = int(design.get("n_experiments", 1))
    per = [dict(p) for p in per_experiment][:n_exp] if per_experiment else None
    seeds = [seed * 100_003 + i for i in range(n)]
    args = (hypothesis, design, dict(truth), per, dict(options or {}))
    workers = workers or min(2, os.cpu_count() or 1)
    if workers > 1:
        try:
            pickle.dumps(hypothesis)
        except (pickle.PicklingError, AttributeError, TypeError):
            workers = 1
    if workers < 2 or "fork" not in mp.get_all_start_methods():
        return _decisions((*args, seeds, alpha))
    chunks = [(*args, seeds[k::workers], alpha) for k in range(workers)]
    with mp.get_context("fork").Pool(workers) as pool:
        return sum(pool.map(_decisions, chunks), Counter())


def run_case(
    case: Case,
    design: str,
    n: int,
    seed: int = 0,
    *,
    pooling: str = "mixed",
    alpha: float = 0.05,
    workers: int | None = None,
) -> Counter:
    """Decisions of a built-in hypothesis's ``case`` on ``n`` independent stores of ``design``
    (:func:`count_decisions` with the built-in and :data:`DESIGNS`)."""
    from kdtheory.plugin.manager import get_registries

    if not case.fits(design):
        raise ValueError(f"case {case.label!r} needs several experiments, not design {design!r}")
    hyp = get_registries().hypotheses.get(case.hypothesis)
    return count_decisions(
        hyp,
        DESIGNS[design][case.hypothesis],
        case.truth,
        n,
        seed,
        per_experiment=case.per_experiment,
        alpha=alpha,
        options={"pooling": pooling},
        workers=workers,
    )
