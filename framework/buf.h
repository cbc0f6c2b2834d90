/*
 * buf.h - a growable byte buffer (connection output, rendered replies).
 */
#ifndef SQUALL_BUF_H
#define SQUALL_BUF_H

#include <stddef.h>
#include <string.h>

struct buf {
    char *data;
    size_t len, cap;
};

/* Makes room for n more bytes; aborts on out-of-memory. */
void buf_reserve(struct buf *b, size_t n);

/* Frees the storage; the buffer is empty and usable again. */
void buf_free(struct buf *b);

static inline void buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n)
        buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

#define buf_append_lit(b, lit) buf_append((b), (lit), sizeof(lit) - 1)

#endif
