/* Unit tests for the Prometheus rendering (src/admin/metrics.c, metrics_render): counter blocks
 * (two workers' struct obs_counters, two workers' slots in every backend) and a backend table
 * built by hand, rendered to memory, then checked line by line: names, label escaping of backend
 * names with quotes, backslashes and line feeds, sums over workers, histogram buckets cumulative
 * with +Inf equal to _count and _sum in seconds, and the whole exposition through
 * `promtool check metrics` (installed by `make deps-test`; the test is skipped, saying so, when
 * promtool is missing). Each test runs in its own process (Criterion), so the process-wide
 * registry of counter blocks starts empty. */
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin/metrics.h"
#include "base/counter.h"
#include "base/util.h"
#include "core/generation.h"
#include "core/obs.h"
#include "core/worker_ctx.h"
#include "upstream/backend.h"

#define NWORKERS 2

/* ---- a hand-built backend table ---- */

static struct backend *backend_new(const char *name)
{
    struct backend *b = aligned_alloc(64, sizeof(*b));
    cr_assert_not_null(b);
    memset(b, 0, sizeof(*b));
    b->name = name;
    b->nworkers = NWORKERS;
    b->pw = aligned_alloc(64, NWORKERS * sizeof(*b->pw));
    cr_assert_not_null(b->pw);
    memset(b->pw, 0, NWORKERS * sizeof(*b->pw));
    atomic_store(&b->weight, 1);
    return b;
}

static void table_free(struct backend_table *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->b[i]->pw);
        free(t->b[i]);
    }
    free(t->b);
}

static struct backend_table table_of(int n, const char *const *names)
{
    struct backend_table t = {.n = n, .b = calloc((size_t)n, sizeof(struct backend *))};
    cr_assert_not_null(t.b);
    for (int i = 0; i < n; i++)
        t.b[i] = backend_new(names[i]);
    return t;
}

/* ---- rendering and reading the text ---- */

/* The exposition of generation g (NULL: no pools, no routes). */
static char *render_gen(const struct generation *g)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    cr_assert_eq(metrics_render(f, g), 0);
    cr_assert_eq(fclose(f), 0);
    return text;
}

/* The exposition with t as the pool "default" (NULL: no backends). */
static char *render(struct backend_table *t)
{
    if (!t)
        return render_gen(NULL);
    struct generation_pool pool = {.name = "default", .table = t};
    struct generation g = {.npools = 1, .pools = &pool, .nbackends = t->n, .table = t};
    return render_gen(&g);
}

/* True when `line` is one whole line of text. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

#define expect_line(text, line) cr_expect(has_line(text, line), "missing line: %s", line)

/* The value of the sample whose name and labels are exactly `series`, or -1. */
static long long sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atoll(p + n + 1);
    return -1;
}

/* Every histogram series in the text: its _bucket lines come in a run with non-decreasing counts
 * that ends with le="+Inf", and +Inf equals the series' _count. Returns the number of problems
 * (the first described in why); *series counts the series seen. */
