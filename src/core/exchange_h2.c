/* exchange_h2 — the exchange over an HTTP/2 upstream stream (protocol: h2; upstream/h2up.c).
 *
 * The same exchange, phases and deadlines as over HTTP/1 (exchange.c), another transport: the
 * request head golb rewrote (reqh, HTTP/1.1 text: forwarding fields, route filters, request id
 * all applied once, in one place) is turned into an HTTP/2 header list when a stream opens; the
 * body goes as DATA (h2up_stream_write) from the held chain then the session's source; the
 * response head becomes a struct http1_response for the session's on_head, its DATA goes to
 * send() (framed as chunks for an HTTP/1.1 client when no length was given), and its trailers
 * to body_end (HTTP/2 clients) or the last chunk (HTTP/1.1 clients).
 *
 *   connect_next ─► exchange_h2_open ─► XP_CONNECT (a new connection) ─► XP_RELAY
 *   exchange_pump ─► exchange_h2_pump: request up, response down, until neither moves
 *   a refused stream (GOAWAY above it, REFUSED_STREAM) whose body is still at hand: opened
 *   again once (retries counted); any other failure before the response: 502; after: a cut.
 *
 * Nothing here runs for a pool that speaks HTTP/1 (x->h2s is NULL). */
#include "core/exchange_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "config/config.h"
#include "core/worker_ctx.h"
#include "http/grpc.h"
#include "http/http.h"
#include "http/http1.h"
#include "http/rewrite.h"
#include "lb/balancer.h"
#include "upstream/backend.h"
#include "upstream/h2up.h"
#include "upstream/upstream.h"

#define NAMES_MAX 8192 /* lower-cased field names of one request */

static void on_h2_event(void *owner)
{
    struct exchange *x = owner;
    x->ops->resume(x->client);
}

/* Field names golb itself writes (and so in its own case) that HTTP/2 sends lower-cased. */
static const char *const known_lower[HTTP_F_COUNT] = {
    [HTTP_F_CONTENT_LENGTH] = "content-length",     [HTTP_F_TRAILER] = "trailer",
    [HTTP_F_EXPECT] = "expect",                     [HTTP_F_X_FORWARDED_FOR] = "x-forwarded-for",
    [HTTP_F_X_FORWARDED_PROTO] = "x-forwarded-proto",
    [HTTP_F_X_FORWARDED_HOST] = "x-forwarded-host", [HTTP_F_FORWARDED] = "forwarded",
    [HTTP_F_X_REAL_IP] = "x-real-ip",
};

/* f's name in lower case: a constant for a known one, itself when it has no capital (an HTTP/2
 * client's), else a copy into names[*used..]. NULL when names is full. */
static const char *lower_name(const struct http_field *f, char *names, size_t *used)
{
    if (f->id && known_lower[f->id])
        return known_lower[f->id];
    uint32_t j = 0;
    while (j < f->name_len && !(f->name[j] >= 'A' && f->name[j] <= 'Z'))
        j++;
    if (j == f->name_len)
        return f->name;
    if (f->name_len > NAMES_MAX - *used)
        return NULL;
    char *p = names + *used;
    memcpy(p, f->name, j);
    for (; j < f->name_len; j++)
        p[j] = (char)(f->name[j] >= 'A' && f->name[j] <= 'Z' ? f->name[j] | 0x20 : f->name[j]);
    *used += f->name_len;
    return p;
}

/* The HTTP/2 header list of the request head in reqh: pseudo-fields from the request line and
 * Host, the fields but the connection-specific ones, names lower-cased into names[]; te:
 * trailers for a gRPC call. Returns the count, or -1 when reqh does not parse (never: golb wrote
 * it) or does not fit. */
