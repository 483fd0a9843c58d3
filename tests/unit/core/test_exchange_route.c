/* Unit tests for the route decision of an exchange (src/core/exchange_route.c): each step on a
 * real generation built from YAML (no connection is made: exchange_route() only decides). What is
 * checked is what the rest of the exchange and the session get: the outcome, the pool, the path
 * sent upstream, the reply description, the route's counters and overrides. */
#include <criterion/criterion.h>

#include <string.h>

#include "../../support/exchange_fake.h"
#include "base/buf.h"
#include "base/loop.h"
#include "config/config.h"
#include "core/exchange_int.h"
#include "core/generation.h"
#include "core/obs.h"
#include "core/route.h"
#include "core/worker_ctx.h"
#include "http/http.h"
#include "http/reply.h"
#include "http/rewrite.h"

static struct worker_ctx rw;
static struct exchange *rx;
static struct http_request sent; /* the request as it goes upstream (exchange_route's out) */

static void rt_setup(void)
{
    memset(&rw, 0, sizeof(rw));
    memset(&fk, 0, sizeof(fk));
    rx = NULL;
}

static void rt_teardown(void)
{
    if (rx)
        exchange_put(rx);
    if (rw.gen) {
        exchange_pool_free(&rw);
        generation_unref(rw.gen);
        worker_ctx_pools_destroy(&rw);
        loop_free(rw.loop);
    }
}

TestSuite(exchange_route, .init = rt_setup, .fini = rt_teardown);

static void rt_init(const char *yaml)
{
    struct config *cfg = NULL;
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), stderr, &cfg), 0, "%s", yaml);
    rw.gen = generation_new(cfg, NULL, 1, 1);
    cr_assert_not_null(rw.gen);
    rw.cfg = cfg;
    rw.loop = loop_new();
    cr_assert_not_null(rw.loop);
    worker_ctx_pools_init(&rw);
}

/* A request (fields "Name: value" pairs, NULL-terminated) routed; the exchange stays in rx. */
static enum exchange_status route(const char *method, const char *host, const char *path,
                                  const char *client, const char *const *fields)
{
    static struct http_field f[8];
    size_t n = 0;
    for (; fields && fields[2 * n]; n++)
        f[n] = (struct http_field){.name = fields[2 * n],
                                   .name_len = (uint32_t)strlen(fields[2 * n]),
                                   .value = fields[2 * n + 1],
                                   .value_len = (uint32_t)strlen(fields[2 * n + 1])};
    struct http_request req = {.method = method,
                               .method_len = (uint32_t)strlen(method),
                               .scheme = "",
                               .authority = host,
                               .authority_len = (uint32_t)strlen(host),
                               .path = path,
                               .path_len = (uint32_t)strlen(path),
                               .protocol = "",
                               .version = HTTP_V1_1,
                               .fields = f,
                               .num_fields = n};
    struct exchange_request info = {.client_ip = client, .client_ip_len = strlen(client)};
    if (rx)
        exchange_put(rx);
    rx = exchange_get(&rw, &fk_ops, &fk);
    cr_assert_not_null(rx);
    rx->req_is_head = strcmp(method, "HEAD") == 0;
    /* what exchange_start's x_client_address decided before routing (no trustedProxies here) */
    cr_assert_lt(strlen(client), sizeof(rx->client_ip));
    strcpy(rx->client_ip, client);
    rx->client_ip_len = (uint8_t)strlen(client);
    cr_assert(rw.gen->routing);
    return exchange_route(rx, &req, &info, &sent);
}

static const char *pool_of(void)
{
    return rx->pool->name;
}

static bool sent_path_is(const char *want)
{
    return sent.path_len == strlen(want) && memcmp(sent.path, want, sent.path_len) == 0;
}

#define B "backends: [http://127.0.0.1:1/]\n"
#define POOLS                                                                                      \
    "pools:\n  api: {backends: [http://127.0.0.1:2/]}\n  canary: {backends: "                      \
    "[http://127.0.0.1:3/]}\n"

