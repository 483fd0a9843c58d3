/* Unit tests for config_net: proxyProtocol and trustedProxies, their values, every message with
 * its exact text and position, and the lines a reload's diff writes for them. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../support/config_support.h"
#include "base/cidr.h"
#include "config/config.h"
#include "config/config_diff.h"

#define BACKENDS "backends:\n  - http://127.0.0.1:8081/\n"

Test(config_net, absent_by_default)
{
    struct config *cfg = load_ok(BACKENDS);
    cr_expect_not(cfg->pp_on);
    cr_expect_not(cfg->pp_required);
    cr_expect_eq(cfg->npp_trusted, 0);
    cr_expect_eq(cfg->ntrusted_proxies, 0);
    config_free(cfg);
}

Test(config_net, proxy_protocol_values)
{
    struct config *cfg = load_ok(BACKENDS "proxyProtocol:\n"
                                          "  trustedNetworks: [10.0.0.0/8, \"::1\", 192.0.2.7]\n"
                                          "  required: true\n");
    char buf[64];
    cr_assert(cfg->pp_on);
    cr_expect(cfg->pp_required);
    cr_assert_eq(cfg->npp_trusted, 3);
    cr_expect_str_eq(cidr_str(&cfg->pp_trusted[0], buf, sizeof(buf)), "10.0.0.0/8");
    cr_expect_str_eq(cidr_str(&cfg->pp_trusted[1], buf, sizeof(buf)), "::1/128");
    cr_expect_str_eq(cidr_str(&cfg->pp_trusted[2], buf, sizeof(buf)), "192.0.2.7/32");
    config_free(cfg);
    cfg = load_ok(BACKENDS "proxyProtocol: {trustedNetworks: [127.0.0.1]}\n");
    cr_expect(cfg->pp_on);
    cr_expect_not(cfg->pp_required, "required defaults to false");
    config_free(cfg);
}

Test(config_net, proxy_protocol_warnings)
{
    struct config *cfg = load_warn(BACKENDS "proxyProtocol:\n  trustedNetworks: [10.1.0.0/8]\n",
                                   "t.yaml:4:21: warning: proxyProtocol.trustedNetworks: "
                                   "\"10.1.0.0/8\" has bits set beyond its prefix: it means "
                                   "10.0.0.0/8\n");
    config_free(cfg);
    cfg = load_warn(BACKENDS "proxyProtocol:\n  trustedNetworks: []\n",
                    "t.yaml:4:20: warning: proxyProtocol.trustedNetworks: [] trusts no peer: every "
                    "PROXY header is refused\n");
    cr_expect(cfg->pp_on);
    config_free(cfg);
}

Test(config_net, proxy_protocol_errors)
{
    expect_fail(BACKENDS "proxyProtocol: true\n",
                "t.yaml:3:16: proxyProtocol must be a mapping with \"trustedNetworks\", got "
                "\"true\"\n");
    expect_fail(BACKENDS "proxyProtocol:\n  required: false\n",
                "t.yaml:4:3: proxyProtocol is missing \"trustedNetworks\"\n");
    expect_fail(BACKENDS "proxyProtocol:\n  trustedNetworks: 10.0.0.0/8\n",
                "t.yaml:4:20: proxyProtocol.trustedNetworks must be a sequence of addresses or "
                "CIDR ranges (e.g. [10.0.0.0/8, \"::1\"]), got \"10.0.0.0/8\"\n");
    expect_fail(BACKENDS "proxyProtocol:\n  trustedNetworks: [10.0.0.0/8, 300.1.1.1, {a: 1}]\n",
                "t.yaml:4:33: proxyProtocol.trustedNetworks: invalid address or CIDR range "
                "\"300.1.1.1\"\n"
                "t.yaml:4:44: proxyProtocol.trustedNetworks: invalid address or CIDR range a "
                "mapping\n");
    expect_fail(BACKENDS "proxyProtocol:\n  trustedNetworks: [\"::1\"]\n  required: 1\n"
                         "  timeout: 3\n  required: true\n",
                "t.yaml:5:13: proxyProtocol.required must be true or false, got \"1\"\n"
                "t.yaml:6:3: unknown key \"timeout\" in proxyProtocol\n"
                "t.yaml:7:3: duplicate key \"required\" (first defined at line 5)\n");
}

Test(config_net, trusted_proxies)
{
    struct config *cfg = load_ok(BACKENDS "trustedProxies: [10.0.0.0/8, \"2001:db8::/32\"]\n");
    char buf[64];
    cr_assert_eq(cfg->ntrusted_proxies, 2);
    cr_expect_str_eq(cidr_str(&cfg->trusted_proxies[1], buf, sizeof(buf)), "2001:db8::/32");
    config_free(cfg);
    cfg = load_ok(BACKENDS "trustedProxies: []\n");
    cr_expect_eq(cfg->ntrusted_proxies, 0);
    config_free(cfg);
    expect_fail(BACKENDS "trustedProxies: 10.0.0.0/8\n",
                "t.yaml:3:17: trustedProxies must be a sequence of addresses or CIDR ranges (e.g. "
                "[10.0.0.0/8, \"::1\"]), got \"10.0.0.0/8\"\n");
    expect_fail(BACKENDS "trustedProxies: [10.0.0.0/8, nope]\n",
                "t.yaml:3:30: trustedProxies: invalid address or CIDR range \"nope\"\n");
}

Test(config_net, send_proxy_protocol)
{
    struct config *cfg = load_ok("backends:\n"
                                 "  - http://127.0.0.1:8081/\n"
                                 "  - {url: http://127.0.0.1:8082/, sendProxyProtocol: v1}\n"
                                 "  - {url: http://127.0.0.1:8083/, sendProxyProtocol: v2}\n"
                                 "  - {url: http://127.0.0.1:8084/, sendProxyProtocol: off}\n");
    cr_assert_eq(cfg->nbackends, 4);
    cr_expect_eq(cfg->backends[0].send_proxy_protocol, 0);
    cr_expect_eq(cfg->backends[1].send_proxy_protocol, 1);
    cr_expect_eq(cfg->backends[2].send_proxy_protocol, 2);
    cr_expect_eq(cfg->backends[3].send_proxy_protocol, 0);
    config_free(cfg);
    expect_fail("backends:\n  - {url: http://127.0.0.1:8082/, sendProxyProtocol: true}\n",
                "t.yaml:2:54: sendProxyProtocol must be one of off, v1, v2, got \"true\"\n");
}

/* config_diff's lines between two loads. */
static char *diff(const char *a, const char *b)
{
    struct config *o = load_ok(a), *n = load_ok(b);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    config_diff(o, n, f);
    fclose(f);
    config_free(o);
    config_free(n);
    return out;
}

