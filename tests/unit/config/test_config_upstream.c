/* Unit tests for the upstream keys (protocol, healthCheck, healthCheckService,
 * maxStreamsPerConnection): defaults, top level → pools → backend entries, every error with its
 * position, and the reload diff. Numeric hosts only. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../support/config_support.h"
#include "config/config.h"
#include "config/config_diff.h"

static const char *svc(const struct config_upstream *u)
{
    return u->health_check_service ? u->health_check_service : "";
}

Test(config_upstream, defaults)
{
    struct config *c = load_warn("backends: [http://127.0.0.1:8081]\n", "");
    cr_expect_eq(c->up.protocol, CONFIG_PROTO_HTTP1);
    cr_expect_eq(c->up.health_check, CONFIG_HC_HTTP);
    cr_expect_str_eq(svc(&c->up), "");
    cr_expect_eq(c->up.max_streams, 100);
    cr_expect_eq(c->backends[0].up.protocol, CONFIG_PROTO_HTTP1);
    cr_expect_eq(c->backends[0].up.max_streams, 100);
    cr_expect_eq(c->pools[0].up.max_streams, 100);
    config_free(c);
}


/* Top level → default pool and its backends; pools inherit and override; an entry overrides. */
Test(config_upstream, inheritance)
{
    struct config *c = load_warn("protocol: h2\n"                                 /* 1 */
                                 "healthCheck: grpc\n"                            /* 2 */
                                 "healthCheckService: users.v1.Users\n"           /* 3 */
                                 "maxStreamsPerConnection: 50\n"                  /* 4 */
                                 "backends:\n"                                    /* 5 */
                                 "  - http://127.0.0.1:8081\n"                    /* 6 */
                                 "  - {url: http://127.0.0.1:8082, protocol: http1,"
                                 " healthCheck: http}\n"                          /* 7 */
                                 "pools:\n"                                       /* 8 */
                                 "  a:\n"                                         /* 9 */
                                 "    backends: [http://127.0.0.1:9000]\n"        /* 10 */
                                 "  b:\n"                                         /* 11 */
                                 "    maxStreamsPerConnection: 7\n"               /* 12 */
                                 "    healthCheckService: \"\"\n"                 /* 13 */
                                 "    protocol: http1\n"                          /* 14 */
                                 "    backends:\n"                                /* 15 */
                                 "      - http://127.0.0.1:9001\n"                /* 16 */
                                 "      - url: http://127.0.0.1:9002\n"           /* 17 */
                                 "        maxStreamsPerConnection: 3\n"           /* 18 */
                                 "        healthCheckService: x.Y\n",             /* 19 */
                                
                                 "t.yaml:9:3: warning: pool \"a\" is not used by any route\n"
                                 "t.yaml:11:3: warning: pool \"b\" is not used by any route\n");
    cr_expect_eq(c->up.protocol, CONFIG_PROTO_H2);
    cr_expect_eq(c->backends[0].up.protocol, CONFIG_PROTO_H2);
    cr_expect_eq(c->backends[0].up.health_check, CONFIG_HC_GRPC);
    cr_expect_str_eq(svc(&c->backends[0].up), "users.v1.Users");
    cr_expect_eq(c->backends[0].up.max_streams, 50);
    cr_expect_eq(c->backends[1].up.protocol, CONFIG_PROTO_HTTP1);
    cr_expect_eq(c->backends[1].up.health_check, CONFIG_HC_HTTP);
    cr_expect_str_eq(svc(&c->backends[1].up), "users.v1.Users");
    cr_expect_eq(c->backends[1].up.max_streams, 50);
    cr_assert_eq(c->npools, 3);
    const struct config_pool *a = &c->pools[1], *b = &c->pools[2];
    cr_expect_eq(a->up.protocol, CONFIG_PROTO_H2);
    cr_expect_eq(a->backends[0].up.health_check, CONFIG_HC_GRPC);
    cr_expect_eq(a->backends[0].up.max_streams, 50);
    cr_expect_str_eq(svc(&a->backends[0].up), "users.v1.Users");
    cr_expect_eq(b->up.protocol, CONFIG_PROTO_HTTP1);
    cr_expect_eq(b->up.health_check, CONFIG_HC_GRPC);
    cr_expect_eq(b->backends[0].up.max_streams, 7);
    cr_expect_str_eq(svc(&b->backends[0].up), "");
    cr_expect_eq(b->backends[0].up.protocol, CONFIG_PROTO_HTTP1);
    cr_expect_eq(b->backends[1].up.max_streams, 3);
    cr_expect_str_eq(svc(&b->backends[1].up), "x.Y");
    cr_expect_eq(b->backends[1].up.health_check, CONFIG_HC_GRPC);
    config_free(c);
}

