/*
 * listen.h - the listening sockets of [server] listen. The single process binds them itself;
 * with workers the master binds them once and every worker accepts on its copy.
 */
#ifndef SQUALL_LISTEN_H
#define SQUALL_LISTEN_H

#include <stdint.h>

#include "config.h"

/* Binds every cfg->listen address (non-blocking, close-on-exec) into fds[0..nlisten).
   Returns 0, or -1 with "file:line: cannot listen on ..." in err and nothing left open. */
int listen_open(const struct config *cfg, int *fds, char *err, size_t errlen);

/* The port fd is bound to (what port 0 became); 0 if unknown. */
uint16_t listen_port(int fd);

#endif
