/*
 * sync.c - locks, events, semaphores and queues between the loop's coroutines (squall.h).
 *
 * Each object keeps FIFO wait lists of parked coroutines (async.h). What a waiter waits for
 * is handed to it directly by whoever lets it go: a released lock or semaphore unit passes
 * to the oldest waiter without ever becoming free (no barging), a put item goes straight to
 * the oldest getter, and a get from a full queue moves the oldest putter's item in. A woken
 * waiter therefore reads only its own coro_wait (on its stack) and never the object again,
 * which is what lets _free wake every waiter with SQ_ECANCELED and free the object at once.
 *
 * A waiter whose park ends otherwise (timeout, deadline, cancellation) is taken off its list
 * by coro_park before anyone can hand it anything, so a release then goes to the next one
 * and nothing is lost. One that was handed its lock, unit or item and is cancelled before it
 * runs keeps it: the wake came first and its result stays 0.
 *
 * Every awaiting call checks sync_await_check first, fast path included: SQ_EINVAL outside a
 * coroutine, and at once SQ_ECANCELED / SQ_ETIMEDOUT once cancelled or past the deadline.
 * The calls that never wait (try, set, clear, release, _nowait, task_done) work anywhere on
 * the loop's thread.
 */
#include "sync.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "async.h"
#include "request.h"
#include "xalloc.h"

/* What an await's error means, for sq_errmsg(). */
static const char *error_text(int rc)
{
    switch (rc) {
    case SQ_EINVAL: return "not called from a coroutine";
    case SQ_ETIMEDOUT: return "timed out";
    default: return "cancelled";
    }
}

/* See sync.h: the checks coro_park makes, before any fast path. */
int sync_await_check(const char *what)
{
    int rc = coro_await_check();

    if (rc)
        errmsg_set("%s: %s", what, error_text(rc));
    return rc;
}

/* Queues w on list and parks the running coroutine on it. Returns the park's result (0 when
   woken by the object), with sq_errmsg() set on failure. Does not touch list afterwards. */
static int wait_on(struct wait_list *list, struct coro_wait *w, int64_t timeout_ms,
                   const char *what)
{
    wait_list_push(list, w);
    int rc = coro_park(w, timeout_ms, SQ_ETIMEDOUT);
    if (rc < 0)
        errmsg_set("%s: %s", what, error_text(rc));
    return rc;
}

/* Wakes every waiter on list with result, oldest first. */
static void wake_all(struct wait_list *list, int result)
{
    struct coro_wait *w;

    while ((w = wait_list_pop(list)))
        coro_wake(w, result);
}

/* ---- Lock ---- */

struct sq_lock {
    struct wait_list waiters;
    bool held; /* stays true while it passes from a releaser to a waiter */
};

/* A new, free lock; NULL on out-of-memory. */
sq_lock *sq_lock_new(void)
{
    return calloc(1, sizeof(sq_lock));
}

/* Frees l (NULL is fine); its waiters wake with SQ_ECANCELED. */
void sq_lock_free(sq_lock *l)
{
    if (!l)
        return;
    wake_all(&l->waiters, SQ_ECANCELED);
    free(l);
}

/* Takes l at once when free, else waits in line; on 0 the releaser handed it over. */
int sq_lock_acquire(sq_lock *l, int64_t timeout_ms)
{
    struct coro_wait w = {0};
    int rc = sync_await_check("sq_lock_acquire");

    if (rc)
        return rc;
    if (!l->held) {
        l->held = true;
        return 0;
    }
    return wait_on(&l->waiters, &w, timeout_ms, "sq_lock_acquire");
}

/* Takes l only if it is free right now. */
int sq_lock_try(sq_lock *l)
{
    if (l->held) {
        errmsg_set("sq_lock_try: the lock is held");
        return SQ_EAGAIN;
    }
    l->held = true;
    return 0;
}

/* Hands l to its oldest waiter, or frees it. Releasing a free lock does nothing. */
void sq_lock_release(sq_lock *l)
{
    struct coro_wait *w = wait_list_pop(&l->waiters);

    if (w)
        coro_wake(w, 0);
    else
        l->held = false;
}

/* ---- Event ---- */

struct sq_event {
    struct wait_list waiters;
    bool set;
};

