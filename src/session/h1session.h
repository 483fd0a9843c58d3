/* h1session — the HTTP/1 client side: one session per client connection.
 *
 * A session owns the client's transport (plain socket or TLS, conn.h), runs the TLS handshake,
 * reads and parses request heads, validates them and answers the errors golb generates itself
 * (reply.h: 400/408/414/431/501/502/503/504/505, the HTTPS redirect), keeps the connection alive
 * between requests, handles pipelined requests, relays Upgrade tunnels and lingers before closing.
 * Each request it forwards becomes an exchange (exchange.h), for which the session is the body
 * source and the response sink; the exchange never sees the client's socket, only what the session
 * offers through its callbacks (including its plain socket for splice(2)).
 *
 * Ownership: the session owns its socket, SSL, input buffer and its exchange (at most one at a
 * time on HTTP/1). It closes the client; the exchange closes or pools the upstream.
 */
#ifndef GOLB_H1SESSION_H
#define GOLB_H1SESSION_H

#include <stdbool.h>
#include <sys/socket.h>

struct worker_ctx;

/* Takes ownership of an accepted, non-blocking client socket (already counted in w->nclients) and
 * registers its session with w (worker_ctx.h: drain, close, cut_retired); `tls`: it came to the
 * HTTPS listener and starts with a TLS handshake. `proxy_header`: a plain connection under
 * proxyProtocol, whose first bytes may be a PROXY header (core/pp_gate.h decides on them). */
void h1session_accept(struct worker_ctx *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                      bool tls, bool proxy_header);

#endif
