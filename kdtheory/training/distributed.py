"""Sweeps on a Dask cluster: the teacher as one task, then one task per group of cells.

Only the client (the ``kdtheory run`` process) plans the sweep and holds the experiment's lock
(:func:`kdtheory.store.runs.experiment_lock`); Dask (``distributed``) schedules the tasks, moves
them off dead workers and reruns them. Every task reads what it needs from paths all workers
share: the dataset from its spec (checked against the client's by a SHA-256 of its arrays) and
the teacher from the store's ``teacher.nc``; it writes each cell it trains into the store with
:func:`kdtheory.training.sweep.write_new_dataset`, which never replaces a written cell. A task
that runs again (its worker died, or the whole run was killed and started again) skips the cells
whose files exist, so no cell is trained twice or written twice.

Nothing here is imported unless ``--cluster`` or ``--scheduler`` is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from kdtheory.errors import SpecError, StoreError
from kdtheory.plugin.specs import LoadedDataset
from kdtheory.store import runs as st
from kdtheory.training.cache_dirs import user_folder
from kdtheory.training.dataset_cache import open_dataset_cache
from kdtheory.training.sweep import (
    CellOutcome,
    ExperimentConfig,
    SweepProgress,
    SweepReport,
    load_dataset,
    model_builder,
    open_teacher_cache,
    student_training_data,
    train_and_write_group,
)

_LOCAL = re.compile(r"local:(\d+)")


def parse_cluster(text: str) -> int:
    """The number of workers of ``--cluster local:N``.

    Raises
    ------
    SpecError
        ``text`` is not ``local:N`` with ``N >= 1``.
    """
    m = _LOCAL.fullmatch(text.strip())
    if m is None or int(m.group(1)) < 1:
        raise SpecError(
            f"--cluster {text!r}: give local:N, N >= 1 worker processes on this machine "
            "(e.g. local:4); for a running Dask scheduler use --scheduler ADDRESS"
        )
    return int(m.group(1))


@contextlib.contextmanager
def open_client(cluster: str | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client for ``--cluster local:N`` or ``--scheduler ADDRESS``, or None for neither.

    ``local:N`` starts a :class:`distributed.LocalCluster` of N worker processes with one thread
    each (Dask's nannies start them with ``OMP_NUM_THREADS=1``); it and its processes are closed
    when the block ends, also on an error or Ctrl-C. ``ADDRESS`` (``tcp://host:8786``) connects
    to a scheduler started elsewhere (``dask scheduler``, ``dask-jobqueue``), which is left
    running.

    Yields
    ------
    distributed.Client or None
    """
    if cluster is not None and scheduler is not None:
        raise SpecError(
            "--cluster and --scheduler: give one of them (start a local cluster, or connect "
            "to a running scheduler)"
        )
    if cluster is None and scheduler is None:
        yield None
        return
    n_workers = parse_cluster(cluster) if cluster is not None else 0
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        flag = "--cluster" if cluster is not None else "--scheduler"
        raise SpecError(
            f"{flag}: needs Dask's distributed scheduler, which is not installed; install "
            "it with pip install 'kdtheory[cluster]' (or pip install distributed)"
        ) from None

    local = None
    client = None
    try:
        if cluster is not None:
            local = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(local)
        else:
            try:
                client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise SpecError(
                    f"--scheduler {scheduler}: cannot connect ({type(exc).__name__}: {exc}); "
                    "give the address a running `dask scheduler` prints, e.g. "
                    "tcp://10.0.0.5:8786"
                ) from None
        yield client
    finally:
        if client is not None:
            client.close()
        if local is not None:
            local.close()


def data_digest(data: LoadedDataset) -> str:
    """SHA-256 of a dataset's arrays, to check that every worker loaded the same data."""
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


