/*
 * check_bench.c - plugins/bench (the TechEmpower database tests) through real requests,
 * against a real PostgreSQL: one embedded cluster in a temporary directory, started by
 * main() and borrowed by every test's host through `dsn = embedded` with its embedded_dir
 * (as plugins/bench/bench.conf has it). The plugin's init seeds the tables on the first
 * start; the test checks the rows itself with a blocking libpq connection of its own.
 *
 * $SQ_BUILD (default "build") says where plugins/bench.so was built.
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "../check_main.h"
#include "client.h"
#include "squall_test.h"

#define BENCH_LOCK "6265" /* the advisory lock key bench.c takes to create its tables */
#define NCONC 16          /* concurrent requests */

/* TechEmpower's fortunes page: the 12 rows and the one added at request time, sorted. */
#define FORTUNES_HTML                                                                              \
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"                       \
    "<tr><th>id</th><th>message</th></tr>"                                                         \
    "<tr><td>11</td><td>&lt;script&gt;alert(&quot;This should not be displayed in a "              \
    "browser alert box.&quot;);&lt;/script&gt;</td></tr>"                                          \
    "<tr><td>4</td><td>A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, "             \
    "1</td></tr>"                                                                                  \
    "<tr><td>5</td><td>A computer program does what you tell it to do, not what you want "         \
    "it to do.</td></tr>"                                                                          \
    "<tr><td>2</td><td>A computer scientist is someone who fixes things that "                     \
    "aren&#x27;t broken.</td></tr>"                                                                \
    "<tr><td>8</td><td>A list is only as strong as its weakest link. \xe2\x80\x94 Donald "         \
    "Knuth</td></tr>"                                                                              \
    "<tr><td>0</td><td>Additional fortune added at request time.</td></tr>"                        \
    "<tr><td>3</td><td>After enough decimal places, nobody gives a damn.</td></tr>"                \
    "<tr><td>7</td><td>Any program that runs right is obsolete.</td></tr>"                         \
    "<tr><td>10</td><td>Computers make very fast, very accurate mistakes.</td></tr>"               \
    "<tr><td>6</td><td>Emacs is a nice operating system, but I prefer UNIX. \xe2\x80\x94 "         \
    "Tom Christaensen</td></tr>"                                                                   \
    "<tr><td>9</td><td>Feature: A bug with seniority.</td></tr>"                                   \
    "<tr><td>1</td><td>fortune: No such file or directory</td></tr>"                               \
    "<tr><td>12</td><td>\xe3\x83\x95\xe3\x83\xac\xe3\x83\xbc\xe3\x83\xa0\xe3\x83\xaf\xe3"          \
    "\x83\xbc\xe3\x82\xaf\xe3\x81\xae\xe3\x83\x99\xe3\x83\xb3\xe3\x83\x81\xe3\x83\x9e\xe3"         \
    "\x83\xbc\xe3\x82\xaf</td></tr>"                                                               \
    "</table></body></html>"

static sq_test_host *host;

/* ---- Hosts and requests ---- */

static sq_test_host *start_bench(void)
{
    char so[PATH_MAX], conf[PATH_MAX + 512];

    ck_assert_msg(client_build_path("plugins/bench.so", so, sizeof(so)), "path too long");
    snprintf(conf, sizeof(conf),
             "[database]\ndsn = embedded\nembedded_dir = %s\npool_size = 4\n"
             "[plugin bench]\npath = %s\n",
             client_pg_dir(), so);
    sq_test_host *h = sq_test_start(conf);
    ck_assert_msg(h, "sq_test_start: %s", sq_test_error());
    return h;
}

static void setup(void)
{
    host = start_bench();
}

static void teardown(void)
{
    sq_test_stop(host);
    host = NULL;
}

/* GET path: checks the status and Content-Type; returns the reply (free it). */
static sq_test_res *get_ok(const char *path, const char *type)
{
    sq_test_res *res = client_req(host, "GET", path, NULL, NULL, 0);

    ck_assert_msg(res->status == 200, "%s: %d %s", path, res->status, res->body);
    client_assert_header(res, "Content-Type", type);
    return res;
}

/* GET path as JSON (the caller decrefs it). */
static json_t *get_json(const char *path)
{
    sq_test_res *res = get_ok(path, "application/json");
    json_t *j = json_loads(res->body, 0, NULL);

    ck_assert_msg(j, "%s: not JSON: %s", path, res->body);
    sq_test_res_free(res);
    return j;
}

