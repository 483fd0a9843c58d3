/* Unit tests for src/tls.c: SNI lookup over certificate groups, session ticket keys per epoch,
 * session-id contexts and which sessions resume (handshakes over a socketpair), load errors.
 * Certificates are made in a temp dir with the openssl command (never checked in). The file
 * includes tls.c itself to reach the static ticket-key helpers. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/ioctl.h>
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

/* A finished server with these certificates; client_ca: NULL or a certificate's name whose PEM
 * is the client CA file. */
static struct tls_server *server_ca(const char *const *names, int n, const char *client_ca)
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
                                     .ticket_rotation_s = 3600,
                                     .client_ca_file = client_ca ? path(client_ca, "pem") : NULL};
    cr_assert_eq(tls_server_finish(s, &st, &f, err, sizeof(err)), 0, "%s", err);
    return s;
}

static struct tls_server *server_with(const char *const *names, int n)
{
    return server_ca(names, n, NULL);
}

/* One handshake between s and a client without a certificate over a socketpair; the client
 * offers `resume` when given. */
struct hs {
    bool ok, reused;
    SSL_CTX *served;      /* the context (certificate group) that served it */
    SSL_SESSION *session; /* the client's session after the server's ticket, for resuming */
    unsigned char sid_ctx[SSL_MAX_SID_CTX_LENGTH];
    unsigned int sid_ctx_len; /* the server-side session's session-id context */
};

static bool hs_step(SSL *ssl, int *rc)
{
    if (*rc == 1)
        return true;
    *rc = SSL_do_handshake(ssl);
    int e = SSL_get_error(ssl, *rc);
    return *rc == 1 || e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* A server SSL (golb's, on sv[0]) and a client SSL without a certificate (on sv[1]) over a
 * non-blocking socketpair. pair_handshake() is true when both sides finished. */
struct pair {
    int sv[2];
    SSL *srv, *cl;
    SSL_CTX *cctx;
};

static void pair_open(struct pair *p, struct tls_server *s, const char *sni, SSL_SESSION *resume)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->sv), 0);
    p->srv = tls_server_ssl(s, p->sv[0]);
    p->cctx = SSL_CTX_new(TLS_client_method());
    p->cl = p->cctx ? SSL_new(p->cctx) : NULL;
    cr_assert(p->srv && p->cl);
    SSL_set_fd(p->cl, p->sv[1]);
    if (sni)
        SSL_set_tlsext_host_name(p->cl, sni);
    if (resume)
        SSL_set_session(p->cl, resume);
    SSL_set_connect_state(p->cl);
}

static bool pair_handshake(struct pair *p)
{
    int crc = 0, src = 0;
    for (int i = 0; i < 100 && (crc != 1 || src != 1); i++)
        if (!hs_step(p->cl, &crc) || !hs_step(p->srv, &src))
            break;
    if (crc != 1 || src != 1)
        return false;
    char b[16];
    for (int i = 0; i < 4; i++)
        (void)SSL_read(p->cl, b, sizeof(b)); /* takes the TLS 1.3 ticket in */
    return true;
}

static void pair_close(struct pair *p)
{
    ERR_clear_error();
    SSL_free(p->cl);
    SSL_free(p->srv);
    SSL_CTX_free(p->cctx);
    close(p->sv[0]);
    close(p->sv[1]);
}