@dataclass(frozen=True)
class GroupTask:
    """One task: a group of cells to train together and write into the store.

    Attributes
    ----------
    cfg : ExperimentConfig
    out : str
        The run store, an absolute path every worker can reach.
    cells : tuple of (str, float, int)
        Method label, fraction and seed of each cell.
    device : str
        Resolved on the worker (``auto``: its GPU if it has one).
    digest : str
        :func:`data_digest` of the client's dataset.
    replace : frozenset of str
        Cell file names to train again although present (``--retrain-diverged``).
    dataset_cache : bool or str
        The dataset cache the worker loads a generated dataset through: ``True`` the worker's
        user's cache folder, an absolute folder, or ``False`` none (see :func:`cache_option`).
    """

    cfg: ExperimentConfig
    out: str
    cells: tuple[tuple[str, float, int], ...]
    device: str
    digest: str
    replace: frozenset[str] = frozenset()
    dataset_cache: bool | str = True


def cache_option(cache: bool | str | Path) -> bool | str:
    """A ``--teacher-cache``/``--dataset-cache`` value as a worker gets it.

    Parameters
    ----------
    cache : bool, str or Path
        ``True`` (the user's cache folder), ``False`` (no cache) or a folder.

    Returns
    -------
    bool or str
        ``True``/``False`` as they are (``True`` then means the worker's own user's cache
        folder, on its machine); a folder as an absolute path with ``~`` expanded, resolved
        here, since a worker's working directory need not be this process's.
    """
    return cache if isinstance(cache, bool) else str(user_folder(cache).resolve())


#: what a worker process keeps between its tasks: one experiment's inputs (see _inputs)
_WORKER_STATE: dict[str, Any] = {}


def _inputs(task: GroupTask) -> tuple[LoadedDataset, xr.Dataset, Any, Callable[[], Any]]:
    """The dataset, stored teacher, training data and student builder of ``task``, loaded
    once per worker process and experiment."""
    from kdtheory.training.engine import resolve_device

    cfg = task.cfg
    teacher_nc = st.experiment_dir(task.out, cfg.experiment_id) / st.TEACHER_FILE
    info = teacher_nc.stat()
    key = (cfg.dataset, cfg.student, str(teacher_nc), info.st_mtime_ns, info.st_size, task.device)
    if _WORKER_STATE.get("key") != key:
        _WORKER_STATE.clear()
        data = load_dataset(cfg.dataset, open_dataset_cache(task.dataset_cache))
        if data_digest(data) != task.digest:
            raise StoreError(
                f"dataset {cfg.dataset}: this worker loaded other data than the `kdtheory run` "
                "process (another file at the same path, or other software versions); give "
                "every worker the same files and environment"
            )
        teacher = st.read_dataset(teacher_nc)
        device = resolve_device(task.device)
        _WORKER_STATE.update(
            key=key,
            inputs=(
                data,
                teacher,
                student_training_data(
                    data, teacher, device, cfg, st.experiment_dir(task.out, cfg.experiment_id)
                ),
                model_builder(cfg.student, data.input_shape, data.num_classes),
            ),
        )
    return _WORKER_STATE["inputs"]


def _found(path: Path, cell: tuple[str, float, int]) -> CellOutcome:
    """The outcome of a cell whose file another task or run already wrote."""
    with xr.open_dataset(path) as ds:
        return CellOutcome(
            cell,
            float(ds.attrs.get("test_accuracy", np.nan)),
            bool(int(ds.attrs.get("diverged", 0))),
            written=False,
        )


