/* proxy — see proxy.h.
 *
 * One struct client per accepted connection. Its state says what it waits for:
 *
 *   READ_HEAD ──head parsed──► CONNECT ──connected──► EXCHANGE ──both directions done──► READ_HEAD
 *       │                       │  ▲ connect failed:        │   (keep-alive; pipelined bytes are
 *       │ bad request           │  └ next backend (retries) │    parsed at once)
 *       ▼                       ▼                           ├──101 Switching Protocols──► TUNNEL
 *   ERROR_REPLY ◄── no backend / upstream failed before the response started (502/503/504)
 *       │                                                   │
 *       ▼                                                   ▼ failure after the response started:
 *    LINGER (response sent, write side shut, input discarded) ──► closed    cut, never completed
 *
 * In EXCHANGE both directions run at once (an upstream may answer before it has read the whole
 * request body). pump() moves bytes until neither direction can progress: the request head golb
 * serialised plus body bytes from `in` go up; the response head golb serialised plus body bytes
 * from `uin` go down. Each direction reads only when its buffer is drained, so a slow reader stops
 * the reading of the other side (backpressure) and memory stays at a few buffers per exchange.
 *
 * Buffers (struct buf, from the worker's pool) and what they hold:
 *   in    bytes from the client: the request head, then body bytes, then maybe pipelined requests
 *   reqh  the request head as golb rewrote it; kept until the response starts so a request sent on
 *         a pooled connection that the backend had just closed can be replayed on a fresh one
 *   uin   bytes from the upstream: response head, then body bytes
 *   resph the response head as golb rewrote it (also interim 1xx heads)
 * An idle keep-alive connection holds no buffer at all.
 *
 * One timer per client. arm_timer() derives its deadline from the state and timestamps after each
 * step, so every wait has a deadline and each expiry has one handler (on_timeout).
 */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "balancer.h"
#include "buf.h"
#include "config.h"
#include "conn.h"
#include "generation.h"
#include "http1.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "obs.h"
#include "pipes.h"
#include "reply.h"
#include "rewrite.h"
#include "sock.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

#define LINGER_MS 2000u /* after an error reply: how long to drain unread input before closing */
/* Bodies with at least this much left (Content-Length) or close-delimited ones move through a
 * pipe with splice(2) instead of being copied through a buffer. Below it, copying is cheaper. */
#define SPLICE_MIN (32u * 1024u)

enum client_state {
    CS_HANDSHAKE = 0, /* TLS listener: the handshake runs before the first request */
    CS_READ_HEAD,
    CS_CONNECT,
    CS_EXCHANGE,
    CS_TUNNEL,
    CS_ERROR_REPLY,
    CS_LINGER,
    CS_CLOSED,
};

enum resp_phase {
    RESP_WAIT_HEAD = 0,
    RESP_BODY,
    RESP_DONE,
};

/* One request/response exchange: everything that exists only while a request is in flight.
 * Taken from the worker's free list when a request head is parsed, given back when the exchange
 * ends, so an idle keep-alive connection costs only its struct client. */
struct exchange {
    struct exchange *next_free;
    struct buf *reqh, *uin, *resph;
    uint32_t reqh_sent, resph_sent;
    uint32_t reqh_host_at; /* where a Host line goes when the request had none (0: it had) */
    struct kpipe req_pipe, resp_pipe; /* splice paths; r == -1 when unused */

    struct generation *gen; /* pinned for the exchange's life (worker_pin) */
    struct upstream_conn *up;
    int backend; /* index in gen's backend table, -1 before the first pick */
    bool up_reused, replayed;
    struct lb_tried tried;
    struct lb_request lbr; /* what the balancer read from the head: key, sticky cookie */
    uint64_t sent_at; /* request fully sent upstream */

    /* request being forwarded */
    enum http1_body req_body;
    uint64_t req_remaining; /* LENGTH: body bytes not yet sent */
    uint32_t req_ready;     /* CHUNKED: validated bytes at in->pos not yet sent */
    struct http1_chunked req_chunk;
    bool req_done, req_body_sent, req_keepalive, req_is_head, req_http10, req_upgrade;

    /* response being relayed */
    enum resp_phase resp_phase;
    enum http1_body resp_body;
    uint64_t resp_remaining;
    uint32_t resp_ready; /* CHUNKED: bytes at uin->pos validated (pass-through) or decoded */
    struct http1_chunked resp_chunk;
    bool resp_started, resp_dechunk, resp_keepalive, client_keepalive, tunnel_pending;
    bool up_eof, up_shut, client_shut;

    /* observability: facts for counters and the access log (obs.h); end_term/end_error name the
     * cause when golb cuts the exchange for a reason client_close() cannot see */
    const char *end_term, *end_error;
    struct obs_req obs; /* last: exchange_get() clears only up to its text buffers */
};
_Static_assert(offsetof(struct exchange, obs) + sizeof(struct obs_req) == sizeof(struct exchange),
               "obs must be the last member of struct exchange");

/* A client connection. Small on purpose: this is all an idle keep-alive connection holds. */
struct client {
    struct loop_io io;
    SSL *ssl;      /* NULL on the plain listener */
    struct generation *tls_gen; /* TLS: the generation it was accepted on (its certificates and
                                   TLS settings), pinned until close */
    char *subject; /* verified client certificate subject (mTLS with clientSubjectHeader) */
    struct loop_timer timer;
    struct loop_task task; /* deferred: free after close, or process pipelined bytes */
    struct worker *w;
    struct client *prev, *next; /* worker's list */
    struct buf *in;             /* bytes from the client; NULL while idle */
    struct exchange *x;         /* the request in flight; NULL between requests */
    const char *reply;          /* generated response: static text, or reply_buf's bytes */
    struct buf *reply_buf;      /* a generated response built per request (redirect) */
    uint32_t reply_len, reply_sent;
    uint64_t head_start;  /* first byte of the current request head arrived (0: none yet) */
    uint64_t idle_since;  /* READ_HEAD entered */
    uint64_t progress_at; /* last byte moved, or state change */
    uint32_t parse_prev;
    uint32_t requests;
    uint8_t state; /* enum client_state */
    bool readable, writable, eof, rdhup, nodelay;
    bool watched; /* in the worker's epoll set (see watch_if_waiting) */
    uint8_t iplen;
    char ip[46]; /* INET6_ADDRSTRLEN */
};

/* The backend the exchange is on, and its settings in the exchange's generation. */
static inline struct backend *x_backend(const struct client *c)
{
    return c->x->gen->table->b[c->x->backend];
}
static inline const struct config_backend *x_config(const struct client *c)
{
    return &c->x->gen->cfg->backends[c->x->backend];
}

static void pump(struct client *c);
static void process_head(struct client *c);
static void connect_next(struct client *c);
static void arm_timer(struct client *c);
static void on_upstream_event(struct upstream_conn *up, uint32_t events);
static void process_pipelined(struct loop_task *task);
static void upstream_broken(struct client *c, const char *why);

/* ---------------------------------------------------------------- lifecycle ---------------- */

static void free_task(struct loop_task *task)
{
    free(container_of(task, struct client, task));
}

/* Exchanges kept for reuse per worker, so steady traffic never mallocs one. */
#define MAX_FREE_EXCHANGES 256

static struct exchange *exchange_get(struct worker *w)
{
    struct exchange *x = w->free_exchanges;
    if (x) {
        w->free_exchanges = x->next_free;
        w->nfree_exchanges--;
        memset(x, 0, offsetof(struct exchange, obs) + OBS_REQ_CLEAR); /* not obs' text buffers */
    } else {
        x = calloc(1, sizeof(*x));
        if (!x)
            return NULL;
    }
    x->req_pipe = x->resp_pipe = (struct kpipe){.r = -1, .w = -1};
    x->backend = -1;
    return x;
}

/* Gives back the exchange's buffers and pipes and the exchange itself (its upstream must have been
 * dropped), and the client's input buffer when it is empty. */
