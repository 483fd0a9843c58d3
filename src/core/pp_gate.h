/* pp_gate — what golb decides about the PROXY protocol header (proxyProtocol) a connection may
 * start with, from the bytes that arrived so far: take it (and the client address it carries),
 * wait for more, or refuse the connection. One decision for every transport: the plain
 * listener's session runs it on its first read (no extra system call), the TLS listener's accept
 * path on a peek before the handshake (server/proxy_hdr.c). Refusals and accepted headers are
 * counted here (obs_proxy_header, obs_proxy_header_error).
 */
#ifndef GOLB_PP_GATE_H
#define GOLB_PP_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct worker_ctx;

enum pp_gate_step {
    PP_GATE_DONE = 0, /* settled: *hdr_len bytes are the header (0: none), *client set when the
                         header carried an address (PROXY over TCP/IPv4 or IPv6) */
    PP_GATE_WAIT,     /* a header may be coming and is not complete: more bytes decide */
    PP_GATE_CLOSE,    /* refused (counted): close without an answer */
};

/* The largest header taken (a v2 header with its TLVs): what the TLS path peeks. */
#define PP_GATE_MAX 4096

/* Decides on buf[0..n), the first bytes of a connection from a peer that is (`trusted`) or is not
 * in proxyProtocol.trustedNetworks, under w's configuration (proxyProtocol.required). From an
 * untrusted peer only a complete signature is refused: anything else is the session's to parse
 * (its parser refuses a PROXY line as garbage). *client and *clientlen are left alone unless the
 * header carried an address. */
enum pp_gate_step pp_gate_check(struct worker_ctx *w, bool trusted, const char *buf, size_t n,
                                size_t *hdr_len, struct sockaddr_storage *client,
                                socklen_t *clientlen);

/* Whether the peer may send a header (proxyProtocol.trustedNetworks of w's configuration). */
bool pp_gate_trusted(const struct worker_ctx *w, const struct sockaddr *peer);

#endif
