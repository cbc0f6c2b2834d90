/*
 * ratelimit - a route under the built-in rate limiter (what Tornado users put in front with
 * a decorator over a dict of counters, or with nginx's limit_req).
 *
 *   GET /limited  {"message":"within the limit","client":"<address>"}; 10 requests a minute
 *                 per client, then 429 {"error":"Rate limit exceeded"} with Retry-After until
 *                 the client may come back. Every reply carries RateLimit-Limit,
 *                 RateLimit-Remaining and RateLimit-Reset.
 *
 * The handler knows nothing about the limit: the route declares .ratelimit, and `ratelimit`
 * in plugins.conf ([plugin ratelimit] or [route GET /limited]) overrides it (`off` turns it
 * off). "client" is what the limiter counts by: the peer's address, or the address a trusted
 * proxy reports ([server] trusted_proxies).
 */
#include <squall.h>

static int limited(sq_req *r)
{
    return sq_reply_json(
        r, 200, json_pack("{s:s,s:s}", "message", "within the limit", "client", sq_remote_addr(r)));
}

static const sq_route routes[] = {
    {"GET", "/limited", limited, .ratelimit = "10/60s"},
    {0},
};

SQ_PLUGIN(.name = "ratelimit", .version = "1.0.0", .routes = routes);
