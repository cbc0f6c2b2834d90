/*
 * check_arena.c - the per-request arena.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "../check_main.h"

static char first[1024];

static char *printf_into(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return s;
}

START_TEST(test_first_block_then_heap)
{
    struct arena a;
    arena_init(&a, first, sizeof(first));
    char *p = arena_alloc(&a, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert(p >= first && p + 100 <= first + sizeof(first));
    char *q = arena_alloc(&a, 2000); /* bigger than what is left: a heap chunk */
    ck_assert_ptr_nonnull(q);
    ck_assert(q < first || q >= first + sizeof(first));
    memset(q, 'x', 2000);
    arena_reset(&a);
    char *r = arena_alloc(&a, 100);
    ck_assert_ptr_eq(r, p); /* reset starts over in the first block */
    arena_deinit(&a);
}
END_TEST

START_TEST(test_alignment)
{
    struct arena a;
    arena_init(&a, first, sizeof(first));
    for (size_t n = 1; n < 40; n++) {
        void *p = arena_alloc(&a, n);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
    }
    arena_deinit(&a);
}
END_TEST

START_TEST(test_many_chunks)
{
    struct arena a;
    arena_init(&a, first, sizeof(first));
    char *ptrs[1000];
    for (int i = 0; i < 1000; i++) {
        ptrs[i] = arena_alloc(&a, 100);
        ck_assert_ptr_nonnull(ptrs[i]);
        memset(ptrs[i], i & 0xff, 100);
    }
    for (int i = 0; i < 1000; i++) /* no allocation overlapped another */
        ck_assert_int_eq((unsigned char)ptrs[i][99], i & 0xff);
    arena_deinit(&a); /* LeakSanitizer checks the chunks were all freed */
}
END_TEST

START_TEST(test_strings)
{
    struct arena a;
    arena_init(&a, first, sizeof(first));
    char *s = arena_strndup(&a, "hello world", 5);
    ck_assert_str_eq(s, "hello");
    char *f = printf_into(&a, "%s=%d", "n", 42);
    ck_assert_str_eq(f, "n=42");
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char *g = printf_into(&a, "%s!", big);
    ck_assert_uint_eq(strlen(g), sizeof(big));
    ck_assert_int_eq(g[sizeof(big) - 1], '!');
    arena_deinit(&a);
}
END_TEST

START_TEST(test_huge_fails)
{
    struct arena a;
    arena_init(&a, first, sizeof(first));
    ck_assert_ptr_null(arena_alloc(&a, SIZE_MAX - 8));
    ck_assert_ptr_nonnull(arena_alloc(&a, 8)); /* still usable */
    arena_deinit(&a);
}
END_TEST

static Suite *arena_suite(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("arena");
    tcase_set_timeout(tc, 10);

    tcase_add_test(tc, test_first_block_then_heap);
    tcase_add_test(tc, test_alignment);
    tcase_add_test(tc, test_many_chunks);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_huge_fails);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(arena_suite());
}
