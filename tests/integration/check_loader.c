/*
 * check_loader.c - the real squall binary refuses bad plugins and bad configs with one clear
 * line each, and exports only the SDK to the plugins it loads.
 *
 * Every case writes a plugins.conf into a private directory, runs
 * `$SQ_BUILD/squall -c FILE --check` (or without --check: the serving host) as a child
 * process, and asserts its exit status and the exact lines on stderr. Plugins are the
 * deliberately broken ones built from tests/plugins/ into $SQ_BUILD/tests/plugins/.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check_main.h"
#include "client.h"
#include "squall.h"

#define RUN_TIMEOUT_MS 10000    /* a host that should refuse to start but serves is killed */
#define PATHBUF (PATH_MAX + 64) /* room for a path under build or tmpdir */

static char build[PATH_MAX]; /* absolute $SQ_BUILD */
static char tmpdir[PATH_MAX];
static char conf[PATHBUF]; /* tmpdir/squall.conf, the file every case writes */

/* What a child process left behind. */
struct run {
    int status; /* exit code; 128 + signal when killed; -1 when it had to be killed */
    char *out, *err;
};

/* ---- Fixture: the build directory and a private temporary directory ----
 * Unchecked: set up once per tcase in the runner, so the directory is removed even when a
 * (forked) test fails. Tests run one at a time and each rewrites the files it uses. */

static void setup(void)
{
    const char *b = client_build_dir();

    if (!realpath(b, build)) {
        fprintf(stderr, "check_loader: build directory %s: %s\n", b, strerror(errno));
        exit(1);
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_loader.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(conf, sizeof(conf), "%s/squall.conf", tmpdir);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(tmpdir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- Helpers ---- */

/* Writes text to the file at path, replacing it. */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_msg(f, "cannot write %s: %s", path, strerror(errno));
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* Writes the config file from a format. */
static void write_conf(const char *fmt, ...) SQ_PRINTF(1, 2);
static void write_conf(const char *fmt, ...)
{
    char text[8192];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ck_assert_int_lt(n, (int)sizeof(text));
    write_file(conf, text);
}

/* A built test plugin: $SQ_BUILD/tests/plugins/NAME.so, checked to exist. */
static const char *tplugin(const char *name)
{
    static char paths[8][PATHBUF];
    static int next;
    char *p = paths[next++ % 8];

    snprintf(p, PATHBUF, "%s/tests/plugins/%s.so", build, name);
    ck_assert_msg(access(p, R_OK) == 0, "%s is not built (make tests)", p);
    return p;
}

static const char *hello_so(void)
{
    static char p[PATHBUF];

    snprintf(p, sizeof(p), "%s/plugins/hello.so", build);
    ck_assert_msg(access(p, R_OK) == 0, "%s is not built (make)", p);
    return p;
}

/* Appends what one read() of fd gives to buf (grown as needed, kept NUL-terminated); clears
   *open at end of file. Returns the (possibly moved) buffer. */
static char *read_fd_into(int fd, char *buf, size_t *len, size_t *cap, bool *open)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof(chunk));

    if (n <= 0) {
        if (n == 0 || (errno != EINTR && errno != EAGAIN))
            *open = false;
        return buf;
    }
    if (*len + (size_t)n + 1 > *cap) {
        *cap = (*len + (size_t)n + 1) * 2;
        buf = realloc(buf, *cap);
        ck_assert_ptr_nonnull(buf);
    }
    memcpy(buf + *len, chunk, (size_t)n);
    *len += (size_t)n;
    buf[*len] = '\0';
    return buf;
}

/* Runs argv (argv[0] an absolute path) in directory cwd (NULL: this one) with stdout and
   stderr captured, for at most RUN_TIMEOUT_MS. */
static struct run run_argv_in(const char *cwd, const char *const argv[])
{
    int po[2], pe[2];
    struct run r = {0};

    ck_assert_int_eq(pipe(po), 0);
    ck_assert_int_eq(pipe(pe), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        if (cwd && chdir(cwd) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);

    size_t olen = 0, ocap = 1, elen = 0, ecap = 1;
    bool oopen = true, eopen = true, killed = false;
    int64_t deadline = client_now_ms() + RUN_TIMEOUT_MS;
    r.out = calloc(1, 1);
    r.err = calloc(1, 1);
    while (oopen || eopen) {
        struct pollfd pfd[2] = {{.fd = oopen ? po[0] : -1, .events = POLLIN},
                                {.fd = eopen ? pe[0] : -1, .events = POLLIN}};
        int64_t left = deadline - client_now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
        if (poll(pfd, 2, (int)left) <= 0)
            continue;
        if (pfd[0].revents)
            r.out = read_fd_into(po[0], r.out, &olen, &ocap, &oopen);
        if (pfd[1].revents)
            r.err = read_fd_into(pe[0], r.err, &elen, &ecap, &eopen);
    }
    close(po[0]);
    close(pe[0]);

    int ws;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    r.status = killed ? -1 : WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    return r;
}

static struct run run_argv(const char *const argv[])
{
    return run_argv_in(NULL, argv);
}

static const char *squall_path(void)
{
    static char p[PATHBUF];

    snprintf(p, sizeof(p), "%s/squall", build);
    ck_assert_msg(access(p, X_OK) == 0, "%s is not built (make)", p);
    return p;
}

/* `squall -c conf --check` */
static struct run check_conf(void)
{
    const char *argv[] = {squall_path(), "-c", conf, "--check", NULL};
    return run_argv(argv);
}

/* `squall -c conf`: the serving host. */
static struct run serve_conf(void)
{
    const char *argv[] = {squall_path(), "-c", conf, NULL};
    return run_argv(argv);
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Whether text has a line that is exactly line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, line, n) == 0 && (l[n] == '\n' || l[n] == '\0'))
            return true;
    return false;
}

