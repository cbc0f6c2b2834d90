/*
 * cache.h - a key -> bytes store with a TTL per entry, bounded by a byte budget with LRU
 * eviction. Backs the HTTP response cache and the plugins' sq_cache_* API.
 *
 * Keys and values are arbitrary bytes (NUL bytes included); the cache keeps its own copies.
 * Time is whatever millisecond clock the caller passes as now_ms (the loop's monotonic time;
 * a fake one in tests). An entry stored at t with ttl is live while now < t + ttl and
 * expired from now == t + ttl on.
 *
 * Memory: cache_bytes() is the sum of each entry's charge, which counts honestly what the
 * entry costs the process: its one allocation (header + key + value) rounded as glibc's
 * malloc rounds it, plus its worst-case share of the index (hash buckets and expiry heap,
 * which never hold more than 8 pointers per entry). So the real footprint stays within
 * max_bytes plus a fixed ~1 KB (struct cache and the smallest index), whatever the mix of
 * entry sizes. cache_entry_size() gives the charge of an entry before storing it.
 *
 * Not thread-safe: one cache belongs to one loop.
 */
#ifndef SQUALL_CACHE_H
#define SQUALL_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cache;

/* The bytes an entry with a key_len-byte key and a len-byte value is charged (and refused
   when that exceeds max_bytes): header + key + value + malloc's chunk header, rounded up to
   16, plus 8 pointers of index share. SIZE_MAX when it would overflow. */
size_t cache_entry_size(size_t key_len, size_t len);

/* A cache of at most max_bytes (0 refuses everything). Aborts on out-of-memory. Free it with
   cache_free. */
struct cache *cache_new(size_t max_bytes);

/* Frees c and every entry in it; pointers from cache_get die with it. NULL is a no-op. */
void cache_free(struct cache *c);

/*
 * Stores a copy of value[0..len) under key[0..key_len), live for ttl_ms from now_ms, replacing
 * any entry with that key. value may point into the cache itself (e.g. a cache_get result).
 * To make room it drops expired entries first, then the least recently used ones, until the
 * total charge fits max_bytes.
 * Returns 0, or -1 with the cache untouched (an existing entry for the key stays) when ttl_ms
 * is 0 or the entry's charge alone exceeds max_bytes. Aborts on out-of-memory.
 */
int cache_set(struct cache *c, const void *key, size_t key_len, const void *value, size_t len,
              uint64_t ttl_ms, uint64_t now_ms);

/*
 * The value stored under key[0..key_len) if it is live at now_ms, else NULL (an expired entry
 * is removed on the spot). On a hit, *len is set to its length, *age_ms (when age_ms is not
 * NULL) to now_ms minus the time it was stored (0 if the clock went back), and the entry
 * becomes the most recently used. The value is aligned to 16 bytes.
 *
 * The pointer is owned by the cache and stays valid until the next cache_set, cache_del,
 * cache_clear, cache_sweep or cache_free on c, or a cache_get that finds this same entry
 * expired. A cache_get never frees any entry but the expired one it was asked for, so gets
 * of other keys in between are safe. Copy the value to keep it longer.
 */
const void *cache_get(struct cache *c, const void *key, size_t key_len, uint64_t now_ms,
                      size_t *len, uint64_t *age_ms);

/* Removes the entry for key[0..key_len), expired or not. Returns 0, or -1 when absent. */
int cache_del(struct cache *c, const void *key, size_t key_len);

/* Removes every entry whose key starts with prefix[0..n) and returns how many; a walk over
   all entries (for a plugin's sq_cache_clear, not for request paths). */
size_t cache_del_prefix(struct cache *c, const void *prefix, size_t n);

/* Removes every entry; cache_bytes() is 0 afterwards. */
void cache_clear(struct cache *c);

/*
 * Removes up to max_entries entries expired at now_ms (0 means all of them), soonest expiry
 * first; returns how many it removed. Meant for a periodic timer: the cost is O(k log n) for
 * k removals (entries sit in a min-heap by expiry), never a scan of live entries.
 */
size_t cache_sweep(struct cache *c, uint64_t now_ms, size_t max_entries);

/* The bytes charged for the entries now in c (see the top of this file); <= max_bytes. */
size_t cache_bytes(const struct cache *c);

/* How many entries c holds, expired ones not yet removed included. */
size_t cache_count(const struct cache *c);

#endif
