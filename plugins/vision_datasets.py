"""Image datasets read with torchvision's loaders: CIFAR-10, CIFAR-100 and ImageNet-style folders.

They need the optional extra ``pip install -e ".[vision]"`` (torchvision), imported only when a
dataset is loaded, so listing the plugins works without it. Like every kdtheory dataset they are
held in memory as float32 arrays ``(n, 3, H, W)``, normalised per channel with the standard
statistics (CIFAR-10's or CIFAR-100's training-set means and standard deviations; ImageNet's for
folders), and labels are int64 ``0..K-1``.

- ``cifar10:root=DIR`` / ``cifar100:root=DIR``: torchvision's on-disk format under ``DIR``
  (``cifar-10-batches-py/`` with ``data_batch_1..5``, ``test_batch``, ``batches.meta``;
  ``cifar-100-python/`` with ``train``, ``test``, ``meta``). ``download=true`` fetches the
  archive into ``DIR`` first (the only kdtheory dataset that may use the network, and only when
  asked). The files' checksums are not checked (the archive's is, on download), so a copy
  repacked in the same format, e.g. a subset, loads too. Memory: CIFAR takes about 740 MB.
- ``imagefolder:root=DIR,size=S``: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (or
  ``DIR/test/``), any image classification set laid out as ImageNet is; each image is resized
  so its shorter side is ``S`` and centre-cropped to ``S x S``. Everything is decoded into
  memory: ``n * 3 * S * S * 4`` bytes, e.g. 100k images at 64 px take 4.9 GB, ImageNet-1k's
  1.28M at 64 px 63 GB; use a subset or a smaller ``size`` beyond what fits.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from kdtheory import hookimpl
from kdtheory.errors import SpecError
from kdtheory.plugin.specs import DatasetSpec, LoadedDataset, Option, positive_int
from kdtheory.plugins.datasets import DatasetError

__all__ = [
    "CIFAR10_STATS",
    "CIFAR100_STATS",
    "IMAGENET_STATS",
    "VISION_EXTRA",
    "import_torchvision",
    "kdtheory_register_datasets",
    "load_cifar",
    "load_imagefolder",
    "normalize_images",
]

#: the pip extra that installs torchvision
VISION_EXTRA = 'pip install -e ".[vision]"  (or: pip install "kdtheory[vision]")'
#: per-channel (mean, std) of the training images, values in [0, 1]
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: folder names accepted for the test split of an image folder, in order of preference
TEST_SPLITS = ("val", "test")

_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", "data_batch_1..5, test_batch, batches.meta"),
    "cifar100": ("cifar-100-python", "train, test, meta"),
}
_torchvision_ops: Any = None  # keeps the fallback operator declarations alive


def import_torchvision() -> Any:
    """Import torchvision, or fail with an error naming the extra that installs it.

    PyPI's torchvision wheels for Linux are built against CUDA torch; beside a CPU-only build of
    the same torch release their compiled operators (detection ops such as ``nms``) cannot load,
    and torchvision's import then fails while registering their shapes. kdtheory only uses its
    pure-Python datasets and transforms, so in that case the two operators torchvision registers
    unconditionally are declared (never implemented) and the import is retried.

    Returns
    -------
    module
        ``torchvision``.

    Raises
    ------
    SpecError
        torchvision is not installed.
    """
    global _torchvision_ops
    try:
        import torchvision
    except ImportError:
        raise SpecError(
            "the vision datasets (cifar10, cifar100, imagefolder) need torchvision, an optional "
            f"extra of kdtheory: {VISION_EXTRA}"
        ) from None
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        import torch

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _torchvision_ops = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            _torchvision_ops.define(
                f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            )
        import torchvision
    return torchvision


def normalize_images(
    images: np.ndarray, stats: tuple[tuple[float, ...], tuple[float, ...]]
) -> np.ndarray:
    """uint8 images ``(n, H, W, 3)`` (or float ``(n, 3, H, W)`` in [0, 1]) → normalised float32
    ``(n, 3, H, W)``: ``(x / 255 - mean) / std`` per channel."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    mean = np.asarray(stats[0], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(stats[1], np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray(((x - mean) / std).astype(np.float32))


