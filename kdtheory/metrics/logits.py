"""Metrics on run-store predictions and features (pure numpy / xarray / scipy).

Every function that takes :class:`xarray.DataArray` inputs works on whole experiment arrays at
once: leading dims such as ``arm``, ``fraction`` and ``seed`` are kept and broadcast, and the
class axis is always the dim named ``class`` (see ``docs/schema.md``). Cells that were never
trained hold NaN logits or features; every metric maps them to NaN rather than to a number.

Contents
--------
- probabilities: :func:`softmax`, :func:`log_softmax`;
- prediction metrics: :func:`accuracy`, :func:`agreement`, :func:`fidelity`,
  :func:`kl_divergence`, :func:`wrong_class_rank_correlation` (and per-sample variants);
- representation metrics for one cell: :func:`class_means`, :func:`neural_collapse`,
  :func:`linear_cka`;
- per-cell tables on an experiment: :func:`collapse_table`.
"""

from __future__ import annotations

from typing import overload

import numpy as np

from kdtheory._lazy import lazy_module
from kdtheory.errors import MissingRequirementError

xr = lazy_module("xarray")  # imported on first use: defining hypotheses must not load xarray

__all__ = [
    "CLASS_DIM",
    "NC_KEYS",
    "SUBSETS",
    "softmax",
    "log_softmax",
    "masked_mean",
    "predictions",
    "accuracy",
    "agreement",
    "fidelity",
    "per_sample_kl",
    "kl_divergence",
    "wrong_class_rank_correlation_per_sample",
    "wrong_class_rank_correlation",
    "class_means",
    "neural_collapse",
    "linear_cka",
    "collapse_table",
]

