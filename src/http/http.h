/* http — the protocol-neutral request: what every layer above the client-side sessions knows of
 * a request, whatever protocol carried it (DESIGN.md, "one request model").
 *
 * Each session builds one struct http_request per request: the HTTP/1 parser fills the one that
 * struct http1_request embeds, with spans into the session's input buffer (no copy); an HTTP/2
 * session builds one per stream from the decoded header block (pseudo-header fields become
 * method, scheme, authority, path and protocol; the rest are fields, names lower-case). Routing,
 * the balancer, rewrite (the HTTP/1.1 head sent upstream), obs and the exchange read only this.
 * HTTP/1 framing (chunked coding, Connection options, keep-alive) stays in http1 and h1session;
 * HPACK and frames stay in the HTTP/2 session.
 *
 * Lifetime: every span belongs to the session and must stay valid until exchange_start() returns.
 * Whatever is needed later is copied then: the exchange serialises the upstream head, the balancer
 * hashes its keys, obs copies the log fields. Names compare case-insensitively everywhere.
 */
#ifndef GOLB_HTTP_H
#define GOLB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fields the proxy must recognise, identified once by whoever builds the field (case-insensitive).
 * HTTP_F_OTHER (0) for every other name, so a zeroed field is a plain one. */
enum http_field_id {
    HTTP_F_OTHER = 0,
    HTTP_F_CONNECTION,
    HTTP_F_CONTENT_LENGTH,
    HTTP_F_TRANSFER_ENCODING,
    HTTP_F_HOST,
    HTTP_F_KEEP_ALIVE,
    HTTP_F_PROXY_CONNECTION,
    HTTP_F_TE,
    HTTP_F_TRAILER,
    HTTP_F_UPGRADE,
    HTTP_F_EXPECT,
    HTTP_F_X_FORWARDED_FOR,
    HTTP_F_X_FORWARDED_PROTO,
    HTTP_F_X_FORWARDED_HOST,
    HTTP_F_HTTP2_SETTINGS,
    HTTP_F_FORWARDED, /* RFC 7239 */
    HTTP_F_X_REAL_IP,
    HTTP_F_COUNT,
};

/* Per-field flags. */
#define HTTP_FF_HOP_BY_HOP                                                                         \
    0x1                         /* Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, \
                                   HTTP2-Settings (RFC 7540 §3.2.1: a connection option) */
#define HTTP_FF_CONN_LISTED 0x2 /* named by a token of a Connection field (RFC 9110 §7.6.1) */
/* CONN_LISTED is set on whatever a client names, Host, Content-Length and Transfer-Encoding
 * included ("Connection: content-length"): a proxy dropping listed fields must keep those, or
 * the upstream would frame the body differently from golb. */

struct http_field {
    const char *name;
    const char *value; /* leading and trailing OWS already trimmed */
    uint32_t name_len;
    uint32_t value_len;
    uint16_t id; /* enum http_field_id */
    uint16_t flags;
};

enum http_version {
    HTTP_V1_0 = 0,
    HTTP_V1_1,
    HTTP_V2,
};

/* How long a request body is. */
enum http_body {
    HTTP_BODY_NONE = 0, /* no body at all */
    HTTP_BODY_LENGTH,   /* exactly content_length bytes (content_length may be 0) */
    HTTP_BODY_STREAM,   /* unknown until the end of the stream: HTTP/1.1 chunked, HTTP/2 DATA
                           without content-length */
};

/* Request flags (struct http_request.flags). The bits not defined here are the session's own:
 * http1.h keeps HTTP/1's Connection facts (keep-alive, close) in them. */
#define HTTP_RF_EXPECT_100 0x02 /* Expect: 100-continue */
#define HTTP_RF_UPGRADE                                                                            \
    0x04                      /* asks to switch protocols: HTTP/1.1 "Connection: upgrade" with an  \
                                 Upgrade field, or an extended CONNECT (RFC 8441, `protocol`) */
#define HTTP_RF_ASTERISK 0x08 /* path is "*" (OPTIONS *) */
#define HTTP_RF_AUTHORITY                                                                          \
    0x10                     /* the authority came with the target (HTTP/1 absolute-form, or       \
                                HTTP/2 :authority) and replaces any Host field upstream */
#define HTTP_RF_CONNECT 0x40 /* a CONNECT without a protocol: a forward tunnel, refused */

/* A request as a session parsed and validated it. Spans are not NUL-terminated.
 *
 *   HTTP/1.1  GET http://a.example/p?q HTTP/1.1   →  method "GET", scheme "http",
 *             Host: ignored.example                   authority "a.example", path "/p?q",
 *                                                     flags AUTHORITY, fields [Host]
 *   HTTP/2    :method GET :scheme https             →  method "GET", scheme "https",
 *             :authority a.example :path /p?q         authority "a.example", path "/p?q",
 *             cookie a=1, cookie b=2                  flags AUTHORITY, fields [cookie, cookie]
 */
