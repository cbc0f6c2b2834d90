/*
 * siphash.c - SipHash-1-3 and random keys for it (see siphash.h).
 */
#include "siphash.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static void sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13) ^ v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17) ^ v[2];
    v[2] = ROTL(v[2], 32);
}

/* SipHash-1-3 of p[0..n) under k: the keyed hash Python and Rust use for their tables. */
uint64_t siphash13(const uint64_t k[2], const void *data, size_t n)
{
    uint64_t v[4] = {k[0] ^ 0x736f6d6570736575ULL, k[1] ^ 0x646f72616e646f6dULL,
                     k[0] ^ 0x6c7967656e657261ULL, k[1] ^ 0x7465646279746573ULL};
    const unsigned char *p = data;
    uint64_t m, last = (uint64_t)n << 56;

    for (; n >= 8; n -= 8, p += 8) {
        memcpy(&m, p, 8);
        m = le64toh(m);
        v[3] ^= m;
        sipround(v);
        v[0] ^= m;
    }
    for (size_t i = 0; i < n; i++)
        last |= (uint64_t)p[i] << (8 * i);
    v[3] ^= last;
    sipround(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for (int i = 0; i < 3; i++)
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Without getrandom (old kernel, seccomp) a guessable key beats none. */
void siphash_seed(uint64_t seed[2])
{
    ssize_t n;

    do
        n = getrandom(seed, 2 * sizeof(uint64_t), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)(2 * sizeof(uint64_t))) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)seed;
        seed[1] = (uint64_t)ts.tv_sec ^ (uintptr_t)&ts;
    }
}
