/*
 * check_config.c - unit tests for framework/config.c (plugins.conf).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../check_main.h"

static char err[4096];

/* Parses text as "plugins.conf" (no directory); err holds the errors when NULL. */
static struct config *parse(const char *text)
{
    return config_parse(text, strlen(text), "plugins.conf", err, sizeof err);
}

/* Parses text as if read from the file name. */
static struct config *parse_as(const char *text, const char *name)
{
    return config_parse(text, strlen(text), name, err, sizeof err);
}

/* Asserts that text fails to parse and that one of the errors contains msg. */
#define ck_parse_error(text, msg)                                                             \
    do {                                                                                      \
        struct config *c_ = parse(text);                                                      \
        ck_assert_msg(c_ == NULL, "expected an error for:\n%s", text);                       \
        config_free(c_);                                                                      \
        ck_assert_msg(strstr(err, msg) != NULL, "want '%s' in:\n%s", msg, err);              \
    } while (0)

static int count_lines(const char *s)
{
    int n = *s ? 1 : 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* What "auto" means for workers and threads. */
static unsigned cpus_online(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    return cpus < 1 ? 1 : cpus > 1024 ? 1024 : (unsigned)cpus;
}

/* ---- defaults and [server] ---- */

START_TEST(test_defaults)
{
    struct config *c = parse("");

    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(c->file, "plugins.conf");
    ck_assert_uint_eq(c->nlisten, 1);
    ck_assert_str_eq(c->listen[0].host, "127.0.0.1");
    ck_assert_str_eq(c->listen[0].port, "8080");
    ck_assert_int_eq(c->workers, 1);
    ck_assert_uint_eq(c->header_timeout_ms, 10000);
    ck_assert_uint_eq(c->keepalive_timeout_ms, 60000);
    ck_assert_uint_eq(c->max_header, 8192);
    ck_assert_uint_eq(c->max_body, 1024 * 1024);
    ck_assert_ptr_null(c->access_log);
    ck_assert_uint_eq(c->coroutine_stack, 64 * 1024);
    ck_assert_uint_eq(c->threads, cpus_online());
    ck_assert_uint_eq(c->nplugins, 0);
    ck_assert_uint_eq(c->nroutes, 0);
    config_free(c);

    c = parse("[server]\n");
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->nlisten, 1);
    config_free(c);
    config_free(NULL);
}
END_TEST

START_TEST(test_server_keys)
{
    struct config *c = parse("[server]\n"
                             "listen = 0.0.0.0:9000\n"
                             "workers = 4\n"
                             "header_timeout = 500ms\n"
                             "keepalive_timeout = 2m\n"
                             "max_header = 16k\n"
                             "max_body = 0\n"
                             "access_log = stdout\n");

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->nlisten, 1);
    ck_assert_str_eq(c->listen[0].host, "0.0.0.0");
    ck_assert_str_eq(c->listen[0].port, "9000");
    ck_assert_int_eq(c->listen[0].line, 2);
    ck_assert_int_eq(c->workers, 4);
    ck_assert_uint_eq(c->header_timeout_ms, 500);
    ck_assert_uint_eq(c->keepalive_timeout_ms, 120000);
    ck_assert_uint_eq(c->max_header, 16384);
    ck_assert_uint_eq(c->max_body, 0);
    ck_assert_str_eq(c->access_log, "stdout");
    config_free(c);
}
END_TEST

START_TEST(test_listen_forms)
{
    struct config *c = parse("[server]\n"
                             "listen = 127.0.0.1:80\n"
                             "listen = [::1]:8443\n"
                             "listen = *:81\n"
                             "listen = :82\n"
                             "listen = 83\n"
                             "listen = localhost:0\n"
                             "listen = [::]:65535\n"
                             "listen = 0080\n");

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->nlisten, 8);
    ck_assert_str_eq(c->listen[0].host, "127.0.0.1");
    ck_assert_str_eq(c->listen[0].port, "80");
    ck_assert_str_eq(c->listen[1].host, "::1");
    ck_assert_str_eq(c->listen[1].port, "8443");
    ck_assert_ptr_null(c->listen[2].host);
    ck_assert_str_eq(c->listen[2].port, "81");
    ck_assert_ptr_null(c->listen[3].host);
    ck_assert_str_eq(c->listen[3].port, "82");
    ck_assert_ptr_null(c->listen[4].host);
    ck_assert_str_eq(c->listen[4].port, "83");
    ck_assert_str_eq(c->listen[5].host, "localhost");
    ck_assert_str_eq(c->listen[5].port, "0");
    ck_assert_str_eq(c->listen[6].host, "::");
    ck_assert_str_eq(c->listen[6].port, "65535");
    ck_assert_str_eq(c->listen[7].port, "80");
    ck_assert_int_eq(c->listen[7].line, 9);
    config_free(c);
}
END_TEST

