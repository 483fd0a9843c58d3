/* Unit tests for upstream: connects and their outcome, the per-backend idle pool (LIFO reuse,
 * stats, upstreamMaxIdle, upstreamIdleTimeout), pooled connections the backend closes or writes
 * to, and teardown. A real struct loop runs against a listener on 127.0.0.1:0; the loop is driven
 * by a 1 ms check timer that stops it once a condition holds or a deadline passes (no sleeps). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "base/loop.h"
#include "base/sock.h"
#include "upstream/upstream.h"
#include "base/util.h"

/* Generous: the suite runs on a loaded 2-core machine and under ASan. */
#define DEADLINE_MS 5000
#define LONG_IDLE_MS 600000 /* an idle timeout no test reaches */

/* ---- driving the loop until a condition holds ---- */

typedef bool (*pred_fn)(void *arg);

struct waiter {
    struct loop_timer t;
    struct loop *loop;
    pred_fn pred;
    void *arg;
    uint64_t deadline;
    bool met;
};

static void waiter_tick(struct loop_timer *t)
{
    struct waiter *w = container_of(t, struct waiter, t);
    if (w->pred(w->arg)) {
        w->met = true;
        loop_stop(w->loop);
    } else if (util_now_ms() >= w->deadline) {
        loop_stop(w->loop);
    } else {
        loop_timer_after(w->loop, t, 1);
    }
}

/* Runs the loop until pred(arg) is true (checked every millisecond) or DEADLINE_MS passes. */
static bool run_until(struct loop *loop, pred_fn pred, void *arg)
{
    struct waiter w = {
        .loop = loop, .pred = pred, .arg = arg, .deadline = util_now_ms() + DEADLINE_MS};
    loop_timer_init(&w.t, waiter_tick);
    loop_update_time(loop);
    loop_timer_after(loop, &w.t, 0);
    cr_assert_eq(loop_run(loop), 0);
    loop_timer_cancel(loop, &w.t);
    return w.met;
}

/* ---- the owner of a connection: records what its handler saw ---- */

struct owner {
    struct upstream_conn *conn;
    int calls;
    uint32_t events; /* union of every event mask seen */
    bool have_result;
    int result; /* upstream_connect_result() at the first EPOLLOUT or error */
};

static void on_event(struct upstream_conn *conn, uint32_t events)
{
    struct owner *o = conn->owner;
    cr_assert_not_null(o, "events for an idle connection must not reach an owner");
    cr_assert_eq(o->conn, conn);
    o->calls++;
    o->events |= events;
    if (!o->have_result && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        o->have_result = true;
        o->result = upstream_connect_result(conn);
    }
}

static bool owner_has_result(void *arg)
{
    return ((struct owner *)arg)->have_result;
}

static bool owner_saw_in(void *arg)
{
    return (((struct owner *)arg)->events & EPOLLIN) != 0;
}

static bool owner_saw_rdhup(void *arg)
{
    struct owner *o = arg;
    return o->conn->rdhup;
}

/* ---- fixture: a loop, a listener, a pool ---- */

struct fx {
    int fds_before;
    struct loop *loop;
    int lfd;
    struct sockaddr_in addr; /* where lfd listens */
    struct upstream_pool *pool;
    int nlists;
    struct upstream_idle lists[4]; /* one per "backend", as each backend has one per worker */
};

static void fx_init(struct fx *f, int nbackends, uint32_t max_idle, uint32_t idle_ms)
{
    f->fds_before = count_fds();
    f->loop = loop_new();
    cr_assert_not_null(f->loop);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    f->lfd = sock_listen((struct sockaddr *)&any, sizeof(any), 64);
    cr_assert_geq(f->lfd, 0, "listen: %s", strerror(-f->lfd));
    socklen_t len = sizeof(f->addr);
    cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&f->addr, &len), 0);
    f->nlists = nbackends;
    memset(f->lists, 0, sizeof(f->lists));
    f->pool = upstream_pool_new(f->loop, max_idle, idle_ms);
    cr_assert_not_null(f->pool);
}

/* Frees everything; closed connections are freed by deferred tasks, so run those too. ASan's
 * leak check and the fd count catch what is left behind. */
