/*
 * pg_query.c - running queries on the pool's connections: sq_pg_exec, transactions and
 * batches (see pg_private.h and squall.h).
 *
 * A coroutine holding a connection drives its I/O itself: it sends, then parks on the
 * connection's socket until libpq has what it needs (PQflush, PQconsumeInput, PQisBusy);
 * the loop never blocks.
 *
 * Pipelines. Every run (one query, or a batch) goes out in pipeline mode, each query followed
 * by its own sync: a batch is one round trip, and an error aborts only its own query's
 * segment (outside a transaction each query is its own implicit transaction). While the
 * pool is short, a coroutine that gets a connection takes the runs of others waiting into
 * its pipeline (pipe_lead): each coroutine then reads its own results in turn.
 *
 * Prepared statements. A query's SQL is prepared once per connection (PQsendPrepare in the
 * same pipeline, so it costs no extra round trip, named sq_<n>; names are never reused) and
 * then run with PQsendQueryPrepared. Past PG_STMT_MAX statements new SQL runs unnamed (the
 * cache stops growing rather than evicting: evicting would cost a DEALLOCATE). A statement
 * the server no longer knows (26000, e.g. after DISCARD ALL) or whose cached plan changed
 * its result type empties the cache, and a lone query outside a transaction is retried once.
 *
 * Cancellation. A wait that ends with the coroutine's deadline or cancellation makes the run
 * finish the connection off before anything else: with cancellation and the deadline held
 * off, it flushes what is unsent, sends PQcancel from the thread pool (PQcancel blocks: it
 * opens a connection of its own), and reads the remaining results until every sync is back
 * (PG_DRAIN_MS at most). A connection that cannot be drained is discarded. Only then does
 * the call return its error, so the server is not running the query any more by then. In a
 * shared pipeline, a coroutine whose queries others still wait behind leaves at once
 * instead: its results are skipped, and only what nobody waits for is cancelled.
 *
 * Transactions. sq_pg_begin pins a connection to the running coroutine with a coro_at_end
 * cleanup, which is also how its queries find the connection. A coroutine that ends with the
 * transaction still open gets ROLLBACK there (the cleanup runs in the coroutine, which can
 * no longer be cancelled) and the connection goes back to the pool idle.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "async.h"
#include "log.h"
#include "pg_private.h"
#include "request.h"

#define PG_MAX_PARAMS 65535 /* the protocol's limit */

/* One query of a run. */
struct pg_query {
    const char *sql;
    const char *const *params;
    int nparams;
    bool unnamed;      /* never prepare it (BEGIN, COMMIT, ...) */
    uint64_t hash;     /* of sql, once computed (0 before) */
    uint32_t stmt;     /* the prepared statement it runs; 0 = unnamed */
    bool prepare;      /* this run prepares it first */
    bool prepared;     /* ...and the server said yes */
    PGresult *res;     /* its result, or */
    const char *error; /* why it failed (the coroutine's arena, or static) */
    char sqlstate[6];
};

/* A run in progress: queries on one connection. */
struct pg_run {
    struct pg_conn *c;
    struct pg_query *q;
    int n;
    uint64_t until; /* loop us: the server must have answered by then; 0 = no limit */
    char why[256];  /* why the run failed */
};

/* A transaction pinned to a coroutine (malloc()ed; found through its cleanup). */
struct pg_tx {
    struct coro_cleanup cleanup; /* first */
    struct pg_conn *conn;        /* NULL once lost */
};

struct sq_pg_batch {
    struct pg_query *q;
    int n, cap;
    bool ran;
};

/* ---- Prepared statements ---- */

static uint64_t sql_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h | 1; /* never 0: pg_query.hash's "not computed" */
}

static struct pg_stmt *stmt_by_id(struct pg_conn *c, uint32_t id)
{
    for (int i = 0; i < c->nstmts; i++)
        if (c->stmts[i].id == id)
            return &c->stmts[i];
    return NULL;
}

static void stmt_remove(struct pg_conn *c, struct pg_stmt *s)
{
    free(s->sql);
    *s = c->stmts[--c->nstmts];
}

/* The server's may be gone or not: names are never reused, so either way is fine. */
void pg_stmts_clear(struct pg_conn *c)
{
    while (c->nstmts > 0)
        stmt_remove(c, &c->stmts[c->nstmts - 1]);
}

/* q's statement in c's cache, or NULL. */
static struct pg_stmt *stmt_find(struct pg_conn *c, struct pg_query *q)
{
    if (!q->hash)
        q->hash = sql_hash(q->sql);
    for (int i = 0; i < c->nstmts; i++) {
        struct pg_stmt *s = &c->stmts[i];
        if (s->hash == q->hash && s->nparams == q->nparams && strcmp(s->sql, q->sql) == 0)
            return s;
    }
    return NULL;
}

