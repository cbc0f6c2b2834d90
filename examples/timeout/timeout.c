/*
 * timeout - a handler under the timeout middleware (Tornado's asyncio.wait_for).
 *
 *   GET /timeout?duration=S  sleeps S seconds (0..60, decimals allowed) under a 5 s timeout:
 *                            {"message":"Completed after S seconds"}, or 408
 *                            {"error":"Request timeout"} once 5 s have passed.
 *
 * The route declares .timeout_ms; `timeout = ...` in plugins.conf ([plugin timeout] or
 * [route GET /timeout]) overrides it, and `timeout_status` changes the 408.
 */
#include <squall.h>
#include <stdlib.h>

static int slow(sq_req *r)
{
    const char *arg = sq_query(r, "duration");
    char *end;
    double s = arg ? strtod(arg, &end) : -1;

    if (!arg || !*arg || *end || !(s >= 0 && s <= 60))
        return sq_reply_error(r, 400, "duration must be a number of seconds from 0 to 60");
    if (sq_sleep((uint64_t)(s * 1000)) < 0) /* SQ_ETIMEDOUT: the client already has its 408 */
        return 0;
    return sq_reply_json(r, 200, json_pack("{s:s}", "message",
                                           sq_printf(r, "Completed after %s seconds", arg)));
}

static const sq_route routes[] = {
    {"GET", "/timeout", slow, .timeout_ms = 5000},
    {0},
};

SQ_PLUGIN(.name = "timeout", .version = "1.0.0", .routes = routes);
