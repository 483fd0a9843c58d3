/* Unit tests for net/proxy_proto: v1 lines and v2 headers (valid, every rejection), TLVs (unique
 * id, SSL, CRC32c right and wrong, a header as AWS NLB sends it), incremental feeding (byte by
 * byte gives what one call gives), the bytes after the header left alone, writers and writer ->
 * parser round trips. Every input is parsed from a buffer that ends flush against a PROT_NONE
 * page, so reading one byte too far faults the test. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/proxy_proto.h"

/* ---- guard pages ------------------------------------------------------------------------------
 */

static char *guard_map;
static size_t guard_size;

/* Copies s[0..n) so that it ends right before an inaccessible page; valid until the next call. */
static const char *guarded(const void *s, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t need = (n + page - 1) / page * page + page;
    if (guard_size < need) {
        if (guard_map)
            munmap(guard_map, guard_size);
        guard_map = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert(guard_map != MAP_FAILED);
        guard_size = need;
        cr_assert(mprotect(guard_map + need - page, page, PROT_NONE) == 0);
    }
    char *dst = guard_map + guard_size - page - n;
    memcpy(dst, s, n);
    return dst;
}

#define LIT(s) (s), (sizeof(s) - 1)

static ssize_t parse_max(const void *s, size_t n, size_t max, struct proxy_proto_result *r)
{
    memset(r, 0xa5, sizeof(*r)); /* nothing may rely on a zeroed result */
    return proxy_proto_parse(guarded(s, n), n, max, r);
}

static ssize_t parse(const void *s, size_t n, struct proxy_proto_result *r)
{
    return parse_max(s, n, 0, r);
}

/* ---- building inputs --------------------------------------------------------------------------
 */

static const uint8_t SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A v2 header: signature, ver|cmd, family, length of body, body. Returns its length. */
static size_t v2(uint8_t *o, uint8_t vc, uint8_t fam, const void *body, size_t blen)
{
    memcpy(o, SIG, 12);
    o[12] = vc;
    o[13] = fam;
    o[14] = (uint8_t)(blen >> 8);
    o[15] = (uint8_t)blen;
    if (blen)
        memcpy(o + 16, body, blen);
    return 16 + blen;
}

/* Appends a TLV at o; returns its length. */
static size_t tlv(uint8_t *o, uint8_t type, const void *v, size_t n)
{
    o[0] = type;
    o[1] = (uint8_t)(n >> 8);
    o[2] = (uint8_t)n;
    if (n && v)
        memcpy(o + 3, v, n);
    else if (n)
        memset(o + 3, 0, n);
    return 3 + n;
}

/* 192.0.2.1:56324 -> 198.51.100.2:443 as a v2 address block */
static const uint8_t IPV4_BLOCK[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb};

static struct sockaddr_storage sa(const char *ip, unsigned port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        cr_assert_eq(inet_pton(AF_INET6, ip, &a->sin6_addr), 1, "%s", ip);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        cr_assert_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1, "%s", ip);
    }
    return ss;
}

#define EXPECT_ADDR(got, ip, port)                                                                 \
    do {                                                                                           \
        struct sockaddr_storage want_ = sa((ip), (port));                                          \
        cr_expect(memcmp(&(got), &want_, sizeof(want_)) == 0, "%s is not %s port %u", #got, (ip),  \
                  (unsigned)(port));                                                               \
    } while (0)

static bool span_is(struct proxy_proto_span s, const void *want, size_t n)
{
    return s.ptr && s.len == n && memcmp(s.ptr, want, n) == 0;
}

/* Both results describe the same header (spans compared by offset: the buffers differ). */
static void expect_same(const char *ba, ssize_t ra, const struct proxy_proto_result *a,
                        const char *bb, ssize_t rb, const struct proxy_proto_result *b)
{
    cr_assert_eq(ra, rb);
    if (ra == -EBADMSG)
        cr_expect_str_eq(a->err_reason, b->err_reason);
    if (ra <= 0)
        return;
    cr_expect_eq(a->version, b->version);
    cr_expect_eq(a->command, b->command);
    cr_expect_eq(a->family, b->family);
    cr_expect_eq(a->socktype, b->socktype);
    cr_expect(memcmp(&a->src, &b->src, sizeof(a->src)) == 0);
    cr_expect(memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0);
    cr_expect_eq(a->tlvs_len, b->tlvs_len);
    cr_expect_eq(a->tlvs ? a->tlvs - ba : -1, b->tlvs ? b->tlvs - bb : -1);
    cr_expect_eq(a->unique_id.ptr ? a->unique_id.ptr - ba : -1,
                 b->unique_id.ptr ? b->unique_id.ptr - bb : -1);
    cr_expect_eq(a->crc32c, b->crc32c);
    cr_expect_eq(a->ssl.present, b->ssl.present);
}

/* Feeds in[0..n) one more byte at a time (each prefix a fresh guarded copy): every prefix before
 * the answer must say -EAGAIN, and the answer must be what one call on the whole says. Returns
 * that answer. */
static ssize_t feed_bytewise(const void *in, size_t n, size_t max)
{
    static struct proxy_proto_result whole, part;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, in, n);
    ssize_t rw = proxy_proto_parse(guarded(copy, n), n, max, &whole);
    const char *bw = guarded(copy, n);
    ssize_t r = -EAGAIN;
    size_t i;
    for (i = 1; i <= n && r == -EAGAIN; i++)
        r = parse_max(copy, i, max, &part);
    if (r > 0)
        cr_expect_eq((size_t)r, i - 1, "answered after %zu bytes for a %zd-byte header", i - 1, r);
    /* part's spans point into the guarded copy of the prefix, which ends where the whole's
     * copy of the same bytes would start: compare offsets against the prefix copy */
    const char *bp = guard_map + guard_size - (size_t)sysconf(_SC_PAGESIZE) - (i - 1);
    expect_same(bw, rw, &whole, bp, r, &part);
    free(copy);
    return r;
}

/* ---- CRC32c -----------------------------------------------------------------------------------
 */

Test(crc32c, check_values)
{
    cr_expect_eq(proxy_proto_crc32c("123456789", 9), 0xe3069283u); /* the catalogue's check */
    cr_expect_eq(proxy_proto_crc32c("", 0), 0u);
    uint8_t zeros[32] = {0};
    cr_expect_eq(proxy_proto_crc32c(zeros, 32), 0x8a9136aau); /* RFC 3720 B.4 */
}

