/* proxy_hdr — see proxy_hdr.h. */
#include "server/proxy_hdr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/epoll.h>

#include "base/loop.h"
#include "base/util.h"
#include "config/config.h"
#include "core/obs.h"
#include "core/pp_gate.h"
#include "core/worker_ctx.h"
#include "net/proxy_proto.h"

#define FIRST_PEEK 256                        /* a v1 line, a v2 header with a few TLVs */

/* A connection whose header is not complete yet (the slow path). */
struct pending {
    struct loop_io io;
    struct loop_timer timer;
    struct loop_task task; /* frees it after close */
    struct worker_ctx *w;
    struct worker_session ws;
    proxy_hdr_next next;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    bool tls;
};

enum step {
    STEP_DONE = 0, /* header taken (or legitimately absent): *client is the address to use */
    STEP_WAIT,     /* more bytes are needed */
    STEP_CLOSE,    /* refused or gone: the caller closes */
};

/* One attempt at the header of fd from `peer`: peeks what arrived, lets pp_gate decide, and takes
 * the header's bytes off the socket when it is whole (OpenSSL reads the socket itself). */
static enum step try_header(struct worker_ctx *w, int fd, const struct sockaddr *peer,
                            struct sockaddr_storage *client, socklen_t *clientlen)
{
    bool trusted = pp_gate_trusted(w, peer);
    char buf[PP_GATE_MAX];
    size_t want = trusted ? FIRST_PEEK : PROXY_PROTO_V2_FIXED;
    for (int round = 0; round < 2; round++) {
        ssize_t n = recv(fd, buf, want, MSG_PEEK);
        if (n == -1 && errno == EINTR)
            n = recv(fd, buf, want, MSG_PEEK);
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return trusted ? STEP_WAIT : STEP_DONE;
        if (n <= 0)
            return STEP_CLOSE; /* reset or closed before a byte: nothing to count */
        size_t len = 0;
        switch (pp_gate_check(w, trusted, buf, (size_t)n, &len, client, clientlen)) {
        case PP_GATE_CLOSE:
            return STEP_CLOSE;
        case PP_GATE_WAIT:
            /* A v2 header longer than the first peek: peek exactly its length, once. */
            if ((size_t)n == want && round == 0 && n >= PROXY_PROTO_V2_FIXED &&
                proxy_proto_detect(buf, (size_t)n) == 2) {
                want = PROXY_PROTO_V2_FIXED + (((size_t)(uint8_t)buf[14] << 8) | (uint8_t)buf[15]);
                if (want > sizeof(buf))
                    want = sizeof(buf); /* pp_gate refuses it then: longer than it takes */
                continue;
            }
            return STEP_WAIT;
        case PP_GATE_DONE:
            break;
        }
        if (len) {
            ssize_t got;
            do
                got = recv(fd, buf, len, 0);
            while (got == -1 && errno == EINTR);
            if (got != (ssize_t)len) /* peeked bytes are in the socket: only a reset takes them */
                return STEP_CLOSE;
        }
        return STEP_DONE;
    }
    return STEP_WAIT;
}

static void pending_free_task(struct loop_task *task)
{
    free(container_of(task, struct pending, task));
}

/* Leaves the registry and the loop; closes the socket when `close_fd` (else it was handed on). */
static void pending_end(struct pending *p, bool close_fd)
{
    struct worker_ctx *w = p->w;
    loop_timer_cancel(w->loop, &p->timer);
    worker_ctx_session_remove(w, &p->ws);
    if (close_fd) {
        close(p->io.fd); /* also leaves the epoll set */
        worker_ctx_session_closed(w);
    } else {
        loop_io_del(w->loop, &p->io);
    }
    p->io.fd = -1;
    loop_defer(w->loop, &p->task, pending_free_task);
}

static void on_pending_event(struct loop_io *io, uint32_t events)
{
    struct pending *p = container_of(io, struct pending, io);
    (void)events;
    if (p->io.fd < 0)
        return;
    struct sockaddr_storage client = p->peer;
    socklen_t clientlen = p->peerlen;
    int fd = p->io.fd;
    switch (try_header(p->w, fd, (const struct sockaddr *)&p->peer, &client, &clientlen)) {
    case STEP_WAIT:
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            obs_proxy_header_error(p->w, OBS_PP_MALFORMED); /* a header cut short */
            pending_end(p, true);
        }
        return;
    case STEP_CLOSE:
        pending_end(p, true);
        return;
    case STEP_DONE:
        pending_end(p, false);
        p->next(p->w, fd, (const struct sockaddr *)&client, clientlen, p->tls);
        return;
    }
}

static void on_pending_timeout(struct loop_timer *t)
{
    struct pending *p = container_of(t, struct pending, timer);
    obs_proxy_header_error(p->w, OBS_PP_TIMEOUT);
    pending_end(p, true);
}

static void pending_close(struct worker_session *s)
{
    pending_end(container_of(s, struct pending, ws), true);
}

static int pending_cut_retired(struct worker_session *s)
{
    (void)s;
    return 0; /* no request yet */
}

static const struct worker_session_ops pending_ops = {
    .drain = pending_close, /* no request started: nothing to finish */
    .close = pending_close,
    .cut_retired = pending_cut_retired,
};

void proxy_hdr_accept(struct worker_ctx *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                      bool tls, proxy_hdr_next next)
{
    struct sockaddr_storage client;
    socklen_t clientlen = peerlen < sizeof(client) ? peerlen : sizeof(client);
    memcpy(&client, peer, clientlen);
    switch (try_header(w, fd, peer, &client, &clientlen)) {
    case STEP_DONE:
        next(w, fd, (const struct sockaddr *)&client, clientlen, tls);
        return;
    case STEP_CLOSE:
        close(fd);
        worker_ctx_session_closed(w);
        return;
    case STEP_WAIT:
        break;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (!p) {
        close(fd);
        worker_ctx_session_closed(w);
        return;
    }
    p->w = w;
    p->io.fd = fd;
    p->io.cb = on_pending_event;
    p->next = next;
    p->tls = tls;
    memcpy(&p->peer, peer, clientlen);
    p->peerlen = clientlen;
    loop_timer_init(&p->timer, on_pending_timeout);
    if (loop_io_add(w->loop, &p->io) != 0) {
        close(fd);
        free(p);
        worker_ctx_session_closed(w);
        return;
    }
    worker_ctx_session_add(w, &p->ws, &pending_ops);
    uint32_t ms = w->cfg->client_header_timeout_ms;
    loop_timer_after(w->loop, &p->timer, ms < PROXY_HDR_TIMEOUT_MS ? ms : PROXY_HDR_TIMEOUT_MS);
}
