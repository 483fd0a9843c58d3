/* route — the route table of one configuration, compiled once (route_table_build) and read by
 * every worker without a lock; which route a request takes (route_match), then what that route
 * decides: the pool of a pool or split route (route_pool), whether the client may pass (allow/deny:
 * route_client_allowed) and whether it is over its rate (route_rate_limit).
 *
 * Matching costs about the same whatever the number of routes: the request's host is looked up
 * in a hash table (exact names, then each wildcard suffix), each tree found is walked once along
 * the path's segments, and only the routes met on the way (their indices, in file order) have
 * their remaining conditions (methods, headers, query, regex) checked; the lowest index that holds
 * wins, which is "the first route in the file whose every condition holds".
 *
 *   host ──▶ "api.example.com" ─┐      tree: root ─"static"─▶ n1 ─"css"─▶ n2
 *            "*.example.com"  ──┼─▶          │ prefix: [routes without a path, pathPrefix "/"]
 *            (any host)       ──┘            n1 prefix: [pathPrefix /static]  n2 exact: [path
 * /static/css]
 *
 * The input is protocol-neutral (struct route_input): HTTP/1 and HTTP/2 sessions fill it from
 * their own request; the path must already be in normal form (http/path.h), the same form the
 * configuration's paths were put in at load.
 */
#ifndef GOLB_ROUTE_H
#define GOLB_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct config_route;
struct route_table;
struct route_worker;
struct rewrite_headers;

/* What matching reads of a request. Pointers are borrowed for the call only. */
struct route_input {
    const char *method; /* as received (methods are case-sensitive) */
    size_t method_len;
    const char *host; /* Host or :authority as received: any case, maybe a port, maybe a trailing
                         dot; NULL (or empty) when the request has none: only routes without
                         match.host can match */
    size_t host_len;
    const char *path; /* normalised (path_normalize), without the query */
    size_t path_len;
    const char *query; /* after "?", without it; NULL when there is none */
    size_t query_len;
    /* The nth (from 0) value of the header field `name` (lower case, name_len bytes; compare it
     * case-insensitively), its length in *value_len; NULL when there are no more. NULL callback:
     * the request has no header fields. */
    const char *(*header)(const void *ctx, const char *name, size_t name_len, size_t nth,
                          size_t *value_len);
    const void *header_ctx;
    struct route_worker *worker; /* this thread's scratch for regexes; NULL: allocated per call
                                    (tests and tools only: that allocates) */
};

/* Compiles cfg's routes (cfg->routes, valid: config_load checked them). The table borrows cfg,
 * which must outlive it (the generation owns both). NULL when memory runs out. A configuration
 * without routes gives an empty table: route_match is then always -1 (the default pool). */
struct route_table *route_table_build(const struct config *cfg);
void route_table_free(struct route_table *t);

/* The index in cfg->routes of the first route whose every condition holds, or -1: no route
 * matches (the default pool when there is one). Never allocates when in->worker is set. */
int route_match(const struct route_table *t, const struct route_input *in);

/* The route `i` as configured (its action, filters, policies, name). */
const struct config_route *route_get(const struct route_table *t, int i);
int route_count(const struct route_table *t);

/* Route i's header filters as http/rewrite.h applies them: request (setRequestHeaders,
 * removeRequestHeaders) and response (setResponseHeaders, removeResponseHeaders); NULL when the
 * route has none. Valid as long as the table. */
const struct rewrite_headers *route_request_headers(const struct route_table *t, int i);
const struct rewrite_headers *route_response_headers(const struct route_table *t, int i);

/* The pool (index in cfg->pools) a request on route i goes to: the route's pool, or for a split
 * the entry that `draw` selects in proportion to the weights (draw % total weight: a counter gives
 * exact shares per cycle, a random number proportional ones). -1 for redirect and respond. */
int route_pool(const struct route_table *t, int i, uint32_t draw);

/* Whether the client address may use route i: not in its deny list, and in its allow list when
 * it has one. A route without either lets everyone through. */
bool route_client_allowed(const struct route_table *t, int i, const struct sockaddr *client);

/* Route i's rateLimit for this client on this worker: 0 when the request may go (or the route
 * has no rateLimit), else the seconds to put in Retry-After (>= 1). The buckets are w's own (one
 * per worker, no lock) and keyed by the route's name and the client's IP, so a reload that keeps a
 * route keeps its clients' buckets. */
uint32_t route_rate_limit(struct route_worker *w, const struct route_table *t, int i,
                          const struct sockaddr *client, uint64_t now_ms);

/* A worker's scratch: PCRE2 match data and the rate-limit buckets (at most `buckets` clients ×
 * routes, least recently seen evicted first). NULL when memory runs out. */
struct route_worker *route_worker_new(size_t buckets);
void route_worker_free(struct route_worker *w);

/* Bytes the table holds, compiled regexes included. */
size_t route_table_memory(const struct route_table *t);

#endif
