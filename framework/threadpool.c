/*
 * threadpool.c - the threads behind sq_run_in_thread (see threadpool.h).
 *
 * Jobs go to the workers through one mutex+condvar queue. A finished job goes onto the done
 * list and its worker writes the pool's eventfd; the event on the loop's base then wakes the
 * waiting coroutines in the order their jobs finished. The event is added only while jobs
 * are in flight, so an idle pool does not keep the loop running.
 *
 * A job is heap-allocated and freed on the loop; the coroutine waits on a job_wait on its
 * own stack, which the loop fills in before waking it. The park can end only that way: the
 * coroutine has nocancel set and its deadline lifted for the duration, since the memory fn
 * uses must stay valid until it returns.
 */
#include "threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "async.h"
#include "log.h"
#include "request.h"
#include "sync.h"

/* What a coroutine waiting for its job parks on (on its stack). */
struct job_wait {
    struct coro_wait w;
    void *result;
};

struct job {
    struct job *next;
    void *(*fn)(void *arg);
    void *arg;
    void *result;
    struct job_wait *waiter;
};

struct threadpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* workers wait here for a job or stop */
    struct job *todo, *todo_tail; /* under mu */
    struct job *done, *done_tail; /* under mu */
    bool stop;                    /* under mu */
    int efd;                      /* written by workers once per finished job */
    struct event ev;              /* efd readable, on the loop's base */
    size_t inflight;              /* submitted and not yet woken; loop thread only */
    pthread_t *threads;
    unsigned nthreads;
};

/* Appends j to the list head..tail. */
static void job_append(struct job **head, struct job **tail, struct job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* Frees a list of jobs. */
static void job_free_all(struct job *j)
{
    while (j) {
        struct job *next = j->next;
        free(j);
        j = next;
    }
}

/* A worker: runs jobs until stop, posting each one to the done list and the eventfd. */
static void *worker_main(void *arg)
{
    struct threadpool *p = arg;
    const uint64_t one = 1;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->todo && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop)
            break;
        struct job *j = p->todo;
        if (!(p->todo = j->next))
            p->todo_tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->result = j->fn(j->arg);
        pthread_mutex_lock(&p->mu);
        job_append(&p->done, &p->done_tail, j);
        if (write(p->efd, &one, sizeof(one)) < 0) {
            /* EAGAIN only if the counter were near 2^64: the loop is woken already */
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* On the loop: hands every finished job's result to its coroutine and wakes it. */
static void on_jobs_done(evutil_socket_t fd, short what, void *arg)
{
    struct threadpool *p = arg;
    uint64_t n;

    if (read(p->efd, &n, sizeof(n)) < 0) {
        /* EAGAIN: an earlier call took the jobs this write announced */
    }
    pthread_mutex_lock(&p->mu);
    struct job *j = p->done;
    p->done = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        struct job *next = j->next;
        j->waiter->result = j->result;
        coro_wake(&j->waiter->w, 0);
        free(j);
        if (--p->inflight == 0)
            event_del(&p->ev);
        j = next;
    }
}

/* Starts up to n workers with asynchronous signals blocked (they are the loop thread's);
   returns how many started. */
static unsigned start_workers(struct threadpool *p, unsigned n)
{
    sigset_t set, old;

    sigfillset(&set);
    sigdelset(&set, SIGSEGV); /* faults in fn must still kill (and be reported) */
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    sigdelset(&set, SIGABRT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    while (p->nthreads < n && pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) == 0)
        p->nthreads++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p->nthreads;
}

/* Starts the pool: eventfd, its (not yet added) event, the workers. */
struct threadpool *threadpool_new(struct event_base *base, unsigned nthreads)
{
    struct threadpool *p = xcalloc(1, sizeof(*p));

    nthreads = nthreads ? nthreads : 1;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        errmsg_set("thread pool: eventfd: %s", strerror(errno));
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    event_assign(&p->ev, base, p->efd, EV_READ | EV_PERSIST, on_jobs_done, p);
    p->threads = xcalloc(nthreads, sizeof(*p->threads));
    if (start_workers(p, nthreads) == 0) {
        errmsg_set("thread pool: cannot start a thread");
        threadpool_free(p);
        return NULL;
    }
    if (p->nthreads < nthreads)
        log_warn("thread pool: started %u of %u threads", p->nthreads, nthreads);
    return p;
}

/* Stops and joins the workers, then frees what is left (see threadpool.h). */
void threadpool_free(struct threadpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    event_del(&p->ev);
    job_free_all(p->todo);
    job_free_all(p->done);
    close(p->efd);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

/* Queues j for the workers (on the loop thread). */
static void threadpool_submit(struct threadpool *p, struct job *j)
{
    if (p->inflight++ == 0)
        event_add(&p->ev, NULL);
    pthread_mutex_lock(&p->mu);
    job_append(&p->todo, &p->todo_tail, j);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Parks co on w until its job wakes it: with nocancel set and no deadline meanwhile, so
   nothing else ends the park. Then fails as any await would if either took effect. */
static int park_for_job(struct coro *co, struct coro_wait *w)
{
    bool nocancel = co->nocancel;
    uint64_t deadline = co->deadline;

    co->nocancel = true;
    co->deadline = 0;
    coro_park(w, -1, 0);
    co->nocancel = nocancel;
    co->deadline = deadline;
    return sync_await_check("sq_run_in_thread");
}

/* Runs fn(arg) on the loop's pool (started here on first use) and waits for it, whatever
   happens meanwhile; see squall.h. *result is NULL when fn did not run. */
int sq_run_in_thread(void *(*fn)(void *arg), void *arg, void **result)
{
    struct job_wait jw = {.result = NULL};
    int rc = sync_await_check("sq_run_in_thread");

    if (result)
        *result = NULL;
    if (rc)
        return rc;
    if (!fn) {
        errmsg_set("sq_run_in_thread: fn is NULL");
        return SQ_EINVAL;
    }
    struct coro *co = coro_current();
    struct loop *l = co->loop;
    if (!l->pool && !(l->pool = threadpool_new(l->base, l->threads)))
        return SQ_ENOMEM;
    struct job *j = xcalloc(1, sizeof(*j));
    j->fn = fn;
    j->arg = arg;
    j->waiter = &jw;
    threadpool_submit(l->pool, j);
    rc = park_for_job(co, &jw.w);
    if (result)
        *result = jw.result;
    return rc;
}