START_TEST(test_listen_errors)
{
    ck_parse_error("[server]\nlisten = 1.2.3.4:65536\n",
                   "plugins.conf:2: bad port in listen '1.2.3.4:65536' (0..65535)");
    ck_parse_error("[server]\nlisten = host:\n", "plugins.conf:2: bad port in listen 'host:'");
    ck_parse_error("[server]\nlisten = x:http\n", "plugins.conf:2: bad port in listen");
    ck_parse_error("[server]\nlisten = -1\n", "plugins.conf:2: bad port in listen");
    ck_parse_error("[server]\nlisten = 123456\n", "plugins.conf:2: bad port in listen");
    ck_parse_error("[server]\nlisten = ::1:80\n",
                   "plugins.conf:2: bad listen '::1:80' (use host:port, [v6addr]:port, "
                   "*:port or port)");
    ck_parse_error("[server]\nlisten = [::1]\n", "plugins.conf:2: bad listen '[::1]'");
    ck_parse_error("[server]\nlisten = [::1:80\n", "plugins.conf:2: bad listen");
    ck_parse_error("[server]\nlisten = [nothex]:80\n", "plugins.conf:2: bad listen");
    ck_parse_error("[server]\nlisten = []:80\n", "plugins.conf:2: bad listen");
    ck_parse_error("[server]\nlisten = \"a b:80\"\n", "plugins.conf:2: bad listen");
    ck_parse_error("[server]\nlisten =\n", "plugins.conf:2: empty value for 'listen'");
}
END_TEST

START_TEST(test_workers)
{
    struct config *c = parse("[server]\nworkers = auto\n");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->workers, cpus < 1 ? 1 : cpus > 1024 ? 1024 : cpus);
    config_free(c);
    c = parse("[server]\nworkers = 1024\n");
    ck_assert_int_eq(c->workers, 1024);
    config_free(c);
    ck_parse_error("[server]\nworkers = 0\n",
                   "plugins.conf:2: bad workers '0' (use 1..1024 or auto)");
    ck_parse_error("[server]\nworkers = 1025\n", "plugins.conf:2: bad workers '1025'");
    ck_parse_error("[server]\nworkers = Auto\n", "plugins.conf:2: bad workers 'Auto'");
    ck_parse_error("[server]\nworkers = 2x\n", "plugins.conf:2: bad workers '2x'");
    ck_parse_error("[server]\nworkers = 99999999999999999999999\n", "bad workers");
}
END_TEST

START_TEST(test_coroutine_stack)
{
    struct config *c = parse("[server]\ncoroutine_stack = 128k\n");

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->coroutine_stack, 128 * 1024);
    config_free(c);
    c = parse("[server]\ncoroutine_stack = 16384\n");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->coroutine_stack, 16 * 1024);
    config_free(c);
    c = parse("[server]\ncoroutine_stack = 64M\n");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->coroutine_stack, 64 * 1024 * 1024);
    config_free(c);
    ck_parse_error("[server]\ncoroutine_stack = 16383\n",
                   "plugins.conf:2: coroutine_stack '16383' out of range (16k..64m)");
    ck_parse_error("[server]\n\ncoroutine_stack = 65537k\n",
                   "plugins.conf:3: coroutine_stack '65537k' out of range (16k..64m)");
    ck_parse_error("[server]\ncoroutine_stack = 1g\n", "coroutine_stack '1g' out of range");
    ck_parse_error("[server]\ncoroutine_stack = 0\n", "coroutine_stack '0' out of range");
    ck_parse_error("[server]\ncoroutine_stack = 64kb\n",
                   "plugins.conf:2: bad size '64kb' for coroutine_stack (use e.g. 512, 64k, 1m)");
    ck_parse_error("[server]\ncoroutine_stack = -64k\n", "bad size '-64k' for coroutine_stack");
    ck_parse_error("[server]\ncoroutine_stack =\n",
                   "plugins.conf:2: empty value for 'coroutine_stack'");
    ck_parse_error("[server]\ncoroutine_stack = 64k\ncoroutine_stack = 32k\n",
                   "plugins.conf:3: duplicate key 'coroutine_stack' (first at line 2)");
}
END_TEST

START_TEST(test_threads)
{
    struct config *c = parse("[server]\nthreads = 8\n");

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->threads, 8);
    config_free(c);
    c = parse("[server]\nthreads = 1\n");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->threads, 1);
    config_free(c);
    c = parse("[server]\nthreads = 1024\n");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->threads, 1024);
    config_free(c);
    c = parse("[server]\nthreads = auto\n");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->threads, cpus_online());
    config_free(c);
    ck_parse_error("[server]\nthreads = 0\n",
                   "plugins.conf:2: bad threads '0' (use 1..1024 or auto)");
    ck_parse_error("[server]\n\nthreads = 1025\n", "plugins.conf:3: bad threads '1025'");
    ck_parse_error("[server]\nthreads = -1\n", "plugins.conf:2: bad threads '-1'");
    ck_parse_error("[server]\nthreads = AUTO\n", "plugins.conf:2: bad threads 'AUTO'");
    ck_parse_error("[server]\nthreads = 4k\n", "plugins.conf:2: bad threads '4k'");
    ck_parse_error("[server]\nthreads = 99999999999999999999999\n", "bad threads");
    ck_parse_error("[server]\nthreads =\n", "plugins.conf:2: empty value for 'threads'");
    ck_parse_error("[server]\nthreads = 2\nthreads = 3\n",
                   "plugins.conf:3: duplicate key 'threads' (first at line 2)");
}
END_TEST