def train_group_task(task: GroupTask) -> list[CellOutcome]:
    """Train the cells of ``task`` not yet in the store and write each (the task Dask runs).

    Returns
    -------
    list of CellOutcome
        One per cell of the task, in order; ``written`` is False for a cell whose file was
        already there (written by an earlier attempt of this task or by another run).
    """
    from kdtheory.training.allocator import keep_freed_memory
    from kdtheory.training.methods import parse_methods

    keep_freed_memory()
    cfg = task.cfg
    objectives = {o.label: o for o in parse_methods(cfg.methods)}
    found: dict[tuple[str, float, int], CellOutcome] = {}
    todo = []
    for cell in task.cells:
        label, fraction, seed = cell
        path = st.cell_path(task.out, cfg.experiment_id, label, fraction, seed)
        if path.exists() and path.name not in task.replace:
            found[cell] = _found(path, cell)
        else:
            todo.append((objectives[label], fraction, seed))
    trained = []
    if todo:
        data, teacher, tdata, build = _inputs(task)
        only_new = not any(st.cell_filename(o.label, f, s) in task.replace for o, f, s in todo)
        trained = train_and_write_group(
            cfg, task.out, todo, data, teacher, tdata, build, only_new=only_new
        )
    by_cell = found | {o.cell: o for o in trained}
    return [by_cell[cell] for cell in task.cells]


def teacher_task(
    cfg: ExperimentConfig,
    out: str,
    device: str,
    teacher_cache: bool | str,
    dataset_cache: bool | str = True,
) -> str:
    """Get the experiment's teacher and write ``teacher.nc`` (the task Dask runs).

    Parameters
    ----------
    cfg : ExperimentConfig
    out : str
        The run store, an absolute path every worker can reach.
    device : str
        Resolved on the worker.
    teacher_cache, dataset_cache : bool or str
        The caches the worker uses, as :func:`cache_option` makes them.

    Returns
    -------
    str
        Where the teacher came from (see :class:`kdtheory.training.sweep.SweepReport`).
    """
    from kdtheory.training.engine import resolve_device
    from kdtheory.training.sweep import _teacher

    folder = st.experiment_dir(out, cfg.experiment_id)
    _, origin = _teacher(
        cfg,
        folder,
        load_dataset(cfg.dataset, open_dataset_cache(dataset_cache)),
        resolve_device(device),
        SweepProgress(),
        open_teacher_cache(teacher_cache),
    )
    return origin


def _task_key(kind: str, experiment: str) -> str:
    """A key unique to this run, so that two clients of one scheduler never share a task."""
    return f"kdtheory-{kind}-{experiment}-{uuid.uuid4().hex[:12]}"


def remote_teacher(
    client: Any,
    cfg: ExperimentConfig,
    out: str | Path,
    device: str,
    teacher_cache: bool | str | Path,
    progress: SweepProgress,
    dataset_cache: bool | str | Path = True,
) -> tuple[xr.Dataset, str]:
    """The experiment's stored teacher outputs, from one task on the cluster if not stored.

    The client waits for the task, so the teacher is in the store before any student task is
    submitted. The task gets the teacher and dataset cache options through :func:`cache_option`.

    Raises
    ------
    StoreError
        The task finished but the client cannot see ``teacher.nc``: the store is not on a file
        system the workers share with the client.
    """
    teacher_nc = st.experiment_dir(out, cfg.experiment_id) / st.TEACHER_FILE
    origin = "store"
    if not teacher_nc.exists():
        progress.phase(f"{cfg.experiment_id}: teacher {cfg.teacher} (one task on the cluster)")
        future = client.submit(
            teacher_task,
            cfg,
            str(Path(out).resolve()),
            device,
            cache_option(teacher_cache),
            cache_option(dataset_cache),
            key=_task_key("teacher", cfg.experiment_id),
        )
        origin = future.result()
        if not teacher_nc.exists():
            raise StoreError(
                f"{teacher_nc}: the teacher task finished on a worker but its file is not "
                "here; --out must be a folder every worker and this process share (a network "
                "file system)"
            )
    teacher = st.read_dataset(teacher_nc)
    if origin != "store":
        accuracy = float(teacher.attrs.get("teacher_test_accuracy", np.nan))
        progress.phase(f"{cfg.experiment_id}: teacher ({origin}) test accuracy {accuracy:.3f}")
    return teacher, origin


