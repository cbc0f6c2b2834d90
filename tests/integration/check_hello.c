/*
 * check_hello.c - the hello plugin as its author tests it: through sdk/squall_test.h, a
 * host in this process serving real requests on 127.0.0.1.
 *
 * $SQ_BUILD (default "build") says where plugins/hello.so was built.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check_main.h"
#include "client.h"
#include "squall_test.h"

static char conf[1024];
static sq_test_host *host;

/* Starts a host with hello mounted at mount (NULL: the default, "/"). */
static void start_hello(const char *mount)
{
    int n = snprintf(conf, sizeof(conf), "[plugin hello]\npath = %s/plugins/hello.so\n",
                     client_build_dir());
    if (mount)
        snprintf(conf + n, sizeof(conf) - (size_t)n, "mount = %s\n", mount);
    host = sq_test_start(conf);
    ck_assert_msg(host, "sq_test_start: %s", sq_test_error());
    ck_assert_uint_ne(sq_test_port(host), 0);
}

static void setup(void)
{
    start_hello(NULL);
}

static void teardown(void)
{
    sq_test_stop(host);
    host = NULL;
}

/* A JSON error reply (client_assert_json_error) of exactly body's length, too. */
static void assert_json_error(const sq_test_res *res, int status, const char *body)
{
    client_assert_json_error(res, status, body);
    ck_assert_uint_eq(res->body_len, strlen(body));
}

START_TEST(test_plaintext)
{
    sq_test_res *res = client_req(host, "GET", "/plaintext", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, "Hello, World!");
    ck_assert_uint_eq(res->body_len, 13);
    client_assert_header(res, "Content-Type", "text/plain");
    client_assert_header(res, "Content-Length", "13");
    client_assert_header(res, "Server", "squall");
    ck_assert_msg(sq_test_header(res, "Date"), "no Date header:\n%s", res->headers);
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_json)
{
    sq_test_res *res = client_req(host, "GET", "/json", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, "{\"message\":\"Hello, World!\"}");
    client_assert_header(res, "Content-Type", "application/json");
    client_assert_header(res, "Content-Length", "27");
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_echo)
{
    static const char body[] = "ping\0pong\r\n"; /* binary: a NUL and a CRLF */
    sq_test_res *res =
        client_req(host, "POST", "/echo", "Content-Type: application/x-squall-test\r\n", body,
                   sizeof(body) - 1);

    ck_assert_int_eq(res->status, 200);
    ck_assert_uint_eq(res->body_len, sizeof(body) - 1);
    ck_assert_mem_eq(res->body, body, sizeof(body) - 1);
    client_assert_header(res, "Content-Type", "application/x-squall-test");
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_echo_json_content_type)
{
    const char *body = "{\"a\":1}";
    sq_test_res *res =
        client_req(host, "POST", "/echo", "Content-Type: application/json; charset=utf-8\r\n", body,
                   strlen(body));

    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, body);
    client_assert_header(res, "Content-Type", "application/json; charset=utf-8");
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_echo_without_content_type)
{
    sq_test_res *res = client_req(host, "POST", "/echo", NULL, "abc", 3);

    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, "abc");
    client_assert_header(res, "Content-Type", "application/octet-stream");
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_echo_empty_body)
{
    sq_test_res *res = client_req(host, "POST", "/echo", "Content-Type: text/plain\r\n", "", 0);

    ck_assert_int_eq(res->status, 200);
    ck_assert_uint_eq(res->body_len, 0);
    client_assert_header(res, "Content-Length", "0");
    sq_test_res_free(res);
}
END_TEST

/* HEAD is served by the GET route: the same headers, no body. */
START_TEST(test_head_plaintext)
{
    sq_test_res *res = client_req(host, "HEAD", "/plaintext", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    client_assert_header(res, "Content-Length", "13");
    client_assert_header(res, "Content-Type", "text/plain");
    ck_assert_uint_eq(res->body_len, 0);
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_query_string_ignored_by_routing)
{
    sq_test_res *res = client_req(host, "GET", "/plaintext?x=1&y", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, "Hello, World!");
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_not_found)
{
    const char *paths[] = {"/", "/nope", "/plaintext/", "/Plaintext", "/plaintext/x"};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        sq_test_res *res = client_req(host, "GET", paths[i], NULL, NULL, 0);
        ck_assert_msg(res->status == 404, "GET %s: %d", paths[i], res->status);
        assert_json_error(res, 404, "{\"error\":\"Not Found\"}");
        sq_test_res_free(res);
    }
}
END_TEST

