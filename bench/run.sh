#!/usr/bin/env bash
# bench/run.sh - what `make bench` runs: wrk against the hello plugin.
#
#   bench/run.sh            (from any directory; paths are taken from the repo root)
#
# Starts build/squall pinned to CPU 0 on its own port, with a temporary copy of
# plugins.conf (listen replaced, relative paths made absolute), waits until it answers,
# then runs wrk pinned to the last CPU, one line per case:
#   plaintext   GET /plaintext, keep-alive       -t1 -c64
#   pipelined   GET /plaintext, pipelined x16    -t1 -c256 (pipeline.lua -- 16)
#   json        GET /json, keep-alive            -t1 -c64
# and stops the server.
#
# Environment:
#   DURATION=5      seconds per wrk run (and per compare.sh round)
#   PORT=18080      first port tried for squall (the next free one up to +20 is used)
#   COMPARE=1       also run ../shared/bench/peers/compare.sh against the same squall:
#                   plaintext vs nginx, pipelined (-p 16 -c 256) vs nginx, json vs kore
#   ROUNDS=3        compare.sh rounds
#   VERBOSE=1       also print wrk's own output (to stderr)
#   SQUALL=path     the binary (default build/squall); CONF=path (default plugins.conf)
#   PEERS_DIR=path  where compare.sh and pipeline.lua live (default ../shared/bench/peers)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
COMPARE=${COMPARE:-0}
PORT=${PORT:-18080}
CONF=${CONF:-$ROOT/plugins.conf}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench/peers}
PIPELINE_LUA=$PEERS_DIR/pipeline.lua
LAST_CPU=$(( $(nproc) - 1 ))

. "$ROOT/bench/lib.sh"

command -v wrk >/dev/null || die "wrk is missing (make deps installs it)"
command -v curl >/dev/null || die "curl is missing (make deps installs it)"
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
[ -f "$PIPELINE_LUA" ] || die "no $PIPELINE_LUA (set PEERS_DIR)"
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -gt 0 ] || die "DURATION must be a whole number of seconds"
[ "$LAST_CPU" -gt 0 ] || echo "bench/run.sh: warning: one CPU only, squall and wrk share it" >&2

WORK=$(mktemp -d /tmp/squall-bench.XXXXXX)
trap 'squall_stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=$(free_port "$PORT")
make_conf "$CONF" "$WORK/bench.conf" "$PORT"
BASE=http://127.0.0.1:$PORT
squall_start "$PORT" "$WORK/bench.conf" "$WORK/squall.log" taskset -c 0
[ "$(curl -s "$BASE/json")" = '{"message":"Hello, World!"}' ] || die "GET /json does not answer as expected"

echo "squall pid $SQ_PID on $BASE, CPU 0; wrk on CPU $LAST_CPU, ${DURATION}s per case, $(date -u '+%Y-%m-%d %H:%M UTC')"

# run_case NAME CONNS PATH [DEPTH]: one wrk run, one line of results.
run_case() {
    local name=$1 conns=$2 path=$3 depth=${4:-1} out
    local args=(-t1 -c"$conns" -d"${DURATION}s" --latency)
    [ "$depth" -gt 1 ] && args+=(-s "$PIPELINE_LUA")
    if [ "$depth" -gt 1 ]; then
        out=$(taskset -c "$LAST_CPU" wrk "${args[@]}" "$BASE$path" -- "$depth") || die "wrk failed for $name"
    else
        out=$(taskset -c "$LAST_CPU" wrk "${args[@]}" "$BASE$path") || die "wrk failed for $name"
    fi
    kill -0 "$SQ_PID" 2>/dev/null || { cat "$WORK/squall.log" >&2; die "squall died during $name"; }
    [ "${VERBOSE:-0}" = 1 ] && echo "$out" >&2
    echo "$out" | awk -v name="$name" -v c="$conns" -v d="$depth" -v path="$path" '
        /Requests\/sec/ { r = $2 }
        / 99%/ { v = $2
                 if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 }
                 else if (v ~ /ms$/) { sub(/ms/, "", v) }
                 else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }
                 p = v }
        /Non-2xx|Socket errors/ { bad = bad "  [" $0 "]" }
        END { # wrk prints 0.00us for p99 when its latency correction misfires (seen
              # with pipelining at 1M+ req/s): say n/a rather than 0
              ps = (p > 0) ? sprintf("%8.2f ms", p) : "     n/a   "
              printf "%-10s %-11s -c%-4s depth %-3s %12.0f req/s   p99 %s%s\n",
                     name, path, c, d, r, ps, bad }'
}

run_case plaintext 64 /plaintext
run_case pipelined 256 /plaintext 16
run_case json 64 /json

if [ "$COMPARE" = 1 ]; then
    CMP=$PEERS_DIR/compare.sh
    [ -x "$CMP" ] || die "no $CMP"
    echo
    echo "== compare.sh -r $ROUNDS -d $DURATION -c 64 $BASE/plaintext nginx"
    "$CMP" -r "$ROUNDS" -d "$DURATION" -c 64 "$BASE/plaintext" nginx
    echo
    echo "== compare.sh -r $ROUNDS -d $DURATION -c 256 -p 16 $BASE/plaintext nginx"
    "$CMP" -r "$ROUNDS" -d "$DURATION" -c 256 -p 16 "$BASE/plaintext" nginx
    echo
    echo "== compare.sh -r $ROUNDS -d $DURATION -c 64 $BASE/json kore"
    "$CMP" -r "$ROUNDS" -d "$DURATION" -c 64 "$BASE/json" kore
fi
