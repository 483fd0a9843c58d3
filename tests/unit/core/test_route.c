/* Unit tests for route: first-match order across hosts, wildcards and overlapping prefixes and
 * regexes; every match key; Host with a port, a trailing dot and upper case; paths normalised as
 * the session will (http/path.h) before matching; the splitter's shares over 10,000 draws; allow
 * and deny; the rate limit per client and route; and a 10,000-route table (1,000 hosts × 10
 * prefixes), whose build time and memory are printed, not asserted. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "core/route.h"
#include "http/path.h"

static struct config *cfg;
static struct route_table *table;
static struct route_worker *worker;

static void load(const char *yaml)
{
    size_t len = 0;
    char *errs = NULL;
    FILE *f = open_memstream(&errs, &len);
    config_set_resolve_numeric_only(true);
    int rc = config_load_buffer("t.yaml", yaml, strlen(yaml), f, &cfg);
    fclose(f);
    cr_assert_eq(rc, 0, "%s", errs);
    free(errs);
    table = route_table_build(cfg);
    cr_assert_not_null(table);
    worker = route_worker_new(1024);
    cr_assert_not_null(worker);
}

static void unload(void)
{
    route_worker_free(worker);
    route_table_free(table);
    config_free(cfg);
    worker = NULL;
    table = NULL;
    cfg = NULL;
}

/* Header fields as "Name: value" strings, NULL-terminated. */
static const char *header_cb(const void *ctx, const char *name, size_t nl, size_t nth, size_t *vl)
{
    const char *const *h = ctx;
    for (; h && *h; h++) {
        const char *colon = strchr(*h, ':');
        if ((size_t)(colon - *h) != nl || strncasecmp(*h, name, nl) != 0)
            continue;
        if (nth-- > 0)
            continue;
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        *vl = strlen(v);
        return v;
    }
    return NULL;
}

/* The name of the route a request takes ("-" for none): target normalised as a session would. */
static const char *match_h(const char *method, const char *host, const char *target,
                           const char *const *headers)
{
    static char buf[4096];
    size_t n;
    size_t tl = strlen(target);
    cr_assert_lt(tl, sizeof(buf));
    cr_assert_eq(path_normalize_target(target, tl, cfg->encoded_slash_reject, buf, &n), PATH_OK,
                 "%s", target);
    const char *q = memchr(buf, '?', n);
    struct route_input in = {
        .method = method,
        .method_len = strlen(method),
        .host = host,
        .host_len = host ? strlen(host) : 0,
        .path = buf,
        .path_len = q ? (size_t)(q - buf) : n,
        .query = q ? q + 1 : NULL,
        .query_len = q ? n - (size_t)(q - buf) - 1 : 0,
        .header = header_cb,
        .header_ctx = headers,
        .worker = worker,
    };
    int i = route_match(table, &in);
    in.worker = NULL; /* the allocating path gives the same answer */
    cr_assert_eq(route_match(table, &in), i);
    return i < 0 ? "-" : route_get(table, i)->name;
}

static const char *match(const char *host, const char *target)
{
    return match_h("GET", host, target, NULL);
}

#define B                                                                                          \
    "backends: [http://127.0.0.1:8081]\npools:\n  api:\n    backends: [http://127.0.0.1:9000]\n"

#define EXPECT(got, ...) cr_expect_str_eq(got, __VA_ARGS__)

Test(route, empty_tables)
{
    load(B);
    cr_assert_eq(route_count(table), 0);
    EXPECT(match("a.com", "/"), "-");
    EXPECT(match(NULL, "/x"), "-");
    unload();
}

Test(route, first_match_wins)
{
    load(B "routes:\n"
           "  - {name: login, match: {path: /api/login, methods: [POST]}, pool: api}\n"
           "  - {name: users, match: {pathRegex: \"^/api/v[0-9]+/users/[0-9]+$\"}, pool: api}\n"
           "  - {name: api, match: {pathPrefix: /api}, pool: api}\n"
           "  - {name: v2, match: {pathPrefix: /api/v2}, pool: api}\n" /* shadowed: a warning */
           "  - {name: any-v, match: {pathRegex: \"/v[0-9]+/\"}, pool: api}\n"
           "  - {name: root, match: {path: /}, pool: api}\n"
           "  - {name: all, pool: default}\n");
    EXPECT(match_h("POST", "a", "/api/login", NULL), "login");
    EXPECT(match_h("GET", "a", "/api/login", NULL), "api");
    EXPECT(match("a", "/api/v1/users/42"), "users");
    EXPECT(match("a", "/api/v1/users/42/x"), "api");
    EXPECT(match("a", "/api/v2/x"), "api");
    EXPECT(match("a", "/b/v2/x"), "any-v");
    EXPECT(match("a", "/"), "root");
    EXPECT(match("a", "/x"), "all");
    EXPECT(match("a", "/apix"), "all");
    unload();
}

