/* h2session — the HTTP/2 client side (RFC 9113): one session per client connection, one exchange
 * per stream.
 *
 * h1session accepts every connection and runs the TLS handshake; a connection whose ALPN chose
 * "h2", or whose first bytes on the plain listener are the HTTP/2 preface (http2.cleartext), is
 * handed over here with what was read so far. libnghttp2 does the framing, HPACK, flow control
 * and the protocol's own checks (pseudo-header fields, connection-specific fields, content-length
 * against DATA, ...); this session owns the glue: the transport, the per-stream translation into
 * the neutral struct http_request and back (HEADERS, DATA, trailers, golb's own answers), the
 * limits (floods, resets, header list size, idle connections), drain and the worker registry.
 *
 * Ownership: the session owns its socket, SSL, buffers, the nghttp2 session and every stream's
 * exchange; a stream lives until nghttp2 closes it, its exchange usually ends before (when the
 * last response byte went to the stream's buffer).
 */
#ifndef GOLB_H2SESSION_H
#define GOLB_H2SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssl_st SSL;
struct buf;
struct config_tls;
struct worker_ctx;

/* The HTTP/2 connection preface a client sends first (RFC 9113 §3.4). */
#define H2SESSION_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2SESSION_PREFACE_LEN 24

/* What h1session hands over: the transport and what it read already. Every pointer moves to the
 * new session (h1session forgets them). */
struct h2session_conn {
    int fd;
    SSL *ssl;                /* NULL: h2c on the plain listener */
    struct config_tls *tls;  /* the tls section it was accepted under (a reference), or NULL */
    char *subject;           /* verified client certificate subject, or NULL */
    struct buf *in;          /* bytes read and not processed (the preface first), or NULL */
    const char *ip;          /* the client's address as text */
    size_t iplen;
    bool readable, writable, rdhup;
    uint32_t listener;  /* the worker's tag of the listener it came through */
    bool listener_gone; /* that listener closed already (a reload during the TLS handshake) */
};

/* Takes over a client connection whose first bytes are (to be) HTTP/2. The connection stays
 * counted in w->nclients; the session registers with w (worker_ctx.h). Closes it on failure. */
void h2session_take(struct worker_ctx *w, struct h2session_conn *t);

#endif
