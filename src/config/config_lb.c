/* config_lb — the balancing keys: balance, hashKey, hashLoadFactor, stickySession (weights and
 * thresholds are plain rows of config.c's table). Entry points in config_int.h; the tree, messages
 * and getters are config_yaml.h's.
 *
 * stickySession.secret (or the content of secretFile, read at load) keys the cookie values: the
 * SipHash key is the first 16 bytes of SHA-256("golb sticky cookie key v1" NUL secret), so every
 * golb given the same secret writes and accepts the same values (restarts, several instances).
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"
#include "base/util.h"

#define MAX_AGE_S 315360000u /* stickySession maxAge: at most ten years */

static const char *const strategies[] = {"roundRobin", "leastConnections", "random", "leastLatency",
                                         "hash"};

void config_lb_balance(struct config_yaml_load *l, char **balance,
                       const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    for (size_t i = 0; config_yaml_is_string(v) && i < ARRAY_LEN(strategies); i++)
        if (strcmp(v->str, strategies[i]) == 0) {
            free(*balance);
            *balance = strdup(strategies[i]);
            if (!*balance)
                config_yaml_oom(l);
            return;
        }
    config_yaml_error(
        l, v, "balance must be roundRobin, leastConnections, random, leastLatency or hash, got %s",
        config_yaml_describe(&q, v));
}

void config_lb_hash_key(struct config_yaml_load *l, enum config_hash_key *kind, char **name,
                        const struct config_yaml_node *v)
{
    static const struct {
        const char *prefix;
        enum config_hash_key kind;
    } kinds[] = {{"header:", CONFIG_HASH_HEADER},
                 {"cookie:", CONFIG_HASH_COOKIE},
                 {"query:", CONFIG_HASH_QUERY}};
    struct config_yaml_qbuf q;
    if (config_yaml_is_string(v) && strcmp(v->str, "clientAddress") == 0) {
        *kind = CONFIG_HASH_CLIENT;
        return;
    }
    if (config_yaml_is_string(v) && strcmp(v->str, "uri") == 0) {
        *kind = CONFIG_HASH_URI;
        return;
    }
    for (size_t i = 0; config_yaml_is_string(v) && i < ARRAY_LEN(kinds); i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (strncmp(v->str, kinds[i].prefix, pl) != 0)
            continue;
        const char *nm = v->str + pl;
        bool ok = kinds[i].kind == CONFIG_HASH_QUERY
                      ? *nm && config_yaml_visible_ascii(nm, strlen(nm)) &&
                            !strpbrk(nm, "&=#") && strlen(nm) <= 128
                      : config_yaml_http_token(nm, strlen(nm));
        if (!ok) {
            config_yaml_error(l, v, "hashKey: invalid name %s",
                              config_yaml_quote(&q, nm, strlen(nm)));
            return;
        }
        *kind = kinds[i].kind;
        free(*name);
        *name = strdup(nm);
        if (!*name)
            config_yaml_oom(l);
        return;
    }
    config_yaml_error(l, v,
                      "hashKey must be clientAddress, uri, \"header:NAME\", \"cookie:NAME\" or "
                      "\"query:NAME\", got %s",
                      config_yaml_describe(&q, v));
}

/* 0, or a decimal factor above 1 ("1.25"), exactly in thousandths (parsed as seconds are). */
void config_lb_factor(struct config_yaml_load *l, void *base, const struct config_yaml_key *k,
                      const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    uint32_t x = 0;
    int64_t zero;
    if (config_yaml_parse_int(v, &zero) == 0 && zero == 0) {
        config_yaml_store(base, k, 0);
        return;
    }
    if (config_yaml_parse_seconds(v, &x) == CONFIG_YAML_SEC_SYNTAX) {
        config_yaml_error(l, v, "%s must be a number (e.g. 1.25), got %s", k->name,
                          config_yaml_describe(&q, v));
        return;
    }
    if (config_yaml_parse_seconds(v, &x) != CONFIG_YAML_SEC_OK || x <= 1000 || x > k->max) {
        config_yaml_error(l, v, "%s must be 0 (off) or above 1 and at most %u, got %s", k->name,
                          k->max / 1000, config_yaml_number(&q, v));
        return;
    }
    config_yaml_store(base, k, x);
}

#define SECRET_MIN 16 /* bytes of stickySession.secret: "at least 16 characters" */

/* The SipHash key of the cookie values from the secret (see the top of this file). */
static int derive_key(const char *secret, size_t len, uint64_t key[2])
{
    static const char label[] = "golb sticky cookie key v1"; /* and its NUL: a separator */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, label, sizeof(label)) && EVP_DigestUpdate(ctx, secret, len) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 16;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    for (int i = 0; i < 2; i++) { /* little-endian: the same key on every machine */
        key[i] = 0;
        for (int j = 7; j >= 0; j--)
            key[i] = key[i] << 8 | md[8 * i + j];
    }
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

