/* Unit tests for the exchange (src/core/exchange.c) through its public calls only:
 * exchange_get/start/pump/deadline/timeout/result/tunnel/finish/put, with the fake session of
 * tests/support/exchange_fake.h (not HTTP/1: a splice end it offers or refuses). The backends are
 * loopback sockets the test controls: listeners it accepts on and answers byte by byte, a bound
 * port that refuses, a listener whose accept queue is full (its connects never complete). A real
 * struct loop and upstream pool run under a 1 ms check timer that plays the session's timer
 * (exchange_deadline → exchange_timeout) and stops the loop once a condition holds or a
 * deadline passes: no fixed sleeps. What is checked is what a session or an operator sees: the
 * status, struct exchange_result, the bytes each side got, the backend counters, the pool. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../support/exchange_fake.h"
#include "../../support/unit_support.h"
#include "base/buf.h"
#include "base/loop.h"
#include "base/util.h"
#include "config/config.h"
#include "core/exchange.h"
#include "core/generation.h"
#include "core/obs.h"
#include "core/worker_ctx.h"
#include "upstream/backend.h"
#include "upstream/upstream.h"

/* Generous: the suite runs on a loaded 2-core machine and under ASan. */
#define DEADLINE_MS 10000
#define BIG_BODY 200000 /* past SPLICE_MIN and past a socket buffer: several reads and writes */

static struct worker_ctx uw;
static struct exchange *ux; /* the exchange in flight, NULL between exchanges */
static int fds_before;
static int test_fds[16]; /* listeners, fillers, accepted sockets: closed by the teardown */
static int ntest_fds;

static int keep_fd(int fd)
{
    cr_assert_geq(fd, 0, "%s", strerror(errno));
    cr_assert_lt(ntest_fds, (int)ARRAY_LEN(test_fds));
    test_fds[ntest_fds++] = fd;
    return fd;
}

/* Closes one of the test's fds before the teardown would. */
static void close_fd(int fd)
{
    for (int i = 0; i < ntest_fds; i++)
        if (test_fds[i] == fd) {
            test_fds[i] = test_fds[--ntest_fds];
            close(fd);
            return;
        }
    cr_assert_fail("fd %d is not the test's", fd);
}

static void up_setup(void)
{
    memset(&uw, 0, sizeof(uw));
    memset(&fk, 0, sizeof(fk));
    fk.s_fd = -1;
    ux = NULL;
    ntest_fds = 0;
    fds_before = count_fds();
}

static void up_teardown(void)
{
    if (ux)
        exchange_put(ux);
    if (uw.gen) {
        exchange_pool_free(&uw);
        for (int i = 0; i < uw.gen->table->n; i++)
            upstream_close_idle(uw.upstreams, &uw.gen->table->b[i]->pw[0].idle, true);
        upstream_pool_free(uw.upstreams);
        loop_run_deferred(uw.loop); /* closed connections are freed by deferred tasks */
        cr_expect_eq(uw.gen->pw[0].pins, 0, "every exchange unpinned its generation");
        generation_unref(uw.gen);
        obs_counters_free(uw.m);
        pipe_pool_destroy(&uw.pipes);
        cr_expect_eq(uw.bufs.outstanding, 0, "buffer leak");
        buf_pool_destroy(&uw.bufs);
        loop_free(uw.loop);
    }
    for (int i = 0; i < ntest_fds; i++)
        close(test_fds[i]);
    cr_expect_eq(count_fds(), fds_before, "fd leak");
}

TestSuite(exchange_up, .init = up_setup, .fini = up_teardown);

/* A worker (loop, pools, counters) on a generation of `yaml`'s configuration, every backend UP. */
static void up_init(const char *yaml)
{
    struct config *cfg = NULL;
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), stderr, &cfg), 0, "%s", yaml);
    uw.gen = generation_new(cfg, NULL, 1, 1);
    cr_assert_not_null(uw.gen);
    uw.cfg = cfg;
    uw.loop = loop_new();
    cr_assert_not_null(uw.loop);
    buf_pool_init(&uw.bufs, 16384, 8);
    pipe_pool_init(&uw.pipes, 4, 0);
    uw.upstreams =
        upstream_pool_new(uw.loop, cfg->upstream_max_idle, cfg->upstream_idle_timeout_ms);
    cr_assert_not_null(uw.upstreams);
    uw.m = obs_counters_new(0); /* per-backend counters are kept only with a counter block */
    cr_assert_not_null(uw.m);
    for (int i = 0; i < uw.gen->table->n; i++)
        backend_set_state(uw.gen->table->b[i], BACKEND_UP, "test");
}

