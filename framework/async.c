/*
 * async.c - the loop's coroutines (see async.h), sleeping, deadlines, tasks, operations.
 *
 * A coroutine is resumed only from the loop's own context: by coro_resume directly (a new
 * request's handler starts at once and, when it never waits, ends before conn.c goes on),
 * or by the run queue, which coro_wake fills. A coroutine yields by switching back to the
 * loop's context, so coroutines never nest and the stack of the loop is always the one
 * that runs libevent's callbacks.
 */
#include "async.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "plugin.h"
#include "request.h"
#include "threadpool.h"
#include "timer.h"

#define LOOP_SPARE_CORO 256 /* finished coroutines (with their stacks) kept for reuse */
#define LOOP_RUN_BUDGET 256 /* resumptions per loop turn before I/O gets a look in */

__thread struct loop *loop_current;

/* ---- Wait lists ---- */

void wait_list_push(struct wait_list *l, struct coro_wait *w)
{
    w->list = l;
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

void wait_list_remove(struct coro_wait *w)
{
    struct wait_list *l = w->list;

    if (!l)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->list = NULL;
    w->prev = w->next = NULL;
}

struct coro_wait *wait_list_pop(struct wait_list *l)
{
    struct coro_wait *w = l->head;

    if (w)
        wait_list_remove(w);
    return w;
}

/* ---- The loop ---- */

uint64_t loop_now_us(struct loop *l)
{
    struct timeval tv;

    /* Fresh, not the loop turn's cached time: a long turn would make deadlines and timers
       that start late in it fire early. One vDSO clock read. */
    event_base_update_cache_time(l->base);
    event_base_gettimeofday_cached(l->base, &tv);
    return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

struct timeval us_tv(uint64_t us)
{
    return (struct timeval){(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
}

/* Runs the queued coroutines, and those they wake, in rounds. After LOOP_RUN_BUDGET
   resumptions the rest wait for the next turn of the loop (a zero timeout runs after the
   sockets and timers have been looked at), so coroutines that keep waking each other
   cannot starve I/O or timers, yet a wake-up chain does not cost a turn per hop. */
static void on_run(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval next_turn = {0, 0};
    struct loop *l = arg;
    unsigned budget = LOOP_RUN_BUDGET;

    l->running = true;
    while (l->ready && budget > 0) {
        struct coro *batch = l->ready;
        l->ready = l->ready_tail = NULL;
        while (batch) {
            struct coro *co = batch;
            batch = co->next;
            co->queued = false;
            coro_resume(co);
            budget -= budget > 0;
        }
    }
    l->running = false;
    if (l->ready)
        event_add(&l->run_ev, &next_turn);
}

struct loop *loop_new(struct event_base *base, size_t stack_size, unsigned threads)
{
    struct loop *l = xcalloc(1, sizeof(*l));

    l->base = base;
    l->threads = threads ? threads : 1;
    coro_stack_pool_init(&l->stacks, stack_size, LOOP_SPARE_CORO);
    event_assign(&l->run_ev, base, -1, 0, on_run, l);
    return l;
}

size_t loop_drain(struct loop *l, uint64_t timeout_ms)
{
    struct timeval tick = {0, 10000};
    uint64_t end;

    end = loop_now_us(l) + timeout_ms * 1000;
    for (struct coro *co = l->all; co; co = co->all_next)
        coro_cancel(co);
    while (l->live > 0 && loop_now_us(l) < end) {
        event_base_loopexit(l->base, &tick);
        event_base_dispatch(l->base);
    }
    return l->live;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    timer_free_all(l);
    threadpool_free(l->pool);
    event_del(&l->run_ev);
    while (l->spare) {
        struct coro *co = l->spare;
        l->spare = co->next;
        coro_stack_put(&l->stacks, co->stack);
        event_del(&co->timer);
        free(co);
    }
    coro_stack_pool_deinit(&l->stacks);
    if (loop_current == l)
        loop_current = NULL;
    free(l);
}

/* ---- Coroutines ---- */

struct coro *coro_current(void)
{
    return loop_current ? loop_current->current : NULL;
}

void coro_at_end(struct coro *co, struct coro_cleanup *c)
{
    c->next = co->cleanups;
    co->cleanups = c;
}

void coro_at_end_remove(struct coro *co, struct coro_cleanup *c)
{
    for (struct coro_cleanup **p = &co->cleanups; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            return;
        }
}

struct arena *coro_arena(void)
{
    struct coro *co = coro_current();
    return co ? co->arena : NULL;
}

static void on_coro_timer(evutil_socket_t fd, short what, void *arg);

/* Runs one fn after another: a finished coroutine parks here, at the end of its loop, and
   a reused one goes on from there with its next fn, so reuse costs no new context. After
   each fn, its unfinished operations are cancelled and waited for (they use its arena). */
static void coro_main(void *arg)
{
    struct coro *co = arg;
    struct loop *l = co->loop;

    for (;;) {
        co->result = co->fn(co->arg);
        if (co->result != 0)
            snprintf(co->error, sizeof(co->error), "%s", sq_errmsg());
        co->nocancel = true;
        co->deadline = 0;
        for (struct coro *c = co->children; c; c = c->sibling_next)
            coro_cancel(c);
        while (co->nchildren > 0) {
            struct coro_wait w = {0};
            co->waits_children = true;
            coro_park(&w, -1, 0);
            co->waits_children = false;
        }
        while (co->cleanups) { /* may await: nocancel, no deadline */
            struct coro_cleanup *c = co->cleanups;
            co->cleanups = c->next;
            c->fn(c);
        }
        co->done = true;
        coro_switch(&co->ctx, &l->main_ctx, NULL);
    }
}

struct coro *coro_new(struct loop *l, sq_task_fn fn, void *arg, struct arena *arena)
{
    struct coro *co = l->spare;

    if (co) { /* parked in coro_main: resuming it runs the new fn */
        l->spare = co->next;
        l->nspare--;
    } else {
        co = xmalloc(sizeof(*co));
        co->stack = coro_stack_get(&l->stacks);
        if (!co->stack) {
            free(co);
            return NULL;
        }
        co->loop = l;
        evtimer_assign(&co->timer, l->base, on_coro_timer, co);
        coro_ctx_make(&co->ctx, co->stack, coro_main, co);
    }
    co->fn = fn;
    co->arg = arg;
    co->result = 0;
    co->on_done = NULL;
    co->plugin = plugin_current;
    plugin_ref(co->plugin); /* the code it runs stays loaded until it ends */
    co->label = "task";
    co->parent = co->children = co->sibling_prev = co->sibling_next = NULL;
    co->nchildren = 0;
    co->cleanups = NULL;
    co->on_park = NULL;
    co->wait = NULL;
    co->deadline = 0;
    co->queued = co->done = co->cancelled = co->nocancel = co->waits_children = false;
    co->unavailable = false;
    co->error[0] = '\0';
    co->arena = arena;
    if (!arena) {
        arena_init(&co->own_arena, co->arena_buf, sizeof(co->arena_buf));
        co->arena = &co->own_arena;
    }
    LIST_PUSH(l->all, co, all_prev, all_next);
    l->live++;
    return co;
}

/* A finished coroutine: unlinked, its parent told, its on_done run, then kept for reuse. */
static void coro_finish(struct coro *co)
{
    struct loop *l = co->loop;

    LIST_UNLINK(l->all, co, all_prev, all_next);
    l->live--;
    if (co->arena == &co->own_arena)
        arena_deinit(&co->own_arena);
    if (co->parent) {
        struct coro *p = co->parent;
        LIST_UNLINK(p->children, co, sibling_prev, sibling_next);
        p->nchildren--;
        if (p->waits_children && p->wait)
            coro_wake(p->wait, 0);
    }
    if (co->on_done)
        co->on_done(co, co->done_data);
    plugin_unref(co->plugin);
    if (l->nspare < LOOP_SPARE_CORO) {
        co->next = l->spare;
        l->spare = co;
        l->nspare++;
    } else {
        coro_stack_put(&l->stacks, co->stack);
        free(co);
    }
}

void coro_set_plugin(struct coro *co, struct sq_plugin_ctx *p)
{
    plugin_ref(p);
    plugin_unref(co->plugin);
    co->plugin = p;
}

void coro_resume(struct coro *co)
{
    struct loop *l = co->loop;
    struct sq_plugin_ctx *saved = plugin_current;

    l->current = co;
    plugin_current = co->plugin;
    coro_switch(&l->main_ctx, &co->ctx, co->stack);
    l->current = NULL;
    plugin_current = saved;
    if (co->done)
        coro_finish(co);
}

void coro_ready(struct coro *co)
{
    struct loop *l = co->loop;

    if (co->queued)
        return;
    co->queued = true;
    co->next = NULL;
    if (l->ready_tail)
        l->ready_tail->next = co;
    else
        l->ready = co;
    l->ready_tail = co;
    if (!l->running) /* else on_run schedules the next turn itself */
        event_active(&l->run_ev, 0, 0);
}

void coro_wake(struct coro_wait *w, int result)
{
    struct coro *co = w->co;

    wait_list_remove(w);
    if (!co || co->wait != w)
        return; /* already woken: the first result stands */
    w->result = result;
    co->wait = NULL;
    event_del(&co->timer);
    coro_ready(co);
}

static void on_coro_timer(evutil_socket_t fd, short what, void *arg)
{
    struct coro *co = arg;

    if (co->wait)
        coro_wake(co->wait, co->timer_result);
}

void coro_cancel(struct coro *co)
{
    if (co->cancelled || co->done)
        return;
    co->cancelled = true;
    for (struct coro *c = co->children; c; c = c->sibling_next)
        coro_cancel(c);
    if (co->wait && !co->nocancel)
        coro_wake(co->wait, SQ_ECANCELED);
}

/* Arms the park's timer for whichever comes first, its own timeout or the deadline. */
static void park_timer(struct coro *co, uint64_t now, int64_t timeout_ms, int on_timeout)
{
    uint64_t at = 0;

    if (timeout_ms >= 0) {
        at = now + (uint64_t)timeout_ms * 1000;
        co->timer_result = on_timeout;
    }
    if (co->deadline && (!at || co->deadline < at)) {
        at = co->deadline;
        co->timer_result = SQ_ETIMEDOUT;
    }
    if (at) {
        struct timeval tv = us_tv(at - now);
        evtimer_add(&co->timer, &tv);
    }
}

/* Says why a park failed, once the coroutine runs again (others may have set sq_errmsg
   meanwhile). */
static int park_result(int rc)
{
    if (rc == SQ_ETIMEDOUT)
        errmsg_set("timed out");
    else if (rc == SQ_ECANCELED)
        errmsg_set("cancelled");
    return rc;
}

int coro_await_check(void)
{
    struct coro *co = coro_current();

    if (!co)
        return SQ_EINVAL;
    if (co->cancelled && !co->nocancel)
        return SQ_ECANCELED;
    if (co->deadline && loop_now_us(co->loop) >= co->deadline)
        return SQ_ETIMEDOUT;
    return 0;
}

int coro_park(struct coro_wait *w, int64_t timeout_ms, int on_timeout)
{
    struct coro *co = coro_current();
    int early = coro_await_check();

    if (early) {
        wait_list_remove(w);
        return early == SQ_EINVAL ? early : park_result(early);
    }
    if (co->on_park) { /* once, before the first wait */
        void (*fn)(struct coro *) = co->on_park;
        co->on_park = NULL;
        fn(co);
    }
    uint64_t now = loop_now_us(co->loop);
    w->co = co;
    w->result = 0;
    co->wait = w;
    park_timer(co, now, timeout_ms, on_timeout);
    coro_switch(&co->ctx, &co->loop->main_ctx, NULL);
    return park_result(w->result);
}

/* ---- SDK: sleeping, deadlines, memory ---- */

int sq_sleep(uint64_t ms)
{
    struct coro_wait w = {0};
    int rc = coro_park(&w, (int64_t)ms, 0);

    if (rc < 0)
        errmsg_set("sq_sleep: %s", rc == SQ_ETIMEDOUT ? "timed out" : "cancelled");
    return rc;
}

int sq_set_deadline(uint64_t ms)
{
    struct coro *co = coro_current();

    if (!co)
        return SQ_EINVAL;
    co->deadline = ms ? loop_now_us(co->loop) + ms * 1000 : 0;
    return 0;
}

int sq_with_timeout(uint64_t ms, sq_task_fn fn, void *arg)
{
    struct coro *co = coro_current();

    if (!co)
        return SQ_EINVAL;
    uint64_t saved = co->deadline, at = loop_now_us(co->loop) + ms * 1000;
    if (!saved || at < saved)
        co->deadline = at;
    int rc = fn(arg);
    co->deadline = saved;
    return rc;
}

void *sq_coro_alloc(size_t n)
{
    struct arena *a = coro_arena();
    void *p = a ? arena_alloc(a, n) : NULL;

    if (!p)
        errmsg_set(a ? "out of memory" : "sq_coro_alloc outside a coroutine");
    return p;
}

/* ---- SDK: tasks ---- */

static void task_done(struct coro *co, void *data)
{
    if (co->result != 0)
        log_msg(SQ_LOG_ERROR, co->plugin ? co->plugin->name : NULL, "task failed (%d): %s",
                co->result, co->error);
}

int sq_spawn(sq_task_fn fn, void *arg)
{
    struct coro *co = loop_current ? coro_new(loop_current, fn, arg, NULL) : NULL;

    if (!co) {
        errmsg_set(loop_current ? "out of memory" : "sq_spawn outside a loop");
        return loop_current ? SQ_ENOMEM : SQ_EINVAL;
    }
    co->on_done = task_done;
    coro_ready(co);
    return 0;
}

/* ---- SDK: operations ---- */

struct sq_op {
    struct coro *co; /* NULL once finished */
    struct coro *parent;
    sq_op_fn fn;
    void *arg;
    void *result;
    int status;
    bool done;
    char *error;
};

static int op_main(void *arg)
{
    sq_op *op = arg;

    if (coro_current()->cancelled) { /* cancelled before it ever ran */
        errmsg_set("cancelled before it started");
        return SQ_ECANCELED;
    }
    return op->fn(op->arg, &op->result);
}

static void op_done(struct coro *co, void *data)
{
    sq_op *op = data;

    op->co = NULL;
    op->done = true;
    op->status = co->result;
    if (co->result != 0)
        op->error = arena_strndup(co->arena, co->error, strlen(co->error));
}

sq_op *sq_op_start(sq_op_fn fn, void *arg)
{
    struct coro *parent = coro_current();
    sq_op *op = parent ? arena_alloc(parent->arena, sizeof(*op)) : NULL;

    if (!op) {
        errmsg_set(parent ? "out of memory" : "sq_op_start outside a coroutine");
        return NULL;
    }
    memset(op, 0, sizeof(*op));
    op->fn = fn;
    op->arg = arg;
    op->parent = parent;
    op->co = coro_new(parent->loop, op_main, op, parent->arena);
    if (!op->co) {
        errmsg_set("out of memory");
        return NULL;
    }
    op->co->parent = parent;
    LIST_PUSH(parent->children, op->co, sibling_prev, sibling_next);
    op->co->deadline = parent->deadline;
    op->co->label = parent->label;
    op->co->on_done = op_done;
    op->co->done_data = op;
    parent->nchildren++;
    coro_ready(op->co);
    return op;
}

/* Parks until one of the running coroutine's children ends (coro_finish wakes it). */
static int wait_for_child(struct coro *co)
{
    struct coro_wait w = {0};

    co->waits_children = true;
    int rc = coro_park(&w, -1, 0);
    co->waits_children = false;
    return rc;
}

static size_t ops_pending(sq_op **ops, size_t n)
{
    size_t pending = 0;

    for (size_t i = 0; i < n; i++)
        pending += !ops[i]->done;
    return pending;
}

int sq_await_all(sq_op **ops, size_t n)
{
    struct coro *co = coro_current();

    if (!co)
        return SQ_EINVAL;
    while (ops_pending(ops, n) > 0) {
        int rc = wait_for_child(co);
        if (rc < 0) {
            for (size_t i = 0; i < n; i++)
                sq_op_cancel(ops[i]);
            errmsg_set("%s while awaiting operations",
                       rc == SQ_ETIMEDOUT ? "timed out" : "cancelled");
            return rc;
        }
    }
    return 0;
}

int sq_await_any(sq_op **ops, size_t n)
{
    struct coro *co = coro_current();

    if (!co || n == 0)
        return SQ_EINVAL;
    for (;;) {
        for (size_t i = 0; i < n; i++)
            if (ops[i]->done)
                return (int)i;
        int rc = wait_for_child(co);
        if (rc < 0)
            return rc;
    }
}

int sq_op_done(const sq_op *op)
{
    return op->done;
}

int sq_op_status(const sq_op *op)
{
    return op->status;
}

void *sq_op_result(const sq_op *op)
{
    return op->result;
}

const char *sq_op_error(const sq_op *op)
{
    return op->error;
}

void sq_op_cancel(sq_op *op)
{
    if (op->co)
        coro_cancel(op->co);
}

/* ---- SDK: a loop of one's own ---- */

static void run_sync_done(struct coro *co, void *data)
{
    *(int *)data = co->result;
}

int sq_run_sync(sq_task_fn fn, void *arg)
{
    if (loop_current) {
        errmsg_set("sq_run_sync: this thread already runs a loop");
        return SQ_EINVAL;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    struct loop *l = loop_new(base, 64 * 1024, cpus > 0 ? (unsigned)cpus : 1);
    int result = SQ_ENOMEM;

    loop_current = l;
    struct coro *co = coro_new(l, fn, arg, NULL);
    if (co) {
        co->on_done = run_sync_done;
        co->done_data = &result;
        coro_ready(co);
        /* Until the coroutine and every task it spawned have ended. With nothing left that
           could wake them (a deadlock), they are cancelled; if even that does not end them,
           they are abandoned. */
        bool cancelled = false;
        while (l->live > 0) {
            if (event_base_loop(base, EVLOOP_ONCE) == 1 && !l->ready) {
                if (cancelled)
                    break;
                log_error("sq_run_sync: %zu coroutines wait for nothing: cancelling them", l->live);
                for (struct coro *c = l->all; c; c = c->all_next)
                    coro_cancel(c);
                cancelled = true;
            }
        }
    }
    loop_free(l);
    event_base_free(base);
    loop_current = NULL;
    return result;
}
