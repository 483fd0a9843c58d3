/* rewrite — the heads golb sends, written from parsed spans (never forwarded verbatim). */
#ifndef GOLB_REWRITE_H
#define GOLB_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct http_field;
struct http_request;
struct http1_response;

/* A route's header filter (core/route.c builds one per route and direction): the fields named in
 * remove[] are dropped (names only, compared ASCII case-insensitively), and every field of set[]
 * replaces the fields of its name. Framing, hop-by-hop and golb's own fields are never in it (the
 * configuration refuses them). */
struct rewrite_headers {
    const struct http_field *set;
    size_t nset;
    const struct http_field *remove;
    size_t nremove;
};

struct rewrite_request {
    const char *client_ip; /* the peer (the hop golb saw): appended to X-Forwarded-For */
    size_t client_ip_len;
    /* The peer is one of trustedProxies: its X-Forwarded-For is appended to, its
     * X-Forwarded-Proto, X-Forwarded-Host, Forwarded and X-Real-IP pass (golb's own Proto and
     * Host where it sent none). false (every peer by default): those five are replaced, the
     * chain starting at client_ip, Forwarded and X-Real-IP dropped. */
    bool trusted_peer;
    /* An Upgrade is being set up (rewrite_upgrade_allowed() said so): Upgrade goes upstream with
     * only the protocols of upgrade_protocols, with Connection: upgrade; HTTP2-Settings too when
     * h2c is one of them. Otherwise Upgrade and HTTP2-Settings are dropped like any hop-by-hop
     * field and the request is an ordinary one. */
    bool upgrade;
    const char *const *upgrade_protocols; /* NULL-terminated; NULL: none */
    bool https;   /* the client came over TLS: X-Forwarded-Proto: https */
    /* A field golb sets itself (the verified client certificate subject under the operator's
     * header name): any field of that name the client sent is dropped, so it cannot be forged.
     * set_value NULL: the field is only dropped (a client without a verified certificate). */
    const char *set_name;
    size_t set_name_len;
    const char *set_value;
    size_t set_value_len;
    const char *request_id; /* X-Request-Id sent upstream, replacing the client's (0 len: none) */
    size_t request_id_len;
    const struct rewrite_headers *headers; /* the route's request filter, NULL: none */
};

/* True when `proto`, one element of an Upgrade field (protocol-name ["/" protocol-version],
 * RFC 9110 §7.8), is one of `allowed` (NULL-terminated; NULL: none), ASCII case-insensitively.
 * An entry without a version ("websocket") allows every version of that protocol; one with a
 * version ("foo/2") only that version. */
bool rewrite_upgrade_protocol_allowed(const char *proto, size_t len, const char *const *allowed);

/* True when req asks for an upgrade (HTTP_RF_UPGRADE: HTTP/1.1, "Connection: upgrade" and an
 * Upgrade field; or an extended CONNECT) and its Upgrade fields (or the extended CONNECT's
 * protocol) name at least one allowed protocol. Only then is the request proxied as an upgrade
 * (and a 101 answered to it may become a tunnel); any other request is proxied as if it carried
 * no Upgrade at all. This is what keeps h2c (RFC 7540 §3.2) from turning a connection into an
 * opaque tunnel past golb. */
bool rewrite_upgrade_allowed(const struct http_request *req, const char *const *allowed);

/* True when a 101 answer may start a tunnel: its Upgrade field (RFC 9110 §15.2.2 requires one)
 * names only allowed protocols. */
bool rewrite_upgrade_response_ok(const struct http1_response *resp, const char *const *allowed);

/* Writes the HTTP/1.1 request head golb sends upstream for req, whatever protocol the client
 * spoke, into b (from b->data; sets pos and last): origin-form target, HTTP/1.1, hop-by-hop
 * fields removed (RFC 9110 §7.6.1) but never Host or a framing field a peer listed in Connection,
 * Content-Length re-emitted once from the parsed value, Transfer-Encoding kept as sent (a
 * HTTP_BODY_STREAM body without one, from HTTP/2, gets "Transfer-Encoding: chunked": the exchange
 * chunks it), the forwarding fields as opt->trusted_peer says (X-Forwarded-For appended to, several
 * fields folded into one, or replaced; X-Forwarded-Proto/-Host set or kept; Forwarded and
 * X-Real-IP kept or dropped), and a Host line from the authority when it came with the target (HTTP_RF_AUTHORITY) or no
 * Host field was sent. An HTTP/2 request's cookie fields are joined into one with "; " (RFC 9113
 * §8.2.3); an extended CONNECT (RFC 8441) becomes a GET with "Upgrade: <protocol>" when
 * opt->upgrade allows it. opt->headers (a route's filter) removes and sets fields; a Host it sets
 * replaces the request's.
 * When the request has no authority at all (HTTP/1.0 without Host) the head is left open and
 * *host_at says where rewrite_set_host() must finish it; otherwise *host_at is 0.
 * Returns false when the head does not fit in b. */
bool rewrite_request_head(const struct http_request *req, const struct rewrite_request *opt,
                          struct buf *b, uint32_t *host_at);

/* True when the filter h removes or sets the field called name[0..len) (case-insensitive). */
bool rewrite_headers_touch(const struct rewrite_headers *h, const char *name, size_t len);

/* Appends a trailer section to b (at b->last): the fields of f[0..n) golb forwards, each
 * "name: value" CRLF, then the final CRLF. Fields that frame, route or manage the connection
 * (Content-Length, Transfer-Encoding, Host, Trailer and the hop-by-hop ones) are not forwarded in
 * a trailer section. Returns false, leaving b unchanged, when it does not fit. */
bool rewrite_trailers(const struct http_field *f, size_t n, struct buf *b);
/* True when rewrite_trailers() forwards the trailer field f (its id set: http_field_id_of). */
bool rewrite_trailer_forwarded(const struct http_field *f);

/* Finishes a head left open by rewrite_request_head() with "Host: host" (no-op when host_at is 0).
 * Called once per backend tried, so each gets its own host:port. Returns false when it does not
 * fit. */
bool rewrite_set_host(struct buf *b, uint32_t host_at, const char *host);

struct rewrite_response {
    bool http10;    /* the client speaks HTTP/1.0: no transfer codings, keep-alive said explicitly */
    bool dechunk;   /* a chunked body is de-chunked for this client (close-delimited) */
    bool keepalive; /* the client connection stays open after this response */
    const char *set_cookie; /* a Set-Cookie value added to a final head (sticky sessions) */
    size_t set_cookie_len;  /* 0: none */
    const struct rewrite_headers *headers; /* the route's response filter, applied to final heads
                                              (not 1xx, not 101); NULL: none */
};

/* Appends the response head golb sends the client to b (at b->last) and states the client-side
 * framing:
 *   upstream Content-Length → the same Content-Length
 *   upstream chunked        → passed through to HTTP/1.1 clients; de-chunked for HTTP/1.0 clients
 *   until close             → close-delimited, Connection: close (codings other than chunked kept)
 * A 1xx interim head is relayed minus hop-by-hop fields; a 101 keeps Upgrade and says
 * Connection: upgrade. A final head (not 1xx) gets `Set-Cookie: set_cookie` when given.
 * Returns false, leaving b unchanged, when the head does not fit. */
bool rewrite_response_head(const struct http1_response *resp, const struct rewrite_response *opt,
                           struct buf *b);

#endif
