/*
 * check_pgembed.c - the embedded PostgreSQL cluster, for real: initdb, start, reuse, stop, in
 * a temp dir. Queries go through psql (the unit suites do not link libpq).
 *
 * One cluster directory, TMP/pg, serves every test: the first start creates it (the suite's
 * only initdb), later ones start and stop it. Each test leaves it stopped; main removes TMP.
 */
#include <check.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgembed.h"
#include "../check_main.h"

static char tmp[64]; /* made by main, inherited by the forked tests */

/* TMP/name in a static buffer (one per call site is enough: each is used at once). */
static const char *in_tmp(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", tmp, name);
    return p;
}

static const char *pgdir(void)
{
    return in_tmp("pg");
}

static bool socket_exists(void)
{
    struct stat st;
    char path[256];

    snprintf(path, sizeof(path), "%s/.s.PGSQL.5432", pgdir());
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Runs sql through psql on dsn. Returns psql's exit status; out gets what it printed (stdout
   and stderr) without the final newline. */
static int psql(const char *dsn, const char *sql, char *out, size_t outlen)
{
    int fds[2], status;
    size_t n = 0;
    ssize_t r;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execlp("psql", "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql,
               (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    while (n + 1 < outlen && (r = read(fds[0], out + n, outlen - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    out[n] = '\0';
    if (n && out[n - 1] == '\n')
        out[n - 1] = '\0';
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Asserts that sql on dsn prints want. */
static void query_is(const char *dsn, const char *sql, const char *want)
{
    char out[1024];
    int rc = psql(dsn, sql, out, sizeof(out));

    ck_assert_msg(rc == 0, "psql -d \"%s\" -c \"%s\": exit %d: %s", dsn, sql, rc, out);
    ck_assert_str_eq(out, want);
}

static struct pgembed *start_ok(const char *dir)
{
    char err[512] = "";
    struct pgembed *e = pgembed_start(dir, err, sizeof(err));

    ck_assert_msg(e != NULL, "pgembed_start(%s): %s", dir, err);
    return e;
}

START_TEST(test_start_query_stop)
{
    struct pgembed *e = start_ok(pgdir());
    char host[300];

    snprintf(host, sizeof(host), "host=%s ", pgdir());
    ck_assert_ptr_nonnull(strstr(pgembed_dsn(e), host));
    ck_assert_ptr_nonnull(strstr(pgembed_dsn(e), "dbname=postgres"));
    ck_assert(socket_exists());
    query_is(pgembed_dsn(e), "select 1", "1");
    query_is(pgembed_dsn(e), "show listen_addresses", "");
    query_is(pgembed_dsn(e), "show server_encoding", "UTF8");
    query_is(pgembed_dsn(e), "show fsync", "on");
    pgembed_stop(e);
    ck_assert(!socket_exists());
    pgembed_stop(NULL);
}
END_TEST

/* A second start while the first handle runs borrows the cluster: stopping it stops nothing. */
START_TEST(test_second_start_borrows)
{
    struct pgembed *e1 = start_ok(pgdir());
    struct pgembed *e2 = start_ok(pgdir());

    ck_assert_str_eq(pgembed_dsn(e1), pgembed_dsn(e2));
    query_is(pgembed_dsn(e2), "select 2", "2");
    pgembed_stop(e2);
    ck_assert(socket_exists());
    query_is(pgembed_dsn(e1), "select 1", "1");
    pgembed_stop(e1);
    ck_assert(!socket_exists());
}
END_TEST

START_TEST(test_data_persists_across_restart)
{
    struct pgembed *e = start_ok(pgdir());

    query_is(pgembed_dsn(e), "create table kept (v text)", "CREATE TABLE");
    query_is(pgembed_dsn(e), "insert into kept values ('still here')", "INSERT 0 1");
    pgembed_stop(e);
    ck_assert(!socket_exists());

    e = start_ok(pgdir());
    query_is(pgembed_dsn(e), "select v from kept", "still here");
    pgembed_stop(e);
    ck_assert(!socket_exists());
}
END_TEST

/* A host killed while its cluster runs leaves it running; the next start adopts it, so its
   stop stops it. */
START_TEST(test_adopts_cluster_of_dead_host)
{
    int status;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char err[512];
        _exit(pgembed_start(pgdir(), err, sizeof(err)) ? 0 : 1); /* "killed": no stop */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(socket_exists());

    struct pgembed *e = start_ok(pgdir());
    query_is(pgembed_dsn(e), "select 3", "3");
    pgembed_stop(e);
    ck_assert(!socket_exists());
}
END_TEST

static void start_fails(const char *dir, const char *want)
{
    char err[512] = "";

    ck_assert_ptr_null(pgembed_start(dir, err, sizeof(err)));
    ck_assert_msg(strstr(err, want), "error \"%s\" does not say \"%s\"", err, want);
    ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(test_bad_dirs)
{
    const char *file = in_tmp("file");
    char long_dir[256], under_file[256];
    FILE *f = fopen(file, "w");

    ck_assert_ptr_nonnull(f);
    fclose(f);
    start_fails(file, file);
    ck_assert(strstr(file, "/file"));
    snprintf(under_file, sizeof(under_file), "%s/sub", file);
    start_fails(under_file, under_file);

    snprintf(long_dir, sizeof(long_dir), "%s/%0100d", tmp, 0);
    start_fails(long_dir, "too long");
    start_fails("", "empty");
}
END_TEST

static Suite *pgembed_suite(void)
{
    Suite *s = suite_create("pgembed");
    TCase *tc = tcase_create("cluster");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_start_query_stop);
    tcase_add_test(tc, test_second_start_borrows);
    tcase_add_test(tc, test_data_persists_across_restart);
    tcase_add_test(tc, test_adopts_cluster_of_dead_host);
    tcase_add_test(tc, test_bad_dirs);
    suite_add_tcase(s, tc);
    return s;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 ? -1 : 0;
}

/* Stops a cluster a failed test left running (adopting it: its owner is gone), then removes
   TMP. */
static void cleanup(void)
{
    if (socket_exists()) {
        char err[512];
        pgembed_stop(pgembed_start(pgdir(), err, sizeof(err)));
    }
    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    int rc;

    snprintf(tmp, sizeof(tmp), "/tmp/check_pgembed.XXXXXX");
    if (!mkdtemp(tmp) || (geteuid() == 0 && chmod(tmp, 0711) < 0)) { /* root: postgres enters */
        perror(tmp);
        return EXIT_FAILURE;
    }
    rc = check_run(pgembed_suite());
    cleanup();
    return rc;
}
