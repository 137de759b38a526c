"""Print the README's verdict tables for a run store (default ``data/``).

    python benchmarks/verdict_table.py [--runs data/] [--alpha 0.05]

The first table is ``kdtheory test all --runs data/ --format markdown``'s family table (every
hypothesis: decision after Holm across the family, the deciding test, its estimate, CI with its
level, p and Holm p); the second gives each experiment's own decision with the p of its deciding
test. Paste both into the README section "What the shipped data/ store says".
"""

from __future__ import annotations

import argparse

from kdtheory.hypothesis.family import run_all
from kdtheory.hypothesis.verdict import fmt_p, render


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="data/")
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args(argv)
    verdicts = run_all(args.runs, alpha=args.alpha)
    family = render(verdicts, "markdown").split("\n\n### ")[0]
    print(family.removeprefix("## Verdicts\n\n"))
    names = [r.label for r in verdicts[0].experiments]
    print()
    print("| experiment | " + " | ".join(v.hypothesis for v in verdicts) + " |")
    print("|---|" + "---|" * len(verdicts))
    for name in names:
        cells = []
        for v in verdicts:
            row = next((r for r in v.experiments if r.label == name), None)
            cells.append("" if row is None else f"{row.decision} (p {fmt_p(row.p_value)})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
