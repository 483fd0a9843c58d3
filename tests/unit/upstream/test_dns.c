/* Unit tests for dns: the answers' logic with a fake resolver (dns_due / dns_answer driven by
 * hand with made-up answers and clock): TTL clamping and re-query times, hold on failure and on
 * empty answers, set diffing (order, duplicates, weight changes), names added and pruned by
 * dns_sync, the status and metrics texts, the DNS message TTL reader; and what uses the sets:
 * a generation expanding `resolve:` backends (a and srv) and SRV priority tiers in a backend
 * table (backend_tier_open, lb_eligible). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../support/unit_support.h"
#include "base/log.h"
#include "config/config.h"
#include "config/config_diff.h"
#include "core/generation.h"
#include "lb/balancer.h"
#include "upstream/backend.h"
#include "upstream/dns.h"

static struct config *load(const char *yaml, char **errs_out)
{
    char *errs = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&errs, &len);
    struct config *cfg = NULL;
    config_load_buffer("t.yaml", yaml, strlen(yaml), f, &cfg);
    fclose(f);
    if (errs_out)
        *errs_out = errs;
    else
        free(errs);
    return cfg;
}

#define TWO_NAMES                                                                                  \
    "backends:\n"                                                                                  \
    "  - url: http://api.test:8080/health\n"                                                       \
    "    resolve: a\n"                                                                             \
    "  - http://127.0.0.1:9000/\n"                                                                 \
    "pools:\n"                                                                                     \
    "  web:\n"                                                                                     \
    "    backends:\n"                                                                              \
    "      - url: http://_http._tcp.web.test/h\n"                                                  \
    "        resolve: srv\n"                                                                       \
    "resolvers:\n"                                                                                 \
    "  nameservers: [\"127.0.0.1:8600\", \"[::1]:53\"]\n"                                          \
    "  minTtl: 2\n"                                                                                \
    "  maxTtl: 30\n"                                                                               \
    "  holdOnFailure: 10\n"

static struct dns_target v4(const char *ip, uint16_t port, uint16_t weight, uint16_t prio)
{
    struct dns_target t = {.port = port, .weight = weight, .priority = prio};
    struct sockaddr_in *a = (struct sockaddr_in *)&t.addr;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    t.addrlen = sizeof(*a);
    return t;
}

struct fixture {
    struct config *cfg;
    struct dns *d;
};

static void setup(struct fixture *fx)
{
    log_set_level(LOG_ERROR);
    fx->cfg = load(TWO_NAMES, NULL);
    cr_assert_not_null(fx->cfg);
    struct dns_params p = {2, 30, 10};
    fx->d = dns_new(&p);
    cr_assert_eq(dns_sync(fx->d, fx->cfg, true), 2);
    struct dns_query q[4];
    uint64_t next;
    cr_assert_eq(dns_due(fx->d, 1000, q, 4, &next), 2, "both are due at once");
    cr_expect_eq(q[0].type + q[1].type, CONFIG_RESOLVE_A + CONFIG_RESOLVE_SRV);
    cr_expect_eq(dns_due(fx->d, 1000, q, 4, &next), 0, "asked: not due again");
}

static void teardown(struct fixture *fx)
{
    dns_free(fx->d);
    config_free(fx->cfg);
}

Test(dns_config, values_and_defaults)
{
    struct config *cfg = load(TWO_NAMES, NULL);
    cr_assert_not_null(cfg);
    cr_expect(cfg->has_resolve);
    cr_expect_eq(cfg->backends[0].resolve, CONFIG_RESOLVE_A);
    cr_expect_str_eq(cfg->backends[0].host, "api.test");
    cr_expect_eq(cfg->backends[0].port, 8080);
    cr_expect_eq(cfg->pools[1].backends[0].resolve, CONFIG_RESOLVE_SRV);
    cr_expect_str_eq(cfg->resolvers.nameservers, "127.0.0.1:8600,[::1]:53");
    cr_expect_eq(cfg->resolvers.min_ttl_s, 2);
    cr_expect_eq(cfg->resolvers.max_ttl_s, 30);
    cr_expect_eq(cfg->resolvers.hold_s, 10);
    config_free(cfg);
    cfg = load("backends:\n  - http://127.0.0.1:9000/\n", NULL);
    cr_expect_not(cfg->has_resolve);
    cr_expect_null(cfg->resolvers.nameservers);
    cr_expect_eq(cfg->resolvers.min_ttl_s, 1);
    cr_expect_eq(cfg->resolvers.max_ttl_s, 300);
    cr_expect_eq(cfg->resolvers.hold_s, 300);
    config_free(cfg);
}

Test(dns_config, name_that_does_not_resolve_is_not_an_error)
{
    struct config *cfg = load("backends:\n  - url: http://no-such-name.invalid:80/\n"
                              "    resolve: a\n",
                              NULL);
    cr_expect_not_null(cfg, "resolve: names are looked up at run time");
    config_free(cfg);
}

static void expect_error(const char *yaml, const char *want)
{
    char *errs = NULL;
    struct config *cfg = load(yaml, &errs);
    cr_expect_null(cfg, "expected a failure for:\n%s", yaml);
    cr_expect_str_eq(errs, want, "for:\n%s\ngot:\n%s", yaml, errs);
    free(errs);
    config_free(cfg);
}

Test(dns_config, errors)
{
    expect_error("backends:\n  - url: http://a.test:80/\n    resolve: aaaa\n",
                 "t.yaml:3:14: resolve must be one of none, a, srv, got \"aaaa\"\n");
    expect_error("backends:\n  - url: http://_x._tcp.a.test:80/\n    resolve: srv\n",
                 "t.yaml:2:10: invalid backend URL \"http://_x._tcp.a.test:80/\": with resolve: "
                 "srv the ports come from the SRV records, the URL must not give one\n");
    expect_error("backends:\n  - url: http://[::1]:80/\n    resolve: a\n",
                 "t.yaml:2:10: invalid backend URL \"http://[::1]:80/\": resolve needs a host "
                 "name, not an address\n");
    expect_error("backends:\n  - url: http://a.test:80/\n    resolve: a\n"
                 "  - url: http://a.test:80/x\n    resolve: a\n",
                 "t.yaml:4:5: duplicate backend \"a.test:80\" (same address as the backend at "
                 "line 2)\n");
    expect_error("backends: [http://127.0.0.1:1/]\nresolvers:\n  minTtl: 10\n  maxTtl: 5\n",
                 "t.yaml:4:3: resolvers.maxTtl (5) must not be less than minTtl (10)\n");
    expect_error("backends: [http://127.0.0.1:1/]\nresolvers:\n  nameservers: []\n",
                 "t.yaml:3:16: resolvers.nameservers must be a sequence of 1 to 8 addresses "
                 "(e.g. [\"127.0.0.1:53\"]), got a sequence\n");
    expect_error("backends: [http://127.0.0.1:1/]\nresolvers:\n  nameserver: [a]\n",
                 "t.yaml:3:3: unknown key \"nameserver\" in resolvers (did you mean "
                 "\"nameservers\"?)\n");
    expect_error("backends: [http://127.0.0.1:1/]\nresolvers:\n  holdOnFailure: -1\n",
                 "t.yaml:3:18: resolvers.holdOnFailure must be between 0 and 86400, got -1\n");
}

Test(dns, clamp)
{
    cr_expect_eq(dns_clamp_ttl(0, 1, 300), 1);
    cr_expect_eq(dns_clamp_ttl(60, 1, 300), 60);
    cr_expect_eq(dns_clamp_ttl(86400, 1, 300), 300);
    cr_expect_eq(dns_clamp_ttl(5, 5, 5), 5);
}

Test(dns, ok_answer_publishes_sorted_without_duplicates, .init = NULL)
{
    struct fixture fx;
    setup(&fx);
    struct dns_target t[] = {v4("10.0.0.3", 0, 1, 0), v4("10.0.0.1", 0, 1, 0),
                             v4("10.0.0.3", 0, 1, 0)};
    cr_expect(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 1000, DNS_OK, t, 3, 60));
    struct dns_target out[8];
    int n = dns_lookup(fx.d, CONFIG_RESOLVE_A, "api.test", out, 8);
    cr_assert_eq(n, 2);
    char ip[64];
    inet_ntop(AF_INET, &((struct sockaddr_in *)&out[0].addr)->sin_addr, ip, sizeof(ip));
    cr_expect_str_eq(ip, "10.0.0.1");
    /* the same set in another order: no change */
    struct dns_target t2[] = {v4("10.0.0.1", 0, 1, 0), v4("10.0.0.3", 0, 1, 0)};
    struct dns_query q[4];
    uint64_t next;
    cr_expect_eq(dns_due(fx.d, 1000 + 29999, q, 4, &next), 0, "TTL 60 clamped to maxTtl 30");
    cr_expect_eq(next, 1000 + 30000);
    cr_assert_eq(dns_due(fx.d, 31000, q, 4, &next), 1);
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 31000, DNS_OK, t2, 2, 0));
    cr_expect_eq(dns_due(fx.d, 32999, q, 4, &next), 0, "TTL 0 clamped to minTtl 2");
    cr_expect_eq(dns_due(fx.d, 33000, q, 4, &next), 1);
    /* one address replaced */
    struct dns_target t3[] = {v4("10.0.0.1", 0, 1, 0), v4("10.0.0.4", 0, 1, 0)};
    cr_expect(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 33000, DNS_OK, t3, 2, 5));
    cr_expect_eq(dns_lookup(fx.d, CONFIG_RESOLVE_A, "api.test", out, 8), 2);
    teardown(&fx);
}

