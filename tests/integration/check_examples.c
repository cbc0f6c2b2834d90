/*
 * check_examples.c - the example plugins (examples/async_handler, error_handling,
 * queue_worker, cache, ratelimit, users) served by a host in this process (sdk/squall_test.h)
 * over real sockets on 127.0.0.1: what they answer, and how long they take to answer it. The
 * timings are the point: they show the operations run concurrently and that an await blocks
 * no one, and that a cached answer skips the wait. users runs against a real PostgreSQL: an
 * embedded cluster in a temporary directory, started once for its tests.
 *
 * $SQ_BUILD (default "build") says where examples/NAME.so were built.
 */
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "../check_main.h"
#include "client.h"
#include "squall_test.h"

#define NCONC 20   /* requests sent at once on separate connections */
#define POLL_MS 10 /* between two reads of /jobs/stats */

#define GET_ASYNC "GET /async HTTP/1.1\r\nHost: t\r\n\r\n"
#define FETCHED "{\"result\":\"fetched data\"}"
#define ERRORS_OK                                                                                  \
    "{\"success_count\":3,\"results\":[\"Operation 1 completed\",\"Operation 2 completed\","       \
    "\"Operation 3 completed\"]}"
#define ERRORS_FAILED                                                                              \
    "{\"success_count\":2,\"results\":[\"Operation 1 completed\",\"Operation 3 completed\"],"      \
    "\"errors\":[\"Operation 2 failed: simulated failure (upstream timed out)\"]}"
#define INTERNAL "{\"error\":\"Internal server error\"}"
#define QUEUED "{\"status\":\"job queued\"}"
#define STATS(q, r, d, f) "{\"queued\":" #q ",\"running\":" #r ",\"done\":" #d ",\"failed\":" #f "}"

static sq_test_host *host;

/* The config text that serves example name from the build directory, with extra keys in
   its section. */
static void example_conf(const char *name, const char *extra, char *out, size_t len)
{
    char rel[64], so[PATH_MAX];

    snprintf(rel, sizeof(rel), "examples/%s.so", name);
    ck_assert_msg(client_build_path(rel, so, sizeof(so)), "path too long");
    int n = snprintf(out, len, "[plugin %s]\npath = %s\n%s", name, so, extra ? extra : "");
    ck_assert(n > 0 && (size_t)n < len);
}

/* Starts a host serving example name (extra: more keys for its section, or NULL). */
static sq_test_host *start_example(const char *name, const char *extra)
{
    char conf[PATH_MAX + 256];

    example_conf(name, extra, conf, sizeof(conf));
    sq_test_host *h = sq_test_start(conf);
    ck_assert_msg(h, "sq_test_start: %s", sq_test_error());
    return h;
}

static void setup_async(void)
{
    host = start_example("async_handler", NULL);
}

static void setup_errors(void)
{
    host = start_example("error_handling", NULL);
}

static void setup_queue(void)
{
    host = start_example("queue_worker", "queue_size = 2\n");
}

static void teardown(void)
{
    sq_test_stop(host);
    host = NULL;
}

/* Checks that elapsed (ms) is in [lo, hi). */
static void assert_ms(const char *what, int64_t elapsed, int64_t lo, int64_t hi)
{
    ck_assert_msg(elapsed >= lo && elapsed < hi, "%s took %lld ms, expected [%lld, %lld)", what,
                  (long long)elapsed, (long long)lo, (long long)hi);
}

/* Sends req on n new connections at once, then reads one reply from each into res[i]
   (free each with client_res_free). Returns the ms from the first send to the last reply. */
static int64_t concurrent(const char *req, size_t n, struct client_res *res)
{
    struct client_conn *cs[64];

    ck_assert_uint_le(n, 64);
    for (size_t i = 0; i < n; i++)
        cs[i] = client_open(sq_test_port(host));
    int64_t t0 = client_now_ms();
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(cs[i], "connection %zu failed", i);
        ck_assert_int_eq(client_send_str(cs[i], req), 0);
    }
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(client_read_reply(cs[i], &res[i], false, T_MS) == 0, "no reply on %zu", i);
    int64_t elapsed = client_now_ms() - t0;
    for (size_t i = 0; i < n; i++)
        client_close(cs[i]);
    return elapsed;
}

/* A POST request with a body, as raw bytes for client_send_str. */
static const char *post_req(const char *path, const char *body, char *out, size_t len)
{
    int n = snprintf(out, len,
                     "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     path, strlen(body), body);
    ck_assert(n > 0 && (size_t)n < len);
    return out;
}

/* ---- async_handler ---- */

START_TEST(test_async_get)
{
    int64_t t0 = client_now_ms();
    sq_test_res *res = client_req(host, "GET", "/async", NULL, NULL, 0);

    assert_ms("GET /async", client_now_ms() - t0, 95, 300);
    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, FETCHED);
    client_assert_header(res, "Content-Type", "application/json");
    sq_test_res_free(res);
}
END_TEST

/* 200 + 50 + 100 ms of operations in about 200 ms: they ran side by side. */
START_TEST(test_async_post)
{
    const char *body = "{ \"a\" : 1 }";
    int64_t t0 = client_now_ms();
    sq_test_res *res = client_req(host, "POST", "/async", NULL, body, strlen(body));

    assert_ms("POST /async", client_now_ms() - t0, 195, 330);
    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, "{\"status\":\"success\",\"results\":[\"processed: {\\\"a\\\":1}\","
                                "\"logged\",\"cache updated\"]}");
    sq_test_res_free(res);
}
END_TEST

/* The body comes back compact, keys in their order, UTF-8 as it was sent. */
START_TEST(test_async_post_compacts_body)
{
    const char *body = "{\n  \"name\": \"zo\xc3\xab\",\n  \"tags\": [ \"x\", 2, null ],\n"
                       "  \"a\": { \"b\": true }\n}\n";
    sq_test_res *res = client_req(host, "POST", "/async", NULL, body, strlen(body));

    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(
        res->body,
        "{\"status\":\"success\",\"results\":[\"processed: {\\\"name\\\":\\\"zo\xc3\xab\\\","
        "\\\"tags\\\":[\\\"x\\\",2,null],\\\"a\\\":{\\\"b\\\":true}}\",\"logged\","
        "\"cache updated\"]}");
    sq_test_res_free(res);
}
END_TEST

/* A body that is not JSON is refused at once, before any operation starts. */
START_TEST(test_async_post_invalid_json)
{
    const char *bad[] = {"{\"a\":", "not json", "{\"a\":1} trailing", "\xff"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t0 = client_now_ms();
        sq_test_res *res = client_req(host, "POST", "/async", NULL, bad[i], strlen(bad[i]));
        assert_ms("a refused POST /async", client_now_ms() - t0, 0, 50);
        ck_assert_msg(res->status == 400, "%s: %d %s", bad[i], res->status, res->body);
        client_assert_header(res, "Content-Type", "application/json");
        ck_assert_msg(strstr(res->body, "{\"error\":\"body must be JSON: invalid JSON at line 1"),
                      "%s", res->body);
        sq_test_res_free(res);
    }
    sq_test_res *res = client_req(host, "POST", "/async", NULL, "", 0);
    client_assert_json_error(res, 400,
                             "{\"error\":\"body must be JSON: the request has no body\"}");
    sq_test_res_free(res);
}
END_TEST

/* Twenty handlers awaiting at once take as long as one: the loop is never blocked. */
START_TEST(test_async_get_concurrent)
{
    struct client_res res[NCONC];
    int64_t elapsed = concurrent(GET_ASYNC, NCONC, res);

    assert_ms("20 GET /async at once", elapsed, 95, 300);
    for (size_t i = 0; i < NCONC; i++) {
        ck_assert_int_eq(res[i].status, 200);
        ck_assert_str_eq(res[i].body, FETCHED);
        client_res_free(&res[i]);
    }
}
END_TEST

/* Twenty POSTs at once, each with its own three operations (sixty in all): about 200 ms. */
START_TEST(test_async_post_concurrent)
{
    struct client_res res[NCONC];
    char req[512];
    int64_t elapsed = concurrent(post_req("/async", "[1,2,3]", req, sizeof(req)), NCONC, res);

    assert_ms("20 POST /async at once", elapsed, 195, 345); /* in sequence: 350 */
    for (size_t i = 0; i < NCONC; i++) {
        ck_assert_int_eq(res[i].status, 200);
        ck_assert_str_eq(res[i].body, "{\"status\":\"success\",\"results\":[\"processed: [1,2,3]\","
                                      "\"logged\",\"cache updated\"]}");
        client_res_free(&res[i]);
    }
}
END_TEST

/* A client that leaves mid-await cancels its handler and the handler's operations; the
   host goes on serving (and stops cleanly after: teardown). */
START_TEST(test_async_client_gone)
{
    char req[512];

    for (int i = 0; i < 2; i++) {
        struct client_conn *c = client_open(sq_test_port(host));
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(client_send_str(c, i ? GET_ASYNC : post_req("/async", "{}", req, 512)), 0);
        client_sleep_ms(30);
        client_close(c);
    }
    client_sleep_ms(250); /* past every operation's end */
    sq_test_res *res = client_req(host, "GET", "/async", NULL, NULL, 0);
    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, FETCHED);
    sq_test_res_free(res);
}
END_TEST

/* ---- error_handling ---- */

START_TEST(test_errors_forced_failure)
{
    int64_t t0 = client_now_ms();
    sq_test_res *res = client_req(host, "GET", "/errors?fail=1", NULL, NULL, 0);

    assert_ms("GET /errors?fail=1", client_now_ms() - t0, 95, 250); /* 3 x 100 ms at once */
    ck_assert_int_eq(res->status, 200);
    client_assert_header(res, "Content-Type", "application/json");
    ck_assert_msg(strstr(res->body, "\"errors\":[\"Operation 2 failed: "), "%s", res->body);
    ck_assert_msg(strstr(res->body, "\"success_count\":2,"), "%s", res->body);
    ck_assert_str_eq(res->body, ERRORS_FAILED);
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_errors_forced_success)
{
    int64_t t0 = client_now_ms();
    sq_test_res *res = client_req(host, "GET", "/errors?fail=0", NULL, NULL, 0);

    assert_ms("GET /errors?fail=0", client_now_ms() - t0, 95, 250);
    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(res->body, ERRORS_OK);
    ck_assert_ptr_null(strstr(res->body, "errors"));
    sq_test_res_free(res);
}
END_TEST

/* Without ?fail, operation 2 fails about 3 times in 10. 60 tries: 18 expected; outside
   [3, 40] is over 4 standard deviations off. */
START_TEST(test_errors_random_failure)
{
    enum { N = 60 };
    struct client_res res[N];
    int failed = 0;

    concurrent("GET /errors HTTP/1.1\r\nHost: t\r\n\r\n", N, res);
    for (size_t i = 0; i < N; i++) {
        ck_assert_int_eq(res[i].status, 200);
        bool f = strcmp(res[i].body, ERRORS_FAILED) == 0;
        ck_assert_msg(f || strcmp(res[i].body, ERRORS_OK) == 0, "%s", res[i].body);
        failed += f;
        client_res_free(&res[i]);
    }
    ck_assert_msg(failed >= 3 && failed <= 40, "%d of %d failed", failed, N);
}
END_TEST

/* An unexpected error: 500, and the details only in the log. */
START_TEST(test_errors_crash)
{
    const char *paths[] = {"/errors?crash=1", "/errors?crash=1&fail=1", "/errors?fail=0&crash=1"};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        sq_test_res *res = client_req(host, "GET", paths[i], NULL, NULL, 0);
        client_assert_json_error(res, 500, INTERNAL);
        sq_test_res_free(res);
    }
    /* The host keeps serving. */
    sq_test_res *res = client_req(host, "GET", "/errors?fail=0&crash=0", NULL, NULL, 0);
    ck_assert_str_eq(res->body, ERRORS_OK);
    sq_test_res_free(res);
}
END_TEST

/* The crash's log line, read from the stderr of a spawned host. */
START_TEST(test_errors_crash_logged)
{
    char conf[PATH_MAX + 256];
    struct client_proc p;
    struct client_res res;

    example_conf("error_handling", NULL, conf, sizeof(conf));
    ck_assert_msg(client_spawn(&p, conf, NULL) == 0, "the host did not start");
    struct client_conn *c = client_open(p.port);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(
        client_roundtrip(c, "GET /errors?crash=1 HTTP/1.1\r\nHost: t\r\n\r\n", &res, T_MS), 0);
    ck_assert_int_eq(res.status, 500);
    ck_assert_str_eq(res.body, INTERNAL);
    client_res_free(&res);
    client_close(c);
    char *err = client_proc_stderr(&p);
    ck_assert_msg(strstr(err, "[error] error_handling: GET /errors: cannot build the reply: "
                              "Invalid UTF-8 string\n"),
                  "no error line in:\n%s", err);
    free(err);
    client_proc_free(&p);
}
END_TEST

