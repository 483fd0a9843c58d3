/* exchange_req — the request direction of an exchange: the body held before a backend is taken
 * (requestBufferSize: hold chain), then the head golb rewrote and the body sent up, from an HTTP/1
 * source (Content-Length: copied or spliced; chunked: validated and passed through) or a stream
 * source (a body that ends with the stream: sent with its length, or chunked with the framing
 * written here, with trailers). exchange.c drives it from exchange_pump; the response direction,
 * picking and tunnels stay there.
 */
#include "core/exchange_int.h"

#include <errno.h>
#include <string.h>

#include "base/buf.h"
#include "base/loop.h"
#include "base/util.h"
#include "http/rewrite.h"
#include "core/worker_ctx.h"

/* Buffers of the hold chain (requestBufferSize) offered to one writev, with the head. */
#define HOLD_IOV 16

/* ---------------------------------------------------------------- holding the body ---------- */

/* Appends n bytes to the hold chain. Returns false when out of buffers. */
static bool hold_append(struct exchange *x, const char *p, uint32_t n)
{
    while (n) {
        if (!x->hold_tail || buf_space(x->hold_tail) == 0) {
            struct buf *b = buf_get(&x->w->bufs);
            if (!b)
                return false;
            if (x->hold_tail)
                x->hold_tail->next = b;
            else
                x->hold = b;
            x->hold_tail = b;
        }
        uint32_t k = MIN(n, buf_space(x->hold_tail));
        memcpy(x->hold_tail->data + x->hold_tail->last, p, k);
        x->hold_tail->last += k;
        x->held += k;
        p += k;
        n -= k;
    }
    return true;
}

/* n bytes of the hold chain went upstream: its drained buffers go back. */
static void hold_sent(struct exchange *x, uint32_t n)
{
    x->held -= n;
    while (n) {
        struct buf *b = x->hold;
        uint32_t k = MIN(n, buf_len(b));
        b->pos += k;
        n -= k;
        if (buf_len(b) == 0) {
            x->hold = b->next;
            if (!x->hold)
                x->hold_tail = NULL;
            buf_put(&x->w->bufs, b);
        }
    }
}

/* XP_BUFFER: body bytes the source holds (validated, for chunked), and whether they end the body.
 */
static uint64_t hold_source_bytes(struct exchange *x, const char *src, uint32_t avail, bool *done,
                                  bool *bad)
{
    if (x->req_body == HTTP1_BODY_LENGTH) {
        uint64_t want = x->req_remaining - x->held;
        *done = avail >= want;
        return MIN((uint64_t)avail, want);
    }
    while (x->req_ready < avail && !http1_chunked_done(&x->req_chunk)) {
        bool is_data;
        ssize_t k =
            http1_chunked_decode(&x->req_chunk, src + x->req_ready, avail - x->req_ready, &is_data);
        if (k < 0) {
            *bad = true;
            break;
        }
        if (k == 0)
            break;
        x->req_ready += (uint32_t)k;
    }
    *done = http1_chunked_done(&x->req_chunk);
    return x->req_ready;
}

/* XP_BUFFER: takes the body from the source into the hold chain until it is complete or
 * requestBufferSize bytes came (counted as received: chunk framing included); bytes that end it
 * stay at the source. Returns true when the request may go on to a backend; false while it
 * waits for the client, or when it ended (x->res). Out of buffers, it goes on with what it has. */
bool exchange_req_hold_body(struct exchange *x)
{
    uint64_t limit = ex_cfg(x)->request_buffer_size;
    if (x->req_stream) { /* the source keeps the bytes (bounded by its window): it says when */
        bool complete = false;
        uint64_t have = x->ops->held(x->client, &complete);
        if (have != x->stream_held) {
            x->stream_held = have;
            x->progress_at = loop_now(x->w->loop);
        }
        return complete || have >= limit;
    }
    for (;;) {
        uint32_t avail = 0;
        const char *src = x->ops->peek(x->client, &avail);
        bool done = false, bad = false;
        uint64_t body = hold_source_bytes(x, src, avail, &done, &bad);
        if (bad) {
            exchange_fail(x, 400, LB_OK);
            return false;
        }
        if (done || x->held + body >= limit)
            return true;
        if (body) {
            if (!hold_append(x, src, (uint32_t)body))
                return true;
            x->ops->consume(x->client, (uint32_t)body);
            x->req_ready = 0;
            ex_spend(x, (size_t)body);
        }
        if (x->budget == 0) {
            exchange_yield(x);
            return false;
        }
        ssize_t r = x->ops->fill(x->client);
        if (r == -EAGAIN)
            return false;
        if (r == -ENOMEM)
            return true;
        if (r < 0) {
            x->res = EX_CLOSE; /* the client went away mid-body */
            return false;
        }
        x->progress_at = loop_now(x->w->loop);
    }
}

