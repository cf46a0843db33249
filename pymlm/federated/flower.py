"""pymlm's protocol on Flower: a ClientApp per site, a ServerApp running the coordinator.

The same :class:`~pymlm.federated.Coordinator` runs inside a Flower
``ServerApp``; each site is a Flower ``SuperNode`` whose ``ClientApp``
reads its own data file (``node-config``: ``data-path``, any source
:func:`pymlm.sources.as_source` reads, and ``site-name``) and answers only
pymlm's request types (:data:`pymlm.federated._wire.METHODS`). Every message
is a ``query`` whose ``RecordDict`` holds one ``ConfigRecord`` ``"pymlm"``
with the request's type and its exact bytes (:mod:`pymlm.federated._wire`:
fixed-point residues as integers, doubles as their bits). Flower's
quantizing SecAgg+ is not used: pymlm's own pairwise masks make the sums
secure and exact. The requests of one round go to all sites in one
``grid.send_and_receive`` call.

A ClientApp process may serve one message only, so a site keeps its private
key and the agreed design's parameters in the node's ``context.state`` and
rebuilds its design from its file per message (its answers are pure
functions of data and request).

Deployment (see ``tests/federated/test_flower.py`` and ``pymlm federated demo``)::

    flower-superlink --insecure
    flower-supernode --insecure --superlink 127.0.0.1:9092 \\
        --clientappio-api-address 127.0.0.1:9094 \\
        --node-config "data-path='site0.parquet' site-name='site0'"
    ...
    flwr run <app directory> <connection> --run-config "formula='y ~ x + (1 | g)' out='fit.json'"

:func:`write_app` writes the app directory (a ``pyproject.toml`` naming
:data:`serverapp` and :data:`clientapp`).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import time

from ..errors import PymlmError
from ._sites import LocalSite, SiteUnavailable
from ._sums import FederationError, SiteKeys
from ._wire import METHODS, dumps, loads

__all__ = ["FlowerSite", "FlowerTransport", "clientapp", "serverapp", "write_app"]

try:  # the optional extra pymlm[federated]
    from flwr.app import ConfigRecord, Message, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
except ImportError:  # pragma: no cover - without flwr only the in-process and process runners exist
    ClientApp = ServerApp = None

_RECORD = "pymlm"
_STATE = "pymlm-site"


# ---------------------------------------------------------------- the site (ClientApp)
def _site_from(context) -> tuple[LocalSite, dict]:
    from ..sources import as_source

    cfg = context.node_config
    if "data-path" not in cfg:
        raise FederationError(
            "the SuperNode has no node-config 'data-path' naming the site's data file; start it with "
            "--node-config \"data-path='site.parquet' site-name='A'\""
        )
    path = str(cfg["data-path"])
    name = str(cfg.get("site-name", pathlib.Path(path).stem))
    source = as_source(path)
    site = LocalSite(source.read(list(source.columns)), name=name)
    state = context.state.config_records.get(_STATE)
    if state is None:
        state = ConfigRecord({"key": site._keys.private_bytes})
        context.state[_STATE] = state
    site._keys = SiteKeys(bytes(state["key"]))
    return site, state


def _answer(msg, context):
    rec = msg.content.config_records.get(_RECORD)
    try:
        if rec is None or rec.get("method") not in (*METHODS, "hello"):
            raise FederationError("a pymlm site answers only pymlm requests")
        method, args = str(rec["method"]), loads(rec["args"])
        site, state = _site_from(context)
        if method == "hello":
            value = site.name
        elif method == "describe":
            value = site.describe(*args)
        elif method == "setup":
            value = site.setup(*args)
            state["setup"] = dumps(args)
        else:
            if "setup" not in state:
                raise FederationError(f"site {site.name!r} was not set up; the coordinator sends setup first")
            agreement, participants, *_ = loads(state["setup"])
            site.setup(agreement, participants, 0, 0)  # rebuild the agreed design (pure)
            value = getattr(site, method)(*args)
        reply = ConfigRecord({"ok": True, "value": dumps(value)})
    except PymlmError as exc:
        reply = ConfigRecord({"ok": False, "error": type(exc).__name__, "text": str(exc)})
    return Message(RecordDict({_RECORD: reply}), reply_to=msg)


if ClientApp is not None:
    clientapp = ClientApp()
    clientapp.query()(_answer)
else:  # pragma: no cover
    clientapp = None


# ---------------------------------------------------------------- the coordinator's side
class _Pending:
    def __init__(self):
        self.done, self.value, self.error = False, None, None

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


class FlowerTransport:
    """Sends pymlm requests to SuperNodes through a Flower ``Grid``.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
    timeout : float
        Seconds to wait for the answers of one round; a site that has not
        answered by then is unavailable (the failure policy decides).
    """

    def __init__(self, grid, timeout: float = 120.0):
        self.grid, self.timeout = grid, float(timeout)
        self._queue = None
        self.sent_bytes = 0

    def _message(self, node, method, args):
        payload = dumps(args)
        self.sent_bytes += len(payload)
        content = RecordDict({_RECORD: ConfigRecord({"method": method, "args": payload})})
        return Message(content, dst_node_id=int(node), message_type="query")

    @contextlib.contextmanager
    def batch(self):
        """Requests made inside go out together when the block ends."""
        self._queue = []
        try:
            yield
        finally:
            queue, self._queue = self._queue, None
            if queue:
                self._flush(queue)

    def _flush(self, queue):
        messages = [self._message(node, method, args) for node, method, args, _ in queue]
        replies = {}  # one request per site in a batch: answers are matched by their node
        for r in self.grid.send_and_receive(messages, timeout=self.timeout):
            replies[int(r.metadata.src_node_id)] = r
        for node, method, _, pending in queue:
            r = replies.get(int(node))
            pending.done = True
            if r is None or r.has_error():
                why = "no answer" if r is None else r.error.reason
                pending.error = SiteUnavailable(f"the site at node {node} did not answer {method!r} ({why})")
                continue
            rec = r.content.config_records[_RECORD]
            if not rec["ok"]:
                pending.error = _remote_error(str(rec["error"]), str(rec["text"]))
            else:
                pending.value = loads(rec["value"])

    def ask(self, node, method, args):
        """Send one request (or queue it inside :meth:`batch`, returning its pending answer)."""
        pending = _Pending()
        item = (node, method, tuple(args), pending)
        if self._queue is not None:
            self._queue.append(item)
            return pending
        self._flush([item])
        return pending.result()

    def names(self, nodes) -> dict:
        """Node id -> the site's name (its node-config ``site-name``)."""
        with self.batch():
            got = {n: self.ask(n, "hello", ()) for n in nodes}
        return {n: p.result() for n, p in got.items()}


