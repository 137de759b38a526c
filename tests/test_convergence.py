"""Convergence: the criteria, the budget formula, the stored records and the warnings."""

import json
import math

import numpy as np
import pytest
import xarray as xr
from conftest import tiny_config
from helpers import stderr_of
from typer.testing import CliRunner

from kdtheory.cli.app import app
from kdtheory.errors import SpecError, StoreError
from kdtheory.store.convergence import (
    MAX_LOSS_DROP,
    MIN_LABEL_TRAIN_ACCURACY,
    check_experiment,
    check_store,
    loss_drop,
)
from kdtheory.store.runs import open_runs
from kdtheory.training.sweep import ExperimentConfig, configs_from_options, run_experiment

runner = CliRunner()


# ------------------------------------------------------------------ the criterion
def test_loss_drop_compares_the_interval_at_80_percent_with_the_last():
    flat = np.r_[np.linspace(2, 0.5, 40), np.full(10, 0.5)]
    assert loss_drop(flat) == 0.0
    falling = np.r_[np.linspace(2, 1.0, 40), np.linspace(1.0, 0.5, 10)]
    assert loss_drop(falling) == pytest.approx((1.0 - 0.5) / 1.0, rel=0.02)
    assert loss_drop(falling[::-1]) < 0  # rising loss: negative drop
    assert math.isnan(loss_drop(np.array([1.0])))
    assert loss_drop(np.r_[1.0, np.inf, 0.5]) == math.inf  # non-finite: never converged
    # NaN padding at the end (a diverged cell) is ignored, positions follow a given scale
    assert loss_drop(np.r_[falling, np.nan, np.nan]) == loss_drop(falling)
    steps = np.arange(1, 51) * 10
    assert loss_drop(falling, steps) == pytest.approx(loss_drop(falling), rel=0.05)


def _experiment(train_correct, history, teacher_correct=0.9, objective="label"):
    """A one-cell experiment whose cell fits ``train_correct`` of its 100 training samples."""
    n, k = 100, 4
    labels = np.arange(n) % k
    wrong = (labels + 1) % k
    pred = np.where(np.arange(n) < train_correct * n, labels, wrong)
    logits = np.eye(k, dtype=np.float32)[pred] * 5
    test_pred = np.where(np.arange(n) < teacher_correct * n, labels, wrong)
    cell = ("arm", "fraction", "seed")
    return xr.Dataset(
        {
            "train_logits": (cell + ("train_sample", "class"), logits[None, None, None]),
            "test_logits": (cell + ("test_sample", "class"), logits[None, None, None] * 0),
            "in_train": (("fraction", "seed", "train_sample"), np.ones((1, 1, n), bool)),
            "train_labels": ("train_sample", labels),
            "test_labels": ("test_sample", labels),
            "teacher_test_logits": (("test_sample", "class"), np.eye(k)[test_pred] * 5),
            "teacher_train_logits": (("train_sample", "class"), np.eye(k)[labels] * 5),
            "loss_history": (cell + ("log_point",), np.asarray(history, float)[None, None, None]),
        },
        coords={
            "arm": ["m"],
            "fraction": [1.0],
            "seed": [0],
            "objective": ("arm", [objective]),
            "progress": ("log_point", np.arange(1, len(history) + 1) / len(history)),
        },
    )


def test_check_experiment_flags_each_criterion_and_names_the_cell():
    flat = np.r_[np.linspace(2, 0.1, 40), np.full(10, 0.1)]
    falling = np.r_[np.linspace(2, 1.0, 40), np.linspace(1.0, 0.8, 10)]
    ok = check_experiment("e", _experiment(1.0, flat))
    assert ok.ok and ok.cells == 1 and not ok.warnings()
    still = check_experiment("e", _experiment(1.0, falling))
    assert [u[:3] for u in still.under_trained] == [("m", 1.0, 0)]
    assert "loss" in still.under_trained[0][3]
    unfit = check_experiment("e", _experiment(MIN_LABEL_TRAIN_ACCURACY - 0.05, flat))
    assert "train acc 0.940" in unfit.under_trained[0][3]
    (line,) = unfit.warnings()
    assert "1 of 1 cells under-trained" in line and "m at f=1 (1)" in line
    # the train-accuracy criterion is for label-trained students only
    assert check_experiment("e", _experiment(0.5, flat, objective="kd")).ok
    diverged = check_experiment(
        "e", _experiment(1.0, np.r_[flat[:20], np.inf, np.full(29, np.nan)])
    )
    assert "loss" in diverged.under_trained[0][3]


