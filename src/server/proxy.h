/* proxy — the worker's entry into the data path: the one place that chooses the client-side
 * protocol of an accepted connection (session/h1session.h today: HTTP/1; an HTTP/2 session after
 * ALPN or a preface next). The session registers itself with the worker (core/worker_ctx.h), which
 * from then on drains, closes and cuts it through its ops; each request it forwards is an exchange
 * (core/exchange.h) against one backend.
 */
#ifndef GOLB_PROXY_H
#define GOLB_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct worker_ctx;

/* Takes ownership of an accepted, non-blocking client socket (counted in w->nclients); `tls`: it
 * came to the HTTPS listener and starts with a TLS handshake; `listener`: the worker's tag of the
 * listener it came through (the session keeps it: worker_ctx_listener_closed). */
void proxy_accept(struct worker_ctx *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                  bool tls, uint32_t listener);

#endif
