/* libFuzzer target for http1_parse_request (and http1_split_own_request's bounds).
 *
 * Invariants checked on every input, with the default limits and with tiny ones (so 414/431 are
 * reached often): the return is -EAGAIN, -EBADMSG with a request status, or a head length within
 * the buffer; every span lies in the buffer (or is the static "/" or empty); names are tokens and
 * values are trimmed; and parsing a prefix first (then the whole with prev_len = the prefix) gives
 * exactly what one call on the whole gives. Buffers are exact-size heap copies so ASan sees any
 * read past the end. */
#include "fuzz_support.h"
#include "http/http1.h"

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Offset of a span in buf, or -1 for a span outside it (then it must be "" or the static "/"). */
static long span_off(const char *buf, size_t len, const char *p, size_t n)
{
    if (p >= buf && p <= buf + len) {
        CHECK(p + n <= buf + len);
        return p - buf;
    }
    CHECK(n == 0 || (n == 1 && p[0] == '/'));
    return -1 - (long)n;
}

static void check_request(const char *buf, size_t len, ssize_t r, const struct http1_request *q)
{
    if (r == -EAGAIN)
        return;
    if (r == -EBADMSG) {
        int s = q->err_status;
        CHECK(s == 400 || s == 414 || s == 431 || s == 505);
        CHECK(q->err_offset <= len);
        CHECK(q->err_reason != NULL);
        return;
    }
    CHECK(r > 0 && (size_t)r <= len);
    CHECK(buf[r - 1] == '\n');
    CHECK(q->rq.version == HTTP_V1_0 || q->rq.version == HTTP_V1_1);
    CHECK(q->rq.num_fields <= HTTP1_MAX_HEADERS);
    CHECK(q->rq.method_len > 0 && q->target_len > 0);
    span_off(buf, (size_t)r, q->rq.method, q->rq.method_len);
    span_off(buf, (size_t)r, q->target, q->target_len);
    span_off(buf, (size_t)r, q->rq.path, q->rq.path_len);
    span_off(buf, (size_t)r, q->rq.authority, q->rq.authority_len);
    span_off(buf, (size_t)r, q->rq.scheme, q->rq.scheme_len);
    CHECK(q->rq.protocol_len == 0 && q->rq.fields == q->headers);
    for (uint32_t i = 0; i < q->rq.method_len; i++)
        CHECK(is_tchar((unsigned char)q->rq.method[i]));
    for (size_t i = 0; i < q->rq.num_fields; i++) {
        const struct http_field *h = &q->headers[i];
        CHECK(h->name_len > 0);
        span_off(buf, (size_t)r, h->name, h->name_len);
        span_off(buf, (size_t)r, h->value, h->value_len);
        for (uint32_t j = 0; j < h->name_len; j++)
            CHECK(is_tchar((unsigned char)h->name[j]));
        for (uint32_t j = 0; j < h->value_len; j++) {
            unsigned char c = (unsigned char)h->value[j];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (h->value_len) {
            CHECK(h->value[0] != ' ' && h->value[0] != '\t');
            CHECK(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
        }
        CHECK(h->id < HTTP_F_COUNT);
    }
    if (q->rq.body == HTTP_BODY_STREAM)
        CHECK(q->rq.version == HTTP_V1_1);
    if (q->rq.body != HTTP_BODY_LENGTH)
        CHECK(q->rq.content_length == 0);
    CHECK(q->rq.content_length <= (uint64_t)INT64_MAX);
    if (q->rq.version == HTTP_V1_1)
        CHECK(http_field_find(q->headers, q->rq.num_fields, HTTP_F_HOST) >= 0);
    CHECK(!((q->rq.flags & HTTP1_MF_KEEP_ALIVE) && (q->rq.flags & HTTP1_MF_CONN_CLOSE)));
}

/* Both results describe the same message (spans compared by offset: the buffers differ). */
static void check_same(const char *ba, size_t la, ssize_t ra, const struct http1_request *a,
                       const char *bb, size_t lb, ssize_t rb, const struct http1_request *b)
{
    CHECK(ra == rb);
    if (ra == -EBADMSG) {
        CHECK(a->err_status == b->err_status);
        CHECK(a->err_offset == b->err_offset);
        return;
    }
    if (ra < 0)
        return;
    CHECK(a->rq.flags == b->rq.flags && a->rq.body == b->rq.body &&
          a->rq.content_length == b->rq.content_length);
    CHECK(a->rq.version == b->rq.version && a->rq.num_fields == b->rq.num_fields);
    CHECK(span_off(ba, la, a->rq.method, a->rq.method_len) ==
          span_off(bb, lb, b->rq.method, b->rq.method_len));
    CHECK(span_off(ba, la, a->target, a->target_len) == span_off(bb, lb, b->target, b->target_len));
    CHECK(span_off(ba, la, a->rq.path, a->rq.path_len) ==
          span_off(bb, lb, b->rq.path, b->rq.path_len));
    CHECK(span_off(ba, la, a->rq.authority, a->rq.authority_len) ==
          span_off(bb, lb, b->rq.authority, b->rq.authority_len));
    CHECK(a->rq.method_len == b->rq.method_len && a->target_len == b->target_len);
    CHECK(a->rq.path_len == b->rq.path_len && a->rq.authority_len == b->rq.authority_len);
    for (size_t i = 0; i < a->rq.num_fields; i++) {
        const struct http_field *x = &a->headers[i], *y = &b->headers[i];
        CHECK(x->name - ba == y->name - bb && x->name_len == y->name_len);
        CHECK(x->value - ba == y->value - bb && x->value_len == y->value_len);
        CHECK(x->id == y->id && x->flags == y->flags);
    }
}

static struct http1_request whole, part;

static void run(const char *buf, size_t size, const struct http1_limits *lim,
                const size_t splits[FUZZ_NSPLITS])
{
    ssize_t rw = http1_parse_request(buf, size, 0, lim, &whole);
    check_request(buf, size, rw, &whole);

    /* prefix, then the whole with prev_len = prefix length */
    for (int k = 0; k < FUZZ_NSPLITS; k++) {
        size_t s = splits[k];
        char *pre = fuzz_dup(buf, s);
        ssize_t rp = http1_parse_request(pre, s, 0, lim, &part);
        check_request(pre, s, rp, &part);
        if (rp == -EAGAIN) {
            rp = http1_parse_request(buf, size, s, lim, &part);
            check_same(buf, size, rw, &whole, buf, size, rp, &part);
        } else {
            check_same(buf, size, rw, &whole, pre, s, rp, &part);
        }
        free(pre);
    }

    /* one byte at a time, for small inputs */
    if (size <= 512) {
        ssize_t r = -EAGAIN;
        size_t i, prev = 0;
        for (i = 1; i <= size && r == -EAGAIN; i++) {
            r = http1_parse_request(buf, i, prev, lim, &part);
            prev = i;
        }
        if (r == -EAGAIN) {
            CHECK(rw == -EAGAIN);
        } else {
            check_same(buf, size, rw, &whole, buf, size, r, &part);
            if (r > 0)
                CHECK((size_t)r == i - 1);
        }
    }
}

/* http1_split_own_request (meant for golb's own heads) on any bytes: -1 or a length within the
 * buffer, every span inside it. */
static void check_own_split(const char *buf, size_t size)
{
    ssize_t r = http1_split_own_request(buf, size, &part);
    CHECK(r == -1 || (r > 0 && (size_t)r <= size));
    if (r < 0)
        return;
    CHECK(span_off(buf, (size_t)r, part.rq.method, part.rq.method_len) >= 0);
    CHECK(span_off(buf, (size_t)r, part.target, part.target_len) >= 0);
    CHECK(part.rq.num_fields <= HTTP1_MAX_HEADERS);
    for (size_t i = 0; i < part.rq.num_fields; i++) {
        CHECK(span_off(buf, (size_t)r, part.headers[i].name, part.headers[i].name_len) >= 0);
        CHECK(span_off(buf, (size_t)r, part.headers[i].value, part.headers[i].value_len) >= 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup(data, size);
    size_t splits[FUZZ_NSPLITS];
    fuzz_splits(data, size, splits);
    static const struct http1_limits tiny = {.max_head = 96, .max_request_line = 40};
    run(buf, size, NULL, splits);
    run(buf, size, &tiny, splits);
    check_own_split(buf, size);
    free(buf);
    return 0;
}