Test(dns, srv_weight_or_priority_change_is_a_change)
{
    struct fixture fx;
    setup(&fx);
    struct dns_target t[] = {v4("10.0.0.1", 8080, 5, 10), v4("10.0.0.2", 8081, 5, 20)};
    cr_expect(dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 1000, DNS_OK, t, 2, 5));
    t[1].weight = 7;
    cr_expect(dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 2000, DNS_OK, t, 2, 5));
    t[1].priority = 5;
    cr_expect(dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 3000, DNS_OK, t, 2, 5));
    cr_expect_not(
        dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 4000, DNS_OK, t, 2, 5));
    teardown(&fx);
}

Test(dns, failure_holds_then_empties)
{
    struct fixture fx;
    setup(&fx);
    struct dns_target t[] = {v4("10.0.0.1", 0, 1, 0)};
    cr_assert(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 1000, DNS_OK, t, 1, 5));
    struct dns_target out[4];
    /* SERVFAIL, timeout, NXDOMAIN and an empty answer all keep the set for holdOnFailure (10 s) */
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 6000, DNS_SERVFAIL, NULL, 0, 0));
    struct dns_query q[4];
    uint64_t next;
    cr_expect_eq(dns_due(fx.d, 7999, q, 4, &next), 0);
    cr_expect_eq(next, 8000, "a failure retries after minTtl");
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 8000, DNS_TIMEOUT, NULL, 0, 0));
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 10000, DNS_OK, NULL, 0, 0),
                  "empty");
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 12000, DNS_NXDOMAIN, NULL, 0, 0));
    cr_expect_eq(dns_lookup(fx.d, CONFIG_RESOLVE_A, "api.test", out, 4), 1);
    cr_expect_not(dns_expire(fx.d, 15999));
    cr_expect(dns_expire(fx.d, 16000), "failing since 6 s, held 10 s: emptied by the clock");
    cr_expect_eq(dns_lookup(fx.d, CONFIG_RESOLVE_A, "api.test", out, 4), 0);
    cr_expect_not(dns_expire(fx.d, 17000), "once");
    /* it comes back: at once */
    cr_expect(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 18000, DNS_OK, t, 1, 5));
    cr_expect_eq(dns_lookup(fx.d, CONFIG_RESOLVE_A, "api.test", out, 4), 1);
    /* a new streak starts a new hold; an answer may end it too */
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 20000, DNS_SERVFAIL, NULL, 0, 0));
    cr_expect(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 30000, DNS_SERVFAIL, NULL, 0, 0));
    teardown(&fx);
}

