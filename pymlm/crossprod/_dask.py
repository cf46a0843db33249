"""Exact cross-products of a Dask DataFrame computed on the workers and added in a tree of tasks
(see :mod:`pymlm.sources._dask`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..sources._dask import tree_reduce, worker_address

__all__ = ["cluster_cross_products"]


def _partition_arrays(design, frame):
    from ..design import batch_arrays
    from ._exact import MAX_ROWS

    frame = frame[list(design.read_columns)]
    step = min(int(design.batch_size), MAX_ROWS)
    for s in range(0, len(frame), step):
        arrays = batch_arrays(design, frame.iloc[s:s + step].reset_index(drop=True))
        if arrays is not None:
            yield arrays


def _partition_scales(design, groups, frame):
    from ._exact import batch_scales, max_scales

    out = None
    for arrays in _partition_arrays(design, frame):
        sc = batch_scales(arrays, groups)
        out = sc if out is None else max_scales(out, sc)
    return out


def _max_or_none(a, b):
    from ._exact import max_scales

    return b if a is None else a if b is None else max_scales(a, b)


def _partition_cross_products(design, groups, dims, scales, frame):
    from ._exact import ExactPartial, exact_partial

    out = ExactPartial.empty(dims, len(design.fixed_spec.names))
    for arrays in _partition_arrays(design, frame):
        out = out.add(exact_partial(arrays, groups, dims, scales))
    out.workers = {worker_address()}
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

    from ._exact import power_scale

    shipped = replace(design, source=None)  # the design travels without the frame it came from
    terms = design.re_terms
    dims = tuple((sum(terms[k].p for k in g), terms[g[0]].nlevels) for g in groups)
    parts = frame[list(design.read_columns)].to_delayed()
    maxima = dask.compute(tree_reduce([dask.delayed(_partition_scales, pure=True)(shipped, groups, part)
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
    total = dask.compute(tree_reduce(partials, _add, "pymlm-crossprod"))[0]
    weighted = design.weights_column is not None
    cp, G, colsum, colsumsq = total.cross_products(scales, weighted)
    return cp, G, colsum, colsumsq, total.binary, (total.y_min, total.y_max), total.n, total.workers
