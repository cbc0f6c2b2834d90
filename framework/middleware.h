/*
 * middleware.h - the chain of links a request passes through around its handler.
 *
 * Each mounted route has a chain built from its settings (code, then [plugin], then
 * [route]) when the plugins are loaded:
 *
 *     ratelimit -> the links named by `use` (plugin-provided) -> cache -> timeout -> handler
 *
 * Inside the handler's coroutine, each link's before() runs in that order; it passes the
 * request on (MW_NEXT) or answers it and stops the chain. The plugin links come before the
 * cache so that, say, an authentication link refuses a client before a cached reply could
 * be served to it. The timeout link arms the handler's deadline last, so a request's time
 * budget is its handler's.
 *
 * Whatever reply the request gets (the handler's, a link's, or the timeout reply) passes
 * through the after() of every link that passed the request on, innermost first, just
 * before it is rendered: an after() may look at it and add headers (sq_reply_header), but
 * not reply. When the request ends, the end() of those links runs (even when there was no
 * reply because the client went away) to release what before() took.
 *
 * A chain only exists for routes with middleware; others go straight to the handler.
 */
#ifndef SQUALL_MIDDLEWARE_H
#define SQUALL_MIDDLEWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "response.h"

struct ratelimit;
struct event_base;
struct sq_req;
struct sq_plugin_ctx;
struct server;
struct config;
struct routes;

#define MW_NEXT 0 /* what before() returns to pass the request on */

struct mw_link {
    /* MW_NEXT, or (the chain stops) anything else: when it has not replied, a status from
       400 to 599 becomes that error reply and any other value a 500, as for a handler. */
    int (*before)(struct sq_req *r, void *arg);
    void (*after)(struct sq_req *r, const struct response *resp, void *arg); /* may be NULL */
    void (*end)(struct sq_req *r, void *arg);                                /* may be NULL */
    void *arg;
};

struct mw_chain {
    size_t n;
    struct mw_link links[];
};

/* A middleware a plugin provides (sq_middleware_add), on its instance's list. */
struct mw_def {
    struct mw_def *next;
    struct sq_plugin_ctx *owner;
    char *name;
    int (*before)(struct sq_req *r, void *arg);
    void (*after)(struct sq_req *r, int status, void *arg);
    void *arg;
};

/* Makes the loop's cache store (loop->cache), before the plugins load: their init may use
   sq_cache_*. */
void middleware_init(struct server *srv);

/*
 * Builds the chain of every route in t from its settings, making the rate-limit zones it
 * needs (one per section that sets ratelimit, one per route for a code-level .ratelimit;
 * kept in srv, so that a rebuilt table finds the same ones). Returns 0, or -1 with every
 * problem (a `use` naming no loaded plugin's middleware, with file:line) in err.
 */
int middleware_build(struct server *srv, struct routes *t, char *err, size_t errlen);

/* Frees the chains of t's routes. */
void middleware_free_chains(struct routes *t);

/* Frees the zones and the cache store (the host is stopping). */
void middleware_free(struct server *srv);

/* Runs the route's links before the handler: MW_NEXT, or what the stopping link returned.
   Called in the handler's coroutine. */
int middleware_before(struct sq_req *r);

/* Answers r before any coroutine exists when it can: a cache hit on a route whose chain
   starts with the cache. Returns whether r has its reply. */
bool middleware_answer_early(struct sq_req *r);

/* Runs the after() hooks on the reply about to be rendered (headers may be added). */
void middleware_after(struct sq_req *r, const struct response *resp);

/* Runs the end() hooks; the request is over. */
void middleware_end(struct sq_req *r);

/* ---- Built-in links ---- */

/* Rate limiting (mw_ratelimit.c): one zone per section (or code-level route) that sets
   ratelimit; the link's arg. Its key is the client address, or the request header named
   header when the request has it. */
struct mw_zone {
    struct mw_zone *next;
    char *origin;       /* what set it: "code GET /x", "plugin NAME", "route GET /x" */
    struct ratelimit *rl;
    uint32_t n;
    uint64_t period_ms;
    size_t max_keys;
    char *header;       /* NULL = by client address */
    char limit[12];     /* n, for RateLimit-Limit */
};

struct mw_zone *mw_zone_new(unsigned host, const char *origin, uint32_t n, uint64_t period_ms,
                            size_t max_keys, const char *header);
void mw_zone_free(struct mw_zone *z);
int mw_ratelimit_before(struct sq_req *r, void *zone);

/* The response cache (mw_cache.c): the store is per loop (loop->cache), shared with the
   plugins' sq_cache_* entries; each cached route's link has a mw_cache_route as arg. */
struct mw_cache;
struct mw_cache_route {
    struct mw_cache *mc;
    uint64_t ttl_ms;
    uint64_t lock_ms;         /* how long a miss waits for another's fill of its key */
    char *const *vary;        /* request headers that are part of the key */
    size_t nvary;
    const int *status;        /* statuses stored; NULL = 200 only */
    size_t nstatus;
};

struct mw_cache *mw_cache_new(struct event_base *base, size_t max_bytes);
void mw_cache_free(struct mw_cache *mc);
int mw_cache_before(struct sq_req *r, void *route);
void mw_cache_after(struct sq_req *r, const struct response *resp, void *route);
void mw_cache_end(struct sq_req *r, void *route);

/* Answers r from the store if its key is there, without a coroutine (conn.c tries it before
   making one, when the cache is the chain's first link); false on a miss. */
bool mw_cache_hit(struct sq_req *r, void *route);

#endif
