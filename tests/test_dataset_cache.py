"""The dataset cache: MNIST-1D is generated once per user and arguments, verified on load."""

import io
import json
import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from kdtheory.cli.app import app
from kdtheory.plugins import datasets as builtin
from kdtheory.training import dataset_cache as dc
from kdtheory.training.dataset_cache import (
    DatasetCache,
    DatasetCacheWarning,
    cached_arrays,
    dataset_key,
    using,
)
from kdtheory.training.sweep import load_dataset

SMALL = "mnist1d:num_samples=100,seed=5"


class Generator:
    """Counts its calls; makes arrays that depend on ``seed``."""

    def __init__(self, seed: int = 0) -> None:
        self.calls = 0
        self.seed = seed

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        rng = np.random.default_rng(self.seed)
        return {"x": rng.standard_normal((6, 3)), "y": np.arange(6, dtype=np.int64)}


def fetch(cache: DatasetCache | None, gen: Generator, **arguments) -> dict[str, np.ndarray]:
    with using(cache):
        return cached_arrays("toy", arguments or {"n": 6}, gen, ("numpy",))


@pytest.fixture
def fresh_mnist1d():
    """MNIST-1D loads that reach the disk cache (the in-process memo emptied around them)."""
    builtin._mnist1d_arrays.cache_clear()
    yield
    builtin._mnist1d_arrays.cache_clear()


def test_a_miss_generates_and_stores_a_hit_reads_the_same_arrays(tmp_path):
    cache, gen = DatasetCache(tmp_path / "c"), Generator()
    first = fetch(cache, gen)
    assert gen.calls == 1
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1
    assert len(list((tmp_path / "c").glob("*.json"))) == 1
    again = fetch(cache, gen)
    assert gen.calls == 1  # read back, not generated
    assert set(again) == {"x", "y"}
    for name in first:
        assert again[name].dtype == first[name].dtype
        np.testing.assert_array_equal(again[name], first[name])


def test_without_an_active_cache_it_generates_and_writes_nothing(tmp_path):
    gen = Generator()
    fetch(None, gen)
    fetch(None, gen)
    with using(DatasetCache(tmp_path / "c")):
        pass  # the block ends: later loads use no cache again
    cached_arrays("toy", {"n": 6}, gen)
    assert gen.calls == 3
    assert not (tmp_path / "c").exists()
    assert dc.active_cache() is None


def test_the_key_changes_with_arguments_generator_versions_and_format(monkeypatch):
    base = dataset_key("mnist1d", {"num_samples": 100, "seed": 5}, ("mnist1d",))
    assert base == dataset_key("mnist1d", {"seed": 5, "num_samples": 100}, ("mnist1d",))
    others = [
        dataset_key("mnist1d", {"num_samples": 200, "seed": 5}, ("mnist1d",)),
        dataset_key("mnist1d", {"num_samples": 100, "seed": 6}, ("mnist1d",)),
        dataset_key("other", {"num_samples": 100, "seed": 5}, ("mnist1d",)),
        dataset_key("mnist1d", {"num_samples": 100, "seed": 5}, ("mnist1d", "scipy")),
    ]
    real = dc._version
    monkeypatch.setattr(dc, "_version", lambda name: "9.9" if name == "mnist1d" else real(name))
    others.append(dataset_key("mnist1d", {"num_samples": 100, "seed": 5}, ("mnist1d",)))
    monkeypatch.setattr(dc, "_version", real)
    monkeypatch.setattr(dc, "ENTRY_FORMAT", dc.ENTRY_FORMAT + 1)
    others.append(dataset_key("mnist1d", {"num_samples": 100, "seed": 5}, ("mnist1d",)))
    digests = {base.digest, *(k.digest for k in others)}
    assert len(digests) == 1 + len(others)
    assert base.inputs["packages"]["numpy"] == np.__version__


def _flip_a_byte(npz, meta):
    """Damage one byte of the stored ``x`` values (the zip's CRC no longer matches)."""
    with np.load(npz) as stored:
        x = stored["x"].tobytes()
    blob = bytearray(npz.read_bytes())
    at = bytes(blob).index(x) + 5
    blob[at] ^= 0xFF
    npz.write_bytes(bytes(blob))


def _other_values(npz, meta):
    """A well-formed .npz of the recorded names, dtypes and shapes, with ``x`` set to 0."""
    with np.load(npz) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["x"] = np.zeros_like(arrays["x"])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    npz.write_bytes(buffer.getvalue())


def _pickled_object(npz, meta):
    # an object array (numpy would unpickle it with allow_pickle=True): only the refusal to
    # unpickle stands in the way
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([object()], dtype=object), y=np.arange(6))
    npz.write_bytes(buffer.getvalue())


def _other_arguments(npz, meta):
    data = json.loads(meta.read_text())
    data["inputs"]["arguments"]["n"] = 7
    meta.write_text(json.dumps(data))


def _garbled_metadata(npz, meta):
    meta.write_text("{not json")


