"""A Dask DataFrame computed on its own cluster: both passes of a streamed fit run on the workers.

The first pass scans each partition where it lives (levels, rows dropped for
missing values, a sample; :func:`pymlm.design._stream.scan_part`) and the
states come back to be merged in partition order. The second finds each
column's largest magnitude (maxima: order-free), the third computes each
partition's cross-products with the global level codes of the first pass in
exact integer arithmetic (:mod:`pymlm.crossprod._exact`) and adds them
pairwise in a tree of tasks on the workers. Integer sums are associative, so
the result is bitwise the same for any partitioning, any order in which the
partitions finish, any shape of the tree and any task the scheduler runs
again after losing a worker.

``bam(discrete = TRUE)`` runs the same way (:func:`cluster_gam_tables`): the
first pass on the workers, then each partition's maxima, then its exact
integer cross-tabulations (:mod:`pymlm.crossprod._gam_stream`), added in a
tree of tasks.

Tasks go to the Dask scheduler in use: the cluster of an active
``distributed.Client``, else Dask's local scheduler.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

__all__ = ["cluster_cross_products", "cluster_gam_tables", "cluster_scan"]


def _worker() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _tree(items: list, combine, name: str):
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


def cluster_scan(frame, scan, columns, batch_size: int):
    """The first pass over a Dask DataFrame, partition by partition on the workers.

    Returns
    -------
    the merged scan state (see :class:`pymlm.design._stream._Scan`)
    """
    import dask

    from ..design._stream import scan_part

    parts = frame[list(columns)].to_delayed()
    states = dask.compute(*[dask.delayed(scan_part, pure=True)(scan, part, list(columns), batch_size)
                            for part in parts])
    out = scan.empty()
    for s in states:
        out.merge(s)
    return out


def _partition_arrays(design, frame):
    from ..crossprod._exact import MAX_ROWS
    from ..design import batch_arrays

    frame = frame[list(design.read_columns)]
    step = min(int(design.batch_size), MAX_ROWS)
    for s in range(0, len(frame), step):
        arrays = batch_arrays(design, frame.iloc[s:s + step].reset_index(drop=True))
        if arrays is not None:
            yield arrays


def _partition_scales(design, groups, frame):
    from ..crossprod._exact import batch_scales, max_scales

    out = None
    for arrays in _partition_arrays(design, frame):
        sc = batch_scales(arrays, groups)
        out = sc if out is None else max_scales(out, sc)
    return out


def _max_or_none(a, b):
    from ..crossprod._exact import max_scales

    return b if a is None else a if b is None else max_scales(a, b)


def _partition_cross_products(design, groups, dims, scales, frame):
    from ..crossprod._exact import ExactPartial, exact_partial

    out = ExactPartial.empty(dims, len(design.fixed_spec.names))
    for arrays in _partition_arrays(design, frame):
        out = out.add(exact_partial(arrays, groups, dims, scales))
    out.workers = {_worker()}
    return out


def _add(a, b):
    return a.add(b)


def cluster_cross_products(frame, design, groups):
    """Exact cross-products of a Dask DataFrame, computed on the workers.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
    design : StreamDesign
    groups : sequence of sequence of int
        Design terms fitted as one term.

    Returns
    -------
    cp : CrossProducts
    G : ndarray (p, p)
        X'X without prior weights.
    colsum, colsumsq : ndarray (p,)
    binary : ndarray of bool (p,)
    y_range : (float, float)
    n_rows : int
    workers : set of str
        The workers that computed a partition.
    """
    import dask

    from ..crossprod._exact import power_scale

    shipped = replace(design, source=None)  # the design travels without the frame it came from
    terms = design.re_terms
    dims = tuple((sum(terms[k].p for k in g), terms[g[0]].nlevels) for g in groups)
    parts = frame[list(design.read_columns)].to_delayed()
    maxima = dask.compute(_tree([dask.delayed(_partition_scales, pure=True)(shipped, groups, part)
                                 for part in parts], _max_or_none, "pymlm-scales"))[0]
    if maxima is None:
        maxima = {"xy": np.zeros(len(design.fixed_spec.names) + 1), "logw": np.zeros(1)}
        maxima["wxy"] = maxima["xy"]
        maxima["re"] = maxima["wre"] = [np.zeros(pk) for pk, _ in dims]
    scales = {"xy": power_scale(maxima["xy"]), "wxy": power_scale(maxima["wxy"]),
              "re": [power_scale(m) for m in maxima["re"]], "wre": [power_scale(m) for m in maxima["wre"]],
              "logw": power_scale(maxima["logw"])}
    partials = [dask.delayed(_partition_cross_products, pure=True)(shipped, groups, dims, scales, part)
                for part in parts]
    total = dask.compute(_tree(partials, _add, "pymlm-crossprod"))[0]
    weighted = design.weights_column is not None
    cp, G, colsum, colsumsq = total.cross_products(scales, weighted)
    return cp, G, colsum, colsumsq, total.binary, (total.y_min, total.y_max), total.n, total.workers


def _gam_partition_batches(plan, frame):
    from ..design._gam_stream import gam_batch

    frame = frame[list(plan.design.read_columns)]
    step = max(int(plan.design.batch_size), 1)
    for s in range(0, len(frame), step):
        gb = gam_batch(plan, frame.iloc[s:s + step].reset_index(drop=True))
        if gb is not None:
            yield gb


def _gam_partition_maxima(plan, frame):
    from ..crossprod._gam_stream import batch_maxima, max_maxima

    out = None
    for gb in _gam_partition_batches(plan, frame):
        out = max_maxima(out, batch_maxima(plan, gb))
    return out


def _gam_max(a, b):
    from ..crossprod._gam_stream import max_maxima

    return max_maxima(a, b)


def _gam_partition_tables(plan, scales, frame):
    from ..crossprod._gam_stream import GamTables, batch_tables

    out = GamTables()
    for gb in _gam_partition_batches(plan, frame):
        batch_tables(plan, gb, scales, out)
    out.workers = {_worker()}
    return out.compact()


def _gam_add(a, b):
    return a.add(b).compact()


def cluster_gam_tables(frame, plan):
    """Exact cross-tabulations of a streamed ``bam`` over a Dask DataFrame, computed on the workers.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
    plan : GamStreamPlan

    Returns
    -------
    tables : GamTables
        With ``workers``, the workers that computed a partition.
    scales : dict
    """
    import dask

    from ..crossprod._gam_stream import scales_of

    parts = frame[list(plan.design.read_columns)].to_delayed()
    maxima = dask.compute(_tree([dask.delayed(_gam_partition_maxima, pure=True)(plan, part) for part in parts],
                                _gam_max, "pymlm-gam-scales"))[0]
    if maxima is None:
        from ..errors import DataError

        raise DataError("the Dask DataFrame has no complete rows")
    scales = scales_of(plan, maxima)
    partials = [dask.delayed(_gam_partition_tables, pure=True)(plan, scales, part) for part in parts]
    tables = dask.compute(_tree(partials, _gam_add, "pymlm-gam-tables"))[0]
    return tables, scales
