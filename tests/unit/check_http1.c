/*
 * check_http1.c - unit tests of the HTTP/1.1 request parser and the chunked decoder.
 *
 * Every bad input is checked for its exact status, and a set of valid and invalid requests
 * is parsed at every prefix (each copied into a buffer of exactly that size, so a read past
 * the end shows up under ASan) to prove that the parse is restartable.
 */
#include "http1.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check_main.h"

#define S(lit) lit, sizeof(lit) - 1 /* a literal and its length, NULs included */

#define HOST "Host: example.com\r\n"

static const struct http1_limits lim = {.max_header = 16384, .max_body = 1 << 20};

static int parse_n(const char *s, size_t n, struct http1_request *r)
{
    return http1_parse_request(s, n, &lim, r);
}

static int parse(const char *s, struct http1_request *r)
{
    return parse_n(s, strlen(s), r);
}

/* Parses a copy of s[0..n) in a buffer of exactly n bytes. */
static int parse_exact(const char *s, size_t n, const struct http1_limits *l)
{
    struct http1_request r;
    char *copy = malloc(n ? n : 1);
    int rc;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, s, n);
    rc = http1_parse_request(copy, n, l, &r);
    free(copy);
    return rc;
}

#define ck_assert_slice(p, n, lit)                                                           \
    do {                                                                                     \
        ck_assert_uint_eq((n), strlen(lit));                                                 \
        ck_assert_mem_eq((p), (lit), (n));                                                   \
    } while (0)

/* Value of the first header called name, or NULL. */
static const struct http1_header *header(const struct http1_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (http1_name_is(r->headers[i].name, r->headers[i].name_len, name))
            return &r->headers[i];
    return NULL;
}

/* ---- Valid requests ---- */

START_TEST(test_get)
{
    static const char req[] = "GET /index.html HTTP/1.1\r\n" HOST "User-Agent: t/1\r\n\r\n";
    struct http1_request r;

    ck_assert_int_eq(parse(req, &r), (int)strlen(req));
    ck_assert_uint_eq(r.header_len, strlen(req));
    ck_assert_slice(r.method, r.method_len, "GET");
    ck_assert_slice(r.target, r.target_len, "/index.html");
    ck_assert_slice(r.path, r.path_len, "/index.html");
    ck_assert_ptr_null(r.query);
    ck_assert_int_eq(r.minor, 1);
    ck_assert_uint_eq(r.nheaders, 2);
    ck_assert_slice(r.headers[0].name, r.headers[0].name_len, "Host");
    ck_assert_slice(r.headers[0].value, r.headers[0].value_len, "example.com");
    ck_assert_slice(r.headers[1].name, r.headers[1].name_len, "User-Agent");
    ck_assert_slice(r.headers[1].value, r.headers[1].value_len, "t/1");
    ck_assert_int_eq(r.content_length, -1);
    ck_assert(!r.chunked);
    ck_assert(r.keep_alive);
    ck_assert(!r.expect_continue);
    ck_assert(r.has_host);
    ck_assert_ptr_eq(r.method, req);
}
END_TEST

START_TEST(test_post_content_length)
{
    static const char req[] = "POST /submit HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\nhelloGET";
    struct http1_request r;
    int rc = parse(req, &r);

    ck_assert_int_eq(rc, (int)strlen(req) - 8); /* body and next request are not the head */
    ck_assert_int_eq(r.content_length, 5);
    ck_assert_slice(r.method, r.method_len, "POST");
    ck_assert(!r.chunked);
}
END_TEST

START_TEST(test_content_length_forms)
{
    struct http1_request r;

    ck_assert_int_gt(parse("POST / HTTP/1.1\r\n" HOST "Content-Length: 0\r\n\r\n", &r), 0);
    ck_assert_int_eq(r.content_length, 0);
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\n" HOST "content-length:  007 \r\n\r\n", &r), 0);
    ck_assert_int_eq(r.content_length, 7);
    /* The same value twice is accepted. */
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: 05"
                           "\r\n\r\n", &r), 0);
    ck_assert_int_eq(r.content_length, 5);
    /* Exactly max_body is allowed. */
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\n" HOST "Content-Length: 1048576\r\n\r\n", &r), 0);
    ck_assert_int_eq(r.content_length, 1048576);
}
END_TEST

