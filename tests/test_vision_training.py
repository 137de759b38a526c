"""ResNet, augmentation and bf16 training: batched == sequential, seeded, recorded."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from vision_fixtures import write_cifar10

from kdtheory.errors import SpecError
from kdtheory.training.augment import CROP_PADDING, AugmentSampler, check_augment, crop_flip
from kdtheory.training.engine import CellJob, TrainConfig, TrainingData, train_group
from kdtheory.training.methods import parse_method
from kdtheory.training.sweep import ExperimentConfig, model_builder

METHODS = ["label", "kd:T=4", "ls:eps=matched", "kd-shuffled:T=2", "kd-mse"]
SHAPE = (3, 8, 8)


def image_data(teacher: nn.Module | None, n=48, n_test=12, k=4, seed=0) -> TrainingData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *SHAPE)).astype(np.float32)
    y = rng.integers(0, k, n)
    xt = rng.normal(size=(n_test, *SHAPE)).astype(np.float32)
    logits = rng.normal(size=(n, k)).astype(np.float32) * 3
    return TrainingData.from_numpy(x, y, xt, logits, k, torch.device("cpu"), teacher=teacher)


def jobs_for(methods, n=48, seeds=(0,)):
    jobs = []
    for s in seeds:
        for i, m in enumerate(methods):
            sub = np.sort(np.random.default_rng(s + i).permutation(n)[: 9 + 6 * i])
            jobs.append(CellJob(f"{m}-{s}", parse_method(m), sub, s, steps=6 + 2 * i))
    return jobs


def small_teacher(k=4) -> nn.Module:
    torch.manual_seed(7)
    return model_builder("cnn:channels=4,width=8", SHAPE, k)()


AUG = TrainConfig(steps=10, batch_size=8, lr=3e-3, log_points=3, augment="crop-flip")


# ------------------------------------------------------------------ ResNet
def test_resnet_grouped_forward_matches_vmap_in_float64():
    build = model_builder("resnet:depth=8,width=4", SHAPE, 5)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build().double())
    assert not list(models[0].buffers())  # GroupNorm: no running statistics
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, *SHAPE, generator=g, dtype=torch.float64)

    def run(p, b, xb):
        return functional_call(base, (p, b), (xb,), {"with_features": True})

    want = vmap(run)(params, buffers, x)
    got = base.grouped_forward(params, buffers, x, with_features=True)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-10)
    loss = lambda out: out[0].square().sum() + out[1].sum()  # noqa: E731
    for name, a, e in zip(
        params,
        torch.autograd.grad(loss(got), list(params.values())),
        torch.autograd.grad(loss(want), list(params.values())),
        strict=True,
    ):
        torch.testing.assert_close(a, e, atol=1e-11, rtol=1e-9, msg=name)


def test_resnet_shape_and_options():
    net = model_builder("resnet", (3, 32, 32), 10)()
    assert sum(p.numel() for p in net.parameters()) == 272_474  # ResNet-20, GroupNorm affine
    assert net.feature_dim == 64 and len(net.blocks) == 9
    logits, feats = net(torch.zeros(2, 3, 32, 32), with_features=True)
    assert logits.shape == (2, 10) and feats.shape == (2, 64)
    with pytest.raises(SpecError, match="6n\\+2"):
        model_builder("resnet:depth=10", SHAPE, 4)()
    with pytest.raises(SpecError, match=r"\(C, H, W\)"):
        model_builder("resnet", (40,), 4)()


def test_resnet_batched_equals_sequential_with_augmentation():
    """Every objective, per-cell budgets, crop-flip on, KD targets from the teacher on the
    augmented batch: a cell trained in the group equals the same cell trained alone."""
    data = image_data(small_teacher())
    build = model_builder("resnet:depth=8,width=4", SHAPE, 4)
    jobs = jobs_for(METHODS)
    together = train_group(jobs, build, data, AUG, np.arange(10))
    for job, res in zip(jobs, together, strict=True):
        (alone,) = train_group([job], build, data, AUG, np.arange(10))
        np.testing.assert_allclose(res.test_logits, alone.test_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.features, alone.features, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.loss_history, alone.loss_history, rtol=1e-4, atol=1e-5)
    # and the vmap fallback computes the same group
    via_vmap = train_group(jobs, build, data, AUG, np.arange(10), kernels="vmap")
    for a, b in zip(together, via_vmap, strict=True):
        np.testing.assert_allclose(a.test_logits, b.test_logits, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ augmentation
def test_crop_flip_is_padding_crop_and_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 2, 6, 5, generator=g)
    draws = torch.tensor([[[0, 8, 0], [4, 4, 1], [8, 0, 1]], [[3, 5, 0], [8, 8, 0], [1, 2, 1]]])
    out = crop_flip(x, draws)
    p = CROP_PADDING
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for c in range(2):
        for b in range(3):
            oy, ox, flip = draws[c, b].tolist()
            want = padded[c, b, :, oy : oy + 6, ox : ox + 5]
            torch.testing.assert_close(out[c, b], want.flip(-1) if flip else want, rtol=0, atol=0)
    assert torch.equal(crop_flip(x, torch.tensor([4, 4, 0]).expand(2, 3, 3)), x)  # centre crop


def test_augment_sampler_is_seeded_per_cell():
    a = AugmentSampler(3, 40, 8).take(5)
    assert a.shape == (5, 8, 3)
    assert np.array_equal(a, AugmentSampler(3, 40, 8).take(5))
    assert not np.array_equal(a, AugmentSampler(4, 40, 8).take(5))
    assert a[..., :2].min() >= 0 and a[..., :2].max() <= 2 * CROP_PADDING
    assert set(np.unique(a[..., 2])) <= {0, 1}
    # blocks of any length give the same draws (a cell alone and in a group take different ones)
    split = AugmentSampler(3, 40, 8)
    assert np.array_equal(np.concatenate([split.take(2), split.take(3)]), a)


def test_augmentation_changes_training_and_is_reproducible():
    data = image_data(small_teacher())
    build = model_builder("cnn:channels=4,width=8", SHAPE, 4)
    jobs = jobs_for(["kd:T=4", "label"])
    plain = train_group(jobs, build, data, replace_cfg(AUG, augment="none"))
    aug = train_group(jobs, build, data, AUG)
    again = train_group(jobs, build, data, AUG)
    for p, a, b in zip(plain, aug, again, strict=True):
        np.testing.assert_array_equal(a.test_logits, b.test_logits)
        assert not np.allclose(p.test_logits, a.test_logits)


def test_kd_targets_come_from_the_teacher_on_augmented_inputs(monkeypatch):
    """The teacher runs once per step on the KD cells' augmented batches, not on label cells."""
    teacher = small_teacher()
    seen = []
    real = teacher.forward

    def spy(x, with_features=False):
        seen.append(x.detach().clone())
        return real(x, with_features)

    monkeypatch.setattr(teacher, "forward", spy)
    data = image_data(teacher)
    jobs = jobs_for(["label", "kd:T=4"])
    jobs = [CellJob(j.key, j.objective, j.subset, j.seed, steps=4) for j in jobs]
    train_group(jobs, model_builder("cnn:channels=4,width=8", SHAPE, 4), data, AUG)
    assert len(seen) == 4 and all(s.shape == (AUG.batch_size, *SHAPE) for s in seen)
    # those inputs are augmented training images, not the stored ones
    stored = {tuple(np.round(r.numpy().ravel()[:6], 5)) for r in data.x_train}
    rows = [tuple(np.round(r.numpy().ravel()[:6], 5)) for s in seen for r in s]
    assert sum(r in stored for r in rows) < len(rows)


