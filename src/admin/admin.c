/* admin — see admin.h; the struct and the split into two files: admin_int.h.
 *
 * One struct admin_conn per accepted connection: read the head (and a Content-Length body), build
 * the whole answer in memory, write it, close. Every connection has one deadline
 * (ADMIN_TIMEOUT_MS) from accept to the last byte out. What /api/v1/status shows (the per-second
 * samples and their JSON) is admin_status.c's.
 */
#include "admin/admin_int.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "upstream/backend.h"
#include "core/generation.h"
#include "config/config.h"
#include "net/conn.h"
#include "http/http1.h"
#include "base/log.h"
#include "base/loop.h"
#include "admin/metrics.h"
#include "base/sock.h"
#include "base/util.h"

#define ADMIN_TIMEOUT_MS 10000u
#define ADMIN_MAX_CONNS 64
#define ADMIN_BUF 16384

/* The status page, embedded at build time from src/admin/status_page.html (see the Makefile). */
__asm__(".section .rodata\n"
        ".global golb_status_page\n"
        ".balign 16\n"
        "golb_status_page:\n"
        ".incbin \"src/admin/status_page.html\"\n"
        ".global golb_status_page_end\n"
        "golb_status_page_end:\n"
        ".byte 0\n"
        ".previous\n");
extern const char golb_status_page[];
extern const char golb_status_page_end[];

/* A POST /api/v1/reload waiting for its outcome. Owned by the admin thread, in a->pending from
 * do_reload until its answer is taken on the loop; `done` and `result` are written by whichever
 * thread ran the reload (admin_reload_done), under pending_lock. `conn` is NULL once the client
 * is gone: the outcome is then dropped. */
struct admin_pending {
    struct admin_pending *next;
    uint64_t ticket;
    struct admin_conn *conn;
    bool done;
    struct admin_reload result;
};

struct admin_conn {
    struct admin *a;
    struct admin_pending *pending; /* a reload it waits for: its input is not read meanwhile */
    struct loop_io io;
    struct loop_timer timer;
    struct loop_task free_task;
    struct admin_conn *prev, *next;
    char peer[64];
    char in[ADMIN_BUF];
    size_t len;
    char *out;
    size_t out_len, sent;
    bool readable, writable, answered, closed;
};

/* ---------------------------------------------------------------- connections --------------- */

static void conn_free(struct loop_task *t)
{
    struct admin_conn *c = container_of(t, struct admin_conn, free_task);
    free(c->out);
    free(c);
}

static void conn_close(struct admin_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    struct admin *a = c->a;
    if (c->pending) { /* its reload goes on; the outcome finds nobody to answer */
        pthread_mutex_lock(&a->pending_lock);
        c->pending->conn = NULL;
        pthread_mutex_unlock(&a->pending_lock);
        c->pending = NULL;
    }
    loop_timer_cancel(a->loop, &c->timer);
    (void)loop_io_del(a->loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    loop_defer(a->loop, &c->free_task, conn_free);
}

static void conn_flush(struct admin_conn *c)
{
    while (c->sent < c->out_len && c->writable) {
        ssize_t n = conn_send(c->io.fd, NULL, c->out + c->sent, c->out_len - c->sent);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n == -EAGAIN) {
            c->writable = false;
            return;
        }
        conn_close(c);
        return;
    }
    if (c->sent == c->out_len)
        conn_close(c);
}

static const char *status_text(int status)
{
    return http1_reason(status);
}

/* Queues a whole response and starts writing it. */
static void reply(struct admin_conn *c, int status, const char *ctype, const char *extra,
                  const char *body, size_t len)
{
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (!f) {
        conn_close(c);
        return;
    }
    fprintf(f,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%sConnection: close\r\n\r\n",
            status, status_text(status), ctype, len, extra ? extra : "");
    fwrite(body, 1, len, f);
    if (fclose(f) != 0) {
        free(out);
        conn_close(c);
        return;
    }
    c->out = out;
    c->out_len = out_len;
    c->sent = 0;
    c->answered = true;
    conn_flush(c);
}

