/* exchange — see exchange.h for the contract with the client side.
 *
 *   BUFFER (a body is held until complete or requestBufferSize came: exchange_req_hold_body)
 *     │
 *   PICK ──pooled connection──────────────► RELAY ──both directions done──► EX_DONE
 *     │                                       ▲  │  (101 relayed: EX_TUNNEL)
 *     └──new connect──► CONNECT ──connected───┘  │ a pooled connection the backend had closed:
 *                         │ ▲ failed: next       │ replay once on a fresh connection (CONNECT)
 *                         └─┘ backend (retries)  ▼
 *   EX_FAIL (502/503/504/408/400, answered by the session) / EX_CLOSE (cut the client)
 *
 * In RELAY both directions run at once (an upstream may answer before it has read the whole
 * request body). exchange_pump() moves bytes until neither direction can progress: the request
 * head golb serialised plus body bytes from the client side's source go up; the response head the
 * session serialised plus body bytes from `uin` go down through send(). Each direction reads only
 * when its buffer is drained, so a slow reader stops the reading of the other side (backpressure)
 * and memory stays at a few buffers per exchange.
 *
 * Buffers (struct buf, from the worker's pool), each held only while bytes wait in it, so that an
 * exchange at rest (a long poll, an idle stream, a quiet tunnel) holds none (x_rest):
 *   reqh  the request head as golb rewrote it, kept while a replay may need it: a request sent on
 *         a pooled connection that the backend had just closed is replayed on a fresh one, if
 *         that shows before any body byte went or any response byte came. HTTP/1 keeps it until
 *         the response head (a connection has one exchange at a time); a stream session's
 *         exchange gives it back once sent, or REPLAY_WINDOW_MS after sending it on a pooled
 *         connection (the keep-alive race a replay is for), so its idle streams hold none
 *   uin   bytes from the upstream: response head, then body bytes; taken to read, given back
 *         once the session took them
 *   resph the response head as the session serialised it (also interim 1xx heads), until sent
 *   reqt  the last chunk with the request's trailers, while it is sent
 */
#include "core/exchange_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "upstream/backend.h"
#include "base/buf.h"
#include "config/config.h"
#include "core/generation.h"
#include "core/route.h"
#include "base/log.h"
#include "base/loop.h"
#include "http/forwarded.h"
#include "http/grpc.h"
#include "net/proxy_proto.h"
#include "http/rewrite.h"
#include "base/sock.h"
#include "upstream/upstream.h"
#include "upstream/h2up.h"
#include "base/util.h"
#include "core/worker_ctx.h"

/* Bodies with at least this much left (Content-Length) or close-delimited ones move through a
 * pipe with splice(2) instead of being copied through a buffer. Below it, copying is cheaper. */
#define SPLICE_MIN (32u * 1024u)

/* Exchanges kept for reuse per worker, so steady traffic never mallocs one. */
#define MAX_FREE_EXCHANGES 256

static void on_upstream_event(struct upstream_conn *up, uint32_t events);
static void connect_next(struct exchange *x);

/* ---------------------------------------------------------------- lifecycle ---------------- */

struct exchange *exchange_get(struct worker_ctx *w, const struct exchange_client_ops *ops,
                              void *client)
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
    x->w = w;
    x->ops = ops;
    x->client = client;
    x->req_pipe = x->resp_pipe = (struct kpipe){.r = -1, .w = -1};
    x->splice_req.fd = x->splice_resp.fd = -1;
    x->backend = -1;
    x->route = -1;
    x->gen = w->gen; /* the request runs on the generation it started on, to its end */
    x->pool = &x->gen->pools[0]; /* default, until its route says otherwise */
    worker_ctx_pin(w, x->gen);
    return x;
}

void exchange_put(struct exchange *x)
{
    struct worker_ctx *w = x->w;
    exchange_release_upstream(x, LB_FAILED);
    pipe_pool_put(&w->pipes, &x->req_pipe);
    pipe_pool_put(&w->pipes, &x->resp_pipe);
    buf_put(&w->bufs, x->reqh);
    buf_put(&w->bufs, x->uin);
    buf_put(&w->bufs, x->resph);
    buf_put(&w->bufs, x->reqt);
    while (x->hold) {
        struct buf *b = x->hold;
        x->hold = b->next;
        buf_put(&w->bufs, b);
    }
    if (x->gen)
        worker_ctx_unpin(w, x->gen);
    x->gen = NULL;
    if (w->nfree_exchanges < MAX_FREE_EXCHANGES) {
        x->next_free = w->free_exchanges;
        w->free_exchanges = x;
        w->nfree_exchanges++;
    } else {
        free(x);
    }
}

void exchange_pool_free(struct worker_ctx *w)
{
    while (w->free_exchanges) {
        struct exchange *x = w->free_exchanges;
        w->free_exchanges = x->next_free;
        free(x);
    }
    w->nfree_exchanges = 0;
}

enum exchange_status exchange_fail(struct exchange *x, int status, enum lb_outcome outcome)
{
    x->res = EX_FAIL;
    x->fail_status = status;
    x->fail_outcome = outcome;
    return EX_FAIL;
}

