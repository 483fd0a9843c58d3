/* reply — whole responses golb answers itself, built once and shared read-only by every worker:
 * one per status (a short text/plain body, Connection: close) and the answer to plain HTTP
 * sent to the HTTPS port. */
#ifndef GOLB_REPLY_H
#define GOLB_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct http_field;

/* The response for `status` (100..599, anything else is 500); *len gets its length. */
const char *reply_text(int status, uint32_t *len);

/* An answer golb builds for one request instead of proxying it (a route's redirect or respond, a
 * 403 of allow/deny, a 429 of rateLimit, a 404 when no route matches and there is no default
 * pool), protocol-neutral: HTTP/1 writes it with reply_http1(), HTTP/2 would put the same status,
 * fields and body in a HEADERS and a DATA frame. Spans are borrowed (the exchange's, valid until
 * exchange_put()). */
struct reply_desc {
    int status;
    const char *location; /* Location (a redirect), NULL: none */
    size_t location_len;
    uint32_t retry_after; /* Retry-After in seconds (a 429), 0: none */
    const char *body;     /* the body; NULL: "STATUS Reason\n" (reply_text's) */
    size_t body_len;
    bool no_body;         /* a HEAD request: the head says the body's length, no body follows */
    /* fields set by the route (setResponseHeaders), written as they are; Content-Type among them
     * replaces golb's text/plain */
    const struct http_field *fields;
    size_t nfields;
    /* The request was a gRPC call (grpc.h) and this is an error (status >= 400): it is answered
     * the gRPC way instead, HTTP 200 with content-type application/grpc, grpc-status (the code
     * grpc_code_of_http gives for status) and grpc-message (the reason phrase), no body: for
     * HTTP/2 a trailers-only response (one HEADERS frame that ends the stream), for HTTP/1 those
     * fields in the head and Content-Length: 0. The other members but status are not used. */
    bool grpc;
};

/* Fills d (zeroed first) with golb's own error `status` for a request that was (grpc) or was not
 * a gRPC call. */
void reply_error(struct reply_desc *d, int status, bool grpc);

/* A gRPC answer's grpc-status value ("14") and grpc-message ("Service Unavailable") for d. */
const char *reply_grpc_status(const struct reply_desc *d, char buf[4]);
const char *reply_grpc_message(const struct reply_desc *d);

/* The bytes a HTTP/1 client gets for d, appended to b: status line, Content-Type (text/plain
 * unless d's fields set one), Content-Length, Location, Retry-After, d's fields, Connection: close
 * unless keepalive (HTTP/1.0 clients that keep it get Connection: keep-alive), then the body; a
 * gRPC answer (d->grpc) as described there.
 * Returns false, b unchanged, when it does not fit. */
bool reply_http1(const struct reply_desc *d, bool keepalive, bool http10, struct buf *b);

/* What a plain-HTTP client that reached the TLS port gets (nginx answers the same way). */
extern const char reply_plain_on_tls[];

#endif
