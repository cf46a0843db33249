"""Exact, order-free sums across sites: fixed point modulo 2^k, pairwise masks, schedules.

Fixed point
-----------
A site's vector x of doubles is sent as the integers

    e_i = round(x_i 2^F) mod 2^k        (F = ``frac_bits``, k = ``total_bits``).

x_i 2^F is exact in binary floating point (a power-of-two scaling) and every
double of magnitude at least 2^(52 - F) is a multiple of 2^-F, so for such
values the encoding is exact; smaller ones are rounded to the grid 2^-F
(absolute error at most 2^-(F + 1): 6e-30 with the default F = 96). Integer
addition modulo 2^k is associative and commutative, so

    sum_s e_s mod 2^k

is the same integer for every site order, schedule (ring, tree, star) and
masking. It equals the true integer sum sum_s round(x_s 2^F), and decodes
(centred residue / 2^F, one correctly rounded division) to the same double,
as long as that sum lies in (-2^(k-1), 2^(k-1)). With S sites that is
guaranteed when every |x_{s,i}| < 2^(k - 1 - F - ceil(log2 S)); a site checks
this bound before sending and refuses with :class:`FederationError` otherwise
(the default k = 192, F = 96 allow |x| < 2^(95 - ceil(log2 S)), about 1e28 /
S). One value costs k / 8 = 24 bytes on the wire (a double costs 8).

Secure summation
----------------
Each site s holds an X25519 key pair; the public keys travel through the
coordinator. Sites s and t derive the same 32-byte seed from their shared
secret with HKDF-SHA256 (salt: the session id, info: the two names), and for
round r, attempt a, the same stream of k-bit integers m_st from ChaCha20
(key: the seed; nonce: r and a). Site s sends

    y_s = e_s + sum_{t > s} m_st - sum_{t < s} m_st  mod 2^k

(order: the participants' names sorted). Each y_s alone is uniform on
[0, 2^k)^m whatever e_s is; the masks cancel in sum_s y_s, so the coordinator
learns the sum and nothing else. Partial sums of a ring or tree are sums of
masked vectors, uniform as well. A round that loses a site is restarted on the
survivors with a fresh attempt number (new masks), so no two masked vectors of
one site ever share a mask.

Recovering a dropped site's masks (Bonawitz et al. 2017; ``on_failure="recover"``):
after setup every site splits its X25519 private key into Shamir shares
over GF(2^521 - 1) (:func:`shamir_split`, any ``threshold`` of the n - 1
other sites recover it), each share encrypted for its holder with their
pairwise seed and relayed by the coordinator. When a site drops after the
others masked their vectors, ``threshold`` survivors send their shares of
its key; the coordinator rebuilds the key, regenerates the masks the
survivors shared with the dropped site (:func:`dropped_masks`) and removes
them: the survivors' sum, exact, with no round restarted. The coordinator
never received the dropped site's masked vector, so the key shows it no
value of that site; a survivor refuses to reveal shares of a site that is
still taking part.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import struct
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import PymlmError

__all__ = [
    "TOPOLOGIES",
    "FederationError",
    "FixedPoint",
    "Message",
    "SiteKeys",
    "aggregate",
    "masked",
]

TOPOLOGIES = ("ring", "tree", "star")


class FederationError(PymlmError, RuntimeError):
    """A federated fit cannot go on (a site refused, failed, or the sums would overflow)."""


@dataclass(frozen=True)
class Message:
    """One message of a federated fit, as the transcript records it (never its content).

    Attributes
    ----------
    round : int
    kind : str
        ``"describe"``, ``"agree"``, ``"setup"``, ``"pieces"``, ...
    sender, receiver : str
        Site names or ``"coordinator"``.
    nbytes : int
        The payload's size on the wire.
    """

    round: int
    kind: str
    sender: str
    receiver: str
    nbytes: int


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point integers modulo 2^total_bits with frac_bits fractional bits (module header)."""

    frac_bits: int = 96
    total_bits: int = 192

    @property
    def modulus(self) -> int:
        return 1 << self.total_bits

    @property
    def value_bytes(self) -> int:
        return self.total_bits // 8

    def bound(self, n_sites: int) -> float:
        """Each site value must be below this in magnitude for every sum of ``n_sites`` to be exact."""
        return math.ldexp(
            1.0, self.total_bits - 1 - self.frac_bits - max(1, n_sites - 1).bit_length()
        )

    def encode(self, x, n_sites: int, where: str = "a site") -> np.ndarray:
        """``(m,)`` doubles -> ``(m,)`` object array of residues modulo 2^k."""
        x = np.asarray(x, dtype=float).ravel()
        bound = self.bound(n_sites)
        if not np.all(np.isfinite(x)) or np.any(np.abs(x) >= bound):
            worst = float(np.max(np.abs(x))) if x.size else 0.0
            raise FederationError(
                f"{where} has a value of magnitude {worst:.3g}, outside the exact fixed-point range "
                f"({bound:.3g} for {n_sites} sites with total_bits={self.total_bits}, "
                f"frac_bits={self.frac_bits}): rescale the response or covariates, or raise total_bits"
            )
        scaled = np.rint(np.ldexp(x, self.frac_bits))
        M = self.modulus
        return np.array([int(v) % M for v in scaled.tolist()], dtype=object)

    def decode(self, total: np.ndarray) -> np.ndarray:
        """The residues of a sum -> doubles (centred residue / 2^F, correctly rounded)."""
        M, half, scale = self.modulus, self.modulus >> 1, 1 << self.frac_bits
        return np.array([((int(v) + half) % M - half) / scale for v in total], dtype=float)


