"""The data multiplier: how many times more labelled samples label training needs."""

from __future__ import annotations

from typing import Any

import numpy as np

from kdtheory.hypothesis.toolkit.options import NAN


def data_multiplier(
    n_train: np.ndarray, label_acc: np.ndarray, kd_acc: np.ndarray
) -> list[dict[str, Any]]:
    """How many times more labelled samples label training needs to match KD, per fraction.

    The mean label accuracy curve is interpolated linearly in log kappa between the observed
    fractions (never extrapolated). For KD's mean accuracy ``a`` at kappa, the matching kappa* is
    the smallest kappa on the piecewise-linear label curve where it reaches ``a``, and the
    multiplier is ``kappa* / kappa``.

    Parameters
    ----------
    n_train : array (F,)
        kappa per fraction (ascending).
    label_acc, kd_acc : array (F,)
        Mean test accuracy of label and KD training per fraction (NaN where unknown).

    Returns
    -------
    list of dict
        One record per fraction: ``n_train``, ``kd_accuracy``, ``matching_n_train`` (kappa*),
        ``multiplier`` and ``status``: ``"interpolated"``; ``"above label curve max"`` when KD
        beats every label accuracy observed (multiplier NaN; ``multiplier_bound`` = kappa_max /
        kappa is a lower bound); ``"below label curve min"`` when KD is below the label curve's
        first point (multiplier NaN; ``multiplier_bound`` = kappa_min / kappa is an upper bound);
        ``"no data"`` when KD's accuracy is NaN or the label curve has under 2 points.
    """
    n_train = np.asarray(n_train, dtype=float)
    label_acc = np.asarray(label_acc, dtype=float)
    kd_acc = np.asarray(kd_acc, dtype=float)
    ok = np.isfinite(label_acc) & np.isfinite(n_train) & (n_train > 0)
    xs, ys = np.log(n_train[ok]), label_acc[ok]
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    out: list[dict[str, Any]] = []
    for kappa, a in zip(n_train, kd_acc, strict=True):
        rec: dict[str, Any] = {
            "n_train": int(kappa),
            "kd_accuracy": float(a),
            "matching_n_train": NAN,
            "multiplier": NAN,
            "multiplier_bound": NAN,
            "status": "no data",
        }
        if not np.isfinite(a) or xs.size < 2:
            out.append(rec)
            continue
        if a > ys.max():
            rec["status"] = "above label curve max"
            rec["multiplier_bound"] = float(np.exp(xs[-1]) / kappa)
        elif a < ys[0]:
            rec["status"] = "below label curve min"
            rec["multiplier_bound"] = float(np.exp(xs[0]) / kappa)
        else:
            # first segment [i, i+1] of the curve that reaches a
            if a == ys[0]:
                x_star = xs[0]
            else:
                i = int(np.flatnonzero((ys[:-1] < a) & (ys[1:] >= a))[0])
                t = (a - ys[i]) / (ys[i + 1] - ys[i])
                x_star = xs[i] + t * (xs[i + 1] - xs[i])
            rec["matching_n_train"] = float(np.exp(x_star))
            rec["multiplier"] = float(np.exp(x_star) / kappa)
            rec["status"] = "interpolated"
        out.append(rec)
    return out
