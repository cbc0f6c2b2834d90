/*
 * squall.h - the whole public API of squall, for plugin authors.
 *
 * A plugin is a shared object that defines one descriptor with SQ_PLUGIN(...): its name,
 * version, routes, and optional init/fini. The host dlopen()s it, checks the descriptor's
 * ABI version and size, calls init, and mounts the routes under the plugin's `mount`.
 *
 *     #include <squall.h>
 *
 *     static int hello(sq_req *r)
 *     {
 *         return sq_reply(r, 200, "text/plain", "Hello, World!", 13);
 *     }
 *
 *     static const sq_route routes[] = {
 *         { "GET", "/hello", hello },
 *         { 0 }
 *     };
 *
 *     SQ_PLUGIN(.name = "hello", .version = "1.0.0", .routes = routes);
 *
 * Threads: every function here must be called on the host's loop thread (from a handler,
 * init or fini), never from another thread.
 *
 * Errors: commands return 0 on success or a negative SQ_E* code; functions returning a
 * pointer return NULL on failure. sq_errmsg() then says why.
 */
#ifndef SQUALL_H
#define SQUALL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when the descriptor or a type it points to changes incompatibly. */
#define SQ_ABI_VERSION 1

#define SQ_EINVAL (-22)     /* bad argument, or an await outside a coroutine */
#define SQ_ENOMEM (-12)     /* out of memory */
#define SQ_EALREADY (-114)  /* the request already has a reply */
#define SQ_EAGAIN (-11)     /* a _nowait call would have had to wait */
#define SQ_ETIMEDOUT (-110) /* the wait's timeout or the coroutine's deadline passed */
#define SQ_ECANCELED (-125) /* the coroutine was cancelled (e.g. its client went away) */
#define SQ_EIO (-5)         /* the database answered with an error, or the connection broke */

#if defined(__GNUC__)
#define SQ_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SQ_PRINTF(fmt, args)
#endif

/* One HTTP request and its reply. Owned by the host; valid until the handler returns. */
typedef struct sq_req sq_req;

/* A loaded plugin instance, as seen by its init and fini. Owned by the host. */
typedef struct sq_plugin_ctx sq_plugin_ctx;

/*
 * A request handler. It replies with one of the sq_reply* functions and returns 0, or
 * returns an HTTP status >= 400 without replying, which the host renders as
 * {"error":"<reason phrase>"}. Returning anything else without a reply is a 500 and a log
 * line naming the plugin and route.
 */
typedef int (*sq_handler_fn)(sq_req *r);

/*
 * One route. method is an HTTP method ("GET", "POST", ...); a GET route serves HEAD too.
 * path is a pattern, mounted under the plugin's `mount`:
 *   /users/{id}        one path segment, read with sq_param(r, "id")
 *   /users/{id:int}    digits with an optional '-'; read with sq_param_int(r, "id")
 *   /files/{rest:path} the rest of the path, slashes included; last segment only
 * A static segment wins over a parameter. Routes are read in order up to { 0 }.
 * Fields may only be appended to this struct: the descriptor records its size.
 *
 * timeout_ms: the handler's deadline (0 = none). When it passes, the client gets 408
 * {"error":"Request timeout"} (`timeout_status` in plugins.conf changes the status), the
 * handler's pending await returns SQ_ETIMEDOUT, and whatever it replies afterwards is
 * dropped. `timeout = 5s` in the plugin's or the route's section of plugins.conf overrides it.
 *
 * ratelimit: "N/PERIOD" ("10/60s", "100/1s") requests per client address (NULL = none);
 * the 429 reply and headers are described with `ratelimit` in plugins.conf, which overrides
 * it (`ratelimit = off` turns it off).
 *
 * cache_ttl_s: GET/HEAD replies of status 200 are cached for this many seconds (0 = not
 * cached); `cache = 30s` / `cache = off` in plugins.conf overrides it.
 */
typedef struct sq_route {
    const char *method;
    const char *path;
    sq_handler_fn handler;
    int timeout_ms;
    const char *ratelimit;
    int cache_ttl_s;
} sq_route;

