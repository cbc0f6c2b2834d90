/*
 * siphash.h - the keyed hash for tables whose keys clients choose (cache keys, flights).
 *
 * Under a random key, clients cannot compute which keys share a bucket, so they cannot pile
 * them into one and turn lookups linear.
 */
#ifndef SQUALL_SIPHASH_H
#define SQUALL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-1-3 of data[0..n) under key k: the keyed hash Python and Rust use for tables. */
uint64_t siphash13(const uint64_t k[2], const void *data, size_t n);

/* A random key from getrandom(). */
void siphash_seed(uint64_t k[2]);

#endif
