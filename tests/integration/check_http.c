/*
 * check_http.c - the HTTP/1.1 connection over real sockets: keep-alive, pipelining, bodies,
 * reply headers, bad input. Timeouts, send batching, many connections and running out of
 * descriptors are in check_limits.c.
 *
 * Every test runs a host in-process (sq_test_start, a fresh one per test from the tcase's
 * fixture: client_host_tcase). Run from the repository root.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../check_main.h"
#include "client.h"

#define ONE_MB (1 << 20) /* the default max_body */

static void setup_small_body(void)
{
    client_host_start("max_body = 1k\n");
}

/* ---- 1. Keep-alive ---- */

START_TEST(test_keepalive_serves_many_requests)
{
    struct client_conn *c = client_host_connect();
    struct client_res res;

    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(client_roundtrip(c, i % 2 ? GET_JSON : GET_PLAIN, &res, T_MS), 0);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, i % 2 ? HELLO_JSON : HELLO);
        ck_assert_ptr_null(client_res_header(&res, "Connection"));
        client_res_free(&res);
    }
    client_expect_open(c, 100);
    client_close(c);
}
END_TEST

START_TEST(test_http10_closes_after_reply)
{
    struct client_conn *c = client_host_connect();
    struct client_res res;

    ck_assert_int_eq(client_roundtrip(c, "GET /plaintext HTTP/1.0\r\n\r\n", &res, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, HELLO);
    client_res_free(&res);
    client_expect_closed(c);
    client_close(c);
}
END_TEST

START_TEST(test_http10_keepalive_stays_open)
{
    static const char req[] = "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    struct client_conn *c = client_host_connect();
    struct client_res res;

    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(client_roundtrip(c, req, &res, T_MS), 0);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, HELLO);
        ck_assert_pstr_eq(client_res_header(&res, "Connection"), "keep-alive");
        client_res_free(&res);
        client_expect_open(c, 200);
    }
    client_close(c);
}
END_TEST

START_TEST(test_connection_close_closes)
{
    static const char req[] = "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    struct client_conn *c = client_host_connect();
    struct client_res res;

    ck_assert_int_eq(client_roundtrip(c, req, &res, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_pstr_eq(client_res_header(&res, "Connection"), "close");
    client_res_free(&res);
    client_expect_closed(c);
    client_close(c);
}
END_TEST

START_TEST(test_half_closed_client_gets_replies)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, GET_PLAIN GET_JSON GET_PLAIN);
    client_shutdown_write(c);
    client_expect_reply(c, 200, HELLO);
    client_expect_reply(c, 200, HELLO_JSON);
    client_expect_reply(c, 200, HELLO);
    client_expect_closed(c);
    client_close(c);
}
END_TEST

/* The reply to a big request must arrive whole although the client shut its side at once. */
START_TEST(test_half_closed_client_gets_big_reply)
{
    size_t n = 512 * 1024;
    char head[128], *body = malloc(n + 1);
    struct client_conn *c = client_host_connect();
    struct client_res res;

    memset(body, 'x', n);
    body[n] = '\0';
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             n);
    client_send_str(c, head);
    client_send(c, body, n);
    client_shutdown_write(c);
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_uint_eq(res.body_len, n);
    ck_assert(memcmp(res.body, body, n) == 0);
    client_res_free(&res);
    client_expect_closed(c);
    client_close(c);
    free(body);
}
END_TEST

/* ---- 2. Pipelining ---- */

START_TEST(test_pipeline_one_write_answered_in_order)
{
    char reqs[8192];
    size_t n = client_pipeline_build(reqs, sizeof(reqs));
    struct client_conn *c = client_host_connect();

    ck_assert_int_eq(client_send(c, reqs, n), 0);
    client_pipeline_expect(c);
    client_expect_open(c, 50);
    client_close(c);
}
END_TEST

START_TEST(test_pipeline_plaintext_json_alternate_in_order)
{
    char reqs[4096] = "";
    struct client_conn *c = client_host_connect();
    struct client_res res;

    for (int i = 0; i < NPIPE; i++)
        strcat(reqs, i % 2 ? GET_JSON : GET_PLAIN);
    ck_assert_int_eq(client_send_str(c, reqs), 0);
    for (int i = 0; i < NPIPE; i++) {
        ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, i % 2 ? HELLO_JSON : HELLO);
        ck_assert_pstr_eq(client_res_header(&res, "Content-Type"),
                          i % 2 ? "application/json" : "text/plain");
        client_res_free(&res);
    }
    client_close(c);
}
END_TEST

