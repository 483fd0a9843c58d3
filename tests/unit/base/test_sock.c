/* Unit tests for sock: SO_REUSEPORT listeners on 127.0.0.1 and [::1], non-blocking connect and
 * its outcome through sock_error(), and the address text used in logs and X-Forwarded-For. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "base/sock.h"
#include "base/util.h"

/* Generous: the suite runs on a loaded 2-core machine and under ASan. */
#define DEADLINE_MS 5000

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    cr_assert_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

static uint16_t local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Skips the test when this host has no IPv6 loopback (containers often lack it). */
static void need_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        cr_skip_test("no IPv6 sockets here: %s", strerror(errno));
    struct sockaddr_in6 a = v6("::1", 0);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
    int err = errno;
    close(fd);
    if (rc == -1)
        cr_skip_test("no IPv6 loopback here: %s", strerror(err));
}

static void expect_nonblocking_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert_neq(fl, -1);
    cr_expect(fl & O_NONBLOCK, "fd %d must be non-blocking", fd);
    int fdfl = fcntl(fd, F_GETFD);
    cr_assert_neq(fdfl, -1);
    cr_expect(fdfl & FD_CLOEXEC, "fd %d must be close-on-exec", fd);
}

/* Two listeners on one port, a connect that completes and is accepted on one of them. */
static void listen_twice_and_connect(const struct sockaddr *any_port, socklen_t len)
{
    int fds_before = count_fds();
    int l1 = sock_listen(any_port, len, 16);
    cr_assert_geq(l1, 0, "sock_listen: %s", strerror(-l1));
    expect_nonblocking_cloexec(l1);
    uint16_t port = local_port(l1);
    cr_assert_neq(port, 0);

    struct sockaddr_storage same;
    memcpy(&same, any_port, len);
    if (any_port->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)&same)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&same)->sin_port = htons(port);

    int l2 = sock_listen((struct sockaddr *)&same, len, 16);
    cr_assert_geq(l2, 0, "second sock_listen on port %u: %s (SO_REUSEPORT missing?)", port,
                  strerror(-l2));
    cr_expect_eq(local_port(l2), port);

    /* A plain socket without SO_REUSEPORT cannot join: the option is what made l2 work. */
    int plain = socket(any_port->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(plain, -1);
    cr_expect_eq(bind(plain, (struct sockaddr *)&same, len), -1);
    cr_expect_eq(errno, EADDRINUSE);
    close(plain);

    /* Nothing to accept yet: a non-blocking listener says EAGAIN instead of blocking. */
    cr_expect_eq(accept4(l1, NULL, NULL, SOCK_CLOEXEC), -1);
    cr_expect_eq(errno, EAGAIN);

    int c = sock_connect((struct sockaddr *)&same, len);
    cr_assert_geq(c, 0, "sock_connect: %s", strerror(-c));
    expect_nonblocking_cloexec(c);
    short rev = wait_fd(c, POLLOUT, DEADLINE_MS);
    cr_assert(rev & POLLOUT, "connect did not complete within %d ms", DEADLINE_MS);
    cr_expect_eq(sock_error(c), 0);

    /* SO_REUSEPORT spreads connections: the one made went to l1 or l2. */
    struct pollfd p[2] = {{.fd = l1, .events = POLLIN}, {.fd = l2, .events = POLLIN}};
    uint64_t deadline = util_now_ms() + DEADLINE_MS;
    int a = -1;
    while (a == -1 && util_now_ms() < deadline) {
        if (poll(p, 2, 100) <= 0)
            continue;
        a = accept4(p[0].revents & POLLIN ? l1 : l2, NULL, NULL, SOCK_CLOEXEC);
    }
    cr_assert_geq(a, 0, "the connection was never accepted");

    /* And bytes flow. */
    cr_assert_eq(write(c, "ping", 4), 4);
    cr_assert(wait_fd(a, POLLIN, DEADLINE_MS) & POLLIN);
    char buf[8];
    cr_assert_eq(read(a, buf, sizeof(buf)), 4);
    cr_expect_arr_eq(buf, "ping", 4);

    sock_nodelay(c);
    int one = 0;
    socklen_t ol = sizeof(one);
    cr_assert_eq(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, &ol), 0);
    cr_expect_neq(one, 0, "sock_nodelay must set TCP_NODELAY");

    close(a);
    close(c);
    close(l2);
    close(l1);
    cr_expect_eq(count_fds(), fds_before, "fd leak");
}

Test(sock, listen_twice_on_one_port_v4)
{
    struct sockaddr_in a = v4("127.0.0.1", 0);
    listen_twice_and_connect((struct sockaddr *)&a, sizeof(a));
}

