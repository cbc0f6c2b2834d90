/*
 * client.c - helpers shared by the integration suites (see client.h).
 *
 * Test code, so it favours plainness over speed: every socket is non-blocking and every
 * wait is a poll() with a deadline. The Check helpers at the end assert instead of
 * returning errors.
 */
#include "client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h" /* log_init: the in-process host logs at the level SQUALL_LOG sets */
#include "pgembed.h"

#define CLIENT_SEND_TIMEOUT_MS 5000
#define SPAWN_READY_MS 10000
#define STOP_GRACE_MS 5000

/* ---- Paths and time ---- */

const char *client_build_dir(void)
{
    const char *b = getenv("SQ_BUILD");

    return b && *b ? b : "build";
}

char *client_build_path(const char *rel, char *out, size_t len)
{
    char cwd[PATH_MAX];
    const char *b = client_build_dir();
    int n;

    if (b[0] == '/')
        n = snprintf(out, len, "%s/%s", b, rel);
    else if (getcwd(cwd, sizeof(cwd)))
        n = snprintf(out, len, "%s/%s/%s", cwd, b, rel);
    else
        return NULL;
    return n > 0 && (size_t)n < len ? out : NULL;
}

char *client_hello_conf(const char *server_keys, char *out, size_t len)
{
    char so[PATH_MAX];

    if (!client_build_path("plugins/hello.so", so, sizeof(so)))
        return NULL;
    int n = snprintf(out, len, "[server]\n%s\n[plugin hello]\npath = %s\n",
                     server_keys ? server_keys : "", so);
    return n > 0 && (size_t)n < len ? out : NULL;
}

int64_t client_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void client_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

long client_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

/* Milliseconds left until deadline, never negative. */
static int ms_left(int64_t deadline)
{
    int64_t left = deadline - client_now_ms();

    return left > 0 ? (int)left : 0;
}

/* ---- A spawned host ---- */

/* Whether conf sets `listen` (a line starting with it, after blanks). */
static bool conf_has_listen(const char *conf)
{
    for (const char *l = conf; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        l += strspn(l, " \t");
        if (strncmp(l, "listen", 6) == 0 && strchr(" \t=", l[6]))
            return true;
    }
    return false;
}

