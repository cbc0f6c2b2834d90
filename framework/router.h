/*
 * router.h - method + path patterns to routes.
 *
 * Patterns are absolute paths whose segments are static text or a parameter:
 *   {name}       one non-empty segment
 *   {name:int}   one segment of decimal digits, optional leading '-', fitting in int64
 *   {name:path}  the rest of the path, possibly empty or with slashes; last segment only
 * At each segment a static match wins over {:int}, which wins over {name}, which wins over
 * {:path}; the matcher backtracks, so the most specific route that matches is found.
 * Matching is on the raw (still percent-encoded) path; parameter values are raw slices of it.
 */
#ifndef SQUALL_ROUTER_H
#define SQUALL_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 8

struct router;

struct route_params {
    size_t n;
    struct {
        const char *name;  /* from the pattern; owned by the router */
        const char *value; /* slice of the matched path, not NUL-terminated */
        size_t len;
    } p[ROUTER_MAX_PARAMS];
};

enum router_result { ROUTER_FOUND, ROUTER_NOT_FOUND, ROUTER_METHOD_NOT_ALLOWED };

/* Returns a new empty router; aborts on out-of-memory. */
struct router *router_new(void);
void router_free(struct router *r);

/*
 * Adds METHOD PATTERN -> data. method is an HTTP token ("GET", "POST", ...; "HEAD" may be
 * registered explicitly, otherwise GET routes serve HEAD). Returns 0, or -1 with a message
 * in err (bad pattern: not starting with '/', unknown type, empty or duplicate parameter
 * name, {:path} not last, more than ROUTER_MAX_PARAMS; or the same method already claims
 * an equivalent pattern, i.e. one that differs only in parameter names). The router copies
 * what it keeps; data is the caller's.
 */
int router_add(struct router *r, const char *method, const char *pattern, void *data,
               char *err, size_t errlen);

/*
 * Finds the route for method + path (path without the query). On ROUTER_FOUND sets *data
 * and params. On ROUTER_METHOD_NOT_ALLOWED, writes the methods the path does accept to
 * allow as a NUL-terminated list like "GET, HEAD, POST" (HEAD listed when GET is), in
 * the order the methods were first registered on that path.
 */
enum router_result router_match(const struct router *r, const char *method, size_t method_len,
                                const char *path, size_t path_len, void **data,
                                struct route_params *params, char *allow, size_t allowlen);

/* Checks a pattern's syntax alone; 0 or -1 with a message in err. */
int router_check_pattern(const char *pattern, char *err, size_t errlen);

#endif
