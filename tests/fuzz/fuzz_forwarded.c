/* libFuzzer target for forwarded_client (trustedProxies): arbitrary bytes as the values of up to
 * four X-Forwarded-For fields ("\n" separates fields, the first line is the peer), against a
 * fixed list of trusted ranges.
 *
 * Invariants: the answer is the peer, or one of the chain's entries in normal form, and is itself
 * an address (or the peer as given); an untrusted peer is always its own answer. Exact-size heap copies, so ASan
 * sees any read past the end. */
#include "fuzz_support.h"

#include <stdlib.h>
#include <string.h>

#include "base/cidr.h"
#include "http/forwarded.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cidr trusted[3], any[2];
    static bool init;
    if (!init) {
        cidr_parse("0.0.0.0/0", 9, &any[0]);
        cidr_parse("::/0", 4, &any[1]);
        cidr_parse("10.0.0.0/8", 10, &trusted[0]);
        cidr_parse("2001:db8::/32", 13, &trusted[1]);
        cidr_parse("127.0.0.1", 9, &trusted[2]);
        init = true;
    }
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    const char *peer = copy;
    size_t peer_len = size;
    const char *nl = memchr(copy, '\n', size);
    struct http_field f[4];
    size_t nf = 0;
    if (nl) {
        peer_len = (size_t)(nl - copy);
        const char *p = nl + 1, *end = copy + size;
        while (p <= end && nf < 4) {
            const char *e = memchr(p, '\n', (size_t)(end - p));
            if (!e)
                e = end;
            f[nf] = (struct http_field){.name = "X-Forwarded-For",
                                        .name_len = 15,
                                        .value = p,
                                        .value_len = (uint32_t)(e - p),
                                        .id = HTTP_F_X_FORWARDED_FOR};
            nf++;
            p = e + 1;
        }
    }
    struct http_request req = {.fields = f, .num_fields = nf};
    char out[64];
    size_t n = forwarded_client(&req, trusted, 3, peer, peer_len, out, sizeof(out));
    CHECK(n < sizeof(out) && out[n] == '\0');
    bool peer_trusted = forwarded_trusted(trusted, 3, peer, peer_len);
    if (!peer_trusted)
        CHECK(n == (peer_len < sizeof(out) ? peer_len : sizeof(out) - 1) &&
              memcmp(out, peer, n) == 0);
    else if (!(n == peer_len && memcmp(out, peer, n) == 0))
        CHECK(forwarded_trusted(any, 2, out, n)); /* an entry, in normal form: an address */
    free(copy);
    return 0;
}
