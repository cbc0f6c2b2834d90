/*
 * server.c - the host: listeners, plugins, signals and the loop (see server.h).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "async.h"
#include "conn.h"
#include "coro.h"
#include "listen.h"
#include "routes.h"
#include "shm.h"
#include "timer.h"
#include "watch.h"
#include "pg.h"
#include "pgembed.h"

#define ACCEPT_BATCH 64      /* accepts per event, so one listener cannot starve the loop */
#define ACCEPT_RESUME_MS 100 /* retry accepting this soon after running out of descriptors */
#define SERVER_DRAIN_MS 5000 /* for cancelled coroutines to end at shutdown */

uint64_t server_now_ms(struct server *srv)
{
    struct timeval tv;

    event_base_gettimeofday_cached(srv->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* A host serving thousands of connections needs as many descriptors as it may have. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- Accepting ---- */

static void accept_enable(struct server *srv, bool on)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        if (on)
            event_add(&srv->listeners[i].ev, NULL);
        else
            event_del(&srv->listeners[i].ev);
    }
    srv->accept_paused = !on;
}

/* Out of descriptors: stop accepting (a level-triggered listener would spin) until a
   connection closes or a moment has passed. */
static void accept_pause(struct server *srv)
{
    struct timeval tv = {0, ACCEPT_RESUME_MS * 1000};

    if (srv->accept_paused)
        return;
    if (!srv->fd_warned) /* once per shortage, not at every retry */
        log_warn("out of file descriptors with %zu connections: accepting paused", srv->nconns);
    srv->fd_warned = true;
    accept_enable(srv, false);
    evtimer_add(&srv->resume_ev, &tv);
}

void server_fd_released(struct server *srv)
{
    if (srv->draining) {
        if (srv->nconns == 0)
            event_base_loopbreak(srv->base);
        return;
    }
    if (srv->accept_paused) {
        evtimer_del(&srv->resume_ev);
        accept_enable(srv, true);
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    server_fd_released(arg);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    struct sockaddr_storage ss;
    int one = 1;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_pause(l->srv);
            return;
        }
        l->srv->fd_warned = false;
        /* Replies go out whole, once per batch: Nagle would only delay them. */
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn_start(l->srv, cfd, (struct sockaddr *)&ss, len);
    }
}

/* ---- Listeners ---- */

/* Serves the sockets in fds (inherited from a master), or binds cfg's own. */
static int server_listen(struct server *srv, const int *fds, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    int own[cfg->nlisten];

    if (!fds && listen_open(cfg, own, err, errlen) < 0)
        return -1;
    srv->listeners = xcalloc(cfg->nlisten, sizeof(*srv->listeners));
    for (size_t i = 0; i < cfg->nlisten; i++) {
        struct listener *l = &srv->listeners[i];
        l->srv = srv;
        l->fd = fds ? fds[i] : own[i]; /* a worker's are its own after the fork */
        l->port = listen_port(l->fd);
        srv->nlisteners++;
        event_assign(&l->ev, srv->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
    }
    accept_enable(srv, true);
    return 0;
}

/* ---- Plugins ---- */

static int server_load_plugins(struct server *srv, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    char why[1024];
    int failed = 0;

    srv->plugins = xcalloc(cfg->nplugins, sizeof(*srv->plugins));
    for (size_t i = 0; i < cfg->nplugins; i++) {
        struct sq_plugin_ctx *p = plugin_load(srv->cfg, &cfg->plugins[i], why, sizeof(why));
        if (!p) {
            err_add(err, errlen, "%s:%d: %s", cfg->file, cfg->plugins[i].line, why);
            failed = -1;
            continue;
        }
        srv->plugins[srv->nplugins++] = p;
    }
    if (!failed && !(srv->routes = routes_build(srv, err, errlen)))
        failed = -1;
    return failed;
}

/* ---- Hot reload ---- */

static void watch_plugins(struct server *srv);

static void apply_config(struct server *srv, struct config *cfg);

/* The watch saw plugin i's file change: the running configuration again, which loads
   what has a new build and keeps the rest. */
static void on_plugin_changed(void *arg, size_t i)
{
    struct server *srv = arg;

    if (i < srv->nplugins && !srv->draining && plugin_changed(srv->plugins[i]))
        apply_config(srv, srv->cfg);
}

/* Whether two sections load a plugin the same way: same file, same free keys. (Its mount
   and middleware may differ: a new routing table applies those.) */
static bool same_plugin(const struct config_plugin *a, const struct config_plugin *b)
{
    if (strcmp(a->path, b->path) != 0 || a->nkv != b->nkv)
        return false;
    for (size_t i = 0; i < a->nkv; i++)
        if (strcmp(a->kv[i].key, b->kv[i].key) != 0 || strcmp(a->kv[i].value, b->kv[i].value) != 0)
            return false;
    return true;
}

static struct sq_plugin_ctx *find_plugin(struct sq_plugin_ctx **set, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] && strcmp(set[i]->name, name) == 0)
            return set[i];
    return NULL;
}

