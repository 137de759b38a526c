"""The training engine: trains a group of cells together as one batched model.

Every cell (method × fraction × seed) owns its parameters, optimizer state, training subset,
data order and objective. The group's parameters are stacked along a leading *cell* dimension and
the architecture is run with its ``grouped_forward`` when it has one (batched kernels, see
:mod:`kdtheory.training.grouped`), else with ``torch.func.vmap`` over
``torch.func.functional_call``, so a
whole sweep runs as a few large kernels instead of many small ones. The per-cell loss only
depends on that cell's parameters and AdamW is element-wise, so a cell's result does not depend on
which other cells it was trained with (up to floating-point summation order); a group of one cell
is the sequential path. Evaluation always uses ``vmap``, in float32.

Optionally (:class:`TrainConfig`) every cell's batches are augmented on the device
(:mod:`kdtheory.training.augment`; the teacher's targets are then computed on the augmented
batch) and the training forward runs under bfloat16 autocast.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from kdtheory.errors import SpecError
from kdtheory.plugin.specs import Objective, ObjectiveContext
from kdtheory.training.augment import AugmentSampler, check_augment, crop_flip, needs_teacher

#: accepted values of ``TrainConfig.precision`` (``--precision``)
PRECISIONS = ("fp32", "bf16")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to ``torch.device``.

    Raises
    ------
    SpecError
        ``device`` is not a torch device name, or names CUDA/MPS where this torch cannot use it.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SpecError(
            f"device {device!r} is not a device name: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError(
                f"device {device!r}: torch {torch.__version__} sees no CUDA GPU here; "
                "use device auto or cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SpecError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError(f"device {device!r}: MPS is not available here; use device auto or cpu")
    return dev


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every cell of a group.

    Attributes
    ----------
    steps : int
        Optimizer steps of a cell whose :class:`CellJob` has no budget of its own.
    batch_size : int
        Minibatch size; a subset smaller than this is cycled through within a batch.
    lr : float
        Peak AdamW learning rate: linear warm-up, then cosine decay to zero over each cell's own
        budget.
    weight_decay : float
    log_points : int
        ``loss_history`` holds the mean training loss over this many equal intervals of each
        cell's budget (interval averages, not single minibatches).
    warmup : float
        Share of each cell's budget spent warming the learning rate up linearly, in [0, 1).
    augment : {"none", "crop-flip"}
        Augmentation of every training batch (:mod:`kdtheory.training.augment`).
    precision : {"fp32", "bf16"}
        ``bf16`` runs the training forward passes (students', and the teacher's on augmented
        batches) under bfloat16 autocast; losses, optimizer and evaluation stay float32.
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    log_points: int = 50
    warmup: float = 0.0
    augment: str = "none"
    precision: str = "fp32"


def lr_factor(step: int, budget: int, warmup: float = 0.0) -> float:
    """Learning-rate multiplier of optimizer step ``step`` (0-based) in a budget of ``budget``.

    Linear warm-up over the first ``ceil(warmup * budget)`` steps, then cosine decay from 1 to 0
    over the rest: ``0.5 * (1 + cos(pi * s / n))`` with ``s`` steps past the warm-up of ``n``.
    """
    w = math.ceil(warmup * budget) if warmup > 0 else 0
    if step < w:
        return (step + 1) / w
    n = budget - w
    return 0.5 * (1.0 + math.cos(math.pi * min(step - w, n) / n))


def interval_ends(budget: int, points: int) -> np.ndarray:
    """Last step (1-based) of each of ``points`` equal logging intervals of ``budget`` steps."""
    return np.ceil(np.arange(1, points + 1) * budget / points).astype(np.int64)


@dataclass
class CellJob:
    """One student to train.

    Attributes
    ----------
    key : str
        Identifies the cell in results (its file name).
    objective : Objective
    subset : numpy.ndarray
        Training-set indices the student trains on.
    seed : int
        Replicate seed: fixes the initialisation; with ``len(subset)`` it fixes the data order.
    steps : int, optional
        This cell's own budget of optimizer steps (its warm-up and cosine schedule run over it).
        Cells of a group may have different budgets: a finished cell leaves the group. ``None``
        uses :attr:`TrainConfig.steps` with the group-wide learning rate (the fixed-step path).
    """

    key: str
    objective: Objective
    subset: np.ndarray
    seed: int
    steps: int | None = None


@dataclass
class CellResult:
    """What training one cell produced (numpy, float32)."""

    key: str
    train_logits: np.ndarray
    test_logits: np.ndarray
    features: np.ndarray | None
    classifier_weight: np.ndarray
    classifier_bias: np.ndarray
    loss_history: np.ndarray
    scalars: dict[str, float] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    steps: int = 0
    diverged: bool = False


@dataclass
class TrainingData:
    """Tensors the engine trains and evaluates on (all on the training device).

    ``teacher`` is the teacher model itself (on the device, in eval mode), needed only to
    compute targets on augmented batches; without augmentation the stored
    ``teacher_train_logits`` serve.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    teacher_train_logits: torch.Tensor
    num_classes: int
    teacher: nn.Module | None = None

    @classmethod
    def from_numpy(
        cls,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        teacher_train_logits: np.ndarray | None,
        num_classes: int,
        device: torch.device,
        teacher: nn.Module | None = None,
    ) -> TrainingData:
        """Place the arrays on ``device`` once (through pinned memory on CUDA)."""
        if teacher_train_logits is None:
            teacher_train_logits = np.zeros((len(y_train), num_classes), np.float32)
        if teacher is not None:
            teacher = teacher.to(device).eval().requires_grad_(False)
        return cls(
            x_train=to_device(x_train, torch.float32, device),
            y_train=to_device(y_train, torch.int64, device),
            x_test=to_device(x_test, torch.float32, device),
            teacher_train_logits=to_device(teacher_train_logits, torch.float32, device),
            num_classes=num_classes,
            teacher=teacher,
        )