static int build_nv(struct exchange *x, const struct config_backend *cb, struct http1_request *rq,
                    struct http_field *nv, size_t cap, char *names)
{
    ssize_t n = http1_split_own_request(x->reqh->data, x->reqh->last, rq);
    if (n < 0)
        return -1;
    size_t k = 0, used = 0;
    const struct http_field *host = NULL;
    for (size_t i = 0; i < rq->rq.num_fields; i++)
        if (rq->rq.fields[i].id == HTTP_F_HOST)
            host = &rq->rq.fields[i];
    nv[k++] = (struct http_field){.name = ":method", .name_len = 7, .value = rq->rq.method,
                                  .value_len = rq->rq.method_len};
    bool tls = cb->tls;
    nv[k++] = (struct http_field){.name = ":scheme", .name_len = 7,
                                  .value = tls ? "https" : "http", .value_len = tls ? 5 : 4};
    nv[k++] = (struct http_field){.name = ":authority", .name_len = 10,
                                  .value = host ? host->value : cb->name,
                                  .value_len = host ? host->value_len : (uint32_t)strlen(cb->name)};
    nv[k++] = (struct http_field){.name = ":path", .name_len = 5, .value = rq->target,
                                  .value_len = rq->target_len};
    for (size_t i = 0; i < rq->rq.num_fields; i++) {
        const struct http_field *f = &rq->rq.fields[i];
        if (f->id == HTTP_F_HOST || http_field_h2_forbidden(f->id))
            continue; /* :authority above; connection-specific (RFC 9113 §8.2.2) */
        if (k == cap - 1)
            return -1;
        const char *name = lower_name(f, names, &used);
        if (!name)
            return -1;
        nv[k++] = (struct http_field){.name = name, .name_len = f->name_len, .value = f->value,
                                      .value_len = f->value_len};
    }
    if (x->grpc)
        nv[k++] = (struct http_field){.name = "te", .name_len = 2, .value = "trailers",
                                      .value_len = 8};
    return (int)k;
}

/* sendProxyProtocol: the PROXY header a new connection for this request's client writes first
 * (into pp, its bytes in hdr), or NULL without it. A connection then carries only that client's
 * streams (h2up_open). False with *err when the header cannot be built. */
static bool h2_proxy(struct exchange *x, struct h2up_proxy *pp, char *hdr, size_t cap,
                     const struct h2up_proxy **out, int *err)
{
    *out = NULL;
    if (!ex_backend_cfg(x)->send_proxy_protocol)
        return true;
    ssize_t n = exchange_proxy_header(x, hdr, cap, &pp->key);
    if (n < 0) {
        *err = (int)n;
        return false;
    }
    pp->hdr = hdr;
    pp->len = (size_t)n;
    *out = pp;
    return true;
}

/* Opens the stream on backend b. True when it opened (x->phase set), false when it could not
 * start (counted like a connect failure by the caller). */
bool exchange_h2_open(struct exchange *x, struct backend *b, int *err)
{
    struct worker_ctx *w = x->w;
    const struct config_backend *cb = ex_backend_cfg(x);
    struct h2up_proxy ppb;
    const struct h2up_proxy *pp;
    char pph[H2UP_PP_MAX];
    if (!h2_proxy(x, &ppb, pph, sizeof(pph), &pp, err))
        return false;
    struct http1_request rq;
    struct http_field nv[HTTP1_MAX_HEADERS + 8];
    char names[NAMES_MAX];
    int n = build_nv(x, cb, &rq, nv, ARRAY_LEN(nv), names);
    if (n < 0) {
        *err = -E2BIG;
        return false;
    }
    bool fresh = false;
    bool body = x->req_body != HTTP1_BODY_NONE;
    x->h2s = h2up_open(w->upstreams, &b->pw[w->id].idle, cb, pp, nv, (size_t)n, body, NULL, 0,
                       false, x, on_h2_event, &fresh, err);
    if (!x->h2s)
        return false;
    x->up_reused = !fresh;
    x->phase = h2up_stream_ready(x->h2s) ? XP_RELAY : XP_CONNECT;
    x->progress_at = loop_now(w->loop);
    return true;
}

