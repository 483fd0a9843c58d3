/* Unit tests for the exchange as a session that is not HTTP/1 drives it: the protocol-neutral
 * request (http.h) built by hand as an HTTP/2 session would build it from a header block, a body
 * source that says where the body ends, a sink that wants the end of the response and its
 * trailers, tunnels over the session's stream, the byte budget of a pump and buffers taken only
 * while bytes wait. The exchange goes through exchange_start() for real: the balancer (hash on a
 * cookie) picks the one backend, whose idle list holds one end of a socketpair; the test plays
 * the backend on the other end. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/loop.h"
#include "config/config.h"
#include "core/exchange_int.h" /* to look at what the exchange holds */
#include "core/generation.h"
#include "core/worker_ctx.h"
#include "http/http.h"
#include "lb/balancer.h"
#include "upstream/backend.h"
#include "upstream/upstream.h"

static struct worker_ctx wk;
static struct config cfg;
static struct config_backend cb;
static struct generation gen;
static struct generation_pool gen_pool; /* the default pool */
static struct generation_worker gen_slots[1];
static struct upstream_conn *up; /* the pooled connection exchange_start() takes */
static int sv[2];                /* sv[0]: golb's upstream socket, sv[1]: the backend */
static struct exchange *x;

/* The fake session: an HTTP/2-like stream. Its body source holds exactly the body (no bytes of
 * another request behind it) and says where it ends; its sink takes bytes until `blocked`. */
static struct fake {
    bool blocked;
    char out[1024 * 1024]; /* what the client received: heads and body */
    size_t out_len;
    int heads, ends;
    struct exchange_head head; /* what the last on_head said */
    char trailers[1024];       /* the trailers body_end handed over, as "name=value;" */
    char in[256 * 1024];       /* request body bytes not yet consumed */
    uint32_t in_pos, in_len;
    bool in_end; /* the stream ended after in[0..in_len) (fill returns 0) */
    bool in_eof; /* the client went away (fill returns -EPIPE) */
    int fills;
    int laters; /* yield calls */
    const struct http_field *req_trailers;
    size_t nreq_trailers;
} fk;

static const char *fk_peek(void *cl, uint32_t *len)
{
    struct fake *f = cl;
    *len = f->in_len - f->in_pos;
    return f->in + f->in_pos;
}

static void fk_consume(void *cl, uint32_t n)
{
    ((struct fake *)cl)->in_pos += n;
}

static ssize_t fk_fill(void *cl)
{
    struct fake *f = cl;
    f->fills++;
    if (f->in_eof)
        return -EPIPE;
    return f->in_end ? 0 : -EAGAIN;
}

static int fk_on_head(void *cl, const struct http1_response *resp, const struct exchange_head *h,
                      struct buf *out)
{
    struct fake *f = cl;
    f->heads++;
    f->head = *h;
    int n = snprintf(out->data + out->last, buf_space(out), "H2-HEAD %d\n", resp->status);
    out->last += (uint32_t)n;
    return 0;
}

static ssize_t fk_send(void *cl, const struct iovec *head, const struct iovec *body, bool streaming)
{
    struct fake *f = cl;
    (void)streaming;
    if (f->blocked)
        return -EAGAIN;
    size_t n = 0;
    if (head->iov_len) {
        memcpy(f->out + f->out_len, head->iov_base, head->iov_len);
        n += head->iov_len;
    }
    if (body) {
        memcpy(f->out + f->out_len + n, body->iov_base, body->iov_len);
        n += body->iov_len;
    }
    f->out_len += n;
    return (ssize_t)n;
}

static int fk_splice_end(void *cl, bool response, struct exchange_splice *out)
{
    (void)cl;
    (void)response;
    (void)out;
    return -ENOTSUP;
}

static void fk_resume(void *cl)
{
    (void)cl;
}

static void fk_yield(void *cl)
{
    ((struct fake *)cl)->laters++;
}

static int fk_body_end(void *cl, const struct http_field *tr, size_t n)
{
    struct fake *f = cl;
    if (f->blocked)
        return -EAGAIN;
    f->ends++;
    size_t len = strlen(f->trailers);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(f->trailers + len, sizeof(f->trailers) - len, "%.*s=%.*s;",
                                (int)tr[i].name_len, tr[i].name, (int)tr[i].value_len,
                                tr[i].value);
    return 0;
}

