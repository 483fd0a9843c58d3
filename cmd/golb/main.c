/* golb — flag parsing and wiring: load the config, bind, check backends once, start the workers,
 * then wait for signals on the main thread (SIGTERM/SIGINT drain and exit 0). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accesslog.h"
#include "admin.h"
#include "backend.h"
#include "balancer.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "sock.h"
#include "util.h"
#include "worker.h"

#define GOLB_VERSION "0.1.0"
#define LISTEN_BACKLOG 4096
#define DEFER_ACCEPT_SECONDS 1

static void usage(FILE *out)
{
    fprintf(out,
            "Usage of golb:\n"
            "  -confpath string\n"
            "    \tpath to the YAML config file (default \"config.yml\")\n"
            "  -t\n"
            "    \tcheck the config file and exit (0 when valid)\n"
            "  -version\n"
            "    \tprint the version and exit\n"
            "  -h, -help\n"
            "    \tprint this help and exit\n");
}

/* Go-style flags: -name, --name, -name value, -name=value. Returns the flag name without dashes
 * and sets *inline_value when written as name=value. */
static const char *flag_name(const char *arg, const char **inline_value)
{
    *inline_value = NULL;
    if (arg[0] != '-')
        return NULL;
    arg++;
    if (arg[0] == '-')
        arg++;
    static char name[64];
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    if (n == 0 || n >= sizeof(name))
        return NULL;
    memcpy(name, arg, n);
    name[n] = '\0';
    if (eq)
        *inline_value = eq + 1;
    return name;
}

struct options {
    const char *confpath;
    int check_only;
};

static int parse_flags(int argc, char **argv, struct options *o)
{
    o->confpath = "config.yml";
    o->check_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *value;
        const char *name = flag_name(argv[i], &value);
        if (!name) {
            fprintf(stderr, "golb: unexpected argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (!strcmp(name, "h") || !strcmp(name, "help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(name, "version")) {
            printf("golb %s\n", GOLB_VERSION);
            return 0;
        } else if (!strcmp(name, "t")) {
            o->check_only = 1;
        } else if (!strcmp(name, "confpath")) {
            if (!value) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "golb: flag needs an argument: -confpath\n");
                    usage(stderr);
                    return 2;
                }
                value = argv[++i];
            }
            o->confpath = value;
        } else {
            fprintf(stderr, "golb: flag provided but not defined: -%s\n", name);
            usage(stderr);
            return 2;
        }
    }
    return -1; /* carry on */
}

/* Binds one SO_REUSEPORT listener per worker on the configured address. With port 0 the first
 * bind picks the port and the others join it. */
static int bind_listeners(const struct sockaddr_storage *want, socklen_t wantlen, int *fds, int n,
                          char *bound, size_t boundlen)
{
    struct sockaddr_storage addr = *want;
    socklen_t addrlen = wantlen;
    for (int i = 0; i < n; i++) {
        fds[i] = sock_listen((struct sockaddr *)&addr, addrlen, LISTEN_BACKLOG);
        /* HTTP clients speak first: a connection reaches accept() with its request, which
         * golb then reads at once (proxy_accept). A silent one is handed over after about
         * DEFER_ACCEPT_SECONDS and then meets clientHeaderTimeout like any other. */
        if (fds[i] >= 0)
            (void)sock_defer_accept(fds[i], DEFER_ACCEPT_SECONDS);
        if (fds[i] < 0) {
            int err = fds[i];
            for (int j = 0; j < i; j++)
                close(fds[j]);
            return err;
        }
        if (i == 0 && getsockname(fds[0], (struct sockaddr *)&addr, &addrlen) == -1) {
            int err = -errno;
            close(fds[0]);
            return err;
        }
    }
    sock_addr_str((struct sockaddr *)&addr, bound, boundlen);
    return 0;
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* A proxy holds two descriptors per proxied request and one per idle client: raise the soft
 * descriptor limit to the hard one (the usual 1024 soft limit would cap golb far below
 * maxConnections). */
static void raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)cfg->max_connections * 2 + 1024;
    if (rl.rlim_cur >= want || rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the open-file limit: %s", strerror(errno));
    if (rl.rlim_cur < (rlim_t)cfg->max_connections + 64)
        log_warn("open-file limit %llu is below maxConnections %u",
                 (unsigned long long)rl.rlim_cur, cfg->max_connections);
}

