/* Unit tests for proxy_hdr: the PROXY header read on accept, over real loopback TCP connections
 * and a real loop. The fast path (the header is there at accept), a header in pieces (the loop
 * waits), what is refused (untrusted peer, missing when required, malformed, a timeout, a drain),
 * and that the bytes after the header stay in the socket for the session. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/sock.h"
#include "config/config.h"
#include "core/worker_ctx.h"
#include "server/proxy_hdr.h"

static struct worker_ctx wk;
static struct config *cfg;
static int lfd = -1;

/* What next() saw. */
static int calls;
static char client_ip[64];
static int client_fd = -1;

static void next(struct worker_ctx *w, int fd, const struct sockaddr *client, socklen_t len,
                 bool tls, uint32_t listener)
{
    (void)w, (void)len, (void)tls;
    cr_expect_eq(listener, 1u, "the listener's tag is passed on");
    calls++;
    sock_ip_str(client, client_ip, sizeof(client_ip));
    client_fd = fd;
    loop_stop(wk.loop);
}

static void start(const char *pp)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "workers: 1\nclientHeaderTimeout: 0.2\nbackends:\n  - http://127.0.0.1:8081/\n"
             "proxyProtocol:\n%s",
             pp);
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), stderr, &cfg), 0);
    memset(&wk, 0, sizeof(wk));
    wk.loop = loop_new();
    wk.cfg = cfg;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    lfd = sock_listen((struct sockaddr *)&sin, sizeof(sin), 16);
    cr_assert_geq(lfd, 0);
    calls = 0;
    client_fd = -1;
    client_ip[0] = '\0';
}

static void stop(void)
{
    if (client_fd >= 0)
        close(client_fd);
    loop_run_deferred(wk.loop);
    loop_free(wk.loop);
    close(lfd);
    config_free(cfg);
}

/* A connected pair: *cl the test's end (blocking), the accepted end returned (non-blocking). */
static int pair(int *cl, struct sockaddr_storage *peer, socklen_t *plen)
{
    struct sockaddr_storage a;
    socklen_t alen = sizeof(a);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    *cl = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(*cl, (struct sockaddr *)&a, alen), 0);
    *plen = sizeof(*peer);
    int fd = accept4(lfd, (struct sockaddr *)peer, plen, SOCK_NONBLOCK);
    cr_assert_geq(fd, 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Waits (at most 2 s) until fd has bytes to read: what accept sees with deferred accept. */
static void wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 2000), 1);
}

static void on_guard(struct loop_timer *t)
{
    (void)t;
    loop_stop(wk.loop);
}

/* Runs the loop until next() is called or no connection waits any more (at most ~2 s). */
static void run(void)
{
    for (int i = 0; i < 40 && calls == 0 && wk.sessions; i++) {
        struct loop_timer t;
        loop_timer_init(&t, on_guard);
        loop_update_time(wk.loop);
        loop_timer_after(wk.loop, &t, 50);
        loop_run(wk.loop);
        loop_timer_cancel(wk.loop, &t);
    }
    loop_run_deferred(wk.loop);
}

