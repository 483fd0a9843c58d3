/* test_health — the transition function, then real checks against tiny servers on 127.0.0.1. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "upstream/backend.h"
#include "config/config.h"
#include "upstream/health.h"
#include "base/util.h"

/* Generous: the suite runs on a loaded 2-core machine and under ASan. */
#define DEADLINE_MS 5000

/* ---- the pure transition function ---- */

Test(health_next_state, unknown_takes_first_result)
{
    cr_assert_eq(health_next_state(BACKEND_UNKNOWN, true, 1, 1, 1), BACKEND_UP);
    cr_assert_eq(health_next_state(BACKEND_UNKNOWN, false, 1, 1, 1), BACKEND_DOWN);
    /* even with thresholds above 1: an unchecked backend must not wait for `rise` results */
    cr_assert_eq(health_next_state(BACKEND_UNKNOWN, true, 1, 3, 3), BACKEND_UP);
    cr_assert_eq(health_next_state(BACKEND_UNKNOWN, false, 1, 3, 3), BACKEND_DOWN);
}

Test(health_next_state, single_result_flips_with_thresholds_of_one)
{
    cr_assert_eq(health_next_state(BACKEND_UP, true, 1, 1, 1), BACKEND_UP);
    cr_assert_eq(health_next_state(BACKEND_UP, false, 1, 1, 1), BACKEND_DOWN);
    cr_assert_eq(health_next_state(BACKEND_DOWN, false, 7, 1, 1), BACKEND_DOWN);
    cr_assert_eq(health_next_state(BACKEND_DOWN, true, 1, 1, 1), BACKEND_UP);
}

Test(health_next_state, rise_and_fall_counts)
{
    /* fall = 3: UP survives two failures, the third flips it */
    cr_assert_eq(health_next_state(BACKEND_UP, false, 1, 2, 3), BACKEND_UP);
    cr_assert_eq(health_next_state(BACKEND_UP, false, 2, 2, 3), BACKEND_UP);
    cr_assert_eq(health_next_state(BACKEND_UP, false, 3, 2, 3), BACKEND_DOWN);
    /* rise = 2: DOWN needs two successes */
    cr_assert_eq(health_next_state(BACKEND_DOWN, true, 1, 2, 3), BACKEND_DOWN);
    cr_assert_eq(health_next_state(BACKEND_DOWN, true, 2, 2, 3), BACKEND_UP);
    cr_assert_eq(health_next_state(BACKEND_DOWN, true, 9, 2, 3), BACKEND_UP);
    /* thresholds of 0 mean 1 */
    cr_assert_eq(health_next_state(BACKEND_UP, false, 1, 0, 0), BACKEND_DOWN);
    cr_assert_eq(health_next_state(BACKEND_DOWN, true, 1, 0, 0), BACKEND_UP);
}

/* ---- a tiny test server: one thread, poll(), every connection non-blocking ---- */

enum srv_mode {
    SRV_200 = 0,  /* 200 OK with a body */
    SRV_500,      /* 500 */
    SRV_HANG,     /* read the request, never answer, keep the connection open */
    SRV_GARBAGE,  /* something that is not HTTP */
    SRV_CLOSE,    /* close right after the request */
    SRV_BIG_HEAD, /* a 200 whose head is ~8 KiB */
    SRV_INTERIM,  /* 100 Continue, then 204 */
    SRV_PARTIAL,  /* half a head, then close */
    SRV_RESET,    /* close with SO_LINGER 0 after the request: RST */
    SRV_SLOW,     /* 200, 300 ms after the request (the server thread sleeps) */
};

#define SRV_MAX_CONNS 32

struct srv_conn {
    int fd;
    bool got_head;
    size_t len;
    char buf[1024];
};

struct srv {
    int lfd;
    int stopfd;
    uint16_t port;
    pthread_t thread;
    _Atomic int mode;
    _Atomic int accepts;
    _Atomic int open_now; /* connections the peer has not closed yet */
    _Atomic int max_open;
    _Atomic uint64_t accept_ms[8]; /* when the first accepts happened */
    pthread_mutex_t mu;
    char last_req[1024]; /* the last request head received, under mu */
    int nconns;
    struct srv_conn conns[SRV_MAX_CONNS];
};

static void send_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                poll(&p, 1, 1000);
                continue;
            }
            return;
        }
        s += n;
        len -= (size_t)n;
    }
}

static void srv_close_conn(struct srv *s, int i)
{
    close(s->conns[i].fd);
    s->conns[i] = s->conns[--s->nconns];
    atomic_fetch_sub(&s->open_now, 1);
}

