/* grpc — what golb knows of gRPC (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 * which requests are gRPC calls, their grpc-timeout, the status codes golb answers with, and the
 * two messages of the health protocol (grpc.health.v1), encoded and decoded by hand: a gRPC
 * message is a 5-byte prefix (a compressed flag, a big-endian length) and a protobuf body;
 *
 *   HealthCheckRequest  { string service = 1; }     0a LEN SERVICE...
 *   HealthCheckResponse { ServingStatus status = 1; }   08 STATUS   (1 SERVING, 2 NOT_SERVING)
 *
 * Pure functions over bytes: no allocation, no state.
 */
#ifndef GOLB_GRPC_H
#define GOLB_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;

/* The status codes golb produces or names (grpc/status.h). */
enum grpc_code {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_UNAUTHENTICATED = 16,
};

/* The health protocol's ServingStatus. */
enum grpc_serving {
    GRPC_SERVING_UNKNOWN = 0,
    GRPC_SERVING = 1,
    GRPC_NOT_SERVING = 2,
    GRPC_SERVICE_UNKNOWN = 3,
};

/* True when a Content-Type value names gRPC: "application/grpc" alone or followed by "+" or ";"
 * ("application/grpc+proto", "application/grpc-web" is gRPC-Web: also true), any case. */
bool grpc_content_type(const char *v, size_t len);

/* Whether rq is a gRPC call (a content-type of grpc_content_type) and, when it is and carries a
 * valid grpc-timeout, that timeout in ms into *timeout_ms (else UINT64_MAX). */
bool grpc_request(const struct http_request *rq, uint64_t *timeout_ms);

struct http_field;

/* The grpc-status among fields (a response head of a trailers-only answer, or trailers): its
 * code 0..99, or -1 when there is none or it is not a number. */
int grpc_status_field(const struct http_field *f, size_t n);

/* A grpc-timeout value: 1 to 8 digits and a unit (H, M, S, m, u, n) → milliseconds, rounded up
 * (1 ns is 1 ms, 0 is 0). 0, or -1 when the value is not one. */
int grpc_timeout_parse(const char *v, size_t len, uint64_t *ms);

/* The gRPC status for an HTTP status golb answers: 503, 502 UNAVAILABLE; 504, 408
 * DEADLINE_EXCEEDED; 429 RESOURCE_EXHAUSTED; 401 UNAUTHENTICATED; 403 PERMISSION_DENIED; 404,
 * 501 UNIMPLEMENTED; 400, 431, 414 INTERNAL; any other UNKNOWN (PROTOCOL-HTTP2.md's table where
 * it has the status, the choice for timeouts and limits). */
int grpc_code_of_http(int status);

/* "UNAVAILABLE", "DEADLINE_EXCEEDED", ... ("CODE_N" is not used: unknown codes give NULL). */
const char *grpc_code_name(int code);

/* A HealthCheckRequest for service (len bytes, at most 127 + 16383: two length bytes at most),
 * framed as a gRPC message, into out (cap bytes). Its length, or 0 when it does not fit. */
size_t grpc_health_request(const char *service, size_t len, uint8_t *out, size_t cap);

/* The ServingStatus of a framed HealthCheckResponse (p, len: the whole DATA of the response),
 * or -1 when it is not one (compressed, short, bad protobuf). A response without the field is
 * UNKNOWN (0: protobuf's default). */
int grpc_health_response(const uint8_t *p, size_t len);

#endif