/* ---- detect -----------------------------------------------------------------------------------
 */

Test(detect, versions)
{
    cr_expect_eq(proxy_proto_detect("", 0), -EAGAIN);
    cr_expect_eq(proxy_proto_detect("PROX", 4), -EAGAIN);
    cr_expect_eq(proxy_proto_detect("PROXY", 5), -EAGAIN);
    cr_expect_eq(proxy_proto_detect("PROXY ", 6), 1);
    cr_expect_eq(proxy_proto_detect("PROXY\r", 6), 0);
    cr_expect_eq(proxy_proto_detect("PRI * HTTP/2.0", 14), 0);
    cr_expect_eq(proxy_proto_detect("GET", 3), 0);
    cr_expect_eq(proxy_proto_detect("\x16\x03\x01", 3), 0); /* a TLS ClientHello */
    cr_expect_eq(proxy_proto_detect(SIG, 5), -EAGAIN);
    cr_expect_eq(proxy_proto_detect(SIG, 11), -EAGAIN);
    cr_expect_eq(proxy_proto_detect(SIG, 12), 2);
    cr_expect_eq(proxy_proto_detect("\r\n\r\n\r\n", 6), 0);
}

/* ---- v1: valid --------------------------------------------------------------------------------
 */

Test(v1, tcp4_and_the_request_after_it)
{
    static const char in[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
                             "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
    struct proxy_proto_result r;
    ssize_t n = parse(LIT(in), &r);
    cr_assert_eq(n, 47, "n=%zd (%s)", n, n < 0 ? r.err_reason : "");
    cr_expect_eq(r.version, 1);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_PROXY);
    cr_expect_eq(r.family, AF_INET);
    cr_expect_eq(r.socktype, SOCK_STREAM);
    EXPECT_ADDR(r.src, "192.168.0.1", 56324);
    EXPECT_ADDR(r.dst, "192.168.0.11", 443);
    cr_expect_null(r.tlvs);
    cr_expect_null(r.unique_id.ptr);
    cr_expect(!r.ssl.present && !r.crc32c);
    cr_expect(memcmp(guard_map + guard_size - sysconf(_SC_PAGESIZE) - (sizeof(in) - 1) + n,
                     "GET / HTTP/1.1\r\n", 16) == 0);
}

