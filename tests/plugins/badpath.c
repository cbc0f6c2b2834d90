/*
 * badpath - a route whose path lacks the leading '/': "items" instead of "/items".
 *
 * The host must refuse the plugin whatever its mount: under mount = / the router sees
 * "items"; under mount = /api it must not quietly serve "/apiitems".
 */
#include <squall.h>

static int items(sq_req *r)
{
    return sq_reply(r, 200, NULL, "items", 5);
}

static const sq_route routes[] = {
    {"GET", "items", items},
    {0},
};

SQ_PLUGIN(.name = "badpath", .version = "1.0.0", .routes = routes);
