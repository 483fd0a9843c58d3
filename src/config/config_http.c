/* config_http — the HTTP protocol keys: upgradeProtocols. Entry points in
 * config_int.h; the tree, messages and getters are config_yaml.h's.
 *
 *   upgradeProtocols: [websocket]     the protocols a client's Upgrade may name (RFC 9110 §7.8);
 *                                     default [websocket]; [] turns upgrades off. An entry is a
 *                                     token, optionally with "/VERSION" (then only that version).
 *
 * A request whose Upgrade names none of them is proxied as if it had no Upgrade (see rewrite.h),
 * so h2c and other protocols never turn a connection into a tunnel past golb by default.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"
#include "base/util.h"

#define PROTOCOL_MAX 64 /* bytes of one entry */

/* protocol = token ["/" token] */
static bool protocol_name(const char *s, size_t len)
{
    const char *slash = memchr(s, '/', len);
    if (!slash)
        return config_yaml_http_token(s, len);
    size_t n = (size_t)(slash - s);
    return config_yaml_http_token(s, n) && config_yaml_http_token(slash + 1, len - n - 1);
}

void config_http_upgrade_protocols(struct config_yaml_load *l, struct config *cfg,
                                   const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (v->kind != CONFIG_YAML_SEQUENCE) {
        config_yaml_error(
            l, v,
            "upgradeProtocols must be a sequence of protocol names (e.g. [websocket]), got %s",
            config_yaml_describe(&q, v));
        return;
    }
    char **list = calloc(v->nkids + 1, sizeof(*list));
    if (!list) {
        config_yaml_oom(l);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct config_yaml_node *e = v->kids[i];
        if (e->kind == CONFIG_YAML_BAD)
            continue;
        if (!config_yaml_is_string(e) || e->len > PROTOCOL_MAX || !protocol_name(e->str, e->len)) {
            config_yaml_error(
                l, e,
                "upgradeProtocols entry must be a protocol name (a token such as websocket, "
                "optionally with /VERSION), got %s",
                config_yaml_describe(&q, e));
            continue;
        }
        if (!(list[n++] = strdup(e->str))) {
            config_yaml_oom(l);
            break;
        }
    }
    config_http_free(cfg);
    cfg->upgrade_protocols = list;
}

/* After the walk: upgradeProtocols defaults to [websocket]. */
void config_http_defaults(struct config_yaml_load *l, struct config *cfg)
{
    if (cfg->upgrade_protocols)
        return;
    cfg->upgrade_protocols = calloc(2, sizeof(char *));
    if (!cfg->upgrade_protocols || !(cfg->upgrade_protocols[0] = strdup("websocket")))
        config_yaml_oom(l);
}

void config_http_free(struct config *cfg)
{
    for (size_t i = 0; cfg->upgrade_protocols && cfg->upgrade_protocols[i]; i++)
        free(cfg->upgrade_protocols[i]);
    free(cfg->upgrade_protocols);
    cfg->upgrade_protocols = NULL;
}