START_TEST(test_errors_bad_query)
{
    const char *fail[] = {"/errors?fail=2", "/errors?fail=", "/errors?fail=yes", "/errors?fail"};
    const char *crash[] = {"/errors?crash=2", "/errors?crash=", "/errors?fail=1&crash=true"};

    for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++) {
        sq_test_res *res = client_req(host, "GET", fail[i], NULL, NULL, 0);
        client_assert_json_error(res, 400, "{\"error\":\"fail must be 0 or 1\"}");
        sq_test_res_free(res);
    }
    for (size_t i = 0; i < sizeof(crash) / sizeof(crash[0]); i++) {
        sq_test_res *res = client_req(host, "GET", crash[i], NULL, NULL, 0);
        client_assert_json_error(res, 400, "{\"error\":\"crash must be 0 or 1\"}");
        sq_test_res_free(res);
    }
}
END_TEST

/* ---- queue_worker ---- */

/* POSTs a job; returns the reply (free it). */
static sq_test_res *post_job(sq_test_host *h, const char *type, int duration)
{
    char body[256];

    snprintf(body, sizeof(body), "{\"type\":\"%s\",\"duration\":%d}", type, duration);
    return client_req(h, "POST", "/jobs", NULL, body, strlen(body));
}

/* POSTs a job that must be queued. */
static void queue_job(sq_test_host *h, const char *type, int duration)
{
    sq_test_res *res = post_job(h, type, duration);

    ck_assert_msg(res->status == 202, "%s: %d %s", type, res->status, res->body);
    ck_assert_str_eq(res->body, QUEUED);
    sq_test_res_free(res);
}

/* Polls GET /jobs/stats until it says want, for up to timeout_ms; fails with the last
   answer otherwise. Returns the time it said so, on client_now_ms's clock. */
static int64_t wait_stats(sq_test_host *h, const char *want, int timeout_ms)
{
    int64_t deadline = client_now_ms() + timeout_ms;
    char last[256] = "";

    for (;;) {
        sq_test_res *res = client_req(h, "GET", "/jobs/stats", NULL, NULL, 0);
        ck_assert_int_eq(res->status, 200);
        snprintf(last, sizeof(last), "%s", res->body);
        sq_test_res_free(res);
        int64_t now = client_now_ms();
        if (strcmp(last, want) == 0)
            return now;
        ck_assert_msg(now < deadline, "stats still %s after %d ms, expected %s", last, timeout_ms,
                      want);
        client_sleep_ms(POLL_MS);
    }
}

START_TEST(test_queue_stats_start_empty)
{
    sq_test_res *res = client_req(host, "GET", "/jobs/stats", NULL, NULL, 0);

    ck_assert_int_eq(res->status, 200);
    client_assert_header(res, "Content-Type", "application/json");
    ck_assert_str_eq(res->body, STATS(0, 0, 0, 0));
    sq_test_res_free(res);
}
END_TEST

/*
 * queue_size 2 and 3 workers: five 300 ms jobs are 3 running and 2 queued, a sixth is
 * refused; at about 300 ms the queued two start, at about 600 ms all five are done.
 */
START_TEST(test_queue_flow)
{
    int64_t t0 = client_now_ms();

    for (int i = 0; i < 5; i++)
        queue_job(host, "resize", 300);
    wait_stats(host, STATS(2, 3, 0, 0), 100);
    sq_test_res *res = post_job(host, "resize", 300);
    client_assert_json_error(res, 503, "{\"error\":\"queue full\"}");
    sq_test_res_free(res);

    int64_t t = wait_stats(host, STATS(0, 2, 3, 0), 1000);
    assert_ms("the first three jobs", t - t0, 295, 500);
    t = wait_stats(host, STATS(0, 0, 5, 0), 1000);
    assert_ms("all five jobs", t - t0, 595, 900);

    queue_job(host, "resize", 0); /* room again; a 0 ms job is done at once */
    wait_stats(host, STATS(0, 0, 6, 0), 200);
}
END_TEST

START_TEST(test_queue_fail_job)
{
    queue_job(host, "fail", 50);
    queue_job(host, "ok", 50);
    queue_job(host, "failure", 50); /* only "fail" fails */
    wait_stats(host, STATS(0, 0, 2, 1), 500);
}
END_TEST

START_TEST(test_queue_bad_input)
{
    const char *bodies[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"type\":\"x\"}",
        "{\"duration\":5}",
        "{\"type\":1,\"duration\":5}",
        "{\"type\":\"x\",\"duration\":\"5\"}",
        "{\"type\":\"x\",\"duration\":1.5}",
        "{\"type\":\"x\",\"duration\":-1}",
        "{\"type\":\"x\",\"duration\":60001}",
        "{\"type\":\"\",\"duration\":1}",
        "{\"type\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
        "\"duration\":1}", /* 65 bytes */
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        sq_test_res *res = client_req(host, "POST", "/jobs", NULL, bodies[i], strlen(bodies[i]));
        ck_assert_msg(res->status == 400, "%s: %d %s", bodies[i], res->status, res->body);
        ck_assert_msg(strncmp(res->body, "{\"error\":\"", 10) == 0, "%s", res->body);
        sq_test_res_free(res);
    }
    sq_test_res *res = client_req(host, "GET", "/jobs/stats", NULL, NULL, 0);
    ck_assert_str_eq(res->body, STATS(0, 0, 0, 0));
    sq_test_res_free(res);
}
END_TEST

/* Stopping the host with jobs running and queued: the workers are cancelled, fini frees
   the rest (LeakSanitizer checks it in the SAN build), and it takes no time. */
START_TEST(test_queue_stop_busy)
{
    for (int i = 0; i < 5; i++)
        queue_job(host, "long", 60000);
    wait_stats(host, STATS(2, 3, 0, 0), 100);

    int64_t t0 = client_now_ms();
    sq_test_stop(host);
    host = NULL;
    assert_ms("sq_test_stop", client_now_ms() - t0, 0, 2000);
}
END_TEST

/* Stopped at once, before the workers have run even once. */
START_TEST(test_queue_stop_at_once)
{
    sq_test_host *h = start_example("queue_worker", NULL);
    int64_t t0 = client_now_ms();

    sq_test_stop(h);
    assert_ms("sq_test_stop", client_now_ms() - t0, 0, 2000);
}
END_TEST

/* queue_size defaults to 10: 3 running + 10 queued, then full. */
START_TEST(test_queue_size_default)
{
    sq_test_host *h = start_example("queue_worker", NULL);

    for (int i = 0; i < 13; i++)
        queue_job(h, "long", 60000);
    wait_stats(h, STATS(10, 3, 0, 0), 100);
    sq_test_res *res = post_job(h, "long", 60000);
    client_assert_json_error(res, 503, "{\"error\":\"queue full\"}");
    sq_test_res_free(res);
    sq_test_stop(h);
}
END_TEST

