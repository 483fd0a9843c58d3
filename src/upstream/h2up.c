/* h2up — see h2up.h.
 *
 * Ownership: a connection belongs to its slot's list (idle->h2) from its start until it is
 * closed and has no stream left; a stream belongs to its exchange until h2up_stream_close. A
 * connection that fails marks its streams failed and leaves the list at once (no new stream
 * goes to it); it is freed when its last stream is closed by its owner. Callbacks into owners
 * run only from dispatch(), after nghttp2 returned, popping one dirty stream at a time, so an
 * owner may close its stream (or others) from its callback. */
#include "upstream/h2up.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/mcache.h"
#include "base/util.h"
#include "config/config.h"
#include "net/conn.h"
#include "net/tls.h"
#include "upstream/upstream.h"

#define STREAM_WINDOW (256 * 1024)  /* per-stream receive window */
#define CONN_WINDOW (4 * 1024 * 1024) /* the connection's */

struct h2up_conn {
    struct h2up_conn *next;      /* in idle->h2 while listed */
    struct upstream_idle *idle;
    struct upstream_pool *pool;
    struct upstream_conn *up;    /* NULL once closed */
    /* Not the config_backend: a connection outlives the generation that opened it. Its TLS
     * client is the newest stream's (whose exchange pins its generation) until the handshake is
     * done, and a connection still opening with no stream left is closed. */
    char name[80];
    struct tls_client *tls;
    nghttp2_session *ng;
    uint32_t streams;            /* owned streams (h2up_stream_close not yet called) */
    uint32_t open;               /* streams nghttp2 has not closed */
    uint32_t max_streams;        /* maxStreamsPerConnection */
    bool listed, ready, dead, goaway, in_dispatch;
    bool pinned; /* a test's: freed by h2up_test_free only */
    struct h2up_stream *dirty;   /* streams whose owner must hear of a change */
    struct h2up_stream *owned;   /* streams not yet closed by their owner */
    struct loop_task more;       /* input left after a read budget: read again */
    struct loop_task flushq;     /* frames queued by the streams: written after the I/O batch */
    nghttp2_mem mem;             /* nghttp2 allocates from the worker's mcache */
    struct loop_timer idle_timer; /* no stream since upstreamIdleTimeout: GOAWAY and close */
    uint8_t *out;                /* frames serialised, not yet written */
    size_t out_len, out_off, out_cap;
    /* sendProxyProtocol: the client it speaks for (family 0: none) and its PROXY header, written
     * once connected, before anything else */
    struct upstream_pp pp;
    uint16_t pp_len;
    uint8_t pp_hdr[H2UP_PP_MAX];
};

static void conn_fail(struct h2up_conn *c, const char *why);

/* Its slot was closed for good (a removed backend, worker teardown) and it carries nothing. */
static bool idle_closed(const struct h2up_conn *c)
{
    return c->idle->closed && c->streams == 0;
}
static void conn_flush(struct h2up_conn *c);
static void conn_flush_soon(struct h2up_conn *c);

static void counts_add(struct upstream_idle *idle, int conns, int streams)
{
    atomic_fetch_add_explicit(&idle->h2_conns, (uint32_t)conns, memory_order_relaxed);
    atomic_fetch_add_explicit(&idle->h2_streams, (uint32_t)streams, memory_order_relaxed);
}

static void mark(struct h2up_stream *s)
{
    if (!s || s->dirty)
        return;
    s->dirty = true;
    s->dnext = s->c->dirty;
    s->c->dirty = s;
}

