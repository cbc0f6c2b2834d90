/*
 * pg_private.h - what the files of the PostgreSQL service share (pg.h is the host's view,
 * squall.h the plugins'):
 *
 *   pg.c         the pool: connecting, handing connections out and taking them back
 *   pg_query.c   running queries (pipelines, prepared statements, cancellation),
 *                transactions and batches: sq_pg_exec and friends
 *   pg_result.c  results: their lifetime and the sq_pg_result accessors
 *   pg_listen.c  the LISTEN connection: sq_pg_listen, sq_pg_notify's other half
 *
 * Everything here runs on the pool's loop thread.
 */
#ifndef SQUALL_PG_PRIVATE_H
#define SQUALL_PG_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "async.h"
#include "pg.h"
#include "squall.h"

#define PG_STMT_MAX 128        /* prepared statements cached per connection */
#define PG_BACKOFF_MIN_MS 50   /* after a failed connect... */
#define PG_BACKOFF_MAX_MS 2000 /* ...doubling up to this */
#define PG_DRAIN_MS 2000       /* for a cancelled run's connection to become idle again */
#define PG_PIPE_MAX 16         /* coroutines sharing one pipeline, at most (pg_query.c)... */
#define PG_PIPE_QUERIES 256    /* ...and queries, unless one coroutine has more */
#define PG_QUICK_US 10000      /* a statement this quick last time may share a pipeline */

/* What a park of the service may end with besides 0, SQ_ETIMEDOUT and SQ_ECANCELED. */
enum {
    PG_WAKE_DOWN = 1,     /* the pool has no connection and cannot open one */
    PG_WAKE_POOL_TIMEOUT, /* pool_wait_timeout passed */
    PG_WAKE_IO_TIMEOUT,   /* the server did not answer within the run's own limit */
};

enum pg_state { PG_CONNECTING, PG_IDLE, PG_BUSY };

/* A prepared statement in a connection's cache. */
struct pg_stmt {
    uint64_t hash;
    char *sql; /* malloc()ed */
    int nparams;
    uint32_t id;     /* prepared as "sq_<id>" */
    uint32_t run_us; /* how long its latest run took; UINT32_MAX before the first */
};

struct pg_pool;

struct pg_conn {
    struct pg_pool *pool;
    PGconn *pg;
    enum pg_state state;
    struct event ev;        /* its socket: connecting, idle watch, or a park */
    uint64_t connect_until; /* loop us: connect_timeout */
    void (*on_connected)(struct pg_conn *c, const char *error);
    struct coro_wait *waiter;      /* the coroutine parked on its socket */
    struct pg_conn *prev, *next;   /* pool->conns */
    struct pg_conn *iprev, *inext; /* pool->idle */
    bool broken;                   /* lost or unusable: discarded on release */
    int syncs;                     /* pipeline syncs sent and not read back yet */
    struct pg_stmt stmts[PG_STMT_MAX];
    int nstmts;
    uint32_t next_id;
};

/* One sq_pg_listen. */
struct pg_sub {
    struct pg_sub *next;
    struct sq_plugin_ctx *plugin;
    char *channel;
    sq_pg_listen_fn fn;
    void *arg;
};

struct pg_listener {
    struct pg_conn *conn;  /* NULL while down */
    bool ready;            /* conn is connected */
    bool busy;             /* a LISTEN command is in flight */
    bool dirty;            /* the channels changed since the last command */
    bool warned;           /* the outage was logged */
    bool dispatching;      /* subscribers are being called: the connection must stay */
    struct event retry_ev; /* reconnect after backoff */
    uint64_t backoff_ms;
    struct pg_sub *subs;
};

struct pg_pool {
    struct loop *loop;
    char **keys, **vals; /* PQconnectStartParams' arrays, NULL-terminated */
    unsigned size;
    uint64_t connect_timeout_ms, statement_timeout_ms, wait_timeout_ms;
    struct pg_conn *conns; /* every pool connection */
    struct pg_conn *idle;  /* free ones, the most recently used first */
    unsigned nconns, nconnecting;
    struct wait_list waiters; /* coroutines waiting for a connection, FIFO */
    unsigned nwaiters;
    uint64_t backoff_ms;   /* 0 while connects succeed */
    uint64_t retry_at;     /* loop us: no connect attempt before */
    struct event retry_ev; /* grows the pool for its waiters once the backoff is over */
    char error[256];       /* why the last connect failed */
    struct pg_listener listener;
};

struct pg_query;
struct pg_pipe;

/* A coroutine waiting for a connection (on its stack). One that waits to run queries outside
   a transaction (q set) is a rider: a coroutine that gets a connection may take it into its
   pipeline (pg_query.c) instead, setting pipe and part and waking it with 0. */
struct pool_wait {
    struct coro_wait w;   /* first: the wait list hands out this */
    struct pg_conn *conn; /* the connection it got, or */
    struct pg_pipe *pipe; /* the pipeline it rides in, as its part'th part */
    int part;
    struct pg_query *q; /* what it would run, or NULL */
    int n;
};

/* SQLSTATE of this thread's last failed query (sq_pg_sqlstate). */
extern __thread char pg_sqlstate[6];

/* ---- pg.c ---- */

/* s with line breaks and tabs made single spaces and trailing space cut, into out. */
void pg_one_line(char *out, size_t len, const char *s);

/* Sets sq_errmsg() for a failure that did not come from the server (no SQLSTATE). */
void pg_fail(const char *fmt, ...) SQ_PRINTF(1, 2);

/* The running loop's pool, or NULL with the error set ("what: no [database] ..."). */
struct pg_pool *pg_pool_current(const char *what);

static inline uint64_t pg_now_us(struct pg_pool *p)
{
    return loop_now_us(p->loop);
}

/* A new connection object of p, not connecting yet, that will report to on_connected
   (error NULL on success). */
struct pg_conn *pg_conn_new(struct pg_pool *p,
                            void (*on_connected)(struct pg_conn *c, const char *error));

/* Starts connecting c. A failure that libpq sees at once is reported before this returns
   (on_connected may free c). */
void pg_conn_connect(struct pg_conn *c);

/* Closes c and frees it (it must be on no list). */
void pg_conn_destroy(struct pg_conn *c);

/* Awaits a connection of p for the running coroutine, or (a rider) a place in another's
   pipeline. 0 with pw->conn (the caller's until pg_pool_release) or pw->pipe set, or SQ_E*
   with sq_errmsg() set (and the coroutine marked unavailable when the pool could not
   serve). */
int pg_pool_acquire(struct pg_pool *p, struct pool_wait *pw, const char *what);

/* Gives c back: to the next waiter or the idle stack when it is clean, else closed. */
void pg_pool_release(struct pg_conn *c);

/* ---- pg_query.c ---- */

/* Forgets c's prepared statements. */
void pg_stmts_clear(struct pg_conn *c);

/* ---- pg_result.c ---- */

/* Makes res the running coroutine's: PQclear()ed when its arena goes. Returns 0, or -1 on
   out-of-memory (then res is cleared at once). */
int pg_result_keep(PGresult *res);

/* ---- pg_listen.c ---- */

/* Readies p's (not yet connected) LISTEN side. */
void pg_listen_init(struct pg_pool *p);

/* Closes the LISTEN connection and forgets every subscription. */
void pg_listen_free(struct pg_pool *p);

#endif