/* Writes conf (with a listen key of an ephemeral port when it has none) to p->conf. */
static int write_conf(struct client_proc *p, const char *conf)
{
    static const char listen[] = "[server]\nlisten = 127.0.0.1:0\n";

    snprintf(p->conf, sizeof(p->conf), "/tmp/squall-test-XXXXXX.conf");
    int fd = mkstemps(p->conf, 5);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -1;
    }
    if (!conf_has_listen(conf))
        fputs(listen, f);
    fputs(conf, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* In the child: stdio, process group, limits, death signal; then exec. Never returns. */
static void child_exec(const struct client_proc *p, const struct client_spawn_opts *o,
                       const char *squall)
{
    const char *argv[64];
    size_t n = 0;
    int null = open("/dev/null", O_RDWR);

    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(p->err_fd, STDERR_FILENO);
    if (null > STDERR_FILENO)
        close(null);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the test died: so does the host */
    if (o && o->nofile > 0) {
        struct rlimit rl = {(rlim_t)o->nofile, (rlim_t)o->nofile};
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    unsetenv("SQUALL_LOG"); /* the "listening on" line is at info level */
    for (const char *const *w = o ? o->wrap : NULL; w && *w && n < 48; w++)
        argv[n++] = *w;
    if (n > 0) { /* the wrapper's child would outlive a killed wrapper otherwise */
        argv[n++] = "setpriv";
        argv[n++] = "--pdeathsig";
        argv[n++] = "KILL";
    }
    argv[n++] = squall;
    argv[n++] = "-c";
    argv[n++] = p->conf;
    argv[n] = NULL;
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Reaps the process if it has exited. Returns true when it has. */
static bool proc_reap(struct client_proc *p, int flags)
{
    int st;

    if (p->exited || p->pid <= 0)
        return p->exited;
    if (waitpid(p->pid, &st, flags) == p->pid) {
        p->exited = true;
        p->status = st;
    }
    return p->exited;
}

/* The port on the first "listening on HOST:PORT" line of the host's stderr, or 0. */
static uint16_t proc_port(const struct client_proc *p)
{
    char *err = client_proc_stderr(p);
    char *l = err ? strstr(err, "listening on ") : NULL;
    char *eol = l ? strchr(l, '\n') : NULL;
    uint16_t port = 0;

    if (eol) {
        *eol = '\0';
        char *colon = strrchr(l, ':');
        if (colon)
            port = (uint16_t)atoi(colon + 1);
    }
    free(err);
    return port;
}

/* Whether something accepts connections on 127.0.0.1:port. */
static bool port_answers(uint16_t port)
{
    struct client_conn *c = client_open(port);

    client_close(c);
    return c != NULL;
}

/* Waits for the listener: the log line, then a successful connect. */
static int proc_wait_ready(struct client_proc *p)
{
    int64_t deadline = client_now_ms() + SPAWN_READY_MS;

    while (client_now_ms() < deadline) {
        if (proc_reap(p, WNOHANG))
            return -1;
        if (!p->port)
            p->port = proc_port(p);
        if (p->port && port_answers(p->port))
            return 0;
        client_sleep_ms(10);
    }
    return -1;
}

int client_spawn(struct client_proc *p, const char *conf, const struct client_spawn_opts *o)
{
    char squall[PATH_MAX], errf[] = "/tmp/squall-test-XXXXXX.err";

    memset(p, 0, sizeof(*p));
    p->err_fd = -1;
    p->status = -1;
    if (!client_build_path("squall", squall, sizeof(squall)) || write_conf(p, conf) < 0)
        return -1;
    p->err_fd = mkostemps(errf, 4, O_CLOEXEC); /* other hosts spawned later must not get it */
    if (p->err_fd < 0)
        return -1;
    unlink(errf); /* read through err_fd only: nothing is left behind */
    p->pid = fork();
    if (p->pid < 0)
        return -1;
    p->wrapped = o && o->wrap && o->wrap[0];
    if (p->pid == 0)
        child_exec(p, o, squall);
    if (o && o->no_wait)
        return 0;
    int rc = proc_wait_ready(p);
    unlink(p->conf); /* read by now: the host reads it before it listens */
    p->conf[0] = '\0';
    return rc;
}

pid_t client_proc_host_pid(const struct client_proc *p)
{
    char path[64];
    long child = 0;

    if (!p->wrapped || p->pid <= 0)
        return p->pid > 0 ? p->pid : 0;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)p->pid, (int)p->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &child) != 1)
        child = 0;
    fclose(f);
    return child > 0 ? (pid_t)child : (pid_t)0;
}

int client_proc_wait(struct client_proc *p, int timeout_ms)
{
    int64_t deadline = client_now_ms() + timeout_ms;

    while (!proc_reap(p, WNOHANG) && client_now_ms() < deadline)
        client_sleep_ms(5);
    return p->exited ? p->status : -1;
}

int client_proc_stop(struct client_proc *p)
{
    if (p->pid > 0 && !proc_reap(p, WNOHANG)) {
        pid_t host = client_proc_host_pid(p);
        kill(host > 0 ? host : p->pid, SIGTERM);
        if (client_proc_wait(p, STOP_GRACE_MS) < 0) {
            kill(-p->pid, SIGKILL); /* its own process group: only what we started */
            proc_reap(p, 0);
        }
    }
    return p->exited ? p->status : -1;
}

