"""Check that a hypothesis keeps kdtheory's contract, the way scikit-learn's ``check_estimator``
checks an estimator.

:func:`check_hypothesis` runs a hypothesis on synthetic stores with a planted truth
(:func:`kdtheory.testing.synthetic.make_store`, through the calibration harness
:func:`kdtheory.testing.calibration.count_decisions` the built-ins use) and checks:

``verdict``
    ``test()`` returns a :class:`~kdtheory.hypothesis.Verdict` named after the hypothesis, with a
    valid decision, on one experiment and on several (pooled);
``json``
    the verdict survives a JSON round trip (``Verdict.from_json(v.as_json()) == v``);
``deterministic``
    the same store gives the same verdict twice;
``deciding-test``
    the verdict and every row name their deciding test, and the shown p, alpha and CI imply the
    decision (:meth:`kdtheory.hypothesis.DecidingTest.implied_decision`), also after a Holm
    correction in a family;
``requirements``
    it declares what it needs, and a store lacking a required objective or variable gives
    :class:`~kdtheory.errors.MissingRequirementError`;
``options``
    ``test()`` accepts every declared option at its default, and an unknown option gives
    :class:`~kdtheory.errors.SpecError`;
``power``
    with the claim's effect planted, the expected decision comes in at least ``power`` of ``n``
    stores;
``null-rate``
    under the null, the wrong finding comes in at most the upper 99% binomial quantile of ``n``
    stores at rate alpha (:func:`kdtheory.testing.calibration.max_wrong`).

Every failed check is listed in one :class:`HypothesisCheckError` (an ``AssertionError``).

Examples
--------
>>> from kdtheory.testing import check_hypothesis
>>> check_hypothesis(  # doctest: +SKIP
...     MyHypothesis(),
...     effect={"kd_gain": 3.0, "kd_gain_slope": 0.0},  # the claim holds
...     null={"kd_gain": 0.0, "kd_gain_slope": 0.0},  # it does not, at its least favourable point
... )
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from kdtheory.errors import MissingRequirementError, SpecError
from kdtheory.hypothesis.family import adjust_family, check_verdict, run_test
from kdtheory.hypothesis.verdict import DECISIONS, Verdict
from kdtheory.testing.calibration import count_decisions, max_wrong, model_summaries_off
from kdtheory.testing.synthetic import METHODS, make_store

__all__ = ["Check", "CheckReport", "HypothesisCheckError", "check_hypothesis", "default_design"]

#: Variables a synthetic store holds only with ``features=True``.
_FEATURE_VARIABLES = {"features", "teacher_features", "classifier_weight", "classifier_bias"}


@dataclass(frozen=True)
class Check:
    """The outcome of one check: its name, whether it passed, and what was seen."""

    name: str
    passed: bool
    detail: str


@dataclass
class CheckReport:
    """Every check :func:`check_hypothesis` ran on one hypothesis."""

    hypothesis: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def __str__(self) -> str:
        lines = [f"check_hypothesis({self.hypothesis!r}):"]
        lines += [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)


class HypothesisCheckError(AssertionError):
    """A hypothesis failed one or more checks of :func:`check_hypothesis`; the message lists
    each failed check. ``report`` holds every check."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        failed = report.failed
        lines = [
            f"hypothesis {report.hypothesis!r} failed {len(failed)} of {len(report.checks)} "
            "checks of kdtheory.testing.check_hypothesis:"
        ]
        lines += [f"  - {c.name}: {c.detail}" for c in failed]
        super().__init__("\n".join(lines))


def default_design(hypothesis: Any) -> dict[str, Any]:
    """A one-experiment, 5-seed synthetic design holding the methods of the hypothesis's
    required objectives (all methods when it requires none), with features when it needs them."""
    wanted = set(hypothesis.required_objectives)
    methods = tuple(m for m, c in METHODS.items() if not wanted or c["objective"] in wanted)
    features = bool(_FEATURE_VARIABLES & set(hypothesis.required_variables))
    return {"n_experiments": 1, "n_seeds": 5, "methods": methods, "features": features}


