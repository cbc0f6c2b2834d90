/*
 * check_async.c - framework/async.c and framework/timer.c (the coroutine runtime: sleeping,
 * callbacks, timers, periodic runs, tasks, operations, deadlines, cancellation), driven
 * through the SDK.
 *
 * Each test runs a coroutine with sq_run_sync and starts concurrent ones with sq_op_start
 * and sq_spawn. Checks inside coroutines use EXPECT, which records the first failure and
 * returns -1 (no longjmp off a coroutine stack, so the suite also runs with CK_FORK=no under
 * valgrind); the test body then asserts that nothing failed. Callbacks (which cannot return
 * an error) only record what they saw; a coroutine checks it.
 *
 * Times are measured on CLOCK_MONOTONIC. Three tests pin down that timed things never end
 * early (test_sleep_after_busy_turn, test_timers_after_busy_turn,
 * test_timed_waits_never_early); elsewhere lower bounds allow a few ms (tol()), and upper
 * bounds are loose, looser still under valgrind.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "squall.h"
#include "../check_main.h"
#include "coro_expect.h"

/* lo <= x < hi */
#define EXPECT_RANGE(x, lo, hi)                                                                    \
    do {                                                                                           \
        EXPECT_CMP(x, >=, lo);                                                                     \
        EXPECT_CMP(x, <, hi);                                                                      \
    } while (0)
