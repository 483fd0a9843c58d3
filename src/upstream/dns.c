/* dns — see dns.h.
 *
 *   a name's life:   due ──dns_due──► asked ──dns_answer──► due again at now + clamp(TTL)
 *                                        │                     (a failure: now + minTtl)
 *   its set:  OK answer, different ──► replaced at once
 *             failure / empty ──► kept; failing for ≥ holdOnFailure ──► emptied (logged)
 */
#include "upstream/dns.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "base/log.h"
#include "base/sock.h"
#include "config/config.h"

struct dns_name {
    char host[DNS_HOST_MAX];
    int type;               /* CONFIG_RESOLVE_A or _SRV */
    bool used;              /* dns_sync's mark */
    bool asked;             /* a query is out (dns_due .. dns_answer) */
    bool answered;          /* at least one outcome since it was added */
    uint64_t due_ms;        /* the next query */
    uint64_t failing_since; /* ms of the first failure of the current streak; 0 when resolving */
    enum dns_result last;
    uint32_t ttl_s; /* the last OK answer's TTL, clamped */
    int n;
    struct dns_target set[DNS_SET_MAX]; /* the published set, sorted (target_cmp) */
    uint64_t results[DNS_RESULT_COUNT];
};

static void diff_str(const struct dns_target *a, int na, const struct dns_target *b, int nb,
                     char *buf, size_t cap);
static const char *type_name(int type);

struct dns {
    pthread_mutex_t lock;
    struct dns_params p;
    int n, cap;
    struct dns_name **names;
};

static const char *const result_names[DNS_RESULT_COUNT] = {"ok", "empty", "nxdomain", "servfail",
                                                           "timeout"};

const char *dns_result_name(enum dns_result r)
{
    return (unsigned)r < DNS_RESULT_COUNT ? result_names[r] : "unknown";
}

uint32_t dns_clamp_ttl(uint32_t ttl_s, uint32_t min_s, uint32_t max_s)
{
    return ttl_s < min_s ? min_s : ttl_s > max_s ? max_s : ttl_s;
}

struct dns *dns_new(const struct dns_params *p)
{
    struct dns *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    pthread_mutex_init(&d->lock, NULL);
    d->p = *p;
    return d;
}

void dns_free(struct dns *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        free(d->names[i]);
    free(d->names);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static struct dns_name *find(struct dns *d, int type, const char *host)
{
    for (int i = 0; i < d->n; i++)
        if (d->names[i]->type == type && strcmp(d->names[i]->host, host) == 0)
            return d->names[i];
    return NULL;
}

/* Marks (type, host) used, adding it when new: 1 new, 0 known, -ENOMEM. Under the lock. */
static int use(struct dns *d, int type, const char *host)
{
    struct dns_name *nm = find(d, type, host);
    if (nm) {
        nm->used = true;
        return 0;
    }
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 8;
        struct dns_name **nn = realloc(d->names, (size_t)cap * sizeof(*nn));
        if (!nn)
            return -ENOMEM;
        d->names = nn;
        d->cap = cap;
    }
    if (!(nm = calloc(1, sizeof(*nm))))
        return -ENOMEM;
    snprintf(nm->host, sizeof(nm->host), "%s", host);
    nm->type = type;
    nm->used = true;
    d->names[d->n++] = nm;
    return 1;
}

int dns_sync(struct dns *d, const struct config *cfg, bool prune)
{
    int added = 0, rc = 0;
    pthread_mutex_lock(&d->lock);
    d->p = (struct dns_params){cfg->resolvers.min_ttl_s, cfg->resolvers.max_ttl_s,
                               cfg->resolvers.hold_s};
    for (int i = 0; i < d->n; i++)
        d->names[i]->used = false;
    for (int p = 0; p < cfg->npools && rc >= 0; p++) {
        const struct config_pool *cp = &cfg->pools[p];
        for (int i = 0; i < cp->nbackends && rc >= 0; i++)
            if (cp->backends[i].resolve != CONFIG_RESOLVE_NONE) {
                rc = use(d, cp->backends[i].resolve, cp->backends[i].host);
                added += rc > 0;
            }
    }
    int k = 0;
    for (int i = 0; i < d->n; i++) {
        if (d->names[i]->used || rc < 0 || !prune)
            d->names[k++] = d->names[i];
        else
            free(d->names[i]);
    }
    d->n = k;
    pthread_mutex_unlock(&d->lock);
    return rc < 0 ? rc : added;
}

int dns_count(struct dns *d)
{
    pthread_mutex_lock(&d->lock);
    int n = d->n;
    pthread_mutex_unlock(&d->lock);
    return n;
}

int dns_due(struct dns *d, uint64_t now_ms, struct dns_query *q, int cap, uint64_t *next_ms)
{
    int k = 0;
    uint64_t next = UINT64_MAX;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->n; i++) {
        struct dns_name *nm = d->names[i];
        if (nm->failing_since && nm->n) { /* the end of its hold, answer or not */
            uint64_t end = nm->failing_since + (uint64_t)d->p.hold_s * 1000u;
            if (end < next)
                next = end;
        }
        if (nm->asked)
            continue;
        if (nm->due_ms <= now_ms && k < cap) {
            nm->asked = true;
            q[k].type = nm->type;
            memcpy(q[k].host, nm->host, sizeof(q[k].host));
            k++;
        } else if (nm->due_ms < next) {
            next = nm->due_ms;
        }
    }
    pthread_mutex_unlock(&d->lock);
    *next_ms = next;
    return k;
}

/* Empties nm's set when it has failed for holdOnFailure. True when it did. Under the lock. */
static bool expire(struct dns *d, struct dns_name *nm, uint64_t now_ms)
{
    if (!nm->failing_since || !nm->n || now_ms - nm->failing_since < (uint64_t)d->p.hold_s * 1000u)
        return false;
    char what[512];
    diff_str(nm->set, nm->n, NULL, 0, what, sizeof(what));
    log_event(LOG_WARN, "dns", "dns: %s (%s): %s for %llus (holdOnFailure %us): 0 backends (%s)",
              nm->host, type_name(nm->type), dns_result_name(nm->last),
              (unsigned long long)((now_ms - nm->failing_since) / 1000u), d->p.hold_s, what);
    nm->n = 0;
    return true;
}

bool dns_expire(struct dns *d, uint64_t now_ms)
{
    bool changed = false;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->n; i++)
        changed |= expire(d, d->names[i], now_ms);
    pthread_mutex_unlock(&d->lock);
    return changed;
}

/* Sets are sorted by address, then port, so that two answers in any order compare equal. The
 * weight and priority take part in equality (a changed weight is a change) but not in order. */
static int target_cmp(const void *a, const void *b)
{
    const struct dns_target *x = a, *y = b;
    if (x->addr.ss_family != y->addr.ss_family)
        return x->addr.ss_family < y->addr.ss_family ? -1 : 1;
    int c = x->addr.ss_family == AF_INET6
                ? memcmp(&((const struct sockaddr_in6 *)&x->addr)->sin6_addr,
                         &((const struct sockaddr_in6 *)&y->addr)->sin6_addr, 16)
                : memcmp(&((const struct sockaddr_in *)&x->addr)->sin_addr,
                         &((const struct sockaddr_in *)&y->addr)->sin_addr, 4);
    if (c)
        return c;
    return x->port < y->port ? -1 : x->port > y->port;
}

static bool same_target(const struct dns_target *x, const struct dns_target *y)
{
    return target_cmp(x, y) == 0 && x->weight == y->weight && x->priority == y->priority;
}

/* t[0..n) sorted into out without duplicates (the first of equal ones kept); returns the count. */
static int normalise(const struct dns_target *t, int n, struct dns_target *out)
{
    int k = 0;
    for (int i = 0; i < n && k < DNS_SET_MAX; i++) {
        if (t[i].addr.ss_family != AF_INET && t[i].addr.ss_family != AF_INET6)
            continue;
        out[k++] = t[i];
    }
    qsort(out, (size_t)k, sizeof(*out), target_cmp);
    int u = 0;
    for (int i = 0; i < k; i++)
        if (u == 0 || target_cmp(&out[u - 1], &out[i]) != 0)
            out[u++] = out[i];
    return u;
}

static const char *type_name(int type)
{
    return type == CONFIG_RESOLVE_SRV ? "srv" : "a";
}

