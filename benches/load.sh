#!/usr/bin/env bash
# Load benchmark: switchyard vs nginx proxy_pass vs direct-to-upstream, in one run, on this
# machine, through the shared rig (wrk -> target -> nginx+Lua mock upstream on 127.0.0.1).
#
#   apt-get install -y nginx-light libnginx-mod-http-lua wrk    # once
#   cargo build --release
#   benches/load.sh                                             # all scenarios, c=1/32/128
#   SCENARIOS=chat CONNS=32 benches/load.sh                     # any rig variable passes through
#
# BENCH_RIG points at the rig (default ../shared/bench next to this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
rig=${BENCH_RIG:-../shared/bench}
[ -x "$rig/run_baselines.sh" ] || { echo "no bench rig at $rig (set BENCH_RIG)" >&2; exit 1; }
target_dir=${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}
export SWITCHYARD_BIN=${SWITCHYARD_BIN:-$target_dir/release/switchyard}
[ -x "$SWITCHYARD_BIN" ] || { echo "build first: cargo build --release ($SWITCHYARD_BIN missing)" >&2; exit 1; }
export TARGETS=${TARGETS:-"direct nginx switchyard"}
export SCENARIOS=${SCENARIOS:-"chat chat_stream embeddings models"}
export CONNS=${CONNS:-"1 32 128"}
export RATES=${RATES:-""}
exec "$rig/run_baselines.sh"
