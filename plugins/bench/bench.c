/*
 * bench - the TechEmpower Framework Benchmarks tests, to their rules, against PostgreSQL.
 *
 *   GET /plaintext          Hello, World! as text/plain
 *   GET /json               {"message":"Hello, World!"}, built afresh per request
 *   GET /db                 one random row of world: {"id":N,"randomNumber":N}
 *   GET /queries?queries=N  N random rows, one SELECT each: [{"id":..,"randomNumber":..}, ...]
 *   GET /fortunes           every fortune plus one added at request time, sorted by message,
 *                           HTML-escaped, as TechEmpower's HTML table (text/html; charset=utf-8)
 *   GET /updates?queries=N  N random rows read (one SELECT each), each given a new random
 *                           number, written back; the rows as /queries returns them
 *
 * N is clamped to 1..500; a missing or non-integer N is 1 (TechEmpower's rules).
 * ids and random numbers are uniform in 1..10000, from a per-thread xorshift generator.
 *
 * Round trips. The SELECTs of /queries and /updates go out as one pipelined batch
 * (sq_pg_batch): each is still its own statement executed on its own by the server, which
 * TechEmpower allows ("pipelining ... as a network-level optimization"), but they cost one
 * round trip instead of N. /updates then writes every row with one UPDATE from two arrays.
 * Its ids are distinct (drawn again on a repeat), so each row is written once, and the rows
 * are locked in id order (ORDER BY ... FOR UPDATE): concurrent /updates never deadlock.
 *
 * The schema. init cannot await, so it starts a task (sq_spawn) that creates and seeds the
 * tables when they are absent: world (id 1..10000, randomnumber 1..10000) and fortune
 * (TechEmpower's 12 rows). Requests that arrive first wait for it on a lock; if it failed
 * (the database was down), the next request tries again. A transaction-scoped advisory lock
 * makes several processes (workers > 1) take turns.
 *
 * Failures: a database that cannot be reached is a 503 (the host's answer for a request the
 * pool marked unavailable); an error from the server is logged and a 500.
 */
#include <squall.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define WORLD_ROWS 10000
#define QUERIES_MAX 500
#define SCHEMA_LOCK "6265" /* advisory lock key: schema creation, any process */
#define ID_LEN 12          /* "-2147483648" and its NUL */

static const char hello[] = "Hello, World!";

#define SQL_WORLD "SELECT id, randomnumber AS \"randomNumber\" FROM world WHERE id = $1"

/* Sorted ids and their new numbers as int[] text: the rows are locked in id order first. */
#define SQL_UPDATE                                                                                 \
    "WITH v AS MATERIALIZED ("                                                                     \
    " SELECT w.id, u.r FROM world w JOIN unnest($1::int[], $2::int[]) AS u(id, r)"                 \
    " ON w.id = u.id ORDER BY w.id FOR UPDATE OF w)"                                               \
    " UPDATE world SET randomnumber = v.r FROM v WHERE world.id = v.id"

static const char *const fortunes_seed[] = {
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. \xe2\x80\x94 Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. \xe2\x80\x94 Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    "<script>alert(\"This should not be displayed in a browser alert box.\");</script>",
    "\xe3\x83\x95\xe3\x83\xac\xe3\x83\xbc\xe3\x83\xa0\xe3\x83\xaf\xe3\x83\xbc\xe3\x82\xaf\xe3"
    "\x81\xae\xe3\x83\x99\xe3\x83\xb3\xe3\x83\x81\xe3\x83\x9e\xe3\x83\xbc\xe3\x82\xaf",
};

#define NFORTUNES_SEED (sizeof(fortunes_seed) / sizeof(fortunes_seed[0]))

/* The seed, in one transaction: each table created and filled when absent or empty. */
static const char *const schema_sql[] = {
    "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")",
    "CREATE TABLE IF NOT EXISTS world ("
    " id integer PRIMARY KEY, randomnumber integer NOT NULL DEFAULT 0)",
    "INSERT INTO world (id, randomnumber)"
    " SELECT x, 1 + floor(random() * 10000)::int FROM generate_series(1, 10000) AS x"
    " WHERE NOT EXISTS (SELECT 1 FROM world)",
    "CREATE TABLE IF NOT EXISTS fortune (id integer PRIMARY KEY, message varchar(2048) NOT NULL)",
    "INSERT INTO fortune (id, message)"
    " SELECT n, m FROM unnest(ARRAY[$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12]::text[])"
    " WITH ORDINALITY AS f(m, n) WHERE NOT EXISTS (SELECT 1 FROM fortune)",
    "ANALYZE world",
    "ANALYZE fortune",
};