Test(dns, hold_deadline_is_a_wake_up)
{
    struct fixture fx;
    setup(&fx);
    struct dns_target t[] = {v4("10.0.0.1", 0, 1, 0)};
    dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 1000, DNS_OK, t, 1, 30);
    dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 1000, DNS_OK, t, 1, 30);
    struct dns_query q[4];
    uint64_t next;
    cr_assert_eq(dns_due(fx.d, 31000, q, 4, &next), 2);
    dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 31500, DNS_TIMEOUT, NULL, 0, 0);
    /* a: asked again at 33500 (minTtl); srv still asked. The hold ends at 41500. */
    cr_expect_eq(dns_due(fx.d, 32000, q, 4, &next), 0);
    cr_expect_eq(next, 33500);
    cr_assert_eq(dns_due(fx.d, 33500, q, 4, &next), 1);
    cr_expect_eq(next, 41500, "the hold's end, while a's second query is out");
    teardown(&fx);
}

Test(dns, failure_before_any_answer)
{
    struct fixture fx;
    setup(&fx);
    cr_expect_not(dns_settled(fx.d));
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 1000, DNS_NXDOMAIN, NULL, 0, 0));
    cr_expect_not(
        dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 1000, DNS_TIMEOUT, NULL, 0, 0));
    cr_expect(dns_settled(fx.d));
    cr_expect_not(dns_expire(fx.d, 100000), "nothing to empty");
    teardown(&fx);
}

