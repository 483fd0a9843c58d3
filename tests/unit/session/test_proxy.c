/* Unit tests for the head rewriting (src/rewrite.c, reached through the adapters of the exchange
 * and of the HTTP/1 session: build_request_head(), set_upstream_host(), build_response_head()
 * below) and for the framing decisions parse_response() makes before calling it.
 * Those functions are static, so this file includes exchange.c and h1session.c themselves (as
 * h2o's unit tests do); the archive's objects for them are then never pulled in. Inputs are literal
 * heads parsed by http1; every expectation is the exact byte string golb would send. */
#include <criterion/criterion.h>

#include "../../../src/core/exchange.c"
#include "../../../src/session/h1session.c"

/* The request and response head steps as the tests drive them, over the split modules. */
static bool build_request_head(struct client *c, const struct http1_request *r, struct buf *b)
{
    struct exchange_request info = request_info(c, r);
    return x_build_request_head(c->x, &r->rq, &info, b);
}

static bool set_upstream_host(struct client *c, const struct backend *b)
{
    return x_set_upstream_host(c->x, b);
}

/* The session's serialisation with the flags the test set (no keep-alive decision). */
static bool build_response_head(struct client *c, const struct http1_response *r, struct buf *b)
{
    char cookie[256];
    struct exchange_head h = {cookie,
                              balancer_set_cookie(&c->x->gen->balancer, &c->x->lbr, c->x->backend,
                                                  cookie, sizeof(cookie)),
                              c->x->resp_dechunk, c->x->req_done,
                              c->x->resp_headers}; /* as x_response_head() */
    return h1_response_head(c, r, &h, b);
}

/* The exchange's parse, which asks the session (h1_on_head) for the head and its decisions. */
static bool parse_response(struct client *c)
{
    return x_parse_response(c->x);
}

/* ---- fixture: a worker with a buffer pool and one client ---- */

static struct worker_ctx wk;
static struct config wk_cfg;     /* defaults: plain HTTP, no tls section */
static struct generation wk_gen; /* no backends, a balancer without sticky sessions */
static struct generation_pool wk_pool; /* the default pool: every request's here */
static struct client cl;
static struct exchange xch;
/* Parsed messages are large (128 header slots): static, not on the stack. */
static struct http1_request req;
static struct http1_response resp;

static void set_ip(const char *ip)
{
    cr_assert_lt(strlen(ip), sizeof(cl.ip));
    strcpy(cl.ip, ip);
    cl.iplen = (uint8_t)strlen(ip);
}

static void setup(void)
{
    memset(&wk, 0, sizeof(wk));
    memset(&wk_cfg, 0, sizeof(wk_cfg));
    wk.cfg = &wk_cfg;
    static char *websocket_only[] = {"websocket", NULL}; /* upgradeProtocols' default */
    wk_cfg.upgrade_protocols = websocket_only;
    memset(&wk_gen, 0, sizeof(wk_gen));
    wk_gen.cfg = &wk_cfg;
    wk_pool = (struct generation_pool){.name = "default", .table = wk_gen.table,
                                       .balancer = &wk_gen.balancer};
    wk_pool.cfg = wk_cfg;
    wk_gen.pools = &wk_pool;
    wk_gen.npools = 1;
    wk.gen = &wk_gen;
    buf_pool_init(&wk.bufs, 16384, 8);
    memset(&cl, 0, sizeof(cl));
    memset(&xch, 0, sizeof(xch));
    cl.w = &wk;
    cl.x = &xch;
    xch.w = &wk;
    xch.ops = &h1_exchange_ops;
    xch.client = &cl;
    xch.gen = &wk_gen;
    xch.pool = &wk_pool;
    xch.route = -1;
    set_ip("192.0.2.9");
}

static void teardown(void)
{
    buf_put(&wk.bufs, cl.x->reqh);
    buf_put(&wk.bufs, cl.x->resph);
    buf_put(&wk.bufs, cl.x->uin);
    cl.x->reqh = cl.x->resph = cl.x->uin = NULL;
    cr_expect_eq(wk.bufs.outstanding, 0, "buffer leak");
    buf_pool_destroy(&wk.bufs);
}

TestSuite(proxy_request, .init = setup, .fini = teardown);
TestSuite(proxy_response, .init = setup, .fini = teardown);
TestSuite(proxy_framing, .init = setup, .fini = teardown);

