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

/* The table of top-level keys (config.c): name, type, bounds, default, destination. */
enum key_type {
    KT_PORT = 0, /* INT 1..65535, kept in load.port until listen is settled */
    KT_LISTEN,   /* address string → listen_addr, listen_addrlen, listen_name */
    KT_INT,      /* INT into an int field */
    KT_UINT,     /* INT into a uint32_t field */
    KT_DURATION, /* SECONDS into a uint32_t field of milliseconds; min/max/def in ms */
    KT_BACKENDS, /* the backends sequence */
    KT_TLS,      /* the tls mapping (config_tls.c) */
    KT_BALANCE,  /* strategy name → balance */
    KT_HASHKEY,  /* clientAddress | uri | "header:N" | "cookie:N" | "query:N" → hash_key(_name) */
    KT_FACTOR,   /* 0 or a decimal > 1 (at most 100) in thousandths into a uint32_t field */
    KT_STICKY,   /* the stickySession mapping → sticky */
    KT_ADMIN,    /* the admin mapping */
    KT_ACCESS_LOG, /* off | text | json */
    KT_LOG_FORMAT, /* text | json */
    KT_PATH,     /* a file path string into a char * field */
    KT_UPGRADE,  /* upgradeProtocols: a sequence of protocol names (config_http.c) */
};

#define NO_FIELD ((size_t)-1)

struct key {
    const char *name;
    enum key_type type;
    size_t off; /* offsetof(struct config, field) or NO_FIELD */
    uint32_t min, max, def;
};


/* Addresses (config.c), for the backends (config_backend.c). resolve: getaddrinfo of host:port
 * (numeric only when asked, see config_set_resolve_numeric_only), 0 or its error code. */
int resolve(const char *host, uint16_t port, bool numeric, struct sockaddr_storage *ss,
            socklen_t *sslen);
const char *resolve_error(int rc);
bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
bool parse_port(const char *s, size_t len, uint32_t lo, uint32_t hi, uint16_t *out);
bool host_char(char ch);
const char *quote_with(struct qbuf *q, const char *prefix, const char *s, size_t len);

/* The backends sequence (config_backend.c). */
void set_backends(struct load *l, struct config *cfg, const struct node *v);
void config_backend_clear(struct config_backend *b);

/* The top-level key table (config_diff.c compares the fields it names). */
const struct key *config_top_keys(size_t *n);

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

const char *number(struct qbuf *q, const struct node *n);
void store(struct config *cfg, const struct key *k, uint32_t v);
int parse_int(const struct node *n, int64_t *out);
int get_int(struct load *l, const struct key *k, const struct node *v, uint32_t *out);
/* `true` or `false` (plain); 0, or -1 after "NAME must be true or false, got V". */
int get_bool(struct load *l, const char *name, const struct node *v, bool *out);
/* An RFC 9110 token (header and cookie names), at most 128 bytes. */
bool http_token(const char *s, size_t len);
/* "ADDR:PORT" | "[IPV6]:PORT" | ":PORT" with the message `form` (one %s) for a malformed value. */
bool parse_addr(struct load *l, const struct node *v, const char *key, const char *form,
                struct sockaddr_storage *ss, socklen_t *sslen, char **out_name);

/* config_lb.c */
void set_balance(struct load *l, struct config *cfg, const struct node *v);
void set_hash_key(struct load *l, struct config *cfg, const struct node *v);
void set_factor(struct load *l, struct config *cfg, const struct key *k, const struct node *v);
void set_sticky(struct load *l, struct config *cfg, const struct node *v);

/* config_obs.c */
void set_admin(struct load *l, struct config *cfg, const struct node *v);
/* One of `choices` (NULL-terminated); its index, or -1 after reporting. */
int get_choice(struct load *l, const struct key *k, const struct node *v,
               const char *const *choices, const char *list);
void set_path(struct load *l, struct config *cfg, const struct key *k, const struct node *v);

/* config_http.c */
void set_upgrade_protocols(struct load *l, struct config *cfg, const struct node *v);
void config_http_defaults(struct load *l, struct config *cfg);
void config_http_free(struct config *cfg);

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
