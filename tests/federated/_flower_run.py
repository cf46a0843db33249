"""The loopback Flower federation of ``test_flower.py``, started when the session starts.

A Flower round trip is mostly waiting (a SuperNode polls its SuperLink every
3 s and starts a ClientApp process per message), so the federation runs in a
background thread beside the rest of the suite; the test, collected last,
waits for its result and checks it.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

SLEEP = "Reaction ~ Days + (Days | Subject)"
TEST_ID = "test_flower.py::test_flower_loopback_federation_equals_the_pooled_fit"

_pool: ThreadPoolExecutor | None = None
_future: Future | None = None


def _run(workdir: Path) -> dict:
    from _fed_data import sleepstudy_sites

    from pymlm.federated._deploy import run_flower

    _, sites = sleepstudy_sites()
    files = {}
    for s in sites:
        files[s.name] = workdir / f"{s.name}.parquet"
        s._data.to_parquet(files[s.name])
    return run_flower(files, SLEEP, workdir=workdir / "flower", timeout=1500)


def start() -> None:
    """Start the federation once (idempotent)."""
    global _pool, _future
    if _future is None:
        workdir = Path(tempfile.mkdtemp(prefix="pymlm-flower-test-"))
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flower-loopback")
        _future = _pool.submit(_run, workdir)


def result(timeout: float = 1800.0) -> dict:
    """The federation's fit summary (started now if the session did not start it)."""
    start()
    return _future.result(timeout=timeout)
