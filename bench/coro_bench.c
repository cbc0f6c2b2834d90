/*
 * coro_bench.c - microbenchmarks of squall's coroutines (framework/coro.c, async.c).
 *
 *   bench/coro_bench.sh          builds the asm and ucontext variants and runs both
 *   coro_bench [SCALE] [REPEATS] SCALE multiplies the iteration counts (default 1),
 *                                REPEATS is the number of timed runs per case (default 7)
 *
 * Cases (each prints the minimum and the median ns per operation over REPEATS runs,
 * CLOCK_MONOTONIC around the whole loop, after one untimed warm-up run):
 *
 *   switch        two contexts ping-ponging through coro_switch directly (the loop's
 *                 stack and one pooled coroutine stack); ns per single switch
 *   create+finish coro_new + coro_resume of a function that returns at once, from the
 *                 loop's own context (loop_new on an event_base): the path of a request
 *                 whose handler never awaits. Includes two switches, the coroutine's
 *                 bookkeeping and its on_done; the coroutine and its stack are reused
 *                 from the loop's spare list
 *   spawn xK      sq_spawn of a function that returns at once, in batches of K, then
 *                 one event_base_loop(EVLOOP_NONBLOCK) runs the batch; per task. K = 100
 *                 stays within the loop's 256 spare coroutines; K = 1000 does not: the
 *                 loop keeps 256 finished coroutines and 256 more idle stacks, so 744 of
 *                 each batch get a new struct (malloc) and 488 of those a new stack too
 *                 (mmap, mprotect, page faults at the first switch), which go again at
 *                 the end (free, munmap)
 *   spawn+loop    one sq_spawn then one event_base_loop(EVLOOP_NONBLOCK): adds a
 *                 libevent dispatch (epoll_wait with a zero timeout) per task
 *   park/wake     two coroutines waking each other (coro_wake, then coro_park): one
 *                 round = a wake, a park, a switch out and a switch in through the run
 *                 queue; per park/wake. A coroutine woken while the run queue runs waits
 *                 for the next loop turn (since commit c4ad347/d0fc29d: no starvation of
 *                 I/O and timers), so each round here includes one event_base_loop turn
 *                 with an epoll_wait(0) system call, and each park a clock read
 *   op+await      inside a coroutine: sq_op_start of a function that returns at once,
 *                 then sq_await_all on it (one child coroutine per operation)
 *   run_sync      sq_run_sync of a function that returns at once: a new event_base,
 *                 loop and stack each call; microseconds, not nanoseconds
 *
 * Built with -DCORO_UCONTEXT (framework/*.c compiled the same way) it measures the
 * swapcontext() fallback instead of the x86-64 assembly.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "async.h"
#include "coro.h"
#include "squall.h"

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static unsigned repeats = 7;
static double scale = 1.0;

/* Runs fn(n) repeats times (after one warm-up) and prints min and median of its result. */
static void report(const char *name, const char *unit, double (*fn)(long n), long n)
{
    double r[64];
    long iters = (long)((double)n * scale);

    if (iters < 1)
        iters = 1;
    fn(iters / 10 + 1); /* warm-up: stacks mapped, caches and branch predictors primed */
    for (unsigned i = 0; i < repeats; i++)
        r[i] = fn(iters);
    qsort(r, repeats, sizeof(r[0]), cmp_double);
    printf("%-14s %10.2f %10.2f  %-3s  (%ld iterations x %u runs)\n", name, r[0],
           r[repeats / 2], unit, iters, repeats);
    fflush(stdout);
}

/* ---- switch: raw coro_switch ping-pong ---- */

static struct coro_ctx sw_main, sw_co;
static struct coro_stack *sw_stack;

static void sw_entry(void *arg)
{
    for (;;)
        coro_switch(&sw_co, &sw_main, NULL);
}

static double bench_switch(long n)
{
    struct coro_stack_pool pool;

    coro_stack_pool_init(&pool, 64 * 1024, 4);
    sw_stack = coro_stack_get(&pool);
    if (!sw_stack)
        abort();
    coro_ctx_make(&sw_co, sw_stack, sw_entry, NULL);
    coro_switch(&sw_main, &sw_co, sw_stack); /* the first entry: not timed */

    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        coro_switch(&sw_main, &sw_co, sw_stack);
    double t1 = now_ns();

    /* sw_co is parked in its loop for good: its stack is simply unmapped. */
    coro_stack_put(&pool, sw_stack);
    coro_stack_pool_deinit(&pool);
    return (t1 - t0) / (2.0 * (double)n);
}

/* ---- the runtime ---- */

static struct event_base *base;
static struct loop *loop;

static int ret0(void *arg)
{
    return 0;
}

