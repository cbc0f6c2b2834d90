/*
 * check_routing.c - routes, parameters, replies and the plugin lifecycle, end to end: the
 * params test plugin (tests/plugins/params.c) served by a host in this process
 * (sdk/squall_test.h) over real sockets on 127.0.0.1.
 *
 * $SQ_BUILD (default "build") says where tests/plugins/params.so and plugins/hello.so are.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check_main.h"
#include "client.h"
#include "squall_test.h"

#define PATHBUF (PATH_MAX + 64)

static sq_test_host *host;
static char tmpdir[64];
static char marker[PATHBUF]; /* the file params' fini writes */

/* Starts a host with params (and extra config text after its section). */
static sq_test_host *start_params(const char *extra)
{
    char conf[4 * PATHBUF];

    snprintf(conf, sizeof(conf),
             "[plugin params]\npath = %s/tests/plugins/params.so\n"
             "greeting = \"hello there ; not a comment\"\nfini_marker = %s\n%s",
             client_build_dir(), marker, extra ? extra : "");
    sq_test_host *h = sq_test_start(conf);
    ck_assert_msg(h, "sq_test_start: %s", sq_test_error());
    return h;
}

/* Unchecked: once per tcase, in the runner, so the directory goes even when a test fails. */
static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_routing.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(marker, sizeof(marker), "%s/fini-ran", tmpdir);
}

static void remove_tmpdir(void)
{
    char path[PATHBUF];

    snprintf(path, sizeof(path), "%s/stderr", tmpdir);
    unlink(path);
    unlink(marker);
    rmdir(tmpdir);
}

/* Checked: each test, in its own process, gets a fresh host. */
static void setup(void)
{
    unlink(marker);
    host = start_params(NULL);
}

static void teardown(void)
{
    sq_test_stop(host);
    host = NULL;
}

/* GET path answers 200 with exactly body. */
static void expect_body(const char *path, const char *body)
{
    sq_test_res *res = client_req(host, "GET", path, NULL, NULL, 0);

    ck_assert_msg(res->status == 200, "GET %s: status %d, body %s", path, res->status, res->body);
    ck_assert_msg(strcmp(res->body, body) == 0, "GET %s: body \"%s\", want \"%s\"", path, res->body,
                  body);
    ck_assert_uint_eq(res->body_len, strlen(body));
    sq_test_res_free(res);
}

static void expect_404(const char *method, const char *path)
{
    sq_test_res *res = client_req(host, method, path, NULL, NULL, 0);

    ck_assert_msg(res->status == 404, "%s %s: status %d, body %s", method, path, res->status,
                  res->body);
    client_assert_json_error(res, 404, "{\"error\":\"Not Found\"}");
    sq_test_res_free(res);
}

/* ---- Path parameters ---- */

START_TEST(test_int_param)
{
    expect_body("/items/42", "item 42");
    expect_body("/items/0", "item 0");
    expect_body("/items/-7", "item -7");
    expect_body("/items/007", "item 7");
    expect_body("/items/9223372036854775807", "item 9223372036854775807");
    expect_body("/items/-9223372036854775808", "item -9223372036854775808");
}
END_TEST

/* The router takes any number of leading zeros as long as the value fits in int64, so
   sq_param_int must read such a value too ("the router has checked it fits"). */
START_TEST(test_int_param_leading_zeros)
{
    expect_body("/items/00000000000000000000042", "item 42");     /* 23 digits */
    expect_body("/items/000000000000000000000000042", "item 42"); /* 27 digits */
    expect_body("/items/-000000000000000000000000042", "item -42");
    expect_body("/things/0000000000000000000000000000000007", "int 7");
}
END_TEST

START_TEST(test_int_param_rejects)
{
    expect_404("GET", "/items/9223372036854775808");  /* INT64_MAX + 1 */
    expect_404("GET", "/items/-9223372036854775809"); /* INT64_MIN - 1 */
    expect_404("GET", "/items/99999999999999999999999");
    expect_404("GET", "/items/12a");
    expect_404("GET", "/items/-");
    expect_404("GET", "/items/+5");
    expect_404("GET", "/items/");
    expect_404("GET", "/items");
    expect_404("GET", "/items/1/2");
}
END_TEST

