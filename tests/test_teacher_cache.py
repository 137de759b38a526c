"""The teacher cache: a teacher is trained once and reused by later sweeps and stores, safely."""

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

from kdtheory.cli.app import app
from kdtheory.store.runs import open_runs
from kdtheory.training import dataset_cache
from kdtheory.training.sweep import SweepProgress, run_experiment
from kdtheory.training.teacher_cache import (
    TeacherCache,
    TeacherCacheWarning,
    default_cache_dir,
    teacher_key,
)

# one method, two fractions, one seed: the teacher is what these tests are about
SMALL = {"methods": ("label", "kd:T=4"), "fractions": (0.5, 1.0), "seeds": (0,)}


class TeacherCounter(SweepProgress):
    """Counts the teachers a sweep trains (the engine's ``teacher`` group)."""

    def __init__(self) -> None:
        self.teachers = 0

    def start_group(self, n_cells, steps, description):
        self.teachers += description == "teacher"


def sweep(out, cache, **changes):
    counter = TeacherCounter()
    cfg = tiny_config(**SMALL | changes)
    report = run_experiment(cfg, out, device="cpu", progress=counter, teacher_cache=cache)
    return report, counter.teachers, next(iter(open_runs(out).values()))


def entries(cache):
    return sorted(p.name for p in cache.glob("*.pt")) if cache.exists() else []


def test_a_second_sweep_reuses_the_teacher_with_the_same_numbers(tmp_path):
    cache = tmp_path / "cache"
    first, trained, a = sweep(tmp_path / "a", cache)
    assert (first.teacher, trained) == ("trained", 1)
    (entry,) = entries(cache)
    # a new store, and other students of it: the teacher comes from the cache, untrained
    second, trained, b = sweep(tmp_path / "b", cache)
    assert (second.teacher, trained) == ("cache", 0)
    other, trained, c = sweep(tmp_path / "c", cache, student="mlp:width=8,depth=1", seeds=(1,))
    assert (other.teacher, trained) == ("cache", 0)
    assert entries(cache) == [entry]
    key = entry.removesuffix(".pt")
    assert a.attrs["teacher_cache_key"] == b.attrs["teacher_cache_key"] == key
    for var in ("teacher_train_logits", "teacher_test_logits", "teacher_features"):
        np.testing.assert_array_equal(a[var].values, b[var].values)
    # (c's seeds pick other feature samples)
    np.testing.assert_array_equal(a.teacher_test_logits.values, c.teacher_test_logits.values)
    # students of the cached teacher: the same numbers as those of the freshly trained one
    np.testing.assert_array_equal(a.test_logits.values, b.test_logits.values)
    for record in ("teacher_steps_trained", "teacher_final_train_loss", "teacher_test_accuracy"):
        assert a.attrs[record] == b.attrs[record]


def test_another_recipe_or_data_misses_and_is_cached_alongside(tmp_path):
    cache = tmp_path / "cache"
    sweep(tmp_path / "a", cache)
    report, trained, _ = sweep(tmp_path / "b", cache, teacher_lr=2e-3)
    assert (report.teacher, trained) == ("trained", 1)
    report, trained, _ = sweep(tmp_path / "c", cache, teacher_seed=1)
    assert (report.teacher, trained) == ("trained", 1)
    data = "synthetic:n_train=240,n_test=120,num_classes=4,dim=8,seed=4"
    report, trained, _ = sweep(tmp_path / "d", cache, dataset=data)
    assert (report.teacher, trained) == ("trained", 1)
    assert len(entries(cache)) == 4
    # the same teacher spelled with its options in another order is the same teacher, and the
    # same data under another spec (a default written out) is the same data
    report, trained, _ = sweep(tmp_path / "e", cache, teacher="mlp:depth=1, width=32")
    assert (report.teacher, trained) == ("cache", 0)
    same_data = "synthetic:n_train=240,n_test=120,num_classes=4,dim=8,seed=3,clusters=2"
    report, trained, _ = sweep(tmp_path / "f", cache, dataset=same_data)
    assert (report.teacher, trained) == ("cache", 0)


def test_without_a_cache_nothing_is_read_or_written(tmp_path):
    cache = tmp_path / "cache"
    sweep(tmp_path / "a", cache)
    report, trained, _ = sweep(tmp_path / "b", False)
    assert (report.teacher, trained) == ("trained", 1)


def test_cli_teacher_cache_options(tmp_path, monkeypatch):
    home_cache = tmp_path / "home-cache"
    monkeypatch.setenv("KDTHEORY_CACHE", str(home_cache))
    args = [
        "run",
        "--dataset", "synthetic:n_train=120,n_test=60,num_classes=3,dim=6",
        "--teacher", "mlp:width=16,depth=1",
        "--student", "mlp:width=8,depth=1",
        "--fractions", "1", "--seeds", "1", "--methods", "label",
        "--steps", "10", "--teacher-steps", "20", "--batch-size", "16",
        "--feature-samples", "20", "--device", "cpu",
    ]  # fmt: skip
    runner = CliRunner()
    off = runner.invoke(app, [*args, "--no-teacher-cache", "--out", str(tmp_path / "a")])
    assert off.exit_code == 0, off.output
    assert not home_cache.exists()  # no file written anywhere in the cache
    chosen = tmp_path / "chosen"
    on = runner.invoke(app, [*args, "--teacher-cache", str(chosen), "--out", str(tmp_path / "b")])
    assert on.exit_code == 0, on.output
    assert len(entries(chosen)) == 1 and not home_cache.exists()
    # the default folder: $KDTHEORY_CACHE/teachers
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "c")])
    assert again.exit_code == 0 and len(entries(home_cache / "teachers")) == 1
    hit = runner.invoke(app, [*args, "--out", str(tmp_path / "d")])
    assert hit.exit_code == 0 and "from the cache" in hit.output
    both = runner.invoke(
        app, [*args, "--teacher-cache", str(chosen), "--no-teacher-cache", "--out", "x"]
    )
    assert both.exit_code == 2 and "give one of them" in both.output


