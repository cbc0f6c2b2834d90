/*
 * request.c - the SDK's view of a request: accessors, replies, arena (see request.h).
 */
#include "request.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "async.h"
#include "log.h"
#include "middleware.h"

static __thread char errmsg[256];

/* Formats into a copy first: the arguments may be sq_errmsg() itself ("x: %s", errmsg). */
static void errmsg_vset(const char *fmt, va_list ap)
{
    char tmp[sizeof(errmsg)];

    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    memcpy(errmsg, tmp, sizeof(errmsg));
}

void errmsg_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errmsg_vset(fmt, ap);
    va_end(ap);
}

const char *sq_errmsg(void)
{
    return errmsg;
}

void sq_errmsg_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errmsg_vset(fmt, ap);
    va_end(ap);
}

/* ---- Request accessors ---- */

const char *sq_method(sq_req *r)
{
    return r->http->method;
}

const char *sq_path(sq_req *r)
{
    return r->http->path;
}

const char *sq_query_string(sq_req *r)
{
    return r->http->query ? r->http->query : "";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes one character of src[0..n) at *i, advancing *i; '+' is a space when plus. A '%'
   without two hex digits stays as it is. */
static char pct_next(const char *src, size_t n, size_t *i, bool plus)
{
    char c = src[(*i)++];

    if (c == '+' && plus)
        return ' ';
    if (c == '%' && *i + 2 <= n) {
        int hi = hexval(src[*i]), lo = hexval(src[*i + 1]);
        if (hi >= 0 && lo >= 0) {
            *i += 2;
            return (char)(hi << 4 | lo);
        }
    }
    return c;
}

/* Decodes src[0..n) into the arena. A "%00" would cut the C string short and let a
   check see less than the value holds, so it makes the value unreadable (NULL). */
static char *pct_decode(struct arena *a, const char *src, size_t n, bool plus)
{
    char *dst = arena_alloc(a, n + 1);
    size_t i = 0, j = 0;

    if (!dst) {
        errmsg_set("out of memory");
        return NULL;
    }
    while (i < n)
        if ((dst[j++] = pct_next(src, n, &i, plus)) == '\0') {
            errmsg_set("the value contains an encoded NUL (%%00)");
            return NULL;
        }
    dst[j] = '\0';
    return dst;
}

/* Whether the encoded key src[0..n) decodes to name. */
static bool pct_equals(const char *src, size_t n, const char *name)
{
    size_t i = 0;

    while (i < n)
        if (*name == '\0' || pct_next(src, n, &i, true) != *name++)
            return false;
    return *name == '\0';
}

const char *sq_query(sq_req *r, const char *name)
{
    const char *q = r->http->query, *end = q ? q + r->http->query_len : NULL;

    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pair_end - q));
        const char *key_end = eq ? eq : pair_end;
        if (pct_equals(q, (size_t)(key_end - q), name)) {
            const char *v = eq ? eq + 1 : pair_end;
            return pct_decode(r->arena, v, (size_t)(pair_end - v), true);
        }
        q = amp ? amp + 1 : NULL;
    }
    errmsg_set("no query argument '%s'", name);
    return NULL;
}

static int param_index(sq_req *r, const char *name)
{
    for (size_t i = 0; i < r->params.n; i++)
        if (strcmp(r->params.p[i].name, name) == 0)
            return (int)i;
    errmsg_set("the route has no parameter '%s'", name);
    return -1;
}

const char *sq_param(sq_req *r, const char *name)
{
    int i = param_index(r, name);

    return i < 0 ? NULL : pct_decode(r->arena, r->params.p[i].value, r->params.p[i].len, false);
}

int64_t sq_param_int(sq_req *r, const char *name)
{
    int i = param_index(r, name);

    if (i < 0)
        return 0;
    /* The router matched {name:int}: an optional '-' and digits that fit in int64 (any
       number of leading zeros). Accumulating negatively reaches INT64_MIN too. */
    const char *s = r->params.p[i].value, *end = s + r->params.p[i].len;
    bool neg = s < end && *s == '-';
    int64_t v = 0;
    for (s += neg; s < end && *s >= '0' && *s <= '9'; s++)
        v = v * 10 - (*s - '0');
    return neg ? v : -v;
}

const char *sq_header(sq_req *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->http->nheaders; i++) {
        const struct http1_header *h = &r->http->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
            return h->value;
    }
    return NULL;
}

const char *sq_body(sq_req *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body_len ? r->body : NULL;
}

json_t *sq_body_json(sq_req *r)
{
    json_error_t e;

    if (r->json)
        return r->json;
    if (!r->body_len) {
        errmsg_set("the request has no body");
        return NULL;
    }
    r->json = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &e); /* "Ada" and 42 too */
    if (!r->json)
        errmsg_set("invalid JSON at line %d, column %d: %s", e.line, e.column, e.text);
    return r->json;
}

