/*
 * log.c - error log, access log and the host's aborting allocators.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = SQ_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(void)
{
    const char *env = getenv("SQUALL_LOG");

    for (int i = 0; env && i < 4; i++)
        if (strcmp(env, level_names[i]) == 0)
            log_level = i;
}

void log_vmsg(int level, const char *who, const char *fmt, va_list ap)
{
    char line[2048], stamp[32];
    time_t now = time(NULL);
    struct tm tm;

    if (level > log_level || level < 0)
        return;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(line, sizeof(line), "%s [%s] %s: ", stamp, level_names[level],
                     who ? who : "squall");
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line, so lines from several processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_msg(int level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, who, fmt, ap);
    va_end(ap);
}

#define ACCESSLOG_BUF 65536

struct accesslog {
    int fd;
    time_t stamp_sec;
    char stamp[32];
    size_t len;
    char buf[ACCESSLOG_BUF];
};

struct accesslog *accesslog_open(const char *target, char *err, size_t errlen)
{
    int fd = STDOUT_FILENO;

    if (strcmp(target, "stdout") != 0) {
        fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "access_log %s: %s", target, strerror(errno));
            return NULL;
        }
    }
    struct accesslog *al = xmalloc(sizeof(*al));
    al->fd = fd;
    al->len = 0;
    al->stamp[0] = '\0';
    return al;
}

void accesslog_flush(struct accesslog *al)
{
    size_t off = 0;

    while (off < al->len) {
        ssize_t n = write(al->fd, al->buf + off, al->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full disk loses log lines, never requests */
        off += (size_t)n;
    }
    al->len = 0;
}

void accesslog_write(struct accesslog *al, const char *line, size_t len)
{
    if (al->len + len > sizeof(al->buf))
        accesslog_flush(al);
    if (len > sizeof(al->buf))
        len = sizeof(al->buf);
    memcpy(al->buf + al->len, line, len);
    al->len += len;
}

const char *accesslog_time(struct accesslog *al, time_t now)
{
    struct tm tm;

    if (al->stamp_sec != now || !al->stamp[0]) {
        gmtime_r(&now, &tm);
        strftime(al->stamp, sizeof(al->stamp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
        al->stamp_sec = now;
    }
    return al->stamp;
}

void accesslog_close(struct accesslog *al)
{
    if (!al)
        return;
    accesslog_flush(al);
    if (al->fd != STDOUT_FILENO)
        close(al->fd);
    free(al);
}

/* Appends one formatted line to err (lines separated by '\n'). */
void err_add(char *err, size_t errlen, const char *fmt, ...)
{
    size_t n = strlen(err);
    va_list ap;

    if (n + 2 >= errlen)
        return;
    if (n)
        err[n++] = '\n';
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
}
