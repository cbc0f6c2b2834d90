/*
 * squall_test.h - test a plugin against a real host, from Check (or any C test).
 *
 * sq_test_start() runs a squall host in a thread of the test process, on an ephemeral
 * port of 127.0.0.1, with the configuration you give; sq_test_request() sends a real HTTP
 * request over a real socket and returns the parsed reply:
 *
 *     sq_test_host *h = sq_test_start("[plugin hello]\npath = build/plugins/hello.so\n");
 *     ck_assert_msg(h, "%s", sq_test_error());
 *     sq_test_res *res = sq_test_request(h, "GET", "/plaintext", NULL, NULL, 0);
 *     ck_assert_int_eq(res->status, 200);
 *     ck_assert_str_eq(res->body, "Hello, World!");
 *     sq_test_res_free(res);
 *     sq_test_stop(h);
 *
 * Link the test with libsquall.a and -Wl,--dynamic-list=sdk/squall.sym (the plugin needs
 * the SDK's symbols from the test program, as it would from the host).
 */
#ifndef SQUALL_TEST_H
#define SQUALL_TEST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_test_host sq_test_host;

typedef struct sq_test_res {
    int status;       /* e.g. 200; 0 when no valid reply came */
    char *headers;    /* the raw header block after the status line, NUL-terminated */
    char *body;       /* NUL-terminated (the NUL is not counted in body_len) */
    size_t body_len;
} sq_test_res;

/*
 * Starts a host with conf (plugins.conf text; relative paths are relative to the current
 * directory). With no `listen` key it listens on 127.0.0.1 on an ephemeral port. Returns
 * NULL when the configuration or a plugin fails; sq_test_error() then says why.
 */
sq_test_host *sq_test_start(const char *conf);

/* Why the last sq_test_start failed. */
const char *sq_test_error(void);

/* The port the host's first listener is bound to. */
uint16_t sq_test_port(const sq_test_host *h);

/*
 * Sends one request on a new connection and reads the whole reply. headers is NULL or
 * extra header lines, each ending in "\r\n"; Host and Content-Length (when body is not
 * NULL) are added. Returns NULL when the connection fails; free with sq_test_res_free.
 */
sq_test_res *sq_test_request(sq_test_host *h, const char *method, const char *path,
                             const char *headers, const void *body, size_t len);

/* The value of the reply header name (case-insensitive) in a static buffer, or NULL. */
const char *sq_test_header(const sq_test_res *res, const char *name);

void sq_test_res_free(sq_test_res *res);

/* Stops the host (plugins' fini run) and frees it. */
void sq_test_stop(sq_test_host *h);

#ifdef __cplusplus
}
#endif

#endif
