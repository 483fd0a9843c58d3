/* admin_int — the body of struct admin and what admin.c and admin_status.c give each other:
 * private to those two files (scripts/check-layers.sh refuses an include of a *_int.h header from
 * another folder). Everything outside sees only admin.h.
 *
 *   admin.c         the listener, connections, the HTTP/1 server and its routes, changes, reloads,
 *                   the thread and its life cycle
 *   admin_status.c  the per-second samples of every backend's and route's sums and the JSON of
 *                   /api/v1/status (and of one backend, after a change) built from them
 *
 * All of it runs on the admin thread, except what struct admin marks as shared.
 */
#ifndef GOLB_ADMIN_INT_H
#define GOLB_ADMIN_INT_H

#include "admin/admin.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "base/loop.h"

struct admin_conn;
struct admin_pending;
struct generation;
struct route_sample;
struct sample;

struct admin {
    struct generation *gen; /* the generation the samples below are laid out for (a reference) */
    admin_reload_fn reload;
    void *reload_arg;
    struct sockaddr_storage addr; /* as bound at start (a reload does not move the admin) */
    pthread_mutex_t listeners_lock;
    const char *version;
    char *listeners;
    char name[128];    /* the bound address: "127.0.0.1:9901", "[::1]:9901", "unix:/path" */
    char origin[160];  /* "http://" + name */
    char origin_lo[64]; /* "http://localhost:PORT" for loopback addresses, else "" */
    bool unix_socket;
    dev_t sock_dev; /* the unix socket's file, as bound: removed at exit only if still there */
    ino_t sock_ino;
    int64_t start_ms;
    struct loop *loop;
    _Atomic bool stop_asked; /* admin_stop: the loop's wake-up callback stops it */
    pthread_mutex_t pending_lock; /* pending: added and removed on the loop, filled by others */
    struct admin_pending *pending;
    uint64_t last_ticket;
    struct loop_io listen_io;
    struct loop_timer sample_timer;
    pthread_t thread;
    bool started;
    _Atomic bool draining;
    struct admin_conn *conns;
    int nconns;
    /* admin_status.c's, as are RATE_WINDOW and HISTORY. Per backend (every pool's, then the process
     * at gen->nbackends): a ring of RATE_WINDOW + 1 samples, one a second; per route the same,
     * lighter */
    struct sample *samples; /* [n + 1][RATE_WINDOW + 1] */
    struct route_sample *route_samples; /* [nroutes][RATE_WINDOW + 1] */
    int nsamples, sample_at;
    /* per backend (and the process at index n): requests and errors per second, one a second */
    float *history; /* [n + 1][HISTORY][2] */
    int nhistory, history_at;
};

/* A JSON string of s, cut after max_bytes (marked as cut by jsonw); admin_fjson_str cuts at 160. */
void admin_fjson_str_max(FILE *f, const char *s, size_t max_bytes);
void admin_fjson_str(FILE *f, const char *s);

/* admin_status.c. Lays the samples and history out for a->gen (at start): 0, or -ENOMEM. */
int admin_status_init(struct admin *a);
/* Takes the first sample, then one every second on a->loop (a->sample_timer, which admin_stop
 * cancels). */
void admin_status_start(struct admin *a);
/* Follows a reload: the samples and history move to the running generation, which becomes
 * a->gen (each request and each sampling tick calls it). */
void admin_status_sync(struct admin *a);
/* The /api/v1/status document (with each backend's and the process's per-second history when
 * `history`), ending with a newline. */
void admin_status_json(struct admin *a, FILE *f, bool history);
/* Backend i of pool p of a->gen, as one JSON object (what a change answers with). */
void admin_status_backend_json(struct admin *a, FILE *f, int p, int i, bool history);
void admin_status_free(struct admin *a);

#endif
