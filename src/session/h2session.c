/* h2session — see h2session.h.
 *
 *   socket ──conn_read──► in ──nghttp2_session_mem_recv──► callbacks (this file)
 *                                 │ HEADERS: a stream's fields into its arena, checked
 *                                 │ END_HEADERS: struct http_request → exchange_start
 *                                 │ DATA: the stream's input chain (body source of its exchange)
 *                                 ▼
 *                     ready list: streams whose exchange has something to do
 *                                 │ exchange_pump (after mem_recv returned: never inside it)
 *                                 ▼
 *   exchange sink: on_head → a record in resph; send → HEADERS submitted, body bytes into the
 *   stream's output chain; body_end → END_STREAM (or trailers)
 *                                 │ nghttp2_session_send: frames into `out` (DATA without a
 *                                 ▼ copy through nghttp2: send_data_cb)
 *   socket ◄──conn_writev── out
 *
 * Flow control: the connection window is given back as DATA arrives (streams never block each
 * other); a stream's window only as its exchange takes the bytes (nghttp2_session_consume_stream),
 * so a stream holds at most initialWindowSize bytes of request body. The other way, a stream's
 * output chain holds at most STREAM_OUT_MAX bytes: beyond that send() answers -EAGAIN and the
 * exchange stops reading its upstream until the client's window lets the bytes go.
 *
 * Nothing frees a stream or the connection from inside nghttp2 or exchange callbacks: a closing
 * stream is unlinked from nghttp2 in on_stream_close and freed there only when no exchange call
 * is on the stack for it (streams are pumped from the ready list, outside nghttp2 calls), and the
 * connection closes at the end of a pump (`dead`).
 *
 * The stream side (its request, its exchange, answers) is h2stream.c; what both share is
 * h2session_int.h.
 */
#include "session/h2session.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/sock.h"
#include "base/util.h"
#include "config/config.h"
#include "core/exchange.h"
#include "core/obs.h"
#include "core/worker_ctx.h"
#include "net/conn.h"
#include "session/h2session_int.h"

static void on_task(struct loop_task *task);

int h2session_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct h2conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct h2stream *s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (s) { /* the request's trailers */
        s->trailers_phase = true;
        s->nhf = 0;
        s->list_size = 0;
        return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    s = h2stream_new(c, frame->hd.stream_id);
    if (!s || nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, s) != 0) {
        if (s)
            h2stream_free(s);
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}
/* ---------------------------------------------------------------- frames in ---------------- */

/* Counts a frame that does no work; past FLOOD_FRAMES in a window the connection ends with
 * ENHANCE_YOUR_CALM (RFC 9113 §10.5). */
static void count_idle_frame(struct h2conn *c, const char *what)
{
    uint64_t now = loop_now(c->w->loop);
    if (now - c->flood_at > FLOOD_WINDOW_MS) {
        c->flood_at = now;
        c->flood_frames = 0;
    }
    if (++c->flood_frames == FLOOD_FRAMES) {
        log_warn("http2: %.*s: too many %s frames, closing the connection (ENHANCE_YOUR_CALM)",
                 (int)c->iplen, c->ip, what);
        nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

/* A stream ended before its response did: count it against the connection (the rapid reset of
 * CVE-2023-44487 opens and resets streams to make the server start work it then drops). */
static void count_reset(struct h2conn *c)
{
    uint64_t now = loop_now(c->w->loop);
    if (now - c->reset_at > RESET_WINDOW_MS) {
        c->reset_at = now;
        c->resets = 0;
    }
    if (++c->resets == RESET_BURST) {
        log_warn("http2: %.*s: too many streams reset, closing the connection (ENHANCE_YOUR_CALM)",
                 (int)c->iplen, c->ip);
        nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

/* A frame's header arrives (before nghttp2 processes its payload). Tracks the stream ids a
 * client opens: a HEADERS with an id lower than one already used is legitimate only on a stream
 * that was opened (a late trailer block after golb reset it, which nghttp2 ignores); on an id
 * the client skipped it is a connection error (RFC 9113 §5.1.1). The last ID_GAPS skipped ranges
 * are remembered; an older skipped id is left to nghttp2 (ignored). */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    struct h2conn *c = user;
    uint32_t id = (uint32_t)hd->stream_id;
    if (hd->type != NGHTTP2_HEADERS || !(id & 1))
        return 0;
    if (id > c->max_id) {
        uint32_t next = c->max_id ? c->max_id + 2 : 1;
        if (id > next) {
            if (c->ngaps == ID_GAPS) { /* the oldest range is forgotten */
                memmove(c->gap_lo, c->gap_lo + 1, (ID_GAPS - 1) * sizeof(c->gap_lo[0]));
                memmove(c->gap_hi, c->gap_hi + 1, (ID_GAPS - 1) * sizeof(c->gap_hi[0]));
                c->ngaps--;
            }
            c->gap_lo[c->ngaps] = next;
            c->gap_hi[c->ngaps++] = id - 2;
        }
        c->max_id = id;
        return 0;
    }
    for (unsigned k = 0; k < c->ngaps; k++)
        if (id >= c->gap_lo[k] && id <= c->gap_hi[k]) {
            nghttp2_session_terminate_session(ng, NGHTTP2_PROTOCOL_ERROR);
            return 0;
        }
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct h2conn *c = user;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    struct h2stream *s =
        frame->hd.stream_id ? nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id) : NULL;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!s)
            return 0;
        if (!s->started) {
            h2stream_start(s, end);
        } else if (s->trailers_phase) {
            h2stream_trailers(s);
            s->in_end = true;
            if (s->x)
                h2_ready_add(s);
        }
        return 0;
    case NGHTTP2_DATA:
        if (frame->hd.length == 0 && !end)
            count_idle_frame(c, "empty DATA");
        if (s && end) {
            s->in_end = true;
            if (s->x)
                h2_ready_add(s);
        }
        return 0;
    case NGHTTP2_PRIORITY:
        count_idle_frame(c, "PRIORITY");
        return 0;
    case NGHTTP2_RST_STREAM:
        obs_h2(c->w, OBS_H2_RESET_BY_CLIENT);
        return 0;
    case NGHTTP2_PING:
        count_idle_frame(c, "PING");
        return 0;
    case NGHTTP2_SETTINGS:
        count_idle_frame(c, "SETTINGS");
        return 0;
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    struct h2conn *c = user;
    (void)flags;
    struct h2stream *s = nghttp2_session_get_stream_user_data(ng, id);
    if (!s || !s->x) { /* answered already, or no body expected: dropped */
        nghttp2_session_consume_connection(ng, len);
        nghttp2_session_consume_stream(ng, id, len);
        return 0;
    }
    /* The connection's window comes back at once while the connection holds less than body_cap:
     * a stream's unread body holds its own window, never the other streams'. Past the cap, it
     * comes back as exchanges take bytes (h2_body_taken). */
    if (c->body_held + len <= c->body_cap)
        nghttp2_session_consume_connection(ng, len);
    else
        c->conn_owed += len;
    c->body_held += len;
    if (!h2_chain_append(c, &s->in_head, &s->in_tail, data, len)) {
        h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return 0;
    }
    h2_ready_add(s);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    struct h2conn *c = user;
    struct h2stream *s = nghttp2_session_get_stream_user_data(ng, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    s->closed = true;
    if (!s->resp_complete || code != NGHTTP2_NO_ERROR)
        count_reset(c);
    if (s->x && !s->pumping) {
        s->in_reset = true;
        h2stream_free(s); /* logs the abort, gives the exchange back (its upstream is cut) */
        return 0;
    }
    if (!s->pumping)
        h2stream_free(s);
    else
        s->in_reset = true; /* freed once the pump returns */
    return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *frame, int err, void *user)
{
    (void)ng;
    (void)frame;
    (void)err;
    (void)user;
    return 0;
}
/* ---------------------------------------------------------------- frames out --------------- */

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
    struct h2conn *c = user;
    (void)ng;
    (void)flags;
    if (c->out_len >= OUT_MAX)
        return NGHTTP2_ERR_WOULDBLOCK;
    size_t n = MIN(len, (size_t)(OUT_MAX - c->out_len));
    if (!h2_chain_append(c, &c->out_head, &c->out_tail, data, n))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    c->out_len += (uint32_t)n;
    return (ssize_t)n;
}

/* A DATA frame whose payload is in the stream's output chain (NGHTTP2_DATA_FLAG_NO_COPY): its
 * header and payload go into `out` in one move, or not at all. */
static int on_send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *user)
{
    struct h2conn *c = user;
    struct h2stream *s = src->ptr;
    (void)ng;
    if (c->out_len + 9 + length > OUT_MAX && c->out_len > 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (!h2_chain_append(c, &c->out_head, &c->out_tail, framehd, 9))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    size_t left = length;
    for (struct buf *b = s->out_head; b && left; b = b->next) {
        size_t k = MIN(left, (size_t)buf_len(b));
        if (!h2_chain_append(c, &c->out_head, &c->out_tail, b->data + b->pos, k))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        left -= k;
    }
    h2_chain_consume(c, &s->out_head, &s->out_tail, length);
    s->out_len -= (uint32_t)length;
    c->out_len += (uint32_t)(9 + length);
    s->progress_at = loop_now(c->w->loop);
    if (s->out_blocked && s->out_len < STREAM_OUT_MAX) {
        s->out_blocked = false;
        if (s->x)
            h2_ready_add(s);
    }
    (void)frame;
    return 0;
}

/* A frame went into `out`: counts resets and the first GOAWAY by reason; a response's
 * END_STREAM lets a reset that waited for it go (h2stream_end_sent). */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct h2conn *c = user;
    c->trimmed = false; /* the frame was written into framebuf */
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct h2stream *s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (s)
            h2stream_end_sent(s);
    }
    if (frame->hd.type == NGHTTP2_RST_STREAM)
        obs_h2(c->w, OBS_H2_RESET_BY_GOLB);
    if (frame->hd.type == NGHTTP2_GOAWAY && !c->goaway) {
        c->goaway = true;
        uint32_t code = frame->goaway.error_code;
        obs_h2(c->w, code == NGHTTP2_ENHANCE_YOUR_CALM ? OBS_H2_GOAWAY_CALM
                     : code != NGHTTP2_NO_ERROR       ? OBS_H2_GOAWAY_ERROR
                     : c->idle_goaway                 ? OBS_H2_GOAWAY_IDLE
                                                      : OBS_H2_GOAWAY_DRAIN);
    }
    return 0;
}

