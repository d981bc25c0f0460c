#!/usr/bin/env bash
# The demo in one command: installs what is missing (scripts/setup.sh), then runs `prov demo`
# from a release build: the gateway with its embedded MQTT broker, a simulated packaging line
# and the scanner page. It prints the page URL of each product as it is made, and its label's;
# Ctrl-C stops it. Arguments go to `prov demo` (e.g. --http 127.0.0.1:9000, --products 5,
# --seed 2, --run-tag B, --rate 50, --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --locked -p prov-gateway --bin prov -- demo "$@"
