/* libFuzzer target for route_match on a fixed route table (hosts exact, wildcard and any; paths
 * exact and prefix at several depths; regexes; methods, headers, query), with arbitrary requests.
 *
 * Input: "METHOD\nHOST\nTARGET\nName: value\n..." (an empty HOST line: no Host). The target is
 * normalised as a session does (path_normalize_target); when that fails there is nothing to match.
 *
 * Invariant: the compiled matcher gives the same route as a plain reference that tries every
 * route in file order with the rules of the configuration reference written out naively (host
 * lower-cased without port and trailing dot, "*.S" = one or more labels before S, pathPrefix
 * segment-wise, regexes by the PCRE2 interpreter); with and without a worker's match data; the
 * result is -1 or a route index; route_pool of a match is a pool index or -1 for an answer route;
 * nothing reads outside the request (exact-size heap copies). */
#include "fuzz_support.h"

#include <stdbool.h>
#include <stdio.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/config.h"
#include "core/route.h"
#include "http/path.h"

static const char yaml[] =
    "backends: [http://127.0.0.1:8081]\n"
    "pools:\n"
    "  api: {backends: [http://127.0.0.1:9000]}\n"
    "  canary: {backends: [http://127.0.0.1:9001]}\n"
    "routes:\n"
    "  - {match: {headers: {X-Canary: \"1\"}}, pool: canary}\n"
    "  - {match: {host: api.example.com, path: /login, methods: [POST]}, pool: api}\n"
    "  - {match: {host: api.example.com, pathPrefix: /v1}, pool: api}\n"
    "  - {match: {host: \"*.example.com\", pathPrefix: /static/css}, pool: api}\n"
    "  - {match: {host: \"*.b.example.com\"}, pool: canary}\n"
    "  - {match: {host: api.example.com}, pool: api}\n"
    "  - {match: {host: \"[::1]\", path: /}, respond: {status: 404}}\n"
    "  - {match: {pathPrefix: /static}, pool: api}\n"
    "  - {match: {path: /static/x/}, pool: api}\n"
    "  - {match: {pathRegex: \"^/v[0-9]+/users/[0-9]+$\"}, pool: api}\n"
    "  - {match: {pathPrefix: /a/b, pathRegex: \"c$\"}, pool: api}\n"
    "  - {match: {pathPrefix: /a, query: {debug: \"1\"}}, pool: api}\n"
    "  - {match: {pathPrefix: /a, headers: {x-a: \"*\", X-B: \"2\"}}, pool: api}\n"
    "  - {match: {path: \"/%7Eu/%2F\"}, pool: api}\n"
    "  - {match: {host: \"*.com\", methods: [GET, HEAD]}, pool: api}\n"
    "  - {match: {host: old.example.org}, redirect: {scheme: https}}\n"
    "  - {match: {path: \"/d//e\"}, pool: api}\n"
    "  - {match: {pathRegex: \"^/lit/a+b\"}, pool: api}\n"
    "  - {match: {pathRegex: \"^/q/x|/y\"}, pool: api}\n"
    "  - {match: {pathRegex: \"^/z\\\\d/\"}, pool: api}\n"
    "  - {match: {pathRegex: \"^/s/(?i)CASE/\"}, pool: api}\n"
    "  - {match: {pathRegex: \"^//d/e?/\"}, pool: api}\n"
    "  - {match: {pathPrefix: /m, pathRegex: \"^/m/n/o\"}, pool: api}\n"
    "  - {match: {pathPrefix: /m, pathRegex: \"^/k/n\"}, pool: api}\n"
    "  - {match: {pathPrefix: /m/n/o/p, pathRegex: \"^/m/n\"}, pool: api}\n"
    "  - {match: {pathPrefix: /}, split: [{pool: default, weight: 3}, {pool: canary, weight: "
    "1}]}\n";

static struct config *cfg;
static struct route_table *table;
static struct route_worker *worker;
static pcre2_code *res[64];
static pcre2_match_data *md;

struct hdrs {
    const char *name[32], *value[32];
    size_t nl[32], vl[32];
    int n;
};

static const char *header_cb(const void *ctx, const char *name, size_t nl, size_t nth, size_t *vl)
{
    const struct hdrs *h = ctx;
    for (int i = 0; i < h->n; i++)
        if (h->nl[i] == nl && strncasecmp(h->name[i], name, nl) == 0 && nth-- == 0) {
            *vl = h->vl[i];
            return h->value[i];
        }
    return NULL;
}

static void setup(void)
{
    FILE *devnull = fopen("/dev/null", "w");
    config_set_resolve_numeric_only(true);
    CHECK(config_load_buffer("route.yaml", yaml, sizeof(yaml) - 1, devnull, &cfg) == 0);
    fclose(devnull);
    table = route_table_build(cfg);
    worker = route_worker_new(64);
    md = pcre2_match_data_create(1, NULL);
    CHECK(table && worker && md && cfg->nroutes <= 64);
    for (int i = 0; i < cfg->nroutes; i++) {
        int err;
        PCRE2_SIZE off;
        if (cfg->routes[i].path_regex)
            CHECK(res[i] = pcre2_compile((PCRE2_SPTR)cfg->routes[i].path_regex,
                                         PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL));
    }
}

/* ---- the reference: every route in order, the rules written out plainly ---- */

static bool ref_host(const char *want, const char *h, size_t n)
{
    if (!want)
        return true;
    if (n == 0)
        return false;
    if (want[0] != '*')
        return strlen(want) == n && memcmp(want, h, n) == 0;
    size_t sl = strlen(want + 1); /* ".example.com" */
    return n > sl && memcmp(h + n - sl, want + 1, sl) == 0;
}

