"""Write a synthetic run store as ``kdtheory run`` lays it out (a teacher file and one file per
cell), one cell at a time, so that stores of any size can be made in bounded memory.

Used by ``benchmarks/large_store.py`` (CIFAR-100-like shapes, several GB) and by the tests of
lazily opened stores. The logits carry a simple planted structure (students approach the teacher
as the fraction grows, KD students agree with its wrong-class ranking more than label-trained
ones, every student fits its own subset) so that every built-in hypothesis runs on the store;
:mod:`kdtheory.testing.synthetic` is the generator with known answers for calibration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from kdtheory import __version__
from kdtheory.store import runs as st
from kdtheory.store.convergence import loss_drop
from kdtheory.store.schema import SCHEMA, TEACHER_KIND
from kdtheory.testing.synthetic import METHODS

__all__ = ["CellStoreShape", "write_synthetic_cells"]


@dataclass(frozen=True)
class CellStoreShape:
    """The sizes of one synthetic experiment.

    Attributes
    ----------
    n_train, n_test, n_classes : int
        Samples of the training and test sets, and classes.
    fractions : tuple of float
        Training-set fractions (nested subsets per seed).
    n_seeds : int
        Seeds per fraction.
    methods : tuple of str
        Arms, from :data:`kdtheory.testing.synthetic.METHODS`.
    n_feature_sample, n_features : int
        Training samples whose penultimate features are stored, and the feature width.
    log_points : int
        Points of each cell's loss history.
    """

    n_train: int = 50_000
    n_test: int = 10_000
    n_classes: int = 100
    fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    n_seeds: int = 3
    methods: tuple[str, ...] = ("label", "kd-T4", "ls", "kd-shuffled-T4")
    n_feature_sample: int = 1000
    n_features: int = 64
    log_points: int = 20

    @property
    def cells(self) -> int:
        """Number of cells (students) of the experiment."""
        return len(self.methods) * len(self.fractions) * self.n_seeds


def _attrs(experiment: str, shape: CellStoreShape, seed: int) -> dict[str, object]:
    recipe = {"generator": "kdtheory.testing.cell_store", "seed": seed} | asdict(shape)
    return {
        "schema": SCHEMA,
        "experiment": experiment,
        "dataset": f"synthetic:n={shape.n_train + shape.n_test},classes={shape.n_classes}",
        "teacher": "synthetic-teacher",
        "student": "synthetic-student",
        "recipe": json.dumps(recipe, sort_keys=True),
        "kdtheory_version": __version__,
        "created": st.now_iso(),
    }


def _wrong_shuffled(z: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``z`` with each row's wrong-class entries permuted (the true class kept in place)."""
    n, k = z.shape
    rows = np.arange(n)[:, None]
    wrong = np.arange(k)[None, :] != labels[:, None]
    shuffled = np.argsort(np.where(wrong, rng.random((n, k)), -1.0), axis=1)[:, 1:]
    out = z.copy()
    out[rows, np.sort(shuffled, axis=1)] = z[rows, shuffled]
    return out


