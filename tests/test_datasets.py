"""Tests of the built-in datasets."""

from __future__ import annotations

import random

import numpy as np
import pytest

from kdtheory.errors import KDTheoryError, SpecError
from kdtheory.plugin.manager import get_registries
from kdtheory.plugin.specs import LoadedDataset, parse_spec, resolve_options
from kdtheory.plugins import datasets as D


def load(text: str) -> LoadedDataset:
    """Load a dataset from a spec string through the registry, as the CLI does."""
    name, raw = parse_spec(text)
    spec = get_registries().datasets.get(name)
    return spec.load(**resolve_options("dataset", name, spec.options, raw))


def check_common(ds: LoadedDataset, input_shape: tuple[int, ...], num_classes: int) -> None:
    assert ds.input_shape == input_shape
    assert ds.x_test.shape[1:] == input_shape
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test)
    assert ds.num_classes == num_classes
    assert ds.y_train.min() >= 0 and ds.y_train.max() == num_classes - 1
    assert set(np.unique(ds.y_test)) <= set(np.unique(ds.y_train))
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_test).all()


def test_registered():
    names = get_registries().datasets.names()
    assert set(names) >= {"mnist1d", "digits", "mnist-5k", "synthetic", "npz"}


def test_mnist1d():
    state = np.random.get_state()
    py_state = random.getstate()
    ds = load("mnist1d")
    check_common(ds, (40,), 10)
    assert len(ds.x_train) == 4000 and len(ds.x_test) == 1000
    assert abs(ds.x_train.mean()) < 1e-4 and ds.x_train.std() == pytest.approx(1.0, abs=1e-3)
    assert ds.options == {"num_samples": 5000, "seed": 42}
    # the generator's global reseeding does not leak out
    assert np.array_equal(np.random.get_state()[1], state[1])
    assert random.getstate() == py_state
    again = load("mnist1d")
    assert np.array_equal(ds.x_train, again.x_train) and np.array_equal(ds.y_test, again.y_test)
    # returned arrays are copies: mutating one load does not affect the next
    again.x_train[:] = 0
    assert not np.array_equal(load("mnist1d").x_train, again.x_train)


def test_mnist1d_options():
    small = load("mnist1d:num_samples=200,seed=1")
    assert len(small.x_train) == 160 and len(small.x_test) == 40
    other = load("mnist1d:num_samples=200,seed=2")
    assert not np.array_equal(small.x_train, other.x_train)
    with pytest.raises(SpecError, match="num_samples"):
        load("mnist1d:num_samples=10")


