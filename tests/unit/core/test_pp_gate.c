/* Unit tests for pp_gate: the decision on a connection's first bytes under proxyProtocol, for a
 * trusted and an untrusted peer, with required on and off: a v1 and a v2 header taken with the
 * address they carry, LOCAL/UNKNOWN keeping the peer's, a header in pieces waiting, what is
 * refused (malformed, untrusted, missing) and the bytes after a header left to the session. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "base/sock.h"
#include "config/config.h"
#include "core/pp_gate.h"
#include "core/worker_ctx.h"

static struct worker_ctx wk;
static struct config *cfg;

static void load(bool required)
{
    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "backends:\n  - http://127.0.0.1:8081/\nproxyProtocol:\n"
             "  trustedNetworks: [10.0.0.0/8]\n  required: %s\n",
             required ? "true" : "false");
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), stderr, &cfg), 0);
    memset(&wk, 0, sizeof(wk));
    wk.cfg = cfg;
}

static void unload(void)
{
    config_free(cfg);
}

struct verdict {
    enum pp_gate_step step;
    size_t len;
    char client[64]; /* "" when the header carried no address */
};

static struct verdict check(bool trusted, const char *bytes, size_t n)
{
    struct verdict v = {0};
    struct sockaddr_storage client;
    socklen_t clientlen = 0;
    v.step = pp_gate_check(&wk, trusted, bytes, n, &v.len, &client, &clientlen);
    if (clientlen)
        sock_ip_str((const struct sockaddr *)&client, v.client, sizeof(v.client));
    return v;
}

#define V1 "PROXY TCP4 192.0.2.1 198.51.100.2 4000 80\r\n"
static const char V2_TCP4[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"
                              "\xc0\x00\x02\x07\xc6\x33\x64\x01\x0f\xa0\x00\x50";
static const char V2_LOCAL[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";

Test(pp_gate, trusted_peer_headers_are_taken_with_their_address)
{
    load(true);
    struct verdict v = check(true, V1 "GET /", strlen(V1 "GET /"));
    cr_expect_eq(v.step, PP_GATE_DONE);
    cr_expect_eq(v.len, strlen(V1), "the request's bytes stay for the session");
    cr_expect_str_eq(v.client, "192.0.2.1");
    v = check(true, V2_TCP4, sizeof(V2_TCP4) - 1);
    cr_expect_eq(v.step, PP_GATE_DONE);
    cr_expect_eq(v.len, 28);
    cr_expect_str_eq(v.client, "192.0.2.7");
    v = check(true, V2_LOCAL, sizeof(V2_LOCAL) - 1);
    cr_expect_eq(v.step, PP_GATE_DONE);
    cr_expect_eq(v.len, 16);
    cr_expect_str_eq(v.client, "", "LOCAL: the peer's own address stays");
    v = check(true, "PROXY UNKNOWN\r\nGET", 18);
    cr_expect_eq(v.step, PP_GATE_DONE);
    cr_expect_eq(v.len, 15);
    cr_expect_str_eq(v.client, "");
    unload();
}

Test(pp_gate, a_header_in_pieces_waits)
{
    load(true);
    cr_expect_eq(check(true, "PRO", 3).step, PP_GATE_WAIT);
    cr_expect_eq(check(true, "PROXY TCP4 192.0.2.1 ", 21).step, PP_GATE_WAIT);
    cr_expect_eq(check(true, V2_TCP4, 20).step, PP_GATE_WAIT);
    unload();
}

Test(pp_gate, refusals)
{
    load(true);
    cr_expect_eq(check(true, "PROXY TCP4 nonsense\r\n", 21).step, PP_GATE_CLOSE, "malformed");
    cr_expect_eq(check(true, "GET / HTTP/1.1\r\n", 16).step, PP_GATE_CLOSE, "missing, required");
    cr_expect_eq(check(false, V1, strlen(V1)).step, PP_GATE_CLOSE, "untrusted v1");
    cr_expect_eq(check(false, V2_LOCAL, sizeof(V2_LOCAL) - 1).step, PP_GATE_CLOSE,
                 "untrusted v2");
    unload();
}

Test(pp_gate, optional_header_and_untrusted_plain_requests_pass)
{
    load(false);
    struct verdict v = check(true, "GET / HTTP/1.1\r\n", 16);
    cr_expect_eq(v.step, PP_GATE_DONE, "not required: a plain request is one");
    cr_expect_eq(v.len, 0);
    v = check(false, "GET / HTTP/1.1\r\n", 16);
    cr_expect_eq(v.step, PP_GATE_DONE);
    cr_expect_eq(v.len, 0);
    v = check(false, "PRO", 3);
    cr_expect_eq(v.step, PP_GATE_DONE, "an untrusted prefix is the session's to refuse");
    unload();
}

Test(pp_gate, trust_follows_trusted_networks)
{
    load(true);
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
    cr_expect(pp_gate_trusted(&wk, (struct sockaddr *)&in));
    inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
    cr_expect_not(pp_gate_trusted(&wk, (struct sockaddr *)&in));
    unload();
}
