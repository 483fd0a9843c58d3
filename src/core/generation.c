/* generation — see generation.h. */
#include "core/generation.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sock.h"
#include "upstream/dns.h"

#include "core/obs.h"
#include "core/route.h"
#include "upstream/backend.h"
#include "config/config.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct generation *current;
static atomic_int live; /* generations allocated and not freed yet */

static void generation_free(struct generation *g)
{
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    for (int i = 0; g->pools && i < g->npools; i++) {
        struct generation_pool *p = &g->pools[i];
        if (p->balancer && p->balancer->ops)
            balancer_destroy(p->balancer);
        backend_table_free(p->table);
        for (int k = 0; k < p->nstrs; k++)
            free(p->strs[k]);
        free(p->strs);
        free(p->expanded);
    }
    free(g->pools);
    obs_routes_free(g->route_stats, g->nroutes);
    route_table_free(g->routes);
    config_free(g->cfg);
    free(g->pw);
    free(g);
}

static char *keep(struct generation_pool *p, char *s)
{
    if (s)
        p->strs[p->nstrs++] = s;
    return s;
}

/* p->cfg.backends with every `resolve:` entry replaced by its DNS set: a copy of the template per
 * address (its health path, weight, TLS and PROXY settings), host the address, port the URL's
 * (a) or the record's (srv), SRV weight and priority tier. An address another entry of the pool
 * already has is skipped. 0, or -1 when memory ran out. */
static int expand(struct generation_pool *p, struct dns *dns)
{
    const struct config_backend *tb = p->cfg.backends;
    int nt = p->cfg.nbackends, nres = 0;
    for (int i = 0; i < nt; i++)
        nres += tb[i].resolve != CONFIG_RESOLVE_NONE;
    if (nres == 0)
        return 0;
    struct dns_target set[DNS_SET_MAX];
    size_t cap = (size_t)nt + (size_t)nres * DNS_SET_MAX;
    p->expanded = calloc(cap, sizeof(*p->expanded));
    p->strs = calloc(cap * 3, sizeof(*p->strs));
    if (!p->expanded || !p->strs)
        return -1;
    int n = 0, group = 0;
    for (int i = 0; i < nt; i++) {
        if (tb[i].resolve == CONFIG_RESOLVE_NONE) {
            p->expanded[n++] = tb[i];
            continue;
        }
        group++;
        int k = dns ? dns_lookup(dns, tb[i].resolve, tb[i].host, set, DNS_SET_MAX) : 0;
        for (int j = 0; j < k; j++) {
            struct config_backend e = tb[i];
            e.resolve = CONFIG_RESOLVE_NONE;
            e.addr = set[j].addr;
            e.addrlen = set[j].addrlen;
            if (tb[i].resolve == CONFIG_RESOLVE_SRV) {
                e.port = set[j].port;
                e.weight = set[j].weight;
                e.tier = (uint32_t)group << 16 | set[j].priority;
            }
            if (e.addr.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&e.addr)->sin6_port = htons(e.port);
            else
                ((struct sockaddr_in *)&e.addr)->sin_port = htons(e.port);
            char ip[INET6_ADDRSTRLEN + 2], name[80];
            sock_ip_str((const struct sockaddr *)&e.addr, ip, sizeof(ip));
            sock_addr_str((const struct sockaddr *)&e.addr, name, sizeof(name));
            const char *path = strstr(tb[i].url, "://");
            path = path ? strpbrk(path + 3, "/?") : NULL;
            char *url = NULL;
            if (asprintf(&url, "%s://%s%s", e.tls ? "https" : "http", name, path ? path : "") == -1)
                url = NULL;
            e.url = keep(p, url);
            e.host = keep(p, strdup(ip));
            e.name = keep(p, strdup(name));
            if (!e.url || !e.host || !e.name)
                return -1;
            char key[300], other[300];
            config_backend_key(&e, key, sizeof(key));
            bool dup = false;
            for (int m = 0; m < n && !dup; m++) {
                config_backend_key(&p->expanded[m], other, sizeof(other));
                dup = strcmp(key, other) == 0;
            }
            if (!dup)
                p->expanded[n++] = e;
        }
    }
    p->cfg.backends = p->expanded;
    p->cfg.nbackends = n;
    return 0;
}

/* Pool i of g from cfg->pools[i], its backends taken by identity from prev's pool of the same
 * name. 0, or -1 when memory ran out (what was made is freed with g). */
