/*
 * check_cache.c - the TTL + LRU byte-bounded store. Time is a fake clock passed as now_ms.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "../check_main.h"

#define MB (1024 * 1024)
#define LONG_TTL (3600 * 1000)

static int set_str(struct cache *c, const char *k, const char *v, uint64_t ttl, uint64_t now)
{
    return cache_set(c, k, strlen(k), v, strlen(v), ttl, now);
}

/* The value under k at now as a NUL-terminated copy in a static buffer, or NULL. */
static const char *get_str(struct cache *c, const char *k, uint64_t now)
{
    static char out[4096];
    size_t len = 12345;
    const char *v = cache_get(c, k, strlen(k), now, &len, NULL);

    if (!v)
        return NULL;
    ck_assert_uint_lt(len, sizeof(out));
    memcpy(out, v, len);
    out[len] = '\0';
    return out;
}

static void key_of(char *buf, size_t size, const char *prefix, unsigned i)
{
    snprintf(buf, size, "%s%u", prefix, i);
}

START_TEST(test_set_get_replace_del_clear)
{
    struct cache *c = cache_new(MB);

    ck_assert_ptr_null(get_str(c, "a", 0));
    ck_assert_int_eq(set_str(c, "a", "one", LONG_TTL, 0), 0);
    ck_assert_str_eq(get_str(c, "a", 1), "one");
    ck_assert_uint_eq(cache_count(c), 1);
    ck_assert_uint_eq(cache_bytes(c), cache_entry_size(1, 3));

    ck_assert_int_eq(set_str(c, "a", "uno!", LONG_TTL, 2), 0); /* replace */
    ck_assert_str_eq(get_str(c, "a", 3), "uno!");
    ck_assert_uint_eq(cache_count(c), 1);
    ck_assert_uint_eq(cache_bytes(c), cache_entry_size(1, 4));

    ck_assert_int_eq(set_str(c, "b", "two", LONG_TTL, 4), 0);
    ck_assert_int_eq(cache_del(c, "a", 1), 0);
    ck_assert_int_eq(cache_del(c, "a", 1), -1);
    ck_assert_ptr_null(get_str(c, "a", 5));
    ck_assert_str_eq(get_str(c, "b", 5), "two");

    ck_assert_int_eq(set_str(c, "c", "three", LONG_TTL, 6), 0);
    cache_clear(c);
    ck_assert_uint_eq(cache_count(c), 0);
    ck_assert_uint_eq(cache_bytes(c), 0);
    ck_assert_ptr_null(get_str(c, "b", 7));
    ck_assert_ptr_null(get_str(c, "c", 7));
    ck_assert_int_eq(set_str(c, "c", "again", LONG_TTL, 8), 0); /* usable after clear */
    ck_assert_str_eq(get_str(c, "c", 9), "again");
    cache_free(c);
    cache_free(NULL);
}
END_TEST

START_TEST(test_ttl_boundary_on_get)
{
    struct cache *c = cache_new(MB);
    size_t len;

    ck_assert_int_eq(set_str(c, "k", "v", 100, 1000), 0);
    ck_assert_str_eq(get_str(c, "k", 1099), "v"); /* live while now < stored + ttl */
    ck_assert_uint_eq(cache_count(c), 1);
    ck_assert_ptr_null(cache_get(c, "k", 1, 1100, &len, NULL)); /* expired at exactly + ttl */
    ck_assert_uint_eq(cache_count(c), 0);                       /* and removed on the spot */
    ck_assert_uint_eq(cache_bytes(c), 0);
    ck_assert_int_eq(cache_del(c, "k", 1), -1);

    /* A set restarts the clock; an expired entry can be replaced. */
    ck_assert_int_eq(set_str(c, "k", "v1", 10, 0), 0);
    ck_assert_int_eq(set_str(c, "k", "v2", 10, 20), 0);
    ck_assert_str_eq(get_str(c, "k", 29), "v2");
    ck_assert_ptr_null(get_str(c, "k", 30));
    cache_free(c);
}
END_TEST

