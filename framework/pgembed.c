/*
 * pgembed.c - the embedded PostgreSQL cluster (see pgembed.h).
 *
 * All the work is done by PostgreSQL's own programs (initdb, pg_ctl, pg_isready). Each runs
 * through fork + execve with a clean environment (a PGPORT or PGDATA of the host's must not
 * redirect them), stdin from /dev/null, output appended to DIR/pgembed.log, and none of the
 * host's other descriptors: a listening socket inherited by the postmaster would outlive the
 * host. As root the child becomes postgres before exec; its groups are looked up before the
 * fork, since only async-signal-safe calls may run between fork and exec.
 *
 * pg_ctl start detaches the postmaster (pg_ctl's child, not ours), so a server outlives a
 * killed host; the next start finds it with pg_ctl status and adopts it (see pgembed.h for who
 * stops it). Failures quote the most telling line a program or the server logged: the last
 * one that reports an error, else the last one.
 *
 * The programs' argv lists are kept out of clang-format, which would put one word per line:
 * they read best as the command lines they are.
 */
#include "pgembed.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#define PG_LIBDIR "/usr/lib/postgresql" /* Debian's: one N/bin per installed version */
#define INSTALL_HINT "apt-get install postgresql"
#define PORT "5432"
#define SOCKET_NAME ".s.PGSQL." PORT
#define MAX_CONNECTIONS "200" /* enough for tests and benchmarks with many pools */
#define WAIT_S 60             /* pg_ctl's own default for start and stop */
#define WAIT_S_STR "60"
#define DATA_NAME "data"
#define CONF_NAME "pgembed.conf"
#define INCLUDE_LINE "include '" CONF_NAME "'\n"
#define INCLUDE_COMMENT "# squall's embedded cluster: its settings, rewritten at every start\n"
#define PROG_LOG "pgembed.log"
#define SERVER_LOG "postgres.log"
#define OWNER_NAME "pgembed.owner"
#define LOCK_NAME "pgembed.lock"

/* Exit codes of our own children, beyond the programs' (which use 0..4). */
enum {
    CHILD_REACH_MAX = 200,   /* 1..200: the n-th directory on the way is not searchable */
    CHILD_REACH_DIR = 201,   /* the directory itself is not readable and writable */
    CHILD_NO_USER = 202,     /* could not become the cluster's user */
    CHILD_EXEC_FAILED = 127, /* as the shell says */
};

#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

struct pgembed {
    char dir[SUN_PATH_SIZE]; /* absolute; holds the socket, so it fits in sun_path */
    char data[PATH_MAX];     /* dir/data */
    char bindir[PATH_MAX];   /* where initdb, pg_ctl and pg_isready are */
    char dsn[1024];
    char user[256]; /* the cluster's user and superuser */
    bool drop;      /* we are root: children become user */
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* user's groups, for setgroups in the child */
    int ngroups;
    char *env[5]; /* the children's environment; points into the strings below */
    char env_home[PATH_MAX + 8];
    char env_tz[256];
    pid_t owner; /* the process that must stop the server; 0 when we only borrow it */
};

static char env_path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
static char env_lc[] = "LC_ALL=C"; /* English messages, matching initdb --no-locale */

static int seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes one formatted line to err (when there is one) and returns -1, for `return seterr()`. */
static int seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* dir/name in buf (sized PATH_MAX + 64: every name here is shorter than 64). */
static char *path_in(char *buf, const char *dir, const char *name)
{
    snprintf(buf, PATH_MAX + 64, "%s/%s", dir, name);
    return buf;
}

/* Opens (creating, mode 0600) dir/name for the host, owned by the cluster's user like
   everything else in dir. Returns the descriptor (close-on-exec) or -1 with errno. */