/* A response body built in memory: body_open, write to f, then body_reply. */
struct body {
    FILE *f;
    char *p;
    size_t len;
};

/* Opens b for writing. False, after closing c, when there is no memory for it. */
static bool body_open(struct admin_conn *c, struct body *b)
{
    *b = (struct body){0};
    b->f = open_memstream(&b->p, &b->len);
    if (!b->f)
        conn_close(c);
    return b->f != NULL;
}

/* Ends b and answers with it (reply), then frees it. */
static void body_reply(struct admin_conn *c, struct body *b, int status, const char *ctype,
                       const char *extra)
{
    fclose(b->f);
    reply(c, status, ctype, extra, b->p, b->len);
    free(b->p);
}

static void reply_error(struct admin_conn *c, int status, const char *msg, const char *extra)
{
    struct body b;
    if (!body_open(c, &b))
        return;
    fputs("{\"error\":", b.f);
    admin_fjson_str(b.f, msg);
    fputs("}\n", b.f);
    body_reply(c, &b, status, "application/json", extra);
}

/* ---------------------------------------------------------------- status, metrics ----------- */

void admin_set_listeners(struct admin *a, const char *listeners)
{
    char *copy = a ? strdup(listeners) : NULL;
    if (!copy)
        return;
    pthread_mutex_lock(&a->listeners_lock);
    free(a->listeners);
    a->listeners = copy;
    pthread_mutex_unlock(&a->listeners_lock);
}

static void send_status(struct admin_conn *c, bool history)
{
    struct body b;
    if (!body_open(c, &b))
        return;
    admin_status_json(c->a, b.f, history);
    body_reply(c, &b, 200, "application/json", NULL);
}

static void send_metrics(struct admin_conn *c)
{
    struct body b;
    if (!body_open(c, &b))
        return;
    if (metrics_render(b.f, c->a->gen) == 0) {
        body_reply(c, &b, 200, "text/plain; version=0.0.4; charset=utf-8", NULL);
        return;
    }
    fclose(b.f);
    free(b.p);
    reply_error(c, 500, "cannot render metrics", NULL);
}

/* ---------------------------------------------------------------- changes ------------------- */

/* Decodes %XX in place; false on a bad escape or a decoded NUL. */
static bool percent_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p != '%') {
            *o++ = *p;
            continue;
        }
        int v = 0;
        for (int k = 1; k <= 2; k++) {
            char h = p[k];
            int d = h >= '0' && h <= '9' ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
            if (d < 0)
                return false;
            v = v * 16 + d;
        }
        if (v == 0)
            return false;
        *o++ = (char)v;
        p += 2;
    }
    *o = '\0';
    return true;
}

/* Answers a PUT/POST to /api/v1/pools/{pool}/backends/{name} (/api/v1/backends/{name}: the pool
 * "default"; both segments percent-encoded or not): every check first, then the changes, so bad
 * input changes nothing. */
