"""The Hypothesis base class, requirement checks, and running hypotheses on a run store.

A hypothesis plugin subclasses :class:`Hypothesis`, sets its class attributes and implements
:meth:`Hypothesis.test`. The toolkit calls it through :func:`run_test` (one hypothesis) or
:func:`run_all` (every registered hypothesis as a Holm family), which first check the store holds
what the hypothesis needs (:meth:`Hypothesis.check_requirements`) and validate its options.

Family-wise correction (``run_all``)
------------------------------------
Each verdict's key p-value (``Verdict.p_value``) enters one Holm family with every other
hypothesis that produced a p-value (unavailable verdicts, with NaN p-values, do not count). The
Holm-adjusted p-value is stored in ``Verdict.p_adjusted`` and the hypothesis re-decides through
:meth:`Hypothesis.decide`. The default rule: a verdict whose decision rests on its p-value (its
``deciding`` test's outcome; ``supported`` for a verdict without one) becomes ``inconclusive``
when the adjusted p-value exceeds alpha (the reason says so); other decisions stand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kdtheory.errors import MissingRequirementError, SpecError
from kdtheory.hypothesis.verdict import Verdict
from kdtheory.plugin.registry import did_you_mean
from kdtheory.report.format import p_text

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "Hypothesis",
    "describe_all",
    "get_hypothesis",
]


class Hypothesis:
    """Base class of hypothesis plugins: the minimal contract.

    Subclasses set the class attributes and implement :meth:`test`. Most hypotheses subclass
    :class:`kdtheory.hypothesis.template.PooledHypothesis` instead, which implements ``test``.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"dark-knowledge"``.
    claim : str
        One sentence: what the theory says.
    prediction : str
        What the data must show if the claim holds.
    required_objectives : tuple of str
        ``objective`` coordinate values the store must hold (e.g. ``("label", "kd")``).
    required_variables : tuple of str
        Variables the store must hold (e.g. ``("features", "teacher_features")``).
    run_hint : str
        The ``--methods`` value of a ``kdtheory run`` that produces what is required.
    options : dict of str to default value
        The keyword options :meth:`test` accepts, with their defaults. Any other option is an
        error naming the accepted ones; option values given as strings (``kdtheory test
        --option key=value``) are converted to the type of the default.
    """

    name: ClassVar[str] = ""
    claim: ClassVar[str] = ""
    prediction: ClassVar[str] = ""
    required_objectives: ClassVar[tuple[str, ...]] = ()
    required_variables: ClassVar[tuple[str, ...]] = ()
    run_hint: ClassVar[str] = "label,kd:T=4,ls:eps=matched,kd-shuffled:T=4"
    options: ClassVar[dict[str, Any]] = {}

    def test(self, store: Mapping[str, xr.Dataset], alpha: float = 0.05, **options: Any) -> Verdict:
        """Test the hypothesis on every experiment of ``store`` and return a Verdict."""
        raise NotImplementedError

    # ------------------------------------------------------------------ requirements

    def missing_requirements(self, store: Mapping[str, xr.Dataset]) -> dict[str, dict[str, Any]]:
        """What each experiment lacks: ``{experiment: {"objectives": [...], "variables": [...],
        "present_objectives": [...]}}``, only for experiments that lack something."""
        out: dict[str, dict[str, Any]] = {}
        for exp_id in store:
            ds = store[exp_id]
            present = _objectives(ds)
            objectives = [o for o in self.required_objectives if o not in present]
            variables = [v for v in self.required_variables if v not in ds.data_vars]
            if objectives or variables:
                out[str(exp_id)] = {
                    "objectives": objectives,
                    "variables": variables,
                    "present_objectives": sorted(present),
                }
        return out

    def check_requirements(self, store: Mapping[str, xr.Dataset]) -> None:
        """Raise :class:`~kdtheory.errors.MissingRequirementError` unless every experiment of
        ``store`` holds the required objectives (``objective`` coordinate along ``method``) and
        variables. The message names each experiment, what it lacks, and the ``kdtheory run
        --methods ...`` that produces it."""
        hint = f"`kdtheory run --methods {self.run_hint} ...`"
        if len(store) == 0:
            raise MissingRequirementError(
                f"hypothesis {self.name!r} cannot be tested: the run store holds no experiments. "
                f"Produce one with {hint}."
            )
        missing = self.missing_requirements(store)
        if not missing:
            return
        lines = [f"hypothesis {self.name!r} cannot be tested on this run store:"]
        for exp_id, what in missing.items():
            parts = []
            if what["objectives"]:
                have = ", ".join(what["present_objectives"]) or "none"
                parts.append(
                    f"no method with objective {_quoted(what['objectives'])} "
                    f"(objectives present: {have})"
                )
            if what["variables"]:
                parts.append(f"missing variable(s) {_quoted(what['variables'])}")
            lines.append(f"  - experiment {exp_id!r}: {'; '.join(parts)}")
        lines.append(
            f"It needs objectives {_quoted(self.required_objectives) or '(none)'} and variables "
            f"{_quoted(self.required_variables) or '(none)'}. Produce them with {hint}."
        )
        raise MissingRequirementError("\n".join(lines))

    # ------------------------------------------------------------------ options

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check option names against :attr:`options` and convert string values to the type
        of the default. Raises :class:`~kdtheory.errors.SpecError` naming the bad option."""
        out: dict[str, Any] = {}
        accepted = dict(self.options)
        for key, value in options.items():
            if key not in accepted:
                hint = did_you_mean(key, accepted, n=2)
                names = ", ".join(sorted(accepted)) if accepted else "none"
                raise SpecError(
                    f"hypothesis {self.name!r} has no option {key!r}.{hint} "
                    f"Accepted options: {names}."
                )
            out[key] = self.coerce_option(key, value)
        return out

    def coerce_option(self, key: str, value: Any) -> Any:
        """Convert a string ``value`` to the type of ``options[key]``'s default; other values
        pass through unchanged."""
        if not isinstance(value, str):
            return value
        default = self.options.get(key)
        try:
            return _coerce(value, default)
        except ValueError as exc:
            raise SpecError(
                f"option {key!r} of hypothesis {self.name!r}: cannot read {value!r} as "
                f"{_type_name(default)} ({exc})"
            ) from None

    # ------------------------------------------------------------------ family decisions

    def decide(self, verdict: Verdict, p_adjusted: float) -> tuple[str, str]:
        """Re-decide ``verdict`` after a Holm correction across a family.

        Returns ``(decision, reason)``. A verdict that names its deciding test
        (``verdict.deciding``) rests on its p-value whichever way it decided: a ``supported`` or
        ``rejected`` verdict whose Holm-adjusted p-value exceeds ``verdict.alpha`` becomes
        ``inconclusive``. Without a deciding test only ``supported`` is assumed to rest on the
        p-value and is downgraded; other decisions stand.
        """
        rests_on_p = {"supported"}
        if verdict.deciding is not None:
            rests_on_p = {verdict.deciding.outcome}
        if verdict.decision in rests_on_p and not (p_adjusted <= verdict.alpha):
            k = len(verdict.family) or "several"
            note = (
                f"Downgraded from {verdict.decision!r} after Holm correction across a family of "
                f"{k} hypotheses: adjusted {p_text(p_adjusted)} > alpha = {verdict.alpha:g}."
            )
            return "inconclusive", f"{verdict.reason} {note}".strip()
        return verdict.decision, verdict.reason

    # ------------------------------------------------------------------ description

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description for listings (``kdtheory list``)."""
        return {
            "name": self.name,
            "claim": self.claim,
            "prediction": self.prediction,
            "needs": {
                "objectives": list(self.required_objectives),
                "variables": list(self.required_variables),
            },
            "run_hint": self.run_hint,
            "options": {k: _json_default(v) for k, v in self.options.items()},
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
        }

    def unavailable(self, alpha: float, reason: str) -> Verdict:
        """An inconclusive verdict with NaN numbers (see :meth:`Verdict.unavailable`)."""
        return Verdict.unavailable(self.name, self.claim, self.prediction, alpha, reason)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# ---------------------------------------------------------------------- helpers


def _objectives(ds: xr.Dataset) -> set[str]:
    if "objective" not in ds.coords:
        return set()
    return {str(o) for o in ds.coords["objective"].values.ravel()}


def _quoted(items: Sequence[str]) -> str:
    return ", ".join(repr(str(i)) for i in items)


def _type_name(default: Any) -> str:
    if default is None:
        return "a JSON value or string"
    if isinstance(default, (list, tuple)):
        return "a comma-separated list"
    return type(default).__name__


def _json_default(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return repr(value)


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def _coerce(text: str, default: Any) -> Any:
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected true/false")
    if isinstance(default, int):
        return int(text.strip())
    if isinstance(default, float):
        return float(text.strip())
    if isinstance(default, str):
        return text
    if isinstance(default, (list, tuple)):
        elem = default[0] if len(default) else ""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        values = [_coerce(p, elem) for p in parts]
        return type(default)(values)
    if default is None:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


# ---------------------------------------------------------------------- module API


def get_hypothesis(name: str) -> Hypothesis:
    """The registered hypothesis called ``name`` (unknown names raise a "did you mean"
    :class:`~kdtheory.errors.UnknownNameError`)."""
    from kdtheory.plugin import manager as plugin_manager

    return plugin_manager.get_registries().hypotheses.get(name)


def describe_all() -> list[dict[str, Any]]:
    """:meth:`Hypothesis.describe` of every registered hypothesis, with its ``source``."""
    from kdtheory.plugin import manager as plugin_manager

    registry = plugin_manager.get_registries().hypotheses
    out = []
    for entry in registry.entries():
        info = entry.obj.describe()
        info["source"] = entry.source
        out.append(info)
    return out
