/*
 * middleware.c - building each route's chain from its settings, and running it (see
 * middleware.h). The built-in links live in mw_ratelimit.c and mw_cache.c; the timeout
 * link is here, as it only arms the connection's handler deadline.
 */
#include "middleware.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "async.h"
#include "conn.h"
#include "log.h"
#include "ratelimit.h"
#include "request.h"
#include "routes.h"
#include "server.h"
#include "xalloc.h"

#define MW_DEFAULT_MAX_KEYS 10000 /* ratelimit_max_keys: ~3 MB per zone */
#define MW_CACHE_LOCK_MS 5000     /* a miss waits this long at most for another's fill */

/* A route's middleware settings, layered: the code's, then [plugin], then [route]. A
   list (vary, statuses, use) comes whole from the last section that set it. */
struct settings {
    uint64_t timeout_ms;
    int timeout_status;
    uint32_t rl_n;
    uint64_t rl_ms;
    const char *rl_header;
    size_t rl_max_keys;
    char rl_origin[300]; /* who set it: "code GET /x", "plugin hello", "route GET /x" */
    uint64_t cache_ms;
    const struct config_mw *vary, *status, *use;
};

/* ---- Running ---- */

int middleware_before(struct sq_req *r)
{
    const struct mw_chain *ch = r->route->chain;

    for (size_t i = 0; i < ch->n; i++) {
        int rc = ch->links[i].before(r, ch->links[i].arg);
        if (rc != MW_NEXT || r->status || r->dropped)
            return rc;
        r->mw_passed = i + 1;
    }
    return MW_NEXT;
}

bool middleware_answer_early(struct sq_req *r)
{
    const struct mw_link *first = &r->route->chain->links[0];

    return first->before == mw_cache_before && mw_cache_hit(r, first->arg);
}

void middleware_after(struct sq_req *r, const struct response *resp)
{
    const struct mw_chain *ch = r->route->chain;

    for (size_t i = r->mw_passed; i-- > 0;)
        if (ch->links[i].after)
            ch->links[i].after(r, resp, ch->links[i].arg);
}

void middleware_end(struct sq_req *r)
{
    const struct mw_chain *ch = r->route->chain;

    for (size_t i = r->mw_passed; i-- > 0;)
        if (ch->links[i].end)
            ch->links[i].end(r, ch->links[i].arg);
    r->mw_passed = 0;
}

static int timeout_before(struct sq_req *r, void *arg)
{
    conn_arm_timeout(r, r->route->timeout_ms);
    return MW_NEXT;
}

/* Makes p the plugin whose code runs (its log prefix, its sq_cache_* keys), also across
   the awaits of the running coroutine; returns the one to restore. */
static struct sq_plugin_ctx *run_as(struct sq_plugin_ctx *p)
{
    struct coro *co = coro_current();
    struct sq_plugin_ctx *prev = plugin_current;

    if (co)
        co->plugin = p;
    plugin_current = p;
    return prev;
}

/* A plugin's middleware, run as the plugin that provides it; its after sees the status. */
static int plugin_before(struct sq_req *r, void *arg)
{
    const struct mw_def *d = arg;

    if (!d->before)
        return MW_NEXT;
    struct sq_plugin_ctx *prev = run_as(d->owner);
    int rc = d->before(r, d->arg);
    run_as(prev);
    return rc;
}

static void plugin_after(struct sq_req *r, const struct response *resp, void *arg)
{
    const struct mw_def *d = arg;

    if (!d->after)
        return;
    struct sq_plugin_ctx *prev = run_as(d->owner);
    d->after(r, resp->status, d->arg);
    run_as(prev);
}

/* ---- The SDK ---- */

