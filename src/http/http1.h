/* http1 — strict, zero-copy HTTP/1.x message head parser and chunked-body decoder (RFC 9112).
 *
 * The parser is stateless between calls, in the picohttpparser style: the caller accumulates bytes
 * in one buffer and calls http1_parse_request()/http1_parse_response() again when more arrive. Each
 * call first looks for the end of the head (an empty line) starting near `prev_len`, the length the
 * caller passed last time, so a slow client costs a scan of the new bytes only. Once the head is
 * complete it is parsed in one pass and every name, value, method and target is a span that points
 * INTO the caller's buffer: spans stay valid until the caller moves or reuses those bytes.
 *
 * Return convention (house rule 4): bytes of head consumed (> 0), -EAGAIN when the head is not
 * complete yet (and still within the limit), -EBADMSG when the message is invalid; then
 * msg->err_status holds the HTTP status to answer (400, 414, 431, 501, 505; for responses always 502)
 * and msg->err_offset/err_reason say where and why (for logs and tests, never sent verbatim).
 *
 * Line endings: CRLF, or a bare LF (RFC 9112 §2.2 allows a recipient to accept it). A bare CR
 * anywhere in the head is an error. golb never forwards head bytes verbatim: the proxy re-serialises
 * the head with CRLF from the parsed spans, so an upstream always sees golb's own framing.
 */
#ifndef GOLB_HTTP1_H
#define GOLB_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/http.h"

/* At most this many header fields per message: one more is a 431 (request) or 502 (response). */
#define HTTP1_MAX_HEADERS 128

/* How the body of a response is delimited (RFC 9112 §6.3). A request's is in its neutral part
 * (enum http_body: HTTP/1.1 chunked is HTTP_BODY_STREAM, the only STREAM body HTTP/1 has). */
enum http1_body {
    HTTP1_BODY_NONE = 0, /* no body at all */
    HTTP1_BODY_LENGTH,   /* exactly content_length bytes (content_length may be 0) */
    HTTP1_BODY_CHUNKED,  /* chunked transfer coding is the final coding */
    HTTP1_BODY_CLOSE,    /* responses only: until the upstream closes the connection */
};

/* Limits applied while parsing a request head. Zero fields take the defaults below. */
struct http1_limits {
    size_t max_head;         /* whole head incl. request line; beyond it: 431 (default 16384) */
    size_t max_request_line; /* request line; beyond it: 414 (default 8192) */
};
#define HTTP1_DEFAULT_MAX_HEAD 16384
#define HTTP1_DEFAULT_MAX_REQUEST_LINE 8192

/* Flags describing a parsed message. A request's are in rq.flags, where the neutral ones
 * (HTTP_RF_*, http.h) have the same bits; KEEP_ALIVE and CONN_CLOSE are HTTP/1's own. */
#define HTTP1_MF_KEEP_ALIVE 0x01                /* persistent per version + Connection (§9.3) */
#define HTTP1_MF_EXPECT_100 HTTP_RF_EXPECT_100 /* request: Expect: 100-continue */
#define HTTP1_MF_UPGRADE HTTP_RF_UPGRADE        /* Connection: upgrade and an Upgrade field */
#define HTTP1_MF_ASTERISK HTTP_RF_ASTERISK      /* request target "*" (asterisk-form, OPTIONS) */
#define HTTP1_MF_ABSOLUTE HTTP_RF_AUTHORITY     /* absolute-form target (http://host/...) */
#define HTTP1_MF_CONN_CLOSE 0x20                /* a Connection field carries "close" */
#define HTTP1_MF_CONNECT HTTP_RF_CONNECT /* request method is CONNECT (authority-form target
                                            checked); the session answers it 501: golb tunnels
                                            to no one */

/* A parsed request: the neutral request (http.h) the layers above read, which h1session passes
 * as &req->rq, and what only HTTP/1 has. In rq, path and authority point into the buffer, except
 * a static "/" (absolute-form without a path), "" for CONNECT's path, and "" for the authority of
 * an HTTP/1.0 request without Host. CONNECT: authority is the authority-form target. OPTIONS *:
 * path is "*". scheme is set for absolute-form only; protocol is always "". rq.version is
 * HTTP_V1_0 or HTTP_V1_1, rq.fields points at headers. */
struct http1_request {
    struct http_request rq;
    const char *target; /* as received */
    uint32_t target_len;
    struct http_field headers[HTTP1_MAX_HEADERS];
    /* When -EBADMSG is returned: */
    int err_status;
    size_t err_offset;
    const char *err_reason; /* static string, e.g. "both Content-Length and Transfer-Encoding" */
};

struct http1_response {
    int minor_version;
    int status; /* 100..999 as received; the proxy decides what is acceptable */
    const char *reason;
    uint32_t reason_len;
    unsigned flags; /* HTTP1_MF_KEEP_ALIVE, HTTP1_MF_UPGRADE, HTTP1_MF_CONN_CLOSE */
    enum http1_body body;
    uint64_t content_length;
    size_t num_headers;
    struct http_field headers[HTTP1_MAX_HEADERS];
    int err_status; /* always 502 on -EBADMSG */
    size_t err_offset;
    const char *err_reason;
};