static double bench_create_finish(long n)
{
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        struct coro *co = coro_new(loop, ret0, NULL, NULL);
        coro_resume(co);
    }
    return (now_ns() - t0) / (double)n;
}

static long spawn_batch;

static double bench_spawn_batch(long n)
{
    const long batch = spawn_batch;
    long done = 0;

    double t0 = now_ns();
    while (done < n) {
        long k = n - done < batch ? n - done : batch;
        for (long i = 0; i < k; i++)
            if (sq_spawn(ret0, NULL) != 0)
                abort();
        event_base_loop(base, EVLOOP_NONBLOCK);
        done += k;
    }
    double t1 = now_ns();
    if (loop->live != 0)
        abort();
    return (t1 - t0) / (double)n;
}

static double bench_spawn_loop(long n)
{
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (sq_spawn(ret0, NULL) != 0)
            abort();
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    double t1 = now_ns();
    if (loop->live != 0)
        abort();
    return (t1 - t0) / (double)n;
}

/* park/wake: A and B take turns; each wakes the other, then parks. */
struct pinger {
    struct coro_wait w;
    struct pinger *other;
    long rounds;
    bool parked;
};

static int ping_main(void *arg)
{
    struct pinger *p = arg;

    for (long i = 0; i < p->rounds; i++) {
        if (p->other->parked) {
            p->other->parked = false;
            coro_wake(&p->other->w, 0);
        }
        p->w = (struct coro_wait){0};
        p->parked = true;
        coro_park(&p->w, -1, 0);
    }
    if (p->other->parked) { /* let the other one finish too */
        p->other->parked = false;
        coro_wake(&p->other->w, 0);
    }
    return 0;
}

static double bench_park_wake(long n)
{
    struct pinger a = {.rounds = n / 2}, b = {.rounds = n / 2};

    a.other = &b;
    b.other = &a;
    double t0 = now_ns();
    if (sq_spawn(ping_main, &a) != 0 || sq_spawn(ping_main, &b) != 0)
        abort();
    while (loop->live > 0)
        event_base_loop(base, EVLOOP_NONBLOCK);
    double t1 = now_ns();
    return (t1 - t0) / (double)(a.rounds + b.rounds);
}

static int ret0_op(void *arg, void **result)
{
    return 0;
}

struct op_args {
    long n;
    double ns;
};

static int op_main(void *arg)
{
    struct op_args *a = arg;

    double t0 = now_ns();
    for (long i = 0; i < a->n; i++) {
        sq_op *op = sq_op_start(ret0_op, NULL);
        if (!op || sq_await_all(&op, 1) != 0)
            abort();
    }
    a->ns = now_ns() - t0;
    return 0;
}

static double bench_op_await(long n)
{
    struct op_args a = {.n = n};

    if (sq_spawn(op_main, &a) != 0)
        abort();
    while (loop->live > 0)
        event_base_loop(base, EVLOOP_NONBLOCK);
    return a.ns / (double)n;
}

static double bench_run_sync(long n)
{
    struct loop *saved = loop_current;

    loop_current = NULL; /* sq_run_sync refuses to nest in a thread that runs a loop */
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (sq_run_sync(ret0, NULL) != 0)
            abort();
    double t1 = now_ns();
    loop_current = saved;
    return (t1 - t0) / (double)n / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        scale = atof(argv[1]);
    if (argc > 2)
        repeats = (unsigned)atoi(argv[2]);
    if (scale <= 0 || repeats < 1 || repeats > 64) {
        fprintf(stderr, "usage: %s [SCALE>0] [REPEATS 1..64]\n", argv[0]);
        return 2;
    }
#ifdef CORO_UCONTEXT
    const char *variant = "ucontext (swapcontext)";
#else
    const char *variant = "x86-64 asm";
#endif
    printf("coro_bench: %s context switch; min and median of %u runs\n", variant, repeats);
    printf("%-14s %10s %10s\n", "case", "min", "median");

    report("switch", "ns", bench_switch, 10 * 1000 * 1000);

    base = event_base_new();
    loop = loop_new(base, 64 * 1024, 1);
    loop_current = loop;
    report("create+finish", "ns", bench_create_finish, 5 * 1000 * 1000);
    spawn_batch = 100;
    report("spawn x100", "ns", bench_spawn_batch, 2 * 1000 * 1000);
    spawn_batch = 1000;
    report("spawn x1000", "ns", bench_spawn_batch, 200 * 1000);
    report("spawn+loop", "ns", bench_spawn_loop, 1000 * 1000);
    report("park/wake", "ns", bench_park_wake, 2 * 1000 * 1000);
    report("op+await", "ns", bench_op_await, 200 * 1000);
    report("run_sync", "us", bench_run_sync, 20 * 1000);
    if (loop_drain(loop, 1000) != 0)
        abort();
    loop_free(loop);
    event_base_free(base);
    return 0;
}