START_TEST(test_queue_size_invalid)
{
    const char *bad[] = {"0", "-1", "abc", "10x", "100001", "99999999999999999999999"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char conf[PATH_MAX + 256], extra[64];
        snprintf(extra, sizeof(extra), "queue_size = %s\n", bad[i]);
        example_conf("queue_worker", extra, conf, sizeof(conf));
        sq_test_host *h = sq_test_start(conf);
        if (h)
            sq_test_stop(h);
        ck_assert_msg(!h, "queue_size = %s was accepted", bad[i]);
        ck_assert_msg(strstr(sq_test_error(), "init failed"), "%s", sq_test_error());
    }
}
END_TEST

/* ---- cache ---- */

/* The shipped [route GET /report] section, and a short ttl_ms for /cached. */
#define CACHE_KEYS "ttl_ms = 300\n[route GET /report]\ncache = 30s\n"

static void setup_cache(void)
{
    host = start_example("cache", CACHE_KEYS);
}

/* GET path: checks the status is 200 and the time it took is in [lo, hi) ms; returns the
   body parsed (the caller decrefs it). */
static json_t *get_json(const char *path, int64_t lo, int64_t hi)
{
    int64_t t0 = client_now_ms();
    sq_test_res *res = client_req(host, "GET", path, NULL, NULL, 0);

    assert_ms(path, client_now_ms() - t0, lo, hi);
    ck_assert_msg(res->status == 200, "%s: %d %s", path, res->status, res->body);
    client_assert_header(res, "Content-Type", "application/json");
    json_t *j = json_loads(res->body, 0, NULL);
    ck_assert_msg(j, "%s: not JSON: %s", path, res->body);
    sq_test_res_free(res);
    return j;
}

/* Checks that j is {"data":{"id":id,"name":"Item <id>","fetched_at":N},"source":source}. */
static void assert_item(const json_t *j, const char *id, const char *source)
{
    const json_t *data = json_object_get(j, "data");
    char name[128];

    snprintf(name, sizeof(name), "Item %s", id);
    ck_assert_uint_eq(json_object_size(j), 2);
    ck_assert_str_eq(json_string_value(json_object_get(j, "source")), source);
    ck_assert_uint_eq(json_object_size(data), 3);
    ck_assert_str_eq(json_string_value(json_object_get(data, "id")), id);
    ck_assert_str_eq(json_string_value(json_object_get(data, "name")), name);
    ck_assert(json_integer_value(json_object_get(data, "fetched_at")) > 1600000000);
}

/* The first request waits for the backend; the next ones get the same data at once. */
START_TEST(test_cache_fresh_then_cached)
{
    json_t *fresh = get_json("/cached?id=42", 495, 700);
    assert_item(fresh, "42", "fresh");
    for (int i = 0; i < 3; i++) {
        json_t *hit = get_json("/cached?id=42", 0, 100);
        assert_item(hit, "42", "cache");
        ck_assert(json_equal(json_object_get(hit, "data"), json_object_get(fresh, "data")));
        json_decref(hit);
    }
    json_decref(fresh);
    json_t *other = get_json("/cached?id=a-B_9", 495, 700); /* another id: another entry */
    assert_item(other, "a-B_9", "fresh");
    json_decref(other);
}
END_TEST

/* Past ttl_ms (300 ms here, 10 minutes by default) the item is fetched again. */
START_TEST(test_cache_expires)
{
    json_decref(get_json("/cached?id=7", 495, 700));
    json_t *hit = get_json("/cached?id=7", 0, 100);
    assert_item(hit, "7", "cache");
    json_decref(hit);
    client_sleep_ms(300);
    json_t *again = get_json("/cached?id=7", 495, 700);
    assert_item(again, "7", "fresh");
    json_decref(again);
}
END_TEST

/* Clients asking for one id at once each fetch it (the pattern has no single flight), all
   in about one fetch's time: the waits overlap. */
START_TEST(test_cache_concurrent)
{
    struct client_res res[NCONC];
    int64_t elapsed = concurrent("GET /cached?id=c HTTP/1.1\r\nHost: t\r\n\r\n", NCONC, res);

    assert_ms("20 GET /cached at once", elapsed, 495, 750);
    for (size_t i = 0; i < NCONC; i++) {
        ck_assert_int_eq(res[i].status, 200);
        ck_assert_msg(strstr(res[i].body, "\"source\":\"fresh\""), "%s", res[i].body);
        client_res_free(&res[i]);
    }
    json_t *hit = get_json("/cached?id=c", 0, 100);
    assert_item(hit, "c", "cache");
    json_decref(hit);
}
END_TEST

START_TEST(test_cache_bad_id)
{
    const char *bad[] = {
        "/cached",
        "/cached?id=",
        "/cached?id=a%2Fb",
        "/cached?id=a+b",
        "/cached?id=%C3%A9",
        "/cached?id=12345678901234567890123456789012345678901234567890123456789012345"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t0 = client_now_ms();
        sq_test_res *res = client_req(host, "GET", bad[i], NULL, NULL, 0);
        assert_ms(bad[i], client_now_ms() - t0, 0, 100);
        client_assert_json_error(res, 400,
                                 "{\"error\":\"id must be 1 to 64 letters, digits, '-' or '_'\"}");
        sq_test_res_free(res);
    }
}
END_TEST

/* /report under the response cache: MISS after 500 ms, then HIT at once with the same body
   and an Age. */
START_TEST(test_cache_report)
{
    int64_t t0 = client_now_ms();
    sq_test_res *miss = client_req(host, "GET", "/report", NULL, NULL, 0);

    assert_ms("GET /report", client_now_ms() - t0, 495, 700);
    ck_assert_int_eq(miss->status, 200);
    client_assert_header(miss, "X-Cache", "MISS");
    ck_assert_msg(strstr(miss->body, "{\"report\":\"orders by region\",\"regions\":{\"north\":120,"
                                     "\"south\":95},\"generated_at\":"),
                  "%s", miss->body);
    for (int i = 0; i < 3; i++) {
        t0 = client_now_ms();
        sq_test_res *hit = client_req(host, "GET", "/report", NULL, NULL, 0);
        assert_ms("GET /report (cached)", client_now_ms() - t0, 0, 100);
        ck_assert_int_eq(hit->status, 200);
        client_assert_header(hit, "X-Cache", "HIT");
        client_assert_header(hit, "Age", "0");
        client_assert_header(hit, "Content-Type", "application/json");
        ck_assert_str_eq(hit->body, miss->body);
        sq_test_res_free(hit);
    }
    sq_test_res_free(miss);
}
END_TEST

