/* config_tls — the `tls` section and backends' TLS keys (config.h, config_int.h, config_yaml.h).
 *
 *   tls:
 *     listen: ADDR | [ADDR, ...]         required; same forms as `listen`
 *     certificates:                      required, non-empty; the first is the default
 *       - certFile: PATH                 leaf + chain, PEM
 *         keyFile: PATH                  PEM, unencrypted
 *     minVersion: "1.2" | "1.3"          default "1.2"
 *     ciphers: OPENSSL-CIPHER-LIST       TLS 1.2 suites; default ECDHE + AEAD only
 *     sessionTickets: true | false       default true
 *     ticketKeyRotation: SECONDS         default 43200 (12 h), at least 60
 *     sessionTimeout: SECONDS            a session resumes for this long; default 300, at least 1
 *     handshakeTimeout: SECONDS          default clientHeaderTimeout
 *     clientCaFile: PATH                 client certificates required and verified against it
 *     clientSubjectHeader: NAME          forward the verified client subject in this header
 *     redirectHttp: true | false         plain listener answers 308 to https://; default false
 *     alpn: [h2, http/1.1]               protocols offered by ALPN, golb's preference first;
 *                                        default [h2, http/1.1]; [http/1.1] turns HTTP/2 off
 *   backends: - url: https://...         TLS to the backend, verified
 *               serverName / caFile / tlsVerify / clientCertFile / clientKeyFile
 *
 * Relative paths resolve against the config file's directory. Every certificate, key and CA file
 * is read here, at load, so errors come out as FILE:LINE:COL before golb listens, and a reload
 * (which loads anew) picks up renewed files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"
#include "net/tls.h"
#include "base/util.h"

#define TICKET_ROTATION_MIN_MS 60000u

const char *const config_tls_backend_keys[] = {"serverName", "caFile", "tlsVerify",
                                               "clientCertFile", "clientKeyFile"};
const size_t config_tls_backend_nkeys = ARRAY_LEN(config_tls_backend_keys);

/* A non-empty string value without control characters; 0 or -1 after reporting. */
static int get_string(struct config_yaml_load *l, const char *key, const struct config_yaml_node *v,
                      const char **out)
{
    struct config_yaml_qbuf q;
    if (v->kind == CONFIG_YAML_BAD)
        return -1;
    if (!config_yaml_is_string(v) || v->len == 0) {
        config_yaml_error(l, v, "%s must be a non-empty string, got %s", key,
                          config_yaml_describe(&q, v));
        return -1;
    }
    for (size_t i = 0; i < v->len; i++) {
        if ((unsigned char)v->str[i] < 0x20 || v->str[i] == 0x7f) {
            config_yaml_error(l, v, "%s must not contain control characters", key);
            return -1;
        }
    }
    *out = v->str;
    return 0;
}

static int get_path(struct config_yaml_load *l, const char *key, const struct config_yaml_node *v,
                    char **out)
{
    const char *s;
    if (get_string(l, key, v, &s) != 0)
        return -1;
    free(*out);
    *out = config_yaml_resolve_path(l, s);
    if (!*out) {
        config_yaml_oom(l);
        return -1;
    }
    return 0;
}

static int get_seconds(struct config_yaml_load *l, const char *key,
                       const struct config_yaml_node *v, uint32_t min_ms, uint32_t *out)
{
    struct config_yaml_qbuf q;
    uint32_t ms;
    if (v->kind == CONFIG_YAML_BAD)
        return -1;
    enum config_yaml_seconds r = config_yaml_parse_seconds(v, &ms);
    if (r == CONFIG_YAML_SEC_OK && ms >= min_ms) {
        *out = ms;
        return 0;
    }
    if (r == CONFIG_YAML_SEC_SYNTAX)
        config_yaml_error(l, v, "%s must be a number of seconds (e.g. 3 or 0.5), got %s", key,
                          config_yaml_describe(&q, v));
    else if (r == CONFIG_YAML_SEC_TOO_LONG)
        config_yaml_error(l, v, "%s must be at most 86400 seconds (1 day), got %s", key, v->str);
    else
        config_yaml_error(l, v, "%s must be at least %u seconds, got %s", key,
                          MAX(min_ms / 1000u, 1u), v->str);
    return -1;
}

