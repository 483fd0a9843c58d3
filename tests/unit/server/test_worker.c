/* Unit tests for a worker's adoption of reloads (worker_update): updates queue up while the
 * worker's loop does not run (a busy worker), each is adopted in order, intermediate generations
 * and the listening sockets replaced on the way are let go, nothing posted is lost to a later post
 * (a second reload, a drain), and what was never adopted is released by worker_destroy. Leaks are
 * counted directly: generation references (holders) and this process's descriptors
 * (/proc/self/fd); ASan's leak check (make MODE=asan unit) adds the memory. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../support/unit_support.h"
#include "base/sock.h"
#include "base/util.h"
#include "config/config.h"
#include "core/generation.h"
#include "core/worker_ctx.h"
#include "server/worker.h"
#include "upstream/backend.h"

#define WAIT_MS 10000

static struct config *load(const char *yaml)
{
    struct config *cfg = NULL;
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), stderr, &cfg), 0, "%s", yaml);
    return cfg;
}

#define ONE "workers: 1\nbackends:\n  - http://127.0.0.1:8081/\n  - http://127.0.0.1:8082/\n"
#define TWO "workers: 1\nbackends:\n  - http://127.0.0.1:8082/\n  - http://127.0.0.1:8083/\n"
#define THREE "workers: 1\nbackends:\n  - http://127.0.0.1:8083/\n"

static struct generation *gen(const char *yaml, const struct generation *prev, uint64_t id)
{
    struct generation *g = generation_new(load(yaml), prev, 1, id);
    cr_assert_not_null(g);
    return g;
}

static int holders(struct generation *g)
{
    return atomic_load(&g->holders);
}

/* A listening socket on 127.0.0.1, an ephemeral port. */
static int listener(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = sock_listen((struct sockaddr *)&sin, sizeof(sin), 16);
    cr_assert_geq(fd, 0);
    return fd;
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* worker_init's sockets by slot: plain in slot 0, tls in the first HTTPS slot, none elsewhere. */
static const int *slots(int plain, int tls)
{
    static int fds[WORKER_MAX_LISTENERS];
    for (int i = 0; i < WORKER_MAX_LISTENERS; i++)
        fds[i] = -1;
    fds[0] = plain;
    fds[WORKER_TLS_SLOT] = tls;
    return fds;
}

/* An update's slots: all unchanged. */
static void keep_all(struct worker_update *u)
{
    for (int i = 0; i < WORKER_MAX_LISTENERS; i++)
        u->listen_fd[i] = WORKER_KEEP_FD;
}

/* Queues g (with a reference for the worker, as the reload gives it) and a new plain listener. */
static void post(struct worker *w, struct generation *g, int plain_fd)
{
    struct worker_update *u = calloc(1, sizeof(*u));
    cr_assert_not_null(u);
    generation_ref(g);
    u->gen = g;
    keep_all(u);
    u->listen_fd[0] = plain_fd;
    worker_update(w, u);
}

static void stop(struct worker *w)
{
    worker_drain(w);
    cr_assert_eq(worker_join(w, util_now_ms() + WAIT_MS), 0, "the drained worker ends");
    worker_destroy(w);
}

Test(worker_update, two_reloads_before_the_loop_runs_end_on_the_last_without_leaks, .timeout = 30)
{
    struct generation *g1 = gen(ONE, NULL, 1);
    struct worker w;
    int l1 = listener();
    cr_assert_eq(worker_init(&w, 0, slots(l1, -1), 0, g1), 0);
    struct generation *g2 = gen(TWO, g1, 2), *g3 = gen(THREE, g2, 3);
    int l2 = listener(), l3 = listener();
    int fds = count_fds();
    /* The worker is busy (its loop has not run yet): both reloads are posted before it looks. */
    post(&w, g2, l2);
    post(&w, g3, l3);
    cr_assert_eq(atomic_load(&w.adopted), 1, "nothing adopted before the loop runs");
    cr_assert_eq(worker_start(&w), 0);
    cr_assert_eq(worker_wait_updated(&w, 1, 3, util_now_ms() + WAIT_MS), 0, "adopted in time");
    cr_expect_eq(w.ctx.gen, g3, "the worker ends on the last generation");
    cr_expect_eq(w.ctx.cfg, g3->cfg);
    cr_expect_eq(holders(g1), 1, "g1: the test's reference only (the worker let it go)");
    cr_expect_eq(holders(g2), 1, "g2, adopted on the way: let go too, not leaked");
    cr_expect_eq(holders(g3), 2, "g3: the test's and the worker's");
    cr_expect(!fd_open(l1), "the listener replaced by the first update is closed");
    cr_expect_eq(count_fds(), fds - 2, "l1 and l2 closed, l3 serving: no descriptor leaked");
    cr_expect_eq(w.listeners[0].io.fd, l3);
    stop(&w);
    cr_expect_eq(holders(g3), 1, "worker_destroy let go of its current one");
    generation_unref(g1);
    generation_unref(g2);
    generation_unref(g3);
}

Test(worker_update, a_drain_posted_after_an_update_loses_neither, .timeout = 30)
{
    struct generation *g1 = gen(ONE, NULL, 1);
    struct worker w;
    cr_assert_eq(worker_init(&w, 0, slots(listener(), -1), 0, g1), 0);
    struct generation *g2 = gen(TWO, g1, 2);
    post(&w, g2, WORKER_KEEP_FD);
    worker_drain(&w); /* SIGTERM right after a reload, before the worker looked */
    cr_assert_eq(worker_start(&w), 0);
    cr_assert_eq(worker_join(&w, util_now_ms() + WAIT_MS), 0, "the drain was not lost");
    cr_expect_eq(atomic_load(&w.adopted), 2, "nor the update");
    cr_expect_eq(w.ctx.gen, g2);
    cr_expect_eq(holders(g1), 1);
    worker_destroy(&w);
    cr_expect_eq(holders(g2), 1);
    generation_unref(g1);
    generation_unref(g2);
}

Test(worker_update, updates_never_adopted_are_released_by_destroy)
{
    int fds = count_fds();
    struct generation *g1 = gen(ONE, NULL, 1);
    struct worker w;
    cr_assert_eq(worker_init(&w, 0, slots(listener(), -1), 0, g1), 0);
    struct generation *g2 = gen(TWO, g1, 2), *g3 = gen(THREE, g2, 3);
    int l2 = listener(), l3 = listener();
    post(&w, g2, l2);
    post(&w, g3, l3);
    cr_expect_eq(holders(g2), 2);
    worker_destroy(&w); /* the loop never ran (stopped before it looked) */
    cr_expect_eq(holders(g1), 1);
    cr_expect_eq(holders(g2), 1, "the queued reference is dropped");
    cr_expect_eq(holders(g3), 1);
    cr_expect_eq(count_fds(), fds, "the worker's descriptors and the queued listeners closed");
    generation_unref(g1);
    generation_unref(g2);
    generation_unref(g3);
}

Test(worker_update, a_pinned_generation_outlives_adoption_until_its_last_request, .timeout = 30)
{
    struct generation *g1 = gen(ONE, NULL, 1);
    struct worker w;
    cr_assert_eq(worker_init(&w, 0, slots(listener(), -1), 0, g1), 0);
    worker_ctx_pin(&w.ctx, g1); /* a request started on g1 (before the thread runs: no race) */
    struct generation *g2 = gen(TWO, g1, 2), *g3 = gen(THREE, g2, 3);
    post(&w, g2, WORKER_KEEP_FD);
    post(&w, g3, WORKER_KEEP_FD);
    cr_assert_eq(worker_start(&w), 0);
    cr_assert_eq(worker_wait_updated(&w, 1, 3, util_now_ms() + WAIT_MS), 0);
    cr_expect_eq(holders(g1), 2, "g1 is kept for the request still on it");
    cr_expect_eq(holders(g2), 1, "g2 had no request: let go at once");
    worker_drain(&w);
    cr_assert_eq(worker_join(&w, util_now_ms() + WAIT_MS), 0);
    worker_ctx_unpin(&w.ctx, g1); /* the request ends (the thread is gone: no race) */
    cr_expect_eq(holders(g1), 1, "its last request let it go");
    worker_destroy(&w);
    generation_unref(g1);
    generation_unref(g2);
    generation_unref(g3);
}

Test(worker_update, wait_updated_counts_the_workers_behind)
{
    struct generation *g1 = gen(ONE, NULL, 1);
    struct worker w;
    cr_assert_eq(worker_init(&w, 0, NULL, 0, g1), 0);
    w.started = true; /* as if its thread ran but stayed busy: never looks at its queue */
    struct generation *g2 = gen(TWO, g1, 2);
    post(&w, g2, WORKER_KEEP_FD);
    uint64_t t0 = util_now_ms();
    cr_expect_eq(worker_wait_updated(&w, 1, 2, t0 + 50), 1, "one worker behind at the deadline");
    cr_expect_geq(util_now_ms() - t0, 50);
    w.started = false;
    worker_destroy(&w);
    generation_unref(g1);
    generation_unref(g2);
}

Test(worker_update, a_connection_waiting_on_a_new_tls_listener_meets_the_new_generation)
{
    /* The reload adds the HTTPS listener; a client connected before the worker adopted it is
     * accepted during the adoption. It must be served by the generation that has the TLS
     * settings, not by the one before (which has none). */
    char dir[] = "/tmp/golb-worker-unit-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-days 1 -keyout k.pem -out c.pem -subj /CN=t -addext subjectAltName=DNS:t.test "
             ">/dev/null 2>&1", dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "workers: 1\ntls:\n  listen: 127.0.0.1:0\n  certificates:\n"
             "    - certFile: %s/c.pem\n      keyFile: %s/k.pem\n"
             "backends:\n  - http://127.0.0.1:8081/\n", dir, dir);
    struct generation *g1 = gen(ONE, NULL, 1);
    struct worker w;
    cr_assert_eq(worker_init(&w, 0, slots(listener(), -1), 0, g1), 0);
    struct generation *g2 = gen(yaml, g1, 2);
    int tls_fd = listener();
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    cr_assert_eq(getsockname(tls_fd, (struct sockaddr *)&sin, &len), 0);
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(client, (struct sockaddr *)&sin, sizeof(sin)), 0, "queued, not accepted");
    struct worker_update *u = calloc(1, sizeof(*u));
    generation_ref(g2);
    *u = (struct worker_update){.gen = g2, .https_port = ntohs(sin.sin_port)};
    keep_all(u);
    u->listen_fd[WORKER_TLS_SLOT] = tls_fd;
    worker_update(&w, u);
    cr_assert_eq(worker_start(&w), 0);
    cr_assert_eq(worker_wait_updated(&w, 1, 2, util_now_ms() + WAIT_MS), 0);
    cr_expect_eq(w.ctx.https_port, ntohs(sin.sin_port), "redirects name the new listener");
    /* the worker took the waiting connection (a TLS session now waits for the handshake) */
    const char hello[] = "\x16\x03\x01"; /* not a whole record: the handshake just waits */
    cr_expect_eq(write(client, hello, 3), 3);
    close(client);
    stop(&w);
    cr_expect_eq(holders(g1), 1);
    cr_expect_eq(holders(g2), 1);
    generation_unref(g1);
    generation_unref(g2);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
