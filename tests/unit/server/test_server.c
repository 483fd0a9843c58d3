/* Unit tests for the server in-process: start, reloads that succeed or fail (a broken file, a
 * health checker that cannot start), a listener moved by a reload, and the control thread's
 * queue (SIGHUPs that come while a reload runs join into one). Backends are tiny HTTP servers on
 * threads here; what golb logs is captured (fd 2) to learn the addresses it bound. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "admin/admin.h"
#include "base/util.h"
#include "config/config.h"
#include "core/generation.h"
#include "server/server.h"
#include "upstream/backend.h"
#include "upstream/health.h"

/* Generous: the suite runs on a loaded 2-core machine and under ASan. */
#define DEADLINE_MS 10000

#define WAIT_UNTIL(cond)                                                                           \
    ({                                                                                             \
        uint64_t until_ = util_now_ms() + DEADLINE_MS;                                             \
        bool ok_;                                                                                  \
        while (!(ok_ = (cond)) && util_now_ms() < until_)                                          \
            usleep(5000);                                                                          \
        ok_;                                                                                       \
    })

/* ---- a backend: answers every request 200 (or holds it when `hang`) ---- */

struct upstream {
    int lfd;
    uint16_t port;
    _Atomic bool hang, stop;
    _Atomic int accepts;
    pthread_t thread;
};

static void *upstream_main(void *arg)
{
    struct upstream *u = arg;
    int held[64];
    int nheld = 0;
    while (!atomic_load(&u->stop)) {
        int fd = accept(u->lfd, NULL, NULL);
        if (fd == -1)
            continue;
        atomic_fetch_add(&u->accepts, 1);
        if (atomic_load(&u->hang) && nheld < 64) {
            held[nheld++] = fd; /* never answered: the check times out */
            continue;
        }
        char buf[4096];
        (void)!read(fd, buf, sizeof(buf));
        static const char ok[] =
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!write(fd, ok, sizeof(ok) - 1);
        close(fd);
    }
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    return NULL;
}

/* A socket bound on 127.0.0.1 (port in *port), not listening yet: connections are refused. */
static int bound_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(fd, -1);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Starts answering on u->lfd (bound by bound_socket or upstream_new). */
static void upstream_listen(struct upstream *u)
{
    struct timeval tv = {.tv_usec = 100000}; /* accept wakes up to see `stop` */
    setsockopt(u->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(listen(u->lfd, 64), 0);
    cr_assert_eq(pthread_create(&u->thread, NULL, upstream_main, u), 0);
}

static struct upstream *upstream_new(bool hang)
{
    struct upstream *u = calloc(1, sizeof(*u));
    u->lfd = bound_socket(&u->port);
    atomic_store(&u->hang, hang);
    upstream_listen(u);
    return u;
}

static void upstream_free(struct upstream *u)
{
    atomic_store(&u->stop, true);
    pthread_join(u->thread, NULL);
    close(u->lfd);
    free(u);
}

/* ---- the configuration file ---- */

static char confpath[64];

static void write_config(const char *listen, const uint16_t *ports, int n, const char *extra)
{
    FILE *f = fopen(confpath, "w");
    cr_assert(f);
    fprintf(f, "workers: 2\nlisten: %s\nhealthCheckTimeout: 2\nhealthCheckPeriod: 2.5\n%s"
               "backends:\n", listen, extra ? extra : "");
    for (int i = 0; i < n; i++)
        fprintf(f, "  - http://127.0.0.1:%u/health\n", (unsigned)ports[i]);
    cr_assert_eq(fclose(f), 0);
}

static struct server *start(const char *listen, const uint16_t *ports, int n)
{
    snprintf(confpath, sizeof(confpath), "/tmp/golb-test-server-%d.yml", (int)getpid());
    write_config(listen, ports, n, NULL);
    struct config *cfg = NULL;
    cr_assert_eq(config_load(confpath, stderr, &cfg), 0);
    struct server *s = server_start(cfg, confpath, "test");
    cr_assert_not_null(s);
    return s;
}

static void stop(struct server *s)
{
    cr_expect_eq(server_stop(s), 0);
    unlink(confpath);
}

static uint64_t running_generation(void)
{
    struct generation *g = generation_acquire();
    uint64_t id = g ? g->id : 0;
    generation_unref(g);
    return id;
}

static int running_backends(void)
{
    struct generation *g = generation_acquire();
    int n = g ? g->table->n : -1;
    generation_unref(g);
    return n;
}

static void reload(struct server *s, struct admin_reload *out)
{
    server_reload(s, "test", out);
}

static void reload_free(struct admin_reload *r)
{
    free(r->errors);
    free(r->changes);
}

/* The port in the last "listening on 127.0.0.X:PORT" of text (the start's or a reload's line). */
static int listening_port(const char *text, const char *host)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "listening on %s:", host);
    const char *p = NULL;
    for (const char *q = text; (q = strstr(q, pat)); q++)
        p = q;
    return p ? atoi(p + strlen(pat)) : -1;
}

