/* health — see health.h for the contract.
 *
 * One `struct check` per distinct URL lives for the whole life of the checker, with the backends
 * it reports to (its holders: one per pool that lists the URL, each with its pool's thresholds
 * and timeout). A check is one request and one pass through its state machine, from CHECK_IDLE
 * back to CHECK_IDLE; its result goes to every holder:
 *
 *   pools:  default [b0 http://a:1/h]   api [b1 http://a:1/h, b2 http://c:3/h]
 *   checks: check{a:1/h} ─► holders b0 (default's rise/fall), b1 (api's)   check{c:3/h} ─► b2
 *
 *   IDLE ──start──► CONNECTING ──EPOLLOUT, SO_ERROR 0──► SENDING ──request written──► READING
 *     ▲                 │                                   │                          │
 *     └─────────────────┴──── check_finish(ok, reason) ◄────┴── head parsed / error ────┘
 *                                  ▲
 *                                  └── timeout timer (armed at start, one per check)
 *
 * check_finish() is the one exit: it cancels the timer, unregisters and closes the socket, and
 * publishes the result to each holder. Check objects are never freed by a callback (house rule
 * 8): they are owned by `struct health` and released by health_free() once the loop thread is
 * joined. An event for a
 * check that has already finished in the same batch finds it IDLE and is ignored; a new check can
 * only start from a timer callback, after the batch, so an fd number reused by it never receives
 * an event meant for the old one (epoll_ctl DEL happens before close()).
 *
 * Threads: health_start() runs the first round on the caller's thread with the checker's loop,
 * then hands the loop to the checker thread (pthread_create orders the two). From then on every
 * field below is touched by the checker thread only, until health_stop() has joined it. The only
 * shared state is each backend's atomic state, written through backend_set_state(); its streaks
 * are the one checker's (two holders of one check are two backends, each with its own streaks),
 * which is why a reload's checker (health_start_held) waits on `go` before its first round until
 * the running one is joined (health_take_over):
 *
 *   control: first round (new backends) ─► thread made, held ─► old checker joined ─► post(go)
 *   checker:                               sem_wait(go) ..................................► rounds
 */
#include "upstream/health.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream/backend.h"
#include "config/config.h"
#include "net/conn.h"
#include "net/proxy_proto.h"
#include "http/http1.h"
#include "upstream/health_h2.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/sock.h"
#include "base/util.h"

_Atomic int health_inject_start_error;

/* The response head must fit here: a health answer is a status line and a few fields. */
#define HEALTH_BUF_SIZE 4096

enum check_state {
    CHECK_IDLE = 0,
    CHECK_CONNECTING,
    CHECK_HANDSHAKE, /* https backends: TLS, verified like live traffic */
    CHECK_SENDING,
    CHECK_READING,
};

/* The read buffer of one check:
 *
 *   buf                                   buf + len                 buf + HEALTH_BUF_SIZE
 *   |<── response bytes received so far ──>|<──────── free ─────────>|
 *
 * Interim 1xx heads are cut off the front once parsed; a final head that does not fit in the
 * whole buffer makes the check fail ("response head too large"). */
/* A backend a check reports to, with its pool's settings. */
struct holder {
    struct backend *b;
    uint32_t rise, fall;  /* its pool's healthyThreshold, unhealthyThreshold (0 taken as 1) */
    uint32_t timeout_ms;  /* its pool's healthCheckTimeout: a longer check is a timeout for it */
    bool report;          /* the running check's result goes to it (set when the check starts) */
};

/* The period of the checks is each one's own: every check keeps its next due time, and one timer
 * (period_timer) is armed for the earliest.
 *
 *   check a: ──x─────────x─────────x───   (period 5 s, the shortest of its pools')
 *   check c: ──x───x───x───x───x───x───   (period 2 s)
 *   timer:     ^   ^   ^ ^ ^   ^   ^        the earliest next_ms each time */
