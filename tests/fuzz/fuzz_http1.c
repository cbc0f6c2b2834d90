/*
 * fuzz_http1.c - libFuzzer target for the request parser and the chunked decoder.
 *
 * Parses the input as a request and, when the head is complete, checks that every slice
 * lies inside it; decodes a chunked body from the rest whole, in two pieces and byte by
 * byte, which must agree; and parses prefixes and a tighter header limit to check that
 * the result never depends on how the input was split. Any violation aborts.
 */
#include "http1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static const struct http1_limits limits = {.max_header = 16384, .max_body = 1 << 20};

/* FNV-1a of the input: picks split points that follow the data. */
static uint64_t hash(const uint8_t *d, size_t n)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ULL;
    return h;
}

/* Parses a copy of d[0..n) in a buffer of exactly n bytes, so over-reads trip ASan. */
static int parse_copy(const uint8_t *d, size_t n, const struct http1_limits *lim)
{
    struct http1_request r;
    char *copy = malloc(n ? n : 1);
    int rc;

    CHECK(copy != NULL);
    memcpy(copy, d, n);
    rc = http1_parse_request(copy, n, lim, &r);
    free(copy);
    return rc;
}

static bool inside(const char *p, size_t n, const char *lo, size_t len)
{
    return p >= lo && p <= lo + len && n <= (size_t)(lo + len - p);
}

static void check_head(const char *buf, size_t len, const struct http1_request *r, int rc)
{
    size_t hl = r->header_len;

    CHECK((size_t)rc == hl && hl <= len && hl <= limits.max_header);
    CHECK(buf[hl - 2] == '\r' && buf[hl - 1] == '\n');
    CHECK(r->minor == 0 || r->minor == 1);
    CHECK(r->method_len > 0 && inside(r->method, r->method_len, buf, hl));
    CHECK(r->target_len > 0 && inside(r->target, r->target_len, buf, hl));
    CHECK(r->target_len <= HTTP1_MAX_TARGET);
    CHECK(inside(r->path, r->path_len, r->target, r->target_len) ||
          (r->path_len == 1 && r->path[0] == '/' && !inside(r->path, 1, buf, len)));
    CHECK(r->query == NULL || inside(r->query, r->query_len, r->target, r->target_len));
    CHECK(r->nheaders <= HTTP1_MAX_HEADERS);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http1_header *h = &r->headers[i];
        CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, hl));
        CHECK(inside(h->value, h->value_len, buf, hl));
        CHECK(memchr(h->value, '\r', h->value_len) == NULL);
        CHECK(memchr(h->value, '\n', h->value_len) == NULL);
        CHECK(h->value_len == 0 || (h->value[0] != ' ' && h->value[h->value_len - 1] != ' '));
    }
    CHECK(r->content_length >= -1 && r->content_length <= (int64_t)limits.max_body);
    CHECK(!(r->chunked && r->content_length >= 0));
    CHECK(!(r->chunked && r->minor == 0));
    CHECK(r->has_host || r->minor == 0);
}

/* Decodes in[0..cuts[ncuts - 1]) in pieces that end at the ascending points in cuts. */
static int decode_pieces(const char *in, const size_t *cuts, size_t ncuts, char *out,
                         size_t *out_n, size_t *used)
{
    struct http1_chunked c;
    size_t pos = 0, o = 0, ol, u;
    int rc = 0;

    http1_chunked_init(&c, limits.max_body);
    for (size_t i = 0; i < ncuts && rc == 0; i++) {
        if (cuts[i] < pos)
            continue;
        rc = http1_chunked_decode(&c, out + o, in + pos, cuts[i] - pos, &ol, &u);
        CHECK(u <= cuts[i] - pos && (rc != 0 || u == cuts[i] - pos));
        CHECK(o + ol <= pos + u);
        o += ol;
        pos += u;
    }
    *out_n = o;
    *used = pos;
    return rc;
}

/* Decodes in[0..n) one byte per call. */
static int decode_bytewise(const char *in, size_t n, char *out, size_t *out_n, size_t *used)
{
    struct http1_chunked c;
    size_t pos = 0, o = 0, ol, u;
    int rc = 0;

    http1_chunked_init(&c, limits.max_body);
    while (rc == 0 && pos < n) {
        rc = http1_chunked_decode(&c, out + o, in + pos, 1, &ol, &u);
        o += ol;
        pos += u;
    }
    *out_n = o;
    *used = pos;
    return rc;
}

/* The chunked decoder gives the same result whole (in place), in two pieces and byte by
   byte. */
static void check_chunked(const char *body, size_t n, uint64_t h)
{
    char *inplace = malloc(n + 1), *out = malloc(n + 1);
    size_t on, used, on2, used2, cuts[2] = {n ? h % n : 0, n};
    int rc;

    CHECK(inplace != NULL && out != NULL);
    memcpy(inplace, body, n);
    rc = decode_pieces(inplace, &n, 1, inplace, &on, &used);
    CHECK(rc == 1 || rc == 0 || rc == -400 || rc == -413);
    CHECK(on <= used && (rc != 0 || used == n));
    CHECK(decode_pieces(body, cuts, 2, out, &on2, &used2) == rc);
    CHECK(on2 == on && used2 == used && memcmp(out, inplace, on) == 0);
    CHECK(decode_bytewise(body, n, out, &on2, &used2) == rc);
    CHECK(on2 == on && used2 == used && memcmp(out, inplace, on) == 0);
    free(inplace);
    free(out);
}

/* A prefix needs more bytes or gives the whole input's result; a tighter max_header gives
   the same result or 431. */
static void check_restart(const uint8_t *data, size_t size, int full, uint64_t h)
{
    size_t k = h % (size + 1);
    int rc = parse_copy(data, k, &limits);
    struct http1_limits tight = limits;

    if (full > 0 && k < (size_t)full)
        CHECK(rc == 0);
    else
        CHECK(rc == 0 || rc == full);
    if (size > 0) {
        rc = parse_copy(data, size - 1, &limits);
        if (full > 0)
            CHECK(rc == (size - 1 >= (size_t)full ? full : 0));
        else
            CHECK(rc == 0 || rc == full);
    }
    tight.max_header = (h >> 32) % (size + 2);
    rc = parse_copy(data, size, &tight);
    if (full > 0 && (size_t)full <= tight.max_header)
        CHECK(rc == full);
    else if (size > tight.max_header)
        CHECK(rc == -431 || (rc == full && full < 0));
    else
        CHECK(rc == full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http1_request r;
    const char *buf = (const char *)data;
    uint64_t h = hash(data, size);
    int rc = http1_parse_request(buf, size, &limits, &r);

    CHECK(rc >= 0 || rc == -400 || rc == -413 || rc == -414 || rc == -431 || rc == -505);
    CHECK(rc == 0 || rc == parse_copy(data, size, &limits)); /* deterministic */
    if (rc > 0) {
        check_head(buf, size, &r, rc);
        if (r.chunked)
            check_chunked(buf + rc, size - (size_t)rc, h);
    }
    check_restart(data, size, rc, h);
    return 0;
}
