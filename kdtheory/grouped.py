"""Batched kernels for architectures that want a faster path than ``vmap`` in group training.

The training engine stacks the parameters of a group of cells along a leading *cell* dimension
and, by default, runs the architecture with ``torch.func.vmap`` over ``functional_call``. That is
general but leaves the memory layout of every batched matrix product to ``vmap``'s batching
rules, and small batched GEMMs are very sensitive to layout: on this project's 2-core CPU
(MKL), a ``(64, 128) @ (128, 10)`` product per cell ran about 5× slower than the same work
arranged as ``(10, 128) @ (128, 64)`` (measured once, 140 cells).

An architecture can therefore give its module a ``grouped_forward`` method (see
:class:`kdtheory.specs.ArchitectureSpec`); the engine then trains with it instead of ``vmap``.
:func:`grouped_linear` is the building block: a linear layer over stacked weights whose forward
product never has a narrow output, and whose weight gradient is computed directly in the
weight's ``(out, in)`` layout (no copy into place).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["NARROW_FEATURES", "grouped_linear"]

#: A layer with fewer output features than this computes its forward transposed, as (C, out, B).
NARROW_FEATURES = 32


class _GroupedLinear(torch.autograd.Function):
    generate_vmap_rule = True  # forward and backward are plain torch operations

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
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
    Not autocast-aware: the products run in the inputs' dtype. ``vmap`` over it works (the rule
    is generated from its torch operations) but gains nothing over ``F.linear``.
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
    return _GroupedLinear.apply(x, weight, bias)
