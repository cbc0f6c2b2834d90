/*
 * mwplug - routes for tests/integration/check_middleware.c: handlers that count their runs,
 * for the rate limiter, the response cache and the timeout around them, a middleware of its
 * own, and the sq_cache_* API.
 *
 *   GET  /count[?pad=N]      {"run":R} (R: how many times this route has run, this one
 *                            included), with "pad": N 'x's when asked (0..1000000); adds
 *                            X-Handler: mwplug
 *   GET  /ping               "pong", not counted
 *   GET  /nostore            {"run":R} with Cache-Control: no-store
 *   GET  /private            {"run":R} with Cache-Control: private, max-age=60
 *   GET  /cookie             {"run":R} with Set-Cookie: session=R
 *   GET  /status/{code:int}  {"error":"status CODE, run R"} with status CODE (400..599)
 *   GET  /slow?ms=N          sleeps N ms (0..60000), then {"run":R}. When the sleep times out
 *                            it counts slow_timedout and replies anyway, counting
 *                            slow_late_refused when that late reply is refused (it must be)
 *   GET  /addr               the address sq_remote_addr reports, as text
 *   GET  /auth               {"run":R}; for `use = auth`
 *   GET  /code-rl            {"run":R}; .ratelimit = "2/60s" in the code
 *   GET  /code-cache         {"run":R}; .cache_ttl_s = 60 in the code
 *   POST /post               {"run":R}; .cache_ttl_s = 60 in the code
 *   GET  /runs/{name}        how many times name (a route above, or a counter) ran, as text
 *   PUT    /kv/{key}?ttl=MS  sq_cache_set(key, body, MS) (default 60000): "stored", or 400
 *   GET    /kv/{key}         sq_cache_get: the value, or 404 with sq_errmsg()
 *   DELETE /kv/{key}         sq_cache_del: "deleted", or 404
 *   DELETE /kv               sq_cache_clear: "cleared"
 *
 * Middleware "auth" (sq_middleware_add in init): before refuses with 401 unless the request
 * has X-Token: secret (counting auth_refused); after adds X-Auth-Status: <status> to every
 * reply it sees. init also stores "boot" = "init" with sq_cache_set, to show the API works
 * there.
 */
#include <squall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAD_MAX 1000000
#define TTL_DEFAULT_MS 60000

enum counter {
    C_COUNT,
    C_NOSTORE,
    C_PRIVATE,
    C_COOKIE,
    C_STATUS,
    C_SLOW,
    C_SLOW_TIMEDOUT,
    C_SLOW_LATE_REFUSED,
    C_AUTH,
    C_AUTH_REFUSED,
    C_AUTH_AFTER,
    C_CODE_RL,
    C_CODE_CACHE,
    C_POST,
    NCOUNTERS
};

static const char *const counter_names[NCOUNTERS] = {
    [C_COUNT] = "count",
    [C_NOSTORE] = "nostore",
    [C_PRIVATE] = "private",
    [C_COOKIE] = "cookie",
    [C_STATUS] = "status",
    [C_SLOW] = "slow",
    [C_SLOW_TIMEDOUT] = "slow_timedout",
    [C_SLOW_LATE_REFUSED] = "slow_late_refused",
    [C_AUTH] = "auth",
    [C_AUTH_REFUSED] = "auth_refused",
    [C_AUTH_AFTER] = "auth_after",
    [C_CODE_RL] = "code-rl",
    [C_CODE_CACHE] = "code-cache",
    [C_POST] = "post",
};

/* The instance's counters, made by init and freed by fini. */
static long *counters(sq_req *r)
{
    return sq_plugin_get_data(sq_req_plugin(r));
}

/* Counts a run of c; returns how many there have been. */
static long count(sq_req *r, enum counter c)
{
    return ++counters(r)[c];
}

static int reply_run(sq_req *r, long run)
{
    return sq_reply_json(r, 200, json_pack("{s:I}", "run", (json_int_t)run));
}

/* The query argument name as an integer in [0, max]; dflt when absent, -1 when not one. */
static long query_long(sq_req *r, const char *name, long max, long dflt)
{
    const char *s = sq_query(r, name);
    char *end;

    if (!s)
        return dflt;
    if (*s < '0' || *s > '9')
        return -1;
    long v = strtol(s, &end, 10);
    return *end || v > max ? -1 : v;
}

/* ---- Routes for the response cache and the rate limiter ---- */

static int get_count(sq_req *r)
{
    long pad = query_long(r, "pad", PAD_MAX, 0);
    long run = count(r, C_COUNT);

    if (pad < 0)
        return sq_reply_error(r, 400, "pad must be an integer from 0 to %d", PAD_MAX);
    char *p = sq_alloc(r, (size_t)pad + 1);
    if (!p)
        return 503;
    memset(p, 'x', (size_t)pad);
    p[pad] = '\0';
    sq_reply_header(r, "X-Handler", "mwplug");
    if (!pad)
        return reply_run(r, run);
    return sq_reply_json(r, 200, json_pack("{s:I,s:s}", "run", (json_int_t)run, "pad", p));
}

static int ping(sq_req *r)
{
    return sq_reply(r, 200, "text/plain", "pong", 4);
}

static int nostore(sq_req *r)
{
    sq_reply_header(r, "Cache-Control", "no-store");
    return reply_run(r, count(r, C_NOSTORE));
}

static int private_(sq_req *r)
{
    sq_reply_header(r, "Cache-Control", "private, max-age=60");
    return reply_run(r, count(r, C_PRIVATE));
}

static int cookie(sq_req *r)
{
    long run = count(r, C_COOKIE);

    sq_reply_header(r, "Set-Cookie", sq_printf(r, "session=%ld", run));
    return reply_run(r, run);
}