/* `settings` (YAML lines) and one backend per port. */
static void up_init_ports(const char *settings, int n, const uint16_t *ports)
{
    char yaml[1024];
    int k = snprintf(yaml, sizeof(yaml), "%sbackends:\n", settings);
    for (int i = 0; i < n; i++)
        k += snprintf(yaml + k, sizeof(yaml) - (size_t)k, "  - http://127.0.0.1:%u/\n", ports[i]);
    up_init(yaml);
}

static struct backend_counters *counters(int backend)
{
    return &uw.gen->table->b[backend]->pw[0].m;
}

static uint16_t port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* A TCP socket bound to 127.0.0.1 on an ephemeral port; listening unless backlog < 0 (then a
 * connect to its port is refused, and the port stays ours while the test runs). */
static int tcp_bound(int backlog, uint16_t *port)
{
    int fd = keep_fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    if (backlog >= 0)
        cr_assert_eq(listen(fd, backlog), 0);
    *port = port_of(fd);
    return fd;
}

/* The listener's accept-queue length and its bound (TCP_INFO reports both for a listener). */
static bool accept_queue_full(int lfd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    cr_assert_eq(getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    return ti.tcpi_unacked > ti.tcpi_sacked;
}

/* A listener whose accept queue is full and is never accepted from: the kernel drops new SYNs,
 * so a connect to it never completes (the house way to test connect timeouts). */
static uint16_t port_that_hangs(void)
{
    uint16_t port;
    int lfd = tcp_bound(0, &port);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint64_t deadline = util_now_ms() + DEADLINE_MS;
    for (int i = 0; !accept_queue_full(lfd); i++) {
        cr_assert_lt(i, 8, "the accept queue does not fill");
        int f = keep_fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        int rc = connect(f, (struct sockaddr *)&a, sizeof(a));
        cr_assert(rc == 0 || errno == EINPROGRESS, "%s", strerror(errno));
        /* the handshake is the kernel's: wait until this filler is queued */
        while (!(wait_fd(f, POLLOUT, 10) & POLLOUT) && !accept_queue_full(lfd))
            cr_assert_lt(util_now_ms(), deadline, "filler connect never completed");
    }
    return port;
}

/* ---- driving the loop: the session's timer and a condition ---- */

typedef bool (*pred_fn)(void *arg);

struct waiter {
    struct loop_timer t;
    pred_fn pred;
    void *arg;
    uint64_t deadline;
    bool met;
};

/* Every millisecond: the exchange's deadline (what the session's timer does), then the test's
 * condition. */
static void waiter_tick(struct loop_timer *t)
{
    struct waiter *w = container_of(t, struct waiter, t);
    if (ux && fk.st == EX_WAIT && loop_now(uw.loop) >= exchange_deadline(ux)) {
        fk.st = exchange_timeout(ux);
        if (fk.st == EX_WAIT)
            fk.st = exchange_pump(ux); /* the next backend: a pooled connection or a connect */
    }
    if (w->pred(w->arg)) {
        w->met = true;
        loop_stop(uw.loop);
    } else if (util_now_ms() >= w->deadline) {
        loop_stop(uw.loop);
    } else {
        loop_timer_after(uw.loop, t, 1);
    }
}

static bool run_until(pred_fn pred, void *arg)
{
    struct waiter w = {.pred = pred, .arg = arg, .deadline = util_now_ms() + DEADLINE_MS};
    loop_timer_init(&w.t, waiter_tick);
    loop_update_time(uw.loop);
    loop_timer_after(uw.loop, &w.t, 0);
    cr_assert_eq(loop_run(uw.loop), 0);
    loop_timer_cancel(uw.loop, &w.t);
    return w.met;
}

static bool ended(void *arg)
{
    (void)arg;
    return fk.st != EX_WAIT;
}

static enum exchange_status run_to_end(void)
{
    cr_assert(run_until(ended, NULL), "the exchange did not end within %d ms", DEADLINE_MS);
    return fk.st;
}

/* The client has received at least *(size_t *)arg bytes (heads included). */
static bool client_has(void *arg)
{
    return fk.out_len >= *(size_t *)arg;
}

static bool fd_readable(void *arg)
{
    struct pollfd p = {.fd = *(int *)arg, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Runs the loop until golb's connect reaches listener lfd, and accepts it. */
static int backend_accept(int lfd)
{
    cr_assert(run_until(fd_readable, &lfd), "no connection to accept within %d ms", DEADLINE_MS);
    return keep_fd(accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

/* No connection is waiting on lfd (a retry or replay would have made one by the time the
 * exchange ended). */
static bool nothing_to_accept(int lfd)
{
    return !fd_readable(&lfd);
}

/* What the backend's side of one upstream connection received. */
static struct peer {
    int fd;
    size_t len, body; /* bytes read; body bytes expected after the head */
    char buf[BIG_BODY + 4096];
} bk;

static bool backend_has_request(void *arg)
{
    (void)arg;
    for (;;) {
        ssize_t n = read(bk.fd, bk.buf + bk.len, sizeof(bk.buf) - 1 - bk.len);
        if (n <= 0)
            break;
        bk.len += (size_t)n;
    }
    bk.buf[bk.len] = '\0';
    const char *end = strstr(bk.buf, "\r\n\r\n");
    return end && bk.len >= (size_t)(end + 4 - bk.buf) + bk.body;
}

/* Runs the loop until the backend on fd has a whole request head and `body` bytes after it. */
static const char *backend_reads_request(int fd, size_t body)
{
    bk.fd = fd;
    bk.len = 0;
    bk.body = body;
    cr_assert(run_until(backend_has_request, NULL), "the backend got: %.*s", (int)bk.len, bk.buf);
    return bk.buf;
}

static const char *request_body(void)
{
    return strstr(bk.buf, "\r\n\r\n") + 4;
}

static void backend_says(int fd, const char *s)
{
    cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Starts an exchange for a request head, as a session does: exchange_start, then one pump. */
static enum exchange_status start(const char *head, bool dechunk)
{
    static struct http1_request req; /* 128 header slots: not on the stack */
    cr_assert_eq(http1_parse_request(head, strlen(head), 0, NULL, &req), (ssize_t)strlen(head));
    ux = exchange_get(&uw, &fk_ops, &fk);
    cr_assert_not_null(ux);
    fk.x = ux;
    fk.st = EX_WAIT;
    fk.out_len = 0; /* what the client gets of this exchange */
    fk.heads = fk.resp_status = fk.splice_asked = 0;
    struct exchange_request info = {
        .client_ip = "127.0.0.9", .client_ip_len = 9, .dechunk = dechunk};
    fk.st = exchange_start(ux, &req.rq, &info);
    if (fk.st == EX_WAIT)
        fk.st = exchange_pump(ux);
    return fk.st;
}

/* Ends the exchange in flight as the session does for `st`: finish (pool or close), then put. */
static void end_exchange(void)
{
    if (fk.st == EX_DONE)
        exchange_finish(ux);
    exchange_put(ux);
    ux = NULL;
    fk.x = NULL;
}

/* The loop's time now: deadlines count from the loop's cached time, which may lag the clock, so
 * a lower bound on a wait is measured from it. */
static uint64_t loop_time(void)
{
    loop_update_time(uw.loop);
    return loop_now(uw.loop);
}

static struct exchange_result result(void)
{
    struct exchange_result r;
    exchange_result(ux, &r);
    return r;
}

/* What the client received after the fake's serialised head line ("H2-HEAD <status>\n"). */
static const char *client_body(size_t *len)
{
    const char *nl = memchr(fk.out, '\n', fk.out_len);
    cr_assert_not_null(nl, "no head reached the client");
    *len = fk.out_len - (size_t)(nl + 1 - fk.out);
    return nl + 1;
}

#define GET "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
#define OK_2 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

/* ---- connecting: failures, retries, timeouts ---- */

/* The first backend refuses: the failure counts against it and the request goes to the next,
 * whose answer the client gets. */
Test(exchange_up, a_refused_connect_retries_on_the_next_backend)
{
    uint16_t ports[2];
    tcp_bound(-1, &ports[0]); /* bound, not listening: refused */
    int lfd = tcp_bound(8, &ports[1]);
    up_init_ports("retries: 1\nmaxFails: 0\n", 2, ports);
    cr_assert_eq(start(GET, false), EX_WAIT);
    int fd = backend_accept(lfd);
    backend_reads_request(fd, 0);
    backend_says(fd, OK_2);
    cr_assert_eq(run_to_end(), EX_DONE);
    cr_expect_eq(fk.resp_status, 200);
    cr_expect_eq(counters(0)->conn_errors[BACKEND_CONN_REFUSED], 1);
    cr_expect_eq(counters(0)->retries, 1, "the request left backend 0 for another");
    cr_expect_eq(counters(1)->connections, 1);
    end_exchange();
    cr_expect_eq(upstream_idle_count(&uw.gen->table->b[1]->pw[0].idle), 1, "keep-alive: pooled");
}

/* `retries` bounds the tries: with 0 a refused connect is answered 502 at once, and the healthy
 * second backend never sees a connection. */
Test(exchange_up, retries_bound_the_backends_tried)
{
    uint16_t ports[2];
    tcp_bound(-1, &ports[0]);
    int lfd = tcp_bound(8, &ports[1]);
    up_init_ports("retries: 0\nmaxFails: 0\n", 2, ports);
    start(GET, false);
    cr_assert_eq(run_to_end(), EX_FAIL);
    struct exchange_result r = result();
    cr_expect_eq(r.fail_status, 502);
    cr_expect_not(r.resp_started);
    cr_expect_eq(fk.heads, 0);
    cr_expect(nothing_to_accept(lfd), "no retry on backend 1");
    cr_expect_eq(counters(0)->conn_errors[BACKEND_CONN_REFUSED], 1);
}

/* A connect that never completes (the backend's accept queue is full) is given up after
 * connectTimeout, counted as a timeout, and the request goes to the next backend. */
Test(exchange_up, a_connect_timeout_moves_to_the_next_backend)
{
    uint16_t ports[2];
    ports[0] = port_that_hangs();
    int lfd = tcp_bound(8, &ports[1]);
    up_init_ports("connectTimeout: 0.3\nretries: 1\nmaxFails: 0\n", 2, ports);
    uint64_t t0 = loop_time();
    cr_assert_eq(start(GET, false), EX_WAIT);
    cr_expect(exchange_connecting(ux));
    int fd = backend_accept(lfd);
    cr_expect_geq(util_now_ms() - t0, 300, "backend 1 was tried before connectTimeout passed");
    backend_reads_request(fd, 0);
    backend_says(fd, OK_2);
    cr_assert_eq(run_to_end(), EX_DONE);
    cr_expect_eq(counters(0)->conn_errors[BACKEND_CONN_TIMEOUT], 1);
    cr_expect_eq(counters(0)->retries, 1);
}

Test(exchange_up, a_connect_timeout_on_the_last_try_answers_502)
{
    uint16_t port = port_that_hangs();
    up_init_ports("connectTimeout: 0.2\nretries: 0\nmaxFails: 0\n", 1, &port);
    uint64_t t0 = loop_time();
    start(GET, false);
    cr_assert_eq(run_to_end(), EX_FAIL);
    cr_expect_geq(util_now_ms() - t0, 200, "not before connectTimeout");
    cr_expect_eq(result().fail_status, 502);
    cr_expect_eq(counters(0)->conn_errors[BACKEND_CONN_TIMEOUT], 1);
}

/* ---- a pooled connection the backend closed: replay ---- */

/* One request on a fresh connection, answered keep-alive: the connection goes to the pool. Returns
 * the backend's end of it. */
static int pooled_connection(int lfd)
{
    cr_assert_eq(start(GET, false), EX_WAIT);
    int fd = backend_accept(lfd);
    backend_reads_request(fd, 0);
    backend_says(fd, OK_2);
    cr_assert_eq(run_to_end(), EX_DONE);
    end_exchange();
    cr_assert_eq(upstream_idle_count(&uw.gen->table->b[0]->pw[0].idle), 1);
    return fd;
}

/* The backend closed its end of the pooled connection before golb noticed (the loop has not run
 * since): the request sent on it is replayed on a fresh connection, once, and answered there. */
Test(exchange_up, a_request_lost_on_a_pooled_connection_is_replayed_on_a_fresh_one)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("maxFails: 0\n", 1, &port);
    close_fd(pooled_connection(lfd)); /* unseen by golb: the loop does not run before the start */
    cr_assert_eq(start("GET /second HTTP/1.1\r\nHost: h\r\n\r\n", false), EX_WAIT);
    cr_expect_eq(counters(0)->reuses, 1, "the pooled connection was taken");
    int fd = backend_accept(lfd);
    const char *got = backend_reads_request(fd, 0);
    cr_expect(strncmp(got, "GET /second ", 12) == 0, "%s", got);
    cr_expect_null(strstr(got + 1, "GET /second"), "sent once on the fresh connection");
    backend_says(fd, OK_2);
    cr_assert_eq(run_to_end(), EX_DONE);
    cr_expect_eq(fk.resp_status, 200);
    cr_expect(nothing_to_accept(lfd), "one replay, one new connection");
}

/* The replay is once: when the fresh connection is closed too, the answer is 502. */
Test(exchange_up, a_replayed_request_is_not_replayed_again)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("maxFails: 0\n", 1, &port);
    close_fd(pooled_connection(lfd));
    cr_assert_eq(start(GET, false), EX_WAIT);
    int fd = backend_accept(lfd);
    backend_reads_request(fd, 0);
    shutdown(fd, SHUT_RDWR); /* the fresh connection dies without an answer */
    cr_assert_eq(run_to_end(), EX_FAIL);
    struct exchange_result r = result();
    cr_expect_eq(r.fail_status, 502);
    cr_expect_str_eq(r.end_term, "SH");
    cr_expect(nothing_to_accept(lfd), "no second replay");
}

/* Only when safe: body bytes went up on the lost connection, so the backend may have acted on
 * them; the request is answered 502, never sent twice. */
Test(exchange_up, a_request_whose_body_went_up_is_not_replayed)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("maxFails: 0\n", 1, &port);
    close_fd(pooled_connection(lfd));
    memcpy(fk.in, "hello", 5);
    fk.in_len = 5;
    start("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", false);
    cr_expect_eq(fk.in_pos, 5, "the body went up with the head");
    cr_assert_eq(run_to_end(), EX_FAIL);
    cr_expect_eq(result().fail_status, 502);
    cr_expect(nothing_to_accept(lfd), "not replayed");
}

/* ---- request bodies ---- */

/* A chunked request body goes up byte for byte (framing included) as the client's bytes arrive,
 * and the exchange takes nothing past its last chunk (a pipelined request is the session's). */
Test(exchange_up, a_chunked_request_body_is_relayed_intact)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("requestBufferSize: 0\n", 1, &port); /* streamed as it comes */
    const char *part1 = "4\r\nwiki\r\n5\r\nped", *part2 = "ia\r\n0\r\nX-T: 1\r\n\r\n";
    const char *next = "GET /next HTTP/1.1\r\n";
    strcpy(fk.in, part1);
    fk.in_len = (uint32_t)strlen(part1);
    cr_assert_eq(start("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", false),
                 EX_WAIT);
    int fd = backend_accept(lfd);
    backend_reads_request(fd, strlen(part1));
    cr_expect_not(result().req_done);
    /* the rest of the body and a pipelined request arrive */
    strcpy(fk.in + fk.in_len, part2);
    strcat(fk.in + fk.in_len, next);
    fk.in_len = (uint32_t)(strlen(part1) + strlen(part2) + strlen(next));
    fk.st = exchange_pump(ux); /* the session read more: it pumps */
    size_t body_len = strlen(part1) + strlen(part2);
    bk.body = body_len;
    cr_assert(run_until(backend_has_request, NULL), "got %s", bk.buf);
    cr_expect(strstr(bk.buf, "Transfer-Encoding: chunked\r\n"), "%s", bk.buf);
    char want[128];
    snprintf(want, sizeof(want), "%s%s", part1, part2);
    cr_expect_str_eq(request_body(), want);
    cr_expect_eq(fk.in_pos, body_len, "the pipelined request was left to the session");
    cr_expect(result().req_done);
    backend_says(fd, OK_2);
    cr_assert_eq(run_to_end(), EX_DONE);
}

/* Invalid chunked framing in a request body is the client's error: 400, not a backend failure. */
Test(exchange_up, an_invalid_chunk_in_a_request_body_answers_400)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("requestBufferSize: 0\n", 1, &port); /* streamed as it comes */
    strcpy(fk.in, "zz\r\nbad\r\n");
    fk.in_len = (uint32_t)strlen(fk.in);
    start("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", false);
    backend_accept(lfd);
    cr_assert_eq(run_to_end(), EX_FAIL);
    cr_expect_eq(result().fail_status, 400);
}

/* ---- response bodies: de-chunking, splice ---- */

/* A chunked response for a client that cannot take chunked framing (HTTP/1.0) reaches it decoded,
 * even when a chunk is split across the backend's writes; one that can gets it as it came. */
static void chunked_response(bool dechunk, const char *want)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("", 1, &port);
    start(dechunk ? "GET / HTTP/1.0\r\nHost: h\r\n\r\n" : GET, dechunk);
    int fd = backend_accept(lfd);
    backend_reads_request(fd, 0);
    backend_says(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    size_t len, first = strlen("H2-HEAD 200\n") + 3; /* the head and "hel" */
    cr_assert(run_until(client_has, &first), "the first bytes did not reach the client");
    backend_says(fd, "lo\r\n6\r\n world\r\n0\r\n\r\n");
    cr_assert_eq(run_to_end(), EX_DONE);
    cr_expect_eq(fk.head_dechunk, dechunk, "exchange_head.dechunk");
    const char *body = client_body(&len);
    cr_expect(len == strlen(want) && memcmp(body, want, len) == 0, "got %.*s", (int)len, body);
}

Test(exchange_up, a_chunked_response_is_decoded_for_a_client_that_needs_it)
{
    chunked_response(true, "hello world");
}

Test(exchange_up, a_chunked_response_passes_through_to_a_client_that_takes_it)
{
    chunked_response(false, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
}

/* The big bodies' bytes: position-dependent, so a lost, doubled or reordered run shows. */
static char pattern_at(size_t i)
{
    return (char)('a' + (i * 7 + i / 1000) % 26);
}

static bool is_pattern(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern_at(i))
            return false;
    return true;
}

/* Writes the next pattern bytes to a non-blocking fd until it is full or `total` went. */
static bool write_pattern(int fd, size_t *sent, size_t total)
{
    bool wrote = false;
    char chunk[16384];
    while (*sent < total) {
        size_t n = MIN(sizeof(chunk), total - *sent);
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern_at(*sent + i);
        ssize_t w = write(fd, chunk, n);
        if (w <= 0)
            break;
        *sent += (size_t)w;
        wrote = true;
    }
    return wrote;
}

/* A client end for splice: golb's side s[0] is what the fake session offers. */
static struct big {
    int s[2];
    int up;            /* the backend's end of the upstream connection */
    size_t up_sent;    /* response body bytes the backend wrote */
    size_t client_len; /* bytes the client read from s[1] */
    char client[BIG_BODY];
} bg;

static void client_socket(void)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, bg.s), 0);
    keep_fd(bg.s[0]);
    keep_fd(bg.s[1]);
    fk.s_fd = bg.s[0];
    fk.s_writable = true;
}

