"""Metrics on penultimate features: neural collapse (NC1–NC4) and linear CKA of one cell, and
:func:`collapse_table`, both on every cell of an experiment (pure numpy / xarray).

Cells that were never trained hold NaN features; every metric maps them to NaN.
"""

from __future__ import annotations

import numpy as np

from kdtheory._blas import with_single_blas_thread
from kdtheory._lazy import lazy_module
from kdtheory.errors import MissingRequirementError
from kdtheory.store.blocks import is_lazy

xr = lazy_module("xarray")  # imported on first use: defining hypotheses must not load xarray

__all__ = ["NC_KEYS", "SUBSETS", "class_means", "collapse_table", "linear_cka", "neural_collapse"]

#: Keys of the dict :func:`neural_collapse` returns, in a stable order.
NC_KEYS: tuple[str, ...] = (
    "nc1",
    "nc2_equinorm",
    "nc2_equiangular",
    "nc2_max_angle",
    "nc3",
    "nc4",
)

#: Values of the ``subset`` coordinate :func:`collapse_table` produces.
SUBSETS: tuple[str, str] = ("trained", "unseen")

#: Relative cut-off on the singular values of the centred class-mean matrix in NC1. It equals a
#: relative cut-off of ``_PINV_RCOND**2`` on the eigenvalues of the between-class covariance.
_PINV_RCOND = 1e-6

#: the leading dims of per-cell arrays (schema v2: see :mod:`kdtheory.store.schema`)
_CELL_DIMS = ("arm", "fraction", "seed")


