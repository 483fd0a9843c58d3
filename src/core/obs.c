/* obs — see obs.h. */
#include "core/obs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "upstream/backend.h"
#include "config/config.h"
#include "http/http1.h"
#include "admin/metrics.h"
#include "base/util.h"
#include "server/worker.h"

static uint64_t process_id_prefix;
static pthread_once_t prefix_once = PTHREAD_ONCE_INIT;

static void make_prefix(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = (uint64_t)util_wall_ms() * 0x9E3779B97F4A7C15u ^ (uint64_t)getpid();
    process_id_prefix = v;
}

/* 32 hex digits: 64 random bits per process, the worker, a per-worker sequence number. Unique
 * within a process and, with overwhelming odds, across processes. */
int obs_new_request_id(struct worker *w, char *out)
{
    static const char hex[] = "0123456789abcdef";
    pthread_once(&prefix_once, make_prefix);
    uint64_t seq = ++w->reqid_seq;
    uint64_t lo = (uint64_t)(w->id & 0xffff) << 48 | (seq & 0xffffffffffffull);
    for (int i = 15; i >= 0; i--) { /* hand-rolled: snprintf costs more than the whole hook */
        out[i] = hex[(process_id_prefix >> (4 * (15 - i))) & 15];
        out[16 + i] = hex[(lo >> (4 * (15 - i))) & 15];
    }
    out[32] = '\0';
    return 32;
}

static bool reqid_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '=';
}

static bool reqid_valid(const char *s, size_t n)
{
    if (n == 0 || n >= OBS_REQID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!reqid_char((unsigned char)s[i]))
            return false;
    return true;
}

static bool name_is(const struct http1_header *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

void obs_req_start(struct worker *w, struct obs_req *r, const struct http1_request *req,
                   uint64_t head_wait_ms)
{
    r->start_us = metrics_now_us() - head_wait_ms * 1000u; /* the wall time is derived at the end */
    r->backend = NULL;
    r->started = true;
    r->minor_version = (uint8_t)req->minor_version;
    bool logging = w->alog != NULL && accesslog_current() != ACCESSLOG_OFF;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        if (h->id != HTTP1_H_OTHER)
            continue;
        if (name_is(h, "x-request-id", 12)) {
            if (r->reqid_len == 0 && reqid_valid(h->value, h->value_len)) {
                memcpy(r->reqid, h->value, h->value_len);
                r->reqid_len = (uint8_t)h->value_len;
            }
        } else if (logging && r->ua_len == 0 && name_is(h, "user-agent", 10)) {
            size_t n = MIN((size_t)h->value_len, sizeof(r->ua));
            memcpy(r->ua, h->value, n);
            r->ua_len = (uint8_t)n;
            r->ua_cut = n < h->value_len;
            if (r->ua_cut)
                memcpy(r->ua + n - 3, "...", 3); /* a cut value says so */
        }
    }
    if (r->reqid_len == 0)
        r->reqid_len = (uint8_t)obs_new_request_id(w, r->reqid);
    if (logging) {
        size_t n = MIN((size_t)req->method_len, sizeof(r->method));
        memcpy(r->method, req->method, n);
        r->method_len = (uint8_t)n;
        const char *t = (req->flags & HTTP1_MF_ABSOLUTE) ? req->path : req->target;
        size_t tl = (req->flags & HTTP1_MF_ABSOLUTE) ? req->path_len : req->target_len;
        n = MIN(tl, sizeof(r->target));
        memcpy(r->target, t, n);
        r->target_len = (uint16_t)n;
        r->target_cut = n < tl;
        if (r->target_cut)
            memcpy(r->target + n - 3, "...", 3);
    }
    if (w->m)
        metrics_add(&w->m->req_started, 1);
}

/* Worker w's counters for backend b (backend.h: each backend has a slot per worker). */
static struct metrics_backend_w *mb(const struct worker *w, struct backend *b)
{
    return w->m && b ? &b->pw[w->id].m : NULL;
}

