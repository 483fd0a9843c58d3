/* balancer — see balancer.h. */
#include "lb/balancer.h"

#include <stddef.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "upstream/backend.h"
#include "config/config.h"
#include "http/http.h"
#include "base/util.h"

/* Every strategy golb knows, by name. Listed explicitly: no constructor magic. */
static const struct lb_ops *const registry[] = {
    &lb_rr_ops, &lb_lc_ops, &lb_random_ops, &lb_latency_ops, &lb_hash_ops,
};

/* Hash keys are hashed under a fixed key: every worker and every golb process (restarts, several
 * instances behind one address) must send one key to the same backend. */
static const uint64_t key_seed[2] = {0x676f6c622d686173ull, 0x682d6b6579732d31ull};

const struct lb_ops *balancer_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(registry); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

static pthread_once_t secret_once = PTHREAD_ONCE_INIT;
static uint64_t process_secret[2];

static void draw_secret(void)
{
    if (getrandom(process_secret, sizeof(process_secret), 0) != (ssize_t)sizeof(process_secret)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        process_secret[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
        process_secret[1] = (uint64_t)(uintptr_t)&ts ^ lb_rand();
    }
}

static int balancer_setup(struct balancer *b, const struct lb_ops *ops, struct backend_table *table)
{
    b->ops = ops;
    b->table = table;
    if (b->params.nworkers < 1)
        b->params.nworkers = 1;
    /* The sticky cookie's key: a cookie value is a keyed hash of a backend's address, so it names
     * no address and cannot be made up for one; it is checked against the configured backends
     * only. With stickySession.secret the key is derived from it (config_lb.c): every process
     * given the same secret has the same key, so cookies survive restarts and work on every
     * instance. Without one, one key per process, drawn once: cookies stay valid across reloads,
     * but a new process has a new key, and its clients from before a restart rebalance once. */
    if (b->params.sticky && b->params.sticky->keyed) {
        memcpy(b->secret, b->params.sticky->key, sizeof(b->secret));
    } else {
        pthread_once(&secret_once, draw_secret);
        memcpy(b->secret, process_secret, sizeof(b->secret));
    }
    b->tokens = calloc((size_t)(table->n ? table->n : 1), sizeof(*b->tokens));
    if (!b->tokens)
        return -1;
    for (int i = 0; i < table->n; i++) {
        const char *name = table->b[i]->name;
        uint64_t h = lb_siphash(b->secret, name, strlen(name));
        snprintf(b->tokens[i], sizeof(b->tokens[i]), "%016llx", (unsigned long long)h);
    }
    b->state = ops->create(table, &b->params);
    return b->state ? 0 : -1;
}

int balancer_init(struct balancer *b, const struct lb_ops *ops, struct backend_table *table)
{
    memset(b, 0, sizeof(*b));
    return balancer_setup(b, ops, table);
}

int balancer_init_config(struct balancer *b, const struct config *cfg, struct backend_table *table)
{
    memset(b, 0, sizeof(*b));
    const struct lb_ops *ops = balancer_find(cfg->balance ? cfg->balance : "roundRobin");
    if (!ops)
        return -1;
    b->params = (struct lb_params){
        .nworkers = cfg->workers,
        .slow_start_ms = cfg->slow_start_ms,
        .panic_threshold = cfg->panic_threshold,
        .load_factor = cfg->hash_load_factor,
        .hash_key = (int)cfg->hash_key,
        .hash_key_name = cfg->hash_key_name,
        .sticky = cfg->sticky.cookie ? &cfg->sticky : NULL,
    };
    /* The file's weights, not the backends' current ones: a reload builds this before it commits
     * the new weights, and an admin's weight is no part of the configuration (lb_hash.c). */
    uint32_t *weights = calloc((size_t)(table->n ? table->n : 1), sizeof(uint32_t));
    if (!weights)
        return -1;
    for (int i = 0; i < table->n && i < cfg->nbackends; i++)
        weights[i] = cfg->backends[i].weight;
    b->params.weights = weights;
    int rc = balancer_setup(b, ops, table);
    b->params.weights = NULL;
    free(weights);
    return rc;
}

void balancer_destroy(struct balancer *b)
{
    if (b->ops && b->state)
        b->ops->destroy(b->state);
    b->state = NULL;
    free(b->tokens);
    b->tokens = NULL;
}

uint64_t balancer_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------ request keys ------------ */

static bool name_eq(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* The value of cookie `name` in the request's Cookie fields ("a=1; b=2"), quotes removed. */
static bool find_cookie(const struct http_request *req, const char *name, const char **val,
                        size_t *vlen)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < req->num_fields; i++) {
        const struct http_field *h = &req->fields[i];
        if (!name_eq(h->name, h->name_len, "cookie"))
            continue;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
                p++;
            const char *pair = p;
            while (p < end && *p != ';')
                p++;
            const char *eq = memchr(pair, '=', (size_t)(p - pair));
            if (!eq || (size_t)(eq - pair) != nlen || memcmp(pair, name, nlen) != 0)
                continue;
            const char *v = eq + 1, *ve = p;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
                v++;
                ve--;
            }
            *val = v;
            *vlen = (size_t)(ve - v);
            return true;
        }
    }
    return false;
}

