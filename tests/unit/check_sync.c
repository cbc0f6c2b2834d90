/*
 * check_sync.c - framework/sync.c (locks, events, semaphores, queues) and
 * framework/threadpool.c (sq_run_in_thread), driven through the SDK.
 *
 * Each test runs a coroutine with sq_run_sync and starts concurrent ones with sq_op_start.
 * Checks inside coroutines use EXPECT, which records the first failure and returns -1 (no
 * longjmp off a coroutine stack, so the suite also runs with CK_FORK=no under valgrind);
 * the test body then asserts that nothing failed.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "squall.h"
#include "../check_main.h"
#include "coro_expect.h"

/* What the concurrent coroutines of one test share. */
struct shared {
    sq_lock *lock;
    sq_event *event;
    sq_semaphore *sem;
    sq_queue *queue;
    int inside, max_inside;
    int order[16], norder;
};

/* One concurrent coroutine: who it is and what it saw. */
struct actor {
    struct shared *s;
    int id;
    int64_t timeout;
    int rc;
    double elapsed;
    void *item;
};

/* Enters a critical section: counts who is inside at once and in what order they came. */
static void enter(struct shared *s, int id)
{
    if (++s->inside > s->max_inside)
        s->max_inside = s->inside;
    s->order[s->norder++] = id;
}

/* Starts n ops of fn over actors[0..n) (ids 0..n-1, all sharing s) into ops. */
static int start_actors(sq_op **ops, struct actor *actors, size_t n, sq_op_fn fn, struct shared *s,
                        int64_t timeout)
{
    for (size_t i = 0; i < n; i++) {
        actors[i] = (struct actor){.s = s, .id = (int)i, .timeout = timeout, .rc = 1};
        ops[i] = sq_op_start(fn, &actors[i]);
        if (!ops[i])
            return -1;
    }
    return 0;
}

/* ---- Lock ---- */

/* Takes the lock, holds it across a sleep, releases it. */
static int lock_holder(void *arg, void **result)
{
    struct actor *a = arg;
    double t0 = now_ms();

    a->rc = sq_lock_acquire(a->s->lock, a->timeout);
    a->elapsed = now_ms() - t0;
    if (a->rc != 0)
        return 0;
    enter(a->s, a->id);
    sq_sleep(5);
    a->s->inside--;
    sq_lock_release(a->s->lock);
    return 0;
}

/* Five waiters get the lock one at a time, in the order they asked. */
static int lock_fifo_main(void *arg)
{
    struct shared s = {.lock = sq_lock_new()};
    struct actor actors[5];
    sq_op *ops[5];

    EXPECT_EQ(sq_lock_acquire(s.lock, -1), 0);
    EXPECT_EQ(start_actors(ops, actors, 5, lock_holder, &s, -1), 0);
    EXPECT_EQ(sq_sleep(20), 0); /* all five queue up, in start order */
    EXPECT_EQ(s.norder, 0);
    EXPECT_EQ(sq_lock_try(s.lock), SQ_EAGAIN);
    sq_lock_release(s.lock);
    EXPECT_EQ(sq_lock_try(s.lock), SQ_EAGAIN); /* no barging: actor 0 has it already */
    EXPECT_EQ(sq_await_all(ops, 5), 0);
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ(actors[i].rc, 0);
        EXPECT_EQ(s.order[i], i);
    }
    EXPECT_EQ(s.norder, 5);
    EXPECT_EQ(s.max_inside, 1);
    EXPECT_EQ(sq_lock_try(s.lock), 0);
    EXPECT_EQ(sq_lock_try(s.lock), SQ_EAGAIN);
    sq_lock_release(s.lock);
    sq_lock_free(s.lock);
    return 0;
}

START_TEST(test_lock_fifo)
{
    run(lock_fifo_main, NULL);
}
END_TEST