#define EXPECT_STR_HAS(s, sub)                                                                     \
    do {                                                                                           \
        const char *s_ = (s);                                                                      \
        if (!s_ || !strstr(s_, sub)) {                                                             \
            if (!failure[0])                                                                       \
                snprintf(failure, sizeof failure, "line %d: \"%s\" does not contain \"%s\"",       \
                         __LINE__, s_ ? s_ : "(null)", sub);                                       \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* Like run, with the process's stderr (where the log goes) captured into out[0..cap). */
static void run_capture(sq_task_fn fn, void *arg, char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);

    ck_assert_ptr_nonnull(tmp);
    ck_assert_int_ge(saved, 0);
    fflush(stderr);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    failure[0] = '\0';
    int rc = sq_run_sync(fn, arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    ck_assert_msg(failure[0] == '\0', "%s", failure);
    ck_assert_int_eq(rc, 0);
}

/* How much looser upper time bounds are: valgrind runs everything many times slower. */
static double slack(void)
{
    return RUNNING_ON_VALGRIND ? 10.0 : 1.0;
}

/*
 * How early a timed wait may end in the tests that do not target that: the loop's clock
 * counts whole ms and is read once per loop turn (test_timed_waits_never_early and the
 * busy-turn tests pin down how early is too early), and under valgrind a coroutine resumes
 * well after its loop turn began.
 */
static double tol(void)
{
    return RUNNING_ON_VALGRIND ? 10.0 : 5.0;
}

/* Burns ms of CPU without yielding to the loop. */
static void busy_ms(double ms)
{
    double end = now_ms() + ms;

    while (now_ms() < end)
        ;
}

/* One concurrent coroutine: what it is told to do and what it saw. */
struct actor {
    int id;
    int sleep_ms;
    int fail_code;    /* returned after the sleep when non-zero */
    int rc;           /* its sleep's result */
    int rc2;          /* a second await's result (cleanup) */
    int ran, cleaned; /* it started; its code after the await ran */
    double started, ended, elapsed;
    char *shared; /* memory of its parent it writes to after awaiting */
};

/* Sleeps a->sleep_ms; its result is a; fails with a->fail_code when set. */
static int sleeper(void *arg, void **result)
{
    struct actor *a = arg;

    a->ran = 1;
    a->started = now_ms();
    a->rc = sq_sleep((uint64_t)a->sleep_ms);
    a->ended = now_ms();
    a->elapsed = a->ended - a->started;
    *result = a;
    if (a->fail_code) {
        sq_errmsg_set("actor %d failed", a->id);
        return a->fail_code;
    }
    return a->rc;
}

/* ---- Sleeping ---- */

static int sleep_duration_main(void *arg)
{
    static const int ms[] = {1, 5, 20, 50, 120};

    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        double t0 = now_ms();
        EXPECT_EQ(sq_sleep((uint64_t)ms[i]), 0);
        double dt = now_ms() - t0;
        EXPECT_RANGE(dt, ms[i] - tol(), ms[i] + 60 * slack());
    }
    return 0;
}

START_TEST(test_sleep_duration)
{
    run(sleep_duration_main, NULL);
}
END_TEST

/* An op that burns CPU for a while without awaiting. */
static int burner(void *arg, void **result)
{
    busy_ms(*(double *)arg);
    return 0;
}

/* A sleep starting late in a loop turn (after another coroutine burnt CPU in the same turn)
   still lasts the whole time asked for, counted from the call. */
static int sleep_after_busy_main(void *arg)
{
    double burn = 80;
    struct actor a = {.sleep_ms = 50};
    sq_op *ops[2];

    ops[0] = sq_op_start(burner, &burn); /* both run in the same turn, burner first */
    ops[1] = sq_op_start(sleeper, &a);
    EXPECT(ops[0] && ops[1]);
    EXPECT_EQ(sq_await_all(ops, 2), 0);
    EXPECT_EQ(a.rc, 0);
    EXPECT_RANGE(a.elapsed, 50, 50 + 60 * slack());
    return 0;
}

START_TEST(test_sleep_after_busy_turn)
{
    run(sleep_after_busy_main, NULL);
}
END_TEST

/* Blocks its thread for a while: its completion wakes the loop at no particular time. */
static void *blocker(void *arg)
{
    usleep((useconds_t)(size_t)arg);
    return NULL;
}

struct earliness {
    int sleeps, deadlines;              /* how many ended early */
    double worst_sleep, worst_deadline; /* the shortest of each, in ms */
};

/* Thirty rounds of: a loop turn that begins at an odd time (an I/O wakeup), two sleeps of
   5 and 20 ms and a deadline of 30 ms started in it; the 5 ms one wakes the loop before
   the others are due. None may end early, measured from the call, by a whole millisecond
   (the API's unit: the loop's clock counts whole ms, so a deadline may be less early). */
static int never_early_main(void *arg)
{
    struct earliness *e = arg;

    e->worst_sleep = e->worst_deadline = 1e9;
    for (int i = 0; i < 30; i++) {
        struct actor a[2] = {{.sleep_ms = 5}, {.sleep_ms = 20}};
        EXPECT_EQ(sq_run_in_thread(blocker, (void *)(size_t)(1000 + i * 137 % 3000), NULL), 0);
        double t0 = now_ms();
        EXPECT_EQ(sq_set_deadline(30), 0);
        sq_op *ops[2] = {sq_op_start(sleeper, &a[0]), sq_op_start(sleeper, &a[1])};
        EXPECT(ops[0] && ops[1]);
        EXPECT_EQ(sq_await_all(ops, 2), 0);
        EXPECT_EQ(sq_sleep(1000), SQ_ETIMEDOUT);
        double dt = now_ms() - t0;
        EXPECT_EQ(sq_set_deadline(0), 0);
        e->sleeps += a[1].elapsed <= 20 - 1;
        e->deadlines += dt <= 30 - 1;
        e->worst_sleep = a[1].elapsed < e->worst_sleep ? a[1].elapsed : e->worst_sleep;
        e->worst_deadline = dt < e->worst_deadline ? dt : e->worst_deadline;
    }
    return 0;
}

START_TEST(test_timed_waits_never_early)
{
    struct earliness e = {0};

    run(never_early_main, &e);
    ck_assert_msg(e.sleeps == 0 && e.deadlines == 0,
                  "ended 1 ms early or more: %d/30 sleeps of 20 ms (shortest %.3f ms), %d/30 "
                  "deadlines of 30 ms (shortest %.3f ms)",
                  e.sleeps, e.worst_sleep, e.deadlines, e.worst_deadline);
}
END_TEST

/* The other timed things started late in a busy loop turn: each lasts its 50 ms from the
   call too (elapsed[] gets what each took, in the order of enum probe_kind). */
enum probe_kind { PROBE_DEADLINE, PROBE_WITH_TIMEOUT, PROBE_CALL_LATER, PROBE_EVERY, NPROBES };
static const char *const probe_names[NPROBES] = {"sq_set_deadline", "sq_with_timeout",
                                                 "sq_call_later", "sq_every"};

struct probe {
    enum probe_kind kind;
    double t0, fired;
};

static void probe_fire(void *arg)
{
    struct probe *p = arg;

    if (!p->fired)
        p->fired = now_ms();
}

static int probe_tick(void *arg)
{
    probe_fire(arg);
    return 0;
}

static int probe_sleep_1000(void *arg)
{
    int rc = sq_sleep(1000);

    probe_fire(arg);
    return rc;
}

/* Starts one timed thing 50 ms from now and waits until it has fired. */
static int probe_fn(void *arg, void **result)
{
    struct probe *p = arg;
    sq_periodic *every = NULL;

    p->t0 = now_ms();
    switch (p->kind) {
    case PROBE_DEADLINE:
        sq_set_deadline(50);
        probe_sleep_1000(p);
        sq_set_deadline(0);
        break;
    case PROBE_WITH_TIMEOUT: sq_with_timeout(50, probe_sleep_1000, p); break;
    case PROBE_CALL_LATER: sq_call_later(50, probe_fire, p); break;
    case PROBE_EVERY: every = sq_every(50, 0, probe_tick, p); break;
    default: break;
    }
    for (int i = 0; i < 50 && !p->fired; i++)
        sq_sleep(10);
    sq_periodic_stop(every);
    return 0;
}

static int timers_after_busy_main(void *arg)
{
    double *elapsed = arg;
    double burn = 80;

    for (int k = 0; k < NPROBES; k++) {
        struct probe p = {.kind = (enum probe_kind)k};
        sq_op *ops[2] = {sq_op_start(burner, &burn), sq_op_start(probe_fn, &p)};
        EXPECT(ops[0] && ops[1]);
        EXPECT_EQ(sq_await_all(ops, 2), 0);
        EXPECT(p.fired > 0);
        elapsed[k] = p.fired - p.t0;
    }
    return 0;
}

START_TEST(test_timers_after_busy_turn)
{
    double elapsed[NPROBES];
    char msg[512] = "";
    size_t n = 0;

    run(timers_after_busy_main, elapsed);
    for (int k = 0; k < NPROBES; k++)
        if (elapsed[k] <= 50 - 1)
            n += (size_t)snprintf(msg + n, sizeof(msg) - n, " %s(50) fired after %.3f ms;",
                                  probe_names[k], elapsed[k]);
    ck_assert_msg(n == 0, "after a busy turn:%s", msg);
}
END_TEST

/* Appends id to the shared trace each step, yielding with sq_sleep(0) in between. */
struct trace {
    int ids[64];
    int n;
};

struct yielder {
    struct trace *t;
    int id, steps;
};

static int yielder_fn(void *arg, void **result)
{
    struct yielder *y = arg;

    for (int i = 0; i < y->steps; i++) {
        y->t->ids[y->t->n++] = y->id;
        if (sq_sleep(0) != 0)
            return -1;
    }
    return 0;
}

/* An op that only marks that it ran. */
static int marker(void *arg, void **result)
{
    (*(int *)arg)++;
    return 0;
}

static int sleep_zero_main(void *arg)
{
    int ran = 0;

    /* The op queued before the sleep runs before the sleeper resumes. */
    sq_op *op = sq_op_start(marker, &ran);
    EXPECT(op != NULL);
    EXPECT_EQ(ran, 0);
    double t0 = now_ms();
    EXPECT_EQ(sq_sleep(0), 0);
    EXPECT_EQ(ran, 1);
    EXPECT_CMP(now_ms() - t0, <, 20 * slack());

    /* Two coroutines yielding with sq_sleep(0) take turns: neither gets two steps ahead. */
    struct trace t = {.n = 0};
    struct yielder y[2] = {{&t, 0, 10}, {&t, 1, 10}};
    sq_op *ops[2] = {sq_op_start(yielder_fn, &y[0]), sq_op_start(yielder_fn, &y[1])};
    EXPECT(ops[0] && ops[1]);
    EXPECT_EQ(sq_await_all(ops, 2), 0);
    EXPECT_EQ(sq_op_status(ops[0]), 0);
    EXPECT_EQ(sq_op_status(ops[1]), 0);
    EXPECT_EQ(t.n, 20);
    int count[2] = {0, 0};
    for (int i = 0; i < t.n; i++) {
        count[t.ids[i]]++;
        EXPECT_CMP(abs(count[0] - count[1]), <=, 1);
    }
    return 0;
}

START_TEST(test_sleep_zero_yields)
{
    run(sleep_zero_main, NULL);
}
END_TEST

/* ---- Callbacks and one-shot timers ---- */

/* What a callback saw: when it ran and whether it was inside a coroutine. */
struct cb_log {
    int runs;
    double at[8];
    int sleep_rc; /* sq_sleep from the callback: it is no coroutine */
    int deadline_rc;
    void *alloc;  /* sq_coro_alloc from the callback */
    sq_op *op;    /* sq_op_start from the callback */
    int spawn_rc; /* sq_spawn from the callback (allowed) */
    int spawned_ran;
    int again;        /* schedule one more callback from the callback */
    sq_timer *cancel; /* a timer to cancel from the callback */
    int run_sync_rc;
};

static void cb_record(void *arg)
{
    struct cb_log *l = arg;

    if (l->runs < 8)
        l->at[l->runs] = now_ms();
    l->runs++;
}

static int spawned_task(void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static int never_runs(void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static int never_runs_op(void *arg, void **result)
{
    (*(int *)arg)++;
    return 0;
}

/* A callback that checks what may and may not be called from the loop's own context. */
static void cb_probe(void *arg)
{
    struct cb_log *l = arg;

    cb_record(l);
    l->sleep_rc = sq_sleep(1);
    l->deadline_rc = sq_set_deadline(10);
    l->alloc = sq_coro_alloc(16);
    l->op = sq_op_start(never_runs_op, &l->spawned_ran);
    l->spawn_rc = sq_spawn(spawned_task, &l->spawned_ran);
    l->run_sync_rc = sq_run_sync(never_runs, &l->spawned_ran);
    if (l->again) {
        l->again = 0;
        sq_add_callback(cb_record, l);
    }
}

static int add_callback_main(void *arg)
{
    struct cb_log l = {.again = 1};

    double t0 = now_ms();
    EXPECT_EQ(sq_add_callback(cb_probe, &l), 0);
    EXPECT_EQ(l.runs, 0); /* not run synchronously */
    EXPECT_EQ(sq_sleep(20), 0);
    EXPECT_EQ(l.runs, 2); /* the probe, then the callback it added */
    EXPECT_CMP(l.at[0] - t0, <, 15 * slack());
    EXPECT_CMP(l.at[1], >=, l.at[0]);
    /* In the loop's context: no awaiting, no coroutine memory, no ops; tasks are fine. */
    EXPECT_EQ(l.sleep_rc, SQ_EINVAL);
    EXPECT_EQ(l.deadline_rc, SQ_EINVAL);
    EXPECT(l.alloc == NULL);
    EXPECT(l.op == NULL);
    EXPECT_EQ(l.spawn_rc, 0);
    EXPECT_EQ(l.run_sync_rc, SQ_EINVAL);
    EXPECT_EQ(l.spawned_ran, 1); /* the spawned task only */
    return 0;
}

START_TEST(test_add_callback)
{
    run(add_callback_main, NULL);
}
END_TEST

struct ordered {
    int order[4];
    int n;
    double at[4];
};

struct ordered_cb {
    struct ordered *o;
    int id;
};

static void cb_ordered(void *arg)
{
    struct ordered_cb *c = arg;

    c->o->at[c->o->n] = now_ms();
    c->o->order[c->o->n++] = c->id;
}

static void cb_cancel(void *arg)
{
    struct cb_log *l = arg;

    cb_record(l);
    sq_timer_cancel(l->cancel);
    l->cancel = NULL;
}

static int call_later_main(void *arg)
{
    struct cb_log fire = {0}, cancelled = {0}, canceller = {0}, victim = {0};

    /* Fires once, after the delay. */
    double t0 = now_ms();
    EXPECT(sq_call_later(50, cb_record, &fire) != NULL);
    EXPECT_EQ(sq_sleep(20), 0);
    EXPECT_EQ(fire.runs, 0);
    EXPECT_EQ(sq_sleep(130), 0);
    EXPECT_EQ(fire.runs, 1);
    EXPECT_RANGE(fire.at[0] - t0, 50 - tol(), 50 + 60 * slack());

    /* Cancelled before it fires: never runs; also when cancelled by another callback. */
    sq_timer *t = sq_call_later(30, cb_record, &cancelled);
    EXPECT(t != NULL);
    sq_timer_cancel(t);
    sq_timer_cancel(NULL);
    canceller.cancel = sq_call_later(60, cb_record, &victim);
    EXPECT(canceller.cancel != NULL);
    EXPECT(sq_call_later(20, cb_cancel, &canceller) != NULL);
    EXPECT_EQ(sq_sleep(100), 0);
    EXPECT_EQ(cancelled.runs, 0);
    EXPECT_EQ(canceller.runs, 1);
    EXPECT_EQ(victim.runs, 0);

    /* Timers fire in the order of their delays, not of their creation. */
    struct ordered o = {.n = 0};
    struct ordered_cb cbs[3] = {{&o, 30}, {&o, 10}, {&o, 20}};
    t0 = now_ms();
    for (int i = 0; i < 3; i++)
        EXPECT(sq_call_later((uint64_t)cbs[i].id, cb_ordered, &cbs[i]) != NULL);
    EXPECT_EQ(sq_sleep(60), 0);
    EXPECT_EQ(o.n, 3);
    EXPECT_EQ(o.order[0], 10);
    EXPECT_EQ(o.order[1], 20);
    EXPECT_EQ(o.order[2], 30);
    for (int i = 0; i < 3; i++)
        EXPECT_CMP(o.at[i] - t0, >=, o.order[i] - tol());

    /* No callback: NULL, with a reason. */
    EXPECT(sq_call_later(10, NULL, NULL) == NULL);
    EXPECT_STR_HAS(sq_errmsg(), "no callback");
    return 0;
}

START_TEST(test_call_later)
{
    run(call_later_main, NULL);
}
END_TEST

/* ---- Periodic callbacks ---- */

#define TICKS_MAX 64

struct ticker {
    sq_periodic *p;
    int runs, inside, max_inside, finished;
    double start[TICKS_MAX];
    int sleep_ms;      /* each run awaits this long */
    int rc[TICKS_MAX]; /* each run's sleep result */
    int stop_on;       /* the run that stops p itself (1-based), 0: none */
    int fail;          /* runs fail with sq_errmsg() set */
};

static int tick(void *arg)
{
    struct ticker *t = arg;
    int i = t->runs++;

    if (i < TICKS_MAX)
        t->start[i] = now_ms();
    if (++t->inside > t->max_inside)
        t->max_inside = t->inside;
    if (t->stop_on && t->runs == t->stop_on)
        sq_periodic_stop(t->p);
    int rc = t->sleep_ms ? sq_sleep((uint64_t)t->sleep_ms) : 0;
    if (i < TICKS_MAX)
        t->rc[i] = rc;
    t->inside--;
    t->finished++;
    if (t->fail) {
        sq_errmsg_set("run %d failed", i + 1);
        return t->fail;
    }
    return 0;
}

/* Smallest and largest gap between consecutive run starts. */
static void gaps(const struct ticker *t, double *lo, double *hi)
{
    int n = t->runs < TICKS_MAX ? t->runs : TICKS_MAX;

    *lo = 1e9;
    *hi = 0;
    for (int i = 1; i < n; i++) {
        double g = t->start[i] - t->start[i - 1];
        *lo = g < *lo ? g : *lo;
        *hi = g > *hi ? g : *hi;
    }
}

static int every_main(void *arg)
{
    struct ticker t = {0};
    double lo, hi;

    double t0 = now_ms();
    t.p = sq_every(20, 0, tick, &t);
    EXPECT(t.p != NULL);
    EXPECT_EQ(t.runs, 0); /* the first run comes after one period */
    EXPECT_EQ(sq_sleep(210), 0);
    sq_periodic_stop(t.p);
    EXPECT_RANGE(t.runs, 8, 12);
    EXPECT_CMP(t.start[0] - t0, >=, 15);
    gaps(&t, &lo, &hi);
    EXPECT_CMP(lo, >=, 12);
    EXPECT_CMP(hi, <, 40 * slack());
    EXPECT_EQ(t.max_inside, 1);

    /* Stopped: no more runs. */
    int runs = t.runs;
    EXPECT_EQ(sq_sleep(60), 0);
    EXPECT_EQ(t.runs, runs);
    return 0;
}

START_TEST(test_every_runs_repeatedly)
{
    run(every_main, NULL);
}
END_TEST

/* A run awaiting longer than the period: runs never overlap, and the ticks that come while
   one is going are skipped, not made up for (each run starts on a tick of the grid). */
static int every_skip_main(void *arg)
{
    struct ticker t = {.sleep_ms = 120};
    double lo, hi;

    t.p = sq_every(50, 0, tick, &t);
    EXPECT(t.p != NULL);
    EXPECT_EQ(sq_sleep(620), 0); /* ticks at 50, 100, ...; runs at 50, 200, 350, 500 */
    sq_periodic_stop(t.p);
    for (int i = 0; i < 100 && t.inside > 0; i++) /* a run in progress finishes: t is its */
        EXPECT_EQ(sq_sleep(10), 0);
    EXPECT_EQ(t.inside, 0);
    EXPECT_EQ(t.max_inside, 1);
    EXPECT_RANGE(t.runs, 3, 6);
    gaps(&t, &lo, &hi);
    EXPECT_CMP(lo, >=, 135); /* a catch-up run would start 120 ms after the last one */
    EXPECT_CMP(hi, <, 200 * slack());
    for (int i = 0; i < t.finished; i++)
        EXPECT_EQ(t.rc[i], 0);
    return 0;
}

START_TEST(test_every_skips_missed_ticks)
{
    run(every_skip_main, NULL);
}
END_TEST

static int every_jitter_main(void *arg)
{
    struct ticker t = {0};
    double lo, hi;

    t.p = sq_every(40, 1.0, tick, &t); /* intervals in [20, 60] */
    EXPECT(t.p != NULL);
    EXPECT_EQ(sq_sleep(450), 0);
    sq_periodic_stop(t.p);
    EXPECT_RANGE(t.runs, 7, 20);
    gaps(&t, &lo, &hi);
    EXPECT_CMP(lo, >=, 20 - 8);
    EXPECT_CMP(hi, <, (60 + 10) * slack());
    EXPECT_CMP(hi - lo, >=, 8); /* the intervals vary */

    /* Bad arguments. */
    EXPECT(sq_every(0, 0, tick, &t) == NULL);
    EXPECT(sq_every(10, -0.1, tick, &t) == NULL);
    EXPECT(sq_every(10, 1.5, tick, &t) == NULL);
    EXPECT(sq_every(10, 0, NULL, &t) == NULL);
    EXPECT_STR_HAS(sq_errmsg(), "sq_every");
    return 0;
}

START_TEST(test_every_jitter)
{
    run(every_jitter_main, NULL);
}
END_TEST

static int every_stop_main(void *arg)
{
    struct ticker t = {.sleep_ms = 80};

    /* Stopped while a run awaits: that run finishes (not cancelled), no other starts. */
    t.p = sq_every(20, 0, tick, &t);
    EXPECT(t.p != NULL);
    for (int i = 0; i < 100 && t.runs == 0; i++)
        EXPECT_EQ(sq_sleep(5), 0);
    EXPECT_EQ(t.runs, 1);
    EXPECT_EQ(t.inside, 1);
    sq_periodic_stop(t.p);
    sq_periodic_stop(t.p); /* again while the run goes on: nothing more */
    EXPECT_EQ(sq_sleep(150), 0);
    EXPECT_EQ(t.runs, 1);
    EXPECT_EQ(t.finished, 1);
    EXPECT_EQ(t.rc[0], 0);

    /* Stopped by its own third run. */
    struct ticker self = {.stop_on = 3};
    self.p = sq_every(10, 0, tick, &self);
    EXPECT(self.p != NULL);
    EXPECT_EQ(sq_sleep(120), 0);
    EXPECT_EQ(self.runs, 3);
    EXPECT_EQ(self.finished, 3);

    /* Stopped before its first run. */
    struct ticker never = {0};
    never.p = sq_every(5, 0, tick, &never);
    EXPECT(never.p != NULL);
    sq_periodic_stop(never.p);
    sq_periodic_stop(NULL);
    EXPECT_EQ(sq_sleep(30), 0);
    EXPECT_EQ(never.runs, 0);
    return 0;
}

START_TEST(test_every_stop)
{
    run(every_stop_main, NULL);
}
END_TEST

static int every_fail_main(void *arg)
{
    struct ticker t = {.fail = 3};

    t.p = sq_every(10, 0, tick, &t);
    EXPECT(t.p != NULL);
    for (int i = 0; i < 100 && t.finished < 2; i++)
        EXPECT_EQ(sq_sleep(5), 0);
    sq_periodic_stop(t.p);
    EXPECT_CMP(t.finished, >=, 2); /* a failing run does not stop the next */
    return 0;
}

START_TEST(test_every_failure_logged)
{
    char err[4096];

    run_capture(every_fail_main, NULL, err, sizeof(err));
    ck_assert_msg(strstr(err, " [error] squall: periodic callback failed (3): run 1 failed\n"),
                  "stderr: %s", err);
    ck_assert_msg(strstr(err, " [error] squall: periodic callback failed (3): run 2 failed\n"),
                  "stderr: %s", err);
}
END_TEST

/* ---- Tasks ---- */

struct tasks {
    struct actor a[3];
};

static int task_sleeper(void *arg)
{
    void *unused;
    struct actor *a = arg;

    sleeper(a, &unused);
    return a->fail_code;
}

static int spawn_main(void *arg)
{
    struct tasks *ts = arg;

    for (int i = 0; i < 3; i++) {
        ts->a[i] = (struct actor){.id = i, .sleep_ms = 100};
        EXPECT_EQ(sq_spawn(task_sleeper, &ts->a[i]), 0);
        EXPECT_EQ(ts->a[i].ran, 0); /* started later, not synchronously */
    }
    EXPECT_EQ(sq_sleep(0), 0);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(ts->a[i].ran, 1);
    return 0; /* returns first: sq_run_sync still waits for the tasks (not cancelled) */
}

START_TEST(test_spawn_concurrent)
{
    struct tasks ts;
    double t0 = now_ms();

    run(spawn_main, &ts);
    double dt = now_ms() - t0;
    ck_assert_msg(dt >= 100 - tol() && dt < 250 * slack(), "3 tasks of 100 ms took %.1f ms", dt);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ts.a[i].ran, 1);
        ck_assert_int_eq(ts.a[i].rc, 0);
        ck_assert_msg(ts.a[i].elapsed >= 100 - tol(), "task %d slept %.1f ms", i, ts.a[i].elapsed);
    }
}
END_TEST

static int failing_task(void *arg)
{
    sq_errmsg_set("task %d failed", *(int *)arg);
    return *(int *)arg;
}

static int spawn_fail_main(void *arg)
{
    static int codes[2] = {7, SQ_ECANCELED};

    EXPECT_EQ(sq_spawn(failing_task, &codes[0]), 0);
    EXPECT_EQ(sq_spawn(failing_task, &codes[1]), 0);
    return 0;
}

START_TEST(test_spawn_failure_logged)
{
    char err[4096];

    run_capture(spawn_fail_main, NULL, err, sizeof(err));
    ck_assert_msg(strstr(err, " [error] squall: task failed (7): task 7 failed\n"), "stderr: %s",
                  err);
    ck_assert_msg(strstr(err, " [error] squall: task failed (-125): task -125 failed\n"),
                  "stderr: %s", err);
    /* Each line starts with a time stamp, e.g. 2024-01-01T00:00:00Z. */
    ck_assert_msg(err[4] == '-' && err[10] == 'T' && err[19] == 'Z', "stderr: %s", err);
}
END_TEST

static int many_task(void *arg)
{
    if (sq_sleep(100) == 0)
        (*(int *)arg)++;
    return 0;
}

static int spawn_many_main(void *arg)
{
    for (int i = 0; i < 10000; i++)
        EXPECT_EQ(sq_spawn(many_task, arg), 0);
    return 0;
}

START_TEST(test_spawn_many)
{
    int done = 0;
    double t0 = now_ms();

    run(spawn_many_main, &done);
    double dt = now_ms() - t0;
    ck_assert_int_eq(done, 10000);
    ck_assert_msg(dt >= 100 - tol() && dt < 1000 * slack(), "10000 tasks of 100 ms took %.1f ms",
                  dt);
}
END_TEST

/* ---- Operations ---- */

static int ops_concurrent_main(void *arg)
{
    struct actor a[3] = {
        {.id = 0, .sleep_ms = 200}, {.id = 1, .sleep_ms = 50}, {.id = 2, .sleep_ms = 100}};
    sq_op *ops[3];

    double t0 = now_ms();
    for (int i = 0; i < 3; i++) {
        ops[i] = sq_op_start(sleeper, &a[i]);
        EXPECT(ops[i] != NULL);
        EXPECT_EQ(sq_op_done(ops[i]), 0);
    }
    EXPECT_EQ(a[0].ran, 0); /* they run once the caller awaits */
    EXPECT_EQ(sq_await_all(ops, 3), 0);
    double dt = now_ms() - t0;
    EXPECT_RANGE(dt, 200 - tol(), 200 + 80 * slack()); /* concurrently: not 350 */
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(sq_op_done(ops[i]), 1);
        EXPECT_EQ(sq_op_status(ops[i]), 0);
        EXPECT(sq_op_result(ops[i]) == &a[i]);
        EXPECT(sq_op_error(ops[i]) == NULL);
        EXPECT_CMP(a[i].elapsed, >=, a[i].sleep_ms - tol());
    }
    EXPECT_EQ(sq_await_all(ops, 0), 0);
    EXPECT_EQ(sq_await_all(ops, 3), 0); /* all done: at once */
    return 0;
}

