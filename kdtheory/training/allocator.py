"""Memory for training: the default budget of a batched group, and host memory reuse on a CPU.

:func:`default_memory_budget` is what ``kdtheory run --memory-budget auto`` gives a batched group
(the cells per group follow from it): 2 GiB on a CPU, and on a GPU a share of the memory it has
free when the sweep starts.

Keep freed host memory for reuse during CPU training (glibc only).

A training step allocates and frees the same multi-megabyte tensors every step (activations,
gradients). glibc's ``malloc`` serves blocks that large with ``mmap`` and hands them back to the
kernel on ``free``, so every step page-faults (and the kernel zeroes) the same memory again: on
the ``bench`` preset that was about 900 page faults and roughly a tenth of a CPU step.
:func:`keep_freed_memory` raises glibc's mmap and trim thresholds so freed blocks stay in the
heap and are reused. It changes a process-wide setting, so the library never calls it by itself:
``kdtheory run`` and the benchmark do, as whole-process programs that only train.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

__all__ = [
    "CPU_MEMORY_BUDGET",
    "GPU_MEMORY_SHARE",
    "default_memory_budget",
    "keep_freed_memory",
]

#: the batched group's memory budget on a CPU (and any device but CUDA)
CPU_MEMORY_BUDGET = 2 * 1024**3
#: the share of a GPU's free memory a batched group may use: the rest covers the estimate's
#: error (:func:`kdtheory.training.engine.bytes_per_cell` is rough), the teacher, the
#: evaluation chunks and the CUDA caching allocator's fragmentation
GPU_MEMORY_SHARE = 0.6


def default_memory_budget(device: Any) -> int:
    """The memory a batched group may use on ``device`` when none is given.

    Parameters
    ----------
    device : torch.device
        The training device.

    Returns
    -------
    int
        Bytes: :data:`GPU_MEMORY_SHARE` of the free memory reported by
        ``torch.cuda.mem_get_info`` on a CUDA device, :data:`CPU_MEMORY_BUDGET` elsewhere.
    """
    if getattr(device, "type", str(device)) != "cuda":
        return CPU_MEMORY_BUDGET
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return max(1, int(GPU_MEMORY_SHARE * free))


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's upper limit on 64-bit systems
_TRIM_THRESHOLD = 1 << 30

_done = False


def keep_freed_memory() -> bool:
    """Ask glibc to keep blocks up to 32 MiB and up to 1 GiB of free heap for reuse.

    Returns
    -------
    bool
        True when the setting took effect (Linux with glibc), False elsewhere (a no-op).
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1 and ok
    _done = ok
    return ok
