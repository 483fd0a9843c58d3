/* health — active health checks on their own thread and event loop.
 *
 * Every healthCheckPeriod, each backend gets a non-blocking HTTP/1.1 GET of its health path, all
 * concurrently, each bounded by healthCheckTimeout. A 2xx status is healthy; any other status, an
 * invalid response, a refused or reset connection, or the timeout is unhealthy. Results are
 * published with backend_set_state(), which logs each transition with the reason. A check of a
 * backend is never started while its previous one is still running.
 *
 * Checked once per URL: the checker serves every pool of a generation, and backends of different
 * pools with the same URL (identity, health path and TLS settings: the same request to the same
 * place) share one check, one request per period, whose result is published to each of them
 * (its own streaks, thresholds and state: a pool's healthyThreshold and unhealthyThreshold apply
 * to its backend). Their settings meet as the strictest asks: the shortest healthCheckPeriod of
 * the pools, and a timeout that is the longest one, each backend judging the result by its own
 * (a check that took longer than a pool's healthCheckTimeout is a timeout for that pool's backend).
 */
#ifndef GOLB_HEALTH_H
#define GOLB_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "upstream/backend.h" /* enum backend_state (an enum cannot be forward-declared) */

struct backend_table;
struct config;
struct health;

/* One pool the checker serves: its table, built from cfg (its view, config_pool_view). */
struct health_pool {
    struct backend_table *table;
    const struct config *cfg;
};

/* Checks the backends of pools[0..n) with each pool's settings, one check per URL (above); the
 * tables and configurations must outlive it. NULL with errno set on failure. */
struct health *health_new_pools(const struct health_pool *pools, int n);
/* The same for one table (one pool). */
struct health *health_new(struct backend_table *table, const struct config *cfg);
/* Checks run by h: distinct URLs (tests, and the start-up line). */
int health_check_count(const struct health *h);
/* Checks every backend never checked yet (all of them at start-up, the new ones at a reload) to
 * completion on the calling thread (bounded by the timeout), so no backend gets traffic before it
 * was checked, then starts the checker thread. A checker carries on from the streaks the
 * backends keep, so a reload (a new checker) does not reset the rise/fall counts.
 * Returns 0 or -errno. */
int health_start(struct health *h);
/* A reload's checker, in two steps so that a failure changes nothing: health_start_held() checks
 * the never-checked backends that `running` (the checker in service) does not check, to
 * completion as health_start() does (a URL shared with a backend `running` checks is checked
 * once more, its result given only to the new backends), and starts the thread held: it runs no
 * round yet. 0 or -errno; on failure `running` was not touched (health_free(h) then). health_take_over() cannot
 * fail: it stops `running` (joined, the caller frees it) and only then lets h's rounds begin, so
 * no backend is ever checked by two checkers at once and checks never pause for more than the
 * join. health_stop() on a held checker ends its thread without a round. */
int health_start_held(struct health *h, const struct health *running);
void health_take_over(struct health *h, struct health *running);
/* Stops and joins the checker thread (safe to call if never started). */
void health_stop(struct health *h);
void health_free(struct health *h);

/* Tests only: a non-zero -errno here makes the next health_start() or health_start_held() fail
 * with it before doing anything (as if no thread could be made), and is reset. */
extern _Atomic int health_inject_start_error;

/* The state transition after one check, a pure function. `streak` counts the consecutive results
 * equal to this one, this one included; `rise` healthy results flip DOWN to UP, `fall` unhealthy
 * ones flip UP to DOWN (0 is taken as 1). A backend never checked (UNKNOWN) takes the first result
 * at once. The checker uses healthyThreshold and unhealthyThreshold (default 1). */
enum backend_state health_next_state(enum backend_state current, bool check_ok, uint32_t streak,
                                     uint32_t rise, uint32_t fall);

#endif