/* A timed-out acquire fails after about its timeout and leaves the queue. */
static int lock_timeout_main(void *arg)
{
    struct shared s = {.lock = sq_lock_new()};
    struct actor actors[2];
    sq_op *ops[2];

    EXPECT_EQ(sq_lock_acquire(s.lock, -1), 0);
    double t0 = now_ms();
    EXPECT_EQ(sq_lock_acquire(s.lock, 50), SQ_ETIMEDOUT); /* not reentrant */
    double dt = now_ms() - t0;
    EXPECT_CMP(dt, >=, 45);
    EXPECT_CMP(dt, <, 500);
    EXPECT(strstr(sq_errmsg(), "timed out") != NULL);
    EXPECT_EQ(sq_lock_acquire(s.lock, 0), SQ_ETIMEDOUT);

    /* Actor 0 gives up while queued first; the release must skip it for actor 1. */
    EXPECT_EQ(start_actors(ops, actors, 1, lock_holder, &s, 20), 0);
    EXPECT_EQ(start_actors(ops + 1, actors + 1, 1, lock_holder, &s, -1), 0);
    actors[1].id = 1;
    EXPECT_EQ(sq_sleep(60), 0);
    sq_lock_release(s.lock);
    EXPECT_EQ(sq_await_all(ops, 2), 0);
    EXPECT_EQ(actors[0].rc, SQ_ETIMEDOUT);
    EXPECT_CMP(actors[0].elapsed, >=, 15);
    EXPECT_EQ(actors[1].rc, 0);
    EXPECT_EQ(s.norder, 1);
    EXPECT_EQ(s.order[0], 1);
    EXPECT_EQ(sq_lock_try(s.lock), 0); /* actor 1 released it: nothing was lost */
    sq_lock_release(s.lock);
    sq_lock_free(s.lock);
    return 0;
}

START_TEST(test_lock_timeout)
{
    run(lock_timeout_main, NULL);
}
END_TEST

/* The holder's release and a waiter's timeout fall due together: whichever wins, the lock
   is never lost (a second waiter without a timeout gets it, and it ends free). */
static int lock_race_main(void *arg)
{
    for (int round = 0; round < 5; round++) {
        struct shared s = {.lock = sq_lock_new()};
        struct actor actors[2];
        sq_op *ops[2];

        EXPECT_EQ(sq_lock_acquire(s.lock, -1), 0);
        EXPECT_EQ(start_actors(ops, actors, 2, lock_holder, &s, 10), 0);
        actors[1].timeout = -1;
        EXPECT_EQ(sq_sleep(10), 0);
        sq_lock_release(s.lock);
        EXPECT_EQ(sq_await_all(ops, 2), 0);
        EXPECT(actors[0].rc == 0 || actors[0].rc == SQ_ETIMEDOUT);
        EXPECT_EQ(actors[1].rc, 0);
        EXPECT_EQ(s.max_inside, 1);
        EXPECT_EQ(sq_lock_try(s.lock), 0);
        sq_lock_release(s.lock);
        sq_lock_free(s.lock);
    }
    return 0;
}

START_TEST(test_lock_release_timeout_race)
{
    run(lock_race_main, NULL);
}
END_TEST

/* A waiter handed the lock and cancelled before it runs still has the lock (result 0);
   one cancelled while queued leaves the queue. */
static int lock_cancel_main(void *arg)
{
    struct shared s = {.lock = sq_lock_new()};
    struct actor actors[2];
    sq_op *ops[2];

    EXPECT_EQ(sq_lock_acquire(s.lock, -1), 0);
    EXPECT_EQ(start_actors(ops, actors, 2, lock_holder, &s, -1), 0);
    EXPECT_EQ(sq_sleep(10), 0);
    sq_op_cancel(ops[1]);    /* queued: leaves with SQ_ECANCELED */
    sq_lock_release(s.lock); /* hands it to actor 0 ... */
    sq_op_cancel(ops[0]);    /* ... which is cancelled before it runs */
    EXPECT_EQ(sq_await_all(ops, 2), 0);
    EXPECT_EQ(actors[0].rc, 0);
    EXPECT_EQ(actors[1].rc, SQ_ECANCELED);
    EXPECT_EQ(s.norder, 1);
    EXPECT_EQ(sq_lock_try(s.lock), 0);
    sq_lock_release(s.lock);
    sq_lock_free(s.lock);
    return 0;
}

