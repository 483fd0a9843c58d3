/* libFuzzer target for the HTTP/2 client session (h2session, h2stream): the input is everything
 * a client sends after the connection preface, fed to a real session over a socketpair (the fake
 * transport) in pieces cut where the input says, with golb's output read and dropped between
 * pieces, one turn of the worker's loop per piece. The worker has one backend, down, so every request that passes the session's checks
 * gets its 503 from a real exchange without touching the network; the streams it refuses, the
 * frames nghttp2 rejects and the floods it counts all run for real.
 *
 * Invariants: nothing crashes or leaks (ASan, LeakSanitizer), every buffer taken from the
 * worker's pool is back once the session is closed, and the connection count returns to zero. */
#include "fuzz_support.h"

#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/loop.h"
#include "config/config.h"
#include "core/exchange.h"
#include "core/generation.h"
#include "core/worker_ctx.h"
#include "lb/balancer.h"
#include "session/h2session.h"
#include "upstream/backend.h"
#include "upstream/upstream.h"

static struct worker_ctx wk;
static struct config cfg;
static struct config_backend cb;
static struct generation gen;
static struct generation_pool gen_pool;
static struct generation_worker slots[1];

static struct loop_timer stop;

static void on_stop(struct loop_timer *t)
{
    (void)t;
    loop_stop(wk.loop);
}

static void setup(void)
{
    log_set_level(LOG_ERROR + 1);
    cb = (struct config_backend){.name = "b0", .weight = 1};
    cfg.nbackends = 1;
    cfg.backends = &cb;
    cfg.workers = 1;
    cfg.connect_timeout_ms = cfg.upstream_timeout_ms = cfg.body_timeout_ms = 1000;
    cfg.client_header_timeout_ms = cfg.keepalive_timeout_ms = cfg.tunnel_timeout_ms = 1000;
    cfg.max_header_size = 8192;
    cfg.max_request_line = 4096;
    static char *websocket_only[] = {"websocket", NULL};
    cfg.upgrade_protocols = websocket_only;
    cfg.http2 = (struct config_http2){.max_concurrent_streams = 16,
                                      .initial_window_size = 65535,
                                      .idle_timeout_ms = 1000};
    gen.cfg = &cfg;
    gen.table = backend_table_new(&cfg, NULL, 1);
    CHECK(gen.table);
    atomic_store(&gen.table->b[0]->state, BACKEND_DOWN);
    CHECK(balancer_init(&gen.balancer, &lb_rr_ops, gen.table) == 0);
    /* the default pool, as generation_new builds it: an exchange starts on pools[0] */
    gen_pool = (struct generation_pool){.name = "default", .table = gen.table,
                                        .balancer = &gen.balancer};
    gen_pool.cfg = cfg;
    gen.pools = &gen_pool;
    gen.npools = 1;
    gen.has_default = true;
    gen.nworkers = 1;
    gen.pw = slots;
    atomic_init(&gen.holders, 1);
    wk.cfg = &cfg;
    wk.gen = &gen;
    wk.loop = loop_new();
    CHECK(wk.loop);
    buf_pool_init(&wk.bufs, 16384, 8);
    pipe_pool_init(&wk.pipes, 2, 0);
    wk.upstreams = upstream_pool_new(wk.loop, 8, 60000);
    loop_timer_init(&stop, on_stop);
}

/* Reads and drops what golb wrote; returns false when golb closed its end. */
static bool drain(int fd)
{
    char sink[65536];
    for (;;) {
        ssize_t n = read(fd, sink, sizeof(sink));
        if (n > 0)
            continue;
        return n < 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    wk.nclients = 1;
    struct h2session_conn t = {.fd = sv[0], .ip = "192.0.2.1", .iplen = 9, .writable = true};
    CHECK(write(sv[1], H2SESSION_PREFACE, H2SESSION_PREFACE_LEN) == H2SESSION_PREFACE_LEN);
    h2session_take(&wk, &t);
    size_t cuts[FUZZ_NSPLITS + 1];
    fuzz_splits(data, size, cuts);
    cuts[FUZZ_NSPLITS] = size;
    size_t at = 0;
    bool open = true;
    for (int i = 0; i <= FUZZ_NSPLITS && open && wk.sessions; i++) {
        size_t end = cuts[i] < at ? at : cuts[i];
        if (end > at) {
            ssize_t n = write(sv[1], data + at, end - at);
            CHECK(n == (ssize_t)(end - at) || n < 0);
            at = end;
        }
        /* one turn of the worker's loop: the session's events, its tasks, then stop */
        loop_timer_after(wk.loop, &stop, 0);
        loop_run(wk.loop);
        open = drain(sv[1]);
    }
    worker_ctx_close_sessions(&wk);
    loop_run_deferred(wk.loop);
    close(sv[1]);
    CHECK(wk.nclients == 0);
    CHECK(wk.bufs.outstanding == 0);
    return 0;
}
