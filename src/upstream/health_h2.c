/* health_h2 — see health_h2.h. */
#include "upstream/health_h2.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "http/grpc.h"
#include "base/util.h"

#define MSG_MAX 256     /* a HealthCheckResponse is a few bytes; more is not one */
#define REQ_MAX 512     /* the framed HealthCheckRequest (service at most 256 bytes) */
#define DETAIL_MAX 96   /* grpc-message bytes kept for the log line */

struct health_h2 {
    nghttp2_session *ng;
    int32_t id;
    bool grpc;           /* a gRPC call; else a GET judged by its final head */
    bool final_head;     /* (GET) the final head came: status says it all */
    uint8_t req[REQ_MAX];
    size_t req_len, req_sent;
    uint8_t msg[MSG_MAX]; /* the response's DATA */
    size_t msg_len;
    bool msg_overflow;
    int status;          /* :status, 0 until it came */
    int grpc_status;     /* grpc-status, -1 until it came */
    char detail[DETAIL_MAX];
    bool closed;         /* the stream ended (or was reset: reset_code) */
    uint32_t reset_code;
    bool reset;
    uint8_t *out;        /* what the last mem_send produced */
    size_t out_len, out_cap;
};

static ssize_t req_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                        uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)ng;
    (void)id;
    (void)src;
    struct health_h2 *g = user;
    size_t n = MIN(len, g->req_len - g->req_sent);
    memcpy(buf, g->req + g->req_sent, n);
    g->req_sent += n;
    if (g->req_sent == g->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)ng;
    (void)flags;
    struct health_h2 *g = user;
    if (f->hd.stream_id != g->id)
        return 0;
    char v[16];
    if (nlen == 7 && memcmp(name, ":status", 7) == 0 && vlen == 3) {
        g->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0 && vlen && vlen < sizeof(v)) {
        memcpy(v, value, vlen);
        v[vlen] = '\0';
        char *end;
        long s = strtol(v, &end, 10);
        g->grpc_status = *end || s < 0 || s > 1000 ? 2 : (int)s;
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        size_t k = MIN(vlen, sizeof(g->detail) - 1);
        for (size_t i = 0; i < k; i++) /* visible ASCII only in a log line */
            g->detail[i] = value[i] >= 0x20 && value[i] < 0x7f ? (char)value[i] : '?';
        g->detail[k] = '\0';
    }
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user)
{
    (void)ng;
    (void)flags;
    struct health_h2 *g = user;
    if (id != g->id)
        return 0;
    if (len > sizeof(g->msg) - g->msg_len) {
        g->msg_overflow = true;
        return 0;
    }
    memcpy(g->msg + g->msg_len, data, len);
    g->msg_len += len;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)ng;
    struct health_h2 *g = user;
    if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == g->id && g->status >= 200)
        g->final_head = true; /* (an interim 1xx head is followed by the final one) */
    return 0;
}

static int on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    (void)ng;
    struct health_h2 *g = user;
    if (id == g->id) {
        g->closed = true;
        g->reset = code != NGHTTP2_NO_ERROR;
        g->reset_code = code;
    }
    return 0;
}

/* Everything nghttp2 wants to send, into g->out. 0 or -1. */
static int drain(struct health_h2 *g)
{
    g->out_len = 0;
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(g->ng, &p);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (g->out_len + (size_t)n > g->out_cap) {
            size_t cap = MAX(g->out_cap * 2, g->out_len + (size_t)n);
            uint8_t *o = realloc(g->out, cap);
            if (!o)
                return -1;
            g->out = o;
            g->out_cap = cap;
        }
        memcpy(g->out + g->out_len, p, (size_t)n);
        g->out_len += (size_t)n;
    }
}

static nghttp2_nv nv(const char *name, const char *value, size_t vlen)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), vlen,
                        NGHTTP2_NV_FLAG_NONE};
}

