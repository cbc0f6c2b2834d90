/*
 * check_pg.c - the PostgreSQL service (framework/pg.c, pg_result.c) through real requests
 * to tests/plugins/pgplug.so, against a real PostgreSQL: one embedded cluster (pgembed) in a
 * temporary directory, started by main() and shared by every test (each runs in a forked
 * process with a host of its own). The test itself looks at the server with a plain
 * blocking libpq connection (pg_stat_activity, rows, pg_terminate_backend) and drives it
 * with pg_ctl for the outage test, which runs last.
 */
#include <check.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "../check_main.h"
#include "client.h"
#include "squall_test.h"

#define T_REPLY 5000 /* ms: waiting for a reply that should come */

static const char *dsn; /* the shared cluster's (client_pg_start) */
static sq_test_host *host;

/* ---- The cluster, seen from the test ---- */

/* Ends every session of the hosts (application_name squall): what a crash of their server
   processes looks like to them. Returns how many there were. */
static long terminate_hosts_sessions(void)
{
    return client_pg_long("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE application_name = 'squall'");
}

/* Runs pg_ctl args... on the cluster (as postgres when root, as pgembed runs it). */
static void pg_ctl(const char *action)
{
    glob_t g;
    char cmd[1024], data[128];
    const char *prog = "pg_ctl";

    if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, NULL, &g) == 0 && g.gl_pathc > 0)
        prog = g.gl_pathv[g.gl_pathc - 1];
    snprintf(data, sizeof(data), "%s/data", client_pg_dir());
    snprintf(cmd, sizeof(cmd), "%s %s %s -w -s -D %s -m fast -l %s/postgres.log >/dev/null",
             getuid() == 0 ? "runuser -u postgres --" : "", prog, action, data, client_pg_dir());
    if (strcmp(action, "start") == 0) /* -m is for stopping only */
        snprintf(cmd, sizeof(cmd), "%s %s start -w -s -D %s -l %s/postgres.log >/dev/null",
                 getuid() == 0 ? "runuser -u postgres --" : "", prog, data, client_pg_dir());
    int rc = system(cmd);
    if (g.gl_pathc > 0)
        globfree(&g);
    ck_assert_msg(rc == 0, "%s: exit status %d", cmd, rc);
}

/* ---- Hosts ---- */

/* Starts a host serving pgplug with the [database] lines db (NULL: no [database] at all)
   and the plugin's extra lines. */
static void start(const char *db, const char *plugin_keys)
{
    char conf[2048];
    int n = 0;

    if (db)
        n = snprintf(conf, sizeof(conf), "[database]\n%s\n", db);
    snprintf(conf + n, sizeof(conf) - (size_t)n,
             "[plugin pgplug]\npath = %s/tests/plugins/pgplug.so\n%s\n", client_build_dir(),
             plugin_keys ? plugin_keys : "");
    host = sq_test_start(conf);
    ck_assert_msg(host, "sq_test_start: %s", sq_test_error());
}

/* start() with dsn pointing at the test's cluster and extra [database] lines. */
static void start_db(const char *db_keys, const char *plugin_keys)
{
    char db[1024];

    snprintf(db, sizeof(db), "dsn = \"%s\"\n%s", dsn, db_keys ? db_keys : "");
    start(db, plugin_keys);
}

static void teardown(void)
{
    sq_test_stop(host);
    host = NULL;
}

static sq_test_res *get(const char *path)
{
    return client_req(host, "GET", path, NULL, NULL, 0);
}

static sq_test_res *post(const char *path)
{
    return client_req(host, "POST", path, NULL, "", 0);
}

/* Checks res's status, showing its error headers when it is not the one expected. */
static void expect_status(const sq_test_res *res, int status)
{
    ck_assert_msg(res->status == status, "status %d, want %d: %s\n%s", res->status, status,
                  res->body, res->headers);
}

/* Checks that res carries header name and that it contains part. */
static void expect_header_has(const sq_test_res *res, const char *name, const char *part)
{
    const char *v = sq_test_header(res, name);

    ck_assert_msg(v && strstr(v, part), "%s: \"%s\" does not contain \"%s\"", name,
                  v ? v : "(none)", part);
}

