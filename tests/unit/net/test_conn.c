/* Unit tests for conn (src/net/conn.c): the readiness contract of conn_read / conn_writev over
 * plain sockets and through TLS, and the TLS write-retry rule.
 *
 * The rule: after SSL_write fails with WANT_WRITE, OpenSSL must be given the same bytes again, at
 * least as many (it refuses fewer with "bad write retry" / "bad length"); golb's callers only ever
 * offer the same pending pieces again, the last perhaps longer and more after it (more body
 * arrived), but conn_tls_writev chooses what of them one SSL_write takes (iov[0] alone, or pieces
 * coalesced into one record), so that choice must never take fewer bytes than the previous
 * attempt. (It depends on how the bytes are cut into pieces: a caller that re-cut the same pending
 * bytes differently between retries could get fewer; none does.) The test interposes SSL_write
 * (this executable's definition wins over libssl's for conn.o, which is linked in statically) to
 * record every attempt: after a WANT_WRITE, the next attempt on that SSL must offer at least as
 * many bytes, starting with the same ones. golb's own SSL objects (tls_server_ssl, tls_client_ssl:
 * its socket BIO, partial writes, moving write buffer) run over a socketpair with a small send
 * buffer, so writes stop with WANT_WRITE many times; the reader checks the stream arrives
 * intact. Certificates are made in a temp dir with the openssl command (never checked in). */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "base/buf.h"
#include "net/conn.h"
#include "net/tls.h"

#define DEADLINE_MS 10000

/* ---- SSL_write, recorded ---- */

/* What the last SSL_write on the watched SSL offered, and whether it must be retried. */
static struct {
    SSL *ssl;     /* the SSL watched (NULL: record nothing) */
    bool pending; /* the last attempt failed with WANT_WRITE */
    int last_len;
    char last[65536]; /* the first bytes it offered */
    int attempts, retries, violations;
    char why[256]; /* the first violation */
} wr;

int SSL_write(SSL *ssl, const void *buf, int num)
{
    static int (*real)(SSL *, const void *, int);
    if (!real)
        real = (int (*)(SSL *, const void *, int))dlsym(RTLD_NEXT, "SSL_write");
    if (ssl == wr.ssl) {
        wr.attempts++;
        if (wr.pending) {
            wr.retries++;
            size_t same = (size_t)(wr.last_len < num ? wr.last_len : num);
            if (same > sizeof(wr.last))
                same = sizeof(wr.last);
            bool ok = num >= wr.last_len && memcmp(buf, wr.last, same) == 0;
            if (!ok && !wr.violations++)
                snprintf(wr.why, sizeof(wr.why),
                         "a retry after WANT_WRITE offered %d bytes (%s) where %d were pending",
                         num, num >= wr.last_len ? "other bytes" : "fewer", wr.last_len);
        }
        wr.last_len = num;
        memcpy(wr.last, buf, (size_t)num < sizeof(wr.last) ? (size_t)num : sizeof(wr.last));
    }
    int rc = real(ssl, buf, num);
    if (ssl == wr.ssl)
        wr.pending = rc <= 0 && SSL_get_error(ssl, rc) == SSL_ERROR_WANT_WRITE;
    return rc;
}

/* ---- fixture: a certificate, golb's server and client contexts, a socketpair ---- */

static char dir[64];
static struct tls_server *server;
static struct tls_client *client;
static int sv[2]; /* sv[0]: the TLS server's socket (the writer), sv[1]: the client's */
static SSL *srv, *cl;
static struct buf_pool pool;

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* a write to a closed peer must come back as -EPIPE */
    strcpy(dir, "/tmp/golb-conn-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-days 30 -keyout k.pem -out c.pem -subj /CN=a.test "
             "-addext subjectAltName=DNS:a.test >/dev/null 2>&1",
             dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    buf_pool_init(&pool, 16384, 4);
    sv[0] = sv[1] = -1;
}

static void teardown(void)
{
    wr.ssl = NULL;
    if (srv)
        SSL_free(srv);
    if (cl)
        SSL_free(cl);
    srv = cl = NULL;
    tls_server_free(server);
    tls_client_free(client);
    server = NULL;
    client = NULL;
    for (int i = 0; i < 2; i++)
        if (sv[i] >= 0)
            close(sv[i]);
    buf_pool_destroy(&pool);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
}

TestSuite(conn, .init = setup, .fini = teardown);

static void pair(void)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* The writer's send buffer as small as the kernel allows (a few KiB): writes stop often. */
static void small_send_buffer(void)
{
    int sz = 4096;
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
}

