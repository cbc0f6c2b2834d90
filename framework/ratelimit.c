/*
 * ratelimit.c - GCRA per key over a fixed-size hash table with LRU eviction (see ratelimit.h).
 *
 * Time is counted in units of 1/n ms, so the emission interval T = period/n is exactly
 * period_ms units and a period is period_ms * n units: no rounding ever accumulates. In those
 * units a time needs up to 64 + 32 bits, hence the 128-bit arithmetic; results go back to
 * milliseconds rounded up, so "retry after r ms" is never too early, and r - 1 would be.
 *
 * Entries are one array indexed by uint32_t: the bucket chains and the LRU list link them
 * by index, slots are handed out in order until the table is full, and from then on the
 * least recently used entry is taken over. Nothing is allocated after ratelimit_new.
 *
 * A limiter is one block (struct, entries, buckets), so it can live in memory shared by the
 * worker processes (ratelimit_init), which its process-shared mutex then serialises. The
 * mutex is robust: a worker killed while holding it leaves a table that may be half
 * updated, so the next one to lock it starts the table afresh (every key forgotten).
 */
#include "ratelimit.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "siphash.h"
#include "xalloc.h"

#define NIL UINT32_MAX
#define DIGEST_LEN 16
#define KEY_DIGEST (0x100 | DIGEST_LEN) /* a long key's len: a flag, and the bytes it keeps */
#define KEPT(len) ((len)&0xff)

typedef unsigned __int128 u128;

struct entry {
    u128 tat;            /* theoretical arrival time in 1/n ms; 0 (any past time) = fresh */
    uint64_t hash;       /* of the whole key, under seed[0..1] */
    uint32_t prev, next; /* LRU list; prev is more recently used */
    uint32_t chain;      /* the next entry in the same bucket */
    uint16_t len;        /* key length (KEPT(len) bytes in key), or KEY_DIGEST */
    uint8_t key[RATELIMIT_KEY_MAX];
};

struct ratelimit {
    pthread_mutex_t lock;
    bool owned; /* by ratelimit_new: freed by ratelimit_free */
    uint32_t n;
    uint64_t period_ms;
    uint64_t seed[4]; /* two SipHash keys: the hash, and a long key's second digest half */
    struct entry *entries;
    uint32_t *buckets;                       /* mask + 1 chain heads */
    uint32_t max_keys, used, mask, mru, lru; /* mru, lru: the LRU list's ends */
};

/* A key as the table stores it: its own bytes, or the digest of a long one. */
struct keyref {
    uint64_t hash;
    uint16_t len;
    const uint8_t *bytes;
    uint8_t digest[DIGEST_LEN];
};

int ratelimit_parse(const char *spec, uint32_t *n, uint64_t *period_ms, char *err, size_t errlen)
{
    const char *s = spec, *why = NULL;
    uint64_t v = 0, ms = 0;

    for (; isdigit((unsigned char)*s) && v <= UINT32_MAX; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    if (s > spec && (v == 0 || v > UINT32_MAX))
        why = "N must be 1..4294967295";
    else if (s == spec || *s != '/')
        why = "use N/PERIOD, e.g. 10/60s";
    else if (config_parse_duration(s + 1, &ms) < 0)
        why = "bad period (use e.g. 500ms, 60s, 1m, 1h)";
    else if (ms == 0)
        why = "the period must be greater than 0";
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "bad rate '%s': %s", spec, why);
        return -1;
    }
    *n = (uint32_t)v;
    *period_ms = ms;
    return 0;
}

static size_t buckets_for(size_t max_keys)
{
    size_t nbuckets = 1;

    while (nbuckets < max_keys) /* a load factor of at most 1 */
        nbuckets <<= 1;
    return nbuckets;
}

#define HEAD_SIZE ((sizeof(struct ratelimit) + 15) & ~(size_t)15)

size_t ratelimit_size(size_t max_keys)
{
    return HEAD_SIZE + max_keys * sizeof(struct entry) + buckets_for(max_keys) * sizeof(uint32_t);
}

/* Forgets every key. */
static void table_clear(struct ratelimit *rl)
{
    rl->used = 0;
    rl->mru = rl->lru = NIL;
    memset(rl->entries, 0, (size_t)rl->max_keys * sizeof(struct entry));
    memset(rl->buckets, 0xff, ((size_t)rl->mask + 1) * sizeof(uint32_t)); /* all NIL */
}

struct ratelimit *ratelimit_init(void *mem, uint32_t n, uint64_t period_ms, size_t max_keys)
{
    if (n == 0 || period_ms == 0 || max_keys == 0 || max_keys > RATELIMIT_MAX_KEYS)
        return NULL;
    struct ratelimit *rl = mem;
    pthread_mutexattr_t attr;

    memset(rl, 0, sizeof(*rl));
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&rl->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    rl->n = n;
    rl->period_ms = period_ms;
    rl->max_keys = (uint32_t)max_keys;
    rl->mask = (uint32_t)(buckets_for(max_keys) - 1);
    rl->entries = (struct entry *)((char *)mem + HEAD_SIZE);
    rl->buckets = (uint32_t *)(rl->entries + max_keys);
    table_clear(rl);
    siphash_seed(rl->seed); /* two keys: the hash's, and a long key's digest's */
    siphash_seed(rl->seed + 2);
    return rl;
}

