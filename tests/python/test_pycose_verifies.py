"""Outsiders can check our events unchanged: pycose (an independent COSE implementation) verifies
every signed vector with the signer's public key, and rejects each with a flipped signature or
payload byte, or under another key."""

import pytest
from pycose.keys.curves import P256
from pycose.keys.ec2 import EC2Key
from pycose.messages import Sign1Message

import prov_ref as ref

KEYS = ref.load("keys.json")
MESSAGES = ref.load("events.json")["messages"] + ref.load("registry.json")["messages"]


def cose_key(kid: str) -> EC2Key:
    if kid == KEYS["operator"]["kid"]:
        sec1 = bytes.fromhex(KEYS["operator"]["public_sec1_hex"])
    else:
        sec1 = bytes.fromhex(next(d["public_sec1_hex"] for d in KEYS["devices"] if d["device_id"] == kid))
    assert sec1[0] == 4 and len(sec1) == 65
    return EC2Key(crv=P256, x=sec1[1:33], y=sec1[33:])


def decode(message: bytes, kid: str) -> Sign1Message:
    msg = Sign1Message.decode(message)
    msg.key = cose_key(kid)
    return msg


@pytest.mark.parametrize("case", MESSAGES, ids=lambda c: c["name"])
def test_pycose_verifies(case):
    message = bytes.fromhex(case["message_hex"])
    msg = decode(message, case["kid"])
    assert msg.phdr_encoded == bytes.fromhex(case["protected_hex"])
    assert msg.payload == bytes.fromhex(case["payload_cbor_hex"])
    assert msg.verify_signature()


@pytest.mark.parametrize("case", MESSAGES, ids=lambda c: c["name"])
def test_pycose_rejects_mutants(case):
    message = bytearray.fromhex(case["message_hex"])
    # The last byte is in the signature; the byte 20 before the signature is in the payload.
    for pos in (len(message) - 1, len(message) - 64 - 20):
        mutant = bytearray(message)
        mutant[pos] ^= 0x01
        assert not decode(bytes(mutant), case["kid"]).verify_signature(), pos
    other = next(d["device_id"] for d in KEYS["devices"] if d["device_id"] != case["kid"])
    assert not decode(bytes(message), other).verify_signature()
