#!/usr/bin/env bash
# Builds the browser's verifier, scanner-web/dist/verifier.wasm, from scanner-web/verifier.
#
# Its own target directory (target/wasm-verifier): a wasm build never waits on, nor invalidates,
# the workspace's native builds. Profile `wasm-release` (root Cargo.toml) tunes for size. When
# npm's binaryen is installed (`npm ci` here), wasm-opt shrinks the module further; without it
# the raw module is used as is. Idempotent: cargo's own up-to-date check, and wasm-opt runs only
# when the raw module is newer than dist/. Extra arguments go to cargo (e.g. --locked).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target_dir="$root/target/wasm-verifier"
raw="$target_dir/wasm32-unknown-unknown/wasm-release/prov_verifier.wasm"
out="$here/dist/verifier.wasm"

cargo build --quiet --manifest-path "$root/Cargo.toml" -p prov-verifier --lib \
    --target wasm32-unknown-unknown --profile wasm-release --target-dir "$target_dir" "$@"

mkdir -p "$here/dist"
opt="$here/node_modules/.bin/wasm-opt"
stamp="$here/dist/.optimised"
# Rebuild dist/ when the raw module changed, or when wasm-opt appeared since the last copy.
if [ "$out" -nt "$raw" ] && { [ ! -x "$opt" ] || [ -e "$stamp" ]; }; then
    echo "scanner-web/dist/verifier.wasm is up to date ($(stat -c %s "$out") bytes)"
    exit 0
fi
rm -f "$stamp"
if [ -x "$opt" ]; then
    # The features rustc's wasm32-unknown-unknown enables by default (the module is stripped,
    # so wasm-opt cannot read them from it).
    "$opt" -Oz --strip-debug --strip-producers \
        --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
        --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types \
        "$raw" -o "$out.tmp"
    mv "$out.tmp" "$out"
    touch "$stamp"
else
    echo "note: no $opt (run 'npm ci' in scanner-web): using the module without wasm-opt" >&2
    cp "$raw" "$out"
fi
echo "scanner-web/dist/verifier.wasm: $(stat -c %s "$raw") bytes raw, $(stat -c %s "$out") bytes written"
