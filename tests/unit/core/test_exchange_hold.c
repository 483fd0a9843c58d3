/* Unit tests for holding a request body before a backend is taken (requestBufferSize,
 * exchange_req.c exchange_req_hold_body): what stays at the source, what moves to the hold
 * chain, how a chunked body is counted (as received, framing included), and what ends the hold.
 * The file includes exchange.c to reach its static steps; a fake session is the body source. */
#include <criterion/criterion.h>

#include "../../../src/core/exchange.c"

static struct worker_ctx wk;
static struct config wk_cfg;
static struct generation wk_gen;
static struct generation_pool wk_pool; /* the default pool: every request's here */
static struct generation_worker wk_slots[1];

static struct fake {
    char in[64 * 1024];
    uint32_t pos, len; /* the session's unconsumed bytes */
    const char *more;  /* what the next fill reads (NULL: nothing now) */
    bool eof;
    int fills;
} fk;

static const char *fk_peek(void *cl, uint32_t *len)
{
    struct fake *f = cl;
    *len = f->len - f->pos;
    return f->in + f->pos;
}

static void fk_consume(void *cl, uint32_t n)
{
    struct fake *f = cl;
    f->pos += n;
    if (f->pos == f->len)
        f->pos = f->len = 0;
}

static ssize_t fk_fill(void *cl)
{
    struct fake *f = cl;
    f->fills++;
    if (f->eof)
        return -EPIPE;
    if (!f->more)
        return -EAGAIN;
    size_t n = strlen(f->more);
    memcpy(f->in + f->len, f->more, n);
    f->len += (uint32_t)n;
    f->more = NULL;
    return (ssize_t)n;
}

static void fk_yield(void *cl)
{
    (void)cl;
}

static const struct exchange_client_ops fk_ops = {
    .peek = fk_peek, .consume = fk_consume, .fill = fk_fill, .yield = fk_yield};

static struct exchange *x;

static void setup(void)
{
    memset(&wk, 0, sizeof(wk));
    memset(&fk, 0, sizeof(fk));
    memset(&wk_cfg, 0, sizeof(wk_cfg));
    memset(&wk_gen, 0, sizeof(wk_gen));
    wk_gen.cfg = &wk_cfg;
    wk_pool = (struct generation_pool){.name = "default", .table = wk_gen.table,
                                       .balancer = &wk_gen.balancer};
    wk_pool.cfg = wk_cfg;
    wk_gen.pools = &wk_pool;
    wk_gen.npools = 1;
    wk_gen.nworkers = 1;
    wk_gen.pw = wk_slots;
    atomic_init(&wk_gen.holders, 1);
    wk.cfg = &wk_cfg;
    wk.gen = &wk_gen;
    wk.loop = loop_new();
    cr_assert_not_null(wk.loop);
    buf_pool_init(&wk.bufs, 16384, 8);
    x = exchange_get(&wk, &fk_ops, &fk);
    cr_assert_not_null(x);
    x->phase = XP_BUFFER;
    x->budget = SIZE_MAX;
}

static void teardown(void)
{
    exchange_put(x);
    exchange_pool_free(&wk);
    cr_expect_eq(wk.bufs.outstanding, 0, "buffer leak");
    buf_pool_destroy(&wk.bufs);
    loop_free(wk.loop);
}

TestSuite(exchange_hold, .init = setup, .fini = teardown);

static void source(const char *s)
{
    size_t n = strlen(s);
    memcpy(fk.in + fk.len, s, n);
    fk.len += (uint32_t)n;
}

static size_t chain(char *out)
{
    size_t n = 0;
    for (struct buf *b = x->hold; b; b = b->next) {
        memcpy(out + n, b->data + b->pos, buf_len(b));
        n += buf_len(b);
    }
    out[n] = '\0';
    return n;
}

