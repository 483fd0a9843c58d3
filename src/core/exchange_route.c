/* exchange_route — the route decision of an exchange, made once at exchange_start from the
 * protocol-neutral request and the generation the exchange pinned, so HTTP/1 and HTTP/2 get the
 * same routing:
 *
 *   path ──normalise (RFC 3986, encodedSlash)──► 400
 *     │
 *   route_match ──none──► default pool, or 404 when there is none
 *     │ route i (counted on it from here: obs_req_route)
 *   allow/deny ──► 403        rateLimit ──► 429 + Retry-After
 *     │
 *   action: redirect ──► 3xx + Location     respond ──► its status and body
 *           pool / split ──► x->pool = g->pools[route_pool(i, draw)], the route's upstreamTimeout
 *                            and retries, its header filters, its path rewrite (stripPrefix,
 *                            rewritePrefix)
 *
 * golb's own answers are descriptions (struct reply_desc, x->reply) the session serialises in
 * its protocol (EX_REPLY). Nothing here runs for a generation without routes (g->routing false):
 * such a request goes to the default pool as it came.
 */
#include "core/exchange_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/loop.h"
#include "base/util.h"
#include "config/config.h"
#include "core/generation.h"
#include "core/obs.h"
#include "core/route.h"
#include "core/worker_ctx.h"
#include "http/http.h"
#include "http/path.h"
#include "http/rewrite.h"

/* Rate-limit buckets per worker (clients × routes with a rateLimit), least recently seen
 * forgotten first: about 24 bytes each. */
#define ROUTE_BUCKETS 16384

/* The worker's path scratch with room for `need` bytes (grown, never shrunk: no allocation once
 * the longest path seen fits). NULL when memory runs out. */
static char *path_scratch(struct worker_ctx *w, size_t need)
{
    if (need > w->path_cap) {
        size_t cap = MAX(need, (size_t)1024);
        char *p = realloc(w->path_buf, cap);
        if (!p)
            return NULL;
        w->path_buf = p;
        w->path_cap = cap;
    }
    return w->path_buf;
}

/* route_input.header over the neutral request's fields: the nth field called name (lower case). */
static const char *field_value(const void *ctx, const char *name, size_t name_len, size_t nth,
                               size_t *value_len)
{
    const struct http_request *req = ctx;
    for (size_t i = 0; i < req->num_fields; i++) {
        const struct http_field *f = &req->fields[i];
        if (f->name_len == name_len && strncasecmp(f->name, name, name_len) == 0 && nth-- == 0) {
            *value_len = f->value_len;
            return f->value;
        }
    }
    return NULL;
}

/* The request's client address (x->client_ip: the peer, the PROXY protocol's source, or what a
 * trusted proxy chain says), for allow/deny and rateLimit. False when it is not an IP address
 * (then no range holds it, and it has no bucket of its own). */
static bool client_addr(const struct exchange *x, struct sockaddr_storage *ss)
{
    const char *ip = x->client_ip; /* NUL-terminated (x_client_address) */
    if (x->client_ip_len == 0)
        return false;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* Ends the exchange with an answer of golb's own (x->reply filled by the caller but for these). */
static enum exchange_status reply(struct exchange *x, int status, const char *term,
                                  const char *error)
{
    x->reply.status = status;
    x->reply.no_body = x->req_is_head;
    x->reply.grpc = x->grpc && status >= 400;
    x->end_term = term;
    x->end_error = error;
    x->res = EX_REPLY;
    return EX_REPLY;
}

/* Appends s[0..n) at *len in b when it fits. */
static bool put(struct buf *b, const char *s, size_t n)
{
    if (b->last + n > b->cap)
        return false;
    memcpy(b->data + b->last, s, n);
    b->last += (uint32_t)n;
    return true;
}

/* host[:port] without the port: "[v6]:80" → "[v6]", "name:80" → "name". */
static size_t host_only(const char *h, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        if (h[i - 1] == ']')
            return n;
        if (h[i - 1] == ':')
            return i - 1;
    }
    return n;
}

/* A redirect route: Location is the request's URL with the route's scheme, host, port and path
 * in place of its own; the query stays. path/query: the normalised request's. */