/* ---------------------------------------------------------------- tls.certificates --------- */

static void load_certificates(struct config_yaml_load *l, struct config_tls *t,
                              const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    static const char *const names[] = {"certFile", "keyFile"};
    if (v->kind == CONFIG_YAML_BAD)
        return;
    if (v->kind != CONFIG_YAML_SEQUENCE || v->nkids == 0) {
        config_yaml_error(
            l, v, "tls.certificates must be a non-empty sequence of {certFile, keyFile}, got %s",
            v->kind == CONFIG_YAML_SEQUENCE ? "an empty sequence" : config_yaml_describe(&q, v));
        return;
    }
    t->certs = calloc(v->nkids, sizeof(*t->certs));
    if (!t->certs) {
        config_yaml_oom(l);
        return;
    }
    for (size_t i = 0; i < v->nkids; i++) {
        const struct config_yaml_node *e = v->kids[i];
        if (e->kind == CONFIG_YAML_BAD)
            continue;
        if (e->kind != CONFIG_YAML_MAPPING) {
            config_yaml_error(l, e,
                              "a certificate must be a mapping with certFile and keyFile, got %s",
                              config_yaml_describe(&q, e));
            continue;
        }
        const struct config_yaml_node *cert_k = NULL, *key_k = NULL, *cert_v = NULL, *key_v = NULL;
        for (size_t j = 0; j + 1 < e->nkids; j += 2) {
            const struct config_yaml_node *k = e->kids[j], *val = e->kids[j + 1];
            if (!config_yaml_key_ok(l, k))
                continue;
            if (config_yaml_key_is(k, "certFile")) {
                if (config_yaml_key_first(l, k, &cert_k))
                    cert_v = val;
            } else if (config_yaml_key_is(k, "keyFile")) {
                if (config_yaml_key_first(l, k, &key_k))
                    key_v = val;
            } else {
                config_yaml_unknown_key(l, k, names, ARRAY_LEN(names), " in certificate");
            }
        }
        if (!cert_v || !key_v) {
            config_yaml_error(l, e, "certificate is missing \"%s\"",
                              cert_v ? "keyFile" : "certFile");
            continue;
        }
        struct config_tls_cert c = {0};
        if (get_path(l, "certFile", cert_v, &c.cert_file) != 0 ||
            get_path(l, "keyFile", key_v, &c.key_file) != 0) {
            free(c.cert_file);
            free(c.key_file);
            continue;
        }
        if (!t->server) {
            free(c.cert_file);
            free(c.key_file);
            continue;
        }
        enum tls_err_field field = TLS_ERR_NONE;
        char err[TLS_ERR_MAX], warn[TLS_ERR_MAX];
        if (tls_server_add_cert(t->server, c.cert_file, c.key_file, &field, err, sizeof(err), warn,
                                sizeof(warn)) != 0) {
            config_yaml_error(l, field == TLS_ERR_KEY ? key_v : cert_v, "%s", err);
            free(c.cert_file);
            free(c.key_file);
            continue;
        }
        if (warn[0])
            config_yaml_warning(l, cert_v, "%s", warn);
        t->certs[t->ncerts++] = c;
    }
}

/* ---------------------------------------------------------------- tls.alpn ----------------- */

/* The default offer: h2 preferred, then HTTP/1.1. */
static const unsigned char alpn_default[] = "\x02h2\x08http/1.1";