START_TEST(test_chunked_flag)
{
    struct http1_request r;

    ck_assert_int_gt(parse("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n", &r),
                     0);
    ck_assert(r.chunked);
    ck_assert_int_eq(r.content_length, -1);
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\n" HOST "transfer-encoding:  ChUnKeD \r\n\r\n",
                           &r), 0);
    ck_assert(r.chunked);
}
END_TEST

START_TEST(test_http10_keep_alive)
{
    struct http1_request r;

    ck_assert_int_gt(parse("GET / HTTP/1.0\r\n\r\n", &r), 0); /* no Host needed on 1.0 */
    ck_assert_int_eq(r.minor, 0);
    ck_assert(!r.keep_alive);
    ck_assert(!r.has_host);
    ck_assert_int_gt(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), 0);
    ck_assert(r.keep_alive);
    ck_assert_int_gt(parse("GET / HTTP/1.0\r\nConnection: Upgrade, Keep-Alive \r\n\r\n", &r), 0);
    ck_assert(r.keep_alive);
    ck_assert_int_gt(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &r), 0);
    ck_assert(!r.keep_alive);
    ck_assert_int_gt(parse("GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", &r), 0);
    ck_assert(!r.keep_alive);
}
END_TEST

START_TEST(test_connection_close)
{
    struct http1_request r;

    ck_assert_int_gt(parse("GET / HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n", &r), 0);
    ck_assert(!r.keep_alive);
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\n" HOST "Connection: upgrade,CLOSE\r\n\r\n", &r), 0);
    ck_assert(!r.keep_alive);
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\n" HOST "Connection: x\r\nConnection: close\r\n\r\n",
                           &r), 0);
    ck_assert(!r.keep_alive);
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\n" HOST "Connection: closed, enclose\r\n\r\n", &r),
                     0);
    ck_assert(r.keep_alive);
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\n" HOST "X-Connection: close\r\n\r\n", &r), 0);
    ck_assert(r.keep_alive);
}
END_TEST

START_TEST(test_absolute_form)
{
    struct http1_request r;
    const char *req = "GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\n" HOST "\r\n";

    ck_assert_int_gt(parse(req, &r), 0);
    ck_assert_slice(r.target, r.target_len, "http://example.com:8080/a/b?x=1");
    ck_assert_slice(r.path, r.path_len, "/a/b");
    ck_assert_slice(r.query, r.query_len, "x=1");

    req = "GET http://example.com HTTP/1.1\r\n" HOST "\r\n";
    ck_assert_int_gt(parse(req, &r), 0);
    ck_assert_slice(r.path, r.path_len, "/");
    ck_assert(r.path < req || r.path >= req + strlen(req)); /* the static "/" */
    ck_assert_ptr_null(r.query);

    ck_assert_int_gt(parse("GET HTTPS://[::1]:443?q HTTP/1.1\r\n" HOST "\r\n", &r), 0);
    ck_assert_slice(r.path, r.path_len, "/");
    ck_assert_slice(r.query, r.query_len, "q");
}
END_TEST

START_TEST(test_query_split)
{
    struct http1_request r;

    ck_assert_int_gt(parse("GET /p/q?a=1?b=2&c HTTP/1.1\r\n" HOST "\r\n", &r), 0);
    ck_assert_slice(r.path, r.path_len, "/p/q");
    ck_assert_slice(r.query, r.query_len, "a=1?b=2&c");
    ck_assert_int_gt(parse("GET /p? HTTP/1.1\r\n" HOST "\r\n", &r), 0);
    ck_assert_slice(r.path, r.path_len, "/p");
    ck_assert_ptr_nonnull(r.query);
    ck_assert_uint_eq(r.query_len, 0);
}
END_TEST

