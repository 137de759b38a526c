"""Built-in architectures: an MLP, a small CNN, a small vision transformer and a CIFAR ResNet.

This module registers them (``kdtheory_register_architectures``) and checks their options; the
torch models themselves live in :mod:`kdtheory.plugins.networks`, imported when a model is built,
so that listing the plugins (``kdtheory plugins``, ``kdtheory list``) does not load torch.
``MLP``, ``CNN``, ``ViT`` and ``ResNet`` are also reachable here, imported on first use (PEP 562).

Every model follows the contract of :class:`kdtheory.plugin.specs.ArchitectureSpec`:
``forward(x, with_features=False)`` returns logits ``(B, K)`` or ``(logits, features)`` with the
penultimate activations ``(B, F)``, and ``classifier`` is the final ``nn.Linear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kdtheory import hookimpl
from kdtheory._lazy import lazy_exports
from kdtheory.errors import SpecError
from kdtheory.plugin.specs import ArchitectureSpec, Option, positive_float, positive_int

if TYPE_CHECKING:
    from kdtheory.plugins.networks import CNN, MLP, ResNet, ViT

__all__ = [
    "CNN",
    "MLP",
    "ResNet",
    "ViT",
    "build_cnn",
    "build_mlp",
    "build_resnet",
    "build_vit",
    "kdtheory_register_architectures",
]
__getattr__, _dir = lazy_exports(
    __name__, dict.fromkeys(["CNN", "MLP", "ResNet", "ViT"], "kdtheory.plugins.networks")
)


def __dir__() -> list[str]:
    return sorted({*globals(), *_dir()})


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def _literal_only(text: str) -> Any:
    raise ValueError(f"{text!r} is not an accepted value")


def build_mlp(
    input_shape: Sequence[int], num_classes: int, width: int = 256, depth: int = 2
) -> MLP:
    """Build an :class:`MLP` (``mlp:width=256,depth=2``).

    Parameters
    ----------
    input_shape : sequence of int
    num_classes : int
    width : int
    depth : int

    Returns
    -------
    MLP
    """
    if int(width) < 1 or int(depth) < 0:
        raise SpecError(f"architecture 'mlp': need width >= 1 and depth >= 0, got {width}, {depth}")
    from kdtheory.plugins.networks import MLP

    return MLP(input_shape, num_classes, width=int(width), depth=int(depth))


def build_cnn(
    input_shape: Sequence[int], num_classes: int, channels: int = 32, width: int = 64
) -> CNN:
    """Build a :class:`CNN` (``cnn:channels=32,width=64``).

    Parameters
    ----------
    input_shape : sequence of int
    num_classes : int
    channels : int
    width : int

    Returns
    -------
    CNN
    """
    if int(channels) < 1 or int(width) < 1:
        raise SpecError("architecture 'cnn': channels and width must be >= 1")
    from kdtheory.plugins.networks import CNN

    return CNN(input_shape, num_classes, channels=int(channels), width=int(width))


def build_vit(
    input_shape: Sequence[int],
    num_classes: int,
    patch: int | str = "auto",
    dim: int = 64,
    depth: int = 2,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    pool: str = "mean",
) -> ViT:
    """Build a :class:`ViT` (``vit:patch=7,dim=64,depth=2,heads=4,mlp_ratio=2,pool=mean``).

    Parameters
    ----------
    input_shape : sequence of int
    num_classes : int
    patch : int or "auto"
        ``"auto"`` picks the smallest patch that divides every side and leaves at most 4
        patches per side (at most 16 segments for sequences): 7 for 28x28, 2 for 8x8, 4 for
        MNIST-1D's length 40.
    dim, depth, heads : int
    mlp_ratio : float
    pool : {"mean", "cls"}

    Returns
    -------
    ViT
    """
    from kdtheory.plugins.networks import ViT, auto_patch, check_input_shape

    shape = check_input_shape(input_shape, "vit")
    sizes = shape[1:] if len(shape) > 1 else shape
    if patch == "auto":
        patch = auto_patch(sizes)
    if int(patch) < 1 or int(dim) < 1 or int(depth) < 0 or int(heads) < 1:
        raise SpecError("architecture 'vit': patch, dim and heads must be >= 1, depth >= 0")
    return ViT(
        input_shape,
        num_classes,
        patch=int(patch),
        dim=int(dim),
        depth=int(depth),
        heads=int(heads),
        mlp_ratio=float(mlp_ratio),
        pool=pool,
    )


def build_resnet(
    input_shape: Sequence[int], num_classes: int, depth: int = 20, width: int = 16
) -> ResNet:
    """Build a :class:`ResNet` (``resnet:depth=20,width=16``, ResNet-20).

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)``.
    num_classes : int
    depth : int
        ``6 n + 2``.
    width : int
        Channels of the first stage (the stages have ``width``, ``2 width``, ``4 width``).

    Returns
    -------
    ResNet
    """
    if int(width) < 1:
        raise SpecError(f"architecture 'resnet': option width={width} must be >= 1")
    from kdtheory.plugins.networks import ResNet

    return ResNet(input_shape, num_classes, depth=int(depth), width=int(width))


# --------------------------------------------------------------------------- registration
def _mlp_options(width: int, depth: int) -> dict[str, Option]:
    """The options of an MLP architecture, with these defaults."""
    return {
        "width": Option(width, positive_int, "units per hidden layer"),
        "depth": Option(depth, _nonneg_int, "number of hidden layers"),
    }


@hookimpl
def kdtheory_register_architectures() -> list[ArchitectureSpec]:
    """Register the built-in architectures.

    Returns
    -------
    list of ArchitectureSpec
        ``mlp``, ``mlp-wide`` (a wider, deeper teacher MLP), ``cnn``, ``vit`` and ``resnet``.
    """
    return [
        ArchitectureSpec(
            name="mlp",
            description="ReLU MLP on flattened inputs",
            build=build_mlp,
            options=_mlp_options(width=256, depth=2),
        ),
        ArchitectureSpec(
            name="mlp-wide",
            description="wider, deeper ReLU MLP, the default teacher (width 1024, depth 3)",
            build=build_mlp,
            options=_mlp_options(width=1024, depth=3),
        ),
        ArchitectureSpec(
            name="cnn",
            description="small CNN: 2 strided convs, avg-pool, one hidden layer "
            "(2-D for images, 1-D for sequences)",
            build=build_cnn,
            options={
                "channels": Option(32, positive_int, "filters of the first convolution"),
                "width": Option(64, positive_int, "units of the hidden (feature) layer"),
            },
        ),
        ArchitectureSpec(
            name="vit",
            description="small vision transformer with pre-norm blocks and plain attention",
            build=build_vit,
            options={
                "patch": Option(
                    "auto", positive_int, "patch side, must divide the input size", ("auto",)
                ),
                "dim": Option(64, positive_int, "token width"),
                "depth": Option(2, _nonneg_int, "encoder blocks"),
                "heads": Option(4, positive_int, "attention heads, must divide dim"),
                "mlp_ratio": Option(2.0, positive_float, "block MLP width / dim"),
                "pool": Option("mean", _literal_only, "mean | cls", ("mean", "cls")),
            },
        ),
        ArchitectureSpec(
            name="resnet",
            description="CIFAR-style ResNet (6n+2 layers, 3 stages) with GroupNorm; images only",
            build=build_resnet,
            options={
                "depth": Option(20, positive_int, "layers, 6n+2: 8, 14, 20, 32, 44, 56, 110"),
                "width": Option(16, positive_int, "channels of the first stage"),
            },
        ),
    ]
