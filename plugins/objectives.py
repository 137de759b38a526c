"""Built-in training objectives (the *methods* of a sweep).

===============  ==========================================================================
``label``        cross-entropy with the hard labels
``kd``           distillation: ``alpha * CE(z, y) + (1 - alpha) * T^2 * KL(p_T || softmax(z/T))``
``ls``           label smoothing, with a fixed epsilon or one matched to the teacher per cell
``kd-shuffled``  KD on teacher probabilities whose wrong-class entries are permuted per sample
``kd-mse``       logit matching: mean squared error between student and teacher logits
===============  ==========================================================================

Losses take ``(..., B, K)`` logits, where leading dimensions index cells trained together, and
return ``(...)``: one mean-over-batch loss per cell. The ``--methods`` parser lives in the core
(:mod:`kdtheory.training.methods`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kdtheory import hookimpl
from kdtheory.errors import SpecError
from kdtheory.plugin.specs import (
    ObjectiveContext,
    ObjectiveSpec,
    Option,
    positive_float,
    unit_float,
)

if TYPE_CHECKING:  # torch is imported where a loss or target is computed, so that registering
    import torch  # the objectives (``kdtheory list``, ``kdtheory plugins``) does not load it

__all__ = [
    "BaseObjective",
    "KDObjective",
    "LabelObjective",
    "LabelSmoothingObjective",
    "LogitMSEObjective",
    "ShuffledKDObjective",
    "cross_entropy",
    "format_number",
    "kd_loss",
    "kdtheory_register_objectives",
    "shuffle_wrong_classes",
    "soft_cross_entropy",
]

NAN = float("nan")
#: Mixed into ``ctx.seed`` for the shuffling generator, so that its stream differs from the
#: global RNG seeded with the same replicate seed (subset choice, initialisation).
_SHUFFLE_SALT = 0x5EED_C0DE


# --------------------------------------------------------------------------- helpers
def format_number(value: float) -> str:
    """Compact text of a number for method labels: ``4.0 -> "4"``, ``2.5 -> "2.5"``."""
    return f"{float(value):g}"


def _one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot ``(..., B, K)`` by comparison (broadcasts, no data-dependent checks)."""
    import torch

    classes = torch.arange(num_classes, device=labels.device)
    return (labels.unsqueeze(-1) == classes).to(dtype)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch dim of ``(..., B, K)`` logits and ``(..., B)`` labels.

    Parameters
    ----------
    logits : torch.Tensor
    labels : torch.Tensor
        int64; leading dims broadcast against those of ``logits``.

    Returns
    -------
    torch.Tensor
        ``(...)``.
    """
    from torch.nn import functional as F

    logp = F.log_softmax(logits, dim=-1)
    onehot = _one_hot(labels, logits.shape[-1], logp.dtype)
    return -(onehot * logp).sum(-1).mean(-1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k t_k log softmax(z)_k``.

    Parameters
    ----------
    logits, targets : torch.Tensor
        ``(..., B, K)``; leading dims broadcast.

    Returns
    -------
    torch.Tensor
        ``(...)``.
    """
    from torch.nn import functional as F

    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean(-1)


def kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Hinton's distillation loss, averaged over the batch.

    ``alpha * CE(z, y) + (1 - alpha) * T**2 * KL(p_T || softmax(z / T))``, where ``targets`` is
    ``p_T``, the teacher's softmax at temperature ``T``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(..., B, K)`` student logits.
    labels : torch.Tensor
        ``(..., B)`` int64 labels (used only when ``alpha > 0``).
    targets : torch.Tensor
        ``(..., B, K)`` teacher probabilities at temperature ``T``.
    temperature, alpha : float

    Returns
    -------
    torch.Tensor
        ``(...)``.
    """
    import torch
    from torch.nn import functional as F

    log_q = F.log_softmax(logits / temperature, dim=-1)
    kl = (torch.special.xlogy(targets, targets) - targets * log_q).sum(-1).mean(-1)
    loss = (1.0 - alpha) * temperature**2 * kl
    if alpha > 0:
        loss = loss + alpha * cross_entropy(logits, labels)
    return loss


def _check_ctx(ctx: ObjectiveContext) -> None:
    n, k = ctx.teacher_train_logits.shape
    if k != ctx.num_classes or ctx.train_labels.shape != (n,):
        raise SpecError(
            f"objective context mismatch: teacher logits {tuple(ctx.teacher_train_logits.shape)}, "
            f"labels {tuple(ctx.train_labels.shape)}, num_classes {ctx.num_classes}"
        )


# --------------------------------------------------------------------------- objectives
@dataclass(eq=False)
class BaseObjective:
    """Common fields of the built-in objectives.

    Attributes
    ----------
    label : str
        The ``method`` coordinate, e.g. ``"kd-T4"``.
    objective : str
        The ``objective`` coordinate, e.g. ``"kd"``.
    params : dict
        The resolved options.
    """

    label: str
    objective: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        """Temperature, NaN where unused."""
        return NAN

    @property
    def alpha(self) -> float:
        """Weight of the hard-label term, NaN where unused."""
        return NAN

    @property
    def smoothing(self) -> float:
        """Configured label-smoothing epsilon, NaN where unused or matched per cell."""
        return NAN

    def __str__(self) -> str:
        return self.label

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other.label == self.label  # type: ignore[attr-defined]
            and other.params == self.params  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.label))


class LabelObjective(BaseObjective):
    """Cross-entropy with hard labels (method ``label``)."""

    def __init__(self) -> None:
        super().__init__(label="label", objective="label", params={})

    def targets(self, ctx: ObjectiveContext) -> tuple[torch.Tensor, dict[str, float]]:
        """One-hot labels ``(N, K)``; no scalars."""
        import torch

        _check_ctx(ctx)
        return _one_hot(ctx.train_labels, ctx.num_classes, torch.float32), {}

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Mean cross-entropy with ``labels`` (``targets`` is ignored)."""
        return cross_entropy(logits, labels)