char *client_proc_end(struct client_proc *p, int timeout_ms)
{
    bool running = !p->exited && p->pid > 0;
    char *err, *why = NULL;

    if (running)
        kill(p->pid, SIGTERM);
    int st = client_proc_wait(p, timeout_ms);
    err = client_proc_stderr(p);
    client_proc_free(p);
    if (running && (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
        if (asprintf(&why, "the host ended with wait status %#x:\n%s", st, err) < 0)
            why = NULL;
    } else if (err && strstr(err, "Sanitizer")) {
        if (asprintf(&why, "the host's sanitizer said:\n%s", err) < 0)
            why = NULL;
    }
    free(err);
    return why;
}

void client_rmdir(const char *dir)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

void client_proc_free(struct client_proc *p)
{
    client_proc_stop(p);
    if (p->conf[0])
        unlink(p->conf);
    p->conf[0] = '\0';
    if (p->err_fd >= 0)
        close(p->err_fd);
    p->err_fd = -1;
}

char *client_proc_stderr(const struct client_proc *p)
{
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    ssize_t r;

    if (!s)
        return NULL;
    while (p->err_fd >= 0 && (r = pread(p->err_fd, s + n, cap - n - 1, (off_t)n)) > 0) {
        n += (size_t)r;
        if (cap - n < 2) {
            char *t = realloc(s, cap *= 2);
            if (!t)
                break;
            s = t;
        }
    }
    s[n] = '\0';
    return s;
}

long client_cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long ut, st;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
       cmajflt utime stime. comm may hold spaces, so start after its last ')'. */
    char *rp = strrchr(buf, ')');
    if (!rp ||
        sscanf(rp + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/* ---- Connections ---- */

static struct client_conn *conn_new(int fd)
{
    struct client_conn *c = calloc(1, sizeof(*c));

    if (!c) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    return c;
}

/* Connects to 127.0.0.1:port; wait: a blocking connect; rcvbuf > 0: SO_RCVBUF first. */
static struct client_conn *open_local(uint16_t port, bool wait, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (wait ? 0 : SOCK_NONBLOCK), 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return NULL;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && (wait || errno != EINPROGRESS)) {
        close(fd);
        return NULL;
    }
    if (wait)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return conn_new(fd);
}

struct client_conn *client_open(uint16_t port)
{
    return open_local(port, true, 0);
}

struct client_conn *client_open_rcvbuf(uint16_t port, int rcvbuf)
{
    return open_local(port, true, rcvbuf);
}

struct client_conn *client_open_nb(uint16_t port)
{
    return open_local(port, false, 0);
}

void client_close(struct client_conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c);
}

int client_send(struct client_conn *c, const void *data, size_t n)
{
    const char *p = data;
    int64_t deadline = client_now_ms() + CLIENT_SEND_TIMEOUT_MS;

    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0 || errno != EAGAIN)
            return -1;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        if (poll(&pfd, 1, ms_left(deadline)) <= 0)
            return -1;
    }
    return 0;
}

int client_send_str(struct client_conn *c, const char *s)
{
    return client_send(c, s, strlen(s));
}

int client_send_reading(struct client_conn *c, const void *data, size_t n, int timeout_ms)
{
    const char *p = data;
    int64_t deadline = client_now_ms() + timeout_ms;

    while (n > 0) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT | (c->closed ? 0 : POLLIN)};
        if (poll(&pfd, 1, ms_left(deadline)) <= 0)
            return -1;
        if ((pfd.revents & POLLIN) && client_fill(c, 0) == 0)
            return -1;
        if (!(pfd.revents & (POLLOUT | POLLERR | POLLHUP)))
            continue;
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    return 0;
}

/* A small fixed-seed generator, so the pieces are the same in every run. */
static size_t next_random(void)
{
    static uint32_t x = 2463534242u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

int client_send_pieces(struct client_conn *c, const void *data, size_t n, size_t min, size_t max,
                       int pause_us)
{
    const char *p = data;
    int one = 1;

    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    while (n > 0) {
        size_t k = min + (max > min ? next_random() % (max - min + 1) : 0);
        if (k > n)
            k = n;
        if (client_send(c, p, k) < 0)
            return -1;
        p += k;
        n -= k;
        if (n > 0 && pause_us > 0)
            usleep((useconds_t)pause_us);
    }
    return 0;
}

void client_shutdown_write(struct client_conn *c)
{
    shutdown(c->fd, SHUT_WR);
}

/* Makes room for at least 64 KiB more in the receive buffer. */
static int conn_room(struct client_conn *c)
{
    if (c->pos > 0 && c->pos == c->len)
        c->pos = c->len = 0;
    if (c->cap - c->len >= 65536)
        return 0;
    size_t cap = c->cap ? c->cap * 2 : 65536 * 2;
    char *b = realloc(c->buf, cap + 1);
    if (!b)
        return -1;
    c->buf = b;
    c->cap = cap;
    return 0;
}

int client_fill(struct client_conn *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int64_t deadline = client_now_ms() + timeout_ms;

    if (c->closed)
        return 0;
    if (conn_room(c) < 0)
        return -1;
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r > 0) {
            c->len += (size_t)r;
            c->buf[c->len] = '\0';
            return (int)r;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->reset = r < 0 && errno == ECONNRESET;
            c->closed = true;
            return 0;
        }
        int left = ms_left(deadline);
        if (left == 0 || poll(&pfd, 1, left) == 0)
            return -1;
    }
}

