/* log — one line per event on stderr: "2026-11-24T14:22:03.123Z golb[pid] LEVEL message".
 * Thread-safe (one write(2) per line); never blocks the data path on a lock.
 * With logFormat: json each line is one JSON object instead:
 *   {"time":"2026-11-24T14:22:03.123Z","level":"info","pid":123,"event":"listening","msg":"..."}
 * `event` names what happened (start, listening, backend_state, admin, stop, ...); lines logged
 * with log_msg() carry "event":"message". The message is escaped (jsonw), never raw. */
#ifndef GOLB_LOG_H
#define GOLB_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
};

void log_set_level(enum log_level level);
void log_set_name(const char *name); /* program name in each line, default "golb" */
void log_set_json(bool on); /* logFormat: json; any thread, at any time (an atomic) */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with an event name, which JSON lines carry in "event". */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