/* The instance's state, made by init and freed by fini. */
struct bench {
    sq_lock *schema_lock; /* held while the schema is being made */
    bool schema_ready;    /* the tables exist and are seeded */
};

/* ---- Random numbers: xorshift64*, one state per thread, seeded once ---- */

static __thread uint64_t rng_state;

static void rng_seed(void)
{
    if (getrandom(&rng_state, sizeof(rng_state), GRND_NONBLOCK) != sizeof(rng_state))
        rng_state = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    if (!rng_state)
        rng_state = 0x9E3779B97F4A7C15ull;
}

/* Uniform in 1..WORLD_ROWS (multiply-shift: a bias of under 1e-5, far below the noise). */
static int rng_row(void)
{
    if (!rng_state)
        rng_seed();
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    uint32_t r = (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
    return 1 + (int)(((uint64_t)r * WORLD_ROWS) >> 32);
}

/* ---- Database helpers ---- */

/*
 * What a handler returns after a failed database call: a refusal by the server (it has a
 * SQLSTATE) is logged and a 500; otherwise (unreachable, timed out, cancelled) -1 lets the
 * host answer: 503 when the pool marked the request unavailable.
 */
static int db_failed(const char *what)
{
    if (!sq_pg_sqlstate()[0])
        return -1;
    sq_log(SQ_LOG_ERROR, "%s: %s (SQLSTATE %s)", what, sq_errmsg(), sq_pg_sqlstate());
    return 500;
}

/* Creates and seeds the tables where needed, in one transaction. 0, or SQ_E*. */
static int schema_create(void)
{
    int rc = sq_pg_begin();

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof(schema_sql) / sizeof(schema_sql[0]); i++) {
        bool seed = strstr(schema_sql[i], "$12") != NULL;
        if (!sq_pg_exec(schema_sql[i], seed ? (const char *const *)fortunes_seed : NULL,
                        seed ? (int)NFORTUNES_SEED : 0)) {
            char why[256]; /* a copy: sq_errmsg_set must not read what it writes */
            snprintf(why, sizeof(why), "%s", sq_errmsg());
            sq_pg_rollback();
            sq_errmsg_set("cannot create the benchmark's tables: %s", why);
            return SQ_EIO;
        }
    }
    return sq_pg_commit();
}

/* Awaits the schema: at once when it is there; else made by whoever holds the lock first
   (init's task, or a request when that task failed). 0 or SQ_E*. */
static int schema_wait(struct bench *st)
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

    return rc == SQ_ECANCELED ? 0 : rc;
}

/* Awaits the schema for request r: 0, or what its handler returns (see db_failed). */
static int schema_check(sq_req *r)
{
    int rc = schema_wait(sq_plugin_get_data(sq_req_plugin(r)));

    if (rc == 0)
        return 0;
    return rc == SQ_EIO ? db_failed("creating the schema") : -1;
}

/* ---- Query helpers ---- */

/* The queries argument as TechEmpower reads it: 1..500, 1 when missing or not an integer. */
static int queries_arg(sq_req *r)
{
    const char *s = sq_query(r, "queries");
    char *end;

    if (!s || !*s)
        return 1;
    long n = strtol(s, &end, 10);
    if (*end)
        return 1;
    return n < 1 ? 1 : n > QUERIES_MAX ? QUERIES_MAX : (int)n;
}

/* Writes v in decimal to out (ID_LEN bytes). */
static void id_text(char *out, int v)
{
    snprintf(out, ID_LEN, "%d", v);
}

/* n distinct random ids into ids[]: a repeat is drawn again (n <= 500 of 10000 rows). */
static void distinct_rows(int *ids, int n)
{
    static __thread uint8_t seen[WORLD_ROWS + 1];

    for (int i = 0; i < n; i++) {
        do
            ids[i] = rng_row();
        while (seen[ids[i]]);
        seen[ids[i]] = 1;
    }
    for (int i = 0; i < n; i++)
        seen[ids[i]] = 0;
}

/* Draws n random ids into ids[] (distinct ones when distinct) and runs one SELECT per id as
   one pipelined batch; the batch, or NULL when it failed (sq_errmsg says why). */
static sq_pg_batch *select_random_rows(int *ids, int n, bool distinct)
{
    sq_pg_batch *b = sq_pg_batch_new();
    char id[ID_LEN];

    if (!b)
        return NULL;
    if (distinct)
        distinct_rows(ids, n);
    for (int i = 0; i < n; i++) {
        if (!distinct)
            ids[i] = rng_row();
        id_text(id, ids[i]);
        if (sq_pg_batch_query(b, SQL_WORLD, id) < 0)
            return NULL;
    }
    return sq_pg_batch_run(b) < 0 ? NULL : b;
}