static void unlist(struct h2up_conn *c)
{
    if (!c->listed)
        return;
    for (struct h2up_conn **p = &c->idle->h2; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    c->listed = false;
    counts_add(c->idle, -1, 0);
}

/* Frees a connection that is closed and has no stream left. */
static void conn_maybe_free(struct h2up_conn *c)
{
    if (c->up || c->streams || c->in_dispatch || c->more.queued || c->flushq.queued || c->pinned)
        return;
    unlist(c);
    nghttp2_session_del(c->ng);
    free(c->out);
    free(c);
}

static void conn_close(struct h2up_conn *c)
{
    if (c->pool)
        loop_timer_cancel(upstream_pool_loop(c->pool), &c->idle_timer);
    counts_add(c->idle, 0, -(int)c->open); /* nghttp2 will not close them now */
    c->open = 0;
    if (c->up) {
        upstream_release(c->up, false);
        c->up = NULL;
    }
    c->dead = true;
    unlist(c);
}

/* The owners of changed streams, one at a time (see the top comment). */
static void dispatch(struct h2up_conn *c)
{
    c->in_dispatch = true;
    while (c->dirty) {
        struct h2up_stream *s = c->dirty;
        c->dirty = s->dnext;
        s->dirty = false;
        s->dnext = NULL;
        if (s->on_event)
            s->on_event(s->owner);
    }
    c->in_dispatch = false;
    conn_maybe_free(c);
}

/* ---------------------------------------------------------------- nghttp2 callbacks -------- */

static struct h2up_stream *stream_of(nghttp2_session *ng, int32_t id)
{
    return nghttp2_session_get_stream_user_data(ng, id);
}

static struct h2up_stream *stream_of(nghttp2_session *ng, int32_t id);

static nghttp2_nv nv_of(const struct http_field *f);

/* The request's trailers, from rq_read once the body's last byte is taken (nghttp2 sends them
 * after that DATA, which then does not end the stream). */
static int submit_trailers(nghttp2_session *ng, struct h2up_stream *s)
{
    nghttp2_nv nv[H2UP_MAX_FIELDS];
    for (size_t i = 0; i < s->nrqt; i++)
        nv[i] = nv_of(&s->rqt[i]);
    return nghttp2_submit_trailer(ng, s->id, nv, s->nrqt);
}

static ssize_t rq_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)src;
    (void)user;
    struct h2up_stream *s = stream_of(ng, id); /* not src->ptr: it may be gone */
    if (!s) { /* its owner went: end it (a reset follows) */
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    size_t n = MIN(len, s->rq_len - s->rq_off);
    if (n)
        memcpy(buf, s->rq + s->rq_off, n);
    s->rq_off += n;
    if (!s->replayable && s->rq_off == s->rq_len)
        s->rq_off = s->rq_len = 0; /* nothing to keep: the buffer starts again */
    if (s->rq_end && s->rq_off == s->rq_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->nrqt && submit_trailers(ng, s) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* the trailers' HEADERS ends it */
        return (ssize_t)n;
    }
    if (n == 0) {
        s->rq_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    mark(s); /* room for more of the body */
    return (ssize_t)n;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)ng;
    (void)user;
    struct h2up_stream *s = stream_of(ng, f->hd.stream_id);
    if (s && s->head)
        s->in_trailers = true;
    return 0;
}

/* n bytes for a field's name and value: in the stream while they fit, then in a block allocated
 * once (fields already taken keep their place); NULL beyond H2UP_ARENA in all. */
