/* reply — see reply.h. */
#include "http/reply.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "http/grpc.h"
#include "http/http.h"
#include "http/http1.h"
#include "base/util.h"

/* Whole responses golb sends itself: short plain-text body, always Connection: close. Built once
 * for every status at first use (pthread_once), then shared read-only by all workers. */
#define REPLY_MAX 192
static char reply_table[600][REPLY_MAX];
static uint16_t reply_len_table[600];
static pthread_once_t reply_once = PTHREAD_ONCE_INIT;

static void build_replies(void)
{
    for (int status = 100; status < 600; status++) {
        char body[96];
        int bl = snprintf(body, sizeof(body), "%d %s\n", status, http1_reason(status));
        int n = snprintf(reply_table[status], REPLY_MAX,
                         "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         "Connection: close\r\n\r\n%s",
                         status, http1_reason(status), bl, body);
        reply_len_table[status] = (uint16_t)MIN(n, REPLY_MAX - 1);
    }
}

const char *reply_text(int status, uint32_t *len)
{
    pthread_once(&reply_once, build_replies);
    if (status < 100 || status >= 600)
        status = 500;
    *len = reply_len_table[status];
    return reply_table[status];
}

/* What a plain-HTTP client that reached the TLS port gets (nginx answers the same way): the
 * request cannot be served there, and a silent close would leave the user guessing. */
const char reply_plain_on_tls[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 45\r\n"
    "Connection: close\r\n\r\nThis port speaks HTTPS: use https:// instead.\n";

void reply_error(struct reply_desc *d, int status, bool grpc)
{
    memset(d, 0, sizeof(*d));
    d->status = status;
    d->grpc = grpc && status >= 400;
}

const char *reply_grpc_status(const struct reply_desc *d, char buf[4])
{
    snprintf(buf, 4, "%d", grpc_code_of_http(d->status) % 100);
    return buf;
}

const char *reply_grpc_message(const struct reply_desc *d)
{
    /* reason phrases are visible ASCII without '%': nothing to percent-encode */
    return http1_reason(d->status >= 100 && d->status < 600 ? d->status : 500);
}

/* The HTTP/1 head of a gRPC answer (see reply_desc.grpc) into p (cap bytes); its length or 0. */
static size_t grpc_http1(const struct reply_desc *d, bool keepalive, bool http10, char *p,
                         size_t cap)
{
    char code[4];
    int n = snprintf(p, cap,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\ngrpc-status: %s\r\n"
                     "grpc-message: %s\r\nContent-Length: 0\r\n%s",
                     reply_grpc_status(d, code), reply_grpc_message(d),
                     !keepalive ? "Connection: close\r\n\r\n"
                     : http10   ? "Connection: keep-alive\r\n\r\n"
                                : "\r\n");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

bool reply_http1(const struct reply_desc *d, bool keepalive, bool http10, struct buf *b)
{
    if (d->grpc) {
        size_t n = grpc_http1(d, keepalive, http10, b->data + b->last, b->cap - b->last);
        b->last += (uint32_t)n;
        return n > 0;
    }
    char *p = b->data + b->last;
    size_t cap = b->cap - b->last, len = 0;
    bool own_type = false;
    int status = d->status >= 100 && d->status < 600 ? d->status : 500;
    char dflt[96];
    const char *body = d->body;
    size_t body_len = d->body_len;
    if (!body) {
        int n = snprintf(dflt, sizeof(dflt), "%d %s\n", status, http1_reason(status));
        body = dflt;
        body_len = n > 0 ? MIN((size_t)n, sizeof(dflt) - 1) : 0;
    }
    if (status == 204 || status == 304 || status < 200)
        body_len = 0;
#define PUT(s, n)                                                                                  \
    do {                                                                                           \
        if (len + (n) > cap)                                                                       \
            return false;                                                                          \
        memcpy(p + len, (s), (n));                                                                 \
        len += (n);                                                                                \
    } while (0)
#define PUTS(s) PUT((s), strlen(s))
    char line[128];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, http1_reason(status));
    PUT(line, (size_t)n);
    for (size_t i = 0; i < d->nfields; i++) {
        const struct http_field *f = &d->fields[i];
        own_type |= f->name_len == 12 && strncasecmp(f->name, "content-type", 12) == 0;
        PUT(f->name, f->name_len);
        PUT(": ", 2);
        PUT(f->value, f->value_len);
        PUT("\r\n", 2);
    }
    if (!own_type && body_len)
        PUTS("Content-Type: text/plain\r\n");
    if (d->location) {
        PUTS("Location: ");
        PUT(d->location, d->location_len);
        PUT("\r\n", 2);
    }
    if (d->retry_after) {
        n = snprintf(line, sizeof(line), "Retry-After: %u\r\n", d->retry_after);
        PUT(line, (size_t)n);
    }
    if (status != 204 && status != 304) {
        n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", body_len);
        PUT(line, (size_t)n);
    }
    PUTS(!keepalive ? "Connection: close\r\n\r\n"
                    : http10 ? "Connection: keep-alive\r\n\r\n"
                             : "\r\n");
    if (!d->no_body)
        PUT(body, body_len);
#undef PUTS
#undef PUT
    b->last += (uint32_t)len;
    return true;
}
