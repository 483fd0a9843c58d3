/* config_pool — `pools`: named sets of backends, each with the balancing, health and upstream
 * keys of the top level it may override (config.h struct config_pool; entry points in
 * config_int.h; the tree, messages and getters are config_yaml.h's).
 *
 *   backends: [...]               cfg->pools[0] = "default": the top-level backends and settings
 *   pools:
 *     api:                        cfg->pools[1..]: each setting its own or the top level's
 *       balance: leastConnections      (rows of config.c's table: same bounds, same messages;
 *       backends: [...]                 config_backend.c, config_lb.c parse them)
 *
 * Read after the top-level walk (config.c cross_check), so a pool inherits the final top-level
 * values wherever the keys sit in the file.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"
#include "base/util.h"

#define NAME_MAX_LEN 64 /* pool names */

/* A pool's name: letters, digits, "-", "_", ".", at most NAME_MAX_LEN bytes. */
static bool pool_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

#define SERVICE_MAX_LEN 256 /* healthCheckService */

int config_pool_upstream_key(struct config_yaml_load *l, const struct config_yaml_node *k,
                             const struct config_yaml_node *v, struct config_upstream *u)
{
    static const struct config_yaml_key rows[] = {
        {"protocol", CONFIG_YAML_KT_UPSTREAM, CONFIG_YAML_NO_FIELD, 0, 0, 0},
        {"healthCheck", CONFIG_YAML_KT_UPSTREAM, CONFIG_YAML_NO_FIELD, 0, 0, 0},
        {"healthCheckService", CONFIG_YAML_KT_UPSTREAM, CONFIG_YAML_NO_FIELD, 0, 0, 0},
        {"maxStreamsPerConnection", CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, 1, 100000, 100},
    };
    static const char *const protocols[] = {"http1", "h2", NULL};
    static const char *const checks[] = {"http", "grpc", NULL};
    struct config_yaml_qbuf q;
    int i = 0;
    while (i < (int)ARRAY_LEN(rows) && !config_yaml_key_is(k, rows[i].name))
        i++;
    if (i == (int)ARRAY_LEN(rows))
        return -1;
    if (v->kind == CONFIG_YAML_BAD)
        return 0;
    int c;
    uint32_t x;
    switch (i) {
    case 0:
        if ((c = config_yaml_get_choice(l, &rows[0], v, protocols, "http1, h2")) < 0)
            return 0;
        u->protocol = (uint8_t)c;
        return CONFIG_UP_PROTOCOL;
    case 1:
        if ((c = config_yaml_get_choice(l, &rows[1], v, checks, "http, grpc")) < 0)
            return 0;
        u->health_check = (uint8_t)c;
        return CONFIG_UP_HEALTH_CHECK;
    case 2:
        if (!config_yaml_is_string(v) || v->len > SERVICE_MAX_LEN ||
            (v->len > 0 && !config_yaml_visible_ascii(v->str, v->len))) {
            config_yaml_error(l, v,
                              "healthCheckService must be a gRPC service name (visible ASCII, at "
                              "most %d bytes; \"\" for the whole server), got %s",
                              SERVICE_MAX_LEN, config_yaml_describe(&q, v));
            return 0;
        }
        free(u->health_check_service);
        if (!(u->health_check_service = strdup(v->str))) {
            config_yaml_oom(l);
            return 0;
        }
        return CONFIG_UP_SERVICE;
    default:
        if (config_yaml_get_int(l, &rows[3], v, &x) != 0)
            return 0;
        u->max_streams = x;
        return CONFIG_UP_MAX_STREAMS;
    }
}

int config_pool_upstream_copy(struct config_upstream *dst, const struct config_upstream *src,
                              unsigned which)
{
    if (which & CONFIG_UP_PROTOCOL)
        dst->protocol = src->protocol;
    if (which & CONFIG_UP_HEALTH_CHECK)
        dst->health_check = src->health_check;
    if (which & CONFIG_UP_MAX_STREAMS)
        dst->max_streams = src->max_streams;
    if (which & CONFIG_UP_SERVICE) {
        free(dst->health_check_service);
        dst->health_check_service = NULL;
        if (src->health_check_service &&
            !(dst->health_check_service = strdup(src->health_check_service)))
            return -1;
    }
    return 0;
}