static size_t fk_trailers(void *cl, const struct http_field **out)
{
    struct fake *f = cl;
    *out = f->req_trailers;
    return f->nreq_trailers;
}

static const struct exchange_client_ops fk_ops = {
    .peek = fk_peek,
    .consume = fk_consume,
    .fill = fk_fill,
    .on_head = fk_on_head,
    .send = fk_send,
    .splice_end = fk_splice_end,
    .resume = fk_resume,
    .yield = fk_yield,
    .body_end = fk_body_end,
    .trailers = fk_trailers,
};

static void setup(void)
{
    log_set_level(LOG_ERROR);
    memset(&wk, 0, sizeof(wk));
    memset(&fk, 0, sizeof(fk));
    memset(&cfg, 0, sizeof(cfg));
    memset(&gen, 0, sizeof(gen));
    memset(gen_slots, 0, sizeof(gen_slots));
    cb = (struct config_backend){.name = "b0", .weight = 1};
    cfg.nbackends = 1;
    cfg.backends = &cb;
    cfg.workers = 1;
    cfg.connect_timeout_ms = cfg.upstream_timeout_ms = cfg.body_timeout_ms = 1000;
    cfg.tunnel_timeout_ms = 1000;
    static char *websocket_only[] = {"websocket", NULL};
    cfg.upgrade_protocols = websocket_only;
    gen.cfg = &cfg;
    gen.table = backend_table_new(&cfg, NULL, 1);
    cr_assert_not_null(gen.table);
    atomic_store(&gen.table->b[0]->state, BACKEND_UP);
    cr_assert_eq(balancer_init(&gen.balancer, &lb_hash_ops, gen.table), 0);
    gen.balancer.params.hash_key = CONFIG_HASH_COOKIE;
    gen.balancer.params.hash_key_name = "b";
    gen_pool = (struct generation_pool){.name = "default", .table = gen.table,
                                        .balancer = &gen.balancer};
    gen_pool.cfg = cfg;
    gen.pools = &gen_pool;
    gen.npools = 1;
    gen.nworkers = 1;
    gen.pw = gen_slots;
    atomic_init(&gen.holders, 1);
    wk.cfg = &cfg;
    wk.gen = &gen;
    wk.loop = loop_new();
    cr_assert_not_null(wk.loop);
    buf_pool_init(&wk.bufs, 16384, 64);
    pipe_pool_init(&wk.pipes, 4, 0);
    wk.upstreams = upstream_pool_new(wk.loop, 8, 60000);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);

    /* one idle pooled connection to the backend: exchange_start() takes it */
    struct upstream_idle *idle = &gen.table->b[0]->pw[0].idle;
    up = calloc(1, sizeof(*up));
    cr_assert_not_null(up);
    up->io.fd = sv[0];
    up->pool = wk.upstreams;
    up->idle = idle;
    up->writable = up->connected = up->tls_done = true;
    idle->head = up;
    atomic_store(&idle->count, 1);

    x = exchange_get(&wk, &fk_ops, &fk);
    cr_assert_not_null(x);
}

static void teardown(void)
{
    if (x)
        exchange_put(x); /* closes an upstream still held (its struct is freed deferred) */
    upstream_close_idle(wk.upstreams, &gen.table->b[0]->pw[0].idle, true);
    loop_run_deferred(wk.loop);
    exchange_pool_free(&wk);
    close(sv[1]);
    cr_expect_eq(gen_slots[0].pins, 0, "exchange_put() unpins the generation");
    upstream_pool_free(wk.upstreams);
    pipe_pool_destroy(&wk.pipes);
    cr_expect_eq(wk.bufs.outstanding, 0, "buffer leak");
    buf_pool_destroy(&wk.bufs);
    balancer_destroy(&gen.balancer);
    backend_table_free(gen.table);
    loop_free(wk.loop);
}

TestSuite(neutral, .init = setup, .fini = teardown);

#define FIELD(n, v) {.name = (n), .name_len = sizeof(n) - 1, .value = (v), .value_len = sizeof(v) - 1}

/* A request as an HTTP/2 session builds it: pseudo-header fields as spans, lower-case names. */
static struct http_request h2_request(const char *method, const char *path,
                                      const struct http_field *f, size_t n)
{
    return (struct http_request){.method = method,
                                 .method_len = (uint32_t)strlen(method),
                                 .scheme = "https",
                                 .scheme_len = 5,
                                 .authority = "a.example",
                                 .authority_len = 9,
                                 .path = path,
                                 .path_len = (uint32_t)strlen(path),
                                 .protocol = "",
                                 .version = HTTP_V2,
                                 .flags = HTTP_RF_AUTHORITY,
                                 .fields = f,
                                 .num_fields = n};
}

static const struct exchange_request info = {.client_ip = "192.0.2.1",
                                             .client_ip_len = 9,
                                             .https = true,
                                             .dechunk = true};

static size_t backend_reads(char *p, size_t cap)
{
    ssize_t n = read(sv[1], p, cap - 1);
    n = n > 0 ? n : 0;
    p[n] = '\0';
    return (size_t)n;
}

static void backend_writes(const char *p, size_t n)
{
    cr_assert_eq(write(sv[1], p, n), (ssize_t)n);
    up->readable = true; /* what an EPOLLIN edge would say */
}

/* ---- the neutral request ---------------------------------------------------------------------- */

/* An HTTP/2 request reaches the backend as HTTP/1.1: Host from :authority, the cookie crumbs
 * joined into one field (RFC 9113 §8.2.3), the client's X-Request-Id kept; the balancer found its
 * hash key among the crumbs and obs knows the version. */
Test(neutral, an_http2_request_goes_up_as_http11)
{
    static const struct http_field f[] = {
        FIELD("cookie", "a=1"),         FIELD("user-agent", "ua/1"), FIELD("cookie", "b=2"),
        FIELD("x-request-id", "req-1"), FIELD("accept", "*/*"),
    };
    struct http_request rq = h2_request("GET", "/p?q=1", f, 5);
    cr_assert_eq(exchange_start(x, &rq, &info), EX_WAIT);
    cr_expect(x->lbr.has_key, "the hash key is cookie b, in the second crumb");
    cr_expect_eq(x->obs.version, HTTP_V2);
    cr_expect_eq(x->obs.reqid_len, 5);
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    backend_reads(got, sizeof(got));
    cr_expect_str_eq(got, "GET /p?q=1 HTTP/1.1\r\n"
                          "cookie: a=1; b=2\r\n"
                          "user-agent: ua/1\r\n"
                          "accept: */*\r\n"
                          "Host: a.example\r\n"
                          "X-Forwarded-For: 192.0.2.1\r\n"
                          "X-Forwarded-Proto: https\r\n"
                          "X-Request-Id: req-1\r\n"
                          "X-Forwarded-Host: a.example\r\n\r\n");
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    backend_writes(resp, strlen(resp));
    cr_expect_eq(exchange_pump(x), EX_DONE);
    fk.out[fk.out_len] = '\0';
    cr_expect_str_eq(fk.out, "H2-HEAD 200\nok");
}

/* An extended CONNECT (RFC 8441) to an allowed protocol is an HTTP/1.1 Upgrade handshake
 * upstream; to any other protocol it is refused (it can only be a tunnel). */
Test(neutral, an_extended_connect_goes_up_as_an_upgrade)
{
    static const struct http_field f[] = {FIELD("sec-websocket-version", "13")};
    struct http_request rq = h2_request("CONNECT", "/chat", f, 1);
    rq.protocol = "websocket";
    rq.protocol_len = 9;
    rq.flags |= HTTP_RF_UPGRADE;
    cr_assert_eq(exchange_start(x, &rq, &info), EX_WAIT);
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    backend_reads(got, sizeof(got));
    const char *want = "GET /chat HTTP/1.1\r\n"
                       "sec-websocket-version: 13\r\n"
                       "Host: a.example\r\n"
                       "Upgrade: websocket\r\n"
                       "Sec-WebSocket-Key: "; /* a generated one (RFC 6455 needs it) */
    cr_expect(strncmp(got, want, strlen(want)) == 0, "%s", got);
    const char *rest = got + strlen(want) + 24; /* 16 bytes in base64 */
    const char *want2 = "\r\nConnection: upgrade\r\n"
                        "X-Forwarded-For: 192.0.2.1\r\n"
                        "X-Forwarded-Proto: https\r\n"
                        "X-Request-Id: "; /* a generated one */
    cr_expect(strncmp(rest, want2, strlen(want2)) == 0, "%s", got);

    exchange_put(x);
    x = exchange_get(&wk, &fk_ops, &fk);
    rq.protocol = "foo";
    rq.protocol_len = 3;
    cr_expect_eq(exchange_start(x, &rq, &info), EX_FAIL);
    struct exchange_result r;
    exchange_result(x, &r);
    cr_expect_eq(r.fail_status, 501);
}

