/* server — see server.h. */
#include "server/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "upstream/backend.h"
#include "config/config.h"
#include "config/config_diff.h"
#include "core/generation.h"
#include "upstream/dns.h"
#include "upstream/dns_ares.h"
#include "upstream/health.h"
#include "base/log.h"
#include "admin/metrics.h"
#include "base/notify.h"
#include "base/sock.h"
#include "net/tls.h"
#include "base/util.h"
#include "server/worker.h"

#define LISTEN_BACKLOG 4096
#define DEFER_ACCEPT_SECONDS 1
/* Workers adopt a generation between two events, so this is generous; one still behind keeps it
 * queued and adopts it when its loop runs again. */
#define UPDATE_WAIT_MS 10000
/* "listening on A, B and https://C": every address with room to spare */
#define WHERE_MAX (WORKER_MAX_LISTENERS * 64 + 16)

_Static_assert(CONFIG_LISTEN_MAX <= WORKER_TLS_SLOT, "a worker has a slot per listen address");

/* One address golb listens on: every worker has a socket on it in the same slot (worker.h: the
 * plain addresses in slots [0, WORKER_TLS_SLOT), the HTTPS ones above). A reload keeps an address
 * it still lists in its slot, sockets untouched; a new one takes a free slot of its kind. */
struct bound {
    bool used;
    struct sockaddr_storage conf; /* as configured (port 0 stays 0): what a reload compares */
    socklen_t conflen;
    struct sockaddr_storage addr; /* what the sockets are bound to (the port 0 picked) */
    char name[80];                /* addr as text */
};

/* A reload asked of the control thread. Whoever asked learns the outcome one way: the admin
 * through admin_reload_done(admin, ticket), a caller of server_reload() waiting on jobs_cond
 * (out, done), SIGHUP only from the log. */
struct reload_job {
    struct reload_job *next;
    bool queued;
    bool dns; /* not a reload: DNS changed a set, a new generation from the running config */
    char who[96];
    struct admin *admin;
    uint64_t ticket;
    struct admin_reload *out;
    bool done;
};

struct server {
    const char *confpath, *version;
    /* The control thread: every reload runs on it, one at a time, in the order asked, so that
     * SIGHUP (main thread) and POST /api/v1/reload (admin thread) never block the thread that
     * asked. Its queue, under jobs_lock (never taken on the request path): */
    pthread_t control;
    bool control_started;
    pthread_mutex_t jobs_lock;
    pthread_cond_t jobs_cond; /* a job queued, one done, or the stop */
    struct reload_job *jobs, **jobs_tail;
    struct reload_job hup; /* SIGHUP's: queued once however many signals come before it runs */
    struct reload_job dns_job; /* the resolver's: queued once however many sets change before */
    bool stopping;         /* server_stop: reloads still queued fail, new ones are refused */
    /* Written by the control thread only (and read by server_stop once it is joined): */
    struct generation *gen; /* the running generation (the process' reference) */
    struct worker *workers;
    int nworkers, started;
    struct health *health;
    struct admin *admin;
    /* `resolve:` backends (created by the first configuration that has one): the names and
     * their sets, and the resolver thread that keeps them (upstream/dns*.h) */
    struct dns *dns;
    struct dns_ares *resolver;
    struct bound ls[WORKER_MAX_LISTENERS]; /* by worker slot */
    char where[WHERE_MAX];                 /* "A, B and https://C" in the file's order */
};

/* One listener's address as the configuration gives it, and what binding it found. */
struct listen_spec {
    const struct sockaddr_storage *addr;
    socklen_t addrlen;
    const char *name;   /* as configured, for messages */
    int line, col;      /* its key in the file; 0: the default (no key) */
    bool probe;         /* a fixed port must be free (no reusePort): sock_probe_free first */
    bool busy;          /* out: the probe found another process listening there... */
    bool shareable;     /* ...with SO_REUSEPORT (another golb): reusePort: true would join it */
};

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    return 0;
}

/* True when a listener on a and one on b would share connections: same family and port, and the
 * same address or a wildcard on either side (v6 listeners are v6-only). */
static bool overlaps(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || port_of(a) != port_of(b) || port_of(a) == 0)
        return false;
    if (a->ss_family == AF_INET) {
        in_addr_t x = ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr;
        in_addr_t y = ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
        return x == y || x == htonl(INADDR_ANY) || y == htonl(INADDR_ANY);
    }
    const struct in6_addr *x = &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr;
    const struct in6_addr *y = &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr;
    return IN6_ARE_ADDR_EQUAL(x, y) || IN6_IS_ADDR_UNSPECIFIED(x) || IN6_IS_ADDR_UNSPECIFIED(y);
}

/* The addresses of `listen` (tls false) or `tls.listen`: none with `listen: off` or no tls. */
static const struct config_listen_list *listens(const struct config *cfg, bool tls)
{
    static const struct config_listen_list none;
    if (tls)
        return cfg->tls ? &cfg->tls->listen : &none;
    return cfg->plain_off ? &none : &cfg->listen;
}

static struct listen_spec spec_of(const struct config_listen *e, bool probe)
{
    return (struct listen_spec){.addr = &e->addr, .addrlen = e->addrlen, .name = e->name,
                                .line = e->line, .col = e->col, .probe = probe};
}

