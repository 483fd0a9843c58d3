/* libFuzzer target for the upstream HTTP/2 frame path of the health checks over HTTP/2
 * (health_h2.c: `healthCheck: grpc`, and `http` on a `protocol: h2` pool, by the input's first
 * byte):
 * the input is what a backend sends back (its SETTINGS, HEADERS, DATA, trailers, resets, GOAWAY,
 * or anything else), fed to a fresh check's nghttp2 client session in pieces cut where the input
 * says, with the frames it wants to send back taken and dropped between pieces. Then the same
 * bytes go to the message decoder and the grpc-timeout parser (http/grpc.c).
 *
 * Invariants: nothing crashes or leaks (ASan, LeakSanitizer); a verdict comes with a reason that
 * is printable ASCII; once a verdict came, nothing more is fed. */
#include "fuzz_support.h"

#include <stdio.h>

#include "config/config.h"
#include "http/grpc.h"
#include "upstream/health_h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_backend cb;
    memset(&cb, 0, sizeof(cb));
    cb.host = "127.0.0.1";
    cb.name = "127.0.0.1:50051";
    cb.port = 50051;
    cb.up.health_check = size && data[0] & 2 ? CONFIG_HC_HTTP : CONFIG_HC_GRPC;
    cb.up.protocol = CONFIG_PROTO_H2;
    cb.health_path = size && data[0] & 4 ? "/healthz?full=1" : NULL;
    cb.up.health_check_service = size && data[0] & 1 ? "golb.test.Echo" : NULL;
    const uint8_t *out;
    size_t out_len;
    struct health_h2 *g = health_h2_new(&cb, &out, &out_len);
    CHECK(g && out_len > 24); /* the preface and more */
    size_t cut = size ? data[0] % 7 + 1 : 1; /* piece length step */
    size_t at = 1 < size ? 1 : size;
    while (at < size) {
        size_t n = cut * 13 + at % 5;
        if (n > size - at)
            n = size - at;
        char *piece = fuzz_dup(data + at, n);
        char why[200] = "";
        enum health_h2_result r =
            health_h2_feed(g, (const uint8_t *)piece, n, &out, &out_len, why, sizeof(why));
        free(piece);
        at += n;
        if (r != HEALTH_H2_MORE) {
            CHECK(why[0]);
            for (const char *c = why; *c; c++)
                CHECK(*c >= 0x20 && *c < 0x7f);
            break;
        }
    }
    health_h2_free(g);
    (void)grpc_health_response(data, size);
    uint64_t ms;
    (void)grpc_timeout_parse((const char *)data, size < 16 ? size : 16, &ms);
    return 0;
}