/* Backend and client keep moving the big response body: the backend writes while it can, the
 * client reads what reached its socket (and the session pumps, as it would on EPOLLOUT). */
static bool big_response_relayed(void *arg)
{
    (void)arg;
    write_pattern(bg.up, &bg.up_sent, BIG_BODY);
    bool got = false;
    for (;;) {
        ssize_t n = read(bg.s[1], bg.client + bg.client_len, sizeof(bg.client) - bg.client_len);
        if (n <= 0)
            break;
        bg.client_len += (size_t)n;
        got = true;
    }
    if (got && fk.st == EX_WAIT) {
        fk.s_writable = true;
        fk.st = exchange_pump(ux);
    }
    size_t copied;
    client_body(&copied);
    return fk.st != EX_WAIT && bg.client_len + copied == BIG_BODY;
}

/* A Content-Length response of BIG_BODY bytes, its head sent alone first (so nothing of the
 * body is buffered when it starts); returns the body bytes that went through send() (copied). */
static size_t big_response(bool offer_splice)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("", 1, &port);
    client_socket();
    fk.offer_splice = offer_splice;
    start(GET, false);
    bg.up = backend_accept(lfd);
    backend_reads_request(bg.up, 0);
    char head[128];
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_BODY);
    backend_says(bg.up, head);
    size_t head_out = strlen("H2-HEAD 200\n");
    cr_assert(run_until(client_has, &head_out));
    cr_assert(run_until(big_response_relayed, NULL), "client got %zu + %zu of %d", bg.client_len,
              fk.out_len - head_out, BIG_BODY);
    cr_expect_eq(fk.st, EX_DONE);
    cr_expect_eq(fk.splice_asked, 1, "asked once for the body");
    size_t copied;
    const char *body = client_body(&copied);
    cr_expect(is_pattern(body, copied), "copied bytes intact");
    cr_expect(is_pattern(bg.client, bg.client_len), "spliced bytes intact");
    end_exchange();
    return copied;
}

