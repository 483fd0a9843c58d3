/* route — see route.h.
 *
 * Layout of a built table (all arrays, no pointers between entries, so it is one read-only block
 * the workers share):
 *
 *   keys:  open-addressing hash of (tag, bytes) → u32, over a byte arena
 *          tag KT_EXACT,  "api.example.com" → root node of that host's tree
 *          tag KT_WILD,   "example.com"     → root node of "*.example.com"'s tree
 *          tag node id,   "static"          → the child of that node for segment "static"
 *   nodes: {prefix list, exact list, has children, lowest route index below}
 *   idx:   the lists: route indices, ascending (file order)
 *   any:   root node of the tree of routes without match.host (NONE when there is none)
 *
 * A route sits in one tree (its host's, its wildcard's, or the any-host one) at one node: the node
 * of its path (exact list) or of its pathPrefix (prefix list; the root for "/", no path condition
 * or a pathRegex alone). A request visits the any-host tree, its exact host's tree and the tree of
 * each wildcard suffix of its host; in each it walks down its path's segments, and every prefix
 * list it passes (and the exact list where the path ends) holds candidates. Lists are scanned
 * in index order and only below the best index found so far, so a match costs the walk plus the
 * candidates' extra conditions, not the table's size.
 *
 * Host keys are hashed from the last byte to the first, so that hashing a host once yields the hash
 * of every suffix at its dots: the wildcard lookups of "a.b.example.com" ("b.example.com",
 * "example.com", "com") cost one pass over the name.
 */
#include "core/route.h"

#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/cidr.h"
#include "base/ratelimit.h"
#include "base/util.h"
#include "config/config.h"
#include "http/http.h"
#include "http/rewrite.h"

#define NONE UINT32_MAX
#define KT_EXACT 0xfffffffeu /* key tags above any node id */
#define KT_WILD 0xfffffffdu
#define HOST_MAX 255 /* longer Host values match only routes without match.host */

/* ---------------------------------------------------------------------------------------------
 * Keyed table over a byte arena
 */

struct kent {
    uint32_t tag, off, len, hash, val; /* val NONE: empty slot */
};

struct ktab {
    struct kent *e;
    uint32_t cap, n; /* cap a power of two, n < cap / 2 */
};

struct rnode {
    uint32_t prefix_off, nprefix; /* in idx */
    uint32_t exact_off, nexact;
    uint32_t min_route; /* a tree's root: the lowest route index in the tree (NONE elsewhere) */
    bool has_children;
};

/* A route as matching needs it beyond its tree position. */
struct croute {
    const struct config_route *cfg;
    char **header_names; /* lower case, [cfg->nheaders] */
    size_t *header_lens;
    pcre2_code *re; /* NULL without pathRegex */
    bool jit;
    bool extra; /* methods, headers, query or regex to check */
    uint32_t split_total;
    uint32_t split_stride; /* coprime with split_total, near its golden section: interleaves */
    uint64_t limit_id; /* hash of the name: the rate-limit key's route half */
    /* the route's header filters as rewrite takes them (over hf); nset + nremove 0: none */
    struct rewrite_headers req_hdr, resp_hdr;
    struct http_field *hf;
};

