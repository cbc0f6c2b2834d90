/*
 * pgplug - the sq_pg_* SDK through real requests, for tests/integration/check_pg.c.
 *
 * A failing call is answered by returning -1 with the error in the reply's headers
 * (X-Error: sq_errmsg(), X-Sqlstate: sq_pg_sqlstate()): the host then sends 503 when the
 * database was unavailable (pool exhausted, down, connection lost) and 500 otherwise.
 *
 *   GET  /sleep?s=S           SELECT pg_sleep(S) -> {"slept":"S"}
 *   GET  /slow                SELECT pg_sleep(10) under a 200 ms route timeout
 *   GET  /types               one row of many types -> sq_pg_rows_json
 *   POST /users?name=N        INSERT a user -> 201 {"id":..}; 409 on a unique violation
 *   GET  /users?name=N        the users called N -> sq_pg_rows_json
 *   GET  /batch               three pipelined queries, the second failing -> per query
 *                             {"rows":[..]} or {"error":..,"sqlstate":..}
 *   GET  /bigbatch?n=N        N queries of 16 KiB each way in one pipeline -> {"ok":N} when
 *                             every result came back intact
 *   POST /tx?id=I&mode=M      BEGIN; INSERT item I; then M: commit, rollback, error (a failing
 *                             query, no rollback), abandon (replies without commit), sleep
 *                             (pg_sleep(10): the client hangs up meanwhile)
 *   GET  /items?id=I          {"count":n} items with id I
 *   GET  /prep                prepared-statement cache and its recovery after DEALLOCATE ALL
 *   GET  /notify?ch=C&payload=P  sq_pg_notify
 *   GET  /notes               ["channel:payload", ...] received since init
 *   GET  /echo?v=V&s=S        SELECT $1::int, pg_sleep(S): one statement, quick or slow as
 *                             asked -> {"v":V}; a V that is no integer fails (22P02)
 *   GET  /echo_t?v=V&s=S      the same under a 300 ms route timeout
 *
 * Config keys: listen = CHANNEL (sq_pg_listen on it in init).
 */
#include <squall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int db_fail(sq_req *r)
{
    sq_reply_header(r, "X-Error", sq_errmsg());
    sq_reply_header(r, "X-Sqlstate", sq_pg_sqlstate());
    return -1;
}

static int sleep_s(sq_req *r)
{
    const char *s = sq_query(r, "s");

    if (!s)
        return 400;
    if (!sq_pg_query("SELECT pg_sleep($1)", s))
        return db_fail(r);
    return sq_reply_json(r, 200, json_pack("{s:s}", "slept", s));
}

static int slow(sq_req *r)
{
    if (!sq_pg_query("SELECT pg_sleep(10)"))
        return db_fail(r);
    return sq_reply_json(r, 200, json_pack("{s:b}", "slept", 1));
}

static int types(sq_req *r)
{
    sq_pg_result *res = sq_pg_query(
        "SELECT 42::int4 AS i4, 9000000000::int8 AS i8, (-7)::int2 AS i2, 26::oid AS o, "
        "1.5::float8 AS f8, 0.25::float4 AS f4, 'NaN'::float8 AS fnan, "
        "'-Infinity'::float8 AS fninf, 12345678901234567890.123450::numeric AS num, "
        "true AS yes, false AS no, '{\"a\": [1, 2, {\"b\": null}], \"c\": \"d\"}'::jsonb AS jb, "
        "'[1, \"x\", true]'::json AS j, NULL::int AS nul, NULL::text AS nultext, "
        "$1::text AS txt, '2026-01-02'::date AS day",
        "h\xc3\xa9llo \"quoted\"");

    if (!res)
        return db_fail(r);
    return sq_reply_json(r, 200, sq_pg_rows_json(res));
}

