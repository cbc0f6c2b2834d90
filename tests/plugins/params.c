/*
 * params - a well-behaved plugin that exercises the SDK for tests/integration/check_routing.c.
 *
 *   GET    /items/{id:int}        "item <id>" (sq_param_int, sq_printf)
 *   GET    /users/me              "static me"     (a static segment beats {name})
 *   GET    /users/{name}          "user <name>"   (percent-decoded)
 *   GET    /things/{id:int}       "int <id>"      ({:int} beats {name})
 *   GET    /things/{slug}         "slug <slug>"
 *   GET    /files/{rest:path}     "<rest>"        (slashes included, may be empty)
 *   GET    /thing, POST /thing, DELETE /thing     the method's name (several on one path)
 *   GET    /method                sq_method()     ("HEAD" for a HEAD request)
 *   GET    /status/{code:int}     returns code without replying
 *   GET    /noreply               returns 0 without replying (a 500)
 *   GET    /header                adds X-Params: yes; the body lists three sq_reply_header
 *                                 return codes (good, bad name, CRLF in value)
 *   GET    /twice                 replies "first", then tries a second reply
 *   GET    /query                 {"q":sq_query(r,"q"),"raw":sq_query_string(r)}
 *   GET    /remote                sq_remote_addr()
 *   POST   /json                  {"got":<body>}; 400 with sq_errmsg() when not JSON
 *   GET    /fill/{n:int}          n bytes of 'x' from sq_alloc
 *   GET    /config                {"name":..,"greeting":<read in init>,"now":<read now>}
 *
 * Config keys of [plugin params]: greeting (read by init), fini_marker (a file fini
 * creates, so a test can tell fini ran).
 */
#include <squall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reply_text(sq_req *r, const char *s)
{
    if (!s)
        return 503;
    return sq_reply(r, 200, "text/plain", s, strlen(s));
}

static int item(sq_req *r)
{
    return reply_text(r, sq_printf(r, "item %lld", (long long)sq_param_int(r, "id")));
}

static int user_me(sq_req *r)
{
    return reply_text(r, "static me");
}

static int user(sq_req *r)
{
    return reply_text(r, sq_printf(r, "user %s", sq_param(r, "name")));
}

static int thing_int(sq_req *r)
{
    return reply_text(r, sq_printf(r, "int %lld", (long long)sq_param_int(r, "id")));
}

static int thing_slug(sq_req *r)
{
    return reply_text(r, sq_printf(r, "slug %s", sq_param(r, "slug")));
}

static int files(sq_req *r)
{
    return reply_text(r, sq_param(r, "rest"));
}

static int method(sq_req *r)
{
    return reply_text(r, sq_method(r));
}

static int status(sq_req *r)
{
    return (int)sq_param_int(r, "code");
}

static int noreply(sq_req *r)
{
    return 0;
}

static int header(sq_req *r)
{
    int good = sq_reply_header(r, "X-Params", "yes");
    int bad_name = sq_reply_header(r, "Bad Name", "v");
    int crlf = sq_reply_header(r, "X-Injected", "a\r\nSet-Cookie: evil=1");

    return reply_text(r, sq_printf(r, "%d %d %d", good, bad_name, crlf));
}

static int twice(sq_req *r)
{
    sq_reply(r, 200, "text/plain", "first", 5);
    if (sq_reply(r, 200, "text/plain", "second reply", 12) != SQ_EALREADY)
        sq_log(SQ_LOG_ERROR, "a second reply was not refused with SQ_EALREADY");
    return 0;
}

static int query(sq_req *r)
{
    return sq_reply_json(r, 200,
                         json_pack("{s:s?,s:s}", "q", sq_query(r, "q"), "raw", sq_query_string(r)));
}

static int remote(sq_req *r)
{
    return reply_text(r, sq_remote_addr(r));
}

static int body_json(sq_req *r)
{
    json_t *j = sq_body_json(r);

    if (!j)
        return sq_reply_error(r, 400, "%s", sq_errmsg());
    return sq_reply_json(r, 200, json_pack("{s:O}", "got", j)); /* O: j stays borrowed */
}

static int fill(sq_req *r)
{
    int64_t n = sq_param_int(r, "n");
    char *p;

    if (n < 0 || n > 1 << 20)
        return 400;
    p = sq_alloc(r, (size_t)n + 1);
    if (!p)
        return 503;
    memset(p, 'x', (size_t)n);
    p[n] = '\0';
    return sq_reply(r, 200, "text/plain", p, (size_t)n);
}

static int config(sq_req *r)
{
    sq_plugin_ctx *ctx = sq_req_plugin(r);

    return sq_reply_json(r, 200,
                         json_pack("{s:s,s:s?,s:s?}", "name", sq_plugin_name(ctx), "greeting",
                                   (const char *)sq_plugin_get_data(ctx), "now",
                                   sq_config_get(ctx, "greeting")));
}

/* Keeps a copy of the greeting: what init read, not what the config says later. */
static int params_init(sq_plugin_ctx *ctx)
{
    const char *g = sq_config_get(ctx, "greeting");

    if (g) {
        char *copy = strdup(g);
        if (!copy)
            return -1;
        sq_plugin_set_data(ctx, copy);
    }
    sq_log(SQ_LOG_INFO, "init: greeting %s", g ? g : "(none)");
    return 0;
}

static void params_fini(sq_plugin_ctx *ctx)
{
    const char *marker = sq_config_get(ctx, "fini_marker");
    FILE *f = marker ? fopen(marker, "w") : NULL;

    if (f) {
        fprintf(f, "fini %s\n", sq_plugin_name(ctx));
        fclose(f);
    }
    free(sq_plugin_get_data(ctx));
}

static const sq_route routes[] = {
    {"GET", "/items/{id:int}", item},
    {"GET", "/users/me", user_me},
    {"GET", "/users/{name}", user},
    {"GET", "/things/{id:int}", thing_int},
    {"GET", "/things/{slug}", thing_slug},
    {"GET", "/files/{rest:path}", files},
    {"GET", "/thing", method},
    {"POST", "/thing", method},
    {"DELETE", "/thing", method},
    {"GET", "/method", method},
    {"GET", "/status/{code:int}", status},
    {"GET", "/noreply", noreply},
    {"GET", "/header", header},
    {"GET", "/twice", twice},
    {"GET", "/query", query},
    {"GET", "/remote", remote},
    {"POST", "/json", body_json},
    {"GET", "/fill/{n:int}", fill},
    {"GET", "/config", config},
    {0},
};

SQ_PLUGIN(.name = "params", .version = "0.1.0", .routes = routes, .init = params_init,
          .fini = params_fini);
