/* Unit tests for the observability modules: jsonw escaping (nothing a client sends can break a
 * JSON line or a text line), the rendered exposition, and the access-log line formats (histograms
 * and quantiles: tests/unit/base/test_counter.c). */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "core/generation.h"
#include "upstream/backend.h"
#include "config/config.h"
#include "http/http.h"
#include "base/jsonw.h"
#include "admin/metrics.h"
#include "core/obs.h"
#include "core/worker_ctx.h"

static const char *json_of(const char *in, size_t n, size_t max)
{
    static char out[4096];
    struct jsonw j;
    jsonw_init(&j, out, sizeof(out) - 1);
    jsonw_str(&j, in, n, max);
    cr_assert(!j.overflow);
    out[j.len] = '\0';
    return out;
}

Test(jsonw, escapes_quotes_backslashes_and_every_control_byte)
{
    cr_expect_str_eq(json_of("a\"b\\c", 5, 0), "\"a\\\"b\\\\c\"");
    cr_expect_str_eq(json_of("\n\r\t\x01\x1f\x7f", 6, 0),
                     "\"\\u000a\\u000d\\u0009\\u0001\\u001f\\u007f\"");
    cr_expect_str_eq(json_of("x\0y", 3, 0), "\"x\\u0000y\"");
}

Test(jsonw, keeps_valid_utf8_and_replaces_invalid_bytes)
{
    cr_expect_str_eq(json_of("caf\xc3\xa9", 5, 0), "\"caf\xc3\xa9\"");
    cr_expect_str_eq(json_of("\xe2\x82\xac", 3, 0), "\"\xe2\x82\xac\"");
    cr_expect_str_eq(json_of("\xff\xc3", 2, 0), "\"\\ufffd\\ufffd\"");
    cr_expect_str_eq(json_of("\xc0\xaf", 2, 0), "\"\\ufffd\\ufffd\"");            /* overlong */
    cr_expect_str_eq(json_of("\xed\xa0\x80", 3, 0), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    cr_expect_str_eq(json_of("\xf4\x90\x80\x80", 4, 0),
                     "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* past U+10FFFF */
}

Test(jsonw, cuts_long_values_and_marks_them)
{
    cr_expect_str_eq(json_of("abcdef", 6, 3), "\"abc...\"");
}

Test(jsonw, text_mode_shows_bytes_as_hex)
{
    char out[64];
    struct jsonw j;
    jsonw_init(&j, out, sizeof(out));
    jsonw_text(&j, "a\"\\\n\xff", 5, 0);
    out[j.len] = '\0';
    cr_expect_str_eq(out, "a\\\"\\\\\\x0a\\xff");
}

Test(jsonw, overflow_is_reported_never_written_past)
{
    char out[8];
    struct jsonw j;
    jsonw_init(&j, out, 4);
    jsonw_str(&j, "abcdef", 6, 0);
    cr_expect(j.overflow);
    cr_expect_leq(j.len, 4);
}

Test(jsonw, numbers_and_times)
{
    char out[64];
    struct jsonw j;
    jsonw_init(&j, out, sizeof(out));
    jsonw_secs_us(&j, 1234567);
    jsonw_raw(&j, " ", 1);
    jsonw_i64(&j, -42);
    jsonw_raw(&j, " ", 1);
    jsonw_time_ms(&j, 86400000LL + 1);
    out[j.len] = '\0';
    cr_expect_str_eq(out, "1.234567 -42 1970-01-02T00:00:00.001Z");
}

/* A rendered scrape over two workers: sums, +Inf == _count, zero series present. */
Test(metrics, render_sums_workers_and_keeps_histograms_consistent)
{
    static struct config cfg;
    static struct config_backend cb[2] = {
        {.name = "127.0.0.1:8081", .host = "127.0.0.1", .port = 8081, .weight = 1},
        {.name = "[::1]:8082", .host = "::1", .port = 8082, .weight = 1}};
    cfg.nbackends = 2;
    cfg.backends = cb;
    struct backend_table *t = backend_table_new(&cfg, NULL, 2);
    cr_assert_not_null(t);
    cr_assert_eq(metrics_setup(2, "9.9.9"), 0);
    struct obs_counters *w1 = obs_counters_new(0), *w2 = obs_counters_new(1);
    cr_assert(w1 && w2);
    counter_add(&w1->requests[OBS_PROTO_HTTP1][1], 3);
    counter_add(&w2->requests[OBS_PROTO_HTTP1][1], 4);
    counter_add(&t->b[1]->pw[1].m.requests[4], 2);
    counter_add(&t->b[1]->pw[0].m.requests[4], 1);
    counter_observe(&w1->duration[OBS_PROTO_HTTP1], 1000);
    counter_observe(&w2->duration[OBS_PROTO_HTTP1], 20000000);
    backend_check_done(t->b[1], false, "HTTP 500", 3);
    metrics_reload_done(false, 1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct generation_pool pool = {.name = "default", .table = t};
    struct generation g = {.npools = 1, .pools = &pool, .nbackends = t->n, .table = t};
    cr_assert_eq(metrics_render(f, &g), 0);
    fclose(f);
    cr_expect(strstr(text, "golb_build_info{version=\"9.9.9\"} 1\n"));
    cr_expect(strstr(text, "golb_http_requests_total{code=\"2xx\",protocol=\"http/1.1\"} 7\n"));
    /* 1 ms: counted from le="0.001" (the sub-millisecond boundaries come first) */
#define DUR "golb_http_request_duration_seconds"
    cr_expect(strstr(text, DUR "_bucket{protocol=\"http/1.1\",le=\"0.0005\"} 0\n"));
    cr_expect(strstr(text, DUR "_bucket{protocol=\"http/1.1\",le=\"0.001\"} 1\n"));
    cr_expect(strstr(text, DUR "_bucket{protocol=\"http/1.1\",le=\"0.005\"} 1\n"));
    cr_expect(strstr(text, DUR "_bucket{protocol=\"http/1.1\",le=\"+Inf\"} 2\n"));
    cr_expect(strstr(text, DUR "_count{protocol=\"http/1.1\"} 2\n"));
    cr_expect(strstr(text, "golb_backend_requests_total{pool=\"default\",backend=\"[::1]:8082\","
                           "code=\"5xx\"} 3\n"),
              "summed over the backend's worker slots");
    cr_expect(strstr(text, "golb_config_reloads_total{result=\"failure\"} 1\n"));
    cr_expect(strstr(text, "golb_config_reloads_total{result=\"success\"} 0\n"));
    cr_expect(strstr(text, "golb_config_last_reload_successful 0\n"));
    cr_expect(strstr(text, "golb_backend_requests_total{pool=\"default\","
                           "backend=\"127.0.0.1:8081\",code=\"5xx\"} 0\n"));
    cr_expect(strstr(text,
                     "golb_backend_health_checks_total{pool=\"default\",backend=\"[::1]:8082\","
                     "result=\"failure\"} 1\n"));
    cr_expect(strstr(text, "golb_backend_state{pool=\"default\",backend=\"127.0.0.1:8081\","
                           "state=\"down\"} 1\n"));
    cr_expect(strstr(text, "golb_backend_weight{pool=\"default\",backend=\"127.0.0.1:8081\"} 1\n"));
    struct backend_check c;
    cr_expect(backend_check_read(t->b[1], &c));
    cr_expect_str_eq(c.reason, "HTTP 500");
    cr_expect(!c.result);
    free(text);
    obs_counters_free(w1);
    obs_counters_free(w2);
    metrics_teardown();
    backend_table_free(t);
}

static struct obs_req sample_req(void)
{
    struct obs_req r;
    memset(&r, 0, sizeof(r));
    r.start_wall_ms = 1700000000123LL;
    r.total_us = 1500;
    r.connect_us = 100;
    r.head_us = 900;
    r.status = 200;
    r.backend = NULL;
    r.version = HTTP_V1_1;
    memcpy(r.method, "GET", 3);
    r.method_len = 3;
    const char *t = "/p?q=1";
    memcpy(r.target, t, strlen(t));
    r.target_len = (uint16_t)strlen(t);
    const char *ua = "evil\"\n{\"x\":1}\x1b";
    memcpy(r.ua, ua, strlen(ua));
    r.ua_len = (uint8_t)strlen(ua);
    memcpy(r.reqid, "id1", 3);
    r.reqid_len = 3;
    r.resp_body_bytes = 12;
    return r;
}

Test(accesslog, json_line_has_the_documented_fields_and_one_newline)
{
    struct obs_req r = sample_req();
    struct obs_route route = {.name = "to \"api\""};
    r.route = &route;
    r.pool = "api";
    char line[ACCESSLOG_LINE_MAX];
    size_t n = obs_format_line(ACCESSLOG_JSON, line, sizeof(line), &r, "127.0.0.1:8081", "10.0.0.1",
                               "--", NULL);
    cr_assert_gt(n, 0);
    line[n] = '\0';
    cr_expect_eq(strchr(line, '\n'), line + n - 1, "exactly one newline, at the end: %s", line);
    const char *want =
        "{\"time\":\"2023-11-14T22:13:20.123Z\",\"request_id\":\"id1\",\"client.address\":"
        "\"10.0.0.1\",\"http.request.method\":\"GET\",\"url.path\":\"/p\",\"url.query\":\"q=1\","
        "\"network.protocol.version\":\"1.1\",\"http.response.status_code\":200,"
        "\"http.request.body.size\":0,\"http.response.body.size\":12,\"user_agent.original\":"
        "\"evil\\\"\\u000a{\\\"x\\\":1}\\u001b\",\"route\":\"to \\\"api\\\"\",\"pool\":\"api\","
        "\"backend\":\"127.0.0.1:8081\","
        "\"upstream.reused\":false,\"retries\":0,\"duration\":0.001500,\"timing\":{\"connect\":"
        "0.000100,\"response_head\":0.000900,\"total\":0.001500},\"termination\":\"--\","
        "\"error.type\":null}\n";
    cr_expect_str_eq(line, want);
}

Test(accesslog, text_line_is_one_line)
{
    struct obs_req r = sample_req();
    char line[ACCESSLOG_LINE_MAX];
    size_t n = obs_format_line(ACCESSLOG_TEXT, line, sizeof(line), &r, NULL, "10.0.0.1", "CH",
                               "client_abort");
    line[n] = '\0';
    cr_expect_str_eq(line, "2023-11-14T22:13:20.123Z 10.0.0.1 \"GET /p?q=1 HTTP/1.1\" 200 0 12 "
                           "\"evil\\\"\\x0a{\\\"x\\\":1}\\x1b\" - reused=0 retries=0 "
                           "connect=0.000100 head=0.000900 total=0.001500 CH client_abort id=id1 "
                           "route=- pool=-\n");
    struct obs_route route = {.name = "route 2"};
    r.route = &route;
    r.pool = "api";
    n = obs_format_line(ACCESSLOG_TEXT, line, sizeof(line), &r, "api/127.0.0.1:9", "10.0.0.1", "--",
                        NULL);
    line[n] = '\0';
    cr_expect(strstr(line, " id=id1 route=\"route 2\" pool=api\n"), "%s", line);
}

Test(accesslog, worst_case_line_fits)
{
    struct obs_req r;
    memset(&r, 0, sizeof(r));
    memset(r.method, 0xff, sizeof(r.method));
    r.method_len = sizeof(r.method);
    memset(r.target, 0x01, sizeof(r.target));
    r.target_len = sizeof(r.target);
    memset(r.ua, 0x01, sizeof(r.ua));
    r.ua_len = sizeof(r.ua);
    memset(r.reqid, 'z', sizeof(r.reqid) - 1);
    r.reqid_len = sizeof(r.reqid) - 1;
    char line[ACCESSLOG_LINE_MAX];
    char ip[47];
    memset(ip, '1', 46);
    ip[46] = '\0';
    cr_expect_gt(obs_format_line(ACCESSLOG_JSON, line, sizeof(line), &r,
                                 "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", ip, "CD",
                                 "client_abort"),
                 0);
    cr_expect_gt(
        obs_format_line(ACCESSLOG_TEXT, line, sizeof(line), &r, NULL, ip, "CD", "client_abort"), 0);
}

/* Reads a whole small file into buf (NUL-terminated); "" when it does not exist. */
static const char *slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return buf;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A reload moves the access log: started from off, then to another file, then off; a destination
 * that cannot be opened is refused and changes nothing. */
Test(accesslog, configure_starts_moves_and_stops_the_log)
{
    char dir[] = "/tmp/golb-alog-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char a[128], b[128], bad[160], buf[4096];
    snprintf(a, sizeof(a), "%s/a.log", dir);
    snprintf(b, sizeof(b), "%s/b.log", dir);
    snprintf(bad, sizeof(bad), "%s/missing/c.log", dir);
    cr_assert_eq(accesslog_configure(ACCESSLOG_OFF, NULL), 0);
    cr_expect_eq(accesslog_current(), ACCESSLOG_OFF);
    cr_assert_null(accesslog_ring_new(), "no ring while the log is off");
    cr_assert_eq(accesslog_configure(ACCESSLOG_JSON, a), 0);
    cr_expect_eq(accesslog_current(), ACCESSLOG_JSON);
    struct accesslog_ring *ring = accesslog_ring_new();
    cr_assert_not_null(ring);
    accesslog_push(ring, "one\n", 4);
    cr_expect_eq(accesslog_configure(ACCESSLOG_JSON, bad), -ENOENT);
    cr_assert_eq(accesslog_configure(ACCESSLOG_TEXT, b), 0);
    cr_expect_eq(accesslog_current(), ACCESSLOG_TEXT);
    accesslog_push(ring, "two\n", 4);
    cr_assert_eq(accesslog_configure(ACCESSLOG_OFF, NULL), 0);
    cr_expect_eq(accesslog_current(), ACCESSLOG_OFF);
    accesslog_stop(); /* writes out what the ring holds */
    cr_expect_str_eq(slurp(a, buf, sizeof(buf)), "one\n",
                     "lines before the move stay where they were");
    cr_expect_str_eq(slurp(b, buf, sizeof(buf)), "two\n");
    unlink(a);
    unlink(b);
    rmdir(dir);
}

/* A request id: the process's 16 hex digits, then the worker (4) and its sequence number (12). */
Test(obs, request_ids_name_the_process_the_worker_and_the_sequence)
{
    struct worker_ctx w;
    memset(&w, 0, sizeof(w));
    w.id = 0x2a;
    w.reqid_seq = 0xabcdef0122;
    char a[OBS_REQID_MAX], b[OBS_REQID_MAX];
    cr_assert_eq(obs_new_request_id(&w, a), 32);
    cr_assert_eq(obs_new_request_id(&w, b), 32);
    cr_expect_eq(strlen(a), 32);
    cr_expect_str_eq(a + 16, "002a00abcdef0123");
    cr_expect_str_eq(b + 16, "002a00abcdef0124");
    cr_expect_eq(memcmp(a, b, 16), 0, "one process: one first half");
    for (int i = 0; i < 32; i++)
        cr_expect(strchr("0123456789abcdef", a[i]) != NULL, "hex digit at %d: %c", i, a[i]);
}

/* One table for both sessions: the codes golb's own answers are logged with. */
Test(obs, reply_terms_by_status_and_stage)
{
    const char *t, *e;
    obs_reply_terms(408, false, false, &t, &e);
    cr_expect(strcmp(t, "cR") == 0 && strcmp(e, "header_timeout") == 0);
    obs_reply_terms(408, true, false, &t, &e);
    cr_expect(strcmp(t, "cD") == 0 && strcmp(e, "body_timeout") == 0);
    obs_reply_terms(431, true, false, &t, &e);
    cr_expect(strcmp(t, "PR") == 0 && strcmp(e, "too_large") == 0);
    obs_reply_terms(502, true, false, &t, &e);
    cr_expect(strcmp(t, "SC") == 0 && strcmp(e, "connect_failed") == 0);
    obs_reply_terms(502, true, true, &t, &e);
    cr_expect(strcmp(t, "SH") == 0 && strcmp(e, "invalid_response") == 0);
    obs_reply_terms(503, true, false, &t, &e);
    cr_expect(strcmp(t, "PC") == 0 && strcmp(e, "no_backend") == 0);
    obs_reply_terms(504, true, true, &t, &e);
    cr_expect(strcmp(t, "sH") == 0 && strcmp(e, "response_timeout") == 0);
    obs_reply_terms(400, false, false, &t, &e);
    cr_expect(strcmp(t, "PR") == 0 && strcmp(e, "bad_request") == 0);
}