/* Parses a request head in buf[0..len). prev_len is the len of the previous call for the same
 * message (0 the first time; a prev_len >= len makes a full rescan). lim may be NULL for defaults.
 * See the return convention above. Limits are decided as soon as they are certain, even before the
 * head is complete, and the same way whatever the split: 414 when the request line is longer than
 * max_request_line or does not end within max_head bytes; otherwise 431 when the head (leading
 * empty lines included) is longer than max_head or has more than HTTP1_MAX_HEADERS fields. */
ssize_t http1_parse_request(const char *buf, size_t len, size_t prev_len,
                            const struct http1_limits *lim, struct http1_request *req);

/* A chunk's size line (RFC 9112 §7.1: hex digits, CRLF) written at p, after the CRLF that ends
 * the previous chunk's data when after_data: at most 20 bytes. Returns how many. */
static inline uint32_t http1_chunk_size_line(char *p, bool after_data, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t len = 0;
    if (after_data) {
        p[len++] = '\r';
        p[len++] = '\n';
    }
    int shift = 60;
    while (shift > 0 && !(n >> shift))
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        p[len++] = hex[(n >> shift) & 0xf];
    p[len++] = '\r';
    p[len++] = '\n';
    return len;
}

/* Splits a request head golb wrote itself (rewrite_request_head: "METHOD SP target SP
 * HTTP/1.1", then "Name: value" lines, every line ending in CRLF) into req's method, target and
 * fields (with their ids), without http1_parse_request's checks: its bytes were checked when the
 * client sent them. For the HTTP/2 upstream, which needs the head as fields again. Returns the
 * head's length, or -1 when buf holds no such head. */
ssize_t http1_split_own_request(const char *buf, size_t len, struct http1_request *req);

/* Parses a response head. request_was_head: the request was HEAD (so no body whatever the fields
 * say); 1xx, 204 and 304 never have a body either. A 101 sets HTTP1_BODY_NONE and leaves tunnelling
 * to the caller. max_head 0 means HTTP1_DEFAULT_MAX_HEAD. */
ssize_t http1_parse_response(const char *buf, size_t len, size_t prev_len, size_t max_head,
                             bool request_was_head, struct http1_response *resp);

/* Iterates the elements of a comma-separated field value v[0..n) (RFC 9110 §5.6.1): start with
 * *pos = 0; returns false at the end, else the next non-empty element, OWS-trimmed, in *el and
 * *el_len. Empty elements are skipped. */
bool http1_list_next(const char *v, size_t n, size_t *pos, const char **el, size_t *el_len);

/* Chunked body decoder (RFC 9112 §7.1), validating and resumable across buffer boundaries.
 *
 *   chunk     = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last      = 1*"0" [ chunk-ext ] CRLF trailer-section CRLF
 *
 * Strict: chunk-size is hex without sign or whitespace and must fit in 63 bits; extensions must be
 * `;token[=token|quoted-string]` with optional BWS; every line ends in CRLF (bare LF and bare CR are
 * errors here, since the bytes are forwarded as they are); trailer fields obey the same rules as
 * header fields. Chunk-size lines and trailer section are each bounded (HTTP1_CHUNK_LINE_MAX,
 * HTTP1_TRAILERS_MAX) so a hostile peer cannot make golb scan forever.
 *
 * Zero-initialise the struct to start. Each call consumes a prefix of the input and says whether that
 * prefix is chunk data (payload) or framing (size lines, CRLFs, extensions, trailers):
 *   returns n > 0 bytes consumed, with *is_data set; 0 only when len == 0 or the body is complete;
 *   -EBADMSG when the framing is invalid (the body must then be abandoned and the connection closed).
 * http1_chunked_done() is true once the last chunk and trailer section have been consumed; bytes
 * after that belong to the next message and are never consumed.
 * A proxy forwarding the chunked body as-is sends every consumed byte; one de-chunking it (e.g. for
 * an HTTP/1.0 client) sends only the data runs. */
#define HTTP1_CHUNK_LINE_MAX 1024
#define HTTP1_TRAILERS_MAX 16384

struct http1_chunked {
    uint64_t remaining; /* data bytes left in the current chunk */
    size_t line_len;    /* bytes consumed in the current size line or trailer section */
    int state;          /* private */
    int flags;          /* private */
};

ssize_t http1_chunked_decode(struct http1_chunked *c, const char *buf, size_t len, bool *is_data);
bool http1_chunked_done(const struct http1_chunked *c);
/* True once the last chunk's size line is consumed, until the trailer section is: line_len then
 * counts the trailer section's bytes consumed so far (its field lines and, once done, its final
 * CRLF), which are the last bytes consumed by a call that ends in this state. */
bool http1_chunked_in_trailers(const struct http1_chunked *c);
/* Splits a trailer section the decoder validated (buf[0..len): field lines, maybe its final
 * CRLF) into at most max fields (spans into buf, values trimmed; id HTTP_F_OTHER and no flags:
 * the caller classifies them if it must). Returns how many. */
size_t http1_parse_trailers(const char *buf, size_t len, struct http_field *f, size_t max);

/* Returns the standard reason phrase for a status ("Bad Gateway"), or "Unknown". */
const char *http1_reason(int status);

#endif
