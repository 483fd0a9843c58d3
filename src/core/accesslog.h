/* accesslog — one line per request, written by a thread of its own so that logging never blocks
 * a worker.
 *
 *   worker ── formats a line on its stack ──► its own ring (single producer, single consumer)
 *                                               │  full: the line is dropped and counted
 *   writer thread ── every 20 ms, when a ring is half full, at stop ──► write(2) to accessLogPath
 *
 * A worker only copies bytes into its ring and publishes the new head with a release store: no
 * lock, no system call. The writer drains every ring into the destination; when the destination
 * is slow (a full pipe, a stalled disk) the rings fill and new lines are dropped, never waited
 * for, and golb_log_lines_dropped_total{log="access"} counts them. SIGUSR1 makes the writer
 * reopen accessLogPath (logrotate's move-then-signal).
 *
 * Formats: json (one object per line, OpenTelemetry attribute names) or text (one readable line
 * with the same facts), formatted by obs_format_line() (obs.h); see README "Observability".
 * This module only moves lines: it knows nothing of requests.
 */
#ifndef GOLB_ACCESSLOG_H
#define GOLB_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum accesslog_format {
    ACCESSLOG_OFF = 0,
    ACCESSLOG_TEXT,
    ACCESSLOG_JSON,
};

#define ACCESSLOG_RING_SIZE (1024u * 1024u) /* per worker; a power of two */
#define ACCESSLOG_LINE_MAX 8192

struct accesslog_ring;

/* Opens path (NULL: stdout) and starts the writer thread. Returns 0 or -errno. */
int accesslog_start(enum accesslog_format format, const char *path);
/* Writes what the rings still hold (bounded wait), stops the thread, frees every ring. */
void accesslog_stop(void);
/* A reload (control thread): the format and destination the new configuration names. Starts the
 * access log when it was off; OFF stops new lines (the writer stays); a new path (NULL: stdout)
 * is opened here, so a reload fails with -errno when it cannot be, and the writer switches to it
 * after writing out what the rings already hold (this waits for that: lines pushed after the call
 * go to the new destination). Workers create their ring when they adopt a
 * generation that logs (worker.c). Returns 0 or -errno. */
int accesslog_configure(enum accesslog_format format, const char *path);
/* Thread-safe, cheap: asks the writer to reopen the file before its next write. */
void accesslog_reopen(void);
enum accesslog_format accesslog_current(void);

/* A ring for one worker (owned by the access log: freed by accesslog_stop()). NULL when the
 * access log is off or on allocation failure. */
struct accesslog_ring *accesslog_ring_new(void);

/* Queues one formatted line in ring, or drops and counts it when the ring is full. Called only by
 * the ring's worker. */
void accesslog_push(struct accesslog_ring *ring, const char *line, size_t len);

/* Lines dropped so far, all workers. */
uint64_t accesslog_dropped(void);

#endif