/* ---- request bodies from a stream --------------------------------------------------------------- */

static const struct exchange_request stream_info = {.client_ip = "192.0.2.1",
                                                    .client_ip_len = 9,
                                                    .https = true,
                                                    .dechunk = true,
                                                    .stream = true};

/* Starts a POST whose body comes from the fake stream: LENGTH len, or STREAM when len < 0. */
static void start_post(long long len)
{
    static const struct http_field f[] = {FIELD("content-type", "text/plain")};
    struct http_request rq = h2_request("POST", "/up", f, 1);
    rq.body = len < 0 ? HTTP_BODY_STREAM : HTTP_BODY_LENGTH;
    rq.content_length = len < 0 ? 0 : (uint64_t)len;
    cr_assert_eq(exchange_start(x, &rq, &stream_info), EX_WAIT);
}

static void client_sends(const char *p)
{
    memcpy(fk.in + fk.in_len, p, strlen(p));
    fk.in_len += (uint32_t)strlen(p);
}

/* What the backend got after the head (the head itself is checked elsewhere). */
static const char *backend_body(char *got, size_t cap)
{
    backend_reads(got, cap);
    const char *end = strstr(got, "\r\n\r\n");
    return end ? end + 4 : got;
}

/* A body without a length (HTTP/2 DATA without content-length) goes up chunked: one chunk per
 * run of bytes the stream had, the last chunk once the stream ended. */
Test(neutral, a_body_of_unknown_length_goes_up_chunked)
{
    start_post(-1);
    client_sends("hello");
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    backend_reads(got, sizeof(got));
    cr_expect(strstr(got, "\r\nTransfer-Encoding: chunked\r\n") != NULL, "%s", got);
    cr_expect(strstr(got, "Content-Length") == NULL);
    const char *body = strstr(got, "\r\n\r\n") + 4;
    cr_expect_str_eq(body, "5\r\nhello");
    cr_expect_not(x->req_done);

    client_sends(" big world, 17 b");
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    backend_reads(got, sizeof(got));
    cr_expect_str_eq(got, "\r\n10\r\n big world, 17 b");

    fk.in_end = true;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    backend_reads(got, sizeof(got));
    cr_expect_str_eq(got, "\r\n0\r\n\r\n");
    cr_expect(x->req_done);
    cr_expect_eq(x->obs.req_body_bytes, 21, "data bytes, not framing");
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    backend_writes(resp, strlen(resp));
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect(x->resp_keepalive, "the upstream connection can be pooled");
}

/* An empty body of unknown length is the last chunk alone. */
Test(neutral, an_empty_body_of_unknown_length_is_the_last_chunk)
{
    start_post(-1);
    fk.in_end = true;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    cr_expect_str_eq(backend_body(got, sizeof(got)), "0\r\n\r\n");
    cr_expect(x->req_done);
}

/* A declared length (HTTP/2 content-length) must be what the stream brings: the last byte goes
 * only once the stream ended there. */
Test(neutral, the_last_byte_of_a_declared_length_waits_for_the_end)
{
    start_post(10);
    client_sends("0123456789");
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    cr_expect_str_eq(backend_body(got, sizeof(got)), "012345678");
    cr_expect(strstr(got, "\r\nContent-Length: 10\r\n") != NULL);
    cr_expect_not(x->req_done);
    fk.in_end = true;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    backend_reads(got, sizeof(got));
    cr_expect_str_eq(got, "9");
    cr_expect(x->req_done);
}

/* The stream ends before the declared length: 400, and the upstream connection is cut with the
 * body unfinished. */
Test(neutral, a_stream_shorter_than_its_length_fails_and_cuts_the_upstream)
{
    start_post(10);
    client_sends("01234");
    fk.in_end = true;
    cr_expect_eq(exchange_pump(x), EX_FAIL);
    struct exchange_result r;
    exchange_result(x, &r);
    cr_expect_eq(r.fail_status, 400);
    cr_expect_str_eq(r.end_term, "PD");
    exchange_release_upstream(x, r.fail_outcome); /* what the session does for a failure */
    char got[2048];
    cr_expect_str_eq(backend_body(got, sizeof(got)), "01234");
    cr_expect_eq(read(sv[1], got, sizeof(got)), 0, "then the connection closes");
}