def _student_logits(
    teacher: np.ndarray,
    labels: np.ndarray,
    objective: str,
    quality: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A student's logits: partly the teacher's (more for KD; with the wrong classes shuffled
    for shuffled KD), partly its own evidence for the label, and noise that shrinks as
    ``quality`` (growing with the fraction) rises."""
    align = 0.8 if objective in ("kd", "kd-shuffled") else 0.3
    if objective == "kd-shuffled":
        teacher = _wrong_shuffled(teacher, labels, rng)
    z = align * teacher + rng.standard_normal(teacher.shape) * (2.0 - quality)
    z[np.arange(labels.size), labels] += 3.0 * quality * (1 - align)
    return z.astype(np.float32)


def write_synthetic_cells(
    root: str | Path, experiment: str, shape: CellStoreShape, seed: int = 0
) -> Path:
    """Write one synthetic experiment into the store ``root``, a cell file at a time.

    Parameters
    ----------
    root : str or Path
        The store folder (created if needed).
    experiment : str
        The experiment id (its folder name).
    shape : CellStoreShape
        Its sizes.
    seed : int, default 0
        Seed of every random draw: the same arguments write the same values.

    Returns
    -------
    Path
        The experiment folder.
    """
    rng = np.random.default_rng(seed)
    k = shape.n_classes
    y_train = rng.permutation(np.arange(shape.n_train) % k).astype(np.int64)
    y_test = rng.permutation(np.arange(shape.n_test) % k).astype(np.int64)

    def teacher_logits(labels: np.ndarray) -> np.ndarray:
        z = rng.standard_normal((labels.size, k)).astype(np.float32)
        z[np.arange(labels.size), labels] += 4.0
        return z

    t_train, t_test = teacher_logits(y_train), teacher_logits(y_test)
    rows = np.sort(rng.choice(shape.n_train, shape.n_feature_sample, replace=False))
    centres = rng.standard_normal((k, shape.n_features)).astype(np.float32)
    attrs = _attrs(experiment, shape, seed)
    folder = st.ensure_experiment(root, experiment, json.loads(str(attrs["recipe"])))
    teacher = xr.Dataset(
        {
            "teacher_train_logits": (("train_sample", "class"), t_train),
            "teacher_test_logits": (("test_sample", "class"), t_test),
            "train_labels": (("train_sample",), y_train),
            "test_labels": (("test_sample",), y_test),
            "teacher_features": (
                ("feature_sample", "teacher_feature"),
                centres[y_train[rows]] + rng.standard_normal((rows.size, shape.n_features)),
            ),
        },
        coords={
            "train_sample": np.arange(shape.n_train),
            "test_sample": np.arange(shape.n_test),
            "class": np.arange(k),
            "feature_sample": rows,
        },
        attrs=attrs
        | {
            "kind": TEACHER_KIND,
            "teacher_test_accuracy": float(np.mean(t_test.argmax(1) == y_test)),
        },
    )
    st.write_dataset(teacher, folder / st.TEACHER_FILE)
    orders = [rng.permutation(shape.n_train) for _ in range(shape.n_seeds)]
    progress = np.arange(1, shape.log_points + 1) / shape.log_points
    for m, method in enumerate(shape.methods):
        info = METHODS[method]
        for f, fraction in enumerate(shape.fractions):
            n_in = max(1, round(fraction * shape.n_train))
            for s in range(shape.n_seeds):
                cell_rng = np.random.default_rng([seed, m, f, s])
                in_train = np.zeros(shape.n_train, bool)
                in_train[orders[s][:n_in]] = True
                quality = 0.3 + 0.6 * fraction**0.3
                objective = str(info["objective"])

                def student(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
                    return _student_logits(z, labels, objective, quality, cell_rng)  # noqa: B023

                train = student(t_train, y_train)
                train[in_train, y_train[in_train]] += 10.0  # every student fits its own subset
                feats = centres[y_train[rows]] * quality + cell_rng.standard_normal(
                    (rows.size, shape.n_features)
                ).astype(np.float32)
                loss = (0.01 + np.exp(-6 * progress)).astype(np.float32)
                cell = st.cell_dataset(
                    test_logits=student(t_test, y_test),
                    train_logits=train,
                    in_train=in_train,
                    features=feats,
                    classifier_weight=centres,
                    classifier_bias=np.zeros(k, np.float32),
                    loss_history=loss,
                    feature_sample=rows,
                    attrs=attrs
                    | {
                        "method": method,
                        "objective": info["objective"],
                        "temperature": float(info["temperature"]),
                        "alpha": float(info["alpha"]),
                        "smoothing": float(info["smoothing"]),
                        "fraction": float(fraction),
                        "n_train": int(n_in),
                        "seed": int(s),
                        "effective_smoothing": 0.1 if info["objective"] == "ls" else float("nan"),
                        "train_steps": 1000,
                        "train_epochs": float(1000 * 128 / n_in),
                        "final_train_loss": float(loss[-1]),
                        "train_accuracy": float(
                            np.mean(train[in_train].argmax(1) == y_train[in_train])
                        ),
                        "loss_drop_last20": loss_drop(loss),
                        "diverged": 0,
                        "converged": 1,
                    },
                )
                name = st.cell_filename(method, float(fraction), int(s))
                st.write_dataset(cell, folder / st.CELLS_DIR / name)
    return folder
