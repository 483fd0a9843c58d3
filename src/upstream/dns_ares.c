/* dns_ares — see dns_ares.h.
 *
 *   thread:  poll(c-ares sockets + eventfd, until the earlier of c-ares' timeout and the next
 *            due name) ─► ares_process_fd ─► callbacks ─► dns_answer ─► on_change
 *                      ─► dns_due ─► one query per due name
 *
 *   resolve: a    ares_getaddrinfo(host, AF_UNSPEC): every A and AAAA, each with its TTL
 *   resolve: srv  ares_query(host, SRV) ─► ares_parse_srv_reply (+ dns_msg_min_ttl for the TTL)
 *                 ─► ares_getaddrinfo per target ─► all back: one answer for the name
 */
#include "upstream/dns_ares.h"

#include <ares.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "base/log.h"
#include "base/util.h"
#include "config/config.h"
#include "upstream/dns.h"

#define SRV_TARGETS_MAX 16 /* SRV targets looked up per name */
#define DUE_BATCH 32       /* names queried per loop turn */

struct dns_ares {
    struct dns *dns;
    void (*on_change)(void *arg);
    void *arg;
    ares_channel ch;
    int wake_fd;
    pthread_t thread;
    bool started;
    bool destroying;      /* ares_destroy calls back every pending query: answer none of them */
    pthread_mutex_t lock; /* the fields below, written by other threads */
    bool stop;
    char *servers; /* new nameservers CSV to apply; "" for /etc/resolv.conf's */
    bool servers_changed;
};

/* One name's query (and for SRV, its targets' lookups). */
struct query {
    struct dns_ares *r;
    char host[DNS_HOST_MAX];
    int type;
    int pending; /* lookups not back yet (SRV targets) */
    uint32_t ttl_s;
    enum dns_result result;
    int n;
    struct dns_target t[DNS_SET_MAX];
    /* SRV: the target being looked up by each lookup */
    struct srv_lookup {
        struct query *q;
        uint16_t port, weight, priority;
    } srv[SRV_TARGETS_MAX];
};

static enum dns_result result_of(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return DNS_OK;
    case ARES_ENODATA:
        return DNS_EMPTY;
    case ARES_ENOTFOUND:
        return DNS_NXDOMAIN;
    case ARES_ETIMEOUT:
        return DNS_TIMEOUT;
    default:
        return DNS_SERVFAIL;
    }
}

static void finish(struct query *q)
{
    struct dns_ares *r = q->r;
    if (r->destroying) {
        free(q);
        return;
    }
    bool changed =
        dns_answer(r->dns, q->type, q->host, util_now_ms(), q->result, q->t, q->n, q->ttl_s);
    free(q);
    if (changed)
        r->on_change(r->arg);
}

/* Appends the addresses of an ares_getaddrinfo result to q with port/weight/priority. */
static void add_addrs(struct query *q, const struct ares_addrinfo *ai, uint16_t port,
                      uint16_t weight, uint16_t priority)
{
    for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n && q->n < DNS_SET_MAX;
         n = n->ai_next) {
        if (n->ai_family != AF_INET && n->ai_family != AF_INET6)
            continue;
        struct dns_target *t = &q->t[q->n++];
        memset(t, 0, sizeof(*t));
        memcpy(&t->addr, n->ai_addr, n->ai_addrlen);
        t->addrlen = (socklen_t)n->ai_addrlen;
        if (t->addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&t->addr)->sin_port = 0;
        else
            ((struct sockaddr_in6 *)&t->addr)->sin6_port = 0;
        t->port = port;
        t->weight = weight;
        t->priority = priority;
        uint32_t ttl = n->ai_ttl > 0 ? (uint32_t)n->ai_ttl : 0;
        if (ttl < q->ttl_s)
            q->ttl_s = ttl;
    }
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    (void)timeouts;
    struct query *q = arg;
    q->result = result_of(status);
    if (status == ARES_SUCCESS)
        add_addrs(q, ai, 0, 1, 0);
    if (ai)
        ares_freeaddrinfo(ai);
    finish(q);
}