/* The restart-only settings that differ, logged: the running values stay in force. */
static void log_restart_only(const struct config *old, const struct config *cfg)
{
    bool listen = old->nlisten != cfg->nlisten;

    for (size_t i = 0; !listen && i < cfg->nlisten; i++)
        listen = strcmp(old->listen[i].port, cfg->listen[i].port) != 0 ||
                 (old->listen[i].host ? !cfg->listen[i].host ||
                                            strcmp(old->listen[i].host, cfg->listen[i].host) != 0
                                      : cfg->listen[i].host != NULL);
    if (listen)
        log_warn("reload: listen changed; that needs a restart");
    if (old->workers != cfg->workers)
        log_warn("reload: workers changed; that needs a restart");
    if (old->threads != cfg->threads || old->coroutine_stack != cfg->coroutine_stack ||
        old->cache_max_bytes != cfg->cache_max_bytes)
        log_warn("reload: threads, coroutine_stack or cache_max_bytes changed; "
                 "that needs a restart");
    if ((old->db.dsn == NULL) != (cfg->db.dsn == NULL) ||
        (old->db.dsn && strcmp(old->db.dsn, cfg->db.dsn) != 0) ||
        old->db.pool_size != cfg->db.pool_size)
        log_warn("reload: [database] changed; that needs a restart");
}

/* The instance set cfg describes: unchanged plugins keep their instance, changed ones (a
   new build, another file, other keys) and new ones are loaded; one that fails keeps its
   old instance (or, if new, is left out). Each entry holds a reference. */
static size_t instances_for(struct server *srv, struct config *cfg, struct sq_plugin_ctx **set)
{
    char why[2048];
    size_t n = 0;

    for (size_t i = 0; i < cfg->nplugins; i++) {
        const struct config_plugin *cp = &cfg->plugins[i];
        struct sq_plugin_ctx *old = find_plugin(srv->plugins, srv->nplugins, cp->name), *p;
        if (old && same_plugin(old->cfg, cp) && !plugin_changed(old)) {
            plugin_ref(set[n++] = old);
            continue;
        }
        if ((p = plugin_load(cfg, cp, why, sizeof(why)))) {
            if (old)
                plugin_handoff(old, p);
            set[n++] = p;
        } else if (old) {
            log_error("reload failed, the running version keeps serving: %s", why);
            plugin_ref(set[n++] = old);
        } else {
            log_error("reload: %s:%d: %s", cfg->file, cp->line, why);
        }
    }
    return n;
}

/* Serves cfg from now on, or logs why not and changes nothing. cfg is a reread
   configuration, or the running one when only plugin builds changed. Each new instance is
   loaded and initialised beside the one it replaces and handed its state before it is
   routed to; the old one finishes what it has started. */