/* Picks q's statement: a cached one, a new one this run prepares, or none (unnamed). */
static void stmt_choose(struct pg_conn *c, struct pg_query *q)
{
    struct pg_stmt *s = q->unnamed ? NULL : stmt_find(c, q);

    q->stmt = s ? s->id : 0;
    q->prepare = q->prepared = false;
    if (s || q->unnamed)
        return;
    char *copy = c->nstmts < PG_STMT_MAX ? strdup(q->sql) : NULL;
    if (!copy)
        return; /* the cache is full: run it unnamed */
    c->stmts[c->nstmts++] =
        (struct pg_stmt){q->hash, copy, q->nparams, ++c->next_id, UINT32_MAX};
    q->stmt = c->next_id;
    q->prepare = true;
}

/* Records how long q's statement took, since since (loop us); returns now. */
static uint64_t stmt_timed(struct pg_conn *c, const struct pg_query *q, uint64_t since)
{
    uint64_t now = pg_now_us(c->pool);
    struct pg_stmt *s = q->stmt ? stmt_by_id(c, q->stmt) : NULL;

    if (s)
        s->run_us = now - since < UINT32_MAX ? (uint32_t)(now - since) : UINT32_MAX - 1;
    return now;
}

/* Whether q[0..n) all ran quickly on c last time (a slow query in a shared pipeline would
   hold up the queries behind it). */
static bool stmts_quick(struct pg_conn *c, struct pg_query *q, int n)
{
    for (int k = 0; k < n; k++) {
        const struct pg_stmt *s = q[k].unnamed ? NULL : stmt_find(c, &q[k]);
        if (!s || s->run_us > PG_QUICK_US)
            return false;
    }
    return true;
}

/* After a run: statements it prepared are forgotten when that failed or its answer never
   came. */
static void stmts_settle(struct pg_conn *c, struct pg_query *q, int n)
{
    for (int i = 0; i < n; i++) {
        struct pg_stmt *s = q[i].prepare && !q[i].prepared ? stmt_by_id(c, q[i].stmt) : NULL;
        if (s)
            stmt_remove(c, s);
    }
}

/* Whether q failed because its cached statement is stale on the server. */
static bool stmt_is_stale(const struct pg_query *q)
{
    if (!q->error || !q->stmt || q->prepare)
        return false;
    return strcmp(q->sqlstate, "26000") == 0 ||
           (strcmp(q->sqlstate, "0A000") == 0 && strstr(q->error, "cached plan"));
}

/* ---- Running queries ---- */

static void on_conn_io(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;

    if (c->waiter)
        coro_wake(c->waiter, 0);
}

/* Parks the running coroutine until c's socket is ready for what, or until (loop us; 0 =
   no limit) passes (PG_WAKE_IO_TIMEOUT), or the coroutine's deadline or cancellation. */
static int conn_wait(struct pg_conn *c, short what, uint64_t until)
{
    struct coro_wait w = {0};
    int64_t timeout = -1;

    if (until) {
        uint64_t now = pg_now_us(c->pool);
        if (now >= until)
            return PG_WAKE_IO_TIMEOUT;
        timeout = (int64_t)((until - now + 999) / 1000);
    }
    event_del(&c->ev);
    event_assign(&c->ev, c->pool->loop->base, PQsocket(c->pg), what, on_conn_io, c);
    event_add(&c->ev, NULL);
    c->waiter = &w;
    int rc = coro_park(&w, timeout, PG_WAKE_IO_TIMEOUT);
    c->waiter = NULL;
    event_del(&c->ev);
    return rc;
}

/* The connection broke: the run fails with libpq's reason. */
static int run_lost(struct pg_run *run, const PGresult *r)
{
    char msg[200];

    run->c->broken = true;
    pg_one_line(msg, sizeof(msg), r ? PQresultErrorMessage(r) : PQerrorMessage(run->c->pg));
    snprintf(run->why, sizeof(run->why), "database connection lost: %s",
             msg[0] ? msg : "no reason given");
    return SQ_EIO;
}

/* Why a wait failed, for the run. */
static int run_interrupted(struct pg_run *run, int rc)
{
    if (rc == PG_WAKE_IO_TIMEOUT) {
        snprintf(run->why, sizeof(run->why), "the database did not answer in time");
        return SQ_ETIMEDOUT;
    }
    snprintf(run->why, sizeof(run->why), "%s", rc == SQ_ETIMEDOUT ? "timed out" : "cancelled");
    return rc;
}

/* Sends what libpq has buffered, reading what arrives meanwhile (a long pipeline's results
   could otherwise fill both directions and stall). */
static int run_flush(struct pg_run *run)
{
    struct pg_conn *c = run->c;
    int f;

    while ((f = PQflush(c->pg)) == 1) {
        int rc = conn_wait(c, EV_READ | EV_WRITE, run->until);
        if (rc)
            return run_interrupted(run, rc);
        if (!PQconsumeInput(c->pg))
            return run_lost(run, NULL);
    }
    return f < 0 ? run_lost(run, NULL) : 0;
}

