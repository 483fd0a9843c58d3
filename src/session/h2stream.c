/* h2stream — one stream of an HTTP/2 client connection (h2session_int.h): its header block
 * turned into the neutral request, its exchange (this file is the exchange's client: body source
 * from DATA, sink into HEADERS/DATA/trailers), golb's own answers on the stream, its deadline.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "base/buf.h"
#include "base/loop.h"
#include "base/util.h"
#include "config/config.h"
#include "core/exchange.h"
#include "core/obs.h"
#include "core/worker_ctx.h"
#include "http/http.h"
#include "http/http1.h"
#include "http/reply.h"
#include "http/rewrite.h"
#include "session/h2session_int.h"

static void stream_arm(struct h2stream *s);
static void on_exchange_status(struct h2stream *s, enum exchange_status st);
static const struct exchange_client_ops h2_exchange_ops;

static const struct config *s_cfg(const struct h2stream *s)
{
    return s->x ? exchange_config(s->x) : s->c->w->cfg;
}

/* ---------------------------------------------------------------- streams ------------------ */

static void stream_on_timeout(struct loop_timer *t);

struct h2stream *h2stream_new(struct h2conn *c, int32_t id)
{
    struct h2stream *s = mcache_calloc(&c->w->mc, 1, sizeof(*s));
    if (!s)
        return NULL;
    s->c = c;
    s->id = id;
    loop_timer_init(&s->timer, stream_on_timeout);
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    obs_h2(c->w, OBS_H2_STREAM_OPENED);
    return s;
}

static void arena_free(struct h2stream *s)
{
    mcache_free(&s->c->w->mc, s->arena);
    mcache_free(&s->c->w->mc, s->hf);
    s->arena = NULL;
    s->hf = NULL;
    s->arena_len = s->arena_cap = s->nhf = s->hf_cap = 0;
}

/* The stream's exchange ends (logged by the caller). */
void h2stream_put_exchange(struct h2stream *s)
{
    if (!s->x)
        return;
    exchange_put(s->x);
    s->x = NULL;
}

/* Logs a stream that ends with its exchange still running: the client reset it or went away,
 * unless golb noted a cause of its own. */
void h2stream_obs_abort(struct h2stream *s)
{
    if (!s->x)
        return;
    struct exchange_result r;
    exchange_result(s->x, &r);
    if (!r.log_pending)
        return;
    if (r.tunnel)
        exchange_obs_end(s->x, 200, "--", NULL, s->c->ip);
    else if (r.end_term)
        exchange_obs_end(s->x, r.resp_started ? r.backend_status : 0, r.end_term, r.end_error,
                         s->c->ip);
    else
        exchange_obs_end(s->x, r.resp_started ? r.backend_status : 0,
                         !r.resp_started && r.req_done ? "CH" : "CD", "client_abort", s->c->ip);
}

void h2stream_free(struct h2stream *s)
{
    struct h2conn *c = s->c;
    h2stream_obs_abort(s);
    h2stream_put_exchange(s);
    loop_timer_cancel(c->w->loop, &s->timer);
    if (s->ready) { /* unlink from the ready list */
        struct h2stream **pp = &c->ready, *prev = NULL;
        while (*pp && *pp != s) {
            prev = *pp;
            pp = &(*pp)->rnext;
        }
        if (*pp)
            *pp = s->rnext;
        if (c->ready_tail == s)
            c->ready_tail = prev;
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->nstreams--;
    obs_h2(c->w, OBS_H2_STREAM_CLOSED);
    if (c->nstreams == 0)
        c->idle_since = loop_now(c->w->loop);
    size_t unread = 0;
    for (const struct buf *b = s->in_head; b; b = b->next)
        unread += buf_len(b);
    h2_chain_free(c, &s->in_head, &s->in_tail);
    if (unread && c->ng)
        h2_body_taken(c, unread);
    h2_chain_free(c, &s->out_head, &s->out_tail);
    arena_free(s);
    mcache_free(&c->w->mc, s->req_tr);
    free(s->resp_tr);
    free(s->reply_copy);
    mcache_free(&c->w->mc, s);
}

/* A stream reset by golb (a malformed request, a cut response). */
void h2stream_reset(struct h2stream *s, uint32_t code)
{
    if (s->closed)
        return;
    nghttp2_submit_rst_stream(s->c->ng, NGHTTP2_FLAG_NONE, s->id, code);
}
/* ---------------------------------------------------------------- header blocks ------------ */

/* Copies n bytes into the stream's arena; returns their offset, or UINT32_MAX. */
static uint32_t arena_put(struct h2stream *s, const uint8_t *p, size_t n)
{
    if (s->arena_len + n > s->arena_cap) {
        uint32_t cap = s->arena_cap ? s->arena_cap : 1024;
        while (cap < s->arena_len + n)
            cap *= 2;
        char *a = mcache_realloc(&s->c->w->mc, s->arena, cap);
        if (!a)
            return UINT32_MAX;
        s->arena = a;
        s->arena_cap = cap;
    }
    uint32_t at = s->arena_len;
    memcpy(s->arena + at, p, n);
    s->arena_len += (uint32_t)n;
    return at;
}

/* Characters HTTP/1.1 can carry in a request target: visible ASCII. */
static bool target_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f)
            return false;
    return true;
}

