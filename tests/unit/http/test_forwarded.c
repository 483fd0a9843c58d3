/* Unit tests for forwarded: the client address through trusted proxies (nginx real_ip_recursive
 * semantics), as a table of peer, X-Forwarded-For fields and the expected answer. */
#include <criterion/criterion.h>

#include <string.h>

#include "base/cidr.h"
#include "http/forwarded.h"
#include "http/http.h"

static struct cidr trusted[3];

static void setup(void)
{
    cr_assert_eq(cidr_parse("10.0.0.0/8", 10, &trusted[0]), 0);
    cr_assert_eq(cidr_parse("2001:db8::/32", 13, &trusted[1]), 0);
    cr_assert_eq(cidr_parse("192.0.2.1", 9, &trusted[2]), 0);
}

TestSuite(forwarded, .init = setup);

struct vec {
    const char *peer;
    const char *xff[3]; /* field values, NULL-terminated */
    const char *want;
};

static void check(const struct vec *v)
{
    struct http_field f[3];
    size_t n = 0;
    for (; n < 3 && v->xff[n]; n++)
        f[n] = (struct http_field){.name = "x-forwarded-for",
                                   .name_len = 15,
                                   .value = v->xff[n],
                                   .value_len = (uint32_t)strlen(v->xff[n]),
                                   .id = HTTP_F_X_FORWARDED_FOR};
    struct http_field other = {.name = "x-other", .name_len = 7, .value = "10.0.0.1",
                               .value_len = 8};
    struct http_field all[4];
    memcpy(all, f, n * sizeof(f[0]));
    all[n] = other; /* other fields are not read */
    struct http_request req = {.fields = all, .num_fields = n + 1};
    char out[64];
    size_t len = forwarded_client(&req, trusted, 3, v->peer, strlen(v->peer), out, sizeof(out));
    cr_expect_str_eq(out, v->want, "peer %s, xff [%s | %s]", v->peer, v->xff[0] ? v->xff[0] : "",
                     v->xff[1] ? v->xff[1] : "");
    cr_expect_eq(len, strlen(out));
}

Test(forwarded, vectors)
{
    static const struct vec vs[] = {
        /* an untrusted peer is the client, whatever it says */
        {"203.0.113.9", {"10.0.0.1", NULL}, "203.0.113.9"},
        {"203.0.113.9", {NULL}, "203.0.113.9"},
        /* a trusted peer: the right-most untrusted entry */
        {"10.0.0.9", {"203.0.113.1", NULL}, "203.0.113.1"},
        {"10.0.0.9", {"198.51.100.7, 203.0.113.1, 10.0.0.5", NULL}, "203.0.113.1"},
        {"192.0.2.1", {"198.51.100.7,10.1.2.3 ,\t10.0.0.5", NULL}, "198.51.100.7"},
        /* across fields: the last field holds the right end */
        {"10.0.0.9", {"198.51.100.7", "10.0.0.4, 10.0.0.5", NULL}, "198.51.100.7"},
        {"10.0.0.9", {"198.51.100.7", "203.0.113.2", NULL}, "203.0.113.2"},
        /* every entry trusted: the left-most */
        {"10.0.0.9", {"10.0.0.1, 10.0.0.2", NULL}, "10.0.0.1"},
        /* no chain, or an empty one: the peer */
        {"10.0.0.9", {NULL}, "10.0.0.9"},
        {"10.0.0.9", {"", " , ", NULL}, "10.0.0.9"},
        /* not an address: the walk stops at the trusted hop to its right */
        {"10.0.0.9", {"203.0.113.1, unknown, 10.0.0.5", NULL}, "10.0.0.5"},
        {"10.0.0.9", {"203.0.113.1, 10.0.0.5:8080", NULL}, "10.0.0.9"},
        {"10.0.0.9", {"203.0.113.1, [10.0.0.5]", NULL}, "10.0.0.9"},
        {"10.0.0.9", {"010.0.0.5", NULL}, "10.0.0.9"},
        /* IPv6, bare or in brackets, written in normal form */
        {"2001:db8::1", {"2001:0db8:0:0::7, 2001:DB9::1", NULL}, "2001:db9::1"},
        {"2001:db8::1", {"[2001:db9::0:1]", NULL}, "2001:db9::1"},
        {"2001:db8::1", {"198.51.100.7, [2001:db8::2]", NULL}, "198.51.100.7"},
        /* an IPv4-mapped peer is matched as the IPv4 address it is */
        {"::ffff:10.0.0.9", {"198.51.100.7", NULL}, "198.51.100.7"},
    };
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++)
        check(&vs[i]);
}

Test(forwarded, trusted)
{
    cr_expect(forwarded_trusted(trusted, 3, "10.9.9.9", 8));
    cr_expect(forwarded_trusted(trusted, 3, "[2001:db8::5]", 13));
    cr_expect_not(forwarded_trusted(trusted, 3, "192.0.2.2", 9));
    cr_expect_not(forwarded_trusted(trusted, 3, "10.0.0.1x", 9));
    cr_expect_not(forwarded_trusted(trusted, 0, "10.0.0.1", 8), "an empty list trusts nobody");
}