Test(dns, answer_for_a_replaced_name_is_dropped)
{
    struct fixture fx;
    setup(&fx);
    struct dns_target t[] = {v4("10.0.0.1", 0, 1, 0)};
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_A, "other.test", 1000, DNS_OK, t, 1, 5));
    cr_expect_not(dns_answer(fx.d, CONFIG_RESOLVE_SRV, "api.test", 1000, DNS_OK, t, 1, 5));
    teardown(&fx);
}

Test(dns, sync_adds_and_prunes)
{
    struct fixture fx;
    setup(&fx);
    struct config *c2 = load("backends:\n  - url: http://api.test:8080/\n    resolve: a\n"
                             "  - url: http://new.test:8080/\n    resolve: a\n",
                             NULL);
    cr_assert_not_null(c2);
    cr_expect_eq(dns_sync(fx.d, c2, false), 1);
    cr_expect_eq(dns_count(fx.d), 3, "nothing pruned before the configuration runs");
    cr_expect_eq(dns_sync(fx.d, c2, true), 0);
    cr_expect_eq(dns_count(fx.d), 2);
    config_free(c2);
    teardown(&fx);
}

Test(dns, status_and_metrics)
{
    struct fixture fx;
    setup(&fx);
    struct dns_target t[] = {v4("10.0.0.1", 0, 1, 0)};
    struct dns_target s[] = {v4("10.0.0.2", 8080, 5, 10)};
    dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 1000, DNS_OK, t, 1, 5);
    dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 1000, DNS_SERVFAIL, NULL, 0, 0);
    dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 3000, DNS_OK, s, 1, 5);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dns_metrics(fx.d, f);
    fclose(f);
    cr_expect(strstr(buf, "golb_dns_resolutions_total{name=\"api.test\",result=\"ok\"} 1\n"));
    cr_expect(strstr(buf, "golb_dns_resolutions_total{name=\"_http._tcp.web.test\","
                          "result=\"servfail\"} 1\n"));
    cr_expect(strstr(buf, "golb_dns_backends{name=\"api.test\"} 1\n"));
    free(buf);
    f = open_memstream(&buf, &len);
    dns_status_json(fx.d, f, 2000);
    fclose(f);
    cr_expect(strstr(buf, "\"name\":\"api.test\",\"type\":\"a\",\"state\":\"ok\""), "%s", buf);
    cr_expect(strstr(buf, "{\"address\":\"10.0.0.2:8080\",\"weight\":5,\"priority\":10}"), "%s",
              buf);
    free(buf);
    teardown(&fx);
}

/* A DNS message: header, one question, n answers with the given TTLs. */
static size_t msg(unsigned char *m, const uint32_t *ttls, int n)
{
    size_t p = 0;
    unsigned char hdr[12] = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, (unsigned char)n, 0, 0, 0, 0};
    memcpy(m, hdr, 12);
    p = 12;
    static const unsigned char q[] = {3, 'w', 'e', 'b', 4, 't', 'e', 's', 't', 0, 0, 33, 0, 1};
    memcpy(m + p, q, sizeof(q));
    p += sizeof(q);
    for (int i = 0; i < n; i++) {
        unsigned char rr[] = {0xC0,
                              12,
                              0,
                              33,
                              0,
                              1,
                              (unsigned char)(ttls[i] >> 24),
                              (unsigned char)(ttls[i] >> 16),
                              (unsigned char)(ttls[i] >> 8),
                              (unsigned char)ttls[i],
                              0,
                              8,
                              0,
                              10,
                              0,
                              5,
                              0x1F,
                              0x90,
                              0,
                              0};
        memcpy(m + p, rr, sizeof(rr));
        p += sizeof(rr);
    }
    return p;
}