/* The slot of ls holding the configured address e (HTTPS slots when tls), or -1. */
static int find_slot(const struct bound *ls, bool tls, const struct config_listen *e)
{
    int from = tls ? WORKER_TLS_SLOT : 0;
    for (int i = from; i < from + WORKER_TLS_SLOT; i++)
        if (ls[i].used && ls[i].conflen == e->addrlen &&
            memcmp(&ls[i].conf, &e->addr, e->addrlen) == 0)
            return i;
    return -1;
}

/* Binds one SO_REUSEPORT listener per worker on the configured address, into fds[worker][slot],
 * and describes it in *out. With port 0 the first bind picks the port and the others join it.
 * SO_REUSEPORT would also join another process's listeners on a fixed port (a second golb would
 * take part of the traffic, silently): with sp->probe such an address is refused first,
 * -EADDRINUSE with sp->busy set. */
static int bind_listeners(struct listen_spec *sp, int (*fds)[WORKER_MAX_LISTENERS], int slot,
                          int n, struct bound *out)
{
    struct sockaddr_storage addr = *sp->addr;
    socklen_t addrlen = sp->addrlen;
    sp->busy = sp->shareable = false;
    if (sp->probe && port_of(&addr) != 0) {
        int rc = sock_probe_free((struct sockaddr *)&addr, addrlen, false);
        if (rc < 0) {
            sp->busy = rc == -EADDRINUSE;
            sp->shareable = sp->busy && sock_probe_free((struct sockaddr *)&addr, addrlen, true) == 0;
            return rc;
        }
    }
    for (int i = 0; i < n; i++) {
        int fd = sock_listen((struct sockaddr *)&addr, addrlen, LISTEN_BACKLOG);
        /* HTTP clients speak first: a connection reaches accept() with its request, which
         * golb then reads at once (proxy_accept). A silent one is handed over after about
         * DEFER_ACCEPT_SECONDS and then meets clientHeaderTimeout like any other. */
        if (fd >= 0)
            (void)sock_defer_accept(fd, DEFER_ACCEPT_SECONDS);
        if (fd >= 0 && i == 0 && getsockname(fd, (struct sockaddr *)&addr, &addrlen) == -1) {
            close(fd);
            fd = -errno;
        }
        if (fd < 0) {
            for (int j = 0; j < i; j++) {
                close(fds[j][slot]);
                fds[j][slot] = -1;
            }
            return fd;
        }
        fds[i][slot] = fd;
    }
    *out = (struct bound){.used = true, .conflen = sp->addrlen, .addr = addr};
    memcpy(&out->conf, sp->addr, sp->addrlen);
    sock_addr_str((struct sockaddr *)&addr, out->name, sizeof(out->name));
    return 0;
}

/* "FILE:LINE:COL: cannot listen on ADDR: WHY" for a listener bind_listeners refused (the position
 * of its key; 1:1 for the default `port`). */
static void listen_error(char *buf, size_t cap, const char *file, const struct listen_spec *sp,
                         int err)
{
    const char *why = sp->shareable ? "address in use (another process listens on it; reusePort: "
                                      "true shares it, e.g. while an upgrade runs side by side)"
                      : err == -EADDRINUSE ? "address in use (another process listens on it)"
                                           : strerror(-err);
    snprintf(buf, cap, "%s:%d:%d: cannot listen on %s: %s", file, sp->line ? sp->line : 1,
             sp->line ? sp->col : 1, sp->name, why);
}

