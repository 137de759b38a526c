"""Tests of the synthetic run-store generator: schema v1 and planted truths visible in raw data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdtheory.metrics import (
    accuracy,
    collapse_table,
    fidelity,
    wrong_class_rank_correlation,
)
from kdtheory.store.schema import validate_experiment
from kdtheory.testing.synthetic import (
    METHODS,
    Truth,
    expected_accuracy,
    make_experiment,
    make_store,
)


@pytest.fixture(scope="module")
def ds():
    return make_experiment(seed=7)


def _acc(ds, method):
    a = accuracy(ds["test_logits"].sel({"arm": method}), ds["test_labels"], "test_sample")
    return 100 * a.transpose("fraction", "seed").values


# ---------------------------------------------------------------------------------- schema
def test_schema_v1_fields(ds):
    validate_experiment(ds, "synthetic")
    assert ds.attrs["schema"] == "kdtheory-runs/2"
    for key in ("experiment", "dataset", "teacher", "student", "recipe", "kdtheory_version"):
        assert ds.attrs[key]
    assert ds.attrs["storage_dtype"] == "float32"
    json.loads(ds.attrs["recipe"])
    truth = json.loads(ds.attrs["synthetic_truth"])
    assert truth["kd_gain_slope"] == Truth().kd_gain_slope
    assert list(ds["arm"].values) == ["label", "kd-T4", "ls", "kd-shuffled-T4"]
    assert list(ds["objective"].values) == ["label", "kd", "ls", "kd-shuffled"]
    temps = ds["temperature"].values
    assert np.isnan(temps[0]) and temps[1] == 4.0 and np.isnan(temps[2]) and temps[3] == 4.0
    assert np.all(np.isnan(ds["smoothing"].values))  # ls: matched per cell
    eff = ds["effective_smoothing"].sel({"arm": "ls"}).values
    assert np.all((eff > 0) & (eff < 1))
    assert np.all(np.isnan(ds["effective_smoothing"].sel({"arm": "label"}).values))
    for name in ("test_logits", "train_logits", "features", "classifier_weight"):
        assert ds[name].dtype == np.float32
    assert ds["in_train"].dtype == bool
    assert np.issubdtype(ds["test_labels"].dtype, np.integer)
    assert ds.sizes["class"] == 10 and ds.sizes["seed"] == 5 and ds.sizes["fraction"] == 6


def test_n_train_and_nested_subsets(ds):
    n = ds.sizes["train_sample"]
    fr = ds["fraction"].values
    assert np.all(np.diff(fr) > 0)
    np.testing.assert_array_equal(ds["n_train"].values, np.round(fr * n).astype(int))
    in_train = ds["in_train"].transpose("fraction", "seed", "train_sample").values
    np.testing.assert_array_equal(
        in_train.sum(-1), np.repeat(ds["n_train"].values[:, None], ds.sizes["seed"], 1)
    )
    assert not np.any(in_train[:-1] & ~in_train[1:])  # nested
    assert in_train[-1].all()  # fraction 1.0 is the whole train set
    # class-balanced subsets at the smallest fraction
    labels = ds["train_labels"].values
    for s in range(ds.sizes["seed"]):
        counts = np.bincount(labels[in_train[0, s]], minlength=10)
        assert counts.max() - counts.min() <= 1
    # seeds draw different subsets
    assert not np.array_equal(in_train[0, 0], in_train[0, 1])


def test_feature_sample_holds_every_smallest_subset(ds):
    rows = ds["feature_sample"].values
    in_train = ds["in_train"].isel(fraction=0).transpose("seed", "train_sample").values
    for s in range(ds.sizes["seed"]):
        assert set(np.flatnonzero(in_train[s])) <= set(rows.tolist())
    assert rows.size >= 120 and np.all(np.diff(rows) > 0)
    # rows not trained on exist for every cell below fraction 1
    sub = ds["in_train"].sel(train_sample=rows)
    assert (~sub.isel(fraction=slice(0, -1))).sum("train_sample").min() > 0


def test_teacher_accuracy_exact(ds):
    pred = ds["teacher_test_logits"].argmax("class").values
    assert np.mean(pred == ds["test_labels"].values) == pytest.approx(0.9, abs=1e-9)
    pred_tr = ds["teacher_train_logits"].argmax("class").values
    assert np.all(pred_tr == ds["train_labels"].values)


def test_deterministic_and_store_ids():
    a = make_experiment(seed=3, methods=("label", "kd-T4"), features=False)
    b = make_experiment(seed=3, methods=("label", "kd-T4"), features=False)
    np.testing.assert_array_equal(a["test_logits"].values, b["test_logits"].values)
    store = make_store(
        n_experiments=2,
        seed=1,
        methods=("label", "kd-T4"),
        features=False,
        per_experiment=[{}, {"fractions": (0.1, 0.5, 1.0), "n_classes": 5}],
    )
    assert list(store) == ["synthetic-0", "synthetic-1"]
    assert store["synthetic-1"].sizes["fraction"] == 3
    assert store["synthetic-1"].sizes["class"] == 5
    assert store["synthetic-0"].attrs["experiment"] == "synthetic-0"
    for name, d in store.items():
        validate_experiment(d, name)


def test_bad_knobs_refused():
    with pytest.raises(TypeError, match="unknown synthetic knob"):
        make_experiment(kd_gain_slop=1.0)
    with pytest.raises(ValueError, match="unknown synthetic method"):
        make_experiment(methods=("label", "kd-T8"))
    with pytest.raises(ValueError, match="fractions"):
        make_experiment(fractions=(0.0, 1.0))


def test_untrained_cells_are_nan():
    d = make_experiment(seed=2, untrained=[("kd-T4", 0.2, 1)])
    cell = {"arm": "kd-T4", "fraction": 0.2, "seed": 1}
    for name in ("test_logits", "train_logits", "features", "classifier_weight"):
        assert np.all(np.isnan(d[name].sel(cell).values))
    assert np.isfinite(d["test_logits"].sel({"arm": "label", "fraction": 0.2, "seed": 1})).all()
    a = accuracy(d["test_logits"], d["test_labels"], "test_sample")
    assert int(a.isnull().sum()) == 1
    validate_experiment(d, "untrained")


# ---------------------------------------------------------------------------------- truths
def test_accuracy_targets_are_met():
    # no noise: realised accuracy = planted mean up to rounding to whole test samples
    d = make_experiment(seed=4, seed_sd=0.0, method_seed_sd=0.0, cell_sd=0.0, features=False)
    kappa = d["n_train"].values
    for m in METHODS:
        want = expected_accuracy(Truth(), m, kappa)
        got = _acc(d, m)
        assert np.max(np.abs(got - want[:, None])) <= 100 / 300 / 2 + 1e-9


def test_planted_effects_visible_in_raw_means(ds):
    kappa = ds["n_train"].values
    x = np.log(kappa)
    gain = (_acc(ds, "kd-T4") - _acc(ds, "label")).mean(1)
    assert np.polyfit(x, gain, 1)[0] == pytest.approx(-2.0, abs=0.5)  # kd_gain_slope
    assert gain[0] > 5 and gain[-1] < 2.5
    ls_gap = (_acc(ds, "kd-T4") - _acc(ds, "ls")).mean(1)
    assert ls_gap[0] > ls_gap[-1] + 2
    sh_gap = (_acc(ds, "kd-T4") - _acc(ds, "kd-shuffled-T4")).mean()
    assert sh_gap > 2
    # wrong-class ranking: KD follows the teacher, the shuffled student does not
    corr = wrong_class_rank_correlation(
        ds["test_logits"], ds["teacher_test_logits"], ds["test_labels"], "test_sample"
    ).mean(("fraction", "seed"))
    c = {m: float(corr.sel({"arm": m})) for m in METHODS}
    assert c["kd-T4"] > 0.6 and abs(c["kd-shuffled-T4"]) < 0.1
    assert c["kd-T4"] > c["label"] + 0.3 and c["label"] > c["ls"]
    # seeds are correlated across fractions (shared per-seed effect)
    a = _acc(ds, "label")
    resid = a - a.mean(1, keepdims=True)
    assert np.corrcoef(resid[0], resid[-1])[0, 1] > 0.5


def test_fidelity_gap_follows_power_law():
    for b in (-0.5, -1.0):
        d = make_experiment(seed=5, methods=("kd-T4",), features=False, fidelity_b=b)
        kd = {"arm": "kd-T4"}
        f_tr = fidelity(
            d["train_logits"].sel(kd), d["teacher_train_logits"], "train_sample", d["in_train"]
        )
        f_te = fidelity(d["test_logits"].sel(kd), d["teacher_test_logits"], "test_sample")
        gap = (f_tr - f_te).transpose("fraction", "seed").values
        assert np.all(gap > 0)
        slope = np.polyfit(np.log(d["n_train"].values), np.log(gap).mean(1), 1)[0]
        assert slope == pytest.approx(b, abs=0.12)
        assert gap[0].mean() == pytest.approx(0.2, rel=0.25)


def test_fidelity_abs_noise_makes_nonpositive_gaps():
    d = make_experiment(seed=1, methods=("kd-T4",), features=False, fidelity_abs_sd=0.05)
    kd = {"arm": "kd-T4"}
    f_tr = fidelity(
        d["train_logits"].sel(kd), d["teacher_train_logits"], "train_sample", d["in_train"]
    )
    f_te = fidelity(d["test_logits"].sel(kd), d["teacher_test_logits"], "test_sample")
    assert int(((f_tr - f_te) <= 0).sum()) > 0


def test_collapse_truth_visible():
    d = make_experiment(seed=3, methods=("label", "kd-T4"), fractions=(0.1, 0.4, 1.0))
    t = collapse_table(d)
    log_nc1 = np.log(t["nc1"].sel(subset="trained"))
    diff = float((log_nc1.sel({"arm": "kd-T4"}) - log_nc1.sel({"arm": "label"})).mean())
    assert diff == pytest.approx(0.7, abs=0.25)
    cka = t["cka"].sel(subset="trained")
    assert float((cka.sel({"arm": "kd-T4"}) - cka.sel({"arm": "label"})).mean()) > 0.02
    # unseen rows are less collapsed than trained rows
    assert float(t["nc1"].sel(subset="unseen").isel(fraction=0).mean()) > float(
        t["nc1"].sel(subset="trained").isel(fraction=0).mean()
    )
