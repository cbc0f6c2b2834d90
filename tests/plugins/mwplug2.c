/*
 * mwplug2 - a second plugin for tests/integration/check_middleware.c: the same sq_cache_*
 * routes as mwplug, to show each plugin's keys are its own, and a middleware of the name
 * the config gives.
 *
 *   PUT    /kv/{key}?ttl=MS  sq_cache_set(key, body, MS) (default 60000): "stored", or 400
 *   GET    /kv/{key}         sq_cache_get: the value, or 404 with sq_errmsg()
 *   DELETE /kv/{key}         sq_cache_del: "deleted", or 404
 *   DELETE /kv               sq_cache_clear: "cleared"
 *
 * Config ([plugin mwplug2]): middleware = NAME registers a middleware NAME that passes every
 * request on, counting them in this plugin's sq_cache entry "tag-hits" (X-Mw2-Hits: N), and
 * adds X-Mw2-Status: <status> and X-Mw2-Cache: ok (its sq_cache_set of "tag-status" worked)
 * to its replies. NAME = auth clashes with mwplug's, which the host refuses at start.
 */
#include <squall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TTL_DEFAULT_MS 60000

static int kv_put(sq_req *r)
{
    const char *t = sq_query(r, "ttl");
    size_t len;
    const char *body = sq_body(r, &len);
    uint64_t ttl = t ? strtoull(t, NULL, 10) : TTL_DEFAULT_MS;

    if (sq_cache_set(sq_param(r, "key"), body, body ? len : 0, ttl) < 0)
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

/* Counts the requests it passes on in this plugin's sq_cache entry "tag-hits" and says the
   count in X-Mw2-Hits. */
static int tag_before(sq_req *r, void *arg)
{
    const char *v = sq_cache_get("tag-hits", NULL);
    char n[24];

    snprintf(n, sizeof(n), "%ld", v ? atol(v) + 1 : 1);
    if (sq_cache_set("tag-hits", n, strlen(n), TTL_DEFAULT_MS) < 0)
        return sq_reply_error(r, 500, "tag: %s", sq_errmsg());
    sq_reply_header(r, "X-Mw2-Hits", n);
    return SQ_NEXT;
}

/* Adds X-Mw2-Status: <status>, and X-Mw2-Cache: "ok" when it could keep the status in the
   entry "tag-status" (or why not). */
static void tag_after(sq_req *r, int status, void *arg)
{
    char v[16];

    snprintf(v, sizeof(v), "%d", status);
    sq_reply_header(r, "X-Mw2-Status", v);
    sq_reply_header(r, "X-Mw2-Cache",
                    sq_cache_set("tag-status", v, strlen(v), TTL_DEFAULT_MS) == 0 ? "ok"
                                                                                  : sq_errmsg());
}

static int init(sq_plugin_ctx *ctx)
{
    const char *name = sq_config_get(ctx, "middleware");

    if (name && sq_middleware_add(ctx, name, tag_before, tag_after, NULL) < 0) {
        sq_log(SQ_LOG_ERROR, "middleware = %s: %s", name, sq_errmsg());
        return -1;
    }
    return 0;
}

static const sq_route routes[] = {
    {"PUT", "/kv/{key}", kv_put},
    {"GET", "/kv/{key}", kv_get},
    {"DELETE", "/kv/{key}", kv_del},
    {"DELETE", "/kv", kv_clear},
    {0},
};

SQ_PLUGIN(.name = "mwplug2", .version = "1.0.0", .routes = routes, .init = init);