struct check {
    struct health *h;
    const struct config_backend *cb; /* the first holder's settings (request, address, TLS): the
                                        same for every holder, by the check's key */
    char *key;                       /* identity, health path, TLS settings: what makes it one */
    int nholders;
    struct holder *holders;
    uint32_t timeout_ms;  /* the longest of the holders' */
    uint32_t period_ms;   /* the shortest of the holders' periods */
    uint64_t next_ms;     /* loop clock: when its next check is due (steady cadence) */
    enum check_state state;
    struct loop_io io;       /* io.fd == -1 while idle */
    SSL *ssl;                /* https backends, during a check */
    struct loop_timer timer; /* the check's deadline, armed for its whole life */
    char *req;               /* the request, built once in health_new() (HTTP checks) */
    size_t req_len;
    struct health_h2 *h2;  /* a check over HTTP/2 (healthCheck grpc, or protocol h2): the
                              running check's session, else NULL */
    const uint8_t *h2req;  /* its request bytes (owned by h2) */
    size_t h2req_len;
    size_t sent;          /* bytes of req written by this check */
    size_t len;           /* bytes in buf */
    uint64_t started_ms;  /* loop clock at check_start, for the check's duration (metrics) */
    char buf[HEALTH_BUF_SIZE];
};

struct health {
    struct loop *loop;
    struct loop_timer period_timer; /* the earliest check due */
    int in_flight;       /* checks not yet finished */
    bool first_round;    /* health_start() is waiting for the current round on its own thread */
    bool thread_started;
    /* A reload's checker (health_start_held): its thread waits on `go` until health_take_over()
     * (released) or health_stop() (cancelled, the thread ends without running a round). */
    bool held, released, cancelled;
    sem_t go;
    pthread_t thread;
    int n;
    struct check *checks; /* [n]: one per distinct URL */
    struct holder *holders; /* storage of every check's holders */
};

enum backend_state health_next_state(enum backend_state current, bool check_ok, uint32_t streak,
                                     uint32_t rise, uint32_t fall)
{
    /* Never checked: the first result decides at once, so a healthy backend gets traffic after
     * one check and a dead one is DOWN (not UNKNOWN) in every status report. */
    if (current != BACKEND_UP && current != BACKEND_DOWN)
        return check_ok ? BACKEND_UP : BACKEND_DOWN;
    if (check_ok)
        return current == BACKEND_DOWN && streak >= MAX(rise, 1u) ? BACKEND_UP : current;
    return current == BACKEND_UP && streak >= MAX(fall, 1u) ? BACKEND_DOWN : current;
}

/* Human-readable reason for a socket error (negative errno), e.g. "connection refused". */
static void errno_reason(char *out, size_t outlen, const char *what, int err)
{
    switch (-err) {
    case ECONNREFUSED:
        snprintf(out, outlen, "connection refused");
        return;
    case ECONNRESET:
    case EPIPE:
        snprintf(out, outlen, "connection reset");
        return;
    case ETIMEDOUT:
        snprintf(out, outlen, "connection timed out");
        return;
    case EHOSTUNREACH:
        snprintf(out, outlen, "host unreachable");
        return;
    case ENETUNREACH:
        snprintf(out, outlen, "network unreachable");
        return;
    default: {
        char msg[128];
        snprintf(out, outlen, "%s: %s", what, strerror_r(-err, msg, sizeof(msg)));
        return;
    }
    }
}

static void check_on_io(struct loop_io *io, uint32_t events);
static void check_on_timeout(struct loop_timer *t);

/* Releases the socket and timer of a running check without publishing anything. */
static void check_teardown(struct check *c)
{
    struct health *h = c->h;
    loop_timer_cancel(h->loop, &c->timer);
    tls_free(c->ssl, false);
    c->ssl = NULL;
    health_h2_free(c->h2);
    c->h2 = NULL;
    if (c->io.fd >= 0) {
        (void)loop_io_del(h->loop, &c->io);
        close(c->io.fd);
        c->io.fd = -1;
    }
    c->state = CHECK_IDLE;
    h->in_flight--;
}

/* One result for one holder: its streaks, its record, its state through the transition
 * function. `took`: how long the check ran; for a holder whose timeout is shorter than the
 * check's (another pool allows longer), longer than its own timeout is a timeout. */