static bool eq_ci(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && strncasecmp(a, b, an) == 0;
}

/* One field of a header block (nghttp2 checked it: RFC 9113 §8.2 names and values, pseudo-header
 * order and repetition, connection-specific fields, te). Returns 0, or
 * NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE after resetting the stream. */
int h2stream_on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    (void)user;
    struct h2stream *s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (!s || s->started != s->trailers_phase)
        return 0;
    s->list_size += (uint32_t)(namelen + valuelen + 32);
    if (s->list_size > s->c->max_header_size || s->nhf >= MAX_FIELDS) {
        if (s->trailers_phase) {
            h2stream_reset(s, NGHTTP2_PROTOCOL_ERROR);
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        s->answer = 431; /* the rest of the block is decoded (HPACK) and dropped */
        return 0;
    }
    if (s->answer)
        return 0;
    if (namelen && name[0] == ':') {
        int k = -1;
        if (namelen == 7 && memcmp(name, ":method", 7) == 0)
            k = PS_METHOD;
        else if (namelen == 7 && memcmp(name, ":scheme", 7) == 0)
            k = PS_SCHEME;
        else if (namelen == 10 && memcmp(name, ":authority", 10) == 0)
            k = PS_AUTHORITY;
        else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
            k = PS_PATH;
        else if (namelen == 9 && memcmp(name, ":protocol", 9) == 0)
            k = PS_PROTOCOL;
        if (k < 0 || ((k == PS_PATH || k == PS_AUTHORITY) && !target_ok(value, valuelen))) {
            h2stream_reset(s, NGHTTP2_PROTOCOL_ERROR);
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        uint32_t at = arena_put(s, value, valuelen);
        if (at == UINT32_MAX)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        s->ps[k] = (struct hf){0, 0, at, (uint32_t)valuelen};
        s->has_ps |= (uint8_t)(1u << k);
        return 0;
    }
    if (s->nhf == s->hf_cap) {
        uint32_t cap = s->hf_cap ? s->hf_cap * 2 : 16;
        struct hf *f = mcache_realloc(&s->c->w->mc, s->hf, cap * sizeof(*f));
        if (!f)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        s->hf = f;
        s->hf_cap = cap;
    }
    uint32_t n = arena_put(s, name, namelen), v = arena_put(s, value, valuelen);
    if (n == UINT32_MAX || v == UINT32_MAX)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->hf[s->nhf++] = (struct hf){n, (uint32_t)namelen, v, (uint32_t)valuelen};
    return 0;
}
/* The fields of the block as spans into the arena (valid until the arena moves or is freed). */
static struct http_field *block_fields(struct h2stream *s, uint32_t *n)
{
    struct http_field *f = mcache_calloc(&s->c->w->mc, s->nhf ? s->nhf : 1, sizeof(*f));
    if (!f)
        return NULL;
    for (uint32_t i = 0; i < s->nhf; i++) {
        const struct hf *h = &s->hf[i];
        f[i] = (struct http_field){.name = s->arena + h->name,
                                   .value = s->arena + h->value,
                                   .name_len = h->name_len,
                                   .value_len = h->value_len};
        f[i].id = (uint16_t)http_field_id_of(f[i].name, f[i].name_len);
    }
    *n = s->nhf;
    return f;
}
/* ---------------------------------------------------------------- golb's own answers ------- */

static ssize_t reply_read(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
                          uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)ng;
    (void)id;
    (void)user;
    struct h2stream *s = src->ptr;
    size_t n = MIN(len, (size_t)(s->reply_len - s->reply_sent));
    memcpy(out, s->reply + s->reply_sent, n);
    s->reply_sent += (uint32_t)n;
    if (s->reply_sent == s->reply_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* The default body of golb's own answers: "STATUS Reason\n", as HTTP/1 clients get it. */
static const char *answer_text(int status)
{
    static _Thread_local char bodies[600][64];
    char *body = bodies[status];
    if (!body[0])
        snprintf(body, 64, "%d %s\n", status, http1_reason(status));
    return body;
}

static nghttp2_nv nv_of(const char *name, size_t nl, const char *value, size_t vl)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE};
}

