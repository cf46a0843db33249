"""Dask helpers shared by the passes that run a Dask DataFrame on its own cluster.

A Dask DataFrame is computed on its own cluster: the first pass scans each
partition where it lives (:mod:`pymlm.design._dask`), the cross-products are
computed partition by partition in exact integer arithmetic and added in a
tree of tasks on the workers (:mod:`pymlm.crossprod._dask`). Integer sums are
associative, so the result is bitwise the same for any partitioning, any
order in which the partitions finish, any shape of the tree and any task the
scheduler runs again after losing a worker.

Tasks go to the Dask scheduler in use: the cluster of an active
``distributed.Client``, else Dask's local scheduler.
"""

from __future__ import annotations

__all__ = ["dask_frame", "tree_reduce", "worker_address"]


def dask_frame(source):
    """The Dask DataFrame behind ``source``, or None for every other source."""
    return getattr(source, "dask_frame", None)


def worker_address() -> str:
    """The address of the Dask worker running the calling task ("local" outside a cluster)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def tree_reduce(items: list, combine, name: str):
    """Delayed pairwise reduction of ``items`` (a balanced binary tree of tasks)."""
    import dask

    level = 0
    while len(items) > 1:
        nxt = []
        for i in range(0, len(items) - 1, 2):
            nxt.append(dask.delayed(combine, pure=True, name=f"{name}-{level}")(items[i], items[i + 1]))
        if len(items) % 2:
            nxt.append(items[-1])
        items, level = nxt, level + 1
    return items[0]