/* tls.alpn: a non-empty sequence of h2 and http/1.1, each once, into t->alpn (wire format). */
static void load_alpn(struct config_yaml_load *l, struct config_tls *t,
                      const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    static const char *const known[] = {"h2", "http/1.1"};
    if (v->kind != CONFIG_YAML_SEQUENCE || v->nkids == 0) {
        config_yaml_error(l, v, "tls.alpn must be a non-empty sequence of h2 and http/1.1, got %s",
                          v->kind == CONFIG_YAML_SEQUENCE ? "an empty sequence"
                                                          : config_yaml_describe(&q, v));
        return;
    }
    bool seen[ARRAY_LEN(known)] = {false};
    t->alpn_len = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct config_yaml_node *e = v->kids[i];
        if (e->kind == CONFIG_YAML_BAD)
            continue;
        size_t k = 0;
        while (k < ARRAY_LEN(known) &&
               !(config_yaml_is_string(e) && strcmp(e->str, known[k]) == 0))
            k++;
        if (k == ARRAY_LEN(known)) {
            config_yaml_error(l, e, "tls.alpn entry must be h2 or http/1.1, got %s",
                              config_yaml_describe(&q, e));
            continue;
        }
        if (seen[k]) {
            config_yaml_error(l, e, "tls.alpn lists \"%s\" twice", known[k]);
            continue;
        }
        seen[k] = true;
        size_t n = strlen(known[k]);
        t->alpn[t->alpn_len++] = (unsigned char)n;
        memcpy(t->alpn + t->alpn_len, known[k], n);
        t->alpn_len = (uint8_t)(t->alpn_len + n);
    }
}

/* ---------------------------------------------------------------- the tls section ---------- */

