"""Tests of the built-in objectives and the method-list parser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdtheory.errors import SpecError, UnknownNameError
from kdtheory.plugin.manager import get_registries
from kdtheory.plugin.specs import ObjectiveContext
from kdtheory.plugins import objectives as O
from kdtheory.training.methods import parse_method, parse_methods

# --------------------------------------------------------------------------- numpy references


def np_softmax(z: np.ndarray, T: float = 1.0) -> np.ndarray:
    e = np.exp((z - z.max(-1, keepdims=True)) / T)
    return e / e.sum(-1, keepdims=True)


def np_ce(z: np.ndarray, y: np.ndarray) -> float:
    logp = np.log(np_softmax(z))
    return float(-np.mean(logp[np.arange(len(y)), y]))


def np_kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of sum_k p log(p / q), written out term by term."""
    total = 0.0
    for row_p, row_q in zip(p, q, strict=True):
        for pk, qk in zip(row_p, row_q, strict=True):
            if pk > 0:
                total += pk * math.log(pk / qk)
    return total / len(p)


Z = np.array([[2.0, -1.0, 0.5], [0.1, 0.3, -0.7]])  # student logits, B=2, K=3
TEACHER = np.array([[3.0, 1.0, -2.0], [-1.0, 2.5, 0.0]])
Y = np.array([0, 1])


