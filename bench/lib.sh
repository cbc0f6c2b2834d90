# bench/lib.sh - shared by the bench scripts (sourced, not run).
#
# Expects ROOT (the repo root) and WORK (a scratch directory) to be set. Provides:
#   die MSG...                    print "<script>: MSG" and exit 1
#   free_port FIRST               prints the first port in FIRST..FIRST+20 nobody listens on
#   make_conf SRC DST PORT        DST = SRC with one listen line 127.0.0.1:PORT, every
#                                 relative path (plugin path, access_log) made absolute, and
#                                 no [database] section (hello needs none; an embedded
#                                 cluster would only compete for the CPUs)
#   squall_start PORT CONF LOG [PREFIX...]   starts PREFIX... build/squall -c CONF in the
#                                 background (SQ_PID), waits up to SQ_WAIT (10) seconds for
#                                 GET /plaintext to answer 200, fails clearly otherwise
#   squall_stop                   SIGTERM, wait (up to SQ_STOP_WAIT s, default 10), SIGKILL
#   pids_ticks PID...             utime + stime (clock ticks) of the processes still alive
#   pg_ticks PID                  a PostgreSQL cluster's CPU (ticks): its postmaster PID's own
#                                 and its reaped children's (backends that ended), and the
#                                 live children's

SQUALL=${SQUALL:-$ROOT/build/squall}
SQ_PID=

pids_ticks() {
    local p t=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

pg_ticks() {
    echo $(($(awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat") + $(pids_ticks $(pgrep -P "$1"))))
}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p
    for p in $(seq "$1" $(($1 + 20))); do
        port_busy "$p" || { echo "$p"; return 0; }
    done
    die "no free port in $1..$(($1 + 20))"
}

make_conf() {
    local src=$1 dst=$2 port=$3 dir
    [ -f "$src" ] || die "no configuration $src"
    dir=$(cd "$(dirname "$src")" && pwd)
    awk -v port="$port" -v dir="$dir" '
        function abs(v) { return (v ~ /^\// || v == "off" || v == "stdout") ? v : dir "/" v }
        /^[ \t]*\[/ { skip = ($0 ~ /^[ \t]*\[database\]/) }
        skip { next }
        /^[ \t]*listen[ \t]*=/ { if (!done) print "listen = 127.0.0.1:" port; done = 1; next }
        /^[ \t]*(path|access_log)[ \t]*=/ {
            key = $0; sub(/[ \t]*=.*/, "", key); gsub(/[ \t]/, "", key)
            v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*;.*$/, "", v); sub(/[ \t]+$/, "", v)
            print key " = " abs(v); next
        }
        { print }
    ' "$src" >"$dst"
    grep -q "^listen = 127.0.0.1:$port\$" "$dst" || die "$src has no listen line"
}

squall_start() {
    local port=$1 conf=$2 log=$3 code i rc tries=$(( ${SQ_WAIT:-10} * 10 ))
    shift 3
    [ -x "$SQUALL" ] || die "$SQUALL is not built: run make"
    "$@" "$SQUALL" -c "$conf" >"$log" 2>&1 &
    SQ_PID=$!
    for i in $(seq "$tries"); do
        if ! kill -0 "$SQ_PID" 2>/dev/null; then
            wait "$SQ_PID" 2>/dev/null && rc=0 || rc=$?
            SQ_PID=
            cat "$log" >&2
            die "squall exited (status $rc) before answering on port $port"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/plaintext" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    cat "$log" >&2
    die "squall does not answer http://127.0.0.1:$port/plaintext with 200 after ${SQ_WAIT:-10} s (got '$code')"
}

squall_stop() {
    local i
    [ -n "$SQ_PID" ] || return 0
    if kill -0 "$SQ_PID" 2>/dev/null; then
        kill -TERM "$SQ_PID" 2>/dev/null || true
        for i in $(seq $(( ${SQ_STOP_WAIT:-10} * 10 ))); do
            kill -0 "$SQ_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SQ_PID" 2>/dev/null || true
    fi
    wait "$SQ_PID" 2>/dev/null || true
    SQ_PID=
}
