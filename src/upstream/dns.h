/* dns — what DNS says of the backends configured with `resolve:` (config.h), as sets that a
 * generation expands into backends (core/generation.c). This module is the answers' logic only:
 * which names to ask and when, TTLs clamped to [minTtl, maxTtl], a failing or empty answer held
 * for holdOnFailure before the last good set is emptied, sets kept sorted so that a change is one
 * comparison, the counters and the status. It does no I/O: the resolver thread
 * (upstream/dns_ares.c, c-ares) asks dns_due what to query and hands every outcome to
 * dns_answer; tests do the same with made-up answers (the fake resolver).
 *
 *   resolver thread:  dns_due ─► query ─► dns_answer ─► changed? ─► on_change (server: a new
 *                                                                   generation, as a reload)
 *   control thread:   generation_new_dns ─► dns_lookup (the published set, under the lock)
 *   admin thread:     dns_status_json, dns_metrics
 *
 * Names are keyed by (type, host): `resolve: a` sets hold addresses without ports (the URL's port
 * is each backend's), `resolve: srv` sets hold the targets' addresses with their ports, weights
 * and priorities. Every function takes the object's lock; none blocks on anything else.
 */
#ifndef GOLB_DNS_H
#define GOLB_DNS_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct config;

#define DNS_SET_MAX 64 /* addresses kept per name (more are dropped, with a warning) */

enum dns_result {
    DNS_OK = 0,   /* an answer with addresses */
    DNS_EMPTY,    /* an answer without any (NODATA, or SRV targets without addresses) */
    DNS_NXDOMAIN, /* the name does not exist */
    DNS_SERVFAIL, /* the server failed or refused (any other error) */
    DNS_TIMEOUT,  /* no answer in time */
    DNS_RESULT_COUNT,
};

/* One address of a set. port is 0 for `resolve: a` (the URL gives it). */
struct dns_target {
    struct sockaddr_storage addr; /* port 0 inside; see port */
    socklen_t addrlen;
    uint16_t port, weight, priority;
};

#define DNS_HOST_MAX 256

/* A query to make (dns_due): CONFIG_RESOLVE_A or _SRV, and the name. */
struct dns_query {
    int type;
    char host[DNS_HOST_MAX];
};

struct dns_params {
    uint32_t min_ttl_s, max_ttl_s, hold_s;
};

struct dns;

/* An empty set of names. NULL on allocation failure. */
struct dns *dns_new(const struct dns_params *p);
void dns_free(struct dns *d);
/* Takes the names of cfg's `resolve:` backends (every pool) and its `resolvers` timings: names
 * that are new are due at once; with `prune`, names cfg does not use are forgotten (a reload
 * adds before it may fail, prunes once it runs). Returns how many are new, or -ENOMEM. */
int dns_sync(struct dns *d, const struct config *cfg, bool prune);
/* The number of names. */
int dns_count(struct dns *d);
/* The names whose query is due at now_ms (at most cap), each marked as asked until its
 * dns_answer; returns how many. *next_ms gets the time the next one is due, or a hold ends
 * (UINT64_MAX: none). Copies, so that dns_sync may change the names meanwhile. */
int dns_due(struct dns *d, uint64_t now_ms, struct dns_query *q, int cap, uint64_t *next_ms);
/* Empties the sets of the names that have failed for holdOnFailure (dns_answer does the same
 * when an answer comes; this is for the clock: a query may take longer than the hold). True
 * when a set changed. dns_due's next_ms counts these deadlines too. */
bool dns_expire(struct dns *d, uint64_t now_ms);
/* The outcome of the query for (type, host) (a name dns_sync dropped meanwhile: ignored): r, the
 * addresses t[0..n) (r DNS_OK; any order, duplicates allowed) and the smallest TTL of the
 * records. Re-arms the name (the TTL clamped; a failure retries after minTtl) and publishes a new
 * set when it differs: an OK answer at once, a failure or an empty answer only when the name has
 * failed for holdOnFailure (then the set is emptied). Logs each change (one line) and the start
 * of each failing streak. Returns true when the published set changed. */
bool dns_answer(struct dns *d, int type, const char *host, uint64_t now_ms, enum dns_result r,
                const struct dns_target *t, int n, uint32_t ttl_s);
/* The published set of (type, host) into out[0..cap): returns its size (0 for an unknown name). */
int dns_lookup(struct dns *d, int type, const char *host, struct dns_target *out, int cap);
/* True once every name has had an answer or a failure (the first round of start-up). */
bool dns_settled(struct dns *d);
/* The result's name in metrics and the API: "ok", "empty", "nxdomain", "servfail", "timeout". */
const char *dns_result_name(enum dns_result r);
/* The `dns` array of /api/v1/status: one object per name. */
void dns_status_json(struct dns *d, FILE *f, uint64_t now_ms);
/* golb_dns_resolutions_total{name,result} and golb_dns_backends{name}, Prometheus text. */
void dns_metrics(struct dns *d, FILE *f);

/* The TTL to wait for: ttl clamped to [min, max]. */
uint32_t dns_clamp_ttl(uint32_t ttl_s, uint32_t min_s, uint32_t max_s);
/* The smallest TTL of the answer section of the DNS message m[0..len) (RFC 1035 §4.1), into
 * *ttl_s: 0, or -EBADMSG when m is not a well-formed message with at least one answer. c-ares
 * 1.18 parses SRV records without their TTL; this reads it. */
int dns_msg_min_ttl(const unsigned char *m, size_t len, uint32_t *ttl_s);

#endif
