/* worker_ctx — what the data path needs from the worker thread it runs on.
 *
 * Sessions (session/), exchanges and obs (core/) run on one worker's thread and use that worker's
 * loop, pools, configuration generation, counters and access-log ring: all of it is here. They
 * never see the thread, its listeners or the reload hand-off: struct worker (server/worker.h)
 * embeds a struct worker_ctx and keeps those. What the server side must learn from the data path
 * goes through the hook below, so the include arrow points one way: server → core.
 *
 *   server/worker.c ── accept ──► server/proxy.c ── chooses the protocol ──► session (h1 today)
 *        │ drain, close all, cut retired                                      │ registers itself
 *        ▼                                                                    ▼
 *   worker_ctx: sessions ◄── struct worker_session { ops, prev, next } ── embedded in the session
 *               on_conn_closed hook ◄── worker_ctx_session_closed() ── the connection is gone
 *
 * Session registry: each client connection's session registers with worker_ctx_session_add() and
 * leaves with worker_ctx_session_remove() when it closes. The worker drains, closes and cuts
 * sessions only through their ops (worker_ctx_drain_sessions, ...), so it knows neither HTTP/1
 * nor HTTP/2.
 *
 * Everything here is used by the worker's own thread only (the hook is called on it too).
 */
#ifndef GOLB_WORKER_CTX_H
#define GOLB_WORKER_CTX_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/mcache.h"
#include "base/pipes.h"

struct loop;
struct config;
struct generation;
struct upstream_pool;
struct exchange;
struct obs_counters;
struct accesslog_ring;
struct worker_session;
struct route_worker;

/* What the worker may ask of a session, on its own thread, between events. */
struct worker_session_ops {
    /* The worker drains (w->draining is set): close now if idle between requests, else finish
     * the work in flight and close after it. */
    void (*drain)(struct worker_session *s);
    /* Close at once (the shutdown deadline passed, or teardown); s leaves the registry. */
    void (*close)(struct worker_session *s);
    /* A reload removed backends and shutdownTimeout passed: cut what of this session still runs
     * on one of them (a generation's backend marked retired). Returns how many requests. */
    int (*cut_retired)(struct worker_session *s);
    /* The listener the session was accepted on closed (a reload removed or moved its address);
     * s->listener_gone is set already. HTTP/2 sends GOAWAY and lets its streams finish within
     * shutdownTimeout; HTTP/1 closes an idle keep-alive connection now, a busy one after its
     * response (Connection: close), as in a drain. NULL: nothing to do. */
    void (*listener_closed)(struct worker_session *s);
};

/* A session's link in its worker's registry, embedded in the session's own struct. */
struct worker_session {
    const struct worker_session_ops *ops;
    struct worker_session *prev, *next;
    uint32_t listener;  /* the listener it was accepted on (the worker's tag), 0: none known */
    bool listener_gone; /* that listener is closed */
};

/* Per-worker counters, summed on read (never a shared lock per request). */
struct worker_ctx_stats {
    uint64_t accepted;
    uint64_t requests;
    uint64_t rejected; /* connections closed at once: over maxConnections or out of fds */
};

/* An ordinary buffer: 16 KiB with its header, four pages. */
#define WORKER_CTX_BUF_SIZE (16384u - (uint32_t)sizeof(struct buf))

struct worker_ctx {
    int id; /* the worker's slot in generations and backends (pw[id]) */
    struct loop *loop;
    struct generation *gen;   /* the running generation as this worker sees it */
    const struct config *cfg; /* gen->cfg: settings for what starts now */
    struct buf_pool bufs;
    struct mcache mc; /* small blocks: HTTP/2 sessions (nghttp2) and their streams */
    struct pipe_pool pipes;
    struct upstream_pool *upstreams;
    struct obs_counters *m;          /* this worker's counters (obs.h); NULL in unit tests, so
                                        only obs.c reads it, and checks (the data path counts
                                        through the obs_* hooks) */
    struct accesslog_ring *alog;     /* NULL when the access log is off */
    uint64_t reqid_seq;              /* generated X-Request-Id sequence */
    struct exchange *free_exchanges; /* exchanges kept for reuse (exchange.c) */
    uint32_t nfree_exchanges;
    uint32_t nclients;               /* accepted client connections not closed yet */
    struct worker_session *sessions; /* every registered session (a client connection) */
    uint16_t https_port;             /* the HTTPS listener's bound port (redirects), 0 when none */
    /* routing (exchange_route.c): the worker's regex scratch and rate-limit buckets, made at its
     * first routed request; a scratch for the normalised and rewritten path, grown as needed */
    struct route_worker *routing;
    char *path_buf;
    size_t path_cap;
    bool draining;                   /* stop accepting; sessions close when their work is done */
    struct worker_ctx_stats stats;
    /* Set by the worker: a client connection closed (worker_ctx_session_closed() has counted it
     * in nclients); it keeps the process-wide connection count and ends a drain. NULL: none. */
    void (*on_conn_closed)(struct worker_ctx *w);
};

/* The worker's buffer and pipe pools (worker start / teardown): ordinary buffers of
 * WORKER_CTX_BUF_SIZE for bodies (and heads that fit), large ones for heads only when a head does
 * not fit (worker_ctx_head_buf_size), pipes for splice. */
void worker_ctx_pools_init(struct worker_ctx *w);
void worker_ctx_pools_destroy(struct worker_ctx *w);
/* Once a second on the worker's loop: the pools adapt what they keep to the last second's use. */
void worker_ctx_tick(struct worker_ctx *w);
/* The size of a large head buffer for a maxHeaderSize: a request head that large and what golb
 * adds when it rewrites one (X-Forwarded-*, X-Request-Id, the client certificate subject) and the
 * spare byte the parser looks at, so the parser (not the buffer) decides when a head is too
 * large. */
static inline uint32_t worker_ctx_head_buf_size(uint32_t max_header_size)
{
    return max_header_size + 2048u;
}

/* A request on w starts / ends on generation g (generation.h pins); the last request on an older
 * generation drops w's reference to it. */
void worker_ctx_pin(struct worker_ctx *w, struct generation *g);
void worker_ctx_unpin(struct worker_ctx *w, struct generation *g);

/* Session registry: s (its ops set from `ops`) joins / leaves w's registry. */
void worker_ctx_session_add(struct worker_ctx *w, struct worker_session *s,
                            const struct worker_session_ops *ops);
void worker_ctx_session_remove(struct worker_ctx *w, struct worker_session *s);
/* An accepted client connection is gone (registered or not): counts it and calls the hook. */
void worker_ctx_session_closed(struct worker_ctx *w);

/* The worker's side of the registry: every session's drain / close / cut_retired. The last
 * returns the number of requests cut. */
void worker_ctx_drain_sessions(struct worker_ctx *w);
void worker_ctx_close_sessions(struct worker_ctx *w);
int worker_ctx_cut_retired(struct worker_ctx *w);
/* The worker closed the listener tagged `listener`: marks the sessions accepted on it and calls
 * their listener_closed op. */
void worker_ctx_listener_closed(struct worker_ctx *w, uint32_t listener);

#endif
