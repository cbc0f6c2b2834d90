#!/usr/bin/env bash
# bench/db.sh - the PostgreSQL benchmark (issue 4): plugins/bench against Tornado + aiopg
# (../shared/bench/peers/tornado/db_app.py) on the same database with the same pool size,
# and /db against what pgbench reaches on that database (its own ceiling).
#
#   bench/db.sh            (from any directory; `make` first)
#
# 1. Starts build/squall with a temporary copy of plugins/bench/bench.conf (its own port,
#    pool_size POOL, embedded_dir in a temporary directory): squall itself runs initdb and
#    starts the cluster, and the plugin's init seeds world and fortune. Once GET /db answers,
#    every thread of squall is pinned to CPU 0 (taskset -a -p). The cluster was started
#    before that, so PostgreSQL is not pinned: it runs on both CPUs, competing with squall
#    (or Tornado) on CPU 0 and with wrk on the last CPU. PG_CPUS=LIST pins the postmaster
#    (and so the backends it forks later) to LIST instead.
# 2. Starts the Tornado + aiopg peer (tornado/db_app.py, what compare.sh's tornado-db runs)
#    pinned to CPU 0, pointed at the same cluster's socket with the same pool size, on a
#    free port of its own (compare.sh's fixed port 18090 may be taken on a shared machine),
#    then runs wrk against each in turn, as compare.sh does: ROUNDS rounds alternating
#    squall, Tornado, squall, ..., medians of each, the ratio squall/Tornado:
#        /db                 bar: squall >= 10x Tornado
#        /queries?queries=20 bar: squall >= 20x Tornado (the 20 SELECTs are one pipelined
#                            batch in squall, 20 sequential round trips in aiopg)
#    Only one of the two is under load at a time; the other sits idle on CPU 0.
# 3. pgbench (pinned to the last CPU, like wrk) in a database of its own in the same cluster,
#    with as many clients as the pool has connections: `pgbench -S -M prepared` (its
#    built-in select-only test), and the same with /db's own query on world (-f). Prints
#    squall's /db req/s as a fraction of each.
# 4. With CPU=1 (the default), one more wrk run per case with the CPU time each party used
#    (from /proc: utime / stime of squall, postgres, python3, wrk), to show what limits it.
# Then stops squall, which stops the cluster, and removes the temporary directory.
#
# Environment:
#   DURATION=5   seconds per wrk run (and per pgbench run)
#   ROUNDS=3     rounds per case
#   POOL=16      database connections of squall and of Tornado (db_app.py's default);
#                pgbench runs with as many clients
#   CONNS=64     wrk connections
#   PORT=18080   first port tried for squall
#   PG_CPUS=     pin PostgreSQL to these CPUs (taskset list); empty = not pinned
#   CPU=1        the CPU split runs (0: skip them)
#   SQUALL=path  the binary (default build/squall); PEERS_DIR=path (default ../shared/bench/peers:
#                where tornado/db_app.py is)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
POOL=${POOL:-16}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
PG_CPUS=${PG_CPUS:-}
CPU=${CPU:-1}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench/peers}
CONF=$ROOT/plugins/bench/bench.conf
LAST_CPU=$(( $(nproc) - 1 ))

. "$ROOT/bench/lib.sh"

for cmd in wrk curl taskset pgbench psql; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (make deps; pgbench and psql: postgresql-client)"
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
trap 'squall_stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- squall and its cluster ----

PORT=$(free_port "$PORT")
make_conf "$CONF" "$WORK/bench.conf" "$PORT"
sed -i -e "s|^embedded_dir *=.*|embedded_dir = $WORK/pg|" -e "s|^pool_size *=.*|pool_size = $POOL|" \
    "$WORK/bench.conf"
grep -q "^embedded_dir = $WORK/pg\$" "$WORK/bench.conf" || die "$CONF has no embedded_dir line"
grep -q "^pool_size = $POOL\$" "$WORK/bench.conf" || die "$CONF has no pool_size line"
BASE=http://127.0.0.1:$PORT
SQ_WAIT=60 squall_start "$PORT" "$WORK/bench.conf" "$WORK/squall.log" # initdb takes a while
for _ in $(seq 100); do # the seed: init's task, or the first request
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/db")" = 200 ] && break
    sleep 0.1
