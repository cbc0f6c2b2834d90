/*
 * config.c - plugins.conf reader.
 *
 * One pass over the lines. An error is recorded and parsing goes on, so that one run shows
 * every mistake in the file; a section whose header is bad has its keys skipped (after a
 * syntax check) rather than reported once more each.
 */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ratelimit.h"
#include "xalloc.h"

enum section { SEC_NONE, SEC_SKIP, SEC_SERVER, SEC_PLUGIN, SEC_ROUTE, SEC_DATABASE };

enum server_key { K_LISTEN, K_WORKERS, K_HEADER_TIMEOUT, K_KEEPALIVE_TIMEOUT, K_MAX_HEADER,
                  K_MAX_BODY, K_ACCESS_LOG, K_COROUTINE_STACK, K_THREADS, K_TRUSTED_PROXIES,
                  K_CACHE_MAX_BYTES, K_SHUTDOWN_TIMEOUT, K_RELOAD, K_COUNT };

static const char *const server_keys[K_COUNT] = {
    "listen", "workers", "header_timeout", "keepalive_timeout", "max_header", "max_body",
    "access_log", "coroutine_stack", "threads", "trusted_proxies", "cache_max_bytes",
    "shutdown_timeout", "reload",
};

enum db_key { D_DSN, D_POOL_SIZE, D_CONNECT_TIMEOUT, D_STATEMENT_TIMEOUT, D_POOL_WAIT_TIMEOUT,
              D_EMBEDDED_DIR, D_COUNT };

static const char *const db_keys[D_COUNT] = {
    "dsn", "pool_size", "connect_timeout", "statement_timeout", "pool_wait_timeout",
    "embedded_dir",
};

struct parser {
    struct config *cfg;
    size_t dirlen;   /* length of the config name's directory, with its '/'; 0 = none */
    char *err;
    size_t errlen, errpos;
    int nerr;
    int line;
    enum section sec;
    int seen[K_COUNT];          /* line of each [server] key so far, 0 = not yet */
    int db_seen[D_COUNT];       /* the same for [database] */
    int path_line, mount_line;  /* the same for the current plugin */
};

/* Returns arr grown by one zeroed element (the new one is arr[n]). */
static void *grow(void *arr, size_t n, size_t size)
{
    arr = xrealloc(arr, (n + 1) * size);
    memset((char *)arr + n * size, 0, size);
    return arr;
}

