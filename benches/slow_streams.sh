#!/usr/bin/env bash
# Memory per open stream: STREAMS slow streams held open through the gateway at once, the
# gateway's RSS read before and while they are open. The slow upstream is a second Switchyard
# serving its in-process mock at one chunk a second (an OpenAI-kind HTTP upstream, as in
# production: every stream holds an upstream connection too).
#
#   cargo build --release
#   benches/slow_streams.sh                  # STREAMS=10000 by default
#
# Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}
bin=${SWITCHYARD_BIN:-$target_dir/release/switchyard}
streams=${STREAMS:-10000}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 1; }
# The gateway holds two descriptors per stream (client and upstream): raise the soft limit as
# far as the hard one allows.
ulimit -n "$(ulimit -Hn)"
if [ $((streams * 2 + 512)) -gt "$(ulimit -n)" ]; then
    echo "open-files limit $(ulimit -n) is too low for $streams streams (2 descriptors each)" >&2
    exit 1
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-slow.XXXXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

reply=$(printf 'word%.0s ' $(seq 1 200))
cat > "$root/upstream.yaml" <<YAML
server: { listen: 127.0.0.1:18111, max_connections: $((streams + 100)), request_timeout: 3600s }
providers: [ { id: slow, kind: mock, mock: { chunk_interval: 1s, reply: "$reply" } } ]
models: [ { name: gpt-4o-mini, routes: [ { provider: slow, model: gpt-4o-mini } ] } ]
usage: { sink: none }
YAML
cat > "$root/gateway.yaml" <<YAML
server: { listen: 127.0.0.1:18110, max_connections: $((streams + 100)), request_timeout: 3600s }
providers:
  - { id: up, kind: openai, base_url: "http://127.0.0.1:18111/v1", api_key: sk-up, timeout: 60s, health_check: { enabled: false } }
models: [ { name: gpt-4o-mini, routes: [ { provider: up, model: gpt-4o-mini } ] } ]
usage: { sink: none }
YAML
"$bin" serve --config "$root/upstream.yaml" > "$root/upstream.log" 2>&1 &
pids+=("$!")
"$bin" serve --config "$root/gateway.yaml" > "$root/gateway.log" 2>&1 &
gateway=$!
pids+=("$gateway")
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18110/health >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$gateway/status"; }
# Warm up: one stream through, so the first-use allocations are not counted per stream.
curl -sN -m 3 http://127.0.0.1:18110/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}' >/dev/null || true
before=$(rss)

python3 - "$streams" "$gateway" <<'PY'
import asyncio, sys
n, pid = int(sys.argv[1]), sys.argv[2]
body = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
opened = 0

async def one(stop):
    global opened
    reader, writer = await asyncio.open_connection("127.0.0.1", 18110)
    writer.write(head + body)
    await writer.drain()
    line = await reader.readline()
    assert line.startswith(b"HTTP/1.1 200"), line
    opened += 1
    await stop.wait()
    writer.close()

async def main():
    stop = asyncio.Event()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(stop)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)
    while opened < n:
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # every stream has relayed a few chunks
    rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
    print(f"open {opened} rss_kb {rss}", flush=True)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)

asyncio.run(main())
PY
echo "before_kb $before"
