/* h2up — HTTP/2 connections to backends (protocol: h2): a worker's connections to one backend,
 * each an nghttp2 client session over an upstream_conn (h2c with prior knowledge, or TLS with
 * ALPN h2), multiplexing the streams of many exchanges.
 *
 *   upstream_idle.h2 ─► conn ─► conn ─► ...     (the backend's slot for this worker)
 *                        │ streams ≤ min(maxStreamsPerConnection, the server's
 *                        │           SETTINGS_MAX_CONCURRENT_STREAMS)
 *                        └─ a new stream goes to the first connection with room and no GOAWAY;
 *                           a new connection opens only when every one is full
 *
 * A stream is the exchange's view of one request: the request head goes when the stream opens,
 * body bytes through h2up_stream_write (copied, at most H2UP_REQ_CAP waiting), the end through
 * h2up_stream_end; the response's head, data and trailers wait in the stream until the exchange
 * takes them (the data's flow-control window comes back only then: backpressure). What happened
 * reaches the owner through its callback (called after the connection's input was processed, one
 * stream at a time, never from inside nghttp2), which must only note it and pump later or now.
 *
 * Failures: a connect/TLS failure or a connection lost before the stream's response fails it
 * (`failed`, `connect_failed` when nothing was sent); a GOAWAY above the stream's id or a
 * REFUSED_STREAM says it was not processed (`refused`: safe to retry). */
#ifndef GOLB_H2UP_H
#define GOLB_H2UP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "upstream/upstream.h"

struct config_backend;
struct h2up_conn;
struct upstream_pool;
struct upstream_idle;
struct tls_client;

#define H2UP_MAX_FIELDS 64
#define H2UP_ARENA 16384     /* response head and trailers, names and values, at most */
#define H2UP_ARENA_SMALL 512 /* of which in the stream itself (most heads); the rest allocated */
#define H2UP_REQ_MIN 1024    /* request buffer to start with; it grows to H2UP_REQ_CAP */
#define H2UP_REQ_CAP 65536   /* request bytes waiting for the stream's window */
#define H2UP_PP_MAX 176      /* a PROXY protocol header (v1 line, v2 without TLVs) */

/* sendProxyProtocol: the PROXY header a new connection writes first (before TLS and the
 * preface). A connection then speaks for that one client (key): only streams of the same key go
 * to it, as HAProxy makes the PROXY header part of a backend connection's identity. */
struct h2up_proxy {
    struct upstream_pp key;
    const void *hdr;
    size_t len; /* at most H2UP_PP_MAX */
};

typedef void (*h2up_event_cb)(void *owner);

struct h2up_stream {
    struct h2up_conn *c;
    int32_t id;
    void *owner;
    h2up_event_cb on_event;
    /* request body: rq[rq_off..rq_len) waits; rq[0..rq_off) went (kept for a replay while
     * `replayable`) */
    uint8_t *rq;
    size_t rq_len, rq_off, rq_cap;
    bool rq_end, rq_deferred, replayable;
    /* request trailers (h2up_stream_end_trailers): a HEADERS frame with END_STREAM after the
     * body's last DATA; names lower-cased, names and values in the same allocation */
    struct http_field *rqt;
    size_t nrqt;
    /* response */
    int status;                                  /* the final :status (0: not yet) */
    bool continued;    /* a 100 (Continue) came, not yet relayed by the exchange (other 1xx
                          heads are dropped: their fields would need a place of their own) */
    size_t nf, nt;     /* in f[] and t[] (at the end) */
    size_t arena_len;  /* bytes of names and values, in small then big */
    size_t small_len, big_len;
    char *big;         /* H2UP_ARENA bytes, allocated for a head small cannot hold */
    bool head;       /* the final head is complete */
    bool in_trailers;
    bool ended;      /* END_STREAM came (after the data and trailers) */
    bool closed;     /* nghttp2 closed it */
    bool failed;     /* reset, or the connection lost: err says why */
    bool refused;    /* not processed by the backend (GOAWAY above it, REFUSED_STREAM) */
    bool connect_failed;
    bool too_large;
    uint32_t err;    /* RST_STREAM / GOAWAY error code */
    uint8_t *data;
    size_t data_len, data_off, data_cap;
    bool dirty;
    struct h2up_stream *dnext;
    struct h2up_stream *prev, *next; /* the connection's owned streams */
    /* Last, not zeroed when the stream is made (most of its size): nf, nt and small_len say
     * what is set. */
    struct http_field f[H2UP_MAX_FIELDS], t[H2UP_MAX_FIELDS];
    char small[H2UP_ARENA_SMALL];
};

/* Opens a stream to backend cb (its upstream slot `idle` of this worker's `pool`): on a
 * connection with room (and the same PROXY key: pp, NULL without sendProxyProtocol), else a new
 * one (*fresh true). nv: the request head (pseudo-fields first); body: a body follows
 * (h2up_stream_write/end). NULL with *err (-errno) when no connection could start. */
struct h2up_stream *h2up_open(struct upstream_pool *pool, struct upstream_idle *idle,
                              const struct config_backend *cb, const struct h2up_proxy *pp,
                              const struct http_field *nv, size_t n, bool body,
                              const uint8_t *replay, size_t replay_len, bool replay_end,
                              void *owner, h2up_event_cb on_event, bool *fresh, int *err);
/* True once its connection is up (TCP, TLS): the exchange's connect phase ends. */
bool h2up_stream_ready(const struct h2up_stream *s);
/* Request body bytes: how many were taken (0 when H2UP_REQ_CAP wait). */
size_t h2up_stream_write(struct h2up_stream *s, const void *p, size_t n);
/* The request body ended. */
void h2up_stream_end(struct h2up_stream *s);
/* The request body ended with trailers t[0..n) (copied, names lower-cased): they go as a
 * HEADERS frame that ends the stream, after the last DATA (n 0: h2up_stream_end). -E2BIG (more
 * than H2UP_MAX_FIELDS) or -ENOMEM: nothing changed. */
int h2up_stream_end_trailers(struct h2up_stream *s, const struct http_field *t, size_t n);
/* Response body bytes waiting: *p and the count; consume gives the window back. */
size_t h2up_stream_data(struct h2up_stream *s, const uint8_t **p);
void h2up_stream_consume(struct h2up_stream *s, size_t n);
/* The exchange is done with it: a stream still open is reset (CANCEL), then forgotten. */
void h2up_stream_close(struct h2up_stream *s);
/* Closes the slot's connections without streams; with `forever` (a removed backend, worker
 * teardown) the others close when their last stream goes. */
void h2up_close_idle(struct upstream_idle *idle, bool forever);
/* Tests and fuzzing: a connection without a socket (ready at once, what it sends is dropped),
 * streams on it, the backend's bytes fed to it (then the owners are told, as after a read; -1
 * when nghttp2 refused them: the connection failed), whether it takes one more stream, and its
 * end (its streams must have been closed by their owners). */
struct h2up_conn *h2up_test_conn(struct upstream_idle *idle, const struct config_backend *cb);
struct h2up_stream *h2up_test_stream(struct h2up_conn *c, const struct http_field *nv, size_t n,
                                     bool body, void *owner, h2up_event_cb on_event);
int h2up_test_feed(struct h2up_conn *c, const uint8_t *p, size_t n);
bool h2up_test_room(const struct h2up_conn *c);
void h2up_test_free(struct h2up_conn *c);

/* This worker's connections and open streams to the backend (metrics). */
void h2up_counts(const struct upstream_idle *idle, uint32_t *conns, uint32_t *streams);

#endif