/* Sends client_pipeline_build's requests in pieces of min to max bytes, pause_us apart
   (client_send_pieces), and checks that the replies answer them in order. */
static void pipeline_in_pieces(size_t min, size_t max, int pause_us)
{
    char reqs[8192];
    size_t n = client_pipeline_build(reqs, sizeof(reqs));
    struct client_conn *c = client_host_connect();

    ck_assert_int_eq(client_send_pieces(c, reqs, n, min, max, pause_us), 0);
    client_pipeline_expect(c);
    client_close(c);
}

START_TEST(test_pipeline_byte_by_byte_answered_in_order)
{
    pipeline_in_pieces(1, 1, 100);
}
END_TEST

START_TEST(test_pipeline_random_pieces_answered_in_order)
{
    pipeline_in_pieces(1, 90, 2000);
}
END_TEST

START_TEST(test_request_split_across_reads)
{
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                              "Content-Length: 11\r\n\r\nhello world";
    struct client_conn *c = client_host_connect();

    ck_assert_int_eq(client_send_pieces(c, req, sizeof(req) - 1, 1, 1, 1000), 0);
    client_expect_reply(c, 200, "hello world");
    /* and cut at every third byte, with longer pauses: head, CRLF and body all split */
    ck_assert_int_eq(client_send_pieces(c, req, sizeof(req) - 1, 3, 3, 10000), 0);
    client_expect_reply(c, 200, "hello world");
    client_close(c);
}
END_TEST

START_TEST(test_chunked_request_split_byte_by_byte)
{
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n" GET_PLAIN;
    struct client_conn *c = client_host_connect();

    ck_assert_int_eq(client_send_pieces(c, req, sizeof(req) - 1, 1, 1, 500), 0);
    client_expect_reply(c, 200, "hello world");
    client_expect_reply(c, 200, HELLO);
    client_close(c);
}
END_TEST

/* Requests that come after one with Connection: close are not answered. */
START_TEST(test_pipeline_stops_at_connection_close)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, GET_PLAIN
                    "GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" GET_PLAIN);
    client_expect_reply(c, 200, HELLO);
    client_expect_reply(c, 200, HELLO_JSON);
    client_expect_closed(c);
    client_close(c);
}
END_TEST

/* Thousands of pipelined requests to a client with a small receive buffer: the server has
   to stop, wait for the client to read, and go on, keeping the order. */
START_TEST(test_pipeline_5000_with_slow_reader_in_order)
{
    enum { N = 5000 };
    size_t one = strlen(GET_PLAIN), two = strlen(GET_JSON), n = 0;
    char *reqs = malloc((N / 2) * (one + two) + 1);
    struct client_conn *c = client_open_rcvbuf(client_host_port(), 4096);
    struct client_res res;

    ck_assert(c);
    for (int i = 0; i < N; i++) {
        memcpy(reqs + n, i % 2 ? GET_JSON : GET_PLAIN, i % 2 ? two : one);
        n += i % 2 ? two : one;
    }
    ck_assert_int_eq(client_send_reading(c, reqs, n, 5000), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(client_read_reply(c, &res, false, T_MS) == 0, "reply %d missing", i);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, i % 2 ? HELLO_JSON : HELLO);
        client_res_free(&res);
    }
    client_expect_open(c, 50);
    client_close(c);
    free(reqs);
}
END_TEST

#define BIG_BODY 48000 /* several of these overflow the 16 KiB read buffer */

/* Fills body with a pattern unique to i. */
static void big_body(char *body, int i)
{
    for (size_t k = 0; k < BIG_BODY; k++)
        body[k] = (char)('A' + (k + (size_t)i * 7) % 26);
}

/* Appends body to out at *n as a chunked POST /echo, in chunks of 5000 bytes. */
static void add_chunked_echo(char *out, size_t *n, const char *body, size_t len)
{
    *n += (size_t)sprintf(out + *n, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t k = 0; k < len; k += 5000) {
        size_t m = len - k < 5000 ? len - k : 5000;
        *n += (size_t)sprintf(out + *n, "%zx;k=%zu\r\n", m, k);
        memcpy(out + *n, body + k, m);
        *n += m;
        *n += (size_t)sprintf(out + *n, "\r\n");
    }
    *n += (size_t)sprintf(out + *n, "0\r\nT: x\r\n\r\n");
}

