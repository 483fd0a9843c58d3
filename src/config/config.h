/* config — the YAML configuration file turned into an immutable, validated value.
 *
 * Loading reads the file with libyaml into a small node tree where every node keeps its line and
 * column, then walks a table of known keys (name, type, bounds, default, destination). Every problem
 * is reported, all of them in one run, as `FILE:LINE:COL: message` (1-based line and column of the
 * offending key, value or entry). Warnings use `FILE:LINE:COL: warning: message` and do not fail.
 *
 * The original format keeps its meaning exactly:
 *   port: 8080
 *   healthCheckTimeout: 3   # seconds
 *   healthCheckPeriod: 5    # seconds
 *   backends:
 *     - http://127.0.0.1:8081/health   # scheme://host:port is the upstream, the path its health check
 * docs/configuration.md documents every key; this header and the table in config.c are the source
 * of truth.
 */
#ifndef GOLB_CONFIG_H
#define GOLB_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct cidr;
struct tls_client;
struct tls_server;

/* protocol: how golb speaks to a pool's backends. */
enum config_protocol {
    CONFIG_PROTO_HTTP1 = 0, /* http1 (default): HTTP/1.1 */
    CONFIG_PROTO_H2,        /* h2: h2c with prior knowledge for http://, ALPN h2 for https:// */
};

/* healthCheck: how the health checker asks a backend. */
enum config_health_check {
    CONFIG_HC_HTTP = 0, /* http (default): GET on the URL's path (healthPath), 2xx = up */
    CONFIG_HC_GRPC,     /* grpc: grpc.health.v1.Health/Check over HTTP/2, SERVING = up */
};

/* The upstream keys a pool shares with the top level and a backend entry may override
 * (protocol, healthCheck, healthCheckService, maxStreamsPerConnection; config_pool.c). In a
 * struct config_backend they are the entry's effective values, its own or its pool's. */
struct config_upstream {
    uint8_t protocol;          /* enum config_protocol */
    uint8_t health_check;      /* enum config_health_check */
    char *health_check_service; /* healthCheckService: the Check request's service ("" default) */
    uint32_t max_streams;      /* maxStreamsPerConnection: 1..100000, default 100; the server's
                                  SETTINGS_MAX_CONCURRENT_STREAMS wins when lower */
};

struct config_backend {
    char *url;         /* the URL as written, e.g. "http://127.0.0.1:8081/health" */
    char *host;        /* host as written in the URL ("127.0.0.1", "localhost", "::1") */
    uint16_t port;     /* from the URL, default 80 for http */
    char *name;        /* "host:port" ("[::1]:8081" for IPv6), used in logs */
    char *health_path; /* path (and query) the health check GETs; "/" when the URL has none */
    struct sockaddr_storage addr; /* resolved at load time (first address getaddrinfo returns) */
    socklen_t addrlen;
    uint32_t weight; /* weight: 0..1000, default 1 (0: no new traffic, sticky users stay) */
    uint8_t send_proxy_protocol; /* sendProxyProtocol: 0 off (default), 1 v1, 2 v2: a PROXY header
                                    first on every new connection (health checks: LOCAL/UNKNOWN) */
    int line, col; /* where the entry is, for messages about it */
    struct config_upstream up; /* effective protocol, healthCheck, ...: the entry's or its pool's */
    uint8_t up_own;            /* CONFIG_UP_* bits: which of them the entry gave itself */
    uint8_t resolve; /* resolve: CONFIG_RESOLVE_NONE (a fixed backend), _A or _SRV: a template
                        that stands for what DNS answers for `host` (upstream/dns.h); it is never
                        a backend itself, and addr is unset */
    uint32_t tier;   /* a backend found through SRV (generation.c): its SRV name's number (1..)
                        << 16 | its record's priority (lower first); 0 otherwise */

    /* https:// backends (tls true): golb speaks TLS to it, health checks included */
    bool tls;
    bool tls_verify;        /* tlsVerify, default true: chain and name are verified */
    char *server_name;      /* serverName: SNI and the verified name; default the URL's host */
    char *ca_file;          /* caFile: replaces the system CA store (absolute path) */
    char *client_cert_file; /* clientCertFile/clientKeyFile: golb's certificate for mTLS */
    char *client_key_file;
    struct tls_client *tls_client; /* built at load, shared by workers and the health checker */
};

/* config_backend.up_own bits */
#define CONFIG_UP_PROTOCOL 1u
#define CONFIG_UP_HEALTH_CHECK 2u
#define CONFIG_UP_SERVICE 4u
#define CONFIG_UP_MAX_STREAMS 8u

