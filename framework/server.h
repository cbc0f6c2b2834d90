/*
 * server.h - the host: listeners, connections, plugins and the loop they share.
 */
#ifndef SQUALL_SERVER_H
#define SQUALL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "config.h"
#include "http1.h"
#include "log.h"
#include "plugin.h"
#include "response.h"
#include "router.h"

struct conn;
struct mw_zone;

struct listener {
    struct server *srv;
    int fd;
    struct event ev;
    uint16_t port; /* the bound port (resolves port 0) */
};

struct server {
    struct event_base *base;
    struct loop *loop; /* coroutines, timers, the thread pool */
    struct config *cfg; /* owned */
    struct routes *routes;  /* the current routing table (routes.h) */
    struct sq_plugin_ctx **plugins;
    size_t nplugins;
    struct mw_zone *zones;  /* rate-limit zones (middleware.c) */
    unsigned seq;           /* this process's hosts, counted: names its shared zones */
    struct listener *listeners;
    size_t nlisteners;
    struct accesslog *accesslog; /* NULL when off */
    struct pgembed *pgembed;     /* [database] dsn = embedded: the cluster, else NULL */
    struct http1_limits limits;
    struct response_date date;

    struct conn *conns;     /* live connections, a doubly linked list */
    size_t nconns;
    struct conn *spare;     /* closed connections kept for reuse, singly linked */
    size_t nspare;

    bool accept_paused;     /* out of descriptors: listeners off until resume_ev */
    bool fd_warned;         /* the shortage was logged; cleared by the next accept */
    struct event resume_ev;
    struct event flush_ev;  /* access log flush, once a second */
    struct event stop_ev;   /* the read end of stop_pipe */
    struct event *sigint_ev, *sigterm_ev, *sigquit_ev, *sighup_ev;
    bool draining;          /* server_shutdown: no accepting, connections close when done */
    struct watch *watch;    /* reload = auto: the plugins' files */
    struct event drain_ev;  /* shutdown_timeout */
    int stop_pipe[2];
};

enum server_flags {
    SERVER_NO_LISTEN = 1, /* --check: load plugins, bind nothing */
    SERVER_SIGNALS = 2,   /* the command line host: SIGTERM/SIGINT drain, SIGQUIT stops,
                             SIGHUP reloads; with reload = auto the plugins' files are
                             watched */
};

/*
 * Creates the host for cfg, which it takes over (freed by server_free, also on failure):
 * raises RLIMIT_NOFILE to the hard limit, loads every plugin and mounts its routes, binds
 * the listeners (or, with fds, takes over those inherited sockets: one per cfg->listen). On
 * failure returns NULL with one line per problem in err.
 */
struct server *server_new(struct config *cfg, int flags, const int *fds, char *err,
                          size_t errlen);

/* Runs the loop until server_stop or a signal. Returns 0, or -1 if the loop failed. */
int server_run(struct server *srv);

/* Graceful stop (SIGTERM): stops accepting, closes idle connections, lets each busy one
   finish its request (its reply says Connection: close), and ends the loop when none is
   left or after [server] shutdown_timeout. On the loop's thread. */
void server_shutdown(struct server *srv);

/* Reloads every plugin whose file is a new build (SIGHUP, squall reload). */
void server_reload(struct server *srv);

/* Asks the loop to stop at once. Safe from another thread and from a signal handler. */
void server_stop(struct server *srv);

/* Closes every connection, unloads the plugins (fini) and frees everything. */
void server_free(struct server *srv);

/* Milliseconds of the loop's cached clock (no syscall). */
uint64_t server_now_ms(struct server *srv);

/* Called by the connection code: a descriptor was released, so accepting may resume. */
void server_fd_released(struct server *srv);

#endif