static void fx_fini(struct fx *f)
{
    if (f->pool)
        for (int i = 0; i < f->nlists; i++)
            upstream_close_idle(f->pool, &f->lists[i], true);
    upstream_pool_free(f->pool);
    loop_run_deferred(f->loop);
    close(f->lfd);
    loop_free(f->loop);
    cr_expect_eq(count_fds(), f->fds_before, "fd leak");
}

static int accept_one(struct fx *f)
{
    cr_assert(wait_fd(f->lfd, POLLIN, DEADLINE_MS) & POLLIN, "nothing to accept within %d ms",
              DEADLINE_MS);
    int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    cr_assert_geq(fd, 0, "accept: %s", strerror(errno));
    return fd;
}

/* True once the server side of a connection sees the client side closed: EOF, or a reset when
 * the client closed with bytes from the server still unread. */
static bool peer_closed(int server_fd)
{
    short rev = wait_fd(server_fd, POLLIN, DEADLINE_MS);
    if (!(rev & (POLLIN | POLLHUP | POLLERR)))
        return false;
    char c;
    ssize_t n = read(server_fd, &c, 1);
    return n == 0 || (n == -1 && errno == ECONNRESET);
}

/* The server side has not seen the client close (nothing to read yet). */
static bool peer_still_open(int server_fd)
{
    char c;
    return read(server_fd, &c, 1) == -1 && errno == EAGAIN;
}

/* Connects owner o to the fixture's listener as backend `backend`, waits for the outcome, accepts
 * the server side. Returns the server-side fd. */
static int connect_ok(struct fx *f, int backend, struct owner *o)
{
    int err = 0;
    *o = (struct owner){0};
    o->conn = upstream_connect(f->pool, &f->lists[backend], (struct sockaddr *)&f->addr,
                               sizeof(f->addr), o, on_event, &err);
    cr_assert_not_null(o->conn, "upstream_connect: %s", strerror(-err));
    cr_assert(run_until(f->loop, owner_has_result, o), "no connect outcome within %d ms",
              DEADLINE_MS);
    cr_assert_eq(o->result, 0, "connect failed: %s", strerror(-o->result));
    return accept_one(f);
}

struct idle_cond {
    struct upstream_idle *list;
    uint32_t want;
};

static bool idle_is(void *arg)
{
    struct idle_cond *c = arg;
    return upstream_idle_count(c->list) == c->want;
}

struct time_cond {
    struct loop *loop;
    uint64_t until; /* on the loop clock */
};

static bool time_past(void *arg)
{
    struct time_cond *t = arg;
    return loop_now(t->loop) >= t->until;
}

/* ---- connect ---- */

Test(upstream, connect_completes_and_reports_success)
{
    struct fx f;
    fx_init(&f, 2, 8, LONG_IDLE_MS);
    struct owner o;
    int s = connect_ok(&f, 1, &o);
    struct upstream_conn *c = o.conn;
    cr_expect(o.events & EPOLLOUT);
    cr_expect(c->connected, "a successful result marks the connection connected");
    cr_expect(c->writable, "EPOLLOUT sets the writable flag");
    cr_expect_not(c->closed);
    cr_expect_eq(c->idle, &f.lists[1], "it returns to the list it was opened for");
    cr_expect_eq(c->owner, &o);
    cr_expect_eq(c->requests, 0);
    int nd = 0;
    socklen_t nl = sizeof(nd);
    cr_assert_eq(getsockopt(c->io.fd, IPPROTO_TCP, TCP_NODELAY, &nd, &nl), 0);
    cr_expect_neq(nd, 0, "upstream sockets have Nagle off");
    cr_expect_eq(upstream_pool_stats(f.pool)->connects, 1);
    cr_expect_eq(upstream_pool_stats(f.pool)->reuses, 0);

    /* Bytes the backend sends reach the owner as readability. */
    cr_assert_eq(write(s, "HTTP", 4), 4);
    cr_expect(run_until(f.loop, owner_saw_in, &o), "the owner's handler must see EPOLLIN");
    cr_expect(c->readable);

    upstream_release(c, false);
    cr_expect(peer_closed(s));
    close(s);
    fx_fini(&f);
}