START_TEST(test_ops_concurrent)
{
    run(ops_concurrent_main, NULL);
}
END_TEST

/* Fails at once with its own code and message. */
static int op_fail_now(void *arg, void **result)
{
    sq_errmsg_set("failed at once");
    *result = arg;
    return 42;
}

static int ops_status_main(void *arg)
{
    struct actor slow_fail = {.id = 2, .sleep_ms = 30, .fail_code = SQ_EINVAL};
    struct actor ok = {.sleep_ms = 10};
    int x = 0;
    sq_op *ops[3] = {sq_op_start(sleeper, &ok), sq_op_start(op_fail_now, &x),
                     sq_op_start(sleeper, &slow_fail)};

    EXPECT(ops[0] && ops[1] && ops[2]);
    EXPECT_EQ(sq_await_all(ops, 3), 0); /* like gather(return_exceptions=True) */
    EXPECT_EQ(sq_op_status(ops[0]), 0);
    EXPECT(sq_op_error(ops[0]) == NULL);
    EXPECT(sq_op_result(ops[0]) == &ok);
    EXPECT_EQ(sq_op_status(ops[1]), 42);
    EXPECT_STR_HAS(sq_op_error(ops[1]), "failed at once");
    EXPECT(sq_op_result(ops[1]) == &x);
    EXPECT_EQ(sq_op_status(ops[2]), SQ_EINVAL);
    EXPECT_STR_HAS(sq_op_error(ops[2]), "actor 2 failed");
    EXPECT(sq_op_result(ops[2]) == &slow_fail);
    /* The errors live with the ops: later failures do not change them. */
    sq_errmsg_set("a later failure");
    EXPECT_STR_HAS(sq_op_error(ops[1]), "failed at once");
    EXPECT_STR_HAS(sq_op_error(ops[2]), "actor 2 failed");
    return 0;
}

