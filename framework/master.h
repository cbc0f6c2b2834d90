/*
 * master.h - serving with worker processes (workers = N > 1).
 */
#ifndef SQUALL_MASTER_H
#define SQUALL_MASTER_H

#include <stddef.h>

#include "config.h"

/*
 * Binds cfg's listeners, starts the embedded PostgreSQL if configured, forks cfg->workers
 * workers (each a server on the inherited sockets) and supervises them until a SIGTERM /
 * SIGINT (graceful) or SIGQUIT (immediate) stop; SIGHUP is passed on to the workers. Takes
 * over cfg. Returns the process's exit status: 0 after a requested stop, 1 when the host
 * could not start (then err says why, or the failing worker has printed it).
 */
int master_run(struct config *cfg, char *err, size_t errlen);

#endif
