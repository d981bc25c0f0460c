#!/usr/bin/env python3
"""An independent verifier of a product provenance bundle (SPEC §6), for the resolver tests.

    verify_bundle.py BUNDLE.json TRUST.json

TRUST.json is what a verifier pins, the shape of `GET /api/v1/keys`:
`{"gateway_key": "<name>+<8 hex>+<base64(0x01 || ed25519 key)>",
  "operator_keys": {"operator:<name>": "<base64 65-byte SEC1>"}}`.

Nothing here shares code with the project: pycose (COSE_Sign1, ES256), blake3 and cryptography
(Ed25519, P-256) only. It checks, and exits 1 naming every failure (0 and "verified N events"
otherwise):
- the checkpoint is a C2SP signed note whose signature by the pinned gateway key verifies
  (key name = origin, key ID = SHA-256(name || 0x0A || 0x01 || key)[:4]);
- every event is an ES256 COSE_Sign1 (SPEC §2 envelope, low S) that verifies under its
  `device_key`, whose kid is its `prov:device`;
- every `device_key` is the `prov:key` of the event's registration record, which is a
  `prov:DeviceRegistration` of that very device, signed by a pinned operator key, logged
  before the event;
- every proof (events and registrations) is a C2SP tlog-proof whose index is the entry's
  `leaf_index`, whose embedded checkpoint is byte-identical to the bundle's, and whose RFC 9162
  inclusion proof (BLAKE3: leaf = H(0x00 || entry), node = H(0x01 || l || r)) leads to the
  checkpoint's root.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

import blake3
import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pycose.keys.curves import P256
from pycose.keys.ec2 import EC2Key
from pycose.messages import Sign1Message

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
TLOG_HEADER = "c2sp.org/tlog-proof@v1"


class Failure(Exception):
    pass


def b64d(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except Exception as e:  # noqa: BLE001
        raise Failure(f"{what}: not base64 ({e})") from e


def leaf_hash(entry: bytes) -> bytes:
    return blake3.blake3(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return blake3.blake3(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root an inclusion proof leads to."""
    if index >= size:
        raise Failure(f"index {index} is not below the tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise Failure("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Failure("inclusion proof is too short")
    return r


def parse_gateway_key(text: str) -> tuple[str, bytes, bytes]:
    name, key_id_hex, key_b64 = text.split("+", 2)
    raw = b64d(key_b64, "gateway_key")
    if len(raw) != 33 or raw[0] != 0x01:
        raise Failure("trust gateway_key is not an Ed25519 verifier key")
    key_id = bytes.fromhex(key_id_hex)
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_id != want:
        raise Failure("trust gateway_key's key ID does not match its key")
    return name, key_id, raw[1:]


def open_checkpoint(note: str, gateway_key: str) -> tuple[str, int, bytes]:
    """Verifies the signed note under the pinned key; returns (origin, size, root)."""
    name, key_id, public = parse_gateway_key(gateway_key)
    split = note.rfind("\n\n")
    if split < 0:
        raise Failure("checkpoint: not a signed note (no blank line)")
    text, sigs = note[: split + 1], note[split + 2 :]
    verified = False
    for line in sigs.split("\n"):
        if not line:
            continue
        if not line.startswith("\u2014 "):
            raise Failure(f"checkpoint: malformed signature line {line!r}")
        sig_name, sig_b64 = line[2:].split(" ", 1)
        blob = b64d(sig_b64, "checkpoint signature")
        if sig_name != name or blob[:4] != key_id:
            continue
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], text.encode())
            verified = True
        except InvalidSignature:
            raise Failure("checkpoint: the trusted gateway key's signature does not verify") from None
    if not verified:
        raise Failure("checkpoint: not signed by the trusted gateway key")
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise Failure("checkpoint: body is not origin, size, root")
    origin, size, root = lines[0], int(lines[1]), b64d(lines[2], "checkpoint root")
    if origin != name:
        raise Failure(f"checkpoint: origin {origin!r} is not the key name {name!r}")
    if len(root) != 32:
        raise Failure("checkpoint: root is not 32 bytes")
    return origin, size, root


