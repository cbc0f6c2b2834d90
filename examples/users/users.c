/*
 * users - the classic Tornado + aiopg handler: users kept in PostgreSQL, read with plain
 * queries and created inside a transaction.
 *
 *   GET  /users           {"users":[{"id":1,"name":"Ada","email":"ada@example.org"}, ...]}:
 *                         the active users, by id
 *   GET  /users/{id:int}  {"id":1,"name":"Ada","email":"ada@example.org","active":true};
 *                         404 when there is no such user
 *   POST /users           {"name":"Ada","email":"ada@example.org"} -> 201
 *                         {"status":"created","user_id":1} (new users are active). A list of
 *                         1..100 such objects creates them all or none: 201
 *                         {"status":"created","user_ids":[1,2]}.
 *                         400 when the body is not JSON, or a name or email is missing, not a
 *                         string, empty or too long (or the email has no '@'); 409 when an
 *                         email is taken (SQLSTATE 23505: the UNIQUE constraint is the judge,
 *                         so two clients racing for one email cannot both win).
 *
 * A failed database call is a 503 when the database could not be reached (the host's
 * doing: the pool marks the request unavailable), else a 500 with the server's error logged.
 * Any failure inside POST's transaction rolls it back: nothing of a failed POST is stored.
 *
 * The schema. init cannot await, so it starts a task (sq_spawn) that creates the table when
 * it is absent. Requests that arrive before the task has finished wait for it on a lock
 * (they never see a missing table); if it failed (the database was down at start), the next
 * request tries again under the same lock. With workers > 1 every process runs init:
 * a transaction-scoped advisory lock makes their CREATE TABLE IF NOT EXISTS take turns
 * (two at once can fail on the catalog's unique index).
 *
 * The Tornado code it mirrors:
 *
 *     class UserHandler(RequestHandler):
 *         async def get(self, user_id):
 *             async with self.application.db.acquire() as conn:
 *                 async with conn.cursor() as cur:
 *                     await cur.execute("SELECT id, name, email, active FROM users "
 *                                       "WHERE id = %s", (user_id,))
 *                     row = await cur.fetchone()
 *             if not row:
 *                 raise HTTPError(404)
 *             self.write(dict(zip(("id", "name", "email", "active"), row)))
 *
 *         async def post(self):
 *             data = json.loads(self.request.body)
 *             async with self.application.db.acquire() as conn:
 *                 async with conn.cursor() as cur:
 *                     await cur.execute("BEGIN")
 *                     try:
 *                         await cur.execute("INSERT INTO users (name, email) VALUES (%s, %s) "
 *                                           "RETURNING id", (data["name"], data["email"]))
 *                         user_id = (await cur.fetchone())[0]
 *                         await cur.execute("COMMIT")
 *                     except psycopg2.IntegrityError:
 *                         await cur.execute("ROLLBACK")
 *                         raise HTTPError(409)
 *             self.set_status(201)
 *             self.write({"status": "created", "user_id": user_id})
 */
#include <squall.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 200         /* bytes */
#define EMAIL_MAX_LEN 254        /* bytes: the longest address SMTP carries */
#define BATCH_MAX 100            /* users in one POST */
#define SCHEMA_LOCK "7372657375" /* advisory lock key: schema creation, any process */

static const char *const schema_sql[] = {
    "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")",
    "CREATE TABLE IF NOT EXISTS users ("
    " id bigserial PRIMARY KEY,"
    " name text NOT NULL,"
    " email text NOT NULL UNIQUE,"
    " active boolean NOT NULL DEFAULT true,"
    " created_at timestamptz NOT NULL DEFAULT now())",
};

/* The instance's state, made by init and freed by fini. */
struct users {
    sq_lock *schema_lock; /* held while the schema is being made */
    bool schema_ready;    /* the table exists */
};

/* A user to create, its strings borrowed from the request's JSON body. */
struct new_user {
    const char *name;
    const char *email;
};

/* ---- Database helpers ---- */

/*
 * What a handler returns after a failed database call. A refusal by the server (it has a
 * SQLSTATE) is a bug or a broken schema: logged, 500. Otherwise the database could not be
 * reached, or the request ran out of time or was cancelled: -1 lets the host answer (503
 * when the pool marked the request unavailable).
 */
