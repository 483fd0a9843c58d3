/* config_lb — the balancing keys: balance, hashKey, hashLoadFactor, stickySession (weights and
 * thresholds are plain rows of config.c's table). Part of the config module, behind config_int.h.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_int.h"
#include "base/util.h"

static const char *const strategies[] = {"roundRobin", "leastConnections", "random", "leastLatency",
                                         "hash"};

/* RFC 9110 tchar: header and cookie names. */
bool http_token(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] > 0x20 && s[i] < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", s[i])))
            return false;
    return true;
}

void set_balance(struct load *l, struct config *cfg, const struct node *v)
{
    struct qbuf q;
    for (size_t i = 0; is_string(v) && i < ARRAY_LEN(strategies); i++)
        if (strcmp(v->str, strategies[i]) == 0) {
            cfg->balance = strdup(strategies[i]);
            if (!cfg->balance)
                load_oom(l);
            return;
        }
    error_at(l, v,
             "balance must be roundRobin, leastConnections, random, leastLatency or hash, got %s",
             describe(&q, v));
}

void set_hash_key(struct load *l, struct config *cfg, const struct node *v)
{
    static const struct {
        const char *prefix;
        enum config_hash_key kind;
    } kinds[] = {{"header:", CONFIG_HASH_HEADER},
                 {"cookie:", CONFIG_HASH_COOKIE},
                 {"query:", CONFIG_HASH_QUERY}};
    struct qbuf q;
    if (is_string(v) && strcmp(v->str, "clientAddress") == 0) {
        cfg->hash_key = CONFIG_HASH_CLIENT;
        return;
    }
    if (is_string(v) && strcmp(v->str, "uri") == 0) {
        cfg->hash_key = CONFIG_HASH_URI;
        return;
    }
    for (size_t i = 0; is_string(v) && i < ARRAY_LEN(kinds); i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (strncmp(v->str, kinds[i].prefix, pl) != 0)
            continue;
        const char *name = v->str + pl;
        bool ok = kinds[i].kind == CONFIG_HASH_QUERY
                      ? *name && visible_ascii(name, strlen(name)) && !strpbrk(name, "&=#") &&
                            strlen(name) <= 128
                      : http_token(name, strlen(name));
        if (!ok) {
            error_at(l, v, "hashKey: invalid name %s", quote(&q, name, strlen(name)));
            return;
        }
        cfg->hash_key = kinds[i].kind;
        free(cfg->hash_key_name);
        cfg->hash_key_name = strdup(name);
        if (!cfg->hash_key_name)
            load_oom(l);
        return;
    }
    error_at(l, v,
             "hashKey must be clientAddress, uri, \"header:NAME\", \"cookie:NAME\" or "
             "\"query:NAME\", got %s",
             describe(&q, v));
}

/* 0, or a decimal factor above 1 ("1.25"), exactly in thousandths (parsed as seconds are). */
void set_factor(struct load *l, struct config *cfg, const struct key *k, const struct node *v)
{
    struct qbuf q;
    uint32_t x = 0;
    int64_t zero;
    if (parse_int(v, &zero) == 0 && zero == 0) {
        store(cfg, k, 0);
        return;
    }
    if (parse_seconds(v, &x) == SEC_SYNTAX) {
        error_at(l, v, "%s must be a number (e.g. 1.25), got %s", k->name, describe(&q, v));
        return;
    }
    if (parse_seconds(v, &x) != SEC_OK || x <= 1000 || x > k->max) {
        error_at(l, v, "%s must be 0 (off) or above 1 and at most %u, got %s", k->name,
                 k->max / 1000, number(&q, v));
        return;
    }
    store(cfg, k, x);
}

int get_bool(struct load *l, const char *name, const struct node *v, bool *out)
{
    struct qbuf q;
    if (is_scalar(v) && !v->quoted &&
        (strcmp(v->str, "true") == 0 || strcmp(v->str, "false") == 0)) {
        *out = v->str[0] == 't';
        return 0;
    }
    error_at(l, v, "%s must be true or false, got %s", name, describe(&q, v));
    return -1;
}

void set_sticky(struct load *l, struct config *cfg, const struct node *v)
{
    static const char *const names[] = {"cookie", "maxAge", "secure", "httpOnly", "sameSite"};
    static const struct key max_age = {"maxAge", KT_UINT, NO_FIELD, 0, 315360000, 0};
    const struct node *seen[ARRAY_LEN(names)] = {0}, *cookie = NULL;
    struct config_sticky *s = &cfg->sticky;
    struct qbuf q;
    if (v->kind != NODE_MAPPING) {
        error_at(l, v, "stickySession must be a mapping with \"cookie\", got %s", describe(&q, v));
        return;
    }
    s->http_only = true;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct node *k = v->kids[i], *x = v->kids[i + 1];
        if (!key_ok(l, k))
            continue;
        size_t j = 0;
        while (j < ARRAY_LEN(names) && !key_is(k, names[j]))
            j++;
        if (j == ARRAY_LEN(names)) {
            unknown_key(l, k, names, ARRAY_LEN(names), " in stickySession");
            continue;
        }
        if (!key_first(l, k, &seen[j]) || x->kind == NODE_BAD)
            continue;
        if (j == 0) {
            cookie = x;
            if (!is_string(x) || !http_token(x->str, x->len))
                error_at(l, x, "stickySession cookie must be a cookie name, got %s",
                         describe(&q, x));
            else if (!(s->cookie = strdup(x->str)))
                load_oom(l);
        } else if (j == 1) {
            (void)get_int(l, &max_age, x, &s->max_age);
        } else if (j == 2) {
            (void)get_bool(l, "secure", x, &s->secure);
        } else if (j == 3) {
            (void)get_bool(l, "httpOnly", x, &s->http_only);
        } else if (is_string(x) && (strcmp(x->str, "Strict") == 0 || strcmp(x->str, "Lax") == 0 ||
                                    strcmp(x->str, "None") == 0)) {
            if (!(s->same_site = strdup(x->str)))
                load_oom(l);
        } else {
            error_at(l, x, "sameSite must be Strict, Lax or None, got %s", describe(&q, x));
        }
    }
    if (!cookie)
        error_at(l, v, "stickySession is missing \"cookie\"");
}