/*
 * The descriptor SQ_PLUGIN defines. abi_version and size come first and are checked by the
 * host before it reads anything else; new fields are only ever appended.
 */
typedef struct sq_plugin {
    uint32_t abi_version; /* SQ_ABI_VERSION the plugin was built with */
    uint32_t size;        /* sizeof(sq_plugin) the plugin was built with */
    uint32_t route_size;  /* sizeof(sq_route) the plugin was built with */
    const char *name;     /* must match the [plugin NAME] section that loads it */
    const char *version;  /* free text, logged at load */
    const sq_route *routes;
    /* Called once after load, before any request. May read config with sq_config_get and
       keep state with sq_plugin_set_data. Returns 0, or non-zero to refuse to load (say why
       with sq_log first). */
    int (*init)(sq_plugin_ctx *ctx);
    /* Called once when the instance retires (host exit, or a hot reload once its last
       request has finished); frees what init made. */
    void (*fini)(sq_plugin_ctx *ctx);
    /* Optional, for hot reload: the old instance's state as JSON (a new reference), handed
       to the new instance's restore_state right after its init, before it serves. Either
       side may lack them; then the new instance starts with what its init made. Both run
       on the loop, not in a coroutine (no awaiting). The old instance still finishes its
       in-flight requests afterwards, so what they change later is not in the state; and if
       the reload is refused after all, the old instance goes on serving. */
    json_t *(*save_state)(sq_plugin_ctx *ctx);
    /* Takes the state (borrowed: the host frees it; json_incref what is kept). Returns 0,
       or non-zero to start without it (logged). */
    int (*restore_state)(sq_plugin_ctx *ctx, json_t *state);
} sq_plugin;

/* Defines the plugin's descriptor: SQ_PLUGIN(.name = "x", .routes = routes, ...). */
#define SQ_PLUGIN(...)                                                                     \
    __attribute__((visibility("default"))) const sq_plugin sq_plugin_descriptor = {         \
        .abi_version = SQ_ABI_VERSION,                                                     \
        .size = sizeof(sq_plugin),                                                         \
        .route_size = sizeof(sq_route),                                                    \
        __VA_ARGS__}

/* The symbol the host looks up. */
#define SQ_PLUGIN_SYMBOL "sq_plugin_descriptor"

/* ---- Request --------------------------------------------------------------------------
 * Every string returned below is NUL-terminated, owned by the host, and valid until the
 * handler returns; copy it (sq_strdup) only to keep it longer than that. */

/* The method as sent, e.g. "GET". A HEAD request served by a GET route says "HEAD". */
const char *sq_method(sq_req *r);

/* The path as sent (still percent-encoded), without the query, e.g. "/users/42". */
const char *sq_path(sq_req *r);

/* The raw query string after '?', or "" when there is none. */
const char *sq_query_string(sq_req *r);

/*
 * The first query argument called name, percent-decoded and with '+' read as a space
 * ("?q=a+b%21" -> "a b!"); "" for "?q" or "?q="; NULL when absent, when the value holds
 * an encoded NUL ("%00"), or out of memory.
 * The decoded copy lives in the request's arena.
 */
const char *sq_query(sq_req *r, const char *name);

/* The path parameter called name from the route pattern, percent-decoded; NULL if the
   route has no such parameter or its value holds an encoded NUL ("%00"). */
const char *sq_param(sq_req *r, const char *name);

/* An {name:int} parameter as a number (the router has checked it fits); 0 when absent. */
int64_t sq_param_int(sq_req *r, const char *name);

/* The first request header called name (case-insensitive), or NULL. */
const char *sq_header(sq_req *r, const char *name);

/*
 * The request body (de-chunked), or NULL when there is none; *len gets its length when
 * len is not NULL. The bytes are NOT NUL-terminated.
 */
const char *sq_body(sq_req *r, size_t *len);

