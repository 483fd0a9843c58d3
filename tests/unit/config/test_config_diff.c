/* Unit tests for config_diff: what a reload from one configuration to another changes, line by line,
 * with backends matched by identity (scheme, host, port), and which listeners must be re-bound. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_diff.h"

static struct config *load(const char *yaml)
{
    struct config *cfg = NULL;
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), NULL, &cfg), 0, "%s", yaml);
    return cfg;
}

/* The diff from a to b as text; *n gets the line count config_diff returned. */
static char *diff(const char *a, const char *b, int *n)
{
    struct config *x = load(a), *y = load(b);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    *n = config_diff(x, y, f);
    fclose(f);
    config_free(x);
    config_free(y);
    return text;
}

#define BASE "listen: 127.0.0.1:0\nbackends:\n  - http://127.0.0.1:8081/health\n"

Test(config_diff, the_same_file_changes_nothing)
{
    int n;
    char *t = diff(BASE, BASE, &n);
    cr_expect_eq(n, 0);
    cr_expect_str_eq(t, "");
    free(t);
}

Test(config_diff, backends_added_removed_and_changed_by_identity)
{
    int n;
    char *t = diff("backends:\n  - http://127.0.0.1:8081/health\n  - http://127.0.0.1:8082/\n"
                   "  - http://[::1]:8083/\n",
                   "backends:\n  - url: http://127.0.0.1:8081/ready\n    weight: 3\n"
                   "  - https://127.0.0.1:8082/\n  - http://[::1]:8083/\n",
                   &n);
    cr_expect_eq(n, 3, "%s", t);
    cr_expect(strstr(t, "backend changed: http://127.0.0.1:8081: weight 1 -> 3, "
                        "healthPath \"/health\" -> \"/ready\"\n"), "%s", t);
    /* another scheme is another backend, even on the same host and port */
    cr_expect(strstr(t, "backend added: https://127.0.0.1:8082\n"), "%s", t);
    cr_expect(strstr(t, "backend removed: http://127.0.0.1:8082\n"), "%s", t);
    cr_expect_null(strstr(t, "8083"), "an unchanged IPv6 backend is not listed: %s", t);
    free(t);
}

Test(config_diff, settings_in_their_yaml_units)
{
    int n;
    char *t = diff(BASE, BASE "connectTimeout: 0.5\nretries: 4\nworkers: 3\n"
                              "balance: leastConnections\nhashLoadFactor: 1.25\n",
                   &n);
    cr_expect(strstr(t, "setting changed: connectTimeout 3s -> 0.500s\n"), "%s", t);
    cr_expect(strstr(t, "setting changed: retries 2 -> 4\n"), "%s", t);
    cr_expect(strstr(t, "setting changed: balance (none) -> leastConnections\n") ||
                  strstr(t, "setting changed: balance roundRobin -> leastConnections\n"),
              "%s", t);
    cr_expect(strstr(t, "setting changed: hashLoadFactor 0.000 -> 1.250\n"), "%s", t);
    cr_expect(strstr(t, "setting changed: workers "), "%s", t);
    free(t);
}

Test(config_diff, upgrade_protocols_as_lists)
{
    int n;
    char *t = diff(BASE, BASE "upgradeProtocols: [websocket]\n", &n);
    cr_expect_eq(n, 0, "the default written out is no change: %s", t);
    free(t);
    t = diff(BASE, BASE "upgradeProtocols: [websocket, h2c]\n", &n);
    cr_expect_str_eq(t, "setting changed: upgradeProtocols [websocket] -> [websocket, h2c]\n");
    free(t);
    t = diff(BASE "upgradeProtocols: [websocket, h2c]\n", BASE "upgradeProtocols: []\n", &n);
    cr_expect_str_eq(t, "setting changed: upgradeProtocols [websocket, h2c] -> []\n");
    free(t);
}

/* A reload keeps workers and admin.listen (with a warning): -diff must not promise them. */
Test(config_diff, what_a_reload_cannot_change_needs_a_restart)
{
    int n;
    char *t = diff(BASE "workers: 2\nadmin: {listen: 127.0.0.1:9901}\n",
                   BASE "workers: 4\nadmin: {listen: \"unix:/run/golb/admin.sock\"}\n", &n);
    cr_expect_eq(n, 2, "%s", t);
    cr_expect(strstr(t, "setting changed: workers 2 -> 4 (needs a restart)\n"), "%s", t);
    cr_expect(strstr(t, "setting changed: admin.listen 127.0.0.1:9901 -> unix:/run/golb/admin.sock "
                        "(needs a restart)\n"),
              "%s", t);
    free(t);
    t = diff(BASE, BASE "admin: {listen: 127.0.0.1:9901}\n", &n);
    cr_expect_str_eq(t, "setting changed: admin.listen off -> 127.0.0.1:9901 (needs a restart)\n");
    free(t);
}

