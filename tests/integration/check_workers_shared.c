/*
 * check_workers_shared.c - with workers = N, the state that must hold for the whole host is
 * shared by the workers: a rate limit counts every worker's requests against one table.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check_main.h"
#include "client.h"

#define REQUESTS 60

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

START_TEST(test_ratelimit_spans_workers)
{
    char conf[1024], so[512], body[64], first[64] = "";
    struct client_proc p;
    int allowed = 0, refused = 0, other = 0;
    bool two_pids = false;

    ck_assert_ptr_nonnull(client_build_path("tests/plugins/reloadplug.so", so, sizeof(so)));
    snprintf(conf, sizeof(conf),
             "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
             "[plugin reloadplug]\npath = %s\nratelimit = 10/60s\n",
             so);
    host = &p;
    if (client_spawn(&p, conf, NULL) != 0)
        ck_abort_msg("the host did not start: %s", client_proc_stderr(&p));
    for (int i = 0; i < REQUESTS; i++) {
        int st = get_new(p.port, "/pid", body, sizeof(body));
        allowed += st == 200;
        refused += st == 429;
        if (st == 200 && !*first)
            snprintf(first, sizeof(first), "%s", body);
        else if (st == 200 && strcmp(first, body) != 0)
            two_pids = true;
        other += st != 200 && st != 429;
    }
    client_proc_free(&p);
    /* One table: exactly 10 allowed, however the connections were spread. */
    ck_assert_int_eq(allowed, 10);
    ck_assert_int_eq(refused, REQUESTS - 10);
    ck_assert_int_eq(other, 0);
    /* Both workers answered some of the ten (else the test proves nothing); the kernel
       spreads new connections, so over ten of them both get some. */
    ck_assert_msg(two_pids, "every allowed request went to one worker (%s)", first);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("workers_shared");
    TCase *tc = tcase_create("ratelimit");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ratelimit_spans_workers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
