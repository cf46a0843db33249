"""A site: its rows, its design, and the messages it answers.

A site never sends a row. Its answers are pure functions of its data and the
request (round, attempt, theta), so a request can be repeated safely:

- ``describe``: the model's structure as the site sees it (fixed-effect
  column names, the level sets of fixed-effect factors, which a site may
  reveal, and per grouping factor salted hashes of its level labels, for the
  check that no level has rows at two sites), its public key; refused when
  the site has fewer than ``min_groups`` groups or ``min_rows`` rows
  (a disclosure filter, as DataSHIELD's);
- ``setup``: after the coordinator's agreement (factor levels, the pooled
  order of the random terms, the public keys), the site builds its design
  with the agreed columns and answers its theta layout and the masked
  [n, sum log w];
- ``pieces``: for a theta, the masked fixed-point encoding of its additive
  pieces (:meth:`pymlm.fit.deviance.Evaluator.site_pieces`);
- ``cross_products``: the site's whole cross-products, only in the one-round
  mode the user asked for explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..design import (
    as_categorical,
    build_design,
    build_model_matrix,
    model_frame,
    rebuild_model_matrix,
)
from ..errors import DataError, PymlmError
from ..fit.deviance import evaluator_for
from ..fit.terms import TermMerge, design_crossprod
from ..formula import parse_formula
from ..formula._ast import names_in
from ..linalg._threads import blas_threads
from ._estimators import SITE_SUMS, shrinkage_estimates
from ._sums import (
    FederationError,
    FixedPoint,
    SiteKeys,
    label_hashes,
    masked,
    open_share,
    seal_share,
    shamir_split,
)

__all__ = [
    "Agreement",
    "LocalSite",
    "SiteDescription",
    "SiteUnavailable",
    "pack_pieces",
    "piece_count",
]


class SiteUnavailable(FederationError):
    """A site did not answer a request (down, killed, unreachable)."""


@dataclass(frozen=True)
class SiteDescription:
    """What a site reveals in the first round (structure only, no value of any row)."""

    name: str
    public_key: bytes
    fixed_names: tuple
    factor_levels: dict
    stateful: tuple
    terms: tuple  # per design term in formula order: (bar index, group, cnms, level hashes)


@dataclass(frozen=True)
class Agreement:
    """What the coordinator sends back: the shared design and the session's keys."""

    formula: str
    reml: bool
    factor_levels: dict
    term_order: tuple  # bar indices in the pooled (lme4) order
    public_keys: dict
    session: bytes
    codec: FixedPoint
    secure: bool
    zero_columns: tuple = ()  # columns a site may lack: structural zeros


def piece_count(p: int, n_theta: int, grad: bool) -> int:
    """Length of a site's pieces vector: ldL2 and the lower triangle of D, then per theta
    element d ldL2 and the lower triangle of dD."""
    t = (p + 1) * (p + 2) // 2
    return 1 + t + (n_theta * (1 + t) if grad else 0)


def pack_pieces(sp, grad: bool) -> np.ndarray:
    """:class:`~pymlm.fit.deviance.SitePieces` -> the vector a site sends (see :func:`piece_count`)."""
    r, c = np.tril_indices(sp.D.shape[0])
    out = [np.array([sp.ldL2]), sp.D[r, c]]
    if grad:
        out.append(np.column_stack([sp.d_ldL2, sp.dD[:, r, c]]).ravel())
    return np.concatenate(out)


