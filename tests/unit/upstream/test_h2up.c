/* Unit tests for h2up's stream pool without sockets (h2up_test_*): frames a backend would send,
 * written by hand (HPACK static-table and literal fields), fed to a connection. Limits (the
 * smaller of maxStreamsPerConnection and SETTINGS_MAX_CONCURRENT_STREAMS, the RFC's 100 before
 * the server's SETTINGS), reuse as streams end, GOAWAY (streams above last-stream-id refused, no
 * room after it), REFUSED_STREAM, and a response's head, data and trailers. */
#include <criterion/criterion.h>

#include <string.h>

#include "config/config.h"
#include "upstream/h2up.h"
#include "upstream/upstream.h"

static struct upstream_idle idle;
static struct config_backend cb;
static int events;

static void on_event(void *owner)
{
    (void)owner;
    events++;
}

static const struct http_field req[] = {
    {.name = ":method", .value = "POST", .name_len = 7, .value_len = 4},
    {.name = ":scheme", .value = "http", .name_len = 7, .value_len = 4},
    {.name = ":authority", .value = "b", .name_len = 10, .value_len = 1},
    {.name = ":path", .value = "/s/M", .name_len = 5, .value_len = 4},
};

static struct h2up_conn *conn(uint32_t max_streams)
{
    memset(&idle, 0, sizeof(idle));
    memset(&cb, 0, sizeof(cb));
    cb.name = "127.0.0.1:1";
    cb.up.max_streams = max_streams;
    events = 0;
    struct h2up_conn *c = h2up_test_conn(&idle, &cb);
    cr_assert_not_null(c);
    return c;
}

static struct h2up_stream *open_stream(struct h2up_conn *c)
{
    struct h2up_stream *s = h2up_test_stream(c, req, 4, false, NULL, on_event);
    cr_assert_not_null(s);
    return s;
}

/* A frame header: length, type, flags, stream id. */
static size_t frame(uint8_t *out, size_t len, uint8_t type, uint8_t flags, uint32_t id)
{
    out[0] = (uint8_t)(len >> 16);
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
    out[3] = type;
    out[4] = flags;
    out[5] = (uint8_t)(id >> 24);
    out[6] = (uint8_t)(id >> 16);
    out[7] = (uint8_t)(id >> 8);
    out[8] = (uint8_t)id;
    return 9;
}

static void feed(struct h2up_conn *c, const uint8_t *p, size_t n)
{
    cr_assert_eq(h2up_test_feed(c, p, n), 0);
}

static void settings(struct h2up_conn *c, uint32_t max_concurrent)
{
    uint8_t b[32];
    size_t n = frame(b, 6, 4, 0, 0);
    uint8_t e[6] = {0, 3, (uint8_t)(max_concurrent >> 24), (uint8_t)(max_concurrent >> 16),
                    (uint8_t)(max_concurrent >> 8), (uint8_t)max_concurrent};
    memcpy(b + n, e, 6);
    feed(c, b, n + 6);
}

/* HEADERS :status 200 (static index 8), ending the stream or not. */
static void status_200(struct h2up_conn *c, uint32_t id, bool end)
{
    uint8_t b[16];
    size_t n = frame(b, 1, 1, (uint8_t)(0x4 | (end ? 0x1 : 0)), id);
    b[n++] = 0x88;
    feed(c, b, n);
}

Test(h2up, limits_and_reuse)
{
    struct h2up_conn *c = conn(3);
    struct h2up_stream *s[3];
    for (int i = 0; i < 3; i++) {
        cr_expect(h2up_test_room(c), "stream %d", i);
        s[i] = open_stream(c);
    }
    cr_expect(!h2up_test_room(c), "maxStreamsPerConnection 3 reached");
    settings(c, 2); /* the server allows fewer */
    cr_expect(!h2up_test_room(c));
    status_200(c, 1, true);
    cr_expect(s[0]->head && s[0]->ended && s[0]->closed && !s[0]->failed);
    cr_expect(!h2up_test_room(c), "2 open, the server's limit");
    status_200(c, 3, true);
    cr_expect(h2up_test_room(c), "a stream ended: room again");
    cr_expect(events >= 2);
    for (int i = 0; i < 3; i++)
        h2up_stream_close(s[i]);
    h2up_test_free(c);
    cr_expect_eq(idle.h2_streams, 0, "the gauge goes back to 0");
}

