/* proxy_hdr — the PROXY protocol header in front of an accepted TLS connection (proxyProtocol):
 * read, checked (core/pp_gate.h decides) and taken off the socket before the TLS handshake sees a
 * byte, on the worker's loop, never blocking it. A plain connection's header is read by its
 * session instead, from its first read (no system call of its own: h1session.c).
 *
 *   accept ─► proxy_accept ─► proxyProtocol? ──no──────────────────────────────► session(peer)
 *                                 │ yes
 *                                 ▼
 *             peer in trustedNetworks? ──no── peek: starts with a PROXY signature? ─yes─► close
 *                                 │ yes                     │ no / nothing yet
 *                                 │                         └──────────────────────► session(peer)
 *                                 ▼
 *             peek the first bytes (MSG_PEEK) ─► net/proxy_proto parses them
 *               header ─► recv exactly its bytes ─► session(its source address, or the peer's
 *                                                   for v2 LOCAL, v1 UNKNOWN, AF_UNSPEC/AF_UNIX)
 *               none   ─► required? close : session(peer)
 *               part   ─► wait for more (timer: min(3 s, clientHeaderTimeout)) ─► close
 *               bad    ─► close
 *
 * Peeking leaves every byte after the header in the socket, so the session (plain or TLS) reads
 * its connection as if the header had never been there. A header is at most
 * PROXY_PROTO_V2_DEFAULT_MAX (4096) bytes. The first attempt runs in the accept callback with no
 * allocation (the listeners defer accept until data came, so the header is normally there); only
 * a connection that must wait gets a small state object registered with the worker (drained and
 * closed like a session). Every refusal is counted (obs_proxy_header_error) and closes the
 * connection without an answer: a peer that speaks the wrong protocol would not understand one.
 */
#ifndef GOLB_PROXY_HDR_H
#define GOLB_PROXY_HDR_H

#include <stdbool.h>
#include <sys/socket.h>

struct worker_ctx;

/* How the connection goes on once its header is settled: the session choice (proxy.c). */
typedef void (*proxy_hdr_next)(struct worker_ctx *w, int fd, const struct sockaddr *client,
                               socklen_t len, bool tls);

/* Takes ownership of an accepted socket (counted in w->nclients) on a worker whose configuration
 * has proxyProtocol; calls next() with the client's address once the header is read (or is
 * legitimately absent), or closes the socket. */
void proxy_hdr_accept(struct worker_ctx *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                      bool tls, proxy_hdr_next next);

/* The time a peer has to complete its header, in ms. */
#define PROXY_HDR_TIMEOUT_MS 3000u

#endif
