/* h2session_int — what the two files of the HTTP/2 session share (h2session.c: the connection,
 * its transport, nghttp2 and the frames; h2stream.c: a stream, its request and its exchange).
 * Private to session/ (scripts/check-layers.sh). See h2session.c for the picture.
 */
#ifndef GOLB_H2SESSION_INT_H
#define GOLB_H2SESSION_INT_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "base/loop.h"
#include "base/util.h"
#include "config/config.h"
#include "core/worker_ctx.h"

struct exchange;
struct http_field;

#define OUT_MAX (64u * 1024u)        /* frames serialised and not yet written, per connection */
#define STREAM_OUT_MAX (32u * 1024u) /* response body bytes a stream holds for its DATA frames */
#define FLOOD_WINDOW_MS 1000u
#define FLOOD_FRAMES 1000u  /* frames that do no work (empty DATA, PRIORITY, PING, SETTINGS; not
                               WINDOW_UPDATE, of which a fast download brings many) per
                               FLOOD_WINDOW_MS before ENHANCE_YOUR_CALM */
#define RESET_BURST 200u    /* streams reset (either side) before their response ended, per */
#define RESET_WINDOW_MS 1000u /* this long: beyond it the connection is told to calm down */
#define MAX_FIELDS 256u       /* fields in one header block (as HTTP1_MAX_HEADERS) */
#define ID_GAPS 4u            /* ranges of stream ids a client skipped, remembered per connection */
#define TRIM_AFTER_MS 1000u   /* a connection idle this long gives nghttp2's frame buffer back */

/* Pseudo-header fields, kept apart from the fields while a header block arrives. */
enum { PS_METHOD = 0, PS_SCHEME, PS_AUTHORITY, PS_PATH, PS_PROTOCOL, PS_COUNT };

/* A field of a header block being received: offsets into the stream's arena. */
struct hf {
    uint32_t name, name_len, value, value_len;
};

struct h2conn;

struct h2stream {
    struct h2conn *c;
    int32_t id;
    struct h2stream *prev, *next; /* every stream of the connection */
    struct h2stream *rnext;       /* ready list */
    bool ready;                   /* on the ready list */
    bool closed;                  /* nghttp2 closed it (on_stream_close) */
    bool pumping;                 /* an exchange call for it is on the stack */
    struct loop_timer timer;
    struct exchange *x;
    /* the header block being received (the request's, then its trailers'), in `arena` */
    char *arena;
    uint32_t arena_len, arena_cap;
    struct hf *hf;
    uint32_t nhf, hf_cap;
    struct hf ps[PS_COUNT];
    uint8_t has_ps; /* bit per PS_* */
    uint32_t list_size; /* RFC 9113 §6.5.2 size of the block so far */
    uint16_t answer;    /* a status to answer when the block ends (400, 431, 501), else 0 */
    bool started;       /* the request went to an exchange (or was answered) */
    bool trailers_phase; /* the block being received is the request's trailers */
    struct http_field *req_tr; /* the request's trailers (spans into arena) */
    uint32_t nreq_tr;
    /* request body: DATA bytes not yet taken by the exchange */
    struct buf *in_head, *in_tail;
    bool in_end;   /* END_STREAM came */
    bool in_reset; /* the client reset the stream */
    /* response */
    struct buf *out_head, *out_tail; /* body bytes for DATA frames */
    uint32_t out_len;
    bool resp_submitted; /* the final HEADERS is submitted */
    bool resp_end;       /* no more body: END_STREAM (or trailers) once out is drained */
    bool deferred;       /* the data provider is deferred (nghttp2_session_resume_data) */
    bool out_blocked;    /* send() answered -EAGAIN: pump again once out drains */
    bool tunnel;         /* RFC 8441: after the 200, a tunnel */
    bool resp_complete;  /* the response ended properly (a close after it is no reset) */
    bool reset_after_end; /* RST_STREAM(NO_ERROR) once the response's END_STREAM went out */
    nghttp2_nv *resp_tr; /* trailers to send after the body (and their bytes), or NULL */
    size_t nresp_tr;
    uint64_t progress_at; /* last byte moved while no exchange (its buffered tail) */
    const char *reply;   /* golb's own answer's body */
    char *reply_copy;    /* a route's respond body, copied: its generation may go before it */
    uint32_t reply_len, reply_sent;
};

/* Request body bytes one connection may hold for its streams' exchanges (beyond it, the
 * connection's window is given back only as exchanges take bytes): HTTP/2 flow control bounds a
 * stream by its window, and this bounds the sum, whatever maxConcurrentStreams allows. */
#define H2_CONN_BODY_MIN (1024u * 1024u)

