/* config — the YAML configuration file turned into an immutable, validated struct config.
 *
 *   bytes ──libyaml events──▶ node tree (scalar | sequence | mapping, 1-based line:col on each)
 *         ──top mapping walked against keys[] (name, type, offsetof, min, max, default)──▶
 *   struct config (defaults first) ──cross-field checks──▶ *out, or freed and -1
 *
 * Every problem becomes a diagnostic {line, col, text}. Nothing stops at the first one: the whole
 * file is checked, then the diagnostics are sorted by position and written to `errs`, one per line,
 * as `NAME:LINE:COL: text` (errors) or `NAME:LINE:COL: warning: text`. Only a YAML syntax error,
 * nesting deeper than 64 levels or a second document stops the walk: no tree is left to check.
 *
 * This file holds the top-level key table, the checks that span keys and the API. The node tree,
 * the diagnostics and the typed getters are config_yaml.c's; the sections have their own parsers
 * (config_backend.c, config_tls.c, config_lb.c, config_obs.c: config_int.h), which this table
 * calls and which call only config_yaml.c, never back into this file.
 *
 * Grammar (a subset of YAML 1.1; anchors, aliases, tags and multiple documents are rejected):
 *   config   := mapping; each known key at most once; unknown keys are errors (an unknown key
 *               written twice is reported twice as unknown, not as a duplicate)
 *   INT      := plain (unquoted) scalar ["-"] DIGITS without a leading zero ("010" is octal in
 *               YAML 1.1); no "0x10", "1e3", "+5", "true". Quoted numbers ("8080") are rejected:
 *               in YAML they are strings. "-" is accepted so that -1 is reported as out of range.
 *   SECONDS  := plain scalar ["-"] DIGITS ["." DIGITS] (also ".5" and "5."), converted exactly
 *               (no floating point) to ms = round(seconds * 1000), halves up; must be > 0,
 *               at most 86400 and round to at least 1 ms
 *   port     := INT 1..65535                  (listen on 0.0.0.0:PORT; default 8080)
 *   listen   := ADDRESS | sequence of 1..8 ADDRESS (no duplicates, none within another's
 *               wildcard on the same port) | off; ADDRESS := "ADDR:PORT" | "[IPV6]:PORT" | ":PORT",
 *               PORT 0..65535 (0 = ephemeral); wins over port (which then draws a warning)
 *   workers  := INT 1..1024                   (default: online CPUs)
 *   reusePort := BOOL                         (default false: a listener's address must be free)
 *   *Timeout, healthCheckPeriod := SECONDS
 *   maxHeaderSize 1024..1048576, maxRequestLine 256..maxHeaderSize (default min(8192,
 *   maxHeaderSize)), maxConnections 1..1000000, requestBufferSize 0..16777216 (bytes, default
 *   65536, 0: off), retries 0..100, maxFails 0..1000, upstreamMaxIdle 0..100000 := INT
 *   admin    := mapping {listen: ADDR (required), token: STRING | tokenFile: PATH}; ADDR as
 *               for listen, or "unix:/PATH"; a token is required unless the address is loopback
 *               or unix; tokenFile's content (trailing whitespace removed) is the token
 *   accessLog := off | text | json;  logFormat := text | json;  accessLogPath := "/PATH"
 *   upgradeProtocols := sequence of PROTOCOL (TOKEN ["/" TOKEN]), default [websocket]; [] = off
 *   proxyProtocol := mapping {trustedNetworks: sequence of CIDR (required), required: BOOL}
 *               (config_net.c); CIDR := ADDR | ADDR/BITS (base/cidr.h)
 *   trustedProxies := sequence of CIDR (config_net.c), default []
 *   http2    := mapping {cleartext: BOOL, maxConcurrentStreams: INT 1..10000 (default 128),
 *               initialWindowSize: INT 65535..2147483647 (default 262144), idleTimeout: SECONDS
 *               (default 180)} or null (every default)
 *   backends := non-empty sequence of (URL | mapping {url: URL (required), healthPath: "/...",
 *               weight: INT 0..1000 (default 1), sendProxyProtocol: off | v1 | v2, and for https: serverName, caFile, tlsVerify,
 *               clientCertFile, clientKeyFile (config_tls.c)})
 *   tls      := mapping (config_tls.c)
 *   balance  := roundRobin | leastConnections | random | leastLatency | hash
 *   hashKey  := clientAddress | uri | "header:TOKEN" | "cookie:TOKEN" | "query:NAME"
 *   hashLoadFactor := 0 | decimal > 1 and ≤ 100, kept in thousandths (exactly, as SECONDS are)
 *   slowStart := SECONDS or 0 (off), at most 3600
 *   panicThreshold 0..100 (%), healthyThreshold, unhealthyThreshold 1..100 := INT
 *   stickySession := mapping {cookie: TOKEN (required), maxAge: SECONDS or 0, at most 315360000
 *               (rounded up to whole seconds), secure: BOOL,
 *               httpOnly: BOOL (default true), sameSite: Strict | Lax | None,
 *               secret: STRING (visible ASCII, at least 16) | secretFile: PATH (its content,
 *               trailing whitespace removed, is the secret)}; BOOL := true | false
 *   URL      := ("http" | "https") "://" HOST [":" PORT] [PATH] ["?" QUERY]; no userinfo,
 *               fragment, spaces or control characters; at most URL_MAX bytes. HOST := name |
 *               IPv4 | "[" IPv6 "]", PORT 1..65535 (default 80, 443). Health path: healthPath, else PATH[?QUERY], else "/".
 *               HOST is resolved at load time (numeric first, then by name; first address).
 *
 * Messages (KEY a key name, V the offending value quoted and escaped, or "null", "a sequence", "a
 * mapping", "the quoted string V"; N a line number):
 *   cannot read: <strerror>                 (at 1:1, config_load only)
 *   file is larger than 1 MiB               (at 1:1, config_load only)
 *   out of memory                           (at 1:1)
 *   too many problems: N more not shown     (after DIAG_MAX, at the first one not shown)
 *   invalid YAML: <libyaml problem>[ (<libyaml context> at line N column C)][; HINT]
 *       HINT: YAML forbids tabs for indentation: indent with spaces  (a tab in the indentation)
 *           | quote IPv6 addresses: KEY: "[ADDR]:PORT"  (an unquoted "[...]" IPv6 address; the
 *             line's own key and value, or `, e.g. listen: "[::1]:8080"` when it has no KEY:)
 *   only one YAML document is allowed
 *   nesting deeper than 64 levels
 *   anchors are not supported (&NAME)
 *   aliases are not supported (*NAME)
 *   tags are not supported ("TAG")          (TAG as libyaml expands it: "tag:yaml.org,2002:int")
 *   empty configuration: "backends" is required
 *   top level must be a mapping of keys to values, got V
 *   keys must be strings, got V
 *   unknown key "K"[ (did you mean "KEY"?)]
 *   unknown key "K" in backend[ (did you mean "url"?)]
 *   duplicate key "K" (first defined at line N)
 *   missing required key "backends"
 *   KEY must be a decimal integer, got V
 *   KEY must be between MIN and MAX, got V
 *   KEY must be a number of seconds (e.g. 3 or 0.5), got V
 *   KEY must be greater than 0, got V
 *   KEY must be at most 86400 seconds (1 day), got V
 *   KEY must be at least 0.001 seconds (1 ms), got V
 *   KEY must be between 0 and MAX seconds, got V   (slowStart, stickySession maxAge: 0 is off)
 *   maxRequestLine (N) must not exceed maxHeaderSize (M)
 *   listen must be "ADDR:PORT", "[IPv6]:PORT" or ":PORT", got V
 *   listen port must be between 0 and 65535, got V
 *   listen: IPv6 addresses must be in brackets, e.g. "[::1]:8080"
 *   cannot resolve listen address "HOST": <gai_strerror>
 *       (the four above at the key for a single address, at the entry in a list)
 *   listen must not be an empty list
 *   listen: at most 8 addresses, got N
 *   duplicate listen address "A" (the same as the entry at line N)
 *   listen address "A" overlaps "B" (line N): one of them is a wildcard address on the same port
 *       (all of these with tls.listen too)
 *   tls.listen address "A" overlaps listen address "B"
 *   backends must be a sequence of backends, got V
 *   backends must not be empty
 *   backend must be a URL or a mapping with "url", got V
 *   backend is missing "url"
 *   url must be a string, got V
 *   healthPath must be a path starting with "/", got V
 *   healthPath must not contain spaces or control characters
 *   invalid backend URL "U": REASON     REASON is one of:
 *       it must start with "http://" or "https://" |
 *       unsupported scheme "S" (only http and https are supported) |
 *       spaces and control characters are not allowed | longer than 2048 bytes |
 *       user information ("user@") is not allowed | fragments ("#...") are not allowed |
 *       empty host | invalid host "H" | missing "]" after the IPv6 address |
 *       invalid IPv6 address "[H]" | unexpected "X" after "]" |
 *       IPv6 addresses must be in brackets, e.g. "http://[::1]:8081/" |
 *       invalid port "P" (must be 1..65535)
 *   cannot resolve backend host "HOST": <gai_strerror>   (or, in numeric-only mode: name
 *       resolution is disabled (numeric addresses and "localhost" only))
 *   duplicate backend "NAME" (same address as the backend at line N)
 *   weight must be between 0 and 1000, got V
 *   balance must be roundRobin, leastConnections, random, leastLatency or hash, got V
 *   hashKey must be clientAddress, uri, "header:NAME", "cookie:NAME" or "query:NAME", got V
 *   hashKey: invalid name "N"
 *   hashLoadFactor must be a number (e.g. 1.25), got V
 *   hashLoadFactor must be 0 (off) or above 1 and at most 100, got V
 *   stickySession must be a mapping with "cookie", got V
 *   stickySession is missing "cookie"
 *   stickySession cookie must be a cookie name, got V
 *   unknown key "K" in stickySession[ (did you mean "cookie"?)]
 *   secure must be true or false, got V        (also httpOnly)
 *   sameSite must be Strict, Lax or None, got V
 *   stickySession.secret must be a string, got V
 *   stickySession.secret must hold visible ASCII characters only (no spaces or control characters)
 *   stickySession.secret must be at least 16 characters, got N
 *   stickySession.secretFile: the secret must be at least 16 characters, the file holds N
 *   stickySession.secret and stickySession.secretFile are mutually exclusive: give one
 *   stickySession.secretFile must be a path, got V;  stickySession.secretFile: cannot read
 *       "PATH": <strerror>;  stickySession.secretFile: cannot use "PATH": (as admin.tokenFile)
 *   admin must be a mapping with "listen" (and "token"), got V
 *   unknown key "K" in admin[ (did you mean ...?)]
 *   admin is missing "listen"
 *   admin.listen must be "ADDR:PORT", "[IPv6]:PORT", ":PORT" or "unix:/PATH", got V
 *   admin.token must be a non-empty string of visible ASCII characters
 *   admin.token or admin.tokenFile is required when admin.listen is not a loopback or unix address
 *   admin.token and admin.tokenFile are mutually exclusive: give one
 *   admin.tokenFile must be a path, got V
 *   admin.tokenFile: cannot read "PATH": <strerror>
 *   admin.tokenFile: cannot use "PATH": it is not a regular file | it is larger than 4096 bytes |
 *       it is empty | it must hold one token of visible ASCII characters
 *   accessLog must be one of off, text, json, got V
 *   logFormat must be one of text, json, got V
 *   accessLogPath must be a path, got V
 *   upgradeProtocols must be a sequence of protocol names (e.g. [websocket]), got V
 *   upgradeProtocols entry must be a protocol name (a token such as websocket, optionally with
 *       /VERSION), got V
 *   proxyProtocol must be a mapping with "trustedNetworks", got V
 *   unknown key "K" in proxyProtocol[ (did you mean ...?)]
 *   proxyProtocol is missing "trustedNetworks"
 *   proxyProtocol.required must be true or false, got V
 *   KEY must be a sequence of addresses or CIDR ranges (e.g. [10.0.0.0/8, "::1"]), got V
 *   KEY: invalid address or CIDR range V       (KEY proxyProtocol.trustedNetworks, trustedProxies)
 *   http2 must be a mapping, got V;  unknown key "K" in http2[ (did you mean ...?)]
 *   tls.alpn must be a non-empty sequence of h2 and http/1.1, got V
 *   tls.alpn entry must be h2 or http/1.1, got V;  tls.alpn lists "P" twice
 * Warnings:
 *   KEY: "A/B" has bits set beyond its prefix: it means N/B
 *   proxyProtocol.trustedNetworks: [] trusts no peer: every PROXY header is refused
 *   hashKey is ignored unless balance is hash   (also hashLoadFactor)
 *   port is ignored because listen is set (line N)
 *   healthCheckTimeout (T s) is not less than healthCheckPeriod (P s); a backend is not checked
 *   again while its previous check is still running
 *   admin.tokenFile: "PATH" is readable by every user (chmod o-r)   (also stickySession.secretFile)
 */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_int.h"
