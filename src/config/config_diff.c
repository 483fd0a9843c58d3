/* config_diff — see config_diff.h. */
#include "config/config_diff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"
#include "base/cidr.h"
#include "base/sock.h"

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *or_none(const char *s)
{
    return s ? s : "(none)";
}

/* A file path as the configuration wrote it, when it wrote it relative: the loaded path without
 * the directory of the file that named it ("certs/a.pem" for "/etc/golb/certs/a.pem" named in
 * /etc/golb/golb.yml). */
static const char *as_written(const struct config *c, const char *path)
{
    const char *slash = c->path ? strrchr(c->path, '/') : NULL;
    size_t n = slash ? (size_t)(slash - c->path) + 1 : 0;
    return n && strncmp(path, c->path, n) == 0 ? path + n : path;
}

/* The same file for a reload: the same path, or the same path relative to each file's directory
 * (golb -t -diff against a copy of the running file kept elsewhere with the files it names). */
static bool path_eq(const struct config *o, const char *a, const struct config *n, const char *b)
{
    return str_eq(a, b) || (a && b && strcmp(as_written(o, a), as_written(n, b)) == 0);
}

/* A duration in ms as the YAML writes it: seconds, fractional when needed ("0.5s"). */
static void fmt_ms(char *out, size_t cap, uint32_t ms)
{
    if (ms % 1000 == 0)
        snprintf(out, cap, "%us", ms / 1000);
    else
        snprintf(out, cap, "%u.%03us", ms / 1000, ms % 1000);
}