def test_digits():
    ds = load("digits")
    check_common(ds, (1, 8, 8), 10)
    assert len(ds.x_train) == 1437 and len(ds.x_test) == 360
    assert abs(ds.x_train.mean()) < 1e-4 and ds.x_train.std() == pytest.approx(1.0, abs=1e-3)
    # stratified: every class has 35-37 test samples
    counts = np.bincount(ds.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    again = load("digits")
    assert np.array_equal(ds.x_test, again.x_test)


def test_mnist5k():
    ds = load("mnist-5k")
    check_common(ds, (1, 28, 28), 10)
    assert len(ds.x_train) == 4000 and len(ds.x_test) == 1000
    assert np.bincount(ds.y_test).tolist() == [100] * 10
    assert abs(ds.x_train.mean()) < 1e-4 and ds.x_train.std() == pytest.approx(1.0, abs=1e-3)
    again = load("mnist-5k")
    assert np.array_equal(ds.x_train, again.x_train) and np.array_equal(ds.y_train, again.y_train)


def test_synthetic():
    ds = load("synthetic:n_train=300,n_test=100,num_classes=4,dim=7,seed=3")
    check_common(ds, (7,), 4)
    assert len(ds.x_train) == 300 and len(ds.x_test) == 100
    np.testing.assert_allclose(ds.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1.0, atol=1e-4)
    same = load("synthetic:n_train=300,n_test=100,num_classes=4,dim=7,seed=3")
    assert np.array_equal(ds.x_train, same.x_train) and np.array_equal(ds.y_test, same.y_test)
    other = load("synthetic:n_train=300,n_test=100,num_classes=4,dim=7,seed=4")
    assert not np.array_equal(ds.x_train, other.x_train)


def test_synthetic_is_learnable():
    """Well-separated classes: the nearest class mean beats chance by far."""
    ds = load("synthetic:n_train=500,n_test=300,num_classes=3,dim=5,clusters=1,separation=3")
    means = np.stack([ds.x_train[ds.y_train == k].mean(0) for k in range(3)])
    pred = np.argmin(((ds.x_test[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == ds.y_test).mean() > 0.8


def test_bad_options():
    with pytest.raises(SpecError, match="Accepted options"):
        load("synthetic:size=3")
    with pytest.raises(SpecError, match="bad value"):
        load("synthetic:num_classes=1")


def test_standardize_modes():
    rng = np.random.default_rng(0)
    xtr = rng.normal(5, 3, size=(50, 4))
    xte = rng.normal(5, 3, size=(20, 4))
    g_tr, g_te = D.standardize(xtr, xte, "global")
    assert g_tr.mean() == pytest.approx(0, abs=1e-5) and g_tr.std() == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(g_te, (xte - xtr.mean()) / xtr.std(), rtol=1e-5)
    f_tr, _ = D.standardize(xtr, xte, "feature")
    np.testing.assert_allclose(f_tr.mean(0), 0, atol=1e-5)
    n_tr, _ = D.standardize(xtr, xte, "none")
    np.testing.assert_allclose(n_tr, xtr, rtol=1e-6)
    const_tr, _ = D.standardize(np.ones((5, 2)), np.ones((2, 2)), "feature")
    assert np.isfinite(const_tr).all()


# --------------------------------------------------------------------------- npz


def write_npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = {
        "X_train": rng.normal(2.0, 4.0, size=(30, 3, 2)),
        "y_train": np.arange(30) % 3,
        "X_test": rng.normal(2.0, 4.0, size=(9, 3, 2)),
        "y_test": np.arange(9) % 3,
    }
    base.update(arrays)
    base = {k: v for k, v in base.items() if v is not None}
    np.savez(path, **base)
    return path


def test_npz_happy_path(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    ds = load(f"npz:path={path}")
    check_common(ds, (3, 2), 3)
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    assert ds.options["path"] == str(path)
    raw = np.load(path)
    np.testing.assert_array_equal(ds.y_test, raw["y_test"])
    glob = load(f"npz:path={path},standardize=global")
    assert abs(glob.x_train.mean()) < 1e-5
    none = load(f"npz:path={path},standardize=none")
    np.testing.assert_allclose(none.x_train, raw["X_train"].astype(np.float32))


def test_npz_needs_path():
    with pytest.raises(SpecError, match="needs the option 'path'"):
        load("npz")


def test_npz_bad_standardize(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    with pytest.raises(SpecError, match="standardize"):
        load(f"npz:path={path},standardize=minmax")


def test_npz_missing_file(tmp_path):
    with pytest.raises(D.DatasetError, match="no such file") as info:
        load(f"npz:path={tmp_path / 'nope.npz'}")
    assert "nope.npz" in str(info.value)
    assert isinstance(info.value, KDTheoryError)


def test_npz_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_text("hello")
    with pytest.raises(D.DatasetError, match="cannot be read"):
        load(f"npz:path={path}")


def test_npz_missing_keys(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_test=None, X_test=None, X_val=np.zeros((2, 2)))
    with pytest.raises(D.DatasetError) as info:
        load(f"npz:path={path}")
    msg = str(info.value)
    assert "d.npz" in msg and "missing array(s) X_test, y_test" in msg
    assert "X_train, X_val, y_train" in msg


def test_npz_sample_count_mismatch(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_train=np.arange(29) % 3)
    with pytest.raises(D.DatasetError, match="X_train has 30 samples but y_train has 29"):
        load(f"npz:path={path}")


def test_npz_feature_shape_mismatch(tmp_path):
    path = write_npz(tmp_path / "d.npz", X_test=np.zeros((9, 6)))
    with pytest.raises(D.DatasetError, match=r"sample shape \(3, 2\) but X_test has \(6,\)"):
        load(f"npz:path={path}")


def test_npz_float_labels(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_train=(np.arange(30) % 3) + 0.5)
    with pytest.raises(D.DatasetError, match="y_train has dtype float64"):
        load(f"npz:path={path}")


def test_npz_negative_labels(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_test=np.arange(9) % 3 - 1)
    with pytest.raises(D.DatasetError, match="y_test holds negative labels"):
        load(f"npz:path={path}")


def test_npz_unseen_test_labels(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_test=np.array([0, 1, 2, 3, 4, 0, 1, 2, 0]))
    with pytest.raises(D.DatasetError, match=r"label\(s\) 3, 4 that never occur in y_train"):
        load(f"npz:path={path}")


def test_npz_bad_x(tmp_path):
    path = write_npz(tmp_path / "d.npz", X_train=np.arange(30.0))
    with pytest.raises(D.DatasetError, match="X_train has shape"):
        load(f"npz:path={path}")
    x = np.zeros((30, 3, 2))
    x[0, 0, 0] = np.nan
    path = write_npz(tmp_path / "e.npz", X_train=x)
    with pytest.raises(D.DatasetError, match="NaN"):
        load(f"npz:path={path}")


def test_npz_num_classes_from_max_label(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_train=np.arange(30) % 5, y_test=np.arange(9) % 5)
    assert load(f"npz:path={path}").num_classes == 5