/* Row 0 of query i of b as {"id":..,"randomNumber":..} into *row (a new reference). 0, or
   what the handler returns (see db_failed). */
static int batch_row(sq_pg_batch *b, int i, const char *what, json_t **row)
{
    sq_pg_result *res = sq_pg_batch_result(b, i);

    *row = NULL;
    if (!res)
        return db_failed(what);
    if (sq_pg_ntuples(res) != 1) {
        sq_log(SQ_LOG_ERROR, "%s: a world row is missing", what);
        return 500;
    }
    *row = sq_pg_row_json(res, 0);
    return *row ? 0 : 500;
}

/* ---- Handlers ---- */

static int plaintext(sq_req *r)
{
    return sq_reply(r, 200, "text/plain", hello, sizeof(hello) - 1);
}

static int json(sq_req *r)
{
    return sq_reply_json(r, 200, json_pack("{s:s}", "message", hello));
}

static int db(sq_req *r)
{
    char id[ID_LEN];
    int rc = schema_check(r);

    if (rc)
        return rc;
    id_text(id, rng_row());
    sq_pg_result *res = sq_pg_query(SQL_WORLD, id);
    if (!res)
        return db_failed("GET /db");
    json_t *row = sq_pg_ntuples(res) == 1 ? sq_pg_row_json(res, 0) : NULL;
    if (!row) {
        sq_log(SQ_LOG_ERROR, "GET /db: world row %s missing", id);
        return 500;
    }
    return sq_reply_json(r, 200, row);
}

static int queries(sq_req *r)
{
    int n = queries_arg(r), ids[QUERIES_MAX];
    int rc = schema_check(r);

    if (rc)
        return rc;
    sq_pg_batch *b = select_random_rows(ids, n, false);
    if (!b)
        return db_failed("GET /queries");
    json_t *rows = json_array(), *row;
    for (int i = 0; i < n; i++) {
        if ((rc = batch_row(b, i, "GET /queries", &row)) != 0 ||
            json_array_append_new(rows, row) < 0) {
            json_decref(rows);
            return rc ? rc : 500;
        }
    }
    return sq_reply_json(r, 200, rows);
}

/* ---- /updates ---- */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;

    return (x > y) - (x < y);
}

/* "{v0,v1,...}" of v[0..n) in r's arena, or NULL out of memory. */
static char *int_array_text(sq_req *r, const int *v, int n)
{
    char *s = sq_alloc(r, (size_t)n * ID_LEN + 3), *p = s;

    if (!s)
        return NULL;
    *p++ = '{';
    for (int i = 0; i < n; i++)
        p += sprintf(p, i ? ",%d" : "%d", v[i]);
    strcpy(p, "}");
    return s;
}

/* Writes number[k] to row id[k] for k < n, in one UPDATE. 0 or SQ_E*. */
static int write_rows(sq_req *r, const int *ids, const int *numbers, int n)
{
    int order[QUERIES_MAX], sorted[QUERIES_MAX], nums[QUERIES_MAX];

    /* sorted by id: (id << 16 | k) keeps each number with its id; ids < 2^14, k < 2^9 */
    for (int k = 0; k < n; k++)
        order[k] = ids[k] << 16 | k;
    qsort(order, (size_t)n, sizeof(order[0]), cmp_int);
    for (int k = 0; k < n; k++) {
        sorted[k] = order[k] >> 16;
        nums[k] = numbers[order[k] & 0xffff];
    }
    char *a = int_array_text(r, sorted, n), *b = int_array_text(r, nums, n);
    if (!a || !b)
        return SQ_ENOMEM;
    return sq_pg_query(SQL_UPDATE, a, b) ? 0 : SQ_EIO;
}

static int updates(sq_req *r)
{
    int n = queries_arg(r), ids[QUERIES_MAX], numbers[QUERIES_MAX];
    int rc = schema_check(r);

    if (rc)
        return rc;
    sq_pg_batch *b = select_random_rows(ids, n, true);
    if (!b)
        return db_failed("GET /updates");
    json_t *rows = json_array(), *row;
    for (int i = 0; i < n; i++) {
        numbers[i] = rng_row();
        if ((rc = batch_row(b, i, "GET /updates", &row)) != 0 ||
            json_object_set_new(row, "randomNumber", json_integer(numbers[i])) < 0 ||
            json_array_append_new(rows, row) < 0) {
            json_decref(rows);
            return rc ? rc : 500;
        }
    }
    if ((rc = write_rows(r, ids, numbers, n)) < 0) {
        json_decref(rows);
        return rc == SQ_ENOMEM ? 500 : db_failed("GET /updates: UPDATE");
    }
    return sq_reply_json(r, 200, rows);
}

