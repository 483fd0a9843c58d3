/* tls — see tls.h. */
#include "net/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "base/util.h"

static void chain_free(STACK_OF(X509) *chain)
{
    if (chain)
        sk_X509_pop_free(chain, X509_free);
}

/* TLS 1.2: ECDHE key exchange and AEAD only, fastest and strongest first (ECDSA before RSA,
 * AES-GCM before ChaCha20 on machines with AES-NI). TLS 1.3's suites are all AEAD already. */
#define TLS_DEFAULT_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define MAX_CERTS 64
#define MAX_NAMES_PER_CERT 256

/* ---------------------------------------------------------------- socket BIO --------------- */

/* OpenSSL reads and writes the socket through this BIO instead of its own socket BIO for one
 * reason: it remembers whether the last read came back short (the socket is drained), which is
 * what lets the transport clear its readiness flag without a read that would return EAGAIN, as
 * it does for plain sockets. With read-ahead on, one read takes whole records at once. */
#define BIO_DRAINED 0x100000 /* a flag bit above those OpenSSL uses */

static BIO_METHOD *sock_method;

static int sock_bio_read(BIO *b, char *out, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = read(fd, out, (size_t)len);
        if (n >= 0) {
            if (n < len)
                BIO_set_flags(b, BIO_DRAINED);
            else
                BIO_clear_flags(b, BIO_DRAINED);
            return (int)n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            BIO_set_flags(b, BIO_DRAINED);
            BIO_set_retry_read(b);
        }
        return -1;
    }
}

static int sock_bio_write(BIO *b, const char *in, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = send(fd, in, (size_t)len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            BIO_set_retry_write(b);
        return -1;
    }
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_C_GET_FD:
        return (long)(intptr_t)BIO_get_data(b);
    default:
        return 0;
    }
}

static void sock_method_init(void)
{
    sock_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                               "golb socket");
    if (!sock_method)
        return;
    BIO_meth_set_read(sock_method, sock_bio_read);
    BIO_meth_set_write(sock_method, sock_bio_write);
    BIO_meth_set_ctrl(sock_method, sock_bio_ctrl);
}

/* Attaches fd to ssl through the golb socket BIO. Returns 0 or -1. */
static int attach_fd(SSL *ssl, int fd)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sock_method_init);
    BIO *b = sock_method ? BIO_new(sock_method) : NULL;
    if (!b)
        return -1;
    BIO_set_data(b, (void *)(intptr_t)fd);
    BIO_set_init(b, 1);
    SSL_set_bio(ssl, b, b);
    return 0;
}

bool tls_drained(SSL *ssl)
{
    BIO *b = SSL_get_rbio(ssl);
    return b && BIO_test_flags(b, BIO_DRAINED) && !SSL_has_pending(ssl);
}

/* ---------------------------------------------------------------- server ------------------- */

struct cert_group {
    SSL_CTX *ctx;
    char **names; /* lowercase DNS names from subjectAltName, as written ("*.example.com") */
    int nnames;
    bool has_rsa, has_ec, has_other;
    unsigned char sid_ctx[32]; /* SHA-256(auth_id, names): see tls.h, "Who may resume" */
};

struct sni_entry {
    const char *name; /* exact: "www.example.com"; wildcard: ".example.com" (the part after '*') */
    int group;
};

struct tls_server {
    struct cert_group groups[MAX_CERTS];
    int ngroups;
    /* pending certificates, loaded by tls_server_add_cert() and put into contexts by finish */
    struct {
        X509 *leaf;
        STACK_OF(X509) *chain;
        EVP_PKEY *key;
        int group;
    } certs[MAX_CERTS];
    int ncerts;
    struct sni_entry *exact, *wild;
    int nexact, nwild;
    bool tickets;
    bool finished; /* tls_server_finish() succeeded: contexts and auth_id are set */
    uint32_t rotation_s;
    uint32_t session_timeout_s;
    unsigned char auth_id[32]; /* SHA-256 of the client-authentication rules (tls.h) */
    unsigned char secret[32];  /* ticket key master secret, drawn at load */
    uint64_t id;               /* unique per server: keys cached per thread are keyed by it */
    unsigned char alpn[32];    /* protocols offered by ALPN, preferred first (wire format) */
    unsigned alpn_len;
};

static void ssl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[200] = "";
    if (e) {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, sizeof(buf), ": %s", r ? r : "unknown error");
    }
    snprintf(err, errlen, "%s%s", what, buf);
    ERR_clear_error();
}

