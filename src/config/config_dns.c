/* config_dns — the `resolvers` section, which says where and how backends with `resolve:` are
 * looked up (upstream/dns.h does the looking up). Entry points in config_int.h; the tree,
 * messages and getters are config_yaml.h's.
 *
 *   resolvers:
 *     nameservers: ["127.0.0.1:8600"]   default: /etc/resolv.conf's; ADDR:PORT or [V6]:PORT, ≤ 8
 *     minTtl: 1                         seconds; answers' TTLs are clamped to [minTtl, maxTtl]
 *     maxTtl: 300
 *     holdOnFailure: 300                seconds a failing name keeps its last good set
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sock.h"
#include "base/util.h"
#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"

#define TTL_MAX 86400 /* a day: the bound of every TTL key */

void config_dns_defaults(struct config *cfg)
{
    cfg->resolvers = (struct config_resolvers){.min_ttl_s = 1, .max_ttl_s = 300, .hold_s = 300};
}

/* nameservers: a sequence of ADDR:PORT into the c-ares CSV form. */
static void nameservers(struct config_yaml_load *l, struct config *cfg,
                        const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (v->kind == CONFIG_YAML_BAD)
        return;
    if (v->kind != CONFIG_YAML_SEQUENCE || v->nkids == 0 || v->nkids > CONFIG_DNS_NAMESERVERS_MAX) {
        config_yaml_error(l, v,
                          "resolvers.nameservers must be a sequence of 1 to %d addresses "
                          "(e.g. [\"127.0.0.1:53\"]), got %s",
                          CONFIG_DNS_NAMESERVERS_MAX, config_yaml_describe(&q, v));
        return;
    }
    char csv[CONFIG_DNS_NAMESERVERS_MAX * 64] = "";
    size_t len = 0;
    int n = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct config_yaml_node *e = v->kids[i];
        struct sockaddr_storage ss;
        socklen_t sl;
        char *name = NULL;
        if (e->kind == CONFIG_YAML_BAD)
            continue;
        if (!config_yaml_is_string(e) || e->len == 0 || e->str[0] == ':' ||
            !config_yaml_parse_addr(l, e, "resolvers.nameservers",
                                    "resolvers.nameservers: %s is not \"ADDR:PORT\" or "
                                    "\"[IPv6]:PORT\"",
                                    &ss, &sl, &name)) {
            if (config_yaml_is_string(e) && e->len && e->str[0] == ':')
                config_yaml_error(l, e, "resolvers.nameservers: %s has no address",
                                  config_yaml_describe(&q, e));
            else if (!config_yaml_is_string(e))
                config_yaml_error(l, e, "resolvers.nameservers: %s is not \"ADDR:PORT\"",
                                  config_yaml_describe(&q, e));
            free(name);
            continue;
        }
        /* the address as numbers, whatever the file said: c-ares takes no names */
        char a[80];
        int k = snprintf(csv + len, sizeof(csv) - len, "%s%s", n ? "," : "",
                         sock_addr_str((const struct sockaddr *)&ss, a, sizeof(a)));
        if (k > 0 && (size_t)k < sizeof(csv) - len)
            len += (size_t)k;
        n++;
        free(name);
    }
    if (n == 0)
        return;
    free(cfg->resolvers.nameservers);
    cfg->resolvers.nameservers = strdup(csv);
    cfg->resolvers.nnameservers = n;
    if (!cfg->resolvers.nameservers)
        config_yaml_oom(l);
}

static void seconds(struct config_yaml_load *l, const char *name, const struct config_yaml_node *v,
                    uint32_t min, uint32_t *out)
{
    const struct config_yaml_key k = {name, CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, min, TTL_MAX,
                                      0};
    if (v->kind != CONFIG_YAML_BAD)
        config_yaml_get_int(l, &k, v, out);
}

void config_dns_resolvers(struct config_yaml_load *l, struct config *cfg,
                          const struct config_yaml_node *v)
{
    static const char *const names[] = {"nameservers", "minTtl", "maxTtl", "holdOnFailure"};
    struct config_yaml_qbuf q;
    const struct config_yaml_node *ns_k = NULL, *min_k = NULL, *max_k = NULL, *hold_k = NULL;
    if (v->kind == CONFIG_YAML_BAD)
        return;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "resolvers must be a mapping, got %s", config_yaml_describe(&q, v));
        return;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *val = v->kids[i + 1];
        if (!config_yaml_key_ok(l, k))
            continue;
        if (config_yaml_key_is(k, "nameservers")) {
            if (config_yaml_key_first(l, k, &ns_k))
                nameservers(l, cfg, val);
        } else if (config_yaml_key_is(k, "minTtl")) {
            if (config_yaml_key_first(l, k, &min_k))
                seconds(l, "resolvers.minTtl", val, 1, &cfg->resolvers.min_ttl_s);
        } else if (config_yaml_key_is(k, "maxTtl")) {
            if (config_yaml_key_first(l, k, &max_k))
                seconds(l, "resolvers.maxTtl", val, 1, &cfg->resolvers.max_ttl_s);
        } else if (config_yaml_key_is(k, "holdOnFailure")) {
            if (config_yaml_key_first(l, k, &hold_k))
                seconds(l, "resolvers.holdOnFailure", val, 0, &cfg->resolvers.hold_s);
        } else {
            config_yaml_unknown_key(l, k, names, ARRAY_LEN(names), " in resolvers");
        }
    }
    if (min_k && max_k && cfg->resolvers.min_ttl_s > cfg->resolvers.max_ttl_s)
        config_yaml_error(l, max_k, "resolvers.maxTtl (%u) must not be less than minTtl (%u)",
                          cfg->resolvers.max_ttl_s, cfg->resolvers.min_ttl_s);
    else if (cfg->resolvers.min_ttl_s > cfg->resolvers.max_ttl_s)
        config_yaml_error(l, min_k ? min_k : max_k,
                          "resolvers: minTtl (%u) must not be more than maxTtl (%u)",
                          cfg->resolvers.min_ttl_s, cfg->resolvers.max_ttl_s);
}

void config_dns_check(struct config_yaml_load *l, struct config *cfg)
{
    (void)l;
    cfg->has_resolve = false;
    for (int p = 0; p < cfg->npools; p++)
        for (int i = 0; i < cfg->pools[p].nbackends; i++)
            if (cfg->pools[p].backends[i].resolve != CONFIG_RESOLVE_NONE)
                cfg->has_resolve = true;
    for (int i = 0; i < cfg->nbackends; i++)
        if (cfg->backends[i].resolve != CONFIG_RESOLVE_NONE)
            cfg->has_resolve = true;
}