/*
 * The body parsed as JSON (any value: an object, an array, or a scalar such as "Ada" or
 * 42), or NULL when it is empty or not valid JSON (sq_errmsg says where). The reference is
 * borrowed: the host owns it and frees it after the handler.
 */
json_t *sq_body_json(sq_req *r);

/* The client's address, e.g. "127.0.0.1" or "::1". */
const char *sq_remote_addr(sq_req *r);

/* ---- Reply ----------------------------------------------------------------------------
 * A request gets one reply. Server, Date, Content-Type and Content-Length are always sent;
 * the body is left out for HEAD. A second reply fails with SQ_EALREADY. */

/* Adds a header to the reply about to be sent. name and value are copied. 0 or SQ_E*. */
int sq_reply_header(sq_req *r, const char *name, const char *value);

/* Replies with status, content_type (NULL = "text/plain; charset=utf-8") and body[0..len),
   which is copied. Returns 0 or SQ_E*. */
int sq_reply(sq_req *r, int status, const char *content_type, const void *body, size_t len);

/* Replies with json serialized compactly as application/json. Steals the reference to json
   (it is freed even when the reply fails). Returns 0 or SQ_E*. */
int sq_reply_json(sq_req *r, int status, json_t *json);

/* Replies {"error":"<formatted message>"} with status. Returns 0 or SQ_E*. */
int sq_reply_error(sq_req *r, int status, const char *fmt, ...) SQ_PRINTF(3, 4);

/* ---- Memory: the request's arena -------------------------------------------------------
 * Freed all at once after the handler returns; never free() it. NULL on out-of-memory. */

void *sq_alloc(sq_req *r, size_t n);
char *sq_strdup(sq_req *r, const char *s);
char *sq_printf(sq_req *r, const char *fmt, ...) SQ_PRINTF(2, 3);

/* ---- Plugin instance ------------------------------------------------------------------ */

/* A free key of the plugin's [plugin NAME] section, or NULL. Owned by the host; valid for
   the instance's lifetime. */
const char *sq_config_get(sq_plugin_ctx *ctx, const char *key);

/* The plugin's name as configured. */
const char *sq_plugin_name(sq_plugin_ctx *ctx);

/* Keeps a pointer for the instance (the plugin owns what it points to; free it in fini). */
void sq_plugin_set_data(sq_plugin_ctx *ctx, void *data);
void *sq_plugin_get_data(sq_plugin_ctx *ctx);

/* The instance serving request r. */
sq_plugin_ctx *sq_req_plugin(sq_req *r);

/* ---- Middleware -----------------------------------------------------------------------
 * A plugin may provide middleware (authentication, auditing, ...) that routes of any
 * plugin use by name: `use = auth` in their [plugin] or [route] section. On a route it
 * runs after the rate limit and before the response cache and the handler, in the order
 * `use` lists. */

/* What a middleware's before function returns to pass the request on. */
#define SQ_NEXT 0

/*
 * Runs before the handler, in the handler's coroutine (it may await). Returns SQ_NEXT to
 * pass the request on; or replies (sq_reply*) and returns 0 to stop there; or returns an
 * HTTP status >= 400 without replying, which the host renders as {"error":"<reason>"}.
 */
typedef int (*sq_before_fn)(sq_req *r, void *arg);

/*
 * Runs on every reply to a request that before passed on (whoever made the reply: the
 * handler, a later middleware, the timeout), just before it is sent: status is the reply's,
 * and sq_reply_header may add headers; it cannot reply or await.
 */
typedef void (*sq_after_fn)(sq_req *r, int status, void *arg);

/*
 * Registers middleware `name` (letters, digits, '_', '-'; copied) provided by this plugin;
 * call it from init. before or after may be NULL. arg is passed to both and stays the
 * plugin's: it must live until fini.
 * Returns 0; SQ_EINVAL on a bad name or outside init; SQ_EALREADY when this plugin already
 * provides that name (two plugins providing one name is an error at start).
 */
int sq_middleware_add(sq_plugin_ctx *ctx, const char *name, sq_before_fn before,
                      sq_after_fn after, void *arg);

