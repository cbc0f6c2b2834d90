/*
 * conn.c - one client connection (see conn.h).
 *
 * A connection reads into one buffer and parses requests out of it in place. Requests
 * that arrive together (pipelining) are answered in order, their replies gathered in one
 * output buffer and sent with one send() per batch. While a reply cannot be written the
 * connection stops reading, so a client that does not read cannot make it buffer more.
 *
 * Offsets into the read buffer (head_len, body_have, raw_used) are relative to rpos, the
 * start of the current request, so the buffer can be compacted or grown while a body
 * arrives; the parsed head then points into stale memory and is parsed again before use.
 *
 * Timeouts use one timer per connection and a deadline: moving the deadline later costs
 * nothing (the timer, when it fires early, re-arms for the rest), so a keep-alive request
 * does no timer work at all in the common case.
 */
#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "async.h"
#include "list.h"
#include "middleware.h"
#include "request.h"
#include "server.h"

#define CONN_RBUF 4096       /* read buffer a connection starts with (grows for big heads) */
#define CONN_ARENA 1024      /* arena block embedded in the connection */
#define CONN_OUT_HIGH 65536  /* replies pending past this are sent before parsing more */
#define CONN_OUT_KEEP 262144 /* output buffers bigger than this are freed once sent */
#define CONN_SPARE_MAX 1024  /* closed connections kept for reuse */
#define CONN_LINGER_MS 2000  /* reading what a client still sends after we close */

enum conn_phase { PHASE_HEAD, PHASE_BODY };
enum conn_timer {
    TIMER_NONE,
    TIMER_HEADER,
    TIMER_BODY,
    TIMER_IDLE,
    TIMER_WRITE,
    TIMER_LINGER,
    TIMER_HANDLER, /* the route's timeout: the client gets its timeout reply */
};

struct conn {
    struct server *srv;
    struct conn *prev, *next;
    int fd;
    struct event rev, wev, tev;
    bool reading, writing, timer_on;
    bool closing;   /* close once the replies are sent */
    bool eof;       /* the client shut down its sending side */
    bool lingering; /* we shut down ours and discard what still comes */
    bool continue_sent;
    bool busy;       /* a handler's coroutine is running for the current request */
    bool in_process; /* conn_process is on the stack */
    bool gone;       /* closed while busy: freed when the handler's coroutine ends */
    enum conn_phase phase;
    enum conn_timer timer_kind;
    uint64_t deadline, timer_at; /* ms on the loop's clock */

    char *rbuf;
    size_t rcap, rlen, rpos;
    size_t want; /* bytes from rpos the current request needs, when known */
    struct buf out;
    size_t osent;

    struct http1_request head;
    const char *head_at; /* where head was parsed; != rbuf + rpos means stale */
    size_t head_len, body_have, raw_used;
    size_t used; /* bytes of the request being handled, head and raw body */
    struct http1_chunked chunk;

    struct sockaddr_storage peer;
    struct sq_req req;
    struct arena arena;
    char arena_buf[CONN_ARENA];
};

static void conn_process(struct conn *c);

/* ---- Timers ---- */

static void timer_arm(struct conn *c, uint64_t now, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    event_add(&c->tev, &tv);
    c->timer_on = true;
    c->timer_at = now + ms;
}

/* Sets the deadline kind fires at; re-arms only when it is earlier than the armed one. */
static void timer_set(struct conn *c, enum conn_timer kind, uint64_t ms)
{
    uint64_t now = server_now_ms(c->srv);

    c->timer_kind = kind;
    c->deadline = now + ms;
    if (!c->timer_on || c->timer_at > c->deadline)
        timer_arm(c, now, ms);
}

static int conn_flush(struct conn *c);

/* The handler ran past its route's timeout: the client gets the timeout reply now, and
   whatever the handler replies later is refused (its awaits fail with SQ_ETIMEDOUT, as its
   coroutine has the same deadline). */