/* More bytes than the declared length: 400 before the upstream saw a whole body. */
Test(neutral, a_stream_longer_than_its_length_fails)
{
    start_post(4);
    client_sends("0123");
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    client_sends("45");
    cr_expect_eq(exchange_pump(x), EX_FAIL);
    struct exchange_result r;
    exchange_result(x, &r);
    cr_expect_eq(r.fail_status, 400);
    exchange_release_upstream(x, r.fail_outcome);
    char got[2048];
    cr_expect_str_eq(backend_body(got, sizeof(got)), "012", "never the fourth byte");
    cr_expect_eq(read(sv[1], got, sizeof(got)), 0);
}

/* ---- trailers and the end of the response ------------------------------------------------------- */

static void start_get(void)
{
    static const struct http_field f[] = {FIELD("te", "trailers")};
    struct http_request rq = h2_request("GET", "/g", f, 1);
    cr_assert_eq(exchange_start(x, &rq, &info), EX_WAIT);
    cr_assert_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    backend_reads(got, sizeof(got));
}

/* A chunked response de-chunked for a stream: the data, then body_end with the trailer section's
 * fields, even when the section arrives in pieces. */
Test(neutral, response_trailers_reach_body_end)
{
    start_get();
    const char *a = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\ngrpc-sta";
    backend_writes(a, strlen(a));
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect(fk.head.dechunk);
    fk.out[fk.out_len] = '\0';
    cr_expect_str_eq(fk.out, "H2-HEAD 200\nhello");
    cr_expect_eq(fk.ends, 0, "the trailer section is not complete");
    const char *b = "tus: 0\r\ngrpc-message:  all good \r\n\r\n";
    backend_writes(b, strlen(b));
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect_eq(fk.ends, 1);
    cr_expect_str_eq(fk.trailers, "grpc-status=0;grpc-message=all good;");
    fk.out[fk.out_len] = '\0';
    cr_expect_str_eq(fk.out, "H2-HEAD 200\nhello", "trailers are not body bytes");
    cr_expect(x->resp_keepalive);
    cr_expect_eq(buf_len(x->uin), 0);
}

/* Every final response ends with body_end, a bodiless one too; a sink that cannot take it yet
 * (-EAGAIN) is asked again, and the exchange is not done before. */
Test(neutral, body_end_comes_after_every_response_and_may_wait)
{
    start_get();
    fk.blocked = true;
    const char *r = "HTTP/1.1 204 No Content\r\n\r\n";
    backend_writes(r, strlen(r));
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(fk.ends, 0);
    fk.blocked = false;
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect_eq(fk.ends, 1);
    cr_expect_str_eq(fk.trailers, "");
}

/* Request trailers from the session go up in the chunked trailer section, without the fields a
 * trailer section must not carry. */
Test(neutral, request_trailers_go_up_in_the_last_chunk)
{
    static const struct http_field tr[] = {
        FIELD("x-checksum", "abc"),
        {.name = "content-length", .name_len = 14, .value = "5", .value_len = 1,
         .id = HTTP_F_CONTENT_LENGTH}, /* ids as the session identified them */
        FIELD("grpc-timeout", "1S"),
    };
    fk.req_trailers = tr;
    fk.nreq_trailers = 3;
    start_post(-1);
    client_sends("hello");
    fk.in_end = true;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    cr_expect_str_eq(backend_body(got, sizeof(got)),
                     "5\r\nhello\r\n0\r\nx-checksum: abc\r\ngrpc-timeout: 1S\r\n\r\n");
    cr_expect(x->req_done);
    cr_expect_null(x->reqt, "the trailer buffer went back once sent");
}

/* ---- tunnels over the session's stream ---------------------------------------------------------- */

/* RFC 8441: after the 101, bytes go both ways through the session's source and sink, each half
 * ends on its own (the client's end becomes the upstream's FIN, the upstream's EOF body_end), and
 * the exchange is done once both did. */
