/* Unit tests for the exchange's relay: the byte budget of one exchange_pump call (the rest after
 * the session's yield), and a response head that waits for its first body bytes so that both go to
 * a TLS client in one write. A fake session (not HTTP/1, no splice) as in test_exchange.c; the
 * upstream is one end of a socketpair and the test plays the backend. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/loop.h"
#include "base/util.h"
#include "config/config.h"
#include "core/exchange_int.h" /* the test builds an exchange as exchange_start() leaves it */
#include "core/generation.h"
#include "core/worker_ctx.h"
#include "upstream/upstream.h"

static struct worker_ctx wk;
static struct config wk_cfg;
static struct generation wk_gen;
static struct generation_pool wk_pool; /* the default pool: every request's here */
static struct generation_worker wk_slots[1];
static struct upstream_conn up;
static int sv[2]; /* sv[0]: golb's upstream socket, sv[1]: the backend */

/* The fake session. */
static struct fake {
    size_t taken;        /* bytes send() took: heads and body */
    int sends;           /* send() calls that took bytes */
    size_t first_send;   /* what the first one took */
    char first[512];     /* its first bytes */
    int yields;
    int heads;
    /* on_head writes these bytes as the backend: what arrives while golb handles the head */
    const char *during_head;
    char in[64 * 1024];
    uint32_t in_pos, in_len;
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
    (void)cl;
    return -EAGAIN;
}

static int fk_on_head(void *cl, const struct http1_response *resp, const struct exchange_head *h,
                      struct buf *out)
{
    struct fake *f = cl;
    (void)h;
    f->heads++;
    int n = snprintf(out->data + out->last, buf_space(out), "HEAD %d\n", resp->status);
    out->last += (uint32_t)n;
    if (f->during_head) {
        size_t len = strlen(f->during_head);
        cr_assert_eq(write(sv[1], f->during_head, len), (ssize_t)len);
    }
    return 0;
}

static ssize_t fk_send(void *cl, const struct iovec *head, const struct iovec *body, bool streaming)
{
    struct fake *f = cl;
    (void)streaming;
    size_t n = head->iov_len + (body ? body->iov_len : 0);
    if (!n)
        return 0;
    if (f->sends++ == 0) {
        f->first_send = n;
        size_t k = MIN(head->iov_len, sizeof(f->first) - 1);
        memcpy(f->first, head->iov_base, k);
        if (body)
            memcpy(f->first + k, body->iov_base, MIN(body->iov_len, sizeof(f->first) - 1 - k));
    }
    f->taken += n;
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
    ((struct fake *)cl)->yields++;
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
};

static struct exchange *x;

static void setup(void)
{
    memset(&wk, 0, sizeof(wk));
    memset(&fk, 0, sizeof(fk));
    memset(&wk_cfg, 0, sizeof(wk_cfg));
    memset(&wk_gen, 0, sizeof(wk_gen));
    memset(wk_slots, 0, sizeof(wk_slots));
    wk_gen.cfg = &wk_cfg;
    wk_pool = (struct generation_pool){.name = "default", .table = wk_gen.table,
                                       .balancer = &wk_gen.balancer};
    wk_pool.cfg = wk_cfg;
    wk_gen.pools = &wk_pool;
    wk_gen.npools = 1;
    wk_gen.nworkers = 1;
    wk_gen.pw = wk_slots;
    atomic_init(&wk_gen.holders, 1);
    wk.cfg = &wk_cfg;
    wk.gen = &wk_gen;
    wk.loop = loop_new();
    cr_assert_not_null(wk.loop);
    buf_pool_init(&wk.bufs, 16384, 8);
    pipe_pool_init(&wk.pipes, 4, 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int big = 4 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    memset(&up, 0, sizeof(up));
    up.io.fd = sv[0];
    up.readable = up.writable = up.connected = up.tls_done = true;

    /* An exchange as exchange_start() leaves it once a pooled connection was taken: a GET. */
    x = exchange_get(&wk, &fk_ops, &fk);
    cr_assert_not_null(x);
    x->up = &up;
    x->phase = XP_RELAY;
    x->resp_phase = RESP_WAIT_HEAD;
    x->reqh = buf_get(&wk.bufs);
    const char *h = "GET /u HTTP/1.1\r\nHost: b\r\n\r\n";
    memcpy(x->reqh->data, h, strlen(h));
    x->reqh->last = (uint32_t)strlen(h);
    x->req_body = HTTP1_BODY_NONE;
}

static void teardown(void)
{
    x->up = NULL; /* a test upstream: nothing to release to a pool */
    exchange_put(x);
    exchange_pool_free(&wk);
    close(sv[0]);
    close(sv[1]);
    pipe_pool_destroy(&wk.pipes);
    cr_expect_eq(wk.bufs.outstanding, 0, "buffer leak");
    buf_pool_destroy(&wk.bufs);
    loop_free(wk.loop);
}

TestSuite(exchange_relay, .init = setup, .fini = teardown);

static void backend_writes(const char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(sv[1], p + done, n - done);
        cr_assert_gt(w, 0, "the test socket must take %zu bytes", n);
        done += (size_t)w;
    }
    up.readable = true; /* what an EPOLLIN edge would say */
}

