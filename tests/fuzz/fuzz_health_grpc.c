/* libFuzzer target for the upstream HTTP/2 frame path of the gRPC health check (health_grpc.c):
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
#include "upstream/health_grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_backend cb;
    memset(&cb, 0, sizeof(cb));
    cb.host = "127.0.0.1";
    cb.name = "127.0.0.1:50051";
    cb.port = 50051;
    cb.up.health_check = CONFIG_HC_GRPC;
    cb.up.health_check_service = size && data[0] & 1 ? "golb.test.Echo" : NULL;
    const uint8_t *out;
    size_t out_len;
    struct health_grpc *g = health_grpc_new(&cb, &out, &out_len);
    CHECK(g && out_len > 24);
    size_t cut = size ? data[0] % 7 + 1 : 1; /* piece length step */
    size_t at = 1 < size ? 1 : size;
    while (at < size) {
        size_t n = cut * 13 + at % 5;
        if (n > size - at)
            n = size - at;
        char *piece = fuzz_dup(data + at, n);
        char why[200] = "";
        enum health_grpc_result r =
            health_grpc_feed(g, (const uint8_t *)piece, n, &out, &out_len, why, sizeof(why));
        free(piece);
        at += n;
        if (r != HEALTH_GRPC_MORE) {
            CHECK(why[0]);
            for (const char *c = why; *c; c++)
                CHECK(*c >= 0x20 && *c < 0x7f);
            break;
        }
    }
    health_grpc_free(g);
    (void)grpc_health_response(data, size);
    uint64_t ms;
    (void)grpc_timeout_parse((const char *)data, size < 16 ? size : 16, &ms);
    return 0;
}
