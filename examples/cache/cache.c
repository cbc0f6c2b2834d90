/*
 * cache - two ways to avoid a slow backend: the AsyncCache pattern over sq_cache_*, and the
 * built-in HTTP response cache.
 *
 *   GET /cached?id=X  the item X (1..64 letters, digits, '-' or '_') from a slow backend (a
 *                     500 ms sq_sleep): {"data":{...},"source":"fresh"}; for the next 10
 *                     minutes the same data from the cache, at once: "source":"cache".
 *   GET /report       a report that takes 500 ms to build: {"report":...,"generated_at":T}.
 *                     Its whole reply is cached by the response cache when the config says
 *                     so (cache.conf has `cache = 30s` in [route GET /report]): X-Cache: MISS,
 *                     then HIT with Age, and the handler does not run again for 30 s.
 *
 * Config ([plugin cache]): ttl_ms = N (1..86400000, default 600000) is how long /cached keeps
 * an item.
 *
 * /cached keeps the data, not the reply: the handler still runs on every request and could
 * mix cached parts with fresh ones. The response cache keeps the reply and skips the handler
 * altogether. Both live in the same store, bounded by [server] cache_max_bytes.
 *
 * The Tornado code it mirrors:
 *
 *     class AsyncCache:
 *         async def get(self, key, fetch, ttl=600):
 *             entry = self._data.get(key)
 *             if entry and entry[1] > time.monotonic():
 *                 return entry[0], "cache"
 *             value = await fetch(key)
 *             self._data[key] = (value, time.monotonic() + ttl)
 *             return value, "fresh"
 *
 *     class CachedHandler(RequestHandler):
 *         async def get(self):
 *             data, source = await cache.get(self.get_argument("id"), fetch_item)
 *             self.write({"data": data, "source": source})
 */
#include <squall.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKEND_MS 500              /* what a fetch from the "backend" takes */
#define TTL_MS_DEFAULT (600 * 1000) /* 10 minutes */
#define TTL_MS_MAX (86400 * 1000)
#define ID_MAX 64
#define ID_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

/* How long /cached keeps an item, from init. */
struct settings {
    uint64_t ttl_ms;
};

static bool id_ok(const char *id)
{
    size_t n = strlen(id);

    return n >= 1 && n <= ID_MAX && id[strspn(id, ID_CHARS)] == '\0';
}

/* The slow backend: awaits BACKEND_MS, then the item. NULL when the wait was cut short (the
   client went away) or out of memory. A new reference. */
static json_t *fetch_item(sq_req *r, const char *id)
{
    if (sq_sleep(BACKEND_MS) < 0)
        return NULL;
    return json_pack("{s:s,s:s,s:I}", "id", id, "name", sq_printf(r, "Item %s", id), "fetched_at",
                     (json_int_t)time(NULL));
}

/* Keeps data under key for ttl_ms, as compact JSON text: the store keeps bytes, so what comes
   back is a copy, never a pointer into another request's memory. Failing to store is only a
   warning: the next request fetches again. */
static void store(const char *key, const json_t *data, uint64_t ttl_ms)
{
    char *text = json_dumps(data, JSON_COMPACT);

    if (!text || sq_cache_set(key, text, strlen(text), ttl_ms) < 0)
        sq_log(SQ_LOG_WARN, "%s not cached: %s", key, text ? sq_errmsg() : "out of memory");
    free(text);
}

/* {"data": data, "source": source}; steals data. */
static int reply_item(sq_req *r, json_t *data, const char *source)
{
    return sq_reply_json(r, 200, json_pack("{s:o,s:s}", "data", data, "source", source));
}

static int get_cached(sq_req *r)
{
    const struct settings *set = sq_plugin_get_data(sq_req_plugin(r));
    const char *id = sq_query(r, "id");
    size_t len;

    if (!id || !id_ok(id))
        return sq_reply_error(r, 400, "id must be 1 to %d letters, digits, '-' or '_'", ID_MAX);
    const char *key = sq_printf(r, "item:%s", id);
    if (!key)
        return 503;
    const char *hit = sq_cache_get(key, &len);
    json_t *data = hit ? json_loadb(hit, len, 0, NULL) : NULL;
    if (data)
        return reply_item(r, data, "cache");
    data = fetch_item(r, id);
    if (!data)
        return 503; /* a reply to a client that went away is dropped anyway */
    store(key, data, set->ttl_ms);
    return reply_item(r, data, "fresh");
}

static int get_report(sq_req *r)
{
    if (sq_sleep(BACKEND_MS) < 0)
        return 503;
    return sq_reply_json(r, 200,
                         json_pack("{s:s,s:{s:i,s:i},s:I}", "report", "orders by region", "regions",
                                   "north", 120, "south", 95, "generated_at",
                                   (json_int_t)time(NULL)));
}

/* ---- Lifecycle ---- */

/* ttl_ms from the config: TTL_MS_DEFAULT when absent; 0 (logged) when bad. */
static uint64_t config_ttl_ms(sq_plugin_ctx *ctx)
{
    const char *v = sq_config_get(ctx, "ttl_ms");
    char *end;

    if (!v)
        return TTL_MS_DEFAULT;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || n < 1 || n > TTL_MS_MAX) { /* no sign, no blank */
        sq_log(SQ_LOG_ERROR, "ttl_ms = %s: must be an integer from 1 to %d", v, TTL_MS_MAX);
        return 0;
    }
    return n;
}

static int init(sq_plugin_ctx *ctx)
{
    uint64_t ttl_ms = config_ttl_ms(ctx);
    struct settings *set = ttl_ms ? malloc(sizeof(*set)) : NULL;

    if (!set) {
        if (ttl_ms)
            sq_log(SQ_LOG_ERROR, "out of memory");
        return -1;
    }
    set->ttl_ms = ttl_ms;
    sq_plugin_set_data(ctx, set);
    return 0;
}

static void fini(sq_plugin_ctx *ctx)
{
    free(sq_plugin_get_data(ctx));
}

static const sq_route routes[] = {
    {"GET", "/cached", get_cached},
    {"GET", "/report", get_report},
    {0},
};

SQ_PLUGIN(.name = "cache", .version = "1.0.0", .routes = routes, .init = init, .fini = fini);
