/*
 * plugin.c - plugin instances (see plugin.h).
 */
#include "plugin.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "async.h"
#include "log.h"
#include "pg.h"
#include "router.h"
#include "timer.h"

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

const sq_route *plugin_route(const struct sq_plugin_ctx *p, size_t i)
{
    return (const sq_route *)((const char *)p->desc->routes + i * p->desc->route_size);
}

/* Counts and checks the routes before init: a reload with a broken route is refused while
   the old instance still serves. */
static int check_routes(struct sq_plugin_ctx *p, char *why, size_t len)
{
    for (p->nroutes = 0; plugin_route(p, p->nroutes)->method; p->nroutes++) {
        const sq_route *rt = plugin_route(p, p->nroutes);
        if (!rt->path || !rt->handler) {
            snprintf(why, len, "route %zu (%s) has no %s", p->nroutes, rt->method,
                     rt->path ? "handler" : "path");
            return -1;
        }
        if (router_check_pattern(rt->path, why, len) < 0)
            return -1;
    }
    return 0;
}

/* Copies fd's contents into a new in-memory file; its descriptor, or -1. */
static int private_copy(int fd, const char *name, off_t size)
{
    int mfd = memfd_create(name, MFD_CLOEXEC);
    off_t off = 0;

    if (mfd < 0)
        return -1;
    while (off < size) {
        ssize_t n = sendfile(mfd, fd, &off, (size_t)(size - off));
        if (n <= 0) {
            int e = n < 0 ? errno : EIO; /* 0: the file got shorter */
            close(mfd);
            errno = e;
            return -1;
        }
    }
    return mfd;
}

/* NULL when the ELF file in fd (size bytes) holds every byte its headers point at, else
   what is wrong: a build caught half written must be refused here, as the loader would map
   the missing part and die of SIGBUS touching it. */
static const char *elf_incomplete(int fd, off_t size)
{
    static const char truncated[] = "not a complete ELF shared object (a build still being "
                                    "written?)";
    Elf64_Ehdr eh;
    Elf64_Phdr ph;

    if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64)
        return "not a loadable shared object: not a 64-bit ELF file";
    if (eh.e_phentsize != sizeof(ph) ||
        (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(ph) > (uint64_t)size ||
        (uint64_t)eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize > (uint64_t)size)
        return truncated;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        off_t at = (off_t)(eh.e_phoff + i * sizeof(ph));
        if (pread(fd, &ph, sizeof(ph), at) != (ssize_t)sizeof(ph) ||
            (ph.p_type == PT_LOAD && ph.p_offset + ph.p_filesz > (uint64_t)size))
            return truncated;
    }
    return NULL;
}

/* dlopen()s a private copy of p->path, so that a build rewriting the file (in place, or in
   several writes) can never change the code this instance runs. */