static void srv_answer(struct srv *s, struct srv_conn *c)
{
    static const char ok[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    static const char err[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
    static const char garbage[] = "SSH-2.0-OpenSSH_9.6\r\n\r\n";
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    switch (atomic_load(&s->mode)) {
    case SRV_SLOW:
        usleep(300 * 1000);
        /* fall through */
    case SRV_200:
        send_all(c->fd, ok, sizeof(ok) - 1);
        break;
    case SRV_500:
        send_all(c->fd, err, sizeof(err) - 1);
        break;
    case SRV_GARBAGE:
        send_all(c->fd, garbage, sizeof(garbage) - 1);
        break;
    case SRV_INTERIM:
        send_all(c->fd, interim, sizeof(interim) - 1);
        break;
    case SRV_BIG_HEAD: {
        char head[9000];
        size_t n = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 100; i++)
            n += (size_t)snprintf(head + n, sizeof(head) - n, "X-Filler-%03d: %060d\r\n", i, i);
        n += (size_t)snprintf(head + n, sizeof(head) - n, "Content-Length: 0\r\n\r\n");
        send_all(c->fd, head, n);
        break;
    }
    case SRV_PARTIAL:
        send_all(c->fd, "HTTP/1.1 200 OK\r\nContent-Le", 27);
        break;
    case SRV_RESET: {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        break;
    }
    case SRV_CLOSE:
    case SRV_HANG:
        break;
    }
}

/* Reads what the peer sent. Returns false when the connection is gone (closed here). */
static bool srv_read(struct srv *s, int i)
{
    struct srv_conn *c = &s->conns[i];
    for (;;) {
        char tmp[512];
        ssize_t n = read(c->fd, tmp, sizeof(tmp));
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return true;
        if (n <= 0) {
            srv_close_conn(s, i);
            return false;
        }
        if (c->got_head)
            continue; /* drain */
        size_t take = MIN((size_t)n, sizeof(c->buf) - 1 - c->len);
        memcpy(c->buf + c->len, tmp, take);
        c->len += take;
        c->buf[c->len] = '\0';
        if (!strstr(c->buf, "\r\n\r\n"))
            continue;
        c->got_head = true;
        pthread_mutex_lock(&s->mu);
        memcpy(s->last_req, c->buf, c->len + 1);
        pthread_mutex_unlock(&s->mu);
        int mode = atomic_load(&s->mode);
        if (mode == SRV_HANG)
            continue;
        srv_answer(s, c);
        srv_close_conn(s, i);
        return false;
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    for (;;) {
        struct pollfd p[2 + SRV_MAX_CONNS];
        p[0] = (struct pollfd){.fd = s->stopfd, .events = POLLIN};
        p[1] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        int n = s->nconns;
        for (int i = 0; i < n; i++)
            p[2 + i] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
        if (poll(p, (nfds_t)(2 + n), -1) == -1)
            continue;
        if (p[0].revents)
            break;
        /* Every connection first, so a check the peer closed is counted out before the next one
         * is counted in (the peer closes its previous socket before it connects again). */
        for (int i = s->nconns - 1; i >= 0; i--)
            srv_read(s, i);
        if (!p[1].revents)
            continue;
        for (;;) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd == -1)
                break;
            if (s->nconns == SRV_MAX_CONNS) {
                close(fd);
                continue;
            }
            int k = atomic_fetch_add(&s->accepts, 1);
            if (k < (int)ARRAY_LEN(s->accept_ms))
                atomic_store(&s->accept_ms[k], util_now_ms());
            int open = atomic_fetch_add(&s->open_now, 1) + 1;
            if (open > atomic_load(&s->max_open))
                atomic_store(&s->max_open, open);
            s->conns[s->nconns++] = (struct srv_conn){.fd = fd};
            srv_read(s, s->nconns - 1);
        }
    }
    while (s->nconns > 0)
        srv_close_conn(s, s->nconns - 1);
    return NULL;
}

static int loopback_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_neq(fd, -1);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static struct srv *srv_start(enum srv_mode mode)
{
    struct srv *s = calloc(1, sizeof(*s));
    cr_assert(s);
    s->lfd = loopback_socket(&s->port);
    cr_assert_eq(listen(s->lfd, 64), 0);
    s->stopfd = eventfd(0, EFD_CLOEXEC);
    cr_assert_neq(s->stopfd, -1);
    atomic_init(&s->mode, mode);
    pthread_mutex_init(&s->mu, NULL);
    cr_assert_eq(pthread_create(&s->thread, NULL, srv_main, s), 0);
    return s;
}

