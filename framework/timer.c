/*
 * timer.c - callbacks on the loop (see timer.h and sdk/squall.h).
 *
 * Every handle is on its loop's list, so that nothing outlives the loop; each records the
 * plugin that started it, for stopping a retiring instance's (hot reload).
 */
#include "timer.h"

#include <stdlib.h>

#include "async.h"
#include "list.h"
#include "log.h"
#include "plugin.h"
#include "request.h"

struct sq_timer {
    struct event ev;
    struct loop *loop;
    struct sq_timer *prev, *next;
    sq_callback_fn fn;
    void *arg;
    struct sq_plugin_ctx *plugin;
};

struct sq_periodic {
    struct event ev;
    struct loop *loop;
    struct sq_periodic *prev, *next;
    sq_task_fn fn;
    void *arg;
    struct sq_plugin_ctx *plugin;
    uint64_t ms;
    double jitter;
    uint64_t next_at; /* us on the loop clock of the next tick */
    struct coro *run; /* the run in progress, or NULL */
    bool stopped;     /* stopped while a run was in progress: freed when it ends */
};

/* ---- One-shot ---- */

static void timer_free(struct sq_timer *t)
{
    event_del(&t->ev);
    LIST_UNLINK(t->loop->timers, t, prev, next);
    plugin_unref(t->plugin);
    free(t);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sq_timer *t = arg;
    struct sq_plugin_ctx *saved = plugin_current;
    sq_callback_fn fn = t->fn;
    void *fn_arg = t->arg;

    plugin_current = t->plugin;
    timer_free(t); /* first: the callback may schedule again, or cancel nothing */
    fn(fn_arg);
    plugin_current = saved;
}

sq_timer *sq_call_later(uint64_t ms, sq_callback_fn fn, void *arg)
{
    struct loop *l = loop_current;

    if (!l || !fn) {
        errmsg_set("sq_call_later: %s", l ? "no callback" : "no loop on this thread");
        return NULL;
    }
    struct sq_timer *t = xcalloc(1, sizeof(*t));
    t->loop = l;
    t->fn = fn;
    t->arg = arg;
    t->plugin = plugin_current;
    plugin_ref(t->plugin);
    evtimer_assign(&t->ev, l->base, on_timer, t);
    event_base_update_cache_time(l->base); /* the timer counts from now, not the turn's start */
    struct timeval tv = us_tv(ms * 1000);
    evtimer_add(&t->ev, &tv);
    LIST_PUSH(l->timers, t, prev, next);
    return t;
}

int sq_add_callback(sq_callback_fn fn, void *arg)
{
    return sq_call_later(0, fn, arg) ? 0 : SQ_EINVAL;
}

void sq_timer_cancel(sq_timer *t)
{
    if (t)
        timer_free(t);
}

/* ---- Periodic ---- */

static void periodic_free(struct sq_periodic *p)
{
    event_del(&p->ev);
    LIST_UNLINK(p->loop->periodics, p, prev, next);
    plugin_unref(p->plugin);
    free(p);
}

/* The next interval in us: ms, stretched or shrunk by up to jitter/2. */
static uint64_t periodic_interval(const struct sq_periodic *p)
{
    double r = (double)rand() / RAND_MAX - 0.5;
    double us = (double)p->ms * 1000.0 * (1.0 + p->jitter * r);
    return us < 1000 ? 1000 : (uint64_t)us;
}

/* Schedules the next tick on the original grid, skipping the ticks already missed. */
static void periodic_schedule(struct sq_periodic *p)
{
    uint64_t now = loop_now_us(p->loop);

    do
        p->next_at += periodic_interval(p);
    while (p->next_at <= now);
    struct timeval tv = us_tv(p->next_at - now);
    evtimer_add(&p->ev, &tv);
}

static void periodic_run_done(struct coro *co, void *data)
{
    struct sq_periodic *p = data;

    if (co->result != 0)
        log_msg(SQ_LOG_ERROR, p->plugin ? p->plugin->name : NULL,
                "periodic callback failed (%d): %s", co->result, co->error);
    p->run = NULL;
    if (p->stopped)
        periodic_free(p);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sq_periodic *p = arg;

    periodic_schedule(p);
    if (p->run)
        return; /* the previous run is still going: this tick is skipped */
    struct sq_plugin_ctx *saved = plugin_current;
    plugin_current = p->plugin;
    p->run = coro_new(p->loop, p->fn, p->arg, NULL);
    plugin_current = saved;
    if (!p->run)
        return;
    p->run->label = "periodic callback";
    p->run->on_done = periodic_run_done;
    p->run->done_data = p;
    coro_resume(p->run);
}

sq_periodic *sq_every(uint64_t ms, double jitter, sq_task_fn fn, void *arg)
{
    struct loop *l = loop_current;

    if (!l || !fn || ms == 0 || jitter < 0 || jitter > 1) {
        errmsg_set("sq_every: %s", l ? "bad arguments" : "no loop on this thread");
        return NULL;
    }
    if (plugin_current && plugin_current->retired) { /* its periodics were stopped already */
        errmsg_set("sq_every: the plugin instance is being replaced");
        return NULL;
    }
    struct sq_periodic *p = xcalloc(1, sizeof(*p));
    p->loop = l;
    p->fn = fn;
    p->arg = arg;
    p->ms = ms;
    p->jitter = jitter;
    p->plugin = plugin_current;
    plugin_ref(p->plugin);
    p->next_at = loop_now_us(l);
    evtimer_assign(&p->ev, l->base, on_tick, p);
    LIST_PUSH(l->periodics, p, prev, next);
    periodic_schedule(p);
    return p;
}

void sq_periodic_stop(sq_periodic *p)
{
    if (!p || p->stopped)
        return;
    if (p->run) {
        event_del(&p->ev);
        p->stopped = true;
    } else {
        periodic_free(p);
    }
}

void timer_stop_plugin(struct loop *l, struct sq_plugin_ctx *plugin)
{
    for (struct sq_periodic *p = l->periodics, *next; p; p = next) {
        next = p->next;
        if (p->plugin == plugin)
            sq_periodic_stop(p);
    }
}

void timer_free_all(struct loop *l)
{
    while (l->timers)
        timer_free(l->timers);
    while (l->periodics) /* runs have ended: loop_drain came first */
        periodic_free(l->periodics);
}