Test(neutral, a_tunnel_runs_over_the_session_stream)
{
    static const struct http_field f[] = {FIELD("sec-websocket-version", "13")};
    struct http_request rq = h2_request("CONNECT", "/chat", f, 1);
    rq.protocol = "websocket";
    rq.protocol_len = 9;
    rq.flags |= HTTP_RF_UPGRADE;
    cr_assert_eq(exchange_start(x, &rq, &stream_info), EX_WAIT);
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    backend_reads(got, sizeof(got));
    const char *r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: upgrade\r\n\r\nhi";
    backend_writes(r, strlen(r));
    cr_assert_eq(exchange_pump(x), EX_TUNNEL);
    exchange_tunnel_stream(x);
    cr_expect_eq(exchange_deadline(x), x->progress_at + cfg.tunnel_timeout_ms);
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    fk.out[fk.out_len] = '\0';
    cr_expect_str_eq(fk.out, "H2-HEAD 101\nhi", "bytes that came with the 101 go first");

    client_sends("ping");
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    backend_reads(got, sizeof(got));
    cr_expect_str_eq(got, "ping");
    backend_writes("pong", 4);
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    fk.out[fk.out_len] = '\0';
    cr_expect_str_eq(fk.out, "H2-HEAD 101\nhipong");

    fk.in_end = true; /* the client's END_STREAM */
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(read(sv[1], got, sizeof(got)), 0, "the upstream got a FIN");
    backend_writes("bye", 3);
    shutdown(sv[1], SHUT_WR);
    up->readable = up->rdhup = true; /* the FIN's EPOLLIN | EPOLLRDHUP */
    cr_expect_eq(fk.ends, 0);
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect_eq(fk.ends, 1, "the upstream's end went to body_end");
    fk.out[fk.out_len] = '\0';
    cr_expect_str_eq(fk.out, "H2-HEAD 101\nhipongbye");
    exchange_finish(x);
    cr_expect_null(gen.table->b[0]->pw[0].idle.head, "never pooled after a tunnel");
}

/* An idle tunnel ends at tunnelTimeout. */
Test(neutral, an_idle_stream_tunnel_times_out)
{
    static const struct http_field f[] = {FIELD("sec-websocket-version", "13")};
    struct http_request rq = h2_request("CONNECT", "/chat", f, 1);
    rq.protocol = "websocket";
    rq.protocol_len = 9;
    rq.flags |= HTTP_RF_UPGRADE;
    cr_assert_eq(exchange_start(x, &rq, &stream_info), EX_WAIT);
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    const char *r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    backend_writes(r, strlen(r));
    cr_assert_eq(exchange_pump(x), EX_TUNNEL);
    exchange_tunnel_stream(x);
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(exchange_timeout(x), EX_CLOSE);
}

/* ---- the byte budget of a pump ----------------------------------------------------------------- */

/* A pump moves about LOOP_IO_BUDGET bytes and has the session pump again later
 * (yield), even while both ends could go on: the other streams of the connection get their
 * turn. */
Test(neutral, a_pump_stops_at_its_byte_budget)
{
    start_get();
    static char body[640 * 1024];
    memset(body, 'b', sizeof(body));
    char head[128];
    int hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                      sizeof(body));
    /* more than a budget (LOOP_IO_BUDGET) must wait in the socket: a larger send buffer */
    int sndbuf = 1024 * 1024;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    backend_writes(head, (size_t)hl);
    size_t written = 0;
    for (;;) {
        ssize_t n = write(sv[1], body + written, sizeof(body) - written);
        if (n <= 0)
            break;
        written += (size_t)n;
    }
    cr_assert_gt(written, LOOP_IO_BUDGET + 32768, "the socket holds more than a budget");
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(fk.laters, 1, "stopped by its budget, it asks to be pumped again");
    /* the budget counts every byte sent, the head included */
    cr_expect_geq(fk.out_len, LOOP_IO_BUDGET);
    cr_expect_leq(fk.out_len, LOOP_IO_BUDGET + 16384, "at most one buffer past the budget");

    enum exchange_status st = EX_WAIT;
    for (int i = 0; i < 64 && st == EX_WAIT; i++) {
        fk.laters = 0;
        up->readable = true;
        while (written < sizeof(body)) {
            ssize_t n = write(sv[1], body + written, sizeof(body) - written);
            if (n <= 0)
                break;
            written += (size_t)n;
        }
        st = exchange_pump(x);
    }
    cr_expect_eq(st, EX_DONE);
    cr_expect_eq(fk.out_len, strlen("H2-HEAD 200\n") + sizeof(body));
    cr_expect_eq(fk.laters, 0, "not when it is done");
}

