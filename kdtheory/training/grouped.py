"""Batched kernels for architectures that want a faster path than ``vmap`` in group training.

The training engine stacks the parameters of a group of cells along a leading *cell* dimension
and, by default, runs the architecture with ``torch.func.vmap`` over ``functional_call``. That is
general but leaves the memory layout of every batched matrix product to ``vmap``'s batching
rules, and small batched GEMMs are very sensitive to layout: on this project's 2-core CPU
(MKL), a ``(64, 128) @ (128, 10)`` product per cell ran about 5× slower than the same work
arranged as ``(10, 128) @ (128, 64)`` (measured once, 140 cells).

An architecture can therefore give its module a ``grouped_forward`` method (see
:class:`kdtheory.plugin.specs.ArchitectureSpec`); the engine then trains with it instead of
``vmap``.
:func:`grouped_linear` is the building block: a linear layer over stacked weights whose forward
product never has a narrow output, and whose weight gradient is computed directly in the
weight's ``(out, in)`` layout (no copy into place). :func:`grouped_mlp` chains such layers with
ReLUs as a single autograd node, so the ReLUs run in place in forward and backward; the MLP
trains with it (bitwise the same numbers as the layer-by-layer chain, about 6% faster per step
on the ``bench`` preset, measured interleaved with the chain).

The CNN and the ViT (:mod:`kdtheory.plugins.networks`) have their own ``grouped_forward`` too:
the CNN runs each convolution once for all cells as a grouped convolution, the ViT runs its linear
layers with :func:`grouped_linear`, its LayerNorms with :func:`grouped_layer_norm` and its
attention with :func:`grouped_attention`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "NARROW_FEATURES",
    "grouped_attention",
    "grouped_layer_norm",
    "grouped_linear",
    "grouped_mlp",
]

#: A layer with fewer output features than this computes its forward transposed, as (C, out, B).
NARROW_FEATURES = 32


def _autocast_inputs(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """Under autocast, the tensors in its lower precision (differentiable casts), so that the
    custom backward products see one dtype; unchanged otherwise."""
    first = next(t for t in tensors if t is not None)
    device = first.device.type
    if not torch.is_autocast_enabled(device):
        return tensors
    dtype = torch.get_autocast_dtype(device)
    return tuple(None if t is None else t.to(dtype) for t in tensors)


def _linear_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """The forward product of :func:`grouped_linear` (no checks, no autograd)."""
    out_features = weight.shape[1]
    if out_features < NARROW_FEATURES:
        # y^T = W x^T: the GEMM's output rows are the few classes, its columns the samples
        y_t = torch.bmm(weight, x.transpose(1, 2))
        if bias is not None:
            y_t = y_t + bias.unsqueeze(2)
        return y_t.transpose(1, 2).contiguous()
    w_t = weight.transpose(1, 2)
    if bias is None:
        return torch.bmm(x, w_t)
    return torch.baddbmm(bias.unsqueeze(1), x, w_t)


class _GroupedLinear(torch.autograd.Function):
    generate_vmap_rule = True  # forward and backward are plain torch operations

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return _linear_forward(x, weight, bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad_out, weight)  # (C, B, in)
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(grad_out.transpose(1, 2), x)  # (C, out, in), the weight's layout
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(1)
        return grad_x, grad_w, grad_b


class _GroupedMLP(torch.autograd.Function):
    """A ReLU MLP as one autograd node: activations and their gradients updated in place."""

    @staticmethod
    def forward(
        ctx: Any, with_features: bool, x: torch.Tensor, *weights_and_biases: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        weights, biases = weights_and_biases[0::2], weights_and_biases[1::2]
        inputs = [x]  # the input of every layer; all but x are ReLU outputs
        h = x
        for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
            h = _linear_forward(h, weight, bias).relu_()
            inputs.append(h)
        ctx.save_for_backward(*inputs, *weights)
        ctx.layers = len(weights)
        logits = _linear_forward(h, weights[-1], biases[-1])
        return (logits, h) if with_features else logits  # features: only with a hidden layer

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, *grad_features: torch.Tensor) -> tuple:
        saved = ctx.saved_tensors
        n = ctx.layers
        inputs, weights = saved[:n], saved[n:]
        grads: list[torch.Tensor | None] = [None] * (2 * n)
        g = grad_out
        grad_x = None
        for layer in range(n - 1, -1, -1):
            h = inputs[layer]
            if ctx.needs_input_grad[2 + 2 * layer]:
                grads[2 * layer] = torch.bmm(g.transpose(1, 2), h)  # (C, out, in)
            if ctx.needs_input_grad[3 + 2 * layer]:
                grads[2 * layer + 1] = g.sum(1)
            if layer > 0:
                g = torch.bmm(g, weights[layer])  # gradient of the ReLU output h
                if layer == n - 1 and grad_features:
                    g += grad_features[0]  # h is also the features output
                # through the ReLU, in place: g is this backward's own tensor
                torch.ops.aten.threshold_backward.grad_input(g, h, 0, grad_input=g)
            elif ctx.needs_input_grad[1]:
                grad_x = torch.bmm(g, weights[0])
        return (None, grad_x, *grads)


def grouped_mlp(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    with_features: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """A ReLU MLP for a group of cells: ``grouped_linear`` layers with ReLU between them.

    Computes what chaining :func:`grouped_linear` and ``torch.relu`` computes, with the same
    products in the same order (so the same numbers), as a single autograd node: the ReLUs run
    in place on the products' outputs and, in backward, on the incoming gradients, which
    saves their allocations and autograd's work per node.

    Parameters
    ----------
    x : torch.Tensor
        Inputs ``(C, B, in)``.
    weights : sequence of torch.Tensor
        Stacked weights ``(C, out, in)`` of each layer in order; the last is the output layer
        (no ReLU after it).
    biases : sequence of torch.Tensor
        Stacked biases ``(C, out)``, one per weight.
    with_features : bool
        Also return the output layer's input (the last ReLU output, or ``x`` when there is no
        hidden layer).

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        The output layer's ``(C, B, out)``, or ``(output, features)``.

    Notes
    -----
    Unlike :func:`grouped_linear` it has no ``vmap`` rule, and no double backward.
    """
    if not weights or len(weights) != len(biases):
        raise ValueError(
            f"grouped_mlp needs one bias per weight and at least one layer; got "
            f"{len(weights)} weights and {len(biases)} biases"
        )
    features = x.shape[-1] if x.dim() == 3 else None
    for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        if weight.dim() != 3 or x.dim() != 3 or weight.shape[0] != x.shape[0]:
            raise ValueError(
                f"grouped_mlp expects x (C, B, in) and weights (C, out, in); got x "
                f"{tuple(x.shape)} and layer {i} weight {tuple(weight.shape)}"
            )
        if weight.shape[2] != features:
            raise ValueError(
                f"grouped_mlp: layer {i} weight expects {weight.shape[2]} input features, "
                f"gets {features}"
            )
        if tuple(bias.shape) != tuple(weight.shape[:2]):
            raise ValueError(
                f"grouped_mlp: layer {i} bias should be (C, out) = {tuple(weight.shape[:2])}; "
                f"got {tuple(bias.shape)}"
            )
        features = weight.shape[1]
    x, *args = _autocast_inputs(x, *(t for pair in zip(weights, biases, strict=True) for t in pair))
    if with_features and len(weights) == 1:  # the features are the input itself
        return _GroupedMLP.apply(False, x, *args), x
    return _GroupedMLP.apply(with_features, x, *args)


def grouped_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``torch.nn.functional.linear`` for a group of cells, each with its own weights.

    Parameters
    ----------
    x : torch.Tensor
        Inputs ``(C, B, in)``: ``B`` samples for each of ``C`` cells.
    weight : torch.Tensor
        Stacked ``nn.Linear`` weights ``(C, out, in)``.
    bias : torch.Tensor, optional
        Stacked biases ``(C, out)``.

    Returns
    -------
    torch.Tensor
        ``(C, B, out)``, equal to ``vmap(F.linear)(x, weight, bias)`` up to float rounding.

    Notes
    -----
    Under autocast the inputs are cast to its lower precision first (as ``F.linear`` would run).
    ``vmap`` over it works (the rule is generated from its torch operations) but gains nothing
    over ``F.linear``.
    """
    if x.dim() != 3 or weight.dim() != 3 or x.shape[0] != weight.shape[0]:
        raise ValueError(
            f"grouped_linear expects x (C, B, in) and weight (C, out, in); got {tuple(x.shape)} "
            f"and {tuple(weight.shape)}"
        )
    if x.shape[2] != weight.shape[2]:
        raise ValueError(
            f"grouped_linear: x has {x.shape[2]} input features, weight expects {weight.shape[2]}"
        )
    if bias is not None and tuple(bias.shape) != tuple(weight.shape[:2]):
        raise ValueError(
            f"grouped_linear expects bias (C, out) = {tuple(weight.shape[:2])}; "
            f"got {tuple(bias.shape)}"
        )
    return _GroupedLinear.apply(*_autocast_inputs(x, weight, bias))


