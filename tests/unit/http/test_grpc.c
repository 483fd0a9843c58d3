/* Unit tests for grpc: content types, the grpc-timeout parser (every unit, rounding, bounds,
 * garbage), the HTTP → gRPC status table, and the health messages against bytes a protobuf
 * encoder produces (and hostile ones). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>

#include "http/grpc.h"
#include "http/http.h"

Test(grpc, content_type)
{
    cr_expect(grpc_content_type("application/grpc", 16));
    cr_expect(grpc_content_type("application/grpc+proto", 22));
    cr_expect(grpc_content_type("Application/GRPC;charset=x", 26));
    cr_expect(grpc_content_type("application/grpc-web+proto", 26));
    cr_expect(!grpc_content_type("application/grpcx", 17));
    cr_expect(!grpc_content_type("application/json", 16));
    cr_expect(!grpc_content_type("application/grp", 15));
}

static uint64_t to(const char *s)
{
    uint64_t ms = 12345;
    cr_assert_eq(grpc_timeout_parse(s, strlen(s), &ms), 0, "%s", s);
    return ms;
}

static void bad(const char *s)
{
    uint64_t ms = 7;
    cr_expect_eq(grpc_timeout_parse(s, strlen(s), &ms), -1, "%s", s);
    cr_expect_eq(ms, 7);
}

Test(grpc, timeout)
{
    cr_expect_eq(to("1H"), 3600000);
    cr_expect_eq(to("2M"), 120000);
    cr_expect_eq(to("3S"), 3000);
    cr_expect_eq(to("250m"), 250);
    cr_expect_eq(to("1500u"), 2);
    cr_expect_eq(to("1u"), 1);
    cr_expect_eq(to("1n"), 1);
    cr_expect_eq(to("0m"), 0);
    cr_expect_eq(to("99999999H"), 99999999ull * 3600000);
    cr_expect_eq(to("00000010S"), 10000);
    bad("");
    bad("S");
    bad("10");
    bad("10s");
    bad("100000000S"); /* 9 digits */
    bad("-1S");
    bad("1 S");
    bad("1.5S");
}

Test(grpc, request)
{
    struct http_field f[] = {
        {.name = "grpc-timeout", .value = "100m", .name_len = 12, .value_len = 4},
        {.name = "content-type", .value = "application/grpc", .name_len = 12, .value_len = 16},
    };
    struct http_request rq = {.fields = f, .num_fields = 2};
    uint64_t ms;
    cr_expect(grpc_request(&rq, &ms));
    cr_expect_eq(ms, 100);
    f[0].value = "100x";
    cr_expect(grpc_request(&rq, &ms));
    cr_expect_eq(ms, UINT64_MAX);
    f[0].value = "100m";
    f[1].value = "application/json";
    cr_expect(!grpc_request(&rq, &ms));
    cr_expect_eq(ms, UINT64_MAX);
}

Test(grpc, codes)
{
    cr_expect_eq(grpc_code_of_http(503), GRPC_UNAVAILABLE);
    cr_expect_eq(grpc_code_of_http(502), GRPC_UNAVAILABLE);
    cr_expect_eq(grpc_code_of_http(504), GRPC_DEADLINE_EXCEEDED);
    cr_expect_eq(grpc_code_of_http(429), GRPC_RESOURCE_EXHAUSTED);
    cr_expect_eq(grpc_code_of_http(403), GRPC_PERMISSION_DENIED);
    cr_expect_eq(grpc_code_of_http(404), GRPC_UNIMPLEMENTED);
    cr_expect_eq(grpc_code_of_http(500), GRPC_UNKNOWN);
    cr_expect_str_eq(grpc_code_name(14), "UNAVAILABLE");
    cr_expect_str_eq(grpc_code_name(4), "DEADLINE_EXCEEDED");
    cr_expect_str_eq(grpc_code_name(16), "UNAUTHENTICATED");
    cr_expect_null(grpc_code_name(17));
    cr_expect_null(grpc_code_name(-1));
}

Test(grpc, health_request)
{
    uint8_t out[512];
    cr_assert_eq(grpc_health_request("", 0, out, sizeof(out)), 5);
    cr_expect_eq(memcmp(out, "\0\0\0\0\0", 5), 0);
    size_t n = grpc_health_request("users.v1.Users", 14, out, sizeof(out));
    cr_assert_eq(n, 5 + 2 + 14);
    cr_expect_eq(memcmp(out, "\0\0\0\0\x10\x0a\x0eusers.v1.Users", n), 0);
    char big[200];
    memset(big, 'a', sizeof(big));
    n = grpc_health_request(big, 200, out, sizeof(out));
    cr_assert_eq(n, 5 + 3 + 200);
    cr_expect_eq(out[4], 203);
    cr_expect_eq(out[5], 0x0a);
    cr_expect_eq(out[6], 0x80 | (200 & 0x7f));
    cr_expect_eq(out[7], 1);
    cr_expect_eq(grpc_health_request(big, 200, out, 100), 0);
}

static int resp(const char *p, size_t n)
{
    return grpc_health_response((const uint8_t *)p, n);
}

Test(grpc, health_response)
{
    cr_expect_eq(resp("\0\0\0\0\x02\x08\x01", 7), GRPC_SERVING);
    cr_expect_eq(resp("\0\0\0\0\x02\x08\x02", 7), GRPC_NOT_SERVING);
    cr_expect_eq(resp("\0\0\0\0\x00", 5), GRPC_SERVING_UNKNOWN); /* proto3 default: UNKNOWN */
    /* unknown fields skipped: field 2 string "ab", field 3 fixed32, then status */
    cr_expect_eq(resp("\0\0\0\0\x0b\x12\x02" "ab\x1d\x01\x02\x03\x04\x08\x01", 16), GRPC_SERVING);
    cr_expect_eq(resp("\1\0\0\0\x02\x08\x01", 7), -1);       /* compressed */
    cr_expect_eq(resp("\0\0\0\0\x03\x08\x01", 7), -1);       /* length says more */
    cr_expect_eq(resp("\0\0\0\0\x01\x08", 6), -1);           /* cut varint */
    cr_expect_eq(resp("\0\0\0\0\x02\x12\x05", 7), -1);       /* string past the end */
    cr_expect_eq(resp("\0\0\0\0\x02\x0f\x01", 7), -1);       /* wire type 7 */
    cr_expect_eq(resp("\0\0\0\0\x02\x00\x01", 7), -1);       /* field 0 */
    cr_expect_eq(resp("\0\0\0", 3), -1);
    cr_expect_eq(resp("\0\0\0\0\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 16), -1);
}

Test(grpc, status_field)
{
    struct http_field f[] = {
        {.name = "grpc-message", .value = "x", .name_len = 12, .value_len = 1},
        {.name = "Grpc-Status", .value = "14", .name_len = 11, .value_len = 2},
    };
    cr_expect_eq(grpc_status_field(f, 2), 14);
    cr_expect_eq(grpc_status_field(f, 1), -1);
    f[1].value = "0";
    f[1].value_len = 1;
    cr_expect_eq(grpc_status_field(f, 2), 0);
    f[1].value = "07";
    f[1].value_len = 2;
    cr_expect_eq(grpc_status_field(f, 2), -1);
    f[1].value = "100";
    f[1].value_len = 3;
    cr_expect_eq(grpc_status_field(f, 2), -1);
}
