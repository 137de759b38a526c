from dataclasses import replace

import numpy as np
import pytest
import torch

from kdtheory.training.engine import BatchSampler, CellJob, TrainConfig, TrainingData, train_group
from kdtheory.training.methods import parse_method
from kdtheory.training.sweep import model_builder

METHODS = ["label", "kd:T=4", "ls:eps=matched", "kd-shuffled:T=2", "kd-mse", "kd:T=3,alpha=0.5"]


def make_data(shape, n=64, n_test=16, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = rng.integers(0, k, n)
    xt = rng.normal(size=(n_test, *shape)).astype(np.float32)
    teacher = rng.normal(size=(n, k)).astype(np.float32) * 3
    return TrainingData.from_numpy(x, y, xt, teacher, k, torch.device("cpu"))


def jobs_for(methods, n, seeds=(0, 1)):
    jobs = []
    for s in seeds:
        for i, m in enumerate(methods):
            sub = np.sort(np.random.default_rng(s).permutation(n)[: 10 + 7 * i])
            jobs.append(CellJob(f"{m}-{s}", parse_method(m), sub, s))
    return jobs


CONFIG = TrainConfig(steps=12, batch_size=8, lr=3e-3, log_points=3)


def test_batch_sampler_is_deterministic_and_stays_in_subset():
    sub = np.array([3, 5, 7, 11, 13])
    a, b = BatchSampler(sub, 4, seed=1).take(6), BatchSampler(sub, 4, seed=1).take(6)
    assert np.array_equal(a, b) and a.shape == (6, 4)
    assert set(a.ravel()) == set(sub.tolist())
    # every epoch visits each sample once: counts differ by at most one
    counts = np.unique(a.ravel(), return_counts=True)[1]
    assert counts.max() - counts.min() <= 1
    assert not np.array_equal(a, BatchSampler(sub, 4, seed=2).take(6))


def test_same_seed_gives_same_logits():
    data = make_data((6,))
    build = model_builder("mlp:width=16,depth=1", (6,), 4)
    r1 = train_group(jobs_for(["kd:T=4"], 64), build, data, CONFIG, np.arange(10))
    r2 = train_group(jobs_for(["kd:T=4"], 64), build, data, CONFIG, np.arange(10))
    for a, b in zip(r1, r2, strict=True):
        np.testing.assert_array_equal(a.test_logits, b.test_logits)
        np.testing.assert_array_equal(a.features, b.features)
    # different seeds differ
    assert not np.allclose(r1[0].test_logits, r1[1].test_logits)


@pytest.mark.parametrize(
    "arch, shape",
    [
        ("mlp:width=16,depth=2", (6,)),
        ("cnn:channels=4", (1, 8, 8)),
        ("vit:patch=4,dim=16,depth=1,heads=2", (1, 8, 8)),
    ],
)
def test_batched_equals_sequential_for_every_objective(arch, shape):
    data = make_data(shape)
    build = model_builder(arch, shape, 4)
    jobs = jobs_for(METHODS, 64, seeds=(0,))
    together = train_group(jobs, build, data, CONFIG, np.arange(12))
    for job, res in zip(jobs, together, strict=True):
        (alone,) = train_group([job], build, data, CONFIG, np.arange(12))
        np.testing.assert_allclose(res.test_logits, alone.test_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.train_logits, alone.train_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.features, alone.features, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.loss_history, alone.loss_history, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            res.classifier_weight, alone.classifier_weight, rtol=1e-4, atol=1e-5
        )


def test_result_does_not_depend_on_batchmates():
    data = make_data((6,))
    build = model_builder("mlp:width=16,depth=1", (6,), 4)
    jobs = jobs_for(["label", "kd:T=4", "kd-mse"], 64)
    first = train_group([jobs[0], jobs[1]], build, data, CONFIG)
    other = train_group([jobs[2], jobs[0], jobs[4]], build, data, CONFIG)
    np.testing.assert_allclose(first[0].test_logits, other[1].test_logits, rtol=1e-4, atol=1e-5)


def test_training_reduces_the_loss():
    data = make_data((6,))
    build = model_builder("mlp:width=32,depth=1", (6,), 4)
    job = CellJob("a", parse_method("label"), np.arange(32), 0)
    (res,) = train_group([job], build, data, TrainConfig(steps=200, batch_size=16, lr=1e-2))
    assert res.loss_history[-1] < 0.5 * res.loss_history[0]
    train_acc = (res.train_logits[:32].argmax(-1) == data.y_train[:32].numpy()).mean()
    assert train_acc > 0.9  # memorises its 32 samples


def _on(data: TrainingData, device: str) -> TrainingData:
    return TrainingData(
        data.x_train.to(device),
        data.y_train.to(device),
        data.x_test.to(device),
        data.teacher_train_logits.to(device),
        data.num_classes,
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "arch, shape",
    [
        ("mlp:width=16,depth=2", (6,)),
        ("cnn:channels=4", (1, 8, 8)),
        ("vit:patch=4,dim=16", (1, 8, 8)),
    ],
)
def test_cuda_training_is_reproducible_batched_and_agrees_with_cpu(arch, shape):
    """On a GPU: same seed → same logits, batched == sequential, and CPU ≈ CUDA."""
    data = make_data(shape)
    gpu = _on(data, "cuda")
    build = model_builder(arch, shape, 4)
    jobs = jobs_for(METHODS[:4], 64, seeds=(0,))
    together = train_group(jobs, build, gpu, CONFIG, np.arange(12))
    again = train_group(jobs, build, gpu, CONFIG, np.arange(12))
    on_cpu = train_group(jobs, build, data, CONFIG, np.arange(12))
    for job, res, rep, cpu in zip(jobs, together, again, on_cpu, strict=True):
        np.testing.assert_array_equal(res.test_logits, rep.test_logits)
        (alone,) = train_group([job], build, gpu, CONFIG, np.arange(12))
        np.testing.assert_allclose(res.test_logits, alone.test_logits, rtol=1e-3, atol=1e-3)
        # cuDNN may use TF32 convolutions: CPU and GPU agree loosely, not bit for bit
        np.testing.assert_allclose(res.test_logits, cpu.test_logits, rtol=2e-2, atol=2e-2)


def test_cuda_training_uses_deterministic_cudnn_and_restores_the_flags():
    """Without a GPU too: the flags are set for a CUDA group and restored afterwards."""
    from kdtheory.training.engine import _deterministic_cudnn

    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    with _deterministic_cudnn(torch.device("cuda")):
        assert cudnn.deterministic and not cudnn.benchmark
    assert (cudnn.deterministic, cudnn.benchmark) == before
    with _deterministic_cudnn(torch.device("cpu")):
        assert (cudnn.deterministic, cudnn.benchmark) == before


# ------------------------------------------------------------------ per-cell budgets
MIXED = TrainConfig(steps=12, batch_size=8, lr=3e-3, log_points=4, warmup=0.2)


def mixed_jobs(methods, budgets, seed=0):
    jobs = []
    for i, (m, b) in enumerate(zip(methods, budgets, strict=True)):
        sub = np.sort(np.random.default_rng(seed + i).permutation(64)[: 10 + 5 * i])
        jobs.append(CellJob(f"{m}-{i}", parse_method(m), sub, seed, steps=b))
    return jobs


def test_lr_factor_warms_up_then_decays_to_zero_over_the_budget():
    from kdtheory.training.engine import lr_factor

    f = [lr_factor(s, 20, warmup=0.2) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]  # ceil(0.2 * 20) = 4 warm-up steps
    assert np.all(np.diff(f[3:]) <= 0)  # then non-increasing
    assert f[-1] < 0.05
    assert lr_factor(0, 10) == 1.0  # no warm-up: cosine from the first step


def test_interval_ends_partition_the_budget():
    from kdtheory.training.engine import interval_ends

    assert interval_ends(100, 4).tolist() == [25, 50, 75, 100]
    assert interval_ends(10, 4).tolist() == [3, 5, 8, 10]
    assert interval_ends(3, 5)[-1] == 3


@pytest.mark.parametrize(
    "arch, shape",
    [
        ("mlp:width=16,depth=2", (6,)),
        ("cnn:channels=4", (1, 8, 8)),
        ("vit:patch=4,dim=16,depth=1,heads=2", (1, 8, 8)),
    ],
)
def test_mixed_budgets_batched_equals_sequential(arch, shape):
    """Cells with budgets 5..30 train as one group; each equals the same cell trained alone."""
    data = make_data(shape)
    build = model_builder(arch, shape, 4)
    jobs = mixed_jobs(["label", "kd:T=4", "ls:eps=matched", "kd-shuffled:T=2"], [30, 5, 17, 9])
    together = train_group(jobs, build, data, MIXED, np.arange(12))
    for job, res in zip(jobs, together, strict=True):
        assert res.steps == job.steps and not res.diverged
        assert res.loss_history.shape == (MIXED.log_points,)
        assert np.isfinite(res.loss_history).all()
        (alone,) = train_group([job], build, data, MIXED, np.arange(12))
        np.testing.assert_allclose(res.test_logits, alone.test_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.features, alone.features, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.loss_history, alone.loss_history, rtol=1e-4, atol=1e-5)


def test_mixed_budgets_with_weight_decay_equal_training_alone():
    """The per-cell learning-rate step is AdamW with that cell's lr, weight decay included."""
    data = make_data((6,))
    build = model_builder("mlp:width=16,depth=1", (6,), 4)
    config = TrainConfig(batch_size=8, lr=3e-3, weight_decay=0.5, log_points=4, warmup=0.1)
    jobs = mixed_jobs(["label", "kd:T=4", "kd-mse"], [30, 7, 13])
    together = train_group(jobs, build, data, config)
    for job, res in zip(jobs, together, strict=True):
        (alone,) = train_group([job], build, data, config)
        np.testing.assert_allclose(res.test_logits, alone.test_logits, rtol=1e-5, atol=1e-6)
    # and it is AdamW: the fixed-step path (one group-wide lr) gives the same cell
    (fixed,) = train_group([replace(jobs[0], steps=None)], build, data, replace(config, steps=30))
    np.testing.assert_allclose(together[0].test_logits, fixed.test_logits, rtol=1e-4, atol=1e-5)


def test_a_cell_does_not_depend_on_its_batchmates_budgets():
    data = make_data((6,))
    build = model_builder("mlp:width=16,depth=1", (6,), 4)
    a = mixed_jobs(["label", "kd:T=4"], [20, 4])
    b = mixed_jobs(["label", "kd:T=4"], [20, 40])
    ra, rb = train_group(a, build, data, MIXED), train_group(b, build, data, MIXED)
    np.testing.assert_allclose(ra[0].test_logits, rb[0].test_logits, rtol=1e-5, atol=1e-6)
    # and the budget is real: the same cell with a longer budget ends elsewhere
    assert not np.allclose(ra[1].test_logits, rb[1].test_logits, atol=1e-3)


def test_finished_cells_leave_the_group(monkeypatch):
    """After the short cells finish, the group's steps only carry the long cell."""
    data = make_data((6,))
    build = model_builder("mlp:width=16,depth=1", (6,), 4)
    seen = []
    from kdtheory.plugins import networks

    original = networks.MLP.grouped_forward

    def spy(self, params, buffers, x, with_features=False):
        seen.append(x.shape[0])
        return original(self, params, buffers, x, with_features)

    monkeypatch.setattr(networks.MLP, "grouped_forward", spy)
    jobs = mixed_jobs(["label", "kd:T=4", "kd-mse"], [3, 6, 10])
    res = train_group(jobs, build, data, MIXED)
    assert seen == [3] * 3 + [2] * 3 + [1] * 4
    assert [r.steps for r in res] == [3, 6, 10]


def test_interval_averages_are_means_of_the_minibatch_losses():
    """With one interval per step the history is the per-step loss; coarser ones average it."""
    data = make_data((6,))
    build = model_builder("mlp:width=16,depth=1", (6,), 4)
    (job,) = mixed_jobs(["label"], [8])
    (fine,) = train_group([job], build, data, TrainConfig(batch_size=8, lr=3e-3, log_points=8))
    (coarse,) = train_group([job], build, data, TrainConfig(batch_size=8, lr=3e-3, log_points=2))
    np.testing.assert_allclose(coarse.loss_history, fine.loss_history.reshape(2, 4).mean(1), 1e-5)


def test_a_diverging_cell_stops_and_says_so():
    data = make_data((6,))
    build = model_builder("mlp:width=16,depth=1", (6,), 4)
    jobs = mixed_jobs(["label", "kd:T=4"], [20, 20])
    res = train_group(jobs, build, data, TrainConfig(batch_size=8, lr=1e30, log_points=10))
    assert all(r.diverged for r in res)
    assert all(r.steps < 20 for r in res)
    assert not np.isfinite(res[0].loss_history).all()
