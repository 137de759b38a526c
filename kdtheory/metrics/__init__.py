"""Metrics on run-store predictions and features (pure numpy / xarray / scipy).

Every public name is importable from here (``from kdtheory.metrics import accuracy``):

- :mod:`~kdtheory.metrics.logits`: probabilities (:func:`softmax`, :func:`log_softmax`) and
  prediction metrics (:func:`accuracy`, :func:`agreement`, :func:`fidelity`,
  :func:`kl_divergence`, :func:`wrong_class_rank_correlation` and per-sample variants);
- :mod:`~kdtheory.metrics.features`: representation metrics of one cell (:func:`class_means`,
  :func:`neural_collapse`, :func:`linear_cka`) and :func:`collapse_table` on an experiment.

Every function that takes :class:`xarray.DataArray` inputs works on whole experiment arrays at
once: leading dims such as ``arm``, ``fraction`` and ``seed`` are kept and broadcast, and the
class axis is always the dim named ``class`` (see ``docs/schema.md``). Cells that were never
trained hold NaN logits or features; every metric maps them to NaN rather than to a number.
xarray and scipy are imported on first use.
"""

from kdtheory.metrics import features as _features
from kdtheory.metrics import logits as _logits
from kdtheory.metrics.features import *  # noqa: F403
from kdtheory.metrics.logits import *  # noqa: F403

__all__ = [*_logits.__all__, *_features.__all__]