static int user_add(sq_req *r)
{
    const char *name = sq_query(r, "name");
    sq_pg_result *res;

    if (!name)
        return 400;
    res = sq_pg_query("INSERT INTO users (name) VALUES ($1) RETURNING id", name);
    if (!res && strcmp(sq_pg_sqlstate(), "23505") == 0)
        return sq_reply_error(r, 409, "%s", sq_errmsg());
    if (!res)
        return db_fail(r);
    return sq_reply_json(r, 201, sq_pg_row_json(res, 0));
}

static int user_get(sq_req *r)
{
    const char *name = sq_query(r, "name");
    sq_pg_result *res;

    if (!name)
        return 400;
    res = sq_pg_query("SELECT id, name FROM users WHERE name = $1", name);
    if (!res)
        return db_fail(r);
    return sq_reply_json(r, 200, sq_pg_rows_json(res));
}

static int batch(sq_req *r)
{
    sq_pg_batch *b = sq_pg_batch_new();
    json_t *out = json_array();

    if (!b || sq_pg_batch_query(b, "SELECT 1 AS a") != 0 ||
        sq_pg_batch_query(b, "SELECT 1 / $1::int AS b", "0") != 1 ||
        sq_pg_batch_query(b, "SELECT $1::int + 2 AS c", "1") != 2 || sq_pg_batch_run(b) < 0) {
        json_decref(out);
        return db_fail(r);
    }
    for (int i = 0; i < 3; i++) {
        sq_pg_result *res = sq_pg_batch_result(b, i);
        if (res)
            json_array_append_new(out, json_pack("{s:o}", "rows", sq_pg_rows_json(res)));
        else
            json_array_append_new(
                out, json_pack("{s:s,s:s}", "error", sq_errmsg(), "sqlstate", sq_pg_sqlstate()));
    }
    return sq_reply_json(r, 200, out);
}

static int bigbatch(sq_req *r)
{
    const char *n_arg = sq_query(r, "n");
    int n = n_arg ? atoi(n_arg) : 0, ok = 0;
    char *big = sq_alloc(r, 16384 + 1);
    sq_pg_batch *b = sq_pg_batch_new();

    if (n <= 0 || !big || !b)
        return 400;
    memset(big, 'x', 16384);
    big[16384] = '\0';
    for (int i = 0; i < n; i++) {
        char idx[16];
        snprintf(idx, sizeof(idx), "%d", i);
        if (sq_pg_batch_query(b, "SELECT $1::int AS i, $2::text AS v", idx, big) != i)
            return db_fail(r);
    }
    if (sq_pg_batch_run(b) < 0)
        return db_fail(r);
    for (int i = 0; i < n; i++) {
        sq_pg_result *res = sq_pg_batch_result(b, i);
        ok += res && atoi(sq_pg_value(res, 0, 0)) == i && strcmp(sq_pg_value(res, 0, 1), big) == 0;
    }
    return sq_reply_json(r, 200, json_pack("{s:i}", "ok", ok));
}

static int tx(sq_req *r)
{
    const char *id = sq_query(r, "id"), *mode = sq_query(r, "mode");

    if (!id || !mode)
        return 400;
    if (sq_pg_begin() < 0 || !sq_pg_query("INSERT INTO items (id) VALUES ($1)", id))
        return db_fail(r);
    if (strcmp(mode, "error") == 0) {
        sq_pg_query("SELECT 1 / 0");
        return db_fail(r); /* the transaction is still open: the host rolls it back */
    }
    if (strcmp(mode, "abandon") == 0)
        return sq_reply_json(r, 200, json_pack("{s:s}", "left", "open"));
    if (strcmp(mode, "sleep") == 0 && !sq_pg_query("SELECT pg_sleep(10)"))
        return db_fail(r);
    if (strcmp(mode, "rollback") == 0) {
        if (sq_pg_rollback() < 0)
            return db_fail(r);
        return sq_reply_json(r, 200, json_pack("{s:s}", "done", "rollback"));
    }
    if (sq_pg_commit() < 0)
        return db_fail(r);
    return sq_reply_json(r, 200, json_pack("{s:s}", "done", "commit"));
}

