"""The one formatter set: numbers, p-values, CIs and percentages, and escaping per format.

Every rendering (verdict text/Markdown/LaTeX/CSV/HTML, the report, the hypothesis toolkit's
reasons) writes its numbers and escapes its text with these functions, so the same number reads
the same everywhere. Standard library only: importing this module is cheap.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

__all__ = [
    "csv_value",
    "CI_MARKS",
    "ci_header",
    "fmt_ci",
    "fmt_level",
    "fmt_num",
    "fmt_p",
    "fmt_pct",
    "html_escape",
    "interval_convention",
    "interval_level",
    "latex_escape",
    "md_cell",
    "md_inert",
    "p_relation",
    "p_text",
    "tex_ci",
    "tex_num",
    "tex_p",
    "to_float",
]

NAN = float("nan")


def to_float(value: Any) -> float:
    """``value`` as a float; NaN for None or anything that is not a number."""
    if value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


# --------------------------------------------------------------------------------------------
# numbers


def fmt_num(x: Any, digits: int = 4, missing: str = "n/a") -> str:
    """A number for display: ``digits`` significant digits, ``missing`` for NaN/None.

    Parameters
    ----------
    x : number or None
    digits : int
        Significant digits (``g`` format).
    missing : str
        Text for NaN, None or a non-number (``"n/a"`` in tables, ``"nan"`` in reasons).
    """
    v = to_float(x)
    if math.isnan(v):
        return missing
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def fmt_p(p: Any, decimals: int = 4, missing: str = "n/a") -> str:
    """A p-value for display: ``decimals`` decimals, ``<0.0001`` (for 4) below that.

    Parameters
    ----------
    p : number or None
    decimals : int
        Decimals shown; smaller p-values read ``<1e-decimals`` written out (``<0.001`` for 3).
    missing : str
        Text for NaN/None.
    """
    v = to_float(p)
    if math.isnan(v):
        return missing
    if v < 10.0**-decimals:
        return f"<{10.0**-decimals:.{decimals}f}"
    return f"{v:.{decimals}f}"


def p_relation(p: Any) -> str:
    """``"= 0.0249"``, ``"< 0.0001"`` or ``"= n/a"``: :func:`fmt_p` after ``p`` in a sentence."""
    s = fmt_p(p)
    return f"< {s[1:]}" if s.startswith("<") else f"= {s}"


def p_text(p: Any) -> str:
    """``"p = 0.0249"``, ``"p < 0.0001"`` or ``"p = n/a"``: :func:`fmt_p` in running text."""
    return f"p {p_relation(p)}"


def fmt_ci(lo: Any, hi: Any, digits: int = 4, missing: str | None = "n/a") -> str:
    """``"[lo, hi]"`` with :func:`fmt_num`; ``missing`` when both bounds are NaN.

    ``missing=None`` always writes the bracket (``"[nan, nan]"`` with ``fmt_num``'s ``nan``).
    """
    if missing is not None and math.isnan(to_float(lo)) and math.isnan(to_float(hi)):
        return missing
    word = "nan" if missing is None else missing
    return f"[{fmt_num(lo, digits, word)}, {fmt_num(hi, digits, word)}]"


def fmt_pct(level: Any, digits: int | None = None, decimals: int = 6) -> str:
    """A level as a percentage: ``0.95`` -> ``"95%"``.

    Parameters
    ----------
    level : float
        A fraction (0.9958...).
    digits : int, optional
        Significant digits (``0.995833`` -> ``"99.58%"`` with 4).
    decimals : int
        Without ``digits``: round the percentage to this many decimals (``g`` format).
    """
    value = 100.0 * float(level)
    if digits is not None:
        return f"{value:.{digits}g}%"
    return f"{round(value, decimals):g}%"


def fmt_level(level: Any) -> str:
    """A CI level as a percentage that never rounds up to 100%: ``0.9`` -> ``"90%"``,
    ``0.9875`` -> ``"98.75%"``, ``0.9958333`` -> ``"99.58%"``, ``0.99999`` -> ``"99.999%"``;
    ``""`` for NaN/None."""
    value = 100.0 * to_float(level)
    if math.isnan(value):
        return ""
    for digits in range(4, 10):
        text = f"{value:.{digits}g}"
        if float(text) < 100.0 or value >= 100.0:
            return f"{text}%"
    return f"{value!r}%"


def ci_header(level: Any, suffix: str = "") -> str:
    """The header of a CI column at ``level``: ``"90% CI"`` (``suffix`` appended, e.g. a
    column name); never a fixed level."""
    text = f"{fmt_level(level)} CI".strip()
    return f"{text} {suffix}".rstrip()


def interval_level(alpha: Any) -> float:
    """The level of every interval a report shows unless a row says otherwise: ``1 - 2*alpha``,
    two-sided, the interval that agrees with a one-sided test at ``alpha`` (90% at 0.05)."""
    return 1.0 - 2.0 * float(alpha)


#: Marks of rows whose CI is at another level than the report's (:func:`interval_convention`),
#: one per distinct level, in order.
CI_MARKS = ("†", "‡", "§", "¶", "‖")


def interval_convention(alpha: Any) -> str:
    """The interval convention of a report at ``alpha``, stated once at its top."""
    level = interval_level(alpha)
    return (
        f"Intervals: every confidence interval is two-sided at {fmt_level(level)} "
        f"(1 − 2α with α = {float(alpha):g}, the interval that agrees with a "
        "one-sided test at α); per-κ tables show t-intervals over seeds. A row marked "
        f"{CI_MARKS[0]} (or {CI_MARKS[1]}, …) shows the interval of its deciding test at "
        "the level that matches that test's (Holm-adjusted or two-sided) p, given in the "
        "table's note."
    )


def csv_value(value: Any) -> str:
    """One CSV cell: empty for None/NaN, ``repr`` of floats (full precision), ``true``/``false``
    for booleans, JSON for lists and dicts, ``str`` otherwise; numpy scalars as their Python
    value."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


# --------------------------------------------------------------------------------------------
# LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # common non-ASCII characters that pdflatex's utf8 input cannot typeset by default
    # TeX ligatures that would change the visible text: "--" (en dash), "``" and "''" (curly
    # quotes), ",," (T1 low quotes), "?`" and "!`" (inverted marks); an empty group breaks them
    "--": "-{}",
    "''": "'{}",
    ",,": ",{}",
    "`": r"\textasciigrave{}",
    '"': r"\texttt{\char34}",  # straight quote (OT1 has none in text fonts)
    "\u2212": "$-$",
    "\u00d7": r"$\times$",
    "\u2264": r"$\leq$",
    "\u2265": r"$\geq$",
    "\u2248": r"$\approx$",
    "\u221a": r"$\surd$",
    "\u2013": "--",
    "\u2014": "---",
    "\u2026": r"\ldots{}",
    "\u00b2": r"$^2$",
    "\u00b1": r"$\pm$",
    "\u221d": r"$\propto$",
    "\u2016": r"$\|$",
    "\u03b1": r"$\alpha$",
    "\u03b2": r"$\beta$",
    "\u03b5": r"$\varepsilon$",
    "\u03ba": r"$\kappa$",
    "\u03bb": r"$\lambda$",
    "\u03bc": r"$\mu$",
    "\u03c3": r"$\sigma$",
    "\u03c4": r"$\tau$",
    "\u2192": r"$\rightarrow$",
    "\u00b7": r"$\cdot$",
    "\u2260": r"$\neq$",
    "\u2020": r"\dag{}",
    "\u2021": r"\ddag{}",
    "\u00a7": r"\S{}",
    "\u00b6": r"\P{}",
    "\u2018": "`",
    "\u2019": "'",
    "\u201c": "``",
    "\u201d": "''",
    **{
        ch: f"${name}$"
        for ch, name in zip(
            "\u03b3\u03b4\u03b6\u03b7\u03b8\u03b9\u03bd\u03be\u03c0\u03c1\u03c5\u03c6\u03c7\u03c8\u03c9\u0393\u0394\u0398\u039b\u039e\u03a0\u03a3\u03a6\u03a8\u03a9",
            r"\gamma \delta \zeta \eta \theta \iota \nu \xi \pi \rho \upsilon \phi \chi \psi "
            r"\omega \Gamma \Delta \Theta \Lambda \Xi \Pi \Sigma \Phi \Psi \Omega".split(),
            strict=True,
        )
    },
}
#: a ligature pair matches its first character only when the second follows, so "---" is
#: broken at every pair ("-{}-{}-")
_LIGATURES = {"--": "-", "''": "'", ",,": ","}
_LATEX_RE = re.compile(
    "|".join(
        re.escape(k[0]) + f"(?={re.escape(k[1])})" if k in _LIGATURES else re.escape(k)
        for k in _LATEX_SPECIAL
    )
)
_LIGATURE_OF = {first: pair for pair, first in _LIGATURES.items()}