/* ---- Cache ----------------------------------------------------------------------------
 * A key/value store with a TTL per entry, in memory, for a plugin's own data (the
 * AsyncCache pattern): the same store as the response cache, bounded by [server]
 * cache_max_bytes with least-recently-used eviction, so an entry may go before its TTL.
 * Keys are per plugin (two plugins' "user:1" are different entries) and survive a hot
 * reload of the plugin. Per process: with several workers each has its own. Expired
 * entries are swept periodically and on access. */

/* Stores a copy of value[0..len) under key for ttl_ms milliseconds (> 0), replacing any
   entry. 0; SQ_EINVAL (bad arguments, no plugin running, or larger than the store). */
int sq_cache_set(const char *key, const void *value, size_t len, uint64_t ttl_ms);

/* A copy of the live value under key, NUL-terminated (so text can be used as a string),
   with *len (may be NULL) set to its length; in the running coroutine's memory, freed when
   it ends. NULL when absent or expired (sq_errmsg says so), or outside a coroutine. */
const void *sq_cache_get(const char *key, size_t *len);

/* Removes the entry. 0, or SQ_EINVAL when there was none. */
int sq_cache_del(const char *key);

/* Removes every entry of the running plugin. */
void sq_cache_clear(void);

/* ---- Coroutines and awaiting ----------------------------------------------------------
 * Every handler runs in its own coroutine, and so do tasks (sq_spawn), operations
 * (sq_op_start) and periodic runs (sq_every). The calls below marked "awaits" park the
 * running coroutine until their result is there while the loop serves everyone else; they
 * may only be called from a coroutine (elsewhere they return SQ_EINVAL at once).
 *
 * Every await ends early with SQ_ETIMEDOUT when the coroutine's deadline passes, and with
 * SQ_ECANCELED when the coroutine is cancelled (its client disconnected, the host is
 * shutting down, or its parent gave up on it). Once cancelled, every later await fails
 * too: return promptly. A request whose coroutine was cancelled drops its reply. */

/* A task: runs in its own coroutine; returns 0, or non-zero with sq_errmsg() saying why. */
typedef int (*sq_task_fn)(void *arg);

/* A plain callback, run on the loop (not in a coroutine: it must not await). */
typedef void (*sq_callback_fn)(void *arg);

/* Awaits ms milliseconds. Returns 0, SQ_ETIMEDOUT or SQ_ECANCELED. sq_sleep(0) yields to
   the loop once. */
int sq_sleep(uint64_t ms);

/* Sets the running coroutine's deadline ms from now (0 removes it); operations it starts
   inherit it. Returns 0 or SQ_EINVAL outside a coroutine. */
int sq_set_deadline(uint64_t ms);

/* Runs fn(arg) in the running coroutine with a deadline ms from now (or the current one, if
   sooner), then restores the previous deadline. Returns fn's result. */
int sq_with_timeout(uint64_t ms, sq_task_fn fn, void *arg);

/* Memory of the running coroutine (a handler's is its request's arena), freed when it
   ends; NULL outside a coroutine or on out-of-memory. */
void *sq_coro_alloc(size_t n);

/* Starts fn(arg) as a fire-and-forget task, like asyncio.create_task. A non-zero return
   is logged with the plugin's name and sq_errmsg(). arg is the caller's to keep alive.
   Returns 0, SQ_ENOMEM, or SQ_EINVAL on a thread without a loop. May be called from init,
   a handler, a task or a callback. */
int sq_spawn(sq_task_fn fn, void *arg);

/* ---- Concurrent operations: gather and first-completed --------------------------------- */

/* One operation: fn(arg, &result) in a coroutine of its own, a child of the coroutine that
   started it. Returns 0 or an error (negative SQ_E*, or any non-zero code of its own). */
typedef int (*sq_op_fn)(void *arg, void **result);
typedef struct sq_op sq_op;

/* Starts fn(arg) concurrently; it runs as soon as the caller awaits. The handle lives in
   the caller's arena until the caller ends; the caller waits for its unfinished
   operations when it ends (cancelling them first). NULL outside a coroutine. */