/* Renders bytes with \r and \n visible, for failure messages. */
static const char *show(const char *s, size_t n)
{
    static char out[2][8192];
    static int which;
    char *o = out[which ^= 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < sizeof(out[0]); i++) {
        if (s[i] == '\r') {
            o[k++] = '\\';
            o[k++] = 'r';
        } else if (s[i] == '\n') {
            o[k++] = '\\';
            o[k++] = 'n';
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = '\0';
    return o;
}

static void expect_buf(const struct buf *b, const char *want)
{
    size_t n = buf_len(b);
    const char *got = b->data + b->pos;
    cr_expect(n == strlen(want) && memcmp(got, want, n) == 0, "\n  got:  %s\n  want: %s",
              show(got, n), show(want, strlen(want)));
}

/* ---- requests ---- */

static void parse_req(const char *head)
{
    ssize_t n = http1_parse_request(head, strlen(head), 0, NULL, &req);
    cr_assert_eq(n, (ssize_t)strlen(head), "parse failed: %s", req.err_reason);
}

/* What start_exchange() and exchange_start() do before build_request_head(). */
static bool rewrite_req(const char *head)
{
    parse_req(head);
    cl.x->req_upgrade = rewrite_upgrade_allowed(&req.rq, ex_upgrades(cl.x));
    cl.http10 = req.rq.version == HTTP_V1_0;
    if (!cl.x->reqh)
        cl.x->reqh = buf_get(&wk.bufs);
    cr_assert_not_null(cl.x->reqh);
    return build_request_head(&cl, &req, cl.x->reqh);
}

/* The end of every finished request head from the fixture's client (192.0.2.9, plain HTTP) when
 * the request's authority is `host`: the forwarding fields golb adds, then the empty line. */
#define FORWARDED(host)                                                                            \
    "X-Forwarded-For: 192.0.2.9\r\n"                                                               \
    "X-Forwarded-Proto: http\r\n"                                                                  \
    "X-Forwarded-Host: " host "\r\n"                                                               \
    "\r\n"

static void expect_req(const char *head, const char *want)
{
    cr_assert(rewrite_req(head), "build_request_head overflowed");
    expect_buf(cl.x->reqh, want);
    cr_expect_eq(cl.x->reqh_host_at, 0, "a request with an authority is finished at once");
}

Test(proxy_request, plain_request_gets_forwarding_fields)
{
    expect_req("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n",
               "GET /a?b=1 HTTP/1.1\r\n"
               "Host: example.com\r\n"
               "User-Agent: t/1\r\n"
               "Accept: */*\r\n" FORWARDED("example.com"));
}

Test(proxy_request, bare_lf_and_ows_are_normalised)
{
    expect_req("GET / HTTP/1.1\nHost:   h  \nX-A:\tv \n\n", "GET / HTTP/1.1\r\n"
                                                            "Host: h\r\n"
                                                            "X-A: v\r\n" FORWARDED("h"));
}

Test(proxy_request, hop_by_hop_fields_and_those_named_by_connection_are_removed)
{
    expect_req("GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Connection: keep-alive, X-Secret\r\n"
               "Keep-Alive: timeout=5\r\n"
               "X-Secret: s\r\n"
               "Proxy-Connection: keep-alive\r\n"
               "TE: trailers\r\n"
               "Trailer: X-Sum\r\n"
               "Upgrade: websocket\r\n"
               "X-Keep: k\r\n"
               "connection: x-other\r\n"
               "X-OTHER: o\r\n"
               "\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Keep: k\r\n" FORWARDED("h"));
}

Test(proxy_request, fields_named_by_connection_that_framing_rests_on_are_kept)
{
    expect_req("POST /f HTTP/1.1\r\n"
               "Host: h\r\n"
               "Connection: host, content-length, x-gone\r\n"
               "Content-Length: 3\r\n"
               "X-Gone: 1\r\n"
               "\r\n",
               "POST /f HTTP/1.1\r\n"
               "Host: h\r\n"
               "Content-Length: 3\r\n" FORWARDED("h"));
    expect_req("POST /f HTTP/1.1\r\n"
               "Host: h\r\n"
               "Connection: transfer-encoding\r\n"
               "Transfer-Encoding: chunked\r\n"
               "\r\n",
               "POST /f HTTP/1.1\r\n"
               "Host: h\r\n"
               "Transfer-Encoding: chunked\r\n" FORWARDED("h"));
}

Test(proxy_request, x_forwarded_for_is_appended_to_across_fields)
{
    xch.peer_trusted = true; /* a peer of trustedProxies */
    expect_req("GET / HTTP/1.1\r\n"
               "X-Forwarded-For: 203.0.113.1\r\n"
               "Host: h\r\n"
               "x-forwarded-for: 198.51.100.2, 198.51.100.3\r\n"
               "X-Forwarded-For:\r\n"
               "Accept: */*\r\n"
               "\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Accept: */*\r\n"
               "X-Forwarded-For: 203.0.113.1, 198.51.100.2, 198.51.100.3, 192.0.2.9\r\n"
               "X-Forwarded-Proto: http\r\n"
               "X-Forwarded-Host: h\r\n"
               "\r\n");
}

Test(proxy_request, only_empty_x_forwarded_for_gives_just_the_client)
{
    expect_req("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For:  \r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n" FORWARDED("h"));
}

Test(proxy_request, ipv6_client_in_x_forwarded_for)
{
    set_ip("2001:db8::1");
    xch.peer_trusted = true;
    expect_req("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-For: 10.0.0.1, 2001:db8::1\r\n"
               "X-Forwarded-Proto: http\r\n"
               "X-Forwarded-Host: h\r\n"
               "\r\n");
}

Test(proxy_request, untrusted_peer_forwarding_fields_are_replaced)
{
    /* trustedProxies does not list the peer (the default): its claims are dropped */
    expect_req("GET / HTTP/1.1\r\n"
               "X-Forwarded-For: 203.0.113.1\r\n"
               "Host: h\r\n"
               "Forwarded: for=203.0.113.1;proto=https\r\n"
               "X-Real-IP: 203.0.113.1\r\n"
               "X-Real-Ip2: kept\r\n"
               "FORWARDED: for=x\r\n"
               "\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Real-Ip2: kept\r\n"
               "X-Forwarded-For: 192.0.2.9\r\n"
               "X-Forwarded-Proto: http\r\n"
               "X-Forwarded-Host: h\r\n"
               "X-Real-IP: 192.0.2.9\r\n"
               "Forwarded: for=192.0.2.9;proto=http;host=\"h\"\r\n"
               "\r\n");
}

Test(proxy_request, untrusted_ipv6_peer_gets_a_quoted_forwarded_node)
{
    set_ip("2001:db8::1");
    expect_req("GET / HTTP/1.1\r\nHost: h:8080\r\nForwarded: for=x\r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h:8080\r\n"
               "X-Forwarded-For: 2001:db8::1\r\n"
               "X-Forwarded-Proto: http\r\n"
               "X-Forwarded-Host: h:8080\r\n"
               "Forwarded: for=\"[2001:db8::1]\";proto=http;host=\"h:8080\"\r\n"
               "\r\n");
}

Test(proxy_request, without_forwarding_fields_golb_adds_neither_forwarded_nor_x_real_ip)
{
    expect_req("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "GET / HTTP/1.1\r\nHost: h\r\n" FORWARDED("h"));
}

Test(proxy_request, trusted_peer_forwarding_fields_pass)
{
    xch.peer_trusted = true;
    expect_req("GET / HTTP/1.1\r\n"
               "X-Forwarded-For: 203.0.113.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-Proto: https\r\n"
               "X-Forwarded-Host: front.example\r\n"
               "Forwarded: for=203.0.113.1;proto=https\r\n"
               "X-Real-IP: 203.0.113.1\r\n"
               "\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-Forwarded-Proto: https\r\n"
               "X-Forwarded-Host: front.example\r\n"
               "Forwarded: for=203.0.113.1;proto=https\r\n"
               "X-Real-IP: 203.0.113.1\r\n"
               "X-Forwarded-For: 203.0.113.1, 192.0.2.9\r\n"
               "Forwarded: for=192.0.2.9;proto=http;host=\"h\"\r\n"
               "\r\n");
}

Test(proxy_request, client_forwarded_proto_and_host_are_replaced)
{
    expect_req("GET / HTTP/1.1\r\n"
               "X-Forwarded-Proto: https\r\n"
               "Host: real.example\r\n"
               "X-Forwarded-Host: evil.example\r\n"
               "x-forwarded-proto: gopher\r\n"
               "\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: real.example\r\n" FORWARDED("real.example"));
}

Test(proxy_request, absolute_form_becomes_origin_form_with_host_from_the_authority)
{
    expect_req("GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\n"
               "Host: other.example\r\n"
               "Accept: */*\r\n"
               "\r\n",
               "GET /p/q?x=1 HTTP/1.1\r\n"
               "Accept: */*\r\n"
               "Host: example.com:8080\r\n" FORWARDED("example.com:8080"));
}

Test(proxy_request, absolute_form_without_a_path_gets_slash)
{
    expect_req("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: example.com\r\n" FORWARDED("example.com"));
}

Test(proxy_request, asterisk_form_is_kept)
{
    expect_req("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "OPTIONS * HTTP/1.1\r\n"
                                                        "Host: h\r\n" FORWARDED("h"));
}

Test(proxy_request, content_length_list_is_re_emitted_once)
{
    expect_req("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
               "POST /u HTTP/1.1\r\n"
               "Host: h\r\n"
               "Content-Length: 5\r\n" FORWARDED("h"));
    expect_req("POST /u HTTP/1.1\r\nContent-Length: 7\r\nHost: h\r\ncontent-length: 7\r\n\r\n",
               "POST /u HTTP/1.1\r\n"
               "Host: h\r\n"
               "Content-Length: 7\r\n" FORWARDED("h"));
}

Test(proxy_request, content_length_values_are_re_serialised)
{
    expect_req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
               "POST / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Content-Length: 0\r\n" FORWARDED("h"));
    /* Leading zeros are golb's to drop: the upstream sees the number golb framed with. */
    expect_req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0009223372036854775807\r\n\r\n",
               "POST / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Content-Length: 9223372036854775807\r\n" FORWARDED("h"));
}

Test(proxy_request, chunked_request_keeps_transfer_encoding)
{
    expect_req(
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\nTE: trailers\r\n\r\n",
        "POST / HTTP/1.1\r\n"
        "Host: h\r\n"
        "Transfer-Encoding: gzip, chunked\r\n" FORWARDED("h"));
}

Test(proxy_request, upgrade_is_kept_for_an_upgrade_request)
{
    expect_req("GET /ws HTTP/1.1\r\n"
               "Host: h\r\n"
               "Connection: keep-alive, Upgrade\r\n"
               "Upgrade: websocket\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n"
               "\r\n",
               "GET /ws HTTP/1.1\r\n"
               "Host: h\r\n"
               "Upgrade: websocket\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n"
               "Connection: upgrade\r\n" FORWARDED("h"));
    cr_expect(cl.x->req_upgrade);
}

Test(proxy_request, upgrade_is_dropped_when_not_an_upgrade_request)
{
    /* Upgrade without "Connection: upgrade" */
    expect_req("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n" FORWARDED("h"));
    cr_expect_not(cl.x->req_upgrade);
    /* HTTP/1.0 has no Upgrade (RFC 9110 §7.8), even with the Connection token */
    expect_req("GET / HTTP/1.0\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n" FORWARDED("h"));
    cr_expect_not(cl.x->req_upgrade);
}

/* h2c smuggling (issue 15): an Upgrade to a protocol not in upgradeProtocols is proxied as an
 * ordinary request: no Upgrade, no HTTP2-Settings, no Connection option for them. */
Test(proxy_request, upgrade_to_a_protocol_not_allowed_is_an_ordinary_request)
{
    expect_req("GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Connection: Upgrade, HTTP2-Settings\r\n"
               "Upgrade: h2c\r\n"
               "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
               "X-A: 1\r\n"
               "\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-A: 1\r\n" FORWARDED("h"));
    cr_expect_not(cl.x->req_upgrade);
    /* HTTP2-Settings is a connection option even when the client did not list it */
    expect_req("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
               "http2-settings: AAMAAABk\r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n" FORWARDED("h"));
    cr_expect_not(cl.x->req_upgrade);
    /* case-insensitive, and a version of an allowed protocol is allowed */
    expect_req("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: WebSocket/13\r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Upgrade: WebSocket/13\r\n"
               "Connection: upgrade\r\n" FORWARDED("h"));
    cr_expect(cl.x->req_upgrade);
}

Test(proxy_request, only_the_allowed_protocols_of_an_upgrade_are_forwarded)
{
    expect_req("GET /ws HTTP/1.1\r\n"
               "Host: h\r\n"
               "Upgrade: h2c, websocket\r\n"
               "Connection: Upgrade, HTTP2-Settings\r\n"
               "HTTP2-Settings: AAMAAABk\r\n"
               "Upgrade: foo, , bad token, websocket/13\r\n"
               "\r\n",
               "GET /ws HTTP/1.1\r\n"
               "Host: h\r\n"
               "Upgrade: websocket, websocket/13\r\n"
               "Connection: upgrade\r\n" FORWARDED("h"));
    cr_expect(cl.x->req_upgrade);
}

Test(proxy_request, an_empty_upgrade_list_turns_upgrades_off)
{
    static char *none[] = {NULL};
    wk_cfg.upgrade_protocols = none;
    expect_req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
               "GET /ws HTTP/1.1\r\n"
               "Host: h\r\n" FORWARDED("h"));
    cr_expect_not(cl.x->req_upgrade);
    wk_cfg.upgrade_protocols = NULL; /* NULL is "none" too */
    expect_req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
               "GET /ws HTTP/1.1\r\n"
               "Host: h\r\n" FORWARDED("h"));
    cr_expect_not(cl.x->req_upgrade);
}