struct tls_server *tls_server_new(void)
{
    static _Atomic uint64_t next_id = 1;
    struct tls_server *s = calloc(1, sizeof(*s));
    if (s)
        s->id = atomic_fetch_add(&next_id, 1);
    if (s && RAND_bytes(s->secret, sizeof(s->secret)) != 1) {
        free(s);
        return NULL;
    }
    return s;
}

bool tls_server_inherit_tickets(struct tls_server *s, const struct tls_server *old)
{
    if (!s || !old || !s->finished || !old->finished ||
        CRYPTO_memcmp(s->auth_id, old->auth_id, sizeof(s->auth_id)) != 0)
        return false; /* other rules: s keeps the fresh secret it drew, old tickets are unknown */
    memcpy(s->secret, old->secret, sizeof(s->secret));
    return true;
}

void tls_server_free(struct tls_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->ncerts; i++) {
        X509_free(s->certs[i].leaf);
        chain_free(s->certs[i].chain);
        EVP_PKEY_free(s->certs[i].key);
    }
    for (int i = 0; i < s->ngroups; i++) {
        SSL_CTX_free(s->groups[i].ctx);
        for (int j = 0; j < s->groups[i].nnames; j++)
            free(s->groups[i].names[j]);
        free(s->groups[i].names);
    }
    free(s->exact);
    free(s->wild);
    OPENSSL_cleanse(s->secret, sizeof(s->secret));
    free(s);
}

/* Reads a PEM file's certificates: the first is the leaf, the rest its chain. */
static int read_certs(const char *file, X509 **leaf, STACK_OF(X509) **chain, char *err,
                      size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read certificate file \"%s\": %s", file, strerror(errno));
        return -1;
    }
    *leaf = PEM_read_X509(f, NULL, NULL, NULL);
    if (!*leaf) {
        fclose(f);
        ERR_clear_error();
        snprintf(err, errlen, "certificate file \"%s\" holds no PEM certificate", file);
        return -1;
    }
    *chain = sk_X509_new_null();
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        sk_X509_push(*chain, x);
    ERR_clear_error(); /* the end of the file reads as an error */
    fclose(f);
    return 0;
}

static int read_key(const char *file, EVP_PKEY **key, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read key file \"%s\": %s", file, strerror(errno));
        return -1;
    }
    *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!*key) {
        ERR_clear_error();
        snprintf(err, errlen, "key file \"%s\" holds no PEM private key (or it is encrypted)", file);
        return -1;
    }
    return 0;
}

static char *lower_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    d[n] = '\0';
    return d;
}