static void apply_config(struct server *srv, struct config *cfg)
{
    uint64_t start = loop_now_us(srv->loop);
    struct sq_plugin_ctx **set = xcalloc(cfg->nplugins + 1, sizeof(*set));
    size_t n = instances_for(srv, cfg, set), oldn = srv->nplugins;
    struct sq_plugin_ctx **oldset = srv->plugins;
    const struct config_plugin *oldcp[n + 1];
    struct config *oldcfg = srv->cfg;
    char err[4096] = "";

    for (size_t i = 0; i < n; i++) { /* kept instances read their new section */
        oldcp[i] = set[i]->cfg;
        if (set[i]->conf != cfg)
            for (size_t j = 0; j < cfg->nplugins; j++)
                if (strcmp(cfg->plugins[j].name, set[i]->name) == 0)
                    plugin_rebind(set[i], cfg, &cfg->plugins[j]);
    }
    srv->plugins = set;
    srv->nplugins = n;
    srv->cfg = cfg;
    struct routes *t = routes_build(srv, err, sizeof(err));
    if (!t) {
        log_error("reload: the new configuration cannot be served; the running one stays:\n%s",
                  err);
        for (size_t i = 0; i < n; i++) {
            if (find_plugin(oldset, oldn, set[i]->name) != set[i]) {
                plugin_retire(set[i]); /* loaded for the new configuration */
                continue;
            }
            plugin_rebind(set[i], oldcfg, oldcp[i]);
            plugin_unref(set[i]);
        }
        free(set);
        srv->plugins = oldset;
        srv->nplugins = oldn;
        srv->cfg = oldcfg;
        return;
    }
    routes_unref(srv->routes);
    srv->routes = t;
    config_ref(cfg);
    for (size_t i = 0; i < oldn; i++) { /* the old set's references */
        struct sq_plugin_ctx *p = find_plugin(set, n, oldset[i]->name);
        if (p == oldset[i]) {
            plugin_unref(oldset[i]); /* kept: the new set holds it */
            continue;
        }
        plugin_retire(oldset[i]);
        if (p)
            log_info("plugin %s reloaded in %.1f ms", p->name,
                     (double)(loop_now_us(srv->loop) - start) / 1000.0);
    }
    free(oldset);
    config_free(oldcfg);
}

void server_reload(struct server *srv)
{
    char err[8192] = "";

    if (srv->cfg->reload == CONFIG_RELOAD_OFF) {
        log_warn("reload = off: ignoring the reload request");
        return;
    }
    uint64_t start = loop_now_us(srv->loop);
    struct config *cfg = config_load(srv->cfg->file, err, sizeof(err));
    if (!cfg) { /* new builds still load, under the running configuration */
        log_error("reload: the configuration has errors; the running one stays:\n%s", err);
        apply_config(srv, srv->cfg);
        return;
    }
    log_restart_only(srv->cfg, cfg);
    apply_config(srv, cfg);
    config_free(cfg);
    log_info("reload: done in %.1f ms, serving %s with %zu plugins",
             (double)(loop_now_us(srv->loop) - start) / 1000.0, srv->cfg->file, srv->nplugins);
    if (srv->watch) { /* the plugins' files may have changed */
        watch_free(srv->watch);
        srv->watch = NULL;
        watch_plugins(srv);
    }
}

static void watch_plugins(struct server *srv)
{
    const char *paths[srv->nplugins];

    for (size_t i = 0; i < srv->nplugins; i++)
        paths[i] = srv->plugins[i]->path;
    srv->watch = watch_new(srv->base, paths, srv->nplugins, on_plugin_changed, srv);
    if (!srv->watch)
        log_warn("reload = auto: %s; reloading on SIGHUP only", sq_errmsg());
}

/* ---- Database ---- */

/* [database]: the embedded cluster when dsn = embedded (not for --check: nothing connects
   then), and the loop's pool, which opens its connections on demand. */
static int server_database(struct server *srv, int flags, char *err, size_t errlen)
{
    const struct config_database *db = &srv->cfg->db;
    const char *dsn = db->dsn;
    char why[1024], check_dsn[1024];

    if (!dsn)
        return 0;
    if (strcmp(dsn, "embedded") == 0 && (flags & SERVER_NO_LISTEN)) {
        snprintf(check_dsn, sizeof(check_dsn), "host='%s' dbname=postgres", db->embedded_dir);
        dsn = check_dsn;
    } else if (strcmp(dsn, "embedded") == 0) {
        srv->pgembed = pgembed_start(db->embedded_dir, why, sizeof(why));
        if (!srv->pgembed) {
            err_add(err, errlen, "%s:%d: [database] %s", srv->cfg->file, db->line, why);
            return -1;
        }
        dsn = pgembed_dsn(srv->pgembed);
    }
    if (!pg_pool_new(srv->loop, db, dsn, why, sizeof(why))) {
        err_add(err, errlen, "%s:%d: [database] %s", srv->cfg->file, db->line, why);
        return -1;
    }
    return 0;
}

/* ---- Loop ---- */

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    char b[16];

    while (read(fd, b, sizeof(b)) > 0)
        ;
    event_base_loopbreak(srv->base);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;

    log_warn("shutdown_timeout: %zu connections still busy; closing them", srv->nconns);
    event_base_loopbreak(srv->base);
}

