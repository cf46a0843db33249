"""BLAS thread control.

OpenBLAS parallelizes level-1 and level-2 calls (dot products, mat-vecs) that
are too small to gain from threads, and its threads spin against any other
busy process on the machine; one such call can then take fifty times longer.
The fitters run single-threaded BLAS by default and lift the limit only
around the large level-3 calls (dense Cholesky and inverse of the crossed
block, the big [X y] Gram products), where threads pay off.
"""

from __future__ import annotations

import contextlib

__all__ = ["blas_threads"]

_CONTROLLER = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        import numpy  # noqa: F401 - load the BLAS libraries before inspecting them
        import scipy.linalg  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def blas_threads(n: int | None):
    """Context manager: at most ``n`` BLAS threads inside (``None``: the default)."""
    try:
        return _controller().limit(limits=n, user_api="blas")
    except Exception:  # no controllable BLAS: run as is
        return contextlib.nullcontext()
