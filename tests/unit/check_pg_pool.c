/*
 * check_pg_pool.c - framework/pg.c and its companions without a server: the errors the SDK gives
 * before any query reaches PostgreSQL (no [database], bad arguments, misuse), the pool's
 * fail-fast behaviour when the database cannot be reached, and the result accessors' and
 * coroutine hooks' edges. Everything that needs a real server is in
 * tests/integration/check_pg.c.
 *
 * Each test runs a coroutine with sq_run_sync; a pool, when the test needs one, is attached
 * to that fresh loop and freed before the coroutine returns.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../check_main.h"
#include "async.h"
#include "config.h"
#include "coro_expect.h"
#include "pg.h"
#include "squall.h"

#define EXPECT_STR_HAS(s, sub)                                                                     \
    do {                                                                                           \
        const char *s_ = (s);                                                                      \
        if (!s_ || !strstr(s_, sub)) {                                                             \
            if (!failure[0])                                                                       \
                snprintf(failure, sizeof failure, "line %d: \"%s\" does not contain \"%s\"",       \
                         __LINE__, s_ ? s_ : "(null)", sub);                                       \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* A pool on the running loop for dsn (short timeouts). */
static struct pg_pool *pool_on_loop(const char *dsn)
{
    struct config_database db = {
        .pool_size = 2, .connect_timeout_ms = 500, .pool_wait_timeout_ms = 500};
    char err[256];

    return pg_pool_new(loop_current, &db, dsn, err, sizeof(err));
}

static int no_database(void *arg)
{
    EXPECT(sq_pg_query("SELECT 1") == NULL);
    EXPECT_STR_HAS(sq_errmsg(), "no [database] in the config");
    EXPECT_EQ(sq_pg_begin(), SQ_EINVAL);
    EXPECT_EQ(sq_pg_notify("ch", "x"), SQ_EINVAL);
    sq_pg_batch *b = sq_pg_batch_new();
    EXPECT(b != NULL);
    EXPECT_EQ(sq_pg_batch_query(b, "SELECT 1"), 0);
    EXPECT_EQ(sq_pg_batch_run(b), SQ_EINVAL);
    EXPECT_STR_HAS(sq_errmsg(), "no [database] in the config");
    EXPECT_EQ(coro_current()->unavailable, 0); /* a configuration error, not an outage */
    return 0;
}

START_TEST(test_no_database)
{
    run(no_database, NULL);
}
END_TEST

static int bad_dsn(void *arg)
{
    struct config_database db = {.pool_size = 1};
    char err[256] = "";

    EXPECT(pg_pool_new(loop_current, &db, "host=x nosuchkey=1", err, sizeof(err)) == NULL);
    EXPECT_STR_HAS(err, "bad dsn");
    EXPECT_STR_HAS(err, "nosuchkey");
    EXPECT(loop_current->pg == NULL);
    return 0;
}

START_TEST(test_bad_dsn)
{
    run(bad_dsn, NULL);
}
END_TEST

/* A database that is not there: the first query fails as soon as its connect does, the
   next ones at once (backoff), all marked unavailable; nothing waits pool_wait_timeout. */
static int unreachable(void *arg)
{
    struct pg_pool *p = pool_on_loop("host=/nonexistent/dir port=5432 dbname=x");
    int rc = 0;

    EXPECT(p != NULL);
    for (int i = 0; i < 3 && rc == 0; i++) {
        double t0 = now_ms();
        coro_current()->unavailable = false;
        if (sq_pg_query("SELECT $1::int", "1") != NULL || now_ms() - t0 > 100 ||
            !coro_current()->unavailable || !strstr(sq_errmsg(), "database unavailable") ||
            strcmp(sq_pg_sqlstate(), "") != 0)
            rc = -1;
        if (i > 0 && !strstr(sq_errmsg(), "next attempt in"))
            rc = -1;
    }
    if (rc)
        snprintf(failure, sizeof(failure), "unexpected: %s", sq_errmsg());
    int begin = sq_pg_begin();
    pg_pool_free(p);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(begin, SQ_EIO);
    EXPECT(loop_current->pg == NULL);
    return 0;
}

START_TEST(test_unreachable_fails_fast)
{
    run(unreachable, NULL);
}
END_TEST

