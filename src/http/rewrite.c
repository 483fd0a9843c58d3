/* rewrite — the request and response heads golb sends, serialised from parsed spans.
 *
 * golb never forwards head bytes as received: it writes its own head from what http1 parsed, so the
 * next hop sees exactly the framing golb used (no smuggling through ambiguities), with CRLF line
 * ends, hop-by-hop fields removed and the X-Forwarded-* fields set. See each function's contract.
 */
#include "http/rewrite.h"

#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "base/buf.h"
#include "http/http.h"
#include "http/http1.h"
#include "base/util.h"

struct out {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void out_mem(struct out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void out_str(struct out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

/* Decimal digits without printf: this runs for every response head (Content-Length). */
static void out_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out_mem(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void out_field(struct out *o, const struct http_field *h)
{
    out_mem(o, h->name, h->name_len);
    out_mem(o, ": ", 2);
    out_mem(o, h->value, h->value_len);
    out_mem(o, "\r\n", 2);
}

/* True for a field that must not be forwarded (RFC 9110 §7.6.1): the hop-by-hop fields, and those
 * the sender named in Connection, except the ones golb's own framing and routing rest on (Host,
 * Content-Length, Transfer-Encoding): dropping those because a peer listed them would make the next
 * hop frame the message differently from golb. Upgrade stays when a tunnel is being set up (a 101;
 * requests write their Upgrade themselves, filtered). */
static bool drop_hop_by_hop(const struct http_field *h, bool upgrading)
{
    if (upgrading && h->id == HTTP_F_UPGRADE)
        return false;
    if (h->flags & HTTP_FF_HOP_BY_HOP)
        return true;
    if (!(h->flags & HTTP_FF_CONN_LISTED))
        return false;
    return h->id != HTTP_F_HOST && h->id != HTTP_F_CONTENT_LENGTH &&
           h->id != HTTP_F_TRANSFER_ENCODING;
}

/* ---- Upgrade ---------------------------------------------------------------------------------
 *
 * The protocols of every Upgrade field of a message, in order:
 *   Upgrade: h2c, websocket      ─┐
 *   Upgrade: foo/2               ─┴─► "h2c", "websocket", "foo/2"
 */
struct upgrade_iter {
    const struct http_field *h;
    size_t n, i, pos;
};

static bool upgrade_next(struct upgrade_iter *it, const char **p, size_t *len)
{
    for (; it->i < it->n; it->i++, it->pos = 0) {
        const struct http_field *h = &it->h[it->i];
        if (h->id == HTTP_F_UPGRADE && http1_list_next(h->value, h->value_len, &it->pos, p, len))
            return true;
    }
    return false;
}

static bool eq_ci(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

/* protocol = token ["/" token] (RFC 9110 §7.8) */
static bool is_protocol(const char *p, size_t len)
{
    static const char tspecial[] = "!#$%&'*+-.^_`|~";
    size_t slash = 0, run = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (ch == '/') {
            if (slash++ || run == 0)
                return false;
            run = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || (ch && strchr(tspecial, ch))) {
            run++;
        } else {
            return false;
        }
    }
    return run > 0;
}

bool rewrite_upgrade_protocol_allowed(const char *proto, size_t len, const char *const *allowed)
{
    if (!is_protocol(proto, len))
        return false;
    const char *slash = memchr(proto, '/', len);
    size_t name_len = slash ? (size_t)(slash - proto) : len;
    for (size_t i = 0; allowed && allowed[i]; i++) {
        const char *a = allowed[i];
        size_t alen = strlen(a);
        if (eq_ci(proto, len, a, alen) ||
            (!memchr(a, '/', alen) && eq_ci(proto, name_len, a, alen)))
            return true;
    }
    return false;
}

bool rewrite_upgrade_allowed(const struct http_request *req, const char *const *allowed)
{
    if (!(req->flags & HTTP_RF_UPGRADE))
        return false;
    if (req->protocol_len) /* an extended CONNECT names its one protocol */
        return rewrite_upgrade_protocol_allowed(req->protocol, req->protocol_len, allowed);
    struct upgrade_iter it = {req->fields, req->num_fields, 0, 0};
    const char *p;
    size_t len;
    while (upgrade_next(&it, &p, &len))
        if (rewrite_upgrade_protocol_allowed(p, len, allowed))
            return true;
    return false;
}

bool rewrite_upgrade_response_ok(const struct http1_response *resp, const char *const *allowed)
{
    struct upgrade_iter it = {resp->headers, resp->num_headers, 0, 0};
    const char *p;
    size_t len;
    bool any = false;
    while (upgrade_next(&it, &p, &len)) {
        if (!rewrite_upgrade_protocol_allowed(p, len, allowed))
            return false;
        any = true;
    }
    return any;
}

/* "Upgrade: " + the allowed protocols of req, in order. */
static void out_upgrade(struct out *o, const struct http_request *req, const char *const *allowed)
{
    struct upgrade_iter it = {req->fields, req->num_fields, 0, 0};
    const char *p;
    size_t len;
    bool first = true;
    out_str(o, "Upgrade: ");
    while (upgrade_next(&it, &p, &len)) {
        if (!rewrite_upgrade_protocol_allowed(p, len, allowed))
            continue;
        if (!first)
            out_str(o, ", ");
        out_mem(o, p, len);
        first = false;
    }
    out_str(o, "\r\n");
}

/* Whether the Upgrade golb forwards names h2c (whose HTTP2-Settings then goes along). */
static bool forwards_h2c(const struct http_request *req, const char *const *allowed)
{
    struct upgrade_iter it = {req->fields, req->num_fields, 0, 0};
    const char *p;
    size_t len;
    while (upgrade_next(&it, &p, &len))
        if (eq_ci(p, len, "h2c", 3) && rewrite_upgrade_protocol_allowed(p, len, allowed))
            return true;
    return false;
}

/* An HTTP/2 cookie crumb (RFC 9113 §8.2.3): names are lower-case there. */
/* golb's element of the Forwarded chain (RFC 7239 §4), after the fields it kept (a trusted
 * chain) or instead of the ones it dropped (an untrusted one): who connected to golb, over what,
 * for which host. An IPv6 node is a quoted "[...]"; the host is quoted as it may carry a port. */
static void out_forwarded(struct out *o, const struct http_request *req,
                          const struct rewrite_request *opt)
{
    bool v6 = memchr(opt->client_ip, ':', opt->client_ip_len) != NULL;
    out_str(o, v6 ? "Forwarded: for=\"[" : "Forwarded: for=");
    out_mem(o, opt->client_ip, opt->client_ip_len);
    out_str(o, v6 ? "]\";proto=" : ";proto=");
    out_str(o, opt->https ? "https" : "http");
    if (req->authority_len) {
        out_str(o, ";host=\"");
        out_mem(o, req->authority, req->authority_len);
        out_str(o, "\"");
    }
    out_str(o, "\r\n");
}

static bool is_cookie(const struct http_field *h)
{
    return h->name_len == 6 && memcmp(h->name, "cookie", 6) == 0;
}

/* "cookie: " + the values of every cookie field from index i on, joined with "; ". */
static void out_cookies(struct out *o, const struct http_request *req, size_t i)
{
    out_str(o, "cookie: ");
    for (const char *sep = ""; i < req->num_fields; i++) {
        const struct http_field *h = &req->fields[i];
        if (!is_cookie(h))
            continue;
        out_str(o, sep);
        out_mem(o, h->value, h->value_len);
        sep = "; ";
    }
    out_str(o, "\r\n");
}

/* True when the filter h sets the field called name[0..len). */
static bool filter_sets(const struct rewrite_headers *h, const char *name, size_t len)
{
    for (size_t i = 0; i < h->nset; i++)
        if (eq_ci(name, len, h->set[i].name, h->set[i].name_len))
            return true;
    return false;
}

bool rewrite_headers_touch(const struct rewrite_headers *h, const char *name, size_t len)
{
    for (size_t i = 0; i < h->nremove; i++)
        if (eq_ci(name, len, h->remove[i].name, h->remove[i].name_len))
            return true;
    return filter_sets(h, name, len);
}

/* The fields a filter sets, each "name: value" CRLF. */
static void out_set_fields(struct out *o, const struct rewrite_headers *h)
{
    for (size_t i = 0; i < h->nset; i++)
        out_field(o, &h->set[i]);
}

/* A Sec-WebSocket-Key for an extended CONNECT (RFC 8441 §5: an HTTP/2 client sends none, but
 * the HTTP/1.1 handshake golb makes of it needs one, RFC 6455 §4.1): 16 random bytes in base64.
 * The backend only hashes it into its Sec-WebSocket-Accept, which golb does not pass on. */
static void out_websocket_key(struct out *o)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char r[18] = {0};
    if (getrandom(r, 16, GRND_NONBLOCK) != 16) { /* no entropy yet: any nonce does */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        memcpy(r, &ts, sizeof(ts) < 16 ? sizeof(ts) : 16);
    }
    char key[24];
    for (int i = 0, k = 0; i < 18; i += 3) {
        uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
        key[k++] = b64[v >> 18 & 63];
        key[k++] = b64[v >> 12 & 63];
        key[k++] = b64[v >> 6 & 63];
        key[k++] = b64[v & 63];
    }
    key[22] = key[23] = '='; /* 16 bytes: the last group holds one byte */
    out_str(o, "Sec-WebSocket-Key: ");
    out_mem(o, key, sizeof(key));
    out_str(o, "\r\n");
}

bool rewrite_request_head(const struct http_request *req, const struct rewrite_request *opt,
                          struct buf *b, uint32_t *host_at)
{
    struct out o = {.p = b->data, .cap = b->cap};
    const struct rewrite_headers *flt = opt->headers;
    bool host_set = flt && filter_sets(flt, "host", 4);
    /* An extended CONNECT (RFC 8441) is an HTTP/1.1 Upgrade handshake: GET with Upgrade. */
    if (req->protocol_len)
        out_str(&o, "GET");
    else
        out_mem(&o, req->method, req->method_len);
    out_mem(&o, " ", 1);
    out_mem(&o, req->path, req->path_len);
    out_str(&o, " HTTP/1.1\r\n");

    bool xff_seen = false, upgrade_out = false, host_seen = false, te_seen = false;
    bool xfp_seen = false, xfh_seen = false, trusted = opt->trusted_peer;
    bool fwd_seen = false, real_ip_seen = false, ws_key_seen = false;
    bool cookies = req->version == HTTP_V2, cookies_out = false;
    bool h2c_settings = opt->upgrade && forwards_h2c(req, opt->upgrade_protocols), settings = false;
    for (size_t i = 0; i < req->num_fields; i++) {
        const struct http_field *h = &req->fields[i];
        if (h->id == HTTP_F_UPGRADE) {
            /* once, where the first Upgrade field was, with only the allowed protocols */
            if (opt->upgrade && !upgrade_out)
                out_upgrade(&o, req, opt->upgrade_protocols);
            upgrade_out = true;
            continue;
        }
        if (h->id == HTTP_F_HTTP2_SETTINGS && h2c_settings) {
            out_field(&o, h); /* a connection option of the h2c upgrade golb forwards */
            settings = true;
            continue;
        }
        if (drop_hop_by_hop(h, false))
            continue;
        if (unlikely(flt != NULL) && (h->id == HTTP_F_OTHER || h->id == HTTP_F_HOST) &&
            rewrite_headers_touch(flt, h->name, h->name_len))
            continue; /* removed, or replaced by the filter's value below */
        switch (h->id) {
        case HTTP_F_CONTENT_LENGTH:
            continue;
        case HTTP_F_X_FORWARDED_PROTO: /* a trusted proxy's view, else golb's own below */
            if (!trusted)
                continue;
            xfp_seen = true;
            break;
        case HTTP_F_X_FORWARDED_HOST:
            if (!trusted)
                continue;
            xfh_seen = true;
            break;
        case HTTP_F_HOST:
            if (req->flags & HTTP_RF_AUTHORITY)
                continue; /* replaced by the target's authority (RFC 9112 §3.2.2) */
            host_seen = true;
            break;
        case HTTP_F_TRANSFER_ENCODING:
            te_seen = true;
            break;
        case HTTP_F_X_FORWARDED_FOR:
            xff_seen = trusted;
            continue;          /* folded into one field below, or replaced */
        case HTTP_F_FORWARDED: /* a trusted chain goes on (golb's element follows it below) */
            fwd_seen = true;
            if (!trusted)
                continue; /* an untrusted peer's claim: replaced by golb's own below */
            break;
        case HTTP_F_X_REAL_IP:
            if (!trusted) {
                real_ip_seen = true;
                continue; /* replaced by golb's own below */
            }
            break;
        case HTTP_F_OTHER:
            if (opt->request_id_len && h->name_len == 12 &&
                strncasecmp(h->name, "x-request-id", 12) == 0)
                continue; /* golb's (kept or new) value is written below */
            if (opt->set_name_len && h->name_len == opt->set_name_len &&
                strncasecmp(h->name, opt->set_name, h->name_len) == 0)
                continue; /* golb sets this one itself (client certificate subject) */
            if (h->name_len == 17 && strncasecmp(h->name, "sec-websocket-key", 17) == 0)
                ws_key_seen = true;
            if (cookies && is_cookie(h)) {
                if (!cookies_out) /* all crumbs in one field, where the first one was */
                    out_cookies(&o, req, i);
                cookies_out = true;
                continue;
            }
            break;
        default:
            break;
        }
        out_field(&o, h);
    }
    if (opt->set_value) {
        out_mem(&o, opt->set_name, opt->set_name_len);
        out_mem(&o, ": ", 2);
        out_mem(&o, opt->set_value, opt->set_value_len);
        out_mem(&o, "\r\n", 2);
    }
    if (flt)
        out_set_fields(&o, flt);
    /* The authority replaces any Host (absolute-form), or stands for a missing one (HTTP/2
     * :authority, RFC 9113 §8.3.1); a Host the route's filter sets replaces both. */
    if (!host_set && ((req->flags & HTTP_RF_AUTHORITY) || (!host_seen && req->authority_len))) {
        out_str(&o, "Host: ");
        out_mem(&o, req->authority, req->authority_len);
        out_str(&o, "\r\n");
    }
    if (req->body == HTTP_BODY_LENGTH) {
        out_str(&o, "Content-Length: ");
        out_u64(&o, req->content_length);
        out_str(&o, "\r\n");
    } else if (req->body == HTTP_BODY_STREAM && !te_seen) {
        out_str(&o, "Transfer-Encoding: chunked\r\n"); /* the exchange chunks it */
    }
    if (opt->upgrade && req->protocol_len) {
        out_str(&o, "Upgrade: ");
        out_mem(&o, req->protocol, req->protocol_len);
        out_str(&o, "\r\n");
        if (!ws_key_seen && req->protocol_len == 9 &&
            strncasecmp(req->protocol, "websocket", 9) == 0)
            out_websocket_key(&o);
    }
    if (opt->upgrade)
        out_str(&o,
                settings ? "Connection: upgrade, HTTP2-Settings\r\n" : "Connection: upgrade\r\n");
    out_str(&o, "X-Forwarded-For: ");
    if (xff_seen) {
        for (size_t i = 0; i < req->num_fields; i++) {
            const struct http_field *h = &req->fields[i];
            if (h->id != HTTP_F_X_FORWARDED_FOR || h->value_len == 0)
                continue;
            out_mem(&o, h->value, h->value_len);
            out_str(&o, ", ");
        }
    }
    out_mem(&o, opt->client_ip, opt->client_ip_len);
    out_str(&o, "\r\n");
    if (!xfp_seen)
        out_str(&o, opt->https ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    if (opt->request_id_len) {
        out_str(&o, "X-Request-Id: ");
        out_mem(&o, opt->request_id, opt->request_id_len);
        out_str(&o, "\r\n");
    }
    if (req->authority_len && !xfh_seen) {
        out_str(&o, "X-Forwarded-Host: ");
        out_mem(&o, req->authority, req->authority_len);
        out_str(&o, "\r\n");
    }
    if (real_ip_seen) {
        out_str(&o, "X-Real-IP: ");
        out_mem(&o, opt->client_ip, opt->client_ip_len);
        out_str(&o, "\r\n");
    }
    if (fwd_seen)
        out_forwarded(&o, req, opt);
    /* Without any authority (an HTTP/1.0 request without Host) the head is finished per try by
     * rewrite_set_host(), since HTTP/1.1 upstreams require a Host. */
    bool has_host = req->authority_len || host_set;
    *host_at = has_host ? 0 : (uint32_t)o.len;
    if (has_host)
        out_str(&o, "\r\n");
    b->pos = 0;
    b->last = (uint32_t)o.len;
    return !o.overflow;
}

bool rewrite_trailer_forwarded(const struct http_field *h)
{
    if (drop_hop_by_hop(h, false))
        return false;
    switch (h->id) {
    case HTTP_F_CONTENT_LENGTH: /* framing and routing are settled by the head */
    case HTTP_F_TRANSFER_ENCODING:
    case HTTP_F_HOST:
    case HTTP_F_TRAILER:
    case HTTP_F_CONNECTION:
    case HTTP_F_KEEP_ALIVE:
    case HTTP_F_PROXY_CONNECTION:
    case HTTP_F_TE:
    case HTTP_F_UPGRADE:
        return false;
    default:
        return true;
    }
}

bool rewrite_trailers(const struct http_field *f, size_t n, struct buf *b)
{
    struct out o = {.p = b->data + b->last, .cap = b->cap - b->last};
    for (size_t i = 0; i < n; i++)
        if (rewrite_trailer_forwarded(&f[i]))
            out_field(&o, &f[i]);
    out_str(&o, "\r\n");
    if (o.overflow)
        return false;
    b->last += (uint32_t)o.len;
    return true;
}

bool rewrite_set_host(struct buf *b, uint32_t host_at, const char *host)
{
    if (!host_at)
        return true;
    struct out o = {.p = b->data, .len = host_at, .cap = b->cap};
    out_str(&o, "Host: ");
    out_str(&o, host);
    out_str(&o, "\r\n\r\n");
    b->last = (uint32_t)o.len;
    return !o.overflow;
}

bool rewrite_response_head(const struct http1_response *resp, const struct rewrite_response *opt,
                           struct buf *b)
{
    bool interim = resp->status < 200 && resp->status != 101;
    bool upgrade = resp->status == 101;
    struct out o = {.p = b->data + b->last, .cap = b->cap - b->last};
    char status[4] = {(char)('0' + resp->status / 100 % 10), (char)('0' + resp->status / 10 % 10),
                      (char)('0' + resp->status % 10), ' '};
    out_str(&o, "HTTP/1.1 ");
    out_mem(&o, status, sizeof(status));
    out_mem(&o, resp->reason, resp->reason_len);
    out_str(&o, "\r\n");

    for (size_t i = 0; i < resp->num_headers; i++) {
        const struct http_field *h = &resp->headers[i];
        if (drop_hop_by_hop(h, upgrade))
            continue;
        if (!interim && resp->body != HTTP1_BODY_NONE &&
            (h->id == HTTP_F_CONTENT_LENGTH || h->id == HTTP_F_TRANSFER_ENCODING)) {
            /* Keep the codings as sent: chunked stays final when passed through, and a body
             * whose final coding is not chunked (close-delimited, RFC 9112 §6.3) keeps its
             * gzip or the like, or the client would take coded bytes for the content. */
            if (h->id == HTTP_F_TRANSFER_ENCODING && !opt->http10 &&
                (resp->body == HTTP1_BODY_CLOSE ||
                 (resp->body == HTTP1_BODY_CHUNKED && !opt->dechunk)))
                out_field(&o, h);
            continue;
        }
        if (h->id == HTTP_F_TRANSFER_ENCODING && opt->http10)
            continue; /* HTTP/1.0 has no transfer codings */
        if (unlikely(opt->headers != NULL) && !interim && !upgrade && h->id == HTTP_F_OTHER &&
            rewrite_headers_touch(opt->headers, h->name, h->name_len))
            continue; /* removed, or replaced by the route's value below */
        out_field(&o, h);
    }
    if (opt->headers && !interim && !upgrade)
        out_set_fields(&o, opt->headers);
    if (!interim) {
        if (resp->body == HTTP1_BODY_LENGTH) {
            out_str(&o, "Content-Length: ");
            out_u64(&o, resp->content_length);
            out_str(&o, "\r\n");
        }
        if (upgrade)
            out_str(&o, "Connection: upgrade\r\n");
        else if (!opt->keepalive)
            out_str(&o, "Connection: close\r\n");
        else if (opt->http10)
            out_str(&o, "Connection: keep-alive\r\n");
        if (opt->set_cookie_len) { /* the sticky-session cookie, on final heads only */
            out_str(&o, "Set-Cookie: ");
            out_mem(&o, opt->set_cookie, opt->set_cookie_len);
            out_str(&o, "\r\n");
        }
    }
    out_str(&o, "\r\n");
    if (o.overflow)
        return false;
    b->last += (uint32_t)o.len;
    return true;
}
