/*
 * arena.c - per-request bump allocator (see arena.h).
 */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_CHUNK 8192

struct arena_chunk {
    struct arena_chunk *next;
    char data[] __attribute__((aligned(ARENA_ALIGN)));
};

/* One arena_defer, allocated in the arena itself. */
struct arena_cleanup {
    struct arena_cleanup *next;
    void (*fn)(void *arg);
    void *arg;
};

void arena_init(struct arena *a, void *buf, size_t size)
{
    a->first = buf;
    a->first_size = size;
    a->chunks = NULL;
    a->cleanups = NULL;
    arena_reset(a);
}

void arena_reset(struct arena *a)
{
    while (a->cleanups) { /* before the chunks: the list lives in them */
        struct arena_cleanup *c = a->cleanups;
        a->cleanups = c->next;
        c->fn(c->arg);
    }
    while (a->chunks) {
        struct arena_chunk *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
    a->cur = a->first;
    a->end = a->first + a->first_size;
}

void arena_deinit(struct arena *a)
{
    arena_reset(a);
}

void *arena_alloc(struct arena *a, size_t n)
{
    uintptr_t p = ((uintptr_t)a->cur + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);

    if (p <= (uintptr_t)a->end && n <= (size_t)((uintptr_t)a->end - p)) {
        a->cur = (char *)(p + n);
        return (void *)p;
    }
    /* A fresh chunk; requests bigger than a chunk get one of their own size. */
    size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
    if (size > SIZE_MAX - sizeof(struct arena_chunk))
        return NULL;
    struct arena_chunk *c = malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->next = a->chunks;
    a->chunks = c;
    a->cur = c->data + n;
    a->end = c->data + size;
    return c->data;
}

int arena_defer(struct arena *a, void (*fn)(void *arg), void *arg)
{
    struct arena_cleanup *c = arena_alloc(a, sizeof(*c));

    if (!c)
        return -1;
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);

    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *d = arena_alloc(a, (size_t)n + 1);
    if (d)
        vsnprintf(d, (size_t)n + 1, fmt, ap);
    return d;
}
