/* config_http — the HTTP protocol keys: upgradeProtocols. Part of the config module, behind
 * config_int.h.
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
#include "base/util.h"

#define PROTOCOL_MAX 64 /* bytes of one entry */

/* protocol = token ["/" token] */
static bool protocol_name(const char *s, size_t len)
{
    const char *slash = memchr(s, '/', len);
    if (!slash)
        return http_token(s, len);
    size_t n = (size_t)(slash - s);
    return http_token(s, n) && http_token(slash + 1, len - n - 1);
}

void set_upgrade_protocols(struct load *l, struct config *cfg, const struct node *v)
{
    struct qbuf q;
    if (v->kind != NODE_SEQUENCE) {
        error_at(l, v,
                 "upgradeProtocols must be a sequence of protocol names (e.g. [websocket]), got %s",
                 describe(&q, v));
        return;
    }
    char **list = calloc(v->nkids + 1, sizeof(*list));
    if (!list) {
        load_oom(l);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct node *e = v->kids[i];
        if (e->kind == NODE_BAD)
            continue;
        if (!is_string(e) || e->len > PROTOCOL_MAX || !protocol_name(e->str, e->len)) {
            error_at(l, e,
                     "upgradeProtocols entry must be a protocol name (a token such as websocket, "
                     "optionally with /VERSION), got %s",
                     describe(&q, e));
            continue;
        }
        if (!(list[n++] = strdup(e->str))) {
            load_oom(l);
            break;
        }
    }
    config_http_free(cfg);
    cfg->upgrade_protocols = list;
}

/* After the walk: upgradeProtocols defaults to [websocket]. */
void config_http_defaults(struct load *l, struct config *cfg)
{
    if (cfg->upgrade_protocols)
        return;
    cfg->upgrade_protocols = calloc(2, sizeof(char *));
    if (!cfg->upgrade_protocols || !(cfg->upgrade_protocols[0] = strdup("websocket")))
        load_oom(l);
}

void config_http_free(struct config *cfg)
{
    for (size_t i = 0; cfg->upgrade_protocols && cfg->upgrade_protocols[i]; i++)
        free(cfg->upgrade_protocols[i]);
    free(cfg->upgrade_protocols);
    cfg->upgrade_protocols = NULL;
}