START_TEST(test_ttl_edges)
{
    struct cache *c = cache_new(MB);

    ck_assert_int_eq(set_str(c, "zero", "v", 0, 5), -1); /* ttl 0 refused */
    ck_assert_uint_eq(cache_count(c), 0);
    ck_assert_int_eq(set_str(c, "forever", "v", UINT64_MAX, 5), 0); /* saturates */
    ck_assert_str_eq(get_str(c, "forever", UINT64_MAX - 1), "v");
    ck_assert_uint_eq(cache_sweep(c, UINT64_MAX - 1, 0), 0);
    ck_assert_int_eq(set_str(c, "one", "v", 1, 7), 0);
    ck_assert_str_eq(get_str(c, "one", 7), "v");
    ck_assert_ptr_null(get_str(c, "one", 8));
    cache_free(c);
}
END_TEST

START_TEST(test_age)
{
    struct cache *c = cache_new(MB);
    size_t len;
    uint64_t age = 99;

    ck_assert_int_eq(set_str(c, "k", "value", 1000, 500), 0);
    ck_assert_ptr_nonnull(cache_get(c, "k", 1, 500, &len, &age));
    ck_assert_uint_eq(age, 0);
    ck_assert_ptr_nonnull(cache_get(c, "k", 1, 742, &len, &age));
    ck_assert_uint_eq(age, 242);
    ck_assert_uint_eq(len, 5);
    ck_assert_ptr_nonnull(cache_get(c, "k", 1, 800, &len, NULL)); /* age_ms optional */
    ck_assert_ptr_nonnull(cache_get(c, "k", 1, 400, &len, &age)); /* clock went back */
    ck_assert_uint_eq(age, 0);
    ck_assert_int_eq(set_str(c, "k", "new", 1000, 900), 0); /* replacing resets the age */
    ck_assert_ptr_nonnull(cache_get(c, "k", 1, 950, &len, &age));
    ck_assert_uint_eq(age, 50);
    cache_free(c);
}
END_TEST

START_TEST(test_sweep)
{
    struct cache *c = cache_new(MB);
    char k[32];

    /* k1..k10 expire at 10, 20, ..., 100; stored in an order unrelated to expiry. */
    for (unsigned i = 0; i < 10; i++) {
        unsigned n = (i * 7) % 10 + 1;
        key_of(k, sizeof(k), "k", n);
        ck_assert_int_eq(set_str(c, k, "v", n * 10, 0), 0);
    }
    ck_assert_uint_eq(cache_sweep(c, 9, 0), 0);
    ck_assert_uint_eq(cache_sweep(c, 30, 0), 3); /* k1, k2, k3: exactly at expiry counts */
    ck_assert_uint_eq(cache_count(c), 7);
    ck_assert_ptr_null(get_str(c, "k3", 0)); /* gone even at an earlier now */
    ck_assert_str_eq(get_str(c, "k4", 0), "v");

    /* A bounded sweep removes the soonest first. */
    ck_assert_uint_eq(cache_sweep(c, 1000, 2), 2);
    ck_assert_ptr_null(get_str(c, "k4", 0));
    ck_assert_ptr_null(get_str(c, "k5", 0));
    ck_assert_str_eq(get_str(c, "k6", 0), "v");
    ck_assert_uint_eq(cache_sweep(c, 65, 10), 1); /* k6 only */
    ck_assert_uint_eq(cache_count(c), 4);
    ck_assert_uint_eq(cache_sweep(c, 1000, 0), 4);
    ck_assert_uint_eq(cache_count(c), 0);
    ck_assert_uint_eq(cache_bytes(c), 0);
    ck_assert_uint_eq(cache_sweep(c, 1000, 0), 0);
    cache_free(c);
}
END_TEST

