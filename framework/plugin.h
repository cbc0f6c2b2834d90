/*
 * plugin.h - loading plugins: dlopen, descriptor and ABI check, init, route mounting.
 */
#ifndef SQUALL_PLUGIN_H
#define SQUALL_PLUGIN_H

#include <stddef.h>

#include "config.h"
#include "middleware.h"
#include "router.h"
#include "squall.h"

/* One mounted route: what the router's data pointer points at. */
struct route_entry {
    struct sq_plugin_ctx *plugin;
    const sq_route *route;
    char *label;         /* "GET /mount/pattern", for logs */
    const struct config_mw *cfg_route; /* its [route METHOD PATH] settings, or NULL */
    struct mw_chain *chain;            /* NULL = no middleware */
    uint64_t timeout_ms; /* the handler's deadline (middleware_build), 0 = none */
    int timeout_status;
};

/* A loaded plugin instance; the SDK's sq_plugin_ctx. */
struct sq_plugin_ctx {
    char *name;
    char *path;
    void *dl;
    const sq_plugin *desc;
    const struct config_plugin *cfg; /* owned by the config */
    void *data;                      /* sq_plugin_set_data */
    struct route_entry *routes;
    size_t nroutes;
    struct mw_def *middleware; /* what it provides (sq_middleware_add) */
    int initialized;
    int in_init;
};

/*
 * Loads cp->path with RTLD_NOW|RTLD_LOCAL, checks its descriptor (ABI version and size
 * first), runs init, and adds its routes under cp->mount to router. On failure returns
 * NULL with one line in err naming the plugin and file, and leaves nothing loaded (routes
 * it added are still in the router, which the caller then discards).
 */
struct sq_plugin_ctx *plugin_load(const struct config_plugin *cp, struct router *router,
                                  char *err, size_t errlen);

/* Runs fini (when init succeeded) and dlclose()s. */
void plugin_unload(struct sq_plugin_ctx *p);

/* The plugin whose code runs now (for log prefixes), or NULL for the host itself. */
extern struct sq_plugin_ctx *plugin_current;

#endif
