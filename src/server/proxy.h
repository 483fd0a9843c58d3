/* proxy — the worker's entry into the data path (h1session.h: the HTTP/1 client side; exchange.h:
 * one request against one backend). Together they read a request head, pick a backend, stream
 * the request up and the response down with backpressure, decide keep-alive on both sides, and
 * answer errors (400/408/414/431/501/502/503/504/505) that golb generates itself.
 */
#ifndef GOLB_PROXY_H
#define GOLB_PROXY_H

#include <stdbool.h>
#include <sys/socket.h>

struct worker;

/* Takes ownership of an accepted, non-blocking client socket; `tls`: it came to the HTTPS
 * listener and starts with a TLS handshake. */
void proxy_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                  bool tls);
/* Worker is draining: close idle client connections now; the rest close after their exchange. */
void proxy_drain(struct worker *w);
/* Closes every client connection at once (shutdown deadline passed, or worker teardown). */
void proxy_close_all(struct worker *w);
/* Closes the client connections whose request runs on a backend a reload removed (their time,
 * shutdownTimeout, is up). Returns how many. */
int proxy_cut_retired(struct worker *w);

#endif
