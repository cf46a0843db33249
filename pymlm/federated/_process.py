"""A site in its own process: the rows are read and kept there; only answers cross the pipe.

:class:`ProcessSite` starts a child process (forked where the platform allows, else spawned) that reads the site's
data (a CSV or Parquet path, or a data frame handed over once) into a
:class:`~pymlm.federated.LocalSite` and answers the same requests. A child that
dies (killed, crashed) or does not answer within ``timeout`` seconds makes the
request raise :class:`~pymlm.federated.SiteUnavailable`, which the
coordinator's failure policy handles (bypass or retry).
"""

from __future__ import annotations

import multiprocessing as mp
import pathlib

import pandas as pd

from ._sites import LocalSite, SiteUnavailable

__all__ = ["ProcessSite"]


def _read(source):
    if isinstance(source, (str, pathlib.Path)):
        path = pathlib.Path(source)
        return (
            pd.read_parquet(path)
            if path.suffix in (".parquet", ".pq") or path.is_dir()
            else pd.read_csv(path)
        )
    return source


def _serve(conn, source, name):
    site = LocalSite(_read(source), name=name)
    while True:
        try:
            method, args, kwargs = conn.recv()
        except EOFError:
            return
        if method == "close":
            return
        try:
            conn.send((True, getattr(site, method)(*args, **kwargs)))
        except Exception as exc:  # noqa: BLE001 (any failure goes back to the coordinator, which re-raises it)
            conn.send((False, exc))


class ProcessSite:
    """A site answering from a child process.

    Parameters
    ----------
    source : str, pathlib.Path or pandas.DataFrame
        A CSV or Parquet path read in the child, or a frame sent to it once.
    name : str
    timeout : float
        Seconds to wait for an answer before the site counts as unavailable.

    Examples
    --------
    >>> import pymlm as ml
    >>> import pymlm.federated as fed
    >>> df = ml.datasets.load("sleepstudy")
    >>> even = df.Subject.astype(int) % 2 == 0
    >>> sites = [fed.ProcessSite(df[even], name="even"), fed.ProcessSite(df[~even], name="odd")]
    >>> round(fed.lmer("Reaction ~ Days + (Days | Subject)", sites).reml_criterion, 3)
    1743.628
    >>> for s in sites:
    ...     s.close()
    """

    def __init__(self, source, name: str, timeout: float = 120.0):
        self.name = name
        self.timeout = float(timeout)
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, source, name), daemon=True)
        self.process.start()
        child.close()

    def __repr__(self) -> str:
        return f"ProcessSite(name={self.name!r}, pid={self.process.pid})"

    def _call(self, method, *args, **kwargs):
        try:
            self._conn.send((method, args, kwargs))
            if not self._conn.poll(self.timeout):
                raise SiteUnavailable(
                    f"site {self.name!r} did not answer within {self.timeout:g} s"
                )
            ok, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise SiteUnavailable(
                f"site {self.name!r} is not answering ({type(exc).__name__})"
            ) from exc
        if not ok:
            raise value
        return value

    def describe(self, *args, **kwargs):
        return self._call("describe", *args, **kwargs)

    def setup(self, *args, **kwargs):
        return self._call("setup", *args, **kwargs)

    def pieces(self, *args, **kwargs):
        return self._call("pieces", *args, **kwargs)

    def sums(self, *args, **kwargs):
        return self._call("sums", *args, **kwargs)

    def shrink(self, *args):
        return self._call("shrink", *args)

    def key_shares(self, *args):
        return self._call("key_shares", *args)

    def hold_shares(self, *args):
        return self._call("hold_shares", *args)

    def reveal_share(self, *args):
        return self._call("reveal_share", *args)

    def cross_products(self):
        return self._call("cross_products")

    def close(self):
        """Stop the child process."""
        try:
            self._conn.send(("close", (), {}))
        except OSError:
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
        self._conn.close()