def test_augmentation_refuses_non_images_and_a_missing_teacher():
    with pytest.raises(SpecError, match=r"\(C, H, W\).*--augment none"):
        check_augment("crop-flip", (40,))
    with pytest.raises(SpecError, match="crop-flip"):
        check_augment("rotate")
    build = model_builder("cnn:channels=4,width=8", SHAPE, 4)
    with pytest.raises(ValueError, match="TrainingData.teacher"):
        train_group(jobs_for(["kd:T=4"]), build, image_data(None), AUG)
    # label training (a teacher's own) needs no teacher
    (res,) = train_group(jobs_for(["label"]), build, image_data(None), AUG)
    assert np.isfinite(res.test_logits).all()


def replace_cfg(cfg: TrainConfig, **changes) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


# ------------------------------------------------------------------ bf16
def test_bf16_on_cpu_runs_is_reproducible_and_close_to_fp32():
    rng = np.random.default_rng(0)
    k, n = 3, 240
    means = rng.normal(size=(k, *SHAPE)).astype(np.float32)
    y = rng.integers(0, k, n + 120)
    x = (means[y] + 0.8 * rng.normal(size=(n + 120, *SHAPE))).astype(np.float32)
    data = TrainingData.from_numpy(x[:n], y[:n], x[n:], None, k, torch.device("cpu"))
    build = model_builder("resnet:depth=8,width=4", SHAPE, k)
    jobs = [CellJob(f"s{s}", parse_method("label"), np.arange(n), s) for s in (0, 1)]
    cfg = TrainConfig(steps=60, batch_size=32, lr=1e-2, log_points=4)
    fp32 = train_group(jobs, build, data, cfg)
    bf16 = train_group(jobs, build, data, replace_cfg(cfg, precision="bf16"))
    again = train_group(jobs, build, data, replace_cfg(cfg, precision="bf16"))
    for a, b, c in zip(fp32, bf16, again, strict=True):
        np.testing.assert_array_equal(b.test_logits, c.test_logits)  # seeded: reproducible
        assert not np.array_equal(a.test_logits, b.test_logits)  # bf16 really ran
        acc32 = (a.test_logits.argmax(-1) == y[n:]).mean()
        acc16 = (b.test_logits.argmax(-1) == y[n:]).mean()
        assert acc32 > 0.8 and abs(acc32 - acc16) < 0.06
    with pytest.raises(SpecError, match="--precision"):
        train_group(jobs, build, data, replace_cfg(cfg, precision="fp8"))


