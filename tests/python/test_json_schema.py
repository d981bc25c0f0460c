"""The JSON Schemas under schemas/json/ accept every payload in the vectors (format checks on),
and reject payloads that break the rules the schema claims to encode."""

import copy
import json

import jsonschema
import pytest

import prov_ref as ref

SCHEMA_DIR = ref.ROOT / "schemas" / "json"
EVENT_SCHEMA = json.loads((SCHEMA_DIR / "prov-event.schema.json").read_text())
REGISTRY_SCHEMA = json.loads((SCHEMA_DIR / "prov-registry-record.schema.json").read_text())
EVENTS = ref.load("events.json")["messages"]
REGISTRY = ref.load("registry.json")["messages"]


def validator(schema):
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.mark.parametrize("case", EVENTS, ids=lambda c: c["name"])
def test_event_payloads_validate(case):
    validator(EVENT_SCHEMA).validate(case["payload"])


@pytest.mark.parametrize("case", REGISTRY, ids=lambda c: c["name"])
def test_registry_payloads_validate(case):
    validator(REGISTRY_SCHEMA).validate(case["payload"])


def broken_events():
    base = next(c["payload"] for c in EVENTS if c["payload"]["type"] == "ObjectEvent")
    cases = {
        "unknown field": lambda p: p.__setitem__("colour", "red"),
        "null field": lambda p: p.__setitem__("bizStep", None),
        "bad event time": lambda p: p.__setitem__("eventTime", "2026-11-24 10:00:00"),
        "bad type": lambda p: p.__setitem__("type", "ThingEvent"),
        "non-canonical host": lambda p: p.__setitem__(
            "epcList", ["https://brand.example/01/09506000134352/21/ABC"]
        ),
        "seq zero": lambda p: p.__setitem__("prov:seq", 0),
        "short prev": lambda p: p.__setitem__("prov:prev", "00"),
        "missing device": lambda p: p.pop("prov:device"),
    }
    for name, mutate in cases.items():
        p = copy.deepcopy(base)
        mutate(p)
        yield pytest.param(p, id=name)


@pytest.mark.parametrize("payload", broken_events())
def test_broken_event_payloads_are_rejected(payload):
    with pytest.raises(jsonschema.ValidationError):
        validator(EVENT_SCHEMA).validate(payload)