/* Ends this exchange_pump call; the session calls again after the worker's other ready events. */
void exchange_yield(struct exchange *x)
{
    if (!x->yielded)
        x->ops->yield(x->client);
    x->yielded = true;
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
static void drop_upstream(struct exchange *x, bool reusable, enum lb_outcome outcome)
{
    if (!x->up && likely(!x->h2s))
        return;
    struct backend *b = ex_backend(x, x->backend);
    atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
    balancer_release(ex_balancer(x), x->backend, outcome, pick_age_us(x));
    if (unlikely(x->h2s)) { /* a stream still open is reset (CANCEL) */
        h2up_stream_close(x->h2s);
        x->h2s = NULL;
        return;
    }
    upstream_release_at_most(x->up, reusable, ex_pool_cfg(x)->upstream_max_idle);
    x->up = NULL;
}

void exchange_release_upstream(struct exchange *x, enum lb_outcome outcome)
{
    drop_upstream(x, false, outcome);
}

void exchange_finish(struct exchange *x)
{
    if (unlikely(x->h2s) && x->h2s->failed) { /* ended by golb after the backend failed */
        backend_report_failure(ex_backend(x, x->backend), ex_pool_cfg(x)->max_fails,
                               "HTTP/2 stream failed");
        drop_upstream(x, false, LB_FAILED);
        return;
    }
    backend_report_success(ex_backend(x, x->backend));
    /* Reuse is earned: the response said keep-alive, ended exactly where its framing said (no
     * byte left over, even after a bodiless 204/304/HEAD answer) and the request went out whole. */
    bool reusable =
        x->resp_keepalive && x->req_done && !x->up_eof && (!x->uin || buf_len(x->uin) == 0);
    drop_upstream(x, reusable, LB_OK);
}

bool exchange_cut_retired(struct exchange *x)
{
    if (x->backend < 0 ||
        !atomic_load_explicit(&ex_backend(x, x->backend)->retired, memory_order_relaxed))
        return false;
    x->end_term = x->resp_started ? "KD" : "KH";
    return true;
}

void exchange_note_shutdown(struct exchange *x)
{
    if (x->resp_started || (!x->req_done && x->req_body != HTTP1_BODY_NONE &&
                            (x->phase == XP_RELAY || x->phase == XP_BUFFER)))
        x->end_term = "KD";
    else if (x->phase == XP_RELAY)
        x->end_term = "KH";
    else
        x->end_term = "KC";
    x->end_error = "shutdown";
}

bool exchange_connecting(const struct exchange *x)
{
    return x->phase == XP_CONNECT;
}

const struct config *exchange_config(const struct exchange *x)
{
    return ex_cfg(x);
}

const struct reply_desc *exchange_reply(const struct exchange *x)
{
    return x->res == EX_REPLY ? &x->reply : NULL;
}

void exchange_result(const struct exchange *x, struct exchange_result *out)
{
    *out = (struct exchange_result){
        .fail_status = x->fail_status,
        .fail_outcome = x->fail_outcome,
        .backend_status = x->obs.backend_status,
        .end_term = x->end_term,
        .end_error = x->end_error,
        .resp_started = x->resp_started,
        .req_done = x->req_done,
        .relaying = x->phase >= XP_RELAY,
        .tunnel = x->tunnel_pending,
        .body_abandoned = x->body_abandoned,
        .log_pending = x->obs.started && !x->obs.ended,
        .grpc = x->grpc,
    };
}

void exchange_obs_end(struct exchange *x, int status, const char *term, const char *error_type,
                      const char *client_ip)
{
    if (unlikely(x->end_early) && x->end_term) { /* ended well, but early, by golb */
        term = x->end_term;
        error_type = x->end_error;
    }
    /* the request's own client address once exchange_start decided it (trustedProxies) */
    obs_req_end(x->w, &x->obs, status, term, error_type, x->client_ip_len ? x->client_ip : client_ip);
}

void exchange_obs_end_reply(struct exchange *x, int status, const char *term,
                            const char *error_type, const char *client_ip)
{
    x->obs.grpc_reply = x->grpc && status >= 400; /* reply_error's and exchange_route's rule */
    exchange_obs_end(x, status, term, error_type, client_ip);
}

struct exchange_tunnel *exchange_tunnel(struct exchange *x)
{
    if (x->tunnel.buf)
        return &x->tunnel; /* set up already */
    if (!x->uin && !(x->uin = buf_get(&x->w->bufs)))
        return NULL;
    struct upstream_conn *up = x->up;
    x->tunnel.up = (struct conn_end){up->io.fd, up->ssl, &up->readable, &up->writable};
    x->tunnel.buf = x->uin;
    x->tunnel.up_eof = &x->up_eof;
    return &x->tunnel;
}

/* A connect in progress failed (refused, reset, timed out): count it against the backend, close
 * the attempt and try the next backend (connect_next fails with 502/503 when none is left). */
static void connect_failed(struct exchange *x, const char *why)
{
    struct backend *b = ex_backend(x, x->backend);
    log_warn("backend %s: connect failed: %s", b->name, why);
    backend_report_failure(b, ex_pool_cfg(x)->max_fails, why);
    drop_upstream(x, false, LB_CONNECT_FAILED);
    connect_next(x);
}

void exchange_connect_failed(struct exchange *x, const char *why)
{
    connect_failed(x, why);
}

void exchange_connect_next(struct exchange *x)
{
    connect_next(x);
}

/* ---------------------------------------------------------------- timers ------------------- */

/* A request head a stream session's exchange keeps for a replay while at rest (x_rest): when
 * that may end. 0: none is kept. HTTP/1 keeps the head until the response head, as a
 * connection has one exchange at a time (and its own input buffer) anyway. */
static inline uint64_t replay_until(const struct exchange *x)
{
    if (!x->req_stream || !x->reqh || x->phase != XP_RELAY || x->reqh_sent != x->reqh->last)
        return 0;
    return x->head_sent_at + REPLAY_WINDOW_MS;
}

/* Gives back the buffers nothing waits in, so that a stream session's exchange at rest holds
 * none: uin and resph once the session took their bytes, reqh once the head went and no replay
 * can need it. Run whenever a pump leaves such an exchange waiting; a buffer is taken again when
 * bytes come. An HTTP/1 exchange keeps its buffers to its end, as before: its connection has one
 * exchange at a time, and holds an input buffer of its own meanwhile anyway. */
static inline void x_rest(struct exchange *x)
{
    struct buf_pool *pool = &x->w->bufs;
    if (x->uin && buf_len(x->uin) == 0 && x->uin != x->tunnel.buf) {
        buf_put(pool, x->uin);
        x->uin = NULL;
    }
    if (x->resph && x->resph->last == 0) {
        buf_put(pool, x->resph);
        x->resph = NULL;
    }
    /* The replay window's end comes as a deadline (exchange_timeout), not from here. */
    if (replay_until(x) && (!x->up_reused || x->replayed || x->req_body_sent || x->resp_started)) {
        buf_put(pool, x->reqh);
        x->reqh = NULL;
    }
}

/* The deadline of what the exchange waits for (without the replay window). */
static uint64_t wait_deadline(const struct exchange *x)
{
    const struct config *cfg = ex_cfg(x);
    if (x->phase == XP_CONNECT)
        return x->progress_at + ex_pool_cfg(x)->connect_timeout_ms;
    if (x->phase == XP_BUFFER)
        return x->progress_at + cfg->body_timeout_ms;
    if (x->resp_phase == RESP_WAIT_HEAD && x->req_done)
        return x->sent_at + x->upstream_timeout_ms;
    if (x->phase == XP_TUNNEL) /* after a 101: never waiting for a head */
        return x->progress_at + cfg->tunnel_timeout_ms;
    return x->progress_at + cfg->body_timeout_ms;
}

uint64_t exchange_deadline(const struct exchange *x)
{
    uint64_t d = wait_deadline(x);
    if (unlikely(x->grpc_deadline) && x->grpc_deadline < d)
        d = x->grpc_deadline;
    if (likely(!x->req_stream))
        return d;
    uint64_t r = replay_until(x);
    return r && r < d ? r : d;
}

/* A gRPC call's deadline passed after its response head went to the session: it ends the gRPC
 * way, DEADLINE_EXCEEDED in trailers after the data that went (a reset stream would read as
 * INTERNAL, a cut connection as UNAVAILABLE): through body_end (HTTP/2 clients), or in the last
 * chunk for an HTTP/1.1 client whose chunks the exchange frames (an HTTP/2 backend) unless one is
 * half sent. The backend's stream is reset (CANCEL), its HTTP/1 connection closed, when the
 * exchange finishes. Otherwise (an HTTP/1 backend's chunks relayed as they came) a cut. */
COLD static enum exchange_status grpc_deadline_end(struct exchange *x)
{
    static const struct http_field tr[] = {
        {.name = "grpc-status", .value = "4", .name_len = 11, .value_len = 1},
        {.name = "grpc-message", .value = "Gateway Timeout", .name_len = 12, .value_len = 15},
    };
    bool sink = x->ops->body_end && !x->resp_chunked_out;
    if (!sink && !(x->h2s && exchange_h2_end_chunked(x, tr, ARRAY_LEN(tr))))
        return exchange_fail(x, 504, LB_OK);
    x->end_early = true;
    x->obs.grpc_code = GRPC_DEADLINE_EXCEEDED + 1;
    x->grpc_deadline = 0;         /* passed: the last chunk has bodyTimeout to go */
    x->resp_keepalive = false;    /* the backend's response is left unfinished */
    if (!x->req_done) {           /* the rest of the request body goes nowhere */
        x->body_abandoned = true;
        x->req_done = true;
    }
    if (!sink)
        return EX_WAIT; /* the pump sends the last chunk, then the exchange is done */
    if (x->ops->body_end(x->client, tr, ARRAY_LEN(tr)) != 0)
        return x->res = EX_CLOSE;
    x->resp_phase = RESP_DONE;
    return x->res = EX_DONE;
}

enum exchange_status exchange_timeout(struct exchange *x)
{
    if (x->res != EX_WAIT)
        return x->res;
    uint64_t now = loop_now(x->w->loop), until = replay_until(x);
    if (unlikely(x->grpc_deadline) && now >= x->grpc_deadline) {
        /* the caller's deadline, not the backend's fault */
        x->end_term = x->resp_started ? "sD" : "sH";
        x->end_error = "grpc_deadline";
        if (x->resp_phase == RESP_BODY)
            return grpc_deadline_end(x);
        return exchange_fail(x, 504, LB_OK);
    }
    if (until && now >= until && now < wait_deadline(x)) {
        buf_put(&x->w->bufs, x->reqh); /* only the replay window ended: let the head go */
        x->reqh = NULL;
        return EX_WAIT;
    }
    if (x->phase == XP_TUNNEL)
        return x->res = EX_CLOSE; /* an idle tunnel */
    if (x->phase == XP_CONNECT) {
        obs_connect_result(x->w, &x->obs, -ETIMEDOUT);
        connect_failed(x, "connect timed out");
        return x->res;
    }
    if (x->phase == XP_BUFFER)
        return exchange_fail(x, 408, LB_OK); /* the body stopped before golb took a backend */
    if (x->resp_phase == RESP_WAIT_HEAD && x->req_done) {
        struct backend *b = ex_backend(x, x->backend);
        log_warn("backend %s: no response within %u ms", b->name, x->upstream_timeout_ms);
        x->end_term = "sH";
        x->end_error = "response_timeout";
        return exchange_fail(x, 504, LB_FAILED);
    }
    uint32_t buffered = 0;
    if (!x->req_done && x->resp_phase == RESP_WAIT_HEAD) {
        x->ops->peek(x->client, &buffered);
        if (buffered == 0)
            return exchange_fail(x, 408, LB_FAILED); /* the client stopped sending its body */
    }
    x->end_term = "sD";
    x->end_error = "body_timeout";
    return exchange_fail(x, 504, LB_FAILED); /* no progress: cut if the response started */
}

/* ---------------------------------------------------------------- I/O helpers -------------- */

static ssize_t upstream_read(struct upstream_conn *up, struct buf *b)
{
    return conn_read(up->io.fd, up->ssl, b, &up->readable, &up->writable, up->rdhup);
}

/* ---------------------------------------------------------------- head rewriting ----------- */

/* Adapter from the request and its client to the rewrite module's explicit inputs. */
static bool x_build_request_head(struct exchange *x, const struct http_request *req,
                                 const struct exchange_request *info, struct buf *b)
{
    struct rewrite_request opt = {.client_ip = info->client_ip,
                                  .client_ip_len = info->client_ip_len,
                                  .trusted_peer = x->peer_trusted,
                                  .upgrade = x->req_upgrade,
                                  .upgrade_protocols = ex_upgrades(x),
                                  .https = info->https,
                                  .request_id = x->obs.reqid,
                                  .request_id_len = x->obs.reqid_len};
    if (unlikely(x->route >= 0))
        opt.headers = route_request_headers(x->gen->routes, x->route);
    if (info->subject_header) {
        opt.set_name = info->subject_header;
        opt.set_name_len = strlen(info->subject_header);
        opt.set_value = info->subject;
        opt.set_value_len = info->subject ? strlen(info->subject) : 0;
    }
    return rewrite_request_head(req, &opt, b, &x->reqh_host_at);
}

static bool x_set_upstream_host(struct exchange *x, const struct backend *b)
{
    return rewrite_set_host(x->reqh, x->reqh_host_at, b->name);
}

/* The size of a large head buffer in the exchange's generation (worker_ctx_head_buf_size). */
static uint32_t x_head_size(const struct exchange *x)
{
    return worker_ctx_head_buf_size(ex_cfg(x)->max_header_size);
}

/* Moves *b into a large head buffer, unless it is one already. Returns false when it was (the
 * head is too large for golb) or memory is exhausted (*b untouched either way). */
static bool x_grow(struct exchange *x, struct buf **b)
{
    if ((*b)->cap >= x_head_size(x))
        return false;
    struct buf *n = buf_grow(&x->w->bufs, *b, x_head_size(x));
    if (!n)
        return false;
    *b = n;
    return true;
}

/* Builds the request head golb sends into reqh: an ordinary buffer, or a large one when it does
 * not fit (a head near maxHeaderSize). Returns 0, or the status to answer (503, 431). */
static int x_request_head(struct exchange *x, const struct http_request *req,
                          const struct exchange_request *info)
{
    for (uint32_t cap = 0;; cap = x_head_size(x)) {
        x->reqh = cap ? buf_get_large(&x->w->bufs, cap) : buf_get(&x->w->bufs);
        if (!x->reqh)
            return 503;
        if (x_build_request_head(x, req, info, x->reqh))
            return 0;
        if (x->reqh->cap >= x_head_size(x))
            return 431;
        buf_put(&x->w->bufs, x->reqh);
        x->reqh = NULL;
    }
}

/* Hands a parsed response head to the session, with the sticky cookie of the chosen backend: into
 * resph, moved into a large buffer when the head does not fit an ordinary one (on_head leaves the
 * buffer as it was when it fails). */
static bool x_response_head(struct exchange *x, const struct http1_response *resp)
{
    char cookie[256];
    if (resp->status >= 200 && !x->lbr.head_us)
        x->lbr.head_us = balancer_now_us();
    struct exchange_head h;
    h.set_cookie_len =
        balancer_set_cookie(ex_balancer(x), &x->lbr, x->backend, cookie, sizeof(cookie));
    h.set_cookie = cookie;
    h.dechunk = x->resp_dechunk;
    h.req_done = x->req_done;
    h.headers = x->resp_headers;
    while (x->ops->on_head(x->client, resp, &h, x->resph) != 0)
        if (!x_grow(x, &x->resph))
            return false;
    return true;
}

bool exchange_response_head(struct exchange *x, const struct http1_response *resp)
{
    return x_response_head(x, resp);
}

/* ---------------------------------------------------------------- splice ------------------- */

/* True when a body may go (or is already going) through a pipe: the head is out, nothing of the
 * body is left in the buffer, enough remains to pay for the pipe, and the client end is a plain
 * socket the session offers. */
bool exchange_want_splice(struct exchange *x, struct kpipe *p, struct exchange_splice *end,
                          bool response, bool head_out, uint32_t buffered, enum http1_body framing,
                          uint64_t remaining)
{
    if (p->r >= 0)
        return true;
    if (x->up->ssl || x->no_splice)
        return false; /* through TLS, bodies are copied (kernel TLS offload would splice here) */
    if (!head_out || buffered)
        return false;
    if (!(framing == HTTP1_BODY_CLOSE || (framing == HTTP1_BODY_LENGTH && remaining >= SPLICE_MIN)))
        return false;
    if (end->fd < 0 && x->ops->splice_end(x->client, response, end) != 0) {
        x->no_splice = true;
        return false;
    }
    return pipe_pool_get(&x->w->pipes, p) == 0;
}

/* ---------------------------------------------------------------- connecting --------------- */

/* The request's client address (x->client_ip): the session's, or with trustedProxies what the
 * chain of trusted proxies says (http/forwarded.h). */
static void x_client_address(struct exchange *x, const struct http_request *req,
                             const struct exchange_request *info)
{
    const struct config *cfg = ex_cfg(x);
    size_t n = (size_t)cfg->ntrusted_proxies;
    x->peer_trusted = n && forwarded_trusted(cfg->trusted_proxies, n, info->client_ip,
                                             info->client_ip_len);
    if (x->peer_trusted) {
        x->client_ip_len = (uint8_t)forwarded_client(req, cfg->trusted_proxies, n, info->client_ip,
                                                  info->client_ip_len, x->client_ip,
                                                  sizeof(x->client_ip));
        return;
    }
    size_t len = MIN(info->client_ip_len, sizeof(x->client_ip) - 1);
    memcpy(x->client_ip, info->client_ip, len);
    x->client_ip[len] = '\0';
    x->client_ip_len = (uint8_t)len;
}

/* sendProxyProtocol: the request's client address as a pool key (family 0 for a backend without
 * it, or an address that is not one), and the header written first on a new connection: the
 * client's address (port 0: golb keeps no client port) to the backend's. */
static void x_pp_key(const struct exchange *x, struct upstream_pp *pp)
{
    memset(pp, 0, sizeof(*pp));
    if (!ex_backend_cfg(x)->send_proxy_protocol)
        return;
    if (inet_pton(AF_INET, x->client_ip, pp->addr) == 1)
        pp->family = AF_INET;
    else if (inet_pton(AF_INET6, x->client_ip, pp->addr) == 1)
        pp->family = AF_INET6;
}

ssize_t exchange_proxy_header(const struct exchange *x, char *hdr, size_t cap,
                              struct upstream_pp *key)
{
    const struct config_backend *cb = ex_backend_cfg(x);
    struct upstream_pp pp;
    x_pp_key(x, &pp);
    struct sockaddr_storage src;
    memset(&src, 0, sizeof(src));
    if (pp.family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)(void *)&src;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, pp.addr, 4);
    } else if (pp.family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)(void *)&src;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, pp.addr, 16);
    }
    const struct sockaddr *s = pp.family ? (const struct sockaddr *)&src : NULL;
    const struct sockaddr *d = s ? (const struct sockaddr *)&cb->addr : NULL;
    *key = pp;
    return cb->send_proxy_protocol == 1 ? proxy_proto_write_v1(hdr, cap, s, d)
                                        : proxy_proto_write_v2(hdr, cap, s, d, NULL, 0, 0);
}