static json_t *body_json(const sq_test_res *res)
{
    json_error_t e;
    json_t *j = json_loads(res->body, 0, &e);

    ck_assert_msg(j, "not JSON (%s): %s", e.text, res->body);
    return j;
}

/* The count /items says there is of id. */
static long items_count(int id)
{
    char path[64];

    snprintf(path, sizeof(path), "/items?id=%d", id);
    sq_test_res *res = get(path);
    expect_status(res, 200);
    json_t *j = body_json(res);
    long n = (long)json_integer_value(json_object_get(j, "count"));
    json_decref(j);
    sq_test_res_free(res);
    return n;
}

/* Sends GET path on a new connection without reading the reply. */
static struct client_conn *send_get(const char *path)
{
    char req[256];
    struct client_conn *c = client_open(sq_test_port(host));

    ck_assert_ptr_nonnull(c);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    ck_assert_int_eq(client_send_str(c, req), 0);
    return c;
}

/* ---- Types, parameters, errors ---- */

START_TEST(test_types_to_json)
{
    start_db(NULL, NULL);
    sq_test_res *res = get("/types");
    expect_status(res, 200);
    json_t *rows = body_json(res), *row = json_array_get(rows, 0);
    ck_assert_uint_eq(json_array_size(rows), 1);
    ck_assert_msg(json_is_integer(json_object_get(row, "i4")), "%s", res->body);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "i4")), 42);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "i8")), 9000000000LL);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "i2")), -7);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "o")), 26);
    ck_assert_msg(json_is_real(json_object_get(row, "f8")), "%s", res->body);
    ck_assert_double_eq(json_real_value(json_object_get(row, "f8")), 1.5);
    ck_assert_double_eq(json_real_value(json_object_get(row, "f4")), 0.25);
    ck_assert_str_eq(json_string_value(json_object_get(row, "fnan")), "NaN");
    ck_assert_str_eq(json_string_value(json_object_get(row, "fninf")), "-Infinity");
    ck_assert_str_eq(json_string_value(json_object_get(row, "num")), "12345678901234567890.123450");
    ck_assert(json_is_true(json_object_get(row, "yes")));
    ck_assert(json_is_false(json_object_get(row, "no")));
    json_t *want_jb = json_loads("{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}", 0, NULL);
    json_t *want_j = json_loads("[1,\"x\",true]", 0, NULL);
    ck_assert_msg(json_equal(json_object_get(row, "jb"), want_jb), "jb: %s", res->body);
    ck_assert_msg(json_equal(json_object_get(row, "j"), want_j), "j: %s", res->body);
    ck_assert(json_is_null(json_object_get(row, "nul")));
    ck_assert(json_is_null(json_object_get(row, "nultext")));
    ck_assert_str_eq(json_string_value(json_object_get(row, "txt")), "h\xc3\xa9llo \"quoted\"");
    ck_assert_str_eq(json_string_value(json_object_get(row, "day")), "2026-01-02");
    json_decref(want_jb);
    json_decref(want_j);
    json_decref(rows);
    sq_test_res_free(res);
}
END_TEST

/* A parameter is data: an injection attempt is stored and read back verbatim. */
START_TEST(test_injection_stays_data)
{
    const char *evil = "'; DROP TABLE users; --";

    start_db(NULL, NULL);
    sq_test_res *res = post("/users?name=%27%3B%20DROP%20TABLE%20users%3B%20--");
    expect_status(res, 201);
    sq_test_res_free(res);
    res = get("/users?name=%27%3B+DROP+TABLE+users%3B+--");
    expect_status(res, 200);
    json_t *rows = body_json(res);
    ck_assert_uint_eq(json_array_size(rows), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "name")), evil);
    ck_assert(json_is_integer(json_object_get(json_array_get(rows, 0), "id")));
    json_decref(rows);
    sq_test_res_free(res);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM users WHERE name = "
                                    "'''; DROP TABLE users; --'"),
                     1);
}
END_TEST