static enum exchange_status redirect(struct exchange *x, const struct config_route *r,
                                     const struct http_request *req,
                                     const struct exchange_request *info, const char *path,
                                     size_t path_len, const char *query, size_t query_len)
{
    const char *scheme = r->redirect.scheme;
    if (!scheme)
        scheme = req->scheme_len
                     ? (req->scheme[0] == 'h' && req->scheme_len == 5 ? "https" : "http")
                 : info->https ? "https"
                               : "http";
    const char *host = r->redirect.host;
    size_t host_len = host ? strlen(host) : 0;
    uint16_t port = r->redirect.port;
    if (!host) {
        if (req->authority_len == 0)
            return exchange_fail(x, 400, LB_OK); /* no host to send the client to */
        host = req->authority;
        host_len = port ? host_only(host, req->authority_len) : req->authority_len;
    }
    if ((port == 80 && strcmp(scheme, "http") == 0) ||
        (port == 443 && strcmp(scheme, "https") == 0))
        port = 0; /* the scheme's own */
    if (r->redirect.path) {
        path = r->redirect.path;
        path_len = strlen(path);
    }
    size_t need = strlen(scheme) + 3 + host_len + 6 + path_len + 1 + query_len;
    struct buf_pool *pool = &x->w->bufs;
    x->reqh = need < WORKER_CTX_BUF_SIZE ? buf_get(pool) : buf_get_large(pool, (uint32_t)need);
    if (!x->reqh)
        return exchange_fail(x, 503, LB_OK);
    struct buf *b = x->reqh;
    b->pos = b->last = 0;
    char portstr[8];
    size_t plen = 0;
    if (port) {
        portstr[plen++] = ':';
        char tmp[6];
        size_t k = 0;
        for (uint16_t v = port; v; v /= 10)
            tmp[k++] = (char)('0' + v % 10);
        while (k)
            portstr[plen++] = tmp[--k];
    }
    bool ok = put(b, scheme, strlen(scheme)) && put(b, "://", 3) && put(b, host, host_len) &&
              put(b, portstr, plen) && put(b, path, path_len) &&
              (!query || (put(b, "?", 1) && put(b, query, query_len)));
    if (!ok)
        return exchange_fail(x, 414, LB_OK);
    x->reply.location = b->data;
    x->reply.location_len = b->last;
    return reply(x, r->redirect.status, "--", NULL);
}

/* The path a pool route sends upstream: the normalised one with the matched pathPrefix taken off
 * (stripPrefix) or replaced (rewritePrefix), an empty rest being "/", then the query as sent.
 * Written at out (room: path_len + rewritePrefix + query + 2). */
static size_t rewrite_path(const struct config_route *r, const char *path, size_t path_len,
                           const char *query, size_t query_len, char *out)
{
    const char *pp = r->path_prefix;
    size_t ppl = pp && strcmp(pp, "/") != 0 ? strlen(pp) : 0;
    const char *rest = path + MIN(ppl, path_len);
    size_t rest_len = path_len - MIN(ppl, path_len);
    const char *rp = r->rewrite_prefix;
    size_t rpl = rp && strcmp(rp, "/") != 0 ? strlen(rp) : 0; /* "/" strips */
    size_t n = rpl;
    if (rpl)
        memcpy(out, rp, rpl);
    if (rpl && out[rpl - 1] == '/' && rest_len && rest[0] == '/') {
        rest++;
        rest_len--;
    }
    memcpy(out + n, rest, rest_len);
    n += rest_len;
    if (n == 0)
        out[n++] = '/';
    if (query) {
        out[n++] = '?';
        memcpy(out + n, query, query_len);
        n += query_len;
    }
    return n;
}

