"""Print the wall time of the commands whose start-up a user feels: help, ``list`` and usage errors.

    python benchmarks/startup.py [--repeat 5] [--runs data/]

Each command runs ``--repeat`` times as a fresh process (the ``kdtheory`` script of this
environment, so the entry-point wrapper counts too) and the median, min and max wall times are
printed, with the exit status of the last run. The target (issue 13) is under 1 s for each on the
project's development machine; this is a measurement to read, not a test, since timings depend on
the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def kdtheory_command() -> list[str]:
    """The ``kdtheory`` script next to this interpreter, else ``python -m kdtheory.cli.app``."""
    script = Path(sys.executable).with_name("kdtheory")
    if script.is_file():
        return [str(script)]
    found = shutil.which("kdtheory")
    return [found] if found else [sys.executable, "-m", "kdtheory.cli.app"]


def time_command(argv: list[str], repeat: int, one_thread: bool = True) -> tuple[list[float], int]:
    """Wall times of ``repeat`` runs of ``argv`` (output discarded) and the last exit status.

    ``one_thread`` pins OpenMP/MKL to one thread (start-up is single-threaded work; pinning only
    removes thread-pool noise). Pass False to time a command as a user runs it.

    Python writes and reuses bytecode as it does for a user: ``PYTHONDONTWRITEBYTECODE`` (set in
    some sandboxes and CI images) is removed from the commands' environment, and one untimed run
    first writes the bytecode of kdtheory's own modules (an editable install compiles them on
    first use; without a bytecode cache each run compiled them again, about 0.1 s here).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if one_thread:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(argv, capture_output=True, env=env, check=False)  # untimed: bytecode, caches
    times = []
    code = 0
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
        code = done.returncode
    return times, code


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--runs", default="data/")
    args = ap.parse_args(argv)
    base = kdtheory_command()
    commands = [
        ["--help"],
        ["list"],
        ["test", "dark-knowlege", "--runs", args.runs],
        ["plot", "acuracy", "--runs", args.runs, "--output", "x.pdf"],
        ["run", "--bogus"],
    ]
    print(f"{'command':<50} {'median':>8} {'min':>7} {'max':>7}  exit")
    for cmd in commands:
        times, code = time_command(base + cmd, args.repeat)
        shown = "kdtheory " + " ".join(cmd)
        print(
            f"{shown:<50} {statistics.median(times):7.2f}s {min(times):6.2f}s "
            f"{max(times):6.2f}s  {code}"
        )


if __name__ == "__main__":
    main()