enum config_resolve {
    CONFIG_RESOLVE_NONE = 0,
    CONFIG_RESOLVE_A,   /* every A/AAAA address of the URL's host, on the URL's port */
    CONFIG_RESOLVE_SRV, /* the targets of the SRV records of the URL's host, with their ports */
};

/* `resolvers` (config_dns.c): where and how `resolve:` backends are looked up. */
#define CONFIG_DNS_NAMESERVERS_MAX 8
struct config_resolvers {
    int nnameservers;              /* 0: /etc/resolv.conf's */
    char *nameservers;             /* "ADDR:PORT,[V6]:PORT" (c-ares' servers CSV) or NULL */
    uint32_t min_ttl_s, max_ttl_s; /* minTtl 1, maxTtl 300: answers' TTLs clamped to these */
    uint32_t hold_s; /* holdOnFailure 300: a failing name keeps its last set this long */
};

/* One address golb listens on: `listen`, `tls.listen` (a string or one entry of a list of them)
 * or `port`. */
struct config_listen {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *name;    /* as configured, e.g. "0.0.0.0:8080", "127.0.0.1:0", "[::1]:8080" */
    int line, col; /* where "cannot listen" is reported: the list entry, the key of a single
                      address (`port`'s for `port: N`); 0: the default port, no key */
};

/* `listen` or `tls.listen`: 1 to CONFIG_LISTEN_MAX addresses, none the same as another or within
 * another's wildcard (config_listen.c). Each gets its listening sockets, one per worker. */
#define CONFIG_LISTEN_MAX 8
struct config_listen_list {
    int n;
    struct config_listen at[CONFIG_LISTEN_MAX];
};

/* One tls.certificates entry (paths made absolute at load). */
struct config_tls_cert {
    char *cert_file;
    char *key_file;
};

/* The `tls` section: the HTTPS listener and its certificates. */
struct config_tls {
    struct config_listen_list listen; /* tls.listen */
    int ncerts;
    struct config_tls_cert *certs;
    int min_version;               /* minVersion: 12 (default) or 13 */
    char *ciphers;                 /* ciphers: TLS 1.2 cipher list, NULL = golb's default */
    bool session_tickets;          /* sessionTickets, default true */
    uint32_t ticket_key_rotation_ms; /* ticketKeyRotation, default 12 h */
    uint32_t session_timeout_ms;   /* sessionTimeout: how long a session resumes, default 300 s */
    uint32_t handshake_timeout_ms; /* handshakeTimeout, default clientHeaderTimeout */
    char *client_ca_file;          /* clientCaFile: client certificates required and verified */
    char *client_subject_header;   /* clientSubjectHeader: forward the verified subject in it */
    bool redirect_http;            /* redirectHttp: plain HTTP answers 308 to https:// */
    /* alpn: the protocols offered, in golb's order of preference, as ALPN wire bytes (each a
     * length byte and the name); default h2 then http/1.1. */
    unsigned char alpn[16];
    uint8_t alpn_len;
    struct tls_server *server;     /* contexts built at load, shared by every worker */
    _Atomic int refs;              /* its configuration's, and each TLS connection's (config_tls_ref) */
};

/* http2: HTTP/2 to clients (config_http.c). */
struct config_http2 {
    bool cleartext;                  /* the plain listener takes HTTP/2 with prior knowledge (h2c) */
    uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS, 1..10000, default 128 */
    uint32_t initial_window_size;    /* per-stream receive window, 65535..2^31-1, default 262144 */
    uint32_t idle_timeout_ms;        /* no open stream for this long: GOAWAY, default 180 s */
};

/* hashKey: what the hash strategy hashes. */
enum config_hash_key {
    CONFIG_HASH_CLIENT = 0, /* clientAddress (default) */
    CONFIG_HASH_URI,        /* uri: the request target's path and query */
    CONFIG_HASH_HEADER,     /* "header:NAME" */
    CONFIG_HASH_COOKIE,     /* "cookie:NAME" */
    CONFIG_HASH_QUERY,      /* "query:NAME" */
};