/* The DNS names of a certificate's subjectAltName, lowercased. Returns the count (0: none). */
static int cert_names(X509 *x, char ***out)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    *out = NULL;
    if (!gens)
        return 0;
    int n = 0, cap = sk_GENERAL_NAME_num(gens);
    char **names = calloc((size_t)(cap ? cap : 1), sizeof(char *));
    for (int i = 0; names && i < cap && n < MAX_NAMES_PER_CERT; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || memchr(d, '\0', (size_t)len))
            continue;
        names[n] = lower_dup((const char *)d, (size_t)len);
        if (names[n])
            n++;
    }
    GENERAL_NAMES_free(gens);
    *out = names;
    return n;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool same_names(char **a, int na, char **b, int nb)
{
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static void validity_warning(X509 *x, const char *file, char *warn, size_t warnlen)
{
    const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
    bool expired = X509_cmp_current_time(na) < 0, early = X509_cmp_current_time(nb) > 0;
    if (!expired && !early)
        return;
    char from[64] = "?", to[64] = "?";
    BIO *b = BIO_new(BIO_s_mem());
    if (b) {
        int n;
        if (ASN1_TIME_print(b, nb) && (n = BIO_read(b, from, sizeof(from) - 1)) > 0)
            from[n] = '\0';
        if (ASN1_TIME_print(b, na) && (n = BIO_read(b, to, sizeof(to) - 1)) > 0)
            to[n] = '\0';
        BIO_free(b);
    }
    snprintf(warn, warnlen, "certificate \"%s\" is %s (valid from %s to %s)", file,
             expired ? "expired" : "not valid yet", from, to);
}

int tls_server_add_cert(struct tls_server *s, const char *cert_file, const char *key_file,
                        enum tls_err_field *field, char *err, size_t errlen, char *warn,
                        size_t warnlen)
{
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    char **names = NULL;
    int nnames = 0;
    warn[0] = '\0';
    if (s->ncerts == MAX_CERTS) {
        *field = TLS_ERR_CERT;
        snprintf(err, errlen, "at most %d certificates", MAX_CERTS);
        return -1;
    }
    if (read_certs(cert_file, &leaf, &chain, err, errlen) != 0) {
        *field = TLS_ERR_CERT;
        return -1;
    }
    if (read_key(key_file, &key, err, errlen) != 0) {
        *field = TLS_ERR_KEY;
        goto fail;
    }
    if (X509_check_private_key(leaf, key) != 1) {
        ERR_clear_error();
        *field = TLS_ERR_KEY;
        snprintf(err, errlen, "key \"%s\" does not match certificate \"%s\"", key_file, cert_file);
        goto fail;
    }
    nnames = cert_names(leaf, &names);
    if (nnames == 0) {
        *field = TLS_ERR_CERT;
        snprintf(err, errlen,
                 "certificate \"%s\" has no usable names (no DNS entry in subjectAltName)",
                 cert_file);
        goto fail;
    }
    qsort(names, (size_t)nnames, sizeof(char *), str_cmp);
    int kt = EVP_PKEY_get_base_id(key);
    bool rsa = kt == EVP_PKEY_RSA || kt == EVP_PKEY_RSA_PSS, ec = kt == EVP_PKEY_EC;

    int g = 0;
    while (g < s->ngroups && !same_names(s->groups[g].names, s->groups[g].nnames, names, nnames))
        g++;
    if (g < s->ngroups) {
        struct cert_group *grp = &s->groups[g];
        if ((rsa && grp->has_rsa) || (ec && grp->has_ec) || (!rsa && !ec) || grp->has_other) {
            *field = TLS_ERR_CERT;
            snprintf(err, errlen,
                     "certificate \"%s\" has the same names and key type as an earlier one",
                     cert_file);
            goto fail;
        }
        for (int i = 0; i < nnames; i++)
            free(names[i]);
        free(names);
        names = NULL;
    } else {
        struct cert_group *grp = &s->groups[s->ngroups++];
        grp->names = names;
        grp->nnames = nnames;
        names = NULL;
    }
    s->groups[g].has_rsa |= rsa;
    s->groups[g].has_ec |= ec;
    s->groups[g].has_other |= !rsa && !ec;
    validity_warning(leaf, cert_file, warn, warnlen);
    s->certs[s->ncerts].leaf = leaf;
    s->certs[s->ncerts].chain = chain;
    s->certs[s->ncerts].key = key;
    s->certs[s->ncerts].group = g;
    s->ncerts++;
    return 0;
fail:
    for (int i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    X509_free(leaf);
    chain_free(chain);
    EVP_PKEY_free(key);
    return -1;
}

/* ---- session ticket keys: derived per epoch, see tls.h ---- */

struct ticket_keys {
    uint64_t server_id;
    uint64_t epoch;
    unsigned char name[16], aes[32], hmac[32];
};

static void derive(const struct tls_server *s, const char *label, uint64_t epoch,
                   unsigned char out[32])
{
    unsigned char msg[32];
    size_t ll = strlen(label);
    memcpy(msg, label, ll);
    for (int i = 0; i < 8; i++)
        msg[ll + (size_t)i] = (unsigned char)(epoch >> (56 - 8 * i));
    unsigned int outlen = 32;
    HMAC(EVP_sha256(), s->secret, sizeof(s->secret), msg, ll + 8, out, &outlen);
}

/* The keys of one epoch; each thread caches the last two it used. */
static const struct ticket_keys *keys_for(const struct tls_server *s, uint64_t epoch)
{
    static _Thread_local struct ticket_keys cache[2];
    static _Thread_local unsigned next;
    for (int i = 0; i < 2; i++)
        if (cache[i].server_id == s->id && cache[i].epoch == epoch)
            return &cache[i];
    struct ticket_keys *k = &cache[next++ & 1];
    unsigned char name[32];
    derive(s, "golb name", epoch, name);
    memcpy(k->name, name, sizeof(k->name));
    derive(s, "golb aes", epoch, k->aes);
    derive(s, "golb hmac", epoch, k->hmac);
    k->server_id = s->id;
    k->epoch = epoch;
    return k;
}

/* Epochs count from 2, so the current one always has a predecessor (just after boot too). */
static uint64_t current_epoch(const struct tls_server *s)
{
    return util_now_ms() / 1000u / (s->rotation_s ? s->rotation_s : 1) + 2;
}

static int init_ticket_crypto(const struct ticket_keys *k, unsigned char *iv, EVP_CIPHER_CTX *ectx,
                              EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(hctx, k->hmac, sizeof(k->hmac), params) != 1)
        return -1;
    if (enc)
        return EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
    return EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
}

static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
    const struct tls_server *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    uint64_t epoch = current_epoch(s);
    if (enc) {
        const struct ticket_keys *k = keys_for(s, epoch);
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
        memcpy(key_name, k->name, 16);
        return init_ticket_crypto(k, iv, ectx, hctx, 1) == 0 ? 1 : -1;
    }
    for (uint64_t i = 0; i < 2; i++) {
        const struct ticket_keys *k = keys_for(s, epoch - i);
        if (memcmp(key_name, k->name, 16) != 0)
            continue;
        if (init_ticket_crypto(k, iv, ectx, hctx, 0) != 0)
            return -1;
        /* 2: valid, and issue a fresh ticket. Always: TLS 1.3 clients use a ticket once
         * (RFC 8446 §C.4), and a resumed connection that gets no new ticket leaves its client
         * with none, so every other connection was a full handshake (seen with wrk). Under the
         * previous epoch's key the fresh ticket also moves the client to the current key. */
        (void)i;
        return 2;
    }
    return 0; /* unknown key (older, or another process): full handshake */
}

