/* config_backend — the `backends` sequence of the configuration: each entry a URL (the original
 * format: scheme://host:port is the upstream, the path its health check) or a mapping with `url`,
 * `healthPath`, `weight` and the TLS keys (config_tls.c), checked and resolved at load; two entries
 * with the same address are an error. Entry points in config_int.h; the tree, messages and getters
 * are config_yaml.h's.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"
#include "base/util.h"

#define URL_MAX 2048 /* backend URLs longer than this are rejected */


void config_backend_clear(struct config_backend *b)
{
    config_tls_backend_clear(b);
    free(b->url);
    free(b->host);
    free(b->name);
    free(b->health_path);
    free(b->up.health_check_service);
    memset(b, 0, sizeof(*b));
}

void config_backend_key(const struct config_backend *cb, char *out, size_t cap)
{
    if (!cb->host) { /* built by hand (tests): the name is host:port */
        snprintf(out, cap, "%s://%s", cb->tls ? "https" : "http", cb->name ? cb->name : "");
        return;
    }
    bool v6 = strchr(cb->host, ':') != NULL;
    snprintf(out, cap, "%s://%s%s%s:%u", cb->tls ? "https" : "http", v6 ? "[" : "", cb->host,
             v6 ? "]" : "", cb->port);
}

/* Splits and checks an http URL; fills host, port, health path (when `health` is NULL), url.
 * Returns 0 or -1 after reporting at `n`. */
static int parse_url(struct config_yaml_load *l, const struct config_yaml_node *n,
                     struct config_backend *b, const char *health)
{
    struct config_yaml_qbuf q, q2;
    const char *u = n->str, *end = n->str + n->len;
#define BAD_URL(...)                                                                               \
    do {                                                                                           \
        char why_[160];                                                                            \
        snprintf(why_, sizeof(why_), __VA_ARGS__);                                                 \
        config_yaml_error(l, n, "invalid backend URL %s: %s", config_yaml_quote(&q, u, n->len),    \
                          why_);                                                                   \
        return -1;                                                                                 \
    } while (0)

    if (n->len > URL_MAX)
        BAD_URL("longer than %d bytes", URL_MAX);
    if (!config_yaml_visible_ascii(u, n->len))
        BAD_URL("spaces and control characters are not allowed");
    const char *sep = strstr(u, "://");
    if (!sep)
        BAD_URL("it must start with \"http://\" or \"https://\"");
    size_t slen = (size_t)(sep - u);
    b->tls = slen == 5 && strncasecmp(u, "https", 5) == 0;
    if (!b->tls && (slen != 4 || strncasecmp(u, "http", 4) != 0)) {
        if (slen == 0 || slen > 32)
            BAD_URL("it must start with \"http://\" or \"https://\"");
        BAD_URL("unsupported scheme %s (only http and https are supported)",
                config_yaml_quote(&q2, u, slen));
    }
    if (memchr(u, '#', n->len))
        BAD_URL("fragments (\"#...\") are not allowed");
    const char *auth = sep + 3, *aend = auth;
    while (aend < end && *aend != '/' && *aend != '?')
        aend++;
    if (memchr(auth, '@', (size_t)(aend - auth)))
        BAD_URL("user information (\"user@\") is not allowed");

    const char *h = auth, *hend, *portp = NULL;
    bool v6 = false;
    if (h < aend && *h == '[') {
        const char *rb = memchr(h, ']', (size_t)(aend - h));
        if (!rb)
            BAD_URL("missing \"]\" after the IPv6 address");
        v6 = true;
        h++;
        hend = rb;
        if (rb + 1 < aend) {
            if (rb[1] != ':')
                BAD_URL("unexpected %s after \"]\"",
                        config_yaml_quote(&q2, rb + 1, (size_t)(aend - rb - 1)));
            portp = rb + 2;
        }
    } else {
        hend = memchr(h, ':', (size_t)(aend - h));
        if (hend) {
            portp = hend + 1;
            if (memchr(portp, ':', (size_t)(aend - portp)))
                BAD_URL("IPv6 addresses must be in brackets, e.g. \"http://[::1]:8081/\"");
        } else {
            hend = aend;
        }
    }
    if (hend == h)
        BAD_URL("empty host");
    if (!v6) {
        for (const char *c = h; c < hend; c++)
            if (!config_yaml_host_char(*c))
                BAD_URL("invalid host %s", config_yaml_quote(&q2, h, (size_t)(hend - h)));
    }
    b->port = b->tls ? 443 : 80;
    if (portp && !config_yaml_parse_port(portp, (size_t)(aend - portp), 1, 65535, &b->port))
        BAD_URL("invalid port %s (must be 1..65535)",
                config_yaml_quote(&q2, portp, (size_t)(aend - portp)));
    if ((size_t)(hend - h) > 253)
        BAD_URL("invalid host %s", config_yaml_quote(&q2, h, (size_t)(hend - h)));
#undef BAD_URL

