"""The one LaTeX document builder: a compilable ``article`` around a body, and its pieces.

``kdtheory test --format latex-document``, the report's ``tables/*-document.tex`` and anything
else that writes a whole document use :func:`latex_document`, so every document has the same
preamble and declares the non-ASCII characters it uses (pdflatex stops at an undeclared one).
Standard library only.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence

from kdtheory.report.format import latex_escape

__all__ = ["PREAMBLE", "latex_document", "table_float", "verbatim_ascii", "verbatim_block"]

#: T1 text fonts only with Latin Modern: without it, T1 falls back to bitmap EC fonts made by
#: mktexpk (slow, blurry) on a TeX Live without cm-super, while OT1 has vector CM fonts.
_FONT_SETUP = "\\IfFileExists{lmodern.sty}{\\usepackage[T1]{fontenc}\\usepackage{lmodern}}{}"

#: The preamble of every document kdtheory writes.
PREAMBLE: tuple[str, ...] = (
    "\\documentclass{article}",
    "\\usepackage[utf8]{inputenc}",
    _FONT_SETUP,
    "\\usepackage{booktabs}",
    "\\usepackage{tabularx}",
    "\\usepackage{graphicx}",
    "\\usepackage[margin=2cm]{geometry}",
)


def latex_document(body: Sequence[str], twocolumn: bool = False) -> str:
    """A complete, compilable ``article``: :data:`PREAMBLE`, a declaration for every character
    beyond Latin-1 the document uses, and ``body`` (lines) between ``\\begin{document}`` and
    ``\\end{document}``; with ``twocolumn`` set in two columns, as most papers are."""
    preamble = list(PREAMBLE)
    if twocolumn:
        preamble[0] = "\\documentclass[twocolumn]{article}"
    doc = "\n".join([*preamble, "\\begin{document}", "", *body, "\\end{document}", ""])
    return _unicode_safe(doc)


def table_float(
    tabular: str,
    caption: str = "",
    *,
    label: str = "",
    caption_above: bool = False,
    wide: bool = False,
    placement: str = "tbp",
) -> list[str]:
    """A ``table`` float holding ``tabular`` at its natural size (never scaled: a table too
    wide for the line is a ``tabularx`` or split by its maker).

    Parameters
    ----------
    tabular : str
        The table body (a ``tabular``, a ``tabularx``, or an ``\\input`` of one).
    caption : str
        Raw LaTeX; no ``\\caption`` when empty.
    label : str
        ``\\label`` of the float (none when empty).
    caption_above : bool
        The caption above the table (as papers usually place table captions), else below.
    wide : bool
        A ``table*``: the full text width in a two-column document (the same as ``table``
        in one column).
    placement : str
        The float's placement options.
    """
    env = "table*" if wide else "table"
    cap = [f"\\caption{{{caption}}}"] if caption else []
    lab = [f"\\label{{{label}}}"] if label else []
    lines = [f"\\begin{{{env}}}[{placement}]", "\\centering", "\\small"]
    if caption_above:
        lines += [*cap, *lab, tabular]
    else:
        lines += [tabular, *cap, *lab]
    lines.append(f"\\end{{{env}}}")
    return lines


def verbatim_block(title: str, text: str, size: str = "tiny", wrap: int | None = 118) -> list[str]:
    """A titled ``verbatim`` block (``\\paragraph`` heading) in font ``size``: ``text`` in
    ASCII (:func:`verbatim_ascii`), lines wrapped at ``wrap`` characters (None: as they are)."""
    body = verbatim_ascii(text.rstrip())
    if wrap is not None:
        lines: list[str] = []
        for line in body.splitlines():
            lines += textwrap.wrap(line, wrap, subsequent_indent="    ") or [""]
        body = "\n".join(lines)
    return [
        f"\\paragraph{{{latex_escape(title)}}}",
        f"{{\\{size}",
        "\\begin{verbatim}",
        body.replace("\\end{verbatim}", "\\end{verbatim }"),
        "\\end{verbatim}",
        "}",
    ]


#: Math for non-ASCII characters pdflatex's utf8 input does not know (declared per document).
_UNICODE_TEX: dict[str, str] = {
    "\u221d": "\\ensuremath{\\propto}",
    "\u2192": "\\ensuremath{\\rightarrow}",
    "\u2190": "\\ensuremath{\\leftarrow}",
    "\u2194": "\\ensuremath{\\leftrightarrow}",
    "\u21d2": "\\ensuremath{\\Rightarrow}",
    "\u2248": "\\ensuremath{\\approx}",
    "\u2260": "\\ensuremath{\\neq}",
    "\u2264": "\\ensuremath{\\leq}",
    "\u2265": "\\ensuremath{\\geq}",
    "\u2212": "\\ensuremath{-}",
    "\u00d7": "\\ensuremath{\\times}",
    "\u00b1": "\\ensuremath{\\pm}",
    "\u00b7": "\\ensuremath{\\cdot}",
    "\u221e": "\\ensuremath{\\infty}",
    "\u221a": "\\ensuremath{\\surd}",
    "\u2208": "\\ensuremath{\\in}",
    "\u2016": "\\ensuremath{\\|}",
    "\u2026": "\\ldots{}",
    "\u2013": "--",
    "\u2014": "---",
    "\u2018": "`",
    "\u2019": "'",
    "\u201c": "``",
    "\u201d": "''",
    "\u00b2": "\\ensuremath{^2}",
    "\u207a": "\\ensuremath{^+}",
    "\u207b": "\\ensuremath{^-}",
    "\u2082": "\\ensuremath{_2}",
    **{
        ch: f"\\ensuremath{{\\{name}}}"
        for ch, name in zip(
            "αβγδεζηθικλμνξπρστυφχψωΓΔΘΛΞΠΣΦΨΩ",
            "alpha beta gamma delta varepsilon zeta eta theta iota kappa lambda mu nu xi pi rho "
            "sigma tau upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi "
            "Omega".split(),
            strict=True,
        )
    },
}


def _unicode_safe(document: str) -> str:
    """Declare every character beyond Latin-1 that ``document`` uses, so pdflatex typesets it
    (known symbols as math, anything else as ``[U+XXXX]``) instead of stopping."""
    chars = sorted({c for c in document if ord(c) > 0xFF})
    if not chars:
        return document
    lines = []
    for c in chars:
        tex = _UNICODE_TEX.get(c, f"[U+{ord(c):04X}]")
        lines.append(f"\\DeclareUnicodeCharacter{{{ord(c):04X}}}{{{tex}}}")
    marker = "\\begin{document}"
    return document.replace(marker, "\n".join(lines) + "\n" + marker, 1)


_ASCII = {
    "\u2212": "-",
    "\u2013": "-",
    "\u2014": "--",
    "\u00d7": "x",
    "\u00b1": "+/-",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2248": "~",
    "\u2026": "...",
    "\u03ba": "kappa",
    "\u03b1": "alpha",
    "\u221d": "~",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
}


def verbatim_ascii(text: str) -> str:
    """Plain ASCII for verbatim blocks (verbatim cannot typeset other characters): known
    symbols spelt out, accents dropped, anything else ``?``."""
    out = []
    for ch in text:
        if ord(ch) < 128:
            out.append(ch)
            continue
        rep = _ASCII.get(ch)
        if rep is None:
            rep = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "?"
        out.append(rep)
    return "".join(out)
