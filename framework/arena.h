/*
 * arena.h - per-request bump allocator.
 *
 * Memory comes from a first block the owner supplies (embedded in the connection, so a
 * request that fits costs no malloc) and then from heap chunks that arena_reset frees.
 * Things the arena's memory stands for but does not hold (a libpq result) are released by
 * cleanups registered with arena_defer, run by the same reset.
 */
#ifndef SQUALL_ARENA_H
#define SQUALL_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_chunk;
struct arena_cleanup;

struct arena {
    char *cur, *end;           /* free space in the current block */
    char *first;               /* the owner's block */
    size_t first_size;
    struct arena_chunk *chunks; /* heap chunks, newest first */
    struct arena_cleanup *cleanups; /* arena_defer, newest first */
};

/* Uses buf[0..size) as the first block; buf must outlive the arena. */
void arena_init(struct arena *a, void *buf, size_t size);

/* Runs the deferred cleanups (newest first), then frees the heap chunks; the arena can be
   used again at once. */
void arena_reset(struct arena *a);

/* Same as arena_reset: the arena owns nothing else. */
void arena_deinit(struct arena *a);

/* n bytes aligned to 16, or NULL when the heap is exhausted. Lives until the next reset. */
void *arena_alloc(struct arena *a, size_t n);

/* Runs fn(arg) at the next arena_reset or arena_deinit, before the memory goes: for what
   lives outside the arena but belongs to its user (a PGresult, freed with PQclear). Returns
   0, or -1 on out-of-memory (then nothing is registered and arg is still the caller's). */
int arena_defer(struct arena *a, void (*fn)(void *arg), void *arg);

/* Copies s[0..n) and NUL-terminates it; NULL on out-of-memory. */
char *arena_strndup(struct arena *a, const char *s, size_t n);

/* printf into the arena; NULL on out-of-memory or a format error. */
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