/* Whether text has a line that starts with prefix. */
static bool has_line_prefix(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);

    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, n) == 0)
            return true;
    return false;
}

/* The formatted "conf:LINE: message" line the host must print. */
static const char *conf_line(int line, const char *fmt, ...) SQ_PRINTF(2, 3);
static const char *conf_line(int line, const char *fmt, ...)
{
    static char s[4][4096];
    static int next;
    char *p = s[next++ % 4];
    va_list ap;

    int n = snprintf(p, 4096, "%s:%d: ", conf, line);
    va_start(ap, fmt);
    vsnprintf(p + n, 4096 - (size_t)n, fmt, ap);
    va_end(ap);
    return p;
}

/* The run failed to start with status 1, printed line on stderr and nothing on stdout. */
static void assert_refused(const struct run *r, const char *line)
{
    ck_assert_msg(r->status == 1, "exit status %d, want 1; stderr:\n%s", r->status, r->err);
    ck_assert_msg(has_line(r->err, line), "stderr lacks the line\n  %s\nstderr was:\n%s", line,
                  r->err);
    ck_assert_msg(!strstr(r->err, "Sanitizer"), "sanitizer report:\n%s", r->err);
    ck_assert_msg(!strstr(r->out, ": ok"), "stdout says ok: %s", r->out);
}

static void assert_ok(const struct run *r)
{
    char want[PATHBUF + 8];

    snprintf(want, sizeof(want), "%s: ok\n", conf);
    ck_assert_msg(r->status == 0, "exit status %d, want 0; stderr:\n%s", r->status, r->err);
    ck_assert_str_eq(r->out, want);
}

/* `squall -c conf --check` refuses conf with line (assert_refused). */
static void expect_check_refused(const char *line)
{
    struct run r = check_conf();

    assert_refused(&r, line);
    run_free(&r);
}

/* `squall -c conf --check` accepts conf (assert_ok). */
static void expect_check_ok(void)
{
    struct run r = check_conf();

    assert_ok(&r);
    run_free(&r);
}

/* The serving host (no --check) refuses conf with line (assert_refused) and never listens;
   started is the failure message for a host that served instead, and had to be killed. */
static void expect_serve_refused(const char *line, const char *started)
{
    struct run r = serve_conf();

    ck_assert_msg(r.status != -1, "%s", started);
    assert_refused(&r, line);
    ck_assert_msg(!strstr(r.err, "listening on"), "the host listened:\n%s", r.err);
    run_free(&r);
}

/* ---- Plugin errors ---- */

