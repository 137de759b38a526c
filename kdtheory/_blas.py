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
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit the BLAS libraries numpy and scipy use to one thread inside the block."""
    from threadpoolctl import threadpool_limits  # ~15 ms; only when an analysis runs

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def with_single_blas_thread(func: F) -> F:
    """Decorator: run ``func`` inside :func:`single_blas_thread`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_blas_thread():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