/* Without the [route] section, /report is not cached. */
START_TEST(test_cache_report_uncached)
{
    sq_test_res *res;
    sq_test_host *h = start_example("cache", NULL);

    for (int i = 0; i < 2; i++) {
        int64_t t0 = client_now_ms();
        res = client_req(h, "GET", "/report", NULL, NULL, 0);
        assert_ms("GET /report", client_now_ms() - t0, 495, 700);
        ck_assert_int_eq(res->status, 200);
        ck_assert_ptr_null(sq_test_header(res, "X-Cache"));
        sq_test_res_free(res);
    }
    sq_test_stop(h);
}
END_TEST

START_TEST(test_cache_ttl_invalid)
{
    const char *bad[] = {"0", "-1", "abc", "10s", " 5", "86400001", "99999999999999999999999"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char conf[PATH_MAX + 256], extra[64];
        snprintf(extra, sizeof(extra), "ttl_ms = \"%s\"\n", bad[i]);
        example_conf("cache", extra, conf, sizeof(conf));
        sq_test_host *h = sq_test_start(conf);
        if (h)
            sq_test_stop(h);
        ck_assert_msg(!h, "ttl_ms = %s was accepted", bad[i]);
        ck_assert_msg(strstr(sq_test_error(), "init failed"), "%s", sq_test_error());
    }
}
END_TEST

/* ---- ratelimit ---- */

#define LIMITED "{\"error\":\"Rate limit exceeded\"}"

static void setup_ratelimit(void)
{
    host = start_example("ratelimit", "[route GET /limited]\nratelimit = 10/60s\n");
}

/* GET /limited on h with hdrs: checks the status, the client it reports (when 200) and the
   remaining allowance. */
static void expect_limited(sq_test_host *h, const char *hdrs, int status, const char *client,
                           int remaining)
{
    sq_test_res *res = client_req(h, "GET", "/limited", hdrs, NULL, 0);
    char want[128];

    ck_assert_msg(res->status == status, "%d %s", res->status, res->body);
    client_assert_header(res, "RateLimit-Limit", "10");
    snprintf(want, sizeof(want), "%d", remaining);
    client_assert_header(res, "RateLimit-Remaining", want);
    if (status == 200) {
        snprintf(want, sizeof(want), "{\"message\":\"within the limit\",\"client\":\"%s\"}",
                 client);
        ck_assert_str_eq(res->body, want);
        ck_assert_ptr_null(sq_test_header(res, "Retry-After"));
    } else {
        client_assert_json_error(res, 429, LIMITED);
        client_assert_header(res, "Retry-After", "6"); /* 60 s / 10 */
        client_assert_header(res, "RateLimit-Reset", "60");
    }
    sq_test_res_free(res);
}

/* Ten pass, the allowance counting down, each adding 6 s to the reset; the 11th is refused. */
START_TEST(test_ratelimit_eleventh_refused)
{
    for (int i = 1; i <= 10; i++) {
        sq_test_res *res = client_req(host, "GET", "/limited", NULL, NULL, 0);
        char want[16];
        ck_assert_int_eq(res->status, 200);
        snprintf(want, sizeof(want), "%d", 10 - i);
        client_assert_header(res, "RateLimit-Remaining", want);
        snprintf(want, sizeof(want), "%d", 6 * i);
        client_assert_header(res, "RateLimit-Reset", want);
        sq_test_res_free(res);
    }
    expect_limited(host, NULL, 429, NULL, 0);
    expect_limited(host, NULL, 429, NULL, 0);
}
END_TEST

/* Without the conf's section the route's own .ratelimit is the same 10/60s. */
START_TEST(test_ratelimit_code_default)
{
    sq_test_host *h = start_example("ratelimit", NULL);

    for (int i = 1; i <= 10; i++)
        expect_limited(h, NULL, 200, "127.0.0.1", 10 - i);
    expect_limited(h, NULL, 429, NULL, 0);
    sq_test_stop(h);
}
END_TEST

/* Behind trusted proxies each client has its own allowance, as the README says; from any
   other peer the headers are ignored. */
START_TEST(test_ratelimit_trusted_proxies)
{
    char plugin[PATH_MAX + 256], conf[PATH_MAX + 512];

    example_conf("ratelimit", NULL, plugin, sizeof(plugin));
    snprintf(conf, sizeof(conf), "[server]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8\n%s", plugin);
    sq_test_host *h = sq_test_start(conf);
    ck_assert_msg(h, "sq_test_start: %s", sq_test_error());
    const char *a = "X-Forwarded-For: 203.0.113.7\r\n";
    for (int i = 1; i <= 10; i++)
        expect_limited(h, a, 200, "203.0.113.7", 10 - i);
    expect_limited(h, a, 429, NULL, 0);
    expect_limited(h, "X-Forwarded-For: 1.1.1.1, 203.0.113.7, 10.0.0.5\r\n", 429, NULL, 0);
    expect_limited(h, "X-Forwarded-For: 198.51.100.1\r\n", 200, "198.51.100.1", 9);
    expect_limited(h, "X-Real-IP: 198.51.100.2\r\n", 200, "198.51.100.2", 9);
    expect_limited(h, NULL, 200, "127.0.0.1", 9);
    sq_test_stop(h);
    h = start_example("ratelimit", NULL); /* no trusted proxies: the peer is the client */
    expect_limited(h, a, 200, "127.0.0.1", 9);
    expect_limited(h, "X-Real-IP: 198.51.100.2\r\n", 200, "127.0.0.1", 8);
    sq_test_stop(h);
}
END_TEST

/* ---- users (PostgreSQL) ----
 *
 * One embedded cluster for the users tests, started by the tcase's unchecked fixture (once,
 * in the runner's process) and borrowed by every host through `dsn = embedded` with its
 * embedded_dir, as users.conf has it. Each test starts with no users table, so the plugin's
 * init creates it every time, and the tests do not see each other's rows. The test looks at
 * the rows itself with a blocking libpq connection of its own.
 */

#define USERS_LOCK "7372657375" /* the advisory lock key users.c takes to create its table */

static const char *pgdsn; /* the cluster's, once started */

static void cluster_setup(void)
{
    pgdsn = client_pg_start("check-examples"); /* else the tests fail, saying so */
}

static void cluster_teardown(void)
{
    client_pg_stop();
    pgdsn = NULL;
}

