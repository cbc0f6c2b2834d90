/*
 * mw_cache.c - the response-cache link and the plugins' sq_cache_* API, over one store per
 * loop (cache.c).
 *
 * A cached route's GET (or HEAD) request is looked up under its key: "R", then GET (a HEAD
 * is served from, and fills, the GET entry, as nginx's proxy_cache_convert_head does), the
 * Host, the path and query, and the value of each cache_vary header. A hit is answered from
 * the store with Age and "X-Cache: HIT", without running the handler. On a miss the request
 * goes on with "X-Cache: MISS", and its reply is stored when its status is one of the route's
 * (200 by default) unless the handler said Cache-Control: no-store or private ("X-Cache:
 * BYPASS") or set a cookie.
 *
 * Single flight: the first miss for a key holds a flight; the misses for that key that come
 * while it runs wait on it (at most lock_ms) instead of running the handler too, then take
 * the stored reply. When the first one's reply could not be stored (an error, no-store),
 * they all run the handler themselves: nothing would be gained by queuing them one by one.
 *
 * A stored reply is: struct stored, the Content-Type and the headers the handler added
 * (name and value, each NUL-terminated, newest first as the request keeps them), the body.
 * Headers that links before the cache added (RateLimit-*) are not part of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "async.h"
#include "cache.h"
#include "middleware.h"
#include "plugin.h"
#include "request.h"
#include "siphash.h"
#include "xalloc.h"

#define FLIGHT_BUCKETS 256
#define SWEEP_MS 1000     /* expired entries are swept this often ... */
#define SWEEP_MAX 10000   /* ... this many at most per sweep, so a sweep never stalls the loop */
#define FILLED 1          /* what a flight's waiters are woken with: the reply is stored */
#define NOT_FILLED 2      /* it could not be */
#define LOCK_TIMEOUT 3    /* the wait took too long */

struct flight {
    struct flight *next;
    uint64_t hash;
    char *key;
    size_t len;
    struct wait_list waiters;
};

struct mw_cache {
    struct cache *store;
    struct event sweep;
    struct flight *flights[FLIGHT_BUCKETS];
    uint64_t seed[2];
};

/* A cached route's request, in its arena. */
struct cache_req {
    char *key;
    size_t len;
    struct flight *flight;                 /* held until the reply or the request's end */
    const struct response_header *mark;    /* r->headers before the handler added any */
    struct response_header *xcache;        /* "X-Cache: MISS", which may become BYPASS */
};

struct stored {
    uint32_t status, nheaders;
    uint64_t body_len;
};

static uint64_t now_ms(void)
{
    return loop_now_us(loop_current) / 1000;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct mw_cache *mc = arg;

    cache_sweep(mc->store, now_ms(), SWEEP_MAX);
}

struct mw_cache *mw_cache_new(struct event_base *base, size_t max_bytes)
{
    struct mw_cache *mc = xcalloc(1, sizeof(*mc));
    struct timeval tv = {SWEEP_MS / 1000, 0};

    mc->store = cache_new(max_bytes);
    siphash_seed(mc->seed);
    event_assign(&mc->sweep, base, -1, EV_PERSIST, on_sweep, mc);
    event_add(&mc->sweep, &tv);
    return mc;
}

void mw_cache_free(struct mw_cache *mc)
{
    if (!mc)
        return;
    event_del(&mc->sweep);
    cache_free(mc->store);
    free(mc); /* no flights are left: they end with their requests */
}

/* ---- Flights ---- */

static struct flight **flight_slot(struct mw_cache *mc, const char *key, size_t len,
                                   uint64_t *hash)
{
    *hash = siphash13(mc->seed, key, len);
    struct flight **f = &mc->flights[*hash % FLIGHT_BUCKETS];
    while (*f && ((*f)->hash != *hash || (*f)->len != len || memcmp((*f)->key, key, len) != 0))
        f = &(*f)->next;
    return f;
}

