"""The torch models behind the built-in architectures: an MLP, a small CNN, a small ViT, a ResNet.

:mod:`kdtheory.plugins.architectures` registers them (and checks their options) without importing
torch; this module, which needs torch, is imported when a model is built.

Every model follows the contract of :class:`kdtheory.plugin.specs.ArchitectureSpec`:
``forward(x, with_features=False)`` returns logits ``(B, K)`` or ``(logits, features)`` with the
penultimate activations ``(B, F)``, and ``classifier`` is the final ``nn.Linear``. The models use
no BatchNorm (the ResNet normalises with GroupNorm), no dropout, no buffers, no in-place
operations and no data-dependent control flow, so that the batched training engine can run many
copies at once with ``torch.func.vmap`` over stacked parameters. Each also has a
``grouped_forward`` that computes the same group forward with batched kernels
(:mod:`kdtheory.training.grouped`); the engine trains with it. Parameters are initialised from
torch's global RNG only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from kdtheory.errors import SpecError
from kdtheory.training.grouped import (
    grouped_attention,
    grouped_layer_norm,
    grouped_linear,
    grouped_mlp,
)

__all__ = [
    "CNN",
    "MLP",
    "ResNet",
    "ViT",
    "auto_patch",
    "channels_first_shape",
    "check_input_shape",
    "grouped_conv",
    "norm_groups",
]


def check_input_shape(input_shape: Sequence[int], arch: str) -> tuple[int, ...]:
    """``input_shape`` as a tuple of ints, or a SpecError naming ``arch`` if a side is < 1."""
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise SpecError(f"architecture {arch!r}: bad input shape {shape}")
    return shape


def channels_first_shape(input_shape: Sequence[int], arch: str) -> tuple[int, ...]:
    """``input_shape`` as ``(C, H, W)`` or ``(C, L)``: a sequence ``(L,)`` gets one channel.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)``, ``(C, L)`` or ``(L,)``.
    arch : str
        The architecture, named in the error.

    Returns
    -------
    tuple of int

    Raises
    ------
    SpecError
        For any other shape, or a side < 1 (see :func:`check_input_shape`).
    """
    shape = check_input_shape(input_shape, arch)
    if len(shape) == 1:
        shape = (1, shape[0])
    if len(shape) not in (2, 3):
        raise SpecError(
            f"architecture {arch!r} takes inputs of shape (C, H, W), (C, L) or (L,), "
            f"not {tuple(input_shape)}"
        )
    return shape


def _check_classes(num_classes: int, arch: str) -> int:
    if int(num_classes) < 1:
        raise SpecError(f"architecture {arch!r}: num_classes={num_classes} must be >= 1")
    return int(num_classes)


def _output(
    logits: torch.Tensor, features: torch.Tensor, with_features: bool
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    return (logits, features) if with_features else logits


# --------------------------------------------------------------------------- MLP
class MLP(nn.Module):
    """A ReLU multilayer perceptron on flattened inputs.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one sample; it is flattened.
    num_classes : int
    width : int
        Units of each hidden layer.
    depth : int
        Number of hidden layers (0 gives a linear model whose features are the inputs).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, width: int = 256, depth: int = 2
    ) -> None:
        super().__init__()
        self.input_shape = check_input_shape(input_shape, "mlp")
        in_features = math.prod(self.input_shape)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers.append(nn.Linear(in_features, width))
            layers.append(nn.ReLU())
            in_features = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = in_features
        self.classifier = nn.Linear(in_features, _check_classes(num_classes, "mlp"))

    def forward(
        self, x: torch.Tensor, with_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, K)``, or ``(logits, features)`` if ``with_features``."""
        h = self.body(x.reshape(x.shape[0], -1))
        return _output(self.classifier(h), h, with_features)

    def grouped_forward(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        x: torch.Tensor,
        with_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The forward of a group of cells from their stacked parameters (batched kernels).

        Equal to ``vmap(functional_call)`` of :meth:`forward` up to float rounding; see
        :mod:`kdtheory.training.grouped`. Called on a parameter-less (``meta``) copy of the module.

        Parameters
        ----------
        params : dict of str to torch.Tensor
            This module's parameters by name, each with a leading cell dimension ``C``.
        buffers : dict of str to torch.Tensor
            Unused (the MLP has none); part of the ``grouped_forward`` contract.
        x : torch.Tensor
            ``(C, B, *input_shape)``.
        with_features : bool
            Also return the penultimate activations.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Logits ``(C, B, K)``, or ``(logits, features)`` with features ``(C, B, F)``.
        """
        kinds = [type(layer) for layer in self.body]
        if kinds != [nn.Linear, nn.ReLU] * (len(kinds) // 2):
            # keep this in step with __init__: anything else would silently differ
            raise TypeError(f"MLP.grouped_forward has no batched form of body {self.body!r}")
        names = [f"body.{i}" for i in range(0, len(kinds), 2)] + ["classifier"]
        return grouped_mlp(
            x.reshape(x.shape[0], x.shape[1], -1),
            [params[f"{n}.weight"] for n in names],
            [params[f"{n}.bias"] for n in names],
            with_features,
        )


# --------------------------------------------------------------------------- CNN
class CNN(nn.Module):
    """Two strided 3x3 convolutions, adaptive average pooling and one hidden layer.

    Images ``(C, H, W)`` use 2-D convolutions; sequences ``(L,)`` (one channel) or ``(C, L)`` use
    1-D convolutions. ``conv(channels) -> ReLU -> conv(2 * channels, stride 2) -> ReLU ->
    average pool to at most 3 (x 3) positions -> Linear(width) -> ReLU`` gives the features. The
    first convolution has stride 2 where every spatial side is at least 16 (28x28 -> 14x14), the
    second where every side is at least 4 (decided at build time, never from the data). On
    28x28 inputs the defaults give about 56k parameters and ~1M multiply-adds per sample, so it
    trains quickly on a CPU (no full-resolution feature maps).

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)``, ``(C, L)`` or ``(L,)``.
    num_classes : int
    channels : int
        Filters of the first convolution.
    width : int
        Units of the hidden layer before the classifier (the feature width).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, channels: int = 32, width: int = 64
    ) -> None:
        super().__init__()
        shape = channels_first_shape(input_shape, "cnn")
        self.input_shape = check_input_shape(input_shape, "cnn")
        self.conv_shape = shape
        self.spatial_dims = len(shape) - 1
        conv = nn.Conv2d if self.spatial_dims == 2 else nn.Conv1d
        in_ch, sizes = shape[0], list(shape[1:])
        stride1 = 2 if min(sizes) >= 16 else 1
        self.conv1 = conv(in_ch, channels, kernel_size=3, padding=1, stride=stride1)
        sizes = [(s - 1) // stride1 + 1 for s in sizes]
        stride2 = 2 if min(sizes) >= 4 else 1
        self.conv2 = conv(channels, 2 * channels, kernel_size=3, padding=1, stride=stride2)
        sizes = [(s - 1) // stride2 + 1 for s in sizes]
        self.pooled = tuple(min(3, s) for s in sizes)
        flat = 2 * channels * math.prod(self.pooled)
        self.hidden = nn.Linear(flat, width)
        self.feature_dim = width
        self.classifier = nn.Linear(width, _check_classes(num_classes, "cnn"))

    def forward(
        self, x: torch.Tensor, with_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, K)``, or ``(logits, features)`` if ``with_features``."""
        h = x.reshape(x.shape[0], *self.conv_shape)
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        if self.spatial_dims == 2:
            h = F.adaptive_avg_pool2d(h, self.pooled)
        else:
            h = F.adaptive_avg_pool1d(h, self.pooled[0])
        features = F.relu(self.hidden(h.reshape(h.shape[0], -1)))
        return _output(self.classifier(features), features, with_features)

    def grouped_forward(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        x: torch.Tensor,
        with_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The forward of a group of cells from their stacked parameters (batched kernels).

        The first convolution, whose input is the data, is one batched product per cell of
        its weights with the input's patches (no input gradient to fold back; mkldnn's grouped
        convolution with one input channel per group was slower here, backward above all). Its
        output is laid out ``(B, C * channels, *spatial)`` so that the ``C`` cells are the
        groups of one grouped convolution for the second (``vmap`` moves the cell dimension
        back and forth around every convolution instead). The average pooling is one product
        with its pooling matrix, and the hidden layer and the classifier run as one
        :func:`~kdtheory.training.grouped.grouped_mlp`. Equal to ``vmap(functional_call)`` of
        :meth:`forward` up to float rounding. Called on a parameter-less (``meta``) copy.

        Parameters
        ----------
        params : dict of str to torch.Tensor
            This module's parameters by name, each with a leading cell dimension ``C``.
        buffers : dict of str to torch.Tensor
            Unused (the CNN has none); part of the ``grouped_forward`` contract.
        x : torch.Tensor
            ``(C, B, *input_shape)``.
        with_features : bool
            Also return the penultimate activations.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Logits ``(C, B, K)``, or ``(logits, features)`` with features ``(C, B, F)``.
        """
        cells, batch = x.shape[0], x.shape[1]
        h = _first_conv_grouped(self.conv1, params, x.reshape(cells, batch, *self.conv_shape))
        h = grouped_conv(h, self.conv2, params["conv2.weight"], params["conv2.bias"]).relu_()
        # the adaptive average pooling as one product with its (positions, pooled) matrix
        positions = math.prod(h.shape[2:])
        pool = _pooling_matrix(h.shape[2:], self.pooled, h.dtype, h.device)
        h = (h.reshape(-1, positions) @ pool).reshape(batch, cells, -1)
        h = h.transpose(0, 1).contiguous()  # (C, B, flat), flattened as forward flattens
        return grouped_mlp(
            h,
            [params["hidden.weight"], params["classifier.weight"]],
            [params["hidden.bias"], params["classifier.bias"]],
            with_features,
        )


def grouped_conv(
    h: torch.Tensor,
    layer: nn.Conv1d | nn.Conv2d,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``layer``'s convolution for a group of cells as one grouped convolution.

    ``h`` is ``(B, C * in, *sizes)``, the cells side by side along the channels; ``weight`` is
    the cells' stacked weights ``(C, out, in, *kernel)`` (and ``bias`` ``(C, out)``): the ``C``
    cells are the groups, and the output is ``(B, C * out, *sizes')`` in the same layout.
    """
    conv = F.conv2d if isinstance(layer, nn.Conv2d) else F.conv1d
    return conv(
        h,
        weight.reshape(-1, *weight.shape[2:]),
        None if bias is None else bias.reshape(-1),
        stride=layer.stride,
        padding=layer.padding,
        groups=weight.shape[0],
    )


def _first_conv_grouped(
    layer: nn.Conv1d | nn.Conv2d, params: dict[str, torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """``relu(conv1(x))`` for a group of cells as patches times weights: ``(B, C * out, *S)``.

    ``x`` is ``(C, B, in, *sizes)``; the patches are cut with ``unfold`` (square kernel, equal
    stride and padding on every side, as :class:`CNN` builds them).
    """
    cells, batch, in_ch = x.shape[:3]
    k, stride, pad = layer.kernel_size[0], layer.stride[0], layer.padding[0]
    dims = x.dim() - 3
    h = F.pad(x, (pad, pad) * dims)
    for d in range(dims):
        h = h.unfold(3 + d, k, stride)  # (C, B, in, *out_sizes, *kernel)
    out_sizes = h.shape[3 : 3 + dims]
    order = (0, 2, *range(3 + dims, 3 + 2 * dims), 1, *range(3, 3 + dims))
    patches = h.permute(order).reshape(cells, in_ch * k**dims, -1)  # (C, in * k^d, B * S)
    weight = params["conv1.weight"].reshape(cells, -1, in_ch * k**dims)
    out = torch.baddbmm(params["conv1.bias"].unsqueeze(2), weight, patches).relu_()
    channels = weight.shape[1]
    out = out.view(cells * channels, batch, -1).transpose(0, 1)
    return out.reshape(batch, cells * channels, *out_sizes)


def _pooling_matrix(
    sizes: Sequence[int], pooled: Sequence[int], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``(prod(sizes), prod(pooled))``: adaptive average pooling as a matrix (pooled basis)."""
    n = math.prod(sizes)
    basis = torch.eye(n, dtype=dtype, device=device).view(n, 1, *sizes)
    pool = F.adaptive_avg_pool2d if len(sizes) == 2 else F.adaptive_avg_pool1d
    return pool(basis, tuple(pooled) if len(sizes) == 2 else pooled[0]).reshape(n, -1)


# --------------------------------------------------------------------------- ViT
class Attention(nn.Module):
    """Multi-head self-attention written with plain matmuls (safe under ``vmap``).

    Parameters
    ----------
    dim : int
        Token width.
    heads : int
        Number of heads; must divide ``dim``.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the tokens of ``x`` ``(B, N, D)``."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, N, hd)
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer encoder block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to tokens ``(B, N, D)``."""
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def auto_patch(sizes: Sequence[int]) -> int:
    """Smallest patch dividing every side with at most 4 patches per side (16 for 1-D)."""
    target = 16 if len(sizes) == 1 else 4
    side = min(sizes)
    for p in range(1, side + 1):
        if all(s % p == 0 and s // p <= target for s in sizes):
            return p
    for p in range(side, 0, -1):  # no patch meets the target: largest common divisor
        if all(s % p == 0 for s in sizes):
            return p
    return 1


class ViT(nn.Module):
    """A small vision transformer for images ``(C, H, W)`` or sequences ``(L,)`` / ``(C, L)``.

    Non-overlapping ``patch`` x ``patch`` patches (``patch``-long segments for sequences) are
    embedded linearly, a learned position embedding is added (and a learned CLS token prepended
    if ``pool="cls"``), ``depth`` pre-norm encoder blocks follow, then a final LayerNorm of the
    pooled token gives the features.

    Parameters
    ----------
    input_shape : sequence of int
    num_classes : int
    patch : int
        Patch side; must divide every spatial side of the input.
    dim : int
        Token width.
    depth : int
        Number of encoder blocks.
    heads : int
        Attention heads; must divide ``dim``.
    mlp_ratio : float
        Hidden width of each block's MLP relative to ``dim``.
    pool : {"mean", "cls"}
        Mean over tokens, or a CLS token.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        patch: int = 7,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        shape = channels_first_shape(input_shape, "vit")
        sizes = shape[1:]
        if any(s % patch for s in sizes):
            raise SpecError(
                f"architecture 'vit': option patch={patch} must divide the input's spatial "
                f"size {tuple(sizes)}; pick a divisor, e.g. vit:patch={auto_patch(sizes)}"
            )
        if dim % heads:
            raise SpecError(f"architecture 'vit': option heads={heads} must divide dim={dim}")
        if pool not in ("mean", "cls"):
            raise SpecError("architecture 'vit': option pool must be 'mean' or 'cls'")
        self.input_shape = check_input_shape(input_shape, "vit")
        self.conv_shape = shape
        self.patch = patch
        self.pool = pool
        self.grid = tuple(s // patch for s in sizes)
        num_tokens = math.prod(self.grid)
        patch_dim = shape[0] * patch ** len(sizes)
        self.embed = nn.Linear(patch_dim, dim)
        self.pos = nn.Parameter(torch.zeros(1, num_tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        if pool == "cls":
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(self.cls, std=0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim
        self.classifier = nn.Linear(dim, _check_classes(num_classes, "vit"))

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """Cut ``x`` into flattened patches ``(B, num_tokens, C * patch**d)``."""
        b, p = x.shape[0], self.patch
        c = self.conv_shape[0]
        if len(self.grid) == 2:
            gh, gw = self.grid
            x = x.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)
            return x.reshape(b, gh * gw, c * p * p)
        (gl,) = self.grid
        x = x.reshape(b, c, gl, p).permute(0, 2, 1, 3)
        return x.reshape(b, gl, c * p)

    def forward(
        self, x: torch.Tensor, with_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, K)``, or ``(logits, features)`` if ``with_features``."""
        tokens = self.embed(self.patches(x)) + self.pos
        if self.pool == "cls":
            cls = self.cls.expand(tokens.shape[0], 1, tokens.shape[2])
            tokens = torch.cat([cls, tokens], dim=1)
        tokens = self.blocks(tokens)
        pooled = tokens[:, 0] if self.pool == "cls" else tokens.mean(dim=1)
        features = self.norm(pooled)
        return _output(self.classifier(features), features, with_features)

    def grouped_forward(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        x: torch.Tensor,
        with_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The forward of a group of cells from their stacked parameters (batched kernels).

        Tokens are kept as ``(C, B * N, D)``: the patch embedding and every linear layer is one
        :func:`~kdtheory.training.grouped.grouped_linear` over the cells, the attention products
        are one ``bmm`` each over (cell, sample, head), and each LayerNorm normalises all cells
        at once before a per-cell affine (:func:`~kdtheory.training.grouped.grouped_layer_norm`).
        Equal to ``vmap(functional_call)`` of :meth:`forward` up to float rounding. Called on a
        parameter-less (``meta``) copy.

        Parameters
        ----------
        params : dict of str to torch.Tensor
            This module's parameters by name, each with a leading cell dimension ``C``.
        buffers : dict of str to torch.Tensor
            Unused (the ViT has none); part of the ``grouped_forward`` contract.
        x : torch.Tensor
            ``(C, B, *input_shape)``.
        with_features : bool
            Also return the penultimate activations.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Logits ``(C, B, K)``, or ``(logits, features)`` with features ``(C, B, D)``.
        """
        cells, batch = x.shape[0], x.shape[1]
        patches = self.patches(x.reshape(cells * batch, *x.shape[2:]))  # (C * B, N, P)
        n, dim = patches.shape[1], self.feature_dim
        tokens = grouped_linear(
            patches.reshape(cells, batch * n, -1), params["embed.weight"], params["embed.bias"]
        )
        tokens = tokens.view(cells, batch, n, dim) + params["pos"]  # pos: (C, 1, N, D)
        if self.pool == "cls":
            cls = params["cls"].expand(cells, batch, 1, dim)
            tokens = torch.cat([cls, tokens], dim=2)
            n += 1
        for i, block in enumerate(self.blocks):
            tokens = _grouped_block(block, f"blocks.{i}.", params, tokens)
        pooled = tokens[:, :, 0] if self.pool == "cls" else tokens.mean(dim=2)
        features = grouped_layer_norm(
            pooled, params["norm.weight"], params["norm.bias"], self.norm.eps
        )
        logits = grouped_linear(features, params["classifier.weight"], params["classifier.bias"])
        return _output(logits, features, with_features)


def _grouped_block(
    block: Block, prefix: str, params: dict[str, torch.Tensor], tokens: torch.Tensor
) -> torch.Tensor:
    """:meth:`Block.forward` of a group of cells on tokens ``(C, B, N, D)``."""
    cells, batch, n, dim = tokens.shape

    def linear(name: str, h: torch.Tensor) -> torch.Tensor:
        return grouped_linear(
            h.reshape(cells, batch * n, -1),
            params[f"{prefix}{name}.weight"],
            params[f"{prefix}{name}.bias"],
        )

    def norm(name: str, h: torch.Tensor) -> torch.Tensor:
        eps = getattr(block, name).eps
        return grouped_layer_norm(
            h, params[f"{prefix}{name}.weight"], params[f"{prefix}{name}.bias"], eps
        )

    attn = block.attn
    qkv = linear("attn.qkv", norm("norm1", tokens)).view(cells, batch, n, 3 * dim)
    heads = grouped_attention(qkv, attn.heads, attn.scale)
    tokens = tokens + linear("attn.proj", heads).view(cells, batch, n, dim)
    hidden = F.gelu(linear("fc1", norm("norm2", tokens)))
    return tokens + linear("fc2", hidden).view(cells, batch, n, dim)


# --------------------------------------------------------------------------- ResNet
def norm_groups(channels: int, groups: int = 8) -> int:
    """GroupNorm groups for ``channels``: the largest divisor of ``channels`` up to ``groups``."""
    return max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)


class BasicBlock(nn.Module):
    """``relu(x' + GN(conv(relu(GN(conv(x))))))`` with ``x'`` the input, or its 1x1 projection
    (convolution and GroupNorm) where the stride or the width changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(norm_groups(out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(norm_groups(out_ch), out_ch)
        self.project = stride != 1 or in_ch != out_ch
        if self.project:
            self.short = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
            self.short_norm = nn.GroupNorm(norm_groups(out_ch), out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``(B, C, H, W)``."""
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        short = self.short_norm(self.short(x)) if self.project else x
        return F.relu(h + short)


class ResNet(nn.Module):
    """A CIFAR-style ResNet (He et al. 2016, section 4.2) with GroupNorm instead of BatchNorm.

    A 3x3 convolution to ``width`` channels, then three stages of ``(depth - 2) / 6`` basic
    blocks with ``width``, ``2 * width`` and ``4 * width`` channels (the second and third start
    with stride 2), global average pooling (the features) and the linear classifier. ``depth=20,
    width=16`` is ResNet-20 (0.27M parameters). GroupNorm normalises each sample on its own, so
    there are no running statistics (no buffers) and a cell's forward does not depend on the
    other samples of its batch or the other cells of its group. Takes images ``(C, H, W)``.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)``.
    num_classes : int
    depth : int
        ``6 n + 2`` (8, 14, 20, 32, 44, 56, 110, ...).
    width : int
        Channels of the first stage.
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, depth: int = 20, width: int = 16
    ) -> None:
        super().__init__()
        shape = check_input_shape(input_shape, "resnet")
        if len(shape) != 3:
            raise SpecError(
                f"architecture 'resnet' takes images of shape (C, H, W), not {shape}; use "
                "cnn or vit for sequences"
            )
        if depth < 8 or (depth - 2) % 6:
            raise SpecError(
                f"architecture 'resnet': option depth={depth} must be 6n+2 with n >= 1 "
                "(8, 14, 20, 32, 44, 56, 110)"
            )
        self.input_shape = shape
        self.stem = nn.Conv2d(shape[0], width, 3, padding=1, bias=False)
        self.stem_norm = nn.GroupNorm(norm_groups(width), width)
        blocks: list[nn.Module] = []
        in_ch = width
        for stage in range(3):
            out_ch = width * 2**stage
            for i in range((depth - 2) // 6):
                blocks.append(BasicBlock(in_ch, out_ch, 2 if stage > 0 and i == 0 else 1))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = in_ch
        self.classifier = nn.Linear(in_ch, _check_classes(num_classes, "resnet"))

    def forward(
        self, x: torch.Tensor, with_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, K)``, or ``(logits, features)`` if ``with_features``."""
        h = F.relu(self.stem_norm(self.stem(x)))
        features = self.blocks(h).mean(dim=(2, 3))
        return _output(self.classifier(features), features, with_features)

    def grouped_forward(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        x: torch.Tensor,
        with_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The forward of a group of cells from their stacked parameters (batched kernels).

        Activations are laid out ``(B, C * channels, H, W)``: every convolution is one grouped
        convolution with the ``C`` cells as its groups, and every GroupNorm one ``group_norm``
        with ``C`` times its groups (its groups are contiguous channel blocks, so they never
        straddle two cells) and the cells' affine parameters concatenated. Equal to
        ``vmap(functional_call)`` of :meth:`forward` up to float rounding. Called on a
        parameter-less (``meta``) copy.

        Parameters
        ----------
        params : dict of str to torch.Tensor
            This module's parameters by name, each with a leading cell dimension ``C``.
        buffers : dict of str to torch.Tensor
            Unused (the ResNet has none); part of the ``grouped_forward`` contract.
        x : torch.Tensor
            ``(C, B, *input_shape)``.
        with_features : bool
            Also return the penultimate activations.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Logits ``(C, B, K)``, or ``(logits, features)`` with features ``(C, B, F)``.
        """
        cells, batch = x.shape[0], x.shape[1]

        def conv(name: str, h: torch.Tensor, layer: nn.Conv2d) -> torch.Tensor:
            return grouped_conv(h, layer, params[f"{name}.weight"])

        def norm(name: str, h: torch.Tensor, layer: nn.GroupNorm) -> torch.Tensor:
            return F.group_norm(
                h,
                cells * layer.num_groups,
                params[f"{name}.weight"].reshape(-1),
                params[f"{name}.bias"].reshape(-1),
                layer.eps,
            )

        h = x.transpose(0, 1).reshape(batch, cells * x.shape[2], *x.shape[3:])
        h = F.relu(norm("stem_norm", conv("stem", h, self.stem), self.stem_norm))
        for i, block in enumerate(self.blocks):
            p = f"blocks.{i}."
            out = F.relu(norm(p + "norm1", conv(p + "conv1", h, block.conv1), block.norm1))
            out = norm(p + "norm2", conv(p + "conv2", out, block.conv2), block.norm2)
            if block.project:
                h = norm(p + "short_norm", conv(p + "short", h, block.short), block.short_norm)
            h = F.relu(out + h)
        features = h.mean(dim=(2, 3)).view(batch, cells, -1).transpose(0, 1).contiguous()
        logits = grouped_linear(features, params["classifier.weight"], params["classifier.bias"])
        return _output(logits, features, with_features)
