"""Time and peak memory of `kdtheory test all` and `kdtheory export` on stores larger than memory.

    python benchmarks/large_store.py [--scales 0.125,0.5,1] [--experiments 3] [--keep]

Writes synthetic run stores with CIFAR-100-like shapes (50,000 train and 10,000 test samples ×
100 classes at scale 1; 4 methods × 7 fractions × 3 seeds = 84 cells per experiment, each cell
with 1,000 × 64 features; ``--experiments`` experiments) one cell at a time with
:func:`kdtheory.testing.cell_store.write_synthetic_cells`, in the layout `kdtheory run` writes. A
scale s multiplies the sample counts, so a store at scale s holds s times the bytes. On each store
it runs, as fresh processes:

- ``kdtheory test all --runs STORE --lazy`` (one cell in memory at a time),
- ``kdtheory test all --runs STORE --in-memory`` up to ``--in-memory-up-to`` (the whole store
  loaded; at scale 1 it would need several times the store's size),
- ``kdtheory export STORE --out DIR --lazy`` (combined files written chunk by chunk),

and prints wall time and peak RSS (the process's ``ru_maxrss``) for each, then how time and memory
grow from the smallest scale to the largest. The stores are written under ``--root`` (default: a
temporary folder, removed afterwards unless ``--keep``). This is a measurement to read, not a
test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from startup import kdtheory_command

from kdtheory.store.runs import store_bytes
from kdtheory.testing.cell_store import CellStoreShape, write_synthetic_cells

FULL = CellStoreShape()  # CIFAR-100-like: 50,000 / 10,000 samples, 100 classes, 84 cells

_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "wall = time.perf_counter() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
    "print(wall, rss, code.returncode)\n"
    "sys.stderr.write(code.stderr.decode()[-2000:] if code.returncode else '')\n"
)


def measure(cmd: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in bytes and exit status of ``cmd`` run in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True
    )
    if out.stderr:
        sys.stderr.write(out.stderr)
    wall, rss, code = out.stdout.split()
    return float(wall), int(rss), int(code)


def write_store(root: Path, scale: float, experiments: int) -> tuple[CellStoreShape, float]:
    """Write the store of one scale; its shape and the seconds it took."""
    shape = replace(FULL, n_train=round(FULL.n_train * scale), n_test=round(FULL.n_test * scale))
    t = time.perf_counter()
    for e in range(experiments):
        write_synthetic_cells(root, f"cifar100-like-{e}", shape, seed=e)
    return shape, time.perf_counter() - t


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="0.125,0.5,1")
    ap.add_argument("--experiments", type=int, default=3)
    ap.add_argument("--in-memory-up-to", type=float, default=0.5)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON here.")
    args = ap.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    base = kdtheory_command()
    root = args.root or Path(tempfile.mkdtemp(prefix="kdtheory-large-"))
    env_note = f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}"
    print(f"large-store benchmark under {root} ({env_note})", flush=True)
    rows = []
    try:
        for scale in scales:
            store = root / f"scale-{scale:g}"
            shutil.rmtree(store, ignore_errors=True)
            shape, wrote = write_store(store, scale, args.experiments)
            size = store_bytes(store)
            row: dict[str, object] = {
                "scale": scale,
                "cells": shape.cells * args.experiments,
                "train_samples": shape.n_train,
                "store_bytes": size,
                "write_s": wrote,
            }
            print(
                f"scale {scale:g}: {row['cells']} cells of {shape.n_train} × {shape.n_classes} "
                f"train logits, {gib(size)} on disk, written in {wrote:.0f} s",
                flush=True,
            )
            runs: list[tuple[str, list[str]]] = [
                ("test_all_lazy", ["test", "all", "--runs", str(store), "--lazy"])
            ]
            if scale <= args.in_memory_up_to:
                runs.append(
                    ("test_all_in_memory", ["test", "all", "--runs", str(store), "--in-memory"])
                )
            export = root / f"export-{scale:g}"
            runs.append(("export_lazy", ["export", str(store), "--out", str(export), "--lazy"]))
            for name, cmd in runs:
                wall, rss, code = measure(base + cmd)
                row[name] = {"wall_s": wall, "peak_rss_bytes": rss, "exit": code}
                print(f"  {name:<20} {wall:7.1f} s   peak RSS {gib(rss)}   exit {code}", flush=True)
            shutil.rmtree(export, ignore_errors=True)
            if not args.keep:
                shutil.rmtree(store, ignore_errors=True)
            rows.append(row)
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"{'':<20}" + "".join(f"{'scale ' + format(r['scale'], 'g'):>22}" for r in rows))
    print(f"{'store on disk':<20}" + "".join(f"{gib(r['store_bytes']):>22}" for r in rows))
    for name in ("test_all_lazy", "test_all_in_memory", "export_lazy"):
        cells = []
        for r in rows:
            m = r.get(name)
            cells.append(f"{m['wall_s']:.0f} s / {gib(m['peak_rss_bytes'])}" if m else "—")
        print(f"{name:<20}" + "".join(f"{c:>22}" for c in cells))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(
            f"\nfrom scale {first['scale']:g} to {last['scale']:g} the store grows "
            f"{last['store_bytes'] / first['store_bytes']:.1f}×;"
        )
        for name in ("test_all_lazy", "export_lazy"):
            a, b = first[name], last[name]
            print(
                f"  {name}: time {b['wall_s'] / a['wall_s']:.1f}×, peak RSS "
                f"{b['peak_rss_bytes'] / a['peak_rss_bytes']:.1f}× "
                f"(largest {gib(b['peak_rss_bytes'])})"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
