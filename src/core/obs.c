/* obs — see obs.h. */
#include "core/obs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "http/grpc.h"
#include "upstream/backend.h"
#include "config/config.h"
#include "http/http.h"
#include "base/jsonw.h"
#include "base/util.h"
#include "core/worker_ctx.h"

/* The registry of worker blocks: what a scrape reads. Taken at worker start and stop and by
 * scrapes, never by a request. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct obs_counters *reg_head;

struct obs_counters *obs_counters_new(int worker)
{
    struct obs_counters *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->worker = worker;
    pthread_mutex_lock(&reg_lock);
    m->next = reg_head;
    reg_head = m;
    pthread_mutex_unlock(&reg_lock);
    return m;
}

void obs_counters_free(struct obs_counters *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&reg_lock);
    for (struct obs_counters **p = &reg_head; *p; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    free(m);
}

void obs_counters_sum(struct obs_totals *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&reg_lock);
    for (const struct obs_counters *m = reg_head; m; m = m->next) {
        for (int p = 0; p < OBS_PROTO_COUNT; p++) {
            for (int c = 0; c < 5; c++) {
                uint64_t v = counter_get(&m->requests[p][c]);
                out->proto_requests[p][c] += v;
                out->requests[c] += v;
            }
            for (int i = 0; i < COUNTER_NBUCKETS; i++) {
                uint64_t v = counter_get(&m->duration[p].bucket[i]);
                out->proto_duration[p][i] += v;
                out->duration[i] += v;
            }
            uint64_t s = counter_get(&m->duration[p].sum_us);
            out->proto_duration_sum_us[p] += s;
            out->duration_sum_us += s;
        }
        for (int e = 0; e < OBS_ERR_COUNT; e++)
            out->errors[e] += counter_get(&m->errors[e]);
        out->conn_opened += counter_get(&m->conn_opened);
        out->conn_closed += counter_get(&m->conn_closed);
        out->req_started += counter_get(&m->req_started);
        out->req_ended += counter_get(&m->req_ended);
        for (int t = 0; t < OBS_TLS_COUNT; t++)
            out->tls_handshakes[t] += counter_get(&m->tls_handshakes[t]);
        for (int v = 0; v < 2; v++)
            out->pp_headers[v] += counter_get(&m->pp_headers[v]);
        for (int e = 0; e < OBS_PP_COUNT; e++)
            out->pp_errors[e] += counter_get(&m->pp_errors[e]);
        for (int h = 0; h < OBS_H2_COUNT; h++)
            out->h2[h] += counter_get(&m->h2[h]);
    }
    pthread_mutex_unlock(&reg_lock);
}

/* ---- per-route counters ---- */

static void route_unref(struct obs_route *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        free(r->pw);
        free(r->name);
        free(r);
    }
}

static struct obs_route *route_new(const char *name, int nworkers)
{
    struct obs_route *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->nworkers = nworkers > 0 ? nworkers : 1;
    r->name = strdup(name);
    r->pw = aligned_alloc(_Alignof(struct obs_route_worker), (size_t)r->nworkers * sizeof(*r->pw));
    if (!r->name || !r->pw) {
        free(r->pw);
        free(r->name);
        free(r);
        return NULL;
    }
    memset(r->pw, 0, (size_t)r->nworkers * sizeof(*r->pw));
    atomic_init(&r->refs, 1);
    return r;
}

struct obs_route **obs_routes_new(const struct config *cfg, struct obs_route *const *prev,
                                  int nprev, int nworkers, bool *ok)
{
    *ok = true;
    if (cfg->nroutes == 0)
        return NULL;
    struct obs_route **out = calloc((size_t)cfg->nroutes, sizeof(*out));
    if (!out) {
        *ok = false;
        return NULL;
    }
    for (int i = 0; i < cfg->nroutes; i++) {
        const char *name = cfg->routes[i].name;
        struct obs_route *r = NULL;
        for (int j = 0; j < nprev && !r; j++) /* a reload: names are unique within a file */
            if (prev[j] && strcmp(prev[j]->name, name) == 0)
                r = prev[j];
        if (r)
            atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
        else if (!(r = route_new(name, nworkers))) {
            obs_routes_free(out, i);
            *ok = false;
            return NULL;
        }
        out[i] = r;
    }
    return out;
}

void obs_routes_free(struct obs_route **routes, int n)
{
    for (int i = 0; routes && i < n; i++)
        route_unref(routes[i]);
    free(routes);
}