START_TEST(test_lock_cancel)
{
    run(lock_cancel_main, NULL);
}
END_TEST

START_TEST(test_outside_coroutine)
{
    sq_lock *l = sq_lock_new();
    sq_event *e = sq_event_new();
    sq_semaphore *s = sq_semaphore_new(1);
    sq_queue *q = sq_queue_new(1);
    void *item = NULL;

    ck_assert_int_eq(sq_lock_acquire(l, -1), SQ_EINVAL);
    ck_assert_int_eq(sq_lock_try(l), 0);
    sq_lock_release(l);
    ck_assert_int_eq(sq_event_wait(e, 0), SQ_EINVAL);
    sq_event_set(e);
    ck_assert_int_eq(sq_event_is_set(e), 1);
    ck_assert_int_eq(sq_semaphore_acquire(s, -1), SQ_EINVAL);
    sq_semaphore_release(s);
    ck_assert_int_eq(sq_queue_put(q, &item, -1), SQ_EINVAL);
    ck_assert_int_eq(sq_queue_put_nowait(q, &item), 0);
    ck_assert_int_eq(sq_queue_put_nowait(q, &item), SQ_EAGAIN);
    ck_assert_int_eq(sq_queue_get(q, &item, -1), SQ_EINVAL);
    ck_assert_int_eq(sq_queue_join(q, -1), SQ_EINVAL);
    ck_assert_int_eq(sq_queue_get_nowait(q, &item), 0);
    ck_assert_ptr_eq(item, &item);
    ck_assert_int_eq(sq_run_in_thread(NULL, NULL, &item), SQ_EINVAL);
    ck_assert_ptr_null(item);
    sq_lock_free(l);
    sq_event_free(e);
    sq_semaphore_free(s);
    sq_queue_free(q);
    sq_lock_free(NULL);
    sq_event_free(NULL);
    sq_semaphore_free(NULL);
    sq_queue_free(NULL);
}
END_TEST

/* ---- Event ---- */

/* Waits for the event. */
static int event_waiter(void *arg, void **result)
{
    struct actor *a = arg;
    double t0 = now_ms();

    a->rc = sq_event_wait(a->s->event, a->timeout);
    a->elapsed = now_ms() - t0;
    return 0;
}

/* set wakes every waiter; a set event does not wait; clear; timeout; free. */
static int event_main(void *arg)
{
    struct shared s = {.event = sq_event_new()};
    struct actor actors[3];
    sq_op *ops[3];

    EXPECT_EQ(sq_event_is_set(s.event), 0);
    EXPECT_EQ(start_actors(ops, actors, 3, event_waiter, &s, -1), 0);
    EXPECT_EQ(sq_sleep(20), 0);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(sq_op_done(ops[i]), 0);
    sq_event_set(s.event);
    sq_event_clear(s.event); /* those already woken still go */
    EXPECT_EQ(sq_await_all(ops, 3), 0);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(actors[i].rc, 0);

    sq_event_set(s.event);
    EXPECT_EQ(sq_event_is_set(s.event), 1);
    double t0 = now_ms();
    EXPECT_EQ(sq_event_wait(s.event, -1), 0);
    EXPECT_EQ(sq_event_wait(s.event, 0), 0);
    EXPECT_CMP(now_ms() - t0, <, 20);

    sq_event_clear(s.event);
    EXPECT_EQ(sq_event_is_set(s.event), 0);
    t0 = now_ms();
    EXPECT_EQ(sq_event_wait(s.event, 30), SQ_ETIMEDOUT);
    EXPECT_CMP(now_ms() - t0, >=, 25);
    EXPECT_CMP(now_ms() - t0, <, 500);

    /* Freeing it wakes a waiter with SQ_ECANCELED. */
    EXPECT_EQ(start_actors(ops, actors, 1, event_waiter, &s, -1), 0);
    EXPECT_EQ(sq_sleep(10), 0);
    sq_event_free(s.event);
    EXPECT_EQ(sq_await_all(ops, 1), 0);
    EXPECT_EQ(actors[0].rc, SQ_ECANCELED);
    return 0;
}

