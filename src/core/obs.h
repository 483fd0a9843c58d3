/* obs — the seam between the proxy and observability: what one request did, counted and logged.
 *
 * exchange.c embeds one struct obs_req in each exchange; it and the sessions (obs_req_end, for an
 * exchange's request through exchange_obs_end) call the hooks below at well-defined points of a
 * request's life and never touch counters or log lines:
 *
 *   obs_req_start      request head parsed (copies what the access log needs, X-Request-Id)
 *   obs_backend_try    a backend was picked: pooled connection or a new connect (retries counted)
 *   obs_connect_result a new connection is up, or failed (refused / timeout / reset)
 *   obs_response_head  the backend's final response head arrived
 *   obs_req_end        the exchange or golb's own error reply ended: status, termination code
 *   obs_tls_handshake  a client's TLS handshake ended (full, resumed, failed): no request yet
 *   obs_req_route      (routing) the request matched a route: obs_req_end counts it there too
 *
 * Everything here runs on the worker that owns the request and writes only that worker's
 * counters (struct obs_counters below, rendered by admin/metrics.c) and access-log ring
 * (accesslog.h).
 *
 * Termination codes (two letters, after HAProxy's): the first says who ended the exchange, the
 * second in which phase.
 *   who:   -  nobody (normal end)    C  the client aborted       S  the server failed or refused
 *          P  golb refused it        c  client timeout            s  server timeout
 *          K  golb cut it when shutdownTimeout passed: at shutdown (SIGTERM/SIGINT, error type
 *             "shutdown"), or on a backend a reload removed
 *   phase: -  normal end   R  reading the request head   C  connecting to a backend
 *          H  waiting for the response head             D  transferring a body
 *   e.g. "--" normal, "CD" client went away mid-body, "SC" connect refused, "sH" 504 upstream
 *   timeout, "SH" bad or reset response head (502), "PR" malformed request (400/414/431/501),
 *   "cR" request head timeout (408), "PC" no backend available (503).
 */
#ifndef GOLB_OBS_H
#define GOLB_OBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/counter.h"
#include "core/accesslog.h"

struct http_request;
struct backend;
struct config;
struct worker_ctx;

/* ---- counters: one block per worker, written by that worker only (base/counter.h) ---- */

enum obs_req_error {
    OBS_ERR_BAD_REQUEST = 0,
    OBS_ERR_HEADER_TIMEOUT,
    OBS_ERR_TOO_LARGE,
    OBS_ERR_CLIENT_ABORT,
    OBS_ERR_COUNT,
};

/* Client-side TLS handshakes on the HTTPS listener, by result. */
enum obs_tls_result {
    OBS_TLS_FULL = 0, /* completed with a full handshake */
    OBS_TLS_RESUMED,  /* completed by resuming a session (ticket) */
    OBS_TLS_FAILED,   /* no shared version or cipher, bad client certificate, garbage, timeout */
    OBS_TLS_COUNT,
};

/* PROXY protocol headers refused on accept (server/proxy_hdr.c), by reason. */
enum obs_pp_error {
    OBS_PP_MALFORMED = 0, /* not a valid v1 line / v2 header (bad signature, length, address) */
    OBS_PP_UNTRUSTED,     /* sent by a peer outside proxyProtocol.trustedNetworks */
    OBS_PP_MISSING,       /* a trusted peer sent none while proxyProtocol.required */
    OBS_PP_TIMEOUT,       /* the header did not arrive in time */
    OBS_PP_COUNT,
};

/* HTTP/2 connection events (h2session), counted per worker. */
enum obs_h2_event {
    OBS_H2_CONN_OPENED = 0,
    OBS_H2_CONN_CLOSED,
    OBS_H2_STREAM_OPENED,
    OBS_H2_STREAM_CLOSED,
    OBS_H2_RESET_BY_CLIENT, /* RST_STREAM received */
    OBS_H2_RESET_BY_GOLB,   /* RST_STREAM sent */
    OBS_H2_GOAWAY_DRAIN,    /* GOAWAY sent: shutdown or a reload closing the listener */
    OBS_H2_GOAWAY_IDLE,     /* GOAWAY sent: http2.idleTimeout */
    OBS_H2_GOAWAY_CALM,     /* GOAWAY sent: ENHANCE_YOUR_CALM (floods, rapid resets) */
    OBS_H2_GOAWAY_ERROR,    /* GOAWAY sent: a protocol error of the client */
    OBS_H2_COUNT,
};

/* The client's protocol, a label of the request counters and durations. */
enum obs_proto {
    OBS_PROTO_HTTP1 = 0, /* "http/1.1" (HTTP/1.0 included) */
    OBS_PROTO_H2,        /* "h2" (over TLS or h2c) */
    OBS_PROTO_COUNT,
};