Test(upstream, connect_to_a_closed_port_reports_refused)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    /* Bound, not listening: refuses, and the port stays ours for the whole test. */
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(holder, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(holder, (struct sockaddr *)&a, &len), 0);

    struct owner o = {0};
    int err = 0;
    o.conn = upstream_connect(f.pool, &f.lists[0], (struct sockaddr *)&a, sizeof(a), &o, on_event, &err);
    cr_assert_not_null(o.conn, "an in-progress connect is not an error: %s", strerror(-err));
    cr_assert(run_until(f.loop, owner_has_result, &o));
    cr_expect_eq(o.result, -ECONNREFUSED, "result %d", o.result);
    cr_expect_not(o.conn->connected);
    cr_expect_eq(upstream_pool_stats(f.pool)->connects, 1, "an attempt counts as a connect");

    /* Even "reusable", a connection that never connected is closed, not pooled. */
    upstream_release(o.conn, true);
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 0);
    close(holder);
    fx_fini(&f);
}

Test(upstream, connect_that_fails_at_once_sets_err)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    struct sockaddr bad = {.sa_family = 12345};
    struct owner o = {0};
    int err = 0;
    struct upstream_conn *c = upstream_connect(f.pool, &f.lists[0], &bad, sizeof(bad), &o, on_event, &err);
    cr_expect_null(c);
    cr_expect_eq(err, -EAFNOSUPPORT);
    cr_expect_eq(upstream_pool_stats(f.pool)->connects, 0);
    fx_fini(&f);
}

/* ---- release and reuse ---- */

Test(upstream, reusable_release_pools_and_take_idle_returns_it)
{
    struct fx f;
    fx_init(&f, 3, 8, LONG_IDLE_MS);
    struct owner o;
    int s = connect_ok(&f, 2, &o);
    struct upstream_conn *c = o.conn;
    size_t timers = loop_timer_count(f.loop);

    upstream_release(c, true);
    cr_expect_eq(upstream_idle_count(&f.lists[2]), 1);
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 0);
    cr_expect_null(c->owner, "an idle connection has no owner");
    cr_expect_eq(c->requests, 1, "one exchange completed on it");
    cr_expect(loop_timer_armed(&c->idle_timer), "pooled: the idle timer runs");
    cr_expect_eq(loop_timer_count(f.loop), timers + 1);
    cr_expect(peer_still_open(s), "pooling must keep the connection open");

    cr_expect_null(upstream_take_idle(f.pool, &f.lists[0], &o, on_event), "nothing pooled for backend 0");
    cr_expect_null(upstream_take_idle(f.pool, &f.lists[1], &o, on_event));

    struct owner o2 = {0};
    struct upstream_conn *t = upstream_take_idle(f.pool, &f.lists[2], &o2, on_event);
    cr_assert_eq(t, c, "the pooled connection itself comes back");
    o2.conn = t;
    cr_expect_eq(t->owner, &o2);
    cr_expect_eq(upstream_idle_count(&f.lists[2]), 0);
    cr_expect_not(loop_timer_armed(&t->idle_timer), "taken: the idle timer is cancelled");
    cr_expect_eq(loop_timer_count(f.loop), timers);
    cr_expect_eq(upstream_pool_stats(f.pool)->connects, 1);
    cr_expect_eq(upstream_pool_stats(f.pool)->reuses, 1);
    cr_expect_null(upstream_take_idle(f.pool, &f.lists[2], &o2, on_event), "taken once only");

    /* It still works, and its events now go to the new owner. */
    cr_assert_eq(write(t->io.fd, "GET", 3), 3);
    char buf[4];
    cr_assert(wait_fd(s, POLLIN, DEADLINE_MS) & POLLIN);
    cr_expect_eq(read(s, buf, sizeof(buf)), 3);
    cr_assert_eq(write(s, "ok", 2), 2);
    cr_expect(run_until(f.loop, owner_saw_in, &o2),
              "events of a reused connection go to its new owner");
    char resp[4];
    cr_expect_eq(read(t->io.fd, resp, sizeof(resp)), 2, "the owner reads its response");

    /* Pool again, reuse again: the counters follow. */
    upstream_release(t, true);
    cr_expect_eq(t->requests, 2);
    cr_expect_eq(upstream_take_idle(f.pool, &f.lists[2], &o2, on_event), t);
    cr_expect_eq(upstream_pool_stats(f.pool)->reuses, 2);
    upstream_release(t, false);
    cr_expect(peer_closed(s));
    close(s);
    fx_fini(&f);
}