/* NULL-terminated lists of strings (NULL: empty) */
static bool list_eq(char *const *a, char *const *b)
{
    size_t i = 0;
    for (; a && b && a[i] && b[i]; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return !(a && a[i]) && !(b && b[i]);
}

/* "[a, b]" */
static void list_print(char *const *l, FILE *out)
{
    fputc('[', out);
    for (size_t i = 0; l && l[i]; i++)
        fprintf(out, "%s%s", i ? ", " : "", l[i]);
    fputc(']', out);
}

/* tls.alpn as YAML: [h2, http/1.1]. */
static void alpn_print(const struct config_tls *t, FILE *out)
{
    fputc('[', out);
    for (unsigned i = 0; i < t->alpn_len; i += 1u + t->alpn[i])
        fprintf(out, "%s%.*s", i ? ", " : "", (int)t->alpn[i], (const char *)t->alpn + i + 1);
    fputc(']', out);
}

static bool addr_eq(const struct sockaddr_storage *a, socklen_t alen,
                    const struct sockaddr_storage *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* What a reload cannot apply (workers, admin.listen): the reload keeps the running value and warns
 * (server.c, keep_restart_settings), so its own diff never has these lines; -diff says so on the
 * line. */
#define NEEDS_RESTART " (needs a restart)"

/* The scalar top-level settings (durations and counts) of the key table. */
static int diff_scalars(const struct config *o, const struct config *n, FILE *out)
{
    size_t nkeys;
    const struct config_yaml_key *keys = config_top_keys(&nkeys);
    int lines = 0;
    for (size_t i = 0; i < nkeys; i++) {
        const struct config_yaml_key *k = &keys[i];
        const char *po = (const char *)o + k->off, *pn = (const char *)n + k->off;
        const char *note = "";
        char a[32], b[32];
        switch (k->type) {
        case CONFIG_YAML_KT_DURATION: {
            uint32_t x, y;
            memcpy(&x, po, sizeof(x));
            memcpy(&y, pn, sizeof(y));
            if (x == y)
                continue;
            fmt_ms(a, sizeof(a), x);
            fmt_ms(b, sizeof(b), y);
            break;
        }
        case CONFIG_YAML_KT_UINT:
        case CONFIG_YAML_KT_FACTOR: {
            uint32_t x, y;
            memcpy(&x, po, sizeof(x));
            memcpy(&y, pn, sizeof(y));
            if (x == y)
                continue;
            if (k->type == CONFIG_YAML_KT_FACTOR) {
                snprintf(a, sizeof(a), "%u.%03u", x / 1000, x % 1000);
                snprintf(b, sizeof(b), "%u.%03u", y / 1000, y % 1000);
            } else {
                snprintf(a, sizeof(a), "%u", x);
                snprintf(b, sizeof(b), "%u", y);
            }
            break;
        }
        case CONFIG_YAML_KT_INT: {
            int x, y;
            memcpy(&x, po, sizeof(x));
            memcpy(&y, pn, sizeof(y));
            if (x == y)
                continue;
            snprintf(a, sizeof(a), "%d", x);
            snprintf(b, sizeof(b), "%d", y);
            if (strcmp(k->name, "workers") == 0)
                note = NEEDS_RESTART;
            break;
        }
        case CONFIG_YAML_KT_BOOL: {
            bool x, y;
            memcpy(&x, po, sizeof(x));
            memcpy(&y, pn, sizeof(y));
            if (x == y)
                continue;
            snprintf(a, sizeof(a), "%s", x ? "true" : "false");
            snprintf(b, sizeof(b), "%s", y ? "true" : "false");
            break;
        }
        default:
            continue;
        }
        fprintf(out, "setting changed: %s %s -> %s%s\n", k->name, a, b, note);
        lines++;
    }
    return lines;
}

#define SETTING_STR(name, x, y)                                                                    \
    do {                                                                                           \
        if (!str_eq((x), (y))) {                                                                   \
            fprintf(out, "setting changed: %s %s -> %s\n", name, or_none(x), or_none(y));          \
            lines++;                                                                               \
        }                                                                                          \
    } while (0)
#define SETTING_PATH(name, x, y)                                                                   \
    do {                                                                                           \
        if (!path_eq(o, (x), n, (y))) {                                                            \
            fprintf(out, "setting changed: %s %s -> %s\n", name, or_none(x), or_none(y));          \
            lines++;                                                                               \
        }                                                                                          \
    } while (0)

static int diff_others(const struct config *o, const struct config *n, FILE *out)
{
    int lines = 0;
    SETTING_STR("balance", o->balance, n->balance);
    static const char *const protos[] = {"http1", "h2"}, *const checks[] = {"http", "grpc"};
    if (o->up.protocol != n->up.protocol) {
        fprintf(out, "setting changed: protocol %s -> %s\n", protos[o->up.protocol & 1],
                protos[n->up.protocol & 1]);
        lines++;
    }
    if (o->up.health_check != n->up.health_check) {
        fprintf(out, "setting changed: healthCheck %s -> %s\n", checks[o->up.health_check & 1],
                checks[n->up.health_check & 1]);
        lines++;
    }
    SETTING_STR("healthCheckService", o->up.health_check_service, n->up.health_check_service);
    if (o->up.max_streams != n->up.max_streams) {
        fprintf(out, "setting changed: maxStreamsPerConnection %u -> %u\n", o->up.max_streams,
                n->up.max_streams);
        lines++;
    }
    if (o->hash_key != n->hash_key || !str_eq(o->hash_key_name, n->hash_key_name)) {
        fprintf(out, "setting changed: hashKey\n");
        lines++;
    }
    if (!str_eq(o->sticky.cookie, n->sticky.cookie) || o->sticky.max_age != n->sticky.max_age ||
        o->sticky.secure != n->sticky.secure || o->sticky.http_only != n->sticky.http_only ||
        !str_eq(o->sticky.same_site, n->sticky.same_site)) {
        fprintf(out, "setting changed: stickySession\n");
        lines++;
    }
    if (o->sticky.keyed != n->sticky.keyed ||
        (n->sticky.keyed && memcmp(o->sticky.key, n->sticky.key, sizeof(n->sticky.key)) != 0)) {
        /* never the secret itself; without one each process keeps its own key */
        fprintf(out, "setting changed: stickySession.secret (sticky cookies issued before no "
                     "longer match)\n");
        lines++;
    }
    if (!str_eq(o->admin_listen, n->admin_listen)) {
        fprintf(out, "setting changed: admin.listen %s -> %s" NEEDS_RESTART "\n",
                o->admin_listen ? o->admin_listen : "off", n->admin_listen ? n->admin_listen : "off");
        lines++;
    }
    if (!str_eq(o->admin_token, n->admin_token)) {
        fprintf(out, "setting changed: admin.token\n"); /* never the secret itself */
        lines++;
    }
    if (o->access_log != n->access_log) {
        static const char *const f[] = {"off", "text", "json"};
        fprintf(out, "setting changed: accessLog %s -> %s\n", f[o->access_log % 3],
                f[n->access_log % 3]);
        lines++;
    }
    SETTING_STR("accessLogPath", o->access_log_path, n->access_log_path);
    if (!list_eq(o->upgrade_protocols, n->upgrade_protocols)) {
        fputs("setting changed: upgradeProtocols ", out);
        list_print(o->upgrade_protocols, out);
        fputs(" -> ", out);
        list_print(n->upgrade_protocols, out);
        fputc('\n', out);
        lines++;
    }
    const struct config_http2 *h = &o->http2, *k = &n->http2;
    if (h->cleartext != k->cleartext) {
        fprintf(out, "setting changed: http2.cleartext %s -> %s\n", h->cleartext ? "true" : "false",
                k->cleartext ? "true" : "false");
        lines++;
    }
    if (h->max_concurrent_streams != k->max_concurrent_streams) {
        fprintf(out, "setting changed: http2.maxConcurrentStreams %u -> %u\n",
                h->max_concurrent_streams, k->max_concurrent_streams);
        lines++;
    }
    if (h->initial_window_size != k->initial_window_size) {
        fprintf(out, "setting changed: http2.initialWindowSize %u -> %u\n", h->initial_window_size,
                k->initial_window_size);
        lines++;
    }
    if (h->idle_timeout_ms != k->idle_timeout_ms) {
        char x[32], y[32];
        fmt_ms(x, sizeof(x), h->idle_timeout_ms);
        fmt_ms(y, sizeof(y), k->idle_timeout_ms);
        fprintf(out, "setting changed: http2.idleTimeout %s -> %s\n", x, y);
        lines++;
    }
    if (o->log_json != n->log_json) {
        fprintf(out, "setting changed: logFormat %s -> %s\n", o->log_json ? "json" : "text",
                n->log_json ? "json" : "text");
        lines++;
    }
    const struct config_tls *a = o->tls, *b = n->tls;
    if (!a != !b) {
        fprintf(out, "setting changed: tls %s\n", b ? "added" : "removed");
        lines++;
    } else if (a) {
        if (a->ncerts != b->ncerts) {
            fprintf(out, "setting changed: tls.certificates %d -> %d entries\n", a->ncerts,
                    b->ncerts);
            lines++;
        } else {
            for (int i = 0; i < a->ncerts; i++) {
                SETTING_PATH("tls.certificates.certFile", a->certs[i].cert_file,
                             b->certs[i].cert_file);
                SETTING_PATH("tls.certificates.keyFile", a->certs[i].key_file,
                             b->certs[i].key_file);
            }
        }
        if (a->min_version != b->min_version) {
            fprintf(out, "setting changed: tls.minVersion 1.%d -> 1.%d\n", a->min_version % 10,
                    b->min_version % 10);
            lines++;
        }
        SETTING_STR("tls.ciphers", a->ciphers, b->ciphers);
        SETTING_PATH("tls.clientCaFile", a->client_ca_file, b->client_ca_file);
        SETTING_STR("tls.clientSubjectHeader", a->client_subject_header,
                    b->client_subject_header);
        char x[32], y[32];
        if (a->ticket_key_rotation_ms != b->ticket_key_rotation_ms) {
            fmt_ms(x, sizeof(x), a->ticket_key_rotation_ms);
            fmt_ms(y, sizeof(y), b->ticket_key_rotation_ms);
            fprintf(out, "setting changed: tls.ticketKeyRotation %s -> %s\n", x, y);
            lines++;
        }
        if (a->session_timeout_ms != b->session_timeout_ms) {
            fmt_ms(x, sizeof(x), a->session_timeout_ms);
            fmt_ms(y, sizeof(y), b->session_timeout_ms);
            fprintf(out, "setting changed: tls.sessionTimeout %s -> %s\n", x, y);
            lines++;
        }
        if (a->handshake_timeout_ms != b->handshake_timeout_ms) {
            fmt_ms(x, sizeof(x), a->handshake_timeout_ms);
            fmt_ms(y, sizeof(y), b->handshake_timeout_ms);
            fprintf(out, "setting changed: tls.handshakeTimeout %s -> %s\n", x, y);
            lines++;
        }
        if (a->alpn_len != b->alpn_len || memcmp(a->alpn, b->alpn, a->alpn_len) != 0) {
            fputs("setting changed: tls.alpn ", out);
            alpn_print(a, out);
            fputs(" -> ", out);
            alpn_print(b, out);
            fputc('\n', out);
            lines++;
        }
        if (a->session_tickets != b->session_tickets || a->redirect_http != b->redirect_http) {
            fprintf(out, "setting changed: tls.%s\n",
                    a->session_tickets != b->session_tickets ? "sessionTickets" : "redirectHttp");
            lines++;
        }
    }
    return lines;
}

/* The addresses of `listen` (tls false) or `tls.listen`: none with `listen: off` or no tls. */
static const struct config_listen_list *listens(const struct config *c, bool tls)
{
    static const struct config_listen_list none;
    if (tls)
        return c->tls ? &c->tls->listen : &none;
    return c->plain_off ? &none : &c->listen;
}

static bool listed(const struct config_listen_list *list, const struct config_listen *e)
{
    for (int i = 0; i < list->n; i++)
        if (addr_eq(&list->at[i].addr, list->at[i].addrlen, &e->addr, e->addrlen))
            return true;
    return false;
}

/* True when the two lists differ as sets of configured addresses (order aside). */
static bool listeners_changed(const struct config *o, const struct config *n, bool tls)
{
    const struct config_listen_list *a = listens(o, tls), *b = listens(n, tls);
    if (a->n != b->n)
        return true;
    for (int i = 0; i < b->n; i++)
        if (!listed(a, &b->at[i]))
            return true;
    return false;
}

bool config_plain_listener_changed(const struct config *o, const struct config *n)
{
    return listeners_changed(o, n, false);
}

bool config_tls_listener_changed(const struct config *o, const struct config *n)
{
    return listeners_changed(o, n, true);
}

/* Per address: one replaced by one is "changed: KEY A -> B" (a move), otherwise each address
 * gone is "removed", each new one "added". An address listed in both is untouched (its sockets
 * are kept), whatever the order. */
static int diff_listener_key(const struct config *o, const struct config *n, bool tls, FILE *out)
{
    const struct config_listen_list *a = listens(o, tls), *b = listens(n, tls);
    const char *key = tls ? "tls.listen" : "listen";
    int gone = -1, added = -1, ngone = 0, nadded = 0, lines = 0;
    for (int i = 0; i < a->n; i++) {
        if (!listed(b, &a->at[i])) {
            gone = i;
            ngone++;
        }
    }
    for (int i = 0; i < b->n; i++) {
        if (!listed(a, &b->at[i])) {
            added = i;
            nadded++;
        }
    }
    if (ngone == 1 && nadded == 1) {
        fprintf(out, "listener changed: %s %s -> %s\n", key, a->at[gone].name, b->at[added].name);
        return 1;
    }
    for (int i = 0; i < a->n; i++) {
        if (!listed(b, &a->at[i])) {
            fprintf(out, "listener removed: %s %s\n", key, a->at[i].name);
            lines++;
        }
    }
    for (int i = 0; i < b->n; i++) {
        if (!listed(a, &b->at[i])) {
            fprintf(out, "listener added: %s %s\n", key, b->at[i].name);
            lines++;
        }
    }
    return lines;
}

static int diff_listeners(const struct config *o, const struct config *n, FILE *out)
{
    return diff_listener_key(o, n, false, out) + diff_listener_key(o, n, true, out);
}

/* What changed in one backend present in both (a of o, b of n), written after "backend changed:
 * KEY: ". */
static bool diff_backend(const struct config *o, const struct config_backend *a,
                         const struct config *n, const struct config_backend *b, FILE *out)
{
    const char *sep = "";
    bool any = false;
#define FIELD(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            fputs(sep, out);                                                                       \
            fprintf(out, __VA_ARGS__);                                                             \
            sep = ", ";                                                                            \
            any = true;                                                                            \
        }                                                                                          \
    } while (0)
    FIELD(a->weight != b->weight, "weight %u -> %u", a->weight, b->weight);
    static const char *const protos[] = {"http1", "h2"}, *const checks[] = {"http", "grpc"};
    FIELD(a->up.protocol != b->up.protocol, "protocol %s -> %s", protos[a->up.protocol & 1],
          protos[b->up.protocol & 1]);
    FIELD(a->up.health_check != b->up.health_check, "healthCheck %s -> %s",
          checks[a->up.health_check & 1], checks[b->up.health_check & 1]);
    FIELD(!str_eq(a->up.health_check_service, b->up.health_check_service),
          "healthCheckService \"%s\" -> \"%s\"",
          a->up.health_check_service ? a->up.health_check_service : "",
          b->up.health_check_service ? b->up.health_check_service : "");
    FIELD(a->up.max_streams != b->up.max_streams, "maxStreamsPerConnection %u -> %u",
          a->up.max_streams, b->up.max_streams);
    static const char *const rv[] = {"none", "a", "srv"};
    FIELD(a->resolve != b->resolve, "resolve %s -> %s", rv[a->resolve % 3], rv[b->resolve % 3]);
    static const char *const ppv[] = {"off", "v1", "v2"};
    FIELD(a->send_proxy_protocol != b->send_proxy_protocol, "sendProxyProtocol %s -> %s",
          ppv[a->send_proxy_protocol % 3], ppv[b->send_proxy_protocol % 3]);
    FIELD(!str_eq(a->health_path, b->health_path), "healthPath \"%s\" -> \"%s\"",
          or_none(a->health_path), or_none(b->health_path));
    FIELD(!addr_eq(&a->addr, a->addrlen, &b->addr, b->addrlen), "address re-resolved");
    FIELD(!str_eq(a->server_name, b->server_name), "serverName %s -> %s", or_none(a->server_name),
          or_none(b->server_name));
    FIELD(!path_eq(o, a->ca_file, n, b->ca_file), "caFile %s -> %s", or_none(a->ca_file),
          or_none(b->ca_file));
    FIELD(a->tls_verify != b->tls_verify, "tlsVerify %s -> %s", a->tls_verify ? "true" : "false",
          b->tls_verify ? "true" : "false");
    FIELD(!path_eq(o, a->client_cert_file, n, b->client_cert_file) ||
              !path_eq(o, a->client_key_file, n, b->client_key_file),
          "client certificate");
#undef FIELD
    return any;
}