/* secret's value (v) or secretFile's content (file true) into s->key. */
static void set_secret(struct config_yaml_load *l, struct config_sticky *s,
                       const struct config_yaml_node *v, bool file)
{
    struct config_yaml_qbuf q;
    char *from_file = NULL;
    const char *secret;
    if (file) {
        if (!(secret = from_file = config_yaml_read_secret_file(l, "stickySession.secretFile", v)))
            return;
    } else if (!config_yaml_is_string(v)) {
        config_yaml_error(l, v, "stickySession.secret must be a string, got %s",
                          v->kind == CONFIG_YAML_SCALAR && !config_yaml_is_null(v)
                              ? "a string with a NUL byte"
                              : config_yaml_describe(&q, v));
        return;
    } else if (!config_yaml_visible_ascii(v->str, v->len)) { /* never shown: it is a secret */
        config_yaml_error(l, v,
                          "stickySession.secret must hold visible ASCII characters only (no "
                          "spaces or control characters)");
        return;
    } else {
        secret = v->str;
    }
    size_t len = strlen(secret);
    if (len < SECRET_MIN && file)
        config_yaml_error(l, v,
                          "stickySession.secretFile: the secret must be at least %d characters, "
                          "the file holds %zu",
                          SECRET_MIN, len);
    else if (len < SECRET_MIN)
        config_yaml_error(l, v, "stickySession.secret must be at least %d characters, got %zu",
                          SECRET_MIN, len);
    else if (derive_key(secret, len, s->key) != 0)
        config_yaml_oom(l);
    else
        s->keyed = true;
    if (from_file) {
        OPENSSL_cleanse(from_file, len);
        free(from_file);
    }
}

void config_lb_sticky(struct config_yaml_load *l, struct config_sticky *s,
                      const struct config_yaml_node *v)
{
    static const char *const names[] = {"cookie",   "maxAge", "secure",    "httpOnly",
                                        "sameSite", "secret", "secretFile"};
    const struct config_yaml_node *seen[ARRAY_LEN(names)] = {0}, *val[ARRAY_LEN(names)] = {0},
                                  *cookie = NULL;
    struct config_yaml_qbuf q;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "stickySession must be a mapping with \"cookie\", got %s",
                          config_yaml_describe(&q, v));
        return;
    }
    s->http_only = true;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        int j = config_yaml_key_index(l, k, names, ARRAY_LEN(names), seen, " in stickySession");
        if (j < 0 || x->kind == CONFIG_YAML_BAD)
            continue;
        val[j] = x;
        if (j == 0) {
            cookie = x;
            if (!config_yaml_is_string(x) || !config_yaml_http_token(x->str, x->len))
                config_yaml_error(l, x, "stickySession cookie must be a cookie name, got %s",
                                  config_yaml_describe(&q, x));
            else if (!(s->cookie = strdup(x->str)))
                config_yaml_oom(l);
        } else if (j == 1) {
            uint64_t ms; /* Max-Age is whole seconds: a fraction rounds up (0.5 → 1) */
            if (config_yaml_get_seconds(l, "maxAge", x, 0, MAX_AGE_S * 1000ull, &ms) == 0)
                s->max_age = (uint32_t)((ms + 999) / 1000);
        } else if (j == 2) {
            (void)config_yaml_get_bool(l, "secure", x, &s->secure);
        } else if (j == 3) {
            (void)config_yaml_get_bool(l, "httpOnly", x, &s->http_only);
        } else if (j == 5 || j == 6) {
            /* read once both are known: they are mutually exclusive */
        } else if (config_yaml_is_string(x) &&
                   (strcmp(x->str, "Strict") == 0 || strcmp(x->str, "Lax") == 0 ||
                    strcmp(x->str, "None") == 0)) {
            if (!(s->same_site = strdup(x->str)))
                config_yaml_oom(l);
        } else {
            config_yaml_error(l, x, "sameSite must be Strict, Lax or None, got %s",
                              config_yaml_describe(&q, x));
        }
    }
    const struct config_yaml_node *secret_k = seen[5], *file_k = seen[6];
    if (secret_k && file_k) {
        bool file_later = file_k->line > secret_k->line ||
                          (file_k->line == secret_k->line && file_k->col > secret_k->col);
        config_yaml_error(l, file_later ? file_k : secret_k,
                          "stickySession.secret and stickySession.secretFile are mutually "
                          "exclusive: give one");
    } else if (val[5] || val[6]) {
        set_secret(l, s, val[5] ? val[5] : val[6], !val[5]);
    }
    if (!cookie)
        config_yaml_error(l, v, "stickySession is missing \"cookie\"");
}
