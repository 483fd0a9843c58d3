/* toy-backend — a small HTTP/1.1 upstream for demos and end-to-end tests.
 *
 * One blocking thread per connection; HTTP/1.0 and 1.1, keep-alive and pipelining. Requests are
 * parsed with src/http1 (the same strict parser golb uses), so a head golb forwards that the toy
 * cannot parse is a golb bug worth seeing. Every answer carries `X-Server-Id: N` and
 * `X-Conn-Requests: K` (this is the K-th request on this TCP connection).
 *
 *   GET  /health                  200 "ok\n", or the status set with /toy/health
 *   POST /toy/health?status=CODE  make /health answer CODE from now on (200 restores)
 *   GET  /toy/health              the current health status
 *   GET  /toy/stats               "connections: N\nrequests: M\n" (totals since start, this one
 *                                 included)
 *   POST /toy/delay?delay=MS      the default delay of every answer below from now on (0 restores)
 *   GET  /toy/delay               the current default delay
 *   anything else                 200 (or status=CODE) with an echo body:
 *                                   server N
 *                                   method: GET
 *                                   path: /the/path?and=query
 *                                   header: Name: value        (one per request field, in order)
 *                                   body-length: N             (requests with a body only)
 *                                   body-sha256: HEX
 *
 * Query parameters on any non-toy path (numbers are decimal):
 *   status=CODE  answer CODE (200-599; 204 and 304 carry no body)
 *   delay=MS     sleep before sending the response head
 *   size=BYTES   send exactly BYTES bytes of the pattern below instead of the echo body
 *   chunked=1    send the body with chunked transfer coding (HTTP/1.1 clients only)
 *   close=1      answer with Connection: close and close afterwards
 *   trickle=MS   pause MS between 16 KiB pieces of the body
 *   hang=1       read the request and never answer; hold the connection until the client closes
 *
 * The size= pattern is the 64-byte line PATTERN_LINE below repeated and cut at BYTES, so a test can
 * recompute it cheaply: Python `(LINE * (n // 64 + 1))[:n]`.
 *
 * Flags -delay MS (the default delay=, for requests without one) and -stall MS/PERIOD (every
 * PERIOD ms from start-up, the first MS ms are a stall: an echo request arriving then is held until
 * the stall ends) make a slow or a stalling backend for balancing tests and benchmarks. Neither
 * applies to /health or /toy/ paths.
 *
 * Request bodies (Content-Length or chunked) are read in 64 KiB pieces and hashed, never stored.
 */
#include "http/http1.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PATTERN_LINE "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+\n"
#define PATTERN_LINE_LEN 64
#define PIECE 16384        /* body pieces sent per write (and per trickle pause); PIECE % 64 == 0 */
#define CONN_BUF 65536     /* per-connection read buffer: heads (parser caps them at 16 KiB) + body */
#define MAX_DELAY_MS 600000u
#define MAX_SIZE (1ull << 40)

static int server_id;
static bool verbose; /* -v: log one line per request */
static _Atomic int health_status = 200;
static _Atomic uint64_t stat_connections;
static _Atomic uint64_t stat_requests;
static _Atomic unsigned default_delay_ms;     /* -delay, POST /toy/delay */
static unsigned stall_ms, stall_period_ms;    /* -stall MS/PERIOD */
static struct timespec started;
/* PIECE bytes of the pattern: since PIECE is a multiple of the line length, every PIECE-aligned
 * piece of any size= body is a prefix of this buffer. */
static char pattern[PIECE];

/* ---- growable string for the echo body and the response head ------------------------------- */

struct str {
    char *p;
    size_t len, cap;
};

