/* config_route — `routes` and their checks (config.h struct config_route; entry points in
 * config_int.h; the tree, messages and getters are config_yaml.h's).
 *
 *   routes:                       cfg->routes[]: file order, paths normalised (http/path.h),
 *     - match: {host, path, ...}  hosts lower-cased, regexes compiled once to check them,
 *       pool: api                 pool names resolved to indices (config_pool.c read them first)
 *
 * Read after the top-level walk and the pools (config.c cross_check). Every problem is reported
 * at its node and the walk goes on; a route with an error is left out of the checks that compare
 * routes (the warning for a route an earlier one shadows).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"
#include "http/path.h"
#include "base/cidr.h"
#include "base/util.h"

#define NAME_MAX_LEN 64      /* route names */
#define BODY_MAX (64 * 1024) /* respond.body */
#define RATE_MAX 1000000u    /* rateLimit.requestsPerSecond */

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */

static char *dup_n(struct config_yaml_load *l, const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d)
        config_yaml_oom(l);
    return d;
}

/* A field value golb can send: no control character but HTAB (RFC 9110 §5.5). */
static bool field_value_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* Frees a NULL-terminated list of strings. */
static void free_list(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void free_fields(struct config_route_field *f, int n)
{
    for (int i = 0; i < n; i++) {
        free(f[i].name);
        free(f[i].value);
    }
    free(f);
}

/* ---------------------------------------------------------------------------------------------
 * Routes: values
 */

/* match.host: NAME, "*." NAME (one or more labels before NAME) or "[IPv6]"; lower-cased, a
 * trailing dot dropped. NULL after reporting. */
static char *parse_host(struct config_yaml_load *l, const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    const char *s = v->str;
    size_t n = v->len;
    bool ok = config_yaml_is_string(v);
    if (ok && n && s[n - 1] == '.')
        n--;
    ok = ok && n > 0 && n <= 253;
    if (ok && s[0] == '[') {
        char ip[INET6_ADDRSTRLEN + 1];
        struct in6_addr a;
        ok = n >= 3 && s[n - 1] == ']' && n - 2 < sizeof(ip);
        if (ok) {
            memcpy(ip, s + 1, n - 2);
            ip[n - 2] = '\0';
            ok = inet_pton(AF_INET6, ip, &a) == 1;
        }
    } else if (ok) {
        size_t i = n > 2 && s[0] == '*' && s[1] == '.' ? 2 : 0;
        bool dot = true; /* at the start of a label */
        for (; ok && i < n; i++) {
            if (s[i] == '.') {
                ok = !dot;
                dot = true;
            } else {
                ok = config_yaml_host_char(s[i]);
                dot = false;
            }
        }
        ok = ok && !dot;
    }
    if (!ok) {
        config_yaml_error(l, v,
                          "match.host must be a host name, \"*.DOMAIN\" or \"[IPv6]\" (without a "
                          "port), got %s",
                          config_yaml_describe(&q, v));
        return NULL;
    }
    char *h = dup_n(l, s, n);
    for (size_t i = 0; h && i < n; i++)
        if (h[i] >= 'A' && h[i] <= 'Z')
            h[i] = (char)(h[i] + 32);
    return h;
}

/* A path value (match.path, match.pathPrefix, rewritePrefix, redirect.path without its query) in
 * its normal form, as requests will be matched. NULL after reporting. */
static char *parse_path(struct config_yaml_load *l, const struct config *cfg, const char *key,
                        const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (!config_yaml_is_string(v) || v->str[0] != '/' ||
        !config_yaml_visible_ascii(v->str, v->len) || memchr(v->str, '?', v->len)) {
        config_yaml_error(l, v, "%s must be a path starting with \"/\" (no query), got %s", key,
                          config_yaml_describe(&q, v));
        return NULL;
    }
    char *out = malloc(v->len + 1);
    size_t n;
    if (!out) {
        config_yaml_oom(l);
        return NULL;
    }
    enum path_result rc = path_normalize(
        v->str, v->len, cfg->encoded_slash_reject ? PATH_REJECT_ENCODED_SLASH : 0, out, &n);
    if (rc != PATH_OK) {
        config_yaml_error(l, v, "%s %s is not a valid path: %s", key,
                          config_yaml_quote(&q, v->str, v->len), path_result_str(rc));
        free(out);
        return NULL;
    }
    out[n] = '\0';
    return out;
}

/* match.pathRegex: compiled once here to report PCRE2's own message and offset. */
static char *parse_regex(struct config_yaml_load *l, const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (!config_yaml_is_string(v) || v->len == 0) {
        config_yaml_error(l, v, "match.pathRegex must be a regular expression, got %s",
                          config_yaml_describe(&q, v));
        return NULL;
    }
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)v->str, v->len, 0, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(err, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", err);
        config_yaml_error(l, v, "match.pathRegex %s is invalid at offset %zu: %s",
                          config_yaml_quote(&q, v->str, v->len), (size_t)off, (char *)msg);
        return NULL;
    }
    pcre2_code_free(re);
    return dup_n(l, v->str, v->len);
}

/* A sequence of tokens (methods, header names) into a NULL-terminated list; `what` names the key
 * in messages, `example` shows the form. NULL after reporting (or for an empty list: *empty). */