static void conn_handler_timeout(struct conn *c)
{
    struct sq_req *r = &c->req;

    c->timer_kind = TIMER_NONE;
    if (!c->busy || r->status || r->dropped)
        return;
    request_timeout_reply(r);
    conn_flush(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    uint64_t now = server_now_ms(c->srv);

    c->timer_on = false;
    if (c->timer_kind == TIMER_NONE)
        return; /* a handler is running: the connection has no deadline of its own */
    if (now < c->deadline) {
        timer_arm(c, now, c->deadline - now);
        return;
    }
    if (c->timer_kind == TIMER_HANDLER) {
        conn_handler_timeout(c);
        return;
    }
    /* Slow headers, a stalled body or writer, an idle keep-alive: all just close. */
    conn_close(c);
}

/* ---- Reading and writing ---- */

static void reading_set(struct conn *c, bool on)
{
    if (on == c->reading)
        return;
    if (on)
        event_add(&c->rev, NULL);
    else
        event_del(&c->rev);
    c->reading = on;
}

static void writing_set(struct conn *c, bool on)
{
    if (on == c->writing)
        return;
    if (on)
        event_add(&c->wev, NULL);
    else
        event_del(&c->wev);
    c->writing = on;
    reading_set(c, !on && !c->eof);
}

/* Sends what is pending. Returns 0 (all sent, or the rest waits for EV_WRITE) or -1 when
   the connection failed and was closed. */
static int conn_flush(struct conn *c)
{
    while (c->osent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->osent, c->out.len - c->osent, MSG_NOSIGNAL);
        if (n >= 0) {
            c->osent += (size_t)n;
        } else if (errno == EAGAIN) {
            writing_set(c, true);
            return 0;
        } else if (errno != EINTR) {
            conn_close(c);
            return -1;
        }
    }
    c->out.len = c->osent = 0;
    if (c->out.cap > CONN_OUT_KEEP)
        buf_free(&c->out);
    writing_set(c, false);
    return 0;
}

/* Makes room at the end of the read buffer: first by dropping finished requests, then by
   growing to what the current request needs. */
static void conn_make_room(struct conn *c)
{
    if (c->rlen < c->rcap)
        return;
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
        return;
    }
    size_t cap = c->rcap * 2 > c->want ? c->rcap * 2 : c->want;
    c->rbuf = xrealloc(c->rbuf, cap);
    c->rcap = cap;
}

/* An idle connection gives back a read buffer that a big request made grow. */
static void conn_rewind(struct conn *c)
{
    c->rpos = c->rlen = 0;
    if (c->rcap > CONN_RBUF) {
        free(c->rbuf);
        c->rbuf = xmalloc(CONN_RBUF);
        c->rcap = CONN_RBUF;
    }
}

/* ---- Requests ---- */

/* Turns the head's strings into C strings by writing NULs over the byte after each (a
   space, '?', CR or whitespace): the head is never parsed again after this. */
static void conn_terminate_head(struct conn *c)
{
    struct http1_request *h = &c->head;
    const char *lo = c->rbuf + c->rpos, *hi = lo + c->head_len;
#define TERMINATE(p, n)                                                                            \
    do {                                                                                           \
        if ((p) >= lo && (p) + (n) < hi)                                                           \
            *(char *)((p) + (n)) = '\0';                                                           \
    } while (0)
    TERMINATE(h->method, h->method_len);
    TERMINATE(h->path, h->path_len);
    if (h->query)
        TERMINATE(h->query, h->query_len);
    for (size_t i = 0; i < h->nheaders; i++)
        TERMINATE(h->headers[i].value, h->headers[i].value_len);
#undef TERMINATE
}

