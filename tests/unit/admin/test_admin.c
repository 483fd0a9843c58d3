/* Unit tests for the admin API (src/admin/admin.c): the rule for changes (the bearer token check
 * and who may change what without a token), then the listener through admin_start: the token on
 * changes, Origin for every request, percent-decoded backend names in paths, bad input. The
 * status page and metrics contents are tested end to end (tests/e2e/test_91_observability.py). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "admin/admin.h"
#include "config/config.h"
#include "core/generation.h"
#include "core/obs.h"
#include "core/worker_ctx.h"
#include "upstream/backend.h"

static bool bearer(const char *token, const char *value)
{
    return admin_bearer_ok(token, value, value ? strlen(value) : 0);
}

Test(admin, bearer_token_must_match_exactly)
{
    cr_expect(bearer("s3cret", "Bearer s3cret"));
    cr_expect(bearer("s3cret", "bearer s3cret"), "the scheme is case-insensitive");
    cr_expect(bearer("s3cret", "BEARER   s3cret"), "1*SP after the scheme");
    cr_expect_not(bearer("s3cret", "Bearer s3cre"));
    cr_expect_not(bearer("s3cret", "Bearer s3cret-and-more"));
    cr_expect_not(bearer("s3cret", "Bearer S3CRET"), "the token is case-sensitive");
    cr_expect_not(bearer("s3cret", "Bearer"));
    cr_expect_not(bearer("s3cret", "Bearer "));
    cr_expect_not(bearer("s3cret", "Basic czNjcmV0"));
    cr_expect_not(bearer("s3cret", "Bearers3cret"));
    cr_expect_not(bearer("s3cret", "s3cret"));
    cr_expect_not(bearer("s3cret", ""));
    cr_expect_not(bearer("s3cret", NULL));
    cr_expect_not(bearer(NULL, "Bearer s3cret"));
    /* only the first len bytes count (a field value is a span, not a C string) */
    const char *v = "Bearer s3cretXYZ";
    cr_expect(admin_bearer_ok("s3cret", v, 13));
    cr_expect_not(admin_bearer_ok("s3cret", v, 14));
    /* a long token, and a guess of another length */
    char big[5000];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char hdr[5100];
    snprintf(hdr, sizeof(hdr), "Bearer %s", big);
    cr_expect(bearer(big, hdr));
    hdr[strlen(hdr) - 1] = '\0';
    cr_expect_not(bearer(big, hdr));
}

Test(admin, changes_without_a_token_only_on_a_unix_socket)
{
    /* no token: a unix socket (mode 0600) decides who connects; TCP is refused (403) */
    cr_expect_eq(admin_authorize(NULL, true, NULL, 0), ADMIN_AUTH_OK);
    cr_expect_eq(admin_authorize(NULL, false, NULL, 0), ADMIN_AUTH_NO_TOKEN);
    cr_expect_eq(admin_authorize(NULL, false, "Bearer x", 8), ADMIN_AUTH_NO_TOKEN,
                 "any token is refused when none is configured");
    /* a token: required on every listener (401 without it or with another) */
    cr_expect_eq(admin_authorize("t0k", false, "Bearer t0k", 10), ADMIN_AUTH_OK);
    cr_expect_eq(admin_authorize("t0k", true, "Bearer t0k", 10), ADMIN_AUTH_OK);
    cr_expect_eq(admin_authorize("t0k", false, NULL, 0), ADMIN_AUTH_BAD_TOKEN);
    cr_expect_eq(admin_authorize("t0k", true, NULL, 0), ADMIN_AUTH_BAD_TOKEN);
    cr_expect_eq(admin_authorize("t0k", false, "Bearer t0K", 10), ADMIN_AUTH_BAD_TOKEN);
}

/* ================================================================ the listener ============== */

