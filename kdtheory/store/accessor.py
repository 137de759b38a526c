"""``ds.kd``: the run-store vocabulary on every experiment ``xarray.Dataset``.

Importing this module (or :mod:`kdtheory.store.runs`, which every store opener imports) registers
the accessor, so each experiment that :func:`kdtheory.open_runs` returns, and each synthetic one
from :mod:`kdtheory.testing.synthetic`, has it::

    ds = kdtheory.open_runs("data/")[name]
    ds.kd.arms                                  # ['label', 'kd-T4', 'ls', 'kd-shuffled-T4']
    kd = ds.kd.pick("kd", temperature=4)        # 'kd-T4'
    acc = ds.kd.accuracy()                      # (arm, fraction, seed), NaN: untrained cell
    gain = ds.kd.paired(acc, kd, "label")       # (fraction, seed), paired by seed
    gap = ds.kd.agreement(kd, "train", "trained") - ds.kd.agreement(kd)

Every number comes from :mod:`kdtheory.metrics`; the accessor only chooses the arrays (the
``arm``, the split, the ``in_train`` mask) and puts the cell coordinates back on the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from kdtheory.store.arrays import bare as _bare
from kdtheory.store.schema import ARM, ARM_COORDS, SCHEMA_V1, V1_ARM

__all__ = ["KdAccessor", "SPLITS", "SUBSETS"]

#: values of ``split``: which samples the logits are of
SPLITS = ("test", "train")
#: values of ``subset`` (train split only): the samples each cell trained on, or the others
SUBSETS = ("trained", "unseen")


@xr.register_dataset_accessor("kd")
class KdAccessor:
    """Run-store vocabulary of one experiment (schema v2): arms, kappa, accuracy, agreement.

    Reached as ``ds.kd`` on any experiment dataset. Arms are the trained students' methods
    (labels such as ``label`` or ``kd-T4``) along the ``arm`` dim; a per-cell result has dims
    ``(arm, fraction, seed)``, or ``(fraction, seed)`` when one arm is asked for, in the
    dataset's order, with NaN for cells that were not trained.

    Parameters
    ----------
    ds : xarray.Dataset
        One experiment of a run store.
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds
        # results by (method, arguments), with the variables they were computed from: the
        # hypotheses and figures of one run ask for the same arms' metrics (xarray keeps one
        # accessor per Dataset object); a variable replaced since (ds["test_logits"] = ...)
        # misses (see _memoised)
        self._memo: dict[tuple, tuple[tuple[Any, ...], Any]] = {}

    # ----------------------------------------------------------------------------- arms
    def _require_v2(self) -> None:
        if V1_ARM in self._ds.dims and ARM not in self._ds.dims:
            raise ValueError(
                f"this dataset has the schema-v1 dim {V1_ARM!r} ({SCHEMA_V1}); ds.kd needs "
                f"{ARM!r}. Open the store with kdtheory.open_runs, or upgrade it with "
                "kdtheory.store.schema.upgrade(ds)"
            )

    @property
    def arms(self) -> list[str]:
        """The arm labels in store order (``[]`` without an ``arm`` coordinate).

        Returns
        -------
        list of str
        """
        self._require_v2()
        if ARM not in self._ds.coords:
            return []
        return [str(a) for a in np.atleast_1d(self._ds[ARM].values)]

    def coord(self, name: str, arm: str) -> Any:
        """Value of the coordinate ``name`` along ``arm`` (e.g. ``temperature``) for one arm.

        Parameters
        ----------
        name : str
            A coordinate along ``arm``: ``objective``, ``temperature``, ``alpha``, ``smoothing``.
        arm : str
            An arm label.

        Returns
        -------
        Any
            The value (a numpy scalar), or None when the dataset has no such coordinate.

        Raises
        ------
        KeyError
            If ``arm`` is not an arm of the experiment.
        """
        arms = self.arms
        if arm not in arms:
            raise KeyError(f"no arm {arm!r} in this experiment; arms: {', '.join(arms) or 'none'}")
        if name not in self._ds.coords:
            return None
        return np.atleast_1d(np.asarray(self._ds[name].values))[arms.index(arm)]

    def objective_of(self, arm: str) -> str | None:
        """The ``objective`` coordinate of ``arm`` (``label``, ``kd``, ``ls``, ...).

        Parameters
        ----------
        arm : str
            An arm label.

        Returns
        -------
        str or None
            None when the dataset has no ``objective`` coordinate (it is never guessed from the
            label).

        Raises
        ------
        KeyError
            If ``arm`` is not an arm of the experiment.
        """
        value = self.coord("objective", arm)
        return None if value is None else str(value)

    def with_objective(self, objective: str) -> list[str]:
        """The arms whose ``objective`` coordinate equals ``objective``, in store order.

        Parameters
        ----------
        objective : str
            E.g. ``"kd"``.

        Returns
        -------
        list of str
            Empty when there is none or the dataset has no ``objective`` coordinate.
        """
        arms = self.arms
        if "objective" not in self._ds.coords:
            return []
        objectives = [str(o) for o in np.atleast_1d(self._ds["objective"].values)]
        return [a for a, o in zip(arms, objectives, strict=True) if o == objective]

    def pick(
        self, objective: str, requested: str | None = None, temperature: float | None = None
    ) -> str | None:
        """The arm to use for ``objective``.

        Parameters
        ----------
        objective : str
            The objective the arm must have.
        requested : str, optional
            An arm asked for by name (a hypothesis option such as ``kd_method``): returned when
            it is an arm of ``objective``, else None.
        temperature : float, optional
            Without ``requested``, prefer the first arm of this temperature.

        Returns
        -------
        str or None
            ``requested`` (if of that objective), else the first arm of ``temperature``, else
            the first arm of ``objective``; None when there is none.
        """
        candidates = self.with_objective(objective)
        if requested:
            return requested if requested in candidates else None
        if not candidates:
            return None
        if temperature is not None and "temperature" in self._ds.coords:
            for arm in candidates:
                t = self.coord("temperature", arm)
                if t is not None and np.isfinite(t) and math.isclose(float(t), temperature):
                    return arm
        return candidates[0]

    def select(self, objective: str | Sequence[str] | None = None, **arm_coords: Any) -> xr.Dataset:
        """The experiment restricted to the arms whose coordinates match.

        Parameters
        ----------
        objective : str or sequence of str, optional
            Keep arms of this objective (of any of these).
        **arm_coords
            Other coordinates along ``arm`` (``temperature``, ``alpha``, ``smoothing``) and their
            wanted value, or a list of values (any of them). Floats match within
            ``math.isclose`` tolerance; NaN matches NaN (unused). ``None`` means any value.

        Returns
        -------
        xarray.Dataset
            The subset along ``arm`` (possibly empty), e.g.
            ``ds.kd.select(objective="kd", temperature=4)``.

        Raises
        ------
        KeyError
            For a name that is not a coordinate along ``arm``.
        """
        self._require_v2()
        wanted = {"objective": objective, **arm_coords}
        keep = np.ones(len(self.arms), dtype=bool)
        for name, value in wanted.items():
            if value is None:
                continue
            coord = self._ds.coords.get(name)
            if coord is None or coord.dims != (ARM,):
                along = [n for n, c in self._ds.coords.items() if c.dims == (ARM,) and n != ARM]
                raise KeyError(
                    f"{name!r} is not a coordinate along {ARM!r}; these are: "
                    f"{', '.join(along) or 'none'} (schema: {', '.join(ARM_COORDS)})"
                )
            keep &= _matches(np.asarray(coord.values), value)
        return self._ds.isel({ARM: np.flatnonzero(keep)})

    def describe_arms(self) -> str:
        """``"label (label), kd-T4 (kd)"``: the arms with their objectives, or ``"none"``.

        Returns
        -------
        str
        """
        arms = self.arms
        if "objective" not in self._ds.coords:
            return ", ".join(arms) or "none"
        return ", ".join(f"{a} ({self.objective_of(a)})" for a in arms) or "none"

    # ---------------------------------------------------------------------------- kappa
    @property
    def kappa(self) -> xr.DataArray:
        """Number of student training samples per fraction (the ``n_train`` coordinate).

        Returns
        -------
        xarray.DataArray
            Integer, dim ``fraction``.
        """
        return self._ds["n_train"]

    @property
    def log_kappa(self) -> xr.DataArray:
        """Natural log of :attr:`kappa`.

        Returns
        -------
        xarray.DataArray
            Float, dim ``fraction``.
        """
        kappa = self.kappa
        return kappa.copy(data=np.log(np.asarray(kappa.values, dtype=float))).rename("log_kappa")

    # -------------------------------------------------------------------------- masks
    @property
    def trained_mask(self) -> xr.DataArray:
        """True where a cell's student trained on a training sample (``in_train``).

        Returns
        -------
        xarray.DataArray
            Bool, dims ``(fraction, seed, train_sample)``.
        """
        return self._ds["in_train"].astype(bool)

    @property
    def unseen_mask(self) -> xr.DataArray:
        """True where a cell's student did not see a training sample (``~in_train``).

        Returns
        -------
        xarray.DataArray
            Bool, dims ``(fraction, seed, train_sample)``.
        """
        return ~self.trained_mask

    # ------------------------------------------------------------------------ metrics
    def accuracy(
        self, arm: str | Sequence[str] | None = None, split: str = "test", subset: str | None = None
    ) -> xr.DataArray:
        """Top-1 accuracy of every cell (:func:`kdtheory.metrics.accuracy`).

        Parameters
        ----------
        arm : str or sequence of str, optional
            One arm (the ``arm`` dim is dropped), several, or None for all.
        split : {"test", "train"}
            The samples: the test set, or the full training set.
        subset : {"trained", "unseen"}, optional
            Train split only: the samples each cell trained on (``in_train``), or the others.

        Returns
        -------
        xarray.DataArray
            Accuracy in [0, 1], dims ``(arm, fraction, seed)`` (``(fraction, seed)`` for one
            arm) with the dataset's coordinates; NaN for untrained cells.
        """
        from kdtheory.metrics import accuracy

        def compute() -> xr.DataArray:
            labels = _bare(self._ds[f"{_split(split)}_labels"])

            def measure(logits: xr.DataArray, sample_dim: str, mask: xr.DataArray | None) -> Any:
                return accuracy(logits, labels, sample_dim, mask)

            return self._per_cell(measure, arm, split, subset, "accuracy")

        key = ("accuracy", arm if arm is None or isinstance(arm, str) else tuple(arm), split)
        sources = [f"{_split(split)}_logits", f"{_split(split)}_labels"]
        return self._memoised((*key, subset), sources, compute)

    def collapse_table(self) -> xr.Dataset:
        """:func:`kdtheory.metrics.collapse_table` of this experiment (remembered, like
        :meth:`accuracy`: the NC1/CKA figure and the all-metrics figure share it)."""
        from kdtheory.metrics import collapse_table

        sources = [
            "features",
            "classifier_weight",
            "classifier_bias",
            "teacher_features",
            "train_labels",
            "in_train",
        ]
        return self._memoised(("collapse_table",), sources, lambda: collapse_table(self._ds))

    def agreement(
        self, arm: str | Sequence[str] | None = None, split: str = "test", subset: str | None = None
    ) -> xr.DataArray:
        """Share of samples whose top-1 class matches the teacher's, per cell.

        This is what :func:`kdtheory.metrics.fidelity` computes (the mean of the per-sample
        :func:`kdtheory.metrics.agreement`) and what the paper calls top-1 *fidelity*.

        Parameters
        ----------
        arm, split, subset
            As in :meth:`accuracy`.

        Returns
        -------
        xarray.DataArray
            Agreement in [0, 1], dims ``(arm, fraction, seed)`` (``(fraction, seed)`` for one
            arm); NaN for untrained cells.
        """
        from kdtheory.metrics import fidelity

        teacher = _bare(self._ds[f"teacher_{_split(split)}_logits"])

        def measure(logits: xr.DataArray, sample_dim: str, mask: xr.DataArray | None) -> Any:
            return fidelity(logits, teacher, sample_dim, mask)

        return self._per_cell(measure, arm, split, subset, "agreement")

    #: the same measure under the paper's name (top-1 fidelity)
    fidelity = agreement

    def teacher_kl(
        self,
        arm: str | Sequence[str] | None = None,
        split: str = "test",
        subset: str | None = None,
        temperature: float = 1.0,
    ) -> xr.DataArray:
        """Mean KL(teacher ‖ student) of the tempered softmaxes per cell, in nats.

        A probability-based closeness to the teacher (:func:`kdtheory.metrics.kl_divergence`),
        where :meth:`agreement` counts top-1 matches only.

        Parameters
        ----------
        arm, split, subset
            As in :meth:`accuracy`.
        temperature : float, default 1.0
            Applied to both distributions.

        Returns
        -------
        xarray.DataArray
            Dims ``(arm, fraction, seed)`` (``(fraction, seed)`` for one arm); NaN for
            untrained cells.
        """
        from kdtheory.metrics import kl_divergence

        teacher = _bare(self._ds[f"teacher_{_split(split)}_logits"])

        def measure(logits: xr.DataArray, sample_dim: str, mask: xr.DataArray | None) -> Any:
            return kl_divergence(teacher, logits, sample_dim, mask, temperature)

        return self._per_cell(measure, arm, split, subset, "teacher_kl")

    @property
    def title(self) -> str:
        """The experiment's display label (``"MNIST-5k · CNN 32→8"``): its ``title`` attribute,
        else one derived from the dataset, teacher and student specs
        (:func:`kdtheory.store.titles.experiment_title`).

        Returns
        -------
        str
        """
        from kdtheory.store.titles import experiment_title

        return experiment_title(self._ds.attrs)

    def teacher_accuracy(self, split: str = "test") -> float:
        """Top-1 accuracy of the teacher on ``split`` (NaN without teacher logits).

        Parameters
        ----------
        split : {"test", "train"}
            The test set or the full training set.

        Returns
        -------
        float
            In [0, 1].
        """
        from kdtheory.metrics import accuracy

        split = _split(split)
        logits = self._ds.get(f"teacher_{split}_logits")
        if logits is None:
            return float("nan")
        labels = _bare(self._ds[f"{split}_labels"])
        return float(accuracy(_bare(logits), labels, f"{split}_sample").values)

    def paired(self, values: xr.DataArray, a: str, b: str) -> xr.DataArray:
        """Seed-paired difference ``a − b`` of a per-cell quantity.

        Parameters
        ----------
        values : xarray.DataArray
            A per-cell quantity with an ``arm`` dim, e.g. :meth:`accuracy`.
        a, b : str
            Arm labels.

        Returns
        -------
        xarray.DataArray
            Dims ``(fraction, seed)`` (any other dims of ``values`` follow): each seed's value
            under ``a`` minus the same seed's under ``b``, at each fraction; NaN where either
            cell is untrained.

        Raises
        ------
        KeyError
            If ``a`` or ``b`` is not along the ``arm`` dim of ``values``.
        """
        if ARM not in values.dims:
            raise ValueError(f"paired needs values with an {ARM!r} dim, got {tuple(values.dims)}")
        have = [str(x) for x in values[ARM].values]
        for arm in (a, b):
            if arm not in have:
                raise KeyError(f"no arm {arm!r} in the values; arms: {', '.join(have)}")
        along = [n for n, c in values.coords.items() if ARM in c.dims]
        left = values.sel({ARM: a}).drop_vars(along, errors="ignore")
        right = values.sel({ARM: b}).drop_vars(along, errors="ignore")
        out = left - right
        first = [d for d in ("fraction", "seed") if d in out.dims]
        return out.transpose(*first, ...)

    # ---------------------------------------------------------------------- internals
    def _memoised(self, key: tuple, sources: Sequence[str], compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered under ``key`` while the variables ``sources`` are the very
        objects it was computed from; a copy is returned, so callers cannot change the memo."""
        inputs = tuple(self._ds.variables.get(name) for name in sources)
        hit = self._memo.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], inputs, strict=True)):
            return hit[1].copy()
        out = compute()
        self._memo[key] = (inputs, out.copy())
        return out

    def _per_cell(
        self,
        measure: Callable[[xr.DataArray, str, xr.DataArray | None], xr.DataArray],
        arm: str | Sequence[str] | None,
        split: str,
        subset: str | None,
        name: str,
    ) -> xr.DataArray:
        """Run ``measure(logits, sample_dim, mask)`` on bare arrays, then restore coordinates."""
        self._require_v2()
        split = _split(split)
        logits = self._ds[f"{split}_logits"]
        if arm is not None:
            logits = logits.sel({ARM: arm if isinstance(arm, str) else list(arm)})
        mask = None
        if subset is not None:
            if subset not in SUBSETS:
                raise ValueError(f"subset must be one of {SUBSETS} or None, got {subset!r}")
            if split != "train":
                raise ValueError(
                    f"subset={subset!r} needs split='train' (test samples are all unseen)"
                )
            mask = _bare(self.trained_mask if subset == "trained" else self.unseen_mask)
        out = measure(_bare(logits), f"{split}_sample", mask)
        dims = [d for d in (ARM, "fraction", "seed") if d in out.dims]
        out = out.transpose(*dims, ...)
        coords = {
            n: c
            for n, c in logits.coords.items()
            if set(c.dims) <= set(out.dims) and (c.dims or n == ARM)
        }
        return xr.DataArray(out.values, dims=out.dims, coords=coords, name=name)


def _split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _matches(values: np.ndarray, wanted: Any) -> np.ndarray:
    """Which entries of a coordinate equal ``wanted`` (a value or a list of values)."""
    options = list(wanted) if isinstance(wanted, (list, tuple, set, np.ndarray)) else [wanted]
    hit = np.zeros(values.shape, dtype=bool)
    for option in options:
        if isinstance(option, (int, float, np.number)) and values.dtype.kind == "f":
            target = float(option)
            if math.isnan(target):
                hit |= np.isnan(values)
            else:
                hit |= np.isclose(values, target, rtol=1e-9, atol=0.0)
        else:
            hit |= np.asarray([str(v) == str(option) for v in values], dtype=bool)
    return hit
