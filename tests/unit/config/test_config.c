/* Unit tests for config: values and defaults, every key, and every message with its exact text and
 * position. Diagnostics are captured with open_memstream; numeric hosts and "localhost" only, so no
 * test depends on DNS (one test checks the failure message of an unresolvable ".invalid" name). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../support/config_support.h"
#include "config/config.h"

#define B "backends: [http://127.0.0.1:8081]\n" /* a valid backends line, for key tests */

static void expect_ipv4(const struct sockaddr_storage *ss, const char *addr, int port)
{
    const struct sockaddr_in *sin = (const void *)ss;
    char buf[INET_ADDRSTRLEN];
    cr_assert_eq(ss->ss_family, AF_INET);
    cr_assert_str_eq(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)), addr);
    cr_assert_eq(ntohs(sin->sin_port), port);
}

static void expect_ipv6(const struct sockaddr_storage *ss, const char *addr, int port)
{
    const struct sockaddr_in6 *sin6 = (const void *)ss;
    char buf[INET6_ADDRSTRLEN];
    cr_assert_eq(ss->ss_family, AF_INET6);
    cr_assert_str_eq(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)), addr);
    cr_assert_eq(ntohs(sin6->sin6_port), port);
}

static const char original[] = "port: 8080\n"
                               "healthCheckTimeout: 3   # seconds\n"
                               "healthCheckPeriod: 5    # seconds\n"
                               "backends:\n"
                               "  - http://127.0.0.1:8081/health   # scheme://host:port is the "
                               "upstream, the path is its health check\n"
                               "  - http://127.0.0.1:8082/health\n";

/* ---------------------------------------------------------------------------------------------
 * Valid configurations
 */

Test(config, original_format_and_defaults)
{
    struct config *c = load_ok(original);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    cr_assert_str_eq(c->path, "t.yaml");
    cr_assert_str_eq(c->listen.at[0].name, "0.0.0.0:8080");
    expect_ipv4(&c->listen.at[0].addr, "0.0.0.0", 8080);
    cr_assert_eq(c->listen.at[0].addrlen, sizeof(struct sockaddr_in));
    cr_assert_eq(c->workers, cpus < 1 ? 1 : cpus > 1024 ? 1024 : cpus);
    cr_assert_eq(c->health_check_timeout_ms, 3000);
    cr_assert_eq(c->health_check_period_ms, 5000);
    cr_assert_eq(c->connect_timeout_ms, 3000);
    cr_assert_eq(c->upstream_timeout_ms, 30000);
    cr_assert_eq(c->body_timeout_ms, 60000);
    cr_assert_eq(c->client_header_timeout_ms, 10000);
    cr_assert_eq(c->keepalive_timeout_ms, 60000);
    cr_assert_eq(c->tunnel_timeout_ms, 300000);
    cr_assert_eq(c->shutdown_timeout_ms, 10000);
    cr_assert_eq(c->upstream_idle_timeout_ms, 60000);
    cr_assert_eq(c->max_header_size, 16384);
    cr_assert_eq(c->max_request_line, 8192);
    cr_assert_eq(c->max_connections, 10000);
    cr_assert_eq(c->retries, 2);
    cr_assert_eq(c->max_fails, 3);
    cr_assert_eq(c->upstream_max_idle, 64);

    cr_assert_eq(c->nbackends, 2);
    for (int i = 0; i < 2; i++) {
        const struct config_backend *b = &c->backends[i];
        char url[64], name[32];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", 8081 + i);
        snprintf(name, sizeof(name), "127.0.0.1:%d", 8081 + i);
        cr_assert_str_eq(b->url, url);
        cr_assert_str_eq(b->host, "127.0.0.1");
        cr_assert_eq(b->port, 8081 + i);
        cr_assert_str_eq(b->name, name);
        cr_assert_str_eq(b->health_path, "/health");
        expect_ipv4(&b->addr, "127.0.0.1", 8081 + i);
        cr_assert_eq(b->addrlen, sizeof(struct sockaddr_in));
        cr_assert_eq(b->line, 5 + i);
        cr_assert_eq(b->col, 5);
    }
    config_free(c);
}

Test(config, minimal_config_uses_every_default)
{
    struct config *c = load_ok(B);
    cr_assert_str_eq(c->listen.at[0].name, "0.0.0.0:8080");
    cr_assert_eq(c->health_check_timeout_ms, 3000);
    cr_assert_eq(c->health_check_period_ms, 5000);
    cr_assert_eq(c->nbackends, 1);
    cr_assert_str_eq(c->backends[0].health_path, "/");
    cr_assert_eq(c->backends[0].port, 8081);
    config_free(c);
}

Test(config, every_key)
{
    struct config *c = load_ok("port: 9000\n"
                               "workers: 3\n"
                               "healthCheckTimeout: 1\n"
                               "healthCheckPeriod: 2\n"
                               "connectTimeout: 4\n"
                               "upstreamTimeout: 5\n"
                               "bodyTimeout: 6\n"
                               "clientHeaderTimeout: 7\n"
                               "keepAliveTimeout: 8\n"
                               "tunnelTimeout: 9\n"
                               "shutdownTimeout: 11\n"
                               "upstreamIdleTimeout: 12\n"
                               "maxHeaderSize: 32768\n"
                               "maxRequestLine: 4096\n"
                               "maxConnections: 500\n"
                               "retries: 0\n"
                               "maxFails: 0\n"
                               "upstreamMaxIdle: 100000\n"
                               "backends:\n"
                               "  - http://127.0.0.1:8081/\n");
    cr_assert_str_eq(c->listen.at[0].name, "0.0.0.0:9000");
    expect_ipv4(&c->listen.at[0].addr, "0.0.0.0", 9000);
    cr_assert_eq(c->workers, 3);
    cr_assert_eq(c->health_check_timeout_ms, 1000);
    cr_assert_eq(c->health_check_period_ms, 2000);
    cr_assert_eq(c->connect_timeout_ms, 4000);
    cr_assert_eq(c->upstream_timeout_ms, 5000);
    cr_assert_eq(c->body_timeout_ms, 6000);
    cr_assert_eq(c->client_header_timeout_ms, 7000);
    cr_assert_eq(c->keepalive_timeout_ms, 8000);
    cr_assert_eq(c->tunnel_timeout_ms, 9000);
    cr_assert_eq(c->shutdown_timeout_ms, 11000);
    cr_assert_eq(c->upstream_idle_timeout_ms, 12000);
    cr_assert_eq(c->max_header_size, 32768);
    cr_assert_eq(c->max_request_line, 4096);
    cr_assert_eq(c->max_connections, 500);
    cr_assert_eq(c->retries, 0);
    cr_assert_eq(c->max_fails, 0);
    cr_assert_eq(c->upstream_max_idle, 100000);
    cr_assert_not(c->reuse_port, "reusePort is off by default");
    cr_assert_eq(c->listen.at[0].line, 1, "port's key is where a bind failure is reported");
    cr_assert_eq(c->listen.at[0].col, 1);
    config_free(c);
}

Test(config, reuse_port_and_the_listen_keys_position)
{
    struct config *c = load_ok("backends: [http://127.0.0.1:8081]\n"
                               "reusePort: true\n"
                               "  \n"
                               "listen: 127.0.0.1:8080\n");
    cr_expect(c->reuse_port);
    cr_expect_eq(c->listen.at[0].line, 4);
    cr_expect_eq(c->listen.at[0].col, 1);
    config_free(c);
    c = load_ok("backends: [http://127.0.0.1:8081]\nreusePort: false\n");
    cr_expect_not(c->reuse_port);
    cr_expect_eq(c->listen.at[0].line, 0, "the default port has no key");
    config_free(c);
    expect_fail("reusePort: yes\n" B, "t.yaml:1:12: reusePort must be true or false, got \"yes\"\n");
}

Test(config, integer_bounds_are_inclusive)
{
    struct config *c = load_ok("port: 65535\nworkers: 1024\nmaxHeaderSize: 1048576\n"
                               "maxRequestLine: 1048576\nmaxConnections: 1000000\nretries: 100\n"
                               "maxFails: 1000\nupstreamMaxIdle: 0\n" B);
    cr_assert_str_eq(c->listen.at[0].name, "0.0.0.0:65535");
    cr_assert_eq(c->workers, 1024);
    cr_assert_eq(c->max_header_size, 1048576);
    cr_assert_eq(c->max_request_line, 1048576);
    cr_assert_eq(c->max_connections, 1000000);
    cr_assert_eq(c->retries, 100);
    cr_assert_eq(c->max_fails, 1000);
    cr_assert_eq(c->upstream_max_idle, 0);
    config_free(c);

    c = load_ok("port: 1\nworkers: 1\nmaxHeaderSize: 1024\nmaxRequestLine: 256\n"
                "maxConnections: 1\n" B);
    cr_assert_str_eq(c->listen.at[0].name, "0.0.0.0:1");
    cr_assert_eq(c->max_header_size, 1024);
    cr_assert_eq(c->max_request_line, 256);
    config_free(c);
}

Test(config, fractional_seconds)
{
    struct config *c = load_ok("healthCheckTimeout: 0.5\n"
                               "healthCheckPeriod: 1.25\n"
                               "connectTimeout: .5\n"
                               "upstreamTimeout: 5.\n"
                               "bodyTimeout: 0.0005\n"         /* 0.5 ms rounds half up to 1 */
                               "clientHeaderTimeout: 0.0015\n" /* 1.5 ms → 2 */
                               "keepAliveTimeout: 2.9999\n"    /* → 3000 */
                               "tunnelTimeout: 86400\n"        /* exactly one day */
                               "shutdownTimeout: 0.001\n"
                               "upstreamIdleTimeout: 86399.99949\n" B);
    cr_assert_eq(c->health_check_timeout_ms, 500);
    cr_assert_eq(c->health_check_period_ms, 1250);
    cr_assert_eq(c->connect_timeout_ms, 500);
    cr_assert_eq(c->upstream_timeout_ms, 5000);
    cr_assert_eq(c->body_timeout_ms, 1);
    cr_assert_eq(c->client_header_timeout_ms, 2);
    cr_assert_eq(c->keepalive_timeout_ms, 3000);
    cr_assert_eq(c->tunnel_timeout_ms, 86400000);
    cr_assert_eq(c->shutdown_timeout_ms, 1);
    cr_assert_eq(c->upstream_idle_timeout_ms, 86399999);
    config_free(c);
}

Test(config, listen_forms)
{
    struct config *c = load_ok("listen: 127.0.0.1:0\n" B);
    cr_assert_str_eq(c->listen.at[0].name, "127.0.0.1:0");
    expect_ipv4(&c->listen.at[0].addr, "127.0.0.1", 0);
    config_free(c);

    c = load_ok("listen: \":9000\"\n" B);
    cr_assert_str_eq(c->listen.at[0].name, "0.0.0.0:9000");
    expect_ipv4(&c->listen.at[0].addr, "0.0.0.0", 9000);
    config_free(c);

    c = load_ok("listen: :0\n" B); /* a plain scalar may start with ':' */
    cr_assert_str_eq(c->listen.at[0].name, "0.0.0.0:0");
    config_free(c);

    c = load_ok("listen: \"[::1]:0\"\n" B);
    cr_assert_str_eq(c->listen.at[0].name, "[::1]:0");
    expect_ipv6(&c->listen.at[0].addr, "::1", 0);
    cr_assert_eq(c->listen.at[0].addrlen, sizeof(struct sockaddr_in6));
    config_free(c);

    c = load_ok("listen: '[::]:8443'\n" B);
    cr_assert_str_eq(c->listen.at[0].name, "[::]:8443");
    expect_ipv6(&c->listen.at[0].addr, "::", 8443);
    config_free(c);

    c = load_ok("listen: localhost:65535\n" B);
    cr_assert_str_eq(c->listen.at[0].name, "localhost:65535");
    cr_assert_eq(ntohs(((struct sockaddr_in *)&c->listen.at[0].addr)->sin_port), 65535);
    config_free(c);
}

