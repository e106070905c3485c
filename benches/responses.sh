#!/usr/bin/env bash
# Responses vs chat through the same gateway, in one run: the rig's nginx mock upstream, one
# release gateway, wrk closed-loop loads of the same conversation asked as a chat completion and
# as a response (stored, the default), non-stream and streamed. What the Responses API costs on
# top of chat is the ratio.
#
#   cargo build --release
#   benches/responses.sh                       # CONNS="1 32" DURATION=10 by default
#
# Needs nginx with the Lua module and wrk (apt-get install -y nginx-light libnginx-mod-http-lua
# wrk). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
rig=${BENCH_RIG:-../shared/bench}
target_dir=${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}
bin=${SWITCHYARD_BIN:-$target_dir/release/switchyard}
conns=${CONNS:-"1 32"}
duration=${DURATION:-10}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 1; }
root=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-responses.XXXXXX")
mkdir -p "$root/run" "$root/logs" "$root/mock" "$root/bodies"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

cp "$rig/mock/nginx-mock.conf" "$root/mock/"
sed -i "s/^worker_processes .*/worker_processes 1;/" "$root/mock/nginx-mock.conf"
nginx -p "$root" -c "$root/mock/nginx-mock.conf" -e "$root/logs/mock_startup.log"
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && break; sleep 0.1; done
pids+=("$(cat "$root/run/mock.pid")")

cat > "$root/switchyard.yaml" <<YAML
server: { listen: 127.0.0.1:18098 }
providers:
  - { id: mock, kind: openai, base_url: "http://127.0.0.1:18081/v1", api_key: sk-mock }
models:
  - { name: gpt-4o-mini, type: chat, routes: [ { provider: mock, model: gpt-4o-mini } ] }
auth: { keys: [ { name: bench, key: sk-bench-responses } ] }
usage: { sink: none }
YAML
"$bin" serve --config "$root/switchyard.yaml" > "$root/logs/gateway.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18098/health >/dev/null && break; sleep 0.1; done

system='You are a helpful assistant.'
user='Hello! Please reply with a short greeting.'
printf '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"%s"},{"role":"user","content":"%s"}],"max_tokens":16,"temperature":0}' "$system" "$user" > "$root/bodies/chat.json"
printf '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"%s"},{"role":"user","content":"%s"}],"max_tokens":16,"temperature":0}' "$system" "$user" > "$root/bodies/chat_stream.json"
printf '{"model":"gpt-4o-mini","instructions":"%s","input":"%s","max_output_tokens":16,"temperature":0%s}' "$system" "$user" "${RESPONSES_EXTRA:-}" > "$root/bodies/responses.json"
printf '{"model":"gpt-4o-mini","stream":true,"instructions":"%s","input":"%s","max_output_tokens":16,"temperature":0}' "$system" "$user" > "$root/bodies/responses_stream.json"

run() {  # run <scenario> <path> <conns>
    local threads=$(( $3 < 2 ? $3 : 2 ))
    WRK_BODY_FILE="$root/bodies/$1.json" WRK_AUTH_KEY=sk-bench-responses \
        wrk -t"$threads" -c"$3" -d"${duration}s" --latency -s "$rig/wrk/request.lua" "http://127.0.0.1:18098$2" 2>&1 \
        | grep '^RESULT' | sed 's/^RESULT //'
}
kv() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1==k{print $2}'; }

# Preflight: both answer correctly.
curl -sf -H 'authorization: Bearer sk-bench-responses' -H 'content-type: application/json' \
    -d @"$root/bodies/responses.json" http://127.0.0.1:18098/v1/responses | grep -q '"status":"completed"'
curl -sfN -H 'authorization: Bearer sk-bench-responses' -H 'content-type: application/json' \
    -d @"$root/bodies/responses_stream.json" http://127.0.0.1:18098/v1/responses | grep -q 'response.completed'

printf '%-18s %5s %10s %9s %9s %8s %7s\n' scenario conns rps p50_ms p99_ms errors "÷ chat"
[ -n "${HOLD:-}" ] && { echo "gateway pid $(pgrep -f "switchyard serve --config $root" | head -1)"; sleep "$HOLD"; }
for c in $conns; do
    for pair in "chat /v1/chat/completions responses /v1/responses" "chat_stream /v1/chat/completions responses_stream /v1/responses"; do
        read -r chat chat_path resp resp_path <<<"$pair"
        a=$(run "$chat" "$chat_path" "$c")
        b=$(run "$resp" "$resp_path" "$c")
        for row in "$chat|$a" "$resp|$b"; do
            name=${row%%|*}; res=${row#*|}
            ratio=$(awk -v x="$(kv rps "$res")" -v y="$(kv rps "$a")" 'BEGIN{printf "%.2f", x/y}')
            errors=$(( $(kv err_connect "$res") + $(kv err_read "$res") + $(kv err_timeout "$res") + $(kv non2xx "$res") ))
            printf '%-18s %5s %10s %9s %9s %8s %7s\n' "$name" "$c" "$(kv rps "$res")" "$(kv p50_ms "$res")" "$(kv p99_ms "$res")" "$errors" "$ratio"
        done
    done
done