static int file_open(const struct pgembed *e, const char *name, int flags)
{
    char path[PATH_MAX + 64];
    int fd = open(path_in(path, e->dir, name), flags | O_CREAT | O_CLOEXEC, 0600);

    if (fd >= 0 && e->drop && fchown(fd, e->uid, e->gid) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- who runs the cluster, and how children run ---- */

/* Looks up user's groups into e->groups (aborts on out-of-memory). */
static void groups_init(struct pgembed *e)
{
    int n = 16;

    e->groups = xmalloc(n * sizeof(*e->groups));
    for (;;) {
        int want = n;

        if (getgrouplist(e->user, e->gid, e->groups, &want) >= 0) {
            e->ngroups = want;
            return;
        }
        n = want > n ? want : 2 * n;
        e->groups = xrealloc(e->groups, n * sizeof(*e->groups));
    }
}

/* Picks the cluster's user: postgres when we are root (PostgreSQL refuses root), else us. */
static int user_init(struct pgembed *e, char *err, size_t errlen)
{
    struct passwd pw, *res = NULL;
    char buf[16384];
    bool root = geteuid() == 0;

    if (root)
        getpwnam_r("postgres", &pw, buf, sizeof(buf), &res);
    else
        getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res);
    if (!res && root)
        return seterr(err, errlen,
                      "running as root, PostgreSQL must run as the system user postgres, and "
                      "there is none (" INSTALL_HINT " creates it)");
    if (!res)
        return seterr(err, errlen, "uid %u has no user name, which initdb needs",
                      (unsigned)geteuid());
    if (root && pw.pw_uid == 0)
        return seterr(err, errlen, "the user postgres is root: PostgreSQL refuses to run as it");
    if (strlen(pw.pw_name) >= sizeof(e->user) || strlen(pw.pw_dir) >= PATH_MAX)
        return seterr(err, errlen, "user %s: name or home directory too long", pw.pw_name);
    strcpy(e->user, pw.pw_name);
    e->drop = root;
    e->uid = pw.pw_uid;
    e->gid = pw.pw_gid;
    snprintf(e->env_home, sizeof(e->env_home), "HOME=%s", pw.pw_dir);
    if (root)
        groups_init(e);
    return 0;
}

/* The children's environment: a fixed PATH, the C locale, the user's HOME and our TZ (the
   server's default time zone), and nothing else. */
static void env_init(struct pgembed *e)
{
    const char *tz = getenv("TZ");
    int n = 0;

    e->env[n++] = env_path;
    e->env[n++] = env_lc;
    e->env[n++] = e->env_home;
    if (tz && strlen(tz) + 4 <= sizeof(e->env_tz)) {
        snprintf(e->env_tz, sizeof(e->env_tz), "TZ=%s", tz);
        e->env[n++] = e->env_tz;
    }
    e->env[n] = NULL;
}

/* In a child: becomes the cluster's user when we are root. Async-signal-safe. */
static int child_become_user(const struct pgembed *e)
{
    if (!e->drop)
        return 0;
    if (setgroups(e->ngroups, e->groups) < 0 || setgid(e->gid) < 0 || setuid(e->uid) < 0)
        return -1;
    return 0;
}

/* In a child: writes a and b as one line to stderr (the log). Async-signal-safe. */
static void child_say(const char *a, const char *b)
{
    ssize_t n = write(2, a, strlen(a));

    n = write(2, b, strlen(b));
    n = write(2, "\n", 1);
    (void)n;
}

/* In a child: runs argv with stdin from /dev/null and stdout and stderr on out, with no
   signal blocked and SIGPIPE at its default (a server host often ignores it). No return. */
static void child_exec(const struct pgembed *e, const char *const argv[], int devnull, int out)
{
    sigset_t none;

    if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(CHILD_EXEC_FAILED);
    closefrom(3);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (child_become_user(e) < 0) {
        child_say("error: cannot become user ", e->user);
        _exit(CHILD_EXEC_FAILED);
    }
    execve(argv[0], (char *const *)argv, e->env);
    child_say("error: cannot run ", argv[0]);
    _exit(CHILD_EXEC_FAILED);
}

/* Waits for our child pid. Returns its exit status, or -1 if it died of a signal. */
static int child_wait(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs argv (argv[0] an absolute path) as the cluster's user with its output appended to
   logfd (discarded when logfd < 0) and waits for it. Returns its exit status, or -1 when it
   could not be started or died of a signal. */
static int spawn(const struct pgembed *e, const char *const argv[], int logfd)
{
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    pid_t pid;

    if (devnull < 0)
        return -1;
    pid = fork();
    if (pid == 0)
        child_exec(e, argv, devnull, logfd >= 0 ? logfd : devnull);
    close(devnull);
    return pid < 0 ? -1 : child_wait(pid);
}

/* The path of PostgreSQL's program name in buf (sized PATH_MAX + 64). */
static const char *prog(const struct pgembed *e, char *buf, const char *name)
{
    return path_in(buf, e->bindir, name);
}

/* ---- logs ---- */

/* Where line [s, s + n) reports an error: from its FATAL/PANIC/ERROR marker on (a server log
   line's timestamp is left out), or the whole line for a program's "error:". NULL if not. */
static const char *line_error(const char *s, size_t n)
{
    static const char *const marks[] = {"FATAL:", "PANIC:", "ERROR:"};

    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        const char *m = memmem(s, n, marks[i], strlen(marks[i]));
        if (m)
            return m;
    }
    return memmem(s, n, "error:", 6) ? s : NULL;
}

static bool line_is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/*
 * Copies to out the most telling line that the file open on fd got from offset from on (its
 * last 16 KB at most): the last line reporting an error, else the last non-blank one.
 * Returns 2 for an error line, 1 for another, 0 (out empty) when there was nothing.
 */
static int log_pick_line(int fd, off_t from, char *out, size_t outlen)
{
    char buf[16384];
    off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    const char *pick = NULL, *pick_end = NULL;
    int rank = 0;
    ssize_t n;

    out[0] = '\0';
    if (end <= from)
        return 0;
    if (end - from > (off_t)sizeof(buf))
        from = end - (off_t)sizeof(buf);
    n = pread(fd, buf, (size_t)(end - from), from);
    for (const char *s = buf, *lim = buf + (n > 0 ? n : 0); s < lim;) {
        const char *eol = memchr(s, '\n', (size_t)(lim - s));
        const char *m;

        eol = eol ? eol : lim;
        m = line_error(s, (size_t)(eol - s));
        if (m || (rank < 2 && !line_is_blank(s, (size_t)(eol - s)))) {
            pick = m ? m : s;
            pick_end = eol;
            rank = m ? 2 : 1;
        }
        s = eol + 1;
    }
    if (pick)
        snprintf(out, outlen, "%.*s", (int)(pick_end - pick), pick);
    return rank;
}

/* ---- the directory ---- */

/* mkdir -p: creates path and its missing parents (those 0755, path itself 0700). */
static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];

    if (strlen(path) >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* In a child that became the cluster's user: 0 if it can use e->dir, else which directory
   on the way stops it (see CHILD_REACH_*). */
static int child_check_reach(const struct pgembed *e)
{
    char path[sizeof(e->dir)];
    int n = 0;

    memcpy(path, e->dir, sizeof(path));
    if (child_become_user(e) < 0)
        return CHILD_NO_USER;
    if (access(path, R_OK | W_OK | X_OK) == 0)
        return 0;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        n++;
        *p = '\0';
        if (access(path, X_OK) < 0)
            return n < CHILD_REACH_MAX ? n : CHILD_REACH_MAX;
        *p = '/';
    }
    return CHILD_REACH_DIR;
}