Test(config, listen_lists)
{
    struct config *c = load_ok("listen: [\"127.0.0.1:0\", \"[::1]:0\", \":8080\"]\n" B);
    cr_assert_eq(c->listen.n, 3);
    cr_expect_str_eq(c->listen.at[0].name, "127.0.0.1:0");
    expect_ipv4(&c->listen.at[0].addr, "127.0.0.1", 0);
    cr_expect_str_eq(c->listen.at[1].name, "[::1]:0");
    expect_ipv6(&c->listen.at[1].addr, "::1", 0);
    cr_expect_str_eq(c->listen.at[2].name, "0.0.0.0:8080");
    /* in a list, each entry is where its bind failure is reported */
    cr_expect_eq(c->listen.at[0].line, 1);
    cr_expect_eq(c->listen.at[0].col, 10);
    cr_expect_eq(c->listen.at[1].col, 25);
    config_free(c);

    c = load_ok("listen:\n  - 127.0.0.1:8080\n  - '[::]:8080'\n  - 127.0.0.2:8080\n" B);
    cr_assert_eq(c->listen.n, 3, "0.0.0.0 and [::] do not meet: IPv6 listeners are v6-only");
    cr_expect_eq(c->listen.at[1].line, 3);
    cr_expect_eq(c->listen.at[1].col, 5);
    config_free(c);

    c = load_ok("listen: [127.0.0.1:0]\n" B); /* a list of one */
    cr_expect_eq(c->listen.n, 1);
    config_free(c);
}

Test(config, listen_overrides_port_with_a_warning)
{
    struct config *cfg = NULL;
    char *errs = NULL;
    int rc = load("port: 9000\nlisten: 127.0.0.1:0\n" B, &cfg, &errs);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(errs, "t.yaml:1:1: warning: port is ignored because listen is set (line 2)\n");
    cr_assert_str_eq(cfg->listen.at[0].name, "127.0.0.1:0");
    free(errs);
    config_free(cfg);
}

Test(config, backend_forms)
{
    struct config *c = load_ok("backends:\n"
                               "  - http://127.0.0.1:8081\n"           /* no path: "/" */
                               "  - http://127.0.0.1:8082/a/b?x=1&y\n" /* path and query */
                               "  - http://127.0.0.1:8083?ping\n"      /* query only */
                               "  - url: http://127.0.0.1:8084/ignored\n"
                               "    healthPath: /healthz?full=1\n"
                               "  - {url: \"http://[::1]:8085/h\"}\n"
                               "  - http://localhost:8086/\n"
                               "  - HTTP://127.0.0.1/\n"); /* scheme is case-insensitive; port 80 */
    cr_assert_eq(c->nbackends, 7);
    cr_assert_str_eq(c->backends[0].health_path, "/");
    cr_assert_str_eq(c->backends[1].health_path, "/a/b?x=1&y");
    cr_assert_str_eq(c->backends[2].health_path, "/?ping");
    cr_assert_str_eq(c->backends[3].url, "http://127.0.0.1:8084/ignored");
    cr_assert_str_eq(c->backends[3].health_path, "/healthz?full=1");
    cr_assert_eq(c->backends[3].line, 5);
    cr_assert_eq(c->backends[3].col, 5);
    cr_assert_str_eq(c->backends[4].host, "::1");
    cr_assert_str_eq(c->backends[4].name, "[::1]:8085");
    cr_assert_str_eq(c->backends[4].health_path, "/h");
    expect_ipv6(&c->backends[4].addr, "::1", 8085);
    cr_assert_eq(c->backends[4].line, 7);
    cr_assert_eq(c->backends[4].col, 5);
    cr_assert_str_eq(c->backends[5].host, "localhost");
    cr_assert_str_eq(c->backends[5].name, "localhost:8086");
    cr_assert_eq(c->backends[5].port, 8086);
    cr_assert_str_eq(c->backends[6].name, "127.0.0.1:80");
    cr_assert_eq(c->backends[6].port, 80);
    config_free(c);
}

Test(config, max_request_line_default_follows_a_smaller_max_header_size)
{
    struct config *c = load_ok("maxHeaderSize: 4096\n" B);
    cr_assert_eq(c->max_header_size, 4096);
    cr_assert_eq(c->max_request_line, 4096);
    config_free(c);
}

Test(config, quoted_keys_and_flow_style_are_fine)
{
    struct config *c = load_ok("{\"port\": 9001, 'backends': [\"http://127.0.0.1:8081\"]}");
    cr_assert_str_eq(c->listen.at[0].name, "0.0.0.0:9001");
    config_free(c);
}

Test(config, warning_when_health_timeout_is_not_less_than_period)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"healthCheckTimeout: 5\nhealthCheckPeriod: 5\n" B,
         "t.yaml:1:21: warning: healthCheckTimeout (5 s) is not less than healthCheckPeriod (5 s); "
         "a backend is not checked again while its previous check is still running\n"},
        {"healthCheckPeriod: 2.5\n" B, /* against the default timeout of 3 s: at the period */
         "t.yaml:1:20: warning: healthCheckTimeout (3 s) is not less than healthCheckPeriod "
         "(2.5 s); a backend is not checked again while its previous check is still running\n"},
        {"healthCheckTimeout: 0.75\nhealthCheckPeriod: 0.5\n" B,
         "t.yaml:1:21: warning: healthCheckTimeout (0.75 s) is not less than healthCheckPeriod "
         "(0.5 s); a backend is not checked again while its previous check is still running\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *cfg = NULL;
        char *errs = NULL;
        cr_expect_eq(load(cases[i].yaml, &cfg, &errs), 0);
        cr_expect_str_eq(errs, cases[i].want);
        free(errs);
        config_free(cfg);
    }
}

Test(config, free_null)
{
    config_free(NULL);
}

Test(config, null_errs_stream_is_allowed)
{
    struct config *cfg = (struct config *)1;
    cr_assert_eq(config_load_buffer("x", "port: [", 7, NULL, &cfg), -1);
    cr_assert_null(cfg);
    cr_assert_eq(config_load_buffer("x", B, strlen(B), NULL, &cfg), 0);
    config_free(cfg);
}

/* ---------------------------------------------------------------------------------------------
 * Errors, each with its exact text and position
 */