#include "config/config_yaml.h"
#include "base/util.h"

#define FILE_MAX (1024 * 1024) /* config_load refuses larger files */

/* "5", "0.5", "1.25": milliseconds as seconds for messages. */
static const char *seconds_str(char buf[24], uint32_t ms)
{
    int n = snprintf(buf, 24, "%u.%03u", ms / 1000, ms % 1000);
    while (n > 0 && buf[n - 1] == '0')
        buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '.')
        buf[--n] = '\0';
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * Known keys
 */

#define DURATION(name, field, secs)                                                                \
    {                                                                                              \
        name, CONFIG_YAML_KT_DURATION, offsetof(struct config, field), 1, CONFIG_YAML_DAY_MS,      \
            (secs)*1000u                                                                           \
    }
#define COUNT(name, field, lo, hi, d)                                                              \
    {                                                                                              \
        name, CONFIG_YAML_KT_UINT, offsetof(struct config, field), lo, hi, d                       \
    }

static const struct config_yaml_key keys[] = {
    {"port", CONFIG_YAML_KT_PORT, CONFIG_YAML_NO_FIELD, 1, 65535, 8080},
    {"listen", CONFIG_YAML_KT_LISTEN, CONFIG_YAML_NO_FIELD, 0, 65535, 0},
    {"workers", CONFIG_YAML_KT_INT, offsetof(struct config, workers), 1, 1024, 0 /* online CPUs */},
    {"reusePort", CONFIG_YAML_KT_BOOL, offsetof(struct config, reuse_port), 0, 1, 0},
    DURATION("healthCheckTimeout", health_check_timeout_ms, 3),
    DURATION("healthCheckPeriod", health_check_period_ms, 5),
    DURATION("connectTimeout", connect_timeout_ms, 3),
    DURATION("upstreamTimeout", upstream_timeout_ms, 30),
    DURATION("bodyTimeout", body_timeout_ms, 60),
    DURATION("clientHeaderTimeout", client_header_timeout_ms, 10),
    DURATION("keepAliveTimeout", keepalive_timeout_ms, 60),
    DURATION("tunnelTimeout", tunnel_timeout_ms, 300),
    DURATION("shutdownTimeout", shutdown_timeout_ms, 10),
    DURATION("upstreamIdleTimeout", upstream_idle_timeout_ms, 60),
    COUNT("maxHeaderSize", max_header_size, 1024, 1048576, 16384),
    COUNT("maxRequestLine", max_request_line, 256, 1048576, 8192), /* and ≤ maxHeaderSize */
    COUNT("maxConnections", max_connections, 1, 1000000, 10000),
    COUNT("requestBufferSize", request_buffer_size, 0, 16777216, 65536),
    COUNT("retries", retries, 0, 100, 2),
    COUNT("maxFails", max_fails, 0, 1000, 3),
    COUNT("upstreamMaxIdle", upstream_max_idle, 0, 100000, 64),
    {"backends", CONFIG_YAML_KT_BACKENDS, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"tls", CONFIG_YAML_KT_TLS, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"balance", CONFIG_YAML_KT_BALANCE, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"hashKey", CONFIG_YAML_KT_HASHKEY, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"hashLoadFactor", CONFIG_YAML_KT_FACTOR, offsetof(struct config, hash_load_factor), 0, 100000,
     0},
    {"slowStart", CONFIG_YAML_KT_DURATION, offsetof(struct config, slow_start_ms), 0, 3600000,
     0 /* off */},
    COUNT("panicThreshold", panic_threshold, 0, 100, 0),
    COUNT("healthyThreshold", healthy_threshold, 1, 100, 1),
    COUNT("unhealthyThreshold", unhealthy_threshold, 1, 100, 1),
    {"stickySession", CONFIG_YAML_KT_STICKY, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"admin", CONFIG_YAML_KT_ADMIN, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"accessLog", CONFIG_YAML_KT_ACCESS_LOG, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"accessLogPath", CONFIG_YAML_KT_PATH, offsetof(struct config, access_log_path), 0, 0, 0},
    {"logFormat", CONFIG_YAML_KT_LOG_FORMAT, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"upgradeProtocols", CONFIG_YAML_KT_UPGRADE, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"pools", CONFIG_YAML_KT_POOLS, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"routes", CONFIG_YAML_KT_ROUTES, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"encodedSlash", CONFIG_YAML_KT_ENCODED_SLASH, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"proxyProtocol", CONFIG_YAML_KT_PROXY_PROTOCOL, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"trustedProxies", CONFIG_YAML_KT_TRUSTED_PROXIES, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"http2", CONFIG_YAML_KT_HTTP2, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"resolvers", CONFIG_YAML_KT_RESOLVERS, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"protocol", CONFIG_YAML_KT_UPSTREAM, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"healthCheck", CONFIG_YAML_KT_UPSTREAM, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"healthCheckService", CONFIG_YAML_KT_UPSTREAM, CONFIG_YAML_NO_FIELD, 0, 0, 0},
    {"maxStreamsPerConnection", CONFIG_YAML_KT_UPSTREAM, CONFIG_YAML_NO_FIELD, 0, 0, 0},
};

