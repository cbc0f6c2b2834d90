#!/usr/bin/env bash
# bench/reload.sh - hot reload and workers (issue 6) under wrk.
#
#   bench/reload.sh            (from any directory; run `make` first)
#
# Works on copies (a rebuild of the tree during the run changes nothing): build/squall, and
# plugins/hello/hello.c with its reply made "Hello, World! vNNN", built with sdk/plugin.mk
# (as a plugin author would) into a temporary folder and renamed into the path squall serves.
#
# 1. reloads under load, reload = auto: squall on CPU 0, `wrk -t1 -c64 -d${DURATION}s
#    --latency` on CPU 1 against GET /plaintext, three runs of the same length:
#      none      no reloads (the baseline)
#      rebuild   the plugin rebuilt once per second (compiler unpinned), then renamed into
#                place: RELOADS reloads
#      rename    RELOADS builds made before the run, one renamed into place per second
#                (the reload alone, without the compiler competing for the two CPUs)
#    One line per run: req/s, p99, non-2xx, socket errors, reloads the host logged.
# 2. rename-to-new-code latency, ROUNDS builds each with reload = auto (the watch's quiet
#    period included) and reload = signal (SIGHUP right after the rename): a keep-alive
#    client polls GET /plaintext as fast as it can and times the rename to the first reply
#    carrying the new version; with the host's own "reloaded in X ms" lines.
# 3. workers = 1 vs 2 on this 2-CPU machine, squall and wrk both unpinned (they share the
#    two CPUs): `wrk -t1 -c64 -d${WDURATION}s --latency` /plaintext, WROUNDS alternating
#    rounds; the median req/s and p99 of each.
#
# Environment: DURATION=20 (s, part 1), RELOADS=20, ROUNDS=10 (part 2), WDURATION=10,
# WROUNDS=3 (part 3), PORT=18090 (first port tried), PARTS="1 2 3", VERBOSE=1 (wrk output).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-20}
RELOADS=${RELOADS:-20}
ROUNDS=${ROUNDS:-10}
WDURATION=${WDURATION:-10}
WROUNDS=${WROUNDS:-3}
PORT=${PORT:-18090}
PARTS=${PARTS:-1 2 3}

WORK=$(mktemp -d /tmp/squall-reloadbench.XXXXXX)
SQUALL=$WORK/squall
. "$ROOT/bench/lib.sh"
trap 'squall_stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for t in wrk curl taskset python3 make; do
    command -v "$t" >/dev/null || die "$t is missing"
done
[ -x "$ROOT/build/squall" ] || die "run make first"
cp "$ROOT/build/squall" "$SQUALL"
mkdir -p "$WORK/hello" "$WORK/out" "$WORK/live" "$WORK/pre"

# build N: hello.c with the reply "Hello, World! vNNN", compiled to $WORK/out/hello.so.
build() {
    sed "s/\"Hello, World!\"/\"Hello, World! v$(printf %03d "$1")\"/" \
        "$ROOT/plugins/hello/hello.c" >"$WORK/hello/hello.c"
    make -s -C "$WORK/hello" -f "$ROOT/sdk/plugin.mk" OUT="$WORK/out" >/dev/null
}

# conf RELOAD WORKERS: the configuration squall serves.
conf() {
    cat >"$WORK/squall.conf" <<CONF
[server]
listen = 127.0.0.1:$PORT
workers = $2
access_log = off
reload = $1
[plugin hello]
path = $WORK/live/hello.so
CONF
}

# serve RELOAD WORKERS [PREFIX...]: build v1 into place and start squall.
serve() {
    local reload=$1 workers=$2
    shift 2
    build 1
    mv "$WORK/out/hello.so" "$WORK/live/hello.so"
    conf "$reload" "$workers"
    : >"$WORK/squall.log"
    squall_start "$PORT" "$WORK/squall.conf" "$WORK/squall.log" "$@"
}

# wrk_line NAME OUT: one line of results from wrk's output.
wrk_line() {
    echo "$2" | awk -v name="$1" '
        function ms(v) { if (v ~ /us$/) { sub(/us/, "", v); return v / 1000 }
                         if (v ~ /ms$/) { sub(/ms/, "", v); return v + 0 }
                         sub(/s/, "", v); return v * 1000 }
        /Requests\/sec/ { r = $2 }
        / 99%/ { p = ms($2) }
        /Non-2xx/ { n2 = $NF }
        /Socket errors/ { se = $0; sub(/.*Socket errors: */, "", se) }
        END { printf "%-8s %10.0f req/s   p99 %8.2f ms   non-2xx %s   socket errors %s\n",
                     name, r, p, n2 ? n2 : 0, se ? se : "none" }'
}

# count PATTERN: how many lines of squall's log have it.
count() { grep -c "$1" "$WORK/squall.log" || true; }

# reload_stats: "N MEAN MAX" of the host's "reloaded in X ms" lines ("0 0 0" without any).
reload_stats() {
    { grep "reloaded in" "$WORK/squall.log" || true; } |
        awk '{ ms = $(NF - 1); s += ms; if (ms > m) m = ms; n++ }
             END { printf "%d %.2f %.2f\n", n, n ? s / n : 0, m }'
}