/* The address written in s[0..n) (blanks around it allowed) into addr; its family or 0. */
static int parse_addr(const char *s, size_t n, unsigned char *addr)
{
    char tmp[INET6_ADDRSTRLEN];

    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET, tmp, addr) == 1)
        return AF_INET;
    return inet_pton(AF_INET6, tmp, addr) == 1 ? AF_INET6 : 0;
}

static bool trusted(const struct sq_req *r, int family, const unsigned char *addr)
{
    return config_cidr_match(r->trusted, r->ntrusted, family, addr);
}

/* Walks the X-Forwarded-For entries from the right (the last header's last entry is the
   one the trusted peer added): the client is the first one not itself a trusted proxy. An
   entry that is not an address ends the walk at the last trusted hop. Returns whether the
   header was there. */
static bool forwarded_for(struct sq_req *r)
{
    bool found = false;

    for (size_t i = r->http->nheaders; i-- > 0;) {
        const struct http1_header *h = &r->http->headers[i];
        if (h->name_len != 15 || strncasecmp(h->name, "X-Forwarded-For", 15) != 0)
            continue;
        found = true;
        for (size_t end = h->value_len; end > 0;) {
            const char *comma = memrchr(h->value, ',', end);
            size_t start = comma ? (size_t)(comma - h->value) + 1 : 0;
            unsigned char a[16];
            int family = parse_addr(h->value + start, end - start, a);
            if (!family)
                return true;
            r->client_family = family;
            memcpy(r->client_addr, a, sizeof(a));
            if (!trusted(r, family, a))
                return true;
            end = comma ? start - 1 : 0;
        }
    }
    return found;
}

int request_client_addr(struct sq_req *r, const unsigned char **addr)
{
    const struct sockaddr_storage *ss = r->peer;

    *addr = r->client_addr;
    if (r->client_family || !ss)
        return r->client_family;
    if (ss->ss_family == AF_INET) {
        memcpy(r->client_addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        r->client_family = AF_INET;
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        bool v4 = IN6_IS_ADDR_V4MAPPED(a6); /* an IPv4 client of a dual-stack listener */
        memcpy(r->client_addr, v4 ? &a6->s6_addr[12] : a6->s6_addr, v4 ? 4 : 16);
        r->client_family = v4 ? AF_INET : AF_INET6;
    }
    if (r->client_family && r->ntrusted && trusted(r, r->client_family, r->client_addr) &&
        !forwarded_for(r)) {
        const char *real = sq_header(r, "X-Real-IP");
        unsigned char a[16];
        int family = real ? parse_addr(real, strlen(real), a) : 0;
        if (family) {
            r->client_family = family;
            memcpy(r->client_addr, a, sizeof(a));
        }
    }
    return r->client_family;
}

const char *sq_remote_addr(sq_req *r)
{
    char tmp[INET6_ADDRSTRLEN] = "unknown";
    const unsigned char *addr;
    int family = request_client_addr(r, &addr);

    if (family)
        inet_ntop(family, addr, tmp, sizeof(tmp));
    return arena_strndup(r->arena, tmp, strlen(tmp));
}

sq_plugin_ctx *sq_req_plugin(sq_req *r)
{
    return r->route ? r->route->plugin : NULL;
}

/* ---- Replies ---- */

/* A header name is a token; a value may not break the header block (CR, LF, NUL). */
static bool header_ok(const char *name, const char *value)
{
    if (!*name || name[strcspn(name, "()<>@,;:\\\"/[]?={} \t\r\n")] != '\0')
        return false;
    return value[strcspn(value, "\r\n")] == '\0';
}

void request_add_header(struct sq_req *r, const char *name, const char *value)
{
    struct response_header *h = arena_alloc(r->arena, sizeof(*h));

    if (!h)
        return; /* out of memory: the reply goes without it */
    h->name = name;
    h->value = value;
    h->next = r->headers;
    r->headers = h;
}

const char *request_u64(struct sq_req *r, uint64_t n)
{
    char tmp[21], *p = tmp + sizeof(tmp);

    do
        *--p = (char)('0' + n % 10);
    while (n /= 10);
    return arena_strndup(r->arena, p, (size_t)(tmp + sizeof(tmp) - p));
}

int sq_reply_header(sq_req *r, const char *name, const char *value)
{
    if (r->status) {
        errmsg_set("the request already has a reply");
        return SQ_EALREADY;
    }
    if (!name || !value || !header_ok(name, value)) {
        errmsg_set("bad reply header '%s'", name ? name : "(null)");
        return SQ_EINVAL;
    }
    struct response_header *h = arena_alloc(r->arena, sizeof(*h));
    if (!h || !(h->name = arena_strndup(r->arena, name, strlen(name))) ||
        !(h->value = arena_strndup(r->arena, value, strlen(value)))) {
        errmsg_set("out of memory");
        return SQ_ENOMEM;
    }
    h->next = r->headers;
    r->headers = h;
    return 0;
}

int sq_reply(sq_req *r, int status, const char *content_type, const void *body, size_t len)
{
    if (r->dropped) {
        errmsg_set("the client is gone: the reply is dropped");
        return SQ_ECANCELED;
    }
    if (r->status || r->in_after) {
        errmsg_set(r->in_after ? "a middleware's after hook cannot reply"
                               : "the request already has a reply");
        return SQ_EALREADY;
    }
    /* The deadline is checked here too, not only by the connection's timer: timers due at
       the same instant run in no set order, and the handler's may come first. */
    if (r->timeout_at && !r->timing_out && loop_now_us(loop_current) >= r->timeout_at) {
        request_timeout_reply(r);
        errmsg_set("the request timed out: its timeout reply was sent");
        return SQ_ETIMEDOUT;
    }
    if (status < 200 || status > 599 || (len && !body) ||
        (content_type && content_type[strcspn(content_type, "\r\n")])) {
        errmsg_set("bad reply: status %d", status);
        return SQ_EINVAL;
    }
    response_date_update(r->date, time(NULL)); /* a handler may have awaited for seconds */
    struct response resp = {
        .status = status,
        .content_type = content_type,
        .body = body,
        .len = len,
        .headers = r->headers,
        .head = r->head,
        .close = r->close,
        .keep_alive = r->keep_alive,
    };
    if (r->mw_passed) { /* the links may look at the reply and add headers */
        r->in_after = true;
        middleware_after(r, &resp);
        r->in_after = false;
        resp.headers = r->headers;
    }
    response_write(r->out, r->date, &resp);
    r->status = status;
    r->reply_len = len;
    return 0;
}

int sq_reply_json(sq_req *r, int status, json_t *json)
{
    char stack[4096], *p = stack;
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t n = json ? json_dumpb(json, stack, sizeof(stack), flags) : 0;

    if (n > sizeof(stack)) {
        p = arena_alloc(r->arena, n);
        n = p ? json_dumpb(json, p, n, flags) : 0;
    }
    json_decref(json);
    if (n == 0) {
        errmsg_set("JSON reply could not be serialized");
        return SQ_EINVAL;
    }
    return sq_reply(r, status, "application/json", p, n);
}

static int reply_error_msg(sq_req *r, int status, const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);

    if (!j) /* not UTF-8: fall back to the reason phrase */
        j = json_pack("{s:s}", "error", response_reason(status));
    return sq_reply_json(r, status, j);
}

