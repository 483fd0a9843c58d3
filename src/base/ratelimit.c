/* ratelimit — see ratelimit.h. */
#include "base/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#define TOKEN 1000000u /* one token, in millionths */

struct bucket {
    uint64_t key;    /* 0: an empty way (key 0 is stored as 1) */
    uint64_t tokens; /* millionths of a token */
    uint64_t last;   /* ms of the last refill (= the key's last request) */
};

struct ratelimit {
    size_t nsets;     /* a power of two */
    struct bucket *b; /* [nsets * RATELIMIT_WAYS] */
};

struct ratelimit *ratelimit_new(size_t entries)
{
    struct ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->nsets = 1;
    while (rl->nsets * RATELIMIT_WAYS < entries)
        rl->nsets *= 2;
    rl->b = calloc(rl->nsets * RATELIMIT_WAYS, sizeof(*rl->b));
    if (!rl->b) {
        free(rl);
        return NULL;
    }
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl)
        free(rl->b);
    free(rl);
}

size_t ratelimit_memory(const struct ratelimit *rl)
{
    return sizeof(*rl) + rl->nsets * RATELIMIT_WAYS * sizeof(*rl->b);
}

size_t ratelimit_capacity(const struct ratelimit *rl)
{
    return rl->nsets * RATELIMIT_WAYS;
}

uint32_t ratelimit_take(struct ratelimit *rl, uint64_t key, uint32_t rate_mrps, uint32_t burst,
                        uint64_t now_ms)
{
    uint64_t cap = (uint64_t)(burst ? burst : 1) * TOKEN;
    uint64_t rate = rate_mrps ? rate_mrps : 1; /* millionths of a token per ms */
    key = key ? key : 1;
    /* the set from the key's high bits after a multiplicative mix (keys may be structured) */
    size_t set = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (rl->nsets - 1);
    struct bucket *w = rl->b + set * RATELIMIT_WAYS, *b = NULL, *victim = w;
    for (int i = 0; i < RATELIMIT_WAYS; i++) {
        if (w[i].key == key) {
            b = &w[i];
            break;
        }
        if (victim->key && (!w[i].key || w[i].last < victim->last))
            victim = &w[i];
    }
    if (!b) { /* new here (or evicted before): a full bucket */
        b = victim;
        b->key = key;
        b->tokens = cap;
        b->last = now_ms;
    } else if (now_ms > b->last) {
        uint64_t dt = now_ms - b->last;
        uint64_t room = cap - b->tokens; /* tokens <= cap always */
        b->tokens = dt >= room / rate + 1 ? cap : b->tokens + dt * rate;
        if (b->tokens > cap)
            b->tokens = cap;
        b->last = now_ms;
    }
    if (b->tokens >= TOKEN) {
        b->tokens -= TOKEN;
        return 0;
    }
    uint64_t wait = (TOKEN - b->tokens + rate - 1) / rate;
    return wait > UINT32_MAX ? UINT32_MAX : wait ? (uint32_t)wait : 1;
}