static void holder_result(const struct check *c, struct holder *hd, bool ok, const char *reason,
                          uint32_t took)
{
    struct backend *b = hd->b;
    char tbuf[64];
    if (hd->timeout_ms < c->timeout_ms && took > hd->timeout_ms) {
        snprintf(tbuf, sizeof(tbuf), "timed out after %" PRIu32 " ms", hd->timeout_ms);
        ok = false;
        reason = tbuf;
    }
    uint32_t streak;
    if (ok) {
        streak = ++b->ok_streak;
        b->fail_streak = 0;
    } else {
        streak = ++b->fail_streak;
        b->ok_streak = 0;
    }
    enum backend_state cur = atomic_load_explicit(&b->state, memory_order_acquire);
    if (cur == BACKEND_DOWN && b->check_seen == BACKEND_UP && ok) {
        /* Taken out passively (maxFails) since the last check: passing checks count from now. */
        streak = b->ok_streak = 1;
    }
    enum backend_state next = health_next_state(cur, ok, streak, hd->rise, hd->fall);
    backend_check_done(b, ok, reason, took);
    if (next != cur) {
        uint32_t need = ok ? hd->rise : hd->fall;
        char why[200];
        if (need > 1 && cur != BACKEND_UNKNOWN) {
            snprintf(why, sizeof(why), "%u/%u checks %s, last: %s", streak, need,
                     ok ? "passed" : "failed", reason);
            reason = why;
        }
        backend_set_state(b, next, reason);
    }
    b->check_seen = next;
}

/* The one exit of a check: tears it down, then publishes the result to every holder it reports
 * to. Ends health_start()'s loop when this was the last check of the first round. */
static void check_finish(struct check *c, bool ok, const char *reason)
{
    struct health *h = c->h;
    check_teardown(c);
    log_debug("health: %s: %s", c->cb->name, reason);
    uint32_t took = (uint32_t)(loop_now(h->loop) - c->started_ms);
    for (int i = 0; i < c->nholders; i++)
        if (c->holders[i].report)
            holder_result(c, &c->holders[i], ok, reason, took);

    if (h->first_round && h->in_flight == 0)
        loop_stop(h->loop);
}

/* A check golb itself could not run (out of descriptors, socket memory or ports): says nothing
 * about the backend, so its state and streaks stay as they were. */
static void check_inconclusive(struct check *c, const char *reason)
{
    struct health *h = c->h;
    check_teardown(c);
    log_warn("health: %s: check not run: %s", c->cb->name, reason);
    if (h->first_round && h->in_flight == 0)
        loop_stop(h->loop);
}

/* Starts one check: non-blocking connect, deadline armed. Runs on the loop's thread, never from
 * an I/O callback (see the top comment). A connect that fails at once finishes the check here. */
static void check_start(struct check *c)
{
    struct health *h = c->h;
    const struct config_backend *cb = c->cb;
    char why[160];

    c->state = CHECK_CONNECTING;
    c->started_ms = loop_now(h->loop);
    c->sent = 0;
    c->len = 0;
    h->in_flight++;
    loop_timer_after(h->loop, &c->timer, c->timeout_ms);
    if ((cb->up.health_check == CONFIG_HC_GRPC || cb->up.protocol == CONFIG_PROTO_H2) &&
        !(c->h2 = health_h2_new(cb, &c->h2req, &c->h2req_len))) {
        check_inconclusive(c, "out of memory");
        return;
    }

    int fd = sock_connect((const struct sockaddr *)&cb->addr, cb->addrlen);
    if (fd < 0) {
        errno_reason(why, sizeof(why), "connect", fd);
        if (sock_error_is_local(fd))
            check_inconclusive(c, why);
        else
            check_finish(c, false, why);
        return;
    }
    c->io.fd = fd;
    int err = loop_io_add(h->loop, &c->io);
    if (err != 0) {
        close(fd);
        c->io.fd = -1;
        errno_reason(why, sizeof(why), "epoll_ctl", err);
        check_finish(c, false, why);
    }
}

/* sendProxyProtocol: a check is golb's own connection, so its header says so (v2 LOCAL, v1
 * UNKNOWN), first, before any TLS byte. False after finishing the check when it cannot go. */
static bool send_proxy_header(struct check *c)
{
    char hdr[PROXY_PROTO_V1_MAX];
    ssize_t n = c->cb->send_proxy_protocol == 1
                    ? proxy_proto_write_v1(hdr, sizeof(hdr), NULL, NULL)
                    : proxy_proto_write_v2(hdr, sizeof(hdr), NULL, NULL, NULL, 0, 0);
    ssize_t w = n < 0 ? -1 : send(c->io.fd, hdr, (size_t)n, MSG_NOSIGNAL);
    if (w != n) {
        check_finish(c, false, "cannot send the PROXY protocol header");
        return false;
    }
    return true;
}

