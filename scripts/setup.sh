#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine of this kind (Debian, root, the
# Rust toolchain from rustup). Idempotent: every step checks before it installs.
#   - Rust targets come from rust-toolchain.toml on the first cargo call.
#   - Debian packages: the ones listed in scripts/debian-packages.txt.
#   - Python: a venv in .venv with the independent verifiers of tests/python/requirements.txt.
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

rustup show active-toolchain >/dev/null