/* ---------------------------------------------------------------- request side ------------- */

/* Content-Length request bodies past the first buffer go client → pipe → upstream. */
static void splice_request(struct exchange *x, bool *progress)
{
    struct exchange_splice *s = &x->splice_req;
    uint64_t left = x->req_remaining;
    enum pipe_splice_err err = PIPE_SPLICE_OK;
    bool p = pipe_splice(&x->req_pipe, s->fd, s->readable, s->eof, x->up->io.fd, &x->up->writable,
                         &left, &x->obs.req_body_bytes, &x->budget, PIPE_SPLICE_CHUNK, NULL, &err);
    if (left != x->req_remaining)
        x->req_body_sent = true;
    x->req_remaining = left;
    if (err == PIPE_SPLICE_DST_FAILED) {
        exchange_upstream_broken(x, "connection reset while sending the request");
        return;
    }
    if (err == PIPE_SPLICE_SRC_FAILED || (*s->eof && x->req_remaining && x->req_pipe.bytes == 0)) {
        x->res = EX_CLOSE; /* the client went away mid-body */
        return;
    }
    if (p) {
        *progress = true;
        x->progress_at = loop_now(x->w->loop);
    }
    if (x->req_remaining == 0) {
        x->req_done = true;
        x->sent_at = loop_now(x->w->loop);
        *progress = true;
    }
}

/* Writes iov upstream, the first head_left bytes being the rest of the request head. Returns how
 * many bytes past the head went (>= 0), -EAGAIN when the upstream takes nothing now, or -1 when
 * the exchange failed. The one upstream write of the request direction. */
static inline __attribute__((always_inline)) ssize_t
send_up(struct exchange *x, const struct iovec *iov, int n, uint32_t head_left)
{
    if (!x->up->writable)
        return -EAGAIN;
    ssize_t wr = ex_upstream_writev(x->up, iov, n);
    if (wr == -EAGAIN)
        return -EAGAIN;
    if (wr < 0) {
        exchange_upstream_broken(x, "connection reset while sending the request");
        return -1;
    }
    x->progress_at = loop_now(x->w->loop);
    ex_spend(x, (size_t)wr);
    uint32_t from_head = (uint32_t)MIN((uint64_t)wr, (uint64_t)head_left);
    x->reqh_sent += from_head;
    if (from_head && from_head == head_left)
        x->head_sent_at = x->progress_at; /* the replay window starts (stream sessions) */
    return wr - from_head;
}

/* Reads more of the request body from the client's source, unless this call's budget is spent
 * (exchange_pump then yields). Returns 1 when bytes came, or when the source said the body ended
 * and end_ok (a stream session's source: req_src_end is set); 0 when nothing is to be had now;
 * -1 when the exchange failed: no buffer (503), or the client went away mid-body (EX_CLOSE: the
 * upstream can never get a whole request). */
static inline int fill_body(struct exchange *x, bool end_ok)
{
    if (x->budget == 0)
        return 0;
    ssize_t r = x->ops->fill(x->client);
    if (r == -EAGAIN)
        return 0;
    if (r == -ENOMEM) {
        exchange_fail(x, 503, LB_FAILED);
        return -1;
    }
    if (r < 0 || (r == 0 && !end_ok)) {
        x->res = EX_CLOSE;
        return -1;
    }
    if (r == 0)
        x->req_src_end = true;
    x->progress_at = loop_now(x->w->loop);
    return 1;
}

/* The request failed for a fault of the client's body (invalid chunked coding, a length the
 * stream contradicts): 400, or a cut once the response started. The upstream connection is closed
 * with the body unfinished, so it never takes it for a whole one. */
COLD static bool bad_request_body(struct exchange *x)
{
    x->end_term = "PD";
    x->end_error = "bad_request";
    exchange_fail(x, 400, LB_FAILED);
    return false;
}

/* Writes the chunked framing that goes before the next data: the CRLF ending the previous chunk
 * and the size line of a chunk of n bytes, or (n == 0) the last chunk and an empty trailer
 * section. */
static void frame_chunk(struct exchange *x, uint64_t n)
{
    char *p = x->req_frame;
    uint32_t len = http1_chunk_size_line(p, x->req_chunk_open, n);
    if (n == 0) {
        p[len++] = '\r';
        p[len++] = '\n';
        x->req_last_framed = true;
    }
    x->req_chunk_open = n > 0;
    x->req_chunk_left = n;
    x->req_frame_len = len;
    x->req_frame_sent = 0;
}

/* The last chunk with the trailers the session hands over (ops->trailers): "0" CRLF, the trailer
 * fields, the final CRLF, after the CRLF ending the previous chunk. It goes in a buffer (reqt),
 * as trailers do not fit in req_frame. Returns false when the request failed. */
