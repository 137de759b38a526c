"""The report's ``index.html``: one self-contained page, figures inline, no network request."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtheory.report.format import html_escape as _h
from kdtheory.report.format import interval_convention
from kdtheory.report.page_parts import (
    convergence_lines,
    experiments_table,
    provenance_rows,
    read_text,
    summary_table,
)
from kdtheory.report.sections import ReportSection, figure_groups, inline_path, slug
from kdtheory.store.titles import experiment_title

if TYPE_CHECKING:
    from kdtheory.hypothesis.verdict import Verdict

__all__ = ["html_page"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.7rem;border-bottom:2px solid #1f2328;padding-bottom:.3rem}
h2{font-size:1.35rem;margin-top:2.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
h3,h4{margin-top:1.5rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
table.booktabs{border-top:2px solid #1f2328;border-bottom:2px solid #1f2328}
table.booktabs thead{border-bottom:1px solid #1f2328}
table.booktabs td,table.booktabs th{padding:2px 10px;text-align:right}
table.booktabs td.l{overflow-wrap:anywhere}
table.booktabs td:not(.l):not(:first-child){white-space:nowrap}
table.booktabs td:first-child,table.booktabs th:first-child,
table.booktabs td.l,table.booktabs th.l{text-align:left}
tr.key td{font-weight:600}
figure{margin:1rem 0}
figure img,figure svg{width:min(100%,36rem);height:auto;border:1px solid #eaeef2}
figure.wide img,figure.wide svg{width:100%}
figcaption{font-size:.88rem;color:#444;max-width:36rem}
figure.wide figcaption{max-width:none}
.notice{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .8rem;border-radius:4px}
.supported{color:#1a7f37}.rejected{color:#cf222e}.inconclusive{color:#9a6700}
.nottested{color:#6e7781}
.supported,.rejected,.inconclusive,.nottested{white-space:nowrap}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.8rem}
code{font-size:.88em}
details{margin:.5rem 0}
.files a{margin-right:.6rem}
.mdtable table{border-top:2px solid #1f2328;border-bottom:2px solid #1f2328}
.mdtable thead{border-bottom:1px solid #1f2328}
.mdtable td,.mdtable th{padding:2px 10px}
.mdtable td:not(:first-child){white-space:nowrap}
.mdtable p{font-size:.88rem;color:#444;max-width:44rem}
"""


def _markdown_html(text: str) -> str:
    """Markdown to HTML with raw HTML, images and links disabled (nothing external)."""
    if not text:
        return ""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - markdown-it-py comes with rich
        return "<p>" + _h(text).replace("\n\n", "</p><p>") + "</p>"
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.disable(["image", "link", "autolink"])
    return md.render(text)


def _html_figure(root: Path, stem: str, paths: Sequence[str], caption: str) -> str:
    shown = inline_path(paths)
    media = ""
    if shown is not None:
        data = (root / shown).read_bytes()
        if shown.lower().endswith(".svg"):
            text = data.decode("utf-8", "replace")
            text = re.sub(r"<\?xml[^>]*>|<!DOCTYPE[^>]*>", "", text)
            text = re.sub(r"<script.*?</script>", "", text, flags=re.S | re.I)
            media = text
        else:
            mime = {"jpg": "jpeg"}.get(
                Path(shown).suffix.lstrip(".").lower(), Path(shown).suffix.lstrip(".").lower()
            )
            b64 = base64.b64encode(data).decode("ascii")
            media = f'<img alt="{_h(Path(stem).name)}" src="data:image/{mime};base64,{b64}">'
    links = "".join(
        f'<a href="{_h(p)}">{_h(Path(p).suffix.lstrip(".").upper())}</a>' for p in paths
    )
    cap = f"{_h(caption)} " if caption else ""
    wide = shown is not None and _png_width_inches(root / shown) > _SINGLE_COLUMN_INCHES
    tag = '<figure class="wide">' if wide else "<figure>"
    return f'{tag}{media}<figcaption>{cap}<span class="files">{links}</span></figcaption></figure>'


#: Figures wider than a paper column (double-column and full-page figures) fill the page width.
_SINGLE_COLUMN_INCHES = 4.0


def _png_width_inches(path: Path) -> float:
    """Printed width of a PNG (pixels over its pHYs resolution, 150 dpi without one); 0 for a
    file that is not a PNG."""
    data = path.read_bytes()[:4096]
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return 0.0
    width = int.from_bytes(data[16:20], "big")
    dpi = 150.0
    at = data.find(b"pHYs")
    if at >= 0 and data[at + 12] == 1:  # unit: metre
        dpi = int.from_bytes(data[at + 4 : at + 8], "big") * 0.0254
    return width / dpi if dpi > 0 else 0.0


