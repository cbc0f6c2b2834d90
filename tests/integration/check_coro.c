/*
 * check_coro.c - request handlers as coroutines, end to end: a handler that awaits blocks
 * nobody, is cancelled when its client goes away or the host stops, keeps pipelined replies
 * in order, honours its deadline, and a stack overflow in one is reported, not silent.
 *
 * Served by the asyncplug test plugin (tests/plugins/asyncplug.c) next to hello, in a host
 * in this process (sq_test_start), or in a spawned `$SQ_BUILD/squall` where the test needs
 * the process to die.
 */
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check_main.h"
#include "client.h"
#include "squall_test.h"

#define NWAIT 100 /* requests sleeping at once while another is served */

static sq_test_host *host;

/* Writes a plugins.conf serving asyncplug and hello (absolute paths) to out, with
   server_keys and plugin_keys (NULL or "key = value\n" lines) in their sections. */
static char *conf_build(const char *server_keys, const char *plugin_keys, char *out, size_t len)
{
    char async_so[PATH_MAX], hello_so[PATH_MAX];

    ck_assert_ptr_nonnull(client_build_path("tests/plugins/asyncplug.so", async_so, PATH_MAX));
    ck_assert_ptr_nonnull(client_build_path("plugins/hello.so", hello_so, PATH_MAX));
    ck_assert_msg(access(async_so, R_OK) == 0, "%s is not built", async_so);
    int n = snprintf(
        out, len, "[server]\n%s\n[plugin asyncplug]\npath = %s\n%s\n[plugin hello]\npath = %s\n",
        server_keys ? server_keys : "", async_so, plugin_keys ? plugin_keys : "", hello_so);
    ck_assert(n > 0 && (size_t)n < len);
    return out;
}

static sq_test_host *host_start(const char *plugin_keys)
{
    char conf[2 * PATH_MAX + 512];
    sq_test_host *h = sq_test_start(conf_build(NULL, plugin_keys, conf, sizeof(conf)));

    ck_assert_msg(h, "host did not start: %s", sq_test_error());
    return h;
}

static void setup(void)
{
    host = host_start(NULL);
}

static void teardown(void)
{
    sq_test_stop(host);
    host = NULL;
}

/* /stats of asyncplug: what happened to the /wait requests. */
struct stats {
    json_int_t started, waiting, completed, cancelled, timedout, ops_cancelled;
};

/* Reads the stats JSON text s into st. */
static void stats_parse(const char *s, struct stats *st)
{
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);

    ck_assert_msg(j, "bad stats JSON: %s (%s)", s, err.text);
    ck_assert_int_eq(json_unpack(j, "{s:I,s:I,s:I,s:I,s:I,s:I}", "started", &st->started, "waiting",
                                 &st->waiting, "completed", &st->completed, "cancelled",
                                 &st->cancelled, "timedout", &st->timedout, "ops_cancelled",
                                 &st->ops_cancelled),
                     0);
    json_decref(j);
}

static struct stats stats_get(sq_test_host *h)
{
    struct stats st;
    sq_test_res *res = client_req(h, "GET", "/stats", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    stats_parse(res->body, &st);
    sq_test_res_free(res);
    return st;
}

#define STAT(field) offsetof(struct stats, field)

/* Polls /stats until the field at offset off (STAT(name)) reaches want, for up to
   timeout_ms. Returns the last stats read. */
static struct stats stats_wait(sq_test_host *h, size_t off, json_int_t want, int timeout_ms)
{
    int64_t end = client_now_ms() + timeout_ms;
    struct stats st = stats_get(h);

    while (*(json_int_t *)((char *)&st + off) < want && client_now_ms() < end) {
        client_sleep_ms(5);
        st = stats_get(h);
    }
    return st;
}

static struct client_conn *open_wait(uint16_t port, int ms)
{
    char req[128];
    struct client_conn *c = client_open(port);