static int items(sq_req *r)
{
    const char *id = sq_query(r, "id");
    sq_pg_result *res;

    if (!id)
        return 400;
    res = sq_pg_query("SELECT count(*)::int AS count FROM items WHERE id = $1", id);
    if (!res)
        return db_fail(r);
    return sq_reply_json(r, 200, sq_pg_row_json(res, 0));
}

/* Three runs of one query in a transaction (one connection) leave one prepared statement;
   after DEALLOCATE ALL the same query still works (the cache notices and prepares again). */
static int prep(sq_req *r)
{
    const char *sql = "SELECT $1::int + 1 AS v";
    sq_pg_result *res = NULL;

    if (sq_pg_begin() < 0)
        return db_fail(r);
    for (int i = 0; i < 3; i++)
        if (!sq_pg_query(sql, "1"))
            return db_fail(r);
    res = sq_pg_query("SELECT count(*)::int AS n FROM pg_prepared_statements "
                      "WHERE statement = $1 AND name LIKE 'sq\\_%'",
                      sql);
    if (!res || !sq_pg_query("DEALLOCATE ALL") || sq_pg_commit() < 0)
        return db_fail(r);
    int prepared = atoi(sq_pg_value(res, 0, 0));
    if (!(res = sq_pg_query(sql, "41")))
        return db_fail(r);
    return sq_reply_json(
        r, 200, json_pack("{s:i,s:s}", "prepared", prepared, "after", sq_pg_value(res, 0, 0)));
}

static int notify(sq_req *r)
{
    const char *ch = sq_query(r, "ch"), *payload = sq_query(r, "payload");

    if (!ch)
        return 400;
    if (sq_pg_notify(ch, payload) < 0)
        return db_fail(r);
    return sq_reply_json(r, 200, json_pack("{s:b}", "sent", 1));
}

static void on_note(const char *channel, const char *payload, void *arg)
{
    char buf[256];

    snprintf(buf, sizeof(buf), "%s:%s", channel, payload);
    json_array_append_new(arg, json_string(buf));
}

static int notes(sq_req *r)
{
    return sq_reply_json(r, 200, json_deep_copy(sq_plugin_get_data(sq_req_plugin(r))));
}

static int init(sq_plugin_ctx *ctx)
{
    const char *channel = sq_config_get(ctx, "listen");
    json_t *received = json_array();

    sq_plugin_set_data(ctx, received);
    if (channel && sq_pg_listen(ctx, channel, on_note, received) < 0) {
        sq_log(SQ_LOG_ERROR, "sq_pg_listen: %s", sq_errmsg());
        return -1;
    }
    return 0;
}

static void fini(sq_plugin_ctx *ctx)
{
    json_decref(sq_plugin_get_data(ctx));
}

static int echo(sq_req *r)
{
    const char *v = sq_query(r, "v"), *s = sq_query(r, "s");
    sq_pg_result *res = sq_pg_query("SELECT $1::int AS v, pg_sleep($2)", v, s ? s : "0");

    if (!res)
        return db_fail(r);
    return sq_reply_json(r, 200, json_pack("{s:s}", "v", sq_pg_value(res, 0, 0)));
}

static const sq_route routes[] = {
    {"GET", "/sleep", sleep_s},
    {"GET", "/slow", slow, .timeout_ms = 200},
    {"GET", "/types", types},
    {"POST", "/users", user_add},
    {"GET", "/users", user_get},
    {"GET", "/batch", batch},
    {"GET", "/bigbatch", bigbatch},
    {"POST", "/tx", tx},
    {"GET", "/items", items},
    {"GET", "/prep", prep},
    {"GET", "/notify", notify},
    {"GET", "/notes", notes},
    {"GET", "/echo", echo},
    {"GET", "/echo_t", echo, .timeout_ms = 300},
    {0},
};

SQ_PLUGIN(.name = "pgplug", .version = "1.0.0", .routes = routes, .init = init, .fini = fini);