static int x_send_proxy_header(struct exchange *x, struct upstream_conn *up)
{
    char hdr[PROXY_PROTO_V1_MAX + 64];
    struct upstream_pp pp;
    ssize_t n = exchange_proxy_header(x, hdr, sizeof(hdr), &pp);
    if (n < 0)
        return (int)n;
    return upstream_send_proxy_header(up, hdr, (size_t)n, &pp);
}

enum exchange_status exchange_start(struct exchange *x, const struct http_request *req,
                                    const struct exchange_request *info)
{
    struct worker_ctx *w = x->w;
    x_client_address(x, req, info);
    obs_req_start(w, &x->obs, req, info->head_wait_ms);
    /* The upstream framing: a length stays a length, a body of unknown length goes chunked. */
    _Static_assert(HTTP_BODY_NONE == (int)HTTP1_BODY_NONE &&
                       HTTP_BODY_LENGTH == (int)HTTP1_BODY_LENGTH &&
                       HTTP_BODY_STREAM == (int)HTTP1_BODY_CHUNKED,
                   "the neutral body kinds name their HTTP/1 framing");
    x->req_body = (enum http1_body)req->body;
    x->req_remaining = req->body == HTTP_BODY_LENGTH ? req->content_length : 0;
    x->req_is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    /* gRPC calls are POSTs, so other requests pay one compare: golb's own errors are answered
     * the gRPC way, and grpc-timeout bounds the whole exchange (as well as upstreamTimeout). */
    if (unlikely(req->method_len == 4 && memcmp(req->method, "POST", 4) == 0)) {
        uint64_t t;
        x->grpc = x->obs.grpc = grpc_request(req, &t);
        if (t != UINT64_MAX)
            x->grpc_deadline = loop_now(w->loop) + t;
    }
    /* Only an Upgrade to a protocol of upgradeProtocols is one; any other (h2c by default) is
     * proxied as an ordinary request, without its Upgrade. */
    x->req_upgrade = rewrite_upgrade_allowed(req, ex_upgrades(x));
    x->resp_phase = RESP_WAIT_HEAD;
    x->client_dechunk = info->dechunk;
    if (info->stream) {
        x->req_stream = true;
        x->req_encode = x->req_body == HTTP1_BODY_CHUNKED;
    }
    if (req->protocol_len && !x->req_upgrade)
        return exchange_fail(x, 501, LB_OK); /* an extended CONNECT is a tunnel or nothing */
    x->coalesce_head = info->https && !info->stream; /* a stream session gathers its frames */
    struct http_request routed;
    if (unlikely(x->gen->routing)) {
        enum exchange_status rs = exchange_route(x, req, info, &routed);
        if (rs != EX_WAIT)
            return rs;
        req = &routed; /* its path normalised and rewritten, for the head and the balancer */
    }
    x->obs.pool = x->pool->name;
    x->upstream_timeout_ms = ex_pool_cfg(x)->upstream_timeout_ms;
    x->retries = ex_pool_cfg(x)->retries;
    if (unlikely(x->route >= 0)) { /* the route's own upstreamTimeout and retries */
        const struct config_route *r = route_get(x->gen->routes, x->route);
        if (r->upstream_timeout_ms)
            x->upstream_timeout_ms = r->upstream_timeout_ms;
        if (r->retries >= 0)
            x->retries = (uint32_t)r->retries;
    }

    int st = x_request_head(x, req, info);
    if (st)
        return exchange_fail(x, st, LB_OK);
    balancer_request_init(ex_balancer(x), &x->lbr, req, x->client_ip, x->client_ip_len, w->id);
    if (exchange_req_hold_wanted(x, req)) {
        x->phase = XP_BUFFER; /* exchange_pump holds the body (exchange_req_hold_body), then picks */
        x->progress_at = loop_now(w->loop);
        return EX_WAIT;
    }
    connect_next(x);
    return x->res;
}