/* Connect completed (or failed): EPOLLOUT or an error condition is the sign. */
static bool check_connecting(struct check *c, uint32_t events)
{
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return false;
    int err = sock_error(c->io.fd);
    if (err != 0) {
        char why[160];
        errno_reason(why, sizeof(why), "connect", err);
        check_finish(c, false, why);
        return false;
    }
    if (c->cb->send_proxy_protocol && !send_proxy_header(c))
        return false;
    c->state = c->cb->tls_client ? CHECK_HANDSHAKE : CHECK_SENDING;
    return true;
}

/* TLS handshake with the backend. True once done. */
static bool check_handshake(struct check *c)
{
    char why[256];
    if (!c->ssl) {
        c->ssl = tls_client_ssl(c->cb->tls_client, c->io.fd, NULL);
        if (c->ssl && c->h2 && !tls_client_offer_h2(c->ssl)) {
            tls_free(c->ssl, false);
            c->ssl = NULL;
        }
        if (!c->ssl) {
            check_finish(c, false, "cannot set up TLS");
            return false;
        }
    }
    bool want_write;
    int rc = tls_handshake(c->ssl, &want_write, why, sizeof(why));
    if (rc == -EAGAIN)
        return false;
    if (rc < 0) {
        check_finish(c, false, why);
        return false;
    }
    c->state = CHECK_SENDING;
    return true;
}

/* Writes what is left of the request. True once all of it is out. */
static bool check_sending(struct check *c)
{
    const char *req = c->h2 ? (const char *)c->h2req : c->req;
    size_t req_len = c->h2 ? c->h2req_len : c->req_len;
    while (c->sent < req_len) {
        ssize_t n = conn_send(c->io.fd, c->ssl, req + c->sent, req_len - c->sent);
        if (n < 0) {
            if (n == -EAGAIN)
                return false;
            char why[160];
            errno_reason(why, sizeof(why), "send", (int)n);
            check_finish(c, false, why);
            return false;
        }
        c->sent += (size_t)n;
    }
    c->state = CHECK_READING;
    return true;
}

/* Parses what is in buf. Returns true when the check finished (status known or invalid head). */
static bool check_parse(struct check *c, size_t prev_len)
{
    char why[64];
    for (;;) {
        struct http1_response resp;
        ssize_t r = http1_parse_response(c->buf, c->len, prev_len, 0, false, &resp);
        if (r == -EAGAIN) {
            if (c->len == sizeof(c->buf)) {
                check_finish(c, false, "response head too large");
                return true;
            }
            return false;
        }
        if (r < 0) {
            check_finish(c, false, "invalid response");
            return true;
        }
        if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
            /* Interim response (100 Continue, 103 Early Hints): the final one follows. */
            memmove(c->buf, c->buf + r, c->len - (size_t)r);
            c->len -= (size_t)r;
            prev_len = 0;
            continue;
        }
        snprintf(why, sizeof(why), "HTTP %d", resp.status);
        check_finish(c, resp.status >= 200 && resp.status < 300, why);
        return true;
    }
}

/* Over HTTP/2: n bytes read into buf go to the session. True when the check finished. */
static bool check_h2(struct check *c, size_t n)
{
    char why[200];
    const uint8_t *out;
    size_t out_len;
    enum health_h2_result r = health_h2_feed(c->h2, (const uint8_t *)c->buf, n, &out,
                                                 &out_len, why, sizeof(why));
    c->len = 0;
    if (r != HEALTH_H2_MORE) {
        check_finish(c, r == HEALTH_H2_UP, why);
        return true;
    }
    /* SETTINGS ACK, WINDOW_UPDATE: small, best effort (a full socket drops them; the answer
     * does not depend on them) */
    if (out_len)
        (void)conn_send(c->io.fd, c->ssl, (const char *)out, out_len);
    return false;
}

/* Reads until EAGAIN, the end of the head, or an error. */
static void check_reading(struct check *c)
{
    for (;;) {
        ssize_t n = conn_recv(c->io.fd, c->ssl, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n > 0 && c->h2) {
            if (check_h2(c, (size_t)n))
                return;
            continue;
        }
        if (n > 0) {
            size_t prev = c->len;
            c->len += (size_t)n;
            if (check_parse(c, prev))
                return;
            continue;
        }
        if (n == 0) {
            check_finish(c, false,
                         c->len ? "connection closed before the end of the response head"
                                : "connection closed before response");
            return;
        }
        if (n == -EAGAIN)
            return;
        char why[160];
        errno_reason(why, sizeof(why), "read", (int)n);
        check_finish(c, false, why);
        return;
    }
}

