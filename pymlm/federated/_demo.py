"""``pymlm federated demo``: a bundled data set split over sites, fitted federated and pooled."""

from __future__ import annotations

import pathlib
import tempfile
import time

import numpy as np

from ..errors import OptionError

__all__ = ["demo"]

FORMULA = "Reaction ~ Days + (Days | Subject)"


def _split(n_sites: int, directory: pathlib.Path):
    from .. import datasets

    df = datasets.load("sleepstudy")
    subjects = sorted(df.Subject.astype(str).unique())
    if not 2 <= n_sites <= len(subjects) // 3:
        raise OptionError(
            f"--sites must be between 2 and {len(subjects) // 3} (each site needs 3 subjects); got {n_sites}"
        )
    files = {}
    for k in range(n_sites):
        part = df[df.Subject.astype(str).isin(subjects[k::n_sites])]
        files[f"site{k + 1}"] = directory / f"site{k + 1}.parquet"
        part.to_parquet(files[f"site{k + 1}"])
    return df, files


def _flower_available() -> bool:
    try:
        import flwr  # noqa: F401
    except ImportError:
        return False
    return True


def demo(pooled_lmer, n_sites: int = 4, transport: str = "auto", print_=print) -> dict:
    """Split sleepstudy's subjects over ``n_sites`` Parquet files, fit the federation (Flower
    SuperLink and SuperNodes on 127.0.0.1, or one process per site), fit the pooled data, and
    print their agreement, the rounds and the bytes each site sent.

    ``pooled_lmer`` is :func:`pymlm.lmer` (passed in by the CLI, which sits above this package).
    """
    from ._lmer import lmer
    from ._process import ProcessSite
    from ._sites import piece_count

    if transport == "auto":
        transport = "flower" if _flower_available() else "processes"
    if transport not in ("flower", "processes"):
        raise OptionError(f"--transport must be auto, flower or processes; got {transport!r}")
    with tempfile.TemporaryDirectory(prefix="pymlm-demo-") as tmp:
        df, files = _split(n_sites, pathlib.Path(tmp))
        t0 = time.perf_counter()
        if transport == "flower":
            from ._deploy import run_flower

            got = run_flower(files, FORMULA, workdir=pathlib.Path(tmp) / "flower", timeout=3600)
            fixef, theta, sigma = got["fixef"], np.array(got["theta"]), got["sigma"]
            rounds, sent = got["rounds"], got["bytes_per_site"]
        else:
            sites = [ProcessSite(path, name=name) for name, path in files.items()]
            try:
                f = lmer(FORMULA, sites)
            finally:
                for s in sites:
                    s.close()
            fixef, theta, sigma = dict(f.fixef), f.theta, f.sigma
            rounds, sent = f.rounds, f.bytes_per_site
        seconds = time.perf_counter() - t0
    m = pooled_lmer(FORMULA, df)
    beta = np.array([fixef[k] for k in m.fixef.index])
    d_beta = float(np.max(np.abs(beta - m.fixef.to_numpy()) / m.fixef_se.to_numpy()))
    d_theta = float(np.max(np.abs(theta - m.theta)))
    d_sigma = abs(sigma / m.sigma - 1)
    p, nt = len(m.fixef), len(m.theta)
    minimum = 8 * piece_count(p, nt, True)
    per_round = {k: v / max(rounds - 2, 1) for k, v in sent.items()}
    print_(f"pymlm federated demo: {FORMULA}, sleepstudy over {n_sites} sites ({transport}), {seconds:.1f} s")
    print_(f"{'':14s}{'pooled':>14s}{'federated':>14s}")
    for k, b in zip(m.fixef.index, beta):
        print_(f"{k:14s}{m.fixef[k]:14.6f}{b:14.6f}")
    print_(f"{'sigma':14s}{m.sigma:14.6f}{sigma:14.6f}")
    print_(f"agreement: max |dbeta|/SE = {d_beta:.2e}, max |dtheta| = {d_theta:.2e}, |dsigma|/sigma = {d_sigma:.2e}")
    print_(f"rounds: {rounds}")
    print_(
        f"average bytes a site sent per evaluation round: {min(per_round.values()):.0f}-{max(per_round.values()):.0f} "
        f"(the sums need {piece_count(p, nt, True)} values: {minimum} bytes as doubles, "
        f"{minimum * 3} as the exact 192-bit fixed point)"
    )
    return {"d_beta": d_beta, "d_theta": d_theta, "d_sigma": d_sigma, "rounds": rounds,
            "bytes_per_site": sent, "transport": transport}
