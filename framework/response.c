/*
 * response.c - rendering HTTP/1.1 replies (see response.h).
 */
#include "response.h"

#include <stdio.h>
#include <string.h>

const char *response_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
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

/* Upper bound of the bytes response_write appends besides the reason and content type,
   so that it reserves once. */
static size_t response_size(const struct response *r)
{
    size_t n = 128 + (r->head ? 0 : r->len);

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
    const char *reason = response_reason(r->status);
    size_t ctype_len = strlen(ctype), reason_len = strlen(reason);
    bool bodyless = r->status == 204 || r->status == 304; /* RFC 9110 §8.6, §15.4.5 */

    buf_reserve(out, response_size(r) + ctype_len + reason_len);
    char *p = out->data + out->len;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_uint(p, (size_t)r->status);
    *p++ = ' ';
    p = put(p, reason, reason_len);
    p = PUT_LIT(p, "\r\nServer: squall\r\n");
    p = put(p, date->line, date->len);
    p = PUT_LIT(p, "Content-Type: ");
    p = put(p, ctype, ctype_len);
    p = PUT_LIT(p, "\r\n");
    if (!bodyless) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_uint(p, r->len);
        p = PUT_LIT(p, "\r\n");
    }
    p = put_headers(p, r->headers);
    if (r->close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (r->keep_alive)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    if (!r->head && !bodyless && r->len)
        p = put(p, r->body, r->len);
    out->len = (size_t)(p - out->data);
}
