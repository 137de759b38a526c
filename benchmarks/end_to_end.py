"""Benchmark: ``kdtheory run --preset bench`` end to end against the hand-written peer loop.

One run times, each as a fresh process as a user starts it (default threads, imports included):

1. **cold**: ``kdtheory run --preset bench`` into a new store with empty teacher and dataset
   caches (MNIST-1D generated, teacher trained, 140 students, evaluation, writes);
2. **warm**: the same command into another new store, the caches now holding its teacher and
   its MNIST-1D arrays;
3. **peer**: ``benchmarks/peer_loop.py``, the plain PyTorch loop a researcher writes instead
   (its teacher, then the same 140 students one after another, evaluated and saved).

and prints the three wall times and the ratios peer / cold and peer / warm (goals of issue 15:
at least 5x cold and 8x warm). It also checks that the warm run took its teacher and its
dataset from the caches and stored the same teacher logits as the cold run. Everything is
written into a temporary folder, removed afterwards; the user's caches are not touched::

    python benchmarks/end_to_end.py                 # one run (about 5-8 minutes on 2 cores)
    python benchmarks/end_to_end.py --repeats 3     # medians of 3
    python benchmarks/end_to_end.py --peer-students 28   # a shorter peer, extrapolated

On a shared machine the load drifts; compare ratios measured in the same run, and read the
load averages printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import kdtheory_command

HERE = Path(__file__).resolve().parent
BENCH_STUDENTS = 140


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall time of one run of ``argv`` and its stdout; a failing run stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout + done.stderr


def teacher_record(store: Path) -> tuple[str, object]:
    """The stored teacher's cache key and test logits."""
    import xarray as xr

    (path,) = store.glob("*/teacher.nc")
    with xr.open_dataset(path) as t:
        return str(t.attrs.get("teacher_cache_key")), t["teacher_test_logits"].values


def dataset_entries(cache: Path) -> dict[str, int]:
    """The dataset cache's entries and their modification times (a regenerated entry is
    rewritten, so its time changes)."""
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}


def one_run(tmp: Path, peer_students: int | None, env: dict[str, str]) -> dict[str, float]:
    cache, datasets = tmp / "teachers", tmp / "datasets"
    run = [
        *kdtheory_command(), "run", "--preset", "bench",
        "--teacher-cache", str(cache), "--dataset-cache", str(datasets),
    ]  # fmt: skip
    cold, _ = timed([*run, "--out", str(tmp / "cold")], env)
    generated = dataset_entries(datasets)
    warm, log = timed([*run, "--out", str(tmp / "warm")], env)
    if len(generated) != 1 or dataset_entries(datasets) != generated:
        sys.exit(f"the warm run did not read its dataset from the cache ({datasets}):\n{log}")
    (key_cold, logits_cold), (key_warm, logits_warm) = (
        teacher_record(tmp / "cold"),
        teacher_record(tmp / "warm"),
    )
    if "from the cache" not in log or key_cold != key_warm:
        sys.exit("the warm run did not take its teacher from the cache:\n" + log)
    if not (logits_cold == logits_warm).all():
        sys.exit("the cached teacher's stored logits differ from the freshly trained one's")
    peer_cmd = [sys.executable, str(HERE / "peer_loop.py"), "--out", str(tmp / "peer")]
    if peer_students:
        peer_cmd += ["--students", str(peer_students)]
    peer, out = timed(peer_cmd, env)
    parts = json.loads(out.strip().splitlines()[-1])
    if peer_students and peer_students < BENCH_STUDENTS:  # the students' share, extrapolated
        per_student = parts["students_s"] / parts["students"]
        peer = peer - parts["students_s"] + per_student * BENCH_STUDENTS
    return {"cold": cold, "warm": warm, "peer": peer, "peer_teacher": parts["teacher_s"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="runs (medians are printed)")
    ap.add_argument(
        "--peer-students",
        type=int,
        default=None,
        help=f"time the peer on the first N of its {BENCH_STUDENTS} students and extrapolate",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP/MKL threads of every timed process (default: torch's own choice); on a "
        "machine loaded by other work, 1 keeps thread-pool contention out of the comparison",
    )
    args = ap.parse_args(argv)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode cached, as for a user
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        os.environ.update(OMP_NUM_THREADS=str(args.threads))
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; "
        f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    runs = []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="kdtheory-e2e-") as tmp:
            t = one_run(Path(tmp), args.peer_students, env)
        runs.append(t)
        print(
            f"run {r + 1}: kdtheory cold {t['cold']:.1f} s, warm {t['warm']:.1f} s; peer loop "
            f"{t['peer']:.1f} s (its teacher {t['peer_teacher']:.1f} s)"
            + (" [students extrapolated]" if args.peer_students else "")
            + f"; peer/cold {t['peer'] / t['cold']:.1f}x, peer/warm {t['peer'] / t['warm']:.1f}x",
            flush=True,
        )
    med = {k: statistics.median(t[k] for t in runs) for k in runs[0]}
    ratios_cold = [t["peer"] / t["cold"] for t in runs]
    ratios_warm = [t["peer"] / t["warm"] for t in runs]
    print(
        f"median of {len(runs)}: kdtheory cold {med['cold']:.1f} s, warm {med['warm']:.1f} s, "
        f"peer {med['peer']:.1f} s; ratio cold {statistics.median(ratios_cold):.1f}x "
        f"(goal 5x), warm {statistics.median(ratios_warm):.1f}x (goal 8x); "
        f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
