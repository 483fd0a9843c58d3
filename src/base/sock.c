/* sock — see sock.h. */
#include "base/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int sock_listen(const struct sockaddr *addr, socklen_t addrlen, int backlog)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    if (addr->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, addr, addrlen) == -1 || listen(fd, backlog) == -1)
        goto fail;
    return fd;
fail:;
    int err = errno;
    close(fd);
    return -err;
}

int sock_probe_free(const struct sockaddr *addr, socklen_t addrlen, bool share)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        (share && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1))
        rc = -errno;
    if (rc == 0 && addr->sa_family == AF_INET6) /* as sock_listen: v4 listeners do not clash */
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (rc == 0 && bind(fd, addr, addrlen) == -1)
        rc = -errno;
    close(fd);
    return rc;
}

int sock_defer_accept(int fd, int seconds)
{
    if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof(seconds)) == -1)
        return -errno;
    return 0;
}

int sock_connect(const struct sockaddr *addr, socklen_t addrlen)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    if (connect(fd, addr, addrlen) == -1 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

bool sock_error_is_local(int err)
{
    switch (-err) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
    case EADDRNOTAVAIL:
        return true;
    default:
        return false;
    }
}

int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return -errno;
    return -err;
}

void sock_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Dotted-quad IPv4 without inet_ntop, whose sprintf costs about 400 instructions: this runs for
 * every new connection (and again for a PROXY header's address). */
static size_t ipv4_str(const struct in_addr *a, char *buf, size_t len)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    char tmp[16];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            tmp[n++] = (char)('0' + v / 100);
        if (v >= 10)
            tmp[n++] = (char)('0' + v / 10 % 10);
        tmp[n++] = (char)('0' + v % 10);
        tmp[n++] = i < 3 ? '.' : '\0';
    }
    if (n > len) { /* as inet_ntop's failure below */
        snprintf(buf, len, "unknown");
        return strlen(buf);
    }
    memcpy(buf, tmp, n);
    return n - 1;
}

size_t sock_ip_str(const struct sockaddr *addr, char *buf, size_t len)
{
    if (addr->sa_family == AF_INET)
        return ipv4_str(&((const struct sockaddr_in *)addr)->sin_addr, buf, len);
    const void *src = addr->sa_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)addr)->sin_addr;
    if (!inet_ntop(addr->sa_family, src, buf, (socklen_t)len)) {
        snprintf(buf, len, "unknown");
    }
    return strlen(buf);
}

char *sock_addr_str(const struct sockaddr *addr, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    sock_ip_str(addr, ip, sizeof(ip));
    if (addr->sa_family == AF_INET6)
        snprintf(buf, len, "[%s]:%u", ip, ntohs(((const struct sockaddr_in6 *)addr)->sin6_port));
    else
        snprintf(buf, len, "%s:%u", ip, ntohs(((const struct sockaddr_in *)addr)->sin_port));
    return buf;
}
