"""``ds.kd``: the run-store accessor, on hand-made experiments with exact answers and on
synthetic stores with planted ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

import kdtheory.store.accessor  # noqa: F401 - the import registers ``Dataset.kd``
from kdtheory import metrics
from kdtheory.hypothesis import toolkit
from kdtheory.store.schema import SCHEMA, validate_experiment
from kdtheory.testing.synthetic import METHODS, Truth, expected_accuracy, make_experiment

NAN = float("nan")
ARMS = ["label", "kd-T4", "kd-T2", "ls"]
FRACTIONS = [0.5, 1.0]
SEEDS = [0, 1]
TEST_LABELS = np.array([0, 1, 2, 0])
TEACHER_TEST = np.array([0, 1, 2, 1])  # right on 3 of 4 test samples
TRAIN_LABELS = np.array([0, 1, 2, 1])
TEACHER_TRAIN = np.array([0, 1, 2, 2])  # right on 3 of 4 training samples
#: fraction 0.5 trains seed 0 on samples 0, 1 and seed 1 on samples 2, 3; fraction 1 on all
IN_TRAIN = np.array([[[1, 1, 0, 0], [0, 0, 1, 1]], [[1, 1, 1, 1], [1, 1, 1, 1]]], dtype=bool)
UNTRAINED = (3, 0, 1)  # ls at fraction 0.5, seed 1
PRESENT = np.ones((4, 2, 2), dtype=bool)
PRESENT[UNTRAINED] = False


def one_hot(pred: np.ndarray, k: int = 3) -> np.ndarray:
    return np.where(np.arange(k) == pred[..., None], 5.0, 0.0).astype(np.float32)


@pytest.fixture(scope="module")
def preds():
    """Predicted classes per (arm, fraction, seed, sample) on test and train samples."""
    rng = np.random.default_rng(3)
    return rng.integers(0, 3, (4, 2, 2, 4)), rng.integers(0, 3, (4, 2, 2, 4))


@pytest.fixture(scope="module")
def ds(preds):
    test_pred, train_pred = preds
    test, train = one_hot(test_pred), one_hot(train_pred)
    test[UNTRAINED] = NAN
    train[UNTRAINED] = NAN
    cell = ("arm", "fraction", "seed")
    out = xr.Dataset(
        {
            "test_logits": ((*cell, "test_sample", "class"), test),
            "train_logits": ((*cell, "train_sample", "class"), train),
            "in_train": (("fraction", "seed", "train_sample"), IN_TRAIN),
            "teacher_test_logits": (("test_sample", "class"), one_hot(TEACHER_TEST)),
            "teacher_train_logits": (("train_sample", "class"), one_hot(TEACHER_TRAIN)),
            "test_labels": (("test_sample",), TEST_LABELS),
            "train_labels": (("train_sample",), TRAIN_LABELS),
        },
        coords={
            "arm": ARMS,
            "fraction": FRACTIONS,
            "seed": SEEDS,
            "objective": ("arm", ["label", "kd", "kd", "ls"]),
            "temperature": ("arm", [NAN, 4.0, 2.0, NAN]),
            "alpha": ("arm", [NAN, 0.0, 0.0, NAN]),
            "smoothing": ("arm", [NAN, NAN, NAN, 0.1]),
            "n_train": ("fraction", [2, 4]),
        },
        attrs={"schema": SCHEMA, "experiment": "hand"},
    )
    validate_experiment(out)
    return out


def share(hit: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``hit`` over the last axis (only where ``mask``), NaN for the untrained cell."""
    hit = hit.astype(float)
    if mask is None:
        out = hit.mean(-1)
    else:
        m = np.broadcast_to(mask, hit.shape)
        with np.errstate(invalid="ignore"):
            out = (hit * m).sum(-1) / m.sum(-1)
    out[UNTRAINED] = NAN
    return out


