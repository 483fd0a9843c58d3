/* h1session — see h1session.h.
 *
 * One struct client per accepted connection. Its state says what it waits for:
 *
 *   READ_HEAD ──head parsed──► EXCHANGE ──exchange done──► READ_HEAD (keep-alive; pipelined
 *       │                        │  (connect, relay, retries:      bytes are parsed at once)
 *       │ bad request            │   exchange.c)
 *       ▼                        ├──101 Switching Protocols──► TUNNEL
 *   ERROR_REPLY ◄── no backend / upstream failed before the response started (502/503/504)
 *       │                        │
 *       ▼                        ▼ failure after the response started: cut, never completed
 *    LINGER (response sent, write side shut, input discarded) ──► closed
 *
 * The session is its exchange's body source (`in`, peek/consume/fill) and response sink
 * (on_head serialises the HTTP/1 head into the exchange's resph; send writes head and body bytes
 * with one writev). It acts on what exchange_pump()/exchange_timeout() return; the exchange only
 * calls back into h1_resume() from its upstream event handler, which then pumps the session.
 *
 * Buffers: `in` holds bytes from the client (the request head, then body bytes, then maybe
 * pipelined requests). An idle keep-alive connection holds no buffer at all.
 *
 * One timer per client. arm_timer() derives its deadline from the state and timestamps after each
 * step (while exchanging, the exchange's deadline), so every wait has a deadline and each expiry
 * has one handler (on_timeout).
 */
#include "session/h1session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/buf.h"
#include "config/config.h"
#include "net/conn.h"
#include "core/exchange.h"
#include "http/http1.h"
#include "base/log.h"
#include "base/loop.h"
#include "core/obs.h"
#include "core/pp_gate.h"
#include "http/reply.h"
#include "http/rewrite.h"
#include "base/sock.h"
#include "base/util.h"
#include "core/worker_ctx.h"
#include "session/h2session.h"

#define LINGER_MS 2000u /* after an error reply: how long to drain unread input before closing */

enum client_state {
    CS_HANDSHAKE = 0, /* TLS listener: the handshake runs before the first request */
    CS_READ_HEAD,
    CS_EXCHANGE, /* the exchange connects, relays, retries (exchange.c) */
    CS_TUNNEL,
    CS_ERROR_REPLY,
    CS_LINGER,
    CS_CLOSED,
};

/* A client connection. Small on purpose: this is all an idle keep-alive connection holds. */
struct client {
    struct loop_io io;
    SSL *ssl;      /* NULL on the plain listener */
    struct config_tls *tls; /* TLS: the `tls` section it was accepted under (its contexts and
                               settings), referenced until close: never its whole generation */
    char *subject; /* verified client certificate subject (mTLS with clientSubjectHeader) */
    struct loop_timer timer;
    struct loop_task task; /* deferred: free after close, process pipelined bytes, or go on
                              after a byte budget was spent (on_task) */
    struct worker_ctx *w;
    struct worker_session ws;   /* its entry in the worker's registry (h1_session_ops) */
    struct buf *in;             /* bytes from the client; NULL while idle */
    struct exchange *x;         /* the request in flight; NULL between requests */
    const char *reply;          /* generated response: static text, or reply_buf's bytes */
    struct buf *reply_buf;      /* a generated response built per request (redirect) */
    uint32_t reply_len, reply_sent;
    uint64_t head_start;  /* first byte of the current request head arrived (0: none yet) */
    uint64_t idle_since;  /* READ_HEAD entered */
    uint64_t progress_at; /* last byte moved, or state change (tunnel, reply, linger) */
    uint32_t parse_prev;
    uint32_t requests;
    bool pp_pending : 1; /* proxyProtocol: the first bytes may be a PROXY header (pp_gate) */
    bool pp_trusted : 1; /* the peer is in proxyProtocol.trustedNetworks */
    uint8_t state; /* enum client_state */
    bool readable, writable, eof, rdhup, nodelay;
    bool watched; /* in the worker's epoll set (see watch_if_waiting) */
    /* The request in flight (set by start_exchange), in the room left by the fields above. */
    bool req_keepalive : 1; /* the client asked to keep its connection */
    bool http10 : 1;        /* an HTTP/1.0 client */
    bool more_input : 1;    /* a body or an Upgrade: the client is read while exchanging */
    bool keepalive : 1;     /* the session's decision for this response (h1_on_head) */
    bool req_body : 1;      /* the request has body bytes to come (a length > 0, chunked) */
    bool reply_keep : 1;    /* the reply being sent (CS_ERROR_REPLY) keeps the connection: an
                               answer of golb's own to a request without a body (EX_REPLY) */
    uint8_t iplen;
    char ip[46]; /* INET6_ADDRSTRLEN */
};

