"""Metrics on run-store logits: probabilities, accuracy, agreement and fidelity with the teacher,
KL divergence, and the wrong-class rank correlation (pure numpy / xarray / scipy).

Every function that takes :class:`xarray.DataArray` inputs works on whole experiment arrays at
once: leading dims such as ``arm``, ``fraction`` and ``seed`` are kept and broadcast, and the
class axis is always the dim named ``class`` (see ``docs/schema.md``). The per-cell reductions
(accuracy, fidelity, KL divergence, rank correlation) also take Dask-backed arrays (a store
opened with ``open_runs(path, chunks=...)``) and then work one chunk of cells at a time. Cells
that were never trained hold NaN logits; every metric maps them to NaN rather than to a number.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, overload

import numpy as np

from kdtheory._lazy import lazy_module
from kdtheory.store.blocks import reduce_by_blocks

xr = lazy_module("xarray")  # imported on first use: defining hypotheses must not load xarray

__all__ = [
    "CLASS_DIM",
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
]

#: Name of the class dim in every run-store array.
CLASS_DIM = "class"


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


def _aligned_mask(mask: xr.DataArray, like: xr.DataArray) -> xr.DataArray:
    """``mask`` as booleans reindexed onto the coordinates of ``like`` (entries it lacks count as
    not selected); dims ``like`` has no index for are left as they are."""
    indexers = {d: like.indexes[d] for d in mask.dims if d in like.indexes}
    sel = mask.astype(bool)
    return sel.reindex(indexers, fill_value=False) if indexers else sel


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
    """Numerically stable softmax of ``logits / temperature``: ``exp`` of :func:`log_softmax`.

    Parameters
    ----------
    logits, axis, temperature
        As in :func:`log_softmax`.

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
    # a mask may lack sample_dim
    sel = _aligned_mask(mask, values) & xr.ones_like(values[sample_dim], dtype=bool)
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
    pred, missing = xr.apply_ufunc(
        _top1,
        logits,
        input_core_dims=[[CLASS_DIM]],
        output_core_dims=[[], []],
        dask="parallelized",
        output_dtypes=[np.intp, bool],
    )
    return pred, missing


def _top1(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax over the last axis (first index on ties) and whether the row holds a NaN: one
    numpy pass each (xarray's NaN-skipping argmax copies the array twice)."""
    if values.dtype.kind != "f":
        return values.argmax(axis=-1), np.zeros(values.shape[:-1], dtype=bool)
    return values.argmax(axis=-1), np.isnan(values).any(axis=-1)


@reduce_by_blocks
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


@reduce_by_blocks
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


@reduce_by_blocks
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


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..K along the last axis, ties given their average rank (``rankdata``'s "average").

    Vectorised over the leading axes with numpy alone (``scipy.stats.rankdata`` gives the same
    numbers, but importing scipy.stats costs about half a second of a test command).

    Parameters
    ----------
    x : numpy.ndarray
        Values without NaN, ranked along the last axis.

    Returns
    -------
    numpy.ndarray
        float64 ranks, same shape as ``x``.
    """
    x = np.asarray(x)
    k = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    ordered = np.take_along_axis(x, order, axis=-1)
    position = np.broadcast_to(np.arange(k), x.shape)
    starts = np.ones(x.shape, dtype=bool)  # where a run of equal values begins
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    ends = np.ones(x.shape, dtype=bool)  # where it ends
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    last = np.flip(
        np.minimum.accumulate(np.flip(np.where(ends, position, k - 1), axis=-1), axis=-1), axis=-1
    )
    ranks = np.empty(x.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=-1)
    return ranks


#: Recent results of :func:`_wrong_class_spearman_np` by the content of their inputs: the
#: dark-knowledge test and the rank-correlation figure of one report rank the same arms' logits.
_SPEARMAN_MEMO: OrderedDict[tuple, np.ndarray] = OrderedDict()
_SPEARMAN_MEMO_SIZE = 16


def _content_key(*arrays: np.ndarray) -> tuple:
    """A key naming the arrays by value (dtype, shape and a BLAKE2 digest of their bytes)."""
    key: list[Any] = []
    for a in arrays:
        c = np.ascontiguousarray(a)
        digest = hashlib.blake2b(c.view(np.uint8).data, digest_size=16).digest()
        key += [c.dtype.str, c.shape, digest]
    return tuple(key)


def _wrong_class_spearman_np(
    student: np.ndarray, teacher: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Spearman correlation over the wrong classes, per row; arrays broadcast, class last.

    NaN where an input row has a NaN or where either ranking is constant. Remembered for the
    last few inputs (by content, so a copy or a re-selection of the same logits hits).
    """
    key = _content_key(np.asarray(student), np.asarray(teacher), np.asarray(labels))
    hit = _SPEARMAN_MEMO.get(key)
    if hit is not None:
        _SPEARMAN_MEMO.move_to_end(key)
        return hit.copy()
    out = _wrong_class_spearman_uncached(student, teacher, labels)
    _SPEARMAN_MEMO[key] = out.copy()
    while len(_SPEARMAN_MEMO) > _SPEARMAN_MEMO_SIZE:
        _SPEARMAN_MEMO.popitem(last=False)
    return out


def _wrong_class_spearman_uncached(
    student: np.ndarray, teacher: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """:func:`_wrong_class_spearman_np` without the memo."""
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
        r = average_ranks(x)
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


@reduce_by_blocks
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
        selected = selected & _aligned_mask(mask, r)
    valid = selected & r.notnull()
    # Cells with NaN logits among the selected samples are NaN, not "all samples excluded".
    bad = (student_logits.isnull().any(CLASS_DIM) & selected).any(sample_dim)
    den = valid.sum(sample_dim)
    num = xr.where(valid, r, 0.0).sum(sample_dim)
    out = (num / den.where(den > 0)).where(~bad)
    return out.rename("wrong_class_rank_correlation")
