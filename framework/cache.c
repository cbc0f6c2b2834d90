/*
 * cache.c - a TTL key/value store bounded by bytes with LRU eviction (see cache.h).
 *
 * Each entry is one allocation (header, value 16-aligned, key) on three structures:
 *  - a chained hash table hashed with SipHash-1-3 under a random key from getrandom(), so
 *    clients choosing keys cannot pile them into one bucket;
 *  - an intrusive LRU list (mru = most recently used, lru = the next to evict);
 *  - a binary min-heap by expiry, so a sweep or an expired-first eviction costs O(log n) per
 *    entry removed and never looks at live entries.
 * The bucket and heap arrays share one size, nslots (a power of two >= CACHE_MIN_SLOTS): it
 * doubles when the count would pass it and halves when the count falls below a quarter of
 * it. So between calls nslots <= 4 * count (or the minimum): at most 8 index pointers per
 * entry, the share cache_entry_size() charges. The hysteresis stops a set/del pair at a
 * boundary from rehashing every time.
 */
#include "cache.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"
#include "xalloc.h"

#define CACHE_MIN_SLOTS 16
#define CACHE_INDEX_SHARE (8 * sizeof(void *))

struct entry {
    struct entry *hnext;         /* the next entry in this hash bucket */
    struct entry *newer, *older; /* LRU list neighbours */
    uint64_t hash, stored_ms, expires_ms;
    size_t key_len, len, charge, heap_idx;
    unsigned char data[] __attribute__((aligned(16))); /* value, then key */
};

struct cache {
    size_t max_bytes, bytes, count;
    size_t nslots; /* buckets, and the heap's capacity */
    struct entry **buckets;
    struct entry **heap;     /* heap[0] expires first; count entries */
    struct entry *mru, *lru; /* LRU list ends */
    uint64_t seed[2];
};

static void lru_unlink(struct cache *c, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->mru = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->lru = e->newer;
}

static void lru_push(struct cache *c, struct entry *e)
{
    e->newer = NULL;
    e->older = c->mru;
    if (c->mru)
        c->mru->newer = e;
    else
        c->lru = e;
    c->mru = e;
}

static void heap_put(struct cache *c, size_t i, struct entry *e)
{
    c->heap[i] = e;
    e->heap_idx = i;
}