static void str_addn(struct str *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *np = realloc(s->p, cap);
        if (!np) {
            log_error("out of memory");
            abort();
        }
        s->p = np;
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

__attribute__((format(printf, 2, 3))) static void str_addf(struct str *s, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    str_addn(s, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ---- connection I/O -------------------------------------------------------------------------- */

/* A connection's unread bytes are buf[start, end); bytes before start were consumed. */
struct conn {
    int fd;
    char *buf;
    size_t start, end;
    unsigned nreq; /* requests seen on this connection */
};

/* Reads more bytes at the end of the buffer, compacting it first when the tail is full.
 * Returns bytes read, 0 on EOF, -1 on error or when the buffer is full of unconsumed bytes. */
static ssize_t conn_fill(struct conn *c)
{
    if (c->end == CONN_BUF) {
        if (c->start == 0)
            return -1;
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->end, CONN_BUF - c->end, 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n > 0)
            c->end += (size_t)n;
        return n;
    }
}

/* Writes all of iov. Returns 0, or -1 when the peer is gone. */
static int write_all(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

static int write_buf(int fd, const char *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    return write_all(fd, &iov, 1);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* ---- request details ------------------------------------------------------------------------- */

struct params {
    int status;        /* 0: default */
    unsigned delay_ms;
    bool has_delay;
    bool has_size;
    uint64_t size;
    bool chunked, close, hang;
    unsigned trickle_ms;
};

/* Parses a decimal number in [min, max]. Returns 0 or -1. */
static int parse_u64(const char *p, size_t n, uint64_t min, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static bool span_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* Reads the query of `path` (after '?') into *prm. Unknown parameters are ignored; a known one with
 * a bad value is an error described in *why. Returns 0 or -1. */
static int parse_params(const char *path, size_t len, struct params *prm, const char **why)
{
    memset(prm, 0, sizeof(*prm));
    const char *q = memchr(path, '?', len);
    if (!q)
        return 0;
    const char *end = path + len;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *k = p, *v = eq ? eq + 1 : pe;
        size_t kn = (size_t)((eq ? eq : pe) - p), vn = (size_t)(pe - v);
        uint64_t x;
        if (span_eq(k, kn, "status")) {
            if (parse_u64(v, vn, 200, 599, &x) == -1)
                return *why = "status must be 200-599", -1;
            prm->status = (int)x;
        } else if (span_eq(k, kn, "delay")) {
            if (parse_u64(v, vn, 0, MAX_DELAY_MS, &x) == -1)
                return *why = "delay must be 0-600000 (ms)", -1;
            prm->delay_ms = (unsigned)x;
            prm->has_delay = true;
        } else if (span_eq(k, kn, "size")) {
            if (parse_u64(v, vn, 0, MAX_SIZE, &x) == -1)
                return *why = "size must be 0-2^40 (bytes)", -1;
            prm->has_size = true;
            prm->size = x;
        } else if (span_eq(k, kn, "trickle")) {
            if (parse_u64(v, vn, 0, MAX_DELAY_MS, &x) == -1)
                return *why = "trickle must be 0-600000 (ms)", -1;
            prm->trickle_ms = (unsigned)x;
        } else if (span_eq(k, kn, "chunked") || span_eq(k, kn, "close") ||
                   span_eq(k, kn, "hang")) {
            if (parse_u64(v, vn, 0, 1, &x) == -1)
                return *why = "chunked, close and hang take 0 or 1", -1;
            if (k[0] == 'c' && k[1] == 'h')
                prm->chunked = x;
            else if (k[0] == 'c')
                prm->close = x;
            else
                prm->hang = x;
        }
        p = pe + 1;
    }
    return 0;
}

/* ---- request body ---------------------------------------------------------------------------- */

/* Reads the request body framed as `req` says, hashing it. Returns 0, or -1 when the connection
 * must be closed (*bad set when the body framing was invalid: answer 400 first). */
static int read_body(struct conn *c, const struct http1_request *req, uint64_t *len_out,
                     char hex[65], bool *bad)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        log_error("sha256 init failed");
        abort();
    }
    uint64_t total = 0;
    int rc = 0;
    *bad = false;
    if (req->rq.body == HTTP_BODY_LENGTH) {
        uint64_t left = req->rq.content_length;
        while (left > 0) {
            if (c->start == c->end) {
                c->start = c->end = 0;
                ssize_t n = conn_fill(c);
                if (n <= 0) {
                    rc = -1;
                    break;
                }
            }
            size_t take = c->end - c->start;
            if (take > left)
                take = (size_t)left;
            EVP_DigestUpdate(md, c->buf + c->start, take);
            c->start += take;
            left -= take;
            total += take;
        }
    } else if (req->rq.body == HTTP_BODY_STREAM) { /* chunked */
        struct http1_chunked ch = {0};
        while (!http1_chunked_done(&ch)) {
            if (c->start == c->end) {
                c->start = c->end = 0;
                ssize_t n = conn_fill(c);
                if (n <= 0) {
                    rc = -1;
                    break;
                }
                continue;
            }
            bool is_data = false;
            ssize_t n = http1_chunked_decode(&ch, c->buf + c->start, c->end - c->start, &is_data);
            if (n < 0) {
                *bad = true;
                rc = -1;
                break;
            }
            if (n == 0) {
                /* Incomplete framing at the end of the buffer: the decoder keeps its place, so
                 * this only happens when it needs more bytes. */
                if (http1_chunked_done(&ch))
                    break;
                if (conn_fill(c) <= 0) {
                    rc = -1;
                    break;
                }
                continue;
            }
            if (is_data) {
                EVP_DigestUpdate(md, c->buf + c->start, (size_t)n);
                total += (uint64_t)n;
            }
            c->start += (size_t)n;
        }
    }
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    *len_out = total;
    return rc;
}

/* ---- responses ------------------------------------------------------------------------------- */

struct reply {
    int status;
    bool head_only;     /* HEAD request: send the head as if the body followed, no body */
    bool chunked;       /* chunked transfer coding (HTTP/1.1 only) */
    bool keep_alive;    /* keep the connection after this response */
    bool http10_ka;     /* HTTP/1.0 client that asked for keep-alive: say so explicitly */
    const char *body;   /* the body, or NULL for the size= pattern */
    uint64_t body_len;  /* length of body or of the pattern */
    unsigned trickle_ms;
};

static bool status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

/* Sends the body in PIECE-sized pieces, each its own chunk when chunked, pausing between pieces
 * when trickling. Returns 0 or -1. */
static int send_body(int fd, const struct reply *r)
{
    uint64_t off = 0;
    while (off < r->body_len) {
        size_t n = r->body_len - off > PIECE ? PIECE : (size_t)(r->body_len - off);
        const char *p = r->body ? r->body + off : pattern;
        char line[32];
        struct iovec iov[3];
        int cnt = 0;
        if (r->chunked) {
            iov[cnt++] = (struct iovec){line, (size_t)snprintf(line, sizeof(line), "%zx\r\n", n)};
        }
        iov[cnt++] = (struct iovec){(void *)p, n};
        if (r->chunked)
            iov[cnt++] = (struct iovec){"\r\n", 2};
        if (write_all(fd, iov, cnt) == -1)
            return -1;
        off += n;
        if (r->trickle_ms && off < r->body_len)
            sleep_ms(r->trickle_ms);
    }
    if (r->chunked)
        return write_buf(fd, "0\r\n\r\n", 5);
    return 0;
}

/* Sends a complete response. Returns 0 or -1 (peer gone). */
static int send_reply(struct conn *c, const struct reply *r)
{
    struct str h = {0};
    bool body = status_has_body(r->status);
    str_addf(&h, "HTTP/1.1 %d %s\r\n", r->status, http1_reason(r->status));
    str_addf(&h, "Content-Type: text/plain\r\nX-Server-Id: %d\r\nX-Conn-Requests: %u\r\n",
             server_id, c->nreq);
    if (body && r->chunked)
        str_addf(&h, "Transfer-Encoding: chunked\r\n");
    else if (body)
        str_addf(&h, "Content-Length: %llu\r\n", (unsigned long long)r->body_len);
    if (!r->keep_alive)
        str_addf(&h, "Connection: close\r\n");
    else if (r->http10_ka)
        str_addf(&h, "Connection: keep-alive\r\n");
    str_addn(&h, "\r\n", 2);
    int rc = write_buf(c->fd, h.p, h.len);
    free(h.p);
    if (rc == 0 && body && !r->head_only)
        rc = send_body(c->fd, r);
    return rc;
}

/* Answers a request that could not be handled and asks for the connection to be closed. */
static void send_error(struct conn *c, int status, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, http1_reason(status), why);
    struct reply r = {.status = status, .body = body, .body_len = (uint64_t)n};
    send_reply(c, &r);
}

/* ---- one request ----------------------------------------------------------------------------- */

enum outcome {
    KEEP = 0,
    CLOSE,
};

/* Serves the request whose head is buf[start, start+head_len) and parsed into *req: builds what
 * the echo needs from the head, consumes the head and the body, then answers. */
static enum outcome serve(struct conn *c, struct http1_request *req, size_t head_len)
{
    bool is_head = span_eq(req->rq.method, req->rq.method_len, "HEAD");
    bool is_get = span_eq(req->rq.method, req->rq.method_len, "GET");
    bool is_post = span_eq(req->rq.method, req->rq.method_len, "POST");
    size_t path_len = req->rq.path_len;
    const char *q = memchr(req->rq.path, '?', path_len);
    size_t route_len = q ? (size_t)(q - req->rq.path) : path_len;

    struct params prm;
    const char *why = NULL;
    int perr = parse_params(req->rq.path, path_len, &prm, &why);

    if (verbose)
        log_info("request %u on connection: %.*s %.*s", c->nreq, (int)req->rq.method_len, req->rq.method,
                 (int)req->target_len, req->target);

    /* Everything taken from the head is copied before the head bytes are consumed. */
    struct str echo = {0};
    str_addf(&echo, "server %d\n", server_id);
    str_addn(&echo, "method: ", 8);
    str_addn(&echo, req->rq.method, req->rq.method_len);
    str_addn(&echo, "\npath: ", 7);
    str_addn(&echo, req->rq.path, req->rq.path_len);
    str_addn(&echo, "\n", 1);
    for (size_t i = 0; i < req->rq.num_fields; i++) {
        const struct http_field *hd = &req->headers[i];
        str_addn(&echo, "header: ", 8);
        str_addn(&echo, hd->name, hd->name_len);
        str_addn(&echo, ": ", 2);
        str_addn(&echo, hd->value, hd->value_len);
        str_addn(&echo, "\n", 1);
    }
    char route[64];
    snprintf(route, sizeof(route), "%.*s", (int)(route_len < 63 ? route_len : 63), req->rq.path);

    bool keep_alive = (req->rq.flags & HTTP1_MF_KEEP_ALIVE) != 0;
    bool http10_ka = keep_alive && req->rq.version == HTTP_V1_0;
    bool http11 = req->rq.version >= HTTP_V1_1;
    enum http_body framing = req->rq.body;
    bool expect_100 = (req->rq.flags & HTTP1_MF_EXPECT_100) != 0;
    c->start += head_len;

    if (expect_100 && framing != HTTP_BODY_NONE && http11 &&
        !(framing == HTTP_BODY_LENGTH && req->rq.content_length == 0)) {
        if (write_buf(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) == -1) {
            free(echo.p);
            return CLOSE;
        }
    }
    uint64_t body_len = 0;
    char hex[65];
    bool bad = false;
    if (read_body(c, req, &body_len, hex, &bad) == -1) {
        if (bad)
            send_error(c, 400, "invalid chunked body");
        free(echo.p);
        return CLOSE;
    }
    /* req's spans point into bytes that may have been overwritten by now: not used below. */
    if (framing != HTTP_BODY_NONE)
        str_addf(&echo, "body-length: %llu\nbody-sha256: %s\n", (unsigned long long)body_len,
                 hex);

    struct reply r = {
        .status = 200,
        .head_only = is_head,
        .keep_alive = keep_alive,
        .http10_ka = http10_ka,
    };
    char small[128];
    if (strcmp(route, "/health") == 0 && (is_get || is_head)) {
        r.status = atomic_load(&health_status);
        int n = r.status == 200 ? snprintf(small, sizeof(small), "ok\n")
                                : snprintf(small, sizeof(small), "status %d\n", r.status);
        r.body = small;
        r.body_len = (uint64_t)n;
    } else if (strcmp(route, "/toy/health") == 0 && (is_post || is_get || is_head)) {
        if (perr == -1 || (is_post && prm.status == 0)) {
            send_error(c, 400, why ? why : "POST /toy/health needs status=CODE");
            free(echo.p);
            return CLOSE;
        }
        if (is_post) {
            atomic_store(&health_status, prm.status);
            log_info("health status set to %d", prm.status);
        }
        int n = snprintf(small, sizeof(small), "health: %d\n", atomic_load(&health_status));
        r.body = small;
        r.body_len = (uint64_t)n;
    } else if (strcmp(route, "/toy/delay") == 0 && (is_post || is_get || is_head)) {
        if (perr == -1 || (is_post && !prm.has_delay)) {
            send_error(c, 400, why ? why : "POST /toy/delay needs delay=MS");
            free(echo.p);
            return CLOSE;
        }
        if (is_post) {
            atomic_store(&default_delay_ms, prm.delay_ms);
            log_info("default delay set to %u ms", prm.delay_ms);
        }
        int n = snprintf(small, sizeof(small), "delay: %u\n", atomic_load(&default_delay_ms));
        r.body = small;
        r.body_len = (uint64_t)n;
    } else if (strcmp(route, "/toy/stats") == 0 && (is_get || is_head)) {
        int n = snprintf(small, sizeof(small), "connections: %llu\nrequests: %llu\n",
                         (unsigned long long)atomic_load(&stat_connections),
                         (unsigned long long)atomic_load(&stat_requests));
        r.body = small;
        r.body_len = (uint64_t)n;
    } else {
        if (perr == -1) {
            send_error(c, 400, why);
            free(echo.p);
            return CLOSE;
        }
        if (prm.hang) {
            /* Never answer; hold the connection until the client gives up. */
            free(echo.p);
            c->start = c->end = 0;
            while (conn_fill(c) > 0)
                c->start = c->end = 0;
            return CLOSE;
        }
        if (prm.status)
            r.status = prm.status;
        if (prm.close)
            r.keep_alive = false;
        r.chunked = prm.chunked && http11;
        r.trickle_ms = prm.trickle_ms;
        if (prm.has_size) {
            r.body = NULL;
            r.body_len = prm.size;
        } else {
            r.body = echo.p;
            r.body_len = echo.len;
        }
        unsigned delay = prm.has_delay ? prm.delay_ms : atomic_load(&default_delay_ms);
        if (stall_period_ms) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            uint64_t ms = (uint64_t)(now.tv_sec - started.tv_sec) * 1000u +
                          (uint64_t)((now.tv_nsec - started.tv_nsec) / 1000000);
            uint64_t phase = ms % stall_period_ms;
            if (phase < stall_ms)
                delay += (unsigned)(stall_ms - phase);
        }
        if (delay)
            sleep_ms(delay);
    }
    int rc = send_reply(c, &r);
    free(echo.p);
    return rc == 0 && r.keep_alive ? KEEP : CLOSE;
}