done
curl -s "$BASE/db" | grep -Eq '^\{"id":[0-9]+,"randomNumber":[0-9]+\}$' || die "GET /db does not answer as expected"
taskset -a -p -c 0 "$SQ_PID" >/dev/null
PG_USER=$(stat -c %U "$WORK/pg/data")
DSN="host=$WORK/pg port=5432 dbname=postgres user=$PG_USER"
PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")
[ -n "$PG_CPUS" ] && taskset -a -p -c "$PG_CPUS" "$PG_PID" >/dev/null
PGV=$(psql "$DSN" -Atc 'SHOW server_version')

echo "squall pid $SQ_PID on $BASE pinned to CPU 0 (taskset -a); PostgreSQL $PGV (postmaster $PG_PID)" \
     "${PG_CPUS:+pinned to CPUs $PG_CPUS}${PG_CPUS:-not pinned}; wrk and pgbench on CPU $LAST_CPU;" \
     "pool $POOL; wrk -c$CONNS; ${DURATION}s runs; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "DSN for the peers: $DSN"

# ---- The Tornado + aiopg peer, on the same cluster ----

TORNADO_PORT=$(free_port 18190)
(cd "$WORK" && DSN=$DSN exec taskset -c 0 /usr/bin/python3 "$PEERS_DIR/tornado/db_app.py" \
    --port="$TORNADO_PORT" --address=127.0.0.1 --pool="$POOL" >"$WORK/tornado.log" 2>&1) &
TORNADO_PID=$!
trap 'kill "$TORNADO_PID" 2>/dev/null || true; squall_stop; rm -rf "$WORK"' EXIT
PEER=http://127.0.0.1:$TORNADO_PORT
for _ in $(seq 100); do
    curl -s "$PEER/db" | grep -Eq '^\{"id": ?[0-9]+, ?"randomNumber": ?[0-9]+\}$' && break
    kill -0 "$TORNADO_PID" 2>/dev/null || { cat "$WORK/tornado.log" >&2; die "the Tornado peer exited"; }
    sleep 0.1
done
curl -s "$PEER/db" | grep -q randomNumber || { cat "$WORK/tornado.log" >&2; die "the Tornado peer does not answer $PEER/db"; }
echo "Tornado + aiopg (db_app.py) pid $TORNADO_PID on $PEER pinned to CPU 0, pool $POOL"

# ---- squall against Tornado: rounds alternate (squall, Tornado, squall, ...), medians ----

