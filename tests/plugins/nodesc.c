/*
 * nodesc - a plugin that builds and loads but defines no SQ_PLUGIN descriptor.
 *
 * Its author spelled the descriptor's name by hand and got it wrong: the host looks up
 * SQ_PLUGIN_SYMBOL ("sq_plugin_descriptor") only, so it must refuse the file with
 * "no descriptor".
 */
#include <squall.h>

static int hello(sq_req *r)
{
    return sq_reply(r, 200, NULL, "nodesc", 6);
}

static const sq_route routes[] = {
    {"GET", "/nodesc", hello},
    {0},
};

/* Not SQ_PLUGIN: a near miss of the symbol the host asks dlsym() for. */
extern const sq_plugin sq_plugin_descriptr;
__attribute__((visibility("default"))) const sq_plugin sq_plugin_descriptr = {
    .abi_version = SQ_ABI_VERSION,
    .size = sizeof(sq_plugin),
    .route_size = sizeof(sq_route),
    .name = "nodesc",
    .routes = routes,
};