START_TEST(test_ops_keep_own_status)
{
    run(ops_status_main, NULL);
}
END_TEST

static int await_any_main(void *arg)
{
    struct actor a[3] = {
        {.id = 0, .sleep_ms = 200}, {.id = 1, .sleep_ms = 50}, {.id = 2, .sleep_ms = 100}};
    sq_op *ops[3];

    double t0 = now_ms();
    for (int i = 0; i < 3; i++)
        EXPECT((ops[i] = sq_op_start(sleeper, &a[i])) != NULL);
    EXPECT_EQ(sq_await_any(ops, 3), 1);
    EXPECT_RANGE(now_ms() - t0, 50 - tol(), 50 + 60 * slack());
    EXPECT_EQ(sq_op_done(ops[0]), 0); /* the others keep running */
    EXPECT_EQ(sq_op_done(ops[2]), 0);
    EXPECT_EQ(sq_await_any(ops, 3), 1); /* one is done: at once */
    sq_op *rest[2] = {ops[0], ops[2]};
    EXPECT_EQ(sq_await_any(rest, 2), 1);
    EXPECT_RANGE(now_ms() - t0, 100 - tol(), 100 + 60 * slack());
    EXPECT_EQ(sq_await_any(rest, 0), SQ_EINVAL);
    EXPECT_EQ(sq_await_all(ops, 3), 0);
    EXPECT_RANGE(now_ms() - t0, 200 - tol(), 200 + 60 * slack());
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(a[i].rc, 0);
    return 0;
}