static void release_buffers(struct client *c)
{
    struct worker *w = c->w;
    struct exchange *x = c->x;
    if (x) {
        pipe_pool_put(&w->pipes, &x->req_pipe);
        pipe_pool_put(&w->pipes, &x->resp_pipe);
        buf_put(&w->bufs, x->reqh);
        buf_put(&w->bufs, x->uin);
        buf_put(&w->bufs, x->resph);
        if (x->gen)
            worker_unpin(w, x->gen);
        x->gen = NULL;
        if (w->nfree_exchanges < MAX_FREE_EXCHANGES) {
            x->next_free = w->free_exchanges;
            w->free_exchanges = x;
            w->nfree_exchanges++;
        } else {
            free(x);
        }
        c->x = NULL;
    }
    if (c->in && buf_len(c->in) == 0) {
        buf_put(&w->bufs, c->in);
        c->in = NULL;
    }
}

/* The backend's response time the balancer learns from (leastLatency): pick → final response
 * head, or → now when no head came. Never the body: a slow client must not make a backend look
 * slow. */
static uint64_t pick_age_us(const struct exchange *x)
{
    uint64_t end = x->lbr.head_us ? x->lbr.head_us : balancer_now_us();
    return end > x->lbr.picked_us ? end - x->lbr.picked_us : 0;
}

/* Ends the exchange with the upstream, if any: pooled when reusable, else closed. */
static void drop_upstream(struct client *c, bool reusable, enum lb_outcome outcome)
{
    if (!c->x || !c->x->up)
        return;
    struct backend *b = x_backend(c);
    atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
    balancer_release(&c->x->gen->balancer, c->x->backend, outcome, pick_age_us(c->x));
    upstream_release(c->x->up, reusable);
    c->x->up = NULL;
}

/* Counts and logs the request of this connection as ended (obs.h): the exchange's, or for an error
 * answered before any exchange existed (a malformed head, a header timeout), a bare one. */
static void obs_end(struct client *c, int status, const char *term, const char *error_type)
{
    if (c->x) {
        obs_req_end(c->w, &c->x->obs, status, term, error_type, c->ip);
        return;
    }
    struct obs_req r;
    memset(&r, 0, sizeof(r));
    obs_req_end(c->w, &r, status, term, error_type, c->ip);
}

/* A connection closing in the middle of an exchange: the client went away, unless golb cut it
 * for a cause it noted in end_term (the upstream broke off the body, a timeout). */
static void obs_end_on_close(struct client *c)
{
    struct exchange *x = c->x;
    if (!x || x->obs.ended || !x->obs.started)
        return;
    if (c->state == CS_TUNNEL || x->tunnel_pending)
        obs_end(c, 101, "--", NULL);
    else if (x->end_term)
        obs_end(c, x->resp_started ? x->obs.backend_status : 0, x->end_term, x->end_error);
    else
        obs_end(c, x->resp_started ? x->obs.backend_status : 0,
                !x->resp_started && x->req_done ? "CH" : "CD", "client_abort");
}

/* The termination code and error type of an answer golb generates itself. */
static void obs_end_reply(struct client *c, int status)
{
    const char *term = "PR", *err = "bad_request";
    bool exchanging = c->state == CS_EXCHANGE;
    switch (status) {
    case 408:
        term = c->x ? "cD" : "cR";
        err = c->x ? "body_timeout" : "header_timeout";
        break;
    case 414:
    case 431:
        err = "too_large";
        break;
    case 502:
        term = exchanging ? "SH" : "SC";
        err = exchanging ? "invalid_response" : "connect_failed";
        break;
    case 503:
        term = "PC";
        err = "no_backend";
        break;
    case 504:
        term = "sH";
        err = "response_timeout";
        break;
    default:
        break;
    }
    if (c->x && c->x->end_term) {
        term = c->x->end_term;
        err = c->x->end_error;
    }
    obs_end(c, status, term, err);
}

static void client_close(struct client *c)
{
    if (c->state == CS_CLOSED)
        return;
    obs_end_on_close(c);
    drop_upstream(c, false, LB_FAILED);
    c->state = CS_CLOSED;
    loop_timer_cancel(c->w->loop, &c->timer);
    tls_free(c->ssl, false);
    c->ssl = NULL;
    free(c->subject);
    c->subject = NULL;
    if (c->tls_gen)
        worker_unpin(c->w, c->tls_gen);
    c->tls_gen = NULL;
    close(c->io.fd);
    c->io.fd = -1;
    struct buf_pool *pool = &c->w->bufs;
    buf_put(pool, c->in);
    c->in = NULL;
    buf_put(pool, c->reply_buf);
    c->reply_buf = NULL;
    release_buffers(c);
    struct worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* The task may be queued to process pipelined input; re-targeting it to free is safe because
     * loop_defer() keeps an already-queued task queued and the callback is read at run time. */
    c->task.cb = free_task;
    loop_defer(w->loop, &c->task, free_task);
    worker_client_closed(w);
}

/* Close after a complete response: shut our side, then drain what the client still sends for a
 * moment, so unread input does not turn our close into a reset that destroys the response. */
static void client_linger(struct client *c)
{
    drop_upstream(c, false, LB_FAILED);
    release_buffers(c);
    buf_put(&c->w->bufs, c->reply_buf);
    c->reply_buf = NULL;
    c->reply = NULL;
    if (conn_shutdown_write(c->io.fd, c->ssl) != 0) {
        client_close(c);
        return;
    }
    c->state = CS_LINGER;
    c->progress_at = loop_now(c->w->loop);
    arm_timer(c);
    pump(c);
}

/* Answers status and closes, unless the response has started: then the only honest move is to
 * cut the connection so the client sees an incomplete response, never wrong bytes. */
static void client_fail(struct client *c, int status, enum lb_outcome outcome)
{
    if (c->x && c->x->resp_started) {
        client_close(c);
        return;
    }
    obs_end_reply(c, status);
    drop_upstream(c, false, outcome);
    release_buffers(c);
    c->reply = reply_text(status, &c->reply_len);
    c->reply_sent = 0;
    c->state = CS_ERROR_REPLY;
    c->progress_at = loop_now(c->w->loop);
    arm_timer(c);
    pump(c);
}

/* Sends a response golb built in b (its first len bytes), then closes like client_fail. */
static void client_reply_buf(struct client *c, struct buf *b, uint32_t len)
{
    release_buffers(c);
    c->reply_buf = b;
    c->reply = b->data;
    c->reply_len = len;
    c->reply_sent = 0;
    c->state = CS_ERROR_REPLY;
    c->progress_at = loop_now(c->w->loop);
    arm_timer(c);
    pump(c);
}

/* Disables Nagle once the connection carries more than one small response: when it stays open
 * for another request (a pipelined response must not wait for an ACK) or streams a large body.
 * A one-request connection never pays the setsockopt (nginx sets tcp_nodelay the same way). */
static void client_nodelay(struct client *c)
{
    if (!c->nodelay) {
        sock_nodelay(c->io.fd);
        c->nodelay = true;
    }
}

/* A connect in progress failed (refused, reset, timed out): count it against the backend, close
 * the attempt and try the next backend (connect_next answers 502/503 when none is left). */
static void connect_failed(struct client *c, const char *why)
{
    struct backend *b = x_backend(c);
    log_warn("backend %s: connect failed: %s", b->name, why);
    backend_report_failure(b, c->w->cfg->max_fails, why);
    drop_upstream(c, false, LB_CONNECT_FAILED);
    connect_next(c);
}

/* ---------------------------------------------------------------- timers ------------------- */