static char *arena_take(struct h2up_stream *s, size_t n)
{
    if (n > H2UP_ARENA - s->arena_len)
        return NULL;
    char *p;
    if (!s->big && n <= sizeof(s->small) - s->small_len) {
        p = s->small + s->small_len;
        s->small_len += n;
    } else {
        if (!s->big && !(s->big = malloc(H2UP_ARENA)))
            return NULL;
        p = s->big + s->big_len;
        s->big_len += n;
    }
    s->arena_len += n;
    return p;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    struct h2up_stream *s = stream_of(ng, f->hd.stream_id);
    if (!s || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = vlen == 3 ? (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0') : 0;
        if (st >= 100 && st < 200) { /* an interim head: the final one follows */
            s->continued |= st == 100 && !s->head; /* for a client's Expect: 100-continue */
            return 0;
        }
        s->status = st;
        return 0;
    }
    if (nlen && name[0] == ':')
        return 0;
    size_t *n = s->in_trailers ? &s->nt : &s->nf;
    struct http_field *fs = s->in_trailers ? s->t : s->f;
    if (s->status == 0 && !s->in_trailers)
        return 0; /* fields of an interim head */
    char *p = *n == H2UP_MAX_FIELDS ? NULL : arena_take(s, nlen + vlen);
    if (!p) {
        s->too_large = true; /* (or out of memory: the same end) */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    memcpy(p, name, nlen);
    memcpy(p + nlen, value, vlen);
    fs[*n] = (struct http_field){.name = p,
                                 .value = p + nlen,
                                 .name_len = (uint32_t)nlen,
                                 .value_len = (uint32_t)vlen};
    fs[*n].id = (uint16_t)http_field_id_of(p, nlen);
    (*n)++;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2up_conn *c = user;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
        unlist(c); /* no new stream goes to it; the streams above last-stream-id are refused */
        return 0;
    }
    struct h2up_stream *s = f->hd.stream_id ? stream_of(ng, f->hd.stream_id) : NULL;
    if (!s)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && s->status && !s->in_trailers)
        s->head = true;
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (!s->head) { /* END_STREAM on an interim head: not a response */
            s->failed = true;
        }
        s->ended = true;
    }
    mark(s);
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user)
{
    (void)flags;
    (void)user;
    struct h2up_stream *s = stream_of(ng, id);
    if (!s) {
        nghttp2_session_consume(ng, id, len); /* its owner went: give the window back */
        return 0;
    }
    if (s->data_off && s->data_off == s->data_len)
        s->data_off = s->data_len = 0;
    if (s->data_len + len > s->data_cap) {
        if (s->data_off) {
            memmove(s->data, s->data + s->data_off, s->data_len - s->data_off);
            s->data_len -= s->data_off;
            s->data_off = 0;
        }
        if (s->data_len + len > s->data_cap) {
            size_t cap = MAX(s->data_cap * 2, s->data_len + len);
            uint8_t *d = realloc(s->data, cap);
            if (!d)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
            s->data = d;
            s->data_cap = cap;
        }
    }
    memcpy(s->data + s->data_len, data, len);
    s->data_len += len;
    mark(s);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    struct h2up_conn *c = user;
    c->open--;
    counts_add(c->idle, 0, -1);
    struct h2up_stream *s = stream_of(ng, id);
    if (!s)
        return 0;
    s->closed = true;
    if (!s->ended || code != NGHTTP2_NO_ERROR) {
        s->failed = true;
        s->err = code;
        s->refused = code == NGHTTP2_REFUSED_STREAM && !s->status;
    }
    mark(s);
    return 0;
}

/* ---------------------------------------------------------------- I/O ---------------------- */

/* What nghttp2 has to send, appended to out. 0 or -1. */
static int serialise(struct h2up_conn *c)
{
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->ng, &p);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (c->out_off && c->out_off == c->out_len)
            c->out_off = c->out_len = 0;
        if (c->out_len + (size_t)n > c->out_cap) {
            size_t cap = MAX(MAX(c->out_cap * 2, 16384), c->out_len + (size_t)n);
            uint8_t *o = realloc(c->out, cap);
            if (!o)
                return -1;
            c->out = o;
            c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, p, (size_t)n);
        c->out_len += (size_t)n;
    }
}

