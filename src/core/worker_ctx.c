/* worker_ctx — see worker_ctx.h. */
#include "core/worker_ctx.h"

#include "core/generation.h"

void worker_ctx_pin(struct worker_ctx *w, struct generation *g)
{
    generation_pin(g, w->id);
}

void worker_ctx_unpin(struct worker_ctx *w, struct generation *g)
{
    if (generation_unpin(g, w->id) && g != w->gen)
        generation_unref(g); /* its last request here, and no longer current here */
}

void worker_ctx_session_add(struct worker_ctx *w, struct worker_session *s,
                            const struct worker_session_ops *ops)
{
    s->ops = ops;
    s->prev = NULL;
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
}

void worker_ctx_session_remove(struct worker_ctx *w, struct worker_session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

void worker_ctx_session_closed(struct worker_ctx *w)
{
    w->nclients--;
    if (w->on_conn_closed)
        w->on_conn_closed(w);
}

/* The walks below read `next` before the call: a session may leave the registry in its op (its
 * memory stays valid until the end of the loop iteration, house rule 8). */
void worker_ctx_drain_sessions(struct worker_ctx *w)
{
    struct worker_session *s = w->sessions;
    while (s) {
        struct worker_session *next = s->next;
        s->ops->drain(s);
        s = next;
    }
}

void worker_ctx_close_sessions(struct worker_ctx *w)
{
    while (w->sessions)
        w->sessions->ops->close(w->sessions);
}

int worker_ctx_cut_retired(struct worker_ctx *w)
{
    int n = 0;
    struct worker_session *s = w->sessions;
    while (s) {
        struct worker_session *next = s->next;
        n += s->ops->cut_retired(s);
        s = next;
    }
    return n;
}
