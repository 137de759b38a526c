"""Calibration of the built-in hypotheses: wrong-finding rates under nulls, power under effects.

Runs every case of :data:`kdtheory.testing.calibration.NULLS` and
:data:`kdtheory.testing.calibration.EFFECTS`
on ``--n`` independent synthetic stores per case, for one experiment (5 seeds) and for three
experiments (3 seeds each, 100 test samples), with each pooling method, and prints a Markdown
table: the rate of the wrong (null) or right (effect) decision, and for nulls the one-sided 99%
Clopper-Pearson upper bound and whether the count stays within the 99% binomial quantile at
alpha. The README records the last run.

    python benchmarks/calibration.py --n 200            # about 10 minutes on 2 cores
    python benchmarks/calibration.py --n 40 --only fidelity-decay
"""

from __future__ import annotations

import argparse
import sys
import time

from kdtheory.testing.calibration import EFFECTS, NULLS, max_wrong, run_case, upper_rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="stores per case (nulls)")
    ap.add_argument("--n-power", type=int, default=None, help="stores per effect (default n/2)")
    ap.add_argument("--only", default=None, help="one hypothesis")
    ap.add_argument("--designs", default="single,multi")
    ap.add_argument("--pooling", default="mixed,hksj", help="pooling methods (multi design)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    n_power = args.n_power or max(20, args.n // 2)
    start = time.time()
    print(f"alpha = {args.alpha:g}; nulls: {args.n} stores per case; effects: {n_power}.\n")
    print("| hypothesis | truth | design | pooling | finding | rate | 99% bound | ok |")
    print("|---|---|---|---|---|---:|---:|---|")
    ok = True
    for kind, cases, n in (("null", NULLS, args.n), ("effect", EFFECTS, n_power)):
        for case in cases:
            if args.only and case.hypothesis != args.only:
                continue
            for design in args.designs.split(","):
                if not case.fits(design):
                    continue
                poolings = args.pooling.split(",") if design == "multi" else ["mixed"]
                for pooling in poolings:
                    counts = run_case(case, design, n, args.seed, pooling=pooling, alpha=args.alpha)
                    hits = counts[case.decision]
                    rate = hits / n
                    if kind == "null":
                        within = hits <= max_wrong(n, args.alpha)
                        ok &= within or pooling != "mixed"
                        bound, verdict = f"{upper_rate(hits, n):.3f}", "yes" if within else "**no**"
                        finding = f"wrong {case.decision}"
                    else:
                        bound, verdict, finding = "", "", f"right {case.decision} (power)"
                    pool = pooling if design == "multi" else ""
                    print(
                        f"| {case.hypothesis} | {case.label} | {design} | {pool} | {finding} | "
                        f"{rate:.3f} | {bound} | {verdict} |",
                        flush=True,
                    )
    print(f"\n{time.time() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