static void conn_log_access(struct conn *c, const struct sq_req *r)
{
    struct accesslog *al = c->srv->accesslog;
    const char *ref = sq_header(&c->req, "Referer"), *ua = sq_header(&c->req, "User-Agent");
    char line[2048];

    int n = snprintf(
        line, sizeof(line), "%s - - [%s] \"%s %s%s%s HTTP/1.%d\" %d %zu \"%s\" \"%s\"\n",
        sq_remote_addr(&c->req), accesslog_time(al, server_now_ms(c->srv) / 1000), r->http->method,
        r->http->path, r->http->query ? "?" : "", r->http->query ? r->http->query : "",
        r->http->minor, r->status, r->head ? 0 : r->reply_len, ref ? ref : "-", ua ? ua : "-");
    if (n > 0)
        accesslog_write(al, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void conn_request_end(struct conn *c);

static int request_main(void *arg)
{
    request_run(arg);
    return 0;
}

static void on_handler_done(struct coro *co, void *data)
{
    conn_request_end(data);
}

/* Runs the route's handler in a coroutine of its own. A handler that never awaits has
   ended (and conn_request_end has run) when this returns. */
static void conn_run_handler(struct conn *c, struct sq_req *r)
{
    if (r->route->chain && middleware_answer_early(r)) { /* a cache hit needs no coroutine */
        conn_request_end(c);
        return;
    }
    struct coro *co = coro_new(c->srv->loop, request_main, r, &c->arena);

    if (!co) {
        request_reply_error(r, 503, "out of memory");
        conn_request_end(c);
        return;
    }
    coro_set_plugin(co, r->route->plugin);
    co->label = r->route->label;
    co->on_done = on_handler_done;
    co->done_data = c;
    r->coro = co;
    coro_resume(co);
}

/* The handler waits for the first time: from now the client's timeout reply has to come
   from a timer, at the deadline, however long the handler still waits. */
static void on_handler_park(struct coro *co)
{
    struct conn *c = co->done_data;
    uint64_t now = loop_now_us(c->srv->loop), at = c->req.timeout_at;

    timer_set(c, TIMER_HANDLER, at > now ? (at - now + 999) / 1000 : 0);
}

void conn_arm_timeout(struct sq_req *r, uint64_t ms)
{
    /* No timer yet: a handler that answers without waiting (most) needs none, and a late
       reply of one that did not wait becomes the timeout reply in sq_reply. */
    r->coro->deadline = r->timeout_at = loop_now_us(r->coro->loop) + ms * 1000;
    r->coro->on_park = on_handler_park;
}

static void conn_route(struct conn *c, struct sq_req *r)
{
    const struct http1_request *h = r->http;
    char allow[128];
    void *route;

    r->routes = c->srv->routes; /* held to the end: a reload meanwhile changes nothing here */
    routes_ref(r->routes);
    switch (router_match(r->routes->router, h->method, h->method_len, h->path, h->path_len,
                         &route, &r->params, allow, sizeof(allow))) {
    case ROUTER_FOUND:
        r->route = route;
        conn_run_handler(c, r);
        return;
    case ROUTER_METHOD_NOT_ALLOWED:
        sq_reply_header(r, "Allow", allow);
        request_reply_error(r, 405, NULL);
        break;
    case ROUTER_NOT_FOUND: request_reply_error(r, 404, NULL); break;
    }
    conn_request_end(c);
}

/* Resets the request for a new use; the reply goes to the connection's output. Field by
   field: clearing the whole struct (parameter slots included) shows in the profile. */
static struct sq_req *conn_request(struct conn *c)
{
    struct sq_req *r = &c->req;

    r->http = NULL;
    r->route = NULL;
    r->routes = NULL;
    r->params.n = 0;
    r->arena = &c->arena;
    r->out = &c->out;
    r->date = &c->srv->date;
    r->peer = &c->peer;
    r->trusted = c->srv->cfg->trusted;
    r->ntrusted = c->srv->cfg->ntrusted;
    r->client_family = 0;
    r->body = NULL;
    r->body_len = 0;
    r->json = NULL;
    r->coro = NULL;
    r->dropped = false;
    r->headers = NULL;
    r->status = 0;
    r->reply_len = 0;
    r->head = r->close = r->keep_alive = false;
    r->mw_passed = 0;
    r->in_after = r->timing_out = false;
    r->timeout_at = 0;
    r->mw_cache = NULL;
    return r;
}

/* Starts handling the request whose head and body are complete. */
static void conn_dispatch(struct conn *c, const char *body, size_t len)
{
    struct http1_request *h = &c->head;

    if (c->head_at != c->rbuf + c->rpos) { /* the buffer moved under a body */
        int n = http1_parse_request(c->rbuf + c->rpos, c->head_len, &c->srv->limits, h);
        assert(n == (int)c->head_len);
        (void)n;
    }
    conn_terminate_head(c);
    struct sq_req *r = conn_request(c);
    r->http = h;
    r->body = body;
    r->body_len = len;
    r->head = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
    r->close = !h->keep_alive || c->srv->draining;
    r->keep_alive = h->keep_alive && h->minor == 0;
    c->busy = true;
    conn_route(c, r);
}

/* The request is answered (or its client is gone): the connection moves on to the next. */
static void conn_request_end(struct conn *c)
{
    struct sq_req *r = &c->req;

    if (c->srv->accesslog && !c->gone)
        conn_log_access(c, r);
    if (r->close)
        c->closing = true;
    if (r->mw_passed)
        middleware_end(r);
    request_done(r);
    routes_unref(r->routes);
    r->routes = NULL;
    arena_reset(&c->arena);
    c->rpos += c->used;
    c->phase = PHASE_HEAD;
    c->busy = false;
    if (c->gone) {
        conn_close(c);
        return;
    }
    if (!c->in_process) { /* the handler awaited: go on with what is buffered */
        reading_set(c, !c->eof && !c->writing);
        conn_process(c);
    }
}

void conn_drain(struct conn *c)
{
    if (c->busy && !c->req.status)
        c->req.close = true; /* its reply says Connection: close, then it closes */
    else if (c->busy || c->writing)
        c->closing = true;
    else if (c->lingering || (c->phase == PHASE_HEAD && c->rpos == c->rlen))
        conn_close(c);
}

struct conn *conn_next(const struct conn *c)
{
    return c->next;
}

/* Answers a request that cannot be parsed, then closes. */
static void conn_fail(struct conn *c, int status)
{
    struct sq_req *r = conn_request(c);

    r->close = true;
    request_reply_error(r, status, NULL);
    arena_reset(&c->arena);
    c->closing = true;
}

/* Parses the next request's head. Returns 1 when it is complete, else 0. */
static int conn_head(struct conn *c)
{
    const char *start = c->rbuf + c->rpos;
    int n = http1_parse_request(start, c->rlen - c->rpos, &c->srv->limits, &c->head);

    if (n <= 0) {
        if (n < 0)
            conn_fail(c, -n);
        return 0;
    }
    c->head_at = start;
    c->head_len = (size_t)n;
    c->body_have = c->raw_used = 0;
    c->want = c->head_len;
    c->continue_sent = false;
    c->phase = PHASE_BODY;
    c->timer_kind = TIMER_NONE; /* the next request gets a header deadline of its own */
    if (c->head.chunked)
        http1_chunked_init(&c->chunk, c->srv->limits.max_body);
    else if (c->head.content_length > 0)
        c->want += (size_t)c->head.content_length;
    return 1;
}

/* The body is not all here: a client that sent "Expect: 100-continue" is told to go on. */
static int conn_await_body(struct conn *c)
{
    if (c->head.expect_continue && c->head.minor == 1 && !c->continue_sent) {
        buf_append_lit(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        c->continue_sent = true;
    }
    return 0;
}

/* Waits for the current request's body, then dispatches it. Returns 1 to go on parsing. */
static int conn_body(struct conn *c)
{
    char *body = c->rbuf + c->rpos + c->head_len;
    size_t avail = c->rlen - c->rpos - c->head_len, len, used;

    if (c->head.chunked) {
        size_t out_len, in_used;
        int rc = http1_chunked_decode(&c->chunk, body + c->body_have, body + c->raw_used,
                                      avail - c->raw_used, &out_len, &in_used);
        c->body_have += out_len;
        c->raw_used += in_used;
        if (rc < 0)
            conn_fail(c, -rc);
        if (rc <= 0)
            return rc < 0 ? 0 : conn_await_body(c);
        len = c->body_have;
        used = c->raw_used;
    } else {
        len = used = c->head.content_length > 0 ? (size_t)c->head.content_length : 0;
        if (avail < len)
            return conn_await_body(c);
    }
    c->used = c->head_len + used;
    conn_dispatch(c, body, len);
    return !c->busy && !c->closing;
}

/* After the replies are sent: shut our side and read until the client closes, so the last
   reply is not destroyed by a reset for data the client sent after it (RFC 9112 §9.6). */
static void conn_linger(struct conn *c)
{
    if (c->eof || c->srv->draining) { /* shutting down: no waiting on clients */
        conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    reading_set(c, true);
    timer_set(c, TIMER_LINGER, CONN_LINGER_MS);
}

/* Decides what the connection waits for next. */
static void conn_settle(struct conn *c)
{
    const struct config *cfg = c->srv->cfg;

    if (c->writing)
        timer_set(c, TIMER_WRITE, cfg->keepalive_timeout_ms);
    else if (c->busy) {
        if (c->timer_kind != TIMER_HANDLER) /* no route timeout: its time is its own */
            c->timer_kind = TIMER_NONE;
    } else if (c->closing)
        conn_linger(c);
    else if (c->eof)
        conn_close(c); /* what could be answered was; a partial request never completes */
    else if (c->phase == PHASE_BODY)
        timer_set(c, TIMER_BODY, cfg->header_timeout_ms);
    else if (c->rpos < c->rlen) {
        if (c->timer_kind != TIMER_HEADER) /* a slow client never moves its deadline */
            timer_set(c, TIMER_HEADER, cfg->header_timeout_ms);
    } else {
        conn_rewind(c);
        timer_set(c, TIMER_IDLE, cfg->keepalive_timeout_ms);
    }
}

static void conn_process(struct conn *c)
{
    c->in_process = true;
    while (!c->closing && !c->writing && !c->busy) {
        int more = c->phase == PHASE_HEAD ? conn_head(c) : conn_body(c);
        if (!more)
            break;
        if (c->out.len > CONN_OUT_HIGH) {
            c->in_process = false;
            if (conn_flush(c) < 0)
                return;
            c->in_process = true;
        }
    }
    c->in_process = false;
    if (conn_flush(c) == 0)
        conn_settle(c);
}

/* A read while a handler runs: the buffer must not move under the request, so data goes
   only into the room left (pipelined requests wait there); without room, reading pauses.
   The client closing its side now is taken as the client going away (as Tornado and nginx
   do): the handler is cancelled and its reply dropped. */
static void conn_read_busy(struct conn *c)
{
    if (c->rlen == c->rcap) {
        reading_set(c, false);
        return;
    }
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n > 0)
        c->rlen += (size_t)n;
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        conn_close(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (c->busy) {
        conn_read_busy(c);
        return;
    }
    if (c->lingering) {
        char sink[4096];
        ssize_t n = recv(fd, sink, sizeof(sink), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_close(c);
        return;
    }
    conn_make_room(c);
    ssize_t n = recv(fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n > 0) {
        c->rlen += (size_t)n;
    } else if (n == 0) {
        c->eof = true;
        reading_set(c, false);
    } else if (errno == EAGAIN || errno == EINTR) {
        return;
    } else {
        conn_close(c); /* reset by the client: nobody is left to answer */
        return;
    }
    conn_process(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (conn_flush(c) < 0)
        return;
    if (c->writing)
        timer_set(c, TIMER_WRITE, c->srv->cfg->keepalive_timeout_ms);
    else
        conn_process(c); /* go on with requests that waited for the output to drain */
}

/* ---- Life cycle ---- */

static void conn_free(struct conn *c)
{
    buf_free(&c->out);
    free(c->rbuf);
    arena_deinit(&c->arena);
    free(c);
}

static struct conn *conn_get(struct server *srv)
{
    struct conn *c = srv->spare;

    if (c) {
        srv->spare = c->next;
        srv->nspare--;
        return c;
    }
    c = xcalloc(1, sizeof(*c));
    c->rbuf = xmalloc(CONN_RBUF);
    c->rcap = CONN_RBUF;
    arena_init(&c->arena, c->arena_buf, sizeof(c->arena_buf));
    return c;
}

void conn_start(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    struct conn *c = conn_get(srv);

    c->srv = srv;
    c->fd = fd;
    memset(&c->peer, 0, sizeof(c->peer));
    memcpy(&c->peer, peer, peerlen < sizeof(c->peer) ? peerlen : sizeof(c->peer));
    c->rpos = c->rlen = c->osent = c->out.len = 0;
    c->reading = c->writing = c->timer_on = false;
    c->closing = c->eof = c->lingering = false;
    c->busy = c->in_process = c->gone = false;
    c->phase = PHASE_HEAD;
    event_assign(&c->rev, srv->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, srv->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    evtimer_assign(&c->tev, srv->base, on_timer, c);
    LIST_PUSH(srv->conns, c, prev, next);
    srv->nconns++;
    reading_set(c, true);
    /* The first request gets header_timeout from the connect on. */
    c->timer_kind = TIMER_NONE;
    timer_set(c, TIMER_HEADER, srv->cfg->header_timeout_ms);
}

/* Releases the socket and leaves the list of live connections. */
static void conn_detach(struct conn *c)
{
    struct server *srv = c->srv;

    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->tev);
    close(c->fd);
    c->fd = -1;
    LIST_UNLINK(srv->conns, c, prev, next);
    srv->nconns--;
    server_fd_released(srv);
}

void conn_close(struct conn *c)
{
    struct server *srv = c->srv;

    if (!c->gone)
        conn_detach(c);
    if (c->busy) { /* the handler's coroutine still uses the connection: cancel it first */
        c->gone = true;
        c->req.dropped = true;
        if (c->req.coro)
            coro_cancel(c->req.coro);
        return;
    }
    c->gone = false;
    arena_reset(&c->arena);
    conn_rewind(c);
    if (srv->nspare < CONN_SPARE_MAX && c->out.cap <= CONN_OUT_KEEP) {
        c->next = srv->spare;
        srv->spare = c;
        srv->nspare++;
    } else {
        conn_free(c);
    }
}

void conn_free_spares(struct server *srv)
{
    while (srv->spare) {
        struct conn *c = srv->spare;
        srv->spare = c->next;
        conn_free(c);
    }
    srv->nspare = 0;
}