Test(proxy_request, an_allowed_h2c_upgrade_keeps_its_settings)
{
    static char *h2c[] = {"h2c", NULL};
    wk_cfg.upgrade_protocols = h2c;
    expect_req("GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Connection: Upgrade, HTTP2-Settings\r\n"
               "Upgrade: h2c, websocket\r\n"
               "HTTP2-Settings: AAMAAABk\r\n"
               "\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "Upgrade: h2c\r\n"
               "HTTP2-Settings: AAMAAABk\r\n"
               "Connection: upgrade, HTTP2-Settings\r\n" FORWARDED("h"));
    cr_expect(cl.x->req_upgrade);
}

Test(proxy_request, http10_request_is_sent_as_http11)
{
    expect_req("GET /old HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
               "GET /old HTTP/1.1\r\n"
               "Host: h\r\n" FORWARDED("h"));
}

Test(proxy_request, hostless_http10_request_is_finished_with_the_backend_host)
{
    cr_assert(rewrite_req("GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n"));
    const char *open_head = "GET /x HTTP/1.1\r\n"
                            "Accept: */*\r\n"
                            "X-Forwarded-For: 192.0.2.9\r\n"
                            "X-Forwarded-Proto: http\r\n";
    /* Not finished yet: no X-Forwarded-Host (there is no authority) and no empty line. */
    expect_buf(cl.x->reqh, open_head);
    cr_expect_eq(cl.x->reqh_host_at, strlen(open_head));

    struct backend b1 = {.name = "10.0.0.1:8081"};
    cr_assert(set_upstream_host(&cl, &b1));
    char want[512];
    snprintf(want, sizeof(want), "%sHost: 10.0.0.1:8081\r\n\r\n", open_head);
    expect_buf(cl.x->reqh, want);

    /* A retry on another backend replaces the Host, it does not append a second one. */
    struct backend b2 = {.name = "[::1]:9000"};
    cr_assert(set_upstream_host(&cl, &b2));
    snprintf(want, sizeof(want), "%sHost: [::1]:9000\r\n\r\n", open_head);
    expect_buf(cl.x->reqh, want);
}