def latex_escape(text: Any) -> str:
    """``text`` as LaTeX that typesets to the same visible text.

    Escapes the special characters ``_ % & $ # { } ~ ^ \\ < > | " ` ``, breaks the ligatures
    that would change the text (``--`` would become an en dash, so it is written ``-{}-``;
    ``''`` and ``,,`` likewise) and writes common Unicode symbols (``→ · × ≤ κ …``) as LaTeX.
    Other characters beyond Latin-1 are declared by :func:`kdtheory.report.latex.latex_document`.
    """

    def sub(m: re.Match[str]) -> str:
        found = m.group(0)
        return _LATEX_SPECIAL[_LIGATURE_OF.get(found, found)]

    return _LATEX_RE.sub(sub, str(text))


def tex_num(x: Any, digits: int = 4) -> str:
    """:func:`fmt_num` for LaTeX: ``--`` when missing, a math minus."""
    s = fmt_num(x, digits)
    if s == "n/a":
        return "--"
    return "$-$" + s[1:] if s.startswith("-") else s


def tex_p(p: Any, decimals: int = 4) -> str:
    """:func:`fmt_p` for LaTeX: ``--`` when missing, ``$<$0.0001`` when tiny."""
    s = fmt_p(p, decimals)
    if s == "n/a":
        return "--"
    return "$<$" + s[1:] if s.startswith("<") else s


