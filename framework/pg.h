/*
 * pg.h - the PostgreSQL service behind the sq_pg_* SDK (squall.h): one pool of libpq
 * connections per loop, driven non-blocking on the loop, with prepared statements cached per
 * connection, transactions pinned to a coroutine, pipelined batches, and one shared LISTEN
 * connection.
 *
 * The host makes the pool at start when [database] is configured (server.c) and attaches it
 * to its loop (loop->pg), where the SDK finds it: whatever thread runs the loop, its
 * coroutines use its pool. Connections open on demand, up to pool_size.
 */
#ifndef SQUALL_PG_H
#define SQUALL_PG_H

#include <stddef.h>

#include "config.h"

struct loop;
struct pg_pool;
struct sq_plugin_ctx;

/*
 * A pool for db's settings that connects with dsn (a libpq conninfo or URI: the caller has
 * resolved "embedded" already), attached to l (l->pg, which must be NULL). Opens nothing
 * yet. Returns NULL with one line in err when dsn does not parse.
 */
struct pg_pool *pg_pool_new(struct loop *l, const struct config_database *db, const char *dsn,
                            char *err, size_t errlen);

/* Closes every connection (the LISTEN one too), detaches p from its loop and frees it (NULL
   is fine). Call once no coroutine uses it any more (after loop_drain), on the loop's
   thread. */
void pg_pool_free(struct pg_pool *p);

/* Stops what plugin p subscribed with sq_pg_listen (plugin_unload calls it before fini).
   Works without a pool (then there is nothing to stop). */
void pg_listen_stop_plugin(struct sq_plugin_ctx *p);

#endif