static void target_str(const struct dns_target *t, char *buf, size_t cap)
{
    struct sockaddr_storage ss = t->addr;
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(t->port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(t->port);
    if (t->port)
        sock_addr_str((const struct sockaddr *)&ss, buf, cap);
    else
        sock_ip_str((const struct sockaddr *)&ss, buf, cap);
}

/* "+A +B -C" between the sets a (old) and b (new), into buf (cut at cap). */
static void diff_str(const struct dns_target *a, int na, const struct dns_target *b, int nb,
                     char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int pass = 0; pass < 2; pass++) {
        const struct dns_target *x = pass ? a : b, *y = pass ? b : a;
        int nx = pass ? na : nb, ny = pass ? nb : na;
        for (int i = 0; i < nx; i++) {
            bool found = false;
            for (int j = 0; j < ny && !found; j++)
                found = same_target(&x[i], &y[j]);
            if (found)
                continue;
            char s[80];
            target_str(&x[i], s, sizeof(s));
            int k = snprintf(buf + len, cap - len, "%s%c%s", len ? " " : "", pass ? '-' : '+', s);
            if (k < 0 || (size_t)k >= cap - len)
                return;
            len += (size_t)k;
        }
    }
}

bool dns_answer(struct dns *d, int type, const char *host, uint64_t now_ms, enum dns_result r,
                const struct dns_target *t, int n, uint32_t ttl_s)
{
    struct dns_target sorted[DNS_SET_MAX];
    bool changed = false;
    pthread_mutex_lock(&d->lock);
    struct dns_name *nm = find(d, type, host);
    if (!nm) {
        pthread_mutex_unlock(&d->lock);
        return false; /* forgotten by a reload meanwhile */
    }
    if (r == DNS_OK && n == 0)
        r = DNS_EMPTY;
    if ((unsigned)r >= DNS_RESULT_COUNT)
        r = DNS_SERVFAIL;
    nm->asked = false;
    nm->answered = true;
    nm->last = r;
    nm->results[r]++;
    char what[512];
    if (r == DNS_OK) {
        if (n > DNS_SET_MAX)
            log_warn("dns: %s (%s): %d addresses, only the first %d are used", nm->host,
                     type_name(nm->type), n, DNS_SET_MAX);
        int k = normalise(t, n, sorted);
        nm->ttl_s = dns_clamp_ttl(ttl_s, d->p.min_ttl_s, d->p.max_ttl_s);
        nm->due_ms = now_ms + (uint64_t)nm->ttl_s * 1000u;
        if (nm->failing_since)
            log_event(LOG_INFO, "dns", "dns: %s (%s) resolves again", nm->host,
                      type_name(nm->type));
        nm->failing_since = 0;
        bool same = k == nm->n;
        for (int j = 0; same && j < k; j++)
            same = same_target(&sorted[j], &nm->set[j]);
        if (!same) {
            diff_str(nm->set, nm->n, sorted, k, what, sizeof(what));
            log_event(LOG_INFO, "dns", "dns: %s (%s): %d backend%s (%s), ttl %us", nm->host,
                      type_name(nm->type), k, k == 1 ? "" : "s", what, nm->ttl_s);
            memcpy(nm->set, sorted, (size_t)k * sizeof(*sorted));
            nm->n = k;
            changed = true;
        }
    } else {
        nm->due_ms = now_ms + (uint64_t)d->p.min_ttl_s * 1000u;
        if (!nm->failing_since) {
            nm->failing_since = now_ms ? now_ms : 1;
            if (nm->n)
                log_event(LOG_WARN, "dns",
                          "dns: %s (%s): %s, keeping the last %d backend%s for up to %us", nm->host,
                          type_name(nm->type), dns_result_name(r), nm->n, nm->n == 1 ? "" : "s",
                          d->p.hold_s);
            else
                log_event(LOG_WARN, "dns", "dns: %s (%s): %s, no backends yet", nm->host,
                          type_name(nm->type), dns_result_name(r));
        }
        changed = expire(d, nm, now_ms);
    }
    pthread_mutex_unlock(&d->lock);
    return changed;
}