static int histogram_problems(const char *text, int *series, char *why, size_t whylen)
{
    int problems = 0;
    char key[512] = ""; /* name and labels (without le) of the run in progress */
    long long prev = -1;
    *series = 0;
    why[0] = '\0';
#define PROBLEM(...)                                                                               \
    do {                                                                                           \
        if (!problems++)                                                                           \
            snprintf(why, whylen, __VA_ARGS__);                                                    \
    } while (0)
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol) {
            PROBLEM("the exposition does not end with a line feed");
            break;
        }
        int len = (int)(eol - line);
        const char *b = strstr(line, "_bucket{"), *le = b ? strstr(b, "le=\"") : NULL;
        if (b && b < eol) {
            if (!le || le > eol) {
                PROBLEM("no le: %.*s", len, line);
                break;
            }
            char k[512];
            snprintf(k, sizeof(k), "%.*s|%.*s", (int)(b - line), line, (int)(le - b), b);
            long long v = atoll(strchr(le, ' ') + 1);
            if (strcmp(k, key) != 0) {
                if (prev != -1)
                    PROBLEM("%s did not end with +Inf", key);
                snprintf(key, sizeof(key), "%s", k);
                prev = 0;
                ++*series;
            }
            if (v < prev)
                PROBLEM("cumulative counts decrease: %.*s", len, line);
            prev = v;
            if (strncmp(le, "le=\"+Inf\"}", 10) == 0) {
                /* name_count{labels}, or name_count when le was the only label */
                const char *labels = b + strlen("_bucket{");
                int ll = (int)(le - labels);
                char count[512];
                if (ll > 0)
                    snprintf(count, sizeof(count), "%.*s_count{%.*s}", (int)(b - line), line,
                             ll - 1, labels);
                else
                    snprintf(count, sizeof(count), "%.*s_count", (int)(b - line), line);
                if (sample(text, count) != v)
                    PROBLEM("+Inf %lld but %s %lld", v, count, sample(text, count));
                prev = -1;
                key[0] = '\0';
            }
        }
        line = eol + 1;
    }
    if (prev != -1)
        PROBLEM("%s did not end with +Inf", key);
#undef PROBLEM
    return problems;
}

/* The series count, after checking that every histogram is consistent. */
static int check_histograms(const char *text)
{
    int series;
    char why[600];
    cr_expect_eq(histogram_problems(text, &series, why, sizeof(why)), 0, "%s", why);
    return series;
}

/* Runs `promtool check metrics` on the text. */
static void expect_promtool_accepts(const char *text)
{
    char path[] = "/tmp/golb-metrics-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool: exit %d: %s",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
}

/* ---- fixture: two workers' counter blocks ---- */

static struct obs_counters *m[NWORKERS];

static void setup(void)
{
    cr_assert_eq(metrics_setup(NWORKERS, "1.2.3-t\"e\\st"), 0);
    for (int w = 0; w < NWORKERS; w++) {
        m[w] = obs_counters_new(w);
        cr_assert_not_null(m[w]);
    }
}

static void teardown(void)
{
    for (int w = 0; w < NWORKERS; w++)
        obs_counters_free(m[w]);
    metrics_teardown();
}

TestSuite(metrics, .init = setup, .fini = teardown);

Test(metrics, process_counters_are_summed_over_workers)
{
    counter_add(&m[0]->requests[OBS_PROTO_HTTP1][1], 3);
    counter_add(&m[1]->requests[OBS_PROTO_HTTP1][1], 2);
    counter_add(&m[1]->requests[OBS_PROTO_H2][1], 4);
    counter_add(&m[1]->requests[OBS_PROTO_HTTP1][4], 1);
    counter_add(&m[0]->errors[3], 4); /* client_abort */
    counter_add(&m[0]->conn_opened, 10);
    counter_add(&m[1]->conn_opened, 5);
    counter_add(&m[0]->conn_closed, 12);
    counter_add(&m[0]->req_started, 7);
    counter_add(&m[0]->req_ended, 6);
    counter_add(&m[1]->tls_handshakes[OBS_TLS_RESUMED], 2);
    char *t = render(NULL);
    expect_line(t, "# HELP golb_http_requests_total Client requests answered, by status class "
                   "and client protocol (golb's own answers included).");
    expect_line(t, "# TYPE golb_http_requests_total counter");
    expect_line(t, "golb_http_requests_total{code=\"1xx\",protocol=\"http/1.1\"} 0");
    expect_line(t, "golb_http_requests_total{code=\"2xx\",protocol=\"http/1.1\"} 5");
    expect_line(t, "golb_http_requests_total{code=\"2xx\",protocol=\"h2\"} 4");
    expect_line(t, "golb_http_requests_total{code=\"5xx\",protocol=\"http/1.1\"} 1");
    expect_line(t, "golb_http_requests_total{code=\"5xx\",protocol=\"h2\"} 0");
    expect_line(t, "golb_http_request_errors_total{reason=\"client_abort\"} 4");
    expect_line(t, "golb_http_request_errors_total{reason=\"bad_request\"} 0");
    expect_line(t, "golb_connections_total 15");
    expect_line(t, "golb_connections_active 3");
    expect_line(t, "golb_http_requests_in_flight 1");
    expect_line(t, "golb_tls_handshakes_total{result=\"resumed\"} 2");
    expect_line(t, "golb_workers 2");
    expect_line(t, "golb_build_info{version=\"1.2.3-t\\\"e\\\\st\"} 1");
    expect_line(t, "golb_config_generation 1");
    expect_line(t, "golb_config_reloads_total{result=\"success\"} 0");
    expect_line(t, "golb_log_lines_dropped_total{log=\"access\"} 0");
    cr_expect_null(strstr(t, "golb_backend_up{"), "no table: no backend series");
    free(t);
}

