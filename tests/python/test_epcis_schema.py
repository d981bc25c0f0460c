"""The EPCIS validator itself: GS1's own examples validate, and it does reject what it must."""

import copy
import json
import pathlib

import pytest

import epcis_validate

EXAMPLES = sorted(
    (epcis_validate.ROOT / "schemas" / "json" / "gs1-epcis-2.0" / "examples").rglob("*.json*")
)


def test_there_are_examples():
    assert len(EXAMPLES) > 40


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_gs1_example_validates(path: pathlib.Path):
    assert epcis_validate.errors(json.loads(path.read_text(encoding="utf-8"))) == []


def _doc():
    path = next(p for p in EXAMPLES if p.name == "Example_9.6.1-ObjectEvent.jsonld")
    return json.loads(path.read_text(encoding="utf-8"))


def test_format_uri_is_enforced():
    doc = _doc()
    doc["epcisBody"]["eventList"][0]["epcList"] = ["not a uri"]
    assert epcis_validate.errors(doc)


def test_extension_names_must_be_uris():
    doc = _doc()
    doc["epcisBody"]["eventList"][0]["no prefix here"] = 1
    assert epcis_validate.errors(doc)
    ok = copy.deepcopy(_doc())
    ok["epcisBody"]["eventList"][0]["prov:seq"] = 1
    assert epcis_validate.errors(ok) == []


def test_date_time_is_enforced():
    doc = _doc()
    doc["creationDate"] = "yesterday"
    assert epcis_validate.errors(doc)
