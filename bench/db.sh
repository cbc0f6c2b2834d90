#!/usr/bin/env bash
# bench/db.sh - the PostgreSQL benchmark (issue 4): plugins/bench against Tornado + aiopg
# (../shared/bench/peers/tornado/db_app.py) on the same database with the same pool size,
# and both against what pgbench reaches on that database (the database's own ceiling).
#
#   bench/db.sh            (from any directory; `make` first)
#
# 1. Starts build/squall with a temporary copy of plugins/bench/bench.conf (its own port; its
#    [database] with pool_size POOL and embedded_dir in a temporary directory): squall runs initdb and
#    starts the cluster, and the plugin's init seeds world and fortune. Once GET /db answers,
#    every thread of squall is pinned to CPU 0 (taskset -a -p). The cluster was started
#    before that, so PostgreSQL is not pinned: it runs on both CPUs, competing with the
#    server under test on CPU 0 and with wrk on the last CPU. PG_CPUS=LIST pins it (the
#    postmaster and every process it has forked) to LIST instead.
# 2. Starts the Tornado + aiopg peer (tornado/db_app.py, what compare.sh's tornado-db runs)
#    pinned to CPU 0, on the same cluster's socket with the same pool size, on a free port of
#    its own (compare.sh's fixed port 18090 may be taken on a shared machine). Then, as
#    compare.sh does, ROUNDS rounds of wrk (pinned to the last CPU) alternating squall,
#    Tornado, squall, ... and the medians of each:
#        /db                  bar: squall >= 10x Tornado
#        /queries?queries=20  bar: squall >= 20x Tornado (squall sends the 20 SELECTs as one
#                             pipelined batch, aiopg as 20 sequential round trips)
#    Only one of the two is under load at a time; the other sits idle on CPU 0. Every run
#    shows the CPU each party used (% of one CPU, from /proc: the server under test, the
#    cluster's processes, wrk) and "other": what the rest of the machine took meanwhile. A
#    round in which "other" passed NOISE in either run is run again after a pause, up to
#    RETRIES times, and the quietest try is kept (and said to be noisy if it still was):
#    on a shared machine a compiler in another session otherwise decides the result.
# 3. pgbench, pinned to the last CPU like wrk, with as many clients as the pool has
#    connections, on the same cluster: `pgbench -S -M prepared` (its select-only test, in a
#    database of its own), the same with /db's own query on world, and with
#    /queries?queries=20's twenty SELECTs in one pipeline (\startpipeline..\endpipeline: one
#    round trip and one sync). squall's and Tornado's req/s as a fraction of these, and the
#    ratio a server costing no CPU at all would reach against this Tornado.
# Then stops Tornado and squall, which stops the cluster, and removes the temporary directory.
#
# Environment:
#   DURATION=5   seconds per wrk or pgbench run
#   ROUNDS=3     rounds per case
#   POOL=16      database connections of squall and of Tornado (db_app.py's default);
#                pgbench runs with as many clients
#   CONNS=64     wrk connections
#   PORT=18080   first port tried for squall (Tornado: the first free one from 18190)
#   PG_CPUS=     pin PostgreSQL to these CPUs (a taskset list); empty = not pinned
#   NOISE=25     % of a CPU that others may use during a run before its round is redone
#   RETRIES=4    tries after the first, per round, at most
#   SQUALL=path  the binary (default build/squall); PEERS_DIR=path (default
#                ../shared/bench/peers: where tornado/db_app.py is)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
POOL=${POOL:-16}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
PG_CPUS=${PG_CPUS:-}
NOISE=${NOISE:-25}
RETRIES=${RETRIES:-4}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench/peers}
CONF=$ROOT/plugins/bench/bench.conf
LAST_CPU=$(($(nproc) - 1))
HZ=$(getconf CLK_TCK)
TORNADO_PID=

. "$ROOT/bench/lib.sh"