    ck_assert_msg(c, "cannot connect to 127.0.0.1:%u", port);
    snprintf(req, sizeof(req), "GET /wait?ms=%d HTTP/1.1\r\nHost: t\r\n\r\n", ms);
    ck_assert_int_eq(client_send_str(c, req), 0);
    return c;
}

/* Checks that the server closes c without having sent anything. */
static void expect_closed_silently(struct client_conn *c, int timeout_ms)
{
    ck_assert_msg(client_wait_close(c, timeout_ms), "the server kept the connection open");
    ck_assert_msg(c->len == 0, "%zu bytes came: %.80s", c->len, c->buf);
}

/* ---- Cancellation when the client goes away ---- */

START_TEST(test_disconnect_cancels_handler)
{
    uint16_t port = sq_test_port(host);
    struct client_conn *gone = open_wait(port, 2000), *stays = open_wait(port, 500);

    struct stats st = stats_wait(host, STAT(started), 2, 1000);
    ck_assert_int_eq(st.started, 2);
    client_close(gone);
    int64_t t0 = client_now_ms();
    st = stats_wait(host, STAT(cancelled), 1, 1000);
    int64_t dt = client_now_ms() - t0;
    ck_assert_msg(st.cancelled == 1, "not cancelled 1 s after the client closed");
    ck_assert_msg(dt <= 200, "cancelled %lld ms after the client closed", (long long)dt);
    ck_assert_int_eq(st.completed, 0);
    ck_assert_int_eq(st.waiting, 1);

    /* The other client is not affected. */
    client_expect_reply(stays, 200, "{\"slept\":500}");
    client_close(stays);
    st = stats_get(host);
    ck_assert_int_eq(st.completed, 1);
    ck_assert_int_eq(st.cancelled, 1);
    ck_assert_int_eq(st.waiting, 0);
}
END_TEST

/* A handler awaiting operations: they are cancelled with it, and the request (whose memory
   they use) ends only after them. Also with three at a time, it takes one op's time. */
START_TEST(test_disconnect_cancels_operations)
{
    struct client_conn *c = client_open(sq_test_port(host));
    struct client_res res;

    ck_assert_ptr_nonnull(c);
    int64_t t0 = client_now_ms();
    ck_assert_int_eq(
        client_roundtrip(c, "GET /fanout?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n", &res, T_MS), 0);
    int64_t dt = client_now_ms() - t0;
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, "{\"ops\":3}");
    client_res_free(&res);
    ck_assert_msg(dt >= 95 && dt < 300, "3 concurrent ops of 100 ms took %lld ms", (long long)dt);

    ck_assert_int_eq(client_send_str(c, "GET /fanout?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    ck_assert_int_eq(stats_wait(host, STAT(started), 2, 1000).started, 2);
    client_sleep_ms(20); /* the ops are sleeping */
    client_close(c);
    t0 = client_now_ms();
    struct stats st = stats_wait(host, STAT(cancelled), 1, 1000);
    ck_assert_int_eq(st.cancelled, 1);
    ck_assert_int_le(client_now_ms() - t0, 200);
    st = stats_wait(host, STAT(ops_cancelled), 3, 500);
    ck_assert_int_eq(st.ops_cancelled, 3);
    ck_assert_int_eq(st.completed, 1);
}
END_TEST

/* Closing only its sending side counts as going away too (conn.c, conn_read_busy). */
START_TEST(test_half_close_cancels_handler)
{
    struct client_conn *c = open_wait(sq_test_port(host), 2000);

    ck_assert_int_eq(stats_wait(host, STAT(started), 1, 1000).started, 1);
    client_shutdown_write(c);
    int64_t t0 = client_now_ms();
    struct stats st = stats_wait(host, STAT(cancelled), 1, 1000);
    ck_assert_int_eq(st.cancelled, 1);
    ck_assert_int_le(client_now_ms() - t0, 200);
    ck_assert_int_eq(st.completed, 0);
    expect_closed_silently(c, CLOSE_MS); /* the reply is dropped */
    client_close(c);
}
END_TEST

/* ---- Awaiting blocks nobody ---- */

START_TEST(test_sleeping_blocks_nobody)
{
    uint16_t port = sq_test_port(host);
    struct client_conn *cs[NWAIT];
    struct client_res res;

    client_raise_nofile();
    int64_t t0 = client_now_ms();
    for (int i = 0; i < NWAIT; i++)
        cs[i] = open_wait(port, 1000);
    ck_assert_int_eq(stats_wait(host, STAT(started), NWAIT, 2000).started, NWAIT);

    struct client_conn *c = client_open(port);
    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < 3; i++) {
        int64_t t1 = client_now_ms();
        ck_assert_int_eq(client_roundtrip(c, GET_PLAIN, &res, T_MS), 0);
        int64_t dt = client_now_ms() - t1;
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, HELLO);
        client_res_free(&res);
        ck_assert_msg(dt < 50, "GET /plaintext took %lld ms with %d requests sleeping",
                      (long long)dt, NWAIT);
    }
    ck_assert_int_eq(stats_get(host).completed, 0); /* they were all still sleeping */
    client_close(c);