static int status(sq_req *r)
{
    int64_t code = sq_param_int(r, "code");
    long run = count(r, C_STATUS);

    if (code < 400 || code > 599)
        return sq_reply_error(r, 400, "code must be from 400 to 599");
    return sq_reply_error(r, (int)code, "status %d, run %ld", (int)code, run);
}

static int slow(sq_req *r)
{
    long ms = query_long(r, "ms", 60000, 0);
    long *c = counters(r);

    if (ms < 0)
        return sq_reply_error(r, 400, "ms must be an integer from 0 to 60000");
    long run = ++c[C_SLOW];
    int rc = sq_sleep((uint64_t)ms);
    if (rc == SQ_ETIMEDOUT) {
        c[C_SLOW_TIMEDOUT]++;
        if (reply_run(r, run) < 0) /* the client has its timeout reply: this one is refused */
            c[C_SLOW_LATE_REFUSED]++;
        return 0;
    }
    return rc < 0 ? rc : reply_run(r, run);
}

static int addr(sq_req *r)
{
    const char *a = sq_remote_addr(r);

    return a ? sq_reply(r, 200, "text/plain", a, strlen(a)) : 503;
}

static int auth(sq_req *r)
{
    return reply_run(r, count(r, C_AUTH));
}

static int code_rl(sq_req *r)
{
    return reply_run(r, count(r, C_CODE_RL));
}

static int code_cache(sq_req *r)
{
    return reply_run(r, count(r, C_CODE_CACHE));
}

static int post(sq_req *r)
{
    return reply_run(r, count(r, C_POST));
}

static int runs(sq_req *r)
{
    const char *name = sq_param(r, "name");

    for (int i = 0; i < NCOUNTERS; i++)
        if (strcmp(name, counter_names[i]) == 0) {
            char *n = sq_printf(r, "%ld", counters(r)[i]);
            return n ? sq_reply(r, 200, "text/plain", n, strlen(n)) : 503;
        }
    return sq_reply_error(r, 404, "no counter %s", name);
}

/* ---- sq_cache_* ---- */

static int kv_put(sq_req *r)
{
    long ttl = query_long(r, "ttl", 86400000, TTL_DEFAULT_MS);
    size_t len;
    const char *body = sq_body(r, &len);

    if (ttl < 0)
        return sq_reply_error(r, 400, "ttl must be a number of milliseconds");
    if (sq_cache_set(sq_param(r, "key"), body, body ? len : 0, (uint64_t)ttl) < 0)
        return sq_reply_error(r, 400, "%s", sq_errmsg());
    return sq_reply(r, 200, "text/plain", "stored", 6);
}

static int kv_get(sq_req *r)
{
    size_t len;
    const void *v = sq_cache_get(sq_param(r, "key"), &len);

    if (!v)
        return sq_reply_error(r, 404, "%s", sq_errmsg());
    return sq_reply(r, 200, "application/octet-stream", v, len);
}

static int kv_del(sq_req *r)
{
    if (sq_cache_del(sq_param(r, "key")) < 0)
        return sq_reply_error(r, 404, "%s", sq_errmsg());
    return sq_reply(r, 200, "text/plain", "deleted", 7);
}

static int kv_clear(sq_req *r)
{
    sq_cache_clear();
    return sq_reply(r, 200, "text/plain", "cleared", 7);
}

/* ---- The "auth" middleware ---- */

static int auth_before(sq_req *r, void *arg)
{
    const char *token = sq_header(r, "X-Token");
    long *c = arg;

    if (token && strcmp(token, "secret") == 0)
        return SQ_NEXT;
    c[C_AUTH_REFUSED]++;
    return 401;
}

static void auth_after(sq_req *r, int st, void *arg)
{
    char v[16];
    long *c = arg;

    c[C_AUTH_AFTER]++;
    snprintf(v, sizeof(v), "%d", st);
    sq_reply_header(r, "X-Auth-Status", v);
}

/* ---- Lifecycle ---- */

static int init(sq_plugin_ctx *ctx)
{
    long *c = calloc(NCOUNTERS, sizeof(*c));

    if (!c) {
        sq_log(SQ_LOG_ERROR, "out of memory");
        return -1;
    }
    if (sq_middleware_add(ctx, "auth", auth_before, auth_after, c) < 0 ||
        sq_cache_set("boot", "init", 4, 3600 * 1000) < 0) {
        sq_log(SQ_LOG_ERROR, "init: %s", sq_errmsg());
        free(c);
        return -1;
    }
    sq_plugin_set_data(ctx, c);
    return 0;
}

static void fini(sq_plugin_ctx *ctx)
{
    free(sq_plugin_get_data(ctx));
}

static const sq_route routes[] = {
    {"GET", "/count", get_count},
    {"GET", "/ping", ping},
    {"GET", "/nostore", nostore},
    {"GET", "/private", private_},
    {"GET", "/cookie", cookie},
    {"GET", "/status/{code:int}", status},
    {"GET", "/slow", slow},
    {"GET", "/addr", addr},
    {"GET", "/auth", auth},
    {"GET", "/code-rl", code_rl, .ratelimit = "2/60s"},
    {"GET", "/code-cache", code_cache, .cache_ttl_s = 60},
    {"POST", "/post", post, .cache_ttl_s = 60},
    {"GET", "/runs/{name}", runs},
    {"PUT", "/kv/{key}", kv_put},
    {"GET", "/kv/{key}", kv_get},
    {"DELETE", "/kv/{key}", kv_del},
    {"DELETE", "/kv", kv_clear},
    {0},
};

SQ_PLUGIN(.name = "mwplug", .version = "1.0.0", .routes = routes, .init = init, .fini = fini);