START_TEST(test_unique_violation_is_23505)
{
    start_db(NULL, NULL);
    sq_test_res *res = post("/users?name=dup");
    expect_status(res, 201);
    sq_test_res_free(res);
    res = post("/users?name=dup"); /* the plugin answers 409 only for SQLSTATE 23505 */
    expect_status(res, 409);
    ck_assert_msg(strstr(res->body, "duplicate key"), "%s", res->body);
    sq_test_res_free(res);
}
END_TEST

/* Three queries in one round trip; the second fails on its own. */
START_TEST(test_batch_one_failing)
{
    start_db(NULL, NULL);
    sq_test_res *res = get("/batch");
    expect_status(res, 200);
    json_t *got = body_json(res);
    json_t *want = json_loads("[{\"rows\":[{\"a\":1}]},"
                              "{\"error\":\"division by zero\",\"sqlstate\":\"22012\"},"
                              "{\"rows\":[{\"c\":3}]}]",
                              0, NULL);
    ck_assert_msg(json_equal(got, want), "%s", res->body);
    json_decref(got);
    json_decref(want);
    sq_test_res_free(res);
}
END_TEST

/* 400 queries of 16 KiB each way in one pipeline: far more than the socket buffers hold, so
   the results must be read while the queries are still being sent. */
START_TEST(test_big_batch)
{
    start_db(NULL, NULL);
    sq_test_res *res = get("/bigbatch?n=400");
    expect_status(res, 200);
    ck_assert_str_eq(res->body, "{\"ok\":400}");
    sq_test_res_free(res);
}
END_TEST

/* Repeated SQL is prepared once per connection, and survives DEALLOCATE ALL. */
START_TEST(test_prepared_statements)
{
    start_db("pool_size = 1", NULL);
    sq_test_res *res = get("/prep");
    expect_status(res, 200);
    ck_assert_str_eq(res->body, "{\"prepared\":1,\"after\":\"42\"}");
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_statement_timeout)
{
    start_db("statement_timeout = 100ms", NULL);
    int64_t t0 = client_now_ms();
    sq_test_res *res = get("/sleep?s=2");
    expect_status(res, 500);
    expect_header_has(res, "X-Sqlstate", "57014");
    ck_assert_int_lt(client_now_ms() - t0, 1500);
    sq_test_res_free(res);
}
END_TEST

START_TEST(test_no_database)
{
    start(NULL, NULL);
    sq_test_res *res = get("/sleep?s=0");
    expect_status(res, 500);
    expect_header_has(res, "X-Error", "no [database] in the config");
    sq_test_res_free(res);
}
END_TEST

/* dsn = embedded: the host starts (here: borrows, since main() runs it) the cluster. */
START_TEST(test_embedded_dsn)
{
    char db[256];

    snprintf(db, sizeof(db), "dsn = embedded\nembedded_dir = %s\n", client_pg_dir());
    start(db, NULL);
    sq_test_res *res = get("/sleep?s=0");
    expect_status(res, 200);
    sq_test_res_free(res);
}
END_TEST

/* ---- Transactions ---- */

/* pool_size 1: every request gets the same connection, so it must come back clean. */
START_TEST(test_transactions)
{
    start_db("pool_size = 1", NULL);
    sq_test_res *res = post("/tx?id=1&mode=error");
    expect_status(res, 500);
    expect_header_has(res, "X-Sqlstate", "22012");
    sq_test_res_free(res);
    ck_assert_int_eq(items_count(1), 0);

    res = post("/tx?id=2&mode=abandon");
    expect_status(res, 200);
    sq_test_res_free(res);
    ck_assert_int_eq(items_count(2), 0);

    res = post("/tx?id=3&mode=rollback");
    expect_status(res, 200);
    sq_test_res_free(res);
    ck_assert_int_eq(items_count(3), 0);

    res = post("/tx?id=4&mode=commit");
    expect_status(res, 200);
    sq_test_res_free(res);
    ck_assert_int_eq(items_count(4), 1);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM items WHERE id IN (1, 2, 3, 4)"), 1);
}
END_TEST

