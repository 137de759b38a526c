"""`kdtheory run`: train a sweep into a run store, with progress bars and a summary table.

Exit status: 0 when the sweep finished (cells already done are skipped); 2 with one line on stderr
for a usage error (bad option, unknown plugin name, unusable ``--out``) or an error of the system
(disk full, out of memory); 130 when interrupted (finished cells are kept).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from kdtheory.cli.common import err_console, out_console, usage_error
from kdtheory.errors import KDTheoryError


def parse_bytes(text: str) -> int:
    """``"2GB"``, ``"512MiB"``, ``"1e9"`` → bytes."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]?)(i?B)?\s*", text)
    try:
        value = float(m.group(1)) if m else math.nan
    except ValueError:
        value = math.nan
    if not m or math.isnan(value):
        raise KDTheoryError(f"--memory-budget: cannot read {text!r}; use e.g. 2GB or 512MB")
    value *= {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[m.group(2)]
    if not (math.isfinite(value) and value >= 1):
        raise KDTheoryError(
            f"--memory-budget: {text!r} is not a usable amount of memory; give a finite size "
            "of at least 1 byte, e.g. 2GB or 512MB"
        )
    return int(value)


def _check_out(out: Path) -> None:
    """``--out`` must be a folder (or not exist yet)."""
    if out.exists() and not out.is_dir():
        raise KDTheoryError(
            f"--out {out}: is a file, not a folder; give the run store's folder (it is created "
            "if missing)"
        )
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise KDTheoryError(
            f"--out {out}: this folder is not writable; choose a writable --out folder or fix "
            "its permissions"
        )


def run_failure(exc: BaseException, out: Path) -> NoReturn:
    """Exit 2 with one line for an error of the system (files, memory) during ``kdtheory run``.

    Parameters
    ----------
    exc : OSError or MemoryError
        What went wrong.
    out : Path
        The run store folder (``--out``), named when the error names no file.
    """
    if isinstance(exc, MemoryError):
        usage_error(
            f"out of memory while running the sweep into {out} ({type(exc).__name__}: {exc}). "
            "Lower --batch-cells or --memory-budget, or use a smaller dataset; finished cells "
            "are kept and re-running the same command resumes."
        )
    where = getattr(exc, "filename", None) or out
    reason = getattr(exc, "strerror", None) or str(exc)
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        fix = "no space left on the device; free some space and re-run the same command"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a writable --out folder or fix its permissions"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        fix = "--out and the folders above it must be folders, not files"
    else:
        fix = "check the --out folder and the disk, then re-run the same command"
    usage_error(f"{where}: {reason} ({type(exc).__name__}); {fix}.")


class RichSweepProgress:
    """Shows a sweep's progress with rich: a bar over cells and one over steps of the group."""

    def __init__(self, total_cells: int, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.cells = self.progress.add_task("cells", total=total_cells)
        self.steps = self.progress.add_task("steps", total=1, visible=False)
        self._is_teacher = False

    def __enter__(self) -> RichSweepProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def phase(self, text: str) -> None:
        self.progress.console.print(f"[dim]{text}[/]", highlight=False)

    def start_group(self, n_cells: int, steps: int, description: str) -> None:
        self._is_teacher = description == "teacher"
        self.progress.reset(self.steps, total=steps, visible=True, description=description)

    def step(self, done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            self.progress.update(self.steps, completed=done)

    def end_group(self, results: list[tuple[str, float]]) -> None:
        self.progress.update(self.steps, visible=False)
        if self._is_teacher:
            self.progress.console.print(f"teacher test accuracy {results[0][1]:.3f}")
            return
        self.progress.advance(self.cells, len(results))
        shown = ", ".join(f"{name}: {acc:.3f}" for name, acc in results[:6])
        more = f" (+{len(results) - 6} more)" if len(results) > 6 else ""
        self.progress.console.print(f"test acc  {shown}{more}", highlight=False)


def _summary_table(store_path: Path, experiment: str) -> tuple[Table, list[str]] | None:
    """The experiment's test accuracies per method × fraction, and its convergence warnings."""
    import numpy as np

    from kdtheory.store.convergence import check_experiment
    from kdtheory.store.runs import combine_cells, experiment_dir

    folder = experiment_dir(store_path, experiment)
    if not (folder / "cells").is_dir():
        return None
    ds = combine_cells(folder)
    acc = ds.kd.accuracy()
    teacher = float(ds.attrs.get("teacher_test_accuracy", np.nan))
    table = Table(
        title=f"{experiment}: test accuracy, mean ± sd over seeds (teacher {teacher:.3f})"
    )
    table.add_column("method")
    for f, n in zip(ds.fraction.values, ds.n_train.values, strict=True):
        table.add_column(f"f={f:g}\nκ={int(n)}", justify="right")
    for m in ds.kd.arms:
        row = [m]
        for f in ds.fraction.values:
            a = acc.sel(arm=m, fraction=f).values
            a = a[np.isfinite(a)]
            sd = f"±{a.std(ddof=1):.3f}".replace("0.", ".") if len(a) > 1 else ""
            row.append(f"{a.mean():.3f}{sd}" if len(a) else "-")
        table.add_row(*row)
    conv = check_experiment(experiment, ds)
    under = len(conv.under_trained)
    table.caption = f"{conv.cells - under} of {conv.cells} cells meet the convergence criteria"
    return table, conv.warnings()


def run_command(
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Run-store folder to write."),
    preset: str | None = typer.Option(
        None,
        help="Named sweep: smoke (< 1 min), reference (the shipped data/), factors (the shipped "
        "data-factors/: temperature, objective, student width, teacher share), bench, "
        "paper-cifar100 (GPU, CIFAR-100 under ~/data).",
    ),
    dataset: str | None = typer.Option(
        None, help="Dataset spec, e.g. mnist1d:num_samples=10000, digits, mnist-5k, npz:path=f.npz"
    ),
    teacher: str | None = typer.Option(None, help="Teacher architecture spec, e.g. mlp-wide."),
    student: list[str] | None = typer.Option(
        None,
        help="Student architecture spec, e.g. mlp:width=128; repeat for several students (one "
        "experiment each).",
    ),
    fractions: str | None = typer.Option(None, help="Comma-separated fractions in (0, 1]."),
    seeds: int | None = typer.Option(None, help="Number of seeds (replicates 0..N-1)."),
    methods: str | None = typer.Option(
        None, help="Methods, e.g. label,kd:T=4,ls:eps=matched,kd-shuffled:T=4,kd-mse."
    ),
    epochs: float | None = typer.Option(
        None,
        help="Budget by epochs: each student trains max(min-steps, ceil(epochs * n_train / "
        "batch)) steps over its own subset.",
    ),
    min_steps: int | None = typer.Option(
        None, help="Smallest budget of a student with --epochs (small subsets)."
    ),
    steps: int | None = typer.Option(
        None, help="Fixed budget instead: the same optimizer steps at every fraction."
    ),
    warmup: float | None = typer.Option(
        None, help="Share of each budget spent in linear learning-rate warm-up, in [0, 1)."
    ),
    batch_size: int | None = typer.Option(None, help="Minibatch size."),
    lr: float | None = typer.Option(None, help="Peak AdamW learning rate (cosine decay)."),
    weight_decay: float | None = typer.Option(None, help="AdamW weight decay."),
    teacher_steps: int | None = typer.Option(None, help="Optimizer steps of the teacher."),
    teacher_epochs: float | None = typer.Option(
        None, help="Teacher budget in epochs over the full training set (instead of steps)."
    ),
    teacher_batch_size: int | None = typer.Option(
        None, help="Teacher's minibatch size (default: the students')."
    ),
    teacher_lr: float | None = typer.Option(None, help="Teacher's peak learning rate."),
    teacher_fraction: list[str] | None = typer.Option(
        None,
        help="Share of the training set the teacher trains on, in (0, 1] (default 1); repeat "
        "or give a list (0.25,1) for one experiment each. Student subsets are nested with it.",
    ),
    teacher_checkpoint: Path | None = typer.Option(
        None, help="Load the teacher's state_dict from this file instead of training it."
    ),
    feature_samples: int | None = typer.Option(
        None, help="Training samples whose penultimate features are stored."
    ),
    name: str | None = typer.Option(
        None, help="Experiment id (default: dataset--teacher--student)."
    ),
    title: str | None = typer.Option(
        None,
        help="Display label of the experiment in figures and report headings (default: from "
        "the dataset, teacher and student, e.g. 'MNIST-5k · CNN 32→8'); one experiment only; "
        "kept from the run that created the experiment.",
    ),
    augment: str | None = typer.Option(
        None,
        help="Augment training batches of images: none (default) or crop-flip (random crop "
        "after 4-pixel padding, horizontal flip; per cell and step, seeded; KD targets from the "
        "teacher on the augmented batch).",
    ),
    precision: str | None = typer.Option(
        None, help="fp32 (default) or bf16: training forward passes under bfloat16 autocast."
    ),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ..."),
    batch_cells: str = typer.Option(
        "auto", help="Cells trained together in one batched model; 1 = one at a time."
    ),
    memory_budget: str = typer.Option(
        "auto",
        help="Memory a batched group may use with --batch-cells auto: a size such as 2GB, or "
        "auto (2GB on a CPU; on a GPU a share of its free memory).",
    ),
    retrain_diverged: bool = typer.Option(
        False, help="Train again the cells stored as diverged (non-finite loss)."
    ),
    teacher_cache: Path | None = typer.Option(
        None,
        "--teacher-cache",
        help="Folder of trained teachers reused across sweeps and stores (default: "
        "$KDTHEORY_CACHE/teachers, else $XDG_CACHE_HOME/kdtheory/teachers, else "
        "~/.cache/kdtheory/teachers).",
    ),
    no_teacher_cache: bool = typer.Option(
        False,
        "--no-teacher-cache",
        help="Neither reuse a cached teacher nor store the trained one in the cache.",
    ),
    dataset_cache: Path | None = typer.Option(
        None,
        "--dataset-cache",
        help="Folder of generated datasets (MNIST-1D) reused across sweeps, so that each is "
        "generated once (default: $KDTHEORY_CACHE/datasets, else "
        "$XDG_CACHE_HOME/kdtheory/datasets, else ~/.cache/kdtheory/datasets).",
    ),
    no_dataset_cache: bool = typer.Option(
        False,
        "--no-dataset-cache",
        help="Generate the dataset again instead of reading or storing it in the cache.",
    ),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="Run on a Dask LocalCluster of N worker processes (local:N, one thread each): the "
        "teacher as one task, then one task per group of cells.",
    ),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="Run on the workers of a running Dask scheduler (e.g. tcp://10.0.0.5:8786; "
        "dask-jobqueue on SLURM); --out must be on a file system they share.",
    ),
) -> None:
    """Train teachers and students across fractions, seeds and methods into a run store.

    Re-running the same command skips finished cells; Ctrl-C loses at most the group in flight.
    A teacher is trained once: later sweeps with the same data, teacher and teacher recipe load
    it from the teacher cache; a generated dataset (MNIST-1D) is likewise generated once and
    read from the dataset cache. With --cluster or --scheduler the groups of cells run as Dask
    tasks, several at once; the store and the result are the same.
    """
    from kdtheory.store.atomic import sweep_orphans
    from kdtheory.training.allocator import default_memory_budget, keep_freed_memory
    from kdtheory.training.engine import resolve_device
    from kdtheory.training.sweep import (
        check_specs,
        configs_from_options,
        parse_fractions,
        parse_teacher_fractions,
        run_experiment,
    )

    try:
        overrides = {
            "dataset": dataset,
            "teacher": teacher,
            "student": tuple(student) if student else None,
            "teacher_fraction": (
                parse_teacher_fractions(teacher_fraction) if teacher_fraction else None
            ),
            "fractions": parse_fractions(fractions) if fractions is not None else None,
            "seeds": tuple(range(seeds)) if seeds is not None else None,
            "methods": _split_methods(methods) if methods is not None else None,
            "steps": steps,
            "epochs": epochs,
            "min_steps": min_steps,
            "warmup": warmup,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "teacher_steps": teacher_steps,
            "teacher_epochs": teacher_epochs,
            "teacher_batch_size": teacher_batch_size,
            "teacher_lr": teacher_lr,
            "teacher_checkpoint": str(teacher_checkpoint) if teacher_checkpoint else None,
            "feature_samples": feature_samples,
            "name": name,
            "title": title,
            "augment": augment,
            "precision": precision,
        }
        teachers = _cache_option("teacher", teacher_cache, no_teacher_cache, "trained teachers")
        datasets = _cache_option("dataset", dataset_cache, no_dataset_cache, "generated datasets")
        if seeds is not None and seeds < 1:
            raise KDTheoryError("--seeds: must be >= 1")
        if teacher_checkpoint is not None and not teacher_checkpoint.is_file():
            state = "is a folder" if teacher_checkpoint.is_dir() else "does not exist"
            raise KDTheoryError(
                f"--teacher-checkpoint: {teacher_checkpoint} {state}; give a file saved with "
                "torch.save(model.state_dict(), path)"
            )
        _check_out(out)
        configs = configs_from_options(preset, overrides)
        for cfg in configs:
            check_specs(cfg)
        budget = (
            default_memory_budget(resolve_device(device))
            if memory_budget == "auto"
            else parse_bytes(memory_budget)
        )
        if resolve_device(device).type == "cpu":
            keep_freed_memory()  # this process only trains: reuse freed blocks, fewer page faults
        swept = sweep_orphans(out)
        if swept:
            err_console.print(
                f"removed {len(swept)} orphan temporary file(s) of interrupted writes from {out}",
                highlight=False,
            )
        cells = sum(len(c.fractions) * len(c.seeds) * len(c.methods) for c in configs)
        reports = []
        with (
            _dask_client(cluster, scheduler) as client,
            RichSweepProgress(cells, err_console) as progress,
            _cache_warnings(progress),
        ):
            for cfg in configs:
                report = run_experiment(
                    cfg,
                    out,
                    device,
                    _batch_cells(batch_cells),
                    budget,
                    progress,
                    retrain_diverged=retrain_diverged,
                    teacher_cache=teachers,
                    client=client,
                    dataset_cache=datasets,
                )
                found_before = report.skipped - report.found_in_tasks  # the others are shown
                progress.progress.advance(progress.cells, found_before)
                reports.append(report)
    except KeyboardInterrupt:
        err_console.print(
            "[yellow]interrupted[/]: finished cells are saved; re-run the same command to resume."
        )
        raise typer.Exit(130) from None
    except KDTheoryError as exc:
        usage_error(str(exc))
    except (OSError, MemoryError) as exc:
        run_failure(exc, out)
    for report in reports:
        try:
            table = _summary_table(out, report.experiment)
        except KDTheoryError as exc:
            usage_error(str(exc))
        if table is not None:
            out_console.print(table[0])
            for line in table[1]:
                out_console.print(f"[yellow]warning:[/] {line}", highlight=False)
        out_console.print(
            f"{report.experiment}: trained {report.trained} cell(s), skipped {report.skipped} "
            f"already done, {report.seconds:.1f} s; "
            + (f"{_DATASET_ORIGIN[report.dataset]}, " if report.dataset else "")
            + _TEACHER_ORIGIN[report.teacher],
            highlight=False,
        )


def _cache_option(kind: str, folder: Path | None, off: bool, what: str) -> bool | Path:
    """The value of ``--{kind}-cache``/``--no-{kind}-cache`` for :func:`run_experiment`: the
    folder given (which must be a folder, or not exist yet), ``False`` for none, else ``True``
    (the user's cache folder)."""
    flag = f"--{kind}-cache"
    if folder is not None and off:
        raise KDTheoryError(
            f"{flag} and --no-{kind}-cache: give one of them (a folder to keep {what} in, or "
            "none at all)"
        )
    if folder is not None and folder.exists() and not folder.is_dir():
        raise KDTheoryError(
            f"{flag} {folder}: is a file, not a folder; give the folder to keep {what} in "
            "(it is created if missing)"
        )
    return False if off else (folder or True)


@contextlib.contextmanager
def _dask_client(cluster: str | None, scheduler: str | None) -> Iterator[object]:
    """The Dask client of ``--cluster``/``--scheduler``, or None (Dask is not imported then)."""
    if cluster is None and scheduler is None:
        yield None
        return
    from kdtheory.training.distributed import open_client

    with open_client(cluster, scheduler) as client:
        yield client


#: how the summary line names where the teacher came from (``SweepReport.teacher``)
_TEACHER_ORIGIN = {
    "trained": "teacher trained",
    "cache": "teacher from the teacher cache",
    "checkpoint": "teacher from --teacher-checkpoint",
    "store weights": "teacher from the store's teacher.pt",
    "store": "teacher already in the store",
}


#: how the summary line names where a generated dataset came from (``SweepReport.dataset``)
_DATASET_ORIGIN = {
    "cache": "dataset from the dataset cache",
    "generated": "dataset generated",
}


@contextlib.contextmanager
def _cache_warnings(progress: RichSweepProgress) -> Iterator[None]:
    """Show teacher and dataset cache warnings as ``warning: ...`` lines above the progress
    bars."""
    from kdtheory.training.dataset_cache import DatasetCacheWarning
    from kdtheory.training.teacher_cache import TeacherCacheWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, (TeacherCacheWarning, DatasetCacheWarning)):
            progress.progress.console.print(f"[yellow]warning:[/] {message}", highlight=False)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", TeacherCacheWarning)
        warnings.simplefilter("always", DatasetCacheWarning)
        warnings.showwarning = show
        yield


def _split_methods(text: str) -> tuple[str, ...]:
    from kdtheory.training.methods import split_methods

    return tuple(split_methods(text))


def _batch_cells(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise KDTheoryError(
            f"--batch-cells: {text!r} is not a positive integer or 'auto'"
        ) from None


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to ``app``."""
    app.command("run")(run_command)