Test(proxy_request, hostless_http10_absolute_form_takes_host_from_the_target)
{
    expect_req("GET http://a.example/x HTTP/1.0\r\n\r\n",
               "GET /x HTTP/1.1\r\n"
               "Host: a.example\r\n" FORWARDED("a.example"));
}

Test(proxy_request, set_upstream_host_leaves_a_request_with_host_alone)
{
    cr_assert(rewrite_req("GET / HTTP/1.0\r\nHost: mine\r\n\r\n"));
    uint32_t len = buf_len(cl.x->reqh);
    struct backend b = {.name = "10.0.0.1:8081"};
    cr_assert(set_upstream_host(&cl, &b));
    cr_expect_eq(buf_len(cl.x->reqh), len);
    expect_buf(cl.x->reqh, "GET / HTTP/1.1\r\n"
                           "Host: mine\r\n" FORWARDED("mine"));
}

Test(proxy_request, head_that_does_not_fit_fails)
{
    struct buf_pool small;
    buf_pool_init(&small, 64, 1);
    cl.x->reqh = buf_get(&small);
    parse_req("GET /a-rather-long-path HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    cr_expect_not(build_request_head(&cl, &req, cl.x->reqh), "a 64-byte buffer cannot hold it");
    buf_put(&small, cl.x->reqh);
    cl.x->reqh = NULL;
    buf_pool_destroy(&small);
}

Test(proxy_request, host_that_does_not_fit_fails)
{
    struct buf_pool small;
    buf_pool_init(&small, 96, 1);
    cl.x->reqh = buf_get(&small);
    parse_req("GET / HTTP/1.0\r\n\r\n");
    cr_assert(build_request_head(&cl, &req, cl.x->reqh));
    char name[128];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    struct backend b = {.name = name};
    cr_expect_not(set_upstream_host(&cl, &b));
    buf_put(&small, cl.x->reqh);
    cl.x->reqh = NULL;
    buf_pool_destroy(&small);
}

/* ---- responses: build_response_head with the client-side flags set explicitly ---- */

static void parse_resp(const char *head, bool request_was_head)
{
    ssize_t n = http1_parse_response(head, strlen(head), 0, 0, request_was_head, &resp);
    cr_assert_eq(n, (ssize_t)strlen(head), "parse failed: %s", resp.err_reason);
}

/* Client-side flags as parse_response() would have them. */
struct client_side {
    bool keepalive; /* the session's decision (client.keepalive) */
    bool http10;    /* client.http10 */
    bool dechunk;   /* the exchange's resp_dechunk */
};

static void expect_resp(const char *head, bool request_was_head, struct client_side cs,
                        const char *want)
{
    parse_resp(head, request_was_head);
    cl.keepalive = cs.keepalive;
    cl.http10 = cs.http10;
    cl.x->resp_dechunk = cs.dechunk;
    if (!cl.x->resph)
        cl.x->resph = buf_get(&wk.bufs);
    cl.x->resph->pos = cl.x->resph->last = 0;
    cr_assert(build_response_head(&cl, &resp, cl.x->resph), "build_response_head overflowed");
    expect_buf(cl.x->resph, want);
}

static const struct client_side KA11 = {.keepalive = true};
static const struct client_side CLOSE11 = {.keepalive = false};
static const struct client_side KA10 = {.keepalive = true, .http10 = true};
static const struct client_side CLOSE10 = {.keepalive = false, .http10 = true};

Test(proxy_response, content_length_is_kept_and_hop_by_hop_removed)
{
    expect_resp("HTTP/1.1 200 OK\r\n"
                "Content-Length: 5\r\n"
                "Content-Type: text/plain\r\n"
                "Connection: keep-alive\r\n"
                "Keep-Alive: timeout=5\r\n"
                "\r\n",
                false, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Content-Type: text/plain\r\n"
                "Content-Length: 5\r\n"
                "\r\n");
}

Test(proxy_response, connection_close_when_the_client_connection_ends)
{
    expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, CLOSE11,
                "HTTP/1.1 200 OK\r\n"
                "Content-Length: 5\r\n"
                "Connection: close\r\n"
                "\r\n");
}

