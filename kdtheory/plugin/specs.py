"""Spec objects that plugins register: datasets, architectures and objectives.

A spec string names a plugin and its options, ``name:key=value,key=value``; the same syntax is
used for ``--dataset``, ``--teacher``, ``--student`` and every entry of ``--methods``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kdtheory.errors import SpecError
from kdtheory.plugin.registry import did_you_mean

if TYPE_CHECKING:  # specs are read by ``kdtheory plugins``/``list``, which must not load torch
    import numpy as np
    import torch


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One accepted ``key=value`` option of a plugin.

    Parameters
    ----------
    default : Any
        Value used when the key is not given.
    parse : callable
        Turns the string from the spec into the value; raise ``ValueError`` on bad input.
    help : str
        One line shown in errors and ``kdtheory plugins``.
    choices : tuple of str, optional
        Literal strings accepted as they are (e.g. ``"matched"``) besides what ``parse`` accepts.
    """

    default: Any
    parse: Callable[[str], Any]
    help: str = ""
    choices: tuple[str, ...] = ()

    def convert(self, raw: Any) -> Any:
        if isinstance(raw, str):
            if raw in self.choices:
                return raw
            return self.parse(raw)
        return raw


def positive_float(text: str) -> float:
    """Parse a float > 0."""
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{text!r} is not a positive number")
    return value


def unit_float(text: str) -> float:
    """Parse a float in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text!r} is not in [0, 1]")
    return value


def positive_int(text: str) -> int:
    """Parse an int >= 1."""
    value = int(text)
    if value < 1:
        raise ValueError(f"{text!r} is not a positive integer")
    return value


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:key=value,key=value"`` into the name and the raw options.

    Raises
    ------
    SpecError
        If the text is empty or an option is not ``key=value``.
    """
    text = text.strip()
    if not text:
        raise SpecError("empty spec: expected 'name' or 'name:key=value,...'")
    name, _, rest = text.partition(":")
    name = name.strip()
    raw: dict[str, str] = {}
    if rest.strip():
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise SpecError(
                    f"in spec {text!r}: option {part.strip()!r} is not of the form key=value"
                )
            if key.strip() in raw:
                raise SpecError(f"in spec {text!r}: option {key.strip()!r} is given twice")
            raw[key.strip()] = value.strip()
    return name, raw


def resolve_options(
    kind: str, name: str, options: Mapping[str, Option], raw: Mapping[str, Any]
) -> dict[str, Any]:
    """Check ``raw`` against the accepted ``options`` and convert the values.

    Raises
    ------
    SpecError
        Naming the plugin, the bad key or value, and listing what is accepted.
    """
    accepted = ", ".join(
        f"{k} (default {o.default!r}{'; ' + o.help if o.help else ''})" for k, o in options.items()
    )
    values = {k: o.default for k, o in options.items()}
    for key, value in raw.items():
        if key not in options:
            raise SpecError(
                f"{kind} {name!r} has no option {key!r}.{did_you_mean(key, options, n=2)} "
                f"Accepted options: {accepted or '(none)'}."
            )
        try:
            values[key] = options[key].convert(value)
        except (ValueError, TypeError) as exc:
            opt = options[key]
            extra = f" or one of {', '.join(opt.choices)}" if opt.choices else ""
            raise SpecError(
                f"{kind} {name!r}: bad value {value!r} for option {key!r} ({exc}). "
                f"Expected {opt.help or 'a value like ' + repr(opt.default)}{extra}."
            ) from None
    return values


# --------------------------------------------------------------------------- datasets
@dataclass
class LoadedDataset:
    """A dataset with a fixed train/test split, standardised with train statistics.

    Attributes
    ----------
    x_train, x_test : numpy.ndarray
        float32 inputs of shape ``(n, *input_shape)``.
    y_train, y_test : numpy.ndarray
        int64 labels in ``0..num_classes-1``.
    num_classes : int
    name : str
        Registered dataset name.
    options : dict
        The resolved options the dataset was loaded with.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Parameters
    ----------
    name : str
    description : str
    load : callable
        ``load(**options) -> LoadedDataset``; must not use the network.
    options : mapping of str to Option
    """

    name: str
    description: str
    load: Callable[..., LoadedDataset]
    options: Mapping[str, Option] = field(default_factory=dict)