/* Checks that row is exactly {"id":1..10000,"randomNumber":1..10000}; returns its id. */
static long check_row(const json_t *row)
{
    const json_t *id = json_object_get(row, "id"), *num = json_object_get(row, "randomNumber");

    ck_assert_msg(json_is_object(row) && json_object_size(row) == 2, "not a world row");
    ck_assert_msg(json_is_integer(id) && json_is_integer(num), "id and randomNumber not integers");
    ck_assert_int_ge(json_integer_value(id), 1);
    ck_assert_int_le(json_integer_value(id), 10000);
    ck_assert_int_ge(json_integer_value(num), 1);
    ck_assert_int_le(json_integer_value(num), 10000);
    return (long)json_integer_value(id);
}

/* GET path, which must answer a list of n world rows; returns it (decref it). */
static json_t *get_rows(const char *path, size_t n)
{
    json_t *rows = get_json(path);

    ck_assert_msg(json_is_array(rows), "%s: not a list", path);
    ck_assert_msg(json_array_size(rows) == n, "%s: %zu rows, want %zu", path, json_array_size(rows),
                  n);
    for (size_t i = 0; i < n; i++)
        check_row(json_array_get(rows, i));
    return rows;
}

/* ---- Tests ---- */

/* init seeded world (10000 rows, numbers in 1..10000) and fortune (12 rows); a second host
   on the same database seeds nothing more. */
START_TEST(test_seeded)
{
    json_decref(get_json("/db")); /* the schema is there once a request has been served */
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM world"), 10000);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM world WHERE id BETWEEN 1 AND 10000 AND "
                                    "randomnumber BETWEEN 1 AND 10000"),
                     10000);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM fortune"), 12);
    ck_assert_int_eq(client_pg_long("SELECT (count(DISTINCT randomnumber) > 5000)::int FROM world"),
                     1);
    sq_test_host *second = start_bench();
    sq_test_res *res = client_req(second, "GET", "/fortunes", NULL, NULL, 0);
    ck_assert_int_eq(res->status, 200);
    sq_test_res_free(res);
    sq_test_stop(second);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM world"), 10000);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM fortune"), 12);
}
END_TEST

START_TEST(test_plaintext_json)
{
    sq_test_res *res = get_ok("/plaintext", "text/plain");
    ck_assert_str_eq(res->body, "Hello, World!");
    sq_test_res_free(res);
    res = get_ok("/json", "application/json");
    ck_assert_str_eq(res->body, "{\"message\":\"Hello, World!\"}");
    sq_test_res_free(res);
}
END_TEST

/* One row, as the database has it; ids spread over the table. */
START_TEST(test_db)
{
    long ids[60];
    int distinct = 0;

    for (int i = 0; i < 60; i++) {
        sq_test_res *res = get_ok("/db", "application/json");
        json_t *row = json_loads(res->body, 0, NULL);
        ck_assert_msg(row, "not JSON: %s", res->body);
        ids[i] = check_row(row);
        ck_assert_msg(strncmp(res->body, "{\"id\":", 6) == 0, "%s", res->body);
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT randomnumber FROM world WHERE id = %ld", ids[i]);
        ck_assert_int_eq(client_pg_long(sql),
                         json_integer_value(json_object_get(row, "randomNumber")));
        json_decref(row);
        sq_test_res_free(res);
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= ids[k] == ids[i];
        distinct += !seen;
    }
    ck_assert_int_ge(distinct, 55); /* 60 draws of 10000: a repeat or two at most */
}
END_TEST

/* queries=N is clamped to 1..500; missing or not an integer is 1. */
START_TEST(test_queries_clamped)
{
    static const struct {
        const char *path;
        size_t n;
    } cases[] = {
        {"/queries", 1},
        {"/queries?queries=", 1},
        {"/queries?queries=0", 1},
        {"/queries?queries=-3", 1},
        {"/queries?queries=abc", 1},
        {"/queries?queries=5x", 1},
        {"/queries?queries=1", 1},
        {"/queries?queries=20", 20},
        {"/queries?queries=500", 500},
        {"/queries?queries=501", 500},
        {"/queries?queries=99999999999999999999", 500},
        {"/queries?other=7&queries=7", 7},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        json_decref(get_rows(cases[i].path, cases[i].n));
}
END_TEST

/* The exact page: 13 rows sorted by message, the script escaped, the Japanese intact. */
START_TEST(test_fortunes)
{
    for (int i = 0; i < 2; i++) { /* the added fortune is not stored */
        sq_test_res *res = get_ok("/fortunes", "text/html; charset=utf-8");
        ck_assert_str_eq(res->body, FORTUNES_HTML);
        ck_assert_uint_eq(res->body_len, strlen(FORTUNES_HTML));
        sq_test_res_free(res);
    }
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM fortune"), 12);
}
END_TEST

/* The rows /updates answers are the rows the database has afterwards; ids are distinct. */
START_TEST(test_updates_persist)
{
    static const struct {
        const char *path;
        size_t n;
    } cases[] = {
        {"/updates", 1},
        {"/updates?queries=0", 1},
        {"/updates?queries=abc", 1},
        {"/updates?queries=20", 20},
        {"/updates?queries=501", 500},
    };
    PGconn *c = client_pg_connect(NULL);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *rows = get_rows(cases[i].path, cases[i].n);
        for (size_t k = 0; k < cases[i].n; k++) {
            json_t *row = json_array_get(rows, k);
            long id = (long)json_integer_value(json_object_get(row, "id"));
            char sql[128];
            snprintf(sql, sizeof(sql), "SELECT randomnumber FROM world WHERE id = %ld", id);
            char *v = client_pg_value(c, sql);
            ck_assert_int_eq(atol(v), json_integer_value(json_object_get(row, "randomNumber")));
            free(v);
            for (size_t j = 0; j < k; j++)
                ck_assert_int_ne(
                    id, json_integer_value(json_object_get(json_array_get(rows, j), "id")));
        }
        json_decref(rows);
    }
    PQfinish(c);
}
END_TEST