int sq_middleware_add(sq_plugin_ctx *ctx, const char *name, sq_before_fn before,
                      sq_after_fn after, void *arg)
{
    if (!ctx || !ctx->in_init || !name || !*name ||
        name[strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")]) {
        errmsg_set("sq_middleware_add: %s", ctx && ctx->in_init ? "bad name" : "call it from init");
        return SQ_EINVAL;
    }
    for (const struct mw_def *d = ctx->middleware; d; d = d->next)
        if (strcmp(d->name, name) == 0) {
            errmsg_set("middleware '%s' is already provided by this plugin", name);
            return SQ_EALREADY;
        }
    struct mw_def *d = xcalloc(1, sizeof(*d));
    d->owner = ctx;
    d->name = xstrdup(name);
    d->before = before;
    d->after = after;
    d->arg = arg;
    d->next = ctx->middleware;
    ctx->middleware = d;
    return 0;
}

/* ---- Building ---- */

/* Applies one section's settings over s; origin names the section. */
static void settings_apply(struct settings *s, const struct config_mw *mw, const char *origin)
{
    if (!mw)
        return;
    if (mw->line[MW_TIMEOUT])
        s->timeout_ms = mw->timeout_ms;
    if (mw->line[MW_TIMEOUT_STATUS])
        s->timeout_status = mw->timeout_status;
    if (mw->line[MW_RATELIMIT]) {
        s->rl_n = mw->ratelimit_n;
        s->rl_ms = mw->ratelimit_ms;
        snprintf(s->rl_origin, sizeof(s->rl_origin), "%s", origin);
    }
    if (mw->line[MW_RATELIMIT_KEY])
        s->rl_header = mw->ratelimit_header;
    if (mw->line[MW_RATELIMIT_MAX_KEYS])
        s->rl_max_keys = mw->ratelimit_max_keys;
    if (mw->line[MW_CACHE])
        s->cache_ms = mw->cache_ms;
    if (mw->line[MW_CACHE_VARY])
        s->vary = mw;
    if (mw->line[MW_CACHE_STATUS])
        s->status = mw;
    if (mw->line[MW_USE])
        s->use = mw;
}

/* A field appended to sq_route after the first ABI: readable only when the plugin's routes
   are that long (a plugin built before it has shorter ones). */
#define ROUTE_HAS(p, field) \
    ((p)->desc->route_size >= offsetof(sq_route, field) + sizeof(((sq_route *)0)->field))

/* The route's settings: its code's, then its plugin's section, then its route section. */
static int settings_of(struct route_entry *e, struct settings *s, char *why, size_t len)
{
    const struct sq_plugin_ctx *p = e->plugin;
    const sq_route *rt = e->route;

    *s = (struct settings){.timeout_status = 408, .rl_max_keys = MW_DEFAULT_MAX_KEYS};
    if (ROUTE_HAS(p, timeout_ms) && rt->timeout_ms > 0)
        s->timeout_ms = (uint64_t)rt->timeout_ms;
    if (ROUTE_HAS(p, ratelimit) && rt->ratelimit) {
        char err[128];
        if (ratelimit_parse(rt->ratelimit, &s->rl_n, &s->rl_ms, err, sizeof err) < 0) {
            snprintf(why, len, "%s: bad .ratelimit '%s': %s", e->label, rt->ratelimit, err);
            return -1;
        }
        snprintf(s->rl_origin, sizeof(s->rl_origin), "code %s", e->label);
    }
    if (ROUTE_HAS(p, cache_ttl_s) && rt->cache_ttl_s > 0)
        s->cache_ms = (uint64_t)rt->cache_ttl_s * 1000;
    char origin[300];
    snprintf(origin, sizeof(origin), "plugin %s", p->name);
    settings_apply(s, &p->cfg->mw, origin);
    snprintf(origin, sizeof(origin), "route %s", e->label);
    settings_apply(s, e->cfg_route, origin);
    return 0;
}

/* The zone for these settings: shared by the routes one section's ratelimit covers, and
   kept across reloads (a new build does not reset its clients' limits). */
static struct mw_zone *zone_for(struct server *srv, const struct settings *s)
{
    for (struct mw_zone *z = srv->zones; z; z = z->next)
        if (strcmp(z->origin, s->rl_origin) == 0 && z->n == s->rl_n && z->period_ms == s->rl_ms &&
            z->max_keys == s->rl_max_keys &&
            (z->header ? s->rl_header && strcmp(z->header, s->rl_header) == 0 : !s->rl_header))
            return z;
    struct mw_zone *z =
        mw_zone_new(srv->seq, s->rl_origin, s->rl_n, s->rl_ms, s->rl_max_keys, s->rl_header);
    z->next = srv->zones;
    srv->zones = z;
    return z;
}

/* The middleware named name among the loaded plugins', or NULL. */
static struct mw_def *find_def(struct server *srv, const char *name)
{
    for (size_t i = 0; i < srv->nplugins; i++)
        for (struct mw_def *d = srv->plugins[i]->middleware; d; d = d->next)
            if (strcmp(d->name, name) == 0)
                return d;
    return NULL;
}

static void add_link(struct mw_chain *ch, int (*before)(struct sq_req *, void *),
                     void (*after)(struct sq_req *, const struct response *, void *),
                     void (*end)(struct sq_req *, void *), void *arg)
{
    ch->links[ch->n++] = (struct mw_link){before, after, end, arg};
}

static struct mw_cache_route *cache_route(struct server *srv, const struct settings *s)
{
    struct mw_cache_route *cr = xcalloc(1, sizeof(*cr));

    cr->mc = srv->loop->cache;
    cr->ttl_ms = s->cache_ms;
    cr->lock_ms = s->timeout_ms && s->timeout_ms < MW_CACHE_LOCK_MS ? s->timeout_ms
                                                                     : MW_CACHE_LOCK_MS;
    if (s->vary) {
        cr->vary = s->vary->cache_vary;
        cr->nvary = s->vary->ncache_vary;
    }
    if (s->status) {
        cr->status = s->status->cache_status;
        cr->nstatus = s->status->ncache_status;
    }
    return cr;
}

/* Builds e's chain, or leaves it NULL when it has no middleware. */
static int build_route(struct server *srv, struct route_entry *e, char *err, size_t errlen)
{
    struct settings s;
    char why[512];

    if (settings_of(e, &s, why, sizeof why) < 0) {
        err_add(err, errlen, "%s:%d: plugin %s: %s", srv->cfg->file, e->plugin->cfg->line,
                e->plugin->name, why);
        return -1;
    }
    e->timeout_ms = s.timeout_ms;
    e->timeout_status = s.timeout_status;
    size_t nuse = s.use ? s.use->nuse : 0;
    if (!s.rl_n && !nuse && !s.cache_ms && !s.timeout_ms)
        return 0;
    struct mw_chain *ch = xcalloc(1, sizeof(*ch) + (3 + nuse) * sizeof(ch->links[0]));
    if (s.rl_n)
        add_link(ch, mw_ratelimit_before, NULL, NULL, zone_for(srv, &s));
    for (size_t i = 0; i < nuse; i++) {
        struct mw_def *d = find_def(srv, s.use->use[i]);
        if (d) /* else check_uses has said so */
            add_link(ch, plugin_before, plugin_after, NULL, d);
    }
    const char *m = e->route->method;
    if (s.cache_ms && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0))
        add_link(ch, mw_cache_before, mw_cache_after, mw_cache_end, cache_route(srv, &s));
    if (s.timeout_ms)
        add_link(ch, timeout_before, NULL, NULL, NULL);
    e->chain = ch;
    return 0;
}

