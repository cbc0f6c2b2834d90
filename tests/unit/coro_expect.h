/*
 * coro_expect.h - checks inside coroutines, for suites that drive the runtime with
 * sq_run_sync. Check's ck_assert jumps out of the test (longjmp), which must not happen on
 * a coroutine's stack: EXPECT* record the first failure and return -1 from the coroutine
 * instead, and run() asserts on the loop's side that none was recorded.
 */
#ifndef SQUALL_TEST_CORO_EXPECT_H
#define SQUALL_TEST_CORO_EXPECT_H

#include <check.h>
#include <stdio.h>
#include <time.h>

#include "squall.h"

static char failure[512];

/* Records the first failed expectation, and prints it at once: a coroutine that returns
   early may leave operations running on its dead frame, which can crash before run()
   reports. */
static inline void note_failure(int line, const char *what, double a, double b)
{
    if (failure[0])
        return;
    snprintf(failure, sizeof failure, "line %d: %s (%g vs %g)", line, what, a, b);
    fprintf(stderr, "%s\n", failure);
}

#define EXPECT_CMP(a, op, b)                                                                       \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(a_ op b_)) {                                                                         \
            note_failure(__LINE__, #a " " #op " " #b, a_, b_);                                     \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
#define EXPECT_EQ(a, b) EXPECT_CMP(a, ==, b)
#define EXPECT(cond) EXPECT_CMP(!!(cond), ==, 1)

/* Runs fn as a coroutine on a fresh loop and asserts that it and its checks succeeded. */
static inline void run(sq_task_fn fn, void *arg)
{
    failure[0] = '\0';
    int rc = sq_run_sync(fn, arg);
    ck_assert_msg(failure[0] == '\0', "%s", failure);
    ck_assert_int_eq(rc, 0);
}

/* Milliseconds on the monotonic clock. */
static inline double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif
