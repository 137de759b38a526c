"""Numbers and test results in words, for reasons and model summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kdtheory.hypothesis.toolkit.effects import Effect
from kdtheory.report.format import fmt_ci as format_ci
from kdtheory.report.format import fmt_num, fmt_pct, p_text
from kdtheory.stats import (
    MetaResult,
    TestResult,
)


def fmt(x: float, digits: int = 3) -> str:
    """Compact number for reasons and summaries (``nan`` stays ``nan``):
    :func:`kdtheory.report.format.fmt_num` with 3 digits."""
    return fmt_num(x, digits, missing="nan")


def fmt_ci(lo: float, hi: float, digits: int = 3) -> str:
    """``"[lo, hi]"`` with :func:`fmt` (``"[nan, nan]"`` when missing)."""
    return format_ci(lo, hi, digits, missing=None)


#: ``"p = 0.0249"``: the one p formatting of every rendering
#: (:func:`kdtheory.report.format.p_text`).
fmt_p = p_text


#: ``0.95`` -> ``"95%"`` (:func:`kdtheory.report.format.fmt_pct`).
pct = fmt_pct


def result_text(
    r: TestResult | Effect, *, ci: str = "", t_df: bool = False, digits: int = 4
) -> str:
    """A test's numbers for a summary line: ``"0.1234, 95% CI [0.01, 0.2], p = 0.0312"``.

    Parameters
    ----------
    r : TestResult or Effect
    ci : str
        Words naming the interval (``"CI"``, or :func:`kdtheory.stats.ci_level_note`'s); empty:
        the interval follows the estimate after a space (``"0.1234 [0.01, 0.2], p = 0.0312"``).
    t_df : bool
        Add the t statistic and its degrees of freedom before the p-value.
    digits : int
        Significant digits of the estimate and the interval.
    """
    interval = fmt_ci(r.ci_low, r.ci_high, digits)
    text = f"{fmt(r.estimate, digits)}{f', {ci} ' if ci else ' '}{interval}"
    if t_df:
        text += f", t={fmt(r.statistic)}, df={fmt(r.df)}"
    return f"{text}, {fmt_p(r.p_value)}"


def fraction_label(fraction: float, seed: int | None = None) -> str:
    """``"f=0.25"``, or with a seed ``"f=0.25 seed 3"``: a fraction (and seed) in words."""
    s = f"f={fraction:.6g}"
    return s if seed is None else f"{s} seed {seed}"


def meta_summary(
    title: str, metas: Mapping[str, MetaResult], labels: Sequence[str], method: str = ""
) -> str:
    """Text block describing the pooled tests (one line per component)."""
    lines = [f"{title} — pooled across experiments ({', '.join(labels)}); {method}"]
    for key, m in metas.items():
        lines.append(
            f"  {key}: estimate {fmt(m.estimate, 4)} (se {fmt(m.se, 3)}), CI "
            f"{fmt_ci(m.ci_low, m.ci_high, 4)}, t={fmt(m.statistic, 3)}, {fmt_p(m.p_value)}, "
            f"{m.alternative}, tau2={fmt(m.tau2, 3)}, I2={fmt(m.i2, 3)}, k={m.k} [{m.method}]"
        )
    return "\n".join(lines)