/* Starts a host serving users against the cluster (or the database dbname when not NULL). */
static sq_test_host *start_users(const char *dbname)
{
    char extra[1024], conf[PATH_MAX + 1280];

    ck_assert_msg(pgdsn, "no PostgreSQL cluster (see the log above)");
    if (dbname)
        snprintf(extra, sizeof(extra), "[database]\ndsn = \"%s dbname=%s\"\n", pgdsn, dbname);
    else
        snprintf(extra, sizeof(extra), "[database]\ndsn = embedded\nembedded_dir = %s\n",
                 client_pg_dir());
    int n = snprintf(conf, sizeof(conf), "%s", extra);
    example_conf("users", NULL, conf + n, sizeof(conf) - (size_t)n);
    sq_test_host *h = sq_test_start(conf);
    ck_assert_msg(h, "sq_test_start: %s", sq_test_error());
    return h;
}

static void setup_users(void)
{
    client_pg_long("DROP TABLE IF EXISTS users");
    host = start_users(NULL);
}

/* POSTs body to /users; returns the reply (free it). */
static sq_test_res *post_users(const char *body)
{
    return client_req(host, "POST", "/users", NULL, body, strlen(body));
}

/* POSTs one user, which must be created; returns its id. */
static long create_user(const char *name, const char *email)
{
    char body[512];

    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"email\":\"%s\"}", name, email);
    sq_test_res *res = post_users(body);
    ck_assert_msg(res->status == 201, "%s: %d %s", body, res->status, res->body);
    client_assert_header(res, "Content-Type", "application/json");
    json_t *j = json_loads(res->body, 0, NULL);
    ck_assert_msg(j, "not JSON: %s", res->body);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "created");
    ck_assert_msg(json_is_integer(json_object_get(j, "user_id")), "%s", res->body);
    ck_assert_uint_eq(json_object_size(j), 2);
    long id = (long)json_integer_value(json_object_get(j, "user_id"));
    json_decref(j);
    sq_test_res_free(res);
    return id;
}

/* GET path: checks the status and returns the body (the caller frees it). */
static char *get_body(const char *path, int status)
{
    sq_test_res *res = client_req(host, "GET", path, NULL, NULL, 0);

    ck_assert_msg(res->status == status, "%s: %d %s", path, res->status, res->body);
    client_assert_header(res, "Content-Type", "application/json");
    char *body = strdup(res->body);
    sq_test_res_free(res);
    return body;
}

/* Checks that the users table holds n rows with email. */
static void expect_email_rows(const char *email, long n)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM users WHERE email = '%s'", email);
    ck_assert_int_eq(client_pg_long(sql), n);
}

START_TEST(test_users_crud)
{
    long ada = create_user("Ada", "ada@example.org");
    long bob = create_user("Bob", "bob@example.org");
    char path[64], want[256];

    ck_assert_int_gt(ada, 0);
    ck_assert_int_gt(bob, ada);
    snprintf(path, sizeof(path), "/users/%ld", ada);
    char *body = get_body(path, 200);
    snprintf(want, sizeof(want),
             "{\"id\":%ld,\"name\":\"Ada\",\"email\":\"ada@example.org\",\"active\":true}", ada);
    ck_assert_str_eq(body, want);
    free(body);
    body = get_body("/users", 200);
    snprintf(want, sizeof(want),
             "{\"users\":[{\"id\":%ld,\"name\":\"Ada\",\"email\":\"ada@example.org\"},"
             "{\"id\":%ld,\"name\":\"Bob\",\"email\":\"bob@example.org\"}]}",
             ada, bob);
    ck_assert_str_eq(body, want);
    free(body);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM users WHERE active"), 2);
}
END_TEST

/* Only active users are listed; an inactive one is still found by id. */
START_TEST(test_users_inactive)
{
    long ada = create_user("Ada", "ada@example.org");
    long eve = create_user("Eve", "eve@example.org");
    char sql[128], path[64], want[256];

    snprintf(sql, sizeof(sql), "UPDATE users SET active = false WHERE id = %ld", eve);
    client_pg_long(sql);
    char *body = get_body("/users", 200);
    snprintf(want, sizeof(want),
             "{\"users\":[{\"id\":%ld,\"name\":\"Ada\",\"email\":\"ada@example.org\"}]}", ada);
    ck_assert_str_eq(body, want);
    free(body);
    snprintf(path, sizeof(path), "/users/%ld", eve);
    body = get_body(path, 200);
    ck_assert_msg(strstr(body, "\"active\":false"), "%s", body);
    free(body);
}
END_TEST

START_TEST(test_users_empty_and_404)
{
    const char *absent[] = {"/users/1", "/users/0", "/users/-5", "/users/9223372036854775807"};

    char *body = get_body("/users", 200);
    ck_assert_str_eq(body, "{\"users\":[]}");
    free(body);
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
        sq_test_res *res = client_req(host, "GET", absent[i], NULL, NULL, 0);
        char want[128];
        snprintf(want, sizeof(want), "{\"error\":\"user %s not found\"}", absent[i] + 7);
        client_assert_json_error(res, 404, want);
        sq_test_res_free(res);
    }
    sq_test_res *res = client_req(host, "GET", "/users/abc", NULL, NULL, 0);
    ck_assert_int_eq(res->status, 404); /* not an {id:int}: no route */
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_users_bad_input)
{
    static const struct {
        const char *body, *error;
    } bad[] = {
        {"{\"name\":\"Ada\"}", "email must be a string of 1 to 254 bytes with an '@'"},
        {"{\"email\":\"a@b\"}", "name must be a string of 1 to 200 bytes"},
        {"{\"name\":1,\"email\":\"a@b\"}", "name must be a string of 1 to 200 bytes"},
        {"{\"name\":\"Ada\",\"email\":null}",
         "email must be a string of 1 to 254 bytes with an '@'"},
        {"{\"name\":\"\",\"email\":\"a@b\"}", "name must be a string of 1 to 200 bytes"},
        {"{\"name\":\"Ada\",\"email\":\"ada.example.org\"}",
         "email must be a string of 1 to 254 bytes with an '@'"},
        {"{\"name\":[\"Ada\"],\"email\":\"a@b\"}", "name must be a string of 1 to 200 bytes"},
        {"[]", "expected 1 to 100 users"},
        {"[{\"name\":\"Ada\",\"email\":\"a@b\"},{\"name\":\"Bob\"}]",
         "users[1]: email must be a string of 1 to 254 bytes with an '@'"},
        {"[{\"name\":\"Ada\",\"email\":\"a@b\"},7]",
         "users[1]: expected an object with name and email"},
        {"\"Ada\"", "expected an object with name and email"}, /* JSON, not an object */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[256];
        sq_test_res *res = post_users(bad[i].body);
        snprintf(want, sizeof(want), "{\"error\":\"%s\"}", bad[i].error);
        ck_assert_msg(res->status == 400, "%s: %d %s", bad[i].body, res->status, res->body);
        ck_assert_msg(strcmp(res->body, want) == 0, "%s: %s", bad[i].body, res->body);
        sq_test_res_free(res);
    }
    const char *not_json[] = {"", "{\"name\":", "not json", "{\"name\":\"Ada\"} x",
                              "{\"name\":\"A\\u0000da\",\"email\":\"a@b\"}"};
    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++) {
        sq_test_res *res = post_users(not_json[i]);
        ck_assert_msg(res->status == 400, "%s: %d %s", not_json[i], res->status, res->body);
        ck_assert_msg(strncmp(res->body, "{\"error\":\"body must be JSON: ", 29) == 0, "%s",
                      res->body);
        sq_test_res_free(res);
    }
    char big[400], body[512];
    memset(big, 'x', 201);
    big[201] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"email\":\"a@b\"}", big);
    sq_test_res *res = post_users(body);
    client_assert_json_error(res, 400, "{\"error\":\"name must be a string of 1 to 200 bytes\"}");
    sq_test_res_free(res);
    char *list = get_body("/users", 200); /* refusing needs no table: it may not exist yet */
    ck_assert_str_eq(list, "{\"users\":[]}");
    free(list);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM users"), 0);
    big[200] = '\0'; /* 200 bytes: fine */
    snprintf(body, sizeof(body), "%s@example.org", big + 190);
    create_user(big, body);
}
END_TEST

