/* health_h2 — a health check over HTTP/2 (h2c with prior knowledge, or h2 by ALPN over the
 * check's TLS), run by health.c's state machine, which moves the bytes: this side is an nghttp2
 * client session per check that says what to send and judges what came back. Two kinds:
 *   - `healthCheck: grpc`: one grpc.health.v1.Health/Check call; UP only for a response 200
 *     whose message says SERVING and whose grpc-status is 0; anything else is DOWN with the
 *     reason ("NOT_SERVING", "grpc-status 12 (UNIMPLEMENTED): ...", ...);
 *   - `healthCheck: http` on a `protocol: h2` pool (a backend that may speak only HTTP/2): GET
 *     on the URL's path, as the HTTP/1 check does; the final head decides (2xx UP, "HTTP 503"),
 *     its body is not waited for.
 *
 *   health_h2_new ─► bytes to send (preface, SETTINGS, HEADERS, DATA: the request whole)
 *   received bytes ─► health_h2_feed ─► HEALTH_H2_MORE (and maybe frames to send back:
 *                                       SETTINGS ACK, WINDOW_UPDATE) | _UP | _DOWN (why) */
#ifndef GOLB_HEALTH_H2_H
#define GOLB_HEALTH_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_backend;
struct health_h2;

enum health_h2_result {
    HEALTH_H2_MORE = 0, /* not decided yet: read more */
    HEALTH_H2_UP,
    HEALTH_H2_DOWN,
};

/* A new check of cb, of the kind cb->up.health_check says (grpc: a call to the health service
 * cb->up.health_check_service; http: a GET on cb->health_path): NULL when out of memory.
 * *out, *len: the whole request's bytes, valid until the next call on g. */
struct health_h2 *health_h2_new(const struct config_backend *cb, const uint8_t **out,
                                    size_t *len);
/* Bytes read from the backend. *out, *len: frames to send back now (may be 0 bytes; best
 * effort: the check's answer never waits on them). On UP or DOWN, `why` says it. */
enum health_h2_result health_h2_feed(struct health_h2 *g, const uint8_t *p, size_t n,
                                         const uint8_t **out, size_t *len, char *why,
                                         size_t whylen);
void health_h2_free(struct health_h2 *g);

#endif