static char **parse_tokens(struct config_yaml_load *l, const char *what, const char *example,
                           const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (v->kind != CONFIG_YAML_SEQUENCE) {
        config_yaml_error(l, v, "%s must be a sequence of %s, got %s", what, example,
                          config_yaml_describe(&q, v));
        return NULL;
    }
    char **list = calloc(v->nkids + 1, sizeof(*list));
    if (!list) {
        config_yaml_oom(l);
        return NULL;
    }
    size_t n = 0;
    bool ok = true;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct config_yaml_node *e = v->kids[i];
        if (e->kind == CONFIG_YAML_BAD) {
            ok = false;
            continue;
        }
        if (!config_yaml_is_string(e) || !config_yaml_http_token(e->str, e->len)) {
            config_yaml_error(l, e, "%s entry must be a token such as %s, got %s", what, example,
                              config_yaml_describe(&q, e));
            ok = false;
            continue;
        }
        if (!(list[n++] = dup_n(l, e->str, e->len)))
            ok = false;
    }
    if (!ok) {
        free_list(list);
        return NULL;
    }
    return list;
}

/* A header golb owns or that frames the message: a filter may not set or remove it. Returns
 * the reason, or NULL when the header is free to change. `request`: a request filter. */
static const char *reserved_header(const struct config *cfg, const char *name, bool request,
                                   bool removing)
{
    static const struct {
        const char *name;
        unsigned char request_only, remove_only;
        const char *why;
    } t[] = {
        {"content-length", 0, 0, "it frames the message"},
        {"transfer-encoding", 0, 0, "it frames the message"},
        {"connection", 0, 0, "it is hop-by-hop"},
        {"keep-alive", 0, 0, "it is hop-by-hop"},
        {"proxy-connection", 0, 0, "it is hop-by-hop"},
        {"te", 0, 0, "it is hop-by-hop"},
        {"trailer", 0, 0, "it is hop-by-hop"},
        {"upgrade", 0, 0, "it is hop-by-hop"},
        {"x-forwarded-for", 1, 0, "golb sets it"},
        {"x-forwarded-proto", 1, 0, "golb sets it"},
        {"x-forwarded-host", 1, 0, "golb sets it"},
        {"x-request-id", 1, 0, "golb sets it"},
        {"host", 1, 1, "HTTP/1.1 requires it"},
    };
    for (size_t i = 0; i < ARRAY_LEN(t); i++)
        if ((request || !t[i].request_only) && (removing || !t[i].remove_only) &&
            strcasecmp(name, t[i].name) == 0)
            return t[i].why;
    if (request && cfg->tls && cfg->tls->client_subject_header &&
        strcasecmp(name, cfg->tls->client_subject_header) == 0)
        return "golb sets it (tls.clientSubjectHeader)";
    return NULL;
}

/* A mapping of header names to values: match.headers (star: "*" means present), or
 * setRequestHeaders / setResponseHeaders (reserved names refused). -1 after reporting. */
static int parse_fields(struct config_yaml_load *l, const struct config *cfg, const char *key,
                        const struct config_yaml_node *v, bool star, int set,
                        struct config_route_field **out, int *nout)
{
    struct config_yaml_qbuf q, q2;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "%s must be a mapping of header names to values, got %s", key,
                          config_yaml_describe(&q, v));
        return -1;
    }
    struct config_route_field *f = calloc(v->nkids / 2 + 1, sizeof(*f));
    if (!f) {
        config_yaml_oom(l);
        return -1;
    }
    int n = 0, rc = 0;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        if (!config_yaml_key_ok(l, k) || x->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        if (!config_yaml_http_token(k->str, k->len)) {
            config_yaml_error(l, k, "%s: invalid header name %s", key,
                              config_yaml_quote(&q, k->str, k->len));
            rc = -1;
            continue;
        }
        const char *why = set ? reserved_header(cfg, k->str, set == 1, false) : NULL;
        if (why) {
            config_yaml_error(l, k, "%s cannot set %s: %s", key,
                              config_yaml_quote(&q, k->str, k->len), why);
            rc = -1;
            continue;
        }
        int dup = -1;
        for (size_t j = 0; j < i && dup == -1; j += 2)
            if (strcasecmp(v->kids[j]->str ? v->kids[j]->str : "", k->str) == 0)
                dup = v->kids[j]->line;
        if (dup != -1) {
            config_yaml_error(l, k, "%s: header %s is given twice (first at line %d)", key,
                              config_yaml_quote(&q, k->str, k->len), dup);
            rc = -1;
            continue;
        }
        if (!config_yaml_is_string(x) || !field_value_ok(x->str, x->len)) {
            config_yaml_error(l, x,
                              "%s: the value of %s must be a string without control "
                              "characters, got %s",
                              key, config_yaml_quote(&q, k->str, k->len),
                              config_yaml_describe(&q2, x));
            rc = -1;
            continue;
        }
        f[n].name = dup_n(l, k->str, k->len);
        f[n].value = star && x->len == 1 && x->str[0] == '*' ? NULL : dup_n(l, x->str, x->len);
        n++;
    }
    *out = f;
    *nout = n;
    return rc;
}

