"""Statistics for the hypothesis plugins, with seeds as the unit of replication.

Every public name is importable from here (``from kdtheory.stats import one_sample_t``); the
modules behind them each do one job.
"""

from kdtheory.stats.tests import *  # noqa: F403
from kdtheory.stats.tests import __all__  # noqa: F401