Test(config_diff, a_token_is_never_printed)
{
    int n;
    char *t = diff(BASE "admin:\n  listen: 127.0.0.1:0\n  token: first-secret\n",
                   BASE "admin:\n  listen: 127.0.0.1:0\n  token: second-secret\n", &n);
    cr_expect_eq(n, 1, "%s", t);
    cr_expect_str_eq(t, "setting changed: admin.token\n");
    free(t);
}

Test(config_diff, a_sticky_secret_change_says_old_cookies_no_longer_match)
{
    const char *line = "setting changed: stickySession.secret (sticky cookies issued before no "
                       "longer match)\n";
    int n;
    char *t = diff(BASE "stickySession: {cookie: s, secret: first-secret-0123}\n",
                   BASE "stickySession: {cookie: s, secret: second-secret-012}\n", &n);
    cr_expect_eq(n, 1, "%s", t);
    cr_expect_str_eq(t, line, "never the secret itself");
    free(t);
    t = diff(BASE "stickySession: {cookie: s}\n",
             BASE "stickySession: {cookie: s, secret: first-secret-0123}\n", &n);
    cr_expect_str_eq(t, line, "a secret where each process had its own key");
    free(t);
    t = diff(BASE "stickySession: {cookie: s, secret: first-secret-0123}\n",
             BASE "stickySession: {cookie: s, secret: first-secret-0123}\n", &n);
    cr_expect_str_eq(t, "");
    free(t);
}

Test(config_diff, listeners_compare_addresses_not_text)
{
    struct config *a = load("port: 8080\nbackends:\n  - http://127.0.0.1:8081/\n");
    struct config *b = load("listen: 0.0.0.0:8080\nbackends:\n  - http://127.0.0.1:8081/\n");
    struct config *c = load("listen: 127.0.0.1:8080\nbackends:\n  - http://127.0.0.1:8081/\n");
    cr_expect_not(config_plain_listener_changed(a, b), "port: 8080 is 0.0.0.0:8080");
    cr_expect(config_plain_listener_changed(a, c));
    cr_expect_not(config_tls_listener_changed(a, c), "no tls on either side");
    config_free(a);
    config_free(b);
    config_free(c);
}

#define POOLS "pools:\n  api:\n    backends: [http://127.0.0.1:9000]\n"

Test(config_diff, pools_and_routes_by_name)
{
    int n;
    char *t = diff(BASE POOLS "  old:\n    backends: [http://127.0.0.1:9001]\n"
                              "routes:\n"
                              "  - {name: a, match: {pathPrefix: /a}, pool: api}\n"
                              "  - {name: b, match: {pathPrefix: /b}, pool: old}\n"
                              "  - {name: c, match: {pathPrefix: /c}, pool: default}\n",
                   BASE "encodedSlash: reject\n" POOLS "    retries: 5\n"
                        "  new:\n    backends: [http://127.0.0.1:9002]\n"
                        "routes:\n"
                        "  - {name: c, match: {pathPrefix: /c}, pool: default}\n"
                        "  - {name: a, match: {pathPrefix: /a}, pool: new}\n"
                        "  - {name: d, match: {pathPrefix: /d}, pool: api}\n",
                   &n);
    cr_expect_str_eq(t, "setting changed: encodedSlash keep -> reject\n"
                        "pool changed: api\n"
                        "pool added: new\n"
                        "pool removed: old\n"
                        "route changed: a\n"
                        "route added: d\n"
                        "route removed: b\n"
                        "routes reordered\n");
    cr_expect_eq(n, 8);
    free(t);
    /* the same routes and pools: nothing */
    const char *same = BASE POOLS "routes:\n  - {match: {host: a.com}, allow: [10.0.0.0/8], "
                                  "rateLimit: {requestsPerSecond: 2}, pool: api}\n";
    t = diff(same, same, &n);
    cr_expect_eq(n, 0, "%s", t);
    free(t);
    t = diff(same, BASE POOLS "routes:\n  - {match: {host: a.com}, allow: [10.0.0.0/16], "
                              "rateLimit: {requestsPerSecond: 2}, pool: api}\n",
             &n);
    cr_expect_str_eq(t, "route changed: route 1\n");
    free(t);
}

