/* cidr — IPv4 and IPv6 address ranges ("10.0.0.0/8", "2001:db8::/32", "::1") and whether a client
 * address falls in one: the allow/deny lists of a route (config_route.c parses them, core/route.c
 * checks them per request).
 *
 * A range is kept as its network address (host bits cleared) and a prefix length. An IPv4 client
 * seen as an IPv4-mapped IPv6 address (::ffff:10.1.2.3, a dual-stack listener) is matched as the
 * IPv4 address it is, so "10.0.0.0/8" covers it; an IPv6 range never matches a plain IPv4 client.
 */
#ifndef GOLB_CIDR_H
#define GOLB_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t bits;     /* prefix length: 0..32 or 0..128 */
    uint8_t addr[16]; /* network address in network byte order (4 bytes used for IPv4) */
};

/* Parses s[0..len): ADDR or ADDR/BITS, ADDR an IPv4 dotted quad or an IPv6 address (no brackets,
 * no zone), BITS decimal without a sign or leading zero, at most 32 or 128; without /BITS the
 * range is the single address. Returns 0, -EINVAL for a malformed value, or -ERANGE when ADDR has
 * bits set beyond the prefix ("10.0.0.1/8"): *out is then filled with the range it means
 * (10.0.0.0/8), so a caller may warn and go on. */
int cidr_parse(const char *s, size_t len, struct cidr *out);
/* True when addr (AF_INET or AF_INET6; any other family: false) is inside c. */
bool cidr_match(const struct cidr *c, const struct sockaddr *addr);
/* True when addr is inside any of list[0..n). */
bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *addr);
/* "10.0.0.0/8", "2001:db8::/32" into buf; returns buf. */
char *cidr_str(const struct cidr *c, char *buf, size_t cap);

#endif
