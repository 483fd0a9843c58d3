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
 */
#include "session/h2session.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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
#include "http/http.h"
#include "http/http1.h"
#include "net/conn.h"

#define OUT_MAX (64u * 1024u)        /* frames serialised and not yet written, per connection */
#define STREAM_OUT_MAX (32u * 1024u) /* response body bytes a stream holds for its DATA frames */
#define FLOOD_WINDOW_MS 1000u
#define FLOOD_FRAMES 1000u  /* frames that do no work (empty DATA, PRIORITY, PING, SETTINGS; not
                               WINDOW_UPDATE, of which a fast download brings many) per
                               FLOOD_WINDOW_MS before ENHANCE_YOUR_CALM */
#define RESET_BURST 200u    /* streams reset (either side) before their response ended, per */
#define RESET_WINDOW_MS 1000u /* this long: beyond it the connection is told to calm down */
#define MAX_FIELDS 256u       /* fields in one header block (as HTTP1_MAX_HEADERS) */

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
    nghttp2_nv *resp_tr; /* trailers to send after the body (and their bytes), or NULL */
    size_t nresp_tr;
    uint64_t progress_at; /* last byte moved while no exchange (its buffered tail) */
    const char *reply;   /* golb's own answer's body */
    uint32_t reply_len, reply_sent;
};

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
    struct buf *in;
    struct buf *out_head, *out_tail; /* serialised frames not written yet */
    uint32_t out_len;
    struct h2stream *streams; /* every stream nghttp2 opened and this session still knows */
    struct h2stream *ready, *ready_tail;
    uint32_t nstreams;
    struct config_http2 cfg; /* the settings it was accepted under */
    uint32_t max_header_size;
    uint64_t idle_since;      /* the last stream closed (or the connection opened) */
    uint64_t flood_at, reset_at;
    uint32_t flood_frames, resets;
    bool readable, writable, eof, rdhup, dead, goaway, in_pump;
    uint8_t iplen;
    char ip[46];
};

static void conn_pump(struct h2conn *c);
static void stream_pump(struct h2stream *s);
static void stream_arm(struct h2stream *s);
static const struct exchange_client_ops h2_exchange_ops;

/* ---------------------------------------------------------------- small helpers ------------ */

static const struct config *s_cfg(const struct h2stream *s)
{
    return s->x ? exchange_config(s->x) : s->c->w->cfg;
}

static void ready_add(struct h2stream *s)
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

static void chain_free(struct h2conn *c, struct buf **head, struct buf **tail)
{
    while (*head) {
        struct buf *b = *head;
        *head = b->next;
        buf_put(&c->w->bufs, b);
    }
    *tail = NULL;
}