/* A client that hangs up mid-transaction: the query is cancelled, the transaction rolled
   back, and the (only) connection serves the next request. */
START_TEST(test_disconnect_rolls_back)
{
    start_db("pool_size = 1", NULL);
    struct client_conn *c = client_open(sq_test_port(host));
    ck_assert_int_eq(client_send_str(c, "POST /tx?id=10&mode=sleep HTTP/1.1\r\nHost: t\r\n"
                                        "Content-Length: 0\r\n\r\n"),
                     0);
    for (int i = 0;
         i < 100 && client_pg_long("SELECT count(*) FROM pg_stat_activity WHERE "
                                   "query = 'SELECT pg_sleep(10)' AND state = 'active'") == 0;
         i++)
        client_sleep_ms(20);
    int64_t t0 = client_now_ms();
    client_close(c);
    ck_assert_int_eq(items_count(10), 0);
    ck_assert_int_lt(client_now_ms() - t0, 2000);
    ck_assert_int_eq(
        client_pg_long("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                       "'squall' AND (state <> 'idle' OR query LIKE '%pg_sleep(10)%' "
                       "AND state = 'active')"),
        0);
}
END_TEST

/* ---- Pool, timeouts, outages ---- */

/* Two connections both busy: a third request waits pool_wait_timeout, then gets 503. */
START_TEST(test_pool_exhausted)
{
    struct client_res r1, r2;

    start_db("pool_size = 2\npool_wait_timeout = 200ms", NULL);
    struct client_conn *a = send_get("/sleep?s=1"), *b = send_get("/sleep?s=1");
    for (int i = 0;
         i < 100 && client_pg_long("SELECT count(*) FROM pg_stat_activity WHERE "
                                   "query = 'SELECT pg_sleep($1)' AND state = 'active'") < 2;
         i++)
        client_sleep_ms(20);
    int64_t t0 = client_now_ms();
    sq_test_res *res = get("/sleep?s=0");
    int64_t ms = client_now_ms() - t0;
    expect_status(res, 503);
    expect_header_has(res, "X-Error", "pool exhausted");
    ck_assert_msg(ms >= 190 && ms < 700, "503 after %lld ms", (long long)ms);
    sq_test_res_free(res);
    ck_assert_int_eq(client_read_reply(a, &r1, false, T_REPLY), 0);
    ck_assert_int_eq(client_read_reply(b, &r2, false, T_REPLY), 0);
    ck_assert_int_eq(r1.status, 200);
    ck_assert_int_eq(r2.status, 200);
    client_res_free(&r1);
    client_res_free(&r2);
    client_close(a);
    client_close(b);
}
END_TEST

/* Many more concurrent requests than connections: they queue and all succeed. */
START_TEST(test_many_requests_few_connections)
{
    enum { N = 40 };
    struct client_conn *cs[N];
    int status[N];

    start_db("pool_size = 3", NULL);
    for (int i = 0; i < N; i++)
        cs[i] = client_open(sq_test_port(host));
    for (int round = 0; round < 3; round++) {
        size_t got =
            client_round(cs, N, "GET /sleep?s=0.01 HTTP/1.1\r\nHost: t\r\n\r\n", status, T_REPLY);
        ck_assert_uint_eq(got, N);
        for (int i = 0; i < N; i++)
            ck_assert_int_eq(status[i], 200);
    }
    for (int i = 0; i < N; i++)
        client_close(cs[i]);
    ck_assert_int_le(
        client_pg_long("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                       "'squall'"),
        3);
}
END_TEST

/* A server that accepts the connection and never answers: connect_timeout ends the attempt,
   and the next request fails at once (backoff) instead of waiting again. */
START_TEST(test_connect_timeout)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char db[256];

    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, len), 0);
    ck_assert_int_eq(listen(fd, 16), 0); /* never accepted: the kernel completes connects */
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(db, sizeof(db),
             "dsn = \"host=127.0.0.1 port=%d dbname=x user=x\"\n"
             "connect_timeout = 300ms\n",
             ntohs(sa.sin_port));
    start(db, NULL);
    int64_t t0 = client_now_ms();
    sq_test_res *res = get("/sleep?s=0");
    int64_t ms = client_now_ms() - t0;
    expect_status(res, 503);
    expect_header_has(res, "X-Error", "timed out");
    ck_assert_msg(ms >= 280 && ms < 1000, "503 after %lld ms", (long long)ms);
    sq_test_res_free(res);
    t0 = client_now_ms();
    res = get("/sleep?s=0");
    ms = client_now_ms() - t0;
    expect_status(res, 503);
    expect_header_has(res, "X-Error", "database unavailable");
    ck_assert_msg(ms < 100, "second 503 after %lld ms", (long long)ms);
    sq_test_res_free(res);
    close(fd);
}
END_TEST