static int pool_init(struct generation *g, int i, const struct generation *prev, struct dns *dns)
{
    struct generation_pool *p = &g->pools[i];
    const struct config_pool *cp = &g->cfg->pools[i];
    const struct generation_pool *was = prev ? generation_pool_find(prev, cp->name) : NULL;
    p->name = cp->name;
    config_pool_view(g->cfg, cp, &p->cfg);
    if (expand(p, dns) != 0)
        return -1;
    p->table = backend_table_new_pool(&p->cfg, cp->name, was ? was->table : NULL, g->nworkers);
    if (!p->table)
        return -1;
    p->first = g->nbackends;
    g->nbackends += p->table->n;
    p->balancer = i == 0 ? &g->balancer : &p->lb;
    if (balancer_init_config(p->balancer, &p->cfg, p->table) != 0) {
        p->balancer->ops = NULL;
        return -1;
    }
    return 0;
}

struct generation *generation_new(struct config *cfg, const struct generation *prev, int nworkers,
                                  uint64_t id)
{
    return generation_new_dns(cfg, prev, nworkers, id, NULL);
}

struct generation *generation_new_dns(struct config *cfg, const struct generation *prev,
                                      int nworkers, uint64_t id, struct dns *dns)
{
    struct generation *g = calloc(1, sizeof(*g));
    if (!g) {
        config_free(cfg);
        return NULL;
    }
    atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    g->id = id;
    g->cfg = cfg;
    g->nworkers = nworkers > 0 ? nworkers : 1;
    atomic_init(&g->holders, 1);
    g->pw = aligned_alloc(_Alignof(struct generation_worker),
                          (size_t)g->nworkers * sizeof(*g->pw));
    g->pools = calloc((size_t)(cfg->npools > 0 ? cfg->npools : 1), sizeof(*g->pools));
    g->routes = route_table_build(cfg);
    bool routes_ok = false;
    g->nroutes = cfg->nroutes;
    g->route_stats = obs_routes_new(cfg, prev ? prev->route_stats : NULL, prev ? prev->nroutes : 0,
                                    g->nworkers, &routes_ok);
    if (!routes_ok)
        g->nroutes = 0;
    if (!g->pw || !g->pools || !g->routes || !routes_ok || cfg->npools < 1) {
        generation_free(g);
        return NULL;
    }
    memset(g->pw, 0, (size_t)g->nworkers * sizeof(*g->pw));
    for (int i = 0; i < cfg->npools; i++) {
        g->npools = i + 1;
        if (pool_init(g, i, prev, dns) != 0) {
            generation_free(g);
            return NULL;
        }
    }
    g->table = g->pools[0].table;
    g->has_default = cfg->nbackends > 0;
    g->routing = cfg->nroutes > 0 || cfg->encoded_slash_reject || !g->has_default;
    return g;
}

struct generation_pool *generation_pool_find(const struct generation *g, const char *name)
{
    for (int i = 0; i < g->npools; i++)
        if (strcmp(g->pools[i].name, name) == 0)
            return &g->pools[i];
    return NULL;
}

bool generation_has_backend(const struct generation *g, const struct backend *b)
{
    for (int i = 0; i < g->npools; i++)
        if (backend_table_find(g->pools[i].table, b) >= 0)
            return true;
    return false;
}

void generation_ref(struct generation *g)
{
    atomic_fetch_add_explicit(&g->holders, 1, memory_order_relaxed);
}

void generation_unref(struct generation *g)
{
    if (g && atomic_fetch_sub_explicit(&g->holders, 1, memory_order_acq_rel) == 1)
        generation_free(g);
}

void generation_adopt(struct generation **cur, struct generation *g, int w)
{
    struct generation *old = *cur;
    *cur = g;
    if (old == g)
        generation_unref(g); /* already current: w keeps the one reference it had */
    else if (old && old->pw[w].pins == 0)
        generation_unref(old);
}

struct generation *generation_publish(struct generation *g)
{
    pthread_mutex_lock(&current_lock);
    struct generation *old = current;
    current = g;
    pthread_mutex_unlock(&current_lock);
    return old;
}

int generation_live(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed);
}

struct generation *generation_acquire(void)
{
    pthread_mutex_lock(&current_lock);
    struct generation *g = current;
    if (g)
        generation_ref(g);
    pthread_mutex_unlock(&current_lock);
    return g;
}