sq_op *sq_op_start(sq_op_fn fn, void *arg);

/* Awaits until every op has finished, each keeping its own status, result and error (like
   gather(return_exceptions=True)). Returns 0; or SQ_ETIMEDOUT / SQ_ECANCELED when the
   waiting coroutine itself gives up, after cancelling the ops still running. */
int sq_await_all(sq_op **ops, size_t n);

/* Awaits until one op has finished; returns its index, or SQ_ETIMEDOUT / SQ_ECANCELED.
   The others keep running. */
int sq_await_any(sq_op **ops, size_t n);

/* Whether op has finished. */
int sq_op_done(const sq_op *op);

/* The op's return value once finished (SQ_ECANCELED if it was cancelled before it ran). */
int sq_op_status(const sq_op *op);

/* The result fn stored, or NULL. */
void *sq_op_result(const sq_op *op);

/* sq_errmsg() as it was when fn returned an error, or NULL. Lives with the op. */
const char *sq_op_error(const sq_op *op);

/* Cancels op: its pending and later awaits fail with SQ_ECANCELED. */
void sq_op_cancel(sq_op *op);

/* ---- The loop: callbacks and timers ---------------------------------------------------- */

typedef struct sq_timer sq_timer;
typedef struct sq_periodic sq_periodic;

/* Runs fn(arg) on the next turn of the loop. 0, or SQ_EINVAL on a thread without a loop. */
int sq_add_callback(sq_callback_fn fn, void *arg);

/* Runs fn(arg) on the loop in ms milliseconds. The handle is valid until fn has started or
   the timer is cancelled; NULL on out-of-memory. */
sq_timer *sq_call_later(uint64_t ms, sq_callback_fn fn, void *arg);

/* Cancels a timer that has not fired yet (and frees the handle). */
void sq_timer_cancel(sq_timer *t);

/*
 * Runs fn(arg) every ms milliseconds, each run in a coroutine of its own (it may await),
 * like Tornado's PeriodicCallback: a run never overlaps the previous one, ticks that come
 * while a run is still going are skipped, and with jitter > 0 (0..1) each interval is
 * ms * (1 + jitter * r) for r uniform in [-0.5, 0.5]. A non-zero return is logged. Stops
 * with sq_periodic_stop or when the plugin instance retires. NULL on bad arguments, and
 * when called by an instance that a reload has replaced (from a request it still serves).
 */
sq_periodic *sq_every(uint64_t ms, double jitter, sq_task_fn fn, void *arg);

/* Stops and frees p; a run in progress finishes (it is not cancelled). */
void sq_periodic_stop(sq_periodic *p);

/* ---- Synchronisation between coroutines -----------------------------------------------
 * All FIFO-fair. timeout_ms < 0 waits without a timeout of its own (the deadline still
 * applies). Objects are owned by whoever created them (usually a plugin's init; free them
 * in fini); freeing one wakes its waiters with SQ_ECANCELED. The _new functions return
 * NULL on out-of-memory; a queue's buffer grows with the host's allocator (out of memory
 * there aborts, as everywhere in the host). */

typedef struct sq_lock sq_lock;
typedef struct sq_event sq_event;
typedef struct sq_semaphore sq_semaphore;
typedef struct sq_queue sq_queue;

sq_lock *sq_lock_new(void);
void sq_lock_free(sq_lock *l);
/* Awaits the lock. 0, SQ_ETIMEDOUT or SQ_ECANCELED. */
int sq_lock_acquire(sq_lock *l, int64_t timeout_ms);
/* 0 if taken at once, SQ_EAGAIN if held. */
int sq_lock_try(sq_lock *l);
/* Releases; the longest waiter gets it next. */
void sq_lock_release(sq_lock *l);

sq_event *sq_event_new(void);
void sq_event_free(sq_event *e);
/* Sets the flag and wakes every waiter. */
void sq_event_set(sq_event *e);
void sq_event_clear(sq_event *e);
int sq_event_is_set(const sq_event *e);
/* Awaits until the flag is set (at once if it is). 0, SQ_ETIMEDOUT or SQ_ECANCELED. */
int sq_event_wait(sq_event *e, int64_t timeout_ms);