/* ---------------------------------------------------------------- nghttp2's memory --------- */

/* Every nghttp2 session keeps a 16 KiB frame buffer for its whole life (NGHTTP2_FRAMEBUF_CHUNKLEN:
 * a frame header, a pad length byte and the largest payload), where each frame is serialised
 * before it goes out; between frames its content is scratch. From the heap it would take chunks
 * that TLS handshakes left resident (about 16 KiB more per idle TLS connection); here it gets
 * pages of its own, touched only as far as frames are written, and given back to the kernel
 * (MADV_DONTNEED) once the connection has had no stream for TRIM_AFTER_MS with nothing left to
 * write. nghttp2 allocates it with realloc(NULL, FRAMEBUF_LEN); everything else goes to libc. */
#define FRAMEBUF_LEN (9u + 1u + 16384u)

static void *ng_malloc(size_t n, void *user)
{
    struct h2conn *c = user;
    return mcache_alloc(&c->w->mc, n);
}

static void *ng_calloc(size_t k, size_t n, void *user)
{
    struct h2conn *c = user;
    return mcache_calloc(&c->w->mc, k, n);
}

static void ng_free(void *p, void *user)
{
    struct h2conn *c = user;
    if (p && p == c->framebuf) {
        munmap(p, c->framebuf_len);
        c->framebuf = NULL;
        return;
    }
    mcache_free(&c->w->mc, p);
}

static void *ng_realloc(void *p, size_t n, void *user)
{
    struct h2conn *c = user;
    if (!p && n == FRAMEBUF_LEN && !c->framebuf) {
        size_t len = (n + 4095u) & ~(size_t)4095u;
        void *q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED)
            return mcache_alloc(&c->w->mc, n);
        c->framebuf = q;
        c->framebuf_len = len;
        return q;
    }
    if (p && p == c->framebuf) { /* nghttp2 never resizes it; if it did, the heap takes over */
        if (n <= c->framebuf_len)
            return p;
        void *q = mcache_alloc(&c->w->mc, n);
        if (!q)
            return NULL;
        memcpy(q, p, c->framebuf_len);
        ng_free(p, c);
        return q;
    }
    return mcache_realloc(&c->w->mc, p, n);
}

/* The connection is idle: framebuf's pages go back to the kernel (they read as zeros when the
 * next frame is written). Not while a frame may be half serialised in it. */
static void conn_trim(struct h2conn *c)
{
    c->trimmed = true; /* tried: the next frame sent asks again */
    if (!c->framebuf || c->out_len || nghttp2_session_want_write(c->ng))
        return;
    madvise(c->framebuf, c->framebuf_len, MADV_DONTNEED);
}

/* ---------------------------------------------------------------- the connection ----------- */