static void pump(struct client *c);
static void arm_timer(struct client *c);
static void on_task(struct loop_task *task);
static void on_exchange_status(struct client *c, enum exchange_status st);
static const struct exchange_client_ops h1_exchange_ops;

/* The session's one place for configuration: the request's generation while one is in flight
 * (its tunnel included), else the worker's current one (what the next request will start on). */
static inline const struct config *c_cfg(const struct client *c)
{
    return c->x ? exchange_config(c->x) : c->w->cfg;
}

/* Keep-alive is over for this connection: the worker drains, or a reload closed the listener it
 * came on (ws.listener_gone). Its response in flight says Connection: close and it closes after
 * it; an idle one closes at once (h1_drain). */
static inline bool c_closing(const struct client *c)
{
    return c->w->draining || c->ws.listener_gone;
}

/* What the session may know of its exchange (exchange.h); all zero without one. */
static void x_result(const struct client *c, struct exchange_result *r)
{
    if (c->x)
        exchange_result(c->x, r);
    else
        *r = (struct exchange_result){0};
}

/* ---------------------------------------------------------------- lifecycle ---------------- */

static void free_task(struct loop_task *task)
{
    free(container_of(task, struct client, task));
}

/* Gives back the exchange (its buffers, pipes and upstream) and the input buffer when empty. */
static void release_buffers(struct client *c)
{
    if (c->x) {
        exchange_put(c->x);
        c->x = NULL;
    }
    if (c->in && buf_len(c->in) == 0) {
        buf_put(&c->w->bufs, c->in);
        c->in = NULL;
    }
}

static void client_drop_upstream(struct client *c, enum lb_outcome outcome)
{
    if (c->x)
        exchange_release_upstream(c->x, outcome);
}

/* Counts and logs the request of this connection as ended (obs.h): the exchange's, or for an error
 * answered before any exchange existed (a malformed head, a header timeout), a bare one. */