/* stickySession: golb sets a cookie naming the backend opaquely. */
struct config_sticky {
    char *cookie;     /* cookie name; NULL when sticky sessions are off */
    uint32_t max_age; /* maxAge in whole seconds (a fraction rounds up); 0: a session cookie */
    bool secure;      /* secure, default false */
    bool http_only;   /* httpOnly, default true */
    char *same_site;  /* sameSite: "Strict", "Lax", "None" or NULL (not sent) */
    /* secret or secretFile: the cookie values' SipHash key is derived from it (config_lb.c), the
     * same in every process given the same secret; without one (keyed false) each process draws
     * its own (balancer.c). The secret itself is not kept. */
    bool keyed;
    uint64_t key[2];
};

/* One pool: a set of backends and how they are balanced, checked and timed (config_route.c).
 * cfg->pools[0] is always "default": the top-level `backends` and settings; the others come from
 * `pools:` in file order. A setting a pool does not give is the top level's. Field meanings and
 * units are struct config's fields of the same names. */
struct config_pool {
    char *name;
    int line, col; /* the pool's name in `pools:` (0 for default) */
    int nbackends;
    struct config_backend *backends; /* default: cfg->backends (not owned: is_default) */
    bool is_default;
    bool used; /* named by a route's pool or split (default: always) */
    char *balance;
    enum config_hash_key hash_key;
    char *hash_key_name;
    uint32_t hash_load_factor;
    uint32_t slow_start_ms;
    uint32_t panic_threshold;
    struct config_sticky sticky;
    uint32_t healthy_threshold;
    uint32_t unhealthy_threshold;
    uint32_t health_check_period_ms;
    uint32_t health_check_timeout_ms;
    uint32_t connect_timeout_ms;
    uint32_t upstream_timeout_ms;
    uint32_t retries;
    uint32_t max_fails;
    uint32_t upstream_max_idle;
    struct config_upstream up;
};

/* What a route does with a request it matches: exactly one. */
enum config_route_action {
    CONFIG_ROUTE_POOL = 0, /* proxy to `pool` */
    CONFIG_ROUTE_SPLIT,    /* proxy to one of split[] drawn by weight */
    CONFIG_ROUTE_REDIRECT, /* answer `redirect.status` with a Location */
    CONFIG_ROUTE_RESPOND,  /* answer `respond.status` with a fixed body */
};

/* A name and a value: a header or query condition, a header to set. */
struct config_route_field {
    char *name;  /* as written (headers match case-insensitively, query names exactly) */
    char *value; /* as written; NULL in match.headers: the header is present ("*") */
};

struct config_route_split {
    int pool;        /* index in cfg->pools */
    uint32_t weight; /* 0..1000; the sum over the route is > 0 */
};

/* One entry of `routes:`, in file order: tried in order, the first whose every condition holds
 * wins (core/route.c compiles them). Paths are in the normal form of http/path.h. */
struct config_route {
    char *name;    /* `name`, or "route N" (N from 1 in file order); unique */
    int line, col; /* the route's entry */

    /* match: every condition given must hold; none given matches every request */
    char *host;        /* lower case, no trailing dot, no port; "*.example.com" = one or more
                          labels before example.com; NULL: any host */
    char *path;        /* exact path; NULL: none */
    char *path_prefix; /* segment-wise prefix without a trailing "/" ("/" itself for root) */
    char *path_regex;  /* PCRE2 pattern as written, matched against the path (no query) */
    char **methods;    /* NULL-terminated, case-sensitive; NULL: any */
    int nheaders;
    struct config_route_field *headers; /* value NULL: present */
    int nquery;
    struct config_route_field *query; /* raw (undecoded) name=value, exact */

    /* the action */
    enum config_route_action action;
    int pool; /* CONFIG_ROUTE_POOL: index in cfg->pools */
    int nsplit;
    struct config_route_split *split;
    struct {
        char *scheme;  /* "http" | "https"; NULL: the request's */
        char *host;    /* NULL: the request's Host (with its port) */
        uint16_t port; /* 0: the request's port when host is NULL, the scheme's default else */
        char *path;    /* NULL: the request's path and query */
        int status;    /* 301, 302 (default), 303, 307, 308 */
    } redirect;
    struct {
        int status; /* 200..599 */
        char *body; /* NULL: empty */
        size_t body_len;
    } respond;

    /* request and response filters */
    bool strip_prefix;    /* drop path_prefix from the path upstream (empty rest → "/") */
    char *rewrite_prefix; /* replace path_prefix by this; NULL: none */
    int nset_request_headers;
    struct config_route_field *set_request_headers;
    char **remove_request_headers; /* NULL-terminated; NULL: none */
    int nset_response_headers;
    struct config_route_field *set_response_headers;
    char **remove_response_headers;