START_TEST(test_good_config_ok)
{
    write_conf("[server]\nlisten = 127.0.0.1:0\n\n[plugin hello]\npath = %s\nmount = /\n"
               "\n[route GET /json]\n",
               hello_so());
    struct run r = check_conf();
    assert_ok(&r);
    ck_assert_msg(strstr(r.err, "plugin hello 1.0.0 loaded from"), "stderr: %s", r.err);
    run_free(&r);
}
END_TEST

START_TEST(test_plugin_file_missing)
{
    char missing[PATHBUF];

    snprintf(missing, sizeof(missing), "%s/none.so", tmpdir);
    /* The line named is the plugin's section header, not the first line of the file. */
    write_conf("; a comment\n[server]\nlisten = 127.0.0.1:0\n\n[plugin ghost]\npath = %s\n",
               missing);
    expect_check_refused(conf_line(5, "plugin ghost (%s): No such file or directory", missing));
}
END_TEST

START_TEST(test_plugin_not_shared_object)
{
    char x[PATHBUF];

    /* A relative path is taken from the config file's directory. */
    snprintf(x, sizeof(x), "%s/x.so", tmpdir);
    write_file(x, "this is a text file that someone named x.so, not an ELF object\n");
    write_conf("[plugin x]\npath = x.so\n");
    struct run r = check_conf();
    const char *prefix = conf_line(1, "plugin x (%s): not a loadable shared object: ", x);
    ck_assert_msg(r.status == 1, "exit status %d; stderr:\n%s", r.status, r.err);
    ck_assert_msg(has_line_prefix(r.err, prefix), "no line starting\n  %s\nstderr:\n%s", prefix,
                  r.err);
    run_free(&r);
}
END_TEST

/* Copies src to dst (a plugin next to the config file). */
static void copy_file(const char *src, const char *dst)
{
    char buf[65536];
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    size_t n;

    ck_assert_msg(in && out, "copy %s -> %s: %s", src, dst, strerror(errno));
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

/* `path = hello.so` beside the config, run as `squall -c squall.conf` from that directory:
   the file is ./hello.so. (dlopen() of a name without '/' would search the library path
   instead, and fail, or load some other library of that name.) */
START_TEST(test_plugin_bare_relative_path)
{
    char dst[PATHBUF], want[PATHBUF + 16];

    snprintf(dst, sizeof(dst), "%s/hello.so", tmpdir);
    copy_file(hello_so(), dst);
    write_conf("[plugin hello]\npath = hello.so\n");

    const char *argv[] = {squall_path(), "-c", "squall.conf", "--check", NULL};
    struct run r = run_argv_in(tmpdir, argv);
    ck_assert_msg(r.status == 0, "exit status %d, want 0; stderr:\n%s", r.status, r.err);
    ck_assert_str_eq(r.out, "squall.conf: ok\n");
    run_free(&r);

    /* The same config named with a directory already works; keep it that way. */
    const char *argv2[] = {squall_path(), "-c", conf, "--check", NULL};
    r = run_argv(argv2);
    snprintf(want, sizeof(want), "%s: ok\n", conf);
    ck_assert_msg(r.status == 0, "exit status %d; stderr:\n%s", r.status, r.err);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
}
END_TEST

START_TEST(test_plugin_no_descriptor)
{
    const char *so = tplugin("nodesc");

    write_conf("[plugin nodesc]\npath = %s\n", so);
    expect_check_refused(conf_line(1,
                                   "plugin nodesc (%s): no descriptor (%s): define one with "
                                   "SQ_PLUGIN(...)",
                                   so, SQ_PLUGIN_SYMBOL));
}
END_TEST

START_TEST(test_plugin_abi_mismatch)
{
    const char *so = tplugin("badabi");

    write_conf("[plugin badabi]\npath = %s\n", so);
    expect_check_refused(conf_line(1,
                                   "plugin badabi (%s): ABI mismatch: built for ABI %d, this "
                                   "host speaks ABI %d; rebuild it",
                                   so, SQ_ABI_VERSION + 1, SQ_ABI_VERSION));
}
END_TEST

/* A descriptor of 8 bytes: the host must say so without reading past those 8 bytes. The
   route_size field does not exist in that object, so the line must not report one. */
START_TEST(test_plugin_descriptor_too_small)
{
    const char *so = tplugin("badsize");

    write_conf("[plugin badsize]\npath = %s\n", so);
    struct run r = check_conf();
    const char *prefix =
        conf_line(1, "plugin badsize (%s): ABI mismatch: descriptor of 8 bytes", so);
    ck_assert_msg(r.status == 1, "exit status %d; stderr:\n%s", r.status, r.err);
    ck_assert_msg(!strstr(r.err, "Sanitizer"), "sanitizer report:\n%s", r.err);
    ck_assert_msg(has_line_prefix(r.err, prefix), "no line starting\n  %s\nstderr:\n%s", prefix,
                  r.err);
    ck_assert_msg(!strstr(r.err, "route size"),
                  "the line reports a route size the descriptor does not have:\n%s", r.err);
    run_free(&r);
}
END_TEST

START_TEST(test_plugin_init_fails)
{
    const char *so = tplugin("failinit");
    char marker[PATHBUF];

    snprintf(marker, sizeof(marker), "%s/fini-ran", tmpdir);
    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin failinit]\npath = %s\nfini_marker = %s\n",
               so, marker);
    struct run r = check_conf();
    assert_refused(&r, conf_line(3, "plugin failinit (%s): init failed (returned -1)", so));
    /* The reason init gave, through sq_log, prefixed with the plugin's name. */
    ck_assert_msg(strstr(r.err, "[error] failinit: cannot start: the 'token' key is required\n"),
                  "stderr lacks init's reason:\n%s", r.err);
    ck_assert_msg(access(marker, F_OK) != 0, "fini ran although init failed");
    run_free(&r);
}
END_TEST