Test(config_diff, listener_lists_per_address)
{
#define L(list) "listen: " list "\nbackends:\n  - http://127.0.0.1:8081/\n"
    int n;
    /* one replaced by one: a move, as for a single address */
    char *t = diff(L("127.0.0.1:0"), L("\"[::1]:0\""), &n);
    cr_expect_str_eq(t, "listener changed: listen 127.0.0.1:0 -> [::1]:0\n");
    free(t);
    /* an address added beside the one kept: only it is named */
    t = diff(L("127.0.0.1:0"), L("[127.0.0.1:0, \"[::1]:0\"]"), &n);
    cr_expect_eq(n, 1);
    cr_expect_str_eq(t, "listener added: listen [::1]:0\n");
    free(t);
    t = diff(L("[127.0.0.1:0, \"[::1]:0\", 127.0.0.2:0]"), L("127.0.0.1:0"), &n);
    cr_expect_eq(n, 2);
    cr_expect_str_eq(t, "listener removed: listen [::1]:0\nlistener removed: listen 127.0.0.2:0\n");
    free(t);
    t = diff(L("[127.0.0.1:0, 127.0.0.2:0]"), L("[127.0.0.3:0, 127.0.0.4:0]"), &n);
    cr_expect_str_eq(t, "listener removed: listen 127.0.0.1:0\nlistener removed: listen 127.0.0.2:0\n"
                        "listener added: listen 127.0.0.3:0\nlistener added: listen 127.0.0.4:0\n");
    free(t);
    /* the same addresses in another order (or written otherwise): nothing to bind or close */
    t = diff(L("[127.0.0.1:8080, \"[::1]:0\"]"), L("[\"[::1]:0\", localhost:8080]"), &n);
    cr_expect_eq(n, 0, "%s", t);
    free(t);
    struct config *a = load(L("[127.0.0.1:0, \"[::1]:0\"]")), *b = load(L("[\"[::1]:0\", 127.0.0.1:0]"));
    struct config *c = load(L("[127.0.0.1:0]"));
    cr_expect_not(config_plain_listener_changed(a, b));
    cr_expect(config_plain_listener_changed(a, c));
    config_free(a);
    config_free(b);
    config_free(c);
#undef L
}

/* A kept pool keeps its backends by identity within the pool: its lines name the pool, since the
 * same URL elsewhere is another backend (a URL moving from default to api is removed from one and
 * added to the other). */
Test(config_diff, a_kept_pools_backend_lines_name_the_pool)
{
    int n;
    char *t = diff(BASE "  - http://127.0.0.1:8082/health\n"
                        "pools:\n  api:\n    backends: [http://127.0.0.1:9000, "
                        "{url: http://127.0.0.1:9001, weight: 2}]\n",
                   BASE "pools:\n  api:\n    backends: [{url: http://127.0.0.1:9001, weight: 3}, "
                        "http://127.0.0.1:8082/health, http://127.0.0.1:9002]\n",
                   &n);
    cr_expect_str_eq(t, "backend removed: http://127.0.0.1:8082\n"
                        "pool changed: api\n"
                        "backend changed: http://127.0.0.1:9001 in pool api: weight 2 -> 3\n"
                        "backend added: http://127.0.0.1:8082 in pool api\n"
                        "backend added: http://127.0.0.1:9002 in pool api\n"
                        "backend removed: http://127.0.0.1:9000 in pool api\n");
    cr_expect_eq(n, 6);
    free(t);
}

Test(config_diff, http2_settings)
{
    int n;
    char *t = diff(BASE, BASE "http2: {maxConcurrentStreams: 128, idleTimeout: 180}\n", &n);
    cr_expect_eq(n, 0, "the defaults written out are no change: %s", t);
    free(t);
    t = diff(BASE, BASE "http2: {cleartext: true, initialWindowSize: 65535, idleTimeout: 30}\n", &n);
    cr_expect_str_eq(t, "setting changed: http2.cleartext false -> true\n"
                        "setting changed: http2.initialWindowSize 262144 -> 65535\n"
                        "setting changed: http2.idleTimeout 180s -> 30s\n");
    free(t);
}