/* Appends n bytes to a chain of pooled buffers. Returns false when out of buffers. */
static bool chain_append(struct h2conn *c, struct buf **head, struct buf **tail, const void *p,
                         size_t n)
{
    const char *src = p;
    while (n) {
        struct buf *t = *tail;
        if (!t || buf_space(t) == 0) {
            t = buf_get(&c->w->bufs);
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
static void chain_consume(struct h2conn *c, struct buf **head, struct buf **tail, size_t n)
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

/* ---------------------------------------------------------------- streams ------------------ */

static void stream_on_timeout(struct loop_timer *t);

static struct h2stream *stream_new(struct h2conn *c, int32_t id)
{
    struct h2stream *s = calloc(1, sizeof(*s));
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
    return s;
}

static void arena_free(struct h2stream *s)
{
    free(s->arena);
    free(s->hf);
    s->arena = NULL;
    s->hf = NULL;
    s->arena_len = s->arena_cap = s->nhf = s->hf_cap = 0;
}

/* The stream's exchange ends (logged by the caller). */
static void stream_put_exchange(struct h2stream *s)
{
    if (!s->x)
        return;
    exchange_put(s->x);
    s->x = NULL;
}

/* Logs a stream that ends with its exchange still running: the client reset it or went away,
 * unless golb noted a cause of its own. */
static void stream_obs_abort(struct h2stream *s)
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

static void stream_free(struct h2stream *s)
{
    struct h2conn *c = s->c;
    stream_obs_abort(s);
    stream_put_exchange(s);
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
    if (c->nstreams == 0)
        c->idle_since = loop_now(c->w->loop);
    chain_free(c, &s->in_head, &s->in_tail);
    chain_free(c, &s->out_head, &s->out_tail);
    arena_free(s);
    free(s->req_tr);
    free(s->resp_tr);
    free(s);
}

/* A stream reset by golb (a malformed request, a cut response). */
static void stream_reset(struct h2stream *s, uint32_t code)
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
        char *a = realloc(s->arena, cap);
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
static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
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
            stream_reset(s, NGHTTP2_PROTOCOL_ERROR);
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
            stream_reset(s, NGHTTP2_PROTOCOL_ERROR);
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
        struct hf *f = realloc(s->hf, cap * sizeof(*f));
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

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
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
    s = stream_new(c, frame->hd.stream_id);
    if (!s || nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, s) != 0) {
        if (s)
            stream_free(s);
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

/* The fields of the block as spans into the arena (valid until the arena moves or is freed). */
static struct http_field *block_fields(struct h2stream *s, uint32_t *n)
{
    struct http_field *f = calloc(s->nhf ? s->nhf : 1, sizeof(*f));
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

/* Answers a stream with golb's own response (502, 503, 400, ...) as HEADERS and a short DATA,
 * the same text HTTP/1 clients get in their body. */
static void stream_answer(struct h2stream *s, int status)
{
    static _Thread_local char bodies[600][64];
    if (status < 100 || status >= 600)
        status = 500;
    char *body = bodies[status];
    if (!body[0])
        snprintf(body, 64, "%d %s\n", status, http1_reason(status));
    char st[4], len[8];
    snprintf(st, sizeof(st), "%d", status);
    int bl = snprintf(len, sizeof(len), "%zu", strlen(body));
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-length", (uint8_t *)len, 14, (size_t)bl, NGHTTP2_NV_FLAG_NONE},
    };
    s->reply = body;
    s->reply_len = (uint32_t)strlen(body);
    s->reply_sent = 0;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = reply_read};
    s->resp_submitted = true;
    if (nghttp2_submit_response(s->c->ng, s->id, nv, ARRAY_LEN(nv), &prd) != 0)
        stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    s->resp_complete = true;
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
static void stream_start(struct h2stream *s, bool end_stream)
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
        stream_reset(s, NGHTTP2_INTERNAL_ERROR);
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
        free(f);
        arena_free(s);
        return;
    }
    struct exchange *x = s->x = exchange_get(w, &h2_exchange_ops, s);
    if (!x) {
        answer_without_exchange(s, 503, "no_backend");
        free(f);
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
    free(f);
    arena_free(s);
    if (st != EX_WAIT) {
        struct exchange_result r;
        exchange_result(x, &r);
        exchange_obs_end(x, r.fail_status, "PR", "bad_request", c->ip);
        stream_put_exchange(s);
        stream_answer(s, r.fail_status ? r.fail_status : 500);
        return;
    }
    ready_add(s);
}

/* The request's trailers (a second header block, with END_STREAM): kept as fields for the
 * exchange (ops->trailers), pointing into the arena. */
static void stream_trailers(struct h2stream *s)
{
    uint32_t n;
    struct http_field *f = block_fields(s, &n);
    if (!f) {
        stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    free(s->req_tr);
    s->req_tr = f;
    s->nreq_tr = n;
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
            stream_start(s, end);
        } else if (s->trailers_phase) {
            stream_trailers(s);
            s->in_end = true;
            if (s->x)
                ready_add(s);
        }
        return 0;
    case NGHTTP2_DATA:
        if (frame->hd.length == 0 && !end)
            count_idle_frame(c, "empty DATA");
        if (s && end) {
            s->in_end = true;
            if (s->x)
                ready_add(s);
        }
        return 0;
    case NGHTTP2_PRIORITY:
        count_idle_frame(c, "PRIORITY");
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
    /* The connection's window comes back at once: a stream's unread body holds its own window,
     * never the other streams'. */
    nghttp2_session_consume_connection(ng, len);
    struct h2stream *s = nghttp2_session_get_stream_user_data(ng, id);
    if (!s || !s->x) { /* answered already, or no body expected: dropped */
        nghttp2_session_consume_stream(ng, id, len);
        return 0;
    }
    if (!chain_append(c, &s->in_head, &s->in_tail, data, len)) {
        stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return 0;
    }
    ready_add(s);
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
        stream_free(s); /* logs the abort, gives the exchange back (its upstream is cut) */
        return 0;
    }
    if (!s->pumping)
        stream_free(s);
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
    if (!chain_append(c, &c->out_head, &c->out_tail, data, n))
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
    if (!chain_append(c, &c->out_head, &c->out_tail, framehd, 9))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    size_t left = length;
    for (struct buf *b = s->out_head; b && left; b = b->next) {
        size_t k = MIN(left, (size_t)buf_len(b));
        if (!chain_append(c, &c->out_head, &c->out_tail, b->data + b->pos, k))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        left -= k;
    }
    chain_consume(c, &s->out_head, &s->out_tail, length);
    s->out_len -= (uint32_t)length;
    c->out_len += (uint32_t)(9 + length);
    s->progress_at = loop_now(c->w->loop);
    if (s->out_blocked && s->out_len < STREAM_OUT_MAX) {
        s->out_blocked = false;
        if (s->x)
            ready_add(s);
    }
    (void)frame;
    return 0;
}

/* The response body's data provider: what the output chain holds (sent without a copy through
 * nghttp2: on_send_data), else the end, else deferred until send() or body_end() brings more. */
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

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct h2conn *c = user;
    (void)ng;
    if (frame->hd.type == NGHTTP2_GOAWAY)
        c->goaway = true;
    return 0;
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
    struct h2stream *s = cl;
    if (!s->in_head) {
        *len = 0;
        return NULL;
    }
    *len = buf_len(s->in_head);
    return s->in_head->data + s->in_head->pos;
}