START_TEST(test_plugin_duplicate_route)
{
    const char *so = tplugin("duproute");

    write_conf("[plugin hello]\npath = %s\n\n[plugin duproute]\npath = %s\n", hello_so(), so);
    expect_check_refused(conf_line(4, "plugin duproute (%s): duplicate route GET /plaintext", so));
}
END_TEST

/* The same plugin under another mount claims /dup/plaintext: no clash. */
START_TEST(test_plugin_duplicate_route_other_mount_ok)
{
    write_conf("[plugin hello]\npath = %s\n\n[plugin duproute]\npath = %s\nmount = /dup\n"
               "[route GET /dup/plaintext]\n",
               hello_so(), tplugin("duproute"));
    expect_check_ok();
}
END_TEST

/* A route path without its leading '/' is refused under any mount: under /api it must not
   turn into "/apiitems". */
START_TEST(test_plugin_route_without_slash)
{
    const char *so = tplugin("badpath");
    const char *mounts[] = {"/", "/api"};

    for (size_t i = 0; i < 2; i++) {
        write_conf("[plugin badpath]\npath = %s\nmount = %s\n", so, mounts[i]);
        struct run r = check_conf();
        const char *prefix = conf_line(1, "plugin badpath (%s): ", so);
        ck_assert_msg(r.status == 1, "mount %s: exit status %d, want 1; stdout %s stderr:\n%s",
                      mounts[i], r.status, r.out, r.err);
        ck_assert_msg(has_line_prefix(r.err, prefix),
                      "mount %s: no line starting\n  %s\n"
                      "stderr:\n%s",
                      mounts[i], prefix, r.err);
        ck_assert_msg(strstr(r.err, "must start with '/'"), "mount %s: stderr:\n%s", mounts[i],
                      r.err);
        run_free(&r);
    }
}
END_TEST

START_TEST(test_plugin_name_mismatch)
{
    write_conf("[plugin other]\npath = %s\n", hello_so());
    expect_check_refused(
        conf_line(1, "plugin other (%s): descriptor names it 'hello', not 'other'", hello_so()));
}
END_TEST