/* The admin HTTP server through its public entry (admin_start) on 127.0.0.1, port 0 (the port it
 * bound is read from its start-up log line) or on a unix socket in a temp dir, driven by raw
 * HTTP/1.1 requests: every answer ends with the connection's close (the admin server always says
 * Connection: close). What a change did is read back from the backends of the generation it was
 * given (their admin state). */

#define DEADLINE_MS 10000

static struct generation *gen;
static struct admin *adm;
static uint16_t port;
static char sock_dir[48], sock_path[96];
static _Atomic int reloads; /* calls of the reload function (made on the admin thread) */

/* Answers at once, as a control thread would after a reload that succeeded. */
static int fake_reload(void *arg, const char *who, struct admin *a, uint64_t ticket)
{
    (void)arg;
    (void)who;
    reloads++;
    struct admin_reload r = {.ok = true, .generation = 1};
    admin_reload_done(a, ticket, &r);
    return 0;
}

/* Starts the admin listener for a configuration with `admin_yaml` (the admin mapping's lines),
 * two backends and `more` (pools, routes: "" for none). */
static void start_admin_with(const char *admin_yaml, const char *more)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "admin:\n%sbackends:\n  - http://127.0.0.1:8081/\n  - http://127.0.0.1:8082/\n%s",
             admin_yaml, more);
    struct config *cfg = NULL;
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), stderr, &cfg), 0, "%s", yaml);
    gen = generation_new(cfg, NULL, 1, 1);
    cr_assert_not_null(gen);
    struct capture cap;
    capture_begin(&cap);
    adm = admin_start(gen, "127.0.0.1:8080", "test", fake_reload, NULL);
    capture_end(&cap);
    cr_assert_not_null(adm, "%s", cap.text);
    const char *at = strstr(cap.text, "on http://127.0.0.1:");
    port = at ? (uint16_t)atoi(at + strlen("on http://127.0.0.1:")) : 0;
    capture_free(&cap);
}

static void start_admin(const char *admin_yaml)
{
    start_admin_with(admin_yaml, "");
}

static void start_tcp(const char *token_line)
{
    char a[256];
    snprintf(a, sizeof(a), "  listen: 127.0.0.1:0\n%s", token_line);
    start_admin(a);
    cr_assert_gt(port, 0, "the admin port is not in the start-up log");
}

static void start_tcp_with(const char *token_line, const char *more)
{
    char a[256];
    snprintf(a, sizeof(a), "  listen: 127.0.0.1:0\n%s", token_line);
    start_admin_with(a, more);
    cr_assert_gt(port, 0, "the admin port is not in the start-up log");
}

static void start_unix(void)
{
    strcpy(sock_dir, "/tmp/golb-admin-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(sock_dir));
    snprintf(sock_path, sizeof(sock_path), "%s/admin.sock", sock_dir);
    char a[256];
    snprintf(a, sizeof(a), "  listen: unix:%s\n", sock_path);
    start_admin(a);
}

static void http_teardown(void)
{
    admin_stop(adm);
    adm = NULL;
    if (gen)
        generation_unref(gen);
    gen = NULL;
    if (sock_dir[0]) {
        unlink(sock_path);
        rmdir(sock_dir);
        sock_dir[0] = '\0';
    }
}

TestSuite(admin_http, .fini = http_teardown);

/* Sends `request` whole and reads the answer until the admin server closes; returns its status
 * (0 when none came) and the answer in resp. */
static int http(const char *request, char *resp, size_t cap)
{
    int fd;
    if (sock_dir[0]) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        snprintf(un.sun_path, sizeof(un.sun_path), "%s", sock_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0, "%s", strerror(errno));
    } else {
        struct sockaddr_in in = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0, "%s", strerror(errno));
    }
    size_t len = strlen(request);
    cr_assert_eq(write(fd, request, len), (ssize_t)len);
    size_t got = 0;
    for (;;) {
        cr_assert(wait_fd(fd, POLLIN, DEADLINE_MS) & (POLLIN | POLLHUP),
                  "no answer within %d ms to %s", DEADLINE_MS, request);
        ssize_t n = read(fd, resp + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        cr_assert_lt(got, cap - 1, "answer too large");
    }
    close(fd);
    resp[got] = '\0';
    int status = 0;
    sscanf(resp, "HTTP/1.1 %d", &status);
    return status;
}