/* The request body ended: END_STREAM, or the request's trailers t[0..n) (those an HTTP/1
 * trailer section would forward, rewrite_trailer_forwarded, and HTTP/2 may carry) in a HEADERS
 * frame that ends the stream. False when the request failed (x->res). */
static bool h2_end_request(struct exchange *x, const struct http_field *t, size_t n)
{
    struct http_field keep[H2UP_MAX_FIELDS];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct http_field f = t[i];
        f.id = (uint16_t)http_field_id_of(f.name, f.name_len);
        if (!rewrite_trailer_forwarded(&f) || http_field_h2_forbidden(f.id))
            continue;
        if (k == ARRAY_LEN(keep)) { /* more than a stream takes: the request is refused */
            x->end_term = "PD";
            x->end_error = "bad_request";
            exchange_fail(x, 400, LB_FAILED);
            return false;
        }
        keep[k++] = f;
    }
    if (h2up_stream_end_trailers(x->h2s, keep, k) != 0) {
        exchange_fail(x, 503, LB_FAILED);
        return false;
    }
    x->req_done = true;
    x->sent_at = loop_now(x->w->loop);
    return true;
}

/* n bytes at the front of the request body went into the stream or were framing: off the hold
 * chain's first buffer while there is one, else off the session's source. */
static void h2_src_consume(struct exchange *x, uint32_t n)
{
    struct buf *hb = x->hold;
    if (!hb) {
        x->ops->consume(x->client, n);
        return;
    }
    hb->pos += n;
    x->held -= n;
    if (buf_len(hb) == 0) {
        x->hold = hb->next;
        if (!x->hold)
            x->hold_tail = NULL;
        buf_put(&x->w->bufs, hb);
    }
}

/* Request direction for an HTTP/1 chunked body (HTTP/2 has no chunked coding): the HTTP/1
 * decoder (http1_chunked_decode) runs again over the body from its first byte, in the hold
 * chain then at the source, in place:
 *
 *   front of the hold chain or source
 *   [data decoded: h2_data][framing or data not decoded yet ...]
 *
 * a run of data is decoded, then written into the stream (as much as it takes, the rest waits in
 * place), framing is dropped but the trailer section, which is gathered in reqt and goes as the
 * stream's trailers once the last chunk is decoded. Bytes past the body stay at the source (the
 * next pipelined request). */