/* One run names every broken plugin, not just the first. */
START_TEST(test_plugin_errors_all_reported)
{
    const char *nodesc = tplugin("nodesc"), *badabi = tplugin("badabi");

    write_conf("[plugin nodesc]\npath = %s\n[plugin hello]\npath = %s\n[plugin badabi]\n"
               "path = %s\n",
               nodesc, hello_so(), badabi);
    struct run r = check_conf();
    assert_refused(&r, conf_line(1,
                                 "plugin nodesc (%s): no descriptor (%s): define one with "
                                 "SQ_PLUGIN(...)",
                                 nodesc, SQ_PLUGIN_SYMBOL));
    assert_refused(&r, conf_line(5,
                                 "plugin badabi (%s): ABI mismatch: built for ABI %d, this "
                                 "host speaks ABI %d; rebuild it",
                                 badabi, SQ_ABI_VERSION + 1, SQ_ABI_VERSION));
    run_free(&r);
}
END_TEST

/* The serving host (no --check) refuses to start on a broken plugin, with the same line. */
START_TEST(test_serve_refuses_broken_plugin)
{
    const char *so = tplugin("badabi");

    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin badabi]\npath = %s\n", so);
    expect_serve_refused(conf_line(3,
                                   "plugin badabi (%s): ABI mismatch: built for ABI %d, this "
                                   "host speaks ABI %d; rebuild it",
                                   so, SQ_ABI_VERSION + 1, SQ_ABI_VERSION),
                         "the host started serving a broken plugin");
}
END_TEST

START_TEST(test_serve_refuses_failing_init)
{
    const char *so = tplugin("failinit");

    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin failinit]\npath = %s\n", so);
    expect_serve_refused(conf_line(3, "plugin failinit (%s): init failed (returned -1)", so),
                         "the host started serving although init failed");
}
END_TEST

/* ---- Config errors ---- */

START_TEST(test_config_unknown_section)
{
    write_conf("[server]\nlisten = 127.0.0.1:0\n[servers]\nworkers = 1\n");
    expect_check_refused(conf_line(3, "unknown section [servers]"));
}
END_TEST

START_TEST(test_config_unknown_key)
{
    write_conf("[server]\nlisten = 127.0.0.1:0\nlistne = 127.0.0.1:1\n");
    expect_check_refused(conf_line(3, "unknown key 'listne' in [server]"));
}
END_TEST

START_TEST(test_config_bad_size)
{
    write_conf("[server]\nmax_body = 12q\n");
    expect_check_refused(conf_line(2, "bad size '12q' for max_body (use e.g. 512, 64k, 1m)"));
}
END_TEST

START_TEST(test_config_bad_duration)
{
    write_conf("[server]\n\nheader_timeout = 5 parsecs\n");
    expect_check_refused(conf_line(3, "bad duration '5 parsecs' for header_timeout "
                                      "(use e.g. 500ms, 2s, 1m)"));
}
END_TEST

START_TEST(test_config_missing_path)
{
    write_conf("[server]\nlisten = 127.0.0.1:0\n[plugin hello]\nmount = /api\n[plugin other]\n"
               "path = %s\n",
               hello_so());
    struct run r = check_conf();
    assert_refused(&r, conf_line(3, "plugin 'hello' has no path"));
    /* A config error stops before any plugin is loaded. */
    ck_assert_msg(!strstr(r.err, "loaded from"), "a plugin was loaded:\n%s", r.err);
    run_free(&r);
}
END_TEST

START_TEST(test_config_route_matches_nothing)
{
    write_conf("[plugin hello]\npath = %s\n[route GET /plaintext]\n[route GET /nope]\n",
               hello_so());
    struct run r = check_conf();
    assert_refused(&r, conf_line(4, "[route GET /nope] matches no plugin's route"));
    ck_assert_msg(!strstr(r.err, "[route GET /plaintext]"), "a good route was refused:\n%s", r.err);
    run_free(&r);
}
END_TEST

/* [route] names the route as mounted: /plaintext is gone once hello moves to /api. */
START_TEST(test_config_route_under_mount)
{
    write_conf("[plugin hello]\npath = %s\nmount = /api\n[route GET /plaintext]\n", hello_so());
    expect_check_refused(conf_line(4, "[route GET /plaintext] matches no plugin's route"));

    write_conf("[plugin hello]\npath = %s\nmount = /api\n[route POST /api/echo]\n", hello_so());
    expect_check_ok();
}
END_TEST

START_TEST(test_config_route_wrong_method)
{
    write_conf("[plugin hello]\npath = %s\n[route POST /plaintext]\n", hello_so());
    expect_check_refused(conf_line(3, "[route POST /plaintext] matches no plugin's route"));
}
END_TEST