/* match.query: parameter name → exact raw value. -1 after reporting. */
static int parse_query(struct config_yaml_load *l, const struct config_yaml_node *v,
                       struct config_route_field **out, int *nout)
{
    struct config_yaml_qbuf q, q2;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v,
                          "match.query must be a mapping of parameter names to values, "
                          "got %s",
                          config_yaml_describe(&q, v));
        return -1;
    }
    struct config_route_field *f = calloc(v->nkids / 2 + 1, sizeof(*f));
    if (!f) {
        config_yaml_oom(l);
        return -1;
    }
    int n = 0, rc = 0;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        if (!config_yaml_key_ok(l, k) || x->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        if (!config_yaml_visible_ascii(k->str, k->len) || strpbrk(k->str, "&=#") || k->len > 128) {
            config_yaml_error(l, k, "match.query: invalid parameter name %s",
                              config_yaml_quote(&q, k->str, k->len));
            rc = -1;
            continue;
        }
        if (!config_yaml_is_string(x) || !config_yaml_visible_ascii(x->str, x->len) ||
            strpbrk(x->str, "&#")) {
            config_yaml_error(l, x,
                              "match.query: the value of %s must be a string of visible "
                              "characters without \"&\" and \"#\" (as sent), got %s",
                              config_yaml_quote(&q, k->str, k->len), config_yaml_describe(&q2, x));
            rc = -1;
            continue;
        }
        f[n].name = dup_n(l, k->str, k->len);
        f[n].value = dup_n(l, x->str, x->len);
        n++;
    }
    *out = f;
    *nout = n;
    return rc;
}

/* A sequence of addresses and CIDR ranges (allow, deny). -1 after reporting. */
static int parse_cidrs(struct config_yaml_load *l, const char *key,
                       const struct config_yaml_node *v, struct cidr **out, int *nout)
{
    int rc = config_net_cidr_list(l, key, v, out, nout);
    if (rc == 0 && v->nkids == 0 && strcmp(key, "allow") == 0)
        config_yaml_warning(l, v, "allow: [] lets no client through (every request gets 403)");
    return rc;
}

/* A positive decimal with at most three fraction digits, in thousandths (requestsPerSecond). */
static bool parse_milli(const struct config_yaml_node *v, uint64_t *out)
{
    if (!config_yaml_is_scalar(v) || v->quoted || config_yaml_is_null(v))
        return false;
    const char *s = v->str, *end = v->str + v->len;
    uint64_t whole = 0, frac = 0;
    int fd = 0;
    if (s == end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] != '.'))
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++)
        if ((whole = whole * 10 + (uint64_t)(*s - '0')) > 100000000)
            return false;
    if (s < end && *s == '.') {
        for (s++; s < end && *s >= '0' && *s <= '9' && fd < 3; s++, fd++)
            frac = frac * 10 + (uint64_t)(*s - '0');
        if (fd == 0)
            return false;
    }
    if (s != end)
        return false;
    while (fd++ < 3)
        frac *= 10;
    *out = whole * 1000 + frac;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Routes: sections of a route
 */

/* match: the conditions. -1 after reporting. */
static int parse_match(struct config_yaml_load *l, const struct config *cfg,
                       const struct config_yaml_node *v, struct config_route *r)
{
    static const char *const names[] = {"host",    "path",    "pathPrefix", "pathRegex",
                                        "methods", "headers", "query"};
    const struct config_yaml_node *seen[ARRAY_LEN(names)] = {0};
    struct config_yaml_qbuf q;
    int rc = 0;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v,
                          "match must be a mapping of conditions (host, path, pathPrefix, "
                          "pathRegex, methods, headers, query), got %s",
                          config_yaml_describe(&q, v));
        return -1;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        int j = config_yaml_key_index(l, k, names, ARRAY_LEN(names), seen, " in match");
        if (j < 0 || x->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        bool ok = true;
        switch (j) {
        case 0:
            ok = (r->host = parse_host(l, x)) != NULL;
            break;
        case 1:
            ok = (r->path = parse_path(l, cfg, "match.path", x)) != NULL;
            break;
        case 2:
            if ((r->path_prefix = parse_path(l, cfg, "match.pathPrefix", x))) {
                size_t n = strlen(r->path_prefix);
                if (n > 1 && r->path_prefix[n - 1] == '/')
                    r->path_prefix[n - 1] = '\0'; /* "/static/" means "/static" */
            }
            ok = r->path_prefix != NULL;
            break;
        case 3:
            ok = (r->path_regex = parse_regex(l, x)) != NULL;
            break;
        case 4:
            ok = (r->methods = parse_tokens(l, "match.methods", "GET", x)) != NULL;
            break;
        case 5:
            ok = parse_fields(l, cfg, "match.headers", x, true, 0, &r->headers, &r->nheaders) == 0;
            break;
        case 6:
            ok = parse_query(l, x, &r->query, &r->nquery) == 0;
            break;
        }
        if (!ok)
            rc = -1;
    }
    if (seen[1] && seen[2]) {
        config_yaml_error(l, seen[2], "match.path and match.pathPrefix are mutually exclusive");
        rc = -1;
    }
    return rc;
}

/* pool: a pool's name → its index. -1 after reporting. */
static int pool_ref(struct config_yaml_load *l, struct config *cfg, const char *key,
                    const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (!config_yaml_is_string(v)) {
        config_yaml_error(l, v, "%s must be a pool name, got %s", key, config_yaml_describe(&q, v));
        return -1;
    }
    int i = config_pool_find(cfg, v->str);
    if (i < 0) {
        config_yaml_error(l, v, "unknown pool %s", config_yaml_quote(&q, v->str, v->len));
        return -1;
    }
    if (cfg->pools[i].is_default && cfg->pools[i].nbackends == 0) { /* no top-level backends */
        config_yaml_error(l, v, "pool %s has no backends (there are no top-level \"backends\")",
                          config_yaml_quote(&q, v->str, v->len));
        return -1;
    }
    cfg->pools[i].used = true;
    return i;
}