struct obs_counters {
    /* by protocol and status class, golb's own answers included */
    _Atomic uint64_t requests[OBS_PROTO_COUNT][5];
    _Atomic uint64_t h2[OBS_H2_COUNT];
    _Atomic uint64_t errors[OBS_ERR_COUNT];
    _Atomic uint64_t conn_opened, conn_closed; /* active = opened - closed */
    _Atomic uint64_t req_started, req_ended;   /* in flight = started - ended */
    _Atomic uint64_t tls_handshakes[OBS_TLS_COUNT];
    _Atomic uint64_t pp_headers[2];            /* PROXY headers accepted: v1, v2 */
    _Atomic uint64_t pp_errors[OBS_PP_COUNT];
    struct counter_hist duration[OBS_PROTO_COUNT]; /* first byte in → last byte out */
    int worker;                  /* its slot in every backend's pw[] */
    struct obs_counters *next;   /* registry list */
};

/* A new zeroed block for worker `worker`, registered for scrapes; NULL on allocation failure. */
struct obs_counters *obs_counters_new(int worker);
void obs_counters_free(struct obs_counters *m);

/* Every registered worker block added up (a scrape, the admin API). */
struct obs_totals {
    uint64_t requests[5], errors[OBS_ERR_COUNT]; /* requests: every protocol's */
    uint64_t conn_opened, conn_closed, req_started, req_ended;
    uint64_t tls_handshakes[OBS_TLS_COUNT];
    uint64_t pp_headers[2], pp_errors[OBS_PP_COUNT];
    uint64_t h2[OBS_H2_COUNT];
    uint64_t duration[COUNTER_NBUCKETS], duration_sum_us; /* every protocol's */
    uint64_t proto_requests[OBS_PROTO_COUNT][5];
    uint64_t proto_duration[OBS_PROTO_COUNT][COUNTER_NBUCKETS];
    uint64_t proto_duration_sum_us[OBS_PROTO_COUNT];
};
void obs_counters_sum(struct obs_totals *out);

/* ---- per-route counters: objects keyed by the route's name, kept by the generations ----
 *
 * A generation holds one struct obs_route per route (generation.h `route_stats`, in the order of
 * cfg->routes); a reload gives a route of the same name the same object, as backends keep theirs
 * by identity, so its counters carry over, and a removed route's are freed with the last
 * generation that had it. Each worker writes only its own slot (pw[worker], a cache line of its
 * own: no line shared between workers on the request path); scrapes and the admin API add the
 * slots up (obs_route_sum).
 *
 *   generation 1: route_stats [ r"api" ─┐, r"static" ]       pw[0] requests[5] │ pw[1] ...
 *   generation 2: route_stats [ r"www", ┘r"api" ]             (one line per worker)
 */
struct obs_route_worker {
    _Alignas(64) _Atomic uint64_t requests[5]; /* answers on the route, by status class */
    uint32_t draws; /* a split route's requests on this worker so far: its next draw (never
                       read by scrapes; a reload that keeps the route keeps the cycle going) */
};

struct obs_route {
    char *name; /* the route's name (config_route.name): its identity */
    _Atomic int refs; /* generations that list it */
    int nworkers;
    struct obs_route_worker *pw; /* [nworkers] */
};

/* The counter objects for cfg's routes, in cfg->routes order ([cfg->nroutes], NULL when there
 * are none or memory ran out: *ok says which): a route whose name one of prev[0..nprev) has gets
 * that object (a reference taken), the others new zeroed ones. */
struct obs_route **obs_routes_new(const struct config *cfg, struct obs_route *const *prev,
                                  int nprev, int nworkers, bool *ok);
/* Drops the references of routes[0..n) and frees the array. */
void obs_routes_free(struct obs_route **routes, int n);
/* A request on `route` (NULL: none, nothing counted) was answered `status` on worker w: the
 * primitive obs_req_end calls for a request obs_req_route tagged, for answers golb gives without
 * an obs_req. The object must be kept alive by a generation the caller pins. */
void obs_route_done(struct worker_ctx *w, struct obs_route *route, int status);
/* route's counters summed over the workers, by status class. */
void obs_route_sum(const struct obs_route *route, uint64_t out[5]);
/* The next draw of a split route on worker `worker` (route_pool's draw): 0, 1, 2, ... per worker,
 * so each worker's shares are exact over every cycle of the weights' sum. */
static inline uint32_t obs_route_draw(struct obs_route *route, int worker)
{
    return route->pw[worker].draws++;
}

/* ---- one request ---- */

#define OBS_METHOD_MAX 16
#define OBS_TARGET_MAX 512
#define OBS_UA_MAX 192
#define OBS_REQID_MAX 64