void obs_route_done(struct worker_ctx *w, struct obs_route *route, int status)
{
    if (route && status && w->id >= 0 && w->id < route->nworkers)
        counter_add(&route->pw[w->id].requests[counter_status_class(status)], 1);
}

void obs_route_sum(const struct obs_route *route, uint64_t out[5])
{
    memset(out, 0, 5 * sizeof(*out));
    for (int w = 0; route && w < route->nworkers; w++)
        for (int c = 0; c < 5; c++)
            out[c] += counter_get(&route->pw[w].requests[c]);
}

static uint64_t process_id_prefix;
static char process_id_hex[16]; /* process_id_prefix in hex, the first half of every id */
static char byte_hex[256][2];   /* "00" .. "ff" */
static pthread_once_t prefix_once = PTHREAD_ONCE_INIT;

static void make_prefix(void)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = (uint64_t)util_wall_ms() * 0x9E3779B97F4A7C15u ^ (uint64_t)getpid();
    process_id_prefix = v;
    for (int b = 0; b < 256; b++) {
        byte_hex[b][0] = hex[b >> 4];
        byte_hex[b][1] = hex[b & 15];
    }
    for (int i = 0; i < 8; i++)
        memcpy(process_id_hex + 2 * i, byte_hex[(v >> (56 - 8 * i)) & 0xff], 2);
}

/* 32 hex digits: 64 random bits per process, the worker, a per-worker sequence number. Unique
 * within a process and, with overwhelming odds, across processes. Hand-rolled (snprintf costs
 * more than the whole hook): the process's half is written once, the rest a byte at a time. */
void obs_reply_terms(int status, bool exchanging, bool relaying, const char **term,
                     const char **err)
{
    *term = "PR";
    *err = "bad_request";
    switch (status) {
    case 408:
        *term = exchanging ? "cD" : "cR";
        *err = exchanging ? "body_timeout" : "header_timeout";
        break;
    case 414:
    case 431:
        *err = "too_large";
        break;
    case 502:
        *term = relaying ? "SH" : "SC";
        *err = relaying ? "invalid_response" : "connect_failed";
        break;
    case 503:
        *term = "PC";
        *err = "no_backend";
        break;
    case 504:
        *term = "sH";
        *err = "response_timeout";
        break;
    default:
        break;
    }
}

int obs_new_request_id(struct worker_ctx *w, char *out)
{
    pthread_once(&prefix_once, make_prefix);
    uint64_t seq = ++w->reqid_seq;
    uint64_t lo = (uint64_t)(w->id & 0xffff) << 48 | (seq & 0xffffffffffffull);
    memcpy(out, process_id_hex, 16);
    for (int i = 0; i < 8; i++)
        memcpy(out + 16 + 2 * i, byte_hex[(lo >> (56 - 8 * i)) & 0xff], 2);
    out[32] = '\0';
    return 32;
}

static bool reqid_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '=';
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