#define TOP_KEYS_MAX 56
_Static_assert(ARRAY_LEN(keys) <= TOP_KEYS_MAX, "struct top's key_at is too small");

const struct config_yaml_key *config_top_keys(size_t *n)
{
    *n = ARRAY_LEN(keys);
    return keys;
}

static int key_index(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

const struct config_yaml_key *config_top_key(const char *name)
{
    int i = key_index(name);
    return i < 0 ? NULL : &keys[i];
}

static uint32_t fetch(const struct config *cfg, const char *name)
{
    const struct config_yaml_key *k = &keys[key_index(name)];
    return *(const uint32_t *)(const void *)((const char *)cfg + k->off);
}

void config_set_resolve_numeric_only(bool on)
{
    config_yaml_set_numeric_only(on);
}

/* listen: an address, a list of them (config_listen.c), or "off" (HTTPS only: no plain listener;
 * tls.listen is then required). k is the key. */
static void set_listen(struct config_yaml_load *l, struct config *cfg,
                       const struct config_yaml_node *k, const struct config_yaml_node *v)
{
    if (config_yaml_is_string(v) && strcmp(v->str, "off") == 0) {
        cfg->plain_off = true;
        return;
    }
    config_listen_parse(l, "listen", k, v, &cfg->listen);
}

/* ---------------------------------------------------------------------------------------------
 * The walk
 */

/* What the walk of the top mapping keeps, index = row in keys[]: where each key and its value are
 * (NULL when absent), for duplicates and for the checks that span keys. */
struct top {
    struct config_yaml_load *l;
    const struct config_yaml_node *key_at[TOP_KEYS_MAX];
    const struct config_yaml_node *val_at[TOP_KEYS_MAX];
    int port; /* from `port`, -1 when absent or invalid */
};

static void set_defaults(struct config *cfg)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (keys[i].off != CONFIG_YAML_NO_FIELD && keys[i].type != CONFIG_YAML_KT_PATH)
            config_yaml_store(cfg, &keys[i], keys[i].def);
    config_http_http2_defaults(&cfg->http2);
    cfg->up.max_streams = 100;
    config_dns_defaults(cfg);
    atomic_init(&cfg->refs, 1);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus < 1 ? 1 : cpus > 1024 ? 1024 : (int)cpus;
}

