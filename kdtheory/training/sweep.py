"""Sweeps: train a teacher once per experiment, then every method × fraction × seed cell.

The sweep is resumable: each finished cell is one file written atomically, and a re-run skips the
cells whose files exist. An interrupted run loses at most the group of cells in flight (one cell
with ``batch_cells=1``).
"""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr

import kdtheory
from kdtheory.errors import SpecError, StoreError
from kdtheory.plugin.manager import get_registries
from kdtheory.plugin.registry import did_you_mean
from kdtheory.plugin.specs import LoadedDataset, parse_spec, resolve_options
from kdtheory.store import runs as st
from kdtheory.store.convergence import converged, loss_drop
from kdtheory.store.schema import SCHEMA, TEACHER_KIND
from kdtheory.store.titles import TITLE_ATTR, experiment_title
from kdtheory.training.augment import check_augment
from kdtheory.training.dataset_cache import DatasetCache, open_dataset_cache
from kdtheory.training.dataset_cache import using as using_dataset_cache
from kdtheory.training.engine import (
    PRECISIONS,
    CellJob,
    CellResult,
    TrainConfig,
    TrainingData,
    bytes_per_cell,
    evaluate_single,
    init_model,
    resolve_device,
    train_group,
)
from kdtheory.training.methods import parse_method, parse_methods
from kdtheory.training.subsets import feature_sample, subset, subset_size, teacher_subset
from kdtheory.training.teacher_cache import (
    TeacherCache,
    TeacherKey,
    teacher_key,
)