int sq_reply_error(sq_req *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = arena_vprintf(r->arena, fmt, ap);
    va_end(ap);
    return reply_error_msg(r, status, msg ? msg : response_reason(status));
}

void request_reply_error(struct sq_req *r, int status, const char *msg)
{
    reply_error_msg(r, status, msg ? msg : response_reason(status));
}

void request_timeout_reply(struct sq_req *r)
{
    r->timing_out = true;
    request_reply_error(r, r->route->timeout_status, "Request timeout");
}

void request_run(struct sq_req *r)
{
    const struct route_entry *e = r->route;
    int rc = e->chain ? middleware_before(r) : MW_NEXT;

    if (rc == MW_NEXT && !r->status && !r->dropped)
        rc = e->route->handler(r);
    if (r->status || r->dropped)
        return;
    if (r->timeout_at && loop_now_us(loop_current) >= r->timeout_at) {
        request_timeout_reply(r); /* it failed because its time ran out */
        return;
    }
    if (rc >= 400 && rc <= 599) {
        request_reply_error(r, rc, NULL);
        return;
    }
    if (r->coro && r->coro->unavailable) { /* the database (or another service) is down */
        request_reply_error(r, 503, NULL);
        return;
    }
    log_msg(SQ_LOG_ERROR, e->plugin->name, "%s returned %d without a reply", e->label, rc);
    request_reply_error(r, 500, NULL);
}

void request_done(struct sq_req *r)
{
    json_decref(r->json);
    r->json = NULL;
}

/* ---- Arena ---- */

void *sq_alloc(sq_req *r, size_t n)
{
    void *p = arena_alloc(r->arena, n);
    if (!p)
        errmsg_set("out of memory");
    return p;
}

char *sq_strdup(sq_req *r, const char *s)
{
    char *d = arena_strndup(r->arena, s, strlen(s));
    if (!d)
        errmsg_set("out of memory");
    return d;
}

char *sq_printf(sq_req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *d = arena_vprintf(r->arena, fmt, ap);
    va_end(ap);
    if (!d)
        errmsg_set("out of memory");
    return d;
}
