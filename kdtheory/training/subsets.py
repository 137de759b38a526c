"""Nested, class-stratified training subsets and the stored feature sample."""

from __future__ import annotations

import numpy as np


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of the training set whose every prefix is close to class-balanced.

    Each class is shuffled on its own; sample ``j`` of class ``c`` gets the key
    ``(j + u) / n_c`` with ``u ~ U(0, 1)``, and samples are sorted by key. The first ``n`` samples
    of the order form the subset of size ``n``, so subsets of one seed are nested.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    labels = np.asarray(labels)
    keys = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        perm = rng.permutation(idx)
        keys[perm] = (np.arange(len(perm)) + rng.random(len(perm))) / len(perm)
    return np.argsort(keys, kind="stable")


def subset_size(fraction: float, n: int) -> int:
    """Number of samples (kappa) of a fraction of ``n`` training samples (at least 1)."""
    return max(1, int(round(fraction * n)))


def subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted training-set indices of the subset for ``fraction`` and ``seed``."""
    order = stratified_order(labels, seed)
    return np.sort(order[: subset_size(fraction, len(labels))])


def feature_sample(
    labels: np.ndarray, min_fraction: float, seeds: list[int], size: int, seed: int = 0
) -> np.ndarray:
    """Training indices whose features are stored.

    Contains every listed seed's smallest-fraction subset (so each cell has features on samples it
    trained on), filled up with random training samples to ``size`` (so every cell also has
    features on samples it did not train on).
    """
    n = len(labels)
    chosen: set[int] = set()
    for s in seeds:
        chosen.update(subset(labels, min_fraction, s).tolist())
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 13]))
    rest = rng.permutation(np.setdiff1d(np.arange(n), np.fromiter(chosen, int, len(chosen))))
    fill = max(0, size - len(chosen))
    return np.sort(np.concatenate([np.fromiter(chosen, int, len(chosen)), rest[:fill]]))
