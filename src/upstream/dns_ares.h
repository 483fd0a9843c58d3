/* dns_ares — the resolver thread: c-ares on its own poll loop, never on a worker and never in
 * the way of a request or a reload. It asks dns.h what is due, queries it (A/AAAA through
 * ares_getaddrinfo, SRV through ares_query then each target's addresses), hands every outcome to
 * dns_answer and calls on_change (on this thread) when a published set changed. Nameservers are
 * `resolvers.nameservers` (CSV, ports allowed) or /etc/resolv.conf's; /etc/hosts is not read
 * (lookups "b"); each try waits 1 s, 2 tries.
 */
#ifndef GOLB_DNS_ARES_H
#define GOLB_DNS_ARES_H
#include <stdbool.h>
#include <stdint.h>

struct config;
struct dns;
struct dns_ares;

/* Starts the thread over d with cfg's nameservers. NULL after logging on failure. */
struct dns_ares *dns_ares_start(struct dns *d, const struct config *cfg,
                                void (*on_change)(void *arg), void *arg);
/* A reload's nameservers, applied on the thread before its next queries. */
void dns_ares_configure(struct dns_ares *r, const struct config *cfg);
/* New names are due (dns_sync): look again now. */
void dns_ares_wake(struct dns_ares *r);
/* Waits (start-up only) until every name had an outcome, at most timeout_ms: true if so. */
bool dns_ares_wait_settled(struct dns_ares *r, uint64_t timeout_ms);
/* Stops and joins the thread; queries still out are dropped. r may be NULL. */
void dns_ares_stop(struct dns_ares *r);

#endif