/* Records one "file:line: message" error; the text is cut when err is full. */
__attribute__((format(printf, 2, 3))) static void perr(struct parser *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    p->nerr++;
    if (p->errpos + 1 >= p->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int n = snprintf(p->err + p->errpos, p->errlen - p->errpos, "%s%s:%d: %s",
                     p->errpos ? "\n" : "", p->cfg->file, p->line, msg);
    p->errpos += n < 0 ? 0 : (size_t)n;
    if (p->errpos >= p->errlen)
        p->errpos = p->errlen - 1;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *skip_blanks(char *s)
{
    while (is_blank(*s))
        s++;
    return s;
}

/* A comment starts with ';' or '#' at the start of the text or after whitespace. */
static bool is_comment(const char *start, const char *at)
{
    return (*at == ';' || *at == '#') && (at == start || is_blank(at[-1]));
}

static char *trim(char *s)
{
    s = skip_blanks(s);
    size_t n = strlen(s);
    while (n && is_blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Parses one or more decimal digits at *s into *out, advancing *s; -1 on none or overflow. */
static int parse_digits(const char **s, uint64_t *out)
{
    const char *c = *s;
    uint64_t v = 0;

    if (!isdigit((unsigned char)*c))
        return -1;
    for (; isdigit((unsigned char)*c); c++) {
        if (v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    *s = c;
    *out = v;
    return 0;
}

int config_parse_size(const char *s, size_t *out)
{
    uint64_t v;
    int shift = 0;

    if (parse_digits(&s, &v) < 0)
        return -1;
    switch (tolower((unsigned char)*s)) {
    case 'k': shift = 10; s++; break;
    case 'm': shift = 20; s++; break;
    case 'g': shift = 30; s++; break;
    }
    if (*s || v > ((uint64_t)SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

int config_parse_duration(const char *s, uint64_t *ms)
{
    static const struct { const char *suffix; uint64_t ms; } units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
    };
    uint64_t v;

    if (parse_digits(&s, &v) < 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(s, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].ms)
                return -1;
            *ms = v * units[i].ms;
            return 0;
        }
    }
    return -1;
}

/* A relative path is taken from the config file's directory; an absolute one is kept. */
static char *resolve_path(struct parser *p, const char *path)
{
    if (path[0] == '/' || p->dirlen == 0)
        return xstrdup(path);
    size_t n = strlen(path);
    char *r = xrealloc(NULL, p->dirlen + n + 1);
    memcpy(r, p->cfg->file, p->dirlen);
    memcpy(r + p->dirlen, path, n + 1);
    return r;
}

/* Keys seen once only: false (and an error) when key already appeared at *seen. */
static bool first_time(struct parser *p, int *seen, const char *key)
{
    if (*seen) {
        perr(p, "duplicate key '%s' (first at line %d)", key, *seen);
        return false;
    }
    *seen = p->line;
    return true;
}

/* Splits a list of words separated by commas and/or blanks into out (copies); false after
   an error when there are none or more than CONFIG_LIST_MAX. */
static bool split_list(struct parser *p, const char *key, const char *v, char **out, size_t *n)
{
    char *copy = xstrdup(v), *save = NULL;

    *n = 0;
    for (char *w = strtok_r(copy, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
        if (*n == CONFIG_LIST_MAX) {
            perr(p, "too many entries in %s (at most %d)", key, CONFIG_LIST_MAX);
            break;
        }
        out[(*n)++] = xstrdup(w);
    }
    free(copy);
    if (*n == 0)
        perr(p, "empty list for %s", key);
    return *n > 0 && *n <= CONFIG_LIST_MAX;
}

static void free_list(char **list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(list[i]);
    *n = 0;
}

/* Splits "host:port", "[v6]:port", "*:port", ":port" or "port"; *host NULL = any address. */
static int split_listen(const char *v, char **host, const char **port)
{
    struct in6_addr a6;
    const char *colon = strrchr(v, ':');

    *host = NULL;
    *port = colon ? colon + 1 : v;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || close + 1 != colon)
            return -1;
        *host = xstrndup(v + 1, (size_t)(close - v - 1));
        return inet_pton(AF_INET6, *host, &a6) == 1 ? 0 : -1;
    }
    if (!colon || colon == v || (colon == v + 1 && v[0] == '*'))
        return 0;
    for (const char *c = v; c < colon; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-')
            return -1; /* also a bare IPv6 address, which needs brackets */
    *host = xstrndup(v, (size_t)(colon - v));
    return 0;
}

static void add_listen(struct parser *p, const char *v)
{
    struct config *cfg = p->cfg;
    char *host, port[8];
    const char *ps;
    uint64_t n;

    if (split_listen(v, &host, &ps) < 0) {
        perr(p, "bad listen '%s' (use host:port, [v6addr]:port, *:port or port)", v);
        free(host);
        return;
    }
    if (strlen(ps) > 5 || parse_digits(&ps, &n) < 0 || *ps || n > 65535) {
        perr(p, "bad port in listen '%s' (0..65535)", v);
        free(host);
        return;
    }
    snprintf(port, sizeof port, "%u", (unsigned)n);
    cfg->listen = grow(cfg->listen, cfg->nlisten, sizeof *cfg->listen);
    cfg->listen[cfg->nlisten++] = (struct config_listen){ host, xstrdup(port), p->line };
}

/* The number of CPUs online, clamped to 1..1024 (the value of "auto"). */
static unsigned cpus_online(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    return cpus < 1 ? 1 : cpus > 1024 ? 1024 : (unsigned)cpus;
}

/* A count of 1..1024 or "auto" (CPUs online) into *out; an error naming key otherwise. */
static void set_count(struct parser *p, const char *key, const char *v, unsigned *out)
{
    const char *end = v;
    uint64_t n;

    if (strcmp(v, "auto") == 0)
        *out = cpus_online();
    else if (parse_digits(&end, &n) == 0 && !*end && n >= 1 && n <= 1024)
        *out = (unsigned)n;
    else
        perr(p, "bad %s '%s' (use 1..1024 or auto)", key, v);
}

static void set_workers(struct parser *p, const char *v)
{
    unsigned n = 0;

    set_count(p, "workers", v, &n);
    if (n)
        p->cfg->workers = (int)n;
}

static void set_timeout(struct parser *p, const char *key, const char *v, uint64_t *out)
{
    uint64_t ms;

    if (config_parse_duration(v, &ms) < 0)
        perr(p, "bad duration '%s' for %s (use e.g. 500ms, 2s, 1m)", v, key);
    else if (ms == 0)
        perr(p, "%s must be greater than 0", key);
    else
        *out = ms;
}

/* "16k", "1m", "512": n in the largest unit that divides it, for range messages. */
static void format_size(size_t n, char *buf, size_t len)
{
    static const char units[] = "\0kmg";
    int u = 0;

    while (u < 3 && n && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    snprintf(buf, len, "%zu%.1s", n, &units[u]);
}

/* A size within min..max into *out; the error names the range in the config's own units. */
static void set_size(struct parser *p, const char *key, const char *v, size_t min, size_t max,
                     size_t *out)
{
    char lo[32], hi[32];
    size_t n;

    if (config_parse_size(v, &n) < 0) {
        perr(p, "bad size '%s' for %s (use e.g. 512, 64k, 1m)", v, key);
    } else if (n < min || n > max) {
        format_size(min, lo, sizeof lo);
        format_size(max, hi, sizeof hi);
        perr(p, "%s '%s' out of range (%s..%s)", key, v, lo, hi);
    } else {
        *out = n;
    }
}

static void set_access_log(struct parser *p, const char *v)
{
    free(p->cfg->access_log);
    p->cfg->access_log = NULL;
    if (strcmp(v, "off") != 0)
        p->cfg->access_log = strcmp(v, "stdout") == 0 ? xstrdup(v) : resolve_path(p, v);
}

/* "10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8" into *c; -1 when it is none of those. */
static int parse_cidr(const char *v, struct config_cidr *c)
{
    char addr[INET6_ADDRSTRLEN];
    const char *slash = strchr(v, '/');
    size_t n = slash ? (size_t)(slash - v) : strlen(v);
    uint64_t bits;

    if (n >= sizeof addr)
        return -1;
    memcpy(addr, v, n);
    addr[n] = '\0';
    c->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(c->family, addr, c->addr) != 1)
        return -1;
    c->bits = c->family == AF_INET ? 32 : 128;
    if (slash) {
        const char *d = slash + 1;
        if (parse_digits(&d, &bits) < 0 || *d || bits > c->bits)
            return -1;
        c->bits = (unsigned)bits;
    }
    return 0;
}

static void set_trusted(struct parser *p, const char *v)
{
    char *w[CONFIG_LIST_MAX];
    size_t n;

    if (!split_list(p, "trusted_proxies", v, w, &n))
        return;
    p->cfg->trusted = xcalloc(n, sizeof *p->cfg->trusted);
    for (size_t i = 0; i < n; i++) {
        if (parse_cidr(w[i], &p->cfg->trusted[p->cfg->ntrusted]) == 0)
            p->cfg->ntrusted++;
        else
            perr(p, "bad address '%s' in trusted_proxies (use e.g. 10.0.0.1, 10.0.0.0/8, ::1)",
                 w[i]);
    }
    free_list(w, &n);
}

int config_cidr_match(const struct config_cidr *nets, size_t n, int family, const void *addr)
{
    const unsigned char *a = addr;

    for (size_t i = 0; i < n; i++) {
        const struct config_cidr *c = &nets[i];
        unsigned full = c->bits / 8, rest = c->bits % 8;
        if (c->family != family || memcmp(c->addr, a, full) != 0)
            continue;
        if (rest == 0 || ((c->addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0)
            return 1;
    }
    return 0;
}

static void server_key(struct parser *p, const char *key, const char *v)
{
    struct config *cfg = p->cfg;
    int k = 0;

    while (k < K_COUNT && strcmp(key, server_keys[k]) != 0)
        k++;
    if (k == K_COUNT) {
        perr(p, "unknown key '%s' in [server]", key);
        return;
    }
    if (k != K_LISTEN && !first_time(p, &p->seen[k], key))
        return;
    if (!*v) {
        perr(p, "empty value for '%s'", key);
        return;
    }
    switch (k) {
    case K_LISTEN: add_listen(p, v); break;
    case K_WORKERS: set_workers(p, v); break;
    case K_HEADER_TIMEOUT: set_timeout(p, key, v, &cfg->header_timeout_ms); break;
    case K_KEEPALIVE_TIMEOUT: set_timeout(p, key, v, &cfg->keepalive_timeout_ms); break;
    case K_MAX_HEADER: set_size(p, key, v, 1024, 1024 * 1024, &cfg->max_header); break;
    case K_MAX_BODY: set_size(p, key, v, 0, SIZE_MAX, &cfg->max_body); break;
    case K_ACCESS_LOG: set_access_log(p, v); break;
    case K_COROUTINE_STACK:
        set_size(p, key, v, 16 * 1024, 64 * 1024 * 1024, &cfg->coroutine_stack);
        break;
    case K_THREADS: set_count(p, key, v, &cfg->threads); break;
    case K_TRUSTED_PROXIES: set_trusted(p, v); break;
    case K_CACHE_MAX_BYTES: set_size(p, key, v, 0, SIZE_MAX, &cfg->cache_max_bytes); break;
    case K_SHUTDOWN_TIMEOUT: set_timeout(p, key, v, &cfg->shutdown_timeout_ms); break;
    case K_RELOAD:
        if (strcmp(v, "auto") == 0 || strcmp(v, "signal") == 0 || strcmp(v, "off") == 0)
            cfg->reload = v[0] == 'a' ? CONFIG_RELOAD_AUTO : v[0] == 's' ? CONFIG_RELOAD_SIGNAL
                                                                         : CONFIG_RELOAD_OFF;
        else
            perr(p, "bad reload '%s' (use auto, signal or off)", v);
        break;
    }
}

static void database_key(struct parser *p, const char *key, const char *v)
{
    struct config_database *db = &p->cfg->db;
    int k = 0;

    while (k < D_COUNT && strcmp(key, db_keys[k]) != 0)
        k++;
    if (k == D_COUNT) {
        perr(p, "unknown key '%s' in [database]", key);
        return;
    }
    if (!first_time(p, &p->db_seen[k], key))
        return;
    if (!*v) {
        perr(p, "empty value for '%s'", key);
        return;
    }
    switch (k) {
    case D_DSN: db->dsn = xstrdup(v); break;
    case D_POOL_SIZE: set_count(p, key, v, &db->pool_size); break;
    case D_CONNECT_TIMEOUT: set_timeout(p, key, v, &db->connect_timeout_ms); break;
    case D_STATEMENT_TIMEOUT: set_timeout(p, key, v, &db->statement_timeout_ms); break;
    case D_POOL_WAIT_TIMEOUT: set_timeout(p, key, v, &db->pool_wait_timeout_ms); break;
    case D_EMBEDDED_DIR:
        free(db->embedded_dir);
        db->embedded_dir = resolve_path(p, v);
        break;
    }
}

/* "/api/" -> "/api"; NULL (after an error) when not "/" or "/prefix" without '{'. */
static char *normalise_mount(struct parser *p, const char *v)
{
    size_t n = strlen(v);

    if (v[0] != '/' || strpbrk(v, "{} \t")) {
        perr(p, "bad mount '%s' (must start with '/', without '{' or spaces)", v);
        return NULL;
    }
    while (n > 1 && v[n - 1] == '/')
        n--;
    return xstrndup(v, n);
}

/* An HTTP token (RFC 9110 5.6.2): a header name. */
static bool is_token(const char *s)
{
    static const char tchar[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789!#$%&'*+-.^_`|~";
    return *s && s[strspn(s, tchar)] == '\0';
}

static const char *const mw_keys[MW_KEYS] = {
    "timeout", "timeout_status", "ratelimit", "ratelimit_key", "ratelimit_max_keys",
    "cache", "cache_vary", "cache_status", "use",
};

/* A status from lo to hi into *out; false when v is not one. */
static bool parse_status(const char *v, int lo, int hi, int *out)
{
    char *end;
    long st = strtol(v, &end, 10);

    if (!*v || *end || st < lo || st > hi)
        return false;
    *out = (int)st;
    return true;
}

static void set_ratelimit(struct parser *p, struct config_mw *mw, const char *v)
{
    char why[128];

    if (strcmp(v, "off") == 0)
        mw->ratelimit_n = 0;
    else if (ratelimit_parse(v, &mw->ratelimit_n, &mw->ratelimit_ms, why, sizeof why) < 0)
        perr(p, "bad ratelimit '%s': %s (use N/PERIOD, e.g. 10/60s, or off)", v, why);
}

static void set_ratelimit_key(struct parser *p, struct config_mw *mw, const char *v)
{
    if (strcmp(v, "ip") == 0)
        return;
    if (strncmp(v, "header:", 7) != 0 || !v[7] || !is_token(v + 7))
        perr(p, "bad ratelimit_key '%s' (use ip or header:NAME)", v);
    else
        mw->ratelimit_header = xstrdup(v + 7);
}

static void set_cache_vary(struct parser *p, struct config_mw *mw, const char *v)
{
    if (!split_list(p, "cache_vary", v, mw->cache_vary, &mw->ncache_vary))
        return;
    for (size_t i = 0; i < mw->ncache_vary; i++)
        if (!is_token(mw->cache_vary[i]))
            perr(p, "bad header name '%s' in cache_vary", mw->cache_vary[i]);
}

static void set_cache_status(struct parser *p, struct config_mw *mw, const char *v)
{
    char *w[CONFIG_LIST_MAX];
    size_t n;

    if (!split_list(p, "cache_status", v, w, &n))
        return;
    for (size_t i = 0; i < n; i++)
        if (!parse_status(w[i], 200, 599, &mw->cache_status[mw->ncache_status++]))
            perr(p, "bad status '%s' in cache_status (200..599)", w[i]);
    free_list(w, &n);
}

/* A middleware key of a [plugin] or [route] section into mw; false when key is not one. */
static bool mw_key(struct parser *p, struct config_mw *mw, const char *key, const char *v)
{
    int k = 0;
    size_t n;

    while (k < MW_KEYS && strcmp(key, mw_keys[k]) != 0)
        k++;
    if (k == MW_KEYS)
        return false;
    if (!first_time(p, &mw->line[k], key))
        return true;
    switch (k) {
    case MW_TIMEOUT: set_timeout(p, key, v, &mw->timeout_ms); break;
    case MW_TIMEOUT_STATUS:
        if (!parse_status(v, 400, 599, &mw->timeout_status))
            perr(p, "bad timeout_status '%s' (an HTTP status from 400 to 599)", v);
        break;
    case MW_RATELIMIT: set_ratelimit(p, mw, v); break;
    case MW_RATELIMIT_KEY: set_ratelimit_key(p, mw, v); break;
    case MW_RATELIMIT_MAX_KEYS:
        set_size(p, key, v, 1, RATELIMIT_MAX_KEYS, &n);
        mw->ratelimit_max_keys = n;
        break;
    case MW_CACHE:
        if (strcmp(v, "off") != 0)
            set_timeout(p, key, v, &mw->cache_ms);
        break;
    case MW_CACHE_VARY: set_cache_vary(p, mw, v); break;
    case MW_CACHE_STATUS: set_cache_status(p, mw, v); break;
    case MW_USE: split_list(p, key, v, mw->use, &mw->nuse); break;
    }
    return true;
}

static void free_mw(struct config_mw *mw)
{
    free(mw->ratelimit_header);
    free_list(mw->cache_vary, &mw->ncache_vary);
    free_list(mw->use, &mw->nuse);
}

static void plugin_key(struct parser *p, const char *key, const char *v)
{
    struct config_plugin *pl = &p->cfg->plugins[p->cfg->nplugins - 1];
    bool path = strcmp(key, "path") == 0, mount = strcmp(key, "mount") == 0;

    if (mw_key(p, &pl->mw, key, v))
        return;
    if (path || mount) {
        if (!first_time(p, path ? &p->path_line : &p->mount_line, key))
            return;
        if (!*v)
            perr(p, "empty value for '%s'", key);
        else if (path)
            pl->path = resolve_path(p, v);
        else
            pl->mount = normalise_mount(p, v);
        return;
    }
    for (size_t i = 0; i < pl->nkv; i++) {
        if (strcmp(pl->kv[i].key, key) == 0) {
            perr(p, "duplicate key '%s' (first at line %d)", key, pl->kv[i].line);
            return;
        }
    }
    pl->kv = grow(pl->kv, pl->nkv, sizeof *pl->kv);
    pl->kv[pl->nkv++] = (struct config_kv){ xstrdup(key), xstrdup(v), p->line };
}

/* Closes the current section: a plugin must have had a path; its mount defaults to "/". */
static void end_section(struct parser *p)
{
    if (p->sec == SEC_PLUGIN) {
        struct config_plugin *pl = &p->cfg->plugins[p->cfg->nplugins - 1];
        if (!pl->path) {
            int line = p->line;
            p->line = pl->line;
            perr(p, "plugin '%s' has no path", pl->name);
            p->line = line;
        }
        if (!pl->mount)
            pl->mount = xstrdup("/");
    }
    if (p->sec == SEC_DATABASE && !p->cfg->db.dsn) {
        int line = p->line;
        p->line = p->cfg->db.line;
        perr(p, "[database] has no dsn (use dsn = embedded, or a libpq conninfo)");
        p->line = line;
    }
    p->sec = SEC_SKIP;
}

static void open_plugin(struct parser *p, char **w, size_t n)
{
    struct config *cfg = p->cfg;

    if (n != 2) {
        perr(p, "expected [plugin NAME]");
        return;
    }
    if (strspn(w[1], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
        != strlen(w[1])) {
        perr(p, "bad plugin name '%s' (use letters, digits, '_' or '-')", w[1]);
        return;
    }
    for (size_t i = 0; i < cfg->nplugins; i++) {
        if (strcmp(cfg->plugins[i].name, w[1]) == 0) {
            perr(p, "duplicate plugin '%s' (first at line %d)", w[1], cfg->plugins[i].line);
            return;
        }
    }
    cfg->plugins = grow(cfg->plugins, cfg->nplugins, sizeof *cfg->plugins);
    cfg->plugins[cfg->nplugins].name = xstrdup(w[1]);
    cfg->plugins[cfg->nplugins++].line = p->line;
    p->path_line = p->mount_line = 0;
    p->sec = SEC_PLUGIN;
}

static void open_route(struct parser *p, char **w, size_t n)
{
    static const char tchar[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";
    struct config *cfg = p->cfg;

    if (n != 3) {
        perr(p, "expected [route METHOD PATH]");
        return;
    }
    if (strspn(w[1], tchar) != strlen(w[1])) {
        perr(p, "bad method '%s' in [route] (use an uppercase HTTP method such as GET)", w[1]);
        return;
    }
    if (w[2][0] != '/') {
        perr(p, "bad route path '%s' (must start with '/')", w[2]);
        return;
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct config_route *r = &cfg->routes[i];
        if (strcmp(r->method, w[1]) == 0 && strcmp(r->path, w[2]) == 0) {
            perr(p, "duplicate route '%s %s' (first at line %d)", w[1], w[2], r->line);
            return;
        }
    }
    cfg->routes = grow(cfg->routes, cfg->nroutes, sizeof *cfg->routes);
    cfg->routes[cfg->nroutes++] =
        (struct config_route){ .method = xstrdup(w[1]), .path = xstrdup(w[2]), .line = p->line };
    p->sec = SEC_ROUTE;
}

static void open_database(struct parser *p, size_t n)
{
    if (n != 1) {
        perr(p, "expected [database]");
        return;
    }
    if (p->cfg->db.line) {
        perr(p, "duplicate section [database] (first at line %d)", p->cfg->db.line);
        return;
    }
    p->cfg->db.line = p->line;
    p->sec = SEC_DATABASE;
}

/* Splits s in place at blanks; fills up to max words and returns how many there were. */
static size_t split_words(char *s, char **w, size_t max)
{
    size_t n = 0;

    for (s = skip_blanks(s); *s; s = skip_blanks(s)) {
        if (n < max)
            w[n] = s;
        n++;
        while (*s && !is_blank(*s))
            s++;
        if (*s)
            *s++ = '\0';
    }
    return n;
}

static void parse_header(struct parser *p, char *s)
{
    char *close = strchr(s, ']'), *w[3];

    end_section(p);
    if (!close) {
        perr(p, "missing ']' in section header");
        return;
    }
    char *rest = skip_blanks(close + 1);
    if (*rest && *rest != ';' && *rest != '#') {
        perr(p, "unexpected text after section header");
        return;
    }
    *close = '\0';
    size_t n = split_words(s + 1, w, 3);
    if (n == 0)
        perr(p, "empty section header");
    else if (strcmp(w[0], "server") == 0 && n == 1)
        p->sec = SEC_SERVER;
    else if (strcmp(w[0], "server") == 0)
        perr(p, "expected [server]");
    else if (strcmp(w[0], "database") == 0)
        open_database(p, n);
    else if (strcmp(w[0], "plugin") == 0)
        open_plugin(p, w, n);
    else if (strcmp(w[0], "route") == 0)
        open_route(p, w, n);
    else
        perr(p, "unknown section [%s]", w[0]);
}

/* Reads the value after '=': trimmed, or "quoted" with \" and \\; *out points into s. */
static int parse_value(struct parser *p, char *s, char **out)
{
    char *start = s, *dst;

    s = skip_blanks(s);
    if (*s != '"') {
        char *end = s;
        while (*end && !is_comment(start, end))
            end++;
        *end = '\0';
        *out = trim(s);
        return 0;
    }
    for (*out = dst = s++; *s != '"'; s++) {
        if (!*s) {
            perr(p, "unterminated quoted value");
            return -1;
        }
        if (*s == '\\' && (s[1] == '"' || s[1] == '\\')) {
            s++;
        } else if (*s == '\\' && s[1]) {
            perr(p, "bad escape '\\%c' in quoted value (use \\\" or \\\\)", s[1]);
            return -1;
        }
        *dst++ = *s;
    }
    *dst = '\0';
    s = skip_blanks(s + 1);
    if (*s && *s != ';' && *s != '#') {
        perr(p, "unexpected text after quoted value");
        return -1;
    }
    return 0;
}

static void route_key(struct parser *p, const char *key, const char *v)
{
    struct config_route *r = &p->cfg->routes[p->cfg->nroutes - 1];

    if (!mw_key(p, &r->mw, key, v))
        perr(p, "unknown key '%s' in [route %s %s]", key, r->method, r->path);
}

static void parse_keyval(struct parser *p, char *s)
{
    char *eq = s, *key, *value;

    while (*eq && *eq != '=' && !is_comment(s, eq))
        eq++;
    if (*eq != '=') {
        perr(p, "expected 'key = value' or a [section] header");
        return;
    }
    *eq = '\0';
    key = trim(s);
    if (!*key) {
        perr(p, "missing key before '='");
        return;
    }
    if (strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != strlen(key)) {
        perr(p, "bad key '%s' (use lowercase letters, digits, '_', '-' or '.')", key);
        return;
    }
    if (parse_value(p, eq + 1, &value) < 0)
        return;
    switch (p->sec) {
    case SEC_NONE: perr(p, "key '%s' outside any section", key); break;
    case SEC_SKIP: break;
    case SEC_SERVER: server_key(p, key, value); break;
    case SEC_PLUGIN: plugin_key(p, key, value); break;
    case SEC_ROUTE: route_key(p, key, value); break;
    case SEC_DATABASE: database_key(p, key, value); break;
    }
}

static void parse_line(struct parser *p, const char *text, size_t n)
{
    if (n && text[n - 1] == '\r')
        n--;
    if (memchr(text, '\0', n)) {
        perr(p, "NUL byte in line");
        return;
    }
    char *line = xstrndup(text, n), *s = skip_blanks(line);
    if (*s == '[')
        parse_header(p, s);
    else if (*s && *s != ';' && *s != '#')
        parse_keyval(p, s);
    free(line);
}

static struct config *config_new(const char *name)
{
    struct config *cfg = grow(NULL, 0, sizeof *cfg);

    cfg->file = xstrdup(name);
    cfg->refs = 1;
    cfg->workers = 1;
    cfg->header_timeout_ms = 10 * 1000;
    cfg->keepalive_timeout_ms = 60 * 1000;
    cfg->max_header = 8 * 1024;
    cfg->max_body = 1024 * 1024;
    cfg->coroutine_stack = 64 * 1024;
    cfg->threads = cpus_online();
    cfg->cache_max_bytes = 64 * 1024 * 1024;
    cfg->shutdown_timeout_ms = 10 * 1000;
    cfg->db.pool_size = 8;
    cfg->db.connect_timeout_ms = 5 * 1000;
    cfg->db.pool_wait_timeout_ms = 5 * 1000;
    return cfg;
}

struct config *config_parse(const char *text, size_t len, const char *name, char *err,
                            size_t errlen)
{
    struct parser p = { .err = err, .errlen = err ? errlen : 0 };
    const char *slash;

    assert(name && (text || len == 0));
    slash = strrchr(name, '/');
    if (p.errlen)
        err[0] = '\0';
    p.cfg = config_new(name);
    p.dirlen = slash ? (size_t)(slash - name) + 1 : 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 byte order mark */
        text += 3;
        len -= 3;
    }
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
        p.line++;
        parse_line(&p, text + i, n);
        i += n + 1;
    }
    end_section(&p);
    if (p.nerr) {
        config_free(p.cfg);
        return NULL;
    }
    if (p.cfg->db.dsn && !p.cfg->db.embedded_dir)
        p.cfg->db.embedded_dir = resolve_path(&p, "var/pg");
    if (p.cfg->nlisten == 0) {
        p.cfg->listen = grow(NULL, 0, sizeof *p.cfg->listen);
        p.cfg->listen[p.cfg->nlisten++] =
            (struct config_listen){ xstrdup("127.0.0.1"), xstrdup("8080"), 0 };
    }
    return p.cfg;
}

/* Reads all of f into a new buffer; NULL with errno set on a read error. */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0, got;
    char *buf = xrealloc(NULL, cap);

    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = xrealloc(buf, cap *= 2);
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        errno = e;
        return NULL;
    }
    *len = n;
    return buf;
}

struct config *config_load(const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    struct config *cfg;
    size_t len;
    char *text;

    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return NULL;
    }
    text = read_all(f, &len);
    if (!text && err && errlen)
        snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
    fclose(f);
    if (!text)
        return NULL;
    cfg = config_parse(text, len, file, err, errlen);
    free(text);
    return cfg;
}

static void free_plugin(struct config_plugin *pl)
{
    for (size_t i = 0; i < pl->nkv; i++) {
        free(pl->kv[i].key);
        free(pl->kv[i].value);
    }
    free(pl->kv);
    free(pl->name);
    free(pl->path);
    free(pl->mount);
    free_mw(&pl->mw);
}

void config_ref(struct config *cfg)
{
    cfg->refs++;
}

void config_free(struct config *cfg)
{
    if (!cfg || --cfg->refs > 0)
        return;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        free(cfg->listen[i].host);
        free(cfg->listen[i].port);
    }
    for (size_t i = 0; i < cfg->nplugins; i++)
        free_plugin(&cfg->plugins[i]);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        free(cfg->routes[i].method);
        free(cfg->routes[i].path);
        free_mw(&cfg->routes[i].mw);
    }
    free(cfg->listen);
    free(cfg->plugins);
    free(cfg->routes);
    free(cfg->access_log);
    free(cfg->trusted);
    free(cfg->db.dsn);
    free(cfg->db.embedded_dir);
    free(cfg->file);
    free(cfg);
}

const char *config_plugin_get(const struct config_plugin *p, const char *key)
{
    for (size_t i = 0; p && i < p->nkv; i++)
        if (strcmp(p->kv[i].key, key) == 0)
            return p->kv[i].value;
    return NULL;
}