static char resp[65536];

/* A PUT of {"state": state} to /api/v1/backends/<name as sent>, with extra head lines. */
static int put_state(const char *name, const char *state, const char *extra)
{
    char body[64], req[1024];
    snprintf(body, sizeof(body), "{\"state\":\"%s\"}", state);
    snprintf(req, sizeof(req),
             "PUT /api/v1/backends/%s HTTP/1.1\r\nHost: admin\r\n%sContent-Length: %zu\r\n\r\n%s",
             name, extra, strlen(body), body);
    return http(req, resp, sizeof(resp));
}

static enum backend_admin_state admin_state(int backend)
{
    return backend_admin(gen->table->b[backend]);
}

#define TOKEN "  token: s3cret-t0ken\n"
#define AUTH "Authorization: Bearer s3cret-t0ken\r\n"

/* ---- the token ---- */

Test(admin_http, a_change_needs_the_bearer_token)
{
    start_tcp(TOKEN);
    cr_expect_eq(put_state("127.0.0.1:8081", "drain", ""), 401);
    cr_expect(strstr(resp, "WWW-Authenticate: Bearer realm=\"golb\"\r\n"), "%s", resp);
    cr_expect_eq(put_state("127.0.0.1:8081", "drain", "Authorization: Bearer s3cret-t0keN\r\n"),
                 401, "another token");
    cr_expect_eq(put_state("127.0.0.1:8081", "drain", "Authorization: Basic czNjcmV0\r\n"), 401);
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_READY, "refused changes changed nothing");
    cr_expect_eq(put_state("127.0.0.1:8081", "drain", AUTH), 200, "%s", resp);
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_DRAIN);
    cr_expect_eq(admin_state(1), BACKEND_ADMIN_READY, "only the backend named");
}

