/*
 * check_ratelimit.c - GCRA per key, the bounded LRU table, and "N/PERIOD" parsing.
 *
 * Time is a fake clock: every test passes now_ms itself.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ratelimit.h"
#include "../check_main.h"

static struct ratelimit_result hit(struct ratelimit *rl, const char *key, uint64_t now)
{
    return ratelimit_hit(rl, key, strlen(key), now);
}

/* Key number i as text, in buf. */
static const char *key_n(char *buf, size_t len, unsigned i)
{
    snprintf(buf, len, "10.%u.%u.%u", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    return buf;
}

START_TEST(test_burst_then_refused)
{
    struct ratelimit *rl = ratelimit_new(10, 60000, 100); /* T = 6 s */
    const uint64_t t0 = 1000000;

    for (uint32_t i = 1; i <= 10; i++) {
        struct ratelimit_result r = hit(rl, "a", t0);
        ck_assert(r.allowed);
        ck_assert_uint_eq(r.limit, 10);
        ck_assert_uint_eq(r.remaining, 10 - i); /* 9 .. 0 */
        ck_assert_uint_eq(r.reset_ms, 6000 * i);
        ck_assert_uint_eq(r.retry_after_ms, 0);
    }
    struct ratelimit_result r = hit(rl, "a", t0);
    ck_assert(!r.allowed);
    ck_assert_uint_eq(r.limit, 10);
    ck_assert_uint_eq(r.remaining, 0);
    ck_assert_uint_eq(r.retry_after_ms, 6000);
    ck_assert_uint_eq(r.reset_ms, 60000);
    r = hit(rl, "a", t0 + 1); /* a refusal changes nothing: the clock alone counts down */
    ck_assert(!r.allowed);
    ck_assert_uint_eq(r.retry_after_ms, 5999);
    ck_assert_uint_eq(r.reset_ms, 59999);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_one_per_interval)
{
    struct ratelimit *rl = ratelimit_new(10, 60000, 100);
    const uint64_t t0 = 5000;

    for (int i = 0; i < 10; i++)
        ck_assert(hit(rl, "a", t0).allowed);
    for (uint64_t k = 1; k <= 20; k++) {
        struct ratelimit_result r = hit(rl, "a", t0 + 6000 * k - 1);
        ck_assert(!r.allowed);
        ck_assert_uint_eq(r.retry_after_ms, 1);
        r = hit(rl, "a", t0 + 6000 * k);
        ck_assert(r.allowed);
        ck_assert_uint_eq(r.remaining, 0);
        ck_assert_uint_eq(r.reset_ms, 60000);
        r = hit(rl, "a", t0 + 6000 * k);
        ck_assert(!r.allowed);
        ck_assert_uint_eq(r.retry_after_ms, 6000);
    }
    ratelimit_free(rl);
}
END_TEST

/* A burst spent at t0 is whole again at exactly t0 + period, and not a millisecond before. */
START_TEST(test_full_allowance_after_period)
{
    struct ratelimit *rl = ratelimit_new(10, 60000, 100);
    const uint64_t t0 = 7;
    struct ratelimit_result r;

    for (int i = 0; i < 10; i++)
        r = hit(rl, "a", t0);
    ck_assert_uint_eq(r.reset_ms, 60000); /* the last of the burst says "whole at t0 + 60 s" */
    for (int i = 0; i < 10; i++)
        r = hit(rl, "b", t0);

    r = hit(rl, "a", t0 + 60000 - 1); /* one ms early: N-1 left, this one included */
    ck_assert(r.allowed);
    ck_assert_uint_eq(r.remaining, 8);
    for (uint32_t i = 1; i <= 10; i++) {
        r = hit(rl, "b", t0 + 60000);
        ck_assert(r.allowed);
        ck_assert_uint_eq(r.remaining, 10 - i);
    }
    ck_assert(!hit(rl, "b", t0 + 60000).allowed);
    ratelimit_free(rl);
}
END_TEST

/* 3/1s: T = 333.33 ms is kept exact, and milliseconds are rounded so as never to be early. */
START_TEST(test_fractional_interval)
{
    struct ratelimit *rl = ratelimit_new(3, 1000, 100);
    struct ratelimit_result r;

    for (int i = 0; i < 3; i++)
        ck_assert(hit(rl, "a", 0).allowed);
    r = hit(rl, "a", 0);
    ck_assert(!r.allowed);
    ck_assert_uint_eq(r.retry_after_ms, 334);
    ck_assert(!hit(rl, "a", 333).allowed);
    ck_assert(hit(rl, "a", 334).allowed);

    /* Every ms for 10 s: the burst of 3, then one at ceil(k * 1000 / 3) for k = 1..29. */
    unsigned allowed = 0;
    for (uint64_t t = 0; t < 10000; t++)
        allowed += hit(rl, "b", t).allowed;
    ck_assert_uint_eq(allowed, 32);

    /* And over 1000 s, no drift: 3 + floor(999999 * 3 / 1000) = 3002. */
    allowed = 0;
    for (uint64_t t = 0; t < 1000000; t++)
        allowed += hit(rl, "c", t).allowed;
    ck_assert_uint_eq(allowed, 3 + 2999);
    ratelimit_free(rl);
}
END_TEST

/* The bucket semantics spelled out in ratelimit.h: [t0, t0 + period) holds 2N - 1 at most. */
START_TEST(test_window_holds_two_n_minus_one)
{
    struct ratelimit *rl = ratelimit_new(4, 1000, 10);
    unsigned allowed = 0;

    for (uint64_t t = 0; t < 1000; t++)
        while (hit(rl, "a", t).allowed)
            allowed++;
    ck_assert_uint_eq(allowed, 2 * 4 - 1);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_keys_independent)
{
    struct ratelimit *rl = ratelimit_new(2, 1000, 100);

    ck_assert(hit(rl, "a", 0).allowed);
    ck_assert(hit(rl, "a", 0).allowed);
    ck_assert(!hit(rl, "a", 0).allowed);
    struct ratelimit_result r = hit(rl, "b", 0);
    ck_assert(r.allowed);
    ck_assert_uint_eq(r.remaining, 1);
    ck_assert(hit(rl, "ab", 0).allowed);
    ck_assert(hit(rl, "", 0).allowed); /* the empty key is a key too */
    ck_assert(hit(rl, "", 0).allowed);
    ck_assert(!hit(rl, "", 0).allowed);
    ck_assert(ratelimit_hit(rl, NULL, 0, 0).allowed == false);
    ck_assert(!hit(rl, "a", 0).allowed);
    ck_assert_uint_eq(ratelimit_keys(rl), 4);
    ratelimit_free(rl);
}
END_TEST

/* 100,000 addresses through 10,000 slots: bounded, constant memory, and still exact. */
START_TEST(test_flood_bounded)
{
    struct ratelimit *rl = ratelimit_new(2, 3600000, 10000);
    size_t mem = ratelimit_memory(rl);
    char buf[32];

    ck_assert_uint_gt(mem, 10000 * 256);
    ck_assert(hit(rl, "oldest", 0).allowed);
    ck_assert(hit(rl, "oldest", 0).allowed);
    ck_assert(hit(rl, "kept", 0).allowed);
    ck_assert(hit(rl, "kept", 0).allowed);
    for (unsigned i = 0; i < 100000; i++) {
        ck_assert(hit(rl, key_n(buf, sizeof buf, i), 1 + i).allowed);
        ck_assert_uint_le(ratelimit_keys(rl), 10000);
        if (i % 1000 == 0) /* touched often enough to stay: still spent, still refused */
            ck_assert(!hit(rl, "kept", 1 + i).allowed);
    }
    ck_assert_uint_eq(ratelimit_keys(rl), 10000);
    ck_assert_uint_eq(ratelimit_memory(rl), mem);
    ck_assert(!hit(rl, "kept", 200000).allowed);
    /* The last 10,000 - 1 addresses are all still known (spent once of two)... */
    for (unsigned i = 100000 - 9999; i < 100000; i++) {
        struct ratelimit_result r = hit(rl, key_n(buf, sizeof buf, i), 200000);
        ck_assert(r.allowed);
        ck_assert_uint_eq(r.remaining, 0);
    }
    /* ...and the oldest was evicted long ago: it comes back fresh. */
    struct ratelimit_result r = hit(rl, "oldest", 200000);
    ck_assert(r.allowed);
    ck_assert_uint_eq(r.remaining, 1);
    ck_assert_uint_eq(ratelimit_keys(rl), 10000);
    ratelimit_free(rl);
}
END_TEST

/* The exact LRU order: a touch, allowed or refused, saves a key; the oldest goes. */
START_TEST(test_lru_order)
{
    struct ratelimit *rl = ratelimit_new(1, 1000, 3);

    ck_assert(hit(rl, "a", 0).allowed);
    ck_assert(hit(rl, "b", 0).allowed);
    ck_assert(hit(rl, "c", 0).allowed);
    ck_assert(!hit(rl, "a", 1).allowed); /* a is now the most recent; b the oldest */
    ck_assert(hit(rl, "d", 2).allowed);  /* evicts b */
    ck_assert_uint_eq(ratelimit_keys(rl), 3);
    ck_assert(!hit(rl, "a", 3).allowed);
    ck_assert(!hit(rl, "c", 3).allowed);
    ck_assert(!hit(rl, "d", 3).allowed);
    ck_assert(hit(rl, "b", 4).allowed); /* back fresh; evicts a, the oldest touch */
    ck_assert(hit(rl, "a", 5).allowed); /* back fresh; evicts c */
    ck_assert(!hit(rl, "d", 6).allowed);
    ck_assert(!hit(rl, "b", 6).allowed);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_long_and_binary_keys)
{
    struct ratelimit *rl = ratelimit_new(1, 1000, 100);
    static char k1[1000], k2[1000];

    memset(k1, 'x', sizeof k1);
    memcpy(k2, k1, sizeof k2);
    k2[sizeof k2 - 1] = 'y'; /* differs only in its last byte */
    ck_assert(ratelimit_hit(rl, k1, sizeof k1, 0).allowed);
    ck_assert(ratelimit_hit(rl, k2, sizeof k2, 0).allowed);
    ck_assert(!ratelimit_hit(rl, k1, sizeof k1, 0).allowed);
    ck_assert(!ratelimit_hit(rl, k2, sizeof k2, 0).allowed);
    /* Prefixes are other keys, on both sides of the 255-byte limit. */
    for (size_t len = 250; len <= 260; len++) {
        ck_assert(ratelimit_hit(rl, k1, len, 0).allowed);
        ck_assert(!ratelimit_hit(rl, k1, len, 0).allowed);
    }
    /* A key of 16 bytes (a digest's length) is not mistaken for a long key's digest. */
    ck_assert(ratelimit_hit(rl, k1, 16, 0).allowed);
    ck_assert(!ratelimit_hit(rl, k1, 16, 0).allowed);

    static const char b1[] = {'a', '\0', 'b'}, b2[] = {'a', '\0', 'c'}, b3[] = {'a', '\0'};
    ck_assert(ratelimit_hit(rl, b1, sizeof b1, 0).allowed);
    ck_assert(ratelimit_hit(rl, b2, sizeof b2, 0).allowed);
    ck_assert(ratelimit_hit(rl, b3, sizeof b3, 0).allowed);
    ck_assert(ratelimit_hit(rl, "a", 1, 0).allowed);
    ck_assert(!ratelimit_hit(rl, b1, sizeof b1, 0).allowed);
    ck_assert(!ratelimit_hit(rl, b2, sizeof b2, 0).allowed);
    ck_assert(!ratelimit_hit(rl, b3, sizeof b3, 0).allowed);
    ck_assert(!ratelimit_hit(rl, "a", 1, 0).allowed);
    ratelimit_free(rl);
}
END_TEST

/* Long keys through a full table: digests are evicted and found like any key. */
START_TEST(test_long_keys_evicted)
{
    struct ratelimit *rl = ratelimit_new(1, 1000, 8);
    static char k[300];

    for (int i = 0; i < 64; i++) {
        memset(k, 'a' + i % 26, sizeof k);
        k[0] = (char)i;
        ck_assert(ratelimit_hit(rl, k, sizeof k, 0).allowed);
        ck_assert(!ratelimit_hit(rl, k, sizeof k, 0).allowed);
        ck_assert_uint_le(ratelimit_keys(rl), 8);
    }
    ratelimit_free(rl);
}
END_TEST

/* No overflow at the extremes: the 128-bit units hold any n, period and clock. */
START_TEST(test_extremes)
{
    struct ratelimit *rl = ratelimit_new(UINT32_MAX, 3600000, 4);
    struct ratelimit_result r = hit(rl, "a", UINT64_MAX - 10);
    ck_assert(r.allowed);
    ck_assert_uint_eq(r.remaining, UINT32_MAX - 1);
    ck_assert_uint_eq(r.reset_ms, 1); /* T < 1 ms, rounded up */
    ratelimit_free(rl);

    rl = ratelimit_new(1, UINT64_MAX, 4);
    r = hit(rl, "a", UINT64_MAX);
    ck_assert(r.allowed);
    ck_assert_uint_eq(r.reset_ms, UINT64_MAX);
    r = hit(rl, "a", UINT64_MAX);
    ck_assert(!r.allowed);
    ck_assert_uint_eq(r.retry_after_ms, UINT64_MAX);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_new_rejects)
{
    ck_assert_ptr_null(ratelimit_new(0, 1000, 10));
    ck_assert_ptr_null(ratelimit_new(1, 0, 10));
    ck_assert_ptr_null(ratelimit_new(1, 1000, 0));
    ck_assert_ptr_null(ratelimit_new(1, 1000, (size_t)RATELIMIT_MAX_KEYS + 1));
    ratelimit_free(NULL);
    struct ratelimit *rl = ratelimit_new(1, 1000, 1);
    ck_assert_ptr_nonnull(rl);
    ck_assert_uint_eq(ratelimit_keys(rl), 0);
    ck_assert(hit(rl, "a", 0).allowed);
    ck_assert(hit(rl, "b", 0).allowed); /* one slot: a is gone */
    ck_assert(hit(rl, "a", 0).allowed);
    ck_assert_uint_eq(ratelimit_keys(rl), 1);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_parse_good)
{
    static const struct {
        const char *spec;
        uint32_t n;
        uint64_t ms;
    } good[] = {{"10/60s", 10, 60000}, {"100/1s", 100, 1000},
                {"5/1m", 5, 60000},    {"1000/1h", 1000, 3600000},
                {"20/500ms", 20, 500}, {"3/60", 3, 60000},
                {"1/1ms", 1, 1},       {"4294967295/1s", UINT32_MAX, 1000},
                {"007/2s", 7, 2000}};
    char err[128];

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint32_t n = 0;
        uint64_t ms = 0;
        ck_assert_msg(ratelimit_parse(good[i].spec, &n, &ms, err, sizeof err) == 0, "%s: %s",
                      good[i].spec, err);
        ck_assert_uint_eq(n, good[i].n);
        ck_assert_uint_eq(ms, good[i].ms);
    }
}
END_TEST