class SiteKeys:
    """A site's X25519 key pair and the pairwise mask generator (module header)."""

    def __init__(self, private: bytes | None = None):
        self._private = (
            X25519PrivateKey.generate()
            if private is None
            else X25519PrivateKey.from_private_bytes(private)
        )
        self.public = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def private_bytes(self) -> bytes:
        """The raw private key (kept by a site that restarts between messages, never sent)."""
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def seeds(self, name: str, public_keys: dict, session: bytes) -> dict:
        """Peer name -> the 32-byte seed shared with that peer."""
        out = {}
        for peer, pub in public_keys.items():
            if peer == name:
                continue
            shared = self._private.exchange(X25519PublicKey.from_public_bytes(pub))
            info = b"pymlm-mask\x00" + "\x00".join(sorted((name, peer))).encode()
            out[peer] = HKDF(algorithm=hashes.SHA256(), length=32, salt=session, info=info).derive(
                shared
            )
        return out


def _stream(seed: bytes, round_id: int, attempt: int, m: int, codec: FixedPoint) -> list[int]:
    nonce = struct.pack("<QQ", round_id, attempt)
    enc = Cipher(algorithms.ChaCha20(seed, nonce), mode=None).encryptor()
    raw = enc.update(bytes(m * codec.value_bytes))
    w = codec.value_bytes
    return [int.from_bytes(raw[i * w : (i + 1) * w], "little") for i in range(m)]


def masked(
    name: str,
    encoded: np.ndarray,
    seeds: dict,
    participants,
    round_id: int,
    attempt: int,
    codec: FixedPoint,
) -> np.ndarray:
    """``encoded`` plus the pairwise masks of ``name`` among ``participants`` (mod 2^k)."""
    M = codec.modulus
    out = np.array(encoded, dtype=object)
    for peer in participants:
        if peer == name:
            continue
        mask = np.array(_stream(seeds[peer], round_id, attempt, out.size, codec), dtype=object)
        out = (out + mask) % M if name < peer else (out - mask) % M
    return out


def aggregate(
    payloads: dict, order, topology: str, codec: FixedPoint, record, round_id: int, kind: str
):
    """The sum modulo 2^k of the sites' payloads along a schedule; each hop is recorded.

    Parameters
    ----------
    payloads : dict
        Site name -> ``(m,)`` residues (masked when secure).
    order : sequence of str
        The sites in schedule order (the ring's order, the tree's leaves).
    topology : {"ring", "tree", "star"}
        ``ring``: each site adds its payload to the running sum and passes it
        on, the last sends it to the coordinator; ``tree``: dyadic pairs add
        up level by level, the root sends the total; ``star``: every site
        sends to the coordinator.
    record : callable
        ``record(Message)``.
    """
    M = codec.modulus
    names = list(order)

    def size(v):
        return len(v) * codec.value_bytes

    if topology == "star":
        total = None
        for s in names:
            record(Message(round_id, kind, s, "coordinator", size(payloads[s])))
            total = payloads[s] if total is None else (total + payloads[s]) % M
        return total
    if topology == "ring":
        run = payloads[names[0]]
        for a, b in itertools.pairwise(names):
            record(Message(round_id, kind, a, b, size(run)))
            run = (run + payloads[b]) % M
        record(Message(round_id, kind, names[-1], "coordinator", size(run)))
        return run
    if topology == "tree":
        held = {s: payloads[s] for s in names}
        step = 1
        while step < len(names):
            for i in range(0, len(names), 2 * step):
                j = i + step
                if j < len(names):
                    record(Message(round_id, kind, names[j], names[i], size(held[names[j]])))
                    held[names[i]] = (held[names[i]] + held.pop(names[j])) % M
            step *= 2
        record(Message(round_id, kind, names[0], "coordinator", size(held[names[0]])))
        return held[names[0]]
    raise ValueError(f"unknown topology {topology!r}")