/* GET, then 8 echoes of 48 kB bodies, then GET, all in one stream; chunked or not. The read
   buffer is moved and grown under half-read bodies. */
static void pipeline_big_bodies(bool chunked)
{
    enum { N = 8 };
    size_t cap = N * (BIG_BODY + 1024) + 1024, n = 0;
    char *reqs = malloc(cap), *body = malloc(BIG_BODY);
    struct client_conn *c = client_host_connect();
    struct client_res res;

    n += (size_t)sprintf(reqs, GET_PLAIN);
    for (int i = 0; i < N; i++) {
        big_body(body, i);
        if (chunked) {
            add_chunked_echo(reqs, &n, body, BIG_BODY);
        } else {
            n += (size_t)sprintf(reqs + n,
                                 "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                 "Content-Length: %d\r\n\r\n",
                                 BIG_BODY);
            memcpy(reqs + n, body, BIG_BODY);
            n += BIG_BODY;
        }
    }
    n += (size_t)sprintf(reqs + n, GET_JSON);
    ck_assert_int_eq(client_send_reading(c, reqs, n, 5000), 0);
    client_expect_reply(c, 200, HELLO);
    for (int i = 0; i < N; i++) {
        big_body(body, i);
        ck_assert_msg(client_read_reply(c, &res, false, T_MS) == 0, "echo %d missing", i);
        ck_assert_int_eq(res.status, 200);
        ck_assert_uint_eq(res.body_len, BIG_BODY);
        ck_assert_msg(memcmp(res.body, body, BIG_BODY) == 0, "echo %d: wrong body", i);
        client_res_free(&res);
    }
    client_expect_reply(c, 200, HELLO_JSON);
    client_close(c);
    free(reqs);
    free(body);
}

START_TEST(test_pipeline_big_bodies_in_order)
{
    pipeline_big_bodies(false);
}
END_TEST

START_TEST(test_pipeline_big_chunked_bodies_in_order)
{
    pipeline_big_bodies(true);
}
END_TEST

/* ---- 3. Bodies ---- */

START_TEST(test_echo_content_length_body)
{
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\n"
                              "Content-Length: 12\r\n\r\nhello\0world!" GET_PLAIN;
    struct client_conn *c = client_host_connect();
    struct client_res res;

    client_send(c, req, sizeof(req) - 1);
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_uint_eq(res.body_len, 12);
    ck_assert(memcmp(res.body, "hello\0world!", 12) == 0);
    ck_assert_pstr_eq(client_res_header(&res, "Content-Type"), "a/b");
    client_res_free(&res);
    client_expect_reply(c, 200, HELLO); /* exactly 12 bytes were taken as the body */
    client_close(c);
}
END_TEST

START_TEST(test_echo_chunked_body_with_extensions_and_trailers)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5;ext=1\r\nhello\r\n"
                       "7 ; a=b;c=\"d e\"\r\n, world\r\n"
                       "A\r\n0123456789\r\n"
                       "0;last\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n" GET_PLAIN);
    client_expect_reply(c, 200, "hello, world0123456789");
    client_expect_reply(c, 200, HELLO); /* the trailers were consumed, not taken for a request */
    client_close(c);
}
END_TEST

START_TEST(test_expect_100_continue)
{
    struct client_conn *c = client_host_connect();
    struct client_res res;

    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                       "Expect: 100-continue\r\n\r\n");
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 100);
    ck_assert_msg(strncmp(c->buf, "HTTP/1.1 100 Continue\r\n", 23) == 0, "got %.30s", c->buf);
    client_res_free(&res);
    ck_assert_uint_eq(client_unparsed(c), 0);
    client_send_str(c, "hello");
    client_expect_reply(c, 200, "hello");
    client_close(c);
}
END_TEST

START_TEST(test_get_with_body_then_pipelined_request)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, "GET /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                       "hello" GET_JSON);
    client_expect_reply(c, 200, HELLO);
    client_expect_reply(c, 200, HELLO_JSON);
    client_close(c);
}
END_TEST

