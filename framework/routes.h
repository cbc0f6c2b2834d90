/*
 * routes.h - the routing table: every active plugin instance's routes mounted under its
 * prefix, each with its middleware chain.
 *
 * A table is built whole (at start, and after each reload) and replaces the previous one
 * at once. A request holds the table it was routed by until it ends, and a table holds the
 * instances it mounts, so a request that started on an old version finishes on it.
 */
#ifndef SQUALL_ROUTES_H
#define SQUALL_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "router.h"
#include "squall.h"

struct server;
struct mw_chain;

/* One mounted route: what the router's data pointer points at. */
struct route_entry {
    struct sq_plugin_ctx *plugin;
    const sq_route *route;
    char *label;                       /* "GET /mount/pattern", for logs */
    const struct config_mw *cfg_route; /* its [route METHOD PATH] settings, or NULL */
    struct mw_chain *chain;            /* NULL = no middleware */
    uint64_t timeout_ms;               /* the handler's deadline, 0 = none */
    int timeout_status;
};

struct routes {
    unsigned refs;
    struct router *router;
    struct route_entry *entries;
    size_t nentries;
    struct sq_plugin_ctx **plugins; /* referenced */
    size_t nplugins;
    struct config *cfg;             /* whose [route] sections it uses; referenced */
};

/* The table for srv's active instances (srv->plugins) and srv->cfg's [route] sections,
   with one reference (the caller's). NULL with every problem (a route clash, a [route]
   that matches nothing, a missing middleware) in err, one "file:line: ..." each. */
struct routes *routes_build(struct server *srv, char *err, size_t errlen);

/* NULL is ignored. The last unref frees the table and drops its instances. */
void routes_ref(struct routes *t);
void routes_unref(struct routes *t);

#endif
