#!/bin/sh
# Installs the Debian packages squall needs, and only those that are missing.
# A fresh machine has empty package lists, so apt-get update runs first (only then).
#
#   tools/deps.sh          what make, make run, make test and make bench need
#   tools/deps.sh fuzz     also clang with libFuzzer, for make fuzz
set -eu

missing=""
need_pc() { pkg-config --exists "$1" 2>/dev/null || missing="$missing $2"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }

need_cmd pkg-config pkg-config
need_cmd cc gcc
need_cmd make make
need_pc libevent libevent-dev
need_pc jansson libjansson-dev
need_pc check check
need_pc libpq libpq-dev
# dsn = embedded runs PostgreSQL's initdb and pg_ctl (framework/pgembed.c); the tests use psql.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_cmd initdb postgresql
need_cmd psql postgresql-client
need_cmd curl curl
need_cmd python3 python3
need_cmd wrk wrk
need_cmd strace strace
need_cmd prlimit util-linux
if [ "${1:-}" = fuzz ]; then
    need_cmd clang clang
    [ -n "$(find /usr/lib/llvm-*/lib/clang -name 'libclang_rt.fuzzer*' 2>/dev/null)" ] ||
        missing="$missing libclang-rt-dev"
fi

[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >/dev/null
else
    echo "deps: missing packages; run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
