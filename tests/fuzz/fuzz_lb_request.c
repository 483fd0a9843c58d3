/* libFuzzer target for balancer_request_init: the hash key and sticky cookie read from a parsed
 * request head (Cookie lists, query strings, header lookup) under every hashKey kind.
 *
 * Invariants: the sticky backend is -1 or a configured backend, and only when the cookie value is
 * that backend's token; a key is found only where the request has one, and the same request gives
 * the same key every time (the hash is fixed, not per process); whatever the input, nothing reads
 * outside the head (exact-size heap copies for ASan). */
#include "fuzz_support.h"

#include "upstream/backend.h"
#include "lb/balancer.h"
#include "config/config.h"
#include "http/http1.h"
#include "base/log.h"

#define NB 3

static struct config cfg;
static struct config_backend cbs[NB];
static struct backend_table *table;
static struct balancer bal[5];
static struct config_sticky sticky = {.cookie = "GOLBSRV", .http_only = true};

static void setup(void)
{
    static const char *names[NB] = {"10.0.0.1:80", "10.0.0.2:80", "[::1]:8080"};
    log_set_level(LOG_ERROR);
    for (int i = 0; i < NB; i++)
        cbs[i] = (struct config_backend){.name = (char *)names[i], .weight = 1};
    cfg.nbackends = NB;
    cfg.backends = cbs;
    cfg.workers = 1;
    cfg.balance = "hash";
    cfg.sticky = sticky;
    table = backend_table_new(&cfg, NULL, 1);
    CHECK(table);
    static char *key_names[5] = {NULL, NULL, "X-User", "session", "id"};
    for (int k = 0; k < 5; k++) {
        cfg.hash_key = (enum config_hash_key)k;
        cfg.hash_key_name = key_names[k];
        CHECK(balancer_init_config(&bal[k], &cfg, table) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!table)
        setup();
    char *buf = fuzz_dup(data, size);
    struct http1_request req;
    ssize_t r = http1_parse_request(buf, size, 0, NULL, &req);
    if (r > 0) {
        for (int k = 0; k < 5; k++) {
            struct lb_request a, b;
            balancer_request_init(&bal[k], &a, &req.rq, "127.0.0.1", 9, 0);
            balancer_request_init(&bal[k], &b, &req.rq, "127.0.0.1", 9, 0);
            CHECK(a.sticky >= -1 && a.sticky < NB);
            CHECK(a.has_key == b.has_key && a.key == b.key && a.sticky == b.sticky);
            if (k <= 1)
                CHECK(a.has_key); /* clientAddress and uri always have a key */
            int idx = balancer_pick(&bal[k], &a, NULL);
            CHECK(idx >= -1 && idx < NB);
            char cookie[256];
            size_t n = balancer_set_cookie(&bal[k], &a, idx < 0 ? 0 : idx, cookie, sizeof(cookie));
            CHECK(n < sizeof(cookie));
        }
    }
    /* the raw input as a cookie value: only a configured backend's own token matches */
    int s = balancer_sticky_lookup(&bal[0], buf, size);
    CHECK(s == -1 || (size == 16 && memcmp(bal[0].tokens[s], buf, 16) == 0));
    free(buf);
    return 0;
}
