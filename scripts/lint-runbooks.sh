#!/usr/bin/env bash
# Lint runbooks with opsdeck's own parser and rules: `opsdeck runbook lint` (interfaces.md,
# "Runbook runs"). Unknown step attributes, out-of-range timeouts, reserved variables in `vars`,
# duplicate step names, kubectl without --context "$CONTEXT", unknown variables and state
# changes in steps not marked destructive are errors; shellcheck runs over every step when it is
# installed. Problems are printed as FILE:LINE: message; exit status 1 if any.
#
# Usage: scripts/lint-runbooks.sh [RUNBOOK.md ...]   (default: the embedded runbooks/*.md)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "lint-runbooks: shellcheck is not installed (Debian: apt-get install -y shellcheck)" >&2
  exit 2
fi

exec cargo run --quiet --manifest-path "$repo_root/Cargo.toml" -- runbook lint "$@"