/* New connections refused for a while (the database does not allow connections) while the
   pool's one connection is busy: the waiting request gets a new connection once they are
   allowed again, retried after the backoff, not only when the busy one comes back. */
START_TEST(test_backoff_then_connect)
{
    char admin_dsn[600];
    struct client_res res;

    snprintf(admin_dsn, sizeof(admin_dsn), "%s dbname=template1", dsn);
    PGconn *admin = PQconnectdb(admin_dsn);
    ck_assert_msg(PQstatus(admin) == CONNECTION_OK, "%s", PQerrorMessage(admin));
    start_db("pool_size = 2\npool_wait_timeout = 5s", NULL);
    struct client_conn *busy = send_get("/sleep?s=2");
    for (int i = 0;
         i < 100 && client_pg_long("SELECT count(*) FROM pg_stat_activity WHERE "
                                   "query = 'SELECT pg_sleep($1)' AND state = 'active'") < 1;
         i++)
        client_sleep_ms(10);
    PQclear(PQexec(admin, "ALTER DATABASE postgres ALLOW_CONNECTIONS false"));
    int64_t t0 = client_now_ms();
    struct client_conn *waiting = send_get("/sleep?s=0");
    client_sleep_ms(300);
    PQclear(PQexec(admin, "ALTER DATABASE postgres ALLOW_CONNECTIONS true"));
    PQfinish(admin);
    ck_assert_int_eq(client_read_reply(waiting, &res, false, T_REPLY), 0);
    int64_t ms = client_now_ms() - t0;
    ck_assert_int_eq(res.status, 200);
    ck_assert_msg(ms < 1500, "served after %lld ms: it waited for the busy connection",
                  (long long)ms);
    client_res_free(&res);
    ck_assert_int_eq(client_read_reply(busy, &res, false, T_REPLY), 0);
    ck_assert_int_eq(res.status, 200);
    client_res_free(&res);
    client_close(waiting);
    client_close(busy);
}
END_TEST

/* The route's 200 ms timeout: the client gets 408 at once and the query stops running on
   the server (PQcancel), leaving the connection usable. */
START_TEST(test_timeout_cancels_query)
{
    struct client_res res;

    start_db("pool_size = 1", NULL);
    struct client_conn *c = client_open(sq_test_port(host));
    int64_t t0 = client_now_ms();
    ck_assert_int_eq(client_roundtrip(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", &res, T_REPLY),
                     0);
    int64_t ms = client_now_ms() - t0;
    ck_assert_int_eq(res.status, 408);
    ck_assert_msg(ms >= 190 && ms < 400, "408 after %lld ms", (long long)ms);
    client_res_free(&res);
    long running = -1;
    for (int i = 0; i < 50; i++) {
        running = client_pg_long("SELECT count(*) FROM pg_stat_activity WHERE "
                                 "query = 'SELECT pg_sleep(10)' AND state = 'active'");
        if (running == 0)
            break;
        client_sleep_ms(20);
    }
    ck_assert_int_eq(running, 0);
    ck_assert_int_lt(client_now_ms() - t0, 1000);
    sq_test_res *r = get("/sleep?s=0");
    expect_status(r, 200);
    sq_test_res_free(r);
    client_close(c);
}
END_TEST

/* ---- Shared pipelines: queries of several requests on one connection ---- */

/* Waits until the server runs query (pg_stat_activity's text) n times at once. */
static void wait_running(const char *query, long n)
{
    char sql[512];

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE query = '%s' AND state = 'active'",
             query);
    for (int i = 0; i < 200 && client_pg_long(sql) < n; i++)
        client_sleep_ms(10);
    ck_assert_int_ge(client_pg_long(sql), n);
}

