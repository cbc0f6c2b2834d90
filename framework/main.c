/*
 * main.c - the squall command: serve a plugins.conf, check it, or signal a running host.
 *
 *   squall [-c FILE] [--pidfile FILE] [--check]
 *   squall reload [-c FILE] [--pidfile FILE]
 *
 * The host writes its pid (the master's, with workers) to the pid file, by default
 * var/squall.pid next to the configuration, so that `squall reload` and a supervisor can
 * find it; it removes it on exit.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "server.h"
#include "xalloc.h"

#define ERRLEN 8192

static void usage(FILE *f)
{
    fprintf(f, "usage: squall [-c FILE] [--pidfile FILE] [--check]\n"
               "       squall reload [-c FILE] [--pidfile FILE]\n"
               "  -c, --config FILE  configuration to serve (default: plugins.conf)\n"
               "      --pidfile FILE where the host's pid is (default: var/squall.pid next to\n"
               "                     the configuration)\n"
               "      --check        validate FILE and load every plugin, then exit\n"
               "  reload             tell the running host to reload its plugins and config\n"
               "  -h, --help         this text\n");
}

/* var/squall.pid in the configuration file's folder. */
static char *default_pidfile(const char *conf)
{
    const char *slash = strrchr(conf, '/');
    int dir = slash ? (int)(slash - conf) + 1 : 0;
    char *p = xmalloc((size_t)dir + sizeof("var/squall.pid"));

    sprintf(p, "%.*svar/squall.pid", dir, conf);
    return p;
}

static void pidfile_write(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');

    if (slash && (size_t)(slash - path) < sizeof(dir)) {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
        mkdir(dir, 0755); /* var/ may not exist yet */
    }
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
        log_warn("cannot write the pid file %s: %s", path, strerror(errno));
}

static pid_t pidfile_read(const char *path)
{
    FILE *f = fopen(path, "r");
    int pid = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

/* Removes the pid file if it is still ours (a newer host may have taken it over). */
static void pidfile_remove(const char *path)
{
    if (pidfile_read(path) == getpid())
        unlink(path);
}

static int reload(const char *pidfile)
{
    pid_t pid = pidfile_read(pidfile);

    if (pid <= 0) {
        fprintf(stderr, "squall reload: no host: cannot read a pid from %s\n", pidfile);
        return 1;
    }
    if (kill(pid, SIGHUP) < 0) {
        fprintf(stderr, "squall reload: pid %d (from %s): %s\n", (int)pid, pidfile,
                strerror(errno));
        return 1;
    }
    printf("squall reload: signalled pid %d\n", (int)pid);
    return 0;
}

static int serve(struct config *cfg, const char *pidfile)
{
    char err[ERRLEN] = "";
    int rc;

    if (cfg->workers > 1) {
        pidfile_write(pidfile);
        rc = master_run(cfg, err, sizeof(err));
        if (*err)
            fprintf(stderr, "%s\n", err);
    } else {
        struct server *srv = server_new(cfg, SERVER_SIGNALS, NULL, err, sizeof(err));
        if (!srv) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        pidfile_write(pidfile);
        for (size_t i = 0; i < srv->nlisteners; i++)
            log_info("listening on %s:%u", cfg->listen[i].host ? cfg->listen[i].host : "*",
                     srv->listeners[i].port);
        rc = server_run(srv) == 0 ? 0 : 1;
        server_free(srv);
    }
    pidfile_remove(pidfile);
    log_info("stopped");
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"pidfile", required_argument, NULL, 'p'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *file = "plugins.conf", *pidopt = NULL;
    char err[ERRLEN];
    int check = 0, o;

    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': file = optarg; break;
        case 'p': pidopt = optarg; break;
        case 'k': check = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    bool do_reload = optind < argc && strcmp(argv[optind], "reload") == 0;
    if (optind + do_reload < argc || (do_reload && check)) {
        usage(stderr);
        return 2;
    }
    char *pidfile = pidopt ? xstrdup(pidopt) : default_pidfile(file);
    if (do_reload) {
        int rc = reload(pidfile);
        free(pidfile);
        return rc;
    }
    log_init();
    struct config *cfg = config_load(file, err, sizeof(err));
    int rc = 1;
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
    } else if (check) {
        struct server *srv = server_new(cfg, SERVER_NO_LISTEN, NULL, err, sizeof(err));
        if (srv) {
            printf("%s: ok\n", file);
            server_free(srv);
            rc = 0;
        } else {
            fprintf(stderr, "%s\n", err);
        }
    } else {
        rc = serve(cfg, pidfile);
    }
    free(pidfile);
    return rc;
}
