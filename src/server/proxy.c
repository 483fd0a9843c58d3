/* proxy — see proxy.h. Today every connection is an HTTP/1 session (h1session.c), which drives
 * one exchange (exchange.c) per request. An HTTP/2 session would be chosen here (or after ALPN)
 * and drive many exchanges on one connection; the worker would not notice (worker_ctx.h).
 */
#include "server/proxy.h"

#include "config/config.h"
#include "core/worker_ctx.h"
#include "server/proxy_hdr.h"
#include "session/h1session.h"

/* The session for a connection whose client address is settled (the peer's, or a PROXY
 * header's). */
static void start_session(struct worker_ctx *w, int fd, const struct sockaddr *client,
                          socklen_t len, bool tls)
{
    h1session_accept(w, fd, client, len, tls);
}

void proxy_accept(struct worker_ctx *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                  bool tls)
{
    if (w->cfg->pp_on) /* a PROXY header first, before any TLS byte */
        proxy_hdr_accept(w, fd, peer, peerlen, tls, start_session);
    else
        start_session(w, fd, peer, peerlen, tls);
}
