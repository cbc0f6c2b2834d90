/*
 * http1.h - strict, zero-copy HTTP/1.1 request parser and chunked body decoder.
 *
 * The parser reads a request line and header block straight out of the connection's
 * read buffer: every string in struct http1_request points into that buffer, nothing is
 * copied. It is strict on purpose (RFC 9112): anything ambiguous that could be used for
 * request smuggling is refused with a status, never guessed at.
 */
#ifndef SQUALL_HTTP1_H
#define SQUALL_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEADERS 64

/* Request-target longer than this is answered 414. */
#define HTTP1_MAX_TARGET 4096

struct http1_limits {
    size_t max_header; /* request line + header block, bytes; over it: 431 (at most INT_MAX) */
    size_t max_body;   /* declared Content-Length over it: 413 */
};

struct http1_header {
    const char *name; /* field name as sent (case preserved) */
    size_t name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t value_len;
};

struct http1_request {
    const char *method; /* token as sent, e.g. "GET" */
    size_t method_len;
    const char *target; /* request-target as sent */
    size_t target_len;
    const char *path; /* absolute path: from absolute-form, what follows the authority */
    size_t path_len;  /* ("/" when the absolute-form has no path: then path points at a
                         static "/" string, not into the buffer) */
    const char *query; /* after '?', not including it; NULL when there is no '?' */
    size_t query_len;
    int minor; /* HTTP/1.<minor>: 0 or 1 */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    size_t nheaders;
    /* Derived while parsing the headers: */
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
                               "Connection: keep-alive" */
    bool expect_continue;   /* "Expect: 100-continue" on HTTP/1.1 */
    bool has_host;
    size_t header_len; /* bytes of request line + headers, final CRLF included */
};

/*
 * Parses the request that starts at buf[0]. The parse is restartable: call it again with
 * the same start and more bytes after a read; the result never depends on how the bytes
 * were split.
 *
 * Returns header_len (> 0) when the header block is complete and valid; 0 when more bytes
 * are needed; or a negative HTTP status to answer before closing:
 *   -400 malformed request line, method, target, header name or value, NUL or obs-fold,
 *        whitespace before a colon, missing, repeated or malformed Host on HTTP/1.1, a
 *        CONNECT request (squall is no tunnel), Content-Length together with
 *        Transfer-Encoding, conflicting or malformed Content-Length, a transfer coding other
 *        than one "chunked", or Transfer-Encoding on HTTP/1.0
 *   -413 declared Content-Length over lim->max_body
 *   -414 request-target over HTTP1_MAX_TARGET bytes
 *   -431 request line + headers over lim->max_header, or more than HTTP1_MAX_HEADERS headers
 *   -505 HTTP version other than 1.0 or 1.1
 * Only CRLF ends a line; a bare CR or LF is 400. Empty lines before the request line are
 * tolerated (RFC 9112 §2.2), and counted in header_len.
 */
int http1_parse_request(const char *buf, size_t len, const struct http1_limits *lim,
                        struct http1_request *req);

/* Incremental decoder of a chunked body (RFC 9112 §7.1). Extensions and trailers are
   accepted and ignored. */
struct http1_chunked {
    int state;          /* negative: the sticky error status */
    uint64_t remaining; /* data bytes left in the current chunk; after the last chunk,
                           the bytes the trailers may still use */
    uint64_t total;     /* data bytes decoded so far */
    uint64_t max_body;
    size_t line;        /* bytes seen in the current size or trailer line, for limits */
};

void http1_chunked_init(struct http1_chunked *c, uint64_t max_body);

/*
 * Decodes in[0..in_len) and writes the data bytes to out, which may overlap in as long
 * as out <= in (decoding in place inside the read buffer). Sets *out_len to the data bytes
 * written and *in_used to the raw bytes consumed. Partial size lines and trailers are kept
 * in the decoder's state, so *in_used == in_len unless the body ended.
 *
 * Returns 1 when the last chunk and the trailers are complete (bytes after *in_used belong
 * to the next request), 0 when more input is needed, -400 on a malformed chunk size, line
 * ending or trailer, -413 when the data exceeds max_body.
 */
int http1_chunked_decode(struct http1_chunked *c, char *out, const char *in, size_t in_len,
                         size_t *out_len, size_t *in_used);

/* Case-insensitive comparison of a header name with a NUL-terminated lowercase name. */
bool http1_name_is(const char *name, size_t len, const char *lower);

#endif
