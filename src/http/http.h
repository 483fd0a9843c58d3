/* http — what every layer above the client-side sessions knows of a request's fields, whatever
 * protocol carried them.
 *
 * A field is a pair of spans (name, value) that point into memory the session owns, with the id
 * of the few fields golb acts on and flags saying what a proxy must not forward. HTTP/1 fills them
 * while parsing a head (http1.c, names as received); an HTTP/2 session would fill them from the
 * decoded header block (names lower-case). Names compare case-insensitively everywhere.
 */
#ifndef GOLB_HTTP_H
#define GOLB_HTTP_H

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
    HTTP_F_COUNT,
};

/* Per-field flags. */
#define HTTP_FF_HOP_BY_HOP 0x1 /* Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade,
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

/* The index of the first field with this id among f[0..n), or -1. */
int http_field_find(const struct http_field *f, size_t n, enum http_field_id id);

#endif