/* Ends st's flight: its waiters wake with FILLED or NOT_FILLED. */
static void flight_end(struct mw_cache *mc, struct cache_req *st, bool filled)
{
    struct flight *f = st->flight;
    uint64_t hash;
    struct coro_wait *w;

    if (!f)
        return;
    *flight_slot(mc, f->key, f->len, &hash) = f->next;
    while ((w = wait_list_pop(&f->waiters)))
        coro_wake(w, filled ? FILLED : NOT_FILLED);
    free(f->key);
    free(f);
    st->flight = NULL;
}

/* ---- The link ---- */

static char *put(char *p, const char *s, size_t n)
{
    if (n) /* s may be NULL then */
        memcpy(p, s, n);
    return p + n;
}

/* The request's key in its arena; NULL when out of memory. */
static char *request_key(struct sq_req *r, const struct mw_cache_route *cr, size_t *len)
{
    const struct http1_request *h = r->http;
    const char *host = sq_header(r, "Host"), *vary[CONFIG_LIST_MAX];
    size_t hlen = host ? strlen(host) : 0, vlen[CONFIG_LIST_MAX];
    size_t n = 5 + hlen + 1 + h->path_len + 1 + h->query_len;

    for (size_t i = 0; i < cr->nvary; i++) {
        vary[i] = sq_header(r, cr->vary[i]);
        vlen[i] = vary[i] ? strlen(vary[i]) : 0;
        n += 2 + vlen[i];
    }
    char *key = arena_alloc(r->arena, n), *p = key;
    if (!key)
        return NULL;
    p = put(p, "RGET", 5); /* with its NUL */
    p = put(p, host, hlen);
    *p++ = '\0';
    p = put(p, h->path, h->path_len);
    if (h->query) {
        *p++ = '?';
        p = put(p, h->query, h->query_len);
    }
    for (size_t i = 0; i < cr->nvary; i++) { /* absent and empty differ: "\0-" vs "\0+" */
        *p++ = '\0';
        *p++ = vary[i] ? '+' : '-';
        p = put(p, vary[i], vlen[i]);
    }
    *len = (size_t)(p - key);
    return key;
}

/* Answers r from the store if its key is there. */
static bool serve_hit(struct sq_req *r, struct mw_cache *mc, const struct cache_req *st)
{
    size_t len;
    uint64_t age_ms;
    const char *v = cache_get(mc->store, st->key, st->len, now_ms(), &len, &age_ms), *copy = v;
    struct stored s;

    if (!v)
        return false;
    if (r->mw_passed) { /* an after hook of another link may change the store meanwhile */
        char *c = arena_alloc(r->arena, len);
        if (!c)
            return false;
        copy = memcpy(c, v, len);
    }
    memcpy(&s, copy, sizeof(s));
    const char *p = copy + sizeof(s), *ctype = p;
    p += strlen(p) + 1;
    struct response_header *hs =
        s.nheaders ? arena_alloc(r->arena, s.nheaders * sizeof(*hs)) : NULL;
    if (s.nheaders && !hs)
        return false;
    for (uint32_t i = 0; i < s.nheaders; i++) {
        hs[i].name = p;
        p += strlen(p) + 1;
        hs[i].value = p;
        p += strlen(p) + 1;
        hs[i].next = i + 1 < s.nheaders ? &hs[i + 1] : r->headers;
    }
    if (s.nheaders)
        r->headers = hs;
    const char *age = age_ms < 1000 ? "0" : request_u64(r, age_ms / 1000);
    if (age)
        request_add_header(r, "Age", age);
    request_add_header(r, "X-Cache", "HIT");
    sq_reply(r, (int)s.status, *ctype ? ctype : NULL, p, s.body_len);
    return true;
}

/* The request's state, its key made (once: mw_cache_hit may have made it already). */
static struct cache_req *request_state(struct sq_req *r, const struct mw_cache_route *cr)
{
    struct cache_req *st = r->mw_cache;

