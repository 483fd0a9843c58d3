/* Unit tests for notify: the exact datagrams golb sends to $NOTIFY_SOCKET, to a path and to an
 * abstract name, the no-op without the variable, STATUS= cut to one line, MONOTONIC_USEC taken
 * from CLOCK_MONOTONIC, unusable values refused, and a send to nobody logged once, never blocking.
 * Each test binds its own AF_UNIX datagram socket (systemd's side) and reads what arrived. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "base/notify.h"

struct listener {
    int fd;
    char dir[64];
    char env[108]; /* the NOTIFY_SOCKET value */
};

/* Binds a datagram socket at DIR/notify (a fresh temp dir) or at an abstract name. */
static void listen_at(struct listener *l, bool abstract)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t alen;
    l->dir[0] = '\0';
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(l->fd >= 0);
    if (abstract) {
        snprintf(l->env, sizeof(l->env), "@golb-test-notify-%d-%ld", (int)getpid(),
                 (long)clock());
        memcpy(a.sun_path, l->env, strlen(l->env));
        a.sun_path[0] = '\0';
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(l->env));
    } else {
        snprintf(l->dir, sizeof(l->dir), "/tmp/golb-notify-XXXXXX");
        cr_assert(mkdtemp(l->dir));
        snprintf(l->env, sizeof(l->env), "%s/notify", l->dir);
        strcpy(a.sun_path, l->env);
        alen = sizeof(a);
    }
    cr_assert_eq(bind(l->fd, (struct sockaddr *)&a, alen), 0, "bind %s: %s", l->env,
                 strerror(errno));
    cr_assert_eq(setenv("NOTIFY_SOCKET", l->env, 1), 0);
    cr_assert_eq(notify_init(), 0);
}

static void listener_close(struct listener *l)
{
    close(l->fd);
    if (l->dir[0]) {
        char path[128];
        snprintf(path, sizeof(path), "%s/notify", l->dir);
        unlink(path);
        rmdir(l->dir);
    }
}

/* The next datagram, NUL-terminated; fails the test when none arrives within 2 s. */
static void next_msg(struct listener *l, char *buf, size_t len)
{
    cr_assert(wait_fd(l->fd, POLLIN, 2000) & POLLIN, "no datagram arrived");
    ssize_t n = recv(l->fd, buf, len - 1, MSG_DONTWAIT);
    cr_assert(n >= 0, "recv: %s", strerror(errno));
    buf[n] = '\0';
}

static bool nothing_queued(struct listener *l)
{
    char c;
    return recv(l->fd, &c, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN;
}

static void every_message(bool abstract)
{
    struct listener l;
    listen_at(&l, abstract);
    char m[2048];

    notify_ready("serving on 127.0.0.1:8080");
    next_msg(&l, m, sizeof(m));
    cr_assert_str_eq(m, "READY=1\nSTATUS=serving on 127.0.0.1:8080");

    notify_ready(NULL);
    next_msg(&l, m, sizeof(m));
    cr_assert_str_eq(m, "READY=1");

    notify_stopping("draining");
    next_msg(&l, m, sizeof(m));
    cr_assert_str_eq(m, "STOPPING=1\nSTATUS=draining");

    notify_stopping(NULL);
    next_msg(&l, m, sizeof(m));
    cr_assert_str_eq(m, "STOPPING=1");

    notify_status("3 of 4 backends up");
    next_msg(&l, m, sizeof(m));
    cr_assert_str_eq(m, "STATUS=3 of 4 backends up");

    notify_status(NULL); /* nothing to say: no datagram */
    cr_assert(nothing_queued(&l));
    listener_close(&l);
}

Test(notify, path_socket_gets_exact_datagrams)
{
    every_message(false);
}

Test(notify, abstract_socket_gets_exact_datagrams)
{
    every_message(true);
}

static unsigned long long mono_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u;
}