/*
 * As root: checks that postgres can reach and use e->dir, in a child that becomes postgres
 * (so that groups and ACLs count exactly as they will for the server). On failure names the
 * first directory on the way that it cannot search.
 */
static int dir_check_reach(const struct pgembed *e, char *err, size_t errlen)
{
    char blocked[sizeof(e->dir)];
    pid_t pid = fork();
    int code;

    if (pid == 0)
        _exit(child_check_reach(e));
    if (pid < 0)
        return seterr(err, errlen, "cannot fork: %s", strerror(errno));
    code = child_wait(pid);
    if (code == 0)
        return 0;
    if (code >= 1 && code <= CHILD_REACH_MAX) {
        char *p = blocked;

        memcpy(blocked, e->dir, sizeof(blocked));
        for (int n = 0; n < code && (p = strchr(p + 1, '/'));)
            n++;
        if (p)
            *p = '\0';
        return seterr(err, errlen,
                      "PostgreSQL runs as user %s, which cannot reach %s: %s is not searchable "
                      "by it (chmod o+x %s, or choose another embedded_dir)",
                      e->user, e->dir, blocked, blocked);
    }
    if (code == CHILD_NO_USER)
        return seterr(err, errlen, "cannot become user %s to check %s", e->user, e->dir);
    return seterr(err, errlen, "PostgreSQL runs as user %s, which cannot read and write %s",
                  e->user, e->dir);
}