    /* policies */
    int nallow; /* allow given: only these client addresses (others 403) */
    struct cidr *allow;
    bool has_allow;
    int ndeny; /* these client addresses get 403 */
    struct cidr *deny;
    uint32_t rate_mrps;  /* rateLimit.requestsPerSecond in thousandths; 0: no rate limit */
    uint32_t rate_burst; /* rateLimit.burst */
    uint32_t upstream_timeout_ms; /* 0: the pool's */
    int retries;                  /* -1: the pool's */
};

/* Durations are kept in milliseconds. In YAML they are seconds, whole or fractional ("0.5"). */
struct config {
    char *path; /* the file loaded */

    /* listening: `listen: "ADDR:PORT"` (or a list of them) wins over `port: N` (which listens on
     * all interfaces); empty with `listen: off` */
    struct config_listen_list listen;
    bool reuse_port; /* reusePort: listen even where another process already does (SO_REUSEPORT
                        shares the address); default false: such an address is "in use" */

    int workers; /* worker threads; default: online CPUs */

    uint32_t health_check_timeout_ms; /* healthCheckTimeout, required in the original: default 3 s */
    uint32_t health_check_period_ms;  /* healthCheckPeriod: default 5 s */

    uint32_t connect_timeout_ms;      /* connectTimeout: upstream TCP connect, default 3 s */
    uint32_t upstream_timeout_ms;     /* upstreamTimeout: request sent → response head, 30 s → 504 */
    uint32_t body_timeout_ms;         /* bodyTimeout: no body progress either way, default 60 s */
    uint32_t client_header_timeout_ms; /* clientHeaderTimeout: request head must arrive, 10 s → 408 */
    uint32_t keepalive_timeout_ms;    /* keepAliveTimeout: idle client connection, default 60 s */
    uint32_t tunnel_timeout_ms;       /* tunnelTimeout: idle WebSocket/Upgrade tunnel, default 300 s */
    uint32_t shutdown_timeout_ms;     /* shutdownTimeout: drain on SIGTERM/SIGINT, default 10 s */
    uint32_t upstream_idle_timeout_ms; /* upstreamIdleTimeout: pooled idle upstream conn, 60 s */

    uint32_t max_header_size;       /* maxHeaderSize: request head bytes, default 16384 → 431 */
    uint32_t max_request_line;      /* maxRequestLine: default 8192 → 414 */
    uint32_t max_connections;       /* maxConnections: client connections per process, 10000 */
    uint32_t request_buffer_size;   /* requestBufferSize: request body bytes golb holds before it
                                       takes a backend (the whole body when smaller), 0..16 MiB,
                                       default 65536; 0: stream at once */
    uint32_t retries;               /* retries: other backends tried after a connect failure, 2 */
    uint32_t max_fails;             /* maxFails: consecutive failures that mark a backend down
                                       passively before its next check; 0 disables; default 3 */
    uint32_t upstream_max_idle;     /* upstreamMaxIdle: idle pooled connections per backend per
                                       worker, default 64 */
    struct config_upstream up;      /* protocol, healthCheck, healthCheckService,
                                       maxStreamsPerConnection (config_pool.c) */

    /* balancing (see balancer.h and README "Load balancing") */
    char *balance;                   /* balance: strategy name, default "roundRobin" */
    enum config_hash_key hash_key;   /* hashKey */
    char *hash_key_name;             /* NAME of "header:NAME", "cookie:NAME", "query:NAME" */
    uint32_t hash_load_factor;       /* hashLoadFactor in thousandths (1.25 → 1250); 0: off */
    uint32_t slow_start_ms;          /* slowStart: 0..3600 s in ms, default 0 (off) */
    uint32_t panic_threshold;        /* panicThreshold: percent 0..100, default 0 (off) */
    uint32_t healthy_threshold;      /* healthyThreshold: 1..100, default 1 */
    uint32_t unhealthy_threshold;    /* unhealthyThreshold: 1..100, default 1 */
    struct config_sticky sticky;     /* stickySession */

    int nbackends;
    struct config_backend *backends;

    bool plain_off;         /* `listen: off`: no plain HTTP listener (HTTPS only) */
    struct config_tls *tls; /* NULL when there is no `tls` section */