/* One top-level pair whose key is the row `k`. */
static void set_key(struct top *top, struct config *cfg, const struct config_yaml_key *k,
                    const struct config_yaml_node *v)
{
    struct config_yaml_load *l = top->l;
    uint32_t x;
    if (v->kind == CONFIG_YAML_BAD)
        return;
    switch (k->type) {
    case CONFIG_YAML_KT_PORT:
        if (config_yaml_get_int(l, k, v, &x) == 0)
            top->port = (int)x;
        break;
    case CONFIG_YAML_KT_LISTEN:
        set_listen(l, cfg, top->key_at[k - keys], v);
        break;
    case CONFIG_YAML_KT_INT:
    case CONFIG_YAML_KT_UINT:
        if (config_yaml_get_int(l, k, v, &x) == 0)
            config_yaml_store(cfg, k, x);
        break;
    case CONFIG_YAML_KT_DURATION:
        if (config_yaml_get_duration(l, k, v, &x) == 0)
            config_yaml_store(cfg, k, x);
        break;
    case CONFIG_YAML_KT_BACKENDS:
        config_backend_section(l, &cfg->backends, &cfg->nbackends, v);
        break;
    case CONFIG_YAML_KT_TLS:
        config_tls_section(l, cfg, v);
        break;
    case CONFIG_YAML_KT_BALANCE:
        config_lb_balance(l, &cfg->balance, v);
        break;
    case CONFIG_YAML_KT_HASHKEY:
        config_lb_hash_key(l, &cfg->hash_key, &cfg->hash_key_name, v);
        break;
    case CONFIG_YAML_KT_FACTOR:
        config_lb_factor(l, cfg, k, v);
        break;
    case CONFIG_YAML_KT_STICKY:
        config_lb_sticky(l, &cfg->sticky, v);
        break;
    case CONFIG_YAML_KT_ADMIN:
        config_obs_admin(l, cfg, v);
        break;
    case CONFIG_YAML_KT_ACCESS_LOG: {
        static const char *const c[] = {"off", "text", "json", NULL};
        int i = config_yaml_get_choice(l, k, v, c, "off, text, json");
        if (i >= 0)
            cfg->access_log = i;
        break;
    }
    case CONFIG_YAML_KT_LOG_FORMAT: {
        static const char *const c[] = {"text", "json", NULL};
        int i = config_yaml_get_choice(l, k, v, c, "text, json");
        if (i >= 0)
            cfg->log_json = i == 1;
        break;
    }
    case CONFIG_YAML_KT_PATH:
        config_obs_path(l, cfg, k, v);
        break;
    case CONFIG_YAML_KT_UPGRADE:
        config_http_upgrade_protocols(l, cfg, v);
        break;
    case CONFIG_YAML_KT_BOOL: {
        bool b;
        if (config_yaml_get_bool(l, k->name, v, &b) == 0)
            config_yaml_store(cfg, k, b);
        break;
    }
    case CONFIG_YAML_KT_POOLS:
    case CONFIG_YAML_KT_ROUTES:
        break; /* after the walk (cross_check), once every top-level value is known */
    case CONFIG_YAML_KT_HTTP2:
        config_http_http2(l, cfg, v);
        break;
    case CONFIG_YAML_KT_UPSTREAM:
        config_pool_upstream_key(l, top->key_at[k - keys], v, &cfg->up);
        break;
    case CONFIG_YAML_KT_ENCODED_SLASH: {
        static const char *const c[] = {"keep", "reject", NULL};
        int i = config_yaml_get_choice(l, k, v, c, "keep, reject");
        if (i >= 0)
            cfg->encoded_slash_reject = i == 1;
        break;
    }
    case CONFIG_YAML_KT_PROXY_PROTOCOL:
        config_net_proxy_protocol(l, cfg, v);
        break;
    case CONFIG_YAML_KT_TRUSTED_PROXIES:
        config_net_trusted_proxies(l, cfg, v);
        break;
    case CONFIG_YAML_KT_RESOLVERS:
        config_dns_resolvers(l, cfg, v);
        break;
    }
}