static int find_backend(const struct config_backend *bs, int n, const char *key)
{
    char k[300];
    for (int i = 0; i < n; i++) {
        config_backend_key(&bs[i], k, sizeof(k));
        if (strcmp(k, key) == 0)
            return i;
    }
    return -1;
}

/* The backends of one pool, old (ob[on]) against new (nb[nn]), matched by identity: "backend
 * added|removed|changed: KEY" (" in pool NAME" after KEY for a pool other than default, whose
 * backends are other objects than the same URL's in another pool; no parentheses: the reload's
 * log line puts the changes in them). */
static int diff_pool_backends(const struct config *o, const struct config_backend *ob, int on,
                              const struct config *n, const struct config_backend *nb, int nn,
                              const char *pool, FILE *out)
{
    int lines = 0;
    char key[300], in[100] = "";
    if (pool)
        snprintf(in, sizeof(in), " in pool %s", pool);
    for (int i = 0; i < nn; i++) {
        config_backend_key(&nb[i], key, sizeof(key));
        int j = find_backend(ob, on, key);
        if (j < 0) {
            fprintf(out, "backend added: %s%s\n", key, in);
            lines++;
            continue;
        }
        /* Written to a buffer first: only a backend with a change gets a line. */
        char buf[1024];
        FILE *f = fmemopen(buf, sizeof(buf), "w");
        if (!f)
            continue;
        bool changed = diff_backend(o, &ob[j], n, &nb[i], f);
        fclose(f);
        buf[sizeof(buf) - 1] = '\0';
        if (changed) {
            fprintf(out, "backend changed: %s%s: %s\n", key, in, buf);
            lines++;
        }
    }
    for (int j = 0; j < on; j++) {
        config_backend_key(&ob[j], key, sizeof(key));
        if (find_backend(nb, nn, key) < 0) {
            fprintf(out, "backend removed: %s%s\n", key, in);
            lines++;
        }
    }
    return lines;
}