def check_proof(proof: str, leaf_index: int, entry: bytes, note: str, size: int, root: bytes, at: str):
    if not isinstance(proof, str) or not proof.startswith(TLOG_HEADER + "\n"):
        raise Failure(f"{at}.proof: not a tlog-proof")
    rest = proof[len(TLOG_HEADER) + 1 :]
    head, sep, embedded = rest.partition("\n\n")
    if not sep:
        raise Failure(f"{at}.proof: no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0].startswith("extra "):
        lines = lines[1:]
    if not lines[0].startswith("index "):
        raise Failure(f"{at}.proof: no index line")
    index = int(lines[0][len("index ") :])
    if index != leaf_index:
        raise Failure(f"{at}.proof: index {index} differs from leaf_index {leaf_index}")
    if embedded != note:
        raise Failure(f"{at}.proof: embedded checkpoint is not byte-identical to the bundle's")
    hashes = [b64d(h, f"{at}.proof hash") for h in lines[1:]]
    if any(len(h) != 32 for h in hashes):
        raise Failure(f"{at}.proof: a hash is not 32 bytes")
    if root_from_inclusion(index, size, leaf_hash(entry), hashes) != root:
        raise Failure(f"{at}.proof: inclusion proof does not match the checkpoint root")


def cose_verify(message: bytes, sec1: bytes, at: str) -> tuple[str, dict]:
    """Verifies an ES256 COSE_Sign1 under a 65-byte SEC1 key; returns (kid, payload map)."""
    if len(sec1) != 65 or sec1[0] != 4:
        raise Failure(f"{at}: key is not a 65-byte uncompressed SEC1 P-256 key")
    if message[:1] != b"\xd2":
        raise Failure(f"{at}: not a tagged COSE_Sign1")
    msg = Sign1Message.decode(message)
    protected = cbor2.loads(msg.phdr_encoded)
    if protected.get(1) != -7 or set(protected) != {1, 4}:
        raise Failure(f"{at}: protected header is not {{alg ES256, kid}}")
    if msg.uhdr:
        raise Failure(f"{at}: unprotected header is not empty")
    signature = cbor2.loads(message[1:])[3]
    if len(signature) != 64 or int.from_bytes(signature[32:], "big") > P256_N // 2:
        raise Failure(f"{at}: signature is not 64 bytes with a low s")
    msg.key = EC2Key(crv=P256, x=sec1[1:33], y=sec1[33:])
    if not msg.verify_signature():
        raise Failure(f"{at}: bad signature")
    return protected[4].decode(), cbor2.loads(msg.payload)


def verify(bundle: dict, trust: dict) -> tuple[int, list[str]]:
    failures: list[str] = []
    product = bundle.get("product", "")
    if not product.startswith("https://id.gs1.org/"):
        failures.append(f"product: not a canonical Digital Link: {product!r}")
    note = bundle.get("checkpoint", "")
    try:
        _, size, root = open_checkpoint(note, trust["gateway_key"])
    except Failure as e:
        return 0, [str(e)]
    operators = {k: b64d(v, k) for k, v in trust.get("operator_keys", {}).items()}
    events = bundle.get("events") or []
    if not events:
        failures.append("events: the bundle holds no events")
    for i, ev in enumerate(events):
        at = f"events[{i}]"
        try:
            message = b64d(ev["cose"], f"{at}.cose")
            device_key = b64d(ev["device_key"], f"{at}.device_key")
            check_proof(ev["proof"], ev["leaf_index"], message, note, size, root, at)
            kid, payload = cose_verify(message, device_key, f"{at}.cose")
            if payload.get("prov:device") != kid:
                raise Failure(f"{at}.cose: prov:device {payload.get('prov:device')!r} is not the kid {kid!r}")
            reg = ev["registration"]
            reg_message = b64d(reg["cose"], f"{at}.registration.cose")
            check_proof(reg["proof"], reg["leaf_index"], reg_message, note, size, root, f"{at}.registration")
            op_kid = cbor2.loads(Sign1Message.decode(reg_message).phdr_encoded).get(4, b"").decode()
            if op_kid not in operators:
                raise Failure(f"{at}.registration.cose: {op_kid} is not a trusted operator")
            _, record = cose_verify(reg_message, operators[op_kid], f"{at}.registration.cose")
            if record.get("type") != "prov:DeviceRegistration":
                raise Failure(f"{at}.registration.cose: is a {record.get('type')}, not a registration")
            if record.get("prov:device") != kid:
                raise Failure(f"{at}.registration.cose: registers {record.get('prov:device')}, not {kid}")
            if record.get("prov:key") != device_key:
                raise Failure(f"{at}.device_key: differs from the key in its registration record")
            if reg["leaf_index"] >= ev["leaf_index"]:
                raise Failure(f"{at}.registration.leaf_index: not logged before the event")
        except Failure as e:
            failures.append(str(e))
        except (KeyError, TypeError, ValueError) as e:
            failures.append(f"{at}: malformed ({e!r})")
    return len(events), failures


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        bundle = json.load(f)
    with open(argv[2], encoding="utf-8") as f:
        trust = json.load(f)
    n, failures = verify(bundle, trust)
    if failures:
        for failure in failures:
            print(f"NOT VERIFIED: {failure}")
        return 1
    print(f"verified {n} events against checkpoint size {bundle['checkpoint'].split(chr(10))[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