static void h2_consume(void *cl, uint32_t n)
{
    struct h2stream *s = cl;
    chain_consume(s->c, &s->in_head, &s->in_tail, n);
    if (!s->closed)
        nghttp2_session_consume_stream(s->c->ng, s->id, n);
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
    switch (h->id) {
    case HTTP_F_CONNECTION:
    case HTTP_F_KEEP_ALIVE:
    case HTTP_F_PROXY_CONNECTION:
    case HTTP_F_TRANSFER_ENCODING:
    case HTTP_F_UPGRADE:
    case HTTP_F_TE:
    case HTTP_F_HTTP2_SETTINGS:
        return true;
    default:
        return (h->flags & HTTP_FF_CONN_LISTED) != 0;
    }
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
            if (!rec_field(out, f->name, f->name_len, f->value, f->value_len))
                goto full;
            nf++;
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
        nghttp2_nv *nv = calloc((size_t)nf + 1, sizeof(*nv));
        if (!nv)
            return false;
        char status[4];
        snprintf(status, sizeof(status), "%03u", st % 1000);
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
        free(nv);
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
        if (!chain_append(s->c, &s->out_head, &s->out_tail, body->iov_base, take))
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
    ready_add(s);
    conn_pump(s->c);
}

static void on_task(struct loop_task *task);

static void h2_yield(void *cl)
{
    struct h2stream *s = cl;
    ready_add(s); /* the stream goes on after the worker's other connections */
    loop_yield(s->c->w->loop, &s->c->task, on_task);
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
};

/* ---------------------------------------------------------------- exchange outcomes -------- */

static void stream_finish(struct h2stream *s)
{
    struct exchange_result r;
    exchange_result(s->x, &r);
    exchange_obs_end(s->x, r.tunnel ? 200 : r.backend_status, "--", NULL, s->c->ip);
    exchange_finish(s->x);
    stream_put_exchange(s);
    s->progress_at = loop_now(s->c->w->loop);
    if (!s->in_end) /* the response ended first: the rest of the request body goes nowhere */
        stream_reset(s, NGHTTP2_NO_ERROR);
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
            stream_obs_abort(s);
            stream_put_exchange(s);
            stream_reset(s, NGHTTP2_INTERNAL_ERROR);
            return;
        }
        {
            const char *term = "PR", *err = "bad_request";
            switch (r.fail_status) {
            case 408:
                term = "cD";
                err = "body_timeout";
                break;
            case 502:
                term = r.relaying ? "SH" : "SC";
                err = r.relaying ? "invalid_response" : "connect_failed";
                break;
            case 503:
                term = "PC";
                err = "no_backend";
                break;
            case 504:
                term = "sH";
                err = "response_timeout";
                break;
            default:
                break;
            }
            if (r.end_term) {
                term = r.end_term;
                err = r.end_error;
            }
            exchange_obs_end(s->x, r.fail_status, term, err, s->c->ip);
            exchange_release_upstream(s->x, r.fail_outcome);
            stream_put_exchange(s);
            stream_answer(s, r.fail_status);
        }
        return;
    case EX_CLOSE:
        stream_obs_abort(s);
        stream_put_exchange(s);
        stream_reset(s, NGHTTP2_INTERNAL_ERROR);
        return;
    case EX_TUNNEL:
        exchange_tunnel_stream(s->x);
        ready_add(s);
        return;
    }
}