/* Closes the new sockets of fds[n][slot] (neither -1 nor WORKER_KEEP_FD). */
static void close_all(int (*fds)[WORKER_MAX_LISTENERS], int n)
{
    for (int i = 0; fds && i < n; i++) {
        for (int j = 0; j < WORKER_MAX_LISTENERS; j++) {
            if (fds[i][j] >= 0)
                close(fds[i][j]);
            fds[i][j] = -1;
        }
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

/* s->where: the bound addresses in the file's order, "A, B and https://C, https://D" (the first
 * plain address first: tests and scripts read the port after "listening on "). */
static void describe_listeners(struct server *s, const struct config *cfg)
{
    size_t len = 0;
    s->where[0] = '\0';
    for (int tls = 0; tls < 2; tls++) {
        const struct config_listen_list *list = listens(cfg, tls);
        for (int i = 0; i < list->n; i++) {
            int slot = find_slot(s->ls, tls, &list->at[i]);
            const char *sep = i ? ", " : tls && len ? " and " : "";
            int k = snprintf(s->where + len, sizeof(s->where) - len, "%s%s%s", sep,
                             tls ? "https://" : "", slot >= 0 ? s->ls[slot].name : "?");
            len = k < 0 ? len : MIN(len + (size_t)k, sizeof(s->where) - 1);
        }
    }
}

/* The port redirects to HTTPS name: the first tls.listen address's (as bound), 0 without one. */
static uint16_t https_port(const struct bound *ls, const struct config *cfg)
{
    const struct config_listen_list *list = listens(cfg, true);
    int slot = list->n ? find_slot(ls, true, &list->at[0]) : -1;
    return slot >= 0 ? port_of(&ls[slot].addr) : 0;
}

/* READY=1 with what golb serves (start-up, and after every reload, failed ones too). */
static void notify_ready_serving(const struct server *s)
{
    char status[WHERE_MAX + 64];
    if (s->gen->id == 1)
        snprintf(status, sizeof(status), "serving on %s", s->where);
    else
        snprintf(status, sizeof(status), "serving on %s (generation %llu)", s->where,
                 (unsigned long long)s->gen->id);
    notify_ready(status);
}

/* The health checker of g: every pool's backends, one check per URL (health.h). NULL with errno
 * set on failure. */
static struct health *checker_new(const struct generation *g)
{
    struct health_pool *hp = calloc((size_t)g->npools, sizeof(*hp));
    if (!hp)
        return NULL;
    for (int i = 0; i < g->npools; i++)
        hp[i] = (struct health_pool){.table = g->pools[i].table, .cfg = &g->pools[i].cfg};
    struct health *h = health_new_pools(hp, g->npools);
    int err = errno;
    free(hp);
    errno = err;
    return h;
}

static int admin_reload_cb(void *arg, const char *who, struct admin *a, uint64_t ticket)
{
    return server_reload_async(arg, who, a, ticket);
}

static void *control_main(void *arg);

/* Starts the control thread (before anything may ask for a reload). 0 or -errno. */
static int control_start(struct server *s)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the main thread owns the signals */
    int rc = pthread_create(&s->control, NULL, control_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    s->control_started = true;
    return 0;
}

/* Refuses new reloads and joins the control thread: a running reload ends first, queued ones
 * fail ("golb is shutting down") and are answered. Safe to call twice. */
static void control_stop(struct server *s)
{
    pthread_mutex_lock(&s->jobs_lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->jobs_cond);
    pthread_mutex_unlock(&s->jobs_lock);
    if (s->control_started)
        pthread_join(s->control, NULL);
    s->control_started = false;
}

static void server_free(struct server *s)
{
    control_stop(s); /* answers what the admin still waits for, before the admin goes */
    dns_ares_stop(s->resolver); /* it queues no job any more */
    s->resolver = NULL;
    if (s->admin)
        admin_stop(s->admin);
    for (int i = 0; i < s->started; i++)
        worker_destroy(&s->workers[i]);
    if (s->health) {
        health_stop(s->health);
        health_free(s->health);
    }
    accesslog_stop();
    metrics_teardown();
    dns_free(s->dns);
    generation_unref(generation_publish(NULL));
    free(s->workers);
    pthread_cond_destroy(&s->jobs_cond);
    pthread_mutex_destroy(&s->jobs_lock);
    free(s);
}

static bool queue_job(struct server *s, struct reload_job *job);

/* The resolver thread: a set changed. One job waits at most (it reads every set when it runs). */
static void on_dns_change(void *arg)
{
    struct server *s = arg;
    pthread_mutex_lock(&s->jobs_lock);
    if (!s->dns_job.queued)
        (void)queue_job(s, &s->dns_job);
    pthread_mutex_unlock(&s->jobs_lock);
}

/* The names of cfg's `resolve:` backends, added to those kept (reload_publish prunes the others
 * once cfg runs), the resolver thread started with the first of them. At start-up (`wait`) it
 * waits until every name had an answer, DNS_START_WAIT_MS at most, so that golb starts with its
 * backends; a name that does not resolve leaves its pool empty, golb runs. A reload never waits:
 * a new name's backends come with its answer, as a DNS change. 0, or -1 after logging. */
#define DNS_START_WAIT_MS 2500
static int dns_prepare(struct server *s, const struct config *cfg, bool wait)
{
    if (!cfg->has_resolve && !s->dns)
        return 0;
    struct dns_params p = {cfg->resolvers.min_ttl_s, cfg->resolvers.max_ttl_s,
                           cfg->resolvers.hold_s};
    if (!s->dns && !(s->dns = dns_new(&p))) {
        log_error("out of memory");
        return -1;
    }
    int added = dns_sync(s->dns, cfg, false);
    if (added < 0) {
        log_error("out of memory");
        return -1;
    }
    if (!s->resolver) {
        if (!cfg->has_resolve)
            return 0;
        metrics_set_dns(s->dns);
        if (!(s->resolver = dns_ares_start(s->dns, cfg, on_dns_change, s)))
            return -1;
    } else {
        dns_ares_configure(s->resolver, cfg);
        if (added > 0)
            dns_ares_wake(s->resolver);
    }
    if (wait && added > 0 && !dns_ares_wait_settled(s->resolver, DNS_START_WAIT_MS))
        log_warn("dns: some names have no answer after %d ms; their pools fill when they do",
                 DNS_START_WAIT_MS);
    return 0;
}

struct server *server_start(struct config *cfg, const char *confpath, const char *version)
{
    raise_fd_limit(cfg);
    struct server *s = calloc(1, sizeof(*s));
    int n = cfg->workers;
    int(*fds)[WORKER_MAX_LISTENERS] = calloc((size_t)n, sizeof(*fds)); /* per worker, per slot */
    if (!s || !fds) {
        log_error("out of memory");
        config_free(cfg);
        free(s);
        free(fds);
        return NULL;
    }
    pthread_mutex_init(&s->jobs_lock, NULL);
    pthread_cond_init(&s->jobs_cond, NULL);
    s->jobs_tail = &s->jobs;
    s->confpath = confpath;
    s->version = version;
    s->nworkers = n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < WORKER_MAX_LISTENERS; j++)
            fds[i][j] = -1;
    s->workers = calloc((size_t)n, sizeof(*s->workers));
    s->dns_job.dns = true;
    snprintf(s->dns_job.who, sizeof(s->dns_job.who), "dns");
    if (dns_prepare(s, cfg, true) != 0) {
        config_free(cfg);
        cfg = NULL;
    }
    /* A DNS change queued during the wait above is in the sets read below: drop its job (nothing
     * else is queued before the control thread starts); a change from now on queues again. */
    pthread_mutex_lock(&s->jobs_lock);
    if (s->dns_job.queued) {
        s->jobs = NULL;
        s->jobs_tail = &s->jobs;
        s->dns_job.queued = false;
    }
    pthread_mutex_unlock(&s->jobs_lock);
    s->gen = cfg ? generation_new_dns(cfg, NULL, n, 1, s->dns) : NULL; /* frees cfg on failure */
    cfg = NULL;
    if (s->gen)
        generation_publish(s->gen);
    if (!s->workers || !s->gen || metrics_setup(n, version) != 0) {
        log_error("out of memory");
        goto fail;
    }
    cfg = s->gen->cfg;
    /* Before the workers: each takes its ring from the access log as it starts. */
    int rc = accesslog_start((enum accesslog_format)cfg->access_log, cfg->access_log_path);
    if (rc != 0) {
        log_error("cannot open the access log %s: %s",
                  cfg->access_log_path ? cfg->access_log_path : "(stdout)", strerror(-rc));
        goto fail;
    }
    char why[400];
    for (int tls = 0; tls < 2; tls++) { /* every address, plain then HTTPS, in the file's order */
        const struct config_listen_list *list = listens(cfg, tls);
        for (int j = 0; j < list->n; j++) {
            int slot = (tls ? WORKER_TLS_SLOT : 0) + j;
            struct listen_spec sp = spec_of(&list->at[j], !cfg->reuse_port);
            rc = bind_listeners(&sp, fds, slot, n, &s->ls[slot]);
            if (rc < 0) {
                listen_error(why, sizeof(why), cfg->path, &sp, rc);
                log_error("%s", why);
                goto fail;
            }
        }
    }
    describe_listeners(s, cfg);
    s->health = checker_new(s->gen);
    if (!s->health || health_start(s->health) != 0) {
        log_error("cannot start health checks");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        rc = worker_init(&s->workers[i], i, fds[i], https_port(s->ls, cfg), s->gen);
        for (int j = 0; j < WORKER_MAX_LISTENERS; j++)
            fds[i][j] = -1; /* the worker owns them now */
        s->started = i + 1;
        if (rc == 0)
            rc = worker_start(&s->workers[i]);
        if (rc != 0) {
            log_error("cannot start worker %d: %s", i, strerror(-rc));
            goto fail;
        }
    }
    int up = 0;
    for (int p = 0; p < s->gen->npools; p++)
        for (int i = 0; i < s->gen->pools[p].table->n; i++)
            up += backend_is_up(s->gen->pools[p].table->b[i]);
    if (s->gen->npools > 1)
        log_event(LOG_INFO, "listening",
                  "listening on %s (%d workers, %d of %d backends up in %d pools)", s->where, n, up,
                  s->gen->nbackends, s->gen->npools);
    else
        log_event(LOG_INFO, "listening", "listening on %s (%d workers, %d of %d backends up)",
                  s->where, n, up, s->gen->nbackends);
    rc = control_start(s);
    if (rc != 0) {
        log_error("cannot start the control thread: %s", strerror(-rc));
        goto fail;
    }
    if (cfg->admin_listen) {
        s->admin = admin_start(s->gen, s->where, version, admin_reload_cb, s);
        if (!s->admin)
            goto fail;
    }
    notify_ready_serving(s); /* after the admin listener: a failing one exits instead */
    free(fds);
    return s;
fail:
    close_all(fds, n);
    free(fds);
    for (int i = 0; i < s->started; i++)
        if (s->workers[i].started)
            worker_stop(&s->workers[i]);
    for (int i = 0; i < s->started; i++)
        worker_join(&s->workers[i], UINT64_MAX);
    server_free(s);
    return NULL;
}

int server_stop(struct server *s)
{
    control_stop(s); /* a reload in progress ends first */
    notify_stopping("draining connections");
    admin_set_draining(s->admin);
    for (int i = 0; i < s->started; i++)
        if (s->workers[i].started)
            worker_drain(&s->workers[i]);
    uint64_t deadline = util_now_ms() + s->gen->cfg->shutdown_timeout_ms;
    for (int i = 0; i < s->started; i++) {
        if (worker_join(&s->workers[i], deadline) == -ETIMEDOUT) {
            log_warn("worker %d: shutdown timeout reached, closing its connections", i);
            worker_stop(&s->workers[i]);
            worker_join(&s->workers[i], UINT64_MAX);
        }
    }
    admin_stop(s->admin); /* before the workers' counters go */
    s->admin = NULL;
    server_free(s);
    log_event(LOG_INFO, "stop", "stopped");
    return 0;
}

/* ---------------------------------------------------------------- reload -------------------- */

/* Settings a reload cannot change in place keep their running value, with a warning each. */
static void keep_restart_settings(struct server *s, struct config *cfg, FILE *warn)
{
    const struct config *run = s->gen->cfg;
    if (cfg->workers != s->nworkers) {
        fprintf(warn, "%s: warning: workers: a change needs a restart; keeping %d\n",
                s->confpath, s->nworkers);
        cfg->workers = s->nworkers;
    }
    if ((run->admin_listen || cfg->admin_listen) &&
        (!run->admin_listen || !cfg->admin_listen ||
         strcmp(run->admin_listen, cfg->admin_listen) != 0)) {
        fprintf(warn, "%s: warning: admin.listen: a change needs a restart; keeping %s\n",
                s->confpath, run->admin_listen ? run->admin_listen : "off");
        free(cfg->admin_listen);
        cfg->admin_listen = run->admin_listen ? strdup(run->admin_listen) : NULL;
        cfg->admin_addr = run->admin_addr;
        cfg->admin_addrlen = run->admin_addrlen;
    }
}

/* Logs each line of text, event "config" (config messages are already FILE:LINE:COL: ...). */
static void log_lines(const char *text, bool errors)
{
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        int n = e ? (int)(e - p) : (int)strlen(p);
        if (n > 0) {
            bool warning = !errors || memmem(p, (size_t)n, ": warning: ", 11);
            log_event(warning ? LOG_WARN : LOG_ERROR, "config", "%.*s", n, p);
        }
        p += n + (e != NULL);
    }
}