Test(sock, listen_twice_on_one_port_v6)
{
    need_ipv6_loopback();
    struct sockaddr_in6 a = v6("::1", 0);
    listen_twice_and_connect((struct sockaddr *)&a, sizeof(a));
}

Test(sock, v6_listener_is_v6_only)
{
    need_ipv6_loopback();
    struct sockaddr_in6 a = v6("::1", 0);
    int l = sock_listen((struct sockaddr *)&a, sizeof(a), 4);
    cr_assert_geq(l, 0, "sock_listen [::]:0: %s", strerror(-l));
    int on = 0;
    socklen_t len = sizeof(on);
    cr_assert_eq(getsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &on, &len), 0);
    cr_expect_neq(on, 0,
                  "IPv6 listeners must not also take IPv4 (a second 0.0.0.0 bind would "
                  "clash)");
    close(l);
}

Test(sock, listen_errors_are_negative_errno)
{
    int fds_before = count_fds();
    /* 192.0.2.1 (TEST-NET-1) is not a local address: bind fails with EADDRNOTAVAIL. */
    struct sockaddr_in a = v4("192.0.2.1", 0);
    cr_expect_eq(sock_listen((struct sockaddr *)&a, sizeof(a), 4), -EADDRNOTAVAIL);

    /* A port held by a socket without SO_REUSEPORT cannot be joined. */
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(holder, -1);
    struct sockaddr_in lo = v4("127.0.0.1", 0);
    cr_assert_eq(bind(holder, (struct sockaddr *)&lo, sizeof(lo)), 0);
    cr_assert_eq(listen(holder, 4), 0);
    lo.sin_port = htons(local_port(holder));
    cr_expect_eq(sock_listen((struct sockaddr *)&lo, sizeof(lo), 4), -EADDRINUSE);
    close(holder);
    cr_expect_eq(count_fds(), fds_before, "a failed sock_listen must close its socket");
}

/* golb's own listeners have SO_REUSEPORT, so a second golb could join them unseen: the probe
 * (SO_REUSEADDR alone) must see them, and must not see what a closed connection leaves behind. */
Test(sock, probe_sees_a_live_listener_but_not_time_wait)
{
    int fds_before = count_fds();
    struct sockaddr_in a = v4("127.0.0.1", 0);
    int l = sock_listen((struct sockaddr *)&a, sizeof(a), 4);
    cr_assert_geq(l, 0, "sock_listen: %s", strerror(-l));
    a.sin_port = htons(local_port(l));
    cr_expect_eq(sock_probe_free((struct sockaddr *)&a, sizeof(a), false), -EADDRINUSE);
    struct sockaddr_in any = v4("0.0.0.0", local_port(l));
    cr_expect_eq(sock_probe_free((struct sockaddr *)&any, sizeof(any), false), -EADDRINUSE,
                 "the wildcard address of the same port overlaps");
    cr_expect_eq(sock_probe_free((struct sockaddr *)&a, sizeof(a), true), 0, "it can be shared");
    int again = sock_listen((struct sockaddr *)&a, sizeof(a), 4);
    cr_expect_geq(again, 0, "and SO_REUSEPORT alone would have joined it");
    if (again >= 0)
        close(again);

    /* A connection the listener's side closes first leaves TIME_WAIT on the listener's port. */
    int c = sock_connect((struct sockaddr *)&a, sizeof(a));
    cr_assert_geq(c, 0);
    cr_assert(wait_fd(l, POLLIN, DEADLINE_MS) & POLLIN);
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(s, 0);
    close(l);
    close(s); /* the server side closes first: TIME_WAIT is on 127.0.0.1:port */
    cr_assert(wait_fd(c, POLLIN, DEADLINE_MS) & POLLIN);
    close(c);
    cr_expect_eq(sock_probe_free((struct sockaddr *)&a, sizeof(a), false), 0,
                 "TIME_WAIT is no listener");
    l = sock_listen((struct sockaddr *)&a, sizeof(a), 4);
    cr_expect_geq(l, 0, "and the port can be listened on again: %s", strerror(-l));
    if (l >= 0)
        close(l);
    cr_expect_eq(count_fds(), fds_before, "the probe closes its socket");
}

