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

#define SQ_EINVAL (-22)   /* bad argument */
#define SQ_ENOMEM (-12)   /* out of memory */
#define SQ_EALREADY (-114) /* the request already has a reply */

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
 */
typedef struct sq_route {
    const char *method;
    const char *path;
    sq_handler_fn handler;
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
    /* Called once when the instance retires (host exit); frees what init made. */
    void (*fini)(sq_plugin_ctx *ctx);
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
 * The body parsed as JSON, or NULL when it is empty or not valid JSON (sq_errmsg says
 * where). The reference is borrowed: the host owns it and frees it after the handler.
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

/* ---- Logging and errors --------------------------------------------------------------- */

enum sq_log_level { SQ_LOG_ERROR, SQ_LOG_WARN, SQ_LOG_INFO, SQ_LOG_DEBUG };

/* Writes one line to the error log, prefixed with the time, level and the name of the
   plugin whose code is running. */
void sq_log(int level, const char *fmt, ...) SQ_PRINTF(2, 3);

/* Why the last failing call failed. Valid until the next SDK call on this thread. */
const char *sq_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif
