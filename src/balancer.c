/* balancer — see balancer.h. */
#include "balancer.h"

#include <stddef.h>
#include <string.h>

#include "backend.h"
#include "util.h"

/* Every strategy golb knows, by name. Listed explicitly: no constructor magic. */
static const struct lb_ops *const registry[] = {
    &lb_rr_ops,
};

const struct lb_ops *balancer_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(registry); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

int balancer_init(struct balancer *b, const struct lb_ops *ops, struct backend_table *table)
{
    b->ops = ops;
    b->table = table;
    b->state = ops->create(table);
    return b->state ? 0 : -1;
}

void balancer_destroy(struct balancer *b)
{
    if (b->ops && b->state)
        b->ops->destroy(b->state);
    b->state = NULL;
}

int balancer_pick(struct balancer *b, const struct lb_tried *tried)
{
    return b->ops->pick(b->state, b->table, tried);
}

void balancer_release(struct balancer *b, int idx, enum lb_outcome outcome)
{
    if (b->ops->release)
        b->ops->release(b->state, b->table, idx, outcome);
}

bool lb_tried_has(const struct lb_tried *tried, int idx)
{
    if (!tried)
        return false;
    for (int i = 0; i < tried->n; i++)
        if (tried->idx[i] == idx)
            return true;
    return false;
}

void lb_tried_add(struct lb_tried *tried, int idx)
{
    if (tried->n < LB_MAX_TRIES)
        tried->idx[tried->n++] = idx;
}

bool lb_eligible(const struct backend_table *table, const struct lb_tried *tried, int idx)
{
    /* drain and maint take no new request; the admin state is one relaxed load */
    return backend_is_up(&table->b[idx]) && backend_admin(&table->b[idx]) == BACKEND_ADMIN_READY &&
           !lb_tried_has(tried, idx);
}