START_TEST(test_absolute_form_target)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, "GET http://127.0.0.1/plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                       "GET http://127.0.0.1:80/json?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    client_expect_reply(c, 200, HELLO);
    client_expect_reply(c, 200, HELLO_JSON);
    client_close(c);
}
END_TEST

/* Empty lines before a request line are skipped (RFC 9112 §2.2). */
START_TEST(test_leading_empty_lines_skipped)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, "\r\n\r\n" GET_PLAIN "\r\n" GET_JSON);
    client_expect_reply(c, 200, HELLO);
    client_expect_reply(c, 200, HELLO_JSON);
    client_close(c);
}
END_TEST

START_TEST(test_echo_1mb_body_intact)
{
    char head[128];
    char *body = malloc(ONE_MB);
    struct client_conn *c = client_host_connect();
    struct client_res res;

    for (size_t i = 0; i < ONE_MB; i++)
        body[i] = (char)(i * 31 % 251);
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             ONE_MB);
    client_send_str(c, head);
    ck_assert_int_eq(client_send(c, body, ONE_MB), 0);
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_uint_eq(res.body_len, ONE_MB);
    ck_assert_msg(memcmp(res.body, body, ONE_MB) == 0, "the echoed body differs");
    client_res_free(&res);
    /* the connection is still good for more */
    client_send_str(c, GET_PLAIN);
    client_expect_reply(c, 200, HELLO);
    client_close(c);
    free(body);
}
END_TEST

START_TEST(test_body_over_max_body_413_before_body)
{
    struct client_conn *c = client_host_connect();
    struct client_res res;

    /* only the head: the answer must not wait for a body */
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n");
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 413);
    ck_assert_pstr_eq(client_res_header(&res, "Connection"), "close");
    client_res_free(&res);
    client_expect_closed(c);
    client_close(c);
}
END_TEST

/* A client that sends its body without waiting still reads the whole 413: the server
   drains what it sends instead of resetting the connection under the reply. */
START_TEST(test_413_survives_body_sent_anyway)
{
    size_t n = 64 * 1024;
    char *req = malloc(n + 128);
    struct client_conn *c = client_host_connect();
    struct client_res res;

    int k = sprintf(req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
    memset(req + k, 'z', n);
    ck_assert_int_eq(client_send_reading(c, req, (size_t)k + n, 5000), 0);
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 413);
    client_res_free(&res);
    ck_assert(client_wait_close(c, 3000));
    ck_assert_msg(!c->reset, "the connection was reset, not closed");
    client_close(c);
    free(req);
}
END_TEST

START_TEST(test_body_at_max_body_accepted)
{
    char req[2048];
    struct client_conn *c = client_host_connect();
    struct client_res res;

    int n = snprintf(req, sizeof(req),
                     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n");
    memset(req + n, 'b', 1024);
    req[n + 1024] = '\0';
    ck_assert_int_eq(client_roundtrip(c, req, &res, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_uint_eq(res.body_len, 1024);
    client_res_free(&res);
    client_close(c);
}
END_TEST

START_TEST(test_chunked_body_over_max_body_413)
{
    char req[4096];
    struct client_conn *c = client_host_connect();

    int n = snprintf(req, sizeof(req),
                     "POST /echo HTTP/1.1\r\nHost: t\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n320\r\n");
    memset(req + n, 'c', 800);
    snprintf(req + n + 800, sizeof(req) - (size_t)n - 800, "\r\n320\r\n");
    client_send_str(c, req); /* the second chunk would pass 1k: refused before its data */
    client_expect_reply(c, 413, NULL);
    client_expect_closed(c);
    client_close(c);
}
END_TEST

/* ---- 4. Reply headers ---- */

/* Checks the headers every reply carries: one each of Server, a current IMF-fixdate Date,
   a Content-Length that matches the body, and Content-Type. */
static void expect_standard_headers(const struct client_res *res, bool head)
{
    static const char *const names[] = {"Server", "Date", "Content-Length", "Content-Type"};
    const char *date = client_res_header(res, "Date");
    struct tm tm = {0};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ck_assert_msg(client_res_header_count(res, names[i]) == 1, "reply %d: %d %s headers",
                      res->status, client_res_header_count(res, names[i]), names[i]);
    ck_assert_str_eq(client_res_header(res, "Server"), "squall");
    ck_assert_str_ne(client_res_header(res, "Content-Type"), "");
    const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ck_assert_msg(end && *end == '\0' && strlen(date) == 29, "Date '%s' is not IMF-fixdate", date);
    long skew = (long)(timegm(&tm) - time(NULL));
    ck_assert_msg(labs(skew) <= 2, "Date '%s' is %ld s off", date, skew);
    if (!head)
        ck_assert_uint_eq(strtoul(client_res_header(res, "Content-Length"), NULL, 10),
                          res->body_len);
}

START_TEST(test_every_reply_has_standard_headers)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {GET_PLAIN, 200},
        {GET_JSON, 200},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", 200},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 200},
        {"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n", 404},
        {"DELETE /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", 405},
        {"GET /plaintext HTTP/1.1\r\n\r\n", 400},
    };
    struct client_res res;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct client_conn *c = client_host_connect();
        ck_assert_int_eq(client_roundtrip(c, cases[i].req, &res, T_MS), 0);
        ck_assert_int_eq(res.status, cases[i].status);
        expect_standard_headers(&res, false);
        client_res_free(&res);
        client_close(c);
    }
}
END_TEST