/* Checks that span keys: listen vs port, maxRequestLine vs maxHeaderSize, timeout vs period. */
static void cross_check(struct top *top, struct config *cfg, const struct config_yaml_node *root)
{
    struct config_yaml_load *l = top->l;
    int port_i = key_index("port");
    const struct config_yaml_node *port_k = top->key_at[port_i];
    const struct config_yaml_node *listen_k = top->key_at[key_index("listen")];
    if (listen_k && port_k)
        config_yaml_warning(l, port_k, "port is ignored because listen is set (line %d)",
                            listen_k->line);
    if (!listen_k) /* the wildcard address on `port`: a bind failure is reported at its key */
        config_listen_any(l, &cfg->listen,
                          (uint16_t)(top->port > 0 ? (uint32_t)top->port : keys[port_i].def),
                          port_k);

    int rl = key_index("maxRequestLine");
    if (!top->val_at[rl] && cfg->max_request_line > cfg->max_header_size)
        cfg->max_request_line = cfg->max_header_size; /* default follows a smaller head limit */
    if (cfg->max_request_line > cfg->max_header_size)
        config_yaml_error(l, top->val_at[rl],
                          "maxRequestLine (%u) must not exceed maxHeaderSize (%u)",
                          cfg->max_request_line, cfg->max_header_size);

    const struct config_yaml_node *t = top->val_at[key_index("healthCheckTimeout")];
    const struct config_yaml_node *p = top->val_at[key_index("healthCheckPeriod")];
    uint32_t tms = fetch(cfg, "healthCheckTimeout"), pms = fetch(cfg, "healthCheckPeriod");
    if ((t || p) && tms >= pms) {
        char a[24], b[24];
        config_yaml_warning(
            l, t ? t : p,
            "healthCheckTimeout (%s s) is not less than healthCheckPeriod (%s s); a backend "
            "is not checked again while its previous check is still running",
            seconds_str(a, tms), seconds_str(b, pms));
    }

    config_pool_section(l, cfg, top->val_at[key_index("pools")]); /* with the default pool */
    config_route_routes(l, cfg, top->val_at[key_index("routes")]);

    bool hash = false; /* hashKey is used when any pool (the default or one inheriting) hashes */
    for (int i = 0; i < cfg->npools; i++)
        hash |= cfg->pools[i].balance && strcmp(cfg->pools[i].balance, "hash") == 0;
    hash |= cfg->balance && strcmp(cfg->balance, "hash") == 0;
    const char *hash_only[] = {"hashKey", "hashLoadFactor"};
    for (size_t i = 0; i < ARRAY_LEN(hash_only); i++) {
        const struct config_yaml_node *hk = top->key_at[key_index(hash_only[i])];
        if (hk && !hash)
            config_yaml_warning(l, hk, "%s is ignored unless balance is hash", hash_only[i]);
    }

    /* Without top-level backends there is no default pool: routes must then take every request
     * they want served (the rest is answered 404), so `routes` is required instead. */
    if (!top->key_at[key_index("backends")] && !top->key_at[key_index("routes")])
        config_yaml_error(l, root, "missing required key \"backends\"");
    config_tls_cross_check(l, cfg, root, top->val_at[key_index("listen")]);
    config_listen_cross_check(l, cfg);
    config_http_defaults(l, cfg);
}