def _damage_checksum(pt, meta):
    blob = bytearray(pt.read_bytes())
    blob[-40] ^= 0xFF
    pt.write_bytes(bytes(blob))


def _pickled_object(pt, meta):
    # a file torch.load(weights_only=False) would unpickle (code could run); its checksum
    # recorded as if it were the entry's own, so only the safe loading stands in the way
    pt.write_bytes(pickle.dumps({"body.0.weight": object()}, protocol=2))
    meta_data = json.loads(meta.read_text())
    meta_data["weights_sha256"] = hashlib.sha256(pt.read_bytes()).hexdigest()
    meta.write_text(json.dumps(meta_data))


def _other_inputs(pt, meta):
    meta_data = json.loads(meta.read_text())
    meta_data["inputs"]["recipe"]["lr"] = 0.5
    meta.write_text(json.dumps(meta_data))


def _garbled_metadata(pt, meta):
    meta.write_text("{not json")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_damage_checksum, "SHA-256 does not match"),
        (_pickled_object, "cannot load it safely"),
        (_other_inputs, "other training inputs"),
        (_garbled_metadata, "cannot be read"),
    ],
)
def test_a_damaged_entry_is_retrained_with_a_warning(tmp_path, damage, reason):
    cache = tmp_path / "cache"
    _, _, fresh = sweep(tmp_path / "a", cache)
    (pt,) = cache.glob("*.pt")
    damage(pt, pt.with_suffix(".json"))
    with pytest.warns(TeacherCacheWarning, match=reason):
        report, trained, again = sweep(tmp_path / "b", cache)
    assert (report.teacher, trained) == ("trained", 1)
    np.testing.assert_array_equal(fresh.teacher_test_logits, again.teacher_test_logits)
    # the entry was replaced by a good one
    report, trained, _ = sweep(tmp_path / "c", cache)
    assert (report.teacher, trained) == ("cache", 0)


def test_an_interrupted_write_is_no_entry_and_an_unwritable_cache_only_warns(tmp_path):
    cache = tmp_path / "cache"
    sweep(tmp_path / "a", cache)
    (pt,) = cache.glob("*.pt")
    pt.with_suffix(".json").unlink()  # killed between the two atomic writes
    report, trained, _ = sweep(tmp_path / "b", cache)
    assert (report.teacher, trained) == ("trained", 1)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.warns(TeacherCacheWarning, match="cannot store the teacher"):
        report, trained, _ = sweep(tmp_path / "c", blocked / "cache")
    assert report.teacher == "trained" and report.trained == 4


@pytest.mark.parametrize(
    ("default_cache_dir", "kind"),
    [(default_cache_dir, "teachers"), (dataset_cache.default_cache_dir, "datasets")],
)
def test_cache_folder_follows_the_environment(monkeypatch, tmp_path, default_cache_dir, kind):
    # the teacher and the dataset cache, each in its own folder under one root
    monkeypatch.setenv("KDTHEORY_CACHE", str(tmp_path / "k"))
    assert default_cache_dir() == tmp_path / "k" / kind
    monkeypatch.delenv("KDTHEORY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "kdtheory" / kind
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_cache_dir() == tmp_path / "h" / ".cache" / "kdtheory" / kind


def test_key_depends_on_what_changes_the_weights_only():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 0, 1])
    state = {"w": torch.ones(2, 2)}
    recipe = {"lr": 1e-3, "steps": 10, "seed": 0}

    def key(**changes):
        args = {
            "x_train": x,
            "y_train": y,
            "dataset": "d",
            "architecture": "mlp",
            "architecture_options": {"width": 4},
            "initial_state": state,
            "recipe": recipe,
            "device_type": "cpu",
        }
        return teacher_key(**args | changes).digest

    base = key()
    assert key(dataset="another spelling of the same data") == base
    changed = [
        key(x_train=x + 1),
        key(y_train=y[::-1].copy()),
        key(architecture_options={"width": 5}),
        key(initial_state={"w": torch.zeros(2, 2)}),
        key(recipe=recipe | {"lr": 2e-3}),
        key(device_type="cuda"),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_entry_with_tensors_of_another_architecture_is_refused(tmp_path):
    cache = TeacherCache(tmp_path)
    key = teacher_key(
        np.zeros((2, 1), np.float32), np.zeros(2), "d", "m", {}, {}, {"lr": 1.0}, "cpu"
    )
    cache.save(key, {"w": torch.ones(3)}, {"teacher_steps_trained": 1})
    assert cache.load(key, {"w": torch.ones(3)}).training == {"teacher_steps_trained": 1}
    with pytest.warns(TeacherCacheWarning, match="do not fit"):
        assert cache.load(key, {"w": torch.ones(4)}) is None
