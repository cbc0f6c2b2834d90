/*
 * router.c - a segment trie from method + path patterns to routes.
 *
 * Paths and patterns are split on '/' after the leading one, so "/" is one empty segment,
 * "/users" is ["users"] and "/users/" is ["users", ""]: a trailing slash is a segment of its
 * own and "/users" and "/users/" are different routes.
 *
 * Each node has static children (exact segment text), at most one {:int}, one {name} and
 * one {:path} child, and per-method entries when some route ends there. Patterns that
 * differ only in parameter names end on the same node; each entry keeps its own names.
 *
 * Matching semantics (all of them, in order):
 *  1. Walk the path depth-first, trying at each segment static, then {:int}, then {name},
 *     then {:path}. A node that ends the path but has no methods is no match: backtrack.
 *     The first node reached this way is "the" node for the path, whatever the method.
 *  2. That node has the method, or the method is HEAD and it has GET: ROUTER_FOUND.
 *  3. It has other methods: ROUTER_METHOD_NOT_ALLOWED, with them listed in allow.
 *  4. No node: ROUTER_NOT_FOUND.
 * A method on a less specific route never rescues a 405 of a more specific one: a route's
 * path decides the resource, and the methods only what it answers.
 *
 * {name} needs a non-empty segment; {:int} an optional '-' then digits fitting int64;
 * {:path} takes the rest of the path, slashes included, and may be empty: "/s/{p:path}"
 * matches "/s/" and "/s/a/b" but not "/s".
 *
 * Each trie node is visited at most once per match (segment k of the path is fixed), so
 * backtracking costs O(nodes) at worst, and recursion depth is bounded by the deepest
 * pattern, never by the request. Matching never allocates.
 */
#include "router.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

enum seg_kind { SEG_STATIC, SEG_INT, SEG_STR, SEG_PATH };

/* One parsed pattern segment; all pointers point into the pattern. */
struct pseg {
    enum seg_kind kind;
    const char *text, *name;
    size_t len, namelen;
    const char *next; /* the next segment, or NULL after the last */
};

struct entry {
    char *method;
    size_t mlen;
    void *data;
    char *pattern; /* for conflict messages */
    size_t nparams;
    char *names[ROUTER_MAX_PARAMS];
};

struct static_child {
    char *seg;
    size_t len;
    struct node *node;
};

struct node {
    struct static_child *statics;
    size_t nstatics, capstatics;
    struct node *int_child, *str_child, *path_child;
    struct entry *entries;
    size_t nentries, capentries;
};

struct router {
    struct node *root;
};

static struct node *node_new(void)
{
    return xcalloc(1, sizeof(struct node));
}

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nstatics; i++) {
        free(n->statics[i].seg);
        node_free(n->statics[i].node);
    }
    for (size_t i = 0; i < n->nentries; i++) {
        struct entry *e = &n->entries[i];
        for (size_t j = 0; j < e->nparams; j++)
            free(e->names[j]);
        free(e->method);
        free(e->pattern);
    }
    node_free(n->int_child);
    node_free(n->str_child);
    node_free(n->path_child);
    free(n->statics);
    free(n->entries);
    free(n);
}

