#!/usr/bin/env bash
# Uploads and speech through the gateway against the same requests sent straight to the upstream
# and through nginx (`proxy_pass`, request and response buffering off: streamed like the
# gateway), one worker each (#21's figures): a SIZE_MB upload's wall time (median of RUNS; direct,
# gateway and nginx runs taken in turn), sent as fast as loopback takes it (CPU-bound: the hop's
# copies compete with the client and the upstream for the two cores) and paced to MBPS (125 MB/s,
# a 1 Gbit/s client: what a real network gives), the gateway's peak RSS growth while AT_ONCE such uploads stream through it at once
# (VmHWM after minus before, per upload: what it holds of one), and how long speech pieces take
# from the upstream's send to the client's read.
#
#   cargo build --release
#   benches/media.sh                 # SIZE_MB=20 RUNS=21 AT_ONCE=8
#
# The upstream and the clients are benches/media.py (Python, asyncio). Needs nginx (apt-get install
# -y nginx-light). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}
bin=${SWITCHYARD_BIN:-$target_dir/release/switchyard}
size_mb=${SIZE_MB:-20}
runs=${RUNS:-21}
at_once=${AT_ONCE:-8}
mbps=${MBPS:-125}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 1; }
root=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-media.XXXXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$root"' EXIT

cat > "$root/gateway.yaml" <<YAML
server: { listen: 127.0.0.1:18120, workers: 1 }
providers:
  - { id: up, kind: openai, base_url: "http://127.0.0.1:18121/v1", api_key: sk-up, timeout: 60s, health_check: { enabled: false } }
models:
  - { name: ears, type: transcription, routes: [ { provider: up, model: whisper-1 } ] }
  - { name: voice, type: speech, routes: [ { provider: up, model: tts-1 } ] }
usage: { sink: none }
YAML
python3 benches/media.py upstream 18121 &
pids+=("$!")
mkdir -p "$root/nginx"
cat > "$root/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $root/nginx/nginx.pid;
error_log $root/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $root/nginx;
    proxy_temp_path $root/nginx;
    upstream media { server 127.0.0.1:18121; keepalive 32; }
    server {
        listen 127.0.0.1:18122;
        client_max_body_size 64m;
        location / {
            proxy_pass http://media;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }
    }
}
CONF
nginx -c "$root/nginx/nginx.conf" -g 'daemon off;' &
pids+=("$!")
"$bin" serve --config "$root/gateway.yaml" > "$root/gateway.log" 2>&1 &
gateway=$!
pids+=("$gateway")
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18120/health >/dev/null && break; sleep 0.1; done
head -c $((size_mb * 1024 * 1024)) /dev/urandom > "$root/audio.bin"
hwm() { awk '/VmHWM/ {print $2}' "/proc/$gateway/status"; }

# Warm-up: a 10 kB upload and a speech through, so first-use allocations are not counted (the
# growth after includes the first MiB a long upload keeps for its retry decision).
head -c 10000 /dev/urandom > "$root/small.bin"
python3 benches/media.py upload http://127.0.0.1:18120/v1 "$root/small.bin" 2 >/dev/null
python3 benches/media.py speech http://127.0.0.1:18120/v1 1 >/dev/null
timed() { python3 benches/media.py upload "$1" "$root/audio.bin" 1 1 "$2" | cut -d' ' -f1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Prints the medians (direct, gateway, nginx) at a rate (0: unpaced).
uploads() {
    local direct=() through=() nginx=()
    for _ in $(seq 1 "$runs"); do
        direct+=("$(timed http://127.0.0.1:18121/v1 "$1")")
        through+=("$(timed http://127.0.0.1:18120/v1 "$1")")
        nginx+=("$(timed http://127.0.0.1:18122/v1 "$1")")
    done
    echo "$(median "${direct[@]}") $(median "${through[@]}") $(median "${nginx[@]}")"
}
read -r direct through nginx < <(uploads 0)
read -r p_direct p_through p_nginx < <(uploads "$mbps")
before=$(hwm)
python3 benches/media.py upload http://127.0.0.1:18120/v1 "$root/audio.bin" 2 "$at_once" >/dev/null
after=$(hwm)
read -r s_direct s_direct_p99 < <(python3 benches/media.py speech http://127.0.0.1:18121/v1 "$runs")
read -r s_through s_through_p99 < <(python3 benches/media.py speech http://127.0.0.1:18120/v1 "$runs")
read -r s_nginx s_nginx_p99 < <(python3 benches/media.py speech http://127.0.0.1:18122/v1 "$runs")

echo "upload of ${size_mb} MB, median of $runs, unpaced: direct ${direct} ms, through the gateway ${through} ms, through nginx ${nginx} ms"
python3 -c "print(f'  the gateway adds {($through / $direct - 1) * 100:.1f} %, nginx {($nginx / $direct - 1) * 100:.1f} %')"
echo "upload of ${size_mb} MB, median of $runs, paced to $mbps MB/s: direct ${p_direct} ms, through the gateway ${p_through} ms, through nginx ${p_nginx} ms"
python3 -c "print(f'  the gateway adds {($p_through / $p_direct - 1) * 100:.1f} %, nginx {($p_nginx / $p_direct - 1) * 100:.1f} %')"
echo "gateway peak RSS: ${before} kB before, ${after} kB after $at_once uploads at once: +$((after - before)) kB, $(((after - before) / at_once)) kB an upload"
echo "speech piece, upstream send to client read (median / p99): direct ${s_direct} / ${s_direct_p99} ms, through the gateway ${s_through} / ${s_through_p99} ms, through nginx ${s_nginx} / ${s_nginx_p99} ms"