int dns_lookup(struct dns *d, int type, const char *host, struct dns_target *out, int cap)
{
    int n = 0;
    pthread_mutex_lock(&d->lock);
    struct dns_name *nm = find(d, type, host);
    if (nm) {
        n = nm->n < cap ? nm->n : cap;
        memcpy(out, nm->set, (size_t)n * sizeof(*out));
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

bool dns_settled(struct dns *d)
{
    bool all = true;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->n && all; i++)
        all = d->names[i]->answered;
    pthread_mutex_unlock(&d->lock);
    return all;
}

void dns_status_json(struct dns *d, FILE *f, uint64_t now_ms)
{
    pthread_mutex_lock(&d->lock);
    fputc('[', f);
    for (int i = 0; i < d->n; i++) {
        const struct dns_name *nm = d->names[i];
        const char *state = !nm->answered ? "pending" : nm->failing_since ? "failing" : "ok";
        fprintf(f,
                "%s{\"name\":\"%s\",\"type\":\"%s\",\"state\":\"%s\",\"last_result\":\"%s\","
                "\"backends\":%d,\"ttl_seconds\":%u,\"next_query_in_seconds\":%.3f",
                i ? "," : "", nm->host, type_name(nm->type), state,
                nm->answered ? dns_result_name(nm->last) : "none", nm->n, nm->ttl_s,
                nm->due_ms > now_ms ? (double)(nm->due_ms - now_ms) / 1000.0 : 0.0);
        if (nm->failing_since)
            fprintf(f, ",\"failing_for_seconds\":%.3f",
                    (double)(now_ms - nm->failing_since) / 1000.0);
        fputs(",\"addresses\":[", f);
        for (int j = 0; j < nm->n; j++) {
            char s[80];
            target_str(&nm->set[j], s, sizeof(s));
            fprintf(f, "%s{\"address\":\"%s\"", j ? "," : "", s);
            if (nm->type == CONFIG_RESOLVE_SRV)
                fprintf(f, ",\"weight\":%u,\"priority\":%u", nm->set[j].weight,
                        nm->set[j].priority);
            fputc('}', f);
        }
        fputs("]}", f);
    }
    fputc(']', f);
    pthread_mutex_unlock(&d->lock);
}

void dns_metrics(struct dns *d, FILE *f)
{
    pthread_mutex_lock(&d->lock);
    fputs("# HELP golb_dns_resolutions_total DNS resolutions of resolve: backends, by outcome.\n"
          "# TYPE golb_dns_resolutions_total counter\n",
          f);
    for (int i = 0; i < d->n; i++)
        for (int r = 0; r < DNS_RESULT_COUNT; r++)
            fprintf(f, "golb_dns_resolutions_total{name=\"%s\",result=\"%s\"} %llu\n",
                    d->names[i]->host, result_names[r],
                    (unsigned long long)d->names[i]->results[r]);
    fputs("# HELP golb_dns_backends Addresses a resolve: name stands for now.\n"
          "# TYPE golb_dns_backends gauge\n",
          f);
    for (int i = 0; i < d->n; i++)
        fprintf(f, "golb_dns_backends{name=\"%s\"} %d\n", d->names[i]->host, d->names[i]->n);
    pthread_mutex_unlock(&d->lock);
}

/* RFC 1035 §4.1: a 12-byte header, then QDCOUNT questions (name, type, class) and ANCOUNT
 * resource records (name, type, class, TTL, RDLENGTH, RDATA). Names are labels or a 2-byte
 * pointer; only their length matters here. */
static int skip_name(const unsigned char *m, size_t len, size_t *at)
{
    size_t p = *at;
    for (int labels = 0; labels < 128; labels++) {
        if (p >= len)
            return -EBADMSG;
        unsigned c = m[p];
        if (c == 0) {
            *at = p + 1;
            return 0;
        }
        if ((c & 0xC0) == 0xC0) {
            if (p + 2 > len)
                return -EBADMSG;
            *at = p + 2;
            return 0;
        }
        if (c & 0xC0)
            return -EBADMSG;
        p += 1 + c;
    }
    return -EBADMSG;
}

int dns_msg_min_ttl(const unsigned char *m, size_t len, uint32_t *ttl_s)
{
    if (len < 12)
        return -EBADMSG;
    unsigned qd = (unsigned)m[4] << 8 | m[5], an = (unsigned)m[6] << 8 | m[7];
    size_t p = 12;
    for (unsigned i = 0; i < qd; i++) {
        if (skip_name(m, len, &p) != 0 || p + 4 > len)
            return -EBADMSG;
        p += 4;
    }
    if (an == 0)
        return -EBADMSG;
    uint32_t min = UINT32_MAX;
    for (unsigned i = 0; i < an; i++) {
        if (skip_name(m, len, &p) != 0 || p + 10 > len)
            return -EBADMSG;
        uint32_t ttl = (uint32_t)m[p + 4] << 24 | (uint32_t)m[p + 5] << 16 |
                       (uint32_t)m[p + 6] << 8 | m[p + 7];
        size_t rdlen = (size_t)m[p + 8] << 8 | m[p + 9];
        p += 10;
        if (p + rdlen > len)
            return -EBADMSG;
        p += rdlen;
        if (ttl & 0x80000000u) /* RFC 2181 §8: a TTL with the top bit set is 0 */
            ttl = 0;
        if (ttl < min)
            min = ttl;
    }
    *ttl_s = min;
    return 0;
}