Test(dns, message_min_ttl)
{
    unsigned char m[512];
    uint32_t ttls[] = {300, 7, 0x80000001u};
    uint32_t ttl = 0;
    size_t len = msg(m, ttls, 2);
    cr_expect_eq(dns_msg_min_ttl(m, len, &ttl), 0);
    cr_expect_eq(ttl, 7);
    len = msg(m, ttls, 3);
    cr_expect_eq(dns_msg_min_ttl(m, len, &ttl), 0);
    cr_expect_eq(ttl, 0, "a TTL with the top bit set counts as 0");
    cr_expect_eq(dns_msg_min_ttl(m, len - 1, &ttl), -EBADMSG, "cut RDATA");
    cr_expect_eq(dns_msg_min_ttl(m, 11, &ttl), -EBADMSG);
    len = msg(m, ttls, 0);
    cr_expect_eq(dns_msg_min_ttl(m, len, &ttl), -EBADMSG, "no answer");
}

Test(dns, generation_expands_resolved_backends)
{
    struct fixture fx;
    setup(&fx);
    struct dns_target a[] = {v4("127.0.0.3", 0, 1, 0), v4("127.0.0.2", 0, 1, 0)};
    struct dns_target s[] = {v4("127.0.0.4", 9001, 5, 10), v4("127.0.0.5", 9002, 7, 20)};
    dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 1000, DNS_OK, a, 2, 5);
    dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 1000, DNS_OK, s, 2, 5);
    config_ref(fx.cfg);
    struct generation *g = generation_new_dns(fx.cfg, NULL, 1, 1, fx.d);
    cr_assert_not_null(g);
    const struct generation_pool *def = &g->pools[0], *web = &g->pools[1];
    cr_assert_eq(def->table->n, 3, "two resolved, one fixed");
    cr_expect_str_eq(def->table->b[0]->name, "127.0.0.2:8080");
    cr_expect_str_eq(def->table->b[1]->name, "127.0.0.3:8080");
    cr_expect_str_eq(def->table->b[2]->name, "127.0.0.1:9000");
    cr_expect_str_eq(def->cfg.backends[0].url, "http://127.0.0.2:8080/health");
    cr_expect_str_eq(def->cfg.backends[0].health_path, "/health");
    cr_expect_eq(ntohs(((struct sockaddr_in *)&def->cfg.backends[0].addr)->sin_port), 8080);
    cr_expect_null(def->table->tier, "no SRV: no tiers");
    cr_assert_eq(web->table->n, 2);
    cr_expect_str_eq(web->table->b[1]->name, "127.0.0.5:9002");
    cr_expect_str_eq(web->table->b[1]->label, "web/127.0.0.5:9002");
    cr_expect_eq(web->cfg.backends[1].weight, 7);
    cr_assert_not_null(web->table->tier);

    /* the next generation keeps the objects of the addresses still there */
    struct backend *kept = def->table->b[1];
    struct dns_target a2[] = {v4("127.0.0.3", 0, 1, 0)};
    dns_answer(fx.d, CONFIG_RESOLVE_A, "api.test", 7000, DNS_OK, a2, 1, 5);
    config_ref(fx.cfg);
    struct generation *g2 = generation_new_dns(fx.cfg, g, 1, 2, fx.d);
    cr_assert_not_null(g2);
    cr_assert_eq(g2->pools[0].table->n, 2);
    cr_expect_eq(g2->pools[0].table->b[0], kept, "identity by pool and address:port");
    cr_expect_not(generation_has_backend(g2, g->pools[0].table->b[0]), "127.0.0.2 is gone");
    generation_unref(g2);
    generation_unref(g);
    teardown(&fx);
}

Test(dns, empty_set_gives_an_empty_pool)
{
    struct fixture fx;
    setup(&fx);
    config_ref(fx.cfg);
    struct generation *g = generation_new_dns(fx.cfg, NULL, 1, 1, fx.d);
    cr_assert_not_null(g);
    cr_expect_eq(g->pools[0].table->n, 1, "only the fixed backend");
    cr_expect_eq(g->pools[1].table->n, 0, "the SRV pool is empty, not an error");
    int pick = balancer_pick(g->pools[1].balancer, NULL, NULL);
    cr_expect_eq(pick, -1);
    generation_unref(g);
    teardown(&fx);
}