static void change_backend(struct admin_conn *c, char *pool, char *name, const char *body,
                           size_t len)
{
    struct admin *a = c->a;
    if (!percent_decode(pool)) {
        reply_error(c, 400, "invalid pool name encoding", NULL);
        return;
    }
    if (!percent_decode(name)) {
        reply_error(c, 400, "invalid backend name encoding", NULL);
        return;
    }
    const struct generation_pool *gp = generation_pool_find(a->gen, pool);
    if (!gp) {
        reply_error(c, 404, "unknown pool", NULL);
        return;
    }
    int idx = -1;
    for (int i = 0; i < gp->table->n; i++)
        if (strcmp(gp->table->b[i]->name, name) == 0)
            idx = i;
    if (idx < 0) {
        reply_error(c, 404, "unknown backend", NULL);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[256];
        snprintf(msg, sizeof(msg), "invalid JSON: %s", jerr.text);
        reply_error(c, 400, msg, NULL);
        return;
    }
    const char *err = NULL;
    int state = -1;
    long long weight = -1;
    if (!json_is_object(root)) {
        err = "the body must be a JSON object";
    } else if (json_object_size(root) == 0) {
        err = "nothing to change: give \"state\" and/or \"weight\"";
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v)
        {
            if (strcmp(key, "state") == 0) {
                const char *s = json_string_value(v);
                if (!s)
                    err = "state must be a string: \"ready\", \"drain\" or \"maint\"";
                else if (strcmp(s, "ready") == 0)
                    state = BACKEND_ADMIN_READY;
                else if (strcmp(s, "drain") == 0)
                    state = BACKEND_ADMIN_DRAIN;
                else if (strcmp(s, "maint") == 0)
                    state = BACKEND_ADMIN_MAINT;
                else
                    err = "unknown state: use \"ready\", \"drain\" or \"maint\"";
            } else if (strcmp(key, "weight") == 0) {
                if (!json_is_integer(v))
                    err = "weight must be an integer from 0 to 1000";
                else if (json_integer_value(v) < 0 || json_integer_value(v) > 1000)
                    err = "weight out of range: it must be from 0 to 1000";
                else
                    weight = (long long)json_integer_value(v);
            } else {
                err = "unknown field: only \"state\" and \"weight\" can be changed";
            }
            if (err)
                break;
        }
    }
    json_decref(root);
    if (err) {
        reply_error(c, 400, err, NULL);
        return;
    }
    struct backend *b = gp->table->b[idx];
    if (state >= 0)
        backend_set_admin(b, (enum backend_admin_state)state, c->peer);
    if (weight >= 0) {
        uint32_t old = atomic_exchange_explicit(&b->weight, (uint32_t)weight,
                                                memory_order_relaxed);
        if (old != (uint32_t)weight)
            log_event(LOG_INFO, "admin", "backend %s weight set to %lld (was %u) by %s",
                      backend_label(b), weight, old, c->peer);
    }
    struct body out;
    if (!body_open(c, &out))
        return;
    admin_status_backend_json(a, out.f, (int)(gp - a->gen->pools), idx, false);
    fputc('\n', out.f);
    body_reply(c, &out, 200, "application/json", NULL);
}

/* ---------------------------------------------------------------- routing ------------------- */

static const struct http_field *find(const struct http1_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->rq.num_fields; i++)
        if (req->headers[i].name_len == n && strncasecmp(req->headers[i].name, name, n) == 0)
            return &req->headers[i];
    return NULL;
}

static bool span_is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

bool admin_bearer_ok(const char *token, const char *authorization, size_t len)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    unsigned int wl = 0, gl = 0;
    if (!token || !authorization || len < 7 || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    size_t at = 7;
    while (at < len && authorization[at] == ' ')
        at++;
    if (!EVP_Digest(token, strlen(token), want, &wl, EVP_sha256(), NULL) ||
        !EVP_Digest(authorization + at, len - at, got, &gl, EVP_sha256(), NULL) || wl != 32 ||
        gl != 32)
        return false;
    return CRYPTO_memcmp(want, got, 32) == 0;
}

enum admin_auth admin_authorize(const char *token, bool unix_socket, const char *authorization,
                                size_t len)
{
    if (!token)
        return unix_socket ? ADMIN_AUTH_OK : ADMIN_AUTH_NO_TOKEN;
    return admin_bearer_ok(token, authorization, len) ? ADMIN_AUTH_OK : ADMIN_AUTH_BAD_TOKEN;
}

static bool origin_ok(const struct admin *a, const struct http1_request *req)
{
    const struct http_field *h = find(req, "origin");
    if (!h)
        return true; /* not a browser's cross-origin request (curl, scripts, same-origin GET) */
    if (a->unix_socket)
        return false;
    return span_is(h->value, h->value_len, a->origin) ||
           (a->origin_lo[0] && span_is(h->value, h->value_len, a->origin_lo));
}

/* Whether a change may go ahead (admin_authorize); if not, answers 401 or 403 and says false. */
static bool authorized(struct admin_conn *c, const struct http1_request *req)
{
    const struct http_field *h = find(req, "authorization");
    switch (admin_authorize(c->a->gen->cfg->admin_token, c->a->unix_socket, h ? h->value : NULL,
                            h ? h->value_len : 0)) {
    case ADMIN_AUTH_OK:
        return true;
    case ADMIN_AUTH_BAD_TOKEN:
        reply_error(c, 401, "a valid bearer token is required",
                    "WWW-Authenticate: Bearer realm=\"golb\"\r\n");
        return false;
    case ADMIN_AUTH_NO_TOKEN:
    default:
        reply_error(c, 403,
                    "changes need a token on a TCP admin listener: set admin.token or "
                    "admin.tokenFile and send Authorization: Bearer TOKEN, or use a unix: socket",
                    NULL);
        return false;
    }
}