/* /updates at once on many connections write overlapping rows without a deadlock (the rows
   are locked in id order), and every reply is 200. */
START_TEST(test_updates_concurrent)
{
    struct client_conn *cs[NCONC];
    int status[NCONC];

    for (int i = 0; i < NCONC; i++) {
        cs[i] = client_open(sq_test_port(host));
        ck_assert_ptr_nonnull(cs[i]);
    }
    for (int round = 0; round < 5; round++) {
        size_t got = client_round(cs, NCONC, "GET /updates?queries=500 HTTP/1.1\r\nHost: t\r\n\r\n",
                                  status, 10000);
        ck_assert_uint_eq(got, NCONC);
        for (int i = 0; i < NCONC; i++)
            ck_assert_int_eq(status[i], 200);
    }
    for (int i = 0; i < NCONC; i++)
        client_close(cs[i]);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM world"), 10000);
    ck_assert_int_eq(client_pg_long("SELECT deadlocks FROM pg_stat_database "
                                    "WHERE datname = current_database()"),
                     0);
}
END_TEST

/* Requests that arrive while init's task is still creating the tables wait for it instead of
   failing: the test holds the advisory lock the task needs. Runs last: it drops the tables
   (they are made again). */
START_TEST(test_wait_for_schema)
{
    const char *paths[] = {"/db", "/queries?queries=3", "/fortunes", "/updates?queries=2"};
    struct client_conn *cs[4];
    struct client_res res[4];
    PGconn *lock = client_pg_connect(NULL);

    sq_test_stop(host);
    host = NULL;
    free(client_pg_value(lock, "DROP TABLE IF EXISTS world, fortune"));
    free(client_pg_value(lock, "SELECT pg_advisory_lock(" BENCH_LOCK ")"));
    host = start_bench();
    for (int i = 0; i < 4; i++) {
        char req[128];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", paths[i]);
        cs[i] = client_open(sq_test_port(host));
        ck_assert_ptr_nonnull(cs[i]);
        ck_assert_int_eq(client_send_str(cs[i], req), 0);
    }
    client_sleep_ms(300);
    for (int i = 0; i < 4; i++) /* nothing has come back: they wait */
        ck_assert_int_eq(client_fill(cs[i], 0), -1);
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM pg_tables WHERE tablename = 'world'"), 0);
    free(client_pg_value(lock, "SELECT pg_advisory_unlock(" BENCH_LOCK ")"));
    PQfinish(lock);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(client_read_reply(cs[i], &res[i], false, T_MS) == 0, "no reply on %d", i);
        ck_assert_msg(res[i].status == 200, "%s: %d %s", paths[i], res[i].status, res[i].body);
        client_res_free(&res[i]);
        client_close(cs[i]);
    }
    ck_assert_int_eq(client_pg_long("SELECT count(*) FROM world"), 10000);
}
END_TEST

static Suite *bench_suite(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");

    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_seeded);
    tcase_add_test(tc, test_plaintext_json);
    tcase_add_test(tc, test_db);
    tcase_add_test(tc, test_queries_clamped);
    tcase_add_test(tc, test_fortunes);
    tcase_add_test(tc, test_updates_persist);
    tcase_add_test(tc, test_updates_concurrent);
    tcase_add_test(tc, test_wait_for_schema);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    client_log_quiet();
    int rc = client_pg_start("check-bench") ? check_run(bench_suite()) : EXIT_FAILURE;
    client_pg_stop();
    return rc;
}
