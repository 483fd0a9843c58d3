/* proxy_proto — see proxy_proto.h.
 *
 * A call first decides the version from the leading bytes (proxy_proto_detect), then checks each
 * part of the header as soon as its bytes are in, in the order of the bytes, so any split of the
 * input meets the same first failure:
 *
 *   v1:  "PROXY " ... CR LF          the line is decoded only once its CRLF is in (spec §2.1);
 *        ^0                ^consumed the first CR or LF found ends the search: bare ones fail
 *
 *   v2:  0          12    13    14    16              16+addr                16+len
 *        | signature | v|c | f|t | len | addresses     | TLV TLV ...         | next bytes
 *                     checked as each byte arrives;    decoded once all 16+len are in
 *        len is bounded by max_v2 before the body is awaited, and the body is never read past.
 */
#include "net/proxy_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "base/util.h"

static const char v1_sig[6] = "PROXY ";
static const char v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

/* Address block sizes of the v2 families (spec §2.2). */
#define ADDR_INET 12
#define ADDR_INET6 36
#define ADDR_UNIX 216
#define UNIX_PATH 108

/* ---- CRC32c (Castagnoli, reflected polynomial 0x82F63B78) ------------------------------------
 * A 256-entry table built by the compiler from the polynomial (8 shift-and-xor steps per entry),
 * so there is no literal table to trust and no run-time initialisation. One lookup per byte: only
 * headers that carry a CRC32C TLV pay it, at most a few KiB per connection. */
#define CRC_POLY 0x82F63B78u
#define CRC_STEP(c) (((c) >> 1) ^ (CRC_POLY & (0u - ((c)&1u))))
#define CRC_ENTRY(n)                                                                               \
    CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP((uint32_t)(n)))))))))
#define CRC_R4(n) CRC_ENTRY(n), CRC_ENTRY((n) + 1), CRC_ENTRY((n) + 2), CRC_ENTRY((n) + 3)
#define CRC_R16(n) CRC_R4(n), CRC_R4((n) + 4), CRC_R4((n) + 8), CRC_R4((n) + 12)
#define CRC_R64(n) CRC_R16(n), CRC_R16((n) + 16), CRC_R16((n) + 32), CRC_R16((n) + 48)
static const uint32_t crc_table[256] = {CRC_R64(0), CRC_R64(64), CRC_R64(128), CRC_R64(192)};

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

uint32_t proxy_proto_crc32c(const void *p, size_t n)
{
    return ~crc_update(~0u, p, n);
}

/* CRC32c of the header h[0..n) with the 4 bytes at crc_off taken as zeros (spec §2.2.3). */
static uint32_t header_crc(const uint8_t *h, size_t n, size_t crc_off)
{
    static const uint8_t zeros[4];
    uint32_t crc = crc_update(~0u, h, crc_off);
    crc = crc_update(crc, zeros, 4);
    crc = crc_update(crc, h + crc_off + 4, n - crc_off - 4);
    return ~crc;
}

/* ---- small helpers ----------------------------------------------------------------------------
 */

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static ssize_t fail(struct proxy_proto_result *res, const char *reason)
{
    res->err_reason = reason;
    return -EBADMSG;
}

int proxy_proto_detect(const void *buf, size_t len)
{
    const char *b = buf;
    if (len == 0)
        return -EAGAIN;
    if (len >= sizeof(v1_sig) && memcmp(b, v1_sig, sizeof(v1_sig)) == 0)
        return 1;
    if (len >= sizeof(v2_sig) && memcmp(b, v2_sig, sizeof(v2_sig)) == 0)
        return 2;
    /* The two signatures differ in their first byte: at most one is still possible. */
    if ((len < sizeof(v1_sig) && memcmp(b, v1_sig, len) == 0) ||
        (len < sizeof(v2_sig) && memcmp(b, v2_sig, len) == 0))
        return -EAGAIN;
    return 0;
}