static bool name_is(const struct http_field *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

void obs_req_start(struct worker_ctx *w, struct obs_req *r, const struct http_request *req,
                   uint64_t head_wait_ms)
{
    r->start_us = counter_now_us() - head_wait_ms * 1000u; /* the wall time is derived at the end */
    r->backend = NULL;
    r->started = true;
    r->version = (uint8_t)req->version;
    bool logging = w->alog != NULL && accesslog_current() != ACCESSLOG_OFF;
    for (size_t i = 0; i < req->num_fields; i++) {
        const struct http_field *h = &req->fields[i];
        if (h->id != HTTP_F_OTHER)
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
        const char *t = req->path;
        size_t tl = req->path_len;
        n = MIN(tl, sizeof(r->target));
        memcpy(r->target, t, n);
        r->target_len = (uint16_t)n;
        r->target_cut = n < tl;
        if (r->target_cut)
            memcpy(r->target + n - 3, "...", 3);
    }
    if (w->m)
        counter_add(&w->m->req_started, 1);
}

/* Worker w's counters for backend b (backend.h: each backend has a slot per worker). */
static struct backend_counters *mb(const struct worker_ctx *w, struct backend *b)
{
    return w->m && b ? &b->pw[w->id].m : NULL;
}

void obs_backend_try(struct worker_ctx *w, struct obs_req *r, struct backend *backend, bool reused,
                     bool retry, uint32_t req_head_len)
{
    if (retry && r->backend) {
        r->retries++;
        if (mb(w, r->backend))
            counter_add(&mb(w, r->backend)->retries, 1);
    }
    r->backend = backend;
    r->reused = reused;
    r->try_us = counter_now_us();
    r->connect_us = 0;
    r->sent_bytes = req_head_len;
    struct backend_counters *b = mb(w, backend);
    if (b)
        counter_add(reused ? &b->reuses : &b->connections, 1);
}

void obs_connect_result(struct worker_ctx *w, struct obs_req *r, int err)
{
    if (!r->backend)
        return;
    uint64_t now = counter_now_us();
    struct backend_counters *b = mb(w, r->backend);
    if (err == 0) {
        r->connect_us = now - r->try_us;
        r->try_us = now; /* the response time counts from here */
        if (b)
            counter_observe(&b->connect, r->connect_us);
        return;
    }
    if (!b)
        return;
    int reason = err == -ECONNREFUSED ? BACKEND_CONN_REFUSED
                 : err == -ETIMEDOUT  ? BACKEND_CONN_TIMEOUT
                 : err == -EPROTO ? BACKEND_CONN_TLS /* the TLS handshake with the backend failed */
                                  : BACKEND_CONN_RESET;
    counter_add(&b->conn_errors[reason], 1);
}

void obs_response_head(struct worker_ctx *w, struct obs_req *r, int status, uint32_t head_len)
{
    r->head_us = counter_now_us() - r->try_us;
    r->backend_status = status;
    r->received_bytes = head_len;
    if (mb(w, r->backend))
        counter_observe(&mb(w, r->backend)->response, r->head_us);
}

static int req_error_index(const char *error_type)
{
    static const char *const names[OBS_ERR_COUNT] = {"bad_request", "header_timeout", "too_large",
                                                     "client_abort"};
    if (!error_type)
        return -1;
    for (int i = 0; i < OBS_ERR_COUNT; i++)
        if (strcmp(error_type, names[i]) == 0)
            return i;
    return -1;
}

void obs_tls_handshake(struct worker_ctx *w, enum obs_tls_result result)
{
    if (w->m)
        counter_add(&w->m->tls_handshakes[result], 1);
}

void obs_proxy_header(struct worker_ctx *w, int version)
{
    if (w->m && (version == 1 || version == 2))
        counter_add(&w->m->pp_headers[version - 1], 1);
}

void obs_proxy_header_error(struct worker_ctx *w, enum obs_pp_error reason)
{
    if (w->m)
        counter_add(&w->m->pp_errors[reason], 1);
}

void obs_h2(struct worker_ctx *w, enum obs_h2_event e)
{
    if (w->m)
        counter_add(&w->m->h2[e], 1);
}

void obs_req_end(struct worker_ctx *w, struct obs_req *r, int status, const char *term,
                 const char *error_type, const char *client_ip)
{
    if (r->ended)
        return;
    r->ended = true;
    uint64_t now = counter_now_us();
    if (!r->start_us) { /* a request that never parsed: started when its bytes came */
        r->start_us = now;
        r->backend = NULL;
    }
    r->status = status;
    r->total_us = now - r->start_us;
    /* a gRPC call answered by golb, or by a backend's HTTP error: the code its client reads */
    if (unlikely(r->grpc) && !r->grpc_code && status >= 400)
        r->grpc_code = (int8_t)(grpc_code_of_http(status) + 1);
    if (unlikely(r->grpc_reply) && status >= 400)
        r->status = 200; /* what golb's gRPC answer was on the wire */
    struct obs_counters *m = w->m;
    obs_route_done(w, r->route, status);
    if (m) {
        if (status) {
            int p = r->version == HTTP_V2 ? OBS_PROTO_H2 : OBS_PROTO_HTTP1;
            counter_add(&m->requests[p][counter_status_class(status)], 1);
            counter_observe(&m->duration[p], r->total_us);
        }
        int e = req_error_index(error_type);
        if (e >= 0)
            counter_add(&m->errors[e], 1);
        if (r->started)
            counter_add(&m->req_ended, 1);
        if (r->backend) {
            struct backend_counters *b = mb(w, r->backend);
            if (r->backend_status)
                counter_add(&b->requests[counter_status_class(r->backend_status)], 1);
            counter_add(&b->sent_bytes, r->sent_bytes + r->req_body_bytes);
            counter_add(&b->received_bytes, r->received_bytes + r->resp_body_bytes);
            if (unlikely(r->grpc_code > 0) && r->grpc_code <= BACKEND_GRPC_CODES)
                counter_add(&b->grpc[r->grpc_code - 1], 1);
        }
    }
    if (w->alog && accesslog_current() != ACCESSLOG_OFF) {
        char line[ACCESSLOG_LINE_MAX];
        r->start_wall_ms = util_wall_ms() - (int64_t)(r->total_us / 1000u);
        const char *backend = r->backend ? r->backend->name : NULL;
        size_t n = obs_format_line(accesslog_current(), line, sizeof(line), r, backend, client_ip,
                                   term, error_type);
        if (n)
            accesslog_push(w->alog, line, n);
    }
}

/* ---- formatting ---- */

/* ,"key":"value" or ,"key":null — `key` is a literal: JSON_KEY pastes its quotes and comma. */
#define JSON_KEY(j, key) JSONW_LIT((j), ",\"" key "\":")
#define json_maybe_str(j, key, s, n) (JSON_KEY(j, key), json_value_str((j), (s), (n)))
/* The same for golb's own text that never needs escaping (an IP address, a backend name made of
 * host characters, "1.1", a termination code): copied as it is. */
#define json_plain_str(j, key, s, n) (JSON_KEY(j, key), json_value_plain((j), (s), (n)))
static void json_value_plain(struct jsonw *j, const char *s, size_t n)
{
    if (s && n) {
        JSONW_LIT(j, "\"");
        jsonw_raw(j, s, n);
        JSONW_LIT(j, "\"");
    } else {
        JSONW_LIT(j, "null");
    }
}
static void json_value_str(struct jsonw *j, const char *s, size_t n)
{
    if (s && n)
        jsonw_str(j, s, n, 0);
    else
        JSONW_LIT(j, "null");
}

static void text_field(struct jsonw *j, const char *s, size_t n)
{
    if (s && n)
        jsonw_text(j, s, n, 0);
    else
        jsonw_raw(j, "-", 1);
}

/* rpc.system, rpc.service, rpc.method (from the path "/SERVICE/METHOD") and
 * rpc.grpc.status_code (code + 1, 0: none came) of a gRPC call. */
static void json_rpc(struct jsonw *j, const char *path, size_t len, int code1)
{
    const char *slash = len > 1 ? memrchr(path + 1, '/', len - 1) : NULL;
    JSONW_LIT(j, ",\"rpc.system\":\"grpc\"");
    if (slash) {
        json_maybe_str(j, "rpc.service", path + 1, (size_t)(slash - path - 1));
        json_maybe_str(j, "rpc.method", slash + 1, len - (size_t)(slash - path) - 1);
    }
    JSON_KEY(j, "rpc.grpc.status_code");
    if (code1 > 0)
        jsonw_i64(j, code1 - 1);
    else
        JSONW_LIT(j, "null");
}

size_t obs_format_line(enum accesslog_format format, char *out, size_t cap, const struct obs_req *r,
                       const char *backend, const char *client_ip, const char *term,
                       const char *error_type)
{
    struct jsonw j;
    jsonw_init(&j, out, cap - 1); /* room for the \n */
    const char *q = memchr(r->target, '?', r->target_len);
    size_t path_len = q ? (size_t)(q - r->target) : r->target_len;
    const char *query = q ? q + 1 : NULL;
    size_t query_len = q ? r->target_len - path_len - 1 : 0;
    /* network.protocol.version as OpenTelemetry writes it: "1.0", "1.1", "2" */
    const char *proto = r->version == HTTP_V2 ? "2" : r->version == HTTP_V1_1 ? "1.1" : "1.0";
    size_t proto_len = r->version == HTTP_V2 ? 1 : 3;
    uint64_t total = r->total_us;
    if (format == ACCESSLOG_JSON) {
        JSONW_LIT(&j, "{\"time\":\"");
        jsonw_time_ms(&j, r->start_wall_ms);
        JSONW_LIT(&j, "\"");
        json_maybe_str(&j, "request_id", r->reqid, r->reqid_len);
        json_plain_str(&j, "client.address", client_ip, strlen(client_ip));
        json_maybe_str(&j, "http.request.method", r->method, r->method_len);
        json_maybe_str(&j, "url.path", r->target, path_len);
        json_maybe_str(&j, "url.query", query, query_len);
        json_plain_str(&j, "network.protocol.version", r->method_len ? proto : NULL, proto_len);
        JSON_KEY(&j, "http.response.status_code");
        if (r->status)
            jsonw_i64(&j, r->status);
        else
            JSONW_LIT(&j, "null");
        JSON_KEY(&j, "http.request.body.size");
        jsonw_u64(&j, r->req_body_bytes);
        JSON_KEY(&j, "http.response.body.size");
        jsonw_u64(&j, r->resp_body_bytes);
        json_maybe_str(&j, "user_agent.original", r->ua, r->ua_len);
        if (unlikely(r->grpc)) /* OpenTelemetry's rpc.*: "/pkg.Service/Method" */
            json_rpc(&j, r->target, path_len, r->grpc_code);
        json_maybe_str(&j, "route", r->route ? r->route->name : NULL,
                       r->route ? strlen(r->route->name) : 0);
        json_plain_str(&j, "pool", r->pool, r->pool ? strlen(r->pool) : 0);
        json_plain_str(&j, "backend", backend, backend ? strlen(backend) : 0);
        JSON_KEY(&j, "upstream.reused");
        jsonw_cstr(&j, r->reused ? "true" : "false");
        JSON_KEY(&j, "retries");
        jsonw_u64(&j, r->retries);
        JSON_KEY(&j, "duration");
        jsonw_secs_us(&j, total);
        JSONW_LIT(&j, ",\"timing\":{\"connect\":");
        jsonw_secs_us(&j, r->connect_us);
        JSONW_LIT(&j, ",\"response_head\":");
        jsonw_secs_us(&j, r->head_us);
        JSONW_LIT(&j, ",\"total\":");
        jsonw_secs_us(&j, total);
        JSONW_LIT(&j, "}");
        JSON_KEY(&j, "termination");
        json_value_plain(&j, term, strlen(term));
        json_maybe_str(&j, "error.type", error_type, error_type ? strlen(error_type) : 0);
        JSONW_LIT(&j, "}");
    } else {
        jsonw_time_ms(&j, r->start_wall_ms);
        JSONW_LIT(&j, " ");
        jsonw_cstr(&j, client_ip);
        JSONW_LIT(&j, " \"");
        text_field(&j, r->method, r->method_len);
        JSONW_LIT(&j, " ");
        text_field(&j, r->target, r->target_len);
        JSONW_LIT(&j, " HTTP/");
        jsonw_raw(&j, r->method_len ? proto : "-", r->method_len ? proto_len : 1);
        JSONW_LIT(&j, "\" ");
        if (r->status)
            jsonw_i64(&j, r->status);
        else
            JSONW_LIT(&j, "-");
        JSONW_LIT(&j, " ");
        jsonw_u64(&j, r->req_body_bytes);
        JSONW_LIT(&j, " ");
        jsonw_u64(&j, r->resp_body_bytes);
        JSONW_LIT(&j, " \"");
        text_field(&j, r->ua, r->ua_len);
        JSONW_LIT(&j, "\" ");
        jsonw_cstr(&j, backend ? backend : "-");
        jsonw_raw(&j, r->reused ? " reused=1" : " reused=0", 9);
        JSONW_LIT(&j, " retries=");
        jsonw_u64(&j, r->retries);
        JSONW_LIT(&j, " connect=");
        jsonw_secs_us(&j, r->connect_us);
        JSONW_LIT(&j, " head=");
        jsonw_secs_us(&j, r->head_us);
        JSONW_LIT(&j, " total=");
        jsonw_secs_us(&j, total);
        JSONW_LIT(&j, " ");
        jsonw_cstr(&j, term);
        JSONW_LIT(&j, " ");
        jsonw_cstr(&j, error_type ? error_type : "-");
        JSONW_LIT(&j, " id=");
        text_field(&j, r->reqid, r->reqid_len);
        if (r->route) { /* route="NAME" (a name may hold spaces), route=- without one */
            JSONW_LIT(&j, " route=\"");
            text_field(&j, r->route->name, strlen(r->route->name));
            JSONW_LIT(&j, "\" pool=");
        } else {
            JSONW_LIT(&j, " route=- pool=");
        }
        jsonw_cstr(&j, r->pool ? r->pool : "-");
    }
    if (j.overflow)
        return 0; /* cannot happen: every value is bounded well below the line size */
    out[j.len++] = '\n';
    return j.len;
}
