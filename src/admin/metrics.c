/* metrics — see metrics.h. */
#include "admin/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/accesslog.h"
#include "core/generation.h"
#include "core/obs.h"
#include "http/grpc.h"
#include "upstream/backend.h"
#include "upstream/dns.h"
#include "config/config.h"
#include "upstream/upstream.h"
#include "upstream/h2up.h"
#include "base/util.h"

static const char *const code_labels[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const req_error_labels[OBS_ERR_COUNT] = {"bad_request", "header_timeout",
                                                        "too_large", "client_abort"};
static const char *const conn_error_labels[BACKEND_CONN_NERRORS] = {"refused", "timeout", "reset", "tls"};
static const char *const tls_result_labels[OBS_TLS_COUNT] = {"full", "resumed", "failed"};
static const char *const pp_error_labels[OBS_PP_COUNT] = {"malformed", "untrusted", "missing",
                                                        "timeout"};

/* The registry: what a scrape reads. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static int nworkers;
/* configuration reloads (the reload path only, under reg_lock) */
static uint64_t reloads[2]; /* success, failure */
static uint64_t generation = 1;
static int64_t last_reload_ms;
static bool last_reload_ok = true;
static const char *version = "unknown";
static int64_t start_ms;
static struct dns *dns_src; /* the names of `resolve:` backends (server.c), or NULL */

int metrics_setup(int nw, const char *ver)
{
    pthread_mutex_lock(&reg_lock);
    nworkers = nw;
    version = ver;
    start_ms = util_wall_ms();
    last_reload_ms = start_ms;
    reloads[0] = reloads[1] = 0;
    generation = 1;
    last_reload_ok = true;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

void metrics_teardown(void)
{
    metrics_set_dns(NULL);
}

void metrics_set_dns(struct dns *d)
{
    pthread_mutex_lock(&reg_lock);
    dns_src = d;
    pthread_mutex_unlock(&reg_lock);
}

void metrics_dns_status(FILE *f)
{
    pthread_mutex_lock(&reg_lock);
    if (dns_src)
        dns_status_json(dns_src, f, util_now_ms());
    else
        fputs("[]", f);
    pthread_mutex_unlock(&reg_lock);
}

void metrics_reload_done(bool ok, uint64_t gen)
{
    pthread_mutex_lock(&reg_lock);
    reloads[ok ? 0 : 1]++;
    last_reload_ok = ok;
    if (ok) {
        generation = gen;
        last_reload_ms = util_wall_ms();
    }
    pthread_mutex_unlock(&reg_lock);
}

/* ---- sums ---- */

static void hist_add(uint64_t *acc, uint64_t *sum_us, const struct counter_hist *h)
{
    for (int i = 0; i < COUNTER_NBUCKETS; i++)
        acc[i] += counter_get(&h->bucket[i]);
    *sum_us += counter_get(&h->sum_us);
}

void metrics_sum_backend(const struct backend *be, struct metrics_sums *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t sum = 0;
    if (be) {
        for (int w = 0; w < be->nworkers; w++) {
            const struct backend_counters *b = &be->pw[w].m;
            for (int c = 0; c < 5; c++)
                out->requests[c] += counter_get(&b->requests[c]);
            out->errors += counter_get(&b->requests[4]);
            for (int e = 0; e < BACKEND_CONN_NERRORS; e++)
                out->errors += counter_get(&b->conn_errors[e]);
            hist_add(out->hist, &sum, &b->response);
            out->idle += upstream_idle_count(&be->pw[w].idle);
        }
        return;
    }
    struct obs_totals t;
    obs_counters_sum(&t);
    for (int c = 0; c < 5; c++)
        out->requests[c] = t.requests[c];
    out->errors = t.requests[4];
    memcpy(out->hist, t.duration, sizeof(out->hist));
}

/* ---- rendering ---- */

/* A label value: backslash, double quote and line feed escaped (exposition format rules). */
static void label(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

static void head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* An `le` value: µs as decimal seconds, exactly and without trailing zeros ("0.00025", "1"). */
static void le_text(char *out, size_t len, uint32_t us)
{
    int n = snprintf(out, len, "%u.%06u", us / 1000000u, us % 1000000u);
    while (n > 0 && out[n - 1] == '0')
        out[--n] = '\0';
    if (n > 0 && out[n - 1] == '.')
        out[--n] = '\0';
}

/* One histogram series from per-bucket counts `b` (the internal buckets, base/counter.h): the
 * exported boundaries' cumulative counts, each an exact sum of internal buckets, then +Inf equal
 * to _count by construction. `labels` is either "" or `backend="x"` without braces. */
static void hist_series(FILE *out, const char *name, const char *labels, const uint64_t *b,
                        uint64_t sum_us)
{
    uint64_t cum[COUNTER_NEXPORT + 1];
    counter_export(b, cum);
    const char *sep = labels[0] ? "," : "";
    for (int k = 0; k <= COUNTER_NEXPORT; k++) {
        char le[24] = "+Inf";
        if (k < COUNTER_NEXPORT)
            le_text(le, sizeof(le), counter_export_us[k]);
        fprintf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, le,
                (unsigned long long)cum[k]);
    }
    const char *ob = labels[0] ? "{" : "", *cb = labels[0] ? "}" : "";
    fprintf(out, "%s_sum%s%s%s %.6f\n", name, ob, labels, cb, (double)sum_us / 1e6);
    fprintf(out, "%s_count%s%s%s %llu\n", name, ob, labels, cb,
            (unsigned long long)cum[COUNTER_NEXPORT]);
}

/* Per-backend totals over every worker, gathered once per scrape. */
struct backend_sum {
    const struct backend *be;
    uint64_t requests[5], conn_errors[BACKEND_CONN_NERRORS];
    uint64_t retries, connections, reuses, sent, received, idle;
    uint64_t resp[COUNTER_NBUCKETS], conn[COUNTER_NBUCKETS];
    uint64_t resp_sum, conn_sum;
    uint64_t grpc[BACKEND_GRPC_CODES];
    uint64_t h2_conns, h2_streams;
    char lab[240]; /* pool="POOL",backend="NAME" */
};

/* `pool="POOL",backend="NAME"`, escaped, into s->lab (cut at a label boundary when too long). */
static void sum_label(struct backend_sum *s, const char *pool, const char *name)
{
    FILE *f = fmemopen(s->lab, sizeof(s->lab), "w");
    if (!f) {
        s->lab[0] = '\0';
        return;
    }
    fputs("pool=\"", f);
    label(f, pool);
    fputs("\",backend=\"", f);
    label(f, name);
    fputs("\"", f);
    fclose(f);
}

int metrics_render(FILE *out, const struct generation *g)
{
    pthread_mutex_lock(&reg_lock);
    int n = 0;
    for (int p = 0; g && p < g->npools; p++)
        n += g->pools[p].table ? g->pools[p].table->n : 0;
    struct backend_sum *bs = calloc((size_t)(n ? n : 1), sizeof(*bs));
    if (!bs) {
        pthread_mutex_unlock(&reg_lock);
        return -ENOMEM;
    }
    struct obs_totals tot;
    obs_counters_sum(&tot);
    const uint64_t *errors = tot.errors, *tls = tot.tls_handshakes;
    uint64_t opened = tot.conn_opened, closed = tot.conn_closed, started = tot.req_started,
             ended = tot.req_ended;
    n = 0;
    for (int p = 0; g && p < g->npools; p++) {
        const struct backend_table *table = g->pools[p].table;
        for (int i = 0; table && i < table->n; i++) {
            const struct backend *be = table->b[i];
            struct backend_sum *s = &bs[n++];
            s->be = be;
            for (int w = 0; w < be->nworkers; w++) {
                const struct backend_counters *b = &be->pw[w].m;
                for (int c = 0; c < 5; c++)
                    s->requests[c] += counter_get(&b->requests[c]);
                for (int e = 0; e < BACKEND_CONN_NERRORS; e++)
                    s->conn_errors[e] += counter_get(&b->conn_errors[e]);
                s->retries += counter_get(&b->retries);
                s->connections += counter_get(&b->connections);
                s->reuses += counter_get(&b->reuses);
                s->sent += counter_get(&b->sent_bytes);
                s->received += counter_get(&b->received_bytes);
                for (int c = 0; c < BACKEND_GRPC_CODES; c++)
                    s->grpc[c] += counter_get(&b->grpc[c]);
                hist_add(s->resp, &s->resp_sum, &b->response);
                hist_add(s->conn, &s->conn_sum, &b->connect);
                s->idle += upstream_idle_count(&be->pw[w].idle);
                uint32_t hc, hs;
                h2up_counts(&be->pw[w].idle, &hc, &hs);
                s->h2_conns += hc;
                s->h2_streams += hs;
            }
            sum_label(s, g->pools[p].name, be->name);
        }
    }

    head(out, "golb_build_info", "gauge", "golb build information; always 1.");
    fputs("golb_build_info{version=\"", out);
    label(out, version);
    fputs("\"} 1\n", out);
    head(out, "golb_start_time_seconds", "gauge", "Start time of the process since the epoch.");
    fprintf(out, "golb_start_time_seconds %.3f\n", (double)start_ms / 1000.0);
    head(out, "golb_workers", "gauge", "Worker threads.");
    fprintf(out, "golb_workers %d\n", nworkers);
    head(out, "golb_config_reloads_total", "counter", "Configuration reloads, by result.");
    fprintf(out, "golb_config_reloads_total{result=\"success\"} %llu\n",
            (unsigned long long)reloads[0]);
    fprintf(out, "golb_config_reloads_total{result=\"failure\"} %llu\n",
            (unsigned long long)reloads[1]);
    head(out, "golb_config_generation", "gauge", "The running configuration generation (1 at start).");
    /* the running one: a DNS change makes a generation too, without a reload */
    fprintf(out, "golb_config_generation %llu\n",
            (unsigned long long)(g && g->id > generation ? g->id : generation));
    head(out, "golb_config_generations_live", "gauge",
         "Configuration generations in memory: the running one and older ones requests still use.");
    fprintf(out, "golb_config_generations_live %d\n", generation_live());
    head(out, "golb_config_last_reload_successful", "gauge",
         "1 when the last reload (or the start) succeeded.");
    fprintf(out, "golb_config_last_reload_successful %d\n", last_reload_ok ? 1 : 0);
    head(out, "golb_config_last_reload_success_timestamp_seconds", "gauge",
         "When the running configuration was loaded, since the epoch.");
    fprintf(out, "golb_config_last_reload_success_timestamp_seconds %.3f\n",
            (double)last_reload_ms / 1000.0);

    static const char *const proto_labels[OBS_PROTO_COUNT] = {"http/1.1", "h2"};
    head(out, "golb_http_requests_total", "counter",
         "Client requests answered, by status class and client protocol (golb's own answers "
         "included).");
    for (int p = 0; p < OBS_PROTO_COUNT; p++)
        for (int c = 0; c < 5; c++)
            fprintf(out, "golb_http_requests_total{code=\"%s\",protocol=\"%s\"} %llu\n",
                    code_labels[c], proto_labels[p], (unsigned long long)tot.proto_requests[p][c]);
    head(out, "golb_http_request_duration_seconds", "histogram",
         "Client request duration, first byte in to last byte out, by client protocol.");
    for (int p = 0; p < OBS_PROTO_COUNT; p++) {
        char lab[32];
        snprintf(lab, sizeof(lab), "protocol=\"%s\"", proto_labels[p]);
        hist_series(out, "golb_http_request_duration_seconds", lab, tot.proto_duration[p],
                    tot.proto_duration_sum_us[p]);
    }
    head(out, "golb_http_requests_in_flight", "gauge", "Client requests being served.");
    fprintf(out, "golb_http_requests_in_flight %llu\n",
            (unsigned long long)(started > ended ? started - ended : 0));
    head(out, "golb_connections_active", "gauge", "Open client connections.");
    fprintf(out, "golb_connections_active %llu\n",
            (unsigned long long)(opened > closed ? opened - closed : 0));
    head(out, "golb_connections_total", "counter", "Client connections accepted.");
    fprintf(out, "golb_connections_total %llu\n", (unsigned long long)opened);
    head(out, "golb_tls_handshakes_total", "counter",
         "TLS handshakes on the HTTPS listener, by result (full, resumed, failed).");
    for (int t = 0; t < OBS_TLS_COUNT; t++)
        fprintf(out, "golb_tls_handshakes_total{result=\"%s\"} %llu\n", tls_result_labels[t],
                (unsigned long long)tls[t]);
    head(out, "golb_proxy_protocol_headers_total", "counter",
         "PROXY protocol headers accepted from trusted peers, by version.");
    for (int v = 0; v < 2; v++)
        fprintf(out, "golb_proxy_protocol_headers_total{version=\"%d\"} %llu\n", v + 1,
                (unsigned long long)tot.pp_headers[v]);
    head(out, "golb_proxy_protocol_errors_total", "counter",
         "Connections closed on accept for their PROXY protocol header, by reason.");
    for (int e = 0; e < OBS_PP_COUNT; e++)
        fprintf(out, "golb_proxy_protocol_errors_total{reason=\"%s\"} %llu\n", pp_error_labels[e],
                (unsigned long long)tot.pp_errors[e]);
    const uint64_t *h2 = tot.h2;
    head(out, "golb_http2_connections", "gauge", "Open HTTP/2 client connections.");
    fprintf(out, "golb_http2_connections %llu\n",
            (unsigned long long)(h2[OBS_H2_CONN_OPENED] > h2[OBS_H2_CONN_CLOSED]
                                     ? h2[OBS_H2_CONN_OPENED] - h2[OBS_H2_CONN_CLOSED]
                                     : 0));
    head(out, "golb_http2_connections_total", "counter", "HTTP/2 client connections (h2, h2c).");
    fprintf(out, "golb_http2_connections_total %llu\n",
            (unsigned long long)h2[OBS_H2_CONN_OPENED]);
    head(out, "golb_http2_streams", "gauge", "Open HTTP/2 streams.");
    fprintf(out, "golb_http2_streams %llu\n",
            (unsigned long long)(h2[OBS_H2_STREAM_OPENED] > h2[OBS_H2_STREAM_CLOSED]
                                     ? h2[OBS_H2_STREAM_OPENED] - h2[OBS_H2_STREAM_CLOSED]
                                     : 0));
    head(out, "golb_http2_streams_total", "counter", "HTTP/2 streams opened by clients.");
    fprintf(out, "golb_http2_streams_total %llu\n", (unsigned long long)h2[OBS_H2_STREAM_OPENED]);
    head(out, "golb_http2_stream_resets_total", "counter",
         "HTTP/2 streams reset (RST_STREAM), by who reset them.");
    fprintf(out, "golb_http2_stream_resets_total{by=\"client\"} %llu\n",
            (unsigned long long)h2[OBS_H2_RESET_BY_CLIENT]);
    fprintf(out, "golb_http2_stream_resets_total{by=\"golb\"} %llu\n",
            (unsigned long long)h2[OBS_H2_RESET_BY_GOLB]);
    head(out, "golb_http2_goaway_sent_total", "counter",
         "GOAWAY frames sent, by reason (drain, idle, calm: floods and resets, error).");
    static const char *const goaway_labels[] = {"drain", "idle", "calm", "error"};
    for (int i = 0; i < 4; i++)
        fprintf(out, "golb_http2_goaway_sent_total{reason=\"%s\"} %llu\n", goaway_labels[i],
                (unsigned long long)h2[OBS_H2_GOAWAY_DRAIN + i]);
    head(out, "golb_http_request_errors_total", "counter",
         "Client requests that failed on the client side, by reason.");
    for (int e = 0; e < OBS_ERR_COUNT; e++)
        fprintf(out, "golb_http_request_errors_total{reason=\"%s\"} %llu\n", req_error_labels[e],
                (unsigned long long)errors[e]);

    head(out, "golb_backend_up", "gauge", "1 when the backend's health checks pass.");
    for (int i = 0; i < n; i++)
        fprintf(out, "golb_backend_up{%s} %d\n", bs[i].lab, backend_is_up(bs[i].be) ? 1 : 0);
    head(out, "golb_backend_state", "gauge",
         "The backend's state as operators see it: one series is 1 (up, down, drain, maint).");
    static const char *const states[] = {"up", "down", "drain", "maint"};
    for (int i = 0; i < n; i++) {
        const char *st = backend_effective_state(bs[i].be);
        for (size_t k = 0; k < ARRAY_LEN(states); k++)
            fprintf(out, "golb_backend_state{%s,state=\"%s\"} %d\n", bs[i].lab, states[k],
                    strcmp(st, states[k]) == 0);
    }
    head(out, "golb_backend_requests_total", "counter",
         "Responses from the backend, by status class.");
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 5; c++)
            fprintf(out, "golb_backend_requests_total{%s,code=\"%s\"} %llu\n", bs[i].lab,
                    code_labels[c], (unsigned long long)bs[i].requests[c]);
    head(out, "golb_backend_response_duration_seconds", "histogram",
         "Request sent to response head received.");
    for (int i = 0; i < n; i++)
        hist_series(out, "golb_backend_response_duration_seconds", bs[i].lab, bs[i].resp,
                    bs[i].resp_sum);
    head(out, "golb_backend_connect_duration_seconds", "histogram",
         "Time to open a new connection to the backend.");
    for (int i = 0; i < n; i++)
        hist_series(out, "golb_backend_connect_duration_seconds", bs[i].lab, bs[i].conn,
                    bs[i].conn_sum);
    head(out, "golb_backend_requests_in_flight", "gauge", "Requests on the backend now.");
    for (int i = 0; i < n; i++)
        fprintf(out, "golb_backend_requests_in_flight{%s} %u\n", bs[i].lab,
                atomic_load_explicit(&bs[i].be->active, memory_order_relaxed));
    head(out, "golb_backend_connection_errors_total", "counter",
         "Failed connections to the backend, by reason.");
    for (int i = 0; i < n; i++)
        for (int e = 0; e < BACKEND_CONN_NERRORS; e++)
            fprintf(out, "golb_backend_connection_errors_total{%s,reason=\"%s\"} %llu\n",
                    bs[i].lab, conn_error_labels[e], (unsigned long long)bs[i].conn_errors[e]);

#define PER_BACKEND(name, type, help, field)                                                       \
    head(out, name, type, help);                                                                   \
    for (int i = 0; i < n; i++)                                                                    \
        fprintf(out, name "{%s} %llu\n", bs[i].lab, (unsigned long long)bs[i].field);
    PER_BACKEND("golb_backend_retries_total", "counter",
                "Requests retried on another backend after this one failed.", retries)
    PER_BACKEND("golb_backend_connections_total", "counter", "New connections to the backend.",
                connections)
    PER_BACKEND("golb_backend_connection_reuses_total", "counter",
                "Requests sent on a pooled keep-alive connection.", reuses)
    PER_BACKEND("golb_backend_idle_connections", "gauge", "Idle pooled connections.", idle)
    PER_BACKEND("golb_upstream_h2_connections", "gauge",
                "HTTP/2 connections to the backend (protocol h2), every worker's.", h2_conns)
    PER_BACKEND("golb_upstream_h2_streams", "gauge", "Open HTTP/2 streams to the backend.",
                h2_streams)
    PER_BACKEND("golb_backend_sent_bytes_total", "counter", "Bytes sent to the backend.", sent)
    PER_BACKEND("golb_backend_received_bytes_total", "counter", "Bytes received from the backend.",
                received)
#undef PER_BACKEND

    head(out, "golb_grpc_responses_total", "counter",
         "gRPC calls the backend took, by the grpc-status their client read (codes seen only).");
    for (int i = 0; i < n; i++)
        for (int c = 0; c < BACKEND_GRPC_CODES; c++)
            if (bs[i].grpc[c])
                fprintf(out, "golb_grpc_responses_total{%s,grpc_code=\"%s\"} %llu\n", bs[i].lab,
                        grpc_code_name(c), (unsigned long long)bs[i].grpc[c]);

    head(out, "golb_backend_health_checks_total", "counter", "Active health checks, by result.");
    for (int i = 0; i < n; i++) {
        uint64_t ok = counter_get(&bs[i].be->check.ok);
        uint64_t bad = counter_get(&bs[i].be->check.failed);
        fprintf(out, "golb_backend_health_checks_total{%s,result=\"success\"} %llu\n", bs[i].lab,
                (unsigned long long)ok);
        fprintf(out, "golb_backend_health_checks_total{%s,result=\"failure\"} %llu\n", bs[i].lab,
                (unsigned long long)bad);
    }
    head(out, "golb_backend_weight", "gauge", "The backend's weight.");
    for (int i = 0; i < n; i++)
        fprintf(out, "golb_backend_weight{%s} %u\n", bs[i].lab,
                atomic_load_explicit(&bs[i].be->weight, memory_order_relaxed));
    head(out, "golb_backend_last_state_change_timestamp_seconds", "gauge",
         "When the backend's health or admin state last changed, since the epoch.");
    for (int i = 0; i < n; i++)
        fprintf(out, "golb_backend_last_state_change_timestamp_seconds{%s} %.3f\n", bs[i].lab,
                (double)atomic_load_explicit(&bs[i].be->state_changed_ms,
                                             memory_order_relaxed) /
                    1000.0);

    head(out, "golb_route_requests_total", "counter",
         "Answers to the requests each route took, by status class.");
    for (int r = 0; g && r < g->nroutes; r++) {
        const struct obs_route *route = g->route_stats ? g->route_stats[r] : NULL;
        if (!route)
            continue;
        uint64_t by[5];
        obs_route_sum(route, by);
        for (int c = 0; c < 5; c++) {
            fputs("golb_route_requests_total{route=\"", out);
            label(out, route->name);
            fprintf(out, "\",code_class=\"%s\"} %llu\n", code_labels[c], (unsigned long long)by[c]);
        }
    }

    head(out, "golb_log_lines_dropped_total", "counter",
         "Log lines dropped because the log destination could not keep up.");
    fprintf(out, "golb_log_lines_dropped_total{log=\"access\"} %llu\n",
            (unsigned long long)accesslog_dropped());
    if (dns_src)
        dns_metrics(dns_src, out);

    pthread_mutex_unlock(&reg_lock);
    free(bs);
    return ferror(out) ? -EIO : 0;
}