START_TEST(test_server_value_errors)
{
    ck_parse_error("[server]\nheader_timeout = 5x\n",
                   "plugins.conf:2: bad duration '5x' for header_timeout "
                   "(use e.g. 500ms, 2s, 1m)");
    ck_parse_error("[server]\nkeepalive_timeout = 0s\n",
                   "plugins.conf:2: keepalive_timeout must be greater than 0");
    ck_parse_error("[server]\nheader_timeout = 0\n", "header_timeout must be greater than 0");
    ck_parse_error("[server]\nmax_header = 1023\n",
                   "plugins.conf:2: max_header '1023' out of range (1k..1m)");
    ck_parse_error("[server]\nmax_header = 1025k\n", "max_header '1025k' out of range");
    ck_parse_error("[server]\nmax_body = 1x\n",
                   "plugins.conf:2: bad size '1x' for max_body (use e.g. 512, 64k, 1m)");
    ck_parse_error("[server]\nmax_body = 99999999999g\n", "bad size '99999999999g' for max_body");
    ck_parse_error("[server]\naccess_log = \"\"\n", "plugins.conf:2: empty value for 'access_log'");
    ck_parse_error("[server]\nmax_bodyy = 1\n",
                   "plugins.conf:2: unknown key 'max_bodyy' in [server]");
    ck_parse_error("[server]\nMax_body = 1\n", "plugins.conf:2: bad key 'Max_body'");

    struct config *c = parse("[server]\nmax_header = 1k\n");
    ck_assert_uint_eq(c->max_header, 1024);
    config_free(c);
    c = parse("[server]\nmax_header = 1M\n");
    ck_assert_uint_eq(c->max_header, 1024 * 1024);
    config_free(c);
}
END_TEST

START_TEST(test_duplicate_server_key)
{
    ck_parse_error("[server]\nworkers = 1\nmax_body = 1k\n\nmax_body = 2k\n",
                   "plugins.conf:5: duplicate key 'max_body' (first at line 3)");
    /* also across two [server] sections */
    ck_parse_error("[server]\naccess_log = off\n[server]\naccess_log = off\n",
                   "plugins.conf:4: duplicate key 'access_log' (first at line 2)");
}
END_TEST

START_TEST(test_access_log)
{
    struct config *c;

    c = parse_as("[server]\naccess_log = off\n", "/etc/sq/plugins.conf");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_ptr_null(c->access_log);
    config_free(c);
    c = parse_as("[server]\naccess_log = log/access.log\n", "/etc/sq/plugins.conf");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->access_log, "/etc/sq/log/access.log");
    config_free(c);
    c = parse("[server]\naccess_log = /var/log/sq.log\n");
    ck_assert_str_eq(c->access_log, "/var/log/sq.log");
    config_free(c);
    c = parse("[server]\naccess_log = log/a.log\n");
    ck_assert_str_eq(c->access_log, "log/a.log");
    config_free(c);
}
END_TEST

/* ---- sizes and durations ---- */