START_TEST(test_event)
{
    run(event_main, NULL);
}
END_TEST

/* ---- Semaphore ---- */

/* Takes a unit, holds it across a sleep, gives it back. */
static int sem_user(void *arg, void **result)
{
    struct actor *a = arg;

    a->rc = sq_semaphore_acquire(a->s->sem, a->timeout);
    if (a->rc != 0)
        return 0;
    enter(a->s, a->id);
    sq_sleep(10);
    a->s->inside--;
    sq_semaphore_release(a->s->sem);
    return 0;
}

/* Two units admit two at a time, in order; timeouts; free. */
static int semaphore_main(void *arg)
{
    struct shared s = {.sem = sq_semaphore_new(2)};
    struct actor actors[6];
    sq_op *ops[6];

    EXPECT_EQ(start_actors(ops, actors, 6, sem_user, &s, -1), 0);
    EXPECT_EQ(sq_await_all(ops, 6), 0);
    for (int i = 0; i < 6; i++) {
        EXPECT_EQ(actors[i].rc, 0);
        EXPECT_EQ(s.order[i], i);
    }
    EXPECT_EQ(s.max_inside, 2);

    /* Two units back: both taken at once, the third waits and times out. */
    EXPECT_EQ(sq_semaphore_acquire(s.sem, 0), 0);
    EXPECT_EQ(sq_semaphore_acquire(s.sem, 0), 0);
    double t0 = now_ms();
    EXPECT_EQ(sq_semaphore_acquire(s.sem, 30), SQ_ETIMEDOUT);
    EXPECT_CMP(now_ms() - t0, >=, 25);
    sq_semaphore_release(s.sem);
    EXPECT_EQ(sq_semaphore_acquire(s.sem, 0), 0);

    /* A waiter that timed out is skipped: the unit goes to the next one. */
    EXPECT_EQ(start_actors(ops, actors, 2, sem_user, &s, 10), 0);
    actors[1].timeout = -1;
    EXPECT_EQ(sq_sleep(30), 0);
    sq_semaphore_release(s.sem);
    EXPECT_EQ(sq_semaphore_acquire(s.sem, 0), SQ_ETIMEDOUT); /* no barging */
    EXPECT_EQ(sq_await_all(ops, 2), 0);
    EXPECT_EQ(actors[0].rc, SQ_ETIMEDOUT);
    EXPECT_EQ(actors[1].rc, 0);
    EXPECT_EQ(sq_semaphore_acquire(s.sem, 0), 0); /* actor 1 gave it back */

    /* Freeing it wakes a waiter with SQ_ECANCELED. */
    EXPECT_EQ(start_actors(ops, actors, 1, sem_user, &s, -1), 0);
    EXPECT_EQ(sq_sleep(10), 0);
    sq_semaphore_free(s.sem);
    EXPECT_EQ(sq_await_all(ops, 1), 0);
    EXPECT_EQ(actors[0].rc, SQ_ECANCELED);
    return 0;
}

START_TEST(test_semaphore)
{
    run(semaphore_main, NULL);
}
END_TEST

/* ---- Queue ---- */

/* Items come out in the order they went in, across ring wrap and growth. */
static int queue_fifo_main(void *arg)
{
    static int values[100];
    sq_queue *q = sq_queue_new(0);
    void *item;

    EXPECT_EQ(sq_queue_get_nowait(q, &item), SQ_EAGAIN);
    for (int i = 0; i < 100; i++)
        EXPECT_EQ(i % 2 ? sq_queue_put(q, &values[i], -1) : sq_queue_put_nowait(q, &values[i]), 0);
    EXPECT_EQ(sq_queue_size(q), 100);
    for (int i = 0; i < 100; i++) {
        EXPECT_EQ(i % 2 ? sq_queue_get(q, &item, 0) : sq_queue_get_nowait(q, &item), 0);
        EXPECT(item == &values[i]);
        if (i == 49) /* wraps around the ring (128 slots), then grows it while wrapped */
            for (int j = 0; j < 90; j++)
                EXPECT_EQ(sq_queue_put_nowait(q, &values[j]), 0);
    }
    for (int j = 0; j < 90; j++) {
        EXPECT_EQ(sq_queue_get_nowait(q, &item), 0);
        EXPECT(item == &values[j]);
    }
    EXPECT_EQ(sq_queue_size(q), 0);
    double t0 = now_ms();
    EXPECT_EQ(sq_queue_get(q, &item, 30), SQ_ETIMEDOUT);
    EXPECT_CMP(now_ms() - t0, >=, 25);
    EXPECT_CMP(now_ms() - t0, <, 500);
    sq_queue_free(q);
    return 0;
}