def _html_csv(root: Path, rel: str, max_rows: int = 40) -> str:
    try:
        rows = list(csv.reader(io.StringIO((root / rel).read_text(encoding="utf-8"))))
    except (OSError, csv.Error):
        return ""
    if len(rows) < 2 or len(rows) - 1 > max_rows or len(rows[0]) > 14:
        return ""
    head = "".join(f"<th>{_h(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{_h(_short_num(c))}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return (
        f"<details><summary>{_h(Path(rel).name)}</summary>"
        f'<table class="booktabs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        "</details>"
    )


def _short_num(text: str) -> str:
    try:
        v = float(text)
    except ValueError:
        return text
    if not text.strip() or re.fullmatch(r"-?\d+", text.strip()):
        return text
    return f"{v:.4g}"


def _html_section(sec: ReportSection, root: Path, level: int, shown: set[str]) -> str:
    parts = [f"<h{level}>{_h(sec.title)}</h{level}>"]
    if sec.text:
        parts.append(_markdown_html(sec.text))
    for stem, paths in figure_groups(sec.figures):
        anchor = f"fig-{slug(stem)}"
        if stem in shown:  # a figure shared by two hypotheses is embedded once
            parts.append(
                f'<p>See <a href="#{_h(anchor)}">{_h(Path(stem).name)}</a> above '
                "(the same figure).</p>"
            )
            continue
        shown.add(stem)
        parts.append(
            f'<div id="{_h(anchor)}">{_html_figure(root, stem, paths, sec.caption(stem))}</div>'
        )
    if sec.tables:
        links = "".join(f'<a href="{_h(p)}">{_h(Path(p).name)}</a> ' for p in sec.tables)
        parts.append(f'<p class="files">Tables: {links}</p>')
        for rel in sec.tables:
            if rel.lower().endswith(".md"):
                parts.append(f'<div class="mdtable">{_markdown_html(read_text(root / rel))}</div>')
            elif rel.lower().endswith(".csv") and not rel.lower().endswith("-cells.csv"):
                parts.append(_html_csv(root, rel))
    return "\n".join(parts)


def html_page(
    verdicts: Sequence[Verdict],
    sections: Mapping[str, list[ReportSection]],
    overview: Sequence[ReportSection],
    prov: Mapping[str, Any],
    family_tables: Sequence[str],
    root: Path,
) -> str:
    """``index.html``: one self-contained page (figures inline as base64, no network)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>kdtheory report</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        "<h1>kdtheory report</h1>",
        "<p>Knowledge-distillation hypotheses tested on a run store. p-values are "
        "Holm-adjusted across the family of hypotheses tested together; every number is in "
        '<a href="verdicts.json">verdicts.json</a>.</p>',
        *(
            [f'<p class="convention"><b>{_h(interval_convention(prov["alpha"]))}</b></p>']
            if prov.get("alpha") is not None
            else []
        ),
        "<h2>Verdicts</h2>",
        summary_table(verdicts).to_html("booktabs"),
        "<p><small>Bold: the verdict (the pooled random-effects row with several experiments)."
        "</small></p>",
        '<p class="files">Tables: '
        + "".join(f'<a href="{_h(p)}">{_h(Path(p).name)}</a> ' for p in family_tables)
        + "</p>",
        "<h2>Convergence</h2>",
        "<ul>" + "".join(f"<li>{_h(line)}</li>" for line in convergence_lines(verdicts)) + "</ul>",
        "<h2>Experiments</h2>",
        experiments_table(prov).to_html("booktabs"),
    ]
    shown: set[str] = set()
    for sec in overview:
        parts.append(_html_section(sec, root, 2, shown))
    parts.append("<h2>Hypotheses</h2>")
    for v in verdicts:
        parts.append(f'<section id="h-{_h(slug(v.hypothesis))}">')
        parts.append(v.as_html(details=False))
        if not v.available:
            parts.append(f'<p class="notice"><b>Not tested on this store.</b> {_h(v.reason)}</p>')
        for sec in sections.get(v.hypothesis, []):
            parts.append(_html_section(sec, root, 5, shown))
        if v.summaries:
            for name, summary in v.summaries.items():
                parts.append(
                    f"<details><summary>Fitted model: {_h(v.titles.get(name, name))}</summary>"
                    f"<pre>{_h(str(summary).rstrip())}</pre></details>"
                )
        parts.append("</section>")
    parts.append("<h2>Provenance</h2>")
    parts.append(
        '<table class="booktabs"><tbody>'
        + "".join(
            f'<tr><th class="l">{_h(k)}</th><td class="l"><code>{_h(v)}</code></td></tr>'
            for k, v in provenance_rows(prov)
        )
        + "</tbody></table>"
    )
    for name, info in (prov.get("experiments") or {}).items():
        parts.append(
            f"<details><summary>Recipe of {_h(info.get('title') or experiment_title(info))} "
            f"(<code>{_h(name)}</code>)</summary>"
            f"<pre>{_h(json.dumps(info.get('recipe'), indent=2, sort_keys=True))}</pre>"
            "</details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