static int unread_by_golb(void)
{
    int n = 0;
    ioctl(sv[0], FIONREAD, &n);
    return n;
}

static void drain_request(void)
{
    char sink[4096];
    while (read(sv[1], sink, sizeof(sink)) > 0)
        ;
}

Test(exchange_relay, one_pump_moves_at_most_its_budget_then_yields)
{
    static char body[1 << 20];
    memset(body, 'b', sizeof(body));
    char head[128];
    int hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                      sizeof(body));
    backend_writes(head, (size_t)hl);
    backend_writes(body, sizeof(body));
    cr_assert_gt(unread_by_golb(), (int)(LOOP_IO_BUDGET + 65536), "the response waits whole");

    cr_expect_eq(exchange_pump(x), EX_WAIT);
    drain_request();
    cr_expect_gt(fk.taken, 0);
    cr_expect_leq(fk.taken, LOOP_IO_BUDGET + 16384, "one call moved %zu bytes", fk.taken);
    cr_expect_eq(fk.yields, 1, "the session is asked to go on later");
    cr_expect(up.readable, "the upstream is still readable: no edge is lost");

    /* Each further call (the session's yielded task) moves the next share, to the end. */
    enum exchange_status st = EX_WAIT;
    size_t before = fk.taken;
    for (int i = 0; i < 16 && st == EX_WAIT; i++) {
        st = exchange_pump(x);
        cr_expect_leq(fk.taken - before, LOOP_IO_BUDGET + 16384);
        before = fk.taken;
    }
    cr_expect_eq(st, EX_DONE);
    cr_expect_eq(fk.taken, strlen("HEAD 200\n") + sizeof(body));
    cr_expect_geq(fk.yields, 3, "1 MiB in four shares of 256 KiB (%d yields)", fk.yields);
}

/* ---- a response head and its first body bytes, to a TLS client ---- */

static const char *HEAD = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";

/* The backend's head arrives alone; its body arrives while golb handles the head (on_head writes
 * it): both are there by the time the head would go out. */
Test(exchange_relay, a_tls_client_gets_the_head_and_the_first_body_bytes_in_one_write)
{
    x->coalesce_head = true; /* exchange_request.https */
    backend_writes(HEAD, strlen(HEAD));
    fk.during_head = "hello";
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect_eq(fk.heads, 1);
    cr_expect_eq(fk.sends, 1, "one write (one TLS record), not %d", fk.sends);
    cr_expect_str_eq(fk.first, "HEAD 200\nhello");
}

/* The body comes a little later: after the worker's other ready events (the yield), before the
 * next look. */
Test(exchange_relay, a_tls_client_gets_them_in_one_write_when_the_body_comes_a_moment_later)
{
    x->coalesce_head = true;
    backend_writes(HEAD, strlen(HEAD));
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(fk.sends, 0, "the head waits");
    cr_expect_eq(fk.yields, 1, "for one turn of the loop");
    backend_writes("hello", 5);
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect_eq(fk.sends, 1);
    cr_expect_str_eq(fk.first, "HEAD 200\nhello");
}

Test(exchange_relay, a_tls_client_does_not_wait_longer_for_a_body_that_is_not_there)
{
    x->coalesce_head = true;
    backend_writes(HEAD, strlen(HEAD));
    cr_expect_eq(exchange_pump(x), EX_WAIT);
    cr_expect_eq(fk.sends, 0);
    cr_expect_eq(fk.yields, 1);
    cr_expect_eq(exchange_pump(x), EX_WAIT, "the yielded call");
    cr_expect_eq(fk.sends, 1, "the head went alone");
    cr_expect_eq(fk.yields, 1, "no second wait");
    cr_expect_str_eq(fk.first, "HEAD 200\n");
    backend_writes("hello", 5);
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect_eq(fk.sends, 2);
    cr_expect_eq(fk.taken, strlen("HEAD 200\nhello"));
}

Test(exchange_relay, a_plain_client_gets_the_head_without_a_read_more)
{
    /* Plain sockets cost no record per write: no extra read before a head. */
    backend_writes(HEAD, strlen(HEAD));
    fk.during_head = "hello";
    cr_expect_eq(exchange_pump(x), EX_WAIT, "the body waits for its readiness edge");
    cr_expect_eq(fk.sends, 1);
    cr_expect_str_eq(fk.first, "HEAD 200\n");
    up.readable = true; /* the edge */
    cr_expect_eq(exchange_pump(x), EX_DONE);
    cr_expect_eq(fk.sends, 2);
}
