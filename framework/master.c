/*
 * master.c - workers = N: a master process supervising N worker processes (see master.h).
 *
 * The master binds the listening sockets and starts the embedded PostgreSQL once, then forks
 * the workers. Each worker is a whole host (server.c: its own loop, plugins, pool) accepting
 * on its copy of the sockets, so the kernel spreads connections over them. The master serves
 * nothing: it waits for signals with sigtimedwait() (all of them blocked, so none is lost
 * between two waits) and
 *  - restarts a worker that dies: at once when it had been serving, after a delay that
 *    doubles up to WORKER_BACKOFF_MAX_MS when it keeps dying before it is ready;
 *  - forwards SIGTERM/SIGINT (graceful drain), SIGQUIT (stop now) and SIGHUP (reload);
 *  - exits once every worker has, 0 after a requested stop.
 * A worker that cannot start the first time (a plugin's init fails, say) stops the whole
 * host with its error, as a single process would: restarting it could only fail again.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "pgembed.h"
#include "server.h"
#include "shm.h"
#include "xalloc.h"

#define WORKER_BACKOFF_MS 100      /* first delay before restarting a worker that died early */
#define WORKER_BACKOFF_MAX_MS 10000
#define WORKER_STABLE_MS 1000      /* a worker that lived this long counts as started well */
#define MASTER_KILL_GRACE_MS 5000  /* after shutdown_timeout, stragglers get SIGKILL */

struct worker {
    pid_t pid;            /* 0 while not running */
    bool ready;           /* it has started serving */
    uint64_t started_ms;
    uint64_t restart_at;  /* when to start it again; 0 = not scheduled */
    unsigned failures;    /* early deaths in a row */
};

struct master {
    struct config *cfg;
    int *fds;
    size_t nworkers;
    struct worker *w;
    int ready_pipe[2];
    bool stopping;
    uint64_t kill_at;     /* stopping: when the remaining workers get SIGKILL */
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void signals_block(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGQUIT);
    sigaddset(set, SIGHUP);
    sigprocmask(SIG_BLOCK, set, NULL);
}

/* The worker's life: a host on the inherited sockets. Never returns. */
static void worker_main(struct master *m, size_t slot, pid_t master)
{
    sigset_t none;
    char err[8192];
    unsigned char id = (unsigned char)slot;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a master killed with -9 takes its workers along */
    if (getppid() != master)
        _exit(1);
    close(m->ready_pipe[0]);
    err[0] = '\0';
    struct server *srv = server_new(m->cfg, SERVER_SIGNALS, m->fds, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "%s\n", err);
        _exit(1);
    }
    if (write(m->ready_pipe[1], &id, 1) != 1)
        _exit(1);
    close(m->ready_pipe[1]);
    int rc = server_run(srv);
    server_free(srv);
    exit(rc == 0 ? 0 : 1);
}

static int worker_start(struct master *m, size_t slot)
{
    struct worker *w = &m->w[slot];
    pid_t master = getpid(), pid = fork();

    if (pid < 0) {
        log_error("worker %zu: fork: %s", slot + 1, strerror(errno));
        w->restart_at = now_ms() + WORKER_BACKOFF_MS; /* not again at once */
        return -1;
    }
    if (pid == 0)
        worker_main(m, slot, master);
    w->pid = pid;
    w->ready = false;
    w->started_ms = now_ms();
    w->restart_at = 0;
    log_info("worker %zu started (pid %d)", slot + 1, (int)pid);
    return 0;
}

static void workers_signal(struct master *m, int sig)
{
    for (size_t i = 0; i < m->nworkers; i++)
        if (m->w[i].pid > 0)
            kill(m->w[i].pid, sig);
}

static size_t workers_alive(const struct master *m)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nworkers; i++)
        n += m->w[i].pid > 0;
    return n;
}

/* Reads the readiness bytes workers have written. */
static void read_ready(struct master *m)
{
    unsigned char ids[64];
    ssize_t n;

    while ((n = read(m->ready_pipe[0], ids, sizeof(ids))) > 0)
        for (ssize_t i = 0; i < n; i++)
            if (ids[i] < m->nworkers)
                m->w[ids[i]].ready = true;
}

static void log_exit(size_t slot, pid_t pid, int status)
{
    if (WIFSIGNALED(status))
        log_warn("worker %zu (pid %d) killed by signal %d (%s)", slot + 1, (int)pid,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        log_info("worker %zu (pid %d) exited with status %d", slot + 1, (int)pid,
                 WEXITSTATUS(status));
}

/* Reaps every dead worker (several may die together: their SIGCHLDs merge into one) and
   schedules their restarts. Returns -1 when one failed its very first start (the host
   cannot run). */
static int reap(struct master *m, bool starting)
{
    int status, rc = 0;
    pid_t pid;

    read_ready(m);
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        size_t slot = 0;
        while (slot < m->nworkers && m->w[slot].pid != pid)
            slot++;
        if (slot == m->nworkers)
            continue; /* not a worker (the embedded PostgreSQL's helpers are waited for) */
        struct worker *w = &m->w[slot];
        w->pid = 0;
        log_exit(slot, pid, status);
        if (m->stopping)
            continue;
        if (starting && !w->ready) {
            rc = -1;
            continue;
        }
        bool early = !w->ready || now_ms() - w->started_ms < WORKER_STABLE_MS;
        w->failures = early ? w->failures + 1 : 0;
        uint64_t delay = 0;
        if (early) {
            delay = WORKER_BACKOFF_MS << (w->failures < 8 ? w->failures - 1 : 7);
            delay = delay > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : delay;
            log_warn("worker %zu died %s; restarting it in %llu ms", slot + 1,
                     w->ready ? "soon after start" : "before it was ready",
                     (unsigned long long)delay);
        }
        w->restart_at = now_ms() + delay;
    }
    return rc;
}

