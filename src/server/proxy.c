/* proxy — see proxy.h. Every connection starts as an HTTP/1 session (h1session.c), which drives
 * one exchange (exchange.c) per request; it hands a connection that speaks HTTP/2 (ALPN h2 after
 * its TLS handshake, or the preface on the plain listener with http2.cleartext) to h2session.c,
 * which drives one exchange per stream. The worker does not notice (worker_ctx.h).
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
    h1session_accept(w, fd, client, len, tls, false);
}

void proxy_accept(struct worker_ctx *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                  bool tls)
{
    if (w->cfg->pp_on && tls) /* a PROXY header first, before any TLS byte */
        proxy_hdr_accept(w, fd, peer, peerlen, tls, start_session);
    else /* plain: the session takes the header from its first read */
        h1session_accept(w, fd, peer, peerlen, tls, w->cfg->pp_on);
}