# wrk_run URL: one run on the last CPU; prints "req/s p99-ms", and fails on any error
wrk_run() {
    local out
    out=$(taskset -c "$LAST_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1") || die "wrk failed on $1"
    if echo "$out" | grep -Eq 'Non-2xx|Socket errors'; then
        echo "$out" >&2
        die "errors during the run on $1"
    fi
    echo "$out" | awk '
        /Requests\/sec/ { r = $2 }
        / 99%/ { v = $2
                 if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 }
                 else if (v ~ /ms$/) { sub(/ms/, "", v) }
                 else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }
                 p = v }
        END { print r + 0, p + 0 }'
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# compare_case PATH: ROUNDS alternating rounds; prints every run and the medians; leaves
# squall's median req/s in OURS and squall/Tornado in RATIO
compare_case() {
    local r res sq_r="" sq_p="" to_r="" to_p=""
    echo
    echo "== $1: wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS rounds (req/s, p99 ms)"
    for r in $(seq "$ROUNDS"); do
        res=$(wrk_run "$BASE$1"); sq_r+="${res% *} "; sq_p+="${res#* } "
        res=$(wrk_run "$PEER$1"); to_r+="${res% *} "; to_p+="${res#* } "
    done
    OURS=$(tr ' ' '\n' <<<"$sq_r" | grep . | median)
    local peer=$(tr ' ' '\n' <<<"$to_r" | grep . | median)
    RATIO=$(awk -v a="$OURS" -v b="$peer" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    printf 'squall   runs: %s\n         p99:  %s\n' "$sq_r" "$sq_p"
    printf 'tornado  runs: %s\n         p99:  %s\n' "$to_r" "$to_p"
    printf 'median   squall %.0f req/s (p99 %s ms), tornado %.0f req/s (p99 %s ms): %sx\n' \
        "$OURS" "$(tr ' ' '\n' <<<"$sq_p" | grep . | median)" "$peer" \
        "$(tr ' ' '\n' <<<"$to_p" | grep . | median)" "$RATIO"
}
compare_case /db
DB_RATIO=$RATIO DB_OURS=$OURS
compare_case "/queries?queries=20"
Q_RATIO=$RATIO

# ---- pgbench: the database's own ceiling ----

psql "$DSN" -qc 'CREATE DATABASE pgbench' >/dev/null
pgbench -q -i -s 1 "host=$WORK/pg port=5432 dbname=pgbench user=$PG_USER" >"$WORK/pgbench-init.log" 2>&1 ||
    { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
printf '\\set id random(1, 10000)\nSELECT id, randomnumber AS "randomNumber" FROM world WHERE id = :id;\n' \
    >"$WORK/world.sql"

# pgbench_tps ARGS...: one pgbench run on the last CPU; prints its tps
pgbench_tps() {
    local out
    out=$(taskset -c "$LAST_CPU" pgbench -n -M prepared -c "$POOL" -j 1 -T "$DURATION" "$@") ||
        die "pgbench $* failed"
    echo "$out" | awk '/^tps/ {printf "%.0f\n", $3; exit}'
}
echo
echo "== taskset -c $LAST_CPU pgbench -n -S -M prepared -c $POOL -j 1 -T $DURATION (database pgbench, scale 1)"
S_TPS=$(pgbench_tps -S -h "$WORK/pg" -p 5432 -U "$PG_USER" pgbench)
echo "pgbench -S             $S_TPS tps"
echo "== taskset -c $LAST_CPU pgbench -n -M prepared -c $POOL -j 1 -T $DURATION -f world.sql (database postgres: /db's query)"
W_TPS=$(pgbench_tps -f "$WORK/world.sql" -h "$WORK/pg" -p 5432 -U "$PG_USER" postgres)
echo "pgbench world.sql      $W_TPS tps"

# ---- Who uses the CPU ----

# cpu_split URL: one wrk run, then the CPU seconds each kind of process used during it
cpu_split() {
    local before after out
    snap() {
        local p s rest
        for p in /proc/[0-9]*; do
            s=$(cat "$p/stat" 2>/dev/null) || continue
            rest=${s#*) }
            set -- $rest
            echo "$(cat "$p/comm" 2>/dev/null) ${12} ${13}"
        done | awk '{u[$1] += $2; s[$1] += $3} END {for (k in u) print k, u[k], s[k]}' | sort
    }
    before=$(snap)
    out=$(taskset -c "$LAST_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$1") || die "wrk failed"
    after=$(snap)
    printf '%-32s %10.0f req/s  ' "${1#http://127.0.0.1:}" "$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    join <(echo "$before") <(echo "$after") | awk -v d="$DURATION" -v hz="$(getconf CLK_TCK)" '
        $1 ~ /^(squall|postgres|python3|wrk)$/ {
            u = ($4 - $2) / hz; s = ($5 - $3) / hz
            printf " %s %.0f%% (usr %.0f%% sys %.0f%%)", $1, 100 * (u + s) / d, 100 * u / d, 100 * s / d }
        END { print "" }'
}
if [ "$CPU" = 1 ]; then
    echo
    echo "== CPU per party during one wrk -t1 -c$CONNS -d${DURATION}s run each (% of one CPU; 100% = a whole CPU)"
    cpu_split "$BASE/db"
    cpu_split "$PEER/db"
    cpu_split "$BASE/queries?queries=20"
    cpu_split "$PEER/queries?queries=20"
fi

# ---- Summary ----

echo
awk -v db="$DB_RATIO" -v q="$Q_RATIO" -v ours="$DB_OURS" -v s="$S_TPS" -v w="$W_TPS" 'BEGIN {
    printf "/db                  squall/tornado %6.2fx   bar >= 10x: %s\n", db, (db >= 10 ? "met" : "NOT met")
    printf "/queries?queries=20  squall/tornado %6.2fx   bar >= 20x: %s\n", q, (q >= 20 ? "met" : "NOT met")
    printf "/db                  %.0f req/s = %.2f of pgbench -S (%.0f tps), %.2f of pgbench world.sql (%.0f tps)\n",
           ours, ours / s, s, ours / w, w
}'
