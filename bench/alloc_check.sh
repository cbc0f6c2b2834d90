#!/usr/bin/env bash
# bench/alloc_check.sh - does squall allocate on the heap per request?
#
#   bench/alloc_check.sh        (from any directory)
#
# Steady state means the number of heap allocations does not grow with the number of
# requests. Four measurements (1, 2 and 4 for GET /plaintext and GET /json, 3 for /plaintext):
#
#  1. delta (LD_PRELOAD bench/malloc_count.c): one keep-alive connection, 100 warm-up
#     requests, a SIGUSR1 snapshot of the counters, N requests, another snapshot.
#     The difference is what N requests cost; N = 1000 and N = 10000.
#     Also with a new connection per request (the spare-connection pool in steady state).
#  2. totals (same shim): a fresh squall per run, one connection, N requests, SIGTERM;
#     the count at exit, N = 1000 and 10000; (total(10000) - total(1000)) / 9000 is the
#     cost of one request including whatever startup and shutdown cost.
#  3. under load (skipped without wrk): wrk runs of WRK_SECS (2) seconds one after the
#     other against one squall, pipelined -c256 -p16 (pipeline.lua) and keep-alive -c64,
#     a snapshot after each; the allocations of each run next to its request count.
#  4. valgrind --tool=memcheck (skipped with VALGRIND=0 or when valgrind is missing): its
#     "total heap usage: A allocs" for the same runs as 2.
#
# Environment: PORT (first port tried, default 18180), N1=1000, N2=10000, VALGRIND=1,
# WRK_SECS=2, PIPELINE_LUA (default ../shared/bench/peers/pipeline.lua).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-18180}
N1=${N1:-1000}
N2=${N2:-10000}
VALGRIND=${VALGRIND:-1}
WRK_SECS=${WRK_SECS:-2}
PIPELINE_LUA=${PIPELINE_LUA:-$ROOT/../shared/bench/peers/pipeline.lua}
CONF=${CONF:-$ROOT/plugins.conf}

. "$ROOT/bench/lib.sh"

command -v python3 >/dev/null || die "python3 is missing"
command -v cc >/dev/null || die "cc is missing"
command -v curl >/dev/null || die "curl is missing"

WORK=$(mktemp -d /tmp/squall-alloc.XXXXXX)
trap 'squall_stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SHIM=$WORK/malloc_count.so
cc -O2 -Wall -Wextra -shared -fPIC "$ROOT/bench/malloc_count.c" -o "$SHIM" ||
    die "cannot build bench/malloc_count.c"
PORT=$(free_port "$PORT")
make_conf "$CONF" "$WORK/alloc.conf" "$PORT"
REQS=(python3 "$ROOT/bench/reqs.py" "$PORT")

snap_now() { # SIGUSR1 to squall, then print the new snapshot line
    local before
    before=$(grep -c snapshot "$COUNTS" 2>/dev/null || true)
    kill -USR1 "$SQ_PID"
    for _ in $(seq 100); do
        [ "$(grep -c snapshot "$COUNTS" 2>/dev/null || true)" -gt "${before:-0}" ] && break
        sleep 0.05
    done
    grep snapshot "$COUNTS" | tail -1
}

field() { # field NAME LINE: the value of NAME=... in a malloc_count line
    sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"
}

echo "squall: $SQUALL   conf: $CONF (port $PORT)   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "1. Steady state, LD_PRELOAD malloc_count.so: allocations during N requests after 100 warm-up"
printf "   %-11s %-10s %7s %8s %8s %8s %8s  %s\n" path mode N allocs malloc calloc realloc "frees  allocs/req"
COUNTS=$WORK/counts
rm -f "$COUNTS"
squall_start "$PORT" "$WORK/alloc.conf" "$WORK/squall.log" env LD_PRELOAD="$SHIM" MALLOC_COUNT_FILE="$COUNTS"
for path in /plaintext /json; do
    for mode in keepalive newconn; do
        [ "$mode" = newconn ] && [ "$path" = /json ] && continue
        for n in "$N1" "$N2"; do
            extra=()
            [ "$mode" = newconn ] && extra=(--new-conn)
            "${REQS[@]}" "$path" "$n" --warmup 100 --snapshot "$SQ_PID" "$COUNTS" "${extra[@]}" >/dev/null ||
                die "reqs.py failed for $path"
            a=$(grep snapshot "$COUNTS" | tail -2 | head -1)
            b=$(grep snapshot "$COUNTS" | tail -1)
            d() { echo $(( $(field "$1" "$b") - $(field "$1" "$a") )); }
            al=$(d allocs)
            printf "   %-11s %-10s %7d %8d %8d %8d %8d %6d  %.3f\n" "$path" "$mode" "$n" "$al" \
                "$(d malloc)" "$(d calloc)" "$(d realloc)" "$(d free)" \
                "$(awk -v a="$al" -v n="$n" 'BEGIN {print a / n}')"
        done
    done
