/* tls — OpenSSL contexts for both sides, built once at config load and shared by every worker.
 *
 * Server side (the HTTPS listener): one SSL_CTX per certificate group. Certificates listed with
 * the same subjectAltName DNS names form one group, so an ECDSA and an RSA certificate for the same
 * names share a context and OpenSSL picks by the client's signature algorithms (ECDSA first when
 * the client takes both). SNI picks the group at ClientHello time from a table built at load
 * (exact names, then "*.suffix" wildcards matching one label); an unknown or absent name gets the
 * first group. Nothing is parsed or allocated per handshake except what OpenSSL itself does.
 *
 * Session tickets: keys are derived from a secret drawn at load, per epoch of ticketKeyRotation
 * (key(epoch) = HMAC(secret, label || epoch)); the current epoch's key encrypts, the previous
 * one's still decrypts (and renews the ticket). Every worker derives the same keys, so a ticket
 * issued by one worker resumes on any other, with no shared mutable state and no rotation thread.
 * A session older than sessionTimeout (default 300 s) is not resumed.
 *
 * Who may resume: a session is resumed only under the client-authentication rules it was made
 * under. auth_id = SHA-256(verify mode, verify depth, every client CA certificate's DER) sums up
 * who may connect; each group's session-id context is SHA-256(auth_id, the group's names) (nginx
 * hashes its contexts alike), and OpenSSL resumes a session only in a context equal to the one
 * that made it, else it runs a full handshake under the context's rules. SNI picks the group in
 * the ClientHello callback, before that check. A reload keeps the ticket secret only when
 * auth_id is unchanged: after a change of clientCaFile (or of its certificates) old tickets are
 * not even decrypted.
 *
 * Client side (https backends): one SSL_CTX per backend's TLS settings, verifying the chain
 * against the system store or caFile and the host name (serverName, default the URL's host).
 */
#ifndef GOLB_TLS_H
#define GOLB_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;

struct tls_server;
struct tls_client;

#define TLS_ERR_MAX 256

/* Which setting a load error is about, so the config can point at the right line. */
enum tls_err_field {
    TLS_ERR_NONE = 0,
    TLS_ERR_CERT,
    TLS_ERR_KEY,
    TLS_ERR_CA,
    TLS_ERR_CIPHERS,
    TLS_ERR_OTHER,
};

#define TLS_SESSION_TIMEOUT 300 /* seconds: sessionTimeout's default (nginx's and HAProxy's) */

struct tls_server_settings {
    int min_version;            /* 12 or 13 */
    const char *ciphers;        /* TLS 1.2 cipher list; NULL = golb's AEAD + ECDHE default */
    bool session_tickets;       /* false: no tickets, no session cache */
    uint32_t ticket_rotation_s; /* ticket key epoch length */
    uint32_t session_timeout_s; /* a session resumes for this long; 0 = TLS_SESSION_TIMEOUT */
    const char *client_ca_file; /* non-NULL: client certificates required and verified */
    const unsigned char *alpn;  /* ALPN protocols offered, preferred first (wire format: a length
                                   byte and the name, each); NULL/0: http/1.1 only */
    size_t alpn_len;
};

struct tls_server *tls_server_new(void);
void tls_server_free(struct tls_server *s);
/* A reload, both servers finished: s (not yet in use) takes over old's ticket secret when both
 * have the same client-authentication rules (auth_id), so tickets issued before the reload still
 * resume; otherwise s keeps its own fresh secret. Returns whether it took old's. */
bool tls_server_inherit_tickets(struct tls_server *s, const struct tls_server *old);
/* Loads one certificate (leaf + chain, PEM) and its key. Returns 0, or -1 with *field and err set.
 * warn (may be empty on return) gets a note such as an expired certificate. */
int tls_server_add_cert(struct tls_server *s, const char *cert_file, const char *key_file,
                        enum tls_err_field *field, char *err, size_t errlen, char *warn,
                        size_t warnlen);
/* Builds the contexts once every certificate is added. Returns 0 or -1 with *field and err set. */
int tls_server_finish(struct tls_server *s, const struct tls_server_settings *st,
                      enum tls_err_field *field, char *err, size_t errlen);
/* A new server-side SSL for an accepted socket (non-blocking), or NULL. */
SSL *tls_server_ssl(struct tls_server *s, int fd);
/* The context serving host name `name` (NULL: the default); for tests. */
SSL_CTX *tls_server_lookup(const struct tls_server *s, const char *name, size_t len);

struct tls_client_settings {
    const char *server_name;      /* SNI and the verified name; an IP literal is verified as an IP */
    bool verify;                  /* false: no chain or name verification (warned about at load) */
    const char *ca_file;          /* NULL: the system store */
    const char *client_cert_file; /* optional client certificate (mTLS to the backend) */
    const char *client_key_file;
};

struct tls_client *tls_client_new(const struct tls_client_settings *st, enum tls_err_field *field,
                                  char *err, size_t errlen);
void tls_client_free(struct tls_client *c);
/* A new client-side SSL on a connected non-blocking socket, resuming `session` when given. */
SSL *tls_client_ssl(struct tls_client *c, int fd, SSL_SESSION *session);
/* Set by the owner of an upstream SSL: called with a resumable session when the backend sends
 * one (TLS 1.3 tickets arrive after the handshake). The callee takes the reference. */
typedef void (*tls_session_cb)(void *owner, SSL_SESSION *session);
void tls_client_set_session_owner(SSL *ssl, tls_session_cb cb, void *owner);

/* Handshake step on a non-blocking SSL. Returns 1 when done, -EAGAIN when it needs readiness
 * (*want_write says which: true = writable), -EBADMSG when the peer spoke plain HTTP to a TLS
 * server, -EPROTO on any other failure (err gets the reason). */
int tls_handshake(SSL *ssl, bool *want_write, char *err, size_t errlen);
/* The reason a client-side handshake failed verification, or NULL. */
const char *tls_verify_error(SSL *ssl);
/* The verified client certificate's subject (RFC 2253) in buf; returns its length, 0 if none. */
size_t tls_peer_subject(SSL *ssl, char *buf, size_t len);
/* True when the socket under ssl was found empty by the last read and OpenSSL holds nothing
 * unread either: the transport may wait for the next readiness edge. */
bool tls_drained(SSL *ssl);
/* True when OpenSSL holds bytes read from the socket that the owner has not consumed. */
bool tls_has_pending(SSL *ssl);
void tls_session_free(SSL_SESSION *session);
/* True when the peer ended the TLS stream properly (close_notify), not just the TCP one. */
bool tls_close_notify_received(SSL *ssl);
/* True when the handshake resumed a session. */
bool tls_session_reused(SSL *ssl);
/* True when ALPN chose "h2" for this connection (after the handshake). */
bool tls_alpn_h2(SSL *ssl);
/* A client SSL (before its handshake) offers ALPN "h2" alone: HTTP/2 to an upstream. False when
 * OpenSSL refused. */
bool tls_client_offer_h2(SSL *ssl);
/* Sends close_notify: the orderly end of what this side sends, which a peer reading a body
 * delimited by the close tells from a cut. Once, without blocking (an alert the socket does not
 * take now is dropped), never waiting for the peer's; nothing before the handshake is done. */
void tls_close_notify(SSL *ssl);
/* Frees an SSL, sending close_notify first when the connection ended cleanly. */
void tls_free(SSL *ssl, bool clean);

#endif
