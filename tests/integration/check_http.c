/*
 * check_http.c - the HTTP/1.1 connection over real sockets: keep-alive, pipelining, bodies,
 * reply headers, bad input, timeouts, many connections, running out of descriptors.
 *
 * Most tests run a host in-process (sq_test_start, a fresh one per test from the tcase's
 * fixture); the ones that need a process of their own (strace, rlimits, CPU time) spawn
 * $SQ_BUILD/squall. Run from the repository root.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "log.h" /* log_init: the in-process host logs at the level SQUALL_LOG sets */
#include "squall_test.h"

#define T_MS 3000        /* waiting for one reply */
#define CLOSE_MS 1000    /* waiting for the server to close after a final reply */
#define NPIPE 16         /* pipelined requests per batch */
#define ONE_MB (1 << 20) /* the default max_body */

#define GET_PLAIN "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
#define GET_JSON "GET /json HTTP/1.1\r\nHost: t\r\n\r\n"
#define HELLO "Hello, World!"
#define HELLO_JSON "{\"message\":\"Hello, World!\"}"

static sq_test_host *host;
static uint16_t port;

/* ---- Fixtures: a fresh in-process host per test ---- */

static void host_start(const char *server_keys)
{
    char conf[4096];

    ck_assert_msg(client_hello_conf(server_keys, conf, sizeof(conf)), "config too long");
    host = sq_test_start(conf);
    ck_assert_msg(host, "host did not start: %s", sq_test_error());
    port = sq_test_port(host);
}

static void setup_default(void)
{
    host_start(NULL);
}

static void setup_timeouts(void)
{
    host_start("header_timeout = 300ms\nkeepalive_timeout = 1s\n");
}

static void setup_small_body(void)
{
    host_start("max_body = 1k\n");
}

static void teardown_host(void)
{
    sq_test_stop(host);
    host = NULL;
}

/* ---- Helpers ---- */

static struct client_conn *conn_open(void)
{
    struct client_conn *c = client_open(port);

    ck_assert_msg(c, "cannot connect to 127.0.0.1:%u", port);
    return c;
}

/* Reads the next reply on c and checks its status and (unless NULL) its body. */
static void expect_reply(struct client_conn *c, int status, const char *body)
{
    struct client_res res;

    ck_assert_msg(client_read_reply(c, &res, false, T_MS) == 0,
                  "no whole reply (closed=%d, %zu bytes unparsed)", c->closed, client_unparsed(c));
    ck_assert_int_eq(res.status, status);
    if (body) {
        ck_assert_uint_eq(res.body_len, strlen(body));
        ck_assert_str_eq(res.body, body);
    }
    client_res_free(&res);
}

/* Checks that the server closes c soon (a close, not a reset), sending nothing more. */
static void expect_closed(struct client_conn *c)
{
    ck_assert_msg(client_wait_close(c, CLOSE_MS), "the server kept the connection open");
    ck_assert_msg(!c->reset, "the server reset the connection instead of closing it");
    ck_assert_msg(client_unparsed(c) == 0, "%zu bytes after the last reply: %.60s",
                  client_unparsed(c), c->buf + c->pos);
}

/* Checks that the server keeps c open for ms (no close, no bytes). */
static void expect_open(struct client_conn *c, int ms)
{
    ck_assert_msg(client_fill(c, ms) == -1, "the server closed the connection or sent bytes");
}

