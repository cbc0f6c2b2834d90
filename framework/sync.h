/*
 * sync.h - what the awaiting SDK calls of sync.c and threadpool.c share.
 */
#ifndef SQUALL_SYNC_H
#define SQUALL_SYNC_H

/*
 * Whether the running coroutine may await now: 0, or the error an await must return at once
 * (SQ_EINVAL outside a coroutine, SQ_ECANCELED once it is cancelled unless it has nocancel
 * set, SQ_ETIMEDOUT once its deadline has passed), with sq_errmsg() naming what (e.g.
 * "sq_lock_acquire"). Checked before a fast path too, so that "once cancelled, every later
 * await fails" holds even when the await would not have had to wait.
 */
int sync_await_check(const char *what);

#endif
