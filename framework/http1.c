/*
 * http1.c - strict, zero-copy HTTP/1.1 request parser and chunked body decoder.
 *
 * The request parser is a single left-to-right pass in which every verdict depends only on
 * the bytes before the point where it is reached: a byte that cannot start or continue what
 * the grammar expects is refused at once, a line is accepted only when its CRLF is seen,
 * and the cross-field checks run at the empty line that ends the head. So a prefix of the
 * input either runs out of bytes first (0) or reaches the very verdict the whole input
 * reaches, and restarting with more bytes can never change a result. The 431 limit is kept
 * the same way: the parser only ever looks at the first max_header bytes.
 */
#include "http1.h"

#include <limits.h>
#include <string.h>

/* Character classes, RFC 9110 §5.6.2 and §5.5, RFC 3986 §3.2.2. */
enum {
    C_TCHAR = 1, /* token character */
    C_VCHAR = 2, /* VCHAR or obs-text: request-target bytes */
    C_FIELD = 4, /* field-vchar, SP or HTAB: field value bytes */
    C_HOST = 8,  /* unreserved, sub-delims, ':', '[', ']', '%': Host value bytes */
    C_WS = 16,   /* SP or HTAB */
};

static const unsigned char cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  20, 0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    20, 15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,  /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 6,  14, 6,  6,  /* 0x30 */
    6,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15, /* 0x50 */
    7,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,  /* 0x70 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x80 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x90 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xa0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xb0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xc0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xd0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xe0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xf0 */
};

/* Connection tokens seen so far in the head. */
enum { CONN_CLOSE = 1, CONN_KEEP_ALIVE = 2 };

/* Index of the first byte in b[i..n) outside class mask, or n. The hot loop of the parser. */
static size_t span(const unsigned char *b, size_t i, size_t n, unsigned mask)
{
    while (i + 4 <= n && (cls[b[i]] & cls[b[i + 1]] & cls[b[i + 2]] & cls[b[i + 3]] & mask))
        i += 4;
    while (i < n && (cls[b[i]] & mask))
        i++;
    return i;
}

bool http1_name_is(const char *name, size_t len, const char *lower)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (lower[i] == '\0' || c != (unsigned char)lower[i])
            return false;
    }
    return lower[len] == '\0';
}

/* Steps *pos over the empty lines a client may send before the request line (RFC 9112
   §2.2). Returns 1 at the first byte of the request line, 0 when more bytes are needed,
   -400 on a bare CR or LF. */
static int skip_empty_lines(const unsigned char *b, size_t n, size_t *pos)
{
    size_t i = *pos;

    while (i < n && (b[i] == '\r' || b[i] == '\n')) {
        if (b[i] == '\n')
            return -400;
        if (i + 1 == n)
            return 0;
        if (b[i + 1] != '\n')
            return -400;
        i += 2;
    }
    *pos = i;
    return i < n;
}

/* Checks "http://" or "https://" (scheme case-insensitive) at the start of t[0..n) and
   returns its length, or 0. */
static size_t http_scheme_len(const char *t, size_t n)
{
    if (n >= 7 && http1_name_is(t, 7, "http://"))
        return 7;
    if (n >= 8 && http1_name_is(t, 8, "https://"))
        return 8;
    return 0;
}

/* Derives path and query from the request-target: origin-form, absolute-form with an http(s)
   scheme, or asterisk-form for OPTIONS. CONNECT (authority-form, tunnels) is refused. */
static int split_target(struct http1_request *req)
{
    const char *t = req->target, *q;
    size_t n = req->target_len, s, a;

    req->query = NULL;
    req->query_len = 0;
    if (req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0)
        return -400;
    if (n == 1 && t[0] == '*') {
        req->path = t;
        req->path_len = 1;
        return req->method_len == 7 && memcmp(req->method, "OPTIONS", 7) == 0 ? 0 : -400;
    }
    if (t[0] != '/') {
        s = http_scheme_len(t, n);
        if (s == 0)
            return -400;
        a = span((const unsigned char *)t, s, n, C_HOST); /* no '@': userinfo is refused */
        if (a == s || (a < n && t[a] != '/' && t[a] != '?'))
            return -400;
        t += a;
        n -= a;
    }
    q = memchr(t, '?', n);
    req->path = t;
    req->path_len = q != NULL ? (size_t)(q - t) : n;
    if (q != NULL) {
        req->query = q + 1;
        req->query_len = (size_t)(t + n - req->query);
    }
    if (req->path_len == 0) { /* absolute-form without a path */
        req->path = "/";
        req->path_len = 1;
    }
    return 0;
}

