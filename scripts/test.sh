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
# Real servers for the PgBouncer and Redis tests (PostgreSQL's binaries live under
# /usr/lib/postgresql/*/bin, not on PATH).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Test certificates for the Redis TLS test.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# The S3-compatible server of the Backups tests: moto's server, with its IAM signature checks
# turned on by the tests. Debian's Python is "externally managed", hence the flag.
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip --version >/dev/null 2>&1 || {
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip
  }
  echo "test.sh: installing moto[server] (S3 test server)" >&2
  "${SUDO[@]}" python3 -m pip install --quiet --break-system-packages 'moto[server]>=5.1,<6'
fi

bash scripts/install-kubectl.sh
export KUBECTL="${KUBECTL:-$(command -v kubectl)}"

shellcheck scripts/*.sh .ci/run
bash scripts/lint-runbooks.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Doc-tests are left out (there are none): their empty run would be the last word otherwise.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "${passed} passed, ${failed} failed"
exit "$status"