static bool can_connect(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sin.sin_addr);
    bool ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return ok;
}

/* ---- tests ---- */

Test(server, starts_and_a_reload_adds_a_backend, .timeout = 60)
{
    struct upstream *a = upstream_new(false), *b = upstream_new(false);
    struct server *s = start("127.0.0.1:0", &a->port, 1);
    cr_expect_eq(running_generation(), 1);
    cr_expect_eq(running_backends(), 1);
    write_config("127.0.0.1:0", (uint16_t[]){a->port, b->port}, 2, NULL);
    struct admin_reload r;
    reload(s, &r);
    cr_expect(r.ok, "%s", r.errors ? r.errors : "");
    cr_expect_eq(r.generation, 2);
    char want[80];
    snprintf(want, sizeof(want), "backend added: http://127.0.0.1:%u", (unsigned)b->port);
    cr_expect(r.changes && strstr(r.changes, want), "%s", r.changes ? r.changes : "(none)");
    cr_expect_eq(running_generation(), 2);
    cr_expect_eq(running_backends(), 2);
    struct generation *g = generation_acquire();
    cr_expect(backend_is_up(g->table->b[1]), "the new backend was checked before publishing");
    generation_unref(g);
    reload_free(&r);
    stop(s);
    upstream_free(a);
    upstream_free(b);
}

Test(server, a_broken_file_fails_the_reload_and_changes_nothing, .timeout = 60)
{
    struct upstream *a = upstream_new(false);
    struct server *s = start("127.0.0.1:0", &a->port, 1);
    FILE *f = fopen(confpath, "w");
    fputs("backends:\n  - http://127.0.0.1:1/\nretries: [\n", f);
    fclose(f);
    struct admin_reload r;
    reload(s, &r);
    cr_expect(!r.ok);
    cr_expect_eq(r.generation, 1);
    cr_expect(r.errors && strstr(r.errors, confpath), "%s", r.errors ? r.errors : "(none)");
    cr_expect_eq(running_generation(), 1);
    reload_free(&r);
    stop(s);
    upstream_free(a);
}

Test(server, a_health_checker_that_cannot_start_fails_the_reload_and_checks_go_on, .timeout = 60)
{
    /* b refuses connections until the end: the running checker must still be there to see it
     * answer. */
    struct upstream *a = upstream_new(false);
    struct upstream *b = calloc(1, sizeof(*b));
    b->lfd = bound_socket(&b->port);
    struct upstream *c = upstream_new(false);
    uint16_t ports[] = {a->port, b->port};
    struct server *s = start("127.0.0.1:0", ports, 2);
    struct generation *g = generation_acquire();
    struct backend *bb = g->table->b[1];
    cr_assert(!backend_is_up(bb));
    write_config("127.0.0.1:0", (uint16_t[]){a->port, b->port, c->port}, 3, NULL);
    atomic_store(&health_inject_start_error, -EAGAIN);
    struct admin_reload r;
    reload(s, &r);
    cr_expect(!r.ok, "a reload whose health checks cannot start must fail");
    cr_expect(r.errors && strstr(r.errors, "cannot start health checks"), "%s",
              r.errors ? r.errors : "(none)");
    cr_expect_eq(r.generation, 1);
    cr_expect_eq(running_generation(), 1, "the running generation is kept");
    cr_expect_eq(atomic_load(&c->accepts), 0, "the new backend was never checked");
    upstream_listen(b); /* b comes up: only a checker still running can tell */
    cr_expect(WAIT_UNTIL(backend_is_up(bb)), "the running checker stopped with the failed reload");
    generation_unref(g);
    reload_free(&r);
    /* and the next reload, when the checker can start, goes through */
    reload(s, &r);
    cr_expect(r.ok, "%s", r.errors ? r.errors : "");
    cr_expect_eq(running_backends(), 3);
    reload_free(&r);
    stop(s);
    upstream_free(a);
    upstream_free(b);
    upstream_free(c);
}