static void connect_refused(const struct sockaddr *any_port, socklen_t len)
{
    /* A port that is bound but not listening refuses connections, and stays ours for the whole
     * test: no window in which another process could start listening on it. */
    int holder = socket(any_port->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(holder, -1);
    cr_assert_eq(bind(holder, any_port, len), 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    cr_assert_eq(getsockname(holder, (struct sockaddr *)&ss, &sl), 0);

    int c = sock_connect((struct sockaddr *)&ss, sl);
    if (c == -ECONNREFUSED) {
        /* The kernel may know at once on loopback; that is the same answer, reported early. */
        close(holder);
        return;
    }
    cr_assert_geq(c, 0, "sock_connect: %s", strerror(-c));
    short rev = wait_fd(c, POLLOUT, DEADLINE_MS);
    cr_assert_neq(rev, 0, "no outcome within %d ms", DEADLINE_MS);
    cr_expect_eq(sock_error(c), -ECONNREFUSED, "sock_error: %d", sock_error(c));
    /* SO_ERROR is consumed by reading it. */
    cr_expect_eq(sock_error(c), 0);
    close(c);
    close(holder);
}

Test(sock, connect_to_closed_port_is_refused_v4)
{
    struct sockaddr_in a = v4("127.0.0.1", 0);
    connect_refused((struct sockaddr *)&a, sizeof(a));
}

Test(sock, connect_to_closed_port_is_refused_v6)
{
    need_ipv6_loopback();
    struct sockaddr_in6 a = v6("::1", 0);
    connect_refused((struct sockaddr *)&a, sizeof(a));
}

Test(sock, error_of_a_bad_fd)
{
    cr_expect_eq(sock_error(-1), -EBADF);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_expect_eq(sock_error(fds[0]), -ENOTSOCK);
    close(fds[0]);
    close(fds[1]);
}

Test(sock, connect_with_bad_family_fails_cleanly)
{
    struct sockaddr bad = {.sa_family = 12345};
    int fds_before = count_fds();
    int rc = sock_connect(&bad, sizeof(bad));
    cr_expect_lt(rc, 0);
    cr_expect_eq(rc, -EAFNOSUPPORT);
    cr_expect_eq(count_fds(), fds_before);
}

Test(sock, addr_str_v4)
{
    char buf[64];
    struct sockaddr_in a = v4("127.0.0.1", 8080);
    cr_expect_str_eq(sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf)), "127.0.0.1:8080");
    a = v4("10.20.30.40", 0);
    cr_expect_str_eq(sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf)), "10.20.30.40:0");
    a = v4("255.255.255.255", 65535);
    cr_expect_str_eq(sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf)),
                     "255.255.255.255:65535");
    /* returns buf itself */
    cr_expect_eq(sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf)), buf);
}

Test(sock, addr_str_v6)
{
    char buf[80];
    struct sockaddr_in6 a = v6("::1", 8080);
    cr_expect_str_eq(sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf)), "[::1]:8080");
    a = v6("2001:db8::a:1", 443);
    cr_expect_str_eq(sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf)), "[2001:db8::a:1]:443");
    a = v6("::ffff:192.0.2.7", 80);
    cr_expect_str_eq(sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf)),
                     "[::ffff:192.0.2.7]:80");
    a = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    cr_expect_str_eq(sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf)),
                     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

Test(sock, addr_str_truncates_to_len)
{
    char buf[8];
    memset(buf, 'x', sizeof(buf));
    struct sockaddr_in a = v4("127.0.0.1", 8080);
    sock_addr_str((struct sockaddr *)&a, buf, sizeof(buf));
    cr_expect_str_eq(buf, "127.0.0", "must stay NUL-terminated within len");
}

Test(sock, ip_str_v4_and_v6)
{
    char buf[INET6_ADDRSTRLEN];
    struct sockaddr_in a = v4("192.168.1.20", 1234);
    cr_expect_eq(sock_ip_str((struct sockaddr *)&a, buf, sizeof(buf)), strlen("192.168.1.20"));
    cr_expect_str_eq(buf, "192.168.1.20");

    struct sockaddr_in6 b = v6("::1", 1234);
    cr_expect_eq(sock_ip_str((struct sockaddr *)&b, buf, sizeof(buf)), 3);
    cr_expect_str_eq(buf, "::1");

    b = v6("fe80::1:2", 1);
    cr_expect_eq(sock_ip_str((struct sockaddr *)&b, buf, sizeof(buf)), strlen("fe80::1:2"));
    cr_expect_str_eq(buf, "fe80::1:2");
}

Test(sock, ip_str_v4_is_inet_ntop_s_text)
{
    /* golb formats IPv4 itself (faster than inet_ntop): the same text for every shape of byte */
    static const uint32_t samples[] = {0x00000000, 0xffffffff, 0x0a006409, 0x7f000001,
                                       0xc0a80114, 0x01020304, 0x63646566, 0x090a6364};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        for (uint32_t k = 0; k < 64; k++) {
            struct sockaddr_in a = {.sin_family = AF_INET};
            a.sin_addr.s_addr = htonl(samples[i] ^ (k * 0x01010101u));
            char want[INET_ADDRSTRLEN], got[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &a.sin_addr, want, sizeof(want));
            cr_assert_eq(sock_ip_str((struct sockaddr *)&a, got, sizeof(got)), strlen(want));
            cr_assert_str_eq(got, want);
        }
    }
}

