/* config_yaml — the YAML node tree, diagnostics and typed getters every section parser of the
 * configuration uses (config.c's top level, config_backend.c, config_tls.c, config_lb.c,
 * config_obs.c; config_diff.c reads the rows). Private to the config folder: other layers see
 * struct config only (config.h).
 *
 * A load is one file being checked: the sections report into it with config_yaml_error/_warning at
 * a node (its 1-based line and column), nothing stops at the first problem, and config_yaml_flush
 * writes them all sorted by position as `NAME:LINE:COL: text`. A getter that fails has reported
 * already: the caller only skips the value. Messages quote values with config_yaml_quote (escaped,
 * cut after CONFIG_YAML_QUOTE_MAX characters) and describe nodes with config_yaml_describe ("null",
 * "a sequence", "the quoted string V", ...).
 */
#ifndef GOLB_CONFIG_YAML_H
#define GOLB_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define CONFIG_YAML_QUOTE_MAX 64     /* characters of a value shown in a message */
#define CONFIG_YAML_DAY_MS 86400000u /* the longest SECONDS value, in ms */

/* ---------------------------------------------------------------------------------------------
 * The node tree
 */

enum config_yaml_kind {
    CONFIG_YAML_SCALAR = 0,
    CONFIG_YAML_SEQUENCE,
    CONFIG_YAML_MAPPING,
    CONFIG_YAML_BAD, /* an alias, already reported: every check skips it silently */
};

struct config_yaml_node {
    enum config_yaml_kind kind;
    int line, col; /* 1-based */
    bool quoted; /* scalar written quoted or as a block scalar: a string, never a number or null */
    char *str;   /* scalar text, NUL-terminated; may contain an earlier NUL ("\0" escape) */
    size_t len;
    struct config_yaml_node **kids; /* sequence: items; mapping: key, value, key, value, ... */
    size_t nkids, cap;
};

/* ---------------------------------------------------------------------------------------------
 * A load: the file's name and its diagnostics
 */

struct config_yaml_diag;

/* Declared by the one who loads (config.c) as {.name = NAME[, .base = FILE]}; the other fields are
 * config_yaml.c's. */
struct config_yaml_load {
    const char *name; /* file name shown in messages */
    const char *base; /* relative paths resolve against this file's directory; NULL: name's */
    struct config_yaml_diag *diags;
    size_t ndiags, cap;
    int nerrors;
    size_t dropped;          /* diagnostics beyond the first 1000 */
    int drop_line, drop_col; /* where the first of them is */
    bool oom;
};

/* Parses the first YAML document of data[0..len) into a tree (NULL for an empty stream), reporting
 * anchors, aliases (left as CONFIG_YAML_BAD nodes), tags and a second document. *fatal is set when
 * the tree cannot be trusted (syntax error, nesting deeper than 64, out of memory). Free the tree
 * with config_yaml_tree_free (NULL is fine). */
struct config_yaml_node *config_yaml_tree_build(struct config_yaml_load *l, const char *data,
                                                size_t len, bool *fatal);
void config_yaml_tree_free(struct config_yaml_node *n);