/* The test end reads EOF (or a reset): golb closed it. */
static bool closed_by_peer(int cl)
{
    char b[16];
    struct timeval tv = {.tv_sec = 2};
    setsockopt(cl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(cl, b, sizeof(b), 0);
    return n == 0 || (n == -1 && errno == ECONNRESET);
}

/* What the session would read first: the bytes after the header. */
static void expect_rest(const char *want)
{
    char b[64] = {0};
    ssize_t n = recv(client_fd, b, sizeof(b) - 1, 0);
    cr_expect_eq(n, (ssize_t)strlen(want));
    cr_expect_str_eq(b, want);
}

#define V1 "PROXY TCP4 192.0.2.1 198.51.100.2 4000 80\r\n"
static const char V2_LOCAL[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";

Test(proxy_hdr, header_at_accept_is_taken_at_once)
{
    start("  trustedNetworks: [127.0.0.1]\n  required: true\n");
    int cl;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd = pair(&cl, &peer, &plen);
    send_all(cl, V1 "GET /", strlen(V1 "GET /"));
    wait_readable(fd);
    wk.nclients = 1;
    proxy_hdr_accept(&wk, fd, (struct sockaddr *)&peer, plen, false, 1, next);
    cr_assert_eq(calls, 1, "no loop turn needed");
    cr_expect_str_eq(client_ip, "192.0.2.1");
    cr_expect_null(wk.sessions, "nothing registered on the fast path");
    expect_rest("GET /");
    close(cl);
    stop();
}

Test(proxy_hdr, header_in_pieces_waits_on_the_loop)
{
    start("  trustedNetworks: [127.0.0.0/8]\n");
    int cl;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd = pair(&cl, &peer, &plen);
    send_all(cl, "PROXY TCP6 2001:db8::5 ", 23);
    wait_readable(fd);
    wk.nclients = 1;
    proxy_hdr_accept(&wk, fd, (struct sockaddr *)&peer, plen, false, 1, next);
    cr_assert_eq(calls, 0);
    cr_assert_not_null(wk.sessions, "registered while it waits");
    send_all(cl, "2001:db8::1 1 2\r\nxyz", 20);
    run();
    cr_assert_eq(calls, 1);
    cr_expect_str_eq(client_ip, "2001:db8::5");
    cr_expect_null(wk.sessions, "left the registry when handed on");
    cr_expect_eq(wk.nclients, 1, "handed on: still counted");
    expect_rest("xyz");
    close(cl);
    stop();
}

Test(proxy_hdr, long_v2_header_is_peeked_again_whole)
{
    start("  trustedNetworks: [127.0.0.1]\n");
    int cl;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd = pair(&cl, &peer, &plen);
    unsigned char h[16 + 12 + 3 + 600 + 3];
    size_t body = 12 + 3 + 600;
    memcpy(h, "\r\n\r\n\0\r\nQUIT\n\x21\x11", 14);
    h[14] = (unsigned char)(body >> 8);
    h[15] = (unsigned char)body;
    unsigned char addrs[12] = {203, 0, 113, 9, 198, 51, 100, 2, 0x0f, 0xa0, 0, 80};
    memcpy(h + 16, addrs, 12);
    h[28] = 0xe0; /* an unknown TLV of 600 bytes */
    h[29] = 600 >> 8;
    h[30] = 600 & 0xff;
    memset(h + 31, 'x', 600);
    memcpy(h + 16 + body, "abc", 3);
    send_all(cl, h, sizeof(h));
    wait_readable(fd);
    proxy_hdr_accept(&wk, fd, (struct sockaddr *)&peer, plen, false, 1, next);
    run();
    cr_assert_eq(calls, 1);
    cr_expect_str_eq(client_ip, "203.0.113.9");
    expect_rest("abc");
    close(cl);
    stop();
}

Test(proxy_hdr, local_keeps_the_peer_address)
{
    start("  trustedNetworks: [127.0.0.1]\n  required: true\n");
    int cl;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd = pair(&cl, &peer, &plen);
    send_all(cl, V2_LOCAL, sizeof(V2_LOCAL) - 1);
    wait_readable(fd);
    proxy_hdr_accept(&wk, fd, (struct sockaddr *)&peer, plen, false, 1, next);
    cr_assert_eq(calls, 1);
    cr_expect_str_eq(client_ip, "127.0.0.1");
    close(cl);
    stop();
}

Test(proxy_hdr, optional_header_may_be_absent)
{
    start("  trustedNetworks: [127.0.0.1]\n");
    int cl;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd = pair(&cl, &peer, &plen);
    send_all(cl, "GET / HTTP/1.1\r\n", 16);
    wait_readable(fd);
    proxy_hdr_accept(&wk, fd, (struct sockaddr *)&peer, plen, false, 1, next);
    cr_assert_eq(calls, 1);
    cr_expect_str_eq(client_ip, "127.0.0.1");
    expect_rest("GET / HTTP/1.1\r\n");
    close(cl);
    stop();
}

/* Each refusal: the connection is closed, next() never called, the count given back. */
static void expect_refused(const char *pp, const char *bytes, size_t n, bool wait)
{
    start(pp);
    int cl;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd = pair(&cl, &peer, &plen);
    if (n) {
        send_all(cl, bytes, n);
        wait_readable(fd);
    }
    wk.nclients = 1;
    proxy_hdr_accept(&wk, fd, (struct sockaddr *)&peer, plen, false, 1, next);
    if (wait)
        run();
    cr_expect_eq(calls, 0);
    cr_expect_eq(wk.nclients, 0, "the connection was counted closed");
    cr_expect_null(wk.sessions);
    cr_expect(closed_by_peer(cl));
    close(cl);
    stop();
}

Test(proxy_hdr, refusals)
{
    /* untrusted peer sending one (v1, v2) */
    expect_refused("  trustedNetworks: [10.0.0.0/8]\n", V1, strlen(V1), false);
    expect_refused("  trustedNetworks: [10.0.0.0/8]\n", V2_LOCAL, sizeof(V2_LOCAL) - 1, false);
    /* required and missing */
    expect_refused("  trustedNetworks: [127.0.0.1]\n  required: true\n", "GET / HTTP/1.1\r\n", 16,
                   false);
    /* malformed */
    expect_refused("  trustedNetworks: [127.0.0.1]\n", "PROXY TCP4 1.2.3.4\r\n", 20, false);
    /* never completes: the timer (clientHeaderTimeout 0.2 s) */
    expect_refused("  trustedNetworks: [127.0.0.1]\n", "PROXY ", 6, true);
    /* nothing at all: the timer too */
    expect_refused("  trustedNetworks: [127.0.0.1]\n  required: true\n", "", 0, true);
}

Test(proxy_hdr, untrusted_peer_without_a_header_goes_on)
{
    start("  trustedNetworks: [10.0.0.0/8]\n  required: true\n");
    int cl;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd = pair(&cl, &peer, &plen);
    proxy_hdr_accept(&wk, fd, (struct sockaddr *)&peer, plen, false, 1, next); /* nothing sent yet */
    cr_assert_eq(calls, 1, "an untrusted peer is never waited for");
    cr_expect_str_eq(client_ip, "127.0.0.1");
    close(cl);
    stop();
}

Test(proxy_hdr, drain_closes_a_waiting_connection)
{
    start("  trustedNetworks: [127.0.0.1]\n");
    int cl;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd = pair(&cl, &peer, &plen);
    send_all(cl, "PROX", 4);
    wait_readable(fd);
    wk.nclients = 1;
    proxy_hdr_accept(&wk, fd, (struct sockaddr *)&peer, plen, false, 1, next);
    cr_assert_not_null(wk.sessions);
    worker_ctx_drain_sessions(&wk);
    loop_run_deferred(wk.loop);
    cr_expect_null(wk.sessions);
    cr_expect_eq(wk.nclients, 0);
    cr_expect(closed_by_peer(cl));
    close(cl);
    stop();
}