/* The next result of c, waiting as needed; NULL ends a command's results. */
static int run_next(struct pg_run *run, PGresult **out)
{
    struct pg_conn *c = run->c;

    *out = NULL;
    while (PQisBusy(c->pg)) {
        int rc = conn_wait(c, EV_READ, run->until);
        if (rc)
            return run_interrupted(run, rc);
        if (!PQconsumeInput(c->pg))
            return run_lost(run, NULL);
    }
    *out = PQgetResult(c->pg);
    if (*out && PQresultStatus(*out) == PGRES_PIPELINE_SYNC)
        c->syncs--;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        int rc = run_lost(run, *out);
        PQclear(*out);
        *out = NULL;
        return rc;
    }
    return 0;
}

/* One command's results: the first is kept in *out (the caller clears it), the rest up to
   the NULL that ends them dropped. */
static int run_command(struct pg_run *run, PGresult **out)
{
    PGresult *r;
    int nulls = 0;

    *out = NULL;
    for (;;) {
        int rc = run_next(run, &r);
        if (rc)
            return rc;
        if (r && !*out)
            *out = r;
        else if (r)
            PQclear(r);
        else if (*out)
            return 0;
        else if (++nulls > 1) { /* nothing is coming: the books are wrong */
            run->c->broken = true;
            snprintf(run->why, sizeof(run->why), "database protocol out of step");
            return SQ_EIO;
        }
    }
}

/* Reads and drops results until only left syncs are outstanding. */
static int run_skip(struct pg_run *run, int left)
{
    struct pg_conn *c = run->c;
    int syncs = c->syncs, nulls = 0;
    PGresult *r;

    while (c->syncs > left) {
        int rc = run_next(run, &r);
        if (rc)
            return rc;
        bool none = !r;
        PQclear(r);
        if (c->syncs != syncs)
            syncs = c->syncs, nulls = 0;
        else if (none && ++nulls > 2) { /* a query's segment holds two commands at most */
            c->broken = true;
            snprintf(run->why, sizeof(run->why), "database protocol out of step");
            return SQ_EIO;
        }
    }
    return 0;
}

/* Reads up to and including the next sync. */
static int run_sync(struct pg_run *run)
{
    return run_skip(run, run->c->syncs - 1);
}

/* Records the server's error r as q's. */
static void query_fail(struct pg_query *q, const PGresult *r)
{
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    char line[256];
    struct arena *a = coro_arena();

    if (q->error)
        return; /* the first error (the PREPARE's) says why */
    pg_one_line(line, sizeof(line), msg ? msg : PQresultErrorMessage(r));
    q->error = arena_strndup(a, line, strlen(line));
    if (!q->error)
        q->error = "out of memory";
    snprintf(q->sqlstate, sizeof(q->sqlstate), "%s", state ? state : "");
}

/* Reads q's part of the pipeline: its PREPARE's answer, its result, its sync. */
static int run_read_query(struct pg_run *run, struct pg_query *q)
{
    PGresult *r;
    int rc;

    if (q->prepare) {
        if ((rc = run_command(run, &r)))
            return rc;
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            q->prepared = true;
        else
            query_fail(q, r);
        PQclear(r);
    }
    if ((rc = run_command(run, &r)))
        return rc;
    switch (PQresultStatus(r)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY: q->res = r; return run_sync(run);
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH: /* the connection is in COPY mode now: it goes */
        PQclear(r);
        run->c->broken = true;
        snprintf(run->why, sizeof(run->why), "COPY is not supported");
        return SQ_EIO;
    case PGRES_PIPELINE_ABORTED: /* its PREPARE failed, and said why */
        if (!q->error)
            q->error = "aborted: its PREPARE failed";
        break;
    default: query_fail(q, r); break;
    }
    PQclear(r);
    return run_sync(run);
}

/* Queues q (and its PREPARE) and its sync. */
static int run_send_query(struct pg_run *run, struct pg_query *q)
{
    PGconn *pg = run->c->pg;
    char name[24];
    int ok;

    stmt_choose(run->c, q);
    if (q->stmt)
        snprintf(name, sizeof(name), "sq_%u", (unsigned)q->stmt);
    if (q->prepare && !PQsendPrepare(pg, name, q->sql, q->nparams, NULL))
        return run_lost(run, NULL);
    if (q->stmt)
        ok = PQsendQueryPrepared(pg, name, q->nparams, q->params, NULL, NULL, 0);
    else
        ok = PQsendQueryParams(pg, q->sql, q->nparams, NULL, q->params, NULL, NULL, 0);
    if (!ok || !PQpipelineSync(pg))
        return run_lost(run, NULL);
    run->c->syncs++;
    return 0;
}

