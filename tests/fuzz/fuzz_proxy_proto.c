/* libFuzzer target for proxy_proto_parse (PROXY protocol v1 and v2).
 *
 * Invariants checked on every input, with the default v2 bound and with a tiny one (64 bytes, so
 * "longer than the limit" is reached often): the return is -EAGAIN (only below the version's
 * bound), -EBADMSG with a reason, or a header length within the input (a v1 line ending in CRLF
 * within 107 bytes, a v2 header of exactly 16 + its length field, within the bound); every span
 * and TLV area lies inside the header, and iterating the TLV areas never fails; proxy_proto_detect
 * agrees with the version. Parsing a prefix gives -EAGAIN or exactly what parsing the whole gives
 * (so does feeding small inputs one byte at a time). Round trips: the addresses parsed, written
 * back with proxy_proto_write_v1 (IPv4/IPv6) and proxy_proto_write_v2 (with the parsed TLVs and a
 * CRC32C), parse back the same, with the same TLV values; LOCAL and UNKNOWN come back as
 * themselves. Buffers are exact-size heap copies so ASan sees any read past the end. */
#include "fuzz_support.h"
#include "net/proxy_proto.h"

#include <sys/socket.h>

static void span_in(const char *buf, size_t r, struct proxy_proto_span s)
{
    if (s.ptr)
        CHECK(s.ptr >= buf && s.ptr + s.len <= buf + r);
}

/* Iterates area[0..len), which the parser checked: never fails, covers it exactly. */
static size_t count_tlvs(const char *area, size_t len)
{
    struct proxy_proto_tlv t;
    size_t pos = 0, n = 0;
    int rc;
    while ((rc = proxy_proto_tlv_next(area, len, &pos, &t)) == 1) {
        CHECK(t.value >= area + 3 && t.value + t.len <= area + len);
        n++;
    }
    CHECK(rc == 0 && pos == len);
    return n;
}

static void check_result(const char *buf, size_t len, size_t max, ssize_t r,
                         const struct proxy_proto_result *q)
{
    int v = proxy_proto_detect(buf, len);
    if (r == -EAGAIN) {
        CHECK(v == -EAGAIN || v == 1 || v == 2);
        if (v == 1)
            CHECK(len < PROXY_PROTO_V1_MAX);
        if (v == 2)
            CHECK(len < max);
        return;
    }
    if (r == -EBADMSG) {
        CHECK(q->err_reason != NULL && q->err_reason[0]);
        return;
    }
    CHECK(r > 0 && (size_t)r <= len);
    CHECK(v == q->version);
    if (q->version == 1) {
        CHECK(r <= PROXY_PROTO_V1_MAX && buf[r - 2] == '\r' && buf[r - 1] == '\n');
        CHECK(memchr(buf, '\n', (size_t)r - 1) == NULL);
        CHECK(q->command == PROXY_PROTO_CMD_PROXY || q->command == PROXY_PROTO_CMD_UNKNOWN);
        CHECK(q->tlvs == NULL && !q->ssl.present && !q->crc32c);
    } else {
        CHECK(q->version == 2);
        const uint8_t *h = (const uint8_t *)buf;
        CHECK((size_t)r == 16u + (size_t)(h[14] << 8 | h[15]) && (size_t)r <= max);
        CHECK(q->command == PROXY_PROTO_CMD_PROXY || q->command == PROXY_PROTO_CMD_LOCAL);
    }
    if (q->command == PROXY_PROTO_CMD_PROXY) {
        CHECK(q->family == AF_INET || q->family == AF_INET6 || q->family == AF_UNIX ||
              (q->family == AF_UNSPEC && q->version == 2));
        CHECK(q->src.ss_family == q->family && q->dst.ss_family == q->family);
        CHECK(q->family == AF_UNSPEC ? q->socktype == 0
                                     : q->socktype == SOCK_STREAM || q->socktype == SOCK_DGRAM);
    } else {
        CHECK(q->family == AF_UNSPEC && q->src.ss_family == AF_UNSPEC && q->tlvs == NULL);
    }
    if (q->tlvs) {
        CHECK(q->tlvs >= buf + 16 && q->tlvs + q->tlvs_len == buf + r);
        count_tlvs(q->tlvs, q->tlvs_len);
    }
    span_in(buf, (size_t)r, q->alpn);
    span_in(buf, (size_t)r, q->authority);
    span_in(buf, (size_t)r, q->unique_id);
    span_in(buf, (size_t)r, q->netns);
    if (q->unique_id.ptr)
        CHECK(q->unique_id.len <= PROXY_PROTO_UNIQUE_ID_MAX);
    if (q->ssl.present) {
        CHECK(q->ssl.tlvs >= buf && q->ssl.tlvs + q->ssl.tlvs_len <= buf + r);
        count_tlvs(q->ssl.tlvs, q->ssl.tlvs_len);
        span_in(buf, (size_t)r, q->ssl.version);
        span_in(buf, (size_t)r, q->ssl.cn);
        span_in(buf, (size_t)r, q->ssl.cipher);
        span_in(buf, (size_t)r, q->ssl.sig_alg);
        span_in(buf, (size_t)r, q->ssl.key_alg);
    }
}

/* Both results describe the same header (spans compared by offset: the buffers may differ). */
static void check_same(const char *ba, ssize_t ra, const struct proxy_proto_result *a,
                       const char *bb, ssize_t rb, const struct proxy_proto_result *b)
{
    CHECK(ra == rb);
    if (ra == -EBADMSG)
        CHECK(strcmp(a->err_reason, b->err_reason) == 0);
    if (ra <= 0)
        return;
    CHECK(a->version == b->version && a->command == b->command && a->family == b->family);
    CHECK(a->socktype == b->socktype && a->crc32c == b->crc32c);
    CHECK(memcmp(&a->src, &b->src, sizeof(a->src)) == 0);
    CHECK(memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0);
    CHECK((a->tlvs ? a->tlvs - ba : -1) == (b->tlvs ? b->tlvs - bb : -1));
    CHECK(a->tlvs_len == b->tlvs_len && a->ssl.present == b->ssl.present);
    CHECK((a->unique_id.ptr ? a->unique_id.ptr - ba : -1) ==
          (b->unique_id.ptr ? b->unique_id.ptr - bb : -1));
}