START_TEST(test_lru_eviction_order)
{
    size_t each = cache_entry_size(2, 10);
    struct cache *c = cache_new(4 * each + each / 2); /* room for four, not five */
    const char *v = "0123456789";

    ck_assert_int_eq(set_str(c, "k0", v, LONG_TTL, 0), 0);
    ck_assert_int_eq(set_str(c, "k1", v, LONG_TTL, 1), 0);
    ck_assert_int_eq(set_str(c, "k2", v, LONG_TTL, 2), 0);
    ck_assert_int_eq(set_str(c, "k3", v, LONG_TTL, 3), 0);
    ck_assert_uint_eq(cache_count(c), 4);
    ck_assert_ptr_nonnull(get_str(c, "k0", 4)); /* k0 read: k1 is now the coldest */

    ck_assert_int_eq(set_str(c, "k4", v, LONG_TTL, 5), 0);
    ck_assert_uint_eq(cache_count(c), 4);
    ck_assert_ptr_null(get_str(c, "k1", 6));
    ck_assert_ptr_nonnull(get_str(c, "k0", 6)); /* recently read: survived */

    ck_assert_int_eq(set_str(c, "k5", v, LONG_TTL, 7), 0); /* next coldest: k2 */
    ck_assert_ptr_null(get_str(c, "k2", 8));
    ck_assert_ptr_nonnull(get_str(c, "k3", 8));
    ck_assert_ptr_nonnull(get_str(c, "k4", 8));
    ck_assert_ptr_nonnull(get_str(c, "k5", 8));
    ck_assert_ptr_nonnull(get_str(c, "k0", 8));
    ck_assert_uint_le(cache_bytes(c), 4 * each + each / 2);

    /* A replacement is a use: k3 (coldest after the gets above) rewritten survives. */
    ck_assert_int_eq(set_str(c, "k3", "9876543210", LONG_TTL, 9), 0);
    ck_assert_int_eq(set_str(c, "k6", v, LONG_TTL, 10), 0);
    ck_assert_ptr_nonnull(get_str(c, "k3", 11));
    ck_assert_ptr_null(get_str(c, "k4", 11));
    cache_free(c);
}
END_TEST

START_TEST(test_expired_evicted_before_lru)
{
    size_t each = cache_entry_size(2, 1);
    struct cache *c = cache_new(3 * each);

    ck_assert_int_eq(set_str(c, "k0", "a", LONG_TTL, 0), 0);
    ck_assert_int_eq(set_str(c, "k1", "b", LONG_TTL, 0), 0);
    ck_assert_int_eq(set_str(c, "k2", "c", 10, 0), 0); /* the most recent, but short-lived */
    ck_assert_int_eq(set_str(c, "k3", "d", LONG_TTL, 50), 0);
    ck_assert_uint_eq(cache_count(c), 3);
    ck_assert_str_eq(get_str(c, "k0", 51), "a"); /* the LRU entry stayed */
    ck_assert_str_eq(get_str(c, "k1", 51), "b");
    ck_assert_ptr_null(get_str(c, "k2", 51));
    cache_free(c);
}
END_TEST

START_TEST(test_too_big_refused)
{
    size_t max = 4096;
    struct cache *c = cache_new(max);
    static char big[8192];

    ck_assert_int_eq(set_str(c, "a", "1", LONG_TTL, 0), 0);
    ck_assert_int_eq(set_str(c, "b", "2", LONG_TTL, 0), 0);
    size_t before = cache_bytes(c);

    /* The largest value that fits max exactly is taken; one byte more is not. */
    size_t fit = max - cache_entry_size(3, 0);
    while (cache_entry_size(3, fit + 1) <= max)
        fit++;
    while (cache_entry_size(3, fit) > max)
        fit--;
    ck_assert_int_eq(cache_set(c, "big", 3, big, sizeof(big), LONG_TTL, 1), -1);
    ck_assert_int_eq(cache_set(c, "big", 3, big, fit + 16, LONG_TTL, 1), -1);
    ck_assert_uint_eq(cache_count(c), 2); /* nothing was evicted for a refused entry */
    ck_assert_uint_eq(cache_bytes(c), before);

    /* A refused replacement leaves the old value in place. */
    ck_assert_int_eq(cache_set(c, "a", 1, big, sizeof(big), LONG_TTL, 2), -1);
    ck_assert_str_eq(get_str(c, "a", 3), "1");

    /* Overflowing lengths are refused before anything is read. */
    ck_assert_uint_eq(cache_entry_size(SIZE_MAX, 1), SIZE_MAX);
    ck_assert_uint_eq(cache_entry_size(1, SIZE_MAX / 2), SIZE_MAX);
    ck_assert_int_eq(cache_set(c, "a", 1, big, SIZE_MAX - 4, LONG_TTL, 4), -1);
    ck_assert_int_eq(cache_set(c, big, SIZE_MAX / 2, "v", 1, LONG_TTL, 4), -1);
    ck_assert_uint_eq(cache_count(c), 2);

    ck_assert_int_eq(cache_set(c, "big", 3, big, fit, LONG_TTL, 5), 0); /* exactly max */
    ck_assert_uint_eq(cache_bytes(c), max);
    ck_assert_uint_eq(cache_count(c), 1);
    cache_free(c);

    c = cache_new(0); /* a zero budget refuses everything */
    ck_assert_int_eq(cache_set(c, "", 0, "", 0, LONG_TTL, 0), -1);
    ck_assert_uint_eq(cache_count(c), 0);
    cache_free(c);
}
END_TEST

