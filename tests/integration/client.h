/*
 * client.h - helpers shared by the integration suites: raw sockets, a spawned host, and the
 * Check assertions the suites have in common.
 *
 * A test talks to a real host over real sockets on 127.0.0.1. The host is either in-process
 * (sq_test_start from sdk/squall_test.h) or a spawned `$SQ_BUILD/squall` (client_spawn),
 * when the test needs process-level things: rlimits, strace, CPU time, exit status.
 *
 * A client_conn is one non-blocking socket with a receive buffer: bytes read but not yet
 * parsed stay in it, so pipelined replies are parsed one after another, in order. Every
 * wait takes a timeout in milliseconds, so a server that hangs fails the test instead of
 * hanging it.
 *
 * Everything up to "Check helpers" returns errors; the Check helpers at the end fail the
 * running test instead, so they may only be called from a test or a checked fixture.
 */
#ifndef SQUALL_TEST_CLIENT_H
#define SQUALL_TEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>

#include <libpq-fe.h>

#include "squall_test.h"

/* ---- Paths and time ---- */

/* The build directory: $SQ_BUILD (set by `make test`), else "build". */
const char *client_build_dir(void);

/* Writes the absolute path of <build dir>/rel to out. Returns out, or NULL if it is too
   long. The file need not exist. */
char *client_build_path(const char *rel, char *out, size_t len);

/*
 * Writes to out a plugins.conf that serves the hello plugin from the build directory
 * (absolute path, so it works in-process and in a spawned host alike), with server_keys
 * (NULL or "key = value\n" lines) in its [server] section. Returns out, or NULL if too long.
 */
char *client_hello_conf(const char *server_keys, char *out, size_t len);

/* Milliseconds on the monotonic clock. */
int64_t client_now_ms(void);

/* Sleeps for ms milliseconds. */
void client_sleep_ms(int ms);

/* Raises this process's RLIMIT_NOFILE soft limit to the hard limit; returns the new soft
   limit. */
long client_raise_nofile(void);

/* ---- A spawned host ---- */

struct client_spawn_opts {
    const char *const *wrap; /* NULL, or a NULL-terminated argv prefix run in front of
                                squall, e.g. {"strace", "-f", "-o", FILE, NULL} */
    long nofile;             /* > 0: RLIMIT_NOFILE (soft and hard) of the host */
    bool no_wait;            /* return at once, without waiting for the listener */
};

struct client_proc {
    pid_t pid;     /* the process started: the wrapper when there is one */
    bool wrapped;  /* pid is a wrapper (strace, ...) whose child is the host */
    uint16_t port; /* the port its first listener is bound to, once ready */
    bool exited;   /* it has exited and been reaped; status is its wait status */
    int status;
    int err_fd;    /* its stderr (an unlinked temporary file), read by client_proc_stderr */
    char conf[64]; /* the temporary config file, removed once the host has read it */
};

/*
 * Writes conf to a temporary file and starts `<build>/squall -c FILE` in its own process
 * group, stderr captured. When conf has no `listen` key it gets `listen = 127.0.0.1:0`.
 * Unless o->no_wait, waits (up to 10 s) for the "listening on" log line, takes the port
 * from it and waits until a connect succeeds. The host is killed when the test process
 * dies, so a failed or timed-out test leaves nothing behind (a wrapped host runs under
 * `setpriv --pdeathsig KILL` for the same reason).
 * o may be NULL. Returns 0 when the host answers; -1 when it exited (p->status, and its
 * stderr) or did not come up. Either way release p with client_proc_free.
 */
int client_spawn(struct client_proc *p, const char *conf, const struct client_spawn_opts *o);

/* The host's own pid: p->pid, or the wrapper's child when there is a wrapper (0 if none). */
pid_t client_proc_host_pid(const struct client_proc *p);

/* Waits up to timeout_ms for the process to exit. Returns its wait status, or -1. */
int client_proc_wait(struct client_proc *p, int timeout_ms);

/*
 * Stops the process if it still runs (SIGTERM to the host, SIGKILL after 5 s) and reaps it.
 * Its stderr stays readable. Returns the wait status (also in p->status), or -1 when
 * nothing ran.
 */
int client_proc_stop(struct client_proc *p);

/* What the process wrote to stderr so far, NUL-terminated; the caller frees it. Works until
   client_proc_free, also after the process exited. */
char *client_proc_stderr(const struct client_proc *p);

/* Stops the process if needed and releases p's files (its stderr, the config file). */
void client_proc_free(struct client_proc *p);

/*
 * Ends a host the test started itself: SIGTERM to p->pid (never to a guessed child), waits
 * up to timeout_ms, and releases p. Returns NULL when a host that was running exited 0 and
 * no sanitizer reported anything; else why, with its stderr (the caller frees it).
 */