START_TEST(test_str_param_decoded)
{
    expect_body("/users/alice", "user alice");
    expect_body("/users/J%C3%BCrgen%20K", "user J\xC3\xBCrgen K");
    expect_body("/users/a%2Fb", "user a/b"); /* an encoded slash stays in one segment */
    expect_body("/users/a+b", "user a+b");   /* '+' is a space in queries only */
    expect_404("GET", "/users/");            /* {name} needs a non-empty segment */
    expect_404("GET", "/users/a/b");
}
END_TEST

START_TEST(test_path_param)
{
    expect_body("/files/a/b/c.txt", "a/b/c.txt");
    expect_body("/files/readme", "readme");
    expect_body("/files/a%20b/c", "a b/c");
    expect_body("/files/dir/", "dir/");
    expect_body("/files/", "");  /* {:path} may be empty... */
    expect_404("GET", "/files"); /* ...but the slash before it is needed */
}
END_TEST

START_TEST(test_static_wins)
{
    expect_body("/users/me", "static me");
    expect_body("/users/mel", "user mel");
    expect_body("/users/m", "user m");
    /* {:int} beats {name}; a number too big for int64 falls back to {name}. */
    expect_body("/things/42", "int 42");
    expect_body("/things/-1", "int -1");
    expect_body("/things/forty-two", "slug forty-two");
    expect_body("/things/9223372036854775808", "slug 9223372036854775808");
}
END_TEST

/* ---- Methods ---- */

START_TEST(test_methods_on_one_path)
{
    const char *methods[] = {"GET", "POST", "DELETE"};

    for (size_t i = 0; i < 3; i++) {
        sq_test_res *res = client_req(host, methods[i], "/thing", NULL, i == 1 ? "" : NULL, 0);
        ck_assert_int_eq(res->status, 200);
        ck_assert_str_eq(res->body, methods[i]);
        sq_test_res_free(res);
    }
    /* HEAD runs the GET handler, which sees "HEAD"; the reply keeps its length, not body. */
    sq_test_res *res = client_req(host, "HEAD", "/thing", NULL, NULL, 0);
    ck_assert_int_eq(res->status, 200);
    client_assert_header(res, "Content-Length", "4");
    ck_assert_uint_eq(res->body_len, 0);
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_405_allow_list)
{
    const char *methods[] = {"PUT", "PATCH", "OPTIONS"};

    for (size_t i = 0; i < 3; i++) {
        sq_test_res *res = client_req(host, methods[i], "/thing", NULL, NULL, 0);
        client_assert_json_error(res, 405, "{\"error\":\"Method Not Allowed\"}");
        client_assert_header(res, "Allow", "GET, HEAD, POST, DELETE");
        sq_test_res_free(res);
    }
    sq_test_res *res = client_req(host, "POST", "/items/5", NULL, "", 0);
    client_assert_json_error(res, 405, "{\"error\":\"Method Not Allowed\"}");
    client_assert_header(res, "Allow", "GET, HEAD");
    sq_test_res_free(res);

    res = client_req(host, "GET", "/json", NULL, NULL, 0);
    client_assert_json_error(res, 405, "{\"error\":\"Method Not Allowed\"}");
    client_assert_header(res, "Allow", "POST");
    sq_test_res_free(res);
}
END_TEST

/* ---- What a handler returns ---- */

START_TEST(test_status_return_rendered)
{
    sq_test_res *res = client_req(host, "GET", "/status/403", NULL, NULL, 0);
    client_assert_json_error(res, 403, "{\"error\":\"Forbidden\"}");
    sq_test_res_free(res);

    res = client_req(host, "GET", "/status/429", NULL, NULL, 0);
    client_assert_json_error(res, 429, "{\"error\":\"Too Many Requests\"}");
    sq_test_res_free(res);

    res = client_req(host, "GET", "/status/503", NULL, NULL, 0);
    client_assert_json_error(res, 503, "{\"error\":\"Service Unavailable\"}");
    sq_test_res_free(res);
}
END_TEST

/* 418 has no entry in response.c's reason table: the status is kept, and the body is still
   {"error": <a non-empty string>}. */