Test(exchange_up, a_large_response_body_is_spliced_when_the_session_offers_its_socket)
{
    cr_expect_eq(big_response(true), 0, "nothing of the body went through send()");
    cr_expect_eq(bg.client_len, BIG_BODY);
    cr_expect_eq(uw.pipes.nfree, 1, "a pipe was used (and given back empty)");
}

Test(exchange_up, a_large_response_body_is_copied_when_the_session_refuses_splice)
{
    cr_expect_eq(big_response(false), BIG_BODY);
    cr_expect_eq(bg.client_len, 0);
    cr_expect_eq(uw.pipes.nfree, 0, "no pipe was taken");
}

/* The client writes the body into its socket while it can (the session pumps when it has). */
static bool big_request_relayed(void *arg)
{
    size_t *client_sent = arg;
    if (write_pattern(bg.s[1], client_sent, BIG_BODY) && fk.st == EX_WAIT) {
        fk.s_readable = true;
        fk.st = exchange_pump(ux);
    }
    return backend_has_request(NULL);
}

Test(exchange_up, a_large_request_body_is_spliced_from_the_client_socket)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("requestBufferSize: 0\n", 1, &port); /* streamed as it comes */
    client_socket();
    fk.offer_splice = true;
    char head[128];
    snprintf(head, sizeof(head), "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n",
             BIG_BODY);
    cr_assert_eq(start(head, false), EX_WAIT);
    bk.fd = backend_accept(lfd);
    bk.len = 0;
    bk.body = BIG_BODY;
    size_t client_sent = 0;
    cr_assert(run_until(big_request_relayed, &client_sent), "the backend got %zu bytes", bk.len);
    cr_expect(is_pattern(request_body(), BIG_BODY), "the body arrived intact");
    cr_expect_eq(fk.splice_asked, 1);
    cr_expect_eq(fk.in_pos, 0, "nothing went through the session's buffer");
    cr_expect(result().req_done);
    backend_says(bk.fd, OK_2);
    cr_assert_eq(run_to_end(), EX_DONE);
    end_exchange();
    cr_expect_eq(uw.pipes.nfree, 1, "a pipe was used (and given back empty)");
}

/* ---- 101 Switching Protocols ---- */

#define UPGRADE_WS                                                                                 \
    "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
#define SWITCH(proto)                                                                              \
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " proto "\r\n\r\n"

/* An Upgrade to an allowed protocol (websocket by default) answered 101 for it: the head goes
 * down and the exchange hands over a tunnel, with the bytes that followed the 101 kept for it. */
Test(exchange_up, a_101_to_an_allowed_upgrade_becomes_a_tunnel)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("", 1, &port);
    cr_assert_eq(start(UPGRADE_WS, false), EX_WAIT);
    int fd = backend_accept(lfd);
    const char *got = backend_reads_request(fd, 0);
    cr_expect(strstr(got, "Upgrade: websocket\r\n") && strstr(got, "Connection: upgrade\r\n"), "%s",
              got);
    backend_says(fd, SWITCH("websocket") "early");
    cr_assert_eq(run_to_end(), EX_TUNNEL);
    cr_expect_eq(fk.resp_status, 101);
    cr_expect_eq(fk.out_len, strlen("H2-HEAD 101\n"), "the 101 head went down");
    cr_expect(result().tunnel);
    struct exchange_tunnel *t = exchange_tunnel(ux);
    cr_assert_not_null(t);
    cr_expect_geq(t->up.fd, 0);
    cr_assert_not_null(t->buf);
    cr_expect(buf_len(t->buf) == 5 && memcmp(t->buf->data + t->buf->pos, "early", 5) == 0,
              "the backend's first tunnel bytes are kept for the client");
    cr_expect_eq(exchange_tunnel(ux), t, "later calls return the same");
}