def _remote_error(cls: str, text: str) -> Exception:
    from .. import errors

    kind = getattr(errors, cls, None)
    if kind is None or not (isinstance(kind, type) and issubclass(kind, PymlmError)):
        kind = FederationError
    return kind(text)


class FlowerSite:
    """A site answering through Flower (the coordinator's handle on one SuperNode)."""

    def __init__(self, transport: FlowerTransport, node_id: int, name: str):
        self.transport, self.node_id, self.name = transport, int(node_id), name

    def __repr__(self) -> str:
        return f"FlowerSite(name={self.name!r}, node_id={self.node_id})"

    def describe(self, *args):
        return self.transport.ask(self.node_id, "describe", args)

    def setup(self, *args):
        return self.transport.ask(self.node_id, "setup", args)

    def pieces(self, *args):
        return self.transport.ask(self.node_id, "pieces", args)

    def sums(self, *args):
        return self.transport.ask(self.node_id, "sums", args)

    def cross_products(self):
        raise FederationError("the one-round cross-products mode is not offered over Flower")


def fit_summary(fit) -> dict:
    """A federated fit's estimates as JSON-ready values (exact: floats round-trip)."""
    return {
        "fixef": {k: float(v) for k, v in fit.fixef.items()},
        "fixef_se": {k: float(v) for k, v in fit.fixef_se.items()},
        "theta": [float(v) for v in fit.theta],
        "sigma": float(fit.sigma),
        "reml": bool(fit.reml),
        "reml_criterion": float(fit.reml_criterion),
        "deviance": float(fit.deviance),
        "rounds": int(fit.rounds),
        "bytes_per_site": {k: int(v) for k, v in fit.bytes_per_site.items()},
        "sites_used": list(fit.sites_used),
        "estimand_changed": bool(fit.estimand_changed),
    }


def _main(grid, context):
    from ._lmer import lmer

    cfg = context.run_config
    want, wait = int(cfg.get("sites", 3)), float(cfg.get("wait", 60.0))
    deadline = time.monotonic() + wait
    nodes = list(grid.get_node_ids())
    while len(nodes) < want and time.monotonic() < deadline:
        time.sleep(0.2)
        nodes = list(grid.get_node_ids())
    out = pathlib.Path(str(cfg["out"]))
    try:
        if len(nodes) < want:
            raise FederationError(f"{len(nodes)} SuperNode(s) connected within {wait:g} s; {want} expected")
        transport = FlowerTransport(grid, timeout=float(cfg.get("timeout", 120.0)))
        names = transport.names(sorted(nodes))
        sites = [FlowerSite(transport, n, names[n]) for n in sorted(nodes, key=lambda n: names[n])]
        fit = lmer(
            str(cfg["formula"]),
            sites,
            REML=bool(cfg.get("reml", True)),
            secure=bool(cfg.get("secure", True)),
            topology=str(cfg.get("topology", "ring")),
            on_failure=str(cfg.get("on-failure", "bypass")),
        )
        result = {"ok": True, **fit_summary(fit)}
    except Exception as exc:  # noqa: BLE001 (the run's outcome goes back to the caller, whatever it is)
        import traceback

        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    out.write_text(json.dumps(result))


if ServerApp is not None:
    serverapp = ServerApp()
    serverapp.main()(_main)
else:  # pragma: no cover
    serverapp = None


_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "pymlm-federation"
version = "1.0.0"
description = "pymlm's federated linear mixed model on Flower"
license = "MIT"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "pymlm"

[tool.flwr.app.components]
serverapp = "pymlm_federation:serverapp"
clientapp = "pymlm_federation:clientapp"

[tool.flwr.app.config]
formula = "y ~ 1 + (1 | g)"
reml = true
secure = true
topology = "ring"
sites = 3
wait = 60.0
timeout = 120.0
on-failure = "bypass"
out = "fit.json"
"""


def write_app(directory) -> pathlib.Path:
    """Write the Flower app directory (``pyproject.toml`` and a module naming the two apps)."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "pyproject.toml").write_text(_PYPROJECT)
    (d / "pymlm_federation.py").write_text(
        '"""pymlm\'s federated fit as a Flower app."""\n\n'
        "from pymlm.federated.flower import clientapp, serverapp\n\n"
        '__all__ = ["clientapp", "serverapp"]\n'
    )
    return d