START_TEST(test_queue_fifo)
{
    run(queue_fifo_main, NULL);
}
END_TEST

/* Puts its item. */
static int queue_putter(void *arg, void **result)
{
    struct actor *a = arg;

    a->rc = sq_queue_put(a->s->queue, a->item, a->timeout);
    return 0;
}

/* Gets an item into a->item. */
static int queue_getter(void *arg, void **result)
{
    struct actor *a = arg;

    a->rc = sq_queue_get(a->s->queue, &a->item, a->timeout);
    return 0;
}

/* A bounded queue: _nowait errors, a put waiting for room, puts handed to getters. */
static int queue_bounded_main(void *arg)
{
    int x, y, z;
    struct shared s = {.queue = sq_queue_new(2)};
    struct actor actors[2];
    sq_op *ops[2];
    void *item;

    EXPECT_EQ(sq_queue_put_nowait(s.queue, &x), 0);
    EXPECT_EQ(sq_queue_put(s.queue, &y, 0), 0);
    EXPECT_EQ(sq_queue_put_nowait(s.queue, &z), SQ_EAGAIN);
    EXPECT_EQ(sq_queue_put(s.queue, &z, 20), SQ_ETIMEDOUT);
    EXPECT_EQ(sq_queue_size(s.queue), 2);

    /* A put into a full queue waits for a get, which lets its item in behind the rest. */
    EXPECT_EQ(start_actors(ops, actors, 1, queue_putter, &s, -1), 0);
    actors[0].item = &z;
    EXPECT_EQ(sq_sleep(20), 0);
    EXPECT_EQ(sq_op_done(ops[0]), 0);
    EXPECT_EQ(sq_queue_get_nowait(s.queue, &item), 0);
    EXPECT(item == &x);
    EXPECT_EQ(sq_queue_size(s.queue), 2);
    EXPECT_EQ(sq_await_all(ops, 1), 0);
    EXPECT_EQ(actors[0].rc, 0);
    EXPECT_EQ(sq_queue_get(s.queue, &item, -1), 0);
    EXPECT(item == &y);
    EXPECT_EQ(sq_queue_get(s.queue, &item, -1), 0);
    EXPECT(item == &z);

    /* A put with a getter waiting goes straight to it. */
    EXPECT_EQ(start_actors(ops, actors, 2, queue_getter, &s, -1), 0);
    EXPECT_EQ(sq_sleep(10), 0);
    EXPECT_EQ(sq_queue_put_nowait(s.queue, &x), 0);
    EXPECT_EQ(sq_queue_put_nowait(s.queue, &y), 0);
    EXPECT_EQ(sq_queue_size(s.queue), 0);
    EXPECT_EQ(sq_await_all(ops, 2), 0);
    EXPECT(actors[0].rc == 0 && actors[0].item == &x);
    EXPECT(actors[1].rc == 0 && actors[1].item == &y);
    sq_queue_free(s.queue);
    return 0;
}

START_TEST(test_queue_bounded)
{
    run(queue_bounded_main, NULL);
}
END_TEST

#define NITEMS 200
#define NCONSUMERS 3

/* Takes numbers until NULL, checking each consumer sees them in increasing order. */
static int consumer(void *arg, void **result)
{
    struct actor *a = arg;
    intptr_t last = 0, sum = 0;
    void *item;

    for (;;) {
        EXPECT_EQ(sq_queue_get(a->s->queue, &item, -1), 0);
        sq_sleep(0);
        sq_queue_task_done(a->s->queue);
        if (!item)
            break;
        EXPECT_CMP((intptr_t)item, >, last);
        last = (intptr_t)item;
        sum += last;
        a->s->norder++;
    }
    a->item = (void *)sum;
    return 0;
}