/* The pool's upstream keys into each of its backends that does not give them itself. */
static int resolve_backends(struct config_pool *p)
{
    for (int i = 0; i < p->nbackends; i++) {
        struct config_backend *b = &p->backends[i];
        if (config_pool_upstream_copy(&b->up, &p->up, ~(unsigned)b->up_own & 0xfu) != 0)
            return -1;
    }
    return 0;
}

/* The top level's settings into p (strings copied). 0, or -1 when memory ran out. */
static int inherit(const struct config *cfg, struct config_pool *p)
{
    p->hash_key = cfg->hash_key;
    p->hash_load_factor = cfg->hash_load_factor;
    p->slow_start_ms = cfg->slow_start_ms;
    p->panic_threshold = cfg->panic_threshold;
    p->healthy_threshold = cfg->healthy_threshold;
    p->unhealthy_threshold = cfg->unhealthy_threshold;
    p->health_check_period_ms = cfg->health_check_period_ms;
    p->health_check_timeout_ms = cfg->health_check_timeout_ms;
    p->connect_timeout_ms = cfg->connect_timeout_ms;
    p->upstream_timeout_ms = cfg->upstream_timeout_ms;
    p->retries = cfg->retries;
    p->max_fails = cfg->max_fails;
    p->upstream_max_idle = cfg->upstream_max_idle;
    p->sticky = cfg->sticky;
    p->up = cfg->up;
    p->up.health_check_service = NULL;
    if (config_pool_upstream_copy(&p->up, &cfg->up, CONFIG_UP_SERVICE) != 0)
        return -1;
    p->balance = cfg->balance ? strdup(cfg->balance) : NULL;
    p->hash_key_name = cfg->hash_key_name ? strdup(cfg->hash_key_name) : NULL;
    p->sticky.cookie = cfg->sticky.cookie ? strdup(cfg->sticky.cookie) : NULL;
    p->sticky.same_site = cfg->sticky.same_site ? strdup(cfg->sticky.same_site) : NULL;
    if ((cfg->balance && !p->balance) || (cfg->hash_key_name && !p->hash_key_name) ||
        (cfg->sticky.cookie && !p->sticky.cookie) ||
        (cfg->sticky.same_site && !p->sticky.same_site))
        return -1;
    return 0;
}

static void pool_clear(struct config_pool *p)
{
    if (!p->is_default) {
        for (int i = 0; i < p->nbackends; i++)
            config_backend_clear(&p->backends[i]);
        free(p->backends);
    }
    free(p->name);
    free(p->balance);
    free(p->hash_key_name);
    free(p->sticky.cookie);
    free(p->sticky.same_site);
    free(p->up.health_check_service);
    memset(p, 0, sizeof(*p));
}

static bool is_hash(const char *balance)
{
    return balance && strcmp(balance, "hash") == 0;
}

