/* config_int — the entry points of the configuration's section parsers, which config.c's key table
 * calls (and config_diff.c reads that table). Private to the config folder: other layers see
 * struct config only (config.h).
 *
 *   config.c (top level, key table) ──▶ config_backend.c ──▶ config_tls.c (backends' TLS keys)
 *            │                          config_tls.c, config_lb.c, config_obs.c, config_http.c
 *            └──────────── all of them ──▶ config_yaml.c (node tree, diagnostics, getters)
 *
 * Each parser reads one value `v` of the tree into cfg and reports its problems into the load; none
 * calls back into config.c.
 */
#ifndef GOLB_CONFIG_INT_H
#define GOLB_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct config_backend;
struct config_yaml_key;
struct config_yaml_load;
struct config_yaml_node;

/* config.c: the table of top-level keys (config_diff.c compares the fields it names). */
const struct config_yaml_key *config_top_keys(size_t *n);

/* config_backend.c: the backends sequence; config_backend_clear frees one entry's strings. */
void config_backend_section(struct config_yaml_load *l, struct config *cfg,
                            const struct config_yaml_node *v);
void config_backend_clear(struct config_backend *b);

/* config_lb.c: balance, hashKey, hashLoadFactor (row k), stickySession. */
void config_lb_balance(struct config_yaml_load *l, struct config *cfg,
                       const struct config_yaml_node *v);
void config_lb_hash_key(struct config_yaml_load *l, struct config *cfg,
                        const struct config_yaml_node *v);
void config_lb_factor(struct config_yaml_load *l, struct config *cfg,
                      const struct config_yaml_key *k, const struct config_yaml_node *v);
void config_lb_sticky(struct config_yaml_load *l, struct config *cfg,
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
void config_http_free(struct config *cfg);

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