char *client_proc_end(struct client_proc *p, int timeout_ms);

/* Removes a test's temporary folder and all in it (nothing when dir is ""); a failure is
   said on stderr. */
void client_rmdir(const char *dir);

/* utime + stime of pid in clock ticks (from /proc/PID/stat), or -1. */
long client_cpu_ticks(pid_t pid);

/* ---- Connections ---- */

struct client_conn {
    int fd;
    char *buf; /* received bytes; buf[pos..len) are not parsed yet */
    size_t len, cap, pos;
    bool closed; /* the peer closed (EOF) or reset the connection */
    bool reset;  /* it was a reset (ECONNRESET) */
};

/* Connects to 127.0.0.1:port (blocking connect, then non-blocking). NULL on failure. */
struct client_conn *client_open(uint16_t port);

/* Like client_open, with SO_RCVBUF set to rcvbuf before connecting (set after, it makes TCP
   stall on a window it cannot shrink): a small one makes the server's sends block sooner. */
struct client_conn *client_open_rcvbuf(uint16_t port, int rcvbuf);

/* Starts a non-blocking connect: the socket may not be connected yet. NULL on failure. */
struct client_conn *client_open_nb(uint16_t port);

/* Closes the socket (if still open) and frees c. c may be NULL. */
void client_close(struct client_conn *c);

/* Sends all n bytes, waiting up to 5 s for room. Returns 0, or -1 (the peer is gone). */
int client_send(struct client_conn *c, const void *data, size_t n);
int client_send_str(struct client_conn *c, const char *s);

/*
 * Sends all n bytes while reading whatever arrives into the buffer, as a pipelining client
 * does: a server that stops reading until its replies are read cannot deadlock the two.
 * Returns 0, or -1 on a timeout or when the peer went away first.
 */
int client_send_reading(struct client_conn *c, const void *data, size_t n, int timeout_ms);

/*
 * Sends data in pieces of a pseudo-random size in [min, max] (a fixed seed: runs repeat),
 * pausing pause_us microseconds after each, with TCP_NODELAY so each piece is its own
 * segment. min == max == 1 sends byte by byte. Returns 0 or -1.
 */
int client_send_pieces(struct client_conn *c, const void *data, size_t n, size_t min, size_t max,
                       int pause_us);

/* Shuts down the sending side (the client half-closes). */
void client_shutdown_write(struct client_conn *c);

/*
 * Waits up to timeout_ms for the socket to be readable and reads once into the buffer.
 * Returns the bytes read (> 0), 0 when the peer closed (c->closed), -1 on timeout.
 */
int client_fill(struct client_conn *c, int timeout_ms);

/*
 * Reads until the peer closes, up to timeout_ms; what arrives is appended to the buffer.
 * Returns true when it closed in time.
 */
bool client_wait_close(struct client_conn *c, int timeout_ms);

/* Bytes received and not yet parsed as replies. */
size_t client_unparsed(const struct client_conn *c);

/* ---- Replies ---- */

#define CLIENT_MAX_HEADERS 32

struct client_header {
    char *name, *value; /* NUL-terminated, value without surrounding whitespace */
};

struct client_res {
    int status; /* e.g. 200 */
    int minor;  /* HTTP/1.<minor> */
    struct client_header headers[CLIENT_MAX_HEADERS];
    size_t nheaders;
    char *body; /* NUL-terminated (the NUL not counted in body_len) */
    size_t body_len;
    size_t raw_len; /* bytes of the whole reply on the wire */
    char *mem;      /* owns the strings above */
};

/*
 * Parses one reply at data[0..n). head: it answers a HEAD request (no body whatever
 * Content-Length says); eof: no more bytes will come (a reply without Content-Length then
 * ends here). 1xx, 204 and 304 replies have no body. Returns the reply's length (> 0),
 * 0 when more bytes are needed, or -1 when it is malformed. Release res with
 * client_res_free.
 */
long client_parse_reply(const char *data, size_t n, bool head, bool eof, struct client_res *res);

/* Reads and parses the next reply on c (see client_parse_reply). Returns 0, or -1 on a
   timeout, a close before the reply was whole, or a malformed reply. */
int client_read_reply(struct client_conn *c, struct client_res *res, bool head, int timeout_ms);

/* Sends req and reads one reply: client_send_str + client_read_reply. */
int client_roundtrip(struct client_conn *c, const char *req, struct client_res *res,
                     int timeout_ms);

/* The value of the first header called name (any case), or NULL. */
const char *client_res_header(const struct client_res *res, const char *name);

/* How many headers called name the reply has. */
int client_res_header_count(const struct client_res *res, const char *name);

void client_res_free(struct client_res *res);

/*
 * Drives many connections at once (poll): sends req on each, waits for one whole reply on
 * each, up to timeout_ms in all. status[i] gets each reply's status (0 when none came).
 * Returns how many got a reply.
 */
