/* exchange_int — the body of struct exchange: private to exchange.c, exchange_req.c (and to the
 * unit tests that build or inspect an exchange). Sessions see only exchange.h.
 * scripts/check-layers.sh refuses an include of a *_int.h header from another folder.
 */
#ifndef GOLB_EXCHANGE_INT_H
#define GOLB_EXCHANGE_INT_H

#include "core/exchange.h"

#include "base/pipes.h"
#include "config/config.h"
#include "upstream/backend.h"
#include "core/generation.h"
#include "core/obs.h"
#include "http/http1.h"
#include "net/conn.h"
#include "http/reply.h"
#include "upstream/upstream.h"

struct generation;
struct upstream_conn;
struct worker_ctx;

/* A stream session's request sent on a pooled connection is replayed when the connection turns
 * out closed within this long after its head went: the race with the backend's own keep-alive
 * close is one round trip. Its head is kept as long, even at rest (then the deadline wakes the
 * exchange to let go). HTTP/1 keeps the head, and the replay, until the response head. */
#define REPLAY_WINDOW_MS 1000u

enum exchange_phase {
    XP_PICK = 0, /* head parsed, no backend yet */
    XP_BUFFER,   /* the request body is held (requestBufferSize) before a backend is taken */
    XP_CONNECT,  /* a new connection (and its TLS handshake) is being opened */
    XP_RELAY,    /* the upstream is there: request up, response down */
    XP_TUNNEL,   /* after a 101, bytes both ways through the session's source and sink
                    (exchange_tunnel_stream) */
};

enum resp_phase {
    RESP_WAIT_HEAD = 0,
    RESP_BODY,
    RESP_END, /* the body is complete; the session's body_end has not taken it yet */
    RESP_DONE,
};

