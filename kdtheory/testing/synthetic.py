"""Synthetic run stores (schema v2) with a planted truth, for testing hypotheses.

The generator builds one experiment as a real sweep would store it — teacher and student logits on
train and test samples, nested class-stratified subsets, penultimate features and classifier
weights — but every quantity a built-in hypothesis measures is planted:

- **test accuracy** of each (arm, fraction, seed) cell is set *exactly* (up to rounding to a
  whole number of test samples) to a target built from a label-training curve in log kappa, the
  method's effect (KD gain over label, KD − LS gap, KD − shuffled gap, each linear in log kappa)
  and noise: a per-seed effect shared by every method and fraction (seeds are correlated across
  fractions as in real sweeps), a per-(seed, method) effect shared across fractions, and a
  per-cell effect. Which samples a cell gets right follows a latent difficulty shared by every
  cell and by the teacher (hard samples are hard for everyone);
- **wrong-class ranking**: a student's logits on the wrong classes are a mix of the teacher's
  standardised wrong-class logits (weight ``w``) and noise; the shuffled-KD student mixes in the
  teacher's wrong-class logits permuted per sample, so its ranking is unrelated to the teacher's;
- **fidelity gap**: the KD student's agreement with the teacher on the samples it trained on
  exceeds its (realised) agreement on the test set by ``gap = c * kappa**b`` times log-normal
  noise (plus optional additive noise that can push a gap to zero or below);
- **neural collapse**: within-class spread of the features of trained-on rows is ``sigma`` (NC1 is
  proportional to ``sigma**2``); the KD student's log NC1 exceeds the label student's by
  ``nc1_log_ratio``; the within-class deviations are the teacher's, rotated at random the less the
  higher ``*_feature_alignment``, which moves linear CKA with the teacher but not NC1.

Everything is numpy and small (6 fractions, 5 seeds, 300 test and 600 train samples, 10 classes,
150 feature rows by default), so hundreds of stores can be generated in a test.

Examples
--------
>>> from kdtheory.testing.synthetic import make_store
>>> store = make_store(n_experiments=2, seed=1, kd_gain_slope=0.0)  # no data-efficiency effect
>>> sorted(store)
['synthetic-0', 'synthetic-1']
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import xarray as xr
from scipy.special import ndtr

from kdtheory import __version__
from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.schema import ARM, CELL_DIMS, SCHEMA

__all__ = [
    "METHODS",
    "SCHEMA",
    "Truth",
    "make_experiment",
    "make_store",
    "expected_accuracy",
]

#: The methods a synthetic experiment can hold (its arms), with their coordinates along ``arm``.
METHODS: dict[str, dict[str, Any]] = {
    "label": {"objective": "label", "temperature": np.nan, "alpha": np.nan, "smoothing": np.nan},
    "kd-T4": {"objective": "kd", "temperature": 4.0, "alpha": 0.0, "smoothing": np.nan},
    # smoothing NaN = matched per cell (see effective_smoothing)
    "ls": {"objective": "ls", "temperature": np.nan, "alpha": np.nan, "smoothing": np.nan},
    "kd-shuffled-T4": {
        "objective": "kd-shuffled",
        "temperature": 4.0,
        "alpha": 0.0,
        "smoothing": np.nan,
    },
}


@dataclass(frozen=True)
class Truth:
    """Every knob of the generator: the design of the sweep and the planted truth.

    Accuracies and accuracy effects are in accuracy *points* (0–100); "slope" means change per
    unit of natural log kappa; effects given as ``x`` and ``x_slope`` mean
    ``x + x_slope * log(kappa / kappa_max)``, i.e. ``x`` is the effect at the largest fraction.

    Attributes
    ----------
    fractions, n_seeds, n_train, n_test, n_classes : design of the sweep (``n_train`` is the full
        training-set size; kappa = round(fraction * n_train)).
    methods : methods to generate (keys of :data:`METHODS`).
    features : store ``features``, ``teacher_features`` and ``classifier_weight``.
    n_feature_sample, n_features, n_teacher_features : feature rows (at least the union of every
        seed's smallest subset) and widths.
    teacher_accuracy : teacher test accuracy in [0, 1] (teacher is right on every train sample).
    label_acc_max, label_acc_slope : label-training test accuracy at kappa_max and its slope.
    kd_gain, kd_gain_slope : KD − label accuracy (data efficiency: a negative slope means the
        gain grows as data shrinks).
    ls_gap, ls_gap_slope : KD − LS accuracy (zero: LS is equivalent to KD).
    shuffled_gap, shuffled_gap_slope : KD − shuffled-KD accuracy.
    kd_rank_weight, label_rank_weight, ls_rank_weight : weight of the teacher's wrong-class
        logits in the student's wrong-class logits (0: unrelated ranking, 1: the teacher's). The
        shuffled student uses ``kd_rank_weight`` on a permuted teacher.
    seed_sd, method_seed_sd, cell_sd : accuracy noise (points): per seed (shared by all methods
        and fractions), per (seed, method) (shared by fractions), per cell.
    fidelity_b, fidelity_gap_at_min : the KD fidelity gap is
        ``fidelity_gap_at_min * (kappa / kappa_min) ** fidelity_b``.
    fidelity_log_sd, fidelity_seed_sd, fidelity_b_seed_sd : log-normal noise of the gap per cell
        and per seed, and per-seed spread of the exponent.
    fidelity_abs_sd : additive noise on the gap (can make gaps <= 0).
    fidelity_cliff : when > 0 the gap is not a power law but a plateau and a cliff: it stays at
        ``fidelity_gap_at_min`` up to the geometric middle ``kappa_mid`` of the kappa range and
        falls like ``(kappa / kappa_mid) ** -fidelity_cliff`` beyond it (``fidelity_b`` unused).
    nc1_log_ratio, nc1_log_ratio_slope : log NC1 of KD minus label on trained-on rows.
    label_sigma, sigma_kappa_exponent : within-class feature sd of the label student's trained
        rows at kappa_max, and its power-law dependence on kappa.
    unseen_sigma_factor : within-class sd of rows a cell did not train on, relative.
    nc_log_sd, nc_seed_sd : log-normal noise of sigma per cell and per seed.
    kd_feature_alignment, label_feature_alignment : alignment in [0, 1] of a student's
        within-class feature deviations with the teacher's (they are the teacher's deviations
        rotated, the less the higher the alignment; NC1 does not depend on it, linear CKA with the
        teacher does). ls uses the label value, shuffled KD the mean of the two.
    untrained : ``(method, fraction, seed)`` cells left NaN (a sweep still running).
    """

    fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
    n_seeds: int = 5
    n_train: int = 600
    n_test: int = 300
    n_classes: int = 10
    methods: tuple[str, ...] = ("label", "kd-T4", "ls", "kd-shuffled-T4")
    features: bool = True
    n_feature_sample: int = 150
    n_features: int = 16
    n_teacher_features: int = 16
    teacher_accuracy: float = 0.9
    label_acc_max: float = 85.0
    label_acc_slope: float = 12.0
    kd_gain: float = 1.0
    kd_gain_slope: float = -2.0
    ls_gap: float = 1.0
    ls_gap_slope: float = -1.5
    shuffled_gap: float = 2.0
    shuffled_gap_slope: float = -1.0
    kd_rank_weight: float = 0.8
    label_rank_weight: float = 0.3
    ls_rank_weight: float = 0.2
    seed_sd: float = 2.0
    method_seed_sd: float = 0.3
    cell_sd: float = 0.4
    fidelity_b: float = -0.5
    fidelity_gap_at_min: float = 0.2
    fidelity_log_sd: float = 0.1
    fidelity_seed_sd: float = 0.1
    fidelity_b_seed_sd: float = 0.02
    fidelity_abs_sd: float = 0.0
    fidelity_cliff: float = 0.0
    nc1_log_ratio: float = 0.7
    nc1_log_ratio_slope: float = 0.0
    label_sigma: float = 0.3
    sigma_kappa_exponent: float = 0.15
    unseen_sigma_factor: float = 2.0
    nc_log_sd: float = 0.1
    nc_seed_sd: float = 0.1
    kd_feature_alignment: float = 0.9
    label_feature_alignment: float = 0.3
    untrained: tuple[tuple[str, float, int], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown synthetic method(s) {unknown}; choose from {list(METHODS)}")
        fr = np.asarray(self.fractions, dtype=float)
        if fr.size == 0 or np.any(fr <= 0) or np.any(fr > 1) or len(set(fr)) != fr.size:
            raise ValueError(f"fractions must be distinct values in (0, 1], got {self.fractions}")
        if self.n_seeds < 1 or self.n_classes < 3 or self.n_test < 10 or self.n_train < 10:
            raise ValueError("need n_seeds >= 1, n_classes >= 3, n_test >= 10, n_train >= 10")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Truth:
        """Build a Truth, refusing unknown knobs with the list of known ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown synthetic knob(s) {unknown}; known: {sorted(names)}")
        for key in ("fractions", "methods"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if "untrained" in kwargs:
            kwargs["untrained"] = tuple(
                (str(m), float(f), int(s)) for m, f, s in kwargs["untrained"]
            )
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=float)