/* The listeners of every worker for a reload, into fds[worker][slot] and ls (a copy of s->ls
 * that becomes it when the reload is published): an address the new file still lists keeps its
 * slot and sockets (WORKER_KEEP_FD), one it no longer lists is closed (-1), a new one is bound in a
 * free slot of its kind (one a removed address left is free: the worker closes the old socket
 * before it watches the new one). A new address is probed as at start (no reusePort), unless it
 * overlaps one of golb's own listeners: the probe cannot tell those from another process's, and
 * joining them is golb's own business (a listener moving to the other's address, 127.0.0.1:P to
 * 0.0.0.0:P). On failure the sockets bound so far stay in fds for the caller to close. */
static int prepare_listeners(struct server *s, const struct config *cfg,
                             int (*fds)[WORKER_MAX_LISTENERS], struct bound *ls, FILE *errs)
{
    memcpy(ls, s->ls, sizeof(s->ls));
    for (int i = 0; i < s->nworkers; i++)
        for (int j = 0; j < WORKER_MAX_LISTENERS; j++)
            fds[i][j] = WORKER_KEEP_FD;
    for (int tls = 0; tls < 2; tls++) {
        const struct config_listen_list *list = listens(cfg, tls);
        int base = tls ? WORKER_TLS_SLOT : 0;
        bool keep[WORKER_TLS_SLOT] = {0};
        for (int j = 0; j < list->n; j++) {
            int slot = find_slot(s->ls, tls, &list->at[j]);
            if (slot >= 0)
                keep[slot - base] = true;
        }
        for (int k = 0; k < WORKER_TLS_SLOT; k++) {
            if (ls[base + k].used && !keep[k]) { /* no longer listed */
                ls[base + k].used = false;
                for (int i = 0; i < s->nworkers; i++)
                    fds[i][base + k] = -1;
            }
        }
        for (int j = 0; j < list->n; j++) {
            if (find_slot(s->ls, tls, &list->at[j]) >= 0)
                continue;
            int k = 0;
            while (k < WORKER_TLS_SLOT && (keep[k] || ls[base + k].used))
                k++;
            if (k == WORKER_TLS_SLOT) /* cannot happen: a list has at most CONFIG_LISTEN_MAX */
                return -ENOSPC;
            keep[k] = true;
            struct listen_spec sp = spec_of(&list->at[j], !cfg->reuse_port);
            for (int i = 0; i < WORKER_MAX_LISTENERS; i++)
                if (s->ls[i].used && overlaps(sp.addr, &s->ls[i].addr))
                    sp.probe = false;
            int rc = bind_listeners(&sp, fds, base + k, s->nworkers, &ls[base + k]);
            if (rc < 0) {
                char why[400];
                listen_error(why, sizeof(why), s->confpath, &sp, rc);
                fprintf(errs, "%s\n", why);
                return rc;
            }
        }
    }
    return 0;
}