void config_tls_section(struct config_yaml_load *l, struct config *cfg,
                        const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    static const char *const names[] = {
        "listen",       "certificates",        "minVersion",   "ciphers",
        "sessionTickets", "ticketKeyRotation", "handshakeTimeout", "clientCaFile",
        "clientSubjectHeader", "redirectHttp", "sessionTimeout", "alpn"};
    if (v->kind == CONFIG_YAML_BAD)
        return;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "tls must be a mapping, got %s", config_yaml_describe(&q, v));
        return;
    }
    struct config_tls *t = calloc(1, sizeof(*t));
    if (!t) {
        config_yaml_oom(l);
        return;
    }
    cfg->tls = t;
    atomic_init(&t->refs, 1); /* the configuration's */
    t->min_version = 12;
    t->session_tickets = true;
    t->ticket_key_rotation_ms = 43200u * 1000u;
    t->session_timeout_ms = TLS_SESSION_TIMEOUT * 1000u;
    memcpy(t->alpn, alpn_default, sizeof(alpn_default) - 1);
    t->alpn_len = sizeof(alpn_default) - 1;
    t->server = tls_server_new();
    if (!t->server)
        config_yaml_oom(l);

    const struct config_yaml_node *slot[ARRAY_LEN(names)] = {0}, *val[ARRAY_LEN(names)] = {0};
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i];
        int idx = config_yaml_key_index(l, k, names, ARRAY_LEN(names), slot, " in tls");
        if (idx >= 0)
            val[idx] = v->kids[i + 1];
    }
    const struct config_yaml_node *n;
    const char *s;
    bool settings_ok = true;
    if ((n = val[0]) != NULL) {
        config_listen_parse(l, "tls.listen", slot[0], n, &t->listen);
    } else {
        config_yaml_error(l, v, "tls is missing \"listen\" (the HTTPS listener's address)");
    }
    if ((n = val[2]) != NULL) {
        if (config_yaml_is_string(n) && (!strcmp(n->str, "1.2") || !strcmp(n->str, "1.3"))) {
            t->min_version = n->str[2] == '3' ? 13 : 12;
        } else {
            config_yaml_error(l, n, "tls.minVersion must be \"1.2\" or \"1.3\", got %s",
                              config_yaml_describe(&q, n));
            settings_ok = false;
        }
    }
    if ((n = val[3]) != NULL) {
        if (get_string(l, "tls.ciphers", n, &s) == 0 && !(t->ciphers = strdup(s)))
            config_yaml_oom(l);
        settings_ok &= t->ciphers != NULL;
    }
    if ((n = val[4]) != NULL)
        (void)config_yaml_get_bool(l, "tls.sessionTickets", n, &t->session_tickets);
    if ((n = val[5]) != NULL)
        (void)get_seconds(l, "tls.ticketKeyRotation", n, TICKET_ROTATION_MIN_MS,
                          &t->ticket_key_rotation_ms);
    if ((n = val[6]) != NULL)
        (void)get_seconds(l, "tls.handshakeTimeout", n, 1, &t->handshake_timeout_ms);
    if ((n = val[7]) != NULL)
        settings_ok &= get_path(l, "tls.clientCaFile", n, &t->client_ca_file) == 0;
    if ((n = val[8]) != NULL && get_string(l, "tls.clientSubjectHeader", n, &s) == 0) {
        if (!config_yaml_http_token(s, n->len))
            config_yaml_error(l, n, "tls.clientSubjectHeader must be a header field name, got %s",
                              config_yaml_describe(&q, n));
        else if (!(t->client_subject_header = strdup(s)))
            config_yaml_oom(l);
    }
    if ((n = val[9]) != NULL)
        (void)config_yaml_get_bool(l, "tls.redirectHttp", n, &t->redirect_http);
    if ((n = val[10]) != NULL)
        (void)get_seconds(l, "tls.sessionTimeout", n, 1000u, &t->session_timeout_ms);
    if ((n = val[11]) != NULL && n->kind != CONFIG_YAML_BAD)
        load_alpn(l, t, n);
    if (t->client_subject_header && !t->client_ca_file)
        config_yaml_error(l, val[8],
                          "tls.clientSubjectHeader needs tls.clientCaFile (no client "
                          "certificate is verified without it)");

    if ((n = val[1]) != NULL)
        load_certificates(l, t, n);
    else
        config_yaml_error(l, v, "tls is missing \"certificates\"");
    if (!t->server || t->ncerts == 0 || !settings_ok)
        return;
    struct tls_server_settings st = {
        .min_version = t->min_version,
        .ciphers = t->ciphers,
        .session_tickets = t->session_tickets,
        .ticket_rotation_s = t->ticket_key_rotation_ms / 1000u,
        .session_timeout_s = (t->session_timeout_ms + 999u) / 1000u,
        .client_ca_file = t->client_ca_file,
        .alpn = t->alpn,
        .alpn_len = t->alpn_len,
    };
    enum tls_err_field field = TLS_ERR_NONE;
    char err[TLS_ERR_MAX];
    if (tls_server_finish(t->server, &st, &field, err, sizeof(err)) != 0) {
        const struct config_yaml_node *at = field == TLS_ERR_CIPHERS ? val[3]
                                            : field == TLS_ERR_CA    ? val[7]
                                                                     : v;
        config_yaml_error(l, at ? at : v, "%s", err);
    }
}

void config_tls_cross_check(struct config_yaml_load *l, struct config *cfg,
                            const struct config_yaml_node *root,
                            const struct config_yaml_node *listen_v)
{
    if (cfg->tls && !cfg->tls->handshake_timeout_ms)
        cfg->tls->handshake_timeout_ms = cfg->client_header_timeout_ms;
    if (cfg->plain_off && !cfg->tls)
        config_yaml_error(l, listen_v,
                          "listen: off needs a tls section (golb would serve nothing)");
    if (cfg->plain_off && cfg->tls && cfg->tls->redirect_http)
        config_yaml_error(l, listen_v, "listen: off leaves no plain listener for tls.redirectHttp");
    (void)root;
}

void config_tls_ref(struct config_tls *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void config_tls_unref(struct config_tls *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < t->ncerts; i++) {
        free(t->certs[i].cert_file);
        free(t->certs[i].key_file);
    }
    free(t->certs);
    config_listen_free(&t->listen);
    free(t->ciphers);
    free(t->client_ca_file);
    free(t->client_subject_header);
    tls_server_free(t->server);
    free(t);
}

void config_tls_free(struct config *cfg)
{
    config_tls_unref(cfg->tls);
    cfg->tls = NULL;
}

/* ---------------------------------------------------------------- backends ----------------- */

