/*
 * async.h - the loop's coroutines: running, waiting, waking, deadlines, cancellation.
 *
 * One loop per thread (loop_current). Code runs either in the loop's own context (libevent
 * callbacks) or in a coroutine. A coroutine waits by parking on a struct coro_wait; whoever
 * it waits for wakes it with a result, and it runs again from the loop's run queue. Each
 * park also ends when the coroutine's deadline passes (SQ_ETIMEDOUT), when it is cancelled
 * (SQ_ECANCELED), or when the wait's own timeout passes.
 *
 * Building a primitive (lock, queue, ...): keep a struct wait_list of parked waiters;
 * to wait, wait_list_push a coro_wait on it and coro_park; to let one go, wait_list_pop and
 * coro_wake it. coro_park takes the wait off the list itself when it ends otherwise.
 */
#ifndef SQUALL_ASYNC_H
#define SQUALL_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "arena.h"
#include "coro.h"
#include "squall.h"

struct coro;
struct pg_pool;
struct sq_plugin_ctx;
struct mw_cache;

/* One pending await. Lives on the waiting coroutine's stack. */
struct coro_wait {
    struct coro *co;
    struct coro_wait *prev, *next;
    struct wait_list *list; /* the list it is queued on, or NULL */
    int result;
};

/* FIFO of parked waiters. Zero-initialised is empty. */
struct wait_list {
    struct coro_wait *head, *tail;
};

void wait_list_push(struct wait_list *l, struct coro_wait *w);
struct coro_wait *wait_list_pop(struct wait_list *l); /* oldest, or NULL */
void wait_list_remove(struct coro_wait *w);           /* no-op when not queued */

struct loop {
    struct event_base *base;
    struct coro *current;     /* the running coroutine; NULL in the loop's own context */
    struct coro_ctx main_ctx; /* the loop's context while a coroutine runs */
    struct coro *ready, *ready_tail; /* run queue */
    struct event run_ev;
    bool running;             /* on_run is going through a batch */
    struct coro *all;         /* every live coroutine (for shutdown), doubly linked */
    size_t live;
    struct coro *spare;       /* finished coroutines kept for reuse */
    size_t nspare;
    struct coro_stack_pool stacks;
    struct sq_timer *timers;  /* pending sq_call_later / sq_add_callback (timer.c) */
    struct sq_periodic *periodics; /* running sq_every (timer.c) */
    struct threadpool *pool;  /* sq_run_in_thread, started on first use */
    struct mw_cache *cache;   /* the response cache and sq_cache_* store (middleware) */
    unsigned threads;
    struct pg_pool *pg;       /* the PostgreSQL pool (pg.c); NULL without [database] */
};

/* The loop of this thread, or NULL. */
extern __thread struct loop *loop_current;

/* A loop on base. stack_size: usable bytes per coroutine stack; threads: the size of the
   sq_run_in_thread pool. Aborts on out-of-memory. */
struct loop *loop_new(struct event_base *base, size_t stack_size, unsigned threads);

/* Cancels every live coroutine and runs the loop until they have all ended, for at most
   timeout_ms. Returns the number still alive (0 on success). */
size_t loop_drain(struct loop *l, uint64_t timeout_ms);

/* Frees the loop (timers, thread pool, stacks). Call after loop_drain returned 0. */
void loop_free(struct loop *l);

/* Microseconds on the loop's clock (libevent's monotonic one), read afresh. */
uint64_t loop_now_us(struct loop *l);

/* us microseconds as a struct timeval, for libevent. */
struct timeval us_tv(uint64_t us);

/* ---- Coroutines ---- */

typedef void (*coro_done_fn)(struct coro *co, void *data);

/* Something a service must undo when a coroutine ends (coro_at_end), e.g. roll back the
   transaction it left open. Embedded in the service's own state. */
struct coro_cleanup {
    void (*fn)(struct coro_cleanup *c);
    struct coro_cleanup *next;
};

