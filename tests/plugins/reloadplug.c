/*
 * reloadplug - a plugin rebuilt while the host runs, for tests/integration/check_reload.c and
 * check_process.c. Every reply names the build it came from: VERSION, set with
 * -DVERSION=N (1 when the Makefile builds it).
 *
 *   GET /v            "reloadplug v<N>"
 *   GET /pid          "<getpid()> v<N>" (which worker answered, with workers = N)
 *   GET /sleep?ms=M   sleeps M ms (0..60000), then "v<N> slept <M>"
 *   GET /sleeping     how many /sleep requests of this instance sleep now
 *   GET /count        adds one to the counter, then "v<N> count <K>"; the counter goes to
 *                     the next build through save_state/restore_state
 *
 * Config keys of [plugin reloadplug]:
 *   tick_file  init starts sq_every(20 ms) appending "tick v<N>\n" to it, so that a test
 *              sees which instances' periodic callbacks still run
 *   fini_file  fini appends "fini v<N>\n" to it (fini also logs "fini v<N>")
 *   init_wait  init logs "init waits", then blocks until this file exists (up to 10 s)
 *   init_fail  "yes": init refuses to start (after init_wait)
 *   init_fail_once  a file: init refuses to start in the process that creates it first,
 *              so that with workers = N exactly one worker fails
 *
 * Broken builds, one loader error each (the Makefile builds none of them):
 *   -DRELOADPLUG_BADABI    the descriptor says ABI SQ_ABI_VERSION + 1
 *   -DRELOADPLUG_NODESC    the descriptor has the wrong symbol name
 *   -DRELOADPLUG_FAILINIT  init says why with sq_log and returns -1
 */
#include <fcntl.h>
#include <squall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION 1
#endif

#define TICK_MS 20
#define STR_(x) #x
#define STR(x) STR_(x)

/* One instance's state. */
struct reloadplug {
    long count;
    long sleeping;
    const char *tick_file;
};

static struct reloadplug *state_of(sq_req *r)
{
    return sq_plugin_get_data(sq_req_plugin(r));
}

/* Appends line to the file at path (created if needed); nothing when path is NULL. */
static void append_line(const char *path, const char *line)
{
    FILE *f = path ? fopen(path, "a") : NULL;

    if (f) {
        fputs(line, f);
        fclose(f);
    }
}

static int reply_text(sq_req *r, const char *text)
{
    return sq_reply(r, 200, "text/plain", text, strlen(text));
}

static int version(sq_req *r)
{
    return reply_text(r, sq_printf(r, "reloadplug v%d", VERSION));
}

static int pid(sq_req *r)
{
    return reply_text(r, sq_printf(r, "%d v%d", (int)getpid(), VERSION));
}

static int sleep_ms(sq_req *r)
{
    struct reloadplug *st = state_of(r);
    const char *s = sq_query(r, "ms");
    char *end;
    long ms = s && *s >= '0' && *s <= '9' ? strtol(s, &end, 10) : -1;

    if (ms < 0 || *end || ms > 60000)
        return sq_reply_error(r, 400, "ms must be an integer from 0 to 60000");
    st->sleeping++;
    int rc = sq_sleep((uint64_t)ms);
    st->sleeping--;
    if (rc != 0)
        return rc == SQ_ECANCELED ? rc : sq_reply_error(r, 503, "%s", sq_errmsg());
    return reply_text(r, sq_printf(r, "v%d slept %ld", VERSION, ms));
}

static int sleeping(sq_req *r)
{
    return reply_text(r, sq_printf(r, "%ld", state_of(r)->sleeping));
}

static int count(sq_req *r)
{
    struct reloadplug *st = state_of(r);

    return reply_text(r, sq_printf(r, "v%d count %ld", VERSION, ++st->count));
}

static int tick(void *arg)
{
    struct reloadplug *st = arg;

    append_line(st->tick_file, "tick v" STR(VERSION) "\n");
    return 0;
}

