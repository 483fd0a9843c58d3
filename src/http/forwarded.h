/* forwarded — who the client is when HTTP proxies in front of golb say so (trustedProxies).
 *
 * A request's X-Forwarded-For is a chain of addresses, each proxy appending the address it saw:
 *
 *   X-Forwarded-For: 203.0.113.7, 10.0.0.5        peer 10.0.0.9
 *                    client?      proxy?           the hop golb sees (socket or PROXY header)
 *
 * The client address is found as nginx's real_ip_recursive (and Envoy's xff_num_trusted_hops)
 * do: when the peer is trusted, walk the chain from the right; every trusted entry is another
 * proxy, the first untrusted one is the client. A chain of trusted entries only gives its
 * left-most; an entry that is not an address (IPv4, IPv6, or IPv6 in brackets; nothing else, no
 * port) stops the walk at the trusted entry to its right, since nothing left of it can be
 * believed. An untrusted peer's chain is never read: the peer is the client.
 */
#ifndef GOLB_FORWARDED_H
#define GOLB_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>

struct cidr;
struct http_request;

/* True when ip[0..len) (an address as text) is in trusted[0..n). */
bool forwarded_trusted(const struct cidr *trusted, size_t n, const char *ip, size_t len);

/* The client address of req, which came from `peer` (text; the connection's client address),
 * written as text into out[0..cap) (cap >= 46), its length returned: the peer itself when it is
 * not trusted or sent no usable X-Forwarded-For, else the right-most untrusted chain entry (see
 * above), in its normal text form. */
size_t forwarded_client(const struct http_request *req, const struct cidr *trusted, size_t n,
                        const char *peer, size_t peer_len, char *out, size_t cap);

#endif