START_TEST(test_parse_size)
{
    size_t n = 77;

    ck_assert_int_eq(config_parse_size("0", &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(config_parse_size("512", &n), 0);
    ck_assert_uint_eq(n, 512);
    ck_assert_int_eq(config_parse_size("64k", &n), 0);
    ck_assert_uint_eq(n, 65536);
    ck_assert_int_eq(config_parse_size("64K", &n), 0);
    ck_assert_uint_eq(n, 65536);
    ck_assert_int_eq(config_parse_size("1m", &n), 0);
    ck_assert_uint_eq(n, 1048576);
    ck_assert_int_eq(config_parse_size("2G", &n), 0);
    ck_assert_uint_eq(n, 2147483648u);
    ck_assert_int_eq(config_parse_size("18446744073709551615", &n), 0);
    ck_assert_uint_eq(n, SIZE_MAX);

    n = 77;
    const char *bad[] = { "", "k", "-1", "+1", " 1", "1 ", "1kb", "1t", "1.5k", "0x10",
                          "18446744073709551616", "17179869184g", "16777216t", NULL };
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(config_parse_size(bad[i], &n) == -1, "'%s' accepted", bad[i]);
    ck_assert_uint_eq(n, 77);
    ck_assert_int_eq(config_parse_size("17179869183g", &n), 0); /* SIZE_MAX >> 30, 64-bit */
    ck_assert_uint_eq(n, (size_t)17179869183 << 30);
}
END_TEST

START_TEST(test_parse_duration)
{
    uint64_t ms = 77;

    ck_assert_int_eq(config_parse_duration("500ms", &ms), 0);
    ck_assert_uint_eq(ms, 500);
    ck_assert_int_eq(config_parse_duration("2s", &ms), 0);
    ck_assert_uint_eq(ms, 2000);
    ck_assert_int_eq(config_parse_duration("1m", &ms), 0);
    ck_assert_uint_eq(ms, 60000);
    ck_assert_int_eq(config_parse_duration("3", &ms), 0);
    ck_assert_uint_eq(ms, 3000);
    ck_assert_int_eq(config_parse_duration("2h", &ms), 0);
    ck_assert_uint_eq(ms, 7200000);
    ck_assert_int_eq(config_parse_duration("0", &ms), 0);
    ck_assert_uint_eq(ms, 0);
    ck_assert_int_eq(config_parse_duration("18446744073709551615ms", &ms), 0);
    ck_assert_uint_eq(ms, UINT64_MAX);
    ck_assert_int_eq(config_parse_duration("18446744073709551s", &ms), 0);
    ck_assert_uint_eq(ms, 18446744073709551000u);

    ms = 77;
    const char *bad[] = { "", "s", "-1s", "1.5s", "5x", "1 s", "1S", "1msx", "1d",
                          "18446744073709551616ms", "18446744073709552s", "5124095576030432h",
                          NULL };
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(config_parse_duration(bad[i], &ms) == -1, "'%s' accepted", bad[i]);
    ck_assert_uint_eq(ms, 77);
}
END_TEST

/* ---- Middleware keys ---- */

START_TEST(test_middleware_keys)
{
    const char *text = "[plugin a]\npath = /a.so\ntimeout = 500ms\ntimeout_status = 504\n"
                       "[route GET /x]\ntimeout = 2s\n";
    struct config *c = config_parse(text, strlen(text), "t.conf", err, sizeof err);

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->plugins[0].mw.timeout_ms, 500);
    ck_assert_int_eq(c->plugins[0].mw.timeout_status, 504);
    ck_assert_uint_eq(c->routes[0].mw.timeout_ms, 2000);
    ck_assert_int_eq(c->routes[0].mw.timeout_status, 0);
    config_free(c);

    const char *bad = "[plugin a]\npath = /a.so\ntimeout = 0s\ntimeout_status = 200\n"
                      "timeout = 1s\n[route GET /x]\ntimeout_status = abc\nmount = /x\n";
    ck_assert_ptr_null(config_parse(bad, strlen(bad), "t.conf", err, sizeof err));
    ck_assert_msg(strstr(err, "t.conf:3: timeout must be greater than 0"), "%s", err);
    ck_assert_msg(strstr(err, "t.conf:4: bad timeout_status '200'"), "%s", err);
    ck_assert_msg(strstr(err, "t.conf:5: duplicate key 'timeout' (first at line 3)"), "%s", err);
    ck_assert_msg(strstr(err, "t.conf:7: bad timeout_status 'abc'"), "%s", err);
    ck_assert_msg(strstr(err, "t.conf:8: unknown key 'mount' in [route GET /x]"), "%s", err);
}
END_TEST

START_TEST(test_middleware_all_keys)
{
    const char *text = "[server]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8 ::1\n"
                       "cache_max_bytes = 16m\n"
                       "[plugin a]\npath = /a.so\nratelimit = 10/60s\n"
                       "ratelimit_key = header:X-Api-Key\nratelimit_max_keys = 500\n"
                       "cache = 30s\ncache_vary = Accept-Language, X-Tenant\n"
                       "cache_status = 200 404\nuse = auth, audit\n"
                       "[route GET /x]\nratelimit = off\ncache = off\n";
    struct config *c = config_parse(text, strlen(text), "t.conf", err, sizeof err);

    ck_assert_msg(c != NULL, "%s", err);
    const struct config_mw *mw = &c->plugins[0].mw;
    ck_assert_uint_eq(mw->ratelimit_n, 10);
    ck_assert_uint_eq(mw->ratelimit_ms, 60000);
    ck_assert_str_eq(mw->ratelimit_header, "X-Api-Key");
    ck_assert_uint_eq(mw->ratelimit_max_keys, 500);
    ck_assert_uint_eq(mw->cache_ms, 30000);
    ck_assert_uint_eq(mw->ncache_vary, 2);
    ck_assert_str_eq(mw->cache_vary[1], "X-Tenant");
    ck_assert_uint_eq(mw->ncache_status, 2);
    ck_assert_int_eq(mw->cache_status[1], 404);
    ck_assert_uint_eq(mw->nuse, 2);
    ck_assert_str_eq(mw->use[0], "auth");
    ck_assert_int_eq(mw->line[MW_USE], 12);
    mw = &c->routes[0].mw;
    ck_assert_int_ne(mw->line[MW_RATELIMIT], 0);
    ck_assert_uint_eq(mw->ratelimit_n, 0);
    ck_assert_int_ne(mw->line[MW_CACHE], 0);
    ck_assert_uint_eq(mw->cache_ms, 0);
    ck_assert_int_eq(mw->line[MW_TIMEOUT], 0);
    ck_assert_uint_eq(c->ntrusted, 3);
    ck_assert_uint_eq(c->cache_max_bytes, 16 * 1024 * 1024);
    unsigned char a[16] = {10, 1, 2, 3}, b[16] = {11, 0, 0, 1}, v6[16] = {0};
    v6[15] = 1;
    ck_assert_int_eq(config_cidr_match(c->trusted, c->ntrusted, AF_INET, a), 1);
    ck_assert_int_eq(config_cidr_match(c->trusted, c->ntrusted, AF_INET, b), 0);
    ck_assert_int_eq(config_cidr_match(c->trusted, c->ntrusted, AF_INET6, v6), 1);
    v6[15] = 2;
    ck_assert_int_eq(config_cidr_match(c->trusted, c->ntrusted, AF_INET6, v6), 0);
    config_free(c);

    ck_parse_error("[plugin a]\npath = /a.so\nratelimit = 10\n",
                   "plugins.conf:3: bad ratelimit '10'");
    ck_parse_error("[plugin a]\npath = /a.so\nratelimit_key = cookie:x\n",
                   "plugins.conf:3: bad ratelimit_key 'cookie:x' (use ip or header:NAME)");
    ck_parse_error("[plugin a]\npath = /a.so\ncache = forever\n",
                   "plugins.conf:3: bad duration 'forever' for cache");
    ck_parse_error("[plugin a]\npath = /a.so\ncache_vary = Bad:Name\n",
                   "plugins.conf:3: bad header name 'Bad:Name' in cache_vary");
    ck_parse_error("[plugin a]\npath = /a.so\ncache_status = 200 99\n",
                   "plugins.conf:3: bad status '99' in cache_status (200..599)");
    ck_parse_error("[plugin a]\npath = /a.so\nuse = ,\n", "plugins.conf:3: empty list for use");
    ck_parse_error("[server]\ntrusted_proxies = 10.0.0.0/33\n",
                   "plugins.conf:2: bad address '10.0.0.0/33' in trusted_proxies");
    ck_parse_error("[server]\ntrusted_proxies = example.com\n",
                   "plugins.conf:2: bad address 'example.com' in trusted_proxies");
}
END_TEST

START_TEST(test_database)
{
    const char *text = "[database]\ndsn = embedded\npool_size = 4\nstatement_timeout = 2s\n";
    struct config *c = config_parse(text, strlen(text), "/etc/sq/plugins.conf", err, sizeof err);

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->db.dsn, "embedded");
    ck_assert_uint_eq(c->db.pool_size, 4);
    ck_assert_uint_eq(c->db.statement_timeout_ms, 2000);
    ck_assert_uint_eq(c->db.connect_timeout_ms, 5000);
    ck_assert_uint_eq(c->db.pool_wait_timeout_ms, 5000);
    ck_assert_str_eq(c->db.embedded_dir, "/etc/sq/var/pg");
    config_free(c);
    c = parse("[server]\n");
    ck_assert_ptr_null(c->db.dsn);
    config_free(c);

    ck_parse_error("[database]\npool_size = 4\n",
                   "plugins.conf:1: [database] has no dsn (use dsn = embedded, or a libpq conninfo)");
    ck_parse_error("[database]\ndsn = embedded\n[database]\n",
                   "plugins.conf:3: duplicate section [database] (first at line 1)");
    ck_parse_error("[database]\ndsn = embedded\nhost = x\n",
                   "plugins.conf:3: unknown key 'host' in [database]");
    ck_parse_error("[database]\ndsn = embedded\npool_size = 0\n",
                   "plugins.conf:3: bad pool_size '0' (use 1..1024 or auto)");
}
END_TEST

