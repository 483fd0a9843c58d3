/* log — one line per event on stderr: "2026-11-24T14:22:03.123Z golb[pid] LEVEL message".
 * Thread-safe (one write(2) per line); never blocks the data path on a lock. */
#ifndef GOLB_LOG_H
#define GOLB_LOG_H

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
};

void log_set_level(enum log_level level);
void log_set_name(const char *name); /* program name in each line, default "golb" */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
