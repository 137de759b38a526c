"""Tests of kdtheory.metrics against hand-computed or independently computed answers."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.special
import scipy.stats
import xarray as xr

from kdtheory import metrics
from kdtheory.errors import MissingRequirementError
from kdtheory.metrics import (
    accuracy,
    agreement,
    class_means,
    collapse_table,
    fidelity,
    kl_divergence,
    linear_cka,
    log_softmax,
    neural_collapse,
    softmax,
    wrong_class_rank_correlation,
    wrong_class_rank_correlation_per_sample,
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def simplex_etf(k: int, f: int, rng: np.random.Generator) -> np.ndarray:
    """(k, f) rows forming a simplex ETF: unit norm, pairwise cosine -1/(k-1), zero sum."""
    base = np.sqrt(k / (k - 1)) * (np.eye(k) - np.ones((k, k)) / k)
    q, _ = np.linalg.qr(rng.standard_normal((f, k)))
    return base @ q.T


def orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def nc1_reference(h: np.ndarray, y: np.ndarray) -> float:
    """Slow, loop-based NC1 = Tr(Sigma_W Sigma_B^+)/K straight from the definition."""
    classes = sorted(set(y.tolist()))
    k, f = len(classes), h.shape[1]
    mu = {c: np.mean([h[i] for i in range(len(y)) if y[i] == c], axis=0) for c in classes}
    mu_g = np.mean([mu[c] for c in classes], axis=0)
    sw = np.zeros((f, f))
    for i in range(len(y)):
        d = h[i] - mu[y[i]]
        sw += np.outer(d, d)
    sw /= len(y)
    sb = np.zeros((f, f))
    for c in classes:
        d = mu[c] - mu_g
        sb += np.outer(d, d)
    sb /= k
    return float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-12, hermitian=True)) / k)


def da(values, dims, **coords) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=float), dims=dims, coords=coords or None)


# ---------------------------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------------------------


def test_softmax_matches_scipy_and_is_stable():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)) * 3
    np.testing.assert_allclose(softmax(x), scipy.special.softmax(x, axis=-1), atol=1e-12)
    np.testing.assert_allclose(
        softmax(x, temperature=4.0), scipy.special.softmax(x / 4.0, axis=-1), atol=1e-12
    )
    np.testing.assert_allclose(log_softmax(x, axis=0), scipy.special.log_softmax(x, axis=0))
    big = np.array([[1000.0, 0.0, -1000.0]])
    p = softmax(big)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [[1.0, 0.0, 0.0]], atol=1e-12)
    assert np.isfinite(log_softmax(big)[0, 0]) and log_softmax(big)[0, 0] == pytest.approx(0.0)
    # float16 input is computed in (at least) float32
    assert softmax(x.astype(np.float16)).dtype == np.float32
    # NaN rows stay NaN, other rows are untouched
    y = x.copy()
    y[1, 2] = np.nan
    out = softmax(y)
    assert np.all(np.isnan(out[1])) and np.allclose(out[0], softmax(x)[0])


def test_softmax_dataarray_uses_class_dim():
    rng = np.random.default_rng(1)
    x = da(rng.standard_normal((3, 4)), ("class", "sample"))  # class is not the last dim
    p = softmax(x)
    assert p.dims == x.dims
    np.testing.assert_allclose(p.sum("class").values, 1.0)
    np.testing.assert_allclose(p.values, scipy.special.softmax(x.values, axis=0))
    np.testing.assert_allclose(softmax(x, axis="sample").sum("sample").values, 1.0)
    with pytest.raises(ValueError):
        softmax(x, temperature=0.0)


# ---------------------------------------------------------------------------------------------
# accuracy / agreement / fidelity / KL
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny():
    """method (2) x test_sample (4) x class (3); the second method is untrained (NaN)."""
    logits = np.array(
        [
            [[3, 1, 0], [0, 2, 1], [0, 1, 5], [2, 0, 1]],  # argmax 0, 1, 2, 0
            [[np.nan] * 3] * 4,
        ]
    )
    student = da(logits, ("arm", "test_sample", "class"), arm=["label", "kd"])
    labels = xr.DataArray(np.array([0, 1, 1, 2]), dims="test_sample")
    teacher = da(
        [[5, 0, 0], [0, 0, 3], [0, 0, 1], [1, 0, 0]], ("test_sample", "class")
    )  # argmax 0, 2, 2, 0
    return student, teacher, labels


def test_accuracy_hand_made(tiny):
    student, _, labels = tiny
    acc = accuracy(student, labels, "test_sample")
    assert acc.dims == ("arm",)
    assert acc.sel({"arm": "label"}).item() == pytest.approx(0.5)  # samples 0 and 1 correct
    assert np.isnan(acc.sel({"arm": "kd"}).item())  # untrained cell -> NaN, not 0
    mask = xr.DataArray([True, False, True, True], dims="test_sample")
    assert accuracy(student, labels, "test_sample", mask=mask).sel(
        {"arm": "label"}
    ).item() == pytest.approx(1 / 3)


def test_accuracy_float16_and_extra_dims():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2, 3, 50, 4)).astype(np.float16)
    x = xr.DataArray(logits, dims=("fraction", "seed", "test_sample", "class"))
    labels = xr.DataArray(rng.integers(0, 4, 50), dims="test_sample")
    acc = accuracy(x, labels, "test_sample")
    assert acc.dims == ("fraction", "seed")
    expected = (logits.astype(float).argmax(-1) == labels.values).mean(-1)
    np.testing.assert_allclose(acc.values, expected)


def test_predictions_first_index_on_ties_nan_rows_flagged_any_dim_order():
    """Top-1 is the first of tied maxima; a row with a NaN is flagged missing; the class dim
    need not be last; a Dask-backed input stays lazy and gives the same answer."""
    from kdtheory.metrics.logits import predictions

    values = np.array([[1.0, 3.0, 3.0], [np.nan, 5.0, 0.0], [2.0, 2.0, 2.0], [0.0, -1.0, 4.0]])
    x = xr.DataArray(values, dims=("test_sample", "class"))
    pred, missing = predictions(x)
    assert pred.dims == missing.dims == ("test_sample",)
    np.testing.assert_array_equal(missing.values, [False, True, False, False])
    valid = ~missing.values
    np.testing.assert_array_equal(pred.values[valid], [1, 0, 2])
    pred_t, missing_t = predictions(x.transpose("class", "test_sample"))
    np.testing.assert_array_equal(pred_t.values[valid], pred.values[valid])
    np.testing.assert_array_equal(missing_t.values, missing.values)
    pytest.importorskip("dask")
    pred_l, missing_l = predictions(x.chunk({"test_sample": 2}))
    assert pred_l.chunks is not None  # not computed yet
    np.testing.assert_array_equal(pred_l.values[valid], pred.values[valid])
    np.testing.assert_array_equal(missing_l.values, missing.values)


def test_agreement_per_sample(tiny):
    student, teacher, _ = tiny
    agree = agreement(student, teacher)
    assert agree.dims == ("arm", "test_sample")
    np.testing.assert_array_equal(agree.sel({"arm": "label"}).values, [1.0, 0.0, 1.0, 1.0])
    assert np.all(np.isnan(agree.sel({"arm": "kd"}).values))


def test_fidelity_with_broadcast_mask():
    # student: method (1) x fraction (2) x seed (1) x train_sample (4) x class (2)
    s = np.zeros((1, 2, 1, 4, 2))
    s[..., 0] = [[1, 1, -1, -1]]  # predicts 0, 0, 1, 1 in both fractions
    s[0, 1, 0, :, 0] = [1, -1, -1, -1]  # second fraction: 0, 1, 1, 1
    student = xr.DataArray(
        s,
        dims=("arm", "fraction", "seed", "train_sample", "class"),
        coords={"arm": ["kd"], "fraction": [0.5, 1.0], "seed": [0], "train_sample": range(4)},
    )
    teacher = xr.DataArray(
        [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]],  # predicts 0, 0, 0, 1
        dims=("train_sample", "class"),
        coords={"train_sample": range(4)},
    )
    in_train = xr.DataArray(
        np.array([[[True, True, False, False]], [[True, True, True, True]]]),
        dims=("fraction", "seed", "train_sample"),
        coords={"fraction": [0.5, 1.0], "seed": [0], "train_sample": range(4)},
    )
    fid = fidelity(student, teacher, "train_sample", mask=in_train)
    assert set(fid.dims) == {"arm", "fraction", "seed"}
    assert fid.sel({"arm": "kd", "fraction": 0.5, "seed": 0}).item() == pytest.approx(1.0)
    assert fid.sel({"arm": "kd", "fraction": 1.0, "seed": 0}).item() == pytest.approx(0.5)
    unseen = fidelity(student, teacher, "train_sample", mask=~in_train)
    assert unseen.sel({"arm": "kd", "fraction": 0.5, "seed": 0}).item() == pytest.approx(0.5)
    assert np.isnan(unseen.sel({"arm": "kd", "fraction": 1.0, "seed": 0}).item())  # selects nothing
    # a mask without the sample dim selects whole cells
    per_cell = in_train.any("train_sample") & (in_train.fraction < 0.75)
    cells = fidelity(student, teacher, "train_sample", mask=per_cell)
    assert cells.dims == ("arm", "fraction", "seed")
    assert cells.sel(fraction=0.5).item() == pytest.approx(0.75)
    assert np.isnan(cells.sel(fraction=1.0).item())
    everything = fidelity(student, teacher, "train_sample")
    assert everything.sel(fraction=0.5).item() == pytest.approx(0.75)
    # a student cell with NaN logits -> NaN fidelity
    student[0, 0, 0] = np.nan
    assert np.isnan(fidelity(student, teacher, "train_sample", mask=in_train)[0, 0, 0].item())


def test_kl_divergence_hand_made():
    p = np.array([0.5, 0.25, 0.25])
    q = np.array([0.25, 0.5, 0.25])
    expected = np.sum(p * np.log(p / q))
    teacher = da(np.log([p, q]), ("sample", "class"))
    student = da(np.log([[q, q], [q, p]]) + 7.0, ("arm", "sample", "class"))  # shift-free
    kl = kl_divergence(teacher, student, "sample")
    assert kl.dims == ("arm",)
    # method 0: KL(p||q) on sample 0, KL(q||q)=0 on sample 1
    assert kl[0].item() == pytest.approx(expected / 2)
    # method 1: KL(p||q) and KL(q||p)
    assert kl[1].item() == pytest.approx((expected + np.sum(q * np.log(q / p))) / 2)
    mask = xr.DataArray([True, False], dims="sample")
    assert kl_divergence(teacher, student, "sample", mask=mask)[0].item() == pytest.approx(expected)
    none = xr.DataArray([False, False], dims="sample")
    assert np.all(np.isnan(kl_divergence(teacher, student, "sample", mask=none).values))
    # temperature: KL of the tempered distributions, no T**2 factor
    t = 3.0
    pt = scipy.special.softmax(np.log(p) / t)
    qt = scipy.special.softmax(np.log(q) / t)
    kl_t = kl_divergence(teacher, student, "sample", mask=mask, temperature=t)
    assert kl_t[0].item() == pytest.approx(np.sum(pt * np.log(pt / qt)))
    # identical distributions -> 0; zero teacher probability handled; NaN student -> NaN
    assert kl_divergence(teacher, teacher, "sample").item() == pytest.approx(0.0, abs=1e-12)
    hard = da([[0.0, -np.inf, 0.0]], ("sample", "class"))
    assert np.isfinite(kl_divergence(hard, da([[1.0, 2.0, 3.0]], ("sample", "class")), "sample"))
    student[1, 0] = np.nan
    out = kl_divergence(teacher, student, "sample")
    assert np.isfinite(out[0].item()) and np.isnan(out[1].item())


# ---------------------------------------------------------------------------------------------
# wrong-class rank correlation
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def ranked():
    rng = np.random.default_rng(3)
    n, k = 30, 6
    teacher = da(rng.standard_normal((n, k)), ("sample", "class"))
    labels = xr.DataArray(rng.integers(0, k, n), dims="sample")
    return teacher, labels


def test_rank_correlation_monotone_is_one(ranked):
    teacher, labels = ranked
    student = np.exp(2.0 * teacher) + 1.0  # strictly increasing transform
    r = wrong_class_rank_correlation(student, teacher, labels, "sample")
    assert r.item() == pytest.approx(1.0)


def test_rank_correlation_reversed_is_minus_one_and_ignores_true_class(ranked):
    teacher, labels = ranked
    student = -teacher.copy()
    # put the true class on top for the student too (reversing only the wrong classes)
    onehot = xr.DataArray(np.eye(teacher.sizes["class"])[labels.values], dims=("sample", "class"))
    student = student + 100.0 * onehot
    assert wrong_class_rank_correlation(student, teacher, labels, "sample").item() == (
        pytest.approx(-1.0)
    )
    # changing the true-class logit (anything, even below every other class) changes nothing
    rng = np.random.default_rng(4)
    base = teacher + 0.7 * da(rng.standard_normal(teacher.shape), teacher.dims)
    r0 = wrong_class_rank_correlation(base, teacher, labels, "sample").item()
    for shift in (-50.0, 3.0, 50.0):
        moved = base + shift * onehot
        r1 = wrong_class_rank_correlation(moved, teacher, labels, "sample").item()
        assert r1 == pytest.approx(r0)
    assert -1.0 < r0 < 1.0


def test_rank_correlation_matches_scipy_loop_with_ties_and_exclusions():
    rng = np.random.default_rng(5)
    n, k = 25, 5
    t = rng.integers(0, 3, (n, k)).astype(float)  # many ties
    s = rng.integers(0, 3, (2, n, k)).astype(float)
    y = rng.integers(0, k, n)
    t[0] = 1.0  # constant teacher row -> sample 0 excluded
    s[1, 1] = 2.0  # constant student row in method 1 -> excluded there
    student = da(s, ("arm", "sample", "class"))
    teacher = da(t, ("sample", "class"))
    labels = xr.DataArray(y, dims="sample")
    per = wrong_class_rank_correlation_per_sample(student, teacher, labels, "sample")
    assert per.dims == ("arm", "sample")
    expected = np.full((2, n), np.nan)
    for m in range(2):
        for i in range(n):
            keep = np.arange(k) != y[i]
            a, b = s[m, i, keep], t[i, keep]
            if np.ptp(a) > 0 and np.ptp(b) > 0:
                expected[m, i] = scipy.stats.spearmanr(a, b).statistic
    np.testing.assert_allclose(per.values, expected, atol=1e-12)
    assert np.isnan(per[0, 0]) and np.isnan(per[1, 1])
    mean = wrong_class_rank_correlation(student, teacher, labels, "sample")
    np.testing.assert_allclose(mean.values, np.nanmean(expected, axis=1), atol=1e-12)
    # mask restricts the samples; a NaN cell is NaN
    mask = xr.DataArray(np.arange(n) < 10, dims="sample")
    masked = wrong_class_rank_correlation(student, teacher, labels, "sample", mask=mask)
    np.testing.assert_allclose(masked.values, np.nanmean(expected[:, :10], axis=1), atol=1e-12)
    student[1] = np.nan
    out = wrong_class_rank_correlation(student, teacher, labels, "sample")
    assert np.isfinite(out[0].item()) and np.isnan(out[1].item())


# ---------------------------------------------------------------------------------------------
# neural collapse
# ---------------------------------------------------------------------------------------------


def test_class_means_marks_missing_classes():
    h = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    y = np.array([0, 0, 2])
    m = class_means(h, y, 4)
    np.testing.assert_allclose(m[0], [2.0, 1.0])
    np.testing.assert_allclose(m[2], [5.0, 5.0])
    assert np.all(np.isnan(m[[1, 3]]))


def test_perfect_simplex_etf_is_fully_collapsed():
    rng = np.random.default_rng(6)
    k, f = 5, 8
    means = simplex_etf(k, f, rng)
    y = np.repeat(np.arange(k), 4)
    offset = rng.standard_normal(f)  # a global mean away from the origin
    h = means[y] + offset
    nc = neural_collapse(h, y, weight=means, bias=-means @ offset)
    assert set(nc) == set(metrics.NC_KEYS)
    assert nc["nc1"] == pytest.approx(0.0, abs=1e-12)
    assert nc["nc2_equinorm"] == pytest.approx(0.0, abs=1e-12)
    assert nc["nc2_equiangular"] == pytest.approx(0.0, abs=1e-10)
    assert nc["nc2_max_angle"] == pytest.approx(0.0, abs=1e-10)
    assert nc["nc3"] == pytest.approx(0.0, abs=1e-10)
    assert nc["nc4"] == 0.0
    # scaling the classifier does not change self-duality
    assert neural_collapse(h, y, weight=3.0 * means, bias=-3.0 * means @ offset)[
        "nc3"
    ] == pytest.approx(0.0, abs=1e-10)
    # without a classifier NC3/NC4 are NaN, the rest unchanged
    no_w = neural_collapse(h, y)
    assert np.isnan(no_w["nc3"]) and np.isnan(no_w["nc4"])
    assert no_w["nc1"] == pytest.approx(0.0, abs=1e-12)


def test_nc1_grows_with_within_class_noise():
    rng = np.random.default_rng(7)
    k, f, per = 4, 6, 20
    means = simplex_etf(k, f, rng)
    y = np.repeat(np.arange(k), per)
    noise = rng.standard_normal((y.size, f))
    noise -= class_means(noise, y, k)[y]  # zero-mean per class: class means stay exact
    scales = [0.01, 0.1, 0.3, 1.0, 3.0]
    nc1 = [neural_collapse(means[y] + s * noise, y)["nc1"] for s in scales]
    assert np.all(np.diff(nc1) > 0)
    # exactly quadratic in the noise scale when the class means are untouched
    np.testing.assert_allclose(np.array(nc1) / np.square(scales), nc1[-1] / 9.0, rtol=1e-8)
    # also monotone for raw (uncentred) noise
    raw = rng.standard_normal((y.size, f))
    nc1_raw = [neural_collapse(means[y] + s * raw, y)["nc1"] for s in (0.01, 0.05, 0.1, 0.2)]
    assert np.all(np.diff(nc1_raw) > 0)


@pytest.mark.parametrize(("k", "f", "n"), [(3, 5, 40), (4, 10, 60), (6, 3, 50)])
def test_nc1_matches_slow_reference(k, f, n):
    rng = np.random.default_rng(k * 100 + f)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    h = rng.standard_normal((n, f)) + 2.0 * rng.standard_normal((k, f))[y]
    assert neural_collapse(h, y)["nc1"] == pytest.approx(nc1_reference(h, y), rel=1e-8)


def test_nc2_unequal_norms_and_angles():
    # centred class means (zero sum) with known norms 2, 1, sqrt(5)
    m = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-2.0, -1.0, 0.0]])
    y = np.array([0, 1, 2, 0, 1, 2])
    shift = np.array([1.0, -2.0, 0.5])
    nc = neural_collapse(m[y] + shift, y)
    norms = np.array([2.0, 1.0, np.sqrt(5.0)])
    assert nc["nc2_equinorm"] == pytest.approx(norms.std() / norms.mean())
    cos = np.array([0.0, -2.0 / np.sqrt(5.0), -1.0 / np.sqrt(5.0)])  # (0,1), (0,2), (1,2)
    assert nc["nc2_equiangular"] == pytest.approx(cos.std())
    assert nc["nc2_max_angle"] == pytest.approx(np.mean(np.abs(cos + 0.5)))
    assert nc["nc1"] == pytest.approx(0.0, abs=1e-12)
    assert nc["nc2_equinorm"] > 0.1


def test_nc4_classifier_disagreeing_on_known_samples():
    rng = np.random.default_rng(8)
    k = 3
    means = simplex_etf(k, 4, rng)
    y = np.array([0, 0, 1, 1, 2, 2])
    h = means[y]
    w = means[[1, 0, 2]]  # swaps classes 0 and 1: wrong on the four samples of classes 0, 1
    nc = neural_collapse(h, y, weight=w)
    assert nc["nc4"] == pytest.approx(4 / 6)
    assert nc["nc3"] > 0.5
    # a bias that overrides class 2 everywhere: every sample not of class 2 disagrees
    nc_b = neural_collapse(h, y, weight=means, bias=np.array([0.0, 0.0, 100.0]))
    assert nc_b["nc4"] == pytest.approx(4 / 6)
    nan_w = neural_collapse(h, y, weight=np.full_like(means, np.nan))
    assert np.isnan(nan_w["nc3"]) and np.isnan(nan_w["nc4"])


def test_missing_classes_and_degenerate_inputs():
    rng = np.random.default_rng(9)
    k_total = 6
    present = [0, 2, 5]
    means = np.zeros((k_total, 7))
    means[present] = simplex_etf(3, 7, rng)
    y = np.repeat(present, 3)
    nc = neural_collapse(means[y], y, weight=means, num_classes=k_total)
    for key in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc2_max_angle", "nc3", "nc4"):
        assert nc[key] == pytest.approx(0.0, abs=1e-10), key
    one = neural_collapse(means[[0, 0, 0]], np.array([0, 0, 0]), weight=means)
    assert all(np.isnan(v) for v in one.values())
    bad = means[y].copy()
    bad[0, 0] = np.nan
    assert all(np.isnan(v) for v in neural_collapse(bad, y, weight=means).values())


# ---------------------------------------------------------------------------------------------
# linear CKA
# ---------------------------------------------------------------------------------------------


def cka_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """Gram-matrix form: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    kc, lc = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float(np.sum(kc * lc) / np.sqrt(np.sum(kc * kc) * np.sum(lc * lc)))