static void walk(struct config_yaml_load *l, struct config *cfg,
                 const struct config_yaml_node *root)
{
    struct top top = {.l = l, .port = -1};
    const char *names[ARRAY_LEN(keys)];
    struct config_yaml_qbuf q;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        names[i] = keys[i].name;

    if (!root || config_yaml_is_null(root)) {
        config_yaml_error_lc(l, root ? root->line : 1, root ? root->col : 1,
                             "empty configuration: \"backends\" is required");
        return;
    }
    if (root->kind == CONFIG_YAML_BAD)
        return;
    if (root->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, root, "top level must be a mapping of keys to values, got %s",
                          config_yaml_describe(&q, root));
        return;
    }
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct config_yaml_node *k = root->kids[i], *v = root->kids[i + 1];
        if (!config_yaml_key_ok(l, k))
            continue;
        int idx = k->len == strlen(k->str) ? key_index(k->str) : -1;
        if (idx == -1) {
            config_yaml_unknown_key(l, k, names, ARRAY_LEN(names), "");
            continue;
        }
        if (!config_yaml_key_first(l, k, &top.key_at[idx]))
            continue;
        top.val_at[idx] = v;
        set_key(&top, cfg, &keys[idx], v);
    }
    cross_check(&top, cfg, root);
}