def t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def make_ctx(n: int = 50, k: int = 5, seed: int = 0, subset: torch.Tensor | None = None):
    g = torch.Generator().manual_seed(123)
    logits = 3 * torch.randn(n, k, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    if subset is None:
        subset = torch.arange(0, n, 2)
    return ObjectiveContext(
        teacher_train_logits=logits, train_labels=labels, subset=subset, seed=seed, num_classes=k
    )


# --------------------------------------------------------------------------- registration


def test_registered_objectives():
    regs = get_registries()
    for name in ("label", "kd", "ls", "kd-shuffled", "kd-mse"):
        assert name in regs.objectives
    assert regs.objectives.get("kd").make is O.KDObjective


# --------------------------------------------------------------------------- losses by hand


def test_label_loss_matches_hand_ce():
    obj = parse_method("label")
    got = obj.loss(t(Z), torch.tensor(Y), torch.zeros(2, 3))
    assert got.shape == ()
    assert got.item() == pytest.approx(np_ce(Z, Y), rel=1e-5)
    assert obj.label == "label" and obj.objective == "label"
    assert math.isnan(obj.temperature) and math.isnan(obj.alpha) and math.isnan(obj.smoothing)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kd_loss_is_T2_scaled_kl(T):
    obj = O.KDObjective(T=T)
    p = np_softmax(TEACHER, T)
    ctx = ObjectiveContext(t(TEACHER), torch.tensor(Y), torch.arange(2), 0, 3)
    targets, extra = obj.targets(ctx)
    assert extra == {}
    np.testing.assert_allclose(targets.numpy(), p, rtol=1e-5)
    got = obj.loss(t(Z), torch.tensor(Y), targets).item()
    expected = T**2 * np_kl(p, np_softmax(Z, T))
    assert got == pytest.approx(expected, rel=1e-5)


def test_kd_alpha_mixes_hard_label_term():
    T, alpha = 3.0, 0.25
    obj = O.KDObjective(T=T, alpha=alpha)
    p = np_softmax(TEACHER, T)
    got = obj.loss(t(Z), torch.tensor(Y), t(p)).item()
    expected = alpha * np_ce(Z, Y) + (1 - alpha) * T**2 * np_kl(p, np_softmax(Z, T))
    assert got == pytest.approx(expected, rel=1e-5)
    # alpha = 1 is plain cross-entropy, whatever the targets
    pure = O.KDObjective(T=T, alpha=1.0)
    assert pure.loss(t(Z), torch.tensor(Y), t(p)).item() == pytest.approx(np_ce(Z, Y), rel=1e-5)


def test_kd_loss_zero_when_student_equals_teacher():
    obj = O.KDObjective(T=4.0)
    p = torch.softmax(t(TEACHER) / 4.0, -1)
    assert obj.loss(t(TEACHER), torch.tensor(Y), p).item() == pytest.approx(0.0, abs=1e-6)


def test_ls_loss_and_targets_fixed_eps():
    obj = parse_method("ls:eps=0.1")
    assert obj.label == "ls-e0.1" and obj.objective == "ls"
    assert obj.smoothing == pytest.approx(0.1)
    assert math.isnan(obj.temperature) and math.isnan(obj.alpha)
    ctx = ObjectiveContext(t(TEACHER), torch.tensor(Y), torch.arange(2), 0, 3)
    targets, extra = obj.targets(ctx)
    expected_targets = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
    np.testing.assert_allclose(targets.numpy(), expected_targets, rtol=1e-6)
    assert extra == {"effective_smoothing": pytest.approx(0.1)}
    got = obj.loss(t(Z), torch.tensor(Y), targets).item()
    expected = float(-np.mean((expected_targets * np.log(np_softmax(Z))).sum(-1)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_ls_matched_epsilon_is_teacher_off_class_mass_on_subset():
    ctx = make_ctx(n=40, k=4, subset=torch.tensor([1, 5, 7, 20, 33]))
    obj = parse_method("ls:eps=matched,T=2")
    assert obj.label == "ls-T2" and math.isnan(obj.smoothing) and obj.temperature == 2.0
    logits = ctx.teacher_train_logits.numpy()
    labels = ctx.train_labels.numpy()
    idx = ctx.subset.numpy()
    p = np_softmax(logits[idx], 2.0)
    eps = float(np.mean(1 - p[np.arange(len(idx)), labels[idx]]))
    targets, extra = obj.targets(ctx)
    assert extra["effective_smoothing"] == pytest.approx(eps, rel=1e-5)
    assert targets.shape == (40, 4)
    np.testing.assert_allclose(targets.sum(-1).numpy(), 1.0, rtol=1e-6)
    true_mass = targets[torch.arange(40), ctx.train_labels].numpy()
    np.testing.assert_allclose(true_mass, 1 - eps, rtol=1e-5)
    # it varies with the cell's subset
    other = make_ctx(n=40, k=4, subset=torch.tensor([0, 2, 3]))
    assert obj.targets(other)[1]["effective_smoothing"] != pytest.approx(eps, rel=1e-3)


def test_ls_default_is_matched_at_T4():
    obj = parse_method("ls")
    assert obj.label == "ls" and obj.params == {"eps": "matched", "T": 4.0}


def test_kd_mse_loss():
    obj = parse_method("kd-mse")
    ctx = ObjectiveContext(t(TEACHER), torch.tensor(Y), torch.arange(2), 0, 3)
    targets, _ = obj.targets(ctx)
    np.testing.assert_allclose(targets.numpy(), TEACHER, rtol=1e-6)
    got = obj.loss(t(Z), torch.tensor(Y), targets).item()
    assert got == pytest.approx(float(np.mean((Z - TEACHER) ** 2)), rel=1e-5)
    assert obj.label == "kd-mse" and math.isnan(obj.temperature)


# --------------------------------------------------------------------------- shuffled KD


def test_shuffled_targets_keep_true_mass_and_multiset():
    ctx = make_ctx(n=60, k=6, seed=3)
    obj = parse_method("kd-shuffled:T=2")
    assert obj.label == "kd-shuffled-T2" and obj.objective == "kd-shuffled"
    shuffled, _ = obj.targets(ctx)
    plain = torch.softmax(ctx.teacher_train_logits / 2.0, -1)
    rows = torch.arange(60)
    y = ctx.train_labels
    torch.testing.assert_close(shuffled[rows, y], plain[rows, y])
    changed = 0
    for i in range(60):
        mask = torch.ones(6, dtype=torch.bool)
        mask[y[i]] = False
        a, b = shuffled[i][mask], plain[i][mask]
        torch.testing.assert_close(torch.sort(a).values, torch.sort(b).values)
        changed += int(not torch.equal(a, b))
    assert changed > 30  # 6-class rows: 5! permutations, identity is rare


def test_shuffled_targets_deterministic_per_seed():
    obj = O.ShuffledKDObjective(T=4.0)
    a, _ = obj.targets(make_ctx(seed=7))
    b, _ = obj.targets(make_ctx(seed=7))
    c, _ = obj.targets(make_ctx(seed=8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_shuffled_loss_equals_kd_loss_on_same_targets():
    p = torch.softmax(t(TEACHER) / 4, -1)
    kd = O.KDObjective(T=4.0, alpha=0.3)
    sh = O.ShuffledKDObjective(T=4.0, alpha=0.3)
    assert sh.loss(t(Z), torch.tensor(Y), p).item() == pytest.approx(
        kd.loss(t(Z), torch.tensor(Y), p).item(), rel=1e-6
    )
    assert sh.label == "kd-shuffled-T4-a0.3"


# --------------------------------------------------------------------------- broadcasting


@pytest.mark.parametrize("spec", ["label", "kd:T=4,alpha=0.5", "ls:eps=0.2", "kd-mse"])
def test_loss_broadcasts_over_cell_dims(spec):
    obj = parse_method(spec)
    g = torch.Generator().manual_seed(0)
    cells, b, k = 3, 5, 4
    logits = torch.randn(cells, b, k, generator=g)
    labels = torch.randint(0, k, (cells, b), generator=g)
    targets = torch.softmax(torch.randn(cells, b, k, generator=g), -1)
    together = obj.loss(logits, labels, targets)
    assert together.shape == (cells,)
    for c in range(cells):
        alone = obj.loss(logits[c], labels[c], targets[c])
        assert alone.shape == ()
        assert together[c].item() == pytest.approx(alone.item(), rel=1e-5)
    # two leading dims, and shared (broadcast) labels/targets
    grid = obj.loss(logits.reshape(1, cells, b, k).expand(2, cells, b, k), labels, targets)
    assert grid.shape == (2, cells)
    torch.testing.assert_close(grid[1], together)


def test_loss_under_vmap_and_grad():
    """The batched engine may vmap a per-cell loss (and its gradient) over cells."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, 4, generator=g)
    labels = torch.randint(0, 4, (3, 5), generator=g)
    targets = torch.softmax(torch.randn(3, 5, 4, generator=g), -1)
    for obj in parse_methods("label,kd:alpha=0.5,ls:eps=0.1,kd-mse,kd-shuffled"):
        torch.testing.assert_close(
            torch.func.vmap(obj.loss)(logits, labels, targets), obj.loss(logits, labels, targets)
        )
        grads = torch.func.vmap(torch.func.grad(obj.loss))(logits, labels, targets)
        assert grads.shape == logits.shape and torch.isfinite(grads).all()


def test_objectives_hashable_and_comparable():
    a, b = parse_methods("kd:T=2,label")
    assert a == O.KDObjective(T=2.0) and a != b
    assert len({a, b, O.KDObjective(T=2.0)}) == 2


def test_loss_is_differentiable():
    obj = O.KDObjective(T=2.0, alpha=0.5)
    z = t(Z).requires_grad_(True)
    obj.loss(z, torch.tensor(Y), torch.softmax(t(TEACHER) / 2, -1)).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------- labels & parsing


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("kd", "kd-T4"),
        ("kd:T=2.5", "kd-T2.5"),
        ("kd:T=4.0,alpha=0.5", "kd-T4-a0.5"),
        ("kd:T=10,alpha=0", "kd-T10"),
        ("kd-shuffled", "kd-shuffled-T4"),
        ("ls:eps=0.05", "ls-e0.05"),
        ("ls:eps=matched", "ls"),
    ],
)
def test_labels(spec, label):
    assert parse_method(spec).label == label


def test_format_number():
    assert O.format_number(4) == "4"
    assert O.format_number(2.5) == "2.5"
    assert O.format_number(0.1) == "0.1"


def test_kd_properties():
    obj = parse_method("kd:T=3,alpha=0.2")
    assert obj.temperature == 3.0 and obj.alpha == pytest.approx(0.2)
    assert math.isnan(obj.smoothing)
    assert obj.params == {"T": 3.0, "alpha": pytest.approx(0.2)}


def test_parse_methods_groups_options():
    objs = parse_methods("label,kd:T=4,ls:eps=matched,kd-shuffled:T=4")
    assert [o.label for o in objs] == ["label", "kd-T4", "ls", "kd-shuffled-T4"]
    objs = parse_methods("kd:T=4,alpha=0.5,label")
    assert [o.label for o in objs] == ["kd-T4-a0.5", "label"]
    assert objs[0].alpha == 0.5
    objs = parse_methods(" kd:T=2 , alpha=0.1 ")
    assert [o.label for o in objs] == ["kd-T2-a0.1"]
    assert [o.label for o in parse_methods(["label", "kd:T=2"])] == ["label", "kd-T2"]


def test_unknown_option_lists_accepted():
    with pytest.raises(SpecError, match="no option 'temp'") as info:
        parse_method("kd:temp=4")
    assert "T (default" in str(info.value) and "alpha" in str(info.value)


@pytest.mark.parametrize(
    "spec", ["kd:T=-1", "kd:T=abc", "kd:alpha=1.5", "ls:eps=1", "ls:eps=soft", "kd-shuffled:T=0"]
)
def test_bad_values(spec):
    with pytest.raises(SpecError, match="bad value"):
        parse_method(spec)


def test_unknown_objective_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean 'kd-shuffled'"):
        parse_method("kd-shufled:T=4")
    with pytest.raises(UnknownNameError, match="unknown objective 'xyz'"):
        parse_methods("label,xyz")


def test_duplicate_labels():
    with pytest.raises(SpecError, match="kd-T4"):
        parse_methods("kd,kd:T=4")
    with pytest.raises(SpecError, match="label"):
        parse_methods("label,label")


@pytest.mark.parametrize("text", ["", "label,,kd", "T=4,label", "kd:T"])
def test_malformed_lists(text):
    with pytest.raises(SpecError):
        parse_methods(text)


def test_direct_construction_validates():
    with pytest.raises(SpecError):
        O.KDObjective(T=0)
    with pytest.raises(SpecError):
        O.LabelSmoothingObjective(eps=1.0)