int proxy_proto_tlv_next(const char *area, size_t len, size_t *pos, struct proxy_proto_tlv *tlv)
{
    size_t p = *pos;
    if (p >= len)
        return 0;
    if (len - p < 3)
        return -EBADMSG;
    const uint8_t *t = (const uint8_t *)area + p;
    size_t n = be16(t + 1);
    if (n > len - p - 3)
        return -EBADMSG;
    tlv->type = t[0];
    tlv->len = (uint16_t)n;
    tlv->value = area + p + 3;
    *pos = p + 3 + n;
    return 1;
}

/* ---- v1 ---------------------------------------------------------------------------------------
 */

/* A decimal port: 1 to 5 digits, no leading zero (except "0" itself), at most 65535. */
static bool v1_port(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)(s[i] - '0') > 9)
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* An address of family af (inet_pton's strict grammar: for IPv4 exactly four decimal numbers
 * 0..255 without leading zeros) into ss, port still unset. */
static bool v1_addr(int af, const char *s, size_t n, struct sockaddr_storage *ss)
{
    char tmp[INET6_ADDRSTRLEN]; /* 46: the longest IPv6 text, IPv4-mapped, plus NUL */
    if (n == 0 || n >= sizeof(tmp) || (af == AF_INET && n > 15))
        return false;
    /* Only the characters of the family's text form: a NUL would end inet_pton's string early. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((unsigned char)(c - '0') < 10 || c == '.' ||
              (af == AF_INET6 && (c == ':' || (unsigned char)((c | 0x20) - 'a') < 6))))
            return false;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (af == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        return inet_pton(AF_INET, tmp, &a->sin_addr) == 1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    return inet_pton(AF_INET6, tmp, &a->sin6_addr) == 1;
}

/* The next field of line[*pos..n) up to a single space (or the end when last); false when the
 * field is empty or the separator is not where it must be. */
static bool v1_field(const char *line, size_t n, size_t *pos, bool last, const char **f,
                     size_t *flen)
{
    size_t s = *pos, e = s;
    while (e < n && line[e] != ' ')
        e++;
    if (e == s || (last ? e != n : e == n))
        return false;
    *f = line + s;
    *flen = e - s;
    *pos = e + 1;
    return true;
}

static ssize_t parse_v1(const char *b, size_t len, struct proxy_proto_result *res)
{
    /* The end of the line: the first CR or LF, which must be a CR followed by LF, both within
     * the first 107 bytes. */
    size_t lim = MIN(len, (size_t)PROXY_PROTO_V1_MAX), i = sizeof(v1_sig);
    while (i < lim && b[i] != '\r' && b[i] != '\n')
        i++;
    if (i == lim)
        return len >= PROXY_PROTO_V1_MAX ? fail(res, "v1 line without CRLF within 107 bytes")
                                         : -EAGAIN;
    if (b[i] == '\n')
        return fail(res, "v1 line ends with a bare LF");
    if (i + 1 == PROXY_PROTO_V1_MAX)
        return fail(res, "v1 line without CRLF within 107 bytes");
    if (i + 1 == len)
        return -EAGAIN;
    if (b[i + 1] != '\n')
        return fail(res, "v1 line has a bare CR");

    const char *line = b + sizeof(v1_sig);
    size_t n = i - sizeof(v1_sig), pos;
    memset(res, 0, sizeof(*res));
    res->version = 1;
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
        res->command = PROXY_PROTO_CMD_UNKNOWN; /* the rest of the line is ignored (§2.1) */
        return (ssize_t)(i + 2);
    }
    if (n < 5 || memcmp(line, "TCP", 3) != 0 || (line[3] != '4' && line[3] != '6') ||
        line[4] != ' ')
        return fail(res, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    int af = line[3] == '4' ? AF_INET : AF_INET6;
    const char *f[4];
    size_t fl[4];
    pos = 5;
    for (int k = 0; k < 4; k++)
        if (!v1_field(line, n, &pos, k == 3, &f[k], &fl[k]))
            return fail(res, "v1 line is not four fields separated by single spaces");
    if (!v1_addr(af, f[0], fl[0], &res->src) || !v1_addr(af, f[1], fl[1], &res->dst))
        return fail(res, "v1 address invalid for its family");
    uint16_t sport, dport;
    if (!v1_port(f[2], fl[2], &sport) || !v1_port(f[3], fl[3], &dport))
        return fail(res, "v1 port invalid");
    if (af == AF_INET) {
        ((struct sockaddr_in *)&res->src)->sin_port = htons(sport);
        ((struct sockaddr_in *)&res->dst)->sin_port = htons(dport);
    } else {
        ((struct sockaddr_in6 *)&res->src)->sin6_port = htons(sport);
        ((struct sockaddr_in6 *)&res->dst)->sin6_port = htons(dport);
    }
    res->command = PROXY_PROTO_CMD_PROXY;
    res->family = af;
    res->socktype = SOCK_STREAM;
    return (ssize_t)(i + 2);
}

/* ---- v2 ---------------------------------------------------------------------------------------
 */

/* Address block size of a protocol byte the spec lists, or -1 for any other byte. */
static int v2_addr_size(uint8_t fam)
{
    switch (fam) {
    case 0x00:
        return 0;
    case 0x11:
    case 0x12:
        return ADDR_INET;
    case 0x21:
    case 0x22:
        return ADDR_INET6;
    case 0x31:
    case 0x32:
        return ADDR_UNIX;
    default:
        return -1;
    }
}

static void v2_addresses(const uint8_t *a, uint8_t fam, struct proxy_proto_result *res)
{
    res->socktype = (fam & 0x0f) == 1 ? SOCK_STREAM : SOCK_DGRAM;
    switch (fam >> 4) {
    case 1: {
        struct sockaddr_in *s = (struct sockaddr_in *)&res->src,
                           *d = (struct sockaddr_in *)&res->dst;
        res->family = s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        break;
    }
    case 2: {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&res->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&res->dst;
        res->family = s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        break;
    }
    default: { /* 3: 108 bytes each, copied as they are (an abstract socket starts with NUL) */
        struct sockaddr_un *s = (struct sockaddr_un *)&res->src,
                           *d = (struct sockaddr_un *)&res->dst;
        _Static_assert(sizeof(s->sun_path) == UNIX_PATH, "sun_path is 108 bytes on Linux");
        res->family = s->sun_family = d->sun_family = AF_UNIX;
        memcpy(s->sun_path, a, UNIX_PATH);
        memcpy(d->sun_path, a + UNIX_PATH, UNIX_PATH);
        break;
    }
    }
}

/* Sets *span to a TLV's value unless the type was seen already (bit in *seen): false then. */
static bool take_once(struct proxy_proto_span *span, const struct proxy_proto_tlv *t,
                      uint32_t *seen, unsigned bit)
{
    if (*seen & (1u << bit))
        return false;
    *seen |= 1u << bit;
    span->ptr = t->value;
    span->len = t->len;
    return true;
}

/* The SSL TLV: client (1 byte), verify (4), then sub-TLVs that must fill the rest exactly. */
static const char *v2_ssl(const struct proxy_proto_tlv *t, struct proxy_proto_ssl *ssl)
{
    if (t->len < 5)
        return "v2 SSL TLV shorter than 5 bytes";
    const uint8_t *v = (const uint8_t *)t->value;
    ssl->present = true;
    ssl->client = v[0];
    ssl->verify = be32(v + 1);
    ssl->tlvs = t->value + 5;
    ssl->tlvs_len = t->len - 5u;
    struct proxy_proto_tlv s;
    size_t pos = 0;
    uint32_t seen = 0;
    int rc;
    while ((rc = proxy_proto_tlv_next(ssl->tlvs, ssl->tlvs_len, &pos, &s)) == 1) {
        struct proxy_proto_span *span;
        switch (s.type) {
        case PROXY_PROTO_TLV_SSL_VERSION:
            span = &ssl->version;
            break;
        case PROXY_PROTO_TLV_SSL_CN:
            span = &ssl->cn;
            break;
        case PROXY_PROTO_TLV_SSL_CIPHER:
            span = &ssl->cipher;
            break;
        case PROXY_PROTO_TLV_SSL_SIG_ALG:
            span = &ssl->sig_alg;
            break;
        case PROXY_PROTO_TLV_SSL_KEY_ALG:
            span = &ssl->key_alg;
            break;
        default:
            continue;
        }
        if (!take_once(span, &s, &seen, s.type - PROXY_PROTO_TLV_SSL_VERSION))
            return "v2 SSL sub-TLV repeated";
    }
    return rc == 0 ? NULL : "v2 SSL sub-TLV runs past the SSL TLV";
}

/* Reads the TLVs of a complete PROXY header h[0..hlen) from offset start. */
static const char *v2_tlvs(const uint8_t *h, size_t hlen, size_t start,
                           struct proxy_proto_result *res)
{
    const char *area = (const char *)h + start;
    size_t len = hlen - start, pos = 0, crc_off = 0;
    struct proxy_proto_tlv t;
    uint32_t seen = 0;
    int rc;
    res->tlvs = area;
    res->tlvs_len = len;
    while ((rc = proxy_proto_tlv_next(area, len, &pos, &t)) == 1) {
        bool once = true;
        switch (t.type) {
        case PROXY_PROTO_TLV_ALPN:
            once = take_once(&res->alpn, &t, &seen, 0);
            break;
        case PROXY_PROTO_TLV_AUTHORITY:
            once = take_once(&res->authority, &t, &seen, 1);
            break;
        case PROXY_PROTO_TLV_CRC32C: {
            struct proxy_proto_span crc;
            once = take_once(&crc, &t, &seen, 2);
            if (once && t.len != 4)
                return "v2 CRC32C TLV is not 4 bytes";
            crc_off = (size_t)((const uint8_t *)t.value - h);
            break;
        }
        case PROXY_PROTO_TLV_UNIQUE_ID:
            once = take_once(&res->unique_id, &t, &seen, 3);
            if (once && t.len > PROXY_PROTO_UNIQUE_ID_MAX)
                return "v2 UNIQUE_ID TLV longer than 128 bytes";
            break;
        case PROXY_PROTO_TLV_SSL: {
            if (seen & (1u << 4)) {
                once = false;
                break;
            }
            seen |= 1u << 4;
            const char *why = v2_ssl(&t, &res->ssl);
            if (why)
                return why;
            break;
        }
        case PROXY_PROTO_TLV_NETNS:
            once = take_once(&res->netns, &t, &seen, 5);
            break;
        default: /* NOOP, custom, experimental, future: skipped */
            break;
        }
        if (!once)
            return "v2 TLV repeated";
    }
    if (rc != 0)
        return "v2 TLV runs past the header";
    if (crc_off) {
        if (header_crc(h, hlen, crc_off) != be32(h + crc_off))
            return "v2 CRC32C mismatch";
        res->crc32c = true;
    }
    return NULL;
}

static ssize_t parse_v2(const uint8_t *h, size_t len, size_t max_v2, struct proxy_proto_result *res)
{
    if (len <= 12)
        return -EAGAIN;
    if (h[12] >> 4 != 2)
        return fail(res, "v2 version is not 2");
    unsigned cmd = h[12] & 0x0f;
    if (cmd > 1)
        return fail(res, "v2 command is neither LOCAL nor PROXY");
    if (len <= 13)
        return -EAGAIN;
    int addr = v2_addr_size(h[13]);
    if (addr < 0)
        return fail(res, "v2 family/transport byte invalid");
    if (len < PROXY_PROTO_V2_FIXED)
        return -EAGAIN;
    size_t hlen = PROXY_PROTO_V2_FIXED + (size_t)be16(h + 14);
    if (hlen > max_v2)
        return fail(res, "v2 header longer than the limit");
    if (cmd == 1 && hlen < PROXY_PROTO_V2_FIXED + (size_t)addr)
        return fail(res, "v2 length too small for the addresses");
    if (len < hlen)
        return -EAGAIN;

    memset(res, 0, sizeof(*res));
    res->version = 2;
    if (cmd == 0) { /* LOCAL: the block is discarded, family included (§2.2) */
        res->command = PROXY_PROTO_CMD_LOCAL;
        return (ssize_t)hlen;
    }
    res->command = PROXY_PROTO_CMD_PROXY;
    if (addr)
        v2_addresses(h + PROXY_PROTO_V2_FIXED, h[13], res);
    const char *why = v2_tlvs(h, hlen, PROXY_PROTO_V2_FIXED + (size_t)addr, res);
    if (why) {
        memset(res, 0, sizeof(*res));
        return fail(res, why);
    }
    return (ssize_t)hlen;
}

ssize_t proxy_proto_parse(const void *buf, size_t len, size_t max_v2,
                          struct proxy_proto_result *res)
{
    if (max_v2 == 0)
        max_v2 = PROXY_PROTO_V2_DEFAULT_MAX;
    max_v2 = MIN(max_v2, (size_t)PROXY_PROTO_V2_LIMIT);
    switch (proxy_proto_detect(buf, len)) {
    case 1:
        return parse_v1(buf, len, res);
    case 2:
        return parse_v2(buf, len, max_v2, res);
    case -EAGAIN:
        return -EAGAIN;
    default:
        return fail(res, "not a PROXY protocol header");
    }
}

/* ---- writers ----------------------------------------------------------------------------------
 */

/* src and dst as one family: AF_INET when both are, else AF_INET6 (IPv4 mapped), AF_UNIX when
 * both are; -1 for anything else. */
static int common_family(const struct sockaddr *src, const struct sockaddr *dst)
{
    int a = src->sa_family, b = dst->sa_family;
    if (a == b && (a == AF_INET || a == AF_INET6 || a == AF_UNIX))
        return a;
    if ((a == AF_INET && b == AF_INET6) || (a == AF_INET6 && b == AF_INET))
        return AF_INET6;
    return -1;
}

/* An AF_INET or AF_INET6 address as IPv6 (IPv4-mapped for AF_INET) and its port (network order). */
static void as_v6(const struct sockaddr *sa, struct in6_addr *addr, uint16_t *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        memset(addr, 0, sizeof(*addr));
        addr->s6_addr[10] = addr->s6_addr[11] = 0xff;
        memcpy(&addr->s6_addr[12], &a->sin_addr, 4);
        *port = a->sin_port;
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        *addr = a->sin6_addr;
        *port = a->sin6_port;
    }
}