    b->host = strndup(h, (size_t)(hend - h));
    b->url = strdup(u);
    if (health)
        b->health_path = strdup(health);
    else if (aend == end)
        b->health_path = strdup("/");
    else if (*aend != '?')
        b->health_path = strdup(aend);
    else if (asprintf(&b->health_path, "/%s", aend) == -1)
        b->health_path = NULL; /* undefined after a failure: out of memory, reported below */
    if (!b->host || !b->url || !b->health_path ||
        asprintf(&b->name, "%s%s%s:%u", v6 ? "[" : "", b->host, v6 ? "]" : "", b->port) == -1) {
        b->name = NULL;
        config_yaml_oom(l);
        return -1;
    }

    if (b->resolve != CONFIG_RESOLVE_NONE) { /* looked up at run time (upstream/dns.c) */
        if (v6) {
            config_yaml_error(l, n,
                              "invalid backend URL %s: resolve needs a host name, not an "
                              "address",
                              config_yaml_quote(&q, u, n->len));
            return -1;
        }
        if (b->resolve == CONFIG_RESOLVE_SRV && portp) {
            config_yaml_error(l, n,
                              "invalid backend URL %s: with resolve: srv the ports come "
                              "from the SRV records, the URL must not give one",
                              config_yaml_quote(&q, u, n->len));
            return -1;
        }
        return 0;
    }
    int rc = config_yaml_resolve(b->host, b->port, v6, &b->addr, &b->addrlen);
    if (rc == 0 && v6 && b->addr.ss_family != AF_INET6)
        rc = EAI_NONAME;
    if (rc != 0) {
        if (v6)
            config_yaml_error(l, n, "invalid backend URL %s: invalid IPv6 address %s",
                              config_yaml_quote(&q, u, n->len),
                              config_yaml_quote_with(&q2, "", h - 1, (size_t)(hend - h) + 2));
        else
            config_yaml_error(l, n, "cannot resolve backend host %s: %s",
                              config_yaml_quote(&q, b->host, strlen(b->host)),
                              config_yaml_resolve_error(rc));
        return -1;
    }
    return 0;
}

#define UP_FIRST 10 /* names[] of parse_backend: the upstream keys a pool also has */
#define UP_NKEYS 4

/* Which of the upstream keys k is (0..UP_NKEYS-1), or -1. */
static int up_index(const struct config_yaml_node *k, const char *const *names)
{
    for (int i = 0; i < UP_NKEYS; i++)
        if (config_yaml_key_is(k, names[UP_FIRST + i]))
            return i;
    return -1;
}

/* One backends[] entry: a URL string or {url, healthPath}. Returns 0 or -1 after reporting. */
static int parse_backend(struct config_yaml_load *l, const struct config_yaml_node *e,
                         struct config_backend *b)
{
    static const char *const names[] = {
        "url",       "healthPath",     "weight",        "serverName",        "caFile",
        "tlsVerify", "clientCertFile", "clientKeyFile", "sendProxyProtocol", "resolve",
        "protocol",  "healthCheck",    "healthCheckService", "maxStreamsPerConnection"};
    _Static_assert(ARRAY_LEN(names) == UP_FIRST + UP_NKEYS, "upstream keys last");
    struct config_yaml_qbuf q;
    const struct config_yaml_node *url = NULL, *hp = NULL, *url_k = NULL, *hp_k = NULL, *w_k = NULL,
                                  *pp_k = NULL, *res_k = NULL;
    const struct config_yaml_node *up_k[UP_NKEYS] = {0};
    int rc = -1, up;
    bool w_ok = true, res_bad = false;