struct h2conn {
    struct loop_io io;
    SSL *ssl;
    struct config_tls *tls;
    char *subject;
    struct loop_timer timer;
    struct loop_task task;
    struct worker_ctx *w;
    struct worker_session ws;
    nghttp2_session *ng;
    size_t body_held; /* request body bytes in its streams' chains, not yet taken upstream */
    size_t body_cap;  /* at most this many before the connection's window waits (see above) */
    size_t conn_owed; /* connection window held back while body_held was at body_cap */
    nghttp2_mem mem;  /* nghttp2 allocates through the connection (h2session.c: framebuf) */
    void *framebuf;   /* nghttp2's frame buffer, pages of its own (mmap), or NULL */
    size_t framebuf_len;
    bool trimmed;     /* framebuf's pages went back to the kernel since the last frame sent */
    struct buf *in;
    struct buf *out_head, *out_tail; /* serialised frames not written yet */
    uint32_t out_len;
    struct h2stream *streams; /* every stream nghttp2 opened and this session still knows */
    struct h2stream *ready, *ready_tail;
    uint32_t nstreams;
    struct config_http2 cfg; /* the settings it was accepted under */
    uint32_t max_header_size;
    uint64_t idle_since;      /* the last stream closed (or the connection opened) */
    uint64_t close_at;        /* its listener closed: GOAWAY went, streams end by then; 0: none */
    uint64_t flood_at, reset_at;
    /* RFC 9113 §5.1.1: the highest stream id the client used, and the last ranges of ids it
     * skipped (never opened, so a HEADERS on one of them later is a connection error, whereas
     * nghttp2 cannot tell it from a late frame on a stream it forgot and ignores it) */
    uint32_t max_id;
    uint32_t gap_lo[ID_GAPS], gap_hi[ID_GAPS];
    uint8_t ngaps;
    uint32_t flood_frames, resets;
    bool readable, writable, eof, rdhup, dead, goaway, in_pump;
    bool idle_goaway; /* the GOAWAY being sent is idleTimeout's */
    uint8_t iplen;
    char ip[46];
};

/* ---- shared helpers: the ready list and chains of pooled buffers ---- */


static inline void h2_ready_add(struct h2stream *s)
{
    if (s->ready)
        return;
    struct h2conn *c = s->c;
    s->ready = true;
    s->rnext = NULL;
    if (c->ready_tail)
        c->ready_tail->rnext = s;
    else
        c->ready = s;
    c->ready_tail = s;
}

static inline void h2_chain_free(struct h2conn *c, struct buf **head, struct buf **tail)
{
    while (*head) {
        struct buf *b = *head;
        *head = b->next;
        buf_put(&c->w->bufs, b);
    }
    *tail = NULL;
}

/* Appends n bytes to a chain of pooled buffers. Returns false when out of buffers. */
static inline bool h2_chain_append(struct h2conn *c, struct buf **head, struct buf **tail, const void *p,
                         size_t n)
{
    const char *src = p;
    while (n) {
        struct buf *t = *tail;
        if (!t || buf_space(t) == 0) {
            /* a chain's first buffer sized to what comes (a message, a small answer) */
            t = !*head && n <= BUF_SMALL_MAX ? buf_get_small(&c->w->bufs, (uint32_t)n)
                                             : buf_get(&c->w->bufs);
            if (!t)
                return false;
            t->next = NULL;
            if (*tail)
                (*tail)->next = t;
            else
                *head = t;
            *tail = t;
        }
        size_t k = MIN(n, (size_t)buf_space(t));
        memcpy(t->data + t->last, src, k);
        t->last += (uint32_t)k;
        src += k;
        n -= k;
    }
    return true;
}

/* Drops n bytes from the front of a chain, giving emptied buffers back. */
static inline void h2_chain_consume(struct h2conn *c, struct buf **head, struct buf **tail, size_t n)
{
    while (n && *head) {
        struct buf *b = *head;
        size_t k = MIN(n, (size_t)buf_len(b));
        b->pos += (uint32_t)k;
        n -= k;
        if (buf_len(b) == 0) {
            *head = b->next;
            if (!*head)
                *tail = NULL;
            buf_put(&c->w->bufs, b);
        }
    }
}

/* n request body bytes left a stream's chain (taken upstream, or dropped with the stream): the
 * connection's window held back for them goes back as room opens under body_cap. */
static inline void h2_body_taken(struct h2conn *c, size_t n)
{
    c->body_held = n < c->body_held ? c->body_held - n : 0;
    if (c->conn_owed && c->body_held < c->body_cap) {
        size_t k = MIN(c->conn_owed, c->body_cap - c->body_held);
        nghttp2_session_consume_connection(c->ng, k);
        c->conn_owed -= k;
    }
}

/* ---- h2session.c ---- */

/* Everything the connection can do now (read, pump ready streams, write); never reentrant. */
void h2session_pump(struct h2conn *c);
/* Pump the connection again after the worker's other ready events (a spent budget). */
void h2session_yield(struct h2conn *c);
/* Pump the connection after the current batch of I/O callbacks: the streams their upstreams
 * woke in that batch are answered together, in one write to the client. */
void h2session_pump_soon(struct h2conn *c);
/* A stream's header block begins (nghttp2 callback). */
int h2session_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user);

/* ---- h2stream.c ---- */

struct h2stream *h2stream_new(struct h2conn *c, int32_t id);
/* Frees a stream nghttp2 closed (or the connection closes): an exchange still running is logged
 * as cut and given back. */
void h2stream_free(struct h2stream *s);
/* RST_STREAM from golb (a malformed request, a cut response). */
void h2stream_reset(struct h2stream *s, uint32_t code);
/* The response's END_STREAM (DATA, HEADERS or trailers) went into the connection's output: a
 * reset waiting for it (reset_after_end) is submitted now (nghttp2 callback). */
void h2stream_end_sent(struct h2stream *s);
/* Logs a stream that ends with its exchange still running (client reset, or golb's cut). */
void h2stream_obs_abort(struct h2stream *s);
void h2stream_put_exchange(struct h2stream *s);
/* One field of a header block (nghttp2 callback). */
int h2stream_on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                       void *user);
/* The request's header block ended: start its exchange (or answer it). */
void h2stream_start(struct h2stream *s, bool end_stream);
/* The request's trailer block ended. */
void h2stream_trailers(struct h2stream *s);
/* Pumps the stream's exchange and acts on its outcome (never inside an nghttp2 call). */
void h2stream_pump(struct h2stream *s);

#endif
