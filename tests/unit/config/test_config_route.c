/* Unit tests for config_route: pools (inheritance from the top level, the same parsers and
 * messages as the top level's keys), routes (every key, normal forms of hosts and paths), and
 * every load-time check with its exact text and position: unknown pool, pool without backends,
 * duplicate pools, invalid regex (PCRE2's message and offset), stripPrefix without pathPrefix, a
 * split of weight 0, one action per route, reserved headers, CIDRs, redirect and respond status,
 * and the warning for a route an earlier one shadows. Numeric hosts only: no test uses DNS. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../support/config_support.h"
#include "base/cidr.h"
#include "config/config.h"

#define B "backends: [http://127.0.0.1:8081]\n"
#define P "pools:\n  api:\n    backends: [http://127.0.0.1:9000]\n" /* lines 2-4 after B */
#define R "routes:\n"

/* The issue's example, numeric addresses in place of names. */
static const char example[] =
    "backends:\n"
    "  - http://127.0.0.1:8080/health\n"
    "balance: leastLatency\n"
    "pools:\n"
    "  api:\n"
    "    balance: leastConnections\n"
    "    upstreamTimeout: 10\n"
    "    backends:\n"
    "      - http://10.0.0.1:9000/healthz\n"
    "      - url: http://10.0.0.2:9443\n"
    "  assets:\n"
    "    backends: [http://10.0.0.3:8080/health]\n"
    "  canary:\n"
    "    backends: [http://10.0.0.5:8080/health, http://127.0.0.1:8080/health]\n"
    "routes:\n"
    "  - name: canary\n"
    "    match: {headers: {X-Canary: \"1\"}}\n"
    "    pool: canary\n"
    "  - match: {host: api.example.com}\n"
    "    pool: api\n"
    "  - match: {pathPrefix: /static}\n"
    "    stripPrefix: true\n"
    "    setResponseHeaders: {Cache-Control: \"public, max-age=3600\"}\n"
    "    pool: assets\n"
    "  - match: {host: old.example.com}\n"
    "    redirect: {scheme: https, host: www.example.com, status: 308}\n"
    "  - match: {pathPrefix: /admin}\n"
    "    allow: [10.0.0.0/8, \"::1\"]\n"
    "    pool: api\n"
    "  - match: {path: /login, methods: [POST]}\n"
    "    rateLimit: {requestsPerSecond: 5, burst: 10}\n"
    "    pool: api\n"
    "  - match: {pathRegex: \"^/v[0-9]+/users/[0-9]+$\"}\n"
    "    pool: api\n"
    "  - split: [{pool: default, weight: 95}, {pool: canary, weight: 5}]\n";

/* ---------------------------------------------------------------------------------------------
 * Valid configurations
 */

Test(config_route, only_backends_is_the_default_pool)
{
    struct config *c = load_ok(B);
    cr_assert_eq(c->npools, 1);
    cr_assert_str_eq(c->pools[0].name, "default");
    cr_assert(c->pools[0].is_default);
    cr_assert_eq(c->pools[0].backends, c->backends, "the default pool is the top-level backends");
    cr_assert_eq(c->pools[0].nbackends, 1);
    cr_assert_eq(c->pools[0].upstream_timeout_ms, c->upstream_timeout_ms);
    cr_assert_eq(c->nroutes, 0);
    cr_assert_null(c->routes);
    cr_assert(!c->encoded_slash_reject);
    cr_assert_eq(config_pool_find(c, "default"), 0);
    cr_assert_eq(config_pool_find(c, "api"), -1);
    config_free(c);
}

