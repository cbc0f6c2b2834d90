#!/usr/bin/env bash
# bench/ab_throughput.sh - throughput of two squall builds side by side (A/B), e.g. the tree
# before the coroutines and the current one.
#
#   bench/ab_throughput.sh OLD_DIR NEW_DIR
#
# Each DIR holds build/squall, build/plugins/hello.so and plugins.conf (a checkout built
# with make; e.g. `git worktree add /tmp/squall-before <sha> && make -C /tmp/squall-before`).
# Both servers run at once, each pinned to CPU 0 (taskset -c 0; the idle one costs
# nothing), each on its own port; wrk runs pinned to the last CPU. For each case, ROUNDS
# rounds each run old and new once, the order swapped every round (old new, new old, ...),
# so drift in machine speed hits both alike, after a 1 s warm-up run of each. Prints every
# run, the medians and their new/old, and the median of the rounds' own new/old ratios;
# also the server's CPU time per request (utime + stime from /proc/PID/stat over the run,
# divided by wrk's request count), which wrk's own speed and the run-to-run drift of
# this VM disturb less than req/s.
#
# Cases: plaintext (GET /plaintext, -t1 -c64), json (GET /json, -t1 -c64), pipelined
# (GET /plaintext, -t1 -c256, pipeline.lua depth 16).
#
# Noise: each run also measures the CPU time that neither the server nor wrk used (from
# /proc/stat, as % of one CPU); a round where that exceeds NOISE in either run is run
# again, at most RETRIES times (then kept as it is). Discarded rounds are printed.
#
# Environment: ROUNDS=5, DURATION=4 (s per wrk run), CASES="plaintext json pipelined",
# NOISE=10 (%), RETRIES=4, PORT=18080 (first port tried), PEERS_DIR (for pipeline.lua),
# RESTART=1 (restart both servers, and warm them up again, before every round: a process's
# memory layout moves its speed by several % from one start to the next, so one pair of
# processes is one sample of that, not ROUNDS samples).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4}
CASES=${CASES:-plaintext json pipelined}
NOISE=${NOISE:-10}
RETRIES=${RETRIES:-4}
RESTART=${RESTART:-0}
PORT=${PORT:-18080}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench/peers}
PIPELINE_LUA=$PEERS_DIR/pipeline.lua
LAST_CPU=$(( $(nproc) - 1 ))

. "$ROOT/bench/lib.sh"