/* One producer, three consumers, a queue of four: every item once, then join. */
static int producer_consumer_main(void *arg)
{
    struct shared s = {.queue = sq_queue_new(4)};
    struct actor actors[NCONSUMERS];
    sq_op *ops[NCONSUMERS];
    intptr_t sum = 0;

    EXPECT_EQ(start_actors(ops, actors, NCONSUMERS, consumer, &s, -1), 0);
    for (intptr_t i = 1; i <= NITEMS; i++)
        EXPECT_EQ(sq_queue_put(s.queue, (void *)i, -1), 0);
    for (int i = 0; i < NCONSUMERS; i++)
        EXPECT_EQ(sq_queue_put(s.queue, NULL, -1), 0);
    EXPECT_EQ(sq_queue_join(s.queue, 5000), 0);
    EXPECT_EQ(s.norder, NITEMS);
    EXPECT_EQ(sq_await_all(ops, NCONSUMERS), 0);
    for (int i = 0; i < NCONSUMERS; i++) {
        EXPECT_EQ(sq_op_status(ops[i]), 0);
        EXPECT_CMP((intptr_t)actors[i].item, >, 0); /* every consumer got some */
        sum += (intptr_t)actors[i].item;
    }
    EXPECT_EQ(sum, NITEMS * (NITEMS + 1) / 2);
    sq_queue_free(s.queue);
    return 0;
}

START_TEST(test_queue_producer_consumer)
{
    run(producer_consumer_main, NULL);
}
END_TEST

/* Waits for the queue to be joined. */
static int joiner(void *arg, void **result)
{
    struct actor *a = arg;

    a->rc = sq_queue_join(a->s->queue, a->timeout);
    return 0;
}

/* join waits for task_done on every item put; extra task_done calls are ignored. */
static int queue_join_main(void *arg)
{
    struct shared s = {.queue = sq_queue_new(0)};
    struct actor actors[1];
    sq_op *ops[1];
    void *item;

    EXPECT_EQ(sq_queue_join(s.queue, -1), 0); /* nothing put yet */
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(sq_queue_put_nowait(s.queue, &s), 0);
    EXPECT_EQ(start_actors(ops, actors, 1, joiner, &s, -1), 0);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(sq_sleep(10), 0);
        EXPECT_EQ(sq_op_done(ops[0]), 0);
        EXPECT_EQ(sq_queue_get_nowait(s.queue, &item), 0);
        sq_queue_task_done(s.queue);
    }
    EXPECT_EQ(sq_await_all(ops, 1), 0);
    EXPECT_EQ(actors[0].rc, 0);

    sq_queue_task_done(s.queue); /* one too many: ignored, the count stays 0 */
    EXPECT_EQ(sq_queue_join(s.queue, 0), 0);
    EXPECT_EQ(sq_queue_put_nowait(s.queue, &s), 0);
    double t0 = now_ms();
    EXPECT_EQ(sq_queue_join(s.queue, 30), SQ_ETIMEDOUT); /* not -1 + 1 = 0 */
    EXPECT_CMP(now_ms() - t0, >=, 25);
    EXPECT_EQ(sq_queue_get_nowait(s.queue, &item), 0);
    EXPECT_EQ(sq_queue_join(s.queue, 0), SQ_ETIMEDOUT); /* taken but not done */
    sq_queue_task_done(s.queue);
    EXPECT_EQ(sq_queue_join(s.queue, 0), 0);
    sq_queue_free(s.queue);
    return 0;
}

START_TEST(test_queue_join)
{
    run(queue_join_main, NULL);
}
END_TEST