/* Edge-triggered: each event runs the machine as far as it can go; a step that cannot proceed
 * (EAGAIN) waits for the next edge, and reading is always attempted right after the request is
 * out, so an EPOLLIN that arrived while sending is not lost. */
static void check_on_io(struct loop_io *io, uint32_t events)
{
    struct check *c = container_of(io, struct check, io);
    switch (c->state) {
    case CHECK_IDLE:
        return; /* finished earlier in this batch */
    case CHECK_CONNECTING:
        if (!check_connecting(c, events))
            return;
        if (c->state == CHECK_SENDING)
            goto sending;
        /* fall through */
    case CHECK_HANDSHAKE:
        if (!check_handshake(c))
            return;
        /* fall through */
    case CHECK_SENDING:
    sending:
        if (!check_sending(c))
            return;
        /* fall through */
    case CHECK_READING:
        check_reading(c);
        return;
    }
}

static void check_on_timeout(struct loop_timer *t)
{
    struct check *c = container_of(t, struct check, timer);
    char why[64];
    snprintf(why, sizeof(why), "timed out after %" PRIu32 " ms", c->timeout_ms);
    check_finish(c, false, why);
}

/* True when h checks b (one of its holders). */
static bool checks_backend(const struct health *h, const struct backend *b)
{
    for (int i = 0; i < h->n; i++)
        for (int k = 0; k < h->checks[i].nholders; k++)
            if (h->checks[i].holders[k].b == b)
                return true;
    return false;
}

/* Starts check c unless none of its holders is to hear of it: those in maintenance are never
 * told (an operator took them out: not checked until set ready again); in a first round
 * (only_new) the check runs only for a never-checked holder and tells none that `skip`, the
 * running checker, checks (their streaks are its own until the hand-over). */
static void check_maybe_start(struct check *c, bool only_new, const struct health *skip)
{
    bool wanted = false, any = false;
    for (int i = 0; i < c->nholders; i++) {
        struct holder *hd = &c->holders[i];
        hd->report = backend_admin(hd->b) != BACKEND_ADMIN_MAINT &&
                     !(only_new && skip && checks_backend(skip, hd->b));
        any |= hd->report;
        if (hd->report && (!only_new || atomic_load_explicit(&hd->b->state, memory_order_relaxed) ==
                                            BACKEND_UNKNOWN))
            wanted = true;
    }
    if (!wanted || !any)
        return;
    if (c->state != CHECK_IDLE) {
        log_debug("health: %s: previous check still running, skipped", c->cb->name);
        return;
    }
    check_start(c);
}

/* One check of every URL (only_new: of those with a never-checked backend, except the backends
 * `skip` checks: the running checker's, which it checks itself until the hand-over). */
static void start_round(struct health *h, bool only_new, const struct health *skip)
{
    for (int i = 0; i < h->n; i++)
        check_maybe_start(&h->checks[i], only_new, skip);
}

/* c's next due time on its steady cadence first + k * period, past `now`: times already passed
 * (the loop was held up) are skipped rather than run in a burst. */
static void check_advance(struct check *c, uint64_t now)
{
    uint64_t period = c->period_ms ? c->period_ms : 1;
    c->next_ms += period;
    if (c->next_ms < now)
        c->next_ms += (now - c->next_ms + period - 1) / period * period;
}

/* Arms the period timer for the earliest check due. */
static void arm_period(struct health *h)
{
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < h->n; i++)
        next = MIN(next, h->checks[i].next_ms);
    if (next != UINT64_MAX)
        loop_timer_set(h->loop, &h->period_timer, next);
}

static void on_period(struct loop_timer *t)
{
    struct health *h = container_of(t, struct health, period_timer);
    uint64_t now = loop_now(h->loop);
    for (int i = 0; i < h->n; i++) {
        struct check *c = &h->checks[i];
        if (c->next_ms > now)
            continue;
        check_maybe_start(c, false, NULL);
        check_advance(c, now);
    }
    arm_period(h);
}

/* Builds "GET <path> HTTP/1.1" with Host: host[:port] (IPv6 literals bracketed, port 80
 * omitted). Returns a malloc'ed string or NULL. */