def _features_and_labels(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``features`` as float64 ``(n, F)`` and ``labels`` as int64 ``(n,)``, or ``ValueError``."""
    h = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if h.ndim != 2 or y.shape != (h.shape[0],):
        raise ValueError(f"need features (n, F) and labels (n,), got {h.shape} and {y.shape}")
    return h, y


def class_means(
    features: np.ndarray, labels: np.ndarray, num_classes: int | None = None
) -> np.ndarray:
    """Mean feature vector of each class.

    Parameters
    ----------
    features : numpy.ndarray
        Shape ``(n, F)``.
    labels : numpy.ndarray
        Integer labels, shape ``(n,)``, in ``0..num_classes-1``.
    num_classes : int, optional
        Number of classes K; defaults to ``labels.max() + 1``.

    Returns
    -------
    numpy.ndarray
        Shape ``(K, F)`` float64; rows of classes with no sample are NaN.
    """
    h, y = _features_and_labels(features, labels)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    onehot = np.zeros((num_classes, y.size))  # (K, n): contiguous for a fast BLAS product
    onehot[y, np.arange(y.size)] = 1.0
    counts = onehot.sum(1)
    sums = onehot @ h
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts[:, None] > 0, sums / counts[:, None], np.nan)


def neural_collapse(
    features: np.ndarray,
    labels: np.ndarray,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    num_classes: int | None = None,
) -> dict[str, float]:
    """Neural-collapse statistics NC1–NC4 (Papyan, Han & Donoho 2020) of one trained cell.

    Let K be the number of classes present, ``mu_k`` the class means, ``mu_G`` the mean of the
    class means (equal to the global mean for balanced classes; unlike the sample-weighted mean
    it leaves a perfect simplex ETF perfect under class imbalance) and ``M`` the ``(K, F)``
    matrix of centred class means ``mu_k - mu_G``.

    Parameters
    ----------
    features : numpy.ndarray
        Penultimate features ``h``, shape ``(n, F)``.
    labels : numpy.ndarray
        Integer labels, shape ``(n,)``.
    weight : numpy.ndarray, optional
        Classifier weight ``W``, shape ``(num_classes, F)``. Needed for NC3 and NC4.
    bias : numpy.ndarray, optional
        Classifier bias ``b``, shape ``(num_classes,)``; zero when omitted.
    num_classes : int, optional
        Total number of classes; defaults to ``weight.shape[0]`` or ``labels.max() + 1``.

    Returns
    -------
    dict of str to float
        ``nc1``
            ``Tr(Sigma_W Sigma_B^+) / K``; ``Sigma_W`` is the within-class covariance averaged
            over samples, ``Sigma_B = M^T M / K``, ``^+`` the Moore–Penrose pseudo-inverse
            (computed as ``K M^+ M^+T`` with ``np.linalg.pinv(M, rcond=1e-6)``).
        ``nc2_equinorm``
            std / mean of the norms of the centred class means.
        ``nc2_equiangular``
            std of the pairwise (off-diagonal) cosines of the centred class means.
        ``nc2_max_angle``
            mean ``|cos + 1/(K-1)|``: distance to the simplex-ETF angle.
        ``nc3``
            ``|| W/||W||_F - M/||M||_F ||_F`` over the present classes (self-duality).
        ``nc4``
            share of samples whose classifier prediction ``argmax(W h + b)`` differs from the
            nearest-class-centre prediction ``argmin_k ||h - mu_k||``.

        All are NaN with fewer than 2 classes present or with non-finite features; NC3 and NC4
        are NaN without ``weight``. Statistics are 0 for a perfect collapse.
    """
    out = dict.fromkeys(NC_KEYS, float("nan"))
    h, y = _features_and_labels(features, labels)
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    if w is not None and (w.ndim != 2 or w.shape[1] != h.shape[1]):
        raise ValueError(f"weight must have shape (K, {h.shape[1]}), got {w.shape}")
    if num_classes is None:
        num_classes = w.shape[0] if w is not None else (int(y.max()) + 1 if y.size else 0)
    n = h.shape[0]
    if n == 0 or not np.all(np.isfinite(h)):
        return out
    means = class_means(h, y, num_classes)
    present = np.flatnonzero(np.bincount(y, minlength=num_classes) > 0)
    k = present.size
    if k < 2:
        return out

    mu = means[present]
    m = mu - mu.mean(axis=0)  # centred class means, (K, F)

    # NC1: with Z the (n, F) within-class deviations, Sigma_W = Z^T Z / n and
    # Sigma_B^+ = (M^T M / K)^+ = K M^+ M^+T, so Tr(Sigma_W Sigma_B^+) / K = ||Z M^+||_F^2 / n.
    # Only the (K, F) matrix M is pseudo-inverted: no F x F products are formed.
    z = h - means[y]
    m_pinv = np.linalg.pinv(m, rcond=_PINV_RCOND)  # (F, K)
    out["nc1"] = float(np.sum((z @ m_pinv) ** 2) / n)

    # NC2
    norms = np.linalg.norm(m, axis=1)
    mean_norm = norms.mean()
    out["nc2_equinorm"] = float(norms.std() / mean_norm) if mean_norm > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = m / norms[:, None]
    iu = np.triu_indices(k, 1)
    cos = (unit @ unit.T)[iu]
    out["nc2_equiangular"] = float(np.std(cos))
    out["nc2_max_angle"] = float(np.mean(np.abs(cos + 1.0 / (k - 1))))

    if w is None:
        return out
    if w.shape[0] != num_classes:
        raise ValueError(f"weight has {w.shape[0]} rows but num_classes is {num_classes}")
    # NC3
    wp = w[present]
    w_norm, m_norm = np.linalg.norm(wp), np.linalg.norm(m)
    if w_norm > 0 and m_norm > 0:
        out["nc3"] = float(np.linalg.norm(wp / w_norm - m / m_norm))
    # NC4
    if not np.all(np.isfinite(w)):
        return out
    logits = h @ w.T
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64)
        if not np.all(np.isfinite(b)):
            return out
        logits = logits + b
    clf = np.argmax(logits, axis=1)
    d2 = (h * h).sum(1)[:, None] - 2.0 * h @ mu.T + (mu * mu).sum(1)[None, :]
    ncc = present[np.argmin(d2, axis=1)]
    out["nc4"] = float(np.mean(clf != ncc))
    return out


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) between two representations.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(n, p)``.
    y : numpy.ndarray
        Shape ``(n, q)``, same samples in the same order.

    Returns
    -------
    float
        ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on column-centred ``X`` and ``Y``, in
        [0, 1]; invariant to orthogonal transforms and isotropic scaling. NaN when either
        input is non-finite or constant.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"need x (n, p) and y (n, q), got {a.shape} and {b.shape}")
    return _cka_with(a, _CkaSide.of(b))


class _CkaSide:
    """One representation's share of :func:`linear_cka`: centred, with its Gram norm.

    The teacher's side is the same for every arm of a (fraction, seed, subset), so
    :func:`collapse_table` computes it once and pairs it with each student (same arithmetic, so
    the same numbers as :func:`linear_cka`).
    """

    __slots__ = ("centred", "finite", "gram_norm")

    def __init__(self, centred: np.ndarray, finite: bool, gram_norm: float) -> None:
        self.centred, self.finite, self.gram_norm = centred, finite, gram_norm

    @classmethod
    def of(cls, x: np.ndarray) -> _CkaSide:
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            return cls(x, False, float("nan"))
        c = x - x.mean(axis=0)
        return cls(c, True, float(np.linalg.norm(c.T @ c)))


def _cka_with(a: np.ndarray, other: _CkaSide) -> float:
    """:func:`linear_cka` of ``a`` (n, p) and a precomputed side ``other``."""
    if not (np.all(np.isfinite(a)) and other.finite):
        return float("nan")
    a = a - a.mean(axis=0)
    b = other.centred
    cross = np.sum((b.T @ a) ** 2)
    den = np.linalg.norm(a.T @ a) * other.gram_norm
    return float(cross / den) if den > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# per-cell tables
# --------------------------------------------------------------------------------------------


@with_single_blas_thread
def collapse_table(ds: xr.Dataset) -> xr.Dataset:
    """Neural collapse and teacher alignment of every cell, on trained vs unseen feature rows.

    Parameters
    ----------
    ds : xarray.Dataset
        One experiment (schema v2) with ``features``, ``classifier_weight``,
        ``teacher_features``, ``train_labels`` and ``in_train``; ``classifier_bias`` is used
        when present. The ``feature_sample`` coordinate holds the training-set index of each
        feature row.

    Returns
    -------
    xarray.Dataset
        Variables ``nc1``, ``nc2_equinorm``, ``nc2_equiangular``, ``nc2_max_angle``, ``nc3``,
        ``nc4`` (see :func:`neural_collapse`), ``cka`` (linear CKA between the cell's features
        and ``teacher_features`` on the same rows), ``n_samples`` and ``n_classes`` (rows and
        classes in the subset), with dims ``(arm, fraction, seed, subset)``; ``subset`` is
        ``["trained", "unseen"]``: the feature rows the cell trained on (``in_train``) and the
        rest. The coordinates along arm/fraction/seed (objective, n_train, ...) are kept.
        Metrics are NaN for cells with NaN features and for subsets with fewer than 3 rows or
        fewer than 2 classes.
    """
    required = ("features", "classifier_weight", "teacher_features", "train_labels", "in_train")
    missing = [v for v in required if v not in ds.variables]
    if missing:
        raise MissingRequirementError(
            f"collapse_table needs the variables {', '.join(missing)}; "
            "store features with the run (the feature variables are optional as a group)"
        )
    feats = ds["features"].transpose(*_CELL_DIMS, "feature_sample", "feature")
    weight = ds["classifier_weight"].transpose(*_CELL_DIMS, "class", "feature")
    bias = (
        ds["classifier_bias"].transpose(*_CELL_DIMS, "class")
        if "classifier_bias" in ds.variables
        else None
    )
    rows = ds["feature_sample"].values
    teacher = np.asarray(ds["teacher_features"].transpose("feature_sample", ...).values)
    labels = np.asarray(ds["train_labels"].sel(train_sample=rows).values).astype(np.int64)
    in_train = (
        ds["in_train"]
        .sel(train_sample=rows)
        .astype(bool)
        .reindex(fraction=feats["fraction"], seed=feats["seed"], fill_value=False)
        .transpose("fraction", "seed", "train_sample")
        .values
    )
    num_classes = weight.sizes["class"]

    shape = tuple(feats.sizes[d] for d in _CELL_DIMS) + (len(SUBSETS),)
    names = (*NC_KEYS, "cka")
    table = {name: np.full(shape, np.nan) for name in names}
    n_samples = np.zeros(shape, dtype=np.int64)
    n_classes = np.zeros(shape, dtype=np.int64)

    lazy = is_lazy(feats)  # a store opened with chunks: one cell's features at a time
    f_all = None if lazy else feats.values
    w_all = weight.values
    teacher_sides: dict[tuple[int, int, int], _CkaSide] = {}  # (fraction, seed, subset)
    b_all = None if bias is None else bias.values
    for i, j, s in np.ndindex(*shape[:3]):
        h = feats[i, j, s].values if f_all is None else f_all[i, j, s]
        finite = bool(np.all(np.isfinite(h)))
        for k, sel in enumerate((in_train[j, s], ~in_train[j, s])):
            y = labels[sel]
            n_samples[i, j, s, k] = y.size
            n_classes[i, j, s, k] = np.unique(y).size
            if not finite or y.size < 3 or n_classes[i, j, s, k] < 2:
                continue
            nc = neural_collapse(
                h[sel],
                y,
                weight=w_all[i, j, s],
                bias=None if b_all is None else b_all[i, j, s],
                num_classes=num_classes,
            )
            for name in NC_KEYS:
                table[name][i, j, s, k] = nc[name]
            side = teacher_sides.get((j, s, k))
            if side is None:
                side = teacher_sides[(j, s, k)] = _CkaSide.of(teacher[sel])
            table["cka"][i, j, s, k] = _cka_with(np.asarray(h[sel], dtype=np.float64), side)

    dims = (*_CELL_DIMS, "subset")
    coords = {
        name: coord
        for name, coord in ds.coords.items()
        if set(coord.dims) <= set(_CELL_DIMS) and name != "subset"
    }
    coords["subset"] = list(SUBSETS)
    data_vars = {name: (dims, table[name]) for name in names}
    data_vars["n_samples"] = (dims, n_samples)
    data_vars["n_classes"] = (dims, n_classes)
    out = xr.Dataset(data_vars, coords=coords, attrs=dict(ds.attrs))
    out["cka"].attrs["long_name"] = "linear CKA with teacher features"
    return out