/* Matches "HTTP/" DIGIT "." DIGIT CRLF at *pos. A well-formed version other than 1.0 and
   1.1 is 505; any other deviation 400, found at the first byte that does not fit. */
static int parse_version(const unsigned char *b, size_t n, size_t *pos, int *minor)
{
    static const char pattern[] = "HTTP/#.#\r\n";
    size_t i = *pos, k;

    for (k = 0; k < sizeof(pattern) - 1 && i + k < n; k++) {
        unsigned char c = b[i + k];
        if (pattern[k] == '#' ? (c < '0' || c > '9') : c != (unsigned char)pattern[k])
            return -400;
    }
    if (k < sizeof(pattern) - 1)
        return 0;
    if (b[i + 5] != '1' || b[i + 7] > '1')
        return -505;
    *minor = b[i + 7] - '0';
    *pos = i + k;
    return 1;
}

/* Parses method SP request-target SP HTTP-version CRLF at *pos. The 414 is decided as soon
   as more than HTTP1_MAX_TARGET target bytes are seen. Returns 1, 0 for more, or -status. */
static int parse_request_line(const char *buf, size_t n, size_t *pos, struct http1_request *req)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t i = *pos, e, lim;

    e = span(b, i, n, C_TCHAR);
    if (e == n)
        return 0;
    if (e == i || b[e] != ' ')
        return -400;
    req->method = buf + i;
    req->method_len = e - i;
    i = e + 1;
    lim = n - i > HTTP1_MAX_TARGET ? i + HTTP1_MAX_TARGET + 1 : n;
    e = span(b, i, lim, C_VCHAR);
    if (e - i > HTTP1_MAX_TARGET)
        return -414;
    if (e == n)
        return 0;
    if (e == i || b[e] != ' ')
        return -400;
    req->target = buf + i;
    req->target_len = e - i;
    if (split_target(req) < 0)
        return -400;
    *pos = e + 1;
    return parse_version(b, n, pos, &req->minor);
}

/* Parses one field line at *pos into *h: name ":" OWS value OWS CRLF. Returns 1 for a field,
   2 for the empty line that ends the head, 0 when more bytes are needed, or -400. */
static int parse_field(const char *buf, size_t n, size_t *pos, struct http1_header *h)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t i = *pos, e, v, ve;

    if (i < n && b[i] == '\r') {
        if (i + 1 == n)
            return 0;
        *pos = i + 2;
        return b[i + 1] == '\n' ? 2 : -400;
    }
    e = span(b, i, n, C_TCHAR); /* SP or HTAB first (obs-fold) stops here too */
    if (e == n)
        return 0;
    if (e == i || b[e] != ':')
        return -400;
    v = span(b, e + 1, n, C_WS);
    ve = span(b, v, n, C_FIELD);
    if (ve + 1 >= n)
        return ve == n || b[ve] == '\r' ? 0 : -400;
    if (b[ve] != '\r' || b[ve + 1] != '\n')
        return -400;
    *pos = ve + 2;
    while (ve > v && (cls[b[ve - 1]] & C_WS))
        ve--;
    h->name = buf + i;
    h->name_len = e - i;
    h->value = buf + v;
    h->value_len = ve - v;
    return 1;
}

/* Content-Length = 1*DIGIT (a list is refused); a repeat must carry the same value. */
static int content_length(struct http1_request *req, const char *v, size_t n)
{
    int64_t x = 0;

    if (n == 0)
        return -400;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9 || x > (INT64_MAX - d) / 10)
            return -400;
        x = x * 10 + d;
    }
    if (req->content_length >= 0 && req->content_length != x)
        return -400;
    req->content_length = x;
    return 0;
}

