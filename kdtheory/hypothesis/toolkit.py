"""The toolkit hypotheses are built from: options, picking methods, per-seed reductions, pooling,
the deciding test.

The five built-in hypotheses (:mod:`kdtheory.hypotheses`) and third-party ones use the same
helpers: resolving options, picking methods by their ``objective`` coordinate, per-seed reductions
(paired differences, per-seed slopes), pooling one effect across experiments (:class:`Pooled`),
the deciding test and the rule's result (:func:`deciding`, :class:`Ruling`), and rows built by
keyword (:func:`effect_row`). :class:`kdtheory.hypothesis.template.PooledHypothesis` puts them
together into ``test()``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdtheory._lazy import lazy_module
from kdtheory.errors import SpecError
from kdtheory.hypothesis.verdict import DecidingTest, EffectRow
from kdtheory.report.format import fmt_ci as format_ci
from kdtheory.report.format import fmt_num, fmt_pct, p_text
from kdtheory.stats import (
    POOLING_METHODS,
    MetaResult,
    TestResult,
    TostResult,
    ci_at_level,
    ci_level,
    holm_ci_level,
    pool_experiments,
    slope_test,
    tost,
)
from kdtheory.store.schema import ARM

xr = lazy_module("xarray")  # imported on first use: defining hypotheses must not load xarray

NAN = float("nan")

#: Default way of pooling an effect across experiments (see
#: :func:`kdtheory.stats.pool_experiments`); every built-in hypothesis takes a ``pooling`` option.
POOLING = "mixed"

#: Fit the pooled statsmodels OLS (cluster-robust by seed) whose text goes into
#: ``Verdict.summaries``. Decisions never depend on it; simulation tests that run a hypothesis on
#: hundreds of stores switch it off for speed.
FIT_SUMMARIES = True


# ============================================================================================
# options
# ============================================================================================


def resolve_options(hypothesis: Any, given: Mapping[str, Any]) -> dict:
    """A hypothesis's options: its defaults overridden by ``given``.

    Names and string values are checked by the framework
    (:meth:`kdtheory.hypothesis.base.Hypothesis.validate_options`); on top of that, every option
    whose default is a float must be a finite number, and a margin (an option whose name ends in
    ``margin``) must be > 0.

    Raises
    ------
    SpecError
        For an unknown option or a value that cannot be used.
    """
    name = hypothesis.name
    out = {**hypothesis.options, **hypothesis.validate_options(given)}
    if "pooling" in out:
        out["pooling"] = str(out["pooling"] or POOLING).lower()
        if out["pooling"] not in POOLING_METHODS:
            raise SpecError(
                f"hypothesis {name!r}: option 'pooling' must be one of "
                f"{', '.join(POOLING_METHODS)}, got {out['pooling']!r}"
            )
    for key, default in hypothesis.options.items():
        value = out[key]
        if not isinstance(default, float) or value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SpecError(
                f"hypothesis {name!r}: option {key!r} needs a number, got {value!r}"
            ) from None
        if not math.isfinite(value) or (key.endswith("margin") and value <= 0):
            need = "> 0" if key.endswith("margin") else "a finite number"
            raise SpecError(f"hypothesis {name!r}: option {key!r} must be {need}, got {value!r}")
        out[key] = value
    return out


def kd(ds: xr.Dataset) -> Any:
    """``ds.kd``: the run-store accessor (:class:`kdtheory.store.accessor.KDAccessor`).

    Importing the accessor registers it with xarray; hypotheses are defined (``kdtheory list``)
    without importing xarray, so the toolkit imports it on first use.
    """
    from kdtheory.store import accessor  # noqa: F401 - registers ``Dataset.kd``

    return ds.kd


# ============================================================================================
# picking methods
# ============================================================================================


def method_coord(ds: xr.Dataset, name: str, method: str) -> Any:
    """Value of the ``arm`` coordinate ``name`` (e.g. temperature) for ``method``; None when the
    dataset has no such coordinate (``ds.kd.coord``)."""
    return kd(ds).coord(name, method)


def methods_with_objective(ds: xr.Dataset, objective: str) -> list[str]:
    """Method labels whose ``objective`` coordinate equals ``objective`` (store order;
    ``ds.kd.with_objective``)."""
    return kd(ds).with_objective(objective)


def methods_present(ds: xr.Dataset) -> str:
    """``"label (label), kd-T4 (kd)"``: the methods of an experiment with their objectives
    (``ds.kd.describe_arms``)."""
    return kd(ds).describe_arms()


def missing_method(ds: xr.Dataset, needs: str, opts: Mapping[str, Any]) -> str:
    """Why an experiment is skipped: what it needs, the methods options requested, what it has."""
    asked = {k: v for k, v in opts.items() if k.endswith("_method") and v}
    asked_s = f" (options {', '.join(f'{k}={v!r}' for k, v in asked.items())})" if asked else ""
    return f"needs {needs}{asked_s}; it has {methods_present(ds)}"


def pick_method(
    ds: xr.Dataset,
    objective: str,
    requested: str | None = None,
    prefer_temperature: float | None = None,
) -> str | None:
    """The method to use for ``objective``: ``requested`` if given (and of that objective),
    else the one whose temperature is ``prefer_temperature``, else the first; None if absent
    (``ds.kd.pick``)."""
    return kd(ds).pick(objective, requested, temperature=prefer_temperature)


#: The KD temperature a hypothesis uses when its ``kd_method`` option names no method.
KD_TEMPERATURE = 4.0


class SkipExperiment(Exception):  # noqa: N818 - a signal, like pytest's Skipped, not an error
    """Raised inside ``analyse()`` when an experiment lacks what the test needs.

    :class:`kdtheory.hypothesis.template.PooledHypothesis` lists the experiment as skipped with
    the message as the reason, exactly as if ``analyse()`` had returned the message.
    """


def require(method: str | None, ds: xr.Dataset, needs: str, opts: Mapping[str, Any]) -> str:
    """``method`` when one was found, else :class:`SkipExperiment` saying why.

    Parameters
    ----------
    method : str or None
        A picked method (:func:`pick_method`), None when the experiment has none.
    ds : xarray.Dataset
        The experiment.
    needs : str
        What the test needs, in words (``"a kd-shuffled method"``).
    opts : mapping
        The test's options (those ending in ``_method`` are named in the reason).

    Raises
    ------
    SkipExperiment
        With :func:`missing_method`'s reason when ``method`` is None.
    """
    if method is None:
        raise SkipExperiment(missing_method(ds, needs, opts))
    return method


def pick_kd(ds: xr.Dataset, opts: Mapping[str, Any]) -> str | None:
    """The KD method of a test: the ``kd_method`` option when set (and a kd method), else the kd
    method at :data:`KD_TEMPERATURE`, else the first; None when there is none."""
    return pick_method(ds, "kd", opts.get("kd_method"), prefer_temperature=KD_TEMPERATURE)


def kd_and(
    ds: xr.Dataset,
    opts: Mapping[str, Any],
    objective: str = "label",
    *,
    option: str | None = None,
    needs: str | None = None,
) -> tuple[str, str]:
    """The KD method (:func:`pick_kd`) and the method it is compared with.

    Parameters
    ----------
    ds : xarray.Dataset
        The experiment.
    opts : mapping
        The test's options.
    objective : str
        The objective of the comparison method (the first method of it is used).
    option : str, optional
        The option that may name the comparison method (``"ls_method"``).
    needs : str, optional
        The pair in words for the skip reason; default ``"a kd method and a <objective>
        method"``.

    Returns
    -------
    (str, str)
        The KD method and the comparison method.

    Raises
    ------
    SkipExperiment
        When either is missing (the reason names both).
    """
    kd = pick_kd(ds, opts)
    other = pick_method(ds, objective, opts.get(option) if option else None)
    if kd is None or other is None:
        raise SkipExperiment(
            missing_method(ds, needs or f"a kd method and a {objective} method", opts)
        )
    return kd, other


def sorted_experiment(ds: xr.Dataset) -> xr.Dataset:
    """The experiment with fractions in ascending order (unchanged when already sorted)."""
    fr = np.asarray(ds["fraction"].values, dtype=float)
    order = np.argsort(fr, kind="stable")
    if np.array_equal(order, np.arange(fr.size)):
        return ds
    return ds.isel(fraction=order)


def seed_slope_test(
    y: np.ndarray, x: np.ndarray, groups: np.ndarray, alternative: str, alpha: float
) -> TestResult:
    """:func:`kdtheory.stats.slope_test` (per-seed OLS slopes, t-test across seeds), with the
    pooled statsmodels summary when :data:`FIT_SUMMARIES` is on."""
    return slope_test(y, x, groups, alternative, alpha, fit_pooled=FIT_SUMMARIES)


def log_kappa(ds: xr.Dataset) -> np.ndarray:
    """Natural log of ``n_train`` (kappa) per fraction (``ds.kd.log_kappa`` as an array)."""
    return np.asarray(kd(ds).log_kappa.values, dtype=float)


def bare(da: xr.DataArray) -> xr.DataArray:
    """``da`` without coordinates (dims kept), for fast metrics within one experiment.

    Every variable of one experiment Dataset shares the same coordinates, so metrics combining
    them by dim name need no alignment; skipping it makes xarray several times faster.
    """
    return xr.DataArray(np.asarray(da.values), dims=da.dims)


def cells(da: xr.DataArray) -> np.ndarray:
    """A (fraction, seed) array of a per-cell quantity without an ``arm`` dim."""
    return np.asarray(da.transpose("fraction", "seed").values, dtype=float)


def method_array(ds: xr.Dataset, variable: str, method: str) -> xr.DataArray:
    """``ds[variable]`` of one method (``ds[variable].sel(arm=method)``), without coordinates
    (see :func:`bare`)."""
    return bare(ds[variable].sel({ARM: method}))


def accuracy_points(ds: xr.Dataset, method: str) -> np.ndarray:
    """(fraction, seed) test accuracy of ``method`` in accuracy points (NaN: untrained;
    ``ds.kd.accuracy``)."""
    return 100.0 * cells(kd(ds).accuracy(method))


# ============================================================================================
# per-seed reductions
# ============================================================================================


def nanmean(values: Iterable[float]) -> float:
    """Mean of the finite values (NaN when there are none), without a warning."""
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else NAN


def seed_means(values: np.ndarray) -> np.ndarray:
    """One value per seed: the mean over fractions of a (fraction, seed) array.

    With every cell present this is the plain mean over fractions. When some cells are NaN
    (untrained), each seed's value is the mean over *its* fractions of the deviation from the
    fraction's mean across seeds, plus the mean of the fraction means — so a seed missing a
    fraction where the effect is large is not biased by that. Seeds without a finite cell are
    dropped.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if ok.all():
        return v.mean(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        frac_means = np.nanmean(v, axis=1)  # (F,)
        grand = np.nanmean(frac_means)
        m = np.nanmean(v - frac_means[:, None], axis=0) + grand
    return m[np.isfinite(m)]


def seed_slopes(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """OLS slope of ``values[:, s]`` on ``x`` for every seed with 2+ distinct finite x."""
    v = np.asarray(values, dtype=float)
    out = []
    for s in range(v.shape[1]):
        ok = np.isfinite(v[:, s]) & np.isfinite(x)
        xs, ys = x[ok], v[ok, s]
        if np.unique(xs).size < 2:
            continue
        xc = xs - xs.mean()
        out.append(float((xc * (ys - ys.mean())).sum() / (xc * xc).sum()))
    return np.asarray(out)


def long_form(values: np.ndarray, x: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flatten a (fraction, seed) array into ``y, x, group`` vectors (NaN rows kept)."""
    f, s = values.shape
    return (
        np.asarray(values, dtype=float).ravel(),
        np.repeat(np.asarray(x, dtype=float), s),
        np.tile(np.asarray(seeds), f),
    )


def mean_ci(values: Iterable[float], alpha: float) -> dict[str, float]:
    """Mean, two-sided ``1 - alpha`` t interval and n of the finite values (for tables)."""
    v = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return {"mean": NAN, "ci_low": NAN, "ci_high": NAN, "n": 0}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "ci_low": NAN, "ci_high": NAN, "n": 1}
    from scipy.special import stdtrit

    half = float(stdtrit(n - 1, 1.0 - alpha / 2.0)) * float(v.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


# ============================================================================================
# table records
# ============================================================================================


def fraction_means(**values: np.ndarray | None) -> dict[str, list[float]]:
    """Columns of per-fraction means over seeds (:func:`nanmean`), one per (fraction, seed)
    array given by keyword, in that order; None arrays are left out.

    For :func:`fraction_records`: ``fraction_means(kd_accuracy=a_kd, label_accuracy=a_label)``.
    """
    return {
        key: [nanmean(row) for row in np.asarray(v, dtype=float)]
        for key, v in values.items()
        if v is not None
    }


def mean_ci_columns(
    values: np.ndarray,
    alpha: float,
    name: str,
    *,
    prefix_ci: bool = False,
    n_key: str | None = "n",
) -> dict[str, list[Any]]:
    """Columns of a (fraction, seed) array's :func:`mean_ci` per fraction, for
    :func:`fraction_records`.

    Parameters
    ----------
    values : array (F, S)
    alpha : float
        The intervals are two-sided at ``1 - alpha``.
    name : str
        The column of the means.
    prefix_ci : bool
        Name the interval's columns ``<name>_ci_low``/``<name>_ci_high`` rather than
        ``ci_low``/``ci_high``.
    n_key : str or None
        The column of the seed counts (None: no such column).

    Returns
    -------
    dict of str to list
        ``name``, the two interval columns and ``n_key``, in that order.
    """
    stats = [mean_ci(row, alpha) for row in np.asarray(values, dtype=float)]
    ci = f"{name}_ci" if prefix_ci else "ci"
    out: dict[str, list[Any]] = {
        name: [m["mean"] for m in stats],
        f"{ci}_low": [m["ci_low"] for m in stats],
        f"{ci}_high": [m["ci_high"] for m in stats],
    }
    if n_key is not None:
        out[n_key] = [m["n"] for m in stats]
    return out


def fraction_records(
    name: str, ds: xr.Dataset, *columns: Mapping[str, Sequence[Any]]
) -> list[dict[str, Any]]:
    """One table record per fraction of an experiment.

    Parameters
    ----------
    name : str
        The experiment id (each record's ``experiment``).
    ds : xarray.Dataset
        The experiment, in the fraction order of the columns' values (:func:`sorted_experiment`).
    *columns : mapping of str to sequence
        Column name → one value per fraction (:func:`fraction_means`, :func:`mean_ci_columns`,
        or lists the hypothesis builds); merged in order, a later column of the same name
        replacing an earlier one.

    Returns
    -------
    list of dict
        ``experiment``, ``fraction``, ``n_train``, then the columns' values.
    """
    fractions = np.asarray(ds["fraction"].values, dtype=float)
    kappa = np.asarray(ds["n_train"].values)
    merged = {key: list(v) for group in columns for key, v in group.items()}
    for key, v in merged.items():
        if len(v) != fractions.size:
            raise ValueError(f"column {key!r} has {len(v)} values for {fractions.size} fractions")
    return [
        {
            "experiment": name,
            "fraction": float(f),
            "n_train": int(kappa[i]),
            **{key: v[i] for key, v in merged.items()},
        }
        for i, f in enumerate(fractions)
    ]


def cell_records(
    name: str, ds: xr.Dataset, columns: Mapping[str, np.ndarray | None], **keys: Any
) -> list[dict[str, Any]]:
    """One table record per (fraction, seed) cell of an experiment.

    Parameters
    ----------
    name : str
        The experiment id (each record's ``experiment``).
    ds : xarray.Dataset
        The experiment, in the fraction and seed order of the arrays (:func:`sorted_experiment`).
    columns : mapping of str to array (F, S) or None
        Column name → per-cell values, taken as Python scalars of the array's kind (floats stay
        floats, an integer array gives ints); None arrays are left out.
    **keys
        Values the same in every record (``method=...``), after ``experiment``.

    Returns
    -------
    list of dict
        Fraction-major: ``experiment``, ``keys``, ``fraction``, ``n_train``, ``seed``, then the
        columns.
    """
    fractions = np.asarray(ds["fraction"].values, dtype=float)
    kappa = np.asarray(ds["n_train"].values)
    seeds = np.asarray(ds["seed"].values)
    arrays = {key: np.asarray(v) for key, v in columns.items() if v is not None}
    for key, v in arrays.items():
        if v.shape != (fractions.size, seeds.size):
            raise ValueError(
                f"column {key!r} has shape {v.shape}, not (fraction, seed) = "
                f"({fractions.size}, {seeds.size})"
            )
    return [
        {
            "experiment": name,
            **keys,
            "fraction": float(fractions[i]),
            "n_train": int(kappa[i]),
            "seed": int(seeds[j]),
            **{key: v[i, j].item() for key, v in arrays.items()},
        }
        for i in range(fractions.size)
        for j in range(seeds.size)
    ]


# ============================================================================================
# pooling and decisions
# ============================================================================================


@dataclass
class Effect:
    """One test's numbers, from a single experiment or pooled across experiments."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float = NAN
    n: int = 0
    df: float = NAN
    alternative: str = "two-sided"
    null: float = 0.0

    @classmethod
    def of(cls, r: TestResult | MetaResult, null: float = 0.0) -> Effect:
        """The numbers of a test result; ``null`` is the value the test was against (it is
        not recorded in the result), used when the effect is pooled (:meth:`Pooled.tests`)."""
        n = getattr(r, "n", None)
        if n is None:
            n = getattr(r, "k", 0)
        df = getattr(r, "df", None)
        if df is None:
            df = float(n - 1) if n and n > 1 else NAN
        return cls(
            estimate=r.estimate,
            se=r.se,
            ci_low=r.ci_low,
            ci_high=r.ci_high,
            p_value=r.p_value,
            statistic=r.statistic,
            n=int(n),
            df=df,
            alternative=getattr(r, "alternative", "two-sided"),
            null=float(null),
        )

    def sig(self, alpha: float) -> bool:
        """Whether the p-value is below ``alpha`` (False when NaN)."""
        return bool(self.p_value < alpha)

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.estimate) and np.isfinite(self.se))


@dataclass
class Equivalence:
    """A TOST result (single experiment or pooled)."""

    p_value: float
    equivalent: bool
    ci_low: float
    ci_high: float
    low: float
    high: float
    estimate: float = NAN
    se: float = NAN
    n: int = 0
    df: float = NAN

    @classmethod
    def of(cls, r: TostResult) -> Equivalence:
        return cls(
            r.p_value,
            r.equivalent,
            r.ci_low,
            r.ci_high,
            r.low,
            r.high,
            r.estimate,
            r.se,
            int(r.n),
            float(r.df),
        )

    def effect(self, statistic: float = NAN) -> Effect:
        """The TOST as an :class:`Effect`: estimate, ``1 - 2*alpha`` CI and the TOST p."""
        return Effect(
            self.estimate,
            self.se,
            self.ci_low,
            self.ci_high,
            self.p_value,
            statistic,
            self.n,
            self.df,
        )

    def deciding(self, name: str, outcome: str, alpha: float) -> tuple[Effect, DecidingTest]:
        """The TOST as the deciding test (:func:`deciding`, kind ``"inside"``, the band
        ``(low, high)``): the numbers a row shows and the test.

        Parameters
        ----------
        name : str
            The test in words (``"TOST slope within ±0.5"``).
        outcome : {"supported", "rejected"}
            The decision equivalence leads to.
        alpha : float
        """
        return deciding(self.effect(), name, outcome, "inside", alpha, low=self.low, high=self.high)


class Pooled:
    """Pools of the experiments' components across experiments.

    Each ``(component, alternative)`` pool is computed once by
    :func:`kdtheory.stats.pool_experiments` with ``method`` and serves both the decision
    (:meth:`effect`) and the pooled summary text (:meth:`summary`). Experiments whose component
    is None (not tested there) or NaN are left out of that component's pool.

    Parameters
    ----------
    results : sequence of ExperimentResult
        The experiments to pool; each carries its :class:`Effect` s in ``components``.
    alpha : float
    method : {"mixed", "hksj"}
    """

    def __init__(
        self, results: Sequence[ExperimentResult], alpha: float, method: str = POOLING
    ) -> None:
        self.results = list(results)
        self.alpha = alpha
        self.method = method
        self._metas: dict[tuple[str, str, float], MetaResult | None] = {}

    @property
    def description(self) -> str:
        """The pooling method in words."""
        return f"{self.method}: {POOLING_METHODS[self.method]}"

    def effects(self, component: str) -> list[Effect]:
        """The experiments' (non-None, finite) effects of ``component``."""
        found = (r.components.get(component) for r in self.results)
        return [e for e in found if e is not None and np.isfinite(e.estimate)]

    def meta(self, component: str, alternative: str, null: float = 0.0) -> MetaResult | None:
        """The full :class:`MetaResult` (tau², I², method) of one pool; None if fewer than 2
        experiments have the component."""
        key = (component, alternative, float(null))
        if key not in self._metas:
            effects = self.effects(component)
            self._metas[key] = (
                pool_experiments(
                    [e.estimate for e in effects],
                    [e.se for e in effects],
                    [e.n for e in effects],
                    alternative,
                    self.alpha,
                    method=self.method,
                    null=null,
                )
                if len(effects) >= 2
                else None
            )
        return self._metas[key]

    def effect(self, component: str, alternative: str, null: float = 0.0) -> Effect | None:
        """The pooled :class:`Effect` of ``component`` under ``alternative``: None when no
        experiment tested it, NaN numbers when fewer than 2 experiments have a finite one."""
        if all(r.components.get(component) is None for r in self.results):
            return None
        m = self.meta(component, alternative, null)
        if m is None:
            return Effect(NAN, NAN, NAN, NAN, NAN, alternative=alternative, null=null)
        return Effect.of(m, null)

    def tests(self) -> dict[str, Any]:
        """Every component pooled the way it was tested in the experiments: an
        :class:`Effect` with its own alternative and null (:meth:`effect`), an
        :class:`Equivalence` within its own margins (:meth:`tost`); None where no experiment
        tested it.

        Raises
        ------
        TypeError
            For a component that is neither (a hypothesis pools such components itself).
        """
        names = list(dict.fromkeys(c for r in self.results for c in r.components))
        out: dict[str, Any] = {}
        for name in names:
            found = (r.components.get(name) for r in self.results)
            first = next((c for c in found if c is not None), None)
            if first is None:
                out[name] = None
            elif isinstance(first, Equivalence):
                out[name] = self.tost(name, first.low, first.high)
            elif isinstance(first, Effect):
                out[name] = self.effect(name, first.alternative, first.null)
            else:
                raise TypeError(
                    f"component {name!r} is a {type(first).__name__}, not an Effect or an "
                    "Equivalence: pool it in the hypothesis's pool()"
                )
        return out

    def tost(self, component: str, low: float, high: float) -> Equivalence:
        """Equivalence of the pooled ``component`` within ``(low, high)``: the two one-sided
        pooled tests against the margins; equivalent exactly when the pooled ``1 - 2*alpha``
        interval lies inside them."""
        lo = self.meta(component, "greater", low)
        hi = self.meta(component, "less", high)
        if lo is None or hi is None:
            return Equivalence(NAN, False, NAN, NAN, low, high)
        p = max(lo.p_value, hi.p_value)
        equivalent = bool(np.isfinite(p) and p < self.alpha)
        return Equivalence(
            p,
            equivalent,
            lo.ci_low,
            lo.ci_high,
            low,
            high,
            lo.estimate,
            lo.se,
            lo.k,
            float(lo.k - 1),
        )

    def row(self, ruling: Ruling, heterogeneity: str) -> EffectRow:
        """The pooled :class:`EffectRow` of ``ruling``: its shown numbers and deciding test,
        ``k``, the pooling method, tau² and I² of the ``heterogeneity`` component, then the
        ruling's numbers."""
        e = ruling.shown
        het = self.meta(heterogeneity, "two-sided")
        extra = {
            "k": e.n,
            "pooling": self.method,
            "tau2": het.tau2 if het is not None else NAN,
            "i2": het.i2 if het is not None else NAN,
            **ruling.numbers,
        }
        return effect_row(
            label="pooled",
            effect=e,
            decision=ruling.decision,
            extra=extra,
            deciding=ruling.deciding,
            unit="experiments",
        )

    def summary(self, title: str, lines: Mapping[str, tuple[str, str]]) -> str:
        """:func:`meta_summary` of the pools named in ``lines`` (label → component, alternative);
        pools that were never tested are left out."""
        metas = {label: self.meta(*pool) for label, pool in lines.items()}
        present = {label: m for label, m in metas.items() if m is not None}
        return meta_summary(title, present, [r.name for r in self.results], self.description)


def pooled_tost(effects: Sequence[Effect], low: float, high: float, alpha: float) -> Equivalence:
    """TOST of ``effects``' experiment estimates within ``(low, high)`` on ``k - 1`` df (the
    default ``"mixed"`` pooling; :meth:`Pooled.tost` follows the chosen method)."""
    est = [e.estimate for e in effects if np.isfinite(e.estimate)]
    return Equivalence.of(tost(est, low, high, alpha))


# ============================================================================================
# the deciding test
# ============================================================================================


def deciding(
    e: Effect | None,
    name: str,
    outcome: str,
    kind: str,
    alpha: float,
    *,
    p: float | None = None,
    p_raw: float | None = None,
    null: float = 0.0,
    low: float = NAN,
    high: float = NAN,
) -> tuple[Effect, DecidingTest]:
    """The numbers a row shows for its deciding test, and the test.

    Parameters
    ----------
    e : Effect or None
        The test's estimate, se, CI (at the unadjusted level) and p-value.
    name, outcome, kind
        See :class:`kdtheory.hypothesis.verdict.DecidingTest`.
    alpha : float
    p : float, optional
        The decision's p-value when it is not ``e.p_value`` (an intersection-union p, or a
        Holm-adjusted one).
    p_raw : float, optional
        With a Holm-adjusted ``p``: the member's unadjusted p-value; the CI is then widened to
        the level that agrees with ``p`` (:func:`kdtheory.stats.holm_ci_level`).
    null, low, high
        The null value or the band.
    """
    alternative = "two-sided" if kind == "two-sided" else "greater"
    level = ci_level(alternative, alpha)
    if e is None:
        e = Effect(NAN, NAN, NAN, NAN, NAN)
    p_shown = e.p_value if p is None else float(p)
    lo, hi = e.ci_low, e.ci_high
    if p_raw is not None and p is not None:
        level = holm_ci_level(float(p_raw), float(p), alternative, alpha)
        lo, hi = ci_at_level(e.estimate, e.se, e.df, level)
        if e.se == 0 and np.isfinite(e.estimate):
            lo = hi = e.estimate
    shown = Effect(e.estimate, e.se, lo, hi, p_shown, e.statistic, e.n, e.df)
    test = DecidingTest(name, outcome, kind, null=null, low=low, high=high, ci_level=level)
    return shown, test


def intersection_union_p(*effects: Effect | None) -> float:
    """The p-value of "every one of these effects is significant": the largest p.

    An intersection-union test needs no multiplicity correction. None effects (not tested in
    this experiment) are left out; a NaN p makes the result NaN (one test without a p cannot be
    passed), and so does having no effect at all.
    """
    ps = [float(e.p_value) for e in effects if e is not None]
    if not ps or not all(np.isfinite(ps)):
        return NAN
    return max(ps)


def intersection_union(
    shown: Effect, parts: Sequence[Effect | None], what: str, alpha: float
) -> tuple[Effect, DecidingTest]:
    """The deciding test of "every one of ``parts`` is significant": outcome ``"supported"``,
    p :func:`intersection_union_p` of ``parts``.

    Parameters
    ----------
    shown : Effect
        The effect whose estimate and CI the row shows (the key effect, usually among
        ``parts``); its alternative is the test's kind.
    parts : sequence of Effect or None
        The tests that must all be significant (None: not tested, left out).
    what : str
        The parts in words; the test is named ``"intersection-union: <what>"``.
    alpha : float

    Returns
    -------
    (Effect, DecidingTest)
        As :func:`deciding`.
    """
    return deciding(
        shown,
        f"intersection-union: {what}",
        "supported",
        shown.alternative,
        alpha,
        p=intersection_union_p(*parts),
    )


def directional_ruling(
    claimed: Effect,
    opposite: Effect,
    alpha: float,
    name: str,
    numbers: Mapping[str, Any] | None = None,
) -> Ruling:
    """The rule of a claim that one effect lies on one side of its null.

    Parameters
    ----------
    claimed : Effect
        The effect tested in the claim's direction (``alternative`` ``"greater"`` or
        ``"less"``).
    opposite : Effect
        The same effect tested the other way.
    alpha : float
    name : str
        What the effect is, e.g. ``"KD − label accuracy"`` (names the deciding test).
    numbers : mapping, optional
        Further numbers for the rows (:attr:`Ruling.numbers`).

    Returns
    -------
    Ruling
        ``supported`` when ``claimed`` is significant, ``rejected`` when ``opposite`` is,
        ``inconclusive`` otherwise (showing ``claimed``); each shows its deciding test's numbers.
    """
    sign = {"greater": ">", "less": "<"}
    for e in (claimed, opposite):
        if e.alternative not in sign:
            raise ValueError(f"directional_ruling needs one-sided effects; got {e.alternative!r}")
    decision, e, outcome = "inconclusive", claimed, "supported"
    if claimed.sig(alpha):
        decision = "supported"
    elif opposite.sig(alpha):
        decision, e, outcome = "rejected", opposite, "rejected"
    label = f"{name} {sign[e.alternative]} {fmt(e.null)}"
    shown, test = deciding(e, label, outcome, e.alternative, alpha, null=e.null)
    return Ruling(decision, shown, test, dict(numbers or {}))


def effect_row(
    *,
    label: str,
    effect: Effect,
    decision: str,
    extra: Mapping[str, Any] | None = None,
    deciding: DecidingTest | None = None,
    unit: str = "seeds",
) -> EffectRow:
    """An :class:`EffectRow` of ``effect``'s numbers (``deciding``: the test they belong to).

    Every argument is a keyword: a row has too many numbers to build by position.
    """
    e = effect
    return EffectRow(
        label=label,
        estimate=float(e.estimate),
        ci_low=float(e.ci_low),
        ci_high=float(e.ci_high),
        p_value=float(e.p_value),
        statistic=float(e.statistic),
        n=int(e.n),
        decision=decision,  # type: ignore[arg-type]
        extra=dict(extra or {}),
        unit=unit,
        deciding=deciding,
    )


def fmt(x: float, digits: int = 3) -> str:
    """Compact number for reasons and summaries (``nan`` stays ``nan``):
    :func:`kdtheory.report.format.fmt_num` with 3 digits."""
    return fmt_num(x, digits, missing="nan")


def fmt_ci(lo: float, hi: float, digits: int = 3) -> str:
    """``"[lo, hi]"`` with :func:`fmt` (``"[nan, nan]"`` when missing)."""
    return format_ci(lo, hi, digits, missing=None)


#: ``"p = 0.0249"``: the one p formatting of every rendering
#: (:func:`kdtheory.report.format.p_text`).
fmt_p = p_text

#: ``0.95`` -> ``"95%"`` (:func:`kdtheory.report.format.fmt_pct`).
pct = fmt_pct


def result_text(
    r: TestResult | Effect, *, ci: str = "", t_df: bool = False, digits: int = 4
) -> str:
    """A test's numbers for a summary line: ``"0.1234, 95% CI [0.01, 0.2], p = 0.0312"``.

    Parameters
    ----------
    r : TestResult or Effect
    ci : str
        Words naming the interval (``"CI"``, or :func:`kdtheory.stats.ci_level_note`'s); empty:
        the interval follows the estimate after a space (``"0.1234 [0.01, 0.2], p = 0.0312"``).
    t_df : bool
        Add the t statistic and its degrees of freedom before the p-value.
    digits : int
        Significant digits of the estimate and the interval.
    """
    interval = fmt_ci(r.ci_low, r.ci_high, digits)
    text = f"{fmt(r.estimate, digits)}{f', {ci} ' if ci else ' '}{interval}"
    if t_df:
        text += f", t={fmt(r.statistic)}, df={fmt(r.df)}"
    return f"{text}, {fmt_p(r.p_value)}"


def fraction_label(fraction: float, seed: int | None = None) -> str:
    """``"f=0.25"``, or with a seed ``"f=0.25 seed 3"``: a fraction (and seed) in words."""
    s = f"f={fraction:.6g}"
    return s if seed is None else f"{s} seed {seed}"


# ============================================================================================
# what a hypothesis computes
# ============================================================================================


@dataclass(frozen=True)
class Ruling:
    """What a hypothesis's rule decided from its tests (one experiment's, or the pooled ones).

    Attributes
    ----------
    decision : {"supported", "rejected", "inconclusive"}
    shown : Effect
        The deciding test's numbers a row shows: estimate, CI and the p the decision rests on
        (see :func:`deciding`).
    deciding : DecidingTest
        The test the decision rests on.
    numbers : dict
        Further numbers behind the decision, put in every row's ``extra`` (an experiment's and
        the pooled one alike).
    """

    decision: str
    shown: Effect
    deciding: DecidingTest
    numbers: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentResult:
    """What a hypothesis computed on one experiment
    (:meth:`kdtheory.hypothesis.template.PooledHypothesis.analyse`).

    Attributes
    ----------
    name : str
        The experiment id.
    components : dict
        The tests the rule decides on (:class:`Effect`, :class:`Equivalence`, or anything the
        hypothesis's rule and pooling understand; None: not tested in this experiment).
    settings : dict
        What was compared (methods, margins): first in the experiment's row ``extra``.
    numbers : dict
        Further numbers worth reporting: in the row ``extra`` after the rule's numbers.
    tables : dict of str to list of dict
        Records (e.g. per fraction) merged across experiments into ``Verdict.tables``; each
        record carries an ``experiment`` key.
    summary : str or callable
        Text of the fitted models, or a function of the experiment's :class:`Ruling` that
        returns it (when the text names the decision).
    ruling : Ruling or None
        Set by the template: the rule applied to ``components``.
    row : EffectRow or None
        Set by the template: the experiment's row of ``Verdict.experiments``.
    """

    name: str
    components: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summary: str | Callable[[Ruling], str] = ""
    ruling: Ruling | None = None
    row: EffectRow | None = None


def meta_summary(
    title: str, metas: Mapping[str, MetaResult], labels: Sequence[str], method: str = ""
) -> str:
    """Text block describing the pooled tests (one line per component)."""
    lines = [f"{title} — pooled across experiments ({', '.join(labels)}); {method}"]
    for key, m in metas.items():
        lines.append(
            f"  {key}: estimate {fmt(m.estimate, 4)} (se {fmt(m.se, 3)}), CI "
            f"{fmt_ci(m.ci_low, m.ci_high, 4)}, t={fmt(m.statistic, 3)}, {fmt_p(m.p_value)}, "
            f"{m.alternative}, tau2={fmt(m.tau2, 3)}, I2={fmt(m.i2, 3)}, k={m.k} [{m.method}]"
        )
    return "\n".join(lines)


# ============================================================================================
# data multiplier
# ============================================================================================


def data_multiplier(
    n_train: np.ndarray, label_acc: np.ndarray, kd_acc: np.ndarray
) -> list[dict[str, Any]]:
    """How many times more labelled samples label training needs to match KD, per fraction.

    The mean label accuracy curve is interpolated linearly in log kappa between the observed
    fractions (never extrapolated). For KD's mean accuracy ``a`` at kappa, the matching kappa* is
    the smallest kappa on the piecewise-linear label curve where it reaches ``a``, and the
    multiplier is ``kappa* / kappa``.

    Parameters
    ----------
    n_train : array (F,)
        kappa per fraction (ascending).
    label_acc, kd_acc : array (F,)
        Mean test accuracy of label and KD training per fraction (NaN where unknown).

    Returns
    -------
    list of dict
        One record per fraction: ``n_train``, ``kd_accuracy``, ``matching_n_train`` (kappa*),
        ``multiplier`` and ``status``: ``"interpolated"``; ``"above label curve max"`` when KD
        beats every label accuracy observed (multiplier NaN; ``multiplier_bound`` = kappa_max /
        kappa is a lower bound); ``"below label curve min"`` when KD is below the label curve's
        first point (multiplier NaN; ``multiplier_bound`` = kappa_min / kappa is an upper bound);
        ``"no data"`` when KD's accuracy is NaN or the label curve has under 2 points.
    """
    n_train = np.asarray(n_train, dtype=float)
    label_acc = np.asarray(label_acc, dtype=float)
    kd_acc = np.asarray(kd_acc, dtype=float)
    ok = np.isfinite(label_acc) & np.isfinite(n_train) & (n_train > 0)
    xs, ys = np.log(n_train[ok]), label_acc[ok]
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    out: list[dict[str, Any]] = []
    for kappa, a in zip(n_train, kd_acc, strict=True):
        rec: dict[str, Any] = {
            "n_train": int(kappa),
            "kd_accuracy": float(a),
            "matching_n_train": NAN,
            "multiplier": NAN,
            "multiplier_bound": NAN,
            "status": "no data",
        }
        if not np.isfinite(a) or xs.size < 2:
            out.append(rec)
            continue
        if a > ys.max():
            rec["status"] = "above label curve max"
            rec["multiplier_bound"] = float(np.exp(xs[-1]) / kappa)
        elif a < ys[0]:
            rec["status"] = "below label curve min"
            rec["multiplier_bound"] = float(np.exp(xs[0]) / kappa)
        else:
            # first segment [i, i+1] of the curve that reaches a
            if a == ys[0]:
                x_star = xs[0]
            else:
                i = int(np.flatnonzero((ys[:-1] < a) & (ys[1:] >= a))[0])
                t = (a - ys[i]) / (ys[i + 1] - ys[i])
                x_star = xs[i] + t * (xs[i + 1] - xs[i])
            rec["matching_n_train"] = float(np.exp(x_star))
            rec["multiplier"] = float(np.exp(x_star) / kappa)
            rec["status"] = "interpolated"
        out.append(rec)
    return out
