"""Convergence of training runs: the criteria, per-cell checks and the store's warnings.

A verdict is only as good as the runs under it, so every command that reads a store says when
its students (or teacher) are not trained to convergence. The criteria, stated once here and
used by ``kdtheory run`` (the ``converged`` attribute of each cell file), ``inspect``, ``test``
and ``report``:

- **loss still falling**: the mean training loss over the last logging interval is more than
  :data:`MAX_LOSS_DROP` (5%) below the mean over the interval that ends at 80% of the cell's
  budget (``loss_drop_last20``), and more than :data:`MIN_LOSS_FALL` (0.01, in the objective's
  loss units) below it in absolute terms. The absolute tolerance matters for cross-entropy on
  memorised labels only: its loss tends to zero while the margins keep growing with the
  learning rate, so under cosine decay it falls by a few per cent of an already tiny value
  (e.g. 0.046 → 0.043) to the very end, however long the budget;
- **labels not fitted**: a label-trained student (objective ``label``) classifies less than
  :data:`MIN_LABEL_TRAIN_ACCURACY` (99%) of its own training subset correctly;
- **diverged**: the training loss became non-finite.

A teacher is flagged as *weak* when its test accuracy is below that of the best label-trained
student (mean over seeds, any fraction), or within :data:`CHANCE_MARGIN` of chance (1/K).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from kdtheory.store import accessor as _accessor  # noqa: F401 - registers ``Dataset.kd``
from kdtheory.store.schema import CELL_DIMS

#: share of a cell's budget whose loss change decides "still falling"
LOSS_TAIL = 0.2
#: largest relative fall of the loss over the last LOSS_TAIL of training for a converged cell
MAX_LOSS_DROP = 0.05
#: smallest absolute fall (loss units) that counts as "still falling" (see the module docstring)
MIN_LOSS_FALL = 0.01
#: smallest accuracy of a label-trained student on its own training subset
MIN_LABEL_TRAIN_ACCURACY = 0.99
#: a teacher within this many accuracy points (as a share) of chance is weak
CHANCE_MARGIN = 0.10

CRITERIA = (
    f"loss falling by more than {MAX_LOSS_DROP:.0%} (and by more than {MIN_LOSS_FALL}) over the "
    f"last {LOSS_TAIL:.0%} of training, "
    f"a label-trained student below {MIN_LABEL_TRAIN_ACCURACY:.0%} accuracy on its own training "
    "subset, or a non-finite loss"
)


def loss_drop(
    history: np.ndarray, progress: np.ndarray | None = None, absolute: bool = False
) -> float:
    """Relative fall of a loss history over its last :data:`LOSS_TAIL` of training.

    Parameters
    ----------
    history : numpy.ndarray
        Interval-mean losses in training order (NaN entries at the end are ignored).
    progress : numpy.ndarray, optional
        Position of each entry in training (any increasing scale, e.g. the step it ends at);
        evenly spaced when omitted.

    absolute : bool
        Return the absolute fall ``L(80%) - L(end)`` instead.

    Returns
    -------
    float
        ``(L(80%) - L(end)) / |L(80%)|``: positive while the loss is still falling; NaN when the
        history has fewer than two finite entries; ``inf`` when it has a non-finite one before
        its end.
    """
    h = np.asarray(history, dtype=float)
    pos = np.arange(1, len(h) + 1, dtype=float) if progress is None else np.asarray(progress, float)
    keep = ~np.isnan(h)
    h, pos = h[keep], pos[keep]
    if len(h) < 2:
        return float("nan")
    if not np.isfinite(h).all():
        return float("inf")
    start = pos[0] + (1 - LOSS_TAIL) * (pos[-1] - pos[0]) if progress is not None else None
    if start is None:
        i0 = max(0, int(round((1 - LOSS_TAIL) * len(h))) - 1)
    else:
        i0 = int(np.argmin(np.abs(pos - start)))
    a, b = h[i0], h[-1]
    if absolute:
        return float(a - b)
    if a == 0:
        return 0.0
    return float((a - b) / abs(a))


def still_falling(relative: Any, absolute: Any) -> Any:
    """The "loss still falling" criterion on relative and absolute falls (scalars or arrays)."""
    return (relative > MAX_LOSS_DROP) & (absolute > MIN_LOSS_FALL)


def unfitted(is_label: Any, train_acc: Any) -> Any:
    """The "labels not fitted" criterion: a label-trained student below 99% on its subset."""
    return is_label & (train_acc < MIN_LABEL_TRAIN_ACCURACY)


def converged(is_label: bool, train_acc: float, history: np.ndarray, diverged: bool) -> bool:
    """Whether one cell meets every criterion (what a cell file records as ``converged``)."""
    falling = still_falling(loss_drop(history), loss_drop(history, absolute=True))
    return not (diverged or falling or unfitted(is_label, train_acc))


def train_accuracy(ds: xr.Dataset) -> xr.DataArray:
    """Each cell's accuracy on its own training subset (dims arm, fraction, seed)."""
    return ds.kd.accuracy(split="train", subset="trained")