/* The thread pool's half of a cancel: PQcancel blocks on a connection of its own. */
struct cancel_job {
    PGcancel *cancel;
    char err[256];
    int ok;
};

static void *cancel_main(void *arg)
{
    struct cancel_job *j = arg;

    j->ok = PQcancel(j->cancel, j->err, sizeof(j->err));
    return NULL;
}

/* Asks the server to cancel what c runs, from the thread pool. */
static bool conn_cancel(struct pg_conn *c)
{
    struct cancel_job j = {.cancel = PQgetCancel(c->pg)};

    if (!j.cancel)
        return false;
    int rc = sq_run_in_thread(cancel_main, &j, NULL);
    PQfreeCancel(j.cancel);
    if (rc == 0 && !j.ok)
        log_msg(SQ_LOG_DEBUG, "squall", "database: PQcancel: %s", j.err);
    return rc == 0 && j.ok;
}

/* After a run was interrupted: gets c idle again (see the top of the file), or marks it
   broken. Awaits with cancellation and the deadline held off. */
static void run_drain(struct pg_run *run)
{
    struct pg_conn *c = run->c;
    struct coro *co = coro_current();
    bool nocancel = co->nocancel;
    uint64_t deadline = co->deadline;
    char why[sizeof(run->why)];

    memcpy(why, run->why, sizeof(why));
    co->nocancel = true;
    co->deadline = 0;
    run->until = pg_now_us(c->pool) + PG_DRAIN_MS * 1000;
    if (c->syncs > 0 && (run_flush(run) || !conn_cancel(c)))
        c->broken = true;
    if (!c->broken && run_skip(run, 0))
        c->broken = true;
    co->nocancel = nocancel;
    co->deadline = deadline;
    memcpy(run->why, why, sizeof(why));
}

/* When the server must have answered a run starting now: with a statement_timeout the
   server gives up first, so this only catches a dead network. 0 = no limit. */
static uint64_t run_until(struct pg_pool *p)
{
    if (!p->statement_timeout_ms)
        return 0;
    return pg_now_us(p) + (p->statement_timeout_ms + p->connect_timeout_ms) * 1000;
}

/* ---- Pipelines: the queries of one or more coroutines on one connection ---- */

/* One coroutine's queries in a pipeline. */
struct pg_part {
    struct pg_query *q; /* NULL once its coroutine has left the pipeline */
    int n;
    int end;             /* c->syncs once its results are read */
    struct coro_wait *w; /* its coroutine waiting for its turn, or NULL */
};

/* The parts' queries went out together; each part's coroutine reads its own results, in
   turn, skipping what parts that left before their turn did not read. A pipeline of one
   part lives on its coroutine's stack; a shared one is malloc()ed, freed by the last part
   to leave. */
struct pg_pipe {
    struct pg_conn *c;
    bool pooled;      /* the last reader gives c back to the pool (else c is a transaction's) */
    bool lost;        /* c broke: the parts still waiting fail with why */
    int nparts, turn; /* turn: the part whose results are read next */
    int refs;         /* parts whose coroutine has not left yet */
    struct pg_part *part;
    char why[256];
};

/* Sends every part's queries in pipeline mode, each followed by its own sync. */
static int pipe_send(struct pg_pipe *pp, struct pg_run *run)
{
    struct pg_conn *c = pp->c;
    int rc = PQenterPipelineMode(c->pg) ? 0 : run_lost(run, NULL);

    for (int i = 0; i < pp->nparts; i++)
        for (int k = 0; k < pp->part[i].n; k++) {
            struct pg_query *q = &pp->part[i].q[k];
            q->res = NULL;
            q->error = NULL;
            q->sqlstate[0] = '\0';
            q->prepare = false;
            if (rc == 0)
                rc = run_send_query(run, q);
        }
    int left = c->syncs;
    for (int i = 0; i < pp->nparts; i++)
        pp->part[i].end = left -= pp->part[i].n;
    return rc == 0 ? run_flush(run) : rc;
}

/* The part in turn is done (read, or left): the turn goes to the next part still there.
   After the last, what parts that left did not read is cancelled and drained, and c leaves
   pipeline mode (and goes back to the pool). When c broke, every part still there is told
   at once. */
static void pipe_pass(struct pg_pipe *pp, struct pg_run *run)
{
    struct pg_conn *c = pp->c;

    if (c->broken && !pp->lost) {
        pp->lost = true;
        memcpy(pp->why, run->why, sizeof(pp->why));
    }
    while (++pp->turn < pp->nparts) {
        struct pg_part *pt = &pp->part[pp->turn];
        if (pt->q && pt->w)
            coro_wake(pt->w, 0);
        if (pt->q && !pp->lost)
            return;
    }
    if (!c->broken && c->syncs > 0)
        run_drain(run);
    if (!c->broken && !PQexitPipelineMode(c->pg))
        c->broken = true;
    if (pp->pooled)
        pg_pool_release(c);
}