def _readonly(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _make(
    name: str, arrays: tuple[np.ndarray, ...], num_classes: int, options: dict[str, Any]
) -> LoadedDataset:
    x_train, y_train, x_test, y_test = arrays
    return LoadedDataset(
        x_train=np.array(x_train, copy=True),
        y_train=np.array(y_train, copy=True),
        x_test=np.array(x_test, copy=True),
        y_test=np.array(y_test, copy=True),
        num_classes=int(num_classes),
        name=name,
        options=dict(options),
    )


def _need_root(name: str, root: str | None, example: str) -> Path:
    if root is None or not str(root).strip():
        raise SpecError(f"dataset {name!r} needs the option 'root', e.g. --dataset {example}")
    return Path(root).expanduser()


# --------------------------------------------------------------------------- CIFAR
def _cifar_classes(tv: Any, name: str) -> Any:
    """torchvision's CIFAR class with checksums off for the extracted files (not the archive)."""
    parent = tv.datasets.CIFAR10 if name == "cifar10" else tv.datasets.CIFAR100
    attrs = {
        "train_list": [[f, None] for f, _ in parent.train_list],
        "test_list": [[f, None] for f, _ in parent.test_list],
        "meta": {**parent.meta, "md5": None},
    }
    return type(f"Local{parent.__name__}", (parent,), attrs)


@lru_cache(maxsize=4)
def _cifar_arrays(name: str, root: str, download: bool) -> tuple[tuple[np.ndarray, ...], int]:
    tv = import_torchvision()
    folder, files = _CIFAR_LAYOUT[name]
    where = Path(root) / folder
    if not download and not where.is_dir():
        hint = (
            f"no folder {str(where)!r}; root must hold the extracted {folder}/ ({files}), "
            f"as torchvision writes it; add download=true to fetch it into {root!r}"
        )
        if not Path(root).is_dir():
            hint = f"root {root!r} is not a folder; " + hint
        raise DatasetError(f"dataset {name!r}: option root={root}: {hint}")
    cls = _cifar_classes(tv, name)
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except Exception as exc:  # noqa: BLE001 - missing files, bad pickles, wrong shapes ...
        detail = " ".join(str(exc).split())
        raise DatasetError(
            f"dataset {name!r}: option root={root}: cannot read {str(where)!r} "
            f"({type(exc).__name__}: {detail}); it must hold torchvision's extracted {folder}/ "
            f"({files}); remove it and add download=true to fetch a fresh copy"
        ) from None
    stats = CIFAR10_STATS if name == "cifar10" else CIFAR100_STATS
    num_classes = len(train.classes)
    y_train = np.asarray(train.targets, np.int64)
    y_test = np.asarray(test.targets, np.int64)
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) == 0 or y.min() < 0 or y.max() >= num_classes:
            raise DatasetError(
                f"dataset {name!r}: option root={root}: the {split} labels are not class indices "
                f"0..{num_classes - 1} of the {num_classes} classes in the meta file"
            )
    arrays = (
        normalize_images(train.data, stats),
        y_train,
        normalize_images(test.data, stats),
        y_test,
    )
    return _readonly(*arrays), num_classes


def load_cifar(name: str, root: str | None = None, download: bool = False) -> LoadedDataset:
    """CIFAR-10 or CIFAR-100 (50k train / 10k test 32x32 colour images) via torchvision.

    Parameters
    ----------
    name : {"cifar10", "cifar100"}
    root : str
        Folder holding torchvision's extracted ``cifar-10-batches-py/`` or
        ``cifar-100-python/`` (required).
    download : bool
        Fetch and extract the archive into ``root`` first when it is not there.

    Returns
    -------
    LoadedDataset
        Inputs ``(3, 32, 32)`` normalised per channel; 10 or 100 classes.

    Raises
    ------
    SpecError
        No ``root``, or torchvision is not installed.
    DatasetError
        ``root`` does not hold the dataset, or its files cannot be read.
    """
    path = _need_root(name, root, f"{name}:root=~/data  (add download=true to fetch it)")
    arrays, num_classes = _cifar_arrays(name, str(path), bool(download))
    return _make(name, arrays, num_classes, {"root": str(root), "download": bool(download)})


def _load_cifar10(root: str | None = None, download: bool = False) -> LoadedDataset:
    return load_cifar("cifar10", root, download)


def _load_cifar100(root: str | None = None, download: bool = False) -> LoadedDataset:
    return load_cifar("cifar100", root, download)