def cluster_group_size(per_group: int, auto: bool, n_cells: int, n_threads: int) -> int:
    """Cells per task: ``per_group`` as given, or with ``auto`` at most the memory budget's and
    small enough for about two tasks per worker thread (so all workers have work and a lost
    worker costs little)."""
    if not auto:
        return per_group
    return max(1, min(per_group, math.ceil(n_cells / (2 * max(1, n_threads)))))


def _completed(futures: Iterator[Any], killed: type[Exception]) -> Iterator[Any]:
    """The finished futures, with a task that killed its workers again and again reported as a
    :class:`StoreError` (Dask gives up on a task after ``distributed.scheduler.allowed-failures``
    workers died running it)."""
    for future in futures:
        try:
            future.result()
        except killed as exc:
            raise StoreError(
                f"a task of the sweep ended the worker processes that ran it again and again "
                f"({exc}); usually a worker ran out of memory: lower --batch-cells or give the "
                "workers more memory, then re-run the same command (finished cells are kept)"
            ) from None
        yield future


def run_groups(
    client: Any,
    cfg: ExperimentConfig,
    out: str | Path,
    data: LoadedDataset,
    grid: list[tuple[Any, float, int]],
    todo: list[tuple[Any, float, int]],
    per_group: int,
    auto: bool,
    device: str,
    report: SweepReport,
    progress: SweepProgress,
    on_written: Callable[[CellOutcome], None],
    replace: set[str],
    dataset_cache: bool | str | Path = True,
) -> None:
    """Train ``todo`` as tasks of ``client``'s cluster, one per group of cells, and count the
    outcomes in ``report`` as the tasks finish.

    The groups are fixed slices of the sweep's whole ``grid`` (every cell, in the in-process
    order), each task training the cells of its slice still to do. A fresh sweep therefore
    trains every cell in the same group as the in-process run with the same group size, and a
    task rerun after its worker died, or a run resumed after a kill, trains a group as the
    first attempt did (unless that attempt was killed while writing the group's files), so
    their cells are the same to the bit.

    The tasks are submitted at once; Dask runs them on its workers and reruns those of a worker
    that died. On an error (or Ctrl-C) the tasks not yet finished are cancelled. Each task
    carries ``dataset_cache`` (through :func:`cache_option`): the cache its worker loads a
    generated dataset through.
    """
    from distributed import KilledWorker, as_completed

    n_threads = sum(client.nthreads().values())
    size = cluster_group_size(per_group, auto, len(grid), n_threads)
    pending = {(o.label, float(f), int(s)) for o, f, s in todo}
    groups = [
        [c for c in grid[g : g + size] if (c[0].label, float(c[1]), int(c[2])) in pending]
        for g in range(0, len(grid), size)
    ]
    groups = [group for group in groups if group]
    root = str(Path(out).resolve())
    digest = data_digest(data)
    progress.phase(
        f"{cfg.experiment_id}: {len(todo)} cell(s) in {len(groups)} task(s) of up to {size} on "
        f"{n_threads} worker thread(s)"
    )
    tasks = [
        GroupTask(
            cfg,
            root,
            tuple((o.label, float(f), int(s)) for o, f, s in group),
            device,
            digest,
            frozenset(replace),
            cache_option(dataset_cache),
        )
        for group in groups
    ]
    futures = [
        client.submit(train_group_task, task, key=_task_key("cells", cfg.experiment_id))
        for task in tasks
    ]
    try:
        for future in _completed(as_completed(futures), KilledWorker):
            shown = []
            for outcome in future.result():
                if outcome.written:
                    on_written(outcome)
                    report.trained += 1
                    report.diverged_now += int(outcome.diverged)
                else:
                    report.skipped += 1
                    report.found_in_tasks += 1
                report.cell_accuracy[outcome.cell] = outcome.test_accuracy
                shown.append((outcome.name, outcome.test_accuracy))
            progress.end_group(shown)
    finally:
        client.cancel([f for f in futures if not f.done()])
