/*
 * config.h - plugins.conf: an INI file read into struct config.
 *
 *   [server]            listen (repeatable), workers, header_timeout, keepalive_timeout,
 *                       max_header, max_body, access_log, coroutine_stack, threads,
 *                       trusted_proxies, cache_max_bytes, shutdown_timeout, reload
 *   [plugin NAME]       path (required), mount (default "/"), middleware keys (see
 *                       enum config_mw_key), and free keys for the plugin
 *   [route METHOD PATH] middleware keys for one mounted route
 *   [database]          dsn (embedded | libpq conninfo or URI), pool_size, connect_timeout,
 *                       statement_timeout, pool_wait_timeout, embedded_dir
 *
 * Lines: "key = value"; comments start with ';' or '#' at the start of a line or after
 * whitespace; values may be "double-quoted" to keep those characters. Sizes are bytes with
 * an optional k/m/g suffix (1024-based); durations take ms/s/m/h (a bare number is
 * seconds). Every error names file:line; nothing unknown is ignored.
 */
#ifndef SQUALL_CONFIG_H
#define SQUALL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct config_kv {
    char *key;
    char *value;
    int line;
};

struct config_listen {
    char *host; /* NULL for every address ("*:8080", ":8080" or "8080") */
    char *port; /* decimal, 0..65535; 0 = an ephemeral port */
    int line;
};

/* The middleware keys of a [plugin] or [route] section, indexes into config_mw.line. */
enum config_mw_key {
    MW_TIMEOUT,            /* timeout = 5s */
    MW_TIMEOUT_STATUS,     /* timeout_status = 504 */
    MW_RATELIMIT,          /* ratelimit = 10/60s | off */
    MW_RATELIMIT_KEY,      /* ratelimit_key = ip | header:X-Api-Key */
    MW_RATELIMIT_MAX_KEYS, /* ratelimit_max_keys = 10000 */
    MW_CACHE,              /* cache = 30s | off */
    MW_CACHE_VARY,         /* cache_vary = Accept-Language, X-Tenant */
    MW_CACHE_STATUS,       /* cache_status = 200 301 404 */
    MW_USE,                /* use = auth, audit */
    MW_KEYS
};

#define CONFIG_LIST_MAX 16 /* names in cache_vary or use, statuses in cache_status */

/* Middleware settings of a [plugin] or [route] section. A key applies only where line[key] is
   set; a [route] setting overrides its plugin's, which overrides the route's own in the
   code. "off" is ratelimit_n / cache_ms 0 with the line set. */
struct config_mw {
    int line[MW_KEYS];       /* where each key was set; 0 = not in this section */
    uint64_t timeout_ms;
    int timeout_status;      /* 400..599 */
    uint32_t ratelimit_n;    /* requests per ratelimit_ms */
    uint64_t ratelimit_ms;
    char *ratelimit_header;  /* ratelimit_key = header:NAME; NULL = the client address */
    size_t ratelimit_max_keys;
    uint64_t cache_ms;
    char *cache_vary[CONFIG_LIST_MAX];
    size_t ncache_vary;
    int cache_status[CONFIG_LIST_MAX];
    size_t ncache_status;
    char *use[CONFIG_LIST_MAX];
    size_t nuse;
};

/* A network in [server] trusted_proxies: family AF_INET or AF_INET6, bits of addr that
   must match. */
struct config_cidr {
    int family;
    unsigned bits;
    unsigned char addr[16];
};

struct config_plugin {
    char *name;
    char *path;  /* as written, resolved against the config file's directory when relative */
    char *mount; /* "/" or "/prefix" without a trailing slash */
    struct config_kv *kv; /* free keys, in file order */
    size_t nkv;
    struct config_mw mw;
    int line; /* of the section header */
};

struct config_route {
    char *method;
    char *path;
    struct config_mw mw;
    int line;
};

/* [database]; dsn NULL when the section is absent (then the host has no database). */
struct config_database {
    char *dsn;                     /* "embedded" or a libpq conninfo / URI */
    char *embedded_dir;            /* the embedded cluster's directory; default var/pg */
    unsigned pool_size;            /* 1..1024; default 8 */
    uint64_t connect_timeout_ms;   /* default 5s */
    uint64_t statement_timeout_ms; /* 0 = the server's own setting */
    uint64_t pool_wait_timeout_ms; /* default 5s */
    int line;                      /* of the section header */
};

/* [server] reload: what makes the host load a plugin's new build. */
enum config_reload {
    CONFIG_RELOAD_AUTO,   /* its file changes (inotify), or SIGHUP / squall reload */
    CONFIG_RELOAD_SIGNAL, /* SIGHUP / squall reload only */
    CONFIG_RELOAD_OFF,    /* never: a restart is needed */
};

struct config {
    unsigned refs; /* config_ref / config_free */
    char *file; /* name used in messages */
    struct config_listen *listen;
    size_t nlisten;       /* at least 1: 127.0.0.1:8080 when none is given */
    int workers;          /* >= 1; "auto" = number of CPUs online */
    uint64_t header_timeout_ms;    /* default 10s */
    uint64_t keepalive_timeout_ms; /* default 60s */
    size_t max_header;    /* default 8k; at least 1k */
    size_t max_body;      /* default 1m */
    char *access_log;     /* NULL = off, "stdout", or a file path */
    size_t coroutine_stack; /* usable bytes per coroutine stack; default 64k, 16k..64m */
    unsigned threads;     /* sq_run_in_thread pool, 1..1024; default ("auto") CPUs online */
    struct config_cidr *trusted; /* trusted_proxies: peers whose X-Forwarded-For counts */
    size_t ntrusted;
    size_t cache_max_bytes; /* the response cache and sq_cache_* store; default 64m */
    uint64_t shutdown_timeout_ms; /* SIGTERM: in-flight requests get this long; default 10s */
    enum config_reload reload;    /* default auto */
    struct config_plugin *plugins;
    size_t nplugins;
    struct config_route *routes;
    size_t nroutes;
    struct config_database db;
};

/*
 * Reads and validates file. On error returns NULL and writes every error found to err,
 * one "file:line: message" per line (a missing file is "file: cannot open: <reason>").
 * The caller frees the result with config_free.
 */
struct config *config_load(const char *file, char *err, size_t errlen);

/* Same, from text in memory; name is used in messages and as the base for relative plugin
   paths (its directory; the current directory when it has none). */
struct config *config_parse(const char *text, size_t len, const char *name, char *err,
                            size_t errlen);

/* Reference counting: whatever keeps pointers into a config (a plugin instance, a routing
   table) holds a reference; config_free drops one and frees it with the last. */
void config_ref(struct config *cfg);
void config_free(struct config *cfg);

/* A plugin's free key, or NULL. The string lives as long as the config. */
const char *config_plugin_get(const struct config_plugin *p, const char *key);

/* "64k" -> 65536. Returns 0, or -1 when s is not a size. */
int config_parse_size(const char *s, size_t *out);

/* Whether the address (family AF_INET/AF_INET6, 4 or 16 bytes) is in one of the networks. */
int config_cidr_match(const struct config_cidr *nets, size_t n, int family, const void *addr);

/* "500ms" -> 500, "2s" -> 2000, "1m" -> 60000, "3" -> 3000. Returns 0 or -1. */
int config_parse_duration(const char *s, uint64_t *ms);

#endif