/* A host with one connection that has run /echo's statement quickly, the connection held
   by a 0.3 s sleep: the requests sent next queue behind it, and the first /echo to get the
   connection takes the others along in its pipeline. Returns the sleep's client. */
static struct client_conn *start_one_connection_busy(void)
{
    start_db("pool_size = 1", NULL);
    sq_test_res *res = get("/echo?v=0");
    expect_status(res, 200);
    sq_test_res_free(res);
    struct client_conn *hold = send_get("/sleep?s=0.3");
    wait_running("SELECT pg_sleep($1)", 1);
    return hold;
}

/* Reads c's reply, expects status (and, v given, {"v":"v"}), closes c. Returns ms since t0. */
static int64_t expect_echo(struct client_conn *c, int status, const char *v, int64_t t0)
{
    struct client_res res;

    ck_assert_int_eq(client_read_reply(c, &res, false, T_REPLY), 0);
    int64_t ms = client_now_ms() - t0;
    ck_assert_msg(res.status == status, "status %d, want %d: %s", res.status, status, res.body);
    if (v) {
        json_error_t e;
        json_t *j = json_loads(res.body, 0, &e);
        ck_assert_msg(j, "not JSON: %s", res.body);
        ck_assert_str_eq(json_string_value(json_object_get(j, "v")), v);
        json_decref(j);
    }
    client_res_free(&res);
    client_close(c);
    return ms;
}

static void expect_echo_now(const char *v)
{
    char path[64];

    snprintf(path, sizeof(path), "/echo?v=%s", v);
    expect_echo(send_get(path), 200, v, client_now_ms());
}

/* 24 requests queued on one connection share its pipelines; each gets its own result, and
   the failing ones (not an integer) their own error only. */
START_TEST(test_pipeline_own_results)
{
    enum { N = 24 };
    struct client_conn *cs[N], *hold = start_one_connection_busy();
    char path[64], v[16];

    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof(path), i % 4 == 3 ? "/echo?v=x%d" : "/echo?v=%d", i);
        cs[i] = send_get(path);
    }
    for (int i = 0; i < N; i++) {
        struct client_res res;
        if (i % 4 != 3) {
            snprintf(v, sizeof(v), "%d", i);
            expect_echo(cs[i], 200, v, 0);
            continue;
        }
        ck_assert_int_eq(client_read_reply(cs[i], &res, false, T_REPLY), 0);
        ck_assert_int_eq(res.status, 500);
        ck_assert_str_eq(client_res_header(&res, "X-Sqlstate"), "22P02");
        client_res_free(&res);
        client_close(cs[i]);
    }
    expect_echo(hold, 200, NULL, 0);
    expect_echo_now("99");
}
END_TEST

/* A request whose deadline passes while it waits behind a query that is slow this time
   gets its 408 at its deadline; the query ahead finishes, and the result of the one that
   left does not reach anyone else. */
START_TEST(test_pipeline_rider_deadline)
{
    struct client_conn *hold = start_one_connection_busy();
    struct client_conn *lead = send_get("/echo?v=1&s=1");

    client_sleep_ms(50);
    int64_t t0 = client_now_ms();
    int64_t ms = expect_echo(send_get("/echo_t?v=2"), 408, NULL, t0);
    ck_assert_msg(ms >= 280 && ms < 700, "408 after %lld ms", (long long)ms);
    expect_echo(hold, 200, NULL, 0);
    ms = expect_echo(lead, 200, "1", t0);
    ck_assert_msg(ms >= 900, "the slow query ended after %lld ms", (long long)ms);
    expect_echo_now("3");
}
END_TEST

