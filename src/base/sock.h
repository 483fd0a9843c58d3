/* sock — socket helpers: listeners with SO_REUSEPORT, non-blocking connect, address formatting. */
#ifndef GOLB_SOCK_H
#define GOLB_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Opens a non-blocking listening socket on addr with SO_REUSEADDR and SO_REUSEPORT (so every worker
 * binds its own on the same port). Returns the fd or -errno. */
int sock_listen(const struct sockaddr *addr, socklen_t addrlen, int backlog);
/* Whether addr is free to listen on, asked before sock_listen, which SO_REUSEPORT lets join the
 * listeners of any process of this user: binds (and closes) a socket with SO_REUSEADDR, and with
 * SO_REUSEPORT only when `share`. Unshared, a live listener on the address (or on the wildcard
 * address of its port) makes that fail: -EADDRINUSE; a connection left in TIME_WAIT does not.
 * Shared, it fails only where sock_listen would (a listener without SO_REUSEPORT, another user's).
 * Never listens, so it joins nothing. 0 or -errno. */
int sock_probe_free(const struct sockaddr *addr, socklen_t addrlen, bool share);
/* Asks the kernel to hand over accepted connections only once their first bytes arrived (or,
 * for a silent client, after about `seconds`), so the first read after accept finds data.
 * Best effort: returns 0 or -errno, and the listener works either way. */
int sock_defer_accept(int fd, int seconds);
/* Starts a non-blocking connect; returns the fd (connected or in progress) or -errno. */
int sock_connect(const struct sockaddr *addr, socklen_t addrlen);
/* True when a connect's error (-errno) is this host running out of something (descriptors, socket
 * memory, ephemeral ports), not the peer failing: no backend is to blame and trying another one
 * would fail the same way. */
bool sock_error_is_local(int err);
/* Pending error of a socket (SO_ERROR) as -errno, 0 when none. */
int sock_error(int fd);
/* Disables Nagle: golb writes whole heads and bodies with writev and wants them out at once. */
void sock_nodelay(int fd);
/* "127.0.0.1:8080" / "[::1]:8080"; returns buf. */
char *sock_addr_str(const struct sockaddr *addr, char *buf, size_t len);
/* The IP text only ("127.0.0.1", "::1"), as used in X-Forwarded-For; returns the length. */
size_t sock_ip_str(const struct sockaddr *addr, char *buf, size_t len);

#endif