/* ---- [plugin NAME] ---- */

START_TEST(test_plugin)
{
    const char *text = "[plugin hello]\n"
                       "path = build/plugins/hello.so\n"
                       "mount = /api/\n"
                       "timeout = 2s\n"
                       "color = blue\n"
                       "empty =\n"
                       "\n"
                       "[plugin other-2_x]\n"
                       "path = /opt/x.so\n";
    struct config *c = config_parse(text, strlen(text), "/etc/sq/plugins.conf", err, sizeof err);

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->nplugins, 2);
    struct config_plugin *p = &c->plugins[0];
    ck_assert_str_eq(p->name, "hello");
    ck_assert_str_eq(p->path, "/etc/sq/build/plugins/hello.so");
    ck_assert_str_eq(p->mount, "/api");
    ck_assert_int_eq(p->line, 1);
    ck_assert_uint_eq(p->nkv, 2); /* timeout is the middleware's, not a free key */
    ck_assert_uint_eq(p->mw.timeout_ms, 2000);
    ck_assert_int_eq(p->mw.timeout_status, 0);
    ck_assert_str_eq(p->kv[0].key, "color");
    ck_assert_int_eq(p->kv[0].line, 5);
    ck_assert_ptr_null(config_plugin_get(p, "timeout"));
    ck_assert_pstr_eq(config_plugin_get(p, "color"), "blue");
    ck_assert_pstr_eq(config_plugin_get(p, "empty"), "");
    ck_assert_ptr_null(config_plugin_get(p, "path"));
    ck_assert_ptr_null(config_plugin_get(p, "nope"));
    p = &c->plugins[1];
    ck_assert_str_eq(p->name, "other-2_x");
    ck_assert_str_eq(p->path, "/opt/x.so");
    ck_assert_str_eq(p->mount, "/");
    ck_assert_uint_eq(p->nkv, 0);
    ck_assert_ptr_null(config_plugin_get(p, "timeout"));
    ck_assert_int_eq(p->line, 8);
    config_free(c);
}
END_TEST