void server_shutdown(struct server *srv)
{
    struct timeval tv = us_tv(srv->cfg->shutdown_timeout_ms * 1000);

    if (srv->draining)
        return;
    srv->draining = true;
    for (size_t i = 0; i < srv->nlisteners; i++) { /* new clients get refused at once */
        event_del(&srv->listeners[i].ev);
        close(srv->listeners[i].fd);
    }
    srv->nlisteners = 0;
    evtimer_del(&srv->resume_ev);
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = conn_next(c);
        conn_drain(c);
    }
    evtimer_assign(&srv->drain_ev, srv->base, on_drain_timeout, srv);
    if (srv->nconns == 0) {
        event_base_loopbreak(srv->base);
        return;
    }
    log_info("waiting for %zu connections (shutdown_timeout %llu ms)", srv->nconns,
             (unsigned long long)srv->cfg->shutdown_timeout_ms);
    evtimer_add(&srv->drain_ev, &tv);
}

/* SIGTERM and SIGINT drain; SIGQUIT stops at once; SIGHUP reloads. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (sig == SIGHUP) {
        log_info("SIGHUP: reloading");
        server_reload(arg);
        return;
    }
    log_info("%s: %s", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGQUIT",
             sig == SIGQUIT ? "stopping now" : "shutting down gracefully");
    if (sig == SIGQUIT)
        server_stop(arg);
    else
        server_shutdown(arg);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    accesslog_flush(arg);
}

static int server_events(struct server *srv, int flags, char *err, size_t errlen)
{
    if (pipe2(srv->stop_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        err_add(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    event_assign(&srv->stop_ev, srv->base, srv->stop_pipe[0], EV_READ | EV_PERSIST, on_stop, srv);
    event_add(&srv->stop_ev, NULL);
    evtimer_assign(&srv->resume_ev, srv->base, on_resume, srv);
    if (flags & SERVER_SIGNALS) {
        srv->sigint_ev = evsignal_new(srv->base, SIGINT, on_signal, srv);
        srv->sigterm_ev = evsignal_new(srv->base, SIGTERM, on_signal, srv);
        srv->sigquit_ev = evsignal_new(srv->base, SIGQUIT, on_signal, srv);
        srv->sighup_ev = evsignal_new(srv->base, SIGHUP, on_signal, srv);
        evsignal_add(srv->sighup_ev, NULL);
        evsignal_add(srv->sigint_ev, NULL);
        evsignal_add(srv->sigterm_ev, NULL);
        evsignal_add(srv->sigquit_ev, NULL);
    }
    if (srv->cfg->access_log) {
        struct timeval sec = {1, 0};
        srv->accesslog = accesslog_open(srv->cfg->access_log, err, errlen);
        if (!srv->accesslog)
            return -1;
        event_assign(&srv->flush_ev, srv->base, -1, EV_PERSIST, on_flush, srv->accesslog);
        event_add(&srv->flush_ev, &sec);
    }
    return 0;
}

static unsigned host_seq;

struct server *server_new(struct config *cfg, int flags, const int *fds, char *err,
                          size_t errlen)
{
    struct server *srv = xcalloc(1, sizeof(*srv));
    struct event_config *ec = event_config_new();

    err[0] = '\0';
    srv->cfg = cfg;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    srv->limits.max_header = cfg->max_header;
    srv->limits.max_body = cfg->max_body;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    /* One loop per process, only ever touched by its own thread: no locks. A precise
       clock, so that a sleep never ends before its time (the coarse one is 4 ms). */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_PRECISE_TIMER);
    srv->base = event_base_new_with_config(ec);
    event_config_free(ec);
    srv->seq = ++host_seq; /* the same in every worker: each forks before its first host */
    if (shm_init() < 0)
        log_warn("no shared memory (%s): each process counts rate limits alone", strerror(errno));
    if (srv->base) {
        srv->loop = loop_new(srv->base, cfg->coroutine_stack, cfg->threads);
        loop_current = srv->loop; /* plugins' init may start tasks and timers */
        middleware_init(srv);
    }
    if (!srv->base || server_database(srv, flags, err, errlen) < 0 ||
        server_load_plugins(srv, err, errlen) < 0 ||
        server_events(srv, flags, err, errlen) < 0 ||
        (!(flags & SERVER_NO_LISTEN) && server_listen(srv, fds, err, errlen) < 0)) {
        if (!srv->base)
            err_add(err, errlen, "cannot create the event loop");
        server_free(srv);
        return NULL;
    }
    if ((flags & SERVER_SIGNALS) && cfg->reload == CONFIG_RELOAD_AUTO)
        watch_plugins(srv);
    return srv;
}