class KDObjective(BaseObjective):
    """Knowledge distillation at temperature ``T`` (method ``kd-T4``, ``kd-T4-a0.5``).

    Parameters
    ----------
    T : float
        Temperature (> 0).
    alpha : float
        Weight in [0, 1] of the hard-label cross-entropy; 0 is pure distillation.
    """

    name = "kd"

    def __init__(self, T: float = 4.0, alpha: float = 0.0) -> None:
        T, alpha = float(T), float(alpha)
        if not (T > 0 and math.isfinite(T)):
            raise SpecError(f"objective {self.name!r}: T={T} must be a positive number")
        if not 0.0 <= alpha <= 1.0:
            raise SpecError(f"objective {self.name!r}: alpha={alpha} must lie in [0, 1]")
        label = f"{self.name}-T{format_number(T)}"
        if alpha != 0:
            label += f"-a{format_number(alpha)}"
        super().__init__(label=label, objective=self.name, params={"T": T, "alpha": alpha})

    @property
    def temperature(self) -> float:
        """The distillation temperature."""
        return self.params["T"]

    @property
    def alpha(self) -> float:
        """Weight of the hard-label term."""
        return self.params["alpha"]

    def teacher_probs(self, ctx: ObjectiveContext) -> torch.Tensor:
        """The teacher's softmax at temperature ``T``, ``(N, K)`` float32."""
        import torch

        _check_ctx(ctx)
        return torch.softmax(ctx.teacher_train_logits.float() / self.temperature, dim=-1)

    def targets(self, ctx: ObjectiveContext) -> tuple[torch.Tensor, dict[str, float]]:
        """``softmax(teacher_logits / T)``; no scalars."""
        return self.teacher_probs(ctx), {}

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """See :func:`kd_loss`."""
        return kd_loss(logits, labels, targets, self.temperature, self.alpha)


class ShuffledKDObjective(KDObjective):
    """KD whose targets keep the true-class probability but permute the wrong-class ones.

    For each training sample the teacher probabilities at temperature ``T`` on the ``K - 1``
    wrong classes are randomly permuted among the wrong classes; the permutation comes from a
    ``torch.Generator`` seeded from the cell's seed, so it is deterministic. This keeps the
    amount of smoothing per sample but destroys the class-similarity structure ("dark
    knowledge"). Method label ``kd-shuffled-T4``.
    """

    name = "kd-shuffled"

    def targets(self, ctx: ObjectiveContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Shuffled teacher probabilities ``(N, K)``; no scalars."""
        probs = self.teacher_probs(ctx)
        return shuffle_wrong_classes(probs, ctx.train_labels, ctx.seed), {}


def shuffle_wrong_classes(probs: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Permute each row's probabilities over the wrong classes, independently per row.

    Parameters
    ----------
    probs : torch.Tensor
        ``(N, K)`` probabilities.
    labels : torch.Tensor
        ``(N,)`` int64 true classes; their entries stay in place.
    seed : int
        Seeds the permutations (deterministic).

    Returns
    -------
    torch.Tensor
        ``(N, K)``.
    """
    import torch

    n, k = probs.shape
    if k < 2:
        return probs.clone()
    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * 1_000_003 + _SHUFFLE_SALT) % (2**63))
    labels_cpu = labels.detach().to("cpu", torch.int64)
    base = torch.arange(k - 1).expand(n, k - 1)
    wrong = base + (base >= labels_cpu.unsqueeze(1)).long()  # wrong-class indices per row
    perm = torch.argsort(torch.rand(n, k - 1, generator=gen), dim=1)
    wrong = wrong.to(probs.device)
    perm = perm.to(probs.device)
    values = probs.gather(1, wrong)
    return probs.scatter(1, wrong, values.gather(1, perm))


