/*
 * log.h - the error log (stderr) and the access log.
 */
#ifndef SQUALL_LOG_H
#define SQUALL_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include "squall.h"

/* Messages above this level are dropped; SQ_LOG_INFO unless SQUALL_LOG=debug|warn|error. */
void log_init(void);

/* Appends one formatted line to err[0..errlen) (lines separated by '\n'): how start-up
   errors are gathered, all of them in one run. */
void err_add(char *err, size_t errlen, const char *fmt, ...) SQ_PRINTF(3, 4);

/* One line on stderr: "2026-11-21T15:34:00Z [level] who: message". who may be NULL. */
void log_msg(int level, const char *who, const char *fmt, ...) SQ_PRINTF(3, 4);
void log_vmsg(int level, const char *who, const char *fmt, va_list ap) SQ_PRINTF(3, 0);

#define log_error(...) log_msg(SQ_LOG_ERROR, "squall", __VA_ARGS__)
#define log_warn(...) log_msg(SQ_LOG_WARN, "squall", __VA_ARGS__)
#define log_info(...) log_msg(SQ_LOG_INFO, "squall", __VA_ARGS__)

/* Buffered access log: lines are written when the buffer fills and by accesslog_flush. */
struct accesslog;

/* target: "stdout" or a file path (opened for append). NULL with a message in err. */
struct accesslog *accesslog_open(const char *target, char *err, size_t errlen);
void accesslog_write(struct accesslog *al, const char *line, size_t len);

/* "21/Nov/2026:15:34:00 +0000" for now (wall-clock seconds), rendered once per second. */
const char *accesslog_time(struct accesslog *al, time_t now);
void accesslog_flush(struct accesslog *al);
void accesslog_close(struct accesslog *al);

#include "xalloc.h" /* every host module that logs also allocates */

#endif