struct http_request {
    const char *method;
    const char *scheme;    /* as the client named it (HTTP/2 :scheme, an HTTP/1 absolute-form
                              target), else "" (the transport says: exchange_request.https) */
    const char *authority; /* host[:port]: from the target or :authority, else the Host field;
                              "" when there is none (HTTP/1.0 without Host) */
    const char *path;      /* origin-form path and query; "*" for OPTIONS *, "" for CONNECT */
    const char *protocol;  /* extended CONNECT's :protocol (RFC 8441, "websocket"), else "" */
    uint32_t method_len, scheme_len, authority_len, path_len, protocol_len;
    enum http_version version;
    unsigned flags;          /* HTTP_RF_* (and the session's own bits) */
    enum http_body body;     /* HTTP/1 chunked and HTTP/2 without content-length: STREAM */
    uint64_t content_length; /* HTTP_BODY_LENGTH */
    /* The fields in the order received, pseudo-header fields excepted. HTTP/2: names lower-case,
     * and the cookie may be split in several fields (RFC 9113 §8.2.3), which the HTTP/1.1 head
     * joins with "; ". */
    const struct http_field *fields;
    size_t num_fields;
};

/* ---- field ids ---- */

/* Name is made of tchars, so OR-ing 0x20 folds exactly the letters (and maps no other tchar onto
 * a lowercase letter or '-'). */
static inline bool http_name_is_(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != lit[i])
            return false;
    return true;
}

#define HTTP_NAME_IS_(s, lit) http_name_is_((s), (lit), sizeof(lit) - 1)

/* The id of a field name (any case: HTTP/1's as received, HTTP/2's lower-case), HTTP_F_OTHER for
 * the names golb does not act on; by length first, so most names cost a switch. The name must be
 * made of tchars (both parsers check that first). */
static inline __attribute__((always_inline)) enum http_field_id http_field_id_of(const char *s,
                                                                                 size_t n)
{
    switch (n) {
    case 2:
        return HTTP_NAME_IS_(s, "te") ? HTTP_F_TE : HTTP_F_OTHER;
    case 4:
        return HTTP_NAME_IS_(s, "host") ? HTTP_F_HOST : HTTP_F_OTHER;
    case 6:
        return HTTP_NAME_IS_(s, "expect") ? HTTP_F_EXPECT : HTTP_F_OTHER;
    case 7:
        if (HTTP_NAME_IS_(s, "upgrade"))
            return HTTP_F_UPGRADE;
        return HTTP_NAME_IS_(s, "trailer") ? HTTP_F_TRAILER : HTTP_F_OTHER;
    case 9:
        if (HTTP_NAME_IS_(s, "forwarded"))
            return HTTP_F_FORWARDED;
        return HTTP_NAME_IS_(s, "x-real-ip") ? HTTP_F_X_REAL_IP : HTTP_F_OTHER;
    case 10:
        if (HTTP_NAME_IS_(s, "connection"))
            return HTTP_F_CONNECTION;
        return HTTP_NAME_IS_(s, "keep-alive") ? HTTP_F_KEEP_ALIVE : HTTP_F_OTHER;
    case 14:
        if (HTTP_NAME_IS_(s, "content-length"))
            return HTTP_F_CONTENT_LENGTH;
        return HTTP_NAME_IS_(s, "http2-settings") ? HTTP_F_HTTP2_SETTINGS : HTTP_F_OTHER;
    case 15:
        return HTTP_NAME_IS_(s, "x-forwarded-for") ? HTTP_F_X_FORWARDED_FOR : HTTP_F_OTHER;
    case 16:
        if (HTTP_NAME_IS_(s, "proxy-connection"))
            return HTTP_F_PROXY_CONNECTION;
        return HTTP_NAME_IS_(s, "x-forwarded-host") ? HTTP_F_X_FORWARDED_HOST : HTTP_F_OTHER;
    case 17:
        if (HTTP_NAME_IS_(s, "transfer-encoding"))
            return HTTP_F_TRANSFER_ENCODING;
        return HTTP_NAME_IS_(s, "x-forwarded-proto") ? HTTP_F_X_FORWARDED_PROTO : HTTP_F_OTHER;
    default:
        return HTTP_F_OTHER;
    }
}

/* The index of the first field with this id among f[0..n), or -1. */
int http_field_find(const struct http_field *f, size_t n, enum http_field_id id);

/* True for the connection-specific fields HTTP/2 must not carry (RFC 9113 §8.2.2), dropped when
 * an HTTP/1 message goes on as HTTP/2. TE goes too: who sends "te: trailers" (gRPC) adds it. */
static inline bool http_field_h2_forbidden(uint16_t id)
{
    switch (id) {
    case HTTP_F_CONNECTION:
    case HTTP_F_KEEP_ALIVE:
    case HTTP_F_PROXY_CONNECTION:
    case HTTP_F_TRANSFER_ENCODING:
    case HTTP_F_UPGRADE:
    case HTTP_F_TE:
    case HTTP_F_HTTP2_SETTINGS:
        return true;
    default:
        return false;
    }
}

#endif
