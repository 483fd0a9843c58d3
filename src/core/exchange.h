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
 *     exchange_finish(), EX_FAIL answer the result's fail_status (or cut when the response has
 *     started), EX_REPLY answer exchange_reply() (only ever from exchange_start), EX_CLOSE cut
 *     the client, EX_TUNNEL relay bytes (over its own socket with
 *     exchange_tunnel(), or over its stream with exchange_tunnel_stream() and more pumps). The
 *     session then frees the exchange with exchange_put(). The exchange never frees itself or
 *     the session.
 *   - The request reaches the exchange as the protocol-neutral struct http_request (http.h),
 *     whatever the client spoke; the upstream always gets HTTP/1.1 (rewrite.h).
 *   - struct exchange is opaque to sessions (its body is in exchange_int.h, private to exchange.c
 *     and its unit tests). What a session may know comes in three ways: struct exchange_head with
 *     each response head (on_head), struct exchange_result copied out by exchange_result() when
 *     the session acts on an outcome or ends the exchange itself, and a few calls
 *     (exchange_config, exchange_connecting, exchange_cut_retired, exchange_obs_end).
 *   - The callbacks below are made only from inside exchange_start/pump/timeout, except resume,
 *     which is made only from the exchange's upstream event handler as its very last action (the
 *     handler touches nothing after it). No callback may free the exchange or close the session:
 *     a callback reports a failure through its return value and the exchange returns a status.
 *   - Each exchange_pump() moves about LOOP_IO_BUDGET body bytes at most; stopped there, it
 *     calls yield() and the session pumps it again after the worker's other work (loop_yield).
 *   - Ends: an HTTP/1 session's framing says where bodies end; a stream session (HTTP/2) learns
 *     the end of the response, with its trailers, from body_end(), and tells the end of the
 *     request body by fill() returning 0, its trailers through trailers().
 *   - Buffers: the request body lives in the session's buffer (peek/consume/fill); the exchange
 *     owns reqh (request head as sent up), uin (bytes from the upstream) and resph (the head the
 *     session serialised in on_head, kept until send() took it). A stream session's exchange
 *     holds them only while bytes wait in them, reqh for a replay REPLAY_WINDOW_MS at most
 *     (exchange_deadline() includes it): at rest it holds none. An HTTP/1 exchange keeps them to
 *     its end, reqh to the response head. Pipes belong to the exchange.
 *   - Backpressure: when send() takes nothing (-EAGAIN) the exchange stops reading the upstream
 *     until the session pumps it again; when the source has nothing (fill -EAGAIN), the exchange
 *     waits until the session pumps it again after reading more.
 *   - splice: a session whose client end is a plain socket offers it through splice_end(); the
 *     exchange then moves large bodies socket → pipe → socket. A TLS or multiplexed session says no.
 * Settings, backends and the balancer all come from the generation the exchange pinned when it
 * was taken, and from the pool of that generation its route chose (exchange_int.h ex_cfg,
 * ex_backend, ex_backend_cfg, ex_balancer): a reload never moves a request in flight.
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

struct buf;
struct http_field;
struct reply_desc;
struct rewrite_headers;
struct http_request;
struct http1_response;
struct config;
struct exchange;
struct worker_ctx;

enum exchange_status {
    EX_WAIT = 0, /* waiting for readiness (upstream, client, or the session's resume) */
    EX_DONE,     /* request sent and response relayed: exchange_finish() */
    EX_FAIL,     /* answer fail_status (cut instead when the response has started) */
    EX_CLOSE,    /* cut the client connection (client gone, or a broken response body) */
    EX_TUNNEL,   /* 101 relayed: the session relays bytes both ways (exchange_tunnel()) */
    EX_REPLY,    /* golb answers the request itself (a route's redirect or respond; 403 allow/deny,
                    429 rateLimit, 404 no route and no default pool): the session writes
                    exchange_reply()'s description (its protocol's serialisation, e.g.
                    reply_http1) and may keep the connection when the request had no body */
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
    bool dechunk;  /* the exchange decodes this chunked body (exchange_request.dechunk): the
                      client gets it close-delimited */
    bool req_done; /* the request went up whole (else the rest of its body will be abandoned) */
    const struct rewrite_headers *headers; /* the route's response filter for a final head (not
                                              1xx or 101): rewrite_response.headers; NULL none */
};

