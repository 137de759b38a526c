"""One BLAS thread for the analysis: faster on its small matrices, and the same numbers anywhere.

The analysis multiplies small matrices (a few hundred feature rows by at most a few hundred
features, per cell). Multi-threaded OpenBLAS is slower there than one thread (measured on the
project's 2-core machine under load: a 180×128 Gram product took 0.36 ms with 2 threads and
0.12 ms with one; a linear CKA 6.7 ms against 0.41 ms), and how a product is split between
threads changes its last bits, so numbers depended on the machine's core count. The hypothesis
tests and the feature metrics therefore run inside :func:`single_blas_thread`. Torch's own thread
pool (training) is not affected.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


_open: list[int] = []  # per open block that set limits: len(sys.modules) when it scanned
_open_lock = threading.Lock()


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit the BLAS libraries numpy and scipy use to one thread inside the block.

    Re-entrant and cheap when nested: a block opened inside another keeps the outer limit
    instead of scanning the loaded libraries again (threadpoolctl's scan takes about 5 ms, and
    the hypotheses and the metrics they call each open a block), unless modules were imported
    since the last scan (one of them may have loaded another BLAS library).
    """
    from threadpoolctl import threadpool_limits  # ~15 ms; only when an analysis runs

    with _open_lock:
        scan = not _open or _open[-1] != len(sys.modules)
        if scan:
            _open.append(len(sys.modules))
    if not scan:
        yield
        return
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        with _open_lock:
            _open.pop()


def with_single_blas_thread(func: F) -> F:
    """Decorator: run ``func`` inside :func:`single_blas_thread`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_blas_thread():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