enum exchange_status exchange_route(struct exchange *x, const struct http_request *req,
                                    const struct exchange_request *info, struct http_request *out)
{
    struct worker_ctx *w = x->w;
    const struct generation *g = x->gen;
    const struct config *cfg = g->cfg;
    *out = *req;

    /* 1. The path in normal form; the query as sent. A path that is not one ("*" of OPTIONS *)
     * is matched as it is: only routes without a path condition can take it. */
    const char *path = req->path, *query = NULL;
    size_t path_len = req->path_len, query_len = 0, norm_len = 0;
    bool normal = req->path_len && req->path[0] == '/';
    if (normal) {
        char *s = path_scratch(w, 2 * (size_t)req->path_len + 2);
        if (!s)
            return exchange_fail(x, 503, LB_OK);
        unsigned flags = cfg->encoded_slash_reject ? PATH_REJECT_ENCODED_SLASH : 0;
        if (path_normalize_target(req->path, req->path_len, flags, s, &norm_len) != PATH_OK)
            return exchange_fail(x, 400, LB_OK);
        out->path = s;
        out->path_len = (uint32_t)norm_len;
        path = s;
        const char *q = memchr(s, '?', norm_len);
        path_len = q ? (size_t)(q - s) : norm_len;
        if (q) {
            query = q + 1;
            query_len = norm_len - path_len - 1;
        }
    }

    /* 2. The route. */
    if (!w->routing)
        w->routing = route_worker_new(ROUTE_BUCKETS); /* once per worker; NULL: no rate limits */
    struct route_input in = {.method = req->method,
                             .method_len = req->method_len,
                             .host = req->authority,
                             .host_len = req->authority_len,
                             .path = path,
                             .path_len = path_len,
                             .query = query,
                             .query_len = query_len,
                             .header = field_value,
                             .header_ctx = req,
                             .worker = w->routing};
    int i = route_match(g->routes, &in);
    if (i < 0) {
        if (!g->has_default)
            return reply(x, 404, "PR", "no_route");
        return EX_WAIT; /* the default pool */
    }
    x->route = i;
    obs_req_route(&x->obs, generation_route_stats(g, i));
    const struct config_route *r = route_get(g->routes, i);

    /* 3. Policies. */
    if (r->has_allow || r->ndeny || r->rate_mrps) {
        struct sockaddr_storage ss;
        const struct sockaddr *sa = client_addr(x, &ss) ? (const struct sockaddr *)&ss : NULL;
        if ((r->has_allow || r->ndeny) && (!sa || !route_client_allowed(g->routes, i, sa)))
            return reply(x, 403, "PR", "forbidden");
        uint32_t wait_s = route_rate_limit(w->routing, g->routes, i, sa, loop_now(w->loop));
        if (wait_s) {
            x->reply.retry_after = wait_s;
            return reply(x, 429, "PR", "rate_limited");
        }
    }

    /* 4. Answers of golb's own. */
    const struct rewrite_headers *resp = route_response_headers(g->routes, i);
    if (r->action == CONFIG_ROUTE_REDIRECT || r->action == CONFIG_ROUTE_RESPOND) {
        if (resp) {
            x->reply.fields = resp->set;
            x->reply.nfields = resp->nset;
        }
        if (r->action == CONFIG_ROUTE_RESPOND) {
            x->reply.body = r->respond.body ? r->respond.body : "";
            x->reply.body_len = r->respond.body_len;
            return reply(x, r->respond.status, "--", NULL);
        }
        return redirect(x, r, req, info, path, path_len, query, query_len);
    }

    /* 5. The pool, and what the route changes on the way. */
    uint32_t draw = 0;
    if (r->action == CONFIG_ROUTE_SPLIT) {
        struct obs_route *st = generation_route_stats(g, i);
        draw = st ? obs_route_draw(st, w->id) : 0;
    }
    int k = route_pool(g->routes, i, draw);
    if (k < 0 || k >= g->npools)
        return exchange_fail(x, 503, LB_OK); /* not reached: the configuration is checked */
    x->pool = &g->pools[k];
    x->resp_headers = resp;
    if (normal && (r->strip_prefix || r->rewrite_prefix)) {
        size_t rpl = r->rewrite_prefix ? strlen(r->rewrite_prefix) : 0;
        char *s = path_scratch(w, 2 * norm_len + rpl + 4);
        if (!s)
            return exchange_fail(x, 503, LB_OK);
        /* the scratch may have moved: the normalised target is still at its start */
        path = s;
        query = query ? s + path_len + 1 : NULL;
        out->path = s + norm_len;
        out->path_len = (uint32_t)rewrite_path(r, path, path_len, query, query_len, s + norm_len);
    }
    return EX_WAIT;
}