/* ---- connection thread ----------------------------------------------------------------------- */

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct http1_request *req = malloc(sizeof(*req));
    c->buf = malloc(CONN_BUF);
    if (!req || !c->buf)
        goto out;
    for (;;) {
        /* Parse the head at c->start, reading more until it is complete. */
        size_t prev = 0;
        ssize_t hl;
        for (;;) {
            size_t avail = c->end - c->start;
            hl = avail ? http1_parse_request(c->buf + c->start, avail, prev, NULL, req)
                       : -EAGAIN;
            if (hl != -EAGAIN)
                break;
            prev = avail;
            if (c->start > 0 && c->end == CONN_BUF) {
                memmove(c->buf, c->buf + c->start, avail);
                c->end = avail;
                c->start = 0;
            }
            ssize_t n = conn_fill(c);
            if (n <= 0)
                goto out; /* EOF between requests, or mid-head: nothing to answer */
        }
        if (hl < 0) {
            c->nreq++;
            atomic_fetch_add(&stat_requests, 1);
            int st = req->err_status >= 400 ? req->err_status : 400;
            send_error(c, st, req->err_reason ? req->err_reason : "malformed request");
            goto out;
        }
        c->nreq++;
        atomic_fetch_add(&stat_requests, 1);
        if (serve(c, req, (size_t)hl) == CLOSE)
            goto out;
        if (c->start == c->end)
            c->start = c->end = 0;
    }