START_TEST(test_plugin_paths)
{
    const char *text = "[plugin x]\npath = build/x.so\n";
    struct config *c;

    c = config_parse(text, strlen(text), "/etc/sq/plugins.conf", err, sizeof err);
    ck_assert_str_eq(c->plugins[0].path, "/etc/sq/build/x.so");
    config_free(c);
    c = config_parse(text, strlen(text), "plugins.conf", err, sizeof err);
    ck_assert_str_eq(c->plugins[0].path, "build/x.so");
    config_free(c);
    c = config_parse(text, strlen(text), "conf/plugins.conf", err, sizeof err);
    ck_assert_str_eq(c->plugins[0].path, "conf/build/x.so");
    config_free(c);
    c = config_parse(text, strlen(text), "/plugins.conf", err, sizeof err);
    ck_assert_str_eq(c->plugins[0].path, "/build/x.so");
    config_free(c);
}
END_TEST

START_TEST(test_plugin_mounts)
{
    static const char *const cases[][2] = {
        { "/", "/" }, { "/api", "/api" }, { "/api/", "/api" }, { "/api//", "/api" },
        { "//", "/" }, { "/a/b/", "/a/b" },
    };
    char text[128];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "[plugin x]\npath = x.so\nmount = %s\n", cases[i][0]);
        struct config *c = parse(text);
        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_str_eq(c->plugins[0].mount, cases[i][1]);
        config_free(c);
    }
    ck_parse_error("[plugin x]\npath = x.so\nmount = api\n",
                   "plugins.conf:3: bad mount 'api' (must start with '/', without '{' or spaces)");
    ck_parse_error("[plugin x]\npath = x.so\nmount = /u/{id}\n", "plugins.conf:3: bad mount");
    ck_parse_error("[plugin x]\npath = x.so\nmount =\n", "plugins.conf:3: empty value for 'mount'");
}
END_TEST

START_TEST(test_plugin_errors)
{
    ck_parse_error("[server]\n\n[plugin hello]\nmount = /\n",
                   "plugins.conf:3: plugin 'hello' has no path");
    ck_parse_error("[plugin a]\npath = a.so\n[plugin b]\npath = b.so\n[plugin a]\npath = c.so\n",
                   "plugins.conf:5: duplicate plugin 'a' (first at line 1)");
    ck_parse_error("[plugin]\n", "plugins.conf:1: expected [plugin NAME]");
    ck_parse_error("[plugin a b]\n", "plugins.conf:1: expected [plugin NAME]");
    ck_parse_error("[plugin a.b]\n",
                   "plugins.conf:1: bad plugin name 'a.b' (use letters, digits, '_' or '-')");
    ck_parse_error("[plugin a]\npath = a.so\npath = b.so\n",
                   "plugins.conf:3: duplicate key 'path' (first at line 2)");
    ck_parse_error("[plugin a]\npath = a.so\nmount = /\nmount = /x\n",
                   "plugins.conf:4: duplicate key 'mount' (first at line 3)");
    ck_parse_error("[plugin a]\npath = a.so\nt = 1\nt = 2\n",
                   "plugins.conf:4: duplicate key 't' (first at line 3)");
    ck_parse_error("[plugin a]\npath =\n", "plugins.conf:2: empty value for 'path'");
}
END_TEST

/* ---- [route METHOD PATH] ---- */

START_TEST(test_routes)
{
    struct config *c = parse("[route GET /users/{id:int}]\n"
                             "; no keys yet\n"
                             "[route   POST   /users ]  # create\n"
                             "[route M-SEARCH /]\n");

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->nroutes, 3);
    ck_assert_str_eq(c->routes[0].method, "GET");
    ck_assert_str_eq(c->routes[0].path, "/users/{id:int}");
    ck_assert_int_eq(c->routes[0].line, 1);
    ck_assert_str_eq(c->routes[1].method, "POST");
    ck_assert_str_eq(c->routes[1].path, "/users");
    ck_assert_int_eq(c->routes[1].line, 3);
    ck_assert_str_eq(c->routes[2].method, "M-SEARCH");
    config_free(c);
}
END_TEST