Test(sock, ip_str_that_does_not_fit_says_unknown)
{
    char buf[5];
    struct sockaddr_in a = v4("192.168.100.200", 1);
    size_t n = sock_ip_str((struct sockaddr *)&a, buf, sizeof(buf));
    cr_expect_eq(n, 4);
    cr_expect_str_eq(buf, "unkn");
}

Test(sock, addr_of_a_real_connection)
{
    struct sockaddr_in any = v4("127.0.0.1", 0);
    int l = sock_listen((struct sockaddr *)&any, sizeof(any), 4);
    cr_assert_geq(l, 0);
    uint16_t port = local_port(l);
    struct sockaddr_in to = v4("127.0.0.1", port);
    int c = sock_connect((struct sockaddr *)&to, sizeof(to));
    cr_assert_geq(c, 0);
    cr_assert(wait_fd(l, POLLIN, DEADLINE_MS) & POLLIN);
    struct sockaddr_storage peer;
    socklen_t pl = sizeof(peer);
    int a = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    cr_assert_geq(a, 0);
    char buf[64], want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", local_port(c));
    cr_expect_str_eq(sock_addr_str((struct sockaddr *)&peer, buf, sizeof(buf)), want);
    cr_expect_eq(sock_ip_str((struct sockaddr *)&peer, buf, sizeof(buf)), 9);
    cr_expect_str_eq(buf, "127.0.0.1");
    close(a);
    close(c);
    close(l);
}

/* Out of descriptors, a connect fails with a local error: the proxy answers 503 and the health
 * checker skips the check instead of blaming the backend. */
Test(sock, connect_out_of_descriptors_is_a_local_error)
{
    struct rlimit lim;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &lim), 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    /* A pipe takes the lowest free numbers, so every descriptor up to fds[1] is in use: a limit
     * of fds[1] + 1 leaves none to allocate. */
    struct rlimit low = {.rlim_cur = (rlim_t)MAX(fds[0], fds[1]) + 1, .rlim_max = lim.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in a = v4("127.0.0.1", 9);
    int rc = sock_connect((struct sockaddr *)&a, sizeof(a));
    cr_expect_eq(rc, -EMFILE, "sock_connect: %d", rc);
    cr_expect(sock_error_is_local(rc));
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    close(fds[0]);
    close(fds[1]);
}

Test(sock, peer_failures_are_not_local_errors)
{
    cr_expect_not(sock_error_is_local(-ECONNREFUSED));
    cr_expect_not(sock_error_is_local(-ETIMEDOUT));
    cr_expect_not(sock_error_is_local(-ECONNRESET));
    cr_expect_not(sock_error_is_local(-EHOSTUNREACH));
    cr_expect(sock_error_is_local(-ENFILE));
    cr_expect(sock_error_is_local(-EADDRNOTAVAIL));
}

/* With deferred accept a connection that has sent nothing stays with the kernel; its first bytes
 * make it acceptable, and the first read finds them. */
Test(sock, deferred_accept_waits_for_the_first_bytes)
{
    struct sockaddr_in any = v4("127.0.0.1", 0);
    int l = sock_listen((struct sockaddr *)&any, sizeof(any), 16);
    cr_assert_geq(l, 0, "sock_listen: %s", strerror(-l));
    cr_assert_eq(sock_defer_accept(l, 5), 0);
    struct sockaddr_in to = v4("127.0.0.1", local_port(l));
    int c = sock_connect((struct sockaddr *)&to, sizeof(to));
    cr_assert_geq(c, 0);
    cr_assert_neq(wait_fd(c, POLLOUT, DEADLINE_MS), 0, "connect did not complete");
    cr_assert_eq(sock_error(c), 0);

    /* Connected on the client's side, yet nothing to accept: the listener is not readable. */
    cr_expect_eq(wait_fd(l, POLLIN, 200), 0, "a silent connection was offered to accept()");
    cr_expect_eq(accept4(l, NULL, NULL, SOCK_NONBLOCK), -1);
    cr_expect_eq(errno, EAGAIN);

    cr_assert_eq(write(c, "GET", 3), 3);
    cr_assert_neq(wait_fd(l, POLLIN, DEADLINE_MS), 0, "not acceptable after data arrived");
    int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    cr_assert_geq(a, 0, "accept4: %s", strerror(errno));
    char got[8];
    cr_expect_eq(read(a, got, sizeof(got)), 3, "the first read after accept found no data");
    close(a);
    close(c);
    close(l);
}