# --------------------------------------------------------------------------- architectures
@dataclass(frozen=True)
class ArchitectureSpec:
    """A registered architecture.

    ``build(input_shape, num_classes, **options)`` returns a ``torch.nn.Module`` with

    - ``forward(x, with_features=False)``: logits ``(B, K)``, or ``(logits, features)`` when
      ``with_features`` is true, features being the penultimate activations ``(B, F)``;
    - ``classifier``: the final ``torch.nn.Linear`` (``F -> K``);
    - no BatchNorm, no dropout and no in-place tricks, so that ``torch.func.vmap`` over stacked
      parameters (the batched sweep engine) computes the same as the plain module;
    - optionally ``grouped_forward(params, buffers, x, with_features=False)``: the forward of a
      group of ``C`` cells from parameters stacked along a leading cell dimension, ``x`` being
      ``(C, B, *input_shape)``. It must equal ``vmap(functional_call)`` of ``forward`` up to float
      rounding; the engine then trains with it instead of ``vmap`` (see
      :mod:`kdtheory.training.grouped`).
    """

    name: str
    description: str
    build: Callable[..., torch.nn.Module]
    options: Mapping[str, Option] = field(default_factory=dict)


# --------------------------------------------------------------------------- objectives
@dataclass
class ObjectiveContext:
    """What an objective may use to build a cell's per-sample targets.

    Attributes
    ----------
    teacher_train_logits : torch.Tensor
        ``(N, K)`` float32 teacher logits on the full training set.
    train_labels : torch.Tensor
        ``(N,)`` int64 labels of the full training set.
    subset : torch.Tensor
        int64 indices of the training samples this cell's student trains on.
    seed : int
        The cell's replicate seed (fix any randomness of the targets with it).
    num_classes : int
    """

    teacher_train_logits: torch.Tensor
    train_labels: torch.Tensor
    subset: torch.Tensor
    seed: int
    num_classes: int


class Objective(Protocol):
    """A configured training objective (one method of a sweep)."""

    #: the method label used as the ``method`` coordinate, e.g. ``"kd-T4"``
    label: str
    #: the ``objective`` coordinate, e.g. ``"kd"``
    objective: str
    #: the resolved options
    params: dict[str, Any]

    @property
    def temperature(self) -> float:
        """Temperature (NaN where unused)."""

    @property
    def alpha(self) -> float:
        """Weight of the hard-label term (NaN where unused)."""

    @property
    def smoothing(self) -> float:
        """Label-smoothing epsilon as configured (NaN where unused or matched per cell)."""

    def targets(self, ctx: ObjectiveContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-training-sample targets ``(N, K)`` for one cell, and scalars to record.

        The scalars (e.g. ``{"effective_smoothing": 0.12}``) are stored per cell.
        """

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Mean loss over the batch dimension.

        Parameters
        ----------
        logits : torch.Tensor
            ``(..., B, K)`` student logits; leading dims index cells trained together.
        labels : torch.Tensor
            ``(..., B)`` int64 labels.
        targets : torch.Tensor
            ``(..., B, K)`` the rows of :meth:`targets` for the batch's samples.

        Returns
        -------
        torch.Tensor
            ``(...)``: one loss per cell.
        """


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: ``make(**options) -> Objective``."""

    name: str
    description: str
    make: Callable[..., Objective]
    options: Mapping[str, Option] = field(default_factory=dict)


# --------------------------------------------------------------------------- figures
@dataclass(frozen=True)
class FigureSpec:
    """A registered figure: what ``kdtheory plot NAME`` draws.

    Parameters
    ----------
    name : str
        The name ``kdtheory plot`` takes, e.g. ``"accuracy"``.
    description : str
        One line shown by ``kdtheory plugins``.
    draw : callable
        ``draw(store, experiments=None) -> matplotlib.figure.Figure``: ``store`` maps experiment
        ids to ``xarray.Dataset`` (what :func:`kdtheory.open_runs` returns) and ``experiments``
        names the experiments to draw (None: all). Raise
        :class:`kdtheory.errors.MissingRequirementError` when the store lacks what the figure
        needs. Import heavy modules (matplotlib, xarray) inside ``draw``, so that registering the
        figure stays cheap.
    """

    name: str
    description: str
    draw: Callable[..., Any]
