/* ratecli — a small open-loop, constant-rate HTTP/1.1 load client for the uneven-backend bench.
 *
 *   ratecli HOST PORT RATE SECONDS MAXCONNS OUTFILE [close]
 *
 * Request i is due at start + i / RATE. It goes out on an idle keep-alive connection (a new one is
 * opened while fewer than MAXCONNS exist); when none is free it waits in a queue. Latency is
 * measured from the time the request was *due*, not sent (wrk2's correction for coordinated
 * omission): a proxy that stalls is charged for the requests that queued behind it. Responses need
 * a Content-Length (toy-backend's). Each completed request is one line of OUTFILE:
 *   due_us latency_us X-Server-Id status
 * At the end, requests still open after 5 s are written with status 0. Bounded in time and count.
 * A request that fails (refused connect, reset, connection closed before the whole response) is
 * written with status 0 at once and the connection is opened again for the next one: the reload
 * bench counts those. With `close` every request asks for Connection: close (a new connection each).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    int busy;
    uint64_t due;
    char buf[8192];
    size_t len;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct sockaddr_in addr;
static char req[256];
static size_t req_len;
static FILE *out;
static uint64_t t0;

static uint64_t failures;
static int close_each; /* Connection: close on every request */

static int open_conn(int ep, struct conn *c, int idx)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->busy = 0;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->busy = 0;
    c->len = 0;
    return 0;
}

/* A request that failed: recorded with status 0 now. */
static void fail_req(uint64_t due)
{
    fprintf(out, "%llu %llu -1 0\n", (unsigned long long)(due - t0),
            (unsigned long long)(now_us() - due));
    failures++;
}

static void drop_conn(int ep, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->busy = 0;
    c->len = 0;
}

/* Returns 0 when sent; -1 when it failed (recorded, connection dropped). */
static int send_req(int ep, struct conn *c, uint64_t due)
{
    c->busy = 1;
    c->due = due;
    c->len = 0;
    if (write(c->fd, req, req_len) != (ssize_t)req_len) {
        drop_conn(ep, c);
        fail_req(due);
        return -1;
    }
    return 0;
}

/* Returns 1 when a whole response is in c->buf (and records it), 0 when more is needed. */
static int try_complete(struct conn *c)
{
    c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->buf) + 4;
    long clen = 0;
    int sid = -1, status = atoi(c->buf + 9);
    for (char *p = strstr(c->buf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
            clen = atol(p + 17);
        else if (strncasecmp(p + 2, "X-Server-Id:", 12) == 0)
            sid = atoi(p + 14);
    }
    if (c->len < head + (size_t)clen)
        return 0;
    uint64_t now = now_us();
    fprintf(out, "%llu %llu %d %d\n", (unsigned long long)(c->due - t0),
            (unsigned long long)(now - c->due), sid, status);
    c->busy = 0;
    c->len = 0;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: ratecli HOST PORT RATE SECONDS MAXCONNS OUTFILE [close]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    close_each = argc == 8 && strcmp(argv[7], "close") == 0;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    double rate = atof(argv[3]), secs = atof(argv[4]);
    int maxc = atoi(argv[5]);
    out = fopen(argv[6], "w");
    if (!out || rate <= 0 || secs <= 0 || maxc <= 0 || maxc > 4096)
        return 2;
    req_len = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: bench\r\n%s\r\n",
                               close_each ? "Connection: close\r\n" : "");
    uint64_t total = (uint64_t)(rate * secs), interval_ns = (uint64_t)(1e9 / rate);
    struct conn *conns = calloc((size_t)maxc, sizeof(*conns));
    uint64_t *queue = calloc(total + 1, sizeof(uint64_t));
    int ep = epoll_create1(EPOLL_CLOEXEC), nconns = 0;
    size_t qhead = 0, qtail = 0;
    uint64_t next = 0, completed = 0, sent = 0;
    t0 = now_us() + 1000;
    uint64_t stop_at = t0 + (uint64_t)(secs * 1e6) + 5000000u;
    while (completed < total && now_us() < stop_at) {
        uint64_t now = now_us();
        while (next < total && t0 + next * interval_ns / 1000u <= now)
            queue[qtail++] = t0 + next++ * interval_ns / 1000u;
        while (qhead < qtail) {
            int idle = -1;
            for (int i = 0; i < nconns && idle < 0; i++)
                if (!conns[i].busy)
                    idle = i;
            if (idle < 0 && nconns < maxc)
                idle = nconns++, conns[idle].fd = -1;
            if (idle < 0)
                break;
            uint64_t due = queue[qhead++];
            sent++;
            if (conns[idle].fd < 0 && open_conn(ep, &conns[idle], idle) != 0) {
                fail_req(due); /* refused: golb or a peer was not accepting */
                completed++;
                continue;
            }
            if (send_req(ep, &conns[idle], due) != 0)
                completed++;
        }
        int timeout = 0;
        if (next < total) {
            uint64_t due = t0 + next * interval_ns / 1000u;
            now = now_us();
            timeout = due > now ? (int)((due - now) / 1000u) : 0;
        } else {
            timeout = 10;
        }
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, timeout);
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[evs[k].data.u32];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
            if (r <= 0) {
                if (c->busy) { /* closed or reset under a request: that request failed */
                    fail_req(c->due);
                    completed++;
                }
                drop_conn(ep, c); /* reopened when next used */
                continue;
            }
            c->len += (size_t)r;
            if (c->busy && try_complete(c)) {
                completed++;
                if (close_each)
                    drop_conn(ep, c); /* the server closes it: never reuse it */
            }
        }
    }
    fprintf(stderr, "ratecli: %llu due, %llu sent, %llu completed, %llu failed, %d connections\n",
            (unsigned long long)total, (unsigned long long)sent, (unsigned long long)completed,
            (unsigned long long)failures, nconns);
    fclose(out);
    return 0;
}