/* Observations on both sides of exported boundaries: `le` is inclusive, a value past the last
 * boundary counts only in +Inf, and _sum is in seconds. */
Test(metrics, the_duration_histogram_is_cumulative_with_inf_equal_to_count)
{
    counter_observe(&m[0]->duration[OBS_PROTO_HTTP1], 50);       /* 0.00005 s */
    counter_observe(&m[0]->duration[OBS_PROTO_HTTP1], 100);      /* exactly le="0.0001" */
    counter_observe(&m[1]->duration[OBS_PROTO_HTTP1], 101);      /* just above it */
    counter_observe(&m[1]->duration[OBS_PROTO_HTTP1], 3000000);  /* 3 s */
    counter_observe(&m[0]->duration[OBS_PROTO_HTTP1], 20000000); /* 20 s: past 10 s */
    counter_observe(&m[1]->duration[OBS_PROTO_H2], 400);         /* the h2 series' own */
    char *t = render(NULL);
    const char *name = "golb_http_request_duration_seconds";
    expect_line(t, "# TYPE golb_http_request_duration_seconds histogram");
    struct {
        const char *le;
        int count;
    } want[] = {{"0.0001", 2}, {"0.00025", 3}, {"0.0005", 3}, {"0.001", 3}, {"0.0025", 3},
                {"0.005", 3},  {"0.01", 3},    {"0.025", 3},  {"0.05", 3},  {"0.075", 3},
                {"0.1", 3},    {"0.25", 3},    {"0.5", 3},    {"0.75", 3},  {"1", 3},
                {"2.5", 3},    {"5", 4},       {"7.5", 4},    {"10", 4},    {"+Inf", 5}};
    cr_assert_eq(ARRAY_LEN(want), (size_t)COUNTER_NEXPORT + 1);
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        char line[128];
        snprintf(line, sizeof(line), "%s_bucket{protocol=\"http/1.1\",le=\"%s\"} %d", name,
                 want[i].le, want[i].count);
        expect_line(t, line);
    }
    expect_line(t, "golb_http_request_duration_seconds_count{protocol=\"http/1.1\"} 5");
    expect_line(t, "golb_http_request_duration_seconds_sum{protocol=\"http/1.1\"} 23.000251");
    expect_line(t, "golb_http_request_duration_seconds_bucket{protocol=\"h2\",le=\"0.00025\"} 0");
    expect_line(t, "golb_http_request_duration_seconds_bucket{protocol=\"h2\",le=\"0.0005\"} 1");
    expect_line(t, "golb_http_request_duration_seconds_count{protocol=\"h2\"} 1");
    cr_expect_eq(check_histograms(t), 2, "one request-duration series per protocol");
    free(t);
}

/* Per-backend series: one label, its value escaped (\" \\ \n), every counter summed over the
 * backend's worker slots, its gauges and its operator state. */
/* Two backends, the second with an awkward name, operator state, gauges and counters in both
 * worker slots. */