/* split: [{pool, weight}, ...], weights 0..1000 not all 0. -1 after reporting. */
static int parse_split(struct config_yaml_load *l, struct config *cfg,
                       const struct config_yaml_node *v, struct config_route *r)
{
    static const char *const names[] = {"pool", "weight"};
    static const struct config_yaml_key wk = {
        "weight", CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, 0, 1000, 1};
    struct config_yaml_qbuf q;
    if (v->kind != CONFIG_YAML_SEQUENCE || v->nkids == 0) {
        config_yaml_error(l, v, "split must be a non-empty sequence of {pool, weight}, got %s",
                          config_yaml_describe(&q, v));
        return -1;
    }
    if (!(r->split = calloc(v->nkids, sizeof(*r->split)))) {
        config_yaml_oom(l);
        return -1;
    }
    int rc = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct config_yaml_node *e = v->kids[i], *seen[2] = {0}, *pool_v = NULL;
        struct config_route_split s = {.pool = -1, .weight = 1};
        if (e->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        if (e->kind != CONFIG_YAML_MAPPING) {
            config_yaml_error(l, e,
                              "split entry must be a mapping with \"pool\" and \"weight\", "
                              "got %s",
                              config_yaml_describe(&q, e));
            rc = -1;
            continue;
        }
        for (size_t k = 0; k + 1 < e->nkids; k += 2) {
            const struct config_yaml_node *kk = e->kids[k], *x = e->kids[k + 1];
            int j = config_yaml_key_index(l, kk, names, ARRAY_LEN(names), seen, " in split");
            if (j < 0 || x->kind == CONFIG_YAML_BAD) {
                rc = -1;
                continue;
            }
            if (j == 0 && (s.pool = pool_ref(l, cfg, "split pool", pool_v = x)) < 0)
                rc = -1;
            if (j == 1 && config_yaml_get_int(l, &wk, x, &s.weight) != 0)
                rc = -1;
        }
        if (!seen[0]) {
            config_yaml_error(l, e, "split entry is missing \"pool\"");
            rc = -1;
            continue;
        }
        for (int j = 0; j < r->nsplit && s.pool >= 0; j++)
            if (r->split[j].pool == s.pool) {
                config_yaml_error(l, pool_v, "pool %s is in split twice",
                                  config_yaml_quote(&q, cfg->pools[s.pool].name,
                                                    strlen(cfg->pools[s.pool].name)));
                rc = -1;
                s.pool = -1;
            }
        if (s.pool < 0)
            continue;
        sum += s.weight;
        r->split[r->nsplit++] = s;
    }
    if (rc == 0 && sum == 0) {
        config_yaml_error(l, v, "split weights must not all be 0");
        rc = -1;
    }
    return rc;
}

/* redirect: {scheme, host, port, path, status}. -1 after reporting. */
static int parse_redirect(struct config_yaml_load *l, const struct config *cfg,
                          const struct config_yaml_node *v, struct config_route *r)
{
    static const char *const names[] = {"scheme", "host", "port", "path", "status"};
    static const struct config_yaml_key pk = {
        "redirect.port", CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, 1, 65535, 0};
    const struct config_yaml_node *seen[ARRAY_LEN(names)] = {0};
    struct config_yaml_qbuf q;
    int rc = 0;
    r->redirect.status = 302;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v,
                          "redirect must be a mapping of scheme, host, port, path and "
                          "status, got %s",
                          config_yaml_describe(&q, v));
        return -1;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        int j = config_yaml_key_index(l, k, names, ARRAY_LEN(names), seen, " in redirect");
        if (j < 0 || x->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        uint32_t u;
        switch (j) {
        case 0:
            if (config_yaml_is_string(x) &&
                (strcmp(x->str, "http") == 0 || strcmp(x->str, "https") == 0)) {
                if (!(r->redirect.scheme = dup_n(l, x->str, x->len)))
                    rc = -1;
            } else {
                config_yaml_error(l, x, "redirect.scheme must be http or https, got %s",
                                  config_yaml_describe(&q, x));
                rc = -1;
            }
            break;
        case 1: {
            char *h = parse_host(l, x);
            if (h && h[0] == '*') {
                config_yaml_error(l, x, "redirect.host must be a host name, got %s",
                                  config_yaml_describe(&q, x));
                free(h);
                h = NULL;
            }
            if (!(r->redirect.host = h))
                rc = -1;
            break;
        }
        case 2:
            if (config_yaml_get_int(l, &pk, x, &u) == 0)
                r->redirect.port = (uint16_t)u;
            else
                rc = -1;
            break;
        case 3:
            if (!(r->redirect.path = parse_path(l, cfg, "redirect.path", x)))
                rc = -1;
            break;
        case 4: {
            int64_t s;
            if (config_yaml_parse_int(x, &s) == 0 &&
                (s == 301 || s == 302 || s == 303 || s == 307 || s == 308)) {
                r->redirect.status = (int)s;
            } else {
                config_yaml_error(l, x, "redirect.status must be 301, 302, 303, 307 or 308, got %s",
                                  config_yaml_parse_int(x, &s) == 0 ? config_yaml_number(&q, x)
                                                                    : config_yaml_describe(&q, x));
                rc = -1;
            }
            break;
        }
        }
    }
    if (!seen[0] && !seen[1] && !seen[2] && !seen[3]) {
        config_yaml_error(l, v,
                          "redirect needs scheme, host, port or path (else it would send "
                          "the client to the same URL)");
        rc = -1;
    }
    return rc;
}