def test_a_teacher_below_the_best_label_student_or_near_chance_is_weak():
    flat = np.r_[np.linspace(2, 0.1, 40), np.full(10, 0.1)]
    ds = _experiment(1.0, flat, teacher_correct=0.3)  # 4 classes: chance 0.25
    ds["test_logits"] = ds["train_logits"].rename(train_sample="test_sample")  # perfect student
    report = check_experiment("e", ds)
    assert "within 10% of chance" in report.weak_teacher
    ds2 = _experiment(1.0, flat, teacher_correct=0.8)
    ds2["test_logits"] = ds2["train_logits"].rename(train_sample="test_sample")
    assert "below the best label-trained student" in check_experiment("e", ds2).weak_teacher
    assert check_experiment("e", _experiment(1.0, flat, teacher_correct=0.8)).weak_teacher == ""


def test_the_threshold_is_the_stated_one():
    """Just under and just over MAX_LOSS_DROP."""
    head = np.linspace(3, 1.0, 40)
    for drop, flagged in ((MAX_LOSS_DROP * 0.9, False), (MAX_LOSS_DROP * 1.1, True)):
        hist = np.r_[head, np.full(9, 1.0), 1.0 - drop]
        report = check_experiment("e", _experiment(1.0, hist))
        assert (not report.ok) is flagged


def test_a_tiny_loss_falling_by_a_tiny_amount_is_converged():
    """Memorised labels: 0.010 -> 0.007 is a 30% relative fall but 0.003 in absolute terms."""
    from kdtheory.store.convergence import MIN_LOSS_FALL, still_falling

    hist = np.r_[np.geomspace(2.3, 0.01, 40), np.linspace(0.01, 0.007, 10)]
    assert loss_drop(hist) > MAX_LOSS_DROP
    assert loss_drop(hist, absolute=True) < MIN_LOSS_FALL
    assert not still_falling(loss_drop(hist), loss_drop(hist, absolute=True))
    assert check_experiment("e", _experiment(1.0, hist)).ok
    # the same relative fall of a larger loss is "still falling"
    assert not check_experiment("e", _experiment(1.0, hist * 100)).ok


# ------------------------------------------------------------------ budgets
def test_budget_formula_and_recipe():
    cfg = ExperimentConfig(epochs=10, min_steps=50, batch_size=32)
    assert cfg.cell_steps(40) == 50  # ceil(10 * 40 / 32) = 13 < min_steps
    assert cfg.cell_steps(4000) == 1250
    assert cfg.cell_steps(33) == 50 and ExperimentConfig(epochs=10, batch_size=32).cell_steps(
        33
    ) == math.ceil(330 / 32)
    recipe = cfg.recipe()
    assert recipe["budget"] == "epochs" and recipe["epochs"] == 10 and "steps" not in recipe
    fixed = ExperimentConfig(steps=300)
    assert fixed.cell_steps(40) == fixed.cell_steps(4000) == 300
    assert fixed.recipe()["budget"] == "steps" and "epochs" not in fixed.recipe()
    assert ExperimentConfig(teacher_epochs=2, batch_size=10).teacher_budget(55) == 11


def test_steps_on_the_command_line_replace_a_presets_epochs_and_both_are_refused():
    (cfg,) = configs_from_options("smoke", {"steps": 30})
    assert cfg.budget == "steps" and cfg.steps == 30
    with pytest.raises(SpecError, match="--steps and --epochs"):
        configs_from_options("smoke", {"steps": 30, "epochs": 3.0})
    for bad in ({"epochs": 0.0}, {"epochs": float("inf")}, {"warmup": 1.0}, {"min_steps": -1}):
        with pytest.raises(SpecError):
            configs_from_options(None, bad)[0].validate()


def test_a_store_never_mixes_budgets(tmp_path):
    run_experiment(tiny_config(fractions=(1.0,), seeds=(0,), methods=("label",)), tmp_path, "cpu")
    with pytest.raises(StoreError, match="budget: store has 'steps', this run has 'epochs'"):
        run_experiment(
            tiny_config(fractions=(1.0,), seeds=(0,), methods=("label",), epochs=2.0),
            tmp_path,
            "cpu",
        )


def test_an_epoch_sweep_records_each_cells_budget_and_convergence(tmp_path):
    cfg = tiny_config(epochs=4.0, min_steps=10, warmup=0.1, log_points=8, seeds=(0,))
    report = run_experiment(cfg, tmp_path, device="cpu")
    assert report.trained == 12
    (ds,) = open_runs(tmp_path).values()
    for f, n in zip(ds.fraction.values, ds.n_train.values, strict=True):
        steps = ds.train_steps.sel(fraction=f).values
        assert (steps == cfg.cell_steps(int(n))).all()
        np.testing.assert_allclose(ds.train_epochs.sel(fraction=f), steps * 16 / n, rtol=1e-5)
    assert ds.loss_history.dims[-1] == "log_point" and ds.sizes["log_point"] == 8
    np.testing.assert_allclose(ds.progress, np.arange(1, 9) / 8)
    np.testing.assert_allclose(ds.final_train_loss, ds.loss_history.isel(log_point=-1), 1e-3)
    assert set(np.unique(ds.diverged)) == {0.0}
    # the stored records agree with what the convergence module computes from the data
    conv = check_experiment("x", ds).table
    np.testing.assert_allclose(ds.train_accuracy, conv.train_accuracy, atol=1e-6)
    np.testing.assert_allclose(ds.loss_drop_last20, conv.loss_drop_last20, rtol=1e-3, atol=1e-4)
    cell = next(tmp_path.rglob("cells/label__f1__s0.nc"))
    with xr.open_dataset(cell) as c:
        assert c.attrs["converged"] in (0, 1) and c.attrs["train_steps"] == cfg.cell_steps(240)
    recipe = json.loads(ds.attrs["recipe"])
    assert recipe["budget"] == "epochs" and recipe["min_steps"] == 10
    teacher = next(tmp_path.rglob("teacher.nc"))
    with xr.open_dataset(teacher) as t:
        assert t.attrs["teacher_steps_trained"] == cfg.teacher_steps
        assert "teacher_loss_drop_last20" in t.attrs


