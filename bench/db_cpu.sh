#!/usr/bin/env bash
# bench/db_cpu.sh - what a database route costs per request: squall's CPU and PostgreSQL's,
# for comparing two builds of the PostgreSQL service (bench/RESULTS.md, "shared pipelines").
#
#   bench/db_cpu.sh [PATH] [RUNS]        e.g. bench/db_cpu.sh /db 3
#   SQUALL=/tmp/old/squall bench/db_cpu.sh /db 3
#
# Starts SQUALL (default build/squall) on a copy of plugins/bench/bench.conf with an embedded
# cluster in a temporary directory and pool_size = 16, pinned to CPU 0, warms up for 2 s,
# then RUNS times: `wrk -t1 -c64 -d5s` on the last CPU, and prints req/s with the CPU time
# squall and the cluster (its postmaster and all its children, reaped ones included) took
# during the run (bench/lib.sh's pids_ticks, pg_ticks) divided by the requests served. The
# cluster's CPU cannot be pinned apart from squall's this way, so it is not pinned at all,
# as in bench/db.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUTE=${1:-/db}
RUNS=${2:-3}
PORT=${PORT:-18380}
LAST_CPU=$(($(nproc) - 1))
. "$ROOT/bench/lib.sh"

WORK=$(mktemp -d /tmp/squall-dbcpu.XXXXXX)
chmod 0755 "$WORK" # as root the cluster runs as postgres, which must reach $WORK/pg
trap 'squall_stop; rm -rf "$WORK"' EXIT
PORT=$(free_port "$PORT")
make_conf "$ROOT/plugins/bench/bench.conf" "$WORK/bench.conf" "$PORT"
printf '\n[database]\ndsn = embedded\nembedded_dir = %s\npool_size = 16\n' "$WORK/pg" >>"$WORK/bench.conf"
SQ_WAIT=60 squall_start "$PORT" "$WORK/bench.conf" "$WORK/squall.log"
URL=http://127.0.0.1:$PORT$ROUTE
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 200 ] && break; sleep 0.1; done
taskset -a -p -c 0 "$SQ_PID" >/dev/null
PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")
taskset -c "$LAST_CPU" wrk -t1 -c64 -d2s "$URL" >/dev/null

echo "$SQUALL $ROUTE: wrk -t1 -c64 -d5s on CPU $LAST_CPU, squall on CPU 0"
for _ in $(seq "$RUNS"); do
    s0=$(pids_ticks "$SQ_PID"); g0=$(pg_ticks "$PG_PID")
    out=$(taskset -c "$LAST_CPU" wrk -t1 -c64 -d5s "$URL")
    s1=$(pids_ticks "$SQ_PID"); g1=$(pg_ticks "$PG_PID")
    echo "$out" | grep -q Non-2xx && { echo "$out" >&2; die "non-2xx replies"; }
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    r=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    awk -v r="$r" -v n="$n" -v s=$((s1 - s0)) -v g=$((g1 - g0)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%8.0f req/s   squall %5.1f us/request   PostgreSQL %5.1f us/request\n",
                 r, s / hz * 1e6 / n, g / hz * 1e6 / n }'
done