Test(notify, reloading_carries_monotonic_usec)
{
    struct listener l;
    listen_at(&l, false);
    char m[2048];
    unsigned long long before = mono_usec();
    notify_reloading("reloading golb.yml");
    unsigned long long after = mono_usec();
    next_msg(&l, m, sizeof(m));
    unsigned long long usec = 0;
    char status[128] = "";
    cr_assert_eq(sscanf(m, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%127[^\n]", &usec, status), 2,
                 "got %s", m);
    cr_assert(usec >= before && usec <= after, "MONOTONIC_USEC %llu not in [%llu, %llu]", usec,
              before, after);
    cr_assert_str_eq(status, "reloading golb.yml");
    char want[256];
    snprintf(want, sizeof(want), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading golb.yml",
             usec);
    cr_assert_str_eq(m, want); /* nothing else in it */

    notify_reloading(NULL);
    next_msg(&l, m, sizeof(m));
    cr_assert_eq(sscanf(m, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1, "got %s", m);
    snprintf(want, sizeof(want), "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
    cr_assert_str_eq(m, want);
    listener_close(&l);
}

Test(notify, status_is_one_line)
{
    struct listener l;
    listen_at(&l, false);
    char m[4096];
    notify_ready("line one\nREADY=0\r\tend");
    next_msg(&l, m, sizeof(m));
    cr_assert_str_eq(m, "READY=1\nSTATUS=line one READY=0  end");

    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    notify_status(big); /* cut, still one datagram that starts right */
    next_msg(&l, m, sizeof(m));
    cr_assert(strncmp(m, "STATUS=xxx", 10) == 0);
    cr_assert(strlen(m) < 1024 && !strchr(m, '\n'));
    listener_close(&l);
}

Test(notify, unset_is_a_noop)
{
    struct listener l;
    listen_at(&l, false);
    cr_assert_eq(unsetenv("NOTIFY_SOCKET"), 0);
    int before = count_fds();
    cr_assert_eq(notify_init(), 0); /* closes the previous socket, opens none */
    cr_assert_eq(count_fds(), before - 1);
    notify_ready("x");
    notify_stopping("x");
    cr_assert(nothing_queued(&l));
    setenv("NOTIFY_SOCKET", "", 1);
    cr_assert_eq(notify_init(), 0);
    notify_ready("x");
    cr_assert(nothing_queued(&l));
    listener_close(&l);
}

Test(notify, unusable_values_are_refused)
{
    struct capture c;
    capture_begin(&c);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    cr_assert_eq(notify_init(), -EAFNOSUPPORT);
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    cr_assert_eq(notify_init(), -EAFNOSUPPORT);
    setenv("NOTIFY_SOCKET", "@", 1);
    cr_assert_eq(notify_init(), -EINVAL);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    setenv("NOTIFY_SOCKET", longpath, 1);
    cr_assert_eq(notify_init(), -EINVAL);
    notify_ready("x"); /* off: nothing happens */
    capture_end(&c);
    cr_assert_eq(count_lines(c.text), 4, "%s", c.text);
    capture_free(&c);
}

Test(notify, nobody_listening_logs_once_and_does_not_block, .timeout = 20)
{
    char dir[] = "/tmp/golb-notify-XXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/absent", dir);
    setenv("NOTIFY_SOCKET", path, 1);
    cr_assert_eq(notify_init(), 0);
    struct capture c;
    capture_begin(&c);
    uint64_t t0 = util_now_ms();
    notify_ready("a");
    notify_reloading("b");
    notify_stopping("c");
    capture_end(&c);
    cr_assert(util_now_ms() - t0 < 1000);
    cr_assert_eq(count_lines(c.text), 1, "%s", c.text);
    cr_assert(strstr(c.text, "cannot notify the service manager"), "%s", c.text);
    capture_free(&c);
    rmdir(dir);
}

Test(notify, full_queue_does_not_block, .timeout = 20)
{
    /* A manager that does not read: its queue fills and sends fail at once (EAGAIN), logged once. */
    struct listener l;
    listen_at(&l, true);
    struct capture c;
    capture_begin(&c);
    uint64_t t0 = util_now_ms();
    for (int i = 0; i < 5000; i++)
        notify_status("filling the queue of a manager that does not read");
    capture_end(&c);
    cr_assert(util_now_ms() - t0 < 5000);
    cr_assert_eq(count_lines(c.text), 1, "%s", c.text);
    capture_free(&c);
    listener_close(&l);
}