Test(proxy_response, keep_alive_is_announced_to_http10_clients)
{
    expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, KA10,
                "HTTP/1.1 200 OK\r\n"
                "Content-Length: 5\r\n"
                "Connection: keep-alive\r\n"
                "\r\n");
    expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, CLOSE10,
                "HTTP/1.1 200 OK\r\n"
                "Content-Length: 5\r\n"
                "Connection: close\r\n"
                "\r\n");
}

Test(proxy_response, chunked_passes_through_to_http11_clients)
{
    expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n", false, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Transfer-Encoding: chunked\r\n"
                "X-A: 1\r\n"
                "\r\n");
    /* the codings stay as sent */
    expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Transfer-Encoding: gzip, chunked\r\n"
                "\r\n");
}

Test(proxy_response, chunked_is_dropped_for_http10_clients)
{
    expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n", false,
                (struct client_side){.keepalive = false, .http10 = true, .dechunk = true},
                "HTTP/1.1 200 OK\r\n"
                "X-A: 1\r\n"
                "Connection: close\r\n"
                "\r\n");
}

Test(proxy_response, close_delimited_body_closes_the_client)
{
    expect_resp("HTTP/1.0 200 OK\r\nServer: old\r\n\r\n", false, CLOSE11,
                "HTTP/1.1 200 OK\r\n"
                "Server: old\r\n"
                "Connection: close\r\n"
                "\r\n");
}