static void free_task(struct loop_task *task)
{
    struct h2conn *c = container_of(task, struct h2conn, task);
    free(c);
}

static void conn_close(struct h2conn *c)
{
    if (c->dead && c->io.fd < 0)
        return;
    struct worker_ctx *w = c->w;
    while (c->streams) {
        c->streams->closed = true;
        h2stream_free(c->streams);
    }
    nghttp2_session_del(c->ng);
    c->ng = NULL;
    loop_timer_cancel(w->loop, &c->timer);
    tls_free(c->ssl, false);
    c->ssl = NULL;
    free(c->subject);
    c->subject = NULL;
    config_tls_unref(c->tls);
    c->tls = NULL;
    close(c->io.fd);
    c->io.fd = -1;
    c->dead = true;
    buf_put(&w->bufs, c->in);
    c->in = NULL;
    h2_chain_free(c, &c->out_head, &c->out_tail);
    worker_ctx_session_remove(w, &c->ws);
    obs_h2(w, OBS_H2_CONN_CLOSED);
    c->task.cb = free_task;
    loop_defer(w->loop, &c->task, free_task);
    worker_ctx_session_closed(w);
}

/* Feeds nghttp2 what is buffered (the bytes h1session read after the preface, before the
 * hand-over: a client may send its first request with the preface, and the socket is not
 * readable again for them), then reads and feeds until the socket is drained or the budget is
 * spent. */
static void conn_read_input(struct h2conn *c, size_t *budget)
{
    while ((c->readable || (c->in && buf_len(c->in))) && !c->eof && !c->dead && *budget) {
        if (!nghttp2_session_want_read(c->ng))
            return;
        if (!c->in && !(c->in = buf_get(&c->w->bufs))) {
            c->dead = true;
            return;
        }
        if (buf_len(c->in) == 0) {
            ssize_t r = conn_read(c->io.fd, c->ssl, c->in, &c->readable, &c->writable, c->rdhup);
            if (r == -EAGAIN)
                break;
            if (r <= 0) {
                c->eof = true;
                break;
            }
        }
        uint32_t n = buf_len(c->in);
        ssize_t rv = nghttp2_session_mem_recv(c->ng, (const uint8_t *)c->in->data + c->in->pos, n);
        if (rv < 0) {
            if (rv == NGHTTP2_ERR_FLOODED)
                log_warn("http2: %.*s: flood of frames, closing the connection", (int)c->iplen,
                         c->ip);
            c->dead = true;
            return;
        }
        c->in->pos = c->in->last = 0;
        *budget = n < *budget ? *budget - n : 0;
    }
    if (c->in && buf_len(c->in) == 0) {
        buf_put(&c->w->bufs, c->in);
        c->in = NULL;
    }
}

/* Serialises what nghttp2 has to send and writes it, until the socket is full or nothing is
 * left. */
static void conn_flush(struct h2conn *c)
{
    for (int round = 0; round < 64 && !c->dead; round++) {
        if (nghttp2_session_send(c->ng) != 0) {
            c->dead = true;
            return;
        }
        if (!c->out_len || !c->writable)
            return;
        struct iovec iov[8];
        int n = 0;
        for (struct buf *b = c->out_head; b && n < 8; b = b->next)
            if (buf_len(b))
                iov[n++] = (struct iovec){b->data + b->pos, buf_len(b)};
        ssize_t wr = conn_writev(c->io.fd, c->ssl, iov, n, &c->writable, &c->readable);
        if (wr == -EAGAIN)
            return;
        if (wr < 0) {
            c->dead = true;
            return;
        }
        h2_chain_consume(c, &c->out_head, &c->out_tail, (size_t)wr);
        c->out_len -= (uint32_t)wr;
    }
}

/* The connection's timer: while no stream is open, the trim of framebuf (TRIM_AFTER_MS) and then
 * idleTimeout; the deadline of a connection whose listener closed (close_at); whichever comes
 * first. */
static void conn_arm(struct h2conn *c)
{
    uint64_t at = c->nstreams == 0 ? c->idle_since + c->cfg.idle_timeout_ms : 0;
    if (at && !c->trimmed && c->idle_since + TRIM_AFTER_MS < at)
        at = c->idle_since + TRIM_AFTER_MS;
    if (c->close_at && (!at || c->close_at < at))
        at = c->close_at;
    if (at)
        loop_timer_set(c->w->loop, &c->timer, at);
    else
        loop_timer_cancel(c->w->loop, &c->timer);
}

