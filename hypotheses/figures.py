"""Figures and tables the built-in hypotheses contribute to ``kdtheory report``.

This is the built-in ``report_figures`` plugin: it implements the same
``kdtheory_report_sections`` hook a third-party plugin would, and returns
:class:`kdtheory.report.document.ReportSection` objects for the five built-in hypotheses. Figures
come
from :mod:`kdtheory.report.figures` (so each is also reachable as ``kdtheory plot NAME``); tables
are
booktabs LaTeX (plus a compilable ``-document.tex``) and CSV, made from the verdict's own
``tables`` records, so they show exactly the numbers the test used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kdtheory import hookimpl
from kdtheory.errors import MissingRequirementError

__all__ = ["kdtheory_report_sections"]


def _figure(out_dir: Path, name: str, make: Callable[[], Any]) -> list[str]:
    """Draw and save figure ``name`` once per report (a second hypothesis reuses it)."""
    from kdtheory.report.document import FIGURES_DIR, save_figure, slug

    stem = Path(out_dir) / FIGURES_DIR / slug(name)
    existing = [stem.with_suffix(s) for s in (".pdf", ".png")]
    if all(p.is_file() for p in existing):
        return [p.relative_to(out_dir).as_posix() for p in existing]
    return save_figure(make(), out_dir, name)


def _section(
    out_dir: Path,
    title: str,
    figures: Sequence[tuple[str, Callable[[], Any], str]],
    text: str = "",
    tables: Sequence[str] = (),
) -> Any:
    from kdtheory.report.document import ReportSection

    paths: list[str] = []
    captions: dict[str, str] = {}
    notes = [text] if text else []
    for name, make, caption in figures:
        try:
            written = _figure(out_dir, name, make)
        except MissingRequirementError as exc:
            notes.append(f"No `{name}` figure: {exc}")
            continue
        paths += written
        captions[name] = caption
    return ReportSection(
        title=title, text="\n\n".join(notes), figures=paths, tables=list(tables), captions=captions
    )


def _scaled(records: Sequence[Mapping[str, Any]], keys: Sequence[str], factor: float) -> list[dict]:
    out = []
    for rec in records:
        new = dict(rec)
        for k in keys:
            v = new.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                new[k] = float(v) * factor
        out.append(new)
    return out


def _merge(
    left: Sequence[Mapping[str, Any]], right: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Left-join ``right`` onto ``left`` by (experiment, fraction); right's ``keys`` only."""
    index = {(r.get("experiment"), r.get("fraction")): r for r in right}
    out = []
    for rec in left:
        new = dict(rec)
        other = index.get((rec.get("experiment"), rec.get("fraction")), {})
        for k in keys:
            new[k] = other.get(k)
        out.append(new)
    return out


# -------------------------------------------------------------------------------- per hypothesis

_CI_NOTE = "Lines are means over seeds, bands (bars) 95% t-intervals over seeds."


def _data_efficiency(verdict: Any, store: Any, out_dir: Path) -> list[Any]:
    from kdtheory.report import figures as plot
    from kdtheory.report.document import Column, write_table

    per_fraction = verdict.tables.get("per_fraction", [])
    mult = verdict.tables.get("data_multiplier", [])
    records = _merge(per_fraction, mult, ["multiplier", "multiplier_bound", "status"])
    for rec in records:
        if rec.get("multiplier") is None or rec.get("multiplier") != rec.get("multiplier"):
            bound = rec.get("multiplier_bound")
            status = str(rec.get("status") or "")
            if bound is not None and bound == bound and status.startswith(("above", "below")):
                rec["multiplier_text"] = ("≥ " if status.startswith("above") else "≤ ") + (
                    f"{float(bound):.2f}"
                )
            else:
                rec["multiplier_text"] = "--"
        else:
            rec["multiplier_text"] = f"{float(rec['multiplier']):.2f}"
    tables = write_table(
        out_dir,
        "data-efficiency-by-kappa",
        records,
        [
            Column("κ", "n_train", "int", header_tex="$\\kappa$"),
            Column("Label acc. (%)", "label_accuracy", ".1f"),
            Column("KD acc. (%)", "kd_accuracy", ".1f"),
            Column("Gain (points)", "gain", ".2f"),
            Column("95% CI", ("ci_low", "ci_high"), ".2f", header_tex="95\\% CI"),
            Column("Data multiplier", "multiplier_text", "text", align="r"),
        ],
        caption="KD's gain over label training per training-set size kappa (mean over seeds, "
        "95% t-interval of the seed-paired gain) and the data multiplier kappa*/kappa: how many "
        "times more labelled samples label training needs to match KD's mean accuracy.",
    )
    return [
        _section(
            out_dir,
            "KD gain and data multiplier",
            [
                (
                    "kd-gain",
                    lambda: plot.kd_gain(store, verdict),
                    "Left: KD − label test accuracy (points), paired by seed, vs κ; the dotted "
                    "line has the fitted slope on log κ (the key effect). Right: the data "
                    "multiplier κ*/κ, the labelled samples label training needs to match KD; "
                    f"open triangles are bounds where KD lies outside the label curve. {_CI_NOTE}",
                )
            ],
            tables=tables,
        )
    ]


