/* Unit tests for rewrite's Upgrade rules (src/http/rewrite.c): which protocols of an Upgrade field
 * upgradeProtocols allows, which requests are upgrades, which 101 answers may start a tunnel.
 * The heads golb writes are tested through the exchange in tests/unit/session/test_proxy.c; a
 * route's header filters and golb's own answers (reply_http1) here. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <string.h>

#include "base/buf.h"
#include "http/http.h"
#include "http/http1.h"
#include "http/reply.h"
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

/* ---- a route's header filters (rewrite_headers) ---- */

static struct buf *filter_buf(void)
{
    static char mem[sizeof(struct buf) + 4096];
    struct buf *b = (struct buf *)mem;
    memset(b, 0, sizeof(*b));
    b->cap = 4096;
    return b;
}

static bool has_line(const struct buf *b, const char *line)
{
    size_t n = strlen(line);
    for (uint32_t i = 0; i + n <= b->last; i++)
        if ((i == 0 || b->data[i - 1] == '\n') && memcmp(b->data + i, line, n) == 0)
            return true;
    return false;
}

#define F(n, v) {.name = n, .name_len = sizeof(n) - 1, .value = v, .value_len = sizeof(v) - 1}

Test(filters, request_fields_are_removed_and_set_case_insensitively)
{
    const char *head = "GET /p HTTP/1.1\r\nHost: h\r\nX-Drop: 1\r\nx-api: old\r\n"
                       "X-Keep: k\r\n\r\n";
    cr_assert_gt(http1_parse_request(head, strlen(head), 0, NULL, &req), 0);
    static const struct http_field set[] = {F("X-Api", "2")}, rm[] = {F("x-drop", "")};
    struct rewrite_headers h = {set, 1, rm, 1};
    struct rewrite_request opt = {.client_ip = "10.0.0.1", .client_ip_len = 8, .headers = &h};
    struct buf *b = filter_buf();
    uint32_t host_at;
    cr_assert(rewrite_request_head(&req.rq, &opt, b, &host_at));
    cr_expect_not(has_line(b, "X-Drop"), "%.*s", (int)b->last, b->data);
    cr_expect_not(has_line(b, "x-api: old"));
    cr_expect(has_line(b, "X-Api: 2\r\n"));
    cr_expect(has_line(b, "X-Keep: k\r\n"));
    cr_expect(has_line(b, "Host: h\r\n"));
    cr_expect(has_line(b, "X-Forwarded-For: 10.0.0.1\r\n"), "golb's own fields stay");
}

Test(filters, a_host_the_filter_sets_replaces_the_request_s)
{
    const char *head = "GET http://a.example/p HTTP/1.1\r\nHost: h\r\n\r\n";
    cr_assert_gt(http1_parse_request(head, strlen(head), 0, NULL, &req), 0);
    static const struct http_field set[] = {F("Host", "backend.internal")};
    struct rewrite_headers h = {set, 1, NULL, 0};
    struct rewrite_request opt = {.client_ip = "10.0.0.1", .client_ip_len = 8, .headers = &h};
    struct buf *b = filter_buf();
    uint32_t host_at;
    cr_assert(rewrite_request_head(&req.rq, &opt, b, &host_at));
    cr_expect(has_line(b, "Host: backend.internal\r\n"), "%.*s", (int)b->last, b->data);
    cr_expect_not(has_line(b, "Host: a.example"));
    cr_expect_not(has_line(b, "Host: h"));
    cr_expect_eq(host_at, 0);
}

Test(filters, response_fields_are_filtered_on_final_heads_only)
{
    const char *head = "HTTP/1.1 200 OK\r\nServer: x\r\nCache-Control: no\r\nContent-Length: 0\r\n\r\n";
    cr_assert_gt(http1_parse_response(head, strlen(head), 0, 4096, false, &resp), 0);
    static const struct http_field set[] = {F("Cache-Control", "public")}, rm[] = {F("server", "")};
    struct rewrite_headers h = {set, 1, rm, 1};
    struct rewrite_response opt = {.keepalive = true, .headers = &h};
    struct buf *b = filter_buf();
    cr_assert(rewrite_response_head(&resp, &opt, b));
    cr_expect_not(has_line(b, "Server"), "%.*s", (int)b->last, b->data);
    cr_expect_not(has_line(b, "Cache-Control: no"));
    cr_expect(has_line(b, "Cache-Control: public\r\n"));
    const char *interim = "HTTP/1.1 103 Early Hints\r\nServer: x\r\n\r\n";
    cr_assert_gt(http1_parse_response(interim, strlen(interim), 0, 4096, false, &resp), 0);
    b = filter_buf();
    cr_assert(rewrite_response_head(&resp, &opt, b));
    cr_expect(has_line(b, "Server: x\r\n"), "an interim head is relayed as it came");
    cr_expect_not(has_line(b, "Cache-Control"));
}

