/*
 * response.h - rendering HTTP/1.1 replies into a connection's output buffer.
 */
#ifndef SQUALL_RESPONSE_H
#define SQUALL_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

/* An extra reply header (sq_reply_header); lives in the request's arena. */
struct response_header {
    struct response_header *next;
    const char *name, *value;
};

struct response {
    int status;
    const char *content_type; /* NULL = text/plain; charset=utf-8 */
    const void *body;
    size_t len;
    const struct response_header *headers; /* in reverse order of adding */
    bool head;       /* HEAD: headers only, Content-Length still of the body */
    bool close;      /* send Connection: close */
    bool keep_alive; /* send Connection: keep-alive (HTTP/1.0 clients that asked) */
};

/* "Date: <IMF-fixdate>\r\n", re-rendered only when the second changes. */
struct response_date {
    time_t sec;
    char line[48];
    size_t len;
};

/* Updates d for now (wall-clock seconds). Cheap when the second is unchanged. */
void response_date_update(struct response_date *d, time_t now);

/* The reason phrase for status ("Not Found"), or "Unknown" for codes it does not know. */
const char *response_reason(int status);

/* Appends the whole reply: status line, Server, Date, Content-Type, Content-Length, the
   extra headers, Connection when needed, and the body unless head. 204 and 304 replies
   have neither Content-Length nor a body. */
void response_write(struct buf *out, const struct response_date *date, const struct response *r);

#endif
