/* exchange — one request in flight against one backend, whatever protocol the client speaks.
 *
 * An exchange picks a backend (balancer pick and release), takes a pooled connection or connects
 * (with the TLS handshake for https backends), retries on connect failures, replays a request a
 * pooled connection lost, sends the request head golb serialised and the request body it reads
 * from its client side, parses the response head, relays the response body with its framing,
 * computes its own deadlines and decides whether the upstream connection goes back to the pool.
 * It never touches the client's socket: everything client-side goes through `exchange_client_ops`,
 * implemented by a client-side session (h1session.c today; an HTTP/2 session would own many
 * exchanges on one connection, one per stream).
 *
 * Contract between the session ("client") and its exchange:
 *   - The session takes an exchange with exchange_get(), starts it with exchange_start() and from
 *     then on drives it by calling exchange_pump() (client readiness, a resume, after start) and
 *     exchange_timeout() (its timer passed exchange_deadline()). Both return an exchange_status;
 *     anything but EX_WAIT ends the exchange's own work and the session acts on it: EX_DONE
 *     exchange_finish(), EX_FAIL answer x->fail_status (or cut when the response has started),
 *     EX_CLOSE cut the client, EX_TUNNEL relay bytes (exchange_tunnel()). The session then frees
 *     the exchange with exchange_put(). The exchange never frees itself or the session.
 *   - The callbacks below are made only from inside exchange_start/pump/timeout, except resume,
 *     which is made only from the exchange's upstream event handler as its very last action (the
 *     handler touches nothing after it). No callback may free the exchange or close the session:
 *     a callback reports a failure through its return value and the exchange returns a status.
 *   - Buffers: the request body lives in the session's buffer (peek/consume/fill); the exchange
 *     owns reqh (request head as sent up), uin (bytes from the upstream) and resph (the head the
 *     session serialised in on_head, kept until send() took it). Pipes belong to the exchange.
 *   - Backpressure: when send() takes nothing (-EAGAIN) the exchange stops reading the upstream
 *     until the session pumps it again; when the source has nothing (fill -EAGAIN), the exchange
 *     waits until the session pumps it again after reading more.
 *   - splice: a session whose client end is a plain socket offers it through splice_end(); the
 *     exchange then moves large bodies socket → pipe → socket. A TLS or multiplexed session says no.
 * Settings, backends and the balancer all come from the generation the exchange pinned when it
 * was taken (exchange.c ex_cfg, ex_backend, ex_backend_cfg, ex_balancer): a reload never moves a
 * request in flight.
 */
#ifndef GOLB_EXCHANGE_H
#define GOLB_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "lb/balancer.h"
#include "net/conn.h"
#include "http/http1.h"
#include "core/obs.h"
#include "base/pipes.h"

struct buf;
struct generation;
struct worker_ctx;
struct upstream_conn;

enum exchange_status {
    EX_WAIT = 0, /* waiting for readiness (upstream, client, or the session's resume) */
    EX_DONE,     /* request sent and response relayed: exchange_finish() */
    EX_FAIL,     /* answer fail_status (cut instead when the response has started) */
    EX_CLOSE,    /* cut the client connection (client gone, or a broken response body) */
    EX_TUNNEL,   /* 101 relayed: the session relays bytes both ways (exchange_tunnel()) */
};

enum exchange_phase {
    XP_PICK = 0, /* head parsed, no backend yet */
    XP_CONNECT,  /* a new connection (and its TLS handshake) is being opened */
    XP_RELAY,    /* the upstream is there: request up, response down */
};

enum resp_phase {
    RESP_WAIT_HEAD = 0,
    RESP_BODY,
    RESP_DONE,
};

/* A client end that splice(2) may use: a plain socket and the session's readiness flags. */
struct exchange_splice {
    int fd;
    bool *readable, *writable, *eof;
};

/* What the exchange tells the session with a response head. */
struct exchange_head {
    const char *set_cookie; /* sticky Set-Cookie value for a final head (len 0: none) */
    size_t set_cookie_len;
};

/* The client side of an exchange. `client` is the session's pointer given to exchange_get(). */
struct exchange_client_ops {
    /* Request body source. peek: the unconsumed bytes the session holds (body first; maybe
     * pipelined bytes past it: the exchange takes only what the framing says). consume: n of
     * them went upstream. fill: read more from the client: > 0 bytes, -EAGAIN nothing now (the
     * session pumps again when there is), -ENOMEM no buffer, -EPIPE the client ended or failed. */
    const char *(*peek)(void *client, uint32_t *len);
    void (*consume)(void *client, uint32_t n);
    ssize_t (*fill)(void *client);
    /* A response head (interim 1xx or final) from the backend, already validated: the session
     * serialises what its client gets into out (appending) and records its own decisions
     * (keep-alive). Returns 0, or -ENOSPC when it does not fit. */
    int (*on_head)(void *client, const struct http1_response *resp,
                   const struct exchange_head *h, struct buf *out);
    /* Sends head bytes (head->iov_len may be 0), then body bytes (body may be NULL), in that
     * order. Returns the number of bytes taken from both, -EAGAIN when none, -EPIPE when the
     * client is gone. streaming: this body needed more than the read that brought its head. */
    ssize_t (*send)(void *client, const struct iovec *head, const struct iovec *body,
                    bool streaming);
    /* Offers the client end for splice(2); response: for the response body (else the request's).
     * Returns 0 with *out filled, or -ENOTSUP (TLS, multiplexed). Asked once per body at most. */
    int (*splice_end)(void *client, bool response, struct exchange_splice *out);
    /* Upstream activity: pump the exchange (from the upstream event handler, its last act). */
    void (*resume)(void *client);
};