# ------------------------------------------------------------------------------------ helpers
def _n_train(fractions: np.ndarray, n: int) -> np.ndarray:
    return np.maximum(1, np.round(fractions * n)).astype(np.int64)


def expected_accuracy(truth: Truth, method: str, kappa: np.ndarray | float) -> np.ndarray:
    """Planted mean test accuracy (points, before noise and clipping) of ``method`` at ``kappa``."""
    kappa = np.asarray(kappa, dtype=float)
    kmax = float(_n_train(np.array([max(truth.fractions)]), truth.n_train)[0])
    x = np.log(kappa / kmax)
    label = truth.label_acc_max + truth.label_acc_slope * x
    kd = label + truth.kd_gain + truth.kd_gain_slope * x
    if method == "label":
        return label
    if method == "kd-T4":
        return kd
    if method == "ls":
        return kd - (truth.ls_gap + truth.ls_gap_slope * x)
    if method == "kd-shuffled-T4":
        return kd - (truth.shuffled_gap + truth.shuffled_gap_slope * x)
    raise ValueError(f"unknown synthetic method {method!r}")


def _balanced_labels(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % k).astype(np.int64)


def _stratified_orders(labels: np.ndarray, n_seeds: int, rng: np.random.Generator) -> np.ndarray:
    """(n_seeds, N) permutations whose every prefix is close to class-balanced."""
    n = labels.size
    counts = np.bincount(labels)
    orders = np.empty((n_seeds, n), dtype=np.int64)
    for s in range(n_seeds):
        u = rng.random(n)
        by_class = np.lexsort((u, labels))  # grouped by class, random within class
        rank = np.empty(n)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank[by_class] = np.arange(n) - np.repeat(starts, counts)
        keys = (rank + rng.random(n)) / counts[labels]
        orders[s] = np.argsort(keys, kind="stable")
    return orders


