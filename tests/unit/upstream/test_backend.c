/* Unit tests for backend: the table, state names, state changes and the one log line each makes,
 * and the parts of passive failure counting test_balancer.c does not cover (max_fails 0, backends
 * not UP, the DOWN line's reason, reset on recovery, one transition under concurrent failures). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "upstream/backend.h"
#include "config/config.h"
#include "base/log.h"

static struct config cfg;
static struct config_backend cbs[8];
static char names[8][32];
static char host[] = "127.0.0.1";

static void fill_config(struct config *c, struct config_backend *entries, int first, int n)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < n; i++) {
        snprintf(names[first + i], sizeof(names[first + i]), "127.0.0.1:%d", 8081 + first + i);
        entries[i] = (struct config_backend){.name = names[first + i],
                                             .host = host,
                                             .port = (uint16_t)(8081 + first + i),
                                             .weight = 1};
    }
    c->nbackends = n;
    c->backends = entries;
}

static struct backend_table *make_table(int n)
{
    fill_config(&cfg, cbs, 0, n);
    struct backend_table *t = backend_table_new(&cfg, NULL, 1);
    cr_assert_not_null(t);
    return t;
}

/* A table of n backends, all UP, made with the log at ERROR so the set-up lines stay out of it. */
static struct backend_table *make_up_table(int n)
{
    log_set_level(LOG_ERROR);
    struct backend_table *t = make_table(n);
    for (int i = 0; i < n; i++)
        backend_set_state(t->b[i], BACKEND_UP, "up");
    return t;
}

/* True when the text has a line whose message part (after "golb[pid] ") is exactly `msg`. */
static bool has_line(const char *text, const char *msg)
{
    char want[512];
    snprintf(want, sizeof(want), "golb[%d] %s\n", (int)getpid(), msg);
    return strstr(text, want) != NULL;
}

/* ---- the table ---- */

Test(backend, table_starts_unknown_with_zero_counters)
{
    struct backend_table *t = make_table(3);
    cr_assert_eq(t->n, 3);
    for (int i = 0; i < 3; i++) {
        struct backend *b = t->b[i];
        cr_expect_str_eq(b->name, names[i]);
        char key[64];
        snprintf(key, sizeof(key), "http://127.0.0.1:%d", 8081 + i);
        cr_expect_str_eq(b->key, key);
        cr_expect_eq(atomic_load(&b->refs), 1);
        cr_expect_eq(atomic_load(&b->state), BACKEND_UNKNOWN);
        cr_expect_not(backend_is_up(b), "an unchecked backend receives no traffic");
        cr_expect_eq(atomic_load(&b->consecutive_fails), 0);
        cr_expect_eq(atomic_load(&b->active), 0);
    }
    backend_table_free(t);
}

Test(backend, each_backend_has_its_own_cache_line)
{
    /* The hot atomics of neighbours must not share a line: each object is aligned and its first
     * line holds them all. */
    cr_expect_eq(sizeof(struct backend) % 64, 0);
    cr_expect_leq(offsetof(struct backend, retired) + sizeof(_Atomic bool), 64);
    struct backend_table *t = make_table(2);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq((uintptr_t)t->b[i] % 64, 0);
        cr_expect_eq((uintptr_t)&t->b[i]->pw[0] % 64, 0, "a worker's slot starts a line");
    }
    backend_table_free(t);
}

Test(backend, table_without_backends)
{
    struct backend_table *t = make_table(0);
    cr_expect_eq(t->n, 0);
    backend_table_free(t);
    backend_table_free(NULL); /* a no-op, like free(NULL) */
}

Test(backend, state_names)
{
    cr_expect_str_eq(backend_state_name(BACKEND_UNKNOWN), "UNKNOWN");
    cr_expect_str_eq(backend_state_name(BACKEND_UP), "UP");
    cr_expect_str_eq(backend_state_name(BACKEND_DOWN), "DOWN");
    cr_expect_str_eq(backend_state_name((enum backend_state)42), "UNKNOWN");
}

/* ---- reloads: identity carries state over ---- */