/* golb's server SSL on sv[0] and golb's client SSL on sv[1], handshake done. */
static void tls_pair(void)
{
    server = tls_server_new();
    cr_assert_not_null(server);
    enum tls_err_field f;
    char err[256], warn[256], cert[128], key[128];
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    snprintf(key, sizeof(key), "%s/k.pem", dir);
    cr_assert_eq(tls_server_add_cert(server, cert, key, &f, err, sizeof(err), warn, sizeof(warn)),
                 0, "%s", err);
    struct tls_server_settings st = {.min_version = 12, .ticket_rotation_s = 3600};
    cr_assert_eq(tls_server_finish(server, &st, &f, err, sizeof(err)), 0, "%s", err);
    struct tls_client_settings cs = {.server_name = "a.test", .verify = false};
    client = tls_client_new(&cs, &f, err, sizeof(err));
    cr_assert_not_null(client, "%s", err);
    srv = tls_server_ssl(server, sv[0]);
    cl = tls_client_ssl(client, sv[1], NULL);
    cr_assert(srv && cl);
    int done_s = 0, done_c = 0;
    uint64_t deadline = util_now_ms() + DEADLINE_MS;
    while (done_s != 1 || done_c != 1) {
        bool ww;
        if (done_c != 1)
            done_c = tls_handshake(cl, &ww, err, sizeof(err));
        cr_assert(done_c == 1 || done_c == -EAGAIN, "client handshake: %s", err);
        if (done_s != 1)
            done_s = tls_handshake(srv, &ww, err, sizeof(err));
        cr_assert(done_s == 1 || done_s == -EAGAIN, "server handshake: %s", err);
        cr_assert_lt(util_now_ms(), deadline, "handshake did not finish");
    }
}

/* ---- plain sockets ---- */

/* A short read means the socket is drained: `readable` is cleared without spending a read on
 * EAGAIN. A read that fills the buffer says nothing: the flag stays. */
Test(conn, a_short_plain_read_clears_readable_a_full_one_does_not)
{
    pair();
    struct buf *b = buf_get(&pool);
    static char big[20000];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(write(sv[1], big, sizeof(big)), (ssize_t)sizeof(big));
    bool readable = true;
    uint32_t space = buf_space(b);
    cr_expect_eq(conn_plain_read(sv[0], b, &readable, false), space);
    cr_expect(readable, "the buffer filled: more may be waiting");
    b->pos = b->last = 0;
    cr_expect_eq(conn_plain_read(sv[0], b, &readable, false), sizeof(big) - space);
    cr_expect_not(readable, "a short read drained the socket");
    readable = true;
    cr_expect_eq(conn_plain_read(sv[0], b, &readable, false), -EAGAIN);
    cr_expect_not(readable);
    buf_put(&pool, b);
}

/* With the peer's FIN queued (EPOLLRDHUP seen), no new edge will come: a short read keeps the
 * flag so the caller reads on to the end of stream. */
Test(conn, with_rdhup_a_short_read_keeps_readable_until_the_end)
{
    pair();
    struct buf *b = buf_get(&pool);
    cr_assert_eq(write(sv[1], "hello", 5), 5);
    shutdown(sv[1], SHUT_WR);
    bool readable = true;
    cr_expect_eq(conn_plain_read(sv[0], b, &readable, true), 5);
    cr_expect(readable);
    cr_expect_eq(conn_plain_read(sv[0], b, &readable, true), 0, "end of stream");
    buf_put(&pool, b);
}

/* A short write means the socket is full: `writable` is cleared; a write that took everything
 * keeps it; a closed peer is -EPIPE (not a signal). */
Test(conn, a_short_plain_write_clears_writable)
{
    pair();
    small_send_buffer();
    static char big[1 << 20];
    memset(big, 'y', sizeof(big));
    struct iovec iov[2] = {{big, 100}, {big + 100, sizeof(big) - 100}};
    bool writable = true;
    ssize_t w = conn_plain_writev(sv[0], iov, 2, &writable);
    cr_assert_gt(w, 0);
    cr_expect_lt(w, (ssize_t)sizeof(big));
    cr_expect_not(writable, "a short write: the socket is full");
    writable = true;
    cr_expect_eq(conn_plain_writev(sv[0], iov, 2, &writable), -EAGAIN);
    cr_expect_not(writable);
    /* the reader drains: a small write goes whole and the flag stays */
    char sink[65536];
    while (read(sv[1], sink, sizeof(sink)) > 0)
        ;
    writable = true;
    cr_expect_eq(conn_plain_writev(sv[0], iov, 1, &writable), 100);
    cr_expect(writable);
    close(sv[1]);
    sv[1] = -1;
    cr_expect_eq(conn_plain_writev(sv[0], iov, 1, &writable), -EPIPE);
}