def check_hypothesis(
    hypothesis: Any,
    *,
    effect: Mapping[str, Any],
    null: Mapping[str, Any],
    expected: str = "supported",
    wrong: str = "supported",
    design: Mapping[str, Any] | None = None,
    n: int = 20,
    power: float = 0.8,
    alpha: float = 0.05,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    workers: int | None = 1,
) -> CheckReport:
    """Check that ``hypothesis`` keeps kdtheory's contract and is calibrated on planted truths.

    Parameters
    ----------
    hypothesis : kdtheory.hypothesis.Hypothesis
        The hypothesis to check (an instance).
    effect : mapping
        Knobs of :class:`kdtheory.testing.synthetic.Truth` that plant the effect the claim
        predicts (e.g. ``{"kd_gain": 3.0, "kd_gain_slope": 0.0}``).
    null : mapping
        Knobs under which the claim is false, at its least favourable point (e.g. a gain of 0 for
        a claim that the gain is positive).
    expected : {"supported", "rejected", "inconclusive"}
        The decision the planted effect should get.
    wrong : {"supported", "rejected"}
        The decision that is a wrong finding under the null.
    design : mapping, optional
        Keyword arguments of :func:`kdtheory.testing.synthetic.make_store` shaping the sweep
        (``n_experiments``, ``methods``, ``n_seeds``, ``n_test``, ``features``, ...); default
        :func:`default_design`.
    n : int
        Stores per planted truth for the ``power`` and ``null-rate`` checks.
    power : float
        Share of the effect's stores that must get ``expected``.
    alpha : float
    options : mapping, optional
        Options of the hypothesis used throughout.
    seed : int
        Seed of the synthetic stores.
    workers : int or None
        Processes for the ``power`` and ``null-rate`` stores (None: up to 2).

    Returns
    -------
    CheckReport
        Every check, all passed.

    Raises
    ------
    HypothesisCheckError
        An ``AssertionError`` listing every failed check.
    """
    for value, allowed, what in (
        (expected, DECISIONS, "expected"),
        (wrong, ("supported", "rejected"), "wrong"),
    ):
        if value not in allowed:
            raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    design = dict(design if design is not None else default_design(hypothesis))
    opts = dict(options or {})
    report = CheckReport(str(getattr(hypothesis, "name", type(hypothesis).__name__)))
    add = report.checks.append

    def store(truth: Mapping[str, Any], n_experiments: int, offset: int) -> dict[str, xr.Dataset]:
        knobs = {k: v for k, v in design.items() if k != "n_experiments"}
        return make_store(n_experiments, seed=seed * 7919 + offset, **knobs, **truth)

    n_exp = int(design.get("n_experiments", 1))
    stores = {
        f"the effect store ({n_exp} experiment{'s' * (n_exp > 1)})": store(effect, n_exp, 1),
        "the null store": store(null, n_exp, 2),
        "a 3-experiment effect store" if n_exp == 1 else "a 1-experiment effect store": store(
            effect, 3 if n_exp == 1 else 1, 3
        ),
    }
    with model_summaries_off():
        verdicts = _verdict_checks(hypothesis, stores, alpha, opts, add)
        first = next(iter(stores.values()))
        add(_requirements_check(hypothesis, first, alpha, opts))
        add(_options_check(hypothesis, first, alpha, opts, verdicts.get(next(iter(stores)))))
    add(
        _rate_check(
            "power",
            hypothesis,
            design,
            effect,
            expected,
            n,
            seed,
            alpha,
            opts,
            workers,
            lambda k: k >= math.ceil(power * n),
            f"at least {math.ceil(power * n)} ({power:.0%})",
        )
    )
    limit = max_wrong(n, alpha)
    add(
        _rate_check(
            "null-rate",
            hypothesis,
            design,
            null,
            wrong,
            n,
            seed + 1,
            alpha,
            opts,
            workers,
            lambda k: k <= limit,
            f"at most {limit} (alpha {alpha:g}, upper 99% binomial quantile)",
        )
    )
    if not report.passed:
        raise HypothesisCheckError(report)
    return report


