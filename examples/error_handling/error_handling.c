/*
 * error_handling - concurrent operations that may fail, answered as one reply, like
 * asyncio.gather(..., return_exceptions=True) in a Tornado handler.
 *
 *   GET /errors[?fail=0|1][&crash=1]
 *       Runs three 100 ms operations at once; the second fails with probability 0.3
 *       (fail=1 makes it fail, fail=0 makes it succeed). Either way the status is 200:
 *         {"success_count":3,"results":["Operation 1 completed",...,"Operation 3 completed"]}
 *         {"success_count":2,"results":[...],"errors":["Operation 2 failed: ..."]}
 *       crash=1 makes operation 3 hand back a corrupted result (bytes that are not UTF-8),
 *       so the reply cannot be built: an unexpected error, logged and answered
 *       500 {"error":"Internal server error"}.
 *
 * Two kinds of failure, handled differently:
 *   - expected: an operation fails. It is part of the answer; the others' results stand.
 *   - unexpected: the handler's own work breaks. The client learns only that it failed;
 *     the log gets the details (sq_log at SQ_LOG_ERROR names the plugin).
 *
 * The Tornado handler it mirrors:
 *
 *     async def get(self):
 *         try:
 *             results = await asyncio.gather(op(1), op(2), op(3), return_exceptions=True)
 *             ok = [r for r in results if not isinstance(r, Exception)]
 *             errors = [str(e) for e in results if isinstance(e, Exception)]
 *             reply = {"success_count": len(ok), "results": ok}
 *             if errors:
 *                 reply["errors"] = errors
 *             self.write(reply)
 *         except Exception:
 *             logging.exception("GET /errors")
 *             self.set_status(500)
 *             self.write({"error": "Internal server error"})
 */
#include <squall.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NOPS 3
#define OP_MS 100
#define FAIL_RATE 0.3
#define OP_FAILED 1   /* an operation's own error code (an sq_op_fn may return any non-zero) */
#define FAIL_RANDOM 2 /* no ?fail: operation 2 fails at random */

/* The instance's state: the random generator that decides when operation 2 fails. */
struct errors_state {
    unsigned seed;
};

/* One operation: what it is told to do, and what came of it. It lives in the request's
   arena, which outlives the operation: the handler reads it once the operation has ended. */
struct operation {
    int n;         /* 1-based, for the messages */
    bool fail;     /* fail instead of completing */
    bool corrupt;  /* complete, but with a result that is not UTF-8 */
    bool ok;       /* it completed */
    char text[96]; /* its result when ok, else "Operation N failed: why" */
};

/* An sq_op_fn: "does" operation arg (a stand-in for a call to another service). The
   outcome goes into the operation itself: sq_errmsg() is set only by the SDK's calls, so
   it cannot carry an error of the plugin's own. */
static int run_operation(void *arg, void **result)
{
    struct operation *op = arg;
    int rc = sq_sleep(OP_MS);

    if (rc < 0) { /* the handler was cancelled or timed out (see sq_await_all) */
        snprintf(op->text, sizeof(op->text), "Operation %d failed: %s", op->n,
                 rc == SQ_ETIMEDOUT ? "timed out" : "cancelled");
        return rc;
    }
    if (op->fail) {
        snprintf(op->text, sizeof(op->text),
                 "Operation %d failed: simulated failure (upstream timed out)", op->n);
        return OP_FAILED;
    }
    if (op->corrupt) /* what a broken upstream might send: 0xff is never valid UTF-8 */
        snprintf(op->text, sizeof(op->text), "Operation %d completed \xff", op->n);
    else
        snprintf(op->text, sizeof(op->text), "Operation %d completed", op->n);
    op->ok = true;
    *result = op->text;
    return 0;
}

/* Appends s to the array a as a JSON string. -1, with err saying why, when s is not
   valid UTF-8 (or out of memory). */
static int append_string(json_t *a, const char *s, json_error_t *err)
{
    return json_array_append_new(a, json_pack_ex(err, 0, "s", s));
}

/*
 * The reply for n finished operations: the successes' results in order under "results",
 * the failures' messages under "errors" (left out when there are none). NULL when it
 * cannot be built, err saying why: a text that is not valid UTF-8, or out of memory.
 */
