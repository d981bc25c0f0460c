#!/usr/bin/env bash
# Builds the browser's verifier, scanner-web/dist/verifier.wasm, from scanner-web/verifier.
#
#   scanner-web/build-wasm.sh [--out FILE] [cargo arguments…]
#
# The one implementation of this build: the gateway's build.rs runs this script with
# `--out $OUT_DIR/verifier.wasm` to embed the module in the `prov` binary, and scripts/test.sh
# runs it for the Node tests (default output scanner-web/dist/verifier.wasm).
#
# Its own target directory (target/wasm-verifier): a wasm build never waits on, nor invalidates,
# the workspace's native builds (and a nested cargo from build.rs cannot deadlock on the outer
# build's target-directory lock). Profile `wasm-release` (root Cargo.toml) tunes for speed (see
# its comment). When
# npm's binaryen is installed (`npm ci` here), wasm-opt optimises the module further; without it
# the raw module is used as is. Idempotent: cargo's own up-to-date check, and wasm-opt runs only
# when the raw module is newer than the output. Extra arguments go to cargo (e.g. --locked).
# `$CARGO` (set by cargo for build scripts) picks the cargo binary; default `cargo`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target_dir="$root/target/wasm-verifier"
raw="$target_dir/wasm32-unknown-unknown/wasm-release/prov_verifier.wasm"
out="$here/dist/verifier.wasm"
if [ "${1:-}" = "--out" ]; then
    [ $# -ge 2 ] || { echo "build-wasm.sh: --out needs a file" >&2; exit 2; }
    out="$2"
    shift 2
fi
out_dir="$(dirname "$out")"
name="$(basename "$out")"

"${CARGO:-cargo}" build --quiet --manifest-path "$root/Cargo.toml" -p prov-verifier --lib \
    --target wasm32-unknown-unknown --profile wasm-release --target-dir "$target_dir" "$@"

mkdir -p "$out_dir"
opt="$here/node_modules/.bin/wasm-opt"
stamp="$out_dir/.optimised-$name"
# Rebuild the output when the raw module changed, or when wasm-opt appeared since the last copy.
if [ "$out" -nt "$raw" ] && { [ ! -x "$opt" ] || [ -e "$stamp" ]; }; then
    echo "$out is up to date ($(stat -c %s "$out") bytes)"
    exit 0
fi
rm -f "$stamp"
if [ -x "$opt" ]; then
    # The features rustc's wasm32-unknown-unknown enables by default (the module is stripped,
    # so wasm-opt cannot read them from it).
    "$opt" -O3 --strip-debug --strip-producers \
        --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
        --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types \
        "$raw" -o "$out.tmp"
    mv "$out.tmp" "$out"
    touch "$stamp"
else
    echo "note: no $opt (run 'npm ci' in scanner-web): using the module without wasm-opt" >&2
    cp "$raw" "$out.tmp"
    mv "$out.tmp" "$out"
fi
echo "$out: $(stat -c %s "$raw") bytes raw, $(stat -c %s "$out") bytes written"
