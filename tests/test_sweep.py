import numpy as np
import pytest
from conftest import tiny_config

from kdtheory.errors import SpecError, StoreError, UnknownNameError
from kdtheory.store.runs import open_runs
from kdtheory.training.sweep import (
    SweepProgress,
    configs_from_options,
    parse_fractions,
    run_experiment,
)


class InterruptAfter(SweepProgress):
    """Simulates Ctrl-C during the group after ``groups`` finished groups."""

    def __init__(self, groups: int) -> None:
        self.finished = 0
        self.groups = groups

    def start_group(self, n_cells, steps, description):
        self.teacher = description == "teacher"

    def end_group(self, results):
        self.finished += 0 if self.teacher else 1

    def step(self, done, total):
        if not self.teacher and self.finished == self.groups and done == total // 2:
            raise KeyboardInterrupt


def test_resume_after_interrupt_trains_each_cell_once(tmp_path, tiny_store):
    cfg = tiny_config()
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path, device="cpu", batch_cells=5, progress=InterruptAfter(2))
    cells = sorted(tmp_path.rglob("cells/*.nc"))
    assert len(cells) == 10  # two finished groups of 5; the group in flight is lost
    assert not list(tmp_path.rglob("*.tmp"))
    before = {p.name: p.stat().st_mtime_ns for p in cells}
    report = run_experiment(cfg, tmp_path, device="cpu", batch_cells=5)
    assert (report.trained, report.skipped) == (14, 10)
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("cells/*.nc")}
    assert len(after) == 24
    assert all(after[name] == t for name, t in before.items())  # not re-trained
    again = run_experiment(cfg, tmp_path, device="cpu")
    assert (again.trained, again.skipped) == (0, 24)
    # same numbers as the uninterrupted, fully batched sweep of the same config
    a = next(iter(open_runs(tmp_path).values()))
    b = next(iter(open_runs(tiny_store).values()))
    np.testing.assert_allclose(a.test_logits, b.test_logits, rtol=2e-3, atol=2e-3)


def test_growing_the_sweep_adds_cells_and_a_new_recipe_is_refused(tmp_path):
    cfg = tiny_config(fractions=(0.5, 1.0), seeds=(0,), methods=("label",))
    run_experiment(cfg, tmp_path, device="cpu")
    grown = run_experiment(
        tiny_config(fractions=(0.5, 1.0), seeds=(0, 1), methods=("label",)), tmp_path, device="cpu"
    )
    assert (grown.trained, grown.skipped) == (2, 2)
    with pytest.raises(StoreError, match="different recipe.*steps"):
        run_experiment(tiny_config(steps=41), tmp_path, device="cpu")


def test_bad_specs_fail_before_training(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'mlp'"):
        run_experiment(tiny_config(student="mpl"), tmp_path)
    with pytest.raises(SpecError, match="no option 'widht'. Did you mean 'width'"):
        run_experiment(tiny_config(student="mlp:widht=3"), tmp_path)
    with pytest.raises(SpecError, match="given twice"):
        run_experiment(tiny_config(methods=("kd:T=4", "kd:T=4")), tmp_path)
    with pytest.raises(SpecError, match="not in \\(0, 1\\]"):
        parse_fractions("0.1,1.5")
    with pytest.raises(SpecError, match="Did you mean 'smoke'"):
        configs_from_options("smok", {})
    assert not list(tmp_path.iterdir())  # nothing was written


def test_teacher_checkpoint_reproduces_the_trained_teacher(tmp_path, tiny_store):
    (trained,) = tiny_store.glob("*/teacher.pt")
    cfg = tiny_config(teacher_checkpoint=str(trained), name="from-checkpoint", methods=("label",))
    run_experiment(cfg, tmp_path, device="cpu")
    loaded = open_runs(tmp_path)["from-checkpoint"]
    original = next(iter(open_runs(tiny_store).values()))
    np.testing.assert_allclose(
        loaded.teacher_test_logits, original.teacher_test_logits, rtol=1e-3, atol=1e-3
    )
    np.testing.assert_allclose(
        loaded.teacher_features, original.teacher_features, rtol=1e-3, atol=1e-3
    )
    with pytest.raises(StoreError, match="cannot load teacher weights"):
        bad = tiny_config(teacher="mlp:width=7", teacher_checkpoint=str(trained), name="bad")
        run_experiment(bad, tmp_path / "b", device="cpu")


def test_a_title_is_stored_with_the_experiment_and_not_in_its_recipe(tmp_path):
    cfg = tiny_config(seeds=(0,), fractions=(1.0,), methods=("label",), title="Tiny  MLP run")
    assert "title" not in cfg.recipe()
    assert cfg.recipe() == tiny_config(seeds=(0,), fractions=(1.0,), methods=("label",)).recipe()
    run_experiment(cfg, tmp_path, device="cpu")
    (ds,) = open_runs(tmp_path).values()
    assert ds.attrs["title"] == "Tiny MLP run" and ds.kd.title == "Tiny MLP run"
    assert ds.attrs["experiment"] == cfg.experiment_id  # the id stays the key


def test_title_needs_one_experiment_and_text():
    (one,) = configs_from_options("smoke", {"title": "Smoke"})
    assert one.title == "Smoke"
    with pytest.raises(SpecError, match="--title: preset 'reference' has"):
        configs_from_options("reference", {"title": "All"})
    with pytest.raises(SpecError, match="--title: give a non-empty"):
        tiny_config(title="  ").validate()