/* After a ticket is decrypted: a session older than the running sessionTimeout is not resumed,
 * even when the ticket carries a longer lifetime (issued before a reload that shortened it). */
static SSL_TICKET_RETURN ticket_dec_cb(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
                                       size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
    const struct tls_server *s = arg;
    (void)ssl;
    (void)keyname;
    (void)keyname_len;
    switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW: {
        time_t now = time(NULL), made = (time_t)SSL_SESSION_get_time(sess);
        if (now < made || (uint64_t)(now - made) > s->session_timeout_s)
            return SSL_TICKET_RETURN_IGNORE_RENEW; /* full handshake, and a fresh ticket */
        return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
    }
    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT:
        return SSL_TICKET_RETURN_IGNORE_RENEW; /* what OpenSSL does without this callback */
    default:
        return SSL_TICKET_RETURN_IGNORE;
    }
}

/* ---- SNI ---- */

static int sni_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sni_entry *)a)->name, ((const struct sni_entry *)b)->name);
}

static const struct sni_entry *sni_find(const struct sni_entry *t, int n, const char *name)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(name, t[mid].name);
        if (c == 0)
            return &t[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

SSL_CTX *tls_server_lookup(const struct tls_server *s, const char *name, size_t len)
{
    char low[256];
    if (!name || len == 0 || len >= sizeof(low))
        return s->groups[0].ctx;
    for (size_t i = 0; i < len; i++)
        low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    low[len] = '\0';
    if (low[len - 1] == '.')
        low[len - 1] = '\0'; /* "example.com." is the same name */
    const struct sni_entry *e = sni_find(s->exact, s->nexact, low);
    if (!e) {
        const char *dot = strchr(low, '.');
        if (dot && dot != low)
            e = sni_find(s->wild, s->nwild, dot);
    }
    return s->groups[e ? e->group : 0].ctx;
}

/* The host name of a ClientHello's server_name extension (RFC 6066 §3: one host_name entry,
 * as OpenSSL itself accepts it). Returns false when there is none or it is malformed (OpenSSL
 * then refuses the handshake on its own parse). */
static bool sni_from_ext(const unsigned char *p, size_t len, const char **name, size_t *nlen)
{
    if (len < 5 || ((size_t)p[0] << 8 | p[1]) != len - 2 || p[2] != TLSEXT_NAMETYPE_host_name)
        return false;
    size_t n = (size_t)p[3] << 8 | p[4];
    if (n == 0 || n != len - 5 || memchr(p + 5, '\0', n))
        return false;
    *name = (const char *)p + 5;
    *nlen = n;
    return true;
}

/* SNI picks the certificate group when the ClientHello arrives, before OpenSSL looks for a
 * session to resume: the offered session is then checked against the session-id context of the
 * group that serves the name, and a new session takes that context. (The servername callback
 * runs after the resumption decision: switching there would check every session against the
 * first group's context.) */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    const struct tls_server *s = arg;
    const unsigned char *ext;
    size_t len, nlen = 0;
    const char *name = NULL;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) != 1 ||
        !sni_from_ext(ext, len, &name, &nlen))
        name = NULL;
    SSL_CTX *ctx = tls_server_lookup(s, name, nlen);
    if (ctx != SSL_get_SSL_CTX(ssl) && !SSL_set_SSL_CTX(ssl, ctx)) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* The context is already chosen (client_hello_cb); this acknowledges the name to the client. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)ssl;
    (void)alert;
    (void)arg;
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: the first of tls.alpn (golb's preference: h2 before http/1.1 by default) that the client
 * offers; SSL_select_next_proto walks the server's list first. A client offering none of them
 * gets no ALPN answer and speaks HTTP/1.1 like a client that sent none. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char http11[] = "\x08http/1.1";
    const struct tls_server *s = arg;
    const unsigned char *ours = s->alpn_len ? s->alpn : http11;
    unsigned ours_len = s->alpn_len ? s->alpn_len : sizeof(http11) - 1;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ours, ours_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    (void)ssl;
    return SSL_TLSEXT_ERR_OK;
}

