"""The coordinator: agrees the design, runs the rounds, keeps only sums.

The coordinator holds no site's rows and no site's unmasked values: it sees
the first round's structure (names, factor levels, salted level hashes,
public keys), then per round either masked vectors (star) or masked partial
sums (ring, tree) and their sum, which it decodes. Its transcript lists every
message (round, kind, sender, receiver, bytes), never a payload.

Rounds: 1 ``describe`` (structure), 2 ``setup`` (agreed design; sum of n and
sum log w), then one ``pieces`` round per evaluation of the criterion (its
gradient comes in the same round). A round that loses a site is restarted on
the survivors (``on_failure="bypass"``: the site is dropped for the rest of the
fit, and the estimand changes: the fit is of the remaining sites' groups) or
the site is asked again up to ``retries`` times (``"retry"``: answers are pure
functions of the request, so repeating is safe), then the fit stops; or
(``"recover"``) the round is completed from the survivors' masked answers
once ``threshold`` of them reveal their shares of the dropped site's key
(:mod:`pymlm.federated._sums`), and the fit goes on without it.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from ..crossprod import CrossProducts
from ..fit.deviance import Evaluator, SitePieces
from ..linalg import ThetaMap
from ._sites import Agreement, SiteUnavailable, piece_count
from ._sums import (
    TOPOLOGIES,
    FederationError,
    FixedPoint,
    Message,
    aggregate,
    dropped_masks,
    shamir_combine,
)

__all__ = ["Coordinator", "SiteSumEvaluator"]


def _r_order(labels):
    """R's level order of the union of level labels: numeric when every label is a number,
    else code points."""
    labels = sorted(set(labels))
    try:
        return sorted(labels, key=float)
    except ValueError:
        return labels


class Coordinator:
    """Runs the protocol over a list of sites (see the module header)."""

    def __init__(
        self,
        sites,
        formula: str,
        reml: bool,
        *,
        secure: bool = True,
        topology: str = "ring",
        codec: FixedPoint | None = None,
        levels: dict | None = None,
        min_groups: int = 3,
        min_rows: int = 10,
        max_rounds: int = 200,
        on_failure: str = "bypass",
        retries: int = 2,
        threshold: int | None = None,
        zero_columns=(),
    ):
        if topology not in TOPOLOGIES:
            raise FederationError(f"topology must be 'ring', 'tree' or 'star'; got {topology!r}")
        self._sites = {s.name: s for s in sites}
        self.order = [s.name for s in sites]
        self.formula, self.reml, self.secure, self.topology = (
            formula,
            bool(reml),
            bool(secure),
            topology,
        )
        self.codec = codec or FixedPoint()
        self.user_levels = dict(levels or {})
        self.min_groups, self.min_rows, self.max_rounds = (
            int(min_groups),
            int(min_rows),
            int(max_rounds),
        )
        self.on_failure, self.retries = on_failure, int(retries)
        self.threshold = threshold
        self.zero_columns = tuple(zero_columns)
        self.recovered: list[str] = []
        self.round = 0
        self.transcript: list = []
        self.dropped: list[str] = []
        self.session = os.urandom(16)
        self._cache = None
        self.last_theta = None

    @property
    def participants(self) -> list[str]:
        return [s for s in self.order if s not in self.dropped]

    def _record(self, message):
        self.transcript.append(message)

    def _next_round(self) -> int:
        if self.round >= self.max_rounds:
            raise FederationError(
                f"the round budget max_rounds={self.max_rounds} is spent; raise max_rounds "
                "or start from a closer theta"
            )
        self.round += 1
        return self.round

    # ---------------------------------------------------------------- the rounds
    def _ask(self, name, kind, call):
        """One site's answer, retried per the failure policy; None when the site is bypassed."""
        tries = 1 + (self.retries if self.on_failure == "retry" else 0)
        for _ in range(tries):
            try:
                return call()
            except SiteUnavailable:
                continue
        if self.on_failure in ("bypass", "recover"):
            return None
        raise FederationError(
            f"site {name!r} did not answer the {kind} request after {tries} tries; "
            "the fit stopped (use on_failure='bypass' to go on without it)"
        )

    def _gather(self, names, kind, make_call) -> dict:
        """Every site's answer (None for a bypassed site). Sites sharing a transport that sends
        requests together (``site.transport.batch()``, as :class:`~pymlm.federated.flower.FlowerSite`)
        are asked at once, one message each; a site whose answer failed is then asked again
        under the failure policy."""
        transports = {id(getattr(self._sites[s], "transport", None)) for s in names}
        first = getattr(self._sites[names[0]], "transport", None)
        pending = {}
        if first is not None and len(transports) == 1 and hasattr(first, "batch"):
            with first.batch():
                pending = {s: make_call(s)() for s in names}
        out = {}
        for s in names:
            if s in pending:
                try:
                    out[s] = pending[s].result()
                    continue
                except SiteUnavailable:
                    pass
            out[s] = self._ask(s, kind, make_call(s))
        return out

    def _sum_round(self, kind: str, request, request_bytes: int = 16):
        """One round: every participant answers ``request(site, participants, round, attempt)``; the
        masked answers are summed along the schedule. A site that fails is bypassed and the round
        restarted on the survivors (fresh masks), or the fit stops (see the module header)."""
        round_id = self._next_round()
        attempt = 0
        while True:
            names = self.participants
            if len(names) < (2 if self.secure else 1):
                raise FederationError(
                    f"{len(names)} site(s) left; secure summation needs at least 2"
                )
            group = tuple(sorted(names))
            for s in names:
                self._record_request(round_id, kind, s, request_bytes)
            answers = self._gather(
                names,
                kind,
                lambda s, group=group, attempt=attempt: lambda: request(
                    self._sites[s], group, round_id, attempt
                ),
            )
            failed = [s for s in names if answers[s] is None]
            if not failed:
                break
            self.dropped.extend(failed)
            if self.on_failure == "recover" and self.secure and kind != "setup":
                return self._recover(answers, names, failed, round_id, attempt, kind)
            attempt += 1
        extra = (
            {s: a[:-1] for s, a in answers.items()}
            if isinstance(next(iter(answers.values())), tuple)
            else None
        )
        payloads = {s: (a[-1] if extra is not None else a) for s, a in answers.items()}
        total = aggregate(payloads, names, self.topology, self.codec, self._record, round_id, kind)
        return self.codec.decode(total), extra

    # ---------------------------------------------------------------- recovery (Bonawitz et al.)
    def share_keys(self):
        """The key-sharing round (``on_failure="recover"``): every site splits its private key into
        Shamir shares, sealed for each other site; the coordinator relays the sealed shares."""
        round_id = self._next_round()
        names = self.participants
        n = len(names)
        t = self.threshold or max(1, (n - 1) // 2 + 1)
        if not 1 <= t <= n - 1:
            raise FederationError(
                f"threshold={t} shares cannot be held by the {n - 1} other sites; choose 1..{n - 1}"
            )
        self.threshold = t
        sealed = {}
        for s in names:
            self._record_request(round_id, "share-keys", s)
            sealed[s] = self._sites[s].key_shares(t)
            for h, b in sealed[s].items():
                self._record(Message(round_id, "share-keys", s, h, len(b)))
        for h in names:
            self._sites[h].hold_shares({s: sealed[s][h] for s in names if s != h})

    def _recover(self, answers, names, failed, round_id, attempt, kind):
        """The survivors' exact sum of a round some sites dropped out of, from their masked answers
        and ``threshold`` shares of each dropped site's key."""
        survivors = [s for s in names if s not in failed]
        if len(survivors) < self.threshold:
            raise FederationError(
                f"{len(survivors)} site(s) survived, fewer than the threshold {self.threshold} "
                "needed to recover the dropped sites' masks"
            )
        extra = (
            {s: answers[s][:-1] for s in survivors}
            if isinstance(answers[survivors[0]], tuple)
            else None
        )
        payloads = {s: (answers[s][-1] if extra is not None else answers[s]) for s in survivors}
        total = aggregate(
            payloads, survivors, self.topology, self.codec, self._record, round_id, kind
        )
        M = self.codec.modulus
        for d in failed:
            shares = {}
            for s in survivors[: self.threshold]:
                self._record_request(round_id, "reveal-share", s)
                x, y = self._sites[s].reveal_share(d)
                self._record(Message(round_id, "reveal-share", s, "coordinator", 74))
                shares[x] = y
            key = shamir_combine(shares)
            total = (
                total
                - dropped_masks(
                    key,
                    d,
                    self.agreement.public_keys,
                    self.session,
                    survivors,
                    round_id,
                    attempt,
                    len(total),
                    self.codec,
                )
            ) % M
            del key
        self.recovered.extend(failed)
        return self.codec.decode(total), extra

    def _record_request(self, round_id, kind, site, nbytes=16):
        """A request from the coordinator (its size: the round and attempt ids and its parameters)."""
        self._record(Message(round_id, kind + "-request", "coordinator", site, int(nbytes)))

    # ---------------------------------------------------------------- rounds 1 and 2
    def describe(self):
        """Round 1: structure; the agreement: factor levels, term order, keys."""
        round_id = self._next_round()
        salt = os.urandom(16)
        descriptions = {}
        names = self.participants
        for s in names:
            self._record_request(round_id, "describe", s)
        got = self._gather(
            names,
            "describe",
            lambda s: lambda: self._sites[s].describe(
                self.formula, salt, self.min_groups, self.min_rows, self.zero_columns
            ),
        )
        for s in names:
            d = got[s]
            if d is None:
                self.dropped.append(s)
                continue
            descriptions[s] = d
            self._record(Message(round_id, "describe", s, "coordinator", _description_bytes(d)))
        if not descriptions:
            raise FederationError("no site answered the first round")
        first = next(iter(descriptions.values()))
        for d in descriptions.values():
            if [t[:3] for t in d.terms] != [t[:3] for t in first.terms] or set(
                d.factor_levels
            ) != set(first.factor_levels):
                raise FederationError(
                    f"sites {first.name!r} and {d.name!r} disagree on the model's terms: "
                    "every site must have the same columns and column types"
                )
            if d.stateful:
                raise FederationError(
                    f"the fixed effects use data-dependent transforms ({', '.join(d.stateful)}), whose "
                    "centring or scaling would differ by site; transform the columns at every site with "
                    "agreed constants instead"
                )
        self._check_spanning(descriptions)
        factor_levels = {}
        for label in first.factor_levels:
            if label in self.user_levels:
                factor_levels[label] = tuple(str(v) for v in self.user_levels[label])
            else:
                factor_levels[label] = tuple(
                    _r_order(v for d in descriptions.values() for v in d.factor_levels[label])
                )
        # lme4's order of the random terms by pooled number of levels (rev(order(nl)) when not sorted)
        nl = np.array(
            [
                sum(len(d.terms[k][3]) for d in descriptions.values())
                for k in range(len(first.terms))
            ]
        )
        index = [t[0] for t in first.terms]
        if len(nl) > 1 and np.any(np.diff(nl) > 0):
            index = [index[i] for i in np.argsort(nl, kind="stable")[::-1]]
        self.agreement = Agreement(
            self.formula,
            self.reml,
            factor_levels,
            tuple(index),
            {s: d.public_key for s, d in descriptions.items()},
            self.session,
            self.codec,
            self.secure,
            self.zero_columns,
        )
        self.group_counts = dict(zip([t[1] for t in first.terms], nl.tolist()))
        return descriptions

    def _check_spanning(self, descriptions):
        """No level of a grouping factor may have rows at two sites (salted hashes compared)."""
        seen: dict = {}
        for s, d in descriptions.items():
            for _, group, _, hashes in d.terms:
                owners = seen.setdefault(group, {})
                for h in hashes:
                    other = owners.setdefault(h, s)
                    if other != s:
                        raise FederationError(
                            f"levels of the grouping factor {group!r} have rows at sites {other!r} and {s!r}: "
                            "the exact federated fit needs every group whole at one site (nested within "
                            "sites). Crossed random effects whose levels span sites cannot be summed site by "
                            "site; relabel the levels if they are different groups, or pool those sites"
                        )

    def setup(self):
        """Round 2: the agreed design; the sums of n and sum log w; the theta layout."""

        def request(site, participants, round_id, attempt):
            return site.setup(self.agreement, participants, round_id, attempt)

        total, extra = self._sum_round("setup", request)
        layouts = {s: e[0] for s, e in extra.items()}
        first = next(iter(layouts.values()))
        if any(v != first for v in layouts.values()):
            raise FederationError("sites built different model layouts from the agreed design")
        p_k, positions, names, where, x_names, terms = first
        levels = [sum(e[1][k] for e in extra.values()) for k in range(len(p_k))]
        self.tmap = ThetaMap.of(list(zip(p_k, levels)), positions, names, where)
        self.X_names, self.terms = list(x_names), list(terms)
        self.n, self.sum_log_w = float(total[0]), float(total[1])
        self.p = len(x_names)
        self.nlevels = dict(zip([g for g, _ in terms], levels))

    def cross_products(self):
        """The one-round mode (pda's DLMM): every site sends its whole cross-products, per-group
        blocks included (plain: they would be readable slot by slot anyway); the coordinator
        stacks the groups of all sites into the pooled cross-products."""
        round_id = self._next_round()
        parts = []
        for s in self.participants:
            self._record_request(round_id, "cross-products", s)
            cp = self._ask(s, "cross-products", self._sites[s].cross_products)
            if cp is None:
                raise FederationError(
                    f"site {s!r} did not send its cross-products; the one-round fit stopped"
                )
            size = sum(a.nbytes for a in (*cp.zz_diag, *cp.zxy, cp.xyxy))
            size += sum(
                b.data.nbytes + b.indices.nbytes + b.indptr.nbytes for b in cp.zz_off.values()
            )
            self._record(Message(round_id, "cross-products", s, "coordinator", int(size)))
            parts.append(cp)
        return stack_groups(parts)

    # ---------------------------------------------------------------- evaluation rounds
    def pieces(self, theta, grad: bool) -> SitePieces:
        """The summed site pieces at theta (one round; the last answer is reused for the same theta)."""
        theta = np.asarray(theta, dtype=float)
        if (
            self._cache is not None
            and np.array_equal(self._cache[0], theta)
            and (self._cache[1] or not grad)
        ):
            return self._cache[2]
        before = list(self.dropped)
        self.last_theta = theta.copy()
        total = self._replayed(theta, grad)
        if total is None:
            total, _ = self._sum_round(
                "pieces",
                lambda site, parts, r, a: site.pieces(theta, grad, parts, r, a),
                17 + 8 * theta.size,
            )
            if self.dropped != before:
                raise SitesChanged(self.dropped[len(before) :])
            self._log_round(theta, grad, total)
        p1, nt = self.p + 1, self.tmap.n_theta
        t = p1 * (p1 + 1) // 2
        r, c = np.tril_indices(p1)
        D = np.zeros((p1, p1))
        D[r, c] = total[1 : 1 + t]
        D[c, r] = total[1 : 1 + t]
        d_ldL2 = dD = None
        if grad:
            rest = total[1 + t :].reshape(nt, 1 + t)
            d_ldL2 = rest[:, 0]
            dD = np.zeros((nt, p1, p1))
            dD[:, r, c] = rest[:, 1:]
            dD[:, c, r] = rest[:, 1:]
        assert total.size == piece_count(self.p, nt, grad)
        out = SitePieces(float(total[0]), D, self.n, self.sum_log_w, d_ldL2, dD)
        self._cache = (theta.copy(), grad, out)
        return out

    # ---------------------------------------------------------------- the round log
    def open_log(self, path) -> None:
        """Log every evaluation round's decoded sum to ``path`` (JSON lines; the coordinator's own
        results, no site's value); a log already there from an interrupted fit of the same model
        and sites is replayed first, in order, as long as each logged theta is the one asked for:
        the fit resumes where it stopped and gives the uninterrupted fit's bits."""
        import json
        import pathlib

        self._log_path = pathlib.Path(path)
        header = {"formula": self.formula, "reml": self.reml, "sites": sorted(self.participants),
                  "n": float(self.n).hex(), "p": self.p}
        self._replay = []
        if self._log_path.exists() and self._log_path.stat().st_size:
            lines = self._log_path.read_text().splitlines()
            if json.loads(lines[0]) != header:
                raise FederationError(
                    f"the round log {str(path)!r} is of another model or set of sites; "
                    "give a new path to start afresh"
                )
            for line in lines[1:]:
                try:
                    e = json.loads(line)
                except ValueError:
                    break  # a line cut short by the interruption
                self._replay.append(
                    (
                        np.array([float.fromhex(v) for v in e["theta"]]),
                        bool(e["grad"]),
                        np.array([float.fromhex(v) for v in e["total"]]),
                    )
                )
            self._log_path.write_text(
                "\n".join([lines[0]] + lines[1 : 1 + len(self._replay)]) + "\n"
            )
        else:
            self._log_path.write_text(json.dumps(header) + "\n")
        self.replayed = 0

    def _replayed(self, theta, grad):
        queue = getattr(self, "_replay", None)
        if not queue:
            return None
        t, g, total = queue[0]
        if g != grad or t.tobytes() != theta.tobytes():
            self._replay = []  # the fit took another path: ask the sites from here on
            return None
        queue.pop(0)
        self._next_round()
        self.replayed += 1
        return total

    def _log_round(self, theta, grad, total):
        path = getattr(self, "_log_path", None)
        if path is None:
            return
        import json

        entry = {"theta": [float(v).hex() for v in theta], "grad": bool(grad),
                 "total": [float(v).hex() for v in total]}
        with path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    @property
    def rounds(self) -> int:
        return self.round

    def bytes_per_site(self) -> dict:
        """Bytes each site sent over the whole fit."""
        out = {s: 0 for s in self.order}
        for m in self.transcript:
            if m.sender in out:
                out[m.sender] += m.nbytes
        return out


class SitesChanged(FederationError):
    """The set of sites changed during the fit (a site was bypassed); the fit is restarted."""

    def __init__(self, names):
        self.names = list(names)
        super().__init__(f"site(s) {', '.join(map(repr, self.names))} stopped answering")


def stack_groups(parts) -> CrossProducts:
    """The cross-products of the union of sites holding disjoint groups: each term's levels are
    the sites' levels one site after the other, blocks between terms are block diagonal."""
    first = parts[0]
    dims = tuple((pk, sum(cp.dims[k][1] for cp in parts)) for k, (pk, _) in enumerate(first.dims))

    def diag(key, attr):
        j, m = key
        blocks = []
        for cp in parts:
            b = getattr(cp, attr).get(key)
            if b is None:
                scale = (1, 1) if attr == "incidence" else (cp.dims[j][0], cp.dims[m][0])
                b = sp.csr_matrix((scale[0] * cp.dims[j][1], scale[1] * cp.dims[m][1]))
            blocks.append(b)
        return sp.block_diag(blocks, format="csr")

    keys = set().union(*(cp.zz_off for cp in parts))
    return CrossProducts(
        dims=dims,
        p=first.p,
        n=sum(cp.n for cp in parts),
        sum_log_w=sum(cp.sum_log_w for cp in parts),
        zz_diag=tuple(np.concatenate([cp.zz_diag[k] for cp in parts]) for k in range(len(dims))),
        zz_off={key: diag(key, "zz_off") for key in keys},
        incidence={key: diag(key, "incidence") for key in keys},
        zxy=tuple(np.concatenate([cp.zxy[k] for cp in parts]) for k in range(len(dims))),
        xyxy=sum(cp.xyxy for cp in parts),
    )


def _description_bytes(d) -> int:
    size = len(d.public_key) + sum(len(n) for n in d.fixed_names)
    size += sum(len(v) for levels in d.factor_levels.values() for v in levels)
    size += sum(16 * len(t[3]) + len(t[1]) for t in d.terms)
    return size


class SiteSumEvaluator(Evaluator):
    """The evaluator contract on the sum over sites (one round per evaluation).

    ``_pieces`` sums the sites' :class:`~pymlm.fit.deviance.SitePieces` and
    returns what every evaluator returns: ldL2, L_XX = chol(D) and the three
    gradient parts, d ldRX2_i = tr(D_XX^{-1} dD_i[X, X]) and d pwrss_i =
    w' dD_i w, w = (-beta, 1) (see ``SitePieces``). The criterion, beta, the
    covariance and the boundary rule are the base class's.
    """

    kind = "sites"

    def __init__(self, coordinator: Coordinator, reml: bool):
        self.coordinator = coordinator
        self.tmap = coordinator.tmap
        self._constants(reml, coordinator.n, coordinator.p, coordinator.sum_log_w)

    @property
    def cp(self):
        raise AttributeError("a sum over sites has no pooled cross-products")

    def with_cp(self, cp):
        raise NotImplementedError("a sum over sites is built from its sites")

    def factor(self, theta):
        raise NotImplementedError("a sum over sites has no pooled factor")

    def _pieces(self, theta, grad: bool, modes: bool):
        s = self.coordinator.pieces(theta, grad)
        Lxx = np.linalg.cholesky(s.D)
        parts = None
        if grad:
            p = self.p
            Li = np.linalg.inv(Lxx[:p, :p])
            Sinv = Li.T @ Li
            w = np.append(-(Sinv @ s.D[:p, p]), 1.0)
            d_rx = (
                np.einsum("ij,kji->k", Sinv, s.dD[:, :p, :p])
                if self.reml
                else np.full(s.dD.shape[0], np.nan)
            )
            parts = np.stack([s.d_ldL2, d_rx, np.einsum("i,kij,j->k", w, s.dD, w)])
        return s.ldL2, Lxx, parts, None