ssize_t proxy_proto_write_v1(char *out, size_t cap, const struct sockaddr *src,
                             const struct sockaddr *dst)
{
    char line[PROXY_PROTO_V1_MAX + 1]; /* + snprintf's NUL */
    int n;
    if (!src) {
        static const char unknown[] = "PROXY UNKNOWN\r\n";
        if (cap < sizeof(unknown) - 1)
            return -ENOSPC;
        memcpy(out, unknown, sizeof(unknown) - 1);
        return (ssize_t)(sizeof(unknown) - 1);
    }
    if (!dst)
        return -EINVAL;
    int af = common_family(src, dst);
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    if (af == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)src;
        const struct sockaddr_in *b = (const struct sockaddr_in *)dst;
        inet_ntop(AF_INET, &a->sin_addr, s, sizeof(s));
        inet_ntop(AF_INET, &b->sin_addr, d, sizeof(d));
        n = snprintf(line, sizeof(line), "PROXY TCP4 %s %s %u %u\r\n", s, d, ntohs(a->sin_port),
                     ntohs(b->sin_port));
    } else if (af == AF_INET6) {
        struct in6_addr a, b;
        uint16_t sp, dp;
        as_v6(src, &a, &sp);
        as_v6(dst, &b, &dp);
        inet_ntop(AF_INET6, &a, s, sizeof(s));
        inet_ntop(AF_INET6, &b, d, sizeof(d));
        n = snprintf(line, sizeof(line), "PROXY TCP6 %s %s %u %u\r\n", s, d, ntohs(sp), ntohs(dp));
    } else {
        return -EAFNOSUPPORT;
    }
    /* The longest is 104 bytes (§2.1), "::ffff:255.255.255.255" included: it always fits. */
    if (n < 0 || (size_t)n > PROXY_PROTO_V1_MAX)
        return -EINVAL;
    if ((size_t)n > cap)
        return -ENOSPC;
    memcpy(out, line, (size_t)n);
    return n;
}