/* One request/response exchange: everything that exists only while a request is in flight.
 * Taken from the worker's free list when a request head is parsed, given back when the exchange
 * ends, so an idle keep-alive connection costs only its session. No session reads it: what they
 * learn is in struct exchange_head and struct exchange_result (exchange.h). */
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
    struct buf *reqt; /* the last chunk with the request's trailers, while it is sent */
    uint32_t reqh_sent, resph_sent;
    uint32_t reqh_host_at; /* where a Host line goes when the request had none (0: it had) */
    struct kpipe req_pipe, resp_pipe; /* splice paths; r == -1 when unused */
    uint64_t resp_room; /* what the client socket can still take, as pipe_splice last saw it */
    struct exchange_splice splice_req, splice_resp; /* fd -1: not (yet) offered */
    bool no_splice;                                 /* the client end refused splice */

    struct generation *gen; /* pinned for the exchange's life (worker_ctx_pin) */
    /* the pool of gen the request goes to: pools[0] (default) unless its route says otherwise
     * (exchange_route); its view of the config is the exchange's (ex_cfg) */
    const struct generation_pool *pool;
    int route;                    /* index of the route it matched, -1: none */
    uint32_t upstream_timeout_ms; /* the pool's upstreamTimeout, or the route's */
    uint32_t retries;             /* the pool's retries, or the route's */
    const struct rewrite_headers *resp_headers; /* the route's response filter, NULL: none */
    struct reply_desc reply;      /* EX_REPLY: what golb answers (spans in reqh or the config) */
    bool grpc;                    /* a gRPC call (http/grpc.h): golb's errors answered its way */
    struct h2up_stream *h2s;      /* protocol h2: the upstream stream (exchange_h2.c), else NULL */
    bool resp_chunked_out;        /* h2 upstream: the exchange frames the body as chunks */
    bool chunk_trailer;           /* h2 upstream: a chunk's data went, its CRLF is next */
    uint64_t chunk_left;          /* h2 upstream: data bytes of the current chunk still to go */
    /* h2 upstream, an HTTP/1 chunked request body: decoded again from its first byte (the hold
     * chain keeps the framing as received), the data as DATA, the trailer section (kept in reqt)
     * as HEADERS. h2_data: data bytes at the front of the hold chain or source, decoded, not yet
     * taken by the stream. */
    struct http1_chunked h2_chunk;
    uint32_t h2_data;
    uint64_t grpc_deadline;       /* its grpc-timeout as a loop time, 0: none */
    struct upstream_conn *up;
    int backend; /* index in gen's backend table, -1 before the first pick */
    bool up_reused, replayed;
    struct lb_tried tried;
    struct lb_request lbr; /* what the balancer read from the head: key, sticky cookie */
    size_t budget;         /* bytes this exchange_pump call may still move (ops->yield) */
    bool yielded;          /* this exchange_pump call asked the session to call again later */
    uint64_t sent_at;      /* request fully sent upstream */
    uint64_t head_sent_at; /* request head fully sent (the replay window starts) */
    uint64_t progress_at;  /* last byte moved, or phase change */

    /* request being forwarded */
    enum http1_body req_body;
    uint64_t req_remaining; /* LENGTH: body bytes not yet sent */
    uint32_t req_ready;     /* CHUNKED: validated bytes at the source not yet sent */
    struct http1_chunked req_chunk;
    /* XP_BUFFER: body bytes taken from the source while the request was held, as received
     * (chunk framing included), in pooled buffers chained through buf->next; sent first */
    struct buf *hold, *hold_tail;
    uint64_t held; /* bytes in that chain */
    uint64_t stream_held; /* XP_BUFFER, a stream source: the bytes it held at the last look */
    bool req_done, req_body_sent, req_is_head;
    bool req_upgrade; /* an Upgrade to a protocol of upgradeProtocols: a 101 may tunnel */
    /* A stream source (exchange_request.stream) says where the body ends. Its STREAM body
     * goes up chunked with the framing written here: req_frame is what goes before the next data
     * bytes (the CRLF ending the previous chunk, the next size line; at the end the last chunk),
     * req_chunk_left what the current chunk still carries. */
    bool req_stream, req_src_end;
    bool req_encode;      /* the exchange writes the chunked framing */
    bool req_chunk_open;  /* a chunk's data went: its CRLF goes before the next size line */
    bool req_last_framed; /* the last chunk is in req_frame (or sent) */
    uint32_t req_frame_len, req_frame_sent;
    uint64_t req_chunk_left;
    bool client_dechunk; /* from exchange_request: decode chunked response bodies */
    bool coalesce_head;  /* from exchange_request.https: the client's transport pays per write
                            (a TLS record each), so a final head that came alone waits for its
                            first body bytes to go out with them: one more upstream read now, and
                            one after the worker's other ready events (a yield) */
    uint8_t head_reads;  /* those reads made (at most 2 per exchange) */

    /* response being relayed */
    enum resp_phase resp_phase;
    enum http1_body resp_body;
    uint64_t resp_remaining;
    uint32_t resp_ready; /* CHUNKED: bytes at uin->pos validated (pass-through) or decoded */
    struct http1_chunked resp_chunk;
    bool resp_started, resp_dechunk, resp_keepalive, tunnel_pending;
    bool resp_trailers;  /* de-chunking for a sink with body_end: its trailer section is kept */
    uint32_t resp_tlen;  /* trailer section bytes kept in uin after the resp_ready data bytes */
    bool body_abandoned; /* the response ended before the request body was read: close */
    bool up_eof;
    struct exchange_tunnel tunnel;
    bool tun_client_done, tun_up_done; /* XP_TUNNEL: each half ended and was passed on */

    /* observability: facts for counters and the access log (obs.h); end_term/end_error name the
     * cause when golb cuts the exchange for a reason the session cannot see */
    const char *end_term, *end_error;
    bool end_early; /* the exchange ended the response itself for that cause (gRPC trailers) and
                       then finished as a whole one: the access log names the cause anyway */
    struct obs_req obs; /* exchange_get() clears only up to its text buffers */

    /* Not cleared by exchange_get(): written before they are read. */
    char req_frame[24]; /* "\r\n" + up to 16 hex digits + "\r\n", or "\r\n0\r\n\r\n"; the
                           last chunk with trailers is in reqt instead */
    /* The request's client address (exchange_start, x_client_address): the session's, or the right-most untrusted
     * X-Forwarded-For entry when the session's is one of trustedProxies (http/forwarded.h); what
     * the balancer hashes and the access log says. peer_trusted: the session's is trusted. */
    bool peer_trusted;
    uint8_t client_ip_len;
    char client_ip[46];
};

/* Paths HTTP/1's requests never take (stream sources, trailers, stream tunnels): kept out of
 * exchange_pump, whose every call HTTP/1 keep-alive pays for. */
#define COLD __attribute__((cold, noinline))

/* The one place an exchange reads configuration, backends and balancer: all of it from the
 * generation the request pinned at start, and from the pool of it the request's route chose, so a
 * reload never moves a request in flight (its timeouts, retries, backends and balancer stay those
 * it started with). ex_cfg: the settings of the whole process (client-side timeouts, limits);
 * ex_pool_cfg: the pool's view (config_pool_view: its backends, connectTimeout, maxFails, ...);
 * upstreamTimeout and retries, the pool's or the route's, are x->upstream_timeout_ms and
 * x->retries. */
static inline const struct config *ex_cfg(const struct exchange *x)
{
    return x->gen->cfg;
}

static inline const struct config *ex_pool_cfg(const struct exchange *x)
{
    return &x->pool->cfg;
}

static inline struct backend *ex_backend(const struct exchange *x, int idx)
{
    return x->pool->table->b[idx];
}

/* upgradeProtocols of the exchange's generation (NULL-terminated) */
static inline const char *const *ex_upgrades(const struct exchange *x)
{
    return (const char *const *)x->gen->cfg->upgrade_protocols;
}