bool client_wait_close(struct client_conn *c, int timeout_ms)
{
    int64_t deadline = client_now_ms() + timeout_ms;

    while (!c->closed && client_fill(c, ms_left(deadline)) != -1)
        ;
    return c->closed;
}

size_t client_unparsed(const struct client_conn *c)
{
    return c->len - c->pos;
}

/* ---- Replies ---- */

/* Points each header of res at its name and value inside res->mem (lines split in place). */
static int parse_headers(struct client_res *res, char *lines)
{
    for (char *l = lines; *l;) {
        char *eol = strstr(l, "\r\n"), *colon = strchr(l, ':');
        if (!eol || !colon || colon > eol || res->nheaders == CLIENT_MAX_HEADERS)
            return -1;
        *eol = *colon = '\0';
        char *v = colon + 1, *e = eol;
        v += strspn(v, " \t");
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        res->headers[res->nheaders++] = (struct client_header){l, v};
        l = eol + 2;
    }
    return 0;
}

/* "HTTP/1.D DDD " or "HTTP/1.D DDD\r" at data[0..n). */
static bool status_line_ok(const char *d, size_t n)
{
    bool digits = n > 13 && isdigit((unsigned char)d[9]) && isdigit((unsigned char)d[10]) &&
                  isdigit((unsigned char)d[11]);

    return digits && memcmp(d, "HTTP/1.", 7) == 0 && isdigit((unsigned char)d[7]) && d[8] == ' ' &&
           (d[12] == ' ' || d[12] == '\r');
}

/* The body length the head declares: -1 for "until close", -2 when malformed. */
static long body_length(const struct client_res *res, bool head)
{
    const char *cl = client_res_header(res, "Content-Length");
    char *end;

    if (head || res->status / 100 == 1 || res->status == 204 || res->status == 304)
        return 0;
    if (client_res_header(res, "Transfer-Encoding"))
        return -2; /* squall never sends chunked replies: not supported here */
    if (!cl)
        return -1;
    long n = strtol(cl, &end, 10);
    return *cl && !*end && n >= 0 ? n : -2;
}

long client_parse_reply(const char *data, size_t n, bool head, bool eof, struct client_res *res)
{
    const char *end = memmem(data, n, "\r\n\r\n", 4);

    memset(res, 0, sizeof(*res));
    if (!end)
        return 0;
    size_t head_len = (size_t)(end - data) + 4;
    if (!status_line_ok(data, head_len))
        return -1;
    res->minor = data[7] - '0';
    res->status = atoi(data + 9);
    const char *eol = memmem(data, head_len, "\r\n", 2);
    res->mem = malloc(n + 1);
    if (!res->mem)
        return -1;
    size_t hl = head_len - 2 - (size_t)(eol + 2 - data); /* header lines, each with CRLF */
    memcpy(res->mem, eol + 2, hl);
    res->mem[hl] = '\0';
    long blen = parse_headers(res, res->mem) < 0 ? -2 : body_length(res, head);
    if (blen == -2 || (blen == -1 && !eof)) {
        client_res_free(res);
        return blen == -2 ? -1 : 0;
    }
    size_t body = blen == -1 ? n - head_len : (size_t)blen;
    if (n - head_len < body) {
        client_res_free(res);
        return 0;
    }
    res->body = res->mem + hl + 1;
    memcpy(res->body, data + head_len, body);
    res->body[body] = '\0';
    res->body_len = body;
    res->raw_len = head_len + body;
    return (long)res->raw_len;
}

int client_read_reply(struct client_conn *c, struct client_res *res, bool head, int timeout_ms)
{
    int64_t deadline = client_now_ms() + timeout_ms;

    memset(res, 0, sizeof(*res));
    for (;;) {
        long n =
            c->buf ? client_parse_reply(c->buf + c->pos, c->len - c->pos, head, c->closed, res) : 0;
        if (n > 0) {
            c->pos += (size_t)n;
            return 0;
        }
        if (n < 0 || c->closed || client_fill(c, ms_left(deadline)) < 0)
            return -1;
    }
}

int client_roundtrip(struct client_conn *c, const char *req, struct client_res *res, int timeout_ms)
{
    memset(res, 0, sizeof(*res));
    if (client_send_str(c, req) < 0)
        return -1;
    return client_read_reply(c, res, false, timeout_ms);
}

