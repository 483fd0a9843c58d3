/* log — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static size_t min_len(size_t a, size_t b)
{
    return a < b ? a : b;
}

static enum log_level current_level = LOG_INFO;
static const char *prog_name = "golb";
static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_level(enum log_level level)
{
    current_level = level;
}

void log_set_name(const char *name)
{
    prog_name = name;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > current_level)
        return;
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
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : min_len((size_t)m, sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    /* One write per line so concurrent threads never interleave within a line. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
