"""A Dask DataFrame computed on its own cluster: the passes of a streamed fit run on the workers.

The stages that stream call these helpers with the Dask DataFrame a source
holds (:attr:`pymlm.sources.Source.dask_frame`): the first pass scans each
partition where it lives (levels, rows dropped for missing values, a sample;
:func:`pymlm.design._stream.dask_scan`) and the states come back to be merged
in partition order. Then each partition's column maxima (order-free) and its
cross-products with the global level codes of the first pass, in exact
integer arithmetic (:mod:`pymlm.crossprod._exact`), are added pairwise in a
tree of tasks on the workers (:func:`pymlm.crossprod._stream.dask_cross_products`;
``bam(discrete = TRUE)``: :func:`pymlm.crossprod._gam_stream.dask_gam_tables`).
Integer sums are associative, so the result is bitwise the same for any
partitioning, any order in which the partitions finish, any shape of the
tree and any task the scheduler runs again after losing a worker.

Tasks go to the Dask scheduler in use: the cluster of an active
``distributed.Client``, else Dask's local scheduler.
"""

from __future__ import annotations

__all__ = ["tree_reduce", "worker_address"]


def worker_address() -> str:
    """The address of the Dask worker running the calling task (``"local"`` outside a worker)."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def tree_reduce(items: list, combine, name: str):
    """Delayed pairwise reduction of ``items`` (a balanced binary tree of tasks named ``name``)."""
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