START_TEST(test_await_any)
{
    run(await_any_main, NULL);
}
END_TEST

static int op_cancel_main(void *arg)
{
    struct actor a = {.sleep_ms = 1000};
    sq_op *op = sq_op_start(sleeper, &a);

    EXPECT(op != NULL);
    EXPECT_EQ(sq_sleep(20), 0);
    double t0 = now_ms();
    sq_op_cancel(op);
    EXPECT_EQ(sq_await_all(&op, 1), 0);
    EXPECT_CMP(now_ms() - t0, <, 30 * slack());
    EXPECT_EQ(a.rc, SQ_ECANCELED);
    EXPECT_EQ(sq_op_status(op), SQ_ECANCELED);
    sq_op_cancel(op);          /* finished: nothing happens */
    EXPECT_EQ(sq_sleep(1), 0); /* the parent is not cancelled */
    return 0;
}

START_TEST(test_op_cancel)
{
    run(op_cancel_main, NULL);
}
END_TEST

/* sq_op_status: "SQ_ECANCELED if it was cancelled before it ran". */
static int op_cancel_early_main(void *arg)
{
    int ran = 0;
    sq_op *op = sq_op_start(marker, &ran);

    EXPECT(op != NULL);
    sq_op_cancel(op); /* before it ever ran */
    EXPECT_EQ(sq_await_all(&op, 1), 0);
    EXPECT_EQ(sq_op_done(op), 1);
    EXPECT_EQ(sq_op_status(op), SQ_ECANCELED);
    EXPECT_EQ(ran, 0);
    return 0;
}

START_TEST(test_op_cancelled_before_it_ran)
{
    run(op_cancel_early_main, NULL);
}
END_TEST

/* ---- Deadlines ---- */

