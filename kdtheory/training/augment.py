"""Data augmentation on the training device, per cell and per step, seeded per cell.

``--augment crop-flip`` is the standard CIFAR augmentation: pad each image by 4 pixels on every
side (with zeros: the data are normalised, so zero is the channel mean), cut a random
``H x W`` crop and mirror it horizontally with probability 1/2. Each cell draws its crops and
flips from its own generator, seeded from the cell's seed and subset size (as its data order is),
so a cell's augmented batches, and so its result, are the same whether it trains alone or in a
group. The draws are made on the CPU in blocks and applied on the device as one gather over the
whole group (pure indexing, no arithmetic: the augmented values are exact copies of pixels).

With augmentation the teacher's targets are computed on the augmented input, as KD
implementations do: every step the engine runs the teacher on each cell's augmented batch and
builds the cell's targets from those logits (see :func:`needs_teacher`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kdtheory.errors import SpecError

__all__ = [
    "AUGMENTATIONS",
    "CROP_PADDING",
    "TEACHER_FREE_OBJECTIVES",
    "AugmentSampler",
    "check_augment",
    "crop_flip",
    "needs_teacher",
]

#: accepted values of ``--augment``
AUGMENTATIONS = ("none", "crop-flip")
#: pixels of zero padding on every side before the random crop
CROP_PADDING = 4
#: objectives whose targets use no per-sample teacher output: with augmentation their targets
#: stay those computed once from the stored teacher logits (``ls:eps=matched`` keeps its epsilon,
#: matched on the un-augmented training subset); every other objective's targets are rebuilt
#: each step from the teacher's logits on the augmented batch
TEACHER_FREE_OBJECTIVES = ("label", "ls")


def check_augment(augment: str, input_shape: Sequence[int] | None = None) -> str:
    """Check an ``--augment`` value, and that the inputs are images if it augments.

    Parameters
    ----------
    augment : str
        One of :data:`AUGMENTATIONS`.
    input_shape : sequence of int, optional
        The shape of one sample; ``crop-flip`` needs images ``(C, H, W)``.

    Returns
    -------
    str
        ``augment``.

    Raises
    ------
    SpecError
        An unknown augmentation, or image augmentation of inputs that are not images.
    """
    if augment not in AUGMENTATIONS:
        raise SpecError(f"--augment: {augment!r} is not one of {', '.join(AUGMENTATIONS)}")
    if augment != "none" and input_shape is not None and len(tuple(input_shape)) != 3:
        raise SpecError(
            f"--augment {augment}: crops and flips images of shape (C, H, W), but this "
            f"dataset's inputs have shape {tuple(input_shape)}; use --augment none"
        )
    return augment


def needs_teacher(objective_name: str) -> bool:
    """Whether an objective's targets come from the teacher's per-sample outputs (so, with
    augmentation, from the teacher's logits on the augmented batch)."""
    return objective_name not in TEACHER_FREE_OBJECTIVES


class AugmentSampler:
    """One cell's crop offsets and flips, drawn from its own generator.

    Parameters
    ----------
    seed : int
        The cell's seed.
    n_train : int
        Its subset size (with the seed it fixes the draws, as it fixes the data order).
    batch_size : int
    """

    def __init__(self, seed: int, n_train: int, batch_size: int) -> None:
        self.rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(n_train), 13]))
        self.batch_size = int(batch_size)

    def take(self, steps: int) -> np.ndarray:
        """``(steps, batch_size, 3)`` int64: vertical and horizontal offsets in
        ``[0, 2 * CROP_PADDING]`` and a flip bit, for the next ``steps`` batches.

        One uniform double per value (one generator draw each), so the draws of a step do not
        depend on how many steps are taken at once (a cell alone and in a group take blocks of
        different lengths).
        """
        u = self.rng.random((steps, self.batch_size, 3))
        sides = np.array([2 * CROP_PADDING + 1, 2 * CROP_PADDING + 1, 2])
        return np.floor(u * sides).astype(np.int64)


def crop_flip(x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """Random crops (after zero padding) and horizontal flips of a batch of images.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., C, H, W)`` images.
    draws : torch.Tensor
        ``(..., 3)`` int64 per image: row offset, column offset (each in
        ``[0, 2 * CROP_PADDING]``) and flip (0 or 1), as :meth:`AugmentSampler.take` draws them.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``: ``padded[..., oy:oy + H, ox:ox + W]``, mirrored where flip is 1.
    """
    lead = x.shape[:-3]
    c, h, w = x.shape[-3:]
    flat = x.reshape(-1, c, h, w)
    d = draws.reshape(-1, 3).to(x.device)
    p = CROP_PADDING
    padded = torch.nn.functional.pad(flat, (p, p, p, p))
    rows = d[:, 0:1] + torch.arange(h, device=x.device)  # (N, H)
    cols = torch.arange(w, device=x.device).expand(len(d), w)
    cols = torch.where(d[:, 2:3].bool(), w - 1 - cols, cols) + d[:, 1:2]  # (N, W)
    n = torch.arange(len(d), device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[n, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous().reshape(*lead, c, h, w)