static void arm_timer(struct client *c)
{
    const struct config *cfg = c->w->cfg;
    uint64_t d;
    switch (c->state) {
    case CS_HANDSHAKE:
        d = c->idle_since + c->tls_gen->cfg->tls->handshake_timeout_ms;
        break;
    case CS_READ_HEAD:
        if (c->head_start)
            d = c->head_start + cfg->client_header_timeout_ms;
        else
            d = c->idle_since +
                (c->requests ? cfg->keepalive_timeout_ms : cfg->client_header_timeout_ms);
        break;
    case CS_CONNECT:
        d = c->progress_at + cfg->connect_timeout_ms;
        break;
    case CS_EXCHANGE:
        if (c->x->resp_phase == RESP_WAIT_HEAD && c->x->req_done)
            d = c->x->sent_at + cfg->upstream_timeout_ms;
        else
            d = c->progress_at + cfg->body_timeout_ms;
        break;
    case CS_TUNNEL:
        d = c->progress_at + cfg->tunnel_timeout_ms;
        break;
    case CS_ERROR_REPLY:
        d = c->progress_at + cfg->body_timeout_ms;
        break;
    case CS_LINGER:
        d = c->progress_at + LINGER_MS;
        break;
    default:
        loop_timer_cancel(c->w->loop, &c->timer);
        return;
    }
    loop_timer_set(c->w->loop, &c->timer, d);
}

static void on_timeout(struct loop_timer *t)
{
    struct client *c = container_of(t, struct client, timer);
    switch (c->state) {
    case CS_HANDSHAKE:
        metrics_add(&c->w->m->tls_handshakes[MTLS_FAILED], 1);
        client_close(c);
        return;
    case CS_READ_HEAD:
        if (c->head_start)
            client_fail(c, 408, LB_OK);
        else
            client_close(c); /* idle keep-alive connection: close quietly */
        return;
    case CS_CONNECT:
        obs_connect_result(c->w, &c->x->obs, -ETIMEDOUT);
        connect_failed(c, "connect timed out");
        return;
    case CS_EXCHANGE:
        if (c->x->resp_phase == RESP_WAIT_HEAD && c->x->req_done) {
            struct backend *b = x_backend(c);
            log_warn("backend %s: no response within %u ms", b->name,
                     c->w->cfg->upstream_timeout_ms);
            c->x->end_term = "sH";
            c->x->end_error = "response_timeout";
            client_fail(c, 504, LB_FAILED);
        } else if (!c->x->req_done && c->x->resp_phase == RESP_WAIT_HEAD &&
                   (!c->in || buf_len(c->in) == 0)) {
            client_fail(c, 408, LB_FAILED); /* the client stopped sending its body */
        } else {
            c->x->end_term = "sD";
            c->x->end_error = "body_timeout";
            client_fail(c, 504, LB_FAILED); /* no progress: cut if the response started */
        }
        return;
    default:
        client_close(c);
        return;
    }
}

/* ---------------------------------------------------------------- I/O helpers -------------- */

/* Transport shorthands (conn.h): each side reads and writes through its own plain or TLS
 * transport and keeps its own readiness flags. */
static ssize_t client_read(struct client *c)
{
    return conn_read(c->io.fd, c->ssl, c->in, &c->readable, &c->writable, c->rdhup);
}

static ssize_t client_writev(struct client *c, const struct iovec *iov, int n)
{
    return conn_writev(c->io.fd, c->ssl, iov, n, &c->writable, &c->readable);
}

static ssize_t upstream_read(struct upstream_conn *up, struct buf *b)
{
    return conn_read(up->io.fd, up->ssl, b, &up->readable, &up->writable, up->rdhup);
}

static ssize_t upstream_writev(struct upstream_conn *up, const struct iovec *iov, int n)
{
    return conn_writev(up->io.fd, up->ssl, iov, n, &up->writable, &up->readable);
}

/* Ensures c->in exists with free space; compacts when the unprocessed bytes sit at the end. */
static bool ensure_in(struct client *c)
{
    if (!c->in) {
        c->in = buf_get(&c->w->bufs);
        if (!c->in)
            return false;
    }
    if (buf_len(c->in) == 0)
        c->in->pos = c->in->last = 0;
    else if (buf_space(c->in) == 0 && c->in->pos > 0)
        buf_compact(c->in);
    return true;
}

/* ---------------------------------------------------------------- head rewriting ----------- */

/* Thin adapters from a client's state to the rewrite module's explicit inputs. */
static bool build_request_head(struct client *c, const struct http1_request *req, struct buf *b)
{
    const struct config_tls *tls = c->tls_gen ? c->tls_gen->cfg->tls : c->w->cfg->tls;
    struct rewrite_request opt = {.client_ip = c->ip,
                                  .client_ip_len = c->iplen,
                                  .upgrade = c->x->req_upgrade,
                                  .https = c->ssl != NULL,
                                  .request_id = c->x->obs.reqid,
                                  .request_id_len = c->x->obs.reqid_len};
    if (tls && tls->client_subject_header) {
        opt.set_name = tls->client_subject_header;
        opt.set_name_len = strlen(tls->client_subject_header);
        opt.set_value = c->subject;
        opt.set_value_len = c->subject ? strlen(c->subject) : 0;
    }
    return rewrite_request_head(req, &opt, b, &c->x->reqh_host_at);
}

static bool set_upstream_host(struct client *c, const struct backend *b)
{
    return rewrite_set_host(c->x->reqh, c->x->reqh_host_at, b->name);
}

static bool build_response_head(struct client *c, const struct http1_response *resp,
                                struct buf *b)
{
    char cookie[256];
    if (resp->status >= 200 && !c->x->lbr.head_us)
        c->x->lbr.head_us = balancer_now_us();
    struct rewrite_response opt = {.http10 = c->x->req_http10,
                                   .dechunk = c->x->resp_dechunk,
                                   .keepalive = c->x->client_keepalive};
    opt.set_cookie_len = balancer_set_cookie(&c->x->gen->balancer, &c->x->lbr, c->x->backend, cookie,
                                             sizeof(cookie));
    opt.set_cookie = cookie;
    return rewrite_response_head(resp, &opt, b);
}

/* ---------------------------------------------------------------- splice ------------------- */

/* True when a body may go (or is already going) through a pipe: the head is out, nothing of the
 * body is left in the buffer, and enough remains to pay for the pipe. */
static bool want_splice(struct client *c, struct kpipe *p, bool head_out, uint32_t buffered,
                        enum http1_body framing, uint64_t remaining)
{
    if (p->r >= 0)
        return true;
    if (c->ssl || c->x->up->ssl)
        return false; /* through TLS, bodies are copied (kernel TLS offload would splice here) */
    if (!head_out || buffered)
        return false;
    if (!(framing == HTTP1_BODY_CLOSE ||
          (framing == HTTP1_BODY_LENGTH && remaining >= SPLICE_MIN)))
        return false;
    return pipe_pool_get(&c->w->pipes, p) == 0;
}

/* ---------------------------------------------------------------- request side ------------- */

/* Starts forwarding a parsed request: records its framing, rewrites its head, picks a backend. */
static void start_exchange(struct client *c, const struct http1_request *req, size_t head_len)
{
    struct worker *w = c->w;
    c->in->pos += (uint32_t)head_len;
    c->parse_prev = 0;
    w->stats.requests++;

    struct exchange *x = c->x = exchange_get(w);
    if (!x) {
        client_fail(c, 503, LB_OK);
        return;
    }
    x->gen = w->gen; /* the request runs on the generation it started on, to its end */
    worker_pin(w, x->gen);
    obs_req_start(w, &x->obs, req, c->head_start ? loop_now(w->loop) - c->head_start : 0);
    x->req_body = req->body;
    x->req_remaining = req->body == HTTP1_BODY_LENGTH ? req->content_length : 0;
    x->req_keepalive = (req->flags & HTTP1_MF_KEEP_ALIVE) != 0;
    x->req_is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    x->req_http10 = req->minor_version == 0;
    x->req_upgrade = (req->flags & HTTP1_MF_UPGRADE) != 0;
    x->resp_phase = RESP_WAIT_HEAD;

    c->x->reqh = buf_get(&w->bufs);
    if (!c->x->reqh) {
        client_fail(c, 503, LB_OK);
        return;
    }
    if (!build_request_head(c, req, c->x->reqh)) {
        client_fail(c, 431, LB_OK);
        return;
    }
    balancer_request_init(&x->gen->balancer, &x->lbr, req, c->ip, c->iplen, w->id);
    connect_next(c);
}