def to_device(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``array`` as a tensor on ``device``: copied from pinned host memory when it is a GPU."""
    tensor = torch.as_tensor(array, dtype=dtype)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (``fp32``: none).

    Raises
    ------
    SpecError
        An unknown precision.
    """
    if precision not in PRECISIONS:
        raise SpecError(f"--precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def init_model(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model whose initialisation depends on ``seed`` only, not on global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


class BatchSampler:
    """Per-cell data order: epochs of random permutations of the subset, cut into batches."""

    def __init__(self, subset: np.ndarray, batch_size: int, seed: int) -> None:
        self.subset = np.asarray(subset, dtype=np.int64)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(np.random.SeedSequence([int(seed), len(subset), 7]))
        self._perm = np.empty(0, dtype=np.int64)
        self._pos = 0

    def take(self, steps: int) -> np.ndarray:
        """Indices for the next ``steps`` batches, shape ``(steps, batch_size)``."""
        need = steps * self.batch_size
        parts = []
        while need > 0:
            if self._pos >= len(self._perm):
                self._perm = self.rng.permutation(self.subset)
                self._pos = 0
            chunk = self._perm[self._pos : self._pos + need]
            self._pos += len(chunk)
            need -= len(chunk)
            parts.append(chunk)
        return np.concatenate(parts).reshape(steps, self.batch_size)


def _stack(models: list[nn.Module], device: torch.device):
    params, buffers = stack_module_state(models)
    params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    base = copy.deepcopy(models[0]).to("meta")
    return base, params, buffers


def activation_bytes_per_sample(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes of module outputs for one sample: a rough size of what backward keeps."""
    total = 0

    def hook(_m, _i, out):
        nonlocal total
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            if isinstance(o, torch.Tensor):
                total += o.numel() * o.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.zeros((2, *input_shape)))
    finally:
        for h in handles:
            h.remove()
    return max(1, total // 2)


def bytes_per_cell(
    model: nn.Module, input_shape: tuple[int, ...], batch_size: int, n_train: int, k: int
) -> int:
    """Estimated training memory of one cell in a batched group."""
    n_params = sum(p.numel() for p in model.parameters())
    state = 4 * 4 * n_params  # weights, grads, two AdamW moments
    acts = 3 * activation_bytes_per_sample(model, input_shape) * batch_size
    targets = 4 * n_train * k
    return state + acts + targets


def train_group(
    jobs: list[CellJob],
    build: Callable[[], nn.Module],
    data: TrainingData,
    config: TrainConfig,
    feature_index: np.ndarray | None = None,
    on_step: Callable[[int, int], None] | None = None,
    eval_batch: int = 512,
    keep_state: bool = False,
    kernels: str = "auto",
    evaluate: bool = True,
) -> list[CellResult]:
    """Train ``jobs`` together as one batched model and evaluate every cell.

    Cells may have different budgets (:attr:`CellJob.steps`): all start together, and a cell
    that has run its budget is evaluated and leaves the group (its parameters and optimizer
    state drop out of the stacked tensors), so finished cells cost nothing. A cell whose
    training loss (or, at the end, whose output) becomes non-finite stops there and is returned
    with ``diverged=True`` and NaN outputs: it has no result.

    Parameters
    ----------
    jobs : list of CellJob
        Cells to train; they must share the architecture ``build`` makes.
    build : callable
        Returns a fresh (randomly initialised) model; called under a per-cell seed.
    data : TrainingData
    config : TrainConfig
    feature_index : numpy.ndarray, optional
        Training-set indices whose penultimate features are returned.
    on_step : callable, optional
        ``on_step(done, total)`` after each optimizer step of the group (``total`` is the
        largest budget).
    eval_batch : int
        Samples per evaluation chunk (all cells at once).
    keep_state : bool
        Also return each cell's trained ``state_dict`` (CPU tensors), e.g. to save a teacher.
    kernels : {"auto", "vmap"}
        ``auto`` trains with the architecture's ``grouped_forward`` when it has one (batched
        kernels laid out for speed) and with ``vmap`` over ``functional_call`` otherwise;
        ``vmap`` always uses the latter.
    evaluate : bool
        Evaluate each cell on the training and test sets when it finishes. Without it the
        results' logits are empty ``(0, K)`` arrays and their features ``None`` (a caller that
        evaluates the returned ``state`` itself, as the sweep does for the teacher).

    Returns
    -------
    list of CellResult
        In the order of ``jobs``.

    Notes
    -----
    With ``config.augment`` every cell's batch is augmented with draws from the cell's own
    generator, and the cells whose objective uses the teacher's per-sample outputs
    (:func:`~kdtheory.training.augment.needs_teacher`) get their targets each step from
    ``objective.targets`` on a context of the batch: ``data.teacher``'s logits on the augmented
    inputs, the batch's labels, and a seed from the cell's seed and the step.

    With per-cell budgets every cell follows its own learning-rate schedule. AdamW's update is
    linear in the learning rate, so the group takes one fused AdamW step at learning rate 1 and
    moves each cell's parameters the share ``lr_c`` of the way (``old + lr_c * (new - old)``);
    the arithmetic is element-wise per cell, so a cell's result does not depend on its
    batchmates. Jobs without a budget (``steps=None``) use the group-wide schedule directly.
    """
    if not jobs:
        return []
    device = data.x_train.device
    B, K = config.batch_size, data.num_classes
    points = max(1, config.log_points)
    per_cell_lr = any(job.steps is not None for job in jobs)
    augmenting = check_augment(config.augment, tuple(data.x_train.shape[1:])) != "none"
    autocast(device, config.precision)  # checks the precision before any work
    # cells sorted by objective label, so each objective's loss runs once per step on a slice
    cells = [
        _Cell(
            job,
            job.steps or config.steps,
            BatchSampler(job.subset, B, job.seed),
            points,
            AugmentSampler(job.seed, len(job.subset), B) if augmenting else None,
        )
        for job in sorted(jobs, key=lambda j: j.objective.label)
    ]
    if augmenting and data.teacher is None:
        lacking = sorted({c.job.objective.label for c in cells if c.dynamic})
        if lacking:
            raise ValueError(
                f"augmentation: objective(s) {', '.join(lacking)} take targets from the teacher's "
                "outputs on the augmented batch; give the teacher model as TrainingData.teacher"
            )
    if any(c.budget < 1 for c in cells):
        raise ValueError("every cell needs a budget of at least one step")
    models = [init_model(build, c.job.seed) for c in cells]
    base, params, buffers = _stack(models, device)
    del models

    targets, scalars = [], {}
    for c in cells:
        ctx = ObjectiveContext(
            teacher_train_logits=data.teacher_train_logits,
            train_labels=data.y_train,
            subset=torch.as_tensor(c.job.subset, dtype=torch.int64, device=device),
            seed=c.job.seed,
            num_classes=K,
        )
        tgt, extra = c.job.objective.targets(ctx)
        targets.append(tgt.to(device=device, dtype=torch.float32))
        scalars[c.job.key] = {k: float(v) for k, v in extra.items()}
    target_table = torch.stack(targets)  # (C, N, K)
    del targets

    batched = _group_forward(base, kernels)
    opt = _adamw(list(params.values()), config, lr=1.0 if per_cell_lr else config.lr)
    loss_sum = torch.zeros(len(cells), device=device)
    since = torch.zeros(len(cells), device=device)
    sample_shape = data.x_train.shape[1:]
    n_train = target_table.shape[1]
    total = max(c.budget for c in cells)
    finished: dict[str, CellResult] = {}
    idx_block = torch.empty(0, dtype=torch.int64)
    aug_block = torch.empty(0, dtype=torch.int64)
    block_pos = 0
    done = 0
    weight_key = _classifier_key(base, "weight")
    bias_key = _classifier_key(base, "bias")
    slices = _objective_slices([c.job for c in cells])

    def finish(stop: set[int]) -> None:
        """Evaluate the cells at positions ``stop`` and drop them from every stacked tensor."""
        nonlocal params, buffers, opt, target_table, loss_sum, since, idx_block, aug_block
        nonlocal cells, slices
        gone = sorted(stop)
        sel = torch.as_tensor(gone, device=device)
        if evaluate:
            results = _evaluate(
                base,
                {k: v.detach().index_select(0, sel) for k, v in params.items()},
                {k: v.index_select(0, sel) for k, v in buffers.items()},
                data,
                feature_index,
                eval_batch,
            )
        else:
            empty = np.zeros((len(gone), 0, K), np.float32)
            results = {"train_logits": empty, "test_logits": empty, "features": None}
        for j, pos in enumerate(gone):
            cell = cells[pos]
            res = CellResult(
                key=cell.job.key,
                train_logits=results["train_logits"][j],
                test_logits=results["test_logits"][j],
                features=None if results["features"] is None else results["features"][j],
                classifier_weight=params[weight_key][pos].detach().cpu().numpy().astype(np.float32),
                classifier_bias=params[bias_key][pos].detach().cpu().numpy().astype(np.float32),
                loss_history=cell.history(),
                scalars=scalars[cell.job.key],
                state=(
                    {k: v[pos].detach().cpu().clone() for k, v in {**params, **buffers}.items()}
                    if keep_state
                    else None
                ),
                steps=done,
                diverged=cell.diverged,
            )
            finished[cell.job.key] = _blank_if_diverged(res)
        keep = [pos for pos in range(len(cells)) if pos not in stop]
        cells = [cells[pos] for pos in keep]
        if not cells:
            return
        kt = torch.as_tensor(keep, device=device)
        old_state = [opt.state.get(p, {}) for p in params.values()]
        params = {k: v.detach().index_select(0, kt).requires_grad_(True) for k, v in params.items()}
        buffers = {k: v.index_select(0, kt) for k, v in buffers.items()}
        opt = _adamw(list(params.values()), config, lr=opt.param_groups[0]["lr"])
        for p, st in zip(params.values(), old_state, strict=True):
            if st:
                opt.state[p] = {
                    k: (v.index_select(0, kt) if k != "step" else v.clone()) for k, v in st.items()
                }
        target_table = target_table.index_select(0, kt)
        loss_sum, since = loss_sum.index_select(0, kt), since.index_select(0, kt)
        if idx_block.numel():
            idx_block = idx_block.index_select(1, kt.to(idx_block.device))
        if aug_block.numel():
            aug_block = aug_block.index_select(1, kt.to(aug_block.device))
        slices = _objective_slices([c.job for c in cells])

    with _deterministic_cudnn(device):  # same seed, same numbers on a GPU too
        while cells:
            C = len(cells)
            if block_pos >= idx_block.shape[0]:
                nb = min(50, max(c.budget for c in cells) - done)
                idx_np = np.stack([c.sampler.take(nb) for c in cells], axis=1)
                idx_block = torch.from_numpy(idx_np).to(device)
                if augmenting:  # (nb, C, B, 3): each cell's crops and flips for the block
                    aug_np = np.stack([c.augmenter.take(nb) for c in cells], axis=1)
                    aug_block = torch.from_numpy(aug_np).to(device)
                block_pos = 0
            idx = idx_block[block_pos]  # (C, B)
            flat = idx.reshape(-1)
            x = data.x_train.index_select(0, flat).view(C, B, *sample_shape)
            y = data.y_train.index_select(0, flat).view(C, B)
            row_offset = torch.arange(C, device=device)[:, None] * n_train
            tg = (
                target_table.view(C * n_train, K)
                .index_select(0, (idx + row_offset).reshape(-1))
                .view(C, B, K)
            )
            if augmenting:
                x = crop_flip(x, aug_block[block_pos])
                tg = _augmented_targets(cells, data, x, y, tg, done, config.precision)
            block_pos += 1
            with autocast(device, config.precision):
                logits = batched(params, buffers, x)
            logits = logits.float()
            losses = torch.cat([obj.loss(logits[s], y[s], tg[s]).reshape(-1) for obj, s in slices])
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            if per_cell_lr:
                _per_cell_step(opt, params, [c.budget for c in cells], done, config, device)
            else:
                opt.param_groups[0]["lr"] = config.lr * lr_factor(done, config.steps, config.warmup)
                opt.step()
            done += 1
            loss_sum += losses.detach()
            since += 1
            logged = [pos for pos, c in enumerate(cells) if c.due(done)]
            stop = {pos for pos, c in enumerate(cells) if c.budget == done}
            if logged:
                means = loss_sum[logged] / since[logged]
                finite = torch.isfinite(means).tolist()
                for j, pos in enumerate(logged):
                    cells[pos].log(means[j], done)
                    loss_sum[pos] = 0.0
                    since[pos] = 0.0
                    if not finite[j]:
                        cells[pos].diverged = True
                        stop.add(pos)
            if on_step is not None:
                on_step(done, total)
            if stop:
                finish(stop)
    return [finished[job.key] for job in jobs]


def _augmented_targets(
    cells: list[_Cell],
    data: TrainingData,
    x: torch.Tensor,
    y: torch.Tensor,
    static: torch.Tensor,
    step: int,
    precision: str,
) -> torch.Tensor:
    """The group's targets ``(C, B, K)`` for augmented inputs ``x`` ``(C, B, ...)``.

    Cells whose objective uses the teacher's outputs get ``objective.targets`` of the teacher's
    logits on their own augmented batch (one teacher forward for all of them); the others keep
    their rows of the precomputed table ``static``.
    """
    dynamic = [pos for pos, c in enumerate(cells) if c.dynamic]
    if not dynamic:
        return static
    assert data.teacher is not None  # checked when the group was set up
    sel = torch.as_tensor(dynamic, device=x.device)
    inputs = x.index_select(0, sel)
    with torch.no_grad(), autocast(x.device, precision):
        logits = data.teacher(inputs.reshape(-1, *inputs.shape[2:]))
    logits = logits.float().view(len(dynamic), x.shape[1], -1)
    rows = list(static.unbind(0))
    batch = torch.arange(x.shape[1], device=x.device)
    for j, pos in enumerate(dynamic):
        job = cells[pos].job
        ctx = ObjectiveContext(
            teacher_train_logits=logits[j],
            train_labels=y[pos],
            subset=batch,
            seed=int(job.seed) * 1_000_003 + step,
            num_classes=data.num_classes,
        )
        rows[pos] = job.objective.targets(ctx)[0].to(static.dtype)
    return torch.stack(rows)


class _Cell:
    """A cell's bookkeeping while its group trains: budget, data order, augmentation draws,
    loss log, state."""

    def __init__(
        self,
        job: CellJob,
        budget: int,
        sampler: BatchSampler,
        points: int,
        augmenter: AugmentSampler | None = None,
    ) -> None:
        self.job = job
        self.budget = int(budget)
        self.sampler = sampler
        self.augmenter = augmenter
        #: targets from the teacher's outputs on each augmented batch
        self.dynamic = augmenter is not None and needs_teacher(job.objective.objective)
        self.points = points
        self.ends = interval_ends(self.budget, points)
        self.records: list[torch.Tensor] = []
        self.diverged = False

    def due(self, done: int) -> bool:
        """Whether a logging interval ends at step ``done``."""
        return len(self.records) < self.points and self.ends[len(self.records)] <= done

    def log(self, mean: torch.Tensor, done: int) -> None:
        """Record the interval mean for every interval ending by ``done`` (an interval shorter
        than one step, when the budget is below ``log_points``, repeats the mean)."""
        n = int(np.searchsorted(self.ends, done, side="right")) - len(self.records)
        self.records.extend([mean] * n)

    def history(self) -> np.ndarray:
        """The interval means, NaN-padded to ``points`` (a cell stopped early by divergence)."""
        h = torch.stack(self.records).cpu().numpy().astype(np.float32) if self.records else []
        out = np.full(self.points, np.nan, np.float32)
        out[: len(h)] = h[: self.points]
        return out


def _blank_if_diverged(res: CellResult) -> CellResult:
    """A cell whose loss or outputs are non-finite has no result: NaN outputs, ``diverged``.

    Divergence is seen in the logged loss, or, when the last steps broke the parameters after
    the last log, in the evaluated logits.
    """
    finite = np.isfinite(res.test_logits).all() and np.isfinite(res.train_logits).all()
    if not res.diverged and finite:
        return res
    nan = np.float32(np.nan)
    return replace(
        res,
        diverged=True,
        train_logits=np.full_like(res.train_logits, nan),
        test_logits=np.full_like(res.test_logits, nan),
        features=None if res.features is None else np.full_like(res.features, nan),
        classifier_weight=np.full_like(res.classifier_weight, nan),
        classifier_bias=np.full_like(res.classifier_bias, nan),
    )


def _objective_slices(active: list[CellJob]) -> list[tuple[Objective, slice]]:
    """Runs of consecutive cells with the same objective label (cells are sorted by it)."""
    slices: list[tuple[Objective, slice]] = []
    start = 0
    for i in range(1, len(active) + 1):
        if i == len(active) or active[i].objective.label != active[start].objective.label:
            slices.append((active[start].objective, slice(start, i)))
            start = i
    return slices


def _per_cell_step(
    opt: torch.optim.Optimizer,
    params: dict[str, torch.Tensor],
    budgets: list[int],
    step: int,
    config: TrainConfig,
    device: torch.device,
) -> None:
    """One AdamW step in which cell ``c`` moves with its own learning rate.

    The optimizer runs at learning rate 1; each cell then keeps the share ``lr_c`` of its
    update (AdamW's decoupled update is linear in the learning rate).
    """
    rates = [config.lr * lr_factor(step, int(b), config.warmup) for b in budgets]
    share = torch.tensor(rates, dtype=torch.float32, device=device)
    with torch.no_grad():
        before = [p.detach().clone() for p in params.values()]
    opt.step()
    with torch.no_grad():
        for p, old in zip(params.values(), before, strict=True):
            w = share.view(-1, *([1] * (p.dim() - 1)))
            p.copy_(old.lerp_(p, w))


@contextlib.contextmanager
def _deterministic_cudnn(device: torch.device) -> Iterator[None]:
    """On CUDA: cuDNN without autotuning and with deterministic algorithms, restored after."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


def _group_forward(base: nn.Module, kernels: str) -> Callable[..., torch.Tensor]:
    """``forward(params, buffers, x)`` of a group: stacked parameters, inputs ``(C, B, ...)``."""
    if kernels not in ("auto", "vmap"):
        raise ValueError(f"kernels={kernels!r}: use 'auto' or 'vmap'")
    grouped = getattr(base, "grouped_forward", None)
    if kernels == "auto" and callable(grouped):
        return grouped

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor):
        return functional_call(base, (p, b), (x,))

    return vmap(forward)


def _adamw(params: list[torch.Tensor], config: TrainConfig, lr: float) -> torch.optim.AdamW:
    """AdamW over the stacked parameters; the fused kernel (one pass per step) where torch has it.

    Fused and multi-tensor AdamW compute the same update up to float rounding; the fused kernel
    is used on CPU and CUDA (in one measurement it cut the ``bench`` step by about a sixth),
    torch's default elsewhere.
    """
    fused = True if params[0].device.type in ("cpu", "cuda") else None
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay, fused=fused)