Test(upstream, non_reusable_release_closes)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    struct owner o;
    int s = connect_ok(&f, 0, &o);
    size_t timers = loop_timer_count(f.loop);
    upstream_release(o.conn, false);
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 0);
    cr_expect(o.conn->closed);
    cr_expect_eq(o.conn->io.fd, -1);
    cr_expect_eq(loop_timer_count(f.loop), timers);
    cr_expect(peer_closed(s), "the backend must see the connection closed");
    cr_expect_null(upstream_take_idle(f.pool, &f.lists[0], &o, on_event));
    /* The struct itself is freed by a deferred task (house rule 8): fx_fini runs it. */
    close(s);
    fx_fini(&f);
}

Test(upstream, reuse_is_lifo)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    struct owner o[3];
    int s[3];
    for (int i = 0; i < 3; i++)
        s[i] = connect_ok(&f, 0, &o[i]);
    for (int i = 0; i < 3; i++)
        upstream_release(o[i].conn, true);
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 3);
    struct owner n = {0};
    cr_expect_eq(upstream_take_idle(f.pool, &f.lists[0], &n, on_event), o[2].conn, "most recent first");
    cr_expect_eq(upstream_take_idle(f.pool, &f.lists[0], &n, on_event), o[1].conn);
    /* Put the most recent back: it is first again. */
    upstream_release(o[2].conn, true);
    cr_expect_eq(upstream_take_idle(f.pool, &f.lists[0], &n, on_event), o[2].conn);
    cr_expect_eq(upstream_take_idle(f.pool, &f.lists[0], &n, on_event), o[0].conn);
    cr_expect_null(upstream_take_idle(f.pool, &f.lists[0], &n, on_event));
    for (int i = 0; i < 3; i++) {
        upstream_release(o[i].conn, false);
        close(s[i]);
    }
    fx_fini(&f);
}

Test(upstream, proxy_header_binds_a_connection_to_its_client)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    struct owner o[3];
    int s[3];
    struct upstream_pp none = {0}, a = {.family = AF_INET, .addr = {192, 0, 2, 1}},
                       b = {.family = AF_INET, .addr = {192, 0, 2, 2}};
    for (int i = 0; i < 3; i++)
        s[i] = connect_ok(&f, 0, &o[i]);
    cr_assert_eq(upstream_send_proxy_header(o[0].conn, "PROXY UNKNOWN\r\n", 15, &a), 0);
    cr_assert_eq(upstream_send_proxy_header(o[1].conn, "PROXY UNKNOWN\r\n", 15, &b), 0);
    char got[32] = {0};
    cr_expect_eq(recv(s[0], got, sizeof(got), 0), 15, "the header went whole");
    cr_expect_str_eq(got, "PROXY UNKNOWN\r\n");
    for (int i = 0; i < 3; i++)
        upstream_release(o[i].conn, true);
    struct owner n = {0};
    /* most recent first, but only a connection that carries the same client (or none) */
    cr_expect_eq(upstream_take_idle_pp(f.pool, &f.lists[0], &n, on_event, &a), o[0].conn);
    cr_expect_null(upstream_take_idle_pp(f.pool, &f.lists[0], &n, on_event, &a), "A's only one");
    cr_expect_eq(upstream_take_idle_pp(f.pool, &f.lists[0], &n, on_event, &none), o[2].conn,
                 "a connection without a header for a backend without sendProxyProtocol");
    cr_expect_null(upstream_take_idle_pp(f.pool, &f.lists[0], &n, on_event, &none));
    cr_expect_eq(upstream_take_idle_pp(f.pool, &f.lists[0], &n, on_event, &b), o[1].conn);
    for (int i = 0; i < 3; i++) {
        upstream_release(o[i].conn, false);
        close(s[i]);
    }
    fx_fini(&f);
}

Test(upstream, max_idle_is_respected_per_backend)
{
    struct fx f;
    fx_init(&f, 2, 2, LONG_IDLE_MS);
    struct owner o[4];
    int s[4];
    for (int i = 0; i < 3; i++)
        s[i] = connect_ok(&f, 0, &o[i]);
    s[3] = connect_ok(&f, 1, &o[3]);
    upstream_release(o[0].conn, true);
    upstream_release(o[1].conn, true);
    upstream_release(o[2].conn, true); /* one too many for backend 0: closed */
    upstream_release(o[3].conn, true); /* backend 1 has its own room */
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 2);
    cr_expect_eq(upstream_idle_count(&f.lists[1]), 1);
    cr_expect(o[2].conn->closed);
    cr_expect(peer_closed(s[2]));
    cr_expect(peer_still_open(s[0]));
    cr_expect(peer_still_open(s[1]));
    cr_expect(peer_still_open(s[3]));
    for (int i = 0; i < 4; i++)
        close(s[i]); /* the pooled ones notice and close themselves; pool_free does the rest */
    fx_fini(&f);
}