/* One JSON array of the lines of text (NULL: empty), skipping or keeping warnings. */
static void json_lines(FILE *f, const char *text, int warnings)
{
    fputc('[', f);
    bool first = true;
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *line = strndup(p, n);
        if (line && n && (warnings < 0 || (strstr(line, ": warning: ") != NULL) == (warnings > 0))) {
            if (!first)
                fputc(',', f);
            admin_fjson_str_max(f, line, 1024); /* a whole FILE:LINE:COL message */
            first = false;
        }
        free(line);
        p += n + (e != NULL);
    }
    fputc(']', f);
}

static void on_wakeup(void *arg);

/* The answer to POST /api/v1/reload: 200 and "success", or 422 and "failure" (the request was
 * fine, the configuration file it asked to load is not). Takes r's strings. */
static void answer_reload(struct admin_conn *c, struct admin_reload *r)
{
    admin_status_sync(c->a); /* the generation the reload published, for the next requests */
    struct body b;
    if (body_open(c, &b)) {
        fprintf(b.f, "{\"result\":\"%s\",\"generation\":%llu,\"changes\":",
                r->ok ? "success" : "failure", (unsigned long long)r->generation);
        json_lines(b.f, r->ok ? r->changes : NULL, -1);
        fputs(",\"errors\":", b.f);
        json_lines(b.f, r->errors, 0);
        fputs(",\"warnings\":", b.f);
        json_lines(b.f, r->errors, 1);
        fputs("}\n", b.f);
        body_reply(c, &b, r->ok ? 200 : 422, "application/json", NULL);
    }
    free(r->errors);
    free(r->changes);
}

/* POST /api/v1/reload: asks for the reload and answers when its outcome comes back
 * (on_wakeup); the loop serves everything else meanwhile. No timeout while it runs (a reload
 * is bounded by its own steps); the answer gets ADMIN_TIMEOUT_MS to go out. */