/* ---- TLS readiness ---- */

/* Through TLS the flag follows the socket under OpenSSL: a read that drained both the socket and
 * OpenSSL's buffers clears it, a read that filled the caller's buffer does not, WANT_READ does. */
Test(conn, tls_reads_clear_readable_like_plain_ones)
{
    pair();
    tls_pair();
    struct buf *b = buf_get(&pool);
    bool readable = true, writable = true;
    cr_expect_eq(conn_tls_read(cl, b, &readable, &writable, false), -EAGAIN);
    cr_expect_not(readable, "WANT_READ: nothing came");
    struct iovec iov = {"0123456789abcdefghij", 20};
    cr_assert_eq(conn_tls_writev(srv, &iov, 1, &writable, &readable), 20);
    /* room for 8 bytes only: the read fills it, so more may be waiting */
    b->pos = b->last = b->cap - 8;
    readable = true;
    cr_expect_eq(conn_tls_read(cl, b, &readable, &writable, false), 8);
    cr_expect(readable, "OpenSSL still holds 12 bytes");
    b->pos = b->last = 0;
    cr_expect_eq(conn_tls_read(cl, b, &readable, &writable, false), 12);
    cr_expect(memcmp(b->data, "89abcdefghij", 12) == 0);
    cr_expect_not(readable, "drained: the next byte brings an edge");
    buf_put(&pool, b);
}

/* The end of a TLS stream: close_notify reads as 0 and says so; a bare TCP close reads as 0 too,
 * but tls_close_notify_received() tells it from a proper end (a cut body). */
Test(conn, a_tls_end_of_stream_tells_close_notify_from_a_cut)
{
    pair();
    tls_pair();
    struct buf *b = buf_get(&pool);
    bool readable = true, writable = true;
    cr_assert_eq(conn_shutdown_write(sv[0], srv), 0);
    cr_expect_eq(conn_tls_read(cl, b, &readable, &writable, true), 0);
    cr_expect(tls_close_notify_received(cl));
    buf_put(&pool, b);
}

Test(conn, a_bare_close_under_tls_is_an_end_without_close_notify)
{
    pair();
    tls_pair();
    struct buf *b = buf_get(&pool);
    bool readable = true, writable = true;
    shutdown(sv[0], SHUT_WR);
    ssize_t r = conn_tls_read(cl, b, &readable, &writable, true);
    cr_expect_eq(r, 0, "got %zd (%s)", r, r < 0 ? strerror((int)-r) : "");
    cr_expect_not(tls_close_notify_received(cl));
    buf_put(&pool, b);
}

/* ---- the TLS write-retry rule ---- */

#define STREAM (600 * 1024)

static char stream_byte(size_t i)
{
    return (char)('A' + (i * 13 + i / 4096) % 57);
}

/* What the client read of the stream. */
static char *got;
static size_t got_len;

/* The client reads until `want` more bytes came or nothing is left now. */
static void client_reads(size_t want)
{
    size_t start = got_len;
    while (got_len < STREAM && got_len - start < want) {
        int n = SSL_read(cl, got + got_len, (int)(STREAM - got_len));
        if (n <= 0) {
            cr_assert_eq(SSL_get_error(cl, n), SSL_ERROR_WANT_READ, "client read failed");
            return;
        }
        got_len += (size_t)n;
    }
}

/* The stream as the callers cut it into iov pieces: piece k (a head, a body run, ...) ends at
 * bounds[k], fixed offsets in the stream. That is what conn's callers do between retries: after
 * -EAGAIN they offer the same pending pieces again, the last one perhaps longer and more pieces
 * after it (more body came), never fewer bytes and never cut differently. */
static size_t bounds[4096];
static int nbounds;

static void cut_stream(size_t (*piece)(int k))
{
    size_t at = 0;
    for (nbounds = 0; at < STREAM; nbounds++) {
        cr_assert_lt(nbounds, (int)ARRAY_LEN(bounds));
        at = MIN((size_t)STREAM, at + piece(nbounds));
        bounds[nbounds] = at;
    }
}

/* golb's writer as the exchange and the session drive it: the pending bytes are [off, avail) of
 * the stream, offered as the pieces that cover them (at most 8 iovs); after -EAGAIN more bytes
 * may have arrived (avail grows) but none go away. The reader takes a little after each stop, so
 * the writer stops (WANT_WRITE) many times, at every kind of boundary. */
