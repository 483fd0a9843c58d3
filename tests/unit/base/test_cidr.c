/* Unit tests for cidr: parsing (forms, bounds, host bits beyond the prefix), matching IPv4, IPv6
 * and IPv4-mapped IPv6 clients, and the text form. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "base/cidr.h"

static struct cidr parse_ok(const char *s)
{
    struct cidr c;
    int rc = cidr_parse(s, strlen(s), &c);
    cr_assert_eq(rc, 0, "%s: %d", s, rc);
    return c;
}

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a = (void *)&ss;
    struct sockaddr_in6 *b = (void *)&ss;
    if (inet_pton(AF_INET, ip, &a->sin_addr) == 1) {
        a->sin_family = AF_INET;
    } else {
        cr_assert_eq(inet_pton(AF_INET6, ip, &b->sin6_addr), 1, "%s", ip);
        b->sin6_family = AF_INET6;
    }
    return ss;
}

static bool in(const char *range, const char *ip)
{
    struct cidr c = parse_ok(range);
    struct sockaddr_storage ss = addr(ip);
    return cidr_match(&c, (struct sockaddr *)&ss);
}

Test(cidr, forms_and_text)
{
    char buf[64];
    struct cidr c = parse_ok("10.0.0.0/8");
    cr_assert_eq(c.family, AF_INET);
    cr_assert_eq(c.bits, 8);
    cr_assert_str_eq(cidr_str(&c, buf, sizeof(buf)), "10.0.0.0/8");
    c = parse_ok("192.168.1.7");
    cr_assert_eq(c.bits, 32);
    c = parse_ok("::1");
    cr_assert_eq(c.family, AF_INET6);
    cr_assert_eq(c.bits, 128);
    cr_assert_str_eq(cidr_str(&c, buf, sizeof(buf)), "::1/128");
    c = parse_ok("2001:db8::/32");
    cr_assert_str_eq(cidr_str(&c, buf, sizeof(buf)), "2001:db8::/32");
    c = parse_ok("0.0.0.0/0");
    cr_assert_eq(c.bits, 0);
    c = parse_ok("::/0");
    cr_assert_eq(c.bits, 0);
}

Test(cidr, malformed)
{
    static const char *bad[] = {"",
                                "/8",
                                "10.0.0.0/",
                                "10.0.0.0/33",
                                "10.0.0/8",
                                "10.0.0.0/08",
                                "10.0.0.0/-1",
                                "10.0.0.0/ 8",
                                "::1/129",
                                "[::1]",
                                "fe80::1%eth0",
                                "example.com",
                                "10.0.0.0/8/8",
                                "1.2.3.4 ",
                                "10.0.0.0/1000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cidr c;
        cr_expect_eq(cidr_parse(bad[i], strlen(bad[i]), &c), -EINVAL, "\"%s\"", bad[i]);
    }
}

Test(cidr, host_bits_beyond_the_prefix)
{
    struct cidr c;
    char buf[64];
    cr_assert_eq(cidr_parse("10.1.2.3/8", 10, &c), -ERANGE);
    cr_assert_str_eq(cidr_str(&c, buf, sizeof(buf)), "10.0.0.0/8");
    cr_assert_eq(cidr_parse("2001:db8::1/32", 14, &c), -ERANGE);
    cr_assert_str_eq(cidr_str(&c, buf, sizeof(buf)), "2001:db8::/32");
    cr_assert_eq(cidr_parse("10.0.0.128/25", 13, &c), 0);
    cr_assert_eq(cidr_parse("10.0.0.129/25", 13, &c), -ERANGE);
}

Test(cidr, matching)
{
    cr_assert(in("10.0.0.0/8", "10.255.1.2"));
    cr_assert(!in("10.0.0.0/8", "11.0.0.1"));
    cr_assert(in("10.0.0.128/25", "10.0.0.200"));
    cr_assert(!in("10.0.0.128/25", "10.0.0.127"));
    cr_assert(in("192.168.1.7", "192.168.1.7"));
    cr_assert(!in("192.168.1.7", "192.168.1.8"));
    cr_assert(in("0.0.0.0/0", "203.0.113.9"));
    cr_assert(!in("0.0.0.0/0", "::1"), "an IPv4 range never matches a real IPv6 client");
    cr_assert(in("::1", "::1"));
    cr_assert(!in("::1", "127.0.0.1"));
    cr_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
    cr_assert(!in("2001:db8::/32", "2001:db9::1"));
    cr_assert(in("::/0", "2001:db8::1"));
    cr_assert(!in("::/0", "10.0.0.1"), "an IPv6 range never matches a plain IPv4 client");
    /* a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d */
    cr_assert(in("10.0.0.0/8", "::ffff:10.1.2.3"));
    cr_assert(!in("10.0.0.0/8", "::ffff:11.1.2.3"));
    cr_assert(in("::ffff:0:0/96", "::ffff:10.1.2.3"));
    cr_assert(in("2001:db8::1:0/112", "2001:db8::1:ffff"));
    cr_assert(!in("2001:db8::1:0/113", "2001:db8::1:ffff"));
}

Test(cidr, list_and_other_families)
{
    struct cidr list[2] = {parse_ok("10.0.0.0/8"), parse_ok("::1")};
    struct sockaddr_storage a = addr("10.9.9.9"), b = addr("::1"), c = addr("192.0.2.1");
    cr_assert(cidr_list_match(list, 2, (struct sockaddr *)&a));
    cr_assert(cidr_list_match(list, 2, (struct sockaddr *)&b));
    cr_assert(!cidr_list_match(list, 2, (struct sockaddr *)&c));
    cr_assert(!cidr_list_match(list, 0, (struct sockaddr *)&a));
    struct sockaddr un = {.sa_family = AF_UNIX};
    cr_assert(!cidr_match(&list[0], &un));
    cr_assert(!cidr_match(&list[0], NULL));
}