/* ---------------------------------------------------------------------------------------------
 * API
 */

/* config_load_buffer, with relative paths resolved against `base`'s directory (NULL: name's). */
static int load_buffer(const char *name, const char *base, const char *data, size_t len,
                       FILE *errs, struct config **out)
{
    struct config_yaml_load l = {.name = name ? name : "<config>", .base = base};
    bool fatal = false;
    struct config *cfg = NULL;

    *out = NULL;
    struct config_yaml_node *root =
        config_yaml_tree_build(&l, data ? data : "", data ? len : 0, &fatal);
    if (!fatal) {
        cfg = calloc(1, sizeof(*cfg));
        if (cfg && (cfg->path = strdup(config_yaml_file_name(&l)))) {
            set_defaults(cfg);
            walk(&l, cfg, root);
        } else {
            config_yaml_oom(&l);
        }
    }
    config_yaml_tree_free(root);
    if (cfg)
        config_dns_check(&l, cfg);
    if (config_yaml_flush(&l, errs) == -1) {
        config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

int config_load_buffer(const char *name, const char *data, size_t len, FILE *errs,
                       struct config **out)
{
    return load_buffer(name, NULL, data, len, errs, out);
}

/* Reads the file `path` and loads it, relative paths against base's directory (NULL: path's). */
static int load_file(const char *path, const char *base, FILE *errs, struct config **out)
{
    size_t len = 0, cap = 64 * 1024;
    char *buf = NULL;
    int err = 0;

    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        err = errno;
    } else {
        for (;;) {
            if (len == cap || !buf) {
                if (buf)
                    cap *= 2;
                char *nb = len > FILE_MAX ? NULL : realloc(buf, MIN(cap, (size_t)FILE_MAX + 1));
                if (!nb) {
                    err = len > FILE_MAX ? EFBIG : ENOMEM;
                    break;
                }
                buf = nb;
                cap = MIN(cap, (size_t)FILE_MAX + 1);
            }
            ssize_t n = read(fd, buf + len, cap - len);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1) {
                err = errno;
                break;
            }
            if (n == 0)
                break;
            len += (size_t)n;
            if (len > FILE_MAX) {
                err = EFBIG;
                break;
            }
        }
        close(fd);
    }
    if (err) {
        if (errs) {
            if (err == EFBIG)
                fprintf(errs, "%s:1:1: file is larger than 1 MiB\n", path);
            else
                fprintf(errs, "%s:1:1: cannot read: %s\n", path, strerror(err));
            fflush(errs);
        }
        free(buf);
        return -1;
    }
    int rc = load_buffer(path, base, buf, len, errs, out);
    free(buf);
    return rc;
}

int config_load(const char *path, FILE *errs, struct config **out)
{
    return load_file(path, NULL, errs, out);
}

int config_load_copy(const char *path, const char *original, FILE *errs, struct config **out)
{
    return load_file(path, original, errs, out);
}

void config_ref(struct config *cfg)
{
    atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
}

void config_free(struct config *cfg)
{
    if (!cfg || atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < cfg->nbackends; i++)
        config_backend_clear(&cfg->backends[i]);
    free(cfg->backends);
    config_tls_free(cfg);
    free(cfg->balance);
    free(cfg->hash_key_name);
    free(cfg->sticky.cookie);
    free(cfg->sticky.same_site);
    free(cfg->up.health_check_service);
    config_listen_free(&cfg->listen);
    free(cfg->admin_listen);
    free(cfg->admin_token);
    free(cfg->access_log_path);
    config_http_free(cfg);
    config_route_free(cfg);
    config_pool_free(cfg);
    config_net_free(cfg);
    free(cfg->resolvers.nameservers);
    free(cfg->path);
    free(cfg);
}