void obs_backend_try(struct worker *w, struct obs_req *r, struct backend *backend, bool reused,
                     bool retry, uint32_t req_head_len)
{
    if (retry && r->backend) {
        r->retries++;
        if (mb(w, r->backend))
            metrics_add(&mb(w, r->backend)->retries, 1);
    }
    r->backend = backend;
    r->reused = reused;
    r->try_us = metrics_now_us();
    r->connect_us = 0;
    r->sent_bytes = req_head_len;
    struct metrics_backend_w *b = mb(w, backend);
    if (b)
        metrics_add(reused ? &b->reuses : &b->connections, 1);
}

void obs_connect_result(struct worker *w, struct obs_req *r, int err)
{
    if (!r->backend)
        return;
    uint64_t now = metrics_now_us();
    struct metrics_backend_w *b = mb(w, r->backend);
    if (err == 0) {
        r->connect_us = now - r->try_us;
        r->try_us = now; /* the response time counts from here */
        if (b)
            metrics_observe(&b->connect, r->connect_us);
        return;
    }
    if (!b)
        return;
    int reason = err == -ECONNREFUSED ? MCE_REFUSED
                 : err == -ETIMEDOUT  ? MCE_TIMEOUT
                 : err == -EPROTO     ? MCE_TLS /* the TLS handshake with the backend failed */
                                      : MCE_RESET;
    metrics_add(&b->conn_errors[reason], 1);
}

void obs_response_head(struct worker *w, struct obs_req *r, int status, uint32_t head_len)
{
    r->head_us = metrics_now_us() - r->try_us;
    r->backend_status = status;
    r->received_bytes = head_len;
    if (mb(w, r->backend))
        metrics_observe(&mb(w, r->backend)->response, r->head_us);
}

static int req_error_index(const char *error_type)
{
    static const char *const names[MRE_COUNT] = {"bad_request", "header_timeout", "too_large",
                                                 "client_abort"};
    if (!error_type)
        return -1;
    for (int i = 0; i < MRE_COUNT; i++)
        if (strcmp(error_type, names[i]) == 0)
            return i;
    return -1;
}

void obs_req_end(struct worker *w, struct obs_req *r, int status, const char *term,
                 const char *error_type, const char *client_ip)
{
    if (r->ended)
        return;
    r->ended = true;
    uint64_t now = metrics_now_us();
    if (!r->start_us) { /* a request that never parsed: started when its bytes came */
        r->start_us = now;
        r->backend = NULL;
    }
    r->status = status;
    r->total_us = now - r->start_us;
    struct metrics_worker *m = w->m;
    if (m) {
        if (status) {
            metrics_add(&m->requests[metrics_code_index(status)], 1);
            metrics_observe(&m->duration, r->total_us);
        }
        int e = req_error_index(error_type);
        if (e >= 0)
            metrics_add(&m->errors[e], 1);
        if (r->started)
            metrics_add(&m->req_ended, 1);
        if (r->backend) {
            struct metrics_backend_w *b = mb(w, r->backend);
            if (r->backend_status)
                metrics_add(&b->requests[metrics_code_index(r->backend_status)], 1);
            metrics_add(&b->sent_bytes, r->sent_bytes + r->req_body_bytes);
            metrics_add(&b->received_bytes, r->received_bytes + r->resp_body_bytes);
        }
    }
    if (w->alog && accesslog_current() != ACCESSLOG_OFF) {
        char line[ACCESSLOG_LINE_MAX];
        r->start_wall_ms = util_wall_ms() - (int64_t)(r->total_us / 1000u);
        const char *backend = r->backend ? r->backend->name : NULL;
        size_t n = accesslog_format_line(accesslog_current(), line, sizeof(line), r, backend,
                                         client_ip, term, error_type);
        if (n)
            accesslog_push(w->alog, line, n);
    }
}