# median NUMBERS...: the median.
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# run_wrk NAME [PREFIX...]: wrk against /plaintext for DURATION s; prints its line.
run_wrk() {
    local name=$1 out
    shift
    out=$("$@" wrk -t1 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/plaintext")
    [ "${VERBOSE:-0}" = 1 ] && echo "$out" >&2
    kill -0 "$SQ_PID" 2>/dev/null || { cat "$WORK/squall.log" >&2; die "squall died during $name"; }
    wrk_line "$name" "$out"
}

part1() {
    local i start n mean max
    echo "== 1. reloads under load: squall on CPU 0, wrk -t1 -c64 -d${DURATION}s --latency on CPU 1"
    PORT=$(free_port "$PORT")
    serve auto 1 taskset -c 0
    run_wrk none taskset -c 1
    echo "         (reloads logged: $(count "reloaded in"))"

    # rebuild: one build + rename per second while wrk runs
    (
        sleep 0.2 # so that the last of RELOADS builds, ~0.3 s each, lands inside the run
        for i in $(seq 2 $((RELOADS + 1))); do
            start=$(date +%s.%N)
            build "$i"
            mv "$WORK/out/hello.so" "$WORK/live/hello.so"
            sleep "$(echo "1 - ($(date +%s.%N) - $start)" | bc | sed 's/^-.*/0/')"
        done
    ) &
    local builder=$!
    run_wrk rebuild taskset -c 1
    wait "$builder"
    echo "         (reloads logged: $(count "reloaded in"); failed: $(count "reload failed"))"
    curl -s "http://127.0.0.1:$PORT/plaintext" | grep -q "v$(printf %03d $((RELOADS + 1)))" ||
        die "the last build does not answer"

    # rename: builds made first, one renamed into place per second
    for i in $(seq 100 $((100 + RELOADS - 1))); do
        build "$i"
        mv "$WORK/out/hello.so" "$WORK/pre/$i.so"
    done
    (
        sleep 0.5
        for i in $(seq 100 $((100 + RELOADS - 1))); do
            mv "$WORK/pre/$i.so" "$WORK/live/hello.so"
            sleep 1
        done
    ) &
    builder=$!
    n=$(count "reloaded in")
    run_wrk rename taskset -c 1
    wait "$builder"
    echo "         (reloads logged: $(($(count "reloaded in") - n));" \
        "failed: $(count "reload failed"))"
    read -r n mean max < <(reload_stats)
    echo "         host, both runs: $n reloads, \"reloaded in\" mean $mean ms, max $max ms"
    squall_stop
}

# The probe: for each build in PRE (renamed into place in turn), the ms from rename() to
# the first reply with its version, polling on one keep-alive connection.
probe() {
    python3 - "$PORT" "$1" "$SQ_PID" "$WORK/pre" "${@:2}" <<'PY'
import os, signal, socket, sys, time
port, mode, pid, pre = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
versions = sys.argv[5:]
live = os.path.join(os.path.dirname(pre), "live", "hello.so")
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = b"GET /plaintext HTTP/1.1\r\nHost: b\r\n\r\n"
buf = b""
def get():
    global buf
    s.sendall(req)
    while True:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            n = int([l.split(b":")[1] for l in head.split(b"\r\n")
                     if l.lower().startswith(b"content-length")][0])
            if len(rest) >= n:
                buf = rest[n:]
                return rest[:n]
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed")
        buf += d
out = []
for v in versions:
    want = ("v%03d" % int(v)).encode()
    time.sleep(0.3)
    t0 = time.monotonic()
    os.rename(os.path.join(pre, v + ".so"), live)
    if mode == "signal":
        os.kill(pid, signal.SIGHUP)
    polls = 0
    while not get().endswith(want):
        polls += 1
        if time.monotonic() - t0 > 5:
            raise SystemExit("v%s never answered" % v)
    out.append((time.monotonic() - t0) * 1000)
    print("  %s v%s: %.2f ms (%d polls before)" % (mode, v, out[-1], polls))
out.sort()
print("  %s: rename -> first reply on the new build: min %.2f, median %.2f, max %.2f ms"
      " (%d reloads)" % (mode, out[0], out[len(out) // 2], out[-1], len(out)))
PY
}

part2() {
    local mode i vs n mean max
    echo "== 2. rename -> first reply carrying the new version (squall on CPU 0, probe unpinned)"
    for mode in auto signal; do
        PORT=$(free_port "$PORT")
        vs=()
        for i in $(seq 200 $((200 + ROUNDS - 1))); do
            build "$i"
            mv "$WORK/out/hello.so" "$WORK/pre/$i.so"
            vs+=("$i")
        done
        serve "$mode" 1 taskset -c 0
        probe "$mode" "${vs[@]}"
        read -r n mean max < <(reload_stats)
        if [ "$n" -gt 0 ]; then
            echo "  $mode: host \"reloaded in\": mean $mean ms, max $max ms ($n lines)"
        else
            echo "  $mode: the host logged no \"reloaded in\" line"
        fi
        squall_stop
    done
}

part3() {
    local r w out rps p99
    declare -A all_rps all_p99
    echo "== 3. workers = 1 vs 2, squall and wrk unpinned on the 2 CPUs," \
        "wrk -t1 -c64 -d${WDURATION}s --latency, $WROUNDS rounds"
    for r in $(seq "$WROUNDS"); do
        for w in 1 2; do
            PORT=$(free_port "$PORT")
            serve off "$w"
            out=$(wrk -t1 -c64 -d"${WDURATION}s" --latency "http://127.0.0.1:$PORT/plaintext")
            [ "${VERBOSE:-0}" = 1 ] && echo "$out" >&2
            squall_stop
            wrk_line "w$w.r$r" "$out"
            rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
            p99=$(wrk_line x "$out" | awk '{ print $5 }')
            all_rps[$w]+="$rps "
            all_p99[$w]+="$p99 "
        done
    done
    for w in 1 2; do
        # shellcheck disable=SC2086 # the lists are words on purpose
        echo "workers = $w: median $(median ${all_rps[$w]}) req/s," \
            "median p99 $(median ${all_p99[$w]}) ms"
    done
}

echo "bench/reload.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
for p in $PARTS; do
    "part$p"
done