/* A new event, clear; NULL on out-of-memory. */
sq_event *sq_event_new(void)
{
    return calloc(1, sizeof(sq_event));
}

/* Frees e (NULL is fine); its waiters wake with SQ_ECANCELED. */
void sq_event_free(sq_event *e)
{
    if (!e)
        return;
    wake_all(&e->waiters, SQ_ECANCELED);
    free(e);
}

/* Sets the flag and lets every waiter go (a clear right after does not hold them back). */
void sq_event_set(sq_event *e)
{
    e->set = true;
    wake_all(&e->waiters, 0);
}

/* Clears the flag: later waits wait again. */
void sq_event_clear(sq_event *e)
{
    e->set = false;
}

/* Whether the flag is set. */
int sq_event_is_set(const sq_event *e)
{
    return e->set;
}

/* Returns at once when set, else waits for sq_event_set. */
int sq_event_wait(sq_event *e, int64_t timeout_ms)
{
    struct coro_wait w = {0};
    int rc = sync_await_check("sq_event_wait");

    if (rc || e->set)
        return rc;
    return wait_on(&e->waiters, &w, timeout_ms, "sq_event_wait");
}

/* ---- Semaphore ---- */

struct sq_semaphore {
    struct wait_list waiters; /* only while value is 0 */
    unsigned value;
};

/* A new semaphore holding value units; NULL on out-of-memory. */
sq_semaphore *sq_semaphore_new(unsigned value)
{
    sq_semaphore *s = calloc(1, sizeof(*s));

    if (s)
        s->value = value;
    return s;
}

/* Frees s (NULL is fine); its waiters wake with SQ_ECANCELED. */
void sq_semaphore_free(sq_semaphore *s)
{
    if (!s)
        return;
    wake_all(&s->waiters, SQ_ECANCELED);
    free(s);
}

/* Takes a unit at once when there is one, else waits in line; on 0 a releaser handed one. */
int sq_semaphore_acquire(sq_semaphore *s, int64_t timeout_ms)
{
    struct coro_wait w = {0};
    int rc = sync_await_check("sq_semaphore_acquire");

    if (rc)
        return rc;
    if (s->value > 0) {
        s->value--;
        return 0;
    }
    return wait_on(&s->waiters, &w, timeout_ms, "sq_semaphore_acquire");
}

/* Hands a unit to the oldest waiter, or adds it (saturating at UINT_MAX). */
void sq_semaphore_release(sq_semaphore *s)
{
    struct coro_wait *w = wait_list_pop(&s->waiters);

    if (w)
        coro_wake(w, 0);
    else if (s->value < UINT_MAX)
        s->value++;
}

/* ---- Queue ---- */

/*
 * Getters wait only while the buffer is empty and putters only while it is full, so a put
 * with a getter waiting goes straight to it, and a get from a full queue lets the oldest
 * putter's item in. unfinished counts items put and not yet marked done (asyncio.Queue).
 */
struct sq_queue {
    void **items; /* ring of cap slots; count of them from head */
    size_t cap, head, count;
    size_t maxsize;    /* 0 = unbounded */
    size_t unfinished; /* put and not yet task_done */
    struct wait_list getters, putters, joiners;
};

/* A waiting getter or putter: the item handed to it, or the one it brings. */
struct queue_wait {
    struct coro_wait w;
    void *item;
};

/* The queue_wait around a coro_wait popped from a queue's list. */
static struct queue_wait *queue_wait_of(struct coro_wait *w)
{
    return (struct queue_wait *)((char *)w - offsetof(struct queue_wait, w));
}

/* Whether a put would have to wait (never for an unbounded queue). */
static bool queue_full(const sq_queue *q)
{
    return q->maxsize && q->count >= q->maxsize;
}

/* Doubles the ring (from 8, at most maxsize slots), keeping the items in order. */
static void queue_grow(sq_queue *q)
{
    size_t cap = q->cap ? q->cap * 2 : 8;

    if (q->maxsize && cap > q->maxsize)
        cap = q->maxsize;
    void **items = xcalloc(cap, sizeof(*items));
    for (size_t i = 0; i < q->count; i++)
        items[i] = q->items[(q->head + i) % q->cap];
    free(q->items);
    q->items = items;
    q->cap = cap;
    q->head = 0;
}

