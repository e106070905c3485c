#!/usr/bin/env bash
# Load benchmark: switchyard vs nginx proxy_pass vs direct-to-upstream, in one run, on this
# machine, through the shared rig (wrk -> target -> nginx+Lua mock upstream on 127.0.0.1).
#
#   apt-get install -y nginx-light libnginx-mod-http-lua wrk    # once
#   cargo build --release
#   benches/load.sh                                             # all scenarios, c=1/32/128
#   SCENARIOS=chat CONNS=32 benches/load.sh                     # any rig variable passes through
#   BASELINE_BIN=/tmp/switchyard-old benches/load.sh             # also an older build, same run
#   BASELINE_BIN=$SWITCHYARD_BIN BASELINE_EXTRA_YAML= \
#     SWITCHYARD_EXTRA_YAML="control: { database_url: postgres://… }" benches/load.sh
#                                          # one build with and without a feature, same run
#
# With BASELINE_BIN, that binary runs as the extra target `baseline` (127.0.0.1:18097, the same
# config as the rig's `switchyard` target, with BASELINE_EXTRA_YAML instead of
# SWITCHYARD_EXTRA_YAML when set), so a before/after pair is measured in one run.
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
if [ -z "${BASELINE_BIN:-}" ]; then
    exec "$rig/run_baselines.sh"
fi
[ -x "$BASELINE_BIN" ] || { echo "BASELINE_BIN $BASELINE_BIN is not executable" >&2; exit 1; }
export BENCH_KEY=${BENCH_KEY:-sk-bench-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}
dir=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-baseline.XXXXXX")
cat > "$dir/switchyard.yaml" <<YAML
server:
  listen: 127.0.0.1:18097
providers:
  - { id: mock, kind: openai, base_url: "http://127.0.0.1:18081/v1", api_key: sk-mock }
models:
  - { name: gpt-4o-mini, type: chat, routes: [ { provider: mock, model: gpt-4o-mini, weight: 1 } ] }
  - { name: text-embedding-3-small, type: embedding, routes: [ { provider: mock, model: text-embedding-3-small, weight: 1 } ] }
auth:
  keys: [ { name: bench, key: "$BENCH_KEY" } ]
${BASELINE_EXTRA_YAML-${SWITCHYARD_EXTRA_YAML:-}}
YAML
# From its own directory, so relative paths (the default usage file, spill and journal) are its
# own: a gateway refuses a spill path another one holds. An absolute usage.spill_path in
# SWITCHYARD_EXTRA_YAML would be shared, and the baseline would not start.
(cd "$dir" && exec "$BASELINE_BIN" serve --config "$dir/switchyard.yaml") > "$dir/baseline.log" 2>&1 &
baseline=$!
trap 'kill $baseline 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18097/health >/dev/null && break; sleep 0.1; done
export TARGETS="$TARGETS ext:baseline=http://127.0.0.1:18097@$baseline"
"$rig/run_baselines.sh"
