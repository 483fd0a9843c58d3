/* exchange_fake.h — a fake client-side session for the exchange's unit tests
 * (tests/unit/core/test_exchange*.c): implements struct exchange_client_ops over plain memory.
 * Its body source is `in` (peek/consume/fill: -EAGAIN until the test adds bytes, -EPIPE once
 * in_eof), its sink is `out` (send takes everything unless `blocked`; on_head serialises a
 * one-line head "H2-HEAD <status>\n", so the client side is visibly not HTTP/1), and it offers
 * the socket s_fd for splice only when `offer_splice`. resume pumps the exchange `x` when set,
 * as a session does from the exchange's upstream event handler. Header-only: include it once,
 * after <criterion/criterion.h>; the fake is one static `fk`.
 */
#ifndef GOLB_TESTS_EXCHANGE_FAKE_H
#define GOLB_TESTS_EXCHANGE_FAKE_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "core/exchange.h"
#include "http/http1.h"

/* The fake session: what it was given and what it holds. */
static struct fake {
    struct exchange *x; /* exchange_up: the exchange resume() pumps (NULL: resume does nothing) */
    enum exchange_status st; /* exchange_up: the last status the session got */
    int resp_status;         /* the last head's status */
    bool offer_splice;       /* splice_end() offers s_fd instead of refusing */
    int s_fd;
    bool s_readable, s_writable, s_eof;
    bool blocked;         /* send() refuses everything */
    char out[256 * 1024]; /* what the client received: heads and body */
    size_t out_len;
    int heads;
    bool head_req_done, head_dechunk; /* what the last exchange_head said */
    int splice_asked;
    char in[64 * 1024]; /* request body bytes the client sent, not yet consumed */
    uint32_t in_pos, in_len;
    bool in_eof;
} fk;

static const char *fk_peek(void *cl, uint32_t *len)
{
    struct fake *f = cl;
    *len = f->in_len - f->in_pos;
    return f->in + f->in_pos;
}

static void fk_consume(void *cl, uint32_t n)
{
    ((struct fake *)cl)->in_pos += n;
}

static ssize_t fk_fill(void *cl)
{
    return ((struct fake *)cl)->in_eof ? -EPIPE : -EAGAIN;
}

static int fk_on_head(void *cl, const struct http1_response *resp, const struct exchange_head *h,
                      struct buf *out)
{
    struct fake *f = cl;
    f->heads++;
    f->resp_status = resp->status;
    f->head_req_done = h->req_done;
    f->head_dechunk = h->dechunk;
    int n = snprintf(out->data + out->last, buf_space(out), "H2-HEAD %d\n", resp->status);
    out->last += (uint32_t)n;
    return 0;
}

static ssize_t fk_send(void *cl, const struct iovec *head, const struct iovec *body, bool streaming)
{
    struct fake *f = cl;
    (void)streaming;
    if (f->blocked)
        return -EAGAIN;
    size_t n = 0;
    if (head->iov_len) {
        memcpy(f->out + f->out_len, head->iov_base, head->iov_len);
        n += head->iov_len;
    }
    if (body) {
        memcpy(f->out + f->out_len + n, body->iov_base, body->iov_len);
        n += body->iov_len;
    }
    f->out_len += n;
    return (ssize_t)n;
}

static int fk_splice_end(void *cl, bool response, struct exchange_splice *out)
{
    struct fake *f = cl;
    (void)response;
    f->splice_asked++;
    if (!f->offer_splice)
        return -ENOTSUP;
    *out = (struct exchange_splice){f->s_fd, &f->s_readable, &f->s_writable, &f->s_eof};
    return 0;
}

/* The upstream moved: pump, as a session does, unless the exchange already ended (EX_DONE and
 * EX_TUNNEL are not stored in the exchange: the session acts on them at once). */
static void fk_resume(void *cl)
{
    struct fake *f = cl;
    if (f->x && f->st == EX_WAIT)
        f->st = exchange_pump(f->x);
}

static const struct exchange_client_ops fk_ops = {
    .peek = fk_peek, .consume = fk_consume, .fill = fk_fill,     .on_head = fk_on_head,
    .send = fk_send, .splice_end = fk_splice_end, .resume = fk_resume, .yield = NULL,
};

#endif