    for (int i = 0; i < NWAIT; i++) {
        client_expect_reply(cs[i], 200, "{\"slept\":1000}");
        client_close(cs[i]);
    }
    int64_t dt = client_now_ms() - t0;
    ck_assert_msg(dt >= 1000 && dt < 1800, "%d sleeps of 1 s took %lld ms", NWAIT, (long long)dt);
    ck_assert_int_eq(stats_get(host).completed, NWAIT);
}
END_TEST

/* ---- Pipelining ---- */

START_TEST(test_pipelined_after_await_in_order)
{
    struct client_conn *c = client_open(sq_test_port(host));
    struct client_res res;

    ck_assert_ptr_nonnull(c);
    int64_t t0 = client_now_ms();
    ck_assert_int_eq(client_send_str(c, "GET /wait?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n" GET_PLAIN),
                     0);
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, "{\"slept\":200}");
    client_res_free(&res);
    ck_assert_int_ge(client_now_ms() - t0, 195);
    client_expect_reply(c, 200, HELLO);

    /* Several that await, then one that does not: still in the order sent. */
    ck_assert_int_eq(client_send_str(c, "GET /wait?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n"
                                        "GET /wait?ms=10 HTTP/1.1\r\nHost: t\r\n\r\n" GET_JSON
                                        "GET /wait?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n"),
                     0);
    client_expect_reply(c, 200, "{\"slept\":100}");
    client_expect_reply(c, 200, "{\"slept\":10}");
    client_expect_reply(c, 200, HELLO_JSON);
    client_expect_reply(c, 200, "{\"slept\":0}");
    client_expect_open(c, 50); /* nothing more */
    client_close(c);
}
END_TEST

/* ---- Deadlines ---- */

START_TEST(test_deadline_gives_504)
{
    int64_t t0 = client_now_ms();
    sq_test_res *res = client_req(host, "GET", "/deadline?ms=50&sleep=1000", NULL, NULL, 0);
    int64_t dt = client_now_ms() - t0;

    ck_assert_int_eq(res->status, 504);
    client_assert_header(res, "Content-Type", "application/json");
    ck_assert_msg(strncmp(res->body, "{\"error\":\"deadline: ", 20) == 0 &&
                      strstr(res->body, "timed out"),
                  "body: %s", res->body);
    ck_assert_msg(dt >= 45 && dt < 500, "the deadline of 50 ms passed after %lld ms",
                  (long long)dt);
    sq_test_res_free(res);

    /* A deadline later than the sleep changes nothing. */
    res = client_req(host, "GET", "/deadline?ms=500&sleep=10", NULL, NULL, 0);
    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, "{\"slept\":10}");
    sq_test_res_free(res);
}
END_TEST

/* ---- Stack overflow ---- */

/* Spawns a host with asyncplug and server_keys, requests GET /deep and checks that the host
   dies of it, saying where. */