/* A 101 the request did not ask for (or to another protocol than asked) is an invalid response:
 * 502, nothing reaches the client, no tunnel. It comes on a pooled connection here, where a
 * request the backend never answered would be replayed: an invalid answer must not be. */
static void bad_101(const char *request, const char *response)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("maxFails: 0\n", 1, &port);
    int fd = pooled_connection(lfd);
    cr_assert_eq(start(request, false), EX_WAIT);
    cr_expect_eq(counters(0)->reuses, 1);
    backend_reads_request(fd, 0);
    backend_says(fd, response);
    cr_assert_eq(run_to_end(), EX_FAIL);
    struct exchange_result r = result();
    cr_expect_eq(r.fail_status, 502);
    cr_expect_str_eq(r.end_term, "SH");
    cr_expect_not(r.tunnel);
    cr_expect_not(r.resp_started);
    cr_expect_eq(fk.heads, 0, "nothing of the 101 reached the client");
    cr_expect(nothing_to_accept(lfd), "an invalid response is not replayed");
}

Test(exchange_up, an_unrequested_101_is_a_502)
{
    bad_101(GET, SWITCH("websocket"));
}

Test(exchange_up, a_101_to_a_protocol_not_asked_for_is_a_502)
{
    bad_101(UPGRADE_WS, SWITCH("h2c"));
}

