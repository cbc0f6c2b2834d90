/*
 * badabi - a plugin from a future SDK: its descriptor says ABI SQ_ABI_VERSION + 1.
 *
 * The descriptor is spelled out by hand (not with SQ_PLUGIN) under the name the host looks
 * up, SQ_PLUGIN_SYMBOL. Only its first two fields keep their meaning across ABIs; the rest
 * is laid out differently, as a future ABI may, so a host that read past the version check
 * would crash or misbehave. The host must refuse it with "ABI mismatch".
 */
#include <squall.h>

static int hello(sq_req *r)
{
    return sq_reply(r, 200, NULL, "badabi", 6);
}

static const sq_route routes[] = {
    {"GET", "/badabi", hello},
    {0},
};

/* What a later ABI might look like: a flags word inserted before the name. */
struct future_plugin {
    uint32_t abi_version;
    uint32_t size;
    uint64_t flags;
    const char *name;
    const char *version;
    const sq_route *routes;
    void *reserved[4];
};

extern const struct future_plugin sq_plugin_descriptor;
__attribute__((visibility("default"))) const struct future_plugin sq_plugin_descriptor = {
    .abi_version = SQ_ABI_VERSION + 1,
    .size = sizeof(struct future_plugin),
    .flags = 0xdeadbeefdeadbeefULL,
    .name = "badabi",
    .version = "9.9.9",
    .routes = routes,
};