/* Serialises and writes what it can; the rest waits for EPOLLOUT. */
static void conn_flush(struct h2up_conn *c)
{
    if (!c->up || !c->ready)
        return;
    if (serialise(c) != 0) {
        conn_fail(c, "out of memory");
        return;
    }
    while (c->out_off < c->out_len) {
        struct iovec iov = {c->out + c->out_off, c->out_len - c->out_off};
        ssize_t n = conn_writev(c->up->io.fd, c->up->ssl, &iov, 1, &c->up->writable,
                                &c->up->readable);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            conn_fail(c, strerror((int)-n));
            return;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
}

static void on_flush(struct loop_task *t)
{
    struct h2up_conn *c = container_of(t, struct h2up_conn, flushq);
    conn_flush(c);
    dispatch(c); /* a failed write fails the streams; frees a connection left with none */
}

/* What the streams queued goes out after the current batch of I/O callbacks, in one write for
 * all of them: many exchanges (one per client stream) feed one connection, and a write each
 * would cost a system call (and a TCP segment) per request. */
static void conn_flush_soon(struct h2up_conn *c)
{
    if (c->up && c->ready && !c->flushq.queued)
        loop_defer(upstream_pool_loop(c->pool), &c->flushq, on_flush);
}

/* The connection is lost: every stream fails (refused when nothing of it was sent: the backend
 * cannot have processed it). */
static void conn_fail(struct h2up_conn *c, const char *why)
{
    if (c->dead)
        return;
    if (c->owned || !c->ready) /* an idle connection the backend closed is no news */
        log_warn("backend %s: HTTP/2 connection lost: %s", c->name, why);
    for (struct h2up_stream *s = c->owned; s; s = s->next) {
        if (!s->closed) {
            s->failed = true;
            s->connect_failed = !c->ready;
            s->closed = true;
            if (s->id > 0)
                nghttp2_session_set_stream_user_data(c->ng, s->id, NULL);
        }
        mark(s);
    }
    conn_close(c);
}

static void on_up_event(struct upstream_conn *up, uint32_t events);

static void on_more(struct loop_task *t)
{
    struct h2up_conn *c = container_of(t, struct h2up_conn, more);
    if (c->up)
        on_up_event(c->up, EPOLLIN);
    else
        conn_maybe_free(c);
}

static void on_up_event(struct upstream_conn *up, uint32_t events)
{
    struct h2up_conn *c = up->owner;
    if (!c->ready) {
        if (!up->connected) {
            if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                return;
            int rc = upstream_connect_result(up);
            if (rc != 0) {
                conn_fail(c, strerror(-rc));
                dispatch(c);
                return;
            }
        }
        if (c->pp_len && !up->pp_sent &&
            upstream_send_proxy_header(up, c->pp_hdr, c->pp_len, &c->pp) != 0) {
            conn_fail(c, "cannot send the PROXY protocol header");
            dispatch(c);
            return;
        }
        if (c->tls) {
            char err[256];
            int rc = upstream_tls_step(up, c->tls, err, sizeof(err));
            if (rc == -EAGAIN)
                return;
            if (rc < 0) {
                conn_fail(c, err);
                dispatch(c);
                return;
            }
            if (!tls_alpn_h2(up->ssl)) {
                conn_fail(c, "the backend did not agree to HTTP/2 (ALPN)");
                dispatch(c);
                return;
            }
        }
        c->ready = true;
        for (struct h2up_stream *s = c->owned; s; s = s->next)
            mark(s); /* the connect phase is over for its streams */
    }
    if (c->up && (c->up->readable || (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))) {
        uint8_t buf[16384];
        for (int rounds = 0; c->up; rounds++) {
            if (rounds == 64) { /* LOOP_IO_BUDGET-like: the rest after the other events */
                if (!c->more.queued)
                    loop_defer(upstream_pool_loop(c->pool), &c->more, on_more);
                break;
            }
            ssize_t n = conn_recv(c->up->io.fd, c->up->ssl, buf, sizeof(buf));
            if (n == -EAGAIN)
                break;
            if (n <= 0) {
                conn_fail(c, n == 0 ? "closed by the backend" : strerror((int)-n));
                break;
            }
            ssize_t r = nghttp2_session_mem_recv(c->ng, buf, (size_t)n);
            if (r < 0) {
                conn_fail(c, nghttp2_strerror((int)r));
                break;
            }
        }
    }
    conn_flush(c);
    if (c->up && c->goaway && c->open == 0 && c->streams == 0)
        conn_close(c);
    dispatch(c);
}

/* ---------------------------------------------------------------- connections -------------- */

/* upstreamIdleTimeout passed without a stream: the connection says GOAWAY (NO_ERROR) and
 * closes, as a pooled idle HTTP/1 connection would close. */
static void on_idle(struct loop_timer *t)
{
    struct h2up_conn *c = container_of(t, struct h2up_conn, idle_timer);
    if (c->streams || !c->up)
        return;
    nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
    conn_flush(c); /* a connection without a stream has room in its socket for it */
    conn_close(c);
    conn_maybe_free(c);
}

/* Its last stream went: the idle deadline starts (a new stream cancels it: stream_new). */
static void idle_arm(struct h2up_conn *c)
{
    if (c->up && c->ready && c->pool && c->streams == 0)
        loop_timer_after(upstream_pool_loop(c->pool), &c->idle_timer,
                         upstream_pool_idle_timeout(c->pool));
}

static void *ng_malloc(size_t n, void *user)
{
    struct h2up_conn *c = user;
    return mcache_alloc(upstream_pool_mcache(c->pool), n);
}

static void *ng_calloc(size_t k, size_t n, void *user)
{
    struct h2up_conn *c = user;
    return mcache_calloc(upstream_pool_mcache(c->pool), k, n);
}

static void ng_free(void *p, void *user)
{
    struct h2up_conn *c = user;
    mcache_free(upstream_pool_mcache(c->pool), p);
}

static void *ng_realloc(void *p, size_t n, void *user)
{
    struct h2up_conn *c = user;
    return mcache_realloc(upstream_pool_mcache(c->pool), p, n);
}

/* A connection's nghttp2 client session, SETTINGS queued, not yet connected or listed (the
 * fuzz target drives it without a socket: pool NULL). NULL when out of memory. */
static struct h2up_conn *conn_session(struct upstream_pool *pool, struct upstream_idle *idle,
                                      const struct config_backend *cb)
{
    struct h2up_conn *c = calloc(1, sizeof(*c));
    nghttp2_session_callbacks *cbs = NULL;
    if (!c || nghttp2_session_callbacks_new(&cbs) != 0) {
        free(c);
        return NULL;
    }
    c->pool = pool;
    c->mem = (nghttp2_mem){c, ng_malloc, ng_free, ng_calloc, ng_realloc};
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_option *opt = NULL;
    int rc = nghttp2_option_new(&opt);
    if (rc == 0) {
        nghttp2_option_set_no_auto_window_update(opt, 1); /* the window comes back as taken */
        nghttp2_option_set_peer_max_concurrent_streams(opt, 100); /* until its SETTINGS */
        nghttp2_option_set_no_closed_streams(opt, 1); /* no priority tree to keep them for */
        rc = nghttp2_session_client_new3(&c->ng, cbs, c, opt, &c->mem);
        nghttp2_option_del(opt);
    }
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2UP_ARENA},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (rc != 0 || nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv)) != 0 ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
        nghttp2_session_del(c->ng);
        free(c);
        return NULL;
    }
    c->idle = idle;
    loop_timer_init(&c->idle_timer, on_idle);
    snprintf(c->name, sizeof(c->name), "%s", cb->name ? cb->name : "");
    c->tls = cb->tls_client;
    c->max_streams = cb->up.max_streams ? cb->up.max_streams : 100;
    return c;
}