    /* observability: `admin: {listen, token}`, accessLog, accessLogPath, logFormat */
    char *admin_listen; /* as configured ("127.0.0.1:9901", "unix:/run/golb/admin.sock"); NULL: off */
    struct sockaddr_storage admin_addr; /* AF_INET, AF_INET6 or AF_UNIX */
    socklen_t admin_addrlen;
    char *admin_token; /* bearer token for changes (token, or tokenFile's content); NULL: none,
                          then changes only on a unix socket */
    int access_log;    /* enum accesslog_format: 0 off (default), 1 text, 2 json */
    char *access_log_path; /* NULL: stdout */
    bool log_json;     /* logFormat: json */

    /* upgradeProtocols: the protocols a client's Upgrade may name, NULL-terminated (default
     * {"websocket"}; empty: no upgrades). Any other Upgrade is proxied as if absent. */
    char **upgrade_protocols;

    /* http2: HTTP/2 to clients (config_http.c); tls.alpn says whether the TLS listener offers it. */
    struct config_http2 http2;

    /* routing (config_route.c): pools[0] is "default" (the top-level backends and settings);
     * routes in file order. Without `routes`, every request goes to the default pool. */
    int npools;
    struct config_pool *pools;
    int nroutes;
    struct config_route *routes;
    bool encoded_slash_reject; /* encodedSlash: reject → %2F, %5C (and "\") in a path are a 400 */

    /* who may tell golb a client's address (config_net.c) */
    bool pp_on;              /* proxyProtocol given: listeners read PROXY headers (server/) */
    bool pp_required;        /* proxyProtocol.required: a trusted peer must send one */
    int npp_trusted;
    struct cidr *pp_trusted; /* proxyProtocol.trustedNetworks: the peers that may send one */
    int ntrusted_proxies;
    struct cidr *trusted_proxies; /* trustedProxies: peers whose forwarding headers count */
    struct config_resolvers resolvers; /* resolvers: for `resolve:` backends (any pool) */
    bool has_resolve;                  /* some backend (any pool) has `resolve:` */
    _Atomic int refs;                  /* config_ref: 1 from the load; config_free drops one */
};

/* Loads and validates `path`. On success returns 0 and stores a new config in *out. On failure
 * returns -1 after writing every error (and warning) to `errs`, one per line. Warnings are written
 * on success too. */
int config_load(const char *path, FILE *errs, struct config **out);

/* Loads `path`, a copy of the file `original` kept elsewhere (golb -t -diff OLD): its relative
 * paths (certificates, keys, CA files) are resolved against original's directory, as they were
 * when golb loaded original, not against the copy's. Messages name `path`. */
int config_load_copy(const char *path, const char *original, FILE *errs, struct config **out);

/* The same from memory: `name` is used in messages in place of the file name (fuzzing, tests). */
int config_load_buffer(const char *name, const char *data, size_t len, FILE *errs,
                       struct config **out);

/* Drops a reference (the load's is the first); the last frees cfg. */
void config_free(struct config *cfg);
/* One more reference to cfg: two generations that differ only by DNS answers share it. */
void config_ref(struct config *cfg);

/* A TLS client connection keeps the `tls` section it was accepted under (its SSL_CTXs, SNI table,
 * ticket keys and settings) for its lifetime, and nothing else of its configuration: so a
 * configuration (with its backend table and balancer) replaced by a reload is freed when its
 * requests end, however long its HTTPS clients stay connected. References are atomic (the last
 * one may be dropped on any thread); config_free drops the configuration's own. */
void config_tls_ref(struct config_tls *t);
void config_tls_unref(struct config_tls *t);

/* The identity of a configured backend, "scheme://host:port" ("https://[::1]:443"), written to
 * `out` (cut to `cap`). Two entries with the same identity are the same backend across a reload
 * (upstream/backend.c keeps its object, config_diff reports a change rather than a removal). */
void config_backend_key(const struct config_backend *cb, char *out, size_t cap);

/* Index of the pool called `name` in cfg->pools, or -1. */
int config_pool_find(const struct config *cfg, const char *name);

/* A shallow copy of cfg as pool p sees it: p's backends and settings in place of the top level's,
 * everything else cfg's. It borrows every pointer from cfg and p: valid while cfg lives, never
 * passed to config_free. For the functions that take a struct config (backend_table_new,
 * balancer_init_config, the health checker) to serve one pool. */
void config_pool_view(const struct config *cfg, const struct config_pool *p, struct config *out);

/* Test and fuzz hook: when on, host names other than "localhost" are not resolved (numeric
 * addresses only), so that arbitrary input never waits on DNS. Off by default; process-wide, set it
 * before loading. */
void config_set_resolve_numeric_only(bool on);

#endif
