/* path — see path.h.
 *
 * Two passes over the caller's buffer, each writing at or behind where it reads, so the output
 * never outgrows the input and the work can be done in place:
 *
 *   in   "/a/%2e%2E/%7Eb%2f/./c"
 *   1    "/a/../~b%2F/./c"      escapes: unreserved decoded, others upper-cased, bad ones refused
 *   2    "/~b%2F/c"             segments: "." dropped, ".." pops the last output segment
 *
 * Pass 2 is RFC 3986 §5.2.4 on whole segments, except that a ".." with nothing left to pop is an
 * error rather than ignored. A "." or ".." as the last segment leaves a trailing "/" ("/a/." →
 * "/a/"), as the RFC does.
 */
#include "http/path.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 3986 §2.3 unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" */
static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Pass 1: escapes. out may be in. */
static enum path_result escapes(const char *in, size_t len, unsigned flags, char *out,
                                size_t *out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    bool reject = flags & PATH_REJECT_ENCODED_SLASH;
    size_t w = 0;
    for (size_t r = 0; r < len; r++) {
        char c = in[r];
        if (c == '\\' && reject)
            return PATH_ENCODED_SLASH;
        if (c != '%') {
            out[w++] = c;
            continue;
        }
        if (r + 2 >= len)
            return PATH_BAD_ESCAPE;
        int hi = hexval(in[r + 1]), lo = hexval(in[r + 2]);
        if (hi < 0 || lo < 0)
            return PATH_BAD_ESCAPE;
        unsigned char v = (unsigned char)(hi << 4 | lo);
        r += 2;
        if (unreserved(v)) {
            out[w++] = (char)v;
            continue;
        }
        if ((v == '/' || v == '\\') && reject)
            return PATH_ENCODED_SLASH;
        out[w++] = '%';
        out[w++] = hex[hi];
        out[w++] = hex[lo];
    }
    *out_len = w;
    return PATH_OK;
}

/* Pass 2: dot-segments, in place on p[0..n), which starts with "/". */
static enum path_result dot_segments(char *p, size_t n, size_t *out_len)
{
    size_t r = 0, w = 0;
    while (r < n) {
        /* p[r] is the "/" before a segment */
        size_t s = r + 1, e = s;
        while (e < n && p[e] != '/')
            e++;
        size_t sl = e - s;
        bool last = e == n;
        if (sl == 1 && p[s] == '.') {
            if (last)
                p[w++] = '/';
        } else if (sl == 2 && p[s] == '.' && p[s + 1] == '.') {
            if (w == 0)
                return PATH_ABOVE_ROOT;
            while (p[--w] != '/') /* p[0] is "/": the loop stops there at the latest */
                ;
            if (last)
                p[w++] = '/';
        } else {
            memmove(p + w, p + r, sl + 1);
            w += sl + 1;
        }
        r = e;
    }
    *out_len = w;
    return PATH_OK;
}

enum path_result path_normalize(const char *in, size_t len, unsigned flags, char *out,
                                size_t *out_len)
{
    size_t n;
    *out_len = 0;
    if (len == 0 || in[0] != '/')
        return PATH_NOT_ABSOLUTE;
    enum path_result r = escapes(in, len, flags, out, &n);
    if (r != PATH_OK)
        return r;
    r = dot_segments(out, n, &n);
    if (r == PATH_OK)
        *out_len = n;
    return r;
}

enum path_result path_normalize_target(const char *in, size_t len, unsigned flags, char *out,
                                       size_t *out_len)
{
    const char *q = memchr(in, '?', len);
    size_t plen = q ? (size_t)(q - in) : len, n;
    enum path_result r = path_normalize(in, plen, flags, out, &n);
    if (r != PATH_OK)
        return r;
    memmove(out + n, in + plen, len - plen); /* "?query", as it came */
    *out_len = n + (len - plen);
    return PATH_OK;
}

const char *path_result_str(enum path_result r)
{
    switch (r) {
    case PATH_OK:
        return "";
    case PATH_NOT_ABSOLUTE:
        return "path does not start with /";
    case PATH_BAD_ESCAPE:
        return "invalid percent-encoding in path";
    case PATH_ABOVE_ROOT:
        return "path climbs above /";
    case PATH_ENCODED_SLASH:
        return "encoded slash or backslash in path";
    }
    return "invalid path";
}