/* Part i's coroutine waits for its turn. */
static int part_wait(struct pg_pipe *pp, int i, struct pg_run *run)
{
    struct coro_wait w = {0};
    int rc = 0;

    if (!pp->lost && pp->turn != i) {
        pp->part[i].w = &w;
        rc = coro_park(&w, -1, 0);
        pp->part[i].w = NULL;
        if (rc)
            return run_interrupted(run, rc);
    }
    if (pp->lost) {
        memcpy(run->why, pp->why, sizeof(run->why));
        return SQ_EIO;
    }
    return 0;
}

/* In its turn, reads part i's results, after what the parts before it left unread. */
static int part_read(struct pg_pipe *pp, int i, struct pg_run *run)
{
    struct pg_part *pt = &pp->part[i];
    int rc = run_flush(run); /* a reader that left may have left some unsent */

    if (rc == 0)
        rc = run_skip(run, pt->end + pt->n);
    uint64_t t = pg_now_us(pp->c->pool);
    for (int k = 0; k < pt->n && rc == 0; k++) {
        rc = run_read_query(run, &pt->q[k]);
        t = stmt_timed(pp->c, &pt->q[k], t);
    }
    for (int k = 0; k < pt->n && rc == 0; k++)
        if (stmt_is_stale(&pt->q[k])) {
            pg_stmts_clear(pp->c);
            break;
        }
    return rc;
}

/* Part i's coroutine leaves the pipeline with rc, the result of its run; the turn goes on if
   it was the part's. */
static int part_leave(struct pg_pipe *pp, int i, struct pg_run *run, int rc)
{
    struct pg_part *pt = &pp->part[i];

    if (!pp->lost) /* c is still the pipeline's */
        stmts_settle(pp->c, pt->q, pt->n);
    pt->q = NULL;
    if (pp->turn == i)
        pipe_pass(pp, run);
    if (--pp->refs == 0 && pp->nparts > 1)
        free(pp);
    return rc;
}

/* Runs run->q[0..n) as one pipeline on run->c, a transaction's connection. Afterwards every
   query has its result or its error. Returns 0; or SQ_ETIMEDOUT / SQ_ECANCELED / SQ_EIO
   when the run itself failed (run->why says why), c drained or marked broken. */
static int conn_run(struct pg_run *run)
{
    struct pg_part part = {.q = run->q, .n = run->n};
    struct pg_pipe pp = {.c = run->c, .nparts = 1, .refs = 1, .part = &part};
    int rc = pipe_send(&pp, run);

    return part_leave(&pp, 0, run, rc ? rc : part_read(&pp, 0, run));
}

/* ---- Transactions ---- */

static void tx_at_end(struct coro_cleanup *cl);

/* The running coroutine's open transaction, or NULL. */
static struct pg_tx *tx_of(struct coro *co)
{
    for (struct coro_cleanup *cl = co ? co->cleanups : NULL; cl; cl = cl->next)
        if (cl->fn == tx_at_end)
            return (struct pg_tx *)cl;
    return NULL;
}

/* Runs one control statement (BEGIN, COMMIT, ROLLBACK) on c; its result in *out. */
static int conn_control(struct pg_conn *c, const char *sql, uint64_t until, struct pg_query *q)
{
    struct pg_run run = {.c = c, .q = q, .n = 1, .until = until};

    *q = (struct pg_query){.sql = sql, .unnamed = true};
    int rc = conn_run(&run);
    if (rc)
        pg_fail("%s: %s", sql, run.why);
    return rc;
}

/* Gives c back to the pool, rolled back first if a transaction is still open on it. */
static void tx_close(struct pg_conn *c)
{
    struct coro *co = coro_current();

    if (!c->broken && PQstatus(c->pg) == CONNECTION_OK &&
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        struct pg_query q;
        bool nocancel = co->nocancel;
        uint64_t deadline = co->deadline;
        co->nocancel = true;
        co->deadline = 0;
        conn_control(c, "ROLLBACK", pg_now_us(c->pool) + PG_DRAIN_MS * 1000, &q);
        PQclear(q.res);
        co->nocancel = nocancel;
        co->deadline = deadline;
    }
    pg_pool_release(c);
}

/* Unpins tx from the running coroutine and frees it; returns its connection (or NULL). */
static struct pg_conn *tx_unpin(struct pg_tx *tx)
{
    struct pg_conn *c = tx->conn;

    coro_at_end_remove(coro_current(), &tx->cleanup);
    free(tx);
    return c;
}

/* The coroutine ended with its transaction open: roll it back (in the coroutine). */
static void tx_at_end(struct coro_cleanup *cl)
{
    struct pg_tx *tx = (struct pg_tx *)cl;
    struct pg_conn *c = tx->conn;

    free(tx); /* already off the list */
    if (c)
        tx_close(c);
}