/* The raw (undecoded) value of query parameter `name` in a path "/p?a=1&b=2". */
static bool find_query(const struct http_request *req, const char *name, const char **val,
                       size_t *vlen)
{
    const char *end = req->path + req->path_len;
    const char *p = memchr(req->path, '?', req->path_len);
    size_t nlen = strlen(name);
    if (!p)
        return false;
    for (p++; p < end;) {
        const char *pair = p;
        while (p < end && *p != '&')
            p++;
        const char *eq = memchr(pair, '=', (size_t)(p - pair));
        const char *kend = eq ? eq : p;
        if ((size_t)(kend - pair) == nlen && memcmp(pair, name, nlen) == 0) {
            *val = eq ? eq + 1 : p;
            *vlen = (size_t)(p - *val);
            return true;
        }
        if (p < end)
            p++;
    }
    return false;
}

void balancer_request_init(const struct balancer *b, struct lb_request *r,
                           const struct http_request *req, const char *client_ip,
                           size_t client_ip_len, int worker)
{
    const struct lb_params *p = &b->params;
    *r = (struct lb_request){.sticky = -1, .worker = worker};
    const char *v = NULL;
    size_t vlen = 0;
    if (b->ops->uses_key) {
        switch (p->hash_key) {
        case CONFIG_HASH_CLIENT:
            v = client_ip;
            vlen = client_ip_len;
            r->has_key = client_ip_len > 0;
            break;
        case CONFIG_HASH_URI:
            v = req->path;
            vlen = req->path_len;
            r->has_key = true;
            break;
        case CONFIG_HASH_HEADER:
            for (size_t i = 0; i < req->num_fields && !r->has_key; i++) {
                const struct http_field *h = &req->fields[i];
                if (name_eq(h->name, h->name_len, p->hash_key_name)) {
                    v = h->value;
                    vlen = h->value_len;
                    r->has_key = true;
                }
            }
            break;
        case CONFIG_HASH_COOKIE:
            r->has_key = find_cookie(req, p->hash_key_name, &v, &vlen);
            break;
        case CONFIG_HASH_QUERY:
            r->has_key = find_query(req, p->hash_key_name, &v, &vlen);
            break;
        }
        if (r->has_key)
            r->key = lb_siphash(key_seed, v, vlen);
    }
    if (p->sticky && find_cookie(req, p->sticky->cookie, &v, &vlen))
        r->sticky = balancer_sticky_lookup(b, v, vlen);
}

int balancer_sticky_lookup(const struct balancer *b, const char *value, size_t len)
{
    if (len != 16 || !b->tokens)
        return -1;
    int found = -1;
    for (int i = 0; i < b->table->n; i++) {
        unsigned diff = 0; /* constant time: the comparison does not tell how much matched */
        for (size_t j = 0; j < 16; j++)
            diff |= (unsigned)(b->tokens[i][j] ^ value[j]);
        if (diff == 0)
            found = i;
    }
    return found;
}

