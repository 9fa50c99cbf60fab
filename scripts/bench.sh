#!/usr/bin/env bash
# Benchmarks at 2 clusters x 5,000 pods (issue 9). Not run by CI; figures go to BENCHMARKS.md.
#
#   scripts/bench.sh              # everything: criterion benches, then the PTY harness
#   scripts/bench.sh criterion    # render + filter only
#   scripts/bench.sh e2e          # launch, RSS, idle CPU/bytes/API, change-to-screen only
#
# Environment: CARGO_TARGET_DIR (default: target; use a private one so no other build
# replaces the binary under measurement), BENCH_PODS (5000), BENCH_RUNS (3),
# BENCH_ONLY (launch,idle,latency), BENCH_RSS_LONG (1: also sample RSS at 60 s),
# BENCH_WINDOW_S (30), BENCH_LATENCY_SAMPLES (10).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
target="${CARGO_TARGET_DIR:-target}"
export CARGO_TARGET_DIR="$target"

echo "## machine"
echo "nproc: $(nproc)"
grep -m1 'model name' /proc/cpuinfo || true
free -h | sed -n 1,2p
uname -sr
rustc --version
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
echo

if [[ "$what" == all || "$what" == criterion ]]; then
  cargo bench --bench render --bench filter -- --noplot 2>&1 |
    grep -E '^(render|update|filter)|time:' 
fi

if [[ "$what" == all || "$what" == e2e ]]; then
  cargo build --release --bin opsdeck
  OPSDECK_BIN="$target/release/opsdeck" cargo bench --bench e2e
fi
