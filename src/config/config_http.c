/* config_http — the HTTP protocol keys: upgradeProtocols and the http2 section. Entry points in
 * config_int.h; the tree, messages and getters are config_yaml.h's.
 *
 *   upgradeProtocols: [websocket]     the protocols a client's Upgrade may name (RFC 9110 §7.8);
 *                                     default [websocket]; [] turns upgrades off. An entry is a
 *                                     token, optionally with "/VERSION" (then only that version).
 *   http2:                            every key optional
 *     cleartext: false                the plain listener also takes HTTP/2 with prior knowledge
 *     maxConcurrentStreams: 128       SETTINGS_MAX_CONCURRENT_STREAMS, 1..10000
 *     initialWindowSize: 262144       per-stream receive window in bytes, 65535..2147483647
 *     idleTimeout: 180                seconds without an open stream before a GOAWAY
 *   (tls.alpn, in config_tls.c, says whether the TLS listener offers h2.)
 *
 * A request whose Upgrade names none of them is proxied as if it had no Upgrade (see rewrite.h),
 * so h2c and other protocols never turn a connection into a tunnel past golb by default.
 */
#include <stddef.h>
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

/* ---------------------------------------------------------------- http2 ------------------- */

static const struct config_yaml_key http2_keys[] = {
    {"cleartext", CONFIG_YAML_KT_BOOL, offsetof(struct config_http2, cleartext), 0, 1, 0},
    {"maxConcurrentStreams", CONFIG_YAML_KT_UINT,
     offsetof(struct config_http2, max_concurrent_streams), 1, 10000, 128},
    {"initialWindowSize", CONFIG_YAML_KT_UINT, offsetof(struct config_http2, initial_window_size),
     65535, 2147483647u, 262144},
    {"idleTimeout", CONFIG_YAML_KT_DURATION, offsetof(struct config_http2, idle_timeout_ms), 1,
     CONFIG_YAML_DAY_MS, 180000},
};

void config_http_http2_defaults(struct config_http2 *h)
{
    for (size_t i = 0; i < ARRAY_LEN(http2_keys); i++)
        config_yaml_store(h, &http2_keys[i], http2_keys[i].def);
}

void config_http_http2(struct config_yaml_load *l, struct config *cfg,
                       const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    const char *names[ARRAY_LEN(http2_keys)];
    const struct config_yaml_node *seen[ARRAY_LEN(http2_keys)] = {0};
    for (size_t i = 0; i < ARRAY_LEN(http2_keys); i++)
        names[i] = http2_keys[i].name;
    if (config_yaml_is_null(v))
        return; /* "http2:" alone: every default */
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "http2 must be a mapping, got %s", config_yaml_describe(&q, v));
        return;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *val = v->kids[i + 1];
        int idx = config_yaml_key_index(l, k, names, ARRAY_LEN(names), seen, " in http2");
        if (idx < 0 || val->kind == CONFIG_YAML_BAD)
            continue;
        const struct config_yaml_key *row = &http2_keys[idx];
        uint32_t x;
        bool b;
        switch (row->type) {
        case CONFIG_YAML_KT_BOOL:
            if (config_yaml_get_bool(l, row->name, val, &b) == 0)
                config_yaml_store(&cfg->http2, row, b);
            break;
        case CONFIG_YAML_KT_DURATION:
            if (config_yaml_get_duration(l, row, val, &x) == 0)
                config_yaml_store(&cfg->http2, row, x);
            break;
        default:
            if (config_yaml_get_int(l, row, val, &x) == 0)
                config_yaml_store(&cfg->http2, row, x);
            break;
        }
    }
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