static struct h2up_conn *conn_new(struct upstream_pool *pool, struct upstream_idle *idle,
                                  const struct config_backend *cb, const struct h2up_proxy *pp,
                                  int *err)
{
    if (pp && pp->len > H2UP_PP_MAX) {
        *err = -E2BIG;
        return NULL;
    }
    struct h2up_conn *c = conn_session(pool, idle, cb);
    if (!c) {
        *err = -ENOMEM;
        return NULL;
    }
    if (pp) {
        c->pp = pp->key;
        c->pp_len = (uint16_t)pp->len;
        memcpy(c->pp_hdr, pp->hdr, pp->len);
    }
    c->up = upstream_connect(pool, idle, (const struct sockaddr *)&cb->addr, cb->addrlen, c,
                             on_up_event, err);
    if (!c->up) {
        nghttp2_session_del(c->ng);
        free(c);
        return NULL;
    }
    c->up->alpn_h2 = true;
    c->next = idle->h2;
    idle->h2 = c;
    c->listed = true;
    counts_add(idle, 1, 0);
    return c;
}

static struct h2up_stream *stream_new(struct h2up_conn *c, const struct http_field *nv, size_t n,
                                      bool body, const uint8_t *replay, size_t replay_len,
                                      bool replay_end, void *owner, h2up_event_cb on_event,
                                      int *err);