/* respond: {status, body}. -1 after reporting. */
static int parse_respond(struct config_yaml_load *l, const struct config_yaml_node *v,
                         struct config_route *r)
{
    static const char *const names[] = {"status", "body"};
    static const struct config_yaml_key sk = {
        "respond.status", CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, 200, 599, 0};
    const struct config_yaml_node *seen[ARRAY_LEN(names)] = {0};
    struct config_yaml_qbuf q;
    int rc = 0;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "respond must be a mapping with \"status\" (and \"body\"), got %s",
                          config_yaml_describe(&q, v));
        return -1;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        int j = config_yaml_key_index(l, k, names, ARRAY_LEN(names), seen, " in respond");
        if (j < 0 || x->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        uint32_t u;
        if (j == 0) {
            if (config_yaml_get_int(l, &sk, x, &u) == 0)
                r->respond.status = (int)u;
            else
                rc = -1;
        } else if (!config_yaml_is_scalar(x) || (config_yaml_is_null(x) && !x->quoted) ||
                   x->len > BODY_MAX) {
            config_yaml_error(l, x, "respond.body must be a string of at most %d bytes, got %s",
                              BODY_MAX, config_yaml_describe(&q, x));
            rc = -1;
        } else {
            r->respond.body = malloc(x->len + 1);
            if (!r->respond.body) {
                config_yaml_oom(l);
                return -1;
            }
            memcpy(r->respond.body, x->str, x->len + 1);
            r->respond.body_len = x->len;
        }
    }
    if (!seen[0]) {
        config_yaml_error(l, v, "respond is missing \"status\"");
        rc = -1;
    } else if (r->respond.body_len && (r->respond.status == 204 || r->respond.status == 304)) {
        config_yaml_error(l, seen[1], "respond.body is not allowed with status %d (it has no body)",
                          r->respond.status);
        rc = -1;
    }
    return rc;
}

/* rateLimit: {requestsPerSecond, burst}. -1 after reporting. */
static int parse_rate(struct config_yaml_load *l, const struct config_yaml_node *v,
                      struct config_route *r)
{
    static const char *const names[] = {"requestsPerSecond", "burst"};
    static const struct config_yaml_key bk = {
        "rateLimit.burst", CONFIG_YAML_KT_UINT, CONFIG_YAML_NO_FIELD, 1, RATE_MAX, 0};
    const struct config_yaml_node *seen[ARRAY_LEN(names)] = {0};
    struct config_yaml_qbuf q;
    int rc = 0;
    uint32_t burst = 0;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v,
                          "rateLimit must be a mapping with \"requestsPerSecond\" (and "
                          "\"burst\"), got %s",
                          config_yaml_describe(&q, v));
        return -1;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *x = v->kids[i + 1];
        int j = config_yaml_key_index(l, k, names, ARRAY_LEN(names), seen, " in rateLimit");
        if (j < 0 || x->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        uint64_t m;
        if (j == 0) {
            if (parse_milli(x, &m) && m > 0 && m <= RATE_MAX * 1000ull) {
                r->rate_mrps = (uint32_t)m;
            } else {
                config_yaml_error(l, x,
                                  "rateLimit.requestsPerSecond must be a number above 0 and at "
                                  "most %u, with at most 3 decimals (e.g. 5 or 0.5), got %s",
                                  RATE_MAX, config_yaml_describe(&q, x));
                rc = -1;
            }
        } else if (config_yaml_get_int(l, &bk, x, &burst) != 0) {
            rc = -1;
        }
    }
    if (!seen[0]) {
        config_yaml_error(l, v, "rateLimit is missing \"requestsPerSecond\"");
        return -1;
    }
    /* default burst: one second's worth, at least 1 */
    r->rate_burst = burst ? burst : MAX(1u, (r->rate_mrps + 999) / 1000);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Routes: one route
 */

enum route_key {
    RK_NAME = 0,
    RK_MATCH,
    RK_POOL,
    RK_SPLIT,
    RK_REDIRECT,
    RK_RESPOND,
    RK_STRIP,
    RK_REWRITE,
    RK_SET_REQ,
    RK_RM_REQ,
    RK_SET_RESP,
    RK_RM_RESP,
    RK_ALLOW,
    RK_DENY,
    RK_RATE,
    RK_TIMEOUT,
    RK_RETRIES,
    RK_N,
};

/* A route's name: 1..64 visible ASCII characters or spaces, no quote or backslash (it appears
 * in logs and metrics labels). */
static bool route_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

/* removeRequestHeaders, removeResponseHeaders: a list of names, none reserved. */
static char **parse_removals(struct config_yaml_load *l, const struct config *cfg, const char *key,
                             const struct config_yaml_node *v, bool request)
{
    struct config_yaml_qbuf q;
    char **list = parse_tokens(l, key, "X-Powered-By", v);
    for (size_t i = 0; list && list[i]; i++) {
        const char *why = reserved_header(cfg, list[i], request, true);
        if (why) {
            config_yaml_error(l, v->kids[i], "%s cannot remove %s: %s", key,
                              config_yaml_quote(&q, list[i], strlen(list[i])), why);
            free_list(list);
            return NULL;
        }
    }
    return list;
}