/* Tries the next backend: an idle pooled connection to it, else a new connect. */
static void connect_next(struct exchange *x)
{
    struct worker_ctx *w = x->w;
    uint32_t max_tries = MIN(x->retries + 1, (uint32_t)LB_MAX_TRIES);
    for (;;) {
        if ((uint32_t)x->tried.n >= max_tries) {
            exchange_fail(x, 502, LB_OK);
            return;
        }
        int idx = balancer_pick(ex_balancer(x), &x->lbr, &x->tried);
        if (idx < 0) {
            exchange_fail(x, x->tried.n ? 502 : 503, LB_OK);
            return;
        }
        lb_tried_add(&x->tried, idx);
        struct backend *b = ex_backend(x, idx);
        x->backend = idx;
        if (!x_set_upstream_host(x, b) && !(x_grow(x, &x->reqh) && x_set_upstream_host(x, b))) {
            exchange_fail(x, 431, LB_OK);
            return;
        }
        if (unlikely(ex_backend_cfg(x)->up.protocol == CONFIG_PROTO_H2)) {
            int err = 0;
            if (exchange_h2_open(x, b, &err)) {
                obs_backend_try(w, &x->obs, b, x->up_reused, x->tried.n > 1, x->reqh->last);
                atomic_fetch_add_explicit(&b->active, 1, memory_order_relaxed);
                return;
            }
            log_warn("backend %s: cannot open an HTTP/2 stream: %s", b->name, strerror(-err));
            balancer_release(ex_balancer(x), idx, LB_CONNECT_FAILED, pick_age_us(x));
            continue;
        }
        struct upstream_pp pp;
        x_pp_key(x, &pp);
        x->up = upstream_take_idle_pp(w->upstreams, &b->pw[w->id].idle, x, on_upstream_event, &pp);
        obs_backend_try(w, &x->obs, b, x->up != NULL, x->tried.n > 1, x->reqh->last);
        atomic_fetch_add_explicit(&b->active, 1, memory_order_relaxed);
        if (x->up) {
            x->up_reused = true;
            x->phase = XP_RELAY;
            x->progress_at = loop_now(w->loop);
            return;
        }
        int err = 0;
        x->up_reused = false;
        x->up = upstream_connect(w->upstreams, &b->pw[w->id].idle,
                                 (const struct sockaddr *)&ex_backend_cfg(x)->addr,
                                 ex_backend_cfg(x)->addrlen, x, on_upstream_event, &err);
        if (x->up) {
            x->phase = XP_CONNECT;
            x->progress_at = loop_now(w->loop);
            return;
        }
        atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
        if (sock_error_is_local(err)) {
            /* golb is out of descriptors or ports: not the backend's fault, and every other
             * backend would fail the same way. */
            log_warn("backend %s: cannot connect: %s", b->name, strerror(-err));
            balancer_release(ex_balancer(x), idx, LB_OK, pick_age_us(x));
            exchange_fail(x, 503, LB_OK);
            return;
        }
        obs_connect_result(w, &x->obs, err);
        log_warn("backend %s: connect failed: %s", b->name, strerror(-err));
        backend_report_failure(b, ex_pool_cfg(x)->max_fails, strerror(-err));
        balancer_release(ex_balancer(x), idx, LB_CONNECT_FAILED, pick_age_us(x));
    }
}

