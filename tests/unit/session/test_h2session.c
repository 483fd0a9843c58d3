/* Unit tests for the HTTP/2 session's translation: a real h2session on one end of a socketpair,
 * an nghttp2 client session in the test on the other; the worker's loop is not run, the test
 * delivers the events. Requests whose header block golb must refuse never make an exchange (the
 * worker's generation has no backend table: nothing here may reach one), and the
 * response head a backend sends becomes HEADERS without its connection-specific fields.
 * The file includes both session files to see their statics. */
#include <criterion/criterion.h>

#include <sys/socket.h>

#include "../../../src/session/h2session.c"
#include "../../../src/session/h2stream.c"
#include "core/generation.h"

static struct worker_ctx wk;
static struct config wk_cfg;
static struct generation wk_gen;
static struct generation_worker wk_slots[1];
static int cl_fd;                /* the client's end */
static nghttp2_session *cl;      /* the client */
static struct h2conn *conn;      /* golb's session */

/* What the client saw, per stream. */
static struct seen {
    int status;
    uint32_t rst;
    bool closed;
    char headers[2048];
    char body[1024];
    size_t body_len;
} seen[64];

static int cl_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                        const uint8_t *v, size_t vl, uint8_t flags, void *u)
{
    (void)s, (void)flags, (void)u;
    struct seen *x = &seen[f->hd.stream_id % 64];
    if (nl == 7 && memcmp(n, ":status", 7) == 0)
        x->status = atoi((const char *)v);
    size_t len = strlen(x->headers);
    snprintf(x->headers + len, sizeof(x->headers) - len, "%.*s: %.*s\n", (int)nl, n, (int)vl, v);
    return 0;
}

static int cl_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                      void *u)
{
    (void)s, (void)flags, (void)u;
    struct seen *x = &seen[id % 64];
    memcpy(x->body + x->body_len, d, MIN(n, sizeof(x->body) - x->body_len));
    x->body_len += MIN(n, sizeof(x->body) - x->body_len);
    return 0;
}

static int cl_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *u)
{
    (void)s, (void)u;
    seen[id % 64].closed = true;
    seen[id % 64].rst = code;
    return 0;
}

static void setup(void)
{
    memset(&wk, 0, sizeof(wk));
    memset(&wk_cfg, 0, sizeof(wk_cfg));
    memset(&wk_gen, 0, sizeof(wk_gen));
    memset(wk_slots, 0, sizeof(wk_slots));
    memset(seen, 0, sizeof(seen));
    wk_cfg.client_header_timeout_ms = wk_cfg.keepalive_timeout_ms = 10000;
    wk_cfg.body_timeout_ms = wk_cfg.connect_timeout_ms = wk_cfg.upstream_timeout_ms = 10000;
    wk_cfg.max_header_size = 4096;
    wk_cfg.max_request_line = 4096;
    wk_cfg.http2 = (struct config_http2){.max_concurrent_streams = 128,
                                         .initial_window_size = 262144,
                                         .idle_timeout_ms = 180000};
    wk_gen.cfg = &wk_cfg;
    wk_gen.nworkers = 1;
    wk_gen.pw = wk_slots;
    atomic_init(&wk_gen.holders, 1);
    wk.gen = &wk_gen;
    wk.cfg = &wk_cfg;
    wk.loop = loop_new();
    cr_assert_not_null(wk.loop);
    buf_pool_init(&wk.bufs, 16384, 8);
    wk.nclients = 1;

    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    cl_fd = sv[1];
    struct h2session_conn t = {.fd = sv[0], .ip = "192.0.2.1", .iplen = 9, .writable = true};
    h2session_take(&wk, &t);
    cr_assert_not_null(wk.sessions);
    conn = container_of(wk.sessions, struct h2conn, ws);

    nghttp2_session_callbacks *ccb;
    nghttp2_session_callbacks_new(&ccb);
    nghttp2_session_callbacks_set_on_header_callback(ccb, cl_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(ccb, cl_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(ccb, cl_on_close);
    cr_assert_eq(nghttp2_session_client_new(&cl, ccb, NULL), 0);
    nghttp2_session_callbacks_del(ccb);
    nghttp2_submit_settings(cl, NGHTTP2_FLAG_NONE, NULL, 0);
}

static void teardown(void)
{
    nghttp2_session_del(cl);
    worker_ctx_close_sessions(&wk);
    loop_run_deferred(wk.loop);
    close(cl_fd);
    cr_expect_eq(wk.bufs.outstanding, 0, "buffer leak");
    buf_pool_destroy(&wk.bufs);
    loop_free(wk.loop);
}

TestSuite(h2session, .init = setup, .fini = teardown);

/* Client → golb (an EPOLLIN for golb) → client, until nothing moves. */
static void exchange_bytes(void)
{
    for (int round = 0; round < 16; round++) {
        bool moved = false;
        const uint8_t *p;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(cl, &p)) > 0) {
            cr_assert_eq(write(cl_fd, p, (size_t)n), n);
            moved = true;
        }
        if (moved && !conn->dead)
            on_event(&conn->io, EPOLLIN | EPOLLOUT);
        uint8_t buf[65536];
        while ((n = read(cl_fd, buf, sizeof(buf))) > 0) {
            cr_assert_geq(nghttp2_session_mem_recv(cl, buf, (size_t)n), 0);
            moved = true;
        }
        if (!moved)
            return;
    }
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE         \
    }