/* Appends POST /echo with body to out at *n. */
static void add_echo(char *out, size_t cap, size_t *n, const char *body)
{
    int w = snprintf(out + *n, cap - *n,
                     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    ck_assert(w > 0 && (size_t)w < cap - *n);
    *n += (size_t)w;
}

/* The body of the i-th pipelined echo: distinct, and of varying length. */
static const char *echo_body(int i, char *out, size_t len)
{
    snprintf(out, len, "body-%02d-%.*s", i, i * 3,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    return out;
}

/* NPIPE echo requests, one after another, into out. Returns their length. */
static size_t pipeline_build(char *out, size_t cap)
{
    char body[128];
    size_t n = 0;

    for (int i = 0; i < NPIPE; i++)
        add_echo(out, cap, &n, echo_body(i, body, sizeof(body)));
    return n;
}

/* Reads NPIPE replies and checks they answer pipeline_build's requests, in order. */
static void pipeline_expect(struct client_conn *c)
{
    char body[128];

    for (int i = 0; i < NPIPE; i++)
        expect_reply(c, 200, echo_body(i, body, sizeof(body)));
}

/* ---- 1. Keep-alive ---- */

START_TEST(test_keepalive_serves_many_requests)
{
    struct client_conn *c = conn_open();
    struct client_res res;

    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(client_roundtrip(c, i % 2 ? GET_JSON : GET_PLAIN, &res, T_MS), 0);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, i % 2 ? HELLO_JSON : HELLO);
        ck_assert_ptr_null(client_res_header(&res, "Connection"));
        client_res_free(&res);
    }
    expect_open(c, 100);
    client_close(c);
}
END_TEST

START_TEST(test_http10_closes_after_reply)
{
    struct client_conn *c = conn_open();
    struct client_res res;

    ck_assert_int_eq(client_roundtrip(c, "GET /plaintext HTTP/1.0\r\n\r\n", &res, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, HELLO);
    client_res_free(&res);
    expect_closed(c);
    client_close(c);
}
END_TEST

START_TEST(test_http10_keepalive_stays_open)
{
    static const char req[] = "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    struct client_conn *c = conn_open();
    struct client_res res;

    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(client_roundtrip(c, req, &res, T_MS), 0);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, HELLO);
        ck_assert_pstr_eq(client_res_header(&res, "Connection"), "keep-alive");
        client_res_free(&res);
        expect_open(c, 200);
    }
    client_close(c);
}
END_TEST

