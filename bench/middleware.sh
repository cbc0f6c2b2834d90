#!/usr/bin/env bash
# bench/middleware.sh - what the built-in middleware costs, measured A/B in one run with
# bench/ab_throughput.sh (same build, each configuration against the bare one, both servers
# pinned to CPU 0):
#
#   limits     GET /plaintext bare (old) vs. the same route behind the rate limiter (a limit
#              it never reaches, so every request is counted and gets its RateLimit-*
#              headers) and the timeout (new); the cache is off for this route.
#   cachehit   GET /plaintext bare (old) vs. GET /plaintext served from the response cache
#              (new; the reply is the same but for its Age and X-Cache headers).
#
# Environment: as ab_throughput.sh (ROUNDS, DURATION, NOISE, RESTART, ...).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/squall-mwbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

[ -x "$ROOT/build/squall" ] || { echo "middleware.sh: run make first" >&2; exit 1; }
for side in bare limits cached; do
    mkdir -p "$WORK/$side/build/plugins"
    cp "$ROOT/build/squall" "$WORK/$side/build/"
    cp "$ROOT/build/plugins/hello.so" "$WORK/$side/build/plugins/"
    printf '[server]\nlisten = 127.0.0.1:8080\naccess_log = off\n[plugin hello]\npath = build/plugins/hello.so\n' \
        >"$WORK/$side/plugins.conf"
done
printf '[route GET /plaintext]\nratelimit = 4000000000/1s\ntimeout = 5s\ncache = off\n' \
    >>"$WORK/limits/plugins.conf"
printf '[route GET /plaintext]\ncache = 1h\n' >>"$WORK/cached/plugins.conf"
echo "== limits: bare /plaintext (old) vs. behind ratelimit + timeout (new)"
CASES=plaintext "$ROOT/bench/ab_throughput.sh" "$WORK/bare" "$WORK/limits"
echo "== cachehit: bare /plaintext (old) vs. served from the response cache (new)"
CASES=plaintext "$ROOT/bench/ab_throughput.sh" "$WORK/bare" "$WORK/cached"