Test(dns, srv_priority_tiers)
{
    struct fixture fx;
    setup(&fx);
    struct dns_target s[] = {v4("127.0.0.4", 9001, 5, 10), v4("127.0.0.5", 9002, 5, 10),
                             v4("127.0.0.6", 9003, 5, 20)};
    dns_answer(fx.d, CONFIG_RESOLVE_SRV, "_http._tcp.web.test", 1000, DNS_OK, s, 3, 5);
    config_ref(fx.cfg);
    struct generation *g = generation_new_dns(fx.cfg, NULL, 1, 1, fx.d);
    const struct backend_table *t = g->pools[1].table;
    cr_assert_eq(t->n, 3);
    for (int i = 0; i < 3; i++)
        backend_set_state(t->b[i], BACKEND_UP, "test");
    cr_expect(backend_tier_open(t, 0));
    cr_expect(backend_tier_open(t, 1));
    cr_expect_not(backend_tier_open(t, 2), "priority 20 waits while a priority 10 is UP");
    cr_expect_not(lb_eligible(t, NULL, 2));
    backend_set_state(t->b[0], BACKEND_DOWN, "test");
    cr_expect_not(backend_tier_open(t, 2), "one of priority 10 is still UP");
    backend_set_state(t->b[1], BACKEND_DOWN, "test");
    cr_expect(backend_tier_open(t, 2), "every lower priority is DOWN");
    cr_expect(lb_eligible(t, NULL, 2));
    for (int i = 0; i < 10; i++)
        cr_expect_eq(balancer_pick(g->pools[1].balancer, NULL, NULL), 2);
    backend_set_state(t->b[0], BACKEND_UP, "test");
    cr_expect_not(backend_tier_open(t, 2), "back to the lower priority");
    generation_unref(g);
    teardown(&fx);
}

Test(dns_config, reload_diff)
{
    struct config *a = load("backends:\n  - url: http://api.test/\n    resolve: a\n", NULL);
    struct config *b = load("backends:\n  - url: http://api.test/\n    resolve: srv\n"
                            "resolvers:\n  nameservers: [\"127.0.0.1:53\"]\n  maxTtl: 30\n",
                            NULL);
    cr_assert(a && b);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    config_diff(a, b, f);
    fclose(f);
    cr_expect_str_eq(out, "backend changed: http://api.test:80: resolve a -> srv\n"
                          "setting changed: resolvers.nameservers /etc/resolv.conf -> "
                          "127.0.0.1:53\n"
                          "setting changed: resolvers minTtl 1 -> 1, maxTtl 300 -> 30, "
                          "holdOnFailure 300 -> 300\n");
    free(out);
    config_free(a);
    config_free(b);
}

/* Every strategy takes a pool that DNS left empty (and picks nothing), then fills. */
Test(dns, empty_pool_with_every_strategy)
{
    static const char *const strategies[] = {"roundRobin", "leastConnections", "random",
                                             "leastLatency", "hash"};
    log_set_level(LOG_ERROR);
    for (size_t s = 0; s < sizeof(strategies) / sizeof(strategies[0]); s++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "balance: %s\nstickySession: {cookie: S}\nbackends:\n"
                 "  - url: http://api.test:8080/\n    resolve: a\n",
                 strategies[s]);
        struct config *cfg = load(yaml, NULL);
        cr_assert_not_null(cfg, "%s", strategies[s]);
        struct dns_params p = {1, 300, 300};
        struct dns *d = dns_new(&p);
        dns_sync(d, cfg, true);
        config_ref(cfg);
        struct generation *g = generation_new_dns(cfg, NULL, 1, 1, d);
        cr_assert_not_null(g, "%s", strategies[s]);
        cr_expect_eq(g->table->n, 0);
        cr_expect_eq(balancer_pick(&g->balancer, NULL, NULL), -1, "%s", strategies[s]);
        struct dns_target t[] = {v4("127.0.0.2", 0, 1, 0)};
        dns_answer(d, CONFIG_RESOLVE_A, "api.test", 1000, DNS_OK, t, 1, 5);
        config_ref(cfg);
        struct generation *g2 = generation_new_dns(cfg, g, 1, 2, d);
        cr_assert_not_null(g2);
        backend_set_state(g2->table->b[0], BACKEND_UP, "test");
        cr_expect_eq(balancer_pick(&g2->balancer, NULL, NULL), 0, "%s", strategies[s]);
        generation_unref(g2);
        generation_unref(g);
        dns_free(d);
        config_free(cfg);
    }
}
