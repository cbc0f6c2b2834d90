/*
 * sleep_load.c - N concurrent connections, each sending one GET and awaiting the reply
 * (meant for squall's /sleep?ms=1000 and Tornado's /slow?ms=1000). One thread, epoll.
 *
 *   sleep_load [-n CONNS] [-w WAVE] [-g GAP_MS] [-p PORT] [-a ADDR] [-u PATH] [-P PID]
 *              [-t TIMEOUT_S]
 *
 *   -n  connections (default 10000), each sends one request and reads one reply
 *   -w  connections opened per wave (default 1000): the next wave starts once every
 *       connect of this one has completed and GAP_MS has passed, so the server's accept
 *       queue (backlog 4096 for squall, 2048 for Tornado) is not overrun
 *   -g  least milliseconds between waves (default 0)
 *   -u  request path (default /sleep?ms=1000)
 *   -P  the server's PID: its VmRSS/VmHWM (/proc/PID/status) are printed before and after
 *   -t  give up after this many seconds (default 30)
 *
 * Prints the wall time from the first connect() to the last complete reply, the time
 * the connects took, per-request latency min, median, p99 and max (from connect() to
 * the reply's last byte, and from the request's send, which comes once the client has
 * issued the rest of its wave of connects), status counts, the increase of the host's
 * TCP ListenOverflows/ListenDrops counters (non-zero: SYNs were dropped and sent again
 * 1 s later), and the server's memory and CPU time (utime + stime, /proc/PID/stat).
 * The last line (RESULT ...) is for scripts. Sockets are closed with RST at the end
 * (SO_LINGER 0), so repeated runs do not pile up TIME_WAIT ports.
 *
 * With -w 1000 the wave pacing hardly matters for squall: the connects are bound by the
 * client's CPU (the kernel's loopback handshake runs in connect()), about 0.3 s for 10k.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { S_IDLE, S_CONNECTING, S_READING, S_DONE, S_FAILED };

struct conn {
    int fd;
    enum state st;
    double t_start, t_connected, t_sent, t_done;
    int status;
    size_t len, need; /* bytes read; bytes the whole reply has (0 = headers incomplete) */
    char buf[768];
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* TcpExt counter by name from /proc/net/netstat (header line, then values line). */
static long long tcpext(const char *name)
{
    FILE *f = fopen("/proc/net/netstat", "r");
    char hdr[8192], val[8192];
    long long result = -1;

    if (!f)
        return -1;
    while (fgets(hdr, sizeof(hdr), f) && fgets(val, sizeof(val), f)) {
        if (strncmp(hdr, "TcpExt:", 7) != 0)
            continue;
        char *sh, *sv;
        char *h = strtok_r(hdr, " \n", &sh), *v = strtok_r(val, " \n", &sv);
        while (h && v) {
            if (strcmp(h, name) == 0) {
                result = atoll(v);
                break;
            }
            h = strtok_r(NULL, " \n", &sh);
            v = strtok_r(NULL, " \n", &sv);
        }
    }
    fclose(f);
    return result;
}

/* "VmRSS 1234 kB, VmHWM 5678 kB" of pid into out. */
static void proc_mem(int pid, char *out, size_t outlen, long *hwm_kb)
{
    char path[64], line[256];
    long rss = -1, hwm = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "VmRSS:", 6) == 0)
                rss = atol(line + 6);
            else if (strncmp(line, "VmHWM:", 6) == 0)
                hwm = atol(line + 6);
        }
        fclose(f);
    }
    snprintf(out, outlen, "VmRSS %.1f MB, VmHWM %.1f MB", rss / 1024.0, hwm / 1024.0);
    if (hwm_kb)
        *hwm_kb = hwm;
}