int sq_pg_begin(void)
{
    struct pg_pool *p = pg_pool_current("sq_pg_begin");
    struct coro *co = coro_current();
    struct pg_conn *c;
    struct pg_query q;
    int rc;

    if (!p)
        return SQ_EINVAL;
    if ((rc = coro_await_check())) {
        pg_fail("sq_pg_begin: %s", rc == SQ_EINVAL      ? "not called from a coroutine"
                                   : rc == SQ_ETIMEDOUT ? "timed out"
                                                        : "cancelled");
        return rc;
    }
    if (tx_of(co)) {
        pg_fail("sq_pg_begin: a transaction is already open");
        return SQ_EINVAL;
    }
    struct pool_wait pw = {0}; /* no queries: a transaction waits for a connection of its own */
    if ((rc = pg_pool_acquire(p, &pw, "sq_pg_begin")))
        return rc;
    c = pw.conn;
    rc = conn_control(c, "BEGIN", run_until(p), &q);
    if (rc == 0 && q.error) {
        pg_fail("BEGIN: %s", q.error);
        rc = SQ_EIO;
    }
    PQclear(q.res);
    if (rc) {
        co->unavailable |= c->broken;
        tx_close(c);
        return rc;
    }
    struct pg_tx *tx = xcalloc(1, sizeof(*tx));
    tx->conn = c;
    tx->cleanup.fn = tx_at_end;
    coro_at_end(co, &tx->cleanup);
    return 0;
}

/* Ends the running coroutine's transaction with sql (COMMIT or ROLLBACK). */
static int tx_finish(const char *what, const char *sql)
{
    struct pg_tx *tx = tx_of(coro_current());
    struct pg_query q = {0};

    if (!tx) {
        pg_fail("%s: no transaction is open", what);
        return SQ_EINVAL;
    }
    struct pg_conn *c = tx_unpin(tx);
    if (!c) {
        pg_fail("%s: the transaction's connection was lost: it was rolled back", what);
        return strcmp(sql, "ROLLBACK") == 0 ? 0 : SQ_EIO;
    }
    int rc = coro_await_check();
    if (rc)
        pg_fail("%s: %s", what, rc == SQ_ETIMEDOUT ? "timed out" : "cancelled");
    else
        rc = conn_control(c, sql, run_until(c->pool), &q);
    if (rc == 0 && q.error) {
        pg_fail("%s: %s", what, q.error);
        snprintf(pg_sqlstate, sizeof(pg_sqlstate), "%s", q.sqlstate);
        rc = SQ_EIO;
    } else if (rc == 0 && strcmp(sql, "COMMIT") == 0 &&
               strcmp(PQcmdStatus(q.res), "ROLLBACK") == 0) {
        pg_fail("%s: the transaction was rolled back: a statement in it failed", what);
        rc = SQ_EIO;
    }
    PQclear(q.res);
    tx_close(c);
    return rc;
}

int sq_pg_commit(void)
{
    return tx_finish("sq_pg_commit", "COMMIT");
}

int sq_pg_rollback(void)
{
    struct coro *co = coro_current();

    if (!co) {
        pg_fail("sq_pg_rollback: not called from a coroutine");
        return SQ_EINVAL;
    }
    /* A rollback must happen even when the coroutine is cancelled or late. */
    bool nocancel = co->nocancel;
    uint64_t deadline = co->deadline;
    co->nocancel = true;
    co->deadline = 0;
    int rc = tx_finish("sq_pg_rollback", "ROLLBACK");
    co->nocancel = nocancel;
    co->deadline = deadline;
    return rc < 0 && rc != SQ_EINVAL ? 0 : rc;
}

/* ---- Queries and batches ---- */

/* Hands the run's results over to the coroutine (freed when it ends). */
static void run_keep_results(struct pg_query *q, int n)
{
    for (int i = 0; i < n; i++)
        if (q[i].res && pg_result_keep(q[i].res) < 0) {
            q[i].res = NULL;
            q[i].error = "out of memory";
        }
}

/* The coroutine that got c runs its queries there in a pipeline, with those of riders
   (pg_private.h) when the pool has no other connection coming: up to PG_PIPE_MAX-1 of the
   coroutines waiting to run queries, PG_PIPE_QUERIES queries in all, when every query is
   one that ran quickly (PG_QUICK_US) on c last time. One turnaround of the connection then
   serves them all (one send, one wakeup of the server for many queries): that is what the
   pool's throughput is made of when it is short. Each query keeps its own sync, so a
   rider's queries are no less their own than on a connection of their own; but a rider
   waits for the queries ahead of it, and one that was quick before may be slow this time
   (it is not cancelled for them: a cancel could hit the query after it). */
