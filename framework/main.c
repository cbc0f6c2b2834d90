/*
 * main.c - the squall command: serve a plugins.conf, or check it.
 *
 *   squall [-c FILE] [--check]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "server.h"

#define ERRLEN 8192

static void usage(FILE *f)
{
    fprintf(f, "usage: squall [-c FILE] [--check]\n"
               "  -c, --config FILE  configuration to serve (default: plugins.conf)\n"
               "      --check        validate FILE and load every plugin, then exit\n"
               "  -h, --help         this text\n");
}

static void print_listeners(const struct server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        const struct config_listen *cl = &srv->cfg->listen[i];
        log_info("listening on %s:%u", cl->host ? cl->host : "*", srv->listeners[i].port);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *file = "plugins.conf";
    char err[ERRLEN];
    int check = 0, o;

    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': file = optarg; break;
        case 'k': check = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    log_init();
    struct config *cfg = config_load(file, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct server *srv =
        server_new(cfg, check ? SERVER_NO_LISTEN : SERVER_SIGNALS, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check) {
        printf("%s: ok\n", file);
        server_free(srv);
        return 0;
    }
    print_listeners(srv);
    int rc = server_run(srv);
    server_free(srv);
    log_info("stopped");
    return rc == 0 ? 0 : 1;
}
