"""The batched kernels some architectures use instead of vmap in group training."""

import copy
import itertools
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_engine import CONFIG, METHODS, jobs_for, make_data
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from kdtheory.plugins import networks
from kdtheory.plugins.architectures import build_mlp
from kdtheory.training.engine import train_group
from kdtheory.training.grouped import (
    grouped_attention,
    grouped_layer_norm,
    grouped_linear,
    grouped_mlp,
)
from kdtheory.training.sweep import model_builder


@pytest.mark.parametrize("out_features", [3, 10, 31, 32, 48])
@pytest.mark.parametrize("with_bias", [True, False])
def test_grouped_linear_equals_per_cell_linear(out_features, with_bias):
    """Values and all three gradients match F.linear cell by cell (narrow and wide outputs)."""
    g = torch.Generator().manual_seed(out_features)
    C, B, n_in = 5, 7, 12
    x = torch.randn(C, B, n_in, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(C, out_features, n_in, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(C, out_features, generator=g, dtype=torch.float64, requires_grad=with_bias)
    bias = b if with_bias else None
    y = grouped_linear(x, w, bias)
    assert y.shape == (C, B, out_features) and y.is_contiguous()
    ref = torch.stack(
        [nn.functional.linear(x[c], w[c], None if bias is None else bias[c]) for c in range(C)]
    )
    torch.testing.assert_close(y, ref)
    upstream = torch.randn(C, B, out_features, generator=g, dtype=torch.float64)
    got = torch.autograd.grad(y, [x, w] + ([b] if with_bias else []), upstream)
    want = torch.autograd.grad(ref, [x, w] + ([b] if with_bias else []), upstream)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e)


def test_grouped_linear_gradcheck():
    g = torch.Generator().manual_seed(0)
    for out_features in (4, 40):
        args = (
            torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(2, out_features, 5, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(2, out_features, generator=g, dtype=torch.float64, requires_grad=True),
        )
        assert torch.autograd.gradcheck(grouped_linear, args)


def test_grouped_linear_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"x \(C, B, in\).*\(3, 4, 5\)"):
        grouped_linear(torch.zeros(3, 4, 5), torch.zeros(2, 6, 5))
    with pytest.raises(ValueError, match="5 input features, weight expects 4"):
        grouped_linear(torch.zeros(2, 4, 5), torch.zeros(2, 6, 4))
    with pytest.raises(ValueError, match=r"bias \(C, out\) = \(2, 6\); got \(6,\)"):
        grouped_linear(torch.zeros(2, 4, 5), torch.zeros(2, 6, 5), torch.zeros(6))


def test_grouped_linear_under_vmap():
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 6, 5, generator=g)
    b = torch.randn(2, 3, 6, generator=g)
    y = vmap(grouped_linear)(x, w, b)
    torch.testing.assert_close(y, torch.einsum("gcbi,gcoi->gcbo", x, w) + b[:, :, None, :])


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_mlp_grouped_forward_matches_vmap(depth):
    """MLP.grouped_forward computes what vmap(functional_call) computes, gradients included."""
    models = []
    for seed in range(4):
        torch.manual_seed(seed)
        models.append(build_mlp((2, 5), 10, width=40, depth=depth))  # wide and narrow layers
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, 2, 5, generator=g)
    labels = torch.randint(0, 10, (4, 6), generator=g)

    def run(p, b, xb):
        return functional_call(base, (p, b), (xb,), {"with_features": True})

    want_logits, want_feats = vmap(run)(params, buffers, x)
    logits, feats = base.grouped_forward(params, buffers, x, with_features=True)
    # the training path (one grouped_mlp node) runs the same products: bitwise the same logits
    assert torch.equal(base.grouped_forward(params, buffers, x), logits)
    torch.testing.assert_close(logits, want_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats, want_feats, atol=1e-5, rtol=1e-5)

    def grads(out):
        loss = vmap(nn.functional.cross_entropy)(out, labels).sum()
        return torch.autograd.grad(loss, list(params.values()))

    for a, e in zip(grads(logits), grads(want_logits), strict=True):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-4)


def test_mlp_grouped_forward_refuses_a_body_it_cannot_batch():
    model = build_mlp((5,), 3, width=4, depth=1)
    model.body.append(nn.Dropout(0.1))
    params, buffers = stack_module_state([model])
    with pytest.raises(TypeError, match="no batched form of body"):
        model.grouped_forward(params, buffers, torch.zeros(1, 2, 5))


def _mlp_layers(sizes, cells, g):
    weights = [
        torch.randn(cells, n_out, n_in, generator=g, dtype=torch.float64, requires_grad=True)
        for n_in, n_out in itertools.pairwise(sizes)
    ]
    biases = [
        torch.randn(cells, w.shape[1], generator=g, dtype=torch.float64, requires_grad=True)
        for w in weights
    ]
    return weights, biases