struct coro {
    struct coro_ctx ctx;
    struct coro_stack *stack;
    struct loop *loop;
    struct coro *next;             /* run queue or spare list */
    struct coro *all_prev, *all_next;
    sq_task_fn fn;
    void *arg;
    int result;                    /* fn's return value */
    coro_done_fn on_done;          /* runs in the loop's context once it has ended */
    void *done_data;
    struct arena *arena;           /* where its allocations go (own_arena or borrowed) */
    struct sq_plugin_ctx *plugin;  /* whose code it runs, for logs */
    const char *label;             /* what it runs ("GET /x", "task"), for logs */
    struct coro *parent;           /* an op's parent, which outlives it */
    struct coro *children;         /* its ops still running, linked by sibling_* */
    struct coro *sibling_prev, *sibling_next;
    size_t nchildren;
    struct coro_wait *wait;        /* the pending park, or NULL */
    struct event timer;            /* the pending park's timeout or deadline */
    uint64_t deadline;             /* us on the loop clock; 0 = none */
    int timer_result;              /* what the armed timer wakes it with */
    bool queued, done, cancelled, nocancel, waits_children;
    bool unavailable;              /* a service it used was down (pool timeout, outage):
                                      a handler that then fails to reply gets 503 */
    struct coro_cleanup *cleanups; /* coro_at_end, newest first */
    void (*on_park)(struct coro *co); /* runs once, as it first parks (conn.c's timeout) */
    char error[160];               /* sq_errmsg() when fn failed */
    struct arena own_arena;
    char arena_buf[512];
};

/*
 * Creates a coroutine that will run fn(arg), with its allocations in arena (NULL: its
 * own). It does not run until coro_resume or coro_ready. NULL when out of memory (stacks
 * are mmap()ed).
 */
struct coro *coro_new(struct loop *l, sq_task_fn fn, void *arg, struct arena *arena);

/* Switches into co now, from the loop's own context; returns when it parks or ends (then
   its on_done has run and co is gone). */
void coro_resume(struct coro *co);

/* Queues co on the run queue (from anywhere on the loop's thread). */
void coro_ready(struct coro *co);

/* Cancels co: its pending and future parks return SQ_ECANCELED (except those with
   nocancel set), and so do its children's. */
void coro_cancel(struct coro *co);

/* The running coroutine, or NULL in the loop's own context. */
struct coro *coro_current(void);

/*
 * Parks the running coroutine on w until coro_wake(w), or its timeout_ms (< 0: none) passes
 * (result on_timeout), or the deadline passes (SQ_ETIMEDOUT), or it is cancelled
 * (SQ_ECANCELED) unless co->nocancel. w may already be queued on a wait list; it is taken
 * off it when the park ends otherwise than by coro_wake. Returns the result; SQ_EINVAL
 * outside a coroutine.
 */
int coro_park(struct coro_wait *w, int64_t timeout_ms, int on_timeout);

/* What an await would fail with at once: SQ_EINVAL outside a coroutine, SQ_ECANCELED
   once cancelled (unless nocancel), SQ_ETIMEDOUT past the deadline; else 0. */
int coro_await_check(void);

/* Ends w's park with result: its coroutine runs again from the run queue. */
void coro_wake(struct coro_wait *w, int result);

/*
 * Runs c->fn(c) in co once its fn has returned and its operations have ended, before its
 * on_done: in the coroutine itself, with nocancel set and no deadline, so it may await (a
 * ROLLBACK). Cleanups run newest first. c must stay valid until it has run or has been
 * taken back with coro_at_end_remove.
 */
void coro_at_end(struct coro *co, struct coro_cleanup *c);

/* Takes c back (no-op when it is not registered on co). */
void coro_at_end_remove(struct coro *co, struct coro_cleanup *c);

/* Makes co run plugin p's code (a handler's coroutine), moving its reference. */
void coro_set_plugin(struct coro *co, struct sq_plugin_ctx *p);

/* Allocations of the running coroutine (sq_coro_alloc); NULL outside one. */
struct arena *coro_arena(void);

#endif