bool tls_alpn_h2(SSL *ssl)
{
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(ssl, &p, &len);
    return len == 2 && p[0] == 'h' && p[1] == '2';
}

bool tls_client_offer_h2(SSL *ssl)
{
    static const unsigned char h2[] = {2, 'h', '2'};
    return SSL_set_alpn_protos(ssl, h2, sizeof(h2)) == 0; /* 0 is success here */
}

static int build_sni(struct tls_server *s)
{
    int total = 0;
    for (int g = 0; g < s->ngroups; g++)
        total += s->groups[g].nnames;
    s->exact = calloc((size_t)total + 1, sizeof(*s->exact));
    s->wild = calloc((size_t)total + 1, sizeof(*s->wild));
    if (!s->exact || !s->wild)
        return -1;
    for (int g = 0; g < s->ngroups; g++) {
        for (int i = 0; i < s->groups[g].nnames; i++) {
            const char *n = s->groups[g].names[i];
            if (n[0] == '*' && n[1] == '.')
                s->wild[s->nwild++] = (struct sni_entry){n + 1, g};
            else if (!strchr(n, '*'))
                s->exact[s->nexact++] = (struct sni_entry){n, g};
        }
    }
    /* Sorted by name; for a name several certificates claim, the first listed wins (groups are
     * in listing order and the sort below is made stable by the group index). */
    qsort(s->exact, (size_t)s->nexact, sizeof(*s->exact), sni_cmp);
    qsort(s->wild, (size_t)s->nwild, sizeof(*s->wild), sni_cmp);
    for (struct sni_entry *t = s->exact; t; t = t == s->exact ? s->wild : NULL) {
        int *n = t == s->exact ? &s->nexact : &s->nwild, w = 0;
        for (int r = 0; r < *n; r++) {
            if (w > 0 && strcmp(t[w - 1].name, t[r].name) == 0) {
                if (t[r].group < t[w - 1].group)
                    t[w - 1].group = t[r].group;
                continue;
            }
            t[w++] = t[r];
        }
        *n = w;
    }
    return 0;
}

static int apply_common(SSL_CTX *ctx, int min_version, const char *ciphers,
                        enum tls_err_field *field, char *err, size_t errlen)
{
    SSL_CTX_set_min_proto_version(ctx, min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1); /* whole records (often several) per read(2) */
    /* TLS 1.3: AES-128-GCM first (as strong in practice, fewer rounds: cheaper per byte). */
    SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERSUITES);
    if (SSL_CTX_set_cipher_list(ctx, ciphers ? ciphers : TLS_DEFAULT_CIPHERS) != 1) {
        *field = TLS_ERR_CIPHERS;
        ERR_clear_error();
        snprintf(err, errlen, "no usable cipher in \"%s\"", ciphers ? ciphers : "");
        return -1;
    }
    return 0;
}

/* Every certificate of the client CA file, read once: the same certificates are trusted for
 * verification, named to clients in the CertificateRequest and hashed into auth_id. */