Test(backend, a_new_table_keeps_the_objects_of_unchanged_identities)
{
    log_set_level(LOG_ERROR);
    static struct config_backend a[3], b[3];
    struct config ca, cb;
    fill_config(&ca, a, 0, 3); /* :8081 :8082 :8083 */
    fill_config(&cb, b, 1, 3); /* :8082 :8083 :8084 */
    struct backend_table *t1 = backend_table_new(&ca, NULL, 2);
    cr_assert_not_null(t1);
    backend_set_state(t1->b[1], BACKEND_UP, "up");
    atomic_store(&t1->b[1]->weight, 7); /* an operator's weight */
    t1->b[1]->pw[1].m.retries = 5;
    struct backend_table *t2 = backend_table_new(&cb, t1, 2);
    cr_assert_not_null(t2);
    cr_expect_eq(t2->b[0], t1->b[1], ":8082 is the same object");
    cr_expect_eq(t2->b[1], t1->b[2], ":8083 is the same object");
    cr_expect_neq(t2->b[2], t1->b[0]);
    cr_expect_eq(backend_table_find(t1, t2->b[2]), -1, ":8084 is new");
    cr_expect_eq(atomic_load(&t2->b[2]->state), BACKEND_UNKNOWN, "a new backend is unchecked");
    cr_expect(backend_is_up(t2->b[0]), "health carries over");
    cr_expect_eq(t2->b[0]->pw[1].m.retries, 5, "counters carry over");
    cr_expect_eq(atomic_load(&t2->b[0]->refs), 2);
    backend_table_commit(t2, &cb);
    cr_expect_eq(atomic_load(&t2->b[0]->weight), 7, "the same configured weight keeps the admin's");
    backend_table_free(t1); /* :8081 goes, the others stay */
    cr_expect_eq(atomic_load(&t2->b[0]->refs), 1);
    cr_expect_eq(t2->b[0]->pw[1].m.retries, 5);
    backend_table_free(t2);
}

Test(backend, a_changed_configured_weight_replaces_the_admins)
{
    static struct config_backend a[1], b[1];
    struct config ca, cb;
    fill_config(&ca, a, 0, 1);
    fill_config(&cb, b, 0, 1);
    b[0].weight = 3;
    struct backend_table *t1 = backend_table_new(&ca, NULL, 1);
    atomic_store(&t1->b[0]->weight, 9);
    struct backend_table *t2 = backend_table_new(&cb, t1, 1);
    cr_expect_eq(atomic_load(&t2->b[0]->weight), 9, "nothing changes before the commit");
    backend_table_commit(t2, &cb);
    cr_expect_eq(atomic_load(&t2->b[0]->weight), 3, "the file's new weight wins");
    backend_table_free(t1);
    backend_table_free(t2);
}

/* ---- state changes ---- */

Test(backend, set_state_returns_true_only_on_change_and_logs_each_change)
{
    log_set_level(LOG_INFO);
    struct backend_table *t = make_table(1);
    struct backend *b = t->b[0];
    struct capture c;
    capture_begin(&c);
    bool r1 = backend_set_state(b, BACKEND_UP, "check passed");
    bool r2 = backend_set_state(b, BACKEND_UP, "check passed again");
    bool r3 = backend_set_state(b, BACKEND_DOWN, "connection refused");
    bool r4 = backend_set_state(b, BACKEND_DOWN, "still refused");
    bool r5 = backend_set_state(b, BACKEND_UP, "recovered");
    capture_end(&c);
    cr_expect(r1, "UNKNOWN -> UP is a change");
    cr_expect_not(r2, "UP -> UP is not");
    cr_expect(r3);
    cr_expect_not(r4);
    cr_expect(r5);
    cr_expect(backend_is_up(b));
    cr_expect_eq(count_lines(c.text), 3, "one line per change, none otherwise:\n%s", c.text);
    cr_expect(has_line(c.text, "INFO backend 127.0.0.1:8081 is UP (was UNKNOWN): check passed"),
              "got:\n%s", c.text);
    cr_expect(has_line(c.text, "WARN backend 127.0.0.1:8081 is DOWN (was UP): connection refused"),
              "got:\n%s", c.text);
    cr_expect(has_line(c.text, "INFO backend 127.0.0.1:8081 is UP (was DOWN): recovered"),
              "got:\n%s", c.text);
    cr_expect_null(strstr(c.text, "again"));
    cr_expect_null(strstr(c.text, "still"));
    capture_free(&c);
    backend_table_free(t);
}

Test(backend, going_down_is_a_warning_and_is_logged_at_warn_level)
{
    log_set_level(LOG_WARN);
    struct backend_table *t = make_table(2);
    struct capture c;
    capture_begin(&c);
    backend_set_state(t->b[0], BACKEND_UP, "up");     /* INFO: filtered */
    backend_set_state(t->b[1], BACKEND_DOWN, "down"); /* WARN: kept */
    capture_end(&c);
    cr_expect_eq(count_lines(c.text), 1, "got:\n%s", c.text);
    cr_expect(has_line(c.text, "WARN backend 127.0.0.1:8082 is DOWN (was UNKNOWN): down"),
              "got:\n%s", c.text);
    capture_free(&c);
    backend_table_free(t);
}

Test(backend, null_reason_logs_an_empty_reason)
{
    log_set_level(LOG_INFO);
    struct backend_table *t = make_table(1);
    struct capture c;
    capture_begin(&c);
    cr_expect(backend_set_state(t->b[0], BACKEND_DOWN, NULL));
    capture_end(&c);
    cr_expect(has_line(c.text, "WARN backend 127.0.0.1:8081 is DOWN (was UNKNOWN): "), "got:\n%s",
              c.text);
    capture_free(&c);
    backend_table_free(t);
}