    if (st)
        return st;
    st = arena_alloc(r->arena, sizeof(*st));
    if (!st || !(st->key = request_key(r, cr, &st->len)))
        return NULL;
    st->flight = NULL;
    return r->mw_cache = st;
}

bool mw_cache_hit(struct sq_req *r, void *arg)
{
    const struct mw_cache_route *cr = arg;
    struct cache_req *st = request_state(r, cr);

    return st && serve_hit(r, cr->mc, st);
}

int mw_cache_before(struct sq_req *r, void *arg)
{
    const struct mw_cache_route *cr = arg;
    struct mw_cache *mc = cr->mc;
    struct cache_req *st = request_state(r, cr);
    uint64_t hash;

    r->mw_cache = NULL; /* set again once it passes the request on */
    if (!st)
        return MW_NEXT; /* out of memory: served uncached */
    if (serve_hit(r, mc, st))
        return 0;
    struct flight **slot = flight_slot(mc, st->key, st->len, &hash);
    if (*slot) { /* another request is filling this key: wait for it */
        struct coro_wait w = {0};
        wait_list_push(&(*slot)->waiters, &w);
        int rc = coro_park(&w, (int64_t)cr->lock_ms, LOCK_TIMEOUT);
        if (rc < 0)
            return rc; /* cancelled: the client is gone */
        if (rc == FILLED && serve_hit(r, mc, st))
            return 0;
    } else {
        struct flight *f = xcalloc(1, sizeof(*f));
        f->hash = hash;
        f->key = xmalloc(st->len);
        memcpy(f->key, st->key, st->len);
        f->len = st->len;
        *slot = f;
        st->flight = f;
    }
    request_add_header(r, "X-Cache", "MISS");
    st->xcache = r->headers;
    st->mark = r->headers;
    r->mw_cache = st;
    return MW_NEXT;
}

static bool status_cached(const struct mw_cache_route *cr, int status)
{
    if (!cr->status)
        return status == 200;
    for (size_t i = 0; i < cr->nstatus; i++)
        if (cr->status[i] == status)
            return true;
    return false;
}

/* Whether the headers the handler added allow storing the reply: no Cache-Control no-store
   or private, no Set-Cookie (a cookie is one client's). */
static bool storable(const struct cache_req *st, const struct sq_req *r, bool *bypass)
{
    for (const struct response_header *h = r->headers; h != st->mark; h = h->next) {
        if (strcasecmp(h->name, "Set-Cookie") == 0)
            return false;
        if (strcasecmp(h->name, "Cache-Control") == 0 &&
            (strcasestr(h->value, "no-store") || strcasestr(h->value, "private"))) {
            *bypass = true;
            return false;
        }
    }
    return true;
}

/* 0 when the reply is stored, -1 when the store refused it (too large). */
static int store(struct mw_cache *mc, const struct mw_cache_route *cr, const struct cache_req *st,
                 const struct sq_req *r, const struct response *resp)
{
    const char *ctype = resp->content_type ? resp->content_type : "";
    struct stored s = {.status = (uint32_t)resp->status, .body_len = resp->len};
    size_t n = sizeof(s) + strlen(ctype) + 1 + resp->len;

    for (const struct response_header *h = r->headers; h != st->mark; h = h->next) {
        n += strlen(h->name) + strlen(h->value) + 2;
        s.nheaders++;
    }
    char *blob = xmalloc(n), *p = blob + sizeof(s);
    memcpy(blob, &s, sizeof(s));
    p = stpcpy(p, ctype) + 1;
    for (const struct response_header *h = r->headers; h != st->mark; h = h->next) {
        p = stpcpy(p, h->name) + 1;
        p = stpcpy(p, h->value) + 1;
    }
    if (resp->len)
        memcpy(p, resp->body, resp->len);
    int rc = cache_set(mc->store, st->key, st->len, blob, n, cr->ttl_ms, now_ms());
    free(blob);
    return rc;
}

