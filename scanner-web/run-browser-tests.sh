#!/usr/bin/env bash
# The scanner page's browser tests (tests/browser/*.browser.mjs): Debian's Chromium, headless,
# driven by playwright-core, against the real gateway (`prov demo`) with a fake camera.
# Builds what they need first: the wasm verifier (dist/verifier.wasm), then the gateway binary,
# which embeds www/ and the verifier (target/debug/prov). Extra arguments go to cargo (e.g.
# --locked). Kept apart from `node --test scanner-web/tests/` (which finds only *.test.mjs): these
# need Chromium and a gateway build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

[ -x /usr/bin/chromium ] || { echo "run-browser-tests: no /usr/bin/chromium (scripts/setup.sh installs it)" >&2; exit 1; }
[ -d "$here/node_modules/playwright-core" ] && [ -d "$here/node_modules/axe-core" ] \
    || (cd "$here" && npm ci --no-audit --no-fund)
"$here/build-wasm.sh" "$@"
cargo build --quiet --manifest-path "$root/Cargo.toml" -p prov-gateway --bin prov "$@"
# One file at a time: each starts a gateway and browsers, on 2 shared cores.
node --test --test-concurrency=1 "$here"/tests/browser/*.browser.mjs
