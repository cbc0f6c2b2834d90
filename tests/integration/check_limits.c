/*
 * check_limits.c - the HTTP/1.1 connection against time and resources, over real sockets:
 * replies batched into one send, header and keep-alive timeouts, a thousand connections at
 * once, running out of descriptors. The protocol itself is in check_http.c.
 *
 * The timeout and connection tests run a host in-process (sq_test_start, a fresh one per
 * test from the tcase's fixture: client_host_tcase); the ones that need a process of their
 * own (strace, rlimits, CPU time) spawn $SQ_BUILD/squall. Run from the repository root.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check_main.h"
#include "client.h"

static void setup_timeouts(void)
{
    client_host_start("header_timeout = 300ms\nkeepalive_timeout = 1s\n");
}

/* ---- 1. Batching: pipelined replies go out in one send ---- */

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

    size_t n = client_pipeline_build(reqs, sizeof(reqs));
    struct client_conn *c = client_open(p.port);
    ck_assert(c);
    ck_assert_int_eq(client_send(c, reqs, n), 0); /* one write: they arrive together */
    client_pipeline_expect(c);
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

/* ---- 2. Timeouts: header_timeout = 300ms, keepalive_timeout = 1s ---- */

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
    struct client_conn *c = client_host_connect();
    long ms = drip_until_closed(c, DRIP, start);

    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300 (-1: never)", ms);
    client_close(c);
}
END_TEST

START_TEST(test_slow_headers_closed_at_header_timeout)
{
    int64_t start = client_now_ms();
    struct client_conn *c = client_host_connect();

    client_send_str(c, "GET /plaintext HTTP/1.1\r\n");
    long ms = drip_until_closed(c, "Host: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa", start);
    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300 (-1: never)", ms);
    client_close(c);
}
END_TEST

/* The second request on a connection gets header_timeout from its first byte. */
START_TEST(test_slow_second_request_closed_at_header_timeout)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, GET_PLAIN);
    client_expect_reply(c, 200, HELLO);
    client_sleep_ms(200);
    long ms = drip_until_closed(c, DRIP, client_now_ms());
    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300 (-1: never)", ms);
    client_close(c);
}
END_TEST

/* Checks that the server closes c about header_timeout (300 ms) after start, without a
   byte sent. */
static void expect_silent_close_at_header_timeout(struct client_conn *c, int64_t start)
{
    ck_assert(client_wait_close(c, 2000));
    long ms = (long)(client_now_ms() - start);
    ck_assert_msg(ms >= 250 && ms <= 800, "closed after %ld ms, want ~300", ms);
    ck_assert_uint_eq(c->len, 0);
}

START_TEST(test_silent_connection_closed_at_header_timeout)
{
    int64_t start = client_now_ms();
    struct client_conn *c = client_host_connect();

    expect_silent_close_at_header_timeout(c, start);
    client_close(c);
}
END_TEST

START_TEST(test_stalled_body_closed_at_header_timeout)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    expect_silent_close_at_header_timeout(c, client_now_ms());
    client_close(c);
}
END_TEST

START_TEST(test_idle_keepalive_closed_at_keepalive_timeout)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, GET_PLAIN);
    client_expect_reply(c, 200, HELLO);
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
    struct client_conn *c = client_host_connect();

    /* 1.5 s of requests 100 ms apart: past both timeouts, never idle for either */
    for (int i = 0; i < 15; i++) {
        client_send_str(c, GET_PLAIN);
        client_expect_reply(c, 200, HELLO);
        client_expect_open(c, 100);
    }
    client_close(c);
}
END_TEST

/* A body that keeps arriving is not cut off by header_timeout. */
START_TEST(test_slow_body_with_progress_stays_open)
{
    struct client_conn *c = client_host_connect();

    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n");
    ck_assert_int_eq(client_send_pieces(c, "abcdefgh", 8, 1, 1, 150000), 0);
    client_expect_reply(c, 200, "abcdefgh");
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
    struct client_conn *c = client_open_rcvbuf(client_host_port(), 4096);
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

/* ---- 3. Many connections, and running out of descriptors ---- */

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
        cs[i] = client_open_nb(client_host_port());
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

static Suite *limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc;

    tc = client_host_tcase(s, "batching", NULL, 20);
    tcase_add_test(tc, test_pipelined_replies_sent_in_one_batch);

    tc = client_host_tcase(s, "timeouts", setup_timeouts, 10);
    tcase_add_test(tc, test_slow_request_line_closed_at_header_timeout);
    tcase_add_test(tc, test_slow_headers_closed_at_header_timeout);
    tcase_add_test(tc, test_slow_second_request_closed_at_header_timeout);
    tcase_add_test(tc, test_silent_connection_closed_at_header_timeout);
    tcase_add_test(tc, test_stalled_body_closed_at_header_timeout);
    tcase_add_test(tc, test_idle_keepalive_closed_at_keepalive_timeout);
    tcase_add_test(tc, test_busy_connection_stays_open);
    tcase_add_test(tc, test_slow_body_with_progress_stays_open);
    tcase_add_test(tc, test_unread_replies_closed_at_keepalive_timeout);

    tc = client_host_tcase(s, "many_connections", client_host_setup, 20);
    tcase_add_test(tc, test_1000_keepalive_clients);

    tc = client_host_tcase(s, "descriptors", NULL, 20);
    tcase_add_test(tc, test_out_of_descriptors_no_spin_then_recovers);
    return s;
}

int main(void)
{
    client_log_quiet(); /* most tests start a host */
    return check_run(limits_suite());
}