const char *client_res_header(const struct client_res *res, const char *name)
{
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

int client_res_header_count(const struct client_res *res, const char *name)
{
    int n = 0;

    for (size_t i = 0; i < res->nheaders; i++)
        n += strcasecmp(res->headers[i].name, name) == 0;
    return n;
}

void client_res_free(struct client_res *res)
{
    free(res->mem);
    memset(res, 0, sizeof(*res));
}

/* ---- Many connections ---- */

/* One step of client_round for connection i: send what is left, read, parse. Returns true
   when it is finished (a reply, or a failure). */
static bool round_step(struct client_conn *c, const char *req, size_t *sent, int *status)
{
    size_t n = strlen(req);
    struct client_res res;

    if (*sent < n) {
        ssize_t w = send(c->fd, req + *sent, n - *sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return true;
        *sent += w > 0 ? (size_t)w : 0;
        return false;
    }
    if (client_fill(c, 0) < 0)
        return false;
    long r =
        c->buf ? client_parse_reply(c->buf + c->pos, c->len - c->pos, false, c->closed, &res) : 0;
    if (r > 0) {
        c->pos += (size_t)r;
        *status = res.status;
        client_res_free(&res);
    }
    return r != 0 || c->closed;
}

size_t client_round(struct client_conn **cs, size_t n, const char *req, int *status, int timeout_ms)
{
    struct pollfd *pfd = calloc(n, sizeof(*pfd));
    size_t *sent = calloc(n, sizeof(*sent)), done = 0, ok = 0;
    bool *fin = calloc(n, sizeof(*fin));
    int64_t deadline = client_now_ms() + timeout_ms;

    for (size_t i = 0; i < n; i++)
        status[i] = 0;
    while (pfd && sent && fin && done < n && ms_left(deadline) > 0) {
        for (size_t i = 0; i < n; i++)
            pfd[i] = (struct pollfd){.fd = fin[i] ? -1 : cs[i]->fd,
                                     .events = sent[i] < strlen(req) ? POLLOUT : POLLIN};
        if (poll(pfd, (nfds_t)n, ms_left(deadline)) <= 0)
            break;
        for (size_t i = 0; i < n; i++)
            if (pfd[i].revents && !fin[i] && round_step(cs[i], req, &sent[i], &status[i])) {
                fin[i] = true;
                done++;
            }
    }
    for (size_t i = 0; i < n; i++)
        ok += status[i] != 0;
    free(pfd);
    free(sent);
    free(fin);
    return ok;
}

/* ---- Check helpers ---- */

void client_log_quiet(void)
{
    setenv("SQUALL_LOG", "warn", 0);
    log_init();
}

/* The running test's host (client_host_start), in the test's own process. */
static sq_test_host *fixture_host;
static uint16_t fixture_port;

void client_host_start(const char *server_keys)
{
    char conf[4096];

    ck_assert_msg(client_hello_conf(server_keys, conf, sizeof(conf)), "config too long");
    fixture_host = sq_test_start(conf);
    ck_assert_msg(fixture_host, "host did not start: %s", sq_test_error());
    fixture_port = sq_test_port(fixture_host);
}

void client_host_setup(void)
{
    client_host_start(NULL);
}

void client_host_stop(void)
{
    sq_test_stop(fixture_host);
    fixture_host = NULL;
}

TCase *client_host_tcase(Suite *s, const char *name, void (*setup)(void), double timeout)
{
    TCase *tc = tcase_create(name);

    if (setup)
        tcase_add_checked_fixture(tc, setup, client_host_stop);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

uint16_t client_host_port(void)
{
    return fixture_port;
}

struct client_conn *client_host_connect(void)
{
    struct client_conn *c = client_open(fixture_port);

    ck_assert_msg(c, "cannot connect to 127.0.0.1:%u", fixture_port);
    return c;
}

void client_expect_reply(struct client_conn *c, int status, const char *body)
{
    struct client_res res;

    ck_assert_msg(client_read_reply(c, &res, false, T_MS) == 0,
                  "no whole reply (closed=%d, %zu bytes unparsed)", c->closed, client_unparsed(c));
    ck_assert_int_eq(res.status, status);
    if (body) {
        ck_assert_uint_eq(res.body_len, strlen(body));
        ck_assert_str_eq(res.body, body);
    }
    client_res_free(&res);
}

void client_expect_closed(struct client_conn *c)
{
    ck_assert_msg(client_wait_close(c, CLOSE_MS), "the server kept the connection open");
    ck_assert_msg(!c->reset, "the server reset the connection instead of closing it");
    ck_assert_msg(client_unparsed(c) == 0, "%zu bytes after the last reply: %.60s",
                  client_unparsed(c), c->buf + c->pos);
}

void client_expect_open(struct client_conn *c, int ms)
{
    ck_assert_msg(client_fill(c, ms) == -1, "the server closed the connection or sent bytes");
}

/* Appends POST /echo with body to out at *n. */
static void add_echo(char *out, size_t cap, size_t *n, const char *body)
{
    int w = snprintf(out + *n, cap - *n,
                     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    ck_assert(w > 0 && (size_t)w < cap - *n);
    *n += (size_t)w;
}

/* The body of the i-th pipelined echo: distinct, and of varying length. */
static const char *echo_body(int i, char *out, size_t len)
{
    snprintf(out, len, "body-%02d-%.*s", i, i * 3,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    return out;
}

size_t client_pipeline_build(char *out, size_t cap)
{
    char body[128];
    size_t n = 0;

    for (int i = 0; i < NPIPE; i++)
        add_echo(out, cap, &n, echo_body(i, body, sizeof(body)));
    return n;
}

void client_pipeline_expect(struct client_conn *c)
{
    char body[128];

    for (int i = 0; i < NPIPE; i++)
        client_expect_reply(c, 200, echo_body(i, body, sizeof(body)));
}

sq_test_res *client_req(sq_test_host *h, const char *method, const char *path, const char *headers,
                        const void *body, size_t len)
{
    sq_test_res *res = sq_test_request(h, method, path, headers, body, len);

    ck_assert_msg(res, "%s %s: no connection", method, path);
    return res;
}

void client_assert_header(const sq_test_res *res, const char *name, const char *want)
{
    const char *v = sq_test_header(res, name);

    ck_assert_msg(v, "no %s header in:\n%s", name, res->headers);
    ck_assert_str_eq(v, want);
}

void client_assert_json_error(const sq_test_res *res, int status, const char *body)
{
    ck_assert_int_eq(res->status, status);
    client_assert_header(res, "Content-Type", "application/json");
    ck_assert_str_eq(res->body, body);
}

/* ---- A test binary's PostgreSQL ---- */

static struct pgembed *pg_cluster;
static char pg_dir[64];

const char *client_pg_start(const char *name)
{
    char err[1024] = "mkdtemp failed";

    snprintf(pg_dir, sizeof(pg_dir), "/tmp/squall-%s-XXXXXX", name);
    if (!mkdtemp(pg_dir) || !(pg_cluster = pgembed_start(pg_dir, err, sizeof(err)))) {
        fprintf(stderr, "%s: cannot start PostgreSQL in %s: %s\n", name, pg_dir, err);
        return NULL;
    }
    return pgembed_dsn(pg_cluster);
}

void client_pg_stop(void)
{
    pgembed_stop(pg_cluster);
    pg_cluster = NULL;
    client_rmdir(pg_dir);
}

const char *client_pg_dir(void)
{
    return pg_dir;
}

static void notice_ignore(void *arg, const char *message)
{
}

PGconn *client_pg_connect(const char *dbname)
{
    char dsn[1024];

    ck_assert_msg(pg_cluster, "no PostgreSQL cluster (see the log above)");
    snprintf(dsn, sizeof(dsn), "%s%s%s", pgembed_dsn(pg_cluster), dbname ? " dbname=" : "",
             dbname ? dbname : "");
    PGconn *c = PQconnectdb(dsn);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, notice_ignore, NULL);
    return c;
}

char *client_pg_value(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *v = NULL;

    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK,
                  "%s: %s", sql, PQresultErrorMessage(r));
    if (PQntuples(r) > 0 && PQnfields(r) > 0)
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

long client_pg_long(const char *sql)
{
    PGconn *c = client_pg_connect(NULL);
    char *v = client_pg_value(c, sql);
    long n = v ? atol(v) : -1;

    free(v);
    PQfinish(c);
    return n;
}
