/* proxy_proto — the PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): parsing the
 * header an L4 proxy puts before a connection's first byte, which carries the client's address,
 * and writing one for an upstream.
 *
 *   v1  "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"   one text line, at most 107 bytes
 *       "PROXY UNKNOWN[ anything]\r\n"                       the sender could not fill it in
 *   v2  sig[12] ver|cmd family|transport len[2] addresses TLVs...   exactly 16 + len bytes
 *       cmd 0x1 PROXY (relayed), 0x0 LOCAL (the sender's own connection: a health check)
 *
 * Parsing is stateless between calls, like http1: the caller accumulates the connection's first
 * bytes in one buffer and calls proxy_proto_parse() again when more arrive (a header is at most
 * 107 bytes, or 16 + its declared length, so re-reading it is cheap). Return convention (house
 * rule 4): bytes of header consumed (> 0), -EAGAIN when more bytes are needed (and the header is
 * still within its bound), -EBADMSG when invalid, with res->err_reason a static string saying why
 * (for logs and tests). Checks follow the order of the bytes (v1: the signature, then the line
 * once its CRLF is in, as the spec asks; v2: each fixed byte as it arrives, the length against its
 * bounds before the body is awaited, then the body once whole), so feeding a header in any number
 * of pieces gives the answer one call on the whole gives.
 * The parser never reads a byte past the header (past its CRLF, or past 16 + len): whatever follows
 * (the client's TLS ClientHello or HTTP request) is left in the buffer untouched.
 *
 * Strictness (the spec: "any sequence which does not exactly match the protocol must be
 * discarded"): v1 wants single spaces, addresses inet_pton() accepts for the announced family (no
 * leading zeros in IPv4, so no octal confusion), ports 0..65535 without leading zeros, CRLF within
 * 107 bytes (a bare CR or LF is invalid); UNKNOWN ignores the rest of its line. v2 wants version 2,
 * command LOCAL or PROXY, one of the seven protocol bytes the spec lists (0x00, 0x11, 0x12, 0x21,
 * 0x22, 0x31, 0x32), a length within the caller's bound and, for PROXY, large enough for the
 * family's addresses. A LOCAL header's block (addresses and TLVs) is skipped unread, as the spec
 * says. A PROXY header's TLVs must each lie within the header; unknown types are skipped; the types
 * golb reads (ALPN, AUTHORITY, CRC32C, UNIQUE_ID, SSL, NETNS) may appear once each; a CRC32C TLV
 * is verified (a mismatch is invalid); a UNIQUE_ID longer than 128 bytes is invalid.
 *
 * Spans (TLV values) point INTO the caller's buffer and stay valid while those bytes do. They are
 * raw bytes from the peer: escape them before logging.
 *
 * Who may send a header (trusted networks) and whether one is required are the caller's decisions.
 */
#ifndef GOLB_PROXY_PROTO_H
#define GOLB_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define PROXY_PROTO_V1_MAX 107          /* longest v1 line, CRLF included */
#define PROXY_PROTO_V2_FIXED 16         /* v2 signature, version|command, family, length */
#define PROXY_PROTO_V2_DEFAULT_MAX 4096 /* default bound on a whole v2 header (16 + len) */
#define PROXY_PROTO_V2_LIMIT (16 + 65535)

/* TLV types (spec §2.2). */
#define PROXY_PROTO_TLV_ALPN 0x01
#define PROXY_PROTO_TLV_AUTHORITY 0x02
#define PROXY_PROTO_TLV_CRC32C 0x03
#define PROXY_PROTO_TLV_NOOP 0x04
#define PROXY_PROTO_TLV_UNIQUE_ID 0x05
#define PROXY_PROTO_TLV_SSL 0x20
#define PROXY_PROTO_TLV_SSL_VERSION 0x21 /* sub-TLVs of PROXY_PROTO_TLV_SSL */
#define PROXY_PROTO_TLV_SSL_CN 0x22
#define PROXY_PROTO_TLV_SSL_CIPHER 0x23
#define PROXY_PROTO_TLV_SSL_SIG_ALG 0x24
#define PROXY_PROTO_TLV_SSL_KEY_ALG 0x25
#define PROXY_PROTO_TLV_NETNS 0x30
#define PROXY_PROTO_UNIQUE_ID_MAX 128

/* The client field of the SSL TLV. */
#define PROXY_PROTO_CLIENT_SSL 0x01       /* the client connected over TLS */
#define PROXY_PROTO_CLIENT_CERT_CONN 0x02 /* it sent a certificate on this connection */
#define PROXY_PROTO_CLIENT_CERT_SESS 0x04 /* it sent one at least once in this TLS session */

enum proxy_proto_cmd {
    PROXY_PROTO_CMD_PROXY = 0, /* relayed: src/dst describe the client's connection (unless the
                                  family is AF_UNSPEC: then use the real endpoints) */
    PROXY_PROTO_CMD_LOCAL,     /* v2 LOCAL: the sender's own connection; use the real endpoints */
    PROXY_PROTO_CMD_UNKNOWN,   /* v1 UNKNOWN: use the real endpoints */
};