# ----------------------------------------------------------------------------------- arms
def test_registered_on_import():
    assert hasattr(xr.Dataset, "kd")


def test_arms_and_their_coordinates(ds):
    assert ds.kd.arms == ARMS
    assert ds.kd.objective_of("kd-T2") == "kd"
    assert ds.kd.coord("temperature", "kd-T2") == 2.0
    assert ds.kd.with_objective("kd") == ["kd-T4", "kd-T2"]
    assert ds.kd.with_objective("kd-shuffled") == []
    assert ds.kd.describe_arms() == "label (label), kd-T4 (kd), kd-T2 (kd), ls (ls)"
    with pytest.raises(KeyError, match="no arm 'kd-T8'"):
        ds.kd.objective_of("kd-T8")


def test_objective_is_never_guessed_from_the_label(ds):
    bare = ds.drop_vars("objective")
    assert bare.kd.objective_of("kd-T4") is None
    assert bare.kd.with_objective("kd") == []
    assert bare.kd.pick("kd") is None
    assert bare.kd.describe_arms() == "label, kd-T4, kd-T2, ls"


def test_pick(ds):
    assert ds.kd.pick("kd") == "kd-T4"  # the first
    assert ds.kd.pick("kd", temperature=2) == "kd-T2"
    assert ds.kd.pick("kd", temperature=8) == "kd-T4"  # no such temperature: the first
    assert ds.kd.pick("kd", requested="kd-T2", temperature=4) == "kd-T2"
    assert ds.kd.pick("kd", requested="ls") is None  # not of that objective
    assert ds.kd.pick("kd-shuffled") is None


def test_toolkit_picking_helpers_are_the_accessor(ds):
    for objective in ("label", "kd", "ls", "kd-mse"):
        for requested in (None, "kd-T2", "label"):
            for t in (None, 2.0, 4.0):
                assert toolkit.pick_method(ds, objective, requested, t) == ds.kd.pick(
                    objective, requested, temperature=t
                )
        assert toolkit.methods_with_objective(ds, objective) == ds.kd.with_objective(objective)
    assert toolkit.method_coord(ds, "alpha", "kd-T4") == 0.0
    assert toolkit.method_coord(ds, "no-such-coord", "kd-T4") is None
    assert toolkit.methods_present(ds) == ds.kd.describe_arms()
    np.testing.assert_array_equal(toolkit.log_kappa(ds), np.log([2.0, 4.0]))


def test_select_by_arm_coordinates(ds):
    assert ds.kd.select(objective="kd", temperature=4).kd.arms == ["kd-T4"]
    assert ds.kd.select(objective=["label", "ls"]).kd.arms == ["label", "ls"]
    assert ds.kd.select(temperature=NAN).kd.arms == ["label", "ls"]  # NaN: unused
    assert ds.kd.select(temperature=[2, 4]).kd.arms == ["kd-T4", "kd-T2"]
    assert ds.kd.select(smoothing=0.1).kd.arms == ["ls"]
    assert ds.kd.select(objective="kd-mse").kd.arms == []
    assert ds.kd.select().kd.arms == ARMS
    picked = ds.kd.select(objective="kd", alpha=0.0)
    xr.testing.assert_identical(picked, ds.sel(arm=["kd-T4", "kd-T2"]))
    with pytest.raises(KeyError, match="'width' is not a coordinate along 'arm'"):
        ds.kd.select(width=3)


# ----------------------------------------------------------------------------------- kappa
def test_kappa(ds):
    assert ds.kd.kappa.dims == ("fraction",)
    assert ds.kd.kappa.values.tolist() == [2, 4]
    np.testing.assert_allclose(ds.kd.log_kappa.values, [math.log(2), math.log(4)])


def test_masks(ds):
    np.testing.assert_array_equal(ds.kd.trained_mask.values, IN_TRAIN)
    np.testing.assert_array_equal(ds.kd.unseen_mask.values, ~IN_TRAIN)
    assert ds.kd.trained_mask.dims == ("fraction", "seed", "train_sample")