/* Room for one more stream: the smaller of maxStreamsPerConnection and the server's limit. */
static bool has_room(const struct h2up_conn *c)
{
    uint32_t peer =
        nghttp2_session_get_remote_settings(c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return !c->dead && !c->goaway && c->open < MIN(c->max_streams, peer) &&
           nghttp2_session_check_request_allowed(c->ng);
}

static nghttp2_nv nv_of(const struct http_field *f)
{
    return (nghttp2_nv){(uint8_t *)f->name, (uint8_t *)f->value, f->name_len, f->value_len,
                        NGHTTP2_NV_FLAG_NONE};
}

/* Whether c speaks for the client pp names (none: a connection without a PROXY header). */
static bool same_client(const struct h2up_conn *c, const struct h2up_proxy *pp)
{
    static const struct upstream_pp none;
    const struct upstream_pp *k = pp ? &pp->key : &none;
    return c->pp.family == k->family &&
           memcmp(c->pp.addr, k->addr, k->family == AF_INET6 ? 16 : 4) == 0;
}

struct h2up_stream *h2up_open(struct upstream_pool *pool, struct upstream_idle *idle,
                              const struct config_backend *cb, const struct h2up_proxy *pp,
                              const struct http_field *nv, size_t n, bool body,
                              const uint8_t *replay, size_t replay_len, bool replay_end,
                              void *owner, h2up_event_cb on_event, bool *fresh, int *err)
{
    if (idle->closed) {
        *err = -ESHUTDOWN;
        return NULL;
    }
    struct h2up_conn *c = idle->h2;
    while (c && (!has_room(c) || !same_client(c, pp)))
        c = c->next;
    *fresh = c == NULL;
    if (!c && !(c = conn_new(pool, idle, cb, pp, err)))
        return NULL;
    if (!c->ready)
        c->tls = cb->tls_client; /* of the generation this stream's exchange pins */
    struct h2up_stream *s =
        stream_new(c, nv, n, body, replay, replay_len, replay_end, owner, on_event, err);
    if (s)
        conn_flush_soon(c);
    return s;
}

/* A stream on c: its request submitted (not yet serialised). NULL with *err set. */
static struct h2up_stream *stream_new(struct h2up_conn *c, const struct http_field *nv, size_t n,
                                      bool body, const uint8_t *replay, size_t replay_len,
                                      bool replay_end, void *owner, h2up_event_cb on_event,
                                      int *err)
{
    struct mcache *mc = upstream_pool_mcache(c->pool);
    struct h2up_stream *s = mcache_alloc(mc, sizeof(*s));
    nghttp2_nv stack[H2UP_MAX_FIELDS + 8];
    if (s)
        memset(s, 0, offsetof(struct h2up_stream, f)); /* the field arrays need no zeroes */
    if (!s || n > ARRAY_LEN(stack) || (replay_len && !(s->rq = malloc(replay_len)))) {
        mcache_free(mc, s);
        *err = -ENOMEM;
        conn_maybe_free(c);
        return NULL;
    }
    if (replay_len) {
        memcpy(s->rq, replay, replay_len);
        s->rq_len = s->rq_cap = replay_len;
    }
    s->rq_end = replay_end;
    s->replayable = true;
    s->c = c;
    s->owner = owner;
    s->on_event = on_event;
    for (size_t i = 0; i < n; i++)
        stack[i] = nv_of(&nv[i]);
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = rq_read};
    s->id = nghttp2_submit_request(c->ng, NULL, stack, n, body ? &prd : NULL, s);
    if (s->id < 0) {
        free(s->rq);
        mcache_free(mc, s);
        *err = -EPROTO;
        conn_maybe_free(c);
        return NULL;
    }
    c->streams++;
    c->open++;
    counts_add(c->idle, 0, 1);
    if (c->pool)
        loop_timer_cancel(upstream_pool_loop(c->pool), &c->idle_timer); /* not idle any more */
    s->next = c->owned;
    if (c->owned)
        c->owned->prev = s;
    c->owned = s;
    return s;
}

