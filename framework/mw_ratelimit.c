/*
 * mw_ratelimit.c - the rate-limit link: counts each request against its key in the route's
 * zone (ratelimit.c) and answers 429 over the limit.
 *
 * Every reply of a limited route carries the numbers (the IETF RateLimit header fields
 * draft, as GitHub and Cloudflare send them): RateLimit-Limit (N), RateLimit-Remaining
 * (requests left now), RateLimit-Reset (seconds until the full allowance is back); a
 * refused one adds Retry-After (seconds until one request would be allowed). Seconds are
 * rounded up, so a client that waits as told is never refused for being early.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "async.h"
#include "middleware.h"
#include "ratelimit.h"
#include "log.h"
#include "request.h"
#include "shm.h"
#include "xalloc.h"

struct zone_params {
    uint32_t n;
    uint64_t period_ms;
    size_t max_keys;
};

static void zone_init(void *mem, void *arg)
{
    const struct zone_params *zp = arg;

    ratelimit_init(mem, zp->n, zp->period_ms, zp->max_keys);
}

struct mw_zone *mw_zone_new(unsigned host, const char *origin, uint32_t n, uint64_t period_ms,
                            size_t max_keys, const char *header)
{
    struct mw_zone *z = xcalloc(1, sizeof(*z));
    struct zone_params zp = {n, period_ms, max_keys};
    char name[SHM_NAME_MAX];

    z->origin = xstrdup(origin);
    z->n = n;
    z->period_ms = period_ms;
    z->max_keys = max_keys;
    z->header = header ? xstrdup(header) : NULL;
    /* In the host's shared region, so that all its workers count against one table; the
       name says everything the table depends on, so a changed limit gets a new one. */
    snprintf(name, sizeof(name), "rl %u %u/%llu %zu %s %s", host, n,
             (unsigned long long)period_ms, max_keys, header ? header : "-", origin);
    z->rl = shm_block(name, ratelimit_size(max_keys), zone_init, &zp);
    if (!z->rl) {
        log_warn("rate limit of %s: no room in the shared region; this process counts alone",
                 origin);
        z->rl = ratelimit_new(n, period_ms, max_keys);
    }
    snprintf(z->limit, sizeof(z->limit), "%u", n);
    return z;
}

void mw_zone_free(struct mw_zone *z)
{
    if (!z)
        return;
    ratelimit_free(z->rl);
    free(z->header);
    free(z->origin);
    free(z);
}

/* The request's key: the header's value when the zone keys on a header the request has,
   else a NUL, the family and the client's address bytes (header values hold no NUL, so
   neither can pose as the other). Sets *len; the key lives in buf or the request. */
static const char *zone_key(struct sq_req *r, const struct mw_zone *z, char *buf, size_t *len)
{
    const char *v = z->header ? sq_header(r, z->header) : NULL;
    const unsigned char *addr;

    if (v) {
        *len = strlen(v);
        return v;
    }
    int family = request_client_addr(r, &addr);
    buf[0] = '\0';
    buf[1] = (char)family;
    if (!family) { /* no address (not an IP socket): one key for all such clients */
        *len = 2;
        return buf;
    }
    memcpy(buf + 2, addr, 16);
    *len = 2 + (family == AF_INET ? 4 : 16);
    return buf;
}

/* Adds header name: ms rounded up to whole seconds (or, with ms_to_s false, n as is). */
static void add_number(struct sq_req *r, const char *name, uint64_t n, bool ms_to_s)
{
    const char *v = request_u64(r, ms_to_s ? (n + 999) / 1000 : n);

    if (v)
        request_add_header(r, name, v);
}

int mw_ratelimit_before(struct sq_req *r, void *arg)
{
    struct mw_zone *z = arg;
    char buf[18];
    size_t len;
    const char *key = zone_key(r, z, buf, &len);
    struct ratelimit_result res = ratelimit_hit(z->rl, key, len, loop_now_us(loop_current) / 1000);

    request_add_header(r, "RateLimit-Limit", z->limit);
    add_number(r, "RateLimit-Remaining", res.remaining, false);
    add_number(r, "RateLimit-Reset", res.reset_ms, true);
    if (res.allowed)
        return MW_NEXT;
    add_number(r, "Retry-After", res.retry_after_ms, true);
    request_reply_error(r, 429, "Rate limit exceeded");
    return 429;
}