# --------------------------------------------------------------------------- image folders
def _decode_folder(tv: Any, folder: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    transform = tv.transforms.Compose(
        [tv.transforms.Resize(size), tv.transforms.CenterCrop(size), tv.transforms.ToTensor()]
    )
    ds = tv.datasets.ImageFolder(str(folder), transform=transform)
    x = np.empty((len(ds), 3, size, size), np.float32)
    for i in range(len(ds)):
        image, _ = ds[i]
        x[i] = image.numpy()  # torchvision's loader converts every image to RGB
    return x, np.asarray(ds.targets, np.int64), list(ds.classes)


@lru_cache(maxsize=4)
def _folder_arrays(root: str, size: int) -> tuple[tuple[np.ndarray, ...], int]:
    tv = import_torchvision()
    base = Path(root)
    layout = "root/train/<class>/<image> and root/val/<class>/<image> (or root/test/...)"
    if not base.is_dir():
        raise DatasetError(f"dataset 'imagefolder': option root={root}: no such folder; {layout}")
    test_dir = next((base / s for s in TEST_SPLITS if (base / s).is_dir()), None)
    if not (base / "train").is_dir() or test_dir is None:
        have = sorted(p.name for p in base.iterdir() if p.is_dir())
        raise DatasetError(
            f"dataset 'imagefolder': option root={root}: expected subfolders train/ and val/ "
            f"(or test/), found {', '.join(have) if have else 'none'}; lay it out as {layout}"
        )
    try:
        x_train, y_train, classes = _decode_folder(tv, base / "train", size)
        x_test, y_test_local, test_classes = _decode_folder(tv, test_dir, size)
    except (FileNotFoundError, OSError) as exc:  # no class folder / no image / unreadable
        raise DatasetError(
            f"dataset 'imagefolder': option root={root}: {' '.join(str(exc).split())}; "
            f"lay it out as {layout}"
        ) from None
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise DatasetError(
            f"dataset 'imagefolder': option root={root}: {test_dir.name}/ has class folder(s) "
            f"{', '.join(unknown[:10])} that train/ lacks"
        )
    index = {c: i for i, c in enumerate(classes)}
    y_test = np.asarray([index[test_classes[t]] for t in y_test_local], np.int64)
    mean = np.asarray(IMAGENET_STATS[0], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(IMAGENET_STATS[1], np.float32).reshape(1, 3, 1, 1)
    for x in (x_train, x_test):
        x -= mean
        x /= std
    return _readonly(x_train, y_train, x_test, y_test), len(classes)


def load_imagefolder(root: str | None = None, size: int = 64) -> LoadedDataset:
    """An ImageNet-style folder tree, decoded into memory at ``size x size`` pixels.

    Parameters
    ----------
    root : str
        Folder with ``train/<class>/`` and ``val/<class>/`` (or ``test/<class>/``) of images
        (required). Class indices follow the sorted names of ``train/``'s class folders.
    size : int
        Side of the square images: the shorter side is resized to it, then centre-cropped.

    Returns
    -------
    LoadedDataset
        Inputs ``(3, size, size)`` normalised with ImageNet's channel statistics.
    """
    path = _need_root("imagefolder", root, "imagefolder:root=~/data/imagenette,size=64")
    arrays, num_classes = _folder_arrays(str(path), int(size))
    return _make("imagefolder", arrays, num_classes, {"root": str(root), "size": int(size)})


# --------------------------------------------------------------------------- registration
def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError(f"{text!r} is not true or false")


def _cifar_options() -> dict[str, Option]:
    return {
        "root": Option(None, str, "folder with torchvision's extracted CIFAR files (required)"),
        "download": Option(False, _bool, "true: fetch the archive into root if missing"),
    }


@hookimpl
def kdtheory_register_datasets() -> list[DatasetSpec]:
    """Register the torchvision-backed datasets.

    Returns
    -------
    list of DatasetSpec
        ``cifar10``, ``cifar100`` and ``imagefolder`` (they need the ``vision`` extra).
    """
    return [
        DatasetSpec(
            name="cifar10",
            description="CIFAR-10 via torchvision (32x32 colour, 10 classes, 50k/10k); "
            "needs the vision extra",
            load=_load_cifar10,
            options=_cifar_options(),
        ),
        DatasetSpec(
            name="cifar100",
            description="CIFAR-100 via torchvision (32x32 colour, 100 classes, 50k/10k); "
            "needs the vision extra",
            load=_load_cifar100,
            options=_cifar_options(),
        ),
        DatasetSpec(
            name="imagefolder",
            description="ImageNet-style folder tree root/{train,val}/<class>/<image>, resized "
            "to size x size and held in memory; needs the vision extra",
            load=load_imagefolder,
            options={
                "root": Option(None, str, "folder with train/ and val/ (or test/) (required)"),
                "size": Option(64, positive_int, "image side after resize and centre crop"),
            },
        ),
    ]