/* What an access-log line says about one request. Filled by the hooks; zeroed with the exchange. */
struct obs_req {
    int64_t start_wall_ms;   /* when the request head started arriving */
    uint64_t start_us;       /* monotonic */
    uint64_t try_us;         /* current backend picked (connect started or pooled taken) */
    uint64_t connect_us;     /* time the last new connection took to open (0: reused) */
    uint64_t head_us;        /* request sent → response head */
    uint64_t total_us;       /* first byte in → end (set by obs_req_end) */
    uint64_t req_body_bytes, resp_body_bytes;
    uint64_t sent_bytes, received_bytes; /* to / from the backend, heads included */
    struct backend *backend; /* last backend tried, NULL none */
    struct obs_route *route; /* the route it matched (obs_req_route), NULL none */
    const char *pool;        /* the pool it went to (its generation's name), NULL none */
    uint32_t retries;
    int status;              /* what the client got (0: nothing) */
    int backend_status;      /* what the backend answered (0: nothing) */
    bool started, reused, ended;
    bool grpc;         /* a gRPC call (rpc.* in the JSON access log) */
    bool grpc_reply;   /* golb answered the gRPC call itself: HTTP 200 whatever its error */
    int8_t grpc_code;  /* its grpc-status + 1 (the backend's, or golb's own answer's); 0: none */
    uint8_t version; /* enum http_version */
    uint8_t method_len, ua_len, reqid_len;
    uint16_t target_len;
    bool target_cut, ua_cut;
    /* The text fields come last and are not cleared between requests (their lengths say what is
     * valid): OBS_REQ_CLEAR is what a new request must zero. */
    char method[OBS_METHOD_MAX];
    char target[OBS_TARGET_MAX];
    char ua[OBS_UA_MAX];
    char reqid[OBS_REQID_MAX];
};

#define OBS_REQ_CLEAR offsetof(struct obs_req, method)

/* A request head was parsed (any protocol). head_wait_ms: how long its head took to arrive. Sets
 * r->reqid from a valid client X-Request-Id ([A-Za-z0-9._:-]{1,64}) or a generated one. */
void obs_req_start(struct worker_ctx *w, struct obs_req *r, const struct http_request *req,
                   uint64_t head_wait_ms);
/* A backend was picked; `retry` when a previous try of this request failed. req_head_len: the
 * rewritten request head's size (bytes sent to the backend before the body). */
void obs_backend_try(struct worker_ctx *w, struct obs_req *r, struct backend *backend, bool reused,
                     bool retry, uint32_t req_head_len);
/* A new connection's outcome: err 0, or -errno (ETIMEDOUT for golb's own connect timeout). */
void obs_connect_result(struct worker_ctx *w, struct obs_req *r, int err);
/* The final response head arrived from the backend. */
void obs_response_head(struct worker_ctx *w, struct obs_req *r, int status, uint32_t head_len);
/* A client-side TLS handshake on the HTTPS listener ended with `result` (not a request: no
 * struct obs_req). */
void obs_tls_handshake(struct worker_ctx *w, enum obs_tls_result result);
/* A PROXY protocol header of `version` (1, 2) was accepted / a connection was closed on accept
 * for `reason` (server/proxy_hdr.c; no request). */
void obs_proxy_header(struct worker_ctx *w, int version);
void obs_proxy_header_error(struct worker_ctx *w, enum obs_pp_error reason);
/* An HTTP/2 connection event (obs_h2_event). */
void obs_h2(struct worker_ctx *w, enum obs_h2_event e);
/* The request matched a route (routing): `route` is its counter object in the generation the
 * request pins (generation_route_stats(g, index)); obs_req_end counts the answer there too. */
static inline void obs_req_route(struct obs_req *r, struct obs_route *route)
{
    r->route = route;
}

/* The termination code and error type of an answer golb gives itself with `status`, the same
 * whatever the client speaks: exchanging, an exchange was under way (a 408 is then the body's,
 * else the head's); relaying, its backend had been reached (a 502 is then an invalid answer,
 * else a failed connect). The exchange's own cause (exchange_result.end_term), when it has one,
 * goes before these. */
void obs_reply_terms(int status, bool exchanging, bool relaying, const char **term,
                     const char **err);
/* The request is over. status: what the client got (0 when nothing was answered; golb's own
 * error for an answer to a gRPC call it sent as HTTP 200 with grpc-status, r->grpc_reply: the
 * counters count the error, the line says 200); term: two letters (see above); error_type: NULL
 * or a short name ("client_abort", "response_timeout"). client_ip: the client's address text.
 * Counts it and writes its access-log line. Idempotent. */
void obs_req_end(struct worker_ctx *w, struct obs_req *r, int status, const char *term,
                 const char *error_type, const char *client_ip);

/* Formats r's access-log line (with its \n) into out; returns its length. backend: NULL or its
 * name; the other arguments as for obs_req_end. */
size_t obs_format_line(enum accesslog_format format, char *out, size_t cap, const struct obs_req *r,
                       const char *backend, const char *client_ip, const char *term,
                       const char *error_type);

/* Generates a request id into out (at least 33 bytes); returns its length. */
int obs_new_request_id(struct worker_ctx *w, char *out);

#endif
