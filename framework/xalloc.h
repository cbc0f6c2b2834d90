/*
 * xalloc.h - the host's allocators. Out-of-memory inside the host is not recoverable: these
 * log one line and abort instead of returning NULL. (SDK allocators return NULL instead.)
 */
#ifndef SQUALL_XALLOC_H
#define SQUALL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n); /* s[0..n) plus a NUL */

#endif