START_TEST(test_status_418)
{
    sq_test_res *res = client_req(host, "GET", "/status/418", NULL, NULL, 0);
    json_error_t e;

    ck_assert_int_eq(res->status, 418);
    client_assert_header(res, "Content-Type", "application/json");
    json_t *j = json_loads(res->body, 0, &e);
    ck_assert_msg(j, "body is not JSON: %s (%s)", res->body, e.text);
    ck_assert_uint_eq(json_object_size(j), 1);
    const char *msg = json_string_value(json_object_get(j, "error"));
    ck_assert_msg(msg && *msg, "no error string in %s", res->body);
    json_decref(j);
    sq_test_res_free(res);
}
END_TEST

/* Redirects this process's stderr (where the host logs) to a file while fn runs. */
static char *capture_stderr(void (*fn)(void))
{
    char path[PATHBUF];
    int saved = dup(STDERR_FILENO), fd;

    snprintf(path, sizeof(path), "%s/stderr", tmpdir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(saved, 0);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);

    char *text = calloc(1, 8192);
    ck_assert_int_ge(pread(fd, text, 8191, 0), 0);
    close(fd);
    unlink(path);
    return text;
}

static void get_noreply(void)
{
    sq_test_res *res = client_req(host, "GET", "/noreply", NULL, NULL, 0);
    client_assert_json_error(res, 500, "{\"error\":\"Internal Server Error\"}");
    sq_test_res_free(res);
}

START_TEST(test_zero_without_reply_is_500)
{
    char *log = capture_stderr(get_noreply);

    /* The log line names the plugin and the route. */
    ck_assert_msg(strstr(log, "[error] params: GET /noreply returned 0 without a reply\n"),
                  "log:\n%s", log);
    free(log);
}
END_TEST

/* A non-error status returned without a reply is the handler's bug too: 500. */
static void get_bad_returns(void)
{
    const char *paths[] = {"/status/200", "/status/302", "/status/399", "/status/600",
                           "/status/-1"};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        sq_test_res *res = client_req(host, "GET", paths[i], NULL, NULL, 0);
        ck_assert_msg(res->status == 500, "GET %s: %d", paths[i], res->status);
        client_assert_json_error(res, 500, "{\"error\":\"Internal Server Error\"}");
        sq_test_res_free(res);
    }
}

START_TEST(test_bad_return_is_500)
{
    char *log = capture_stderr(get_bad_returns);

    ck_assert_msg(strstr(log, "[error] params: GET /status/{code:int} returned 200 without a "
                              "reply\n"),
                  "log:\n%s", log);
    ck_assert_msg(strstr(log, "[error] params: GET /status/{code:int} returned -1 without a "
                              "reply\n"),
                  "log:\n%s", log);
    free(log);
}
END_TEST

/* ---- Replies ---- */

