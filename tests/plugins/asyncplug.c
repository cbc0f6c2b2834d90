/*
 * asyncplug - handlers that await, for tests/integration/check_coro.c.
 *
 *   GET /wait?ms=N                 sleeps N ms (0..60000), then {"slept":N}; a cancelled
 *                                  sleep (the client went away, the host stops) is counted
 *   GET /fanout?ms=N               three operations that each sleep N ms and then write to
 *                                  4 KiB of the request's memory; {"ops":3} once all ended.
 *                                  Cancelled, it counts like /wait, and each op it started
 *                                  counts in ops_cancelled
 *   GET /stats                     {"started":..,"waiting":..,"completed":..,"cancelled":..,
 *                                   "timedout":..,"ops_cancelled":..} for /wait and /fanout
 *   GET /deadline?ms=D&sleep=S     sets a deadline of D ms, sleeps S ms; when the sleep
 *                                  fails: 504 {"error":"deadline: <sq_errmsg()>"}
 *   GET /deep                      recurses without bound (4 KiB frames) until the
 *                                  coroutine's stack overflows: the host dies of it
 *
 * Config keys of [plugin asyncplug]: stats_file (fini writes the /stats JSON there, so a
 * test can see what happened to requests in flight at shutdown).
 */
#include <squall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What happened to the /wait requests of this instance. */
struct stats {
    long started, completed, cancelled, timedout;
    long ops_cancelled;
};

static struct stats *stats_of(sq_req *r)
{
    return sq_plugin_get_data(sq_req_plugin(r));
}

static json_t *stats_json(const struct stats *s)
{
    return json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "started", (json_int_t)s->started, "waiting",
                     (json_int_t)(s->started - s->completed - s->cancelled - s->timedout),
                     "completed", (json_int_t)s->completed, "cancelled", (json_int_t)s->cancelled,
                     "timedout", (json_int_t)s->timedout, "ops_cancelled",
                     (json_int_t)s->ops_cancelled);
}

/* The query argument name as an integer in [0, 60000]; -1 when absent or not one. */
static long query_ms(sq_req *r, const char *name)
{
    const char *s = sq_query(r, name);
    char *end;

    if (!s || *s < '0' || *s > '9')
        return -1;
    long v = strtol(s, &end, 10);
    return *end || v > 60000 ? -1 : v;
}

static int wait_ms(sq_req *r)
{
    struct stats *st = stats_of(r);
    long ms = query_ms(r, "ms");

    if (ms < 0)
        return sq_reply_error(r, 400, "ms must be an integer from 0 to 60000");
    st->started++;
    int rc = sq_sleep((uint64_t)ms);
    switch (rc) {
    case 0: st->completed++; break;
    case SQ_ECANCELED:
        st->cancelled++;
        return SQ_ECANCELED; /* nobody to answer: the reply would be dropped */
    default: st->timedout++; return sq_reply_error(r, 503, "%s", sq_errmsg());
    }
    return sq_reply_json(r, 200, json_pack("{s:i}", "slept", (json_int_t)ms));
}

#define FAN_OPS 3
#define FAN_MEM 4096

/* What the operations of one /fanout share: all in the request's memory. */
struct fan {
    struct stats *st;
    char *mem;
    long ms;
};

static int fan_op(void *arg, void **result)
{
    struct fan *f = arg;
    int rc = sq_sleep((uint64_t)f->ms);

    memset(f->mem, 'x', FAN_MEM); /* still the request's: its handler waits for its ops */
    if (rc == SQ_ECANCELED)
        f->st->ops_cancelled++;
    return rc;
}

