"""Benchmark: one sweep trained cell by cell and as batched groups, in one process.

Prints, for each preset: cells/second each way and their ratio, the batched path's achieved
GFLOP/s against this machine's float32 matmul ceiling (a large ``torch.matmul`` timed in the same
run), and the peak memory. Run it on a quiet machine::

    python benchmarks/sweep.py                  # bench (MLP), then the CNN and ViT presets
    python benchmarks/sweep.py --presets bench --repeats 3
    python benchmarks/sweep.py --presets cnn,vit --threads 1   # one torch thread
    python benchmarks/sweep.py --presets cnn --batch-cells 35  # groups of 35 cells

Only training is timed (evaluation and file writing are the same work both ways). The
sequential path trains a subsample of the cells (``--sequential-cells``) and reports its rate;
cells are independent, so the rate does not depend on how many are timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from kdtheory.store.runs import cell_filename
from kdtheory.training.allocator import keep_freed_memory
from kdtheory.training.engine import CellJob, TrainConfig, TrainingData, resolve_device, train_group
from kdtheory.training.grouped import grouped_linear
from kdtheory.training.subsets import subset
from kdtheory.training.sweep import (
    PRESETS,
    ExperimentConfig,
    cells_per_group,
    load_dataset,
    model_builder,
    parse_methods,
)

BENCH_PRESETS = {
    "bench": PRESETS["bench"][0],
    # the reference students at the shapes measured before per-cell budgets (batch 32, 800
    # fixed steps), so the rows stay comparable; the benchmark times fixed-step groups
    "cnn": replace(
        PRESETS["reference"][1], seeds=(0, 1, 2, 3, 4), batch_size=32, epochs=None, steps=800
    ),
    "vit": replace(
        PRESETS["reference"][2], seeds=(0, 1, 2, 3, 4), batch_size=32, epochs=None, steps=800
    ),
}


def matmul_ceiling(device: torch.device, repeats: int = 10) -> float:
    """Best achieved float32 GFLOP/s of a 2048×2048 matmul over ``repeats`` products."""
    probe = CeilingProbe(device, k=repeats)
    probe.measure()
    return probe.samples[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Timing:
    cells: int
    seconds: float
    #: the same from each group's median step time: what the run takes without its stalls
    median_seconds: float

    @property
    def cells_per_second(self) -> float:
        return self.cells / self.seconds

    @property
    def median_cells_per_second(self) -> float:
        return self.cells / self.median_seconds


def make_jobs(cfg: ExperimentConfig, labels: np.ndarray) -> list[CellJob]:
    jobs = []
    for obj in parse_methods(cfg.methods):
        for f in cfg.fractions:
            for s in cfg.seeds:
                jobs.append(CellJob(cell_filename(obj.label, f, s), obj, subset(labels, f, s), s))
    return jobs


def step_flops(jobs, build, data, config) -> float:
    """FLOPs of one optimizer step of one cell (forward + backward + AdamW).

    Counted on a single cell, as the difference between a 2-step and a 1-step run so that the
    evaluation pass every run ends with cancels out. (Counting the batched model directly would
    over-count convolutions: under vmap they run as grouped convolutions, which torch's flop
    counter counts as if ungrouped.) Counted on the ``vmap`` path, i.e. the model's own
    operations: the grouped kernels count differently (the CNN's pooling as a matrix product,
    +6%; the ViT's fused attention, -11%), and the share of the ceiling should not depend on
    which kernels ran.
    """
    jobs = jobs[:1]
    counts = []
    for steps in (1, 2):
        with FlopCounterMode(display=False) as counter:
            train_group(jobs, build, _no_eval(data), replace(config, steps=steps), kernels="vmap")
        counts.append(float(counter.get_total_flops()))
    return counts[1] - counts[0]


def _no_eval(data: TrainingData) -> TrainingData:
    # one test sample and one training sample evaluated: keeps evaluation out of the count
    return TrainingData(
        data.x_train, data.y_train, data.x_test[:1], data.teacher_train_logits, data.num_classes
    )


class CeilingProbe:
    """Times an n×n float32 matmul now and then, to know the machine's speed during a run.

    On a shared machine the speed drifts by a factor of two within minutes, so the ceiling the
    batched path is compared against is sampled *during* its timed steps (the probes' own time
    is left out of the step timing). Each sample is the best of ``k`` products written into a
    reused output, so that a cold cache or a fresh allocation does not lower the ceiling.
    """

    def __init__(self, device: torch.device, n: int = 2048, k: int = 3) -> None:
        self.n, self.k = n, k
        self.device = device
        self.a = torch.randn(n, n, device=device)
        self.b = torch.randn(n, n, device=device)
        self.out = torch.empty(n, n, device=device)
        self.samples: list[float] = []

    def measure(self) -> None:
        best = float("inf")
        for _ in range(self.k):
            _sync(self.device)
            t0 = time.perf_counter()
            torch.matmul(self.a, self.b, out=self.out)
            _sync(self.device)
            best = min(best, time.perf_counter() - t0)
        self.samples.append(2 * self.n**3 / best / 1e9)


def time_training(
    jobs, build, data, config, group: int, probe: CeilingProbe | None = None, every: int = 100
) -> Timing:
    """Train ``jobs`` in groups of ``group``; time the optimizer steps only.

    With ``probe``, the matmul ceiling is sampled before and after each group and every ``every``
    steps within it (not timed as training).
    """
    total = median_total = 0.0
    for g in range(0, len(jobs), group):
        marks: list[float] = []
        paused = [0.0]

        def on_step(done: int, n: int, marks=marks, paused=paused) -> None:
            marks.append(time.perf_counter())
            if probe is not None and done % every == 0 and done < n:
                t0 = time.perf_counter()
                probe.measure()
                paused[0] += time.perf_counter() - t0

        if probe is not None:
            probe.measure()
        train_group(jobs[g : g + group], build, _no_eval(data), config, on_step=on_step)
        total += marks[-1] - marks[0] - paused[0]
        median_total += statistics.median(np.diff(marks)) * config.steps  # probes: outliers
        if probe is not None:
            probe.measure()
    steps_timed = config.steps - 1  # from the end of step 1 to the end of the last step
    return Timing(len(jobs), total * config.steps / steps_timed, median_total)


def mlp_gemm_bound(model: torch.nn.Module, cells: int, batch: int, device: torch.device) -> str:
    """GFLOP/s of one batched step's matrix products alone, against the ceiling around them.

    Runs :func:`kdtheory.training.grouped.grouped_linear` (no bias) forward and backward for every
    ``nn.Linear`` of ``model`` on random stacked tensors of a group of ``cells`` (no input
    gradient for the first layer, as in training): the same products in the same layouts as a
    training step, without its element-wise work, loss and optimizer. An upper bound on what the
    whole step can reach.
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not layers:
        return "no nn.Linear layers"
    operands, flops = [], 0.0
    for i, lin in enumerate(layers):
        n_in, n_out = lin.in_features, lin.out_features
        x = torch.randn(cells, batch, n_in, device=device, requires_grad=i > 0)
        w = torch.randn(cells, n_out, n_in, device=device, requires_grad=True)
        g = torch.randn(cells, batch, n_out, device=device)
        operands.append((x, w, g))
        flops += (3 if i > 0 else 2) * 2.0 * cells * batch * n_in * n_out

    def step() -> None:
        for x, w, g in operands:  # grad, not backward: no accumulation into .grad
            torch.autograd.grad(grouped_linear(x, w), [x, w] if x.requires_grad else [w], g)

    step()  # warm-up
    probe = CeilingProbe(device)
    probe.measure()
    _sync(device)
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        step()
    _sync(device)
    achieved = flops * reps / (time.perf_counter() - t0) / 1e9
    probe.measure()
    ceiling = statistics.mean(probe.samples)
    return (
        f"{achieved:.1f} GFLOP/s = {100 * achieved / ceiling:.0f}% of the matmul ceiling "
        f"({ceiling:.0f} GFLOP/s, measured just before and after)"
    )


def bench(name: str, cfg: ExperimentConfig, args, device: torch.device, ceiling: float) -> None:
    data_np = load_dataset(cfg.dataset)
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(len(data_np.y_train), data_np.num_classes)).astype(np.float32)
    data = TrainingData.from_numpy(
        data_np.x_train, data_np.y_train, data_np.x_test, teacher, data_np.num_classes, device
    )
    build = model_builder(cfg.student, data_np.input_shape, data_np.num_classes)
    steps = args.steps or cfg.steps
    config = TrainConfig(steps, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.log_points)
    jobs = make_jobs(cfg, data_np.y_train)
    group = cells_per_group(args.batch_cells, cfg, data_np, args.memory_budget)
    seq_jobs = jobs[:: max(1, len(jobs) // args.sequential_cells)][: args.sequential_cells]
    flops_per_step = step_flops(jobs, build, data, config)
    print(
        f"\n== {name}: {cfg.dataset} student {cfg.student}, {len(jobs)} cells "
        f"({len(cfg.methods)} methods × {len(cfg.fractions)} fractions × {len(cfg.seeds)} seeds), "
        f"{steps} steps of batch {cfg.batch_size}; batched groups of {min(group, len(jobs))}",
        flush=True,
    )
    if cfg.student.startswith("mlp"):
        print(
            "  the batched step's matrix products alone (bound on the whole step): "
            + mlp_gemm_bound(build(), min(group, len(jobs)), cfg.batch_size, device),
            flush=True,
        )
    seq_rates, bat_rates, gflops, ceilings = [], [], [], []
    for r in range(args.repeats):
        seq = time_training(seq_jobs, build, data, config, group=1)
        rss_seq = peak_rss_mib()
        probe = CeilingProbe(device)
        bat = time_training(jobs, build, data, config, group=group, probe=probe)
        rss_bat = peak_rss_mib()
        achieved = flops_per_step * steps * len(jobs) / bat.seconds / 1e9
        during = statistics.median(probe.samples)
        seq_rates.append(seq.cells_per_second)
        bat_rates.append(bat.cells_per_second)
        gflops.append(achieved)
        ceilings.append(during)
        print(
            f"  run {r + 1}: sequential {seq.cells_per_second:.3f} cells/s "
            f"({len(seq_jobs)} cells timed), batched {bat.cells_per_second:.3f} cells/s, "
            f"ratio {bat.cells_per_second / seq.cells_per_second:.1f}x; batched "
            f"{achieved:.1f} GFLOP/s = {100 * achieved / during:.0f}% of the matmul ceiling "
            f"during the run ({during:.0f} GFLOP/s, median of {len(probe.samples)} probes, "
            f"range {min(probe.samples):.0f}-{max(probe.samples):.0f}), "
            f"{100 * achieved / ceiling:.0f}% of the start-up ceiling; "
            f"peak RSS {rss_seq:.0f} MiB after sequential, {rss_bat:.0f} MiB after batched; "
            f"from median step times (stalls left out): sequential "
            f"{seq.median_cells_per_second:.3f}, batched {bat.median_cells_per_second:.3f} "
            f"cells/s, ratio {bat.median_cells_per_second / seq.median_cells_per_second:.1f}x, "
            f"{100 * achieved * bat.seconds / bat.median_seconds / during:.0f}% of the ceiling",
            flush=True,
        )
    med = statistics.median
    shares = [g / c for g, c in zip(gflops, ceilings, strict=True)]
    print(
        f"  median: sequential {med(seq_rates):.3f} cells/s, batched {med(bat_rates):.3f} "
        f"cells/s, ratio {med(bat_rates) / med(seq_rates):.1f}x, "
        f"{med(gflops):.1f} GFLOP/s; share of the matmul ceiling measured during each run: "
        f"median {100 * med(shares):.0f}% (runs: {', '.join(f'{100 * x:.0f}%' for x in shares)})"
    )


def _batch_cells(text: str) -> int | str:
    """``--batch-cells``: ``auto`` or a positive number of cells."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of cells >= 1, or auto")
    return int(text)


def _load() -> str:
    """The host's load averages, which explain much of the spread between runs."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="bench,cnn,vit", help="bench, cnn, vit")
    parser.add_argument("--repeats", type=int, default=1, help="runs per preset (median)")
    parser.add_argument("--steps", type=int, default=None, help="override the step budget")
    parser.add_argument("--sequential-cells", type=int, default=20)
    parser.add_argument("--memory-budget", type=float, default=2 * 1024**3)
    parser.add_argument(
        "--batch-cells",
        type=_batch_cells,
        default="auto",
        help="cells per batched group: a number, or auto (from --memory-budget, as kdtheory run)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's choice); the ceiling is measured with the same",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    kept = keep_freed_memory() if device.type == "cpu" else False
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"torch threads, torch {torch.__version__}, device {device}, "
        f"glibc keeps freed memory: {kept}"
    )
    print(f"load average at the start (1, 5, 15 min): {_load()}")
    ceiling = matmul_ceiling(device)
    print(f"float32 matmul ceiling (2048^3, best of 10): {ceiling:.1f} GFLOP/s")
    for name in args.presets.split(","):
        bench(name, BENCH_PRESETS[name], args, device, ceiling)
    print(f"\nfinal matmul ceiling re-check: {matmul_ceiling(device):.1f} GFLOP/s")
    print(f"load average at the end (1, 5, 15 min): {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