/* tls.redirectHttp: answers a plain-HTTP request with 308 to the same host and target on the
 * HTTPS listener's port (omitted when 443), then closes like any reply golb generates. The request
 * was parsed and validated first, so the Location is built from checked spans only. */
static void redirect_to_https(struct client *c, const struct http1_request *req)
{
    const char *host = req->authority;
    size_t hlen = req->authority_len;
    if (hlen == 0) {
        client_fail(c, 400, LB_OK); /* no Host to redirect to (HTTP/1.0 without Host) */
        return;
    }
    /* Host without its port: "[v6]:80" → "[v6]", "name:80" → "name" */
    const char *end = host + hlen, *colon = NULL;
    for (const char *p = end; p > host; p--) {
        if (p[-1] == ':') {
            colon = p - 1;
            break;
        }
        if (p[-1] == ']')
            break;
    }
    if (colon)
        hlen = (size_t)(colon - host);
    uint16_t port = c->w->https_port;
    const char *target = req->flags & HTTP1_MF_ABSOLUTE ? req->path : req->target;
    size_t tlen = req->flags & HTTP1_MF_ABSOLUTE ? req->path_len : req->target_len;
    if (req->flags & HTTP1_MF_ASTERISK) {
        target = "/";
        tlen = 1;
    }
    struct buf *b = buf_get(&c->w->bufs);
    if (!b) {
        client_fail(c, 503, LB_OK);
        return;
    }
    char portstr[8] = "";
    if (port != 443)
        snprintf(portstr, sizeof(portstr), ":%u", port);
    static const char body[] = "308 Permanent Redirect\n";
    int n = snprintf(b->data, b->cap,
                     "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://%.*s%s%.*s\r\n"
                     "Content-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     (int)hlen, host, portstr, (int)tlen, target, sizeof(body) - 1, body);
    if (n < 0 || (uint32_t)n >= b->cap) {
        buf_put(&c->w->bufs, b);
        client_fail(c, 414, LB_OK);
        return;
    }
    client_reply_buf(c, b, (uint32_t)n);
}

static void process_head(struct client *c)
{
    struct http1_request req;
    const struct config *cfg = c->w->cfg;
    struct http1_limits lim = {.max_head = cfg->max_header_size,
                               .max_request_line = cfg->max_request_line};
    size_t len = buf_len(c->in);
    ssize_t n = http1_parse_request(c->in->data + c->in->pos, len, c->parse_prev, &lim, &req);
    if (n == -EAGAIN) {
        c->parse_prev = (uint32_t)len;
        if (buf_space(c->in) == 0 && c->in->pos == 0)
            client_fail(c, 431, LB_OK); /* cannot happen with buffers larger than the limit */
        return;
    }
    if (n < 0) {
        client_fail(c, req.err_status ? req.err_status : 400, LB_OK);
        return;
    }
    if (req.flags & HTTP1_MF_CONNECT) {
        client_fail(c, 501, LB_OK); /* golb is a reverse proxy, not a forward tunnel */
        return;
    }
    if (!c->ssl && cfg->tls && cfg->tls->redirect_http) {
        redirect_to_https(c, &req);
        return;
    }
    start_exchange(c, &req, (size_t)n);
}

/* READ_HEAD: read what the client sent and parse once a head may be complete. */
static void read_head(struct client *c)
{
    for (;;) {
        if (c->in && buf_len(c->in) > 0 && !c->head_start)
            c->head_start = loop_now(c->w->loop);
        if (c->in && buf_len(c->in) > 0) {
            process_head(c);
            if (c->state != CS_READ_HEAD)
                return;
        }
        if (!c->readable || c->eof)
            break;
        if (!ensure_in(c)) {
            client_fail(c, 503, LB_OK);
            return;
        }
        if (buf_space(c->in) == 0) {
            client_fail(c, 431, LB_OK);
            return;
        }
        ssize_t r = client_read(c);
        if (r == -EAGAIN)
            break;
        if (r <= 0) {
            c->eof = true;
            break;
        }
    }
    if (c->eof) {
        client_close(c); /* nothing complete to answer */
        return;
    }
    if (c->in && buf_len(c->in) == 0) {
        buf_put(&c->w->bufs, c->in); /* idle connections hold no buffer */
        c->in = NULL;
    }
    arm_timer(c);
}

/* CS_HANDSHAKE: one step of the server-side TLS handshake. Returns true once it is done (the
 * state is then READ_HEAD); false while it waits, or after closing a failed handshake. A failed
 * handshake is closed quietly (nothing can be said over TLS yet), and counted. */
static bool client_handshake(struct client *c)
{
    bool want_write = false;
    int rc = tls_handshake(c->ssl, &want_write, NULL, 0);
    if (rc == -EAGAIN) {
        if (want_write)
            c->writable = false;
        else
            c->readable = false;
        arm_timer(c);
        return false;
    }
    if (rc < 0) {
        metrics_add(&c->w->m->tls_handshakes[MTLS_FAILED], 1);
        if (rc == -EBADMSG)
            (void)!write(c->io.fd, reply_plain_on_tls, strlen(reply_plain_on_tls));
        client_close(c);
        return false;
    }
    metrics_add(&c->w->m->tls_handshakes[tls_session_reused(c->ssl) ? MTLS_RESUMED : MTLS_FULL], 1);
    const struct config_tls *tls = c->tls_gen->cfg->tls;
    if (tls->client_subject_header) {
        char subject[1024];
        size_t n = tls_peer_subject(c->ssl, subject, sizeof(subject));
        if (n && !(c->subject = strdup(subject))) {
            client_close(c);
            return false;
        }
    }
    c->state = CS_READ_HEAD;
    c->idle_since = loop_now(c->w->loop);
    /* The handshake may have run on a writable-only event and read the client's first request
     * into OpenSSL's buffer: epoll reports no EPOLLIN for bytes already taken off the socket, so
     * read on now rather than wait for an edge that will not come. */
    c->readable = true;
    return true;
}

/* Tries the next backend: an idle pooled connection to it, else a new connect. */
static void connect_next(struct client *c)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    uint32_t max_tries = MIN(cfg->retries + 1, (uint32_t)LB_MAX_TRIES);
    for (;;) {
        if ((uint32_t)c->x->tried.n >= max_tries) {
            client_fail(c, 502, LB_OK);
            return;
        }
        int idx = balancer_pick(&c->x->gen->balancer, &c->x->lbr, &c->x->tried);
        if (idx < 0) {
            client_fail(c, c->x->tried.n ? 502 : 503, LB_OK);
            return;
        }
        lb_tried_add(&c->x->tried, idx);
        struct backend *b = c->x->gen->table->b[idx];
        c->x->backend = idx;
        if (!set_upstream_host(c, b)) {
            client_fail(c, 431, LB_OK);
            return;
        }
        c->x->up = upstream_take_idle(w->upstreams, &b->pw[w->id].idle, c, on_upstream_event);
        obs_backend_try(w, &c->x->obs, b, c->x->up != NULL, c->x->tried.n > 1, c->x->reqh->last);
        atomic_fetch_add_explicit(&b->active, 1, memory_order_relaxed);
        if (c->x->up) {
            c->x->up_reused = true;
            c->state = CS_EXCHANGE;
            c->progress_at = loop_now(w->loop);
            pump(c);
            return;
        }
        int err = 0;
        c->x->up_reused = false;
        c->x->up = upstream_connect(w->upstreams, &b->pw[w->id].idle,
                                    (const struct sockaddr *)&x_config(c)->addr,
                                    x_config(c)->addrlen, c, on_upstream_event, &err);
        if (c->x->up) {
            c->state = CS_CONNECT;
            c->progress_at = loop_now(w->loop);
            arm_timer(c);
            return;
        }
        atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
        if (sock_error_is_local(err)) {
            /* golb is out of descriptors or ports: not the backend's fault, and every other
             * backend would fail the same way. */
            log_warn("backend %s: cannot connect: %s", b->name, strerror(-err));
            balancer_release(&c->x->gen->balancer, idx, LB_OK, pick_age_us(c->x));
            client_fail(c, 503, LB_OK);
            return;
        }
        obs_connect_result(w, &c->x->obs, err);
        log_warn("backend %s: connect failed: %s", b->name, strerror(-err));
        backend_report_failure(b, cfg->max_fails, strerror(-err));
        balancer_release(&c->x->gen->balancer, idx, LB_CONNECT_FAILED, pick_age_us(c->x));
    }
}

