/*
 * failinit - init says why with sq_log, then refuses to load by returning -1.
 * The host must report "init failed", not serve the routes, and not call fini.
 */
#include <squall.h>
#include <stdio.h>
#include <stdlib.h>

static int hello(sq_req *r)
{
    return sq_reply(r, 200, NULL, "failinit", 8);
}

static int failinit_init(sq_plugin_ctx *ctx)
{
    sq_log(SQ_LOG_ERROR, "cannot start: the 'token' key is required");
    return -1;
}

/* Must never run: init did not succeed. Leaves a trace a test can look for. */
static void failinit_fini(sq_plugin_ctx *ctx)
{
    const char *marker = sq_config_get(ctx, "fini_marker");
    FILE *f = marker ? fopen(marker, "w") : NULL;

    if (f)
        fclose(f);
}

static const sq_route routes[] = {
    {"GET", "/failinit", hello},
    {0},
};

SQ_PLUGIN(.name = "failinit", .version = "1.0.0", .routes = routes, .init = failinit_init,
          .fini = failinit_fini);
