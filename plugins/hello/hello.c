/*
 * hello - the plugin squall serves out of the box, and the benchmark's target.
 *
 *   GET  /plaintext  Hello, World! as text/plain
 *   GET  /json       {"message":"Hello, World!"}, built afresh per request
 *   POST /echo       the request body back, with the request's Content-Type
 *   GET  /sleep?ms=N awaits N ms (0..60000) without blocking anyone, then {"slept":N}
 */
#include <squall.h>
#include <stdlib.h>

static const char hello[] = "Hello, World!";

static int plaintext(sq_req *r)
{
    return sq_reply(r, 200, "text/plain", hello, sizeof(hello) - 1);
}

static int json(sq_req *r)
{
    return sq_reply_json(r, 200, json_pack("{s:s}", "message", hello));
}

static int echo(sq_req *r)
{
    const char *type = sq_header(r, "Content-Type");
    size_t len;
    const char *body = sq_body(r, &len);

    return sq_reply(r, 200, type ? type : "application/octet-stream", body, len);
}

/* The query argument name as an integer in [lo, hi]; -1 when absent or not one. */
static long query_long(sq_req *r, const char *name, long lo, long hi)
{
    const char *s = sq_query(r, name);
    char *end;

    if (!s || *s < '0' || *s > '9')
        return -1;
    long v = strtol(s, &end, 10);
    return *end || v < lo || v > hi ? -1 : v;
}

static int sleep_ms(sq_req *r)
{
    long ms = query_long(r, "ms", 0, 60000);

    if (ms < 0)
        return sq_reply_error(r, 400, "ms must be an integer from 0 to 60000");
    int rc = sq_sleep((uint64_t)ms);
    if (rc < 0)
        return sq_reply_error(r, 503, "%s", sq_errmsg());
    return sq_reply_json(r, 200, json_pack("{s:i}", "slept", (json_int_t)ms));
}

static const sq_route routes[] = {
    {"GET", "/plaintext", plaintext},
    {"GET", "/json", json},
    {"POST", "/echo", echo},
    {"GET", "/sleep", sleep_ms},
    {0},
};

SQ_PLUGIN(.name = "hello", .version = "1.0.0", .routes = routes);