static bool h2_request_chunked(struct exchange *x)
{
    bool progress = false;
    struct h2up_stream *s = x->h2s;
    while (!x->req_done) {
        uint32_t avail = 0;
        const char *p;
        if (x->hold) {
            p = x->hold->data + x->hold->pos;
            avail = buf_len(x->hold);
        } else {
            p = x->ops->peek(x->client, &avail);
        }
        if (x->h2_data) {
            size_t k = h2up_stream_write(s, p, MIN(x->h2_data, avail));
            if (!k)
                return progress;
            h2_src_consume(x, (uint32_t)k);
            x->h2_data -= (uint32_t)k;
            x->req_body_sent = true;
            x->obs.req_body_bytes += k;
            x->progress_at = loop_now(x->w->loop);
            progress = true;
            continue;
        }
        if (http1_chunked_done(&x->h2_chunk)) {
            struct http_field tr[H2UP_MAX_FIELDS + 1];
            size_t nt = x->reqt ? http1_parse_trailers(x->reqt->data, x->reqt->last, tr,
                                                       ARRAY_LEN(tr))
                                : 0;
            bool ok = h2_end_request(x, tr, nt); /* copied: reqt may go */
            buf_put(&x->w->bufs, x->reqt);
            x->reqt = NULL;
            return ok;
        }
        if (!avail) {
            ssize_t r = x->ops->fill(x->client);
            if (r == -EAGAIN)
                return progress;
            if (r == -ENOMEM) {
                exchange_fail(x, 503, LB_FAILED);
                return false;
            }
            if (r <= 0) { /* the client went away mid-body: the stream is reset, never ended */
                x->res = EX_CLOSE;
                return false;
            }
            x->progress_at = loop_now(x->w->loop);
            continue;
        }
        bool is_data;
        size_t before = http1_chunked_in_trailers(&x->h2_chunk) ? x->h2_chunk.line_len : 0;
        ssize_t k = http1_chunked_decode(&x->h2_chunk, p, avail, &is_data);
        if (k <= 0) { /* invalid framing (0: never, avail > 0 and not done) */
            x->end_term = "PD";
            x->end_error = "bad_request";
            exchange_fail(x, 400, LB_FAILED);
            return false;
        }
        if (is_data) {
            x->h2_data = (uint32_t)k; /* written at the top of the loop */
            continue;
        }
        if (http1_chunked_in_trailers(&x->h2_chunk) || http1_chunked_done(&x->h2_chunk)) {
            /* the run's last t bytes are trailer section (HTTP1_TRAILERS_MAX fits a buffer) */
            uint32_t t = (uint32_t)(x->h2_chunk.line_len - before);
            if (t && !x->reqt && !(x->reqt = buf_get(&x->w->bufs))) {
                exchange_fail(x, 503, LB_FAILED);
                return false;
            }
            if (t > (x->reqt ? buf_space(x->reqt) : 0)) {
                x->end_term = "PD";
                x->end_error = "bad_request";
                exchange_fail(x, 400, LB_FAILED);
                return false;
            }
            if (t) {
                memcpy(x->reqt->data + x->reqt->last, p + k - t, t);
                x->reqt->last += t;
            }
        }
        h2_src_consume(x, (uint32_t)k);
        progress = true;
    }
    return progress;
}

/* Request direction: the held chain, then the source, into the stream. */
static bool h2_request(struct exchange *x)
{
    bool progress = false;
    struct h2up_stream *s = x->h2s;
    if (x->req_body == HTTP1_BODY_CHUNKED && !x->req_stream)
        return h2_request_chunked(x);
    while (!x->req_done) {
        if (x->hold) {
            struct buf *hb = x->hold;
            size_t k = h2up_stream_write(s, hb->data + hb->pos, buf_len(hb));
            if (!k)
                return progress;
            hb->pos += (uint32_t)k;
            x->held -= k;
            x->req_body_sent = true;
            progress = true;
            if (buf_len(hb) == 0) {
                x->hold = hb->next;
                if (!x->hold)
                    x->hold_tail = NULL;
                buf_put(&x->w->bufs, hb);
            }
            if (x->req_body == HTTP1_BODY_LENGTH)
                x->req_remaining -= MIN(x->req_remaining, (uint64_t)k);
            continue;
        }
        bool end = x->req_body == HTTP1_BODY_NONE ||
                   (x->req_body == HTTP1_BODY_LENGTH && x->req_remaining == 0 && !x->req_stream);
        uint32_t avail = 0;
        const char *src = NULL;
        if (!end) {
            src = x->ops->peek(x->client, &avail);
            if (x->req_body == HTTP1_BODY_LENGTH)
                avail = (uint32_t)MIN((uint64_t)avail, x->req_remaining);
            if (!avail) {
                if (x->req_stream) {
                    ssize_t r = x->ops->fill(x->client);
                    if (r == -EAGAIN)
                        return progress;
                    if (r == 0) {
                        if (x->req_body == HTTP1_BODY_LENGTH && x->req_remaining) {
                            exchange_fail(x, 400, LB_OK); /* the stream ended early */
                            return false;
                        }
                        end = true;
                    } else if (r < 0) {
                        x->res = EX_CLOSE;
                        return false;
                    } else {
                        continue;
                    }
                } else {
                    ssize_t r = x->ops->fill(x->client);
                    if (r == -EAGAIN)
                        return progress;
                    if (r <= 0) {
                        x->res = EX_CLOSE;
                        return false;
                    }
                    continue;
                }
            }
        }
        if (end) { /* a stream source's trailers (fill said the body ended) */
            const struct http_field *tr = NULL;
            size_t nt = x->req_stream && x->req_body != HTTP1_BODY_NONE && x->ops->trailers
                            ? x->ops->trailers(x->client, &tr)
                            : 0;
            return h2_end_request(x, tr, nt);
        }
        size_t k = h2up_stream_write(s, src, avail);
        if (!k)
            return progress;
        x->ops->consume(x->client, (uint32_t)k);
        if (x->req_body == HTTP1_BODY_LENGTH)
            x->req_remaining -= k;
        x->req_body_sent = true;
        x->obs.req_body_bytes += k;
        x->progress_at = loop_now(x->w->loop);
        progress = true;
    }
    return progress;
}

