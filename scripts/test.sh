#!/usr/bin/env bash
# The one command that runs every test: the Rust workspace (unit, property, mutation, vector and
# end-to-end tests) and the independent Python verifiers of the shared test vectors.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-features --locked
.venv/bin/python -m pytest -q tests/python
