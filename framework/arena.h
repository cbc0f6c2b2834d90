/*
 * arena.h - per-request bump allocator.
 *
 * Memory comes from a first block the owner supplies (embedded in the connection, so a
 * request that fits costs no malloc) and then from heap chunks that arena_reset frees.
 */
#ifndef SQUALL_ARENA_H
#define SQUALL_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_chunk;

struct arena {
    char *cur, *end;           /* free space in the current block */
    char *first;               /* the owner's block */
    size_t first_size;
    struct arena_chunk *chunks; /* heap chunks, newest first */
};

/* Uses buf[0..size) as the first block; buf must outlive the arena. */
void arena_init(struct arena *a, void *buf, size_t size);

/* Frees the heap chunks; the arena can be used again at once. */
void arena_reset(struct arena *a);

/* Same as arena_reset: the arena owns nothing else. */
void arena_deinit(struct arena *a);

/* n bytes aligned to 16, or NULL when the heap is exhausted. Lives until the next reset. */
void *arena_alloc(struct arena *a, size_t n);

/* Copies s[0..n) and NUL-terminates it; NULL on out-of-memory. */
char *arena_strndup(struct arena *a, const char *s, size_t n);

/* printf into the arena; NULL on out-of-memory or a format error. */
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