START_TEST(test_reply_header)
{
    sq_test_res *res = client_req(host, "GET", "/header", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    client_assert_header(res, "X-Params", "yes");
    /* sq_reply_header refused a bad name and a value that would split the header block. */
    ck_assert_str_eq(res->body, "0 -22 -22");
    ck_assert_ptr_null(sq_test_header(res, "Set-Cookie"));
    ck_assert_ptr_null(sq_test_header(res, "X-Injected"));
    ck_assert_ptr_null(sq_test_header(res, "Bad Name"));
    sq_test_res_free(res);
}
END_TEST

static void get_twice(void)
{
    sq_test_res *res = client_req(host, "GET", "/twice", NULL, NULL, 0);
    ck_assert_int_eq(res->status, 200);
    ck_assert_uint_eq(res->body_len, 5); /* one reply on the wire, not two */
    ck_assert_str_eq(res->body, "first");
    client_assert_header(res, "Content-Length", "5");
    sq_test_res_free(res);
}

START_TEST(test_second_reply_refused)
{
    char *log = capture_stderr(get_twice);

    ck_assert_msg(!strstr(log, "second reply was not refused"), "log:\n%s", log);
    free(log);
}
END_TEST

START_TEST(test_arena_alloc)
{
    /* 10000 bytes: past one arena block */
    sq_test_res *res = client_req(host, "GET", "/fill/10000", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    ck_assert_uint_eq(res->body_len, 10000);
    for (size_t i = 0; i < 10000; i++)
        ck_assert_msg(res->body[i] == 'x', "byte %zu is 0x%02x", i, (unsigned char)res->body[i]);
    sq_test_res_free(res);
    expect_body("/fill/0", "");
    expect_body("/fill/3", "xxx");
}
END_TEST

/* ---- Query, peer, body ---- */

START_TEST(test_query_decoding)
{
    expect_body("/query?q=a+b%21", "{\"q\":\"a b!\",\"raw\":\"q=a+b%21\"}");
    expect_body("/query?a=1&q=2&q=3", "{\"q\":\"2\",\"raw\":\"a=1&q=2&q=3\"}");
    expect_body("/query?%71=by+encoded+key",
                "{\"q\":\"by encoded key\",\"raw\":\"%71=by+encoded+key\"}");
    expect_body("/query?q=%E2%82%AC", "{\"q\":\"\xE2\x82\xAC\",\"raw\":\"q=%E2%82%AC\"}");
    expect_body("/query?q=100%", "{\"q\":\"100%\",\"raw\":\"q=100%\"}"); /* bad escape kept */
    expect_body("/query?q=%2B", "{\"q\":\"+\",\"raw\":\"q=%2B\"}");
}
END_TEST

START_TEST(test_query_absent_and_empty)
{
    expect_body("/query", "{\"q\":null,\"raw\":\"\"}");
    expect_body("/query?", "{\"q\":null,\"raw\":\"\"}");
    expect_body("/query?x=1", "{\"q\":null,\"raw\":\"x=1\"}");
    expect_body("/query?qq=1&xq=2", "{\"q\":null,\"raw\":\"qq=1&xq=2\"}");
    expect_body("/query?q", "{\"q\":\"\",\"raw\":\"q\"}");
    expect_body("/query?q=", "{\"q\":\"\",\"raw\":\"q=\"}");
}
END_TEST

START_TEST(test_remote_addr)
{
    expect_body("/remote", "127.0.0.1");
}
END_TEST

START_TEST(test_body_json_valid)
{
    const char *body = "{ \"a\": [1, 2, {\"b\": null}], \"s\": \"\\u00e9\" }";
    sq_test_res *res =
        client_req(host, "POST", "/json", "Content-Type: application/json\r\n", body, strlen(body));

    ck_assert_int_eq(res->status, 200);
    client_assert_header(res, "Content-Type", "application/json");
    ck_assert_str_eq(res->body, "{\"got\":{\"a\":[1,2,{\"b\":null}],\"s\":\"\xC3\xA9\"}}");
    sq_test_res_free(res);
}
END_TEST

/* A reply past the 4 KiB that sq_reply_json serializes on the stack. */
START_TEST(test_body_json_large)
{
    size_t n = 20000;
    char *body = malloc(n + 16), *want = malloc(n + 32);

    ck_assert_ptr_nonnull(body);
    ck_assert_ptr_nonnull(want);
    strcpy(body, "[\"");
    memset(body + 2, 'y', n);
    strcpy(body + 2 + n, "\"]");
    snprintf(want, n + 32, "{\"got\":%s}", body);
    sq_test_res *res = client_req(host, "POST", "/json", NULL, body, strlen(body));
    ck_assert_int_eq(res->status, 200);
    ck_assert_uint_eq(res->body_len, strlen(want));
    ck_assert_msg(strcmp(res->body, want) == 0, "large JSON reply differs");
    sq_test_res_free(res);
    free(body);
    free(want);
}
END_TEST

START_TEST(test_body_json_invalid)
{
    const char *bodies[] = {"{\"a\":", "not json", "{\"a\":1} trailing"};
    json_error_t e;

    for (size_t i = 0; i < 3; i++) {
        sq_test_res *res = client_req(host, "POST", "/json", NULL, bodies[i], strlen(bodies[i]));
        ck_assert_msg(res->status == 400, "body %s: %d", bodies[i], res->status);
        json_t *j = json_loads(res->body, 0, &e);
        ck_assert_msg(j, "reply is not JSON: %s", res->body);
        const char *msg = json_string_value(json_object_get(j, "error"));
        ck_assert_msg(msg && strncmp(msg, "invalid JSON at line 1, column ", 31) == 0,
                      "body %s: error %s", bodies[i], res->body);
        json_decref(j);
        sq_test_res_free(res);
    }
    sq_test_res *res = client_req(host, "POST", "/json", NULL, "", 0);
    client_assert_json_error(res, 400, "{\"error\":\"the request has no body\"}");
    sq_test_res_free(res);
}
END_TEST

/* ---- Plugin lifecycle ---- */

START_TEST(test_config_key)
{
    /* The quoted value keeps its ';' and spaces; init's copy and a live read agree. */
    expect_body("/config", "{\"name\":\"params\",\"greeting\":\"hello there ; not a comment\","
                           "\"now\":\"hello there ; not a comment\"}");
}
END_TEST

START_TEST(test_config_key_absent)
{
    char conf[2 * PATHBUF];

    sq_test_stop(host);
    snprintf(conf, sizeof(conf), "[plugin params]\npath = %s/tests/plugins/params.so\n",
             client_build_dir());
    host = sq_test_start(conf);
    ck_assert_msg(host, "%s", sq_test_error());
    expect_body("/config", "{\"name\":\"params\",\"greeting\":null,\"now\":null}");
}
END_TEST

START_TEST(test_fini_runs_on_stop)
{
    char text[64] = "";

    ck_assert_msg(access(marker, F_OK) != 0, "fini ran before the host stopped");
    expect_body("/items/1", "item 1");
    sq_test_stop(host);
    host = NULL;
    FILE *f = fopen(marker, "r");
    ck_assert_msg(f, "fini did not write %s: %s", marker, strerror(errno));
    ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
    fclose(f);
    ck_assert_str_eq(text, "fini params\n");
}
END_TEST

/* Two plugins side by side, each on its own mount, each serving its own routes. */
START_TEST(test_with_hello)
{
    char extra[PATHBUF + 64];

    sq_test_stop(host);
    unlink(marker);
    snprintf(extra, sizeof(extra), "[plugin hello]\npath = %s/plugins/hello.so\nmount = /h\n",
             client_build_dir());
    host = start_params(extra);
    expect_body("/h/plaintext", "Hello, World!");
    expect_body("/items/9", "item 9");
    expect_404("GET", "/plaintext");
    expect_404("GET", "/h/items/9");
}
END_TEST

/* A tcase of the routing suite: a private directory, a fresh host per test, 20 s a test. */
static TCase *routing_tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *routing_suite(void)
{
    Suite *s = suite_create("routing");
    TCase *tc;

    tc = routing_tcase(s, "params");
    tcase_add_test(tc, test_int_param);
    tcase_add_test(tc, test_int_param_leading_zeros);
    tcase_add_test(tc, test_int_param_rejects);
    tcase_add_test(tc, test_str_param_decoded);
    tcase_add_test(tc, test_path_param);
    tcase_add_test(tc, test_static_wins);
    tcase_add_test(tc, test_methods_on_one_path);
    tcase_add_test(tc, test_405_allow_list);

    tc = routing_tcase(s, "handlers");
    tcase_add_test(tc, test_status_return_rendered);
    tcase_add_test(tc, test_status_418);
    tcase_add_test(tc, test_zero_without_reply_is_500);
    tcase_add_test(tc, test_bad_return_is_500);
    tcase_add_test(tc, test_reply_header);
    tcase_add_test(tc, test_second_reply_refused);
    tcase_add_test(tc, test_arena_alloc);

    tc = routing_tcase(s, "input");
    tcase_add_test(tc, test_query_decoding);
    tcase_add_test(tc, test_query_absent_and_empty);
    tcase_add_test(tc, test_remote_addr);
    tcase_add_test(tc, test_body_json_valid);
    tcase_add_test(tc, test_body_json_large);
    tcase_add_test(tc, test_body_json_invalid);

    tc = routing_tcase(s, "lifecycle");
    tcase_add_test(tc, test_config_key);
    tcase_add_test(tc, test_config_key_absent);
    tcase_add_test(tc, test_fini_runs_on_stop);
    tcase_add_test(tc, test_with_hello);
    return s;
}

int main(void)
{
    return check_run(routing_suite());
}