/* The client side of an exchange. `client` is the session's pointer given to exchange_get(). */
struct exchange_client_ops {
    /* Request body source. peek: the unconsumed bytes the session holds (body first; maybe
     * pipelined bytes past it: the exchange takes only what the framing says). consume: n of
     * them went upstream. fill: read more from the client: > 0 bytes, 0 the body ended (a stream
     * source only: nothing follows what peek shows), -EAGAIN nothing now (the session pumps again
     * when there is), -ENOMEM no buffer, -EPIPE the client ended or failed (the body is cut). A
     * stream source's fill may be asked while peek still shows bytes, to learn whether the end
     * has come. */
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
    /* The exchange stopped at its byte budget (LOOP_IO_BUDGET per exchange_pump call) with bytes
     * still to move and its readiness flags still set: call exchange_pump again once the other
     * connections of the worker had their turn (loop_yield), never from inside this call. NULL:
     * no budget (the exchange moves all it can per call). */
    void (*yield)(void *client);
    /* Optional (NULL: the session's own framing says where a body ends, as HTTP/1's does).
     * body_end: the response is complete, every byte of it went through send(). Made once per
     * final response but a 101, after its head and body, a bodiless one included. trailers: the
     * fields of the chunked trailer section when the exchange de-chunked the body
     * (exchange_request.dechunk), else n is 0; spans valid during the call only. Returns 0,
     * -EAGAIN (not now: asked again at the next pump) or -EPIPE (the client is gone). */
    int (*body_end)(void *client, const struct http_field *trailers, size_t n);
    /* trailers: the request's trailers, asked once when a stream source's STREAM body ended;
     * they go up in the chunked trailer section. Returns how many fields *out points to (valid
     * during the call). A body with a declared length cannot carry any: they are not asked. */
    size_t (*trailers)(void *client, const struct http_field **out);
    /* held: request body bytes a stream source keeps for the exchange, and (*complete) whether
     * no more will come before some are taken: the body ended, or the source's buffer (HTTP/2:
     * the stream's flow-control window, the connection's body bound) is full. requestBufferSize
     * holds a stream's body there, nothing copied. NULL: requestBufferSize does not apply. */
    uint64_t (*held)(void *client, bool *complete);
};

