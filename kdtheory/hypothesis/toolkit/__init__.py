"""The toolkit hypotheses are built from: options, picking methods, per-seed reductions, pooling,
the deciding test.

The five built-in hypotheses (:mod:`kdtheory.hypotheses`) and third-party ones use the same
helpers: resolving options, picking methods by their ``objective`` coordinate, per-seed reductions
(paired differences, per-seed slopes), pooling one effect across experiments (:class:`Pooled`),
the deciding test and the rule's result (:func:`deciding`, :class:`Ruling`), and rows built by
keyword (:func:`effect_row`). :class:`kdtheory.hypothesis.template.PooledHypothesis` puts them
together into ``test()``.

Every name is importable from ``kdtheory.hypothesis.toolkit``; each job has its own module:
:mod:`.options` (resolving options), :mod:`.picking` (methods by objective, per-cell values),
:mod:`.reductions` (per-seed means and slopes), :mod:`.records` (table records),
:mod:`.effects` and :mod:`.pooling` (one test's numbers, pooling across experiments),
:mod:`.decisions` (the deciding test, intersection-union, rows), :mod:`.results` (what an
experiment's analysis and the rule return), :mod:`.text` (numbers in words) and
:mod:`.multiplier` (the data multiplier).
"""

from __future__ import annotations

from kdtheory.hypothesis.toolkit.decisions import (
    deciding,
    directional_ruling,
    effect_row,
    intersection_union,
    intersection_union_p,
)
from kdtheory.hypothesis.toolkit.effects import Effect, Equivalence
from kdtheory.hypothesis.toolkit.multiplier import data_multiplier
from kdtheory.hypothesis.toolkit.options import NAN, POOLING, resolve_options
from kdtheory.hypothesis.toolkit.picking import (
    KD_TEMPERATURE,
    SkipExperiment,
    accuracy_points,
    kd,
    kd_and,
    log_kappa,
    method_array,
    method_coord,
    methods_present,
    methods_with_objective,
    missing_method,
    pick_kd,
    pick_method,
    require,
)
from kdtheory.hypothesis.toolkit.pooling import Pooled
from kdtheory.hypothesis.toolkit.records import (
    cell_records,
    fraction_means,
    fraction_records,
    mean_ci_columns,
)
from kdtheory.hypothesis.toolkit.reductions import (
    long_form,
    mean_ci,
    nanmean,
    seed_means,
    seed_slope_test,
    seed_slopes,
)
from kdtheory.hypothesis.toolkit.results import ExperimentResult, Ruling
from kdtheory.hypothesis.toolkit.text import (
    fmt,
    fmt_ci,
    fmt_p,
    fraction_label,
    meta_summary,
    pct,
    result_text,
)
from kdtheory.store.arrays import bare, cells, sorted_experiment

#: Fit the pooled statsmodels OLS (cluster-robust by seed) whose text goes into
#: ``Verdict.summaries``. Decisions never depend on it; simulation tests that run a hypothesis on
#: hundreds of stores switch it off for speed (read at call time by
#: :func:`~kdtheory.hypothesis.toolkit.reductions.seed_slope_test`).
FIT_SUMMARIES = True

__all__ = [
    "Effect",
    "Equivalence",
    "ExperimentResult",
    "KD_TEMPERATURE",
    "NAN",
    "POOLING",
    "Pooled",
    "Ruling",
    "SkipExperiment",
    "accuracy_points",
    "bare",
    "cell_records",
    "cells",
    "data_multiplier",
    "deciding",
    "directional_ruling",
    "effect_row",
    "fmt",
    "fmt_ci",
    "fmt_p",
    "fraction_label",
    "fraction_means",
    "fraction_records",
    "intersection_union",
    "intersection_union_p",
    "kd",
    "kd_and",
    "log_kappa",
    "long_form",
    "mean_ci",
    "mean_ci_columns",
    "meta_summary",
    "method_array",
    "method_coord",
    "methods_present",
    "methods_with_objective",
    "missing_method",
    "nanmean",
    "pct",
    "pick_kd",
    "pick_method",
    "require",
    "resolve_options",
    "result_text",
    "seed_means",
    "seed_slope_test",
    "seed_slopes",
    "sorted_experiment",
]