def cell_loss_drop(ds: xr.Dataset, absolute: bool = False) -> xr.DataArray:
    """``loss_drop`` of every cell's ``loss_history`` (NaN where none is stored)."""
    dims = CELL_DIMS
    if "loss_history" not in ds:
        shape = [ds.sizes[d] for d in dims]
        return xr.DataArray(np.full(shape, np.nan), dims=dims, coords={d: ds[d] for d in dims})
    hist = ds["loss_history"]
    axis = hist.dims[-1]
    progress = np.asarray(ds[axis].values, dtype=float) if axis in ds.coords else None
    return xr.apply_ufunc(
        lambda h: loss_drop(h, progress, absolute),
        hist,
        input_core_dims=[[axis]],
        vectorize=True,
    )


#: why a cell is under-trained, in the order they are reported
REASONS = {
    "diverged": "diverged",
    "falling": "loss still falling",
    "unfitted": "label fit < 99%",
}


class UnderTrained(NamedTuple):
    """One under-trained cell: where it is, why in words, and the criteria it fails."""

    method: str
    fraction: float
    seed: int
    why: str
    reasons: tuple[str, ...]


@dataclass
class ExperimentConvergence:
    """Convergence of one experiment's cells and teacher.

    Attributes
    ----------
    experiment : str
    cells : int
        Cells present (trained) in the experiment.
    under_trained : list of UnderTrained
        ``(method, fraction, seed, why, reasons)`` for each cell that fails a criterion.
    teacher_test_accuracy, teacher_train_accuracy : float
    weak_teacher : str
        Why the teacher is weak, or ``""``.
    table : xarray.Dataset
        Per-cell ``train_accuracy``, ``loss_drop_last20`` and ``under_trained``.
    """

    experiment: str
    cells: int
    under_trained: list[UnderTrained] = field(default_factory=list)
    teacher_test_accuracy: float = float("nan")
    teacher_train_accuracy: float = float("nan")
    weak_teacher: str = ""
    table: xr.Dataset | None = None

    @property
    def ok(self) -> bool:
        return not self.under_trained and not self.weak_teacher

    def warnings(self) -> list[str]:
        """One line per problem, naming the experiment, methods and fractions."""
        out = []
        if self.under_trained:
            per_method: dict[str, Counter[float]] = {}
            reasons: Counter[str] = Counter()
            for u in self.under_trained:
                per_method.setdefault(u.method, Counter())[u.fraction] += 1
                reasons.update(u.reasons)
            where = "; ".join(
                f"{m} at f=" + ", ".join(f"{f:g} ({n})" for f, n in sorted(c.items()))
                for m, c in per_method.items()
            )
            why = ", ".join(f"{REASONS[k]}: {n}" for k, n in reasons.items())
            fix = (
                "Lower --lr in a new store (diverged cells)"
                if set(reasons) == {"diverged"}
                else "Train longer (--epochs) into a new store"
            )
            out.append(
                f"{self.experiment}: {len(self.under_trained)} of {self.cells} cells "
                f"under-trained ({why}) — {where} (seeds per fraction in brackets). "
                f"{fix}; `kdtheory inspect` shows each cell."
            )
        if self.weak_teacher:
            out.append(
                f"{self.experiment}: weak teacher: {self.weak_teacher}; distilling from it "
                "says little about distillation. Train a stronger teacher (--teacher, "
                "--teacher-epochs)."
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "cells": self.cells,
            "under_trained": [
                {"method": u.method, "fraction": u.fraction, "seed": u.seed, "why": u.why}
                for u in self.under_trained
            ],
            "teacher_test_accuracy": _none_if_nan(self.teacher_test_accuracy),
            "teacher_train_accuracy": _none_if_nan(self.teacher_train_accuracy),
            "weak_teacher": self.weak_teacher or None,
        }


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def check_experiment(name: str, ds: xr.Dataset) -> ExperimentConvergence:
    """Apply the criteria of this module to every cell and the teacher of ``ds``."""
    acc = train_accuracy(ds)
    drop = cell_loss_drop(ds)
    if "diverged" in ds:
        diverged = ds["diverged"].fillna(0).astype(bool)
    else:
        diverged = xr.zeros_like(acc.notnull())
    present = acc.notnull() | diverged  # a diverged cell's outputs are blanked, yet it exists
    is_label = ds["objective"] == "label"
    falling = still_falling(drop, cell_loss_drop(ds, absolute=True)) & ~diverged
    unfit = unfitted(is_label, acc)
    bad = present & (falling | unfit | diverged)
    dims = CELL_DIMS
    flags = {
        k: v.transpose(*dims).values
        for k, v in (("diverged", diverged), ("falling", falling), ("unfitted", unfit))
    }
    drop_v, acc_v = drop.transpose(*dims).values, acc.transpose(*dims).values
    under = []
    for i, j, k in np.argwhere(bad.transpose(*dims).values):
        reasons = tuple(r for r in REASONS if flags[r][i, j, k])
        texts = {
            "diverged": "diverged",
            "falling": f"loss −{drop_v[i, j, k]:.0%} in last 20%",
            "unfitted": f"train acc {acc_v[i, j, k]:.3f}",
        }
        under.append(
            UnderTrained(
                str(ds[CELL_DIMS[0]].values[i]),
                float(ds["fraction"].values[j]),
                int(ds["seed"].values[k]),
                ", ".join(texts[r] for r in reasons),
                reasons,
            )
        )
    t_test = ds.kd.teacher_accuracy("test")
    t_train = ds.kd.teacher_accuracy("train")
    weak = ""
    k = ds.sizes["class"]
    if np.isfinite(t_test):
        test_acc = ds.kd.accuracy()
        label = test_acc.where(is_label, drop=True) if bool(is_label.any()) else None
        best = float(label.mean("seed").max()) if label is not None and label.size else np.nan
        if t_test < 1.0 / k + CHANCE_MARGIN:
            weak = (
                f"test accuracy {t_test:.3f} is within {CHANCE_MARGIN:.0%} of chance ({1 / k:.3f})"
            )
        elif np.isfinite(best) and t_test < best:
            weak = (
                f"test accuracy {t_test:.3f} is below the best label-trained student's "
                f"({best:.3f}, mean over seeds)"
            )
    table = xr.Dataset(
        {"train_accuracy": acc, "loss_drop_last20": drop, "under_trained": bad},
    )
    return ExperimentConvergence(
        experiment=name,
        cells=int(present.sum()),
        under_trained=under,
        teacher_test_accuracy=t_test,
        teacher_train_accuracy=t_train,
        weak_teacher=weak,
        table=table,
    )