Test(config_route, the_issue_example)
{
    struct config *c = load_ok(example);
    char buf[64];
    cr_assert_eq(c->npools, 4);
    cr_assert_str_eq(c->pools[1].name, "api");
    cr_assert_str_eq(c->pools[1].balance, "leastConnections");
    cr_assert_eq(c->pools[1].upstream_timeout_ms, 10000);
    cr_assert_eq(c->pools[1].connect_timeout_ms, 3000);
    cr_assert_eq(c->pools[1].nbackends, 2);
    cr_assert_eq(c->pools[1].line, 5);
    cr_assert_eq(c->pools[1].col, 3);
    cr_assert_str_eq(c->pools[2].balance, "leastLatency", "inherited from the top level");
    cr_assert_eq(c->pools[3].nbackends, 2, "the same URL in two pools is two backends");
    cr_assert_eq(config_pool_find(c, "canary"), 3);

    cr_assert_eq(c->nroutes, 8);
    const struct config_route *r = c->routes;
    cr_assert_str_eq(r[0].name, "canary");
    cr_assert_eq(r[0].line, 16);
    cr_assert_eq(r[0].col, 5);
    cr_assert_eq(r[0].nheaders, 1);
    cr_assert_str_eq(r[0].headers[0].name, "X-Canary");
    cr_assert_str_eq(r[0].headers[0].value, "1");
    cr_assert_eq(r[0].action, CONFIG_ROUTE_POOL);
    cr_assert_eq(r[0].pool, 3);
    cr_assert_eq(r[0].retries, -1);
    cr_assert_eq(r[0].upstream_timeout_ms, 0);

    cr_assert_str_eq(r[1].name, "route 2");
    cr_assert_str_eq(r[1].host, "api.example.com");
    cr_assert_eq(r[1].pool, 1);

    cr_assert_str_eq(r[2].path_prefix, "/static");
    cr_assert(r[2].strip_prefix);
    cr_assert_eq(r[2].nset_response_headers, 1);
    cr_assert_str_eq(r[2].set_response_headers[0].name, "Cache-Control");
    cr_assert_str_eq(r[2].set_response_headers[0].value, "public, max-age=3600");
    cr_assert_eq(r[2].pool, 2);

    cr_assert_eq(r[3].action, CONFIG_ROUTE_REDIRECT);
    cr_assert_str_eq(r[3].redirect.scheme, "https");
    cr_assert_str_eq(r[3].redirect.host, "www.example.com");
    cr_assert_eq(r[3].redirect.status, 308);
    cr_assert_null(r[3].redirect.path);

    cr_assert(r[4].has_allow);
    cr_assert_eq(r[4].nallow, 2);
    cr_assert_str_eq(cidr_str(&r[4].allow[0], buf, sizeof(buf)), "10.0.0.0/8");
    cr_assert_str_eq(cidr_str(&r[4].allow[1], buf, sizeof(buf)), "::1/128");

    cr_assert_str_eq(r[5].path, "/login");
    cr_assert_str_eq(r[5].methods[0], "POST");
    cr_assert_null(r[5].methods[1]);
    cr_assert_eq(r[5].rate_mrps, 5000);
    cr_assert_eq(r[5].rate_burst, 10);

    cr_assert_str_eq(r[6].path_regex, "^/v[0-9]+/users/[0-9]+$");

    cr_assert_eq(r[7].action, CONFIG_ROUTE_SPLIT);
    cr_assert_str_eq(r[7].name, "route 8");
    cr_assert_eq(r[7].nsplit, 2);
    cr_assert_eq(r[7].split[0].pool, 0);
    cr_assert_eq(r[7].split[0].weight, 95);
    cr_assert_eq(r[7].split[1].pool, 3);
    cr_assert_eq(r[7].split[1].weight, 5);
    cr_assert_null(r[7].host);
    cr_assert_null(r[7].path_prefix);
    config_free(c);
}

Test(config_route, pools_inherit_the_top_level)
{
    struct config *c = load_ok("balance: hash\n"
                               "hashKey: \"header:X-User\"\n"
                               "hashLoadFactor: 1.25\n"
                               "connectTimeout: 1.5\n"
                               "retries: 4\n"
                               "stickySession: {cookie: S, sameSite: Lax}\n" B "pools:\n"
                               "  a:\n"
                               "    backends: [http://127.0.0.1:9000]\n"
                               "    retries: 0\n"
                               "    balance: roundRobin\n"
                               "    stickySession: {cookie: T}\n"
                               "    healthCheckPeriod: 0.5\n"
                               "    healthCheckTimeout: 0.25\n"
                               "    slowStart: 30\n"
                               "    panicThreshold: 50\n"
                               "    healthyThreshold: 2\n"
                               "    unhealthyThreshold: 3\n"
                               "    maxFails: 0\n"
                               "    upstreamMaxIdle: 8\n"
                               "  b:\n"
                               "    backends: [http://127.0.0.1:9000]\n"
                               "    hashKey: uri\n"
                               "    hashLoadFactor: 2\n"
                               "routes:\n"
                               "  - {pool: a, match: {pathPrefix: /a}}\n"
                               "  - {pool: b}\n");
    const struct config_pool *a = &c->pools[1], *b = &c->pools[2];
    cr_assert_eq(a->retries, 0);
    cr_assert_str_eq(a->balance, "roundRobin");
    cr_assert_str_eq(a->sticky.cookie, "T");
    cr_assert_null(a->sticky.same_site, "a pool's stickySession replaces the top level's whole");
    cr_assert(!a->sticky.secure);
    cr_assert(a->sticky.http_only);
    cr_assert_eq(a->health_check_period_ms, 500);
    cr_assert_eq(a->health_check_timeout_ms, 250);
    cr_assert_eq(a->slow_start_ms, 30000);
    cr_assert_eq(a->panic_threshold, 50);
    cr_assert_eq(a->healthy_threshold, 2);
    cr_assert_eq(a->unhealthy_threshold, 3);
    cr_assert_eq(a->max_fails, 0);
    cr_assert_eq(a->upstream_max_idle, 8);
    cr_assert_eq(a->connect_timeout_ms, 1500, "inherited");
    cr_assert_eq(a->hash_key, CONFIG_HASH_HEADER, "inherited");
    cr_assert_str_eq(a->hash_key_name, "X-User");

    cr_assert_str_eq(b->balance, "hash");
    cr_assert_eq(b->hash_key, CONFIG_HASH_URI);
    cr_assert_null(b->hash_key_name);
    cr_assert_eq(b->hash_load_factor, 2000);
    cr_assert_eq(b->retries, 4);
    cr_assert_str_eq(b->sticky.cookie, "S");
    cr_assert_str_eq(b->sticky.same_site, "Lax");

    /* the view: what a struct config user sees for one pool */
    struct config v;
    config_pool_view(c, a, &v);
    cr_assert_eq(v.backends, a->backends);
    cr_assert_eq(v.nbackends, 1);
    cr_assert_str_eq(v.balance, "roundRobin");
    cr_assert_eq(v.retries, 0);
    cr_assert_eq(v.connect_timeout_ms, 1500);
    cr_assert_eq(v.listen.at[0].name, c->listen.at[0].name, "everything else is the top level's");
    config_pool_view(c, &c->pools[0], &v);
    cr_assert_eq(v.backends, c->backends);
    cr_assert_eq(v.retries, 4);
    config_free(c);
}