static int deadline_main(void *arg)
{
    /* A pending sleep ends at the deadline with SQ_ETIMEDOUT. */
    EXPECT_EQ(sq_set_deadline(80), 0);
    double t0 = now_ms();
    EXPECT_EQ(sq_sleep(1000), SQ_ETIMEDOUT);
    EXPECT_RANGE(now_ms() - t0, 80 - tol(), 80 + 60 * slack());
    /* Past it, every await fails at once. */
    t0 = now_ms();
    EXPECT_EQ(sq_sleep(10), SQ_ETIMEDOUT);
    EXPECT_EQ(sq_sleep(0), SQ_ETIMEDOUT);
    EXPECT_CMP(now_ms() - t0, <, 5 * slack());
    /* Removed: sleeps work again. */
    EXPECT_EQ(sq_set_deadline(0), 0);
    EXPECT_EQ(sq_sleep(10), 0);
    /* A sleep shorter than the deadline is not affected. */
    EXPECT_EQ(sq_set_deadline(200), 0);
    t0 = now_ms();
    EXPECT_EQ(sq_sleep(20), 0);
    EXPECT_RANGE(now_ms() - t0, 20 - tol(), 20 + 60 * slack());
    /* A later deadline replaces an earlier one. */
    EXPECT_EQ(sq_set_deadline(10), 0);
    EXPECT_EQ(sq_set_deadline(60), 0);
    t0 = now_ms();
    EXPECT_EQ(sq_sleep(1000), SQ_ETIMEDOUT);
    EXPECT_RANGE(now_ms() - t0, 60 - tol(), 60 + 60 * slack());
    EXPECT_EQ(sq_set_deadline(0), 0);
    return 0;
}

START_TEST(test_deadline_sleep)
{
    run(deadline_main, NULL);
}
END_TEST

static int sleep_1000(void *arg)
{
    double t0 = now_ms();
    int rc = sq_sleep(1000);

    *(double *)arg = now_ms() - t0;
    return rc;
}

static int returns_17(void *arg)
{
    return 17;
}

static int with_timeout_main(void *arg)
{
    double dt;

    /* No deadline before: fn gets one, and afterwards there is none again. */
    EXPECT_EQ(sq_with_timeout(50, sleep_1000, &dt), SQ_ETIMEDOUT);
    EXPECT_RANGE(dt, 50 - tol(), 50 + 60 * slack());
    double t0 = now_ms();
    EXPECT_EQ(sq_sleep(30), 0);
    EXPECT_CMP(now_ms() - t0, >=, 30 - tol());
    EXPECT_EQ(sq_with_timeout(50, returns_17, NULL), 17);

    /* A sooner one inside a later one: the later one is back afterwards. */
    EXPECT_EQ(sq_set_deadline(150), 0);
    t0 = now_ms();
    EXPECT_EQ(sq_with_timeout(50, sleep_1000, &dt), SQ_ETIMEDOUT);
    EXPECT_RANGE(dt, 50 - tol(), 50 + 60 * slack());
    EXPECT_EQ(sq_sleep(1000), SQ_ETIMEDOUT);
    EXPECT_RANGE(now_ms() - t0, 150 - tol(), 150 + 60 * slack());

    /* A later one inside a sooner one: the sooner one applies. */
    EXPECT_EQ(sq_set_deadline(60), 0);
    EXPECT_EQ(sq_with_timeout(500, sleep_1000, &dt), SQ_ETIMEDOUT);
    EXPECT_RANGE(dt, 60 - tol(), 60 + 60 * slack());
    EXPECT_EQ(sq_set_deadline(0), 0);
    return 0;
}

START_TEST(test_with_timeout_restores)
{
    run(with_timeout_main, NULL);
}
END_TEST

struct starter {
    struct actor c;
    sq_op *op;
};

/* Starts an op and returns without awaiting it. */
static int start_op(void *arg)
{
    struct starter *st = arg;

    st->op = sq_op_start(sleeper, &st->c);
    return st->op ? 0 : -1;
}

static int op_inherit_main(void *arg)
{
    struct actor a = {.sleep_ms = 1000}, b = {.sleep_ms = 100};

    EXPECT_EQ(sq_set_deadline(60), 0);
    sq_op *ops[2] = {sq_op_start(sleeper, &a), NULL};
    EXPECT(ops[0] != NULL);
    EXPECT_EQ(sq_set_deadline(0), 0);  /* the op keeps the deadline it started with */
    ops[1] = sq_op_start(sleeper, &b); /* started without one */
    EXPECT(ops[1] != NULL);
    EXPECT_EQ(sq_await_all(ops, 2), 0);
    EXPECT_EQ(a.rc, SQ_ETIMEDOUT);
    EXPECT_EQ(sq_op_status(ops[0]), SQ_ETIMEDOUT);
    EXPECT_RANGE(a.elapsed, 60 - tol(), 60 + 60 * slack());
    EXPECT_EQ(b.rc, 0);
    EXPECT_EQ(sq_op_status(ops[1]), 0);

    /* An op started inside sq_with_timeout keeps its deadline after fn has returned. */
    struct starter st = {.c = {.sleep_ms = 1000}};
    double t0 = now_ms();
    EXPECT_EQ(sq_with_timeout(40, start_op, &st), 0);
    EXPECT(st.op != NULL);
    EXPECT_EQ(sq_await_all(&st.op, 1), 0); /* the caller has no deadline any more */
    EXPECT_EQ(st.c.rc, SQ_ETIMEDOUT);
    EXPECT_RANGE(now_ms() - t0, 40 - tol(), 40 + 60 * slack());
    return 0;
}

START_TEST(test_ops_inherit_deadline)
{
    run(op_inherit_main, NULL);
}
END_TEST

/* The waiting coroutine's deadline passes during sq_await_all: SQ_ETIMEDOUT, and the ops
   still running are cancelled (those done keep their status). */
static int await_all_deadline_main(void *arg)
{
    struct actor a[2] = {{.sleep_ms = 30}, {.sleep_ms = 1000}};
    sq_op *ops[2] = {sq_op_start(sleeper, &a[0]), sq_op_start(sleeper, &a[1])};

    EXPECT(ops[0] && ops[1]);
    EXPECT_EQ(sq_set_deadline(100), 0); /* after the start: the ops have none */
    double t0 = now_ms();
    EXPECT_EQ(sq_await_all(ops, 2), SQ_ETIMEDOUT);
    EXPECT_RANGE(now_ms() - t0, 100 - tol(), 100 + 60 * slack());
    EXPECT_STR_HAS(sq_errmsg(), "timed out");
    EXPECT_EQ(sq_op_done(ops[0]), 1);
    EXPECT_EQ(sq_op_status(ops[0]), 0);
    /* Past the deadline every await fails at once, this one too. */
    EXPECT_EQ(sq_await_all(ops, 2), SQ_ETIMEDOUT);
    EXPECT_EQ(sq_await_any(ops + 1, 1), SQ_ETIMEDOUT);
    EXPECT_EQ(sq_set_deadline(0), 0);
    t0 = now_ms();
    EXPECT_EQ(sq_await_all(ops, 2), 0); /* the cancelled op ends at once */
    EXPECT_CMP(now_ms() - t0, <, 30 * slack());
    EXPECT_EQ(a[1].rc, SQ_ECANCELED);
    EXPECT_EQ(sq_op_status(ops[1]), SQ_ECANCELED);
    EXPECT_CMP(a[1].elapsed, <, 100 + 60 * slack());
    return 0;
}

START_TEST(test_await_all_deadline_cancels)
{
    run(await_all_deadline_main, NULL);
}
END_TEST