/* Moves heap[i] up or down to where its expiry belongs. */
static void heap_fix(struct cache *c, size_t i)
{
    struct entry *e = c->heap[i];

    while (i > 0 && c->heap[(i - 1) / 2]->expires_ms > e->expires_ms) {
        heap_put(c, i, c->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (size_t kid; (kid = 2 * i + 1) < c->count; i = kid) {
        if (kid + 1 < c->count && c->heap[kid + 1]->expires_ms < c->heap[kid]->expires_ms)
            kid++;
        if (c->heap[kid]->expires_ms >= e->expires_ms)
            break;
        heap_put(c, i, c->heap[kid]);
    }
    heap_put(c, i, e);
}

/* Resizes the index for n entries (see the top of the file), rehashing when it changes. */
static void index_fit(struct cache *c, size_t n)
{
    size_t ns = c->nslots;

    while (n > ns)
        ns *= 2;
    while (ns > CACHE_MIN_SLOTS && n < ns / 4)
        ns /= 2;
    if (ns == c->nslots)
        return;
    free(c->buckets);
    c->buckets = xcalloc(ns, sizeof(*c->buckets));
    c->heap = xrealloc(c->heap, ns * sizeof(*c->heap));
    c->nslots = ns;
    for (struct entry *e = c->mru; e; e = e->older) {
        struct entry **b = &c->buckets[e->hash & (ns - 1)];
        e->hnext = *b;
        *b = e;
    }
}

/* The entry for key[0..key_len), whose hash is hash, or NULL. */
static struct entry *find(const struct cache *c, const void *key, size_t key_len, uint64_t hash)
{
    for (struct entry *e = c->buckets[hash & (c->nslots - 1)]; e; e = e->hnext) {
        if (e->hash == hash && e->key_len == key_len &&
            (key_len == 0 || memcmp(e->data + e->len, key, key_len) == 0))
            return e;
    }
    return NULL;
}

/* Links e into all three structures; the index must have room (count < nslots). */
static void entry_insert(struct cache *c, struct entry *e)
{
    struct entry **b = &c->buckets[e->hash & (c->nslots - 1)];

    assert(c->count < c->nslots);
    e->hnext = *b;
    *b = e;
    lru_push(c, e);
    heap_put(c, c->count++, e);
    heap_fix(c, e->heap_idx);
    c->bytes += e->charge;
}

/* Unlinks e from all three structures and frees it; leaves the index size alone. */
static void entry_remove(struct cache *c, struct entry *e)
{
    struct entry **pp = &c->buckets[e->hash & (c->nslots - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    if (e->heap_idx != --c->count) {
        heap_put(c, e->heap_idx, c->heap[c->count]);
        heap_fix(c, e->heap_idx);
    }
    c->bytes -= e->charge;
    free(e);
}

/* Evicts expired entries first, then the least recently used, until charge more fits. */
static void make_room(struct cache *c, size_t charge, uint64_t now_ms)
{
    while (c->bytes > c->max_bytes - charge)
        entry_remove(c, c->heap[0]->expires_ms <= now_ms ? c->heap[0] : c->lru);
}

size_t cache_entry_size(size_t key_len, size_t len)
{
    if (key_len > SIZE_MAX / 4 || len > SIZE_MAX / 4)
        return SIZE_MAX;
    /* glibc's malloc: an 8-byte chunk header, chunks in steps of 16. */
    size_t chunk = (sizeof(struct entry) + key_len + len + sizeof(size_t) + 15) & ~(size_t)15;
    return chunk + CACHE_INDEX_SHARE;
}

struct cache *cache_new(size_t max_bytes)
{
    struct cache *c = xcalloc(1, sizeof(*c));

    c->max_bytes = max_bytes;
    c->nslots = CACHE_MIN_SLOTS;
    c->buckets = xcalloc(c->nslots, sizeof(*c->buckets));
    c->heap = xcalloc(c->nslots, sizeof(*c->heap));
    siphash_seed(c->seed);
    return c;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    cache_clear(c);
    free(c->buckets);
    free(c->heap);
    free(c);
}

int cache_set(struct cache *c, const void *key, size_t key_len, const void *value, size_t len,
              uint64_t ttl_ms, uint64_t now_ms)
{
    size_t charge = cache_entry_size(key_len, len);

    if (ttl_ms == 0 || charge > c->max_bytes)
        return -1;
    /* Copy before anything is freed: value may point into an entry about to go. */
    struct entry *e = xmalloc(sizeof(*e) + key_len + len);
    if (len)
        memcpy(e->data, value, len);
    if (key_len)
        memcpy(e->data + len, key, key_len);
    e->key_len = key_len;
    e->len = len;
    e->charge = charge;
    e->stored_ms = now_ms;
    e->expires_ms = ttl_ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + ttl_ms;

    e->hash = siphash13(c->seed, key, key_len);
    struct entry *old = find(c, key, key_len, e->hash);
    if (old)
        entry_remove(c, old);
    make_room(c, charge, now_ms);
    index_fit(c, c->count + 1);
    entry_insert(c, e);
    return 0;
}

const void *cache_get(struct cache *c, const void *key, size_t key_len, uint64_t now_ms,
                      size_t *len, uint64_t *age_ms)
{
    struct entry *e = find(c, key, key_len, siphash13(c->seed, key, key_len));

    if (!e)
        return NULL;
    if (now_ms >= e->expires_ms) {
        entry_remove(c, e);
        index_fit(c, c->count);
        return NULL;
    }
    lru_unlink(c, e);
    lru_push(c, e);
    *len = e->len;
    if (age_ms)
        *age_ms = now_ms > e->stored_ms ? now_ms - e->stored_ms : 0;
    return e->data;
}

int cache_del(struct cache *c, const void *key, size_t key_len)
{
    struct entry *e = find(c, key, key_len, siphash13(c->seed, key, key_len));

    if (!e)
        return -1;
    entry_remove(c, e);
    index_fit(c, c->count);
    return 0;
}

void cache_clear(struct cache *c)
{
    while (c->mru) {
        struct entry *e = c->mru;
        c->mru = e->older;
        free(e);
    }
    c->lru = NULL;
    c->count = 0;
    c->bytes = 0;
    memset(c->buckets, 0, c->nslots * sizeof(*c->buckets));
    index_fit(c, 0);
}

size_t cache_del_prefix(struct cache *c, const void *prefix, size_t n)
{
    size_t removed = 0;

    for (struct entry *e = c->mru, *older; e; e = older) {
        older = e->older;
        if (e->key_len >= n && memcmp(e->data + e->len, prefix, n) == 0) {
            entry_remove(c, e);
            removed++;
        }
    }
    index_fit(c, c->count);
    return removed;
}

size_t cache_sweep(struct cache *c, uint64_t now_ms, size_t max_entries)
{
    size_t n = 0;

    while (c->count > 0 && c->heap[0]->expires_ms <= now_ms && (!max_entries || n < max_entries)) {
        entry_remove(c, c->heap[0]);
        n++;
    }
    index_fit(c, c->count);
    return n;
}

size_t cache_bytes(const struct cache *c)
{
    return c->bytes;
}

size_t cache_count(const struct cache *c)
{
    return c->count;
}