static int run(const struct config *cfg)
{
    (void)notify_init(); /* before any thread starts: it reads the environment */
    raise_fd_limit(cfg);
    int status = 1;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    /* Block before any thread starts so every thread inherits the mask and signals queue here. */
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd == -1) {
        log_error("signalfd: %s", strerror(errno));
        return 1;
    }

    struct backend_table *backends = backend_table_new(cfg);
    struct balancer balancer = {0};
    struct worker *workers = calloc((size_t)cfg->workers, sizeof(*workers));
    int *fds = calloc((size_t)cfg->workers, sizeof(int));
    int *tls_fds = calloc((size_t)cfg->workers, sizeof(int));
    struct health *health = NULL;
    struct admin *admin = NULL;
    int nworkers = 0;
    if (!backends || !workers || !fds || !tls_fds ||
        balancer_init_config(&balancer, cfg, backends) != 0 ||
        metrics_setup(backends, cfg->workers, GOLB_VERSION) != 0) {
        log_error("out of memory");
        goto out;
    }
    /* Before the workers: each takes its ring from the access log as it starts. */
    int arc = accesslog_start((enum accesslog_format)cfg->access_log, cfg->access_log_path);
    if (arc != 0) {
        log_error("cannot open the access log %s: %s",
                  cfg->access_log_path ? cfg->access_log_path : "(stdout)", strerror(-arc));
        goto out;
    }

    for (int i = 0; i < cfg->workers; i++)
        fds[i] = tls_fds[i] = -1;
    char bound[80] = "", tls_bound[80] = "", where[200];
    int rc = 0;
    if (!cfg->plain_off) {
        rc = bind_listeners(&cfg->listen_addr, cfg->listen_addrlen, fds, cfg->workers, bound,
                            sizeof(bound));
        if (rc < 0) {
            log_error("cannot listen on %s: %s", cfg->listen_name, strerror(-rc));
            goto out;
        }
    }
    if (cfg->tls) {
        rc = bind_listeners(&cfg->tls->listen_addr, cfg->tls->listen_addrlen, tls_fds,
                            cfg->workers, tls_bound, sizeof(tls_bound));
        if (rc < 0) {
            log_error("cannot listen on %s: %s", cfg->tls->listen_name, strerror(-rc));
            close_all(fds, cfg->workers);
            goto out;
        }
    }
    if (cfg->plain_off)
        snprintf(where, sizeof(where), "https://%s", tls_bound);
    else if (cfg->tls)
        snprintf(where, sizeof(where), "%s and https://%s", bound, tls_bound);
    else
        snprintf(where, sizeof(where), "%s", bound);
    health = health_new(backends, cfg);
    if (!health || health_start(health) != 0) {
        log_error("cannot start health checks");
        close_all(fds, cfg->workers);
        close_all(tls_fds, cfg->workers);
        goto out;
    }
    for (int i = 0; i < cfg->workers; i++) {
        rc = worker_init(&workers[i], i, fds[i], tls_fds[i], cfg, backends, &balancer);
        fds[i] = tls_fds[i] = -1; /* the worker owns them now */
        nworkers = i + 1;
        if (rc == 0)
            rc = worker_start(&workers[i]);
        if (rc != 0) {
            log_error("cannot start worker %d: %s", i, strerror(-rc));
            close_all(fds, cfg->workers);
            close_all(tls_fds, cfg->workers);
            goto stop;
        }
    }
    int up = 0;
    for (int i = 0; i < backends->n; i++)
        up += backend_is_up(&backends->b[i]);
    log_event(LOG_INFO, "listening", "listening on %s (%d workers, %d of %d backends up)", where,
              cfg->workers, up, backends->n);
    if (cfg->admin_listen) {
        admin = admin_start(cfg, backends, where, GOLB_VERSION);
        if (!admin)
            goto stop;
    }
    char ready[256]; /* after the admin listener too: READY means everything is up */
    snprintf(ready, sizeof(ready), "serving on %s", where);
    notify_ready(ready);

    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si)) {
            if (n == -1 && errno == EINTR)
                continue;
            log_error("signalfd read: %s", strerror(errno));
            break;
        }
        if (si.ssi_signo == SIGUSR1) {
            log_event(LOG_INFO, "reopen", "SIGUSR1: reopening the log files");
            accesslog_reopen();
            continue;
        }
        if (si.ssi_signo == SIGHUP) {
            log_warn("SIGHUP: configuration reload is not supported yet; ignoring");
            continue;
        }
        log_info("%s: draining connections (up to %u ms)", strsignal((int)si.ssi_signo),
                 cfg->shutdown_timeout_ms);
        notify_stopping("draining connections");
        break;
    }
    status = 0;
stop:
    admin_set_draining(admin);
    for (int i = 0; i < nworkers; i++)
        if (workers[i].started)
            worker_drain(&workers[i]);
    uint64_t deadline = util_now_ms() + cfg->shutdown_timeout_ms;
    for (int i = 0; i < nworkers; i++) {
        if (worker_join(&workers[i], deadline) == -ETIMEDOUT) {
            log_warn("worker %d: shutdown timeout reached, closing its connections", i);
            worker_stop(&workers[i]);
            worker_join(&workers[i], UINT64_MAX);
        }
    }
    admin_stop(admin); /* before the workers' counters go */
    for (int i = 0; i < nworkers; i++)
        worker_destroy(&workers[i]);
    accesslog_stop();
    if (status == 0)
        log_event(LOG_INFO, "stop", "stopped");
out:
    if (health) {
        health_stop(health);
        health_free(health);
    }
    accesslog_stop();
    metrics_teardown();
    balancer_destroy(&balancer);
    backend_table_free(backends);
    free(workers);
    free(fds);
    free(tls_fds);
    close(sfd);
    return status;
}

int main(int argc, char **argv)
{
    struct options opt;
    int rc = parse_flags(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    struct config *cfg = NULL;
    if (config_load(opt.confpath, stderr, &cfg) != 0)
        return 1;
    log_set_json(cfg->log_json);
    if (opt.check_only) {
        printf("golb: configuration file %s is valid\n", opt.confpath);
        config_free(cfg);
        return 0;
    }
    rc = run(cfg);
    config_free(cfg);
    return rc;
}