/* A request sent on a pooled connection met a connection the backend had already closed. When
 * nothing of the body has gone and no response byte came, send it again on a fresh connection to
 * the same backend, once. Returns true when it did. */
static bool replay_on_fresh(struct client *c)
{
    if (!c->x->up_reused || c->x->replayed || c->x->req_body_sent || c->x->resp_started ||
        (c->x->uin && buf_len(c->x->uin) > 0) || !c->x->reqh)
        return false;
    struct worker *w = c->w;
    struct backend *b = x_backend(c);
    upstream_release(c->x->up, false);
    c->x->up = NULL;
    c->x->replayed = true;
    c->x->reqh_sent = 0;
    c->x->req_done = false;
    c->x->up_eof = false;
    int err = 0;
    c->x->up_reused = false;
    c->x->up = upstream_connect(w->upstreams, &b->pw[w->id].idle,
                                (const struct sockaddr *)&x_config(c)->addr, x_config(c)->addrlen,
                                c, on_upstream_event, &err);
    if (!c->x->up) {
        atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
        balancer_release(&c->x->gen->balancer, c->x->backend, LB_CONNECT_FAILED, pick_age_us(c->x));
        connect_next(c);
        return true;
    }
    c->state = CS_CONNECT;
    c->progress_at = loop_now(w->loop);
    arm_timer(c);
    return true;
}

/* The upstream failed before the response started: replay, or answer 502. */
static void upstream_broken(struct client *c, const char *why)
{
    if (replay_on_fresh(c))
        return;
    struct backend *b = x_backend(c);
    if (!c->x->resp_started) {
        log_warn("backend %s: %s", b->name, why);
        backend_report_failure(b, c->w->cfg->max_fails, why);
    }
    c->x->end_term = c->x->resp_started ? "SD" : "SH";
    c->x->end_error = "invalid_response";
    client_fail(c, 502, LB_FAILED);
}

/* Sends the request head and body bytes the framing allows. Returns true on progress. */
/* Content-Length request bodies past the first buffer go client → pipe → upstream. */
static bool splice_request(struct client *c, bool *progress)
{
    uint64_t left = c->x->req_remaining;
    enum pipe_splice_err err = PIPE_SPLICE_OK;
    bool p = pipe_splice(&c->x->req_pipe, c->io.fd, &c->readable, &c->eof, c->x->up->io.fd,
                         &c->x->up->writable, &left, &c->x->obs.req_body_bytes, &err);
    if (left != c->x->req_remaining)
        c->x->req_body_sent = true;
    c->x->req_remaining = left;
    if (err == PIPE_SPLICE_DST_FAILED) {
        upstream_broken(c, "connection reset while sending the request");
        return false;
    }
    if (err == PIPE_SPLICE_SRC_FAILED || (c->eof && c->x->req_remaining && c->x->req_pipe.bytes == 0)) {
        client_close(c); /* the client went away mid-body */
        return false;
    }
    if (p) {
        *progress = true;
        c->progress_at = loop_now(c->w->loop);
    }
    if (c->x->req_remaining == 0) {
        c->x->req_done = true;
        c->x->sent_at = loop_now(c->w->loop);
        *progress = true;
    }
    return true;
}

static bool pump_request(struct client *c)
{
    bool progress = false;
    if (c->x->req_body == HTTP1_BODY_LENGTH && !c->x->req_done &&
        want_splice(c, &c->x->req_pipe, c->x->reqh_sent == c->x->reqh->last, c->in ? buf_len(c->in) : 0,
                    HTTP1_BODY_LENGTH, c->x->req_remaining)) {
        splice_request(c, &progress);
        return progress;
    }
    while (!c->x->req_done && c->state == CS_EXCHANGE) {
        struct iovec iov[2];
        int n = 0;
        uint32_t head_left = c->x->reqh_sent < c->x->reqh->last ? c->x->reqh->last - c->x->reqh_sent : 0;
        if (head_left)
            iov[n++] = (struct iovec){c->x->reqh->data + c->x->reqh_sent, head_left};

        uint64_t body = 0;
        uint32_t avail = c->in ? buf_len(c->in) : 0;
        if (c->x->req_body == HTTP1_BODY_LENGTH) {
            body = MIN(c->x->req_remaining, (uint64_t)avail);
        } else if (c->x->req_body == HTTP1_BODY_CHUNKED) {
            while (c->x->req_ready < avail && !http1_chunked_done(&c->x->req_chunk)) {
                bool is_data;
                ssize_t k = http1_chunked_decode(&c->x->req_chunk, c->in->data + c->in->pos +
                                                                    c->x->req_ready,
                                                 avail - c->x->req_ready, &is_data);
                if (k < 0) {
                    client_fail(c, 400, LB_FAILED);
                    return false;
                }
                if (k == 0)
                    break;
                c->x->req_ready += (uint32_t)k;
            }
            body = c->x->req_ready;
        }
        if (body)
            iov[n++] = (struct iovec){c->in->data + c->in->pos, (size_t)body};

        bool body_complete =
            c->x->req_body == HTTP1_BODY_NONE ||
            (c->x->req_body == HTTP1_BODY_LENGTH && c->x->req_remaining == body) ||
            (c->x->req_body == HTTP1_BODY_CHUNKED && http1_chunked_done(&c->x->req_chunk) &&
             c->x->req_ready == body);
        if (n == 0 && body_complete) {
            c->x->req_done = true;
            c->x->sent_at = loop_now(c->w->loop);
            progress = true;
            break;
        }
        if (n > 0) {
            if (!c->x->up->writable)
                break;
            ssize_t wr = upstream_writev(c->x->up, iov, n);
            if (wr == -EAGAIN)
                break;
            if (wr < 0) {
                upstream_broken(c, "connection reset while sending the request");
                return false;
            }
            progress = true;
            c->progress_at = loop_now(c->w->loop);
            uint32_t from_head = (uint32_t)MIN((uint64_t)wr, (uint64_t)head_left);
            c->x->reqh_sent += from_head;
            uint32_t from_body = (uint32_t)wr - from_head;
            if (from_body) {
                c->x->req_body_sent = true;
                c->x->obs.req_body_bytes += from_body;
                c->in->pos += from_body;
                if (c->x->req_body == HTTP1_BODY_LENGTH)
                    c->x->req_remaining -= from_body;
                else
                    c->x->req_ready -= from_body;
            }
            continue;
        }
        /* Need more body bytes from the client. */
        if (!c->readable || c->eof)
            break;
        if (!ensure_in(c)) {
            client_fail(c, 503, LB_FAILED);
            return false;
        }
        ssize_t r = client_read(c);
        if (r == -EAGAIN)
            break;
        if (r <= 0) {
            /* The client went away mid-body: the upstream can never get a complete request. */
            c->eof = true;
            client_close(c);
            return false;
        }
        progress = true;
        c->progress_at = loop_now(c->w->loop);
    }
    return progress;
}