def tex_ci(lo: Any, hi: Any) -> str:
    """:func:`fmt_ci` for LaTeX: ``[lo, hi]`` of :func:`tex_num`, ``--`` when both missing."""
    if math.isnan(to_float(lo)) and math.isnan(to_float(hi)):
        return "--"
    return f"[{tex_num(lo)}, {tex_num(hi)}]"


# --------------------------------------------------------------------------------------------
# Markdown and HTML

#: what makes Markdown text inert: raw HTML (``<`` before a letter, ``/``, ``!`` or ``?``, which
#: also starts autolinks) and inline links or images (``](``); code spans are left as they are
_MD_ACTIVE = re.compile(r"(?P<code>(`+)[\s\S]*?(?<!`)\2(?!`))|<(?=[A-Za-z/!?])|\]\(")


def md_inert(text: str) -> str:
    """``text`` with raw HTML and links escaped, so Markdown shows it as written.

    Store attributes (experiment ids, dataset specs, method names) reach Markdown reports;
    like ``index.html``, which escapes them, ``report.md`` must not pass HTML through.
    ``<`` becomes ``&lt;`` where it could open a tag, and ``](`` becomes ``\\](``; inside
    code spans nothing changes (HTML is inert there).
    """

    def sub(m: re.Match[str]) -> str:
        if m.group("code"):
            return m.group(0)
        return "&lt;" if m.group(0) == "<" else "\\]("

    return _MD_ACTIVE.sub(sub, text)


def md_cell(text: Any) -> str:
    """One Markdown table cell or inline text: one line, ``\\`` and ``|`` escaped, HTML and
    links inert."""
    s = " ".join(str(text).split())
    return md_inert(s.replace("\\", "\\\\").replace("|", "\\|"))


def html_escape(text: Any) -> str:
    """``text`` escaped for HTML (quotes too, so it is safe in attributes)."""
    return html.escape(str(text), quote=True)