static void on_target(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    (void)timeouts;
    struct srv_lookup *s = arg;
    struct query *q = s->q;
    if (status == ARES_SUCCESS)
        add_addrs(q, ai, s->port, s->weight, s->priority);
    if (ai)
        ares_freeaddrinfo(ai);
    if (--q->pending == 0) {
        /* the SRV answer stands: targets without addresses only shrink it */
        q->result = q->n ? DNS_OK : DNS_EMPTY;
        finish(q);
    }
}

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct query *q = arg;
    struct ares_srv_reply *srv = NULL;
    if (status == ARES_SUCCESS)
        status = ares_parse_srv_reply(abuf, alen, &srv);
    uint32_t ttl = 0;
    if (status == ARES_SUCCESS && dns_msg_min_ttl(abuf, (size_t)alen, &ttl) == 0)
        q->ttl_s = ttl;
    q->result = result_of(status);
    if (status != ARES_SUCCESS || !srv) {
        if (srv)
            ares_free_data(srv);
        if (q->result == DNS_OK)
            q->result = DNS_EMPTY;
        finish(q);
        return;
    }
    /* count first: a lookup may call back before ares_getaddrinfo returns */
    int k = 0;
    for (struct ares_srv_reply *s = srv; s && k < SRV_TARGETS_MAX; s = s->next) {
        if (strcmp(s->host, ".") == 0 || s->host[0] == 0 || s->port == 0)
            continue; /* RFC 2782: "." means the service is not offered */
        /* RFC 2782 weight 0 means "rarely", golb's 0 means "never": 1 is the closest */
        uint16_t w = s->weight == 0 ? 1 : s->weight > 1000 ? 1000 : s->weight;
        q->srv[k] = (struct srv_lookup){q, s->port, w, s->priority};
        k++;
    }
    if (k == 0) {
        ares_free_data(srv);
        q->result = DNS_EMPTY;
        finish(q);
        return;
    }
    q->pending = k + 1; /* +1: ours, until every lookup is started */
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT};
    int j = 0;
    for (struct ares_srv_reply *s = srv; s && j < k; s = s->next) {
        if (strcmp(s->host, ".") == 0 || s->host[0] == 0 || s->port == 0)
            continue;
        ares_getaddrinfo(q->r->ch, s->host, NULL, &hints, on_target, &q->srv[j]);
        j++;
    }
    ares_free_data(srv);
    if (--q->pending == 0) {
        q->result = q->n ? DNS_OK : DNS_EMPTY;
        finish(q);
    }
}

static void ask(struct dns_ares *r, const struct dns_query *what)
{
    struct query *q = calloc(1, sizeof(*q));
    if (!q) {
        dns_answer(r->dns, what->type, what->host, util_now_ms(), DNS_SERVFAIL, NULL, 0, 0);
        return;
    }
    q->r = r;
    q->ttl_s = UINT32_MAX;
    q->type = what->type;
    memcpy(q->host, what->host, sizeof(q->host));
    if (q->type == CONFIG_RESOLVE_SRV) {
        ares_query(r->ch, q->host, 1 /* C_IN */, 33 /* T_SRV */, on_srv, q);
    } else {
        struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT};
        ares_getaddrinfo(r->ch, q->host, NULL, &hints, on_addrinfo, q);
    }
}

static void apply_servers(struct dns_ares *r)
{
    pthread_mutex_lock(&r->lock);
    char *csv = r->servers_changed ? r->servers : NULL;
    r->servers = NULL;
    r->servers_changed = false;
    pthread_mutex_unlock(&r->lock);
    if (!csv)
        return;
    if (csv[0]) {
        int rc = ares_set_servers_ports_csv(r->ch, csv);
        if (rc != ARES_SUCCESS)
            log_warn("dns: cannot use the nameservers %s: %s", csv, ares_strerror(rc));
    }
    free(csv);
}