static void do_reload(struct admin_conn *c)
{
    struct admin *a = c->a;
    if (!a->reload) {
        reply_error(c, 503, "reload is not available", NULL);
        return;
    }
    struct admin_pending *p = calloc(1, sizeof(*p));
    if (!p) {
        reply_error(c, 503, "out of memory", NULL);
        return;
    }
    char who[96];
    snprintf(who, sizeof(who), "admin API (%s)", c->peer);
    p->ticket = ++a->last_ticket;
    p->conn = c;
    pthread_mutex_lock(&a->pending_lock);
    p->next = a->pending;
    a->pending = p;
    pthread_mutex_unlock(&a->pending_lock);
    c->pending = p;
    loop_timer_cancel(a->loop, &c->timer);
    int rc = a->reload(a->reload_arg, who, a, p->ticket);
    if (rc == 0)
        return;
    /* Not asked: nothing will come back for this ticket. */
    pthread_mutex_lock(&a->pending_lock);
    for (struct admin_pending **pp = &a->pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    pthread_mutex_unlock(&a->pending_lock);
    free(p);
    c->pending = NULL;
    loop_timer_after(a->loop, &c->timer, ADMIN_TIMEOUT_MS);
    struct admin_reload r = {.generation = a->gen->id,
                             .errors = strdup(rc == -ESHUTDOWN ? "golb is shutting down\n"
                                                                : "cannot ask for a reload: out of "
                                                                  "memory\n")};
    answer_reload(c, &r);
}

void admin_reload_done(struct admin *a, uint64_t ticket, struct admin_reload *r)
{
    pthread_mutex_lock(&a->pending_lock);
    struct admin_pending *p = a->pending;
    while (p && p->ticket != ticket)
        p = p->next;
    if (p) {
        p->result = *r;
        p->done = true;
    }
    pthread_mutex_unlock(&a->pending_lock);
    if (!p) { /* cannot happen: every ticket stays pending until its outcome */
        free(r->errors);
        free(r->changes);
        return;
    }
    loop_wakeup(a->loop, on_wakeup, a);
}

static void handle(struct admin_conn *c, const struct http1_request *req, const char *body,
                   size_t body_len)
{
    struct admin *a = c->a;
    admin_status_sync(a); /* a reload by SIGHUP: answer with the running generation */
    char path[512];
    size_t plen = req->rq.path_len;
    const char *q = memchr(req->rq.path, '?', plen);
    if (q)
        plen = (size_t)(q - req->rq.path);
    if (plen >= sizeof(path)) {
        reply_error(c, 404, "not found", NULL);
        return;
    }
    memcpy(path, req->rq.path, plen);
    path[plen] = '\0';
    bool get = span_is(req->rq.method, req->rq.method_len, "GET");
    bool history = q && memmem(q, req->rq.path_len - plen, "history=1", 9) != NULL;
    bool change = span_is(req->rq.method, req->rq.method_len, "PUT") ||
                  span_is(req->rq.method, req->rq.method_len, "POST");

    if (!origin_ok(a, req)) {
        reply_error(c, 403, "cross-origin request refused: Origin is not the admin address", NULL);
        return;
    }
    /* /api/v1/pools/{pool}/backends/{backend}, and /api/v1/backends/{backend} for "default" */
    static const char prefix[] = "/api/v1/backends/", pools[] = "/api/v1/pools/";
    char *pool = NULL, *name = NULL, dflt[] = "default";
    if (strncmp(path, prefix, sizeof(prefix) - 1) == 0 && path[sizeof(prefix) - 1]) {
        pool = dflt;
        name = path + sizeof(prefix) - 1;
    } else if (strncmp(path, pools, sizeof(pools) - 1) == 0) {
        char *slash = strchr(path + sizeof(pools) - 1, '/');
        if (slash && slash > path + sizeof(pools) - 1 && strncmp(slash, "/backends/", 10) == 0 &&
            slash[10]) {
            *slash = '\0';
            pool = path + sizeof(pools) - 1;
            name = slash + 10;
        }
    }
    if (name) {
        if (!change) {
            reply_error(c, 405, "use PUT to change a backend", "Allow: PUT, POST\r\n");
            return;
        }
        if (!authorized(c, req))
            return;
        change_backend(c, pool, name, body, body_len);
        return;
    }
    if (strcmp(path, "/api/v1/reload") == 0) {
        if (!span_is(req->rq.method, req->rq.method_len, "POST")) {
            reply_error(c, 405, "use POST to reload", "Allow: POST\r\n");
            return;
        }
        if (!authorized(c, req))
            return;
        do_reload(c);
        return;
    }
    static const struct {
        const char *path;
        int what;
    } routes[] = {{"/", 0},       {"/index.html", 0}, {"/metrics", 1},
                               {"/api/v1/status", 2}, {"/healthz", 3}, {"/readyz", 4}};
    int what = -1;
    for (size_t i = 0; i < ARRAY_LEN(routes); i++)
        if (strcmp(path, routes[i].path) == 0)
            what = routes[i].what;
    if (what < 0) {
        reply_error(c, 404, "not found", NULL);
        return;
    }
    if (!get) {
        reply_error(c, 405, "method not allowed", "Allow: GET\r\n");
        return;
    }
    switch (what) {
    case 0:
        reply(c, 200, "text/html; charset=utf-8",
              "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
              "style-src 'unsafe-inline'; connect-src 'self'; img-src data:\r\n",
              golb_status_page, (size_t)(golb_status_page_end - golb_status_page));
        return;
    case 1:
        send_metrics(c);
        return;
    case 2:
        send_status(c, history);
        return;
    case 3:
        reply(c, 200, "application/json", NULL, "{\"status\":\"ok\"}\n", 16);
        return;
    default: {
        /* The default pool's backends; without top-level backends (only routed pools), any
         * pool's. */
        int up = 0;
        for (int k = 0; k < a->gen->npools; k++) {
            const struct backend_table *t = a->gen->pools[k].table;
            if (k > 0 && a->gen->table->n > 0)
                break;
            for (int i = 0; i < t->n; i++) {
                struct backend *b = t->b[i];
                up += backend_is_up(b) && backend_admin(b) == BACKEND_ADMIN_READY;
            }
        }
        if (atomic_load(&a->draining))
            reply(c, 503, "application/json", NULL, "{\"status\":\"draining\"}\n", 22);
        else if (up == 0)
            reply(c, 503, "application/json", NULL, "{\"status\":\"no backend up\"}\n", 27);
        else
            reply(c, 200, "application/json", NULL, "{\"status\":\"ready\"}\n", 19);
        return;
    }
    }
}

/* Parses what arrived; answers once the head and its body are complete. */
static void conn_process(struct admin_conn *c)
{
    static __thread struct http1_request req; /* 128 header slots: not on the stack */
    struct http1_limits lim = {.max_head = ADMIN_BUF - ADMIN_BODY_MAX - 1,
                               .max_request_line = 2048};
    ssize_t n = http1_parse_request(c->in, c->len, 0, &lim, &req);
    if (n == -EAGAIN) {
        if (c->len >= ADMIN_BUF)
            reply_error(c, 431, "request head too large", NULL);
        return;
    }
    if (n < 0) {
        reply_error(c, req.err_status ? req.err_status : 400, "malformed request", NULL);
        return;
    }
    if (req.rq.body == HTTP_BODY_STREAM) { /* chunked */
        reply_error(c, 411, "send the body with Content-Length", NULL);
        return;
    }
    size_t body_len = req.rq.body == HTTP_BODY_LENGTH ? (size_t)req.rq.content_length : 0;
    if (req.rq.body == HTTP_BODY_LENGTH && req.rq.content_length > ADMIN_BODY_MAX) {
        reply_error(c, 413, "body too large", NULL);
        return;
    }
    if (c->len < (size_t)n + body_len)
        return; /* the body is still coming */
    handle(c, &req, c->in + n, body_len);
}

static void conn_on_io(struct loop_io *io, uint32_t events)
{
    struct admin_conn *c = container_of(io, struct admin_conn, io);
    if (c->closed)
        return;
    if (events & EPOLLOUT)
        c->writable = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->readable = true;
    if (c->answered) {
        conn_flush(c);
        return;
    }
    if (c->pending)
        return; /* its reload runs: the request is whole, more input waits for the answer */
    while (c->readable && !c->answered && !c->closed) {
        if (c->len == sizeof(c->in)) {
            conn_process(c);
            if (!c->answered && !c->closed)
                reply_error(c, 431, "request too large", NULL);
            return;
        }
        ssize_t r = conn_recv(c->io.fd, NULL, c->in + c->len, sizeof(c->in) - c->len);
        if (r > 0) {
            c->len += (size_t)r;
            conn_process(c);
            continue;
        }
        if (r == -EAGAIN) {
            c->readable = false;
            break;
        }
        conn_close(c); /* EOF before a whole request, or an error */
        return;
    }
}

static void conn_on_timeout(struct loop_timer *t)
{
    conn_close(container_of(t, struct admin_conn, timer));
}

static void on_accept(struct loop_io *io, uint32_t events)
{
    struct admin *a = container_of(io, struct admin, listen_io);
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(io->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of descriptors: the next connection brings a new edge */
        }
        struct admin_conn *c = a->nconns < ADMIN_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
        if (!c) {
            close(fd);
            continue;
        }
        c->a = a;
        c->io.fd = fd;
        c->io.cb = conn_on_io;
        c->writable = true;
        c->readable = true;
        if (peer.ss_family == AF_UNIX)
            snprintf(c->peer, sizeof(c->peer), "unix");
        else
            sock_addr_str((struct sockaddr *)&peer, c->peer, sizeof(c->peer));
        loop_timer_init(&c->timer, conn_on_timeout);
        if (loop_io_add(a->loop, &c->io) != 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = a->conns;
        if (a->conns)
            a->conns->prev = c;
        a->conns = c;
        a->nconns++;
        loop_timer_after(a->loop, &c->timer, ADMIN_TIMEOUT_MS);
        conn_on_io(&c->io, EPOLLIN);
    }
}

/* ---------------------------------------------------------------- life cycle ---------------- */

/* The loop's one wake-up callback (loop_wakeup keeps a single one): answers every reload whose
 * outcome came, then stops the loop if admin_stop asked. */
static void on_wakeup(void *arg)
{
    struct admin *a = arg;
    struct admin_pending *done = NULL;
    pthread_mutex_lock(&a->pending_lock);
    for (struct admin_pending **pp = &a->pending; *pp;) {
        struct admin_pending *p = *pp;
        if (p->done) {
            *pp = p->next;
            p->next = done;
            done = p;
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&a->pending_lock);
    while (done) {
        struct admin_pending *p = done;
        done = p->next;
        struct admin_conn *c = p->conn; /* only the loop clears it: no lock needed to read */
        if (c) {
            c->pending = NULL;
            loop_timer_after(a->loop, &c->timer, ADMIN_TIMEOUT_MS);
            answer_reload(c, &p->result);
        } else {
            free(p->result.errors);
            free(p->result.changes);
        }
        free(p);
    }
    if (atomic_load(&a->stop_asked))
        loop_stop(a->loop);
}

static void *admin_main(void *arg)
{
    struct admin *a = arg;
    int rc = loop_run(a->loop);
    if (rc != 0)
        log_error("admin: event loop failed: %s", strerror(-rc));
    return NULL;
}

/* Makes room for the unix socket at `path`: nothing there is fine; a socket left by an earlier run
 * (lstat says S_ISSOCK and connecting is refused) is removed. Anything else stays where it is and
 * fails: a file, directory or symlink someone put at the path (golb must never delete it), or a
 * socket something still listens on (another golb). 0, or -errno with *why saying what is there. */
static int clear_unix_path(const char *path, const char **why)
{
    struct stat st;
    if (lstat(path, &st) == -1)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        *why = "the path exists and is not a socket (golb removes only a socket left by an "
               "earlier run)";
        return -EEXIST;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe == -1)
        return -errno;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
    int rc = connect(probe, (const struct sockaddr *)&un, sizeof(un));
    int err = rc == -1 ? errno : 0;
    close(probe);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
        *why = "another process listens on it";
        return -EADDRINUSE;
    }
    if (err != ECONNREFUSED && err != ENOENT)
        return -err;
    if (unlink(path) == -1 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Binds the admin listener; the fd, or -errno with *why set when errno alone would not explain. */
static int bind_admin(struct admin *a, const char **why)
{
    const struct config *cfg = a->gen->cfg;
    int family = cfg->admin_addr.ss_family;
    const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)&cfg->admin_addr;
    if (family == AF_UNIX) {
        int rc = clear_unix_path(un->sun_path, why);
        if (rc < 0)
            return rc;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    if (family != AF_UNIX) {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (family == AF_INET6)
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, (const struct sockaddr *)&cfg->admin_addr, cfg->admin_addrlen) == -1) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (family == AF_UNIX) {
        /* Not listening yet, so nobody can connect while the mode is still the umask's. The
         * directory must not be writable by others (the path could be swapped under us). */
        struct stat st;
        if (chmod(un->sun_path, 0600) == -1 || lstat(un->sun_path, &st) == -1) {
            int err = -errno;
            (void)unlink(un->sun_path);
            close(fd);
            return err;
        }
        a->sock_dev = st.st_dev;
        a->sock_ino = st.st_ino;
        a->unix_socket = true;
    }
    if (listen(fd, 64) == -1) {
        int err = -errno;
        if (family == AF_UNIX)
            (void)unlink(un->sun_path);
        a->unix_socket = false;
        close(fd);
        return err;
    }
    if (family == AF_UNIX) {
        snprintf(a->name, sizeof(a->name), "%s", cfg->admin_listen);
    } else {
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        if (getsockname(fd, (struct sockaddr *)&bound, &blen) == -1) {
            int err = -errno;
            close(fd);
            return err;
        }
        sock_addr_str((struct sockaddr *)&bound, a->name, sizeof(a->name));
        snprintf(a->origin, sizeof(a->origin), "http://%s", a->name);
        uint16_t port = ntohs(family == AF_INET
                                  ? ((struct sockaddr_in *)(void *)&bound)->sin_port
                                  : ((struct sockaddr_in6 *)(void *)&bound)->sin6_port);
        bool lo = family == AF_INET
                      ? (ntohl(((struct sockaddr_in *)(void *)&bound)->sin_addr.s_addr) >> 24) == 127
                      : IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)(void *)&bound)->sin6_addr);
        if (lo)
            snprintf(a->origin_lo, sizeof(a->origin_lo), "http://localhost:%u", port);
    }
    return fd;
}