Test(h2up, rfc_minimum_before_settings)
{
    struct h2up_conn *c = conn(1000);
    struct h2up_stream *s[100];
    for (int i = 0; i < 100; i++)
        s[i] = open_stream(c);
    cr_expect(!h2up_test_room(c), "100 until the server says more");
    settings(c, 1000);
    cr_expect(h2up_test_room(c));
    for (int i = 0; i < 100; i++)
        h2up_stream_close(s[i]);
    h2up_test_free(c);
}

Test(h2up, goaway_refuses_the_streams_above_its_last_id)
{
    struct h2up_conn *c = conn(100);
    settings(c, 100);
    struct h2up_stream *a = open_stream(c), *b = open_stream(c), *d = open_stream(c);
    uint8_t g[32];
    size_t n = frame(g, 8, 7, 0, 0);
    uint8_t payload[8] = {0, 0, 0, 1, 0, 0, 0, 0}; /* last-stream-id 1, NO_ERROR */
    memcpy(g + n, payload, 8);
    feed(c, g, n + 8);
    cr_expect(!h2up_test_room(c), "no new stream after a GOAWAY");
    cr_expect(b->refused && b->failed && d->refused, "streams 3 and 5 were not processed");
    cr_expect(!a->closed && !a->failed, "stream 1 goes on");
    status_200(c, 1, true);
    cr_expect(a->ended && !a->failed);
    h2up_stream_close(a);
    h2up_stream_close(b);
    h2up_stream_close(d);
    h2up_test_free(c);
}

Test(h2up, refused_stream_and_other_resets)
{
    struct h2up_conn *c = conn(100);
    settings(c, 100);
    struct h2up_stream *a = open_stream(c), *b = open_stream(c);
    uint8_t r[32];
    size_t n = frame(r, 4, 3, 0, 1);
    uint8_t refused[4] = {0, 0, 0, 7};
    memcpy(r + n, refused, 4);
    n += 4;
    n += frame(r + n, 4, 3, 0, 3);
    uint8_t internal[4] = {0, 0, 0, 2};
    memcpy(r + n, internal, 4);
    feed(c, r, n + 4);
    cr_expect(a->refused && a->failed);
    cr_expect(!b->refused && b->failed && b->err == 2);
    h2up_stream_close(a);
    h2up_stream_close(b);
    h2up_test_free(c);
}

Test(h2up, head_data_and_trailers)
{
    struct h2up_conn *c = conn(100);
    settings(c, 100);
    struct h2up_stream *s = open_stream(c);
    status_200(c, 1, false);
    cr_expect(s->head && s->status == 200 && !s->ended);
    uint8_t d[32];
    size_t n = frame(d, 3, 0, 0, 1);
    memcpy(d + n, "abc", 3);
    feed(c, d, n + 3);
    const uint8_t *p;
    cr_assert_eq(h2up_stream_data(s, &p), 3);
    cr_expect_eq(memcmp(p, "abc", 3), 0);
    h2up_stream_consume(s, 3);
    cr_expect_eq(h2up_stream_data(s, &p), 0);
    /* trailers: literal without indexing, new name "grpc-status: 0", END_STREAM */
    uint8_t t[64];
    uint8_t block[] = {0x00, 11, 'g', 'r', 'p', 'c', '-', 's', 't', 'a', 't', 'u', 's', 1, '0'};
    n = frame(t, sizeof(block), 1, 0x5, 1);
    memcpy(t + n, block, sizeof(block));
    feed(c, t, n + sizeof(block));
    cr_expect(s->ended && s->closed && !s->failed);
    cr_assert_eq(s->nt, 1);
    cr_expect_eq(s->t[0].name_len, 11);
    cr_expect_eq(memcmp(s->t[0].value, "0", 1), 0);
    h2up_stream_close(s);
    h2up_test_free(c);
}
