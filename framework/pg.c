/*
 * pg.c - the PostgreSQL pool (see pg.h, pg_private.h and squall.h): connecting, handing
 * connections out to coroutines, taking them back.
 *
 * Everything runs on the loop with libpq's asynchronous API; nothing here blocks the loop.
 *
 * A pool connection is CONNECTING (PQconnectStartParams/PQconnectPoll driven by libevent
 * callbacks, bounded by connect_timeout), IDLE (on the pool's idle stack, its socket watched
 * so that a server that closes it — a restart, pg_terminate_backend — gets it discarded at
 * once, before anyone sends a query on it), or BUSY (held by one coroutine, or by those of a
 * shared pipeline in turn, each driving the I/O itself: pg_query.c).
 *
 * Connections open on demand, one per waiting coroutine, up to pool_size; none is opened at
 * start, so a host starts even while its database is down. A connection that fails to open
 * puts the pool into backoff (50 ms doubling to 2 s). While the pool has no connection at
 * all, a query fails at once ("database unavailable") instead of waiting: during the backoff
 * without trying, afterwards as soon as its connect attempt fails; waiters are failed when
 * the last connection attempt fails. A coroutine that waits longer than pool_wait_timeout
 * fails with SQ_ETIMEDOUT ("pool exhausted"). Both mark the coroutine unavailable (a handler
 * that does not reply then gets 503).
 *
 * Host names in the dsn are resolved by libpq inside PQconnectPoll, synchronously (libpq has
 * no asynchronous resolver): where the loop must never wait on DNS, give an address
 * (hostaddr=) or a socket directory.
 *
 * statement_timeout is sent as a startup option (options=-c statement_timeout=N, after any
 * options the dsn has), and "squall" as the fallback application_name.
 */
#include "pg.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "async.h"
#include "list.h"
#include "log.h"
#include "pg_private.h"
#include "request.h"

__thread char pg_sqlstate[6];

static void pool_conn_connected(struct pg_conn *c, const char *error);
static void pool_put(struct pg_conn *c);

/* ---- Small helpers ---- */