START_TEST(test_head_same_headers_no_body)
{
    struct client_conn *c = client_host_connect();
    struct client_res head, get;

    client_send_str(c, "HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n" GET_PLAIN);
    ck_assert_int_eq(client_read_reply(c, &head, true, T_MS), 0);
    /* had the HEAD reply carried a body, this would parse "Hello, World!HTTP/1.1..." */
    ck_assert_int_eq(client_read_reply(c, &get, false, T_MS), 0);
    ck_assert_int_eq(head.status, 200);
    ck_assert_int_eq(get.status, 200);
    ck_assert_str_eq(get.body, HELLO);
    ck_assert_pstr_eq(client_res_header(&head, "Content-Length"), "13");
    expect_standard_headers(&head, true);
    ck_assert_uint_eq(head.nheaders, get.nheaders);
    for (size_t i = 0; i < get.nheaders; i++) {
        ck_assert_str_eq(head.headers[i].name, get.headers[i].name);
        if (strcmp(get.headers[i].name, "Date") != 0)
            ck_assert_str_eq(head.headers[i].value, get.headers[i].value);
    }
    client_res_free(&head);
    client_res_free(&get);
    client_expect_open(c, 50);
    client_close(c);
}
END_TEST

/* ---- 5. Bad input: a status, then the server closes ---- */

/* clang-format off */
#define BAD(why, req, status) {why, req, sizeof(req) - 1, status}
/* clang-format on */
#define H11(first, rest) first " HTTP/1.1\r\nHost: t\r\n" rest "\r\n"
#define POST_ECHO(hdrs) "POST /echo HTTP/1.1\r\nHost: t\r\n" hdrs "\r\n"

