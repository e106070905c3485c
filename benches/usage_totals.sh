#!/usr/bin/env bash
# GET /v1/usage over a month as the ledger grows: ROWS synthetic rows (generate_series, spread
# over this month until now: 100 keys, 5 models, 3 providers) and their hourly totals in a
# scratch database, then the answer time of /v1/usage for the month (group_by key and day,
# median of RUNS) from each binary given, against the same database.
#
#   cargo build --release
#   benches/usage_totals.sh                              # ROWS=5000000, the release build
#   ROWS=50000000 benches/usage_totals.sh old-binary target/release/switchyard
#
# A binary from before the hourly totals (issue #12) answers from request_logs. Needs the local
# PostgreSQL (127.0.0.1:5432, trust auth); 50 million rows take about 12 GB of disk. Everything
# listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$target_dir/release/switchyard")
rows=${ROWS:-5000000}
runs=${RUNS:-5}
db=switchyard_bench_totals_$$
admin="psql -h 127.0.0.1 -U postgres -d test -qAt"
root=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-totals.XXXXXX")
gw_pid=""
cleanup() {
    [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null || true
    [ -n "${KEEP_DB:-}" ] || $admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
}
trap cleanup EXIT
$admin -c "CREATE DATABASE $db"
url="postgres://postgres@127.0.0.1:5432/$db"
cat > "$root/switchyard.yaml" <<YAML
server: { listen: 127.0.0.1:18120 }
providers: [ { id: mock, kind: mock } ]
models: [ { name: gpt-4o-mini, routes: [ { provider: mock, model: gpt-4o-mini } ] } ]
usage: { sink: postgres, database_url: "$url", spill_path: "$root/spill.jsonl" }
YAML
# The newest binary makes the schema (and this month's partitions).
"${bins[-1]}" migrate --config "$root/switchyard.yaml" >/dev/null

db_sql() { psql -h 127.0.0.1 -U postgres -d "$db" -qAt "$@"; }
start=$(db_sql -c "SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
span_us=$(db_sql -c "SELECT (extract(epoch FROM now() - '$start'::timestamptz) * 1000000)::int8")
echo "generating $rows rows over this month ($start until now)"
chunk=5000000
t0=$(date +%s)
for ((done = 0; done < rows; done += chunk)); do
    n=$(( rows - done < chunk ? rows - done : chunk ))
    db_sql -c "INSERT INTO request_logs (request_id, created_at, key_name, model_name, provider_id,
                   input_tokens, output_tokens, cost, status, purpose)
               SELECT 'req-' || n, '$start'::timestamptz + (n::numeric * $span_us / $rows) * interval '1 microsecond',
                      'key-' || (n % 100), (ARRAY['gpt-4o-mini','gpt-4o','qwen-plus','qwen-max','o3-mini'])[1 + n % 5],
                      (ARRAY['openai','dashscope','azure'])[1 + n % 3], 100 + n % 500, n % 200,
                      ((100 + n % 500) * 150 + (n % 200) * 600) / 1000000000000.0, 'ok', 'chat'
               FROM generate_series($done + 1, $done + $n) n"
    echo "  $((done + n)) rows ($(( $(date +%s) - t0 )) s)"
done
# The totals the writer would have kept, as migration 0003 fills them.
db_sql -c "INSERT INTO usage_hourly (hour, key_name, model_name, provider_id, purpose, requests, input_tokens, output_tokens, cost)
           SELECT date_trunc('hour', created_at, 'UTC'), coalesce(key_name, ''), model_name, coalesce(provider_id, ''),
                  purpose, count(*), sum(input_tokens), sum(output_tokens), sum(cost)
           FROM request_logs GROUP BY 1, 2, 3, 4, 5"
db_sql -c "VACUUM ANALYZE"
echo "rows: $(db_sql -c 'SELECT count(*) FROM request_logs'); hourly totals: $(db_sql -c 'SELECT count(*) FROM usage_hourly');" \
     "database: $(db_sql -c "SELECT pg_size_pretty(pg_database_size('$db'))")"

# The answer's rows (its `to` is "now", different every time), to check binaries agree.
data_md5() {
    python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])).get("data")))' "$1" | md5sum | cut -c1-32
}
printf "%-50s %10s %10s %12s %34s\n" binary group_by median_s answer_bytes data_md5
for bin in "${bins[@]}"; do
    "$bin" serve --config "$root/switchyard.yaml" > "$root/gateway.log" 2>&1 &
    gw_pid=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18120/health >/dev/null && break; sleep 0.1; done
    for group in key day; do
        times=()
        for _ in $(seq 1 "$runs"); do
            times+=("$(curl -s -o "$root/answer.json" -w '%{time_total}' "http://127.0.0.1:18120/v1/usage?group_by=$group")")
        done
        median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
        printf "%-50s %10s %10s %12s %34s\n" "$bin" "$group" "$median" "$(wc -c < "$root/answer.json")" "$(data_md5 "$root/answer.json")"
    done
    kill "$gw_pid"
    wait "$gw_pid" 2>/dev/null || true
    gw_pid=""
done
