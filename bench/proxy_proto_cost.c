/* proxy_proto_cost — what parsing (and writing) a PROXY protocol header costs, in ns per header.
 *
 *   make bench-micro            (or: build/release/bench/proxy_proto_cost [ITERATIONS])
 *
 * Each case parses the same header ITERATIONS times (default 1,000,000) in 7 rounds and prints
 * the fastest round's ns per call, which on a shared machine is the figure least disturbed by
 * other load (the median is printed beside it). The header sits in a buffer followed by an HTTP
 * request, as on a real connection. It is a figure to compare with the CPU a new connection costs
 * (accept, epoll registration, reads, the upstream connect...), not a timed assertion. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/proxy_proto.h"

#define ROUNDS 7

static volatile size_t sink;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum op { PARSE, WRITE_V1, WRITE_V2 };

struct bench_case {
    const char *name;
    enum op op;
    char buf[512];
    size_t len; /* header + request bytes */
    size_t header;
};

static struct sockaddr_storage src4, dst4;

static void run(struct bench_case *c, long iters)
{
    double ns[ROUNDS];
    struct proxy_proto_result r;
    char out[256];
    for (int k = 0; k < ROUNDS; k++) {
        uint64_t t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            ssize_t n;
            if (c->op == PARSE)
                n = proxy_proto_parse(c->buf, c->len, 0, &r);
            else if (c->op == WRITE_V1)
                n = proxy_proto_write_v1(out, sizeof(out), (struct sockaddr *)&src4,
                                         (struct sockaddr *)&dst4);
            else
                n = proxy_proto_write_v2(out, sizeof(out), (struct sockaddr *)&src4,
                                         (struct sockaddr *)&dst4, NULL, 0, 0);
            if (n <= 0) {
                fprintf(stderr, "%s: %zd (%s)\n", c->name, n, c->op == PARSE ? r.err_reason : "");
                exit(1);
            }
            sink += (size_t)n;
            c->header = c->op == PARSE ? c->header : (size_t)n;
            __asm__ volatile("" ::: "memory"); /* one real call per iteration */
        }
        ns[k] = (double)(now_ns() - t0) / (double)iters;
    }
    qsort(ns, ROUNDS, sizeof(ns[0]), cmp_double);
    printf("  %-44s %4zu B  %7.1f ns  (median %.1f)\n", c->name, c->header, ns[0], ns[ROUNDS / 2]);
}

/* buf = header (written by the module's writer, which the unit tests check) + a request */
static void add_request(struct bench_case *c, ssize_t header)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    if (header <= 0) {
        fprintf(stderr, "%s: writer failed: %zd\n", c->name, header);
        exit(1);
    }
    c->header = (size_t)header;
    memcpy(c->buf + header, req, sizeof(req) - 1);
    c->len = (size_t)header + sizeof(req) - 1;
}

static void v2_case(struct bench_case *c, const char *name, const struct sockaddr_storage *s,
                    const struct sockaddr_storage *d, const struct proxy_proto_tlv *t, size_t nt,
                    unsigned flags)
{
    c->name = name;
    c->op = PARSE;
    add_request(c, proxy_proto_write_v2(c->buf, sizeof(c->buf), (const struct sockaddr *)s,
                                        (const struct sockaddr *)d, t, nt, flags));
}

static void v1_case(struct bench_case *c, const char *name, const char *line)
{
    c->name = name;
    c->op = PARSE;
    memcpy(c->buf, line, strlen(line));
    add_request(c, (ssize_t)strlen(line));
}

static struct sockaddr_storage addr(const char *ip, unsigned port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &a->sin6_addr);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &a->sin_addr);
    }
    return ss;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 1000000;
    if (iters <= 0)
        iters = 1000000;
    src4 = addr("203.0.113.77", 51442);
    dst4 = addr("10.0.0.5", 443);
    struct sockaddr_storage src6 = addr("2001:db8:85a3::8a2e:370:7334", 51442);
    struct sockaddr_storage dst6 = addr("2001:db8::5", 443);

    static const char id[] = "4f1c2a9e-8b7d-4c3e-9a6f-2d1e0b7c5a48"; /* a 36-byte UUID */
    static const char vpce[] = "\x01vpce-08d2bf15fac5001c9";
    uint8_t ssl[64] = {0x01, 0, 0, 0, 0, 0x21, 0x00, 0x07};
    memcpy(ssl + 8, "TLSv1.3", 7);
    struct proxy_proto_tlv uid = {PROXY_PROTO_TLV_UNIQUE_ID, sizeof(id) - 1, id};
    struct proxy_proto_tlv aws[] = {{0xea, sizeof(vpce) - 1, vpce}, {PROXY_PROTO_TLV_NOOP, 36, ""}};
    static const char zeros[36];
    aws[1].value = zeros;
    struct proxy_proto_tlv many[] = {
        {PROXY_PROTO_TLV_ALPN, 2, "h2"},
        {PROXY_PROTO_TLV_AUTHORITY, 15, "www.example.com"},
        uid,
        {PROXY_PROTO_TLV_SSL, 15, (const char *)ssl},
    };

    static struct bench_case cases[12];
    int n = 0;
    v2_case(&cases[n++], "v2 PROXY TCP4, no TLV", &src4, &dst4, NULL, 0, 0);
    v2_case(&cases[n++], "v2 PROXY TCP4 + UNIQUE_ID TLV", &src4, &dst4, &uid, 1, 0);
    v2_case(&cases[n++], "v2 PROXY TCP6 + UNIQUE_ID TLV", &src6, &dst6, &uid, 1, 0);
    v2_case(&cases[n++], "v2 PROXY TCP4 + CRC32C (as AWS NLB sends)", &src4, &dst4, aws, 2,
            PROXY_PROTO_WRITE_CRC32C);
    v2_case(&cases[n++], "v2 PROXY TCP4 + ALPN, AUTHORITY, ID, SSL", &src4, &dst4, many, 4, 0);
    v2_case(&cases[n++], "v2 LOCAL (health check)", NULL, NULL, NULL, 0, 0);
    v1_case(&cases[n++], "v1 TCP4", "PROXY TCP4 203.0.113.77 10.0.0.5 51442 443\r\n");
    v1_case(&cases[n++], "v1 TCP6",
            "PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::5 51442 443\r\n");
    v1_case(&cases[n++], "v1 UNKNOWN (health check)", "PROXY UNKNOWN\r\n");
    cases[n] = (struct bench_case){.name = "write v1 TCP4", .op = WRITE_V1};
    n++;
    cases[n] = (struct bench_case){.name = "write v2 TCP4", .op = WRITE_V2};
    n++;

    printf("proxy_proto: %ld calls per round, fastest of %d rounds\n", iters, ROUNDS);
    for (int i = 0; i < n; i++)
        run(&cases[i], iters);
    return sink == 0;
}