def _rank_last(x: np.ndarray) -> np.ndarray:
    """Ranks 0..N-1 along the last axis."""
    return np.argsort(np.argsort(x, axis=-1), axis=-1)


def _wrong_standardised(raw: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Standardise ``raw`` (..., N, K) over the wrong classes of each row; label entry -> 0."""
    k = raw.shape[-1]
    wrong = np.arange(k) != labels[:, None]
    w = np.where(wrong, raw, np.nan)
    mu = np.nanmean(w, axis=-1, keepdims=True)
    sd = np.nanstd(w, axis=-1, keepdims=True)
    return np.where(wrong, (raw - mu) / np.where(sd > 0, sd, 1.0), 0.0)


def _teacher_logits(
    labels: np.ndarray,
    correct: np.ndarray,
    similarity: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher logits (N, K) with exact correctness, and the standardised wrong-class part."""
    n, k = labels.size, similarity.shape[0]
    raw = similarity[labels] + rng.standard_normal((n, k))
    zt = _wrong_standardised(raw, labels)
    wrong = np.arange(k) != labels[:, None]
    top_wrong = np.max(np.where(wrong, zt, -np.inf), axis=-1)
    margin = 0.5 + rng.exponential(1.0, n)
    logits = zt.copy()
    logits[np.arange(n), labels] = np.where(correct, top_wrong + margin, top_wrong - margin)
    return 2.0 * logits, zt.astype(np.float32)


def _shuffle_wrong(zt: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Permute each row's wrong-class entries independently for every leading index.

    ``zt`` has shape (C, N, K); returns an array of the same shape.
    """
    c, n, k = zt.shape
    wrong_pos = np.argsort(np.where(np.arange(k) == labels[:, None], k, np.arange(k)), axis=-1)
    wrong_pos = np.broadcast_to(wrong_pos[None, :, : k - 1], (c, n, k - 1))
    perm = np.argsort(rng.random((c, n, k - 1), dtype=np.float32), axis=-1)
    src = np.take_along_axis(wrong_pos, perm, axis=-1)
    out = zt.copy()
    np.put_along_axis(out, wrong_pos, np.take_along_axis(zt, src, axis=-1), axis=-1)
    return out


def _student_logits(
    source: np.ndarray,
    labels: np.ndarray,
    correct: np.ndarray,
    weight: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Student logits (C, N, K): wrong classes mix ``source`` and noise; label set by ``correct``.

    ``source`` (C, N, K) is the standardised teacher (or permuted teacher) wrong-class part,
    ``weight`` (C,) its share, ``correct`` (C, N) whether the cell's argmax is the label.
    """
    c, n, k = source.shape
    w = weight.astype(np.float32)[:, None, None]
    base = rng.standard_normal((c, n, k), dtype=np.float32)
    base *= np.sqrt(1.0 - w**2)
    base += w * source  # source is float32 (possibly a broadcast view)
    idx = np.broadcast_to(labels[None, :, None], (c, n, 1))
    np.put_along_axis(base, idx, -np.inf, -1)
    top_wrong = base.max(axis=-1)
    margin = rng.standard_exponential((c, n), dtype=np.float32)
    margin *= 0.7
    margin += 0.3
    label_logit = np.where(correct, top_wrong + margin, top_wrong - margin)
    np.put_along_axis(base, idx, label_logit[..., None], -1)
    base *= 3.0
    return base


def _exact_correct(z: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(C, N) bool: exactly ``k[c]`` True per row, at the rows' lowest ``z``."""
    return _rank_last(z) < k[:, None]


def _grouped_correct(
    z: np.ndarray, group: np.ndarray, k_in: np.ndarray, k_out: np.ndarray
) -> np.ndarray:
    """Exactly ``k_in`` correct among ``group`` True and ``k_out`` among False, per row.

    ``z`` (C, N) in (0, 1); ``group`` (C, N) bool.
    """
    key = z + 2.0 * (~group)
    r = _rank_last(key)
    n_in = group.sum(-1)
    return np.where(group, r < k_in[:, None], (r - n_in[:, None]) < k_out[:, None])


# ------------------------------------------------------------------------------------ public
def make_experiment(
    seed: int = 0, experiment: str = "synthetic", truth: Truth | None = None, **knobs: Any
) -> xr.Dataset:
    """One synthetic experiment in schema v2 with a planted truth.

    Parameters
    ----------
    seed : int
        Seed of the generator (the ``seed`` coordinate is always ``0..n_seeds-1``).
    experiment : str
        Experiment id (``attrs["experiment"]``).
    truth : Truth, optional
        All knobs at once; ``knobs`` override its fields.
    **knobs
        Fields of :class:`Truth` (e.g. ``kd_gain_slope=0.0``, ``fidelity_b=-1.0``).

    Returns
    -------
    xarray.Dataset
        Every required variable of schema v2 and (with ``features=True``) the feature variables,
        plus ``effective_smoothing`` for ``ls``. ``attrs["synthetic_truth"]`` holds the knobs as
        JSON.
    """
    if truth is None:
        truth = Truth.from_kwargs(**knobs)
    elif knobs:
        truth = Truth.from_kwargs(**{**dataclasses.asdict(truth), **knobs})
    t = truth
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20251015]))
    K, N, NT, S = t.n_classes, t.n_train, t.n_test, t.n_seeds
    methods = list(t.methods)
    M = len(methods)
    fractions = np.asarray(sorted(t.fractions), dtype=float)
    F = fractions.size
    kappa = _n_train(fractions, N)
    kmin = float(kappa.min())

    # ---------------------------------------------------------------- labels, teacher, subsets
    test_labels = _balanced_labels(NT, K, rng)
    train_labels = _balanced_labels(N, K, rng)
    a = rng.standard_normal((K, K))
    similarity = 1.5 * (a + a.T) / 2.0
    d_test = rng.standard_normal(NT)  # latent difficulty
    d_train = rng.standard_normal(N)
    teacher_correct = _rank_last(d_test) < int(round(t.teacher_accuracy * NT))
    teacher_test, zt_test = _teacher_logits(test_labels, teacher_correct, similarity, rng)
    teacher_train, zt_train = _teacher_logits(train_labels, np.ones(N, bool), similarity, rng)
    teacher_test_pred = np.argmax(teacher_test, axis=-1)

    orders = _stratified_orders(train_labels, S, rng)  # (S, N)
    in_train = np.zeros((F, S, N), dtype=bool)
    for s in range(S):
        for f in range(F):
            in_train[f, s, orders[s, : kappa[f]]] = True

    # ---------------------------------------------------------------- accuracy targets (points)
    u_seed = rng.normal(0.0, t.seed_sd, S)
    v_ms = rng.normal(0.0, t.method_seed_sd, (M, S))
    e_cell = rng.normal(0.0, t.cell_sd, (M, F, S))
    acc = np.empty((M, F, S))
    for i, m in enumerate(methods):
        acc[i] = expected_accuracy(t, m, kappa)[:, None] + u_seed[None, :] + v_ms[i][None, :]
    acc += e_cell
    acc = np.clip(acc, 100.0 / K + 1.0, 99.5)
    k_test = np.round(acc / 100.0 * NT).astype(np.int64)  # (M, F, S)

    rank_w = {
        "label": t.label_rank_weight,
        "kd-T4": t.kd_rank_weight,
        "ls": t.ls_rank_weight,
        "kd-shuffled-T4": t.kd_rank_weight,
    }
    w = np.array([[rank_w[m]] * S for m in methods]) + rng.normal(0.0, 0.05, (M, S))
    w = np.clip(w, 0.0, 0.99)
    w_cells = np.broadcast_to(w[:, None, :], (M, F, S)).reshape(-1)
    C = M * F * S
    shuffled = np.array([m == "kd-shuffled-T4" for m in methods])
    shuffled_cells = np.broadcast_to(shuffled[:, None, None], (M, F, S)).reshape(-1)

    # ---------------------------------------------------------------- test logits
    rho = 0.5
    z = np.sqrt(rho) * d_test[None, :] + np.sqrt(1 - rho) * rng.standard_normal((C, NT))
    correct = _exact_correct(z, k_test.reshape(-1))
    src = np.broadcast_to(zt_test[None], (C, NT, K))
    if shuffled_cells.any():
        src = src.copy()
        src[shuffled_cells] = _shuffle_wrong(src[shuffled_cells], test_labels, rng)
    test_logits = _student_logits(src, test_labels, correct, w_cells, rng)
    fid_test = (np.argmax(test_logits, -1) == teacher_test_pred[None]).mean(-1).reshape(M, F, S)

    # ---------------------------------------------------------------- train logits
    b_seed = t.fidelity_b + rng.normal(0.0, t.fidelity_b_seed_sd, S)
    if t.fidelity_cliff > 0:
        k_mid = float(np.sqrt(kmin * kappa.max()))
        shape = np.minimum(1.0, (kappa[:, None] / k_mid) ** -t.fidelity_cliff) * np.ones((1, S))
    else:
        shape = (kappa[:, None] / kmin) ** b_seed[None, :]
    gap = (
        t.fidelity_gap_at_min
        * shape
        * np.exp(rng.normal(0.0, t.fidelity_seed_sd, S))[None, :]
        * np.exp(rng.normal(0.0, t.fidelity_log_sd, (F, S)))
    ) + rng.normal(0.0, t.fidelity_abs_sd, (F, S))
    in_acc = np.empty((M, F, S))
    for i, m in enumerate(methods):
        if METHODS[m]["objective"] in ("kd", "kd-shuffled"):
            in_acc[i] = fid_test[i] + gap  # teacher is right on every train sample
        else:
            in_acc[i] = np.minimum(0.995, acc[i] / 100.0 + 0.4)
    in_acc = np.clip(in_acc, 0.0, 1.0)
    n_in = kappa[None, :, None]
    k_in = np.round(in_acc * n_in).astype(np.int64)
    k_out = np.round(acc / 100.0 * (N - n_in)).astype(np.int64)
    group = np.broadcast_to(in_train[None], (M, F, S, N)).reshape(C, N)
    zt_u = ndtr(np.sqrt(rho) * d_train[None, :] + np.sqrt(1 - rho) * rng.standard_normal((C, N)))
    correct_tr = _grouped_correct(zt_u, group, k_in.reshape(-1), k_out.reshape(-1))
    src = np.broadcast_to(zt_train[None], (C, N, K))
    if shuffled_cells.any():
        src = src.copy()
        src[shuffled_cells] = _shuffle_wrong(src[shuffled_cells], train_labels, rng)
    train_logits = _student_logits(src, train_labels, correct_tr, w_cells, rng)

    test_logits = test_logits.reshape(M, F, S, NT, K).astype(np.float32)
    train_logits = train_logits.reshape(M, F, S, N, K).astype(np.float32)

    # ---------------------------------------------------------------- dataset
    coords: dict[str, Any] = {
        ARM: np.array(methods, dtype=object),
        "objective": (ARM, np.array([METHODS[m]["objective"] for m in methods], dtype=object)),
        "temperature": (ARM, np.array([METHODS[m]["temperature"] for m in methods], float)),
        "alpha": (ARM, np.array([METHODS[m]["alpha"] for m in methods], float)),
        "smoothing": (ARM, np.array([METHODS[m]["smoothing"] for m in methods], float)),
        "fraction": fractions,
        "n_train": ("fraction", kappa),
        "seed": np.arange(S, dtype=np.int64),
        "train_sample": np.arange(N, dtype=np.int64),
        "test_sample": np.arange(NT, dtype=np.int64),
        "class": np.arange(K, dtype=np.int64),
    }
    cell = CELL_DIMS
    data: dict[str, Any] = {
        "test_logits": ((*cell, "test_sample", "class"), test_logits),
        "train_logits": ((*cell, "train_sample", "class"), train_logits),
        "in_train": (("fraction", "seed", "train_sample"), in_train),
        "teacher_test_logits": (("test_sample", "class"), teacher_test.astype(np.float32)),
        "teacher_train_logits": (("train_sample", "class"), teacher_train.astype(np.float32)),
        "test_labels": (("test_sample",), test_labels),
        "train_labels": (("train_sample",), train_labels),
    }
    if "ls" in methods:
        eff = np.full((M, F, S), np.nan)
        eff[methods.index("ls")] = rng.uniform(0.05, 0.3, (F, S))
        data["effective_smoothing"] = (cell, eff)
    if t.features:
        rows, feats, weight, teacher_feats = _features(
            t, methods, kappa, in_train, orders, train_labels, rng
        )
        coords["feature_sample"] = rows
        coords["feature"] = np.arange(t.n_features, dtype=np.int64)
        coords["teacher_feature"] = np.arange(t.n_teacher_features, dtype=np.int64)
        data["features"] = ((*cell, "feature_sample", "feature"), feats.astype(np.float32))
        data["teacher_features"] = (
            ("feature_sample", "teacher_feature"),
            teacher_feats.astype(np.float32),
        )
        data["classifier_weight"] = ((*cell, "class", "feature"), weight.astype(np.float32))

    ds = xr.Dataset(data, coords=coords)
    ds.attrs = {
        "schema": SCHEMA,
        "experiment": experiment,
        "dataset": "synthetic",
        "teacher": "synthetic-teacher",
        "student": "synthetic-student",
        "recipe": json.dumps({"generator": "kdtheory.testing.synthetic", "seed": int(seed)}),
        "synthetic_truth": t.to_json(),
        "kdtheory_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "storage_dtype": "float32",
    }
    if t.untrained:
        ds = _blank_cells(ds, t.untrained)
    return ds