static void fail_reload(struct server *s, const char *who, char *errs, bool stopping,
                        struct admin_reload *out)
{
    if (!stopping) {
        /* systemd waits for READY=1 after RELOADING=1, a failed reload included */
        char status[300];
        const char *first = errs ? errs : "";
        const char *nl = strchr(first, '\n');
        int len = nl ? (int)(nl - first) : (int)strlen(first);
        snprintf(status, sizeof(status), "reload failed, still serving generation %llu: %.*s",
                 (unsigned long long)s->gen->id, len, first);
        notify_ready(status);
    }
    log_lines(errs, true);
    log_event(LOG_ERROR, "reload", "reload by %s failed: keeping generation %llu", who,
              (unsigned long long)s->gen->id);
    metrics_reload_done(false, s->gen->id);
    *out = (struct admin_reload){.ok = false, .generation = s->gen->id, .errors = errs};
}

/* What a reload carries from building the new generation to publishing it.
 *
 *   reload_prepare (may fail: undone, nothing the running generation uses has changed)
 *     load + validate ─► listeners bound ─► generation ─► new checker: first round of the new
 *     backends, thread held ─► access log (the last step that may fail; takes effect at once)
 *   reload_publish (cannot fail)
 *     checker hand-over ─► retire removed backends ─► swap ─► queue to every worker ─► wait
 */
