"""Nested, class-stratified training subsets and the stored feature sample.

A teacher trained on a share ``rho`` of the data (``--teacher-fraction``) gets the subset
:func:`teacher_subset`; every student order then starts with that subset
(:func:`student_order`), so a student subset of ``kappa <= kappa_teacher`` samples lies inside
the teacher's data and a larger one contains it. With ``rho = 1`` (no teacher subset) the orders
are those of :func:`stratified_order`, unchanged.
"""

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


def student_order(
    labels: np.ndarray, seed: int, teacher_indices: np.ndarray | None = None
) -> np.ndarray:
    """The order whose prefixes are seed ``seed``'s student subsets, nested with the teacher's.

    Parameters
    ----------
    labels : numpy.ndarray
        The full training set's labels.
    seed : int
        The student's seed.
    teacher_indices : numpy.ndarray, optional
        The teacher's training indices (:func:`teacher_subset`). None, or every index, gives
        :func:`stratified_order` itself.

    Returns
    -------
    numpy.ndarray
        A permutation of ``range(len(labels))``: the teacher's samples first, in the stratified
        order of seed ``seed`` among them, then the others in the same kind of order.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if teacher_indices is None or len(teacher_indices) == n:
        return stratified_order(labels, seed)
    inside = np.sort(np.asarray(teacher_indices, dtype=np.int64))
    outside = np.setdiff1d(np.arange(n), inside)
    return np.concatenate(
        [
            inside[stratified_order(labels[inside], seed)],
            outside[stratified_order(labels[outside], seed)],
        ]
    )


def teacher_subset(labels: np.ndarray, teacher_fraction: float, teacher_seed: int) -> np.ndarray:
    """Sorted training indices of a teacher trained on a share ``teacher_fraction`` of the data.

    The stratified subset of seed ``teacher_seed``; every index when ``teacher_fraction == 1``.
    """
    return subset(labels, teacher_fraction, teacher_seed)


def subset_size(fraction: float, n: int) -> int:
    """Number of samples (kappa) of a fraction of ``n`` training samples (at least 1)."""
    return max(1, int(round(fraction * n)))


def subset(
    labels: np.ndarray,
    fraction: float,
    seed: int,
    teacher_indices: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted training-set indices of the subset for ``fraction`` and ``seed``.

    With ``teacher_indices`` (a teacher trained on part of the data) the subset is a prefix of
    :func:`student_order`, so it is nested with the teacher's subset.
    """
    order = student_order(labels, seed, teacher_indices)
    return np.sort(order[: subset_size(fraction, len(labels))])


def feature_sample(
    labels: np.ndarray,
    min_fraction: float,
    seeds: list[int],
    size: int,
    seed: int = 0,
    teacher_indices: np.ndarray | None = None,
) -> np.ndarray:
    """Training indices whose features are stored.

    Contains every listed seed's smallest-fraction subset (so each cell has features on samples it
    trained on), filled up with random training samples to ``size`` (so every cell also has
    features on samples it did not train on). ``teacher_indices`` as in :func:`subset`.
    """
    n = len(labels)
    chosen: set[int] = set()
    for s in seeds:
        chosen.update(subset(labels, min_fraction, s, teacher_indices).tolist())
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 13]))
    rest = rng.permutation(np.setdiff1d(np.arange(n), np.fromiter(chosen, int, len(chosen))))
    fill = max(0, size - len(chosen))
    return np.sort(np.concatenate([np.fromiter(chosen, int, len(chosen)), rest[:fill]]))
