#!/usr/bin/env bash
# The test command from the README: installs what the tests need on a fresh Debian machine
# (as root, or with sudo), then runs formatting, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi

missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v stty >/dev/null 2>&1 || missing+=(coreutils)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

bash scripts/install-kubectl.sh
export KUBECTL="${KUBECTL:-$(command -v kubectl)}"

shellcheck scripts/*.sh .ci/run
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
