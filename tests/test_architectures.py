"""Tests of the built-in architectures, including their behaviour under ``torch.func.vmap``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from kdtheory.errors import SpecError
from kdtheory.plugin.manager import get_registries
from kdtheory.plugin.specs import parse_spec, resolve_options
from kdtheory.plugins import architectures as A

SHAPES = {"vector": (40,), "digits": (1, 8, 8), "mnist": (1, 28, 28)}
ARCHS = ["mlp", "cnn", "vit"]
SMALL = {
    "mlp": "mlp:width=32",
    "cnn": "cnn:channels=4,width=16",
    "vit": "vit:dim=16,heads=2",
    "vit-cls": "vit:dim=16,heads=2,pool=cls",
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and they make timings erratic on a busy
    machine; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(text: str, input_shape: tuple[int, ...], num_classes: int = 10) -> nn.Module:
    """Build an architecture from a spec string through the registry, as the engine does."""
    name, raw = parse_spec(text)
    spec = get_registries().architectures.get(name)
    return spec.build(
        input_shape, num_classes, **resolve_options("architecture", name, spec.options, raw)
    )


def test_registered():
    regs = get_registries()
    assert set(regs.architectures.names()) >= set(ARCHS)
    assert regs.architectures.get("vit").build is A.build_vit


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_output_shapes(arch, shape):
    torch.manual_seed(0)
    model = build(arch, shape, num_classes=7)
    x = torch.randn(5, *shape)
    logits = model(x)
    assert logits.shape == (5, 7)
    logits2, features = model(x, with_features=True)
    torch.testing.assert_close(logits, logits2)
    assert isinstance(model.classifier, nn.Linear)
    assert features.shape == (5, model.classifier.in_features)
    assert model.classifier.out_features == 7
    # the classifier is the last layer: logits are an affine map of the features
    torch.testing.assert_close(model.classifier(features), logits)


@pytest.mark.parametrize("arch", ARCHS)
def test_no_batchnorm_or_dropout(arch):
    model = build(arch, (1, 28, 28))
    for module in model.modules():
        assert not isinstance(module, nn.modules.batchnorm._BatchNorm | nn.Dropout)
    assert not list(model.buffers())


def test_cnn_is_small():
    n = sum(p.numel() for p in build("cnn", (1, 28, 28)).parameters())
    assert 20_000 < n < 80_000


def test_vit_is_small():
    n = sum(p.numel() for p in build("vit", (1, 28, 28)).parameters())
    assert n < 150_000


@pytest.mark.parametrize("arch", ARCHS)
def test_init_deterministic_under_manual_seed(arch):
    def state(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build(SMALL[arch], (1, 8, 8)).state_dict()

    a, b, c = state(1), state(1), state(2)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("arch", [*ARCHS, "vit-cls"])
@pytest.mark.parametrize("shape", [(40,), (1, 8, 8), (1, 28, 28)], ids=["1d", "8x8", "28x28"])
def test_vmap_matches_individual_models(arch, shape):
    """Three independently initialised copies run under vmap equal each model run alone."""
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build(SMALL[arch], shape, num_classes=5))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def run(p, b, x):
        return functional_call(base, (p, b), (x,), {"with_features": True})

    g = torch.Generator().manual_seed(0)
    x_shared = torch.randn(4, *shape, generator=g)
    x_each = torch.randn(3, 4, *shape, generator=g)
    labels = torch.randint(0, 5, (3, 4), generator=g)

    logits, feats = vmap(run, in_dims=(0, 0, None))(params, buffers, x_shared)
    assert logits.shape == (3, 4, 5)
    for i, model in enumerate(models):
        ref_logits, ref_feats = model(x_shared, with_features=True)
        torch.testing.assert_close(logits[i], ref_logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(feats[i], ref_feats, atol=1e-5, rtol=1e-5)

    # per-model inputs and a backward pass through vmap
    logits, _ = vmap(run, in_dims=(0, 0, 0))(params, buffers, x_each)
    losses = vmap(nn.functional.cross_entropy)(logits, labels)
    losses.sum().backward()
    for i, model in enumerate(models):
        model.zero_grad()
        nn.functional.cross_entropy(model(x_each[i]), labels[i]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(params[name].grad[i], p.grad, atol=1e-5, rtol=1e-4)


def test_cnn_1d_and_channels_inputs():
    torch.manual_seed(0)
    m = build("cnn", (3, 20))
    assert m.spatial_dims == 1
    assert m(torch.randn(2, 3, 20)).shape == (2, 10)
    with pytest.raises(SpecError, match="cnn"):
        build("cnn", (1, 2, 3, 4))


def test_mlp_depth_and_width():
    m = build("mlp:width=17,depth=3", (1, 8, 8))
    assert m.classifier.in_features == 17
    assert sum(isinstance(x, nn.Linear) for x in m.modules()) == 4
    linear = build("mlp:depth=0", (1, 8, 8))
    _, feats = linear(torch.randn(2, 1, 8, 8), with_features=True)
    assert feats.shape == (2, 64)


def test_vit_patches():
    assert build("vit", (1, 28, 28)).patch == 7
    assert build("vit", (1, 8, 8)).patch == 2
    assert build("vit", (40,)).patch == 4
    m = build("vit:patch=4,pool=cls", (1, 28, 28))
    assert m.grid == (7, 7)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    # patches are laid out row-major and hold the right pixels
    x = torch.arange(1 * 28 * 28, dtype=torch.float32).reshape(1, 1, 28, 28)
    patches = m.patches(x)
    assert patches.shape == (1, 49, 16)
    torch.testing.assert_close(patches[0, 1], x[0, 0, 0:4, 4:8].reshape(-1))


def test_vit_errors_name_the_option():
    with pytest.raises(SpecError, match="patch=5"):
        build("vit:patch=5", (1, 28, 28))
    with pytest.raises(SpecError, match="heads=3"):
        build("vit:heads=3", (1, 28, 28))
    with pytest.raises(SpecError, match="bad value"):
        build("vit:pool=max", (1, 28, 28))
    with pytest.raises(SpecError, match="Accepted options"):
        build("cnn:filters=3", (1, 28, 28))


@pytest.mark.parametrize("arch", ARCHS)
def test_trains_a_few_steps(arch):
    """A handful of Adam steps on a fixed batch reduces the loss."""
    torch.manual_seed(0)
    model = build(SMALL[arch], (1, 8, 8), num_classes=3)
    x = torch.randn(16, 1, 8, 8)
    y = torch.arange(16) % 3
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = nn.functional.cross_entropy(model(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize(
    ("shape", "expected"), [((40,), (1, 40)), ((3, 40), (3, 40)), ((1, 28, 28), (1, 28, 28))]
)
def test_channels_first_shape(shape, expected):
    from kdtheory.plugins.networks import channels_first_shape

    assert channels_first_shape(shape, "cnn") == expected


@pytest.mark.parametrize("arch", ["cnn", "vit"])
def test_cnn_and_vit_refuse_four_dimensional_inputs(arch):
    build = get_registries().architectures.get(arch).build
    with pytest.raises(SpecError, match=f"architecture '{arch}' takes inputs of shape"):
        build((1, 2, 28, 28), 10)
