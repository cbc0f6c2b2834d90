/*
 * watch.h - noticing that files changed (inotify), for reloading a plugin when its build
 * writes a new .so.
 *
 * The folder of each file is watched rather than the file, so that a file replaced by a
 * rename or re-created by the linker is still seen. A file renamed into place is complete:
 * the callback runs at once. Writes in place are debounced: it runs WATCH_QUIET_MS after the
 * last event for the file, not on each of the writes a build makes (and a file still
 * incomplete then is refused by the loader; the next write brings another try).
 */
#ifndef SQUALL_WATCH_H
#define SQUALL_WATCH_H

#include <stddef.h>

#define WATCH_QUIET_MS 100

struct event_base;
struct watch;

/* Watches paths[0..n) (copied); fn(arg, i) runs on base's loop when file i has changed.
   NULL (with the reason in sq_errmsg) when inotify is unavailable. */
struct watch *watch_new(struct event_base *base, const char *const *paths, size_t n,
                        void (*fn)(void *arg, size_t i), void *arg);

/* Stops watching and frees w; NULL is ignored. */
void watch_free(struct watch *w);

#endif