Test(upstream, max_idle_zero_pools_nothing)
{
    struct fx f;
    fx_init(&f, 1, 0, LONG_IDLE_MS);
    struct owner o;
    int s = connect_ok(&f, 0, &o);
    upstream_release(o.conn, true);
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 0);
    cr_expect(peer_closed(s));
    close(s);
    fx_fini(&f);
}

/* ---- pooled connections the backend gives up on ---- */

Test(upstream, pooled_connection_closed_by_the_backend_leaves_the_pool_at_once)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    struct owner o[2];
    int s0 = connect_ok(&f, 0, &o[0]);
    int s1 = connect_ok(&f, 0, &o[1]);
    upstream_release(o[0].conn, true);
    upstream_release(o[1].conn, true);
    cr_assert_eq(upstream_idle_count(&f.lists[0]), 2);

    close(s1); /* the backend's keep-alive timer fired on one of them */
    struct idle_cond cond = {&f.lists[0], 1};
    uint64_t start = util_now_ms();
    cr_assert(run_until(f.loop, idle_is, &cond), "the dead connection is still pooled after %d ms",
              DEADLINE_MS);
    cr_expect_lt(util_now_ms() - start, 1000, "removal must follow the event, not a timer");
    struct owner n = {0};
    cr_expect_eq(upstream_take_idle(f.pool, &f.lists[0], &n, on_event), o[0].conn,
                 "the survivor is the one handed out");
    upstream_release(o[0].conn, false);
    close(s0);
    fx_fini(&f);
}

Test(upstream, pooled_connection_receiving_stray_bytes_is_closed)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    struct owner o;
    int s = connect_ok(&f, 0, &o);
    upstream_release(o.conn, true);
    cr_assert_eq(write(s, "HTTP/1.1 408 Request Timeout\r\n\r\n", 32), 32);
    struct idle_cond cond = {&f.lists[0], 0};
    cr_assert(run_until(f.loop, idle_is, &cond), "still pooled after stray bytes");
    cr_expect(peer_closed(s), "the unusable connection is closed, not just forgotten");
    close(s);
    fx_fini(&f);
}

/* Regression, fixed (upstream.c upstream_release): a connection whose backend already closed (or wrote to) it
 * while it was still owned is pooled anyway. The EPOLLIN|EPOLLRDHUP edge was delivered to the
 * owner (conn->rdhup and conn->readable are set) and, epoll being edge-triggered, no new edge
 * comes once it is idle, so on_io never removes it: the dead connection stays pooled until
 * upstreamIdleTimeout and is handed to the next request, which then fails on it (replayed once
 * only when no body byte was sent, else a 502). This happens in proxy.c when the FIN arrives in the
 * same batch as the end of a keep-alive response: pump_response stops at RESP_DONE without
 * reading the EOF, so up_eof stays false and finish_exchange releases it as reusable.
 * Input: connect, backend closes its side, owner sees EPOLLRDHUP, upstream_release(conn, true).
 * Expected: idle count 0 (closed at release, or removed at the next loop iteration).
 * Actual: idle count stays 1 and upstream_take_idle() returns the dead connection. */
Test(upstream, connection_closed_by_backend_while_owned_is_not_pooled)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    struct owner o;
    int s = connect_ok(&f, 0, &o);
    close(s);
    cr_assert(run_until(f.loop, owner_saw_rdhup, &o), "the owner never saw the FIN");
    upstream_release(o.conn, true);
    struct idle_cond cond = {&f.lists[0], 0};
    cr_expect(run_until(f.loop, idle_is, &cond), "a connection the backend closed was pooled");
    struct owner n = {0};
    struct upstream_conn *t = upstream_take_idle(f.pool, &f.lists[0], &n, on_event);
    cr_expect_null(t, "a dead connection was handed out");
    if (t)
        upstream_release(t, false);
    fx_fini(&f);
}