static int fanout(sq_req *r)
{
    struct fan *f = sq_alloc(r, sizeof(*f));
    sq_op *ops[FAN_OPS];

    if (!f || !(f->mem = sq_alloc(r, FAN_MEM)))
        return 503;
    f->st = stats_of(r);
    f->ms = query_ms(r, "ms");
    if (f->ms < 0)
        return sq_reply_error(r, 400, "ms must be an integer from 0 to 60000");
    f->st->started++;
    for (int i = 0; i < FAN_OPS; i++)
        if (!(ops[i] = sq_op_start(fan_op, f)))
            return 503;
    int rc = sq_await_all(ops, FAN_OPS);
    if (rc == SQ_ECANCELED) {
        f->st->cancelled++;
        return rc; /* its ops are cancelled, and waited for before the request ends */
    }
    if (rc != 0) {
        f->st->timedout++;
        return sq_reply_error(r, 503, "%s", sq_errmsg());
    }
    f->st->completed++;
    return sq_reply_json(r, 200, json_pack("{s:i}", "ops", FAN_OPS));
}

static int stats(sq_req *r)
{
    return sq_reply_json(r, 200, stats_json(stats_of(r)));
}

static int deadline(sq_req *r)
{
    long ms = query_ms(r, "ms"), sleep = query_ms(r, "sleep");

    if (ms <= 0 || sleep < 0)
        return sq_reply_error(r, 400, "ms (> 0) and sleep are required");
    sq_set_deadline((uint64_t)ms);
    int rc = sq_sleep((uint64_t)sleep);
    if (rc == 0)
        return sq_reply_json(r, 200, json_pack("{s:i}", "slept", (json_int_t)sleep));
    if (rc == SQ_ETIMEDOUT)
        return sq_reply_error(r, 504, "deadline: %s", sq_errmsg());
    return sq_reply_error(r, 503, "%s (%d)", sq_errmsg(), rc);
}

/* Never reached: it only keeps the compiler from seeing that the recursion is unbounded. */
static volatile long deep_limit = 1L << 40;

/* Each frame holds a 4 KiB buffer, written from its top down so that the pages below the
   stack are touched in order: the first one past the end is the guard page. The callee
   gets the buffer's address, so no frame can be reused for the next (no tail call). */
static long recurse(long depth, volatile char *parent)
{
    volatile char buf[4096];

    for (size_t i = sizeof(buf); i-- > 0;)
        buf[i] = (char)(depth + (long)i);
    if (depth >= deep_limit)
        return buf[0];
    long v = recurse(depth + 1, buf);
    return v + buf[depth % (long)sizeof(buf)] + (parent ? parent[0] : 0);
}

static int deep(sq_req *r)
{
    long v = recurse(0, NULL);
    char body[32];
    int n = snprintf(body, sizeof(body), "%ld", v);

    return sq_reply(r, 200, "text/plain", body, (size_t)n);
}

static int asyncplug_init(sq_plugin_ctx *ctx)
{
    struct stats *s = calloc(1, sizeof(*s));

    if (!s) {
        sq_log(SQ_LOG_ERROR, "out of memory");
        return -1;
    }
    sq_plugin_set_data(ctx, s);
    return 0;
}

static void asyncplug_fini(sq_plugin_ctx *ctx)
{
    struct stats *s = sq_plugin_get_data(ctx);
    const char *path = sq_config_get(ctx, "stats_file");
    json_t *j = s ? stats_json(s) : NULL;

    if (path && j)
        json_dump_file(j, path, JSON_COMPACT);
    json_decref(j);
    free(s);
}

/* A plugin bug: the process dies of SIGSEGV (its worker is replaced). Not a NULL pointer,
   which UBSan would stop first: an address nothing is mapped at. */
static int crash(sq_req *r)
{
    volatile int *volatile p = (volatile int *)16;

    *p = 1; /* both volatile: the compiler may not drop the store */
    return 0;
}

static const sq_route routes[] = {
    {"GET", "/wait", wait_ms},      {"GET", "/fanout", fanout}, {"GET", "/stats", stats},
    {"GET", "/deadline", deadline}, {"GET", "/deep", deep},     {"GET", "/crash", crash},
    {0},
};

SQ_PLUGIN(.name = "asyncplug", .version = "1.0.0", .routes = routes, .init = asyncplug_init,
          .fini = asyncplug_fini);
