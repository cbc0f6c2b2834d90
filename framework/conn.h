/*
 * conn.h - one client connection: read, parse, dispatch, write; keep-alive, pipelining.
 */
#ifndef SQUALL_CONN_H
#define SQUALL_CONN_H

#include <stdint.h>
#include <sys/socket.h>

struct server;
struct conn;
struct sq_req;

/* Takes over an accepted, non-blocking socket and starts serving it. */
void conn_start(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peerlen);

/* Closes the connection at once and frees (or keeps for reuse) its memory. */
void conn_close(struct conn *c);

/* Gives r's handler a deadline ms from now: its awaits then fail with SQ_ETIMEDOUT, and the
   client gets the route's timeout reply at that time. r is a connection's request whose
   handler's coroutine is running (the timeout link calls it). */
void conn_arm_timeout(struct sq_req *r, uint64_t ms);

/* For a graceful shutdown: closes c if it is idle; otherwise its current request is the
   last one (conn_dispatch sees srv->draining). */
void conn_drain(struct conn *c);

/* The next connection in the server's list (for walking it while closing some). */
struct conn *conn_next(const struct conn *c);

/* Frees the connections kept for reuse. */
void conn_free_spares(struct server *srv);

#endif
