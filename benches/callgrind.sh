#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: deterministic, so a change's
# cost shows on this noisy machine where wall-clock runs vary by ±20%. The gateway (one worker)
# sits in front of the rig's nginx mock; after a warm-up, instrumentation is switched on for
# REQUESTS keep-alive requests only (start-up and shutdown are not counted).
#
#   cargo build --release          # or --profile profiling: line tables for annotated sources
#   benches/callgrind.sh                          # the release build
#   benches/callgrind.sh /tmp/before target/...   # several binaries: a before/after pair, one run
#
#   SCENARIO=chat_stream benches/callgrind.sh     # chat (default), chat_stream, messages or
#                                                 # messages_stream (Anthropic's /v1/messages on a
#                                                 # chat route), passthrough or passthrough_stream
#                                                 # (/v1/messages on a kind: anthropic route)
#   REQUESTS=2000 WARMUP=300                      # counted requests, warm-up requests
#   SAME_HEADERS=1                                # chat requests carry an Anthropic client's
#                                                 # `anthropic-version` too: a like-for-like
#                                                 # chat to compare a pass-through with
#   EXTRA_YAML=$'usage:\n  sink: file'            # the gateway's extra config (default: sink none)
#
# Needs valgrind and nginx with the Lua module (apt-get install -y valgrind nginx-light
# libnginx-mod-http-lua). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
rig=${BENCH_RIG:-../shared/bench}
target_dir=${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$target_dir/release/switchyard")
scenario=${SCENARIO:-chat}
requests=${REQUESTS:-2000}
warmup=${WARMUP:-300}
extra_yaml=${EXTRA_YAML-$'usage:\n  sink: none'}
root=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-callgrind.XXXXXX")
mkdir -p "$root/run" "$root/logs" "$root/mock"
mock_pid=""
gw_pid=""
cleanup() {
    [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null || true
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
}
trap cleanup EXIT

cp "$rig/mock/nginx-mock.conf" "$root/mock/"
sed -i "s/^worker_processes .*/worker_processes 1;/" "$root/mock/nginx-mock.conf"
# The rig's mock speaks OpenAI only: a fixed Anthropic message and stream at /v1/messages, the
# same words and the same per-request work (read the body, one search, a precomputed string).
cat > "$root/mock/messages.conf" <<'NGINX'
        location = /v1/messages {
            content_by_lua_block {
                ngx.req.read_body()
                local b = ngx.req.get_body_data()
                if b and b:find('"stream"%s*:%s*true') then
                    ngx.header["Content-Type"] = "text/event-stream"
                    ngx.print(MSG_SSE)
                else
                    ngx.header["Content-Type"] = "application/json"
                    ngx.header["Content-Length"] = #MSG_JSON
                    ngx.print(MSG_JSON)
                end
            }
        }
NGINX
cat > "$root/mock/messages_init.lua" <<'LUA'
MSG_JSON = '{"id":"msg_mock0001","type":"message","role":"assistant","model":"claude-mock",' ..
    '"content":[{"type":"text","text":"Hello! This is a fixed response from the mock upstream."}],' ..
    '"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,' ..
    '"cache_read_input_tokens":0,"output_tokens":13}}'
local function ev(name, data) return 'event: ' .. name .. '\ndata: ' .. data .. '\n\n' end
local parts = {ev("message_start", '{"type":"message_start","message":{"id":"msg_mock0001","type":"message",' ..
    '"role":"assistant","model":"claude-mock","content":[],"stop_reason":null,"stop_sequence":null,' ..
    '"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}'),
    ev("content_block_start", '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'),
    ev("ping", '{"type": "ping"}')}
for _, w in ipairs({"Hello", "!", " This", " is", " a", " fixed", " streamed", " response", "."}) do
    parts[#parts + 1] = ev("content_block_delta",
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"' .. w .. '"}}')
end
parts[#parts + 1] = ev("content_block_stop", '{"type":"content_block_stop","index":0}')
parts[#parts + 1] = ev("message_delta", '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}')
parts[#parts + 1] = ev("message_stop", '{"type":"message_stop"}')
MSG_SSE = table.concat(parts)
LUA
sed -i "/location = \/healthz/r $root/mock/messages.conf" "$root/mock/nginx-mock.conf"
sed -i "s|init_by_lua_block {|init_by_lua_block {\n        dofile(\"$root/mock/messages_init.lua\")|" "$root/mock/nginx-mock.conf"
nginx -p "$root" -c "$root/mock/nginx-mock.conf" -e "$root/logs/mock_startup.log"
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && break; sleep 0.1; done
mock_pid=$(cat "$root/run/mock.pid")

stream=false
case "$scenario" in *_stream) stream=true ;; esac
path=/v1/chat/completions
case "$scenario" in messages* | passthrough*) path=/v1/messages ;; esac
kind=openai base_url=http://127.0.0.1:18081/v1
case "$scenario" in passthrough*) kind=anthropic base_url=http://127.0.0.1:18081 ;; esac
# A keep-alive client outside valgrind: `n` requests on one connection, each answer checked.
client() {
    python3 - "$1" "$stream" "$path" "${SAME_HEADERS:-0}" <<'PY'
import http.client, json, sys
n, stream, path = int(sys.argv[1]), sys.argv[2] == "true", sys.argv[3]
same_headers = sys.argv[4] == "1"
anthropic = path == "/v1/messages"
body = json.dumps({"model": "gpt-4o-mini", "stream": stream, "max_tokens": 256,
                   "messages": [{"role": "user", "content": "Say hello."}]})
headers = {"content-type": "application/json", "authorization": "Bearer sk-callgrind"}
if anthropic or same_headers:
    headers["anthropic-version"] = "2023-06-01"
conn = http.client.HTTPConnection("127.0.0.1", 18096)
for _ in range(n):
    conn.request("POST", path, body, headers)
    r = conn.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data[:200])
    if anthropic:
        assert (b"message_stop" in data) if stream else (b'"type":"message"' in data), data[:200]
    else:
        assert (b"[DONE]" in data) if stream else (b"chat.completion" in data), data[:200]
PY
}

printf '%-60s %12s %14s\n' binary scenario "Ir/request"
for bin in "${bins[@]}"; do
    cat > "$root/switchyard.yaml" <<YAML
server:
  listen: 127.0.0.1:18096
  workers: 1
providers:
  - { id: mock, kind: $kind, base_url: "$base_url", api_key: sk-mock }
models:
  - { name: gpt-4o-mini, type: chat, routes: [ { provider: mock, model: gpt-4o-mini, weight: 1 } ] }
auth:
  keys: [ { name: bench, key: sk-callgrind } ]
${extra_yaml}
YAML
    out="$root/callgrind.$(basename "$bin").$$.out"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$bin" serve --config "$root/switchyard.yaml" > "$root/logs/gateway.log" 2>&1 &
    gw_pid=$!
    for _ in $(seq 1 300); do curl -sf http://127.0.0.1:18096/health >/dev/null && break; sleep 0.2; done
    client "$warmup"
    callgrind_control -i on "$gw_pid" >/dev/null 2>&1
    client "$requests"
    callgrind_control -i off "$gw_pid" >/dev/null 2>&1
    kill -TERM "$gw_pid"
    wait "$gw_pid" || true
    gw_pid=""
    total=$(grep -E '^(summary|totals):' "$out" | tail -1 | awk '{print $2}')
    printf '%-60s %12s %14s\n' "$bin" "$scenario" "$((total / requests))"
done