static struct backend_table busy_table(void)
{
    static const char *const names[] = {"127.0.0.1:8081", "we\"ird\\name\nx"};
    struct backend_table tb = table_of(2, names);
    struct backend *b0 = tb.b[0], *b1 = tb.b[1];
    atomic_store(&b0->state, BACKEND_UP);
    atomic_store(&b1->state, BACKEND_UP);
    atomic_store(&b1->admin_state, BACKEND_ADMIN_DRAIN);
    atomic_store(&b1->weight, 7);
    atomic_store(&b1->active, 2);
    atomic_store(&b1->state_changed_ms, 1700000000123);
    counter_add(&b1->check.ok, 4);
    counter_add(&b1->check.failed, 1);
    atomic_store(&b1->pw[0].idle.count, 3);
    atomic_store(&b1->pw[1].idle.count, 1);
    for (int w = 0; w < NWORKERS; w++) {
        struct backend_counters *c = &b1->pw[w].m;
        counter_add(&c->requests[1], 10 + (uint64_t)w); /* 10 + 11 */
        counter_add(&c->requests[3], 1);
        counter_add(&c->conn_errors[BACKEND_CONN_TIMEOUT], 1);
        counter_add(&c->retries, 2);
        counter_add(&c->connections, 5);
        counter_add(&c->reuses, 16);
        counter_add(&c->sent_bytes, 1000);
        counter_add(&c->received_bytes, 2000 + (uint64_t)w);
        counter_observe(&c->response, 200 + (uint64_t)w * 1000); /* 0.0002 s and 0.0012 s */
        counter_observe(&c->connect, 90);
    }
    counter_add(&b0->pw[1].m.conn_errors[BACKEND_CONN_REFUSED], 9);

    return tb;
}

Test(metrics, backend_series_sum_worker_slots_and_escape_the_name)
{
    struct backend_table tb = busy_table();
    char *t = render(&tb);
    const char *lab = "pool=\"default\",backend=\"we\\\"ird\\\\name\\nx\"";
    char line[256];
#define EXPECT_B1(fmt, ...)                                                                        \
    do {                                                                                           \
        snprintf(line, sizeof(line), fmt, __VA_ARGS__);                                            \
        expect_line(t, line);                                                                      \
    } while (0)
    EXPECT_B1("golb_backend_up{%s} 1", lab);
    EXPECT_B1("golb_backend_state{%s,state=\"drain\"} 1", lab);
    EXPECT_B1("golb_backend_state{%s,state=\"up\"} 0", lab);
    EXPECT_B1("golb_backend_requests_total{%s,code=\"2xx\"} 21", lab);
    EXPECT_B1("golb_backend_requests_total{%s,code=\"4xx\"} 2", lab);
    EXPECT_B1("golb_backend_connection_errors_total{%s,reason=\"timeout\"} 2", lab);
    EXPECT_B1("golb_backend_connection_errors_total{%s,reason=\"refused\"} 0", lab);
    EXPECT_B1("golb_backend_retries_total{%s} 4", lab);
    EXPECT_B1("golb_backend_connections_total{%s} 10", lab);
    EXPECT_B1("golb_backend_connection_reuses_total{%s} 32", lab);
    EXPECT_B1("golb_backend_idle_connections{%s} 4", lab);
    EXPECT_B1("golb_backend_sent_bytes_total{%s} 2000", lab);
    EXPECT_B1("golb_backend_received_bytes_total{%s} 4001", lab);
    EXPECT_B1("golb_backend_requests_in_flight{%s} 2", lab);
    EXPECT_B1("golb_backend_weight{%s} 7", lab);
    EXPECT_B1("golb_backend_health_checks_total{%s,result=\"success\"} 4", lab);
    EXPECT_B1("golb_backend_health_checks_total{%s,result=\"failure\"} 1", lab);
    EXPECT_B1("golb_backend_last_state_change_timestamp_seconds{%s} 1700000000.123", lab);
    EXPECT_B1("golb_backend_response_duration_seconds_bucket{%s,le=\"0.0001\"} 0", lab);
    EXPECT_B1("golb_backend_response_duration_seconds_bucket{%s,le=\"0.00025\"} 1", lab);
    EXPECT_B1("golb_backend_response_duration_seconds_bucket{%s,le=\"0.001\"} 1", lab);
    EXPECT_B1("golb_backend_response_duration_seconds_bucket{%s,le=\"0.0025\"} 2", lab);
    EXPECT_B1("golb_backend_response_duration_seconds_bucket{%s,le=\"+Inf\"} 2", lab);
    EXPECT_B1("golb_backend_response_duration_seconds_count{%s} 2", lab);
    EXPECT_B1("golb_backend_response_duration_seconds_sum{%s} 0.001400", lab);
    EXPECT_B1("golb_backend_connect_duration_seconds_bucket{%s,le=\"0.0001\"} 2", lab);
    EXPECT_B1("golb_backend_connect_duration_seconds_sum{%s} 0.000180", lab);
#undef EXPECT_B1
    /* the plain name needs no escaping; its counters are its own */
    expect_line(t, "golb_backend_connection_errors_total{pool=\"default\","
                   "backend=\"127.0.0.1:8081\",reason=\"refused\"} 9");
    expect_line(t, "golb_backend_state{pool=\"default\",backend=\"127.0.0.1:8081\","
                   "state=\"up\"} 1");
    expect_line(t, "golb_backend_requests_total{pool=\"default\",backend=\"127.0.0.1:8081\","
                   "code=\"2xx\"} 0");
    cr_expect_null(strstr(t, "name\nx"), "a raw line feed in a label would end the line");
    /* 1 client + 2 per backend */
    cr_expect_eq(check_histograms(t), 2 + 2 * tb.n);
    /* each family's HELP and TYPE once, even with two backends */
    const char *help = "# TYPE golb_backend_up gauge\n";
    cr_expect_eq(strstr(strstr(t, help) + 1, help), NULL);
    free(t);
    table_free(&tb);
}