/* ---- golb's own answers (reply_http1) ---- */

Test(reply, a_described_answer_is_serialised_for_http1)
{
    static const struct http_field set[] = {F("Content-Type", "text/html"), F("X-A", "1")};
    struct reply_desc d = {.status = 503, .body = "<p>later</p>", .body_len = 12, .fields = set,
                           .nfields = 2};
    struct buf *b = filter_buf();
    cr_assert(reply_http1(&d, true, false, b));
    cr_expect(b->last > 0);
    const char *want = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nX-A: 1\r\n"
                       "Content-Length: 12\r\n\r\n<p>later</p>";
    cr_expect(b->last == strlen(want) && memcmp(b->data, want, b->last) == 0, "%.*s",
              (int)b->last, b->data);

    struct reply_desc r = {.status = 429, .retry_after = 3};
    b = filter_buf();
    cr_assert(reply_http1(&r, false, false, b));
    want = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: 3\r\n"
           "Content-Length: 22\r\nConnection: close\r\n\r\n429 Too Many Requests\n";
    cr_expect(b->last == strlen(want) && memcmp(b->data, want, b->last) == 0, "%.*s",
              (int)b->last, b->data);

    struct reply_desc l = {.status = 301, .location = "https://x/", .location_len = 10,
                           .no_body = true};
    b = filter_buf();
    cr_assert(reply_http1(&l, true, true, b));
    want = "HTTP/1.1 301 Moved Permanently\r\nContent-Type: text/plain\r\nLocation: https://x/\r\n"
           "Content-Length: 22\r\nConnection: keep-alive\r\n\r\n";
    cr_expect(b->last == strlen(want) && memcmp(b->data, want, b->last) == 0, "%.*s",
              (int)b->last, b->data);
}

/* RFC 8441: an extended CONNECT carries no Sec-WebSocket-Key; the HTTP/1.1 handshake made of it
 * gets one (16 bytes in base64), unless the client sent its own. */
Test(upgrade, an_extended_connect_for_websocket_gets_a_key)
{
    struct http_field f[] = {F("sec-websocket-version", "13")};
    struct http_request rq = {.method = "CONNECT", .method_len = 7, .path = "/chat", .path_len = 5,
                              .authority = "a.test", .authority_len = 6,
                              .protocol = "websocket", .protocol_len = 9, .version = HTTP_V2,
                              .flags = HTTP_RF_UPGRADE, .fields = f, .num_fields = 1};
    struct rewrite_request opt = {.client_ip = "10.0.0.1", .client_ip_len = 8, .upgrade = true,
                                  .upgrade_protocols = websocket};
    struct buf *b = filter_buf();
    uint32_t host_at;
    cr_assert(rewrite_request_head(&rq, &opt, b, &host_at));
    cr_expect(has_line(b, "GET /chat HTTP/1.1\r\n"), "%.*s", (int)b->last, b->data);
    cr_expect(has_line(b, "Upgrade: websocket\r\n"));
    const char *k = memmem(b->data, b->last, "Sec-WebSocket-Key: ", 19);
    cr_assert(k, "%.*s", (int)b->last, b->data);
    k += 19;
    for (int i = 0; i < 22; i++)
        cr_expect(isalnum((unsigned char)k[i]) || k[i] == '+' || k[i] == '/', "%.24s", k);
    cr_expect(memcmp(k + 22, "==\r\n", 4) == 0, "%.26s", k);

    struct http_field own[] = {F("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")};
    rq.fields = own;
    b = filter_buf();
    cr_assert(rewrite_request_head(&rq, &opt, b, &host_at));
    cr_expect(has_line(b, "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    cr_expect_null(memmem(b->data, b->last, "Sec-WebSocket-Key", 17), "the client's key only");
}
