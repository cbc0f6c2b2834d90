/*
 * check_reload.c - hot reload of a plugin rebuilt while a spawned host serves it
 * (framework/plugin.c, routes.c, watch.c, server.c): under load, across a request in flight,
 * with broken builds, with state handoff, on SIGHUP and `squall reload`, and what becomes of
 * the retired instance (its periodic callback stops, its fini runs after its last request).
 *
 * The plugin is tests/plugins/reloadplug.c, compiled by the test into a folder of its own
 * with -DVERSION=N, so that every reply names the build that made it. A build reaches the
 * watched path in one of the ways a real one does (enum install). The suites must run from
 * the repository root (as `make test` does): the compiler is given relative paths.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check_main.h"
#include "client.h"

#define SRC "tests/plugins/reloadplug.c"
#define GET_V "GET /v HTTP/1.1\r\nHost: t\r\n\r\n"
#define RELOAD_MS 5000 /* for a new build to be answering */
#define LOADERS 6      /* keep-alive connections of the load generator */
#define BUILDS 20      /* rebuilds under load */

/* How a new build reaches the path the host watches. */
enum install {
    INSTALL_CC,      /* the compiler writes the path itself (a new file) */
    INSTALL_RENAME,  /* written under a temporary name in the same folder, then rename()d */
    INSTALL_INPLACE, /* the existing file truncated and rewritten in pieces, as cp does */
};

/* The running test's host, serving reloadplug from a folder of its own. */
static struct {
    char dir[96];
    char so[128];      /* dir/reloadplug.so, the path the host watches */
    char ticks[128];   /* the plugin's tick_file */
    char finis[128];   /* the plugin's fini_file */
    char conf[128];    /* dir/squall.conf */
    char pidfile[128]; /* dir/var/squall.pid, the default next to it */
    struct client_proc proc;
    bool spawned;
} rp;

/* ---- Building and installing ---- */

/* Compiles reloadplug with VERSION=version and the extra flags defs (NULL: none) to out. */
static void compile(int version, const char *defs, const char *out)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "cc -shared -fPIC -I sdk $(pkg-config --cflags jansson) -DVERSION=%d %s %s -o '%s'",
             version, defs ? defs : "", SRC, out);
    ck_assert_msg(system(cmd) == 0, "cannot build: %s", cmd);
}

/* Writes data[0..n) over the watched file in place (same inode): truncated, then 4 KiB at a
   time with a short pause, as a slow copy would. */
static void write_inplace(const char *data, size_t n)
{
    int fd = open(rp.so, O_WRONLY | O_TRUNC | O_CREAT, 0755);

    ck_assert_msg(fd >= 0, "open %s: %s", rp.so, strerror(errno));
    for (size_t off = 0; off < n;) {
        size_t k = n - off < 4096 ? n - off : 4096;
        ssize_t w = write(fd, data + off, k);
        ck_assert_msg(w > 0, "write %s: %s", rp.so, strerror(errno));
        off += (size_t)w;
        usleep(500);
    }
    ck_assert_int_eq(close(fd), 0);
}

/* The contents of the file at path; *n gets its length. The caller frees it. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    long len;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (s = malloc((size_t)len + 1))) {
        *n = fread(s, 1, (size_t)len, f);
        s[*n] = '\0';
    }
    fclose(f);
    return s;
}

/* Builds version (with defs) and puts it at the watched path the way how says. */
static void install(int version, const char *defs, enum install how)
{
    char tmp[160];
    size_t n;

    switch (how) {
    case INSTALL_CC: compile(version, defs, rp.so); break;
    case INSTALL_RENAME:
        snprintf(tmp, sizeof(tmp), "%s/.reloadplug.so.tmp", rp.dir);
        compile(version, defs, tmp);
        ck_assert_msg(rename(tmp, rp.so) == 0, "rename: %s", strerror(errno));
        break;
    case INSTALL_INPLACE:
        snprintf(tmp, sizeof(tmp), "%s/out/reloadplug.so", rp.dir); /* an unwatched folder */
        compile(version, defs, tmp);
        char *data = slurp(tmp, &n);
        ck_assert_ptr_nonnull(data);
        write_inplace(data, n);
        free(data);
        break;
    }
}

/* ---- The host ---- */

/*
 * Starts a host on v1 of reloadplug with server_keys in [server]. Its configuration is
 * rp.conf, which stays (a reload rereads it): client_spawn's own copy is removed once the
 * host is up, so a shell in front of the host puts a second -c, which wins, after it.
 */
