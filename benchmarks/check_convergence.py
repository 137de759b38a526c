"""An independent check of the shipped store's convergence, with netCDF4 and numpy only.

It does not import kdtheory: it reads each combined file of a store (``data/`` by default) as
plain netCDF and recomputes, from the stored logits and loss histories,

- each label-trained student's accuracy on its own training subset (criterion: >= 0.99), and
- per method x fraction, the median over seeds of the relative fall of the loss over the last
  20% of its history, ``(L(80%) - L(end)) / L(80%)`` (criterion of the convergence issue:
  <= 0.05), with the absolute fall beside it,

and prints the teachers' test accuracy. Exit status 1 if a label student fits < 99%.

Usage: ``python benchmarks/check_convergence.py [STORE]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import netCDF4
import numpy as np


def _var(nc: netCDF4.Dataset, name: str) -> np.ndarray:
    v = nc.variables[name]
    v.set_auto_maskandscale(True)
    out = np.ma.filled(v[:].astype(np.float64), np.nan)
    return np.asarray(out)


def check(path: Path) -> bool:
    with netCDF4.Dataset(path) as nc:
        methods = [str(m) for m in nc.variables["method"][:]]
        objectives = [str(o) for o in nc.variables["objective"][:]]
        fractions = np.asarray(nc.variables["fraction"][:], float)
        train_logits = _var(nc, "train_logits")  # method, fraction, seed, sample, class
        in_train = np.asarray(nc.variables["in_train"][:], bool)  # fraction, seed, sample
        labels = np.asarray(nc.variables["train_labels"][:])
        history = _var(nc, "loss_history")  # method, fraction, seed, point
        teacher = _var(nc, "teacher_test_logits")
        test_labels = np.asarray(nc.variables["test_labels"][:])
    print(f"\n{path.name}: teacher test accuracy {np.mean(teacher.argmax(-1) == test_labels):.3f}")
    ok = True
    n = history.shape[-1]
    i80 = int(round(0.8 * n)) - 1
    rel = (history[..., i80] - history[..., -1]) / history[..., i80]
    absolute = history[..., i80] - history[..., -1]
    header = f"{'':22s}" + "".join(f"{f'f={f:g}':>9s}" for f in fractions)
    print("median over seeds of the relative fall of the loss over the last 20%")
    print(header)
    for m, name in enumerate(methods):
        print(
            f"{name:22s}" + "".join(f"{np.median(rel[m, f]):>+9.3f}" for f in range(len(fractions)))
        )
    print("median over seeds of the absolute fall")
    print(header)
    for m, name in enumerate(methods):
        print(
            f"{name:22s}"
            + "".join(f"{np.median(absolute[m, f]):>+9.4f}" for f in range(len(fractions)))
        )
    print("smallest accuracy of a label-trained student on its own subset")
    print(header)
    for m, (name, objective) in enumerate(zip(methods, objectives, strict=True)):
        if objective != "label":
            continue
        accs = []
        for f in range(len(fractions)):
            correct = train_logits[m, f].argmax(-1) == labels[None, :]
            acc = (correct & in_train[f]).sum(-1) / in_train[f].sum(-1)
            accs.append(acc.min())
        ok &= bool(np.all(np.asarray(accs) >= 0.99))
        print(f"{name:22s}" + "".join(f"{a:>9.3f}" for a in accs))
    return ok


def main() -> int:
    store = Path(sys.argv[1] if len(sys.argv) > 1 else "data")
    files = sorted(store.glob("*.nc"))
    if not files:
        print(f"{store}: no combined .nc files", file=sys.stderr)
        return 2
    results = [check(p) for p in files]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