static int pipe_lead(struct pg_conn *c, struct pg_run *run)
{
    struct pg_pool *p = c->pool;
    struct pool_wait *riders[PG_PIPE_MAX - 1];
    int nr = 0, nq = run->n;

    if (p->waiters.head && p->nconns == p->size && !p->nconnecting &&
        stmts_quick(c, run->q, run->n))
        for (struct coro_wait *w = p->waiters.head; w && nr < PG_PIPE_MAX - 1; w = w->next) {
            struct pool_wait *pw = (struct pool_wait *)w;
            if (pw->q && nq + pw->n <= PG_PIPE_QUERIES && stmts_quick(c, pw->q, pw->n)) {
                riders[nr++] = pw;
                nq += pw->n;
            }
        }
    /* Alone, the pipeline lives on this stack; shared, until its last part leaves. */
    struct pg_part own;
    struct pg_pipe solo, *pp = &solo;
    if (nr)
        pp = xmalloc(sizeof(*pp) + sizeof(struct pg_part) * (size_t)(nr + 1));
    *pp = (struct pg_pipe){.c = c, .pooled = true, .nparts = nr + 1, .refs = nr + 1,
                           .part = nr ? (struct pg_part *)(pp + 1) : &own};
    pp->part[0] = (struct pg_part){.q = run->q, .n = run->n};
    for (int i = 0; i < nr; i++) {
        pp->part[i + 1] = (struct pg_part){.q = riders[i]->q, .n = riders[i]->n};
        riders[i]->pipe = pp;
        riders[i]->part = i + 1;
        coro_wake(&riders[i]->w, 0);
    }
    run->until = run_until(p);
    int rc = pipe_send(pp, run);
    return part_leave(pp, 0, run, rc ? rc : part_read(pp, 0, run));
}

/* Runs q[0..n) for the running coroutine on a pool connection (its own, or another's
   pipeline). */
static int pool_run(struct pg_pool *p, struct pg_run *run, const char *what)
{
    struct pool_wait pw = {.q = run->q, .n = run->n};
    int rc = pg_pool_acquire(p, &pw, what);

    if (rc)
        return rc;
    if (pw.pipe) {
        run->c = pw.pipe->c;
        rc = part_wait(pw.pipe, pw.part, run);
        run->until = run_until(p); /* from its turn on */
        return part_leave(pw.pipe, pw.part, run, rc ? rc : part_read(pw.pipe, pw.part, run));
    }
    if ((rc = coro_await_check())) { /* cancelled just as a connection came */
        pg_pool_release(pw.conn);
        snprintf(run->why, sizeof(run->why), "%s", rc == SQ_ETIMEDOUT ? "timed out" : "cancelled");
        return rc;
    }
    run->c = pw.conn;
    return pipe_lead(pw.conn, run);
}

/* The queries of q[0..n) still without a result or an error get why (one copy). */
static void queries_fail(struct pg_query *q, int n, const char *why)
{
    const char *e = arena_strndup(coro_arena(), why, strlen(why));

    for (int i = 0; i < n; i++)
        if (!q[i].res && !q[i].error)
            q[i].error = e ? e : "out of memory";
}

/* Runs q[0..n) for the running coroutine: on its transaction's connection, or on the pool.
   Returns 0 once every query has its result or error, else SQ_E* with sq_errmsg() set (and
   the queries without a result carrying the same error). */
static int pg_run(const char *what, struct pg_query *q, int n)
{
    struct pg_pool *p = pg_pool_current(what);
    struct coro *co = coro_current();
    int rc;

    if (!p)
        return SQ_EINVAL;
    if ((rc = coro_await_check())) {
        pg_fail("%s: %s", what,
                rc == SQ_EINVAL      ? "not called from a coroutine"
                : rc == SQ_ETIMEDOUT ? "timed out"
                                     : "cancelled");
        if (rc != SQ_EINVAL) /* no coroutine: no memory for the queries' errors */
            queries_fail(q, n, sq_errmsg());
        return rc;
    }
    struct pg_tx *tx = tx_of(co);
    struct pg_run run = {.q = q, .n = n};
    if (tx && !(run.c = tx->conn)) {
        pg_fail("%s: the transaction's connection was lost", what);
        co->unavailable = true;
        queries_fail(q, n, sq_errmsg());
        return SQ_EIO;
    }
    for (int tries = 0; tries < 2; tries++) {
        if (tx) {
            run.until = run_until(p);
            rc = conn_run(&run);
            if (run.c->broken) {
                tx->conn = NULL;
                pg_pool_release(run.c);
            }
        } else if ((rc = pool_run(p, &run, what)) && !run.why[0]) {
            queries_fail(q, n, sq_errmsg()); /* no connection: sq_errmsg() says why */
            return rc;
        }
        /* a statement the server no longer knows: once more, but in a transaction the
           failure has aborted it */
        if (rc || n > 1 || tx || !stmt_is_stale(&q[0]))
            break;
    }
    if (rc == SQ_EIO)
        co->unavailable = true;
    if (rc) {
        pg_fail("%s: %s", what, run.why);
        queries_fail(q, n, run.why);
    }
    run_keep_results(q, n);
    return rc;
}