#: Name of the class dim in every run-store array.
CLASS_DIM = "class"

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


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _float_array(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as a float array of at least float32 precision (float16 is promoted)."""
    x = np.asarray(x)
    return x.astype(np.result_type(x.dtype, np.float32), copy=False)


def _resolve_axis(da: xr.DataArray, axis: int | str) -> int:
    """Positional axis of ``axis`` in ``da``; ``-1`` means ``class`` when ``da`` has it."""
    if isinstance(axis, str):
        return da.get_axis_num(axis)
    if axis == -1 and CLASS_DIM in da.dims:
        return da.get_axis_num(CLASS_DIM)
    return int(axis) % da.ndim


def _np_log_softmax(x: np.ndarray, axis: int, temperature: float) -> np.ndarray:
    x = _float_array(x) / temperature
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    z = x - m
    with np.errstate(divide="ignore"):
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def _check_sample_dim(da: xr.DataArray, sample_dim: str, name: str) -> None:
    if sample_dim not in da.dims:
        raise ValueError(f"{name} has no dim {sample_dim!r} (dims: {tuple(da.dims)})")


def _check_class_dim(da: xr.DataArray, name: str) -> None:
    if CLASS_DIM not in da.dims:
        raise ValueError(f"{name} has no dim {CLASS_DIM!r} (dims: {tuple(da.dims)})")


# --------------------------------------------------------------------------------------------
# probabilities
# --------------------------------------------------------------------------------------------


@overload
def log_softmax(
    logits: np.ndarray, axis: int | str = -1, temperature: float = 1.0
) -> np.ndarray: ...
@overload
def log_softmax(
    logits: xr.DataArray, axis: int | str = -1, temperature: float = 1.0
) -> xr.DataArray: ...
def log_softmax(
    logits: np.ndarray | xr.DataArray, axis: int | str = -1, temperature: float = 1.0
) -> np.ndarray | xr.DataArray:
    """Numerically stable log-softmax of ``logits / temperature``.

    Parameters
    ----------
    logits : numpy.ndarray or xarray.DataArray
        Unnormalised scores. float16 input is computed in float32.
    axis : int or str, default -1
        Axis to normalise over. For a DataArray this may be a dim name; the default ``-1`` means
        the ``class`` dim when the array has one and the last dim otherwise.
    temperature : float, default 1.0
        Softmax temperature (> 0).

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        Log-probabilities, same shape (and dims/coords) as ``logits``. Rows with a NaN stay NaN.
    """
    _check_temperature(temperature)
    if isinstance(logits, xr.DataArray):
        ax = _resolve_axis(logits, axis)
        return logits.copy(data=_np_log_softmax(logits.values, ax, temperature))
    if isinstance(axis, str):
        raise TypeError("a dim name as axis needs an xarray.DataArray")
    return _np_log_softmax(np.asarray(logits), axis, temperature)


@overload
def softmax(logits: np.ndarray, axis: int | str = -1, temperature: float = 1.0) -> np.ndarray: ...
@overload
def softmax(
    logits: xr.DataArray, axis: int | str = -1, temperature: float = 1.0
) -> xr.DataArray: ...
def softmax(
    logits: np.ndarray | xr.DataArray, axis: int | str = -1, temperature: float = 1.0
) -> np.ndarray | xr.DataArray:
    """Numerically stable softmax of ``logits / temperature``.

    Parameters
    ----------
    logits : numpy.ndarray or xarray.DataArray
        Unnormalised scores. float16 input is computed in float32.
    axis : int or str, default -1
        Axis to normalise over. For a DataArray this may be a dim name; the default ``-1`` means
        the ``class`` dim when the array has one and the last dim otherwise.
    temperature : float, default 1.0
        Softmax temperature (> 0).

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        Probabilities summing to one along ``axis``; same shape (and dims/coords) as ``logits``.
    """
    out = log_softmax(logits, axis=axis, temperature=temperature)
    return np.exp(out)


# --------------------------------------------------------------------------------------------
# prediction metrics
# --------------------------------------------------------------------------------------------


def masked_mean(
    values: xr.DataArray, sample_dim: str, mask: xr.DataArray | None = None
) -> xr.DataArray:
    """Mean of ``values`` over ``sample_dim``, only over samples where ``mask`` is True.

    Parameters
    ----------
    values : xarray.DataArray
        Per-sample values with dim ``sample_dim``.
    sample_dim : str
        Dim to reduce.
    mask : xarray.DataArray, optional
        Boolean selection that broadcasts against ``values`` (e.g. ``in_train`` with dims
        fraction, seed, train_sample). It is reindexed onto the coordinates of ``values``;
        entries it lacks count as not selected. ``None`` selects every sample.

    Returns
    -------
    xarray.DataArray
        The mean, with ``sample_dim`` removed and the mask's extra dims added. NaN where the
        mask selects nothing, and NaN where any selected value is NaN (an untrained cell).
    """
    _check_sample_dim(values, sample_dim, "values")
    if mask is None:
        return values.mean(sample_dim, skipna=False)
    indexers = {d: values.indexes[d] for d in mask.dims if d in values.indexes}
    sel = mask.astype(bool)
    if indexers:
        sel = sel.reindex(indexers, fill_value=False)
    sel = sel & xr.ones_like(values[sample_dim], dtype=bool)  # a mask may lack sample_dim
    num = xr.where(sel, values, 0.0).sum(sample_dim, skipna=False)
    den = sel.sum(sample_dim)
    out = num / den.where(den > 0)
    # keep the dim order of ``values`` first, then any dims only the mask has
    return out.transpose(*[d for d in values.dims if d in out.dims], ...)


def predictions(logits: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Top-1 class of each row and whether the row holds a NaN.

    Parameters
    ----------
    logits : xarray.DataArray
        Scores with a ``class`` dim.

    Returns
    -------
    pred : xarray.DataArray
        Integer argmax over ``class`` (first index on ties; meaningless where ``missing``).
    missing : xarray.DataArray
        Boolean, True where any logit of the row is NaN.
    """
    _check_class_dim(logits, "logits")
    missing = logits.isnull().any(CLASS_DIM)
    pred = logits.fillna(-np.inf).argmax(CLASS_DIM)
    return pred, missing


def accuracy(
    logits: xr.DataArray,
    labels: xr.DataArray,
    sample_dim: str,
    mask: xr.DataArray | None = None,
) -> xr.DataArray:
    """Top-1 accuracy: share of samples whose argmax over ``class`` equals the label.

    Parameters
    ----------
    logits : xarray.DataArray
        Scores with dims ``(..., sample_dim, class)``, e.g. ``test_logits``.
    labels : xarray.DataArray
        Integer labels with dim ``sample_dim``.
    sample_dim : str
        Sample dim to reduce (``train_sample`` or ``test_sample``).
    mask : xarray.DataArray, optional
        Restrict the mean to samples where the mask is True (see :func:`masked_mean`).

    Returns
    -------
    xarray.DataArray
        Accuracy in [0, 1] with the other dims of ``logits`` (arm, fraction, seed, ...);
        NaN for cells with NaN logits (untrained) or where the mask selects nothing.
    """
    _check_sample_dim(logits, sample_dim, "logits")
    pred, missing = predictions(logits)
    correct = (pred == labels).astype(float).where(~missing)
    return masked_mean(correct, sample_dim, mask).rename("accuracy")


def agreement(student_logits: xr.DataArray, teacher_logits: xr.DataArray) -> xr.DataArray:
    """Per-sample top-1 agreement between student and teacher.

    Parameters
    ----------
    student_logits : xarray.DataArray
        Student scores with a ``class`` dim (e.g. dims arm, fraction, seed, sample, class).
    teacher_logits : xarray.DataArray
        Teacher scores that broadcast against the student's (e.g. dims sample, class).

    Returns
    -------
    xarray.DataArray
        Float 1.0 where the argmaxes agree, 0.0 where not, NaN where the student's (or the
        teacher's) logits are NaN. Dims: those of the student without ``class``.
    """
    s_pred, s_missing = predictions(student_logits)
    t_pred, t_missing = predictions(teacher_logits)
    agree = (s_pred == t_pred).astype(float).where(~(s_missing | t_missing))
    return agree.rename("agreement")


def fidelity(
    student_logits: xr.DataArray,
    teacher_logits: xr.DataArray,
    sample_dim: str,
    mask: xr.DataArray | None = None,
) -> xr.DataArray:
    """Top-1 fidelity: mean student–teacher agreement over the selected samples.

    Parameters
    ----------
    student_logits, teacher_logits : xarray.DataArray
        As in :func:`agreement`.
    sample_dim : str
        Sample dim to reduce.
    mask : xarray.DataArray, optional
        Boolean selection broadcasting against the agreement, e.g. ``in_train`` (fidelity on
        the samples each cell trained on) or ``~in_train`` (unseen samples).

    Returns
    -------
    xarray.DataArray
        Fidelity in [0, 1]; NaN where the mask selects nothing or for untrained cells.
    """
    _check_sample_dim(student_logits, sample_dim, "student_logits")
    agree = agreement(student_logits, teacher_logits)
    return masked_mean(agree, sample_dim, mask).rename("fidelity")


def per_sample_kl(
    teacher_logits: xr.DataArray,
    student_logits: xr.DataArray,
    temperature: float = 1.0,
) -> xr.DataArray:
    """Per-sample KL(teacher ‖ student) of the tempered softmax distributions (nats).

    Parameters
    ----------
    teacher_logits, student_logits : xarray.DataArray
        Scores with a ``class`` dim; they broadcast against each other.
    temperature : float, default 1.0
        Temperature applied to both distributions (no ``T**2`` factor).

    Returns
    -------
    xarray.DataArray
        KL divergence per sample, without the ``class`` dim; NaN where either input is NaN.
    """
    _check_class_dim(teacher_logits, "teacher_logits")
    _check_class_dim(student_logits, "student_logits")
    log_pt = log_softmax(teacher_logits, CLASS_DIM, temperature)
    log_ps = log_softmax(student_logits, CLASS_DIM, temperature)
    pt = np.exp(log_pt)
    terms = xr.where(pt > 0, pt * (log_pt - log_ps), 0.0)
    # xr.where(pt > 0, ...) maps NaN rows to 0: restore the NaN of either input.
    missing = log_pt.isnull() | log_ps.isnull()
    terms = terms.where(~missing)
    return terms.sum(CLASS_DIM, skipna=False).rename("kl")


def kl_divergence(
    teacher_logits: xr.DataArray,
    student_logits: xr.DataArray,
    sample_dim: str,
    mask: xr.DataArray | None = None,
    temperature: float = 1.0,
) -> xr.DataArray:
    """Mean over selected samples of KL(teacher ‖ student) (nats).

    Parameters
    ----------
    teacher_logits, student_logits : xarray.DataArray
        Scores with dims ``(..., sample_dim, class)`` that broadcast against each other.
    sample_dim : str
        Sample dim to reduce.
    mask : xarray.DataArray, optional
        Boolean selection of samples (see :func:`masked_mean`).
    temperature : float, default 1.0
        Temperature applied to both distributions (no ``T**2`` factor).

    Returns
    -------
    xarray.DataArray
        Mean KL with the non-sample, non-class dims; NaN where the mask selects nothing or for
        untrained cells.
    """
    _check_sample_dim(student_logits, sample_dim, "student_logits")
    kl = per_sample_kl(teacher_logits, student_logits, temperature)
    return masked_mean(kl, sample_dim, mask).rename("kl_divergence")


def _wrong_class_spearman_np(
    student: np.ndarray, teacher: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Spearman correlation over the wrong classes, per row; arrays broadcast, class last.

    NaN where an input row has a NaN or where either ranking is constant.
    """
    from scipy.stats import rankdata  # scipy.stats costs ~0.5 s to import: only when used

    s = _float_array(student).astype(np.float64)
    t = _float_array(teacher).astype(np.float64)
    y = np.asarray(labels).astype(np.int64)
    k = s.shape[-1]
    if t.shape[-1] != k:
        raise ValueError(f"student has {k} classes, teacher {t.shape[-1]}")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}")
    wrong = np.arange(k) != y[..., None]  # (..., n, K)
    nan_s = np.isnan(s).any(-1)
    nan_t = np.isnan(t).any(-1)

    def centred_wrong_ranks(x: np.ndarray) -> np.ndarray:
        # The true class is pushed to +inf so that the wrong classes take ranks 1..K-1 (ties
        # averaged); their mean is then exactly K/2, and the true class is zeroed out.
        x = np.where(wrong, np.nan_to_num(x, nan=0.0), np.inf)
        r = rankdata(x, axis=-1)
        return np.where(wrong, r - k / 2.0, 0.0)

    a = centred_wrong_ranks(s)
    b = centred_wrong_ranks(t)
    num = np.sum(a * b, axis=-1)
    den = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.where(nan_s | nan_t, np.nan, r)


def wrong_class_rank_correlation_per_sample(
    student_logits: xr.DataArray,
    teacher_logits: xr.DataArray,
    labels: xr.DataArray,
    sample_dim: str,
) -> xr.DataArray:
    """Per-sample Spearman correlation of student and teacher logits over the wrong classes.

    Parameters
    ----------
    student_logits : xarray.DataArray
        Dims ``(..., sample_dim, class)``.
    teacher_logits : xarray.DataArray
        Dims ``(sample_dim, class)`` (or anything that broadcasts against the student's).
    labels : xarray.DataArray
        Integer true labels with dim ``sample_dim``; the true class is left out of the ranking.
    sample_dim : str
        Sample dim.

    Returns
    -------
    xarray.DataArray
        Correlation in [-1, 1] per sample (dims of the student without ``class``); NaN where
        either ranking of the K-1 wrong classes is constant, or where the logits are NaN.
    """
    _check_sample_dim(student_logits, sample_dim, "student_logits")
    _check_class_dim(student_logits, "student_logits")
    _check_class_dim(teacher_logits, "teacher_logits")
    out = xr.apply_ufunc(
        _wrong_class_spearman_np,
        student_logits,
        teacher_logits,
        labels,
        input_core_dims=[[sample_dim, CLASS_DIM], [sample_dim, CLASS_DIM], [sample_dim]],
        output_core_dims=[[sample_dim]],
    )
    dims = [d for d in student_logits.dims if d != CLASS_DIM]
    dims += [d for d in out.dims if d not in dims]
    return out.transpose(*dims).rename("wrong_class_rank_correlation")


def wrong_class_rank_correlation(
    student_logits: xr.DataArray,
    teacher_logits: xr.DataArray,
    labels: xr.DataArray,
    sample_dim: str,
    mask: xr.DataArray | None = None,
) -> xr.DataArray:
    """Mean over samples of the wrong-class Spearman correlation between student and teacher.

    For each sample the student's and the teacher's logits on the K-1 classes other than the
    true label are ranked (ties averaged) and correlated; the correlations are averaged over
    samples. It measures how much of the teacher's "dark knowledge" (its ordering of the wrong
    classes) the student reproduces.

    Parameters
    ----------
    student_logits : xarray.DataArray
        Dims ``(..., sample_dim, class)``, e.g. ``train_logits``.
    teacher_logits : xarray.DataArray
        Dims ``(sample_dim, class)``, e.g. ``teacher_train_logits``.
    labels : xarray.DataArray
        Integer true labels with dim ``sample_dim``.
    sample_dim : str
        Sample dim to reduce.
    mask : xarray.DataArray, optional
        Further restrict the mean to samples where the mask is True.

    Returns
    -------
    xarray.DataArray
        Mean correlation with the student's other dims. Samples where either ranking is
        constant are excluded; NaN where no sample remains or for cells with NaN logits.
    """
    r = wrong_class_rank_correlation_per_sample(student_logits, teacher_logits, labels, sample_dim)
    selected = xr.ones_like(r, dtype=bool)
    if mask is not None:
        indexers = {d: r.indexes[d] for d in mask.dims if d in r.indexes}
        sel = mask.astype(bool)
        selected = selected & (sel.reindex(indexers, fill_value=False) if indexers else sel)
    valid = selected & r.notnull()
    # Cells with NaN logits among the selected samples are NaN, not "all samples excluded".
    bad = (student_logits.isnull().any(CLASS_DIM) & selected).any(sample_dim)
    den = valid.sum(sample_dim)
    num = xr.where(valid, r, 0.0).sum(sample_dim)
    out = (num / den.where(den > 0)).where(~bad)
    return out.rename("wrong_class_rank_correlation")


# --------------------------------------------------------------------------------------------
# representation metrics (one cell)
# --------------------------------------------------------------------------------------------


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
    h = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if h.ndim != 2 or y.shape != (h.shape[0],):
        raise ValueError(f"need features (n, F) and labels (n,), got {h.shape} and {y.shape}")
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
    h = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if h.ndim != 2 or y.shape != (h.shape[0],):
        raise ValueError(f"need features (n, F) and labels (n,), got {h.shape} and {y.shape}")
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
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    cross = np.sum((b.T @ a) ** 2)
    den = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(cross / den) if den > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# per-cell tables
# --------------------------------------------------------------------------------------------


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

    f_all, w_all = feats.values, weight.values
    b_all = None if bias is None else bias.values
    for i, j, s in np.ndindex(*shape[:3]):
        h = f_all[i, j, s]
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
            table["cka"][i, j, s, k] = linear_cka(h[sel], teacher[sel])

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