/* golb answered while the client still sends its request: RFC 9113 §8.1 lets it know the rest
 * goes nowhere with RST_STREAM(NO_ERROR), once the answer's END_STREAM went (h2stream_end_sent:
 * a reset queued earlier would overtake the answer). */
static void reset_after_answer(struct h2stream *s)
{
    if (!s->in_end && !s->closed)
        s->reset_after_end = true;
}

/* A gRPC call's answer (reply_desc.grpc): trailers-only, one HEADERS frame that ends the stream
 * with :status 200, content-type, grpc-status and grpc-message. */
static void stream_reply_grpc(struct h2stream *s, const struct reply_desc *d)
{
    char code[4];
    const char *msg = reply_grpc_message(d);
    const char *cs = reply_grpc_status(d, code);
    nghttp2_nv nv[] = {
        nv_of(":status", 7, "200", 3),
        nv_of("content-type", 12, "application/grpc", 16),
        nv_of("grpc-status", 11, cs, strlen(cs)),
        nv_of("grpc-message", 12, msg, strlen(msg)),
    };
    s->reply_len = 0;
    s->reply_sent = 0;
    s->resp_submitted = true;
    if (nghttp2_submit_response(s->c->ng, s->id, nv, ARRAY_LEN(nv), NULL) != 0)
        h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    else
        reset_after_answer(s);
    s->resp_complete = true;
    s->progress_at = loop_now(s->c->w->loop);
    stream_arm(s);
}

/* Answers a stream with golb's own response, described as for HTTP/1 (http/reply.h): HEADERS
 * (:status, content-type unless the description's fields set one, content-length, location,
 * retry-after, the fields, in lower case as HTTP/2 wants) and the body as DATA. d->body and the
 * fields must live until the stream ends (they are the generation's or static). */
static void stream_reply(struct h2stream *s, const struct reply_desc *d)
{
    if (unlikely(d->grpc)) {
        stream_reply_grpc(s, d);
        return;
    }
    int status = d->status < 100 || d->status >= 600 ? 500 : d->status;
    const char *body = d->body ? d->body : answer_text(status);
    size_t body_len = d->body ? d->body_len : strlen(body);
    char st[4], len[24], retry[12];
    snprintf(st, sizeof(st), "%d", status);
    int bl = snprintf(len, sizeof(len), "%zu", body_len);
    size_t cap = 5 + d->nfields, n = 0;
    nghttp2_nv stack_nv[16];
    nghttp2_nv *nv = cap <= ARRAY_LEN(stack_nv) ? stack_nv : calloc(cap, sizeof(*nv));
    if (!nv) {
        h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    bool typed = false;
    for (size_t i = 0; i < d->nfields; i++)
        typed |= eq_ci(d->fields[i].name, d->fields[i].name_len, "content-type", 12);
    nv[n++] = nv_of(":status", 7, st, 3);
    if (!typed)
        nv[n++] = nv_of("content-type", 12, "text/plain", 10);
    nv[n++] = nv_of("content-length", 14, len, (size_t)bl);
    if (d->location)
        nv[n++] = nv_of("location", 8, d->location, d->location_len);
    if (d->retry_after) {
        int rl = snprintf(retry, sizeof(retry), "%u", d->retry_after);
        nv[n++] = nv_of("retry-after", 11, retry, (size_t)rl);
    }
    /* the route's fields, names lower-cased (HTTP/2 refuses upper case); nghttp2 copies names
     * and values when the response is submitted, so they need to live only until then */
    char lower[2048];
    size_t used = 0;
    for (size_t i = 0; i < d->nfields; i++) {
        const struct http_field *f = &d->fields[i];
        if (f->name_len > sizeof(lower) - used)
            break; /* the configuration's names are short: never in practice */
        for (size_t k = 0; k < f->name_len; k++)
            lower[used + k] = (char)((f->name[k] >= 'A' && f->name[k] <= 'Z') ? f->name[k] | 0x20
                                                                               : f->name[k]);
        nv[n++] = nv_of(lower + used, f->name_len, f->value, f->value_len);
        used += f->name_len;
    }
    if (d->body && body_len && !d->no_body) { /* the generation may go before the DATA does */
        free(s->reply_copy);
        s->reply_copy = malloc(body_len);
        if (!s->reply_copy) {
            if (nv != stack_nv)
                free(nv);
            h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
            return;
        }
        memcpy(s->reply_copy, body, body_len);
        body = s->reply_copy;
    }
    s->reply = body;
    s->reply_len = d->no_body ? 0 : (uint32_t)body_len;
    s->reply_sent = 0;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = reply_read};
    s->resp_submitted = true;
    if (nghttp2_submit_response(s->c->ng, s->id, nv, n, s->reply_len ? &prd : NULL) != 0)
        h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    else
        reset_after_answer(s);
    if (nv != stack_nv)
        free(nv);
    s->resp_complete = true;
    /* A client that neither takes the answer nor ends its request does not keep the stream:
     * bodyTimeout, as for any response bytes left waiting. */
    s->progress_at = loop_now(s->c->w->loop);
    stream_arm(s);
}