out:
    close(c->fd);
    free(c->buf);
    free(req);
    free(c);
    return NULL;
}

/* ---- start-up -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage of toy-backend:\n"
            "  -h, -help\n"
            "    \tprint this help and exit\n"
            "  -id int\n"
            "    \tserver id 0-9, shown in X-Server-Id and the first body line (default 0)\n"
            "  -listen string\n"
            "    \taddress to listen on, HOST:PORT or [V6]:PORT; port 0 picks a free one\n"
            "    \t(default \"127.0.0.1:808N\" where N is -id)\n"
            "  -delay int\n"
            "    \tdefault delay= of echo answers in ms (default 0)\n"
            "  -stall MS/PERIOD\n"
            "    \tstall echo answers for the first MS ms of every PERIOD ms\n"
            "  -v\tlog one line per request (default false)\n"
            "\n"
            "Flags may be written -flag value, -flag=value, --flag or --flag=value.\n"
            "Endpoints: GET /health, POST /toy/health?status=CODE, GET /toy/stats; any other path\n"
            "echoes the request. Query parameters: status=CODE delay=MS size=BYTES chunked=1\n"
            "close=1 trickle=MS hang=1. The size= body is the 64-byte line\n"
            "  %s"
            "repeated and cut at BYTES.\n",
            PATTERN_LINE);
}

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "toy-backend: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    exit(2);
}

/* Parses "HOST:PORT" / "[V6]:PORT" and binds a listening socket. Returns the fd; exits on error. */
static int listen_on(const char *spec, char *bound, size_t bound_len)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || strlen(spec) >= sizeof(host))
        usage_error("invalid -listen %s: want HOST:PORT", spec);
    size_t hl = (size_t)(colon - spec);
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (host[0] == '[') {
        if (hl < 3 || host[hl - 1] != ']')
            usage_error("invalid -listen %s: want [V6]:PORT", spec);
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    uint64_t port;
    if (parse_u64(colon + 1, strlen(colon + 1), 0, 65535, &port) == -1)
        usage_error("invalid -listen %s: bad port", spec);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
    int e = getaddrinfo(host, colon + 1, &hints, &ai);
    if (e != 0) {
        fprintf(stderr, "toy-backend: -listen %s: %s\n", spec, gai_strerror(e));
        exit(2);
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, 512) == -1) {
        log_error("cannot listen on %s: %s", spec, strerror(errno));
        exit(1);
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(bound, bound_len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(bound, bound_len, "%s:%u", ip, ntohs(s4->sin_port));
    }
    return fd;
}