struct admin *admin_start(struct generation *gen, const char *listeners, const char *version,
                          admin_reload_fn reload, void *reload_arg)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    const struct config *cfg = gen->cfg;
    generation_ref(gen);
    a->gen = gen;
    a->reload = reload;
    a->reload_arg = reload_arg;
    a->addr = cfg->admin_addr;
    pthread_mutex_init(&a->listeners_lock, NULL);
    pthread_mutex_init(&a->pending_lock, NULL);
    a->version = version;
    a->start_ms = util_wall_ms();
    a->listeners = strdup(listeners);
    int status_rc = admin_status_init(a);
    a->loop = loop_new();
    a->listen_io.fd = -1;
    if (!a->listeners || status_rc != 0 || !a->loop) {
        log_error("admin: out of memory");
        admin_stop(a);
        return NULL;
    }
    const char *why = NULL;
    int fd = bind_admin(a, &why);
    if (fd < 0) {
        log_error("admin: cannot listen on %s: %s", cfg->admin_listen, why ? why : strerror(-fd));
        admin_stop(a);
        return NULL;
    }
    a->listen_io.fd = fd;
    a->listen_io.cb = on_accept;
    admin_status_start(a);
    if (loop_io_add(a->loop, &a->listen_io) != 0) {
        admin_stop(a);
        return NULL;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the main thread owns the signals */
    int rc = pthread_create(&a->thread, NULL, admin_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("admin: cannot start its thread: %s", strerror(rc));
        admin_stop(a);
        return NULL;
    }
    a->started = true;
    if (a->unix_socket)
        log_event(LOG_INFO, "admin", "admin API and status page on %s (mode 0600)", a->name);
    else
        log_event(LOG_INFO, "admin", "admin API and status page on http://%s/%s", a->name,
                  cfg->admin_token ? ""
                                   : " (read-only: changes need admin.token, admin.tokenFile or "
                                     "a unix: socket)");
    return a;
}