static int diff_backends(const struct config *o, const struct config *n, FILE *out)
{
    return diff_pool_backends(o, o->backends, o->nbackends, n, n->backends, n->nbackends, NULL,
                              out);
}

/* ---- pools and routes: each compared as one text, matched by name ---- */

static void fields_print(FILE *f, const struct config_route_field *x, int n)
{
    for (int i = 0; i < n; i++)
        fprintf(f, "%s=%s;", x[i].name, x[i].value ? x[i].value : "*");
    fputc('|', f);
}

/* Everything a pool is, as text (its backends by identity and weight, then its settings). */
static char *pool_sig(const struct config_pool *p)
{
    char *text = NULL, k[300];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    for (int i = 0; i < p->nbackends; i++) {
        config_backend_key(&p->backends[i], k, sizeof(k));
        const struct config_backend *b = &p->backends[i];
        fprintf(f, "%s %u %s %u %u %s %u;", k, b->weight, or_none(b->health_path),
                b->up.protocol, b->up.health_check, or_none(b->up.health_check_service),
                b->up.max_streams);
    }
    fprintf(f, "|%s %d %s %u %u %u %s %u %u %u %u %u %u %u %u %u %u %u", or_none(p->balance),
            (int)p->hash_key, or_none(p->hash_key_name), p->hash_load_factor, p->slow_start_ms,
            p->panic_threshold, or_none(p->sticky.cookie), p->sticky.max_age,
            p->healthy_threshold, p->unhealthy_threshold, p->health_check_period_ms,
            p->health_check_timeout_ms, p->connect_timeout_ms, p->upstream_timeout_ms, p->retries,
            p->max_fails, p->upstream_max_idle, (unsigned)p->sticky.secure * 2 + p->sticky.http_only);
    fclose(f);
    return text;
}