static bool ref_route(const struct config_route *r, int i, const char *m, size_t ml, const char *h,
                      size_t hl, const char *p, size_t pl, const char *q, size_t ql,
                      const struct hdrs *hd)
{
    if (!ref_host(r->host, h, hl))
        return false;
    if (r->path && !(strlen(r->path) == pl && memcmp(r->path, p, pl) == 0))
        return false;
    if (r->path_prefix && strcmp(r->path_prefix, "/") != 0) {
        size_t n = strlen(r->path_prefix);
        if (!(pl >= n && memcmp(p, r->path_prefix, n) == 0 && (pl == n || p[n] == '/')))
            return false;
    }
    if (r->methods) {
        bool f = false;
        for (size_t j = 0; r->methods[j]; j++)
            f |= strlen(r->methods[j]) == ml && memcmp(r->methods[j], m, ml) == 0;
        if (!f)
            return false;
    }
    for (int j = 0; j < r->nheaders; j++) {
        bool f = false;
        for (int k = 0; k < hd->n; k++)
            f |= hd->nl[k] == strlen(r->headers[j].name) &&
                 strncasecmp(hd->name[k], r->headers[j].name, hd->nl[k]) == 0 &&
                 (!r->headers[j].value ||
                  (hd->vl[k] == strlen(r->headers[j].value) &&
                   memcmp(hd->value[k], r->headers[j].value, hd->vl[k]) == 0));
        if (!f)
            return false;
    }
    if (r->nquery && !q)
        return false;
    for (int j = 0; j < r->nquery; j++) {
        char want[256];
        snprintf(want, sizeof(want), "%s=%s", r->query[j].name, r->query[j].value);
        bool f = false;
        for (size_t s = 0; s <= ql && !f;) { /* each &-separated pair */
            size_t e = s;
            while (e < ql && q[e] != '&')
                e++;
            const char *pair = q + s;
            size_t len = e - s;
            const char *eq = memchr(pair, '=', len);
            f = len == strlen(want) && memcmp(pair, want, len) == 0;
            if (!eq && *r->query[j].value == '\0') /* "name" alone is name= */
                f |= len == strlen(r->query[j].name) && memcmp(pair, r->query[j].name, len) == 0;
            s = e + 1;
        }
        if (!f)
            return false;
    }
    if (res[i] && pcre2_match(res[i], (PCRE2_SPTR)p, pl, 0, 0, md, NULL) < 0)
        return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!table)
        setup();
    char *in = fuzz_dup(data, size);
    const char *line[3] = {in, NULL, NULL}, *end = in + size;
    size_t len[3] = {0};
    const char *s = in;
    int nl = 0;
    for (; nl < 3; nl++) {
        const char *e = memchr(s, '\n', (size_t)(end - s));
        line[nl] = s;
        len[nl] = e ? (size_t)(e - s) : (size_t)(end - s);
        s = e ? e + 1 : end;
        if (!e) {
            nl++;
            break;
        }
    }
    if (nl < 3) {
        free(in);
        return 0;
    }
    struct hdrs hd = {.n = 0};
    while (s < end && hd.n < 32) {
        const char *e = memchr(s, '\n', (size_t)(end - s));
        e = e ? e : end;
        const char *colon = memchr(s, ':', (size_t)(e - s));
        if (colon) {
            hd.name[hd.n] = s;
            hd.nl[hd.n] = (size_t)(colon - s);
            const char *v = colon + 1;
            while (v < e && *v == ' ')
                v++;
            hd.value[hd.n] = v;
            hd.vl[hd.n] = (size_t)(e - v);
            hd.n++;
        }
        s = e + 1;
    }

    char *norm = malloc(len[2] ? len[2] : 1);
    size_t n;
    CHECK(norm);
    if (path_normalize_target(line[2], len[2], 0, norm, &n) == PATH_OK) {
        const char *q = memchr(norm, '?', n);
        size_t pl = q ? (size_t)(q - norm) : n;
        struct route_input ri = {
            .method = line[0],
            .method_len = len[0],
            .host = len[1] ? line[1] : NULL,
            .host_len = len[1],
            .path = norm,
            .path_len = pl,
            .query = q ? q + 1 : NULL,
            .query_len = q ? n - pl - 1 : 0,
            .header = header_cb,
            .header_ctx = &hd,
            .worker = worker,
        };
        int got = route_match(table, &ri);
        CHECK(got >= -1 && got < route_count(table));
        ri.worker = NULL;
        CHECK(route_match(table, &ri) == got);

        /* the reference's host: lower case, no port, no trailing dot */
        char host[256];
        size_t hl = len[1];
        const char *h = line[1];
        if (hl && h[0] == '[') {
            const char *rb = memchr(h, ']', hl);
            hl = rb ? (size_t)(rb - h) + 1 : 0;
        } else if (hl) {
            const char *c = memchr(h, ':', hl);
            hl = c ? (size_t)(c - h) : hl;
        }
        if (hl && h[hl - 1] == '.')
            hl--;
        if (hl > 255)
            hl = 0;
        for (size_t i = 0; i < hl; i++)
            host[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char)(h[i] + 32) : h[i];
        int want = -1;
        for (int i = 0; i < cfg->nroutes && want == -1; i++)
            if (ref_route(&cfg->routes[i], i, line[0], len[0], host, hl, norm, pl, ri.query,
                          ri.query_len, &hd))
                want = i;
        CHECK(got == want);
        if (got >= 0) {
            int pool = route_pool(table, got, (uint32_t)size);
            CHECK(pool >= -1 && pool < cfg->npools);
            CHECK((pool == -1) == (route_get(table, got)->action == CONFIG_ROUTE_REDIRECT ||
                                   route_get(table, got)->action == CONFIG_ROUTE_RESPOND));
        }
    }
    free(norm);
    free(in);
    return 0;
}
