/* Unit tests for the admin API's rule for changes (src/admin/admin.c): the bearer token check and
 * who may change what without a token. The listener itself is tested end to end
 * (tests/e2e/test_91_observability.py). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "admin/admin.h"

static bool bearer(const char *token, const char *value)
{
    return admin_bearer_ok(token, value, value ? strlen(value) : 0);
}

Test(admin, bearer_token_must_match_exactly)
{
    cr_expect(bearer("s3cret", "Bearer s3cret"));
    cr_expect(bearer("s3cret", "bearer s3cret"), "the scheme is case-insensitive");
    cr_expect(bearer("s3cret", "BEARER   s3cret"), "1*SP after the scheme");
    cr_expect_not(bearer("s3cret", "Bearer s3cre"));
    cr_expect_not(bearer("s3cret", "Bearer s3cret-and-more"));
    cr_expect_not(bearer("s3cret", "Bearer S3CRET"), "the token is case-sensitive");
    cr_expect_not(bearer("s3cret", "Bearer"));
    cr_expect_not(bearer("s3cret", "Bearer "));
    cr_expect_not(bearer("s3cret", "Basic czNjcmV0"));
    cr_expect_not(bearer("s3cret", "Bearers3cret"));
    cr_expect_not(bearer("s3cret", "s3cret"));
    cr_expect_not(bearer("s3cret", ""));
    cr_expect_not(bearer("s3cret", NULL));
    cr_expect_not(bearer(NULL, "Bearer s3cret"));
    /* only the first len bytes count (a field value is a span, not a C string) */
    const char *v = "Bearer s3cretXYZ";
    cr_expect(admin_bearer_ok("s3cret", v, 13));
    cr_expect_not(admin_bearer_ok("s3cret", v, 14));
    /* a long token, and a guess of another length */
    char big[5000];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char hdr[5100];
    snprintf(hdr, sizeof(hdr), "Bearer %s", big);
    cr_expect(bearer(big, hdr));
    hdr[strlen(hdr) - 1] = '\0';
    cr_expect_not(bearer(big, hdr));
}

Test(admin, changes_without_a_token_only_on_a_unix_socket)
{
    /* no token: a unix socket (mode 0600) decides who connects; TCP is refused (403) */
    cr_expect_eq(admin_authorize(NULL, true, NULL, 0), ADMIN_AUTH_OK);
    cr_expect_eq(admin_authorize(NULL, false, NULL, 0), ADMIN_AUTH_NO_TOKEN);
    cr_expect_eq(admin_authorize(NULL, false, "Bearer x", 8), ADMIN_AUTH_NO_TOKEN,
                 "any token is refused when none is configured");
    /* a token: required on every listener (401 without it or with another) */
    cr_expect_eq(admin_authorize("t0k", false, "Bearer t0k", 10), ADMIN_AUTH_OK);
    cr_expect_eq(admin_authorize("t0k", true, "Bearer t0k", 10), ADMIN_AUTH_OK);
    cr_expect_eq(admin_authorize("t0k", false, NULL, 0), ADMIN_AUTH_BAD_TOKEN);
    cr_expect_eq(admin_authorize("t0k", true, NULL, 0), ADMIN_AUTH_BAD_TOKEN);
    cr_expect_eq(admin_authorize("t0k", false, "Bearer t0K", 10), ADMIN_AUTH_BAD_TOKEN);
}