/* golb's own answer with its default text (502, 503, 400, ...). */
static void stream_answer(struct h2stream *s, int status)
{
    struct reply_desc d = {.status = status};
    stream_reply(s, &d);
}

/* An answer golb gives before any exchange exists (a malformed request, a refused method). */
static void answer_without_exchange(struct h2stream *s, int status, const char *err)
{
    struct obs_req r;
    memset(&r, 0, sizeof(r));
    r.version = HTTP_V2;
    obs_req_end(s->c->w, &r, status, "PR", err, s->c->ip);
    stream_answer(s, status);
}

/* ---------------------------------------------------------------- request start ------------ */

static const char *ps(const struct h2stream *s, int k, uint32_t *len)
{
    if (!(s->has_ps & (1u << k))) {
        *len = 0;
        return "";
    }
    *len = s->ps[k].value_len;
    return s->arena + s->ps[k].value;
}

/* The request's header block ended: build the neutral request and start its exchange. nghttp2
 * has checked the pseudo-header fields' presence for the method (RFC 9113 §8.3). */
void h2stream_start(struct h2stream *s, bool end_stream)
{
    struct h2conn *c = s->c;
    struct worker_ctx *w = c->w;
    s->started = true;
    if (s->answer) {
        answer_without_exchange(s, s->answer, s->answer == 431 ? "too_large" : "bad_request");
        arena_free(s);
        return;
    }
    struct http_request rq = {0};
    rq.method = ps(s, PS_METHOD, &rq.method_len);
    rq.scheme = ps(s, PS_SCHEME, &rq.scheme_len);
    rq.authority = ps(s, PS_AUTHORITY, &rq.authority_len);
    rq.path = ps(s, PS_PATH, &rq.path_len);
    rq.protocol = ps(s, PS_PROTOCOL, &rq.protocol_len);
    rq.version = HTTP_V2;
    uint32_t n;
    struct http_field *f = block_fields(s, &n);
    if (!f) {
        h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    rq.fields = f;
    rq.num_fields = n;
    int status = 0;
    bool connect = eq_ci(rq.method, rq.method_len, "CONNECT", 7);
    if (connect && !rq.protocol_len)
        status = 501; /* golb is a reverse proxy, not a forward tunnel */
    if (connect && rq.protocol_len)
        rq.flags |= HTTP_RF_UPGRADE;
    if (rq.path_len == 1 && rq.path[0] == '*')
        rq.flags |= HTTP_RF_ASTERISK;
    int host = http_field_find(f, n, HTTP_F_HOST);
    if (rq.authority_len) {
        rq.flags |= HTTP_RF_AUTHORITY;
        /* RFC 9113 §8.3.1: a Host that disagrees with :authority is malformed; HTTP/1 upstreams
         * would see two different hosts (routing and the backend on one, logs on the other). */
        for (uint32_t i = 0; host >= 0 && i < n; i++)
            if (f[i].id == HTTP_F_HOST &&
                !eq_ci(f[i].value, f[i].value_len, rq.authority, rq.authority_len))
                status = 400;
    } else if (host >= 0) {
        rq.authority = f[host].value;
        rq.authority_len = f[host].value_len;
        if (http_field_find(f + host + 1, n - (uint32_t)host - 1, HTTP_F_HOST) >= 0)
            status = 400;
    }
    int ex = http_field_find(f, n, HTTP_F_EXPECT);
    if (ex >= 0 && eq_ci(f[ex].value, f[ex].value_len, "100-continue", 12))
        rq.flags |= HTTP_RF_EXPECT_100; /* the client waits for a 100 before its body */
    int cl = http_field_find(f, n, HTTP_F_CONTENT_LENGTH);
    if (cl >= 0) { /* nghttp2 checked it is one valid number, and will check the DATA against it */
        uint64_t v = 0;
        for (uint32_t i = 0; i < f[cl].value_len; i++)
            v = v * 10 + (uint64_t)(f[cl].value[i] - '0');
        rq.body = HTTP_BODY_LENGTH;
        rq.content_length = v;
        if (end_stream && v)
            status = 400;
    } else if (!end_stream && !(rq.flags & HTTP_RF_UPGRADE)) {
        rq.body = HTTP_BODY_STREAM;
    }
    if (rq.flags & HTTP_RF_UPGRADE)
        rq.body = HTTP_BODY_NONE; /* the stream's DATA is the tunnel's, after the 200 */
    s->in_end = end_stream;
    w->stats.requests++;
    if (status) {
        answer_without_exchange(s, status, "bad_request");
        mcache_free(&w->mc, f);
        arena_free(s);
        return;
    }
    struct exchange *x = s->x = exchange_get(w, &h2_exchange_ops, s);
    if (!x) {
        answer_without_exchange(s, 503, "no_backend");
        mcache_free(&w->mc, f);
        arena_free(s);
        return;
    }
    const struct config_tls *tls = c->tls ? c->tls : w->cfg->tls;
    struct exchange_request info = {
        .client_ip = c->ip,
        .client_ip_len = c->iplen,
        .https = c->ssl != NULL,
        .subject = c->subject,
        .subject_header = tls ? tls->client_subject_header : NULL,
        .dechunk = true,
        .stream = true,
    };
    enum exchange_status st = exchange_start(x, &rq, &info);
    mcache_free(&w->mc, f);
    arena_free(s);
    if (st != EX_WAIT) { /* refused, answered by golb (a route's), or no backend */
        on_exchange_status(s, st);
        return;
    }
    h2_ready_add(s);
}

/* The request's trailers (a second header block, with END_STREAM): kept as fields for the
 * exchange (ops->trailers), pointing into the arena. */
void h2stream_trailers(struct h2stream *s)
{
    uint32_t n;
    struct http_field *f = block_fields(s, &n);
    if (!f) {
        h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    mcache_free(&s->c->w->mc, s->req_tr);
    s->req_tr = f;
    s->nreq_tr = n;
}
/* The body's end: END_STREAM on the last DATA frame, or the trailers after it. */
static void body_eof(nghttp2_session *ng, struct h2stream *s, uint32_t *flags)
{
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!s->resp_tr)
        return;
    *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    if (nghttp2_submit_trailer(ng, s->id, s->resp_tr, s->nresp_tr) != 0)
        *flags &= ~(uint32_t)NGHTTP2_DATA_FLAG_NO_END_STREAM;
    free(s->resp_tr);
    s->resp_tr = NULL;
}

static ssize_t body_read(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)id;
    (void)out;
    (void)user;
    struct h2stream *s = src->ptr;
    if (s->out_len) {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        size_t n = MIN(len, (size_t)s->out_len);
        if (s->resp_end && n == s->out_len)
            body_eof(ng, s, flags);
        return (ssize_t)n;
    }
    if (s->resp_end) {
        body_eof(ng, s, flags);
        return 0;
    }
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
}
static void stream_resume_data(struct h2stream *s)
{
    if (s->deferred && !s->closed) {
        s->deferred = false;
        nghttp2_session_resume_data(s->c->ng, s->id);
    }
}
/* ---------------------------------------------------------------- the exchange's client ---- */