/* One entry of `routes` (index i, from 0) into r. 0, or -1 after reporting. */
static int parse_route(struct config_yaml_load *l, struct config *cfg,
                       const struct config_yaml_node *e, struct config_route *r, int i)
{
    static const char *const names[] = {"name",
                                        "match",
                                        "pool",
                                        "split",
                                        "redirect",
                                        "respond",
                                        "stripPrefix",
                                        "rewritePrefix",
                                        "setRequestHeaders",
                                        "removeRequestHeaders",
                                        "setResponseHeaders",
                                        "removeResponseHeaders",
                                        "allow",
                                        "deny",
                                        "rateLimit",
                                        "upstreamTimeout",
                                        "retries"};
    _Static_assert(ARRAY_LEN(names) == RK_N, "one name per route key");
    static const char *const actions[] = {"pool", "split", "redirect", "respond"};
    const struct config_yaml_node *seen[RK_N] = {0}, *val[RK_N] = {0};
    struct config_yaml_qbuf q;
    int rc = 0;

    r->line = e->line;
    r->col = e->col;
    r->retries = -1;
    if (e->kind == CONFIG_YAML_BAD)
        return -1;
    if (e->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, e,
                          "route must be a mapping with match and an action (pool, split, "
                          "redirect or respond), got %s",
                          config_yaml_describe(&q, e));
        return -1;
    }
    for (size_t k = 0; k + 1 < e->nkids; k += 2) {
        const struct config_yaml_node *kk = e->kids[k], *x = e->kids[k + 1];
        int j = config_yaml_key_index(l, kk, names, ARRAY_LEN(names), seen, " in route");
        if (j < 0 || x->kind == CONFIG_YAML_BAD) {
            rc = -1;
            continue;
        }
        val[j] = x;
    }

    /* name */
    if (val[RK_NAME] && !(config_yaml_is_string(val[RK_NAME]) &&
                          route_name_ok(val[RK_NAME]->str, val[RK_NAME]->len))) {
        config_yaml_error(l, val[RK_NAME],
                          "name must be 1 to %d printable characters without quotes or "
                          "backslashes, got %s",
                          NAME_MAX_LEN, config_yaml_describe(&q, val[RK_NAME]));
        rc = -1;
    }
    if (val[RK_NAME] && rc == 0)
        r->name = dup_n(l, val[RK_NAME]->str, val[RK_NAME]->len);
    else if (asprintf(&r->name, "route %d", i + 1) == -1)
        r->name = NULL;
    if (!r->name) {
        config_yaml_oom(l);
        return -1;
    }

    /* match */
    bool match_ok = true;
    if (val[RK_MATCH] && parse_match(l, cfg, val[RK_MATCH], r) != 0)
        rc = -1, match_ok = false;

    /* the action: exactly one */
    int first = -1;
    for (int j = RK_POOL; j <= RK_RESPOND; j++) {
        if (!seen[j])
            continue;
        if (first == -1 || seen[j]->line < seen[first]->line ||
            (seen[j]->line == seen[first]->line && seen[j]->col < seen[first]->col))
            first = j;
    }
    for (int j = RK_POOL; j <= RK_RESPOND; j++) {
        if (!seen[j] || j == first)
            continue;
        config_yaml_error(l, seen[j],
                          "a route takes one action: %s and %s (line %d) are both given",
                          actions[j - RK_POOL], actions[first - RK_POOL], seen[first]->line);
        rc = -1;
    }
    if (first == -1) {
        config_yaml_error(l, e, "route %s needs an action: pool, split, redirect or respond",
                          config_yaml_quote(&q, r->name, strlen(r->name)));
        rc = -1;
    } else {
        r->action = (enum config_route_action)(first - RK_POOL);
        const struct config_yaml_node *a = val[first];
        switch (first) {
        case RK_POOL:
            if (!a || (r->pool = pool_ref(l, cfg, "pool", a)) < 0)
                rc = -1;
            break;
        case RK_SPLIT:
            if (!a || parse_split(l, cfg, a, r) != 0)
                rc = -1;
            break;
        case RK_REDIRECT:
            if (!a || parse_redirect(l, cfg, a, r) != 0)
                rc = -1;
            break;
        case RK_RESPOND:
            if (!a || parse_respond(l, a, r) != 0)
                rc = -1;
            break;
        }
    }

    /* filters */
    if (val[RK_STRIP] && config_yaml_get_bool(l, "stripPrefix", val[RK_STRIP], &r->strip_prefix))
        rc = -1;
    if (val[RK_REWRITE]) {
        if ((r->rewrite_prefix = parse_path(l, cfg, "rewritePrefix", val[RK_REWRITE]))) {
            size_t n = strlen(r->rewrite_prefix);
            if (r->rewrite_prefix[n - 1] == '/')
                r->rewrite_prefix[n - 1] = '\0'; /* "/new/" and "/new" alike; "/" is "" */
        } else {
            rc = -1;
        }
    }
    if (val[RK_SET_REQ] && parse_fields(l, cfg, "setRequestHeaders", val[RK_SET_REQ], false, 1,
                                        &r->set_request_headers, &r->nset_request_headers) != 0)
        rc = -1;
    if (val[RK_SET_RESP] && parse_fields(l, cfg, "setResponseHeaders", val[RK_SET_RESP], false, 2,
                                         &r->set_response_headers, &r->nset_response_headers) != 0)
        rc = -1;
    if (val[RK_RM_REQ] && !(r->remove_request_headers = parse_removals(
                                l, cfg, "removeRequestHeaders", val[RK_RM_REQ], true)))
        rc = -1;
    if (val[RK_RM_RESP] && !(r->remove_response_headers = parse_removals(
                                 l, cfg, "removeResponseHeaders", val[RK_RM_RESP], false)))
        rc = -1;

    /* policies */
    if (val[RK_ALLOW]) {
        r->has_allow = true;
        if (parse_cidrs(l, "allow", val[RK_ALLOW], &r->allow, &r->nallow) != 0)
            rc = -1;
    }
    if (val[RK_DENY] && parse_cidrs(l, "deny", val[RK_DENY], &r->deny, &r->ndeny) != 0)
        rc = -1;
    if (val[RK_RATE] && parse_rate(l, val[RK_RATE], r) != 0)
        rc = -1;
    if (val[RK_TIMEOUT] && config_yaml_get_duration(l, config_top_key("upstreamTimeout"),
                                                    val[RK_TIMEOUT], &r->upstream_timeout_ms) != 0)
        rc = -1;
    if (val[RK_RETRIES]) {
        uint32_t u;
        if (config_yaml_get_int(l, config_top_key("retries"), val[RK_RETRIES], &u) == 0)
            r->retries = (int)u;
        else
            rc = -1;
    }

    /* keys that need another */
    if (r->strip_prefix && val[RK_REWRITE]) {
        config_yaml_error(l, seen[RK_REWRITE],
                          "stripPrefix and rewritePrefix are mutually "
                          "exclusive (rewritePrefix: / strips)");
        rc = -1;
    }
    for (int j = RK_STRIP; j <= RK_REWRITE && match_ok; j++)
        if (!r->path_prefix && seen[j] && (j == RK_REWRITE || r->strip_prefix)) {
            config_yaml_error(l, seen[j], "%s needs match.pathPrefix", names[j]);
            rc = -1;
        }
    if (r->action == CONFIG_ROUTE_REDIRECT || r->action == CONFIG_ROUTE_RESPOND) {
        static const int upstream_only[] = {RK_STRIP,  RK_REWRITE, RK_SET_REQ,
                                            RK_RM_REQ, RK_TIMEOUT, RK_RETRIES};
        for (size_t j = 0; j < ARRAY_LEN(upstream_only) && first != -1; j++)
            if (seen[upstream_only[j]])
                config_yaml_warning(l, seen[upstream_only[j]],
                                    "%s has no effect on a %s route (nothing goes upstream)",
                                    names[upstream_only[j]], actions[first - RK_POOL]);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Routes: the checks across routes
 */

/* A string → index map for the checks below (names, exact hosts): open addressing, FNV-1a. */
struct strmap {
    size_t cap; /* a power of two */
    const char **key;
    int *val;
};

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int strmap_init(struct strmap *m, size_t n)
{
    m->cap = 16;
    while (m->cap < 2 * n)
        m->cap *= 2;
    m->key = calloc(m->cap, sizeof(*m->key));
    m->val = calloc(m->cap, sizeof(*m->val));
    return m->key && m->val ? 0 : -1;
}

static void strmap_free(struct strmap *m)
{
    free(m->key);
    free(m->val);
}

/* The slot of `key`: its entry, or the empty slot where it would go. */
static size_t strmap_slot(const struct strmap *m, const char *key)
{
    size_t i = str_hash(key) & (m->cap - 1);
    while (m->key[i] && strcmp(m->key[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* Host `e` (a route's match.host, NULL: any) matches every host `r` does. */
static bool host_covers(const char *e, const char *r)
{
    if (!e)
        return true;
    if (!r)
        return false;
    if (e[0] != '*')
        return strcmp(e, r) == 0;
    const char *suffix = e + 1; /* ".example.com" */
    size_t sl = strlen(suffix), rl = strlen(r);
    if (r[0] == '*') /* "*.a.example.com" or "*.example.com" under "*.example.com" */
        return rl - 1 >= sl && strcmp(r + rl - sl, suffix) == 0;
    return rl > sl && strcmp(r + rl - sl, suffix) == 0; /* at least one label before it */
}

/* Path p is prefix itself or below it, segment-wise. */
static bool under(const char *p, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 1)
        return true; /* "/" */
    return strncmp(p, prefix, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static bool path_covers(const struct config_route *e, const struct config_route *r)
{
    if (e->path_regex && !(r->path_regex && strcmp(e->path_regex, r->path_regex) == 0))
        return false;
    if (e->path)
        return r->path && strcmp(e->path, r->path) == 0;
    if (e->path_prefix) {
        if (r->path)
            return under(r->path, e->path_prefix);
        if (r->path_prefix)
            return under(r->path_prefix, e->path_prefix);
        return strcmp(e->path_prefix, "/") == 0;
    }
    return true;
}

static bool in_list(char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* Every request route r matches, route e matches too: each of e's conditions is implied by r's.
 * (Policies do not matter: a request e denies or limits is answered by e, never passed on.) */
static bool covers(const struct config_route *e, const struct config_route *r)
{
    if (!host_covers(e->host, r->host) || !path_covers(e, r))
        return false;
    if (e->methods) {
        if (!r->methods)
            return false;
        for (size_t i = 0; r->methods[i]; i++)
            if (!in_list(e->methods, r->methods[i]))
                return false;
    }
    for (int i = 0; i < e->nheaders; i++) {
        bool found = false;
        for (int j = 0; j < r->nheaders && !found; j++)
            found =
                strcasecmp(e->headers[i].name, r->headers[j].name) == 0 &&
                (!e->headers[i].value ||
                 (r->headers[j].value && strcmp(e->headers[i].value, r->headers[j].value) == 0));
        if (!found)
            return false;
    }
    for (int i = 0; i < e->nquery; i++) {
        bool found = false;
        for (int j = 0; j < r->nquery && !found; j++)
            found = strcmp(e->query[i].name, r->query[j].name) == 0 &&
                    strcmp(e->query[i].value, r->query[j].value) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* Warns about each route an earlier one shadows. Only routes that can cover r are compared: those
 * for any host, those for a wildcard host, and those for r's own host, so that 1,000 hosts of ten
 * routes each cost ten comparisons per route, not 10,000. */
static void shadow_check(struct config_yaml_load *l, const struct config *cfg, const bool *ok,
                         const struct config_yaml_node *v)
{
    int n = cfg->nroutes;
    int *any = malloc(((size_t)n + 1) * sizeof(int)), nany = 0;
    int *wild = malloc(((size_t)n + 1) * sizeof(int)), nwild = 0;
    int *same = malloc(((size_t)n + 1) * sizeof(int)); /* previous route with this exact host */
    struct strmap hosts = {0};
    if (!any || !wild || !same || strmap_init(&hosts, (size_t)n) != 0) {
        config_yaml_oom(l);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const struct config_route *r = &cfg->routes[i];
        size_t slot = 0;
        same[i] = -1;
        if (r->host && r->host[0] != '*') {
            slot = strmap_slot(&hosts, r->host);
            same[i] = hosts.key[slot] ? hosts.val[slot] : -1;
        }
        int by = -1;
        if (ok[i]) {
            for (int j = 0; j < nany && by == -1; j++)
                if (covers(&cfg->routes[any[j]], r))
                    by = any[j];
            for (int j = 0; j < nwild && r->host && (by == -1 || wild[j] < by); j++)
                if (covers(&cfg->routes[wild[j]], r))
                    by = wild[j];
            for (int j = same[i]; j != -1; j = same[j])
                if (ok[j] && (by == -1 || j < by) && covers(&cfg->routes[j], r))
                    by = j;
        }
        if (by != -1)
            config_yaml_warning(l, v->kids[i],
                                "route \"%s\" can never match: route \"%s\" (line %d) comes first "
                                "and matches every request it would",
                                r->name, cfg->routes[by].name, cfg->routes[by].line);
        if (!ok[i])
            continue;
        if (!r->host) {
            any[nany++] = i;
        } else if (r->host[0] == '*') {
            wild[nwild++] = i;
        } else {
            hosts.key[slot] = r->host;
            hosts.val[slot] = i;
        }
    }
out:
    strmap_free(&hosts);
    free(any);
    free(wild);
    free(same);
}

/* Two routes of one name. */
static void name_check(struct config_yaml_load *l, const struct config *cfg,
                       const struct config_yaml_node *v)
{
    struct strmap names = {0};
    if (strmap_init(&names, (size_t)cfg->nroutes) != 0) {
        config_yaml_oom(l);
        strmap_free(&names);
        return;
    }
    for (int i = 0; i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (!r->name)
            continue;
        size_t slot = strmap_slot(&names, r->name);
        if (names.key[slot]) {
            config_yaml_error(l, v->kids[i], "duplicate route name \"%s\" (first used at line %d)",
                              r->name, cfg->routes[names.val[slot]].line);
            continue;
        }
        names.key[slot] = r->name;
        names.val[slot] = i;
    }
    strmap_free(&names);
}

void config_route_routes(struct config_yaml_load *l, struct config *cfg,
                         const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (v && v->kind != CONFIG_YAML_BAD && v->kind != CONFIG_YAML_SEQUENCE)
        config_yaml_error(l, v, "routes must be a sequence of routes, got %s",
                          config_yaml_describe(&q, v));
    if (v && v->kind == CONFIG_YAML_SEQUENCE && v->nkids > 0 && cfg->pools) {
        bool *ok = calloc(v->nkids, sizeof(*ok));
        cfg->routes = calloc(v->nkids, sizeof(*cfg->routes));
        if (!ok || !cfg->routes) {
            free(ok);
            config_yaml_oom(l);
            return;
        }
        for (size_t i = 0; i < v->nkids; i++) {
            ok[i] = parse_route(l, cfg, v->kids[i], &cfg->routes[i], (int)i) == 0;
            cfg->nroutes++;
        }
        name_check(l, cfg, v);
        shadow_check(l, cfg, ok, v);
        free(ok);
    }
    for (int i = 1; i < cfg->npools; i++) {
        const struct config_pool *p = &cfg->pools[i];
        struct config_yaml_node at = {.line = p->line, .col = p->col};
        if (!p->used)
            config_yaml_warning(l, &at, "pool \"%s\" is not used by any route", p->name);
    }
}

static void route_clear(struct config_route *r)
{
    free(r->name);
    free(r->host);
    free(r->path);
    free(r->path_prefix);
    free(r->path_regex);
    free_list(r->methods);
    free_fields(r->headers, r->nheaders);
    free_fields(r->query, r->nquery);
    free(r->split);
    free(r->redirect.scheme);
    free(r->redirect.host);
    free(r->redirect.path);
    free(r->respond.body);
    free(r->rewrite_prefix);
    free_fields(r->set_request_headers, r->nset_request_headers);
    free_fields(r->set_response_headers, r->nset_response_headers);
    free_list(r->remove_request_headers);
    free_list(r->remove_response_headers);
    free(r->allow);
    free(r->deny);
}

void config_route_free(struct config *cfg)
{
    for (int i = 0; i < cfg->nroutes; i++)
        route_clear(&cfg->routes[i]);
    free(cfg->routes);
}
