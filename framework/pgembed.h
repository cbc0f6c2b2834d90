/*
 * pgembed.h - the private PostgreSQL cluster behind `[database] dsn = embedded`: the host
 * creates it on first use, starts it before serving and stops it when it exits, so a new user
 * gets a working database with zero setup (make run; the tests do the same in a temp dir).
 *
 * One cluster per directory, laid out as:
 *     DIR/data/             the cluster (PGDATA); DIR/data/pgembed.conf is rewritten at
 *                           every start with the settings below
 *     DIR/.s.PGSQL.5432     its socket: the only way in (listen_addresses = '', no TCP)
 *     DIR/postgres.log      the server's log
 *     DIR/pgembed.log       what initdb and pg_ctl printed
 *     DIR/pgembed.owner     the pid of the host that must stop the running server
 *     DIR/pgembed.lock      held (flock) while a host starts or stops the cluster
 *
 * Access control is DIR's permissions: local socket connections are trusted, so DIR is kept
 * at mode 0700 (pgembed_start tightens a looser one). PostgreSQL comes from the highest version
 * under /usr/lib/postgresql/N/bin (the version the cluster was created with, when that one is
 * installed), else from initdb on PATH. Run as root, the cluster runs as the system user
 * postgres (PostgreSQL refuses root): DIR is chowned to it and every directory above DIR must
 * be searchable by it. Otherwise it runs as the current user.
 *
 * Several hosts and test binaries may run clusters at once in different directories (all on
 * port 5432: the socket's directory tells them apart). Not thread-safe; meant for main().
 * The programs run as children that pgembed waits for by pid: SIGCHLD must not be ignored.
 */
#ifndef SQUALL_PGEMBED_H
#define SQUALL_PGEMBED_H

#include <stddef.h>

struct pgembed;

/*
 * Creates dir if needed (and its cluster with initdb on first use: UTF8, trust auth for local
 * socket connections only, since only the socket's directory permissions grant access), starts
 * it with the socket in dir itself, waits until it accepts connections, and returns a handle.
 * Blocks (the host calls it before serving). If a cluster is already running in dir (a host that
 * was killed left it), reuses it. Returns NULL with one line in err on failure (never prints).
 *
 * dir may be relative (it is resolved once, here). The handle owns the running server, and
 * pgembed_stop stops it, when this call started it, or when it found it running but left by
 * a host that is gone (the pid in DIR/pgembed.owner is dead): a cluster of ours outliving its
 * host is a leftover of a crash. A server whose owner still runs (another handle, in this
 * process or another) is only borrowed. Concurrent starts on one dir serialize on its lock.
 * Errors name the directory and, when a program failed, quote its most telling line and the
 * log to read. Free the handle with pgembed_stop.
 */
struct pgembed *pgembed_start(const char *dir, char *err, size_t errlen);

/*
 * The libpq conninfo that reaches it, e.g. "host=/abs/dir port=5432 dbname=postgres
 * user=postgres" (user is the cluster's superuser: the system user it runs as).
 * Owned by e; valid until pgembed_stop(e).
 */
const char *pgembed_dsn(const struct pgembed *e);

/*
 * Stops the cluster if this handle owns it (see pgembed_start) and is called from the process
 * that started it (a forked worker freeing its copy stops nothing): a fast shutdown (open
 * sessions are ended) that waits until the server is gone. Then frees e. NULL is a no-op.
 * A failure to stop is not reported: the next pgembed_start reuses what is left.
 */
void pgembed_stop(struct pgembed *e);

#endif