def test_linear_cka_invariances_and_independence():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6))
    assert linear_cka(x, x @ orthogonal(6, rng) * 3.7) == pytest.approx(1.0)
    y = rng.standard_normal((200, 4))
    assert linear_cka(x, y) == pytest.approx(linear_cka(5.0 * x + 2.0, 0.1 * y))
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    big_x = rng.standard_normal((20000, 5))
    big_y = rng.standard_normal((20000, 5))
    assert linear_cka(big_x, big_y) < 0.01
    assert np.isnan(linear_cka(np.ones((10, 2)), rng.standard_normal((10, 3))))
    z = x.copy()
    z[3, 1] = np.nan
    assert np.isnan(linear_cka(z, x))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_cka_equals_hsic_formula(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((50, 7))
    y = x[:, :3] @ rng.standard_normal((3, 9)) + 0.5 * rng.standard_normal((50, 9))
    assert linear_cka(x, y) == pytest.approx(cka_hsic(x, y), rel=1e-10)


# ---------------------------------------------------------------------------------------------
# collapse_table
# ---------------------------------------------------------------------------------------------


def make_experiment(with_bias: bool = True) -> tuple[xr.Dataset, dict]:
    """2 methods x 2 fractions x 2 seeds; trained feature rows sit exactly on a simplex ETF,
    unseen rows are noisy; cell (kd, 1.0, 1) is untrained (NaN)."""
    rng = np.random.default_rng(11)
    k, f, tf = 3, 5, 4
    n_train = 40
    rows = np.arange(0, n_train, 2)  # feature rows are every second training sample
    n_rows = rows.size
    train_labels = np.arange(n_train) % k
    y = train_labels[rows]
    methods, fractions, seeds = ["label", "kd"], [0.5, 1.0], [0, 1]
    in_train = np.zeros((2, 2, n_train), dtype=bool)
    for s in seeds:
        order = np.random.default_rng(100 + s).permutation(n_train)
        in_train[1, s, order[:30]] = True
        in_train[0, s, order[:15]] = True  # nested inside the larger fraction
    means = simplex_etf(k, f, rng)
    features = np.empty((2, 2, 2, n_rows, f))
    weight = np.empty((2, 2, 2, k, f))
    for i, j, s in np.ndindex(2, 2, 2):
        trained = in_train[j, s, rows]
        h = means[y] + 0.8 * rng.standard_normal((n_rows, f))
        h[trained] = means[y[trained]]
        features[i, j, s] = h
        weight[i, j, s] = means
    features[1, 1, 1] = np.nan
    weight[1, 1, 1] = np.nan
    teacher_features = rng.standard_normal((n_rows, tf))
    data_vars = {
        "features": (("arm", "fraction", "seed", "feature_sample", "feature"), features),
        "classifier_weight": (("arm", "fraction", "seed", "class", "feature"), weight),
        "teacher_features": (("feature_sample", "teacher_feature"), teacher_features),
        "train_labels": (("train_sample",), train_labels),
        "in_train": (("fraction", "seed", "train_sample"), in_train),
    }
    if with_bias:
        data_vars["classifier_bias"] = (
            ("arm", "fraction", "seed", "class"),
            np.zeros((2,) * 3 + (k,)),
        )
    ds = xr.Dataset(
        data_vars,
        coords={
            "arm": methods,
            "objective": ("arm", ["label", "kd"]),
            "fraction": fractions,
            "n_train": ("fraction", [20, 40]),
            "seed": seeds,
            "train_sample": np.arange(n_train),
            "feature_sample": rows,
            "class": np.arange(k),
        },
        attrs={"schema": "kdtheory-runs/2", "experiment": "toy"},
    )
    return ds, {"rows": rows, "y": y, "in_train": in_train, "teacher": teacher_features}


@pytest.mark.parametrize("with_bias", [True, False])
def test_collapse_table_trained_vs_unseen(with_bias):
    ds, info = make_experiment(with_bias)
    table = collapse_table(ds)
    for name in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc2_max_angle", "nc3", "nc4", "cka"):
        assert table[name].dims == ("arm", "fraction", "seed", "subset"), name
    assert list(table.subset.values) == ["trained", "unseen"]
    assert list(table.objective.values) == ["label", "kd"]
    assert list(table.n_train.values) == [20, 40]
    assert table.attrs["experiment"] == "toy"

    mask = info["in_train"][:, :, info["rows"]]  # (fraction, seed, feature_sample)
    np.testing.assert_array_equal(
        table.n_samples.sel(subset="trained").values, np.broadcast_to(mask.sum(-1), (2, 2, 2))
    )
    np.testing.assert_array_equal(
        table.n_samples.sel(subset="unseen").values,
        np.broadcast_to((~mask).sum(-1), (2, 2, 2)),
    )
    trained = table.sel(subset="trained")
    unseen = table.sel(subset="unseen")
    live = np.ones((2, 2, 2), dtype=bool)
    live[1, 1, 1] = False
    # trained rows are perfectly collapsed onto the ETF the classifier uses
    for name in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc2_max_angle", "nc3", "nc4"):
        np.testing.assert_allclose(trained[name].values[live], 0.0, atol=1e-8, err_msg=name)
    assert np.all(unseen.nc1.values[live] > 0.05)
    assert np.all(unseen.nc3.values[live] > 0)
    # the untrained cell is NaN everywhere
    for name in ("nc1", "nc2_equinorm", "nc3", "nc4", "cka"):
        assert np.all(np.isnan(table[name].sel({"arm": "kd", "fraction": 1.0, "seed": 1}).values))
    # CKA of one cell equals linear_cka on exactly the selected rows
    sel = mask[0, 1]
    h = ds.features.sel({"arm": "label", "fraction": 0.5, "seed": 1}).values
    assert trained.cka.sel({"arm": "label", "fraction": 0.5, "seed": 1}).item() == pytest.approx(
        linear_cka(h[sel], info["teacher"][sel])
    )
    assert unseen.cka.sel({"arm": "label", "fraction": 0.5, "seed": 1}).item() == pytest.approx(
        linear_cka(h[~sel], info["teacher"][~sel])
    )


def test_collapse_table_small_subsets_and_missing_variables():
    ds, info = make_experiment()
    in_train = ds.in_train.values.copy()
    in_train[0, 0] = False
    rows = info["rows"]
    in_train[0, 0, rows[:2]] = True  # only 2 trained feature rows -> NaN
    in_train[0, 1] = False
    in_train[0, 1, rows[info["y"] == 0]] = True  # one class only -> NaN
    ds["in_train"] = (("fraction", "seed", "train_sample"), in_train)
    table = collapse_table(ds)
    assert np.all(np.isnan(table.nc1.sel(fraction=0.5, subset="trained").values))
    assert np.all(np.isnan(table.cka.sel(fraction=0.5, subset="trained").values))
    assert np.all(table.n_classes.sel(fraction=0.5, seed=1, subset="trained").values == 1)
    assert np.all(np.isfinite(table.nc1.sel(fraction=0.5, subset="unseen").values))
    with pytest.raises(MissingRequirementError, match="teacher_features"):
        collapse_table(ds.drop_vars("teacher_features"))


@pytest.mark.parametrize("shape", [(6, 10), (3, 4, 7), (2, 1)])
def test_average_ranks_equal_scipy_rankdata_with_ties(shape):
    """numpy ranks used by the rank correlation == scipy's "average" ranks, ties included."""
    from scipy.stats import rankdata

    from kdtheory.metrics.logits import average_ranks

    rng = np.random.default_rng(sum(shape))
    tied = rng.integers(0, 3, size=shape).astype(float)  # many ties
    distinct = rng.normal(size=shape)
    distinct[..., 0] = np.inf  # the true class pushed last, as the metric does
    for x in (tied, distinct):
        np.testing.assert_array_equal(average_ranks(x), rankdata(x, axis=-1))


def test_analysis_runs_on_one_blas_thread_whatever_the_process_allows():
    """Hypothesis tests and feature metrics use one BLAS thread (kdtheory._blas): faster on
    their small matrices, and numbers that do not depend on the machine's core count."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from kdtheory._blas import single_blas_thread, with_single_blas_thread

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    if not blas_threads():
        pytest.skip("numpy is linked to no BLAS threadpoolctl can see")
    with threadpool_limits(limits=2, user_api="blas"):
        outside = blas_threads()
        with single_blas_thread():
            assert set(blas_threads()) == {1}
        assert blas_threads() == outside  # restored on exit
        assert set(with_single_blas_thread(blas_threads)()) == {1}
    from kdtheory.hypothesis.template import PooledHypothesis
    from kdtheory.metrics.features import collapse_table

    for func in (collapse_table, PooledHypothesis.test):
        assert getattr(func, "__wrapped__", None) is not None, func  # decorated


def test_nested_single_blas_thread_scans_again_only_after_an_import(monkeypatch):
    """A nested block keeps the outer limit without threadpoolctl's library scan, unless a
    module was imported since the last scan; every block restores what it found."""
    import types

    import threadpoolctl

    from kdtheory import _blas

    scans: list[int] = []
    real = threadpoolctl.threadpool_limits

    def counting(*args, **kwargs):
        scans.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", counting)
    with _blas.single_blas_thread():
        with _blas.single_blas_thread():
            with _blas.single_blas_thread():
                pass
        assert len(scans) == 1
        monkeypatch.setitem(sys.modules, "kdtheory_test_new_module", types.ModuleType("x"))
        with _blas.single_blas_thread():
            assert len(scans) == 2  # a new module may have loaded another BLAS
            with _blas.single_blas_thread():
                pass
        assert len(scans) == 2
    assert _blas._open == []
    with pytest.raises(RuntimeError):
        with _blas.single_blas_thread():
            with _blas.single_blas_thread():
                raise RuntimeError("inside")
    assert _blas._open == []


def test_rank_correlation_reuses_a_result_for_equal_inputs_only(monkeypatch):
    """The memo keys inputs by content: an equal copy is not recomputed, a changed one is."""
    from kdtheory.metrics import logits

    calls = []
    real = logits._wrong_class_spearman_uncached
    monkeypatch.setattr(
        logits, "_wrong_class_spearman_uncached", lambda *a: calls.append(1) or real(*a)
    )
    monkeypatch.setattr(logits, "_SPEARMAN_MEMO", type(logits._SPEARMAN_MEMO)())
    rng = np.random.default_rng(3)
    student, teacher = rng.normal(size=(2, 40, 6)), rng.normal(size=(40, 6))
    labels = rng.integers(0, 6, size=40)
    first = logits._wrong_class_spearman_np(student, teacher, labels)
    again = logits._wrong_class_spearman_np(student.copy(), teacher.copy(), labels.copy())
    np.testing.assert_array_equal(first, again)
    assert len(calls) == 1
    again[0, 0] = 99.0  # a caller's change never reaches the memo
    np.testing.assert_array_equal(logits._wrong_class_spearman_np(student, teacher, labels), first)
    student[1, 3] = -student[1, 3]  # reverses that row's ranking
    changed = logits._wrong_class_spearman_np(student, teacher, labels)
    assert len(calls) == 2 and not np.array_equal(changed, first)