static int32_t get(const nghttp2_nv *extra, size_t n)
{
    nghttp2_nv nv[16] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "a.test"),
                         NV(":path", "/p")};
    memcpy(nv + 4, extra, n * sizeof(*nv));
    int32_t id = nghttp2_submit_request(cl, NULL, nv, 4 + n, NULL, NULL);
    cr_assert_gt(id, 0);
    return id;
}

Test(h2session, settings_announce_the_limits_and_extended_connect)
{
    exchange_bytes();
    cr_expect_eq(nghttp2_session_get_remote_settings(cl, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
                 128);
    cr_expect_eq(nghttp2_session_get_remote_settings(cl, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE),
                 262144);
    cr_expect_eq(nghttp2_session_get_remote_settings(cl, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL),
                 1);
    cr_expect_eq(nghttp2_session_get_remote_settings(cl, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE),
                 4096);
}

/* RFC 9113 §8.3.1: a Host that disagrees with :authority is a 400 on the stream; golb's own
 * answer, never an exchange (there is no backend to take one). */
Test(h2session, host_that_disagrees_with_authority_is_400)
{
    static const nghttp2_nv h[] = {NV("host", "b.test")};
    int32_t id = get(h, 1);
    exchange_bytes();
    cr_expect_eq(seen[id].status, 400);
    cr_expect_str_eq(seen[id].body, "400 Bad Request\n");
    static const nghttp2_nv two[] = {NV("host", "a.test"), NV("host", "b.test")};
    id = get(two, 2);
    exchange_bytes();
    cr_expect(seen[id].status == 400 || seen[id].rst == NGHTTP2_PROTOCOL_ERROR,
              "a second Host: refused (nghttp2 resets a repeated host itself)");
}

Test(h2session, plain_connect_is_501_and_a_big_header_list_431)
{
    nghttp2_nv nv[] = {NV(":method", "CONNECT"), NV(":authority", "x.test:443")};
    int32_t id = nghttp2_submit_request(cl, NULL, nv, 2, NULL, NULL);
    exchange_bytes();
    cr_expect_eq(seen[id].status, 501);
    static char big[5000];
    memset(big, 'v', sizeof(big) - 1);
    nghttp2_nv b[] = {{(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof(big) - 1, 0}};
    id = get(b, 1);
    exchange_bytes();
    cr_expect_eq(seen[id].status, 431);
    cr_expect_eq(conn->nstreams, 0, "both streams ended");
}

/* A path HTTP/1.1 cannot carry (a space) is malformed: RST_STREAM PROTOCOL_ERROR. */
Test(h2session, a_path_http11_cannot_carry_is_reset)
{
    nghttp2_nv nv[] = {NV(":method", "GET"), NV(":scheme", "http"), NV(":authority", "a"),
                       NV(":path", "/a b")};
    int32_t id = nghttp2_submit_request(cl, NULL, nv, 4, NULL, NULL);
    exchange_bytes();
    cr_expect(seen[id].closed);
    cr_expect_eq(seen[id].status, 0);
    cr_expect_eq(seen[id].rst, NGHTTP2_PROTOCOL_ERROR);
}

/* The backend's response head becomes one record (h2_on_head) and then HEADERS: status, fields
 * lower-cased, connection-specific ones (and those Connection names) gone, the sticky cookie
 * added; a 101 to an extended CONNECT is a 200 without fields. */
Test(h2session, a_response_head_loses_its_connection_specific_fields)
{
    static const char raw[] = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
                              "Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n"
                              "Content-Type: text/plain\r\nUpgrade: h2c\r\n\r\n";
    struct http1_response resp;
    cr_assert_gt(http1_parse_response(raw, sizeof(raw) - 1, 0, 0, false, &resp), 0);
    struct h2stream s = {.c = conn, .id = 1};
    struct buf *b = buf_get(&wk.bufs);
    struct exchange_head h = {.set_cookie = "srv=x", .set_cookie_len = 5, .dechunk = true};
    cr_assert_eq(h2_on_head(&s, &resp, &h, b), 0);
    uint32_t len;
    uint16_t st, nf;
    memcpy(&len, b->data, 4);
    memcpy(&st, b->data + 4, 2);
    memcpy(&nf, b->data + 7, 2);
    cr_expect_eq(len, b->last);
    cr_expect_eq(st, 200);
    cr_expect_eq(nf, 2, "content-type and set-cookie");
    const char *q = b->data + 9;
    uint16_t nl;
    uint32_t vl;
    memcpy(&nl, q, 2);
    memcpy(&vl, q + 2, 4);
    cr_expect_eq(memcmp(q + 6, "content-type", nl), 0, "lower-cased");
    q += 6 + nl + vl;
    memcpy(&nl, q, 2);
    memcpy(&vl, q + 2, 4);
    cr_expect_eq(memcmp(q + 6, "set-cookie", nl), 0);
    cr_expect_eq(memcmp(q + 6 + nl, "srv=x", vl), 0);

    static const char up[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: upgrade\r\n\r\n";
    cr_assert_gt(http1_parse_response(up, sizeof(up) - 1, 0, 0, false, &resp), 0);
    b->last = 0;
    h.set_cookie_len = 0;
    cr_assert_eq(h2_on_head(&s, &resp, &h, b), 0);
    memcpy(&st, b->data + 4, 2);
    memcpy(&nf, b->data + 7, 2);
    cr_expect_eq(st, 200, "RFC 8441: never a 101");
    cr_expect_eq(nf, 0);
    cr_expect(s.tunnel);
    cr_expect_eq(b->data[6] & REC_NO_BODY, 0, "a tunnel's stream stays open");
    buf_put(&wk.bufs, b);
}