/* The stream's final head as an HTTP/1 response for the session. */
static void h2_response_of(struct exchange *x, struct h2up_stream *s, struct http1_response *r)
{
    memset(r, 0, offsetof(struct http1_response, headers));
    r->minor_version = 1;
    r->status = s->status;
    r->reason = http1_reason(s->status);
    r->reason_len = (uint32_t)strlen(r->reason);
    r->flags = HTTP1_MF_KEEP_ALIVE;
    size_t n = 0;
    int cl = -1;
    for (size_t i = 0; i < s->nf && n < HTTP1_MAX_HEADERS - 1; i++) {
        const struct http_field *f = &s->f[i];
        if (f->id == HTTP_F_CONNECTION || f->id == HTTP_F_KEEP_ALIVE ||
            f->id == HTTP_F_TRANSFER_ENCODING || f->id == HTTP_F_UPGRADE ||
            f->id == HTTP_F_PROXY_CONNECTION)
            continue;
        if (f->id == HTTP_F_CONTENT_LENGTH) {
            uint64_t v = 0;
            bool ok = f->value_len > 0 && f->value_len < 19;
            for (uint32_t j = 0; ok && j < f->value_len; j++) {
                ok = f->value[j] >= '0' && f->value[j] <= '9';
                v = v * 10 + (uint64_t)(f->value[j] - '0');
            }
            if (!ok)
                continue;
            r->content_length = v;
            cl = (int)n;
        }
        r->headers[n++] = *f;
    }
    if (x->req_is_head || s->status == 204 || s->status == 304) {
        r->body = HTTP1_BODY_NONE;
    } else if (cl >= 0) {
        r->body = HTTP1_BODY_LENGTH;
    } else {
        r->body = HTTP1_BODY_CHUNKED; /* HTTP/1.1 clients get it chunked, trailers and all */
        r->headers[n++] = (struct http_field){.name = "transfer-encoding", .name_len = 17,
                                              .value = "chunked", .value_len = 7,
                                              .id = HTTP_F_TRANSFER_ENCODING};
    }
    r->num_headers = n;
}

/* Appends the last chunk with trailers t[0..n) to resph (HTTP/1.1 chunked clients). */
static bool h2_last_chunk(struct exchange *x, const struct http_field *t, size_t n)
{
    struct buf *b = x->resph;
    size_t need = 7;
    for (size_t i = 0; i < n; i++)
        need += t[i].name_len + t[i].value_len + 4;
    if (need > buf_space(b))
        return false;
    char *p = b->data + b->last;
    if (x->chunk_trailer) { /* the CRLF ending the last data chunk */
        memcpy(p, "\r\n", 2);
        p += 2;
        x->chunk_trailer = false;
    }
    memcpy(p, "0\r\n", 3);
    p += 3;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, t[i].name, t[i].name_len);
        p += t[i].name_len;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, t[i].value, t[i].value_len);
        p += t[i].value_len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *p++ = '\r';
    *p++ = '\n';
    b->last = (uint32_t)(p - b->data);
    return true;
}