@pytest.mark.parametrize("sizes", [(5, 3), (5, 40, 3), (6, 40, 33, 48)])
def test_grouped_mlp_equals_chained_grouped_linear_exactly(sizes):
    """Same products in the same order: bitwise the values and gradients of the layer chain."""
    g = torch.Generator().manual_seed(len(sizes))
    weights, biases = _mlp_layers(sizes, 3, g)
    x = torch.randn(3, 7, sizes[0], generator=g, dtype=torch.float64, requires_grad=True)
    h = x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        last_input = h
        h = grouped_linear(h, w, b)
        h = torch.relu(h) if i < len(weights) - 1 else h
    y = grouped_mlp(x, weights, biases)
    assert torch.equal(y, h)
    y_too, features = grouped_mlp(x, weights, biases, with_features=True)
    assert torch.equal(y_too, h) and torch.equal(features, last_input)
    upstream = torch.randn(h.shape, generator=g, dtype=torch.float64)
    leaves = [x, *weights, *biases]
    got = torch.autograd.grad(y, leaves, upstream)
    want = torch.autograd.grad(h, leaves, upstream)
    for a, e in zip(got, want, strict=True):
        assert torch.equal(a, e)


def test_grouped_mlp_gradcheck_and_frozen_inputs():
    g = torch.Generator().manual_seed(5)
    weights, biases = _mlp_layers((4, 6, 3), 2, g)
    x = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, *p: grouped_mlp(x, p[:2], p[2:]), (x, *weights, *biases)
    )
    # with the features as a second output, their gradient joins the backward pass
    assert torch.autograd.gradcheck(
        lambda x, *p: grouped_mlp(x, p[:2], p[2:], with_features=True), (x, *weights, *biases)
    )
    # data inputs without a gradient, and a frozen layer: only what is asked for is computed
    weights[0].requires_grad_(False)
    y = grouped_mlp(x.detach(), weights, biases)
    y.sum().backward()
    assert weights[0].grad is None and weights[1].grad is not None and biases[0].grad is not None


def test_grouped_mlp_rejects_mismatched_layers():
    x = torch.zeros(2, 4, 5)
    with pytest.raises(ValueError, match="one bias per weight"):
        grouped_mlp(x, [torch.zeros(2, 6, 5)], [])
    with pytest.raises(ValueError, match="layer 1 weight expects 7 input features, gets 6"):
        grouped_mlp(x, [torch.zeros(2, 6, 5), torch.zeros(2, 3, 7)], [torch.zeros(2, 6)] * 2)
    with pytest.raises(ValueError, match=r"layer 0 bias should be \(C, out\) = \(2, 6\)"):
        grouped_mlp(x, [torch.zeros(2, 6, 5)], [torch.zeros(6)])
    with pytest.raises(ValueError, match=r"layer 0 weight \(3, 6, 5\)"):
        grouped_mlp(x, [torch.zeros(3, 6, 5)], [torch.zeros(3, 6)])


def test_training_with_grouped_kernels_matches_vmap_training(monkeypatch):
    """The engine's fast MLP path trains the same students as the generic vmap path."""
    data = make_data((6,))
    build = model_builder("mlp:width=40,depth=2", (6,), 4)
    jobs = jobs_for(METHODS, 64, seeds=(0,))
    calls = []
    real = networks.grouped_mlp
    monkeypatch.setattr(
        networks,
        "grouped_mlp",
        lambda x, ws, bs, *rest: (
            calls.append([tuple(w.shape) for w in ws]) or real(x, ws, bs, *rest)
        ),
    )
    fast = train_group(jobs, build, data, CONFIG, np.arange(12), kernels="auto")
    # one call per step, all cells at once: three layers (40 wide twice, then the 4 classes)
    assert calls[0] == [(len(jobs), 40, 6), (len(jobs), 40, 40), (len(jobs), 4, 40)]
    assert len(calls) == CONFIG.steps
    calls.clear()
    generic = train_group(jobs, build, data, CONFIG, np.arange(12), kernels="vmap")
    assert not calls
    for a, b in zip(fast, generic, strict=True):
        np.testing.assert_allclose(a.test_logits, b.test_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a.loss_history, b.loss_history, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.classifier_weight, b.classifier_weight, rtol=1e-4, atol=1e-5)


#: CNN and ViT shapes small enough for float64 checks: images and sequences, both ViT poolings
CONV_AND_ATTENTION = [
    ("cnn:channels=3,width=12", (2, 9, 9)),
    ("cnn:channels=3,width=12", (20,)),
    ("vit:patch=3,dim=12,depth=2,heads=3", (2, 6, 6)),
    ("vit:patch=4,dim=8,depth=1,heads=2,pool=cls", (2, 16)),
]