/* Everything a route is, as text (pools by name: indices move when pools come and go). */
static char *route_sig(const struct config *c, const struct config_route *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "%s|%s|%s|%s|", or_none(r->host), or_none(r->path), or_none(r->path_prefix),
            or_none(r->path_regex));
    list_print(r->methods, f);
    fields_print(f, r->headers, r->nheaders);
    fields_print(f, r->query, r->nquery);
    fprintf(f, "%d|", (int)r->action);
    if (r->action == CONFIG_ROUTE_POOL)
        fprintf(f, "%s|", c->pools[r->pool].name);
    for (int i = 0; i < r->nsplit; i++)
        fprintf(f, "%s=%u;", c->pools[r->split[i].pool].name, r->split[i].weight);
    fprintf(f, "|%s %s %u %s %d|%d %zu ", or_none(r->redirect.scheme), or_none(r->redirect.host),
            r->redirect.port, or_none(r->redirect.path), r->redirect.status, r->respond.status,
            r->respond.body_len);
    if (r->respond.body)
        fwrite(r->respond.body, 1, r->respond.body_len, f);
    fprintf(f, "|%d %s|", (int)r->strip_prefix, or_none(r->rewrite_prefix));
    fields_print(f, r->set_request_headers, r->nset_request_headers);
    list_print(r->remove_request_headers, f);
    fields_print(f, r->set_response_headers, r->nset_response_headers);
    list_print(r->remove_response_headers, f);
    char cb[64];
    fprintf(f, "|%d:", (int)r->has_allow);
    for (int i = 0; i < r->nallow; i++)
        fprintf(f, "%s,", cidr_str(&r->allow[i], cb, sizeof(cb)));
    fputc('|', f);
    for (int i = 0; i < r->ndeny; i++)
        fprintf(f, "%s,", cidr_str(&r->deny[i], cb, sizeof(cb)));
    fprintf(f, "|%u %u %u %d", r->rate_mrps, r->rate_burst, r->upstream_timeout_ms, r->retries);
    fclose(f);
    return text;
}