def _non_finite(npz, meta):
    # recorded as the entry's own (layout and checksum): only the finiteness check refuses it
    arrays = {"x": np.full((6, 3), np.nan), "y": np.arange(6, dtype=np.int64)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    npz.write_bytes(buffer.getvalue())
    data = json.loads(meta.read_text())
    data["sha256"] = dc._digest(arrays)
    meta.write_text(json.dumps(data))


def _not_a_zip(npz, meta):
    # overwritten by something else entirely: refused as such, not reported as pickled data
    npz.write_bytes(b"garbage\n")


def _other_shapes(npz, meta):
    data = json.loads(meta.read_text())
    data["arrays"]["x"][1] = [5, 3]
    meta.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_flip_a_byte, "cannot read it .*CRC"),
        (_other_values, "SHA-256 does not match"),
        (_pickled_object, "cannot read it with allow_pickle=False .*pickle"),
        (_other_arguments, "other generator arguments"),
        (_garbled_metadata, "cannot be read"),
        (_non_finite, "non-finite"),
        (_other_shapes, "not those recorded"),
        (_not_a_zip, r"not an \.npz file \(damaged\)"),
    ],
)
def test_a_damaged_entry_is_regenerated_with_a_warning_and_replaced(tmp_path, damage, reason):
    cache, gen = DatasetCache(tmp_path / "c"), Generator()
    fresh = fetch(cache, gen)
    (npz,) = (tmp_path / "c").glob("*.npz")
    damage(npz, npz.with_suffix(".json"))
    with pytest.warns(DatasetCacheWarning, match=reason):
        again = fetch(cache, gen)
    assert gen.calls == 2
    np.testing.assert_array_equal(again["x"], fresh["x"])
    third = fetch(cache, gen)  # the entry was replaced by a good one
    assert gen.calls == 2
    np.testing.assert_array_equal(third["x"], fresh["x"])


def test_an_entry_written_again_with_the_same_arrays_still_verifies(tmp_path):
    # two runs storing the same dataset at once: one's .npz (zip members carry their write
    # time) may end up beside the other's metadata
    cache, gen = DatasetCache(tmp_path / "c"), Generator()
    fetch(cache, gen)
    (npz,) = (tmp_path / "c").glob("*.npz")
    meta = npz.with_suffix(".json").read_bytes()
    cache.save(dataset_key("toy", {"n": 6}, ("numpy",)), gen())
    npz.with_suffix(".json").write_bytes(meta)
    fetch(cache, gen)
    assert gen.calls == 2  # the one call of save, no regeneration on load


def test_an_interrupted_write_is_no_entry_and_an_unwritable_cache_only_warns(tmp_path):
    cache, gen = DatasetCache(tmp_path / "c"), Generator()
    fetch(cache, gen)
    (npz,) = (tmp_path / "c").glob("*.npz")
    npz.with_suffix(".json").unlink()  # killed between the two atomic writes
    fetch(cache, gen)
    assert gen.calls == 2
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.warns(DatasetCacheWarning, match="cannot store the dataset"):
        arrays = fetch(DatasetCache(blocked / "c"), gen)
    assert gen.calls == 3 and arrays["x"].shape == (6, 3)


def test_mnist1d_from_the_cache_equals_mnist1d_generated(tmp_path, monkeypatch, fresh_mnist1d):
    generated = load_dataset(SMALL)  # no cache: generated
    cache = DatasetCache(tmp_path / "c")
    builtin._mnist1d_arrays.cache_clear()
    stored = load_dataset(SMALL, cache)  # miss: generated and stored
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1
    builtin._mnist1d_arrays.cache_clear()

    def no_generation(*args):
        raise AssertionError("a cached MNIST-1D was generated again")

    monkeypatch.setattr(builtin, "_generate_mnist1d", no_generation)
    read = load_dataset(SMALL, cache)  # hit
    for loaded in (stored, read):
        for name in ("x_train", "y_train", "x_test", "y_test"):
            a, b = getattr(generated, name), getattr(loaded, name)
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes()
    builtin._mnist1d_arrays.cache_clear()
    with pytest.raises(AssertionError, match="generated again"):  # another seed: a miss
        load_dataset("mnist1d:num_samples=100,seed=6", cache)


def _cli_run_args(seed: int) -> list[str]:
    """``kdtheory run`` of one tiny cell on MNIST-1D of generator seed ``seed`` (no teacher
    cache, so that only the dataset cache is exercised)."""
    return [
        "run",
        "--dataset", f"mnist1d:num_samples=100,seed={seed}",
        "--teacher", "mlp:width=16,depth=1",
        "--student", "mlp:width=8,depth=1",
        "--fractions", "1", "--seeds", "1", "--methods", "label",
        "--steps", "5", "--teacher-steps", "5", "--batch-size", "16",
        "--feature-samples", "10", "--device", "cpu", "--no-teacher-cache",
    ]  # fmt: skip


