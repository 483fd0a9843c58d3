/* Unit tests for src/tls.c: SNI lookup over certificate groups, session ticket keys per epoch,
 * load errors. Certificates are made in a temp dir with the openssl command (never checked in).
 * The file includes tls.c itself to reach the static ticket-key helpers. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../../src/net/tls.c"

static char dir[64];

static void make_cert(const char *name, const char *sans, const char *key)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 %s -nodes -days 30 -keyout %s.key -out %s.pem "
             "-subj /CN=%s %s%s >/dev/null 2>&1",
             dir,
             strcmp(key, "rsa") == 0 ? "-newkey rsa:2048"
                                     : "-newkey ec -pkeyopt ec_paramgen_curve:P-256",
             name, name, name, sans[0] ? "-addext subjectAltName=" : "", sans);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static char *path(const char *name, const char *ext)
{
    static char bufs[8][128];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 128, "%s/%s.%s", dir, name, ext);
    return b;
}

static void setup(void)
{
    strcpy(dir, "/tmp/golb-tls-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    make_cert("a-ec", "DNS:a.test,DNS:*.a.test", "ec");
    make_cert("a-rsa", "DNS:a.test,DNS:*.a.test", "rsa");
    make_cert("b", "DNS:b.test,DNS:shared.test", "ec");
    make_cert("c", "DNS:shared.test,DNS:c.test", "ec");
    make_cert("nosan", "", "ec");
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
}

static struct tls_server *server_with(const char *const *names, int n)
{
    struct tls_server *s = tls_server_new();
    cr_assert_not_null(s);
    enum tls_err_field f;
    char err[256], warn[256];
    for (int i = 0; i < n; i++)
        cr_assert_eq(tls_server_add_cert(s, path(names[i], "pem"), path(names[i], "key"), &f, err,
                                         sizeof(err), warn, sizeof(warn)),
                     0, "%s", err);
    struct tls_server_settings st = {.min_version = 12, .session_tickets = true,
                                     .ticket_rotation_s = 3600};
    cr_assert_eq(tls_server_finish(s, &st, &f, err, sizeof(err)), 0, "%s", err);
    return s;
}

TestSuite(tls, .init = setup, .fini = teardown);

Test(tls, ecdsa_and_rsa_for_the_same_names_share_one_context)
{
    static const char *const names[] = {"a-ec", "a-rsa", "b"};
    struct tls_server *s = server_with(names, 3);
    cr_expect_eq(s->ngroups, 2);
    cr_expect(s->groups[0].has_ec && s->groups[0].has_rsa);
    tls_server_free(s);
}

Test(tls, sni_exact_wildcard_case_trailing_dot_and_default)
{
    static const char *const names[] = {"a-ec", "b", "c"};
    struct tls_server *s = server_with(names, 3);
    SSL_CTX *a = s->groups[0].ctx, *b = s->groups[1].ctx, *c = s->groups[2].ctx;
    cr_expect_eq(tls_server_lookup(s, "a.test", 6), a);
    cr_expect_eq(tls_server_lookup(s, "www.a.test", 10), a);
    cr_expect_eq(tls_server_lookup(s, "WWW.A.Test", 10), a);
    cr_expect_eq(tls_server_lookup(s, "b.test.", 7), b);
    cr_expect_eq(tls_server_lookup(s, "c.test", 6), c);
    /* a wildcard covers one label only; unknown and absent names get the first certificate */
    cr_expect_eq(tls_server_lookup(s, "x.www.a.test", 12), a);
    cr_expect_eq(tls_server_lookup(s, "x.b.test", 8), a);
    cr_expect_eq(tls_server_lookup(s, NULL, 0), a);
    /* a name two certificates claim goes to the one listed first */
    cr_expect_eq(tls_server_lookup(s, "shared.test", 11), b);
    tls_server_free(s);
}