/* Records the "close" and "keep-alive" options of a Connection list. */
static unsigned connection_tokens(const char *v, size_t n)
{
    unsigned seen = 0;
    size_t i = 0, s, e;

    while (i < n) {
        while (i < n && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
            i++;
        for (s = i; i < n && v[i] != ','; i++)
            ;
        for (e = i; e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'); e--)
            ;
        if (http1_name_is(v + s, e - s, "close"))
            seen |= CONN_CLOSE;
        else if (http1_name_is(v + s, e - s, "keep-alive"))
            seen |= CONN_KEEP_ALIVE;
    }
    return seen;
}

/* Folds one header field into the derived request fields. Returns 0 or -400. */
static int derive_field(struct http1_request *req, const struct http1_header *h, unsigned *conn)
{
    const char *v = h->value;
    size_t n = h->value_len;

    switch (h->name_len) {
    case 4:
        if (!http1_name_is(h->name, 4, "host"))
            break;
        if (req->has_host || span((const unsigned char *)v, 0, n, C_HOST) != n)
            return -400;
        req->has_host = true;
        break;
    case 6:
        if (http1_name_is(h->name, 6, "expect") && http1_name_is(v, n, "100-continue"))
            req->expect_continue = req->minor == 1;
        break;
    case 10:
        if (http1_name_is(h->name, 10, "connection"))
            *conn |= connection_tokens(v, n);
        break;
    case 14:
        if (http1_name_is(h->name, 14, "content-length"))
            return content_length(req, v, n);
        break;
    case 17:
        if (!http1_name_is(h->name, 17, "transfer-encoding"))
            break;
        if (req->chunked || req->minor == 0 || !http1_name_is(v, n, "chunked"))
            return -400;
        req->chunked = true;
        break;
    }
    return 0;
}

/* The checks that need the whole head: Host, framing, body limit, persistence. */
static int finish_head(struct http1_request *req, const struct http1_limits *lim, unsigned conn)
{
    if (req->minor == 1 && !req->has_host)
        return -400;
    if (req->chunked && req->content_length >= 0)
        return -400;
    if (req->content_length > 0 && (uint64_t)req->content_length > lim->max_body)
        return -413;
    if (req->minor == 1)
        req->keep_alive = !(conn & CONN_CLOSE);
    else
        req->keep_alive = conn == CONN_KEEP_ALIVE;
    return 0;
}

/* Parses the head within buf[0..n): the caller has already cut n to max_header. */
static int parse_head(const char *buf, size_t n, const struct http1_limits *lim,
                      struct http1_request *req)
{
    struct http1_header h;
    unsigned conn = 0;
    size_t pos = 0;
    int rc;

    req->nheaders = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->expect_continue = req->has_host = false;
    rc = skip_empty_lines((const unsigned char *)buf, n, &pos);
    if (rc <= 0)
        return rc;
    rc = parse_request_line(buf, n, &pos, req);
    if (rc <= 0)
        return rc;
    while ((rc = parse_field(buf, n, &pos, &h)) == 1) {
        if (req->nheaders == HTTP1_MAX_HEADERS)
            return -431;
        req->headers[req->nheaders++] = h;
        rc = derive_field(req, &h, &conn);
        if (rc < 0)
            return rc;
    }
    if (rc <= 0)
        return rc;
    rc = finish_head(req, lim, conn);
    if (rc < 0)
        return rc;
    req->header_len = pos;
    return (int)pos;
}

int http1_parse_request(const char *buf, size_t len, const struct http1_limits *lim,
                        struct http1_request *req)
{
    size_t cap = lim->max_header < INT_MAX ? lim->max_header : INT_MAX;
    int rc = parse_head(buf, len < cap ? len : cap, lim, req);

    return rc == 0 && len > cap ? -431 : rc;
}

/* ---- Chunked transfer coding ---- */

#define CHUNK_MAX_LINE 4096      /* bytes in one size line or trailer line */
#define CHUNK_MAX_TRAILERS 16384 /* bytes in the whole trailer section */

enum {
    CH_SIZE,         /* chunk-size hex digits */
    CH_SIZE_WS,      /* BWS between the size and ';' */
    CH_EXT,          /* chunk extensions up to CR */
    CH_SIZE_LF,      /* LF ending the size line */
    CH_DATA,         /* chunk data */
    CH_DATA_CR,      /* CRLF after the data */
    CH_DATA_LF,
    CH_TRAILER,      /* start of a trailer line or of the final CRLF */
    CH_TRAILER_LINE, /* inside a trailer line */
    CH_TRAILER_LF,
    CH_END_LF,       /* LF of the final CRLF */
    CH_DONE,
};

void http1_chunked_init(struct http1_chunked *c, uint64_t max_body)
{
    c->state = CH_SIZE;
    c->remaining = 0;
    c->total = 0;
    c->max_body = max_body;
    c->line = 0;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static bool is_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* One byte of the size line. In CH_SIZE, c->line counts the digits, of which at most 16 fit;
   then it counts the whole line but its CRLF. */
static int chunk_size_byte(struct http1_chunked *c, unsigned char ch)
{
    int d = hex_value(ch);

    if (c->state == CH_SIZE && d >= 0) {
        if (++c->line > 16)
            return -400;
        c->remaining = c->remaining << 4 | (unsigned)d;
        return 0;
    }
    if (c->line == 0) /* no digits */
        return -400;
    if (ch == '\r' && c->state != CH_SIZE_WS)
        c->state = CH_SIZE_LF;
    else if (++c->line > CHUNK_MAX_LINE)
        return -400;
    else if (ch == ';')
        c->state = CH_EXT;
    else if (ch == ' ' || ch == '\t')
        c->state = c->state == CH_EXT ? CH_EXT : CH_SIZE_WS;
    else if (c->state != CH_EXT || is_ctl(ch))
        return -400;
    return 0;
}

/* At the LF of a size line: start the chunk's data, or the trailers after the last chunk.
   In the trailer states c->remaining counts down the bytes the trailers may still use. */
static int chunk_start(struct http1_chunked *c)
{
    if (c->remaining > c->max_body - c->total)
        return -413;
    c->line = 0;
    c->state = c->remaining > 0 ? CH_DATA : CH_TRAILER;
    if (c->state == CH_TRAILER)
        c->remaining = CHUNK_MAX_TRAILERS;
    return 0;
}

/* One byte of a trailer line or of the final CRLF. Returns 1 at the end of the body. */
static int trailer_byte(struct http1_chunked *c, unsigned char ch)
{
    if (c->remaining-- == 0)
        return -400;
    if (c->state == CH_TRAILER_LF || c->state == CH_END_LF) {
        if (ch != '\n')
            return -400;
        c->state = c->state == CH_END_LF ? CH_DONE : CH_TRAILER;
        return c->state == CH_DONE;
    }
    if (ch == '\r') {
        c->state = c->state == CH_TRAILER ? CH_END_LF : CH_TRAILER_LF;
        c->line = 0;
        return 0;
    }
    if (is_ctl(ch) || ++c->line > CHUNK_MAX_LINE)
        return -400;
    c->state = CH_TRAILER_LINE;
    return 0;
}

/* Consumes one byte outside chunk data. Returns 1 at the end of the body, 0, or -status. */
static int chunk_byte(struct http1_chunked *c, unsigned char ch)
{
    switch (c->state) {
    case CH_SIZE:
    case CH_SIZE_WS:
    case CH_EXT:
        return chunk_size_byte(c, ch);
    case CH_SIZE_LF:
        return ch == '\n' ? chunk_start(c) : -400;
    case CH_DATA_CR:
        c->state = CH_DATA_LF;
        return ch == '\r' ? 0 : -400;
    case CH_DATA_LF:
        c->state = CH_SIZE;
        c->line = 0;
        return ch == '\n' ? 0 : -400;
    default:
        return trailer_byte(c, ch);
    }
}

int http1_chunked_decode(struct http1_chunked *c, char *out, const char *in, size_t in_len,
                         size_t *out_len, size_t *in_used)
{
    size_t i = 0, o = 0, k;
    int rc = c->state < 0 ? c->state : c->state == CH_DONE;

    while (rc == 0 && i < in_len) {
        if (c->state != CH_DATA) {
            rc = chunk_byte(c, (unsigned char)in[i++]);
            continue;
        }
        k = in_len - i < c->remaining ? in_len - i : (size_t)c->remaining;
        memmove(out + o, in + i, k);
        o += k;
        i += k;
        c->remaining -= k;
        c->total += k;
        if (c->remaining == 0)
            c->state = CH_DATA_CR;
    }
    if (rc < 0)
        c->state = rc; /* errors are sticky */
    *out_len = o;
    *in_used = i;
    return rc;
}