def test_cli_dataset_cache_options(tmp_path, monkeypatch, fresh_mnist1d):
    home_cache = tmp_path / "home-cache"
    monkeypatch.setenv("KDTHEORY_CACHE", str(home_cache))
    args = _cli_run_args(seed=3)
    runner = CliRunner()
    off = runner.invoke(app, [*args, "--no-dataset-cache", "--out", str(tmp_path / "a")])
    assert off.exit_code == 0, off.output
    assert not home_cache.exists()
    shown_off = " ".join(off.output.split())  # rich wraps long lines
    assert "trained 1 cell(s)" in shown_off
    assert "dataset generated" not in shown_off and "dataset from" not in shown_off
    builtin._mnist1d_arrays.cache_clear()
    chosen = tmp_path / "chosen"
    on = runner.invoke(app, [*args, "--dataset-cache", str(chosen), "--out", str(tmp_path / "b")])
    assert on.exit_code == 0, on.output
    assert len(list(chosen.glob("*.npz"))) == 1 and not home_cache.exists()
    # the summary line says where the dataset came from
    assert "dataset generated, teacher trained" in " ".join(on.output.split())
    builtin._mnist1d_arrays.cache_clear()
    hit = runner.invoke(app, [*args, "--dataset-cache", str(chosen), "--out", str(tmp_path / "d")])
    assert hit.exit_code == 0, hit.output
    assert "dataset from the dataset cache, teacher trained" in " ".join(hit.output.split())
    builtin._mnist1d_arrays.cache_clear()
    default = runner.invoke(app, [*args, "--out", str(tmp_path / "c")])  # $KDTHEORY_CACHE
    assert default.exit_code == 0, default.output
    assert len(list((home_cache / "datasets").glob("*.npz"))) == 1
    both = runner.invoke(
        app, [*args, "--dataset-cache", str(chosen), "--no-dataset-cache", "--out", "x"]
    )
    assert both.exit_code == 2 and "give one of them" in both.output
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused = runner.invoke(app, [*args, "--dataset-cache", str(a_file), "--out", "x"])
    assert refused.exit_code == 2 and "is a file, not a folder" in refused.output


def test_cli_shows_a_damaged_entry_as_a_warning(tmp_path, fresh_mnist1d):
    args = [*_cli_run_args(seed=4), "--dataset-cache", str(tmp_path / "c")]
    runner = CliRunner()
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "a")]).exit_code == 0
    (npz,) = (tmp_path / "c").glob("*.npz")
    _other_values(npz, npz.with_suffix(".json"))
    builtin._mnist1d_arrays.cache_clear()
    damaged = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert damaged.exit_code == 0, damaged.output
    shown = " ".join(damaged.output.split())  # rich wraps long lines
    assert "warning: dataset cache entry" in shown and "SHA-256 does not match" in shown
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1


def test_cluster_workers_load_through_the_dataset_cache(tmp_path, monkeypatch, fresh_mnist1d):
    # what a Dask worker runs, called here: the teacher task and a group task's inputs load the
    # dataset through the cache option the client passes (a relative folder made absolute)
    from kdtheory.training.distributed import (
        _WORKER_STATE,
        GroupTask,
        _inputs,
        cache_option,
        data_digest,
        teacher_task,
    )
    from kdtheory.training.sweep import configs_from_options, open_teacher_cache, run_experiment

    (cfg,) = configs_from_options(
        None,
        {
            "dataset": "mnist1d:num_samples=100,seed=7",
            "teacher": "mlp:width=16,depth=1",
            "student": "mlp:width=8,depth=1",
            "fractions": (1.0,),
            "seeds": (0,),
            "methods": ("label",),
            "steps": 5,
            "teacher_steps": 5,
            "batch_size": 16,
            "feature_samples": 10,
        },
    )
    monkeypatch.chdir(tmp_path)
    assert cache_option("c") == str(tmp_path / "c") and cache_option(True) is True
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # "~" means the same on both sides
    assert cache_option("~/d") == str(tmp_path / "home" / "d")
    assert dc.open_dataset_cache("~/d").root == tmp_path / "home" / "d"
    assert open_teacher_cache("~/t").root == tmp_path / "home" / "t"
    out = tmp_path / "store"
    report = run_experiment(cfg, out, device="cpu", teacher_cache=False, dataset_cache="c")
    assert report.dataset == "generated"
    digest = data_digest(load_dataset(cfg.dataset))
    builtin._mnist1d_arrays.cache_clear()

    def no_generation(*args):
        raise AssertionError("the worker generated MNIST-1D again")

    monkeypatch.setattr(builtin, "_generate_mnist1d", no_generation)
    option = cache_option("c")  # made on the client
    task = GroupTask(cfg, str(out), (), "cpu", digest, dataset_cache=option)
    task = pickle.loads(pickle.dumps(task))  # as Dask ships it to a worker
    elsewhere = tmp_path / "worker-cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a worker's working directory is not the client's
    _WORKER_STATE.clear()
    try:
        data = _inputs(task)[0]
        assert data_digest(data) == digest
        builtin._mnist1d_arrays.cache_clear()
        assert teacher_task(cfg, str(out), "cpu", False, option) == "store"
        builtin._mnist1d_arrays.cache_clear()
        _WORKER_STATE.clear()
        with pytest.raises(AssertionError, match="generated MNIST-1D again"):
            _inputs(GroupTask(cfg, str(out), (), "cpu", digest, dataset_cache=False))
    finally:
        _WORKER_STATE.clear()
