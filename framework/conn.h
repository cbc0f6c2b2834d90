/*
 * conn.h - one client connection: read, parse, dispatch, write; keep-alive, pipelining.
 */
#ifndef SQUALL_CONN_H
#define SQUALL_CONN_H

#include <sys/socket.h>

struct server;
struct conn;

/* Takes over an accepted, non-blocking socket and starts serving it. */
void conn_start(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peerlen);

/* Closes the connection at once and frees (or keeps for reuse) its memory. */
void conn_close(struct conn *c);

/* Frees the connections kept for reuse. */
void conn_free_spares(struct server *srv);

#endif