static char *build_request(const struct config_backend *cb, size_t *len)
{
    const char *host = cb->host ? cb->host : cb->name;
    const char *path = cb->health_path && cb->health_path[0] ? cb->health_path : "/";
    bool v6 = host && strchr(host, ':') && host[0] != '[';
    char port[8] = "";
    if (cb->host && cb->port != (cb->tls ? 443 : 80))
        snprintf(port, sizeof(port), ":%u", (unsigned)cb->port);
    char *req = NULL;
    int n = asprintf(&req,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s%s\r\nUser-Agent: golb-health\r\n"
                     "Connection: close\r\n\r\n",
                     path, v6 ? "[" : "", host ? host : "", v6 ? "]" : "", port);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return req;
}

/* What makes two configured backends one check: the same request to the same place. */
static char *check_key(const struct config_backend *cb)
{
    char id[300], *key = NULL;
    config_backend_key(cb, id, sizeof(id));
#define OR_EMPTY(x) ((x) ? (x) : "")
    if (asprintf(&key, "%s%s\n%s\n%d\n%s\n%s\n%s\n%d\n%d\n%d\n%s", id,
                 cb->health_path && cb->health_path[0] ? cb->health_path : "/",
                 OR_EMPTY(cb->server_name), (int)cb->tls_verify, OR_EMPTY(cb->ca_file),
                 OR_EMPTY(cb->client_cert_file), OR_EMPTY(cb->client_key_file),
                 (int)cb->send_proxy_protocol, (int)cb->up.protocol, (int)cb->up.health_check,
                 cb->up.health_check == CONFIG_HC_GRPC ? OR_EMPTY(cb->up.health_check_service)
                                                       : "") < 0)
        return NULL;
#undef OR_EMPTY
    return key;
}

static uint64_t key_hash(const char *s)
{
    uint64_t x = 0xcbf29ce484222325u; /* FNV-1a */
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 0x100000001b3u;
    return x;
}

/* Adds pool `p`'s backend k to the check of its key (a new check for a new key). The open-address
 * index `slots` (cap entries, a power of two, -1 empty) finds a key's check. 0 or -ENOMEM. */
static int add_holder(struct health *h, int *slots, size_t cap, const struct health_pool *p, int k)
{
    const struct config_backend *cb = &p->cfg->backends[k];
    char *key = check_key(cb);
    if (!key)
        return -ENOMEM;
    size_t at = key_hash(key) & (cap - 1);
    while (slots[at] >= 0 && strcmp(h->checks[slots[at]].key, key) != 0)
        at = (at + 1) & (cap - 1);
    struct check *c;
    if (slots[at] >= 0) {
        c = &h->checks[slots[at]];
        free(key);
    } else {
        slots[at] = h->n;
        c = &h->checks[h->n++];
        c->h = h;
        c->cb = cb;
        c->key = key;
        c->io.fd = -1;
        c->io.cb = check_on_io;
        loop_timer_init(&c->timer, check_on_timeout);
        c->req = build_request(cb, &c->req_len);
        if (!c->req)
            return -ENOMEM;
    }
    /* holders: at most one per pool, so the array of the pools' count is enough */
    struct holder *hd = &c->holders[c->nholders++];
    *hd = (struct holder){.b = p->table->b[k],
                          .rise = p->cfg->healthy_threshold ? p->cfg->healthy_threshold : 1,
                          .fall = p->cfg->unhealthy_threshold ? p->cfg->unhealthy_threshold : 1,
                          .timeout_ms = p->cfg->health_check_timeout_ms};
    if (c->nholders == 1 || hd->timeout_ms > c->timeout_ms)
        c->timeout_ms = hd->timeout_ms;
    if (c->nholders == 1 || p->cfg->health_check_period_ms < c->period_ms)
        c->period_ms = p->cfg->health_check_period_ms;
    return 0;
}

struct health *health_new_pools(const struct health_pool *pools, int npools)
{
    struct health *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    size_t total = 0;
    for (int p = 0; p < npools; p++)
        total += (size_t)pools[p].table->n;
    size_t cap = 16;
    while (cap < 2 * total)
        cap *= 2;
    int *slots = malloc(cap * sizeof(*slots));
    loop_timer_init(&h->period_timer, on_period);
    h->checks = calloc(total ? total : 1, sizeof(*h->checks));
    h->holders = calloc((total ? total : 1) * (size_t)(npools ? npools : 1), sizeof(*h->holders));
    h->loop = loop_new();
    sem_init(&h->go, 0, 0);
    if (!slots || !h->checks || !h->holders || !h->loop)
        goto fail;
    for (size_t i = 0; i < cap; i++)
        slots[i] = -1;
    for (size_t i = 0; i < total; i++)
        h->checks[i].holders = &h->holders[i * (size_t)(npools ? npools : 1)];
    for (int p = 0; p < npools; p++) {
        for (int k = 0; k < pools[p].table->n; k++) {
            errno = ENOMEM;
            if (add_holder(h, slots, cap, &pools[p], k) != 0)
                goto fail;
        }
    }
    free(slots);
    return h;
fail:;
    int err = errno; /* what failed, for the caller's message */
    free(slots);
    health_free(h);
    errno = err;
    return NULL;
}

