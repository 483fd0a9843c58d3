/* Unit tests for path: RFC 3986 normalisation of request paths (the cases: /a/../b,
 * /%2e%2e/, //, %2F, upper- and lower-case hex, invalid escapes), the encodedSlash rule, the
 * query left alone, in-place use, and the two properties the fuzzer also checks (never longer,
 * idempotent). Every input is an exact-size heap copy so ASan sees a read past its end. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "http/path.h"

struct path_case {
    const char *in;
    enum path_result want_rc;
    const char *want; /* for PATH_OK */
};

static void run(const struct path_case *c, size_t n, unsigned flags, bool target)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(c[i].in), out_len = 12345;
        char *in = malloc(len ? len : 1), *out = malloc(len ? len : 1);
        memcpy(in, c[i].in, len);
        enum path_result rc = target ? path_normalize_target(in, len, flags, out, &out_len)
                                     : path_normalize(in, len, flags, out, &out_len);
        cr_expect_eq(rc, c[i].want_rc, "\"%s\": result %d, want %d (%s)", c[i].in, rc, c[i].want_rc,
                     path_result_str(rc));
        if (rc == PATH_OK && c[i].want_rc == PATH_OK) {
            cr_expect(out_len == strlen(c[i].want) && memcmp(out, c[i].want, out_len) == 0,
                      "\"%s\" → \"%.*s\", want \"%s\"", c[i].in, (int)out_len, out, c[i].want);
            cr_expect_leq(out_len, len);
        }
        free(in);
        free(out);
    }
}

#define RUN(cases, flags) run(cases, sizeof(cases) / sizeof(cases[0]), flags, false)
#define RUN_TARGET(cases, flags) run(cases, sizeof(cases) / sizeof(cases[0]), flags, true)

Test(path, dot_segments)
{
    static const struct path_case cases[] = {
        {"/", PATH_OK, "/"},
        {"/a/../b", PATH_OK, "/b"},
        {"/a/./b", PATH_OK, "/a/b"},
        {"/a/b/../../c", PATH_OK, "/c"},
        {"/a/b/..", PATH_OK, "/a/"},
        {"/a/b/.", PATH_OK, "/a/b/"},
        {"/a/..", PATH_OK, "/"},
        {"/.", PATH_OK, "/"},
        {"/./", PATH_OK, "/"},
        {"/a/.b/..c/...", PATH_OK, "/a/.b/..c/..."}, /* not dot-segments */
        {"/a/b/../c/./d.html", PATH_OK, "/a/c/d.html"},
        {"/..", PATH_ABOVE_ROOT, NULL},
        {"/../", PATH_ABOVE_ROOT, NULL},
        {"/../a", PATH_ABOVE_ROOT, NULL},
        {"/a/../..", PATH_ABOVE_ROOT, NULL},
        {"/a/../../b", PATH_ABOVE_ROOT, NULL},
        {"/./..", PATH_ABOVE_ROOT, NULL},
        {"/a/b/../../../c", PATH_ABOVE_ROOT, NULL},
    };
    RUN(cases, 0);
}

Test(path, empty_segments_are_kept)
{
    static const struct path_case cases[] = {
        {"//", PATH_OK, "//"},         {"/a//b", PATH_OK, "/a//b"}, {"//a/", PATH_OK, "//a/"},
        {"/a//../b", PATH_OK, "/a/b"}, /* ".." pops the empty segment, as RFC 3986 does */
        {"//..", PATH_OK, "/"},        {"///..", PATH_OK, "//"},    {"/a/.//b", PATH_OK, "/a//b"},
    };
    RUN(cases, 0);
}

Test(path, escapes)
{
    static const struct path_case cases[] = {
        {"/%2e%2e/", PATH_ABOVE_ROOT, NULL},
        {"/%2E%2E/", PATH_ABOVE_ROOT, NULL},
        {"/a/%2e%2E/b", PATH_OK, "/b"},
        {"/a/.%2e", PATH_OK, "/"},
        {"/a/%2e/b", PATH_OK, "/a/b"},
        {"/%7euser", PATH_OK, "/~user"},
        {"/%7Euser", PATH_OK, "/~user"},
        {"/%41%62%2D%5f%30", PATH_OK, "/Ab-_0"},
        {"/a%2fb", PATH_OK, "/a%2Fb"},
        {"/a%2Fb", PATH_OK, "/a%2Fb"},
        {"/a%5cb", PATH_OK, "/a%5Cb"},
        {"/a%2F..%2Fb", PATH_OK, "/a%2F..%2Fb"}, /* one segment: nothing climbs */
        {"/%2e%2e%2fetc", PATH_OK, "/..%2Fetc"},
        {"/%3f%23%25%20%c3%a9", PATH_OK, "/%3F%23%25%20%C3%A9"},
        {"/%00", PATH_OK, "/%00"},
        {"/%", PATH_BAD_ESCAPE, NULL},
        {"/%4", PATH_BAD_ESCAPE, NULL},
        {"/%zz", PATH_BAD_ESCAPE, NULL},
        {"/%4g", PATH_BAD_ESCAPE, NULL},
        {"/%g4", PATH_BAD_ESCAPE, NULL},
        {"/a%%41", PATH_BAD_ESCAPE, NULL},
        {"/%-1", PATH_BAD_ESCAPE, NULL},
        {"/a\\..\\b", PATH_OK, "/a\\..\\b"}, /* a raw backslash is a byte like any other */
    };
    RUN(cases, 0);
}

