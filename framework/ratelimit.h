/*
 * ratelimit.h - "N requests per PERIOD" per key (a client address, an API key), exact,
 * O(1) per request, in memory fixed when the limiter is made.
 *
 * The algorithm is GCRA (the generic cell rate algorithm, the token bucket seen as a
 * schedule). Each key keeps one "theoretical arrival time" TAT; the emission interval is
 * T = PERIOD/N (kept exact, fractions of a millisecond included) and a request at time t is
 *
 *     allowed  iff  max(TAT, t) + T - t <= PERIOD,   and then TAT := max(TAT, t) + T.
 *
 * What that means at the boundaries:
 *  - a fresh key (or one idle long enough) gets exactly N requests at once; the N+1th is
 *    refused with retry_after = T;
 *  - after that one request is allowed every T, never more on average, with no drift;
 *  - a key that spent its whole burst at t0 has its full burst of N again at exactly
 *    t0 + PERIOD (reset_ms said PERIOD after the last one), and (when T > 1 ms) N-1 one
 *    millisecond before;
 *  - it is a bucket, not a sliding window: after a burst at t0 one more request is allowed
 *    at t0 + T, t0 + 2T, ..., so [t0, t0 + PERIOD) may hold up to 2N - 1 requests; any
 *    span of D ms holds at most N + floor(D / T), so the long-run rate is N per PERIOD.
 *
 * Keys live in a hash table (SipHash-1-3 under a random seed from getrandom(), so collisions
 * cannot be aimed) of max_keys entries allocated once, with a least-recently-used list: when
 * the table is full the key used least recently is forgotten and comes back fresh, as
 * nginx's limit_req does when its zone is full. Keys up to RATELIMIT_KEY_MAX bytes are kept
 * and compared byte for byte; a longer key is kept as a 128-bit keyed digest of all its
 * bytes (two such keys would share a state only on a 128-bit collision, which an attacker
 * who does not know the seed cannot search for). Each entry costs about 300 bytes.
 *
 * A limiter may live in memory shared by processes (ratelimit_init): ratelimit_hit takes its
 * process-shared lock, so the workers of one host count against one table.
 */
#ifndef SQUALL_RATELIMIT_H
#define SQUALL_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX 255         /* keys longer than this are stored as a digest */
#define RATELIMIT_MAX_KEYS (1u << 24) /* the largest max_keys ratelimit_new accepts */

struct ratelimit;

/* The verdict on one request and the numbers for Retry-After and the RateLimit-* headers. */
struct ratelimit_result {
    bool allowed;
    uint32_t limit;          /* N */
    uint32_t remaining;      /* requests still allowed right now after this one; 0 if refused */
    uint64_t reset_ms;       /* ms until the key is back to its full allowance of N */
    uint64_t retry_after_ms; /* when refused: ms until one request would be allowed; else 0 */
};

/*
 * Parses "N/PERIOD": "10/60s", "100/1s", "5/1m", "1000/1h", "20/500ms"; N is 1..2^32-1 in
 * decimal, PERIOD a duration as config_parse_duration reads it (a bare number is seconds)
 * and greater than 0. Returns 0 and sets *n and *period_ms, or -1 with a message in err
 * (which may be NULL when errlen is 0) and leaves them alone.
 */
int ratelimit_parse(const char *spec, uint32_t *n, uint64_t *period_ms, char *err, size_t errlen);

/*
 * A limiter of n requests per period_ms for each of up to max_keys keys, all its memory
 * allocated now (aborting on out-of-memory, like every host allocation). Returns NULL when
 * n, period_ms or max_keys is 0, or max_keys > RATELIMIT_MAX_KEYS. Free it with
 * ratelimit_free.
 */
struct ratelimit *ratelimit_new(uint32_t n, uint64_t period_ms, size_t max_keys);

/* Bytes a limiter of max_keys keys takes, all in one block. */
size_t ratelimit_size(size_t max_keys);

/* Makes a limiter in mem[0..ratelimit_size(max_keys)), 16-aligned, e.g. memory shared with
   other processes (which may use it once this returns). NULL on bad arguments, as
   ratelimit_new. Not to be passed to ratelimit_free: mem stays the caller's. */
struct ratelimit *ratelimit_init(void *mem, uint32_t n, uint64_t period_ms, size_t max_keys);

/* Frees a limiter from ratelimit_new; NULL (and one from ratelimit_init) is ignored. */
void ratelimit_free(struct ratelimit *rl);

/*
 * Counts one request for key[0..key_len) (any bytes, NULs included; key may be NULL when
 * key_len is 0) at now_ms, the caller's monotonic clock in milliseconds, which must not go
 * back. The key is remembered (evicting the least recently used one when the table is full)
 * and becomes the most recently used, whether the request is allowed or not. The key is
 * copied; the caller keeps ownership of it. Never allocates.
 */
struct ratelimit_result ratelimit_hit(struct ratelimit *rl, const void *key, size_t key_len,
                                      uint64_t now_ms);

/* How many keys the table holds now (at most max_keys; idle ones count until evicted). */
size_t ratelimit_keys(const struct ratelimit *rl);

/* Bytes the limiter holds; the same from ratelimit_new to ratelimit_free. */
size_t ratelimit_memory(const struct ratelimit *rl);

#endif