/* ---- idle timeout ---- */

Test(upstream, idle_timeout_closes_pooled_connections)
{
    struct fx f;
    fx_init(&f, 1, 8, 50);
    struct owner o[2];
    int s[2];
    for (int i = 0; i < 2; i++)
        s[i] = connect_ok(&f, 0, &o[i]);
    loop_update_time(f.loop);
    uint64_t start = loop_now(f.loop);
    upstream_release(o[0].conn, true);
    upstream_release(o[1].conn, true);
    cr_assert_eq(upstream_idle_count(&f.lists[0]), 2);
    struct idle_cond cond = {&f.lists[0], 0};
    cr_assert(run_until(f.loop, idle_is, &cond), "idle connections outlived their timeout");
    cr_expect_geq(loop_now(f.loop) - start, 50, "closed before upstreamIdleTimeout");
    for (int i = 0; i < 2; i++) {
        cr_expect(peer_closed(s[i]), "connection %d: the backend must see the close", i);
        close(s[i]);
    }
    cr_expect_eq(loop_timer_count(f.loop), 0, "no idle timer left behind");
    fx_fini(&f);
}

Test(upstream, taking_a_connection_stops_its_idle_timer)
{
    struct fx f;
    fx_init(&f, 1, 8, 30);
    struct owner o;
    int s = connect_ok(&f, 0, &o);
    upstream_release(o.conn, true);
    struct owner n = {0};
    struct upstream_conn *c = upstream_take_idle(f.pool, &f.lists[0], &n, on_event);
    cr_assert_eq(c, o.conn);
    n.conn = c;
    /* Run well past the idle timeout: the connection in use must survive. */
    loop_update_time(f.loop);
    struct time_cond t = {f.loop, loop_now(f.loop) + 100};
    cr_assert(run_until(f.loop, time_past, &t));
    cr_expect_not(c->closed, "an owned connection must not be closed by the idle timer");
    cr_expect(peer_still_open(s));
    upstream_release(c, false);
    close(s);
    fx_fini(&f);
}

/* ---- teardown ---- */

Test(upstream, close_idle_closes_a_lists_connections)
{
    struct fx f;
    fx_init(&f, 2, 8, LONG_IDLE_MS);
    struct owner o[4];
    int s[4];
    for (int i = 0; i < 4; i++)
        s[i] = connect_ok(&f, i % 2, &o[i]);
    for (int i = 0; i < 3; i++)
        upstream_release(o[i].conn, true);
    upstream_release(o[3].conn, false); /* closed, its free still queued */
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 2);
    cr_expect_eq(upstream_idle_count(&f.lists[1]), 1);
    upstream_close_idle(f.pool, &f.lists[0], false);
    upstream_close_idle(f.pool, &f.lists[1], false);
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 0);
    cr_expect_eq(upstream_idle_count(&f.lists[1]), 0);
    loop_run_deferred(f.loop);
    for (int i = 0; i < 4; i++) {
        cr_expect(peer_closed(s[i]), "connection %d left open by pool_free", i);
        close(s[i]);
    }
    cr_expect_eq(loop_timer_count(f.loop), 0, "pool_free must cancel the idle timers");
    fx_fini(&f); /* runs the queued free; ASan reports any connection not freed */
}

/* A reload removed the backend: its list is closed for good, so a connection that was in use
 * then is closed when given back, never pooled again. */
Test(upstream, a_list_closed_forever_takes_nothing_back)
{
    struct fx f;
    fx_init(&f, 1, 8, LONG_IDLE_MS);
    struct owner idle, busy;
    int s_idle = connect_ok(&f, 0, &idle);
    int s_busy = connect_ok(&f, 0, &busy);
    upstream_release(idle.conn, true);
    cr_assert_eq(upstream_idle_count(&f.lists[0]), 1);
    upstream_close_idle(f.pool, &f.lists[0], true);
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 0);
    cr_expect(peer_closed(s_idle), "the idle connection is closed at once");
    upstream_release(busy.conn, true);
    cr_expect_eq(upstream_idle_count(&f.lists[0]), 0, "given back after removal: closed");
    cr_expect(peer_closed(s_busy));
    close(s_idle);
    close(s_busy);
    fx_fini(&f);
}