static bool same_span(struct proxy_proto_span a, struct proxy_proto_span b)
{
    if (!a.ptr || !b.ptr)
        return !a.ptr && !b.ptr;
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static uint8_t out[PROXY_PROTO_V2_LIMIT];
static struct proxy_proto_result whole, part, back;

/* What was parsed, written again and parsed back, says the same. */
static void round_trip(const struct proxy_proto_result *q)
{
    ssize_t n, r;
    if (q->command != PROXY_PROTO_CMD_PROXY) {
        n = proxy_proto_write_v1((char *)out, sizeof(out), NULL, NULL);
        CHECK(n > 0 && proxy_proto_parse(out, (size_t)n, 0, &back) == n);
        CHECK(back.command == PROXY_PROTO_CMD_UNKNOWN);
        n = proxy_proto_write_v2(out, sizeof(out), NULL, NULL, NULL, 0, 0);
        CHECK(n > 0 && proxy_proto_parse(out, (size_t)n, 0, &back) == n);
        CHECK(back.command == PROXY_PROTO_CMD_LOCAL);
        return;
    }
    if (q->family == AF_UNSPEC)
        return; /* no addresses to write */
    const struct sockaddr *s = (const struct sockaddr *)&q->src;
    const struct sockaddr *d = (const struct sockaddr *)&q->dst;

    n = proxy_proto_write_v1((char *)out, PROXY_PROTO_V1_MAX, s, d);
    if (q->family == AF_UNIX) {
        CHECK(n == -EAFNOSUPPORT);
    } else {
        CHECK(n > 0);
        r = proxy_proto_parse(out, (size_t)n, 0, &back);
        CHECK(r == n && back.command == PROXY_PROTO_CMD_PROXY && back.family == q->family);
        CHECK(memcmp(&back.src, &q->src, sizeof(q->src)) == 0);
        CHECK(memcmp(&back.dst, &q->dst, sizeof(q->dst)) == 0);
    }

    /* v2 with every TLV but the CRC (the writer adds its own) */
    size_t cap = q->tlvs_len / 3 + 1, nt = 0, pos = 0;
    struct proxy_proto_tlv *tl = malloc(cap * sizeof(*tl)), t;
    CHECK(tl);
    while (q->tlvs && proxy_proto_tlv_next(q->tlvs, q->tlvs_len, &pos, &t) == 1)
        if (t.type != PROXY_PROTO_TLV_CRC32C)
            tl[nt++] = t;
    n = proxy_proto_write_v2(out, sizeof(out), s, d, tl, nt, PROXY_PROTO_WRITE_CRC32C);
    free(tl);
    CHECK(n > 0);
    r = proxy_proto_parse(out, (size_t)n, PROXY_PROTO_V2_LIMIT, &back);
    CHECK(r == n && back.command == PROXY_PROTO_CMD_PROXY && back.family == q->family);
    CHECK(back.crc32c);
    CHECK(memcmp(&back.src, &q->src, sizeof(q->src)) == 0);
    CHECK(memcmp(&back.dst, &q->dst, sizeof(q->dst)) == 0);
    CHECK(same_span(back.alpn, q->alpn) && same_span(back.authority, q->authority));
    CHECK(same_span(back.unique_id, q->unique_id) && same_span(back.netns, q->netns));
    CHECK(back.ssl.present == q->ssl.present);
    if (q->ssl.present) {
        CHECK(back.ssl.client == q->ssl.client && back.ssl.verify == q->ssl.verify);
        CHECK(same_span(back.ssl.version, q->ssl.version) && same_span(back.ssl.cn, q->ssl.cn));
        CHECK(same_span(back.ssl.cipher, q->ssl.cipher));
    }
}

static void run(const char *buf, size_t size, size_t max, const size_t splits[FUZZ_NSPLITS])
{
    ssize_t rw = proxy_proto_parse(buf, size, max, &whole);
    check_result(buf, size, max ? max : PROXY_PROTO_V2_DEFAULT_MAX, rw, &whole);

    /* a prefix gives -EAGAIN or the whole's answer */
    for (int k = 0; k < FUZZ_NSPLITS; k++) {
        size_t s = splits[k];
        char *pre = fuzz_dup(buf, s);
        ssize_t rp = proxy_proto_parse(pre, s, max, &part);
        check_result(pre, s, max ? max : PROXY_PROTO_V2_DEFAULT_MAX, rp, &part);
        if (rp != -EAGAIN)
            check_same(buf, rw, &whole, pre, rp, &part);
        else
            CHECK(rw < 0 || (size_t)rw > s);
        free(pre);
    }

    /* one byte at a time, for small inputs */
    if (size <= 300) {
        ssize_t r = -EAGAIN;
        size_t i;
        for (i = 1; i <= size && r == -EAGAIN; i++)
            r = proxy_proto_parse(buf, i, max, &part);
        check_same(buf, rw, &whole, buf, r, &part);
        if (r > 0)
            CHECK((size_t)r == i - 1);
    }

    if (rw > 0)
        round_trip(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup(data, size);
    size_t splits[FUZZ_NSPLITS];
    fuzz_splits(data, size, splits);
    run(buf, size, 0, splits);
    run(buf, size, 64, splits);
    free(buf);
    return 0;
}
