/* conn — see conn.h. */
#include "net/conn.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"

/* A TLS record carries at most 16 KiB: head and body pieces up to that are coalesced into one
 * record (one SSL_write, one MAC, one syscall) instead of one record per piece. */
#define TLS_COALESCE 16384

ssize_t conn_plain_read(int fd, struct buf *b, bool *readable, bool rdhup)
{
    for (;;) {
        uint32_t want = buf_space(b);
        ssize_t n = read(fd, b->data + b->last, want);
        if (n > 0) {
            b->last += (uint32_t)n;
            /* ...unless the peer's FIN is queued too: it brings no new edge, so read on to see it. */
            if ((uint32_t)n < want && !rdhup)
                *readable = false;
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            *readable = false;
            return -EAGAIN;
        }
        return -errno;
    }
}

ssize_t conn_plain_writev(int fd, const struct iovec *iov, int n, bool *writable)
{
    size_t want = 0;
    for (int i = 0; i < n; i++)
        want += iov[i].iov_len;
    for (;;) {
        ssize_t w = writev(fd, iov, n);
        if (w >= 0) {
            if ((size_t)w < want)
                *writable = false;
            return w;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            *writable = false;
            return -EAGAIN;
        }
        return -errno;
    }
}

/* Maps a failed SSL_read/SSL_write onto the readiness contract. */
static ssize_t tls_error(SSL *ssl, int rc, bool *readable, bool *writable)
{
    int e = SSL_get_error(ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *readable = false;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *writable = false;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL: {
        /* errno 0: the socket read returned 0, a close without close_notify (golb's socket BIO
         * does not answer BIO_CTRL_EOF, so OpenSSL 3 reports it as OpenSSL 1.1 did): an end of
         * stream, like the SSL_R_UNEXPECTED_EOF_WHILE_READING case below. */
        int err = errno;
        ERR_clear_error();
        return err ? -err : 0;
    }
    default: {
        unsigned long le = ERR_peek_last_error();
        ERR_clear_error();
        /* The peer closed the TCP connection without close_notify, as many clients and servers
         * do: an end of stream like any other here. Where that matters (a close-delimited body
         * from a TLS backend), the caller asks tls_close_notify_received(). */
        if (ERR_GET_REASON(le) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return 0;
        return -EPROTO;
    }
    }
}

ssize_t conn_tls_read(SSL *ssl, struct buf *b, bool *readable, bool *writable, bool rdhup)
{
    uint32_t want = buf_space(b);
    if (want == 0)
        return -ENOBUFS;
    ERR_clear_error();
    int n = SSL_read(ssl, b->data + b->last, (int)MIN(want, (uint32_t)INT32_MAX));
    if (n > 0) {
        b->last += (uint32_t)n;
        /* As for plain sockets: drained now means any later byte brings a new edge (unless
         * the peer's FIN is queued, which brings none: read on to see it). */
        if ((uint32_t)n < want && !rdhup && tls_drained(ssl))
            *readable = false;
        return n;
    }
    return tls_error(ssl, n, readable, writable);
}

/* One SSL_write per call, of the first bytes of iov: iov[0] alone when it fills a record, else
 * the pieces coalesced up to one record. After WANT_WRITE, OpenSSL must be given the same bytes
 * again, at least as many: the bytes to send only grow until some are written, and this choice
 * never takes fewer of them than the last call did. */
ssize_t conn_tls_writev(SSL *ssl, const struct iovec *iov, int n, bool *writable, bool *readable)
{
    static _Thread_local char scratch[TLS_COALESCE];
    const void *data = n > 0 ? iov[0].iov_base : NULL;
    size_t len = n > 0 ? iov[0].iov_len : 0;
    if (n > 1 && len < TLS_COALESCE) {
        size_t off = 0;
        for (int i = 0; i < n && off < TLS_COALESCE; i++) {
            size_t k = MIN(iov[i].iov_len, TLS_COALESCE - off);
            memcpy(scratch + off, iov[i].iov_base, k);
            off += k;
        }
        data = scratch;
        len = off;
    }
    if (len == 0)
        return 0;
    ERR_clear_error();
    int w = SSL_write(ssl, data, (int)MIN(len, (size_t)INT32_MAX));
    if (w > 0)
        return w;
    ssize_t rc = tls_error(ssl, w, readable, writable);
    return rc == 0 ? -EPIPE : rc;
}

ssize_t conn_recv(int fd, SSL *ssl, void *p, size_t n)
{
    bool readable = true, writable = true;
    if (ssl) {
        ERR_clear_error();
        int r = SSL_read(ssl, p, (int)MIN(n, (size_t)INT32_MAX));
        return r > 0 ? r : tls_error(ssl, r, &readable, &writable);
    }
    for (;;) {
        ssize_t r = read(fd, p, n);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t conn_send(int fd, SSL *ssl, const void *p, size_t n)
{
    struct iovec iov = {(void *)p, n};
    bool readable = true, writable = true;
    if (ssl)
        return conn_tls_writev(ssl, &iov, 1, &writable, &readable);
    for (;;) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int conn_shutdown_write(int fd, SSL *ssl)
{
    if (ssl)
        tls_close_notify(ssl);
    return shutdown(fd, SHUT_WR) == -1 ? -errno : 0;
}

/* Moves bytes from one end to the other through b. Returns progress; sets *eof when src ended,
 * *err on a hard error; stops reading once *budget is spent. */
bool conn_relay(struct conn_end src, struct conn_end dst, struct buf *b, bool *eof, bool *err,
                size_t *budget)
{
    bool progress = false;
    for (;;) {
        if (buf_len(b) > 0) {
            if (!*dst.writable)
                break;
            struct iovec iov = {b->data + b->pos, buf_len(b)};
            ssize_t w = conn_writev(dst.fd, dst.ssl, &iov, 1, dst.writable, dst.readable);
            if (w == -EAGAIN)
                break;
            if (w < 0) {
                *err = true;
                break;
            }
            b->pos += (uint32_t)w;
            *budget = (size_t)w < *budget ? *budget - (size_t)w : 0;
            progress = true;
            continue;
        }
        b->pos = b->last = 0;
        if (*eof || !*src.readable || *budget == 0)
            break;
        ssize_t r = conn_read(src.fd, src.ssl, b, src.readable, src.writable, true);
        if (r == -EAGAIN)
            break;
        if (r <= 0) {
            if (r < 0)
                *err = true;
            *eof = true;
            progress = true;
            break;
        }
        progress = true;
    }
    return progress;
}