/* What the init_* keys ask for: 0 to go on, -1 to refuse to start (said with sq_log). */
static int init_gate(sq_plugin_ctx *ctx)
{
    const char *wait = sq_config_get(ctx, "init_wait"), *fail = sq_config_get(ctx, "init_fail");
    const char *once = sq_config_get(ctx, "init_fail_once");

    if (wait) {
        sq_log(SQ_LOG_INFO, "init waits for %s", wait);
        for (int i = 0; i < 2000 && access(wait, F_OK) != 0; i++)
            usleep(5000);
    }
    if (fail && strcmp(fail, "yes") == 0) {
        sq_log(SQ_LOG_ERROR, "init_fail = yes: refusing to start");
        return -1;
    }
    int fd = once ? open(once, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) {
        close(fd);
        sq_log(SQ_LOG_ERROR, "init_fail_once: the first process refuses to start");
        return -1;
    }
    return 0;
}

static int reloadplug_init(sq_plugin_ctx *ctx)
{
#ifdef RELOADPLUG_FAILINIT
    sq_log(SQ_LOG_ERROR, "v%d cannot start: this build refuses to", VERSION);
    return -1;
#endif
    struct reloadplug *st;

    if (init_gate(ctx) < 0)
        return -1;
    if (!(st = calloc(1, sizeof(*st)))) {
        sq_log(SQ_LOG_ERROR, "out of memory");
        return -1;
    }
    sq_plugin_set_data(ctx, st);
    st->tick_file = sq_config_get(ctx, "tick_file");
    /* The host stops it when the instance retires; fini must not stop it again. */
    if (st->tick_file && !sq_every(TICK_MS, 0, tick, st)) {
        sq_log(SQ_LOG_ERROR, "sq_every: %s", sq_errmsg());
        return -1;
    }
    return 0;
}

static void reloadplug_fini(sq_plugin_ctx *ctx)
{
    char line[32];

    snprintf(line, sizeof(line), "fini v%d\n", VERSION);
    append_line(sq_config_get(ctx, "fini_file"), line);
    sq_log(SQ_LOG_INFO, "fini v%d", VERSION);
    free(sq_plugin_get_data(ctx));
}

static json_t *save_state(sq_plugin_ctx *ctx)
{
    struct reloadplug *st = sq_plugin_get_data(ctx);

    return json_pack("{s:I,s:i}", "count", (json_int_t)st->count, "from", VERSION);
}

static int restore_state(sq_plugin_ctx *ctx, json_t *state)
{
    struct reloadplug *st = sq_plugin_get_data(ctx);
    json_t *n = json_object_get(state, "count");

    if (!json_is_integer(n))
        return -1;
    st->count = (long)json_integer_value(n);
    return 0;
}

static const sq_route routes[] = {
    {"GET", "/v", version},
    {"GET", "/pid", pid},
    {"GET", "/sleep", sleep_ms},
    {"GET", "/sleeping", sleeping},
    {"GET", "/count", count},
    {0},
};

#if defined(RELOADPLUG_NODESC)
/* A near miss of SQ_PLUGIN_SYMBOL: the host must find no descriptor. */
extern const sq_plugin sq_plugin_descripter;
__attribute__((visibility("default"))) const sq_plugin sq_plugin_descripter = {
    .abi_version = SQ_ABI_VERSION,
    .size = sizeof(sq_plugin),
    .route_size = sizeof(sq_route),
    .name = "reloadplug",
    .routes = routes,
    .init = reloadplug_init,
    .fini = reloadplug_fini,
    .save_state = save_state,
    .restore_state = restore_state,
};
#else
#ifdef RELOADPLUG_BADABI
/* SQ_PLUGIN sets abi_version first; this later initializer overrides it, on purpose. */
#pragma GCC diagnostic ignored "-Woverride-init"
#define ABI_OVERRIDE .abi_version = SQ_ABI_VERSION + 1,
#else
#define ABI_OVERRIDE
#endif
SQ_PLUGIN(.name = "reloadplug", .version = "v" STR(VERSION), .routes = routes,
          .init = reloadplug_init, .fini = reloadplug_fini, .save_state = save_state,
          .restore_state = restore_state, ABI_OVERRIDE);
#endif
