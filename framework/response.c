/*
 * response.c - rendering HTTP/1.1 replies (see response.h).
 */
#include "response.h"

#include <stdio.h>

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"}, {101, "Switching Protocols"}, {200, "OK"}, {201, "Created"},
    {202, "Accepted"}, {204, "No Content"}, {206, "Partial Content"},
    {301, "Moved Permanently"}, {302, "Found"}, {303, "See Other"}, {304, "Not Modified"},
    {307, "Temporary Redirect"}, {308, "Permanent Redirect"}, {400, "Bad Request"},
    {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
    {405, "Method Not Allowed"}, {406, "Not Acceptable"}, {408, "Request Timeout"},
    {409, "Conflict"}, {410, "Gone"}, {411, "Length Required"}, {412, "Precondition Failed"},
    {413, "Content Too Large"}, {414, "URI Too Long"}, {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"}, {417, "Expectation Failed"}, {418, "I'm a teapot"}, {422, "Unprocessable Content"},
    {425, "Too Early"}, {426, "Upgrade Required"}, {428, "Precondition Required"},
    {429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"}, {501, "Not Implemented"}, {502, "Bad Gateway"},
    {503, "Service Unavailable"}, {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *response_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

void response_date_update(struct response_date *d, time_t now)
{
    struct tm tm;

    if (d->len && d->sec == now)
        return;
    gmtime_r(&now, &tm);
    d->len = strftime(d->line, sizeof(d->line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    d->sec = now;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_str(char *p, const char *s)
{
    return put(p, s, strlen(s));
}

static char *put_uint(char *p, size_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(p, tmp + i, sizeof(tmp) - i);
}

/* Upper bound of the bytes response_write appends, so it reserves once. */
static size_t response_size(const struct response *r, const char *ctype)
{
    size_t n = 128 + strlen(response_reason(r->status)) + strlen(ctype) + (r->head ? 0 : r->len);

    for (const struct response_header *h = r->headers; h; h = h->next)
        n += strlen(h->name) + strlen(h->value) + 4;
    return n;
}

static char *put_headers(char *p, const struct response_header *h)
{
    /* Kept newest-first; the recursion writes them in the order they were added. */
    if (!h)
        return p;
    p = put_headers(p, h->next);
    p = put_str(p, h->name);
    p = PUT_LIT(p, ": ");
    p = put_str(p, h->value);
    return PUT_LIT(p, "\r\n");
}

void response_write(struct buf *out, const struct response_date *date, const struct response *r)
{
    const char *ctype = r->content_type ? r->content_type : "text/plain; charset=utf-8";

    buf_reserve(out, response_size(r, ctype));
    char *p = out->data + out->len;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_uint(p, (size_t)r->status);
    *p++ = ' ';
    p = put_str(p, response_reason(r->status));
    p = PUT_LIT(p, "\r\nServer: squall\r\n");
    p = put(p, date->line, date->len);
    p = PUT_LIT(p, "Content-Type: ");
    p = put_str(p, ctype);
    p = PUT_LIT(p, "\r\nContent-Length: ");
    p = put_uint(p, r->len);
    p = PUT_LIT(p, "\r\n");
    p = put_headers(p, r->headers);
    if (r->close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (r->keep_alive)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    if (!r->head && r->len)
        p = put(p, r->body, r->len);
    out->len = (size_t)(p - out->data);
}

void response_error_json(struct buf *out, const char *msg)
{
    static const char hex[] = "0123456789abcdef";

    buf_append_lit(out, "{\"error\":\"");
    for (const unsigned char *s = (const unsigned char *)msg; *s; s++) {
        char esc[6] = {'\\', 'u', '0', '0', hex[*s >> 4], hex[*s & 15]};
        if (*s == '"' || *s == '\\')
            buf_append(out, (char[]){'\\', (char)*s}, 2);
        else if (*s < 0x20)
            buf_append(out, esc, 6);
        else
            buf_append(out, s, 1);
    }
    buf_append_lit(out, "\"}");
}