Test(config_route, normal_forms)
{
    struct config *c =
        load_ok(B P R "  - match: {host: API.Example.COM., pathPrefix: /static/}\n"
                      "    pool: api\n"
                      "  - match: {host: \"*.Example.com\", path: /a/./b/../%7ec}\n"
                      "    pool: api\n"
                      "  - match: {host: \"[::1]\", pathPrefix: /}\n"
                      "    rewritePrefix: /\n"
                      "    pool: api\n"
                      "  - match: {pathPrefix: /x}\n"
                      "    rewritePrefix: /new/\n"
                      "    pool: api\n"
                      "  - match: {path: \"/a%2fb\"}\n"
                      "    rateLimit: {requestsPerSecond: 0.5}\n"
                      "    upstreamTimeout: 2.5\n"
                      "    retries: 0\n"
                      "    pool: api\n"
                      "  - match: {path: /q, query: {debug: \"1\", empty: \"\"}}\n"
                      "    rateLimit: {requestsPerSecond: 12.25}\n"
                      "    respond: {status: 503, body: \"down for maintenance\\n\"}\n"
                      "  - match: {path: /r, headers: {X-Any: \"*\"}}\n"
                      "    redirect: {path: /elsewhere, port: 8443}\n");
    const struct config_route *r = c->routes;
    cr_assert_str_eq(r[0].host, "api.example.com");
    cr_assert_str_eq(r[0].path_prefix, "/static");
    cr_assert_str_eq(r[1].host, "*.example.com");
    cr_assert_str_eq(r[1].path, "/a/~c");
    cr_assert_str_eq(r[2].host, "[::1]");
    cr_assert_str_eq(r[2].path_prefix, "/");
    cr_assert_str_eq(r[2].rewrite_prefix, "");
    cr_assert_str_eq(r[3].rewrite_prefix, "/new");
    cr_assert_str_eq(r[4].path, "/a%2Fb");
    cr_assert_eq(r[4].rate_mrps, 500);
    cr_assert_eq(r[4].rate_burst, 1);
    cr_assert_eq(r[4].upstream_timeout_ms, 2500);
    cr_assert_eq(r[4].retries, 0);
    cr_assert_eq(r[5].nquery, 2);
    cr_assert_str_eq(r[5].query[0].name, "debug");
    cr_assert_str_eq(r[5].query[1].value, "");
    cr_assert_eq(r[5].rate_mrps, 12250);
    cr_assert_eq(r[5].rate_burst, 13, "default burst: one second's worth, rounded up");
    cr_assert_eq(r[5].action, CONFIG_ROUTE_RESPOND);
    cr_assert_eq(r[5].respond.status, 503);
    cr_assert_str_eq(r[5].respond.body, "down for maintenance\n");
    cr_assert_eq(r[5].respond.body_len, 21);
    cr_assert_null(r[6].headers[0].value, "\"*\": present");
    cr_assert_eq(r[6].redirect.status, 302, "the default");
    cr_assert_str_eq(r[6].redirect.path, "/elsewhere");
    cr_assert_eq(r[6].redirect.port, 8443);
    cr_assert_null(r[6].redirect.host);
    config_free(c);
}

Test(config_route, encoded_slash)
{
    struct config *c = load_ok("encodedSlash: reject\n" B);
    cr_assert(c->encoded_slash_reject);
    config_free(c);
    c = load_ok("encodedSlash: keep\n" B);
    cr_assert(!c->encoded_slash_reject);
    config_free(c);
    expect_fail("encodedSlash: decode\n" B,
                "t.yaml:1:15: encodedSlash must be one of keep, reject, got \"decode\"\n");
    expect_fail("encodedSlash: reject\n" B P R "  - {match: {path: /a%2Fb}, pool: api}\n",
                "t.yaml:7:20: match.path \"/a%2Fb\" is not a valid path: encoded slash or "
                "backslash in path\n");
}

