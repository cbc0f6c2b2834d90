/*
 * request.h - the request a handler sees (the SDK's sq_req) and its reply.
 */
#ifndef SQUALL_REQUEST_H
#define SQUALL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "buf.h"
#include "http1.h"
#include "plugin.h"
#include "response.h"
#include "router.h"
#include "squall.h"

struct sq_req {
    const struct http1_request *http; /* strings NUL-terminated in place by the conn */
    const struct route_entry *route;  /* NULL when no route matched */
    struct route_params params;
    struct arena *arena;
    struct buf *out;                  /* the connection's output: the reply goes here */
    struct response_date *date;       /* the host's, brought up to date by each reply */
    const struct sockaddr_storage *peer;
    const char *body;                 /* NULL when there is none */
    size_t body_len;
    json_t *json;                     /* sq_body_json's parse, freed by request_done */
    struct coro *coro;                /* the handler's coroutine while it runs */
    bool dropped;                     /* the client is gone: replies go nowhere */
    struct response_header *headers;  /* sq_reply_header, newest first */
    int status;                       /* of the reply once sent; 0 before */
    size_t reply_len;                 /* body bytes of the reply, for the access log */
    bool head;                        /* HEAD: the reply has no body */
    bool close;                       /* the connection closes after this reply */
    bool keep_alive;                  /* HTTP/1.0 keep-alive: say so in the reply */
};

/* Calls the route's handler and makes sure exactly one reply is rendered to r->out. */
void request_run(struct sq_req *r);

/* Renders an error reply {"error": msg} (msg NULL = the reason phrase) with extra headers
   already added. */
void request_reply_error(struct sq_req *r, int status, const char *msg);

/* Releases what the request holds (its parsed JSON); the arena is the caller's to reset. */
void request_done(struct sq_req *r);

/* Sets the message sq_errmsg() returns. */
void errmsg_set(const char *fmt, ...) SQ_PRINTF(1, 2);

#endif