START_TEST(test_route_errors)
{
    ck_parse_error("[route GET /x]\npath = /x.so\n",
                   "plugins.conf:2: unknown key 'path' in [route GET /x]");
    ck_parse_error("[route GET /x]\n[route POST /x]\n[route GET /x]\n",
                   "plugins.conf:3: duplicate route 'GET /x' (first at line 1)");
    ck_parse_error("[route GET]\n", "plugins.conf:1: expected [route METHOD PATH]");
    ck_parse_error("[route GET /a /b]\n", "plugins.conf:1: expected [route METHOD PATH]");
    ck_parse_error("[route get /x]\n",
                   "plugins.conf:1: bad method 'get' in [route] (use an uppercase HTTP method "
                   "such as GET)");
    ck_parse_error("[route GET x]\n", "plugins.conf:1: bad route path 'x' (must start with '/')");
}
END_TEST

/* ---- syntax ---- */

START_TEST(test_syntax_errors)
{
    ck_parse_error("workers = 2\n", "plugins.conf:1: key 'workers' outside any section");
    ck_parse_error("[databases]\n", "plugins.conf:1: unknown section [databases]");
    ck_parse_error("[foo]\n", "plugins.conf:1: unknown section [foo]");
    ck_parse_error("[Server]\n", "plugins.conf:1: unknown section [Server]");
    ck_parse_error("[server\n", "plugins.conf:1: missing ']' in section header");
    ck_parse_error("[server] x\n", "plugins.conf:1: unexpected text after section header");
    ck_parse_error("[]\n", "plugins.conf:1: empty section header");
    ck_parse_error("[server x]\n", "plugins.conf:1: expected [server]");
    ck_parse_error("[server]\nworkers\n",
                   "plugins.conf:2: expected 'key = value' or a [section] header");
    ck_parse_error("[server]\nworkers ; = 2\n", "plugins.conf:2: expected 'key = value'");
    ck_parse_error("[server]\n = 2\n", "plugins.conf:2: missing key before '='");
    ck_parse_error("[server]\nmax body = 2\n", "plugins.conf:2: bad key 'max body'");
    ck_parse_error("[server]\naccess_log = \"x\n", "plugins.conf:2: unterminated quoted value");
    ck_parse_error("[server]\naccess_log = \"x\\\n", "plugins.conf:2: unterminated quoted value");
    ck_parse_error("[server]\naccess_log = \"a\\nb\"\n",
                   "plugins.conf:2: bad escape '\\n' in quoted value");
    ck_parse_error("[server]\naccess_log = \"a\" b\n",
                   "plugins.conf:2: unexpected text after quoted value");
    ck_parse_error("[server]\nworkers =\n", "plugins.conf:2: empty value for 'workers'");
}
END_TEST

START_TEST(test_nul_byte)
{
    static const char text[] = "[server]\nworkers = 2\0x\n";
    struct config *c = config_parse(text, sizeof text - 1, "p.conf", err, sizeof err);

    ck_assert_ptr_null(c);
    ck_assert_str_eq(err, "p.conf:2: NUL byte in line");
}
END_TEST

START_TEST(test_all_errors_reported)
{
    struct config *c = parse("stray = 1\n"        /* 1 */
                             "[server]\n"         /* 2 */
                             "workers = many\n"   /* 3 */
                             "max_bodyy = 1\n"    /* 4 */
                             "[foo]\n"            /* 5 */
                             "bar = 1\n"          /* 6: skipped, [foo] already reported */
                             "[plugin p]\n"       /* 7: no path */
                             "mount = x\n"        /* 8 */
                             "[route GET /]\n"    /* 9 */
                             "k = v\n");          /* 10 */

    ck_assert_ptr_null(c);
    ck_assert_int_eq(count_lines(err), 7);
    ck_assert_ptr_nonnull(strstr(err, "plugins.conf:1: key 'stray' outside any section\n"));
    ck_assert_ptr_nonnull(strstr(err, "plugins.conf:3: bad workers 'many'"));
    ck_assert_ptr_nonnull(strstr(err, "plugins.conf:4: unknown key 'max_bodyy' in [server]\n"));
    ck_assert_ptr_nonnull(strstr(err, "plugins.conf:5: unknown section [foo]\n"));
    ck_assert_ptr_nonnull(strstr(err, "plugins.conf:8: bad mount 'x'"));
    ck_assert_ptr_nonnull(strstr(err, "plugins.conf:7: plugin 'p' has no path\n"));
    ck_assert_ptr_nonnull(strstr(err, "plugins.conf:10: unknown key 'k' in [route GET /]"));
    ck_assert_ptr_null(strstr(err, ":6:"));
    ck_assert_int_ne(err[strlen(err) - 1], '\n');
}
END_TEST