/* A request sent on a pooled connection met a connection the backend had already closed. When
 * nothing of the body has gone and no response byte came, send it again on a fresh connection to
 * the same backend, once. Returns true when it did. */
static bool replay_on_fresh(struct exchange *x)
{
    if (!x->up_reused || x->replayed || x->req_body_sent || x->resp_started ||
        (x->uin && buf_len(x->uin) > 0) || !x->reqh ||
        (x->req_stream && x->reqh_sent == x->reqh->last &&
         loop_now(x->w->loop) - x->head_sent_at >= REPLAY_WINDOW_MS))
        return false;
    struct worker_ctx *w = x->w;
    struct backend *b = ex_backend(x, x->backend);
    upstream_release(x->up, false);
    x->up = NULL;
    x->replayed = true;
    x->reqh_sent = 0;
    x->req_done = false;
    x->up_eof = false;
    int err = 0;
    x->up_reused = false;
    x->up = upstream_connect(w->upstreams, &b->pw[w->id].idle,
                             (const struct sockaddr *)&ex_backend_cfg(x)->addr,
                             ex_backend_cfg(x)->addrlen, x, on_upstream_event, &err);
    if (!x->up) {
        atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
        balancer_release(ex_balancer(x), x->backend, LB_CONNECT_FAILED, pick_age_us(x));
        connect_next(x);
        return true;
    }
    x->phase = XP_CONNECT;
    x->progress_at = loop_now(w->loop);
    return true;
}

/* The upstream failed before the response started: replay, or answer 502. */
void exchange_upstream_broken(struct exchange *x, const char *why)
{
    if (replay_on_fresh(x))
        return;
    struct backend *b = ex_backend(x, x->backend);
    if (!x->resp_started) {
        log_warn("backend %s: %s", b->name, why);
        backend_report_failure(b, ex_pool_cfg(x)->max_fails, why);
    }
    x->end_term = x->resp_started ? "SD" : "SH";
    x->end_error = "invalid_response";
    exchange_fail(x, 502, LB_FAILED);
}

/* ---------------------------------------------------------------- response side ------------ */

/* Parses the response head in uin. Returns true on progress. */
static bool x_parse_response(struct exchange *x)
{
    struct http1_response resp;
    size_t len = buf_len(x->uin);
    size_t max_head = MAX(x->uin->cap, x_head_size(x)) - 1;
    ssize_t n =
        http1_parse_response(x->uin->data + x->uin->pos, len, 0, max_head, x->req_is_head, &resp);
    if (n == -EAGAIN) {
        if (buf_space(x->uin) == 0) {
            if (x->uin->pos == 0) {
                /* A head larger than an ordinary buffer: go on in a large one. */
                if (!x_grow(x, &x->uin)) {
                    exchange_upstream_broken(x, "response head too large");
                    return false;
                }
                return false;
            }
            buf_compact(x->uin);
        }
        return false;
    }
    if (n < 0) {
        char why[128];
        snprintf(why, sizeof(why), "invalid response: %s",
                 resp.err_reason ? resp.err_reason : "malformed");
        x->replayed = true; /* a bad response is not a dropped pooled connection */
        exchange_upstream_broken(x, why);
        return false;
    }
    x->uin->pos += (uint32_t)n;
    if (!x->resph) {
        x->resph = buf_get(&x->w->bufs);
        if (!x->resph) {
            exchange_fail(x, 503, LB_FAILED);
            return false;
        }
    }
    if (resp.status < 200 && resp.status != 101) {
        /* Interim (100 Continue, 103 Early Hints): the session relays it (or not), then the
         * exchange keeps waiting for the final head. */
        if (!x_response_head(x, &resp)) {
            exchange_upstream_broken(x, "interim response head too large");
            return false;
        }
        return true;
    }
    if (resp.status == 101 && !x->req_upgrade) {
        x->replayed = true;
        exchange_upstream_broken(x, "101 Switching Protocols without an upgrade request");
        return false;
    }
    if (resp.status == 101 && !rewrite_upgrade_response_ok(&resp, ex_upgrades(x))) {
        x->replayed = true;
        exchange_upstream_broken(x,
                                 "101 Switching Protocols to a protocol not in upgradeProtocols");
        return false;
    }
    obs_response_head(x->w, &x->obs, resp.status, (uint32_t)n);
    if (unlikely(x->grpc)) /* a trailers-only answer: grpc-status in the head */
        x->obs.grpc_code = (int8_t)(grpc_status_field(resp.headers, resp.num_headers) + 1);
    x->resp_body = resp.body;
    x->resp_remaining = resp.body == HTTP1_BODY_LENGTH ? resp.content_length : 0;
    x->resp_ready = 0;
    memset(&x->resp_chunk, 0, sizeof(x->resp_chunk));
    x->resp_dechunk = resp.body == HTTP1_BODY_CHUNKED && x->client_dechunk;
    if (x->resp_dechunk) /* resp_tlen is 0 outside a body */
        x->resp_trailers = x->ops->body_end != NULL;
    x->resp_keepalive = (resp.flags & HTTP1_MF_KEEP_ALIVE) && resp.body != HTTP1_BODY_CLOSE;
    if (!x_response_head(x, &resp)) {
        x->replayed = true;
        exchange_upstream_broken(x, "response head too large");
        return false;
    }
    /* The request can no longer be replayed: free its head now. */
    buf_put(&x->w->bufs, x->reqh);
    x->reqh = NULL;
    if (resp.status == 101) {
        x->tunnel_pending = true;
        x->resp_phase = RESP_DONE;
        return true;
    }
    x->resp_phase = resp.body != HTTP1_BODY_NONE ? RESP_BODY
                    : x->ops->body_end           ? RESP_END
                                                 : RESP_DONE;
    return true;
}

