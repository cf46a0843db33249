"""pymlm's federated messages as bytes: a closed set of types, no code on the wire.

Requests and answers of the protocol (:mod:`pymlm.federated._sites`) are
encoded as tagged JSON: numbers, strings, lists, tuples, dicts, bytes,
float64 arrays (their exact bytes), residue arrays (each integer modulo 2^k
as fixed-width little-endian bytes) and the three dataclasses of the
protocol (:class:`~pymlm.federated._sites.Agreement`,
:class:`~pymlm.federated._sites.SiteDescription`,
:class:`~pymlm.federated.FixedPoint`). Decoding builds nothing else, so a
site that reads a message runs no code sent to it. Floats travel as their
bytes or as Python's shortest round-trip repr, so every value is exact.
"""

from __future__ import annotations

import base64
import dataclasses
import json

import numpy as np

from ._sites import Agreement, SiteDescription
from ._sums import FederationError, FixedPoint

__all__ = ["METHODS", "dumps", "loads"]

#: the request types a site answers
METHODS = ("describe", "setup", "pieces", "sums")

_CLASSES = {c.__name__: c for c in (Agreement, SiteDescription, FixedPoint)}


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _enc(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return {"f": float(v).hex()}
    if isinstance(v, (bytes, bytearray)):
        return {"b": _b64(bytes(v))}
    if isinstance(v, tuple):
        return {"t": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {"d": [[_enc(k), _enc(x)] for k, x in v.items()]}
    if isinstance(v, np.ndarray):
        if v.dtype == object:
            ints = [int(x) for x in v.ravel().tolist()]
            width = max([1] + [(x.bit_length() + 7) // 8 for x in ints])
            if any(x < 0 for x in ints):
                raise FederationError("residues on the wire must be non-negative")
            raw = b"".join(x.to_bytes(width, "little") for x in ints)
            return {"r": _b64(raw), "w": width, "s": list(v.shape)}
        if v.dtype.kind in "biu":
            a = np.ascontiguousarray(v, dtype="<i8")
            return {"i": _b64(a.tobytes()), "s": list(v.shape)}
        a = np.ascontiguousarray(v, dtype="<f8")
        return {"a": _b64(a.tobytes()), "s": list(v.shape)}
    if dataclasses.is_dataclass(v) and type(v).__name__ in _CLASSES:
        return {"c": type(v).__name__, "v": {f.name: _enc(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    raise FederationError(f"a federated message cannot carry a value of type {type(v).__name__}")


def _dec(v):
    if v is None or isinstance(v, (bool, str, int)):
        return v
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict) or len(v) == 0:
        raise FederationError("a malformed federated message")
    if "f" in v:
        return float.fromhex(v["f"])
    if "b" in v:
        return base64.b64decode(v["b"])
    if "t" in v:
        return tuple(_dec(x) for x in v["t"])
    if "d" in v:
        return {_dec(k): _dec(x) for k, x in v["d"]}
    if "r" in v:
        raw, w = base64.b64decode(v["r"]), int(v["w"])
        ints = [int.from_bytes(raw[i : i + w], "little") for i in range(0, len(raw), w)]
        return np.array(ints, dtype=object).reshape(v["s"])
    if "i" in v:
        return np.frombuffer(base64.b64decode(v["i"]), dtype="<i8").reshape(v["s"]).copy()
    if "a" in v:
        return np.frombuffer(base64.b64decode(v["a"]), dtype="<f8").reshape(v["s"]).copy()
    if "c" in v:
        cls = _CLASSES.get(v["c"])
        if cls is None:
            raise FederationError(f"a federated message names an unknown type {v['c']!r}")
        return cls(**{k: _dec(x) for k, x in v["v"].items()})
    raise FederationError("a malformed federated message")


def dumps(value) -> bytes:
    """A protocol value -> bytes."""
    return json.dumps(_enc(value), separators=(",", ":")).encode()


def loads(data: bytes):
    """Bytes -> the protocol value (only the types listed in the module header)."""
    return _dec(json.loads(bytes(data).decode()))