def _classifier_key(model: nn.Module, what: str) -> str:
    for name, module in model.named_modules():
        if module is model.classifier:
            return f"{name}.{what}" if name else what
    raise ValueError("the architecture has no 'classifier' attribute (its final nn.Linear)")


@torch.no_grad()
def _evaluate(
    base: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    data: TrainingData,
    feature_index: np.ndarray | None,
    eval_batch: int,
) -> dict[str, Any]:
    def forward(p, b, x):
        return functional_call(base, (p, b), (x,), {"with_features": True})

    shared = vmap(forward, in_dims=(0, 0, None))
    params = {k: v.detach() for k, v in params.items()}

    def run(x: torch.Tensor, want_features: bool):
        return _chunked(lambda xb: shared(params, buffers, xb), x, eval_batch, want_features, 1)

    train_logits, _ = run(data.x_train, False)
    test_logits, _ = run(data.x_test, False)
    features = None
    if feature_index is not None and len(feature_index):
        idx = torch.as_tensor(
            np.array(feature_index), dtype=torch.int64, device=data.x_train.device
        )
        _, features = run(data.x_train[idx], True)
    return {"train_logits": train_logits, "test_logits": test_logits, "features": features}


def evaluate_single(
    model: nn.Module, x: torch.Tensor, with_features: bool = False, eval_batch: int = 512
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (and features) of one plain model on ``x``."""
    model.eval()
    with torch.no_grad():
        return _chunked(lambda xb: model(xb, with_features=True), x, eval_batch, with_features, 0)


def _chunked(
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    eval_batch: int,
    want_features: bool,
    sample_dim: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``forward`` (returning logits and features) over ``x`` in chunks; numpy results."""
    logits, feats = [], []
    for i in range(0, len(x), eval_batch):
        lo, fe = forward(x[i : i + eval_batch])
        logits.append(lo.float().cpu())
        if want_features:
            feats.append(fe.float().cpu())
    lo = torch.cat(logits, dim=sample_dim).numpy()
    return lo, (torch.cat(feats, dim=sample_dim).numpy() if want_features else None)
