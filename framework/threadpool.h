/*
 * threadpool.h - the threads behind sq_run_in_thread ([server] threads).
 *
 * A loop starts its pool on the first sq_run_in_thread (loop->pool) and frees it in
 * loop_free. Jobs are run by the pool's threads; their completions come back to the loop
 * through an eventfd watched on the loop's event base, and wake the coroutines waiting.
 */
#ifndef SQUALL_THREADPOOL_H
#define SQUALL_THREADPOOL_H

struct event_base;
struct threadpool;

/* A pool of nthreads threads (at least one) reporting to base, which must outlive it.
   NULL, with sq_errmsg() saying why, when no thread or eventfd could be made. */
struct threadpool *threadpool_new(struct event_base *base, unsigned nthreads);

/* Stops the threads, waiting for the jobs they are running, and frees p (NULL is fine).
   Jobs not started yet are dropped and their coroutines never woken: call it only once no
   coroutine waits on p (loop_free after loop_drain returned 0). */
void threadpool_free(struct threadpool *p);

#endif