void admin_set_draining(struct admin *a)
{
    if (a)
        atomic_store(&a->draining, true);
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    if (a->started) {
        atomic_store(&a->stop_asked, true);
        loop_wakeup(a->loop, on_wakeup, a);
        pthread_join(a->thread, NULL);
    }
    if (a->loop) {
        while (a->conns)
            conn_close(a->conns);
        loop_timer_cancel(a->loop, &a->sample_timer);
        if (a->listen_io.fd >= 0) {
            (void)loop_io_del(a->loop, &a->listen_io);
            close(a->listen_io.fd);
        }
        loop_run_deferred(a->loop);
        loop_free(a->loop);
    }
    if (a->unix_socket) {
        /* only the socket golb made: not whatever may have replaced it since */
        const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)&a->addr;
        struct stat st;
        if (lstat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == a->sock_dev &&
            st.st_ino == a->sock_ino)
            (void)unlink(un->sun_path);
    }
    while (a->pending) { /* conn_close above let go of them; outcomes that came are dropped */
        struct admin_pending *p = a->pending;
        a->pending = p->next;
        free(p->result.errors);
        free(p->result.changes);
        free(p);
    }
    generation_unref(a->gen);
    pthread_mutex_destroy(&a->pending_lock);
    pthread_mutex_destroy(&a->listeners_lock);
    admin_status_free(a);
    free(a->listeners);
    free(a);
}
