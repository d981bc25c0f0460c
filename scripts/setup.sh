#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine of this kind (Debian, root, the
# Rust toolchain from rustup). Idempotent: every step checks before it installs.
#   - Rust: the toolchain, components and targets of rust-toolchain.toml (rustup).
#   - Debian packages: the ones listed in scripts/debian-packages.txt.
#   - Python: a venv in .venv with the independent verifiers of tests/python/requirements.txt.
#   - npm: scanner-web's devDependencies (binaryen's wasm-opt, playwright-core and axe-core for
#     the browser tests, jsqr to check the vendored copy), with `npm ci` from its lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
while read -r pkg; do
    [[ -z "$pkg" || "$pkg" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/debian-packages.txt
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp=.venv/.requirements.sha256
want=$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "setup: creating the Python venv for the independent verifiers"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
    echo "$want" > "$stamp"
fi

stamp=scanner-web/node_modules/.package-lock.sha256
want=$(sha256sum scanner-web/package-lock.json | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "setup: installing scanner-web's npm packages"
    (cd scanner-web && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
fi

# rustup >= 1.28 no longer installs a toolchain file's targets on the first cargo call: install
# the toolchain of rust-toolchain.toml (with its components and targets) when one is missing.
want_targets=$(sed -n 's/^targets = \[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '" ' | tr ',' '\n' | sort)
have_targets=$(rustup target list --installed 2>/dev/null | sort || true)
if [[ -n "$(comm -23 <(echo "$want_targets") <(echo "$have_targets"))" ]]; then
    echo "setup: installing the toolchain of rust-toolchain.toml with its targets"
    rustup toolchain install
fi
rustup show active-toolchain >/dev/null