/* Every config mistake in one run, each with its line. */
START_TEST(test_config_errors_all_reported)
{
    write_conf("[server]\nmax_body = big\nkeepalive_timeout = soon\nbogus = 1\n[nope]\n");
    struct run r = check_conf();
    assert_refused(&r, conf_line(2, "bad size 'big' for max_body (use e.g. 512, 64k, 1m)"));
    assert_refused(&r, conf_line(3, "bad duration 'soon' for keepalive_timeout "
                                    "(use e.g. 500ms, 2s, 1m)"));
    assert_refused(&r, conf_line(4, "unknown key 'bogus' in [server]"));
    assert_refused(&r, conf_line(5, "unknown section [nope]"));
    run_free(&r);
}
END_TEST

/* A config error stops the serving host too. */
START_TEST(test_serve_refuses_bad_config)
{
    write_conf("[server]\nlisten = 127.0.0.1:0\nworkers = lots\n");
    expect_serve_refused(conf_line(3, "bad workers 'lots' (use 1..1024 or auto)"),
                         "the host started with a bad config");
}
END_TEST

START_TEST(test_config_file_missing)
{
    char missing[PATHBUF], want[PATHBUF + 64];

    snprintf(missing, sizeof(missing), "%s/missing.conf", tmpdir);
    const char *argv[] = {squall_path(), "-c", missing, NULL};
    struct run r = run_argv(argv);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", missing);
    assert_refused(&r, want);
    run_free(&r);

    const char *check_argv[] = {squall_path(), "-c", missing, "--check", NULL};
    r = run_argv(check_argv);
    assert_refused(&r, want);
    run_free(&r);
}
END_TEST

START_TEST(test_bad_usage)
{
    const char *argv[] = {squall_path(), "--no-such-option", NULL};
    struct run r = run_argv(argv);

    ck_assert_int_eq(r.status, 2);
    ck_assert_msg(strstr(r.err, "usage: squall"), "stderr: %s", r.err);
    run_free(&r);
}
END_TEST

/* ---- Exports ---- */

/* Runs a shell command and returns its stdout; fails the test when it fails. */
static char *capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);

    ck_assert_msg(p, "popen %s", cmd);
    for (size_t n; (n = fread(buf + len, 1, cap - len - 1, p)) > 0;) {
        len += n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int st = pclose(p);
    ck_assert_msg(st == 0, "%s failed (status %d)", cmd, st);
    return buf;
}

static const char *next_line(const char *l)
{
    const char *eol = strchrnul(l, '\n');
    return *eol ? eol + 1 : eol;
}

/* The symbol of one line of nm output (its last field) and its length, or NULL. */
static const char *nm_symbol(const char *l, size_t *len)
{
    const char *eol = strchrnul(l, '\n'), *sp = memrchr(l, ' ', (size_t)(eol - l));

    if (!sp || sp + 1 == eol)
        return NULL;
    *len = (size_t)(eol - sp - 1);
    return sp + 1;
}

/* Whether nm output lists name as a symbol (the last field of some line). */
static bool nm_has(const char *nm, const char *name)
{
    size_t n = strlen(name);

    for (const char *l = nm; *l; l = next_line(l)) {
        size_t len;
        const char *sym = nm_symbol(l, &len);
        if (sym && len == n && strncmp(sym, name, n) == 0)
            return true;
    }
    return false;
}

/* The names in sdk/squall.sym, one "sq_x;" per line. */
static size_t read_sym_file(char names[][64], size_t max)
{
    FILE *f = fopen("sdk/squall.sym", "r");
    char line[256];
    size_t n = 0;

    ck_assert_msg(f, "sdk/squall.sym: %s (run from the source tree)", strerror(errno));
    while (fgets(line, sizeof(line), f) && n < max)
        if (sscanf(line, " %63[a-z_0-9] ;", names[n]) == 1 && strncmp(names[n], "sq_", 3) == 0)
            n++;
    fclose(f);
    return n;
}