ssize_t proxy_proto_write_v2(void *out, size_t cap, const struct sockaddr *src,
                             const struct sockaddr *dst, const struct proxy_proto_tlv *tlvs,
                             size_t ntlvs, unsigned flags)
{
    uint8_t *o = out;
    uint8_t fam;
    size_t addr;
    if (!src) {
        if (ntlvs || flags)
            return -EINVAL;
        if (cap < PROXY_PROTO_V2_FIXED)
            return -ENOSPC;
        memcpy(o, v2_sig, sizeof(v2_sig));
        o[12] = 0x20; /* version 2, LOCAL */
        o[13] = 0x00; /* UNSPEC */
        o[14] = o[15] = 0;
        return PROXY_PROTO_V2_FIXED;
    }
    if (!dst)
        return -EINVAL;
    switch (common_family(src, dst)) {
    case AF_INET:
        fam = 0x11;
        addr = ADDR_INET;
        break;
    case AF_INET6:
        fam = 0x21;
        addr = ADDR_INET6;
        break;
    case AF_UNIX:
        fam = 0x31;
        addr = ADDR_UNIX;
        break;
    default:
        return -EAFNOSUPPORT;
    }
    size_t body = addr + ((flags & PROXY_PROTO_WRITE_CRC32C) ? 7 : 0);
    for (size_t i = 0; i < ntlvs; i++) {
        if (tlvs[i].type == PROXY_PROTO_TLV_CRC32C)
            return -EINVAL;
        body += 3 + (size_t)tlvs[i].len;
        if (body > 65535)
            return -EMSGSIZE;
    }
    if (body > 65535)
        return -EMSGSIZE;
    if (cap < PROXY_PROTO_V2_FIXED + body)
        return -ENOSPC;

    memcpy(o, v2_sig, sizeof(v2_sig));
    o[12] = 0x21; /* version 2, PROXY */
    o[13] = fam;
    o[14] = (uint8_t)(body >> 8);
    o[15] = (uint8_t)body;
    uint8_t *p = o + PROXY_PROTO_V2_FIXED;
    if (fam == 0x11) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)src;
        const struct sockaddr_in *b = (const struct sockaddr_in *)dst;
        memcpy(p, &a->sin_addr, 4);
        memcpy(p + 4, &b->sin_addr, 4);
        memcpy(p + 8, &a->sin_port, 2);
        memcpy(p + 10, &b->sin_port, 2);
    } else if (fam == 0x21) {
        struct in6_addr a, b;
        uint16_t sp, dp;
        as_v6(src, &a, &sp);
        as_v6(dst, &b, &dp);
        memcpy(p, &a, 16);
        memcpy(p + 16, &b, 16);
        memcpy(p + 32, &sp, 2);
        memcpy(p + 34, &dp, 2);
    } else {
        memcpy(p, ((const struct sockaddr_un *)src)->sun_path, UNIX_PATH);
        memcpy(p + UNIX_PATH, ((const struct sockaddr_un *)dst)->sun_path, UNIX_PATH);
    }
    p += addr;
    uint8_t *crc = NULL;
    if (flags & PROXY_PROTO_WRITE_CRC32C) {
        p[0] = PROXY_PROTO_TLV_CRC32C;
        p[1] = 0;
        p[2] = 4;
        crc = p + 3;
        memset(crc, 0, 4);
        p += 7;
    }
    for (size_t i = 0; i < ntlvs; i++) {
        p[0] = tlvs[i].type;
        p[1] = (uint8_t)(tlvs[i].len >> 8);
        p[2] = (uint8_t)tlvs[i].len;
        if (tlvs[i].len)
            memcpy(p + 3, tlvs[i].value, tlvs[i].len);
        p += 3 + (size_t)tlvs[i].len;
    }
    if (crc) {
        uint32_t c = proxy_proto_crc32c(o, PROXY_PROTO_V2_FIXED + body);
        crc[0] = (uint8_t)(c >> 24);
        crc[1] = (uint8_t)(c >> 16);
        crc[2] = (uint8_t)(c >> 8);
        crc[3] = (uint8_t)c;
    }
    return (ssize_t)(PROXY_PROTO_V2_FIXED + body);
}