START_TEST(test_header_ows)
{
    struct http1_request r;
    const struct http1_header *h;

    ck_assert_int_gt(parse("GET / HTTP/1.1\r\n" HOST "X-A: \t two  words \t \r\nX-E:\r\n"
                           "X-W:  \t\r\nX-Bin: caf\xc3\xa9\r\n\r\n", &r), 0);
    ck_assert_uint_eq(r.nheaders, 5);
    h = header(&r, "x-a");
    ck_assert_ptr_nonnull(h);
    ck_assert_slice(h->value, h->value_len, "two  words");
    h = header(&r, "x-e");
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(h->value_len, 0);
    h = header(&r, "x-w");
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(h->value_len, 0);
    h = header(&r, "x-bin");
    ck_assert_ptr_nonnull(h);
    ck_assert_slice(h->value, h->value_len, "caf\xc3\xa9");
}
END_TEST

START_TEST(test_expect)
{
    struct http1_request r;

    ck_assert_int_gt(parse("PUT / HTTP/1.1\r\n" HOST "Expect: 100-Continue\r\n"
                           "Content-Length: 3\r\n\r\n", &r), 0);
    ck_assert(r.expect_continue);
    ck_assert_int_gt(parse("PUT / HTTP/1.1\r\n" HOST "Expect: 100-continue-x\r\n\r\n", &r), 0);
    ck_assert(!r.expect_continue);
    ck_assert_int_gt(parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &r), 0);
    ck_assert(!r.expect_continue); /* ignored on HTTP/1.0 (RFC 9110 §10.1.1) */
}
END_TEST

START_TEST(test_asterisk_and_leading_lines)
{
    static const char req[] = "\r\n\r\nOPTIONS * HTTP/1.1\r\n" HOST "\r\n";
    struct http1_request r;

    ck_assert_int_eq(parse(req, &r), (int)strlen(req));
    ck_assert_ptr_eq(r.method, req + 4);
    ck_assert_slice(r.method, r.method_len, "OPTIONS");
    ck_assert_slice(r.path, r.path_len, "*");
    ck_assert_ptr_null(r.query);
}
END_TEST

START_TEST(test_request_reuse)
{
    struct http1_request r;

    ck_assert_int_gt(parse("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nExpect: 100-continue"
                           "\r\nConnection: close\r\n\r\n", &r), 0);
    ck_assert_int_gt(parse("GET /x HTTP/1.1\r\n" HOST "\r\n", &r), 0);
    ck_assert_int_eq(r.content_length, -1);
    ck_assert(!r.expect_continue);
    ck_assert(r.keep_alive);
    ck_assert_uint_eq(r.nheaders, 1);
}
END_TEST

START_TEST(test_name_is)
{
    ck_assert(http1_name_is("Content-Length", 14, "content-length"));
    ck_assert(http1_name_is("HOST", 4, "host"));
    ck_assert(!http1_name_is("Hostx", 5, "host"));
    ck_assert(!http1_name_is("Hos", 3, "host"));
    ck_assert(!http1_name_is("Host", 4, "hosT"));
    ck_assert(!http1_name_is("H\0st", 4, "host"));
    ck_assert(http1_name_is("", 0, ""));
    ck_assert(!http1_name_is("[", 1, "{")); /* only A-Z are folded */
}
END_TEST

/* ---- Bad requests and their statuses ---- */

struct bad {
    const char *req;
    size_t len;
    int status;
};