/* Freeing a queue wakes its parked getter, putter and joiner with SQ_ECANCELED. */
static int queue_free_main(void *arg)
{
    struct shared s = {.queue = sq_queue_new(1)};
    struct shared full = {.queue = sq_queue_new(1)};
    struct actor actors[3];
    sq_op *ops[3];

    EXPECT_EQ(sq_queue_put_nowait(full.queue, &s), 0);
    EXPECT_EQ(start_actors(ops, actors, 1, queue_getter, &s, -1), 0);
    EXPECT_EQ(start_actors(ops + 1, actors + 1, 1, queue_putter, &full, -1), 0);
    EXPECT_EQ(start_actors(ops + 2, actors + 2, 1, joiner, &full, -1), 0);
    EXPECT_EQ(sq_sleep(10), 0);
    sq_queue_free(s.queue);
    sq_queue_free(full.queue);
    EXPECT_EQ(sq_await_all(ops, 3), 0);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(actors[i].rc, SQ_ECANCELED);
    return 0;
}

START_TEST(test_queue_free_wakes)
{
    run(queue_free_main, NULL);
}
END_TEST

/* ---- Deadlines ---- */

/* The coroutine's deadline ends lock and queue waits with SQ_ETIMEDOUT. */
static int deadline_main(void *arg)
{
    sq_lock *l = sq_lock_new();
    sq_queue *q = sq_queue_new(0);
    void *item;

    EXPECT_EQ(sq_lock_acquire(l, -1), 0);
    EXPECT_EQ(sq_set_deadline(40), 0);
    double t0 = now_ms();
    EXPECT_EQ(sq_lock_acquire(l, -1), SQ_ETIMEDOUT);
    EXPECT_CMP(now_ms() - t0, >=, 35);
    EXPECT_CMP(now_ms() - t0, <, 500);
    /* Past the deadline every await fails at once, even one that would not wait. */
    sq_lock_release(l);
    EXPECT_EQ(sq_lock_acquire(l, -1), SQ_ETIMEDOUT);
    EXPECT_EQ(sq_queue_put(q, &item, -1), SQ_ETIMEDOUT);
    EXPECT_EQ(sq_queue_put_nowait(q, &item), 0); /* never waits: still works */
    EXPECT_EQ(sq_queue_get_nowait(q, &item), 0);

    EXPECT_EQ(sq_set_deadline(30), 0);
    t0 = now_ms();
    EXPECT_EQ(sq_queue_get(q, &item, 1000), SQ_ETIMEDOUT); /* the deadline comes first */
    EXPECT_CMP(now_ms() - t0, >=, 25);
    EXPECT_CMP(now_ms() - t0, <, 500);
    EXPECT_EQ(sq_set_deadline(0), 0);
    EXPECT_EQ(sq_lock_acquire(l, -1), 0);
    sq_lock_release(l);
    sq_lock_free(l);
    sq_queue_free(q);
    return 0;
}

START_TEST(test_deadline)
{
    run(deadline_main, NULL);
}
END_TEST

/* ---- sq_run_in_thread ---- */

struct job {
    pthread_t thread;
    unsigned sleep_ms;
    int value;
};

/* A thread job: notes its thread, sleeps, returns &j->value. */
static void *job_fn(void *arg)
{
    struct job *j = arg;

    j->thread = pthread_self();
    if (j->sleep_ms)
        usleep(j->sleep_ms * 1000);
    return &j->value;
}

/* The job runs on another thread and its result comes back. */
static int thread_result_main(void *arg)
{
    struct job j = {.value = 42};
    void *result = NULL;

    EXPECT_EQ(sq_run_in_thread(job_fn, &j, &result), 0);
    EXPECT(result == &j.value);
    EXPECT(!pthread_equal(j.thread, pthread_self()));
    EXPECT_EQ(sq_run_in_thread(job_fn, &j, NULL), 0);
    EXPECT_EQ(sq_run_in_thread(NULL, &j, &result), SQ_EINVAL);
    EXPECT(result == NULL);
    return 0;
}

START_TEST(test_thread_result)
{
    run(thread_result_main, NULL);
}
END_TEST

/* An op that runs a job. */
static int thread_op(void *arg, void **result)
{
    return sq_run_in_thread(job_fn, arg, result);
}