/* What the session tells the exchange about its client and the request, at start. */
struct exchange_request {
    const char *client_ip;
    size_t client_ip_len;
    bool https;          /* the client came over TLS (X-Forwarded-Proto) */
    const char *subject; /* verified client certificate subject, or NULL */
    const char *subject_header; /* the header it goes in (tls.clientSubjectHeader), or NULL */
    bool dechunk;               /* the client cannot take chunked framing: decode chunked bodies */
    /* The client side is one stream of a multiplexed connection (HTTP/2). Its body source holds
     * exactly the body and says where it ends (fill returns 0: END_STREAM). A STREAM body then
     * goes up chunked, the exchange writing the framing; a LENGTH body must bring exactly its
     * length: its last byte waits for the end, and more bytes or an earlier end answer 400 with
     * the upstream connection cut, so the upstream never sees a whole body the client
     * contradicts. And its exchange holds buffers only while bytes wait in them, its request
     * head for a replay REPLAY_WINDOW_MS at most, so idle streams cost no buffer. (Such a
     * session sets dechunk too: a stream carries no chunked framing; the trailers come to
     * body_end.)
     * Without it (HTTP/1) the framing says where the body ends: a length is counted out of peek
     * (bytes past it are the next request's), and a STREAM body comes in HTTP/1.1 chunked coding,
     * validated and sent up as it came; the exchange keeps its buffers to its end. */
    bool stream;
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

/* What a session may know of its exchange: a copy made by exchange_result() when the session
 * acts on an outcome (EX_DONE: the keep-alive decision; EX_FAIL: the answer) or ends the exchange
 * itself (its client closed, golb cut it) and logs it. Nothing else of the exchange is visible. */
struct exchange_result {
    int fail_status;              /* EX_FAIL: the status to answer */
    enum lb_outcome fail_outcome; /* EX_FAIL: what the balancer is told */
    int backend_status;           /* the backend's final status (0: none came) */
    const char *end_term;  /* golb failed or cut the exchange for a cause the session cannot see:
                              its termination code (obs.h), else NULL */
    const char *end_error; /* and its error type */
    bool resp_started;     /* response bytes went to the client: a failure can only cut */
    bool req_done;         /* the request went up whole */
    bool relaying;         /* the upstream connection was up (a 502 is then a bad response) */
    bool tunnel;           /* a 101 was accepted: the connection is (becoming) a tunnel */
    bool body_abandoned;   /* EX_DONE: the response ended before the request body was read,
                              whose rest can go nowhere: the client connection cannot continue */
    bool log_pending;      /* its request started and its end is not logged yet */
    bool grpc;             /* a gRPC call: answer fail_status the gRPC way (reply_error) */
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

/* Starts forwarding a parsed, validated request, whatever protocol the client spoke (http.h; its
 * spans are read only during this call): the route (path normalised, route matched, its policies,
 * its pool; exchange_route.c), framing, rewritten head, first pick (and a pooled connection or a
 * connect). Returns EX_WAIT (then pump), EX_REPLY (golb answers: exchange_reply()) or EX_FAIL
 * (400: a path that does not normalise; 501: an extended CONNECT to a protocol
 * upgradeProtocols does not allow). */
enum exchange_status exchange_start(struct exchange *x, const struct http_request *req,
                                    const struct exchange_request *info);
/* Moves bytes both ways until nothing progresses, or the budget is spent: then it asks the
 * session to pump it again soon (ops->yield) and returns EX_WAIT. */
enum exchange_status exchange_pump(struct exchange *x);
/* When the exchange's wait must end (loop time). */
uint64_t exchange_deadline(const struct exchange *x);
/* The deadline passed: connect timeout (next backend), 504, or 408. */
enum exchange_status exchange_timeout(struct exchange *x);
/* EX_DONE: counts the success and pools or closes the upstream connection. */
void exchange_finish(struct exchange *x);
/* Drops the upstream connection, if any (closed), telling the balancer outcome. */
void exchange_release_upstream(struct exchange *x, enum lb_outcome outcome);
/* True when the exchange's backend was removed by a reload: its requests are cut after
 * shutdownTimeout, and the exchange notes it as the cause (termination KH or KD); the session
 * then closes. False (nothing noted) otherwise. */
bool exchange_cut_retired(struct exchange *x);
/* golb is about to cut the exchange because shutdownTimeout passed at shutdown (SIGTERM/SIGINT):
 * the exchange notes it as the cause (termination KC, KH or KD by phase, error type "shutdown"),
 * so its access-log line does not blame the client. */
void exchange_note_shutdown(struct exchange *x);
/* EX_TUNNEL: the upstream end and buffer for the session's relay, set up by the first call (NULL
 * when out of buffers); later calls return the same. */
struct exchange_tunnel *exchange_tunnel(struct exchange *x);
/* EX_TUNNEL, for a session whose client end is a stream rather than a socket (an HTTP/2 stream
 * after an extended CONNECT, RFC 8441): the exchange relays the tunnel itself from then on,
 * through the session's source (peek/consume/fill, fill 0: the client ended its half) and sink
 * (send; body_end, required: the upstream ended its half). exchange_pump() returns EX_WAIT while
 * it runs, EX_DONE once both halves ended and every byte went through, EX_CLOSE on an error;
 * exchange_deadline() is tunnelTimeout after the last byte moved, and exchange_timeout() then
 * answers EX_CLOSE. At EX_DONE the session calls exchange_finish() as usual; the upstream
 * connection is never pooled after a tunnel. HTTP/1 keeps its faster path
 * over its own socket (exchange_tunnel()). */
void exchange_tunnel_stream(struct exchange *x);
/* True while a new upstream connection (and its TLS handshake) is being opened: client events
 * can wait. */
bool exchange_connecting(const struct exchange *x);
/* The settings of the generation the exchange pinned (its request's, to its end). */
const struct config *exchange_config(const struct exchange *x);
/* EX_REPLY: what golb answers (http/reply.h), valid until exchange_put(); NULL otherwise. */
const struct reply_desc *exchange_reply(const struct exchange *x);
/* Copies out what the session may know (struct exchange_result above). */
void exchange_result(const struct exchange *x, struct exchange_result *out);
/* Counts and logs the exchange's request as ended (obs_req_end over its struct obs_req): what the
 * client got (0: nothing), the termination code and error type (obs.h), the client's address.
 * Idempotent. */
void exchange_obs_end(struct exchange *x, int status, const char *term, const char *error_type,
                      const char *client_ip);
/* The same for an answer golb generated itself (status: its error or a route's reply): a gRPC
 * call's went the gRPC way (HTTP 200 with grpc-status, reply_error), which is the status the
 * access log says; the counters count `status`, and rpc.grpc.status_code is its gRPC code. */
void exchange_obs_end_reply(struct exchange *x, int status, const char *term,
                            const char *error_type, const char *client_ip);

#endif
