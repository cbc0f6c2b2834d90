/*
 * plugin.h - plugin instances: loading (private copy, dlopen, ABI check, init), references,
 * retirement and unloading.
 */
#ifndef SQUALL_PLUGIN_H
#define SQUALL_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "middleware.h"
#include "squall.h"

/*
 * A loaded plugin instance; the SDK's sq_plugin_ctx.
 *
 * Each instance is loaded from a private copy of its file (an in-memory file), never from
 * the path a build may be rewriting. It lives as long as something refers to it: the host
 * while it is the active instance of its plugin, each routing table that mounts it (and so
 * each request routed by one), each coroutine it started or that runs its handler, each
 * timer it set. A reload makes a new instance active and retires the old one: its periodic
 * callbacks and LISTENs stop at once; its fini runs and it is dlclosed when the last
 * reference goes, on a later turn of the loop (plugin_reap).
 */
struct sq_plugin_ctx {
    char *name;
    char *path;
    void *dl;
    int mfd;                         /* the private copy dl was loaded from */
    const sq_plugin *desc;
    const struct config_plugin *cfg; /* its section, in conf */
    struct config *conf;             /* referenced */
    void *data;                      /* sq_plugin_set_data */
    size_t nroutes;                  /* in desc->routes, checked at load */
    struct mw_def *middleware;       /* what it provides (sq_middleware_add) */
    unsigned refs;
    bool retired;
    struct sq_plugin_ctx *next_dead; /* on the list plugin_reap empties */
    dev_t dev;                       /* the file it was loaded from, to tell a new build */
    ino_t ino;
    struct timespec mtime;
    off_t size;
    int initialized;
    int in_init;
};

/*
 * Loads a private copy of cp->path (cp is a section of conf), checks its descriptor (ABI
 * version and size first) and routes, and runs init. Returns the instance with one
 * reference (the caller's), or NULL with one line in err naming the plugin and file, and
 * nothing left loaded.
 */
struct sq_plugin_ctx *plugin_load(struct config *conf, const struct config_plugin *cp, char *err,
                                  size_t errlen);

/* Points p at its section cp of another configuration (a reread that left it unchanged). */
void plugin_rebind(struct sq_plugin_ctx *p, struct config *conf, const struct config_plugin *cp);

/* The instance's i-th route (i < p->nroutes), read with the plugin's own struct size. */
const sq_route *plugin_route(const struct sq_plugin_ctx *p, size_t i);

/* Whether p->path is now another file than the one p was loaded from (a new build). */
bool plugin_changed(const struct sq_plugin_ctx *p);

/* Reference counting; NULL is ignored. */
void plugin_ref(struct sq_plugin_ctx *p);
void plugin_unref(struct sq_plugin_ctx *p);

/* Retires p (it is no longer the active instance): stops its periodic callbacks and LISTENs
   and drops the caller's reference. */
void plugin_retire(struct sq_plugin_ctx *p);

/* Unloads (fini, dlclose) the retired instances no longer referred to. The loop runs it
   after the last reference goes; the host runs it once more when it stops. */
void plugin_reap(void);

/* Hands the old instance's state to the new one (save_state -> restore_state), when both
   provide them. A failure is logged; the new instance then starts without it. */
void plugin_handoff(struct sq_plugin_ctx *old, struct sq_plugin_ctx *p);

/* The plugin whose code runs now (for log prefixes), or NULL for the host itself. */
extern struct sq_plugin_ctx *plugin_current;

#endif