Test(proxy_response, content_length_list_is_re_emitted_once)
{
    expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n", false, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Content-Length: 5\r\n"
                "\r\n");
    expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Content-Length: 0\r\n"
                "\r\n");
    expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n", false, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Content-Length: 9223372036854775807\r\n"
                "\r\n");
}

Test(proxy_response, bodiless_responses_keep_their_content_length_as_sent)
{
    /* HEAD and 304: Content-Length describes the representation, not a body. */
    expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n", true, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Content-Length: 1234\r\n"
                "ETag: \"x\"\r\n"
                "\r\n");
    expect_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", false, KA11,
                "HTTP/1.1 304 Not Modified\r\n"
                "Content-Length: 99\r\n"
                "\r\n");
    expect_resp("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false, KA10,
                "HTTP/1.1 204 No Content\r\n"
                "X-A: 1\r\n"
                "Connection: keep-alive\r\n"
                "\r\n");
}

Test(proxy_response, transfer_encoding_of_a_bodiless_response_per_client_version)
{
    /* A HEAD response may announce chunked; HTTP/1.0 clients have no transfer codings. */
    expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Transfer-Encoding: chunked\r\n"
                "\r\n");
    expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, KA10,
                "HTTP/1.1 200 OK\r\n"
                "Connection: keep-alive\r\n"
                "\r\n");
}

Test(proxy_response, fields_named_by_connection_are_removed)
{
    expect_resp("HTTP/1.1 200 OK\r\n"
                "Connection: X-Internal, close\r\n"
                "X-Internal: secret\r\n"
                "Content-Length: 2\r\n"
                "Trailer: X-Sum\r\n"
                "X-Public: p\r\n"
                "\r\n",
                false, KA11,
                "HTTP/1.1 200 OK\r\n"
                "X-Public: p\r\n"
                "Content-Length: 2\r\n"
                "\r\n");
}

Test(proxy_response, status_and_reason_are_re_serialised)
{
    expect_resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, KA11,
                "HTTP/1.1 200 \r\n"
                "Content-Length: 0\r\n"
                "\r\n");
    expect_resp("HTTP/1.0 404 Not  Found here\r\nContent-Length: 0\r\n\r\n", false, KA11,
                "HTTP/1.1 404 Not  Found here\r\n"
                "Content-Length: 0\r\n"
                "\r\n");
    expect_resp("HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n", false, KA11,
                "HTTP/1.1 999 Odd\r\n"
                "Content-Length: 0\r\n"
                "\r\n");
}

Test(proxy_response, interim_responses_are_relayed_and_accumulate)
{
    parse_resp("HTTP/1.1 100 Continue\r\n\r\n", false);
    cl.keepalive = false; /* not decided yet: interim heads carry no Connection field */
    cl.x->resph = buf_get(&wk.bufs);
    cr_assert(build_response_head(&cl, &resp, cl.x->resph));
    expect_buf(cl.x->resph, "HTTP/1.1 100 Continue\r\n\r\n");

    parse_resp("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", false);
    cr_assert(build_response_head(&cl, &resp, cl.x->resph));
    parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", false);
    cl.keepalive = true;
    cr_assert(build_response_head(&cl, &resp, cl.x->resph));
    expect_buf(cl.x->resph, "HTTP/1.1 100 Continue\r\n\r\n"
                            "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n");
}

Test(proxy_response, interim_head_drops_hop_by_hop_fields)
{
    expect_resp(
        "HTTP/1.1 100 Continue\r\nConnection: keep-alive\r\nKeep-Alive: x\r\nX-A: 1\r\n\r\n", false,
        CLOSE11, "HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n");
}

Test(proxy_response, switching_protocols_keeps_upgrade)
{
    expect_resp("HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                "\r\n",
                false, CLOSE11,
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                "Connection: upgrade\r\n"
                "\r\n");
}

Test(proxy_response, upgrade_is_dropped_from_other_responses)
{
    expect_resp("HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n", false, KA11,
                "HTTP/1.1 200 OK\r\n"
                "Content-Length: 0\r\n"
                "\r\n");
}

