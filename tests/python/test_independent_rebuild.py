"""Rebuild every valid vector byte for byte with the independent encoder in prov_ref.py.

Two implementations that agree on every byte are what makes the wire contract real: if the Rust
core drifts from SPEC.md (key order, float width, low-S, note format, proof order…), this fails.
"""

import pytest
from cryptography.hazmat.primitives import serialization

import prov_ref as ref

KEYS = ref.load("keys.json")
EVENTS = ref.load("events.json")["messages"]
REGISTRY = ref.load("registry.json")["messages"]
LOG = ref.load("log.json")


def p256_public(kid: str) -> str:
    if kid == KEYS["operator"]["kid"]:
        return KEYS["operator"]["public_sec1_hex"]
    return next(d["public_sec1_hex"] for d in KEYS["devices"] if d["device_id"] == kid)


@pytest.mark.parametrize("device", KEYS["devices"], ids=lambda d: d["device_id"])
def test_device_keys(device):
    key = ref.p256_secret(device["device_id"])
    assert key.private_numbers().private_value.to_bytes(32, "big").hex() == device["secret_hex"]
    assert ref.sec1_uncompressed(key).hex() == device["public_sec1_hex"]
    assert ref.b3(ref.sec1_compressed(key)).hex() == device["fingerprint_hex"]


def test_operator_and_gateway_keys():
    op = KEYS["operator"]
    assert ref.sec1_uncompressed(ref.p256_secret(op["kid"])).hex() == op["public_sec1_hex"]
    gw = KEYS["gateway"]
    seed = ref.ed25519_seed(gw["origin"])
    assert seed.hex() == gw["seed_hex"]
    pub = (
        ref.ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert pub.hex() == gw["public_hex"]
    key_id = ref.note_key_id(gw["origin"], 1, pub)
    assert key_id.hex() == gw["key_id_hex"]
    encoded_key = ref.b64(bytes([1]) + pub)
    assert gw["verifier_key"] == f"{gw['origin']}+{key_id.hex()}+{encoded_key}"


def rebuild_message(case):
    payload = ref.encode_payload(case["payload"])
    protected = ref.protected_header(case["kid"])
    sig_structure = ref.sig_structure(protected, payload)
    signature = ref.es256_low_s(ref.p256_secret(case["kid"]), sig_structure)
    return payload, protected, sig_structure, ref.cose_sign1(protected, payload, signature)


@pytest.mark.parametrize("case", EVENTS + REGISTRY, ids=lambda c: c["name"])
def test_message_rebuilt_byte_for_byte(case):
    payload, protected, sig_structure, message = rebuild_message(case)
    assert payload.hex() == case["payload_cbor_hex"]
    assert protected.hex() == case["protected_hex"]
    assert sig_structure.hex() == case["sig_structure_hex"]
    assert message.hex() == case["message_hex"]
    assert ref.b3(message).hex() == case["message_blake3_hex"]


def test_device_chains_link_by_blake3():
    last = {}
    for case in EVENTS:
        kid = case["kid"]
        seq = case["payload"]["prov:seq"]
        prev = case["payload"]["prov:prev"]
        want_seq, want_prev = last.get(kid, (0, "00" * 32))
        assert (seq, prev) == (want_seq + 1, want_prev), case["name"]
        last[kid] = (seq, case["message_blake3_hex"])


def test_log_rebuilt_byte_for_byte():
    entries = [bytes.fromhex(m["message_hex"]) for m in REGISTRY + EVENTS]
    assert [e.hex() for e in entries] == LOG["entries_hex"]
    leaves = [ref.leaf_hash(e) for e in entries]
    assert [h.hex() for h in leaves] == LOG["leaf_hashes_hex"]
    gw = KEYS["gateway"]
    seed = bytes.fromhex(gw["seed_hex"])
    assert LOG["origin"] == gw["origin"]

    prev_hash = bytes(32)
    prev_size = None
    assert len(LOG["checkpoints"]) == len(LOG["chain"]) >= 2
    for cp, block in zip(LOG["checkpoints"], LOG["chain"]):
        root = ref.mth(leaves[: cp["size"]])
        assert root.hex() == cp["root_hex"]
        body = ref.checkpoint_body(gw["origin"], cp["size"], root)
        assert body == cp["body"]
        note = ref.signed_note(body, gw["origin"], seed)
        assert note == cp["note"]
        proof = [] if prev_size is None else ref.consistency_proof(prev_size, leaves[: cp["size"]])
        raw = ref.chain_block(prev_hash, note, proof)
        assert raw.hex() == block["block_hex"]
        assert ref.b3(raw).hex() == block["block_hash_hex"]
        prev_hash, prev_size = ref.b3(raw), cp["size"]

    last_note = LOG["checkpoints"][-1]["note"]
    assert LOG["inclusion"], "vectors must hold inclusion proofs"
    for inc in LOG["inclusion"]:
        path = ref.inclusion_path(inc["index"], leaves[: inc["size"]])
        assert [h.hex() for h in path] == inc["proof_hex"]
        if inc["size"] == LOG["checkpoints"][-1]["size"]:
            assert inc["tlog_proof"] == ref.tlog_proof(inc["index"], path, last_note)
    assert LOG["consistency"], "vectors must hold consistency proofs"
    for con in LOG["consistency"]:
        proof = ref.consistency_proof(con["size1"], leaves[: con["size2"]])
        assert [h.hex() for h in proof] == con["proof_hex"]


def test_every_event_type_and_a_sensor_report_are_covered():
    types = {c["payload"]["type"] for c in EVENTS}
    assert types == {
        "ObjectEvent",
        "AggregationEvent",
        "TransformationEvent",
        "AssociationEvent",
        "TransactionEvent",
    }
    assert any("sensorElementList" in c["payload"] for c in EVENTS)
    kinds = {c["payload"]["type"] for c in REGISTRY}
    assert kinds == {"prov:DeviceRegistration", "prov:DeviceRevocation"}


def test_registration_records_carry_the_device_keys():
    for case in REGISTRY:
        p = case["payload"]
        if p["type"] == "prov:DeviceRegistration":
            assert p["prov:key"] == p256_public(p["prov:device"])