static void *accept_main(void *arg)
{
    int lfd = *(int *)arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                sleep_ms(10);
                continue;
            }
            log_error("accept: %s", strerror(errno));
            return NULL;
        }
        atomic_fetch_add(&stat_connections, 1);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        pthread_t t;
        if (c)
            c->fd = fd;
        if (!c || pthread_create(&t, &attr, conn_main, c) != 0) {
            free(c);
            close(fd);
        }
    }
}

int main(int argc, char **argv)
{
    log_set_name("toy-backend");
    const char *listen_spec = NULL;
    uint64_t id = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            if (i + 1 < argc)
                usage_error("unexpected argument %s", argv[i + 1]);
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            usage_error("unexpected argument %s", a);
        const char *name = a + 1 + (a[1] == '-');
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = eq ? eq + 1 : NULL;
        if (span_eq(name, nl, "h") || span_eq(name, nl, "help")) {
            if (val)
                usage_error("flag -help takes no value: %s", a);
            usage(stdout);
            return 0;
        }
        if (span_eq(name, nl, "v")) {
            if (val && strcmp(val, "true") != 0 && strcmp(val, "false") != 0 &&
                strcmp(val, "1") != 0 && strcmp(val, "0") != 0)
                usage_error("invalid boolean value for flag -v: %s", val);
            verbose = !val || strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
            continue;
        }
        bool is_id = span_eq(name, nl, "id"), is_listen = span_eq(name, nl, "listen");
        bool is_delay = span_eq(name, nl, "delay"), is_stall = span_eq(name, nl, "stall");
        if (!is_id && !is_listen && !is_delay && !is_stall)
            usage_error("flag provided but not defined: %s", a);
        if (!val) {
            if (i + 1 >= argc)
                usage_error("flag needs an argument: %s", a);
            val = argv[++i];
        }
        if (is_id) {
            if (parse_u64(val, strlen(val), 0, 9, &id) == -1)
                usage_error("invalid value \"%s\" for flag -id: want 0-9", val);
        } else if (is_delay) {
            uint64_t d;
            if (parse_u64(val, strlen(val), 0, MAX_DELAY_MS, &d) == -1)
                usage_error("invalid value \"%s\" for flag -delay: want 0-600000", val);
            atomic_store(&default_delay_ms, (unsigned)d);
        } else if (is_stall) {
            const char *slash = strchr(val, '/');
            uint64_t sa, sb;
            if (!slash || parse_u64(val, (size_t)(slash - val), 1, MAX_DELAY_MS, &sa) == -1 ||
                parse_u64(slash + 1, strlen(slash + 1), 1, MAX_DELAY_MS, &sb) == -1 || sa >= sb)
                usage_error("invalid value \"%s\" for flag -stall: want MS/PERIOD, MS < PERIOD",
                            val);
            stall_ms = (unsigned)sa;
            stall_period_ms = (unsigned)sb;
        } else {
            listen_spec = val;
        }
    }
    server_id = (int)id;
    clock_gettime(CLOCK_MONOTONIC, &started);
    for (size_t i = 0; i < PIECE; i++)
        pattern[i] = PATTERN_LINE[i % PATTERN_LINE_LEN];

    char def[32];
    if (!listen_spec) {
        snprintf(def, sizeof(def), "127.0.0.1:%d", 8080 + server_id);
        listen_spec = def;
    }

    /* Signals are taken synchronously by the main thread; every other thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char bound[INET6_ADDRSTRLEN + 16];
    int lfd = listen_on(listen_spec, bound, sizeof(bound));
    log_info("toy-backend %d listening on %s", server_id, bound);

    pthread_t acc;
    if (pthread_create(&acc, NULL, accept_main, &lfd) != 0) {
        log_error("cannot start the accept thread");
        return 1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    log_info("toy-backend %d: %s, exiting", server_id, sig == SIGTERM ? "SIGTERM" : "SIGINT");
    /* Connection threads may be blocked in I/O: leave without joining them. */
    _exit(0);
}
