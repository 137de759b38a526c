import numpy as np
import pytest
import torch

from kdtheory.engine import BatchSampler, CellJob, TrainConfig, TrainingData, train_group
from kdtheory.plugins.objectives import parse_method
from kdtheory.sweep import model_builder

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


CONFIG = TrainConfig(steps=12, batch_size=8, lr=3e-3, log_every=4)


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
    from kdtheory.engine import _deterministic_cudnn

    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    with _deterministic_cudnn(torch.device("cuda")):
        assert cudnn.deterministic and not cudnn.benchmark
    assert (cudnn.deterministic, cudnn.benchmark) == before
    with _deterministic_cudnn(torch.device("cpu")):
        assert (cudnn.deterministic, cudnn.benchmark) == before