for cmd in wrk curl taskset pgbench psql; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (make deps; pgbench, psql: postgresql-client)"
done
[ -f "$PEERS_DIR/tornado/db_app.py" ] || die "no $PEERS_DIR/tornado/db_app.py (set PEERS_DIR)"
[ -f "$ROOT/build/plugins/bench.so" ] || die "build/plugins/bench.so is not built: run make"
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -gt 0 ] || die "DURATION must be a whole number of seconds"
[ "$LAST_CPU" -gt 0 ] || echo "db.sh: warning: one CPU only, everything shares it" >&2
if ! /usr/bin/python3 -c 'import aiopg, psycopg2, tornado' 2>/dev/null; then
    [ "$(id -u)" = 0 ] || die "the Tornado peer needs: apt-get install python3-tornado python3-aiopg python3-psycopg2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-tornado python3-aiopg \
        python3-psycopg2 python3-async-timeout >/dev/null
fi

WORK=$(mktemp -d /tmp/squall-db.XXXXXX)
chmod 0755 "$WORK" # run as root, the cluster runs as postgres, which must reach $WORK/pg
cleanup() {
    if [ -n "$TORNADO_PID" ]; then
        kill "$TORNADO_PID" 2>/dev/null || true
        wait "$TORNADO_PID" 2>/dev/null || true
    fi
    squall_stop
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- squall and its cluster ----

PORT=$(free_port "$PORT")
make_conf "$CONF" "$WORK/shipped.conf" "$PORT"
# bench.conf's [server] and [plugin] sections; its [database] replaced by the run's own
awk '/^[ \t]*\[/ { skip = ($0 ~ /^[ \t]*\[database\]/) } !skip' "$WORK/shipped.conf" >"$WORK/bench.conf"
printf '\n[database]\ndsn = embedded\nembedded_dir = %s\npool_size = %s\n' "$WORK/pg" "$POOL" \
    >>"$WORK/bench.conf"
BASE=http://127.0.0.1:$PORT
SQ_WAIT=60 squall_start "$PORT" "$WORK/bench.conf" "$WORK/squall.log" # initdb takes a while
for _ in $(seq 100); do # the seed: init's task, or the first request
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/db")" = 200 ] && break
    sleep 0.1
done
curl -s "$BASE/db" | grep -Eq '^\{"id":[0-9]+,"randomNumber":[0-9]+\}$' ||
    die "GET /db does not answer as expected"
taskset -a -p -c 0 "$SQ_PID" >/dev/null
PG_USER=$(stat -c %U "$WORK/pg/data")
DSN="host=$WORK/pg port=5432 dbname=postgres user=$PG_USER"
PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")
if [ -n "$PG_CPUS" ]; then # the backends forked later inherit the postmaster's affinity
    for p in "$PG_PID" $(pgrep -P "$PG_PID"); do taskset -a -p -c "$PG_CPUS" "$p" >/dev/null; done
fi
PGV=$(psql "$DSN" -Atc 'SHOW server_version')

# ---- The Tornado + aiopg peer, on the same cluster ----

TORNADO_PORT=$(free_port 18190)
(cd "$WORK" && DSN=$DSN exec taskset -c 0 /usr/bin/python3 "$PEERS_DIR/tornado/db_app.py" \
    --port="$TORNADO_PORT" --address=127.0.0.1 --pool="$POOL" >"$WORK/tornado.log" 2>&1) &
TORNADO_PID=$!
PEER=http://127.0.0.1:$TORNADO_PORT
for _ in $(seq 100); do
    curl -s "$PEER/db" | grep -q randomNumber && break
    kill -0 "$TORNADO_PID" 2>/dev/null || { cat "$WORK/tornado.log" >&2; die "the Tornado peer exited"; }
    sleep 0.1
done
curl -s "$PEER/db" | grep -q randomNumber ||
    { cat "$WORK/tornado.log" >&2; die "the Tornado peer does not answer $PEER/db"; }

echo "squall pid $SQ_PID on $BASE, Tornado + aiopg pid $TORNADO_PID on $PEER: both pinned to CPU 0," \
     "pool $POOL each; PostgreSQL $PGV (postmaster $PG_PID)" \
     "$([ -n "$PG_CPUS" ] && echo "pinned to CPUs $PG_CPUS" || echo "not pinned"); wrk and pgbench on CPU $LAST_CPU;" \
     "wrk -t1 -c$CONNS; ${DURATION}s runs; $(date -u '+%Y-%m-%d %H:%M UTC');" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "DSN: $DSN"

# ---- Measuring ----

busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# measure SERVER_PID CMD...: runs CMD (wrk or pgbench) on the last CPU; prints its output,
# then a line "CPU server% pg% client% other%" (% of one CPU over the run's wall time;
# client = CMD)
measure() {
    local spid=$1 b0 b1 s0 s1 g0 g1 t0 t1 out c tf=$WORK/times.$BASHPID
    shift
    b0=$(busy_ticks); s0=$(pids_ticks $spid); g0=$(pg_ticks "$PG_PID"); t0=$(date +%s%N)
    out=$(taskset -c "$LAST_CPU" "$@" 2>&1) || { echo "$out" >&2; die "$1 failed"; }
    t1=$(date +%s%N)
    sleep 0.3 # for the postmaster to reap the backends of CMD's connections (their time
              # moves to its cutime / cstime then; an exited, unreaped one is counted nowhere)
    times >"$tf" # this shell's children, i.e. CMD: its user and system time on the 2nd line
    c=$(sed -n 2p "$tf" | awk '{t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t}')
    b1=$(busy_ticks); s1=$(pids_ticks $spid); g1=$(pg_ticks "$PG_PID")
    echo "$out"
    awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) -v g=$((g1 - g0)) -v c="$c" -v d=$(((t1 - t0) / 1000000)) -v hz="$HZ" \
        'BEGIN { d /= 1000; o = ((b - s - g) / hz - c) / d * 100; if (o < 0) o = 0
                 printf "CPU %.0f %.0f %.0f %.0f\n", s / hz / d * 100, g / hz / d * 100, c / d * 100, o }'
}

# wrk_run URL SERVER_PID: one wrk run; prints "req/s p99-ms server% pg% wrk% other%", and
# wrk's socket errors after them (a server too slow for wrk's 2 s timeout). A non-2xx reply
# ends the script: the numbers would not be worth anything.
wrk_run() {
    local out
    out=$(measure "$2" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1")
    if echo "$out" | grep -q 'Non-2xx'; then
        echo "$out" >&2
        die "non-2xx replies during the run on $1"
    fi
    echo "$out" | awk '
        /Requests\/sec/ { r = $2 }
        / 99%/ { v = $2
                 if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 }
                 else if (v ~ /ms$/) { sub(/ms/, "", v) }
                 else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }
                 p = v }
        /^CPU / { cpu = $2 " " $3 " " $4 " " $5 }
        /Socket errors/ { e = $0; sub(/^ +/, "", e); err = " [" e "]" }
        END { print r + 0, p + 0, cpu err }'
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col_median() { awk -v c="$1" '{print $c}' | median; } # col_median N < lines

# compare_case PATH: the alternating rounds; leaves the medians in OURS and THEIRS
compare_case() {
    local r try order name res noise best sq="" to=""
    echo
    echo "== GET $1: wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS rounds"
    printf '%-8s %5s %10s %8s   %s\n' server round req/s "p99 ms" "CPU %: server pg wrk other"
    for r in $(seq "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="squall tornado"; else order="tornado squall"; fi
        best=
        for try in $(seq 0 "$RETRIES"); do
            declare -A RES=()
            noise=0
            for name in $order; do
                if [ "$name" = squall ]; then res=$(wrk_run "$BASE$1" "$SQ_PID")
                else res=$(wrk_run "$PEER$1" "$TORNADO_PID"); fi
                RES[$name]=$res
                noise=$(echo "$res" | awk -v n="$noise" '{print ($6 > n) ? int($6) : n}')
            done
            if [ -z "$best" ] || [ "$noise" -lt "$best" ]; then
                best=$noise
                declare -A KEEP=([squall]=${RES[squall]} [tornado]=${RES[tornado]})
            fi
            [ "$noise" -le "$NOISE" ] && break
            echo "  (round $r, try $((try + 1)): others used $noise% of a CPU during a run:" \
                 "squall ${RES[squall]%% *}, tornado ${RES[tornado]%% *} req/s)"
            [ "$try" -lt "$RETRIES" ] && sleep "$DURATION"
        done
        [ "$best" -le "$NOISE" ] ||
            echo "  (round $r kept although others used $best% of a CPU: the quietest of $((RETRIES + 1)) tries)"
        declare -A RES=([squall]=${KEEP[squall]} [tornado]=${KEEP[tornado]})
        for name in squall tornado; do
            echo "${RES[$name]}" | awk -v n="$name" -v r="$r" \
                '{e = $0; sub(/^[^[]*/, "", e)
                  printf "%-8s %5s %10.0f %8.2f   %s %s %s %s %s\n", n, r, $1, $2, $3, $4, $5, $6, e}'
        done
        sq+="${RES[squall]}"$'\n'; to+="${RES[tornado]}"$'\n'
    done
    OURS=$(echo "$sq" | grep . | col_median 1)
    THEIRS=$(echo "$to" | grep . | col_median 1)
    printf 'median   squall %.0f req/s (p99 %s ms), tornado %.0f req/s (p99 %s ms): squall/tornado %.2fx\n' \
        "$OURS" "$(echo "$sq" | grep . | col_median 2)" "$THEIRS" "$(echo "$to" | grep . | col_median 2)" \
        "$(awk -v a="$OURS" -v b="$THEIRS" 'BEGIN {print (b > 0 ? a / b : 0)}')"
}