# --------------------------------------------------------------------------------- metrics
def test_accuracy_per_cell(ds, preds):
    test_pred, _ = preds
    acc = ds.kd.accuracy()
    assert acc.dims == ("arm", "fraction", "seed")
    np.testing.assert_allclose(acc.values, share(test_pred == TEST_LABELS))
    assert np.isnan(acc.values[UNTRAINED]) and np.isfinite(acc.values[PRESENT]).all()
    assert list(acc["objective"].values) == ["label", "kd", "kd", "ls"]  # coords come along
    one = ds.kd.accuracy("kd-T2")
    assert one.dims == ("fraction", "seed")
    np.testing.assert_allclose(one.values, share(test_pred == TEST_LABELS)[2])
    two = ds.kd.accuracy(["ls", "label"])
    assert list(two["arm"].values) == ["ls", "label"]
    np.testing.assert_allclose(two.values, share(test_pred == TEST_LABELS)[[3, 0]])


def test_accuracy_on_trained_and_unseen_samples(ds, preds):
    _, train_pred = preds
    hit = train_pred == TRAIN_LABELS
    np.testing.assert_allclose(ds.kd.accuracy(split="train").values, share(hit))
    trained = ds.kd.accuracy(split="train", subset="trained")
    np.testing.assert_allclose(trained.values, share(hit, IN_TRAIN))
    unseen = ds.kd.accuracy(split="train", subset="unseen")
    np.testing.assert_allclose(unseen.values[:, 0], share(hit, ~IN_TRAIN)[:, 0])
    assert np.isnan(unseen.values[:, 1]).all(), "fraction 1 leaves no unseen sample"
    with pytest.raises(ValueError, match="split='train'"):
        ds.kd.accuracy(subset="trained")
    with pytest.raises(ValueError, match="subset must be one of"):
        ds.kd.accuracy(split="train", subset="seen")
    with pytest.raises(ValueError, match="split must be one of"):
        ds.kd.accuracy(split="validation")


def test_agreement_with_the_teacher(ds, preds):
    test_pred, train_pred = preds
    agree = ds.kd.agreement()
    np.testing.assert_allclose(agree.values, share(test_pred == TEACHER_TEST))
    on_trained = ds.kd.agreement("kd-T4", split="train", subset="trained")
    np.testing.assert_allclose(on_trained.values, share(train_pred == TEACHER_TRAIN, IN_TRAIN)[1])
    xr.testing.assert_identical(ds.kd.fidelity("kd-T4"), ds.kd.agreement("kd-T4"))


def test_teacher_kl_is_zero_for_a_copy_of_the_teacher(ds):
    copy = ds.copy()
    copy["test_logits"] = ds["test_logits"] * 0 + ds["teacher_test_logits"]
    kl = copy.kd.teacher_kl(temperature=2.0)
    assert np.isnan(kl.values[UNTRAINED])
    np.testing.assert_allclose(kl.values[PRESENT], 0.0, atol=1e-6)
    assert (ds.kd.teacher_kl("label").values > 0).all()


def test_teacher_accuracy(ds):
    assert ds.kd.teacher_accuracy() == pytest.approx(0.75)
    assert ds.kd.teacher_accuracy("train") == pytest.approx(0.75)
    assert math.isnan(ds.drop_vars("teacher_test_logits").kd.teacher_accuracy())


def test_paired_differences(ds, preds):
    test_pred, _ = preds
    acc = ds.kd.accuracy()
    want = share(test_pred == TEST_LABELS)
    gain = ds.kd.paired(acc, "kd-T4", "label")
    assert gain.dims == ("fraction", "seed")
    np.testing.assert_allclose(gain.values, want[1] - want[0])
    assert "objective" not in gain.coords and "arm" not in gain.coords
    gap = ds.kd.paired(acc, "ls", "label")
    assert np.isnan(gap.values[0, 1]) and np.isfinite(gap.values[1]).all()  # untrained ls cell
    with pytest.raises(KeyError, match="no arm 'kd-T8'"):
        ds.kd.paired(acc, "kd-T8", "label")
    with pytest.raises(ValueError, match="an 'arm' dim"):
        ds.kd.paired(acc.sel(arm="label"), "kd-T4", "label")


