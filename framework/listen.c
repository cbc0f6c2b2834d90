/*
 * listen.c - binding the listening sockets of [server] listen (see listen.h).
 */
#include "listen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define LISTEN_BACKLOG 4096

/* A listening socket for addr; -1 with errno set. */
static int listen_on(const struct addrinfo *ai, bool v6only)
{
    int one = 1, v6 = v6only;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Binds cl. With no host ("*:8080") it takes one dual-stack IPv6 socket for every address,
   or the IPv4 wildcard where IPv6 is missing. */
static int bind_one(const struct config_listen *cl, char *why, size_t len)
{
    struct addrinfo hints = {.ai_family = cl->host ? AF_UNSPEC : AF_INET6,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(cl->host, cl->port, &hints, &ai), fd = -1;

    if (rc == 0) {
        fd = listen_on(ai, cl->host != NULL);
        freeaddrinfo(ai);
    }
    if (fd < 0 && !cl->host) {
        hints.ai_family = AF_INET;
        if ((rc = getaddrinfo(NULL, cl->port, &hints, &ai)) == 0) {
            fd = listen_on(ai, false);
            freeaddrinfo(ai);
        }
    }
    if (fd < 0) {
        snprintf(why, len, "%s", rc ? gai_strerror(rc) : strerror(errno));
        return -1;
    }
    return fd;
}

int listen_open(const struct config *cfg, int *fds, char *err, size_t errlen)
{
    char why[256];

    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct config_listen *cl = &cfg->listen[i];
        fds[i] = bind_one(cl, why, sizeof(why));
        if (fds[i] < 0) {
            err_add(err, errlen, "%s:%d: cannot listen on %s:%s: %s", cfg->file, cl->line,
                    cl->host ? cl->host : "*", cl->port, why);
            while (i-- > 0)
                close(fds[i]);
            return -1;
        }
    }
    return 0;
}

uint16_t listen_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}