struct reload {
    FILE *errs;   /* errors and warnings, one per line (an open_memstream) */
    /* per worker, per slot: WORKER_KEEP_FD, -1 (close) or a new listening socket */
    int (*fds)[WORKER_MAX_LISTENERS];
    struct worker_update **updates; /* per worker, allocated up front: publishing cannot fail */
    struct health *health; /* the new generation's checker, started held */
    struct bound ls[WORKER_MAX_LISTENERS]; /* the listeners once published */
    char *changes; /* config_diff's lines */
    bool dns;      /* a DNS update (run_dns), not a reload: the same config, not counted */
};

static void close_new_listeners(const struct server *s, struct reload *r)
{
    close_all(r->fds, s->nworkers);
}

/* Loads and validates the file and prepares everything that may fail: listeners bound, the new
 * generation (backends taken over by identity), its health checker (new backends checked, the
 * thread started but held), the access log's destination. Nothing the running generation uses
 * changes here, except the access log, last. Returns the generation, or NULL with the reasons in
 * r->errs and everything undone. */
static struct generation *reload_prepare(struct server *s, struct reload *r)
{
    struct config *cfg = NULL;
    if (config_load(s->confpath, r->errs, &cfg) != 0)
        return NULL;
    if (dns_prepare(s, cfg, false) != 0) {
        fprintf(r->errs, "%s: cannot start the DNS resolver\n", s->confpath);
        config_free(cfg);
        return NULL;
    }
    const struct config *run = s->gen->cfg;
    keep_restart_settings(s, cfg, r->errs);
    r->fds = calloc((size_t)s->nworkers, sizeof(*r->fds));
    r->updates = calloc((size_t)s->nworkers, sizeof(*r->updates));
    int rc = !r->fds || !r->updates ? -ENOMEM : 0;
    for (int i = 0; rc == 0 && i < s->nworkers; i++)
        if (!(r->updates[i] = calloc(1, sizeof(*r->updates[i]))))
            rc = -ENOMEM;
    if (rc == 0)
        rc = prepare_listeners(s, cfg, r->fds, r->ls, r->errs);
    if (rc != 0) {
        if (rc == -ENOMEM)
            fprintf(r->errs, "%s: out of memory\n", s->confpath);
        close_new_listeners(s, r);
        config_free(cfg);
        return NULL;
    }
    /* Tickets issued before the reload still resume, unless it changed who may connect (the
     * client CAs, or their certificates): then old sessions get a full handshake (tls.h). */
    bool tickets_dropped = cfg->tls && run->tls && cfg->tls->session_tickets &&
                           !tls_server_inherit_tickets(cfg->tls->server, run->tls->server);
    size_t len = 0;
    FILE *cf = open_memstream(&r->changes, &len);
    if (cf) {
        config_diff(run, cfg, cf);
        if (tickets_dropped)
            fprintf(cf, "tls: client authentication changed, earlier sessions are not resumed\n");
        fclose(cf);
    }
    struct generation *gen = generation_new_dns(cfg, s->gen, s->nworkers, s->gen->id + 1, s->dns);
    if (!gen) { /* cfg is freed with it */
        fprintf(r->errs, "%s: out of memory\n", s->confpath);
        close_new_listeners(s, r);
        return NULL;
    }
    /* The new checker before anything changes: backends never checked (the new ones) are
     * checked now, before any request can reach them, and its thread is started held. If that
     * fails, the running checker was not touched and the reload fails. */
    errno = 0;
    r->health = checker_new(gen);
    rc = r->health ? health_start_held(r->health, s->health) : errno ? -errno : -ENOMEM;
    if (rc != 0) {
        fprintf(r->errs, "%s: cannot start health checks for the new configuration: %s\n",
                s->confpath, strerror(-rc));
    } else { /* the last step that may fail: it takes effect at once */
        rc = accesslog_configure((enum accesslog_format)gen->cfg->access_log,
                                 gen->cfg->access_log_path);
        if (rc != 0)
            fprintf(r->errs, "%s: cannot open the access log %s: %s\n", s->confpath,
                    gen->cfg->access_log_path ? gen->cfg->access_log_path : "(stdout)",
                    strerror(-rc));
    }
    if (rc != 0) {
        health_free(r->health); /* a held thread ends without a round */
        r->health = NULL;
        generation_unref(gen);
        close_new_listeners(s, r);
        return NULL;
    }
    return gen;
}