Test(config_errors, empty_and_top_level)
{
    static const struct error_case cases[] = {
        {"", "t.yaml:1:1: empty configuration: \"backends\" is required\n"},
        {"# nothing but a comment\n\n",
         "t.yaml:1:1: empty configuration: \"backends\" is required\n"},
        {"---\n", "t.yaml:2:1: empty configuration: \"backends\" is required\n"},
        {"~\n", "t.yaml:1:1: empty configuration: \"backends\" is required\n"},
        {"- a\n- b\n",
         "t.yaml:1:1: top level must be a mapping of keys to values, got a sequence\n"},
        {"hello\n", "t.yaml:1:1: top level must be a mapping of keys to values, got \"hello\"\n"},
        {"'8080'\n", "t.yaml:1:1: top level must be a mapping of keys to values, got the quoted "
                     "string \"8080\"\n"},
        {"port: 8080\n", "t.yaml:1:1: missing required key \"backends\"\n"},
        {"\n\n  port: 8080\n", "t.yaml:3:3: missing required key \"backends\"\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, invalid_yaml)
{
    static const struct error_case cases[] = {
        {"port: 1\n  bad: 2\n",
         "t.yaml:2:6: invalid YAML: mapping values are not allowed in this context\n"},
        {"backends: [http://127.0.0.1:8081\n",
         "t.yaml:2:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
         "sequence at line 1 column 11)\n"},
        {"port: \"8080\n", "t.yaml:2:1: invalid YAML: found unexpected end of stream (while "
                           "scanning a quoted scalar at line 1 column 7)\n"},
        {"port: 1\n\tworkers: 2\n", "t.yaml:2:1: invalid YAML: found a tab character that "
                                    "violates indentation (while scanning a plain scalar at line 1 "
                                    "column 7); YAML forbids tabs for indentation: indent with "
                                    "spaces\n"},
        {"port: 1\nbad: \xff\n", "t.yaml:2:6: invalid YAML: invalid leading UTF-8 octet (byte "
                                 "0xFF)\n"},
        {"a: 1\n---\nb: 2\n", "t.yaml:1:1: unknown key \"a\"\n"
                              "t.yaml:1:1: missing required key \"backends\"\n"
                              "t.yaml:2:1: only one YAML document is allowed\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/* libyaml's words alone do not say what to do for the two mistakes a new user makes most. */
Test(config_errors, invalid_yaml_hints)
{
    static const struct error_case cases[] = {
        {"listen: [::1]:8080\n" B,
         "t.yaml:1:10: invalid YAML: did not find expected node content (while parsing a flow "
         "node at line 1 column 10); quote IPv6 addresses: listen: \"[::1]:8080\"\n"},
        {B "tls:\n  listen: [2001:db8::1]:8443 # HTTPS\n",
         "t.yaml:3:24: invalid YAML: did not find expected key (while parsing a block mapping at "
         "line 3 column 3); quote IPv6 addresses: listen: \"[2001:db8::1]:8443\"\n"},
        {"backends: [ http://[::1]:8081 ]\n",
         "t.yaml:1:20: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
         "sequence at line 1 column 11); quote IPv6 addresses, e.g. listen: \"[::1]:8080\"\n"},
        {"backends:\n\t- http://127.0.0.1:8081\n",
         "t.yaml:2:1: invalid YAML: found character that cannot start any token (while scanning "
         "for the next token at line 2 column 1); YAML forbids tabs for indentation: indent with "
         "spaces\n"},
        {"backends: [http://127.0.0.1:8081]\nport: [80\n", /* neither: no hint */
         "t.yaml:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
         "sequence at line 2 column 7)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, anchors_aliases_tags)
{
    static const struct error_case cases[] = {
        {"port: &p 8080\n" B, "t.yaml:1:7: anchors are not supported (&p)\n"},
        {"port: 8080\nx: *p\n" B, "t.yaml:2:1: unknown key \"x\"\n"
                                  "t.yaml:2:4: aliases are not supported (*p)\n"},
        {"port: !!int 8080\n" B,
         "t.yaml:1:7: tags are not supported (\"tag:yaml.org,2002:int\")\n"},
        {"backends: !seq [http://127.0.0.1:8081]\n",
         "t.yaml:1:11: tags are not supported (\"!seq\")\n"},
        {"backends: &b\n  - http://127.0.0.1:8081\nbackends2: *b\n",
         "t.yaml:1:11: anchors are not supported (&b)\n"
         "t.yaml:3:1: unknown key \"backends2\" (did you mean \"backends\"?)\n"
         "t.yaml:3:12: aliases are not supported (*b)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, nesting_too_deep)
{
    char yaml[256] = "port: ";
    for (int i = 0; i < 70; i++)
        strcat(yaml, "[");
    expect_fail(yaml, "t.yaml:1:70: nesting deeper than 64 levels\n");
}

Test(config_errors, unknown_and_duplicate_keys)
{
    static const struct error_case cases[] = {
        {"helthCheckTimeout: 3\n" B,
         "t.yaml:1:1: unknown key \"helthCheckTimeout\" (did you mean \"healthCheckTimeout\"?)\n"},
        {"Port: 80\n" B, "t.yaml:1:1: unknown key \"Port\" (did you mean \"port\"?)\n"},
        {"prot: 80\n" B, "t.yaml:1:1: unknown key \"prot\" (did you mean \"port\"?)\n"},
        {"backend:\n  - http://127.0.0.1:8081\n",
         "t.yaml:1:1: unknown key \"backend\" (did you mean \"backends\"?)\n"
         "t.yaml:1:1: missing required key \"backends\"\n"},
        {"maxheadersize: 2048\n" B,
         "t.yaml:1:1: unknown key \"maxheadersize\" (did you mean \"maxHeaderSize\"?)\n"},
        {"foo: 1\n" B, "t.yaml:1:1: unknown key \"foo\"\n"},
        {"timeout: 1\n" B, "t.yaml:1:1: unknown key \"timeout\"\n"},
        {"\"a\\x01b\": 1\n" B, "t.yaml:1:1: unknown key \"a\\x01b\"\n"},
        {"\"port\\0\": 1\n" B, "t.yaml:1:1: unknown key \"port\\x00\" (did you mean \"port\"?)\n"},
        {"port: 80\nport: 81\n" B,
         "t.yaml:2:1: duplicate key \"port\" (first defined at line 1)\n"},
        {B "workers: 2\nbackends: [http://127.0.0.1:9]\n",
         "t.yaml:3:1: duplicate key \"backends\" (first defined at line 1)\n"},
        {"foo: 1\nfoo: 2\n" B,
         "t.yaml:1:1: unknown key \"foo\"\n" /* unknown twice, not duplicate */
         "t.yaml:2:1: unknown key \"foo\"\n"},
        {"[1]: 2\n" B, "t.yaml:1:1: keys must be strings, got a sequence\n"},
        {"? {a: 1}\n: 2\n" B, "t.yaml:1:3: keys must be strings, got a mapping\n"},
        {"~: 2\n" B, "t.yaml:1:1: keys must be strings, got null\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, integers)
{
    static const struct error_case cases[] = {
        {"port: [8080]\n" B, "t.yaml:1:7: port must be a decimal integer, got a sequence\n"},
        {"port: {a: 1}\n" B, "t.yaml:1:7: port must be a decimal integer, got a mapping\n"},
        {"port: abc\n" B, "t.yaml:1:7: port must be a decimal integer, got \"abc\"\n"},
        {"port: \"abc\"\n" B,
         "t.yaml:1:7: port must be a decimal integer, got the quoted string \"abc\"\n"},
        {"port: \"8080\"\n" B,
         "t.yaml:1:7: port must be a decimal integer, got the quoted string \"8080\"\n"},
        {"port:\n" B, "t.yaml:1:6: port must be a decimal integer, got null\n"},
        {"port: 0x10\n" B, "t.yaml:1:7: port must be a decimal integer, got \"0x10\"\n"},
        {"port: 1e3\n" B, "t.yaml:1:7: port must be a decimal integer, got \"1e3\"\n"},
        {"port: true\n" B, "t.yaml:1:7: port must be a decimal integer, got \"true\"\n"},
        {"port: 08080\n" B, "t.yaml:1:7: port must be a decimal integer, got \"08080\"\n"},
        {"port: +80\n" B, "t.yaml:1:7: port must be a decimal integer, got \"+80\"\n"},
        {"port: 80.0\n" B, "t.yaml:1:7: port must be a decimal integer, got \"80.0\"\n"},
        {"port: 0\n" B, "t.yaml:1:7: port must be between 1 and 65535, got 0\n"},
        {"port: 65536\n" B, "t.yaml:1:7: port must be between 1 and 65535, got 65536\n"},
        {"port: 99999999999999999999999\n" B,
         "t.yaml:1:7: port must be between 1 and 65535, got 99999999999999999999999\n"},
        {"workers: 0\n" B, "t.yaml:1:10: workers must be between 1 and 1024, got 0\n"},
        {"workers: 1025\n" B, "t.yaml:1:10: workers must be between 1 and 1024, got 1025\n"},
        {"maxHeaderSize: 1023\n" B,
         "t.yaml:1:16: maxHeaderSize must be between 1024 and 1048576, got 1023\n"},
        {"maxHeaderSize: 1048577\n" B,
         "t.yaml:1:16: maxHeaderSize must be between 1024 and 1048576, got 1048577\n"},
        {"maxRequestLine: 255\n" B,
         "t.yaml:1:17: maxRequestLine must be between 256 and 1048576, got 255\n"},
        {"maxRequestLine: 16385\n" B,
         "t.yaml:1:17: maxRequestLine (16385) must not exceed maxHeaderSize (16384)\n"},
        {"maxHeaderSize: 2048\nmaxRequestLine: 4096\n" B,
         "t.yaml:2:17: maxRequestLine (4096) must not exceed maxHeaderSize (2048)\n"},
        {"maxConnections: 0\n" B,
         "t.yaml:1:17: maxConnections must be between 1 and 1000000, got 0\n"},
        {"maxConnections: 1000001\n" B,
         "t.yaml:1:17: maxConnections must be between 1 and 1000000, got 1000001\n"},
        {"retries: -1\n" B, "t.yaml:1:10: retries must be between 0 and 100, got -1\n"},
        {"retries: 101\n" B, "t.yaml:1:10: retries must be between 0 and 100, got 101\n"},
        {"maxFails: 1001\n" B, "t.yaml:1:11: maxFails must be between 0 and 1000, got 1001\n"},
        {"upstreamMaxIdle: 100001\n" B,
         "t.yaml:1:18: upstreamMaxIdle must be between 0 and 100000, got 100001\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, durations)
{
    static const struct error_case cases[] = {
        {"healthCheckTimeout: 0\n" B,
         "t.yaml:1:21: healthCheckTimeout must be greater than 0, got 0\n"},
        {"healthCheckPeriod: 0.0\n" B,
         "t.yaml:1:20: healthCheckPeriod must be greater than 0, got 0.0\n"},
        {"healthCheckPeriod: -5\n" B,
         "t.yaml:1:20: healthCheckPeriod must be greater than 0, got -5\n"},
        {"connectTimeout: -0.5\n" B,
         "t.yaml:1:17: connectTimeout must be greater than 0, got -0.5\n"},
        {"upstreamTimeout: 0.0004\n" B,
         "t.yaml:1:18: upstreamTimeout must be at least 0.001 seconds (1 ms), got 0.0004\n"},
        {"bodyTimeout: 86400.001\n" B,
         "t.yaml:1:14: bodyTimeout must be at most 86400 seconds (1 day), got 86400.001\n"},
        {"tunnelTimeout: 100000000000000000000\n" B,
         "t.yaml:1:16: tunnelTimeout must be at most 86400 seconds (1 day), got "
         "100000000000000000000\n"},
        {"keepAliveTimeout: 3s\n" B,
         "t.yaml:1:19: keepAliveTimeout must be a number of seconds (e.g. 3 or 0.5), got \"3s\"\n"},
        {"keepAliveTimeout: 1e3\n" B,
         "t.yaml:1:19: keepAliveTimeout must be a number of seconds (e.g. 3 or 0.5), got "
         "\"1e3\"\n"},
        {"clientHeaderTimeout: .inf\n" B,
         "t.yaml:1:22: clientHeaderTimeout must be a number of seconds (e.g. 3 or 0.5), got "
         "\".inf\"\n"},
        {"clientHeaderTimeout: .nan\n" B,
         "t.yaml:1:22: clientHeaderTimeout must be a number of seconds (e.g. 3 or 0.5), got "
         "\".nan\"\n"},
        {"shutdownTimeout: \"10\"\n" B,
         "t.yaml:1:18: shutdownTimeout must be a number of seconds (e.g. 3 or 0.5), got the "
         "quoted string \"10\"\n"},
        {"upstreamIdleTimeout: [1]\n" B,
         "t.yaml:1:22: upstreamIdleTimeout must be a number of seconds (e.g. 3 or 0.5), got a "
         "sequence\n"},
        {"healthCheckTimeout:\n" B,
         "t.yaml:1:20: healthCheckTimeout must be a number of seconds (e.g. 3 or 0.5), got null\n"},
        {"healthCheckTimeout: .\n" B,
         "t.yaml:1:21: healthCheckTimeout must be a number of seconds (e.g. 3 or 0.5), got "
         "\".\"\n"},
        {"healthCheckTimeout: 1.2.3\n" B,
         "t.yaml:1:21: healthCheckTimeout must be a number of seconds (e.g. 3 or 0.5), got "
         "\"1.2.3\"\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, listen)
{
    static const struct error_case cases[] = {
        {"listen: 8080\n" B, "t.yaml:1:9: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or "
                             "\":PORT\", got \"8080\"\n"},
        {"listen: {a: 1}\n" B, "t.yaml:1:9: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or "
                               "\":PORT\", got a mapping\n"},
        {"listen:\n" B, "t.yaml:1:8: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or \":PORT\", "
                        "got null\n"},
        {"listen: \"[::1]\"\n" B, "t.yaml:1:9: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or "
                                  "\":PORT\", got the quoted string \"[::1]\"\n"},
        {"listen: \"[]:80\"\n" B, "t.yaml:1:9: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or "
                                  "\":PORT\", got the quoted string \"[]:80\"\n"},
        {"listen: \"a b:80\"\n" B, "t.yaml:1:9: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or "
                                   "\":PORT\", got the quoted string \"a b:80\"\n"},
        {"listen: \"::1:80\"\n" B,
         "t.yaml:1:9: listen: IPv6 addresses must be in brackets, e.g. \"[::1]:8080\"\n"},
        {"listen: 127.0.0.1:65536\n" B,
         "t.yaml:1:9: listen port must be between 0 and 65535, got \"65536\"\n"},
        {"listen: \"127.0.0.1:\"\n" B,
         "t.yaml:1:9: listen port must be between 0 and 65535, got \"\"\n"},
        {"listen: 127.0.0.1:http\n" B,
         "t.yaml:1:9: listen port must be between 0 and 65535, got \"http\"\n"},
        {"listen: \"[1.2.3.4]:80\"\n" B,
         "t.yaml:1:9: cannot resolve listen address \"1.2.3.4\": Name or service not known\n"},
        {"listen: 256.1.1.1:80\n" B,
         "t.yaml:1:9: cannot resolve listen address \"256.1.1.1\": Name or service not known\n"},
        {"port: 1\nlisten: \":x\"\n" B,
         "t.yaml:1:1: warning: port is ignored because listen is set (line 2)\n"
         "t.yaml:2:9: listen port must be between 0 and 65535, got \"x\"\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/* A list: every problem at its entry, all of them in one run. */
Test(config_errors, listen_lists)
{
    static const struct error_case cases[] = {
        {"listen: []\n" B, "t.yaml:1:9: listen must not be an empty list\n"},
        {"listen: [127.0.0.1:1, 127.0.0.1:2, 127.0.0.1:3, 127.0.0.1:4, 127.0.0.1:5, 127.0.0.1:6, "
         "127.0.0.1:7, 127.0.0.1:8, 127.0.0.1:9]\n" B,
         "t.yaml:1:9: listen: at most 8 addresses, got 9\n"},
        {"listen: [127.0.0.1:80, 8080, {a: 1}, \"::1:80\", off]\n" B,
         "t.yaml:1:24: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or \":PORT\", got \"8080\"\n"
         "t.yaml:1:30: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or \":PORT\", got a "
         "mapping\n"
         "t.yaml:1:38: listen: IPv6 addresses must be in brackets, e.g. \"[::1]:8080\"\n"
         "t.yaml:1:48: listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or \":PORT\", got \"off\"\n"},
        {"listen:\n  - 127.0.0.1:8080\n  - localhost:8080\n  - 127.0.0.1:0\n  - 127.0.0.1:0\n" B,
         "t.yaml:3:5: duplicate listen address \"localhost:8080\" (the same as the entry at line "
         "2)\n"
         "t.yaml:5:5: duplicate listen address \"127.0.0.1:0\" (the same as the entry at line 4)\n"},
        {"listen:\n  - 127.0.0.1:8080\n  - :8080\n  - \"[::]:9\"\n  - \"[::1]:9\"\n" B,
         "t.yaml:3:5: listen address \"0.0.0.0:8080\" overlaps \"127.0.0.1:8080\" (line 2): one of "
         "them is a wildcard address on the same port\n"
         "t.yaml:5:5: listen address \"[::1]:9\" overlaps \"[::]:9\" (line 4): one of them is a "
         "wildcard address on the same port\n"},
        {"listen: [127.0.0.1:8080, [::1]:8080]\n" B,
         "t.yaml:1:27: invalid YAML: did not find expected node content (while parsing a flow "
         "node at line 1 column 27); quote IPv6 addresses, e.g. listen: \"[::1]:8080\"\n"},
        /* tls.listen: the same rules, and none of its addresses may meet a listen one */
        {"tls: {listen: [], certificates: [{certFile: /n, keyFile: /k}]}\n" B,
         "t.yaml:1:15: tls.listen must not be an empty list\n"
         "t.yaml:1:45: cannot read certificate file \"/n\": No such file or directory\n"},
        {"listen: [127.0.0.1:8443, \"[::1]:0\"]\n"
         "tls: {listen: [\":8443\", \"[::1]:0\"], certificates: [{certFile: /n, keyFile: /k}]}\n" B,
         "t.yaml:2:16: tls.listen address \"0.0.0.0:8443\" overlaps listen address "
         "\"127.0.0.1:8443\"\n"
         "t.yaml:2:63: cannot read certificate file \"/n\": No such file or directory\n"},
        {"tls: {listen: \":8080\", certificates: [{certFile: /n, keyFile: /k}]}\n" B,
         "t.yaml:1:7: tls.listen address \"0.0.0.0:8080\" overlaps listen address "
         "\"0.0.0.0:8080\"\n"
         "t.yaml:1:50: cannot read certificate file \"/n\": No such file or directory\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, backends_shape)
{
    static const struct error_case cases[] = {
        {"backends: []\n", "t.yaml:1:11: backends must not be empty\n"},
        {"backends:\n", "t.yaml:1:10: backends must be a sequence of backends, got null\n"},
        {"backends: http://127.0.0.1:8081\n",
         "t.yaml:1:11: backends must be a sequence of backends, got \"http://127.0.0.1:8081\"\n"},
        {"backends: {url: http://127.0.0.1:8081}\n",
         "t.yaml:1:11: backends must be a sequence of backends, got a mapping\n"},
        {"backends:\n  - [http://127.0.0.1:8081]\n",
         "t.yaml:2:5: backend must be a URL or a mapping with \"url\", got a sequence\n"},
        {"backends:\n  -\n", "t.yaml:2:4: backend must be a URL or a mapping with \"url\", got "
                             "null\n"},
        {"backends:\n  - healthPath: /h\n", "t.yaml:2:5: backend is missing \"url\"\n"},
        {"backends:\n  - url: http://127.0.0.1:8081\n    helthPath: /h\n    wieght: 2\n",
         "t.yaml:3:5: unknown key \"helthPath\" in backend (did you mean \"healthPath\"?)\n"
         "t.yaml:4:5: unknown key \"wieght\" in backend (did you mean \"weight\"?)\n"},
        {"backends:\n  - url: http://127.0.0.1:8081\n    url: http://127.0.0.1:8082\n",
         "t.yaml:3:5: duplicate key \"url\" (first defined at line 2)\n"},
        {"backends:\n  - url: [a]\n", "t.yaml:2:10: url must be a string, got a sequence\n"},
        {"backends:\n  - url: http://127.0.0.1:8081\n    healthPath: health\n",
         "t.yaml:3:17: healthPath must be a path starting with \"/\", got \"health\"\n"},
        {"backends:\n  - url: http://127.0.0.1:8081\n    healthPath:\n",
         "t.yaml:3:16: healthPath must be a path starting with \"/\", got null\n"},
        {"backends:\n  - url: http://127.0.0.1:8081\n    healthPath: \"/a b\"\n",
         "t.yaml:3:17: healthPath must not contain spaces or control characters\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, backend_urls)
{
    static const struct error_case cases[] = {
        {"backends: [{url: \"http://127.0.0.1:8443/\", serverName: a.test}]\n",
         "t.yaml:1:44: serverName is only for https backends\n"},
        {"backends: [{url: \"https://127.0.0.1:8443/\", caFile: /nonexistent/ca.pem}]\n",
         "t.yaml:1:53: cannot read CA file \"/nonexistent/ca.pem\" (missing, unreadable or not "
         "PEM)\n"},
        {"backends: [{url: \"https://127.0.0.1:8443/\", tlsVerify: maybe}]\n",
         "t.yaml:1:56: tlsVerify must be true or false, got \"maybe\"\n"},
        {"backends: [{url: \"https://127.0.0.1:8443/\", clientCertFile: /c.pem}]\n",
         "t.yaml:1:45: clientCertFile and clientKeyFile go together\n"},
        {"backends: [ftp://127.0.0.1/]\n",
         "t.yaml:1:12: invalid backend URL \"ftp://127.0.0.1/\": unsupported scheme \"ftp\" "
         "(only http and https are supported)\n"},
        {"backends: [127.0.0.1:8081]\n", "t.yaml:1:12: invalid backend URL \"127.0.0.1:8081\": "
                                         "it must start with \"http://\" or \"https://\"\n"},
        {"backends: [\"://x\"]\n",
         "t.yaml:1:12: invalid backend URL \"://x\": it must start with \"http://\" or "
         "\"https://\"\n"},
        {"backends: [http://user:pw@127.0.0.1:8081/]\n",
         "t.yaml:1:12: invalid backend URL \"http://user:pw@127.0.0.1:8081/\": user information "
         "(\"user@\") is not allowed\n"},
        {"backends: [\"http://127.0.0.1:8081/#top\"]\n",
         "t.yaml:1:12: invalid backend URL \"http://127.0.0.1:8081/#top\": fragments (\"#...\") "
         "are not allowed\n"},
        {"backends: [http://]\n", "t.yaml:1:12: invalid backend URL \"http://\": empty host\n"},
        {"backends: [\"http://:8081/\"]\n",
         "t.yaml:1:12: invalid backend URL \"http://:8081/\": empty host\n"},
        {"backends: [http://127.0.0.1:0/]\n", "t.yaml:1:12: invalid backend URL "
                                              "\"http://127.0.0.1:0/\": invalid port \"0\" (must "
                                              "be 1..65535)\n"},
        {"backends: [http://127.0.0.1:65536/]\n", "t.yaml:1:12: invalid backend URL "
                                                  "\"http://127.0.0.1:65536/\": invalid port "
                                                  "\"65536\" (must be 1..65535)\n"},
        {"backends: [http://127.0.0.1:/]\n", "t.yaml:1:12: invalid backend URL "
                                             "\"http://127.0.0.1:/\": invalid port \"\" (must be "
                                             "1..65535)\n"},
        {"backends: [http://127.0.0.1:8o/]\n", "t.yaml:1:12: invalid backend URL "
                                               "\"http://127.0.0.1:8o/\": invalid port \"8o\" "
                                               "(must be 1..65535)\n"},
        {"backends: [http://a%20b/]\n",
         "t.yaml:1:12: invalid backend URL \"http://a%20b/\": invalid host \"a%20b\"\n"},
        {"backends: [\"http://a b/\"]\n", "t.yaml:1:12: invalid backend URL \"http://a b/\": "
                                          "spaces and control characters are not allowed\n"},
        {"backends: [\"http://a/\\r\\nX: y\"]\n",
         "t.yaml:1:12: invalid backend URL \"http://a/\\x0D\\x0AX: y\": spaces and control "
         "characters are not allowed\n"},
        {"backends: [\"http://[::1:8081/\"]\n", "t.yaml:1:12: invalid backend URL "
                                                "\"http://[::1:8081/\": missing \"]\" after the "
                                                "IPv6 address\n"},
        {"backends: [\"http://[::1]x/\"]\n", "t.yaml:1:12: invalid backend URL "
                                             "\"http://[::1]x/\": unexpected \"x\" after \"]\"\n"},
        {"backends: [\"http://[zz]:80/\"]\n", "t.yaml:1:12: invalid backend URL "
                                              "\"http://[zz]:80/\": invalid IPv6 address "
                                              "\"[zz]\"\n"},
        {"backends: [\"http://[127.0.0.1]:80/\"]\n", "t.yaml:1:12: invalid backend URL "
                                                     "\"http://[127.0.0.1]:80/\": invalid IPv6 "
                                                     "address \"[127.0.0.1]\"\n"},
        {"backends: [\"http://::1:8081/\"]\n",
         "t.yaml:1:12: invalid backend URL \"http://::1:8081/\": IPv6 addresses must be in "
         "brackets, e.g. \"http://[::1]:8081/\"\n"},
        {"backends: [http://no-such-host.invalid:8081/]\n",
         "t.yaml:1:12: cannot resolve backend host \"no-such-host.invalid\": Name or service not "
         "known\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, url_too_long)
{
    /* 17 + 2032 = 2049 bytes: one over the limit; the message shows the first 64 characters */
    char yaml[2200], want[256];
    int n = snprintf(yaml, sizeof(yaml), "backends: [http://127.0.0.1/");
    memset(yaml + n, 'a', 2032);
    strcpy(yaml + n + 2032, "]\n");
    snprintf(want, sizeof(want),
             "t.yaml:1:12: invalid backend URL \"http://127.0.0.1/%.47s...\": "
             "longer than 2048 bytes\n",
             yaml + n);
    expect_fail(yaml, want);
    yaml[n + 2031] = ']'; /* exactly 2048: accepted */
    yaml[n + 2032] = '\0';
    struct config *c = load_ok(yaml);
    cr_assert_eq(strlen(c->backends[0].url), 2048);
    config_free(c);
}

Test(config_errors, duplicate_backends)
{
    static const struct error_case cases[] = {
        {"backends:\n  - http://127.0.0.1:8081/a\n  - http://127.0.0.1:8081/b\n",
         "t.yaml:3:5: duplicate backend \"127.0.0.1:8081\" (same address as the backend at line "
         "2)\n"},
        {"backends:\n  - http://127.0.0.1:80\n  - http://127.0.0.1\n",
         "t.yaml:3:5: duplicate backend \"127.0.0.1:80\" (same address as the backend at line "
         "2)\n"},
        {"backends:\n  - http://127.0.0.1:8081\n  - http://localhost:8081\n",
         "t.yaml:3:5: duplicate backend \"localhost:8081\" (same address as the backend at line "
         "2)\n"},
        {"backends:\n  - \"http://[::1]:8081\"\n  - url: \"http://[0:0::1]:8081/\"\n",
         "t.yaml:3:5: duplicate backend \"[0:0::1]:8081\" (same address as the backend at line "
         "2)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config_errors, long_values_are_cut_in_messages)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "port: %0100d\n" B, 7);
    expect_fail(yaml, "t.yaml:1:7: port must be a decimal integer, got "
                      "\"0000000000000000000000000000000000000000000000000000000000000000...\"\n");
}

Test(config_errors, at_most_1000_problems_are_listed)
{
    size_t cap = 1200 * 16, len = 0;
    char *yaml = malloc(cap), *errs = NULL;
    for (int i = 0; i < 1200; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "k%d: 1\n", i);
    struct config *cfg = NULL;
    cr_assert_eq(load(yaml, &cfg, &errs), -1);
    free(yaml);
    size_t lines = 0;
    for (const char *p = errs; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 1001);
    cr_assert_not_null(strstr(errs, "t.yaml:1:1: unknown key \"k0\"\n"));
    cr_assert_not_null(strstr(errs, "t.yaml:1000:1: unknown key \"k999\"\n"));
    cr_assert_not_null(strstr(errs, "t.yaml:1001:1: too many problems: 201 more not shown\n"));
    free(errs);
}

Test(config, many_keys_load_quickly)
{
    /* 100k lines of unknown and duplicate keys: linear work, bounded output */
    size_t cap = 100000 * 24, len = 0;
    char *yaml = malloc(cap), *errs = NULL;
    for (int i = 0; i < 100000; i++)
        len +=
            (size_t)snprintf(yaml + len, cap - len, i % 2 ? "port: %d\n" : "healthChek%d: 1\n", i);
    struct config *cfg = NULL;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(load(yaml, &cfg, &errs), -1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_expect_lt(secs, 5.0, "took %.2f s", secs);
    free(yaml);
    free(errs);
}

Test(config_errors, many_errors_in_one_run)
{
    expect_fail("port: 0\n"
                "workers: many\n"
                "healthCheckTimeout: -1\n"
                "healthCheckPeriod: 5\n"
                "retires: 3\n"
                "port: 8080\n"
                "backends:\n"
                "  - ftp://127.0.0.1:8443/\n"
                "  - http://127.0.0.1:8081/health\n"
                "  - http://127.0.0.1:8081/other\n"
                "  - {url: http://127.0.0.1:8082, healthPath: nope}\n",
                "t.yaml:1:7: port must be between 1 and 65535, got 0\n"
                "t.yaml:2:10: workers must be a decimal integer, got \"many\"\n"
                "t.yaml:3:21: healthCheckTimeout must be greater than 0, got -1\n"
                "t.yaml:5:1: unknown key \"retires\" (did you mean \"retries\"?)\n"
                "t.yaml:6:1: duplicate key \"port\" (first defined at line 1)\n"
                "t.yaml:8:5: invalid backend URL \"ftp://127.0.0.1:8443/\": unsupported scheme "
                "\"ftp\" (only http and https are supported)\n"
                "t.yaml:10:5: duplicate backend \"127.0.0.1:8081\" (same address as the backend "
                "at line 9)\n"
                "t.yaml:11:46: healthPath must be a path starting with \"/\", got \"nope\"\n");
}

Test(config_errors, warnings_are_reported_with_errors)
{
    expect_fail("healthCheckTimeout: 10\nhealthCheckPeriod: 5\nbackends: []\n",
                "t.yaml:1:21: warning: healthCheckTimeout (10 s) is not less than "
                "healthCheckPeriod (5 s); a backend is not checked again while its previous check "
                "is still running\n"
                "t.yaml:3:11: backends must not be empty\n");
}

Test(config, numeric_only_resolution_hook)
{
    config_set_resolve_numeric_only(true);
    expect_fail("backends: [http://example.com/]\n",
                "t.yaml:1:12: cannot resolve backend host \"example.com\": name resolution is "
                "disabled (numeric addresses and \"localhost\" only)\n");
    struct config *c = load_ok("backends: [http://localhost:8081/, http://127.0.0.2/]\n");
    cr_assert_eq(c->nbackends, 2);
    config_free(c);
    config_set_resolve_numeric_only(false);
}

/* asprintf, interposed for the whole test binary (libgolb.a's calls included): it fails the
 * calls whose format is `fail_format`, leaving a non-NULL pointer behind, as POSIX allows (the
 * result is undefined after a failure). */
static const char *fail_format;

int asprintf(char **strp, const char *fmt, ...)
{
    if (fail_format && strcmp(fmt, fail_format) == 0) {
        *strp = (char *)"not a heap block";
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(strp, fmt, ap);
    va_end(ap);
    return n;
}

Test(config_errors, a_failed_asprintf_is_out_of_memory)
{
    fail_format = "/%s"; /* the health path of a URL with a query and no path */
    expect_fail("backends: [http://127.0.0.1:8081?ping]\n", "t.yaml:1:1: out of memory\n");
    fail_format = NULL;
    struct config *c = load_ok("backends: [http://127.0.0.1:8081?ping]\n");
    cr_assert_str_eq(c->backends[0].health_path, "/?ping");
    config_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Files
 */

static int load_file(const char *path, struct config **cfg, char **errs)
{
    size_t len = 0;
    FILE *f = open_memstream(errs, &len);
    cr_assert_not_null(f);
    int rc = config_load(path, f, cfg);
    fclose(f);
    return rc;
}

Test(config_file, missing_file)
{
    struct config *cfg = (struct config *)1;
    char *errs = NULL;
    cr_assert_eq(load_file("/nonexistent/golb.yaml", &cfg, &errs), -1);
    cr_assert_null(cfg);
    cr_assert_str_eq(errs, "/nonexistent/golb.yaml:1:1: cannot read: No such file or directory\n");
    free(errs);
}

Test(config_file, directory)
{
    struct config *cfg = (struct config *)1;
    char *errs = NULL;
    cr_assert_eq(load_file("/tmp", &cfg, &errs), -1);
    cr_assert_null(cfg);
    cr_assert_str_eq(errs, "/tmp:1:1: cannot read: Is a directory\n");
    free(errs);
}

static void write_temp(char *path, const char *data, size_t len)
{
    int fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

Test(config_file, real_file)
{
    char path[] = "/tmp/golb-config-XXXXXX";
    write_temp(path, original, strlen(original));
    struct config *cfg = NULL;
    char *errs = NULL;
    int rc = load_file(path, &cfg, &errs);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", errs);
    cr_assert_str_eq(errs, "");
    cr_assert_str_eq(cfg->path, path);
    cr_assert_eq(cfg->nbackends, 2);
    cr_assert_eq(cfg->health_check_period_ms, 5000);
    free(errs);
    config_free(cfg);
}

Test(config_file, errors_name_the_file)
{
    char path[] = "/tmp/golb-config-XXXXXX";
    const char yaml[] = "port: 8080\nbackends: []\n";
    write_temp(path, yaml, strlen(yaml));
    struct config *cfg = NULL;
    char *errs = NULL;
    int rc = load_file(path, &cfg, &errs);
    unlink(path);
    cr_assert_eq(rc, -1);
    char want[128];
    snprintf(want, sizeof(want), "%s:2:11: backends must not be empty\n", path);
    cr_assert_str_eq(errs, want);
    free(errs);
}

Test(config_file, larger_than_1_mib)
{
    char path[] = "/tmp/golb-config-XXXXXX";
    size_t len = 1024 * 1024 + 1;
    char *data = malloc(len);
    memset(data, '#', len);
    data[len - 1] = '\n';
    write_temp(path, data, len);
    free(data);
    struct config *cfg = (struct config *)1;
    char *errs = NULL;
    int rc = load_file(path, &cfg, &errs);
    unlink(path);
    cr_assert_eq(rc, -1);
    cr_assert_null(cfg);
    char want[128];
    snprintf(want, sizeof(want), "%s:1:1: file is larger than 1 MiB\n", path);
    cr_assert_str_eq(errs, want);
    free(errs);
}

Test(config_file, exactly_1_mib_is_read)
{
    char path[] = "/tmp/golb-config-XXXXXX";
    size_t len = 1024 * 1024;
    char *data = malloc(len);
    memset(data, ' ', len);
    memcpy(data, B, strlen(B));
    data[len - 1] = '\n';
    write_temp(path, data, len);
    free(data);
    struct config *cfg = NULL;
    char *errs = NULL;
    int rc = load_file(path, &cfg, &errs);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", errs);
    free(errs);
    config_free(cfg);
}

/* The tls section: errors that need no certificate file (those that do are in test_tls.c and the
 * e2e suite, which make real certificates). */
Test(config_errors, tls_section)
{
    static const struct error_case cases[] = {
        {"tls: yes\n" B, "t.yaml:1:6: tls must be a mapping, got \"yes\"\n"},
        {"tls: {}\n" B, "t.yaml:1:6: tls is missing \"listen\" (the HTTPS listener's address)\n"
                        "t.yaml:1:6: tls is missing \"certificates\"\n"},
        {"tls: {listen: \":8443\", certificates: []}\n" B,
         "t.yaml:1:38: tls.certificates must be a non-empty sequence of {certFile, keyFile}, got an "
         "empty sequence\n"},
        {"tls: {listen: \":8443\", certificates: [{certFile: a.pem}]}\n" B,
         "t.yaml:1:39: certificate is missing \"keyFile\"\n"},
        {"tls: {listen: \":8443\", certificates: [x]}\n" B,
         "t.yaml:1:39: a certificate must be a mapping with certFile and keyFile, got \"x\"\n"},
        {"tls: {listen: 8443, certificates: [{certFile: a, keyFile: b, chain: c}]}\n" B,
         "t.yaml:1:15: tls.listen must be \"ADDR:PORT\", \"[IPv6]:PORT\" or \":PORT\", got \"8443\"\n"
         "t.yaml:1:47: cannot read certificate file \"a\": No such file or directory\n"
         "t.yaml:1:62: unknown key \"chain\" in certificate\n"},
        {"tls: {listen: \":1\", minVersion: \"1.1\", certificates: [{certFile: /n, keyFile: /k}]}\n" B,
         "t.yaml:1:33: tls.minVersion must be \"1.2\" or \"1.3\", got the quoted string \"1.1\"\n"
         "t.yaml:1:66: cannot read certificate file \"/n\": No such file or directory\n"},
        {"tls: {listen: \":1\", sessionTickets: maybe, ticketKeyRotation: 5, redirectHttp: 1,"
         " clientSubjectHeader: \"X Bad\", certificates: [{certFile: /n, keyFile: /k}]}\n" B,
         "t.yaml:1:37: tls.sessionTickets must be true or false, got \"maybe\"\n"
         "t.yaml:1:63: tls.ticketKeyRotation must be at least 60 seconds, got 5\n"
         "t.yaml:1:80: tls.redirectHttp must be true or false, got \"1\"\n"
         "t.yaml:1:104: tls.clientSubjectHeader must be a header field name, got the quoted string "
         "\"X Bad\"\n"
         "t.yaml:1:139: cannot read certificate file \"/n\": No such file or directory\n"},
        {"tls: {listen: \":1\", sessionTimeout: 0, certificates: [{certFile: /n, keyFile: /k}]}\n" B,
         "t.yaml:1:37: tls.sessionTimeout must be at least 1 seconds, got 0\n"
         "t.yaml:1:66: cannot read certificate file \"/n\": No such file or directory\n"},
        {"tls: {listen: \":1\", lissen: x, certificates: [{certFile: /n, keyFile: /k}]}\n" B,
         "t.yaml:1:21: unknown key \"lissen\" in tls (did you mean \"listen\"?)\n"
         "t.yaml:1:58: cannot read certificate file \"/n\": No such file or directory\n"},
        {"tls: {listen: \":1\", clientSubjectHeader: X-S, certificates: [{certFile: /n, keyFile: /k}]}\n" B,
         "t.yaml:1:42: tls.clientSubjectHeader needs tls.clientCaFile (no client certificate is "
         "verified without it)\n"
         "t.yaml:1:73: cannot read certificate file \"/n\": No such file or directory\n"},
        {"listen: off\n" B, "t.yaml:1:9: listen: off needs a tls section (golb would serve nothing)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---------------------------------------------------------------------------------------------
 * Balancing keys
 */

Test(config, balancing_defaults)
{
    struct config *c = load_ok(B);
    cr_expect_null(c->balance);
    cr_expect_eq(c->hash_key, CONFIG_HASH_CLIENT);
    cr_expect_eq(c->hash_load_factor, 0);
    cr_expect_eq(c->slow_start_ms, 0);
    cr_expect_eq(c->panic_threshold, 0);
    cr_expect_eq(c->healthy_threshold, 1);
    cr_expect_eq(c->unhealthy_threshold, 1);
    cr_expect_null(c->sticky.cookie);
    cr_expect_eq(c->backends[0].weight, 1, "the plain string form has weight 1");
    config_free(c);
}

Test(config, balancing_keys)
{
    struct config *c = load_ok("balance: hash\n"
                               "hashKey: \"cookie:session\"\n"
                               "hashLoadFactor: 1.25\n"
                               "slowStart: 30\n"
                               "panicThreshold: 50\n"
                               "healthyThreshold: 2\n"
                               "unhealthyThreshold: 3\n"
                               "stickySession:\n"
                               "  cookie: GOLBSRV\n"
                               "  maxAge: 3600\n"
                               "  secure: true\n"
                               "  httpOnly: false\n"
                               "  sameSite: Lax\n"
                               "backends:\n"
                               "  - url: http://127.0.0.1:8081\n"
                               "    weight: 3\n"
                               "  - http://127.0.0.1:8082/health\n"
                               "  - url: http://127.0.0.1:8083\n"
                               "    weight: 0\n");
    cr_expect_str_eq(c->balance, "hash");
    cr_expect_eq(c->hash_key, CONFIG_HASH_COOKIE);
    cr_expect_str_eq(c->hash_key_name, "session");
    cr_expect_eq(c->hash_load_factor, 1250);
    cr_expect_eq(c->slow_start_ms, 30000);
    cr_expect_eq(c->panic_threshold, 50);
    cr_expect_eq(c->healthy_threshold, 2);
    cr_expect_eq(c->unhealthy_threshold, 3);
    cr_expect_str_eq(c->sticky.cookie, "GOLBSRV");
    cr_expect_eq(c->sticky.max_age, 3600);
    cr_expect(c->sticky.secure);
    cr_expect_not(c->sticky.http_only);
    cr_expect_str_eq(c->sticky.same_site, "Lax");
    cr_expect_eq(c->backends[0].weight, 3);
    cr_expect_eq(c->backends[1].weight, 1);
    cr_expect_str_eq(c->backends[1].health_path, "/health");
    cr_expect_eq(c->backends[2].weight, 0);
    config_free(c);

    const char *strategies[] = {"roundRobin", "leastConnections", "random", "leastLatency"};
    for (size_t i = 0; i < 4; i++) {
        char y[128];
        snprintf(y, sizeof(y), "balance: %s\n" B, strategies[i]);
        c = load_ok(y);
        cr_expect_str_eq(c->balance, strategies[i]);
        config_free(c);
    }
    const char *keys[][3] = {{"clientAddress", "", ""}, {"uri", "", ""},
                             {"\"header:X-User\"", "X-User", ""}, {"\"query:id\"", "id", ""}};
    enum config_hash_key kinds[] = {CONFIG_HASH_CLIENT, CONFIG_HASH_URI, CONFIG_HASH_HEADER,
                                    CONFIG_HASH_QUERY};
    for (size_t i = 0; i < 4; i++) {
        char y[128];
        snprintf(y, sizeof(y), "balance: hash\nhashKey: %s\n" B, keys[i][0]);
        c = load_ok(y);
        cr_expect_eq(c->hash_key, kinds[i]);
        if (keys[i][1][0])
            cr_expect_str_eq(c->hash_key_name, keys[i][1]);
        config_free(c);
    }
    c = load_ok("stickySession: {cookie: S}\n" B);
    cr_expect(c->sticky.http_only, "httpOnly defaults to true");
    cr_expect_not(c->sticky.secure);
    cr_expect_eq(c->sticky.max_age, 0);
    cr_expect_null(c->sticky.same_site);
    config_free(c);
    c = load_ok("balance: hash\nhashLoadFactor: 0\n" B);
    cr_expect_eq(c->hash_load_factor, 0);
    config_free(c);
}

Test(config_errors, balancing_keys)
{
    static const struct error_case cases[] = {
        {"balance: leastconn\n" B, "t.yaml:1:10: balance must be roundRobin, leastConnections, "
                                   "random, leastLatency or hash, got \"leastconn\"\n"},
        {"balance: hash\nhashKey: host\n" B,
         "t.yaml:2:10: hashKey must be clientAddress, uri, \"header:NAME\", \"cookie:NAME\" or "
         "\"query:NAME\", got \"host\"\n"},
        {"balance: hash\nhashKey: \"header:a b\"\n" B,
         "t.yaml:2:10: hashKey: invalid name \"a b\"\n"},
        {"balance: hash\nhashKey: \"cookie:\"\n" B, "t.yaml:2:10: hashKey: invalid name \"\"\n"},
        {"balance: hash\nhashLoadFactor: 1\n" B,
         "t.yaml:2:17: hashLoadFactor must be 0 (off) or above 1 and at most 100, got 1\n"},
        {"balance: hash\nhashLoadFactor: x\n" B,
         "t.yaml:2:17: hashLoadFactor must be a number (e.g. 1.25), got \"x\"\n"},
        {"slowStart: 3601\n" B,
         "t.yaml:1:12: slowStart must be between 0 and 3600 seconds, got 3601\n"},
        {"panicThreshold: 101\n" B,
         "t.yaml:1:17: panicThreshold must be between 0 and 100, got 101\n"},
        {"healthyThreshold: 0\n" B,
         "t.yaml:1:19: healthyThreshold must be between 1 and 100, got 0\n"},
        {"unhealthyThreshold: 0\n" B,
         "t.yaml:1:21: unhealthyThreshold must be between 1 and 100, got 0\n"},
        {"stickySession: GOLBSRV\n" B,
         "t.yaml:1:16: stickySession must be a mapping with \"cookie\", got \"GOLBSRV\"\n"},
        {"stickySession: {maxAge: 1}\n" B, "t.yaml:1:16: stickySession is missing \"cookie\"\n"},
        {"stickySession: {cookie: \"a;b\", secure: yes, sameSite: lax, cokie: x}\n" B,
         "t.yaml:1:25: stickySession cookie must be a cookie name, got the quoted string "
         "\"a;b\"\n"
         "t.yaml:1:40: secure must be true or false, got \"yes\"\n"
         "t.yaml:1:55: sameSite must be Strict, Lax or None, got \"lax\"\n"
         "t.yaml:1:60: unknown key \"cokie\" in stickySession (did you mean \"cookie\"?)\n"},
        {"backends:\n  - url: http://127.0.0.1:8081\n    weight: 1001\n",
         "t.yaml:3:13: weight must be between 0 and 1000, got 1001\n"},
        {"backends:\n  - url: http://127.0.0.1:8081\n    weight: -1\n",
         "t.yaml:3:13: weight must be between 0 and 1000, got -1\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/* One rule for every key in seconds: fractions are fine (slowStart and stickySession's maxAge
 * were integers once, while the timeouts took "0.5"). */
Test(config, seconds_accept_fractions_everywhere)
{
    struct config *c = load_ok("slowStart: 0.5\n"
                               "stickySession: {cookie: s, maxAge: 1.5}\n" B);
    cr_expect_eq(c->slow_start_ms, 500);
    cr_expect_eq(c->sticky.max_age, 2, "Max-Age is whole seconds: a fraction rounds up");
    config_free(c);
    c = load_ok("slowStart: 0\nstickySession: {cookie: s, maxAge: 0.001}\n" B);
    cr_expect_eq(c->slow_start_ms, 0, "0 is off");
    cr_expect_eq(c->sticky.max_age, 1);
    config_free(c);
    c = load_ok("slowStart: 3600.0\nstickySession: {cookie: s, maxAge: 315360000}\n" B);
    cr_expect_eq(c->slow_start_ms, 3600000);
    cr_expect_eq(c->sticky.max_age, 315360000);
    config_free(c);
    static const struct error_case cases[] = {
        {"slowStart: -0.5\n" B,
         "t.yaml:1:12: slowStart must be between 0 and 3600 seconds, got -0.5\n"},
        {"slowStart: 3600.001\n" B,
         "t.yaml:1:12: slowStart must be between 0 and 3600 seconds, got 3600.001\n"},
        {"slowStart: 0.0001\n" B,
         "t.yaml:1:12: slowStart must be at least 0.001 seconds (1 ms), got 0.0001\n"},
        {"slowStart: 30s\n" B,
         "t.yaml:1:12: slowStart must be a number of seconds (e.g. 3 or 0.5), got \"30s\"\n"},
        {"stickySession: {cookie: s, maxAge: 315360000.5}\n" B,
         "t.yaml:1:36: maxAge must be between 0 and 315360000 seconds, got 315360000.5\n"},
        {"stickySession: {cookie: s, maxAge: \"60\"}\n" B,
         "t.yaml:1:36: maxAge must be a number of seconds (e.g. 3 or 0.5), got the quoted "
         "string \"60\"\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, hash_keys_without_hash_draw_a_warning)
{
    struct config *c = NULL;
    char *errs = NULL;
    cr_assert_eq(load("hashKey: uri\n" B, &c, &errs), 0);
    cr_expect_str_eq(errs, "t.yaml:1:1: warning: hashKey is ignored unless balance is hash\n");
    free(errs);
    config_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Observability keys: admin, accessLog, accessLogPath, logFormat
 */

Test(config, observability_keys_and_defaults)
{
    struct config *cfg = load_ok(B);
    cr_expect_null(cfg->admin_listen);
    cr_expect_eq(cfg->access_log, 0);
    cr_expect_null(cfg->access_log_path);
    cr_expect(!cfg->log_json);
    config_free(cfg);

    cfg = load_ok(B "admin:\n  listen: 127.0.0.1:9901\naccessLog: json\n"
                    "accessLogPath: /var/log/golb/access.log\nlogFormat: json\n");
    cr_expect_str_eq(cfg->admin_listen, "127.0.0.1:9901");
    expect_ipv4(&cfg->admin_addr, "127.0.0.1", 9901);
    cr_expect_null(cfg->admin_token);
    cr_expect_eq(cfg->access_log, 2);
    cr_expect_str_eq(cfg->access_log_path, "/var/log/golb/access.log");
    cr_expect(cfg->log_json);
    config_free(cfg);

    cfg = load_ok(B "admin: {listen: \"0.0.0.0:9901\", token: \"s3cret\"}\naccessLog: text\n");
    cr_expect_str_eq(cfg->admin_token, "s3cret");
    cr_expect_eq(cfg->access_log, 1);
    config_free(cfg);

    cfg = load_ok(B "admin:\n  listen: unix:/run/golb/admin.sock\naccessLog: off\n");
    cr_expect_eq(cfg->admin_addr.ss_family, AF_UNIX);
    cr_expect_eq(cfg->access_log, 0);
    config_free(cfg);

    cfg = load_ok(B "admin:\n  listen: \"[::1]:0\"\n");
    expect_ipv6(&cfg->admin_addr, "::1", 0);
    config_free(cfg);
}

Test(config, observability_errors)
{
    static const struct error_case cases[] = {
        {B "admin: 9901\n",
         "t.yaml:2:8: admin must be a mapping with \"listen\" (and \"token\"), got \"9901\"\n"},
        {B "admin:\n  token: x\n", "t.yaml:3:3: admin is missing \"listen\"\n"},
        {B "admin:\n  listen: 127.0.0.1:1\n  tokn: x\n",
         "t.yaml:4:3: unknown key \"tokn\" in admin (did you mean \"token\"?)\n"},
        {B "admin:\n  listen: 10.1.2.3:9901\n",
         "t.yaml:3:11: admin.token or admin.tokenFile is required when admin.listen is not a "
         "loopback or unix address\n"},
        {B "admin:\n  listen: nowhere\n",
         "t.yaml:3:11: admin.listen must be \"ADDR:PORT\", \"[IPv6]:PORT\", \":PORT\" or "
         "\"unix:/PATH\", got \"nowhere\"\n"},
        {B "admin:\n  listen: unix:relative\n",
         "t.yaml:3:11: admin.listen must be \"ADDR:PORT\", \"[IPv6]:PORT\", \":PORT\" or "
         "\"unix:/PATH\", got \"unix:relative\"\n"},
        {B "admin:\n  listen: 127.0.0.1:1\n  token: \"\"\n",
         "t.yaml:4:10: admin.token must be a non-empty string of visible ASCII characters\n"},
        {B "accessLog: yes\n", "t.yaml:2:12: accessLog must be one of off, text, json, got \"yes\"\n"},
        {B "logFormat: xml\n", "t.yaml:2:12: logFormat must be one of text, json, got \"xml\"\n"},
        {B "accessLogPath: log.txt\n", "t.yaml:2:16: accessLogPath must be a path, got \"log.txt\"\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, backend_key_is_scheme_host_and_port)
{
    char host[] = "127.0.0.1", v6host[] = "::1", name[] = "127.0.0.1:8082";
    struct config_backend x = {.host = host, .port = 8081}, y = {.host = host, .port = 8081,
                                                                 .tls = true};
    struct config_backend v6 = {.host = v6host, .port = 443, .tls = true};
    struct config_backend by_hand = {.name = name}; /* no host: built by hand, the name is used */
    char a[64], b[64], c[64], d[64], cut[12];
    config_backend_key(&x, a, sizeof(a));
    config_backend_key(&y, b, sizeof(b));
    config_backend_key(&v6, c, sizeof(c));
    config_backend_key(&by_hand, d, sizeof(d));
    config_backend_key(&x, cut, sizeof(cut));
    cr_expect_str_eq(a, "http://127.0.0.1:8081");
    cr_expect_str_eq(b, "https://127.0.0.1:8081");
    cr_expect_str_eq(c, "https://[::1]:443");
    cr_expect_str_eq(d, "http://127.0.0.1:8082");
    cr_expect_str_eq(cut, "http://127.", "cut to the buffer, NUL-terminated");
}

/* ---------------------------------------------------------------------------------------------
 * upgradeProtocols
 */

static size_t list_len(char **l)
{
    size_t n = 0;
    while (l && l[n])
        n++;
    return n;
}

Test(config, upgrade_protocols_default_list_and_off)
{
    struct config *cfg = load_ok(B);
    cr_assert_eq(list_len(cfg->upgrade_protocols), 1);
    cr_expect_str_eq(cfg->upgrade_protocols[0], "websocket");
    config_free(cfg);

    cfg = load_ok(B "upgradeProtocols: [WebSocket, h2c, foo/2]\n");
    cr_assert_eq(list_len(cfg->upgrade_protocols), 3);
    cr_expect_str_eq(cfg->upgrade_protocols[0], "WebSocket");
    cr_expect_str_eq(cfg->upgrade_protocols[1], "h2c");
    cr_expect_str_eq(cfg->upgrade_protocols[2], "foo/2");
    config_free(cfg);

    cfg = load_ok(B "upgradeProtocols: []\n");
    cr_assert_not_null(cfg->upgrade_protocols, "an empty list, not the default");
    cr_expect_eq(list_len(cfg->upgrade_protocols), 0);
    config_free(cfg);
}

Test(config, upgrade_protocols_errors)
{
    static const struct error_case cases[] = {
        {B "upgradeProtocols: websocket\n",
         "t.yaml:2:19: upgradeProtocols must be a sequence of protocol names (e.g. [websocket]), "
         "got \"websocket\"\n"},
        {B "upgradeProtocols:\n  - websocket\n  - \"web socket\"\n  - [x]\n  - a/\n  - /1\n"
           "  - h2c,x\n",
         "t.yaml:4:5: upgradeProtocols entry must be a protocol name (a token such as websocket, "
         "optionally with /VERSION), got the quoted string \"web socket\"\n"
         "t.yaml:5:5: upgradeProtocols entry must be a protocol name (a token such as websocket, "
         "optionally with /VERSION), got a sequence\n"
         "t.yaml:6:5: upgradeProtocols entry must be a protocol name (a token such as websocket, "
         "optionally with /VERSION), got \"a/\"\n"
         "t.yaml:7:5: upgradeProtocols entry must be a protocol name (a token such as websocket, "
         "optionally with /VERSION), got \"/1\"\n"
         "t.yaml:8:5: upgradeProtocols entry must be a protocol name (a token such as websocket, "
         "optionally with /VERSION), got \"h2c,x\"\n"},
        {B "upgradeProtocols: [websocket]\nupgradeProtocols: []\n",
         "t.yaml:3:1: duplicate key \"upgradeProtocols\" (first defined at line 2)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---------------------------------------------------------------------------------------------
 * admin.tokenFile
 */

/* A file holding `content` with `mode` in a fresh directory; returns its path (static). */
static char token_dir[32];
static char token_path[64];

static const char *token_file(const char *content, size_t len, mode_t mode)
{
    char *path = token_path;
    if (!token_dir[0]) {
        strcpy(token_dir, "/tmp/golb-token-XXXXXX");
        cr_assert_not_null(mkdtemp(token_dir));
    }
    snprintf(token_path, sizeof(token_path), "%s/token", token_dir);
    unlink(path);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(content, 1, len, f), len);
    fclose(f);
    cr_assert_eq(chmod(path, mode), 0);
    return path;
}

static void token_cleanup(void)
{
    unlink(token_path);
    rmdir(token_dir);
    token_dir[0] = '\0';
}

static char *admin_yaml(const char *listen, const char *path)
{
    char *y;
    cr_assert_neq(asprintf(&y, B "admin:\n  listen: %s\n  tokenFile: %s\n", listen, path), -1);
    return y;
}

Test(config, admin_token_file_is_read_and_trimmed, .fini = token_cleanup)
{
    const char *p = token_file("s3cret-from-file \t\r\n\n", 21, 0600);
    char *y = admin_yaml("127.0.0.1:9901", p);
    struct config *cfg = load_ok(y);
    cr_expect_str_eq(cfg->admin_token, "s3cret-from-file");
    config_free(cfg);
    free(y);
    /* it satisfies the non-loopback rule as admin.token does */
    y = admin_yaml("0.0.0.0:9901", p);
    cfg = load_ok(y);
    cr_expect_str_eq(cfg->admin_token, "s3cret-from-file");
    config_free(cfg);
    free(y);
}

Test(config, admin_token_file_errors, .fini = token_cleanup)
{
    char *y, *errs, *want;
    struct config *cfg;
    static const struct {
        const char *content;
        size_t len;
        const char *why;
    } bad[] = {
        {"", 0, "it is empty"},
        {" \n\r\n", 4, "it is empty"},
        {"two words\n", 10, "it must hold one token of visible ASCII characters"},
        {" leading", 8, "it must hold one token of visible ASCII characters"},
        {"nul\0byte", 8, "it must hold one token of visible ASCII characters"},
        {"caf\xc3\xa9", 5, "it must hold one token of visible ASCII characters"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *p = token_file(bad[i].content, bad[i].len, 0600);
        y = admin_yaml("127.0.0.1:1", p);
        cr_assert_neq(asprintf(&want, "t.yaml:4:14: admin.tokenFile: cannot use \"%s\": %s\n", p,
                               bad[i].why),
                      -1);
        expect_fail(y, want);
        free(want);
        free(y);
    }
    /* larger than 4096 bytes, even when what follows is whitespace */
    char big[4200];
    memset(big, 'a', sizeof(big));
    big[4096] = '\n';
    const char *p = token_file(big, sizeof(big), 0600);
    y = admin_yaml("127.0.0.1:1", p);
    cr_assert_neq(asprintf(&want, "t.yaml:4:14: admin.tokenFile: cannot use \"%s\": it is larger "
                                  "than 4096 bytes\n", p), -1);
    expect_fail(y, want);
    free(want);
    free(y);
    /* a file of exactly 4096 bytes is fine */
    big[4095] = '\n';
    p = token_file(big, 4096, 0600);
    y = admin_yaml("127.0.0.1:1", p);
    cfg = load_ok(y);
    cr_expect_eq(strlen(cfg->admin_token), 4095);
    config_free(cfg);
    free(y);

    /* unreadable: missing, a directory, no permission (unless root) */
    y = admin_yaml("127.0.0.1:1", "/nonexistent/golb-token");
    expect_fail(y, "t.yaml:4:14: admin.tokenFile: cannot read \"/nonexistent/golb-token\": No such "
                   "file or directory\n");
    free(y);
    y = admin_yaml("127.0.0.1:1", "/tmp");
    expect_fail(y, "t.yaml:4:14: admin.tokenFile: cannot use \"/tmp\": it is not a regular file\n");
    free(y);
    if (geteuid() != 0) {
        p = token_file("tok", 3, 0);
        y = admin_yaml("127.0.0.1:1", p);
        cr_assert_neq(asprintf(&want, "t.yaml:4:14: admin.tokenFile: cannot read \"%s\": "
                                      "Permission denied\n", p), -1);
        expect_fail(y, want);
        free(want);
        free(y);
    }
    static const struct error_case cases[] = {
        {B "admin:\n  listen: 127.0.0.1:1\n  token: a\n  tokenFile: /x\n",
         "t.yaml:5:3: admin.token and admin.tokenFile are mutually exclusive: give one\n"},
        {B "admin:\n  tokenFile: /x\n  listen: 127.0.0.1:1\n  token: a\n",
         "t.yaml:5:3: admin.token and admin.tokenFile are mutually exclusive: give one\n"},
        {B "admin:\n  listen: 127.0.0.1:1\n  tokenFile: \"\"\n",
         "t.yaml:4:14: admin.tokenFile must be a path, got the quoted string \"\"\n"},
        {B "admin:\n  listen: 127.0.0.1:1\n  tokenFile: [a]\n",
         "t.yaml:4:14: admin.tokenFile must be a path, got a sequence\n"},
        {B "admin:\n  listen: 127.0.0.1:1\n  tokenFile: \"a\\nb\"\n",
         "t.yaml:4:14: admin.tokenFile must be a path, got the quoted string \"a\\x0Ab\"\n"},
        {B "admin:\n  listen: 127.0.0.1:1\n  tokenfile: /x\n",
         "t.yaml:4:3: unknown key \"tokenfile\" in admin (did you mean \"tokenFile\"?)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));

    /* a file every user may read still works, with a warning */
    p = token_file("tok\n", 4, 0644);
    y = admin_yaml("127.0.0.1:1", p);
    cr_assert_eq(load(y, &cfg, &errs), 0);
    cr_assert_neq(asprintf(&want, "t.yaml:4:14: warning: admin.tokenFile: \"%s\" is readable by "
                                  "every user (chmod o-r)\n", p), -1);
    cr_expect_str_eq(errs, want);
    cr_expect_str_eq(cfg->admin_token, "tok");
    config_free(cfg);
    free(errs);
    free(want);
    free(y);
}

/* ---------------------------------------------------------------------------------------------
 * stickySession.secret / secretFile: the cookie key, the same in every process
 */

/* SHA-256("golb sticky cookie key v1" NUL "0123456789abcdef"), first 16 bytes little-endian
 * (computed with Python's hashlib): changing the derivation would invalidate every cookie a fleet
 * has issued, so it is pinned here. */
static const uint64_t KEY_0123[2] = {0x603f44616f16e56bull, 0xe367ecc8268b719dull};

Test(config, sticky_secret_keys_the_cookie, .fini = token_cleanup)
{
    struct config *a = load_ok("stickySession: {cookie: s, secret: \"0123456789abcdef\"}\n" B);
    cr_expect(a->sticky.keyed);
    cr_expect_eq(a->sticky.key[0], KEY_0123[0]);
    cr_expect_eq(a->sticky.key[1], KEY_0123[1]);
    /* the same secret from a file (trailing newline ignored) is the same key */
    const char *p = token_file("0123456789abcdef\n", 17, 0600);
    char *y;
    cr_assert_neq(asprintf(&y, "stickySession:\n  cookie: s\n  secretFile: %s\n" B, p), -1);
    struct config *b = load_ok(y);
    free(y);
    cr_expect(b->sticky.keyed);
    cr_expect_eq(memcmp(a->sticky.key, b->sticky.key, sizeof(a->sticky.key)), 0);
    /* another secret, another key; none: the process's own (not keyed) */
    struct config *c = load_ok("stickySession: {cookie: s, secret: \"0123456789abcdeF\"}\n" B);
    cr_expect_neq(memcmp(a->sticky.key, c->sticky.key, sizeof(a->sticky.key)), 0);
    struct config *d = load_ok("stickySession: {cookie: s}\n" B);
    cr_expect(!d->sticky.keyed);
    config_free(a);
    config_free(b);
    config_free(c);
    config_free(d);
}

Test(config, sticky_secret_file_is_relative_to_the_config, .fini = token_cleanup)
{
    (void)token_file("0123456789abcdef", 16, 0600);
    char path[96], *errs = NULL;
    snprintf(path, sizeof(path), "%s/golb.yml", token_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("stickySession:\n  cookie: s\n  secretFile: token\n" B, f);
    fclose(f);
    struct config *cfg = NULL;
    int rc = load_file(path, &cfg, &errs);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", errs);
    cr_expect_str_eq(errs, "");
    cr_expect(cfg->sticky.keyed);
    cr_expect_eq(cfg->sticky.key[0], KEY_0123[0]);
    cr_expect_eq(cfg->sticky.key[1], KEY_0123[1]);
    config_free(cfg);
    free(errs);
}

Test(config_errors, sticky_secret, .fini = token_cleanup)
{
    static const struct error_case cases[] = {
        {"stickySession: {cookie: s, secret: short}\n" B,
         "t.yaml:1:36: stickySession.secret must be at least 16 characters, got 5\n"},
        {"stickySession: {cookie: s, secret: \"0123456789 abcdef\"}\n" B,
         "t.yaml:1:36: stickySession.secret must hold visible ASCII characters only (no spaces or "
         "control characters)\n"},
        {"stickySession: {cookie: s, secret: [a]}\n" B,
         "t.yaml:1:36: stickySession.secret must be a string, got a sequence\n"},
        {"stickySession: {cookie: s, secret: }\n" B,
         "t.yaml:1:36: stickySession.secret must be a string, got null\n"},
        {"stickySession:\n  cookie: s\n  secretFile: /x\n  secret: \"0123456789abcdef\"\n" B,
         "t.yaml:4:3: stickySession.secret and stickySession.secretFile are mutually exclusive: "
         "give one\n"},
        {"stickySession:\n  cookie: s\n  secret: \"0123456789abcdef\"\n  secretFile: /x\n" B,
         "t.yaml:4:3: stickySession.secret and stickySession.secretFile are mutually exclusive: "
         "give one\n"},
        {"stickySession: {cookie: s, secretFile: /nonexistent/golb-secret}\n" B,
         "t.yaml:1:40: stickySession.secretFile: cannot read \"/nonexistent/golb-secret\": No such "
         "file or directory\n"},
        {"stickySession: {cookie: s, secretFile: /tmp}\n" B,
         "t.yaml:1:40: stickySession.secretFile: cannot use \"/tmp\": it is not a regular file\n"},
        {"stickySession: {cookie: s, secretfile: /tmp}\n" B,
         "t.yaml:1:28: unknown key \"secretfile\" in stickySession (did you mean "
         "\"secretFile\"?)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
    char *y, *want;
    const char *p = token_file("0123456789abcde\n", 16, 0600); /* 15 once trimmed */
    cr_assert_neq(asprintf(&y, "stickySession: {cookie: s, secretFile: %s}\n" B, p), -1);
    expect_fail(y, "t.yaml:1:40: stickySession.secretFile: the secret must be at least 16 "
                   "characters, the file holds 15\n");
    free(y);
    p = token_file("0123456789 abcdef", 17, 0600);
    cr_assert_neq(asprintf(&y, "stickySession: {cookie: s, secretFile: %s}\n" B, p), -1);
    cr_assert_neq(asprintf(&want, "t.yaml:1:40: stickySession.secretFile: cannot use \"%s\": it "
                                  "must hold one token of visible ASCII characters\n", p), -1);
    expect_fail(y, want);
    free(want);
    free(y);
    /* readable by every user: a warning, as for admin.tokenFile */
    p = token_file("0123456789abcdef", 16, 0644);
    cr_assert_neq(asprintf(&y, "stickySession: {cookie: s, secretFile: %s}\n" B, p), -1);
    struct config *cfg;
    char *errs;
    cr_assert_eq(load(y, &cfg, &errs), 0);
    cr_assert_neq(asprintf(&want, "t.yaml:1:40: warning: stickySession.secretFile: \"%s\" is "
                                  "readable by every user (chmod o-r)\n", p), -1);
    cr_expect_str_eq(errs, want);
    cr_expect(cfg->sticky.keyed);
    config_free(cfg);
    free(errs);
    free(want);
    free(y);
}

/* ---------------------------------------------------------------------------------------------
 * http2 and tls.alpn
 */

Test(config, http2_defaults_and_values)
{
    struct config *cfg = load_ok(B);
    cr_expect_not(cfg->http2.cleartext);
    cr_expect_eq(cfg->http2.max_concurrent_streams, 128);
    cr_expect_eq(cfg->http2.initial_window_size, 262144);
    cr_expect_eq(cfg->http2.idle_timeout_ms, 180000);
    config_free(cfg);

    cfg = load_ok(B "http2:\n");
    cr_expect_eq(cfg->http2.max_concurrent_streams, 128, "http2 alone: every default");
    config_free(cfg);

    cfg = load_ok(B "http2: {cleartext: true, maxConcurrentStreams: 10000,\n"
                    "        initialWindowSize: 2147483647, idleTimeout: 0.5}\n");
    cr_expect(cfg->http2.cleartext);
    cr_expect_eq(cfg->http2.max_concurrent_streams, 10000);
    cr_expect_eq(cfg->http2.initial_window_size, 2147483647u);
    cr_expect_eq(cfg->http2.idle_timeout_ms, 500);
    config_free(cfg);
}

Test(config, http2_errors)
{
    static const struct error_case cases[] = {
        {B "http2: yes\n", "t.yaml:2:8: http2 must be a mapping, got \"yes\"\n"},
        {B "http2: {maxConcurrentStreams: 0}\n",
         "t.yaml:2:31: maxConcurrentStreams must be between 1 and 10000, got 0\n"},
        {B "http2: {initialWindowSize: 65534}\n",
         "t.yaml:2:28: initialWindowSize must be between 65535 and 2147483647, got 65534\n"},
        {B "http2: {initialWindowSize: 2147483648}\n",
         "t.yaml:2:28: initialWindowSize must be between 65535 and 2147483647, got 2147483648\n"},
        {B "http2: {cleartext: 1, idleTimeout: 0}\n",
         "t.yaml:2:20: cleartext must be true or false, got \"1\"\n"
         "t.yaml:2:36: idleTimeout must be greater than 0, got 0\n"},
        {B "http2: {maxConcurentStreams: 3}\n",
         "t.yaml:2:9: unknown key \"maxConcurentStreams\" in http2 (did you mean "
         "\"maxConcurrentStreams\"?)\n"},
    };
    expect_all(cases, sizeof(cases) / sizeof(cases[0]));
}
