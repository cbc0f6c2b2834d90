/*
 * routes.c - building and retiring routing tables (see routes.h).
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "middleware.h"
#include "plugin.h"
#include "server.h"
#include "xalloc.h"

static char *join_path(const char *mount, const char *path)
{
    size_t m = strcmp(mount, "/") == 0 ? 0 : strlen(mount);
    char *s = xmalloc(m + strlen(path) + 1);

    memcpy(s, mount, m);
    strcpy(s + m, path);
    return s;
}

/* Mounts p's routes into t; -1 (with the reason in err) on a clash. */
static int mount(struct routes *t, struct sq_plugin_ctx *p, const struct config *cfg, char *err,
                 size_t errlen)
{
    for (size_t i = 0; i < p->nroutes; i++) {
        const sq_route *rt = plugin_route(p, i);
        struct route_entry *e = &t->entries[t->nentries++];
        char *full = join_path(p->cfg->mount, rt->path), why[256];
        int rc = router_add(t->router, rt->method, full, e, why, sizeof(why));
        e->plugin = p;
        e->route = rt;
        e->label = xmalloc(strlen(rt->method) + strlen(full) + 2);
        sprintf(e->label, "%s %s", rt->method, full);
        free(full);
        if (rc < 0) {
            err_add(err, errlen, "%s:%d: plugin %s (%s): %s", cfg->file, p->cfg->line, p->name,
                    p->path, why);
            return -1;
        }
    }
    return 0;
}

/* The entry a [route METHOD PATH] section names, or NULL. */
static struct route_entry *find(struct routes *t, const struct config_route *cr)
{
    size_t n = strlen(cr->method);

    for (size_t i = 0; i < t->nentries; i++) {
        const char *l = t->entries[i].label;
        if (strncmp(l, cr->method, n) == 0 && l[n] == ' ' && strcmp(l + n + 1, cr->path) == 0)
            return &t->entries[i];
    }
    return NULL;
}

struct routes *routes_build(struct server *srv, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    struct routes *t = xcalloc(1, sizeof(*t));
    size_t n = 0;
    int failed = 0;

    t->refs = 1;
    t->cfg = srv->cfg;
    config_ref(t->cfg);
    t->router = router_new();
    t->plugins = xcalloc(srv->nplugins, sizeof(*t->plugins));
    for (size_t i = 0; i < srv->nplugins; i++)
        n += srv->plugins[i]->nroutes;
    t->entries = xcalloc(n, sizeof(*t->entries));
    for (size_t i = 0; i < srv->nplugins && !failed; i++) {
        plugin_ref(t->plugins[t->nplugins++] = srv->plugins[i]);
        failed = mount(t, srv->plugins[i], cfg, err, errlen);
    }
    for (size_t i = 0; i < cfg->nroutes && !failed; i++) {
        struct route_entry *e = find(t, &cfg->routes[i]);
        if (e) {
            e->cfg_route = &cfg->routes[i].mw;
            continue;
        }
        err_add(err, errlen, "%s:%d: [route %s %s] matches no plugin's route", cfg->file,
                cfg->routes[i].line, cfg->routes[i].method, cfg->routes[i].path);
        failed = -1;
    }
    if (!failed)
        failed = middleware_build(srv, t, err, errlen);
    if (failed) {
        routes_unref(t);
        return NULL;
    }
    return t;
}

void routes_ref(struct routes *t)
{
    if (t)
        t->refs++;
}

void routes_unref(struct routes *t)
{
    if (!t || --t->refs > 0)
        return;
    middleware_free_chains(t);
    for (size_t i = 0; i < t->nentries; i++)
        free(t->entries[i].label);
    free(t->entries);
    router_free(t->router);
    for (size_t i = 0; i < t->nplugins; i++)
        plugin_unref(t->plugins[i]);
    free(t->plugins);
    config_free(t->cfg);
    free(t);
}