START_TEST(test_accounting)
{
    struct cache *c = cache_new(MB);
    char k[32], v[200];
    size_t sum = 0;

    /* The charge counts key, value and per-entry overhead. */
    /* 80-byte header + malloc's 8, rounded to 16, + 8 index pointers (see cache.h). */
    ck_assert_uint_ge(cache_entry_size(0, 0), 96 + 8 * sizeof(void *));
    ck_assert_uint_ge(cache_entry_size(10, 100), 110 + cache_entry_size(0, 0) - 16);
    ck_assert_uint_eq(cache_entry_size(10, 100) % 16, 0);

    memset(v, 'x', sizeof(v));
    for (unsigned i = 0; i < 1000; i++) {
        key_of(k, sizeof(k), "key-", i);
        ck_assert_int_eq(cache_set(c, k, strlen(k), v, i % sizeof(v), LONG_TTL, 0), 0);
        sum += cache_entry_size(strlen(k), i % sizeof(v));
    }
    ck_assert_uint_eq(cache_bytes(c), sum);
    ck_assert_uint_eq(cache_count(c), 1000);
    for (unsigned i = 0; i < 1000; i++) {
        key_of(k, sizeof(k), "key-", i);
        ck_assert_int_eq(cache_del(c, k, strlen(k)), 0);
    }
    ck_assert_uint_eq(cache_bytes(c), 0);
    ck_assert_uint_eq(cache_count(c), 0);

    sum = 0;
    for (unsigned i = 0; i < 1000; i++) {
        key_of(k, sizeof(k), "again-", i);
        ck_assert_int_eq(cache_set(c, k, strlen(k), v, 50, LONG_TTL, 0), 0);
        sum += cache_entry_size(strlen(k), 50);
    }
    ck_assert_uint_eq(cache_bytes(c), sum);
    cache_clear(c);
    ck_assert_uint_eq(cache_bytes(c), 0);
    cache_free(c);
}
END_TEST

START_TEST(test_many_distinct_keys_bounded)
{
    struct cache *c = cache_new(MB);
    static char v[1000];
    char k[32];
    size_t len;

    for (unsigned i = 0; i < 100000; i++) {
        key_of(k, sizeof(k), "distinct-key-", i);
        memset(v, (int)(i & 0xff), sizeof(v));
        size_t n = (i * 37) % sizeof(v);
        ck_assert_int_eq(cache_set(c, k, strlen(k), v, n, LONG_TTL, i), 0);
        ck_assert_uint_le(cache_bytes(c), MB);
    }
    ck_assert_uint_gt(cache_bytes(c), MB - cache_entry_size(20, sizeof(v)));
    /* The newest entries are all there, with their own contents. */
    for (unsigned i = 99990; i < 100000; i++) {
        key_of(k, sizeof(k), "distinct-key-", i);
        const unsigned char *p = cache_get(c, k, strlen(k), 100000, &len, NULL);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(len, (i * 37) % sizeof(v));
        for (size_t j = 0; j < len; j++)
            ck_assert_uint_eq(p[j], i & 0xff);
    }
    key_of(k, sizeof(k), "distinct-key-", 0);
    ck_assert_ptr_null(cache_get(c, k, strlen(k), 100000, &len, NULL));
    cache_free(c);
}
END_TEST

