"""The teacher's share of the data (``--teacher-fraction``) and several students per command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdtheory.errors import SpecError
from kdtheory.training.subsets import (
    feature_sample,
    stratified_order,
    student_order,
    subset,
    teacher_subset,
)
from kdtheory.training.sweep import (
    PRESETS,
    ExperimentConfig,
    configs_from_options,
    parse_teacher_fractions,
)
from kdtheory.training.teacher_cache import teacher_key

LABELS = np.repeat(np.arange(5), 40)[np.random.default_rng(0).permutation(200)]


def test_without_a_teacher_subset_the_orders_are_todays() -> None:
    for seed in range(3):
        assert np.array_equal(student_order(LABELS, seed), stratified_order(LABELS, seed))
        everything = np.arange(len(LABELS))
        assert np.array_equal(
            student_order(LABELS, seed, everything), stratified_order(LABELS, seed)
        )
        assert np.array_equal(subset(LABELS, 0.3, seed, everything), subset(LABELS, 0.3, seed))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_student_subsets_nest_with_the_teachers(seed: int) -> None:
    teacher = teacher_subset(LABELS, 0.25, teacher_seed=0)
    assert len(teacher) == 50
    assert np.array_equal(np.bincount(LABELS[teacher]), [10] * 5)  # stratified
    inside = set(teacher.tolist())
    for f in (0.05, 0.1, 0.25):  # kappa <= the teacher's: inside its data
        assert set(subset(LABELS, f, seed, teacher).tolist()) <= inside
    assert set(subset(LABELS, 0.25, seed, teacher).tolist()) == inside
    for f in (0.5, 1.0):  # larger: contains it
        assert inside <= set(subset(LABELS, f, seed, teacher).tolist())
    sizes = [len(subset(LABELS, f, seed, teacher)) for f in (0.05, 0.1, 0.25, 0.5, 1.0)]
    assert sizes == [10, 20, 50, 100, 200]
    # nested across fractions and close to class-balanced
    small, large = subset(LABELS, 0.1, seed, teacher), subset(LABELS, 0.5, seed, teacher)
    assert set(small.tolist()) <= set(large.tolist())
    assert np.bincount(LABELS[small], minlength=5).min() >= 3
    # other seeds give other subsets inside the same teacher data
    assert not np.array_equal(small, subset(LABELS, 0.1, seed + 10, teacher))


def test_feature_sample_holds_the_nested_smallest_subsets() -> None:
    teacher = teacher_subset(LABELS, 0.25, 0)
    rows = feature_sample(LABELS, 0.05, [0, 1], 30, teacher_indices=teacher)
    for s in (0, 1):
        assert set(subset(LABELS, 0.05, s, teacher).tolist()) <= set(rows.tolist())


def _key(fraction: float | None = None):
    x = np.zeros((4, 3), np.float32)
    y = np.arange(4)
    state = {"w": torch.zeros(2)}
    extra = {} if fraction is None else {"teacher_fraction": fraction}
    return teacher_key(x, y, "d", "mlp", {"width": 8}, state, {"steps": 10}, "cpu", **extra)


def test_the_cache_key_changes_only_off_the_full_data() -> None:
    assert _key().digest == _key(1.0).digest
    assert "teacher_fraction" not in _key(1.0).inputs
    assert _key(0.25).digest != _key().digest
    assert _key(0.25).inputs["teacher_fraction"] == 0.25
    assert _key(0.25).digest != _key(0.5).digest


def test_recipe_id_and_title_record_a_teacher_share() -> None:
    full = ExperimentConfig(student="mlp:width=64")
    assert "teacher_fraction" not in full.recipe()
    assert full.experiment_id == "mnist1d--mlp-wide--mlp_width=64"
    part = ExperimentConfig(student="mlp:width=64", teacher_fraction=0.25)
    assert part.recipe()["teacher_fraction"] == 0.25
    assert part.experiment_id == "mnist1d--mlp-wide--mlp_width=64--teacher0.25"
    assert full.teacher_indices(LABELS) is None
    assert len(part.teacher_indices(LABELS)) == 50
    from kdtheory.training.sweep import _experiment_attrs

    attrs = _experiment_attrs(part)
    assert attrs["teacher_fraction"] == 0.25
    assert attrs["title"].endswith("· teacher on 0.25")
    assert "teacher_fraction" not in _experiment_attrs(full)
    with pytest.raises(SpecError, match="--teacher-fraction: 0.0 is not in"):
        ExperimentConfig(teacher_fraction=0.0).validate()


def test_several_students_and_shares_make_one_experiment_each() -> None:
    cfgs = configs_from_options(
        None,
        {"student": ("mlp:width=32", "mlp:width=64"), "teacher_fraction": (0.25, 1.0)},
    )
    assert [(c.student, c.teacher_fraction) for c in cfgs] == [
        ("mlp:width=32", 0.25),
        ("mlp:width=32", 1.0),
        ("mlp:width=64", 0.25),
        ("mlp:width=64", 1.0),
    ]
    assert len({c.experiment_id for c in cfgs}) == 4
    (one,) = configs_from_options(None, {"student": ("mlp:width=32",)})
    assert one.student == "mlp:width=32" and one.teacher_fraction == 1.0
    # a preset crossing students, narrowed to one student: its teacher shares, once each
    narrowed = configs_from_options("factors", {"student": ("mlp:width=64",)})
    assert [(c.student, c.teacher_fraction) for c in narrowed] == [
        ("mlp:width=64", 0.25),
        ("mlp:width=64", 1.0),
    ]
    with pytest.raises(SpecError, match="--name: 2 experiments"):
        configs_from_options(None, {"student": ("a", "b"), "name": "x"})
    with pytest.raises(SpecError, match="--student: a value is given twice"):
        configs_from_options(None, {"student": ("a", "a")})


def test_parse_teacher_fractions() -> None:
    assert parse_teacher_fractions(["1,0.25", "0.25"]) == (0.25, 1.0)
    with pytest.raises(SpecError, match="not in \\(0, 1\\]"):
        parse_teacher_fractions(["1.5"])
    with pytest.raises(SpecError, match="'x' is not a number"):
        parse_teacher_fractions(["x"])


def test_factors_preset_crosses_students_and_teacher_shares() -> None:
    cfgs = PRESETS["factors"]
    assert len(cfgs) == 6
    assert {c.teacher_fraction for c in cfgs} == {0.25, 1.0}
    assert len({c.student for c in cfgs}) == 3
    assert all(
        c.methods == ("label", "kd:T=1", "kd:T=2", "kd:T=4", "kd:T=8", "kd-shuffled:T=4")
        for c in cfgs
    )
    # the reference preset is as it was
    ref = PRESETS["reference"][0]
    assert (ref.student, ref.epochs, ref.teacher_epochs, ref.feature_samples) == (
        "mlp:width=128",
        150,
        60,
        256,
    )


def test_a_sweep_with_a_quarter_data_teacher(tmp_path) -> None:
    """End to end: the teacher trains on its subset, students nest with it, rho is recorded."""
    import json

    from conftest import tiny_config

    from kdtheory import open_runs
    from kdtheory.training.sweep import run_experiment

    cfg = tiny_config(
        fractions=(0.1, 0.5), seeds=(0, 1), methods=("label", "kd:T=4"), teacher_fraction=0.25
    )
    full = tiny_config(fractions=(0.1, 0.5), seeds=(0, 1), methods=("label", "kd:T=4"))
    run_experiment(cfg, tmp_path, device="cpu")
    run_experiment(full, tmp_path, device="cpu")
    store = open_runs(tmp_path)
    assert set(store) == {cfg.experiment_id, full.experiment_id}
    ds = store[cfg.experiment_id]
    assert ds.attrs["teacher_fraction"] == 0.25
    assert json.loads(ds.attrs["recipe"])["teacher_fraction"] == 0.25
    assert "teacher_fraction" not in store[full.experiment_id].attrs
    assert ds.attrs["title"].endswith("teacher on 0.25")
    teacher = set(cfg.teacher_indices(ds["train_labels"].values).tolist())
    assert len(teacher) == 60
    for seed in (0, 1):
        small = ds["in_train"].sel(fraction=0.1, seed=seed).values.nonzero()[0]
        large = ds["in_train"].sel(fraction=0.5, seed=seed).values.nonzero()[0]
        assert set(small.tolist()) <= teacher <= set(large.tolist())
    # the teacher's budget and record count its own subset; its key differs from the full one's
    assert ds.attrs["teacher_epochs_trained"] == pytest.approx(80 * 16 / 60)
    assert ds.attrs["teacher_cache_key"] != store[full.experiment_id].attrs["teacher_cache_key"]