/* ---------------------------------------------------------------- response side ------------ */

static void start_tunnel(struct client *c);

/* Parses the response head in uin. Returns true on progress. */
static bool parse_response(struct client *c)
{
    struct http1_response resp;
    size_t len = buf_len(c->x->uin);
    ssize_t n = http1_parse_response(c->x->uin->data + c->x->uin->pos, len, 0, c->x->uin->cap - 1,
                                     c->x->req_is_head, &resp);
    if (n == -EAGAIN) {
        if (buf_space(c->x->uin) == 0) {
            if (c->x->uin->pos == 0) {
                upstream_broken(c, "response head too large");
                return false;
            }
            buf_compact(c->x->uin);
        }
        return false;
    }
    if (n < 0) {
        char why[128];
        snprintf(why, sizeof(why), "invalid response: %s",
                 resp.err_reason ? resp.err_reason : "malformed");
        c->x->replayed = true; /* a bad response is not a dropped pooled connection */
        upstream_broken(c, why);
        return false;
    }
    c->x->uin->pos += (uint32_t)n;
    if (!c->x->resph) {
        c->x->resph = buf_get(&c->w->bufs);
        if (!c->x->resph) {
            client_fail(c, 503, LB_FAILED);
            return false;
        }
    }
    if (resp.status < 200 && resp.status != 101) {
        /* Interim (100 Continue, 103 Early Hints): relay to HTTP/1.1 clients, then keep waiting. */
        if (!c->x->req_http10 && !build_response_head(c, &resp, c->x->resph)) {
            upstream_broken(c, "interim response head too large");
            return false;
        }
        return true;
    }
    if (resp.status == 101 && !c->x->req_upgrade) {
        c->x->replayed = true;
        upstream_broken(c, "101 Switching Protocols without an upgrade request");
        return false;
    }
    obs_response_head(c->w, &c->x->obs, resp.status, (uint32_t)n);
    c->x->resp_body = resp.body;
    c->x->resp_remaining = resp.body == HTTP1_BODY_LENGTH ? resp.content_length : 0;
    c->x->resp_ready = 0;
    memset(&c->x->resp_chunk, 0, sizeof(c->x->resp_chunk));
    c->x->resp_dechunk = resp.body == HTTP1_BODY_CHUNKED && c->x->req_http10;
    c->x->resp_keepalive = (resp.flags & HTTP1_MF_KEEP_ALIVE) && resp.body != HTTP1_BODY_CLOSE;
    c->x->client_keepalive = c->x->req_keepalive && !c->w->draining && c->x->req_done &&
                          resp.body != HTTP1_BODY_CLOSE && !c->x->resp_dechunk && resp.status != 101;
    if (!build_response_head(c, &resp, c->x->resph)) {
        c->x->replayed = true;
        upstream_broken(c, "response head too large");
        return false;
    }
    /* The request can no longer be replayed: free its head now. */
    buf_put(&c->w->bufs, c->x->reqh);
    c->x->reqh = NULL;
    if (resp.status == 101) {
        c->x->tunnel_pending = true;
        c->x->resp_phase = RESP_DONE;
        return true;
    }
    c->x->resp_phase = resp.body == HTTP1_BODY_NONE ? RESP_DONE : RESP_BODY;
    return true;
}

/* Body bytes at uin->pos ready to go to the client under the response framing. */
static uint64_t response_body_ready(struct client *c, bool *failed)
{
    uint32_t avail = buf_len(c->x->uin);
    switch (c->x->resp_body) {
    case HTTP1_BODY_LENGTH:
        return MIN(c->x->resp_remaining, (uint64_t)avail);
    case HTTP1_BODY_CLOSE:
        return avail;
    case HTTP1_BODY_CHUNKED:
        if (!c->x->resp_dechunk) {
            while (c->x->resp_ready < avail && !http1_chunked_done(&c->x->resp_chunk)) {
                bool is_data;
                ssize_t k = http1_chunked_decode(&c->x->resp_chunk,
                                                 c->x->uin->data + c->x->uin->pos + c->x->resp_ready,
                                                 avail - c->x->resp_ready, &is_data);
                if (k <= 0) {
                    *failed = k < 0;
                    break;
                }
                c->x->resp_ready += (uint32_t)k;
            }
            return c->x->resp_ready;
        }
        /* De-chunk in place: data runs slide down over the framing, resp_ready counts them. */
        {
            char *base = c->x->uin->data + c->x->uin->pos;
            uint32_t src = c->x->resp_ready, dst = c->x->resp_ready;
            while (src < avail && !http1_chunked_done(&c->x->resp_chunk)) {
                bool is_data;
                ssize_t k = http1_chunked_decode(&c->x->resp_chunk, base + src, avail - src,
                                                 &is_data);
                if (k <= 0) {
                    *failed = k < 0;
                    break;
                }
                if (is_data) {
                    if (dst != src)
                        memmove(base + dst, base + src, (size_t)k);
                    dst += (uint32_t)k;
                }
                src += (uint32_t)k;
            }
            /* Bytes after the data we kept were framing; anything past src stays unprocessed. */
            if (src < avail)
                memmove(base + dst, base + src, avail - src);
            c->x->uin->last -= src - dst;
            c->x->resp_ready = dst;
            return dst;
        }
    default:
        return 0;
    }
}

static bool response_body_complete(const struct client *c, uint64_t ready)
{
    switch (c->x->resp_body) {
    case HTTP1_BODY_LENGTH:
        return c->x->resp_remaining == ready;
    case HTTP1_BODY_CHUNKED:
        return http1_chunked_done(&c->x->resp_chunk) && c->x->resp_ready == ready;
    case HTTP1_BODY_CLOSE:
        return c->x->up_eof && buf_len(c->x->uin) == ready;
    default:
        return true;
    }
}

/* Content-Length and close-delimited response bodies past the first buffer go upstream → pipe →
 * client. */
static void splice_response(struct client *c, bool *progress)
{
    client_nodelay(c);
    bool length = c->x->resp_body == HTTP1_BODY_LENGTH;
    uint64_t left = length ? c->x->resp_remaining : UINT64_MAX;
    enum pipe_splice_err err = PIPE_SPLICE_OK;
    bool p = pipe_splice(&c->x->resp_pipe, c->x->up->io.fd, &c->x->up->readable, &c->x->up_eof, c->io.fd,
                         &c->writable, &left, &c->x->obs.resp_body_bytes, &err);
    if (length)
        c->x->resp_remaining = left;
    if (p) {
        *progress = true;
        c->x->resp_started = true;
        c->progress_at = loop_now(c->w->loop);
    }
    if (err == PIPE_SPLICE_DST_FAILED) {
        client_close(c); /* the client is gone */
        return;
    }
    bool drained = c->x->resp_pipe.bytes == 0;
    if (err == PIPE_SPLICE_SRC_FAILED || (length && c->x->up_eof && c->x->resp_remaining && drained)) {
        struct backend *b = x_backend(c);
        log_warn("backend %s: connection closed in the middle of the response body", b->name);
        c->x->end_term = "SD";
        c->x->end_error = "upstream_reset";
        client_close(c); /* cut: the client must see the truncation */
        return;
    }
    if ((length && c->x->resp_remaining == 0) || (!length && c->x->up_eof && drained)) {
        c->x->resp_phase = RESP_DONE;
        *progress = true;
    }
}