/* Checks the arguments every query takes. */
static bool query_args_ok(const char *what, const char *sql, const char *const *params, int nparams)
{
    if (sql && nparams >= 0 && nparams <= PG_MAX_PARAMS && (params || nparams == 0))
        return true;
    pg_fail("%s: %s", what,
            !sql                     ? "sql is NULL"
            : !params && nparams > 0 ? "params is NULL"
                                     : "bad nparams");
    return false;
}

/* Sets sq_errmsg() and sq_pg_sqlstate() to q's own error. */
static void query_report(const struct pg_query *q)
{
    errmsg_set("%s", q->error);
    memcpy(pg_sqlstate, q->sqlstate, sizeof(pg_sqlstate));
}

sq_pg_result *sq_pg_exec(const char *sql, const char *const *params, int nparams)
{
    struct pg_query q = {.sql = sql, .params = params, .nparams = nparams};

    if (!query_args_ok("sq_pg_exec", sql, params, nparams))
        return NULL;
    if (pg_run("sq_pg_exec", &q, 1))
        return NULL;
    if (!q.res) {
        query_report(&q);
        return NULL;
    }
    return (sq_pg_result *)q.res;
}

const char *sq_pg_sqlstate(void)
{
    return pg_sqlstate;
}

int sq_pg_notify(const char *channel, const char *payload)
{
    const char *params[2] = {channel, payload};
    struct pg_query q = {.sql = "SELECT pg_notify($1, $2)", .params = params, .nparams = 2};

    if (!channel) {
        pg_fail("sq_pg_notify: channel is NULL");
        return SQ_EINVAL;
    }
    int rc = pg_run("sq_pg_notify", &q, 1);
    if (rc)
        return rc;
    if (!q.res) {
        query_report(&q);
        return SQ_EIO;
    }
    return 0;
}

sq_pg_batch *sq_pg_batch_new(void)
{
    sq_pg_batch *b = sq_coro_alloc(sizeof(*b));

    if (b)
        memset(b, 0, sizeof(*b));
    return b;
}

/* Copies params[0..n) into a, NULLs kept. NULL on out-of-memory. */
static const char *const *params_copy(struct arena *a, const char *const *params, int n)
{
    const char **copy = arena_alloc(a, sizeof(*copy) * (size_t)(n ? n : 1));

    for (int i = 0; copy && i < n; i++) {
        copy[i] = params[i] ? arena_strndup(a, params[i], strlen(params[i])) : NULL;
        if (params[i] && !copy[i])
            return NULL;
    }
    return copy;
}

int sq_pg_batch_add(sq_pg_batch *b, const char *sql, const char *const *params, int nparams)
{
    struct arena *a = coro_arena();

    if (!b || b->ran || !a) {
        pg_fail("sq_pg_batch_add: %s", !b       ? "b is NULL"
                                       : b->ran ? "the batch has run"
                                                : "not called from a coroutine");
        return SQ_EINVAL;
    }
    if (!query_args_ok("sq_pg_batch_add", sql, params, nparams))
        return SQ_EINVAL;
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 8;
        struct pg_query *q = arena_alloc(a, sizeof(*q) * (size_t)cap);
        if (!q)
            goto out_of_memory;
        if (b->n)
            memcpy(q, b->q, sizeof(*q) * (size_t)b->n);
        b->q = q;
        b->cap = cap;
    }
    struct pg_query *q = &b->q[b->n];
    *q = (struct pg_query){.nparams = nparams};
    if (!(q->sql = arena_strndup(a, sql, strlen(sql))) ||
        !(q->params = params_copy(a, params, nparams)))
        goto out_of_memory;
    return b->n++;

out_of_memory:
    pg_fail("sq_pg_batch_add: out of memory");
    return SQ_ENOMEM;
}

int sq_pg_batch_run(sq_pg_batch *b)
{
    if (!b || b->ran) {
        pg_fail("sq_pg_batch_run: %s", b ? "the batch has run already" : "b is NULL");
        return SQ_EINVAL;
    }
    if (b->n == 0) { /* nothing to send: not even a connection is needed */
        b->ran = true;
        return 0;
    }
    int rc = pg_run("sq_pg_batch_run", b->q, b->n);
    b->ran = rc != SQ_EINVAL;
    return rc;
}

sq_pg_result *sq_pg_batch_result(sq_pg_batch *b, int i)
{
    if (!b || !b->ran || i < 0 || i >= b->n) {
        pg_fail("sq_pg_batch_result: %s", !b        ? "b is NULL"
                                          : !b->ran ? "the batch has not run"
                                                    : "no such query");
        return NULL;
    }
    if (!b->q[i].res)
        query_report(&b->q[i]);
    return (sq_pg_result *)b->q[i].res;
}