Test(admin_http, a_reload_needs_the_token_and_reads_need_none)
{
    start_tcp(TOKEN);
    const char *reload = "POST /api/v1/reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    cr_expect_eq(http(reload, resp, sizeof(resp)), 401);
    cr_expect_eq(reloads, 0, "no reload ran");
    cr_expect_eq(http("POST /api/v1/reload HTTP/1.1\r\nHost: a\r\n" AUTH
                      "Content-Length: 0\r\n\r\n",
                      resp, sizeof(resp)),
                 200, "%s", resp);
    cr_expect_eq(reloads, 1);
    cr_expect(strstr(resp, "\"result\":\"success\""), "%s", resp);
    cr_expect_eq(http("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof(resp)), 200);
    cr_expect_eq(http("GET /api/v1/status HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof(resp)), 200);
    cr_expect_eq(http("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof(resp)), 200);
}

/* Without a token a TCP listener is read-only: 403 (not 401: no token would do). */
Test(admin_http, without_a_token_tcp_refuses_changes)
{
    start_tcp("");
    cr_expect_eq(put_state("127.0.0.1:8081", "maint", ""), 403);
    cr_expect_eq(put_state("127.0.0.1:8081", "maint", "Authorization: Bearer anything\r\n"), 403);
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_READY);
    cr_expect_eq(http("GET /api/v1/status HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof(resp)), 200);
}

/* ---- Origin: only the admin address itself ---- */

static int put_with_origin(const char *origin)
{
    char extra[256];
    snprintf(extra, sizeof(extra), AUTH "Origin: %s\r\n", origin);
    return put_state("127.0.0.1:8081", "drain", extra);
}

/* A browser page elsewhere cannot drive the API with a user's token (CSRF): a request whose Origin
 * is not the admin address is refused before anything else, GET included; the admin's own page
 * (same origin, by address or as localhost for a loopback listener) is served. */
Test(admin_http, a_foreign_origin_is_refused)
{
    start_tcp(TOKEN);
    char self[64], lo[64], other_port[64];
    snprintf(self, sizeof(self), "http://127.0.0.1:%u", port);
    snprintf(lo, sizeof(lo), "http://localhost:%u", port);
    snprintf(other_port, sizeof(other_port), "http://127.0.0.1:%u", port == 1 ? 2 : 1);
    cr_expect_eq(put_with_origin("http://evil.example"), 403);
    cr_expect(strstr(resp, "cross-origin request refused"), "%s", resp);
    cr_expect_eq(put_with_origin("null"), 403, "an opaque origin");
    cr_expect_eq(put_with_origin(""), 403, "an empty one");
    cr_expect_eq(put_with_origin(other_port), 403, "another port is another origin");
    char slash[80];
    snprintf(slash, sizeof(slash), "%s/", self);
    cr_expect_eq(put_with_origin(slash), 403, "an Origin is compared exactly");
    char https[80];
    snprintf(https, sizeof(https), "https://127.0.0.1:%u", port);
    cr_expect_eq(put_with_origin(https), 403, "another scheme");
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_READY, "nothing changed");
    char get[256];
    snprintf(get, sizeof(get), "GET /api/v1/status HTTP/1.1\r\nHost: a\r\nOrigin: %s\r\n\r\n",
             "http://evil.example");
    cr_expect_eq(http(get, resp, sizeof(resp)), 403, "reads too: the answer is not for them");

    cr_expect_eq(put_with_origin(self), 200, "%s", resp);
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_DRAIN);
    cr_expect_eq(put_with_origin(lo), 200, "localhost names the loopback listener");
}

/* A unix socket has no web origin: a request carrying any Origin came through a browser (a
 * forwarding proxy, say) and is refused, even though the socket needs no token. */
Test(admin_http, a_unix_socket_needs_no_token_but_refuses_any_origin)
{
    start_unix();
    cr_expect_eq(put_state("127.0.0.1:8081", "maint", ""), 200, "%s", resp);
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_MAINT);
    cr_expect_eq(put_state("127.0.0.1:8082", "maint", "Origin: http://localhost\r\n"), 403);
    cr_expect_eq(put_state("127.0.0.1:8082", "maint", "Origin: \r\n"), 403, "an empty one too");
    cr_expect_eq(admin_state(1), BACKEND_ADMIN_READY);
}

/* ---- backend names in paths ---- */

/* A backend is named "host:port"; in a path the colon may come percent-encoded, in either case. */
Test(admin_http, backend_names_are_percent_decoded)
{
    start_tcp(TOKEN);
    cr_expect_eq(put_state("127.0.0.1%3A8081", "drain", AUTH), 200, "%s", resp);
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_DRAIN);
    cr_expect_eq(put_state("127.0.0.1%3a8082", "maint", AUTH), 200, "%s", resp);
    cr_expect_eq(admin_state(1), BACKEND_ADMIN_MAINT);
    cr_expect_eq(put_state("%31%32%37.0.0.1:8081?x=1", "ready", AUTH), 200,
                 "every byte may be encoded; the query is not part of the name: %s", resp);
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_READY);
}

/* A bad escape (not two hex digits, or a NUL) is a 400 and changes nothing; a well-formed name
 * that is no backend is a 404. */
Test(admin_http, bad_escapes_in_backend_names_are_400)
{
    start_tcp(TOKEN);
    static const char *const bad[] = {"127.0.0.1%3",      "127.0.0.1%",        "127.0.0.1%zz8081",
                                      "127.0.0.1%3G8081", "127.0.0.1%00:8081", "%%3A"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_expect_eq(put_state(bad[i], "maint", AUTH), 400, "%s: %s", bad[i], resp);
        cr_expect(strstr(resp, "invalid backend name encoding"), "%s: %s", bad[i], resp);
    }
    cr_expect_eq(put_state("127.0.0.1%3A9999", "maint", AUTH), 404);
    cr_expect_eq(put_state("127.0.0.1%2F8081", "maint", AUTH), 404, "a decoded / is no name");
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_READY);
    cr_expect_eq(admin_state(1), BACKEND_ADMIN_READY);
}

/* Bad input in the body is a 400 that changes nothing, even with valid parts. */
Test(admin_http, a_bad_body_changes_nothing)
{
    start_tcp(TOKEN);
    cr_expect_eq(put_state("127.0.0.1:8081", "sideways", AUTH), 400, "%s", resp);
    char req[512];
    const char *body = "{\"state\":\"drain\",\"weight\":5000}";
    snprintf(req, sizeof(req),
             "PUT /api/v1/backends/127.0.0.1:8081 HTTP/1.1\r\nHost: a\r\n" AUTH
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    cr_expect_eq(http(req, resp, sizeof(resp)), 400, "%s", resp);
    cr_expect_eq(admin_state(0), BACKEND_ADMIN_READY, "the valid state was not applied either");
    cr_expect_eq(atomic_load(&gen->table->b[0]->weight), 1);
    cr_expect_eq(
        http("GET /api/v1/backends/127.0.0.1:8081 HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof(resp)),
        405);
}

/* ---- pools ---- */

/* The URL of default's first backend is also api's: two backends, addressed by pool. */
#define POOLS                                                                                      \
    "pools:\n  api:\n    balance: leastConnections\n"                                              \
    "    backends: [http://127.0.0.1:8081/, http://127.0.0.1:9000/]\n"                            \
    "routes:\n  - {name: to-api, match: {pathPrefix: /api}, pool: api}\n"                         \
    "  - {name: split, split: [{pool: default, weight: 1}, {pool: api, weight: 1}]}\n"

/* A PUT of {"state": state} to `path` (the pool form or the old one). */
static int put_path(const char *path, const char *state)
{
    char body[64], req[1024];
    snprintf(body, sizeof(body), "{\"state\":\"%s\"}", state);
    snprintf(req, sizeof(req),
             "PUT %s HTTP/1.1\r\nHost: admin\r\n" AUTH "Content-Length: %zu\r\n\r\n%s", path,
             strlen(body), body);
    return http(req, resp, sizeof(resp));
}

static enum backend_admin_state pool_state(const char *pool, int i)
{
    return backend_admin(generation_pool_find(gen, pool)->table->b[i]);
}

Test(admin_http, a_pool_backend_is_addressed_by_pool_and_the_old_path_is_default)
{
    start_tcp_with(TOKEN, POOLS);
    cr_expect_eq(put_path("/api/v1/pools/api/backends/127.0.0.1:8081", "drain"), 200, "%s", resp);
    cr_expect_eq(pool_state("api", 0), BACKEND_ADMIN_DRAIN);
    cr_expect_eq(pool_state("default", 0), BACKEND_ADMIN_READY, "the same URL in default: another");
    cr_expect(strstr(resp, "\"name\":\"127.0.0.1:8081\",\"pool\":\"api\""), "%s", resp);
    cr_expect_eq(put_path("/api/v1/backends/127.0.0.1:8081", "maint"), 200, "%s", resp);
    cr_expect_eq(pool_state("default", 0), BACKEND_ADMIN_MAINT, "the old path: default");
    cr_expect_eq(pool_state("api", 0), BACKEND_ADMIN_DRAIN);
    cr_expect_eq(put_path("/api/v1/pools/default/backends/127.0.0.1%3A8082", "drain"), 200);
    cr_expect_eq(pool_state("default", 1), BACKEND_ADMIN_DRAIN);
    cr_expect_eq(put_path("/api/v1/pools/%61pi/backends/127.0.0.1:9000", "maint"), 200,
                 "a pool name may come percent-encoded");
    cr_expect_eq(pool_state("api", 1), BACKEND_ADMIN_MAINT);
    cr_expect_eq(put_path("/api/v1/backends/127.0.0.1:9000", "ready"), 404, "api's only");
    cr_expect(strstr(resp, "unknown backend"), "%s", resp);
    cr_expect_eq(put_path("/api/v1/pools/nope/backends/127.0.0.1:8081", "ready"), 404);
    cr_expect(strstr(resp, "unknown pool"), "%s", resp);
    cr_expect_eq(put_path("/api/v1/pools/a%zz/backends/127.0.0.1:8081", "ready"), 400);
    cr_expect(strstr(resp, "invalid pool name encoding"), "%s", resp);
    cr_expect_eq(put_path("/api/v1/pools/api/backends/", "ready"), 404, "no backend named");
    cr_expect_eq(put_path("/api/v1/pools//backends/127.0.0.1:8081", "ready"), 404, "no pool");
    cr_expect_eq(put_path("/api/v1/pools/api", "ready"), 404);
    cr_expect_eq(http("GET /api/v1/pools/api/backends/127.0.0.1:9000 HTTP/1.1\r\nHost: a\r\n\r\n",
                      resp, sizeof(resp)),
                 405);
    cr_expect_eq(pool_state("api", 1), BACKEND_ADMIN_MAINT, "refused requests changed nothing");
}

/* /api/v1/status: the default pool's backends at the top as before, every pool in "pools", every
 * route with its pools and counts; /metrics labels every backend series with its pool. */
Test(admin_http, status_groups_backends_by_pool_and_lists_routes)
{
    start_tcp_with("", POOLS);
    struct worker_ctx w = {.id = 0};
    obs_route_done(&w, generation_route_stats(gen, 0), 200);
    obs_route_done(&w, generation_route_stats(gen, 0), 502);
    cr_expect_eq(http("GET /api/v1/status HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof(resp)), 200);
    const char *body = strstr(resp, "\r\n\r\n") + 4;
    const char *pools = strstr(body, "\"pools\":[");
    cr_assert(pools, "%s", body);
    const char *top =
        strstr(body, "\"backends\":[{\"name\":\"127.0.0.1:8081\",\"pool\":\"default\"");
    cr_expect(top && top < pools, "the default pool's backends at the top: %s", body);
    cr_expect(strstr(pools, "{\"name\":\"default\",\"balance\":\"roundRobin\",\"backends\":["),
              "%s", pools);
    const char *api = strstr(pools, "{\"name\":\"api\",\"balance\":\"leastConnections\","
                                    "\"backends\":[{\"name\":\"127.0.0.1:8081\",\"pool\":\"api\"");
    cr_expect(api, "%s", pools);
    cr_expect(api && strstr(api, "\"name\":\"127.0.0.1:9000\",\"pool\":\"api\""), "%s", pools);
    cr_expect(strstr(body, "\"routes\":[{\"name\":\"to-api\",\"action\":\"pool\",\"pools\":"
                           "[\"api\"],\"requests_total\":2,\"errors_total\":1,"
                           "\"requests_per_second\":"),
              "%s", body);
    cr_expect(strstr(body, "{\"name\":\"split\",\"action\":\"split\",\"pools\":"
                           "[\"default\",\"api\"],\"requests_total\":0"),
              "%s", body);
    cr_expect_eq(http("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof(resp)), 200);
    cr_expect(strstr(resp, "\ngolb_backend_up{pool=\"api\",backend=\"127.0.0.1:9000\"} 0\n"),
              "%s", resp);
    cr_expect(strstr(resp, "\ngolb_route_requests_total{route=\"to-api\",code_class=\"5xx\"} 1\n"),
              "%s", resp);
}