static const char *h2_peek(void *cl, uint32_t *len)
{
    return buf_peek(((struct h2stream *)cl)->in_head, len);
}

static void h2_consume(void *cl, uint32_t n)
{
    struct h2stream *s = cl;
    h2_chain_consume(s->c, &s->in_head, &s->in_tail, n);
    h2_body_taken(s->c, n);
    if (!s->closed)
        nghttp2_session_consume_stream(s->c->ng, s->id, n);
}

/* requestBufferSize over HTTP/2: the body waits in the stream's chain; nothing more comes once
 * it ended or the stream's window (initialWindowSize) or the connection's body bound is used. */
static uint64_t h2_held(void *cl, bool *complete)
{
    struct h2stream *s = cl;
    uint64_t n = 0;
    for (const struct buf *b = s->in_head; b; b = b->next)
        n += buf_len(b);
    *complete = s->in_end || s->in_reset || s->closed || s->c->conn_owed ||
                n >= s->c->cfg.initial_window_size;
    return n;
}

static ssize_t h2_fill(void *cl)
{
    struct h2stream *s = cl;
    if (s->in_head && s->in_head->next)
        return buf_len(s->in_head->next); /* more behind what peek shows */
    if (s->in_reset)
        return -EPIPE;
    if (s->in_end)
        return 0;
    return -EAGAIN;
}