/* ---- buffers only while bytes wait ---------------------------------------------------------- */

#define NSTREAMS 100

/* One more idle pooled connection to the backend (LIFO: the next exchange_start() takes it);
 * returns the backend's end. */
static int add_idle_conn(struct upstream_conn **out)
{
    int pair[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair), 0);
    struct upstream_idle *idle = &gen.table->b[0]->pw[0].idle;
    struct upstream_conn *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    c->io.fd = pair[0];
    c->pool = wk.upstreams;
    c->idle = idle;
    c->writable = c->connected = c->tls_done = true;
    c->next = idle->head;
    if (idle->head)
        idle->head->prev = c;
    idle->head = c;
    atomic_store(&idle->count, atomic_load(&idle->count) + 1);
    *out = c;
    return pair[1];
}

/* 100 streams at rest hold no buffer: waiting for a response once the replay window passed (a
 * long poll), or between the bytes of a response body (a stream that went quiet). */
Test(neutral, exchanges_at_rest_hold_no_buffer)
{
    static struct exchange *xs[NSTREAMS];
    static struct upstream_conn *cs[NSTREAMS];
    static int be[NSTREAMS];
    static const struct http_field f[] = {FIELD("accept", "text/event-stream")};
    struct http_request rq = h2_request("GET", "/events", f, 1);
    size_t base = wk.bufs.outstanding; /* none: the fixture's exchange holds nothing yet */
    cr_assert_eq(base, 0);
    for (int i = 0; i < NSTREAMS; i++) {
        be[i] = add_idle_conn(&cs[i]);
        xs[i] = exchange_get(&wk, &fk_ops, &fk);
        cr_assert_eq(exchange_start(xs[i], &rq, &stream_info), EX_WAIT);
        cr_assert_eq(xs[i]->up, cs[i]);
        cr_assert_eq(exchange_pump(xs[i]), EX_WAIT);
    }
    /* Sent on pooled connections: each head is kept for a replay, for REPLAY_WINDOW_MS. */
    cr_expect_eq(wk.bufs.outstanding, NSTREAMS);
    cr_expect_eq(exchange_deadline(xs[0]), xs[0]->head_sent_at + REPLAY_WINDOW_MS);
    for (int i = 0; i < NSTREAMS; i++) {
        xs[i]->head_sent_at -= REPLAY_WINDOW_MS; /* as if the window had passed */
        cr_expect_eq(exchange_timeout(xs[i]), EX_WAIT, "only the window ended");
    }
    cr_expect_eq(wk.bufs.outstanding, 0, "long polls at rest hold no buffer");
    cr_expect_eq(exchange_deadline(xs[0]), xs[0]->sent_at + cfg.upstream_timeout_ms);

    /* Each response starts: head and the first event; the client takes them. */
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\ndata: 1\n\n";
    for (int i = 0; i < NSTREAMS; i++) {
        cr_assert_eq(write(be[i], r, strlen(r)), (ssize_t)strlen(r));
        cs[i]->readable = true;
        cr_expect_eq(exchange_pump(xs[i]), EX_WAIT);
    }
    cr_expect_eq(fk.heads, NSTREAMS);
    cr_expect_eq(wk.bufs.outstanding, 0, "quiet streams hold no buffer");

    /* The rest comes: a buffer per stream only while it is being relayed. */
    for (int i = 0; i < NSTREAMS; i++) {
        cr_assert_eq(write(be[i], "data: 2\n\n", 9), 9);
        cs[i]->readable = true;
        cr_expect_eq(exchange_pump(xs[i]), EX_DONE);
        exchange_finish(xs[i]);
        exchange_put(xs[i]);
        close(be[i]);
    }
    cr_expect_eq(fk.ends, NSTREAMS);
    cr_expect_eq(wk.bufs.outstanding, 0);
}

/* A request body that waits for the client's next bytes holds no buffer either, once body bytes
 * went (no replay can be needed then). */
Test(neutral, an_upload_waiting_for_the_client_holds_no_buffer)
{
    start_post(-1);
    client_sends("first");
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(wk.bufs.outstanding, 0);
    fk.in_end = true;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[2048];
    cr_expect_str_eq(backend_body(got, sizeof(got)), "5\r\nfirst\r\n0\r\n\r\n");
}