def test_a_resumed_sweep_equals_an_uninterrupted_one_bit_for_bit(tmp_path):
    """Re-trained cells distil the same (stored, packed) teacher logits as the first run."""
    cfg = tiny_config(seeds=(0,), fractions=(0.5, 1.0))
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_experiment(cfg, whole, device="cpu", batch_cells=1)
    run_experiment(cfg, resumed, device="cpu", batch_cells=1)
    gone = sorted(resumed.rglob("cells/*.nc"))[::2]  # every method appears among them
    for path in gone:
        path.unlink()
    assert run_experiment(cfg, resumed, device="cpu", batch_cells=1).trained == len(gone)
    (a,) = open_runs(whole).values()
    (b,) = open_runs(resumed).values()
    for name in ("test_logits", "train_logits", "features", "loss_history"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


# ------------------------------------------------------------------ warnings end to end
@pytest.fixture(scope="module")
def undertrained(tmp_path_factory):
    """A deliberately under-trained store: 3 steps per student."""
    out = tmp_path_factory.mktemp("under")
    run_experiment(tiny_config(steps=3, log_points=3, seeds=(0, 1)), out, device="cpu")
    return out


def test_inspect_test_and_report_warn_on_an_undertrained_store(undertrained, tmp_path):
    shown = runner.invoke(app, ["inspect", str(undertrained)])
    assert shown.exit_code == 0, shown.output
    assert "under-trained" in shown.output and "warning:" in shown.output
    assert "label at f=" in shown.output

    tested = runner.invoke(app, ["test", "all", "--runs", str(undertrained), "--format", "json"])
    assert tested.exit_code == 0, tested.output
    assert "convergence problem" in stderr_of(tested)
    payload = tested.stdout
    verdicts = json.loads(payload[payload.index("[") :])
    assert all(any("under-trained" in w for w in v["warnings"]) for v in verdicts)

    text = runner.invoke(app, ["test", "dark-knowledge", "--runs", str(undertrained)])
    assert "Warning" in text.stdout and "under-trained" in text.stdout

    out = tmp_path / "report"
    made = runner.invoke(app, ["report", "--runs", str(undertrained), "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert "convergence problem" in stderr_of(made)
    data = json.loads((out / "verdicts.json").read_text())
    assert not data["convergence"]["ok"] and data["convergence"]["experiments"][0]["under_trained"]
    assert "under-trained" in (out / "report.md").read_text()
    assert "under-trained" in (out / "index.html").read_text()


def test_the_python_api_carries_the_warnings_too(undertrained):
    import kdtheory

    store = kdtheory.open_runs(undertrained)
    assert not check_store(store).ok
    verdict = kdtheory.test("dark-knowledge", store)
    assert any("under-trained" in w for w in verdict.warnings)
    assert "Warning" in verdict.as_text() and verdict.to_dict()["warnings"] == verdict.warnings


def test_diverged_cells_are_stored_as_such_warned_about_and_retrained_on_request(tmp_path):
    cfg = tiny_config(lr=1e30, seeds=(0,), fractions=(1.0,), methods=("label", "kd:T=4"))
    first = run_experiment(cfg, tmp_path, device="cpu")
    assert first.trained == 2 and first.diverged_now == 2
    (ds,) = open_runs(tmp_path).values()  # opens: a diverged cell is no result, not an error
    assert (ds.diverged == 1).all() and np.isnan(ds.test_logits).all()
    conv = check_store(open_runs(tmp_path))
    assert sum(len(e.under_trained) for e in conv.experiments) == 2
    assert "diverged: 2" in conv.warnings()[0]
    again = run_experiment(cfg, tmp_path, device="cpu")  # never silently counted as a result
    assert again.trained == 0 and again.diverged_kept == 2
    shown = runner.invoke(app, ["inspect", str(tmp_path)])
    assert "diverged" in shown.output and "no missing cells" in shown.output  # not "missing"
    assert "Lower --lr" in shown.output
    retried = run_experiment(cfg, tmp_path, device="cpu", retrain_diverged=True)
    assert retried.trained == 2