static void overflow_check(const char *server_keys)
{
    char conf[2 * PATH_MAX + 512], keys[256];
    struct client_proc p;
    struct client_res res;

    snprintf(keys, sizeof(keys), "listen = 127.0.0.1:0\n%s", server_keys ? server_keys : "");
    int rc = client_spawn(&p, conf_build(keys, NULL, conf, sizeof(conf)), NULL);
    char *err = client_proc_stderr(&p);
    ck_assert_msg(rc == 0, "host did not start: %s", err);
    free(err);

    /* It serves ordinary requests on that stack. */
    struct client_conn *c = client_open(p.port);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(client_roundtrip(c, "GET /wait?ms=1 HTTP/1.1\r\nHost: t\r\n\r\n", &res, T_MS),
                     0);
    ck_assert_int_eq(res.status, 200);
    client_res_free(&res);

    ck_assert_int_eq(client_send_str(c, "GET /deep HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    int st = client_proc_wait(&p, 5000);
    ck_assert_msg(st != -1, "the host still runs 5 s after GET /deep");
    ck_assert_msg((WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) ||
                      (WIFEXITED(st) && WEXITSTATUS(st) != 0),
                  "wait status %#x: neither killed by SIGSEGV nor a failure exit", st);
    err = client_proc_stderr(&p);
    ck_assert_msg(strstr(err, "stack overflow in plugin asyncplug (GET /deep)"), "stderr: %s", err);
    free(err);
    ck_assert(client_wait_close(c, CLOSE_MS));
    ck_assert_msg(client_unparsed(c) == 0, "a reply came for GET /deep: %.80s", c->buf + c->pos);
    client_close(c);
    client_proc_free(&p);
}

START_TEST(test_stack_overflow_reported)
{
    overflow_check(NULL);
}
END_TEST

START_TEST(test_stack_overflow_small_stack)
{
    overflow_check("coroutine_stack = 16k\n");
}
END_TEST

/* ---- Shutdown ---- */

START_TEST(test_stop_with_requests_in_flight)
{
    char keys[PATH_MAX + 32], path[] = "/tmp/squall-test-XXXXXX.json", text[256];
    struct client_conn *cs[10];

    int fd = mkstemps(path, 5);
    ck_assert_int_ge(fd, 0);
    snprintf(keys, sizeof(keys), "stats_file = %s\n", path);
    sq_test_host *h = host_start(keys);
    for (int i = 0; i < 10; i++)
        cs[i] = open_wait(sq_test_port(h), 5000);
    ck_assert_int_eq(stats_wait(h, STAT(started), 10, 1000).started, 10);

    int64_t t0 = client_now_ms();
    sq_test_stop(h);
    int64_t dt = client_now_ms() - t0;
    ck_assert_msg(dt < 1000, "sq_test_stop took %lld ms with 10 requests sleeping", (long long)dt);
    for (int i = 0; i < 10; i++) {
        expect_closed_silently(cs[i], CLOSE_MS);
        client_close(cs[i]);
    }

    /* fini ran after the handlers had ended, each cancelled. */
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    unlink(path);
    ck_assert_msg(n > 0, "fini wrote no stats");
    text[n] = '\0';
    struct stats st;
    stats_parse(text, &st);
    ck_assert_int_eq(st.started, 10);
    ck_assert_int_eq(st.cancelled, 10);
    ck_assert_int_eq(st.completed, 0);
    ck_assert_int_eq(st.waiting, 0);
}
END_TEST

static Suite *coro_suite(void)
{
    Suite *s = suite_create("coro");
    TCase *cancel = tcase_create("cancel");
    TCase *concurrency = tcase_create("concurrency");
    TCase *overflow = tcase_create("overflow");
    TCase *shutdown = tcase_create("shutdown");

    tcase_add_checked_fixture(cancel, setup, teardown);
    tcase_set_timeout(cancel, 10);
    tcase_add_test(cancel, test_disconnect_cancels_handler);
    tcase_add_test(cancel, test_half_close_cancels_handler);
    tcase_add_test(cancel, test_disconnect_cancels_operations);
    tcase_add_test(cancel, test_deadline_gives_504);
    suite_add_tcase(s, cancel);
    tcase_add_checked_fixture(concurrency, setup, teardown);
    tcase_set_timeout(concurrency, 10);
    tcase_add_test(concurrency, test_sleeping_blocks_nobody);
    tcase_add_test(concurrency, test_pipelined_after_await_in_order);
    suite_add_tcase(s, concurrency);
    tcase_set_timeout(overflow, 20);
    tcase_add_test(overflow, test_stack_overflow_reported);
    tcase_add_test(overflow, test_stack_overflow_small_stack);
    suite_add_tcase(s, overflow);
    tcase_set_timeout(shutdown, 10);
    tcase_add_test(shutdown, test_stop_with_requests_in_flight);
    suite_add_tcase(s, shutdown);
    return s;
}

int main(void)
{
    client_log_quiet(); /* every test starts a host */
    return check_run(coro_suite());
}
