"""Print the wall time of the analysis commands on a store: ``test``, ``test all`` and ``report``.

    python benchmarks/analysis.py [--repeat 3] [--runs data/]

Each command runs ``--repeat`` times as a fresh process, as a user runs it (the ``kdtheory`` script
of this environment, default thread settings, output discarded; ``report`` writes into a temporary
folder that is removed afterwards), and the median, min and max wall times are printed with the
exit status of the last run. Targets: ``kdtheory report --runs data/`` under 10 s (issue 14);
``kdtheory test all`` under 2 s and one hypothesis under 1.5 s (issue 15). This is a measurement to
read, not a test: timings depend on the machine and its load (printed before and after).

It times the environment of the interpreter that runs it. Whether Dask is installed matters:
with it (the ``dev`` and ``cluster`` extras), xarray imports ``dask.array`` the first time it makes
a variable in every process, which adds a few tenths of a second to each command. To time a plain
install, run this script with the interpreter of a virtual environment made by
``pip install -e .`` (no extras).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
from pathlib import Path

from startup import kdtheory_command, time_command


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runs", default="data/")
    args = ap.parse_args(argv)
    base = kdtheory_command()
    dask = importlib.util.find_spec("dask") is not None
    print(f"{base[0]}: Dask {'installed' if dask else 'not installed'}")
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        commands = [
            ["test", "dark-knowledge", "--runs", args.runs],
            ["test", "all", "--runs", args.runs],
            ["report", "--runs", args.runs, "--out", str(Path(tmp) / "report")],
        ]
        print(f"{'command':<50} {'median':>8} {'min':>7} {'max':>7}  exit")
        for cmd in commands:
            times, code = time_command(base + cmd, args.repeat, one_thread=False)
            shown = "kdtheory " + " ".join(c if not c.startswith(tmp) else "OUT" for c in cmd)
            print(
                f"{shown:<50} {statistics.median(times):7.2f}s {min(times):6.2f}s "
                f"{max(times):6.2f}s  {code}"
            )
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
