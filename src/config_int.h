/* config_int — the config module's private seam between config.c (the YAML tree, diagnostics,
 * the top-level keys and backends) and config_tls.c (the `tls` section and backends' TLS keys).
 * Not for other modules: they see struct config only.
 */
#ifndef GOLB_CONFIG_INT_H
#define GOLB_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct config_backend;
struct load;

#define QUOTE_MAX 64 /* characters of a value shown in a message */

enum node_kind {
    NODE_SCALAR = 0,
    NODE_SEQUENCE,
    NODE_MAPPING,
    NODE_BAD, /* an alias, already reported: every check skips it silently */
};

struct node {
    enum node_kind kind;
    int line, col; /* 1-based */
    bool quoted; /* scalar written quoted or as a block scalar: a string, never a number or null */
    char *str;   /* scalar text, NUL-terminated; may contain an earlier NUL ("\0" escape) */
    size_t len;
    struct node **kids; /* sequence: items; mapping: key, value, key, value, ... */
    size_t nkids, cap;
};

/* A value as shown in messages: double-quoted, escaped, cut after QUOTE_MAX characters. */
struct qbuf {
    char s[32 + 4 * QUOTE_MAX + 8];
};

enum seconds_result {
    SEC_OK = 0,
    SEC_SYNTAX,
    SEC_NOT_POSITIVE,
    SEC_TOO_LONG,
    SEC_TOO_SHORT,
};

bool is_scalar(const struct node *n);
bool is_null(const struct node *n);
bool is_string(const struct node *n);
bool key_is(const struct node *k, const char *name);
bool visible_ascii(const char *s, size_t len);
__attribute__((format(printf, 3, 4))) void error_at(struct load *l, const struct node *n,
                                                    const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void warning_at(struct load *l, const struct node *n,
                                                      const char *fmt, ...);
const char *quote(struct qbuf *q, const char *s, size_t len);
const char *describe(struct qbuf *q, const struct node *n);
bool key_ok(struct load *l, const struct node *k);
bool key_first(struct load *l, const struct node *k, const struct node **slot);
void unknown_key(struct load *l, const struct node *k, const char *const *names, size_t n,
                 const char *where);
enum seconds_result parse_seconds(const struct node *n, uint32_t *ms);
/* `key` = an address "ADDR:PORT" | "[IPV6]:PORT" | ":PORT": 0, or -1 after reporting. */
int parse_listen_addr(struct load *l, const char *key, const struct node *v,
                      struct sockaddr_storage *addr, socklen_t *addrlen, char **name);
/* The name of the file being loaded (relative paths in it resolve against its directory). */
const char *load_file_name(const struct load *l);
void load_oom(struct load *l);

/* config_tls.c */
void config_tls_section(struct load *l, struct config *cfg, const struct node *v);
/* A backend mapping's TLS key: true when `k` is one (handled, errors reported). */
bool config_tls_backend_key(struct load *l, const struct node *k, const struct node *v,
                            struct config_backend *b);
/* After a backend's URL is parsed: checks its TLS keys against its scheme and builds its client
 * context. 0 or -1 after reporting. */
int config_tls_backend_finish(struct load *l, const struct node *entry, struct config_backend *b);
/* Cross-key checks (listen: off, redirectHttp) once every key is read. */
void config_tls_cross_check(struct load *l, struct config *cfg, const struct node *root,
                            const struct node *listen_v);
void config_tls_free(struct config *cfg);
void config_tls_backend_clear(struct config_backend *b);
extern const char *const config_tls_backend_keys[];
extern const size_t config_tls_backend_nkeys;

#endif
