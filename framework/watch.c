/*
 * watch.c - inotify on the folders of the watched files (see watch.h).
 */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "request.h"
#include "xalloc.h"

struct watched {
    char *dir, *name; /* the file's folder and its name in it */
    int wd;
    bool changed;     /* an event came since the callback last ran */
};

struct watch {
    int fd;
    struct event ev, quiet;
    struct watched *files;
    size_t n;
    void (*fn)(void *arg, size_t i);
    void *arg;
};

static void on_quiet(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;

    for (size_t i = 0; i < w->n; i++)
        if (w->files[i].changed) {
            w->files[i].changed = false;
            w->fn(w->arg, i);
        }
}

/* Marks the files an event names; any change restarts the quiet period. */
static void on_events(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    struct timeval quiet = {0, WATCH_QUIET_MS * 1000}, now = {0, 0};
    bool any = false, renamed = false;
    ssize_t len;

    while ((len = read(w->fd, buf, sizeof(buf))) > 0)
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            for (size_t i = 0; i < w->n; i++)
                if (e->wd == w->files[i].wd && e->len && strcmp(e->name, w->files[i].name) == 0) {
                    any = w->files[i].changed = true;
                    renamed |= (e->mask & IN_MOVED_TO) != 0;
                }
            p += sizeof(*e) + e->len;
        }
    if (any)
        evtimer_add(&w->quiet, renamed ? &now : &quiet);
}

struct watch *watch_new(struct event_base *base, const char *const *paths, size_t n,
                        void (*fn)(void *arg, size_t i), void *arg)
{
    struct watch *w = xcalloc(1, sizeof(*w));

    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        errmsg_set("inotify: %s", strerror(errno));
        free(w);
        return NULL;
    }
    w->files = xcalloc(n, sizeof(*w->files));
    w->n = n;
    w->fn = fn;
    w->arg = arg;
    event_assign(&w->ev, base, w->fd, EV_READ | EV_PERSIST, on_events, w);
    evtimer_assign(&w->quiet, base, on_quiet, w);
    for (size_t i = 0; i < n; i++) {
        const char *slash = strrchr(paths[i], '/');
        struct watched *f = &w->files[i];
        f->dir = slash ? xstrndup(paths[i], (size_t)(slash - paths[i]) + 1) : xstrdup(".");
        f->name = xstrdup(slash ? slash + 1 : paths[i]);
        /* The same folder twice gives the same wd: files are matched by (wd, name). */
        f->wd = inotify_add_watch(w->fd, f->dir,
                                  IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB);
        if (f->wd < 0) {
            errmsg_set("inotify: %s: %s", f->dir, strerror(errno));
            watch_free(w);
            return NULL;
        }
    }
    event_add(&w->ev, NULL);
    return w;
}

void watch_free(struct watch *w)
{
    if (!w)
        return;
    event_del(&w->ev);
    event_del(&w->quiet);
    close(w->fd);
    for (size_t i = 0; i < w->n; i++) {
        free(w->files[i].dir);
        free(w->files[i].name);
    }
    free(w->files);
    free(w);
}