def grouped_layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """``torch.nn.functional.layer_norm`` over the last dimension, each cell with its own affine.

    Parameters
    ----------
    x : torch.Tensor
        ``(C, ..., D)``.
    weight, bias : torch.Tensor
        Stacked ``nn.LayerNorm`` parameters ``(C, D)``.
    eps : float
        The LayerNorm's ``eps``.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``: normalised without affine, then scaled and shifted per cell in one
        fused ``addcmul``.
    """
    if (
        weight.dim() != 2
        or tuple(bias.shape) != tuple(weight.shape)
        or x.shape[0] != weight.shape[0]
    ):
        raise ValueError(
            f"grouped_layer_norm expects x (C, ..., D) and weight, bias (C, D); got x "
            f"{tuple(x.shape)}, weight {tuple(weight.shape)}, bias {tuple(bias.shape)}"
        )
    view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    normed = torch.nn.functional.layer_norm(x, x.shape[-1:], eps=eps)
    return torch.addcmul(bias.view(view), normed, weight.view(view))


def grouped_attention(
    qkv: torch.Tensor, heads: int, scale: float, fused: bool | None = None
) -> torch.Tensor:
    """Multi-head self-attention of a group of cells from their fused ``qkv`` projections.

    Parameters
    ----------
    qkv : torch.Tensor
        ``(C, B, N, 3 * D)``: queries, keys and values of ``N`` tokens, each ``heads`` heads of
        ``D // heads`` features (the layout of ``Linear(D, 3 * D)`` as in a ViT).
    heads : int
    scale : float
        The factor applied to the scores before the softmax.
    fused : bool, optional
        Use ``scaled_dot_product_attention`` (True) or ``bmm`` (False); by default, the former
        on a CPU only (see Notes).

    Returns
    -------
    torch.Tensor
        ``(C, B, N, D)``: the heads' outputs concatenated, as before the output projection.

    Notes
    -----
    All ``C * B * heads`` (cell, sample, head) attentions run as one batch. On a CPU that batch
    is one ``scaled_dot_product_attention`` call on strided views of ``qkv`` (no copies of the
    queries, keys and values, no stored probabilities; its output is already token-major); on
    this project's 2-core CPU it ran the forward about 2-4x faster than ``bmm``, softmax,
    ``bmm`` (backward about even). Elsewhere the two products run as ``bmm`` over the batch,
    because the fused GPU kernels may have a nondeterministic backward and the engine promises
    the same numbers for the same seed. Both equal the per-model ``matmul`` form up to float
    rounding.
    """
    c, b, n, three_d = qkv.shape
    d = three_d // 3
    hd = d // heads
    q, k, v = qkv.view(c * b, n, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)  # (CB, h, N, hd)
    if fused is None:
        fused = qkv.device.type == "cpu"
    if fused:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)
    else:
        q, k, v = (t.reshape(c * b * heads, n, hd) for t in (q, k, v))
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * scale, dim=-1)
        out = torch.bmm(attn, v).view(c * b, heads, n, hd)
    return out.transpose(1, 2).reshape(c, b, n, d)