START_TEST(test_connection_close_closes)
{
    static const char req[] = "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    struct client_conn *c = conn_open();
    struct client_res res;

    ck_assert_int_eq(client_roundtrip(c, req, &res, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_pstr_eq(client_res_header(&res, "Connection"), "close");
    client_res_free(&res);
    expect_closed(c);
    client_close(c);
}
END_TEST

START_TEST(test_half_closed_client_gets_replies)
{
    struct client_conn *c = conn_open();

    client_send_str(c, GET_PLAIN GET_JSON GET_PLAIN);
    client_shutdown_write(c);
    expect_reply(c, 200, HELLO);
    expect_reply(c, 200, HELLO_JSON);
    expect_reply(c, 200, HELLO);
    expect_closed(c);
    client_close(c);
}
END_TEST

/* The reply to a big request must arrive whole although the client shut its side at once. */
START_TEST(test_half_closed_client_gets_big_reply)
{
    size_t n = 512 * 1024;
    char head[128], *body = malloc(n + 1);
    struct client_conn *c = conn_open();
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
    expect_closed(c);
    client_close(c);
    free(body);
}
END_TEST

/* ---- 2. Pipelining ---- */

START_TEST(test_pipeline_one_write_answered_in_order)
{
    char reqs[8192];
    size_t n = pipeline_build(reqs, sizeof(reqs));
    struct client_conn *c = conn_open();

    ck_assert_int_eq(client_send(c, reqs, n), 0);
    pipeline_expect(c);
    expect_open(c, 50);
    client_close(c);
}
END_TEST

START_TEST(test_pipeline_plaintext_json_alternate_in_order)
{
    char reqs[4096] = "";
    struct client_conn *c = conn_open();
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

START_TEST(test_pipeline_byte_by_byte_answered_in_order)
{
    char reqs[8192];
    size_t n = pipeline_build(reqs, sizeof(reqs));
    struct client_conn *c = conn_open();

    ck_assert_int_eq(client_send_pieces(c, reqs, n, 1, 1, 100), 0);
    pipeline_expect(c);
    client_close(c);
}
END_TEST

START_TEST(test_pipeline_random_pieces_answered_in_order)
{
    char reqs[8192];
    size_t n = pipeline_build(reqs, sizeof(reqs));
    struct client_conn *c = conn_open();

    ck_assert_int_eq(client_send_pieces(c, reqs, n, 1, 90, 2000), 0);
    pipeline_expect(c);
    client_close(c);
}
END_TEST

START_TEST(test_request_split_across_reads)
{
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                              "Content-Length: 11\r\n\r\nhello world";
    struct client_conn *c = conn_open();

    ck_assert_int_eq(client_send_pieces(c, req, sizeof(req) - 1, 1, 1, 1000), 0);
    expect_reply(c, 200, "hello world");
    /* and cut at every third byte, with longer pauses: head, CRLF and body all split */
    ck_assert_int_eq(client_send_pieces(c, req, sizeof(req) - 1, 3, 3, 10000), 0);
    expect_reply(c, 200, "hello world");
    client_close(c);
}
END_TEST

START_TEST(test_chunked_request_split_byte_by_byte)
{
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n" GET_PLAIN;
    struct client_conn *c = conn_open();

    ck_assert_int_eq(client_send_pieces(c, req, sizeof(req) - 1, 1, 1, 500), 0);
    expect_reply(c, 200, "hello world");
    expect_reply(c, 200, HELLO);
    client_close(c);
}
END_TEST

/* Requests that come after one with Connection: close are not answered. */
START_TEST(test_pipeline_stops_at_connection_close)
{
    struct client_conn *c = conn_open();

    client_send_str(c, GET_PLAIN
                    "GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" GET_PLAIN);
    expect_reply(c, 200, HELLO);
    expect_reply(c, 200, HELLO_JSON);
    expect_closed(c);
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
    struct client_conn *c = client_open_rcvbuf(port, 4096);
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
    expect_open(c, 50);
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
    struct client_conn *c = conn_open();
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
    expect_reply(c, 200, HELLO);
    for (int i = 0; i < N; i++) {
        big_body(body, i);
        ck_assert_msg(client_read_reply(c, &res, false, T_MS) == 0, "echo %d missing", i);
        ck_assert_int_eq(res.status, 200);
        ck_assert_uint_eq(res.body_len, BIG_BODY);
        ck_assert_msg(memcmp(res.body, body, BIG_BODY) == 0, "echo %d: wrong body", i);
        client_res_free(&res);
    }
    expect_reply(c, 200, HELLO_JSON);
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

/* Whether prog is an executable in $PATH. */
static bool in_path(const char *prog)
{
    char *path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"), *save = NULL;
    bool found = false;

    for (char *d = strtok_r(path, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char f[4096];
        snprintf(f, sizeof(f), "%s/%s", d, prog);
        found = access(f, X_OK) == 0;
    }
    free(path);
    return found;
}

struct send_count {
    int calls;  /* send-family calls on the client socket */
    long bytes; /* the bytes they sent */
};

/* Counts, in an strace -f log, the send-family calls on the descriptor whose first send
   starts with an HTTP status line: the one connection of the test. */
static struct send_count count_sends(const char *file)
{
    struct send_count sc = {0, 0};
    char line[4096];
    long fd = -1;
    FILE *f = fopen(file, "r");

    while (f && fgets(line, sizeof(line), f)) {
        char *p = line + strspn(line, "0123456789 "), *paren = strchr(p, '(');
        if (!paren || !(strncmp(p, "sendto(", 7) == 0 || strncmp(p, "write(", 6) == 0 ||
                        strncmp(p, "writev(", 7) == 0 || strncmp(p, "sendmsg(", 8) == 0))
            continue;
        long this_fd = strtol(paren + 1, NULL, 10);
        char *quote = strchr(paren, '"'), *eq = strrchr(line, '=');
        if (fd < 0 && quote && strncmp(quote + 1, "HTTP/1.1 ", 9) == 0)
            fd = this_fd;
        if (this_fd == fd && eq) {
            sc.calls++;
            sc.bytes += strtol(eq + 1, NULL, 10);
        }
    }
    if (f)
        fclose(f);
    return sc;
}

START_TEST(test_pipelined_replies_sent_in_one_batch)
{
    char trace[] = "/tmp/squall-strace-XXXXXX", conf[4096], reqs[8192];
    const char *wrap[] = {"strace", "-f",  "-e", "trace=sendto,write,writev,sendmsg",
                          "-o",     trace, NULL};
    struct client_proc p;

    ck_assert_msg(in_path("strace"), "strace not found in PATH: install it (apt-get install "
                                     "strace); this test counts the host's send() calls with it");
    int tfd = mkstemp(trace);
    ck_assert(tfd >= 0);
    close(tfd);
    struct client_spawn_opts o = {.wrap = wrap};
    ck_assert(client_hello_conf(NULL, conf, sizeof(conf)));
    int rc = client_spawn(&p, conf, &o);
    char *err = client_proc_stderr(&p);
    ck_assert_msg(rc == 0, "squall under strace did not start: %s", err);
    free(err);

    size_t n = pipeline_build(reqs, sizeof(reqs));
    struct client_conn *c = client_open(p.port);
    ck_assert(c);
    ck_assert_int_eq(client_send(c, reqs, n), 0); /* one write: they arrive together */
    pipeline_expect(c);
    size_t got = c->len;
    client_close(c);
    client_proc_free(&p);
    struct send_count sc = count_sends(trace);
    unlink(trace);
    ck_assert_msg(sc.calls == 1, "%d send calls for %d pipelined replies (want 1)", sc.calls,
                  NPIPE);
    ck_assert_int_eq(sc.bytes, (long)got);
}
END_TEST

/* ---- 3. Bodies ---- */

START_TEST(test_echo_content_length_body)
{
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\n"
                              "Content-Length: 12\r\n\r\nhello\0world!" GET_PLAIN;
    struct client_conn *c = conn_open();
    struct client_res res;

    client_send(c, req, sizeof(req) - 1);
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_uint_eq(res.body_len, 12);
    ck_assert(memcmp(res.body, "hello\0world!", 12) == 0);
    ck_assert_pstr_eq(client_res_header(&res, "Content-Type"), "a/b");
    client_res_free(&res);
    expect_reply(c, 200, HELLO); /* exactly 12 bytes were taken as the body */
    client_close(c);
}
END_TEST

START_TEST(test_echo_chunked_body_with_extensions_and_trailers)
{
    struct client_conn *c = conn_open();

    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5;ext=1\r\nhello\r\n"
                       "7 ; a=b;c=\"d e\"\r\n, world\r\n"
                       "A\r\n0123456789\r\n"
                       "0;last\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n" GET_PLAIN);
    expect_reply(c, 200, "hello, world0123456789");
    expect_reply(c, 200, HELLO); /* the trailers were consumed, not taken for a request */
    client_close(c);
}
END_TEST

START_TEST(test_expect_100_continue)
{
    struct client_conn *c = conn_open();
    struct client_res res;

    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                       "Expect: 100-continue\r\n\r\n");
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 100);
    ck_assert_msg(strncmp(c->buf, "HTTP/1.1 100 Continue\r\n", 23) == 0, "got %.30s", c->buf);
    client_res_free(&res);
    ck_assert_uint_eq(client_unparsed(c), 0);
    client_send_str(c, "hello");
    expect_reply(c, 200, "hello");
    client_close(c);
}
END_TEST

START_TEST(test_get_with_body_then_pipelined_request)
{
    struct client_conn *c = conn_open();

    client_send_str(c, "GET /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                       "hello" GET_JSON);
    expect_reply(c, 200, HELLO);
    expect_reply(c, 200, HELLO_JSON);
    client_close(c);
}
END_TEST

START_TEST(test_absolute_form_target)
{
    struct client_conn *c = conn_open();

    client_send_str(c, "GET http://127.0.0.1/plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                       "GET http://127.0.0.1:80/json?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    expect_reply(c, 200, HELLO);
    expect_reply(c, 200, HELLO_JSON);
    client_close(c);
}
END_TEST

/* Empty lines before a request line are skipped (RFC 9112 §2.2). */
START_TEST(test_leading_empty_lines_skipped)
{
    struct client_conn *c = conn_open();

    client_send_str(c, "\r\n\r\n" GET_PLAIN "\r\n" GET_JSON);
    expect_reply(c, 200, HELLO);
    expect_reply(c, 200, HELLO_JSON);
    client_close(c);
}
END_TEST

START_TEST(test_echo_1mb_body_intact)
{
    char head[128];
    char *body = malloc(ONE_MB);
    struct client_conn *c = conn_open();
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
    expect_reply(c, 200, HELLO);
    client_close(c);
    free(body);
}
END_TEST

START_TEST(test_body_over_max_body_413_before_body)
{
    struct client_conn *c = conn_open();
    struct client_res res;

    /* only the head: the answer must not wait for a body */
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n");
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 413);
    ck_assert_pstr_eq(client_res_header(&res, "Connection"), "close");
    client_res_free(&res);
    expect_closed(c);
    client_close(c);
}
END_TEST

/* A client that sends its body without waiting still reads the whole 413: the server
   drains what it sends instead of resetting the connection under the reply. */
START_TEST(test_413_survives_body_sent_anyway)
{
    size_t n = 64 * 1024;
    char *req = malloc(n + 128);
    struct client_conn *c = conn_open();
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
    struct client_conn *c = conn_open();
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
    struct client_conn *c = conn_open();

    int n = snprintf(req, sizeof(req),
                     "POST /echo HTTP/1.1\r\nHost: t\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n320\r\n");
    memset(req + n, 'c', 800);
    snprintf(req + n + 800, sizeof(req) - (size_t)n - 800, "\r\n320\r\n");
    client_send_str(c, req); /* the second chunk would pass 1k: refused before its data */
    expect_reply(c, 413, NULL);
    expect_closed(c);
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
        struct client_conn *c = conn_open();
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
    struct client_conn *c = conn_open();
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
    expect_open(c, 50);
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
    struct client_conn *c = conn_open();
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
    struct client_conn *c = conn_open();

    client_send_str(c, GET_PLAIN "GET /plaintext HTTP/1.1\r\nX-A : a\r\n\r\n" GET_PLAIN);
    expect_reply(c, 200, HELLO);
    expect_reply(c, 400, NULL);
    expect_closed(c);
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
    struct client_conn *c = conn_open();

    client_send(c, req, head_of_size(req, 8192));
    expect_reply(c, 200, HELLO);
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

/* ---- 6. Timeouts: header_timeout = 300ms, keepalive_timeout = 1s ---- */

/*
 * Sends bytes one every 100 ms, never all of them, until the server closes. Returns the
 * milliseconds from start to the close, or -1 if it was still open after 2 s.
 */
static long drip_until_closed(struct client_conn *c, const char *bytes, int64_t start)
{
    for (size_t i = 0; client_now_ms() - start < 2000; i++) {
        if (i < strlen(bytes) && client_send(c, bytes + i, 1) < 0)
            break; /* reset: it closed already */
        int64_t next = client_now_ms() + 100;
        while (client_now_ms() < next && !c->closed)
            client_fill(c, (int)(next - client_now_ms()));
        if (c->closed)
            break;
    }
    return c->closed || client_wait_close(c, 0) ? (long)(client_now_ms() - start) : -1;
}

/* Partial requests, so that none ever completes within 2 s at 100 ms a byte. */
#define DRIP "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

START_TEST(test_slow_request_line_closed_at_header_timeout)
{
    int64_t start = client_now_ms();
    struct client_conn *c = conn_open();
    long ms = drip_until_closed(c, DRIP, start);

    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300 (-1: never)", ms);
    client_close(c);
}
END_TEST

START_TEST(test_slow_headers_closed_at_header_timeout)
{
    int64_t start = client_now_ms();
    struct client_conn *c = conn_open();

    client_send_str(c, "GET /plaintext HTTP/1.1\r\n");
    long ms = drip_until_closed(c, "Host: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa", start);
    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300 (-1: never)", ms);
    client_close(c);
}
END_TEST

/* The second request on a connection gets header_timeout from its first byte. */
START_TEST(test_slow_second_request_closed_at_header_timeout)
{
    struct client_conn *c = conn_open();

    client_send_str(c, GET_PLAIN);
    expect_reply(c, 200, HELLO);
    client_sleep_ms(200);
    long ms = drip_until_closed(c, DRIP, client_now_ms());
    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300 (-1: never)", ms);
    client_close(c);
}
END_TEST

START_TEST(test_silent_connection_closed_at_header_timeout)
{
    int64_t start = client_now_ms();
    struct client_conn *c = conn_open();

    ck_assert(client_wait_close(c, 2000));
    long ms = (long)(client_now_ms() - start);
    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300", ms);
    ck_assert_uint_eq(c->len, 0);
    client_close(c);
}
END_TEST

START_TEST(test_stalled_body_closed_at_header_timeout)
{
    struct client_conn *c = conn_open();

    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    int64_t start = client_now_ms();
    ck_assert(client_wait_close(c, 2000));
    long ms = (long)(client_now_ms() - start);
    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300", ms);
    ck_assert_uint_eq(c->len, 0);
    client_close(c);
}
END_TEST

START_TEST(test_idle_keepalive_closed_at_keepalive_timeout)
{
    struct client_conn *c = conn_open();

    client_send_str(c, GET_PLAIN);
    expect_reply(c, 200, HELLO);
    int64_t start = client_now_ms();
    ck_assert(client_wait_close(c, 3000));
    long ms = (long)(client_now_ms() - start);
    ck_assert_msg(ms >= 900 && ms <= 1600, "closed after %ld ms idle, want ~1000", ms);
    ck_assert_uint_eq(client_unparsed(c), 0);
    client_close(c);
}
END_TEST

START_TEST(test_busy_connection_stays_open)
{
    struct client_conn *c = conn_open();

    /* 1.5 s of requests 100 ms apart: past both timeouts, never idle for either */
    for (int i = 0; i < 15; i++) {
        client_send_str(c, GET_PLAIN);
        expect_reply(c, 200, HELLO);
        expect_open(c, 100);
    }
    client_close(c);
}
END_TEST

/* A body that keeps arriving is not cut off by header_timeout. */
START_TEST(test_slow_body_with_progress_stays_open)
{
    struct client_conn *c = conn_open();

    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n");
    ck_assert_int_eq(client_send_pieces(c, "abcdefgh", 8, 1, 1, 150000), 0);
    expect_reply(c, 200, "abcdefgh");
    client_close(c);
}
END_TEST

/*
 * Keeps sending echo requests on c without ever reading, until the server gives up on the
 * connection. Returns the milliseconds from start to that, and in *stall the milliseconds
 * from the last byte the server took to that; -1 if it is still open after 4 s.
 */
static long send_unread_until_closed(struct client_conn *c, long *stall)
{
    size_t body = 256 * 1024, len;
    char *req = malloc(body + 128);
    int64_t start = client_now_ms(), last = start, off = 0;
    long ms = -1;

    len =
        (size_t)sprintf(req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", body);
    memset(req + len, 'u', body);
    len += body;
    while (ms < 0 && client_now_ms() - start < 4000) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        poll(&pfd, 1, 10);
        ssize_t w = send(c->fd, req + off, len - (size_t)off, MSG_NOSIGNAL);
        if (w > 0) {
            off = (off + w) % (int64_t)len;
            last = client_now_ms();
        } else if ((w < 0 && errno != EAGAIN) || (pfd.revents & (POLLERR | POLLHUP))) {
            ms = (long)(client_now_ms() - start);
        }
    }
    *stall = (long)(client_now_ms() - last);
    free(req);
    return ms;
}

/* A client that sends requests but never reads the replies is closed once they have not
   moved for keepalive_timeout, its requests unanswered. */
START_TEST(test_unread_replies_closed_at_keepalive_timeout)
{
    struct client_conn *c = client_open_rcvbuf(port, 4096);
    long stall;

    ck_assert(c);
    long ms = send_unread_until_closed(c, &stall);
    ck_assert_msg(ms >= 0, "still open after 4 s with its replies unread");
    ck_assert_msg(ms >= 900 && stall <= 1600,
                  "closed after %ld ms, %ld ms after the last "
                  "progress; want ~1000",
                  ms, stall);
    client_close(c);
}
END_TEST

/* ---- 7. Many connections, and running out of descriptors ---- */

#define NCONNS 1000

START_TEST(test_1000_keepalive_clients)
{
    static struct client_conn *cs[NCONNS];
    static int status[NCONNS];

    long nofile = client_raise_nofile();
    ck_assert_msg(nofile >= 2 * NCONNS + 100,
                  "RLIMIT_NOFILE hard limit %ld: need %d descriptors "
                  "for both ends of %d connections",
                  nofile, 2 * NCONNS + 100, NCONNS);
    for (size_t i = 0; i < NCONNS; i++) {
        cs[i] = client_open_nb(port);
        ck_assert_msg(cs[i], "connection %zu failed", i);
    }
    for (int round = 0; round < 2; round++) {
        size_t got = client_round(cs, NCONNS, GET_PLAIN, status, 10000);
        ck_assert_msg(got == NCONNS, "round %d: %zu of %d replies", round, got, NCONNS);
        for (size_t i = 0; i < NCONNS; i++) {
            ck_assert_msg(status[i] == 200, "round %d, client %zu: %d", round, i, status[i]);
            ck_assert_msg(!cs[i]->closed, "round %d: client %zu closed", round, i);
        }
    }
    for (size_t i = 0; i < NCONNS; i++)
        client_close(cs[i]);
}
END_TEST

/* GET /plaintext on a new connection to port: 200? */
static bool serves(uint16_t p)
{
    struct client_conn *c = client_open(p);
    struct client_res res = {0};
    bool ok = c && client_roundtrip(c, GET_PLAIN, &res, T_MS) == 0 && res.status == 200;

    client_res_free(&res);
    client_close(c);
    return ok;
}

START_TEST(test_out_of_descriptors_no_spin_then_recovers)
{
    enum { N = 100 };
    struct client_conn *cs[N];
    struct client_spawn_opts o = {.nofile = 64};
    struct client_proc p;
    char conf[4096];

    ck_assert(client_hello_conf(NULL, conf, sizeof(conf)));
    int rc = client_spawn(&p, conf, &o);
    char *err = client_proc_stderr(&p);
    ck_assert_msg(rc == 0, "squall did not start with 64 descriptors: %s", err);
    free(err);
    for (int i = 0; i < N; i++) {
        cs[i] = client_open(p.port);
        ck_assert_msg(cs[i], "connect %d failed", i);
    }
    client_sleep_ms(300);
    err = client_proc_stderr(&p);
    ck_assert_msg(strstr(err, "out of file descriptors"), "never ran out of descriptors: %s", err);
    free(err);

    /* saturated: an accepted connection is still served, and the loop does not spin */
    struct client_res res;
    ck_assert_int_eq(client_roundtrip(cs[0], GET_PLAIN, &res, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    client_res_free(&res);
    long t0 = client_cpu_ticks(p.pid);
    client_sleep_ms(1000);
    long t1 = client_cpu_ticks(p.pid);
    ck_assert_msg(t0 >= 0 && t1 >= 0, "cannot read /proc/%d/stat", (int)p.pid);
    ck_assert_msg(t1 - t0 < 30, "%ld ticks of CPU in 1 s while out of descriptors", t1 - t0);
    ck_assert_int_eq(client_proc_wait(&p, 0), -1); /* still alive */

    for (int i = 0; i < N; i++)
        client_close(cs[i]);
    bool ok = false;
    for (int64_t end = client_now_ms() + 3000; !ok && client_now_ms() < end;)
        ok = serves(p.port);
    ck_assert_msg(ok, "no 200 after the connections closed");
    int st = client_proc_stop(&p);
    client_proc_free(&p);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "squall exit status %#x", st);
}
END_TEST

/* ---- Suite ---- */

static TCase *tcase(Suite *s, const char *name, void (*setup)(void), double timeout)
{
    TCase *tc = tcase_create(name);

    if (setup)
        tcase_add_checked_fixture(tc, setup, teardown_host);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = tcase(s, "keepalive", setup_default, 10);
    tcase_add_test(tc, test_keepalive_serves_many_requests);
    tcase_add_test(tc, test_http10_closes_after_reply);
    tcase_add_test(tc, test_http10_keepalive_stays_open);
    tcase_add_test(tc, test_connection_close_closes);
    tcase_add_test(tc, test_half_closed_client_gets_replies);
    tcase_add_test(tc, test_half_closed_client_gets_big_reply);

    tc = tcase(s, "pipelining", setup_default, 10);
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

    tc = tcase(s, "batching", NULL, 20);
    tcase_add_test(tc, test_pipelined_replies_sent_in_one_batch);

    tc = tcase(s, "bodies", setup_default, 10);
    tcase_add_test(tc, test_echo_content_length_body);
    tcase_add_test(tc, test_echo_chunked_body_with_extensions_and_trailers);
    tcase_add_test(tc, test_expect_100_continue);
    tcase_add_test(tc, test_get_with_body_then_pipelined_request);
    tcase_add_test(tc, test_absolute_form_target);
    tcase_add_test(tc, test_leading_empty_lines_skipped);
    tcase_add_test(tc, test_echo_1mb_body_intact);

    tc = tcase(s, "max_body", setup_small_body, 10);
    tcase_add_test(tc, test_body_over_max_body_413_before_body);
    tcase_add_test(tc, test_413_survives_body_sent_anyway);
    tcase_add_test(tc, test_body_at_max_body_accepted);
    tcase_add_test(tc, test_chunked_body_over_max_body_413);

    tc = tcase(s, "headers", setup_default, 10);
    tcase_add_test(tc, test_every_reply_has_standard_headers);
    tcase_add_test(tc, test_head_same_headers_no_body);

    tc = tcase(s, "bad_input", setup_default, 10);
    tcase_add_loop_test(tc, test_bad_request_answered_then_closed, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_bad_request_after_good_one);
    tcase_add_test(tc, test_headers_over_max_header_431);
    tcase_add_test(tc, test_head_of_max_header_accepted_one_more_431);
    tcase_add_test(tc, test_too_many_headers_431);
    tcase_add_test(tc, test_target_over_4k_414);

    tc = tcase(s, "timeouts", setup_timeouts, 10);
    tcase_add_test(tc, test_slow_request_line_closed_at_header_timeout);
    tcase_add_test(tc, test_slow_headers_closed_at_header_timeout);
    tcase_add_test(tc, test_slow_second_request_closed_at_header_timeout);
    tcase_add_test(tc, test_silent_connection_closed_at_header_timeout);
    tcase_add_test(tc, test_stalled_body_closed_at_header_timeout);
    tcase_add_test(tc, test_idle_keepalive_closed_at_keepalive_timeout);
    tcase_add_test(tc, test_busy_connection_stays_open);
    tcase_add_test(tc, test_slow_body_with_progress_stays_open);
    tcase_add_test(tc, test_unread_replies_closed_at_keepalive_timeout);

    tc = tcase(s, "many_connections", setup_default, 20);
    tcase_add_test(tc, test_1000_keepalive_clients);

    tc = tcase(s, "descriptors", NULL, 20);
    tcase_add_test(tc, test_out_of_descriptors_no_spin_then_recovers);
    return s;
}

int main(void)
{
    /* Every test starts a host: without this each one logs "plugin hello loaded". */
    setenv("SQUALL_LOG", "warn", 0);
    log_init();
    SRunner *sr = srunner_create(http_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