/* Makes gen the running generation: the checker handed over, removed backends retired, then the
 * swap, every worker's adoption (with its listener changes) queued and waited for, the old one
 * let go. Nothing here fails. */
static void reload_publish(struct server *s, struct generation *gen, struct reload *r)
{
    health_take_over(r->health, s->health);
    health_free(s->health);
    s->health = r->health;
    r->health = NULL;

    struct generation *old = s->gen;
    for (int p = 0; p < old->npools; p++) {
        const struct backend_table *t = old->pools[p].table;
        for (int i = 0; i < t->n; i++)
            if (!generation_has_backend(gen, t->b[i]))
                atomic_store_explicit(&t->b[i]->retired, true, memory_order_relaxed);
    }
    for (int p = 0; p < gen->npools; p++)
        backend_table_commit(gen->pools[p].table, &gen->pools[p].cfg);
    log_set_json(gen->cfg->log_json);
    s->gen = gen;
    generation_publish(gen);
    if (s->dns)
        dns_sync(s->dns, gen->cfg, true); /* names only the old configuration had are gone */
    memcpy(s->ls, r->ls, sizeof(s->ls));
    uint16_t port = https_port(s->ls, gen->cfg);
    for (int i = 0; i < s->started; i++) {
        struct worker_update *u = r->updates[i];
        *u = (struct worker_update){.gen = gen, .https_port = port};
        memcpy(u->listen_fd, r->fds[i], sizeof(u->listen_fd));
        r->updates[i] = NULL;
        generation_ref(gen); /* the worker's */
        worker_update(&s->workers[i], u);
    }
    /* A worker behind (its loop held up) keeps the update queued and adopts it, and any later
     * one, in order when its loop runs again: waiting longer would only delay the answer. */
    int behind =
        worker_wait_updated(s->workers, s->started, gen->id, util_now_ms() + UPDATE_WAIT_MS);
    if (behind > 0)
        log_warn("reload: %d worker(s) busy, generation %llu stays queued for them", behind,
                 (unsigned long long)gen->id);
    generation_unref(old); /* the process's; workers let go of theirs as their requests end */
    describe_listeners(s, gen->cfg);
    admin_set_listeners(s->admin, s->where);
    if (!r->dns)
        metrics_reload_done(true, gen->id);
}

/* The reload's one line: the generation and what changed. */
static void log_reload(const struct server *s, const char *who, const char *changes)
{
    char *summary = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&summary, &len);
    int n = 0;
    if (f) {
        for (const char *p = changes; p && *p;) {
            const char *e = strchr(p, '\n');
            int k = e ? (int)(e - p) : (int)strlen(p);
            fprintf(f, "%s%.*s", n++ ? "; " : "", k, p);
            p += k + (e != NULL);
        }
        fclose(f);
    }
    log_event(LOG_INFO, "reload", "reload by %s: generation %llu running (%s); listening on %s",
              who, (unsigned long long)s->gen->id, n && summary ? summary : "no changes",
              s->where);
    free(summary);
}

/* One reload, on the control thread. *out gets the outcome (its strings the caller's). */
static void run_reload(struct server *s, const char *who, bool stopping, struct admin_reload *out)
{
    *out = (struct admin_reload){.generation = s->gen->id};
    struct reload r = {0};
    char *errs = NULL;
    size_t errs_len = 0;
    r.errs = open_memstream(&errs, &errs_len);
    if (!r.errs) {
        out->errors = strdup("out of memory\n");
        return;
    }
    struct generation *gen = NULL;
    if (stopping) {
        fprintf(r.errs, "golb is shutting down\n");
    } else {
        log_debug("reload by %s: loading %s", who, s->confpath);
        notify_reloading("reloading the configuration");
        gen = reload_prepare(s, &r);
    }
    fclose(r.errs);
    if (!gen) {
        fail_reload(s, who, errs, stopping, out);
    } else {
        reload_publish(s, gen, &r);
        log_lines(errs, false); /* warnings, in the logFormat just published */
        log_reload(s, who, r.changes);
        notify_ready_serving(s);
        *out = (struct admin_reload){.ok = true, .generation = gen->id, .errors = errs,
                                     .changes = r.changes};
        r.changes = NULL;
    }
    free(r.changes);
    free(r.fds);
    for (int i = 0; r.updates && i < s->nworkers; i++)
        free(r.updates[i]);
    free(r.updates);
}

/* A DNS update, on the control thread: the running configuration again (shared, config_ref),
 * every `resolve:` backend standing for its name's set now, published as a reload publishes
 * (backends kept by identity, new ones checked before traffic, removed ones retired and
 * drained), listeners untouched. Logs one line. */