    if (e->kind == CONFIG_YAML_BAD)
        return -1;
    b->weight = 1;
    b->line = e->line;
    b->col = e->col;
    b->tls_verify = true;
    bool tls_keys_ok = true;
    if (config_yaml_is_string(e)) {
        url = e;
    } else if (e->kind == CONFIG_YAML_MAPPING) {
        for (size_t i = 0; i + 1 < e->nkids; i += 2) {
            const struct config_yaml_node *k = e->kids[i], *v = e->kids[i + 1];
            if (!config_yaml_key_ok(l, k))
                continue;
            if (config_yaml_key_is(k, "url")) {
                if (config_yaml_key_first(l, k, &url_k))
                    url = v;
            } else if (config_yaml_key_is(k, "healthPath")) {
                if (config_yaml_key_first(l, k, &hp_k))
                    hp = v;
            } else if (config_tls_backend_key(l, k, v, b)) {
                continue;
            } else if ((up = up_index(k, names)) >= 0) {
                if (config_yaml_key_first(l, k, &up_k[up])) {
                    int bit = config_pool_upstream_key(l, k, v, &b->up);
                    b->up_own |= (uint8_t)(bit > 0 ? bit : 0);
                    w_ok &= bit > 0 || v->kind == CONFIG_YAML_BAD;
                }
            } else if (config_yaml_key_is(k, "weight")) {
                static const struct config_yaml_key wk = {
                    "weight", CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, 0, 1000, 1};
                if (config_yaml_key_first(l, k, &w_k) && v->kind != CONFIG_YAML_BAD)
                    w_ok = config_yaml_get_int(l, &wk, v, &b->weight) == 0;
            } else if (config_yaml_key_is(k, "resolve")) {
                static const struct config_yaml_key rk = {
                    "resolve", CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, 0, 0, 0};
                static const char *const c[] = {"none", "a", "srv", NULL};
                if (config_yaml_key_first(l, k, &res_k) && v->kind != CONFIG_YAML_BAD) {
                    int ch = config_yaml_get_choice(l, &rk, v, c, "none, a, srv");
                    if (ch >= 0)
                        b->resolve = (uint8_t)ch;
                    else
                        res_bad = true; /* the URL is not looked up either */
                }
            } else if (config_yaml_key_is(k, "sendProxyProtocol")) {
                static const struct config_yaml_key pk = {
                    "sendProxyProtocol", CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, 0, 0, 0};
                static const char *const c[] = {"off", "v1", "v2", NULL};
                if (config_yaml_key_first(l, k, &pp_k) && v->kind != CONFIG_YAML_BAD) {
                    int ch = config_yaml_get_choice(l, &pk, v, c, "off, v1, v2");
                    if (ch >= 0)
                        b->send_proxy_protocol = (uint8_t)ch;
                    else
                        w_ok = false;
                }
            } else {
                config_yaml_unknown_key(l, k, names, ARRAY_LEN(names), " in backend");
            }
        }
        if (!url) {
            config_yaml_error(l, e, "backend is missing \"url\"");
            return -1;
        }
        if (url->kind == CONFIG_YAML_BAD)
            return -1;
        if (!config_yaml_is_string(url)) {
            config_yaml_error(l, url, "url must be a string, got %s",
                              config_yaml_describe(&q, url));
            url = NULL;
        }
    } else {
        config_yaml_error(l, e, "backend must be a URL or a mapping with \"url\", got %s",
                          config_yaml_describe(&q, e));
        return -1;
    }

    bool hp_ok = true;
    if (hp && hp->kind != CONFIG_YAML_BAD) {
        if (!config_yaml_is_string(hp) || hp->str[0] != '/') {
            config_yaml_error(l, hp, "healthPath must be a path starting with \"/\", got %s",
                              config_yaml_describe(&q, hp));
            hp_ok = false;
        } else if (!config_yaml_visible_ascii(hp->str, hp->len) || hp->len > URL_MAX) {
            config_yaml_error(l, hp, "healthPath must not contain spaces or control characters");
            hp_ok = false;
        }
    }
    if (res_bad)
        w_ok = false;
    else if (url)
        rc = parse_url(l, url, b, hp && hp_ok && hp->kind != CONFIG_YAML_BAD ? hp->str : NULL);
    if (rc == 0)
        tls_keys_ok = config_tls_backend_finish(l, e, b) == 0;
    if (rc == -1 || !hp_ok || !w_ok || !tls_keys_ok || (hp && hp->kind == CONFIG_YAML_BAD)) {
        config_backend_clear(b);
        return -1;
    }
    return 0;
}

void config_backend_section(struct config_yaml_load *l, struct config_backend **out, int *n,
                            const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (v->kind == CONFIG_YAML_BAD)
        return;
    if (v->kind != CONFIG_YAML_SEQUENCE) {
        config_yaml_error(l, v, "backends must be a sequence of backends, got %s",
                          config_yaml_describe(&q, v));
        return;
    }
    if (v->nkids == 0) {
        config_yaml_error(l, v, "backends must not be empty");
        return;
    }
    struct config_backend *bs = calloc(v->nkids, sizeof(*bs));
    *out = bs;
    *n = 0;
    if (!bs) {
        config_yaml_oom(l);
        return;
    }
    for (size_t i = 0; i < v->nkids; i++) {
        struct config_backend b = {0};
        if (parse_backend(l, v->kids[i], &b) == -1)
            continue;
        int dup = -1;
        char key[300], key2[300];
        if (b.resolve)
            config_backend_key(&b, key, sizeof(key));
        for (int j = 0; j < *n && dup == -1; j++) {
            if (!b.resolve && !bs[j].resolve && config_yaml_same_addr(&bs[j].addr, &b.addr))
                dup = j;
            if (b.resolve == bs[j].resolve && b.resolve) {
                config_backend_key(&bs[j], key2, sizeof(key2));
                if (strcmp(key, key2) == 0)
                    dup = j;
            }
        }
        if (dup != -1) {
            config_yaml_error(
                l, v->kids[i], "duplicate backend %s (same address as the backend at line %d)",
                config_yaml_quote(&q, b.name, strlen(b.name)), bs[dup].line);
            config_backend_clear(&b);
            continue;
        }
        bs[(*n)++] = b;
    }
}