/* An error or a warning at node n's position; text as printf. */
__attribute__((format(printf, 3, 4))) void config_yaml_error(struct config_yaml_load *l,
                                                             const struct config_yaml_node *n,
                                                             const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void config_yaml_warning(struct config_yaml_load *l,
                                                               const struct config_yaml_node *n,
                                                               const char *fmt, ...);
/* An error at a position no node has (an empty file: 1:1). */
__attribute__((format(printf, 4, 5))) void
config_yaml_error_lc(struct config_yaml_load *l, int line, int col, const char *fmt, ...);
/* Out of memory: reported once, as `NAME:1:1: out of memory`, by config_yaml_flush. */
void config_yaml_oom(struct config_yaml_load *l);
/* The name of the file being loaded, as shown in messages. */
const char *config_yaml_file_name(const struct config_yaml_load *l);
/* PATH as the file means it: an absolute path as it is, a relative one against the directory of
 * the file (of l->base when set: a copy read in place of its original, golb -t -diff). A new
 * string; NULL when memory ran out. */
char *config_yaml_resolve_path(const struct config_yaml_load *l, const char *path);
/* Writes every diagnostic to errs (may be NULL) sorted by position, then frees them. Returns -1
 * when any was an error (or memory ran out), 0 when there were only warnings or none. */
int config_yaml_flush(struct config_yaml_load *l, FILE *errs);

/* ---------------------------------------------------------------------------------------------
 * Nodes and values in messages
 */

bool config_yaml_is_scalar(const struct config_yaml_node *n);
/* YAML 1.1 null: an empty or ~/null plain scalar. */
bool config_yaml_is_null(const struct config_yaml_node *n);
/* A scalar usable as a C string: not null, no embedded NUL. */
bool config_yaml_is_string(const struct config_yaml_node *n);
/* True when k is the scalar `name` exactly. */
bool config_yaml_key_is(const struct config_yaml_node *k, const char *name);

/* A value as shown in messages: double-quoted, escaped, cut after CONFIG_YAML_QUOTE_MAX. */
struct config_yaml_qbuf {
    char s[32 + 4 * CONFIG_YAML_QUOTE_MAX + 8];
};

/* s[0..len) as "..." (quotes and backslashes escaped, control bytes as \xNN) in q; returns q->s. */
const char *config_yaml_quote(struct config_yaml_qbuf *q, const char *s, size_t len);
/* The same after `prefix` (under 32 bytes), e.g. "the quoted string ". */
const char *config_yaml_quote_with(struct config_yaml_qbuf *q, const char *prefix, const char *s,
                                   size_t len);
/* A scalar already known to hold only digits, '-' and '.': shown as is, cut after QUOTE_MAX. */
const char *config_yaml_number(struct config_yaml_qbuf *q, const struct config_yaml_node *n);
/* What a node is, for "got ..." in messages: "a sequence", "a mapping", "an alias", "null", "V"
 * or "the quoted string V". */
const char *config_yaml_describe(struct config_yaml_qbuf *q, const struct config_yaml_node *n);

/* ---------------------------------------------------------------------------------------------
 * Secret files (admin.tokenFile, stickySession.secretFile)
 */

#define CONFIG_YAML_SECRET_FILE_MAX 4096 /* "it is larger than 4096 bytes" */

/* The secret in the file named by v (a path, relative to the configuration's directory), `key`
 * naming it in messages: the file's content without trailing whitespace (a newline left by an
 * editor or `echo`). A regular file only (a FIFO would block the load), at most
 * CONFIG_YAML_SECRET_FILE_MAX bytes, one token of visible ASCII; a warning when every user may
 * read it. Read at every load, so a reload reads it again. A new string, or NULL after
 * reporting. */
char *config_yaml_read_secret_file(struct config_yaml_load *l, const char *key,
                                   const struct config_yaml_node *v);

/* ---------------------------------------------------------------------------------------------
 * Keys of a mapping, and rows of a key table
 */

/* Checks that k can be a key (a non-null scalar). Returns false, after reporting, when the pair
 * must be skipped. */
bool config_yaml_key_ok(struct config_yaml_load *l, const struct config_yaml_node *k);
/* Fills *slot with k unless an earlier key took it; otherwise reports the duplicate ("first
 * defined at line N") and returns false. One slot per known key keeps a mapping walk linear. */
bool config_yaml_key_first(struct config_yaml_load *l, const struct config_yaml_node *k,
                           const struct config_yaml_node **slot);
/* Reports the unknown key k, with the closest of names[0..n) when it looks like a typo; `where` is
 * "" or " in backend" (appended after the key). */
void config_yaml_unknown_key(struct config_yaml_load *l, const struct config_yaml_node *k,
                             const char *const *names, size_t n, const char *where);
/* One key k of a mapping whose known keys are names[0..n): checks it (config_yaml_key_ok), finds
 * it (else config_yaml_unknown_key with `where`) and takes its slot seen[index]
 * (config_yaml_key_first). Returns the index, or -1 after reporting: the pair is skipped. */
int config_yaml_key_index(struct config_yaml_load *l, const struct config_yaml_node *k,
                          const char *const *names, size_t n, const struct config_yaml_node **seen,
                          const char *where);

/* What a row of a key table holds. The scalar kinds are read by the getters below; the others
 * name a section, which the table's owner (config.c) dispatches to its parser. */
enum config_yaml_key_type {
    CONFIG_YAML_KT_PORT = 0, /* INT 1..65535, kept aside until listen is settled */
    CONFIG_YAML_KT_LISTEN,   /* an address or a list of them → listen (config_listen.c) */
    CONFIG_YAML_KT_INT,      /* INT into an int field */
    CONFIG_YAML_KT_UINT,     /* INT into a uint32_t field */
    CONFIG_YAML_KT_DURATION, /* SECONDS into a uint32_t field of milliseconds; min/max/def in ms
                                (min 0: 0 is allowed and means off) */
    CONFIG_YAML_KT_BACKENDS, /* the backends sequence (config_backend.c) */
    CONFIG_YAML_KT_TLS,      /* the tls mapping (config_tls.c) */
    CONFIG_YAML_KT_BALANCE,  /* strategy name → balance */
    CONFIG_YAML_KT_HASHKEY,  /* clientAddress | uri | "header:N" | "cookie:N" | "query:N" */
    CONFIG_YAML_KT_FACTOR,   /* 0 or a decimal > 1 (at most 100) in thousandths, uint32_t field */
    CONFIG_YAML_KT_STICKY,   /* the stickySession mapping → sticky */
    CONFIG_YAML_KT_ADMIN,    /* the admin mapping */
    CONFIG_YAML_KT_ACCESS_LOG, /* off | text | json */
    CONFIG_YAML_KT_LOG_FORMAT, /* text | json */
    CONFIG_YAML_KT_PATH,       /* a file path string into a char * field */
    CONFIG_YAML_KT_UPGRADE,    /* upgradeProtocols: a sequence of protocol names (config_http.c) */
    CONFIG_YAML_KT_BOOL,       /* true | false into a bool field; def 0 or 1 */
    CONFIG_YAML_KT_POOLS,      /* the pools mapping (config_route.c), read after the walk */
    CONFIG_YAML_KT_ROUTES,     /* the routes sequence (config_route.c), read after the walk */
    CONFIG_YAML_KT_ENCODED_SLASH, /* keep | reject */
    CONFIG_YAML_KT_PROXY_PROTOCOL, /* the proxyProtocol mapping (config_net.c) */
    CONFIG_YAML_KT_TRUSTED_PROXIES, /* a sequence of CIDR ranges (config_net.c) */
    CONFIG_YAML_KT_HTTP2,         /* the http2 mapping (config_http.c) */
    CONFIG_YAML_KT_RESOLVERS,       /* the resolvers mapping (config_dns.c) */
    CONFIG_YAML_KT_UPSTREAM,      /* protocol, healthCheck, healthCheckService,
                                     maxStreamsPerConnection (config_pool.c) */
};

#define CONFIG_YAML_NO_FIELD ((size_t)-1)

/* One row: name, type, bounds, default, destination. */
struct config_yaml_key {
    const char *name;
    enum config_yaml_key_type type;
    size_t off; /* offsetof(struct config, field) or CONFIG_YAML_NO_FIELD */
    uint32_t min, max, def;
};

/* Writes v into the row's field of `base` (an int for KT_INT, a bool for KT_BOOL, else a
 * uint32_t). */
void config_yaml_store(void *base, const struct config_yaml_key *k, uint32_t v);

/* ---------------------------------------------------------------------------------------------
 * Scalars
 */

enum config_yaml_seconds {
    CONFIG_YAML_SEC_OK = 0,
    CONFIG_YAML_SEC_SYNTAX,
    CONFIG_YAML_SEC_NOT_POSITIVE,
    CONFIG_YAML_SEC_TOO_LONG,
    CONFIG_YAML_SEC_TOO_SHORT,
};

/* Plain ["-"]DIGITS without a leading zero (no quotes, no 0x, no +); saturates far beyond every
 * bound. 0, or -1 (nothing reported). */
int config_yaml_parse_int(const struct config_yaml_node *n, int64_t *out);
/* SECONDS: plain ["-"]DIGITS["."DIGITS] → *ms, exactly, the fourth fraction digit rounding half up;
 * > 0, at most a day, at least 1 ms. Nothing reported. Every seconds key of the file is read by
 * this parser (through config_yaml_get_seconds or _get_duration, or directly). */
enum config_yaml_seconds config_yaml_parse_seconds(const struct config_yaml_node *n, uint32_t *ms);
/* An INT within the row's min..max into *out. 0, or -1 after "KEY must be a decimal integer" or
 * "KEY must be between MIN and MAX". */
int config_yaml_get_int(struct config_yaml_load *l, const struct config_yaml_key *k,
                        const struct config_yaml_node *v, uint32_t *out);
/* SECONDS (fractions allowed everywhere) into *out in ms, within min_ms..max_ms; min_ms 0 means
 * "0 is off" and allows 0. 0, or -1 after one of "NAME must be a number of seconds (e.g. 3 or
 * 0.5)", "must be greater than 0", "must be at most MAX seconds[ (1 day)]", "must be at least 0.001
 * seconds (1 ms)", or with min_ms 0 "must be between 0 and MAX seconds". */
int config_yaml_get_seconds(struct config_yaml_load *l, const char *name,
                            const struct config_yaml_node *v, uint64_t min_ms, uint64_t max_ms,
                            uint64_t *out);
/* A KT_DURATION row: config_yaml_get_seconds within the row's min..max (ms) into *out. */
int config_yaml_get_duration(struct config_yaml_load *l, const struct config_yaml_key *k,
                             const struct config_yaml_node *v, uint32_t *out);
/* `true` or `false` (plain); 0, or -1 after "NAME must be true or false, got V". */
int config_yaml_get_bool(struct config_yaml_load *l, const char *name,
                         const struct config_yaml_node *v, bool *out);
/* One of `choices` (NULL-terminated); its index, or -1 after "KEY must be one of LIST, got V". */
int config_yaml_get_choice(struct config_yaml_load *l, const struct config_yaml_key *k,
                           const struct config_yaml_node *v, const char *const *choices,
                           const char *list);
/* An RFC 9110 token (header and cookie names), at most 128 bytes. */
bool config_yaml_http_token(const char *s, size_t len);
/* True when every byte is visible ASCII (no space, no control, no 8-bit byte). */
bool config_yaml_visible_ascii(const char *s, size_t len);

/* ---------------------------------------------------------------------------------------------
 * Addresses
 */

/* When on, host names other than "localhost" are not resolved (config_set_resolve_numeric_only). */
void config_yaml_set_numeric_only(bool on);
/* host:port → the first address getaddrinfo returns (numeric first, then by name unless `numeric`,
 * as for a bracketed IPv6 literal). 0, or a code for config_yaml_resolve_error. */
int config_yaml_resolve(const char *host, uint16_t port, bool numeric, struct sockaddr_storage *ss,
                        socklen_t *sslen);
/* The text of a config_yaml_resolve failure, for "cannot resolve ...: TEXT". */
const char *config_yaml_resolve_error(int rc);
/* Same family, address and port (and IPv6 scope). */
bool config_yaml_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* DIGITS only, no sign, value in lo..hi into *out. */
bool config_yaml_parse_port(const char *s, size_t len, uint32_t lo, uint32_t hi, uint16_t *out);
/* A character of a host name: letter, digit, '-', '.', '_'. */
bool config_yaml_host_char(char ch);
/* The wildcard IPv4 address on port into *ss, and "0.0.0.0:PORT" into *name (replaced). */
void config_yaml_any_addr(struct config_yaml_load *l, struct sockaddr_storage *ss, socklen_t *sslen,
                          char **name, uint16_t port);
/* "ADDR:PORT" | "[IPV6]:PORT" | ":PORT" into *ss and *out_name (replaced), resolved. `key` names
 * it in messages, `form` (one %s: the value described) is the message for a malformed value.
 * Returns true when it is valid, false after reporting. */
bool config_yaml_parse_addr(struct config_yaml_load *l, const struct config_yaml_node *v,
                            const char *key, const char *form, struct sockaddr_storage *ss,
                            socklen_t *sslen, char **out_name);
/* The same with the message `KEY must be "ADDR:PORT", "[IPv6]:PORT" or ":PORT", got V`: 0, or -1
 * after reporting. */
int config_yaml_listen_addr(struct config_yaml_load *l, const char *key,
                            const struct config_yaml_node *v, struct sockaddr_storage *addr,
                            socklen_t *addrlen, char **name);

#endif