# ---------------------------------------------------------------------- the checks


def _verdict_checks(
    hyp: Any,
    stores: Mapping[str, Mapping[str, xr.Dataset]],
    alpha: float,
    opts: Mapping[str, Any],
    add: Callable[[Check], None],
) -> dict[str, Verdict]:
    """The ``verdict``, ``json``, ``deterministic`` and ``deciding-test`` checks on ``stores``;
    returns the verdicts that came back."""
    problems: dict[str, list[str]] = {"verdict": [], "json": [], "deterministic": []}
    deciding: list[str] = []
    verdicts: dict[str, Verdict] = {}
    for where, data in stores.items():
        try:
            v = check_verdict(hyp, hyp.test(data, alpha=alpha, **opts))
        except Exception as exc:  # noqa: BLE001 - any failure is a finding to report
            problems["verdict"].append(f"on {where}, test() raised {type(exc).__name__}: {exc}")
            continue
        if v.hypothesis != hyp.name:
            problems["verdict"].append(f"on {where}, the verdict names {v.hypothesis!r}")
        verdicts[where] = v
        try:
            if Verdict.from_json(v.as_json()) != v:
                problems["json"].append(f"on {where}, Verdict.from_json(v.as_json()) != v")
        except Exception as exc:  # noqa: BLE001
            problems["json"].append(f"on {where}: {type(exc).__name__}: {exc}")
        try:
            again = hyp.test(data, alpha=alpha, **opts)
            if _masked(again.as_json()) != _masked(v.as_json()):
                problems["deterministic"].append(f"on {where}, a second test() differs")
        except Exception as exc:  # noqa: BLE001
            problems["deterministic"].append(f"on {where}: {type(exc).__name__}: {exc}")
        deciding += [f"on {where}, {p}" for p in _deciding_problems(hyp, v)]
    for name, found in problems.items():
        add(_outcome(name, found, f"{len(stores)} stores"))
    if verdicts:
        add(_outcome("deciding-test", deciding, f"{len(verdicts)} verdicts and their rows"))
    else:
        add(Check("deciding-test", False, "no verdict to check"))
    return verdicts


def _deciding_problems(hyp: Any, v: Verdict) -> list[str]:
    """Where the shown p, alpha and CI do not imply the decision."""
    if v.deciding is None:
        return ["the verdict names no deciding test (Verdict.deciding)"]
    out = []
    implied = v.implied_decision()
    if implied != v.decision:
        out.append(
            f"the verdict says {v.decision!r} but its shown p = {v.p_value:.4g} and CI "
            f"[{v.ci[0]:.4g}, {v.ci[1]:.4g}] imply {implied!r} ({v.deciding.describe()})"
        )
    for row in [*v.experiments, *([v.pooled] if v.pooled is not None else [])]:
        if row.deciding is None:
            out.append(f"row {row.label!r} names no deciding test")
            continue
        implied = row.deciding.implied_decision(row.p_value, v.alpha, row.ci_low, row.ci_high)
        if implied != row.decision:
            out.append(
                f"row {row.label!r} says {row.decision!r} but its shown p = {row.p_value:.4g} "
                f"and CI [{row.ci_low:.4g}, {row.ci_high:.4g}] imply {implied!r}"
            )
    (family,) = adjust_family([v], [hyp])
    if family.implied_decision() != family.decision:
        out.append(f"after a Holm correction it says {family.decision!r}, its numbers do not")
    return out


def _without(ds: xr.Dataset, objective: str) -> xr.Dataset:
    """``ds`` without the methods of ``objective`` (along the objective coordinate's dim)."""
    dim = ds["objective"].dims[0]
    keep = [i for i, o in enumerate(ds["objective"].values) if str(o) != objective]
    return ds.isel({dim: keep})