bool h2up_stream_ready(const struct h2up_stream *s)
{
    return s->c->ready;
}

size_t h2up_stream_write(struct h2up_stream *s, const void *p, size_t n)
{
    if (s->closed || s->rq_end)
        return n; /* nowhere to go: dropped (the response or the failure says the rest) */
    if (s->rq_off == s->rq_len && !s->replayable)
        s->rq_off = s->rq_len = 0;
    if (s->replayable && s->rq_len + n > H2UP_REQ_CAP) {
        s->replayable = false; /* too much to keep: what went is forgotten */
        if (s->rq_len > s->rq_off)
            memmove(s->rq, s->rq + s->rq_off, s->rq_len - s->rq_off);
        s->rq_len -= s->rq_off;
        s->rq_off = 0;
    }
    if (s->rq_len + n > s->rq_cap && s->rq_cap < H2UP_REQ_CAP) {
        /* sized to what comes (a unary call's message is small), up to H2UP_REQ_CAP */
        size_t cap = MAX((size_t)H2UP_REQ_MIN, s->rq_cap * 2);
        while (cap < s->rq_len + n && cap < H2UP_REQ_CAP)
            cap *= 2;
        uint8_t *rq = realloc(s->rq, MIN(cap, (size_t)H2UP_REQ_CAP));
        if (!rq)
            return 0;
        s->rq = rq;
        s->rq_cap = MIN(cap, (size_t)H2UP_REQ_CAP);
    }
    size_t k = MIN(n, s->rq_cap - s->rq_len);
    if (k)
        memcpy(s->rq + s->rq_len, p, k);
    s->rq_len += k;
    if (k && s->rq_deferred) {
        s->rq_deferred = false;
        nghttp2_session_resume_data(s->c->ng, s->id);
    }
    if (k)
        conn_flush_soon(s->c);
    return k;
}

void h2up_stream_end(struct h2up_stream *s)
{
    if (s->rq_end)
        return;
    s->rq_end = true;
    if (s->rq_deferred && !s->closed) {
        s->rq_deferred = false;
        nghttp2_session_resume_data(s->c->ng, s->id);
    }
    conn_flush_soon(s->c);
}

int h2up_stream_end_trailers(struct h2up_stream *s, const struct http_field *t, size_t n)
{
    size_t bytes = n * sizeof(*t);
    for (size_t i = 0; i < n; i++)
        bytes += t[i].name_len + t[i].value_len;
    if (s->rq_end || n == 0) {
        h2up_stream_end(s);
        return 0;
    }
    if (n > H2UP_MAX_FIELDS)
        return -E2BIG;
    if (!(s->rqt = malloc(bytes)))
        return -ENOMEM;
    char *p = (char *)(s->rqt + n);
    for (size_t i = 0; i < n; i++) {
        s->rqt[i] = t[i];
        for (uint32_t j = 0; j < t[i].name_len; j++) /* HTTP/2 field names are lower case */
            p[j] = (char)(t[i].name[j] >= 'A' && t[i].name[j] <= 'Z' ? t[i].name[j] | 0x20
                                                                      : t[i].name[j]);
        s->rqt[i].name = p;
        p += t[i].name_len;
        memcpy(p, t[i].value, t[i].value_len);
        s->rqt[i].value = p;
        p += t[i].value_len;
    }
    s->nrqt = n;
    h2up_stream_end(s);
    return 0;
}

