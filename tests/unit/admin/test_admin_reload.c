/* Unit tests for POST /api/v1/reload on the admin listener: the admin asks for the reload and
 * goes on serving (/healthz answers while it runs), then answers the POST with the outcome handed
 * back by admin_reload_done, in the API's JSON; an outcome whose client left is dropped; a reload
 * that cannot be asked (golb stopping) is answered at once. The reload itself is the test's. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "admin/admin.h"
#include "config/config.h"
#include "core/generation.h"

#define DEADLINE_MS 10000
#define TOKEN "t0k"

/* What the admin asked for, seen from the test's side of admin_reload_fn. */
struct asked {
    pthread_mutex_t mu;
    int calls;
    uint64_t ticket;
    char who[96];
    int answer; /* what the fn returns */
};

static int ask_reload(void *arg, const char *who, struct admin *a, uint64_t ticket)
{
    struct asked *k = arg;
    pthread_mutex_lock(&k->mu);
    k->calls++;
    k->ticket = ticket;
    snprintf(k->who, sizeof(k->who), "%s", who);
    pthread_mutex_unlock(&k->mu);
    return k->answer;
}

static int calls(struct asked *k)
{
    pthread_mutex_lock(&k->mu);
    int n = k->calls;
    pthread_mutex_unlock(&k->mu);
    return n;
}

struct fixture {
    struct generation *gen;
    struct admin *admin;
    struct asked asked;
    int port;
};

static void fx_start(struct fixture *fx, int answer)
{
    static const char yaml[] = "admin:\n  listen: 127.0.0.1:0\n  token: " TOKEN "\n"
                               "backends:\n  - http://127.0.0.1:1/\n";
    memset(fx, 0, sizeof(*fx));
    struct config *cfg = NULL;
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), NULL, &cfg), 0);
    fx->gen = generation_new(cfg, NULL, 1, 1);
    cr_assert_not_null(fx->gen);
    pthread_mutex_init(&fx->asked.mu, NULL);
    fx->asked.answer = answer;
    struct capture cap;
    capture_begin(&cap);
    fx->admin = admin_start(fx->gen, "127.0.0.1:8080", "test", ask_reload, &fx->asked);
    capture_end(&cap);
    cr_assert_not_null(fx->admin, "%s", cap.text);
    const char *p = strstr(cap.text, "http://127.0.0.1:");
    cr_assert_not_null(p, "%s", cap.text);
    fx->port = atoi(p + strlen("http://127.0.0.1:"));
    capture_free(&cap);
}

static void fx_stop(struct fixture *fx)
{
    admin_stop(fx->admin);
    generation_unref(fx->gen);
    pthread_mutex_destroy(&fx->asked.mu);
}

/* Connects to the admin and sends `req` whole. */
static int send_request(int port, const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    size_t len = strlen(req);
    cr_assert_eq(write(fd, req, len), (ssize_t)len);
    return fd;
}

/* Everything until the admin closes (it always does), within DEADLINE_MS. malloc'd. */
static char *read_all(int fd)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        cr_assert(wait_fd(fd, POLLIN, DEADLINE_MS) & (POLLIN | POLLHUP), "no answer in time");
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        len += (size_t)n;
        cr_assert_lt(len, cap - 1);
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static const char post[] = "POST /api/v1/reload HTTP/1.1\r\nHost: a\r\n"
                           "Authorization: Bearer " TOKEN "\r\nContent-Length: 0\r\n\r\n";

