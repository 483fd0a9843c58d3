/* Unit tests for log: the documented line format, level filtering, the program name, truncation
 * of long messages, and one write per line (lines from several threads never interleave).
 * Each test captures fd 2 into a memory file (capture_begin/end, tests/support/unit_support.h). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "base/log.h"

/* Matches s against an extended regex, whole string. */
static bool matches(const char *s, const char *pattern)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0, "bad regex %s", pattern);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

Test(log, line_format)
{
    log_set_level(LOG_INFO);
    struct capture c;
    capture_begin(&c);
    time_t before = time(NULL);
    log_info("hello %s %d%%", "world", 42);
    time_t after = time(NULL);
    capture_end(&c);

    char pattern[256];
    snprintf(pattern, sizeof(pattern),
             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z golb\\[%d\\] INFO "
             "hello world 42%%\n$",
             (int)getpid());
    cr_expect(matches(c.text, pattern), "line %s does not match %s", c.text, pattern);

    /* The timestamp is UTC and now: parse it back and compare with the clock. */
    struct tm tm = {0};
    int ms = -1;
    cr_assert_eq(sscanf(c.text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                        &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                 7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t stamp = timegm(&tm);
    cr_expect(stamp >= before - 1 && stamp <= after + 1, "timestamp %lld not within [%lld, %lld]",
              (long long)stamp, (long long)before, (long long)after);
    cr_expect(ms >= 0 && ms <= 999);
    capture_free(&c);
}

Test(log, level_names)
{
    log_set_level(LOG_DEBUG);
    struct capture c;
    capture_begin(&c);
    log_error("e");
    log_warn("w");
    log_info("i");
    log_debug("d");
    log_msg(LOG_WARN, "via log_msg");
    capture_end(&c);
    cr_assert_eq(count_lines(c.text), 5, "got:\n%s", c.text);
    const char *want[] = {" ERROR e\n", " WARN w\n", " INFO i\n", " DEBUG d\n",
                          " WARN via log_msg\n"};
    const char *line = c.text;
    for (int i = 0; i < 5; i++) {
        const char *nl = strchr(line, '\n');
        size_t wl = strlen(want[i]);
        cr_expect((size_t)(nl + 1 - line) > wl && memcmp(nl + 1 - wl, want[i], wl) == 0,
                  "line %d: %.*s must end with %s", i, (int)(nl - line), line, want[i]);
        line = nl + 1;
    }
    capture_free(&c);
}

static void log_all_levels(void)
{
    log_error("level-error");
    log_warn("level-warn");
    log_info("level-info");
    log_debug("level-debug");
}

Test(log, default_level_is_info)
{
    struct capture c;
    capture_begin(&c);
    log_all_levels();
    capture_end(&c);
    cr_expect_eq(count_lines(c.text), 3);
    cr_expect_not_null(strstr(c.text, "level-info"));
    cr_expect_null(strstr(c.text, "level-debug"), "debug must be filtered at the default level");
    capture_free(&c);
}

Test(log, level_filtering)
{
    struct {
        enum log_level level;
        int lines;
        const char *last_kept, *first_dropped;
    } cases[] = {
        {LOG_ERROR, 1, "level-error", "level-warn"},
        {LOG_WARN, 2, "level-warn", "level-info"},
        {LOG_INFO, 3, "level-info", "level-debug"},
        {LOG_DEBUG, 4, "level-debug", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        log_set_level(cases[i].level);
        struct capture c;
        capture_begin(&c);
        log_all_levels();
        capture_end(&c);
        cr_expect_eq(count_lines(c.text), (size_t)cases[i].lines, "level %d:\n%s",
                     (int)cases[i].level, c.text);
        cr_expect_not_null(strstr(c.text, cases[i].last_kept), "level %d", (int)cases[i].level);
        if (cases[i].first_dropped)
            cr_expect_null(strstr(c.text, cases[i].first_dropped), "level %d", (int)cases[i].level);
        capture_free(&c);
    }
}

Test(log, filtered_lines_write_nothing)
{
    log_set_level(LOG_ERROR);
    struct capture c;
    capture_begin(&c);
    log_info("%s", "never");
    log_debug("never");
    capture_end(&c);
    cr_expect_eq(c.len, 0);
    capture_free(&c);
}

Test(log, program_name)
{
    log_set_level(LOG_INFO);
    log_set_name("toy-backend");
    struct capture c;
    capture_begin(&c);
    log_info("x");
    capture_end(&c);
    char want[64];
    snprintf(want, sizeof(want), "Z toy-backend[%d] INFO x\n", (int)getpid());
    cr_expect_not_null(strstr(c.text, want), "got %s", c.text);
    capture_free(&c);
}

Test(log, long_message_is_truncated_to_one_line)
{
    log_set_level(LOG_INFO);
    size_t n = 5000;
    char *msg = malloc(n + 1);
    memset(msg, 'a', n);
    msg[n] = '\0';
    msg[0] = '<';
    struct capture c;
    capture_begin(&c);
    log_warn("%s", msg);
    log_info("after");
    capture_end(&c);
    cr_assert_eq(count_lines(c.text), 2, "the long message must stay one line");
    const char *nl = strchr(c.text, '\n');
    size_t first = (size_t)(nl - c.text) + 1;
    cr_expect_eq(first, 2047, "the line fills the 2 KiB line buffer: %zu", first);
    cr_expect_not_null(strstr(c.text, " WARN <aaaa"));
    cr_expect_eq(nl[-1], 'a');
    cr_expect(matches(nl + 1, " INFO after\n$"));
    free(msg);
    capture_free(&c);
}

Test(log, message_that_just_fits_is_whole)
{
    log_set_level(LOG_INFO);
    /* Find the prefix length, then log a message that exactly fills the line. */
    struct capture c;
    capture_begin(&c);
    log_info("%s", "");
    capture_end(&c);
    size_t prefix = c.len - 1; /* without the '\n' */
    capture_free(&c);
    size_t room = 2048 - prefix - 2; /* line buffer minus NUL and '\n' */
    char *msg = malloc(room + 1);
    memset(msg, 'b', room);
    msg[room - 1] = '!';
    msg[room] = '\0';
    capture_begin(&c);
    log_info("%s", msg);
    capture_end(&c);
    cr_expect_eq(c.len, prefix + room + 1);
    cr_expect_eq(c.text[c.len - 2], '!', "the last character of a message that fits is kept");
    cr_expect_eq(c.text[c.len - 1], '\n');
    free(msg);
    capture_free(&c);
}

/* Regression, fixed (log.c log_msg): a program name longer than the 2 KiB line buffer overflows it. snprintf
 * returns the untruncated prefix length n > sizeof(line); then `line + n` points past the buffer
 * and `sizeof(line) - n - 1` wraps around as a size_t, so vsnprintf writes out of bounds (ASan:
 * stack-buffer-overflow). Expected: one line, truncated, ending in '\n'. */
Test(log, very_long_program_name_is_truncated_not_overflowed)
{
    log_set_level(LOG_INFO);
    static char name[3000];
    memset(name, 'n', sizeof(name) - 1);
    log_set_name(name);
    struct capture c;
    capture_begin(&c);
    log_info("message");
    capture_end(&c);
    cr_expect_eq(count_lines(c.text), 1);
    cr_expect_leq(c.len, 2048);
    cr_expect_eq(c.text[c.len - 1], '\n');
    capture_free(&c);
}

#define THREADS 4
#define LINES 500

static void *log_many(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < LINES; i++)
        log_info("thread %d line %d %s", id, i,
                 "padding-padding-padding-padding-padding-padding-padding-padding-padding");
    return NULL;
}

Test(log, concurrent_lines_never_interleave)
{
    log_set_level(LOG_INFO);
    struct capture c;
    capture_begin(&c);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, log_many, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    capture_end(&c);
    cr_assert_eq(count_lines(c.text), (size_t)THREADS * LINES);
    int seen[THREADS] = {0};
    char pattern[256];
    snprintf(pattern, sizeof(pattern),
             "^[0-9T:.-]{23}Z golb\\[%d\\] INFO thread [0-9] line [0-9]+ (padding-){8}padding$",
             (int)getpid());
    regex_t re;
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    char *save = NULL;
    for (char *line = strtok_r(c.text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cr_assert_eq(regexec(&re, line, 0, NULL, 0), 0, "mangled line: %s", line);
        int id, n;
        cr_assert_eq(sscanf(strstr(line, "thread "), "thread %d line %d", &id, &n), 2);
        cr_assert(id >= 0 && id < THREADS);
        cr_expect_eq(n, seen[id], "thread %d: line %d out of order", id, n);
        seen[id] = n + 1;
    }
    regfree(&re);
    for (int i = 0; i < THREADS; i++)
        cr_expect_eq(seen[i], LINES);
    capture_free(&c);
}

static _Atomic bool flipping;

static void *flip_format(void *arg)
{
    (void)arg;
    for (bool on = true; atomic_load(&flipping); on = !on)
        log_set_json(on);
    return NULL;
}

/* A reload switches logFormat on its thread while workers log (issue 15, item 17: the switch was a
 * plain bool, a data race). Each line is whole in one format or the other, never a mix. Under
 * ThreadSanitizer (-fsanitize=thread) the old plain bool was reported here. */
Test(log, switching_format_while_threads_log_gives_whole_lines)
{
    log_set_level(LOG_INFO);
    log_set_name("golb");
    struct capture c;
    capture_begin(&c);
    atomic_store(&flipping, true);
    pthread_t flipper, th[THREADS];
    cr_assert_eq(pthread_create(&flipper, NULL, flip_format, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, log_many, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&flipping, false);
    pthread_join(flipper, NULL);
    log_set_json(false);
    capture_end(&c);
    cr_assert_eq(count_lines(c.text), (size_t)THREADS * LINES);
    char *save = NULL;
    for (char *line = strtok_r(c.text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        static const char *const json_re =
            "^\\{\"time\":\"[^\"]+\",\"level\":\"info\",.*\"msg\":\"thread [0-9] line [0-9]+ "
            "(padding-){8}padding\"\\}$";
        static const char *const text_re =
            "^[0-9T:.-]{23}Z golb\\[[0-9]+\\] INFO thread [0-9] line [0-9]+ (padding-){8}padding$";
        cr_assert(matches(line, line[0] == '{' ? json_re : text_re), "mixed line: %s", line);
    }
    capture_free(&c);
}