static void obs_end(struct client *c, int status, const char *term, const char *error_type)
{
    if (c->x) {
        exchange_obs_end(c->x, status, term, error_type, c->ip);
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
    if (!c->x)
        return;
    struct exchange_result r;
    exchange_result(c->x, &r);
    if (!r.log_pending)
        return;
    if (c->state == CS_TUNNEL || r.tunnel)
        obs_end(c, 101, "--", NULL);
    else if (r.end_term)
        obs_end(c, r.resp_started ? r.backend_status : 0, r.end_term, r.end_error);
    else
        obs_end(c, r.resp_started ? r.backend_status : 0,
                !r.resp_started && r.req_done ? "CH" : "CD", "client_abort");
}

/* The termination code and error type of an answer golb generates itself; r: its exchange's
 * (x_result). */
static void obs_end_reply(struct client *c, int status, const struct exchange_result *r)
{
    const char *term, *err;
    obs_reply_terms(status, c->x != NULL, c->state == CS_EXCHANGE && c->x && r->relaying, &term,
                    &err);
    if (c->x && r->end_term) {
        term = r->end_term;
        err = r->end_error;
    }
    if (c->x)
        exchange_obs_end_reply(c->x, status, term, err, c->ip);
    else
        obs_end(c, status, term, err);
}

static void client_close(struct client *c)
{
    if (c->state == CS_CLOSED)
        return;
    obs_end_on_close(c);
    client_drop_upstream(c, LB_FAILED);
    c->state = CS_CLOSED;
    loop_timer_cancel(c->w->loop, &c->timer);
    tls_free(c->ssl, false);
    c->ssl = NULL;
    free(c->subject);
    c->subject = NULL;
    config_tls_unref(c->tls);
    c->tls = NULL;
    close(c->io.fd);
    c->io.fd = -1;
    struct buf_pool *pool = &c->w->bufs;
    buf_put(pool, c->in);
    c->in = NULL;
    buf_put(pool, c->reply_buf);
    c->reply_buf = NULL;
    release_buffers(c);
    struct worker_ctx *w = c->w;
    worker_ctx_session_remove(w, &c->ws);
    /* The task may be queued (pipelined input, a spent budget: on_task); re-targeting it to free
     * is safe because loop_defer() keeps an already-queued task queued (deferred or yielded) and
     * the callback is read at run time. */
    c->task.cb = free_task;
    loop_defer(w->loop, &c->task, free_task);
    worker_ctx_session_closed(w);
}

/* The orderly close: the last response is complete (or none was asked for: an idle keep-alive
 * connection, a drain). A TLS client gets close_notify first, so an end of a body delimited by
 * the close reads as complete. Every other close (client_close alone) is abortive: a body cut
 * after its head must end without close_notify, which is how the client tells it was cut. */
static void client_close_orderly(struct client *c)
{
    if (c->ssl)
        tls_close_notify(c->ssl);
    client_close(c);
}

/* Close after a complete response: shut our side, then drain what the client still sends for a
 * moment, so unread input does not turn our close into a reset that destroys the response. */
static void client_linger(struct client *c)
{
    client_drop_upstream(c, LB_FAILED);
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

static void client_reply_buf(struct client *c, struct buf *b, uint32_t len);

/* client_fail's answer to a gRPC call (a gRPC-Web client, over HTTP/1): grpc-status in the head
 * (reply_desc.grpc). False when no buffer is left (then the plain answer goes). */
static bool client_fail_grpc(struct client *c, int status)
{
    struct reply_desc d;
    reply_error(&d, status, true);
    struct buf *b = buf_get(&c->w->bufs);
    if (!b)
        return false;
    b->pos = b->last = 0;
    if (!reply_http1(&d, false, c->http10, b)) {
        buf_put(&c->w->bufs, b);
        return false;
    }
    c->reply_keep = false;
    client_reply_buf(c, b, b->last);
    return true;
}

/* Answers status and closes, unless the response has started: then the only honest move is to
 * cut the connection so the client sees an incomplete response, never wrong bytes. */
static void client_fail(struct client *c, int status, enum lb_outcome outcome)
{
    struct exchange_result r;
    x_result(c, &r);
    if (r.resp_started) {
        client_close(c);
        return;
    }
    obs_end_reply(c, status, &r);
    client_drop_upstream(c, outcome);
    release_buffers(c);
    if (unlikely(r.grpc) && status >= 400 && client_fail_grpc(c, status))
        return;
    c->reply = reply_text(status, &c->reply_len);
    c->reply_sent = 0;
    c->reply_keep = false;
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

/* ---------------------------------------------------------------- timers ------------------- */

static void arm_timer(struct client *c)
{
    /* Not read while exchanging: the exchange's deadline follows its own settings. */
    const struct config *cfg = c->state == CS_EXCHANGE ? NULL : c_cfg(c);
    uint64_t d;
    switch (c->state) {
    case CS_HANDSHAKE:
        d = c->idle_since + c->tls->handshake_timeout_ms;
        break;
    case CS_READ_HEAD:
        if (c->head_start)
            d = c->head_start + cfg->client_header_timeout_ms;
        else
            d = c->idle_since +
                (c->requests ? cfg->keepalive_timeout_ms : cfg->client_header_timeout_ms);
        break;
    case CS_EXCHANGE:
        d = exchange_deadline(c->x);
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
        obs_tls_handshake(c->w, OBS_TLS_FAILED);
        client_close(c);
        return;
    case CS_READ_HEAD:
        if (c->head_start)
            client_fail(c, 408, LB_OK);
        else if (c->pp_pending && c->pp_trusted &&
                 ((c->in && buf_len(c->in) > 0) || c_cfg(c)->pp_required)) {
            obs_proxy_header_error(c->w, OBS_PP_TIMEOUT); /* a PROXY header never completed */
            client_close(c);
        } else
            client_close_orderly(c); /* idle keep-alive connection: close quietly */
        return;
    case CS_EXCHANGE: {
        enum exchange_status st = exchange_timeout(c->x);
        if (st == EX_WAIT)
            pump(c); /* the next backend: a pooled connection, or a connect under way */
        else
            on_exchange_status(c, st);
        return;
    }
    default:
        client_close(c);
        return;
    }
}

/* ---------------------------------------------------------------- I/O helpers -------------- */

/* Transport shorthands (conn.h): the client reads and writes through its own plain or TLS
 * transport and keeps its own readiness flags. */
static ssize_t client_read(struct client *c)
{
    return conn_read(c->io.fd, c->ssl, c->in, &c->readable, &c->writable, c->rdhup);
}

static ssize_t client_writev(struct client *c, const struct iovec *iov, int n)
{
    return conn_writev(c->io.fd, c->ssl, iov, n, &c->writable, &c->readable);
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

/* ---------------------------------------------------------------- the exchange's client ---- */

static const char *h1_peek(void *cl, uint32_t *len)
{
    return buf_peek(((struct client *)cl)->in, len);
}

static void h1_consume(void *cl, uint32_t n)
{
    struct client *c = cl;
    c->in->pos += n;
}

static ssize_t h1_fill(void *cl)
{
    struct client *c = cl;
    if (!c->readable || c->eof)
        return -EAGAIN;
    if (!ensure_in(c))
        return -ENOMEM;
    ssize_t r = client_read(c);
    if (r == -EAGAIN)
        return -EAGAIN;
    if (r <= 0) {
        c->eof = true;
        return -EPIPE;
    }
    return r;
}

/* The HTTP/1 head this client gets, from the backend's response and the session's decisions. */
static bool h1_response_head(struct client *c, const struct http1_response *resp,
                                const struct exchange_head *h, struct buf *b)
{
    struct rewrite_response opt = {.http10 = c->http10,
                                   .dechunk = h->dechunk,
                                   .keepalive = c->keepalive,
                                   .set_cookie = h->set_cookie,
                                   .set_cookie_len = h->set_cookie_len,
                                   .headers = h->headers};
    return rewrite_response_head(resp, &opt, b);
}

static int h1_on_head(void *cl, const struct http1_response *resp, const struct exchange_head *h,
                      struct buf *out)
{
    struct client *c = cl;
    if (resp->status < 200 && resp->status != 101) {
        /* Interim (100 Continue, 103 Early Hints): relayed to HTTP/1.1 clients only. */
        if (c->http10)
            return 0;
    } else {
        c->keepalive = c->req_keepalive && !c_closing(c) && h->req_done &&
                       resp->body != HTTP1_BODY_CLOSE && !h->dechunk && resp->status != 101;
    }
    return h1_response_head(c, resp, h, out) ? 0 : -ENOSPC;
}

static ssize_t h1_send(void *cl, const struct iovec *head, const struct iovec *body,
                       bool streaming)
{
    struct client *c = cl;
    if (!c->writable)
        return -EAGAIN;
    struct iovec iov[2];
    int n = 0;
    if (head->iov_len)
        iov[n++] = *head;
    if (body)
        iov[n++] = *body;
    ssize_t wr = client_writev(c, iov, n);
    if (wr == -EAGAIN)
        return -EAGAIN;
    if (wr < 0)
        return -EPIPE;
    /* A body streams: on loopback one buffer is less than an MSS, and Nagle would hold each
     * write until the last one is acknowledged. */
    if (streaming && (size_t)wr > head->iov_len)
        client_nodelay(c);
    return wr;
}

static int h1_splice_end(void *cl, bool response, struct exchange_splice *out)
{
    struct client *c = cl;
    if (c->ssl)
        return -ENOTSUP; /* through TLS, bodies are copied (kernel TLS would splice here) */
    if (response)
        client_nodelay(c);
    *out = (struct exchange_splice){c->io.fd, &c->readable, &c->writable, &c->eof};
    return 0;
}

static void h1_resume(void *cl)
{
    pump(cl);
}

/* A transfer stopped at its byte budget (LOOP_IO_BUDGET) with more to do: go on once the worker's
 * other ready connections had their turn. */
static void client_yield(struct client *c)
{
    loop_yield(c->w->loop, &c->task, on_task);
}

static void h1_yield(void *cl)
{
    client_yield(cl);
}

static const struct exchange_client_ops h1_exchange_ops = {
    .peek = h1_peek,
    .consume = h1_consume,
    .fill = h1_fill,
    .on_head = h1_on_head,
    .send = h1_send,
    .splice_end = h1_splice_end,
    .resume = h1_resume,
    .yield = h1_yield,
};

/* ---------------------------------------------------------------- request heads ------------ */

/* What the exchange needs to know about this client and request. */
static struct exchange_request request_info(const struct client *c, const struct http1_request *req)
{
    const struct config_tls *tls = c->tls ? c->tls : c_cfg(c)->tls;
    return (struct exchange_request){
        .client_ip = c->ip,
        .client_ip_len = c->iplen,
        .https = c->ssl != NULL,
        .subject = c->subject,
        .subject_header = tls ? tls->client_subject_header : NULL,
        .dechunk = req->rq.version == HTTP_V1_0,
        .head_wait_ms = c->head_start ? loop_now(c->w->loop) - c->head_start : 0,
    };
}

/* Starts forwarding a parsed request as an exchange. */
static void start_exchange(struct client *c, const struct http1_request *req, size_t head_len)
{
    struct worker_ctx *w = c->w;
    c->in->pos += (uint32_t)head_len;
    c->parse_prev = 0;
    w->stats.requests++;
    c->req_keepalive = (req->rq.flags & HTTP1_MF_KEEP_ALIVE) != 0;
    c->http10 = req->rq.version == HTTP_V1_0;
    c->more_input = req->rq.body != HTTP_BODY_NONE || (req->rq.flags & HTTP1_MF_UPGRADE);
    c->req_body = req->rq.body == HTTP_BODY_STREAM ||
                  (req->rq.body == HTTP_BODY_LENGTH && req->rq.content_length > 0);
    c->keepalive = false; /* earned with the response head (h1_on_head) */

    struct exchange *x = c->x = exchange_get(w, &h1_exchange_ops, c);
    if (!x) {
        client_fail(c, 503, LB_OK);
        return;
    }
    struct exchange_request info = request_info(c, req);
    enum exchange_status st = exchange_start(x, &req->rq, &info);
    if (st != EX_WAIT) {
        on_exchange_status(c, st);
        return;
    }
    c->state = CS_EXCHANGE;
}

/* tls.redirectHttp: answers a plain-HTTP request with 308 to the same host and target on the
 * HTTPS listener's port (omitted when 443), then closes like any reply golb generates. The request
 * was parsed and validated first, so the Location is built from checked spans only. */
static void redirect_to_https(struct client *c, const struct http1_request *req)
{
    const char *host = req->rq.authority;
    size_t hlen = req->rq.authority_len;
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
    const char *target = req->rq.path;
    size_t tlen = req->rq.path_len;
    if (req->rq.flags & HTTP1_MF_ASTERISK) {
        target = "/";
        tlen = 1;
    }
    struct buf *b = buf_get_large(&c->w->bufs, (uint32_t)(hlen + tlen + 256));
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
    const struct config *cfg = c_cfg(c);
    struct http1_limits lim = {.max_head = cfg->max_header_size,
                               .max_request_line = cfg->max_request_line};
    size_t len = buf_len(c->in);
    ssize_t n = http1_parse_request(c->in->data + c->in->pos, len, c->parse_prev, &lim, &req);
    if (n == -EAGAIN) {
        c->parse_prev = (uint32_t)len; /* a full buffer grows in read_head (grow_in) */
        return;
    }
    if (n < 0) {
        client_fail(c, req.err_status ? req.err_status : 400, LB_OK);
        return;
    }
    if (req.rq.flags & HTTP1_MF_CONNECT) {
        client_fail(c, 501, LB_OK); /* golb is a reverse proxy, not a forward tunnel */
        return;
    }
    if (!c->ssl && cfg->tls && cfg->tls->redirect_http) {
        redirect_to_https(c, &req);
        return;
    }
    start_exchange(c, &req, (size_t)n);
}

/* A head that fills an ordinary buffer goes on in a large one (maxHeaderSize and a little), taken
 * only now: body buffers stay small. Returns false after answering when it cannot grow (already
 * large: 431, the parser's limit decides before that; out of memory: 503). */
static bool grow_in(struct client *c)
{
    uint32_t need = worker_ctx_head_buf_size(c_cfg(c)->max_header_size);
    if (c->in->cap >= need) {
        client_fail(c, 431, LB_OK);
        return false;
    }
    struct buf *b = buf_grow(&c->w->bufs, c->in, need);
    if (!b) {
        client_fail(c, 503, LB_OK);
        return false;
    }
    c->in = b;
    return true;
}

/* The connection speaks HTTP/2 (ALPN chose h2, or the preface came on the plain listener with
 * http2.cleartext): its transport and what was read go to an HTTP/2 session, and this one ends
 * without closing anything. */
static void client_to_h2(struct client *c)
{
    struct worker_ctx *w = c->w;
    struct h2session_conn t = {.fd = c->io.fd,
                               .ssl = c->ssl,
                               .tls = c->tls,
                               .subject = c->subject,
                               .in = c->in,
                               .ip = c->ip,
                               .iplen = c->iplen,
                               .readable = c->readable,
                               .writable = c->writable,
                               .rdhup = c->rdhup,
                               .listener = c->ws.listener,
                               .listener_gone = c->ws.listener_gone};
    if (c->watched)
        loop_io_del(w->loop, &c->io);
    loop_timer_cancel(w->loop, &c->timer);
    c->ssl = NULL;
    c->tls = NULL;
    c->subject = NULL;
    c->in = NULL;
    c->io.fd = -1;
    c->state = CS_CLOSED;
    worker_ctx_session_remove(w, &c->ws);
    c->task.cb = free_task;
    loop_defer(w->loop, &c->task, free_task);
    h2session_take(w, &t);
}

/* http2.cleartext: whether the first bytes of a plain connection are (so far) the HTTP/2
 * preface. 1: all of it, 0: a prefix of it (wait for more), -1: not HTTP/2. */
static int h2c_preface(const struct client *c)
{
    if (c->ssl || c->requests || c->head_start || !c_cfg(c)->http2.cleartext)
        return -1;
    uint32_t n = MIN(buf_len(c->in), (uint32_t)H2SESSION_PREFACE_LEN);
    if (memcmp(c->in->data + c->in->pos, H2SESSION_PREFACE, n) != 0)
        return -1;
    return n == H2SESSION_PREFACE_LEN ? 1 : 0;
}

/* proxyProtocol on the plain listener: decides on the first bytes read (pp_gate), drops a
 * header and takes the client address it carries. Returns false when the connection was closed
 * or more bytes are needed (*more). */
static bool take_proxy_header(struct client *c, bool *more)
{
    struct sockaddr_storage client;
    socklen_t clientlen = 0;
    size_t len = 0;
    *more = false;
    switch (pp_gate_check(c->w, c->pp_trusted, c->in->data + c->in->pos, buf_len(c->in), &len,
                          &client, &clientlen)) {
    case PP_GATE_CLOSE:
        client_close(c);
        return false;
    case PP_GATE_WAIT:
        if (c->eof || buf_len(c->in) >= PP_GATE_MAX) {
            obs_proxy_header_error(c->w, OBS_PP_MALFORMED); /* cut short, or too long */
            client_close(c);
            return false;
        }
        *more = true;
        return false;
    case PP_GATE_DONE:
        break;
    }
    c->pp_pending = false;
    c->in->pos += (uint32_t)len;
    if (clientlen)
        c->iplen = (uint8_t)sock_ip_str((const struct sockaddr *)&client, c->ip, sizeof(c->ip));
    return true;
}

/* READ_HEAD: read what the client sent and parse once a head may be complete. */
static void read_head(struct client *c)
{
    for (;;) {
        if (unlikely(c->pp_pending) && c->in && buf_len(c->in) > 0) {
            bool more;
            if (!take_proxy_header(c, &more)) {
                if (more)
                    goto read_more;
                return;
            }
        }
        if (c->in && buf_len(c->in) > 0 && !c->head_start) {
            int h2 = h2c_preface(c);
            if (h2 == 1) {
                client_to_h2(c);
                return;
            }
            if (h2 == 0 && c->readable && !c->eof)
                goto read_more; /* a prefix of the preface: the rest decides */
            c->head_start = loop_now(c->w->loop);
        }
        if (c->in && buf_len(c->in) > 0) {
            process_head(c);
            if (c->state != CS_READ_HEAD)
                return;
        }
    read_more:
        if (!c->readable || c->eof)
            break;
        if (!ensure_in(c)) {
            client_fail(c, 503, LB_OK);
            return;
        }
        if (buf_space(c->in) == 0 && !grow_in(c))
            return;
        ssize_t r = client_read(c);
        if (r == -EAGAIN)
            break;
        if (r <= 0) {
            c->eof = true;
            break;
        }
    }
    if (c->eof) { /* nothing complete to answer */
        if (c->in && buf_len(c->in) > 0)
            client_close(c); /* a request cut by the client */
        else
            client_close_orderly(c); /* the client ended between requests */
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
        obs_tls_handshake(c->w, OBS_TLS_FAILED);
        if (rc == -EBADMSG)
            (void)!write(c->io.fd, reply_plain_on_tls, strlen(reply_plain_on_tls));
        client_close(c);
        return false;
    }
    obs_tls_handshake(c->w, tls_session_reused(c->ssl) ? OBS_TLS_RESUMED : OBS_TLS_FULL);
    const struct config_tls *tls = c->tls;
    if (tls->client_subject_header) {
        char subject[1024];
        size_t n = tls_peer_subject(c->ssl, subject, sizeof(subject));
        if (n && !(c->subject = strdup(subject))) {
            client_close(c);
            return false;
        }
    }
    c->readable = true; /* (see below) */
    if (tls_alpn_h2(c->ssl)) {
        client_to_h2(c);
        return false;
    }
    c->state = CS_READ_HEAD;
    c->idle_since = loop_now(c->w->loop);
    /* The handshake may have run on a writable-only event and read the client's first request
     * into OpenSSL's buffer: epoll reports no EPOLLIN for bytes already taken off the socket, so
     * read on now rather than wait for an edge that will not come. */
    c->readable = true;
    return true;
}

/* ---------------------------------------------------------------- exchange outcomes -------- */

/* Back to READ_HEAD for the next request on a kept connection. */
static void next_request(struct client *c)
{
    struct worker_ctx *w = c->w;
    c->state = CS_READ_HEAD;
    c->head_start = 0;
    c->idle_since = loop_now(w->loop);
    c->parse_prev = 0;
    client_nodelay(c);
    arm_timer(c);
    /* Pipelined bytes (or more to read) are handled from the loop, not by recursion here, so a
     * burst of pipelined requests costs no stack depth. */
    if ((c->in && buf_len(c->in) > 0) || c->readable)
        loop_defer(w->loop, &c->task, on_task);
    else if (c->eof)
        client_close_orderly(c);
}

/* EX_REPLY: golb answers the request itself (a route's redirect or respond, 403, 404, 429). The
 * connection stays open when the request had no body and both sides allow it, else the answer
 * closes it like an error reply. */
static void client_reply(struct client *c)
{
    const struct reply_desc *d = exchange_reply(c->x);
    struct exchange_result r;
    exchange_result(c->x, &r);
    bool keep = c->req_keepalive && !c->req_body && !c_closing(c);
    size_t need = 512 + d->location_len + d->body_len;
    for (size_t i = 0; i < d->nfields; i++)
        need += d->fields[i].name_len + d->fields[i].value_len + 4;
    struct buf *b = need <= WORKER_CTX_BUF_SIZE ? buf_get(&c->w->bufs)
                                                : buf_get_large(&c->w->bufs, (uint32_t)need);
    if (!b) {
        client_fail(c, 503, LB_OK);
        return;
    }
    b->pos = b->last = 0;
    if (!reply_http1(d, keep, c->http10, b)) {
        buf_put(&c->w->bufs, b);
        client_fail(c, 500, LB_OK);
        return;
    }
    exchange_obs_end_reply(c->x, d->status, r.end_term ? r.end_term : "--", r.end_error, c->ip);
    c->reply_keep = keep;
    client_reply_buf(c, b, b->last);
}

/* The exchange is complete: serve the next request, or close. */
static void finish_exchange(struct client *c)
{
    struct exchange_result r;
    exchange_result(c->x, &r);
    obs_end(c, r.backend_status, "--", NULL);
    exchange_finish(c->x);
    c->requests++;
    bool keep = c->keepalive && !r.body_abandoned && !c_closing(c);
    release_buffers(c);
    if (!keep) {
        if ((!c->in || buf_len(c->in) == 0) && !c->readable) {
            client_close_orderly(c);
            return;
        }
        client_linger(c);
        return;
    }
    next_request(c);
}

static void pump_tunnel(struct client *c);

/* A 101 went down: from now on bytes flow both ways untouched. */
static void start_tunnel(struct client *c)
{
    c->state = CS_TUNNEL;
    c->progress_at = loop_now(c->w->loop);
    if (!exchange_tunnel(c->x) || (!c->in && !ensure_in(c))) {
        client_close(c);
        return;
    }
    pump_tunnel(c);
}

/* Acts on what the exchange returned (anything but EX_WAIT ends its own work). */
static void on_exchange_status(struct client *c, enum exchange_status st)
{
    switch (st) {
    case EX_WAIT:
        return;
    case EX_DONE:
        finish_exchange(c);
        return;
    case EX_FAIL: {
        struct exchange_result r;
        exchange_result(c->x, &r);
        client_fail(c, r.fail_status, r.fail_outcome);
        return;
    }
    case EX_CLOSE:
        client_close(c);
        return;
    case EX_TUNNEL:
        start_tunnel(c);
        return;
    case EX_REPLY:
        client_reply(c);
        return;
    }
}

/* ---------------------------------------------------------------- tunnel ------------------- */

static void pump_tunnel(struct client *c)
{
    bool err = false;
    struct exchange_tunnel *t = exchange_tunnel(c->x); /* set up by start_tunnel */
    struct conn_end client = {c->io.fd, c->ssl, &c->readable, &c->writable};
    size_t budget = LOOP_IO_BUDGET; /* both directions together */
    bool p1 = conn_relay(client, t->up, c->in, &c->eof, &err, &budget);
    bool p2 = conn_relay(t->up, client, t->buf, t->up_eof, &err, &budget);
    if (err) {
        client_close(c);
        return;
    }
    /* Half-close: pass each side's end of stream on once its bytes are delivered. */
    if (c->eof && buf_len(c->in) == 0 && !t->up_shut) {
        conn_shutdown_write(t->up.fd, t->up.ssl);
        t->up_shut = true;
    }
    if (*t->up_eof && buf_len(t->buf) == 0 && !t->client_shut) {
        conn_shutdown_write(c->io.fd, c->ssl);
        t->client_shut = true;
    }
    if (t->up_shut && t->client_shut) {
        client_close(c);
        return;
    }
    if (p1 || p2)
        c->progress_at = loop_now(c->w->loop);
    if (budget == 0)
        client_yield(c);
}

/* ---------------------------------------------------------------- the pump ----------------- */

/* CS_EXCHANGE: pumps the exchange and acts on its outcome. Returns false when the session's
 * timer is already armed (the next request) or the session closed. */
static bool pump_exchange(struct client *c)
{
    enum exchange_status st = exchange_pump(c->x);
    if (st == EX_WAIT)
        return true;
    on_exchange_status(c, st);
    return st != EX_DONE;
}

/* Makes every step the current state allows, then re-arms the deadline. */
static void pump_steps(struct client *c)
{
    switch (c->state) {
    case CS_HANDSHAKE:
        if (!client_handshake(c))
            return;
        read_head(c);
        if (c->state != CS_EXCHANGE || !pump_exchange(c))
            return;
        break;
    case CS_READ_HEAD:
        read_head(c);
        if (c->state != CS_EXCHANGE || !pump_exchange(c)) /* a head parsed: exchange at once */
            return;
        break;
    case CS_EXCHANGE:
        if (!pump_exchange(c))
            return;
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
            if (c->reply_keep) {
                c->reply_keep = false;
                buf_put(&c->w->bufs, c->reply_buf);
                c->reply_buf = NULL;
                c->reply = NULL;
                next_request(c);
                return;
            }
            client_linger(c);
            return;
        }
        break;
    }
    case CS_LINGER: {
        char scratch[4096];
        size_t budget = LOOP_IO_BUDGET;
        for (;;) {
            if (budget == 0) {
                client_yield(c); /* still readable: the rest after the other connections */
                break;
            }
            ssize_t r = read(c->io.fd, scratch, sizeof(scratch));
            if (r > 0) {
                budget = (size_t)r < budget ? budget - (size_t)r : 0;
                continue;
            }
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
    return c->state == CS_EXCHANGE && c->writable && !c->more_input;
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
    if (c->state == CS_EXCHANGE && exchange_connecting(c->x))
        return; /* nothing to do for the client until the upstream is there */
    pump(c);
}

/* The session's deferred work: pipelined bytes after a response (finish_exchange), or the rest of
 * a transfer that stopped at its byte budget (client_yield). Either way: pump what the state
 * allows now. */
static void on_task(struct loop_task *task)
{
    struct client *c = container_of(task, struct client, task);
    if (c->state != CS_CLOSED)
        pump(c);
}

/* ---------------------------------------------------------------- the worker's registry ---- */

static struct client *client_of(struct worker_session *s)
{
    return container_of(s, struct client, ws);
}

/* Draining, or its listener closed (listener_closed): an idle connection (between requests, no
 * head begun) closes now; the others close after their exchange (c_closing). */
static void h1_drain(struct worker_session *s)
{
    struct client *c = client_of(s);
    if (c->state == CS_READ_HEAD && !c->head_start)
        client_close_orderly(c);
}

/* The worker closes every session: its shutdown deadline (shutdownTimeout) passed, or teardown.
 * A request still in flight is golb's cut, not the client's abort. */
static void h1_close(struct worker_session *s)
{
    struct client *c = client_of(s);
    if (c->x && c->state == CS_EXCHANGE)
        exchange_note_shutdown(c->x);
    client_close(c);
}

static int h1_cut_retired(struct worker_session *s)
{
    struct client *c = client_of(s);
    if (!c->x || !exchange_cut_retired(c->x))
        return 0;
    client_close(c);
    return 1;
}

static const struct worker_session_ops h1_session_ops = {
    .drain = h1_drain,
    .close = h1_close,
    .cut_retired = h1_cut_retired,
    .listener_closed = h1_drain,
};

void h1session_accept(struct worker_ctx *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                      bool tls, uint32_t listener, bool proxy_header)
{
    struct client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        worker_ctx_session_closed(w);
        return;
    }
    c->w = w;
    c->io.fd = fd;
    c->io.cb = on_client_event;
    loop_timer_init(&c->timer, on_timeout);
    c->iplen = (uint8_t)sock_ip_str(peer, c->ip, sizeof(c->ip));
    c->state = CS_READ_HEAD;
    if (unlikely(proxy_header) && !tls) {
        c->pp_pending = true;
        c->pp_trusted = pp_gate_trusted(w, peer);
    }
    if (tls) {
        c->tls = w->cfg->tls;
        config_tls_ref(c->tls);
        c->ssl = tls_server_ssl(c->tls->server, fd);
        if (!c->ssl) {
            config_tls_unref(c->tls);
            close(fd);
            free(c);
            worker_ctx_session_closed(w);
            return;
        }
        c->state = CS_HANDSHAKE;
        /* Handshake flights, the session ticket and the response are separate small writes:
         * Nagle would hold each behind the acknowledgement of the one before. */
        sock_nodelay(fd);
        c->nodelay = true;
    }
    c->idle_since = loop_now(w->loop);
    worker_ctx_session_add(w, &c->ws, &h1_session_ops);
    c->ws.listener = listener;
    arm_timer(c);
    c->readable = true; /* accepted once data arrived: read it now, not after an epoll round */
    c->writable = true;
    pump(c);
    (void)peerlen;
}
