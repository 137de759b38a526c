"""The torchvision-backed datasets, read from tiny files in the real on-disk formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from vision_fixtures import write_cifar10, write_cifar100, write_imagefolder

from kdtheory.errors import SpecError
from kdtheory.plugins import vision_datasets as vd
from kdtheory.plugins.datasets import DatasetError
from kdtheory.training.sweep import load_dataset


def test_cifar10_reads_torchvision_format(tmp_path):
    root = write_cifar10(tmp_path, per_batch=12, n_test=20)
    data = load_dataset(f"cifar10:root={root}")
    assert data.x_train.shape == (60, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.num_classes == 10
    # the labels are the pickled ones, in batch order
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="latin1")
    np.testing.assert_array_equal(data.y_train[:12], first["labels"])
    # per-channel normalisation with CIFAR-10's statistics, pixel by pixel
    raw = first["data"][0].reshape(3, 32, 32).astype(np.float32) / 255
    mean = np.array(vd.CIFAR10_STATS[0], np.float32)[:, None, None]
    std = np.array(vd.CIFAR10_STATS[1], np.float32)[:, None, None]
    np.testing.assert_allclose(data.x_train[0], (raw - mean) / std, rtol=1e-6, atol=1e-6)


def test_cifar100_fine_labels_and_stats(tmp_path):
    root = write_cifar100(tmp_path, n_train=30, n_test=10)
    data = load_dataset(f"cifar100:root={root}")
    assert data.num_classes == 100 and data.x_train.shape == (30, 3, 32, 32)
    with open(root / "cifar-100-python" / "test", "rb") as f:
        test = pickle.load(f, encoding="latin1")
    np.testing.assert_array_equal(data.y_test, test["fine_labels"])
    raw = test["data"][3].reshape(3, 32, 32).astype(np.float32) / 255
    mean = np.array(vd.CIFAR100_STATS[0], np.float32)[:, None, None]
    std = np.array(vd.CIFAR100_STATS[1], np.float32)[:, None, None]
    np.testing.assert_allclose(data.x_test[3], (raw - mean) / std, rtol=1e-6, atol=1e-6)


def test_cifar_errors_name_option_path_and_fix(tmp_path):
    with pytest.raises(SpecError, match="needs the option 'root'"):
        load_dataset("cifar10")
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as err:
        load_dataset(f"cifar10:root={missing}")
    text = str(err.value)
    assert "root=" in text and str(missing) in text and "download=true" in text
    # the folder is there but a batch is not: torchvision's own error, made specific
    root = write_cifar10(tmp_path / "partial")
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="cifar-10-batches-py"):
        load_dataset(f"cifar10:root={root}")
    # a batch that is not a pickle
    root = write_cifar10(tmp_path / "broken")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(f"cifar10:root={root}")


def test_imagefolder_resizes_normalises_and_maps_classes(tmp_path):
    root = write_imagefolder(tmp_path, classes=("cat", "dog", "fox"), per_class=4, side=20)
    data = load_dataset(f"imagefolder:root={root},size=16")
    assert data.x_train.shape == (12, 3, 16, 16) and data.x_test.shape == (6, 3, 16, 16)
    assert data.num_classes == 3
    np.testing.assert_array_equal(np.bincount(data.y_train), [4, 4, 4])
    np.testing.assert_array_equal(data.y_test, [0, 0, 1, 1, 2, 2])
    # the class's bright channel survives resize and normalisation (fox: channel 2, dog: 1)
    assert (
        data.x_train[data.y_train == 2][:, 2].mean() > data.x_train[data.y_train == 2][:, 0].mean()
    )
    assert data.x_test[data.y_test == 1][:, 1].mean() > data.x_test[data.y_test == 1][:, 2].mean()


def test_imagefolder_test_split_is_mapped_by_class_name(tmp_path):
    root = write_imagefolder(tmp_path, classes=("a", "b", "c"), per_class=2, side=8)
    # val/ without class "a": its folder indices shift, the labels must not
    for f in (root / "val" / "a").iterdir():
        f.unlink()
    (root / "val" / "a").rmdir()
    (root / "val").rename(root / "test")
    data = load_dataset(f"imagefolder:root={root},size=8")
    np.testing.assert_array_equal(data.y_test, [1, 2])


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(f"imagefolder:root={tmp_path / 'none'}")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="train/ and val/"):
        load_dataset(f"imagefolder:root={tmp_path / 'flat'}")
    root = write_imagefolder(tmp_path / "extra", classes=("a", "b"), per_class=2, side=8)
    (root / "val" / "zebra").mkdir()
    write_imagefolder(tmp_path / "z", classes=("zebra",), per_class=2, side=8)
    (tmp_path / "z" / "val" / "zebra" / "0.png").rename(root / "val" / "zebra" / "0.png")
    with pytest.raises(DatasetError, match="zebra"):
        load_dataset(f"imagefolder:root={root},size=8")


def test_missing_torchvision_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name == "torchvision" or name.startswith("torchvision."):
            raise ImportError("No module named 'torchvision'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(SpecError, match=r"\.\[vision\]"):
        vd.import_torchvision()