static struct hs handshake(struct tls_server *s, const char *sni, SSL_SESSION *resume)
{
    struct hs r = {0};
    struct pair p;
    pair_open(&p, s, sni, resume);
    r.ok = pair_handshake(&p);
    if (r.ok) {
        r.reused = SSL_session_reused(p.srv) == 1;
        r.served = SSL_get_SSL_CTX(p.srv);
        const unsigned char *id = SSL_SESSION_get0_id_context(SSL_get_session(p.srv),
                                                              &r.sid_ctx_len);
        memcpy(r.sid_ctx, id, r.sid_ctx_len);
        r.session = SSL_get1_session(p.cl);
        (void)SSL_shutdown(p.cl); /* freed without it, OpenSSL would mark the session unusable */
    }
    pair_close(&p);
    return r;
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

Test(tls, session_id_context_sums_up_client_auth_rules_per_group)
{
    static const char *const names[] = {"a-ec", "b"};
    struct tls_server *s1 = server_with(names, 2), *s2 = server_with(names, 2);
    struct tls_server *ca_b = server_ca(names, 2, "b"), *ca_b2 = server_ca(names, 2, "b");
    struct tls_server *ca_c = server_ca(names, 2, "c");
    /* the same rules give the same identity in another load (a reload) */
    cr_expect_eq(memcmp(s1->auth_id, s2->auth_id, 32), 0);
    cr_expect_eq(memcmp(s1->groups[1].sid_ctx, s2->groups[1].sid_ctx, 32), 0);
    cr_expect_eq(memcmp(ca_b->auth_id, ca_b2->auth_id, 32), 0);
    /* a client CA, or another one, is other rules; each group has its own context */
    cr_expect_neq(memcmp(s1->auth_id, ca_b->auth_id, 32), 0);
    cr_expect_neq(memcmp(ca_b->auth_id, ca_c->auth_id, 32), 0);
    cr_expect_neq(memcmp(ca_b->groups[0].sid_ctx, ca_c->groups[0].sid_ctx, 32), 0);
    cr_expect_neq(memcmp(s1->groups[0].sid_ctx, s1->groups[1].sid_ctx, 32), 0);
    cr_expect_eq(SSL_CTX_get_verify_mode(ca_b->groups[1].ctx),
                 SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    cr_expect_eq(SSL_CTX_get_verify_mode(s1->groups[1].ctx), SSL_VERIFY_NONE);
    /* tickets carry over a reload only between equal rules */
    unsigned char before[32];
    memcpy(before, ca_b->secret, 32);
    cr_expect(tls_server_inherit_tickets(s2, s1));
    cr_expect_eq(memcmp(s2->secret, s1->secret, 32), 0);
    cr_expect_not(tls_server_inherit_tickets(ca_b, s1));
    cr_expect_eq(memcmp(ca_b->secret, before, 32), 0, "kept its own fresh secret");
    cr_expect_not(tls_server_inherit_tickets(ca_c, ca_b));
    cr_expect(tls_server_inherit_tickets(ca_b2, ca_b));
    tls_server_free(s1);
    tls_server_free(s2);
    tls_server_free(ca_b);
    tls_server_free(ca_b2);
    tls_server_free(ca_c);
}

Test(tls, a_session_resumes_only_in_the_context_that_made_it)
{
    static const char *const names[] = {"a-ec", "b"};
    struct tls_server *s = server_with(names, 2);
    struct hs full = handshake(s, "b.test", NULL);
    cr_assert(full.ok);
    cr_expect_not(full.reused);
    cr_expect_eq(full.served, s->groups[1].ctx);
    /* SNI chose the group before the session was made: it carries that group's context */
    cr_expect_eq(full.sid_ctx_len, 32);
    cr_expect_eq(memcmp(full.sid_ctx, s->groups[1].sid_ctx, 32), 0);
    cr_assert_not_null(full.session);
    struct hs again = handshake(s, "b.test", full.session);
    cr_expect(again.ok && again.reused, "the same group resumes");
    struct hs other = handshake(s, "a.test", full.session);
    cr_expect(other.ok && !other.reused, "another group: full handshake");
    cr_expect_eq(other.served, s->groups[0].ctx);

    /* a reload with the same rules: the tickets carry over and resume */
    struct tls_server *same = server_with(names, 2);
    cr_assert(tls_server_inherit_tickets(same, s));
    struct hs kept = handshake(same, "b.test", full.session);
    cr_expect(kept.ok && kept.reused);

    /* a reload adding a client CA: even with the ticket secret forced over (as before the fix),
     * the session is not resumed, and the full handshake wants a certificate this client lacks */
    struct tls_server *mtls = server_ca(names, 2, "c");
    cr_expect_not(tls_server_inherit_tickets(mtls, s));
    memcpy(mtls->secret, s->secret, sizeof(s->secret));
    struct hs bypass = handshake(mtls, "b.test", full.session);
    cr_expect_not(bypass.ok, "resumed past the client CA (reused: %d)", bypass.reused);
    cr_expect_not(bypass.reused);

    SSL_SESSION_free(full.session);
    SSL_SESSION_free(again.session);
    SSL_SESSION_free(other.session);
    SSL_SESSION_free(kept.session);
    SSL_SESSION_free(bypass.session);
    tls_server_free(s);
    tls_server_free(same);
    tls_server_free(mtls);
}

Test(tls, session_lifetime_is_bounded_by_the_running_timeout)
{
    static const char *const names[] = {"b"};
    struct tls_server *s = server_with(names, 1);
    cr_expect_eq(SSL_CTX_get_timeout(s->groups[0].ctx), TLS_SESSION_TIMEOUT);
    SSL_SESSION *sess = SSL_SESSION_new();
    cr_assert_not_null(sess);
    SSL_SESSION_set_time(sess, (long)time(NULL) - 10);
    cr_expect_eq(ticket_dec_cb(NULL, sess, NULL, 0, SSL_TICKET_SUCCESS_RENEW, s),
                 SSL_TICKET_RETURN_USE_RENEW);
    cr_expect_eq(ticket_dec_cb(NULL, sess, NULL, 0, SSL_TICKET_SUCCESS, s),
                 SSL_TICKET_RETURN_USE);
    /* a ticket made under a longer timeout (before a reload shortened it) stops resuming */
    SSL_SESSION_set_time(sess, (long)time(NULL) - TLS_SESSION_TIMEOUT - 5);
    SSL_SESSION_set_timeout(sess, 7200);
    cr_expect_eq(ticket_dec_cb(NULL, sess, NULL, 0, SSL_TICKET_SUCCESS_RENEW, s),
                 SSL_TICKET_RETURN_IGNORE_RENEW);
    cr_expect_eq(ticket_dec_cb(NULL, sess, NULL, 0, SSL_TICKET_NO_DECRYPT, s),
                 SSL_TICKET_RETURN_IGNORE_RENEW);
    SSL_SESSION_free(sess);
    tls_server_free(s);
}

static int unread(int fd)
{
    int n = -1;
    cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

Test(tls, close_notify_is_sent_once_and_only_after_the_handshake)
{
    static const char *const names[] = {"b"};
    struct tls_server *s = server_with(names, 1);
    struct pair p;
    pair_open(&p, s, "b.test", NULL);
    tls_close_notify(p.srv); /* before the handshake: nothing to end */
    cr_expect_eq(SSL_get_shutdown(p.srv), 0);
    cr_assert(pair_handshake(&p));
    cr_expect_eq(unread(p.sv[1]), 0);
    tls_close_notify(p.srv);
    cr_expect(SSL_get_shutdown(p.srv) & SSL_SENT_SHUTDOWN);
    int once = unread(p.sv[1]);
    cr_expect_gt(once, 0, "an alert record went out");
    tls_close_notify(p.srv); /* a second call sends nothing and waits for nothing */
    cr_expect_eq(unread(p.sv[1]), once);
    char b[16];
    int rc = SSL_read(p.cl, b, sizeof(b));
    cr_expect_eq(SSL_get_error(p.cl, rc), SSL_ERROR_ZERO_RETURN, "the client reads a clean end");
    pair_close(&p);
    tls_server_free(s);
}

Test(tls, sni_extension_parsed_as_openssl_accepts_it)
{
    const char *name = NULL;
    size_t n = 0;
    static const unsigned char ok[] = {0, 9, 0, 0, 6, 'b', '.', 't', 'e', 's', 't'};
    cr_assert(sni_from_ext(ok, sizeof(ok), &name, &n));
    cr_expect_eq(n, 6);
    cr_expect_eq(memcmp(name, "b.test", 6), 0);
    static const unsigned char list_len[] = {0, 10, 0, 0, 6, 'b', '.', 't', 'e', 's', 't'};
    static const unsigned char name_len[] = {0, 9, 0, 0, 5, 'b', '.', 't', 'e', 's', 't'};
    static const unsigned char not_host[] = {0, 9, 1, 0, 6, 'b', '.', 't', 'e', 's', 't'};
    static const unsigned char nul[] = {0, 9, 0, 0, 6, 'b', '.', 't', 0, 's', 't'};
    static const unsigned char empty[] = {0, 3, 0, 0, 0};
    cr_expect_not(sni_from_ext(list_len, sizeof(list_len), &name, &n));
    cr_expect_not(sni_from_ext(name_len, sizeof(name_len), &name, &n));
    cr_expect_not(sni_from_ext(not_host, sizeof(not_host), &name, &n));
    cr_expect_not(sni_from_ext(nul, sizeof(nul), &name, &n));
    cr_expect_not(sni_from_ext(empty, sizeof(empty), &name, &n));
    cr_expect_not(sni_from_ext(ok, 3, &name, &n));
}

/* ALPN: golb's order decides (h2 before http/1.1 by default), a client offering only HTTP/1.1
 * gets it, and [http/1.1] turns h2 off even for a client preferring it. */
static bool alpn_h2_for(const unsigned char *ours, size_t ours_len, const unsigned char *client,
                        unsigned client_len, bool *acked)
{
    static const char *const names[] = {"a-ec"};
    struct tls_server *s = tls_server_new();
    cr_assert_not_null(s);
    enum tls_err_field f;
    char err[256], warn[256];
    cr_assert_eq(tls_server_add_cert(s, path(names[0], "pem"), path(names[0], "key"), &f, err,
                                     sizeof(err), warn, sizeof(warn)),
                 0, "%s", err);
    struct tls_server_settings st = {.min_version = 12, .session_tickets = false,
                                     .alpn = ours, .alpn_len = ours_len};
    cr_assert_eq(tls_server_finish(s, &st, &f, err, sizeof(err)), 0, "%s", err);
    struct pair p;
    pair_open(&p, s, NULL, NULL);
    SSL_set_alpn_protos(p.cl, client, client_len);
    cr_assert(pair_handshake(&p));
    bool h2 = tls_alpn_h2(p.srv);
    const unsigned char *sel;
    unsigned len;
    SSL_get0_alpn_selected(p.cl, &sel, &len);
    *acked = len > 0;
    pair_close(&p);
    tls_server_free(s);
    return h2;
}

Test(tls, alpn_prefers_golbs_order_and_can_turn_h2_off)
{
    static const unsigned char both[] = "\x02h2\x08http/1.1", h11[] = "\x08http/1.1";
    static const unsigned char client_h11_first[] = "\x08http/1.1\x02h2";
    bool acked;
    cr_expect(alpn_h2_for(both, sizeof(both) - 1, client_h11_first, sizeof(client_h11_first) - 1,
                          &acked));
    cr_expect_not(alpn_h2_for(both, sizeof(both) - 1, h11, sizeof(h11) - 1, &acked));
    cr_expect(acked);
    cr_expect_not(alpn_h2_for(h11, sizeof(h11) - 1, both, sizeof(both) - 1, &acked));
    cr_expect(acked, "http/1.1 chosen");
    static const unsigned char other[] = "\x08spdy/3.1";
    cr_expect_not(alpn_h2_for(both, sizeof(both) - 1, other, sizeof(other) - 1, &acked));
    cr_expect_not(acked, "nothing in common: no ALPN answer, HTTP/1.1 as without ALPN");
}