Test(v1, tcp6_forms)
{
    struct proxy_proto_result r;
    static const char a[] =
        "PROXY TCP6 2001:DB8::1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 0 65535\r\n";
    cr_assert_eq(parse(LIT(a), &r), (ssize_t)sizeof(a) - 1, "%s", r.err_reason);
    cr_expect_eq(r.family, AF_INET6);
    EXPECT_ADDR(r.src, "2001:db8::1", 0);
    EXPECT_ADDR(r.dst, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    static const char b[] = "PROXY TCP6 ::ffff:192.0.2.1 :: 1 2\r\n";
    cr_assert_eq(parse(LIT(b), &r), (ssize_t)sizeof(b) - 1, "%s", r.err_reason);
    EXPECT_ADDR(r.src, "::ffff:192.0.2.1", 1);
    EXPECT_ADDR(r.dst, "::", 2);
    /* the spec's longest TCP6 line, 104 bytes */
    static const char c[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    cr_assert_eq(sizeof(c) - 1, 104);
    cr_expect_eq(parse(LIT(c), &r), 104);
}

Test(v1, unknown_ignores_the_rest)
{
    struct proxy_proto_result r;
    cr_assert_eq(parse(LIT("PROXY UNKNOWN\r\nGET"), &r), 15);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_UNKNOWN);
    cr_expect_eq(r.family, AF_UNSPEC);
    cr_expect_eq(r.socktype, 0);
    cr_expect_eq(r.src.ss_family, AF_UNSPEC);
    static const char junk[] = "PROXY UNKNOWN whatever  \x01 was here\r\n";
    cr_assert_eq(parse(LIT(junk), &r), (ssize_t)sizeof(junk) - 1);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_UNKNOWN);
    /* the spec's worst case: exactly 107 bytes */
    static const char w[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    cr_assert_eq(sizeof(w) - 1, PROXY_PROTO_V1_MAX);
    cr_expect_eq(parse(LIT(w), &r), PROXY_PROTO_V1_MAX);
}

Test(v1, ports_at_the_bounds)
{
    struct proxy_proto_result r;
    cr_assert_eq(parse(LIT("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), &r), 44);
    EXPECT_ADDR(r.src, "0.0.0.0", 0);
    EXPECT_ADDR(r.dst, "255.255.255.255", 65535);
}

/* ---- v1: rejections ---------------------------------------------------------------------------
 */

struct bad {
    const char *in;
    const char *reason; /* a substring of err_reason */
};

static void expect_bad(const struct bad *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct proxy_proto_result r;
        size_t len = strlen(t[i].in);
        ssize_t rc = parse(t[i].in, len, &r);
        cr_expect_eq(rc, -EBADMSG, "\"%s\": %zd", t[i].in, rc);
        if (rc == -EBADMSG)
            cr_expect(strstr(r.err_reason, t[i].reason), "\"%s\": \"%s\", want \"%s\"", t[i].in,
                      r.err_reason, t[i].reason);
        /* and the same answer byte by byte */
        cr_expect_eq(feed_bytewise(t[i].in, len, 0), -EBADMSG, "\"%s\" bytewise", t[i].in);
    }
}

Test(v1, rejections)
{
    static const struct bad t[] = {
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "bare CR"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "bare CR"},
        {"PROXY UNKNOWN\n", "bare LF"},
        {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"},
        {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "single spaces"},
        {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "single spaces"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "single spaces"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "single spaces"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "single spaces"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\t2\r\n", "single spaces"},
        {"PROXY TCP4\r\n", "protocol"},
        {"PROXY TCP4 \r\n", "single spaces"},
        {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"},
        {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"},
        {"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"},
        {"PROXY UNKNOWNX\r\n", "protocol"},
        {"PROXY unknown\r\n", "protocol"},
        {"PROXY \r\n", "protocol"},
        {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "address"},
        {"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "address"},
        {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "address"},
        {"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "address"},
        {"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", "address"},
        {"PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n", "address"},
        {"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "address"},
        {"PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1 2\r\n", "address"},
        {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "address"},
        {"PROXY TCP6 ::1 1.2.3.4 1 2\r\n", "address"},
        {"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "address"},
        {"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "address"},
        {"PROXY TCP6 12345::1 ::1 1 2\r\n", "address"},
        {"PROXY TCP6 1::2::3 ::1 1 2\r\n", "address"},
        {"PROXY TCP6 [::1] ::1 1 2\r\n", "address"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n", "port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", "port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n", "port"},
        {"PROXY\r\n", "not a PROXY"},
        {"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY"},
        {"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY"},
        {"GET / HTTP/1.1\r\n\r\n", "not a PROXY"},
        {" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY"},
    };
    expect_bad(t, sizeof(t) / sizeof(t[0]));
}

Test(v1, nul_inside_a_field)
{
    static const char a[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
    static const char b[] = "PROXY TCP6 ::1\0:1 ::1 1 2\r\n";
    static const char c[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1\0 2\r\n";
    struct proxy_proto_result r;
    cr_expect_eq(parse(LIT(a), &r), -EBADMSG);
    cr_expect_eq(parse(LIT(b), &r), -EBADMSG);
    cr_expect_eq(parse(LIT(c), &r), -EBADMSG);
}

Test(v1, crlf_within_107_bytes)
{
    char line[200];
    struct proxy_proto_result r;
    /* 105 bytes of line without CR: still waiting; 107 without CRLF: invalid */
    memset(line, 'a', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    cr_expect_eq(parse(line, 106, &r), -EAGAIN);
    cr_expect_eq(parse(line, 107, &r), -EBADMSG);
    cr_expect(strstr(r.err_reason, "107"));
    cr_expect_eq(parse(line, 200, &r), -EBADMSG);
    /* CRLF ending at byte 107: fine; CR at byte 107 (LF would be the 108th): invalid, and said
     * as soon as the CR is there */
    memcpy(line + 105, "\r\n", 2);
    cr_expect_eq(parse(line, 107, &r), 107);
    memset(line, 'a', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    line[106] = '\r';
    line[107] = '\n';
    cr_expect_eq(parse(line, 107, &r), -EBADMSG);
    cr_expect_eq(parse(line, 108, &r), -EBADMSG);
    /* a CR waits for its LF */
    cr_expect_eq(parse(LIT("PROXY UNKNOWN\r"), &r), -EAGAIN);
}

Test(v1, incremental)
{
    static const char *const ok[] = {
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN 1 2 3\r\nxyz",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        cr_expect_gt(feed_bytewise(ok[i], strlen(ok[i]), 0), 0, "%s", ok[i]);
}

/* ---- v2: valid --------------------------------------------------------------------------------
 */

Test(v2, proxy_ipv4_then_request)
{
    uint8_t in[128];
    size_t n = v2(in, 0x21, 0x11, IPV4_BLOCK, sizeof(IPV4_BLOCK));
    memcpy(in + n, "GET / HTTP/1.1\r\n\r\n", 18);
    struct proxy_proto_result r;
    ssize_t rc = parse(in, n + 18, &r);
    cr_assert_eq(rc, 28, "%zd %s", rc, rc < 0 ? r.err_reason : "");
    cr_expect_eq(r.version, 2);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_PROXY);
    cr_expect_eq(r.family, AF_INET);
    cr_expect_eq(r.socktype, SOCK_STREAM);
    EXPECT_ADDR(r.src, "192.0.2.1", 56324);
    EXPECT_ADDR(r.dst, "198.51.100.2", 443);
    cr_expect_eq(r.tlvs_len, 0);
    cr_expect_null(r.unique_id.ptr);
    cr_expect(!r.ssl.present && !r.crc32c);
    cr_expect_eq(feed_bytewise(in, n + 18, 0), 28);
}

Test(v2, proxy_ipv6_and_dgram)
{
    uint8_t body[36], in[128];
    struct sockaddr_storage s = sa("2001:db8::1", 1234), d = sa("2001:db8::2:1", 80);
    memcpy(body, &((struct sockaddr_in6 *)&s)->sin6_addr, 16);
    memcpy(body + 16, &((struct sockaddr_in6 *)&d)->sin6_addr, 16);
    body[32] = 0x04, body[33] = 0xd2, body[34] = 0, body[35] = 80;
    size_t n = v2(in, 0x21, 0x21, body, 36);
    struct proxy_proto_result r;
    cr_assert_eq(parse(in, n, &r), 52);
    cr_expect_eq(r.family, AF_INET6);
    cr_expect_eq(r.socktype, SOCK_STREAM);
    EXPECT_ADDR(r.src, "2001:db8::1", 1234);
    EXPECT_ADDR(r.dst, "2001:db8::2:1", 80);
    in[13] = 0x22;
    cr_assert_eq(parse(in, n, &r), 52);
    cr_expect_eq(r.socktype, SOCK_DGRAM);
    n = v2(in, 0x21, 0x12, IPV4_BLOCK, 12);
    cr_assert_eq(parse(in, n, &r), 28);
    cr_expect_eq(r.family, AF_INET);
    cr_expect_eq(r.socktype, SOCK_DGRAM);
}

Test(v2, unix_paths)
{
    uint8_t body[216] = {0}, in[300];
    strcpy((char *)body, "/run/client.sock");
    body[108] = '\0'; /* an abstract socket: NUL then a name */
    strcpy((char *)body + 109, "golb");
    size_t n = v2(in, 0x21, 0x31, body, sizeof(body));
    struct proxy_proto_result r;
    cr_assert_eq(parse(in, n, &r), 232);
    cr_expect_eq(r.family, AF_UNIX);
    cr_expect_eq(r.socktype, SOCK_STREAM);
    const struct sockaddr_un *s = (const struct sockaddr_un *)&r.src;
    const struct sockaddr_un *d = (const struct sockaddr_un *)&r.dst;
    cr_expect_eq(s->sun_family, AF_UNIX);
    cr_expect_str_eq(s->sun_path, "/run/client.sock");
    cr_expect(memcmp(d->sun_path, "\0golb", 5) == 0);
}

Test(v2, local_discards_its_block)
{
    uint8_t in[128], body[40];
    struct proxy_proto_result r;
    size_t n = v2(in, 0x20, 0x00, NULL, 0);
    memcpy(in + n, "GET", 3);
    cr_assert_eq(parse(in, n + 3, &r), 16);
    cr_expect_eq(r.version, 2);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_LOCAL);
    cr_expect_eq(r.family, AF_UNSPEC);
    cr_expect_eq(r.src.ss_family, AF_UNSPEC);
    cr_expect_null(r.tlvs);
    /* family ignored, length need not cover it, and what follows is not read as TLVs */
    n = v2(in, 0x20, 0x11, NULL, 0);
    cr_expect_eq(parse(in, n, &r), 16);
    memset(body, 0xff, sizeof(body));
    n = v2(in, 0x20, 0x21, body, sizeof(body));
    cr_expect_eq(parse(in, n, &r), 56);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_LOCAL);
    cr_expect_eq(feed_bytewise(in, n, 0), 56);
}

Test(v2, proxy_unspec)
{
    uint8_t in[128], body[32];
    struct proxy_proto_result r;
    size_t n = v2(in, 0x21, 0x00, NULL, 0);
    cr_assert_eq(parse(in, n, &r), 16);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_PROXY);
    cr_expect_eq(r.family, AF_UNSPEC);
    cr_expect_eq(r.socktype, 0);
    cr_expect_eq(r.src.ss_family, AF_UNSPEC);
    /* no addresses: TLVs start at once */
    size_t b = tlv(body, PROXY_PROTO_TLV_UNIQUE_ID, "abc", 3);
    n = v2(in, 0x21, 0x00, body, b);
    cr_assert_eq(parse(in, n, &r), 22);
    cr_expect(span_is(r.unique_id, "abc", 3));
}

Test(v2, tlvs_exposed_and_iterated)
{
    uint8_t body[512], ssl[128], in[600];
    size_t s = 0;
    ssl[s++] = PROXY_PROTO_CLIENT_SSL | PROXY_PROTO_CLIENT_CERT_CONN;
    memcpy(ssl + s, "\0\0\0\0", 4);
    s += 4;
    s += tlv(ssl + s, PROXY_PROTO_TLV_SSL_VERSION, "TLSv1.3", 7);
    s += tlv(ssl + s, 0x2f, "?", 1); /* unknown sub-TLV: skipped */
    s += tlv(ssl + s, PROXY_PROTO_TLV_SSL_CN, "client.example", 14);
    s += tlv(ssl + s, PROXY_PROTO_TLV_SSL_CIPHER, "TLS_AES_128_GCM_SHA256", 22);
    s += tlv(ssl + s, PROXY_PROTO_TLV_SSL_SIG_ALG, "RSA-SHA256", 10);
    s += tlv(ssl + s, PROXY_PROTO_TLV_SSL_KEY_ALG, "RSA2048", 7);
    size_t b = 0;
    memcpy(body, IPV4_BLOCK, 12);
    b += 12;
    b += tlv(body + b, PROXY_PROTO_TLV_ALPN, "h2", 2);
    b += tlv(body + b, PROXY_PROTO_TLV_AUTHORITY, "www.example.com", 15);
    b += tlv(body + b, PROXY_PROTO_TLV_NOOP, "\0\0\0", 3);
    b += tlv(body + b, PROXY_PROTO_TLV_UNIQUE_ID, "id-0123456789", 13);
    b += tlv(body + b, 0xe0, "custom", 6);
    b += tlv(body + b, PROXY_PROTO_TLV_SSL, ssl, s);
    b += tlv(body + b, PROXY_PROTO_TLV_NETNS, "blue", 4);
    b += tlv(body + b, 0xf8, NULL, 0);
    size_t n = v2(in, 0x21, 0x11, body, b);
    memcpy(in + n, "GET", 3);
    struct proxy_proto_result r;
    cr_assert_eq(parse(in, n + 3, &r), (ssize_t)n, "%s", r.err_reason);
    EXPECT_ADDR(r.src, "192.0.2.1", 56324);
    cr_expect(span_is(r.alpn, "h2", 2));
    cr_expect(span_is(r.authority, "www.example.com", 15));
    cr_expect(span_is(r.unique_id, "id-0123456789", 13));
    cr_expect(span_is(r.netns, "blue", 4));
    cr_expect(!r.crc32c);
    cr_assert(r.ssl.present);
    cr_expect_eq(r.ssl.client, PROXY_PROTO_CLIENT_SSL | PROXY_PROTO_CLIENT_CERT_CONN);
    cr_expect_eq(r.ssl.verify, 0);
    cr_expect(span_is(r.ssl.version, "TLSv1.3", 7));
    cr_expect(span_is(r.ssl.cn, "client.example", 14));
    cr_expect(span_is(r.ssl.cipher, "TLS_AES_128_GCM_SHA256", 22));
    cr_expect(span_is(r.ssl.sig_alg, "RSA-SHA256", 10));
    cr_expect(span_is(r.ssl.key_alg, "RSA2048", 7));
    cr_expect_eq(r.ssl.tlvs_len, s - 5);
    /* iteration gives every TLV in order, unknown ones included */
    static const uint8_t types[] = {0x01, 0x02, 0x04, 0x05, 0xe0, 0x20, 0x30, 0xf8};
    struct proxy_proto_tlv t;
    size_t pos = 0, k = 0;
    int rc;
    while ((rc = proxy_proto_tlv_next(r.tlvs, r.tlvs_len, &pos, &t)) == 1) {
        cr_assert_lt(k, sizeof(types));
        cr_expect_eq(t.type, types[k], "TLV %zu is %#x", k, t.type);
        k++;
    }
    cr_expect_eq(rc, 0);
    cr_expect_eq(k, sizeof(types));
    /* the SSL sub-TLVs iterate too */
    pos = k = 0;
    while (proxy_proto_tlv_next(r.ssl.tlvs, r.ssl.tlvs_len, &pos, &t) == 1)
        k++;
    cr_expect_eq(k, 6);
    /* an empty value is present, not absent */
    b = 12 + tlv(body + 12, PROXY_PROTO_TLV_AUTHORITY, NULL, 0);
    n = v2(in, 0x21, 0x11, body, b);
    cr_assert_eq(parse(in, n, &r), (ssize_t)n);
    cr_expect_not_null(r.authority.ptr);
    cr_expect_eq(r.authority.len, 0);
    cr_expect_null(r.alpn.ptr);
    cr_expect(!r.ssl.present);
    /* byte by byte */
    n = v2(in, 0x21, 0x11, body, 12 + 3);
    cr_expect_eq(feed_bytewise(in, n, 0), (ssize_t)n);
}

Test(v2, ssl_verify_failed_and_no_sub_tlvs)
{
    uint8_t body[64], in[128];
    memcpy(body, IPV4_BLOCK, 12);
    size_t b = 12 + tlv(body + 12, PROXY_PROTO_TLV_SSL, "\x01\x00\x00\x00\x13", 5);
    size_t n = v2(in, 0x21, 0x11, body, b);
    struct proxy_proto_result r;
    cr_assert_eq(parse(in, n, &r), (ssize_t)n, "%s", r.err_reason);
    cr_expect(r.ssl.present);
    cr_expect_eq(r.ssl.client, PROXY_PROTO_CLIENT_SSL);
    cr_expect_eq(r.ssl.verify, 0x13);
    cr_expect_null(r.ssl.version.ptr);
    cr_expect_eq(r.ssl.tlvs_len, 0);
}

Test(v2, unique_id_up_to_128)
{
    uint8_t body[256], in[300], id[129];
    memset(id, 'x', sizeof(id));
    memcpy(body, IPV4_BLOCK, 12);
    size_t b = 12 + tlv(body + 12, PROXY_PROTO_TLV_UNIQUE_ID, id, 128);
    size_t n = v2(in, 0x21, 0x11, body, b);
    struct proxy_proto_result r;
    cr_assert_eq(parse(in, n, &r), (ssize_t)n);
    cr_expect(span_is(r.unique_id, id, 128));
    b = 12 + tlv(body + 12, PROXY_PROTO_TLV_UNIQUE_ID, id, 129);
    n = v2(in, 0x21, 0x11, body, b);
    cr_expect_eq(parse(in, n, &r), -EBADMSG);
    cr_expect(strstr(r.err_reason, "128"));
}

/* A header as AWS NLB sends it (the sample of AWS's elastic-load-balancing-tools tests): TCP4,
 * a CRC32C TLV computed by AWS, a VPC endpoint TLV (type 0xEA) and NOOP padding. */
static const uint8_t AWS[100] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
    0x21, 0x11, 0x00, 0x54,                                                 /* PROXY TCP4, 84 */
    0xac, 0x1f, 0x07, 0x71, 0xac, 0x1f, 0x0a, 0x1f, 0xc8, 0xf2, 0x00, 0x50, /* addresses */
    0x03, 0x00, 0x04, 0xe8, 0xd6, 0x89, 0x2d,                               /* CRC32C */
    0xea, 0x00, 0x17, 0x01, 0x76, 0x70, 0x63, 0x65, 0x2d, 0x30, 0x38, 0x64, /* AWS VPC endpoint */
    0x32, 0x62, 0x66, 0x31, 0x35, 0x66, 0x61, 0x63, 0x35, 0x30, 0x30, 0x31,
    0x63, 0x39, 0x04, 0x00, 0x24, /* NOOP, 36 zero bytes (the rest of the array) */
};

Test(v2, crc32c_from_aws)
{
    struct proxy_proto_result r;
    cr_assert_eq(sizeof(AWS), 100);
    cr_assert_eq(parse(AWS, sizeof(AWS), &r), 100, "%s", r.err_reason);
    cr_expect(r.crc32c);
    EXPECT_ADDR(r.src, "172.31.7.113", 51442);
    EXPECT_ADDR(r.dst, "172.31.10.31", 80);
    struct proxy_proto_tlv t;
    size_t pos = 0;
    cr_assert_eq(proxy_proto_tlv_next(r.tlvs, r.tlvs_len, &pos, &t), 1);
    cr_assert_eq(proxy_proto_tlv_next(r.tlvs, r.tlvs_len, &pos, &t), 1);
    cr_expect_eq(t.type, 0xea);
    cr_expect(t.len == 23 && memcmp(t.value + 1, "vpce-08d2bf15fac5001c9", 22) == 0);
    cr_expect_eq(feed_bytewise(AWS, sizeof(AWS), 0), 100);
}

Test(v2, crc32c_wrong)
{
    uint8_t in[sizeof(AWS)];
    struct proxy_proto_result r;
    for (size_t i = 16; i < sizeof(AWS); i++) { /* any flipped bit of the body */
        memcpy(in, AWS, sizeof(AWS));
        in[i] ^= 0x10;
        ssize_t rc = parse(in, sizeof(in), &r);
        if (i == 28) { /* the CRC TLV's type: now an unknown TLV, and no CRC to check */
            cr_expect_eq(rc, 100);
            cr_expect(!r.crc32c);
        } else if (i == 29 || i == 30 || i == 36 || i == 37 || i == 62 || i == 63) {
            cr_expect_eq(rc, -EBADMSG, "byte %zu", i); /* a TLV length: another failure */
        } else {
            cr_expect_eq(rc, -EBADMSG, "byte %zu", i);
            cr_expect_str_eq(r.err_reason, "v2 CRC32C mismatch", "byte %zu", i);
        }
    }
    /* a CRC32C TLV of another length */
    uint8_t body[64];
    memcpy(body, IPV4_BLOCK, 12);
    size_t b = 12 + tlv(body + 12, PROXY_PROTO_TLV_CRC32C, "\0\0\0", 3);
    size_t n = v2(in, 0x21, 0x11, body, b);
    cr_expect_eq(parse(in, n, &r), -EBADMSG);
    cr_expect(strstr(r.err_reason, "4 bytes"));
}

/* ---- v2: rejections ---------------------------------------------------------------------------
 */

static void expect_v2_bad(const uint8_t *in, size_t n, size_t max, const char *reason)
{
    struct proxy_proto_result r;
    ssize_t rc = parse_max(in, n, max, &r);
    cr_expect_eq(rc, -EBADMSG, "want \"%s\", got %zd", reason, rc);
    if (rc == -EBADMSG)
        cr_expect(strstr(r.err_reason, reason), "\"%s\", want \"%s\"", r.err_reason, reason);
    cr_expect_eq(feed_bytewise(in, n, max), -EBADMSG, "bytewise, want \"%s\"", reason);
}

Test(v2, bad_signature)
{
    uint8_t in[64];
    size_t n = v2(in, 0x21, 0x11, IPV4_BLOCK, 12);
    for (size_t i = 0; i < 12; i++) {
        in[i] ^= 0x40;
        expect_v2_bad(in, n, 0, "not a PROXY");
        in[i] ^= 0x40;
    }
}

Test(v2, bad_version_command_family)
{
    uint8_t in[64];
    static const uint8_t vcs[] = {0x11, 0x31, 0x01, 0xf1};
    for (size_t i = 0; i < sizeof(vcs); i++)
        expect_v2_bad(in, v2(in, vcs[i], 0x11, IPV4_BLOCK, 12), 0, "version");
    static const uint8_t cmds[] = {0x22, 0x23, 0x2f};
    for (size_t i = 0; i < sizeof(cmds); i++)
        expect_v2_bad(in, v2(in, cmds[i], 0x11, IPV4_BLOCK, 12), 0, "command");
    static const uint8_t fams[] = {0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x41, 0xff};
    for (size_t i = 0; i < sizeof(fams); i++) {
        expect_v2_bad(in, v2(in, 0x21, fams[i], IPV4_BLOCK, 12), 0, "family");
        expect_v2_bad(in, v2(in, 0x20, fams[i], NULL, 0), 0, "family");
    }
    /* each is decided on its own byte, before the rest arrives */
    struct proxy_proto_result r;
    v2(in, 0x11, 0x11, IPV4_BLOCK, 12);
    cr_expect_eq(parse(in, 13, &r), -EBADMSG);
    v2(in, 0x21, 0x99, IPV4_BLOCK, 12);
    cr_expect_eq(parse(in, 13, &r), -EAGAIN);
    cr_expect_eq(parse(in, 14, &r), -EBADMSG);
}

Test(v2, length_bounds)
{
    static uint8_t in[PROXY_PROTO_V2_LIMIT];
    struct proxy_proto_result r;
    memset(in, 0, sizeof(in));
    /* too large for the default bound: refused from the fixed 16 bytes alone */
    v2(in, 0x21, 0x11, NULL, 0);
    in[14] = (PROXY_PROTO_V2_DEFAULT_MAX - 16 + 1) >> 8;
    in[15] = (PROXY_PROTO_V2_DEFAULT_MAX - 16 + 1) & 0xff;
    cr_expect_eq(parse(in, 16, &r), -EBADMSG);
    cr_expect(strstr(r.err_reason, "limit"));
    in[15]--; /* exactly the bound: waits for the rest, then accepted (NOOP padding) */
    cr_expect_eq(parse(in, 16, &r), -EAGAIN);
    memcpy(in + 16, IPV4_BLOCK, 12);
    tlv(in + 28, PROXY_PROTO_TLV_NOOP, NULL, PROXY_PROTO_V2_DEFAULT_MAX - 16 - 12 - 3);
    cr_expect_eq(parse(in, PROXY_PROTO_V2_DEFAULT_MAX - 1, &r), -EAGAIN);
    cr_expect_eq(parse(in, PROXY_PROTO_V2_DEFAULT_MAX, &r), PROXY_PROTO_V2_DEFAULT_MAX);
    /* a configured bound */
    size_t n = v2(in, 0x21, 0x11, IPV4_BLOCK, 12);
    cr_expect_eq(parse_max(in, n, 28, &r), 28);
    expect_v2_bad(in, n, 27, "limit");
    /* the largest header there is, with the bound at its maximum */
    v2(in, 0x21, 0x11, NULL, 0);
    in[14] = in[15] = 0xff;
    memcpy(in + 16, IPV4_BLOCK, 12);
    tlv(in + 28, 0xe1, NULL, 65535 - 12 - 3);
    cr_expect_eq(parse_max(in, sizeof(in), (size_t)-1, &r), PROXY_PROTO_V2_LIMIT);
    cr_expect_eq(parse_max(in, sizeof(in), 0, &r), -EBADMSG);
}

Test(v2, length_too_small_for_addresses)
{
    uint8_t in[300], body[216] = {0};
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, 11), 0, "too small");
    expect_v2_bad(in, v2(in, 0x21, 0x12, body, 0), 0, "too small");
    expect_v2_bad(in, v2(in, 0x21, 0x21, body, 35), 0, "too small");
    expect_v2_bad(in, v2(in, 0x21, 0x22, body, 12), 0, "too small");
    expect_v2_bad(in, v2(in, 0x21, 0x31, body, 215), 0, "too small");
    expect_v2_bad(in, v2(in, 0x21, 0x32, body, 36), 0, "too small");
    /* decided from the fixed 16 bytes */
    struct proxy_proto_result r;
    v2(in, 0x21, 0x21, body, 35);
    cr_expect_eq(parse(in, 16, &r), -EBADMSG);
}

Test(v2, tlv_rejections)
{
    uint8_t body[600], in[700], id[8] = "abcdefg";
    memcpy(body, IPV4_BLOCK, 12);
    size_t b;
    /* one or two bytes left: a truncated TLV header */
    body[12] = 0xe0;
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, 13), 0, "runs past the header");
    body[13] = 0x00;
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, 14), 0, "runs past the header");
    /* a value longer than what is left */
    b = 12 + tlv(body + 12, PROXY_PROTO_TLV_UNIQUE_ID, id, 4);
    body[14] = 5;
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "runs past the header");
    body[13] = 0xff;
    body[14] = 0xff;
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "runs past the header");
    /* the known types once each */
    static const uint8_t once[] = {PROXY_PROTO_TLV_ALPN, PROXY_PROTO_TLV_AUTHORITY,
                                   PROXY_PROTO_TLV_UNIQUE_ID, PROXY_PROTO_TLV_NETNS};
    for (size_t i = 0; i < sizeof(once); i++) {
        b = 12 + tlv(body + 12, once[i], "a", 1);
        b += tlv(body + b, PROXY_PROTO_TLV_NOOP, NULL, 0);
        b += tlv(body + b, once[i], "b", 1);
        expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "repeated");
    }
    b = 12 + tlv(body + 12, PROXY_PROTO_TLV_CRC32C, "\0\0\0\0", 4);
    b += tlv(body + b, PROXY_PROTO_TLV_CRC32C, "\0\0\0\0", 4);
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "repeated");
    b = 12 + tlv(body + 12, PROXY_PROTO_TLV_SSL, "\0\0\0\0\0", 5);
    b += tlv(body + b, PROXY_PROTO_TLV_SSL, "\0\0\0\0\0", 5);
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "repeated");
    /* unknown types may repeat */
    b = 12 + tlv(body + 12, 0xe0, "a", 1);
    b += tlv(body + b, 0xe0, "b", 1);
    b += tlv(body + b, PROXY_PROTO_TLV_NOOP, NULL, 0);
    b += tlv(body + b, PROXY_PROTO_TLV_NOOP, NULL, 0);
    struct proxy_proto_result r;
    cr_expect_gt(parse(in, v2(in, 0x21, 0x11, body, b), &r), 0);
}

Test(v2, ssl_tlv_rejections)
{
    uint8_t body[200], ssl[100], in[300];
    memcpy(body, IPV4_BLOCK, 12);
    size_t b = 12 + tlv(body + 12, PROXY_PROTO_TLV_SSL, "\x01\0\0\0", 4);
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "shorter than 5");
    /* a sub-TLV past the end of the SSL TLV (though within the header) */
    size_t s = 5;
    memset(ssl, 0, 5);
    s += tlv(ssl + s, PROXY_PROTO_TLV_SSL_VERSION, "TLSv1.2", 7);
    ssl[7] = 8;
    b = 12 + tlv(body + 12, PROXY_PROTO_TLV_SSL, ssl, s);
    b += tlv(body + b, PROXY_PROTO_TLV_NOOP, "\0\0\0\0", 4);
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "past the SSL TLV");
    /* a truncated sub-TLV header */
    s = 5 + tlv(ssl + 5, PROXY_PROTO_TLV_SSL_VERSION, "TLSv1.2", 7);
    ssl[s++] = PROXY_PROTO_TLV_SSL_CN;
    b = 12 + tlv(body + 12, PROXY_PROTO_TLV_SSL, ssl, s);
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "past the SSL TLV");
    /* a repeated sub-TLV */
    s = 5 + tlv(ssl + 5, PROXY_PROTO_TLV_SSL_CN, "a", 1);
    s += tlv(ssl + s, PROXY_PROTO_TLV_SSL_CN, "b", 1);
    b = 12 + tlv(body + 12, PROXY_PROTO_TLV_SSL, ssl, s);
    expect_v2_bad(in, v2(in, 0x21, 0x11, body, b), 0, "sub-TLV repeated");
}