# ------------------------------------------------------------------ the sweep and the CLI
def test_defaults_leave_recipes_as_they_were():
    recipe = ExperimentConfig().recipe()
    assert "augment" not in recipe and "precision" not in recipe
    assert "teacher_targets" not in recipe
    vision = ExperimentConfig(augment="crop-flip", precision="bf16").recipe()
    assert vision["augment"] == "crop-flip" and vision["precision"] == "bf16"
    assert "augmented batch" in vision["teacher_targets"]


def test_run_trains_a_resnet_on_tiny_cifar_with_crop_flip_and_bf16(tmp_path):
    from typer.testing import CliRunner

    import kdtheory
    from kdtheory.cli.app import app

    root = write_cifar10(tmp_path / "cifar", per_batch=8, n_test=16)
    out = tmp_path / "runs"
    args = [
        "run",
        "--out",
        str(out),
        "--dataset",
        f"cifar10:root={root}",
        "--teacher",
        "resnet:depth=8,width=4",
        "--student",
        "resnet:depth=8,width=4",
        "--fractions",
        "0.5,1",
        "--seeds",
        "1",
        "--methods",
        "label,kd:T=4",
        "--steps",
        "4",
        "--teacher-steps",
        "4",
        "--batch-size",
        "8",
        "--feature-samples",
        "8",
        "--augment",
        "crop-flip",
        "--precision",
        "bf16",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (ds,) = kdtheory.open_runs(out).values()
    recipe = json.loads(ds.attrs["recipe"])
    assert recipe["augment"] == "crop-flip" and recipe["precision"] == "bf16"
    assert ds.sizes["train_sample"] == 40 and ds.sizes["class"] == 10
    assert np.isfinite(ds["test_logits"].values).all()
    # digits are images (1, 8, 8) too; mnist1d sequences are refused with a clear error
    bad = CliRunner().invoke(app, [*args[:4], "mnist1d:num_samples=200", *args[5:]])
    assert bad.exit_code == 2 and "--augment none" in bad.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_resnet_bf16_augmented_batched_equals_sequential_and_budget():
    from kdtheory.training.allocator import default_memory_budget

    budget = default_memory_budget(torch.device("cuda"))
    assert 0 < budget < torch.cuda.mem_get_info()[0]
    cpu = image_data(small_teacher())
    data = TrainingData.from_numpy(
        cpu.x_train.numpy(),
        cpu.y_train.numpy(),
        cpu.x_test.numpy(),
        cpu.teacher_train_logits.numpy(),
        4,
        torch.device("cuda"),
        teacher=small_teacher(),
    )
    assert data.x_train.is_cuda and next(data.teacher.parameters()).is_cuda
    build = model_builder("resnet:depth=8,width=4", SHAPE, 4)
    cfg = replace_cfg(AUG, precision="bf16")
    jobs = jobs_for(METHODS)
    together = train_group(jobs, build, data, cfg, np.arange(10))
    again = train_group(jobs, build, data, cfg, np.arange(10))
    for job, res, rep in zip(jobs, together, again, strict=True):
        np.testing.assert_array_equal(res.test_logits, rep.test_logits)
        (alone,) = train_group([job], build, data, cfg, np.arange(10))
        np.testing.assert_allclose(res.test_logits, alone.test_logits, rtol=2e-2, atol=2e-2)


def test_paper_cifar100_preset_checks_and_names_its_recipe():
    from kdtheory.training.subsets import subset_size
    from kdtheory.training.sweep import PRESETS, check_specs, configs_from_options

    (cfg,) = configs_from_options("paper-cifar100", {})
    assert cfg is PRESETS["paper-cifar100"][0] or cfg == PRESETS["paper-cifar100"][0]
    assert [o.label for o in check_specs(cfg)] == ["label", "kd-T4", "ls", "kd-shuffled-T4"]
    recipe = cfg.recipe()
    assert (recipe["augment"], recipe["precision"]) == ("crop-flip", "bf16")
    assert cfg.dataset.startswith("cifar100:") and "resnet" in cfg.student
    # the cost the README states: 76,315 student steps per method and seed
    assert sum(cfg.cell_steps(subset_size(f, 50_000)) for f in cfg.fractions) == 76_315