bool config_tls_backend_key(struct config_yaml_load *l, const struct config_yaml_node *k,
                            const struct config_yaml_node *v, struct config_backend *b)
{
    for (size_t i = 0; i < config_tls_backend_nkeys; i++)
        if (config_yaml_key_is(k, config_tls_backend_keys[i]))
            return true; /* read by config_tls_backend_finish, which knows the scheme */
    (void)l;
    (void)v;
    (void)b;
    return false;
}

int config_tls_backend_finish(struct config_yaml_load *l, const struct config_yaml_node *entry,
                              struct config_backend *b)
{
    const struct config_yaml_node *slot[5] = {0}, *val[5] = {0};
    int rc = 0;
    if (entry->kind == CONFIG_YAML_MAPPING) {
        for (size_t i = 0; i + 1 < entry->nkids; i += 2) {
            const struct config_yaml_node *k = entry->kids[i];
            for (size_t j = 0; j < config_tls_backend_nkeys; j++) {
                if (!config_yaml_key_is(k, config_tls_backend_keys[j]))
                    continue;
                if (config_yaml_key_first(l, k, &slot[j]))
                    val[j] = entry->kids[i + 1];
                else
                    rc = -1;
            }
        }
    }
    for (size_t j = 0; j < config_tls_backend_nkeys && !b->tls; j++) {
        if (slot[j]) {
            config_yaml_error(l, slot[j], "%s is only for https backends",
                              config_tls_backend_keys[j]);
            rc = -1;
        }
    }
    if (!b->tls || rc != 0)
        return rc;
    const char *s;
    if (val[0]) {
        if (get_string(l, "serverName", val[0], &s) != 0)
            return -1;
        b->server_name = strdup(s);
    } else {
        b->server_name = strdup(b->host);
    }
    if (!b->server_name) {
        config_yaml_oom(l);
        return -1;
    }
    if (val[1] && get_path(l, "caFile", val[1], &b->ca_file) != 0)
        return -1;
    if (val[2] && config_yaml_get_bool(l, "tlsVerify", val[2], &b->tls_verify) != 0)
        return -1;
    if ((val[3] != NULL) != (val[4] != NULL)) {
        config_yaml_error(l, val[3] ? slot[3] : slot[4],
                          "clientCertFile and clientKeyFile go together");
        return -1;
    }
    if (val[3] && (get_path(l, "clientCertFile", val[3], &b->client_cert_file) != 0 ||
                   get_path(l, "clientKeyFile", val[4], &b->client_key_file) != 0))
        return -1;
    if (!b->tls_verify) {
        if (b->ca_file)
            config_yaml_warning(l, slot[1], "caFile is not used: tlsVerify is false");
        config_yaml_warning(
            l, slot[2],
            "tlsVerify: false: the certificate of backend %s is not verified; anyone "
            "on the path can impersonate it",
            b->name);
    }
    struct tls_client_settings st = {
        .server_name = b->server_name,
        .verify = b->tls_verify,
        .ca_file = b->ca_file,
        .client_cert_file = b->client_cert_file,
        .client_key_file = b->client_key_file,
    };
    enum tls_err_field field = TLS_ERR_NONE;
    char err[TLS_ERR_MAX];
    b->tls_client = tls_client_new(&st, &field, err, sizeof(err));
    if (!b->tls_client) {
        const struct config_yaml_node *at = field == TLS_ERR_CA     ? val[1]
                                            : field == TLS_ERR_CERT ? val[3]
                                            : field == TLS_ERR_KEY  ? val[4]
                                                                    : NULL;
        config_yaml_error(l, at ? at : entry, "%s", err);
        return -1;
    }
    return 0;
}

void config_tls_backend_clear(struct config_backend *b)
{
    free(b->server_name);
    free(b->ca_file);
    free(b->client_cert_file);
    free(b->client_key_file);
    tls_client_free(b->tls_client);
    b->server_name = b->ca_file = b->client_cert_file = b->client_key_file = NULL;
    b->tls_client = NULL;
}