def _gaps_figure(store: Any) -> tuple[str, Callable[[], Any], str]:
    from kdtheory.report import figures as plot

    return (
        "gaps",
        lambda: plot.method_gaps(store),
        "KD's test-accuracy advantage (points) over label training, label smoothing (matched "
        "epsilon) and KD with the teacher's wrong-class probabilities shuffled, vs κ; each line "
        f"in the comparator's colour. {_CI_NOTE}",
    )


def _label_smoothing(verdict: Any, store: Any, out_dir: Path) -> list[Any]:
    from kdtheory.report.document import Column, write_table

    tables = write_table(
        out_dir,
        "label-smoothing-by-kappa",
        verdict.tables.get("per_fraction", []),
        [
            Column("κ", "n_train", "int", header_tex="$\\kappa$"),
            Column("KD acc. (%)", "kd_accuracy", ".1f"),
            Column("LS acc. (%)", "ls_accuracy", ".1f"),
            Column("KD − LS", "difference", ".2f", header_tex="KD $-$ LS"),
            Column("95% CI", ("ci_low", "ci_high"), ".2f", header_tex="95\\% CI"),
            Column("TOST p (Holm)", "tost_p_holm", "p", header_tex="TOST $p$ (Holm)"),
        ],
        caption="KD vs label smoothing per kappa: accuracies (mean over seeds), the seed-paired "
        "difference with its 95% t-interval, and the Holm-adjusted TOST p-value of equivalence "
        "within the margin.",
    )
    return [_section(out_dir, "KD vs label smoothing", [_gaps_figure(store)], tables=tables)]


def _dark_knowledge(verdict: Any, store: Any, out_dir: Path) -> list[Any]:
    from kdtheory.report import figures as plot
    from kdtheory.report.document import Column, write_table

    tables = write_table(
        out_dir,
        "dark-knowledge-by-kappa",
        verdict.tables.get("per_fraction", []),
        [
            Column("κ", "n_train", "int", header_tex="$\\kappa$"),
            Column("KD acc. (%)", "kd_accuracy", ".1f"),
            Column("Shuffled acc. (%)", "shuffled_accuracy", ".1f"),
            Column("KD − shuffled", "difference", ".2f", header_tex="KD $-$ shuffled"),
            Column("95% CI", ("ci_low", "ci_high"), ".2f", header_tex="95\\% CI"),
            Column("ρ KD", "kd_rank_corr", ".3f", header_tex="$\\rho_{\\mathrm{KD}}$"),
            Column(
                "ρ shuffled", "shuffled_rank_corr", ".3f", header_tex="$\\rho_{\\mathrm{shuffled}}$"
            ),
            Column("ρ label", "label_rank_corr", ".3f", header_tex="$\\rho_{\\mathrm{label}}$"),
        ],
        caption="KD vs KD with shuffled wrong-class probabilities per kappa: accuracies, the "
        "seed-paired difference (95% t-interval), and each student's wrong-class rank "
        "correlation rho with the teacher on the test set.",
    )
    return [
        _section(
            out_dir,
            "Dark knowledge",
            [
                _gaps_figure(store),
                (
                    "rank-correlation",
                    lambda: plot.rank_correlation(store),
                    "Wrong-class rank correlation (Spearman, over the classes other than the "
                    "true one, averaged over test samples) between each student and the "
                    f"teacher, vs κ. {_CI_NOTE}",
                ),
            ],
            tables=tables,
        )
    ]


