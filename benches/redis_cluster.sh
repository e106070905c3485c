#!/usr/bin/env bash
# Gateway CPU per request with its limits and sessions on one Redis node and on a three-master
# Redis Cluster (#22): the same REQUESTS chat requests (a rate-limited key, each turn in one of
# 200 sessions), CONCURRENCY at a time over keep-alive connections, against each gateway in turn;
# the gateway's CPU time (utime + stime from /proc) per request, and their ratio. The upstream is
# a second Switchyard serving its in-process mock over HTTP.
#
#   cargo build --release
#   benches/redis_cluster.sh                 # REQUESTS=4000 CONCURRENCY=8
#
# Everything listens on 127.0.0.1; the Redis servers are this script's own.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}
bin=${SWITCHYARD_BIN:-$target_dir/release/switchyard}
requests=${REQUESTS:-4000}
concurrency=${CONCURRENCY:-8}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 1; }
root=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-cluster.XXXXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$root"' EXIT

# One node, and three masters (their bus ports are 10000 above).
redis-server --port 18130 --bind 127.0.0.1 --save "" --appendonly no --dir "$root" >/dev/null &
pids+=("$!")
for port in 18131 18132 18133; do
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$root" \
        --cluster-enabled yes --cluster-config-file "nodes-$port.conf" >/dev/null &
    pids+=("$!")
done
for port in 18130 18131 18132 18133; do
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
redis-cli --cluster create 127.0.0.1:18131 127.0.0.1:18132 127.0.0.1:18133 \
    --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 1 100); do
    redis-cli -p 18131 cluster info | grep -q cluster_state:ok && break; sleep 0.1
done

cat > "$root/upstream.yaml" <<YAML
server: { listen: 127.0.0.1:18134 }
providers: [ { id: m, kind: mock } ]
models: [ { name: gpt-4o-mini, routes: [ { provider: m, model: gpt-4o-mini } ] } ]
usage: { sink: none }
YAML
gateway_yaml() {
    cat <<YAML
server: { listen: 127.0.0.1:$1, workers: 1 }
providers:
  - { id: up, kind: openai, base_url: "http://127.0.0.1:18134/v1", api_key: sk-up, timeout: 60s, health_check: { enabled: false } }
models: [ { name: gpt-4o-mini, routes: [ { provider: up, model: gpt-4o-mini } ] } ]
auth: { keys: [ { name: bench, key: sk-bench, rpm: 10000000, tpm: 1000000000 } ] }
redis: { url: "$2" }
sessions: { store: redis, max_tokens: 100000, compression_threshold: 90000 }
usage: { sink: none }
YAML
}
gateway_yaml 18135 "redis://127.0.0.1:18130" > "$root/single.yaml"
gateway_yaml 18136 "redis-cluster://127.0.0.1:18131?node=127.0.0.1:18132&node=127.0.0.1:18133" > "$root/cluster.yaml"
"$bin" serve --config "$root/upstream.yaml" > "$root/upstream.log" 2>&1 &
pids+=("$!")
"$bin" serve --config "$root/single.yaml" > "$root/single.log" 2>&1 &
single=$!
pids+=("$single")
"$bin" serve --config "$root/cluster.yaml" > "$root/cluster.log" 2>&1 &
cluster=$!
pids+=("$cluster")
for port in 18134 18135 18136; do
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done

load() {
    python3 - "$1" "$2" "$3" <<'PY'
import asyncio, json, sys
port, total, concurrency = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
async def worker(w, n):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(n):
        body = json.dumps({"model": "gpt-4o-mini", "session_id": f"bench-{w}-{i % 25}",
                           "messages": [{"role": "user", "content": f"turn {i}"}]}).encode()
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: b\r\nauthorization: Bearer sk-bench\r\n"
                     b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0], head
        length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
        await reader.readexactly(int(length[0].split(b":")[1]))
    writer.close()
async def main():
    await asyncio.gather(*(worker(w, total // concurrency) for w in range(concurrency)))
asyncio.run(main())
PY
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)
measure() {
    load "$2" 400 "$concurrency"   # warm-up
    local before; before=$(cpu "$1")
    load "$2" "$requests" "$concurrency"
    echo $(( $(cpu "$1") - before ))
}
s=$(measure "$single" 18135)
c=$(measure "$cluster" 18136)
python3 -c "
s, c, n, t = $s, $c, $requests, $ticks
us = lambda ticks: ticks / t / n * 1e6
print(f'gateway CPU per request, limits and sessions in Redis: one node {us(s):.1f} us, three-master cluster {us(c):.1f} us ({c / s:.2f}x)')"