/* An Upgrade to a protocol not in upgradeProtocols goes up as an ordinary request. */
Test(exchange_up, an_upgrade_to_a_protocol_not_allowed_goes_up_without_it)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("", 1, &port);
    start("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
          "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
          false);
    int fd = backend_accept(lfd);
    const char *got = backend_reads_request(fd, 0);
    cr_expect_null(strcasestr(got, "upgrade"), "%s", got);
    cr_expect_null(strcasestr(got, "HTTP2-Settings"), "%s", got);
    backend_says(fd, SWITCH("h2c"));
    cr_assert_eq(run_to_end(), EX_FAIL, "nor may the backend switch it");
}

/* ---- upstream failures after the request went up ---- */

/* The request went up whole and no response head came within upstreamTimeout: 504. */
Test(exchange_up, no_response_head_within_upstream_timeout_is_a_504)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("upstreamTimeout: 0.3\nmaxFails: 0\n", 1, &port);
    uint64_t t0 = loop_time(); /* before the request went up */
    start(GET, false);
    backend_reads_request(backend_accept(lfd), 0);
    cr_assert_eq(run_to_end(), EX_FAIL);
    cr_expect_geq(util_now_ms() - t0, 300, "not before upstreamTimeout");
    struct exchange_result r = result();
    cr_expect_eq(r.fail_status, 504);
    cr_expect_str_eq(r.end_term, "sH");
    cr_expect_str_eq(r.end_error, "response_timeout");
    cr_expect(r.req_done);
    cr_expect_not(r.resp_started);
}