def label_hashes(salt: bytes, group: str, labels) -> list[bytes]:
    """Salted SHA-256 digests (16 bytes) of a grouping factor's level labels."""
    g = group.encode() + b"\x00"
    return [hashlib.sha256(salt + g + str(v).encode()).digest()[:16] for v in labels]


# ---------------------------------------------------------------- recovering a dropped site's masks
#: the prime field of the secret shares: 2^521 - 1 (a Mersenne prime above every 32-byte key)
SHARE_PRIME = (1 << 521) - 1
_SHARE_BYTES = 66


def shamir_split(secret: bytes, n: int, threshold: int) -> list[tuple[int, int]]:
    """Shamir's (threshold, n) sharing of ``secret`` over GF(2^521 - 1): shares (x, f(x)), x = 1..n,
    of a random polynomial f of degree threshold - 1 with f(0) = the secret. Any ``threshold``
    shares give the secret back; fewer reveal nothing about it."""
    if not 1 <= threshold <= n:
        raise FederationError(f"the share threshold must be between 1 and {n}; got {threshold}")
    import secrets

    coeffs = [int.from_bytes(secret, "big")] + [
        secrets.randbelow(SHARE_PRIME) for _ in range(threshold - 1)
    ]
    out = []
    for x in range(1, n + 1):
        y = 0
        for c in reversed(coeffs):
            y = (y * x + c) % SHARE_PRIME
        out.append((x, y))
    return out


def shamir_combine(shares, length: int = 32) -> bytes:
    """The secret from ``threshold`` or more shares (Lagrange interpolation at 0)."""
    shares = list(dict(shares).items())
    total = 0
    for i, (xi, yi) in enumerate(shares):
        num = den = 1
        for j, (xj, _) in enumerate(shares):
            if i != j:
                num = num * (-xj) % SHARE_PRIME
                den = den * (xi - xj) % SHARE_PRIME
        total = (total + yi * num * pow(den, -1, SHARE_PRIME)) % SHARE_PRIME
    if total >> (8 * length):
        raise FederationError("the shares do not determine a key: fewer than the threshold?")
    return total.to_bytes(length, "big")


def _share_pad(seed: bytes, sender: str, holder: str) -> bytes:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"pymlm-share\x00" + sender.encode() + b"\x00" + holder.encode(),
    ).derive(seed)
    enc = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    return enc.update(bytes(8 + _SHARE_BYTES))


def seal_share(seed: bytes, sender: str, holder: str, share: tuple[int, int]) -> bytes:
    """A share of ``sender``'s key for ``holder``, encrypted with their pairwise seed (the
    coordinator relays it and cannot read it)."""
    plain = share[0].to_bytes(8, "big") + share[1].to_bytes(_SHARE_BYTES, "big")
    return bytes(a ^ b for a, b in zip(plain, _share_pad(seed, sender, holder)))


def open_share(seed: bytes, sender: str, holder: str, sealed: bytes) -> tuple[int, int]:
    plain = bytes(a ^ b for a, b in zip(sealed, _share_pad(seed, sender, holder)))
    return int.from_bytes(plain[:8], "big"), int.from_bytes(plain[8:], "big")


def dropped_masks(
    private: bytes,
    dropped: str,
    public_keys: dict,
    session: bytes,
    survivors,
    round_id: int,
    attempt: int,
    m: int,
    codec: FixedPoint,
) -> np.ndarray:
    """What the survivors' masks with ``dropped`` add to their sum (mod 2^k), from the dropped
    site's reconstructed private key: subtracting it leaves the survivors' exact sum."""
    keys = SiteKeys(private)
    seeds = keys.seeds(dropped, {s: public_keys[s] for s in survivors}, session)
    M = codec.modulus
    out = np.zeros(m, dtype=object)
    for s in survivors:
        mask = np.array(_stream(seeds[s], round_id, attempt, m, codec), dtype=object)
        out = (out + mask) % M if s < dropped else (out - mask) % M
    return out