START_TEST(test_users_duplicate_409)
{
    create_user("Ada", "ada@example.org");
    sq_test_res *res = post_users("{\"name\":\"Ada 2\",\"email\":\"ada@example.org\"}");
    client_assert_json_error(res, 409, "{\"error\":\"email already exists\"}");
    sq_test_res_free(res);
    expect_email_rows("ada@example.org", 1);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM users WHERE name = 'Ada 2'"), 0);
    create_user("Ada", "ADA@example.org"); /* another address */
}
END_TEST

/* A list is one transaction: a duplicate half-way rolls back the users inserted before it,
   and the connection goes back to the pool clean (no session left in a transaction). */
START_TEST(test_users_rollback)
{
    create_user("Ada", "ada@example.org");
    const char *fail[] = {
        "[{\"name\":\"Bob\",\"email\":\"bob@example.org\"},"
        "{\"name\":\"Eve\",\"email\":\"ada@example.org\"}]",
        "[{\"name\":\"Bob\",\"email\":\"bob@example.org\"},"
        "{\"name\":\"Cy\",\"email\":\"cy@example.org\"},"
        "{\"name\":\"Bob 2\",\"email\":\"bob@example.org\"}]",
    };
    for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++) {
        sq_test_res *res = post_users(fail[i]);
        client_assert_json_error(res, 409, "{\"error\":\"email already exists\"}");
        sq_test_res_free(res);
    }
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM users"), 1);
    ck_assert_int_eq(
        client_pg_long("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                       "'squall' AND state LIKE 'idle in transaction%'"),
        0);
    sq_test_res *res = post_users("[{\"name\":\"Bob\",\"email\":\"bob@example.org\"},"
                                  "{\"name\":\"Cy\",\"email\":\"cy@example.org\"}]");
    ck_assert_msg(res->status == 201, "%d %s", res->status, res->body);
    json_t *j = json_loads(res->body, 0, NULL);
    json_t *ids = json_object_get(j, "user_ids");
    ck_assert_msg(json_array_size(ids) == 2, "%s", res->body);
    ck_assert_int_lt(json_integer_value(json_array_get(ids, 0)),
                     json_integer_value(json_array_get(ids, 1)));
    json_decref(j);
    sq_test_res_free(res);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM users"), 3);
}
END_TEST

/* Sends reqs[0..n) at once, each on its own connection; their replies into res[]. */
static void concurrent_each(const char *const *reqs, size_t n, struct client_res *res)
{
    struct client_conn *cs[64];

    ck_assert_uint_le(n, 64);
    for (size_t i = 0; i < n; i++) {
        cs[i] = client_open(sq_test_port(host));
        ck_assert_msg(cs[i], "connection %zu failed", i);
    }
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(client_send_str(cs[i], reqs[i]), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(client_read_reply(cs[i], &res[i], false, T_MS) == 0, "no reply on %zu", i);
        client_close(cs[i]);
    }
}

/* Twenty POSTs at once, each its own user: twenty distinct ids. Then twenty at once for one
   email: exactly one wins, the others get 409, and one row exists. */
START_TEST(test_users_concurrent_posts)
{
    char bodies[NCONC][128], reqs[NCONC][512];
    const char *rp[NCONC];
    struct client_res res[NCONC];
    long ids[NCONC];

    for (size_t i = 0; i < NCONC; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "{\"name\":\"U%zu\",\"email\":\"u%zu@example.org\"}",
                 i, i);
        rp[i] = post_req("/users", bodies[i], reqs[i], sizeof(reqs[i]));
    }
    concurrent_each(rp, NCONC, res);
    for (size_t i = 0; i < NCONC; i++) {
        ck_assert_msg(res[i].status == 201, "%zu: %d %s", i, res[i].status, res[i].body);
        json_t *j = json_loads(res[i].body, 0, NULL);
        ids[i] = (long)json_integer_value(json_object_get(j, "user_id"));
        json_decref(j);
        for (size_t k = 0; k < i; k++)
            ck_assert_int_ne(ids[k], ids[i]);
        client_res_free(&res[i]);
    }
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM users"), NCONC);

    for (size_t i = 0; i < NCONC; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "{\"name\":\"V%zu\",\"email\":\"same@example.org\"}",
                 i);
        rp[i] = post_req("/users", bodies[i], reqs[i], sizeof(reqs[i]));
    }
    concurrent_each(rp, NCONC, res);
    int created = 0, taken = 0;
    for (size_t i = 0; i < NCONC; i++) {
        created += res[i].status == 201;
        taken += res[i].status == 409;
        client_res_free(&res[i]);
    }
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(taken, NCONC - 1);
    expect_email_rows("same@example.org", 1);
}
END_TEST

/* Requests that arrive while init's task is still creating the table wait for it instead of
   failing: the test holds the advisory lock the task needs, so it cannot finish. */