static int open_library(struct sq_plugin_ctx *p, char *why, size_t len)
{
    struct stat st;
    char proc[64];
    int fd = open(p->path, O_RDONLY | O_CLOEXEC), mfd = -1;

    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(why, len, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    p->dev = st.st_dev;
    p->ino = st.st_ino;
    p->mtime = st.st_mtim;
    p->size = st.st_size;
    mfd = private_copy(fd, p->name, st.st_size);
    close(fd);
    if (mfd < 0) {
        snprintf(why, len, "cannot copy it: %s", strerror(errno));
        return -1;
    }
    const char *bad = elf_incomplete(mfd, st.st_size);
    if (bad) {
        close(mfd);
        snprintf(why, len, "%s", bad);
        return -1;
    }
    /* The copy stays open while the instance is loaded: dlopen knows a library by the name
       it was given, so no two loaded ones may share a "/proc/self/fd/N". */
    p->mfd = mfd;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", mfd);
    p->dl = dlopen(proc, RTLD_NOW | RTLD_LOCAL);
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
    return check_routes(p, why, len);
}

static int run_init(struct sq_plugin_ctx *p, char *why, size_t len)
{
    if (p->desc->init) {
        struct sq_plugin_ctx *saved = plugin_current;
        plugin_current = p;
        p->in_init = 1;
        int rc = p->desc->init(p);
        p->in_init = 0;
        plugin_current = saved;
        if (rc != 0) {
            snprintf(why, len, "init failed (returned %d)", rc);
            return -1;
        }
    }
    p->initialized = 1;
    return 0;
}

/* fini (when init succeeded), dlclose, free. */
static void plugin_unload(struct sq_plugin_ctx *p)
{
    pg_listen_stop_plugin(p); /* what it LISTENs to stops before fini frees its state */
    if (p->initialized && p->desc->fini) {
        struct sq_plugin_ctx *saved = plugin_current;
        plugin_current = p;
        p->desc->fini(p);
        plugin_current = saved;
    }
    for (struct mw_def *d = p->middleware, *next; d; d = next) {
        next = d->next;
        free(d->name);
        free(d);
    }
    if (p->dl)
        dlclose(p->dl);
    if (p->mfd >= 0)
        close(p->mfd);
    config_free(p->conf);
    free(p->name);
    free(p->path);
    free(p);
}

struct sq_plugin_ctx *plugin_load(struct config *conf, const struct config_plugin *cp, char *err,
                                  size_t errlen)
{
    struct sq_plugin_ctx *p = xcalloc(1, sizeof(*p));
    char why[512];

    p->name = xstrdup(cp->name);
    p->path = xstrdup(cp->path);
    p->cfg = cp;
    p->conf = conf;
    config_ref(conf);
    p->refs = 1;
    p->mfd = -1;
    if (open_library(p, why, sizeof(why)) < 0 || run_init(p, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "plugin %s (%s): %s", p->name, p->path, why);
        plugin_retire(p); /* what a failed init started may still refer to it */
        return NULL;
    }
    log_info("plugin %s %s loaded from %s: %zu routes", p->name,
             p->desc->version ? p->desc->version : "", p->path, p->nroutes);
    return p;
}

void plugin_rebind(struct sq_plugin_ctx *p, struct config *conf, const struct config_plugin *cp)
{
    config_ref(conf);
    config_free(p->conf);
    p->conf = conf;
    p->cfg = cp;
}

bool plugin_changed(const struct sq_plugin_ctx *p)
{
    struct stat st;

    if (stat(p->path, &st) < 0)
        return false; /* being replaced: the next event will tell */
    return st.st_dev != p->dev || st.st_ino != p->ino || st.st_size != p->size ||
           st.st_mtim.tv_sec != p->mtime.tv_sec || st.st_mtim.tv_nsec != p->mtime.tv_nsec;
}

/* ---- References and retirement ---- */

static __thread struct sq_plugin_ctx *dead; /* in the order their last reference went */
static __thread bool reap_scheduled;

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    plugin_reap();
}

void plugin_ref(struct sq_plugin_ctx *p)
{
    if (p)
        p->refs++;
}

void plugin_unref(struct sq_plugin_ctx *p)
{
    static const struct timeval now = {0, 0};

    if (!p || --p->refs > 0)
        return;
    /* Not here: the last reference may go deep in a call that still runs its code's
       caller. In order, so that instances retired together finish as they were retired. */
    struct sq_plugin_ctx **tail = &dead;
    while (*tail)
        tail = &(*tail)->next_dead;
    p->next_dead = NULL;
    *tail = p;
    if (!reap_scheduled && loop_current &&
        event_base_once(loop_current->base, -1, EV_TIMEOUT, on_reap, NULL, &now) == 0)
        reap_scheduled = true;
}

void plugin_retire(struct sq_plugin_ctx *p)
{
    if (!p)
        return;
    p->retired = true;
    if (loop_current)
        timer_stop_plugin(loop_current, p);
    pg_listen_stop_plugin(p);
    plugin_unref(p);
}

void plugin_reap(void)
{
    reap_scheduled = false; /* also when the host reaps before its loop goes */
    while (dead) {
        struct sq_plugin_ctx *p = dead;
        dead = p->next_dead;
        if (p->initialized) /* one that never served goes without a word */
            log_info("plugin %s: instance unloaded", p->name);
        plugin_unload(p);
    }
}

void plugin_handoff(struct sq_plugin_ctx *old, struct sq_plugin_ctx *p)
{
    bool saves = old->desc->size >= offsetof(sq_plugin, save_state) + sizeof(void *) &&
                 old->desc->save_state;
    bool restores = p->desc->size >= offsetof(sq_plugin, restore_state) + sizeof(void *) &&
                    p->desc->restore_state;
    struct sq_plugin_ctx *saved = plugin_current;

    if (!saves || !restores)
        return;
    plugin_current = old;
    json_t *state = old->desc->save_state(old);
    plugin_current = p;
    if (!state)
        log_warn("plugin %s: save_state returned no state", p->name);
    else if (p->desc->restore_state(p, state) != 0)
        log_warn("plugin %s: restore_state failed: the new instance starts afresh", p->name);
    json_decref(state);
    plugin_current = saved;
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
