"""Tiny image datasets on disk in the formats torchvision reads, for tests that never download."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Rows of 3072 uint8 (CIFAR's channel-major layout), bright in a label-dependent channel."""
    x = rng.integers(0, 120, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    for i, label in enumerate(labels):
        x[i, label % 3, : 8 + 4 * (label % 4)] += 120
    return x.reshape(len(labels), -1)


def write_cifar10(root: Path, per_batch: int = 12, n_test: int = 20, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` with five tiny training batches, a test batch and the meta
    file, pickled as the real archive is; returns ``root``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(1, 6):
        labels = rng.integers(0, 10, per_batch)
        _pickle(
            folder / f"data_batch_{b}", {"data": _images(rng, labels), "labels": labels.tolist()}
        )
    labels = rng.integers(0, 10, n_test)
    _pickle(folder / "test_batch", {"data": _images(rng, labels), "labels": labels.tolist()})
    _pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    return root


def write_cifar100(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """``root/cifar-100-python`` with tiny ``train``, ``test`` and ``meta`` files."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, 100, n)
        _pickle(
            folder / name,
            {
                "data": _images(rng, fine),
                "fine_labels": fine.tolist(),
                "coarse_labels": (fine // 5).tolist(),
            },
        )
    _pickle(
        folder / "meta",
        {
            "fine_label_names": [f"f{i}" for i in range(100)],
            "coarse_label_names": [f"k{i}" for i in range(20)],
        },
    )
    return root


def write_imagefolder(
    root: Path, classes: tuple[str, ...] = ("cat", "dog", "fox"), per_class: int = 4, side: int = 20
) -> Path:
    """``root/train/<class>/*.png`` and ``root/val/<class>/*.png``: small RGB images (one
    grayscale) whose colour depends on the class; returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", max(1, per_class // 2))):
        for k, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 80, size=(side, side + 4, 3), dtype=np.uint8)
                pixels[..., k % 3] += 150
                image = Image.fromarray(pixels)
                if split == "train" and k == 0 and i == 0:
                    image = image.convert("L")
                image.save(d / f"{i}.png")
    return root