/* One pool's mapping `v` into p (already holding the inherited settings). */
static void parse_pool(struct config_yaml_load *l, struct config_pool *p,
                       const struct config_yaml_node *name, const struct config_yaml_node *v)
{
    static const char *const names[] = {"backends",
                                        "balance",
                                        "hashKey",
                                        "hashLoadFactor",
                                        "slowStart",
                                        "panicThreshold",
                                        "stickySession",
                                        "healthyThreshold",
                                        "unhealthyThreshold",
                                        "healthCheckPeriod",
                                        "healthCheckTimeout",
                                        "connectTimeout",
                                        "upstreamTimeout",
                                        "retries",
                                        "maxFails",
                                        "upstreamMaxIdle",
                                        "protocol",
                                        "healthCheck",
                                        "healthCheckService",
                                        "maxStreamsPerConnection"};
    static const size_t offs[] = {CONFIG_YAML_NO_FIELD,
                                  CONFIG_YAML_NO_FIELD,
                                  CONFIG_YAML_NO_FIELD,
                                  offsetof(struct config_pool, hash_load_factor),
                                  offsetof(struct config_pool, slow_start_ms),
                                  offsetof(struct config_pool, panic_threshold),
                                  CONFIG_YAML_NO_FIELD,
                                  offsetof(struct config_pool, healthy_threshold),
                                  offsetof(struct config_pool, unhealthy_threshold),
                                  offsetof(struct config_pool, health_check_period_ms),
                                  offsetof(struct config_pool, health_check_timeout_ms),
                                  offsetof(struct config_pool, connect_timeout_ms),
                                  offsetof(struct config_pool, upstream_timeout_ms),
                                  offsetof(struct config_pool, retries),
                                  offsetof(struct config_pool, max_fails),
                                  offsetof(struct config_pool, upstream_max_idle),
                                  CONFIG_YAML_NO_FIELD,
                                  CONFIG_YAML_NO_FIELD,
                                  CONFIG_YAML_NO_FIELD,
                                  CONFIG_YAML_NO_FIELD};
    _Static_assert(ARRAY_LEN(names) == ARRAY_LEN(offs), "one offset per pool key");
    const struct config_yaml_node *seen[ARRAY_LEN(names)] = {0};
    struct config_yaml_qbuf q, q2;

    if (v->kind == CONFIG_YAML_BAD)
        return;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "pool %s must be a mapping with \"backends\", got %s",
                          config_yaml_quote(&q, name->str, name->len),
                          config_yaml_describe(&q2, v));
        return;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        int j = config_yaml_key_index(l, k, names, ARRAY_LEN(names), seen, " in pool");
        if (j < 0 || x->kind == CONFIG_YAML_BAD)
            continue;
        struct config_yaml_key row = *config_top_key(names[j]);
        row.off = offs[j];
        uint32_t u;
        switch (row.type) {
        case CONFIG_YAML_KT_BACKENDS:
            config_backend_section(l, &p->backends, &p->nbackends, x);
            break;
        case CONFIG_YAML_KT_BALANCE:
            config_lb_balance(l, &p->balance, x);
            break;
        case CONFIG_YAML_KT_HASHKEY: /* the top level's NAME is not this key's */
            free(p->hash_key_name);
            p->hash_key_name = NULL;
            config_lb_hash_key(l, &p->hash_key, &p->hash_key_name, x);
            break;
        case CONFIG_YAML_KT_FACTOR:
            config_lb_factor(l, p, &row, x);
            break;
        case CONFIG_YAML_KT_STICKY:
            free(p->sticky.cookie);
            free(p->sticky.same_site);
            memset(&p->sticky, 0, sizeof(p->sticky));
            config_lb_sticky(l, &p->sticky, x);
            break;
        case CONFIG_YAML_KT_DURATION:
            if (config_yaml_get_duration(l, &row, x, &u) == 0)
                config_yaml_store(p, &row, u);
            break;
        case CONFIG_YAML_KT_UPSTREAM:
            config_pool_upstream_key(l, k, x, &p->up);
            break;
        default: /* KT_UINT */
            if (config_yaml_get_int(l, &row, x, &u) == 0)
                config_yaml_store(p, &row, u);
            break;
        }
    }
    if (!seen[0])
        config_yaml_error(l, name, "pool %s is missing \"backends\"",
                          config_yaml_quote(&q, name->str, name->len));
    /* the checks config.c makes for the top level, on what this pool sets */
    for (size_t j = 2; j <= 3; j++)
        if (seen[j] && !is_hash(p->balance))
            config_yaml_warning(l, seen[j], "%s is ignored unless balance is hash", names[j]);
    if ((seen[9] || seen[10]) && p->health_check_timeout_ms >= p->health_check_period_ms) {
        char a[24], b[24];
        snprintf(a, sizeof(a), "%u.%03u", p->health_check_timeout_ms / 1000,
                 p->health_check_timeout_ms % 1000);
        snprintf(b, sizeof(b), "%u.%03u", p->health_check_period_ms / 1000,
                 p->health_check_period_ms % 1000);
        for (char *s = a; s; s = s == a ? b : NULL) { /* "3.000" → "3", "0.500" → "0.5" */
            size_t n = strlen(s);
            while (s[n - 1] == '0')
                s[--n] = '\0';
            if (s[n - 1] == '.')
                s[n - 1] = '\0';
        }
        config_yaml_warning(
            l, seen[10] ? seen[10] : seen[9],
            "healthCheckTimeout (%s s) is not less than healthCheckPeriod (%s s); a backend "
            "is not checked again while its previous check is still running",
            a, b);
    }
}