/* resph, taken again when x_rest gave it back (a stream session's exchange at rest). */
static bool h2_resph(struct exchange *x)
{
    if (!x->resph && !(x->resph = buf_get(&x->w->bufs)))
        return false;
    if (x->resph_sent == x->resph->last)
        x->resph->pos = x->resph->last = x->resph_sent = 0;
    return true;
}

bool exchange_h2_end_chunked(struct exchange *x, const struct http_field *t, size_t n)
{
    if (!x->resp_chunked_out || x->chunk_left || !h2_resph(x) || !h2_last_chunk(x, t, n))
        return false;
    x->resp_chunked_out = false;
    x->resp_phase = RESP_END;
    return true;
}

/* Response direction. */
static bool h2_response(struct exchange *x)
{
    struct h2up_stream *s = x->h2s;
    bool progress = false;
    for (int rounds = 0; rounds < 64 && x->res == EX_WAIT; rounds++) {
        if (x->resp_phase == RESP_WAIT_HEAD && s->continued) {
            /* The backend's 100 (Continue) goes to the client as over HTTP/1 (the session
             * relays it or not): a client that sent Expect: 100-continue waits for it. */
            s->continued = false;
            struct http1_response r;
            memset(&r, 0, offsetof(struct http1_response, headers));
            r.minor_version = 1;
            r.status = 100;
            r.reason = http1_reason(100);
            r.reason_len = (uint32_t)strlen(r.reason);
            if (!h2_resph(x)) {
                exchange_fail(x, 503, LB_FAILED);
                return false;
            }
            if (!exchange_response_head(x, &r)) {
                exchange_upstream_broken(x, "interim response head too large");
                return false;
            }
            progress = true;
        }
        if (x->resp_phase == RESP_WAIT_HEAD && !s->head) {
            if (!x->resph || x->resph->last == x->resph_sent)
                return progress;
            /* an interim head to send while the final one is awaited: below */
        } else if (x->resp_phase == RESP_WAIT_HEAD) {
            struct http1_response r;
            h2_response_of(x, s, &r);
            obs_response_head(x->w, &x->obs, r.status, 0);
            if (unlikely(x->grpc))
                x->obs.grpc_code = (int8_t)(grpc_status_field(s->f, s->nf) + 1);
            x->resp_body = r.body;
            x->resp_dechunk = r.body == HTTP1_BODY_CHUNKED && x->client_dechunk;
            x->resp_chunked_out = r.body == HTTP1_BODY_CHUNKED && !x->client_dechunk;
            x->resp_keepalive = true;
            if (!x->resph && !(x->resph = buf_get(&x->w->bufs))) {
                exchange_fail(x, 503, LB_FAILED);
                return false;
            }
            if (!exchange_response_head(x, &r)) {
                exchange_upstream_broken(x, "response head too large");
                return false;
            }
            x->resp_phase = RESP_BODY;
            progress = true;
            continue;
        }
        /* send: the head (and a chunk's framing) in resph, data from the stream */
        const uint8_t *d = NULL;
        size_t dn = x->resp_phase == RESP_BODY ? h2up_stream_data(s, &d) : 0;
        if (x->resp_chunked_out && dn && !x->chunk_left) {
            /* a new chunk: the CRLF ending the previous one's data, its size line */
            if (!h2_resph(x) || buf_space(x->resph) < 24) {
                x->res = EX_CLOSE;
                return false;
            }
            x->resph->last += http1_chunk_size_line(x->resph->data + x->resph->last,
                                                    x->chunk_trailer, dn);
            x->chunk_left = dn;
            x->chunk_trailer = true;
        }
        if (x->resp_chunked_out)
            dn = MIN(dn, (size_t)x->chunk_left);
        uint32_t head_left = x->resph ? x->resph->last - x->resph_sent : 0;
        if (head_left || dn) {
            struct iovec head = {NULL, 0}, body = {(void *)d, dn};
            if (head_left)
                head = (struct iovec){x->resph->data + x->resph_sent, head_left};
            ssize_t wr = x->ops->send(x->client, &head, dn ? &body : NULL, true);
            if (wr == -EAGAIN)
                return progress;
            if (wr < 0) {
                x->res = EX_CLOSE;
                return false;
            }
            progress = true;
            x->resp_started = true;
            x->progress_at = loop_now(x->w->loop);
            ex_spend(x, (size_t)wr);
            uint32_t from_head = (uint32_t)MIN((uint64_t)wr, (uint64_t)head_left);
            if (from_head) {
                x->resph_sent += from_head;
                if (x->resph_sent == x->resph->last)
                    x->resph->pos = x->resph->last = x->resph_sent = 0;
            }
            size_t from_body = (size_t)wr - from_head;
            if (from_body) {
                x->obs.resp_body_bytes += from_body;
                h2up_stream_consume(s, from_body);
                if (x->resp_chunked_out)
                    x->chunk_left -= from_body;
            }
            if (!x->budget) {
                exchange_yield(x);
                return progress;
            }
            continue;
        }
        if (s->failed) {
            exchange_h2_failed(x);
            return false;
        }
        if (x->resp_phase == RESP_BODY && s->ended && !h2up_stream_data(s, &d)) {
            x->resp_phase = RESP_END;
            if (unlikely(x->grpc) && s->nt && grpc_status_field(s->t, s->nt) >= 0)
                x->obs.grpc_code = (int8_t)(grpc_status_field(s->t, s->nt) + 1);
            if (x->resp_chunked_out && x->resp_body == HTTP1_BODY_CHUNKED) {
                if (!h2_resph(x) || !h2_last_chunk(x, s->t, s->nt)) {
                    x->res = EX_CLOSE;
                    return false;
                }
                x->resp_chunked_out = false;
                progress = true;
                continue;
            }
        }
        if (x->resp_phase == RESP_END) {
            if (x->ops->body_end) {
                int rc = x->ops->body_end(x->client, s->nt ? s->t : NULL, s->nt);
                if (rc == -EAGAIN)
                    return progress;
                if (rc < 0) {
                    x->res = EX_CLOSE;
                    return false;
                }
            }
            x->resp_phase = RESP_DONE;
            return true;
        }
        return progress;
    }
    if (x->res == EX_WAIT && x->ops->yield)
        exchange_yield(x);
    return progress;
}

