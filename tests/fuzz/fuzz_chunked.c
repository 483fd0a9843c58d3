/* libFuzzer target for http1_chunked_decode.
 *
 * Input: two bytes choosing a split point, then the body bytes. The body is decoded in one piece,
 * in two pieces split at the chosen point, and (when short) one byte at a time; all three must
 * deliver the same data bytes and the same outcome (done / needs more / error), and when not an
 * error consume the same number of bytes. Each call consumes within its input, never returns 0
 * before done, and after done returns 0. Pieces are exact-size heap copies so ASan sees any read
 * past the end. The trailer section, told apart from the other framing as the exchange does (by
 * line_len while http1_chunked_in_trailers), is the same whatever the split, and once done it
 * ends with CRLF and splits (http1_parse_trailers) into fields inside it. */
#include "fuzz_support.h"
#include "http/http1.h"

enum { NEED_MORE = 0, DONE = 1, FAILED = -1 };

struct result {
    uint8_t *data;
    size_t data_len;
    size_t consumed;
    int outcome;
    char trailers[HTTP1_TRAILERS_MAX + 1];
    size_t trailers_len;
};

/* Decodes body[0..len) given as pieces ending at the offsets in cuts[] (the last is len). */
static void decode(const uint8_t *body, size_t len, const size_t *cuts, size_t ncuts,
                   struct result *res)
{
    struct http1_chunked c = {0};
    size_t start = 0;
    res->data_len = res->consumed = res->trailers_len = 0;
    res->outcome = NEED_MORE;
    for (size_t k = 0; k < ncuts; k++) {
        size_t plen = cuts[k] - start;
        char *piece = fuzz_dup(body + start, plen);
        size_t used = 0;
        while (used < plen) {
            bool is_data = true;
            size_t before = http1_chunked_in_trailers(&c) ? c.line_len : 0;
            ssize_t n = http1_chunked_decode(&c, piece + used, plen - used, &is_data);
            if (n == -EBADMSG) {
                CHECK(!http1_chunked_done(&c));
                CHECK(http1_chunked_decode(&c, piece, plen, &is_data) == -EBADMSG);
                res->outcome = FAILED;
                free(piece);
                return;
            }
            if (n == 0) {
                CHECK(http1_chunked_done(&c) && !is_data);
                break;
            }
            CHECK(n > 0 && (size_t)n <= plen - used);
            if (is_data) {
                memcpy(res->data + res->data_len, piece + used, (size_t)n);
                res->data_len += (size_t)n;
            } else if (http1_chunked_in_trailers(&c) || http1_chunked_done(&c)) {
                size_t t = c.line_len - before; /* the run's last bytes */
                CHECK(t <= (size_t)n && res->trailers_len + t <= HTTP1_TRAILERS_MAX);
                memcpy(res->trailers + res->trailers_len, piece + used + (size_t)n - t, t);
                res->trailers_len += t;
            }
            used += (size_t)n;
            res->consumed += (size_t)n;
        }
        free(piece);
        if (http1_chunked_done(&c))
            break;
        start = cuts[k];
    }
    if (http1_chunked_done(&c)) {
        bool is_data = true;
        CHECK(http1_chunked_decode(&c, (const char *)body, len, &is_data) == 0 && !is_data);
        res->outcome = DONE;
        const char *t = res->trailers;
        size_t tl = res->trailers_len;
        CHECK(tl >= 2 && t[tl - 2] == '\r' && t[tl - 1] == '\n');
        struct http_field f[HTTP1_MAX_HEADERS];
        size_t nf = http1_parse_trailers(t, tl, f, HTTP1_MAX_HEADERS);
        CHECK(nf <= HTTP1_MAX_HEADERS);
        for (size_t i = 0; i < nf; i++) {
            CHECK(f[i].name_len > 0 && f[i].name >= t && f[i].name + f[i].name_len <= t + tl);
            CHECK(f[i].value >= t && f[i].value + f[i].value_len <= t + tl);
            CHECK(!memchr(f[i].name, ':', f[i].name_len));
            CHECK(!memchr(f[i].value, '\n', f[i].value_len));
        }
    }
}

static void check_same(const struct result *a, const struct result *b)
{
    CHECK(a->outcome == b->outcome);
    if (a->outcome == DONE)
        CHECK(a->trailers_len == b->trailers_len &&
              !memcmp(a->trailers, b->trailers, a->trailers_len));
    CHECK(a->data_len == b->data_len && !memcmp(a->data, b->data, a->data_len));
    if (a->outcome != FAILED)
        CHECK(a->consumed == b->consumed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t len = size - 2;
    const uint8_t *body = data + 2;
    size_t at = len ? ((size_t)data[0] << 8 | data[1]) % (len + 1) : 0;
    static uint8_t d1[1 << 17], d2[1 << 17], d3[1 << 17];
    static struct result one, two, bytes;
    one.data = d1;
    two.data = d2;
    bytes.data = d3;
    CHECK(len <= sizeof(d1));

    size_t cut_one[1] = {len};
    decode(body, len, cut_one, 1, &one);
    CHECK(one.consumed <= len && one.data_len <= one.consumed);
    if (one.outcome == NEED_MORE)
        CHECK(one.consumed == len);

    size_t cut_two[2] = {at, len};
    decode(body, len, cut_two, 2, &two);
    check_same(&one, &two);

    if (len <= 2048) {
        static size_t cuts[2048];
        for (size_t i = 0; i < len; i++)
            cuts[i] = i + 1;
        decode(body, len, cuts, len, &bytes);
        check_same(&one, &bytes);
    }
    return 0;
}