static void start(const char *server_keys)
{
    char conf[1024], script[256];
    const char *wrap[] = {"/bin/sh", "-c", script, "sh", NULL};
    struct client_spawn_opts o = {.wrap = wrap};
    FILE *f;

    snprintf(conf, sizeof(conf),
             "[server]\nlisten = 127.0.0.1:0\n%s\n[plugin reloadplug]\npath = %s\n"
             "tick_file = %s\nfini_file = %s\n",
             server_keys ? server_keys : "", rp.so, rp.ticks, rp.finis);
    ck_assert_ptr_nonnull(f = fopen(rp.conf, "w"));
    fputs(conf, f);
    ck_assert_int_eq(fclose(f), 0);
    /* exec all the way: the pid client_spawn gets is the host's own */
    snprintf(script, sizeof(script), "exec \"$@\" -c '%s'", rp.conf);
    compile(1, NULL, rp.so);
    rp.spawned = true;
    if (client_spawn(&rp.proc, conf, &o) < 0) {
        char *err = client_proc_stderr(&rp.proc);
        ck_abort_msg("the host did not start: %s", err);
    }
}

/* The folder of a tcase's test folders, made and removed in the test runner's own process
   (an unchecked fixture): a test that fails ends its process without its teardown. */
static char base[64];

static void base_setup(void)
{
    snprintf(base, sizeof(base), "/tmp/squall-reload-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
}

static void base_teardown(void)
{
    client_rmdir(base);
}

static void setup(void)
{
    char sub[128];

    ck_assert_msg(access(SRC, R_OK) == 0, "run from the repository root: no %s", SRC);
    snprintf(rp.dir, sizeof(rp.dir), "%s/t-XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(rp.dir));
    snprintf(rp.so, sizeof(rp.so), "%s/reloadplug.so", rp.dir);
    snprintf(rp.ticks, sizeof(rp.ticks), "%s/ticks", rp.dir);
    snprintf(rp.finis, sizeof(rp.finis), "%s/finis", rp.dir);
    snprintf(rp.conf, sizeof(rp.conf), "%s/squall.conf", rp.dir);
    snprintf(rp.pidfile, sizeof(rp.pidfile), "%s/var/squall.pid", rp.dir);
    snprintf(sub, sizeof(sub), "%s/out", rp.dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
}

/* SIGTERM to the host itself (never to a guessed child), which must then exit 0 without a
   sanitizer's report (a leak makes LeakSanitizer's exit status); then its files and folder. */
static void teardown(void)
{
    char *why = rp.spawned ? client_proc_end(&rp.proc, 5000) : NULL;

    rp.spawned = false;
    client_rmdir(rp.dir);
    ck_assert_msg(!why, "%s", why);
}

/* GET path on a new connection: the status, and the body copied to body. */
static int get(const char *path, char *body, size_t len)
{
    struct client_conn *c = client_open(rp.proc.port);
    struct client_res res;
    char req[256];

    ck_assert_ptr_nonnull(c);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    ck_assert_int_eq(client_roundtrip(c, req, &res, T_MS), 0);
    snprintf(body, len, "%s", res.body);
    int status = res.status;
    client_res_free(&res);
    client_close(c);
    return status;
}

/* The version GET /v answers with now. */
static int version_now(void)
{
    char body[128];
    int v = -1;

    ck_assert_int_eq(get("/v", body, sizeof(body)), 200);
    ck_assert_msg(sscanf(body, "reloadplug v%d", &v) == 1, "GET /v: '%s'", body);
    return v;
}

/* Polls GET /v until it says version; the milliseconds that took, or -1 on a timeout. */
static int64_t wait_version(int version, int timeout_ms)
{
    int64_t t0 = client_now_ms();

    while (client_now_ms() - t0 < timeout_ms) {
        if (version_now() == version)
            return client_now_ms() - t0;
        client_sleep_ms(5);
    }
    return -1;
}

static void expect_version(int version)
{
    int64_t ms = wait_version(version, RELOAD_MS);
    char *err = ms < 0 ? client_proc_stderr(&rp.proc) : NULL;

    ck_assert_msg(ms >= 0, "v%d never answered; the host said:\n%s", version, err);
}

/* How many times needle occurs in s. */
static int count_in(const char *s, const char *needle)
{
    int n = 0;

    for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* How many times needle occurs in the host's stderr so far. */
static int log_count(const char *needle)
{
    char *err = client_proc_stderr(&rp.proc);
    int n = count_in(err, needle);

    free(err);
    return n;
}

/* How many times needle occurs in the file at path (0 when there is none). */
static int file_count(const char *path, const char *needle)
{
    size_t n;
    char *s = slurp(path, &n);
    int k = count_in(s, needle);

    free(s);
    return k;
}

/* Waits up to timeout_ms until needle has occurred n times in the host's stderr. */
static bool wait_log(const char *needle, int n, int timeout_ms)
{
    int64_t t0 = client_now_ms();

    while (log_count(needle) < n && client_now_ms() - t0 < timeout_ms)
        client_sleep_ms(10);
    return log_count(needle) >= n;
}

/* Sends GET /sleep?ms=ms on c and waits until the host has it sleeping. */
static void start_sleep(struct client_conn *c, int ms)
{
    char req[128], body[64];

    snprintf(req, sizeof(req), "GET /sleep?ms=%d HTTP/1.1\r\nHost: t\r\n\r\n", ms);
    ck_assert_int_eq(client_send_str(c, req), 0);
    for (int i = 0; i < 200 && (get("/sleeping", body, sizeof(body)), strcmp(body, "1")); i++)
        client_sleep_ms(5);
    ck_assert_str_eq(body, "1");
}

/* Checks that no reply has come on c yet: its request still runs. */
static void expect_pending(struct client_conn *c)
{
    ck_assert_int_eq(client_fill(c, 0), -1);
    ck_assert_uint_eq(client_unparsed(c), 0);
}

/* ---- The load generator ---- */

/* One keep-alive connection sending GET /v in a loop, checking every reply. Runs in a thread
   of its own: it records what went wrong instead of asserting. */
struct loader {
    pthread_t th;
    uint16_t port;
    long requests;                  /* complete 200 replies from an expected version */
    long errors, resets, truncated; /* anything else */
    int last;                       /* the version of the last reply */
    char why[256];                  /* the first failure */
};

static atomic_bool load_stop;
static atomic_int load_newest; /* the newest version installed (or being installed) */

__attribute__((format(printf, 3, 4))) static void loader_fail(struct loader *l, long *counter,
                                                              const char *fmt, ...)
{
    va_list ap;

    (*counter)++;
    if (l->why[0])
        return;
    va_start(ap, fmt);
    vsnprintf(l->why, sizeof(l->why), fmt, ap);
    va_end(ap);
}

/* Checks one reply: 200, a whole body naming a version no older than the last one on this
   connection and no newer than the newest installed, and the connection kept alive. */
static void loader_check(struct loader *l, const struct client_res *res)
{
    const char *conn = client_res_header(res, "Connection");
    char want[64];
    int v = -1;

    if (res->status != 200 || sscanf(res->body, "reloadplug v%d", &v) != 1) {
        loader_fail(l, &l->errors, "status %d, version %d", res->status, v);
        return;
    }
    snprintf(want, sizeof(want), "reloadplug v%d", v);
    if (strcmp(res->body, want) != 0 || res->body_len != strlen(want))
        loader_fail(l, &l->truncated, "body of %d bytes for v%d", (int)res->body_len, v);
    else if (v < l->last || v > atomic_load(&load_newest))
        loader_fail(l, &l->errors, "v%d after v%d on one connection", v, l->last);
    else if (conn && strcmp(conn, "close") == 0)
        loader_fail(l, &l->errors, "Connection: close on v%d", v);
    else
        l->requests++;
    l->last = v > l->last ? v : l->last;
}

static void *loader_run(void *arg)
{
    struct loader *l = arg;
    struct client_conn *c = NULL;
    struct client_res res;

    while (!atomic_load(&load_stop)) {
        if (!c && !(c = client_open(l->port))) {
            loader_fail(l, &l->errors, "connect: %s", strerror(errno));
            client_sleep_ms(1);
            continue;
        }
        if (client_roundtrip(c, GET_V, &res, T_MS) == 0) {
            loader_check(l, &res);
            client_res_free(&res);
            continue;
        }
        if (c->reset)
            loader_fail(l, &l->resets, "reset after v%d", l->last);
        else if (c->closed && client_unparsed(c) > 0)
            loader_fail(l, &l->truncated, "closed mid-reply after v%d (%d bytes)", l->last,
                        (int)client_unparsed(c));
        else
            loader_fail(l, &l->errors, "%s after v%d", c->closed ? "closed" : "timeout", l->last);
        client_close(c);
        c = NULL;
    }
    client_close(c);
    return NULL;
}

/* ---- Tests ---- */

/*
 * Twenty rebuilds, by turns written by the compiler, renamed into place and rewritten in
 * place, while LOADERS keep-alive connections send requests without pause: every reply is a
 * whole 200 from a build that was installed, versions never go back on a connection, nothing
 * is reset or cut, and after the last build only it answers.
 */
START_TEST(test_reload_under_load)
{
    static const enum install how[] = {INSTALL_CC, INSTALL_RENAME, INSTALL_INPLACE};
    struct loader l[LOADERS];
    int64_t slowest = 0, t0;
    long total = 0;

    start(NULL);
    atomic_store(&load_stop, false);
    atomic_store(&load_newest, 1);
    memset(l, 0, sizeof(l));
    for (int i = 0; i < LOADERS; i++) {
        l[i].port = rp.proc.port;
        ck_assert_int_eq(pthread_create(&l[i].th, NULL, loader_run, &l[i]), 0);
    }
    client_sleep_ms(100);
    t0 = client_now_ms();
    for (int v = 2; v <= BUILDS + 1; v++) {
        atomic_store(&load_newest, v);
        install(v, NULL, how[v % 3]);
        int64_t ms = wait_version(v, RELOAD_MS);
        slowest = ms > slowest ? ms : slowest;
        if (ms < 0)
            break;
    }
    client_sleep_ms(200); /* the loaders go on a moment on the last build */
    atomic_store(&load_stop, true);
    for (int i = 0; i < LOADERS; i++)
        pthread_join(l[i].th, NULL);
    for (int i = 0; i < LOADERS; i++) {
        ck_assert_msg(l[i].errors + l[i].resets + l[i].truncated == 0,
                      "loader %d: %ld errors, %ld resets, %ld truncated; first: %s", i, l[i].errors,
                      l[i].resets, l[i].truncated, l[i].why);
        ck_assert_msg(l[i].requests > 0, "loader %d sent nothing", i);
        ck_assert_msg(l[i].last == BUILDS + 1, "loader %d ended on v%d", i, l[i].last);
        total += l[i].requests;
    }
    ck_assert_int_ge(slowest, 0);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(version_now(), BUILDS + 1);
    ck_assert_int_eq(log_count("reload failed"), 0);
    ck_assert_int_eq(log_count("reloaded in"), BUILDS);
    printf("reload under load: %d builds in %lld ms, %ld requests on %d connections, 0 errors; "
           "slowest build-to-answer %lld ms\n",
           BUILDS, (long long)(client_now_ms() - t0), total, LOADERS, (long long)slowest);
}
END_TEST

/* A request that started on v1 ends on v1's code after v2 took over; the next request on the
   same connection is v2's. */
START_TEST(test_inflight_finishes_on_old_code)
{
    struct client_conn *c;
    struct client_res res;

    start(NULL);
    c = client_open(rp.proc.port);
    ck_assert_ptr_nonnull(c);
    start_sleep(c, 2000); /* long enough for a build and a reload on a busy machine */
    install(2, NULL, INSTALL_RENAME);
    expect_version(2);
    expect_pending(c);
    ck_assert_int_eq(file_count(rp.finis, "fini v1"), 0); /* its request still runs */
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, "v1 slept 2000");
    client_res_free(&res);
    ck_assert_int_eq(client_roundtrip(c, GET_V, &res, T_MS), 0);
    ck_assert_str_eq(res.body, "reloadplug v2");
    client_res_free(&res);
    client_close(c);
}
END_TEST

/* The retired instance's sq_every callback stops at the reload; its fini runs once, after
   the last request it served has ended, and not before. */
START_TEST(test_retired_instance_stops_then_finis)
{
    struct client_conn *c;
    struct client_res res;
    int64_t t0 = client_now_ms();

    start(NULL);
    while (file_count(rp.ticks, "tick v1") < 3 && client_now_ms() - t0 < 3000)
        client_sleep_ms(10);
    ck_assert_int_ge(file_count(rp.ticks, "tick v1"), 3);
    /* v1 -> v2 with nothing in flight: v1's fini follows at once. */
    install(2, NULL, INSTALL_INPLACE);
    expect_version(2);
    client_sleep_ms(60); /* a tick already running may still write its line */
    int v1 = file_count(rp.ticks, "tick v1"), v2 = file_count(rp.ticks, "tick v2");
    client_sleep_ms(300);
    ck_assert_int_eq(file_count(rp.ticks, "tick v1"), v1);
    ck_assert_int_ge(file_count(rp.ticks, "tick v2"), v2 + 3); /* 15 at 20 ms, on a quiet CPU */
    ck_assert_msg(wait_log("fini v1", 1, 1000), "v1's fini did not run");
    ck_assert_int_eq(file_count(rp.finis, "fini v1"), 1);
    /* v2 -> v3 while a request of v2 sleeps: v2's ticks stop, its fini waits for it. */
    c = client_open(rp.proc.port);
    ck_assert_ptr_nonnull(c);
    start_sleep(c, 2000);
    install(3, NULL, INSTALL_RENAME);
    expect_version(3);
    client_sleep_ms(60);
    v2 = file_count(rp.ticks, "tick v2");
    client_sleep_ms(200);
    ck_assert_int_eq(file_count(rp.ticks, "tick v2"), v2);
    expect_pending(c);
    ck_assert_int_eq(file_count(rp.finis, "fini v2"), 0);
    ck_assert_int_eq(client_read_reply(c, &res, false, T_MS), 0);
    ck_assert_str_eq(res.body, "v2 slept 2000");
    client_res_free(&res);
    ck_assert_msg(wait_log("fini v2", 1, 1000), "v2's fini did not run after its request");
    client_sleep_ms(100);
    ck_assert_int_eq(file_count(rp.finis, "fini v1"), 1);
    ck_assert_int_eq(file_count(rp.finis, "fini v2"), 1);
    ck_assert_int_eq(file_count(rp.finis, "fini v3"), 0);
    ck_assert_int_eq(log_count("fini v2"), 1);
    client_close(c);
}
END_TEST

/* One broken build (version bad): the reload fails with one log line saying why (reason),
   the running version (good) keeps serving; then a fixed build (bad + 1) loads. */
static void broken_then_fixed(int good, int bad, const char *defs, enum install how,
                              const char *reason)
{
    int failed = log_count("reload failed");
    char *err, *line;

    if (defs)
        install(bad, defs, how);
    else /* not even a shared object */
        write_inplace("squall: these bytes are no ELF file\n", 36);
    ck_assert_msg(wait_log("reload failed", failed + 1, RELOAD_MS), "no failure logged (%s)",
                  reason);
    client_sleep_ms(250); /* time for a second line, if one were to come */
    ck_assert_int_eq(log_count("reload failed"), failed + 1);
    err = client_proc_stderr(&rp.proc);
    line = strstr(err, "reload failed");
    for (int i = 0; i < failed; i++)
        line = strstr(line + 1, "reload failed");
    *strchrnul(line, '\n') = '\0';
    ck_assert_msg(strstr(line, reason) && strstr(line, rp.so), "'%s' does not say '%s'", line,
                  reason);
    free(err);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(version_now(), good);
    install(bad + 1, NULL, INSTALL_RENAME);
    expect_version(bad + 1);
}

START_TEST(test_failed_reloads_keep_old_version)
{
    start(NULL);
    broken_then_fixed(1, 2, NULL, INSTALL_INPLACE, "not a loadable shared object");
    broken_then_fixed(3, 4, "-DRELOADPLUG_BADABI", INSTALL_CC, "ABI mismatch");
    broken_then_fixed(5, 6, "-DRELOADPLUG_NODESC", INSTALL_RENAME, "no descriptor");
    broken_then_fixed(7, 8, "-DRELOADPLUG_FAILINIT", INSTALL_INPLACE, "init failed");
    ck_assert_int_eq(log_count("v8 cannot start"), 1); /* the plugin's own reason */
    ck_assert_int_eq(log_count("reload failed"), 4);
    ck_assert_int_eq(log_count("reloaded in"), 4);
    ck_assert_int_eq(file_count(rp.finis, "fini v8"), 0); /* no fini after a failed init */
}
END_TEST

/* save_state/restore_state carry the counter from build to build. */
START_TEST(test_state_handoff)
{
    char body[64];

    start(NULL);
    for (int i = 1; i <= 3; i++)
        get("/count", body, sizeof(body));
    ck_assert_str_eq(body, "v1 count 3");
    install(2, NULL, INSTALL_RENAME);
    expect_version(2);
    get("/count", body, sizeof(body));
    ck_assert_str_eq(body, "v2 count 4");
    install(3, NULL, INSTALL_INPLACE);
    expect_version(3);
    get("/count", body, sizeof(body));
    ck_assert_str_eq(body, "v3 count 5");
}
END_TEST

/* Runs `squall reload -c rp.conf` (which finds the host through the default pid file next
   to the configuration); its exit status. */
static int squall_reload(void)
{
    char squall[512], cmd[1024];

    ck_assert_ptr_nonnull(client_build_path("squall", squall, sizeof(squall)));
    snprintf(cmd, sizeof(cmd), "'%s' reload -c '%s' >/dev/null", squall, rp.conf);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The pid in the host's pid file, or 0. */
static pid_t pidfile_pid(void)
{
    FILE *f = fopen(rp.pidfile, "r");
    int pid = 0;

    if (f && fscanf(f, "%d", &pid) != 1)
        pid = 0;
    if (f)
        fclose(f);
    return pid;
}

/* reload = signal: a new file alone changes nothing; SIGHUP, or `squall reload`, loads it. */
START_TEST(test_reload_signal)
{
    start("reload = signal");
    install(2, NULL, INSTALL_RENAME);
    client_sleep_ms(400); /* well past the watch's quiet period, were there a watch */
    ck_assert_int_eq(version_now(), 1);
    ck_assert_int_eq(kill(rp.proc.pid, SIGHUP), 0);
    expect_version(2);
    install(3, NULL, INSTALL_CC);
    client_sleep_ms(400);
    ck_assert_int_eq(version_now(), 2);
    ck_assert_int_eq(pidfile_pid(), rp.proc.pid);
    ck_assert_int_eq(squall_reload(), 0);
    expect_version(3);
    ck_assert_int_eq(log_count("loaded from"), 3); /* v1, v2, v3: no other load */
}
END_TEST

/* reload = off: neither a new file nor SIGHUP nor `squall reload` reloads; the host says so
   and goes on serving the build it started with. */
START_TEST(test_reload_off)
{
    start("reload = off");
    install(2, NULL, INSTALL_RENAME);
    client_sleep_ms(400);
    ck_assert_int_eq(version_now(), 1);
    ck_assert_int_eq(kill(rp.proc.pid, SIGHUP), 0);
    ck_assert_msg(wait_log("reload = off", 1, 2000), "SIGHUP with reload = off not logged");
    ck_assert_int_eq(squall_reload(), 0);
    ck_assert_msg(wait_log("reload = off", 2, 2000), "squall reload with reload = off not logged");
    client_sleep_ms(200);
    ck_assert_int_eq(version_now(), 1);
    ck_assert_int_eq(log_count("reloaded in"), 0);
    ck_assert_int_eq(kill(rp.proc.pid, 0), 0);
}
END_TEST

/*
 * The first half of a build (a copy or build caught part way: a writer that paused longer
 * than the watch's quiet period, or one that died) fails the reload with one line, and v1
 * goes on serving. (It used to kill the host with SIGBUS: dlopen() mapped the segments past
 * the end of the copy, then touched them.)
 */
START_TEST(test_truncated_build_is_refused)
{
    char tmp[160];
    size_t n;

    start(NULL);
    snprintf(tmp, sizeof(tmp), "%s/out/reloadplug.so", rp.dir);
    compile(2, NULL, tmp);
    char *data = slurp(tmp, &n);
    ck_assert_ptr_nonnull(data);
    write_inplace(data, n / 2);
    free(data);
    bool failed = wait_log("reload failed", 1, 2000);
    int st = client_proc_wait(&rp.proc, 0);
    ck_assert_msg(st == -1, "the host died: %s %d", WIFSIGNALED(st) ? "signal" : "exit status",
                  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    ck_assert_msg(failed, "no \"reload failed\" line");
    ck_assert_int_eq(version_now(), 1);
    install(3, NULL, INSTALL_RENAME);
    expect_version(3);
}
END_TEST

static Suite *reload_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *load = tcase_create("load"), *tc = tcase_create("reload");

    tcase_set_timeout(load, 40);
    tcase_add_unchecked_fixture(load, base_setup, base_teardown);
    tcase_add_checked_fixture(load, setup, teardown);
    tcase_add_test(load, test_reload_under_load);
    suite_add_tcase(s, load);
    tcase_set_timeout(tc, 20);
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_inflight_finishes_on_old_code);
    tcase_add_test(tc, test_retired_instance_stops_then_finis);
    tcase_add_test(tc, test_failed_reloads_keep_old_version);
    tcase_add_test(tc, test_state_handoff);
    tcase_add_test(tc, test_reload_signal);
    tcase_add_test(tc, test_reload_off);
    tcase_add_test(tc, test_truncated_build_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    client_log_quiet();
    return check_run(reload_suite());
}