void mw_cache_after(struct sq_req *r, const struct response *resp, void *arg)
{
    const struct mw_cache_route *cr = arg;
    struct cache_req *st = r->mw_cache;
    bool bypass = false, stored = false;

    if (!st)
        return;
    if (storable(st, r, &bypass) && status_cached(cr, resp->status))
        stored = store(cr->mc, cr, st, r, resp) == 0;
    if (bypass)
        st->xcache->value = "BYPASS";
    flight_end(cr->mc, st, stored);
}

void mw_cache_end(struct sq_req *r, void *arg)
{
    const struct mw_cache_route *cr = arg;

    if (r->mw_cache) /* no reply (the client went away): the waiters go on without one */
        flight_end(cr->mc, r->mw_cache, false);
}

/* ---- sq_cache_* ---- */

/* The running plugin's key for key in buf[0..cap): "P", its name, NUL, key. NULL (with the
   error set) when no plugin runs or no store exists, else its store in *mc. */
static char *plugin_key(const char *key, char *buf, size_t cap, size_t *len, struct mw_cache **mc)
{
    const struct sq_plugin_ctx *p = plugin_current;

    *mc = loop_current ? loop_current->cache : NULL;
    if (!key || !p || !*mc) {
        errmsg_set("sq_cache: %s", !key ? "no key" : "call it from a plugin's code on the loop");
        return NULL;
    }
    int n = snprintf(buf, cap, "P%s%c%s", p->name, 0, key);
    if (n < 0 || (size_t)n >= cap) {
        errmsg_set("sq_cache: key too long");
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

int sq_cache_set(const char *key, const void *value, size_t len, uint64_t ttl_ms)
{
    char buf[1024];
    size_t n;
    struct mw_cache *mc;

    if (!plugin_key(key, buf, sizeof(buf), &n, &mc))
        return SQ_EINVAL;
    if ((len && !value) || ttl_ms == 0 ||
        cache_set(mc->store, buf, n, value, len, ttl_ms, now_ms()) < 0) {
        errmsg_set("sq_cache_set: %s", ttl_ms == 0 ? "ttl_ms is 0" : "bad value or too large");
        return SQ_EINVAL;
    }
    return 0;
}

const void *sq_cache_get(const char *key, size_t *len)
{
    char buf[1024];
    size_t n, vlen;
    struct mw_cache *mc;
    struct arena *a = coro_arena();

    if (!a) {
        errmsg_set("sq_cache_get: call it from a coroutine");
        return NULL;
    }
    if (!plugin_key(key, buf, sizeof(buf), &n, &mc))
        return NULL;
    const void *v = cache_get(mc->store, buf, n, now_ms(), &vlen, NULL);
    if (!v) {
        errmsg_set("sq_cache_get: no entry for '%s'", key);
        return NULL;
    }
    char *copy = arena_alloc(a, vlen + 1);
    if (!copy) {
        errmsg_set("out of memory");
        return NULL;
    }
    memcpy(copy, v, vlen);
    copy[vlen] = '\0';
    if (len)
        *len = vlen;
    return copy;
}

int sq_cache_del(const char *key)
{
    char buf[1024];
    size_t n;
    struct mw_cache *mc;

    if (!plugin_key(key, buf, sizeof(buf), &n, &mc))
        return SQ_EINVAL;
    if (cache_del(mc->store, buf, n) < 0) {
        errmsg_set("sq_cache_del: no entry for '%s'", key);
        return SQ_EINVAL;
    }
    return 0;
}

void sq_cache_clear(void)
{
    char buf[1024];
    size_t n;
    struct mw_cache *mc;

    if (plugin_key("", buf, sizeof(buf), &n, &mc))
        cache_del_prefix(mc->store, buf, n);
}