/* ---- never a byte past the header ---------------------------------------------------------------
 * The header ends flush against the guard page, yet the caller says more bytes follow: any read
 * past the header faults. */

static ssize_t parse_claiming_more(const void *s, size_t n, struct proxy_proto_result *r)
{
    return proxy_proto_parse(guarded(s, n), n + 4096, 0, r);
}

Test(bounds, never_reads_past_the_header)
{
    struct proxy_proto_result r;
    cr_expect_eq(parse_claiming_more(LIT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), &r), 32);
    cr_expect_eq(parse_claiming_more(LIT("PROXY UNKNOWN\r\n"), &r), 15);
    cr_expect_eq(parse_claiming_more(AWS, sizeof(AWS), &r), 100);
    uint8_t in[64];
    cr_expect_eq(parse_claiming_more(in, v2(in, 0x20, 0x00, NULL, 0), &r), 16);
    cr_expect_eq(parse_claiming_more(in, v2(in, 0x21, 0x11, IPV4_BLOCK, 12), &r), 28);
}

/* ---- writers ----------------------------------------------------------------------------------
 */

Test(write, v1_lines)
{
    char out[PROXY_PROTO_V1_MAX];
    struct sockaddr_storage s = sa("192.168.0.1", 56324), d = sa("192.168.0.11", 443);
    ssize_t n =
        proxy_proto_write_v1(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d);
    cr_assert_eq(n, 47);
    cr_expect(memcmp(out, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 47) == 0);
    cr_expect_eq(proxy_proto_write_v1(out, 47, (struct sockaddr *)&s, (struct sockaddr *)&d), 47);
    cr_expect_eq(proxy_proto_write_v1(out, 46, (struct sockaddr *)&s, (struct sockaddr *)&d),
                 -ENOSPC);
    s = sa("2001:db8::1", 0), d = sa("::1", 65535);
    n = proxy_proto_write_v1(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d);
    static const char l6[] = "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n";
    cr_assert_eq(n, (ssize_t)sizeof(l6) - 1);
    cr_expect(memcmp(out, l6, sizeof(l6) - 1) == 0);
    /* one of each: the IPv4 one mapped */
    s = sa("192.0.2.1", 1);
    n = proxy_proto_write_v1(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d);
    static const char lm[] = "PROXY TCP6 ::ffff:192.0.2.1 ::1 1 65535\r\n";
    cr_assert_eq(n, (ssize_t)sizeof(lm) - 1);
    cr_expect(memcmp(out, lm, sizeof(lm) - 1) == 0);
    /* health checks */
    cr_expect_eq(proxy_proto_write_v1(out, sizeof(out), NULL, NULL), 15);
    cr_expect(memcmp(out, "PROXY UNKNOWN\r\n", 15) == 0);
    cr_expect_eq(proxy_proto_write_v1(out, 14, NULL, NULL), -ENOSPC);
    /* refusals */
    struct sockaddr_un u = {.sun_family = AF_UNIX, .sun_path = "/x"};
    cr_expect_eq(
        proxy_proto_write_v1(out, sizeof(out), (struct sockaddr *)&u, (struct sockaddr *)&u),
        -EAFNOSUPPORT);
    cr_expect_eq(proxy_proto_write_v1(out, sizeof(out), (struct sockaddr *)&s, NULL), -EINVAL);
}