def _requirements_check(
    hyp: Any, data: Mapping[str, xr.Dataset], alpha: float, opts: Mapping[str, Any]
) -> Check:
    objectives, variables = tuple(hyp.required_objectives), tuple(hyp.required_variables)
    if not objectives and not variables:
        return Check(
            "requirements",
            False,
            "declares no required_objectives or required_variables, so a store lacking what it "
            "needs gets no MissingRequirementError naming the `kdtheory run` that produces it",
        )
    lacking: list[tuple[str, dict[str, xr.Dataset]]] = [
        (f"objective {o!r}", {k: _without(ds, o) for k, ds in data.items()}) for o in objectives
    ]
    lacking += [
        (f"variable {v!r}", {k: ds.drop_vars(v) for k, ds in data.items()})
        for v in variables
        if all(v in ds.data_vars for ds in data.values())
    ]
    found = []
    for what, store in lacking:
        try:
            run_test(hyp, store, alpha=alpha, **opts)
            found.append(f"a store lacking {what} gave a verdict")
        except MissingRequirementError:
            pass
        except Exception as exc:  # noqa: BLE001
            found.append(f"a store lacking {what} raised {type(exc).__name__}: {exc}")
    return _outcome(
        "requirements", found, f"{len(lacking)} stores each lacking one requirement refused"
    )


def _options_check(
    hyp: Any,
    data: Mapping[str, xr.Dataset],
    alpha: float,
    opts: Mapping[str, Any],
    plain: Verdict | None,
) -> Check:
    found = []
    defaults = {**dict(hyp.options), **opts}
    try:
        v = hyp.test(data, alpha=alpha, **defaults)
        if plain is not None and _masked(v.as_json()) != _masked(plain.as_json()):
            found.append("passing every declared option at its default changes the verdict")
    except Exception as exc:  # noqa: BLE001
        found.append(
            f"test() with every declared option at its default raised {type(exc).__name__}: {exc}"
        )
    bogus = "no_such_option_for_check_hypothesis"
    for how, call in (
        ("run_test()", lambda: run_test(hyp, data, alpha=alpha, **opts, **{bogus: 1})),
        ("test()", lambda: hyp.test(data, alpha=alpha, **opts, **{bogus: 1})),
    ):
        try:
            call()
            found.append(f"{how} accepted the unknown option {bogus!r}")
        except SpecError:
            pass
        except Exception as exc:  # noqa: BLE001
            found.append(
                f"{how} with an unknown option raised {type(exc).__name__}, not SpecError "
                "(resolve options with kdtheory.hypothesis.toolkit.resolve_options)"
            )
    return _outcome("options", found, f"{len(hyp.options)} declared options; unknown refused")


def _rate_check(
    name: str,
    hyp: Any,
    design: Mapping[str, Any],
    truth: Mapping[str, Any],
    decision: str,
    n: int,
    seed: int,
    alpha: float,
    opts: Mapping[str, Any],
    workers: int | None,
    ok: Callable[[int], bool],
    bound: str,
) -> Check:
    try:
        counts = count_decisions(
            hyp, design, truth, n, seed, alpha=alpha, options=opts, workers=workers
        )
    except Exception as exc:  # noqa: BLE001
        return Check(name, False, f"test() raised {type(exc).__name__}: {exc}")
    seen = ", ".join(f"{d} {counts[d]}" for d in DECISIONS if counts[d])
    detail = f"{decision!r} in {counts[decision]} of {n} stores ({seen}); needed {bound}"
    return Check(name, ok(counts[decision]), detail)


def _outcome(name: str, problems: Sequence[str], what: str) -> Check:
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return Check(name, False, "; ".join(problems[:3]) + more)
    return Check(name, True, what)


def _masked(text: str) -> str:
    """JSON with statsmodels' Date/Time lines masked (they change between two fits)."""
    return re.sub(r"(Date|Time):\s+\S+(?: \S+ \S+ \S+)?", r"\1: X", text)