/* Two pools listing the same URL: two backends, every golb_backend_* series labelled pool first,
 * then backend; each route's answers by status class, summed over the workers' slots. */
Test(metrics, backend_series_name_their_pool_and_routes_count_by_class)
{
    static const char *const names[] = {"127.0.0.1:8081"};
    struct backend_table d = table_of(1, names), api = table_of(1, names);
    counter_add(&d.b[0]->pw[0].m.requests[1], 3);
    counter_add(&api.b[0]->pw[1].m.requests[1], 5);
    counter_observe(&api.b[0]->pw[0].m.response, 300);
    atomic_store(&api.b[0]->state, BACKEND_UP);
    struct config_route routes[2] = {{.name = (char *)"api"}, {.name = (char *)"we\"ird"}};
    struct config cfg = {.nroutes = 2, .routes = routes};
    bool ok = false;
    struct obs_route **rs = obs_routes_new(&cfg, NULL, 0, NWORKERS, &ok);
    cr_assert(ok && rs);
    struct worker_ctx w0 = {.id = 0}, w1 = {.id = 1};
    obs_route_done(&w0, rs[0], 200);
    obs_route_done(&w1, rs[0], 204);
    obs_route_done(&w1, rs[0], 503);
    obs_route_done(&w0, rs[1], 404);
    obs_route_done(&w0, rs[1], 0); /* nothing answered: not counted */
    obs_route_done(&w0, NULL, 200); /* no route: nothing to count */
    struct generation_pool pools[2] = {{.name = "default", .table = &d},
                                       {.name = "api", .table = &api, .first = 1}};
    struct generation g = {.npools = 2, .pools = pools, .nbackends = 2, .table = &d,
                           .nroutes = 2, .route_stats = rs};
    char *t = render_gen(&g);
    expect_line(t, "golb_backend_requests_total{pool=\"default\",backend=\"127.0.0.1:8081\","
                   "code=\"2xx\"} 3");
    expect_line(t, "golb_backend_requests_total{pool=\"api\",backend=\"127.0.0.1:8081\","
                   "code=\"2xx\"} 5");
    expect_line(t, "golb_backend_up{pool=\"default\",backend=\"127.0.0.1:8081\"} 0");
    expect_line(t, "golb_backend_up{pool=\"api\",backend=\"127.0.0.1:8081\"} 1");
    expect_line(t, "golb_backend_response_duration_seconds_count{pool=\"api\","
                   "backend=\"127.0.0.1:8081\"} 1");
    expect_line(t, "# TYPE golb_route_requests_total counter");
    expect_line(t, "golb_route_requests_total{route=\"api\",code_class=\"2xx\"} 2");
    expect_line(t, "golb_route_requests_total{route=\"api\",code_class=\"5xx\"} 1");
    expect_line(t, "golb_route_requests_total{route=\"api\",code_class=\"4xx\"} 0");
    expect_line(t, "golb_route_requests_total{route=\"we\\\"ird\",code_class=\"4xx\"} 1");
    cr_expect_eq(check_histograms(t), 2 + 2 * 2);
    if (system("command -v promtool >/dev/null 2>&1") == 0)
        expect_promtool_accepts(t);
    free(t);
    obs_routes_free(rs, 2);
    table_free(&d);
    table_free(&api);
}

