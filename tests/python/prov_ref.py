"""An independent reference encoder for SPEC.md, written from the spec, not from our Rust code.

It rebuilds every valid test vector from its inputs with outside libraries only:
cbor2 (canonical CBOR), cryptography (RFC 6979 deterministic ECDSA P-256, Ed25519), blake3.
If this file and the Rust core agree on every byte, outsiders can verify what we produce.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import blake3
import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "schemas" / "vectors"

# P-256 group order.
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# JSON fields that are always CBOR floats (schemas/vectors/README.md).
FLOAT_FIELDS = {"quantity", "value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"}
# JSON fields that are byte strings, written as lowercase hex.
BYTES_FIELDS = {"prov:prev", "prov:key"}


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def b3(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- keys


def p256_secret(name: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(b3(b"prov test key v1:" + name.encode()), "big")
    assert 1 <= scalar < N
    return ec.derive_private_key(scalar, ec.SECP256R1())


def sec1_uncompressed(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def sec1_compressed(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )


def ed25519_seed(origin: str) -> bytes:
    return b3(b"prov test key v1:" + origin.encode())


def note_key_id(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


# ---------------------------------------------------------------- payloads and COSE


def json_to_cbor_obj(value, key: str | None = None):
    """The JSON form -> CBOR data model mapping of schemas/vectors/README.md."""
    if isinstance(value, dict):
        return {k: json_to_cbor_obj(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [json_to_cbor_obj(v, key) for v in value]
    if key in BYTES_FIELDS:
        return bytes.fromhex(value)
    if key in FLOAT_FIELDS:
        return float(value)
    return value


def encode_payload(payload_json: dict) -> bytes:
    return cbor2.dumps(json_to_cbor_obj(payload_json), canonical=True)


def protected_header(kid: str) -> bytes:
    return cbor2.dumps({1: -7, 4: kid.encode()}, canonical=True)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload], canonical=True)


def es256_low_s(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    der = key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    if s > N // 2:
        s = N - s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def cose_sign1(protected: bytes, payload: bytes, signature: bytes) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]), canonical=True)


# ---------------------------------------------------------------- RFC 9162 with BLAKE3


def leaf_hash(entry: bytes) -> bytes:
    return b3(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return b3(b"\x01" + left + right)


def split(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return b3(b"")
    if n == 1:
        return leaves[0]
    k = split(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def inclusion_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return inclusion_path(m, leaves[:k]) + [mth(leaves[k:])]
    return inclusion_path(m - k, leaves[k:]) + [mth(leaves[:k])]


def consistency_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""

    def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = split(n)
        if m <= k:
            return subproof(m, d[:k], b) + [mth(d[k:])]
        return subproof(m - k, d[k:], False) + [mth(d[:k])]

    if m == 0 or m == len(leaves):
        return []
    return subproof(m, leaves, True)


# ---------------------------------------------------------------- checkpoints, notes, proofs, chain


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{b64(root)}\n"


def signed_note(body: str, name: str, seed: bytes) -> str:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = key.sign(body.encode())
    return body + "\n" + f"\u2014 {name} {b64(note_key_id(name, 1, public) + sig)}\n"


def tlog_proof(index: int, proof: list[bytes], note: str) -> str:
    lines = ["c2sp.org/tlog-proof@v1", f"index {index}"] + [b64(h) for h in proof]
    return "\n".join(lines) + "\n\n" + note


def chain_block(prev: bytes, note: str, proof: list[bytes]) -> bytes:
    return cbor2.dumps([prev, note, proof], canonical=True)