START_TEST(test_binary_keys)
{
    struct cache *c = cache_new(MB);
    const char k1[] = {'a', '\0', 'b'}, k2[] = {'a', '\0', 'c'}, k3[] = {'a'};
    const char val[] = {'\0', 'x', '\0', 'y'};
    size_t len;

    ck_assert_int_eq(cache_set(c, k1, 3, val, 4, LONG_TTL, 0), 0);
    ck_assert_int_eq(cache_set(c, k2, 3, "2", 1, LONG_TTL, 0), 0);
    ck_assert_int_eq(cache_set(c, k3, 1, "3", 1, LONG_TTL, 0), 0);
    ck_assert_int_eq(cache_set(c, "", 0, "empty key", 9, LONG_TTL, 0), 0);
    ck_assert_int_eq(cache_set(c, "nothing", 7, NULL, 0, LONG_TTL, 0), 0); /* empty value */
    ck_assert_uint_eq(cache_count(c), 5);

    const char *p = cache_get(c, k1, 3, 1, &len, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(p, val, 4);
    ck_assert_uint_eq((uintptr_t)p % 16, 0); /* values are aligned */
    p = cache_get(c, k2, 3, 1, &len, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_mem_eq(p, "2", 1);
    p = cache_get(c, k1, 2, 1, &len, NULL); /* "a\0" is a key of its own: absent */
    ck_assert_ptr_null(p);
    p = cache_get(c, NULL, 0, 1, &len, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_mem_eq(p, "empty key", 9);
    p = cache_get(c, "nothing", 7, 1, &len, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(cache_del(c, k1, 3), 0);
    ck_assert_ptr_nonnull(cache_get(c, k2, 3, 1, &len, NULL));
    cache_free(c);
}
END_TEST

START_TEST(test_replace_bigger_evicts)
{
    size_t each = cache_entry_size(2, 10);
    struct cache *c = cache_new(4 * each);
    static char big[4096];
    const char *v = "0123456789";

    ck_assert_int_eq(set_str(c, "k0", v, LONG_TTL, 0), 0);
    ck_assert_int_eq(set_str(c, "k1", v, LONG_TTL, 0), 0);
    ck_assert_int_eq(set_str(c, "k2", v, LONG_TTL, 0), 0);
    ck_assert_int_eq(set_str(c, "k3", v, LONG_TTL, 0), 0);
    ck_assert_uint_eq(cache_bytes(c), 4 * each);

    /* k3 grows to (at most) three entries' worth: k0 and k1, the coldest, make room. */
    size_t n = 10;
    while (cache_entry_size(2, n + 1) <= 3 * each)
        n++;
    ck_assert_uint_gt(cache_entry_size(2, n), 2 * each);
    memset(big, 'B', n);
    ck_assert_int_eq(cache_set(c, "k3", 2, big, n, LONG_TTL, 1), 0);
    ck_assert_uint_eq(cache_count(c), 2);
    ck_assert_ptr_null(get_str(c, "k0", 2));
    ck_assert_ptr_null(get_str(c, "k1", 2));
    ck_assert_str_eq(get_str(c, "k2", 2), v);
    size_t len;
    const char *p = cache_get(c, "k3", 2, 2, &len, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(p[n - 1], 'B');
    ck_assert_uint_le(cache_bytes(c), 4 * each);
    cache_free(c);
}
END_TEST

START_TEST(test_set_from_own_value)
{
    size_t each = cache_entry_size(1, 100);
    struct cache *c = cache_new(2 * each);
    char v[100];
    size_t len;

    memset(v, 'q', sizeof(v));
    ck_assert_int_eq(cache_set(c, "a", 1, v, sizeof(v), LONG_TTL, 0), 0);
    ck_assert_int_eq(cache_set(c, "b", 1, "b", 1, LONG_TTL, 0), 0);
    /* a's value, stored under a again, and under c (which evicts a): copied before freed. */
    const void *p = cache_get(c, "a", 1, 1, &len, NULL);
    ck_assert_int_eq(cache_set(c, "a", 1, p, len, LONG_TTL, 2), 0);
    p = cache_get(c, "a", 1, 3, &len, NULL);
    ck_assert_int_eq(cache_set(c, "b", 1, "b", 1, LONG_TTL, 4), 0); /* a is coldest now */
    p = cache_get(c, "a", 1, 5, &len, NULL);
    ck_assert_int_eq(cache_set(c, "c", 1, p, len, LONG_TTL, 6), 0);
    p = cache_get(c, "c", 1, 7, &len, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_mem_eq(p, v, sizeof(v));
    cache_free(c);
}
END_TEST

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random ops on 64 keys against a model; with a roomy budget nothing is ever evicted, so
   every get must agree with the model exactly. */
START_TEST(test_random_against_model)
{
    enum { NKEYS = 64 };
    struct {
        int present;
        unsigned val;
        uint64_t expires;
    } model[NKEYS] = {{0}};
    struct cache *c = cache_new(MB);
    uint64_t now = 0;
    char k[16];
    size_t len;

    for (int op = 0; op < 200000; op++) {
        unsigned i = rng() % NKEYS, r = rng() % 100, val = (unsigned)rng();
        key_of(k, sizeof(k), "m", i);
        now += rng() % 3;
        if (r < 40) {
            uint64_t ttl = 1 + rng() % 200;
            ck_assert_int_eq(cache_set(c, k, strlen(k), &val, sizeof(val), ttl, now), 0);
            model[i].present = 1;
            model[i].val = val;
            model[i].expires = now + ttl;
        } else if (r < 85) {
            const unsigned *p = cache_get(c, k, strlen(k), now, &len, NULL);
            int live = model[i].present && now < model[i].expires;
            ck_assert_int_eq(p != NULL, live);
            if (p)
                ck_assert_uint_eq(*p, model[i].val);
            model[i].present = live;
        } else if (r < 95) {
            ck_assert_int_eq(cache_del(c, k, strlen(k)), model[i].present ? 0 : -1);
            model[i].present = 0;
        } else {
            size_t want = 0, got = cache_sweep(c, now, 0);
            for (unsigned j = 0; j < NKEYS; j++) {
                if (model[j].present && now >= model[j].expires) {
                    model[j].present = 0;
                    want++;
                }
            }
            ck_assert_uint_eq(got, want);
        }
        size_t count = 0, bytes = 0;
        for (unsigned j = 0; j < NKEYS; j++) {
            if (model[j].present) {
                count++;
                bytes += cache_entry_size(j < 10 ? 2 : 3, sizeof(unsigned));
            }
        }
        ck_assert_uint_eq(cache_count(c), count);
        ck_assert_uint_eq(cache_bytes(c), bytes);
    }
    cache_free(c);
}
END_TEST

/* Under a tight budget entries vanish, but a hit is always the last value set. */
START_TEST(test_random_tight_budget)
{
    enum { NKEYS = 2000 };
    static unsigned last[NKEYS];
    static char v[600];
    struct cache *c = cache_new(64 * 1024);
    char k[16];
    size_t len;

    for (uint64_t now = 0; now < 300000; now++) {
        unsigned i = rng() % NKEYS, r = rng() % 100;
        key_of(k, sizeof(k), "t", i);
        if (r < 50) {
            size_t n = sizeof(unsigned) + rng() % (sizeof(v) - sizeof(unsigned));
            last[i] = (unsigned)rng();
            memcpy(v, &last[i], sizeof(unsigned));
            ck_assert_int_eq(cache_set(c, k, strlen(k), v, n, 1 + rng() % 5000, now), 0);
        } else if (r < 95) {
            const char *p = cache_get(c, k, strlen(k), now, &len, NULL);
            if (p) {
                unsigned got;
                memcpy(&got, p, sizeof(got));
                ck_assert_uint_eq(got, last[i]);
            }
        } else if (r < 98) {
            cache_del(c, k, strlen(k));
        } else {
            cache_sweep(c, now, 1 + rng() % 20);
        }
        ck_assert_uint_le(cache_bytes(c), 64 * 1024);
    }
    cache_clear(c);
    ck_assert_uint_eq(cache_bytes(c), 0);
    cache_free(c);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("basic");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_set_get_replace_del_clear);
    tcase_add_test(tc, test_ttl_boundary_on_get);
    tcase_add_test(tc, test_ttl_edges);
    tcase_add_test(tc, test_age);
    tcase_add_test(tc, test_sweep);
    tcase_add_test(tc, test_binary_keys);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_lru_eviction_order);
    tcase_add_test(tc, test_expired_evicted_before_lru);
    tcase_add_test(tc, test_too_big_refused);
    tcase_add_test(tc, test_accounting);
    tcase_add_test(tc, test_replace_bigger_evicts);
    tcase_add_test(tc, test_set_from_own_value);
    suite_add_tcase(s, tc);

    tc = tcase_create("load"); /* generous: these run under the sanitizers too */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_many_distinct_keys_bounded);
    tcase_add_test(tc, test_random_against_model);
    tcase_add_test(tc, test_random_tight_budget);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(cache_suite());
}