Test(tls, load_errors_name_the_file_and_field)
{
    struct tls_server *s = tls_server_new();
    enum tls_err_field f = TLS_ERR_NONE;
    char err[256], warn[256];
    cr_expect_eq(tls_server_add_cert(s, path("a-ec", "pem"), path("a-rsa", "key"), &f, err,
                                     sizeof(err), warn, sizeof(warn)), -1);
    cr_expect_eq(f, TLS_ERR_KEY);
    cr_expect(strstr(err, "does not match certificate") != NULL, "%s", err);
    cr_expect_eq(tls_server_add_cert(s, path("nosan", "pem"), path("nosan", "key"), &f, err,
                                     sizeof(err), warn, sizeof(warn)), -1);
    cr_expect_eq(f, TLS_ERR_CERT);
    cr_expect(strstr(err, "no usable names") != NULL, "%s", err);
    cr_expect_eq(tls_server_add_cert(s, path("a-ec", "key"), path("a-ec", "key"), &f, err,
                                     sizeof(err), warn, sizeof(warn)), -1);
    cr_expect(strstr(err, "holds no PEM certificate") != NULL, "%s", err);
    cr_expect_eq(tls_server_add_cert(s, "/nonexistent.pem", path("a-ec", "key"), &f, err,
                                     sizeof(err), warn, sizeof(warn)), -1);
    cr_expect(strstr(err, "No such file") != NULL, "%s", err);
    cr_expect_eq(tls_server_add_cert(s, path("a-ec", "pem"), path("a-ec", "key"), &f, err,
                                     sizeof(err), warn, sizeof(warn)), 0);
    cr_expect_eq(tls_server_add_cert(s, path("a-ec", "pem"), path("a-ec", "key"), &f, err,
                                     sizeof(err), warn, sizeof(warn)), -1);
    cr_expect(strstr(err, "same names and key type") != NULL, "%s", err);
    struct tls_server_settings st = {.min_version = 12, .ciphers = "NOPE"};
    cr_expect_eq(tls_server_finish(s, &st, &f, err, sizeof(err)), -1);
    cr_expect_eq(f, TLS_ERR_CIPHERS);
    tls_server_free(s);
}

Test(tls, ticket_keys_differ_per_epoch_and_per_process_secret)
{
    static const char *const names[] = {"b"};
    struct tls_server *s1 = server_with(names, 1), *s2 = server_with(names, 1);
    struct ticket_keys k10 = *keys_for(s1, 10), k11 = *keys_for(s1, 11);
    cr_expect_neq(memcmp(k10.name, k11.name, 16), 0);
    cr_expect_neq(memcmp(k10.aes, k11.aes, 32), 0);
    /* the same epoch gives the same keys again (any worker derives them alike) */
    cr_expect_eq(memcmp(keys_for(s1, 10)->aes, k10.aes, 32), 0);
    cr_expect_eq(memcmp(keys_for(s1, 10)->hmac, k10.hmac, 32), 0);
    /* another process (another secret) cannot read these tickets */
    cr_expect_neq(memcmp(keys_for(s2, 10)->name, k10.name, 16), 0);
    tls_server_free(s1);
    tls_server_free(s2);
}

Test(tls, ticket_callback_accepts_current_and_previous_epoch_only)
{
    static const char *const names[] = {"b"};
    struct tls_server *s = server_with(names, 1);
    SSL *ssl = SSL_new(s->groups[0].ctx);
    cr_assert_not_null(ssl);
    uint64_t e = current_epoch(s);
    EVP_CIPHER_CTX *ectx = EVP_CIPHER_CTX_new();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *hctx = EVP_MAC_CTX_new(mac);
    unsigned char name[16], iv[EVP_MAX_IV_LENGTH] = {0};
    cr_expect_eq(ticket_cb(ssl, name, iv, ectx, hctx, 1), 1);
    cr_expect_eq(memcmp(name, keys_for(s, e)->name, 16), 0);
    cr_expect_eq(ticket_cb(ssl, name, iv, ectx, hctx, 0), 2, "current epoch: accept and renew");
    memcpy(name, keys_for(s, e - 1)->name, 16);
    cr_expect_eq(ticket_cb(ssl, name, iv, ectx, hctx, 0), 2, "previous epoch: accept and renew");
    memcpy(name, keys_for(s, e - 2)->name, 16);
    cr_expect_eq(ticket_cb(ssl, name, iv, ectx, hctx, 0), 0, "older: full handshake");
    EVP_MAC_CTX_free(hctx);
    EVP_MAC_free(mac);
    EVP_CIPHER_CTX_free(ectx);
    SSL_free(ssl);
    tls_server_free(s);
}
