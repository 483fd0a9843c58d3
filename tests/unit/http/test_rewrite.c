/* Unit tests for rewrite's Upgrade rules (src/http/rewrite.c): which protocols of an Upgrade field
 * upgradeProtocols allows, which requests are upgrades, which 101 answers may start a tunnel.
 * The heads golb writes are tested through the exchange in tests/unit/session/test_proxy.c. */
#include <criterion/criterion.h>

#include <string.h>

#include "http/http1.h"
#include "http/rewrite.h"

static const char *const websocket[] = {"websocket", NULL};

Test(upgrade, protocol_matching)
{
    static const char *const list[] = {"WebSocket", "foo/2", NULL};
    static const struct {
        const char *proto;
        bool ok;
    } t[] = {
        {"websocket", true},   {"WEBSOCKET", true},      {"websocket/13", true}, /* any version */
        {"foo/2", true},       {"FOO/2", true},          {"foo", false},         /* only that one */
        {"foo/3", false},      {"h2c", false},           {"websockets", false},
        {"websocke", false},   {"websocket/", false},    {"/13", false},
        {"web socket", false}, {"websocket/1/2", false}, {"", false},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        cr_expect_eq(rewrite_upgrade_protocol_allowed(t[i].proto, strlen(t[i].proto), list),
                     t[i].ok, "%s", t[i].proto);
    static const char *const none[] = {NULL};
    cr_expect_not(rewrite_upgrade_protocol_allowed("websocket", 9, none));
    cr_expect_not(rewrite_upgrade_protocol_allowed("websocket", 9, NULL));
}

static struct http1_request req;
static struct http1_response resp;

static bool upgrade(const char *head, const char *const *allowed)
{
    ssize_t n = http1_parse_request(head, strlen(head), 0, NULL, &req);
    cr_assert_eq(n, (ssize_t)strlen(head), "%s", req.err_reason);
    return rewrite_upgrade_allowed(&req.rq, allowed);
}

Test(upgrade, only_an_allowed_protocol_makes_a_request_an_upgrade)
{
    /* h2c (with or without its settings) is not an upgrade by default */
    cr_expect_not(upgrade("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                          "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n",
                          websocket));
    cr_expect(
        upgrade("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                websocket));
    /* one allowed protocol among others is enough (the others are not forwarded) */
    cr_expect(upgrade("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
                      "Upgrade: x, WebSocket\r\n\r\n",
                      websocket));
    /* not an upgrade request at all: no Connection option, HTTP/1.0 */
    cr_expect_not(upgrade("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", websocket));
    cr_expect_not(
        upgrade("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", websocket));
    /* an empty list turns upgrades off */
    static const char *const none[] = {NULL};
    cr_expect_not(upgrade(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", none));
}

static bool switch_ok(const char *head)
{
    ssize_t n = http1_parse_response(head, strlen(head), 0, 0, false, &resp);
    cr_assert_eq(n, (ssize_t)strlen(head), "%s", resp.err_reason);
    return rewrite_upgrade_response_ok(&resp, websocket);
}

Test(upgrade, a_101_must_switch_to_an_allowed_protocol)
{
    cr_expect(switch_ok("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                        "Upgrade: websocket\r\n\r\n"));
    cr_expect(switch_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket/13\r\n\r\n"));
    cr_expect_not(switch_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"));
    cr_expect_not(switch_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\n\r\n"));
    cr_expect_not(switch_ok("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n"));
    cr_expect_not(switch_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade:\r\n\r\n"));
}