compare_case /db
DB_OURS=$OURS DB_THEIRS=$THEIRS
compare_case "/queries?queries=20"
Q_OURS=$OURS Q_THEIRS=$THEIRS

# ---- pgbench: the database's own ceiling ----

psql "$DSN" -qc 'CREATE DATABASE pgbench' >/dev/null
pgbench -q -i -s 1 -h "$WORK/pg" -p 5432 -U "$PG_USER" pgbench >"$WORK/pgbench-init.log" 2>&1 ||
    { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
printf '\\set id random(1, 10000)\nSELECT id, randomnumber AS "randomNumber" FROM world WHERE id = :id;\n' \
    >"$WORK/world.sql"
{
    printf '\\startpipeline\n'
    for i in $(seq 20); do
        printf '\\set id%d random(1, 10000)\n' "$i"
        printf 'SELECT id, randomnumber AS "randomNumber" FROM world WHERE id = :id%d;\n' "$i"
    done
    printf '\\endpipeline\n'
} >"$WORK/world20.sql"

# pgbench_run NAME DATABASE ARGS...: one run; prints a line and leaves its tps in TPS
pgbench_run() {
    local name=$1 db=$2 out
    shift 2
    out=$(measure "" pgbench -n -M prepared -c "$POOL" -j 1 -T "$DURATION" -h "$WORK/pg" -p 5432 \
          -U "$PG_USER" "$@" "$db")
    TPS=$(echo "$out" | awk '/^tps/ {printf "%.0f\n", $3; exit}')
    printf '%-44s %8s tps   CPU %%: pg %s pgbench %s other %s\n' "$name" "$TPS" \
        $(echo "$out" | awk '/^CPU / {print $3, $4, $5}')
}
echo
echo "== taskset -c $LAST_CPU pgbench -n -M prepared -c $POOL -j 1 -T $DURATION ..."
pgbench_run "-S (select-only, database pgbench, scale 1)" pgbench -S
S_TPS=$TPS
pgbench_run "-f world.sql (/db's query)" postgres -f "$WORK/world.sql"
W_TPS=$TPS
pgbench_run "-f world20.sql (20 SELECTs, one pipeline)" postgres -f "$WORK/world20.sql"
W20_TPS=$TPS

# ---- Summary ----

echo
awk -v dbo="$DB_OURS" -v dbt="$DB_THEIRS" -v qo="$Q_OURS" -v qt="$Q_THEIRS" -v s="$S_TPS" \
    -v w="$W_TPS" -v w20="$W20_TPS" 'BEGIN {
    db = dbo / dbt; q = qo / qt
    printf "/db                  squall %.0f / tornado %.0f req/s = %5.2fx   bar >= 10x: %s\n", dbo, dbt, db, (db >= 10 ? "met" : "NOT met")
    printf "/queries?queries=20  squall %.0f / tornado %.0f req/s = %5.2fx   bar >= 20x: %s\n", qo, qt, q, (q >= 20 ? "met" : "NOT met")
    printf "/db                  squall = %.2f of pgbench -S (%.0f tps), %.2f of pgbench world.sql (%.0f tps)\n", dbo / s, s, dbo / w, w
    printf "/queries?queries=20  squall = %.2f of pgbench world20.sql (%.0f tps)\n", qo / w20, w20
    printf "ceiling: the database alone (pgbench) over Tornado: /db %.1fx (-S) %.1fx (world.sql), /queries?queries=20 %.1fx (world20.sql)\n", s / dbt, w / dbt, w20 / qt
}'