static json_t *build_reply(const struct operation *ops, size_t n, json_error_t *err)
{
    json_t *results = json_array(), *errors = json_array(), *reply = NULL;
    int ok = 0;

    snprintf(err->text, sizeof(err->text), "out of memory");
    if (!results || !errors)
        goto out_free_arrays;
    for (size_t i = 0; i < n; i++) {
        if (append_string(ops[i].ok ? results : errors, ops[i].text, err) < 0)
            goto out_free_arrays;
        ok += ops[i].ok;
    }
    reply = json_pack_ex(err, 0, "{s:i, s:O}", "success_count", ok, "results", results);
    if (reply && json_array_size(errors) && json_object_set(reply, "errors", errors) < 0) {
        json_decref(reply);
        reply = NULL;
    }
out_free_arrays:
    json_decref(results);
    json_decref(errors);
    return reply;
}

/* The query flag name: 0 or 1, or def when absent; -1 for any other value. */
static int query_flag(sq_req *r, const char *name, int def)
{
    const char *v = sq_query(r, name);

    if (!v)
        return def;
    return (v[0] == '0' || v[0] == '1') && !v[1] ? v[0] - '0' : -1;
}

/* Whether operation 2 fails this time: as ?fail= says, else with probability FAIL_RATE. */
static bool second_fails(sq_req *r, int fail)
{
    struct errors_state *st = sq_plugin_get_data(sq_req_plugin(r));

    if (fail != FAIL_RANDOM)
        return fail;
    return rand_r(&st->seed) < FAIL_RATE * ((double)RAND_MAX + 1);
}

/* An unexpected failure: the details go to the log, the client learns only that it failed. */
static int internal_error(sq_req *r, const char *what, const char *why)
{
    sq_log(SQ_LOG_ERROR, "GET /errors: %s: %s", what, why);
    return sq_reply_error(r, 500, "Internal server error");
}

/* GET /errors: three operations at once; their failures are part of the answer. */
static int errors(sq_req *r)
{
    int fail = query_flag(r, "fail", FAIL_RANDOM), crash = query_flag(r, "crash", 0);

    if (fail < 0)
        return sq_reply_error(r, 400, "fail must be 0 or 1");
    if (crash < 0)
        return sq_reply_error(r, 400, "crash must be 0 or 1");
    struct operation *ops = sq_alloc(r, NOPS * sizeof(*ops));
    if (!ops)
        return internal_error(r, "cannot allocate the operations", sq_errmsg());
    for (int i = 0; i < NOPS; i++)
        ops[i] = (struct operation){.n = i + 1};
    ops[1].fail = second_fails(r, fail);
    ops[2].corrupt = crash;

    sq_op *handles[NOPS];
    for (int i = 0; i < NOPS; i++)
        if (!(handles[i] = sq_op_start(run_operation, &ops[i]))) /* started ones: cancelled */
            return internal_error(r, "cannot start an operation", sq_errmsg());
    if (sq_await_all(handles, NOPS) < 0) /* the handler itself was cancelled or timed out */
        return sq_reply_error(r, 503, "%s", sq_errmsg());

    json_error_t err;
    json_t *reply = build_reply(ops, NOPS, &err);
    if (!reply)
        return internal_error(r, "cannot build the reply", err.text);
    return sq_reply_json(r, 200, reply);
}

/* Seeds the instance's generator: every run of the host fails differently. */
static int init(sq_plugin_ctx *ctx)
{
    struct errors_state *st = malloc(sizeof(*st));

    if (!st) {
        sq_log(SQ_LOG_ERROR, "out of memory");
        return -1;
    }
    st->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    sq_plugin_set_data(ctx, st);
    return 0;
}

static void fini(sq_plugin_ctx *ctx)
{
    free(sq_plugin_get_data(ctx));
}

static const sq_route routes[] = {
    {"GET", "/errors", errors},
    {0},
};

SQ_PLUGIN(.name = "error_handling", .version = "1.0.0", .routes = routes, .init = init,
          .fini = fini);