/* Every name a section's `use` lists must be provided by a loaded plugin: one error per
   name and section (not per route it covers). */
static int check_uses(struct server *srv, const struct config_mw *mw, char *err, size_t errlen)
{
    int failed = 0;

    for (size_t i = 0; i < mw->nuse; i++)
        if (!find_def(srv, mw->use[i])) {
            err_add(err, errlen, "%s:%d: use = %s: no loaded plugin provides middleware '%s'",
                    srv->cfg->file, mw->line[MW_USE], mw->use[i], mw->use[i]);
            failed = -1;
        }
    return failed;
}

/* Two plugins providing one name would make `use` ambiguous. */
static int check_unique(struct server *srv, char *err, size_t errlen)
{
    int failed = 0;

    for (size_t i = 0; i < srv->nplugins; i++)
        for (const struct mw_def *d = srv->plugins[i]->middleware; d; d = d->next)
            for (size_t j = 0; j < i; j++)
                for (const struct mw_def *o = srv->plugins[j]->middleware; o; o = o->next)
                    if (strcmp(d->name, o->name) == 0) {
                        err_add(err, errlen, "%s:%d: plugin %s provides middleware '%s', as "
                                "plugin %s does", srv->cfg->file, srv->plugins[i]->cfg->line,
                                srv->plugins[i]->name, d->name, srv->plugins[j]->name);
                        failed = -1;
                    }
    return failed;
}

void middleware_init(struct server *srv)
{
    srv->loop->cache = mw_cache_new(srv->base, srv->cfg->cache_max_bytes);
}

int middleware_build(struct server *srv, struct routes *t, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    int failed = check_unique(srv, err, errlen);

    for (size_t i = 0; i < cfg->nplugins; i++)
        failed |= check_uses(srv, &cfg->plugins[i].mw, err, errlen);
    for (size_t i = 0; i < cfg->nroutes; i++)
        failed |= check_uses(srv, &cfg->routes[i].mw, err, errlen);
    for (size_t i = 0; i < t->nentries; i++)
        if (build_route(srv, &t->entries[i], err, errlen) < 0)
            failed = -1;
    return failed;
}

void middleware_free_chains(struct routes *t)
{
    for (size_t i = 0; i < t->nentries; i++) {
        struct mw_chain *ch = t->entries[i].chain;
        for (size_t k = 0; ch && k < ch->n; k++)
            if (ch->links[k].before == mw_cache_before)
                free(ch->links[k].arg);
        free(ch);
    }
}

void middleware_free(struct server *srv)
{
    while (srv->zones) {
        struct mw_zone *z = srv->zones;
        srv->zones = z->next;
        mw_zone_free(z);
    }
    mw_cache_free(srv->loop->cache);
    srv->loop->cache = NULL;
}