/* utime + stime of pid in seconds, from /proc/PID/stat; -1 when unknown. */
static double proc_cpu(int pid)
{
    char path[64], line[1024];
    unsigned long ut, st;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
    fclose(f);
    /* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
       cmajflt utime stime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Parses what has arrived: sets c->status and c->need once the headers are complete. */
static void parse(struct conn *c)
{
    if (c->need)
        return;
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return;
    size_t hlen = (size_t)(end - c->buf) + 4;
    c->buf[hlen - 1] = '\0';
    c->status = c->len > 12 ? atoi(c->buf + 9) : 0;
    size_t clen = 0;
    for (char *p = strstr(c->buf, "\r\n"); p && p < c->buf + hlen; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0) {
            clen = (size_t)atol(p + 17);
            break;
        }
    c->need = hlen + clen;
}

int main(int argc, char **argv)
{
    long n = 10000, wave = 1000, gap_ms = 0, timeout_s = 30;
    int port = 18080, pid = 0, opt;
    const char *addr = "127.0.0.1", *path = "/sleep?ms=1000";

    while ((opt = getopt(argc, argv, "n:w:g:p:a:u:P:t:")) != -1) {
        switch (opt) {
        case 'n': n = atol(optarg); break;
        case 'w': wave = atol(optarg); break;
        case 'g': gap_ms = atol(optarg); break;
        case 'p': port = atoi(optarg); break;
        case 'a': addr = optarg; break;
        case 'u': path = optarg; break;
        case 'P': pid = atoi(optarg); break;
        case 't': timeout_s = atol(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-n CONNS] [-w WAVE] [-g GAP_MS] [-p PORT] [-a ADDR] "
                            "[-u PATH] [-P PID] [-t TIMEOUT_S]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || wave < 1)
        return 2;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur < n + 16) {
        fprintf(stderr, "sleep_load: RLIMIT_NOFILE %ld is too low for %ld connections\n",
                (long)rl.rlim_cur, n);
        return 1;
    }

    char req[512];
    int reqlen = snprintf(req, sizeof(req),
                          "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: sleep_load\r\n\r\n",
                          path, addr, port);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "sleep_load: bad address %s\n", addr);
        return 2;
    }

    struct conn *cs = calloc((size_t)n, sizeof(*cs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || ep < 0)
        die("setup");

    char mem0[128] = "", mem1[128] = "";
    long hwm_kb = 0;
    double cpu0 = 0, cpu1 = 0;
    if (pid) {
        proc_mem(pid, mem0, sizeof(mem0), NULL);
        cpu0 = proc_cpu(pid);
    }
    long long ovf0 = tcpext("ListenOverflows"), drop0 = tcpext("ListenDrops");

    long started = 0, connecting = 0, finished = 0, failed = 0;
    double t0 = now_s(), last_wave = t0, t_all_connected = 0;
    struct epoll_event evs[512];

    while (finished + failed < n) {
        /* A new wave when the last one has connected (and the gap has passed). */
        if (started < n && connecting == 0 && (now_s() - last_wave) * 1000 >= (double)gap_ms) {
            long k = n - started < wave ? n - started : wave;
            last_wave = now_s();
            for (long i = 0; i < k; i++) {
                struct conn *c = &cs[started++];
                c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (c->fd < 0)
                    die("socket");
                int one = 1;
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c->t_start = now_s();
                int rc = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
                if (rc < 0 && errno != EINPROGRESS) {
                    perror("connect");
                    c->st = S_FAILED;
                    failed++;
                    continue;
                }
                c->st = S_CONNECTING;
                connecting++;
                struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                    die("epoll_ctl");
            }
        }
        if (now_s() - t0 > (double)timeout_s) {
            fprintf(stderr, "sleep_load: timed out after %ld s\n", timeout_s);
            break;
        }
        int timeout = started < n && connecting == 0 ? 1 : 100;
        int m = epoll_wait(ep, evs, 512, timeout);
        if (m < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < m; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->st == S_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                connecting--;
                if (err) {
                    fprintf(stderr, "connect: %s\n", strerror(err));
                    c->st = S_FAILED;
                    failed++;
                    close(c->fd);
                    continue;
                }
                c->t_connected = now_s();
                if (started == n && connecting == 0)
                    t_all_connected = c->t_connected;
                if (send(c->fd, req, (size_t)reqlen, MSG_NOSIGNAL) != reqlen) {
                    perror("send");
                    c->st = S_FAILED;
                    failed++;
                    close(c->fd);
                    continue;
                }
                c->t_sent = now_s();
                c->st = S_READING;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            if (c->st != S_READING)
                continue;
            for (;;) {
                ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
                if (r > 0) {
                    c->len += (size_t)r;
                    parse(c);
                    if ((c->need && c->len >= c->need) || c->len >= sizeof(c->buf) - 1)
                        break;
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                /* closed or failed before the reply was whole */
                c->st = S_FAILED;
                failed++;
                break;
            }
            if (c->st == S_READING && c->need && c->len >= c->need) {
                c->t_done = now_s();
                c->st = S_DONE;
                finished++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            }
        }
    }
    double t_end = 0, t_first = cs[0].t_start;
    for (long i = 0; i < n; i++)
        if (cs[i].st == S_DONE && cs[i].t_done > t_end)
            t_end = cs[i].t_done;
    if (pid) {
        proc_mem(pid, mem1, sizeof(mem1), &hwm_kb);
        cpu1 = proc_cpu(pid);
    }
    long long ovf1 = tcpext("ListenOverflows"), drop1 = tcpext("ListenDrops");

    double *lat = malloc(sizeof(double) * (size_t)(finished ? finished : 1));
    double *slat = malloc(sizeof(double) * (size_t)(finished ? finished : 1));
    long k = 0, st200 = 0, stother = 0;
    for (long i = 0; i < n; i++)
        if (cs[i].st == S_DONE) {
            slat[k] = cs[i].t_done - cs[i].t_sent;
            lat[k++] = cs[i].t_done - cs[i].t_start;
            if (cs[i].status == 200)
                st200++;
            else
                stother++;
        }
    qsort(lat, (size_t)k, sizeof(double), cmp_double);
    qsort(slat, (size_t)k, sizeof(double), cmp_double);

    printf("connections   %ld (waves of %ld, gap %ld ms), %s http://%s:%d%s\n", n, wave, gap_ms,
           "GET", addr, port, path);
    printf("completed     %ld (status 200: %ld, other: %ld), failed %ld\n", finished, st200,
           stother, n - finished);
    if (finished) {
        printf("wall          %.3f s  (first connect to last reply)\n", t_end - t_first);
        if (t_all_connected > 0)
            printf("connects      %.3f s  (first connect to last connect completed)\n",
                   t_all_connected - t_first);
        printf("latency       min %.3f  median %.3f  p99 %.3f  max %.3f s  (connect to reply)\n",
               lat[0], lat[k / 2], lat[(long)((double)(k - 1) * 0.99)], lat[k - 1]);
        printf("from send     min %.3f  median %.3f  p99 %.3f  max %.3f s  (request sent to reply)\n",
               slat[0], slat[k / 2], slat[(long)((double)(k - 1) * 0.99)], slat[k - 1]);
    }
    printf("listen queue  ListenOverflows +%lld, ListenDrops +%lld\n", ovf1 - ovf0, drop1 - drop0);
    if (pid)
        printf("server pid %d  before: %s; after: %s; CPU time during the run %.2f s\n", pid,
               mem0, mem1, cpu1 - cpu0);
    if (pid)
        printf("RESULT conns=%ld ok=%ld wall=%.3f min=%.3f med=%.3f p99=%.3f max=%.3f hwm_mb=%.1f "
               "overflows=%lld cpu_s=%.2f\n",
               n, st200, finished ? t_end - t_first : 0, k ? lat[0] : 0, k ? lat[k / 2] : 0,
               k ? lat[(long)((double)(k - 1) * 0.99)] : 0, k ? lat[k - 1] : 0,
               hwm_kb / 1024.0, ovf1 - ovf0, cpu1 - cpu0);

    struct linger lg = {1, 0};
    for (long i = 0; i < n; i++)
        if (cs[i].st != S_IDLE && cs[i].st != S_FAILED) {
            setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(cs[i].fd);
        }
    return finished == n && stother == 0 ? 0 : 1;
}