/* Body bytes at uin->pos ready to go to the client under the response framing. */
static uint64_t response_body_ready(struct exchange *x, bool *failed)
{
    uint32_t avail = buf_len(x->uin);
    switch (x->resp_body) {
    case HTTP1_BODY_LENGTH:
        return MIN(x->resp_remaining, (uint64_t)avail);
    case HTTP1_BODY_CLOSE:
        return avail;
    case HTTP1_BODY_CHUNKED:
        if (!x->resp_dechunk) {
            while (x->resp_ready < avail && !http1_chunked_done(&x->resp_chunk)) {
                bool is_data;
                ssize_t k =
                    http1_chunked_decode(&x->resp_chunk, x->uin->data + x->uin->pos + x->resp_ready,
                                         avail - x->resp_ready, &is_data);
                if (k <= 0) {
                    *failed = k < 0;
                    break;
                }
                x->resp_ready += (uint32_t)k;
            }
            return x->resp_ready;
        }
        /* De-chunk in place: data runs slide down over the framing, resp_ready counts them.
         * For a sink that takes trailers, the trailer section slides down behind the data
         * (resp_tlen bytes; no data follows it):
         *   pos: [data: resp_ready][trailer section: resp_tlen][not decoded yet...] last */
        {
            char *base = x->uin->data + x->uin->pos;
            uint32_t dst = x->resp_ready, tend = dst + x->resp_tlen, src = tend;
            while (src < avail && !http1_chunked_done(&x->resp_chunk)) {
                bool is_data;
                size_t before =
                    http1_chunked_in_trailers(&x->resp_chunk) ? x->resp_chunk.line_len : 0;
                ssize_t k = http1_chunked_decode(&x->resp_chunk, base + src, avail - src, &is_data);
                if (k <= 0) {
                    *failed = k < 0;
                    break;
                }
                if (is_data) {
                    if (dst != src)
                        memmove(base + dst, base + src, (size_t)k);
                    dst += (uint32_t)k;
                    tend = dst;
                } else if (x->resp_trailers && (http1_chunked_in_trailers(&x->resp_chunk) ||
                                                http1_chunked_done(&x->resp_chunk))) {
                    /* the run's last bytes are trailer section (after "0" CRLF, if in it) */
                    uint32_t t = (uint32_t)(x->resp_chunk.line_len - before);
                    if (tend != src + (uint32_t)k - t)
                        memmove(base + tend, base + src + (uint32_t)k - t, t);
                    tend += t;
                }
                src += (uint32_t)k;
            }
            /* Bytes after what we kept were framing; anything past src stays unprocessed. */
            if (src < avail)
                memmove(base + tend, base + src, avail - src);
            x->uin->last -= src - tend;
            x->resp_ready = dst;
            x->resp_tlen = tend - dst;
            return dst;
        }
    default:
        return 0;
    }
}

static bool response_body_complete(const struct exchange *x, uint64_t ready)
{
    switch (x->resp_body) {
    case HTTP1_BODY_LENGTH:
        return x->resp_remaining == ready;
    case HTTP1_BODY_CHUNKED:
        return http1_chunked_done(&x->resp_chunk) && x->resp_ready == ready;
    case HTTP1_BODY_CLOSE:
        return x->up_eof && (!x->uin || buf_len(x->uin) == ready);
    default:
        return true;
    }
}

/* The upstream ended a delimited body early: cut the client so it sees the truncation. */
static void body_cut(struct exchange *x)
{
    struct backend *b = ex_backend(x, x->backend);
    log_warn("backend %s: connection closed in the middle of the response body", b->name);
    x->end_term = "SD";
    x->end_error = "upstream_reset";
    x->res = EX_CLOSE;
}

/* Content-Length and close-delimited response bodies past the first buffer go upstream → pipe →
 * client. */
static void splice_response(struct exchange *x, bool *progress)
{
    struct exchange_splice *s = &x->splice_resp;
    bool length = x->resp_body == HTTP1_BODY_LENGTH;
    uint64_t left = length ? x->resp_remaining : UINT64_MAX;
    enum pipe_splice_err err = PIPE_SPLICE_OK;
    bool p =
        pipe_splice(&x->resp_pipe, x->up->io.fd, &x->up->readable, &x->up_eof, s->fd, s->writable,
                    &left, &x->obs.resp_body_bytes, &x->budget, x->uin->cap, &x->resp_room, &err);
    if (length)
        x->resp_remaining = left;
    if (p) {
        *progress = true;
        x->resp_started = true;
        x->progress_at = loop_now(x->w->loop);
    }
    if (err == PIPE_SPLICE_DST_FAILED) {
        x->res = EX_CLOSE; /* the client is gone */
        return;
    }
    bool drained = x->resp_pipe.bytes == 0;
    if (err == PIPE_SPLICE_SRC_FAILED || (length && x->up_eof && x->resp_remaining && drained)) {
        body_cut(x);
        return;
    }
    if ((length && x->resp_remaining == 0) || (!length && x->up_eof && drained)) {
        x->resp_phase = x->ops->body_end ? RESP_END : RESP_DONE;
        *progress = true;
        return;
    }
    /* The client stopped taking bytes (a slow reader): what is left in the pipe (at most a
     * buffer: pipe_splice's stall_max) moves to uin and the pipe goes back, so a stalled
     * transfer holds its two sockets, not four descriptors. It goes on from uin (copied), then
     * through a pipe again once uin is drained. */
    if (!*s->writable && buf_len(x->uin) == 0 && x->resp_pipe.bytes <= x->uin->cap) {
        x->uin->pos = x->uin->last = 0;
        ssize_t n = pipe_drain(&x->resp_pipe, x->uin->data, x->uin->cap);
        if (n < 0) {
            x->res = EX_CLOSE;
            return;
        }
        x->uin->last = (uint32_t)n;
        pipe_pool_put(&x->w->pipes, &x->resp_pipe);
    }
}

/* The response is complete and sent (head and body): the session's body_end takes its end and
 * the trailers kept after the body, then the response is done. 0, or body_end's -EAGAIN/-EPIPE. */
COLD static int response_end(struct exchange *x)
{
    if (x->ops->body_end) { /* else the session's own framing ends the body (HTTP/1) */
        int rc;
        if (x->resp_tlen) {
            struct http_field tr[HTTP1_MAX_HEADERS];
            size_t n = http1_parse_trailers(x->uin->data + x->uin->pos, x->resp_tlen, tr,
                                            HTTP1_MAX_HEADERS);
            if (x->grpc && grpc_status_field(tr, n) >= 0)
                x->obs.grpc_code = (int8_t)(grpc_status_field(tr, n) + 1);
            rc = x->ops->body_end(x->client, tr, n);
        } else {
            rc = x->ops->body_end(x->client, NULL, 0);
        }
        if (rc < 0)
            return rc;
        if (x->resp_tlen) {
            x->uin->pos += x->resp_tlen;
            x->resp_tlen = 0;
        }
    }
    x->resp_phase = RESP_DONE;
    /* Bytes past the end of the response: the connection is out of step, never reuse. */
    if (x->uin && buf_len(x->uin) > 0)
        x->resp_keepalive = false;
    return 0;
}

