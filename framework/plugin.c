/*
 * plugin.c - loading plugins (see plugin.h).
 */
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "pg.h"

struct sq_plugin_ctx *plugin_current;

/* The descriptor as the first ABI defined it: the least a plugin's size may say. */
#define PLUGIN_MIN_SIZE (offsetof(sq_plugin, fini) + sizeof(void (*)(void)))

static int check_descriptor(const sq_plugin *d, char *why, size_t len)
{
    if (d->abi_version != SQ_ABI_VERSION) {
        snprintf(why, len, "ABI mismatch: built for ABI %u, this host speaks ABI %u; rebuild it",
                 d->abi_version, SQ_ABI_VERSION);
        return -1;
    }
    /* Nothing past the size the plugin states is read. */
    if (d->size < PLUGIN_MIN_SIZE) {
        snprintf(why, len, "ABI mismatch: descriptor of %u bytes, at least %zu expected", d->size,
                 PLUGIN_MIN_SIZE);
        return -1;
    }
    if (d->route_size < offsetof(sq_route, handler) + sizeof(void *)) {
        snprintf(why, len, "ABI mismatch: routes of %u bytes", d->route_size);
        return -1;
    }
    if (!d->name || !d->routes) {
        snprintf(why, len, "descriptor has no %s", d->name ? "routes" : "name");
        return -1;
    }
    return 0;
}

/* The plugin's i-th route; routes are read with the plugin's own struct size so that
   fields appended to sq_route later keep old plugins working. */
static const sq_route *route_at(const sq_plugin *d, size_t i)
{
    return (const sq_route *)((const char *)d->routes + i * d->route_size);
}

static char *join_path(const char *mount, const char *path)
{
    size_t m = strcmp(mount, "/") == 0 ? 0 : strlen(mount);
    char *s = xmalloc(m + strlen(path) + 1);
    memcpy(s, mount, m);
    strcpy(s + m, path);
    return s;
}

static int mount_routes(struct sq_plugin_ctx *p, struct router *router, char *why, size_t len)
{
    size_t n = 0;

    while (route_at(p->desc, n)->method)
        n++;
    p->routes = xcalloc(n, sizeof(*p->routes));
    for (size_t i = 0; i < n; i++) {
        const sq_route *rt = route_at(p->desc, i);
        struct route_entry *e = &p->routes[p->nroutes];
        if (!rt->path || !rt->handler) {
            snprintf(why, len, "route %zu (%s) has no %s", i, rt->method,
                     rt->path ? "handler" : "path");
            return -1;
        }
        if (router_check_pattern(rt->path, why, len) < 0) /* before the mount hides it */
            return -1;
        char *full = join_path(p->cfg->mount, rt->path);
        char rerr[256];
        int rc = router_add(router, rt->method, full, e, rerr, sizeof(rerr));
        e->plugin = p;
        e->route = rt;
        e->label = xmalloc(strlen(rt->method) + strlen(full) + 2);
        sprintf(e->label, "%s %s", rt->method, full);
        free(full);
        p->nroutes++;
        if (rc < 0) {
            snprintf(why, len, "%s", rerr);
            return -1;
        }
    }
    return 0;
}

static int open_library(struct sq_plugin_ctx *p, char *why, size_t len)
{
    struct stat st;

    if (stat(p->path, &st) < 0) {
        snprintf(why, len, "%s", strerror(errno));
        return -1;
    }
    /* A name without '/' would make dlopen search the system's library path. */
    char *local = strchr(p->path, '/') ? NULL : join_path("./", p->path);
    p->dl = dlopen(local ? local : p->path, RTLD_NOW | RTLD_LOCAL);
    free(local);
    if (!p->dl) {
        snprintf(why, len, "not a loadable shared object: %s", dlerror());
        return -1;
    }
    p->desc = dlsym(p->dl, SQ_PLUGIN_SYMBOL);
    if (!p->desc) {
        snprintf(why, len, "no descriptor (%s): define one with SQ_PLUGIN(...)", SQ_PLUGIN_SYMBOL);
        return -1;
    }
    if (check_descriptor(p->desc, why, len) < 0)
        return -1;
    if (strcmp(p->desc->name, p->name) != 0) {
        snprintf(why, len, "descriptor names it '%s', not '%s'", p->desc->name, p->name);
        return -1;
    }
    return 0;
}

static int run_init(struct sq_plugin_ctx *p, char *why, size_t len)
{
    if (p->desc->init) {
        plugin_current = p;
        p->in_init = 1;
        int rc = p->desc->init(p);
        p->in_init = 0;
        plugin_current = NULL;
        if (rc != 0) {
            snprintf(why, len, "init failed (returned %d)", rc);
            return -1;
        }
    }
    p->initialized = 1;
    return 0;
}

struct sq_plugin_ctx *plugin_load(const struct config_plugin *cp, struct router *router, char *err,
                                  size_t errlen)
{
    struct sq_plugin_ctx *p = xcalloc(1, sizeof(*p));
    char why[512];

    p->name = xstrdup(cp->name);
    p->path = xstrdup(cp->path);
    p->cfg = cp;
    /* Routes first: a route clash is found before init has done anything. */
    if (open_library(p, why, sizeof(why)) < 0 || mount_routes(p, router, why, sizeof(why)) < 0 ||
        run_init(p, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "plugin %s (%s): %s", p->name, p->path, why);
        plugin_unload(p);
        return NULL;
    }
    log_info("plugin %s %s loaded from %s: %zu routes", p->name,
             p->desc->version ? p->desc->version : "", p->path, p->nroutes);
    return p;
}

void plugin_unload(struct sq_plugin_ctx *p)
{
    if (!p)
        return;
    pg_listen_stop_plugin(p); /* what it LISTENs to stops before fini frees its state */
    if (p->initialized && p->desc->fini) {
        plugin_current = p;
        p->desc->fini(p);
        plugin_current = NULL;
    }
    for (size_t i = 0; i < p->nroutes; i++)
        free(p->routes[i].label);
    free(p->routes);
    for (struct mw_def *d = p->middleware, *next; d; d = next) {
        next = d->next;
        free(d->name);
        free(d);
    }
    if (p->dl)
        dlclose(p->dl);
    free(p->name);
    free(p->path);
    free(p);
}

/* ---- SDK: the plugin instance ---- */

const char *sq_config_get(sq_plugin_ctx *ctx, const char *key)
{
    return ctx && ctx->cfg ? config_plugin_get(ctx->cfg, key) : NULL;
}

const char *sq_plugin_name(sq_plugin_ctx *ctx)
{
    return ctx->name;
}

void sq_plugin_set_data(sq_plugin_ctx *ctx, void *data)
{
    ctx->data = data;
}

void *sq_plugin_get_data(sq_plugin_ctx *ctx)
{
    return ctx->data;
}

void sq_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, plugin_current ? plugin_current->name : NULL, fmt, ap);
    va_end(ap);
}