/* Closes at once, the exchanges still running noted as cut by golb's shutdown (not the
 * client's doing). */
static void conn_cut(struct h2conn *c)
{
    for (struct h2stream *s = c->streams; s; s = s->next)
        if (s->x)
            exchange_note_shutdown(s->x);
    conn_close(c);
}

/* Everything the connection can do now: read and feed nghttp2, pump the ready streams, write. */
void h2session_pump(struct h2conn *c)
{
    if (c->in_pump || c->dead)
        return;
    c->in_pump = true;
    size_t budget = LOOP_IO_BUDGET;
    for (int round = 0; round < 4 && !c->dead; round++) {
        conn_read_input(c, &budget);
        /* streams made ready by what was read, by their upstream, or by output room */
        struct h2stream *s = c->ready;
        c->ready = c->ready_tail = NULL;
        while (s && !c->dead) {
            struct h2stream *next = s->rnext;
            s->ready = false;
            s->rnext = NULL;
            h2stream_pump(s);
            s = next;
        }
        conn_flush(c);
        if (!c->ready || c->dead)
            break;
    }
    if (budget == 0 && c->readable && !c->dead)
        loop_yield(c->w->loop, &c->task, on_task);
    else if (c->ready && !c->dead)
        loop_yield(c->w->loop, &c->task, on_task);
    c->in_pump = false;
    if (!c->dead && c->eof)
        c->dead = true; /* the client is gone: every stream with it */
    if (!c->dead && c->out_len == 0 && !nghttp2_session_want_write(c->ng) &&
        (!nghttp2_session_want_read(c->ng) || (c->goaway && c->nstreams == 0)))
        c->dead = true; /* done, or a GOAWAY went and its last streams ended */
    if (c->dead) {
        conn_close(c);
        return;
    }
    conn_arm(c);
}

void h2session_yield(struct h2conn *c)
{
    loop_yield(c->w->loop, &c->task, on_task);
}

void h2session_pump_soon(struct h2conn *c)
{
    loop_defer(c->w->loop, &c->task, on_task);
}

static void on_task(struct loop_task *task)
{
    struct h2conn *c = container_of(task, struct h2conn, task);
    if (!c->dead)
        h2session_pump(c);
}

static void on_event(struct loop_io *io, uint32_t events)
{
    struct h2conn *c = container_of(io, struct h2conn, io);
    if (c->dead)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true;
    if (events & EPOLLOUT)
        c->writable = true;
    if (events & (EPOLLHUP | EPOLLERR)) {
        conn_close(c);
        return;
    }
    h2session_pump(c);
}

/* No stream for idleTimeout: GOAWAY, then close once it is out. */
static void on_conn_timeout(struct loop_timer *t)
{
    struct h2conn *c = container_of(t, struct h2conn, timer);
    if (c->dead)
        return;
    if (c->close_at && loop_now(c->w->loop) >= c->close_at) {
        if (c->nstreams)
            log_warn("http2: %.*s: %u stream(s) cut: their listener closed %u ms ago",
                     (int)c->iplen, c->ip, c->nstreams, c->w->cfg->shutdown_timeout_ms);
        conn_cut(c);
        return;
    }
    if (c->nstreams) {
        conn_arm(c);
        return;
    }
    if (loop_now(c->w->loop) < c->idle_since + c->cfg.idle_timeout_ms) {
        conn_trim(c); /* only the trim was due */
        conn_arm(c);
        return;
    }
    if (c->goaway) {
        conn_close(c);
        return;
    }
    c->idle_goaway = true;
    nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
    h2session_pump(c);
    if (!c->dead) /* a client that does not read its GOAWAY: a short grace, then close */
        loop_timer_set(c->w->loop, &c->timer, loop_now(c->w->loop) + 1000);
}

/* ---------------------------------------------------------------- the worker's registry ---- */

static struct h2conn *conn_of(struct worker_session *s)
{
    return container_of(s, struct h2conn, ws);
}

/* Draining: GOAWAY with the last stream started; open streams finish (within shutdownTimeout,
 * after which the worker closes every session). */
static void h2_drain(struct worker_session *ws)
{
    struct h2conn *c = conn_of(ws);
    if (c->dead)
        return;
    nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    h2session_pump(c);
}

static void h2_close(struct worker_session *ws)
{
    conn_cut(conn_of(ws));
}

/* The listener this connection came through closed (a reload removed or moved its address): as
 * a drain, GOAWAY with the last stream started, and the open streams have shutdownTimeout (the
 * new configuration's) to finish. */
