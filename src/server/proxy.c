/* proxy — see proxy.h. The worker's entry into the data path: today every connection is an
 * HTTP/1 session (h1session.c), which drives one exchange (exchange.c) per request. An HTTP/2
 * session would be chosen here (or after ALPN) and drive many exchanges on one connection.
 */
#include "server/proxy.h"

#include "core/exchange.h"
#include "session/h1session.h"

void proxy_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                  bool tls)
{
    h1session_accept(w, fd, peer, peerlen, tls);
}

void proxy_drain(struct worker *w)
{
    h1session_drain(w);
}

int proxy_cut_retired(struct worker *w)
{
    return h1session_cut_retired(w);
}

void proxy_close_all(struct worker *w)
{
    h1session_close_all(w);
    exchange_pool_free(w);
}