Test(proxy_response, head_that_does_not_fit_fails_and_leaves_the_buffer)
{
    struct buf_pool small;
    buf_pool_init(&small, 40, 1);
    struct buf *b = buf_get(&small);
    memcpy(b->data, "prefix", 6);
    b->last = 6;
    parse_resp("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12345\r\n\r\n",
               false);
    cl.keepalive = true;
    cr_expect_not(build_response_head(&cl, &resp, b));
    cr_expect_eq(b->last, 6, "a failed build must not move last");
    buf_put(&small, b);
    buf_pool_destroy(&small);
}

/* Regression, fixed (proxy.c build_response_head): a response whose final transfer coding is not
 * chunked
 * ("Transfer-Encoding: gzip", close-delimited per RFC 9112 §6.3 rule 4) loses its
 * Transfer-Encoding field: the field is dropped because resp->body != HTTP1_BODY_CHUNKED, so the
 * client receives gzip-coded bytes announced as identity (corrupt content).
 * Input: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" to an HTTP/1.1 client.
 * Expected: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n".
 * Actual:   "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n". */
Test(proxy_response, non_chunked_transfer_coding_is_kept_for_close_delimited_bodies)
{
    expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, CLOSE11,
                "HTTP/1.1 200 OK\r\n"
                "Transfer-Encoding: gzip\r\n"
                "Connection: close\r\n"
                "\r\n");
}

/* ---- framing decisions: parse_response() sets the client-side flags, then builds ---- */

/* The request side as start_exchange() leaves it, fully sent. */
static void request_sent(bool keepalive, bool http10, bool upgrade)
{
    cl.req_keepalive = keepalive;
    cl.http10 = http10;
    cl.keepalive = false;
    cl.x->client_dechunk = http10; /* what h1session's request_info() says for HTTP/1.0 */
    cl.x->req_upgrade = upgrade;
    cl.x->req_done = true;
    cl.x->resp_phase = RESP_WAIT_HEAD;
}

/* Feeds a response head through parse_response(); returns whether it progressed. */
static bool upstream_sends(const char *head)
{
    if (!cl.x->uin)
        cl.x->uin = buf_get(&wk.bufs);
    cl.x->uin->pos = cl.x->uin->last = 0;
    size_t n = strlen(head);
    memcpy(cl.x->uin->data, head, n);
    cl.x->uin->last = (uint32_t)n;
    return parse_response(&cl);
}