/* After a failed await, sq_errmsg() says why that await failed, even when other coroutines
   made failing calls while it was parked. */
static int errmsg_spoiler(void *arg, void **result)
{
    sq_sleep(10);
    sq_errmsg_set("spoiled by another coroutine");
    return 0;
}

static int errmsg_main(void *arg)
{
    sq_op *op = sq_op_start(errmsg_spoiler, NULL);

    EXPECT(op != NULL);
    EXPECT_EQ(sq_set_deadline(50), 0);
    EXPECT_EQ(sq_sleep(1000), SQ_ETIMEDOUT);
    EXPECT_STR_HAS(sq_errmsg(), "timed out"); /* not the op's message */
    EXPECT_EQ(sq_set_deadline(0), 0);
    EXPECT_EQ(sq_await_all(&op, 1), 0);
    return 0;
}

START_TEST(test_errmsg_after_failed_sleep)
{
    run(errmsg_main, NULL);
}
END_TEST

/* ---- Cancellation ---- */

struct sticky {
    int rc[6];
    double after_cancel; /* how long the awaits after the first took */
    struct actor child;
    sq_event *ev;
};

/* Awaits, is cancelled, then tries every kind of await again. */
static int sticky_fn(void *arg, void **result)
{
    struct sticky *s = arg;
    double dt;

    s->rc[0] = sq_sleep(1000);
    double t0 = now_ms();
    s->rc[1] = sq_sleep(10);
    s->rc[2] = sq_sleep(0);
    s->rc[3] = sq_with_timeout(100, sleep_1000, &dt);
    s->rc[4] = sq_event_wait(s->ev, 100);
    sq_op *op = sq_op_start(sleeper, &s->child);
    s->rc[5] = op ? sq_await_all(&op, 1) : 1;
    s->after_cancel = now_ms() - t0;
    return s->rc[0];
}

static int sticky_main(void *arg)
{
    struct sticky s = {.child = {.sleep_ms = 1000}, .ev = sq_event_new()};
    sq_op *op = sq_op_start(sticky_fn, &s);

    EXPECT(op != NULL);
    EXPECT_EQ(sq_sleep(20), 0);
    sq_op_cancel(op);
    EXPECT_EQ(sq_await_all(&op, 1), 0);
    sq_event_free(s.ev);
    EXPECT_EQ(sq_op_status(op), SQ_ECANCELED);
    for (int i = 0; i < 6; i++)
        EXPECT_EQ(s.rc[i], SQ_ECANCELED);
    EXPECT_CMP(s.after_cancel, <, 30 * slack());
    EXPECT_CMP(s.child.elapsed, <, 30 * slack()); /* its op was cancelled too */
    return 0;
}

START_TEST(test_cancel_is_sticky)
{
    run(sticky_main, NULL);
}
END_TEST

/* Cancelling an op cancels the ops it started, and it waits for them before it ends. */
struct nested {
    struct actor leaf;
    int await_rc;
    int leaf_done_when_parent_ended;
};

static int nested_fn(void *arg, void **result)
{
    struct nested *n = arg;
    sq_op *op = sq_op_start(sleeper, &n->leaf);

    if (!op)
        return -1;
    n->await_rc = sq_await_all(&op, 1);
    return n->await_rc;
}

static int nested_main(void *arg)
{
    struct nested n = {.leaf = {.sleep_ms = 1000}};
    sq_op *op = sq_op_start(nested_fn, &n);

    EXPECT(op != NULL);
    EXPECT_EQ(sq_sleep(20), 0);
    double t0 = now_ms();
    sq_op_cancel(op);
    EXPECT_EQ(sq_await_all(&op, 1), 0);
    EXPECT_CMP(now_ms() - t0, <, 30 * slack());
    EXPECT_EQ(n.await_rc, SQ_ECANCELED);
    EXPECT_EQ(sq_op_status(op), SQ_ECANCELED);
    EXPECT_EQ(n.leaf.rc, SQ_ECANCELED);
    EXPECT(n.leaf.ended > 0); /* the leaf had ended when its parent's op was done */
    return 0;
}

START_TEST(test_cancel_reaches_children)
{
    run(nested_main, NULL);
}
END_TEST

/* Sleeps; cancelled, it cleans up: awaits once more (fails at once) and writes to memory
   of its parent, which must still be there. */
static int cleaner(void *arg, void **result)
{
    struct actor *a = arg;

    a->ran = 1;
    a->started = now_ms();
    a->rc = sq_sleep((uint64_t)a->sleep_ms);
    a->rc2 = sq_sleep(10);
    memset(a->shared, 'x', 4096);
    a->ended = now_ms();
    a->cleaned = 1;
    return a->rc;
}

static int parent_returns_main(void *arg)
{
    struct actor *a = arg;
    char *mem = sq_coro_alloc(4096);

    EXPECT(mem != NULL);
    for (int i = 0; i < 2; i++) {
        a[i] = (struct actor){.id = i, .sleep_ms = 5000, .shared = mem};
        EXPECT(sq_op_start(cleaner, &a[i]) != NULL);
    }
    EXPECT_EQ(sq_sleep(10), 0); /* both are parked now */
    a[2] = (struct actor){.id = 2, .sleep_ms = 5000, .shared = mem};
    EXPECT(sq_op_start(cleaner, &a[2]) != NULL); /* never ran yet when the parent returns */
    return 0;
}

START_TEST(test_parent_waits_for_its_ops)
{
    struct actor a[3];
    double t0 = now_ms();

    run(parent_returns_main, a);
    double dt = now_ms() - t0;
    ck_assert_msg(dt < 500 * slack(), "sq_run_sync took %.1f ms: the ops were not cancelled", dt);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(a[i].cleaned, "op %d: its cleanup did not run before sq_run_sync returned",
                      i);
        ck_assert_int_eq(a[i].rc, SQ_ECANCELED);
        ck_assert_int_eq(a[i].rc2, SQ_ECANCELED);
    }
    /* Op 2 was cancelled before it ran: it may not run at all (sq_op_status), but if it
       did, it ran to its end and every await failed. */
    ck_assert_msg(!a[2].ran || a[2].cleaned, "op 2 started and never finished");
    ck_assert(!a[2].ran || (a[2].rc == SQ_ECANCELED && a[2].rc2 == SQ_ECANCELED));
}
END_TEST

/* ---- Memory, context, nesting ---- */

static int coro_alloc_main(void *arg)
{
    char *p[64];

    for (int i = 0; i < 64; i++) {
        p[i] = sq_coro_alloc(100 + (size_t)i * 50);
        EXPECT(p[i] != NULL);
        EXPECT_EQ((uintptr_t)p[i] % 16, 0);
        memset(p[i], i, 100 + (size_t)i * 50);
    }
    for (int i = 0; i < 64; i++) /* distinct: nothing was overwritten */
        EXPECT(p[i][0] == i && p[i][99 + i * 50] == i);
    char *big = sq_coro_alloc(1 << 20);
    EXPECT(big != NULL);
    memset(big, 1, 1 << 20);
    EXPECT_EQ(sq_sleep(1), 0); /* still there after an await */
    EXPECT(big[(1 << 20) - 1] == 1 && p[63][0] == 63);
    return 0;
}