/* Pumps a stream's exchange (from the ready list, never inside an nghttp2 call). */
static void stream_pump(struct h2stream *s)
{
    if (!s->x)
        return;
    s->pumping = true;
    enum exchange_status st = exchange_pump(s->x);
    s->pumping = false;
    if (s->in_reset && s->closed) {
        stream_free(s);
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
            stream_free(s);
        } else if (st == EX_WAIT) {
            ready_add(s);
        } else {
            on_exchange_status(s, st);
            stream_arm(s);
        }
    } else {
        stream_reset(s, NGHTTP2_CANCEL);
    }
    conn_pump(c);
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
        stream_free(c->streams);
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
    chain_free(c, &c->out_head, &c->out_tail);
    worker_ctx_session_remove(w, &c->ws);
    c->task.cb = free_task;
    loop_defer(w->loop, &c->task, free_task);
    worker_ctx_session_closed(w);
}

/* Reads and feeds nghttp2 until the socket is drained or the budget is spent. */
static void conn_read_input(struct h2conn *c, size_t *budget)
{
    while (c->readable && !c->eof && !c->dead && *budget) {
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
        chain_consume(c, &c->out_head, &c->out_tail, (size_t)wr);
        c->out_len -= (uint32_t)wr;
    }
}

static void conn_arm(struct h2conn *c)
{
    if (c->nstreams == 0)
        loop_timer_set(c->w->loop, &c->timer, c->idle_since + c->cfg.idle_timeout_ms);
    else
        loop_timer_cancel(c->w->loop, &c->timer);
}

/* Everything the connection can do now: read and feed nghttp2, pump the ready streams, write. */
static void conn_pump(struct h2conn *c)
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
            stream_pump(s);
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

static void on_task(struct loop_task *task)
{
    struct h2conn *c = container_of(task, struct h2conn, task);
    if (!c->dead)
        conn_pump(c);
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
    conn_pump(c);
}

/* No stream for idleTimeout: GOAWAY, then close once it is out. */
static void on_conn_timeout(struct loop_timer *t)
{
    struct h2conn *c = container_of(t, struct h2conn, timer);
    if (c->nstreams || c->dead)
        return;
    if (c->goaway) {
        conn_close(c);
        return;
    }
    nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
    conn_pump(c);
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
    conn_pump(c);
}

static void h2_close(struct worker_session *ws)
{
    struct h2conn *c = conn_of(ws);
    for (struct h2stream *s = c->streams; s; s = s->next)
        if (s->x)
            exchange_note_shutdown(s->x);
    conn_close(c);
}

static int h2_cut_retired(struct worker_session *ws)
{
    struct h2conn *c = conn_of(ws);
    int n = 0;
    for (struct h2stream *s = c->streams; s; s = s->next) {
        if (s->x && exchange_cut_retired(s->x)) {
            stream_obs_abort(s);
            stream_put_exchange(s);
            stream_reset(s, NGHTTP2_CANCEL);
            n++;
        }
    }
    if (n)
        conn_pump(c);
    return n;
}

static const struct worker_session_ops h2_session_ops = {
    .drain = h2_drain,
    .close = h2_close,
    .cut_retired = h2_cut_retired,
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
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
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
    int rv = nghttp2_session_server_new2(&c->ng, callbacks_, c, opt);
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
    if (session_new(c) != 0 || loop_io_add(w->loop, &c->io) != 0) {
        conn_close(c);
        return;
    }
    sock_nodelay(c->io.fd);
    conn_pump(c);
    return;
fail:
    tls_free(t->ssl, false);
    free(t->subject);
    config_tls_unref(t->tls);
    buf_put(&w->bufs, t->in);
    close(t->fd);
    worker_ctx_session_closed(w);
}