/* Four 200 ms jobs on sq_run_sync's pool (one thread per CPU) take ceil(4 / CPUs) rounds:
   two on a machine with two CPUs (< 700 ms), not four. */
static int thread_parallel_main(void *arg)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int rounds = cpus >= 4 ? 1 : cpus >= 2 ? 2 : 4;
    struct job jobs[4];
    sq_op *ops[4];
    double t0 = now_ms();

    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){.sleep_ms = 200, .value = i};
        ops[i] = sq_op_start(thread_op, &jobs[i]);
        EXPECT(ops[i] != NULL);
    }
    EXPECT_EQ(sq_await_all(ops, 4), 0);
    double dt = now_ms() - t0;
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ(sq_op_status(ops[i]), 0);
        EXPECT(sq_op_result(ops[i]) == &jobs[i].value);
    }
    EXPECT_CMP(dt, >=, 195);
    EXPECT_CMP(dt, <, rounds * 200 + 300);
    return 0;
}

START_TEST(test_thread_parallel)
{
    run(thread_parallel_main, NULL);
}
END_TEST

/* A deadline or a cancellation during the job takes effect only once it has returned. */
static int thread_deadline_main(void *arg)
{
    struct job j = {.sleep_ms = 200, .value = 7};
    void *result = NULL;

    EXPECT_EQ(sq_set_deadline(50), 0);
    double t0 = now_ms();
    EXPECT_EQ(sq_run_in_thread(job_fn, &j, &result), SQ_ETIMEDOUT);
    EXPECT_CMP(now_ms() - t0, >=, 195);
    EXPECT(result == &j.value);
    EXPECT_EQ(sq_run_in_thread(job_fn, &j, &result), SQ_ETIMEDOUT); /* at once */
    EXPECT(result == NULL);
    EXPECT_EQ(sq_set_deadline(0), 0);

    j.sleep_ms = 150;
    sq_op *op = sq_op_start(thread_op, &j);
    EXPECT(op != NULL);
    EXPECT_EQ(sq_sleep(20), 0);
    t0 = now_ms();
    sq_op_cancel(op);
    EXPECT_EQ(sq_await_all(&op, 1), 0);
    EXPECT_CMP(now_ms() - t0, >=, 100);
    EXPECT_EQ(sq_op_status(op), SQ_ECANCELED);
    EXPECT(sq_op_result(op) == &j.value);
    return 0;
}

START_TEST(test_thread_deadline)
{
    run(thread_deadline_main, NULL);
}
END_TEST

/* Lock (and deadlines), event and semaphore, queue, thread pool. */
static Suite *sync_suite(void)
{
    Suite *s = suite_create("sync");
    TCase *lock = tcase_create("lock");
    TCase *event = tcase_create("event");
    TCase *queue = tcase_create("queue");
    TCase *thread = tcase_create("thread");

    tcase_set_timeout(lock, 10);
    tcase_add_test(lock, test_lock_fifo);
    tcase_add_test(lock, test_lock_timeout);
    tcase_add_test(lock, test_lock_release_timeout_race);
    tcase_add_test(lock, test_lock_cancel);
    tcase_add_test(lock, test_outside_coroutine);
    tcase_add_test(lock, test_deadline);
    suite_add_tcase(s, lock);
    tcase_set_timeout(event, 10);
    tcase_add_test(event, test_event);
    tcase_add_test(event, test_semaphore);
    suite_add_tcase(s, event);
    tcase_set_timeout(queue, 10);
    tcase_add_test(queue, test_queue_fifo);
    tcase_add_test(queue, test_queue_bounded);
    tcase_add_test(queue, test_queue_producer_consumer);
    tcase_add_test(queue, test_queue_join);
    tcase_add_test(queue, test_queue_free_wakes);
    suite_add_tcase(s, queue);
    tcase_set_timeout(thread, 20);
    tcase_add_test(thread, test_thread_result);
    tcase_add_test(thread, test_thread_parallel);
    tcase_add_test(thread, test_thread_deadline);
    suite_add_tcase(s, thread);
    return s;
}

int main(void)
{
    return check_run(sync_suite());
}