class ConvergenceWarning(UserWarning):
    """The store under a report has under-trained cells or a weak teacher."""


def problem_note(n: int) -> str:
    """The one line shown on stderr when verdicts rest on ``n`` convergence problems."""
    return (
        f"{n} convergence problem(s) in this store (under-trained cells or a weak teacher); "
        "each verdict lists them under 'Warning' (JSON: 'warnings'), and `kdtheory inspect` "
        "shows every cell."
    )


@dataclass
class StoreConvergence:
    """Convergence of every experiment of a store (see :func:`check_store`)."""

    experiments: list[ExperimentConvergence]

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.experiments)

    def warnings(self) -> list[str]:
        return [w for e in self.experiments for w in e.warnings()]

    def summary(self) -> str:
        """One line: how many cells meet the criteria, and how many teachers are weak."""
        cells = sum(e.cells for e in self.experiments)
        under = sum(len(e.under_trained) for e in self.experiments)
        weak = sum(bool(e.weak_teacher) for e in self.experiments)
        text = f"convergence: {cells - under} of {cells} cells meet the criteria"
        if under:
            text += f", {under} under-trained"
        if weak:
            text += f"; {weak} weak teacher{'s' * (weak > 1)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "criteria": CRITERIA,
            "ok": self.ok,
            "experiments": [e.to_dict() for e in self.experiments],
        }


def check_store(store: Mapping[str, xr.Dataset]) -> StoreConvergence:
    """Check every experiment of ``store`` against the convergence criteria."""
    return StoreConvergence([check_experiment(name, ds) for name, ds in store.items()])
