/*
 * request.h - the request a handler sees (the SDK's sq_req) and its reply.
 */
#ifndef SQUALL_REQUEST_H
#define SQUALL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "http1.h"
#include "plugin.h"
#include "routes.h"
#include "response.h"
#include "router.h"
#include "squall.h"

struct sq_req {
    const struct http1_request *http; /* strings NUL-terminated in place by the conn */
    const struct route_entry *route;  /* NULL when no route matched */
    struct routes *routes;            /* the table it was routed by (referenced), or NULL */
    struct route_params params;
    struct arena *arena;
    struct buf *out;                  /* the connection's output: the reply goes here */
    struct response_date *date;       /* the host's, brought up to date by each reply */
    const struct sockaddr_storage *peer;
    const struct config_cidr *trusted; /* [server] trusted_proxies */
    size_t ntrusted;
    int client_family;                /* request_client_addr's answer, once asked: */
    unsigned char client_addr[16];    /* AF_INET/AF_INET6 and 4 or 16 bytes; 0 = unknown */
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
    bool in_after;                    /* middleware after hooks run: no reply now */
    bool timing_out;                  /* the timeout reply is being rendered */
    uint64_t timeout_at;              /* the route's deadline (loop us), 0 = none */
    size_t mw_passed;                 /* links of the route's chain that passed it on */
    void *mw_cache;                   /* the cache link's state for this request */
};

/* Calls the route's handler and makes sure exactly one reply is rendered to r->out. */
void request_run(struct sq_req *r);

/* Renders an error reply {"error": msg} (msg NULL = the reason phrase) with extra headers
   already added. */
void request_reply_error(struct sq_req *r, int status, const char *msg);

/* Adds a reply header without copying: name and value must outlive the reply (static, or
   in the request's arena). */
void request_add_header(struct sq_req *r, const char *name, const char *value);

/* n in decimal in the request's arena (for header values); NULL when out of memory. */
const char *request_u64(struct sq_req *r, uint64_t n);

/*
 * The client's address: the peer's, or when the peer is one of the trusted proxies, the one
 * it forwards (the rightmost X-Forwarded-For entry that is not itself a trusted proxy, else
 * X-Real-IP). Returns AF_INET or AF_INET6 with 4 or 16 bytes in addr, or 0 when unknown
 * (e.g. a Unix socket). Worked out once per request.
 */
int request_client_addr(struct sq_req *r, const unsigned char **addr);

/* Renders the route's timeout reply (408 {"error":"Request timeout"} or timeout_status). */
void request_timeout_reply(struct sq_req *r);

/* Releases what the request holds (its parsed JSON); the arena is the caller's to reset. */
void request_done(struct sq_req *r);

/* Sets the message sq_errmsg() returns. */
void errmsg_set(const char *fmt, ...) SQ_PRINTF(1, 2);

#endif