enum exchange_status exchange_h2_pump(struct exchange *x)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        if (x->res != EX_WAIT)
            return x->res;
        if (!x->h2s) /* a failure moved it to an HTTP/1 backend of the pool: its pump */
            return exchange_pump(x);
        struct h2up_stream *s = x->h2s;
        if (x->phase == XP_CONNECT) {
            if (s->failed) {
                exchange_h2_failed(x); /* the next backend, or an answer */
                continue;
            }
            if (!h2up_stream_ready(s))
                return EX_WAIT;
            obs_connect_result(x->w, &x->obs, 0);
            x->phase = XP_RELAY;
            x->progress_at = loop_now(x->w->loop);
        }
        if (!ex_relaying(x))
            return x->res;
        bool p = h2_request(x);
        if (ex_relaying(x) && x->h2s == s)
            p |= h2_response(x);
        if (x->h2s != s)
            continue; /* a failure opened another stream (a retry, the next backend): pump it */
        if (!ex_relaying(x))
            return x->res;
        if (x->resp_phase == RESP_DONE) {
            if (!x->req_done) { /* answered before the whole body: the rest goes nowhere */
                x->body_abandoned = true;
                x->req_done = true;
            }
            return EX_DONE;
        }
        if (s->failed && x->resp_phase == RESP_WAIT_HEAD) {
            exchange_h2_failed(x);
            continue;
        }
        if (!p || x->yielded)
            break;
    }
    return x->res;
}

