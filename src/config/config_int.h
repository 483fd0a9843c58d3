/* config_int — the entry points of the configuration's section parsers, which config.c's key table
 * calls (and config_diff.c reads that table). Private to the config folder: other layers see
 * struct config only (config.h).
 *
 *   config.c (top level, key table) ──▶ config_backend.c ──▶ config_tls.c (backends' TLS keys)
 *            │                          config_tls.c, config_lb.c, config_obs.c, config_http.c,
 *            │                          config_listen.c (listen, tls.listen: from both)
 *            │                          config_pool.c ──▶ config_backend.c, config_lb.c; config_route.c
 *            └──────────── all of them ──▶ config_yaml.c (node tree, diagnostics, getters)
 *
 * Each parser reads one value `v` of the tree into cfg and reports its problems into the load; none
 * calls back into config.c.
 */
#ifndef GOLB_CONFIG_INT_H
#define GOLB_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h" /* enum config_hash_key */

struct config;
struct config_backend;
struct config_sticky;
struct config_listen_list;
struct config_yaml_key;
struct config_yaml_load;
struct config_yaml_node;

/* config.c: the table of top-level keys (config_diff.c compares the fields it names); the row of
 * one key by name (NULL when there is none: the pools and routes reuse the top level's rows). */
const struct config_yaml_key *config_top_keys(size_t *n);
const struct config_yaml_key *config_top_key(const char *name);

/* config_backend.c: a backends sequence (the top level's, a pool's) into a new array *out of *n
 * entries; config_backend_clear frees one entry's strings. */
void config_backend_section(struct config_yaml_load *l, struct config_backend **out, int *n,
                            const struct config_yaml_node *v);
void config_backend_clear(struct config_backend *b);

/* config_lb.c: balance, hashKey, hashLoadFactor (row k, its field in `base`), stickySession, each
 * into the destination given (the top level's fields, or a pool's). */
void config_lb_balance(struct config_yaml_load *l, char **balance,
                       const struct config_yaml_node *v);
void config_lb_hash_key(struct config_yaml_load *l, enum config_hash_key *kind, char **name,
                        const struct config_yaml_node *v);
void config_lb_factor(struct config_yaml_load *l, void *base, const struct config_yaml_key *k,
                      const struct config_yaml_node *v);
void config_lb_sticky(struct config_yaml_load *l, struct config_sticky *s,
                      const struct config_yaml_node *v);

/* config_obs.c: the admin mapping; a path row (accessLogPath) into its char * field. */
void config_obs_admin(struct config_yaml_load *l, struct config *cfg,
                      const struct config_yaml_node *v);
void config_obs_path(struct config_yaml_load *l, struct config *cfg,
                     const struct config_yaml_key *k, const struct config_yaml_node *v);

/* config_http.c: upgradeProtocols; its default after the walk; freeing it. */
void config_http_upgrade_protocols(struct config_yaml_load *l, struct config *cfg,
                                   const struct config_yaml_node *v);
void config_http_defaults(struct config_yaml_load *l, struct config *cfg);
/* config_http.c: the http2 mapping (null: every default) into cfg->http2; its defaults. */
void config_http_http2(struct config_yaml_load *l, struct config *cfg,
                       const struct config_yaml_node *v);
void config_http_http2_defaults(struct config_http2 *h);
void config_http_free(struct config *cfg);

/* config_net.c: proxyProtocol, trustedProxies; freeing them. */
void config_net_proxy_protocol(struct config_yaml_load *l, struct config *cfg,
                               const struct config_yaml_node *v);
void config_net_trusted_proxies(struct config_yaml_load *l, struct config *cfg,
                                const struct config_yaml_node *v);
void config_net_free(struct config *cfg);
/* A sequence of addresses and CIDR ranges under the name `key` (for messages) into a new array
 * (*out, replacing and freeing the one there, *n); -1 after reporting. Also routes' allow/deny. */
struct cidr;
int config_net_cidr_list(struct config_yaml_load *l, const char *key,
                         const struct config_yaml_node *v, struct cidr **out, int *n);

/* config_dns.c: `resolvers` (defaults, the mapping), and after the whole file the checks of
 * `resolve:` backends across pools (cfg->has_resolve). */
void config_dns_defaults(struct config *cfg);
void config_dns_resolvers(struct config_yaml_load *l, struct config *cfg,
                          const struct config_yaml_node *v);
void config_dns_check(struct config_yaml_load *l, struct config *cfg);

/* config_pool.c: the pools, read after the top-level walk (they inherit its final values); it
 * always builds cfg->pools[0], the default pool, from the top level (v NULL: no `pools` key). */
void config_pool_section(struct config_yaml_load *l, struct config *cfg,
                         const struct config_yaml_node *v);
void config_pool_free(struct config *cfg);
/* One of the upstream keys (protocol, healthCheck, healthCheckService, maxStreamsPerConnection:
 * the top level's, a pool's, a backend entry's) at key k, value v, into *u: -1 when k is not one
 * of them, else the CONFIG_UP_* bit it set (0 when the value was bad: reported). */
int config_pool_upstream_key(struct config_yaml_load *l, const struct config_yaml_node *k,
                             const struct config_yaml_node *v, struct config_upstream *u);
/* The upstream keys named by `which` (CONFIG_UP_* bits) from src into dst (the service copied).
 * 0, or -1 when memory ran out. */
int config_pool_upstream_copy(struct config_upstream *dst, const struct config_upstream *src,
                              unsigned which);

/* config_route.c: the routes, read after the pools they name (v NULL: no `routes` key). */
void config_route_routes(struct config_yaml_load *l, struct config *cfg,
                         const struct config_yaml_node *v);
void config_route_free(struct config *cfg);

/* config_listen.c: `listen` or `tls.listen` (named `key`; k its key node, where a single
 * address's problems are reported) into *out; the wildcard address of `port` (k: its key, NULL
 * for the default); the check that no tls.listen address meets a listen one; freeing a list. */
void config_listen_parse(struct config_yaml_load *l, const char *key,
                         const struct config_yaml_node *k, const struct config_yaml_node *v,
                         struct config_listen_list *out);
void config_listen_any(struct config_yaml_load *l, struct config_listen_list *out, uint16_t port,
                       const struct config_yaml_node *k);
void config_listen_cross_check(struct config_yaml_load *l, const struct config *cfg);
void config_listen_free(struct config_listen_list *list);

/* config_tls.c: the tls section. */
void config_tls_section(struct config_yaml_load *l, struct config *cfg,
                        const struct config_yaml_node *v);
/* A backend mapping's TLS key: true when `k` is one (handled, errors reported). */
bool config_tls_backend_key(struct config_yaml_load *l, const struct config_yaml_node *k,
                            const struct config_yaml_node *v, struct config_backend *b);
/* After a backend's URL is parsed: checks its TLS keys against its scheme and builds its client
 * context. 0 or -1 after reporting. */
int config_tls_backend_finish(struct config_yaml_load *l, const struct config_yaml_node *entry,
                              struct config_backend *b);
/* Cross-key checks (listen: off, redirectHttp) once every key is read. */
void config_tls_cross_check(struct config_yaml_load *l, struct config *cfg,
                            const struct config_yaml_node *root,
                            const struct config_yaml_node *listen_v);
void config_tls_free(struct config *cfg); /* drops the configuration's reference */
void config_tls_backend_clear(struct config_backend *b);
extern const char *const config_tls_backend_keys[];
extern const size_t config_tls_backend_nkeys;

#endif