/* The first request of a shared pipeline leaves at its deadline while its query is slow
   this time: the requests behind it still get their own results. */
START_TEST(test_pipeline_leader_deadline)
{
    struct client_conn *hold = start_one_connection_busy(), *cs[3];
    int64_t t0 = client_now_ms();
    struct client_conn *lead = send_get("/echo_t?v=1&s=1");
    char path[64], v[16];

    client_sleep_ms(50);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/echo?v=%d", 10 + i);
        cs[i] = send_get(path);
    }
    int64_t ms = expect_echo(lead, 408, NULL, t0);
    ck_assert_msg(ms >= 280 && ms < 700, "408 after %lld ms", (long long)ms);
    for (int i = 0; i < 3; i++) {
        snprintf(v, sizeof(v), "%d", 10 + i);
        expect_echo(cs[i], 200, v, 0);
    }
    expect_echo(hold, 200, NULL, 0);
    expect_echo_now("4");
}
END_TEST

/* The connection of a shared pipeline is lost: every request in it fails fast with 503,
   and the next gets a new connection. */
START_TEST(test_pipeline_connection_lost)
{
    struct client_conn *hold = start_one_connection_busy(), *cs[4];
    char path[64];

    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/echo?v=%d&s=%d", i, i == 0 ? 2 : 0);
        cs[i] = send_get(path);
        client_sleep_ms(i == 0 ? 50 : 0);
    }
    expect_echo(hold, 200, NULL, 0);
    wait_running("SELECT $1::int AS v, pg_sleep($2)", 1);
    int64_t t0 = client_now_ms();
    ck_assert_int_ge(terminate_hosts_sessions(), 1);
    for (int i = 0; i < 4; i++) {
        int64_t ms = expect_echo(cs[i], 503, NULL, t0);
        ck_assert_msg(ms < 1000, "503 after %lld ms", (long long)ms);
    }
    expect_echo_now("5");
}
END_TEST

/* Every server session killed under load: each request succeeds or fails fast with 503,
   none hangs, and the pool serves again with new connections. */
START_TEST(test_sessions_killed_under_load)
{
    enum { N = 12 };
    struct client_conn *cs[N];
    int status[N] = {0}, ok = 0, unavailable = 0;

    start_db("pool_size = 4", NULL);
    for (int i = 0; i < N; i++)
        cs[i] = send_get("/sleep?s=0.5");
    for (int i = 0;
         i < 100 && client_pg_long("SELECT count(*) FROM pg_stat_activity WHERE "
                                   "query = 'SELECT pg_sleep($1)' AND state = 'active'") < 4;
         i++)
        client_sleep_ms(10);
    ck_assert_int_ge(terminate_hosts_sessions(), 4);
    for (int i = 0; i < N; i++) {
        struct client_res res;
        ck_assert_msg(client_read_reply(cs[i], &res, false, T_REPLY) == 0, "request %d hangs", i);
        status[i] = res.status;
        client_res_free(&res);
        client_close(cs[i]);
        ok += status[i] == 200;
        unavailable += status[i] == 503;
    }
    ck_assert_msg(ok + unavailable == N, "statuses other than 200 and 503");
    ck_assert_int_ge(unavailable, 4); /* the four that were running */
    for (int i = 0; i < 8; i++) {
        sq_test_res *res = get("/sleep?s=0");
        expect_status(res, 200);
        sq_test_res_free(res);
    }
}
END_TEST

