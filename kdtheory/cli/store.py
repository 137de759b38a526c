"""`kdtheory inspect` and `kdtheory export`: what a run store holds, and sharing it.

Exit status: 0 on success; 2 with a message on stderr for a store that cannot be used or an
output that cannot be written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from kdtheory.cli.common import LAZY_OPTION, open_store, out_console, usage_error
from kdtheory.errors import KDTheoryError


def inspect_command(
    runs: Path = typer.Argument(..., help="Run-store folder (or a combined .nc file)."),
    lazy: bool | None = LAZY_OPTION,
) -> None:
    """Show a store's experiments, accuracies, convergence and missing cells.

    A cell marked * fails a convergence criterion (see the convergence table and the summary
    line); a teacher below the best label-trained student or near chance is flagged.
    """
    import numpy as np

    from kdtheory.store.convergence import CRITERIA, check_experiment

    store = open_store(runs, lazy)
    total_cells = total_under = 0
    for exp, ds in store.items():
        conv = check_experiment(exp, ds)
        total_cells += conv.cells
        total_under += len(conv.under_trained)
        out_console.print(
            f"[bold]{exp}[/]  dataset={ds.attrs.get('dataset')} teacher={ds.attrs.get('teacher')} "
            f"student={ds.attrs.get('student')}  train={ds.sizes['train_sample']} "
            f"test={ds.sizes['test_sample']} classes={ds.sizes['class']}",
            highlight=False,
        )
        out_console.print(
            f"  teacher: test acc {conv.teacher_test_accuracy:.3f}, train acc "
            f"{conv.teacher_train_accuracy:.3f}"
            + (f"  [yellow]weak teacher: {conv.weak_teacher}[/]" if conv.weak_teacher else ""),
            highlight=False,
        )
        out_console.print(f"  from {', '.join(map(str, store.sources[exp]))}", highlight=False)
        acc = ds.kd.accuracy()
        under = conv.table["under_trained"]
        table = Table(title="student test accuracy per seed (* = under-trained, — = missing cell)")
        table.add_column("method (objective)")
        for f, n in zip(ds.fraction.values, ds.n_train.values, strict=True):
            table.add_column(f"f={f:g} κ={int(n)}", justify="right")
        missing = []
        for m in ds.kd.arms:
            row = [f"{m} ({ds.kd.objective_of(m)})"]
            for f in ds.fraction.values:
                vals = acc.sel(arm=m, fraction=f).values
                flags = under.sel(arm=m, fraction=f).values
                gone = (
                    ds["diverged"].sel(arm=m, fraction=f).fillna(0).values > 0
                    if "diverged" in ds
                    else np.zeros(len(vals), bool)
                )
                parts = []
                for s, v, bad, div in zip(ds.seed.values, vals, flags, gone, strict=True):
                    if div:
                        parts.append("[yellow]diverged[/]")
                    elif np.isfinite(v):
                        parts.append(f"{v:.3f}" + ("[yellow]*[/]" if bad else ""))
                    else:
                        parts.append("—")
                        missing.append(f"{m} f={f:g} s={s}")
                row.append(" ".join(parts))
            table.add_row(*row)
        out_console.print(table)
        out_console.print(_convergence_table(ds, conv))
        optional = [v for v in ("features", "classifier_weight", "loss_history") if v in ds]
        out_console.print(f"  optional variables: {', '.join(optional) or 'none'}")
        missing += _unswept_cells(ds)
        if missing:
            out_console.print(f"  [yellow]missing {len(missing)} cell(s):[/] {', '.join(missing)}")
        else:
            out_console.print("  no missing cells")
        for line in conv.warnings():
            out_console.print(f"  [yellow]warning:[/] {line}", highlight=False)
    ok = total_cells - total_under
    colour = "green" if total_under == 0 else "yellow"
    out_console.print(
        f"[{colour}]convergence: {ok} of {total_cells} cells meet the criteria, "
        f"{total_under} under-trained[/] (under-trained: {CRITERIA})",
        highlight=False,
    )


def _unswept_cells(ds) -> list[str]:
    """Cells of the recorded sweep axes whose method, fraction or seed is absent altogether
    (an interrupted first run); cells inside the present axes are NaN and listed already."""
    import json
    import math

    try:
        axes = json.loads(ds.attrs.get("sweep_axes") or "{}")
    except (TypeError, ValueError):
        return []
    if not axes:
        return []
    have_m = set(ds.kd.arms)
    have_f = [float(f) for f in ds.fraction.values]
    have_s = {int(s) for s in ds.seed.values}
    out = []
    for s in axes.get("seeds", []):
        for f in axes.get("fractions", []):
            for m in axes.get("methods", []):
                there = m in have_m and any(math.isclose(f, g) for g in have_f) and int(s) in have_s
                if not there:
                    out.append(f"{m} f={f:g} s={s}")
    return out


def _convergence_table(ds, conv) -> Table:
    """Per method × fraction: median train accuracy, median loss drop, under-trained seeds."""
    import numpy as np

    table = Table(
        title="convergence, median over seeds: accuracy on own subset, relative fall of the "
        "loss over the last 20% of training, epochs (✗: under-trained seeds)"
    )
    table.add_column("method")
    for f in ds.fraction.values:
        table.add_column(f"f={f:g}", justify="right")
    acc = conv.table["train_accuracy"]
    drop = conv.table["loss_drop_last20"]
    under = conv.table["under_trained"]
    epochs = ds.get("train_epochs")
    for m in ds.kd.arms:
        row = [m]
        for f in ds.fraction.values:
            sel = {"arm": m, "fraction": f}
            a = acc.sel(sel).values
            if not np.isfinite(a).any():
                row.append("—")
                continue
            d = drop.sel(sel).values
            text = f"{np.nanmedian(a):.3f} "
            text += f"{np.nanmedian(d):+.0%}" if np.isfinite(d).any() else "n/a"
            if epochs is not None and np.isfinite(epochs.sel(sel).values).any():
                text += f" {np.nanmedian(epochs.sel(sel).values):.0f}ep"
            n_bad = int(under.sel(sel).sum())
            row.append(text + (f" [yellow]({n_bad}✗)[/]" if n_bad else ""))
        table.add_row(*row)
    return table


def export_command(
    runs: Path = typer.Argument(..., help="Run-store folder to read."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for one .nc file per experiment."),
    lazy: bool | None = LAZY_OPTION,
) -> None:
    """Write each experiment as one combined netCDF file (for sharing alongside a paper)."""
    from kdtheory.store.runs import export_store

    store = open_store(runs, lazy)
    try:
        written = export_store(store, out)
    except (KDTheoryError, OSError) as exc:
        usage_error(str(exc))
    for path in written:
        out_console.print(f"wrote {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the store commands (``inspect``, ``export``) to ``app``."""
    app.command("inspect")(inspect_command)
    app.command("export")(export_command)