Test(backend, going_up_resets_the_failure_count)
{
    log_set_level(LOG_ERROR);
    struct backend_table *t = make_table(1);
    struct backend *b = t->b[0];
    backend_set_state(b, BACKEND_DOWN, "down");
    backend_report_failure(b, 3, "refused");
    backend_report_failure(b, 3, "refused");
    cr_expect_eq(atomic_load(&b->consecutive_fails), 2);
    backend_set_state(b, BACKEND_UP, "check passed");
    cr_expect_eq(atomic_load(&b->consecutive_fails), 0);
    /* so a recovered backend needs max_fails fresh failures to go down again */
    backend_report_failure(b, 3, "refused");
    backend_report_failure(b, 3, "refused");
    cr_expect(backend_is_up(b));
    backend_report_failure(b, 3, "refused");
    cr_expect_not(backend_is_up(b));
    backend_table_free(t);
}

/* ---- passive failures ---- */

Test(backend, passive_down_line_names_the_count_and_last_reason)
{
    struct backend_table *t = make_up_table(1);
    struct backend *b = t->b[0];
    log_set_level(LOG_INFO);
    struct capture c;
    capture_begin(&c);
    backend_report_failure(b, 2, "connect refused");
    backend_report_failure(b, 2, "connect timed out");
    backend_report_failure(b, 2, "more after down");
    capture_end(&c);
    cr_expect_not(backend_is_up(b));
    cr_expect_eq(atomic_load(&b->state), BACKEND_DOWN);
    cr_expect_eq(count_lines(c.text), 1, "only the transition is logged:\n%s", c.text);
    cr_expect(has_line(c.text, "WARN backend 127.0.0.1:8081 is DOWN (was UP): 2 consecutive "
                               "failures, last: connect timed out"),
              "got:\n%s", c.text);
    cr_expect_eq(atomic_load(&b->consecutive_fails), 3, "failures keep being counted");
    capture_free(&c);
    backend_table_free(t);
}

Test(backend, max_fails_zero_never_marks_down)
{
    struct backend_table *t = make_up_table(1);
    struct backend *b = t->b[0];
    for (int i = 0; i < 100; i++)
        backend_report_failure(b, 0, "refused");
    cr_expect(backend_is_up(b));
    cr_expect_eq(atomic_load(&b->consecutive_fails), 100);
    backend_table_free(t);
}

Test(backend, max_fails_one_marks_down_at_the_first_failure)
{
    struct backend_table *t = make_up_table(1);
    struct backend *b = t->b[0];
    backend_report_failure(b, 1, "refused");
    cr_expect_not(backend_is_up(b));
    backend_table_free(t);
}

Test(backend, failures_never_change_a_backend_that_is_not_up)
{
    log_set_level(LOG_ERROR);
    struct backend_table *t = make_table(2);
    backend_set_state(t->b[1], BACKEND_DOWN, "down");
    log_set_level(LOG_INFO);
    struct capture c;
    capture_begin(&c);
    for (int i = 0; i < 5; i++) {
        backend_report_failure(t->b[0], 1, "refused");
        backend_report_failure(t->b[1], 1, "refused");
    }
    capture_end(&c);
    /* UNKNOWN stays UNKNOWN (only the health checker decides it) and DOWN is not re-logged. */
    cr_expect_eq(atomic_load(&t->b[0]->state), BACKEND_UNKNOWN);
    cr_expect_eq(atomic_load(&t->b[1]->state), BACKEND_DOWN);
    cr_expect_eq(c.text[0], '\0', "nothing to log:\n%s", c.text);
    cr_expect_eq(atomic_load(&t->b[0]->consecutive_fails), 5);
    capture_free(&c);
    backend_table_free(t);
}

Test(backend, success_resets_only_its_own_backend)
{
    struct backend_table *t = make_up_table(2);
    backend_report_failure(t->b[0], 5, "x");
    backend_report_failure(t->b[1], 5, "x");
    backend_report_success(t->b[0]);
    cr_expect_eq(atomic_load(&t->b[0]->consecutive_fails), 0);
    cr_expect_eq(atomic_load(&t->b[1]->consecutive_fails), 1);
    backend_table_free(t);
}

#define THREADS 8
#define FAILS 2000

static void *fail_many(void *arg)
{
    struct backend *b = arg;
    for (int i = 0; i < FAILS; i++)
        backend_report_failure(b, 3, "refused");
    return NULL;
}

Test(backend, concurrent_failures_make_one_transition_and_one_line)
{
    struct backend_table *t = make_up_table(1);
    struct backend *b = t->b[0];
    log_set_level(LOG_INFO);
    struct capture c;
    capture_begin(&c);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, fail_many, b), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    capture_end(&c);
    cr_expect_eq(atomic_load(&b->state), BACKEND_DOWN);
    cr_expect_eq(atomic_load(&b->consecutive_fails), THREADS * FAILS, "no failure lost");
    cr_expect_eq(count_lines(c.text), 1, "exactly one DOWN line:\n%s", c.text);
    cr_expect_not_null(strstr(c.text, "is DOWN (was UP)"));
    capture_free(&c);
    backend_table_free(t);
}