static void *thread_main(void *arg)
{
    struct dns_ares *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        bool stop = r->stop, servers = r->servers_changed;
        pthread_mutex_unlock(&r->lock);
        if (stop)
            break;
        if (servers)
            apply_servers(r);
        struct dns_query due[DUE_BATCH];
        uint64_t now = util_now_ms(), next;
        if (dns_expire(r->dns, now))
            r->on_change(r->arg);
        int k = dns_due(r->dns, now, due, DUE_BATCH, &next);
        for (int i = 0; i < k; i++)
            ask(r, &due[i]);
        if (k == DUE_BATCH)
            next = now;

        struct pollfd pfd[ARES_GETSOCK_MAXNUM + 1];
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        /* the bit masks by hand: ARES_GETSOCK_WRITABLE shifts a signed 1 into bit 31 */
        unsigned bits = (unsigned)ares_getsock(r->ch, socks, ARES_GETSOCK_MAXNUM);
        int n = 0;
        for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = (short)((bits & 1u << i ? POLLIN : 0) |
                               (bits & 1u << (i + ARES_GETSOCK_MAXNUM) ? POLLOUT : 0));
            if (ev)
                pfd[n++] = (struct pollfd){.fd = socks[i], .events = ev};
        }
        pfd[n++] = (struct pollfd){.fd = r->wake_fd, .events = POLLIN};
        now = util_now_ms();
        uint64_t wait = next == UINT64_MAX ? 60000 : next > now ? next - now : 0;
        struct timeval tv,
            max = {.tv_sec = (time_t)(wait / 1000), .tv_usec = (suseconds_t)(wait % 1000) * 1000};
        struct timeval *t = ares_timeout(r->ch, &max, &tv);
        int ms = (int)(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
        int rc = poll(pfd, (nfds_t)n, ms);
        if (rc == -1 && errno != EINTR) {
            log_error("dns: poll: %s", strerror(errno));
            break;
        }
        for (int i = 0; rc > 0 && i < n - 1; i++)
            ares_process_fd(
                r->ch, pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
                pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
        if (rc > 0 && pfd[n - 1].revents & POLLIN) {
            uint64_t v;
            if (read(r->wake_fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
                log_warn("dns: wake-up: %s", strerror(errno));
        }
        ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
    }
    return NULL;
}

static void wake(struct dns_ares *r)
{
    uint64_t one = 1;
    if (write(r->wake_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
        log_warn("dns: wake-up: %s", strerror(errno));
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc; /* 1: c-ares initialised (once per process, never cleaned up) */

static void lib_init(void)
{
    lib_rc = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS ? 1 : -1;
}

struct dns_ares *dns_ares_start(struct dns *d, const struct config *cfg,
                                void (*on_change)(void *arg), void *arg)
{
    struct dns_ares *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->dns = d;
    r->on_change = on_change;
    r->arg = arg;
    r->wake_fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_once(&lib_once, lib_init);
    struct ares_options o = {.timeout = 1000, .tries = 2, .lookups = (char *)"b"};
    int rc = lib_rc == 1 ? ares_init_options(&r->ch, &o,
                                             ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS)
                         : ARES_ENOTINITIALIZED;
    if (rc != ARES_SUCCESS) {
        log_error("dns: cannot start the resolver: %s", ares_strerror(rc));
        r->ch = NULL;
        dns_ares_stop(r);
        return NULL;
    }
    if (cfg->resolvers.nameservers) {
        rc = ares_set_servers_ports_csv(r->ch, cfg->resolvers.nameservers);
        if (rc != ARES_SUCCESS)
            log_warn("dns: cannot use the nameservers %s: %s", cfg->resolvers.nameservers,
                     ares_strerror(rc));
    }
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wake_fd == -1 || (errno = pthread_create(&r->thread, NULL, thread_main, r)) != 0) {
        log_error("dns: cannot start the resolver thread: %s", strerror(errno));
        dns_ares_stop(r);
        return NULL;
    }
    r->started = true;
    return r;
}

void dns_ares_configure(struct dns_ares *r, const struct config *cfg)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    free(r->servers);
    r->servers = strdup(cfg->resolvers.nameservers ? cfg->resolvers.nameservers : "");
    r->servers_changed = r->servers != NULL;
    pthread_mutex_unlock(&r->lock);
    wake(r);
}

void dns_ares_wake(struct dns_ares *r)
{
    if (r)
        wake(r);
}

bool dns_ares_wait_settled(struct dns_ares *r, uint64_t timeout_ms)
{
    uint64_t end = util_now_ms() + timeout_ms;
    while (!dns_settled(r->dns)) {
        if (util_now_ms() >= end)
            return false;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return true;
}

void dns_ares_stop(struct dns_ares *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        pthread_mutex_unlock(&r->lock);
        wake(r);
        pthread_join(r->thread, NULL);
    }
    r->destroying = true;
    if (r->ch)
        ares_destroy(r->ch); /* pending queries call back with ARES_EDESTRUCTION */
    if (r->wake_fd != -1)
        close(r->wake_fd);
    free(r->servers);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