/* The response head as the session keeps it in resph until send() submits it: a record per head
 * (an interim 1xx, then the final one), fields already filtered and lower-cased:
 *   u32 record length | u16 status | u8 flags | u16 nfields | (u16 name_len, u32 value_len,
 *   name, value)... */
#define REC_NO_BODY 0x1

static bool rec_put(struct buf *out, const void *p, size_t n)
{
    if (buf_space(out) < n)
        return false;
    memcpy(out->data + out->last, p, n);
    out->last += (uint32_t)n;
    return true;
}

/* RFC 9113 §8.2.2: fields HTTP/2 must not carry, and those naming a connection option. */
static bool resp_field_dropped(const struct http_field *h)
{
    return http_field_h2_forbidden(h->id) || (h->flags & HTTP_FF_CONN_LISTED) != 0;
}

static bool rec_field(struct buf *out, const char *name, size_t nl, const char *value, size_t vl)
{
    uint16_t n16 = (uint16_t)nl;
    uint32_t v32 = (uint32_t)vl;
    if (buf_space(out) < 6 + nl + vl)
        return false;
    rec_put(out, &n16, 2);
    rec_put(out, &v32, 4);
    for (size_t i = 0; i < nl; i++) /* HTTP/2 field names are lower case */
        out->data[out->last + i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] | 0x20
                                                                             : name[i]);
    out->last += (uint32_t)nl;
    return rec_put(out, value, vl);
}

static int h2_on_head(void *cl, const struct http1_response *resp, const struct exchange_head *h,
                      struct buf *out)
{
    struct h2stream *s = cl;
    uint32_t start = out->last;
    int status = resp->status;
    bool tunnel = status == 101;
    if (tunnel)
        status = 200; /* RFC 8441 §5: the extended CONNECT's success */
    uint32_t zero = 0;
    uint16_t st = (uint16_t)status, nf = 0;
    uint8_t flags = 0;
    if (resp->status >= 200 && !tunnel && resp->body == HTTP1_BODY_NONE && !h->dechunk)
        flags |= REC_NO_BODY;
    if (!rec_put(out, &zero, 4) || !rec_put(out, &st, 2) || !rec_put(out, &flags, 1) ||
        !rec_put(out, &nf, 2))
        goto full;
    if (!tunnel) {
        for (size_t i = 0; i < resp->num_headers; i++) {
            const struct http_field *f = &resp->headers[i];
            if (resp_field_dropped(f))
                continue;
            if (f->id == HTTP_F_CONTENT_LENGTH && h->dechunk)
                continue;
            if (unlikely(h->headers != NULL) && resp->status >= 200 && f->id == HTTP_F_OTHER &&
                rewrite_headers_touch(h->headers, f->name, f->name_len))
                continue; /* the route's response filter removes or sets it */
            if (!rec_field(out, f->name, f->name_len, f->value, f->value_len))
                goto full;
            nf++;
        }
        if (unlikely(h->headers != NULL) && resp->status >= 200) {
            for (size_t i = 0; i < h->headers->nset; i++) {
                const struct http_field *f = &h->headers->set[i];
                if (!rec_field(out, f->name, f->name_len, f->value, f->value_len))
                    goto full;
                nf++;
            }
        }
        if (h->set_cookie_len && resp->status >= 200) {
            if (!rec_field(out, "set-cookie", 10, h->set_cookie, h->set_cookie_len))
                goto full;
            nf++;
        }
    } else {
        s->tunnel = true;
    }
    uint32_t len = out->last - start;
    memcpy(out->data + start, &len, 4);
    memcpy(out->data + start + 7, &nf, 2);
    return 0;
full:
    out->last = start;
    return -ENOSPC;
}

/* Submits the head records in p[0..n): interim heads as HEADERS, the final one with the body's
 * data provider (or END_STREAM when it has no body). */