/* The chosen backend's settings in the exchange's generation. */
static inline const struct config_backend *ex_backend_cfg(const struct exchange *x)
{
    return &x->pool->cfg.backends[x->backend];
}

static inline struct balancer *ex_balancer(const struct exchange *x)
{
    return x->pool->balancer;
}

/* n bytes moved: counted against this exchange_pump call's budget. */
static inline void ex_spend(struct exchange *x, size_t n)
{
    x->budget = n < x->budget ? x->budget - n : 0;
}

/* True while pumping may go on: no outcome yet and the upstream is there. */
static inline bool ex_relaying(const struct exchange *x)
{
    return x->res == EX_WAIT && x->phase == XP_RELAY;
}

static inline ssize_t ex_upstream_writev(struct upstream_conn *up, const struct iovec *iov, int n)
{
    return conn_writev(up->io.fd, up->ssl, iov, n, &up->writable, &up->readable);
}

/* The request direction (exchange_req.c). */

/* A request with a body is held until the body is complete or requestBufferSize bytes of it came,
 * before a backend is taken: a client that trickles its body costs golb a few buffers, not a
 * backend connection (HAProxy's http-buffer-request). Not for Expect: 100-continue (the client
 * waits for the backend's 100 before it sends the body) nor for an upgrade. */
static inline bool exchange_req_hold_wanted(const struct exchange *x,
                                            const struct http_request *req)
{
    /* A stream source (HTTP/2) holds the body in its own buffers (ops->held), not here, and
     * only a body of declared length: one without is a stream a client may feed as answers come
     * (gRPC's client and bidirectional streaming) and holding it would wait for nothing. */
    return (req->body == HTTP_BODY_STREAM ||
            (req->body == HTTP_BODY_LENGTH && req->content_length > 0)) &&
           ex_cfg(x)->request_buffer_size > 0 && !x->req_upgrade &&
           (!x->req_stream ||
            (x->ops->held && req->body == HTTP_BODY_LENGTH && !x->grpc)) &&
           !(req->flags & HTTP_RF_EXPECT_100);
}

/* Shared by exchange.c (picking, response, tunnels) and exchange_req.c (the request direction). */
enum exchange_status exchange_fail(struct exchange *x, int status, enum lb_outcome outcome);
void exchange_yield(struct exchange *x);
void exchange_upstream_broken(struct exchange *x, const char *why);
bool exchange_want_splice(struct exchange *x, struct kpipe *p, struct exchange_splice *end,
                          bool response, bool head_out, uint32_t buffered, enum http1_body framing,
                          uint64_t remaining);

/* exchange_route.c: the route decision at start. Normalises req's path, matches the route, applies
 * its policies and action: returns EX_WAIT with x->pool (and the route's overrides and filters)
 * set and *out the request as it goes upstream (req with its path normalised and rewritten; its
 * spans valid until the next call on this worker), or EX_REPLY / EX_FAIL (x->res set). Only when
 * x->gen->routing. */
enum exchange_status exchange_route(struct exchange *x, const struct http_request *req,
                                    const struct exchange_request *info, struct http_request *out);

/* exchange.c, for exchange_h2.c: a final head to the session (into resph), and the end of an
 * upstream attempt that failed while connecting (the next backend is tried). */
bool exchange_response_head(struct exchange *x, const struct http1_response *resp);
void exchange_connect_failed(struct exchange *x, const char *why);
void exchange_connect_next(struct exchange *x);
/* The PROXY protocol header (sendProxyProtocol of the chosen backend: v1 or v2) naming the
 * request's client into hdr (cap bytes), and that client as a pool key: its length, or -errno. */
ssize_t exchange_proxy_header(const struct exchange *x, char *hdr, size_t cap,
                              struct upstream_pp *key);

/* exchange_h2.c: the exchange over an HTTP/2 upstream stream (protocol h2). open: a stream on
 * backend b (false, *err set, when none could start); pump: both directions; failed: the
 * stream failed (a retry, the next backend, a 502 or a cut). */
bool exchange_h2_open(struct exchange *x, struct backend *b, int *err);
enum exchange_status exchange_h2_pump(struct exchange *x);
void exchange_h2_failed(struct exchange *x);
/* Ends an HTTP/1.1 client's response the exchange frames as chunks (resp_chunked_out) before
 * the backend's end: the last chunk with trailers t[0..n) goes into resph, the response is
 * RESP_END (the pump sends it, then RESP_DONE). False when it cannot: a chunk is half sent. */
bool exchange_h2_end_chunked(struct exchange *x, const struct http_field *t, size_t n);

/* exchange_req.c: the request direction (holding the body, sending head and body up). */
bool exchange_req_hold_body(struct exchange *x);
bool exchange_req_pump(struct exchange *x);

#endif