Test(proxy_framing, keep_alive_on_both_sides)
{
    request_sent(true, false, false);
    cl.x->reqh = buf_get(&wk.bufs);
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"));
    cr_expect(cl.keepalive);
    cr_expect(cl.x->resp_keepalive);
    cr_expect_not(cl.x->resp_dechunk);
    cr_expect_eq(cl.x->resp_phase, RESP_BODY);
    cr_expect_eq(cl.x->resp_remaining, 3);
    cr_expect_null(cl.x->reqh, "the request head is freed once the response started");
    expect_buf(cl.x->resph, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
}

Test(proxy_framing, upstream_close_does_not_close_the_client)
{
    request_sent(true, false, false);
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
    cr_expect_not(cl.x->resp_keepalive, "the upstream connection cannot be pooled");
    cr_expect(cl.keepalive, "the client connection is independent");
    cr_expect_eq(cl.x->resp_phase, RESP_BODY);
    expect_buf(cl.x->resph, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

Test(proxy_framing, chunked_to_http10_client_is_dechunked_and_closed)
{
    request_sent(true, true, false);
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
    cr_expect(cl.x->resp_dechunk);
    cr_expect_not(cl.keepalive, "a de-chunked body is close-delimited");
    cr_expect(cl.x->resp_keepalive, "the upstream side stays reusable");
    expect_buf(cl.x->resph, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
}

Test(proxy_framing, chunked_to_http11_client_passes_through)
{
    request_sent(true, false, false);
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
    cr_expect_not(cl.x->resp_dechunk);
    cr_expect(cl.keepalive);
    expect_buf(cl.x->resph, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

Test(proxy_framing, http10_keep_alive_client_gets_keep_alive)
{
    request_sent(true, true, false);
    cr_assert(upstream_sends("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"));
    cr_expect(cl.keepalive);
    cr_expect_not(cl.x->resp_keepalive, "an HTTP/1.0 upstream without keep-alive closes");
    expect_buf(cl.x->resph,
               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n");
}

Test(proxy_framing, http10_client_without_keep_alive_is_closed)
{
    request_sent(false, true, false);
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"));
    cr_expect_not(cl.keepalive);
    expect_buf(cl.x->resph, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
}

Test(proxy_framing, close_delimited_response_closes_the_client)
{
    request_sent(true, false, false);
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n"));
    cr_expect_eq(cl.x->resp_body, HTTP1_BODY_CLOSE);
    cr_expect_not(cl.keepalive);
    cr_expect_not(cl.x->resp_keepalive);
    expect_buf(cl.x->resph, "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n");
}

Test(proxy_framing, response_before_the_request_body_was_sent_closes_the_client)
{
    request_sent(true, false, false);
    cl.x->req_done = false; /* e.g. a 413 while the client is still uploading */
    cr_assert(upstream_sends("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"));
    cr_expect_not(cl.keepalive);
    expect_buf(cl.x->resph, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n"
                            "Connection: close\r\n\r\n");
}

Test(proxy_framing, draining_worker_closes_the_client)
{
    request_sent(true, false, false);
    wk.draining = true;
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    cr_expect_not(cl.keepalive);
    expect_buf(cl.x->resph, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

Test(proxy_framing, interim_then_final)
{
    request_sent(true, false, false);
    cr_assert(upstream_sends("HTTP/1.1 100 Continue\r\n\r\n"));
    cr_expect_eq(cl.x->resp_phase, RESP_WAIT_HEAD, "still waiting for the final head");
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"));
    expect_buf(cl.x->resph,
               "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n");
}

Test(proxy_framing, interim_is_not_relayed_to_http10_clients)
{
    request_sent(true, true, false);
    cr_assert(upstream_sends("HTTP/1.1 100 Continue\r\n\r\n"));
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"));
    expect_buf(cl.x->resph,
               "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n");
}

Test(proxy_framing, switching_protocols_after_an_upgrade_request)
{
    request_sent(true, false, true);
    cr_assert(upstream_sends("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n"));
    cr_expect(cl.x->tunnel_pending);
    cr_expect_eq(cl.x->resp_phase, RESP_DONE);
    cr_expect_not(cl.keepalive);
    expect_buf(cl.x->resph, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: upgrade\r\n\r\n");
}

/* A 101 becomes a tunnel only after an allowed upgrade request, and only to an allowed protocol:
 * otherwise 502 and the upstream connection is not kept. */
Test(proxy_framing, switching_protocols_without_an_allowed_upgrade_is_refused)
{
    static struct backend be = {.name = "127.0.0.1:1"};
    static struct backend *bes[] = {&be};
    static struct backend_table table = {.n = 1, .b = bes};
    wk_gen.table = &table;
    wk_pool.table = &table;
    /* the h2c request went upstream as an ordinary one: its 101 is not a tunnel */
    cr_assert(rewrite_req("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                          "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n"));
    request_sent(true, false, cl.x->req_upgrade);
    cr_expect_not(upstream_sends("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                                 "Upgrade: h2c\r\n\r\n"));
    cr_expect_not(cl.x->tunnel_pending);
    cr_expect_eq(cl.x->res, EX_FAIL);
    cr_expect_eq(cl.x->fail_status, 502);

    /* a websocket request answered with a switch to another protocol, or to none */
    static const char *const bad[] = {
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
        "Upgrade: websocket, h2c\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl.x->res = EX_WAIT;
        cl.x->fail_status = 0;
        request_sent(true, false, true);
        cr_expect_not(upstream_sends(bad[i]), "%s", bad[i]);
        cr_expect_not(cl.x->tunnel_pending, "%s", bad[i]);
        cr_expect_eq(cl.x->res, EX_FAIL, "%s", bad[i]);
        cr_expect_eq(cl.x->fail_status, 502, "%s", bad[i]);
    }
}

Test(proxy_framing, head_request_response_has_no_body)
{
    request_sent(true, false, false);
    cl.x->req_is_head = true;
    cr_assert(upstream_sends("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"));
    cr_expect_eq(cl.x->resp_phase, RESP_DONE);
    cr_expect(cl.keepalive);
    expect_buf(cl.x->resph, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n");
}

/* tls.clientSubjectHeader: golb writes the verified subject and drops the client's own field of
 * that name (any case), so it cannot be forged; over plain HTTP the field is only dropped. */
Test(proxy_request, client_subject_header_cannot_be_forged)
{
    static struct config_tls tls = {.client_subject_header = "X-Client-Subject"};
    wk_cfg.tls = &tls;
    static char subject[] = "CN=alice";
    cl.subject = subject;
    cl.ssl = (SSL *)1; /* only compared with NULL here: X-Forwarded-Proto: https */
    expect_req("GET / HTTP/1.1\r\nHost: h\r\nx-client-subject: CN=forged\r\nX-A: 1\r\n\r\n",
               "GET / HTTP/1.1\r\n"
               "Host: h\r\n"
               "X-A: 1\r\n"
               "X-Client-Subject: CN=alice\r\n"
               "X-Forwarded-For: 192.0.2.9\r\n"
               "X-Forwarded-Proto: https\r\n"
               "X-Forwarded-Host: h\r\n"
               "\r\n");
    cl.subject = NULL;
    cl.ssl = NULL;
    buf_put(&wk.bufs, cl.x->reqh);
    cl.x->reqh = NULL;
    expect_req("GET / HTTP/1.1\r\nHost: h\r\nX-Client-Subject: CN=forged\r\n\r\n",
               "GET / HTTP/1.1\r\nHost: h\r\n" FORWARDED("h"));
    wk_cfg.tls = NULL;
}