struct ratelimit *ratelimit_new(uint32_t n, uint64_t period_ms, size_t max_keys)
{
    if (n == 0 || period_ms == 0 || max_keys == 0 || max_keys > RATELIMIT_MAX_KEYS)
        return NULL;
    struct ratelimit *rl = ratelimit_init(xmalloc(ratelimit_size(max_keys)), n, period_ms,
                                          max_keys);
    rl->owned = true;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl || !rl->owned)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

size_t ratelimit_keys(const struct ratelimit *rl)
{
    return rl->used;
}

size_t ratelimit_memory(const struct ratelimit *rl)
{
    return ratelimit_size(rl->max_keys);
}

/* Hashes key; a long one is replaced by its digest under both seeds. */
static void key_prepare(const struct ratelimit *rl, const uint8_t *key, size_t len,
                        struct keyref *k)
{
    k->hash = siphash13(rl->seed, key, len);
    if (len <= RATELIMIT_KEY_MAX) {
        k->len = (uint16_t)len;
        k->bytes = key;
        return;
    }
    uint64_t h[2] = {k->hash, siphash13(rl->seed + 2, key, len)};
    memcpy(k->digest, h, DIGEST_LEN);
    k->len = KEY_DIGEST;
    k->bytes = k->digest;
}

static uint32_t lookup(const struct ratelimit *rl, const struct keyref *k)
{
    for (uint32_t i = rl->buckets[k->hash & rl->mask]; i != NIL; i = rl->entries[i].chain) {
        const struct entry *e = &rl->entries[i];
        if (e->hash == k->hash && e->len == k->len && memcmp(e->key, k->bytes, KEPT(k->len)) == 0)
            return i;
    }
    return NIL;
}

static void lru_unlink(struct ratelimit *rl, uint32_t i)
{
    struct entry *e = &rl->entries[i];

    if (e->prev != NIL)
        rl->entries[e->prev].next = e->next;
    else
        rl->mru = e->next;
    if (e->next != NIL)
        rl->entries[e->next].prev = e->prev;
    else
        rl->lru = e->prev;
}

static void lru_push(struct ratelimit *rl, uint32_t i)
{
    struct entry *e = &rl->entries[i];

    e->prev = NIL;
    e->next = rl->mru;
    if (rl->mru != NIL)
        rl->entries[rl->mru].prev = i;
    else
        rl->lru = i;
    rl->mru = i;
}

/* Takes entry i out of its bucket chain (short: the load factor is at most 1). */
static void chain_unlink(struct ratelimit *rl, uint32_t i)
{
    uint32_t *p = &rl->buckets[rl->entries[i].hash & rl->mask];

    while (*p != i)
        p = &rl->entries[*p].chain;
    *p = rl->entries[i].chain;
}

/* The entry for k, made most recently used; a new one is fresh, in a free or evicted slot. */
static struct entry *entry_get(struct ratelimit *rl, const struct keyref *k)
{
    uint32_t i = lookup(rl, k);

    if (i != NIL) {
        lru_unlink(rl, i);
        lru_push(rl, i);
        return &rl->entries[i];
    }
    if (rl->used < rl->max_keys) {
        i = rl->used++;
    } else {
        i = rl->lru;
        lru_unlink(rl, i);
        chain_unlink(rl, i);
    }
    struct entry *e = &rl->entries[i];
    e->tat = 0;
    e->hash = k->hash;
    e->len = k->len;
    if (k->len)
        memcpy(e->key, k->bytes, KEPT(k->len));
    e->chain = rl->buckets[k->hash & rl->mask];
    rl->buckets[k->hash & rl->mask] = i;
    lru_push(rl, i);
    return e;
}

/* Units of 1/n ms to whole ms, rounded up. */
static uint64_t to_ms(u128 units, uint32_t n)
{
    return (uint64_t)((units + n - 1) / n);
}

/*
 * GCRA in units of 1/n ms: T = period_ms, the period P = period_ms * n. With
 * tat = max(TAT, now), the request is allowed when tat + T - now <= P, and TAT becomes
 * tat + T; otherwise it waits until tat + T - P. The key is whole again at TAT.
 */
/* Counts one request for k (the lock held). */
static struct ratelimit_result hit(struct ratelimit *rl, const struct keyref *k, uint64_t now_ms)
{
    struct entry *e = entry_get(rl, k);
    u128 T = rl->period_ms, P = T * rl->n, now = (u128)now_ms * rl->n;
    u128 tat = e->tat > now ? e->tat : now;
    struct ratelimit_result r = {.limit = rl->n};

    if (tat + T - now > P) {
        r.retry_after_ms = to_ms(tat + T - now - P, rl->n);
        r.reset_ms = to_ms(tat - now, rl->n);
        return r;
    }
    e->tat = tat + T;
    r.allowed = true;
    r.remaining = (uint32_t)((P - (e->tat - now)) / T);
    r.reset_ms = to_ms(e->tat - now, rl->n);
    return r;
}

struct ratelimit_result ratelimit_hit(struct ratelimit *rl, const void *key, size_t key_len,
                                      uint64_t now_ms)
{
    static const uint8_t none[1];
    struct keyref k;

    key_prepare(rl, key_len ? key : none, key_len, &k); /* hashing needs no lock */
    if (pthread_mutex_lock(&rl->lock) == EOWNERDEAD) { /* its holder died mid-update */
        table_clear(rl);
        pthread_mutex_consistent(&rl->lock);
    }
    struct ratelimit_result r = hit(rl, &k, now_ms);
    pthread_mutex_unlock(&rl->lock);
    return r;
}
