/* path — the normal form of a request path (RFC 3986 §6.2.2), the one routing matches and the
 * upstream receives, so that the two never disagree about what a path means.
 *
 *   "/a/./b/../c"      → "/a/c"          dot-segments removed (§5.2.4)
 *   "/%7euser/%41"     → "/~user/A"      percent-encoded unreserved characters decoded
 *   "/a%2fb", "/%3f"   → "/a%2Fb", "/%3F" other escapes kept, hex upper-cased
 *   "/a//b"            → "/a//b"         empty segments kept
 *   "/%2e%2e/x", "/.." → PATH_ABOVE_ROOT a path that climbs above "/" (a 400, not RFC's "/x")
 *   "/a%zz", "/a%4"    → PATH_BAD_ESCAPE
 *
 * "%2F" and "%5C" are never decoded: a backend that decodes them sees a different path than the
 * route did, so with PATH_REJECT_ENCODED_SLASH they are refused (PATH_ENCODED_SLASH), and a raw
 * "\" too (some backends read it as "/"). Other bytes are left as they are: the HTTP parser has
 * already limited a request target to visible ASCII. The result is never longer than the input and
 * normalising it again changes nothing.
 */
#ifndef GOLB_PATH_H
#define GOLB_PATH_H

#include <stddef.h>

enum path_result {
    PATH_OK = 0,
    PATH_NOT_ABSOLUTE,  /* empty, or does not start with "/" */
    PATH_BAD_ESCAPE,    /* "%" not followed by two hexadecimal digits */
    PATH_ABOVE_ROOT,    /* a ".." segment (also "%2E%2E") climbs above "/" */
    PATH_ENCODED_SLASH, /* "%2F", "%5C" or "\" under PATH_REJECT_ENCODED_SLASH */
};

/* flags */
#define PATH_REJECT_ENCODED_SLASH 0x1u /* encodedSlash: reject */

/* Normalises the path in[0..len) (the part of an origin-form target before "?") into out, which
 * has room for len bytes and may be `in` itself (in place); *out_len is the length written. Any
 * result but PATH_OK means the request is answered 400, and out holds nothing useful. */
enum path_result path_normalize(const char *in, size_t len, unsigned flags, char *out,
                                size_t *out_len);

/* The same for a whole origin-form target: the path before the first "?" is normalised and
 * "?query" follows unchanged (never decoded, never re-encoded). */
enum path_result path_normalize_target(const char *in, size_t len, unsigned flags, char *out,
                                       size_t *out_len);

/* What a result means, for logs: "path climbs above /", ... ("" for PATH_OK). */
const char *path_result_str(enum path_result r);

#endif