static int db_failed(const char *what)
{
    if (!sq_pg_sqlstate()[0])
        return -1;
    sq_log(SQ_LOG_ERROR, "%s: %s (SQLSTATE %s)", what, sq_errmsg(), sq_pg_sqlstate());
    return 500;
}

/* Creates the table if it is absent, in one transaction. 0, or SQ_E* (sq_errmsg says why). */
static int schema_create(void)
{
    int rc = sq_pg_begin();

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof(schema_sql) / sizeof(schema_sql[0]); i++) {
        if (!sq_pg_query(schema_sql[i])) {
            char why[256]; /* a copy: sq_errmsg_set must not read what it writes */
            snprintf(why, sizeof(why), "%s", sq_errmsg());
            sq_pg_rollback();
            sq_errmsg_set("cannot create the users table: %s", why);
            return SQ_EIO;
        }
    }
    return sq_pg_commit();
}

/* Awaits the schema: at once when it is there; else made by whoever holds the lock first
   (init's task, or a request when that task failed). 0 or SQ_E*. */
static int schema_wait(struct users *st)
{
    if (st->schema_ready)
        return 0;
    int rc = sq_lock_acquire(st->schema_lock, -1);
    if (rc < 0)
        return rc;
    if (!st->schema_ready && (rc = schema_create()) == 0)
        st->schema_ready = true;
    sq_lock_release(st->schema_lock);
    return rc;
}

/* init's task. A failure is logged by the host; the next request tries again. */
static int schema_task(void *arg)
{
    int rc = schema_wait(arg);

    return rc == SQ_ECANCELED ? 0 : rc; /* the host stopped first: nothing to say */
}

/* ---- Handlers ---- */

/* What a handler returns when schema_wait failed with rc: as db_failed when the database
   did, else (its wait for the lock timed out or was cancelled) -1 for the host to answer. */
static int schema_failed(int rc)
{
    return rc == SQ_EIO ? db_failed("creating the schema") : -1;
}

static struct users *state_of(sq_req *r)
{
    return sq_plugin_get_data(sq_req_plugin(r));
}

static int users_list(sq_req *r)
{
    int rc = schema_wait(state_of(r));

    if (rc < 0)
        return schema_failed(rc);
    sq_pg_result *res = sq_pg_query("SELECT id, name, email FROM users WHERE active ORDER BY id");
    if (!res)
        return db_failed("GET /users");
    json_t *rows = sq_pg_rows_json(res);
    if (!rows)
        return 500;
    return sq_reply_json(r, 200, json_pack("{s:o}", "users", rows));
}

static int user_get(sq_req *r)
{
    int rc = schema_wait(state_of(r));

    if (rc < 0)
        return schema_failed(rc);
    /* {id:int}: the router let through digits that fit an int64, as bigint does */
    sq_pg_result *res =
        sq_pg_query("SELECT id, name, email, active FROM users WHERE id = $1", sq_param(r, "id"));
    if (!res)
        return db_failed("GET /users/{id}");
    if (sq_pg_ntuples(res) == 0)
        return sq_reply_error(r, 404, "user %s not found", sq_param(r, "id"));
    json_t *user = sq_pg_row_json(res, 0);
    return user ? sq_reply_json(r, 200, user) : 500;
}

/* field of obj as a string of 1..max bytes (no NUL inside); NULL when it is not one. */
static const char *string_field(const json_t *obj, const char *field, size_t max)
{
    const json_t *v = json_object_get(obj, field);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);

    return s && n >= 1 && n <= max && strlen(s) == n ? s : NULL;
}

/* Reads one user from obj into u. NULL, or why it cannot (where: "" or "users[i]: "). */
static const char *user_parse(sq_req *r, const json_t *obj, const char *where, struct new_user *u)
{
    if (!json_is_object(obj))
        return sq_printf(r, "%sexpected an object with name and email", where);
    u->name = string_field(obj, "name", NAME_MAX_LEN);
    u->email = string_field(obj, "email", EMAIL_MAX_LEN);
    if (!u->name)
        return sq_printf(r, "%sname must be a string of 1 to %d bytes", where, NAME_MAX_LEN);
    if (!u->email || !strchr(u->email, '@'))
        return sq_printf(r, "%semail must be a string of 1 to %d bytes with an '@'", where,
                         EMAIL_MAX_LEN);
    return NULL;
}