static STACK_OF(X509) *read_client_cas(const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    STACK_OF(X509_INFO) *info = f ? PEM_X509_INFO_read(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    STACK_OF(X509) *cas = info ? sk_X509_new_null() : NULL;
    for (int i = 0; cas && i < sk_X509_INFO_num(info); i++) {
        X509_INFO *xi = sk_X509_INFO_value(info, i);
        if (xi->x509 && sk_X509_push(cas, xi->x509) > 0)
            xi->x509 = NULL; /* now owned by cas */
    }
    if (info)
        sk_X509_INFO_pop_free(info, X509_INFO_free);
    if (!cas || sk_X509_num(cas) == 0) {
        chain_free(cas);
        ERR_clear_error();
        snprintf(err, errlen, "cannot read client CA file \"%s\" (missing, unreadable or not PEM)",
                 file);
        return NULL;
    }
    return cas;
}

static int sha_u32(EVP_MD_CTX *md, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return EVP_DigestUpdate(md, b, sizeof(b));
}

/* auth_id = SHA-256 of what decides who may connect: the verify mode and depth and every client
 * CA certificate (DER, in file order). Returns 0 or -1. */
static int auth_digest(int mode, int depth, STACK_OF(X509) *cas, unsigned char out[32])
{
    static const char label[] = "golb client auth 1";
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int n = cas ? sk_X509_num(cas) : 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(md, label, sizeof(label)) && sha_u32(md, (uint32_t)mode) &&
             sha_u32(md, (uint32_t)depth) && sha_u32(md, (uint32_t)n);
    for (int i = 0; ok && i < n; i++) {
        unsigned char *der = NULL;
        int len = i2d_X509(sk_X509_value(cas, i), &der);
        ok = len > 0 && sha_u32(md, (uint32_t)len) && EVP_DigestUpdate(md, der, (size_t)len);
        OPENSSL_free(der);
    }
    ok = ok && EVP_DigestFinal_ex(md, out, NULL);
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

/* A group's session-id context: SHA-256(auth_id, the group's names). A session carries the
 * context it was made in, and OpenSSL resumes it only in an equal one. Returns 0 or -1. */
static int group_sid_ctx(const struct tls_server *s, struct cert_group *g)
{
    static const char label[] = "golb sid_ctx 1";
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(md, label, sizeof(label)) &&
             EVP_DigestUpdate(md, s->auth_id, sizeof(s->auth_id));
    for (int i = 0; ok && i < g->nnames; i++) /* sorted; each with its '\0' as separator */
        ok = EVP_DigestUpdate(md, g->names[i], strlen(g->names[i]) + 1);
    ok = ok && EVP_DigestFinal_ex(md, g->sid_ctx, NULL);
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

static int name_cmp(const X509_NAME *const *a, const X509_NAME *const *b)
{
    return X509_NAME_cmp(*a, *b);
}

/* The distinct subject names of the client CAs, for the CertificateRequest. */
static STACK_OF(X509_NAME) *ca_names(STACK_OF(X509) *cas)
{
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new(name_cmp);
    for (int i = 0; names && i < sk_X509_num(cas); i++) {
        const X509_NAME *xn = X509_get_subject_name(sk_X509_value(cas, i));
        if (sk_X509_NAME_find(names, (X509_NAME *)xn) >= 0)
            continue;
        X509_NAME *d = X509_NAME_dup(xn);
        if (!d || sk_X509_NAME_push(names, d) <= 0) {
            X509_NAME_free(d);
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return NULL;
        }
    }
    return names;
}

int tls_server_finish(struct tls_server *s, const struct tls_server_settings *st,
                      enum tls_err_field *field, char *err, size_t errlen)
{
    *field = TLS_ERR_OTHER;
    if (s->ngroups == 0) {
        snprintf(err, errlen, "no certificate");
        return -1;
    }
    s->tickets = st->session_tickets;
    if (st->alpn && st->alpn_len <= sizeof(s->alpn)) {
        memcpy(s->alpn, st->alpn, st->alpn_len);
        s->alpn_len = (unsigned)st->alpn_len;
    }
    s->rotation_s = st->ticket_rotation_s ? st->ticket_rotation_s : 43200;
    s->session_timeout_s = st->session_timeout_s ? st->session_timeout_s : TLS_SESSION_TIMEOUT;
    STACK_OF(X509) *cas = NULL;
    STACK_OF(X509_NAME) *names = NULL;
    int mode = SSL_VERIFY_NONE, depth = 0, rc = -1;
    if (st->client_ca_file) {
        cas = read_client_cas(st->client_ca_file, err, errlen);
        if (!cas) {
            *field = TLS_ERR_CA;
            return -1;
        }
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        depth = 8;
        if (!(names = ca_names(cas)))
            goto oom;
    }
    if (auth_digest(mode, depth, cas, s->auth_id) != 0)
        goto oom;
    for (int g = 0; g < s->ngroups; g++) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx) {
            ssl_err(err, errlen, "cannot create a TLS context");
            goto out;
        }
        s->groups[g].ctx = ctx;
        SSL_CTX_set_app_data(ctx, s);
        if (apply_common(ctx, st->min_version, st->ciphers, field, err, errlen) != 0)
            goto out;
        if (group_sid_ctx(s, &s->groups[g]) != 0)
            goto oom;
        SSL_CTX_set_session_id_context(ctx, s->groups[g].sid_ctx, sizeof(s->groups[g].sid_ctx));
        SSL_CTX_set_timeout(ctx, (long)s->session_timeout_s);
        SSL_CTX_set_max_early_data(ctx, 0);
        SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, s);
        SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
        SSL_CTX_set_tlsext_servername_arg(ctx, s);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, s);
        /* Resumption is by ticket only: no server-side cache to lock across workers. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        if (s->tickets) {
            SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
            SSL_CTX_set_session_ticket_cb(ctx, NULL, ticket_dec_cb, s);
            SSL_CTX_set_num_tickets(ctx, 1);
        } else {
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(ctx, 0);
        }
        for (int i = 0; i < s->ncerts; i++) {
            if (s->certs[i].group != g)
                continue;
            if (SSL_CTX_use_cert_and_key(ctx, s->certs[i].leaf, s->certs[i].key,
                                         s->certs[i].chain, 1) != 1) {
                *field = TLS_ERR_CERT;
                ssl_err(err, errlen, "cannot use certificate");
                goto out;
            }
        }
        if (cas) {
            X509_STORE *store = SSL_CTX_get_cert_store(ctx);
            for (int i = 0; i < sk_X509_num(cas); i++) {
                if (X509_STORE_add_cert(store, sk_X509_value(cas, i)) != 1) {
                    *field = TLS_ERR_CA;
                    ssl_err(err, errlen, "cannot load client CA file");
                    goto out;
                }
            }
            STACK_OF(X509_NAME) *dup = SSL_dup_CA_list(names);
            if (!dup)
                goto oom;
            SSL_CTX_set_client_CA_list(ctx, dup);
        }
        SSL_CTX_set_verify(ctx, mode, NULL);
        if (depth)
            SSL_CTX_set_verify_depth(ctx, depth);
    }
    if (build_sni(s) != 0)
        goto oom;
    s->finished = true;
    rc = 0;
    goto out;
oom:
    *field = TLS_ERR_OTHER;
    ERR_clear_error();
    snprintf(err, errlen, "out of memory");
out:
    chain_free(cas);
    if (names)
        sk_X509_NAME_pop_free(names, X509_NAME_free);
    return rc;
}

SSL *tls_server_ssl(struct tls_server *s, int fd)
{
    SSL *ssl = SSL_new(s->groups[0].ctx);
    if (!ssl)
        return NULL;
    if (attach_fd(ssl, fd) != 0) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

/* ---------------------------------------------------------------- client ------------------- */

struct tls_client {
    SSL_CTX *ctx;
    char *server_name;
    bool name_is_ip;
    bool verify;
};

static int session_ex_index = -1;
static int owner_ex_index = -1;

static void ex_indexes(void)
{
    session_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    owner_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    tls_session_cb cb = (tls_session_cb)(uintptr_t)SSL_get_ex_data(ssl, session_ex_index);
    void *owner = SSL_get_ex_data(ssl, owner_ex_index);
    if (!cb || !owner || !SSL_SESSION_is_resumable(sess))
        return 0;
    cb(owner, sess);
    return 1; /* the callee holds the reference */
}

struct tls_client *tls_client_new(const struct tls_client_settings *st, enum tls_err_field *field,
                                  char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ex_indexes);
    struct tls_client *c = calloc(1, sizeof(*c));
    if (!c) {
        *field = TLS_ERR_OTHER;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->verify = st->verify;
    c->server_name = strdup(st->server_name ? st->server_name : "");
    unsigned char ipbuf[16];
    c->name_is_ip = inet_pton(AF_INET, c->server_name, ipbuf) == 1 ||
                    inet_pton(AF_INET6, c->server_name, ipbuf) == 1;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->server_name || !c->ctx) {
        *field = TLS_ERR_OTHER;
        ssl_err(err, errlen, "cannot create a TLS context");
        goto fail;
    }
    if (apply_common(c->ctx, 12, NULL, field, err, errlen) != 0)
        goto fail;
    SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)"\x08http/1.1", 9);
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ctx, new_session_cb);
    if (st->verify) {
        int ok = st->ca_file ? SSL_CTX_load_verify_locations(c->ctx, st->ca_file, NULL)
                             : SSL_CTX_set_default_verify_paths(c->ctx);
        if (ok != 1) {
            *field = TLS_ERR_CA;
            ERR_clear_error();
            snprintf(err, errlen, "cannot read CA file \"%s\" (missing, unreadable or not PEM)",
                     st->ca_file ? st->ca_file : "system store");
            goto fail;
        }
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (st->client_cert_file) {
        X509 *leaf = NULL;
        STACK_OF(X509) *chain = NULL;
        EVP_PKEY *key = NULL;
        if (read_certs(st->client_cert_file, &leaf, &chain, err, errlen) != 0) {
            *field = TLS_ERR_CERT;
            goto fail;
        }
        if (read_key(st->client_key_file, &key, err, errlen) != 0 ||
            X509_check_private_key(leaf, key) != 1 ||
            SSL_CTX_use_cert_and_key(c->ctx, leaf, key, chain, 1) != 1) {
            if (key) {
                ERR_clear_error();
                snprintf(err, errlen, "key \"%s\" does not match certificate \"%s\"",
                         st->client_key_file, st->client_cert_file);
            }
            *field = TLS_ERR_KEY;
            X509_free(leaf);
            chain_free(chain);
            EVP_PKEY_free(key);
            goto fail;
        }
        X509_free(leaf);
        chain_free(chain);
        EVP_PKEY_free(key);
    }
    return c;
fail:
    tls_client_free(c);
    return NULL;
}