void config_pool_section(struct config_yaml_load *l, struct config *cfg,
                         const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    size_t n = v && v->kind == CONFIG_YAML_MAPPING ? v->nkids / 2 : 0;
    cfg->pools = calloc(1 + n, sizeof(*cfg->pools));
    if (!cfg->pools) {
        config_yaml_oom(l);
        return;
    }
    struct config_pool *d = &cfg->pools[0];
    cfg->npools = 1;
    d->is_default = true;
    d->used = true;
    d->backends = cfg->backends;
    d->nbackends = cfg->nbackends;
    if (!(d->name = strdup("default")) || inherit(cfg, d) != 0 || resolve_backends(d) != 0) {
        config_yaml_oom(l);
        return;
    }
    if (!v || v->kind == CONFIG_YAML_BAD)
        return;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "pools must be a mapping of pool names to pools, got %s",
                          config_yaml_describe(&q, v));
        return;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        if (!config_yaml_key_ok(l, k))
            continue;
        if (!pool_name_ok(k->str, k->len)) {
            config_yaml_error(l, k,
                              "invalid pool name %s (letters, digits, \"-\", \"_\" and \".\", "
                              "at most %d)",
                              config_yaml_quote(&q, k->str, k->len), NAME_MAX_LEN);
            continue;
        }
        if (strcmp(k->str, "default") == 0) {
            config_yaml_error(l, k,
                              "duplicate pool \"default\" (the top-level backends are the pool "
                              "\"default\")");
            continue;
        }
        int dup = config_pool_find(cfg, k->str);
        if (dup > 0) {
            config_yaml_error(l, k, "duplicate pool %s (first defined at line %d)",
                              config_yaml_quote(&q, k->str, k->len), cfg->pools[dup].line);
            continue;
        }
        struct config_pool *p = &cfg->pools[cfg->npools++];
        p->line = k->line;
        p->col = k->col;
        if (!(p->name = strdup(k->str)) || inherit(cfg, p) != 0) {
            config_yaml_oom(l);
            return;
        }
        parse_pool(l, p, k, x);
        if (resolve_backends(p) != 0) {
            config_yaml_oom(l);
            return;
        }
        /* A pool's own stickySession without a secret keys its cookies with the top level's
         * (so identical instances agree on every pool's cookies). */
        if (!p->sticky.keyed && cfg->sticky.keyed) {
            memcpy(p->sticky.key, cfg->sticky.key, sizeof(p->sticky.key));
            p->sticky.keyed = true;
        }
    }
}

int config_pool_find(const struct config *cfg, const char *name)
{
    for (int i = 0; i < cfg->npools; i++)
        if (cfg->pools[i].name && strcmp(cfg->pools[i].name, name) == 0)
            return i;
    return -1;
}

void config_pool_view(const struct config *cfg, const struct config_pool *p, struct config *out)
{
    *out = *cfg;
    out->nbackends = p->nbackends;
    out->backends = p->backends;
    out->balance = p->balance;
    out->hash_key = p->hash_key;
    out->hash_key_name = p->hash_key_name;
    out->hash_load_factor = p->hash_load_factor;
    out->slow_start_ms = p->slow_start_ms;
    out->panic_threshold = p->panic_threshold;
    out->sticky = p->sticky;
    out->healthy_threshold = p->healthy_threshold;
    out->unhealthy_threshold = p->unhealthy_threshold;
    out->health_check_period_ms = p->health_check_period_ms;
    out->health_check_timeout_ms = p->health_check_timeout_ms;
    out->connect_timeout_ms = p->connect_timeout_ms;
    out->upstream_timeout_ms = p->upstream_timeout_ms;
    out->retries = p->retries;
    out->max_fails = p->max_fails;
    out->upstream_max_idle = p->upstream_max_idle;
    out->up = p->up;
}

void config_pool_free(struct config *cfg)
{
    for (int i = 0; i < cfg->npools; i++)
        pool_clear(&cfg->pools[i]);
    free(cfg->pools);
}
