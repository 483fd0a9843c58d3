/* cidr — see cidr.h. */
#include "base/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Clears the bits of a[0..n) beyond `bits`; returns true when any was set. */
static bool mask(uint8_t *a, size_t n, unsigned bits)
{
    bool had = false;
    for (size_t i = 0; i < n; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * (unsigned)i : 0;
        uint8_t m = keep == 0 ? 0 : (uint8_t)(0xffu << (8 - keep));
        had |= (a[i] & (uint8_t)~m) != 0;
        a[i] &= m;
    }
    return had;
}

int cidr_parse(const char *s, size_t len, struct cidr *out)
{
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash = memchr(s, '/', len);
    size_t iplen = slash ? (size_t)(slash - s) : len;
    if (iplen == 0 || iplen >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, s, iplen);
    ip[iplen] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, ip, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, ip, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    unsigned bits = max;
    if (slash) {
        const char *d = slash + 1, *end = s + len;
        if (d == end || end - d > 3 || (*d == '0' && end - d > 1))
            return -EINVAL;
        bits = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return -EINVAL;
            bits = bits * 10 + (unsigned)(*d - '0');
        }
        if (bits > max)
            return -EINVAL;
    }
    out->bits = (uint8_t)bits;
    return mask(out->addr, max / 8, bits) ? -ERANGE : 0;
}

/* The first `bits` bits of a and b are equal. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t m = (uint8_t)(0xffu << (8 - rest));
    return (a[whole] & m) == (b[whole] & m);
}

bool cidr_match(const struct cidr *c, const struct sockaddr *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *a;
    int family;
    if (!addr)
        return false;
    if (addr->sa_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)addr)->sin_addr;
        family = AF_INET;
    } else if (addr->sa_family == AF_INET6) {
        a = ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr.s6_addr;
        family = AF_INET6;
        if (c->family == AF_INET && memcmp(a, mapped, sizeof(mapped)) == 0) {
            a += 12;
            family = AF_INET;
        }
    } else {
        return false;
    }
    return family == c->family && prefix_eq(a, c->addr, c->bits);
}

bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *addr)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_match(&list[i], addr))
            return true;
    return false;
}

char *cidr_str(const struct cidr *c, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (!inet_ntop(c->family, c->addr, ip, sizeof(ip)))
        ip[0] = '\0';
    snprintf(buf, cap, "%s/%u", ip, c->bits);
    return buf;
}
