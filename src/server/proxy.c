/* proxy — see proxy.h. Today every connection is an HTTP/1 session (h1session.c), which drives
 * one exchange (exchange.c) per request. An HTTP/2 session would be chosen here (or after ALPN)
 * and drive many exchanges on one connection; the worker would not notice (worker_ctx.h).
 */
#include "server/proxy.h"

#include "session/h1session.h"

void proxy_accept(struct worker_ctx *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                  bool tls)
{
    h1session_accept(w, fd, peer, peerlen, tls);
}