void tls_client_free(struct tls_client *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    free(c->server_name);
    free(c);
}

SSL *tls_client_ssl(struct tls_client *c, int fd, SSL_SESSION *session)
{
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    if (attach_fd(ssl, fd) != 0)
        goto fail;
    if (!c->name_is_ip && c->server_name[0] &&
        SSL_set_tlsext_host_name(ssl, c->server_name) != 1)
        goto fail;
    if (c->verify) {
        X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
        if (c->name_is_ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(p, c->server_name) != 1)
                goto fail;
        } else {
            X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(ssl, c->server_name) != 1)
                goto fail;
        }
    }
    if (session)
        SSL_set_session(ssl, session);
    SSL_set_connect_state(ssl);
    return ssl;
fail:
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

void tls_client_set_session_owner(SSL *ssl, tls_session_cb cb, void *owner)
{
    SSL_set_ex_data(ssl, session_ex_index, (void *)(uintptr_t)cb);
    SSL_set_ex_data(ssl, owner_ex_index, owner);
}

/* ---------------------------------------------------------------- both --------------------- */

int tls_handshake(SSL *ssl, bool *want_write, char *err, size_t errlen)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return 1;
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want_write = e == SSL_ERROR_WANT_WRITE;
        return -EAGAIN;
    }
    unsigned long le = ERR_peek_error();
    if (ERR_GET_REASON(le) == SSL_R_HTTP_REQUEST) {
        ERR_clear_error();
        return -EBADMSG;
    }
    if (err && errlen) {
        const char *v = tls_verify_error(ssl);
        if (v)
            snprintf(err, errlen, "TLS handshake failed: certificate verify failed: %s", v);
        else if (le)
            snprintf(err, errlen, "TLS handshake failed: %s",
                     ERR_reason_error_string(le) ? ERR_reason_error_string(le) : "error");
        else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
            snprintf(err, errlen, "TLS handshake failed: connection closed");
        else
            snprintf(err, errlen, "TLS handshake failed");
    }
    ERR_clear_error();
    return -EPROTO;
}

