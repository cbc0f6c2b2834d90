/*
 * check_ucontext.c - the portable ucontext switch, built here on x86-64 too (coro.c with
 * CORO_UCONTEXT), so the fallback other machines use is tested on this one. The assembly
 * switch is exercised by every other suite.
 */
#define CORO_UCONTEXT 1
#include "../../framework/coro.c"

#include <check.h>

#include "../check_main.h"

static struct coro_ctx main_ctx, ping_ctx;
static struct coro_stack *ping_stack;
static int counter;

static void ping(void *arg)
{
    int rounds = *(int *)arg;

    for (int i = 0; i < rounds; i++) {
        counter++;
        coro_switch(&ping_ctx, &main_ctx, NULL);
    }
    coro_switch(&ping_ctx, &main_ctx, NULL); /* done: never resumed again */
    abort();
}

START_TEST(test_switch_back_and_forth)
{
    struct coro_stack_pool pool;
    int rounds = 1000;

    coro_stack_pool_init(&pool, 16384, 4);
    ping_stack = coro_stack_get(&pool);
    ck_assert_ptr_nonnull(ping_stack);
    coro_ctx_make(&ping_ctx, ping_stack, ping, &rounds);
    counter = 0;
    for (int i = 0; i < rounds; i++) {
        coro_switch(&main_ctx, &ping_ctx, ping_stack);
        ck_assert_int_eq(counter, i + 1); /* each switch ran exactly one step */
    }
    coro_switch(&main_ctx, &ping_ctx, ping_stack); /* lets it exit */
    ck_assert_int_eq(counter, rounds);
    coro_stack_put(&pool, ping_stack);
    coro_stack_pool_deinit(&pool);
}
END_TEST

START_TEST(test_pool_reuses_and_guards)
{
    struct coro_stack_pool pool;

    coro_stack_pool_init(&pool, 10000, 1); /* rounded up to whole pages */
    ck_assert_uint_eq(pool.stack_size % (size_t)sysconf(_SC_PAGESIZE), 0);
    ck_assert_uint_ge(pool.stack_size, 10000);
    struct coro_stack *a = coro_stack_get(&pool);
    ck_assert(coro_stack_is_guard(a, a->base));
    ck_assert(!coro_stack_is_guard(a, a->base + sysconf(_SC_PAGESIZE)));
    coro_stack_put(&pool, a);
    ck_assert_ptr_eq(coro_stack_get(&pool), a); /* from the pool, not a new mapping */
    coro_stack_put(&pool, a);
    coro_stack_pool_deinit(&pool);
    ck_assert_uint_eq(pool.nfree, 0);
}
END_TEST

static Suite *ucontext_suite(void)
{
    Suite *s = suite_create("ucontext");
    TCase *tc = tcase_create("switch");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_switch_back_and_forth);
    tcase_add_test(tc, test_pool_reuses_and_guards);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(ucontext_suite());
}
