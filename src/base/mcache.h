/* mcache — a worker's cache of freed small heap blocks, by size class, in front of malloc.
 *
 * An HTTP/2 request through golb makes ~35 small allocations (nghttp2's streams, frames, header
 * buffers and copies, on both sides, and golb's stream objects) and frees them a moment later,
 * with hundreds of streams in flight at once: more than glibc's per-thread cache holds (7 per
 * size), so most of them went through its bins and cost a fifth of the proxy's CPU. Here a freed
 * block goes on its class's list and the next allocation of that class takes it back.
 *
 * Bounded like buf_pool: a class keeps at most the last second's peak of its blocks in use
 * (mcache_tick, once a second), so a burst's blocks go back to the heap a second or two after.
 * One thread only; a block carries its class in a 16-byte header, so any mcache (or none: NULL
 * means the heap, with the same header) frees any block. Not for blocks freed elsewhere than
 * through mcache_free. */
#ifndef GOLB_MCACHE_H
#define GOLB_MCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MCACHE_CLASSES 8 /* 64, 128, ... 8192 bytes; larger ones come from the heap each time */
#define MCACHE_MIN_KEEP 64 /* per class, whatever the peak */

struct mcache_block;

struct mcache {
    struct mcache_block *free[MCACHE_CLASSES];
    uint32_t nfree[MCACHE_CLASSES];
    uint32_t in_use[MCACHE_CLASSES];
    uint32_t peak[MCACHE_CLASSES]; /* since the last tick */
    uint32_t keep[MCACHE_CLASSES]; /* free blocks kept at most */
};

void mcache_init(struct mcache *m);
/* Gives every kept block back to the heap (the blocks in use stay valid: free them with
 * mcache_free(NULL, p) or another cache). */
void mcache_destroy(struct mcache *m);
/* Once a second: each class keeps at most what the last second needed at its peak. */
void mcache_tick(struct mcache *m);

void *mcache_alloc(struct mcache *m, size_t n);
void *mcache_calloc(struct mcache *m, size_t k, size_t n);
void *mcache_realloc(struct mcache *m, void *p, size_t n);
void mcache_free(struct mcache *m, void *p);
/* False in AddressSanitizer builds: every block goes back to the heap at once (a cached one
 * would hide a use after free). */
bool mcache_enabled(void);

#endif