size_t client_round(struct client_conn **cs, size_t n, const char *req, int *status,
                    int timeout_ms);

/* ---- Check helpers: each fails the running test instead of returning an error ---- */

/* The requests the connection suites send the hello plugin, and what it answers. */
#define GET_PLAIN "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
#define GET_JSON "GET /json HTTP/1.1\r\nHost: t\r\n\r\n"
#define HELLO "Hello, World!"
#define HELLO_JSON "{\"message\":\"Hello, World!\"}"

#define T_MS 3000     /* waiting for one reply */
#define CLOSE_MS 1000 /* waiting for the server to close after a final reply */
#define NPIPE 16      /* pipelined requests per batch (client_pipeline_build) */

/*
 * Makes the in-process hosts log at warn unless $SQUALL_LOG says otherwise: a suite whose
 * every test starts a host would log "plugin hello loaded" for each. Call it first in main.
 * (A spawned host is not affected: client_spawn unsets SQUALL_LOG for it.)
 */
void client_log_quiet(void);

/*
 * A fresh in-process hello host per test. A tcase made by client_host_tcase starts one with
 * a checked fixture (in the test's own process) and stops it after the test; the test finds
 * it through client_host_port and client_host_connect. Check fixtures take no arguments, so
 * the running test's host is the one piece of state here.
 */

/* Starts the running test's host: hello from the build directory, server_keys as for
   client_hello_conf (NULL: the defaults). Fails the test when it does not start. */
void client_host_start(const char *server_keys);

/* A fixture setup: client_host_start(NULL). */
void client_host_setup(void);

/* Stops the running test's host (a fixture teardown); nothing when none runs. */
void client_host_stop(void);

/*
 * Creates a tcase called name with a timeout of timeout seconds and adds it to s, which owns
 * it. When setup is not NULL, each test runs with the host setup starts (a function that
 * calls client_host_start), stopped by client_host_stop after it; when NULL the tests start
 * what they need themselves. Returns the tcase, for the caller to add tests to.
 */
TCase *client_host_tcase(Suite *s, const char *name, void (*setup)(void), double timeout);

/* The port the running test's host listens on (0 when none runs). */
uint16_t client_host_port(void);

/* Connects to the running test's host (client_open). Never NULL: fails the test instead. */
struct client_conn *client_host_connect(void);

/* Reads the next reply on c and checks its status and, unless body is NULL, its body. */
void client_expect_reply(struct client_conn *c, int status, const char *body);

/* Checks that the server closes c soon (a close, not a reset), sending nothing more. */
void client_expect_closed(struct client_conn *c);

/* Checks that the server keeps c open for ms (no close, no bytes). */
void client_expect_open(struct client_conn *c, int ms);

/* Writes NPIPE POST /echo requests, one after another, to out (cap bytes). Returns their
   length. Their bodies are distinct and of varying length. */
size_t client_pipeline_build(char *out, size_t cap);

/* Reads NPIPE replies on c and checks they answer client_pipeline_build's requests, in
   order. */
void client_pipeline_expect(struct client_conn *c);

/* sq_test_request on h that fails the test when no reply came. Free the reply with
   sq_test_res_free. */
sq_test_res *client_req(sq_test_host *h, const char *method, const char *path, const char *headers,
                        const void *body, size_t len);

/* Checks that res has a header called name (any case) and that its value is exactly want. */
void client_assert_header(const sq_test_res *res, const char *name, const char *want);

/* Checks that res is a JSON error reply: status, Content-Type application/json, and body
   exactly (as a string: a body_len past an embedded NUL is not checked). */
void client_assert_json_error(const sq_test_res *res, int status, const char *body);

/* ---- A test binary's PostgreSQL ----
 * One embedded cluster (framework/pgembed.c) per test binary, shared by its tests. */

/* Starts it in a new /tmp/squall-<name>-XXXXXX. Its libpq conninfo (valid until
   client_pg_stop), or NULL after saying why on stderr. */
const char *client_pg_start(const char *name);

/* Stops it and removes its folder. */
void client_pg_stop(void);

/* Its folder: what a host's `[database] dsn = embedded` takes as embedded_dir to share it. */
const char *client_pg_dir(void);

/* A connection of the test's own (dbname, when not NULL, instead of the conninfo's); fails
   the test when it cannot connect. Notices ("... does not exist, skipping") are dropped. */
PGconn *client_pg_connect(const char *dbname);

/* Runs sql on c, failing the test on an error. The first value of the first row (the
   caller frees it), or NULL when there is none. */
char *client_pg_value(PGconn *c, const char *sql);

/* client_pg_value on a connection of its own, as a number: -1 when there is no value. */
long client_pg_long(const char *sql);

#endif
