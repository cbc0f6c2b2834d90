#!/usr/bin/env bash
# bench/middleware.sh - what the built-in middleware costs, measured A/B in one run with
# bench/ab_throughput.sh (same build, two configurations, both servers pinned to CPU 0):
#
#   plaintext  GET /plaintext bare (old) vs. the same route behind the rate limiter (a limit
#              it never reaches, so every request is counted and gets its RateLimit-*
#              headers) and the timeout (new); the cache is off for this route.
#   cachehit   GET /plaintext bare (old) vs. GET /json served from the response cache (new).
#
# Environment: as ab_throughput.sh (ROUNDS, DURATION, NOISE, RESTART, ...).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/squall-mwbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

[ -x "$ROOT/build/squall" ] || { echo "middleware.sh: run make first" >&2; exit 1; }
for side in bare mw; do # copies: a rebuild during the run changes neither side
    mkdir -p "$WORK/$side/build/plugins"
    cp "$ROOT/build/squall" "$WORK/$side/build/"
    cp "$ROOT/build/plugins/hello.so" "$WORK/$side/build/plugins/"
done
cat >"$WORK/bare/plugins.conf" <<CONF
[server]
listen = 127.0.0.1:8080
access_log = off
[plugin hello]
path = build/plugins/hello.so
CONF
cat >"$WORK/mw/plugins.conf" <<CONF
[server]
listen = 127.0.0.1:8080
access_log = off
[plugin hello]
path = build/plugins/hello.so
[route GET /plaintext]
ratelimit = 4000000000/1s
timeout = 5s
cache = off
[route GET /json]
cache = 1h
CONF
CASES=${CASES:-plaintext cachehit} "$ROOT/bench/ab_throughput.sh" "$WORK/bare" "$WORK/mw"
