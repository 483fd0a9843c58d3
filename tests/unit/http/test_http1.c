/* Unit tests for http1: request/response heads, chunked decoding, limits, and the shared vector
 * file tests/vectors/requests.vec. Every input is parsed from a buffer that ends flush against a
 * PROT_NONE page (picohttpparser's technique), so reading one byte too far faults the test. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http/http1.h"

/* ---- guard pages ------------------------------------------------------------------------------
 */

static char *guard_map;
static size_t guard_size;

/* Copies s[0..n) so that it ends right before an inaccessible page. The copy stays valid until
 * the next call. */
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

static ssize_t parse_req(const char *s, size_t n, struct http1_request *r)
{
    return http1_parse_request(guarded(s, n), n, 0, NULL, r);
}

static ssize_t parse_resp(const char *s, size_t n, bool head, struct http1_response *r)
{
    return http1_parse_response(guarded(s, n), n, 0, 0, head, r);
}

static bool span_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

#define EXPECT_SPAN(p, n, want)                                                                    \
    cr_expect(span_is((p), (n), (want)), "%s is \"%.*s\", want \"%s\"", #p, (int)(n), (p), (want))

/* ---- valid requests: exact spans ---------------------------------------------------------------
 */

Test(request, simple_get_spans)
{
    static const char in[] = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                             "User-Agent: t/1.0\r\nAccept: */*\r\n\r\n";
    struct http1_request r;
    ssize_t n = parse_req(LIT(in), &r);
    cr_assert_eq(n, (ssize_t)sizeof(in) - 1, "n=%zd (%s)", n, r.err_reason);
    EXPECT_SPAN(r.rq.method, r.rq.method_len, "GET");
    EXPECT_SPAN(r.target, r.target_len, "/index.html?q=1");
    EXPECT_SPAN(r.rq.path, r.rq.path_len, "/index.html?q=1");
    EXPECT_SPAN(r.rq.authority, r.rq.authority_len, "example.com");
    cr_expect_eq(r.rq.version, HTTP_V1_1);
    cr_expect_eq(r.rq.flags, HTTP1_MF_KEEP_ALIVE);
    cr_expect_eq(r.rq.body, HTTP_BODY_NONE);
    cr_assert_eq(r.rq.num_fields, 3);
    EXPECT_SPAN(r.headers[0].name, r.headers[0].name_len, "Host");
    EXPECT_SPAN(r.headers[0].value, r.headers[0].value_len, "example.com");
    cr_expect_eq(r.headers[0].id, HTTP_F_HOST);
    EXPECT_SPAN(r.headers[1].name, r.headers[1].name_len, "User-Agent");
    EXPECT_SPAN(r.headers[1].value, r.headers[1].value_len, "t/1.0");
    cr_expect_eq(r.headers[1].id, HTTP_F_OTHER);
    cr_expect_eq(r.headers[1].flags, 0);
    EXPECT_SPAN(r.headers[2].value, r.headers[2].value_len, "*/*");
    cr_expect_eq(r.err_status, 0);
}

Test(request, bare_lf_and_ows_trimming)
{
    static const char in[] = "POST /u HTTP/1.1\nHost:  a.example:8080 \t\nX-Empty:\n"
                             "X-In:\ta \t b\t\r\nContent-Length: 005\n\nhello";
    struct http1_request r;
    ssize_t n = parse_req(LIT(in), &r);
    cr_assert_eq(n, (ssize_t)sizeof(in) - 1 - 5, "n=%zd (%s)", n, r.err_reason);
    cr_assert_eq(r.rq.num_fields, 4);
    EXPECT_SPAN(r.headers[0].value, r.headers[0].value_len, "a.example:8080");
    EXPECT_SPAN(r.rq.authority, r.rq.authority_len, "a.example:8080");
    cr_expect_eq(r.headers[1].value_len, 0);
    EXPECT_SPAN(r.headers[2].value, r.headers[2].value_len, "a \t b");
    cr_expect_eq(r.rq.body, HTTP_BODY_LENGTH);
    cr_expect_eq(r.rq.content_length, 5);
}

Test(request, leading_empty_lines_are_consumed)
{
    static const char in[] = "\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http1_request r;
    ssize_t n = parse_req(LIT(in), &r);
    cr_assert_eq(n, (ssize_t)sizeof(in) - 1);
    EXPECT_SPAN(r.rq.method, r.rq.method_len, "GET");
}

Test(request, http10)
{
    struct http1_request r;
    cr_assert_gt(parse_req(LIT("GET / HTTP/1.0\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.version, HTTP_V1_0);
    cr_expect_eq(r.rq.flags, 0);
    cr_expect_eq(r.rq.authority_len, 0);
    cr_assert_gt(parse_req(LIT("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.flags, HTTP1_MF_KEEP_ALIVE);
    cr_assert_gt(parse_req(LIT("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.flags, HTTP1_MF_CONN_CLOSE);
    /* Upgrade and 100-continue are HTTP/1.1 only */
    cr_assert_gt(parse_req(LIT("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: x\r\n"
                               "Expect: 100-continue\r\n\r\n"),
                           &r),
                 0);
    cr_expect_eq(r.rq.flags, 0);
}

Test(request, connection_flags_and_listed_fields)
{
    static const char in[] =
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, X-Hop\r\n"
        "connection: CLOSE\r\nUpgrade: websocket\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
        "x-hop: 2\r\nX-Other: 3\r\n\r\n";
    struct http1_request r;
    cr_assert_gt(parse_req(LIT(in), &r), 0, "%s", r.err_reason);
    cr_expect_eq(r.rq.flags, HTTP1_MF_CONN_CLOSE | HTTP1_MF_UPGRADE);
    cr_assert_eq(r.rq.num_fields, 8);
    cr_expect_eq(r.headers[1].id, HTTP_F_CONNECTION);
    cr_expect_eq(r.headers[1].flags, HTTP_FF_HOP_BY_HOP);
    cr_expect_eq(r.headers[3].id, HTTP_F_UPGRADE);
    cr_expect_eq(r.headers[3].flags, HTTP_FF_HOP_BY_HOP | HTTP_FF_CONN_LISTED);
    cr_expect_eq(r.headers[4].flags, HTTP_FF_CONN_LISTED);
    cr_expect_eq(r.headers[5].id, HTTP_F_KEEP_ALIVE);
    cr_expect_eq(r.headers[5].flags, HTTP_FF_HOP_BY_HOP);
    cr_expect_eq(r.headers[6].flags, HTTP_FF_CONN_LISTED);
    cr_expect_eq(r.headers[7].flags, 0);
    /* Upgrade without the Connection option is not an upgrade */
    cr_assert_gt(parse_req(LIT("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.flags, HTTP1_MF_KEEP_ALIVE);
}

Test(request, header_ids_case_insensitive)
{
    static const struct {
        const char *name;
        int id;
        int flags;
    } t[] = {
        {"cOnNeCtIoN", HTTP_F_CONNECTION, HTTP_FF_HOP_BY_HOP},
        {"CONTENT-LENGTH", HTTP_F_CONTENT_LENGTH, 0},
        {"transfer-encoding", HTTP_F_TRANSFER_ENCODING, 0},
        {"HOST", HTTP_F_HOST, 0},
        {"Keep-Alive", HTTP_F_KEEP_ALIVE, HTTP_FF_HOP_BY_HOP},
        {"Proxy-Connection", HTTP_F_PROXY_CONNECTION, HTTP_FF_HOP_BY_HOP},
        {"TE", HTTP_F_TE, HTTP_FF_HOP_BY_HOP},
        {"Trailer", HTTP_F_TRAILER, HTTP_FF_HOP_BY_HOP},
        {"UPGRADE", HTTP_F_UPGRADE, HTTP_FF_HOP_BY_HOP},
        {"Expect", HTTP_F_EXPECT, 0},
        {"X-Forwarded-For", HTTP_F_X_FORWARDED_FOR, 0},
        {"x-forwarded-proto", HTTP_F_X_FORWARDED_PROTO, 0},
        {"X-FORWARDED-HOST", HTTP_F_X_FORWARDED_HOST, 0},
        {"HTTP2-Settings", HTTP_F_HTTP2_SETTINGS, HTTP_FF_HOP_BY_HOP},
        {"Forwarded", HTTP_F_FORWARDED, 0},
        {"X-REAL-IP", HTTP_F_X_REAL_IP, 0},
        {"Forwardee", HTTP_F_OTHER, 0},
        {"X-Real-Ix", HTTP_F_OTHER, 0},
        {"Http2-Settingz", HTTP_F_OTHER, 0},
        {"Hosts", HTTP_F_OTHER, 0},
        {"Te_", HTTP_F_OTHER, 0},
        {"Connectio~", HTTP_F_OTHER, 0},
        {"Upgrad^", HTTP_F_OTHER, 0},
        {"X-Forwarded-Fo^", HTTP_F_OTHER, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char in[256];
        const char *v = !strcasecmp(t[i].name, "Transfer-Encoding") ? "chunked"
                        : !strcasecmp(t[i].name, "Content-Length")  ? "0"
                        : !strcasecmp(t[i].name, "Host")            ? "h"
                                                                    : "x";
        int len = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\n%s%s: %s\r\n\r\n",
                           t[i].id == HTTP_F_HOST ? "" : "Host: h\r\n", t[i].name, v);
        struct http1_request r;
        ssize_t n = parse_req(in, (size_t)len, &r);
        cr_assert_gt(n, 0, "%s: %s", t[i].name, r.err_reason);
        const struct http_field *h = &r.headers[r.rq.num_fields - 1];
        cr_expect_eq(h->id, t[i].id, "%s: id %d", t[i].name, h->id);
        cr_expect_eq(h->flags, t[i].flags, "%s: flags %d", t[i].name, h->flags);
        if (t[i].id != HTTP_F_OTHER)
            cr_expect_eq(http_field_find(r.headers, r.rq.num_fields, (enum http_field_id)t[i].id),
                         (int)r.rq.num_fields - 1);
    }
}

Test(request, framing)
{
    struct http1_request r;
    cr_assert_gt(parse_req(LIT("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip,"
                               " CHUNKED\r\n\r\n"),
                           &r),
                 0);
    cr_expect_eq(r.rq.body, HTTP_BODY_STREAM);
    cr_assert_gt(parse_req(LIT("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,gzip,,\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"),
                           &r),
                 0);
    cr_expect_eq(r.rq.body, HTTP_BODY_STREAM);
    cr_assert_gt(parse_req(LIT("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.body, HTTP_BODY_LENGTH);
    cr_expect_eq(r.rq.content_length, 0);
    cr_assert_gt(parse_req(LIT("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7 , 007\r\n"
                               "Content-Length: 7\r\n\r\n"),
                           &r),
                 0);
    cr_expect_eq(r.rq.content_length, 7);
    cr_assert_gt(parse_req(LIT("POST / HTTP/1.1\r\nHost: h\r\n"
                               "Content-Length: 9223372036854775807\r\n\r\n"),
                           &r),
                 0);
    cr_expect_eq(r.rq.content_length, 9223372036854775807ull);
    cr_assert_gt(parse_req(LIT("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-CONTINUE\r\n"
                               "Content-Length: 1\r\n\r\n"),
                           &r),
                 0);
    cr_expect_eq(r.rq.flags, HTTP1_MF_KEEP_ALIVE | HTTP1_MF_EXPECT_100);
    cr_assert_gt(parse_req(LIT("POST / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.flags, HTTP1_MF_KEEP_ALIVE);
}

Test(request, target_forms)
{
    struct http1_request r;
    cr_assert_gt(
        parse_req(LIT("GET http://Up.Example:81/a/b?c HTTP/1.1\r\nHost: other\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.flags, HTTP1_MF_KEEP_ALIVE | HTTP1_MF_ABSOLUTE);
    EXPECT_SPAN(r.target, r.target_len, "http://Up.Example:81/a/b?c");
    EXPECT_SPAN(r.rq.authority, r.rq.authority_len, "Up.Example:81");
    EXPECT_SPAN(r.rq.path, r.rq.path_len, "/a/b?c");

    cr_assert_gt(parse_req(LIT("GET hTTpS://[2001:db8::1] HTTP/1.1\r\nHost: h\r\n\r\n"), &r), 0);
    EXPECT_SPAN(r.rq.authority, r.rq.authority_len, "[2001:db8::1]");
    EXPECT_SPAN(r.rq.path, r.rq.path_len, "/");

    cr_assert_gt(parse_req(LIT("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.flags, HTTP1_MF_KEEP_ALIVE | HTTP1_MF_ASTERISK);
    EXPECT_SPAN(r.rq.path, r.rq.path_len, "*");
    EXPECT_SPAN(r.rq.authority, r.rq.authority_len, "h");

    cr_assert_gt(
        parse_req(LIT("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), &r), 0);
    cr_expect_eq(r.rq.flags, HTTP1_MF_KEEP_ALIVE | HTTP1_MF_CONNECT);
    EXPECT_SPAN(r.rq.authority, r.rq.authority_len, "example.com:443");
    cr_expect_eq(r.rq.path_len, 0);
}

Test(request, exact_limits)
{
    struct http1_limits lim = {.max_head = 64, .max_request_line = 20};
    /* request line of exactly 20 bytes: "GET /" + 6 + " HTTP/1.1" */
    static const char ok20[] = "GET /aaaaaa HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char bad21[] = "GET /aaaaaaa HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http1_request r;
    cr_expect_gt(http1_parse_request(guarded(LIT(ok20)), sizeof(ok20) - 1, 0, &lim, &r), 0);
    cr_expect_eq(http1_parse_request(guarded(LIT(bad21)), sizeof(bad21) - 1, 0, &lim, &r),
                 -EBADMSG);
    cr_expect_eq(r.err_status, 414);
    /* head of exactly 64 bytes, then 65 */
    char head[80];
    int n = snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\nX: %s\r\n\r\n",
                     "01234567890123456789012345678901");
    cr_assert_eq(n, 64);
    cr_expect_eq(http1_parse_request(guarded(head, 64), 64, 0, &lim, &r), 64, "%s", r.err_reason);
    n = snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\nX: %s\r\n\r\n",
                 "012345678901234567890123456789012");
    cr_assert_eq(n, 65);
    cr_expect_eq(http1_parse_request(guarded(head, 65), 65, 0, &lim, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 431);
    /* early decisions: no line end yet */
    static const char longline[] = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaa";
    cr_expect_eq(http1_parse_request(guarded(longline, 20), 20, 0, &lim, &r), -EAGAIN);
    cr_expect_eq(http1_parse_request(guarded(longline, 21), 21, 0, &lim, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 414);
    /* 20 content bytes and a CR: may still be a line end */
    static const char cr20[] = "GET /aaaaaa HTTP/1.1\r";
    cr_expect_eq(http1_parse_request(guarded(LIT(cr20)), sizeof(cr20) - 1, 0, &lim, &r), -EAGAIN);
    static const char noend[] =
        "GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789012345678901234567890123456789";
    cr_expect_eq(http1_parse_request(guarded(noend, 63), 63, 0, &lim, &r), -EAGAIN);
    cr_expect_eq(http1_parse_request(guarded(noend, 64), 64, 0, &lim, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 431);
    cr_expect_eq(r.err_offset, 64);
}

Test(request, default_limits)
{
    size_t big = HTTP1_DEFAULT_MAX_HEAD + 100;
    char *in = malloc(big);
    cr_assert(in);
    memcpy(in, "GET /", 5);
    memset(in + 5, 'a', big - 5);
    struct http1_request r;
    /* 8192 content bytes: not decided; one more: 414 */
    cr_expect_eq(http1_parse_request(guarded(in, 8192), 8192, 0, NULL, &r), -EAGAIN);
    cr_expect_eq(http1_parse_request(guarded(in, 8193), 8193, 0, NULL, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 414);
    /* a complete request line, then a flood of header bytes: 431 at max_head */
    memcpy(in, "GET / HTTP/1.1\r\nX: ", 19);
    cr_expect_eq(http1_parse_request(guarded(in, 16383), 16383, 0, NULL, &r), -EAGAIN);
    cr_expect_eq(http1_parse_request(guarded(in, 16384), 16384, 16383, NULL, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 431);
    free(in);

    /* 128 fields are fine, 129 are a 431 */
    char head[2048];
    size_t n = (size_t)sprintf(head, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 127; i++)
        n += (size_t)sprintf(head + n, "X%d: v\r\n", i);
    memcpy(head + n, "\r\n", 2);
    cr_expect_gt(parse_req(head, n + 2, &r), 0);
    cr_expect_eq(r.rq.num_fields, HTTP1_MAX_HEADERS);
    n += (size_t)sprintf(head + n, "Y: v\r\n\r\n");
    cr_expect_eq(parse_req(head, n, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 431);
}

Test(request, prev_len_values)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\nBODY";
    size_t len = sizeof(in) - 1;
    struct http1_request r;
    const char *g = guarded(LIT(in));
    /* any length at which the head was still incomplete (0..26) */
    for (size_t prev = 0; prev < 27; prev++)
        cr_expect_eq(http1_parse_request(g, len, prev, NULL, &r), 27, "prev_len %zu", prev);
    /* no new bytes (prev_len == len) rescans: same answer whether complete or not */
    for (size_t i = 1; i <= len; i++)
        cr_expect_eq(http1_parse_request(g, i, i, NULL, &r), i < 27 ? -EAGAIN : 27, "len %zu", i);
    cr_expect_eq(http1_parse_request(g, len, 1000, NULL, &r), 27);
}

/* ---- invalid requests -------------------------------------------------------------------------
 */

struct bad_case {
    const char *name;
    const char *raw;
    size_t len;
    int status;
};
#define BAD(n, s, st)                                                                              \
    {                                                                                              \
        n, s, sizeof(s) - 1, st                                                                    \
    }

static const struct bad_case bad_requests[] = {
    BAD("cl+te",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400),
    BAD("te+cl",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        400),
    BAD("cl differ", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        400),
    BAD("cl list differ", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n", 400),
    BAD("cl sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", 400),
    BAD("cl inner space", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 3\r\n\r\n", 400),
    BAD("cl hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\n", 400),
    BAD("cl empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400),
    BAD("cl 2^63", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n",
        400),
    BAD("cl 2^64+3", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551619\r\n\r\n",
        400),
    BAD("cl trailing comma", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3,\r\n\r\n", 400),
    BAD("te not chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    BAD("te chunked twice",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    BAD("te chunked twice fields",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
        400),
    BAD("te chunked not last",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    BAD("te identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
        400),
    BAD("te unknown", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
    BAD("te params", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400),
    BAD("te empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400),
    BAD("te http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
    BAD("obs-fold tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\n\tb\n\n", 400),
    BAD("ws first line", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
    BAD("ws before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
    BAD("tab before colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400),
    BAD("empty name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400),
    BAD("ctl in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", 400),
    BAD("del in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400),
    BAD("nul in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400),
    BAD("nul in name", "GET / HTTP/1.1\r\nHost: h\r\nX\0: a\r\n\r\n", 400),
    BAD("bare cr in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400),
    BAD("bare cr in name", "GET / HTTP/1.1\r\nHost: h\r\nX\r: a\r\n\r\n", 400),
    BAD("bare cr line", "GET / HTTP/1.1\r\nHost: h\r\n\rX: a\r\n\r\n", 400),
    BAD("bare cr end", "GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", 400),
    BAD("no colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400),
    BAD("bad name char", "GET / HTTP/1.1\r\nHost: h\r\nX@Y: a\r\n\r\n", 400),
    BAD("non-ascii name", "GET / HTTP/1.1\r\nHost: h\r\nX\xe9: a\r\n\r\n", 400),
    BAD("bad method char", "G\"ET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("target ctl", "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("target del", "GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("target 8bit", "GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("target nul", "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("target 8bit long", "GET /aaaaaaaaaaaaaaaaaaaaaa\xff HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("two spaces 2", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("trailing space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
    BAD("tab sep", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("http/0.9", "GET /\r\n\r\n", 400),
    BAD("http/0.9 lf", "GET /\n\n", 400),
    BAD("method only", "GET\r\n\r\n", 400),
    BAD("version lowercase", "GET / http/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("version junk", "GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400),
    BAD("version short", "GET / HTTP/11\r\nHost: h\r\n\r\n", 400),
    BAD("version 2", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    BAD("version 1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
    BAD("version 0.9", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505),
    BAD("no host", "GET / HTTP/1.1\r\n\r\n", 400),
    BAD("no host absolute", "GET http://h/ HTTP/1.1\r\n\r\n", 400),
    BAD("two hosts", "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", 400),
    BAD("empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
    BAD("host userinfo", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400),
    BAD("host bad port", "GET / HTTP/1.1\r\nHost: h:x\r\n\r\n", 400),
    BAD("host big port", "GET / HTTP/1.1\r\nHost: h:123456\r\n\r\n", 400),
    BAD("host bad ipv6", "GET / HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", 400),
    BAD("host ipv6 junk", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400),
    BAD("host ipvfuture", "GET / HTTP/1.1\r\nHost: [v1.x]\r\n\r\n", 400),
    BAD("asterisk get", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("asterisk-ish", "OPTIONS *a HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("relative", "GET a HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("scheme ftp", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("scheme only", "GET http:// HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("absolute query no path", "GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("absolute userinfo", "GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("connect origin", "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("connect no port", "CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("connect absolute", "CONNECT http://h:1/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("leading bare cr", "\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("9 leading empty lines", "\n\n\n\n\n\n\n\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
};

Test(request, invalid_statuses)
{
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        const struct bad_case *c = &bad_requests[i];
        struct http1_request r;
        ssize_t n = parse_req(c->raw, c->len, &r);
        cr_expect_eq(n, -EBADMSG, "%s: returned %zd", c->name, n);
        cr_expect_eq(r.err_status, c->status, "%s: status %d (%s), want %d", c->name, r.err_status,
                     r.err_reason, c->status);
        cr_expect_leq(r.err_offset, c->len, "%s: offset %zu", c->name, r.err_offset);
        cr_expect(r.err_reason != NULL, "%s: no reason", c->name);
    }
}

/* Every byte value in each position: the classes must be exactly RFC 9110's. */
static bool is_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

Test(request, every_byte_in_every_position)
{
    for (int b = 0; b < 256; b++) {
        char in[64];
        struct http1_request r;
        int n = snprintf(in, sizeof(in), "G@T / HTTP/1.1\r\nHost: h\r\n\r\n");
        in[1] = (char)b;
        bool ok = is_tchar(b);
        ssize_t got = parse_req(in, (size_t)n, &r);
        cr_expect_eq(got > 0, ok, "method byte 0x%02x: %zd", b, got);

        n = snprintf(in, sizeof(in), "GET /@ HTTP/1.1\r\nHost: h\r\n\r\n");
        in[5] = (char)b;
        ok = b > 0x20 && b < 0x7f;
        got = parse_req(in, (size_t)n, &r);
        cr_expect_eq(got > 0, ok, "target byte 0x%02x: %zd", b, got);

        n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\nX@Y: v\r\n\r\n");
        in[26] = (char)b;
        ok = is_tchar(b) || b == ':'; /* "X:Y: v" is X with value "Y: v" */
        got = parse_req(in, (size_t)n, &r);
        cr_expect_eq(got > 0, ok, "name byte 0x%02x: %zd", b, got);

        n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\nX: a@b\r\n\r\n");
        in[29] = (char)b;
        ok = b == '\t' || (b >= 0x20 && b != 0x7f);
        got = parse_req(in, (size_t)n, &r);
        cr_expect_eq(got > 0, ok, "value byte 0x%02x: %zd", b, got);
        if (got > 0)
            cr_expect_eq(r.headers[1].value_len, 3);
    }
}

/* The same classes deep inside long targets and values, where the block (16 and 8 byte) scans
 * run: every byte value at every offset of a 40-byte run. */
Test(request, every_byte_at_every_offset)
{
    for (int b = 0; b < 256; b++) {
        for (int at = 0; at < 40; at++) {
            char in[128];
            struct http1_request r;
            int n = snprintf(in, sizeof(in), "GET /%040d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
            in[5 + at] = (char)b;
            bool ok = b > 0x20 && b < 0x7f;
            ssize_t got = parse_req(in, (size_t)n, &r);
            cr_assert_eq(got > 0, ok, "target byte 0x%02x at %d: %zd", b, at, got);
            if (ok)
                cr_assert_eq(r.target_len, 41);

            n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\nX: a%040dz\r\n\r\n", 0);
            in[29 + at] = (char)b;
            ok = b == '\t' || (b >= 0x20 && b != 0x7f);
            got = parse_req(in, (size_t)n, &r);
            cr_assert_eq(got > 0, ok, "value byte 0x%02x at %d: %zd", b, at, got);
            if (ok)
                cr_assert_eq(r.headers[1].value_len, 42);
        }
    }
}

/* ---- incremental parsing ----------------------------------------------------------------------
 */

static const char *const good_requests[] = {
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "GET / HTTP/1.1\nHost: example.com\n\n",
    "\r\n\r\nPOST /x?y HTTP/1.1\r\nHost: h:1\r\nContent-Length: 5\r\nX-A:  a b \r\n\r\nhello",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
    "Connection: keep-alive, te\r\nTE: trailers\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "GET http://u.example/p HTTP/1.1\r\nHost: u.example\r\nConnection: upgrade\r\n"
    "Upgrade: websocket\r\n\r\n",
    "OPTIONS * HTTP/1.0\r\n\r\n",
    "GET /\xff\xfe HTTP/1.1\r\n\r\n", /* invalid: checked for consistency too */
};

/* Feeds s one byte more per call with prev_len = the previous length: -EAGAIN (or the final
 * error) until complete, then the same result as one call on everything. */
static void check_incremental(const char *s, size_t len, const struct http1_limits *lim)
{
    struct http1_request whole, part;
    ssize_t want = http1_parse_request(guarded(s, len), len, 0, lim, &whole);
    int want_status = whole.err_status;
    size_t want_off = whole.err_offset;
    size_t want_headers = whole.rq.num_fields;
    unsigned want_flags = whole.rq.flags;
    ssize_t got = -EAGAIN;
    size_t prev = 0, i;
    for (i = 1; i <= len; i++) {
        got = http1_parse_request(guarded(s, i), i, prev, lim, &part);
        prev = i;
        if (got != -EAGAIN)
            break;
    }
    cr_assert_eq(got, want, "incremental \"%.20s...\": %zd at %zu, whole %zd", s, got, i, want);
    if (got > 0) {
        cr_expect_eq((size_t)got, i, "completed late at %zu, head is %zd", i, got);
        cr_expect_eq(part.rq.num_fields, want_headers);
        cr_expect_eq(part.rq.flags, want_flags);
    } else if (got == -EBADMSG) {
        cr_expect_eq(part.err_status, want_status);
        cr_expect_eq(part.err_offset, want_off);
    }
}

Test(request, incremental_one_byte_at_a_time)
{
    for (size_t i = 0; i < sizeof(good_requests) / sizeof(good_requests[0]); i++)
        check_incremental(good_requests[i], strlen(good_requests[i]), NULL);
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++)
        check_incremental(bad_requests[i].raw, bad_requests[i].len, NULL);
    struct http1_limits small = {.max_head = 40, .max_request_line = 16};
    for (size_t i = 0; i < sizeof(good_requests) / sizeof(good_requests[0]); i++)
        check_incremental(good_requests[i], strlen(good_requests[i]), &small);
    struct http1_limits tiny = {.max_head = 18, .max_request_line = 100};
    for (size_t i = 0; i < sizeof(good_requests) / sizeof(good_requests[0]); i++)
        check_incremental(good_requests[i], strlen(good_requests[i]), &tiny);
}

/* ---- responses --------------------------------------------------------------------------------
 */

struct resp_case {
    const char *raw;
    bool head;
    int status;
    enum http1_body body;
    uint64_t cl;
    unsigned flags;
};

static const struct resp_case good_responses[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, HTTP1_BODY_LENGTH, 5,
     HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, 200, HTTP1_BODY_NONE, 0,
     HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n", false, 200, HTTP1_BODY_CHUNKED, 0,
     HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, 200, HTTP1_BODY_CLOSE, 0,
     0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, 200, HTTP1_BODY_CLOSE, 0, 0},
    {"HTTP/1.1 200 OK\r\n\r\n", false, 200, HTTP1_BODY_CLOSE, 0, 0},
    {"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, 200, HTTP1_BODY_LENGTH, 0,
     HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", false, 200, HTTP1_BODY_LENGTH, 0,
     HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", false, 204, HTTP1_BODY_NONE, 0,
     HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, 304, HTTP1_BODY_NONE,
     0, HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 100 Continue\r\n\r\n", false, 100, HTTP1_BODY_NONE, 0, HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false,
     101, HTTP1_BODY_NONE, 0, HTTP1_MF_KEEP_ALIVE | HTTP1_MF_UPGRADE},
    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", false, 200,
     HTTP1_BODY_LENGTH, 2, HTTP1_MF_CONN_CLOSE},
    {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false, 200, HTTP1_BODY_LENGTH, 2, 0},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", false, 200,
     HTTP1_BODY_LENGTH, 2, HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false, 200, HTTP1_BODY_CLOSE, 0, 0},
    {"HTTP/1.1 999 Whatever \xe9\t!\r\nContent-Length: 1, 1\r\nContent-Length: 1\r\n\r\n", false,
     999, HTTP1_BODY_LENGTH, 1, HTTP1_MF_KEEP_ALIVE},
    {"HTTP/1.1 200 OK\r\nHost: not validated in responses\r\nHost: twice\r\nContent-Length: 0"
     "\r\n\r\n",
     false, 200, HTTP1_BODY_LENGTH, 0, HTTP1_MF_KEEP_ALIVE},
};

Test(response, valid)
{
    for (size_t i = 0; i < sizeof(good_responses) / sizeof(good_responses[0]); i++) {
        const struct resp_case *c = &good_responses[i];
        struct http1_response r;
        size_t len = strlen(c->raw);
        const char *body = strstr(c->raw, "\r\n\r\n");
        size_t head_len =
            body ? (size_t)(body - c->raw) + 4 : (size_t)(strstr(c->raw, "\n\n") - c->raw) + 2;
        ssize_t n = parse_resp(c->raw, len, c->head, &r);
        cr_expect_eq(n, (ssize_t)head_len, "#%zu: %zd (%s)", i, n, r.err_reason);
        if (n <= 0)
            continue;
        cr_expect_eq(r.status, c->status, "#%zu", i);
        cr_expect_eq(r.body, c->body, "#%zu: body %d", i, r.body);
        cr_expect_eq(r.content_length, c->cl, "#%zu", i);
        cr_expect_eq(r.flags, c->flags, "#%zu: flags %#x", i, r.flags);
    }
}

Test(response, spans)
{
    static const char in[] =
        "HTTP/1.1 404 Not Found\r\nServer: x\r\nConnection: x-a\r\nX-A: 1\r\n\r\n";
    struct http1_response r;
    cr_assert_eq(parse_resp(LIT(in), false, &r), (ssize_t)sizeof(in) - 1);
    EXPECT_SPAN(r.reason, r.reason_len, "Not Found");
    cr_expect_eq(r.minor_version, 1);
    cr_assert_eq(r.num_headers, 3);
    EXPECT_SPAN(r.headers[0].name, r.headers[0].name_len, "Server");
    cr_expect_eq(r.headers[2].flags, HTTP_FF_CONN_LISTED);
    cr_assert_eq(parse_resp(LIT("HTTP/1.1 200\r\n\r\n"), false, &r), 16);
    cr_expect_eq(r.reason_len, 0);
}

static const char *const bad_responses[] = {
    "HTTP/1.2 200 OK\r\n\r\n",
    "HTTP/2.0 200 OK\r\n\r\n",
    "HTTP/1.1 20 OK\r\n\r\n",
    "HTTP/1.1 2000 OK\r\n\r\n",
    "HTTP/1.1 099 OK\r\n\r\n",
    "HTTP/1.1 2x0 OK\r\n\r\n",
    "HTTP/1.1  200 OK\r\n\r\n",
    "HTTP/1.1 200\tOK\r\n\r\n",
    "http/1.1 200 OK\r\n\r\n",
    "HTTP/1.1 200 O\x01K\r\n\r\n",
    "HTTP/1.1 200 OK\rX\r\n\r\n",
    "\r\nHTTP/1.1 200 OK\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 204 No Content\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
    "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
    "HTTP/1.1 200 OK\r\n\r\r\n\r\n",
    "\n\n",
    "HTTP/1.1\r\n\r\n",
};

Test(response, invalid)
{
    for (size_t i = 0; i < sizeof(bad_responses) / sizeof(bad_responses[0]); i++) {
        struct http1_response r;
        ssize_t n = parse_resp(bad_responses[i], strlen(bad_responses[i]), false, &r);
        cr_expect_eq(n, -EBADMSG, "#%zu \"%s\": %zd", i, bad_responses[i], n);
        cr_expect_eq(r.err_status, 502, "#%zu", i);
    }
    static const char nul[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n";
    struct http1_response r;
    cr_expect_eq(parse_resp(LIT(nul), false, &r), -EBADMSG);
}

Test(response, limits_and_incremental)
{
    struct http1_response r;
    char head[2048];
    size_t n = (size_t)sprintf(head, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 129; i++)
        n += (size_t)sprintf(head + n, "X%d: v\r\n", i);
    n += (size_t)sprintf(head + n, "\r\n");
    cr_expect_eq(parse_resp(head, n, false, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 502);

    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    size_t len = sizeof(in) - 1, prev = 0;
    cr_expect_eq(http1_parse_response(guarded(LIT(in)), len, 0, 20, false, &r), -EBADMSG);
    cr_expect_eq(http1_parse_response(guarded(in, 19), 19, 0, 20, false, &r), -EAGAIN);
    cr_expect_eq(http1_parse_response(guarded(in, 20), 20, 0, 20, false, &r), -EBADMSG);
    size_t i;
    ssize_t got = -EAGAIN;
    for (i = 1; i <= len && got == -EAGAIN; i++) {
        got = http1_parse_response(guarded(in, i), i, prev, 0, false, &r);
        prev = i;
    }
    cr_expect_eq(got, (ssize_t)len - 3);
    cr_expect_eq(i - 1, len - 3, "completed at %zu", i - 1);
}

/* ---- chunked ----------------------------------------------------------------------------------
 */

struct decoded {
    char data[4096];
    size_t data_len;
    size_t consumed;
    int outcome; /* 1 done, 0 needs more, -1 error */
};

/* Feeds body in pieces of at most `step` bytes (each piece flush against a guard page), calling
 * the decoder until each piece is used up. */
static void decode_steps(const char *body, size_t len, size_t step, struct decoded *d)
{
    struct http1_chunked c = {0};
    memset(d, 0, sizeof(*d));
    size_t off = 0;
    while (off < len) {
        size_t piece = len - off < step ? len - off : step;
        const char *g = guarded(body + off, piece);
        size_t used = 0;
        while (used < piece) {
            bool is_data;
            ssize_t n = http1_chunked_decode(&c, g + used, piece - used, &is_data);
            if (n < 0) {
                cr_assert_eq(n, -EBADMSG);
                d->outcome = -1;
                return;
            }
            if (n == 0) {
                cr_assert(http1_chunked_done(&c), "0 returned before the end");
                d->outcome = 1;
                return;
            }
            cr_assert_leq((size_t)n, piece - used);
            if (is_data) {
                cr_assert_leq(d->data_len + (size_t)n, sizeof(d->data));
                memcpy(d->data + d->data_len, g + used, (size_t)n);
                d->data_len += (size_t)n;
            }
            used += (size_t)n;
            d->consumed += (size_t)n;
        }
        off += piece;
        if (http1_chunked_done(&c)) {
            d->outcome = 1;
            return;
        }
    }
    d->outcome = http1_chunked_done(&c) ? 1 : 0;
}

/* Two pieces split at `at`. */
static void decode_split(const char *body, size_t len, size_t at, struct decoded *d)
{
    struct http1_chunked c = {0};
    memset(d, 0, sizeof(*d));
    const char *parts[2] = {body, body + at};
    size_t lens[2] = {at, len - at};
    for (int p = 0; p < 2; p++) {
        const char *g = guarded(parts[p], lens[p]);
        size_t used = 0;
        while (used < lens[p] && !http1_chunked_done(&c)) {
            bool is_data;
            ssize_t n = http1_chunked_decode(&c, g + used, lens[p] - used, &is_data);
            if (n < 0) {
                d->outcome = -1;
                return;
            }
            cr_assert_gt(n, 0);
            if (is_data) {
                memcpy(d->data + d->data_len, g + used, (size_t)n);
                d->data_len += (size_t)n;
            }
            used += (size_t)n;
            d->consumed += (size_t)n;
        }
    }
    d->outcome = http1_chunked_done(&c) ? 1 : 0;
}

static const char chunked_body[] = "5;ext=1\r\nhello\r\n1 ; a = \"q\\\"x\" ;b\r\n,\r\n"
                                   "00A\r\n world 123\r\n1f\r\n"
                                   "0123456789abcdefghijklmnopqrstu\r\n"
                                   "000;last\r\nX-Trailer: v\r\nY:\r\n\r\n"
                                   "NEXT";
static const char chunked_data[] = "hello, world 1230123456789abcdefghijklmnopqrstu";

Test(chunked, split_at_every_boundary)
{
    size_t len = sizeof(chunked_body) - 1, body_len = len - 4;
    struct decoded d;
    for (size_t step = 1; step <= len; step++) {
        decode_steps(chunked_body, len, step, &d);
        cr_assert_eq(d.outcome, 1, "step %zu", step);
        cr_assert_eq(d.consumed, body_len, "step %zu: consumed %zu", step, d.consumed);
        cr_assert(span_is(d.data, d.data_len, chunked_data), "step %zu: \"%.*s\"", step,
                  (int)d.data_len, d.data);
    }
    for (size_t at = 0; at <= len; at++) {
        decode_split(chunked_body, len, at, &d);
        cr_assert_eq(d.outcome, 1, "split %zu", at);
        cr_assert_eq(d.consumed, body_len, "split %zu", at);
        cr_assert(span_is(d.data, d.data_len, chunked_data), "split %zu", at);
    }
}

Test(chunked, data_runs_and_done)
{
    struct http1_chunked c = {0};
    bool is_data;
    static const char in[] = "10\r\n0123456789abcdef\r\n0\r\n\r\nGET";
    const char *g = guarded(LIT(in));
    cr_expect_eq(http1_chunked_decode(&c, g, sizeof(in) - 1, &is_data), 4);
    cr_expect(!is_data);
    cr_expect_eq(c.remaining, 16);
    cr_expect_eq(http1_chunked_decode(&c, g + 4, 3, &is_data), 3); /* min(remaining, len) */
    cr_expect(is_data);
    cr_expect_eq(http1_chunked_decode(&c, g + 7, sizeof(in) - 8, &is_data), 13);
    cr_expect(is_data);
    cr_expect_eq(http1_chunked_decode(&c, g + 20, sizeof(in) - 21, &is_data), 7);
    cr_expect(!is_data);
    cr_expect(http1_chunked_done(&c));
    cr_expect_eq(http1_chunked_decode(&c, g + 27, 3, &is_data), 0);
    cr_expect_eq(http1_chunked_decode(&c, g, 0, &is_data), 0);
    cr_expect(!is_data);
    struct http1_chunked fresh = {0};
    cr_expect_eq(http1_chunked_decode(&fresh, g, 0, &is_data), 0);
    cr_expect(!http1_chunked_done(&fresh));
}

Test(chunked, size_limits)
{
    struct http1_chunked c = {0};
    bool is_data;
    cr_expect_eq(http1_chunked_decode(&c, LIT("7fffffffffffffff\r\n"), &is_data), 18);
    cr_expect_eq(c.remaining, 0x7fffffffffffffffull);
    static const char *const bad[] = {
        "8000000000000000\r\n",
        "ffffffffffffffffff\r\n",
        "00000000000000001\r\n",
    };
    for (size_t i = 0; i < 3; i++) {
        struct http1_chunked b = {0};
        cr_expect_eq(http1_chunked_decode(&b, bad[i], strlen(bad[i]), &is_data), -EBADMSG, "%s",
                     bad[i]);
        cr_expect_eq(http1_chunked_decode(&b, "0\r\n\r\n", 5, &is_data), -EBADMSG);
    }
    struct http1_chunked z = {0};
    cr_expect_eq(http1_chunked_decode(&z, LIT("0000000000000000\r\n\r\n"), &is_data), 20);
    cr_expect(http1_chunked_done(&z));

    /* a size line of HTTP1_CHUNK_LINE_MAX bytes passes, one more byte fails */
    char line[HTTP1_CHUNK_LINE_MAX + 8];
    memset(line, 'a', sizeof(line));
    memcpy(line, "1;x=", 4);
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = HTTP1_CHUNK_LINE_MAX + (size_t)extra;
        memcpy(line + n - 2, "\r\n", 2);
        struct http1_chunked l = {0};
        cr_expect_eq(http1_chunked_decode(&l, guarded(line, n), n, &is_data),
                     extra ? -EBADMSG : (ssize_t)n, "line of %zu", n);
    }

    /* a trailer section (final CRLF included) of HTTP1_TRAILERS_MAX bytes passes, one more fails */
    static char tr[HTTP1_TRAILERS_MAX + 8];
    size_t n = 3 + HTTP1_TRAILERS_MAX;
    memcpy(tr, "0\r\nX:", 5);
    memset(tr + 5, 'v', n - 5);
    memcpy(tr + n - 4, "\r\n\r\n", 4);
    struct http1_chunked t = {0};
    cr_expect_eq(http1_chunked_decode(&t, guarded(tr, n), n, &is_data), (ssize_t)n);
    cr_expect(http1_chunked_done(&t));
    memmove(tr + 4, tr + 3, n - 3);
    tr[3] = 'Z';
    struct http1_chunked t2 = {0};
    cr_expect_eq(http1_chunked_decode(&t2, guarded(tr, n + 1), n + 1, &is_data), -EBADMSG);
}

static const char *const bad_chunked[] = {
    " 5\r\nhello\r\n0\r\n\r\n",
    "+5\r\nhello\r\n0\r\n\r\n",
    "-5\r\n",
    "0x5\r\nhello\r\n0\r\n\r\n",
    "\r\n",
    "5 \r\nhello\r\n0\r\n\r\n",
    "5\nhello\r\n0\r\n\r\n",
    "5\rhello",
    "5;\r\n",
    "5;a=\r\n",
    "5;a=\"b\r\n",
    "5;a=\"\x01\"\r\n",
    "5;a b\r\n",
    "5;a=b c\r\n",
    "5;=b\r\n",
    "5;a=\"b\"c\r\n",
    "5;a\n",
    "5\r\nhelloX\r\n",
    "5\r\nhello\n",
    "5\r\nhello\r\r",
    "0\n\n",
    "0\r\n\n",
    "0\r\nX: a\r\n b\r\n\r\n",
    "0\r\nX\r\n\r\n",
    "0\r\nX : a\r\n\r\n",
    "0\r\n: a\r\n\r\n",
    "0\r\nX: \x7f\r\n\r\n",
    "0\r\nX: a\n\r\n",
    "0\r\n\rX",
    "g\r\n",
    "0\r\nX: a\r\n\n",
};

Test(chunked, invalid)
{
    struct decoded d;
    for (size_t i = 0; i < sizeof(bad_chunked) / sizeof(bad_chunked[0]); i++) {
        size_t len = strlen(bad_chunked[i]);
        decode_steps(bad_chunked[i], len, len, &d);
        cr_expect_eq(d.outcome, -1, "#%zu \"%s\": outcome %d", i, bad_chunked[i], d.outcome);
        decode_steps(bad_chunked[i], len, 1, &d);
        cr_expect_eq(d.outcome, -1, "#%zu bytewise: outcome %d", i, d.outcome);
    }
    static const char nul[] = "5\0\r\n";
    decode_steps(nul, sizeof(nul) - 1, 1, &d);
    cr_expect_eq(d.outcome, -1);
}

/* ---- the shared vector file --------------------------------------------------------------------
 */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the C-style escapes of the vector format; returns the length or -1. */
static ssize_t unescape(const char *s, char *out)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s != '\\') {
            out[n++] = *s;
            continue;
        }
        switch (*++s) {
        case 'r':
            out[n++] = '\r';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case '0':
            out[n++] = '\0';
            break;
        case '\\':
            out[n++] = '\\';
            break;
        case 'x': {
            int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
            if (lo < 0)
                return -1;
            out[n++] = (char)(hi * 16 + lo);
            s += 2;
            break;
        }
        default:
            return -1;
        }
    }
    return (ssize_t)n;
}

/* Runs one vector: the head through the parser, then (when chunked) the rest through the decoder.
 */
static void run_vector(const char *name, const char *expected, const char *raw, size_t len)
{
    struct http1_request r;
    ssize_t n = parse_req(raw, len, &r);
    int want = strcmp(expected, "ok") ? atoi(expected) : 0;
    cr_assert(want == 0 || (want >= 400 && want <= 599), "%s: bad expected '%s'", name, expected);

    if (n == -EBADMSG) {
        cr_expect_eq(r.err_status, want, "%s: got %d (%s), want %s", name, r.err_status,
                     r.err_reason, expected);
        return;
    }
    cr_assert_gt(n, 0, "%s: parser returned %zd", name, n);
    if (want == 501) { /* golb answers CONNECT itself */
        cr_expect(r.rq.flags & HTTP1_MF_CONNECT, "%s: valid head, want %s", name, expected);
        return;
    }
    cr_expect(!(r.rq.flags & HTTP1_MF_CONNECT), "%s: CONNECT", name);
    size_t rest = len - (size_t)n;
    if (r.rq.body == HTTP_BODY_STREAM) {
        struct decoded d;
        decode_steps(raw + n, rest, rest, &d);
        if (want) {
            cr_expect_eq(d.outcome, -1, "%s: chunked body decoded (outcome %d), want %s", name,
                         d.outcome, expected);
        } else {
            cr_expect_eq(d.outcome, 1, "%s: chunked body outcome %d", name, d.outcome);
            cr_expect_eq(d.consumed, rest, "%s: %zu bytes after the body", name, rest - d.consumed);
        }
        return;
    }
    cr_expect_eq(want, 0, "%s: valid, want %s", name, expected);
    cr_expect_eq(rest, r.rq.body == HTTP_BODY_LENGTH ? r.rq.content_length : 0,
                 "%s: %zu bytes after the head for body %d", name, rest, r.rq.body);
}

Test(vectors, requests_vec)
{
    FILE *f = fopen("tests/vectors/requests.vec", "r");
    cr_assert(f, "tests/vectors/requests.vec: run from the repository root");
    char *line = NULL, *raw = NULL;
    size_t cap = 0;
    ssize_t got;
    int cases = 0, lineno = 0, ok = 0;
    while ((got = getline(&line, &cap, f)) != -1) {
        lineno++;
        if (got && line[got - 1] == '\n')
            line[--got] = '\0';
        if (!got || line[0] == '#')
            continue;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        cr_assert(t2 && !strchr(t2 + 1, '\t'), "line %d: want name<TAB>expected<TAB>request",
                  lineno);
        *t1 = *t2 = '\0';
        raw = realloc(raw, (size_t)got + 1);
        ssize_t len = unescape(t2 + 1, raw);
        cr_assert_geq(len, 0, "line %d: bad escape", lineno);
        run_vector(line, t1 + 1, raw, (size_t)len);
        ok += !strcmp(t1 + 1, "ok");
        cases++;
    }
    free(line);
    free(raw);
    fclose(f);
    cr_expect_geq(cases, 150, "only %d cases", cases);
    cr_expect_geq(ok, 40);
}

/* ---- reason phrases
 * ------------------------------------------------------------------------------ */

Test(reason, phrases)
{
    static const int codes[] = {100, 101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307,
                                308, 400, 401, 403, 404, 405, 408, 411, 413, 414, 415, 417,
                                421, 426, 429, 431, 500, 501, 502, 503, 504, 505};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        cr_expect_str_neq(http1_reason(codes[i]), "Unknown", "%d", codes[i]);
    cr_expect_str_eq(http1_reason(502), "Bad Gateway");
    cr_expect_str_eq(http1_reason(431), "Request Header Fields Too Large");
    cr_expect_str_eq(http1_reason(414), "URI Too Long");
    cr_expect_str_eq(http1_reason(299), "Unknown");
    cr_expect_str_eq(http1_reason(-1), "Unknown");
}

/* A request line is judged as soon as it is complete, before the rest of the head: an HTTP/0.9
 * line ("GET /path" and a line end) gets its 400 at once instead of waiting for a blank line its
 * client never sends; a valid line keeps waiting. */
Test(request, complete_request_line_is_judged_before_the_head_ends)
{
    struct http1_request r;
    static const char v09[] = "GET /path\r\n";
    cr_expect_eq(http1_parse_request(guarded(LIT(v09)), sizeof(v09) - 1, 0, NULL, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 400);
    cr_expect_str_eq(r.err_reason, "request line without a version (HTTP/0.9)");
    static const char v09lf[] = "GET /path\n";
    cr_expect_eq(http1_parse_request(guarded(LIT(v09lf)), sizeof(v09lf) - 1, 0, NULL, &r),
                 -EBADMSG);
    static const char badmethod[] = "G(T / HTTP/1.1\r\n";
    cr_expect_eq(http1_parse_request(guarded(LIT(badmethod)), sizeof(badmethod) - 1, 0, NULL, &r),
                 -EBADMSG);
    static const char v2[] = "GET / HTTP/2.0\r\n";
    cr_expect_eq(http1_parse_request(guarded(LIT(v2)), sizeof(v2) - 1, 0, NULL, &r), -EBADMSG);
    cr_expect_eq(r.err_status, 505);
    static const char ok[] = "GET /path HTTP/1.1\r\nHost: h\r\n";
    cr_expect_eq(http1_parse_request(guarded(LIT(ok)), sizeof(ok) - 1, 0, NULL, &r), -EAGAIN);
    static const char partial[] = "GET /path";
    cr_expect_eq(http1_parse_request(guarded(LIT(partial)), sizeof(partial) - 1, 0, NULL, &r),
                 -EAGAIN);
}

/* ---- golb's own heads split again (the HTTP/2 upstream) ----------------------------------------
 */

/* A head as rewrite_request_head writes it splits into what the full parser finds. */
Test(own_request, splits_like_the_parser)
{
    static const char in[] = "POST /pkg.Svc/Call?x=1 HTTP/1.1\r\nHost: api.example:8443\r\n"
                             "content-type: application/grpc\r\nte: trailers\r\n"
                             "X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nEmpty: \r\n"
                             "Transfer-Encoding: chunked\r\n\r\n";
    struct http1_request a, b;
    ssize_t n = parse_req(LIT(in), &a);
    cr_assert_eq(n, (ssize_t)sizeof(in) - 1);
    ssize_t m = http1_split_own_request(guarded(LIT(in)), sizeof(in) - 1, &b);
    cr_assert_eq(m, n);
    EXPECT_SPAN(b.rq.method, b.rq.method_len, "POST");
    EXPECT_SPAN(b.target, b.target_len, "/pkg.Svc/Call?x=1");
    cr_assert_eq(b.rq.num_fields, a.rq.num_fields);
    for (size_t i = 0; i < a.rq.num_fields; i++) {
        const struct http_field *x = &a.rq.fields[i], *y = &b.rq.fields[i];
        cr_expect(x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0,
                  "field %zu name", i);
        cr_expect(x->value_len == y->value_len && memcmp(x->value, y->value, x->value_len) == 0,
                  "field %zu value \"%.*s\" vs \"%.*s\"", i, (int)x->value_len, x->value,
                  (int)y->value_len, y->value);
        cr_expect_eq(x->id, y->id, "field %zu id", i);
    }
    cr_expect_eq(b.rq.fields[0].id, HTTP_F_HOST);
    cr_expect_eq(b.rq.fields[5].id, HTTP_F_TRANSFER_ENCODING);
}

/* What is not a whole head is refused, never read past its end. */
Test(own_request, refuses_a_cut_or_malformed_head)
{
    struct http1_request r;
    static const char *bad[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n",      /* no empty line */
        "GET / HTTP/1.1\r\nHost: a\r\n\r",    /* cut in the last CRLF */
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",   /* no colon */
        "GET / HTTP/1.1\r\n: a\r\n\r\n",      /* empty name */
        "GET /\r\n\r\n",                      /* no version */
        "GET\r\n\r\n",                        /* no target */
        "GET / HTTP/1.1\r\nHost: a\r",        /* a field line cut at its CR */
        "GET / HTTP/1.1",                     /* no line end at all */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(http1_split_own_request(guarded(bad[i], strlen(bad[i])), strlen(bad[i]), &r),
                     -1, "case %zu: \"%s\"", i, bad[i]);
    static const char none[] = "GET / HTTP/1.1\r\n\r\n";
    cr_expect_eq(http1_split_own_request(guarded(LIT(none)), sizeof(none) - 1, &r),
                 (ssize_t)sizeof(none) - 1);
    cr_expect_eq(r.rq.num_fields, 0);
}

Test(chunk_size_line, hex_digits_crlf_and_the_previous_chunks_end)
{
    char p[24];
    uint32_t n = http1_chunk_size_line(p, false, 0);
    cr_expect(n == 3 && memcmp(p, "0\r\n", 3) == 0);
    n = http1_chunk_size_line(p, true, 0x1a);
    cr_expect(n == 6 && memcmp(p, "\r\n1a\r\n", 6) == 0, "%.*s", (int)n, p);
    n = http1_chunk_size_line(p, true, UINT64_MAX);
    cr_expect(n == 20 && memcmp(p, "\r\nffffffffffffffff\r\n", 20) == 0);
    n = http1_chunk_size_line(p, false, 16384);
    cr_expect(n == 6 && memcmp(p, "4000\r\n", 6) == 0);
}