/* The next time something is due (a restart, the SIGKILL deadline), in ms from now. */
static uint64_t next_due(const struct master *m, uint64_t now)
{
    uint64_t due = UINT64_MAX;

    for (size_t i = 0; i < m->nworkers && !m->stopping; i++)
        if (m->w[i].restart_at && m->w[i].restart_at < due)
            due = m->w[i].restart_at;
    if (m->stopping && m->kill_at < due)
        due = m->kill_at;
    return due == UINT64_MAX ? 1000 : due > now ? due - now : 0;
}

static void stop(struct master *m, int sig)
{
    if (m->stopping && sig != SIGQUIT)
        return;
    m->stopping = true;
    m->kill_at = now_ms() + m->cfg->shutdown_timeout_ms + MASTER_KILL_GRACE_MS;
    log_info("%s: stopping %zu workers%s", strsignal(sig), workers_alive(m),
             sig == SIGQUIT ? " now" : " gracefully");
    workers_signal(m, sig == SIGQUIT ? SIGQUIT : SIGTERM);
}

/* Waits for signals until every worker is gone. */
static int supervise(struct master *m, const sigset_t *set)
{
    while (!m->stopping || workers_alive(m) > 0) {
        uint64_t wait = next_due(m, now_ms());
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000};
        int sig = sigtimedwait(set, NULL, &ts);

        reap(m, false); /* on every wake-up: a death may have come with another signal */
        if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
            stop(m, sig);
        else if (sig == SIGHUP)
            workers_signal(m, SIGHUP);
        read_ready(m);
        uint64_t now = now_ms();
        if (m->stopping && now >= m->kill_at && workers_alive(m) > 0) {
            log_warn("%zu workers still running after shutdown_timeout: SIGKILL", workers_alive(m));
            workers_signal(m, SIGKILL);
            m->kill_at = UINT64_MAX;
        }
        for (size_t i = 0; i < m->nworkers && !m->stopping; i++)
            if (m->w[i].restart_at && now >= m->w[i].restart_at)
                worker_start(m, i);
    }
    return 0;
}

/* The first start: every worker must become ready, else the host stops with their error. */
static int start_all(struct master *m, const sigset_t *set)
{
    for (size_t i = 0; i < m->nworkers; i++)
        if (worker_start(m, i) < 0)
            return -1;
    for (;;) {
        size_t ready = 0;
        read_ready(m);
        for (size_t i = 0; i < m->nworkers; i++)
            ready += m->w[i].ready;
        if (ready == m->nworkers)
            return 0;
        struct timespec ts = {0, 50 * 1000000};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGCHLD && reap(m, true) < 0) {
            log_error("a worker could not start; stopping");
            return -1;
        }
        if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
            stop(m, sig);
            return 0;
        }
    }
}

int master_run(struct config *cfg, char *err, size_t errlen)
{
    struct master m = {.cfg = cfg, .nworkers = (size_t)cfg->workers};
    struct pgembed *pg = NULL;
    sigset_t set;
    int rc = 1;

    m.fds = xcalloc(cfg->nlisten, sizeof(int));
    m.w = xcalloc(m.nworkers, sizeof(*m.w));
    if (listen_open(cfg, m.fds, err, errlen) < 0) {
        free(m.fds);
        m.fds = NULL;
        goto out;
    }
    for (size_t i = 0; i < cfg->nlisten; i++)
        log_info("listening on %s:%u", cfg->listen[i].host ? cfg->listen[i].host : "*",
                 listen_port(m.fds[i]));
    if (cfg->db.dsn && strcmp(cfg->db.dsn, "embedded") == 0) { /* one cluster for all */
        char why[1024];
        if (!(pg = pgembed_start(cfg->db.embedded_dir, why, sizeof(why)))) {
            err_add(err, errlen, "%s:%d: [database] %s", cfg->file, cfg->db.line, why);
            goto out;
        }
        free(cfg->db.dsn);
        cfg->db.dsn = xstrdup(pgembed_dsn(pg));
    }
    if (shm_init() < 0) /* before the fork: the workers share it */
        log_warn("no shared memory (%s): each worker counts rate limits alone", strerror(errno));
    if (pipe2(m.ready_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        err_add(err, errlen, "pipe: %s", strerror(errno));
        goto out;
    }
    signals_block(&set);
    log_info("master (pid %d): %zu workers", (int)getpid(), m.nworkers);
    if (start_all(&m, &set) == 0 && supervise(&m, &set) == 0)
        rc = 0;
    else {
        stop(&m, SIGTERM);
        supervise(&m, &set);
    }
    close(m.ready_pipe[0]);
    close(m.ready_pipe[1]);
out:
    for (size_t i = 0; m.fds && i < cfg->nlisten; i++)
        close(m.fds[i]);
    pgembed_stop(pg);
    free(m.fds);
    free(m.w);
    config_free(cfg);
    return rc;
}
