/* Unit tests for what one HTTP/1 session may cost its worker: the byte budget of the lingering
 * close (LOOP_IO_BUDGET per call, the rest after a loop_yield) and the counters of a worker
 * without any (w->m is NULL in unit tests: the session counts only through obs.h, which checks).
 * Real sessions (h1session_accept) on loopback sockets; the loop is not run, the test drives it.
 * The file includes h1session.c to see struct client. */
#include <criterion/criterion.h>

#include <netinet/in.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "../../../src/session/h1session.c"
#include "core/generation.h"
#include "../../support/unit_support.h"

static struct worker_ctx wk;
static struct config wk_cfg;
static struct generation wk_gen;
static struct generation_worker wk_slots[1];

static void setup(void)
{
    memset(&wk, 0, sizeof(wk));
    memset(&wk_cfg, 0, sizeof(wk_cfg));
    memset(&wk_gen, 0, sizeof(wk_gen));
    memset(wk_slots, 0, sizeof(wk_slots));
    wk_cfg.client_header_timeout_ms = wk_cfg.keepalive_timeout_ms = 10000;
    wk_cfg.body_timeout_ms = 10000;
    wk_cfg.max_header_size = 16384;
    wk_cfg.max_request_line = 8192;
    wk_gen.cfg = &wk_cfg;
    wk_gen.nworkers = 1;
    wk_gen.pw = wk_slots;
    atomic_init(&wk_gen.holders, 1);
    wk.gen = &wk_gen;
    wk.cfg = &wk_cfg;
    wk.loop = loop_new();
    cr_assert_not_null(wk.loop);
    buf_pool_init(&wk.bufs, 16384, 8);
    wk.nclients = 1; /* what the worker counted at accept */
}

static void teardown(void)
{
    worker_ctx_close_sessions(&wk);
    loop_run_deferred(wk.loop); /* the frees */
    cr_expect_eq(wk.bufs.outstanding, 0, "buffer leak");
    buf_pool_destroy(&wk.bufs);
    loop_free(wk.loop);
}

TestSuite(h1session_limits, .init = setup, .fini = teardown);

/* A connected loopback TCP pair: *golb is the accepted end (non-blocking), the return value the
 * client's. Both with large buffers, so that much can wait in golb's receive queue. */
static int tcp_pair(int *golb)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    int big = 4 << 20;
    setsockopt(c, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    *golb = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    cr_assert_geq(*golb, 0);
    setsockopt(*golb, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    close(l);
    return c;
}

static int unread(int fd)
{
    int n = 0;
    cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

static int outq(int fd)
{
    int n = 0;
    cr_assert_eq(ioctl(fd, SIOCOUTQ, &n), 0);
    return n;
}

static struct client *the_client(void)
{
    cr_assert_not_null(wk.sessions);
    return client_of(wk.sessions);
}

Test(h1session_limits, a_lingering_close_reads_at_most_its_budget_per_call)
{
    int fd, cli = tcp_pair(&fd);
    /* A malformed request (400, then the lingering close), followed by much more than one call's
     * budget of garbage already in golb's receive queue. */
    static char junk[1 << 20];
    memset(junk, 'j', sizeof(junk));
    memcpy(junk, "BAD\r\n\r\n", 7);
    int fl = fcntl(cli, F_GETFL);
    fcntl(cli, F_SETFL, fl | O_NONBLOCK);
    size_t sent = 0;
    while (sent < sizeof(junk)) {
        ssize_t n = write(cli, junk + sent, sizeof(junk) - sent);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    /* Let every byte reach golb's receive queue (none left in the client's send queue). */
    for (int i = 0; i < 400 && outq(cli) > 0; i++)
        usleep(5000);
    int queued = unread(fd);
    if ((size_t)queued < LOOP_IO_BUDGET + 64 * 1024)
        cr_skip_test("only %d bytes could be queued on this system", queued);

    struct sockaddr_in peer = {.sin_family = AF_INET};
    h1session_accept(&wk, fd, (struct sockaddr *)&peer, sizeof(peer), false, false);
    struct client *c = the_client();
    cr_assert_eq(c->state, CS_LINGER, "the 400 went out, the session lingers");
    int left = unread(fd);
    cr_expect_gt(left, 0, "one call read everything (%d of %d bytes): no budget", queued - left,
                 queued);
    cr_expect_leq((size_t)(queued - left), LOOP_IO_BUDGET + 16384,
                  "one call read %d bytes", queued - left);
    cr_expect(c->task.queued, "the rest is yielded to the next loop iteration");
    cr_expect(c->readable, "still readable: no edge is lost");

    /* The yielded task goes on where it stopped. */
    loop_run_deferred(wk.loop);
    cr_expect_lt(unread(fd), left, "the next call read on");
    close(cli);
}

/* ---- TLS handshakes on a worker without counters ---- */

static char certdir[64];

static void make_cert(void)
{
    strcpy(certdir, "/tmp/golb-h1-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(certdir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-days 30 -keyout k.pem -out c.pem -subj /CN=t.test "
             "-addext subjectAltName=DNS:t.test >/dev/null 2>&1",
             certdir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(h1session_limits, a_failed_handshake_on_a_worker_without_counters)
{
    make_cert();
    char cert[128], key[128];
    snprintf(cert, sizeof(cert), "%s/c.pem", certdir);
    snprintf(key, sizeof(key), "%s/k.pem", certdir);
    struct tls_server *s = tls_server_new();
    cr_assert_not_null(s);
    enum tls_err_field f;
    char err[256], warn[256];
    cr_assert_eq(tls_server_add_cert(s, cert, key, &f, err, sizeof(err), warn, sizeof(warn)), 0,
                 "%s", err);
    struct tls_server_settings st = {.min_version = 12, .session_tickets = true,
                                     .ticket_rotation_s = 3600};
    cr_assert_eq(tls_server_finish(s, &st, &f, err, sizeof(err)), 0, "%s", err);
    struct config_tls tls = {.server = s, .handshake_timeout_ms = 10000};
    atomic_init(&tls.refs, 1); /* the configuration's: the session takes its own */
    wk_cfg.tls = &tls;
    cr_assert_null(wk.m, "a unit-test worker has no counters");

    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    const char *plain = "GET / HTTP/1.1\r\nHost: t.test\r\n\r\n"; /* plain HTTP to the TLS port */
    cr_assert_eq(write(sv[1], plain, strlen(plain)), (ssize_t)strlen(plain));
    struct sockaddr_in peer = {.sin_family = AF_INET};
    wk.nclients = 1;
    h1session_accept(&wk, sv[0], (struct sockaddr *)&peer, sizeof(peer), true, false);
    /* The handshake failed (counted through obs.h, which has nowhere to count) and closed. */
    cr_expect_null(wk.sessions, "the session closed");
    cr_expect_eq(wk.nclients, 0);
    char answer[256] = "";
    ssize_t n = read(sv[1], answer, sizeof(answer) - 1);
    cr_expect_gt(n, 0);
    cr_expect(strstr(answer, "400") != NULL, "plain HTTP on the TLS port gets a short 400: %s",
              answer);
    close(sv[1]);
    loop_run_deferred(wk.loop);
    cr_expect_eq(atomic_load(&tls.refs), 1, "the session dropped its reference to the section");
    wk_cfg.tls = NULL;
    tls_server_free(s);
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf %s", certdir);
    (void)!system(rm);
}