Test(config_net, diff_lines)
{
    char *d = diff(BACKENDS, BACKENDS "proxyProtocol: {trustedNetworks: [10.0.0.0/8]}\n");
    cr_expect_str_eq(d, "setting changed: proxyProtocol added\n");
    free(d);
    d = diff(BACKENDS "proxyProtocol: {trustedNetworks: [10.0.0.0/8]}\n",
             BACKENDS "proxyProtocol: {trustedNetworks: [10.0.0.0/8, \"::1\"], required: true}\n");
    cr_expect_str_eq(d, "setting changed: proxyProtocol.trustedNetworks [10.0.0.0/8] -> "
                        "[10.0.0.0/8, ::1/128]\n"
                        "setting changed: proxyProtocol.required false -> true\n");
    free(d);
    d = diff(BACKENDS, "backends:\n  - {url: http://127.0.0.1:8081/, sendProxyProtocol: v2}\n");
    cr_expect_str_eq(d, "backend changed: http://127.0.0.1:8081: sendProxyProtocol off -> v2\n");
    free(d);
    d = diff(BACKENDS, BACKENDS "trustedProxies: [192.0.2.0/24]\n");
    cr_expect_str_eq(d, "setting changed: trustedProxies [] -> [192.0.2.0/24]\n");
    free(d);
    d = diff(BACKENDS "proxyProtocol: {trustedNetworks: [10.0.0.0/8]}\n",
             BACKENDS "proxyProtocol: {trustedNetworks: [10.0.0.0/8]}\n");
    cr_expect_str_eq(d, "");
    free(d);
}
