/* libFuzzer target for path_normalize and path_normalize_target: arbitrary bytes as a request
 * target, with and without encodedSlash: reject.
 *
 * Invariants: the output is never longer than the input and starts with "/"; normalising it again
 * gives the same bytes (idempotent); it has no "." or ".." segment, no escape of an unreserved
 * character and no lower-case hex digit in an escape; under reject no "%2F", "%5C" or "\"; in
 * place gives the same as into another buffer; a target's query comes out byte for byte; and a
 * path that normalises without reject normalises the same with it, or is refused for a slash.
 * Exact-size heap copies, so ASan sees any read past the end. */
#include "fuzz_support.h"

#include <stdbool.h>

#include "http/path.h"

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lower case is a finding too */
}

static void check_normal(const char *p, size_t n, unsigned flags)
{
    CHECK(n >= 1 && p[0] == '/');
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '/') {
            size_t e = i + 1;
            while (e < n && p[e] != '/')
                e++;
            size_t sl = e - i - 1;
            CHECK(!(sl == 1 && p[i + 1] == '.'));
            CHECK(!(sl == 2 && p[i + 1] == '.' && p[i + 2] == '.'));
        }
        if (p[i] == '\\')
            CHECK(!(flags & PATH_REJECT_ENCODED_SLASH));
        if (p[i] == '%') {
            CHECK(i + 2 < n);
            int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
            CHECK(hi >= 0 && lo >= 0);
            unsigned char v = (unsigned char)(hi << 4 | lo);
            CHECK(!unreserved(v));
            if (flags & PATH_REJECT_ENCODED_SLASH)
                CHECK(v != '/' && v != '\\');
            i += 2;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    char *out = malloc(size ? size : 1), *again = malloc(size ? size : 1);
    CHECK(out && again);
    enum path_result keep_rc = PATH_OK;
    char *keep = NULL;
    size_t keep_len = 0;
    for (unsigned flags = 0; flags <= PATH_REJECT_ENCODED_SLASH; flags++) {
        size_t n = 0, m = 0;
        enum path_result rc = path_normalize(in, size, flags, out, &n);
        CHECK(rc >= PATH_OK && rc <= PATH_ENCODED_SLASH);
        CHECK(*path_result_str(rc) != '\0' || rc == PATH_OK);
        if (flags == 0) {
            keep_rc = rc;
            keep = fuzz_dup(out, n);
            keep_len = n;
            CHECK(rc != PATH_ENCODED_SLASH);
        } else if (keep_rc == PATH_OK) {
            CHECK(rc == PATH_OK || rc == PATH_ENCODED_SLASH);
            if (rc == PATH_OK)
                CHECK(n == keep_len && memcmp(out, keep, n) == 0);
        } else {
            CHECK(rc == keep_rc || rc == PATH_ENCODED_SLASH);
        }
        if (rc != PATH_OK)
            continue;
        CHECK(n <= size);
        check_normal(out, n, flags);
        CHECK(path_normalize(out, n, flags, again, &m) == PATH_OK);
        CHECK(m == n && memcmp(again, out, n) == 0);

        /* in place */
        char *copy = fuzz_dup(in, size);
        CHECK(path_normalize(copy, size, flags, copy, &m) == PATH_OK);
        CHECK(m == n && memcmp(copy, out, n) == 0);
        free(copy);
    }
    free(keep);

    /* the whole target: the path as above, the query untouched */
    size_t n = 0;
    enum path_result rc = path_normalize_target(in, size, 0, out, &n);
    const char *q = memchr(in, '?', size);
    size_t plen = q ? (size_t)(q - in) : size, pn = 0;
    CHECK(rc == path_normalize(in, plen, 0, again, &pn));
    if (rc == PATH_OK) {
        CHECK(n == pn + (size - plen) && n <= size);
        CHECK(memcmp(out, again, pn) == 0);
        CHECK(memcmp(out + pn, in + plen, size - plen) == 0);
    }
    free(again);
    free(out);
    free(in);
    return 0;
}