class LocalSite:
    """A site in this process: a data frame that stays here.

    Parameters
    ----------
    data : pandas.DataFrame, pyarrow.Table or dict of columns
        The site's rows; every group of every grouping factor must be whole
        here (no level of a grouping factor may have rows at another site).
    name : str
        The site's name (unique in a federation).

    Examples
    --------
    >>> import pymlm as ml
    >>> import pymlm.federated as fed
    >>> df = ml.datasets.load("sleepstudy")
    >>> site = fed.LocalSite(df[df.Subject.astype(int) < 340], name="A")
    >>> site.name
    'A'
    """

    def __init__(self, data, name: str):
        if not isinstance(name, str) or not name:
            raise DataError(f"a site needs a non-empty string name; got {name!r}")
        self.name = name
        self._data = data
        self._keys = SiteKeys()
        self._design = None
        self._cp = None
        self._ridge = None
        self._evaluator = None
        self._agreement = None
        self._seeds = None
        self.shrinkage = None

    def add_rows(self, rows) -> None:
        """Append rows (of existing or new groups) to the site's data: a recursive update. Only this
        site's pieces change; the next fit (warm-started from the last theta if wanted) equals a
        fresh fit of the updated data."""
        self._data = pd.concat([pd.DataFrame(self._data), pd.DataFrame(rows)], ignore_index=True)
        self._design = self._evaluator = self._cp = None

    def __repr__(self) -> str:
        return f"LocalSite(name={self.name!r})"

    # ---------------------------------------------------------------- round 1
    def _with_zeros(self, zero_columns) -> object:
        """The site's data with the agreed structural-zero columns it lacks filled with 0
        (the paper's expanded matrices: a variable the site does not measure enters as 0)."""
        if not zero_columns:
            return self._data
        frame = pd.DataFrame(self._data)
        missing = [c for c in zero_columns if c not in frame.columns]
        if not missing:
            return frame
        return frame.assign(**{c: 0.0 for c in missing})

    def _build(self, formula: str, zero_columns=()):
        """The site's complete rows, its random-effects design, its fixed-effect factors' levels
        and the spec of its fixed part (built on a template, see :func:`_fixed_spec`)."""
        try:
            parsed = parse_formula(formula)
            if parsed.offsets:
                raise FederationError("offset() terms are not supported in federated fits yet")
            frame = model_frame(parsed, self._with_zeros(zero_columns))
            for b in parsed.bars:
                if (
                    frame.n
                    and frame.data.groupby(list(b.group_factors), observed=True).ngroups == 1
                ):
                    raise FederationError(
                        f"the grouping factor {b.group_name!r} has one level at site {self.name!r}: random "
                        f"effects at the site level ({b.label}) are not supported yet; fit the sites' "
                        "cross-products pooled, or a fixed site effect"
                    )
            # the random part alone: a factor with one level at this site (a site-level
            # covariate) is fine in the pooled fixed effects, not in a per-site model matrix
            bars = " + ".join(f"({b.label})" for b in parsed.bars)
            design = build_design(f"{parsed.response_text} ~ 1 + {bars}", frame.data, check="none")
            used = {n.value for _, node in parsed.fixed_terms for n in names_in(node)}
            levels = {
                c: tuple(as_categorical(frame.data[c]).categories)
                for c in frame.data.columns
                if c in used and not pd.api.types.is_numeric_dtype(frame.data[c].dtype)
            }
            return parsed, frame, design, levels
        except PymlmError as exc:
            if isinstance(exc, FederationError):
                raise
            raise type(exc)(f"site {self.name!r}: {exc}") from exc

    def describe(
        self, formula: str, salt: bytes, min_groups: int, min_rows: int, zero_columns=()
    ) -> SiteDescription:
        """The site's structure (see the module header); refuses below the disclosure limits.
        Numeric columns in ``zero_columns`` that the site lacks are structural zeros."""
        parsed, frame, design, levels = self._build(formula, zero_columns)
        if design.n < min_rows:
            raise FederationError(
                f"site {self.name!r} has fewer than min_rows={min_rows} complete rows; "
                "it does not take part (merge it with another site, or lower min_rows)"
            )
        bars = design.parsed.bars
        terms = []
        for t in design.re_terms:
            if t.nlevels < min_groups:
                raise FederationError(
                    f"site {self.name!r} has fewer than min_groups={min_groups} levels of {t.group!r}; "
                    "it does not take part (merge it with another site, or lower min_groups)"
                )
            index = next(i for i, b in enumerate(bars) if b is t.bar)
            terms.append(
                (index, t.group, tuple(t.cnms), tuple(label_hashes(salt, t.group, t.levels)))
            )
        padded = {c: v if len(v) > 1 else (*v, "\x00") for c, v in levels.items()}
        spec = _fixed_spec(parsed, frame.data, padded)
        stateful = tuple(v.label for v in spec.variables if v.state)
        return SiteDescription(
            self.name,
            self._keys.public,
            tuple(n for n in spec.names if "\x00" not in n),
            levels,
            stateful,
            tuple(sorted(terms)),
        )

    # ---------------------------------------------------------------- round 2
    def setup(self, agreement: Agreement, participants, round_id: int, attempt: int = 0):
        """Build the agreed design; answer the theta layout and the masked [n, sum log w]."""
        parsed, frame, design, _ = self._build(agreement.formula, agreement.zero_columns)
        spec = _fixed_spec(parsed, frame.data, agreement.factor_levels)
        X = rebuild_model_matrix(spec, frame.data, f"the fixed effects at site {self.name!r}")
        X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)
        bars = design.parsed.bars
        by_index = {next(i for i, b in enumerate(bars) if b is t.bar): t for t in design.re_terms}
        design = replace(
            design,
            X=X,
            X_names=list(spec.names),
            fixed_spec=spec,
            re_terms=[by_index[i] for i in agreement.term_order],
        )
        merge = TermMerge.of(design.re_terms)
        cp = design_crossprod(design, merge=merge)
        tmap = merge.theta_map(design.re_terms, design.theta_names)
        self._design, self._agreement = design, agreement
        # A site's [X y] block may be singular alone (a factor level or a covariate constant at the
        # site): a known ridge R on [X y]'W[X y] makes its factor exist; ldL2 and dD do not involve that
        # block, and D is the shifted one minus R (one rounding at 2^-20 of the block's scale).
        scale = np.diag(cp.xyxy).copy()
        scale[scale <= 0] = 1.0
        self._ridge = np.ldexp(scale, -20)
        self._cp = cp
        self._evaluator = evaluator_for(
            replace(cp, xyxy=cp.xyxy + np.diag(self._ridge)), agreement.reml, tmap
        )
        self._seeds = self._keys.seeds(self.name, agreement.public_keys, agreement.session)
        layout = (
            tuple(p for p, _ in tmap.dims),
            tuple((tuple(r), tuple(c)) for r, c in tmap.positions),
            tuple(tmap.names),
            tuple(tmap.where),
            tuple(design.X_names),
            tuple((t.group, tuple(t.cnms)) for t in design.re_terms),
            tuple(l for _, l in tmap.dims),
        )
        counts = layout[-1]
        return (
            layout[:-1],
            counts,
            self._send(np.array([cp.n, cp.sum_log_w]), participants, round_id, attempt),
        )

    # ---------------------------------------------------------------- evaluation rounds
    def pieces(
        self, theta, grad: bool, participants, round_id: int, attempt: int = 0
    ) -> np.ndarray:
        """The masked encoding of this site's additive pieces at theta."""
        if self._evaluator is None:
            raise FederationError(
                f"site {self.name!r} was not set up; the coordinator sends setup first"
            )
        try:
            with blas_threads(1):
                sp = self._evaluator.site_pieces(np.asarray(theta, dtype=float), grad)
        except np.linalg.LinAlgError as exc:
            raise FederationError(
                f"site {self.name!r}: the penalized system is not positive definite at "
                f"theta = {np.asarray(theta).tolist()}"
            ) from exc
        sp = replace(sp, D=sp.D - np.diag(self._ridge))
        return self._send(pack_pieces(sp, grad), participants, round_id, attempt)

    def sums(self, kind: str, params, participants, round_id: int, attempt: int = 0) -> np.ndarray:
        """The masked encoding of an estimator's per-site sums (:mod:`pymlm.federated._estimators`)."""
        if self._evaluator is None:
            raise FederationError(
                f"site {self.name!r} was not set up; the coordinator sends setup first"
            )
        with blas_threads(1):
            values = SITE_SUMS[kind](self, params)
        return self._send(values, participants, round_id, attempt)

    def _send(self, values: np.ndarray, participants, round_id: int, attempt: int) -> np.ndarray:
        a = self._agreement
        enc = a.codec.encode(values, len(participants), f"site {self.name!r}")
        if not a.secure:
            return enc
        return masked(self.name, enc, self._seeds, participants, round_id, attempt, a.codec)

    def shrink(self, fixef, tau, sigma2) -> None:
        """Keep the two-step fit's empirical Bayes coefficients of this site's groups
        (:attr:`shrinkage`); nothing is sent back."""
        with blas_threads(1):
            self.shrinkage = shrinkage_estimates(
                self, np.asarray(fixef, float), np.asarray(tau, float), float(sigma2)
            )

    # ---------------------------------------------------------------- mask recovery
    def key_shares(self, threshold: int) -> dict:
        """Shamir shares of this site's private key, one per other site, each sealed with the
        pairwise seed (the coordinator relays them unread)."""
        if self._seeds is None:
            raise FederationError(
                f"site {self.name!r} was not set up; the coordinator sends setup first"
            )
        holders = sorted(self._seeds)
        shares = shamir_split(self._keys.private_bytes, len(holders), threshold)
        return {
            h: seal_share(self._seeds[h], self.name, h, sh) for h, sh in zip(holders, shares)
        }

    def hold_shares(self, sealed: dict) -> None:
        """Keep the other sites' sealed shares (opened only when one of them drops out)."""
        self._held = dict(sealed)

    def reveal_share(self, dropped: str):
        """This site's share of the key of ``dropped``, a site that stopped answering."""
        held = getattr(self, "_held", {})
        if dropped == self.name or dropped not in held:
            raise FederationError(
                f"site {self.name!r} holds no share of the key of {dropped!r}"
            )
        return open_share(self._seeds[dropped], dropped, self.name, held[dropped])

    def cross_products(self):
        """The site's whole cross-products (the explicit one-round mode only)."""
        if self._evaluator is None:
            raise FederationError(
                f"site {self.name!r} was not set up; the coordinator sends setup first"
            )
        return self._cp


def _fixed_spec(parsed, frame: pd.DataFrame, factor_levels: dict):
    """The fixed part's model-matrix spec built on the site's rows with every factor column
    replaced by a cycle through the given levels (in the given order): the spec then has the
    agreed columns whatever levels the site has; its numbers do not matter, as data-dependent
    transforms are refused."""
    length = max([len(v) for v in factor_levels.values()] + [len(frame)])
    rows = frame.iloc[np.arange(length) % len(frame)].reset_index(drop=True)
    for column, levels in factor_levels.items():
        levels = list(levels)
        rows[column] = pd.Categorical(
            [levels[i % len(levels)] for i in range(length)], categories=levels
        )
    _, spec = build_model_matrix(
        parsed.fixed_terms, rows, "the fixed effects", sparse=False, formula=parsed.formula
    )
    for v in spec.variables:
        if v.kind == "factor" and v.column is None:
            raise DataError(
                f"the fixed-effect factor {v.label} is an expression; in a federated fit a factor "
                "must be a data column (make the column a factor at every site)"
            )
    return spec