/* The users the body asks for, into out[0..*n); *list tells whether it is a list of them.
   NULL, or why the body is refused. */
static const char *body_parse(sq_req *r, struct new_user *out, size_t *n, bool *list)
{
    json_t *body = sq_body_json(r);
    const char *why = NULL;

    *n = 0;
    if (!body)
        return sq_printf(r, "body must be JSON: %s", sq_errmsg());
    if (!(*list = json_is_array(body))) {
        *n = 1;
        return user_parse(r, body, "", &out[0]);
    }
    if (json_array_size(body) < 1 || json_array_size(body) > BATCH_MAX)
        return sq_printf(r, "expected 1 to %d users", BATCH_MAX);
    for (size_t i = 0; i < json_array_size(body) && !why; i++) {
        why = user_parse(r, json_array_get(body, i), sq_printf(r, "users[%zu]: ", i), &out[i]);
        *n = i + 1;
    }
    return why;
}

/* Inserts u[0..n) in the running transaction; their ids into ids[]. 0, or SQ_EIO with
   sq_errmsg() and sq_pg_sqlstate() set by the failing query. */
static int users_insert(const struct new_user *u, size_t n, json_int_t *ids)
{
    for (size_t i = 0; i < n; i++) {
        sq_pg_result *res = sq_pg_query(
            "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id", u[i].name, u[i].email);
        if (!res)
            return SQ_EIO;
        ids[i] = strtoll(sq_pg_value(res, 0, 0), NULL, 10);
    }
    return 0;
}

/* The 201 reply: user_id for a single object, user_ids for a list. */
static int reply_created(sq_req *r, const json_int_t *ids, size_t n, bool list)
{
    if (!list)
        return sq_reply_json(r, 201,
                             json_pack("{s:s,s:I}", "status", "created", "user_id", ids[0]));
    json_t *all = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(all, json_integer(ids[i]));
    return sq_reply_json(r, 201, json_pack("{s:s,s:o}", "status", "created", "user_ids", all));
}

static int users_create(sq_req *r)
{
    struct new_user u[BATCH_MAX];
    json_int_t ids[BATCH_MAX];
    int rc;
    size_t n;
    bool list = false;
    const char *why = body_parse(r, u, &n, &list);

    if (why)
        return sq_reply_error(r, 400, "%s", why);
    if ((rc = schema_wait(state_of(r))) < 0)
        return schema_failed(rc);
    if (sq_pg_begin() < 0)
        return db_failed("BEGIN");
    if (users_insert(u, n, ids) < 0) {
        bool taken = strcmp(sq_pg_sqlstate(), "23505") == 0;
        rc = taken ? 0 : db_failed("POST /users"); /* logged before the rollback */
        sq_pg_rollback(); /* an error has aborted the transaction: nothing is kept */
        return taken ? sq_reply_error(r, 409, "email already exists") : rc;
    }
    if (sq_pg_commit() < 0)
        return db_failed("COMMIT");
    return reply_created(r, ids, n, list);
}

/* ---- Lifecycle ---- */

static int users_init(sq_plugin_ctx *ctx)
{
    struct users *st = calloc(1, sizeof(*st));

    if (!st || !(st->schema_lock = sq_lock_new())) {
        free(st);
        sq_log(SQ_LOG_ERROR, "out of memory");
        return -1;
    }
    sq_plugin_set_data(ctx, st);
    if (sq_spawn(schema_task, st) < 0) /* the first request makes the schema instead */
        sq_log(SQ_LOG_WARN, "cannot start the schema task: %s", sq_errmsg());
    return 0;
}

/* The host has ended every coroutine (the schema task too) before fini. */
static void users_fini(sq_plugin_ctx *ctx)
{
    struct users *st = sq_plugin_get_data(ctx);

    sq_lock_free(st->schema_lock);
    free(st);
}

static const sq_route routes[] = {
    {"GET", "/users", users_list},
    {"GET", "/users/{id:int}", user_get},
    {"POST", "/users", users_create},
    {0},
};

SQ_PLUGIN(.name = "users", .version = "1.0.0", .routes = routes, .init = users_init,
          .fini = users_fini);
