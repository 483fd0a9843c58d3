/* log — see log.h. */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/jsonw.h"

static size_t min_len(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* The level and the format are read by every thread at every line, and the format is changed by
 * a reload (logFormat) on another thread: atomics, relaxed (a line racing the change takes either
 * form, whole). */
static _Atomic int current_level = LOG_INFO;
static const char *prog_name = "golb";
static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const json_levels[] = {"error", "warn", "info", "debug"};
static _Atomic bool json_lines;

void log_set_json(bool on)
{
    atomic_store_explicit(&json_lines, on, memory_order_relaxed);
}

static bool json_on(void)
{
    return atomic_load_explicit(&json_lines, memory_order_relaxed);
}

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

void log_set_name(const char *name)
{
    prog_name = name;
}

static void vlog(enum log_level level, const char *event, const char *fmt, va_list ap);

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, "message", fmt, ap);
    va_end(ap);
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, event, fmt, ap);
    va_end(ap);
}

static void vlog_json(enum log_level level, const char *event, const char *fmt, va_list ap)
{
    char msg[2048], line[2048 * 6 + 512];
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t mlen = m < 0 ? 0 : min_len((size_t)m, sizeof(msg) - 1);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct jsonw j;
    jsonw_init(&j, line, sizeof(line) - 1);
    jsonw_raw(&j, "{\"time\":\"", 9);
    jsonw_time_ms(&j, (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    jsonw_raw(&j, "\"", 1);
    jsonw_key(&j, "level", false);
    jsonw_str(&j, json_levels[level], strlen(json_levels[level]), 0);
    jsonw_key(&j, "program", false);
    jsonw_str(&j, prog_name, strlen(prog_name), 64);
    jsonw_key(&j, "pid", false);
    jsonw_i64(&j, (int64_t)getpid());
    jsonw_key(&j, "event", false);
    jsonw_str(&j, event, strlen(event), 64);
    jsonw_key(&j, "msg", false);
    jsonw_str(&j, msg, mlen, 0); /* escaping at most sextuples 2047 bytes: fits */
    jsonw_raw(&j, "}", 1);
    line[j.len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, j.len);
    (void)w;
}

static void vlog(enum log_level level, const char *event, const char *fmt, va_list ap)
{
    if ((int)level > atomic_load_explicit(&current_level, memory_order_relaxed))
        return;
    if (json_on()) {
        vlog_json(level, event, fmt, ap);
        return;
    }
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), prog_name, (int)getpid(),
                     level_names[level]);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)(sizeof(line) - 2); /* a name longer than the line: keep what fits */
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : min_len((size_t)m, sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    /* One write per line so concurrent threads never interleave within a line. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