START_TEST(test_error_buffer_small)
{
    char small[16];
    const char *text = "[foo]\n[bar]\n";
    struct config *c = config_parse(text, strlen(text), "plugins.conf", small, sizeof small);

    ck_assert_ptr_null(c);
    ck_assert_str_eq(small, "plugins.conf:1:");
    c = config_parse(text, strlen(text), "plugins.conf", NULL, 0);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_comments_and_quoting)
{
    const char *text = "; leading comment\n"
                       "# another\n"
                       "   ; indented comment\n"
                       "[server]   ; trailing comment\n"
                       "  workers   =   3   ; three\n"
                       "max_body=2k#x\n"
                       "[plugin q]\r\n"
                       "path = \"dir with ; and # chars/q.so\"  ; comment\r\n"
                       "a = x;y#z\n"
                       "b = \"say \\\"hi\\\" \\\\ bye\"\n"
                       "c = \"\"\n"
                       "d = x # comment\n"
                       "e = \"  padded  \"\n"
                       "f = a = b\n"
                       "g = ; only a comment\n"
                       "h = \"q\";comment\n";
    struct config *c = parse(text);

    /* "2k#x" is one value: '#' starts a comment only at the start or after whitespace. */
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err, "plugins.conf:6: bad size '2k#x' for max_body (use e.g. 512, 64k, 1m)");

    text = strstr(text, "[plugin q]");
    c = parse(text);
    ck_assert_msg(c != NULL, "%s", err);
    struct config_plugin *p = &c->plugins[0];
    ck_assert_str_eq(p->path, "dir with ; and # chars/q.so");
    ck_assert_pstr_eq(config_plugin_get(p, "a"), "x;y#z");
    ck_assert_pstr_eq(config_plugin_get(p, "b"), "say \"hi\" \\ bye");
    ck_assert_pstr_eq(config_plugin_get(p, "c"), "");
    ck_assert_pstr_eq(config_plugin_get(p, "d"), "x");
    ck_assert_pstr_eq(config_plugin_get(p, "e"), "  padded  ");
    ck_assert_pstr_eq(config_plugin_get(p, "f"), "a = b");
    ck_assert_pstr_eq(config_plugin_get(p, "g"), "");
    ck_assert_pstr_eq(config_plugin_get(p, "h"), "q");
    config_free(c);

    c = parse("[server]\n  workers   =   3   ; three\n\n\t\n");
    ck_assert_int_eq(c->workers, 3);
    config_free(c);
    c = parse("\xEF\xBB\xBF[server]\nworkers = 5"); /* BOM, no final newline */
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->workers, 5);
    config_free(c);
}
END_TEST

/* ---- config_load ---- */

START_TEST(test_load_file)
{
    char dir[] = "/tmp/check_config.XXXXXX", file[64];
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/plugins.conf", dir);
    f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("[server]\nlisten = :9999\n[plugin p]\npath = p.so\n", f);
    fclose(f);

    struct config *c = config_load(file, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->file, file);
    ck_assert_str_eq(c->listen[0].port, "9999");
    char want[160];
    snprintf(want, sizeof want, "%s/p.so", dir);
    ck_assert_str_eq(c->plugins[0].path, want);
    config_free(c);

    f = fopen(file, "w");
    fputs("[server]\n\nworkers = none\n", f);
    fclose(f);
    ck_assert_ptr_null(config_load(file, err, sizeof err));
    snprintf(want, sizeof want, "%s:3: bad workers 'none'", file);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);

    unlink(file);
    ck_assert_ptr_null(config_load(file, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", file);
    ck_assert_str_eq(err, want);

    ck_assert_ptr_null(config_load(dir, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", dir);
    ck_assert_str_eq(err, want);
    rmdir(dir);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_server_keys);
    tcase_add_test(tc, test_listen_forms);
    tcase_add_test(tc, test_listen_errors);
    tcase_add_test(tc, test_workers);
    tcase_add_test(tc, test_coroutine_stack);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_server_value_errors);
    tcase_add_test(tc, test_duplicate_server_key);
    tcase_add_test(tc, test_access_log);
    tcase_add_test(tc, test_parse_size);
    tcase_add_test(tc, test_parse_duration);
    tcase_add_test(tc, test_plugin);
    tcase_add_test(tc, test_middleware_keys);
    tcase_add_test(tc, test_plugin_paths);
    tcase_add_test(tc, test_plugin_mounts);
    tcase_add_test(tc, test_plugin_errors);
    tcase_add_test(tc, test_routes);
    tcase_add_test(tc, test_route_errors);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_all_errors_reported);
    tcase_add_test(tc, test_error_buffer_small);
    tcase_add_test(tc, test_comments_and_quoting);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_middleware_all_keys);
    tcase_add_test(tc, test_database);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(config_suite());
}
