/* mcache — see mcache.h. */
#include "base/mcache.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define MCACHE_MAGIC 0x6d636863u /* "mchc" */
#define HEAP_CLASS MCACHE_CLASSES

/* Under AddressSanitizer every block goes back to the heap at once: a cached block would hide
 * a use after free from it. */
#if defined(__SANITIZE_ADDRESS__)
#define BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BYPASS 1
#endif
#endif
#ifndef BYPASS
#define BYPASS 0
#endif

/* The header before every block (16 bytes: the block keeps malloc's alignment). */
struct mcache_block {
    uint32_t cls; /* size class, HEAP_CLASS for a block larger than the last class */
    uint32_t magic;
    struct mcache_block *next; /* on its class's free list */
};

_Static_assert(sizeof(struct mcache_block) == 16, "a block's header keeps 16-byte alignment");

static size_t class_size(uint32_t k)
{
    return (size_t)64 << k;
}

static uint32_t class_of(size_t n)
{
    if (n <= 64)
        return 0;
    uint32_t k = (uint32_t)(64 - __builtin_clzll((unsigned long long)(n - 1))) - 6;
    return k < MCACHE_CLASSES ? k : HEAP_CLASS;
}

static struct mcache_block *head_of(void *p)
{
    struct mcache_block *b = (struct mcache_block *)p - 1;
    assert(b->magic == MCACHE_MAGIC);
    return b;
}

bool mcache_enabled(void)
{
    return !BYPASS;
}

void mcache_init(struct mcache *m)
{
    memset(m, 0, sizeof(*m));
    for (int k = 0; k < MCACHE_CLASSES; k++)
        m->keep[k] = MCACHE_MIN_KEEP;
}

static void trim_to(struct mcache *m, uint32_t k, uint32_t keep)
{
    while (m->nfree[k] > keep) {
        struct mcache_block *b = m->free[k];
        m->free[k] = b->next;
        m->nfree[k]--;
        free(b);
    }
}

void mcache_destroy(struct mcache *m)
{
    for (uint32_t k = 0; k < MCACHE_CLASSES; k++)
        trim_to(m, k, 0);
}

void mcache_tick(struct mcache *m)
{
    for (uint32_t k = 0; k < MCACHE_CLASSES; k++) {
        m->keep[k] = MAX(m->peak[k], (uint32_t)MCACHE_MIN_KEEP);
        m->peak[k] = m->in_use[k];
        trim_to(m, k, m->keep[k]);
    }
}

void *mcache_alloc(struct mcache *m, size_t n)
{
    uint32_t k = class_of(n);
    struct mcache_block *b;
    if (k == HEAP_CLASS) {
        if (n > SIZE_MAX - sizeof(*b) || !(b = malloc(sizeof(*b) + n)))
            return NULL;
    } else if (m && m->free[k]) {
        b = m->free[k];
        m->free[k] = b->next;
        m->nfree[k]--;
    } else if (!(b = malloc(sizeof(*b) + class_size(k)))) {
        return NULL;
    }
    b->cls = k;
    b->magic = MCACHE_MAGIC;
    b->next = NULL;
    if (m && k != HEAP_CLASS && ++m->in_use[k] > m->peak[k])
        m->peak[k] = m->in_use[k];
    return b + 1;
}

void *mcache_calloc(struct mcache *m, size_t k, size_t n)
{
    if (n && k > SIZE_MAX / n)
        return NULL;
    void *p = mcache_alloc(m, k * n);
    if (p)
        memset(p, 0, k * n);
    return p;
}

void mcache_free(struct mcache *m, void *p)
{
    if (!p)
        return;
    struct mcache_block *b = head_of(p);
    uint32_t k = b->cls;
    b->magic = 0;
    if (k == HEAP_CLASS || !m || BYPASS) {
        free(b);
        return;
    }
    if (m->in_use[k])
        m->in_use[k]--;
    /* up to what the last second kept, or more while this second's peak is higher (a burst) */
    if (m->nfree[k] < m->keep[k] || m->nfree[k] < m->peak[k]) {
        b->next = m->free[k];
        m->free[k] = b;
        m->nfree[k]++;
        return;
    }
    free(b);
}

void *mcache_realloc(struct mcache *m, void *p, size_t n)
{
    if (!p)
        return mcache_alloc(m, n);
    if (n == 0) {
        mcache_free(m, p);
        return NULL;
    }
    struct mcache_block *b = head_of(p);
    if (b->cls == HEAP_CLASS) {
        if (n > SIZE_MAX - sizeof(*b))
            return NULL;
        struct mcache_block *q = realloc(b, sizeof(*b) + n);
        return q ? q + 1 : NULL;
    }
    size_t have = class_size(b->cls);
    if (n <= have)
        return p;
    void *q = mcache_alloc(m, n);
    if (!q)
        return NULL;
    memcpy(q, p, have);
    mcache_free(m, p);
    return q;
}