Test(write, v2_headers)
{
    uint8_t out[600], want[64];
    struct sockaddr_storage s = sa("192.0.2.1", 56324), d = sa("198.51.100.2", 443);
    ssize_t n = proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d,
                                     NULL, 0, 0);
    cr_assert_eq(n, 28);
    cr_expect(memcmp(out, want, v2(want, 0x21, 0x11, IPV4_BLOCK, 12)) == 0);
    cr_expect_eq(
        proxy_proto_write_v2(out, 27, (struct sockaddr *)&s, (struct sockaddr *)&d, NULL, 0, 0),
        -ENOSPC);
    /* LOCAL, for health checks */
    n = proxy_proto_write_v2(out, sizeof(out), NULL, NULL, NULL, 0, 0);
    cr_assert_eq(n, 16);
    cr_expect(memcmp(out, want, v2(want, 0x20, 0x00, NULL, 0)) == 0);
    struct proxy_proto_tlv t = {PROXY_PROTO_TLV_UNIQUE_ID, 3, "abc"};
    cr_expect_eq(proxy_proto_write_v2(out, sizeof(out), NULL, NULL, &t, 1, 0), -EINVAL);
    cr_expect_eq(proxy_proto_write_v2(out, 15, NULL, NULL, NULL, 0, 0), -ENOSPC);
    /* TLVs in order after the CRC, which checks */
    n = proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d, &t, 1,
                             PROXY_PROTO_WRITE_CRC32C);
    cr_assert_eq(n, 28 + 7 + 6);
    cr_expect_eq(out[28], PROXY_PROTO_TLV_CRC32C);
    cr_expect_eq(out[35], PROXY_PROTO_TLV_UNIQUE_ID);
    struct proxy_proto_result r;
    cr_assert_eq(parse(out, (size_t)n, &r), n, "%s", r.err_reason);
    cr_expect(r.crc32c);
    cr_expect(span_is(r.unique_id, "abc", 3));
    /* refusals */
    struct proxy_proto_tlv c = {PROXY_PROTO_TLV_CRC32C, 4, "\0\0\0\0"};
    cr_expect_eq(proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s,
                                      (struct sockaddr *)&d, &c, 1, 0),
                 -EINVAL);
    static char big[65535];
    struct proxy_proto_tlv huge = {0xe0, 65535 - 12 - 3, big};
    cr_expect_eq(proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s,
                                      (struct sockaddr *)&d, &huge, 1, 0),
                 -ENOSPC);
    huge.len++;
    cr_expect_eq(proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s,
                                      (struct sockaddr *)&d, &huge, 1, 0),
                 -EMSGSIZE);
    struct sockaddr_un u = {.sun_family = AF_UNIX, .sun_path = "/x"};
    cr_expect_eq(proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s,
                                      (struct sockaddr *)&u, NULL, 0, 0),
                 -EAFNOSUPPORT);
    cr_expect_eq(proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s, NULL, NULL, 0, 0),
                 -EINVAL);
}