/* Characters that would need quoting in postgresql.conf or unix_socket_directories (a
   comma-separated list): refused rather than escaped. */
static bool dir_name_is_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || strchr("'\"\\,", *s))
            return false;
    return true;
}

/* Creates dir if needed and makes it the cluster's: absolute in e->dir, mode 0700, owned by
   the cluster's user and reachable by it. */
static int dir_prepare(struct pgembed *e, const char *dir, char *err, size_t errlen)
{
    char abs[PATH_MAX];
    struct stat st;

    if (!*dir)
        return seterr(err, errlen, "the embedded cluster's directory is empty");
    if (mkdir_p(dir) < 0)
        return seterr(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    if (!realpath(dir, abs) || stat(abs, &st) < 0)
        return seterr(err, errlen, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return seterr(err, errlen, "%s: not a directory", dir);
    if (strlen(abs) + 1 + strlen(SOCKET_NAME) >= SUN_PATH_SIZE)
        return seterr(err, errlen,
                      "%s: too long for PostgreSQL's socket in it (%zu bytes with /" SOCKET_NAME
                      ", at most %zu): choose a shorter embedded_dir",
                      abs, strlen(abs) + 1 + strlen(SOCKET_NAME), SUN_PATH_SIZE - 1);
    if (!dir_name_is_safe(abs))
        return seterr(err, errlen,
                      "%s: the embedded cluster's directory may not contain "
                      "quotes, backslashes, commas or control characters",
                      abs);
    strcpy(e->dir, abs);
    snprintf(e->data, sizeof(e->data), "%s/" DATA_NAME, e->dir);
    if (e->drop && st.st_uid != e->uid && chown(abs, e->uid, e->gid) < 0)
        return seterr(err, errlen, "cannot give %s to user %s: %s", abs, e->user, strerror(errno));
    if ((st.st_mode & 077) && chmod(abs, 0700) < 0)
        return seterr(err, errlen, "cannot restrict %s to mode 0700: %s", abs, strerror(errno));
    return e->drop ? dir_check_reach(e, err, errlen) : 0;
}

/* Takes the directory's lock (waiting for another host's start or stop). Returns its
   descriptor, to close for unlocking, or -1. */
static int dir_lock(const struct pgembed *e, char *err, size_t errlen)
{
    int fd = file_open(e, LOCK_NAME, O_RDWR);

    if (fd < 0)
        return seterr(err, errlen, "cannot open %s/" LOCK_NAME ": %s", e->dir, strerror(errno));
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            seterr(err, errlen, "cannot lock %s/" LOCK_NAME ": %s", e->dir, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* ---- finding PostgreSQL ---- */

/* A version directory's name ("9.6", "15") as a number that sorts them, or -1. */
static long version_key(const char *v)
{
    char *end;
    long major = strtol(v, &end, 10), minor = 0;

    if (end == v || major < 0)
        return -1;
    if (*end == '.')
        minor = strtol(end + 1, &end, 10);
    return *end ? -1 : major * 100 + minor;
}

/* The cluster's major version (DIR/data/PG_VERSION) in out; false when there is no cluster. */
static bool version_read(const struct pgembed *e, char *out, size_t outlen)
{
    char path[PATH_MAX + 64];
    int fd = open(path_in(path, e->data, "PG_VERSION"), O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, outlen - 1) : -1;

    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return false;
    out[n] = '\0';
    out[strcspn(out, "\r\n ")] = '\0';
    return out[0] != '\0';
}

/* Picks from PG_LIBDIR/N/bin the version want if installed, else the highest, into e->bindir
   with its version in ver. Returns false when there is none. */
static bool bindir_from_libdir(struct pgembed *e, const char *want, char *ver, size_t verlen)
{
    const size_t pre = strlen(PG_LIBDIR "/"), post = strlen("/bin/initdb");
    long best = -1;
    glob_t g;

    if (glob(PG_LIBDIR "/*/bin/initdb", 0, NULL, &g) != 0)
        return false;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *p = g.gl_pathv[i];
        size_t len = strlen(p) - pre - post;
        char v[32];
        long key;
        bool exact;

        if (len >= sizeof(v) || access(p, X_OK) < 0)
            continue;
        snprintf(v, sizeof(v), "%.*s", (int)len, p + pre);
        key = version_key(v);
        exact = want && !strcmp(v, want);
        if (key < 0 || (!exact && key <= best))
            continue;
        best = exact ? LONG_MAX : key; /* the cluster's own version beats any other */
        snprintf(ver, verlen, "%s", v);
        snprintf(e->bindir, sizeof(e->bindir), "%.*s", (int)(strlen(p) - strlen("/initdb")), p);
    }
    globfree(&g);
    return best >= 0;
}

/* The directory of the real initdb (symlinks resolved) found on PATH, into e->bindir. */
static bool bindir_from_path(struct pgembed *e)
{
    const char *path = getenv("PATH");
    char cand[PATH_MAX + 64], real[PATH_MAX];

    for (const char *s = path ? path : ""; *s;) {
        size_t len = strcspn(s, ":");

        if (len > 0 && len < PATH_MAX) {
            snprintf(cand, sizeof(cand), "%.*s/initdb", (int)len, s);
            if (access(cand, X_OK) == 0 && realpath(cand, real)) {
                *strrchr(real, '/') = '\0';
                snprintf(e->bindir, sizeof(e->bindir), "%s", real);
                return true;
            }
        }
        s += len + (s[len] == ':');
    }
    return false;
}

/* Finds the PostgreSQL to run (see pgembed.h): want is the cluster's version, NULL for a
   new cluster. */
static int bindir_find(struct pgembed *e, const char *want, char *err, size_t errlen)
{
    static const char *const progs[] = {"initdb", "pg_ctl", "pg_isready"};
    char ver[32] = "", path[PATH_MAX + 64];

    if (!bindir_from_libdir(e, want, ver, sizeof(ver)) && !bindir_from_path(e))
        return seterr(err, errlen,
                      "PostgreSQL is not installed (initdb not found in " PG_LIBDIR
                      "/*/bin or on PATH): " INSTALL_HINT);
    if (want && *ver && strcmp(ver, want) != 0)
        return seterr(err, errlen,
                      "%s was created by PostgreSQL %s, which is not installed (found %s in "
                      "%s): " INSTALL_HINT "-%s",
                      e->data, want, ver, e->bindir, want);
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++)
        if (access(prog(e, path, progs[i]), X_OK) < 0)
            return seterr(err, errlen, "PostgreSQL in %s is incomplete: no %s (" INSTALL_HINT ")",
                          e->bindir, progs[i]);
    return 0;
}

/* ---- the cluster ---- */

/* Runs initdb: a new cluster in e->data, UTF8, C locale, trusting local socket connections
   (DIR's mode is the access control) and rejecting TCP ones (there are none anyway). */
static int cluster_init(const struct pgembed *e, int logfd, char *err, size_t errlen)
{
    char initdb[PATH_MAX + 64], line[512];
    /* clang-format off */
    const char *argv[] = {prog(e, initdb, "initdb"), "-D", e->data, "--encoding=UTF8",
                          "--no-locale", "--auth-local=trust", "--auth-host=reject", NULL};
    /* clang-format on */
    off_t from = lseek(logfd, 0, SEEK_END);

    if (spawn(e, argv, logfd) == 0)
        return 0;
    log_pick_line(logfd, from, line, sizeof(line));
    return seterr(err, errlen, "initdb failed for %s: %s (see %s/" PROG_LOG ")", e->data,
                  *line ? line : "no output", e->dir);
}

/* Makes sure postgresql.conf includes pgembed.conf: appended after initdb, and checked at
   every start in case a host died in between. */
static int conf_include(const struct pgembed *e, char *err, size_t errlen)
{
    char path[PATH_MAX + 64], *line = NULL;
    size_t cap = 0;
    bool found = false;
    FILE *f = fopen(path_in(path, e->data, "postgresql.conf"), "a+e");

    if (!f)
        return seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
    rewind(f);
    while (!found && getline(&line, &cap, f) > 0)
        found = !strcmp(line, INCLUDE_LINE);
    free(line);
    if (!found)
        fputs("\n" INCLUDE_COMMENT INCLUDE_LINE, f);
    if (fclose(f) != 0)
        return seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

/*
 * (Re)writes DIR/data/pgembed.conf, the settings that make the cluster private to DIR, at
 * every start, so that a moved directory still gets its socket in the right place. Durable
 * defaults (fsync, synchronous_commit) are left alone: make run keeps real data here.
 */
static int conf_write(const struct pgembed *e, char *err, size_t errlen)
{
    char path[PATH_MAX + 64], tmp[PATH_MAX + 64];
    int fd = open(path_in(tmp, e->data, CONF_NAME ".tmp"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  0600);
    int n;

    if (fd < 0)
        return seterr(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    n = dprintf(fd,
                "# Written by squall at every start of its embedded cluster: edits are lost.\n"
                "# Use ALTER SYSTEM (postgresql.auto.conf) to change settings for good.\n"
                "listen_addresses = ''\n"
                "unix_socket_directories = '%s'\n"
                "unix_socket_permissions = 0700\n"
                "port = " PORT "\n"
                "max_connections = " MAX_CONNECTIONS "\n",
                e->dir);
    if (n < 0 || (e->drop && fchown(fd, e->uid, e->gid) < 0) || fsync(fd) < 0) {
        seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    if (rename(tmp, path_in(path, e->data, CONF_NAME)) < 0)
        return seterr(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
    return 0;
}

enum cluster_state { CLUSTER_RUNNING, CLUSTER_STOPPED, CLUSTER_UNKNOWN };

/* What pg_ctl status says about the server of e->data. */
static enum cluster_state cluster_state(const struct pgembed *e, int logfd)
{
    char pg_ctl[PATH_MAX + 64];
    const char *argv[] = {prog(e, pg_ctl, "pg_ctl"), "status", "-D", e->data, NULL};

    switch (spawn(e, argv, logfd)) {
    case 0: return CLUSTER_RUNNING;
    case 3: return CLUSTER_STOPPED;
    default: return CLUSTER_UNKNOWN;
    }
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits until the running server accepts connections on e's socket. Returns 0 when it does,
   1 when it stopped meanwhile (it was shutting down), -1 when it does not within WAIT_S. */
static int cluster_wait_ready(const struct pgembed *e, int logfd)
{
    char pg_isready[PATH_MAX + 64];
    /* clang-format off */
    const char *argv[] = {prog(e, pg_isready, "pg_isready"), "-q", "-h", e->dir, "-p", PORT,
                          "-U", e->user, "-d", "postgres", "-t", "5", NULL};
    /* clang-format on */
    const struct timespec pause = {0, 100 * 1000 * 1000};
    double deadline = now_s() + WAIT_S;

    for (;;) {
        switch (spawn(e, argv, logfd)) {
        case 0: return 0;
        case 1: break; /* starting up */
        case 2:        /* no answer: gone, or not (yet) on our socket */
            if (cluster_state(e, logfd) == CLUSTER_STOPPED)
                return 1;
            break;
        default: return -1;
        }
        if (now_s() >= deadline)
            return -1;
        nanosleep(&pause, NULL);
    }
}

/* Starts the stopped cluster with pg_ctl and waits until it accepts connections. */
static int cluster_start(const struct pgembed *e, int logfd, char *err, size_t errlen)
{
    char pg_ctl[PATH_MAX + 64], log[PATH_MAX + 64], sline[512], pline[512];
    /* clang-format off */
    const char *argv[] = {prog(e, pg_ctl, "pg_ctl"), "start", "-w", "-t", WAIT_S_STR, "-s",
                          "-D", e->data, "-l", path_in(log, e->dir, SERVER_LOG), NULL};
    /* clang-format on */
    int serverfd = file_open(e, SERVER_LOG, O_RDWR | O_APPEND); /* for pg_ctl -l, as user */
    off_t sfrom = serverfd >= 0 ? lseek(serverfd, 0, SEEK_END) : 0;
    off_t pfrom = lseek(logfd, 0, SEEK_END);
    int srank, prank;

    if (spawn(e, argv, logfd) == 0) {
        if (serverfd >= 0)
            close(serverfd);
        return 0;
    }
    /* The server's error, else pg_ctl's, else the server's last word, else pg_ctl's. */
    srank = log_pick_line(serverfd, sfrom, sline, sizeof(sline));
    prank = log_pick_line(logfd, pfrom, pline, sizeof(pline));
    if (serverfd >= 0)
        close(serverfd);
    return seterr(err, errlen, "PostgreSQL did not start in %s: %s (see %s and %s/" PROG_LOG ")",
                  e->dir, srank >= prank ? sline : pline, log, e->dir);
}

static bool pid_is_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* The pid in DIR/pgembed.owner, 0 if none. */
static pid_t owner_read(const struct pgembed *e)
{
    char path[PATH_MAX + 64], buf[32];
    int fd = open(path_in(path, e->dir, OWNER_NAME), O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return (pid_t)strtol(buf, NULL, 10);
}

/* Makes this process the server's owner, the one to stop it. */
static void owner_take(struct pgembed *e)
{
    int fd = file_open(e, OWNER_NAME, O_WRONLY | O_TRUNC);

    e->owner = getpid();
    if (fd >= 0) {
        dprintf(fd, "%ld\n", (long)e->owner);
        close(fd);
    }
}

/* Gets a server running in e->data, reusing one that already is; see pgembed.h for when e
   owns it. */
static int cluster_up(struct pgembed *e, int logfd, char *err, size_t errlen)
{
    switch (cluster_state(e, logfd)) {
    case CLUSTER_RUNNING:
        switch (cluster_wait_ready(e, logfd)) {
        case 0:
            if (!pid_is_alive(owner_read(e)))
                owner_take(e); /* left by a host that is gone */
            return 0;
        case 1: break; /* it was shutting down: start it again */
        default:
            return seterr(err, errlen,
                          "a PostgreSQL server runs in %s but does not accept connections on "
                          "%s/" SOCKET_NAME " (see %s/" SERVER_LOG ")",
                          e->data, e->dir, e->dir);
        }
        break;
    case CLUSTER_STOPPED: break;
    default:
        return seterr(err, errlen, "pg_ctl status failed for %s (see %s/" PROG_LOG ")", e->data,
                      e->dir);
    }
    if (cluster_start(e, logfd, err, errlen) < 0)
        return -1;
    owner_take(e);
    return 0;
}

/* Appends "key=value" to the conninfo in e->dsn, quoting value as libpq wants when it has
   to. Fits: value is at most 255 bytes (a user name) and doubles at worst. */
static void dsn_add(struct pgembed *e, const char *key, const char *value)
{
    size_t n = strlen(e->dsn);
    bool quote = !*value || strpbrk(value, " \t\n'\\");

    n += sprintf(e->dsn + n, "%s%s=%s", n ? " " : "", key, quote ? "'" : "");
    for (const char *s = value; *s; s++) {
        if (quote && (*s == '\'' || *s == '\\'))
            e->dsn[n++] = '\\';
        e->dsn[n++] = *s;
    }
    strcpy(e->dsn + n, quote ? "'" : "");
}

/* With e's directory prepared: under its lock, creates the cluster if there is none, writes
   its settings and gets it running. */
static int cluster_open(struct pgembed *e, char *err, size_t errlen)
{
    char version[32];
    bool exists;
    int lockfd = dir_lock(e, err, errlen), logfd = -1, rc = -1;

    if (lockfd < 0)
        return -1;
    logfd = file_open(e, PROG_LOG, O_RDWR | O_APPEND);
    if (logfd < 0) {
        seterr(err, errlen, "cannot open %s/" PROG_LOG ": %s", e->dir, strerror(errno));
        goto out_unlock;
    }
    exists = version_read(e, version, sizeof(version));
    if (bindir_find(e, exists ? version : NULL, err, errlen) < 0 ||
        (!exists && cluster_init(e, logfd, err, errlen) < 0) || conf_include(e, err, errlen) < 0 ||
        conf_write(e, err, errlen) < 0 || cluster_up(e, logfd, err, errlen) < 0)
        goto out_close_log;
    rc = 0;
out_close_log:
    close(logfd);
out_unlock:
    close(lockfd);
    return rc;
}

struct pgembed *pgembed_start(const char *dir, char *err, size_t errlen)
{
    struct pgembed *e = xcalloc(1, sizeof(*e));

    if (user_init(e, err, errlen) < 0 || dir_prepare(e, dir, err, errlen) < 0)
        goto out_free;
    env_init(e);
    if (cluster_open(e, err, errlen) < 0)
        goto out_free;
    dsn_add(e, "host", e->dir);
    dsn_add(e, "port", PORT);
    dsn_add(e, "dbname", "postgres");
    dsn_add(e, "user", e->user);
    return e;
out_free:
    free(e->groups);
    free(e);
    return NULL;
}

const char *pgembed_dsn(const struct pgembed *e)
{
    return e->dsn;
}

void pgembed_stop(struct pgembed *e)
{
    char pg_ctl[PATH_MAX + 64], path[PATH_MAX + 64];
    int lockfd, logfd;

    if (!e)
        return;
    if (e->owner == getpid()) {
        /* clang-format off */
        const char *argv[] = {prog(e, pg_ctl, "pg_ctl"), "stop", "-D", e->data, "-m", "fast",
                              "-w", "-t", WAIT_S_STR, "-s", NULL};
        /* clang-format on */

        lockfd = dir_lock(e, NULL, 0);
        logfd = file_open(e, PROG_LOG, O_RDWR | O_APPEND);
        spawn(e, argv, logfd);
        if (owner_read(e) == e->owner)
            unlink(path_in(path, e->dir, OWNER_NAME));
        if (logfd >= 0)
            close(logfd);
        if (lockfd >= 0)
            close(lockfd);
    }
    free(e->groups);
    free(e);
}