def _fidelity_decay(verdict: Any, store: Any, out_dir: Path) -> list[Any]:
    from kdtheory.report import figures as plot
    from kdtheory.report.document import Column, write_table

    keys = ["fidelity_train", "fidelity_test", "gap", "gap_ci_low", "gap_ci_high"]
    records = _scaled(verdict.tables.get("per_fraction", []), keys, 100.0)
    tables = write_table(
        out_dir,
        "fidelity-decay-by-kappa",
        records,
        [
            Column("κ", "n_train", "int", header_tex="$\\kappa$"),
            Column("Fidelity trained-on (%)", "fidelity_train", ".1f"),
            Column("Fidelity unseen (%)", "fidelity_test", ".1f"),
            Column("Gap (points)", "gap", ".2f"),
            Column("95% CI", ("gap_ci_low", "gap_ci_high"), ".2f", header_tex="95\\% CI"),
            Column("Cells excluded", "n_excluded", "int"),
        ],
        caption="Top-1 agreement of the KD student with the teacher on the samples it trained on "
        "and on unseen (test) samples per kappa (mean over seeds), their gap with a 95% "
        "t-interval, and the cells left out of the log fit (gap <= 0).",
    )
    return [
        _section(
            out_dir,
            "Fidelity on trained-on vs unseen samples",
            [
                (
                    "fidelity",
                    lambda: plot.fidelity(store, verdict),
                    "Left: agreement with the teacher on the samples each student trained on "
                    "(solid) and on unseen test samples (dashed), vs κ. Right: their gap on "
                    "log–log axes: cells (dots), geometric means over seeds, the fitted power "
                    "law (the verdict's slope b) and a reference line of slope −1/2. "
                    f"{_CI_NOTE}",
                )
            ],
            tables=tables,
        )
    ]


def _neural_collapse(verdict: Any, store: Any, out_dir: Path) -> list[Any]:
    from kdtheory.report import figures as plot
    from kdtheory.report.document import Column, write_table

    tables = write_table(
        out_dir,
        "neural-collapse-by-kappa",
        verdict.tables.get("per_fraction", []),
        [
            Column("κ", "n_train", "int", header_tex="$\\kappa$"),
            Column("Δ log NC1", "log_nc1_diff_trained", ".3f", header_tex="$\\Delta\\log$ NC1"),
            Column(
                "95% CI",
                ("log_nc1_diff_trained_ci_low", "log_nc1_diff_trained_ci_high"),
                ".3f",
                header_tex="95\\% CI",
            ),
            Column("Δ CKA", "cka_diff_trained", ".3f", header_tex="$\\Delta$ CKA"),
            Column(
                "95% CI ",
                ("cka_diff_trained_ci_low", "cka_diff_trained_ci_high"),
                ".3f",
                header_tex="95\\% CI",
            ),
        ],
        caption="KD minus label student on the feature rows each trained on, per kappa: the "
        "difference in log NC1 and in linear CKA with the teacher's features (mean over seeds, "
        "95% t-intervals).",
    )
    return [
        _section(
            out_dir,
            "Neural collapse and alignment with the teacher",
            [
                (
                    "collapse",
                    lambda: plot.collapse(store),
                    "NC1 (within- over between-class variability; log axis, geometric means) "
                    "and linear CKA with the teacher's features, on the feature rows each "
                    f"student trained on, vs κ, per method. {_CI_NOTE}",
                ),
                (
                    "collapse-all",
                    lambda: plot.collapse(store, metrics="all"),
                    _COLLAPSE_ALL_CAPTION,
                ),
            ],
            tables=tables,
        )
    ]


_COLLAPSE_ALL_CAPTION = (
    "Every neural-collapse statistic vs κ, per method, on the feature rows each student "
    "trained on: NC1 = tr(Σ_W Σ_B⁺)/K (log axis, geometric means); NC2 equinorm, the "
    "coefficient of variation of the centred class-mean norms; NC2 equiangularity, the sd of "
    "their pairwise cosines; NC2 max-angle, the mean |cos + 1/(K−1)|; NC3, the distance between "
    "the normalised classifier and class means; NC4, the share of samples whose prediction "
    "differs from the nearest class mean; and linear CKA with the teacher's features. The NC "
    f"statistics are 0 at perfect collapse; CKA is 1 for identical features. {_CI_NOTE}"
)


_BUILTINS: dict[str, Callable[[Any, Any, Path], list[Any]]] = {
    "data-efficiency": _data_efficiency,
    "label-smoothing": _label_smoothing,
    "dark-knowledge": _dark_knowledge,
    "fidelity-decay": _fidelity_decay,
    "neural-collapse": _neural_collapse,
}


@hookimpl
def kdtheory_report_sections(verdict: Any, store: Any, out_dir: Any) -> list[Any] | None:
    """Sections (figures and tables) for the built-in hypotheses; None for any other verdict
    and for a verdict the store could not test."""
    make = _BUILTINS.get(getattr(verdict, "hypothesis", ""))
    if make is None or not verdict.available:
        return None
    return make(verdict, store, Path(out_dir))