const char *tls_verify_error(SSL *ssl)
{
    long v = SSL_get_verify_result(ssl);
    if (v == X509_V_OK || SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE)
        return NULL;
    return X509_verify_cert_error_string(v);
}

size_t tls_peer_subject(SSL *ssl, char *buf, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    if (!x || len == 0 || SSL_get_verify_result(ssl) != X509_V_OK)
        return 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return 0;
    /* RFC 2253 with UTF-8 kept as is but control characters escaped: safe in a header value */
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0,
                       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    int n = BIO_read(b, buf, (int)len - 1);
    BIO_free(b);
    if (n <= 0)
        return 0;
    for (int i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            buf[i] = '?';
    buf[n] = '\0';
    return (size_t)n;
}

bool tls_has_pending(SSL *ssl)
{
    return SSL_has_pending(ssl) == 1;
}

void tls_session_free(SSL_SESSION *session)
{
    if (session)
        SSL_SESSION_free(session);
}

bool tls_close_notify_received(SSL *ssl)
{
    return (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}

bool tls_session_reused(SSL *ssl)
{
    return SSL_session_reused(ssl) == 1;
}

void tls_close_notify(SSL *ssl)
{
    if (!SSL_is_init_finished(ssl) || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        return;
    ERR_clear_error();
    (void)SSL_shutdown(ssl); /* one non-blocking close_notify; never wait for the peer's */
    ERR_clear_error();
}

void tls_free(SSL *ssl, bool clean)
{
    if (!ssl)
        return;
    if (clean)
        tls_close_notify(ssl);
    ERR_clear_error();
    SSL_free(ssl);
}
