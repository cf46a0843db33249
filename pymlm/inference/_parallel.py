"""Replicates in parallel, reproducible whatever the number of processes.

Each replicate i gets its own random generator, spawned from the user's seed
by :class:`numpy.random.SeedSequence` (``SeedSequence(seed).spawn(n)[i]``), so
its draws do not depend on which process runs it or in which order. Work is
split into contiguous batches of replicates, one task per batch, and run in
worker processes when ``n_jobs > 1``; a tqdm bar counts finished replicates.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .._progress import progress_bar
from .._validation import check_n_jobs, check_positive_int, seed_sequence

__all__ = ["run_replicates", "replicate_seeds"]


def replicate_seeds(seed, n: int) -> list[np.random.SeedSequence]:
    """One independent SeedSequence per replicate, from the user's seed (see :func:`check_seed`)."""
    return seed_sequence(seed).spawn(n)


_WORKER: dict = {}


def _init_worker(fn, payload):
    # the payload travels once per worker process, not once per task
    _WORKER["fn"] = fn
    _WORKER["payload"] = payload


def _run_batch(args):
    seeds, start = args
    fn, payload = _WORKER["fn"], _WORKER["payload"]
    return start, [fn(payload, np.random.default_rng(s), start + i) for i, s in enumerate(seeds)]


def run_replicates(fn, payload, n: int, seed=None, n_jobs: int = 1, progress: bool = True,
                   desc: str = "replicates", batch: int | None = None) -> list:
    """Run ``fn(payload, rng, i)`` for i in range(n) and return the results in order.

    Parameters
    ----------
    fn : callable
        A module-level function (picklable) ``(payload, rng, index) -> result``.
    payload : object
        Shared input (pickled once per batch for worker processes).
    n : int
        Number of replicates.
    seed : None, int >= 0, SeedSequence or Generator
        Replicate i always uses ``SeedSequence(seed).spawn(n)[i]``.
    n_jobs : int
        Worker processes; 1 runs in this process. ``-1``: one per CPU
        (:func:`pymlm._validation.check_n_jobs`).
    progress : bool
        Show a progress bar (it appears only once the run has lasted a couple of seconds).
    desc : str
        Label of the progress bar.
    batch : int, optional
        Replicates per task (default: about 4 tasks per worker).

    Returns
    -------
    list
        ``fn``'s results, replicate order.
    """
    n = check_positive_int("number of replicates", n)
    n_jobs = check_n_jobs(n_jobs)
    seeds = replicate_seeds(seed, n)
    bar = progress_bar(n, desc, progress)
    out: list = [None] * n
    try:
        if n_jobs == 1:
            for i, s in enumerate(seeds):
                out[i] = fn(payload, np.random.default_rng(s), i)
                bar.update(1)
            return out
        size = batch or max(1, -(-n // (4 * n_jobs)))
        tasks = [(seeds[s:s + size], s) for s in range(0, n, size)]
        with ProcessPoolExecutor(max_workers=n_jobs, initializer=_init_worker, initargs=(fn, payload)) as pool:
            for start, results in pool.map(_run_batch, tasks):
                out[start:start + len(results)] = results
                bar.update(len(results))
        return out
    finally:
        bar.close()
