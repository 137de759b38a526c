"""``kdtheory test data-efficiency --by FACTOR``: does a modelling factor change data efficiency?

The data-efficiency model (:func:`kdtheory.hypotheses.data_efficiency.seed_gain_slopes`: per
seed, the OLS slope of KD's gain over label training on log kappa) is fitted per level of the
factor, and an interaction test asks whether the slope differs between levels:

- **temperature** and **objective** vary *within* an experiment (every method trains on the same
  seeds' subsets): a repeated-measures ANOVA of the per-seed slopes (seed × level), with the
  Greenhouse–Geisser correction; over several experiments the same test on the experiments'
  mean slopes (experiment × level: experiments are the units, as in the project's default
  pooling), and each level's difference from the reference level pooled across experiments by
  :func:`kdtheory.stats.pool_experiments`;
- **student** and **teacher-fraction** vary *between* experiments (one student and one teacher
  share per experiment): a one-way ANOVA of the per-seed slopes when each level is one
  experiment, else of the experiments' mean slopes (experiments are the units).

Decision: **supported** (the factor changes data efficiency) when the interaction test gives
``p < alpha``; **rejected** (it does not, to within ``slope_margin``) when every level's
difference from the reference level is shown inside ``±slope_margin`` by TOST (the largest TOST
p below alpha); **inconclusive** otherwise.

The result and its renderings are :mod:`.factor_result`; the figure and the report sections
:mod:`.factor_report`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from kdtheory.errors import MissingRequirementError, SpecError
from kdtheory.hypotheses.factor_result import FactorResult, factor_name, interaction_text
from kdtheory.stats import POOLING_METHODS, one_sample_t, pool_experiments
from kdtheory.stats.factors import (
    Contrast,
    InteractionTest,
    group_contrasts,
    oneway_anova,
    paired_contrasts,
    repeated_measures_anova,
)

__all__ = [
    "FACTORS",
    "FIX_HINTS",
    "FactorResult",
    "check_factor",
    "experiment_levels",
    "factor_test",
    "level_order",
    "natural_key",
    "stratum_of",
    "teacher_fraction_of",
]

#: The factors ``--by`` accepts, with what their levels are.
FACTORS: dict[str, str] = {
    "temperature": "the distillation temperature T of the kd methods",
    "objective": "the distillation objective of each method (at T=4 where it has a temperature)",
    "student": "the student architecture (one experiment per student)",
    "teacher-fraction": "the share of the training set the teacher trained on (one experiment "
    "per share)",
}

#: Factors whose levels are methods of one experiment (the others are experiments).
WITHIN = ("temperature", "objective")

#: What to run for a second level of each factor.
FIX_HINTS = {
    "temperature": "train kd at several temperatures, e.g. `kdtheory run --methods "
    "label,kd:T=1,kd:T=4,kd:T=8` (or `--preset factors`)",
    "objective": "train several distillation objectives, e.g. `kdtheory run --methods "
    "label,kd:T=4,kd-mse`",
    "student": "train several students into the store, e.g. `kdtheory run --student "
    "mlp:width=32 --student mlp:width=128` (or `--preset factors`)",
    "teacher-fraction": "train teachers on several shares of the data, e.g. `kdtheory run "
    "--teacher-fraction 0.25,1` (or `--preset factors`)",
}

#: The temperature a method of a temperature-less factor is compared at.
REFERENCE_TEMPERATURE = 4.0


def check_factor(by: str) -> str:
    """``by`` if it is a factor, else a :class:`SpecError` naming the choices."""
    if by in FACTORS:
        return by
    from kdtheory.plugin.registry import did_you_mean

    hint = did_you_mean(by, FACTORS, n=1, cutoff=0.5)
    raise SpecError(f"--by: unknown factor {by!r}.{hint} Choose one of: {', '.join(FACTORS)}.")


def teacher_fraction_of(ds: Any) -> float:
    """The share of the training set an experiment's teacher trained on (1 when not recorded:
    stores written before ``--teacher-fraction``)."""
    value = ds.attrs.get("teacher_fraction")
    if value is None:
        try:
            value = json.loads(str(ds.attrs.get("recipe") or "{}")).get("teacher_fraction")
        except (ValueError, AttributeError):
            value = None
    return 1.0 if value is None else float(value)


def experiment_levels(ds: Any, by: str, kd_method: str | None = None) -> list[tuple[str, Any, str]]:
    """The factor's levels in one experiment: ``(level label, sort key, method)`` each.

    Parameters
    ----------
    ds : xarray.Dataset
        One experiment.
    by : str
        A factor of :data:`FACTORS`.
    kd_method : str, optional
        The KD method of a between-experiment factor (default: kd at T=4, else the first kd).

    Returns
    -------
    list of (str, sort key, str)
        Empty when the experiment has no method of the factor.
    """
    acc = ds.kd
    arms = list(acc.arms)
    if by == "temperature":
        out = []
        for arm in acc.with_objective("kd"):
            t = acc.coord("temperature", arm)
            if t is not None and math.isfinite(float(t)):
                out.append((f"T={float(t):g}", float(t), arm))
        return sorted(out, key=lambda r: r[1])
    if by == "objective":
        out = []
        for objective in dict.fromkeys(str(acc.coord("objective", a)) for a in arms):
            if objective == "label":
                continue
            arm = acc.pick(objective, None, temperature=REFERENCE_TEMPERATURE)
            if arm is not None:
                out.append((objective, objective, arm))
        return out
    arm = acc.pick("kd", kd_method, temperature=REFERENCE_TEMPERATURE)
    if arm is None:
        return []
    if by == "student":
        student = str(ds.attrs.get("student", "?"))
        return [(student, natural_key(student), arm)]
    share = teacher_fraction_of(ds)
    return [(f"teacher share {share:g}", share, arm)]


# ---------------------------------------------------------------------------- the test
def factor_test(
    store: Mapping[str, Any],
    by: str,
    alpha: float = 0.05,
    *,
    kd_method: str | None = None,
    slope_margin: float = 0.5,
    pooling: str = "mixed",
) -> FactorResult:
    """Test whether ``by`` changes data efficiency on a run store.

    Parameters
    ----------
    store : mapping of str to xarray.Dataset
        Experiment id → dataset (:func:`kdtheory.open_runs`).
    by : str
        ``temperature``, ``objective``, ``student`` or ``teacher-fraction``.
    alpha : float
    kd_method : str, optional
        The KD method of a between-experiment factor (default kd at T=4, else the first kd).
    slope_margin : float
        Equivalence margin of a slope difference (points per unit ln kappa), as the
        data-efficiency hypothesis's.
    pooling : {"mixed", "hksj"}
        How a level's slope (and, for a within factor, a level difference) is pooled across
        experiments (:func:`kdtheory.stats.pool_experiments`).

    Returns
    -------
    FactorResult

    Raises
    ------
    SpecError
        For an unknown factor.
    MissingRequirementError
        When the store has fewer than two levels of the factor (it says what to run).
    """
    from kdtheory.hypotheses.data_efficiency import seed_gain_slopes
    from kdtheory.store.convergence import check_store
    from kdtheory.store.titles import experiment_titles

    check_factor(by)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []  # experiment, block, level, key, method, seed, slope
    strata: dict[str, str] = {}
    for name, ds in store.items():
        label = ds.kd.pick("label", None)
        levels = experiment_levels(ds, by, kd_method)
        if label is None or not levels:
            notes.append(
                f"experiment {name} left out: it has no label method or no method of the "
                f"factor ({ds.kd.describe_arms()})"
            )
            continue
        block = name if by in WITHIN else stratum_of(ds, by, strata)
        for level, key, arm in levels:
            for seed, slope in seed_gain_slopes(ds, arm, label).items():
                rows.append(
                    {
                        "experiment": name,
                        "block": block,
                        "level": level,
                        "key": key,
                        "method": arm,
                        "seed": seed,
                        "slope": slope,
                    }
                )
    order = level_order(rows)
    if len(order) < 2:
        found = f"only {order[0]!r}" if order else "none"
        raise MissingRequirementError(
            f"--by {by}: the store has {found} as a level of {by} ({FACTORS[by]}); a test of "
            f"whether {by} changes data efficiency needs at least two. To fix it, {FIX_HINTS[by]}."
        )
    titles = experiment_titles(store)
    paired = by in WITHIN
    block_titles = titles if paired else {v: v for v in strata.values()}
    try:
        test, contrasts, block_tests, units = _blocked_test(
            rows, order, paired, pooling, alpha, notes, block_titles
        )
    except MissingRequirementError as exc:
        raise MissingRequirementError(f"--by {by}: {exc}") from None
    # intervals at 1 - 2 alpha, the report's convention, which agree with TOST at alpha
    levels = _level_records(rows, order, 2 * alpha, pooling)
    contrast_records = [_contrast_record(c, 2 * alpha, slope_margin) for c in contrasts]
    decision, reason = _decide(by, test, contrast_records, alpha, slope_margin, units)
    return FactorResult(
        factor=by,
        alpha=alpha,
        slope_margin=slope_margin,
        design="within" if paired else "between",
        units=units,
        decision=decision,
        test=test,
        levels=levels,
        contrasts=contrast_records,
        experiments=_experiment_records(rows, order, 2 * alpha),
        experiment_tests=block_tests,
        reason=reason,
        model=_model_text(paired, units, pooling),
        notes=notes,
        titles=titles,
        warnings=check_store(store).warnings(),
    )


def stratum_of(ds: Any, by: str, strata: dict[str, str]) -> str:
    """The label of the experiments that differ from ``ds`` only in the factor ``by``.

    Experiments are compared across levels of a between-experiment factor only inside such a
    stratum (same dataset, teacher, recipe; the other factor fixed), so that a level is never
    confounded with another dataset or recipe. ``strata`` maps each stratum's key to its label
    and is filled as experiments are seen.
    """
    try:
        recipe = json.loads(str(ds.attrs.get("recipe") or "{}"))
    except ValueError:
        recipe = {}
    recipe = {k: v for k, v in recipe.items() if k not in ("student", "teacher_fraction")}
    recipe["dataset"], recipe["teacher"] = ds.attrs.get("dataset"), ds.attrs.get("teacher")
    from kdtheory.store.titles import experiment_title, spec_label

    share = teacher_fraction_of(ds)
    models = {k: str(ds.attrs.get(k) or "?") for k in ("dataset", "teacher", "student")}
    if by == "student":
        recipe["teacher_fraction"] = share
        data = experiment_title(models).split(" · ")[0]
        teacher = " ".join(spec_label(models["teacher"])).strip()
        on = "all the data" if share == 1 else f"{share:g} of the data"
        text = f"{data} · teacher {teacher} on {on}"
    else:
        recipe["student"] = ds.attrs.get("student")
        text = experiment_title(models)
    key = json.dumps(recipe, sort_keys=True, default=str)
    if key not in strata:
        taken = set(strata.values())
        label, i = text, 2
        while label in taken:
            label, i = f"{text} ({i})", i + 1
        strata[key] = label
    return strata[key]


def _model_text(paired: bool, units: str, pooling: str) -> str:
    head = "per-seed OLS slope of KD − label test accuracy (points) on ln κ, per level; "
    if units == "seeds":
        if paired:
            return head + (
                "repeated-measures ANOVA of the seed × level slopes (Greenhouse–Geisser "
                "corrected); level differences paired by seed"
            )
        return head + "one-way ANOVA of the seed slopes by level; differences of level means"
    what = "experiment" if paired else "stratum (experiments alike but for the factor)"
    return head + (
        f"repeated-measures ANOVA of the {what} × level mean slopes (Greenhouse–Geisser "
        f"corrected; {units} as units); level differences pooled across {units} "
        f"({POOLING_METHODS[pooling]})"
    )


def _blocked_test(
    rows: list[dict[str, Any]],
    order: list[str],
    paired: bool,
    pooling: str,
    alpha: float,
    notes: list[str],
    titles: Mapping[str, str],
) -> tuple[InteractionTest, list[Contrast], list[dict[str, Any]], str]:
    """The interaction test over blocks (experiments, or strata of experiments).

    One block: seeds are the units (paired by seed within an experiment). Several: the blocks
    are the units, each contributing its mean slope per level.
    """
    blocks: dict[str, list[str]] = {}
    for block in dict.fromkeys(r["block"] for r in rows):
        have = [lv for lv in order if any(r["block"] == block and r["level"] == lv for r in rows)]
        if len(have) < 2:
            notes.append(f"{titles.get(block, block)} left out: one level only ({have[0]})")
            continue
        blocks[block] = have
    if not blocks:
        raise MissingRequirementError(
            "no experiment has two levels of the factor side by side; train them in one "
            "experiment (one --methods list)"
            if paired
            else "the experiments of different levels also differ in their dataset, teacher or "
            "recipe, so the factor cannot be compared on its own; train the levels with "
            "everything else the same (one `kdtheory run` with several --student or "
            "--teacher-fraction values)"
        )
    block_tests = []
    for block, have in blocks.items():
        t = _seed_test(rows, block, have, paired)
        block_tests.append(
            {
                "block": block,
                "title": titles.get(block, block),
                "F": t.statistic,
                "df": f"{t.df_num:.2g}, {t.df_den:.2g}",
                "p_value": t.p_value,
                "seeds": t.n_units,
                "levels": len(have),
            }
        )
    if len(blocks) == 1:
        ((block, have),) = blocks.items()
        return (
            _seed_test(rows, block, have, paired),
            _seed_contrasts(rows, block, have, paired),
            (block_tests),
            "seeds",
        )
    common = [lv for lv in order if all(lv in have for have in blocks.values())]
    if len(common) < 2:
        raise MissingRequirementError(
            "the experiments share fewer than two levels of the factor; train the same levels "
            "in each"
        )
    dropped = [lv for lv in order if lv not in common]
    if dropped:
        notes.append(f"levels not in every experiment, left out of the test: {dropped}")
    means = np.array([[_slopes(rows, block=b, level=lv).mean() for lv in common] for b in blocks])
    contrasts = []
    for level in common[1:]:
        pair = [common[0], level]
        per = [_seed_contrasts(rows, b, pair, paired)[0] for b in blocks]
        meta = pool_experiments(
            [c.estimate for c in per],
            [c.std_error for c in per],
            [c.n for c in per],
            "two-sided",
            alpha,
            method=pooling,
        )
        contrasts.append(
            Contrast(level, common[0], meta.estimate, meta.se, float(meta.k - 1), meta.k)
        )
    units = "experiments" if paired else "strata"
    return repeated_measures_anova(means), contrasts, block_tests, units


def _seed_test(
    rows: list[dict[str, Any]], block: str, levels: list[str], paired: bool
) -> InteractionTest:
    if paired:
        return repeated_measures_anova(_seed_matrix(rows, block, levels))
    sel = [r for r in rows if r["block"] == block and r["level"] in levels]
    return oneway_anova([r["slope"] for r in sel], [r["level"] for r in sel])


def _seed_contrasts(
    rows: list[dict[str, Any]], block: str, levels: list[str], paired: bool
) -> list[Contrast]:
    if paired:
        return paired_contrasts(_seed_matrix(rows, block, levels), levels)
    sel = [r for r in rows if r["block"] == block and r["level"] in levels]
    return group_contrasts([r["slope"] for r in sel], [r["level"] for r in sel], levels)


def natural_key(text: str) -> tuple[Any, ...]:
    """``"mlp:width=96"`` sorts before ``"mlp:width=128"``: digit runs compare as numbers."""
    import re

    return tuple(
        (0, float(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)
    )


def level_order(rows: list[dict[str, Any]]) -> list[str]:
    """Level labels sorted by their key (numbers and student specs in natural order, objectives
    in first-seen order)."""
    keys = dict((r["level"], r["key"]) for r in rows)
    if all(isinstance(k, float) for k in keys.values()) or all(
        isinstance(k, tuple) for k in keys.values()
    ):
        return sorted(keys, key=lambda lv: keys[lv])
    return list(keys)


def _slopes(rows: list[dict[str, Any]], **where: Any) -> np.ndarray:
    return np.asarray(
        [r["slope"] for r in rows if all(r[k] == v for k, v in where.items())], dtype=float
    )


def _experiment_records(
    rows: list[dict[str, Any]], order: list[str], ci_alpha: float
) -> list[dict[str, Any]]:
    out = []
    for exp in dict.fromkeys(r["experiment"] for r in rows):
        for level in order:
            s = _slopes(rows, experiment=exp, level=level)
            if not s.size:
                continue
            t = one_sample_t(s, "two-sided", ci_alpha)
            method = next(
                r["method"] for r in rows if r["experiment"] == exp and r["level"] == level
            )
            out.append(
                {
                    "experiment": exp,
                    "level": level,
                    "method": method,
                    "slope": float(s.mean()),
                    "ci_low": t.ci_low,
                    "ci_high": t.ci_high,
                    "se": t.se,
                    "seeds": int(s.size),
                }
            )
    return out


def _seed_matrix(rows: list[dict[str, Any]], block: str, levels: list[str]) -> np.ndarray:
    seeds = sorted({r["seed"] for r in rows if r["block"] == block})
    m = np.full((len(seeds), len(levels)), np.nan)
    for r in rows:
        if r["block"] == block and r["level"] in levels:
            m[seeds.index(r["seed"]), levels.index(r["level"])] = r["slope"]
    return m


def _level_records(
    rows: list[dict[str, Any]], order: list[str], ci_alpha: float, pooling: str
) -> list[dict[str, Any]]:
    out = []
    for level in order:
        exps = list(dict.fromkeys(r["experiment"] for r in rows if r["level"] == level))
        seeds = int(_slopes(rows, level=level).size)
        if len(exps) == 1:
            t = one_sample_t(_slopes(rows, level=level), "two-sided", ci_alpha)
            est, lo, hi, p = t.estimate, t.ci_low, t.ci_high, t.p_value
        else:
            per = [_slopes(rows, level=level, experiment=e) for e in exps]
            meta = pool_experiments(
                [s.mean() for s in per],
                [s.std(ddof=1) / math.sqrt(s.size) if s.size > 1 else np.nan for s in per],
                [s.size for s in per],
                "two-sided",
                ci_alpha,
                method=pooling,
            )
            est, lo, hi, p = meta.estimate, meta.ci_low, meta.ci_high, meta.p_value
        out.append(
            {
                "level": level,
                "slope": est,
                "ci_low": lo,
                "ci_high": hi,
                "p_value": p,
                "experiments": len(exps),
                "seeds": seeds,
            }
        )
    return out


def _contrast_record(c: Contrast, ci_alpha: float, margin: float) -> dict[str, Any]:
    lo, hi = c.interval(ci_alpha)
    return {
        "level": c.level,
        "reference": c.reference,
        "estimate": c.estimate,
        "std_error": c.std_error,
        "df": c.df,
        "ci_low": lo,
        "ci_high": hi,
        "tost_p": c.equivalence_p(margin),
        "n": c.n,
    }


def _decide(
    by: str,
    test: InteractionTest,
    contrasts: list[dict[str, Any]],
    alpha: float,
    margin: float,
    units: str,
) -> tuple[str, str]:
    what = f"{factor_name(by)} {{}} data efficiency"
    tested = f"{interaction_text(test)}, {test.n_units} {units}, {test.n_levels} levels"
    if test.significant(alpha):
        return "supported", (
            f"{what.format('changes')}: the slope of KD's gain on ln κ differs between levels "
            f"({tested})."
        )
    tost = [c["tost_p"] for c in contrasts]
    worst = max(tost) if tost and all(np.isfinite(tost)) else math.nan
    if np.isfinite(worst) and worst < alpha:
        return "rejected", (
            f"{what.format('does not change')} beyond ±{margin:g} points per unit ln κ: every "
            f"level's slope is within ±{margin:g} of the reference level's (largest TOST "
            f"p = {worst:.3g}); interaction {tested}."
        )
    if not np.isfinite(test.p_value):
        return "inconclusive", (
            f"The interaction could not be tested ({test.n_units} {units}, {test.n_levels} "
            "levels): more seeds or experiments are needed."
        )
    return "inconclusive", (
        f"No significant difference between the levels' slopes ({tested}), and equivalence "
        f"within ±{margin:g} is not shown (largest TOST p = {worst:.3g}) at alpha={alpha:g}."
    )
