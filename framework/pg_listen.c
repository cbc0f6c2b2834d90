/*
 * pg_listen.c - LISTEN/NOTIFY: sq_pg_listen and the connection behind it (see
 * pg_private.h and squall.h).
 *
 * One connection per pool, outside pool_size, driven by libevent callbacks only (no
 * coroutine: nothing awaits it). Whenever the set of channels changes, and after every
 * (re)connect, it sends "UNLISTEN *; LISTEN a; LISTEN b; ..." as one simple query, so one
 * transaction: no notification falls between the two. A lost connection is reopened with
 * backoff (50 ms doubling to 2 s); notifications sent meanwhile are lost, as they would be
 * for any client. Subscribers are called on the loop, with plugin_current set to their
 * plugin; a plugin's subscriptions end when it retires (pg_listen_stop_plugin), and the
 * connection closes when none is left.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "pg_private.h"
#include "plugin.h"
#include "request.h"

#define PG_CHANNEL_MAX 63 /* NAMEDATALEN - 1 */

static void listener_connect(struct pg_pool *p);

/* Closes the LISTEN connection (subscriptions stay). */
static void listener_close(struct pg_listener *ls)
{
    if (ls->conn)
        pg_conn_destroy(ls->conn);
    ls->conn = NULL;
    ls->ready = ls->busy = false;
    event_del(&ls->retry_ev);
}

static void on_listener_retry(evutil_socket_t fd, short what, void *arg)
{
    listener_connect(arg);
}

void pg_listen_init(struct pg_pool *p)
{
    evtimer_assign(&p->listener.retry_ev, p->loop->base, on_listener_retry, p);
}

void pg_listen_free(struct pg_pool *p)
{
    listener_close(&p->listener);
    while (p->listener.subs) {
        struct pg_sub *s = p->listener.subs;
        p->listener.subs = s->next;
        free(s->channel);
        free(s);
    }
}

/* The LISTEN connection failed or was lost: try again after a backoff. */
static void listener_lost(struct pg_pool *p, const char *why)
{
    struct pg_listener *ls = &p->listener;
    struct timeval tv;
    char msg[200];

    pg_one_line(msg, sizeof(msg), why);
    if (!ls->warned)
        log_warn("database: LISTEN connection down: %s; reconnecting", msg);
    ls->warned = true;
    listener_close(ls);
    ls->backoff_ms = ls->backoff_ms ? ls->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
    if (ls->backoff_ms > PG_BACKOFF_MAX_MS)
        ls->backoff_ms = PG_BACKOFF_MAX_MS;
    tv = us_tv(ls->backoff_ms * 1000);
    evtimer_add(&ls->retry_ev, &tv);
}

/* Watches the LISTEN connection's socket: for reading, and for writing while libpq still
   has bytes to send. */
static void listener_arm(struct pg_pool *p, bool write);

/* Sends UNLISTEN * and a LISTEN per channel when the channels changed and nothing is in
   flight (one transaction: no notification falls between). */
static void listener_sync(struct pg_pool *p)
{
    struct pg_listener *ls = &p->listener;
    size_t cap = 16, n;

    if (!ls->ready || ls->busy || !ls->dirty)
        return;
    for (struct pg_sub *s = ls->subs; s; s = s->next)
        cap += 2 * strlen(s->channel) + 16;
    char *sql = xmalloc(cap);
    n = (size_t)snprintf(sql, cap, "UNLISTEN *;");
    for (struct pg_sub *s = ls->subs; s; s = s->next) {
        char *id = PQescapeIdentifier(ls->conn->pg, s->channel, strlen(s->channel));
        if (id)
            n += (size_t)snprintf(sql + n, cap - n, "LISTEN %s;", id);
        PQfreemem(id);
    }
    ls->dirty = false;
    ls->busy = true;
    int ok = PQsendQuery(ls->conn->pg, sql);
    free(sql);
    if (!ok) {
        listener_lost(p, PQerrorMessage(ls->conn->pg));
        return;
    }
    int f = PQflush(ls->conn->pg);
    if (f < 0)
        listener_lost(p, PQerrorMessage(ls->conn->pg));
    else
        listener_arm(p, f == 1);
}

/* Calls every subscriber of n's channel. */
static void listener_dispatch(struct pg_listener *ls, const PGnotify *n)
{
    struct sq_plugin_ctx *saved = plugin_current;

    for (struct pg_sub *s = ls->subs; s; s = s->next)
        if (strcmp(s->channel, n->relname) == 0) {
            plugin_current = s->plugin;
            s->fn(n->relname, n->extra, s->arg);
        }
    plugin_current = saved;
}

static void on_listener_io(evutil_socket_t fd, short what, void *arg)
{
    struct pg_pool *p = arg;
    struct pg_listener *ls = &p->listener;
    PGconn *pg = ls->conn->pg;
    PGresult *r;
    PGnotify *n;
    char msg[200];

    if (what & EV_WRITE) {
        int f = PQflush(pg);
        if (f < 0)
            goto lost;
        if (f == 0)
            listener_arm(p, false);
    }
    if ((what & EV_READ) && !PQconsumeInput(pg))
        goto lost;
    while (ls->busy && !PQisBusy(pg)) {
        if (!(r = PQgetResult(pg))) {
            ls->busy = false;
            break;
        }
        if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
            pg_one_line(msg, sizeof(msg), PQresultErrorMessage(r));
            log_warn("database: LISTEN failed: %s", msg);
        }
        PQclear(r);
    }
    ls->dispatching = true;
    while ((n = PQnotifies(pg))) {
        listener_dispatch(ls, n);
        PQfreemem(n);
    }
    ls->dispatching = false;
    if (PQstatus(pg) == CONNECTION_BAD)
        goto lost;
    listener_sync(p);
    return;
lost:
    pg_one_line(msg, sizeof(msg), PQerrorMessage(pg));
    listener_lost(p, msg);
}

static void listener_arm(struct pg_pool *p, bool write)
{
    struct pg_conn *c = p->listener.conn;

    event_del(&c->ev);
    event_assign(&c->ev, p->loop->base, PQsocket(c->pg),
                 EV_READ | EV_PERSIST | (write ? EV_WRITE : 0), on_listener_io, p);
    event_add(&c->ev, NULL);
}

static void listener_connected(struct pg_conn *c, const char *error)
{
    struct pg_pool *p = c->pool;
    struct pg_listener *ls = &p->listener;

    if (error) {
        listener_lost(p, error);
        return;
    }
    if (ls->warned)
        log_info("database: LISTEN connection up again");
    ls->warned = false;
    ls->backoff_ms = 0;
    ls->ready = true;
    ls->dirty = true; /* LISTEN everything again: a new session listens to nothing */
    listener_arm(p, false);
    listener_sync(p);
}

/* Opens the LISTEN connection when there is something to listen to. */
static void listener_connect(struct pg_pool *p)
{
    struct pg_listener *ls = &p->listener;

    if (ls->conn || !ls->subs)
        return;
    ls->conn = pg_conn_new(p, listener_connected);
    pg_conn_connect(ls->conn);
}

int sq_pg_listen(sq_plugin_ctx *ctx, const char *channel, sq_pg_listen_fn fn, void *arg)
{
    struct pg_pool *p = pg_pool_current("sq_pg_listen");

    if (!p)
        return SQ_EINVAL;
    if (!ctx || !fn || !channel || !*channel || strlen(channel) > PG_CHANNEL_MAX) {
        pg_fail("sq_pg_listen: %s", !ctx  ? "ctx is NULL"
                                    : !fn ? "fn is NULL"
                                          : "the channel must be 1 to 63 bytes");
        return SQ_EINVAL;
    }
    struct pg_listener *ls = &p->listener;
    struct pg_sub *s = xcalloc(1, sizeof(*s));
    s->plugin = ctx;
    s->channel = xstrdup(channel);
    s->fn = fn;
    s->arg = arg;
    s->next = ls->subs;
    ls->subs = s;
    ls->dirty = true;
    if (!ls->conn && !evtimer_pending(&ls->retry_ev, NULL))
        listener_connect(p);
    else if (!ls->dispatching) /* else on_listener_io sends it once the calls are done */
        listener_sync(p);
    return 0;
}

void pg_listen_stop_plugin(struct sq_plugin_ctx *plugin)
{
    struct pg_pool *p = loop_current ? loop_current->pg : NULL;

    if (!p)
        return;
    struct pg_listener *ls = &p->listener;
    for (struct pg_sub **sp = &ls->subs; *sp;) {
        struct pg_sub *s = *sp;
        if (s->plugin != plugin) {
            sp = &s->next;
            continue;
        }
        *sp = s->next;
        free(s->channel);
        free(s);
        ls->dirty = true;
    }
    if (!ls->subs)
        listener_close(ls);
    else
        listener_sync(p);
}
