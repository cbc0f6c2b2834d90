/*
 * harness.c - sdk/squall_test.h: a host in a thread, and a blocking HTTP client.
 */
#include "squall_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

#define HARNESS_TIMEOUT_MS 10000

struct sq_test_host {
    struct server *srv;
    pthread_t thread;
};

static char start_error[8192];

const char *sq_test_error(void)
{
    return start_error;
}

static void *host_thread(void *arg)
{
    server_run(arg);
    return NULL;
}

sq_test_host *sq_test_start(const char *conf)
{
    struct config *cfg =
        config_parse(conf, strlen(conf), "test.conf", start_error, sizeof(start_error));
    if (!cfg)
        return NULL;
    if (cfg->nlisten == 1 && cfg->listen[0].line == 0) { /* the default: use any free port */
        free(cfg->listen[0].port);
        cfg->listen[0].port = xstrdup("0");
    }
    struct server *srv = server_new(cfg, 0, NULL, start_error, sizeof(start_error));
    if (!srv)
        return NULL;
    sq_test_host *h = xcalloc(1, sizeof(*h));
    h->srv = srv;
    if (pthread_create(&h->thread, NULL, host_thread, srv) != 0) {
        snprintf(start_error, sizeof(start_error), "cannot start the host thread");
        server_free(srv);
        free(h);
        return NULL;
    }
    return h;
}

uint16_t sq_test_port(const sq_test_host *h)
{
    return h->srv->nlisteners ? h->srv->listeners[0].port : 0;
}

void sq_test_stop(sq_test_host *h)
{
    if (!h)
        return;
    server_stop(h->srv);
    pthread_join(h->thread, NULL);
    server_free(h->srv);
    free(h);
}

static int connect_local(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until the server closes (the request said Connection: close). */
static char *recv_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    for (;;) {
        if (n + 1 == cap)
            buf = xrealloc(buf, cap *= 2);
        if (poll(&pfd, 1, HARNESS_TIMEOUT_MS) <= 0)
            break;
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Splits a reply into status, header block and body. A reply that is not HTTP keeps
   status 0 and all its bytes as the body. */
static sq_test_res *parse_reply(const char *raw, size_t n)
{
    sq_test_res *res = xcalloc(1, sizeof(*res));
    const char *eol = strstr(raw, "\r\n"), *end = strstr(raw, "\r\n\r\n");
    const char *headers = "", *body = raw;
    size_t headers_len = 0;

    if (eol && end && sscanf(raw, "HTTP/1.%*d %d", &res->status) == 1) {
        headers = eol + 2;
        headers_len = (size_t)(end + 2 - headers);
        body = end + 4;
    } else {
        res->status = 0;
    }
    res->headers = xstrndup(headers, headers_len);
    res->body_len = n - (size_t)(body - raw);
    res->body = xmalloc(res->body_len + 1);
    memcpy(res->body, body, res->body_len);
    res->body[res->body_len] = '\0';
    return res;
}

sq_test_res *sq_test_request(sq_test_host *h, const char *method, const char *path,
                             const char *headers, const void *body, size_t len)
{
    int fd = connect_local(sq_test_port(h));
    char head[8192];

    if (fd < 0)
        return NULL;
    int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, path,
                     headers ? headers : "");
    if (body)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n", len);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n\r\n");
    if ((size_t)n >= sizeof(head) || send_all(fd, head, (size_t)n) < 0 ||
        (body && send_all(fd, body, len) < 0)) {
        close(fd);
        return NULL;
    }
    size_t got;
    char *raw = recv_all(fd, &got);
    close(fd);
    sq_test_res *res = parse_reply(raw, got);
    free(raw);
    return res;
}

const char *sq_test_header(const sq_test_res *res, const char *name)
{
    static char value[1024];
    size_t n = strlen(name);

    for (const char *l = res->headers; l && *l;
         l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL) {
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            if (vl >= sizeof(value))
                vl = sizeof(value) - 1;
            memcpy(value, v, vl);
            value[vl] = '\0';
            return value;
        }
    }
    return NULL;
}

void sq_test_res_free(sq_test_res *res)
{
    if (!res)
        return;
    free(res->headers);
    free(res->body);
    free(res);
}