START_TEST(test_parse_bad)
{
    static const char *const bad[] = {"0/1s",
                                      "10",
                                      "10/",
                                      "/1s",
                                      "10/0s",
                                      "-1/1s",
                                      "10/5x",
                                      "99999999999/1s",
                                      "4294967296/1s",
                                      "",
                                      " 10/1s",
                                      "10 /1s",
                                      "10/ 1s",
                                      "10/1s ",
                                      "10/s",
                                      "+10/1s",
                                      "10/1s/",
                                      "10//1s",
                                      "1e3/1s",
                                      "10/-1s",
                                      "10/99999999999999999999h"};
    char err[128];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t n = 42;
        uint64_t ms = 42;
        err[0] = '\0';
        ck_assert_msg(ratelimit_parse(bad[i], &n, &ms, err, sizeof err) == -1, "%s", bad[i]);
        ck_assert_msg(strstr(err, bad[i]) != NULL, "'%s' not named in '%s'", bad[i], err);
        ck_assert_uint_eq(n, 42); /* left alone */
        ck_assert_uint_eq(ms, 42);
    }
    uint32_t n;
    uint64_t ms;
    ck_assert_int_eq(ratelimit_parse("10", &n, &ms, NULL, 0), -1); /* no room for a message */
}
END_TEST

static Suite *ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("gcra");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_burst_then_refused);
    tcase_add_test(tc, test_one_per_interval);
    tcase_add_test(tc, test_full_allowance_after_period);
    tcase_add_test(tc, test_fractional_interval);
    tcase_add_test(tc, test_window_holds_two_n_minus_one);
    tcase_add_test(tc, test_keys_independent);
    tcase_add_test(tc, test_extremes);
    suite_add_tcase(s, tc);

    tc = tcase_create("table");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_flood_bounded);
    tcase_add_test(tc, test_lru_order);
    tcase_add_test(tc, test_long_and_binary_keys);
    tcase_add_test(tc, test_long_keys_evicted);
    tcase_add_test(tc, test_new_rejects);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_parse_good);
    tcase_add_test(tc, test_parse_bad);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(ratelimit_suite());
}
