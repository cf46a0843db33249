"""A Flower federation on this machine: a SuperLink, one SuperNode per site file, ``flwr run``.

For tests and ``pymlm federated demo``: every process listens on 127.0.0.1
(insecure, loopback only), on free ports; the Flower home (connection
config, installed app) is a temporary directory. All processes are stopped
when the run ends.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from ._sums import FederationError

__all__ = ["run_flower"]


def _free_ports(k: int) -> list[int]:
    socks = []
    try:
        for _ in range(k):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tool(name: str) -> str:
    here = pathlib.Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise FederationError(f"the Flower command {name!r} is not installed; pip install 'pymlm[federated]'")
    return found


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "") + "'"


def run_flower(site_files: dict, formula: str, *, reml: bool = True, secure: bool = True,
               topology: str = "ring", timeout: float = 180.0, workdir=None) -> dict:
    """Fit ``formula`` over a loopback Flower federation, one SuperNode per site file.

    Parameters
    ----------
    site_files : dict
        Site name -> path of its data file (Parquet, CSV; read by the site's ClientApp only).
    formula : str
    reml, secure : bool
    topology : {"ring", "tree", "star"}
    timeout : float
        Seconds for the whole run.
    workdir : path, optional
        Where the Flower home, the app and the logs go (default: a temporary directory).

    Returns
    -------
    dict
        :func:`pymlm.federated.flower.fit_summary` of the fit, plus ``"seconds"``.
    """
    from .flower import write_app

    base = pathlib.Path(workdir or tempfile.mkdtemp(prefix="pymlm-flower-"))
    home, logs = base / "flwr-home", base / "logs"
    home.mkdir(parents=True, exist_ok=True)
    logs.mkdir(exist_ok=True)
    app = write_app(base / "app")
    out = base / "fit.json"
    n = len(site_files)
    ports = _free_ports(3 + n)
    link = f"127.0.0.1:{ports[0]}"  # the SuperLink's one HTTP port: Fleet, Control and ServerAppIo APIs
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\naddress = "{link}"\ninsecure = true\n'
    )
    env = dict(os.environ, FLWR_HOME=str(home), FLWR_DISABLE_UPDATE_CHECK="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PATH"] = os.pathsep.join((str(pathlib.Path(_tool("flower-superlink")).parent), env.get("PATH", "")))
    root = str(pathlib.Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    procs = []

    def start(cmd, log):
        f = open(logs / log, "wb")  # noqa: SIM115 (closed with the process below)
        procs.append((subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=base), f))

    t0 = time.monotonic()
    try:
        start([_tool("flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(ports[0]),
               "--database", str(base / "state.db")], "superlink.log")
        for (name, path), port in zip(site_files.items(), ports[3:]):
            config = f"data-path='{pathlib.Path(path).resolve()}' site-name='{name}'"
            start([_tool("flower-supernode"), "--insecure", "--superlink", link,
                   "--host", "127.0.0.1", "--port", str(port), "--node-config", config],
                  f"supernode-{name}.log")
        run_config = " ".join(
            f"{k}={_toml(v)}"
            for k, v in {"formula": formula, "reml": bool(reml), "secure": bool(secure),
                         "topology": topology, "sites": n, "out": str(out),
                         "wait": float(timeout / 2)}.items()
        )
        deadline = t0 + timeout
        while True:  # the Control API takes a moment to listen
            r = subprocess.run([_tool("flwr"), "run", str(app), "loopback", "--run-config", run_config], check=False,
                               env=env, capture_output=True, text=True, cwd=base)
            if r.returncode == 0 or time.monotonic() > deadline or procs[0][0].poll() is not None:
                break
            time.sleep(0.5)
        if r.returncode != 0:
            raise FederationError(f"flwr run failed: {(r.stdout + r.stderr)[-2000:]}")
        while not out.exists():
            if time.monotonic() > deadline:
                tail = (logs / "superlink.log").read_text(errors="replace")[-2000:]
                raise FederationError(f"the Flower run gave no result within {timeout:g} s; SuperLink log: {tail}")
            time.sleep(0.2)
        time.sleep(0.1)
        result = json.loads(out.read_text())
    finally:
        for p, f in procs:
            p.terminate()
        for p, f in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            f.close()
    if not result.get("ok"):
        raise FederationError(f"the Flower run failed: {result.get('error')}")
    result["seconds"] = time.monotonic() - t0
    return result