# ------------------------------------------------------------------------- synthetic stores
def test_same_numbers_as_kdtheory_metrics():
    d = make_experiment(seed=2, n_seeds=2, n_test=60, n_train=120, features=False)
    direct = metrics.accuracy(d["test_logits"], d["test_labels"], "test_sample")
    xr.testing.assert_allclose(d.kd.accuracy(), direct.transpose("arm", "fraction", "seed"))
    fid = metrics.fidelity(
        d["train_logits"], d["teacher_train_logits"], "train_sample", mask=d["in_train"]
    )
    got = d.kd.agreement(split="train", subset="trained")
    np.testing.assert_array_equal(got.values, fid.transpose("arm", "fraction", "seed").values)
    for arm in d.kd.arms:
        np.testing.assert_array_equal(
            toolkit.accuracy_points(d, arm), 100.0 * d.kd.accuracy(arm).values
        )


def test_planted_accuracy_and_fidelity_gap_are_recovered():
    quiet = {
        "seed_sd": 0.0,
        "method_seed_sd": 0.0,
        "cell_sd": 0.0,
        "fidelity_log_sd": 0.0,
        "fidelity_seed_sd": 0.0,
        "fidelity_b_seed_sd": 0.0,
        "features": False,
    }
    d = make_experiment(seed=4, **quiet)
    truth = Truth.from_kwargs(**quiet)
    kappa = d.kd.kappa.values
    for arm in METHODS:
        want = expected_accuracy(truth, arm, kappa)[:, None]
        got = 100.0 * d.kd.accuracy(arm).values
        assert np.max(np.abs(got - want)) <= 100 / truth.n_test / 2 + 1e-9, arm
    kd = d.kd.pick("kd", temperature=4)
    gap = d.kd.agreement(kd, "train", "trained") - d.kd.agreement(kd)
    planted = truth.fidelity_gap_at_min * (kappa / kappa.min()) ** truth.fidelity_b
    assert np.max(np.abs(gap.values - planted[:, None])) <= 0.5 / kappa.min() + 1e-9


def test_accuracy_is_remembered_until_a_variable_is_replaced():
    """One run's hypotheses share each arm's accuracy; replacing the logits (or labels) of the
    same Dataset object is seen, never served from the memo."""
    ds = make_experiment(seed=2, n_seeds=2, n_test=60, n_train=120, features=False)
    arm = ds.kd.arms[0]
    first = ds.kd.accuracy(arm)
    again = ds.kd.accuracy(arm)
    xr.testing.assert_identical(first, again)
    again[...] = -1.0  # a caller's change never reaches the memo
    xr.testing.assert_identical(ds.kd.accuracy(arm), first)
    flipped = ds["test_logits"].copy()
    flipped.loc[{"arm": arm}] = -flipped.sel(arm=arm)
    ds["test_logits"] = flipped
    assert not ds.kd.accuracy(arm).equals(first)


def test_collapse_table_is_the_metric_remembered_until_features_change():
    ds = make_experiment(seed=3, n_seeds=2, n_test=60, n_train=120)
    first = ds.kd.collapse_table()
    xr.testing.assert_identical(first, metrics.collapse_table(ds))
    xr.testing.assert_identical(ds.kd.collapse_table(), first)
    noise = np.random.default_rng(0).normal(size=ds["features"].shape)
    ds["features"] = ds["features"].copy(data=noise)  # another variable object: recomputed
    assert not ds.kd.collapse_table()["nc1"].equals(first["nc1"])