static bool frame_last(struct exchange *x)
{
    const struct http_field *tr = NULL;
    size_t n = x->ops->trailers ? x->ops->trailers(x->client, &tr) : 0;
    if (n == 0) {
        frame_chunk(x, 0);
        return true;
    }
    if (!(x->reqt = buf_get(&x->w->bufs))) {
        exchange_fail(x, 503, LB_FAILED);
        return false;
    }
    const char *last = x->req_chunk_open ? "\r\n0\r\n" : "0\r\n";
    x->reqt->last = (uint32_t)strlen(last);
    memcpy(x->reqt->data, last, x->reqt->last);
    if (!rewrite_trailers(tr, n, x->reqt))
        return bad_request_body(x); /* larger than a buffer */
    x->req_last_framed = true;
    x->req_chunk_open = false;
    x->req_frame_len = x->reqt->last;
    x->req_frame_sent = 0;
    return true;
}

/* A stream source's body: how many of the avail bytes at the source may go now (*body), with the
 * framing that goes first (*frame_left bytes of req_frame). Returns false when the request failed
 * (its length contradicted). */
COLD static bool stream_body(struct exchange *x, uint32_t avail, uint64_t *body,
                             uint32_t *frame_left)
{
    if (!x->req_encode) { /* LENGTH: exactly req_remaining more bytes, then the end */
        if (avail > x->req_remaining || (x->req_src_end && avail < x->req_remaining))
            return bad_request_body(x);
        *body = avail;
        if (avail && avail == x->req_remaining && !x->req_src_end)
            (*body)--; /* the last byte waits until the source says the body ends there */
        return true;
    }
    if (x->req_frame_sent == x->req_frame_len && x->req_chunk_left == 0) {
        if (avail)
            frame_chunk(x, avail);
        else if (x->req_src_end && !x->req_last_framed && !frame_last(x))
            return false;
    }
    *frame_left = x->req_frame_len - x->req_frame_sent;
    *body = MIN(x->req_chunk_left, (uint64_t)avail);
    return true;
}

/* pump_request for a stream session (exchange_request.stream): its source holds exactly the body
 * and then says it ended (fill 0); a STREAM body goes up chunked with the framing written here.
 * Kept apart from pump_request, which HTTP/1's every request runs. */
COLD static bool pump_request_stream(struct exchange *x)
{
    bool progress = false;
    const struct exchange_client_ops *ops = x->ops;
    while (!x->req_done && ex_relaying(x)) {
        struct iovec iov[3];
        int n = 0;
        uint32_t head_left =
            x->reqh && x->reqh_sent < x->reqh->last ? x->reqh->last - x->reqh_sent : 0;
        if (head_left)
            iov[n++] = (struct iovec){x->reqh->data + x->reqh_sent, head_left};
        uint64_t body = 0;
        uint32_t avail = 0, frame_left = 0;
        const char *src = NULL;
        if (x->req_body != HTTP1_BODY_NONE) {
            src = ops->peek(x->client, &avail);
            if (!stream_body(x, avail, &body, &frame_left))
                return false;
        }
        if (frame_left)
            iov[n++] = (struct iovec){(x->reqt ? x->reqt->data : x->req_frame) + x->req_frame_sent,
                                      frame_left};
        if (body)
            iov[n++] = (struct iovec){(char *)src, (size_t)body};

        bool body_complete = x->req_body == HTTP1_BODY_NONE ||
                             (x->req_encode ? x->req_last_framed && frame_left == 0
                                            : x->req_remaining == body && x->req_src_end);
        if (n == 0 && body_complete) {
            x->req_done = true;
            x->sent_at = loop_now(x->w->loop);
            buf_put(&x->w->bufs, x->reqt);
            x->reqt = NULL;
            progress = true;
            break;
        }
        if (n > 0) {
            ssize_t past_head = send_up(x, iov, n, head_left);
            if (past_head == -EAGAIN)
                break;
            if (past_head < 0)
                return false;
            progress = true;
            uint32_t from_frame = (uint32_t)MIN((uint64_t)past_head, (uint64_t)frame_left);
            x->req_frame_sent += from_frame;
            uint32_t from_body = (uint32_t)past_head - from_frame;
            if (from_frame || from_body)
                x->req_body_sent = true;
            if (from_body) {
                x->obs.req_body_bytes += from_body;
                ops->consume(x->client, from_body);
                if (x->req_encode)
                    x->req_chunk_left -= from_body;
                else
                    x->req_remaining -= from_body;
            }
            continue;
        }
        int f = fill_body(x, true); /* more of the body, or its end */
        if (f < 0)
            return false;
        if (f == 0)
            break;
        progress = true;
    }
    return progress;
}

