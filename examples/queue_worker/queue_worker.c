/*
 * queue_worker - a bounded job queue served by background workers, like an asyncio.Queue
 * with consumer tasks in a Tornado application.
 *
 *   POST /jobs        {"type":"resize","duration":500} queues a job ("duration" in ms,
 *                     0..60000): 202 {"status":"job queued"}; 503 {"error":"queue full"}
 *                     when the queue is full; 400 for a body that is not such an object.
 *   GET  /jobs/stats  {"queued":N,"running":N,"done":N,"failed":N}
 *
 * Config ([plugin queue_worker]): queue_size = N (1..100000, default 10) bounds the jobs
 * waiting for a worker; those being run do not count.
 *
 * init makes the queue and starts WORKERS coroutines with sq_spawn. Each takes a job,
 * "runs" it by awaiting sq_sleep(duration) (a job of type "fail" ends as failed), frees
 * it and marks it done. At shutdown the host cancels every coroutine: a worker's await
 * then returns SQ_ECANCELED and it returns 0; fini then frees the jobs still queued and
 * the queue. A job belongs to the handler that made it until the queue takes it, then to
 * the worker that gets it, or to fini if no worker ever does.
 *
 * The Tornado code it mirrors:
 *
 *     async def worker(queue):
 *         while True:
 *             job = await queue.get()
 *             try:
 *                 await asyncio.sleep(job["duration"] / 1000)
 *             finally:
 *                 queue.task_done()
 *
 *     class JobsHandler(RequestHandler):
 *         def post(self):
 *             try:
 *                 queue.put_nowait(json.loads(self.request.body))
 *             except asyncio.QueueFull:
 *                 raise HTTPError(503)
 *             self.write({"status": "job queued"})
 */
#include <squall.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 3
#define QUEUE_SIZE_DEFAULT 10
#define QUEUE_SIZE_MAX 100000
#define DURATION_MAX 60000
#define TYPE_MAX 64

/* The instance's state, made by init and freed by fini. The counters describe jobs: put
   and not yet taken, being run, finished. */
struct jobs {
    sq_queue *queue; /* of struct job *, owned by the queue's holder (see above) */
    json_int_t queued, running, done, failed;
};

/* One job, malloc()ed by POST /jobs and freed by the worker that runs it. */
struct job {
    uint64_t duration_ms;
    bool fails;
    char type[]; /* NUL-terminated */
};

/* ---- Workers ---- */

/* Runs job and frees it. Returns 0, or SQ_ECANCELED when cancelled mid-way (the job is
   then dropped: it counts as neither done nor failed). */
static int job_run(struct jobs *st, struct job *job)
{
    st->queued--;
    st->running++;
    int rc = sq_sleep(job->duration_ms);
    st->running--;
    if (rc == 0 && job->fails) {
        st->failed++;
        sq_log(SQ_LOG_WARN, "job '%s' failed", job->type);
    } else if (rc == 0) {
        st->done++;
    }
    free(job);
    sq_queue_task_done(st->queue);
    return rc;
}

/* A worker task: runs jobs until the host cancels it at shutdown. */
static int worker(void *arg)
{
    struct jobs *st = arg;

    for (;;) {
        void *job;
        int rc = sq_queue_get(st->queue, &job, -1);
        if (rc == 0)
            rc = job_run(st, job);
        if (rc == SQ_ECANCELED)
            return 0; /* shutdown */
        if (rc < 0)
            return rc; /* not expected: no timeout, no deadline; the host logs sq_errmsg() */
    }
}

/* ---- Handlers ---- */

/* A job made from the request's body, or NULL with *why saying what is wrong with it
   (NULL on out-of-memory). The caller owns the job. */
static struct job *job_parse(sq_req *r, const char **why)
{
    json_t *body = sq_body_json(r);
    json_error_t err;
    const char *type;
    json_int_t duration;