void pg_one_line(char *out, size_t len, const char *s)
{
    size_t n = 0;

    for (; s && *s && n + 1 < len; s++) {
        char ch = *s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s;
        if (ch != ' ' || (n > 0 && out[n - 1] != ' '))
            out[n++] = ch;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

/* libpq's notices (and its warnings about a result) go to the log, never to stderr. */
static void on_notice(void *arg, const char *message)
{
    char line[512];

    pg_one_line(line, sizeof(line), message);
    log_msg(SQ_LOG_DEBUG, "postgres", "%s", line);
}

void pg_fail(const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    errmsg_set("%s", msg);
    pg_sqlstate[0] = '\0';
}

struct pg_pool *pg_pool_current(const char *what)
{
    struct pg_pool *p = loop_current ? loop_current->pg : NULL;

    if (!p)
        pg_fail("%s: no [database] in the config", what);
    return p;
}

/* ---- Connecting ---- */

static void connect_step(struct pg_conn *c, PostgresPollingStatusType st);

static void on_connect_io(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    char msg[128];

    if (what & EV_TIMEOUT) {
        snprintf(msg, sizeof(msg), "connection timed out after %llu ms",
                 (unsigned long long)c->pool->connect_timeout_ms);
        c->on_connected(c, msg);
        return;
    }
    connect_step(c, PQconnectPoll(c->pg));
}

/* Goes on with a connect as PQconnectPoll said: wait for the socket, or report. */
static void connect_step(struct pg_conn *c, PostgresPollingStatusType st)
{
    struct pg_pool *p = c->pool;
    char msg[256];

    if (st == PGRES_POLLING_OK) {
        event_del(&c->ev);
        PQsetnonblocking(c->pg, 1);
        c->on_connected(c, NULL);
        return;
    }
    if (st == PGRES_POLLING_FAILED) {
        event_del(&c->ev);
        pg_one_line(msg, sizeof(msg), PQerrorMessage(c->pg));
        c->on_connected(c, msg[0] ? msg : "connection failed");
        return;
    }
    uint64_t now = pg_now_us(p);
    struct timeval tv = us_tv(c->connect_until > now ? c->connect_until - now : 0);
    event_del(&c->ev);
    event_assign(&c->ev, p->loop->base, PQsocket(c->pg),
                 st == PGRES_POLLING_READING ? EV_READ : EV_WRITE, on_connect_io, c);
    event_add(&c->ev, &tv);
}

struct pg_conn *pg_conn_new(struct pg_pool *p,
                            void (*on_connected)(struct pg_conn *c, const char *error))
{
    struct pg_conn *c = xcalloc(1, sizeof(*c));

    c->pool = p;
    c->state = PG_CONNECTING;
    c->on_connected = on_connected;
    event_assign(&c->ev, p->loop->base, -1, 0, on_connect_io, c);
    return c;
}

void pg_conn_connect(struct pg_conn *c)
{
    struct pg_pool *p = c->pool;
    char msg[256];

    c->pg = PQconnectStartParams((const char *const *)p->keys, (const char *const *)p->vals, 0);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        pg_one_line(msg, sizeof(msg), c->pg ? PQerrorMessage(c->pg) : "out of memory");
        c->on_connected(c, msg[0] ? msg : "connection failed");
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    c->connect_until = pg_now_us(p) + p->connect_timeout_ms * 1000;
    connect_step(c, PGRES_POLLING_WRITING);
}

void pg_conn_destroy(struct pg_conn *c)
{
    event_del(&c->ev);
    if (c->pg)
        PQfinish(c->pg);
    pg_stmts_clear(c);
    free(c);
}

/* ---- The pool ---- */

static bool pool_in_backoff(struct pg_pool *p)
{
    return p->backoff_ms && pg_now_us(p) < p->retry_at;
}

/* Wakes every coroutine waiting for a connection with result. */
static void pool_wake_all(struct pg_pool *p, int result)
{
    struct coro_wait *w;

    while ((w = wait_list_pop(&p->waiters)))
        coro_wake(w, result);
}

/* Starts connections for the waiters that no connect in flight will serve, up to
   pool_size; after a recent failure, only once the backoff is over (a timer comes back). */
static void pool_grow(struct pg_pool *p)
{
    while (p->nconns < p->size && p->nconnecting < p->nwaiters) {
        if (pool_in_backoff(p)) {
            struct timeval tv = us_tv(p->retry_at - pg_now_us(p));
            if (!evtimer_pending(&p->retry_ev, NULL))
                evtimer_add(&p->retry_ev, &tv);
            return;
        }
        struct pg_conn *c = pg_conn_new(p, pool_conn_connected);
        LIST_PUSH(p->conns, c, prev, next);
        p->nconns++;
        p->nconnecting++;
        pg_conn_connect(c);
    }
}

static void on_pool_retry(evutil_socket_t fd, short what, void *arg)
{
    pool_grow(arg);
}

/* After a connection went away: a replacement for the waiters, or, when nothing is left
   that could ever serve them, their failure now. */
static void pool_refill(struct pg_pool *p)
{
    if (p->nwaiters > 0)
        pool_grow(p);
    if (p->nconns == 0)
        pool_wake_all(p, PG_WAKE_DOWN);
}

/* Takes c off the pool's lists, closes it and replaces it when someone waits. */
static void pool_discard(struct pg_conn *c)
{
    struct pg_pool *p = c->pool;

    if (c->state == PG_IDLE)
        LIST_UNLINK(p->idle, c, iprev, inext);
    LIST_UNLINK(p->conns, c, prev, next);
    p->nconns--;
    pg_conn_destroy(c);
    pool_refill(p);
}

static void pool_conn_connected(struct pg_conn *c, const char *error)
{
    struct pg_pool *p = c->pool;

    p->nconnecting--;
    if (error) {
        if (!p->backoff_ms)
            log_warn("database: cannot connect: %s", error);
        snprintf(p->error, sizeof(p->error), "%s", error);
        p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
        if (p->backoff_ms > PG_BACKOFF_MAX_MS)
            p->backoff_ms = PG_BACKOFF_MAX_MS;
        p->retry_at = pg_now_us(p) + p->backoff_ms * 1000;
        pool_discard(c);
        return;
    }
    if (p->backoff_ms)
        log_info("database: connected again");
    p->backoff_ms = 0;
    pool_put(c);
}

/* An idle connection's socket became readable: the server closed it or says why it will. */
static void on_idle_read(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    PGnotify *n;

    if (PQconsumeInput(c->pg) && PQstatus(c->pg) == CONNECTION_OK) {
        while ((n = PQnotifies(c->pg)))
            PQfreemem(n);
        return;
    }
    log_msg(SQ_LOG_DEBUG, "squall", "database: an idle connection was closed by the server");
    pool_discard(c);
}

/* c is free: the longest waiter gets it, else it waits on the idle stack. */
static void pool_put(struct pg_conn *c)
{
    struct pg_pool *p = c->pool;
    struct coro_wait *w = wait_list_pop(&p->waiters);

    if (w) {
        c->state = PG_BUSY;
        ((struct pool_wait *)w)->conn = c;
        coro_wake(w, 0);
        return;
    }
    c->state = PG_IDLE;
    LIST_PUSH(p->idle, c, iprev, inext);
    event_del(&c->ev);
    event_assign(&c->ev, p->loop->base, PQsocket(c->pg), EV_READ | EV_PERSIST, on_idle_read, c);
    event_add(&c->ev, NULL);
}

/* A connection is clean when it is still up and idle (no transaction open): a plain
   sq_pg_query("BEGIN") must not leak its transaction into the next user's queries. */
void pg_pool_release(struct pg_conn *c)
{
    if (!c->broken && PQstatus(c->pg) == CONNECTION_OK &&
        PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        pool_put(c);
        return;
    }
    if (!c->broken && PQstatus(c->pg) == CONNECTION_OK)
        log_warn("database: a connection was released inside a transaction (use sq_pg_begin): "
                 "closing it");
    pool_discard(c);
}

/* The pool cannot serve: fails the running coroutine's call at once. */
static int pool_down(struct pg_pool *p, const char *what)
{
    uint64_t now = pg_now_us(p);

    coro_current()->unavailable = true;
    if (p->backoff_ms && now < p->retry_at)
        pg_fail("%s: database unavailable: %s (next attempt in %llu ms)", what, p->error,
                (unsigned long long)((p->retry_at - now + 999) / 1000));
    else
        pg_fail("%s: database unavailable: %s", what, p->error);
    return SQ_EIO;
}

/* An idle connection, a new one, or one released by another coroutine, FIFO. */
int pg_pool_acquire(struct pg_pool *p, struct pool_wait *pw, const char *what)
{
    int64_t timeout = p->wait_timeout_ms ? (int64_t)p->wait_timeout_ms : -1;

    if (p->idle) {
        struct pg_conn *c = p->idle;
        LIST_UNLINK(p->idle, c, iprev, inext);
        event_del(&c->ev);
        c->state = PG_BUSY;
        pw->conn = c;
        return 0;
    }
    p->nwaiters++;
    pool_grow(p); /* before queueing: a connect that fails at once wakes only the others */
    if (p->nconns == 0) {
        p->nwaiters--;
        return pool_down(p, what);
    }
    wait_list_push(&p->waiters, &pw->w);
    int rc = coro_park(&pw->w, timeout, PG_WAKE_POOL_TIMEOUT);
    p->nwaiters--;
    switch (rc) {
    case 0: return 0;
    case PG_WAKE_DOWN: return pool_down(p, what);
    case PG_WAKE_POOL_TIMEOUT:
        coro_current()->unavailable = true;
        pg_fail("%s: connection pool exhausted: no connection free within %llu ms "
                "(pool_size = %u)",
                what, (unsigned long long)p->wait_timeout_ms, p->size);
        return SQ_ETIMEDOUT;
    default:
        pg_fail("%s: %s while waiting for a connection", what,
                rc == SQ_ETIMEDOUT ? "timed out" : "cancelled");
        return rc;
    }
}

/* ---- The pool's life ---- */

/* keys/vals for PQconnectStartParams: what dsn sets, with statement_timeout added to its
   options and "squall" as the fallback application_name. */
static int pool_params(struct pg_pool *p, const char *dsn, char *err, size_t errlen)
{
    char *why = NULL, *options = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &why);
    size_t n = 0, i = 0;

    if (!opts) {
        pg_one_line(err, errlen, why ? why : "out of memory");
        PQfreemem(why);
        return -1;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        n += o->val && strcmp(o->keyword, "options") != 0;
    p->keys = xcalloc(n + 3, sizeof(char *));
    p->vals = xcalloc(n + 3, sizeof(char *));
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val && strcmp(o->keyword, "options") == 0)
            options = o->val;
        else if (o->val) {
            p->keys[i] = xstrdup(o->keyword);
            p->vals[i++] = xstrdup(o->val);
        }
    }
    p->keys[i] = xstrdup("fallback_application_name");
    p->vals[i++] = xstrdup("squall");
    if (p->statement_timeout_ms) {
        char buf[1024];
        snprintf(buf, sizeof(buf), "%s%s-c statement_timeout=%llu", options ? options : "",
                 options ? " " : "", (unsigned long long)p->statement_timeout_ms);
        p->keys[i] = xstrdup("options");
        p->vals[i++] = xstrdup(buf);
    } else if (options) {
        p->keys[i] = xstrdup("options");
        p->vals[i++] = xstrdup(options);
    }
    PQconninfoFree(opts);
    return 0;
}