Test(path, encoded_slash_reject)
{
    static const struct path_case cases[] = {
        {"/a%2fb", PATH_ENCODED_SLASH, NULL},
        {"/a%2Fb", PATH_ENCODED_SLASH, NULL},
        {"/a%5cb", PATH_ENCODED_SLASH, NULL},
        {"/a%5Cb", PATH_ENCODED_SLASH, NULL},
        {"/a\\b", PATH_ENCODED_SLASH, NULL},
        {"/a%2e/b%3Fc", PATH_OK, "/a./b%3Fc"},
        {"/a/b", PATH_OK, "/a/b"},
    };
    RUN(cases, PATH_REJECT_ENCODED_SLASH);
}

Test(path, not_absolute)
{
    static const struct path_case cases[] = {
        {"", PATH_NOT_ABSOLUTE, NULL},
        {"a/b", PATH_NOT_ABSOLUTE, NULL},
        {"*", PATH_NOT_ABSOLUTE, NULL},
        {"%2F", PATH_NOT_ABSOLUTE, NULL},
    };
    RUN(cases, 0);
}

Test(path, target_keeps_the_query)
{
    static const struct path_case cases[] = {
        {"/a/../b?x=%2e%2e/../&y=%7e", PATH_OK, "/b?x=%2e%2e/../&y=%7e"},
        {"/%7e?", PATH_OK, "/~?"},
        {"/?a", PATH_OK, "/?a"},
        {"/a/./?%zz", PATH_OK, "/a/?%zz"}, /* a bad escape in the query is not the path's */
        {"/%zz?a", PATH_BAD_ESCAPE, NULL},
        {"/..?a", PATH_ABOVE_ROOT, NULL},
        {"?a", PATH_NOT_ABSOLUTE, NULL},
    };
    RUN_TARGET(cases, 0);
}

Test(path, in_place)
{
    char buf[] = "/a/%2e%2E/%7Eb%2f/./c?q=%7e";
    size_t n;
    cr_assert_eq(path_normalize_target(buf, strlen(buf), 0, buf, &n), PATH_OK);
    cr_assert_eq(n, strlen("/~b%2F/c?q=%7e"));
    cr_assert(memcmp(buf, "/~b%2F/c?q=%7e", n) == 0, "%.*s", (int)n, buf);
}

Test(path, idempotent)
{
    static const char *in[] = {"/a/../b",          "/a/b/.",         "//..",
                               "/%7e/%2e/x/..",    "/a%2f%2e%2e/..", "/a/.%2E/b//./../c/.",
                               "/%41/%42%2F/..//."};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char a[64], b[64];
        size_t na, nb;
        cr_assert_eq(path_normalize(in[i], strlen(in[i]), 0, a, &na), PATH_OK, "%s", in[i]);
        cr_assert_eq(path_normalize(a, na, 0, b, &nb), PATH_OK, "%s", in[i]);
        cr_expect(na == nb && memcmp(a, b, na) == 0, "%s: %.*s then %.*s", in[i], (int)na, a,
                  (int)nb, b);
    }
}

Test(path, result_text)
{
    cr_assert_str_eq(path_result_str(PATH_OK), "");
    cr_assert_str_eq(path_result_str(PATH_ABOVE_ROOT), "path climbs above /");
    cr_assert_str_eq(path_result_str(PATH_BAD_ESCAPE), "invalid percent-encoding in path");
    cr_assert_str_eq(path_result_str(PATH_ENCODED_SLASH), "encoded slash or backslash in path");
    cr_assert_str_eq(path_result_str(PATH_NOT_ABSOLUTE), "path does not start with /");
}