/* Reads from the upstream and writes head and body to the client. Returns true on progress. */
static bool pump_response(struct client *c)
{
    bool progress = false;
    while (c->state == CS_EXCHANGE) {
        if (c->x->resp_phase == RESP_BODY && !c->x->resp_dechunk &&
            want_splice(c, &c->x->resp_pipe, !c->x->resph || c->x->resph->last == 0,
                        c->x->uin ? buf_len(c->x->uin) : 0, c->x->resp_body, c->x->resp_remaining)) {
            splice_response(c, &progress);
            return progress;
        }
        /* 1. Write what is ready: a rewritten head, then body bytes. */
        struct iovec iov[2];
        int n = 0;
        uint32_t head_left = c->x->resph ? c->x->resph->last - c->x->resph_sent : 0;
        if (head_left)
            iov[n++] = (struct iovec){c->x->resph->data + c->x->resph_sent, head_left};
        uint64_t body = 0;
        if (c->x->resp_phase == RESP_BODY) {
            bool failed = false;
            body = response_body_ready(c, &failed);
            if (failed) {
                upstream_broken(c, "invalid chunked response body");
                return false;
            }
            if (body)
                iov[n++] = (struct iovec){c->x->uin->data + c->x->uin->pos, (size_t)body};
        }
        if (n > 0) {
            if (!c->writable)
                break;
            ssize_t wr = client_writev(c, iov, n);
            if (wr == -EAGAIN)
                break;
            if (wr < 0) {
                client_close(c); /* the client is gone */
                return false;
            }
            progress = true;
            c->x->resp_started = true;
            c->progress_at = loop_now(c->w->loop);
            uint32_t from_head = (uint32_t)MIN((uint64_t)wr, (uint64_t)head_left);
            c->x->resph_sent += from_head;
            if (c->x->resph_sent == c->x->resph->last)
                c->x->resph->pos = c->x->resph->last = c->x->resph_sent = 0;
            uint32_t from_body = (uint32_t)wr - from_head;
            if (from_body) {
                /* A body streams: on loopback one buffer is less than an MSS, and Nagle would
                 * hold each write until the last one is acknowledged. */
                if (c->x->uin->pos == 0 && c->x->resp_body != HTTP1_BODY_NONE)
                    client_nodelay(c);
                c->x->obs.resp_body_bytes += from_body;
                c->x->uin->pos += from_body;
                if (c->x->resp_body == HTTP1_BODY_LENGTH)
                    c->x->resp_remaining -= from_body;
                else if (c->x->resp_body == HTTP1_BODY_CHUNKED)
                    c->x->resp_ready -= from_body;
            }
            continue;
        }
        if (c->x->resp_phase == RESP_BODY && response_body_complete(c, body)) {
            c->x->resp_phase = RESP_DONE;
            /* Bytes past the end of the response: the connection is out of step, never reuse. */
            if (buf_len(c->x->uin) > 0)
                c->x->resp_keepalive = false;
            progress = true;
        }
        if (c->x->resp_phase == RESP_DONE)
            break;

        /* 2. Parse a head already buffered. */
        if (c->x->resp_phase == RESP_WAIT_HEAD && c->x->uin && buf_len(c->x->uin) > 0) {
            bool parsed = parse_response(c);
            if (c->state != CS_EXCHANGE)
                return false;
            if (parsed) {
                progress = true;
                continue;
            }
        }

        /* 3. Read more from the upstream once what we had is drained. */
        if (!c->x->up->readable || c->x->up_eof)
            break;
        if (!c->x->uin) {
            c->x->uin = buf_get(&c->w->bufs);
            if (!c->x->uin) {
                client_fail(c, 503, LB_FAILED);
                return false;
            }
        }
        if (buf_len(c->x->uin) == 0) {
            c->x->uin->pos = c->x->uin->last = 0;
            c->x->resp_ready = 0;
        } else if (c->x->resp_phase == RESP_BODY) {
            break; /* backpressure: wait until the client took what we have */
        }
        if (buf_space(c->x->uin) == 0)
            buf_compact(c->x->uin);
        ssize_t r = upstream_read(c->x->up, c->x->uin);
        if (r == -EAGAIN)
            break;
        if (r <= 0) {
            c->x->up_eof = true;
            if (c->x->resp_phase == RESP_WAIT_HEAD) {
                if (buf_len(c->x->uin) == 0) {
                    upstream_broken(c, r == 0 ? "connection closed before the response"
                                              : "connection reset before the response");
                } else {
                    c->x->replayed = true;
                    upstream_broken(c, "connection closed in the middle of the response head");
                }
                return false;
            }
            /* Through TLS, a close-delimited body ends only with close_notify: a bare TCP close
             * may be a truncation by someone on the path. */
            bool truncated = c->x->up->ssl && !tls_close_notify_received(c->x->up->ssl);
            if (c->x->resp_body != HTTP1_BODY_CLOSE || r < 0 || truncated) {
                /* Premature end of a delimited body: cut the client so it sees the truncation. */
                struct backend *b = x_backend(c);
                log_warn("backend %s: connection closed in the middle of the response body",
                         b->name);
                c->x->end_term = "SD";
                c->x->end_error = "upstream_reset";
                client_close(c);
                return false;
            }
            progress = true;
            continue;
        }
        progress = true;
        c->progress_at = loop_now(c->w->loop);
    }
    return progress;
}

/* Both directions are complete: recycle the upstream connection, then serve the next request. */
static void finish_exchange(struct client *c)
{
    struct worker *w = c->w;
    obs_end(c, c->x->obs.backend_status, "--", NULL);
    backend_report_success(x_backend(c));
    /* Reuse is earned: the response said keep-alive, ended exactly where its framing said (no
     * byte left over, even after a bodiless 204/304/HEAD answer) and the request went out whole. */
    bool reusable = c->x->resp_keepalive && c->x->req_done && !c->x->up_eof &&
                    (!c->x->uin || buf_len(c->x->uin) == 0);
    drop_upstream(c, reusable, LB_OK);
    c->requests++;
    bool keep = c->x->client_keepalive && !w->draining;
    release_buffers(c);
    if (!keep) {
        if ((!c->in || buf_len(c->in) == 0) && !c->readable) {
            client_close(c);
            return;
        }
        client_linger(c);
        return;
    }
    c->state = CS_READ_HEAD;
    c->head_start = 0;
    c->idle_since = loop_now(w->loop);
    c->parse_prev = 0;
    client_nodelay(c);
    arm_timer(c);
    /* Pipelined bytes (or more to read) are handled from the loop, not by recursion here, so a
     * burst of pipelined requests costs no stack depth. */
    if ((c->in && buf_len(c->in) > 0) || c->readable)
        loop_defer(w->loop, &c->task, process_pipelined);
    else if (c->eof)
        client_close(c);
}

/* ---------------------------------------------------------------- tunnel ------------------- */

static void start_tunnel(struct client *c)
{
    c->state = CS_TUNNEL;
    c->progress_at = loop_now(c->w->loop);
    if (!c->x->uin) {
        c->x->uin = buf_get(&c->w->bufs);
        if (!c->x->uin) {
            client_close(c);
            return;
        }
    }
    if (!c->in && !ensure_in(c)) {
        client_close(c);
        return;
    }
}

static void pump_tunnel(struct client *c)
{
    bool err = false;
    struct upstream_conn *up = c->x->up;
    struct conn_end client = {c->io.fd, c->ssl, &c->readable, &c->writable};
    struct conn_end upstream = {up->io.fd, up->ssl, &up->readable, &up->writable};
    bool p1 = conn_relay(client, upstream, c->in, &c->eof, &err);
    bool p2 = conn_relay(upstream, client, c->x->uin, &c->x->up_eof, &err);
    if (err) {
        client_close(c);
        return;
    }
    /* Half-close: pass each side's end of stream on once its bytes are delivered. */
    if (c->eof && buf_len(c->in) == 0 && !c->x->up_shut) {
        conn_shutdown_write(c->x->up->io.fd, c->x->up->ssl);
        c->x->up_shut = true;
    }
    if (c->x->up_eof && buf_len(c->x->uin) == 0 && !c->x->client_shut) {
        conn_shutdown_write(c->io.fd, c->ssl);
        c->x->client_shut = true;
    }
    if (c->x->up_shut && c->x->client_shut) {
        client_close(c);
        return;
    }
    if (p1 || p2)
        c->progress_at = loop_now(c->w->loop);
}