/* ---- round trips ------------------------------------------------------------------------------
 */

static void round_trip(const char *src, unsigned sport, const char *dst, unsigned dport,
                       int want_family)
{
    struct sockaddr_storage s = sa(src, sport), d = sa(dst, dport);
    /* what the parser gives back: one of each family comes back as IPv6 */
    struct sockaddr_storage ws = s, wd = d;
    if (want_family == AF_INET6 && s.ss_family != d.ss_family) {
        char m[64];
        if (s.ss_family == AF_INET) {
            snprintf(m, sizeof(m), "::ffff:%s", src);
            ws = sa(m, sport);
        } else {
            snprintf(m, sizeof(m), "::ffff:%s", dst);
            wd = sa(m, dport);
        }
    }
    char out[128];
    struct proxy_proto_result r;
    ssize_t n =
        proxy_proto_write_v1(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d);
    cr_assert_gt(n, 0);
    cr_assert_eq(parse(out, (size_t)n, &r), n, "v1 %.*s: %s", (int)n, out, r.err_reason);
    cr_expect_eq(r.family, want_family);
    cr_expect(memcmp(&r.src, &ws, sizeof(ws)) == 0 && memcmp(&r.dst, &wd, sizeof(wd)) == 0,
              "v1 %s %s", src, dst);
    n = proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d, NULL,
                             0, PROXY_PROTO_WRITE_CRC32C);
    cr_assert_gt(n, 0);
    cr_assert_eq(parse(out, (size_t)n, &r), n, "v2: %s", r.err_reason);
    cr_expect_eq(r.family, want_family);
    cr_expect(r.crc32c);
    cr_expect(memcmp(&r.src, &ws, sizeof(ws)) == 0 && memcmp(&r.dst, &wd, sizeof(wd)) == 0,
              "v2 %s %s", src, dst);
}