static bool submit_heads(struct h2stream *s, const char *p, size_t n)
{
    while (n >= 9) {
        uint32_t len;
        uint16_t st, nf;
        uint8_t flags;
        memcpy(&len, p, 4);
        memcpy(&st, p + 4, 2);
        flags = (uint8_t)p[6];
        memcpy(&nf, p + 7, 2);
        nghttp2_nv stack_nv[32];
        nghttp2_nv *nv = (size_t)nf + 1 <= ARRAY_LEN(stack_nv)
                             ? stack_nv
                             : mcache_calloc(&s->c->w->mc, (size_t)nf + 1, sizeof(*nv));
        if (!nv)
            return false;
        char status[3] = {(char)('0' + st / 100 % 10), (char)('0' + st / 10 % 10),
                          (char)('0' + st % 10)};
        nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
        const char *q = p + 9;
        for (uint16_t i = 0; i < nf; i++) {
            uint16_t nl;
            uint32_t vl;
            memcpy(&nl, q, 2);
            memcpy(&vl, q + 2, 4);
            nv[i + 1] = (nghttp2_nv){(uint8_t *)q + 6, (uint8_t *)q + 6 + nl, nl, vl,
                                     NGHTTP2_NV_FLAG_NONE};
            q += 6 + nl + vl;
        }
        int rv;
        if (st < 200) {
            rv = nghttp2_submit_headers(s->c->ng, NGHTTP2_FLAG_NONE, s->id, NULL, nv,
                                        (size_t)nf + 1, NULL);
        } else {
            nghttp2_data_provider prd = {.source.ptr = s, .read_callback = body_read};
            rv = nghttp2_submit_response(s->c->ng, s->id, nv, (size_t)nf + 1,
                                         (flags & REC_NO_BODY) ? NULL : &prd);
            s->resp_submitted = true;
            if (flags & REC_NO_BODY)
                s->resp_end = true;
        }
        if (nv != stack_nv)
            mcache_free(&s->c->w->mc, nv);
        if (rv != 0)
            return false;
        p += len;
        n -= len;
    }
    return true;
}

static ssize_t h2_send(void *cl, const struct iovec *head, const struct iovec *body,
                       bool streaming)
{
    struct h2stream *s = cl;
    (void)streaming;
    if (s->closed || s->in_reset)
        return -EPIPE;
    size_t room = s->out_len < STREAM_OUT_MAX ? STREAM_OUT_MAX - s->out_len : 0;
    size_t take = body ? MIN(room, body->iov_len) : 0;
    if (!head->iov_len && body && body->iov_len && !take) {
        s->out_blocked = true;
        return -EAGAIN;
    }
    if (head->iov_len && !submit_heads(s, head->iov_base, head->iov_len))
        return -EPIPE;
    if (take) {
        if (!h2_chain_append(s->c, &s->out_head, &s->out_tail, body->iov_base, take))
            return head->iov_len ? (ssize_t)head->iov_len : -EAGAIN;
        s->out_len += (uint32_t)take;
        stream_resume_data(s);
    }
    return (ssize_t)(head->iov_len + take);
}

static int h2_splice_end(void *cl, bool response, struct exchange_splice *out)
{
    (void)cl;
    (void)response;
    (void)out;
    return -ENOTSUP; /* multiplexed: bodies are copied into frames */
}

static void h2_resume(void *cl)
{
    struct h2stream *s = cl;
    h2_ready_add(s);
    h2session_pump_soon(s->c);
}

static void h2_yield(void *cl)
{
    struct h2stream *s = cl;
    h2_ready_add(s); /* the stream goes on after the worker's other connections */
    h2session_yield(s->c);
}

static int h2_body_end(void *cl, const struct http_field *tr, size_t n)
{
    struct h2stream *s = cl;
    if (s->closed || s->in_reset)
        return -EPIPE;
    if (n && !s->resp_tr) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += tr[i].name_len + tr[i].value_len;
        nghttp2_nv *nv = calloc(1, n * sizeof(*nv) + bytes);
        if (!nv)
            return -EPIPE;
        char *p = (char *)(nv + n);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (resp_field_dropped(&tr[i]))
                continue;
            nv[k].name = (uint8_t *)p;
            for (size_t j = 0; j < tr[i].name_len; j++)
                *p++ = (char)((tr[i].name[j] >= 'A' && tr[i].name[j] <= 'Z') ? tr[i].name[j] | 0x20
                                                                               : tr[i].name[j]);
            nv[k].namelen = tr[i].name_len;
            nv[k].value = (uint8_t *)p;
            memcpy(p, tr[i].value, tr[i].value_len);
            p += tr[i].value_len;
            nv[k].valuelen = tr[i].value_len;
            k++;
        }
        if (k) {
            s->resp_tr = nv;
            s->nresp_tr = k;
        } else {
            free(nv);
        }
    }
    s->resp_end = true;
    s->resp_complete = true;
    stream_resume_data(s);
    return 0;
}

static size_t h2_trailers(void *cl, const struct http_field **out)
{
    struct h2stream *s = cl;
    *out = s->req_tr;
    return s->nreq_tr;
}

static const struct exchange_client_ops h2_exchange_ops = {
    .peek = h2_peek,
    .consume = h2_consume,
    .fill = h2_fill,
    .on_head = h2_on_head,
    .send = h2_send,
    .splice_end = h2_splice_end,
    .resume = h2_resume,
    .yield = h2_yield,
    .body_end = h2_body_end,
    .trailers = h2_trailers,
    .held = h2_held,
};

