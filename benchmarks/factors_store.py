"""Ship the ``factors`` sweep as ``data-factors/``: what the factor analysis needs, nothing more.

    kdtheory run --preset factors --out runs/factors
    python benchmarks/factors_store.py runs/factors data-factors/

It writes one combined netCDF file per experiment, as ``kdtheory export`` does, without the
optional feature variables (``features``, ``classifier_weight``, ``classifier_bias``,
``teacher_features``): they are most of the store's size and only the neural-collapse hypothesis
reads them. Every required variable of the schema, the loss histories and the per-cell
convergence records stay, so ``kdtheory inspect``, ``kdtheory test data-efficiency --by ...``,
``kdtheory plot factor`` and ``kdtheory report`` work on the result. ``data-factors/`` lies beside
``data/``, not inside it: ``open_runs`` reads every ``.nc`` file under a folder, so a subfolder of
``data/`` would join the reference store's verdicts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kdtheory import open_runs
from kdtheory.store.runs import RunStore, export_store

#: optional variables left out (neural collapse only), with the dimensions only they use
FEATURE_VARIABLES = ("features", "classifier_weight", "classifier_bias", "teacher_features")
FEATURE_DIMS = ("feature_sample", "feature", "teacher_feature")


def slim(store: RunStore) -> RunStore:
    """The store without its feature variables and their dimensions."""
    out = {}
    for name, ds in store.items():
        ds = ds.drop_vars([v for v in FEATURE_VARIABLES if v in ds.variables])
        out[name] = ds.drop_dims([d for d in FEATURE_DIMS if d in ds.dims])
    return RunStore(out, path=store.path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, help="the factors sweep's run store")
    ap.add_argument("out", type=Path, help="folder to write (e.g. data-factors/)")
    args = ap.parse_args(argv)
    written = export_store(slim(open_runs(args.runs)), args.out)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} experiments to {args.out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
