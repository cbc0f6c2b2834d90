/*
 * check_timeout.c - the timeout middleware: a route's deadline, its reply, and the
 * handler's reply after it dropped. Uses examples/timeout (sleeps ?duration=S seconds).
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../check_main.h"
#include "client.h"
#include "squall_test.h"

static sq_test_host *host;

/* A host serving examples/timeout with the extra conf lines given. */
static void start(const char *plugin_keys, const char *route_section)
{
    char conf[1024];

    snprintf(conf, sizeof(conf), "[plugin timeout]\npath = %s/examples/timeout.so\n%s\n%s",
             client_build_dir(), plugin_keys, route_section);
    host = sq_test_start(conf);
    ck_assert_msg(host, "sq_test_start: %s", sq_test_error());
}

static void teardown(void)
{
    sq_test_stop(host);
    host = NULL;
}

/* Sends GET path on a new connection; the first reply and when it came (ms). */
static int64_t first_reply(const char *path, struct client_res *res, struct client_conn **out)
{
    struct client_conn *c = client_open(sq_test_port(host));
    char req[256];
    int64_t t0 = client_now_ms();

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    ck_assert_int_eq(client_roundtrip(c, req, res, 5000), 0);
    *out = c;
    return client_now_ms() - t0;
}

START_TEST(test_completes_within_timeout)
{
    struct client_res res;
    struct client_conn *c;

    start("timeout = 400ms", "");
    first_reply("/timeout?duration=0.1", &res, &c);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, "{\"message\":\"Completed after 0.1 seconds\"}");
    client_res_free(&res);
    client_close(c);
}
END_TEST

/* The client gets 408 at the deadline, not when the handler ends; the handler's late
   reply never reaches the wire, and the connection goes on serving. */
START_TEST(test_timeout_replies_at_deadline_once)
{
    struct client_res res;
    struct client_conn *c;

    start("timeout = 300ms", "");
    int64_t ms = first_reply("/timeout?duration=1", &res, &c);
    ck_assert_int_eq(res.status, 408);
    ck_assert_str_eq(res.body, "{\"error\":\"Request timeout\"}");
    ck_assert_msg(ms >= 290 && ms < 700, "408 after %lld ms", (long long)ms);
    client_res_free(&res);
    /* Nothing more comes for that request, and the next one is answered. */
    ck_assert_int_eq(client_roundtrip(c, "GET /timeout?duration=0 HTTP/1.1\r\nHost: x\r\n\r\n",
                                      &res, 3000),
                     0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, "{\"message\":\"Completed after 0 seconds\"}");
    ck_assert_uint_eq(client_unparsed(c), 0);
    client_res_free(&res);
    client_close(c);
}
END_TEST

/* [route] beats [plugin], which beats the code's 5 s; timeout_status changes the status. */
START_TEST(test_route_section_overrides)
{
    struct client_res res;
    struct client_conn *c;

    start("timeout = 2s", "[route GET /timeout]\ntimeout = 200ms\ntimeout_status = 504\n");
    int64_t ms = first_reply("/timeout?duration=1", &res, &c);
    ck_assert_int_eq(res.status, 504);
    ck_assert_str_eq(res.body, "{\"error\":\"Request timeout\"}");
    ck_assert_msg(ms >= 190 && ms < 600, "504 after %lld ms", (long long)ms);
    client_res_free(&res);
    client_close(c);
}
END_TEST

/* Without configuration the route's own .timeout_ms (5 s) applies: 1 s is fine. */
START_TEST(test_code_timeout_applies)
{
    struct client_res res;
    struct client_conn *c;

    start("", "");
    int64_t ms = first_reply("/timeout?duration=1", &res, &c);
    ck_assert_int_eq(res.status, 200);
    ck_assert_msg(ms >= 990, "reply after %lld ms", (long long)ms);
    client_res_free(&res);
    client_close(c);
}
END_TEST

START_TEST(test_bad_duration)
{
    struct client_res res;
    struct client_conn *c;

    start("", "");
    first_reply("/timeout?duration=abc", &res, &c);
    ck_assert_int_eq(res.status, 400);
    client_res_free(&res);
    client_close(c);
}
END_TEST

static Suite *timeout_suite(void)
{
    Suite *s = suite_create("timeout");
    TCase *tc = tcase_create("timeout");

    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_completes_within_timeout);
    tcase_add_test(tc, test_timeout_replies_at_deadline_once);
    tcase_add_test(tc, test_route_section_overrides);
    tcase_add_test(tc, test_code_timeout_applies);
    tcase_add_test(tc, test_bad_duration);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    client_log_quiet();
    return check_run(timeout_suite());
}
