"""Validate EPCIS 2.0 JSON(-LD) documents against GS1's published JSON Schema.

Independent of the project's Rust code: GS1's schema (schemas/json/gs1-epcis-2.0/, copied with
its origin note) and the `jsonschema` package with format checking on, so `format: uri` (event
IDs, identifiers, extension property names) and `format: date-time` are enforced.

Usage: python tests/python/epcis_validate.py DOC.json [DOC.json ...]
Exits 0 if every document validates; otherwise prints each error with its JSON path and exits 1.
"""

import json
import pathlib
import sys

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "json" / "gs1-epcis-2.0" / "EPCIS-JSON-Schema.json"


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def errors(document) -> list:
    """Every schema error of `document`, as 'path: message' strings."""
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in validator().iter_errors(document)
    ]


def main(paths: list) -> int:
    failed = 0
    for path in paths:
        errs = errors(json.loads(pathlib.Path(path).read_text(encoding="utf-8")))
        for e in errs[:20]:
            print(f"{path}: {e}")
        failed += bool(errs)
    return 1 if failed or not paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
