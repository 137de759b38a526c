"""The peer baseline: the training loop a researcher writes instead of using kdtheory.

Plain PyTorch, one model after another in one process: an ``nn.Sequential`` MLP, a
``DataLoader`` over the (sub)set with ``shuffle=True``, ``torch.optim.AdamW`` with a per-step
cosine schedule (``CosineAnnealingLR``), the objective's loss written out, then the logits on the
whole training and test sets and the penultimate features of a fixed sample, saved with
``np.savez`` per model. It trains what ``kdtheory run --preset bench`` trains, with the same
shapes and budgets: the teacher (MLP 1024 × 3 on the full training set, 3000 steps of batch 64,
lr 1e-3), then 140 students (MLP 128 × 2; methods label, KD at T=4, label smoothing with the
teacher-matched epsilon and KD with shuffled wrong-class probabilities; 7 fractions; 5 seeds;
1000 steps of batch 64, lr 1e-3). A subset smaller than a batch gives smaller batches here
(kdtheory cycles it to a full batch), a little less work for the peer.

Used by ``benchmarks/end_to_end.py``; runs on its own too::

    python benchmarks/peer_loop.py --out /tmp/peer            # teacher + 140 students
    python benchmarks/peer_loop.py --out /tmp/peer --students 14

It prints one JSON line: seconds for the teacher, the students and in all, and students timed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

DATASET = "mnist1d"
FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
SEEDS = (0, 1, 2, 3, 4)
METHODS = ("label", "kd", "ls", "kd-shuffled")
TEMPERATURE = 4.0
TEACHER = {"width": 1024, "depth": 3, "steps": 3000}
STUDENT = {"width": 128, "depth": 2, "steps": 1000}
BATCH, LR, FEATURE_SAMPLES = 64, 1e-3, 512


def mlp(in_features: int, width: int, depth: int, classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    return nn.Sequential(*layers, nn.Linear(in_features, classes))


def loss_fn(method: str, logits, y, soft, eps: float) -> torch.Tensor:
    if method == "label":
        return F.cross_entropy(logits, y)
    if method == "ls":
        return F.cross_entropy(logits, y, label_smoothing=eps)
    log_p = F.log_softmax(logits / TEMPERATURE, dim=-1)  # kd and kd-shuffled
    return F.kl_div(log_p, soft, reduction="batchmean") * TEMPERATURE**2


def train(model, x, y, soft, method: str, eps: float, steps: int, seed: int) -> None:
    loader = DataLoader(
        TensorDataset(x, y, soft),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    step = 0
    while step < steps:
        for xb, yb, sb in loader:
            loss = loss_fn(method, model(xb), yb, sb, eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step == steps:
                break


@torch.no_grad()
def outputs(model: nn.Sequential, x_train, x_test, feature_idx) -> dict[str, np.ndarray]:
    model.eval()
    body = model[:-1]
    return {
        "train_logits": model(x_train).numpy(),
        "test_logits": model(x_test).numpy(),
        "features": body(x_train[feature_idx]).numpy(),
    }


def shuffled(probs: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """Permute each row's wrong-class probabilities among the wrong classes."""
    rows, k = torch.arange(len(y)), probs.shape[1]
    order = torch.arange(k).repeat(len(y), 1)
    order[rows, y] = k  # the true class sorts last
    keys = torch.rand(len(y), k, generator=torch.Generator().manual_seed(seed))
    keys[rows, y] = 2.0
    wrong, permuted = order.argsort(1)[:, :-1], keys.argsort(1)[:, :-1]
    return probs.clone().scatter_(1, wrong, probs.gather(1, permuted))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the .npz results")
    parser.add_argument("--students", type=int, default=None, help="train only the first N")
    parser.add_argument(
        "--steps", type=int, default=None, help="other budgets (a smoke check, not the benchmark)"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    from kdtheory.training.sweep import load_dataset  # the same arrays kdtheory trains on

    data = load_dataset(DATASET)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test = torch.from_numpy(data.x_test)
    n, k, d = len(y_train), data.num_classes, x_train.shape[1]
    feature_idx = torch.from_numpy(np.random.default_rng(0).permutation(n)[:FEATURE_SAMPLES])
    args.out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    teacher = mlp(d, TEACHER["width"], TEACHER["depth"], k)
    zeros = torch.zeros(n, k)
    t_steps, s_steps = (
        (args.steps, args.steps) if args.steps else (TEACHER["steps"], STUDENT["steps"])
    )
    train(teacher, x_train, y_train, zeros, "label", 0.0, t_steps, 0)
    out = outputs(teacher, x_train, x_test, feature_idx)
    np.savez(args.out / "teacher.npz", **out)
    teacher_logits = torch.from_numpy(out["train_logits"])
    t_teacher = time.perf_counter() - t0

    cells = [(m, f, s) for s in SEEDS for f in FRACTIONS for m in METHODS]
    cells = cells[: args.students] if args.students else cells
    for method, fraction, seed in cells:
        rng = np.random.default_rng(seed)
        idx = torch.from_numpy(np.sort(rng.permutation(n)[: max(1, round(fraction * n))]))
        probs = torch.softmax(teacher_logits[idx] / TEMPERATURE, dim=-1)
        if method == "kd-shuffled":
            probs = shuffled(probs, y_train[idx], seed)
        true_mass = probs.gather(1, y_train[idx][:, None]).mean().item()
        eps = (1 - true_mass) * k / (k - 1)  # F.cross_entropy spreads eps over all k classes
        torch.manual_seed(seed)
        student = mlp(d, STUDENT["width"], STUDENT["depth"], k)
        train(student, x_train[idx], y_train[idx], probs, method, eps, s_steps, seed)
        result = outputs(student, x_train, x_test, feature_idx)
        np.savez(args.out / f"{method}__f{fraction:g}__s{seed}.npz", **result)
    total = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "teacher_s": round(t_teacher, 2),
                "students_s": round(total - t_teacher, 2),
                "total_s": round(total, 2),
                "students": len(cells),
                "threads": torch.get_num_threads(),
                "finite": bool(math.isfinite(float(teacher_logits.sum()))),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