size_t h2up_stream_data(struct h2up_stream *s, const uint8_t **p)
{
    if (!s->data) { /* no byte came yet */
        *p = NULL;
        return 0;
    }
    *p = s->data + s->data_off;
    return s->data_len - s->data_off;
}

void h2up_stream_consume(struct h2up_stream *s, size_t n)
{
    s->data_off += n;
    if (!s->closed && s->c->up) {
        nghttp2_session_consume(s->c->ng, s->id, n);
        conn_flush_soon(s->c);
    }
}

void h2up_stream_close(struct h2up_stream *s)
{
    struct h2up_conn *c = s->c;
    if (s->dirty) { /* off the dirty list */
        for (struct h2up_stream **p = &c->dirty; *p; p = &(*p)->dnext)
            if (*p == s) {
                *p = s->dnext;
                break;
            }
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        c->owned = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->id > 0) {
        /* nghttp2 forgets it now (its later callbacks for the id find nothing) */
        nghttp2_session_set_stream_user_data(c->ng, s->id, NULL);
        if (!s->closed && !c->dead) {
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
            conn_flush_soon(c);
        }
    }
    free(s->big);
    free(s->rq);
    free(s->rqt);
    free(s->data);
    mcache_free(upstream_pool_mcache(c->pool), s);
    c->streams--;
    if (c->up && c->goaway && c->open == 0 && c->streams == 0)
        conn_close(c);
    if (c->up && !c->ready && c->streams == 0)
        conn_close(c); /* still opening and nobody waits for it */
    if (c->up && idle_closed(c))
        conn_close(c);
    idle_arm(c);
    conn_maybe_free(c);
}

void h2up_close_idle(struct upstream_idle *idle, bool forever)
{
    struct h2up_conn **p = &idle->h2;
    while (*p) {
        struct h2up_conn *c = *p;
        if (c->streams == 0 || forever) {
            *p = c->next;
            c->listed = false;
            counts_add(idle, -1, 0);
            if (c->streams == 0) {
                conn_close(c);
                conn_maybe_free(c);
            }
            continue;
        }
        p = &c->next;
    }
}

void h2up_counts(const struct upstream_idle *idle, uint32_t *conns, uint32_t *streams)
{
    *conns = atomic_load_explicit(&idle->h2_conns, memory_order_relaxed);
    *streams = atomic_load_explicit(&idle->h2_streams, memory_order_relaxed);
}

/* ---------------------------------------------------------------- tests -------------------- */

struct h2up_conn *h2up_test_conn(struct upstream_idle *idle, const struct config_backend *cb)
{
    struct h2up_conn *c = conn_session(NULL, idle, cb);
    if (c)
        c->ready = c->pinned = true;
    return c;
}

struct h2up_stream *h2up_test_stream(struct h2up_conn *c, const struct http_field *nv, size_t n,
                                     bool body, void *owner, h2up_event_cb on_event)
{
    int err;
    struct h2up_stream *s = stream_new(c, nv, n, body, NULL, 0, false, owner, on_event, &err);
    if (s && serialise(c) == 0) /* its HEADERS "went": the backend may answer it */
        c->out_off = c->out_len = 0;
    return s;
}

int h2up_test_feed(struct h2up_conn *c, const uint8_t *p, size_t n)
{
    int rc = 0;
    if (!c->dead) {
        ssize_t r = nghttp2_session_mem_recv(c->ng, p, n);
        if (r < 0) {
            conn_fail(c, nghttp2_strerror((int)r));
            rc = -1;
        } else if (serialise(c) == 0) {
            c->out_off = c->out_len = 0; /* no socket: dropped */
        }
    }
    dispatch(c);
    return rc;
}

bool h2up_test_room(const struct h2up_conn *c)
{
    return has_room(c);
}

void h2up_test_free(struct h2up_conn *c)
{
    counts_add(c->idle, 0, -(int)c->open);
    nghttp2_session_del(c->ng);
    free(c->out);
    free(c);
}
