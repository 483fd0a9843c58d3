/* Unit tests for the exchange's seam with its client side (exchange.h), driven by a fake session
 * that is not HTTP/1 (tests/support/exchange_fake.h): no splice, a sink that can refuse bytes
 * (backpressure) and a body source that runs dry. The upstream is one end of a socketpair; the
 * test plays the backend. test_exchange_up.c drives exchanges through the public calls only,
 * against loopback backends (connects, retries, replay, framing, splice, 101, timeouts). */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../support/exchange_fake.h"
#include "base/buf.h"
#include "base/loop.h"
#include "config/config.h"
#include "core/exchange_int.h" /* the test builds an exchange as exchange_start() leaves it */
#include "core/generation.h"
#include "core/worker_ctx.h"
#include "upstream/upstream.h"

static struct worker_ctx wk;
static struct config wk_cfg;
static struct generation wk_gen; /* no backends, a balancer without sticky sessions */
static struct generation_pool wk_pool; /* the default pool: every request's here */
static struct upstream_conn up;
static int sv[2]; /* sv[0]: golb's upstream socket, sv[1]: the backend */

static struct exchange *x;

static void setup(void)
{
    memset(&wk, 0, sizeof(wk));
    memset(&fk, 0, sizeof(fk));
    memset(&wk_cfg, 0, sizeof(wk_cfg));
    memset(&wk_gen, 0, sizeof(wk_gen));
    static struct generation_worker gen_slots[1];
    memset(gen_slots, 0, sizeof(gen_slots));
    wk_gen.cfg = &wk_cfg;
    wk_pool = (struct generation_pool){.name = "default", .table = wk_gen.table,
                                       .balancer = &wk_gen.balancer};
    wk_pool.cfg = wk_cfg;
    wk_gen.pools = &wk_pool;
    wk_gen.npools = 1;
    wk_gen.nworkers = 1;
    wk_gen.pw = gen_slots; /* exchange_get() pins the worker's generation */
    atomic_init(&wk_gen.holders, 1);
    wk.cfg = &wk_cfg;
    wk.gen = &wk_gen;
    wk.loop = loop_new();
    cr_assert_not_null(wk.loop);
    buf_pool_init(&wk.bufs, 16384, 8);
    pipe_pool_init(&wk.pipes, 4, 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    memset(&up, 0, sizeof(up));
    up.io.fd = sv[0];
    up.readable = up.writable = up.connected = up.tls_done = true;

    /* An exchange as exchange_start() leaves it once a pooled connection was taken. */
    x = exchange_get(&wk, &fk_ops, &fk);
    cr_assert_not_null(x);
    cr_assert_eq(x->gen, &wk_gen, "the exchange pins the worker's generation");
    cr_assert_eq(wk_gen.pw[0].pins, 1);
    x->up = &up;
    x->phase = XP_RELAY;
    x->resp_phase = RESP_WAIT_HEAD;
    x->reqh = buf_get(&wk.bufs);
    const char *h = "POST /u HTTP/1.1\r\nHost: b\r\nContent-Length: 10\r\n\r\n";
    memcpy(x->reqh->data, h, strlen(h));
    x->reqh->last = (uint32_t)strlen(h);
    x->req_body = HTTP1_BODY_LENGTH;
    x->req_remaining = 10;
}

static void teardown(void)
{
    x->up = NULL; /* a test upstream: nothing to release to a pool */
    exchange_put(x);
    cr_expect_eq(wk_gen.pw[0].pins, 0, "exchange_put() unpins the generation");
    exchange_pool_free(&wk);
    close(sv[0]);
    close(sv[1]);
    pipe_pool_destroy(&wk.pipes);
    cr_expect_eq(wk.bufs.outstanding, 0, "buffer leak");
    buf_pool_destroy(&wk.bufs);
    loop_free(wk.loop);
}

TestSuite(exchange, .init = setup, .fini = teardown);

static size_t backend_reads(char *p, size_t cap)
{
    ssize_t n = read(sv[1], p, cap);
    return n > 0 ? (size_t)n : 0;
}

static void backend_writes(const char *p, size_t n)
{
    cr_assert_eq(write(sv[1], p, n), (ssize_t)n);
    up.readable = true; /* what an EPOLLIN edge would say */
}

static int unread_by_golb(void)
{
    int n = 0;
    ioctl(sv[0], FIONREAD, &n);
    return n;
}

Test(exchange, request_body_waits_for_its_source_then_goes_up)
{
    char got[512];
    memcpy(fk.in, "0123", 4);
    fk.in_len = 4;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    size_t n = backend_reads(got, sizeof(got));
    got[n] = '\0';
    cr_expect(n > 4 && strcmp(got + n - 4, "0123") == 0, "head and the 4 body bytes: %s", got);
    cr_expect_not(x->req_done, "6 body bytes are still missing");
    cr_expect_eq(fk.in_pos, 4, "the exchange consumed what it sent");

    memcpy(fk.in + 4, "456789tail", 10); /* 6 body bytes, then a pipelined request */
    fk.in_len = 14;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    n = backend_reads(got, sizeof(got));
    cr_expect_eq(n, 6);
    cr_expect(memcmp(got, "456789", 6) == 0);
    cr_expect(x->req_done);
    cr_expect_eq(fk.in_pos, 10, "bytes past the body are the session's");
}

Test(exchange, a_blocked_sink_stops_reading_the_upstream)
{
    char body[60000]; /* past the first buffer, at least SPLICE_MIN is left */
    memset(body, 'b', sizeof(body));
    memcpy(fk.in, "0123456789", 10);
    fk.in_len = 10;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char sink[512];
    backend_reads(sink, sizeof(sink));
    cr_assert(x->req_done);

    fk.blocked = true;
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n";
    backend_writes(head, strlen(head));
    backend_writes(body, sizeof(body));
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(fk.heads, 1, "the head was handed to the session");
    cr_expect_eq(fk.out_len, 0, "nothing was taken");
    /* One read filled the buffer (head and the first body bytes); nothing more came off the
     * socket, not even the room a compaction would make. */
    cr_expect_eq(unread_by_golb(), (int)(strlen(head) + sizeof(body)) - (int)x->uin->last,
                 "the exchange must not read on while the sink is full");

    fk.blocked = false;
    enum exchange_status st = EX_WAIT;
    for (int i = 0; i < 8 && st == EX_WAIT; i++) {
        up.readable = true;
        st = exchange_pump(x);
    }
    cr_expect_eq(st, EX_DONE);
    cr_expect_eq(fk.splice_asked, 1, "asked once, refused: bodies are copied");
    const char *want = "H2-HEAD 200\n";
    cr_assert_eq(fk.out_len, strlen(want) + sizeof(body));
    cr_expect(memcmp(fk.out, want, strlen(want)) == 0);
    cr_expect(memcmp(fk.out + strlen(want), body, sizeof(body)) == 0);
    cr_expect(x->resp_keepalive);
}

Test(exchange, client_gone_mid_body_closes)
{
    fk.in_eof = true;
    cr_expect_eq(exchange_pump(x), EX_CLOSE);
}

/* The backend answers (a 413, say) before the client sent its whole body: the exchange is done,
 * the session learns that the head came before the request went up whole and, at EX_DONE, that
 * the rest of the body can go nowhere, so its client connection cannot carry another request. */
Test(exchange, a_response_before_the_whole_body_abandons_the_rest)
{
    memcpy(fk.in, "0123", 4);
    fk.in_len = 4;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char sink[512];
    backend_reads(sink, sizeof(sink));
    const char *head = "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n";
    backend_writes(head, strlen(head));
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect_eq(fk.heads, 1);
    cr_expect_not(fk.head_req_done, "on_head: the request had not gone up whole");
    cr_expect_not(fk.head_dechunk);
    struct exchange_result r;
    exchange_result(x, &r);
    cr_expect(r.body_abandoned);
    cr_expect_eq(r.backend_status, 413);
    cr_expect(r.resp_started);
    cr_expect_null(r.end_term);
    cr_expect_not(x->resp_keepalive, "nor can the upstream connection be pooled");
}

/* The client stops sending its body and the deadline passes: the session is told to answer 408
 * (and the balancer outcome), and that nothing of a response has reached the client. */
Test(exchange, a_client_that_stops_sending_its_body_gets_408)
{
    memcpy(fk.in, "0123", 4);
    fk.in_len = 4;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(exchange_timeout(x), EX_FAIL);
    struct exchange_result r;
    exchange_result(x, &r);
    cr_expect_eq(r.fail_status, 408);
    cr_expect_eq(r.fail_outcome, LB_FAILED);
    cr_expect_not(r.resp_started);
    cr_expect_not(r.req_done);
    cr_expect(r.relaying, "the upstream connection was up");
    cr_expect_null(r.end_term, "the session names this cause itself (cD)");
    cr_expect_not(r.log_pending, "exchange_start() never ran: nothing to log");
}

/* The backend answers with a body while the client is still sending its own (a full-duplex
 * upload): the request head's buffer goes with the final response head, and the request side
 * must go on sending the body without it. */
Test(exchange, a_response_may_start_while_the_request_body_still_goes_up)
{
    memcpy(fk.in, "0123", 4);
    fk.in_len = 4;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    char got[512];
    backend_reads(got, sizeof(got));
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab";
    backend_writes(head, strlen(head));
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_null(x->reqh, "the head cannot be replayed any more");
    memcpy(fk.in + 4, "456789", 6);
    fk.in_len = 10;
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(backend_reads(got, sizeof(got)), 6);
    cr_expect(x->req_done);
    backend_writes("cd", 2);
    cr_expect_eq(exchange_pump(x), EX_DONE);
}