Test(metrics, reloads_are_counted_and_the_generation_follows_the_last_success)
{
    metrics_reload_done(true, 5);
    metrics_reload_done(false, 6);
    char *t = render(NULL);
    expect_line(t, "golb_config_reloads_total{result=\"success\"} 1");
    expect_line(t, "golb_config_reloads_total{result=\"failure\"} 1");
    expect_line(t, "golb_config_generation 5");
    expect_line(t, "golb_config_last_reload_successful 0");
    free(t);
}

/* The whole exposition with every family populated (histograms with observations past the last
 * boundary, escaped labels, reload counters) is valid for Prometheus' own checker. */
Test(metrics, promtool_accepts_the_exposition)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        cr_skip_test("promtool is not installed (make deps-test installs it): not checked");
    counter_add(&m[0]->requests[OBS_PROTO_HTTP1][1], 3);
    counter_add(&m[1]->requests[OBS_PROTO_H2][1], 2);
    counter_add(&m[1]->tls_handshakes[OBS_TLS_FAILED], 1);
    counter_observe(&m[0]->duration[OBS_PROTO_HTTP1], 100);
    counter_observe(&m[1]->duration[OBS_PROTO_H2], 20000000);
    metrics_reload_done(true, 2);
    metrics_reload_done(false, 3);
    struct backend_table tb = busy_table();
    char *t = render(&tb);
    cr_expect_gt(check_histograms(t), 0);
    expect_promtool_accepts(t);
    free(t);
    table_free(&tb);
}

/* The checker itself catches a series whose buckets decrease or whose +Inf is not its _count,
 * so the checks above can fail. */
Test(metrics, the_histogram_checker_catches_inconsistent_series)
{
    int series;
    char why[600];
    cr_expect_eq(histogram_problems("x_bucket{le=\"1\"} 3\nx_bucket{le=\"+Inf\"} 2\nx_sum 1\n"
                                    "x_count 2\n",
                                    &series, why, sizeof(why)),
                 1, "decreasing: %s", why);
    cr_expect_eq(
        histogram_problems("x_bucket{a=\"b\",le=\"1\"} 1\nx_bucket{a=\"b\",le=\"+Inf\"} 2\n"
                           "x_sum{a=\"b\"} 1\nx_count{a=\"b\"} 3\n",
                           &series, why, sizeof(why)),
        1, "+Inf != _count: %s", why);
    cr_expect_eq(
        histogram_problems("x_bucket{le=\"1\"} 1\nx_sum 1\nx_count 1\n", &series, why, sizeof(why)),
        1, "no +Inf: %s", why);
    cr_expect_eq(histogram_problems("x_bucket{le=\"1\"} 1\nx_bucket{le=\"+Inf\"} 2\nx_count 2\n",
                                    &series, why, sizeof(why)),
                 0, "%s", why);
    cr_expect_eq(series, 1);
}