Test(admin_reload, answers_when_the_outcome_comes_and_serves_meanwhile, .timeout = 30)
{
    struct fixture fx;
    fx_start(&fx, 0);
    int pfd = send_request(fx.port, post);
    uint64_t until = util_now_ms() + DEADLINE_MS;
    while (calls(&fx.asked) == 0 && util_now_ms() < until)
        usleep(2000);
    cr_assert_eq(calls(&fx.asked), 1, "the reload was asked for");
    cr_expect(strncmp(fx.asked.who, "admin API (127.0.0.1:", 21) == 0, "%s", fx.asked.who);
    /* the reload runs (elsewhere): the admin answers other requests meanwhile */
    for (int i = 0; i < 3; i++) {
        char *r = read_all(send_request(fx.port, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
        cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
        free(r);
    }
    cr_expect_eq(wait_fd(pfd, POLLIN, 100), 0, "no answer to the POST before the outcome");
    struct admin_reload out = {.ok = true, .generation = 2,
                               .errors = strdup("f.yml:3:1: warning: something\n"),
                               .changes = strdup("backend added: http://127.0.0.1:2\n"
                                                 "setting changed: retries 1 -> 2\n")};
    admin_reload_done(fx.admin, fx.asked.ticket, &out);
    char *r = read_all(pfd);
    cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    const char *body = strstr(r, "\r\n\r\n");
    cr_assert_not_null(body);
    cr_expect_str_eq(body + 4, "{\"result\":\"success\",\"generation\":2,\"changes\":[\"backend "
                               "added: http://127.0.0.1:2\",\"setting changed: retries 1 -> 2\"],"
                               "\"errors\":[],\"warnings\":[\"f.yml:3:1: warning: something\"]}\n");
    free(r);
    fx_stop(&fx);
}

Test(admin_reload, a_failed_reload_is_answered_422, .timeout = 30)
{
    struct fixture fx;
    fx_start(&fx, 0);
    int pfd = send_request(fx.port, post);
    uint64_t until = util_now_ms() + DEADLINE_MS;
    while (calls(&fx.asked) == 0 && util_now_ms() < until)
        usleep(2000);
    struct admin_reload out = {.generation = 1, .errors = strdup("f.yml:2:3: bad\n")};
    admin_reload_done(fx.admin, fx.asked.ticket, &out);
    char *r = read_all(pfd);
    cr_expect(strncmp(r, "HTTP/1.1 422 ", 13) == 0, "%s", r);
    cr_expect(strstr(r, "{\"result\":\"failure\",\"generation\":1,\"changes\":[],"
                        "\"errors\":[\"f.yml:2:3: bad\"],\"warnings\":[]}\n"), "%s", r);
    free(r);
    fx_stop(&fx);
}

Test(admin_reload, an_outcome_whose_client_left_is_dropped, .timeout = 30)
{
    struct fixture fx;
    fx_start(&fx, 0);
    int pfd = send_request(fx.port, post);
    uint64_t until = util_now_ms() + DEADLINE_MS;
    while (calls(&fx.asked) == 0 && util_now_ms() < until)
        usleep(2000);
    close(pfd);
    usleep(50 * 1000);
    struct admin_reload out = {.ok = true, .generation = 2, .changes = strdup("x\n")};
    admin_reload_done(fx.admin, fx.asked.ticket, &out);
    char *r = read_all(send_request(fx.port, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
    cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    free(r);
    fx_stop(&fx); /* ASan: the dropped outcome's strings are freed */
}

Test(admin_reload, an_outcome_still_running_at_stop_is_freed, .timeout = 30)
{
    struct fixture fx;
    fx_start(&fx, 0);
    int pfd = send_request(fx.port, post);
    uint64_t until = util_now_ms() + DEADLINE_MS;
    while (calls(&fx.asked) == 0 && util_now_ms() < until)
        usleep(2000);
    struct admin_reload out = {.ok = true, .generation = 2, .changes = strdup("x\n")};
    admin_reload_done(fx.admin, fx.asked.ticket, &out);
    fx_stop(&fx); /* the loop may not have taken it yet: admin_stop frees it either way */
    close(pfd);
}

Test(admin_reload, a_reload_that_cannot_be_asked_is_answered_at_once, .timeout = 30)
{
    struct fixture fx;
    fx_start(&fx, -ESHUTDOWN);
    char *r = read_all(send_request(fx.port, post));
    cr_expect(strncmp(r, "HTTP/1.1 422 ", 13) == 0, "%s", r);
    cr_expect(strstr(r, "{\"result\":\"failure\",\"generation\":1,\"changes\":[],"
                        "\"errors\":[\"golb is shutting down\"],\"warnings\":[]}\n"), "%s", r);
    free(r);
    fx_stop(&fx);
}