/* Reads from the upstream and sends head and body to the client. Returns true on progress. */
static bool pump_response(struct exchange *x)
{
    bool progress = false;
    while (ex_relaying(x)) {
        if (x->resp_phase == RESP_BODY && !x->resp_dechunk &&
            exchange_want_splice(x, &x->resp_pipe, &x->splice_resp, true,
                                 !x->resph || x->resph->last == 0, x->uin ? buf_len(x->uin) : 0,
                                 x->resp_body, x->resp_remaining)) {
            splice_response(x, &progress);
            return progress;
        }
        /* 1. Send what is ready: a head the session serialised, then body bytes. */
        struct iovec head = {NULL, 0}, body_iov;
        uint32_t head_left = x->resph ? x->resph->last - x->resph_sent : 0;
        if (head_left)
            head = (struct iovec){x->resph->data + x->resph_sent, head_left};
        uint64_t body = 0;
        if (x->resp_phase == RESP_BODY && x->uin) {
            bool failed = false;
            body = response_body_ready(x, &failed);
            if (failed) {
                exchange_upstream_broken(x, "invalid chunked response body");
                return false;
            }
            if (body)
                body_iov = (struct iovec){x->uin->data + x->uin->pos, (size_t)body};
        }
        /* A TLS client gets a head and the first body bytes in one record when the body is
         * there by then: one read more (step 3) before the head goes alone, and when that finds
         * nothing, one more after the worker's other ready events (the backend's second write
         * is usually microseconds behind its first). */
        bool hold_head = unlikely(x->coalesce_head) && head_left && !body &&
                         x->resp_phase == RESP_BODY && x->head_reads < 2 && !x->up_eof &&
                         x->budget && x->uin && buf_len(x->uin) == 0 &&
                         (x->resp_body == HTTP1_BODY_LENGTH ? x->resp_remaining > 0
                                                            : !http1_chunked_done(&x->resp_chunk));
        if ((head_left || body) && !hold_head) {
            ssize_t wr =
                x->ops->send(x->client, &head, body ? &body_iov : NULL, x->uin && x->uin->pos == 0);
            if (wr == -EAGAIN)
                break;
            if (wr < 0) {
                x->res = EX_CLOSE; /* the client is gone */
                return false;
            }
            progress = true;
            x->resp_started = true;
            x->progress_at = loop_now(x->w->loop);
            ex_spend(x, (size_t)wr);
            uint32_t from_head = (uint32_t)MIN((uint64_t)wr, (uint64_t)head_left);
            x->resph_sent += from_head;
            if (from_head && x->resph_sent == x->resph->last)
                x->resph->pos = x->resph->last = x->resph_sent = 0;
            uint32_t from_body = (uint32_t)wr - from_head;
            if (from_body) {
                x->obs.resp_body_bytes += from_body;
                x->uin->pos += from_body;
                if (x->resp_body == HTTP1_BODY_LENGTH)
                    x->resp_remaining -= from_body;
                else if (x->resp_body == HTTP1_BODY_CHUNKED)
                    x->resp_ready -= from_body;
            }
            continue;
        }
        if (x->resp_phase == RESP_BODY && response_body_complete(x, body)) {
            x->resp_phase = RESP_END;
            progress = true;
        }
        if (x->resp_phase >= RESP_END) {
            if (x->resp_phase == RESP_DONE) {
            } else if (!x->ops->body_end) { /* the session's own framing ends it (HTTP/1) */
                x->resp_phase = RESP_DONE;
                if (x->uin && buf_len(x->uin) > 0) /* bytes past the end: never reuse it */
                    x->resp_keepalive = false;
            } else {
                int rc = response_end(x);
                if (rc < 0 && rc != -EAGAIN) {
                    x->res = EX_CLOSE; /* the client is gone */
                    return false;
                }
            }
            break; /* done, or the session takes the end later */
        }

        /* 2. Parse a head already buffered. */
        if (x->resp_phase == RESP_WAIT_HEAD && x->uin && buf_len(x->uin) > 0) {
            bool parsed = x_parse_response(x);
            if (!ex_relaying(x))
                return false;
            if (parsed) {
                progress = true;
                continue;
            }
        }

        /* 3. Read more from the upstream once what we had is drained (and while this call's
         * budget lasts). A held head tries once whatever the readiness flag says: bytes that came
         * since the short read that brought the head bring their edge only later. */
        if (hold_head)
            x->head_reads++;
        else if (!x->up->readable || x->up_eof || x->budget == 0)
            break;
        if (!x->uin) {
            x->uin = buf_get(&x->w->bufs);
            if (!x->uin) {
                exchange_fail(x, 503, LB_FAILED);
                return false;
            }
        }
        if (buf_len(x->uin) == 0) {
            x->uin->pos = x->uin->last = 0;
            x->resp_ready = 0;
        } else if (x->resp_phase == RESP_BODY && buf_len(x->uin) > x->resp_tlen) {
            break; /* backpressure: wait until the client took what we have */
        }
        if (buf_space(x->uin) == 0) {
            buf_compact(x->uin);
            if (buf_space(x->uin) == 0) { /* a trailer section as large as the buffer */
                log_warn("backend %s: response trailers too large",
                         ex_backend(x, x->backend)->name);
                x->end_term = "SD";
                x->end_error = "invalid_response";
                x->res = EX_CLOSE;
                return false;
            }
        }
        ssize_t r = upstream_read(x->up, x->uin);
        if (r == -EAGAIN) {
            if (hold_head && x->head_reads == 1 && x->ops->yield) {
                exchange_yield(x); /* look again after the other ready events */
                break;
            }
            if (hold_head)
                continue; /* nothing yet: the head goes alone */
            break;
        }
        if (r <= 0) {
            x->up_eof = true;
            if (x->resp_phase == RESP_WAIT_HEAD) {
                if (buf_len(x->uin) == 0) {
                    exchange_upstream_broken(x, r == 0 ? "connection closed before the response"
                                                       : "connection reset before the response");
                } else {
                    x->replayed = true;
                    exchange_upstream_broken(
                        x, "connection closed in the middle of the response head");
                }
                return false;
            }
            /* Through TLS, a close-delimited body ends only with close_notify: a bare TCP close
             * may be a truncation by someone on the path. */
            bool truncated = x->up->ssl && !tls_close_notify_received(x->up->ssl);
            if (x->resp_body != HTTP1_BODY_CLOSE || r < 0 || truncated) {
                body_cut(x); /* premature end of a delimited body */
                return false;
            }
            progress = true;
            continue;
        }
        progress = true;
        x->progress_at = loop_now(x->w->loop);
    }
    return progress;
}

/* ---------------------------------------------------------------- stream tunnels ---------- */

void exchange_tunnel_stream(struct exchange *x)
{
    x->phase = XP_TUNNEL;
    x->resp_keepalive = false; /* what went through a tunnel leaves the connection unknown */
    x->progress_at = loop_now(x->w->loop);
}

/* Client → upstream: the source's bytes, then its end as a half-close. Returns true on progress;
 * sets x->res on failure. */
