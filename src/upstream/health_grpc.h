/* health_grpc — the gRPC health check (`healthCheck: grpc`): one grpc.health.v1.Health/Check call
 * over HTTP/2 (h2c with prior knowledge, or h2 by ALPN over the check's TLS), run by health.c's
 * state machine, which moves the bytes: this side is an nghttp2 client session per check that
 * says what to send and judges what came back.
 *
 *   health_grpc_new ─► bytes to send (preface, SETTINGS, HEADERS, DATA: the request whole)
 *   received bytes ─► health_grpc_feed ─► HEALTH_GRPC_MORE (and maybe frames to send back:
 *                                         SETTINGS ACK, WINDOW_UPDATE) | _UP | _DOWN (why)
 *
 * UP only for a response 200 whose message says SERVING and whose grpc-status is 0; anything
 * else is DOWN with the reason ("NOT_SERVING", "grpc-status 12 (UNIMPLEMENTED): ...", ...). */
#ifndef GOLB_HEALTH_GRPC_H
#define GOLB_HEALTH_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_backend;
struct health_grpc;

enum health_grpc_result {
    HEALTH_GRPC_MORE = 0, /* not decided yet: read more */
    HEALTH_GRPC_UP,
    HEALTH_GRPC_DOWN,
};

/* A new call to cb's gRPC health service (cb->up.health_check_service): NULL when out of memory.
 * *out, *len: the whole request's bytes, valid until the next call on g. */
struct health_grpc *health_grpc_new(const struct config_backend *cb, const uint8_t **out,
                                    size_t *len);
/* Bytes read from the backend. *out, *len: frames to send back now (may be 0 bytes; best
 * effort: the check's answer never waits on them). On UP or DOWN, `why` says it. */
enum health_grpc_result health_grpc_feed(struct health_grpc *g, const uint8_t *p, size_t n,
                                         const uint8_t **out, size_t *len, char *why,
                                         size_t whylen);
void health_grpc_free(struct health_grpc *g);

#endif