DEFAULT_METHODS = ("label", "kd:T=4", "ls:eps=matched", "kd-shuffled:T=4")
DEFAULT_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass
class ExperimentConfig:
    """One experiment of a sweep: what to train (the recipe) and the sweep axes.

    The recipe (everything but ``fractions``, ``seeds`` and ``methods``) identifies the experiment:
    a store refuses a second recipe under the same experiment id. The axes may grow between runs.
    """

    dataset: str = "mnist1d"
    teacher: str = "mlp-wide"
    student: str = "mlp"
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = DEFAULT_METHODS
    steps: int = 1000
    epochs: float | None = None
    min_steps: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: float = 0.0
    teacher_steps: int = 3000
    teacher_epochs: float | None = None
    teacher_lr: float = 1e-3
    teacher_batch_size: int | None = None
    teacher_seed: int = 0
    teacher_checkpoint: str | None = None
    teacher_fraction: float = 1.0
    feature_samples: int = 512
    log_points: int = 50
    name: str | None = None
    title: str | None = None
    augment: str = "none"
    precision: str = "fp32"

    @property
    def experiment_id(self) -> str:
        """``--name``, else ``dataset--teacher--student`` (``--teacher<rho>`` added when the
        teacher trains on part of the data, so experiments of two shares never collide)."""
        default = f"{self.dataset}--{self.teacher}--{self.student}"
        if self.teacher_fraction != 1:
            default += f"--teacher{self.teacher_fraction:g}"
        return st.safe_name(self.name or default)

    def teacher_indices(self, labels: np.ndarray) -> np.ndarray | None:
        """The teacher's training indices when it trains on a share ``teacher_fraction < 1`` of
        the data (:func:`~kdtheory.training.subsets.teacher_subset`); None for all of it."""
        if self.teacher_fraction == 1:
            return None
        return teacher_subset(labels, self.teacher_fraction, self.teacher_seed)

    @property
    def budget(self) -> str:
        """``"epochs"`` (each cell's steps follow its subset size) or ``"steps"`` (fixed)."""
        return "steps" if self.epochs is None else "epochs"

    def cell_steps(self, n_train: int) -> int:
        """A student's budget: ``max(min_steps, ceil(epochs * n_train / batch_size))`` steps,
        or ``steps`` with a fixed budget."""
        if self.epochs is None:
            return self.steps
        return max(self.min_steps, math.ceil(self.epochs * n_train / self.batch_size))

    @property
    def teacher_batch(self) -> int:
        """The teacher's minibatch size (``teacher_batch_size``, else the students')."""
        return self.teacher_batch_size or self.batch_size

    def teacher_budget(self, n_train: int) -> int:
        """The teacher's steps: ``ceil(teacher_epochs * n_train / teacher_batch)`` or
        ``teacher_steps``."""
        if self.teacher_epochs is None:
            return self.teacher_steps
        return max(1, math.ceil(self.teacher_epochs * n_train / self.teacher_batch))

    def train_config(self, teacher: bool = False) -> TrainConfig:
        """The engine's settings for this experiment's students, or for its teacher.

        Students with epoch budgets get theirs per cell (:meth:`cell_steps`); ``steps`` is the
        group-wide budget of the fixed-step path (the teacher's is :meth:`teacher_budget`).
        """
        return TrainConfig(
            steps=self.steps,
            batch_size=self.teacher_batch if teacher else self.batch_size,
            lr=self.teacher_lr if teacher else self.lr,
            weight_decay=self.weight_decay,
            log_points=self.log_points,
            warmup=self.warmup,
            augment=self.augment,
            precision=self.precision,
        )

    def recipe(self) -> dict[str, Any]:
        """The training recipe: every setting that changes what a cell computes.

        It records which budget was used (``budget``) and only that budget's settings, so a
        store never mixes cells trained by epochs with cells trained by a fixed step count.
        """
        d = asdict(self)
        for axis in ("fractions", "seeds", "methods", "name", "title"):
            d.pop(axis)
        d["budget"] = self.budget
        if self.epochs is None:
            d.pop("epochs")
            d.pop("min_steps")
        else:
            d.pop("steps")
        if self.teacher_epochs is None:
            d.pop("teacher_epochs")
        else:
            d.pop("teacher_steps")
        if self.teacher_batch_size is None:
            d.pop("teacher_batch_size")
        _drop_training_defaults(d)
        if self.augment != "none":
            d["teacher_targets"] = TEACHER_TARGETS_AUGMENTED
        if self.teacher_fraction == 1:  # today's recipe, so existing stores stay valid
            d.pop("teacher_fraction")
        return d

    def validate(self) -> None:
        if not self.fractions:
            raise SpecError("--fractions: give at least one fraction in (0, 1]")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise SpecError(f"--fractions: {f} is not in (0, 1]")
        if not self.seeds:
            raise SpecError("--seeds: give at least one seed")
        if not (math.isfinite(self.teacher_fraction) and 0 < self.teacher_fraction <= 1):
            raise SpecError(
                f"--teacher-fraction: {self.teacher_fraction} is not in (0, 1]; give the share "
                "of the training set the teacher trains on, e.g. 0.25 or 1"
            )
        if self.teacher_batch_size is not None and self.teacher_batch_size < 1:
            raise SpecError("--teacher-batch-size: must be >= 1")
        for key in ("steps", "batch_size", "teacher_steps", "feature_samples", "log_points"):
            if getattr(self, key) < 1:
                raise SpecError(f"--{key.replace('_', '-')}: must be >= 1")
        if self.min_steps < 0:
            raise SpecError("--min-steps: must be >= 0")
        for key in ("epochs", "teacher_epochs"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise SpecError(f"--{key.replace('_', '-')}: must be a number > 0, got {value}")
        if not (math.isfinite(self.warmup) and 0 <= self.warmup < 1):
            raise SpecError(
                f"--warmup: must be in [0, 1) (a share of each budget), got {self.warmup}"
            )
        for key in ("lr", "teacher_lr"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise SpecError(
                    f"--{key.replace('_', '-')}: {value!r} is not a learning rate; give a finite "
                    "number > 0, e.g. 0.001"
                )
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise SpecError(
                f"--weight-decay: {self.weight_decay!r} is not a weight decay; give a finite "
                "number >= 0, e.g. 0 or 0.01"
            )
        check_augment(self.augment)
        if self.precision not in PRECISIONS:
            raise SpecError(
                f"--precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}"
            )
        if self.name is not None:
            st.check_experiment_id(self.name)
        if self.title is not None and not self.title.strip():
            raise SpecError("--title: give a non-empty display label, e.g. 'MNIST · CNN 32→8'")


#: what the recipe says of the KD targets when training batches are augmented
TEACHER_TARGETS_AUGMENTED = (
    "teacher logits on each augmented batch (label and ls targets: from the stored teacher "
    "logits on un-augmented inputs)"
)


def _drop_training_defaults(d: dict[str, Any]) -> dict[str, Any]:
    """Drop ``augment`` and ``precision`` where they hold their defaults (``none``, ``fp32``),
    so recipes and teacher cache keys of runs without them stay what they were before these
    options existed."""
    if d.get("augment") == "none":
        d.pop("augment")
    if d.get("precision") == "fp32":
        d.pop("precision")
    return d


def parse_fractions(text: str) -> tuple[float, ...]:
    """Parse ``"0.01,0.1,1"`` into sorted unique fractions, with a clear error."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise SpecError(f"--fractions: {part!r} is not a number") from None
        if not 0 < value <= 1:
            raise SpecError(f"--fractions: {value} is not in (0, 1]")
        out.append(value)
    if not out:
        raise SpecError("--fractions: give a comma-separated list such as 0.01,0.1,1")
    return tuple(sorted(set(out)))


#: Students of the reference experiments train by epochs over their own subset (at least
#: ``min_steps``), with warm-up and cosine decay, weight decay and large batches; teachers are
#: the strongest of their family a few CPU minutes allow (a 1-D CNN for mnist1d). Fixed from
#: the convergence criteria of :mod:`kdtheory.store.convergence` on label and KD students at 10% and
#: 100% of the data, before any hypothesis was tested on the store.
_MNIST1D_MLP = ExperimentConfig(
    dataset="mnist1d:num_samples=4000",
    teacher="cnn:channels=64,width=128",
    student="mlp:width=128",
    fractions=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    seeds=(0, 1, 2),
    epochs=150,
    min_steps=600,
    batch_size=256,
    lr=3e-3,
    weight_decay=0.05,
    warmup=0.05,
    teacher_epochs=60,
    teacher_batch_size=64,
    teacher_lr=2e-3,
    feature_samples=256,
)
_MNIST5K_CNN = ExperimentConfig(
    dataset="mnist-5k",
    teacher="cnn:channels=32,width=128",
    student="cnn:channels=8",
    fractions=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    seeds=(0, 1, 2),
    epochs=80,
    min_steps=1000,
    batch_size=128,
    lr=3e-3,
    weight_decay=0.05,
    warmup=0.05,
    teacher_epochs=30,
    teacher_batch_size=32,
    feature_samples=256,
)

#: The paper's CIFAR-100 setting, sized for one GPU (not run in CI): ResNet-56 teacher, ResNet-20
#: students, crop-flip augmentation with KD targets on the augmented batch, bf16 autocast. CIFAR-100
#: must be under ``~/data`` (see the README for fetching it). Cost (README, "Vision"): 915,780
#: student cell-steps of batch 128 (76,315 per method and seed, from ``cell_steps``), half of
#: them with a teacher forward, and 78,125 teacher steps: about 5.1e16 FLOPs by torch's
#: FlopCounterMode; a tiny measured run gave 1.9 cell-steps/s on one CPU thread (bf16), so this
#: preset is for a GPU.
PAPER_CIFAR100 = ExperimentConfig(
    dataset="cifar100:root=~/data",
    teacher="resnet:depth=56,width=16",
    student="resnet:depth=20,width=16",
    fractions=DEFAULT_FRACTIONS,
    seeds=(0, 1, 2),
    methods=DEFAULT_METHODS,
    epochs=100,
    min_steps=2000,
    batch_size=128,
    lr=2e-3,
    weight_decay=0.05,
    warmup=0.05,
    teacher_epochs=200,
    teacher_lr=2e-3,
    feature_samples=512,
    augment="crop-flip",
    precision="bf16",
)

PRESETS: dict[str, list[ExperimentConfig]] = {
    "smoke": [
        ExperimentConfig(
            dataset="mnist1d:num_samples=1200",
            teacher="cnn:channels=64,width=128",
            student="mlp:width=64",
            fractions=(0.05, 0.2, 1.0),
            seeds=(0, 1),
            epochs=100,
            min_steps=600,
            batch_size=64,
            lr=3e-3,
            weight_decay=0.05,
            teacher_epochs=60,
            teacher_lr=2e-3,
            feature_samples=96,
            warmup=0.05,
        )
    ],
    "reference": [
        _MNIST1D_MLP,
        _MNIST5K_CNN,
        replace(
            _MNIST5K_CNN,
            teacher="vit",
            student="vit:dim=32,heads=2",
            epochs=80,
            min_steps=600,
            lr=2e-3,
            teacher_epochs=40,
        ),
    ],
    "paper-cifar100": [PAPER_CIFAR100],
    "bench": [
        ExperimentConfig(
            dataset="mnist1d",
            teacher="mlp-wide",
            student="mlp:width=128,depth=2",
            fractions=DEFAULT_FRACTIONS,
            seeds=(0, 1, 2, 3, 4),
        )
    ],
}


# --------------------------------------------------------------------------- building blocks
def load_dataset(spec: str, cache: DatasetCache | None = None) -> LoadedDataset:
    """Load a dataset from a spec string such as ``mnist1d:num_samples=10000``.

    Parameters
    ----------
    spec : str
    cache : DatasetCache, optional
        Where a generated dataset (MNIST-1D) is read from, or stored after generating it
        (:mod:`kdtheory.training.dataset_cache`); None generates it.
    """
    name, raw = parse_spec(spec)
    ds_spec = get_registries().datasets.get(name)
    options = resolve_options("dataset", name, ds_spec.options, raw)
    with using_dataset_cache(cache):
        return ds_spec.load(**options)


def model_builder(spec: str, input_shape: tuple[int, ...], num_classes: int) -> Callable[[], Any]:
    """A zero-argument function building the architecture named by ``spec``."""
    name, raw = parse_spec(spec)
    arch = get_registries().architectures.get(name)
    options = resolve_options("architecture", name, arch.options, raw)
    return lambda: arch.build(input_shape, num_classes, **options)


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


@dataclass
class SweepReport:
    """What one experiment's sweep did.

    ``teacher`` says where the teacher came from: ``"trained"``, ``"cache"`` (the teacher
    cache), ``"checkpoint"`` (``--teacher-checkpoint``), ``"store weights"`` (the store's
    ``teacher.pt``) or ``"store"`` (its outputs were already stored). ``dataset`` says where
    this process's generated dataset (MNIST-1D) came from when a dataset cache was in use:
    ``"cache"`` or ``"generated"``. It is None for datasets that are read rather than generated,
    without a cache, and when the arrays were already in memory (an earlier experiment of the
    same process loaded them). On a cluster it describes this process's load only; each worker
    loads through the same cache option on its own.
    """

    experiment: str
    teacher: str = "store"
    dataset: Literal["cache", "generated"] | None = None
    trained: int = 0
    skipped: int = 0
    seconds: float = 0.0
    teacher_test_accuracy: float = float("nan")
    diverged_kept: int = 0
    diverged_now: int = 0
    found_in_tasks: int = 0
    cell_accuracy: dict[tuple[str, float, int], float] = field(default_factory=dict)


class SweepProgress:
    """Callbacks a front end implements to show progress (the CLI uses rich)."""

    def phase(self, text: str) -> None: ...

    def start_group(self, n_cells: int, steps: int, description: str) -> None: ...

    def step(self, done: int, total: int) -> None: ...

    def end_group(self, results: list[tuple[str, float]]) -> None: ...


# --------------------------------------------------------------------------- the sweep
def _teacher(
    cfg: ExperimentConfig,
    folder: Path,
    data: LoadedDataset,
    device: torch.device,
    progress: SweepProgress,
    cache: TeacherCache | None,
) -> tuple[xr.Dataset, str]:
    """Load the experiment's teacher outputs, or get the teacher and write them.

    The teacher's weights come from ``--teacher-checkpoint``, else from the store's own
    ``teacher.pt`` (a resumed run), else from the teacher cache, else from training (which then
    fills the cache). Whichever the source, the outputs are computed the same way from the
    weights, so a cached teacher gives the same store numbers as one trained now.

    Returns
    -------
    tuple of (xarray.Dataset, str)
        The stored teacher outputs and where the teacher came from: ``"store"`` (its outputs
        were already there), ``"checkpoint"``, ``"store weights"``, ``"cache"`` or
        ``"trained"``.
    """
    teacher_nc = folder / st.TEACHER_FILE
    if teacher_nc.exists():
        return st.read_dataset(teacher_nc), "store"
    build = model_builder(cfg.teacher, data.input_shape, data.num_classes)
    feat_idx = feature_sample(
        data.y_train,
        min(cfg.fractions),
        list(cfg.seeds),
        cfg.feature_samples,
        cfg.teacher_seed,
        cfg.teacher_indices(data.y_train),
    )
    weights = folder / st.TEACHER_WEIGHTS
    source = cfg.teacher_checkpoint or (str(weights) if weights.exists() else None)
    model = init_model(build, cfg.teacher_seed)
    teacher_training: dict[str, Any] = {}
    key_attrs: dict[str, str] = {}
    if source is not None:
        progress.phase(f"{cfg.experiment_id}: loading teacher weights from {source}")
        _load_checkpoint(cfg, source, model)
        origin = "checkpoint" if cfg.teacher_checkpoint else "store weights"
    else:
        key = _teacher_key(cfg, data, model.state_dict(), device)
        key_attrs = {"teacher_cache_key": key.digest}
        cached = cache.load(key, model.state_dict()) if cache is not None else None
        if cached is not None:
            progress.phase(
                f"{cfg.experiment_id}: teacher {cfg.teacher} from the cache: {cached.path}"
            )
            state, teacher_training, origin = cached.state, cached.training, "cache"
        else:
            state, teacher_training = _train_teacher(cfg, data, build, device, progress)
            origin = "trained"
            if cache is not None:
                cache.save(key, state, teacher_training)
        st.write_atomic(weights, lambda tmp: torch.save(state, tmp))
        model.load_state_dict(state)
    model.to(device)
    x_train = torch.as_tensor(data.x_train, device=device)
    train_logits, _ = evaluate_single(model, x_train)
    test_logits, _ = evaluate_single(model, torch.as_tensor(data.x_test, device=device))
    _, feats = evaluate_single(model, x_train[torch.as_tensor(feat_idx)], with_features=True)
    if origin == "trained":
        progress.end_group([("teacher", _accuracy(test_logits, data.y_test))])
    ds = xr.Dataset(
        {
            "teacher_train_logits": (("train_sample", "class"), train_logits.astype(np.float32)),
            "teacher_test_logits": (("test_sample", "class"), test_logits.astype(np.float32)),
            "train_labels": (("train_sample",), data.y_train.astype(np.int64)),
            "test_labels": (("test_sample",), data.y_test.astype(np.int64)),
            "teacher_features": (("feature_sample", "teacher_feature"), feats.astype(np.float32)),
        },
        coords={
            "train_sample": np.arange(len(data.y_train)),
            "test_sample": np.arange(len(data.y_test)),
            "class": np.arange(data.num_classes),
            "feature_sample": feat_idx.astype(np.int64),
        },
        attrs=_experiment_attrs(cfg)
        | {
            "kind": TEACHER_KIND,
            "teacher_train_accuracy": _accuracy(train_logits, data.y_train),
            "teacher_test_accuracy": _accuracy(test_logits, data.y_test),
            "teacher_weights": str(source or weights.name),
        }
        | key_attrs
        | teacher_training,
    )
    st.write_dataset(ds, teacher_nc)
    # read back what was stored: students of a first run and of a resumed run then learn from
    # the same (int16-packed) teacher logits, so a resume equals an uninterrupted run
    return st.read_dataset(teacher_nc), origin


def _load_checkpoint(cfg: ExperimentConfig, source: str, model: torch.nn.Module) -> None:
    """Load the state_dict in ``source`` into ``model`` safely (``weights_only=True``).

    Raises
    ------
    StoreError
        The file is not a state_dict of tensors, or does not fit the teacher's architecture.
    """
    what = f"--teacher-checkpoint {source}" if cfg.teacher_checkpoint else str(source)
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except pickle.UnpicklingError:  # torch's text would suggest weights_only=False: unsafe
        raise StoreError(
            f"{what}: cannot load teacher weights: not a state_dict of tensors saved by "
            "torch.save (the file is damaged, not a PyTorch file, or holds other pickled "
            "Python objects, which kdtheory never loads: that could run code). Save the "
            "teacher with torch.save(model.state_dict(), path)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - a bad file fails in many ways; all are input
        detail = " ".join(" ".join(str(exc).split()).split(" ")[:40]) or repr(exc)
        raise StoreError(
            f"{what}: cannot load teacher weights for architecture {cfg.teacher!r} "
            f"({type(exc).__name__}: {detail}). Give a state_dict saved with "
            "torch.save(model.state_dict(), path) from the same architecture and options."
        ) from None


def _train_teacher(
    cfg: ExperimentConfig,
    data: LoadedDataset,
    build: Callable[[], Any],
    device: torch.device,
    progress: SweepProgress,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train the teacher on the full training set: its state_dict and training record."""
    progress.phase(f"{cfg.experiment_id}: training teacher {cfg.teacher}")
    tdata = TrainingData.from_numpy(
        data.x_train, data.y_train, data.x_test, None, data.num_classes, device
    )
    indices = cfg.teacher_indices(data.y_train)
    if indices is None:
        indices = np.arange(len(data.y_train))
    job = CellJob("teacher", parse_method("label"), indices, cfg.teacher_seed)
    budget = cfg.teacher_budget(len(indices))
    tconf = replace(cfg.train_config(teacher=True), steps=budget)
    progress.start_group(1, budget, "teacher")
    # evaluated from its weights by the caller, the same way as a cached teacher
    (res,) = train_group(
        [job], build, tdata, tconf, None, progress.step, keep_state=True, evaluate=False
    )
    finite = res.state is not None and all(
        torch.isfinite(v).all() for v in res.state.values() if v.is_floating_point()
    )
    if res.diverged or not finite:
        raise StoreError(
            f"{cfg.experiment_id}: the teacher's training loss became non-finite after "
            f"{res.steps} steps (--teacher-lr {cfg.teacher_lr}); nothing was written for "
            "it. Lower --teacher-lr and re-run."
        )
    assert res.state is not None  # keep_state
    record = {
        "teacher_steps_trained": int(res.steps),
        "teacher_epochs_trained": float(res.steps * cfg.teacher_batch / len(indices)),
        "teacher_final_train_loss": float(res.loss_history[-1]),
        "teacher_loss_drop_last20": loss_drop(res.loss_history),
    }
    return res.state, record


def _teacher_key(
    cfg: ExperimentConfig,
    data: LoadedDataset,
    initial_state: dict[str, torch.Tensor],
    device: torch.device,
) -> TeacherKey:
    """The teacher cache key of ``cfg``'s teacher on ``data``."""
    name, raw = parse_spec(cfg.teacher)
    arch = get_registries().architectures.get(name)
    options = resolve_options("architecture", name, arch.options, raw)
    indices = cfg.teacher_indices(data.y_train)
    budget = cfg.teacher_budget(len(data.y_train) if indices is None else len(indices))
    recipe = _drop_training_defaults(asdict(replace(cfg.train_config(teacher=True), steps=budget)))
    recipe |= {"seed": cfg.teacher_seed, "objective": parse_method("label").label}
    return teacher_key(
        data.x_train,
        data.y_train,
        cfg.dataset,
        name,
        options,
        initial_state,
        recipe,
        device.type,
        teacher_fraction=cfg.teacher_fraction,
    )


def open_teacher_cache(teacher_cache: bool | str | Path) -> TeacherCache | None:
    """The teacher cache a sweep uses: ``True`` the user's, a folder (``~`` expanded) that one,
    ``False`` none."""
    return TeacherCache.from_option(teacher_cache)


def _experiment_attrs(cfg: ExperimentConfig) -> dict[str, Any]:
    attrs = {
        "schema": SCHEMA,
        "experiment": cfg.experiment_id,
        "dataset": cfg.dataset,
        "teacher": cfg.teacher,
        "student": cfg.student,
    }
    title = " ".join(cfg.title.split()) if cfg.title else None
    if cfg.teacher_fraction != 1:  # recorded only off the default: existing files stay as they are
        attrs["teacher_fraction"] = float(cfg.teacher_fraction)
        title = title or f"{experiment_title(attrs)} · teacher on {cfg.teacher_fraction:g}"
    return attrs | {
        "recipe": json.dumps(cfg.recipe(), sort_keys=True),
        **({TITLE_ATTR: title} if title else {}),
        "kdtheory_version": kdtheory.__version__,
        "created": st.now_iso(),
        "torch_version": torch.__version__,
    }


def _cell_dataset(
    cfg: ExperimentConfig,
    objective: Any,
    fraction: float,
    seed: int,
    in_train: np.ndarray,
    res: CellResult,
    teacher: xr.Dataset,
    test_accuracy: float,
    train_labels: np.ndarray,
) -> xr.Dataset:
    n_train = int(in_train.sum())
    train_acc = (
        float("nan")
        if res.diverged
        else _accuracy(res.train_logits[in_train], train_labels[in_train])
    )
    drop = loss_drop(res.loss_history)
    finite = np.isfinite(res.loss_history)
    final = float(res.loss_history[finite][-1]) if finite.any() else float("nan")
    ok = converged(objective.objective == "label", train_acc, res.loss_history, res.diverged)
    return st.cell_dataset(
        test_logits=res.test_logits,
        train_logits=res.train_logits,
        in_train=in_train,
        features=res.features,
        classifier_weight=res.classifier_weight,
        classifier_bias=res.classifier_bias,
        loss_history=res.loss_history,
        feature_sample=teacher["feature_sample"].values,
        attrs=_experiment_attrs(cfg)
        | {
            "method": objective.label,
            "objective": objective.objective,
            "temperature": float(objective.temperature),
            "alpha": float(objective.alpha),
            "smoothing": float(objective.smoothing),
            "method_params": json.dumps(objective.params, sort_keys=True, default=str),
            "fraction": float(fraction),
            "n_train": n_train,
            "seed": int(seed),
            "test_accuracy": test_accuracy,
            "effective_smoothing": float(res.scalars.get("effective_smoothing", np.nan)),
            "train_steps": int(res.steps),
            "train_epochs": float(res.steps * cfg.batch_size / n_train),
            "final_train_loss": final,
            "train_accuracy": train_acc,
            "loss_drop_last20": drop,
            "diverged": int(res.diverged),
            "converged": int(ok),
        },
    )


def check_specs(cfg: ExperimentConfig) -> list[Any]:
    """Check every spec of ``cfg`` without loading data; return the parsed objectives.

    Raises
    ------
    SpecError, UnknownNameError
        On the first bad option, naming it and what is accepted.
    """
    cfg.validate()
    regs = get_registries()
    name, raw = parse_spec(cfg.dataset)
    dataset = regs.datasets.get(name)
    resolve_options("dataset", name, dataset.options, raw)
    for spec in (cfg.teacher, cfg.student):
        name, raw = parse_spec(spec)
        resolve_options("architecture", name, regs.architectures.get(name).options, raw)
    return parse_methods(cfg.methods)


def cells_per_group(
    batch_cells: int | str, cfg: ExperimentConfig, data: LoadedDataset, memory_budget: int
) -> int:
    """How many cells to train together: a number, or ``auto`` from the memory budget."""
    if batch_cells != "auto":
        n = int(batch_cells)
        if n < 1:
            raise SpecError("--batch-cells: must be >= 1 or 'auto'")
        return n
    build = model_builder(cfg.student, data.input_shape, data.num_classes)
    per_cell = bytes_per_cell(
        build(), data.input_shape, cfg.batch_size, len(data.y_train), data.num_classes
    )
    return max(1, int(memory_budget // per_cell))


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path,
    device: str = "auto",
    batch_cells: int | str = "auto",
    memory_budget: int = 2 * 1024**3,
    progress: SweepProgress | None = None,
    retrain_diverged: bool = False,
    teacher_cache: bool | str | Path = True,
    client: Any | None = None,
    dataset_cache: bool | str | Path = True,
) -> SweepReport:
    """Run (or resume) one experiment's sweep into the store at ``out``.

    Parameters
    ----------
    cfg : ExperimentConfig
    out : str or Path
        Run-store folder (created if needed).
    device : str
        ``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ...
    batch_cells : int or "auto"
        Cells trained together in one batched model; 1 is the sequential path.
    memory_budget : int
        Bytes a batched group may use when ``batch_cells="auto"``.
    progress : SweepProgress, optional
    retrain_diverged : bool
        Train again the cells stored as diverged (their loss became non-finite); otherwise they
        count as done, stay blank in the combined dataset and are reported as diverged.
    teacher_cache : bool, str or Path
        Where trained teachers are kept for reuse across sweeps and stores
        (:mod:`kdtheory.training.teacher_cache`): ``True`` the user's cache folder
        (``$KDTHEORY_CACHE/teachers``, ``$XDG_CACHE_HOME/kdtheory/teachers`` or
        ``~/.cache/kdtheory/teachers``), a folder, or ``False`` to neither read nor write one.
    client : distributed.Client, optional
        Run the teacher and the groups of cells as tasks of this Dask client's cluster
        (:mod:`kdtheory.training.distributed`); the store (``out``) and the teacher cache must
        be paths every worker can reach. None (the default) trains in this process.
    dataset_cache : bool, str or Path
        Where generated datasets (MNIST-1D) are kept so that they are generated once
        (:mod:`kdtheory.training.dataset_cache`): ``True`` the user's cache folder
        (``$KDTHEORY_CACHE/datasets``, ``$XDG_CACHE_HOME/kdtheory/datasets`` or
        ``~/.cache/kdtheory/datasets``), a folder, or ``False`` to neither read nor write one.
        On a cluster each worker loads through the same option (``True``: its own user's
        folder; a folder must be one the workers can reach).

    Returns
    -------
    SweepReport
    """
    progress = progress or SweepProgress()
    objectives = check_specs(cfg)
    if batch_cells != "auto" and int(batch_cells) < 1:
        raise SpecError("--batch-cells: must be >= 1 or 'auto'")
    t0 = time.perf_counter()
    # on a cluster each worker resolves ``device`` itself (``auto``: its own GPU, if any)
    dev = resolve_device(device) if client is None else torch.device("cpu")
    progress.phase(f"{cfg.experiment_id}: loading dataset {cfg.dataset}")
    datasets = open_dataset_cache(dataset_cache)
    data = load_dataset(cfg.dataset, datasets)
    check_augment(cfg.augment, data.input_shape)
    with st.experiment_lock(out, cfg.experiment_id, on_wait=progress.phase):
        new = not (st.experiment_dir(out, cfg.experiment_id) / st.EXPERIMENT_FILE).exists()
        try:
            report = _run_locked(
                cfg,
                objectives,
                out,
                data,
                dev,
                batch_cells,
                memory_budget,
                progress,
                retrain_diverged,
                t0,
                teacher_cache,
                client,
                device,
                dataset_cache,
            )
        except BaseException:
            if new:  # nothing of this experiment was written: the corrected command may start
                st.discard_if_empty(out, cfg.experiment_id)
            raise
    if datasets is not None and datasets.origins:
        report.dataset = datasets.origins[-1]
    return report


def _run_locked(
    cfg: ExperimentConfig,
    objectives: list[Any],
    out: str | Path,
    data: LoadedDataset,
    dev: torch.device,
    batch_cells: int | str,
    memory_budget: int,
    progress: SweepProgress,
    retrain_diverged: bool,
    t0: float,
    teacher_cache: bool | str | Path,
    client: Any | None,
    device: str,
    dataset_cache: bool | str | Path,
) -> SweepReport:
    """The sweep of :func:`run_experiment`, run while holding the experiment's lock."""
    folder = st.ensure_experiment(out, cfg.experiment_id, cfg.recipe())
    if client is None:
        cache = open_teacher_cache(teacher_cache)
        teacher, origin = _teacher(cfg, folder, data, dev, progress, cache)
    else:
        from kdtheory.training.distributed import remote_teacher

        teacher, origin = remote_teacher(
            client, cfg, out, device, teacher_cache, progress, dataset_cache
        )
    report = SweepReport(cfg.experiment_id, teacher=origin)
    report.teacher_test_accuracy = float(teacher.attrs.get("teacher_test_accuracy", np.nan))
    done_files = st.existing_cells(out, cfg.experiment_id)
    diverged = st.diverged_cells(out, cfg.experiment_id)
    report.diverged_kept = 0 if retrain_diverged else len(diverged)
    if retrain_diverged:
        done_files -= diverged
    todo: list[tuple[Any, float, int]] = []
    grid: list[tuple[Any, float, int]] = []
    for seed in cfg.seeds:
        for fraction in cfg.fractions:
            for obj in objectives:
                grid.append((obj, fraction, seed))
                if st.cell_filename(obj.label, fraction, seed) in done_files:
                    report.skipped += 1
                else:
                    todo.append((obj, fraction, seed))
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report
    # what this sweep asks for, so that `inspect` can name the cells an interrupted run left
    # out; recorded once the first cell is written (a run that writes nothing changes nothing)
    axes = {
        "methods": [o.label for o in objectives],
        "fractions": [float(f) for f in cfg.fractions],
        "seeds": [int(s) for s in cfg.seeds],
    }
    per_group = cells_per_group(batch_cells, cfg, data, memory_budget)

    recorded: list[bool] = []

    def record_axes(outcome: CellOutcome) -> None:
        if not recorded and outcome.written:
            st.record_axes(out, cfg.experiment_id, axes)
            recorded.append(True)

    if client is not None:
        from kdtheory.training.distributed import run_groups

        run_groups(
            client,
            cfg,
            out,
            data,
            grid,
            todo,
            per_group,
            batch_cells == "auto",
            device,
            report,
            progress,
            record_axes,
            replace=diverged if retrain_diverged else set(),
            dataset_cache=dataset_cache,
        )
        report.seconds = time.perf_counter() - t0
        return report
    tdata = student_training_data(data, teacher, dev, cfg, folder)
    build = model_builder(cfg.student, data.input_shape, data.num_classes)
    for g in range(0, len(todo), per_group):
        group = todo[g : g + per_group]
        longest = max(cfg.cell_steps(subset_size(f, len(data.y_train))) for _, f, _ in group)
        o, f, s = group[0]
        desc = f"{o.label} f={f:g} s={s}" if len(group) == 1 else f"{len(group)} cells"
        progress.start_group(len(group), longest, f"{cfg.experiment_id}: {desc}")
        outcomes = train_and_write_group(
            cfg, out, group, data, teacher, tdata, build, progress.step, False, record_axes
        )
        shown = []
        for outcome in outcomes:
            report.trained += 1
            report.diverged_now += int(outcome.diverged)
            report.cell_accuracy[outcome.cell] = outcome.test_accuracy
            shown.append((outcome.name, outcome.test_accuracy))
        progress.end_group(shown)
    report.seconds = time.perf_counter() - t0
    return report


def student_training_data(
    data: LoadedDataset,
    teacher: xr.Dataset,
    device: torch.device,
    cfg: ExperimentConfig | None = None,
    folder: Path | None = None,
) -> TrainingData:
    """The students' training data on ``device``: the dataset and the stored teacher logits.

    With ``cfg.augment`` it also holds the teacher model, loaded from ``--teacher-checkpoint``
    or the experiment ``folder``'s ``teacher.pt``, to compute targets on augmented batches.
    """
    model = None
    if cfg is not None and cfg.augment != "none":
        if folder is None:
            raise ValueError("augmentation needs the experiment folder holding teacher.pt")
        model = init_model(
            model_builder(cfg.teacher, data.input_shape, data.num_classes), cfg.teacher_seed
        )
        _load_checkpoint(cfg, cfg.teacher_checkpoint or str(folder / st.TEACHER_WEIGHTS), model)
    return TrainingData.from_numpy(
        data.x_train,
        data.y_train,
        data.x_test,
        teacher["teacher_train_logits"].values,
        data.num_classes,
        device,
        teacher=model,
    )


@dataclass(frozen=True)
class CellOutcome:
    """What became of one cell of a group: trained and written, or found already written.

    Attributes
    ----------
    cell : tuple of (str, float, int)
        Method label, fraction and seed.
    test_accuracy : float
        NaN for a diverged cell or one written by another process meanwhile.
    diverged : bool
    written : bool
        False when another process wrote the cell first (this result was dropped).
    """

    cell: tuple[str, float, int]
    test_accuracy: float
    diverged: bool
    written: bool = True

    @property
    def name(self) -> str:
        method, fraction, seed = self.cell
        return f"{method} f={fraction:g} s={seed}"


def train_and_write_group(
    cfg: ExperimentConfig,
    out: str | Path,
    group: list[tuple[Any, float, int]],
    data: LoadedDataset,
    teacher: xr.Dataset,
    tdata: TrainingData,
    build: Callable[[], Any],
    on_step: Callable[[int, int], None] | None = None,
    only_new: bool = True,
    after_write: Callable[[CellOutcome], None] | None = None,
) -> list[CellOutcome]:
    """Train one group of cells together and write each cell's file atomically.

    This is the unit of work of a sweep, in-process and on a Dask worker alike; a cell's
    numbers depend on its method, fraction and seed (and the group it trains in only through
    float summation order), not on the process that trains it.

    Parameters
    ----------
    cfg : ExperimentConfig
    out : str or Path
        The run store.
    group : list of (objective, fraction, seed)
    data, teacher, tdata, build
        The dataset, the stored teacher outputs, the students' training data and the student
        builder.
    on_step : callable, optional
        Called as ``on_step(done, total)`` while the group trains.
    only_new : bool
        Write a cell only if no file of it exists yet (a hard link, atomic on POSIX file
        systems): a task run twice, or by two workers, never replaces a written cell. The
        group's files are all written under temporary names before any is published, so a
        process killed while writing seldom leaves part of a group. False
        replaces the file (the in-process path, which holds the experiment's lock, and
        ``--retrain-diverged``).
    after_write : callable, optional
        Called with each cell's outcome right after its file is written (or found).

    Returns
    -------
    list of CellOutcome
        One per cell of ``group``, in order.
    """
    within = cfg.teacher_indices(data.y_train)
    subsets = {(f, s): subset(data.y_train, f, s, within) for _, f, s in group}
    per_cell = cfg.budget == "epochs"
    jobs = [
        CellJob(
            st.cell_filename(o.label, f, s),
            o,
            subsets[(f, s)],
            s,
            steps=cfg.cell_steps(len(subsets[(f, s)])) if per_cell else None,
        )
        for o, f, s in group
    ]
    results = train_group(
        jobs, build, tdata, cfg.train_config(), teacher["feature_sample"].values, on_step
    )
    cells = []
    for (obj, f, s), res in zip(group, results, strict=True):
        mask = np.zeros(len(data.y_train), dtype=bool)
        mask[subsets[(f, s)]] = True
        assert mask.sum() == subset_size(f, len(data.y_train))
        acc = float("nan") if res.diverged else _accuracy(res.test_logits, data.y_test)
        ds = _cell_dataset(cfg, obj, f, s, mask, res, teacher, acc, data.y_train)
        path = st.cell_path(out, cfg.experiment_id, obj.label, f, s)
        outcome = CellOutcome((obj.label, float(f), int(s)), acc, bool(res.diverged))
        cells.append((outcome, ds, path))
    outcomes = []
    if only_new:  # all files written first, then published at once: a group is seldom half there
        staged: list[Path] = []
        try:
            for _, ds, path in cells:
                staged.append(stage_dataset(ds, path))
            for (outcome, _, path), tmp in zip(cells, staged, strict=True):
                outcomes.append(replace(outcome, written=publish_new(tmp, path)))
        finally:
            for tmp in staged:
                tmp.unlink(missing_ok=True)
        for outcome in outcomes:
            if after_write is not None:
                after_write(outcome)
        return outcomes
    for outcome, ds, path in cells:
        st.write_dataset(ds, path)
        if after_write is not None:
            after_write(outcome)
        outcomes.append(outcome)
    return outcomes


def stage_dataset(ds: xr.Dataset, path: Path) -> Path:
    """Write ``ds`` as :func:`kdtheory.store.runs.write_dataset` does, under a temporary name
    next to ``path`` (one :func:`kdtheory.store.atomic.sweep_orphans` removes if left behind);
    :func:`publish_new` then gives it its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    staged = Path(name)
    try:
        st.write_dataset(ds, staged)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def publish_new(staged: Path, path: Path) -> bool:
    """Give the file ``staged`` the name ``path`` unless ``path`` exists; remove ``staged``.

    A hard link, which fails when ``path`` exists: of two writers of one cell exactly one
    succeeds and the other's file is dropped, so a cell is never replaced or seen half-written.
    On a file system without hard links it falls back to a rename when ``path`` does not exist
    yet.

    Returns
    -------
    bool
        Whether ``path`` is now ``staged``'s file.
    """
    try:
        try:
            os.link(staged, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV) or path.exists():
                raise
            os.replace(staged, path)
        return True
    finally:
        staged.unlink(missing_ok=True)


def write_new_dataset(ds: xr.Dataset, path: Path) -> bool:
    """Write ``ds`` to ``path`` (as :func:`kdtheory.store.runs.write_dataset`) unless it exists
    (see :func:`publish_new`).

    Returns
    -------
    bool
        Whether this call wrote ``path``.
    """
    if path.exists():
        return False
    return publish_new(stage_dataset(ds, path), path)


def configs_from_options(preset: str | None, overrides: dict[str, Any]) -> list[ExperimentConfig]:
    """Experiment configs from a preset (or the defaults) with CLI overrides applied.

    ``overrides["student"]`` and ``overrides["teacher_fraction"]`` may be sequences (several
    ``--student``, several ``--teacher-fraction``): each preset experiment then becomes one
    experiment per student and teacher share (:func:`expand_factors`).
    """
    if preset is not None:
        if preset not in PRESETS:
            hint = did_you_mean(preset, PRESETS, n=1, cutoff=0.6)
            raise SpecError(
                f"--preset: unknown preset {preset!r}.{hint} Presets: {', '.join(PRESETS)}."
            )
        base = PRESETS[preset]
    else:
        base = [ExperimentConfig()]
    given = {k: v for k, v in overrides.items() if v is not None}
    students = _as_levels(given.pop("student", None))
    shares = _as_levels(given.pop("teacher_fraction", None))
    if "steps" in given and "epochs" in given:
        raise SpecError(
            "--steps and --epochs: give one budget, a fixed number of steps per student or a "
            "number of epochs over each student's own subset"
        )
    if "steps" in given:  # a fixed budget replaces the preset's epochs
        given["epochs"] = None
    if "teacher_steps" in given and "teacher_epochs" in given:
        raise SpecError("--teacher-steps and --teacher-epochs: give one of them")
    if "teacher_steps" in given:
        given["teacher_epochs"] = None
    if "name" in given and len(base) > 1:
        raise SpecError(f"--name: preset {preset!r} has {len(base)} experiments; drop --name")
    if "title" in given and len(base) > 1:
        raise SpecError(
            f"--title: preset {preset!r} has {len(base)} experiments and a title names one; "
            "drop --title (each gets a title from its dataset and models) or run them one by one"
        )
    several = max(len(students or ()), len(shares or ())) > 1
    if several and ("name" in given or "title" in given):
        flag = "--name" if "name" in given else "--title"
        n = max(1, len(students or ())) * max(1, len(shares or ()))
        raise SpecError(
            f"{flag}: {n} experiments (one per --student and --teacher-fraction) and {flag} "
            f"names one; drop {flag} (each gets its own from its student and teacher share) "
            "or run them one by one"
        )
    return expand_factors([replace(cfg, **given) for cfg in base], students, shares)


def _as_levels(value: Any) -> tuple[Any, ...] | None:
    """An override that may be one value or several, as a tuple (None when not given)."""
    if value is None:
        return None
    levels = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    return levels or None


def expand_factors(
    configs: list[ExperimentConfig],
    students: tuple[str, ...] | None = None,
    teacher_fractions: tuple[float, ...] | None = None,
) -> list[ExperimentConfig]:
    """One experiment per config × student × teacher share (the factors a sweep crosses).

    Parameters
    ----------
    configs : list of ExperimentConfig
    students : tuple of str, optional
        Student architecture specs; None keeps each config's own.
    teacher_fractions : tuple of float, optional
        Shares of the training set the teacher trains on; None keeps each config's own.

    Returns
    -------
    list of ExperimentConfig
        In the order config, student, teacher share; an experiment that comes out twice (a
        ``--student`` given to a preset that crosses students) is kept once.

    Raises
    ------
    SpecError
        When a student or a share is given twice.
    """
    for flag, levels in (("--student", students), ("--teacher-fraction", teacher_fractions)):
        if levels is not None and len(set(levels)) < len(levels):
            raise SpecError(f"{flag}: a value is given twice ({', '.join(map(str, levels))})")
    out: dict[str, ExperimentConfig] = {}
    for cfg in configs:
        for student in students or (cfg.student,):
            for share in teacher_fractions or (cfg.teacher_fraction,):
                new = replace(cfg, student=student, teacher_fraction=float(share))
                # --student on a preset that already crosses students gives each one once
                out.setdefault(new.experiment_id, new)
    return list(out.values())


def parse_teacher_fractions(texts: list[str]) -> tuple[float, ...]:
    """``--teacher-fraction`` values (repeated, or comma-separated) as sorted unique shares.

    Raises
    ------
    SpecError
        For a value that is not a number in (0, 1].
    """
    out = []
    for text in texts:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                value = float(part)
            except ValueError:
                raise SpecError(f"--teacher-fraction: {part!r} is not a number") from None
            if not (math.isfinite(value) and 0 < value <= 1):
                raise SpecError(
                    f"--teacher-fraction: {value} is not in (0, 1]; give the share of the "
                    "training set the teacher trains on, e.g. 0.25 or 1"
                )
            out.append(value)
    if not out:
        raise SpecError("--teacher-fraction: give a share in (0, 1], e.g. 0.25 or 1")
    return tuple(sorted(set(out)))


#: The modelling factors on a small mnist1d (1280 train / 320 test samples, so that its store
#: ships next to data/ within the size budget): KD at temperatures 1, 2, 4, 8 and the
#: shuffled-KD objective besides label training, three student widths, a teacher trained on a
#: quarter of the data or on all of it (one experiment per student and teacher share). Every
#: student meets the convergence criteria: narrower MLPs (width 64) do not fit a thousand-odd
#: labels in the budget, small subsets need the 1500-step floor, both teachers get the same 3000
#: steps (a budget in epochs left the quarter-data teacher short of fitting its subset), and
#: logit matching (kd-mse) was left out: its loss still fell by 9% at the end of small-subset
#: cells.
FACTORS_STUDENTS = ("mlp:width=96", "mlp:width=128", "mlp:width=192")
FACTORS_TEACHER_FRACTIONS = (0.25, 1.0)
PRESETS["factors"] = expand_factors(
    [
        replace(  # the reference mnist1d recipe on a smaller dataset and sweep
            _MNIST1D_MLP,
            dataset="mnist1d:num_samples=1600",
            fractions=(0.05, 0.1, 0.25, 1.0),
            methods=("label", "kd:T=1", "kd:T=2", "kd:T=4", "kd:T=8", "kd-shuffled:T=4"),
            min_steps=1500,
            teacher_epochs=None,
            teacher_steps=3000,
            feature_samples=32,
        )
    ],
    FACTORS_STUDENTS,
    FACTORS_TEACHER_FRACTIONS,
)
