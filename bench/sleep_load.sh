#!/usr/bin/env bash
# bench/sleep_load.sh - N concurrent connections each awaiting GET /sleep?ms=MS on squall,
# then the same against Tornado's /slow?ms=MS (../shared/bench/peers/tornado/app.py).
#
#   bench/sleep_load.sh        (from any directory)
#
# Each run starts a fresh server pinned to CPU 0 (taskset -c 0), so that its VmHWM is the
# peak of that run alone, and runs bench/sleep_load.c (built here) pinned to the last CPU.
# Runs alternate squall, tornado, squall, tornado, ...
#
# Environment:
#   CONNS=10000  connections       MS=1000    sleep per request
#   WAVE=1000    connects per wave (see sleep_load.c)   GAP=0  ms between waves
#   RUNS=2       runs per server   PEERS="tornado" (empty: squall only)
#   SERVERS="squall $PEERS"  what each run starts, in this order (e.g. SERVERS=tornado)
#   PORT=18080   first port tried for squall (Tornado gets the next free one from +30)
#   PERF=1       also perf record -e cpu-clock -g the first squall run; the report goes to
#                $PERF_OUT (default /tmp/sleep_load.perf.txt)
#   SQUALL, CONF, PEERS_DIR as for bench/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONNS=${CONNS:-10000}
MS=${MS:-1000}
WAVE=${WAVE:-1000}
GAP=${GAP:-0}
RUNS=${RUNS:-2}
PEERS=${PEERS-tornado}
PORT=${PORT:-18080}
PERF=${PERF:-0}
PERF_OUT=${PERF_OUT:-/tmp/sleep_load.perf.txt}
CONF=${CONF:-$ROOT/plugins.conf}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench/peers}
LAST_CPU=$(( $(nproc) - 1 ))

. "$ROOT/bench/lib.sh"

command -v taskset >/dev/null || die "taskset is missing (util-linux)"
command -v curl >/dev/null || die "curl is missing"

WORK=$(mktemp -d /tmp/squall-sleep.XXXXXX)
PEER_PID=
peer_stop() {
    [ -n "$PEER_PID" ] || return 0
    kill "$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
    PEER_PID=
}
trap 'squall_stop; peer_stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cc -O2 -g -Wall -Wextra -o "$WORK/sleep_load" "$ROOT/bench/sleep_load.c" || die "cannot build sleep_load"

client() { # client PORT PATH PID
    taskset -c "$LAST_CPU" "$WORK/sleep_load" -n "$CONNS" -w "$WAVE" -g "$GAP" -p "$1" -u "$2" -P "$3"
}

echo "sleep_load: $CONNS connections x GET ${MS} ms sleep, waves of $WAVE (gap $GAP ms); servers on CPU 0, client on CPU $LAST_CPU;" \
     "$(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg);" \
     "ulimit -Hn $(ulimit -Hn)"

run_squall() {
    local port
    port=$(free_port "$PORT")
    make_conf "$CONF" "$WORK/sleep.conf" "$port"
    squall_start "$port" "$WORK/sleep.conf" "$WORK/squall.log" taskset -c 0
    [ "$(curl -s "http://127.0.0.1:$port/sleep?ms=1")" = '{"slept":1}' ] || die "GET /sleep?ms=1 does not answer as expected"
    echo "== squall $1 (pid $SQ_PID, port $port)"
    local perf_pid=
    if [ "$PERF" = 1 ] && [ "$1" = 1 ]; then
        perf record -q -e cpu-clock -g -p "$SQ_PID" -o "$WORK/perf.data" 2>/dev/null &
        perf_pid=$!
        sleep 0.5
    fi
    client "$port" "/sleep?ms=$MS" "$SQ_PID" || echo "(sleep_load reported failures)"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
        {
            echo "# perf record -e cpu-clock -g -p squall during one $CONNS x /sleep?ms=$MS run"
            perf report -i "$WORK/perf.data" --no-children --stdio -g none --percent-limit 0.5 2>/dev/null
            echo "# with children (inclusive)"
            perf report -i "$WORK/perf.data" --children --stdio -g none --percent-limit 2 2>/dev/null
        } >"$PERF_OUT"
        echo "(perf report in $PERF_OUT)"
    fi
    squall_stop
}

run_tornado() {
    local port
    port=$(free_port $((PORT + 30)))
    /usr/bin/python3 -c 'import tornado' 2>/dev/null || die "python3-tornado is missing (apt-get install -y python3-tornado)"
    taskset -c 0 /usr/bin/python3 "$PEERS_DIR/tornado/app.py" --port="$port" --address=127.0.0.1 \
        >"$WORK/tornado.log" 2>&1 &
    PEER_PID=$!
    for _ in $(seq 100); do
        [ "$(curl -s "http://127.0.0.1:$port/slow?ms=1")" = '{"slept":1}' ] && break
        sleep 0.1
    done
    [ "$(curl -s "http://127.0.0.1:$port/slow?ms=1")" = '{"slept":1}' ] || { cat "$WORK/tornado.log" >&2; die "tornado does not answer"; }
    echo "== tornado $1 (pid $PEER_PID, port $port, $(/usr/bin/python3 -c 'import tornado; print("Tornado", tornado.version)'))"
    client "$port" "/slow?ms=$MS" "$PEER_PID" || echo "(sleep_load reported failures)"
    peer_stop
}

SERVERS=${SERVERS:-squall $PEERS}
for r in $(seq "$RUNS"); do
    for s in $SERVERS; do
        case $s in
            squall) run_squall "$r" ;;
            tornado) run_tornado "$r" ;;
            *) die "unknown server $s" ;;
        esac
    done
done