/* Misuse answered with SQ_EINVAL and a message, before anything is sent. */
static int misuse(void *arg)
{
    struct pg_pool *p = pool_on_loop("host=/nonexistent/dir dbname=x");
    const char *params[1] = {"x"};
    int rc = 0;

    rc |= sq_pg_exec(NULL, NULL, 0) != NULL || !strstr(sq_errmsg(), "sql is NULL");
    rc |= sq_pg_exec("SELECT $1", NULL, 1) != NULL || !strstr(sq_errmsg(), "params is NULL");
    rc |= sq_pg_exec("SELECT $1", params, -1) != NULL || !strstr(sq_errmsg(), "bad nparams");
    rc |= sq_pg_exec("SELECT $1", params, 70000) != NULL;
    rc |= sq_pg_commit() != SQ_EINVAL || !strstr(sq_errmsg(), "no transaction is open");
    rc |= sq_pg_rollback() != SQ_EINVAL;
    sq_pg_batch *b = sq_pg_batch_new();
    rc |= sq_pg_batch_add(b, NULL, NULL, 0) != SQ_EINVAL;
    rc |= sq_pg_batch_result(b, 0) != NULL || !strstr(sq_errmsg(), "has not run");
    rc |= sq_pg_batch_run(b) != 0; /* empty: runs without a connection */
    rc |= sq_pg_batch_run(b) != SQ_EINVAL || !strstr(sq_errmsg(), "has run already");
    rc |= sq_pg_batch_query(b, "SELECT 1") != SQ_EINVAL;
    rc |= sq_pg_listen(NULL, "ch", NULL, NULL) != SQ_EINVAL;
    rc |= sq_pg_notify(NULL, "x") != SQ_EINVAL;
    pg_pool_free(p);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(coro_current()->unavailable, 0);
    return 0;
}

START_TEST(test_misuse)
{
    run(misuse, NULL);
}
END_TEST

/* Outside a coroutine every await refuses at once. */
START_TEST(test_outside_coroutine)
{
    ck_assert_ptr_null(sq_pg_query("SELECT 1"));
    ck_assert_int_eq(sq_pg_begin(), SQ_EINVAL);
    ck_assert_int_eq(sq_pg_rollback(), SQ_EINVAL);
    ck_assert_ptr_null(sq_pg_batch_new());
}
END_TEST

START_TEST(test_result_accessors_null)
{
    ck_assert_int_eq(sq_pg_ntuples(NULL), 0);
    ck_assert_int_eq(sq_pg_nfields(NULL), 0);
    ck_assert_ptr_null(sq_pg_fname(NULL, 0));
    ck_assert_ptr_null(sq_pg_value(NULL, 0, 0));
    ck_assert_int_eq(sq_pg_isnull(NULL, 0, 0), 1);
    ck_assert_str_eq(sq_pg_cmd_tuples(NULL), "");
    ck_assert_ptr_null(sq_pg_row_json(NULL, 0));
    json_t *rows = sq_pg_rows_json(NULL);
    ck_assert_uint_eq(json_array_size(rows), 0);
    json_decref(rows);
}
END_TEST

/* coro_at_end cleanups run newest first, in the coroutine, once fn has returned; one taken
   back does not run; arena_defer runs when the arena goes. */
static char order[8]; /* zeroed before each run: a letter per call */

/* "c" when it runs in a coroutine, "l" in the loop's context. */
static void note(struct coro_cleanup *c)
{
    order[strlen(order)] = coro_current() ? 'c' : 'l';
}

struct hooks {
    struct coro_cleanup a, b, c;
};

static void deferred(void *arg)
{
    order[strlen(order)] = 'd';
}

static int register_hooks(void *arg)
{
    struct hooks *h = arg;

    h->a.fn = h->b.fn = h->c.fn = note;
    coro_at_end(coro_current(), &h->a);
    coro_at_end(coro_current(), &h->b);
    coro_at_end(coro_current(), &h->c);
    coro_at_end_remove(coro_current(), &h->b);
    EXPECT_EQ(arena_defer(coro_arena(), deferred, NULL), 0);
    return 0;
}

START_TEST(test_coro_end_hooks)
{
    struct hooks h;

    memset(order, 0, sizeof(order));
    run(register_hooks, &h);
    ck_assert_str_eq(order, "ccd"); /* two cleanups in the coroutine, then the arena's */
}
END_TEST

static Suite *pg_suite(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("pg");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_no_database);
    tcase_add_test(tc, test_bad_dsn);
    tcase_add_test(tc, test_unreachable_fails_fast);
    tcase_add_test(tc, test_misuse);
    tcase_add_test(tc, test_outside_coroutine);
    tcase_add_test(tc, test_result_accessors_null);
    tcase_add_test(tc, test_coro_end_hooks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(pg_suite());
}