START_TEST(test_method_not_allowed)
{
    sq_test_res *res = client_req(host, "POST", "/plaintext", NULL, "x", 1);

    assert_json_error(res, 405, "{\"error\":\"Method Not Allowed\"}");
    client_assert_header(res, "Allow", "GET, HEAD");
    sq_test_res_free(res);

    res = client_req(host, "DELETE", "/json", NULL, NULL, 0);
    assert_json_error(res, 405, "{\"error\":\"Method Not Allowed\"}");
    client_assert_header(res, "Allow", "GET, HEAD");
    sq_test_res_free(res);

    res = client_req(host, "GET", "/echo", NULL, NULL, 0);
    assert_json_error(res, 405, "{\"error\":\"Method Not Allowed\"}");
    client_assert_header(res, "Allow", "POST");
    sq_test_res_free(res);

    /* HEAD of a POST-only path: 405 too, and no body. */
    res = client_req(host, "HEAD", "/echo", NULL, NULL, 0);
    ck_assert_int_eq(res->status, 405);
    client_assert_header(res, "Allow", "POST");
    ck_assert_uint_eq(res->body_len, 0);
    sq_test_res_free(res);
}
END_TEST

/* mount moves every route under the prefix; the old paths are gone. */
START_TEST(test_mount_api)
{
    const char *mounts[] = {"/api", "/api/"}; /* a trailing slash is dropped */

    for (size_t i = 0; i < 2; i++) {
        sq_test_stop(host);
        start_hello(mounts[i]);

        sq_test_res *res = client_req(host, "GET", "/api/plaintext", NULL, NULL, 0);
        ck_assert_msg(res->status == 200, "mount %s: GET /api/plaintext: %d", mounts[i],
                      res->status);
        ck_assert_str_eq(res->body, "Hello, World!");
        sq_test_res_free(res);

        res = client_req(host, "GET", "/api/json", NULL, NULL, 0);
        ck_assert_int_eq(res->status, 200);
        ck_assert_str_eq(res->body, "{\"message\":\"Hello, World!\"}");
        sq_test_res_free(res);

        res = client_req(host, "POST", "/api/echo", "Content-Type: text/x-a\r\n", "hi", 2);
        ck_assert_int_eq(res->status, 200);
        ck_assert_str_eq(res->body, "hi");
        sq_test_res_free(res);

        res = client_req(host, "GET", "/plaintext", NULL, NULL, 0);
        assert_json_error(res, 404, "{\"error\":\"Not Found\"}");
        sq_test_res_free(res);

        res = client_req(host, "GET", "/api", NULL, NULL, 0);
        assert_json_error(res, 404, "{\"error\":\"Not Found\"}");
        sq_test_res_free(res);
    }
}
END_TEST

/* A test host that cannot start says why, as `squall --check` would. */
START_TEST(test_start_error)
{
    char bad[1024], want[1200];

    snprintf(bad, sizeof(bad), "[plugin hello]\npath = %s/plugins/no-such-plugin.so\n",
             client_build_dir());
    ck_assert_ptr_null(sq_test_start(bad));
    snprintf(want, sizeof(want),
             "test.conf:1: plugin hello (%s/plugins/no-such-plugin.so): No such file or directory",
             client_build_dir());
    ck_assert_str_eq(sq_test_error(), want);

    ck_assert_ptr_null(sq_test_start("[plugin hello]\nmount = /x\n"));
    ck_assert_str_eq(sq_test_error(), "test.conf:1: plugin 'hello' has no path");
}
END_TEST

/* Several requests in a row on one host: no state leaks from one to the next. */
START_TEST(test_many_requests)
{
    for (int i = 0; i < 50; i++) {
        const char *path = i % 2 ? "/json" : "/plaintext";
        sq_test_res *res = client_req(host, "GET", path, NULL, NULL, 0);
        ck_assert_int_eq(res->status, 200);
        ck_assert_str_eq(res->body, i % 2 ? "{\"message\":\"Hello, World!\"}" : "Hello, World!");
        sq_test_res_free(res);
    }
}
END_TEST

/* access_log = FILE: one combined-format line per request, written by the time the host
   stops. */