done
squall_stop

echo
echo "2. Totals at exit, LD_PRELOAD malloc_count.so: fresh squall, one connection, N requests, SIGTERM"
printf "   %-11s %7s %8s %8s\n" path N allocs frees
declare -A TOT
for path in /plaintext /json; do
    for n in "$N1" "$N2"; do
        rm -f "$COUNTS"
        squall_start "$PORT" "$WORK/alloc.conf" "$WORK/squall.log" env LD_PRELOAD="$SHIM" MALLOC_COUNT_FILE="$COUNTS"
        "${REQS[@]}" "$path" "$n" --warmup 0 >/dev/null || die "reqs.py failed for $path"
        squall_stop
        line=$(grep exit "$COUNTS" | tail -1)
        [ -n "$line" ] || die "no exit line from malloc_count.so"
        TOT[$path$n]=$(field allocs "$line")
        printf "   %-11s %7d %8d %8d\n" "$path" "$n" "${TOT[$path$n]}" "$(field free "$line")"
    done
    printf "   %-11s per request: (%d - %d) / %d = %.3f allocs\n" "$path" "${TOT[$path$N2]}" \
        "${TOT[$path$N1]}" $((N2 - N1)) \
        "$(awk -v a="${TOT[$path$N2]}" -v b="${TOT[$path$N1]}" -v n=$((N2 - N1)) 'BEGIN {print (a - b) / n}')"
done

if command -v wrk >/dev/null; then
    echo
    echo "3. Under wrk load, LD_PRELOAD malloc_count.so: allocations during each ${WRK_SECS}s wrk run on one squall"
    echo "   (the first run opens the connections; later ones reuse the spare connections)"
    printf "   %-32s %10s %8s %8s  %s\n" run requests allocs frees allocs/req
    rm -f "$COUNTS"
    squall_start "$PORT" "$WORK/alloc.conf" "$WORK/squall.log" env LD_PRELOAD="$SHIM" MALLOC_COUNT_FILE="$COUNTS"
    prev=$(snap_now)
    for run in "pipelined -c256 -p16" "pipelined -c256 -p16" "keep-alive -c64" "keep-alive -c64"; do
        args=(-t1 -d"${WRK_SECS}s")
        case $run in
            pipelined*) args+=(-c256 -s "$PIPELINE_LUA" "http://127.0.0.1:$PORT/plaintext" -- 16) ;;
            *) args+=(-c64 "http://127.0.0.1:$PORT/plaintext") ;;
        esac
        n=$(wrk "${args[@]}" | awk '/requests in/ {print $1}')
        cur=$(snap_now)
        al=$(( $(field allocs "$cur") - $(field allocs "$prev") ))
        printf "   %-32s %10d %8d %8d  %.6f\n" "/plaintext $run" "$n" "$al" \
            $(( $(field free "$cur") - $(field free "$prev") )) \
            "$(awk -v a="$al" -v n="$n" 'BEGIN {print a / n}')"
        prev=$cur
    done
    squall_stop
fi

if [ "$VALGRIND" = 1 ] && command -v valgrind >/dev/null; then
    echo
    echo "4. valgrind --tool=memcheck: fresh squall, one connection, N requests, SIGTERM"
    printf "   %-11s %7s %10s %10s %14s\n" path N allocs frees "bytes allocated"
    for path in /plaintext /json; do
        for n in "$N1" "$N2"; do
            SQ_WAIT=60 SQ_STOP_WAIT=60 squall_start "$PORT" "$WORK/alloc.conf" "$WORK/vg.log" \
                valgrind --tool=memcheck --log-file="$WORK/vg.out"
            "${REQS[@]}" "$path" "$n" --warmup 0 >/dev/null || die "reqs.py failed for $path"
            SQ_STOP_WAIT=60 squall_stop
            line=$(grep 'total heap usage' "$WORK/vg.out" || true)
            [ -n "$line" ] || { cat "$WORK/vg.out" >&2; die "no heap summary from valgrind"; }
            # ==PID==   total heap usage: 1,234 allocs, 1,230 frees, 56,789 bytes allocated
            read -r al fr by < <(sed 's/,//g; s/.*usage: \([0-9]*\) allocs \([0-9]*\) frees \([0-9]*\) bytes.*/\1 \2 \3/' <<<"$line")
            TOT[vg$path$n]=$al
            printf "   %-11s %7d %10d %10d %14d\n" "$path" "$n" "$al" "$fr" "$by"
        done
        printf "   %-11s per request: (%d - %d) / %d = %.3f allocs\n" "$path" "${TOT[vg$path$N2]}" \
            "${TOT[vg$path$N1]}" $((N2 - N1)) \
            "$(awk -v a="${TOT[vg$path$N2]}" -v b="${TOT[vg$path$N1]}" -v n=$((N2 - N1)) 'BEGIN {print (a - b) / n}')"
    done
fi