@pytest.mark.parametrize("spec, shape", CONV_AND_ATTENTION)
def test_cnn_and_vit_grouped_forward_match_vmap_in_float64(spec, shape):
    """Values, features and every parameter's gradient equal vmap(functional_call)'s."""
    build = model_builder(spec, shape, 5)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build().double())
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, *shape, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (3, 4), generator=g)

    def run(p, b, xb):
        return functional_call(base, (p, b), (xb,), {"with_features": True})

    want = vmap(run)(params, buffers, x)
    got = base.grouped_forward(params, buffers, x, with_features=True)
    assert torch.equal(base.grouped_forward(params, buffers, x), got[0])
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-10)

    def grads(logits, features):
        loss = vmap(nn.functional.cross_entropy)(logits, labels).sum() + features.square().mean()
        return torch.autograd.grad(loss, list(params.values()))

    for name, a, e in zip(params, grads(*got), grads(*want), strict=True):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-10, msg=name)


def test_grouped_layer_norm_and_attention_match_the_modules():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64)
    norms = [nn.LayerNorm(8, eps=1e-3).double() for _ in range(2)]
    for norm in norms:
        nn.init.normal_(norm.weight, generator=g)
        nn.init.normal_(norm.bias, generator=g)
    weight = torch.stack([n.weight for n in norms])
    bias = torch.stack([n.bias for n in norms])
    got = grouped_layer_norm(x, weight, bias, eps=1e-3)
    torch.testing.assert_close(got, torch.stack([n(x[c]) for c, n in enumerate(norms)]))
    with pytest.raises(ValueError, match=r"weight, bias \(C, D\)"):
        grouped_layer_norm(x, weight[:1], bias[:1])
    blocks = [networks.Attention(8, heads=2).double() for _ in range(2)]
    qkv = torch.stack([b.qkv(x[c]) for c, b in enumerate(blocks)])  # (C, B, N, 3D)
    want = torch.stack([b(x[c]) for c, b in enumerate(blocks)])
    for fused in (None, True, False):  # the CPU default is the fused kernel; bmm elsewhere
        heads = grouped_attention(qkv, heads=2, scale=blocks[0].scale, fused=fused)
        got = torch.stack(
            [
                nn.functional.linear(heads[c], b.proj.weight, b.proj.bias)
                for c, b in enumerate(blocks)
            ]
        )
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("spec, shape", [CONV_AND_ATTENTION[0], CONV_AND_ATTENTION[2]])
def test_cnn_and_vit_batched_training_equals_sequential(spec, shape, monkeypatch):
    """Cells trained together with the grouped kernels equal each cell trained alone (vmap)."""
    data = make_data(shape)
    build = model_builder(spec, shape, 4)
    jobs = jobs_for(METHODS[:4], 64, seeds=(0,))
    model_type = type(build())
    calls = []
    real = model_type.grouped_forward

    def spy(self, params, buffers, x, with_features=False):
        calls.append(x.shape[0])
        return real(self, params, buffers, x, with_features)

    monkeypatch.setattr(model_type, "grouped_forward", spy)
    together = train_group(jobs, build, data, CONFIG, np.arange(12), kernels="auto")
    assert calls == [len(jobs)] * CONFIG.steps  # one grouped forward per step, all cells at once
    for job, res in zip(jobs, together, strict=True):
        (alone,) = train_group([job], build, data, CONFIG, np.arange(12), kernels="vmap")
        np.testing.assert_allclose(res.test_logits, alone.test_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.features, alone.features, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.loss_history, alone.loss_history, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            res.classifier_weight, alone.classifier_weight, rtol=1e-4, atol=1e-5
        )
    assert len(calls) == CONFIG.steps  # the vmap runs did not use the grouped kernels


def test_unknown_kernels_option_is_refused():
    data = make_data((6,))
    build = model_builder("mlp:width=8,depth=1", (6,), 4)
    with pytest.raises(ValueError, match="kernels='fast'"):
        train_group(jobs_for(["label"], 64, seeds=(0,)), build, data, CONFIG, kernels="fast")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_takes_effect_on_linux():
    # in a child process: the setting is process-wide and the test session should not inherit it
    code = (
        "from kdtheory.training.allocator import keep_freed_memory as k\n"
        "import torch\n"
        "print(k(), k())\n"
        "x = [torch.ones(2_000_000) for _ in range(3)]\n"  # 8 MB blocks are still usable
        "print(float(sum(t.sum() for t in x)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "6000000.0"]
