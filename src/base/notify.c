/* notify — see notify.h. The address is resolved once; each message is one sendto() with the
 * address (not a connected socket), so a service manager that re-creates its socket at the same
 * path (systemctl daemon-reexec) still receives later messages. */
#include "base/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

/* One datagram: systemd reads up to its page-sized buffer; a status line is short. */
#define NOTIFY_MSG_MAX 1024
#define NOTIFY_STATUS_MAX 512

static struct {
    _Atomic int fd; /* -1: off */
    struct sockaddr_un addr;
    socklen_t addrlen;
    atomic_bool failed_once; /* the first send error is logged, the rest are not */
} notify = {.fd = -1};

int notify_init(void)
{
    int old = atomic_exchange(&notify.fd, -1);
    if (old >= 0)
        close(old);
    atomic_store(&notify.failed_once, false);

    const char *e = getenv("NOTIFY_SOCKET");
    if (!e || !*e)
        return 0;
    size_t len = strlen(e);
    memset(&notify.addr, 0, sizeof(notify.addr));
    notify.addr.sun_family = AF_UNIX;
    if (e[0] != '/' && e[0] != '@') {
        /* systemd also knows "vsock:CID:PORT" (VMs); golb runs on the host's manager. */
        log_warn("NOTIFY_SOCKET=%s: only a path or an @abstract name is supported; "
                 "not notifying the service manager", e);
        return -EAFNOSUPPORT;
    }
    if (len >= sizeof(notify.addr.sun_path) || len < 2) {
        log_warn("NOTIFY_SOCKET=%s: not a usable socket address; not notifying the service "
                 "manager", e);
        return -EINVAL;
    }
    memcpy(notify.addr.sun_path, e, len);
    if (e[0] == '@') {
        /* Abstract namespace: a leading NUL, and the length counts exactly the name's bytes. */
        notify.addr.sun_path[0] = '\0';
        notify.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        notify.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        int err = errno;
        log_warn("NOTIFY_SOCKET: socket: %s; not notifying the service manager", strerror(err));
        return -err;
    }
    atomic_store(&notify.fd, fd);
    return 0;
}

/* Appends "[\n]STATUS=<status>" (the newline when something precedes it) with newlines and
 * other control characters turned into spaces. */
static size_t put_status(char *p, size_t room, const char *status, bool first)
{
    size_t n = (size_t)snprintf(p, room, "%sSTATUS=", first ? "" : "\n");
    if (n >= room)
        return 0;
    for (size_t i = 0; status[i] && i < NOTIFY_STATUS_MAX && n + 1 < room; i++) {
        unsigned char c = (unsigned char)status[i];
        p[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    p[n] = '\0';
    return n;
}

/* Sends "<head>[\nSTATUS=<status>]" as one datagram. */
static void send_msg(const char *head, const char *status)
{
    int fd = atomic_load(&notify.fd);
    if (fd < 0)
        return;
    char msg[NOTIFY_MSG_MAX];
    size_t n = (size_t)snprintf(msg, sizeof(msg), "%s", head);
    if (n >= sizeof(msg))
        n = sizeof(msg) - 1;
    if (status)
        n += put_status(msg + n, sizeof(msg) - n, status, n == 0);
    ssize_t w;
    do
        w = sendto(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT, (const struct sockaddr *)&notify.addr,
                   notify.addrlen);
    while (w == -1 && errno == EINTR);
    if (w == -1 && !atomic_exchange(&notify.failed_once, true)) {
        int err = errno;
        /* EAGAIN: the manager's queue is full; ENOENT/ECONNREFUSED: nobody listens there. */
        log_warn("cannot notify the service manager at %s%s: %s (further failures are not "
                 "logged)", notify.addr.sun_path[0] ? "" : "@",
                 notify.addr.sun_path[0] ? notify.addr.sun_path : notify.addr.sun_path + 1,
                 strerror(err));
    }
}

void notify_ready(const char *status)
{
    send_msg("READY=1", status);
}

void notify_reloading(const char *status)
{
    /* systemd (Type=notify-reload) matches the reload to its request by this timestamp. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char head[64];
    snprintf(head, sizeof(head), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
    send_msg(head, status);
}

void notify_stopping(const char *status)
{
    send_msg("STOPPING=1", status);
}

void notify_status(const char *status)
{
    if (status)
        send_msg("", status);
}
