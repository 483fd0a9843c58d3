/* notify — the service manager notification protocol (sd_notify(3), systemd.io/NOTIFY), written
 * directly on a datagram socket so golb needs no libsystemd (systemd recommends this; HAProxy does
 * the same). Under `Type=notify` / `Type=notify-reload` systemd sets $NOTIFY_SOCKET: an AF_UNIX
 * SOCK_DGRAM address, a path ("/run/systemd/notify") or an abstract name ("@name"). Each call
 * sends one datagram of newline-separated VAR=value assignments.
 *
 * Without $NOTIFY_SOCKET every call is a no-op. Sends never block (non-blocking socket, one
 * sendto per message), are safe from any thread once notify_init() has run, and a failed send is
 * logged once (later failures silently): golb never stops serving because systemd is gone.
 * STATUS= text is cut to one line (a newline would start another assignment). */
#ifndef GOLB_NOTIFY_H
#define GOLB_NOTIFY_H

/* Reads $NOTIFY_SOCKET and opens the socket. Call once at start, before other threads run (a
 * second call replaces the first: tests). 0 when unset (no-op) or ready; -errno for a value golb
 * cannot use (logged; notifications then stay off). */
int notify_init(void);
/* "READY=1\nSTATUS=<status>": golb serves (after start-up or after a reload). */
void notify_ready(const char *status);
/* "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>\nSTATUS=<status>": a reload begins. */
void notify_reloading(const char *status);
/* "STOPPING=1\nSTATUS=<status>": shutdown (draining) begins. */
void notify_stopping(const char *status);
/* "STATUS=<status>": free-form state shown by `systemctl status`. */
void notify_status(const char *status);

/* Each function leaves out the STATUS= line when status is NULL. */

#endif