/* Whether a fault at addr hit the guard page of the running coroutine's stack. */
static bool fault_is_overflow(const void *addr)
{
    struct coro *co = coro_current();
    return co && coro_stack_is_guard(co->stack, addr);
}

/* In a signal handler: only async-signal-safe calls. */
static void report_overflow(const void *addr)
{
    struct coro *co = coro_current();
    const char *parts[] = {"squall: stack overflow in plugin ", co->plugin ? co->plugin->name : "?",
                           " (", co->label, "): raise [server] coroutine_stack\n"};

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        ssize_t n = write(STDERR_FILENO, parts[i], strlen(parts[i]));
        (void)n;
    }
}

/* In a signal handler: which plugin and route were running when the process crashed, for
   the log (the master logs the signal itself). */
static void report_crash(int sig)
{
    struct coro *co = coro_current();
    char num[4] = {(char)('0' + sig / 10 % 10), (char)('0' + sig % 10), '\0'};

    if (!co)
        return;
    const char *parts[] = {"squall: signal ", num[0] == '0' ? num + 1 : num, " in plugin ",
                           co->plugin ? co->plugin->name : "?", " (", co->label, ")\n"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        ssize_t n = write(STDERR_FILENO, parts[i], strlen(parts[i]));
        (void)n;
    }
}

static void on_fatal(int sig)
{
    report_crash(sig);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* SIGFPE, SIGILL and SIGABRT name the plugin and route too, unless a sanitizer took them. */
static void crash_reports_install(void)
{
    static const int sigs[] = {SIGFPE, SIGILL, SIGABRT};

    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO))
            signal(sigs[i], on_fatal);
    }
}

int server_run(struct server *srv)
{
    loop_current = srv->loop;
    coro_guard_install(fault_is_overflow, report_overflow, report_crash);
    crash_reports_install();
    return event_base_dispatch(srv->base) < 0 ? -1 : 0;
}

void server_stop(struct server *srv)
{
    ssize_t n = write(srv->stop_pipe[1], "x", 1);
    (void)n;
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    loop_current = srv->loop;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        event_del(&srv->listeners[i].ev);
        close(srv->listeners[i].fd);
    }
    free(srv->listeners);
    srv->nlisteners = 0;
    while (srv->conns) /* a busy one leaves the list at once; its handler is cancelled */
        conn_close(srv->conns);
    if (srv->loop && loop_drain(srv->loop, SERVER_DRAIN_MS) > 0)
        log_error("%zu coroutines did not end after cancellation", srv->loop->live);
    conn_free_spares(srv);
    watch_free(srv->watch);
    routes_unref(srv->routes);
    for (size_t i = srv->nplugins; i-- > 0;) /* fini in reverse order of loading */
        plugin_retire(srv->plugins[i]);
    free(srv->plugins);
    if (srv->loop)
        timer_free_all(srv->loop); /* pending timers hold their instances */
    plugin_reap();
    if (srv->loop)
        middleware_free(srv);
    if (srv->loop)
        pg_pool_free(srv->loop->pg);
    if (srv->loop && srv->loop->live == 0) /* else leaked: their stacks are in use */
        loop_free(srv->loop);
    if (srv->accesslog) {
        event_del(&srv->flush_ev);
        accesslog_close(srv->accesslog);
    }
    if (srv->sigint_ev) {
        event_free(srv->sigint_ev);
        event_free(srv->sigterm_ev);
        event_free(srv->sigquit_ev);
        event_free(srv->sighup_ev);
    }
    if (srv->draining)
        event_del(&srv->drain_ev);
    if (srv->stop_pipe[0] >= 0) {
        event_del(&srv->stop_ev);
        event_del(&srv->resume_ev);
        close(srv->stop_pipe[0]);
        close(srv->stop_pipe[1]);
    }
    if (srv->base)
        event_base_free(srv->base);
    config_free(srv->cfg);
    pgembed_stop(srv->pgembed); /* last: nothing uses the database any more */
    free(srv);
}
