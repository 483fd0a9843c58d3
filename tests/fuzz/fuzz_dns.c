/* libFuzzer target for dns_msg_min_ttl (the smallest TTL of a DNS message's answers, read from
 * c-ares' raw SRV answer) and for dns_answer's set handling.
 *
 * Invariants: the reader returns 0 or -EBADMSG; on an exact-size heap copy (ASan sees any read
 * past the end). A prefix that parses gives exactly what the whole gives (the reader never looks
 * past what it needs). Then the input, cut into 8-byte records, is a made-up answer (IPv4
 * address, port, weight, priority): the published set is at most DNS_SET_MAX long, sorted
 * without duplicates, each entry one of the answer's; the same answer again changes nothing. */
#include "fuzz_support.h"
#include "base/log.h"
#include "config/config.h"
#include "upstream/dns.h"

#include <netinet/in.h>

static struct dns *d;
static struct config *cfg;

static void init(void)
{
    static const char yaml[] = "backends:\n  - url: http://f.test/\n    resolve: srv\n";
    CHECK(config_load_buffer("f", yaml, sizeof(yaml) - 1, stderr, &cfg) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *m = fuzz_dup(data, size);
    uint32_t ttl = 0, ttl2 = 0;
    int rc = dns_msg_min_ttl((const unsigned char *)m, size, &ttl);
    CHECK(rc == 0 || rc == -EBADMSG);
    free(m);
    size_t cut = size / 2;
    char *p = fuzz_dup(data, cut);
    int rc2 = dns_msg_min_ttl((const unsigned char *)p, cut, &ttl2);
    free(p);
    CHECK(rc2 == 0 || rc2 == -EBADMSG);
    if (rc2 == 0)
        CHECK(rc == 0 && ttl == ttl2);

    if (!cfg) {
        log_set_level(LOG_ERROR);
        init();
    }
    if (!d) {
        struct dns_params prm = {1, 300, 0};
        d = dns_new(&prm);
        CHECK(d && dns_sync(d, cfg, true) == 1);
    }
    int n = (int)(size / 8);
    struct dns_target *t = calloc((size_t)n + 1, sizeof(*t));
    CHECK(t);
    for (int i = 0; i < n; i++) {
        const uint8_t *r = data + 8 * i;
        struct sockaddr_in *a = (struct sockaddr_in *)&t[i].addr;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, r, 4);
        t[i].addrlen = sizeof(*a);
        t[i].port = (uint16_t)(r[4] << 8 | r[5]);
        t[i].weight = r[6];
        t[i].priority = r[7] & 3;
    }
    struct dns_query q[1];
    uint64_t next;
    dns_due(d, UINT64_MAX / 2, q, 1, &next);
    dns_answer(d, CONFIG_RESOLVE_SRV, "f.test", 1000, DNS_OK, t, n, ttl);
    CHECK(!dns_answer(d, CONFIG_RESOLVE_SRV, "f.test", 1000, DNS_OK, t, n, ttl));
    struct dns_target out[DNS_SET_MAX];
    int k = dns_lookup(d, CONFIG_RESOLVE_SRV, "f.test", out, DNS_SET_MAX);
    CHECK(k >= 0 && k <= DNS_SET_MAX && k <= (n ? n : k));
    for (int i = 1; i < k; i++) {
        const struct sockaddr_in *x = (const void *)&out[i - 1].addr,
                                 *y = (const void *)&out[i].addr;
        int c = memcmp(&x->sin_addr, &y->sin_addr, 4);
        CHECK(c < 0 || (c == 0 && out[i - 1].port < out[i].port));
    }
    free(t);
    return 0;
}