struct health_h2 *health_h2_new(const struct config_backend *cb, const uint8_t **out,
                                    size_t *len)
{
    struct health_h2 *g = calloc(1, sizeof(*g));
    nghttp2_session_callbacks *cbs = NULL;
    if (!g || nghttp2_session_callbacks_new(&cbs) != 0)
        goto fail;
    g->grpc_status = -1;
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    int rc = nghttp2_session_client_new(&g->ng, cbs, g);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0)
        goto fail;
    g->grpc = cb->up.health_check == CONFIG_HC_GRPC;
    if (g->grpc) {
        const char *svc = cb->up.health_check_service ? cb->up.health_check_service : "";
        g->req_len = grpc_health_request(svc, strlen(svc), g->req, sizeof(g->req));
        if (!g->req_len)
            goto fail;
    }
    /* :authority as a client would write it: host, and the port unless the scheme's default */
    const char *host = cb->host ? cb->host : cb->name;
    bool v6 = host && strchr(host, ':');
    char auth[300];
    int al = cb->host ? snprintf(auth, sizeof(auth), "%s%s%s:%u", v6 ? "[" : "", host,
                                 v6 ? "]" : "", (unsigned)cb->port)
                      : snprintf(auth, sizeof(auth), "%s", host ? host : "");
    if (al < 0 || (size_t)al >= sizeof(auth))
        goto fail;
    const char *path = cb->health_path && cb->health_path[0] ? cb->health_path : "/";
    nghttp2_nv call[] = {
        nv(":method", "POST", 4),
        nv(":scheme", cb->tls ? "https" : "http", cb->tls ? 5 : 4),
        nv(":authority", auth, (size_t)al),
        nv(":path", "/grpc.health.v1.Health/Check", 28),
        nv("content-type", "application/grpc", 16),
        nv("te", "trailers", 8),
        nv("user-agent", "golb-health", 11),
    };
    nghttp2_nv get[] = {
        nv(":method", "GET", 3),
        nv(":scheme", cb->tls ? "https" : "http", cb->tls ? 5 : 4),
        nv(":authority", auth, (size_t)al),
        nv(":path", path, strlen(path)),
        nv("user-agent", "golb-health", 11),
    };
    nghttp2_data_provider prd = {.read_callback = req_read};
    if (nghttp2_submit_settings(g->ng, NGHTTP2_FLAG_NONE, NULL, 0) != 0)
        goto fail;
    g->id = g->grpc ? nghttp2_submit_request(g->ng, NULL, call, ARRAY_LEN(call), &prd, g)
                    : nghttp2_submit_request(g->ng, NULL, get, ARRAY_LEN(get), NULL, g);
    if (g->id < 0 || drain(g) != 0)
        goto fail;
    *out = g->out;
    *len = g->out_len;
    return g;
fail:
    health_h2_free(g);
    return NULL;
}

/* The verdict once the stream closed. */
static enum health_h2_result judge(struct health_h2 *g, char *why, size_t whylen)
{
    if (!g->grpc) { /* closed before a final head */
        snprintf(why, whylen, "HTTP/2 stream %s (error %u) before a response",
                 g->reset ? "reset" : "ended", g->reset_code);
        return HEALTH_H2_DOWN;
    }
    if (g->reset) {
        snprintf(why, whylen, "gRPC: stream reset (HTTP/2 error %u)", g->reset_code);
        return HEALTH_H2_DOWN;
    }
    if (g->status != 200) {
        snprintf(why, whylen, "gRPC: HTTP %d", g->status);
        return HEALTH_H2_DOWN;
    }
    if (g->grpc_status != 0) {
        const char *name = grpc_code_name(g->grpc_status);
        if (g->grpc_status < 0)
            snprintf(why, whylen, "gRPC: no grpc-status");
        else
            snprintf(why, whylen, "gRPC: grpc-status %d (%s)%s%s", g->grpc_status,
                     name ? name : "?", g->detail[0] ? ": " : "", g->detail);
        return HEALTH_H2_DOWN;
    }
    int st = g->msg_overflow ? -1 : grpc_health_response(g->msg, g->msg_len);
    static const char *const names[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
    if (st < 0) {
        snprintf(why, whylen, "gRPC: invalid HealthCheckResponse");
        return HEALTH_H2_DOWN;
    }
    snprintf(why, whylen, "gRPC %s", st < 4 ? names[st] : "status");
    if (st >= 4)
        snprintf(why, whylen, "gRPC status %d", st);
    return st == GRPC_SERVING ? HEALTH_H2_UP : HEALTH_H2_DOWN;
}

enum health_h2_result health_h2_feed(struct health_h2 *g, const uint8_t *p, size_t n,
                                         const uint8_t **out, size_t *len, char *why,
                                         size_t whylen)
{
    *out = NULL;
    *len = 0;
    ssize_t r = nghttp2_session_mem_recv(g->ng, p, n);
    if (r < 0) {
        snprintf(why, whylen, "%sinvalid HTTP/2 (%s)", g->grpc ? "gRPC: " : "",
                 nghttp2_strerror((int)r));
        return HEALTH_H2_DOWN;
    }
    if (!g->grpc && g->final_head) {
        snprintf(why, whylen, "HTTP %d", g->status);
        return g->status >= 200 && g->status < 300 ? HEALTH_H2_UP : HEALTH_H2_DOWN;
    }
    if (g->closed)
        return judge(g, why, whylen);
    if (drain(g) != 0) {
        snprintf(why, whylen, "gRPC: out of memory");
        return HEALTH_H2_DOWN;
    }
    *out = g->out;
    *len = g->out_len;
    return HEALTH_H2_MORE;
}

void health_h2_free(struct health_h2 *g)
{
    if (!g)
        return;
    nghttp2_session_del(g->ng);
    free(g->out);
    free(g);
}