static const struct bad_case {
    const char *why;
    const char *req;
    size_t len;
    int status;
} bad_cases[] = {
    BAD("no version", "GET /plaintext\r\nHost: t\r\n\r\n", 400),
    BAD("two spaces", "GET  /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    BAD("lowercase version", "GET /plaintext http/1.1\r\nHost: t\r\n\r\n", 400),
    BAD("text after version", "GET /plaintext HTTP/1.1 x\r\nHost: t\r\n\r\n", 400),
    BAD("bare LF", "GET /plaintext HTTP/1.1\nHost: t\n\n", 400),
    BAD("relative target", H11("GET plaintext", ""), 400),
    BAD("no method", H11(" /plaintext", ""), 400),
    BAD("space in target", H11("GET /plain text", ""), 400),
    BAD("control char in target", H11("GET /plain\x01text", ""), 400),
    BAD("bad method char (", H11("G(T /plaintext", ""), 400),
    BAD("bad method char /", H11("GE/T /plaintext", ""), 400),
    BAD("bad header name", H11("GET /plaintext", "Bad[Name]: x\r\n"), 400),
    BAD("empty header name", H11("GET /plaintext", ": x\r\n"), 400),
    BAD("NUL in header value", H11("GET /plaintext", "X-A: a\0b\r\n"), 400),
    BAD("CR in header value", H11("GET /plaintext", "X-A: a\rb\r\n"), 400),
    BAD("obs-fold", H11("GET /plaintext", "X-A: a\r\n b\r\n"), 400),
    BAD("whitespace before colon", H11("GET /plaintext", "X-A : a\r\n"), 400),
    BAD("missing Host", "GET /plaintext HTTP/1.1\r\n\r\n", 400),
    BAD("two Hosts", H11("GET /plaintext", "Host: u\r\n"), 400),
    BAD("CL with TE", POST_ECHO("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400),
    BAD("conflicting CL", POST_ECHO("Content-Length: 5\r\nContent-Length: 6\r\n"), 400),
    BAD("CL list", POST_ECHO("Content-Length: 5, 5\r\n"), 400),
    BAD("negative CL", POST_ECHO("Content-Length: -1\r\n"), 400),
    BAD("CL with sign", POST_ECHO("Content-Length: +5\r\n"), 400),
    BAD("CL not a number", POST_ECHO("Content-Length: abc\r\n"), 400),
    BAD("empty CL", POST_ECHO("Content-Length:\r\n"), 400),
    BAD("CL overflow", POST_ECHO("Content-Length: 99999999999999999999999\r\n"), 400),
    BAD("unknown TE", POST_ECHO("Transfer-Encoding: gzip\r\n"), 400),
    BAD("TE list", POST_ECHO("Transfer-Encoding: gzip, chunked\r\n"), 400),
    BAD("repeated TE", POST_ECHO("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
        400),
    BAD("TE on HTTP/1.0", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400),
    BAD("bad chunk size", POST_ECHO("Transfer-Encoding: chunked\r\n") "zz\r\nhello\r\n0\r\n\r\n",
        400),
    BAD("chunk size too big", POST_ECHO("Transfer-Encoding: chunked\r\n") "1ffffffffffffffff\r\n",
        400),
    BAD("chunk without CRLF", POST_ECHO("Transfer-Encoding: chunked\r\n") "5\r\nhelloX\r\n", 400),
    BAD("HTTP/2.0", "GET /plaintext HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    BAD("HTTP/1.2", "GET /plaintext HTTP/1.2\r\nHost: t\r\n\r\n", 505),
    BAD("declared body over max_body", POST_ECHO("Content-Length: 1048577\r\n"), 413),
};

/* Sends req[0..len) on a new connection; expects status with Connection: close, then a close
   with nothing after the reply. */
static void expect_refused(const char *why, const char *req, size_t len, int status)
{
    struct client_conn *c = client_host_connect();
    struct client_res res;

    ck_assert_int_eq(client_send(c, req, len), 0);
    ck_assert_msg(client_read_reply(c, &res, false, T_MS) == 0, "%s: no reply", why);
    ck_assert_msg(res.status == status, "%s: status %d, want %d", why, res.status, status);
    ck_assert_msg(client_res_header(&res, "Connection") &&
                      strcmp(client_res_header(&res, "Connection"), "close") == 0,
                  "%s: no Connection: close", why);
    expect_standard_headers(&res, false);
    client_res_free(&res);
    ck_assert_msg(client_wait_close(c, CLOSE_MS), "%s: the server kept the connection open", why);
    ck_assert_msg(!c->reset, "%s: the server reset the connection", why);
    ck_assert_msg(client_unparsed(c) == 0, "%s: bytes after the reply", why);
    client_close(c);
}

START_TEST(test_bad_request_answered_then_closed)
{
    const struct bad_case *b = &bad_cases[_i];

    expect_refused(b->why, b->req, b->len, b->status);
}
END_TEST

/* A valid request before the bad one is still answered, first. */
START_TEST(test_bad_request_after_good_one)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, GET_PLAIN "GET /plaintext HTTP/1.1\r\nX-A : a\r\n\r\n" GET_PLAIN);
    client_expect_reply(c, 200, HELLO);
    client_expect_reply(c, 400, NULL);
    client_expect_closed(c);
    client_close(c);
}
END_TEST

START_TEST(test_headers_over_max_header_431)
{
    size_t n = 9000;
    char *req = malloc(n + 128);

    int k = sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + k, 'a', n);
    strcpy(req + k + n, "\r\n\r\n");
    expect_refused("9000-byte header", req, strlen(req), 431);
    free(req);
}
END_TEST

/* A head of n bytes (request line and headers, final CRLF included) into req. */
static size_t head_of_size(char *req, size_t n)
{
    size_t k = (size_t)sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Pad: ");

    memset(req + k, 'a', n - k - 4);
    strcpy(req + n - 4, "\r\n\r\n");
    return n;
}

/* max_header (8k) is the largest head accepted: one byte more is 431. */
START_TEST(test_head_of_max_header_accepted_one_more_431)
{
    char req[8300];
    struct client_conn *c = client_host_connect();

    client_send(c, req, head_of_size(req, 8192));
    client_expect_reply(c, 200, HELLO);
    client_close(c);
    expect_refused("8193-byte head", req, head_of_size(req, 8193), 431);
}
END_TEST

START_TEST(test_too_many_headers_431)
{
    char req[4096];
    size_t n = (size_t)sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: t\r\n");

    for (int i = 0; i < 70; i++)
        n += (size_t)sprintf(req + n, "X-%d: %d\r\n", i, i);
    strcpy(req + n, "\r\n");
    expect_refused("70 headers", req, strlen(req), 431);
}
END_TEST

START_TEST(test_target_over_4k_414)
{
    char req[8192];

    int k = sprintf(req, "GET /");
    memset(req + k, 'p', 4200);
    strcpy(req + k + 4200, " HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_refused("4201-byte target", req, strlen(req), 414);
}
END_TEST

/* ---- Suite ---- */

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = client_host_tcase(s, "keepalive", client_host_setup, 10);
    tcase_add_test(tc, test_keepalive_serves_many_requests);
    tcase_add_test(tc, test_http10_closes_after_reply);
    tcase_add_test(tc, test_http10_keepalive_stays_open);
    tcase_add_test(tc, test_connection_close_closes);
    tcase_add_test(tc, test_half_closed_client_gets_replies);
    tcase_add_test(tc, test_half_closed_client_gets_big_reply);

    tc = client_host_tcase(s, "pipelining", client_host_setup, 10);
    tcase_add_test(tc, test_pipeline_one_write_answered_in_order);
    tcase_add_test(tc, test_pipeline_plaintext_json_alternate_in_order);
    tcase_add_test(tc, test_pipeline_byte_by_byte_answered_in_order);
    tcase_add_test(tc, test_pipeline_random_pieces_answered_in_order);
    tcase_add_test(tc, test_request_split_across_reads);
    tcase_add_test(tc, test_chunked_request_split_byte_by_byte);
    tcase_add_test(tc, test_pipeline_stops_at_connection_close);
    tcase_add_test(tc, test_pipeline_5000_with_slow_reader_in_order);
    tcase_add_test(tc, test_pipeline_big_bodies_in_order);
    tcase_add_test(tc, test_pipeline_big_chunked_bodies_in_order);

    tc = client_host_tcase(s, "bodies", client_host_setup, 10);
    tcase_add_test(tc, test_echo_content_length_body);
    tcase_add_test(tc, test_echo_chunked_body_with_extensions_and_trailers);
    tcase_add_test(tc, test_expect_100_continue);
    tcase_add_test(tc, test_get_with_body_then_pipelined_request);
    tcase_add_test(tc, test_absolute_form_target);
    tcase_add_test(tc, test_leading_empty_lines_skipped);
    tcase_add_test(tc, test_echo_1mb_body_intact);

    tc = client_host_tcase(s, "max_body", setup_small_body, 10);
    tcase_add_test(tc, test_body_over_max_body_413_before_body);
    tcase_add_test(tc, test_413_survives_body_sent_anyway);
    tcase_add_test(tc, test_body_at_max_body_accepted);
    tcase_add_test(tc, test_chunked_body_over_max_body_413);

    tc = client_host_tcase(s, "headers", client_host_setup, 10);
    tcase_add_test(tc, test_every_reply_has_standard_headers);
    tcase_add_test(tc, test_head_same_headers_no_body);

    tc = client_host_tcase(s, "bad_input", client_host_setup, 10);
    tcase_add_loop_test(tc, test_bad_request_answered_then_closed, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_bad_request_after_good_one);
    tcase_add_test(tc, test_headers_over_max_header_431);
    tcase_add_test(tc, test_head_of_max_header_accepted_one_more_431);
    tcase_add_test(tc, test_too_many_headers_431);
    tcase_add_test(tc, test_target_over_4k_414);
    return s;
}

int main(void)
{
    client_log_quiet(); /* every test starts a host */
    return check_run(http_suite());
}