Test(config_route, empty_sections)
{
    struct config *c = load_ok(B "pools: {}\nroutes: []\n");
    cr_assert_eq(c->npools, 1);
    cr_assert_eq(c->nroutes, 0);
    config_free(c);
    c = load_ok(B R "  - pool: default\n");
    cr_assert_eq(c->nroutes, 1);
    cr_assert_eq(c->routes[0].pool, 0);
    cr_assert_null(c->routes[0].host);
    config_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Errors
 */

Test(config_route, pool_errors)
{
    static const struct error_case cases[] = {
        {B "pools: [a]\n", "t.yaml:2:8: pools must be a mapping of pool names to pools, got a "
                           "sequence\n"},
        {B "pools:\n  api: {}\n" R "  - pool: api\n",
         "t.yaml:3:3: pool \"api\" is missing \"backends\"\n"},
        {B "pools:\n  api:\n    backends: []\n" R "  - pool: api\n",
         "t.yaml:4:15: backends must not be empty\n"},
        {B "pools:\n  api: 5\n" R "  - pool: api\n",
         "t.yaml:3:8: pool \"api\" must be a mapping with \"backends\", got \"5\"\n"},
        {B P "  api:\n    backends: [http://127.0.0.1:9001]\n" R "  - pool: api\n",
         "t.yaml:5:3: duplicate pool \"api\" (first defined at line 3)\n"},
        {B "pools:\n  default:\n    backends: [http://127.0.0.1:9001]\n",
         "t.yaml:3:3: duplicate pool \"default\" (the top-level backends are the pool "
         "\"default\")\n"},
        {B "pools:\n  a/b:\n    backends: [http://127.0.0.1:9001]\n",
         "t.yaml:3:3: invalid pool name \"a/b\" (letters, digits, \"-\", \"_\" and \".\", at "
         "most 64)\n"},
        {B P "    balanse: hash\n" R "  - pool: api\n",
         "t.yaml:5:5: unknown key \"balanse\" in pool (did you mean \"balance\"?)\n"},
        {B P "    port: 80\n" R "  - pool: api\n", "t.yaml:5:5: unknown key \"port\" in pool\n"},
        /* the top level's messages, byte for byte */
        {B P "    retries: 101\n" R "  - pool: api\n",
         "t.yaml:5:14: retries must be between 0 and 100, got 101\n"},
        {B P "    balance: leastconn\n" R "  - pool: api\n",
         "t.yaml:5:14: balance must be roundRobin, leastConnections, random, leastLatency or "
         "hash, got \"leastconn\"\n"},
        {B P "    connectTimeout: 0\n" R "  - pool: api\n",
         "t.yaml:5:21: connectTimeout must be greater than 0, got 0\n"},
        {B P "    stickySession: {}\n" R "  - pool: api\n",
         "t.yaml:5:20: stickySession is missing \"cookie\"\n"},
        {B P "    hashLoadFactor: 1\n    balance: hash\n" R "  - pool: api\n",
         "t.yaml:5:21: hashLoadFactor must be 0 (off) or above 1 and at most 100, got 1\n"},
        {B "pools:\n  api:\n    backends: [http://127.0.0.1:9000, http://127.0.0.1:9000]\n" R
           "  - pool: api\n",
         "t.yaml:4:39: duplicate backend \"127.0.0.1:9000\" (same address as the backend at "
         "line 4)\n"},
        {B "pools:\n  api:\n    backends: [ftp://x]\n" R "  - pool: api\n",
         "t.yaml:4:16: invalid backend URL \"ftp://x\": unsupported scheme \"ftp\" (only http "
         "and https are supported)\n"},
        {B P "    backends: [http://127.0.0.1:9001]\n" R "  - pool: api\n",
         "t.yaml:5:5: duplicate key \"backends\" (first defined at line 4)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_route, pool_warnings)
{
    struct config *c =
        load_warn(B P "    hashKey: uri\n    healthCheckTimeout: 6\n" R "  - pool: api\n",
                  "t.yaml:5:5: warning: hashKey is ignored unless balance is hash\n"
                  "t.yaml:6:5: warning: healthCheckTimeout (6 s) is not less than "
                  "healthCheckPeriod (5 s); a backend is not checked again while "
                  "its previous check is still running\n");
    config_free(c);
    c = load_warn(B P, "t.yaml:3:3: warning: pool \"api\" is not used by any route\n");
    config_free(c);
    /* a top-level hashKey that a hashing pool inherits is not ignored */
    c = load_ok("hashKey: uri\n" B P "    balance: hash\n" R "  - pool: api\n");
    config_free(c);
}

Test(config_route, route_shape_errors)
{
    static const struct error_case cases[] = {
        {B R "  pool: default\n", "t.yaml:3:3: routes must be a sequence of routes, got a "
                                  "mapping\n"},
        {B R "  - default\n", "t.yaml:3:5: route must be a mapping with match and an action "
                              "(pool, split, redirect or respond), got \"default\"\n"},
        {B R "  - match: {pathPrefix: /a}\n",
         "t.yaml:3:5: route \"route 1\" needs an action: pool, split, redirect or respond\n"},
        {B R "  - name: api\n    match: {pathPrefix: /a}\n",
         "t.yaml:3:5: route \"api\" needs an action: pool, split, redirect or respond\n"},
        {B R "  - pool: default\n    respond: {status: 404}\n",
         "t.yaml:4:5: a route takes one action: respond and pool (line 3) are both given\n"},
        {B R "  - respond: {status: 404}\n    split: [{pool: default}]\n    pool: default\n",
         "t.yaml:4:5: a route takes one action: split and respond (line 3) are both given\n"
         "t.yaml:5:5: a route takes one action: pool and respond (line 3) are both given\n"},
        {B R "  - pol: default\n",
         "t.yaml:3:5: unknown key \"pol\" in route (did you mean \"pool\"?)\n"
         "t.yaml:3:5: route \"route 1\" needs an action: pool, split, redirect or respond\n"},
        {B R "  - pool: default\n    pool: default\n",
         "t.yaml:4:5: duplicate key \"pool\" (first defined at line 3)\n"},
        {B R "  - pool: nope\n", "t.yaml:3:11: unknown pool \"nope\"\n"},
        {B R "  - pool: [default]\n", "t.yaml:3:11: pool must be a pool name, got a sequence\n"},
        {B R "  - {name: a, pool: default, match: {path: /a}}\n"
             "  - {name: a, pool: default, match: {path: /b}}\n",
         "t.yaml:4:5: duplicate route name \"a\" (first used at line 3)\n"},
        {B R "  - {name: \"\", pool: default}\n",
         "t.yaml:3:12: name must be 1 to 64 printable characters without quotes or backslashes, "
         "got the quoted string \"\"\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_route, match_errors)
{
    static const struct error_case cases[] = {
        {B R "  - {match: /a, pool: default}\n",
         "t.yaml:3:13: match must be a mapping of conditions (host, path, pathPrefix, pathRegex, "
         "methods, headers, query), got \"/a\"\n"},
        {B R "  - {match: {hots: a.com}, pool: default}\n",
         "t.yaml:3:14: unknown key \"hots\" in match (did you mean \"host\"?)\n"},
        {B R "  - {match: {host: \"a.com:80\"}, pool: default}\n",
         "t.yaml:3:20: match.host must be a host name, \"*.DOMAIN\" or \"[IPv6]\" (without a "
         "port), got the quoted string \"a.com:80\"\n"},
        {B R "  - {match: {host: \"*\"}, pool: default}\n",
         "t.yaml:3:20: match.host must be a host name, \"*.DOMAIN\" or \"[IPv6]\" (without a "
         "port), got the quoted string \"*\"\n"},
        {B R "  - {match: {host: \"a..com\"}, pool: default}\n",
         "t.yaml:3:20: match.host must be a host name, \"*.DOMAIN\" or \"[IPv6]\" (without a "
         "port), got the quoted string \"a..com\"\n"},
        {B R "  - {match: {host: \"a.*.com\"}, pool: default}\n",
         "t.yaml:3:20: match.host must be a host name, \"*.DOMAIN\" or \"[IPv6]\" (without a "
         "port), got the quoted string \"a.*.com\"\n"},
        {B R "  - {match: {path: a}, pool: default}\n",
         "t.yaml:3:20: match.path must be a path starting with \"/\" (no query), got \"a\"\n"},
        {B R "  - {match: {path: \"/a?b\"}, pool: default}\n",
         "t.yaml:3:20: match.path must be a path starting with \"/\" (no query), got the quoted "
         "string \"/a?b\"\n"},
        {B R "  - {match: {pathPrefix: /a/../..}, pool: default}\n",
         "t.yaml:3:26: match.pathPrefix \"/a/../..\" is not a valid path: path climbs above /\n"},
        {B R "  - {match: {path: /a%zz}, pool: default}\n",
         "t.yaml:3:20: match.path \"/a%zz\" is not a valid path: invalid percent-encoding in "
         "path\n"},
        {B R "  - {match: {path: /a, pathPrefix: /b}, pool: default}\n",
         "t.yaml:3:24: match.path and match.pathPrefix are mutually exclusive\n"},
        {B R "  - {match: {pathRegex: \"^/v[0-9+\"}, pool: default}\n",
         "t.yaml:3:25: match.pathRegex \"^/v[0-9+\" is invalid at offset 8: missing terminating ] "
         "for character class\n"},
        {B R "  - {match: {pathRegex: \"(?<n\"}, pool: default}\n",
         "t.yaml:3:25: match.pathRegex \"(?<n\" is invalid at offset 4: syntax error in subpattern "
         "name (missing terminator?)\n"},
        {B R "  - {match: {methods: GET}, pool: default}\n",
         "t.yaml:3:23: match.methods must be a sequence of GET, got \"GET\"\n"},
        {B R "  - {match: {methods: [\"GE T\"]}, pool: default}\n",
         "t.yaml:3:24: match.methods entry must be a token such as GET, got the quoted string "
         "\"GE T\"\n"},
        {B R "  - {match: {headers: [X-A]}, pool: default}\n",
         "t.yaml:3:23: match.headers must be a mapping of header names to values, got a "
         "sequence\n"},
        {B R "  - {match: {headers: {\"X A\": b}}, pool: default}\n",
         "t.yaml:3:24: match.headers: invalid header name \"X A\"\n"},
        {B R "  - {match: {headers: {X-A: [b]}}, pool: default}\n",
         "t.yaml:3:29: match.headers: the value of \"X-A\" must be a string without control "
         "characters, got a sequence\n"},
        {B R "  - {match: {headers: {X-A: b, x-a: c}}, pool: default}\n",
         "t.yaml:3:32: match.headers: header \"x-a\" is given twice (first at line 3)\n"},
        {B R "  - {match: {query: {\"a=b\": c}}, pool: default}\n",
         "t.yaml:3:22: match.query: invalid parameter name \"a=b\"\n"},
        {B R "  - {match: {query: {a: \"b c\"}}, pool: default}\n",
         "t.yaml:3:25: match.query: the value of \"a\" must be a string of visible characters "
         "without \"&\" and \"#\" (as sent), got the quoted string \"b c\"\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_route, action_errors)
{
    static const struct error_case cases[] = {
        {B R "  - split: []\n",
         "t.yaml:3:12: split must be a non-empty sequence of {pool, weight}, got a sequence\n"},
        {B R "  - split: [default]\n",
         "t.yaml:3:13: split entry must be a mapping with \"pool\" and \"weight\", got "
         "\"default\"\n"},
        {B R "  - split: [{weight: 1}]\n", "t.yaml:3:13: split entry is missing \"pool\"\n"},
        {B R "  - split: [{pool: default, weight: 0}]\n",
         "t.yaml:3:12: split weights must not all be 0\n"},
        {B R "  - split: [{pool: default, weight: 1001}]\n",
         "t.yaml:3:37: weight must be between 0 and 1000, got 1001\n"},
        {B R "  - split: [{pool: nope, weight: 1}]\n", "t.yaml:3:20: unknown pool \"nope\"\n"},
        {B R "  - split: [{pool: default}, {pool: default}]\n",
         "t.yaml:3:37: pool \"default\" is in split twice\n"},
        {B R "  - split: [{pool: default, wieght: 1}]\n",
         "t.yaml:3:29: unknown key \"wieght\" in split (did you mean \"weight\"?)\n"},
        {B R "  - redirect: https://a\n",
         "t.yaml:3:15: redirect must be a mapping of scheme, host, port, path and status, got "
         "\"https://a\"\n"},
        {B R "  - redirect: {status: 301}\n",
         "t.yaml:3:15: redirect needs scheme, host, port or path (else it would send the client "
         "to the same URL)\n"},
        {B R "  - redirect: {scheme: ftp}\n",
         "t.yaml:3:24: redirect.scheme must be http or https, got \"ftp\"\n"},
        {B R "  - redirect: {host: \"*.a.com\"}\n",
         "t.yaml:3:22: redirect.host must be a host name, got the quoted string \"*.a.com\"\n"},
        {B R "  - redirect: {scheme: https, status: 300}\n",
         "t.yaml:3:39: redirect.status must be 301, 302, 303, 307 or 308, got 300\n"},
        {B R "  - redirect: {scheme: https, status: 304}\n",
         "t.yaml:3:39: redirect.status must be 301, 302, 303, 307 or 308, got 304\n"},
        {B R "  - redirect: {port: 0}\n",
         "t.yaml:3:22: redirect.port must be between 1 and 65535, got 0\n"},
        {B R "  - redirect: {path: relative}\n",
         "t.yaml:3:22: redirect.path must be a path starting with \"/\" (no query), got "
         "\"relative\"\n"},
        {B R "  - respond: 404\n",
         "t.yaml:3:14: respond must be a mapping with \"status\" (and \"body\"), got \"404\"\n"},
        {B R "  - respond: {body: x}\n", "t.yaml:3:14: respond is missing \"status\"\n"},
        {B R "  - respond: {status: 99}\n",
         "t.yaml:3:23: respond.status must be between 200 and 599, got 99\n"},
        {B R "  - respond: {status: 101}\n",
         "t.yaml:3:23: respond.status must be between 200 and 599, got 101\n"},
        {B R "  - respond: {status: 600}\n",
         "t.yaml:3:23: respond.status must be between 200 and 599, got 600\n"},
        {B R "  - respond: {status: 204, body: x}\n",
         "t.yaml:3:28: respond.body is not allowed with status 204 (it has no body)\n"},
        {B R "  - respond: {status: 200, body: [x]}\n",
         "t.yaml:3:34: respond.body must be a string of at most 65536 bytes, got a sequence\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_route, filter_and_policy_errors)
{
    static const struct error_case cases[] = {
        {B R "  - stripPrefix: true\n    pool: default\n",
         "t.yaml:3:5: stripPrefix needs match.pathPrefix\n"},
        {B R "  - match: {path: /a}\n    rewritePrefix: /b\n    pool: default\n",
         "t.yaml:4:5: rewritePrefix needs match.pathPrefix\n"},
        {B R "  - match: {pathPrefix: /a}\n    stripPrefix: true\n    rewritePrefix: /b\n"
             "    pool: default\n",
         "t.yaml:5:5: stripPrefix and rewritePrefix are mutually exclusive (rewritePrefix: / "
         "strips)\n"},
        {B R "  - match: {pathPrefix: /a}\n    stripPrefix: yes\n    pool: default\n",
         "t.yaml:4:18: stripPrefix must be true or false, got \"yes\"\n"},
        {B R "  - setRequestHeaders: {Transfer-Encoding: chunked}\n    pool: default\n",
         "t.yaml:3:25: setRequestHeaders cannot set \"Transfer-Encoding\": it frames the "
         "message\n"},
        {B R "  - setRequestHeaders: {X-Forwarded-Proto: https}\n    pool: default\n",
         "t.yaml:3:25: setRequestHeaders cannot set \"X-Forwarded-Proto\": golb sets it\n"},
        {B R "  - setResponseHeaders: {Connection: close}\n    pool: default\n",
         "t.yaml:3:26: setResponseHeaders cannot set \"Connection\": it is hop-by-hop\n"},
        {B R "  - setRequestHeaders: {\"X:A\": b}\n    pool: default\n",
         "t.yaml:3:25: setRequestHeaders: invalid header name \"X:A\"\n"},
        {B R "  - setRequestHeaders: {X-A: \"a\\nb\"}\n    pool: default\n",
         "t.yaml:3:30: setRequestHeaders: the value of \"X-A\" must be a string without control "
         "characters, got the quoted string \"a\\x0Ab\"\n"},
        {B R "  - removeRequestHeaders: [X-Request-Id]\n    pool: default\n",
         "t.yaml:3:28: removeRequestHeaders cannot remove \"X-Request-Id\": golb sets it\n"},
        {B R "  - removeRequestHeaders: [host]\n    pool: default\n",
         "t.yaml:3:28: removeRequestHeaders cannot remove \"host\": HTTP/1.1 requires it\n"},
        {B R "  - removeResponseHeaders: [Content-Length]\n    pool: default\n",
         "t.yaml:3:29: removeResponseHeaders cannot remove \"Content-Length\": it frames the "
         "message\n"},
        {B R "  - removeResponseHeaders: X-Powered-By\n    pool: default\n",
         "t.yaml:3:28: removeResponseHeaders must be a sequence of X-Powered-By, got "
         "\"X-Powered-By\"\n"},
        {B R "  - allow: 10.0.0.0/8\n    pool: default\n",
         "t.yaml:3:12: allow must be a sequence of addresses or CIDR ranges (e.g. [10.0.0.0/8, "
         "\"::1\"]), got \"10.0.0.0/8\"\n"},
        {B R "  - deny: [10.0.0.0/33, example.com]\n    pool: default\n",
         "t.yaml:3:12: deny: invalid address or CIDR range \"10.0.0.0/33\"\n"
         "t.yaml:3:25: deny: invalid address or CIDR range \"example.com\"\n"},
        {B R "  - rateLimit: 5\n    pool: default\n",
         "t.yaml:3:16: rateLimit must be a mapping with \"requestsPerSecond\" (and \"burst\"), "
         "got \"5\"\n"},
        {B R "  - rateLimit: {burst: 5}\n    pool: default\n",
         "t.yaml:3:16: rateLimit is missing \"requestsPerSecond\"\n"},
        {B R "  - rateLimit: {requestsPerSecond: 0.0001}\n    pool: default\n",
         "t.yaml:3:36: rateLimit.requestsPerSecond must be a number above 0 and at most "
         "1000000, with at most 3 decimals (e.g. 5 or 0.5), got \"0.0001\"\n"},
        {B R "  - rateLimit: {requestsPerSecond: 5, burst: 0}\n    pool: default\n",
         "t.yaml:3:46: rateLimit.burst must be between 1 and 1000000, got 0\n"},
        {B R "  - upstreamTimeout: 0\n    pool: default\n",
         "t.yaml:3:22: upstreamTimeout must be greater than 0, got 0\n"},
        {B R "  - retries: -1\n    pool: default\n",
         "t.yaml:3:14: retries must be between 0 and 100, got -1\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_route, all_errors_in_one_run)
{
    expect_fail(B P R "  - {pool: nope}\n"
                      "  - {match: {pathRegex: \"(\"}, pool: api}\n"
                      "  - {stripPrefix: true, pool: api}\n"
                      "  - {split: [{pool: api, weight: 0}]}\n",
                "t.yaml:6:12: unknown pool \"nope\"\n"
                "t.yaml:7:25: match.pathRegex \"(\" is invalid at offset 1: missing closing "
                "parenthesis\n"
                "t.yaml:8:6: stripPrefix needs match.pathPrefix\n"
                "t.yaml:9:13: split weights must not all be 0\n");
}

Test(config_route, warnings)
{
    struct config *c;
    /* filters and upstream policies that an answer of golb's own makes moot */
    c = load_warn(B R "  - match: {pathPrefix: /a}\n    stripPrefix: true\n    retries: 1\n"
                      "    respond: {status: 404}\n",
                  "t.yaml:4:5: warning: stripPrefix has no effect on a respond route (nothing "
                  "goes upstream)\n"
                  "t.yaml:5:5: warning: retries has no effect on a respond route (nothing goes "
                  "upstream)\n");
    config_free(c);
    c = load_warn(B R "  - {match: {path: /b}, allow: [10.1.2.3/8], pool: default}\n"
                      "  - {match: {path: /a}, allow: [], deny: [\"::1\"], pool: default}\n",
                  "t.yaml:3:33: warning: allow: \"10.1.2.3/8\" has bits set beyond its prefix: "
                  "it means 10.0.0.0/8\n"
                  "t.yaml:4:32: warning: allow: [] lets no client through (every request gets "
                  "403)\n");
    cr_assert(c->routes[1].has_allow);
    cr_assert_eq(c->routes[1].nallow, 0);
    cr_assert_eq(c->routes[1].ndeny, 1);
    config_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Routes that can never match
 */

Test(config_route, shadowed_routes_warn)
{
    static const struct error_case cases[] = {
        /* an earlier catch-all */
        {B R "  - pool: default\n  - {match: {pathPrefix: /a}, pool: default}\n",
         "t.yaml:4:5: warning: route \"route 2\" can never match: route \"route 1\" (line 3) "
         "comes first and matches every request it would\n"},
        {B R "  - {match: {pathPrefix: /}, pool: default}\n"
             "  - {match: {host: a.com, headers: {X-A: b}}, pool: default}\n",
         "t.yaml:4:5: warning: route \"route 2\" can never match: route \"route 1\" (line 3) "
         "comes first and matches every request it would\n"},
        /* an earlier prefix covering it */
        {B R "  - {match: {pathPrefix: /api}, pool: default}\n"
             "  - {match: {pathPrefix: /api/v1}, pool: default}\n"
             "  - {match: {path: /api}, pool: default}\n"
             "  - {match: {pathPrefix: /apix}, pool: default}\n",
         "t.yaml:4:5: warning: route \"route 2\" can never match: route \"route 1\" (line 3) "
         "comes first and matches every request it would\n"
         "t.yaml:5:5: warning: route \"route 3\" can never match: route \"route 1\" (line 3) "
         "comes first and matches every request it would\n"},
        /* the same host, a wildcard over an exact host and a narrower wildcard */
        {B R "  - {match: {host: \"*.example.com\"}, pool: default}\n"
             "  - {match: {host: a.example.com, pathPrefix: /x}, pool: default}\n"
             "  - {match: {host: \"*.b.example.com\"}, pool: default}\n"
             "  - {match: {host: example.com}, pool: default}\n"
             "  - {match: {host: example.com, path: /x}, pool: default}\n",
         "t.yaml:4:5: warning: route \"route 2\" can never match: route \"route 1\" (line 3) "
         "comes first and matches every request it would\n"
         "t.yaml:5:5: warning: route \"route 3\" can never match: route \"route 1\" (line 3) "
         "comes first and matches every request it would\n"
         "t.yaml:7:5: warning: route \"route 5\" can never match: route \"route 4\" (line 6) "
         "comes first and matches every request it would\n"},
        /* conditions: the earlier one's are a subset of the later one's */
        {B R "  - {match: {methods: [GET, HEAD]}, pool: default}\n"
             "  - {match: {methods: [GET], pathPrefix: /a}, pool: default}\n"
             "  - {match: {methods: [GET, POST]}, pool: default}\n"
             "  - {match: {headers: {X-A: \"*\"}}, pool: default}\n"
             "  - {match: {headers: {x-a: \"1\", X-B: \"2\"}}, pool: default}\n"
             "  - {match: {query: {a: \"1\"}}, pool: default}\n"
             "  - {match: {query: {a: \"1\"}, host: b.com}, pool: default}\n"
             "  - {match: {pathRegex: \"^/x\"}, pool: default}\n"
             "  - {match: {pathRegex: \"^/x\", host: c.com}, pool: default}\n",
         "t.yaml:4:5: warning: route \"route 2\" can never match: route \"route 1\" (line 3) "
         "comes first and matches every request it would\n"
         "t.yaml:7:5: warning: route \"route 5\" can never match: route \"route 4\" (line 6) "
         "comes first and matches every request it would\n"
         "t.yaml:9:5: warning: route \"route 7\" can never match: route \"route 6\" (line 8) "
         "comes first and matches every request it would\n"
         "t.yaml:11:5: warning: route \"route 9\" can never match: route \"route 8\" (line 10) "
         "comes first and matches every request it would\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *c = load_warn(cases[i].yaml, cases[i].want);
        config_free(c);
    }
}

Test(config_route, not_shadowed)
{
    struct config *c = load_ok(B R "  - {match: {pathPrefix: /api}, pool: default}\n"
                                   "  - {match: {pathPrefix: /apix}, pool: default}\n"
                                   "  - {match: {host: a.com, pathPrefix: /x}, pool: default}\n"
                                   "  - {match: {host: a.com}, pool: default}\n"
                                   "  - {match: {host: b.com}, pool: default}\n"
                                   "  - {match: {host: \"*.a.com\"}, pool: default}\n"
                                   "  - {match: {methods: [GET]}, pool: default}\n"
                                   "  - {match: {methods: [GET, POST]}, pool: default}\n"
                                   "  - {match: {headers: {X-A: \"1\"}}, pool: default}\n"
                                   "  - {match: {headers: {X-A: \"*\"}}, pool: default}\n"
                                   "  - {match: {pathRegex: \"^/y\"}, pool: default}\n"
                                   "  - {match: {pathPrefix: /y}, pool: default}\n"
                                   "  - {match: {path: /z}, pool: default}\n"
                                   "  - {match: {path: /z/}, pool: default}\n"
                                   "  - pool: default\n");
    cr_assert_eq(c->nroutes, 15);
    config_free(c);
}

Test(config_route, ten_thousand_routes_load)
{
    /* 1,000 hosts × 10 prefixes, each route in flow style on one line */
    size_t cap = 1 << 20, n = 0;
    char *y = malloc(cap);
    cr_assert_not_null(y);
    n += (size_t)snprintf(y + n, cap - n, B R);
    for (int h = 0; h < 1000; h++)
        for (int p = 0; p < 10; p++)
            n += (size_t)snprintf(y + n, cap - n,
                                  "  - {match: {host: h%d.example.com, pathPrefix: /p%d}, pool: "
                                  "default}\n",
                                  h, p);
    cr_assert_lt(n, cap);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct config *c = load_ok(y);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert_eq(c->nroutes, 10000);
    cr_log_info("10,000 routes (%zu bytes of YAML) loaded in %.1f ms", n,
                (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
    printf("config: 10,000 routes (%zu bytes of YAML) loaded in %.1f ms\n", n,
           (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
    config_free(c);
    free(y);
}

Test(config_route, routes_without_top_level_backends)
{
    /* no default pool: the routes take what they match, the rest is a 404 */
    struct config *cfg = load_ok(P R "  - {match: {pathPrefix: /api}, pool: api}\n");
    cr_expect_eq(cfg->nbackends, 0);
    cr_expect_eq(cfg->pools[0].nbackends, 0);
    cr_expect_eq(cfg->nroutes, 1);
    config_free(cfg);
    expect_fail(P R "  - {match: {pathPrefix: /api}, pool: api}\n  - pool: default\n",
                "t.yaml:6:11: pool \"default\" has no backends (there are no top-level "
                "\"backends\")\n");
    expect_fail(P, "t.yaml:1:1: missing required key \"backends\"\n"
                   "t.yaml:2:3: warning: pool \"api\" is not used by any route\n");
}