    *why = NULL;
    if (!body) {
        *why = sq_printf(r, "body must be JSON: %s", sq_errmsg());
        return NULL;
    }
    if (json_unpack_ex(body, &err, 0, "{s:s, s:I}", "type", &type, "duration", &duration) < 0) {
        *why = sq_printf(r, "bad job: %s", err.text);
        return NULL;
    }
    size_t len = strlen(type);
    if (len == 0 || len > TYPE_MAX || duration < 0 || duration > DURATION_MAX) {
        *why = len == 0 || len > TYPE_MAX ? "type must be 1 to 64 bytes"
                                          : "duration must be an integer from 0 to 60000 (ms)";
        return NULL;
    }
    struct job *job = malloc(sizeof(*job) + len + 1);
    if (!job)
        return NULL;
    job->duration_ms = (uint64_t)duration;
    job->fails = strcmp(type, "fail") == 0;
    memcpy(job->type, type, len + 1);
    return job;
}

/* POST /jobs: queues a job without waiting: a full queue is the client's to retry. */
static int post_job(sq_req *r)
{
    struct jobs *st = sq_plugin_get_data(sq_req_plugin(r));
    const char *why;
    struct job *job = job_parse(r, &why);

    if (!job)
        return why ? sq_reply_error(r, 400, "%s", why) : sq_reply_error(r, 503, "out of memory");
    if (sq_queue_put_nowait(st->queue, job) < 0) {
        free(job);
        return sq_reply_error(r, 503, "queue full");
    }
    st->queued++;
    return sq_reply_json(r, 202, json_pack("{s:s}", "status", "job queued"));
}

/* GET /jobs/stats */
static int stats(sq_req *r)
{
    const struct jobs *st = sq_plugin_get_data(sq_req_plugin(r));

    return sq_reply_json(r, 200,
                         json_pack("{s:I, s:I, s:I, s:I}", "queued", st->queued, "running",
                                   st->running, "done", st->done, "failed", st->failed));
}

/* ---- Lifecycle ---- */

/* queue_size from the config: QUEUE_SIZE_DEFAULT when absent; 0 (logged) when bad. */
static size_t config_queue_size(sq_plugin_ctx *ctx)
{
    const char *v = sq_config_get(ctx, "queue_size");
    char *end;

    if (!v)
        return QUEUE_SIZE_DEFAULT;
    unsigned long n = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || n < 1 || n > QUEUE_SIZE_MAX) { /* no sign, no blank */
        sq_log(SQ_LOG_ERROR, "queue_size = %s: must be an integer from 1 to %d", v, QUEUE_SIZE_MAX);
        return 0;
    }
    return n;
}

/* Makes the queue and starts the workers. A worker that cannot be started (out of memory)
   is only a warning while one runs: the workers that did start hold st, so it cannot be
   freed here once any has. */
static int init(sq_plugin_ctx *ctx)
{
    size_t size = config_queue_size(ctx);
    struct jobs *st = size ? calloc(1, sizeof(*st)) : NULL;
    int started = 0;

    if (!size)
        return -1;
    if (!st || !(st->queue = sq_queue_new(size))) {
        sq_log(SQ_LOG_ERROR, "out of memory");
        free(st);
        return -1;
    }
    for (int i = 0; i < WORKERS; i++)
        started += sq_spawn(worker, st) == 0;
    if (started == 0) {
        sq_log(SQ_LOG_ERROR, "cannot start a worker: %s", sq_errmsg());
        sq_queue_free(st->queue);
        free(st);
        return -1;
    }
    if (started < WORKERS)
        sq_log(SQ_LOG_WARN, "only %d of %d workers started", started, WORKERS);
    sq_plugin_set_data(ctx, st);
    return 0;
}

/* Runs after the host has cancelled the workers and they have ended: what is still queued
   was never taken, and is freed here. */
static void fini(sq_plugin_ctx *ctx)
{
    struct jobs *st = sq_plugin_get_data(ctx);
    void *job;

    while (sq_queue_get_nowait(st->queue, &job) == 0)
        free(job);
    sq_queue_free(st->queue);
    free(st);
}

static const sq_route routes[] = {
    {"POST", "/jobs", post_job},
    {"GET", "/jobs/stats", stats},
    {0},
};

SQ_PLUGIN(.name = "queue_worker", .version = "1.0.0", .routes = routes, .init = init, .fini = fini);