Test(server, a_moved_listener_serves_and_the_old_one_is_closed, .timeout = 60)
{
    struct upstream *a = upstream_new(false);
    struct capture cap;
    capture_begin(&cap);
    struct server *s = start("127.0.0.1:0", &a->port, 1);
    write_config("127.0.0.2:0", &a->port, 1, NULL);
    struct admin_reload r;
    reload(s, &r);
    capture_end(&cap);
    int old_port = listening_port(cap.text, "127.0.0.1");
    int new_port = listening_port(cap.text, "127.0.0.2");
    cr_assert(r.ok, "%s", r.errors ? r.errors : "");
    cr_expect(r.changes && strstr(r.changes, "listener changed: listen 127.0.0.1:0 -> 127.0.0.2:0"),
              "%s", r.changes ? r.changes : "(none)");
    cr_assert_gt(old_port, 0, "%s", cap.text);
    cr_assert_gt(new_port, 0, "the reload's line names the new address: %s", cap.text);
    cr_expect(can_connect("127.0.0.2", new_port), "the new listener accepts");
    cr_expect(!can_connect("127.0.0.1", old_port), "the old listener is closed");
    reload_free(&r);
    capture_free(&cap);
    stop(s);
    upstream_free(a);
}

/* The port of HOST in the last "listening on ..." line of text (the start's or a reload's, which
 * list every address), -1 when that line does not name it. */
static int port_in_last_line(const char *text, const char *host)
{
    const char *line = NULL;
    for (const char *q = text; (q = strstr(q, "listening on ")); q++)
        line = q;
    if (!line)
        return -1;
    const char *end = strchr(line, '(');
    char pat[64];
    snprintf(pat, sizeof(pat), " %s:", host);
    const char *p = strstr(line, pat);
    return p && (!end || p < end) ? atoi(p + strlen(pat)) : -1;
}

/* listen: a list. Every address gets its sockets; a reload keeps those it still lists (their
 * ports, their sockets), binds the new ones before anything changes and closes the removed ones;
 * one that cannot be bound fails the reload at its entry, and what the reload bound before it is
 * closed again. */
