/*
 * check_workers_shared.c - workers = N: the state that must hold for the whole host is shared
 * by the workers (a rate limit counts every worker's requests against one table), and a
 * worker that crashes is named with the plugin and route it was running, and replaced.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check_main.h"
#include "client.h"

/* GET path on a new connection (so the kernel may hand it to either worker); the status,
   with the body copied to body[0..len) when body is not NULL. */
static struct client_proc *host;

static int get_new(uint16_t port, const char *path, char *body, size_t len)
{
    struct client_conn *c = client_open(port);
    struct client_res res;
    char req[256];
    int status;

    ck_assert_ptr_nonnull(c);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    int rc = client_roundtrip(c, req, &res, 5000);
    ck_assert_msg(rc == 0, "GET %s on port %u failed; the host said: %s", path, port,
                  client_proc_stderr(host));
    status = res.status;
    if (body)
        snprintf(body, len, "%s", res.body);
    client_res_free(&res);
    client_close(c);
    return status;
}

static int count(const char *s, const char *what)
{
    int n = 0;

    for (; (s = strstr(s, what)); s++)
        n++;
    return n;
}

/* Waits until both workers serve (each logged its plugin loaded); their pids, from the
   master's "worker N started (pid P)" lines. */
static void workers_ready(struct client_proc *p, pid_t pids[2])
{
    char *log = client_proc_stderr(p);

    for (int tries = 0; tries < 500 && count(log, " loaded from ") < 2; tries++) {
        free(log);
        client_sleep_ms(20);
        log = client_proc_stderr(p);
    }
    ck_assert_msg(count(log, " loaded from ") >= 2, "two workers did not start:\n%s", log);
    const char *at = log;
    for (int i = 0; i < 2; i++, at++) {
        at = strstr(at, "started (pid ");
        pids[i] = (pid_t)atoi(at + strlen("started (pid "));
    }
    free(log);
}

/* n requests, each on a new connection; how many were allowed (200), failing on others. */
static int allowed_of(uint16_t port, int n)
{
    int allowed = 0;

    for (int i = 0; i < n; i++) {
        int st = get_new(port, "/v", NULL, 0);
        ck_assert_msg(st == 200 || st == 429, "status %d", st);
        allowed += st == 200;
    }
    return allowed;
}

/* A stopped worker accepts nothing, so each half of the requests surely goes to one worker:
   the limit of 10 must hold across both, not 10 each. */
START_TEST(test_ratelimit_spans_workers)
{
    char conf[1024], so[512];
    struct client_proc p;
    pid_t w[2];

    ck_assert_ptr_nonnull(client_build_path("tests/plugins/reloadplug.so", so, sizeof(so)));
    snprintf(conf, sizeof(conf),
             "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
             "[plugin reloadplug]\npath = %s\nratelimit = 10/60s\n",
             so);
    host = &p;
    if (client_spawn(&p, conf, NULL) != 0)
        ck_abort_msg("the host did not start: %s", client_proc_stderr(&p));
    workers_ready(&p, w);
    kill(w[1], SIGSTOP);
    ck_assert_int_eq(allowed_of(p.port, 6), 6); /* worker 1 */
    kill(w[1], SIGCONT);
    kill(w[0], SIGSTOP);
    ck_assert_int_eq(allowed_of(p.port, 10), 4); /* worker 2: what worker 1 left */
    kill(w[0], SIGCONT);
    ck_assert_int_eq(allowed_of(p.port, 10), 0);
    client_proc_free(&p);
}
END_TEST

START_TEST(test_crash_named_and_replaced)
{
    char conf[1024], so[512];
    struct client_proc p;
    struct client_conn *c;
    struct client_res res;
    char *log = NULL;
    pid_t w[2];
    int ok = 0;

    ck_assert_ptr_nonnull(client_build_path("tests/plugins/asyncplug.so", so, sizeof(so)));
    snprintf(conf, sizeof(conf),
             "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n[plugin asyncplug]\npath = %s\n", so);
    host = &p;
    if (client_spawn(&p, conf, NULL) != 0)
        ck_abort_msg("the host did not start: %s", client_proc_stderr(&p));
    workers_ready(&p, w);
    c = client_open(p.port);
    ck_assert_ptr_nonnull(c);
    /* The worker dies mid-request: the connection ends without a reply. */
    ck_assert_int_eq(client_roundtrip(c, "GET /crash HTTP/1.1\r\nHost: t\r\n\r\n", &res, 5000),
                     -1);
    client_res_free(&res);
    client_close(c);
    /* The master logs the death (a signal; under the sanitizers, which take the fault
       over, an exit status) and starts a third worker. */
    for (int i = 0; i < 100 && count(log ? log : "", "started (pid ") < 3; i++) {
        free(log);
        client_sleep_ms(50);
        log = client_proc_stderr(&p);
    }
    ck_assert_msg(strstr(log, "in plugin asyncplug (GET /crash)"), "no crash line in:\n%s", log);
    ck_assert_msg(strstr(log, "killed by signal") || strstr(log, "exited with status"),
                  "no exit line in:\n%s", log);
    ck_assert_msg(count(log, "started (pid ") == 3, "the worker was not replaced:\n%s", log);
    free(log);
    for (int i = 0; i < 20; i++) /* both workers serve again */
        ok += get_new(p.port, "/stats", NULL, 0) == 200;
    ck_assert_int_eq(ok, 20);
    client_proc_free(&p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("workers_shared");
    TCase *tc = tcase_create("ratelimit");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ratelimit_spans_workers);
    tcase_add_test(tc, test_crash_named_and_replaced);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