size_t balancer_set_cookie(const struct balancer *b, const struct lb_request *req, int idx,
                           char *out, size_t cap)
{
    const struct config_sticky *s = b ? b->params.sticky : NULL;
    if (!s || idx < 0 || idx >= b->table->n || (req && req->sticky == idx))
        return 0;
    char age[32] = "";
    if (s->max_age)
        snprintf(age, sizeof(age), "; Max-Age=%u", s->max_age);
    int n = snprintf(out, cap, "%s=%s; Path=/%s%s%s%s%s", s->cookie, b->tokens[idx], age,
                     s->http_only ? "; HttpOnly" : "", s->secure ? "; Secure" : "",
                     s->same_site ? "; SameSite=" : "", s->same_site ? s->same_site : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ------------------------------------------------------------------ pick / release ---------- */

int balancer_pick(struct balancer *b, struct lb_request *req, const struct lb_tried *tried)
{
    static const struct lb_request none = {.sticky = -1};
    uint64_t now_us = balancer_now_us();
    struct lb_ctx ctx = {
        .table = b->table,
        .tried = tried,
        .req = req ? req : &none,
        .params = &b->params,
        .now_ms = now_us / 1000u,
        .now_us = now_us,
    };
    if (req) {
        req->picked_us = now_us;
        req->head_us = 0;
    }
    /* A valid cookie wins while its backend is eligible, whatever its weight: weight 0 means no
     * new users, not dropping the current ones. */
    if (req && req->sticky >= 0 && req->sticky < b->table->n &&
        lb_eligible(b->table, tried, req->sticky))
        return req->sticky;
    if (b->params.panic_threshold) {
        int up = 0;
        for (int i = 0; i < b->table->n; i++)
            up += backend_is_up(b->table->b[i]);
        ctx.panic = (uint64_t)up * 100u < (uint64_t)b->params.panic_threshold * (uint64_t)b->table->n;
    }
    return b->ops->pick(b->state, &ctx);
}

void balancer_release(struct balancer *b, int idx, enum lb_outcome outcome, uint64_t latency_us)
{
    if (b->ops->release)
        b->ops->release(b->state, b->table, idx, outcome, latency_us);
}

/* ------------------------------------------------------------------ helpers ----------------- */

bool lb_tried_has(const struct lb_tried *tried, int idx)
{
    if (!tried)
        return false;
    for (int i = 0; i < tried->n; i++)
        if (tried->idx[i] == idx)
            return true;
    return false;
}

void lb_tried_add(struct lb_tried *tried, int idx)
{
    if (tried->n < LB_MAX_TRIES)
        tried->idx[tried->n++] = idx;
}

bool lb_eligible(const struct backend_table *table, const struct lb_tried *tried, int idx)
{
    /* drain and maint take no new request; the admin state is one relaxed load */
    return backend_is_up(table->b[idx]) && backend_admin(table->b[idx]) == BACKEND_ADMIN_READY &&
           !atomic_load_explicit(&table->b[idx]->retired, memory_order_relaxed) &&
           !lb_tried_has(tried, idx) && backend_tier_open(table, idx);
}

uint32_t lb_ramp(uint32_t slow_start_ms, uint64_t up_since_ms, uint64_t now_ms)
{
    if (!slow_start_ms || !up_since_ms || now_ms >= up_since_ms + slow_start_ms)
        return 1000;
    uint64_t elapsed = now_ms > up_since_ms ? now_ms - up_since_ms : 0;
    return (uint32_t)(100u + 900u * elapsed / slow_start_ms);
}

uint32_t lb_weight(const struct lb_ctx *ctx, int idx)
{
    const struct backend *be = ctx->table->b[idx];
    /* Panic mode ignores health, never the operator (drained and maintenance backends stay
     * out) nor a reload (removed ones too). */
    if (ctx->panic ? lb_tried_has(ctx->tried, idx) || backend_admin(be) != BACKEND_ADMIN_READY ||
                         atomic_load_explicit(&be->retired, memory_order_relaxed)
                   : !lb_eligible(ctx->table, ctx->tried, idx))
        return 0;
    uint32_t w = atomic_load_explicit(&be->weight, memory_order_relaxed);
    if (w > 1000)
        w = 1000;
    uint64_t up = atomic_load_explicit(&be->up_since_ms, memory_order_relaxed);
    return w * lb_ramp(ctx->params->slow_start_ms, up, ctx->now_ms);
}

uint64_t lb_rand(void)
{
    static _Thread_local uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&s ^ 0x9E3779B97F4A7C15ull;
        if (!s)
            s = 1;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

uint64_t lb_siphash(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = m << 8 | in[i + (size_t)j];
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t j = 0; j < (len & 7); j++)
        last |= (uint64_t)in[full + j] << (8 * j);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

int lb_swrr(int64_t *cur, const uint32_t *w, int n)
{
    int64_t total = 0;
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (!w[i])
            continue;
        cur[i] += w[i];
        total += w[i];
        if (best == -1 || cur[i] > cur[best])
            best = i;
    }
    if (best >= 0)
        cur[best] -= total;
    return best;
}

struct lb_scratch *lb_scratch_new(int nworkers, int n)
{
    struct lb_scratch *s = calloc((size_t)nworkers, sizeof(*s));
    for (int i = 0; s && i < nworkers; i++) {
        /* a cache line of slack each: two workers' arrays never share a line */
        s[i].cur = calloc((size_t)n + 8, sizeof(int64_t));
        s[i].w = calloc((size_t)n + 16, sizeof(uint32_t));
        if (!s[i].cur || !s[i].w) {
            lb_scratch_free(s, nworkers);
            return NULL;
        }
    }
    return s;
}

void lb_scratch_free(struct lb_scratch *s, int nworkers)
{
    for (int i = 0; s && i < nworkers; i++) {
        free(s[i].cur);
        free(s[i].w);
    }
    free(s);
}

struct lb_scratch *lb_scratch_of(struct lb_scratch *s, int nworkers, const struct lb_ctx *ctx)
{
    int w = ctx->req->worker;
    return &s[w >= 0 && w < nworkers ? w : 0];
}
