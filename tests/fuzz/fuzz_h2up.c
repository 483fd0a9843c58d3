/* libFuzzer target for the upstream HTTP/2 frame path (upstream/h2up.c): the input's first byte
 * picks the streams (how many, which carry a body, ended by trailers on every other stream,
 * which the owner closes when told of a change), the rest is what a backend sends (SETTINGS, HEADERS with any fields, DATA, trailers,
 * RST_STREAM, GOAWAY, anything), fed to a socketless connection (h2up_test_*) in pieces. The
 * owner takes every data byte it is told of (the window goes back) and closes streams as the
 * first byte says, from its callback, as the exchange may.
 *
 * Invariants: nothing crashes or leaks (ASan, LeakSanitizer); a stream's head fields and
 * trailers stay within their arena; data taken is never more than what came. */
#include "fuzz_support.h"

#include "config/config.h"
#include "upstream/h2up.h"
#include "upstream/upstream.h"

#define NSTREAMS 4

static struct h2up_stream *streams[NSTREAMS];
static uint8_t close_mask;

static void on_event(void *owner)
{
    int i = (int)(intptr_t)owner;
    struct h2up_stream *s = streams[i];
    if (!s)
        return;
    const uint8_t *p;
    size_t n = h2up_stream_data(s, &p);
    for (size_t k = 0; k < n; k++) /* every byte readable */
        CHECK(p[k] == p[k]);
    h2up_stream_consume(s, n);
    CHECK(s->nf <= H2UP_MAX_FIELDS && s->nt <= H2UP_MAX_FIELDS);
    CHECK(s->arena_len <= H2UP_ARENA);
    if ((close_mask >> i) & 1 || s->closed) {
        h2up_stream_close(s);
        streams[i] = NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const struct http_field req[] = {
        {.name = ":method", .value = "POST", .name_len = 7, .value_len = 4},
        {.name = ":scheme", .value = "http", .name_len = 7, .value_len = 4},
        {.name = ":authority", .value = "b", .name_len = 10, .value_len = 1},
        {.name = ":path", .value = "/s/M", .name_len = 5, .value_len = 4},
        {.name = "content-type", .value = "application/grpc", .name_len = 12, .value_len = 16},
    };
    static const struct http_field tr[] = {
        {.name = "X-Trailer", .value = "v", .name_len = 9, .value_len = 1},
    };
    struct upstream_idle idle;
    struct config_backend cb;
    memset(&idle, 0, sizeof(idle));
    memset(&cb, 0, sizeof(cb));
    cb.name = "127.0.0.1:1";
    cb.up.max_streams = 100;
    struct h2up_conn *c = h2up_test_conn(&idle, &cb);
    CHECK(c);
    uint8_t sel = data[0];
    close_mask = (uint8_t)(sel >> 4);
    int n = 1 + (sel & 3);
    for (int i = 0; i < n; i++) {
        streams[i] = h2up_test_stream(c, req, 5, (sel >> 2) & 1, (void *)(intptr_t)i, on_event);
        CHECK(streams[i]);
        if ((sel >> 2) & 1) {
            CHECK(h2up_stream_write(streams[i], "\0\0\0\0\3abc", 8) == 8);
            if (i & 1) /* the request's trailers, a HEADERS frame after the DATA */
                CHECK(h2up_stream_end_trailers(streams[i], tr, 1) == 0);
            else
                h2up_stream_end(streams[i]);
        }
    }
    size_t at = 1, step = 7 + (sel & 0x30);
    while (at < size) {
        size_t k = size - at < step ? size - at : step;
        char *piece = fuzz_dup(data + at, k);
        int rc = h2up_test_feed(c, (const uint8_t *)piece, k);
        free(piece);
        at += k;
        if (rc < 0)
            break;
    }
    for (int i = 0; i < NSTREAMS; i++)
        if (streams[i]) {
            h2up_stream_close(streams[i]);
            streams[i] = NULL;
        }
    h2up_test_free(c);
    return 0;
}
