/* libFuzzer target for http1_parse_response.
 *
 * Invariants: the return is -EAGAIN, -EBADMSG with status 502, or a head length within the buffer;
 * spans lie in the buffer; a HEAD response has no body and otherwise the same answer; a CLOSE body
 * is never keep-alive; parsing a prefix then the whole (prev_len = prefix) gives what one call on
 * the whole gives. Buffers are exact-size heap copies so ASan sees any read past the end. */
#include "fuzz_support.h"
#include "http/http1.h"

static void in_buf(const char *buf, size_t len, const char *p, size_t n)
{
    CHECK(p >= buf && p + n <= buf + len);
}

static void check_response(const char *buf, size_t len, ssize_t r, const struct http1_response *s)
{
    if (r == -EAGAIN)
        return;
    if (r == -EBADMSG) {
        CHECK(s->err_status == 502 && s->err_offset <= len && s->err_reason);
        return;
    }
    CHECK(r > 0 && (size_t)r <= len && buf[r - 1] == '\n');
    CHECK(s->status >= 100 && s->status <= 999);
    CHECK(s->minor_version == 0 || s->minor_version == 1);
    CHECK(s->num_headers <= HTTP1_MAX_HEADERS);
    in_buf(buf, (size_t)r, s->reason, s->reason_len);
    for (size_t i = 0; i < s->num_headers; i++) {
        in_buf(buf, (size_t)r, s->headers[i].name, s->headers[i].name_len);
        in_buf(buf, (size_t)r, s->headers[i].value, s->headers[i].value_len);
        CHECK(s->headers[i].name_len > 0);
    }
    if (s->body == HTTP1_BODY_CLOSE)
        CHECK(!(s->flags & HTTP1_MF_KEEP_ALIVE));
    if (s->status < 200 || s->status == 204 || s->status == 304)
        CHECK(s->body == HTTP1_BODY_NONE);
    if (s->body != HTTP1_BODY_LENGTH)
        CHECK(s->content_length == 0);
}

static void check_same(const char *ba, ssize_t ra, const struct http1_response *a, const char *bb,
                       ssize_t rb, const struct http1_response *b)
{
    CHECK(ra == rb);
    if (ra == -EBADMSG)
        CHECK(a->err_offset == b->err_offset);
    if (ra <= 0)
        return;
    CHECK(a->status == b->status && a->minor_version == b->minor_version);
    CHECK(a->flags == b->flags && a->body == b->body && a->content_length == b->content_length);
    CHECK(a->reason - ba == b->reason - bb && a->reason_len == b->reason_len);
    CHECK(a->num_headers == b->num_headers);
    for (size_t i = 0; i < a->num_headers; i++) {
        CHECK(a->headers[i].name - ba == b->headers[i].name - bb);
        CHECK(a->headers[i].value_len == b->headers[i].value_len);
        CHECK(a->headers[i].id == b->headers[i].id && a->headers[i].flags == b->headers[i].flags);
    }
}

static struct http1_response whole, part, head;

static void run(const char *buf, size_t size, size_t max_head, const size_t splits[FUZZ_NSPLITS])
{
    ssize_t rw = http1_parse_response(buf, size, 0, max_head, false, &whole);
    check_response(buf, size, rw, &whole);

    ssize_t rh = http1_parse_response(buf, size, 0, max_head, true, &head);
    check_response(buf, size, rh, &head);
    CHECK(rh == rw);
    if (rh > 0)
        CHECK(head.body == HTTP1_BODY_NONE && head.status == whole.status);

    for (int k = 0; k < FUZZ_NSPLITS; k++) {
        size_t s = splits[k];
        char *pre = fuzz_dup(buf, s);
        ssize_t rp = http1_parse_response(pre, s, 0, max_head, false, &part);
        check_response(pre, s, rp, &part);
        if (rp == -EAGAIN) {
            rp = http1_parse_response(buf, size, s, max_head, false, &part);
            check_same(buf, rw, &whole, buf, rp, &part);
        } else {
            check_same(buf, rw, &whole, pre, rp, &part);
        }
        free(pre);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup(data, size);
    size_t splits[FUZZ_NSPLITS];
    fuzz_splits(data, size, splits);
    run(buf, size, 0, splits);
    run(buf, size, 80, splits);
    free(buf);
    return 0;
}