/* The backend closes in the middle of a delimited body: the client is cut (EX_CLOSE) with what
 * came, never told the response completed. */
static void cut_mid_body(const char *response, const char *want_body)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("maxFails: 0\n", 1, &port);
    start(GET, false);
    int fd = backend_accept(lfd);
    backend_reads_request(fd, 0);
    backend_says(fd, response);
    size_t first = strlen("H2-HEAD 200\n") + strlen(want_body);
    cr_assert(run_until(client_has, &first));
    shutdown(fd, SHUT_WR);
    cr_assert_eq(run_to_end(), EX_CLOSE);
    struct exchange_result r = result();
    cr_expect_str_eq(r.end_term, "SD");
    cr_expect_str_eq(r.end_error, "upstream_reset");
    cr_expect(r.resp_started);
    size_t len;
    const char *body = client_body(&len);
    cr_expect(len == strlen(want_body) && memcmp(body, want_body, len) == 0, "got %.*s", (int)len,
              body);
}

Test(exchange_up, a_backend_closing_mid_body_cuts_the_client)
{
    cut_mid_body("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", "0123456789");
}

Test(exchange_up, a_backend_closing_mid_chunk_cuts_the_client)
{
    cut_mid_body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n01234", "10\r\n01234");
}

/* The contrast: a close-delimited body ends with the close, and that is a complete response. */
Test(exchange_up, a_close_delimited_body_ends_with_the_close)
{
    uint16_t port;
    int lfd = tcp_bound(8, &port);
    up_init_ports("", 1, &port);
    start(GET, false);
    int fd = backend_accept(lfd);
    backend_reads_request(fd, 0);
    backend_says(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it");
    shutdown(fd, SHUT_WR);
    cr_assert_eq(run_to_end(), EX_DONE);
    size_t len;
    const char *body = client_body(&len);
    cr_expect(len == 9 && memcmp(body, "all of it", 9) == 0);
}