class LabelSmoothingObjective(BaseObjective):
    """Label smoothing: ``1 - eps`` on the true class and ``eps / (K - 1)`` on every other.

    Parameters
    ----------
    eps : float or "matched"
        A fixed epsilon in [0, 1), or ``"matched"``: per cell, the teacher's mean probability
        mass off the true class at temperature ``T`` over the cell's training subset.
    T : float
        Temperature used for ``eps="matched"`` only.
    """

    def __init__(self, eps: float | str = "matched", T: float = 4.0) -> None:
        T = float(T)
        if not (T > 0 and math.isfinite(T)):
            raise SpecError(f"objective 'ls': T={T} must be a positive number")
        if eps == "matched":
            label = "ls" if T == 4.0 else f"ls-T{format_number(T)}"
            params: dict[str, Any] = {"eps": "matched", "T": T}
        else:
            try:
                eps = float(eps)
            except (TypeError, ValueError):
                raise SpecError(
                    f"objective 'ls': eps={eps!r} must be a number in [0, 1) or 'matched'"
                ) from None
            if not 0.0 <= eps < 1.0:
                raise SpecError(f"objective 'ls': eps={eps} must lie in [0, 1) or be 'matched'")
            label = f"ls-e{format_number(eps)}"
            params = {"eps": eps, "T": T}
        super().__init__(label=label, objective="ls", params=params)

    @property
    def matched(self) -> bool:
        """Whether epsilon is matched to the teacher per cell."""
        return self.params["eps"] == "matched"

    @property
    def temperature(self) -> float:
        """``T`` when epsilon is matched, else NaN."""
        return self.params["T"] if self.matched else NAN

    @property
    def smoothing(self) -> float:
        """The fixed epsilon, NaN when matched per cell."""
        return NAN if self.matched else float(self.params["eps"])

    def matched_epsilon(self, ctx: ObjectiveContext) -> float:
        """Mean teacher probability off the true class at temperature ``T`` on ``ctx.subset``."""
        import torch

        _check_ctx(ctx)
        logits = ctx.teacher_train_logits[ctx.subset].float()
        labels = ctx.train_labels[ctx.subset]
        probs = torch.softmax(logits / self.params["T"], dim=-1)
        true_mass = probs.gather(1, labels.unsqueeze(1)).squeeze(1)
        return float((1.0 - true_mass).double().mean())

    def targets(self, ctx: ObjectiveContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Smoothed one-hot targets ``(N, K)`` and ``{"effective_smoothing": eps}``."""
        import torch

        _check_ctx(ctx)
        eps = self.matched_epsilon(ctx) if self.matched else float(self.params["eps"])
        k = ctx.num_classes
        onehot = _one_hot(ctx.train_labels, k, torch.float32)
        off = eps / (k - 1) if k > 1 else 0.0
        targets = onehot * (1.0 - eps) + (1.0 - onehot) * off
        return targets.to(ctx.teacher_train_logits.device), {"effective_smoothing": eps}

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy with the smoothed targets, averaged over the batch."""
        return soft_cross_entropy(logits, targets)


class LogitMSEObjective(BaseObjective):
    """Logit matching: mean over classes and batch of ``(z - teacher_logits)**2``."""

    def __init__(self) -> None:
        super().__init__(label="kd-mse", objective="kd-mse", params={})

    def targets(self, ctx: ObjectiveContext) -> tuple[torch.Tensor, dict[str, float]]:
        """The teacher's logits ``(N, K)``; no scalars."""
        _check_ctx(ctx)
        return ctx.teacher_train_logits.float().clone(), {}

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """``mean((logits - targets)**2)`` over classes and batch."""
        return (logits - targets).pow(2).mean(-1).mean(-1)


# --------------------------------------------------------------------------- parsing
def _eps(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{text!r} is not in [0, 1)")
    return value


# --------------------------------------------------------------------------- registration
_T = Option(4.0, positive_float, "temperature > 0")
_ALPHA = Option(0.0, unit_float, "weight of the hard-label term, in [0, 1]")


@hookimpl
def kdtheory_register_objectives() -> list[ObjectiveSpec]:
    """Register the built-in objectives.

    Returns
    -------
    list of ObjectiveSpec
        ``label``, ``kd``, ``ls``, ``kd-shuffled`` and ``kd-mse``.
    """
    return [
        ObjectiveSpec(
            name="label",
            description="cross-entropy with the hard labels",
            make=LabelObjective,
        ),
        ObjectiveSpec(
            name="kd",
            description="knowledge distillation: alpha*CE + (1-alpha)*T^2*KL(teacher_T || "
            "student_T)",
            make=KDObjective,
            options={"T": _T, "alpha": _ALPHA},
        ),
        ObjectiveSpec(
            name="ls",
            description="label smoothing; eps=matched matches the teacher's off-class mass "
            "at temperature T on each cell's subset",
            make=LabelSmoothingObjective,
            options={
                "eps": Option("matched", _eps, "epsilon in [0, 1)", ("matched",)),
                "T": Option(4.0, positive_float, "temperature for eps=matched"),
            },
        ),
        ObjectiveSpec(
            name="kd-shuffled",
            description="KD with the teacher's wrong-class probabilities permuted per sample "
            "(true-class mass kept)",
            make=ShuffledKDObjective,
            options={"T": _T, "alpha": _ALPHA},
        ),
        ObjectiveSpec(
            name="kd-mse",
            description="logit matching: MSE between student and teacher logits",
            make=LogitMSEObjective,
        ),
    ]