/* A value inside the caller's buffer; ptr is NULL when the field was absent (a present but empty
 * value has a non-NULL ptr and len 0). */
struct proxy_proto_span {
    const char *ptr;
    uint32_t len;
};

struct proxy_proto_tlv {
    uint8_t type;
    uint16_t len;
    const char *value;
};

/* The PP2_TYPE_SSL TLV, when present. */
struct proxy_proto_ssl {
    bool present;
    uint8_t client;  /* PROXY_PROTO_CLIENT_* bits */
    uint32_t verify; /* 0: the client presented a certificate and it was verified */
    struct proxy_proto_span version, cn, cipher, sig_alg, key_alg;
    const char *tlvs; /* its sub-TLVs, all checked (for proxy_proto_tlv_next) */
    size_t tlvs_len;
};

struct proxy_proto_result {
    int version; /* 1 or 2 */
    enum proxy_proto_cmd command;
    int family;                  /* AF_INET, AF_INET6, AF_UNIX (v2 only), or AF_UNSPEC: LOCAL,
                                    UNKNOWN and v2 PROXY with an unspecified family */
    int socktype;                /* SOCK_STREAM, SOCK_DGRAM (v2 only), 0 when unspecified */
    struct sockaddr_storage src; /* the client; ss_family == family (all zero for AF_UNSPEC) */
    struct sockaddr_storage dst; /* the address the client connected to */
    /* v2 PROXY only (NULL/absent otherwise): */
    const char *tlvs; /* the TLV area, every TLV checked (for proxy_proto_tlv_next) */
    size_t tlvs_len;
    struct proxy_proto_span alpn, authority, unique_id, netns;
    struct proxy_proto_ssl ssl;
    bool crc32c; /* a CRC32C TLV was present and matched */
    /* On -EBADMSG: */
    const char *err_reason; /* static, e.g. "v2 length too small for the addresses" */
};

/* Which version buf[0..len) starts with: 1 ("PROXY "), 2 (the 12-byte signature), 0 when it can
 * be neither (the connection sends no PROXY header), -EAGAIN when too few bytes tell. For a
 * listener where the header is optional; where it is required, proxy_proto_parse() alone does. */
int proxy_proto_detect(const void *buf, size_t len);

/* Parses the header at buf[0..len); see the return convention above. max_v2 bounds a whole v2
 * header (16 + len): 0 means PROXY_PROTO_V2_DEFAULT_MAX, values above PROXY_PROTO_V2_LIMIT are
 * clamped. res is filled on success; on -EBADMSG only err_reason is meaningful, on -EAGAIN
 * nothing. */
ssize_t proxy_proto_parse(const void *buf, size_t len, size_t max_v2,
                          struct proxy_proto_result *res);

/* Iterates the TLVs of area[0..len) (res->tlvs or res->ssl.tlvs): start with *pos = 0; returns 1
 * with the next TLV in *tlv, 0 at the end, -EBADMSG when a TLV does not fit in the area (never for
 * the areas of a parsed result, which are checked). Unknown types are the caller's to skip. */
int proxy_proto_tlv_next(const char *area, size_t len, size_t *pos, struct proxy_proto_tlv *tlv);

/* Writes a v1 line into out[0..cap): "PROXY TCP4|TCP6 src dst sport dport\r\n" for src and dst
 * (AF_INET or AF_INET6; when one is each, the IPv4 one is written IPv4-mapped in a TCP6 line), or
 * "PROXY UNKNOWN\r\n" when src is NULL (what a health check sends). Returns the length written,
 * -ENOSPC when cap is too small (PROXY_PROTO_V1_MAX always suffices), -EAFNOSUPPORT for another
 * family, -EINVAL for a src without a dst. Nothing is NUL-terminated. */
ssize_t proxy_proto_write_v1(char *out, size_t cap, const struct sockaddr *src,
                             const struct sockaddr *dst);

#define PROXY_PROTO_WRITE_CRC32C 0x1 /* add a CRC32C TLV (first after the addresses) */

/* Writes a v2 PROXY header (STREAM) into out[0..cap) for src and dst (both AF_INET, both AF_INET6,
 * one of each: IPv4-mapped AF_INET6, or both AF_UNIX), followed by tlvs[0..ntlvs) in order and
 * with flags PROXY_PROTO_WRITE_*; or, when src is NULL, a LOCAL header with family UNSPEC and
 * length 0 (a health check; then ntlvs and flags must be 0). Returns the length written, -ENOSPC
 * when cap is too small, -EMSGSIZE when the header would exceed PROXY_PROTO_V2_LIMIT,
 * -EAFNOSUPPORT for other families, -EINVAL for a CRC32C TLV in tlvs (use the flag) or a src
 * without a dst. */
ssize_t proxy_proto_write_v2(void *out, size_t cap, const struct sockaddr *src,
                             const struct sockaddr *dst, const struct proxy_proto_tlv *tlvs,
                             size_t ntlvs, unsigned flags);

/* CRC32c (Castagnoli, RFC 4960 appendix B) of p[0..n), as the CRC32C TLV carries it. */
uint32_t proxy_proto_crc32c(const void *p, size_t n);

#endif
