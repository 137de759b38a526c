"""Metrics on run-store predictions and features (moved into a package; split next)."""

from kdtheory.metrics.logits import *  # noqa: F403
from kdtheory.metrics.logits import __all__  # noqa: F401
