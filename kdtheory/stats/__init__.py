"""Statistics for the hypothesis plugins, with seeds as the unit of replication.

Every public name is importable from here (``from kdtheory.stats import one_sample_t``); each
module behind them does one job:

- :mod:`~kdtheory.stats.levels`: the ``alternative``/``alpha`` conventions and the level of the
  two-sided interval reported with a test (:func:`ci_level`, :func:`ci_level_note`,
  :func:`check_alpha`);
- :mod:`~kdtheory.stats.results`: the result types;
- :mod:`~kdtheory.stats.tests`: one-sample, paired and TOST tests of per-seed values;
- :mod:`~kdtheory.stats.slopes`: the slope of ``y`` on ``x`` with seeds as the unit;
- :mod:`~kdtheory.stats.pooling`: pooling one effect across experiments;
- :mod:`~kdtheory.stats.multiplicity`: Holm adjustment and the intervals that agree with it;
- :mod:`~kdtheory.stats.reference`: p-values and intervals from the t or normal reference.

scipy, pandas and statsmodels are imported inside the functions that need them, so importing this
package (and the CLI) stays fast.
"""

from kdtheory.stats.levels import (
    ALTERNATIVES,
    check_alpha,
    check_alternative,
    ci_level,
    ci_level_note,
)
from kdtheory.stats.multiplicity import ci_at_level, holm, holm_ci_level
from kdtheory.stats.pooling import POOLING_METHODS, pool_experiments, random_effects_meta
from kdtheory.stats.results import (
    DeferredText,
    MetaResult,
    TestResult,
    TostResult,
    estimate_fields,
)
from kdtheory.stats.slopes import slope_test
from kdtheory.stats.tests import one_sample_t, paired_t, sign_flip_p, tost

__all__ = [
    "ALTERNATIVES",
    "DeferredText",
    "MetaResult",
    "POOLING_METHODS",
    "TestResult",
    "TostResult",
    "check_alpha",
    "check_alternative",
    "ci_at_level",
    "ci_level",
    "ci_level_note",
    "estimate_fields",
    "holm",
    "holm_ci_level",
    "one_sample_t",
    "paired_t",
    "pool_experiments",
    "random_effects_meta",
    "sign_flip_p",
    "slope_test",
    "tost",
]