static void write_stream(size_t (*piece)(int k))
{
    static char data[STREAM];
    for (size_t i = 0; i < STREAM; i++)
        data[i] = stream_byte(i);
    cut_stream(piece);
    got = malloc(STREAM);
    cr_assert_not_null(got);
    got_len = 0;
    wr.ssl = srv;
    size_t off = 0, avail = 150; /* a small head and the first body bytes */
    int stops = 0, k = 0;        /* k: the piece off is in */
    uint64_t deadline = util_now_ms() + DEADLINE_MS;
    for (int call = 0; off < STREAM; call++) {
        cr_assert_lt(util_now_ms(), deadline, "stuck at %zu of %d", off, STREAM);
        if (off == avail)
            avail = MIN((size_t)STREAM, avail + 150 + (size_t)(call % 7) * 5000);
        while (bounds[k] <= off)
            k++;
        struct iovec iov[8];
        int n = 0;
        for (size_t at = off; at < avail && n < 8; n++) {
            size_t end = MIN(bounds[k + n], avail);
            iov[n] = (struct iovec){data + at, end - at};
            at = end;
        }
        bool writable = true, readable = true;
        ssize_t w = conn_tls_writev(srv, iov, n, &writable, &readable);
        if (w > 0) {
            cr_assert_leq((size_t)w, avail - off);
            off += (size_t)w;
            continue;
        }
        cr_assert_eq(w, -EAGAIN, "conn_tls_writev: %zd (%s); %s", w,
                     w == -EPROTO ? "OpenSSL refused the retry" : strerror((int)-w), wr.why);
        cr_assert_not(writable, "WANT_WRITE clears writable");
        stops++;
        avail = MIN((size_t)STREAM, avail + (size_t)(call % 5) * 3000); /* more body came */
        client_reads(3000 + (size_t)(call % 3) * 5000);
    }
    wr.ssl = NULL;
    while (got_len < STREAM) {
        cr_assert_lt(util_now_ms(), deadline, "the client got %zu of %d", got_len, STREAM);
        client_reads(STREAM);
    }
    cr_expect_eq(wr.violations, 0, "%s", wr.why);
    cr_expect_geq(stops, 20, "the writer stopped only %d times", stops);
    cr_expect_geq(wr.retries, 20, "only %d retries after WANT_WRITE", wr.retries);
    size_t bad = 0;
    while (bad < STREAM && got[bad] == data[bad])
        bad++;
    cr_expect_eq(bad, STREAM, "the stream differs at byte %zu", bad);
    free(got);
}

/* Heads and body runs of every size: small, about a record, larger than one. */
static size_t mixed(int k)
{
    static const size_t sizes[] = {100, 20, 3000, 9000, 16384, 17000, 40000, 1, 16383, 250};
    return sizes[(size_t)k % ARRAY_LEN(sizes)];
}

/* Many small pieces: every write coalesces. */
static size_t small_pieces(int k)
{
    return 50 + (size_t)(k % 4) * 700;
}

/* Large pieces: iov[0] alone fills a record (a big head, or a body without a head). */
static size_t large_pieces(int k)
{
    return k % 2 ? 500 : 20000;
}

Test(conn, a_tls_write_retry_offers_at_least_the_pending_bytes_mixed_pieces)
{
    pair();
    small_send_buffer();
    tls_pair();
    write_stream(mixed);
}

Test(conn, a_tls_write_retry_offers_at_least_the_pending_bytes_small_pieces)
{
    pair();
    small_send_buffer();
    tls_pair();
    write_stream(small_pieces);
}

Test(conn, a_tls_write_retry_offers_at_least_the_pending_bytes_large_pieces)
{
    pair();
    small_send_buffer();
    tls_pair();
    write_stream(large_pieces);
}

/* The oracle: the recorder sees a shorter retry, and OpenSSL refuses it, so the tests above
 * would fail if conn offered fewer bytes. */
Test(conn, a_shorter_tls_write_retry_is_caught)
{
    pair();
    small_send_buffer();
    tls_pair();
    static char data[1 << 20];
    memset(data, 'z', sizeof(data));
    wr.ssl = srv;
    int rc;
    while ((rc = SSL_write(srv, data, 16384)) > 0)
        ;
    cr_assert_eq(SSL_get_error(srv, rc), SSL_ERROR_WANT_WRITE);
    ERR_clear_error();
    rc = SSL_write(srv, data, 100);
    cr_expect_leq(rc, 0);
    cr_expect_eq(SSL_get_error(srv, rc), SSL_ERROR_SSL, "OpenSSL refuses a shorter retry");
    cr_expect_eq(wr.violations, 1, "and the recorder saw it");
    ERR_clear_error();
    wr.ssl = NULL;
}
