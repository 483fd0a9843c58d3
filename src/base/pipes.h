/* pipes — a per-worker pool of non-blocking pipes for splice(2).
 *
 * Large Content-Length and close-delimited bodies move socket → pipe → socket with splice, so
 * their bytes never cross into user space. A pipe is taken when such a body starts and given back
 * once it is empty, or when the receiving side stalls (what is left in it, bounded by stall_max,
 * moved to a buffer first): a stalled transfer costs its two sockets, not four descriptors. One
 * that still holds bytes when its exchange dies is closed instead (its content belongs to
 * nobody). Pipes are per thread and never locked.
 */
#ifndef GOLB_PIPES_H
#define GOLB_PIPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kpipe {
    int r, w;
    uint32_t bytes; /* bytes inside, spliced in but not yet out */
};

struct pipe_pool {
    struct kpipe *free;
    size_t nfree, max_free;
    size_t size; /* F_SETPIPE_SZ applied to new pipes (0: the system default) */
};

void pipe_pool_init(struct pipe_pool *pool, size_t max_free, size_t size);
void pipe_pool_destroy(struct pipe_pool *pool);
/* Fills *p with an empty pipe. Returns 0 or -errno (out of descriptors: the caller falls back to
 * copying through a buffer). */
int pipe_pool_get(struct pipe_pool *pool, struct kpipe *p);
/* Returns p to the pool when empty, closes it otherwise; p is reset to {-1, -1, 0}. */
void pipe_pool_put(struct pipe_pool *pool, struct kpipe *p);

/* At most this much is spliced into a pipe per call. */
#define PIPE_SPLICE_CHUNK (1u << 20)

enum pipe_splice_err {
    PIPE_SPLICE_OK = 0,
    PIPE_SPLICE_SRC_FAILED,
    PIPE_SPLICE_DST_FAILED,
};

/* Moves up to *left bytes (UINT64_MAX: until EOF) from socket src to socket dst through pipe p
 * (the caller's readiness flags follow the transport contract, conn.h), never reading more than
 * *left from src. The pipe is refilled only once empty and only while dst is writable, so it
 * bounds what is in flight. *left counts down and *moved up as bytes reach dst. *budget counts
 * down the same way; no refill starts once it is 0 (so a call moves at most its budget plus one
 * pipe). stall_max: at most this much should be left in the pipe when dst stops taking bytes
 * (the caller can then move it into a buffer that size and give the pipe back): each refill is
 * bounded by the room dst's send buffer has (SO_MEMINFO and SIOCOUTQ, with a margin for the
 * kernel's overhead), or stall_max when it has less; PIPE_SPLICE_CHUNK: no bound, no look. *room
 * (with a bound) is the caller's credit: the room found at the last look less what was spliced
 * in since, which can only be less than the room now (dst only drains); pipe_splice looks again
 * (two syscalls) only when the credit does not cover a whole refill. Start it at 0. Returns true
 * on progress; sets *src_eof at EOF, *err on a hard error. */
bool pipe_splice(struct kpipe *p, int src, bool *src_readable, bool *src_eof, int dst,
                 bool *dst_writable, uint64_t *left, uint64_t *moved, size_t *budget,
                 uint32_t stall_max, uint64_t *room, enum pipe_splice_err *err);
/* Moves what p holds (at most cap bytes: the caller checked p->bytes) into out, emptying the
 * pipe. Returns the bytes moved, or -errno. */
ssize_t pipe_drain(struct kpipe *p, char *out, size_t cap);

#endif