/* Appends item to the buffer (not full) and counts it unfinished. */
static void queue_push(sq_queue *q, void *item)
{
    if (q->count == q->cap)
        queue_grow(q);
    q->items[(q->head + q->count) % q->cap] = item;
    q->count++;
    q->unfinished++;
}

/* Puts item without waiting: to the oldest getter, else into the buffer; false when full. */
static bool queue_offer(sq_queue *q, void *item)
{
    struct coro_wait *w = wait_list_pop(&q->getters);

    if (w) {
        queue_wait_of(w)->item = item;
        q->unfinished++;
        coro_wake(w, 0);
        return true;
    }
    if (queue_full(q))
        return false;
    queue_push(q, item);
    return true;
}

/* Takes the oldest item without waiting (false when empty); then lets the oldest putter's
   item into the room it made. */
static bool queue_take(sq_queue *q, void **item)
{
    if (q->count == 0)
        return false;
    *item = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    struct coro_wait *w = wait_list_pop(&q->putters);
    if (w) {
        queue_push(q, queue_wait_of(w)->item);
        coro_wake(w, 0);
    }
    return true;
}

/* A new queue of at most maxsize items (0 = unbounded); NULL on out-of-memory. */
sq_queue *sq_queue_new(size_t maxsize)
{
    sq_queue *q = calloc(1, sizeof(*q));

    if (q)
        q->maxsize = maxsize;
    return q;
}

/* Frees q (NULL is fine), not its items; getters, putters and joiners wake with
   SQ_ECANCELED. */
void sq_queue_free(sq_queue *q)
{
    if (!q)
        return;
    wake_all(&q->getters, SQ_ECANCELED);
    wake_all(&q->putters, SQ_ECANCELED);
    wake_all(&q->joiners, SQ_ECANCELED);
    free(q->items);
    free(q);
}

/* Appends item, waiting in line for room when full; on 0 it is in (or with a getter). */
int sq_queue_put(sq_queue *q, void *item, int64_t timeout_ms)
{
    struct queue_wait qw = {.item = item};
    int rc = sync_await_check("sq_queue_put");

    if (rc || queue_offer(q, item))
        return rc;
    return wait_on(&q->putters, &qw.w, timeout_ms, "sq_queue_put");
}

/* Appends item at once, or SQ_EAGAIN when full. */
int sq_queue_put_nowait(sq_queue *q, void *item)
{
    if (queue_offer(q, item))
        return 0;
    errmsg_set("sq_queue_put_nowait: the queue is full");
    return SQ_EAGAIN;
}

/* Takes the oldest item, waiting in line for one when empty. *item is set only on 0. */
int sq_queue_get(sq_queue *q, void **item, int64_t timeout_ms)
{
    struct queue_wait qw = {0};
    int rc = sync_await_check("sq_queue_get");

    if (rc || queue_take(q, item))
        return rc;
    rc = wait_on(&q->getters, &qw.w, timeout_ms, "sq_queue_get");
    if (rc == 0)
        *item = qw.item;
    return rc;
}

/* Takes the oldest item at once, or SQ_EAGAIN when empty. */
int sq_queue_get_nowait(sq_queue *q, void **item)
{
    if (queue_take(q, item))
        return 0;
    errmsg_set("sq_queue_get_nowait: the queue is empty");
    return SQ_EAGAIN;
}

/* One item fewer unfinished; at 0 the joiners go. More calls than items put are ignored
   (the count stays 0) rather than an error: there is no way to report one from a void. */
void sq_queue_task_done(sq_queue *q)
{
    if (q->unfinished == 0)
        return;
    if (--q->unfinished == 0)
        wake_all(&q->joiners, 0);
}

/* Returns at once when nothing is unfinished, else waits until task_done brings it to 0. */
int sq_queue_join(sq_queue *q, int64_t timeout_ms)
{
    struct coro_wait w = {0};
    int rc = sync_await_check("sq_queue_join");

    if (rc || q->unfinished == 0)
        return rc;
    return wait_on(&q->joiners, &w, timeout_ms, "sq_queue_join");
}

/* Items in the buffer (not counting those waiting putters bring). */
size_t sq_queue_size(const sq_queue *q)
{
    return q->count;
}