Test(round_trip, addresses)
{
    round_trip("192.0.2.1", 56324, "198.51.100.2", 443, AF_INET);
    round_trip("0.0.0.0", 0, "255.255.255.255", 65535, AF_INET);
    round_trip("2001:db8::1", 1, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 65535, AF_INET6);
    round_trip("::", 0, "::1", 80, AF_INET6);
    round_trip("::ffff:10.0.0.1", 1000, "::ffff:10.0.0.2", 2000, AF_INET6);
    round_trip("10.0.0.1", 1000, "2001:db8::2", 2000, AF_INET6);
    round_trip("2001:db8::2", 2000, "10.0.0.1", 1000, AF_INET6);
}

Test(round_trip, health_checks)
{
    char out[64];
    struct proxy_proto_result r;
    ssize_t n = proxy_proto_write_v1(out, sizeof(out), NULL, NULL);
    cr_assert_eq(parse(out, (size_t)n, &r), n);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_UNKNOWN);
    n = proxy_proto_write_v2(out, sizeof(out), NULL, NULL, NULL, 0, 0);
    cr_assert_eq(parse(out, (size_t)n, &r), n);
    cr_expect_eq(r.command, PROXY_PROTO_CMD_LOCAL);
}

Test(round_trip, unix_and_tlvs)
{
    struct sockaddr_un s = {.sun_family = AF_UNIX}, d = {.sun_family = AF_UNIX};
    memset(s.sun_path, 'a', sizeof(s.sun_path)); /* all 108 bytes, no NUL */
    memcpy(d.sun_path, "\0abstract", 9);
    uint8_t ssl[32] = {PROXY_PROTO_CLIENT_SSL, 0, 0, 0, 0};
    size_t sl = 5 + tlv(ssl + 5, PROXY_PROTO_TLV_SSL_VERSION, "TLSv1.3", 7);
    struct proxy_proto_tlv t[] = {
        {PROXY_PROTO_TLV_ALPN, 8, "http/1.1"},
        {PROXY_PROTO_TLV_AUTHORITY, 4, "a.io"},
        {PROXY_PROTO_TLV_UNIQUE_ID, 2, "id"},
        {PROXY_PROTO_TLV_SSL, (uint16_t)sl, (const char *)ssl},
    };
    uint8_t out[512];
    ssize_t n = proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d,
                                     t, 4, PROXY_PROTO_WRITE_CRC32C);
    cr_assert_gt(n, 0);
    struct proxy_proto_result r;
    cr_assert_eq(parse(out, (size_t)n, &r), n, "%s", r.err_reason);
    cr_expect_eq(r.family, AF_UNIX);
    cr_expect(memcmp(((struct sockaddr_un *)&r.src)->sun_path, s.sun_path, 108) == 0);
    cr_expect(memcmp(((struct sockaddr_un *)&r.dst)->sun_path, d.sun_path, 108) == 0);
    cr_expect(r.crc32c);
    cr_expect(span_is(r.alpn, "http/1.1", 8));
    cr_expect(span_is(r.authority, "a.io", 4));
    cr_expect(span_is(r.unique_id, "id", 2));
    cr_expect(r.ssl.present && span_is(r.ssl.version, "TLSv1.3", 7));
    cr_expect_eq(feed_bytewise(out, (size_t)n, 0), n);
}
