/* config_net — the keys that say who golb may believe about a client's address: proxyProtocol
 * (the PROXY protocol header an L4 tier puts before a connection) and trustedProxies (the
 * forwarding headers of the HTTP proxies in front). Entry points in config_int.h; the tree,
 * messages and getters are config_yaml.h's.
 *
 *   proxyProtocol:
 *     trustedNetworks: [10.0.0.0/8, "::1"]   required: only peers in these ranges may send one
 *     required: true                         default false: a trusted peer may also send none
 *   trustedProxies: [192.0.2.0/24]           default []: every peer's forwarding headers replaced
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/cidr.h"
#include "base/util.h"
#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"

int config_net_cidr_list(struct config_yaml_load *l, const char *key,
                         const struct config_yaml_node *v, struct cidr **out, int *n)
{
    struct config_yaml_qbuf q;
    if (v->kind != CONFIG_YAML_SEQUENCE) {
        config_yaml_error(l, v,
                          "%s must be a sequence of addresses or CIDR ranges (e.g. "
                          "[10.0.0.0/8, \"::1\"]), got %s",
                          key, config_yaml_describe(&q, v));
        return -1;
    }
    struct cidr *c = calloc(v->nkids + 1, sizeof(*c));
    if (!c) {
        config_yaml_oom(l);
        return -1;
    }
    int k = 0, rc = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct config_yaml_node *e = v->kids[i];
        if (e->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        int r = config_yaml_is_string(e) ? cidr_parse(e->str, e->len, &c[k]) : -EINVAL;
        if (r == -EINVAL) {
            config_yaml_error(l, e, "%s: invalid address or CIDR range %s", key,
                              config_yaml_describe(&q, e));
            rc = -1;
            continue;
        }
        if (r == -ERANGE) {
            char buf[64];
            config_yaml_warning(l, e, "%s: %s has bits set beyond its prefix: it means %s", key,
                                config_yaml_quote(&q, e->str, e->len),
                                cidr_str(&c[k], buf, sizeof(buf)));
        }
        k++;
    }
    free(*out);
    *out = c;
    *n = k;
    return rc;
}

void config_net_proxy_protocol(struct config_yaml_load *l, struct config *cfg,
                               const struct config_yaml_node *v)
{
    static const char *const names[] = {"trustedNetworks", "required"};
    struct config_yaml_qbuf q;
    const struct config_yaml_node *nets_k = NULL, *req_k = NULL, *nets = NULL, *req = NULL;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v,
                          "proxyProtocol must be a mapping with \"trustedNetworks\", got %s",
                          config_yaml_describe(&q, v));
        return;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *val = v->kids[i + 1];
        if (!config_yaml_key_ok(l, k))
            continue;
        if (config_yaml_key_is(k, "trustedNetworks")) {
            if (config_yaml_key_first(l, k, &nets_k))
                nets = val;
        } else if (config_yaml_key_is(k, "required")) {
            if (config_yaml_key_first(l, k, &req_k))
                req = val;
        } else {
            config_yaml_unknown_key(l, k, names, ARRAY_LEN(names), " in proxyProtocol");
        }
    }
    if (req && req->kind != CONFIG_YAML_BAD)
        config_yaml_get_bool(l, "proxyProtocol.required", req, &cfg->pp_required);
    if (!nets) {
        config_yaml_error(l, v, "proxyProtocol is missing \"trustedNetworks\"");
        return;
    }
    if (nets->kind == CONFIG_YAML_BAD)
        return;
    if (config_net_cidr_list(l, "proxyProtocol.trustedNetworks", nets, &cfg->pp_trusted,
                  &cfg->npp_trusted) != 0)
        return;
    cfg->pp_on = true;
    if (cfg->npp_trusted == 0)
        config_yaml_warning(l, nets,
                            "proxyProtocol.trustedNetworks: [] trusts no peer: every PROXY "
                            "header is refused");
}

void config_net_trusted_proxies(struct config_yaml_load *l, struct config *cfg,
                                const struct config_yaml_node *v)
{
    config_net_cidr_list(l, "trustedProxies", v, &cfg->trusted_proxies, &cfg->ntrusted_proxies);
}

void config_net_free(struct config *cfg)
{
    free(cfg->pp_trusted);
    cfg->pp_trusted = NULL;
    free(cfg->trusted_proxies);
    cfg->trusted_proxies = NULL;
}