Test(route, hosts_and_wildcards)
{
    load(B "routes:\n"
           "  - {name: canary, match: {headers: {X-Canary: \"1\"}}, pool: api}\n"
           "  - {name: deep, match: {host: \"*.b.example.com\"}, pool: api}\n"
           "  - {name: exact, match: {host: api.example.com}, pool: api}\n"
           "  - {name: wild, match: {host: \"*.example.com\"}, pool: api}\n"
           "  - {name: bare, match: {host: example.com}, pool: api}\n"
           "  - {name: v6, match: {host: \"[::1]\"}, pool: api}\n"
           "  - {name: ip, match: {host: 10.0.0.1}, pool: api}\n"
           "  - {name: static, match: {pathPrefix: /static}, pool: api}\n");
    EXPECT(match("api.example.com", "/"), "exact");
    EXPECT(match("API.Example.COM", "/"), "exact");
    EXPECT(match("api.example.com.", "/"), "exact");
    EXPECT(match("api.example.com:8080", "/"), "exact");
    EXPECT(match("API.EXAMPLE.COM.:443", "/"), "exact");
    EXPECT(match("x.example.com", "/"), "wild");
    EXPECT(match("x.y.example.com", "/"), "wild", "one or more labels");
    EXPECT(match("x.b.example.com", "/"), "deep");
    EXPECT(match("b.example.com", "/"), "wild");
    EXPECT(match("example.com", "/"), "bare", "a wildcard needs a label before it");
    EXPECT(match("xexample.com", "/"), "-");
    EXPECT(match(".example.com", "/"), "-", "an empty label is no label (found by fuzz_route)");
    EXPECT(match("[::1]:8080", "/"), "v6");
    EXPECT(match("[::1]", "/"), "v6");
    EXPECT(match("10.0.0.1:80", "/"), "ip");
    EXPECT(match("other.org", "/static/a.css"), "static");
    EXPECT(match(NULL, "/static/a.css"), "static");
    EXPECT(match(NULL, "/"), "-");
    EXPECT(match("", "/"), "-");
    EXPECT(match(".", "/"), "-");
    EXPECT(match(":80", "/"), "-");
    const char *canary[] = {"X-Canary: 1", NULL};
    EXPECT(match_h("GET", "api.example.com", "/", canary), "canary");
    const char *not_canary[] = {"X-Canary: 2", NULL};
    EXPECT(match_h("GET", "api.example.com", "/", not_canary), "exact");
    /* a host longer than any name: only routes without a host */
    char longhost[300];
    memset(longhost, 'a', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    EXPECT(match(longhost, "/static/"), "static");
    EXPECT(match(longhost, "/"), "-");
    unload();
}

Test(route, host_routes_with_paths)
{
    /* 3 hosts × prefixes, plus routes for any host before and after: indices decide */
    load(B "routes:\n"
           "  - {name: a-api, match: {host: a.com, pathPrefix: /api}, pool: api}\n"
           "  - {name: any-health, match: {path: /health}, pool: api}\n"
           "  - {name: a-all, match: {host: a.com}, pool: api}\n"
           "  - {name: b-exact, match: {host: b.com, path: /x/y}, pool: api}\n"
           "  - {name: wild-x, match: {host: \"*.com\", pathPrefix: /x}, pool: api}\n"
           "  - {name: any-x, match: {pathPrefix: /x}, pool: api}\n");
    EXPECT(match("a.com", "/api/v1"), "a-api");
    EXPECT(match("a.com", "/health"), "any-health");
    EXPECT(match("a.com", "/x"), "a-all");
    EXPECT(match("b.com", "/x/y"), "b-exact");
    EXPECT(match("b.com", "/x/y/"), "wild-x");
    EXPECT(match("b.com", "/x"), "wild-x");
    EXPECT(match("b.org", "/x"), "any-x");
    EXPECT(match("b.org", "/health"), "any-health");
    EXPECT(match("b.com", "/y"), "-");
    unload();
}

Test(route, segment_wise_prefixes_and_paths)
{
    load(B "routes:\n"
           "  - {name: static, match: {pathPrefix: /static/}, pool: api}\n"
           "  - {name: exact, match: {path: /a/b}, pool: api}\n"
           "  - {name: exact-slash, match: {path: /a/b/}, pool: api}\n"
           "  - {name: deep, match: {pathPrefix: /a/b/c}, pool: api}\n"
           "  - {name: empty-seg, match: {pathPrefix: \"/d//e\"}, pool: api}\n");
    EXPECT(match("h", "/static"), "static");
    EXPECT(match("h", "/static/"), "static");
    EXPECT(match("h", "/static/a.css"), "static");
    EXPECT(match("h", "/staticx"), "-");
    EXPECT(match("h", "/stati"), "-");
    EXPECT(match("h", "//static"), "-");
    EXPECT(match("h", "/a/b"), "exact");
    EXPECT(match("h", "/a/b/"), "exact-slash");
    EXPECT(match("h", "/a/b/c/d"), "deep");
    EXPECT(match("h", "/a/b/cd"), "-");
    EXPECT(match("h", "/a"), "-");
    EXPECT(match("h", "/d//e/f"), "empty-seg");
    EXPECT(match("h", "/d/e/f"), "-");
    unload();
}

Test(route, normalisation_interplay)
{
    load(B "routes:\n"
           "  - {name: static, match: {pathPrefix: /static}, pool: api}\n"
           "  - {name: tilde, match: {path: \"/%7Euser\"}, pool: api}\n"
           "  - {name: enc, match: {path: \"/a%2fb\"}, pool: api}\n"
           "  - {name: re, match: {pathRegex: \"^/b/~x$\"}, pool: api}\n");
    EXPECT(match("h", "/x/../static/a"), "static");
    EXPECT(match("h", "/%73tatic/a"), "static", "%73 is s: decoded");
    EXPECT(match("h", "/static/./a/../b"), "static");
    EXPECT(match("h", "/static%2Fa"), "-", "%2F stays a byte of the segment");
    EXPECT(match("h", "/~user"), "tilde");
    EXPECT(match("h", "/%7euser"), "tilde");
    EXPECT(match("h", "/a%2Fb"), "enc");
    EXPECT(match("h", "/a%2fb"), "enc", "hex case does not matter");
    EXPECT(match("h", "/a/b"), "-", "an encoded slash is not a slash");
    EXPECT(match("h", "/b/%7ex"), "re", "regexes see the normal form too");
    EXPECT(match("h", "/b/~x?q=1"), "re", "and never the query");
    unload();
}

Test(route, regexes_with_a_literal_prefix)
{
    /* regexes whose literal start names whole segments sit at that node of the tree: the answers
     * must be those of trying every regex in order */
    load(B "routes:\n"
           "  - {name: r1, match: {pathRegex: \"^/r1/[0-9]+$\"}, pool: api}\n"
           "  - {name: r12, match: {pathRegex: \"^/r12/[0-9]+$\"}, pool: api}\n"
           "  - {name: quant, match: {pathRegex: \"^/q/ab?/x\"}, pool: api}\n"
           "  - {name: alt, match: {pathRegex: \"^/alt/x|/y/\"}, pool: api}\n"
           "  - {name: esc, match: {pathRegex: \"^/e\\\\/x/\"}, pool: api}\n"
           "  - {name: case, match: {pathRegex: \"^/c/(?i)ABC$\"}, pool: api}\n"
           "  - {name: within, match: {pathPrefix: /w, pathRegex: \"^/w/x/\"}, pool: api}\n"
           "  - {name: outside, match: {pathPrefix: /w, pathRegex: \"^/v/x/\"}, pool: api}\n"
           "  - {name: above, match: {pathPrefix: /u/v/w, pathRegex: \"^/u/\"}, pool: api}\n");
    EXPECT(match("h", "/r1/5"), "r1");
    EXPECT(match("h", "/r12/5"), "r12");
    EXPECT(match("h", "/r123/5"), "-");
    EXPECT(match("h", "/q/a/x"), "quant");
    EXPECT(match("h", "/q/ab/x"), "quant");
    EXPECT(match("h", "/alt/x"), "alt");
    EXPECT(match("h", "/anything/y/"), "alt", "\"|\" ends the anchored part");
    EXPECT(match("h", "/e/x/"), "esc");
    EXPECT(match("h", "/c/abc"), "case");
    EXPECT(match("h", "/w/x/1"), "within");
    EXPECT(match("h", "/v/x/1"), "-", "the pathPrefix still holds");
    EXPECT(match("h", "/u/v/w/1"), "above");
    EXPECT(match("h", "/u/x"), "-");
    unload();
}

Test(route, methods_headers_query)
{
    load(B "routes:\n"
           "  - {name: m, match: {methods: [PUT, PROPFIND]}, pool: api}\n"
           "  - {name: h2, match: {headers: {X-A: \"1\", x-b: \"*\"}}, pool: api}\n"
           "  - {name: h1, match: {headers: {X-A: \"*\"}}, pool: api}\n"
           "  - {name: q, match: {query: {debug: \"1\", e: \"\"}}, pool: api}\n"
           "  - {name: q2, match: {query: {v: \"a%20b\"}}, pool: api}\n");
    EXPECT(match_h("PUT", "h", "/", NULL), "m");
    EXPECT(match_h("PROPFIND", "h", "/", NULL), "m");
    EXPECT(match_h("put", "h", "/", NULL), "-", "methods are case-sensitive");
    EXPECT(match_h("PUTX", "h", "/", NULL), "-");
    const char *h_both[] = {"x-a: 1", "X-B: whatever", NULL};
    const char *h_a_only[] = {"X-A: 1", NULL};
    const char *h_a_other[] = {"X-A: 2", NULL};
    const char *h_a_second[] = {"X-A: 2", "X-A: 1", "X-B: ", NULL};
    const char *h_value_case[] = {"X-A: 1", NULL};
    EXPECT(match_h("GET", "h", "/", h_both), "h2");
    EXPECT(match_h("GET", "h", "/", h_a_only), "h1");
    EXPECT(match_h("GET", "h", "/", h_a_other), "h1");
    EXPECT(match_h("GET", "h", "/", h_a_second), "h2", "any of several fields counts");
    EXPECT(match_h("GET", "h", "/", h_value_case), "h1");
    EXPECT(match("h", "/?debug=1&e="), "q");
    EXPECT(match("h", "/?e&x=2&debug=1"), "q", "a name alone is an empty value");
    EXPECT(match("h", "/?debug=1"), "-");
    EXPECT(match("h", "/?debug=10&e="), "-");
    EXPECT(match("h", "/?debug=1&e=0"), "-");
    EXPECT(match("h", "/?v=a%20b"), "q2", "raw bytes, not decoded");
    EXPECT(match("h", "/?v=a+b"), "-");
    EXPECT(match("h", "/"), "-");
    unload();
}

Test(route, pools_and_actions)
{
    load(B "routes:\n"
           "  - {name: p, match: {path: /p}, pool: api}\n"
           "  - {name: r, match: {path: /r}, redirect: {scheme: https}}\n"
           "  - {name: a, match: {path: /a}, respond: {status: 404}}\n"
           "  - {name: s, split: [{pool: default, weight: 95}, {pool: api, weight: 5}]}\n");
    cr_assert_eq(route_count(table), 4);
    cr_assert_eq(route_pool(table, 0, 7), 1);
    cr_assert_eq(route_pool(table, 1, 7), -1);
    cr_assert_eq(route_pool(table, 2, 7), -1);
    cr_assert_eq(route_get(table, 1)->action, CONFIG_ROUTE_REDIRECT);
    cr_assert_null(route_get(table, 4));
    cr_assert_null(route_get(table, -1));
    EXPECT(match("h", "/anything"), "s");
    unload();
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

Test(route, split_weights_hold)
{
    load(B "  canary:\n    backends: [http://127.0.0.1:9001]\n"
           "routes:\n"
           "  - {name: s, split: [{pool: default, weight: 95}, {pool: canary, weight: 5}]}\n"
           "  - {name: t, split: [{pool: default, weight: 500}, {pool: api, weight: 300}, "
           "{pool: canary, weight: 200}]}\n");
    /* a counter: exact shares per cycle of the total weight */
    int n[3] = {0};
    for (uint32_t d = 0; d < 10000; d++)
        n[route_pool(table, 0, d)]++;
    cr_assert_eq(n[0], 9500);
    cr_assert_eq(n[2], 500);
    /* interleaved, not in a block: never more than one canary request in a row, and the default
     * pool's runs between two canary requests stay short (19 on average) */
    int run = 0, longest = 0, prev = -1;
    for (uint32_t d = 0; d < 200; d++) {
        int p = route_pool(table, 0, d);
        cr_assert(!(p == 2 && prev == 2), "two canary requests in a row at %u", d);
        run = p == 0 ? run + 1 : 0;
        longest = run > longest ? run : longest;
        prev = p;
    }
    cr_assert_leq(longest, 40, "a run of %d default requests", longest);
    /* random draws: within one point of each weight's share */
    uint32_t seed = 12345;
    int m[3] = {0}, k[3] = {0};
    for (int i = 0; i < 10000; i++) {
        m[route_pool(table, 0, xorshift(&seed))]++;
        k[route_pool(table, 1, xorshift(&seed))]++;
    }
    cr_log_info("95/5 split over 10,000 random draws: %d / %d", m[0], m[2]);
    cr_assert(m[0] >= 9400 && m[0] <= 9600, "default %d of 10000", m[0]);
    cr_assert(m[2] >= 400 && m[2] <= 600, "canary %d of 10000", m[2]);
    cr_assert(k[0] >= 4900 && k[0] <= 5100, "%d", k[0]);
    cr_assert(k[1] >= 2900 && k[1] <= 3100, "%d", k[1]);
    cr_assert(k[2] >= 1900 && k[2] <= 2100, "%d", k[2]);
    unload();
}

static struct sockaddr_storage ip(const char *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a = (void *)&ss;
    struct sockaddr_in6 *b = (void *)&ss;
    if (inet_pton(AF_INET, s, &a->sin_addr) == 1) {
        a->sin_family = AF_INET;
    } else {
        cr_assert_eq(inet_pton(AF_INET6, s, &b->sin6_addr), 1);
        b->sin6_family = AF_INET6;
    }
    return ss;
}

static bool allowed(int route, const char *addr)
{
    struct sockaddr_storage ss = ip(addr);
    return route_client_allowed(table, route, (struct sockaddr *)&ss);
}

Test(route, allow_and_deny)
{
    load(B "routes:\n"
           "  - {match: {path: /a}, allow: [10.0.0.0/8, \"::1\"], pool: api}\n"
           "  - {match: {path: /d}, deny: [10.1.0.0/16], pool: api}\n"
           "  - {match: {path: /b}, allow: [10.0.0.0/8], deny: [10.1.0.0/16], pool: api}\n"
           "  - {match: {path: /n}, allow: [], pool: api}\n"
           "  - {match: {path: /o}, pool: api}\n");
    cr_assert(allowed(0, "10.2.3.4"));
    cr_assert(allowed(0, "::1"));
    cr_assert(allowed(0, "::ffff:10.2.3.4"), "an IPv4 client on a dual-stack listener");
    cr_assert(!allowed(0, "192.0.2.1"));
    cr_assert(!allowed(0, "::2"));
    cr_assert(allowed(1, "10.2.3.4"));
    cr_assert(!allowed(1, "10.1.3.4"));
    cr_assert(allowed(2, "10.2.3.4"));
    cr_assert(!allowed(2, "10.1.3.4"), "deny wins over allow");
    cr_assert(!allowed(2, "192.0.2.1"));
    cr_assert(!allowed(3, "10.2.3.4"));
    cr_assert(allowed(4, "192.0.2.1"));
    unload();
}

static uint32_t limited(int route, const char *addr, uint64_t now)
{
    struct sockaddr_storage ss = ip(addr);
    return route_rate_limit(worker, table, route, (struct sockaddr *)&ss, now);
}

Test(route, rate_limits)
{
    load(B "routes:\n"
           "  - {name: login, match: {path: /login}, rateLimit: {requestsPerSecond: 5, burst: "
           "10}, pool: api}\n"
           "  - {name: slow, match: {path: /slow}, rateLimit: {requestsPerSecond: 0.1}, pool: "
           "api}\n"
           "  - {name: free, match: {path: /free}, pool: api}\n");
    for (int i = 0; i < 10; i++)
        cr_assert_eq(limited(0, "10.0.0.1", 1000), 0);
    cr_assert_eq(limited(0, "10.0.0.1", 1000), 1, "Retry-After: 200 ms rounds up to 1 s");
    cr_assert_eq(limited(0, "10.0.0.2", 1000), 0, "another client has its own bucket");
    cr_assert_eq(limited(0, "::ffff:10.0.0.1", 1000), 0, "another address is another client");
    cr_assert_eq(limited(1, "10.0.0.1", 1000), 0, "and another route its own too");
    cr_assert_eq(limited(1, "10.0.0.1", 1000), 10, "0.1/s: next in 10 s");
    cr_assert_eq(limited(0, "10.0.0.1", 1200), 0, "one token back after 200 ms");
    for (int i = 0; i < 100; i++)
        cr_assert_eq(limited(2, "10.0.0.1", 1000), 0, "no rateLimit: never limited");
    struct sockaddr_storage ss = ip("10.0.0.9");
    cr_assert_eq(route_rate_limit(NULL, table, 0, (struct sockaddr *)&ss, 0), 0,
                 "no worker scratch: no limit");
    unload();
}

Test(route, rate_limit_keys_survive_a_rebuild)
{
    load(B "routes:\n  - {name: login, rateLimit: {requestsPerSecond: 1}, pool: api}\n");
    cr_assert_eq(limited(0, "10.0.0.1", 5000), 0);
    cr_assert_eq(limited(0, "10.0.0.1", 5000), 1);
    /* a reload: a new table, the same worker buckets */
    struct route_table *again = route_table_build(cfg);
    struct sockaddr_storage ss = ip("10.0.0.1");
    cr_assert_eq(route_rate_limit(worker, again, 0, (struct sockaddr *)&ss, 5000), 1);
    route_table_free(again);
    unload();
}

Test(route, ten_thousand_routes)
{
    size_t cap = 1 << 20, n = 0;
    char *y = malloc(cap);
    n += (size_t)snprintf(y + n, cap - n, B "routes:\n");
    for (int h = 0; h < 1000; h++)
        for (int p = 0; p < 10; p++)
            n += (size_t)snprintf(y + n, cap - n,
                                  "  - {name: h%d-p%d, match: {host: h%d.example.com, "
                                  "pathPrefix: /p%d}, pool: api}\n",
                                  h, p, h, p);
    struct timespec a, b, c;
    clock_gettime(CLOCK_MONOTONIC, &a);
    size_t len = 0;
    char *errs = NULL;
    FILE *f = open_memstream(&errs, &len);
    cr_assert_eq(config_load_buffer("t.yaml", y, n, f, &cfg), 0);
    fclose(f);
    free(errs);
    clock_gettime(CLOCK_MONOTONIC, &b);
    table = route_table_build(cfg);
    clock_gettime(CLOCK_MONOTONIC, &c);
    cr_assert_not_null(table);
    worker = route_worker_new(64);
    double load_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    double build_ms = (double)(c.tv_sec - b.tv_sec) * 1e3 + (double)(c.tv_nsec - b.tv_nsec) / 1e6;
    printf("route: 10,000 routes (1,000 hosts x 10 prefixes): config load %.1f ms, table build "
           "%.1f ms, table %zu KiB\n",
           load_ms, build_ms, route_table_memory(table) / 1024);
    EXPECT(match("h0.example.com", "/p0"), "h0-p0");
    EXPECT(match("h999.example.com:8080", "/p9/x/y"), "h999-p9");
    EXPECT(match("H500.EXAMPLE.COM", "/p5/"), "h500-p5");
    EXPECT(match("h500.example.com", "/p10"), "-");
    EXPECT(match("h1000.example.com", "/p1"), "-");
    free(y);
    unload();
}