static uint32_t gcd32(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* A stride for the split permutation: the first integer at or above total / phi that is coprime
 * with total (so i * stride mod total visits every position once per cycle, spread like the
 * golden-ratio sequence). */
static uint32_t split_stride(uint32_t total)
{
    if (total < 3)
        return 1;
    uint32_t s = (uint32_t)((uint64_t)total * 618034 / 1000000);
    if (s == 0)
        s = 1;
    while (gcd32(s, total) != 1)
        s++;
    return s;
}

struct route_table {
    const struct config *cfg;
    int nroutes;
    struct croute *routes;
    struct ktab keys;
    char *arena;
    size_t arena_len, arena_cap;
    struct rnode *nodes;
    uint32_t nnodes, nodes_cap;
    uint32_t *idx;
    size_t nidx;
    uint32_t any;   /* root of the any-host tree, or NONE */
    uint32_t nwild; /* wildcard hosts */
    size_t re_bytes;
};

struct route_worker {
    pcre2_match_data *md;
    struct ratelimit *rl;
};

/* FNV-1a over s[0..n) from the last byte to the first, then the tag. */
static uint32_t hash_rev(const char *s, size_t n, uint32_t tag)
{
    uint32_t h = 2166136261u;
    while (n)
        h = (h ^ (unsigned char)s[--n]) * 16777619u;
    return (h ^ tag) * 16777619u;
}

/* hash_rev of a string whose reversed hash before the tag is `pre` (see wildcard lookups). */
static uint32_t hash_finish(uint32_t pre, uint32_t tag)
{
    return (pre ^ tag) * 16777619u;
}

static const struct kent *ktab_find(const struct route_table *t, uint32_t tag, const char *s,
                                    size_t n, uint32_t h)
{
    const struct ktab *k = &t->keys;
    if (k->cap == 0)
        return NULL;
    for (uint32_t i = h & (k->cap - 1);; i = (i + 1) & (k->cap - 1)) {
        const struct kent *e = &k->e[i];
        if (e->val == NONE)
            return NULL;
        if (e->hash == h && e->tag == tag && e->len == n && memcmp(t->arena + e->off, s, n) == 0)
            return e;
    }
}

static int ktab_grow(struct ktab *k)
{
    uint32_t cap = k->cap ? k->cap * 2 : 64;
    struct kent *e = malloc((size_t)cap * sizeof(*e));
    if (!e)
        return -1;
    for (uint32_t i = 0; i < cap; i++)
        e[i].val = NONE;
    for (uint32_t i = 0; i < k->cap; i++) {
        if (k->e[i].val == NONE)
            continue;
        uint32_t j = k->e[i].hash & (cap - 1);
        while (e[j].val != NONE)
            j = (j + 1) & (cap - 1);
        e[j] = k->e[i];
    }
    free(k->e);
    k->e = e;
    k->cap = cap;
    return 0;
}

/* Appends s[0..n) to the arena; its offset, or NONE when memory runs out. */
static uint32_t arena_add(struct route_table *t, const char *s, size_t n)
{
    if (t->arena_len + n > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 4096;
        while (cap < t->arena_len + n)
            cap *= 2;
        char *a = realloc(t->arena, cap);
        if (!a)
            return NONE;
        t->arena = a;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, s, n);
    t->arena_len += n;
    return (uint32_t)(t->arena_len - n);
}

/* ---------------------------------------------------------------------------------------------
 * Building
 */

/* A node's lists while building: grown per route, flattened into idx at the end. */
struct vec {
    uint32_t *v;
    uint32_t n, cap;
};

struct build {
    struct route_table *t;
    struct vec *prefix, *exact; /* [nodes_cap] */
};

static uint32_t new_node(struct build *b)
{
    struct route_table *t = b->t;
    if (t->nnodes == t->nodes_cap) {
        uint32_t cap = t->nodes_cap ? t->nodes_cap * 2 : 64;
        struct rnode *n = realloc(t->nodes, (size_t)cap * sizeof(*n));
        struct vec *p = n ? realloc(b->prefix, (size_t)cap * sizeof(*p)) : NULL;
        if (n)
            t->nodes = n;
        if (p)
            b->prefix = p;
        struct vec *e = p ? realloc(b->exact, (size_t)cap * sizeof(*e)) : NULL;
        if (!e)
            return NONE;
        b->exact = e;
        t->nodes_cap = cap;
    }
    uint32_t id = t->nnodes++;
    t->nodes[id] = (struct rnode){.min_route = NONE};
    b->prefix[id] = (struct vec){0};
    b->exact[id] = (struct vec){0};
    return id;
}

/* The value of key (tag, s[0..n)), creating it with a new node when absent. NONE: no memory. */
static uint32_t get_or_add(struct build *b, uint32_t tag, const char *s, size_t n)
{
    struct route_table *t = b->t;
    uint32_t h = hash_rev(s, n, tag);
    const struct kent *found = ktab_find(t, tag, s, n, h);
    if (found)
        return found->val;
    if ((t->keys.n + 1) * 2 > t->keys.cap && ktab_grow(&t->keys) != 0)
        return NONE;
    uint32_t off = arena_add(t, s, n), node = off == NONE ? NONE : new_node(b);
    if (node == NONE)
        return NONE;
    uint32_t i = h & (t->keys.cap - 1);
    while (t->keys.e[i].val != NONE)
        i = (i + 1) & (t->keys.cap - 1);
    t->keys.e[i] =
        (struct kent){.tag = tag, .off = off, .len = (uint32_t)n, .hash = h, .val = node};
    t->keys.n++;
    if (tag == KT_WILD)
        t->nwild++;
    return node;
}

static int vec_push(struct vec *v, uint32_t x)
{
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 2;
        uint32_t *n = realloc(v->v, (size_t)cap * sizeof(*n));
        if (!n)
            return -1;
        v->v = n;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

/* The whole segments every path a regex matches must start with, as a prefix ("/r12" for
 * "^/r12/[0-9]+$"; NULL when there is none): the literal characters after a leading "^" up to the
 * first metacharacter, without one a quantifier follows, cut at its last "/". A pattern with a
 * "|" anywhere gives none ("^/a|/b" matches "/b" anywhere). The route can then sit at that node,
 * so that a table of regexes with distinct first segments tries one or two of them per request,
 * not all. Only a candidate filter: the regex is still run on every candidate. */
static const char *regex_prefix(const char *re, char *buf, size_t cap)
{
    if (re[0] != '^' || re[1] != '/' || strchr(re, '|'))
        return NULL;
    size_t n = 0, slash = 0;
    for (const char *c = re + 1; *c && n + 1 < cap; c++) {
        if (strchr("\\^$.[]()?*+{}", *c))
            break;
        if (c[1] && strchr("?*+{", c[1]))
            break; /* quantified: zero times is possible */
        buf[n] = *c;
        if (*c == '/')
            slash = n;
        n++;
    }
    if (slash == 0)
        return NULL; /* only the leading "/": the root */
    buf[slash] = '\0';
    return buf;
}

/* Puts route i in its tree. -1 when memory runs out. */
static int insert(struct build *b, uint32_t i)
{
    struct route_table *t = b->t;
    const struct config_route *r = &t->cfg->routes[i];
    uint32_t node;
    if (!r->host) {
        if (t->any == NONE && (t->any = new_node(b)) == NONE)
            return -1;
        node = t->any;
    } else if (r->host[0] == '*') {
        node = get_or_add(b, KT_WILD, r->host + 2, strlen(r->host + 2));
    } else {
        node = get_or_add(b, KT_EXACT, r->host, strlen(r->host));
    }
    if (node == NONE)
        return -1;
    if (t->nodes[node].min_route == NONE) /* routes come in ascending order */
        t->nodes[node].min_route = i;
    const char *p = r->path ? r->path : r->path_prefix;
    bool exact = r->path != NULL;
    char lit[256];
    const char *rp = !exact && r->path_regex ? regex_prefix(r->path_regex, lit, sizeof(lit)) : NULL;
    if (rp) { /* deeper than the pathPrefix and within it: the regex's node holds both */
        size_t pl = p ? strlen(p) : 1;
        if (!p || pl == 1 || (strncmp(rp, p, pl) == 0 && (rp[pl] == '\0' || rp[pl] == '/')))
            p = rp;
    }
    if (p && !(strcmp(p, "/") == 0 && !exact)) {
        const char *s = p + 1, *end = p + strlen(p);
        for (;;) {
            const char *q = memchr(s, '/', (size_t)(end - s));
            q = q ? q : end;
            t->nodes[node].has_children = true;
            if ((node = get_or_add(b, node, s, (size_t)(q - s))) == NONE)
                return -1;
            if (q == end)
                break;
            s = q + 1;
        }
    }
    return vec_push(exact ? &b->exact[node] : &b->prefix[node], i);
}

/* Fields of a filter: names (and values) as http_field spans over the configuration's strings. */
static struct http_field *add_fields(struct http_field *f, const struct config_route_field *set,
                                     int nset, char *const *remove)
{
    for (int j = 0; j < nset; j++)
        *f++ = (struct http_field){.name = set[j].name,
                                   .name_len = (uint32_t)strlen(set[j].name),
                                   .value = set[j].value ? set[j].value : "",
                                   .value_len = set[j].value ? (uint32_t)strlen(set[j].value) : 0};
    for (size_t j = 0; remove && remove[j]; j++)
        *f++ = (struct http_field){.name = remove[j], .name_len = (uint32_t)strlen(remove[j])};
    return f;
}

static size_t count_names(char *const *names)
{
    size_t n = 0;
    while (names && names[n])
        n++;
    return n;
}

/* Route i's request and response filters (setRequestHeaders, removeRequestHeaders, ...) as the
 * rewrite module takes them. */
static int compile_filters(struct croute *c, const struct config_route *r)
{
    size_t rq = count_names(r->remove_request_headers), rs = count_names(r->remove_response_headers);
    size_t n = (size_t)r->nset_request_headers + rq + (size_t)r->nset_response_headers + rs;
    if (n == 0)
        return 0;
    if (!(c->hf = calloc(n, sizeof(*c->hf))))
        return -1;
    struct http_field *f = c->hf;
    c->req_hdr = (struct rewrite_headers){f, (size_t)r->nset_request_headers,
                                          f + r->nset_request_headers, rq};
    f = add_fields(f, r->set_request_headers, r->nset_request_headers, r->remove_request_headers);
    c->resp_hdr = (struct rewrite_headers){f, (size_t)r->nset_response_headers,
                                           f + r->nset_response_headers, rs};
    add_fields(f, r->set_response_headers, r->nset_response_headers, r->remove_response_headers);
    return 0;
}

/* The extras of route i: lower-cased header names, its regex compiled and JIT-compiled. */
static int compile_route(struct route_table *t, uint32_t i)
{
    struct croute *c = &t->routes[i];
    const struct config_route *r = &t->cfg->routes[i];
    c->cfg = r;
    c->extra = r->methods || r->nheaders || r->nquery || r->path_regex;
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 of the name */
    for (const char *s = r->name; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    c->limit_id = h;
    for (int j = 0; j < r->nsplit; j++)
        c->split_total += r->split[j].weight;
    c->split_stride = split_stride(c->split_total);
    if (compile_filters(c, r) != 0)
        return -1;
    if (r->nheaders) {
        c->header_names = calloc((size_t)r->nheaders, sizeof(*c->header_names));
        c->header_lens = calloc((size_t)r->nheaders, sizeof(*c->header_lens));
        if (!c->header_names || !c->header_lens)
            return -1;
        for (int j = 0; j < r->nheaders; j++) {
            size_t n = strlen(r->headers[j].name);
            if (!(c->header_names[j] = malloc(n + 1)))
                return -1;
            for (size_t k = 0; k <= n; k++) {
                char ch = r->headers[j].name[k];
                c->header_names[j][k] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
            }
            c->header_lens[j] = n;
        }
    }
    if (r->path_regex) {
        int err;
        PCRE2_SIZE off;
        c->re =
            pcre2_compile((PCRE2_SPTR)r->path_regex, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
        if (!c->re)
            return -1; /* config_load compiled it: only memory can fail here */
        c->jit = pcre2_jit_compile(c->re, PCRE2_JIT_COMPLETE) == 0;
        size_t sz = 0;
        if (pcre2_pattern_info(c->re, PCRE2_INFO_SIZE, &sz) == 0)
            t->re_bytes += sz;
        if (c->jit && pcre2_pattern_info(c->re, PCRE2_INFO_JITSIZE, &sz) == 0)
            t->re_bytes += sz;
    }
    return 0;
}

/* Each node's lists into idx. */
static int flatten(struct build *b)
{
    struct route_table *t = b->t;
    size_t total = 0;
    for (uint32_t i = 0; i < t->nnodes; i++)
        total += (size_t)b->prefix[i].n + b->exact[i].n;
    t->idx = malloc((total ? total : 1) * sizeof(*t->idx));
    if (!t->idx)
        return -1;
    for (uint32_t i = 0; i < t->nnodes; i++) {
        struct rnode *n = &t->nodes[i];
        n->prefix_off = (uint32_t)t->nidx;
        n->nprefix = b->prefix[i].n;
        if (n->nprefix)
            memcpy(t->idx + t->nidx, b->prefix[i].v, n->nprefix * sizeof(uint32_t));
        t->nidx += n->nprefix;
        n->exact_off = (uint32_t)t->nidx;
        n->nexact = b->exact[i].n;
        if (n->nexact)
            memcpy(t->idx + t->nidx, b->exact[i].v, n->nexact * sizeof(uint32_t));
        t->nidx += n->nexact;
    }
    return 0;
}

struct route_table *route_table_build(const struct config *cfg)
{
    struct route_table *t = calloc(1, sizeof(*t));
    struct build b = {.t = t};
    if (!t)
        return NULL;
    t->cfg = cfg;
    t->any = NONE;
    t->nroutes = cfg->nroutes;
    int rc = 0;
    if (cfg->nroutes) {
        t->routes = calloc((size_t)cfg->nroutes, sizeof(*t->routes));
        rc = t->routes ? 0 : -1;
    }
    for (int i = 0; rc == 0 && i < cfg->nroutes; i++)
        rc = compile_route(t, (uint32_t)i) == 0 && insert(&b, (uint32_t)i) == 0 ? 0 : -1;
    if (rc == 0)
        rc = flatten(&b);
    for (uint32_t i = 0; i < t->nnodes; i++) {
        free(b.prefix[i].v);
        free(b.exact[i].v);
    }
    free(b.prefix);
    free(b.exact);
    if (rc != 0) {
        route_table_free(t);
        return NULL;
    }
    return t;
}

void route_table_free(struct route_table *t)
{
    if (!t)
        return;
    for (int i = 0; t->routes && i < t->nroutes; i++) {
        struct croute *c = &t->routes[i];
        for (int j = 0; c->header_names && j < c->cfg->nheaders; j++)
            free(c->header_names[j]);
        free(c->header_names);
        free(c->header_lens);
        free(c->hf);
        pcre2_code_free(c->re);
    }
    free(t->routes);
    free(t->keys.e);
    free(t->arena);
    free(t->nodes);
    free(t->idx);
    free(t);
}

size_t route_table_memory(const struct route_table *t)
{
    size_t m = sizeof(*t) + (size_t)t->nroutes * sizeof(*t->routes) +
               (size_t)t->keys.cap * sizeof(*t->keys.e) + t->arena_cap +
               (size_t)t->nodes_cap * sizeof(*t->nodes) + t->nidx * sizeof(*t->idx) + t->re_bytes;
    for (int i = 0; i < t->nroutes; i++) {
        const struct croute *c = &t->routes[i];
        for (int j = 0; c->header_names && j < c->cfg->nheaders; j++)
            m += c->header_lens[j] + 1 + sizeof(char *) + sizeof(size_t);
    }
    return m;
}

/* ---------------------------------------------------------------------------------------------
 * Matching
 */

/* The request's host as keys are: lower case, without port and trailing dot, into buf; its
 * length, 0 when there is none usable. */
static size_t host_key(const struct route_input *in, char buf[HOST_MAX])
{
    const char *h = in->host;
    size_t n = in->host ? in->host_len : 0;
    if (n && h[0] == '[') { /* "[v6]:port": up to "]" */
        const char *rb = memchr(h, ']', n);
        n = rb ? (size_t)(rb - h) + 1 : 0;
    } else if (n) {
        const char *colon = memchr(h, ':', n);
        if (colon)
            n = (size_t)(colon - h);
    }
    if (n && h[n - 1] == '.')
        n--;
    if (n == 0 || n > HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        buf[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    return n;
}

/* The query has name=value (raw bytes; "name" alone is name=""). */
static bool query_has(const struct route_input *in, const char *name, const char *value)
{
    const char *q = in->query, *end = in->query ? in->query + in->query_len : NULL;
    size_t nl = strlen(name), vl = strlen(value);
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ne = eq ? eq : pe, *v = eq ? eq + 1 : pe;
        if ((size_t)(ne - q) == nl && memcmp(q, name, nl) == 0 && (size_t)(pe - v) == vl &&
            memcmp(v, value, vl) == 0)
            return true;
        q = amp ? amp + 1 : end;
    }
    return false;
}

/* The request has the header (any value when value is NULL, else that exact value). */
static bool header_has(const struct route_input *in, const char *name, size_t nl, const char *value)
{
    if (!in->header)
        return false;
    size_t vl = value ? strlen(value) : 0, len;
    const char *v;
    for (size_t nth = 0; (v = in->header(in->header_ctx, name, nl, nth, &len)); nth++)
        if (!value || (len == vl && memcmp(v, value, vl) == 0))
            return true;
    return false;
}

static bool regex_match(const struct croute *c, const struct route_input *in)
{
    pcre2_match_data *md = in->worker ? in->worker->md : pcre2_match_data_create(1, NULL);
    if (!md)
        return false;
    int rc = c->jit ? pcre2_jit_match(c->re, (PCRE2_SPTR)in->path, in->path_len, 0, 0, md, NULL)
                    : pcre2_match(c->re, (PCRE2_SPTR)in->path, in->path_len, 0, 0, md, NULL);
    if (!in->worker)
        pcre2_match_data_free(md);
    return rc >= 0; /* no match, or a limit hit (JIT stack): no match either way */
}

/* Route i's conditions beyond host and path. */
static bool extra_ok(const struct route_table *t, uint32_t i, const struct route_input *in)
{
    const struct croute *c = &t->routes[i];
    const struct config_route *r = c->cfg;
    if (!c->extra)
        return true;
    if (r->methods) {
        bool found = false;
        for (size_t j = 0; r->methods[j] && !found; j++)
            found = strlen(r->methods[j]) == in->method_len &&
                    memcmp(r->methods[j], in->method, in->method_len) == 0;
        if (!found)
            return false;
    }
    for (int j = 0; j < r->nquery; j++)
        if (!query_has(in, r->query[j].name, r->query[j].value))
            return false;
    for (int j = 0; j < r->nheaders; j++)
        if (!header_has(in, c->header_names[j], c->header_lens[j], r->headers[j].value))
            return false;
    return !c->re || regex_match(c, in);
}

/* The lowest index of list[0..n) below *best whose extra conditions hold, into *best. */
static void scan(const struct route_table *t, uint32_t off, uint32_t n,
                 const struct route_input *in, uint32_t *best)
{
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = t->idx[off + k];
        if (i >= *best)
            return;
        if (extra_ok(t, i, in)) {
            *best = i;
            return;
        }
    }
}

/* One tree: its root's prefix list, then down the path segment by segment. */
static void walk(const struct route_table *t, uint32_t node, const struct route_input *in,
                 uint32_t *best)
{
    const struct rnode *n = &t->nodes[node];
    if (n->min_route >= *best)
        return;
    scan(t, n->prefix_off, n->nprefix, in, best);
    if (!in->path || in->path_len == 0 || in->path[0] != '/')
        return;
    const char *s = in->path + 1, *end = in->path + in->path_len;
    while (n->has_children) {
        const char *q = memchr(s, '/', (size_t)(end - s));
        q = q ? q : end;
        size_t len = (size_t)(q - s);
        const struct kent *e = ktab_find(t, node, s, len, hash_rev(s, len, node));
        if (!e)
            return;
        node = e->val;
        n = &t->nodes[node];
        scan(t, n->prefix_off, n->nprefix, in, best);
        if (q == end) {
            scan(t, n->exact_off, n->nexact, in, best);
            return;
        }
        s = q + 1;
    }
}

int route_match(const struct route_table *t, const struct route_input *in)
{
    uint32_t best = NONE;
    char host[HOST_MAX];
    if (t->nroutes == 0)
        return -1;
    if (t->any != NONE)
        walk(t, t->any, in, &best);
    size_t hl = t->keys.n ? host_key(in, host) : 0;
    if (hl) {
        /* one backward pass: the hash of each suffix after a dot is the hash so far there */
        uint32_t h = 2166136261u;
        for (size_t i = hl; i-- > 0;) {
            if (host[i] == '.' && i > 0 && t->nwild) { /* a label before the suffix */
                size_t sl = hl - i - 1;
                const struct kent *e =
                    ktab_find(t, KT_WILD, host + i + 1, sl, hash_finish(h, KT_WILD));
                if (e)
                    walk(t, e->val, in, &best);
            }
            h = (h ^ (unsigned char)host[i]) * 16777619u;
        }
        const struct kent *e = ktab_find(t, KT_EXACT, host, hl, hash_finish(h, KT_EXACT));
        if (e)
            walk(t, e->val, in, &best);
    }
    return best == NONE ? -1 : (int)best;
}

/* ---------------------------------------------------------------------------------------------
 * After the match
 */

const struct config_route *route_get(const struct route_table *t, int i)
{
    return i >= 0 && i < t->nroutes ? t->routes[i].cfg : NULL;
}

int route_count(const struct route_table *t)
{
    return t->nroutes;
}

const struct rewrite_headers *route_request_headers(const struct route_table *t, int i)
{
    const struct rewrite_headers *h = &t->routes[i].req_hdr;
    return h->nset + h->nremove ? h : NULL;
}

const struct rewrite_headers *route_response_headers(const struct route_table *t, int i)
{
    const struct rewrite_headers *h = &t->routes[i].resp_hdr;
    return h->nset + h->nremove ? h : NULL;
}

int route_pool(const struct route_table *t, int i, uint32_t draw)
{
    const struct croute *c = &t->routes[i];
    const struct config_route *r = c->cfg;
    if (r->action == CONFIG_ROUTE_POOL)
        return r->pool;
    if (r->action != CONFIG_ROUTE_SPLIT || c->split_total == 0)
        return -1;
    /* Draw positions are visited in a stride permutation of [0, total): each cycle still gives
     * every pool exactly its weight, interleaved (95/5: a canary request about every 20th)
     * rather than in one block. */
    uint32_t x = (uint32_t)((uint64_t)(draw % c->split_total) * c->split_stride % c->split_total);
    for (int j = 0; j < r->nsplit; j++) {
        if (x < r->split[j].weight)
            return r->split[j].pool;
        x -= r->split[j].weight;
    }
    return -1; /* not reached: the weights sum to split_total */
}

bool route_client_allowed(const struct route_table *t, int i, const struct sockaddr *client)
{
    const struct config_route *r = t->routes[i].cfg;
    if (r->ndeny && cidr_list_match(r->deny, (size_t)r->ndeny, client))
        return false;
    return !r->has_allow || cidr_list_match(r->allow, (size_t)r->nallow, client);
}

uint32_t route_rate_limit(struct route_worker *w, const struct route_table *t, int i,
                          const struct sockaddr *client, uint64_t now_ms)
{
    const struct croute *c = &t->routes[i];
    if (!c->cfg->rate_mrps || !w || !w->rl)
        return 0;
    /* the key: the route's name hash, then the client's IP bytes (FNV-1a 64) */
    uint64_t k = c->limit_id;
    const unsigned char *ip = NULL;
    size_t n = 0;
    if (client && client->sa_family == AF_INET) {
        ip = (const unsigned char *)&((const struct sockaddr_in *)(const void *)client)->sin_addr;
        n = 4;
    } else if (client && client->sa_family == AF_INET6) {
        ip = ((const struct sockaddr_in6 *)(const void *)client)->sin6_addr.s6_addr;
        n = 16;
    }
    for (size_t j = 0; j < n; j++)
        k = (k ^ ip[j]) * 1099511628211ull;
    uint32_t ms = ratelimit_take(w->rl, k, c->cfg->rate_mrps, c->cfg->rate_burst, now_ms);
    return ms ? (ms + 999) / 1000 : 0;
}

struct route_worker *route_worker_new(size_t buckets)
{
    struct route_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->md = pcre2_match_data_create(1, NULL);
    w->rl = ratelimit_new(buckets);
    if (!w->md || !w->rl) {
        route_worker_free(w);
        return NULL;
    }
    return w;
}

void route_worker_free(struct route_worker *w)
{
    if (!w)
        return;
    pcre2_match_data_free(w->md);
    ratelimit_free(w->rl);
    free(w);
}
