"""The hypothesis template: a base class that owns ``test()``.

Most hypotheses about a run store have one shape: analyse each experiment on its own, pool the
experiments' tests, decide, say why, and build the :class:`~kdtheory.hypothesis.Verdict`.
:class:`PooledHypothesis` does every step but two, which a hypothesis supplies:

- :meth:`PooledHypothesis.analyse` — the tests on one experiment (an
  :class:`~kdtheory.hypothesis.toolkit.ExperimentResult`, or a string saying why the experiment is
  skipped);
- :meth:`PooledHypothesis.rule` — the decision from those tests (a
  :class:`~kdtheory.hypothesis.toolkit.Ruling`). The same rule decides each experiment and the
  pool, so the two cannot drift apart.

The steps of :meth:`PooledHypothesis.test`:

1. resolve and validate the options once (:class:`Options`: the hypothesis's options, ``alpha``
   and the pooling method), passed to every step;
2. :meth:`~PooledHypothesis.analyse` every experiment; an experiment it skips is listed in the
   verdict (:meth:`~PooledHypothesis.analyse` returns the reason, or raises
   :class:`~kdtheory.hypothesis.toolkit.SkipExperiment` with it), and when it skips every one the
   test raises :class:`~kdtheory.errors.MissingRequirementError`;
3. apply :meth:`~PooledHypothesis.rule` to each experiment's components: its decision, the
   deciding test and the numbers its row shows;
4. with several experiments (those :meth:`~PooledHypothesis.poolable`),
   :meth:`~PooledHypothesis.pool` their components (by default every component with its own
   alternative, :meth:`kdtheory.hypothesis.toolkit.Pooled.tests`) and apply the rule to the pooled
   tests: the pooled row and the verdict's headline; with one, that experiment's ruling;
5. :meth:`~PooledHypothesis.reason`: the decision in a sentence or two;
6. the verdict: rows, merged tables, model summaries, the deciding test and its numbers.

:meth:`PooledHypothesis.report_sections` gives the figures and tables ``kdtheory report`` shows
under the verdict. A hypothesis that wants full control subclasses
:class:`~kdtheory.hypothesis.Hypothesis` and writes ``test()`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kdtheory._blas import with_single_blas_thread
from kdtheory.errors import MissingRequirementError
from kdtheory.hypothesis.base import Hypothesis
from kdtheory.hypothesis.toolkit import (
    POOLING,
    Effect,
    ExperimentResult,
    Pooled,
    Ruling,
    SkipExperiment,
    effect_row,
    fmt,
    fmt_ci,
    fmt_p,
    resolve_options,
)
from kdtheory.hypothesis.verdict import EffectRow, Verdict
from kdtheory.stats import POOLING_METHODS, DeferredText

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Options", "Outcome", "PooledHypothesis"]


class Options(Mapping[str, Any]):
    """The resolved options of one test: the hypothesis's options, ``alpha`` and the pooling.

    A read-only mapping of option name to value (defaults overridden by the caller's values,
    checked by :func:`kdtheory.hypothesis.toolkit.resolve_options`).

    Attributes
    ----------
    alpha : float
        The significance level of the test.
    pooling : str
        How experiments are pooled (:data:`kdtheory.stats.POOLING_METHODS`): the ``pooling``
        option when the hypothesis has one, else ``"mixed"``.
    """

    def __init__(self, values: Mapping[str, Any], alpha: float) -> None:
        self._values = dict(values)
        self.alpha = float(alpha)
        self.pooling = str(self._values.get("pooling") or POOLING)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Options({self._values!r}, alpha={self.alpha!r})"


@dataclass
class Outcome:
    """What a test found across experiments, for :meth:`PooledHypothesis.reason`.

    Attributes
    ----------
    tests : mapping
        The tests the decision rests on: the pooled ones, or the one experiment's components.
    ruling : Ruling
        The rule applied to ``tests``.
    results : list of ExperimentResult
        Every experiment analysed (with its ``ruling`` and ``row``).
    decided_on : list of ExperimentResult
        The experiments the decision rests on (the poolable ones; several are pooled).
    pooled_row : EffectRow or None
        The pooled row (None with one experiment).
    pooled_summary : str or None
        The pooled tests in words.
    tables : dict
        Tables of the pooled tests (:meth:`PooledHypothesis.pooled_tables`).
    """

    tests: Mapping[str, Any]
    ruling: Ruling
    results: list[ExperimentResult]
    decided_on: list[ExperimentResult]
    pooled_row: EffectRow | None = None
    pooled_summary: str | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """How many experiments the decision rests on."""
        return len(self.decided_on)

    @property
    def pooled(self) -> bool:
        """Whether the decision rests on pooled tests."""
        return self.pooled_row is not None


class PooledHypothesis(Hypothesis):
    """A hypothesis tested on each experiment and decided by one rule on each and on the pool.

    Subclasses set the :class:`~kdtheory.hypothesis.Hypothesis` class attributes (``name``,
    ``claim``, ``prediction``, requirements, ``options``) plus :attr:`effect` and
    :attr:`alternative`, and implement :meth:`analyse` and :meth:`rule`. Everything else has a
    default worth overriding only when the hypothesis needs it.

    Attributes
    ----------
    effect : str
        What the headline estimate measures, with its unit.
    alternative : {"greater", "less", "two-sided"}
        The direction of the claim's key effect.
    model : str
        The test in words (:meth:`describe_model` returns it).
    pooled_lines : dict of str to (component, alternative)
        The pooled tests written into the pooled summary, by label; empty: every pooled
        :class:`~kdtheory.hypothesis.toolkit.Effect` with its alternative.
    heterogeneity : str
        The component whose between-experiment tau² and I² the pooled row reports; empty: that
        of the first of :attr:`pooled_lines` (the key effect), else the first component.
    """

    effect: ClassVar[str] = ""
    alternative: ClassVar[str] = "greater"
    model: ClassVar[str] = ""
    pooled_lines: ClassVar[Mapping[str, tuple[str, str]]] = {}
    heterogeneity: ClassVar[str] = ""

    # ------------------------------------------------------------------ what a subclass supplies

    def analyse(self, name: str, ds: xr.Dataset, opts: Options) -> ExperimentResult | str:
        """The tests on experiment ``name``, or a string saying why it is skipped (raising
        :class:`~kdtheory.hypothesis.toolkit.SkipExperiment` with the reason does the same)."""
        raise NotImplementedError(f"{type(self).__name__} must implement analyse()")

    def rule(self, tests: Mapping[str, Any], opts: Options) -> Ruling:
        """The decision from ``tests`` (one experiment's components, or the pooled tests)."""
        raise NotImplementedError(f"{type(self).__name__} must implement rule()")

    # ------------------------------------------------------------------ defaults

    def pool(self, pooled: Pooled, opts: Options) -> dict[str, Any]:
        """The tests across experiments that :meth:`rule` decides on.

        Default: every component pooled the way the experiments tested it
        (:meth:`~kdtheory.hypothesis.toolkit.Pooled.tests`). Override to pool one component
        under several alternatives, or components that are not effects.
        """
        return pooled.tests()

    def poolable(self, result: ExperimentResult) -> bool:
        """Whether ``result`` enters the pool (default: every analysed experiment)."""
        return True

    def pooled_tables(self, tests: Mapping[str, Any], opts: Options) -> dict[str, list[dict]]:
        """Tables of the pooled tests, added to ``Verdict.tables`` (default: none)."""
        return {}

    def describe_model(self, opts: Options) -> str:
        """The test in words, for ``Verdict.model`` (default: :attr:`model`)."""
        return self.model

    def reason(self, outcome: Outcome, opts: Options) -> str:
        """Why the decision: the deciding test's estimate, CI and p (override to say more)."""
        e, test = outcome.ruling.shown, outcome.ruling.deciding
        where = f", pooled over {outcome.k} experiments" if outcome.pooled else ""
        return (
            f"{test.name}: estimate {fmt(e.estimate)}{where} (CI {fmt_ci(e.ci_low, e.ci_high)}, "
            f"{fmt_p(e.p_value)}) at alpha {opts.alpha:g}: {outcome.ruling.decision}."
        )

    def report_sections(self, verdict: Verdict, store: Any, out_dir: Path) -> list[Any]:
        """Figures and tables ``kdtheory report`` shows under ``verdict`` (default: none).

        Returns :class:`kdtheory.report.document.ReportSection` objects; see
        :func:`kdtheory.hypothesis.sections.report_section`.
        """
        return []

    # ------------------------------------------------------------------ the template

    @with_single_blas_thread
    def test(self, store: Mapping[str, xr.Dataset], alpha: float = 0.05, **options: Any) -> Verdict:
        """Test the hypothesis on every experiment of ``store`` (see the module docstring)."""
        opts = Options(resolve_options(self, options), alpha)
        results, skipped = self._analyse_all(store, opts)
        outcome = self._decide_across(results, opts)
        return self._verdict(outcome, skipped, self.reason(outcome, opts), opts)

    def _analyse_all(
        self, store: Mapping[str, xr.Dataset], opts: Options
    ) -> tuple[list[ExperimentResult], list[dict[str, Any]]]:
        results: list[ExperimentResult] = []
        skipped: list[dict[str, Any]] = []
        for name, ds in store.items():
            try:
                out = self.analyse(str(name), ds, opts)
            except SkipExperiment as skip:
                out = str(skip)
            if isinstance(out, str):
                skipped.append({"experiment": str(name), "reason": out})
            else:
                results.append(self._ruled(out, opts))
        if not results:
            why = "; ".join(f"{s['experiment']}: {s['reason']}" for s in skipped)
            raise MissingRequirementError(
                f"hypothesis {self.name!r} cannot be tested on this store "
                f"({why or 'store is empty'}). Run e.g. `kdtheory run --methods {self.run_hint}`."
            )
        return results, skipped

    def _ruled(self, result: ExperimentResult, opts: Options) -> ExperimentResult:
        ruling = self.rule(result.components, opts)
        row = effect_row(
            label=result.name,
            effect=ruling.shown,
            decision=ruling.decision,
            extra={**result.settings, **ruling.numbers, **result.numbers},
            deciding=ruling.deciding,
        )
        summary = result.summary
        if callable(summary):  # written when first read (a detailed rendering, JSON)
            summary = DeferredText(partial(summary, ruling))
        return replace(result, ruling=ruling, row=row, summary=summary)

    def _decide_across(self, results: list[ExperimentResult], opts: Options) -> Outcome:
        usable = [r for r in results if self.poolable(r)]
        if len(usable) < 2:
            one = usable[0] if usable else results[0]
            assert one.ruling is not None
            return Outcome(one.components, one.ruling, results, usable)
        pooled = Pooled(usable, opts.alpha, opts.pooling)
        tests = self.pool(pooled, opts)
        ruling = self.rule(tests, opts)
        lines = self.pooled_lines or {
            f"{name} ({t.alternative})": (name, t.alternative)
            for name, t in tests.items()
            if isinstance(t, Effect)
        }
        return Outcome(
            tests=tests,
            ruling=ruling,
            results=results,
            decided_on=usable,
            pooled_row=pooled.row(ruling, self._heterogeneity(tests)),
            pooled_summary=pooled.summary(self.name, lines),
            tables=self.pooled_tables(tests, opts),
        )

    def _heterogeneity(self, tests: Mapping[str, Any]) -> str:
        """The component whose heterogeneity the pooled row reports (see :attr:`heterogeneity`)."""
        if self.heterogeneity:
            return self.heterogeneity
        first_line = next(iter(self.pooled_lines.values()), None)
        return first_line[0] if first_line else next(iter(tests), "")

    def _verdict(
        self,
        outcome: Outcome,
        skipped: Sequence[Mapping[str, Any]],
        reason: str,
        opts: Options,
    ) -> Verdict:
        tables: dict[str, list[dict[str, Any]]] = {}
        for r in outcome.results:
            for key, records in r.tables.items():
                tables.setdefault(key, []).extend(records)
        for key, records in outcome.tables.items():
            tables.setdefault(key, []).extend(records)
        if skipped:
            tables["skipped_experiments"] = [dict(s) for s in skipped]
            names = ", ".join(s["experiment"] for s in skipped)
            reason = f"{reason} Skipped experiment(s) lacking what the test needs: {names}."
        summaries = {
            r.name: r.summary if isinstance(r.summary, DeferredText) else str(r.summary)
            for r in outcome.results
        }
        if outcome.pooled_summary:
            summaries["pooled"] = outcome.pooled_summary
        top, ruling = outcome.ruling.shown, outcome.ruling
        return Verdict(
            hypothesis=self.name,
            claim=self.claim,
            prediction=self.prediction,
            decision=ruling.decision,  # type: ignore[arg-type]
            alpha=opts.alpha,
            effect=self.effect,
            estimate=float(top.estimate),
            ci=(float(top.ci_low), float(top.ci_high)),
            p_value=float(top.p_value),
            model=self.describe_model(opts),
            statistic=float(top.statistic),
            alternative=self.alternative,
            reason=reason,
            experiments=[r.row for r in outcome.results if r.row is not None],
            pooled=outcome.pooled_row,
            tables=tables,
            summaries=summaries,
            deciding=ruling.deciding,
            pooling=POOLING_METHODS.get(opts.pooling, opts.pooling) if outcome.pooled else "",
        )
