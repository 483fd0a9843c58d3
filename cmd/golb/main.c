/* golb — flag parsing and wiring: load the config, start the server (server.h), then wait for
 * signals on the main thread (SIGTERM/SIGINT drain and exit 0, SIGHUP reload, SIGUSR1 reopen). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "config/config.h"
#include "config/config_diff.h"
#include "base/log.h"
#include "base/notify.h"
#include "server/server.h"

#define GOLB_VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage of golb:\n"
            "  -confpath string\n"
            "    \tpath to the YAML config file (default \"config.yml\")\n"
            "  -t\n"
            "    \tcheck the config file and exit (0 when valid)\n"
            "  -diff string\n"
            "    \twith -t: also print what a reload from this (running) config file to the\n"
            "    \tchecked one would change (a copy kept elsewhere without the files it\n"
            "    \tnames is read as if it were the checked file)\n"
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
    const char *diff_from; /* -diff OLD (with -t) */
    int check_only;
};

static int parse_flags(int argc, char **argv, struct options *o)
{
    o->confpath = "config.yml";
    o->diff_from = NULL;
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
        } else if (!strcmp(name, "confpath") || !strcmp(name, "diff")) {
            if (!value) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "golb: flag needs an argument: -%s\n", name);
                    usage(stderr);
                    return 2;
                }
                value = argv[++i];
            }
            if (!strcmp(name, "diff"))
                o->diff_from = value;
            else
                o->confpath = value;
        } else {
            fprintf(stderr, "golb: flag provided but not defined: -%s\n", name);
            usage(stderr);
            return 2;
        }
    }
    if (o->diff_from && !o->check_only) {
        fprintf(stderr, "golb: -diff needs -t\n");
        usage(stderr);
        return 2;
    }
    return -1; /* carry on */
}

/* The main thread owns the signals: SIGTERM/SIGINT drain and exit, SIGHUP asks the server's
 * control thread for a reload (and goes back to the signals at once), SIGUSR1 reopens the log
 * files. */
static int run(struct config *cfg, const char *confpath)
{
    (void)notify_init(); /* before any thread starts: it reads the environment */
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
        config_free(cfg);
        return 1;
    }
    struct server *srv = server_start(cfg, confpath, GOLB_VERSION);
    if (!srv) {
        close(sfd);
        return 1;
    }
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
            (void)server_reload_async(srv, "SIGHUP", NULL, 0); /* the control thread runs it */
            continue;
        }
        log_info("%s: draining connections", strsignal((int)si.ssi_signo));
        break;
    }
    int status = server_stop(srv);
    close(sfd);
    return status;
}

/* The configuration's warnings (config_load's lines, "FILE:LINE:COL: warning: ..."), printed
 * once logFormat is known: with json each is one JSON log line (event "config"), so that every
 * line golb writes on stderr is JSON; otherwise, and for -t (a check for a person), as written. */
static void print_config_messages(const char *text, bool as_log)
{
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        int n = e ? (int)(e - p) : (int)strlen(p);
        if (n > 0 && as_log)
            log_event(LOG_WARN, "config", "%.*s", n, p);
        else if (n > 0)
            fprintf(stderr, "%.*s\n", n, p);
        p += n + (e != NULL);
    }
}

/* -t -diff OLD: what a reload from OLD to the checked file would change. OLD is loaded as any
 * file is, relative paths against its own directory. When that fails and OLD is a copy kept
 * without the files beside it (the usual backup of the running file), it is read as the file the
 * running golb loaded from the checked file's path: relative paths against the checked file's
 * directory. Its errors are the first way's. (config_diff compares paths as written.) */
static int print_diff(const char *old_path, const struct config *cfg)
{
    struct config *old = NULL;
    char *errs = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&errs, &len);
    if (config_load(old_path, f, &old) != 0 &&
        config_load_copy(old_path, cfg->path, NULL, &old) != 0) {
        if (f)
            fclose(f);
        fprintf(stderr, "%sgolb: cannot compare with %s: it is not a valid configuration\n",
                errs ? errs : "", old_path);
        free(errs);
        return 1;
    }
    if (f)
        fclose(f);
    free(errs); /* OLD's warnings: about the running file, not the one checked */
    int n = config_diff(old, cfg, stdout);
    if (n == 0)
        printf("no changes\n");
    config_free(old);
    return 0;
}

int main(int argc, char **argv)
{
    struct options opt;
    int rc = parse_flags(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    /* Diagnostics wait in memory until the file says how golb logs. A file that does not load
     * says nothing: its errors are printed as written. */
    struct config *cfg = NULL;
    char *msgs = NULL;
    size_t msgs_len = 0;
    FILE *errs = open_memstream(&msgs, &msgs_len);
    rc = config_load(opt.confpath, errs ? errs : stderr, &cfg);
    if (errs)
        fclose(errs);
    if (rc != 0) {
        print_config_messages(msgs, false);
        free(msgs);
        return 1;
    }
    log_set_json(cfg->log_json);
    print_config_messages(msgs, cfg->log_json && !opt.check_only);
    free(msgs);
    if (opt.check_only) {
        printf("golb: configuration file %s is valid\n", opt.confpath);
        rc = opt.diff_from ? print_diff(opt.diff_from, cfg) : 0;
        config_free(cfg);
        return rc;
    }
    return run(cfg, opt.confpath);
}