/* ---------------------------------------------------------------- exchange outcomes -------- */

static void stream_finish(struct h2stream *s)
{
    struct exchange_result r;
    exchange_result(s->x, &r);
    exchange_obs_end(s->x, r.tunnel ? 200 : r.backend_status, "--", NULL, s->c->ip);
    exchange_finish(s->x);
    h2stream_put_exchange(s);
    s->progress_at = loop_now(s->c->w->loop);
    if (s->in_end || s->closed)
        return;
    /* The response ended first: the rest of the request body goes nowhere, and RFC 9113 §8.1
     * lets the client know with RST_STREAM(NO_ERROR). nghttp2 sends a queued RST_STREAM before
     * the stream's pending DATA and drops what is left, so it waits for the response's
     * END_STREAM to go out (h2stream_end_sent), unless it went already. */
    if (nghttp2_session_get_stream_local_close(s->c->ng, s->id) == 1)
        h2stream_reset(s, NGHTTP2_NO_ERROR);
    else
        s->reset_after_end = true;
}

void h2stream_end_sent(struct h2stream *s)
{
    if (!s->reset_after_end)
        return;
    s->reset_after_end = false;
    if (!s->in_end)
        h2stream_reset(s, NGHTTP2_NO_ERROR);
}

static void on_exchange_status(struct h2stream *s, enum exchange_status st)
{
    struct exchange_result r;
    switch (st) {
    case EX_WAIT:
        return;
    case EX_DONE:
        stream_finish(s);
        return;
    case EX_FAIL:
        exchange_result(s->x, &r);
        if (r.resp_started) {
            h2stream_obs_abort(s);
            h2stream_put_exchange(s);
            h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
            return;
        }
        {
            const char *term, *err;
            obs_reply_terms(r.fail_status, true, r.relaying, &term, &err);
            if (r.end_term) {
                term = r.end_term;
                err = r.end_error;
            }
            exchange_obs_end_reply(s->x, r.fail_status, term, err, s->c->ip);
            exchange_release_upstream(s->x, r.fail_outcome);
            h2stream_put_exchange(s);
            struct reply_desc d;
            reply_error(&d, r.fail_status, r.grpc);
            stream_reply(s, &d);
        }
        return;
    case EX_CLOSE:
        h2stream_obs_abort(s);
        h2stream_put_exchange(s);
        h2stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    case EX_TUNNEL:
        exchange_tunnel_stream(s->x);
        h2_ready_add(s);
        return;
    case EX_REPLY: { /* a route's redirect or respond, 403, 404, 429 */
        exchange_result(s->x, &r);
        const struct reply_desc *d = exchange_reply(s->x);
        exchange_obs_end_reply(s->x, d->status, r.end_term ? r.end_term : "--", r.end_error,
                               s->c->ip);
        stream_reply(s, d); /* before the exchange goes: d lives in it */
        h2stream_put_exchange(s);
        return;
    }
    }
}

/* Pumps a stream's exchange (from the ready list, never inside an nghttp2 call). */
void h2stream_pump(struct h2stream *s)
{
    if (!s->x)
        return;
    s->pumping = true;
    enum exchange_status st = exchange_pump(s->x);
    s->pumping = false;
    if (s->in_reset && s->closed) {
        h2stream_free(s);
        return;
    }
    on_exchange_status(s, st);
    stream_arm(s);
}

static void stream_arm(struct h2stream *s)
{
    if (s->closed)
        return;
    if (s->x) {
        loop_timer_set(s->c->w->loop, &s->timer, exchange_deadline(s->x));
        return;
    }
    /* The exchange ended and the stream still holds bytes for a client that does not take
     * them (a zero window): bodyTimeout from the last byte that went. */
    if (s->out_len || s->resp_submitted)
        loop_timer_set(s->c->w->loop, &s->timer,
                       (s->progress_at ? s->progress_at : loop_now(s->c->w->loop)) +
                           s_cfg(s)->body_timeout_ms);
}

static void stream_on_timeout(struct loop_timer *t)
{
    struct h2stream *s = container_of(t, struct h2stream, timer);
    struct h2conn *c = s->c;
    if (s->x) {
        s->pumping = true;
        enum exchange_status st = exchange_timeout(s->x);
        s->pumping = false;
        if (s->in_reset && s->closed) {
            h2stream_free(s);
        } else if (st == EX_WAIT) {
            h2_ready_add(s);
        } else {
            on_exchange_status(s, st);
            stream_arm(s);
        }
    } else {
        h2stream_reset(s, NGHTTP2_CANCEL);
    }
    h2session_pump(c);
}