static bool tunnel_up(struct exchange *x)
{
    uint32_t avail = 0;
    const char *src = x->ops->peek(x->client, &avail);
    if (avail) {
        if (!x->up->writable)
            return false;
        struct iovec iov = {(char *)src, avail};
        ssize_t wr = ex_upstream_writev(x->up, &iov, 1);
        if (wr == -EAGAIN)
            return false;
        if (wr < 0) {
            x->res = EX_CLOSE;
            return false;
        }
        x->ops->consume(x->client, (uint32_t)wr);
        x->obs.req_body_bytes += (uint64_t)wr;
        ex_spend(x, (size_t)wr);
        return true;
    }
    ssize_t r = x->ops->fill(x->client);
    if (r == -EAGAIN)
        return false;
    if (r < 0) {
        x->res = EX_CLOSE;
        return false;
    }
    if (r == 0) { /* the client ended its half */
        conn_shutdown_write(x->up->io.fd, x->up->ssl);
        x->tun_client_done = true;
    }
    return true;
}

/* Upstream → client: uin's bytes through send(), then the upstream's end through body_end(). */
static bool tunnel_down(struct exchange *x)
{
    if (x->uin && buf_len(x->uin)) {
        struct iovec head = {NULL, 0}, body = {x->uin->data + x->uin->pos, buf_len(x->uin)};
        ssize_t wr = x->ops->send(x->client, &head, &body, true);
        if (wr == -EAGAIN)
            return false;
        if (wr < 0) {
            x->res = EX_CLOSE;
            return false;
        }
        x->uin->pos += (uint32_t)wr;
        x->obs.resp_body_bytes += (uint64_t)wr;
        ex_spend(x, (size_t)wr);
        return true;
    }
    if (x->up_eof) {
        int rc = x->ops->body_end(x->client, NULL, 0);
        if (rc == -EAGAIN)
            return false;
        if (rc < 0) {
            x->res = EX_CLOSE;
            return false;
        }
        x->tun_up_done = true;
        return true;
    }
    if (!x->up->readable)
        return false;
    if (!x->uin && !(x->uin = buf_get(&x->w->bufs))) {
        x->res = EX_CLOSE;
        return false;
    }
    x->uin->pos = x->uin->last = 0;
    ssize_t r = upstream_read(x->up, x->uin);
    if (r == -EAGAIN)
        return false;
    if (r < 0) {
        x->end_term = "SD";
        x->end_error = "upstream_reset";
        x->res = EX_CLOSE;
        return false;
    }
    if (r == 0)
        x->up_eof = true;
    return true;
}

COLD static enum exchange_status pump_tunnel_stream(struct exchange *x)
{
    for (int rounds = 0; x->res == EX_WAIT; rounds++) {
        if (rounds == 64 || x->budget == 0) { /* the rest after the other connections */
            if (x->ops->yield)
                exchange_yield(x);
            break;
        }
        bool p = !x->tun_client_done && tunnel_up(x);
        if (x->res == EX_WAIT && !x->tun_up_done)
            p |= tunnel_down(x);
        if (x->res != EX_WAIT)
            break;
        if (x->tun_client_done && x->tun_up_done)
            return EX_DONE;
        if (!p)
            break;
        x->progress_at = loop_now(x->w->loop);
    }
    return x->res;
}

/* ---------------------------------------------------------------- the pump ----------------- */

/* The pump leaves the exchange waiting: buffers nothing waits in go back (a stream session's).
 * A pump stopped at its budget already asked the session to pump again (x_yield). */
static inline enum exchange_status x_wait(struct exchange *x)
{
    if (x->req_stream)
        x_rest(x);
    return EX_WAIT;
}

/* XP_BUFFER: holds the body, then takes a backend once it may. Returns false while it holds (or
 * when the exchange ended). */
__attribute__((noinline)) static bool pump_hold(struct exchange *x)
{
    if (x->res != EX_WAIT || !exchange_req_hold_body(x))
        return false;
    x->phase = XP_PICK;
    connect_next(x);
    return true;
}

enum exchange_status exchange_pump(struct exchange *x)
{
    x->budget = x->ops->yield ? LOOP_IO_BUDGET : SIZE_MAX;
    x->yielded = false;
    /* first: the backend a held body is let go to may speak HTTP/2 (x->h2s) */
    if (unlikely(x->phase == XP_BUFFER) && !pump_hold(x))
        return x->res == EX_WAIT ? x_wait(x) : x->res;
    if (unlikely(x->h2s)) {
        enum exchange_status st = exchange_h2_pump(x);
        return st == EX_WAIT ? x_wait(x) : st;
    }
    if (x->phase == XP_TUNNEL) {
        enum exchange_status st = pump_tunnel_stream(x);
        return st == EX_WAIT ? x_wait(x) : st;
    }
    for (int rounds = 0; ex_relaying(x); rounds++) {
        if (rounds == 64) { /* readiness still set: the rest after the other connections */
            if (x->ops->yield)
                exchange_yield(x);
            break;
        }
        bool p = exchange_req_pump(x);
        if (!ex_relaying(x))
            break;
        p |= pump_response(x);
        if (!ex_relaying(x))
            break;
        if (x->resp_phase == RESP_DONE && (x->resph == NULL || x->resph->last == 0)) {
            if (x->tunnel_pending)
                return EX_TUNNEL;
            if (x->req_done)
                return EX_DONE;
            if (x->req_body != HTTP1_BODY_NONE) {
                /* The upstream answered before taking the whole body (say a 413): the rest of
                 * the body can go nowhere, so the client is closed after the response. */
                x->body_abandoned = true;
                x->resp_keepalive = false;
                x->req_done = true;
                return EX_DONE;
            }
        }
        if (!p || x->yielded)
            break;
        if (x->budget == 0) {
            exchange_yield(x); /* the rest after the worker's other connections */
            break;
        }
    }
    return x->res == EX_WAIT ? x_wait(x) : x->res;
}

/* ---------------------------------------------------------------- events ------------------- */

static void on_upstream_event(struct upstream_conn *up, uint32_t events)
{
    struct exchange *x = up->owner;
    if (x->phase == XP_CONNECT) {
        if (!up->connected) {
            if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                return;
            int rc = upstream_connect_result(up);
            if (rc != 0) {
                obs_connect_result(x->w, &x->obs, rc);
                connect_failed(x, strerror(-rc));
                x->ops->resume(x->client);
                return;
            }
        }
        if (ex_backend_cfg(x)->send_proxy_protocol && !up->pp_sent) {
            int rc = x_send_proxy_header(x, up); /* first, before any TLS byte */
            if (rc != 0) {
                obs_connect_result(x->w, &x->obs, rc);
                connect_failed(x, "cannot send the PROXY protocol header");
                x->ops->resume(x->client);
                return;
            }
        }
        /* https backend: the TLS handshake is part of connecting (same deadline, same retry,
         * and the connect-duration histogram includes it). */
        struct tls_client *tc = ex_backend_cfg(x)->tls_client;
        if (tc) {
            char err[256];
            int rc = upstream_tls_step(up, tc, err, sizeof(err));
            if (rc == -EAGAIN)
                return;
            if (rc < 0) {
                obs_connect_result(x->w, &x->obs, -EPROTO);
                connect_failed(x, err);
                x->ops->resume(x->client);
                return;
            }
        }
        obs_connect_result(x->w, &x->obs, 0);
        x->phase = XP_RELAY;
        x->progress_at = loop_now(x->w->loop);
    }
    x->ops->resume(x->client);
}
