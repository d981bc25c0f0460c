#!/usr/bin/env bash
# The one command that runs every test: the Rust workspace (unit, property, mutation, vector and
# end-to-end tests with real Mosquitto brokers), the wasm verifier over the shared vectors in
# Node, and the independent Python verifiers of the shared test vectors.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-features --locked
# The in-browser verifier: the core built for wasm32, run over the same vectors in Node.
scanner-web/build-wasm.sh --locked
node --test scanner-web/tests/
scanner-web/run-browser-tests.sh --locked
.venv/bin/python -m pytest -q tests/python
