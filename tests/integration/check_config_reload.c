/*
 * check_config_reload.c - SIGHUP rereads plugins.conf (framework/server.c, server_reload):
 * plugins added, removed and remounted, middleware changed, without a restart; unchanged
 * plugins keep their instance and its state; a configuration with errors, or one that
 * cannot be served, leaves the running one serving and says file:line.
 */
#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check_main.h"
#include "client.h"


static struct client_proc proc;
static char dir[64], conf[128], hello[PATH_MAX], params[PATH_MAX];

static void write_conf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void write_conf(const char *fmt, ...)
{
    FILE *f = fopen(conf, "w");
    va_list ap;

    ck_assert_ptr_nonnull(f);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    ck_assert_int_eq(fclose(f), 0);
}

/* Starts a host on conf, which stays in place for it to reread (client_spawn's own copy is
   removed once the host is up: a shell puts a second -c, which wins, after it). */
static void start(void)
{
    char script[256], text[4096];
    const char *wrap[] = {"/bin/sh", "-c", script, "sh", NULL};
    struct client_spawn_opts o = {.wrap = wrap};
    FILE *f = fopen(conf, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    snprintf(script, sizeof(script), "exec \"$@\" -c '%s'", conf);
    if (client_spawn(&proc, text, &o) < 0)
        ck_abort_msg("the host did not start: %s", client_proc_stderr(&proc));
}

static int log_count(const char *needle)
{
    char *err = client_proc_stderr(&proc);
    int n = 0;

    for (const char *s = err; (s = strstr(s, needle)); s++)
        n++;
    free(err);
    return n;
}

/* SIGHUP, then waits for the host's verdict ("reload: done" or an error line). */
static void reload(void)
{
    int before = log_count("reload: done") + log_count("stays");
    int64_t t0 = client_now_ms();

    ck_assert_int_eq(kill(proc.pid, SIGHUP) /* the shell exec()s the host: same pid */, 0);
    while (log_count("reload: done") + log_count("stays") == before && client_now_ms() - t0 < T_MS)
        client_sleep_ms(10);
    ck_assert_msg(log_count("reload: done") + log_count("stays") > before, "no reload verdict");
}

/* GET path on a new connection: its status, the body into body[0..len). */
static int get(const char *path, char *body, size_t len)
{
    struct client_conn *c = client_open(proc.port);
    struct client_res res;
    char req[256];

    ck_assert_ptr_nonnull(c);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    ck_assert_int_eq(client_roundtrip(c, req, &res, T_MS), 0);
    int status = res.status;
    if (body)
        snprintf(body, len, "%s", res.body);
    client_res_free(&res);
    client_close(c);
    return status;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/squall-confreload-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/plugins.conf", dir);
    ck_assert_ptr_nonnull(client_build_path("plugins/hello.so", hello, sizeof(hello)));
    ck_assert_ptr_nonnull(client_build_path("tests/plugins/params.so", params, sizeof(params)));
}

static void teardown(void)
{
    client_proc_free(&proc);
    client_rmdir(dir);
}

/* A plugin added, then remounted, then given a middleware setting, then removed. */
START_TEST(test_add_remount_change_remove)
{
    char body[256];

    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin hello]\npath = %s\n", hello);
    start();
    ck_assert_int_eq(get("/plaintext", body, sizeof(body)), 200);
    ck_assert_int_eq(get("/p/json", NULL, 0), 404);

    /* The listen line changes too (it needs a restart: logged, the old one serves on). */
    write_conf("[server]\nlisten = 127.0.0.1:1\n[plugin hello]\npath = %s\n"
               "[plugin hello2]\npath = %s\nmount = /p\n", hello, hello);
    reload();
    ck_assert_int_eq(log_count("listen changed; that needs a restart"), 1);
    ck_assert_int_eq(log_count("descriptor names it 'hello', not 'hello2'"), 1);
    ck_assert_int_eq(get("/plaintext", NULL, 0), 200); /* the rest of it applies */

    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin hello]\npath = %s\nmount = /h\n"
               "ratelimit = 2/60s\n", hello);
    reload();
    ck_assert_int_eq(get("/plaintext", NULL, 0), 404);
    ck_assert_int_eq(get("/h/plaintext", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "Hello, World!");
    ck_assert_int_eq(get("/h/plaintext", NULL, 0), 200);
    ck_assert_int_eq(get("/h/plaintext", NULL, 0), 429);

    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin params]\npath = %s\n", params);
    reload();
    ck_assert_int_eq(get("/h/plaintext", NULL, 0), 404);
    ck_assert_int_eq(log_count("plugin hello: instance unloaded"), 1); /* its fini ran */
}
END_TEST

/* A file with errors, and one that parses but cannot be served: the running configuration
   stays, and the log names file:line. */
START_TEST(test_bad_config_keeps_running)
{
    char want[256];

    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin hello]\npath = %s\n", hello);
    start();
    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin hello]\npath = %s\ntimeout = never\n",
               hello);
    reload();
    snprintf(want, sizeof(want), "%s:5: bad duration 'never' for timeout", conf);
    ck_assert_int_eq(log_count(want), 1);
    ck_assert_int_eq(get("/plaintext", NULL, 0), 200);

    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin hello]\npath = %s\nuse = nosuch\n",
               hello);
    reload();
    snprintf(want, sizeof(want), "%s:5: use = nosuch: no loaded plugin provides", conf);
    ck_assert_int_ge(log_count(want), 1); /* one line per route that uses it */
    ck_assert_int_eq(get("/plaintext", NULL, 0), 200);
    ck_assert_int_eq(log_count("instance unloaded"), 0); /* hello was never retired */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config_reload");
    TCase *tc = tcase_create("sighup");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_add_remount_change_remove);
    tcase_add_test(tc, test_bad_config_keeps_running);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