static void srv_stop(struct srv *s)
{
    uint64_t one = 1;
    cr_assert_eq(write(s->stopfd, &one, sizeof(one)), (ssize_t)sizeof(one));
    pthread_join(s->thread, NULL);
    close(s->lfd);
    close(s->stopfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- a hand-built config: backends on 127.0.0.1 ---- */

#define MAX_BACKENDS 12

struct fixture {
    struct config cfg;
    struct config_backend be[MAX_BACKENDS];
    char names[MAX_BACKENDS][32];
    struct backend_table *table;
    struct health *h;
};

static void fx_init(struct fixture *fx, uint32_t timeout_ms, uint32_t period_ms)
{
    memset(fx, 0, sizeof(*fx));
    fx->cfg.health_check_timeout_ms = timeout_ms;
    fx->cfg.health_check_period_ms = period_ms;
    fx->cfg.backends = fx->be;
}

static int fx_add(struct fixture *fx, uint16_t port)
{
    int i = fx->cfg.nbackends++;
    cr_assert_lt(i, MAX_BACKENDS);
    struct config_backend *b = &fx->be[i];
    snprintf(fx->names[i], sizeof(fx->names[i]), "127.0.0.1:%u", (unsigned)port);
    b->name = fx->names[i];
    b->host = (char *)"127.0.0.1";
    b->port = port;
    b->health_path = (char *)"/health";
    struct sockaddr_in *sin = (struct sockaddr_in *)&b->addr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    b->addrlen = sizeof(*sin);
    return i;
}

static void fx_new(struct fixture *fx)
{
    fx->table = backend_table_new(&fx->cfg, NULL, 1);
    cr_assert(fx->table);
    fx->h = health_new(fx->table, &fx->cfg);
    cr_assert(fx->h);
}

static void fx_free(struct fixture *fx)
{
    health_free(fx->h);
    backend_table_free(fx->table);
}

static int state_of(struct fixture *fx, int i)
{
    return atomic_load(&fx->table->b[i]->state);
}

/* Polls `cond` every few ms until it holds or DEADLINE_MS passes. */
#define WAIT_UNTIL(cond)                                                                           \
    ({                                                                                             \
        uint64_t until_ = util_now_ms() + DEADLINE_MS;                                             \
        bool ok_;                                                                                  \
        while (!(ok_ = (cond)) && util_now_ms() < until_)                                          \
            usleep(5000);                                                                          \
        ok_;                                                                                       \
    })

static void assert_logged(const struct capture *c, const struct fixture *fx, int i,
                          const char *state, const char *reason)
{
    char want[256];
    snprintf(want, sizeof(want), "backend %s is %s (was UNKNOWN): %s\n", fx->names[i], state,
             reason);
    cr_assert(strstr(c->text, want), "log lacks \"%s\"", want);
}

/* ---- real checks ---- */

Test(health, first_round_sets_every_state_before_start_returns, .timeout = 60)
{
    struct srv *ok = srv_start(SRV_200), *err = srv_start(SRV_500), *hang = srv_start(SRV_HANG);
    struct srv *garbage = srv_start(SRV_GARBAGE), *closing = srv_start(SRV_CLOSE);
    struct srv *big = srv_start(SRV_BIG_HEAD), *interim = srv_start(SRV_INTERIM);
    struct srv *partial = srv_start(SRV_PARTIAL), *reset = srv_start(SRV_RESET);
    uint16_t refused_port;
    int refused_fd = loopback_socket(&refused_port); /* bound, never listening: RST */

    struct fixture fx;
    fx_init(&fx, 300, 60000);
    int i_ok = fx_add(&fx, ok->port), i_err = fx_add(&fx, err->port);
    int i_hang = fx_add(&fx, hang->port), i_garbage = fx_add(&fx, garbage->port);
    int i_closing = fx_add(&fx, closing->port), i_big = fx_add(&fx, big->port);
    int i_interim = fx_add(&fx, interim->port), i_refused = fx_add(&fx, refused_port);
    int i_partial = fx_add(&fx, partial->port), i_reset = fx_add(&fx, reset->port);
    fx_new(&fx);
    for (int i = 0; i < fx.table->n; i++)
        cr_assert_eq(state_of(&fx, i), BACKEND_UNKNOWN);

    struct capture cap;
    capture_begin(&cap);
    int rc = health_start(fx.h);
    int st[MAX_BACKENDS];
    for (int i = 0; i < fx.table->n; i++)
        st[i] = state_of(&fx, i);
    health_stop(fx.h);
    capture_end(&cap);
    fputs(cap.text, stderr); /* keep the log visible in the test's output */

    cr_assert_eq(rc, 0);
    cr_assert_eq(st[i_ok], BACKEND_UP);
    cr_assert_eq(st[i_err], BACKEND_DOWN);
    cr_assert_eq(st[i_hang], BACKEND_DOWN);
    cr_assert_eq(st[i_garbage], BACKEND_DOWN);
    cr_assert_eq(st[i_closing], BACKEND_DOWN);
    cr_assert_eq(st[i_big], BACKEND_DOWN);
    cr_assert_eq(st[i_interim], BACKEND_UP);
    cr_assert_eq(st[i_refused], BACKEND_DOWN);
    cr_assert_eq(st[i_partial], BACKEND_DOWN);
    cr_assert_eq(st[i_reset], BACKEND_DOWN);

    assert_logged(&cap, &fx, i_ok, "UP", "HTTP 200");
    assert_logged(&cap, &fx, i_err, "DOWN", "HTTP 500");
    assert_logged(&cap, &fx, i_hang, "DOWN", "timed out after 300 ms");
    assert_logged(&cap, &fx, i_garbage, "DOWN", "invalid response");
    assert_logged(&cap, &fx, i_closing, "DOWN", "connection closed before response");
    assert_logged(&cap, &fx, i_big, "DOWN", "response head too large");
    assert_logged(&cap, &fx, i_interim, "UP", "HTTP 204");
    assert_logged(&cap, &fx, i_refused, "DOWN", "connection refused");
    assert_logged(&cap, &fx, i_partial, "DOWN",
                  "connection closed before the end of the response head");
    assert_logged(&cap, &fx, i_reset, "DOWN", "connection reset");

    /* The request, byte for byte. */
    char want[256];
    snprintf(want, sizeof(want),
             "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: golb-health\r\n"
             "Connection: close\r\n\r\n",
             (unsigned)ok->port);
    pthread_mutex_lock(&ok->mu);
    cr_assert_str_eq(ok->last_req, want);
    pthread_mutex_unlock(&ok->mu);

    fx_free(&fx);
    close(refused_fd);
    srv_stop(ok), srv_stop(err), srv_stop(hang), srv_stop(garbage);
    srv_stop(closing), srv_stop(big), srv_stop(interim), srv_stop(partial), srv_stop(reset);
    capture_free(&cap);
}

Test(health, checks_run_concurrently, .timeout = 60)
{
    /* Four backends that never answer: run one after the other, the first round would take
     * four timeouts; concurrently it takes one. */
    struct srv *s[4];
    struct fixture fx;
    fx_init(&fx, 1000, 60000);
    for (int i = 0; i < 4; i++) {
        s[i] = srv_start(SRV_HANG);
        fx_add(&fx, s[i]->port);
    }
    fx_new(&fx);
    uint64_t t0 = util_now_ms();
    cr_assert_eq(health_start(fx.h), 0);
    uint64_t took = util_now_ms() - t0;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(state_of(&fx, i), BACKEND_DOWN);
    cr_assert_geq(took, 900, "first round took %llu ms, less than the timeout",
                  (unsigned long long)took);
    cr_assert_lt(took, 3500, "first round took %llu ms: checks ran one after the other?",
                 (unsigned long long)took);
    fx_free(&fx);
    for (int i = 0; i < 4; i++)
        srv_stop(s[i]);
}

Test(health, state_follows_the_backend_each_period, .timeout = 60)
{
    struct srv *s = srv_start(SRV_200);
    struct fixture fx;
    fx_init(&fx, 1000, 100);
    fx_add(&fx, s->port);
    fx_new(&fx);
    cr_assert_eq(health_start(fx.h), 0);
    cr_assert_eq(state_of(&fx, 0), BACKEND_UP);

    atomic_store(&s->mode, SRV_500);
    cr_assert(WAIT_UNTIL(state_of(&fx, 0) == BACKEND_DOWN), "never seen DOWN after HTTP 500");
    atomic_store(&s->mode, SRV_200);
    cr_assert(WAIT_UNTIL(state_of(&fx, 0) == BACKEND_UP), "never seen UP again after HTTP 200");
    atomic_store(&s->mode, SRV_HANG);
    cr_assert(WAIT_UNTIL(state_of(&fx, 0) == BACKEND_DOWN), "never seen DOWN after a timeout");

    int accepts = atomic_load(&s->accepts);
    cr_assert_geq(accepts, 4);
    fx_free(&fx);
    srv_stop(s);
}

Test(health, thresholds_count_consecutive_results, .timeout = 60)
{
    struct srv *s = srv_start(SRV_200);
    struct fixture fx;
    fx_init(&fx, 1000, 100);
    fx.cfg.healthy_threshold = 3;
    fx.cfg.unhealthy_threshold = 4;
    fx_add(&fx, s->port);
    fx_new(&fx);
    struct capture cap;
    capture_begin(&cap);
    cr_assert_eq(health_start(fx.h), 0);
    cr_assert_eq(state_of(&fx, 0), BACKEND_UP, "the first round decides at once");

    /* a check already running when the mode changes may count: one fewer accept than results */
    int a0 = atomic_load(&s->accepts);
    atomic_store(&s->mode, SRV_500);
    cr_assert(WAIT_UNTIL(state_of(&fx, 0) == BACKEND_DOWN), "never seen DOWN after HTTP 500");
    int fails = atomic_load(&s->accepts) - a0;
    a0 = atomic_load(&s->accepts);
    atomic_store(&s->mode, SRV_200);
    cr_assert(WAIT_UNTIL(state_of(&fx, 0) == BACKEND_UP), "never seen UP again after HTTP 200");
    int passes = atomic_load(&s->accepts) - a0;
    /* passive DOWN (maxFails) while checks pass: passing checks count from there */
    backend_set_state(fx.table->b[0], BACKEND_DOWN, "3 consecutive failures");
    a0 = atomic_load(&s->accepts);
    cr_assert(WAIT_UNTIL(state_of(&fx, 0) == BACKEND_UP), "never seen UP after a passive DOWN");
    int after_passive = atomic_load(&s->accepts) - a0;
    health_stop(fx.h);
    capture_end(&cap);
    fputs(cap.text, stderr);
    cr_expect_geq(fails, 3, "DOWN after %d failing checks", fails);
    cr_expect_geq(passes, 2, "UP after %d passing checks", passes);
    cr_expect_geq(after_passive, 2, "UP %d checks after a passive DOWN", after_passive);
    cr_expect(strstr(cap.text, "4/4 checks failed, last: HTTP 500"), "%s", cap.text);
    cr_expect(strstr(cap.text, "3/3 checks passed, last: HTTP 200"), "%s", cap.text);
    capture_free(&cap);
    fx_free(&fx);
    srv_stop(s);
}

Test(health, a_hung_check_is_never_doubled, .timeout = 60)
{
    /* Period 50 ms, timeout 500 ms: nine rounds in ten find the check still running. */
    struct srv *s = srv_start(SRV_HANG);
    struct fixture fx;
    fx_init(&fx, 500, 50);
    fx_add(&fx, s->port);
    fx_new(&fx);
    cr_assert_eq(health_start(fx.h), 0);
    cr_assert_eq(state_of(&fx, 0), BACKEND_DOWN);
    cr_assert(WAIT_UNTIL(atomic_load(&s->accepts) >= 3), "fewer than 3 checks in 5 s");
    health_stop(fx.h);

    cr_assert_eq(atomic_load(&s->max_open), 1, "%d checks of one backend ran at once",
                 atomic_load(&s->max_open));
    /* Each check waits out its timeout before the next may start. */
    uint64_t first = atomic_load(&s->accept_ms[0]), third = atomic_load(&s->accept_ms[2]);
    cr_assert_geq(third - first, 900, "3 checks within %llu ms",
                  (unsigned long long)(third - first));
    fx_free(&fx);
    srv_stop(s);
}

Test(health, periodic_rounds_keep_a_steady_cadence, .timeout = 60)
{
    /* Each check takes its whole 350 ms timeout; the period is 400 ms. On a steady cadence the
     * checks start 400 ms apart (6 periods: 2400 ms); a schedule drifting by the checks' duration
     * would put them 750 ms apart (4150 ms). The bound in between leaves 800 ms of slack for a
     * loaded machine. */
    struct srv *s = srv_start(SRV_HANG);
    struct fixture fx;
    fx_init(&fx, 350, 400);
    fx_add(&fx, s->port);
    fx_new(&fx);
    cr_assert_eq(health_start(fx.h), 0);
    cr_assert(WAIT_UNTIL(atomic_load(&s->accepts) >= 7));
    health_stop(fx.h);
    uint64_t span = atomic_load(&s->accept_ms[6]) - atomic_load(&s->accept_ms[0]);
    cr_assert_geq(span, 6 * 400 - 50, "6 periods in %llu ms", (unsigned long long)span);
    cr_assert_lt(span, 6 * 400 + 800, "6 periods in %llu ms: the cadence drifts",
                 (unsigned long long)span);
    fx_free(&fx);
    srv_stop(s);
}

Test(health, stop_abandons_checks_in_flight_without_leaks, .timeout = 60)
{
    struct srv *s = srv_start(SRV_200);
    int fds_before = count_fds();
    struct fixture fx;
    fx_init(&fx, 30000, 50);
    fx_add(&fx, s->port);
    fx_new(&fx);
    cr_assert_eq(health_start(fx.h), 0);
    cr_assert_eq(state_of(&fx, 0), BACKEND_UP);

    atomic_store(&s->mode, SRV_HANG);
    cr_assert(WAIT_UNTIL(atomic_load(&s->open_now) == 1), "no check hung on the server");
    health_stop(fx.h);
    health_stop(fx.h); /* twice is harmless */
    /* the hung check's socket was closed by the stop, not left for its 30 s timeout */
    cr_assert(WAIT_UNTIL(atomic_load(&s->open_now) == 0));
    cr_assert_eq(state_of(&fx, 0), BACKEND_UP, "an abandoned check must publish nothing");
    fx_free(&fx);
    cr_assert_eq(count_fds(), fds_before, "fd leak");
    srv_stop(s);
}

Test(health, new_and_free_without_start)
{
    struct fixture fx;
    fx_init(&fx, 100, 100);
    fx_add(&fx, 1);
    fx_new(&fx);
    health_stop(fx.h);
    cr_assert_eq(state_of(&fx, 0), BACKEND_UNKNOWN);
    fx_free(&fx);
    health_free(NULL);
}

Test(health, no_backends)
{
    struct fixture fx;
    fx_init(&fx, 100, 100);
    fx_new(&fx);
    cr_assert_eq(health_start(fx.h), 0);
    health_stop(fx.h);
    fx_free(&fx);
}

/* ---- a reload's checker: started held, then handed over ---- */

/* fx's table built from its config with the backends of `prev` taken over by identity (a
 * reload's generation), and its checker. */
static void fx_new_after(struct fixture *fx, struct fixture *prev)
{
    fx->table = backend_table_new(&fx->cfg, prev->table, 1);
    cr_assert(fx->table);
    fx->h = health_new(fx->table, &fx->cfg);
    cr_assert(fx->h);
}

Test(health, a_reload_checker_checks_new_backends_and_waits_for_the_hand_over, .timeout = 60)
{
    struct srv *kept = srv_start(SRV_200), *added = srv_start(SRV_200);
    struct fixture run, next;
    fx_init(&run, 1000, 100);
    fx_add(&run, kept->port);
    fx_new(&run);
    cr_assert_eq(health_start(run.h), 0);
    fx_init(&next, 1000, 100);
    fx_add(&next, kept->port);
    fx_add(&next, added->port);
    fx_new_after(&next, &run);
    cr_assert_eq(next.table->b[0], run.table->b[0], "the kept backend is one object");

    int kept0 = atomic_load(&kept->accepts);
    cr_assert_eq(health_start_held(next.h, run.h), 0);
    cr_expect_eq(state_of(&next, 1), BACKEND_UP, "the new backend is checked before it returns");
    cr_expect_eq(atomic_load(&added->accepts), 1);
    /* held: five periods pass without a round of its own, the running checker goes on */
    cr_assert(WAIT_UNTIL(atomic_load(&kept->accepts) >= kept0 + 5), "the running checker stopped");
    cr_expect_eq(atomic_load(&added->accepts), 1, "a held checker runs no round");

    health_take_over(next.h, run.h);
    cr_assert(WAIT_UNTIL(atomic_load(&added->accepts) >= 3), "no round after the hand-over");
    int kept1 = atomic_load(&kept->accepts);
    cr_assert(WAIT_UNTIL(atomic_load(&kept->accepts) >= kept1 + 3), "the kept backend unchecked");
    cr_expect_eq(atomic_load(&kept->max_open), 1, "never two checks of one backend at once");
    health_stop(next.h);
    health_free(run.h); /* stopped by the hand-over */
    run.h = NULL;
    health_free(next.h);
    next.h = NULL;
    backend_table_free(run.table);
    backend_table_free(next.table);
    srv_stop(kept);
    srv_stop(added);
}

Test(health, a_held_checker_that_never_takes_over_ends_without_a_round, .timeout = 60)
{
    struct srv *s = srv_start(SRV_200);
    int fds = count_fds();
    struct fixture run, next;
    fx_init(&run, 1000, 60000);
    fx_new(&run); /* no backends: nothing to see, only to hand over from */
    cr_assert_eq(health_start(run.h), 0);
    fx_init(&next, 1000, 50);
    fx_add(&next, s->port);
    fx_new_after(&next, &run);
    cr_assert_eq(health_start_held(next.h, run.h), 0);
    cr_assert_eq(atomic_load(&s->accepts), 1);
    usleep(200 * 1000); /* four periods it must not use */
    health_free(next.h); /* the reload failed after it: joined at once, no deadlock */
    next.h = NULL;
    cr_expect_eq(atomic_load(&s->accepts), 1, "a cancelled checker runs no round");
    fx_free(&next);
    fx_free(&run);
    cr_expect_eq(count_fds(), fds, "fd leak");
    srv_stop(s);
}

Test(health, a_failed_start_leaves_the_running_checker_alone, .timeout = 60)
{
    struct srv *kept = srv_start(SRV_200), *added = srv_start(SRV_200);
    struct fixture run, next;
    fx_init(&run, 1000, 100);
    fx_add(&run, kept->port);
    fx_new(&run);
    cr_assert_eq(health_start(run.h), 0);
    fx_init(&next, 1000, 100);
    fx_add(&next, kept->port);
    fx_add(&next, added->port);
    fx_new_after(&next, &run);
    atomic_store(&health_inject_start_error, -EAGAIN);
    cr_assert_eq(health_start_held(next.h, run.h), -EAGAIN);
    cr_expect_eq(atomic_load(&health_inject_start_error), 0, "injected once");
    health_free(next.h);
    next.h = NULL;
    int k = atomic_load(&kept->accepts);
    cr_assert(WAIT_UNTIL(atomic_load(&kept->accepts) >= k + 3), "the running checker stopped");
    cr_expect_eq(atomic_load(&added->accepts), 0);
    fx_free(&next);
    fx_free(&run);
    srv_stop(kept);
    srv_stop(added);
}

/* ---- several pools: one check per URL ---- */

/* The checker of fixtures a and b as two pools. */
static struct health *pools_new(struct fixture *a, struct fixture *b)
{
    a->table = backend_table_new_pool(&a->cfg, "default", NULL, 1);
    b->table = backend_table_new_pool(&b->cfg, "api", NULL, 1);
    cr_assert(a->table && b->table);
    struct health_pool hp[2] = {{a->table, &a->cfg}, {b->table, &b->cfg}};
    struct health *h = health_new_pools(hp, 2);
    cr_assert(h);
    return h;
}

/* The same URL in two pools is two backends, each told every result, but one request per period
 * reaches the server: as many as reach a URL only one pool lists. */
Test(health, a_url_two_pools_list_is_checked_once_per_period, .timeout = 60)
{
    struct srv *shared = srv_start(SRV_200), *own = srv_start(SRV_200);
    struct fixture a, b;
    fx_init(&a, 1000, 100);
    fx_init(&b, 1000, 100);
    fx_add(&a, shared->port);
    fx_add(&b, own->port);
    fx_add(&b, shared->port);
    struct health *h = pools_new(&a, &b);
    cr_expect_eq(health_check_count(h), 2, "three backends, two URLs");
    cr_assert_eq(health_start(h), 0);
    cr_expect_eq(atomic_load(&shared->accepts), 1, "the first round: one request for both");
    cr_expect_eq(state_of(&a, 0), BACKEND_UP);
    cr_expect_eq(state_of(&b, 1), BACKEND_UP);
    cr_expect_neq(a.table->b[0], b.table->b[1], "two objects");
    cr_assert(WAIT_UNTIL(atomic_load(&own->accepts) >= 10), "no rounds");
    health_stop(h);
    int s = atomic_load(&shared->accepts), o = atomic_load(&own->accepts);
    cr_expect_leq(abs(s - o), 1, "shared URL %d requests, own URL %d: once per period", s, o);
    struct backend_check ca, cb;
    cr_assert(backend_check_read(a.table->b[0], &ca) && backend_check_read(b.table->b[1], &cb));
    cr_expect_eq(atomic_load(&ca.ok), (uint64_t)s, "each holder is told every result");
    cr_expect_eq(atomic_load(&cb.ok), (uint64_t)s);
    cr_expect_eq(atomic_load(&shared->max_open), 1, "never two checks of the URL at once");
    health_free(h);
    fx_free(&a);
    fx_free(&b);
    srv_stop(shared);
    srv_stop(own);
}

/* One result, each pool's thresholds: default (fall 1) goes DOWN at the first failure, api
 * (fall 3) after the third; an operator's maintenance in one pool keeps the other checked. */
Test(health, each_pool_judges_a_shared_check_by_its_own_thresholds, .timeout = 60)
{
    struct srv *s = srv_start(SRV_200);
    struct fixture a, b;
    fx_init(&a, 1000, 100);
    fx_init(&b, 1000, 100);
    b.cfg.unhealthy_threshold = 3;
    fx_add(&a, s->port);
    fx_add(&b, s->port);
    struct health *h = pools_new(&a, &b);
    struct capture cap;
    capture_begin(&cap);
    cr_assert_eq(health_start(h), 0);
    atomic_store(&s->mode, SRV_500);
    bool a_down = WAIT_UNTIL(state_of(&a, 0) == BACKEND_DOWN);
    int api_when_default_down = state_of(&b, 0);
    bool b_down = WAIT_UNTIL(state_of(&b, 0) == BACKEND_DOWN);
    /* maintenance in default: api's backend is still checked (and comes back) */
    backend_set_admin(a.table->b[0], BACKEND_ADMIN_MAINT, "test");
    atomic_store(&s->mode, SRV_200);
    bool b_up = WAIT_UNTIL(state_of(&b, 0) == BACKEND_UP);
    health_stop(h);
    capture_end(&cap);
    cr_expect(a_down && b_down && b_up, "%s", cap.text);
    cr_expect_eq(api_when_default_down, BACKEND_UP, "api's backend waits for its third failure");
    cr_expect_eq(state_of(&a, 0), BACKEND_DOWN, "maintenance: no result published");
    cr_expect(strstr(cap.text, "backend api/127.0.0.1:"), "log lines name the pool: %s", cap.text);
    cr_expect(strstr(cap.text, "3/3 checks failed, last: HTTP 500"), "%s", cap.text);
    capture_free(&cap);
    health_free(h);
    fx_free(&a);
    fx_free(&b);
    srv_stop(s);
}

/* Timeouts meet at the longest: the check waits for the slow answer (300 ms), which is a timeout
 * for the pool that allows 100 ms and a success for the one that allows 1 s. */
Test(health, each_pool_judges_a_shared_check_by_its_own_timeout, .timeout = 60)
{
    struct srv *s = srv_start(SRV_SLOW);
    struct fixture a, b;
    fx_init(&a, 100, 60000);
    fx_init(&b, 1000, 60000);
    fx_add(&a, s->port);
    fx_add(&b, s->port);
    struct health *h = pools_new(&a, &b);
    struct capture cap;
    capture_begin(&cap);
    cr_assert_eq(health_start(h), 0);
    health_stop(h);
    capture_end(&cap);
    cr_expect_eq(atomic_load(&s->accepts), 1);
    cr_expect_eq(state_of(&a, 0), BACKEND_DOWN, "%s", cap.text);
    cr_expect_eq(state_of(&b, 0), BACKEND_UP, "%s", cap.text);
    struct backend_check c;
    cr_assert(backend_check_read(a.table->b[0], &c));
    cr_expect_str_eq(c.reason, "timed out after 100 ms");
    capture_free(&cap);
    health_free(h);
    fx_free(&a);
    fx_free(&b);
    srv_stop(s);
}

/* A reload adds a pool listing a URL the running checker already checks for another pool: the
 * new checker's first round checks it for the new backend only (the running one's streaks and
 * records are its own until the hand-over). */
Test(health, a_reload_checks_a_new_pools_backend_and_leaves_the_running_ones, .timeout = 60)
{
    struct srv *s = srv_start(SRV_200);
    struct fixture run, a, b;
    fx_init(&run, 1000, 60000);
    fx_add(&run, s->port);
    run.table = backend_table_new(&run.cfg, NULL, 1);
    run.h = health_new(run.table, &run.cfg);
    cr_assert(run.table && run.h);
    cr_assert_eq(health_start(run.h), 0);
    fx_init(&a, 1000, 60000);
    fx_init(&b, 1000, 60000);
    fx_add(&a, s->port);
    fx_add(&b, s->port);
    a.table = backend_table_new_pool(&a.cfg, "default", run.table, 1); /* default: kept */
    b.table = backend_table_new_pool(&b.cfg, "api", NULL, 1);         /* api: new */
    cr_assert(a.table && b.table);
    cr_assert_eq(a.table->b[0], run.table->b[0]);
    struct health_pool hp[2] = {{a.table, &a.cfg}, {b.table, &b.cfg}};
    struct health *next = health_new_pools(hp, 2);
    cr_assert(next);
    cr_assert_eq(health_start_held(next, run.h), 0);
    cr_expect_eq(atomic_load(&s->accepts), 2, "start-up, then the new pool's backend");
    cr_expect_eq(state_of(&b, 0), BACKEND_UP);
    struct backend_check c;
    cr_assert(backend_check_read(a.table->b[0], &c));
    cr_expect_eq(atomic_load(&c.ok), 1, "the running checker's backend was not told");
    health_take_over(next, run.h);
    health_free(next);
    health_free(run.h);
    run.h = a.h = b.h = NULL;
    fx_free(&a);
    fx_free(&b);
    fx_free(&run);
    srv_stop(s);
}
