/*
 * async_handler - Tornado's classic asynchronous handler, in C.
 *
 *   GET  /async  awaits one 100 ms operation, then {"result":"fetched data"}
 *   POST /async  runs three operations of 200, 50 and 100 ms at the same time and replies
 *                once all have finished, after about 200 ms rather than 350:
 *                {"status":"success","results":["processed: <body>","logged","cache updated"]}
 *                where <body> is the request's JSON body re-serialized compactly; a body
 *                that is not JSON is a 400.
 *
 * The Tornado handler it mirrors:
 *
 *     class AsyncHandler(RequestHandler):
 *         async def get(self):
 *             await asyncio.sleep(0.1)
 *             self.write({"result": "fetched data"})
 *
 *         async def post(self):
 *             data = json.loads(self.request.body)
 *             results = await asyncio.gather(process(data), log(data), update_cache(data))
 *             self.write({"status": "success", "results": results})
 *
 * An await parks the handler's coroutine and the loop serves every other connection
 * meanwhile, so twenty GET /async at once all answer after about 100 ms. sq_sleep stands in
 * for real I/O (a database query, an upstream HTTP call) that would be awaited the same way.
 */
#include <squall.h>

#define FETCH_MS 100
#define PROCESS_MS 200
#define LOG_MS 50
#define CACHE_MS 100

/* What a failed await's code means. Read from the code, not sq_errmsg(): sq_sleep sets
   its message before it waits, and other coroutines may replace it while it does. */
static const char *await_error(int rc)
{
    return rc == SQ_ETIMEDOUT ? "timed out" : rc == SQ_ECANCELED ? "cancelled" : "failed";
}

/* GET /async: one awaited operation. */
static int fetch(sq_req *r)
{
    int rc = sq_sleep(FETCH_MS);

    if (rc < 0) /* cancelled (the client left: this reply is dropped) or past a deadline */
        return sq_reply_error(r, 503, "%s", await_error(rc));
    return sq_reply_json(r, 200, json_pack("{s:s}", "result", "fetched data"));
}

/* One simulated operation: takes ms milliseconds, then yields result. */
struct step {
    uint64_t ms;
    const char *result;
};

/* An sq_op_fn: runs one step in the operation's own coroutine. */
static int run_step(void *arg, void **result)
{
    const struct step *s = arg;
    int rc = sq_sleep(s->ms);

    if (rc == 0)
        *result = (void *)s->result;
    return rc;
}

/* The request's JSON body as compact text in the request's arena; NULL when the body is
   not JSON (sq_errmsg() says where) or out of memory. */
static char *body_compact(sq_req *r)
{
    json_t *body = sq_body_json(r); /* borrowed: the host frees it */

    if (!body)
        return NULL;
    size_t n = json_dumpb(body, NULL, 0, JSON_COMPACT);
    char *text = n ? sq_alloc(r, n + 1) : NULL;
    if (!text)
        return NULL;
    json_dumpb(body, text, n, JSON_COMPACT);
    text[n] = '\0';
    return text;
}

/*
 * POST /async: starts three operations, then awaits them all, like asyncio.gather. They
 * run as soon as the handler awaits, side by side, so the wait is the longest one's.
 * The steps live in the request's arena, not on this stack: an operation must be able to
 * read its argument for as long as it runs, and the request outlives its operations.
 */
static int process(sq_req *r)
{
    const char *data = body_compact(r);

    if (!data)
        return sq_reply_error(r, 400, "body must be JSON: %s", sq_errmsg());
    struct step *steps = sq_alloc(r, 3 * sizeof(*steps));
    const char *processed = sq_printf(r, "processed: %s", data);
    if (!steps || !processed)
        return sq_reply_error(r, 500, "out of memory");
    steps[0] = (struct step){PROCESS_MS, processed};
    steps[1] = (struct step){LOG_MS, "logged"};
    steps[2] = (struct step){CACHE_MS, "cache updated"};

    sq_op *ops[3];
    for (int i = 0; i < 3; i++)
        if (!(ops[i] = sq_op_start(run_step, &steps[i]))) /* those started are cancelled */
            return sq_reply_error(r, 500, "cannot start an operation: %s", sq_errmsg());
    if (sq_await_all(ops, 3) < 0)
        return sq_reply_error(r, 503, "%s", sq_errmsg());
    for (int i = 0; i < 3; i++)
        if (sq_op_status(ops[i]) != 0)
            return sq_reply_error(r, 503, "operation %d %s", i + 1,
                                  await_error(sq_op_status(ops[i])));
    return sq_reply_json(r, 200,
                         json_pack("{s:s, s:[s,s,s]}", "status", "success", "results",
                                   sq_op_result(ops[0]), sq_op_result(ops[1]),
                                   sq_op_result(ops[2])));
}

static const sq_route routes[] = {
    {"GET", "/async", fetch},
    {"POST", "/async", process},
    {0},
};

SQ_PLUGIN(.name = "async_handler", .version = "1.0.0", .routes = routes);