struct router *router_new(void)
{
    struct router *r = xcalloc(1, sizeof(*r));
    r->root = node_new();
    return r;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    node_free(r->root);
    free(r);
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
                                                      const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* Parses the inside of "{...}" (s[0..len)) into out's name and kind. */
static int parse_param(const char *pattern, const char *s, size_t len, struct pseg *out,
                       char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', len);
    size_t namelen = colon ? (size_t)(colon - s) : len;
    if (namelen == 0)
        return fail(err, errlen, "bad pattern \"%s\": empty parameter name", pattern);
    for (size_t i = 0; i < namelen; i++)
        if (!is_name_char(s[i]))
            return fail(err, errlen, "bad pattern \"%s\": bad parameter name \"%.*s\"",
                        pattern, (int)namelen, s);
    out->name = s;
    out->namelen = namelen;
    out->kind = SEG_STR;
    if (!colon)
        return 0;
    const char *type = colon + 1;
    size_t tlen = len - namelen - 1;
    if (tlen == 3 && !memcmp(type, "int", 3))
        out->kind = SEG_INT;
    else if (tlen == 4 && !memcmp(type, "path", 4))
        out->kind = SEG_PATH;
    else
        return fail(err, errlen, "bad pattern \"%s\": unknown parameter type \"%.*s\"",
                    pattern, (int)tlen, type);
    return 0;
}

/* Parses the segment starting at s (inside pattern) into out. */
static int parse_seg(const char *pattern, const char *s, struct pseg *out, char *err,
                     size_t errlen)
{
    const char *end = strchrnul(s, '/');
    size_t len = (size_t)(end - s);
    const char *open = memchr(s, '{', len), *close = memchr(s, '}', len);

    *out = (struct pseg){.kind = SEG_STATIC, .text = s, .len = len};
    out->next = *end ? end + 1 : NULL;
    if (!open && !close)
        return 0;
    if (open == s && !close)
        return fail(err, errlen, "bad pattern \"%s\": unclosed '{'", pattern);
    if (open != s || close != end - 1)
        return fail(err, errlen, "bad pattern \"%s\": segment \"%.*s\" mixes text and a "
                    "parameter", pattern, (int)len, s);
    return parse_param(pattern, s + 1, len - 2, out, err, errlen);
}

/* Checks a parameter against the ones before it and records it in names[*n]. */
static int check_param(const char *pattern, const struct pseg *s, struct pseg *names,
                       size_t *n, char *err, size_t errlen)
{
    if (s->kind == SEG_PATH && s->next)
        return fail(err, errlen, "bad pattern \"%s\": {:path} must be last", pattern);
    if (*n == ROUTER_MAX_PARAMS)
        return fail(err, errlen, "bad pattern \"%s\": more than %d parameters", pattern,
                    ROUTER_MAX_PARAMS);
    for (size_t i = 0; i < *n; i++)
        if (names[i].namelen == s->namelen && !memcmp(names[i].name, s->name, s->namelen))
            return fail(err, errlen, "bad pattern \"%s\": duplicate parameter \"%.*s\"",
                        pattern, (int)s->namelen, s->name);
    names[(*n)++] = *s;
    return 0;
}

int router_check_pattern(const char *pattern, char *err, size_t errlen)
{
    struct pseg names[ROUTER_MAX_PARAMS], s;
    size_t n = 0;

    if (pattern[0] != '/')
        return fail(err, errlen, "bad pattern \"%s\": must start with '/'", pattern);
    for (const char *p = pattern + 1; p; p = s.next) {
        if (parse_seg(pattern, p, &s, err, errlen) < 0)
            return -1;
        if (s.kind != SEG_STATIC && check_param(pattern, &s, names, &n, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* The child for segment s, created if missing. */
static struct node *child_get(struct node *n, const struct pseg *s)
{
    struct node **slot;

    if (s->kind == SEG_STATIC) {
        for (size_t i = 0; i < n->nstatics; i++)
            if (n->statics[i].len == s->len && !memcmp(n->statics[i].seg, s->text, s->len))
                return n->statics[i].node;
        if (n->nstatics == n->capstatics) {
            n->capstatics = n->capstatics ? 2 * n->capstatics : 4;
            n->statics = xrealloc(n->statics, n->capstatics * sizeof(*n->statics));
        }
        struct static_child *c = &n->statics[n->nstatics++];
        *c = (struct static_child){xstrndup(s->text, s->len), s->len, node_new()};
        return c->node;
    }
    slot = s->kind == SEG_INT ? &n->int_child : s->kind == SEG_STR ? &n->str_child
                                                                  : &n->path_child;
    if (!*slot)
        *slot = node_new();
    return *slot;
}

static const struct entry *entry_find(const struct node *n, const char *m, size_t mlen)
{
    for (size_t i = 0; i < n->nentries; i++)
        if (n->entries[i].mlen == mlen && !memcmp(n->entries[i].method, m, mlen))
            return &n->entries[i];
    return NULL;
}

/* RFC 9110 token: what a method may be made of. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *s))
            return false;
    return true;
}

int router_add(struct router *r, const char *method, const char *pattern, void *data,
               char *err, size_t errlen)
{
    struct node *n = r->root;
    struct pseg s;
    struct entry e = {.data = data};

    if (!is_token(method))
        return fail(err, errlen, "bad method \"%s\"", method);
    if (router_check_pattern(pattern, err, errlen) < 0)
        return -1;
    for (const char *p = pattern + 1; p; p = s.next) {
        parse_seg(pattern, p, &s, NULL, 0);
        n = child_get(n, &s);
        if (s.kind != SEG_STATIC)
            e.names[e.nparams++] = xstrndup(s.name, s.namelen);
    }
    e.mlen = strlen(method);
    const struct entry *old = entry_find(n, method, e.mlen);
    if (old) {
        for (size_t i = 0; i < e.nparams; i++)
            free(e.names[i]);
        if (!strcmp(old->pattern, pattern))
            return fail(err, errlen, "duplicate route %s %s", method, pattern);
        return fail(err, errlen, "%s %s conflicts with %s %s", method, pattern, method,
                    old->pattern);
    }
    e.method = xstrndup(method, e.mlen);
    e.pattern = xstrndup(pattern, strlen(pattern));
    if (n->nentries == n->capentries) {
        n->capentries = n->capentries ? 2 * n->capentries : 2;
        n->entries = xrealloc(n->entries, n->capentries * sizeof(*n->entries));
    }
    n->entries[n->nentries++] = e;
    return 0;
}

/* Optional '-', then 1+ digits whose value fits in int64. */
static bool is_int64(const char *s, size_t len)
{
    bool neg = len && s[0] == '-';
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;

    if (len == (size_t)neg)
        return false;
    for (size_t i = neg; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    return true;
}

/*
 * Matches the segment at seg (NULL: the path is used up) against n's subtree, recording
 * parameter values in pr. Returns the first node with methods, in priority order.
 */
static const struct node *walk(const struct node *n, const char *seg, const char *end,
                               struct route_params *pr)
{
    if (!seg)
        return n->nentries ? n : NULL;
    const char *slash = memchr(seg, '/', (size_t)(end - seg));
    const char *next = slash ? slash + 1 : NULL;
    size_t len = (size_t)((slash ? slash : end) - seg);
    const struct node *found;

    for (size_t i = 0; i < n->nstatics; i++) {
        const struct static_child *c = &n->statics[i];
        if (c->len == len && !memcmp(c->seg, seg, len)) {
            if ((found = walk(c->node, next, end, pr)))
                return found;
            break;
        }
    }
    if (!n->int_child && !n->str_child && !n->path_child)
        return NULL; /* also keeps pr->n below ROUTER_MAX_PARAMS: a child would exceed it */
    pr->p[pr->n].value = seg;
    pr->p[pr->n].len = len;
    pr->n++;
    if (n->int_child && is_int64(seg, len) && (found = walk(n->int_child, next, end, pr)))
        return found;
    if (n->str_child && len && (found = walk(n->str_child, next, end, pr)))
        return found;
    pr->p[pr->n - 1].len = (size_t)(end - seg);
    if (n->path_child && n->path_child->nentries)
        return n->path_child;
    pr->n--;
    return NULL;
}

/* Appends ", m" (or m first) if it fits whole; once one does not, nothing more is. */
static size_t allow_add(char *buf, size_t cap, size_t off, const char *m)
{
    size_t mlen = strlen(m), sep = off ? 2 : 0;
    if (off == SIZE_MAX || off + sep + mlen >= cap)
        return SIZE_MAX;
    memcpy(buf + off, ", ", sep);
    memcpy(buf + off + sep, m, mlen + 1);
    return off + sep + mlen;
}

static void allow_build(const struct node *n, char *buf, size_t cap)
{
    bool head = entry_find(n, "HEAD", 4) != NULL;
    size_t off = 0;

    if (!buf || !cap)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < n->nentries; i++) {
        off = allow_add(buf, cap, off, n->entries[i].method);
        if (!head && !strcmp(n->entries[i].method, "GET"))
            off = allow_add(buf, cap, off, "HEAD");
    }
}

enum router_result router_match(const struct router *r, const char *method, size_t method_len,
                                const char *path, size_t path_len, void **data,
                                struct route_params *params, char *allow, size_t allowlen)
{
    struct route_params scratch;
    struct route_params *pr = params ? params : &scratch;
    const struct node *n = NULL;
    const struct entry *e;

    pr->n = 0;
    if (path_len && path[0] == '/')
        n = walk(r->root, path + 1, path + path_len, pr);
    if (!n) {
        pr->n = 0;
        return ROUTER_NOT_FOUND;
    }
    e = entry_find(n, method, method_len);
    if (!e && method_len == 4 && !memcmp(method, "HEAD", 4))
        e = entry_find(n, "GET", 3);
    if (!e) {
        pr->n = 0;
        allow_build(n, allow, allowlen);
        return ROUTER_METHOD_NOT_ALLOWED;
    }
    for (size_t i = 0; i < e->nparams; i++)
        pr->p[i].name = e->names[i];
    *data = e->data;
    return ROUTER_FOUND;
}