struct pg_pool *pg_pool_new(struct loop *l, const struct config_database *db, const char *dsn,
                            char *err, size_t errlen)
{
    struct pg_pool *p = xcalloc(1, sizeof(*p));
    char why[256];

    p->loop = l;
    p->size = db->pool_size ? db->pool_size : 1;
    p->connect_timeout_ms = db->connect_timeout_ms ? db->connect_timeout_ms : 5000;
    p->statement_timeout_ms = db->statement_timeout_ms;
    p->wait_timeout_ms = db->pool_wait_timeout_ms;
    snprintf(p->error, sizeof(p->error), "not connected yet");
    evtimer_assign(&p->retry_ev, l->base, on_pool_retry, p);
    pg_listen_init(p);
    if (pool_params(p, dsn, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "bad dsn: %s", why);
        pg_pool_free(p);
        return NULL;
    }
    l->pg = p;
    return p;
}

void pg_pool_free(struct pg_pool *p)
{
    if (!p)
        return;
    pg_listen_free(p);
    event_del(&p->retry_ev);
    pool_wake_all(p, PG_WAKE_DOWN);
    while (p->conns) {
        struct pg_conn *c = p->conns;
        LIST_UNLINK(p->conns, c, prev, next);
        pg_conn_destroy(c);
    }
    for (size_t i = 0; p->keys && p->keys[i]; i++) {
        free(p->keys[i]);
        free(p->vals[i]);
    }
    free(p->keys);
    free(p->vals);
    if (p->loop && p->loop->pg == p)
        p->loop->pg = NULL;
    free(p);
}