void exchange_h2_failed(struct exchange *x)
{
    struct h2up_stream *s = x->h2s;
    struct backend *b = ex_backend(x, x->backend);
    if (x->resp_started) {
        x->end_term = "SD";
        x->end_error = "invalid_response";
        if (x->grpc && x->ops->body_end && x->resp_phase == RESP_BODY &&
            !x->resp_chunked_out) {
            /* a gRPC call the backend dropped: UNAVAILABLE in trailers, as a gRPC client must
             * read it (a reset stream would be INTERNAL) */
            static const struct http_field tr[] = {
                {.name = "grpc-status", .value = "14", .name_len = 11, .value_len = 2},
                {.name = "grpc-message", .value = "backend connection lost", .name_len = 12,
                 .value_len = 23},
            };
            if (x->ops->body_end(x->client, tr, ARRAY_LEN(tr)) == 0) {
                x->end_early = true;
                x->obs.grpc_code = GRPC_UNAVAILABLE + 1;
                x->resp_phase = RESP_DONE;
                x->req_done = true;
                x->res = EX_DONE; /* exchange_finish counts the failure (h2s->failed) */
                return;
            }
        }
        x->res = EX_CLOSE; /* a cut: the client sees the stream end badly, never wrong bytes */
        return;
    }
    if (s->connect_failed) {
        obs_connect_result(x->w, &x->obs, -ECONNREFUSED);
        exchange_connect_failed(x, "HTTP/2 connection failed");
        return;
    }
    if (s->refused && !x->replayed && (s->replayable || !x->req_body_sent) && !s->nrqt) {
        /* not processed by the backend: again on another connection (the GOAWAY'd one takes no
         * new stream), its body from what the stream kept */
        struct worker_ctx *w = x->w;
        struct http1_request rq;
        struct http_field nv[HTTP1_MAX_HEADERS + 8];
        char names[NAMES_MAX];
        int n = build_nv(x, ex_backend_cfg(x), &rq, nv, ARRAY_LEN(nv), names);
        size_t rlen = s->rq_len;
        uint8_t *keep = rlen ? malloc(rlen) : NULL;
        struct h2up_proxy ppb;
        const struct h2up_proxy *pp = NULL;
        char pph[H2UP_PP_MAX];
        int pperr = 0;
        if (n >= 0 && (!rlen || keep) && h2_proxy(x, &ppb, pph, sizeof(pph), &pp, &pperr)) {
            if (rlen)
                memcpy(keep, s->rq, rlen);
            bool end = s->rq_end, fresh;
            int err = 0;
            h2up_stream_close(s);
            x->h2s = NULL;
            x->replayed = true;
            counter_add(&b->pw[w->id].m.retries, 1);
            x->h2s = h2up_open(w->upstreams, &b->pw[w->id].idle, ex_backend_cfg(x), pp, nv,
                               (size_t)n, x->req_body != HTTP1_BODY_NONE, keep, rlen, end, x,
                               on_h2_event, &fresh, &err);
            free(keep);
            if (x->h2s) {
                x->phase = h2up_stream_ready(x->h2s) ? XP_RELAY : XP_CONNECT;
                x->progress_at = loop_now(w->loop);
                log_info("backend %s: HTTP/2 stream refused (GOAWAY or REFUSED_STREAM): sent again",
                         b->name);
                return;
            }
            atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
            balancer_release(ex_balancer(x), x->backend, LB_CONNECT_FAILED, 0);
            exchange_connect_next(x);
            return;
        }
        free(keep);
    }
    char why[96];
    snprintf(why, sizeof(why), "HTTP/2 stream failed (error %u)%s", s->err,
             s->too_large ? ": response head too large" : "");
    x->replayed = true;
    exchange_upstream_broken(x, why);
}