Test(config_upstream, errors)
{
    expect_fail("protocol: http2\nbackends: [http://127.0.0.1:8081]\n",
                "t.yaml:1:11: protocol must be one of http1, h2, got \"http2\"\n");
    expect_fail("healthCheck: tcp\nbackends: [http://127.0.0.1:8081]\n",
                "t.yaml:1:14: healthCheck must be one of http, grpc, got \"tcp\"\n");
    expect_fail("maxStreamsPerConnection: 0\nbackends: [http://127.0.0.1:8081]\n",
                "t.yaml:1:26: maxStreamsPerConnection must be between 1 and 100000, got 0\n");
    expect_fail("healthCheckService: [a]\nbackends: [http://127.0.0.1:8081]\n",
                "t.yaml:1:21: healthCheckService must be a gRPC service name (visible ASCII, at "
                "most 256 bytes; \"\" for the whole server), got a sequence\n");
    expect_fail("backends: [http://127.0.0.1:8081]\n"
                "pools:\n"
                "  a:\n"
                "    maxStreamsPerConnection: 100001\n"
                "    backends: [http://127.0.0.1:9000]\n",
                "t.yaml:3:3: warning: pool \"a\" is not used by any route\n"
                "t.yaml:4:30: maxStreamsPerConnection must be between 1 and 100000, got 100001\n");
    expect_fail("backends:\n"
                "  - url: http://127.0.0.1:8081\n"
                "    protocol: h3\n",
                "t.yaml:3:15: protocol must be one of http1, h2, got \"h3\"\n");
    expect_fail("backends:\n"
                "  - url: http://127.0.0.1:8081\n"
                "    maxStreamsPerConnection: 2\n"
                "    maxStreamsPerConnection: 3\n",
                "t.yaml:4:5: duplicate key \"maxStreamsPerConnection\" (first defined at line 3)\n");
    expect_fail("backends:\n"
                "  - url: http://127.0.0.1:8081\n"
                "    healthChek: grpc\n",
                "t.yaml:3:5: unknown key \"healthChek\" in backend (did you mean \"healthCheck\"?)\n");
}

static char *diff(const char *a, const char *b)
{
    struct config *o = NULL, *n = NULL;
    char *e1 = NULL, *e2 = NULL, *text = NULL;
    size_t len = 0;
    cr_assert_eq(load(a, &o, &e1), 0, "%s", e1);
    cr_assert_eq(load(b, &n, &e2), 0, "%s", e2);
    FILE *f = open_memstream(&text, &len);
    config_diff(o, n, f);
    fclose(f);
    free(e1);
    free(e2);
    config_free(o);
    config_free(n);
    return text;
}

Test(config_upstream, reload_diff)
{
    char *t = diff("backends: [http://127.0.0.1:8081]\n",
                   "maxStreamsPerConnection: 8\n"
                   "healthCheckService: s\n"
                   "backends: [http://127.0.0.1:8081]\n");
    cr_expect_str_eq(t, "backend changed: http://127.0.0.1:8081: healthCheckService \"\" -> "
                        "\"s\", maxStreamsPerConnection 100 -> 8\n"
                        "setting changed: healthCheckService (none) -> s\n"
                        "setting changed: maxStreamsPerConnection 100 -> 8\n");
    free(t);
    t = diff("backends: [http://127.0.0.1:8081]\n"
             "pools:\n  a:\n    backends: [http://127.0.0.1:9000]\n",
             "backends: [http://127.0.0.1:8081]\n"
             "pools:\n  a:\n    backends: [{url: http://127.0.0.1:9000, maxStreamsPerConnection: 9}]\n");
    cr_expect(strstr(t, "pool changed: a") != NULL || strstr(t, "in pool a") != NULL, "%s", t);
    free(t);
}
