/*
 * duproute - claims GET /plaintext, which the hello plugin also serves: mounted at the same
 * prefix as hello, the host must refuse the second claim.
 */
#include <squall.h>

static int plaintext(sq_req *r)
{
    return sq_reply(r, 200, NULL, "duproute", 8);
}

static const sq_route routes[] = {
    {"GET", "/plaintext", plaintext},
    {0},
};

SQ_PLUGIN(.name = "duproute", .version = "1.0.0", .routes = routes);