static int find_pool(const struct config *c, const char *name)
{
    for (int i = 1; i < c->npools; i++)
        if (strcmp(c->pools[i].name, name) == 0)
            return i;
    return -1;
}

static int find_route(const struct config *c, const char *name)
{
    for (int i = 0; i < c->nroutes; i++)
        if (strcmp(c->routes[i].name, name) == 0)
            return i;
    return -1;
}

static bool cidrs_eq(const struct cidr *a, int na, const struct cidr *b, int nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(*a)) == 0);
}

/* "[10.0.0.0/8, ::1/128]" */
static void cidrs_print(const struct cidr *c, int n, FILE *out)
{
    char buf[64];
    fputc('[', out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%s", i ? ", " : "", cidr_str(&c[i], buf, sizeof(buf)));
    fputc(']', out);
}

/* proxyProtocol, trustedProxies (config_net.c): they apply to connections and requests that
 * start after the reload; resolvers (config_dns.c): to the next lookups. */
static int diff_net(const struct config *o, const struct config *n, FILE *out)
{
    int lines = 0;
    if (o->pp_on != n->pp_on) {
        fprintf(out, "setting changed: proxyProtocol %s\n", n->pp_on ? "added" : "removed");
        lines++;
    } else if (n->pp_on) {
        if (!cidrs_eq(o->pp_trusted, o->npp_trusted, n->pp_trusted, n->npp_trusted)) {
            fputs("setting changed: proxyProtocol.trustedNetworks ", out);
            cidrs_print(o->pp_trusted, o->npp_trusted, out);
            fputs(" -> ", out);
            cidrs_print(n->pp_trusted, n->npp_trusted, out);
            fputc('\n', out);
            lines++;
        }
        if (o->pp_required != n->pp_required) {
            fprintf(out, "setting changed: proxyProtocol.required %s -> %s\n",
                    o->pp_required ? "true" : "false", n->pp_required ? "true" : "false");
            lines++;
        }
    }
    const struct config_resolvers *ro = &o->resolvers, *rn = &n->resolvers;
    if (!str_eq(ro->nameservers, rn->nameservers)) {
        fprintf(out, "setting changed: resolvers.nameservers %s -> %s\n",
                ro->nameservers ? ro->nameservers : "/etc/resolv.conf",
                rn->nameservers ? rn->nameservers : "/etc/resolv.conf");
        lines++;
    }
    if (ro->min_ttl_s != rn->min_ttl_s || ro->max_ttl_s != rn->max_ttl_s ||
        ro->hold_s != rn->hold_s) {
        fprintf(out,
                "setting changed: resolvers minTtl %u -> %u, maxTtl %u -> %u, holdOnFailure %u "
                "-> %u\n",
                ro->min_ttl_s, rn->min_ttl_s, ro->max_ttl_s, rn->max_ttl_s, ro->hold_s, rn->hold_s);
        lines++;
    }
    if (!cidrs_eq(o->trusted_proxies, o->ntrusted_proxies, n->trusted_proxies,
                  n->ntrusted_proxies)) {
        fputs("setting changed: trustedProxies ", out);
        cidrs_print(o->trusted_proxies, o->ntrusted_proxies, out);
        fputs(" -> ", out);
        cidrs_print(n->trusted_proxies, n->ntrusted_proxies, out);
        fputc('\n', out);
        lines++;
    }
    return lines;
}

static int diff_routing(const struct config *o, const struct config *n, FILE *out)
{
    int lines = 0;
    if (o->encoded_slash_reject != n->encoded_slash_reject) {
        fprintf(out, "setting changed: encodedSlash %s -> %s\n",
                o->encoded_slash_reject ? "reject" : "keep",
                n->encoded_slash_reject ? "reject" : "keep");
        lines++;
    }
    for (int i = 1; i < n->npools; i++) { /* the default pool is the backends and settings */
        int j = find_pool(o, n->pools[i].name);
        char *a = j < 0 ? NULL : pool_sig(&o->pools[j]), *b = j < 0 ? NULL : pool_sig(&n->pools[i]);
        if (j < 0 || !a || !b || strcmp(a, b) != 0) {
            fprintf(out, "pool %s: %s\n", j < 0 ? "added" : "changed", n->pools[i].name);
            lines++;
        }
        /* a kept pool keeps its backends by identity: which come, go or change */
        if (j >= 0 && a && b && strcmp(a, b) != 0)
            lines += diff_pool_backends(o, o->pools[j].backends, o->pools[j].nbackends, n,
                                        n->pools[i].backends, n->pools[i].nbackends,
                                        n->pools[i].name, out);
        free(a);
        free(b);
    }
    for (int j = 1; j < o->npools; j++)
        if (find_pool(n, o->pools[j].name) < 0) {
            fprintf(out, "pool removed: %s\n", o->pools[j].name);
            lines++;
        }
    int last = -1;
    bool reordered = false;
    for (int i = 0; i < n->nroutes; i++) {
        int j = find_route(o, n->routes[i].name);
        char *a = j < 0 ? NULL : route_sig(o, &o->routes[j]);
        char *b = j < 0 ? NULL : route_sig(n, &n->routes[i]);
        if (j < 0 || !a || !b || strcmp(a, b) != 0) {
            fprintf(out, "route %s: %s\n", j < 0 ? "added" : "changed", n->routes[i].name);
            lines++;
        }
        free(a);
        free(b);
        if (j >= 0) {
            reordered |= j < last;
            last = j;
        }
    }
    for (int j = 0; j < o->nroutes; j++)
        if (find_route(n, o->routes[j].name) < 0) {
            fprintf(out, "route removed: %s\n", o->routes[j].name);
            lines++;
        }
    if (reordered) {
        fprintf(out, "routes reordered\n");
        lines++;
    }
    return lines;
}

int config_diff(const struct config *old, const struct config *new, FILE *out)
{
    return diff_backends(old, new, out) + diff_listeners(old, new, out) +
           diff_scalars(old, new, out) + diff_others(old, new, out) +
           diff_routing(old, new, out) + diff_net(old, new, out);
}