static void h2_listener_closed(struct worker_session *ws)
{
    struct h2conn *c = conn_of(ws);
    if (c->dead || c->close_at)
        return;
    c->close_at = loop_now(c->w->loop) + c->w->cfg->shutdown_timeout_ms;
    h2_drain(ws);
    if (!c->dead)
        conn_arm(c); /* h2_drain's pump armed it unless the pump was already running */
}

static int h2_cut_retired(struct worker_session *ws)
{
    struct h2conn *c = conn_of(ws);
    int n = 0;
    for (struct h2stream *s = c->streams; s; s = s->next) {
        if (s->x && exchange_cut_retired(s->x)) {
            h2stream_obs_abort(s);
            h2stream_put_exchange(s);
            h2stream_reset(s, NGHTTP2_CANCEL);
            n++;
        }
    }
    if (n)
        h2session_pump(c);
    return n;
}

static const struct worker_session_ops h2_session_ops = {
    .drain = h2_drain,
    .close = h2_close,
    .cut_retired = h2_cut_retired,
    .listener_closed = h2_listener_closed,
};

/* ---------------------------------------------------------------- setup -------------------- */

/* The callbacks, built once for the process (nghttp2 copies them into each session). */
static nghttp2_session_callbacks *cbs;
static pthread_once_t cbs_once = PTHREAD_ONCE_INIT;

static void callbacks_build(void)
{
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        cbs = NULL;
        return;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, on_send_data);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2stream_on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2session_on_begin_headers);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
}

static nghttp2_session_callbacks *callbacks(void)
{
    pthread_once(&cbs_once, callbacks_build);
    return cbs;
}

static int session_new(struct h2conn *c)
{
    nghttp2_session_callbacks *callbacks_ = callbacks();
    nghttp2_option *opt;
    if (!callbacks_ || nghttp2_option_new(&opt) != 0)
        return -1;
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    c->mem = (nghttp2_mem){c, ng_malloc, ng_free, ng_calloc, ng_realloc};
    int rv = nghttp2_session_server_new3(&c->ng, callbacks_, c, opt, &c->mem);
    nghttp2_option_del(opt);
    if (rv != 0)
        return -1;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->cfg.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->cfg.initial_window_size},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->max_header_size},
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv)) != 0)
        return -1;
    c->body_cap = 4 * (size_t)c->cfg.initial_window_size;
    if (c->body_cap < H2_CONN_BODY_MIN)
        c->body_cap = H2_CONN_BODY_MIN;
    /* The connection's window matches a stream's (RFC 9113 §6.9.2: 65535 until changed). */
    if (c->cfg.initial_window_size > 65535 &&
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)c->cfg.initial_window_size) != 0)
        return -1;
    return 0;
}

void h2session_take(struct worker_ctx *w, struct h2session_conn *t)
{
    struct h2conn *c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    c->w = w;
    c->io.fd = t->fd;
    c->io.cb = on_event;
    c->ssl = t->ssl;
    c->tls = t->tls;
    c->subject = t->subject;
    c->in = t->in;
    c->readable = t->readable;
    c->writable = t->writable;
    c->rdhup = t->rdhup;
    c->iplen = (uint8_t)MIN(t->iplen, sizeof(c->ip) - 1);
    memcpy(c->ip, t->ip, c->iplen);
    c->cfg = w->cfg->http2;
    c->max_header_size = w->cfg->max_header_size;
    c->idle_since = loop_now(w->loop);
    loop_timer_init(&c->timer, on_conn_timeout);
    worker_ctx_session_add(w, &c->ws, &h2_session_ops);
    c->ws.listener = t->listener;
    c->ws.listener_gone = t->listener_gone;
    obs_h2(w, OBS_H2_CONN_OPENED);
    if (session_new(c) != 0 || loop_io_add(w->loop, &c->io) != 0) {
        conn_close(c);
        return;
    }
    sock_nodelay(c->io.fd);
    if (w->draining || t->listener_gone) /* handed over while the worker drains, or after its
                                            listener closed: serve nothing new */
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    if (t->listener_gone)
        c->close_at = loop_now(w->loop) + w->cfg->shutdown_timeout_ms;
    h2session_pump(c);
    return;
fail:
    tls_free(t->ssl, false);
    free(t->subject);
    config_tls_unref(t->tls);
    buf_put(&w->bufs, t->in);
    close(t->fd);
    worker_ctx_session_closed(w);
}