def _features(
    t: Truth,
    methods: list[str],
    kappa: np.ndarray,
    in_train: np.ndarray,
    orders: np.ndarray,
    train_labels: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, student features (M,F,S,R,D), classifier weights, teacher features."""
    M, F, S = len(methods), kappa.size, t.n_seeds
    K, D, DT = t.n_classes, t.n_features, t.n_teacher_features
    N = train_labels.size
    smallest = np.unique(orders[:, : kappa.min()])
    rest = rng.permutation(np.setdiff1d(np.arange(N), smallest))
    fill = max(0, t.n_feature_sample - smallest.size)
    rows = np.sort(np.concatenate([smallest, rest[:fill]])).astype(np.int64)
    R = rows.size
    y = train_labels[rows]

    teacher_means = rng.standard_normal((K, DT)) * 1.5
    xi = rng.standard_normal((R, DT))
    teacher_feats = teacher_means[y] + xi
    # random (semi-)orthogonal map teacher space -> student space
    q, _ = np.linalg.qr(rng.standard_normal((max(D, DT), max(D, DT))))
    rot = q[:DT, :D]
    if DT < D:
        rot = rot * np.sqrt(D / DT)
    xi_rot = xi @ rot  # (R, D), the teacher's within-class deviations in student space
    student_means = teacher_means @ rot  # (K, D)

    kmax = float(kappa.max())
    xk = np.log(kappa / kmax)
    align = {
        "label": t.label_feature_alignment,
        "ls": t.label_feature_alignment,
        "kd-T4": t.kd_feature_alignment,
        "kd-shuffled-T4": 0.5 * (t.kd_feature_alignment + t.label_feature_alignment),
    }
    log_sigma = np.empty((M, F, S))
    base = np.log(t.label_sigma) + t.sigma_kappa_exponent * xk  # (F,)
    seed_eff = rng.normal(0.0, t.nc_seed_sd, S)
    for i, m in enumerate(methods):
        shift = 0.0
        if METHODS[m]["objective"] in ("kd", "kd-shuffled"):
            shift = 0.5 * (t.nc1_log_ratio + t.nc1_log_ratio_slope * xk)  # NC1 ~ sigma^2
        log_sigma[i] = (base + shift)[:, None] + seed_eff[None, :]
    log_sigma += rng.normal(0.0, t.nc_log_sd, (M, F, S))
    sigma = np.exp(log_sigma)

    trained = in_train[:, :, rows]  # (F, S, R)
    # On each cell's trained and unseen rows separately, the teacher's deviations are centred per
    # class and whitened, so that every student's NC1 on a subset is set by sigma alone (the same
    # deviations are shared by all cells, and their one draw must not move NC1 for all alike).
    dev = np.empty((F, S, R, D))
    for f in range(F):
        for s_ in range(S):
            for sel in (trained[f, s_], ~trained[f, s_]):
                if sel.any():
                    dev[f, s_, sel] = _white_within(xi_rot[sel], y[sel])
    a = np.array([align[m] for m in methods], dtype=float)
    # Within-class deviations are the teacher's, rotated in student space by the orthogonal
    # polar factor of a*I + sqrt(1-a^2)*G/sqrt(D): a=1 keeps them aligned with the teacher, a=0
    # rotates them at random (Haar). A rotation keeps their covariance, so NC1 does not depend
    # on the alignment — only linear CKA with the teacher does (the class-mean part is not
    # rotated).
    a = a.reshape(M, 1, 1, 1, 1)
    g = rng.standard_normal((M, F, S, D, D)) / np.sqrt(D)
    u, _, vt = np.linalg.svd(a * np.eye(D) + np.sqrt(1.0 - a**2) * g)
    within = np.einsum("fsrd,mfsde->mfsre", dev, u @ vt)
    scale = sigma[..., None] * np.where(trained[None], 1.0, t.unseen_sigma_factor)
    feats = student_means[y][None, None, None] + scale[..., None] * within
    norms = np.linalg.norm(student_means, axis=1, keepdims=True)
    weight = student_means / np.where(norms > 0, norms, 1.0)
    weight = weight[None, None, None] + rng.normal(0.0, 0.05, (M, F, S, K, D))
    return rows, feats, weight, teacher_feats


def _white_within(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows ``x`` centred per class of ``y`` and whitened (within-class covariance = I).

    Falls back to unit mean square when there are too few rows for a full-rank covariance.
    """
    classes, inv = np.unique(y, return_inverse=True)
    sums = np.zeros((classes.size, x.shape[1]))
    np.add.at(sums, inv, x)
    z = x - (sums / np.bincount(inv)[:, None])[inv]
    dof = z.shape[0] - classes.size
    if dof >= z.shape[1]:
        try:
            chol = np.linalg.cholesky(z.T @ z / dof)
            return np.linalg.solve(chol, z.T).T
        except np.linalg.LinAlgError:
            pass
    ms = float(np.mean(z**2))
    return z / np.sqrt(ms) if ms > 0 else z


def _blank_cells(ds: xr.Dataset, cells: Iterable[tuple[str, float, int]]) -> xr.Dataset:
    """Set the float variables of the given (arm, fraction, seed) cells to NaN."""
    ds = ds.copy(deep=True)
    fr = np.asarray(ds["fraction"].values, dtype=float)
    for method, fraction, seed in cells:
        j = int(np.argmin(np.abs(fr - fraction)))
        if not np.isclose(fr[j], fraction):
            raise ValueError(f"untrained cell names fraction {fraction}, not in {fr.tolist()}")
        sel = {ARM: method, "fraction": fr[j], "seed": int(seed)}
        for var in ds.data_vars.values():
            if set(sel) <= set(var.dims) and np.issubdtype(var.dtype, np.floating):
                var.loc[sel] = np.nan
    return ds


def make_store(
    n_experiments: int = 1,
    seed: int = 0,
    *,
    prefix: str = "synthetic",
    per_experiment: Sequence[Mapping[str, Any]] | None = None,
    **truth: Any,
) -> dict[str, xr.Dataset]:
    """A synthetic run store: experiment id -> Dataset, each with independent randomness.

    Parameters
    ----------
    n_experiments : int
        Number of experiments (ids ``f"{prefix}-{i}"``).
    seed : int
        Seed of the whole store.
    prefix : str
        Experiment id prefix.
    per_experiment : sequence of dict, optional
        Knob overrides for experiment ``i`` (e.g. different ``fractions`` or ``n_classes``).
    **truth
        Knobs of :class:`Truth` shared by all experiments.

    Returns
    -------
    dict of str to xarray.Dataset
    """
    if per_experiment is not None and len(per_experiment) != n_experiments:
        raise ValueError("per_experiment needs one dict per experiment")
    store: dict[str, xr.Dataset] = {}
    for i in range(n_experiments):
        knobs = dict(truth)
        if per_experiment is not None:
            knobs.update(per_experiment[i])
        exp_seed = int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0])
        name = f"{prefix}-{i}"
        store[name] = make_experiment(seed=exp_seed, experiment=name, **knobs)
    return store
