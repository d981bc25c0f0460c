"""The independent bundle verifier (verify_bundle.py, used by the gateway's resolver tests) is
itself checked against the shared vectors: both vector bundles verify, and every invalid variant
whose fault is cryptographic or structural is refused, naming the failing place. The one
lineage-only variant (another product's valid event slipped in) is the project verifier's job:
verify_bundle.py checks signatures, keys, registrations and proofs, and the Rust test checks the
bundle's contents."""

import json

import pytest

import prov_ref as ref
import verify_bundle as vb

LINEAGE_ONLY = {"event-of-another-product"}
VECTOR = ref.load("bundle.json")


def apply(bundle: dict, patches: list[dict]) -> dict:
    out = json.loads(json.dumps(bundle))
    for p in patches:
        if p["op"] == "set":
            target = out
            for k in p["path"][:-1]:
                target = target[k]
            k = p["path"][-1]
            if isinstance(target, list) and k == len(target):
                target.append(p["value"])
            else:
                target[k] = p["value"]
        else:
            text = json.dumps(out).replace(json.dumps(p["from"])[1:-1], json.dumps(p["to"])[1:-1])
            out = json.loads(text)
    return out


@pytest.mark.parametrize("name", ["bundle.json", "bundle-50.json"])
def test_vector_bundles_verify(name):
    v = ref.load(name)
    n, failures = vb.verify(v["bundle"], v["trust"])
    assert failures == []
    assert n == len(v["bundle"]["events"])


@pytest.mark.parametrize("case", VECTOR["invalid"], ids=lambda c: c["name"])
def test_invalid_variants_are_refused(case):
    if case["name"] in LINEAGE_ONLY:
        pytest.skip("lineage is not checked by this verifier")
    _, failures = vb.verify(apply(VECTOR["bundle"], case["patches"]), VECTOR["trust"])
    assert failures, case["name"]
    places = {f["at"].split(".")[0].split("[")[0] for f in case["failures"]}
    assert any(f.split(":")[0].split(".")[0].split("[")[0] in places for f in failures), (failures, places)
