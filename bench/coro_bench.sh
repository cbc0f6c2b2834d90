#!/usr/bin/env bash
# bench/coro_bench.sh - builds bench/coro_bench.c twice and runs both:
#
#   asm       against build/libsquall.a (the x86-64 assembly switch, as make builds it)
#   ucontext  with framework/*.c (not main.c) compiled again with -DCORO_UCONTEXT
#             (swapcontext; struct coro_ctx changes size, so the whole runtime is rebuilt)
#
#   bench/coro_bench.sh [SCALE] [REPEATS]     (arguments go to coro_bench, see its header)
#
# Environment: CPU=0 (the CPU both run pinned to, taskset -c), OUT=dir (keep the binaries
# there; default a temporary directory removed on exit), CC=cc.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CC=${CC:-cc}
CPU=${CPU:-0}
cd "$ROOT"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
[ -f build/libsquall.a ] || die "build/libsquall.a is missing: run make"
command -v taskset >/dev/null || die "taskset is missing (util-linux)"

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d /tmp/coro-bench.XXXXXX)
    trap 'rm -rf "$OUT"' EXIT
fi

PKG_CFLAGS=$(pkg-config --cflags libevent jansson)
PKG_LIBS=$(pkg-config --libs libevent jansson)
FW_SRC=
for f in framework/*.c; do [ "$f" = framework/main.c ] || FW_SRC+=" $f"; done

# shellcheck disable=SC2086
$CC -std=gnu11 -O2 -g -D_GNU_SOURCE $PKG_CFLAGS -Iframework -Isdk \
    bench/coro_bench.c build/libsquall.a $PKG_LIBS -ldl -lpthread -o "$OUT/coro_bench_asm"
# shellcheck disable=SC2086
$CC -std=gnu11 -O2 -g -D_GNU_SOURCE -DCORO_UCONTEXT $PKG_CFLAGS -Iframework -Isdk \
    bench/coro_bench.c $FW_SRC $PKG_LIBS -ldl -lpthread -o "$OUT/coro_bench_ucontext"

echo "coro_bench on CPU $CPU, $(date -u '+%Y-%m-%d %H:%M UTC'), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
taskset -c "$CPU" "$OUT/coro_bench_asm" "$@"
echo
taskset -c "$CPU" "$OUT/coro_bench_ucontext" "$@"