START_TEST(test_coro_alloc)
{
    run(coro_alloc_main, NULL);
    ck_assert_ptr_null(sq_coro_alloc(16));
    ck_assert_str_eq(sq_errmsg(), "sq_coro_alloc outside a coroutine");
}
END_TEST

static int dummy_task(void *arg)
{
    return 0;
}

START_TEST(test_outside_coroutine)
{
    sq_op *op = NULL;

    ck_assert_int_eq(sq_sleep(1), SQ_EINVAL);
    ck_assert_int_eq(sq_sleep(0), SQ_EINVAL);
    ck_assert_int_eq(sq_set_deadline(10), SQ_EINVAL);
    ck_assert_int_eq(sq_with_timeout(10, returns_17, NULL), SQ_EINVAL);
    ck_assert_int_eq(sq_await_all(&op, 0), SQ_EINVAL);
    ck_assert_int_eq(sq_await_any(&op, 0), SQ_EINVAL);
    ck_assert_ptr_null(sq_op_start(never_runs_op, NULL));
    ck_assert_int_ne(sq_spawn(dummy_task, NULL), 0);
    ck_assert_int_ne(sq_add_callback(cb_record, NULL), 0);
    ck_assert_ptr_null(sq_call_later(1, cb_record, NULL));
    ck_assert_ptr_null(sq_every(1, 0, dummy_task, NULL));
}
END_TEST

static int returns_arg(void *arg)
{
    return *(int *)arg;
}

static int nested_run_main(void *arg)
{
    int ran = 0;

    EXPECT_EQ(sq_run_sync(never_runs, &ran), SQ_EINVAL);
    EXPECT_EQ(ran, 0);
    EXPECT_STR_HAS(sq_errmsg(), "already runs a loop");
    return 0;
}

START_TEST(test_run_sync_nested)
{
    int five = 5;

    run(nested_run_main, NULL);
    /* Outside a loop it runs again, and returns what fn returned. */
    ck_assert_int_eq(sq_run_sync(returns_arg, &five), 5);
    ck_assert_int_eq(sq_run_sync(returns_arg, &five), 5);
}
END_TEST

/* ---- Fairness ---- */

/* Two coroutines waking each other in turn (a producer and a consumer, say) for a while:
   the loop must still poll and run its timers meanwhile. */
struct pingpong {
    sq_event *a, *b;
    double until;
    long rounds;
    int stop;
};

static int ping(void *arg, void **result)
{
    struct pingpong *pp = arg;

    while (!pp->stop) {
        sq_event_set(pp->b);
        if (sq_event_wait(pp->a, -1) != 0)
            break;
        sq_event_clear(pp->a);
        pp->rounds++;
        if (now_ms() >= pp->until)
            pp->stop = 1;
    }
    sq_event_set(pp->b);
    return 0;
}

static int pong(void *arg, void **result)
{
    struct pingpong *pp = arg;

    while (!pp->stop) {
        if (sq_event_wait(pp->b, -1) != 0)
            break;
        sq_event_clear(pp->b);
        sq_event_set(pp->a);
    }
    sq_event_set(pp->a);
    return 0;
}

static int fairness_main(void *arg)
{
    struct pingpong pp = {.a = sq_event_new(), .b = sq_event_new()};
    struct cb_log l = {0};

    double t0 = now_ms();
    pp.until = t0 + 200;
    EXPECT(sq_call_later(10, cb_record, &l) != NULL);
    sq_op *ops[2] = {sq_op_start(ping, &pp), sq_op_start(pong, &pp)};
    EXPECT(ops[0] && ops[1]);
    EXPECT_EQ(sq_await_all(ops, 2), 0);
    sq_event_free(pp.a);
    sq_event_free(pp.b);
    EXPECT_CMP(pp.rounds, >, 100);
    EXPECT_EQ(l.runs, 1);
    EXPECT_CMP(l.at[0] - t0, <, 60 * slack()); /* not only once the ping-pong ended */
    return 0;
}

START_TEST(test_wakeups_do_not_starve_timers)
{
    run(fairness_main, NULL);
}
END_TEST

static Suite *async_suite(void)
{
    Suite *s = suite_create("async");
    TCase *sleep = tcase_create("sleep");
    TCase *timers = tcase_create("timers");
    TCase *periodic = tcase_create("periodic");
    TCase *tasks = tcase_create("tasks");
    TCase *ops = tcase_create("ops");
    TCase *deadline = tcase_create("deadline");
    TCase *cancel = tcase_create("cancel");
    TCase *context = tcase_create("context");

    tcase_set_timeout(sleep, 10);
    tcase_add_test(sleep, test_sleep_duration);
    tcase_add_test(sleep, test_sleep_after_busy_turn);
    tcase_add_test(sleep, test_timed_waits_never_early);
    tcase_add_test(sleep, test_sleep_zero_yields);
    tcase_add_test(sleep, test_wakeups_do_not_starve_timers);
    suite_add_tcase(s, sleep);
    tcase_set_timeout(timers, 10);
    tcase_add_test(timers, test_add_callback);
    tcase_add_test(timers, test_call_later);
    tcase_add_test(timers, test_timers_after_busy_turn);
    suite_add_tcase(s, timers);
    tcase_set_timeout(periodic, 20);
    tcase_add_test(periodic, test_every_runs_repeatedly);
    tcase_add_test(periodic, test_every_skips_missed_ticks);
    tcase_add_test(periodic, test_every_jitter);
    tcase_add_test(periodic, test_every_stop);
    tcase_add_test(periodic, test_every_failure_logged);
    suite_add_tcase(s, periodic);
    tcase_set_timeout(tasks, 30);
    tcase_add_test(tasks, test_spawn_concurrent);
    tcase_add_test(tasks, test_spawn_failure_logged);
    tcase_add_test(tasks, test_spawn_many);
    suite_add_tcase(s, tasks);
    tcase_set_timeout(ops, 10);
    tcase_add_test(ops, test_ops_concurrent);
    tcase_add_test(ops, test_ops_keep_own_status);
    tcase_add_test(ops, test_await_any);
    tcase_add_test(ops, test_op_cancel);
    tcase_add_test(ops, test_op_cancelled_before_it_ran);
    suite_add_tcase(s, ops);
    tcase_set_timeout(deadline, 10);
    tcase_add_test(deadline, test_deadline_sleep);
    tcase_add_test(deadline, test_with_timeout_restores);
    tcase_add_test(deadline, test_ops_inherit_deadline);
    tcase_add_test(deadline, test_await_all_deadline_cancels);
    tcase_add_test(deadline, test_errmsg_after_failed_sleep);
    suite_add_tcase(s, deadline);
    tcase_set_timeout(cancel, 10);
    tcase_add_test(cancel, test_cancel_is_sticky);
    tcase_add_test(cancel, test_cancel_reaches_children);
    tcase_add_test(cancel, test_parent_waits_for_its_ops);
    suite_add_tcase(s, cancel);
    tcase_set_timeout(context, 10);
    tcase_add_test(context, test_coro_alloc);
    tcase_add_test(context, test_outside_coroutine);
    tcase_add_test(context, test_run_sync_nested);
    suite_add_tcase(s, context);
    return s;
}

int main(void)
{
    return check_run(async_suite());
}