/* ---- /fortunes ---- */

struct fortune {
    const char *id;
    const char *message;
};

static int cmp_fortune(const void *a, const void *b)
{
    return strcmp(((const struct fortune *)a)->message, ((const struct fortune *)b)->message);
}

/* The HTML-escaped length of s. */
static size_t escaped_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        switch (*s) {
        case '&': n += 5; break;  /* &amp; */
        case '<':                 /* &lt; */
        case '>': n += 4; break;  /* &gt; */
        case '"':                 /* &quot; */
        case '\'': n += 6; break; /* &#x27; */
        default: n++;
        }
    }
    return n;
}

/* Appends s HTML-escaped at p; returns the end. */
static char *escape(char *p, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': p = stpcpy(p, "&amp;"); break;
        case '<': p = stpcpy(p, "&lt;"); break;
        case '>': p = stpcpy(p, "&gt;"); break;
        case '"': p = stpcpy(p, "&quot;"); break;
        case '\'': p = stpcpy(p, "&#x27;"); break;
        default: *p++ = *s;
        }
    }
    return p;
}

#define HTML_HEAD                                                                                  \
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"                       \
    "<tr><th>id</th><th>message</th></tr>"
#define HTML_ROW_OPEN "<tr><td>"
#define HTML_ROW_MID "</td><td>"
#define HTML_ROW_CLOSE "</td></tr>"
#define HTML_TAIL "</table></body></html>"
#define LIT_LEN(s) (sizeof(s) - 1)

/* The page for f[0..n) in r's arena; *len its length. NULL out of memory. */
static char *fortunes_html(sq_req *r, const struct fortune *f, int n, size_t *len)
{
    size_t size = LIT_LEN(HTML_HEAD) + LIT_LEN(HTML_TAIL) + 1;

    for (int i = 0; i < n; i++)
        size += LIT_LEN(HTML_ROW_OPEN HTML_ROW_MID HTML_ROW_CLOSE) + strlen(f[i].id) +
                escaped_len(f[i].message);
    char *page = sq_alloc(r, size), *p = page;
    if (!page)
        return NULL;
    p = stpcpy(p, HTML_HEAD);
    for (int i = 0; i < n; i++) {
        p = stpcpy(p, HTML_ROW_OPEN);
        p = stpcpy(p, f[i].id);
        p = stpcpy(p, HTML_ROW_MID);
        p = escape(p, f[i].message);
        p = stpcpy(p, HTML_ROW_CLOSE);
    }
    p = stpcpy(p, HTML_TAIL);
    *len = (size_t)(p - page);
    return page;
}

static int fortunes(sq_req *r)
{
    int rc = schema_check(r);

    if (rc)
        return rc;
    sq_pg_result *res = sq_pg_query("SELECT id, message FROM fortune");
    if (!res)
        return db_failed("GET /fortunes");
    int n = sq_pg_ntuples(res);
    struct fortune *f = sq_alloc(r, sizeof(*f) * (size_t)(n + 1));
    if (!f)
        return 500;
    for (int i = 0; i < n; i++)
        f[i] = (struct fortune){sq_pg_value(res, i, 0), sq_pg_value(res, i, 1)};
    f[n++] = (struct fortune){"0", "Additional fortune added at request time."};
    qsort(f, (size_t)n, sizeof(*f), cmp_fortune);
    size_t len;
    char *page = fortunes_html(r, f, n, &len);
    if (!page)
        return 500;
    return sq_reply(r, 200, "text/html; charset=utf-8", page, len);
}

/* ---- Lifecycle ---- */

static int bench_init(sq_plugin_ctx *ctx)
{
    struct bench *st = calloc(1, sizeof(*st));

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
static void bench_fini(sq_plugin_ctx *ctx)
{
    struct bench *st = sq_plugin_get_data(ctx);

    sq_lock_free(st->schema_lock);
    free(st);
}

static const sq_route routes[] = {
    {"GET", "/plaintext", plaintext},
    {"GET", "/json", json},
    {"GET", "/db", db},
    {"GET", "/queries", queries},
    {"GET", "/fortunes", fortunes},
    {"GET", "/updates", updates},
    {0},
};

SQ_PLUGIN(.name = "bench", .version = "1.0.0", .routes = routes, .init = bench_init,
          .fini = bench_fini);
