/* conn — the transport under both sides of the proxy: read, writev and close over a plain socket
 * or through OpenSSL, with the same readiness contract for both.
 *
 * Readiness flags belong to the caller (loop.h: edge-triggered, cleared only on EAGAIN):
 *   plain  a short read or write means the socket is drained/full, so the flag is cleared at once
 *          (saves a syscall that would return EAGAIN);
 *   TLS    OpenSSL reads ahead through golb's socket BIO (tls.c), which notes a short read: a
 *          read that leaves the socket drained and OpenSSL's buffers empty clears the flag too.
 *          A read may need the socket writable (and a write readable); WANT_READ/WANT_WRITE
 *          clear the flag OpenSSL waits for, and the caller's next pump, on either edge, retries.
 *          Any OpenSSL call that completes may have read the socket ahead (a handshake step run
 *          on a writable-only event, say): epoll never reports bytes already taken off the
 *          socket, so after such a call the owner sets `readable` again (client_handshake,
 *          upstream_tls_step).
 * Whether a body may move with splice(2) is the caller's question: only when both ends are plain
 * (kernel TLS would add a third case here).
 */
#ifndef GOLB_CONN_H
#define GOLB_CONN_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "net/tls.h"

struct buf;

ssize_t conn_plain_read(int fd, struct buf *b, bool *readable, bool rdhup);
ssize_t conn_plain_writev(int fd, const struct iovec *iov, int n, bool *writable);
ssize_t conn_tls_read(SSL *ssl, struct buf *b, bool *readable, bool *writable, bool rdhup);
ssize_t conn_tls_writev(SSL *ssl, const struct iovec *iov, int n, bool *writable, bool *readable);

/* Reads into b's free space. Returns bytes read, 0 at the peer's end of stream, -EAGAIN, or
 * -errno (-EPROTO for a TLS error). A TLS stream cut without close_notify reads as an end of
 * stream; tls_close_notify_received() tells the two apart. */
static inline ssize_t conn_read(int fd, SSL *ssl, struct buf *b, bool *readable, bool *writable,
                                bool rdhup)
{
    if (ssl)
        return conn_tls_read(ssl, b, readable, writable, rdhup);
    return conn_plain_read(fd, b, readable, rdhup);
}

/* Writes iov (as much as the socket takes). Returns bytes written, -EAGAIN, or -errno. */
static inline ssize_t conn_writev(int fd, SSL *ssl, const struct iovec *iov, int n,
                                  bool *writable, bool *readable)
{
    if (ssl)
        return conn_tls_writev(ssl, iov, n, writable, readable);
    return conn_plain_writev(fd, iov, n, writable);
}

/* Plain byte-array forms for small one-off exchanges (health checks): n > 0 bytes, 0 at end of
 * stream, -EAGAIN, or -errno. No readiness bookkeeping. */
ssize_t conn_recv(int fd, SSL *ssl, void *p, size_t n);
ssize_t conn_send(int fd, SSL *ssl, const void *p, size_t n);

/* One end of a byte relay (an Upgrade tunnel): its transport and readiness flags. */
struct conn_end {
    int fd;
    SSL *ssl;
    bool *readable, *writable;
};

/* Moves bytes from src to dst through b (in either transport). Returns true on progress; sets
 * *eof when src ended, *err on a hard error. *budget: bytes it may still write; each write
 * counts down, and once it is 0 nothing more is read from src (the caller yields and calls
 * again: readiness flags stay as they are, so no edge is lost). */
bool conn_relay(struct conn_end src, struct conn_end dst, struct buf *b, bool *eof, bool *err,
                size_t *budget);

/* Half-closes the write side: shutdown(SHUT_WR), after a close_notify on TLS. */
int conn_shutdown_write(int fd, SSL *ssl);

#endif