Test(exchange_hold, a_body_complete_at_the_source_is_not_copied)
{
    wk_cfg.request_buffer_size = 65536;
    x->req_body = HTTP1_BODY_LENGTH;
    x->req_remaining = 10;
    source("0123456789GET /next");
    cr_expect(exchange_req_hold_body(x));
    cr_expect_null(x->hold, "nothing copied: it goes up from the source");
    cr_expect_eq(fk.fills, 0);
    cr_expect_eq(fk.len - fk.pos, 19, "the pipelined bytes are the session's");
}

Test(exchange_hold, a_trickling_body_moves_to_the_chain_until_it_is_complete)
{
    wk_cfg.request_buffer_size = 65536;
    x->req_body = HTTP1_BODY_LENGTH;
    x->req_remaining = 10;
    source("0123");
    cr_expect_not(exchange_req_hold_body(x), "waits for the client");
    cr_expect_eq(x->res, EX_WAIT);
    cr_expect_eq(x->held, 4);
    cr_expect_eq(fk.len, 0, "the source is free for the next read");
    fk.more = "456789GET /next";
    cr_expect(exchange_req_hold_body(x), "complete: a backend may be taken");
    char got[64];
    cr_expect_eq(chain(got), 4);
    cr_expect_str_eq(got, "0123");
    cr_expect_eq(fk.len - fk.pos, 15, "the end of the body stays at the source");
}

Test(exchange_hold, request_buffer_size_ends_the_hold_before_the_body_ends)
{
    wk_cfg.request_buffer_size = 8;
    x->req_body = HTTP1_BODY_LENGTH;
    x->req_remaining = 1000;
    source("0123");
    cr_expect_not(exchange_req_hold_body(x));
    fk.more = "4567";
    cr_expect(exchange_req_hold_body(x), "8 bytes came: stream the rest");
    cr_expect_eq(x->held, 4);
    cr_expect_eq(fk.len - fk.pos, 4);
}

Test(exchange_hold, a_chunked_body_counts_as_received_framing_included)
{
    /* 3 chunks of 10 data bytes are 15 bytes each as received: the limit of 40 is reached by the
     * third (45 received, 30 decoded), whose bytes stay at the source. */
    wk_cfg.request_buffer_size = 40;
    x->req_body = HTTP1_BODY_CHUNKED;
    source("a\r\n0123456789\r\n");
    cr_expect_not(exchange_req_hold_body(x));
    fk.more = "a\r\n0123456789\r\n";
    cr_expect_not(exchange_req_hold_body(x));
    cr_expect_eq(x->held, 30, "two chunks as received");
    fk.more = "a\r\n0123456789\r\n";
    cr_expect(exchange_req_hold_body(x));
    cr_expect_eq(x->held, 30);
    cr_expect_eq(x->req_ready, 15, "the third is validated at the source");
}

Test(exchange_hold, a_bad_chunk_is_a_400)
{
    wk_cfg.request_buffer_size = 65536;
    x->req_body = HTTP1_BODY_CHUNKED;
    source("zz\r\n");
    cr_expect_not(exchange_req_hold_body(x));
    cr_expect_eq(x->res, EX_FAIL);
    cr_expect_eq(x->fail_status, 400);
}

Test(exchange_hold, a_client_gone_mid_body_closes)
{
    wk_cfg.request_buffer_size = 65536;
    x->req_body = HTTP1_BODY_LENGTH;
    x->req_remaining = 10;
    source("01");
    fk.eof = true;
    cr_expect_not(exchange_req_hold_body(x));
    cr_expect_eq(x->res, EX_CLOSE);
}

Test(exchange_hold, the_hold_times_out_with_408)
{
    wk_cfg.request_buffer_size = 65536;
    wk_cfg.body_timeout_ms = 1000;
    x->req_body = HTTP1_BODY_LENGTH;
    x->req_remaining = 10;
    x->progress_at = 5;
    cr_expect_eq(exchange_deadline(x), 1005);
    cr_expect_eq(exchange_timeout(x), EX_FAIL);
    cr_expect_eq(x->fail_status, 408);
}