/* LISTEN/NOTIFY delivery, and again after the LISTEN connection was killed. */
START_TEST(test_listen_notify)
{
    start_db(NULL, "listen = squall_test");
    const char *payloads[] = {"first", "second"};
    for (int round = 0; round < 2; round++) {
        char path[128], want[64];
        bool seen = false;
        if (round == 1)
            ck_assert_int_ge(terminate_hosts_sessions(), 1);
        snprintf(want, sizeof(want), "\"squall_test:%s\"", payloads[round]);
        for (int i = 0; i < 100 && !seen; i++) {
            snprintf(path, sizeof(path), "/notify?ch=squall_test&payload=%s", payloads[round]);
            sq_test_res *res = get(path);
            ck_assert_msg(res->status == 200 || (round == 1 && res->status == 503), "%d %s",
                          res->status, res->headers);
            sq_test_res_free(res);
            client_sleep_ms(50);
            res = get("/notes");
            seen = strstr(res->body, want) != NULL;
            sq_test_res_free(res);
        }
        ck_assert_msg(seen, "no notification %s", want);
    }
    sq_test_res *res = get("/notify?ch=elsewhere&payload=x");
    expect_status(res, 200);
    sq_test_res_free(res);
    client_sleep_ms(100);
    res = get("/notes");
    ck_assert_msg(!strstr(res->body, "elsewhere"), "%s", res->body);
    sq_test_res_free(res);
}
END_TEST

/* The server down: requests fail at once with 503; once it is back, they succeed again.
   Runs last: it stops the shared cluster (and starts it again). */
START_TEST(test_server_down_and_back)
{
    start_db("pool_size = 2", NULL);
    sq_test_res *res = get("/sleep?s=0");
    expect_status(res, 200);
    sq_test_res_free(res);
    pg_ctl("stop");
    for (int i = 0; i < 5; i++) {
        int64_t t0 = client_now_ms();
        res = get("/sleep?s=0");
        int64_t ms = client_now_ms() - t0;
        expect_status(res, 503);
        ck_assert_msg(ms < 500, "503 after %lld ms", (long long)ms);
        if (i == 4)
            expect_header_has(res, "X-Error", "database unavailable");
        sq_test_res_free(res);
    }
    pg_ctl("start");
    int64_t t0 = client_now_ms();
    int status = 0;
    while (status != 200 && client_now_ms() - t0 < 5000) {
        res = get("/sleep?s=0");
        status = res->status;
        ck_assert_msg(status == 200 || status == 503, "status %d", status);
        sq_test_res_free(res);
        if (status != 200)
            client_sleep_ms(50);
    }
    ck_assert_int_eq(status, 200);
}
END_TEST

static Suite *pg_suite(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("pg");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_types_to_json);
    tcase_add_test(tc, test_injection_stays_data);
    tcase_add_test(tc, test_unique_violation_is_23505);
    tcase_add_test(tc, test_batch_one_failing);
    tcase_add_test(tc, test_big_batch);
    tcase_add_test(tc, test_prepared_statements);
    tcase_add_test(tc, test_statement_timeout);
    tcase_add_test(tc, test_no_database);
    tcase_add_test(tc, test_embedded_dsn);
    tcase_add_test(tc, test_transactions);
    tcase_add_test(tc, test_disconnect_rolls_back);
    tcase_add_test(tc, test_pool_exhausted);
    tcase_add_test(tc, test_many_requests_few_connections);
    tcase_add_test(tc, test_connect_timeout);
    tcase_add_test(tc, test_backoff_then_connect);
    tcase_add_test(tc, test_timeout_cancels_query);
    tcase_add_test(tc, test_sessions_killed_under_load);
    tcase_add_test(tc, test_pipeline_own_results);
    tcase_add_test(tc, test_pipeline_rider_deadline);
    tcase_add_test(tc, test_pipeline_leader_deadline);
    tcase_add_test(tc, test_pipeline_connection_lost);
    tcase_add_test(tc, test_listen_notify);
    tcase_add_test(tc, test_server_down_and_back);
    suite_add_tcase(s, tc);
    return s;
}

/* The shared cluster and its tables. */
static int cluster_start(void)
{
    if (!(dsn = client_pg_start("check-pg")))
        return -1;
    PGconn *c = PQconnectdb(dsn);
    PGresult *r = PQexec(c, "CREATE TABLE users (id serial PRIMARY KEY, name text UNIQUE NOT "
                            "NULL); CREATE TABLE items (id int PRIMARY KEY)");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "check_pg: schema: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

int main(void)
{
    client_log_quiet();
    int rc = cluster_start() == 0 ? check_run(pg_suite()) : EXIT_FAILURE;
    client_pg_stop();
    return rc;
}
