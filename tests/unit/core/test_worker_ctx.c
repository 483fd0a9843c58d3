/* Unit tests for the worker's session registry (worker_ctx.h): sessions of any protocol register
 * with their ops, the worker's walks (drain, close all, cut retired) reach each one exactly once
 * even when a session leaves the registry inside its op, and a closed connection is counted and
 * reported to the worker through its hook. The sessions here are fakes, not HTTP/1. */
#include <criterion/criterion.h>

#include <string.h>

#include "core/worker_ctx.h"

static struct worker_ctx wk;

struct fake_session {
    struct worker_session ws;
    bool idle;    /* drain closes it */
    bool retired; /* runs on a removed backend: cut_retired closes it */
    bool closed;
    int drained; /* how often drain was asked */
    int listener_closed; /* how often listener_closed was called */
};

static struct fake_session fs[4];
static int hook_calls;

static struct fake_session *fake_of(struct worker_session *s)
{
    return (struct fake_session *)((char *)s - offsetof(struct fake_session, ws));
}

static void fake_close(struct worker_session *s)
{
    struct fake_session *f = fake_of(s);
    cr_assert_not(f->closed, "a session is closed once");
    f->closed = true;
    worker_ctx_session_remove(&wk, s);
    worker_ctx_session_closed(&wk);
}

static void fake_drain(struct worker_session *s)
{
    struct fake_session *f = fake_of(s);
    f->drained++;
    if (f->idle)
        fake_close(s);
}

static int fake_cut_retired(struct worker_session *s)
{
    struct fake_session *f = fake_of(s);
    if (!f->retired)
        return 0;
    fake_close(s);
    return 1;
}

/* As HTTP/2 with nothing in flight: its listener closed, it leaves at once. */
static void fake_listener_closed(struct worker_session *s)
{
    struct fake_session *f = fake_of(s);
    cr_assert(s->listener_gone, "marked before the op");
    f->listener_closed++;
    if (f->idle)
        fake_close(s);
}

static const struct worker_session_ops fake_ops = {fake_drain, fake_close, fake_cut_retired,
                                                   fake_listener_closed};

static void on_conn_closed(struct worker_ctx *w)
{
    cr_assert_eq(w, &wk);
    hook_calls++;
}

static void setup(void)
{
    memset(&wk, 0, sizeof(wk));
    memset(fs, 0, sizeof(fs));
    hook_calls = 0;
    wk.on_conn_closed = on_conn_closed;
    for (int i = 0; i < 4; i++) {
        wk.nclients++; /* what the worker's accept counts */
        worker_ctx_session_add(&wk, &fs[i].ws, &fake_ops);
    }
}

TestSuite(worker_ctx, .init = setup);

static int registered(void)
{
    int n = 0;
    for (struct worker_session *s = wk.sessions; s; s = s->next) {
        cr_assert(s->next == NULL || s->next->prev == s, "links both ways");
        n++;
    }
    return n;
}

Test(worker_ctx, drain_asks_every_session_once_while_idle_ones_leave)
{
    fs[0].idle = fs[2].idle = fs[3].idle = true; /* the first and last in the list among them */
    worker_ctx_drain_sessions(&wk);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(fs[i].drained, 1, "session %d", i);
    cr_expect_eq(registered(), 1);
    cr_expect_eq(wk.sessions, &fs[1].ws);
    cr_expect_eq(wk.nclients, 1);
    cr_expect_eq(hook_calls, 3, "the worker hears of every closed connection");
}

Test(worker_ctx, cut_retired_counts_the_requests_cut)
{
    fs[1].retired = fs[3].retired = true;
    cr_expect_eq(worker_ctx_cut_retired(&wk), 2);
    cr_expect(fs[1].closed && fs[3].closed);
    cr_expect_not(fs[0].closed || fs[2].closed);
    cr_expect_eq(registered(), 2);
    cr_expect_eq(worker_ctx_cut_retired(&wk), 0, "nothing left on removed backends");
}

Test(worker_ctx, close_sessions_empties_the_registry)
{
    worker_ctx_close_sessions(&wk);
    for (int i = 0; i < 4; i++)
        cr_expect(fs[i].closed, "session %d", i);
    cr_expect_null(wk.sessions);
    cr_expect_eq(wk.nclients, 0);
    cr_expect_eq(hook_calls, 4);
}

Test(worker_ctx, a_connection_that_never_registered_is_counted_closed)
{
    wk.nclients++;
    worker_ctx_session_closed(&wk); /* e.g. no memory for its session */
    cr_expect_eq(wk.nclients, 4);
    cr_expect_eq(hook_calls, 1);
    cr_expect_eq(registered(), 4, "the registry is untouched");
    wk.on_conn_closed = NULL;
    worker_ctx_session_closed(&wk); /* no hook (unit tests of other modules) */
    cr_expect_eq(wk.nclients, 3);
}

Test(worker_ctx, a_closed_listener_reaches_its_sessions_only_and_once)
{
    fs[0].ws.listener = fs[2].ws.listener = fs[3].ws.listener = 7;
    fs[1].ws.listener = 8;
    fs[3].idle = true; /* leaves inside its op */
    worker_ctx_listener_closed(&wk, 7);
    worker_ctx_listener_closed(&wk, 7); /* a second close of the same tag finds them marked */
    worker_ctx_listener_closed(&wk, 0); /* 0: no listener known, never matches */
    for (int i = 0; i < 4; i++)
        cr_expect_eq(fs[i].listener_closed, i == 1 ? 0 : 1, "session %d", i);
    cr_expect(fs[0].ws.listener_gone && fs[2].ws.listener_gone);
    cr_expect_not(fs[1].ws.listener_gone);
    cr_expect(fs[3].closed);
    cr_expect_eq(registered(), 3);
}