struct health *health_new(struct backend_table *table, const struct config *cfg)
{
    struct health_pool p = {.table = table, .cfg = cfg};
    return health_new_pools(&p, 1);
}

int health_check_count(const struct health *h)
{
    return h ? h->n : 0;
}

static void *thread_main(void *arg)
{
    struct health *h = arg;
    if (h->held) {
        while (sem_wait(&h->go) == -1 && errno == EINTR)
            ;
        if (h->cancelled) /* written before the post: sem_wait orders it */
            return NULL;
    }
    int err = loop_run(h->loop);
    if (err != 0)
        log_error("health: event loop failed: %s", strerror(-err));
    return NULL;
}

/* The first round (never-checked backends but those of `running`) to completion on the caller's
 * thread, then the checker thread, held or not. */
static int start(struct health *h, const struct health *running, bool held)
{
    if (h->thread_started)
        return -EALREADY;
    int inject = atomic_exchange(&health_inject_start_error, 0);
    if (inject != 0)
        return inject;

    /* First round, synchronously: run the loop here until every check of it has finished. */
    loop_update_time(h->loop);
    uint64_t first = loop_now(h->loop);
    start_round(h, true, running);
    if (h->in_flight > 0) {
        h->first_round = true;
        int err = loop_run(h->loop);
        h->first_round = false;
        if (err != 0)
            return err;
    }

    loop_update_time(h->loop);
    for (int i = 0; i < h->n; i++) {
        h->checks[i].next_ms = first;
        check_advance(&h->checks[i], loop_now(h->loop));
    }
    arm_period(h);
    h->held = held;
    h->released = h->cancelled = false;
    sigset_t all, old;
    sigfillset(&all);
    /* The checker thread takes no signals: the main thread owns them. */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&h->thread, NULL, thread_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        loop_timer_cancel(h->loop, &h->period_timer);
        return -err;
    }
    h->thread_started = true;
    return 0;
}

int health_start(struct health *h)
{
    return start(h, NULL, false);
}

int health_start_held(struct health *h, const struct health *running)
{
    return start(h, running, true);
}

void health_take_over(struct health *h, struct health *running)
{
    health_stop(running); /* joined: from here on h is the only checker of every backend */
    if (h->held && !h->released) {
        h->released = true;
        sem_post(&h->go);
    }
}

static void stop_on_loop(void *arg)
{
    loop_stop(arg);
}

void health_stop(struct health *h)
{
    if (!h || !h->thread_started)
        return;
    if (h->held && !h->released) {
        /* Never taken over (the reload failed later): the thread ends without a round. */
        h->cancelled = true;
        h->released = true;
        sem_post(&h->go);
    } else {
        /* loop_stop() straight from here could be lost if the thread has not entered
         * loop_run() yet (loop_run() clears the stop flag on entry); a wakeup callback is
         * delivered whenever the loop next polls, and stops it from its own thread. */
        loop_wakeup(h->loop, stop_on_loop, h->loop);
    }
    pthread_join(h->thread, NULL);
    h->thread_started = false;
    /* The loop is ours again: abandon checks in flight, publishing nothing. */
    loop_timer_cancel(h->loop, &h->period_timer);
    for (int i = 0; i < h->n; i++)
        if (h->checks[i].state != CHECK_IDLE)
            check_teardown(&h->checks[i]);
}

void health_free(struct health *h)
{
    if (!h)
        return;
    health_stop(h);
    if (h->checks) {
        for (int i = 0; i < h->n; i++) {
            struct check *c = &h->checks[i];
            if (c->state != CHECK_IDLE && h->loop)
                check_teardown(c);
            free(c->req);
            free(c->key);
        }
    }
    loop_free(h->loop);
    free(h->checks);
    free(h->holders);
    sem_destroy(&h->go);
    free(h);
}