/* What the session tells the exchange about its client and the request, at start. */
struct exchange_request {
    const char *client_ip;
    size_t client_ip_len;
    bool https;          /* the client came over TLS (X-Forwarded-Proto) */
    const char *subject; /* verified client certificate subject, or NULL */
    const char *subject_header; /* the header it goes in (tls.clientSubjectHeader), or NULL */
    bool dechunk;        /* the client cannot take chunked framing: decode chunked bodies */
    bool keepalive;      /* the client asked to keep its connection (session's own use) */
    bool http10;         /* HTTP/1.0 client (session's own use) */
    uint64_t head_wait_ms;
};

/* The upstream side of a tunnel, once the 101 went down (EX_TUNNEL). Owned by the session from
 * then on, inside the exchange. */
struct exchange_tunnel {
    struct conn_end up;
    struct buf *buf; /* upstream → client bytes */
    bool *up_eof;
    bool up_shut, client_shut;
};

/* One request/response exchange: everything that exists only while a request is in flight.
 * Taken from the worker's free list when a request head is parsed, given back when the exchange
 * ends, so an idle keep-alive connection costs only its session. The session reads the fields
 * marked (session) and obs; everything else is the exchange's. */
struct exchange {
    struct exchange *next_free;
    struct worker_ctx *w;
    const struct exchange_client_ops *ops;
    void *client;
    enum exchange_status res; /* EX_WAIT while running; the stored outcome otherwise */
    enum exchange_phase phase;
    int fail_status;              /* EX_FAIL: the status to answer */
    enum lb_outcome fail_outcome; /* EX_FAIL: what the balancer is told */
    struct buf *reqh, *uin, *resph;
    uint32_t reqh_sent, resph_sent;
    uint32_t reqh_host_at; /* where a Host line goes when the request had none (0: it had) */
    struct kpipe req_pipe, resp_pipe; /* splice paths; r == -1 when unused */
    struct exchange_splice splice_req, splice_resp; /* fd -1: not (yet) offered */
    bool no_splice;                                 /* the client end refused splice */

    struct generation *gen; /* pinned for the exchange's life (worker_ctx_pin) */
    struct upstream_conn *up;
    int backend; /* index in gen's backend table, -1 before the first pick */
    bool up_reused, replayed;
    struct lb_tried tried;
    struct lb_request lbr; /* what the balancer read from the head: key, sticky cookie */
    uint64_t sent_at;      /* request fully sent upstream */
    uint64_t progress_at;  /* last byte moved, or phase change */

    /* request being forwarded */
    enum http1_body req_body; /* (session) */
    uint64_t req_remaining;   /* LENGTH: body bytes not yet sent */
    uint32_t req_ready;       /* CHUNKED: validated bytes at the source not yet sent */
    struct http1_chunked req_chunk;
    bool req_done, req_body_sent, req_is_head, req_upgrade; /* (session) req_done, req_upgrade */
    bool req_keepalive, req_http10; /* (session) from exchange_request */
    bool client_dechunk;            /* from exchange_request: decode chunked response bodies */

    /* response being relayed */
    enum resp_phase resp_phase;
    enum http1_body resp_body;
    uint64_t resp_remaining;
    uint32_t resp_ready; /* CHUNKED: bytes at uin->pos validated (pass-through) or decoded */
    struct http1_chunked resp_chunk;
    bool resp_started, resp_dechunk, resp_keepalive, tunnel_pending; /* (session) reads them */
    bool client_keepalive; /* (session) its decision, written from on_head */
    bool body_abandoned;   /* the response ended before the request body was read: close */
    bool up_eof;
    struct exchange_tunnel tunnel;

    /* observability: facts for counters and the access log (obs.h); end_term/end_error name the
     * cause when golb cuts the exchange for a reason the session cannot see */
    const char *end_term, *end_error;
    struct obs_req obs; /* last: exchange_get() clears only up to its text buffers */
};

/* A cleared exchange from w's free list (or malloc), bound to a client side and pinned to w's
 * current generation until exchange_put(); NULL when out of memory. */
struct exchange *exchange_get(struct worker_ctx *w, const struct exchange_client_ops *ops,
                              void *client);
/* Gives back the exchange's buffers and pipes and the exchange itself; an upstream still held is
 * released as failed. */
void exchange_put(struct exchange *x);
/* Frees w's free list (worker teardown). */
void exchange_pool_free(struct worker_ctx *w);

/* Starts forwarding a parsed, validated request: framing, rewritten head, first pick (and a pooled
 * connection or a connect). Returns EX_WAIT (then pump) or EX_FAIL. */
enum exchange_status exchange_start(struct exchange *x, const struct http1_request *req,
                                    const struct exchange_request *info);
/* Moves bytes both ways until nothing progresses. */
enum exchange_status exchange_pump(struct exchange *x);
/* When the exchange's wait must end (loop time). */
uint64_t exchange_deadline(const struct exchange *x);
/* The deadline passed: connect timeout (next backend), 504, or 408. */
enum exchange_status exchange_timeout(struct exchange *x);
/* EX_DONE: counts the success and pools or closes the upstream connection. */
void exchange_finish(struct exchange *x);
/* Drops the upstream connection, if any (closed), telling the balancer outcome. */
void exchange_release_upstream(struct exchange *x, enum lb_outcome outcome);
/* True when the exchange's backend was removed by a reload (its requests are cut after
 * shutdownTimeout). */
bool exchange_backend_retired(const struct exchange *x);
/* EX_TUNNEL: the upstream end and buffer for the session's relay; NULL when out of buffers. */
struct exchange_tunnel *exchange_tunnel(struct exchange *x);

static inline bool exchange_connecting(const struct exchange *x)
{
    return x->phase == XP_CONNECT;
}

#endif