/* Sends the request head (when still due) and bytes of the hold chain (requestBufferSize), in
 * one writev. Returns 1 when bytes went, 0 when the upstream takes nothing now, -1 when the
 * exchange failed. Kept out of pump_request, whose path without a hold stays short. */
__attribute__((noinline)) static int send_held(struct exchange *x)
{
    struct iovec iov[1 + HOLD_IOV];
    int n = 0;
    uint32_t head_left = x->reqh_sent < x->reqh->last ? x->reqh->last - x->reqh_sent : 0;
    if (head_left)
        iov[n++] = (struct iovec){x->reqh->data + x->reqh_sent, head_left};
    for (struct buf *b = x->hold; b && n < 1 + HOLD_IOV; b = b->next)
        iov[n++] = (struct iovec){b->data + b->pos, buf_len(b)};
    ssize_t past_head = send_up(x, iov, n, head_left);
    if (past_head == -EAGAIN)
        return 0;
    if (past_head < 0)
        return -1;
    uint32_t from_body = (uint32_t)past_head;
    if (from_body) {
        x->req_body_sent = true;
        x->obs.req_body_bytes += from_body;
        hold_sent(x, from_body);
        if (x->req_body == HTTP1_BODY_LENGTH)
            x->req_remaining -= from_body;
    }
    return 1;
}

/* Sends the request head and body bytes the framing allows. Returns true on progress. */
bool exchange_req_pump(struct exchange *x)
{
    bool progress = false;
    const struct exchange_client_ops *ops = x->ops;
    if (x->req_stream)
        return pump_request_stream(x);
    if (x->req_body == HTTP1_BODY_LENGTH && !x->req_done && !x->hold) {
        uint32_t buffered = 0;
        ops->peek(x->client, &buffered);
        if (exchange_want_splice(x, &x->req_pipe, &x->splice_req, false,
                                 !x->reqh || x->reqh_sent == x->reqh->last, buffered,
                                 HTTP1_BODY_LENGTH, x->req_remaining)) {
            splice_request(x, &progress);
            return progress;
        }
    }
    while (!x->req_done && ex_relaying(x)) {
        if (x->hold) {
            /* What was held goes first (with the head), alone: the source's bytes follow once
             * it is all sent. */
            int r = send_held(x);
            if (r <= 0)
                return r == 0 && progress;
            progress = true;
            continue;
        }
        struct iovec iov[2];
        int n = 0;
        /* reqh goes once the final response head came, maybe before the body went up whole */
        uint32_t head_left =
            x->reqh && x->reqh_sent < x->reqh->last ? x->reqh->last - x->reqh_sent : 0;
        if (head_left)
            iov[n++] = (struct iovec){x->reqh->data + x->reqh_sent, head_left};

        uint64_t body = 0;
        uint32_t avail = 0;
        const char *src = x->req_body != HTTP1_BODY_NONE ? ops->peek(x->client, &avail) : NULL;
        if (x->req_body == HTTP1_BODY_LENGTH) {
            body = MIN(x->req_remaining, (uint64_t)avail);
        } else if (x->req_body == HTTP1_BODY_CHUNKED) {
            while (x->req_ready < avail && !http1_chunked_done(&x->req_chunk)) {
                bool is_data;
                ssize_t k = http1_chunked_decode(&x->req_chunk, src + x->req_ready,
                                                 avail - x->req_ready, &is_data);
                if (k < 0) {
                    exchange_fail(x, 400, LB_FAILED);
                    return false;
                }
                if (k == 0)
                    break;
                x->req_ready += (uint32_t)k;
            }
            body = x->req_ready;
        }
        if (body)
            iov[n++] = (struct iovec){(char *)src, (size_t)body};

        bool body_complete = x->req_body == HTTP1_BODY_NONE ||
                             (x->req_body == HTTP1_BODY_LENGTH && x->req_remaining == body) ||
                             (x->req_body == HTTP1_BODY_CHUNKED &&
                              http1_chunked_done(&x->req_chunk) && x->req_ready == body);
        if (n == 0 && body_complete) {
            x->req_done = true;
            x->sent_at = loop_now(x->w->loop);
            progress = true;
            break;
        }
        if (n > 0) {
            ssize_t past_head = send_up(x, iov, n, head_left);
            if (past_head == -EAGAIN)
                break;
            if (past_head < 0)
                return false;
            progress = true;
            uint32_t from_body = (uint32_t)past_head;
            if (from_body) {
                x->req_body_sent = true;
                x->obs.req_body_bytes += from_body;
                ops->consume(x->client, from_body);
                if (x->req_body == HTTP1_BODY_LENGTH)
                    x->req_remaining -= from_body;
                else
                    x->req_ready -= from_body;
            }
            continue;
        }
        int f = fill_body(x, false); /* need more body bytes from the client */
        if (f < 0)
            return false;
        if (f == 0)
            break;
        progress = true;
    }
    return progress;
}