sq_semaphore *sq_semaphore_new(unsigned value);
void sq_semaphore_free(sq_semaphore *s);
/* Awaits a unit. 0, SQ_ETIMEDOUT or SQ_ECANCELED. */
int sq_semaphore_acquire(sq_semaphore *s, int64_t timeout_ms);
void sq_semaphore_release(sq_semaphore *s);

/* A bounded FIFO of pointers (maxsize 0 = unbounded), like asyncio.Queue. The queue does
   not own the items. */
sq_queue *sq_queue_new(size_t maxsize);
void sq_queue_free(sq_queue *q);
/* Awaits room, then appends item. 0, SQ_ETIMEDOUT or SQ_ECANCELED. */
int sq_queue_put(sq_queue *q, void *item, int64_t timeout_ms);
/* Appends at once, or SQ_EAGAIN when full. May be called outside a coroutine. */
int sq_queue_put_nowait(sq_queue *q, void *item);
/* Awaits an item. 0 with *item set, SQ_ETIMEDOUT or SQ_ECANCELED. */
int sq_queue_get(sq_queue *q, void **item, int64_t timeout_ms);
/* Takes an item at once, or SQ_EAGAIN when empty. */
int sq_queue_get_nowait(sq_queue *q, void **item);
/* Marks one item taken by get as processed (for sq_queue_join). */
void sq_queue_task_done(sq_queue *q);
/* Awaits until every item put has been marked done. 0, SQ_ETIMEDOUT or SQ_ECANCELED. */
int sq_queue_join(sq_queue *q, int64_t timeout_ms);
size_t sq_queue_size(const sq_queue *q);

/* ---- Blocking work ----------------------------------------------------------------------
 * A handler that blocks (a synchronous call, heavy CPU) stalls every connection of the
 * process: run such work here instead. */

/* Awaits fn(arg) run on the host's thread pool ([server] threads); *result (when not NULL)
   gets its return value. fn must not call the SDK. The work cannot be interrupted: a
   deadline or cancellation takes effect when fn returns (then the call returns SQ_ETIMEDOUT
   or SQ_ECANCELED and *result is still set). 0 or SQ_E*. */
int sq_run_in_thread(void *(*fn)(void *arg), void *arg, void **result);

/* For tools and tests: runs fn(arg) as a coroutine on a fresh loop in this thread until it
   and everything it spawned have finished; returns fn's result. SQ_EINVAL when this thread
   already runs a loop. */
int sq_run_sync(sq_task_fn fn, void *arg);

/* ---- PostgreSQL -------------------------------------------------------------------------
 * The [database] section of plugins.conf gives the host one pool of connections per process
 * (dsn = embedded runs a private cluster). Without it every call below fails with SQ_EINVAL
 * and sq_errmsg() "no [database] in the config".
 *
 * Queries take $1..$n text parameters, sent apart from the SQL text (never spliced into it:
 * a parameter is always data). NULL as a parameter is SQL NULL. One statement per query.
 * Each distinct SQL text is prepared once per connection and reused.
 *
 * The calls marked "awaits" park the running coroutine (see "Coroutines and awaiting") and
 * may only be called from one. A query that outlives the coroutine's deadline, or whose
 * coroutine is cancelled (its client went away), is cancelled on the server (PQcancel) and
 * the call fails with SQ_ETIMEDOUT / SQ_ECANCELED.
 *
 * When no connection is free within pool_wait_timeout (SQ_ETIMEDOUT, "pool exhausted"), when
 * the database cannot be reached (SQ_EIO, "database unavailable": at once, without waiting,
 * while it stays down), or when the connection breaks mid-query (SQ_EIO), the call fails and
 * the request is marked unavailable: a handler that then returns without a reply gets 503
 * instead of 500. Connections open on demand, up to pool_size. While all of them are busy,
 * a connection that frees up takes several waiting queries at once into one pipeline (each
 * still its own implicit transaction, with its own result or error), when they ran quickly
 * on it before: a query waiting there is not cancelled when one ahead of it is; it is
 * skipped (it still runs on the server).
 *
 * Results and batches live in the running coroutine's memory and are freed when it ends (a
 * handler's when its request ends): never free them, and do not keep them longer. */