START_TEST(test_access_log)
{
    char dir[] = "/tmp/check_hello.XXXXXX", path[64], text[1024], line[4096];

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(text, sizeof(text),
             "[server]\naccess_log = %s\n[plugin hello]\npath = %s/plugins/hello.so\n", path,
             client_build_dir());
    sq_test_host *h = sq_test_start(text);
    ck_assert_msg(h, "sq_test_start: %s", sq_test_error());
    sq_test_res_free(client_req(h, "GET", "/plaintext?x=1", "User-Agent: check\r\n", NULL, 0));
    sq_test_res_free(client_req(h, "GET", "/nope", NULL, NULL, 0));
    sq_test_stop(h);

    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    ck_assert_msg(strstr(line, "127.0.0.1 - - [") == line, "%s", line);
    ck_assert_msg(strstr(line, "] \"GET /plaintext?x=1 HTTP/1.1\" 200 13 \"-\" \"check\"\n"), "%s",
                  line);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    ck_assert_msg(strstr(line, "\"GET /nope HTTP/1.1\" 404 21 "), "%s", line);
    ck_assert_ptr_null(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* GET /sleep?ms=N awaits N ms without blocking the loop, then answers {"slept":N}. */
START_TEST(test_sleep)
{
    int64_t t0 = client_now_ms();
    sq_test_res *res = client_req(host, "GET", "/sleep?ms=100", NULL, NULL, 0);
    int64_t elapsed = client_now_ms() - t0;

    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, "{\"slept\":100}");
    client_assert_header(res, "Content-Type", "application/json");
    ck_assert_msg(elapsed >= 100 && elapsed < 400, "slept 100 ms in %lld ms", (long long)elapsed);
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_sleep_zero)
{
    int64_t t0 = client_now_ms();
    sq_test_res *res = client_req(host, "GET", "/sleep?ms=0", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, "{\"slept\":0}");
    ck_assert_int_lt(client_now_ms() - t0, 50);
    sq_test_res_free(res);
}
END_TEST

/* ms must be a plain integer from 0 to 60000. */
START_TEST(test_sleep_bad_ms)
{
    const char *paths[] = {"/sleep?ms=-1",  "/sleep?ms=60001",
                           "/sleep?ms=abc", "/sleep",
                           "/sleep?ms=",    "/sleep?ms",
                           "/sleep?ms=1.5", "/sleep?ms=+5",
                           "/sleep?ms=5x",  "/sleep?ms=99999999999999999999999"};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        sq_test_res *res = client_req(host, "GET", paths[i], NULL, NULL, 0);
        ck_assert_msg(res->status == 400, "GET %s: %d", paths[i], res->status);
        assert_json_error(res, 400, "{\"error\":\"ms must be an integer from 0 to 60000\"}");
        sq_test_res_free(res);
    }
}
END_TEST

/* 50 sleeps of 200 ms at once end together, after about 200 ms: none waits for another. */
START_TEST(test_sleep_concurrent)
{
    enum { N = 50 };
    struct client_conn *cs[N];
    int status[N];

    for (size_t i = 0; i < N; i++) {
        cs[i] = client_open(sq_test_port(host));
        ck_assert_msg(cs[i], "connection %zu failed", i);
    }
    int64_t t0 = client_now_ms();
    size_t got = client_round(cs, N, "GET /sleep?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n", status, 3000);
    int64_t elapsed = client_now_ms() - t0;
    ck_assert_uint_eq(got, N);
    for (size_t i = 0; i < N; i++) {
        ck_assert_int_eq(status[i], 200);
        client_close(cs[i]);
    }
    ck_assert_msg(elapsed >= 200 && elapsed < 600, "50 sleeps of 200 ms took %lld ms",
                  (long long)elapsed);
}
END_TEST

static Suite *hello_suite(void)
{
    Suite *s = suite_create("hello");
    TCase *tc = tcase_create("routes");
    TCase *st = tcase_create("start");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_plaintext);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_echo);
    tcase_add_test(tc, test_echo_json_content_type);
    tcase_add_test(tc, test_echo_without_content_type);
    tcase_add_test(tc, test_echo_empty_body);
    tcase_add_test(tc, test_head_plaintext);
    tcase_add_test(tc, test_query_string_ignored_by_routing);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_method_not_allowed);
    tcase_add_test(tc, test_mount_api);
    tcase_add_test(tc, test_many_requests);
    tcase_add_test(tc, test_sleep);
    tcase_add_test(tc, test_sleep_zero);
    tcase_add_test(tc, test_sleep_bad_ms);
    tcase_add_test(tc, test_sleep_concurrent);
    suite_add_tcase(s, tc);

    tcase_set_timeout(st, 10);
    tcase_add_test(st, test_start_error);
    tcase_add_test(st, test_access_log);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    return check_run(hello_suite());
}