[ $# = 2 ] || { sed -n '2,28p' "$0"; exit 2; }
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
command -v wrk >/dev/null || die "wrk is missing"
[ -f "$PIPELINE_LUA" ] || die "no $PIPELINE_LUA (set PEERS_DIR)"

WORK=$(mktemp -d /tmp/squall-ab.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A BASE PID
start() { # start NAME DIR PORT
    local name=$1 dir=$2 port=$3 code
    [ -x "$dir/build/squall" ] || die "$dir/build/squall is not built"
    make_conf "$dir/plugins.conf" "$WORK/$name.conf" "$port"
    taskset -c 0 "$dir/build/squall" -c "$WORK/$name.conf" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    PID[$name]=$!
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/plaintext" || true)
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    [ "$code" = 200 ] || { cat "$WORK/$name.log" >&2; die "$name does not answer on $port"; }
    [ "$(curl -s "http://127.0.0.1:$port/json")" = '{"message":"Hello, World!"}' ] || die "$name: bad /json"
    BASE[$name]=http://127.0.0.1:$port
}

p1=$(free_port "$PORT")
start old "$OLD" "$p1"
p2=$(free_port $((p1 + 1)))
start new "$NEW" "$p2"

# restart_all: both servers stopped and started afresh (RESTART=1, before every round)
restart_all() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    start old "$OLD" "$p1"
    start new "$NEW" "$p2"
}

echo "A/B: old = $OLD (pid ${PIDS[0]}), new = $NEW (pid ${PIDS[1]}); both on CPU 0, wrk on CPU $LAST_CPU;" \
     "$ROUNDS rounds x ${DURATION}s; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"

busy_jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
pid_jiffies() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run_wrk URL CONNS DEPTH SERVER_PID -> "req/s other% cpu_us": cpu_us is the server's CPU
# time (utime + stime, /proc/PID/stat) per request in microseconds; other% the CPU time (% of one
# CPU over the run, from /proc/stat: user nice system irq softirq steal; loopback softirq
# work is charged to the process it interrupted) that neither the server nor wrk used,
# i.e. what other processes (or the hypervisor) took meanwhile.
run_wrk() {
    local out b0 b1 s0 s1 w
    b0=$(busy_jiffies); s0=$(pid_jiffies "$4")
    if [ "$3" -gt 1 ]; then
        out=$(taskset -c "$LAST_CPU" wrk -t1 -c"$2" -d"${DURATION}s" -s "$PIPELINE_LUA" "$1" -- "$3")
    else
        out=$(taskset -c "$LAST_CPU" wrk -t1 -c"$2" -d"${DURATION}s" "$1")
    fi
    # wrk's user and system time: this subshell's children's (bash's times, 2nd line; run
    # in this shell, not in a pipe, whose subshell would have no children)
    local tf=$WORK/times.$BASHPID
    times >"$tf"
    w=$(sed -n 2p "$tf" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }')
    b1=$(busy_jiffies); s1=$(pid_jiffies "$4")
    if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
        echo "$out" | grep -E 'Non-2xx|Socket errors' >&2
    fi
    echo "$out" | awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v w="$w" -v d="$DURATION" '
        /Requests\/sec/ { r = $2 }
        / requests in / { n = $1 }
        END { o = ((b - s) / 100 - w) / d * 100; if (o < 0) o = 0
              printf "%s %.0f %.3f\n", r, o, (n > 0) ? s * 10000 / n : 0 }'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf "%-10s %-6s %s\n" case build "req/s per round"
for c in $CASES; do
    case $c in
        plaintext) path=/plaintext conns=64 depth=1 ;;
        json) path=/json conns=64 depth=1 ;;
        pipelined) path=/plaintext conns=256 depth=16 ;;
        *) die "unknown case $c" ;;
    esac
    declare -A P=([old]=$path [new]=$path)
    declare -A R=([old]="" [new]="") NZ=([old]="" [new]="") U=([old]="" [new]="")
    for b in old new; do # warm-up, not counted: connections, caches, the CPU's clock
        DURATION=1 run_wrk "${BASE[$b]}${P[$b]}" "$conns" "$depth" "${PID[$b]}" >/dev/null
    done
    discarded=0
    for r in $(seq "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
        if [ "$RESTART" = 1 ]; then
            restart_all
            for b in old new; do
                DURATION=1 run_wrk "${BASE[$b]}${P[$b]}" "$conns" "$depth" "${PID[$b]}" >/dev/null
            done
        fi
        for try in $(seq 0 "$RETRIES"); do
            declare -A V=() O=() C=()
            noisy=
            for b in $order; do
                # shellcheck disable=SC2046 # three words: req/s other% cpu_us
                set -- $(run_wrk "${BASE[$b]}${P[$b]}" "$conns" "$depth" "${PID[$b]}")
                V[$b]=$1 O[$b]=$2 C[$b]=$3
                [ "$2" -gt "$NOISE" ] && noisy="$noisy $b:$2%"
            done
            if [ -n "$noisy" ] && [ "$try" -lt "$RETRIES" ]; then
                discarded=$((discarded + 1))
                echo "  ($c round $r discarded, other processes used$noisy of a CPU: old ${V[old]}, new ${V[new]})" >&2
                continue
            fi
            for b in old new; do R[$b]+="${V[$b]} "; NZ[$b]+="${O[$b]} "; U[$b]+="${C[$b]} "; done
            break
        done
    done
    mo=$(tr ' ' '\n' <<<"${R[old]}" | grep . | median)
    mn=$(tr ' ' '\n' <<<"${R[new]}" | grep . | median)
    printf "%-10s %-6s %s  (other CPU %%: %s)\n" "$c" old "${R[old]}" "${NZ[old]}"
    printf "%-10s %-6s %s  (other CPU %%: %s)\n" "$c" new "${R[new]}" "${NZ[new]}"
    printf "%-10s %-6s server CPU us/req: %s\n" "$c" old "${U[old]}"
    printf "%-10s %-6s server CPU us/req: %s\n" "$c" new "${U[new]}"
    uo=$(tr ' ' '\n' <<<"${U[old]}" | grep . | median)
    un=$(tr ' ' '\n' <<<"${U[new]}" | grep . | median)
    printf "%-10s median old %.0f  new %.0f  new/old %.3f  (-c%s depth %s; %s rounds discarded as noisy)\n" \
        "$c" "$mo" "$mn" "$(awk -v a="$mn" -v b="$mo" 'BEGIN {print (b > 0) ? a / b : 0}')" \
        "$conns" "$depth" "$discarded"
    # the median of the rounds' own new/old (each round's pair ran back to back)
    pr=$(paste -d' ' <(tr ' ' '\n' <<<"${R[new]}" | grep .) <(tr ' ' '\n' <<<"${R[old]}" | grep .) |
         awk '{ printf "%.3f\n", $1 / $2 }' | median)
    echo "RATIO $c $(awk -v a="$mn" -v b="$mo" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}') (median of per-round ratios $pr)"
    printf "%-10s server CPU per request: median old %.3f us  new %.3f us  new/old %.3f\n" "$c" "$uo" "$un" \
        "$(awk -v a="$un" -v b="$uo" 'BEGIN {print (b > 0) ? a / b : 0}')"
done
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || die "a server died during the runs"; done