Test(exchange_route, host_path_and_header_pick_the_pool_first_match_wins)
{
    rt_init(B POOLS "routes:\n"
                    "  - {match: {headers: {X-Canary: \"1\"}}, pool: canary}\n"
                    "  - {match: {host: api.example.com}, pool: api}\n"
                    "  - {match: {host: \"*.example.org\", pathPrefix: /v1}, pool: api}\n");
    static const char *const canary[] = {"x-canary", "1", NULL};
    cr_expect_eq(route("GET", "api.example.com", "/", "10.0.0.1", canary), EX_WAIT);
    cr_expect_str_eq(pool_of(), "canary");
    cr_expect_eq(rx->route, 0);
    cr_expect_eq(route("GET", "API.Example.com.:8080", "/x", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_str_eq(pool_of(), "api");
    cr_expect_eq(route("GET", "a.b.example.org", "/v1/x", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_str_eq(pool_of(), "api");
    cr_expect_eq(route("GET", "a.b.example.org", "/v1x", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_str_eq(pool_of(), "default", "a prefix is whole segments");
    cr_expect_eq(rx->route, -1);
    cr_expect_null(rx->obs.route, "no route: counted on none");
}

Test(exchange_route, the_path_is_normalised_before_matching_and_sent_so)
{
    rt_init(B POOLS "routes:\n  - {match: {pathPrefix: /api}, pool: api}\n");
    cr_expect_eq(route("GET", "h", "/x/../api/%7euser/./a%2fb?q=%2e", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_str_eq(pool_of(), "api");
    cr_expect(sent_path_is("/api/~user/a%2Fb?q=%2e"), "%.*s", (int)sent.path_len, sent.path);
    cr_expect_eq(route("GET", "h", "/api/../../x", "10.0.0.1", NULL), EX_FAIL);
    cr_expect_eq(rx->fail_status, 400, "a path above / is a 400");
    cr_expect_eq(route("GET", "h", "/a%zz", "10.0.0.1", NULL), EX_FAIL);
    cr_expect_eq(rx->fail_status, 400);
}

Test(exchange_route, encoded_slash_reject_is_a_400)
{
    rt_init(B "encodedSlash: reject\n");
    cr_expect_eq(route("GET", "h", "/a%2Fb", "10.0.0.1", NULL), EX_FAIL);
    cr_expect_eq(rx->fail_status, 400);
    cr_expect_eq(route("GET", "h", "/a/b", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_str_eq(pool_of(), "default");
}

Test(exchange_route, strip_and_rewrite_prefix_keep_the_query)
{
    rt_init(B POOLS "routes:\n"
                    "  - {match: {pathPrefix: /api}, stripPrefix: true, pool: api}\n"
                    "  - {match: {pathPrefix: /old}, rewritePrefix: /new, pool: api}\n"
                    "  - {match: {pathPrefix: /root}, rewritePrefix: /, pool: api}\n");
    route("GET", "h", "/api/v1/users?id=3", "10.0.0.1", NULL);
    cr_expect(sent_path_is("/v1/users?id=3"), "%.*s", (int)sent.path_len, sent.path);
    route("GET", "h", "/api", "10.0.0.1", NULL);
    cr_expect(sent_path_is("/"), "an empty rest is /");
    route("GET", "h", "/api?x", "10.0.0.1", NULL);
    cr_expect(sent_path_is("/?x"), "%.*s", (int)sent.path_len, sent.path);
    route("GET", "h", "/old/a/b", "10.0.0.1", NULL);
    cr_expect(sent_path_is("/new/a/b"), "%.*s", (int)sent.path_len, sent.path);
    route("GET", "h", "/old", "10.0.0.1", NULL);
    cr_expect(sent_path_is("/new"), "%.*s", (int)sent.path_len, sent.path);
    route("GET", "h", "/root/x", "10.0.0.1", NULL);
    cr_expect(sent_path_is("/x"), "%.*s", (int)sent.path_len, sent.path);
}

Test(exchange_route, allow_and_deny_answer_403)
{
    rt_init(B POOLS "routes:\n"
                    "  - {match: {pathPrefix: /admin}, allow: [10.0.0.0/8], deny: [10.9.0.0/16],"
                    " pool: api}\n");
    cr_expect_eq(route("GET", "h", "/admin", "10.1.2.3", NULL), EX_WAIT);
    cr_expect_str_eq(pool_of(), "api");
    cr_expect_eq(route("GET", "h", "/admin", "192.0.2.1", NULL), EX_REPLY);
    cr_expect_eq(exchange_reply(rx)->status, 403);
    cr_expect_str_eq(rx->end_error, "forbidden");
    cr_expect_not_null(rx->obs.route, "golb's own answer counts on the route");
    cr_expect_eq(route("GET", "h", "/admin", "10.9.1.1", NULL), EX_REPLY, "deny first");
    cr_expect_eq(route("GET", "h", "/admin", "::ffff:10.1.2.3", NULL), EX_WAIT,
                 "a mapped IPv4 address is IPv4");
}

Test(exchange_route, rate_limit_answers_429_with_retry_after)
{
    rt_init(B POOLS "routes:\n"
                    "  - {match: {path: /login}, rateLimit: {requestsPerSecond: 0.5, burst: 2},"
                    " pool: api}\n");
    cr_expect_eq(route("POST", "h", "/login", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_eq(route("POST", "h", "/login", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_eq(route("POST", "h", "/login", "10.0.0.1", NULL), EX_REPLY);
    const struct reply_desc *d = exchange_reply(rx);
    cr_expect_eq(d->status, 429);
    cr_expect_eq(d->retry_after, 2, "a token every 2 s");
    cr_expect_eq(route("POST", "h", "/login", "10.0.0.2", NULL), EX_WAIT, "per client");
}

Test(exchange_route, redirect_builds_the_location_from_the_request)
{
    rt_init(B
            "routes:\n"
            "  - {match: {host: old.example.com}, redirect: {scheme: https, host: www.example.com,"
            " status: 308}}\n"
            "  - {match: {pathPrefix: /p}, redirect: {port: 8443, path: /q}}\n"
            "  - {match: {pathPrefix: /s}, redirect: {scheme: https}, setResponseHeaders: "
            "{X-Why: moved}}\n");
    cr_expect_eq(route("GET", "old.example.com:8080", "/a/./b?x=1", "10.0.0.1", NULL), EX_REPLY);
    const struct reply_desc *d = exchange_reply(rx);
    cr_expect_eq(d->status, 308);
    cr_expect_eq(d->location_len, strlen("https://www.example.com/a/b?x=1"));
    cr_expect(memcmp(d->location, "https://www.example.com/a/b?x=1", d->location_len) == 0, "%.*s",
              (int)d->location_len, d->location);
    route("GET", "h.test:81", "/p/1?y", "10.0.0.1", NULL);
    d = exchange_reply(rx);
    cr_expect_eq(d->status, 302);
    cr_expect(d->location_len == strlen("http://h.test:8443/q?y") &&
                  memcmp(d->location, "http://h.test:8443/q?y", d->location_len) == 0,
              "%.*s", (int)d->location_len, d->location);
    route("GET", "h.test", "/s", "10.0.0.1", NULL);
    d = exchange_reply(rx);
    cr_expect(memcmp(d->location, "https://h.test/s", d->location_len) == 0);
    cr_expect_eq(d->nfields, 1);
    cr_expect_eq(route("GET", "", "/s", "10.0.0.1", NULL), EX_FAIL, "no host to redirect to");
    cr_expect_eq(rx->fail_status, 400);
}

Test(exchange_route, respond_answers_its_status_and_body)
{
    rt_init(B "routes:\n  - {match: {path: /maint}, respond: {status: 503, body: \"later\\n\"}}\n");
    cr_expect_eq(route("GET", "h", "/maint", "10.0.0.1", NULL), EX_REPLY);
    const struct reply_desc *d = exchange_reply(rx);
    cr_expect_eq(d->status, 503);
    cr_expect_eq(d->body_len, 6);
    cr_expect(memcmp(d->body, "later\n", 6) == 0);
    cr_expect_not(d->no_body);
    cr_expect_str_eq(rx->end_term, "--", "golb's answer, not an error");
    route("HEAD", "h", "/maint", "10.0.0.1", NULL);
    cr_expect(exchange_reply(rx)->no_body);
}

Test(exchange_route, no_route_and_no_default_pool_is_a_404)
{
    rt_init("pools:\n  api: {backends: [http://127.0.0.1:2/]}\n"
            "routes:\n  - {match: {pathPrefix: /api}, pool: api}\n");
    cr_expect_eq(route("GET", "h", "/api/x", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_str_eq(pool_of(), "api");
    cr_expect_eq(route("GET", "h", "/other", "10.0.0.1", NULL), EX_REPLY);
    cr_expect_eq(exchange_reply(rx)->status, 404);
    cr_expect_str_eq(rx->end_error, "no_route");
}

Test(exchange_route, a_split_gives_exact_shares_over_each_cycle)
{
    rt_init(B POOLS
            "routes:\n  - split: [{pool: default, weight: 3}, {pool: canary, weight: 1}]\n");
    int canary = 0;
    for (int i = 0; i < 400; i++) {
        cr_assert_eq(route("GET", "h", "/", "10.0.0.1", NULL), EX_WAIT);
        canary += strcmp(pool_of(), "canary") == 0;
        if (i % 4 == 3)
            cr_expect_eq(canary, (i + 1) / 4, "after %d requests", i + 1);
    }
}

Test(exchange_route, the_route_filters_reach_the_exchange)
{
    rt_init(B POOLS "routes:\n"
                    "  - match: {pathPrefix: /api}\n"
                    "    pool: api\n"
                    "    setRequestHeaders: {X-A: \"1\"}\n"
                    "    removeResponseHeaders: [Server]\n");
    cr_expect_eq(route("GET", "h", "/api", "10.0.0.1", NULL), EX_WAIT);
    cr_expect_not_null(rx->resp_headers);
    cr_expect_eq(rx->resp_headers->nremove, 1);
    const struct rewrite_headers *rq = route_request_headers(rw.gen->routes, rx->route);
    cr_expect(rq && rq->nset == 1 && rq->set[0].value_len == 1);
}