Test(server, listen_lists_are_bound_kept_added_and_removed_per_address, .timeout = 60)
{
    struct upstream *a = upstream_new(false);
    struct capture cap;
    capture_begin(&cap);
    struct server *s = start("[127.0.0.1:0, 127.0.0.2:0]", &a->port, 1);
    capture_end(&cap);
    int p1 = port_in_last_line(cap.text, "127.0.0.1"), p2 = port_in_last_line(cap.text, "127.0.0.2");
    cr_assert_gt(p1, 0, "%s", cap.text);
    cr_assert_gt(p2, 0, "%s", cap.text);
    cr_expect(strstr(cap.text, "listening on 127.0.0.1:"), "the first address first: %s", cap.text);
    cr_expect(can_connect("127.0.0.1", p1) && can_connect("127.0.0.2", p2));
    capture_free(&cap);

    capture_begin(&cap);
    write_config("[127.0.0.1:0, 127.0.0.3:0, 127.0.0.4:0]", &a->port, 1, NULL);
    struct admin_reload r;
    reload(s, &r);
    capture_end(&cap);
    cr_assert(r.ok, "%s", r.errors ? r.errors : "");
    cr_expect_str_eq(r.changes, "listener removed: listen 127.0.0.2:0\n"
                                "listener added: listen 127.0.0.3:0\n"
                                "listener added: listen 127.0.0.4:0\n");
    cr_expect_eq(port_in_last_line(cap.text, "127.0.0.1"), p1, "kept: %s", cap.text);
    int p3 = port_in_last_line(cap.text, "127.0.0.3"), p4 = port_in_last_line(cap.text, "127.0.0.4");
    cr_expect(p3 > 0 && p4 > 0, "%s", cap.text);
    cr_expect(can_connect("127.0.0.1", p1), "the unchanged address still accepts");
    cr_expect(can_connect("127.0.0.3", p3) && can_connect("127.0.0.4", p4), "the new ones do");
    cr_expect(!can_connect("127.0.0.2", p2), "the removed one is closed");
    reload_free(&r);
    capture_free(&cap);

    /* an entry that cannot be bound: the reload fails at it, the one bound before it is closed */
    int fds = count_fds();
    char listen[96];
    snprintf(listen, sizeof(listen), "[127.0.0.1:0, 127.0.0.5:0, 127.0.0.1:%u]", (unsigned)a->port);
    write_config(listen, &a->port, 1, NULL);
    reload(s, &r);
    cr_expect(!r.ok);
    char want[200];
    snprintf(want, sizeof(want), "%s:2:36: cannot listen on 127.0.0.1:%u: address in use",
             confpath, (unsigned)a->port);
    cr_expect(r.errors && strstr(r.errors, want), "want %s in: %s", want,
              r.errors ? r.errors : "(none)");
    /* waited for: a health check in flight holds a socket of its own for a moment */
    cr_expect(WAIT_UNTIL(count_fds() <= fds), "127.0.0.5's sockets were closed again");
    cr_expect(can_connect("127.0.0.1", p1) && can_connect("127.0.0.3", p3) &&
              can_connect("127.0.0.4", p4), "the running listeners are untouched");
    reload_free(&r);
    stop(s);
    upstream_free(a);
}

struct slow_reload {
    struct server *s;
    struct admin_reload r;
};

static void *slow_reload_main(void *arg)
{
    struct slow_reload *sr = arg;
    server_reload(sr->s, "slow", &sr->r);
    return NULL;
}

Test(server, sighups_while_a_reload_runs_join_into_one, .timeout = 60)
{
    struct upstream *a = upstream_new(false), *slow = upstream_new(true);
    struct server *s = start("127.0.0.1:0", &a->port, 1);
    /* the next reload adds a backend whose first check hangs for its whole timeout (2 s: long
     * enough that the SIGHUPs below come while it runs, however loaded the machine) */
    write_config("127.0.0.1:0", (uint16_t[]){a->port, slow->port}, 2, NULL);
    struct slow_reload sr = {.s = s};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, slow_reload_main, &sr), 0);
    cr_assert(WAIT_UNTIL(atomic_load(&slow->accepts) >= 1), "the slow reload never started");
    cr_assert_eq(server_reload_async(s, "SIGHUP", NULL, 0), 0); /* both wait for the slow one */
    cr_assert_eq(server_reload_async(s, "SIGHUP", NULL, 0), 0);
    pthread_join(t, NULL);
    cr_expect(sr.r.ok, "%s", sr.r.errors ? sr.r.errors : "");
    cr_expect_eq(sr.r.generation, 2);
    reload_free(&sr.r);
    cr_expect(WAIT_UNTIL(running_generation() == 3), "the SIGHUPs' reload never ran");
    /* queued after the SIGHUPs' one: had they not joined, it would be generation 5 */
    struct admin_reload r;
    reload(s, &r);
    cr_expect_eq(r.generation, 4, "two SIGHUPs queued behind a running reload are one reload");
    reload_free(&r);
    stop(s);
    upstream_free(a);
    upstream_free(slow);
}