static void run_dns(struct server *s, bool stopping)
{
    if (stopping || !s->dns)
        return;
    struct reload r = {.dns = true};
    r.fds = calloc((size_t)s->nworkers, sizeof(*r.fds));
    r.updates = calloc((size_t)s->nworkers, sizeof(*r.updates));
    bool ok = r.fds && r.updates;
    for (int i = 0; ok && i < s->nworkers; i++) {
        ok = (r.updates[i] = calloc(1, sizeof(*r.updates[i]))) != NULL;
        for (int j = 0; j < WORKER_MAX_LISTENERS; j++)
            r.fds[i][j] = WORKER_KEEP_FD;
    }
    memcpy(r.ls, s->ls, sizeof(s->ls));
    struct generation *gen = NULL;
    if (ok) {
        config_ref(s->gen->cfg);
        gen = generation_new_dns(s->gen->cfg, s->gen, s->nworkers, s->gen->id + 1, s->dns);
    }
    int rc = gen ? 0 : -ENOMEM;
    if (gen) {
        errno = 0;
        r.health = checker_new(gen);
        rc = r.health ? health_start_held(r.health, s->health) : errno ? -errno : -ENOMEM;
    }
    if (rc != 0) {
        log_error("dns: cannot apply the new DNS answers: %s (retried at the next change)",
                  strerror(-rc));
        health_free(r.health);
        generation_unref(gen);
    } else {
        reload_publish(s, gen, &r);
        char what[512] = "";
        size_t len = 0;
        for (int p = 0; p < gen->npools; p++) {
            int k = snprintf(what + len, sizeof(what) - len, "%s%s %d", p ? ", " : "",
                             gen->pools[p].name, gen->pools[p].table->n);
            if (k < 0 || (size_t)k >= sizeof(what) - len)
                break;
            len += (size_t)k;
        }
        log_event(LOG_INFO, "dns", "dns: generation %llu running (backends by pool: %s)",
                  (unsigned long long)gen->id, what);
    }
    free(r.fds);
    for (int i = 0; r.updates && i < s->nworkers; i++)
        free(r.updates[i]);
    free(r.updates);
}

static void *control_main(void *arg)
{
    struct server *s = arg;
    pthread_mutex_lock(&s->jobs_lock);
    for (;;) {
        while (!s->jobs && !s->stopping)
            pthread_cond_wait(&s->jobs_cond, &s->jobs_lock);
        struct reload_job *job = s->jobs;
        if (!job)
            break; /* stopping, and every job answered */
        s->jobs = job->next;
        if (!s->jobs)
            s->jobs_tail = &s->jobs;
        job->queued = false; /* a SIGHUP from now on asks for another reload */
        bool stopping = s->stopping;
        char who[sizeof(job->who)];
        memcpy(who, job->who, sizeof(who));
        pthread_mutex_unlock(&s->jobs_lock);

        if (job->dns) { /* nobody waits for it */
            run_dns(s, stopping);
            pthread_mutex_lock(&s->jobs_lock);
            continue;
        }
        struct admin_reload r;
        run_reload(s, who, stopping, &r);

        pthread_mutex_lock(&s->jobs_lock);
        if (job->out) { /* server_reload() waits: its job is on its stack */
            *job->out = r;
            job->done = true;
            pthread_cond_broadcast(&s->jobs_cond);
        } else if (job->admin) {
            pthread_mutex_unlock(&s->jobs_lock);
            admin_reload_done(job->admin, job->ticket, &r); /* takes r's strings */
            free(job);
            pthread_mutex_lock(&s->jobs_lock);
        } else { /* SIGHUP: the log said it all */
            free(r.errors);
            free(r.changes);
        }
    }
    pthread_mutex_unlock(&s->jobs_lock);
    return NULL;
}

/* Queues job unless golb stops; false when it does (nothing queued). Under jobs_lock. */
static bool queue_job(struct server *s, struct reload_job *job)
{
    if (s->stopping)
        return false;
    job->next = NULL;
    job->queued = true;
    *s->jobs_tail = job;
    s->jobs_tail = &job->next;
    pthread_cond_broadcast(&s->jobs_cond);
    return true;
}

int server_reload_async(struct server *s, const char *who, struct admin *a, uint64_t ticket)
{
    if (!a) {
        pthread_mutex_lock(&s->jobs_lock);
        if (!s->hup.queued) { /* one waiting already reads the file after this signal */
            snprintf(s->hup.who, sizeof(s->hup.who), "%s", who);
            (void)queue_job(s, &s->hup);
        }
        pthread_mutex_unlock(&s->jobs_lock);
        return 0;
    }
    struct reload_job *job = calloc(1, sizeof(*job));
    if (!job)
        return -ENOMEM;
    snprintf(job->who, sizeof(job->who), "%s", who);
    job->admin = a;
    job->ticket = ticket;
    pthread_mutex_lock(&s->jobs_lock);
    bool queued = queue_job(s, job);
    pthread_mutex_unlock(&s->jobs_lock);
    if (!queued) {
        free(job);
        return -ESHUTDOWN;
    }
    return 0;
}

void server_reload(struct server *s, const char *who, struct admin_reload *out)
{
    struct reload_job job = {0};
    snprintf(job.who, sizeof(job.who), "%s", who);
    job.out = out;
    *out = (struct admin_reload){0};
    pthread_mutex_lock(&s->jobs_lock);
    if (!queue_job(s, &job)) {
        pthread_mutex_unlock(&s->jobs_lock);
        out->errors = strdup("golb is shutting down\n");
        return;
    }
    while (!job.done)
        pthread_cond_wait(&s->jobs_cond, &s->jobs_lock);
    pthread_mutex_unlock(&s->jobs_lock);
}