/* ---------------------------------------------------------------- the pump ----------------- */

/* Makes every step the current state allows, then re-arms the deadline. */
static void pump_steps(struct client *c)
{
    switch (c->state) {
    case CS_HANDSHAKE:
        if (!client_handshake(c))
            return;
        read_head(c);
        return;
    case CS_READ_HEAD:
        read_head(c);
        return;
    case CS_EXCHANGE:
        for (int rounds = 0; rounds < 64 && c->state == CS_EXCHANGE; rounds++) {
            bool p = pump_request(c);
            if (c->state != CS_EXCHANGE)
                break;
            p |= pump_response(c);
            if (c->state != CS_EXCHANGE)
                break;
            if (c->x->resp_phase == RESP_DONE && (c->x->resph == NULL || c->x->resph->last == 0)) {
                if (c->x->tunnel_pending) {
                    start_tunnel(c);
                    if (c->state == CS_TUNNEL)
                        pump_tunnel(c);
                    break;
                }
                if (c->x->req_done) {
                    finish_exchange(c);
                    return;
                }
                if (c->x->req_body != HTTP1_BODY_NONE) {
                    /* The upstream answered before taking the whole body (say a 413): the rest
                     * of the body can go nowhere, so close the client after the response. */
                    c->x->client_keepalive = false;
                    c->x->resp_keepalive = false;
                    c->x->req_done = true;
                    finish_exchange(c);
                    return;
                }
            }
            if (!p)
                break;
        }
        break;
    case CS_TUNNEL:
        pump_tunnel(c);
        break;
    case CS_ERROR_REPLY: {
        while (c->reply_sent < c->reply_len && c->writable) {
            struct iovec iov = {(char *)c->reply + c->reply_sent, c->reply_len - c->reply_sent};
            ssize_t wr = client_writev(c, &iov, 1);
            if (wr == -EAGAIN)
                break;
            if (wr < 0) {
                client_close(c);
                return;
            }
            c->reply_sent += (uint32_t)wr;
        }
        if (c->reply_sent == c->reply_len) {
            c->requests++;
            client_linger(c);
            return;
        }
        break;
    }
    case CS_LINGER: {
        char scratch[4096];
        for (;;) {
            ssize_t r = read(c->io.fd, scratch, sizeof(scratch));
            if (r > 0)
                continue;
            if (r == -1 && errno == EINTR)
                continue;
            if (r == -1 && errno == EAGAIN) {
                c->readable = false;
                break;
            }
            client_close(c); /* EOF or error: the client has everything */
            return;
        }
        break;
    }
    default:
        return;
    }
    if (c->state != CS_CLOSED)
        arm_timer(c);
}

/* A new connection is read at once (the listener defers accept until data is there) and joins
 * the epoll set only when golb has to wait for it: to read more, or to write when its socket is
 * full. A request without a body answered with Connection: close never needs it, which saves
 * the epoll_ctl and its removal at close, a measurable share of a short connection's cost. */
static bool client_can_wait_unwatched(const struct client *c)
{
    return (c->state == CS_CONNECT || c->state == CS_EXCHANGE) && c->writable &&
           c->x->req_body == HTTP1_BODY_NONE && !c->x->req_upgrade;
}

static void watch_if_waiting(struct client *c)
{
    if (c->watched || c->state == CS_CLOSED || client_can_wait_unwatched(c))
        return;
    if (loop_io_add(c->w->loop, &c->io) != 0) {
        client_close(c);
        return;
    }
    c->watched = true;
}

static void pump(struct client *c)
{
    pump_steps(c);
    watch_if_waiting(c);
}

/* ---------------------------------------------------------------- events ------------------- */

static void on_client_event(struct loop_io *io, uint32_t events)
{
    struct client *c = container_of(io, struct client, io);
    if (c->state == CS_CLOSED)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true;
    if (events & EPOLLOUT)
        c->writable = true;
    if ((events & (EPOLLHUP | EPOLLERR)) && c->state != CS_TUNNEL && c->state != CS_LINGER) {
        /* Both directions are gone: nothing can be answered any more. */
        client_close(c);
        return;
    }
    if (c->state == CS_CONNECT)
        return; /* nothing to do for the client until the upstream is there */
    pump(c);
}

static void on_upstream_event(struct upstream_conn *up, uint32_t events)
{
    struct client *c = up->owner;
    if (c->state == CS_CONNECT) {
        if (!up->connected) {
            if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                return;
            int rc = upstream_connect_result(up);
            if (rc != 0) {
                obs_connect_result(c->w, &c->x->obs, rc);
                connect_failed(c, strerror(-rc));
                return;
            }
        }
        /* https backend: the TLS handshake is part of connecting (same deadline, same retry,
         * and the connect-duration histogram includes it). */
        struct tls_client *tc = x_config(c)->tls_client;
        if (tc) {
            char err[256];
            int rc = upstream_tls_step(up, tc, err, sizeof(err));
            if (rc == -EAGAIN)
                return;
            if (rc < 0) {
                obs_connect_result(c->w, &c->x->obs, -EPROTO);
                connect_failed(c, err);
                return;
            }
        }
        obs_connect_result(c->w, &c->x->obs, 0);
        c->state = CS_EXCHANGE;
        c->progress_at = loop_now(c->w->loop);
    }
    pump(c);
}

static void process_pipelined(struct loop_task *task)
{
    struct client *c = container_of(task, struct client, task);
    if (c->state == CS_READ_HEAD)
        pump(c);
}

/* ---------------------------------------------------------------- worker entry points ------ */

void proxy_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                  bool tls)
{
    struct client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        worker_client_closed(w);
        return;
    }
    c->w = w;
    c->io.fd = fd;
    c->io.cb = on_client_event;
    loop_timer_init(&c->timer, on_timeout);
    c->iplen = (uint8_t)sock_ip_str(peer, c->ip, sizeof(c->ip));
    c->state = CS_READ_HEAD;
    if (tls) {
        c->tls_gen = w->gen;
        worker_pin(w, c->tls_gen);
        c->ssl = tls_server_ssl(c->tls_gen->cfg->tls->server, fd);
        if (!c->ssl) {
            worker_unpin(w, c->tls_gen);
            close(fd);
            free(c);
            worker_client_closed(w);
            return;
        }
        c->state = CS_HANDSHAKE;
        /* Handshake flights, the session ticket and the response are separate small writes:
         * Nagle would hold each behind the acknowledgement of the one before. */
        sock_nodelay(fd);
        c->nodelay = true;
    }
    c->idle_since = loop_now(w->loop);
    c->next = w->clients;
    if (w->clients)
        w->clients->prev = c;
    w->clients = c;
    arm_timer(c);
    c->readable = true; /* accepted once data arrived: read it now, not after an epoll round */
    c->writable = true;
    pump(c);
    (void)peerlen;
}

void proxy_drain(struct worker *w)
{
    struct client *c = w->clients;
    while (c) {
        struct client *next = c->next;
        if (c->state == CS_READ_HEAD && !c->head_start)
            client_close(c);
        c = next;
    }
}

int proxy_cut_retired(struct worker *w)
{
    int n = 0;
    struct client *c = w->clients;
    while (c) {
        struct client *next = c->next;
        if (c->x && c->x->backend >= 0 &&
            atomic_load_explicit(&x_backend(c)->retired, memory_order_relaxed)) {
            c->x->end_term = c->x->resp_started ? "KD" : "KH";
            client_close(c);
            n++;
        }
        c = next;
    }
    return n;
}

void proxy_close_all(struct worker *w)
{
    while (w->clients)
        client_close(w->clients);
    while (w->free_exchanges) {
        struct exchange *x = w->free_exchanges;
        w->free_exchanges = x->next_free;
        free(x);
    }
    w->nfree_exchanges = 0;
}