/* A query's result: rows of text values. Owned by the running coroutine. */
typedef struct sq_pg_result sq_pg_result;

/* Queries to send together (sq_pg_batch_new). Owned by the running coroutine. */
typedef struct sq_pg_batch sq_pg_batch;

/* Called with a notification on a LISTENed channel: on the loop, not in a coroutine (it
   must not await; it may sq_spawn). channel and payload are valid during the call only. */
typedef void (*sq_pg_listen_fn)(const char *channel, const char *payload, void *arg);

/*
 * Awaits sql run with params[0..nparams) as $1..$n (nparams 0..65535; params may be NULL
 * when nparams is 0). The strings are only read during the call.
 * Returns the result, or NULL with sq_errmsg() saying why and sq_pg_sqlstate() giving the
 * server's SQLSTATE when the server refused the query ("23505" for a unique violation).
 * Inside sq_pg_begin .. sq_pg_commit the query runs in that transaction.
 */
sq_pg_result *sq_pg_exec(const char *sql, const char *const *params, int nparams);

/* sq_pg_exec with the parameters as arguments, each a const char * (or NULL):
       sq_pg_result *res = sq_pg_query("SELECT name FROM users WHERE id = $1", id); */
#define sq_pg_query(sql, ...)                                                              \
    sq_pg_exec((sql), (const char *const[]){NULL, ##__VA_ARGS__} + 1,                      \
               (int)(sizeof((const char *[]){NULL, ##__VA_ARGS__}) / sizeof(char *) - 1))

/* The SQLSTATE of this thread's last failed call, e.g. "23505"; "" when it did not fail on
   the server (connection lost, timeout, bad argument). Valid until the next failing call. */
const char *sq_pg_sqlstate(void);

/* Rows and columns of res (0 for a command that returns none, or res NULL). */
int sq_pg_ntuples(const sq_pg_result *res);
int sq_pg_nfields(const sq_pg_result *res);

/* The name of column col, or NULL out of range. Lives with res. */
const char *sq_pg_fname(const sq_pg_result *res, int col);

/* The value at row, col as text (PostgreSQL's output format: "t"/"f" for booleans), "" for
   SQL NULL (tell them apart with sq_pg_isnull), NULL out of range. Lives with res. */
const char *sq_pg_value(const sq_pg_result *res, int row, int col);

/* Whether the value at row, col is SQL NULL (1) or not (0); 1 out of range. */
int sq_pg_isnull(const sq_pg_result *res, int row, int col);

/* The rows an INSERT, UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH or COPY affected, as a
   decimal string; "" for other commands. Lives with res. */
const char *sq_pg_cmd_tuples(const sq_pg_result *res);

/*
 * Row row of res as a JSON object {column: value}. Values follow the column's type:
 * smallint, integer, bigint, oid -> integer; real, double precision -> real (NaN and
 * infinities -> string); numeric -> string (exact); boolean -> true/false; json, jsonb ->
 * the parsed JSON; SQL NULL -> null; any other type -> its text. A new reference the
 * caller owns (sq_reply_json steals it); NULL when row is out of range or out of memory.
 */
json_t *sq_pg_row_json(const sq_pg_result *res, int row);

/* Every row of res as a JSON array of sq_pg_row_json objects; a new reference, NULL out of
   memory. */
json_t *sq_pg_rows_json(const sq_pg_result *res);

/*
 * Awaits a connection from the pool and starts a transaction on it (BEGIN). Until commit or
 * rollback, the running coroutine's queries and batches go to that connection. A coroutine
 * that ends with its transaction open (returned, failed, cancelled) has it rolled back and
 * the connection goes back to the pool. Returns 0, SQ_EINVAL (not in a coroutine, one
 * already open, no database), SQ_ETIMEDOUT, SQ_ECANCELED or SQ_EIO.
 */
int sq_pg_begin(void);

/* Awaits COMMIT of the running coroutine's transaction and releases its connection. A
   transaction in which a statement failed is rolled back instead: SQ_EIO. 0 or SQ_E*;
   either way the transaction is over. */
int sq_pg_commit(void);

/* Awaits ROLLBACK of the running coroutine's transaction and releases its connection.
   0 (also when its connection was lost: the server rolled back), or SQ_EINVAL when none
   is open. */
int sq_pg_rollback(void);

/* A new, empty batch in the running coroutine's memory; NULL outside a coroutine or out of
   memory. */
sq_pg_batch *sq_pg_batch_new(void);

/* Appends a query to b. sql and params are copied. Returns its index (0, 1, ...), or
   SQ_EINVAL (bad arguments, b already run) / SQ_ENOMEM. */
int sq_pg_batch_add(sq_pg_batch *b, const char *sql, const char *const *params, int nparams);

/* sq_pg_batch_add with the parameters as arguments, like sq_pg_query. */
#define sq_pg_batch_query(b, sql, ...)                                                     \
    sq_pg_batch_add((b), (sql), (const char *const[]){NULL, ##__VA_ARGS__} + 1,            \
                    (int)(sizeof((const char *[]){NULL, ##__VA_ARGS__}) / sizeof(char *) - 1))

/*
 * Awaits b's queries sent back to back on one connection, in order, without waiting for
 * one another's results (libpq pipeline mode): one round-trip time for all of them. Each
 * query is its own implicit transaction (inside sq_pg_begin, a failing query aborts that
 * transaction for the ones after it), so one failing does not fail the others: read each
 * with sq_pg_batch_result. Returns 0 once every query has its result or error; SQ_EINVAL
 * (run already, no database), SQ_ETIMEDOUT, SQ_ECANCELED or SQ_EIO when the batch itself
 * failed (queries without a result then carry that error).
 */
int sq_pg_batch_run(sq_pg_batch *b);

/* Query i's result once b has run, or NULL with sq_errmsg() and sq_pg_sqlstate() set to
   that query's own error. */
sq_pg_result *sq_pg_batch_result(sq_pg_batch *b, int i);

/*
 * Calls fn(channel, payload, arg) for every NOTIFY on channel (1..63 bytes), from a
 * dedicated connection shared by the process's listeners, which reconnects and LISTENs again
 * on its own (notifications sent while it is down are lost). Call it from init: it stops
 * when the plugin instance retires. channel is copied; arg is the plugin's to keep alive.
 * Returns 0 or SQ_EINVAL; it does not wait for the LISTEN to take effect.
 */
int sq_pg_listen(sq_plugin_ctx *ctx, const char *channel, sq_pg_listen_fn fn, void *arg);

/* Awaits NOTIFY channel with payload (NULL = none), i.e. SELECT pg_notify($1, $2). 0 or
   SQ_E* as for sq_pg_exec. */
int sq_pg_notify(const char *channel, const char *payload);

/* ---- Logging and errors --------------------------------------------------------------- */

enum sq_log_level { SQ_LOG_ERROR, SQ_LOG_WARN, SQ_LOG_INFO, SQ_LOG_DEBUG };

/* Writes one line to the error log, prefixed with the time, level and the name of the
   plugin whose code is running. */
void sq_log(int level, const char *fmt, ...) SQ_PRINTF(2, 3);

/* Why the last failing call failed. Valid until the next SDK call on this thread. */
const char *sq_errmsg(void);

/* Sets what sq_errmsg() says: a task or operation that fails sets it before returning its
   error, and the host logs it (sq_spawn, sq_every) or keeps it (sq_op_error). */
void sq_errmsg_set(const char *fmt, ...) SQ_PRINTF(1, 2);

#ifdef __cplusplus
}
#endif

#endif
