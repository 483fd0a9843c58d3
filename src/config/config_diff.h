/* config_diff — what a reload from one configuration to another changes, as lines for people.
 *
 * Used by the reload (its one log line and POST /api/v1/reload's answer) and by `golb -t -diff OLD`.
 * Backends are matched by identity (scheme, host, port: config_backend_key), as the reload matches
 * them.
 * Lines look like:
 *   backend added: http://127.0.0.1:8083
 *   backend removed: http://127.0.0.1:8082
 *   backend changed: http://127.0.0.1:8081: weight 1 -> 3, healthPath "/" -> "/ready"
 *   setting changed: connectTimeout 3s -> 5s
 *   listener changed: listen 127.0.0.1:8080 -> 127.0.0.1:8090   (one address replaced by one)
 *   listener added: tls.listen [::1]:8443                       (otherwise per address)
 *   listener removed: listen 127.0.0.1:8081
 *   setting changed: workers 2 -> 4 (needs a restart)     (also admin.listen: a reload keeps them)
 *   pool added: api          pool changed: api          pool removed: api      (named pools)
 *   route added: canary      route changed: canary      route removed: canary  (routes by name)
 *   routes reordered                                                   (the same routes, moved)
 * Secrets (admin.token, stickySession.secret) are never printed, only that they changed.
 */
#ifndef GOLB_CONFIG_DIFF_H
#define GOLB_CONFIG_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct config;

/* Writes one line per change to out; returns how many. */
int config_diff(const struct config *old, const struct config *new, FILE *out);

/* True when the plain or HTTPS listeners' configured addresses differ as sets (so some must be
 * bound or closed); `listen: off` and no tls section are empty sets. */
bool config_plain_listener_changed(const struct config *old, const struct config *new);
bool config_tls_listener_changed(const struct config *old, const struct config *new);

#endif
