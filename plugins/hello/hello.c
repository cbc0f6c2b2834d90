/*
 * hello - the plugin squall serves out of the box, and the benchmark's target.
 *
 *   GET  /plaintext  Hello, World! as text/plain
 *   GET  /json       {"message":"Hello, World!"}, built afresh per request
 *   POST /echo       the request body back, with the request's Content-Type
 */
#include <squall.h>

static const char hello[] = "Hello, World!";

static int plaintext(sq_req *r)
{
    return sq_reply(r, 200, "text/plain", hello, sizeof(hello) - 1);
}

static int json(sq_req *r)
{
    return sq_reply_json(r, 200, json_pack("{s:s}", "message", hello));
}

static int echo(sq_req *r)
{
    const char *type = sq_header(r, "Content-Type");
    size_t len;
    const char *body = sq_body(r, &len);

    return sq_reply(r, 200, type ? type : "application/octet-stream", body, len);
}

static const sq_route routes[] = {
    {"GET", "/plaintext", plaintext},
    {"GET", "/json", json},
    {"POST", "/echo", echo},
    {0},
};

SQ_PLUGIN(.name = "hello", .version = "1.0.0", .routes = routes);