static const struct bad bad_requests[] = {
    /* Request line. */
    {S("GET  / HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET / HTTP/1.1 \r\n" HOST "\r\n"), -400},
    {S("GET /  HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S(" GET / HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("G(T / HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET\t/ HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET /a\tb HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET /a\0b HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET /a\x7f HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET / http/1.1\r\n" HOST "\r\n"), -400},
    {S("GET / HTTP/1.10\r\n" HOST "\r\n"), -400},
    {S("GET / HTTP/11.1\r\n" HOST "\r\n"), -400},
    {S("GET / HTTP/1\r\n" HOST "\r\n"), -400},
    {S("GET / HTTP/a.1\r\n" HOST "\r\n"), -400},
    {S("GET /\r\n" HOST "\r\n"), -400},
    {S("GET\r\n\r\n"), -400},
    {S("GET / HTTP/2.0\r\n" HOST "\r\n"), -505},
    {S("GET / HTTP/1.2\r\n" HOST "\r\n"), -505},
    {S("GET / HTTP/3.0\r\n" HOST "\r\n"), -505},
    {S("GET / HTTP/0.9\r\n\r\n"), -505},
    /* Targets. */
    {S("GET index.html HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET * HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("OPTIONS *x HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("CONNECT example.com:443 HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("CONNECT / HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET ftp://example.com/ HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET http:// HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET http:///a HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET http://user@example.com/ HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("GET http:/x HTTP/1.1\r\n" HOST "\r\n"), -400},
    /* Line endings. */
    {S("GET / HTTP/1.1\n" HOST "\r\n"), -400},
    {S("GET / HTTP/1.1\r\nHost: a\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\nHost: a\r\n\n"), -400},
    {S("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), -400},
    {S("GET / HTTP/1.1\rHost: a\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\nHost: a\r\nX: \r\r\n\r\n"), -400},
    {S("\nGET / HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("\r\rGET / HTTP/1.1\r\n" HOST "\r\n"), -400},
    {S("\r\n\nGET / HTTP/1.1\r\n" HOST "\r\n"), -400},
    /* Field lines. */
    {S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n" HOST ": x\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n" HOST "X@Y: z\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n" HOST "NoColon\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n" HOST "X: a\0b\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n" HOST "X: a\x01\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n" HOST "X: a\x7f\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n" HOST "X: a\r\n b\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n" HOST "X: a\r\n\tb\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\n " HOST "\r\n"), -400},
    /* Host. */
    {S("GET / HTTP/1.1\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), -400},
    {S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), -400},
    /* Content-Length. */
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: abc\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: -1\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: +5\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5, 5\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5 5\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 0x10\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length:\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length:  \r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 9223372036854775808\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 99999999999999999999999\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 1048577\r\n\r\n"), -413},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 9223372036854775807\r\n\r\n"), -413},
    /* Transfer-Encoding. */
    {S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, chunked\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked;q=1\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding:\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"), -400},
    {S("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
     -400},
    {S("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     -400},
    {S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -400},
};

START_TEST(test_bad_request)
{
    const struct bad *b = &bad_requests[_i];

    ck_assert_msg(parse_exact(b->req, b->len, &lim) == b->status, "case %d: %.*s wants %d", _i,
                  (int)b->len, b->req, b->status);
}
END_TEST

/* Builds "GET /aaa... HTTP/1.1\r\nHost: a\r\n\r\n" with a target of n bytes, or only up to
   the target's end when whole is false; *len gets its length. The caller frees it. */
static char *long_target(size_t n, bool whole, size_t *len)
{
    char *s = malloc(n + 64);

    ck_assert_ptr_nonnull(s);
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', n - 1);
    *len = 4 + n;
    if (whole) {
        memcpy(s + *len, " HTTP/1.1\r\nHost: a\r\n\r\n", 23);
        *len += 22;
    }
    return s;
}

START_TEST(test_target_limit)
{
    size_t len;
    char *s;

    s = long_target(HTTP1_MAX_TARGET, true, &len);
    ck_assert_int_eq(parse_exact(s, len, &lim), (int)len);
    free(s);
    s = long_target(HTTP1_MAX_TARGET, false, &len); /* not over it yet: need more */
    ck_assert_int_eq(parse_exact(s, len, &lim), 0);
    free(s);
    s = long_target(HTTP1_MAX_TARGET + 1, true, &len);
    ck_assert_int_eq(parse_exact(s, len, &lim), -414);
    free(s);
    s = long_target(HTTP1_MAX_TARGET + 1, false, &len); /* decided before the line ends */
    ck_assert_int_eq(parse_exact(s, len, &lim), -414);
    ck_assert_int_eq(parse_exact(s, len - 1, &lim), 0);
    free(s);
}
END_TEST

/* A head with n "X-N: v" fields after Host; the caller frees it. */
static char *many_headers(size_t n, size_t *len)
{
    char *s = malloc(64 + n * 16);
    size_t k = 0;

    ck_assert_ptr_nonnull(s);
    k += (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, "X-%zu: v\r\n", i);
    k += (size_t)sprintf(s + k, "\r\n");
    *len = k;
    return s;
}

START_TEST(test_header_count_limit)
{
    struct http1_request r;
    size_t len;
    char *s;

    s = many_headers(HTTP1_MAX_HEADERS - 1, &len);
    ck_assert_int_eq(parse_n(s, len, &r), (int)len);
    ck_assert_uint_eq(r.nheaders, HTTP1_MAX_HEADERS);
    ck_assert_slice(r.headers[HTTP1_MAX_HEADERS - 1].name,
                    r.headers[HTTP1_MAX_HEADERS - 1].name_len, "X-62");
    free(s);
    s = many_headers(HTTP1_MAX_HEADERS, &len);
    ck_assert_int_eq(parse_exact(s, len, &lim), -431);
    free(s);
}
END_TEST

START_TEST(test_head_size_limit)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"; /* 27 bytes */
    struct http1_limits l = {.max_header = 27, .max_body = 0};

    ck_assert_int_eq(parse_exact(S(req), &l), 27);
    ck_assert_int_eq(parse_exact(req, 20, &l), 0);
    l.max_header = 26; /* complete but one byte too long */
    ck_assert_int_eq(parse_exact(S(req), &l), -431);
    ck_assert_int_eq(parse_exact(req, 26, &l), 0);
    l.max_header = 10; /* incomplete and over the limit */
    ck_assert_int_eq(parse_exact(req, 11, &l), -431);
    ck_assert_int_eq(parse_exact(req, 10, &l), 0);
    /* An error inside the limit is still reported as that error. */
    ck_assert_int_eq(parse_exact(S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), &l), -400);
    /* Leading empty lines count towards the limit. */
    l.max_header = 28;
    ck_assert_int_eq(parse_exact(S("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), &l), -431);
    /* Content-Length 0 is fine with max_body 0, 1 is not. */
    l.max_header = 100;
    ck_assert_int_gt(parse_exact(S("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), &l),
                     0);
    ck_assert_int_eq(parse_exact(S("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n"), &l),
                     -413);
}
END_TEST

/* ---- Restartability: every prefix needs more or gives the full result ---- */

static void check_every_prefix(const char *s, size_t len, const struct http1_limits *l)
{
    int full = parse_exact(s, len, l);

    ck_assert_int_ne(full, 0);
    for (size_t k = 0; k < len; k++) {
        int rc = parse_exact(s, k, l);
        if (full > 0 && k < (size_t)full)
            ck_assert_msg(rc == 0, "prefix %zu of a valid request gave %d", k, rc);
        else
            ck_assert_msg(rc == 0 || rc == full, "prefix %zu gave %d, full input %d: %.*s", k,
                          rc, full, (int)len, s);
    }
}

static const struct bad split_requests[] = {
    {S("GET /index.html?x=1 HTTP/1.1\r\n" HOST "Accept: */*\r\nX-E:\r\n\r\n"), 0},
    {S("\r\n\r\nPOST /p HTTP/1.1\r\n" HOST "Content-Length: 10\r\n\r\n0123456789"), 0},
    {S("POST http://h:1/p HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n5\r\n"), 0},
    {S("OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0},
    {S("GET http://h HTTP/1.1\r\n" HOST "\r\n"), 0},
};

START_TEST(test_split_anywhere)
{
    static const struct http1_limits small = {.max_header = 40, .max_body = 100};

    for (size_t i = 0; i < sizeof(split_requests) / sizeof(split_requests[0]); i++)
        check_every_prefix(split_requests[i].req, split_requests[i].len, &lim);
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        check_every_prefix(bad_requests[i].req, bad_requests[i].len, &lim);
        check_every_prefix(bad_requests[i].req, bad_requests[i].len, &small);
    }
}
END_TEST

START_TEST(test_split_limits)
{
    size_t len;
    char *s = long_target(HTTP1_MAX_TARGET + 1, true, &len);

    check_every_prefix(s, len, &lim);
    free(s);
    s = many_headers(HTTP1_MAX_HEADERS, &len);
    check_every_prefix(s, len, &lim);
    free(s);
}
END_TEST

/* ---- Chunked decoder ---- */

/* Decodes in[0..n) fed in pieces of at most step bytes (0: all at once) into out, which
   gets the data; returns the final status, with *used the raw bytes consumed in total. */
static int decode(const char *in, size_t n, size_t step, uint64_t max, char *out, size_t *out_n,
                  size_t *used)
{
    struct http1_chunked c;
    size_t pos = 0, o = 0;
    int rc = 0;

    http1_chunked_init(&c, max);
    do {
        size_t k = step == 0 || n - pos < step ? n - pos : step, ol, u;
        rc = http1_chunked_decode(&c, out + o, in + pos, k, &ol, &u);
        ck_assert_uint_le(u, k);
        if (rc == 0)
            ck_assert_uint_eq(u, k);
        o += ol;
        pos += u;
    } while (rc == 0 && pos < n);
    *out_n = o;
    *used = pos;
    return rc;
}

/* Decodes with every piece size and every single split point; all must agree. */
static int decode_all_ways(const char *in, size_t n, uint64_t max, char *out, size_t *out_n,
                           size_t *used)
{
    char *alt = malloc(n + 1);
    int rc = decode(in, n, 0, max, out, out_n, used);

    ck_assert_ptr_nonnull(alt);
    for (size_t step = 1; step <= n; step++) {
        size_t an, au;
        ck_assert_int_eq(decode(in, n, step, max, alt, &an, &au), rc);
        ck_assert_uint_eq(an, *out_n);
        ck_assert_uint_eq(au, *used);
        ck_assert_mem_eq(alt, out, an);
    }
    for (size_t cut = 0; cut <= n; cut++) {
        struct http1_chunked c;
        size_t o1, u1, o2 = 0, u2 = 0;
        int r;
        http1_chunked_init(&c, max);
        r = http1_chunked_decode(&c, alt, in, cut, &o1, &u1);
        if (r == 0)
            r = http1_chunked_decode(&c, alt + o1, in + u1, n - u1, &o2, &u2);
        ck_assert_int_eq(r, rc);
        ck_assert_uint_eq(o1 + o2, *out_n);
        ck_assert_mem_eq(alt, out, *out_n);
    }
    free(alt);
    return rc;
}

START_TEST(test_chunked_basic)
{
    static const char body[] = "5\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n0\r\n\r\n";
    char out[64];
    size_t n, used;

    ck_assert_int_eq(decode_all_ways(S(body), 1000, out, &n, &used), 1);
    ck_assert_uint_eq(used, strlen(body));
    ck_assert_slice(out, n, "hello world0123456789");
}
END_TEST

START_TEST(test_chunked_extensions_trailers)
{
    static const char body[] = "5;name=val;x\r\nhello\r\n3 ; a=\"q\"\t;b\r\nabc\r\n"
                               "0;last\r\nX-Trailer: v\r\nY:\tz\r\n\r\n";
    char out[64];
    size_t n, used;

    ck_assert_int_eq(decode_all_ways(S(body), 1000, out, &n, &used), 1);
    ck_assert_uint_eq(used, strlen(body));
    ck_assert_slice(out, n, "helloabc");
}
END_TEST

START_TEST(test_chunked_in_place_and_rest)
{
    char buf[] = "3\r\nabc\r\nF\r\n0123456789abcde\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    struct http1_chunked c;
    size_t n, used;

    http1_chunked_init(&c, 100);
    ck_assert_int_eq(http1_chunked_decode(&c, buf, buf, strlen(buf), &n, &used), 1);
    ck_assert_slice(buf, n, "abc0123456789abcde");
    ck_assert_str_eq(buf + used, "GET / HTTP/1.1\r\n");
    ck_assert_uint_eq(c.total, 18);
    /* A finished decoder stays finished and consumes nothing more. */
    ck_assert_int_eq(http1_chunked_decode(&c, buf, buf + used, 3, &n, &used), 1);
    ck_assert_uint_eq(used, 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_chunked_hex)
{
    char in[64], out[64];
    size_t n, used;

    memset(out, 0, sizeof(out));
    sprintf(in, "0a\r\n%s\r\nB\r\n%s\r\n0000\r\n\r\n", "0123456789", "abcdefghijk");
    ck_assert_int_eq(decode(in, strlen(in), 0, 100, out, &n, &used), 1);
    ck_assert_uint_eq(n, 21);
    /* 16 digits are the most: 17 are refused even when they are leading zeros. */
    ck_assert_int_eq(decode(S("0000000000000005\r\nhello\r\n0\r\n\r\n"), 0, 100, out, &n, &used),
                     1);
    ck_assert_int_eq(decode(S("00000000000000005\r\n"), 0, 100, out, &n, &used), -400);
}
END_TEST

struct bad_chunk {
    const char *in;
    size_t len;
    uint64_t max;
    int status;
};

static const struct bad_chunk bad_chunks[] = {
    {S("\r\n"), 100, -400},
    {S(";a\r\n"), 100, -400},
    {S("x\r\n"), 100, -400},
    {S("-1\r\n"), 100, -400},
    {S("0x5\r\n"), 100, -400},
    {S(" 5\r\n"), 100, -400},
    {S("5 \r\nhello\r\n"), 100, -400},
    {S("5 x\r\n"), 100, -400},
    {S("5\nhello\r\n"), 100, -400},
    {S("5\r\r"), 100, -400},
    {S("5;a\x01\r\n"), 100, -400},
    {S("5;a\nb\r\n"), 100, -400},
    {S("5;a\0\r\n"), 100, -400},
    {S("10000000000000000\r\n"), 100, -400},
    {S("FFFFFFFFFFFFFFFF\r\n"), 100, -413},
    {S("FFFFFFFFFFFFFFFF\r\n"), UINT64_MAX - 1, -413},
    {S("5\r\nhelloX\r\n"), 100, -400},
    {S("5\r\nhelloX\n0\r\n\r\n"), 100, -400},
    {S("5\r\nhello\r\r\n0\r\n\r\n"), 100, -400},
    {S("5\r\nhello\n0\r\n\r\n"), 100, -400},
    {S("5\r\nhello\r0\r\n\r\n"), 100, -400},
    {S("5\r\nhello\r\n\r\n"), 100, -400},
    {S("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 10, -413},
    {S("5\r\nhello\r\n5\r\nworld\r\n1\r\n"), 10, -413},
    {S("0\r\nX: a\rb\r\n\r\n"), 100, -400},
    {S("0\r\nX: a\nb\r\n\r\n"), 100, -400},
    {S("0\r\nX\x01\r\n\r\n"), 100, -400},
    {S("0\r\n\n"), 100, -400},
    {S("0\r\n\rX"), 100, -400},
    {S("0\n\r\n"), 100, -400},
};

START_TEST(test_chunked_bad)
{
    const struct bad_chunk *b = &bad_chunks[_i];
    char out[64];
    size_t n, used;

    ck_assert_msg(decode_all_ways(b->in, b->len, b->max, out, &n, &used) == b->status,
                  "case %d: %s", _i, b->in);
}
END_TEST

START_TEST(test_chunked_limits)
{
    char *in = malloc(40000), out[64];
    size_t n, used, k;

    ck_assert_ptr_nonnull(in);
    /* max_body exactly is fine. */
    ck_assert_int_eq(decode(S("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"), 0, 10, out, &n, &used),
                     1);
    /* A size line of 4096 bytes passes, one more does not. */
    k = (size_t)sprintf(in, "1;");
    memset(in + k, 'e', 4094);
    k += 4094;
    k += (size_t)sprintf(in + k, "\r\nx\r\n0\r\n\r\n");
    ck_assert_int_eq(decode(in, k, 0, 100, out, &n, &used), 1);
    memmove(in + 3, in + 2, k - 2);
    in[2] = 'e';
    ck_assert_int_eq(decode(in, k + 1, 0, 100, out, &n, &used), -400);
    /* The same for a trailer line. */
    k = (size_t)sprintf(in, "0\r\n");
    memset(in + k, 't', 4097);
    ck_assert_int_eq(decode(in, k + 4097, 0, 100, out, &n, &used), -400);
    ck_assert_int_eq(decode(in, k + 4096, 0, 100, out, &n, &used), 0);
    /* Endless short trailers are cut off too. */
    k = (size_t)sprintf(in, "0\r\n");
    while (k < 30000)
        k += (size_t)sprintf(in + k, "X: y\r\n");
    ck_assert_int_eq(decode(in, k, 0, 100, out, &n, &used), -400);
    free(in);
}
END_TEST

START_TEST(test_chunked_sticky_error)
{
    struct http1_chunked c;
    char out[16];
    size_t n, used;

    http1_chunked_init(&c, 100);
    ck_assert_int_eq(http1_chunked_decode(&c, out, "z", 1, &n, &used), -400);
    ck_assert_int_eq(http1_chunked_decode(&c, out, "0\r\n\r\n", 5, &n, &used), -400);
    http1_chunked_init(&c, 4);
    ck_assert_int_eq(http1_chunked_decode(&c, out, "5\r\n", 3, &n, &used), -413);
    ck_assert_int_eq(http1_chunked_decode(&c, out, "hello", 5, &n, &used), -413);
}
END_TEST

static Suite *http1_suite(void)
{
    Suite *s = suite_create("http1");
    TCase *ok = tcase_create("valid");
    TCase *bad = tcase_create("invalid");
    TCase *split = tcase_create("restartable");
    TCase *chunk = tcase_create("chunked");

    tcase_add_test(ok, test_get);
    tcase_add_test(ok, test_post_content_length);
    tcase_add_test(ok, test_content_length_forms);
    tcase_add_test(ok, test_chunked_flag);
    tcase_add_test(ok, test_http10_keep_alive);
    tcase_add_test(ok, test_connection_close);
    tcase_add_test(ok, test_absolute_form);
    tcase_add_test(ok, test_query_split);
    tcase_add_test(ok, test_header_ows);
    tcase_add_test(ok, test_expect);
    tcase_add_test(ok, test_asterisk_and_leading_lines);
    tcase_add_test(ok, test_request_reuse);
    tcase_add_test(ok, test_name_is);
    tcase_add_loop_test(bad, test_bad_request, 0,
                        (int)(sizeof(bad_requests) / sizeof(bad_requests[0])));
    tcase_add_test(bad, test_target_limit);
    tcase_add_test(bad, test_header_count_limit);
    tcase_add_test(bad, test_head_size_limit);
    tcase_add_test(split, test_split_anywhere);
    tcase_add_test(split, test_split_limits);
    tcase_add_test(chunk, test_chunked_basic);
    tcase_add_test(chunk, test_chunked_extensions_trailers);
    tcase_add_test(chunk, test_chunked_in_place_and_rest);
    tcase_add_test(chunk, test_chunked_hex);
    tcase_add_loop_test(chunk, test_chunked_bad, 0,
                        (int)(sizeof(bad_chunks) / sizeof(bad_chunks[0])));
    tcase_add_test(chunk, test_chunked_limits);
    tcase_add_test(chunk, test_chunked_sticky_error);
    tcase_set_timeout(ok, 10);
    tcase_set_timeout(bad, 10);
    tcase_set_timeout(split, 60);
    tcase_set_timeout(chunk, 30);
    suite_add_tcase(s, ok);
    suite_add_tcase(s, bad);
    suite_add_tcase(s, split);
    suite_add_tcase(s, chunk);
    return s;
}

int main(void)
{
    return check_run(http1_suite());
}