START_TEST(test_users_wait_for_schema)
{
    struct client_res res[4];
    char reqs[2][512];
    const char *rp[4] = {
        "GET /users HTTP/1.1\r\nHost: t\r\n\r\n",
        post_req("/users", "{\"name\":\"Ada\",\"email\":\"ada@example.org\"}", reqs[0], 512),
        "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n",
        post_req("/users", "{\"name\":\"Bob\",\"email\":\"bob@example.org\"}", reqs[1], 512),
    };
    struct client_conn *cs[4];
    PGconn *lock = client_pg_connect(NULL);

    sq_test_stop(host); /* the fixture's host made the table already */
    host = NULL;
    client_pg_long("DROP TABLE IF EXISTS users");
    free(client_pg_value(lock, "SELECT pg_advisory_lock(" USERS_LOCK ")"));
    host = start_users(NULL);
    for (int i = 0; i < 4; i++) {
        cs[i] = client_open(sq_test_port(host));
        ck_assert_ptr_nonnull(cs[i]);
        ck_assert_int_eq(client_send_str(cs[i], rp[i]), 0);
    }
    client_sleep_ms(300);
    for (int i = 0; i < 4; i++) /* nothing has come back: they wait */
        ck_assert_int_eq(client_fill(cs[i], 0), -1);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM pg_tables WHERE tablename = 'users'"), 0);
    free(client_pg_value(lock, "SELECT pg_advisory_unlock(" USERS_LOCK ")"));
    PQfinish(lock);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(client_read_reply(cs[i], &res[i], false, T_MS) == 0, "no reply on %d", i);
        client_close(cs[i]);
    }
    ck_assert_msg(res[0].status == 200, "%d %s", res[0].status, res[0].body);
    ck_assert_msg(res[1].status == 201, "%d %s", res[1].status, res[1].body);
    ck_assert_msg(res[2].status == 200 || res[2].status == 404, "%d %s", res[2].status,
                  res[2].body);
    ck_assert_msg(res[3].status == 201, "%d %s", res[3].status, res[3].body);
    for (int i = 0; i < 4; i++)
        client_res_free(&res[i]);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM users"), 2);
}
END_TEST

/* A database that cannot be reached at start (here: it does not exist yet): requests get
   503, and once it is there the next request creates the table and succeeds. */
START_TEST(test_users_database_late)
{
    PGconn *admin = client_pg_connect(NULL);

    sq_test_stop(host);
    host = NULL;
    free(client_pg_value(admin, "DROP DATABASE IF EXISTS users_late"));
    host = start_users("users_late");
    for (int i = 0; i < 2; i++) {
        sq_test_res *res = client_req(host, "GET", "/users", NULL, NULL, 0);
        ck_assert_msg(res->status == 503, "%d %s", res->status, res->body);
        sq_test_res_free(res);
    }
    free(client_pg_value(admin, "CREATE DATABASE users_late"));
    int status = 0;
    for (int i = 0; i < 100 && status != 201; i++) { /* the pool retries after a backoff */
        sq_test_res *res = post_users("{\"name\":\"Ada\",\"email\":\"ada@example.org\"}");
        status = res->status;
        ck_assert_msg(status == 201 || status == 503, "%d %s", status, res->body);
        sq_test_res_free(res);
        if (status != 201)
            client_sleep_ms(50);
    }
    ck_assert_int_eq(status, 201);
    sq_test_stop(host);
    host = NULL;
    free(client_pg_value(admin, "DROP DATABASE users_late"));
    PQfinish(admin);
}
END_TEST

/* ---- The shipped configurations ---- */

/* `squall -c examples/NAME/NAME.conf --check` accepts each. Their paths point into build/,
   so this runs only for that build (and from the top of the tree, as make test does). */
START_TEST(test_example_confs)
{
    const char *names[] = {"async_handler", "error_handling", "queue_worker",
                           "cache",         "ratelimit",      "users"};

    if (strcmp(client_build_dir(), "build") != 0)
        return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "build/squall -c examples/%s/%s.conf --check >/dev/null 2>&1",
                 names[i], names[i]);
        ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
    }
}
END_TEST

static Suite *examples_suite(void)
{
    Suite *s = suite_create("examples");
    TCase *tc = tcase_create("async_handler");

    tcase_add_checked_fixture(tc, setup_async, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_async_get);
    tcase_add_test(tc, test_async_post);
    tcase_add_test(tc, test_async_post_compacts_body);
    tcase_add_test(tc, test_async_post_invalid_json);
    tcase_add_test(tc, test_async_get_concurrent);
    tcase_add_test(tc, test_async_post_concurrent);
    tcase_add_test(tc, test_async_client_gone);
    suite_add_tcase(s, tc);

    tc = tcase_create("error_handling");
    tcase_add_checked_fixture(tc, setup_errors, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_errors_forced_failure);
    tcase_add_test(tc, test_errors_forced_success);
    tcase_add_test(tc, test_errors_random_failure);
    tcase_add_test(tc, test_errors_crash);
    tcase_add_test(tc, test_errors_crash_logged);
    tcase_add_test(tc, test_errors_bad_query);
    suite_add_tcase(s, tc);

    tc = tcase_create("queue_worker");
    tcase_add_checked_fixture(tc, setup_queue, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_queue_stats_start_empty);
    tcase_add_test(tc, test_queue_flow);
    tcase_add_test(tc, test_queue_fail_job);
    tcase_add_test(tc, test_queue_bad_input);
    tcase_add_test(tc, test_queue_stop_busy);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, setup_cache, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_cache_fresh_then_cached);
    tcase_add_test(tc, test_cache_expires);
    tcase_add_test(tc, test_cache_concurrent);
    tcase_add_test(tc, test_cache_bad_id);
    tcase_add_test(tc, test_cache_report);
    suite_add_tcase(s, tc);

    tc = tcase_create("ratelimit");
    tcase_add_checked_fixture(tc, setup_ratelimit, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_ratelimit_eleventh_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache and ratelimit config");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_cache_report_uncached);
    tcase_add_test(tc, test_cache_ttl_invalid);
    tcase_add_test(tc, test_ratelimit_code_default);
    tcase_add_test(tc, test_ratelimit_trusted_proxies);
    suite_add_tcase(s, tc);

    tc = tcase_create("users");
    tcase_add_unchecked_fixture(tc, cluster_setup, cluster_teardown);
    tcase_add_checked_fixture(tc, setup_users, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_users_crud);
    tcase_add_test(tc, test_users_inactive);
    tcase_add_test(tc, test_users_empty_and_404);
    tcase_add_test(tc, test_users_bad_input);
    tcase_add_test(tc, test_users_duplicate_409);
    tcase_add_test(tc, test_users_rollback);
    tcase_add_test(tc, test_users_concurrent_posts);
    tcase_add_test(tc, test_users_wait_for_schema);
    tcase_add_test(tc, test_users_database_late);
    suite_add_tcase(s, tc);

    tc = tcase_create("queue_worker config");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_queue_stop_at_once);
    tcase_add_test(tc, test_queue_size_default);
    tcase_add_test(tc, test_queue_size_invalid);
    tcase_add_test(tc, test_example_confs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    client_log_quiet();
    return check_run(examples_suite());
}