START_TEST(test_host_exports_only_sdk)
{
    char cmd[PATHBUF + 64], names[128][64];
    size_t nsym = read_sym_file(names, 128);

    snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", squall_path());
    char *dyn = capture(cmd);
    snprintf(cmd, sizeof(cmd), "nm -g --defined-only '%s/libsquall.a'", build);
    char *lib = capture(cmd);

    /* Every SDK function a plugin may call is there... */
    ck_assert_uint_ge(nsym, 20);
    for (size_t i = 0; i < nsym; i++)
        ck_assert_msg(nm_has(dyn, names[i]), "the host does not export %s", names[i]);
    /* ...and nothing of the host's own. */
    ck_assert_msg(nm_has(lib, "router_match"), "libsquall.a lacks router_match?");
    const char *internals[] = {"router_match", "conn_close", "config_load", "plugin_load",
                               "server_new",   "log_msg",    "xmalloc",     "plugin_current"};
    for (size_t i = 0; i < sizeof(internals) / sizeof(internals[0]); i++)
        ck_assert_msg(!nm_has(dyn, internals[i]), "the host exports %s", internals[i]);
    /* Any global the framework defines that is not sq_* stays private. */
    for (const char *l = lib; *l; l = next_line(l)) {
        size_t len;
        const char *sym = nm_symbol(l, &len);
        char name[256];
        if (!sym || len >= sizeof(name) || strncmp(sym, "sq_", 3) == 0)
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)len, sym);
        ck_assert_msg(!nm_has(dyn, name), "the host exports framework symbol %s", name);
    }
    /* And every sq_* it exports is in squall.sym: the symbol file is the whole contract. */
    for (const char *l = dyn; *l; l = next_line(l)) {
        size_t len;
        const char *sym = nm_symbol(l, &len);
        bool listed = false;
        if (!sym || strncmp(sym, "sq_", 3) != 0)
            continue;
        for (size_t i = 0; i < nsym && !listed; i++)
            listed = strlen(names[i]) == len && strncmp(names[i], sym, len) == 0;
        ck_assert_msg(listed, "the host exports %.*s, which squall.sym does not list", (int)len,
                      sym);
    }
    free(dyn);
    free(lib);
}
END_TEST

/* A tcase of the loader suite: its own temporary directory, 30 s a test. */
static TCase *loader_tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");
    TCase *tc;

    tc = loader_tcase(s, "plugins");
    tcase_add_test(tc, test_good_config_ok);
    tcase_add_test(tc, test_plugin_file_missing);
    tcase_add_test(tc, test_plugin_not_shared_object);
    tcase_add_test(tc, test_plugin_bare_relative_path);
    tcase_add_test(tc, test_plugin_no_descriptor);
    tcase_add_test(tc, test_plugin_abi_mismatch);
    tcase_add_test(tc, test_plugin_descriptor_too_small);
    tcase_add_test(tc, test_plugin_init_fails);
    tcase_add_test(tc, test_plugin_duplicate_route);
    tcase_add_test(tc, test_plugin_duplicate_route_other_mount_ok);
    tcase_add_test(tc, test_plugin_route_without_slash);
    tcase_add_test(tc, test_plugin_name_mismatch);
    tcase_add_test(tc, test_plugin_errors_all_reported);
    tcase_add_test(tc, test_serve_refuses_broken_plugin);
    tcase_add_test(tc, test_serve_refuses_failing_init);

    tc = loader_tcase(s, "config");
    tcase_add_test(tc, test_config_unknown_section);
    tcase_add_test(tc, test_config_unknown_key);
    tcase_add_test(tc, test_config_bad_size);
    tcase_add_test(tc, test_config_bad_duration);
    tcase_add_test(tc, test_config_missing_path);
    tcase_add_test(tc, test_config_route_matches_nothing);
    tcase_add_test(tc, test_config_route_under_mount);
    tcase_add_test(tc, test_config_route_wrong_method);
    tcase_add_test(tc, test_config_errors_all_reported);
    tcase_add_test(tc, test_serve_refuses_bad_config);
    tcase_add_test(tc, test_config_file_missing);
    tcase_add_test(tc, test_bad_usage);

    tc = loader_tcase(s, "exports");
    tcase_add_test(tc, test_host_exports_only_sdk);
    return s;
}

int main(void)
{
    return check_run(loader_suite());
}
