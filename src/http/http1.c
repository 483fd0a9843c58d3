/* http1 — see http1.h.
 *
 * A call goes through two steps. First, find_head_end() looks for the empty line that ends the
 * head, with memchr() from just before the bytes the previous call had already seen; while the head
 * is incomplete only the size limits are decided (limits_incomplete()). Then the complete head is
 * parsed in one left-to-right pass: start line, then each field line, with 256-entry class tables
 * and a block fast path (16 bytes with SSE2, else 8) over field values and request targets. The
 * pass never reads past the head's final LF, which stops every scanning loop, so the byte loops
 * need no bounds check.
 *
 *   buf:  [CRLF]* request-line LF  name ":" OWS value OWS LF ...  [CR] LF  next bytes (body...)
 *         ^0     ^start       ^rl_lf                                     ^hend (returned)
 *   (every LF above may be CRLF; nothing is copied, every span points into buf)
 *
 * The limit rule is the same whether the head is complete or not, so that parsing a prefix then
 * the whole buffer always gives the answer one call on the whole buffer would:
 *   414  the request line is longer than max_request_line, or its LF lies at or past max_head;
 *   431  else, the head (leading empty lines included) is longer than max_head.
 */
#include "http/http1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "base/util.h"

#define MAX_LEADING_EMPTY_LINES 8   /* RFC 9112 §2.2: ignore "at least one"; more is abuse */
#define LIMIT_CAP ((size_t)1 << 30) /* limits above this are clamped: spans are 32-bit */

/* Character classes (RFC 9110 §5.6.2 tchar, §5.5 field-vchar, RFC 3986 reg-name, ...). */
enum {
    C_TCHAR = 0x01,  /* token character */
    C_VALUE = 0x02,  /* field value text: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 0x04, /* request-target: visible ASCII 0x21-0x7E */
    C_HOST = 0x08,   /* reg-name: unreserved / sub-delims ('%' is checked apart) */
    C_HEX = 0x10,    /* HEXDIG */
    C_QDTEXT = 0x20, /* quoted-string text: HTAB, SP, 0x21, 0x23-0x5B, 0x5D-0x7E, obs-text */
};

static const uint8_t ctab[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x22, 0x2f, 0x06, 0x27, 0x2f, 0x27, 0x2f, 0x2f, 0x2e, 0x2e, 0x2f, 0x2f, 0x2e, 0x2f, 0x2f, 0x26,
    0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x26, 0x2e, 0x26, 0x2e, 0x26, 0x26,
    0x26, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f,
    0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x06, 0x26, 0x27, 0x2f,
    0x27, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f,
    0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x27, 0x26, 0x2f, 0x00,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
};

#define IS(c, cls) (ctab[(unsigned char)(c)] & (cls))
#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)
#define IS_OWS(c) ((c) == ' ' || (c) == '\t')

/* ---- small helpers ------------------------------------------------------------------------ */

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)(c - 'A') < 26 ? (unsigned char)(c | 0x20) : c;
}

/* s[0..n) equals the lowercase literal lit, ignoring ASCII case. */
static bool eq_ci(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

#define EQ_CI(s, n, lit) ((n) == sizeof(lit) - 1 && eq_ci((s), (lit), sizeof(lit) - 1))

/* SWAR (8 bytes per step): any byte < n (n <= 128), any byte equal to b. Exact as booleans. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
static inline uint64_t has_less(uint64_t w, uint64_t n)
{
    return (w - ONES * n) & ~w & HIGHS;
}
static inline uint64_t has_byte(uint64_t w, uint64_t b)
{
    return has_less(w ^ (ONES * b), 1);
}

/* Returns the first byte at or after p that is not field-value text (HTAB/SP/VCHAR/obs-text).
 * A non-text byte (the head's final LF) must exist before end: it bounds the byte loop, and the
 * block loops only read whole blocks below end. A block holding a stop byte or a tab goes to the
 * byte loop, which returns at the stop byte or goes back to blocks after the tab. */
static const char *skip_value(const char *p, const char *end)
{
    for (;;) {
#ifdef __SSE2__
        if (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i ge20 = _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x20)), x);
            __m128i del = _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f));
            if (_mm_movemask_epi8(_mm_andnot_si128(del, ge20)) == 0xffff) {
                p += 16;
                continue;
            }
        }
#endif
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(has_less(w, 0x20) | has_byte(w, 0x7f))) {
                p += 8;
                continue;
            }
        }
        for (int i = 0; i < 8; i++, p++) /* a tab, a stop byte, or the tail of the head */
            if (!IS(*p, C_VALUE))
                return p;
    }
}

/* Same for request-target bytes (0x21-0x7E). */
static const char *skip_target(const char *p, const char *end)
{
    for (;;) {
#ifdef __SSE2__
        if (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
            /* signed: 0x21..0x7e are exactly the bytes > 0x20 and < 0x7f */
            __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(0x20)),
                                       _mm_cmplt_epi8(x, _mm_set1_epi8(0x7f)));
            if (_mm_movemask_epi8(ok) == 0xffff) {
                p += 16;
                continue;
            }
        }
#endif
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(has_less(w, 0x21) | (w & HIGHS) | has_byte(w, 0x7f))) {
                p += 8;
                continue;
            }
        }
        for (int i = 0; i < 8; i++, p++)
            if (!IS(*p, C_TARGET))
                return p;
    }
}

/* Where parsing failed; copied into the message by the public functions. */
struct perr {
    int status;
    const char *at;
    const char *reason;
};

static int fail(struct perr *e, int status, const char *at, const char *reason)
{
    e->status = status;
    e->at = at;
    e->reason = reason;
    return -EBADMSG;
}

/* Offset just past the empty line that ends the head, or 0 when it is not in buf[from..len) yet.
 * Lines end in LF or CRLF, so the head ends at the first LF followed by LF or CR LF. */
static size_t find_head_end(const char *buf, size_t from, size_t len)
{
    const char *p = buf + from, *end = buf + len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
        if (end - p < 2)
            return 0;
        if (p[1] == '\n')
            return (size_t)(p + 2 - buf);
        if (p[1] == '\r') {
            if (end - p < 3)
                return 0;
            if (p[2] == '\n')
                return (size_t)(p + 3 - buf);
        }
        p++;
    }
    return 0;
}

/* Where to resume the end-of-head search: the terminator is at most 3 bytes ("\n\r\n"), so an end
 * completed by new bytes starts at prev_len - 3 or later. No new bytes (prev_len >= len) means a
 * rescan, which costs little and keeps a confused caller correct. */
static size_t search_from(size_t prev_len, size_t len, size_t start)
{
    if (prev_len >= len || prev_len < 3)
        return start;
    return MAX(prev_len - 3, start);
}

/* ---- authority (Host, absolute-form, authority-form) --------------------------------------- */

/* authority = host [ ":" port ] with host = "[" IPv6address "]" / reg-name (which covers IPv4) and
 * port = 1*5DIGIT <= 65535. No userinfo, no empty host, no IPvFuture, no zone id. need_port: the
 * CONNECT authority-form requires one. */
static bool valid_authority(const char *s, size_t n, bool need_port)
{
    const char *p = s, *end = s + n;
    if (n == 0)
        return false;
    if (*p == '[') {
        const char *rb = memchr(p, ']', n);
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr a;
        if (!rb || rb - p - 1 <= 0 || (size_t)(rb - p - 1) >= sizeof(tmp))
            return false;
        memcpy(tmp, p + 1, (size_t)(rb - p - 1));
        tmp[rb - p - 1] = '\0';
        if (inet_pton(AF_INET6, tmp, &a) != 1)
            return false;
        p = rb + 1;
    } else {
        while (p < end) {
            if (IS(*p, C_HOST))
                p++;
            else if (*p == '%' && end - p >= 3 && IS(p[1], C_HEX) && IS(p[2], C_HEX))
                p += 3;
            else
                break;
        }
        if (p == s)
            return false;
    }
    if (p == end)
        return !need_port;
    if (*p++ != ':' || p == end || end - p > 5)
        return false;
    unsigned port = 0;
    for (; p < end; p++) {
        if (!IS_DIGIT(*p))
            return false;
        port = port * 10 + (unsigned)(*p - '0');
    }
    return port <= 65535;
}

/* ---- field semantics ------------------------------------------------------------------------ */

/* Connection tokens golb acts on; CT_OTHER: any other option. */
enum {
    CT_CLOSE = 0x1,
    CT_KEEP_ALIVE = 0x2,
    CT_UPGRADE = 0x4,
    CT_OTHER = 0x8,
};

/* What the field pass learns; shared by requests and responses. */
struct fields {
    bool is_request;
    bool te_last_chunked; /* the last transfer coding seen is chunked */
    bool has_upgrade;     /* a non-empty Upgrade field */
    bool expect_100;      /* Expect: 100-continue (requests) */
    unsigned conn;        /* CT_* */
    unsigned n_conn;      /* Connection fields */
    unsigned n_cl;        /* Content-Length values (list elements included) */
    unsigned n_te;        /* Transfer-Encoding fields */
    unsigned te_codings;  /* transfer codings over all TE fields */
    unsigned te_chunked;  /* how many of them are chunked */
    unsigned n_host;      /* Host fields (requests) */
    size_t host_idx;      /* index of the Host field */
    uint64_t content_length;
};

static const uint16_t header_flags[HTTP_F_COUNT] = {
    [HTTP_F_CONNECTION] = HTTP_FF_HOP_BY_HOP,       [HTTP_F_KEEP_ALIVE] = HTTP_FF_HOP_BY_HOP,
    [HTTP_F_PROXY_CONNECTION] = HTTP_FF_HOP_BY_HOP, [HTTP_F_TE] = HTTP_FF_HOP_BY_HOP,
    [HTTP_F_TRAILER] = HTTP_FF_HOP_BY_HOP,          [HTTP_F_UPGRADE] = HTTP_FF_HOP_BY_HOP,
    [HTTP_F_HTTP2_SETTINGS] = HTTP_FF_HOP_BY_HOP,
};

bool http1_list_next(const char *v, size_t n, size_t *pos, const char **el, size_t *el_len)
{
    size_t i = *pos;
    for (;;) {
        while (i < n && (IS_OWS(v[i]) || v[i] == ','))
            i++;
        if (i == n) {
            *pos = i;
            return false;
        }
        size_t b = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (IS_OWS(v[e - 1]))
            e--;
        *el = v + b;
        *el_len = e - b;
        *pos = i;
        return true;
    }
}

static bool is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS(s[i], C_TCHAR))
            return false;
    return n > 0;
}

static const char *parse_connection(const char *v, size_t n, struct fields *f)
{
    const char *t;
    size_t tl, pos = 0;
    while (http1_list_next(v, n, &pos, &t, &tl)) {
        if (!is_token(t, tl))
            return "invalid Connection option";
        if (EQ_CI(t, tl, "close"))
            f->conn |= CT_CLOSE;
        else if (EQ_CI(t, tl, "keep-alive"))
            f->conn |= CT_KEEP_ALIVE;
        else if (EQ_CI(t, tl, "upgrade"))
            f->conn |= CT_UPGRADE;
        else
            f->conn |= CT_OTHER;
    }
    return NULL;
}

/* Content-Length = 1*DIGIT below 2^63; a list of identical values ("5, 5"), possibly over several
 * fields, folds into one (RFC 9112 §6.3 item 5). No sign, no inner space, no empty element. */
static const char *parse_content_length(const char *v, size_t n, struct fields *f)
{
    size_t i = 0;
    for (;;) {
        if (i == n || !IS_DIGIT(v[i]))
            return "invalid Content-Length";
        uint64_t x = 0;
        for (; i < n && IS_DIGIT(v[i]); i++) {
            unsigned d = (unsigned)(v[i] - '0');
            if (x > ((uint64_t)INT64_MAX - d) / 10)
                return "Content-Length overflows";
            x = x * 10 + d;
        }
        if (f->n_cl++ && x != f->content_length)
            return "differing Content-Length values";
        f->content_length = x;
        while (i < n && IS_OWS(v[i]))
            i++;
        if (i == n)
            return NULL;
        if (v[i++] != ',')
            return "invalid Content-Length";
        while (i < n && IS_OWS(v[i]))
            i++;
    }
}

/* Transfer-Encoding: a list of codings golb knows, without parameters. chunked at most once; what
 * follows it is judged at the end (requests: must be last; responses: read until close). */
static const char *parse_transfer_encoding(const char *v, size_t n, struct fields *f)
{
    const char *t;
    size_t tl, pos = 0;
    f->n_te++;
    while (http1_list_next(v, n, &pos, &t, &tl)) {
        f->te_codings++;
        if (EQ_CI(t, tl, "chunked")) {
            if (f->te_chunked++)
                return "chunked applied more than once";
            f->te_last_chunked = true;
        } else if (EQ_CI(t, tl, "gzip") || EQ_CI(t, tl, "x-gzip") || EQ_CI(t, tl, "deflate") ||
                   EQ_CI(t, tl, "compress") || EQ_CI(t, tl, "x-compress")) {
            f->te_last_chunked = false;
        } else {
            return "unknown transfer coding";
        }
    }
    return NULL;
}

/* Applies what golb must know of a field; returns why it is invalid, or NULL. */
static const char *field_semantics(enum http_field_id id, const char *v, size_t vl, size_t idx,
                                   struct fields *f)
{
    switch (id) {
    case HTTP_F_CONNECTION:
        f->n_conn++;
        return parse_connection(v, vl, f);
    case HTTP_F_CONTENT_LENGTH:
        return parse_content_length(v, vl, f);
    case HTTP_F_TRANSFER_ENCODING:
        return parse_transfer_encoding(v, vl, f);
    case HTTP_F_HOST:
        if (!f->is_request)
            return NULL;
        if (f->n_host++)
            return "more than one Host field";
        if (!valid_authority(v, vl, false))
            return "invalid Host";
        f->host_idx = idx;
        return NULL;
    case HTTP_F_UPGRADE:
        if (vl)
            f->has_upgrade = true;
        return NULL;
    case HTTP_F_EXPECT:
        if (f->is_request && EQ_CI(v, vl, "100-continue"))
            f->expect_100 = true;
        return NULL;
    default:
        return NULL;
    }
}

/* Why the byte at p cannot continue a field name starting at name. */
static const char *name_error(const char *name, const char *p)
{
    if (p == name) {
        if (IS_OWS(*p))
            return "obs-fold or whitespace at the start of a field line";
        if (*p == ':')
            return "empty field name";
    } else if (IS_OWS(*p)) {
        return "whitespace between field name and colon";
    }
    if (*p == '\r' && p[1] != '\n')
        return "bare CR";
    if (*p == '\r' || *p == '\n')
        return "field line without a colon";
    return "invalid character in field name";
}

/* Parses the field lines from p up to and including the empty line that ends the head, which lies
 * at or before hend (buf[hend - 1] is LF). Returns the end of the head, or NULL with *e set. */
static const char *parse_fields(const char *p, const char *hend, struct http_field *hdr,
                                size_t *num, struct fields *f, struct perr *e)
{
    const int bad = f->is_request ? 400 : 502;
    size_t n = 0;
    for (;;) {
        const char *name = p;
        if (*p == '\r') {
            if (p[1] != '\n') /* safe: p < hend - 1, as buf[hend - 1] is LF */
                return fail(e, bad, p, "bare CR"), NULL;
            p += 2;
            break;
        }
        if (*p == '\n') {
            p++;
            break;
        }
        if (n == HTTP1_MAX_HEADERS)
            return fail(e, f->is_request ? 431 : 502, p, "too many header fields"), NULL;
        while (IS(*p, C_TCHAR))
            p++;
        if (*p != ':' || p == name)
            return fail(e, bad, p, name_error(name, p)), NULL;
        size_t name_len = (size_t)(p - name);
        p++;
        while (IS_OWS(*p))
            p++;
        const char *v = p;
        p = skip_value(p, hend);
        const char *vend = p;
        if (*p == '\r' && p[1] == '\n')
            p += 2;
        else if (*p == '\n')
            p++;
        else
            return fail(e, bad, p, *p == '\r' ? "bare CR" : "invalid character in field value"),
                   NULL;
        while (vend > v && IS_OWS(vend[-1]))
            vend--;

        struct http_field *h = &hdr[n];
        enum http_field_id id = http_field_id_of(name, name_len);
        h->name = name;
        h->name_len = (uint32_t)name_len;
        h->value = v;
        h->value_len = (uint32_t)(vend - v);
        h->id = (uint16_t)id;
        h->flags = header_flags[id];
        if (id != HTTP_F_OTHER) {
            const char *why = field_semantics(id, v, (size_t)(vend - v), n, f);
            if (why)
                return fail(e, bad, v, why), NULL;
        }
        n++;
    }
    *num = n;
    return p;
}

static bool name_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* Flags every field named by a Connection option (RFC 9110 §7.6.1). The usual options (close,
 * keep-alive, upgrade) take one pass over the fields; others compare every option to every name. */
static void mark_connection_listed(struct http_field *hdr, size_t n, unsigned conn)
{
    if (!(conn & CT_OTHER)) {
        for (size_t i = 0; i < n; i++) {
            struct http_field *h = &hdr[i];
            if (((conn & CT_KEEP_ALIVE) && h->id == HTTP_F_KEEP_ALIVE) ||
                ((conn & CT_UPGRADE) && h->id == HTTP_F_UPGRADE) ||
                ((conn & CT_CLOSE) && EQ_CI(h->name, h->name_len, "close")))
                h->flags |= HTTP_FF_CONN_LISTED;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (hdr[i].id != HTTP_F_CONNECTION)
            continue;
        const char *t;
        size_t tl, pos = 0;
        while (http1_list_next(hdr[i].value, hdr[i].value_len, &pos, &t, &tl))
            for (size_t j = 0; j < n; j++)
                if (hdr[j].name_len == tl && name_eq(hdr[j].name, t, tl))
                    hdr[j].flags |= HTTP_FF_CONN_LISTED;
    }
}

/* Persistence per RFC 9112 §9.3: 1.1 unless "close"; 1.0 only with "keep-alive" (and no close). */
static unsigned connection_flags(const struct fields *f, int minor)
{
    unsigned fl = 0;
    if (f->conn & CT_CLOSE)
        fl |= HTTP1_MF_CONN_CLOSE;
    else if (minor == 1 || (f->conn & CT_KEEP_ALIVE))
        fl |= HTTP1_MF_KEEP_ALIVE;
    return fl;
}

/* ---- requests ------------------------------------------------------------------------------- */

/* Position of the request line's LF in buf[start..start+n), or NULL. */
static const char *line_end(const char *buf, size_t start, size_t n)
{
    return memchr(buf + start, '\n', n);
}

/* Decides 414/431 while the head is still incomplete (see the rule at the top of this file).
 * Returns -EAGAIN when no limit is certain to be exceeded yet. */
static int limits_incomplete(const char *buf, size_t len, size_t start, size_t max_rl,
                             size_t max_head, struct perr *e)
{
    if (len - start <= max_rl && len < max_head)
        return -EAGAIN; /* the common case: nothing can have been exceeded yet */
    size_t n = MIN(len - start, max_rl + 2), content, lf_off;
    const char *lf = line_end(buf, start, n);
    if (lf) {
        lf_off = (size_t)(lf - buf);
        content = lf_off - start - (lf[-1] == '\r');
    } else if (n == max_rl + 2) {
        return fail(e, 414, buf + start, "request line too long");
    } else { /* no LF yet: the line holds at least these bytes, bar a final CR */
        lf_off = len;
        content = n - (buf[len - 1] == '\r');
    }
    if (content > max_rl || lf_off >= max_head)
        return fail(e, 414, buf + start, "request line too long");
    if (lf && len >= max_head)
        return fail(e, 431, buf + max_head, "request head too large");
    return -EAGAIN;
}

/* scheme length of an absolute-form target: 7 for "http://", 8 for "https://" (case-insensitive
 * scheme), else 0. */
static size_t http_scheme_len(const char *t, size_t n)
{
    if (n < 7 || !HTTP_NAME_IS_(t, "http"))
        return 0;
    size_t i = (t[4] | 0x20) == 's' ? 5 : 4;
    if (n >= i + 3 && t[i] == ':' && t[i + 1] == '/' && t[i + 2] == '/')
        return i + 3;
    return 0;
}

/* Classifies the request target (RFC 9112 §3.2) and fills path/authority for the forms that carry
 * them. Called after the method and target spans are set. */
static int request_target(struct http1_request *req, struct perr *e)
{
    const char *t = req->target;
    size_t n = req->target_len;
    bool connect = req->rq.method_len == 7 && !memcmp(req->rq.method, "CONNECT", 7);

    if (connect) { /* authority-form, and only for CONNECT */
        if (!valid_authority(t, n, true))
            return fail(e, 400, t, "CONNECT needs an authority-form target");
        req->rq.flags |= HTTP1_MF_CONNECT;
        req->rq.authority = t;
        req->rq.authority_len = (uint32_t)n;
        req->rq.path = "";
        req->rq.path_len = 0;
        return 0;
    }
    if (*t == '/') { /* origin-form */
        req->rq.path = t;
        req->rq.path_len = (uint32_t)n;
        return 0;
    }
    if (n == 1 && *t == '*') { /* asterisk-form */
        if (req->rq.method_len != 7 || memcmp(req->rq.method, "OPTIONS", 7))
            return fail(e, 400, t, "asterisk-form target with a method other than OPTIONS");
        req->rq.flags |= HTTP1_MF_ASTERISK;
        req->rq.path = t;
        req->rq.path_len = 1;
        return 0;
    }
    size_t sl = http_scheme_len(t, n);
    if (!sl)
        return fail(e, 400, t, "invalid request target");
    /* absolute-form: authority up to the first '/', whose absence means the path "/". A query
     * right after the authority ("http://a?q") has no contiguous "/?q" span: it fails as an
     * invalid authority, like userinfo ("http://u@a/"). */
    const char *a = t + sl, *end = t + n;
    const char *slash = memchr(a, '/', (size_t)(end - a));
    const char *aend = slash ? slash : end;
    if (!valid_authority(a, (size_t)(aend - a), false))
        return fail(e, 400, a, "invalid authority in absolute-form target");
    req->rq.flags |= HTTP1_MF_ABSOLUTE;
    req->rq.scheme = t;
    req->rq.scheme_len = (uint32_t)(sl - 3);
    req->rq.authority = a;
    req->rq.authority_len = (uint32_t)(aend - a);
    if (slash) {
        req->rq.path = slash;
        req->rq.path_len = (uint32_t)(end - slash);
    } else {
        req->rq.path = "/";
        req->rq.path_len = 1;
    }
    return 0;
}

/* request-line = method SP request-target SP HTTP-version, exactly; eol is the CR or LF ending it
 * and hend the end of the head (bounds the fast scans). */
static int request_line(const char *p, const char *eol, const char *hend, struct http1_request *req,
                        struct perr *e)
{
    const char *m = p;
    while (IS(*p, C_TCHAR))
        p++;
    if (p == m || *p != ' ')
        return fail(e, 400, p,
                    p == eol ? "request line without a target" : "invalid character in method");
    req->rq.method = m;
    req->rq.method_len = (uint32_t)(p - m);

    const char *t = ++p;
    p = skip_target(p, hend);
    if (p == t || *p != ' ')
        return fail(e, 400, p,
                    p == eol ? "request line without a version (HTTP/0.9)"
                             : "invalid character in request target");
    req->target = t;
    req->target_len = (uint32_t)(p - t);

    const char *v = ++p;
    if (eol - v != 8 || memcmp(v, "HTTP/", 5) || !IS_DIGIT(v[5]) || v[6] != '.' || !IS_DIGIT(v[7]))
        return fail(e, 400, v, "malformed HTTP version");
    if (v[5] != '1' || v[7] > '1')
        return fail(e, 505, v, "unsupported HTTP version");
    req->rq.version = v[7] == '1' ? HTTP_V1_1 : HTTP_V1_0;
    return request_target(req, e);
}

/* Checks a complete request line of a head that is still incomplete. Returns 0 when there is no
 * complete line yet or it is valid (the full parse redoes it), -1 with e set when it is invalid.
 * Only called while waiting for more bytes, so a fast client never pays for it. */
static int request_line_early(const char *buf, size_t len, size_t start, size_t max_rl,
                              struct http1_request *req, struct perr *e)
{
    const char *lf = line_end(buf, start, MIN(len - start, max_rl + 2));
    if (!lf)
        return 0;
    const char *eol = lf > buf + start && lf[-1] == '\r' ? lf - 1 : lf;
    return request_line(buf + start, eol, lf, req, e);
}

/* Framing (RFC 9112 §6.1, §6.3) and flags of a request whose fields parsed. */
static int request_finish(struct http1_request *req, struct fields *f, struct perr *e,
                          const char *at)
{
    if (f->n_te) {
        if (req->rq.version == HTTP_V1_0)
            return fail(e, 400, at, "Transfer-Encoding in an HTTP/1.0 request");
        if (f->n_cl)
            return fail(e, 400, at, "both Content-Length and Transfer-Encoding");
        if (!f->te_last_chunked)
            return fail(e, 400, at, "chunked is not the final transfer coding");
        req->rq.body = HTTP_BODY_STREAM;
    } else if (f->n_cl) {
        req->rq.body = HTTP_BODY_LENGTH;
        req->rq.content_length = f->content_length;
    }
    if (req->rq.version == HTTP_V1_1 && !f->n_host)
        return fail(e, 400, at, "HTTP/1.1 request without Host");
    if (!(req->rq.flags & (HTTP1_MF_ABSOLUTE | HTTP1_MF_CONNECT)) && f->n_host) {
        req->rq.authority = req->headers[f->host_idx].value;
        req->rq.authority_len = req->headers[f->host_idx].value_len;
    }
    req->rq.flags |= connection_flags(f, req->rq.version == HTTP_V1_1);
    /* Upgrade and 100-continue mean nothing in HTTP/1.0 (RFC 9110 §7.8, §10.1.1). */
    if (req->rq.version == HTTP_V1_1 && (f->conn & CT_UPGRADE) && f->has_upgrade)
        req->rq.flags |= HTTP1_MF_UPGRADE;
    if (req->rq.version == HTTP_V1_1 && f->expect_100)
        req->rq.flags |= HTTP1_MF_EXPECT_100;
    if (f->conn)
        mark_connection_listed(req->headers, req->rq.num_fields, f->conn);
    return 0;
}

static ssize_t request_error(struct http1_request *req, const char *buf, const struct perr *e)
{
    req->err_status = e->status;
    req->err_offset = (size_t)(e->at - buf);
    req->err_reason = e->reason;
    return -EBADMSG;
}

ssize_t http1_split_own_request(const char *buf, size_t len, struct http1_request *req)
{
    const char *end = buf + len;
    const char *eol = memchr(buf, '\r', len);
    if (!eol || eol + 1 >= end || eol[1] != '\n')
        return -1;
    const char *sp = memchr(buf, ' ', (size_t)(eol - buf)), *sp2 = eol;
    while (sp2 > buf && sp2[-1] != ' ')
        sp2--;
    if (!sp || sp == buf || sp2 - 1 <= sp + 1)
        return -1; /* no method, or no target between the two spaces */
    memset(&req->rq, 0, sizeof(req->rq));
    req->rq.method = buf;
    req->rq.method_len = (uint32_t)(sp - buf);
    req->target = sp + 1;
    req->target_len = (uint32_t)(sp2 - 1 - (sp + 1));
    req->rq.fields = req->headers;
    size_t n = 0;
    for (const char *p = eol + 2; p < end; p = eol + 2) {
        if (*p == '\r') {
            if (p + 1 == end || p[1] != '\n')
                return -1;
            req->rq.num_fields = n;
            return p + 2 - buf;
        }
        eol = memchr(p, '\r', (size_t)(end - p));
        const char *colon = eol ? memchr(p, ':', (size_t)(eol - p)) : NULL;
        if (!colon || colon == p || eol + 1 == end || eol[1] != '\n' || n == HTTP1_MAX_HEADERS)
            return -1;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        req->headers[n++] = (struct http_field){
            .name = p,
            .value = v,
            .name_len = (uint32_t)(colon - p),
            .value_len = (uint32_t)(ve - v),
            .id = (uint16_t)http_field_id_of(p, (size_t)(colon - p)),
        };
    }
    return -1; /* no empty line */
}

ssize_t http1_parse_request(const char *buf, size_t len, size_t prev_len,
                            const struct http1_limits *lim, struct http1_request *req)
{
    size_t max_head = lim && lim->max_head ? lim->max_head : HTTP1_DEFAULT_MAX_HEAD;
    size_t max_rl =
        lim && lim->max_request_line ? lim->max_request_line : HTTP1_DEFAULT_MAX_REQUEST_LINE;
    /* A request line longer than max_head is a 414 under either limit, so this changes nothing. */
    max_head = MIN(max_head, LIMIT_CAP);
    max_rl = MIN(max_rl, max_head);
    struct perr e;
    req->err_status = 0;
    req->err_offset = 0;
    req->err_reason = NULL;

    /* Empty lines before the request line (RFC 9112 §2.2), bounded. */
    size_t start = 0;
    for (int blank = 0; start < len && (buf[start] == '\r' || buf[start] == '\n'); blank++) {
        if (blank == MAX_LEADING_EMPTY_LINES)
            return fail(&e, 400, buf + start, "too many empty lines before the request"),
                   request_error(req, buf, &e);
        if (buf[start] == '\r') {
            if (start + 1 == len)
                return -EAGAIN;
            if (buf[start + 1] != '\n')
                return fail(&e, 400, buf + start, "bare CR"), request_error(req, buf, &e);
            start++;
        }
        start++;
    }
    if (start == len)
        return -EAGAIN;

    size_t hend = find_head_end(buf, search_from(prev_len, len, start), len);
    if (!hend) {
        /* Decided in the order a complete head is: line too long (414), a bad request line
         * (400/505: an HTTP/0.9 "GET /path" line is answered now rather than after a blank line
         * its client never sends), head too large (431). So any prefix of a message gets the
         * answer the whole message would. */
        int limit_rc = limits_incomplete(buf, len, start, max_rl, max_head, &e);
        if (limit_rc != -EAGAIN && e.status == 414)
            return request_error(req, buf, &e);
        struct perr line_e;
        if (request_line_early(buf, len, start, max_rl, req, &line_e))
            return request_error(req, buf, &line_e);
        if (limit_rc != -EAGAIN)
            return request_error(req, buf, &e);
        return -EAGAIN;
    }

    const char *lf = line_end(buf, start, hend - start); /* found: the head ends with a LF */
    size_t lf_off = (size_t)(lf - buf);
    const char *eol = lf[-1] == '\r' ? lf - 1 : lf;
    if ((size_t)(eol - buf) - start > max_rl || lf_off >= max_head)
        return fail(&e, 414, buf + start, "request line too long"), request_error(req, buf, &e);

    req->rq.flags = 0;
    req->rq.body = HTTP_BODY_NONE;
    req->rq.content_length = 0;
    req->rq.authority = "";
    req->rq.authority_len = 0;
    req->rq.scheme = req->rq.protocol = "";
    req->rq.scheme_len = req->rq.protocol_len = 0;
    req->rq.fields = req->headers;
    /* The request line's own errors come before the head's size, as while it is incomplete. */
    if (request_line(buf + start, eol, buf + hend, req, &e))
        return request_error(req, buf, &e);
    if (hend > max_head)
        return fail(&e, 431, buf + max_head, "request head too large"), request_error(req, buf, &e);

    struct fields f = {.is_request = true};
    const char *end = parse_fields(lf + 1, buf + hend, req->headers, &req->rq.num_fields, &f, &e);
    if (!end)
        return request_error(req, buf, &e);
    if (request_finish(req, &f, &e, end - 1))
        return request_error(req, buf, &e);
    return end - buf;
}

/* ---- responses ------------------------------------------------------------------------------ */

static ssize_t response_error(struct http1_response *resp, const char *buf, const struct perr *e)
{
    resp->err_status = 502;
    resp->err_offset = (size_t)(e->at - buf);
    resp->err_reason = e->reason;
    return -EBADMSG;
}

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ], or without the second SP when the
 * reason is empty ("HTTP/1.1 200", sent by enough servers that every proxy takes it). */
static int status_line(const char *buf, const char *eol, const char *hend,
                       struct http1_response *resp, struct perr *e)
{
    const char *p = buf;
    if (eol - p < 12 || memcmp(p, "HTTP/", 5) || !IS_DIGIT(p[5]) || p[6] != '.' ||
        !IS_DIGIT(p[7]) || p[8] != ' ')
        return fail(e, 502, p, "malformed status line");
    if (p[5] != '1' || p[7] > '1')
        return fail(e, 502, p + 5, "unsupported HTTP version");
    if (p[9] < '1' || p[9] > '9' || !IS_DIGIT(p[10]) || !IS_DIGIT(p[11]))
        return fail(e, 502, p + 9, "malformed status code");
    resp->minor_version = p[7] - '0';
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    resp->reason = p + 12;
    resp->reason_len = 0;
    if (eol == p + 12)
        return 0;
    if (p[12] != ' ')
        return fail(e, 502, p + 12, "malformed status line");
    const char *r = p + 13, *stop = skip_value(r, hend);
    if (stop != eol)
        return fail(e, 502, stop, "invalid character in reason phrase");
    resp->reason = r;
    resp->reason_len = (uint32_t)(eol - r);
    return 0;
}

/* Message body length of a response (RFC 9112 §6.3) and its flags. */
static int response_finish(struct http1_response *resp, struct fields *f, bool request_was_head,
                           struct perr *e, const char *at)
{
    if (f->n_te) {
        if (resp->minor_version == 0)
            return fail(e, 502, at, "Transfer-Encoding in an HTTP/1.0 response");
        if (f->n_cl)
            return fail(e, 502, at, "both Content-Length and Transfer-Encoding");
        if (!f->te_codings)
            return fail(e, 502, at, "empty Transfer-Encoding");
    }
    int s = resp->status;
    if (request_was_head || s < 200 || s == 204 || s == 304) {
        resp->body = HTTP1_BODY_NONE;
    } else if (f->n_te) {
        resp->body = f->te_last_chunked ? HTTP1_BODY_CHUNKED : HTTP1_BODY_CLOSE;
    } else if (f->n_cl) {
        resp->body = HTTP1_BODY_LENGTH;
        resp->content_length = f->content_length;
    } else {
        resp->body = HTTP1_BODY_CLOSE;
    }
    resp->flags = connection_flags(f, resp->minor_version);
    if (resp->body == HTTP1_BODY_CLOSE)
        resp->flags &= ~(unsigned)HTTP1_MF_KEEP_ALIVE;
    if ((f->conn & CT_UPGRADE) && f->has_upgrade)
        resp->flags |= HTTP1_MF_UPGRADE;
    if (f->conn)
        mark_connection_listed(resp->headers, resp->num_headers, f->conn);
    return 0;
}

ssize_t http1_parse_response(const char *buf, size_t len, size_t prev_len, size_t max_head,
                             bool request_was_head, struct http1_response *resp)
{
    struct perr e;
    if (!max_head)
        max_head = HTTP1_DEFAULT_MAX_HEAD;
    max_head = MIN(max_head, LIMIT_CAP);
    resp->err_status = 0;
    resp->err_offset = 0;
    resp->err_reason = NULL;

    size_t hend = find_head_end(buf, search_from(prev_len, len, 0), len);
    if (!hend) {
        if (len < max_head)
            return -EAGAIN;
        return fail(&e, 502, buf + max_head, "response head too large"),
               response_error(resp, buf, &e);
    }
    if (hend > max_head)
        return fail(&e, 502, buf + max_head, "response head too large"),
               response_error(resp, buf, &e);

    const char *lf = memchr(buf, '\n', hend);
    const char *eol = lf > buf && lf[-1] == '\r' ? lf - 1 : lf;
    resp->flags = 0;
    resp->body = HTTP1_BODY_NONE;
    resp->content_length = 0;
    if (status_line(buf, eol, buf + hend, resp, &e))
        return response_error(resp, buf, &e);

    struct fields f = {.is_request = false};
    const char *end = parse_fields(lf + 1, buf + hend, resp->headers, &resp->num_headers, &f, &e);
    if (!end)
        return response_error(resp, buf, &e);
    if (response_finish(resp, &f, request_was_head, &e, end - 1))
        return response_error(resp, buf, &e);
    return end - buf;
}

/* ---- chunked bodies ------------------------------------------------------------------------- */

/* Decoder states. A body is a sequence of
 *
 *   SIZE [SIZE_WS] [; EXT_NAME0 EXT_NAME [EXT_NAME_WS] [= EXT_VAL0 (EXT_VAL | "EXT_QUOTED") ...]]
 *        CR SIZE_LF LF   DATA...   CR DATA_LF LF            (chunk, size > 0)
 *   0 ... CR SIZE_LF LF  (TRAILER name TR_NAME : TR_VALUE CR TR_LF LF)*  CR END_LF LF  DONE
 *
 * line_len counts the bytes of the current size line (bounded by HTTP1_CHUNK_LINE_MAX; in SIZE it
 * is also the number of digits so far) or of the whole trailer section (HTTP1_TRAILERS_MAX). */
enum {
    CS_SIZE = 0,        /* hex digits of chunk-size */
    CS_SIZE_WS,         /* BWS after the size or an extension value: ';' must follow */
    CS_EXT_NAME0,       /* after ';': BWS, then the extension name */
    CS_EXT_NAME,        /* in the name */
    CS_EXT_NAME_WS,     /* BWS after the name: '=' or ';' must follow */
    CS_EXT_VAL0,        /* after '=': BWS, then a token or a quoted-string */
    CS_EXT_VAL,         /* in a token value */
    CS_EXT_QUOTED,      /* in a quoted-string value */
    CS_EXT_QUOTED_ESC,  /* after a backslash in it */
    CS_EXT_AFTER_QUOTE, /* after the closing quote */
    CS_SIZE_LF,         /* CR seen, LF must follow */
    CS_DATA,            /* remaining bytes of chunk data */
    CS_DATA_CR,         /* CRLF after the data */
    CS_DATA_LF,
    CS_TRAILER, /* start of a trailer line, or of the final CRLF */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_END_LF, /* final CR seen */
    CS_DONE,
    CS_ERROR,
};

static int hex_value(unsigned char c)
{
    if (IS_DIGIT(c))
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

ssize_t http1_chunked_decode(struct http1_chunked *c, const char *buf, size_t len, bool *is_data)
{
    *is_data = false;
    if (c->state == CS_ERROR)
        return -EBADMSG;
    if (len == 0 || c->state == CS_DONE)
        return 0;
    if (c->state == CS_DATA) {
        size_t n = c->remaining < len ? (size_t)c->remaining : len;
        c->remaining -= n;
        if (!c->remaining)
            c->state = CS_DATA_CR;
        *is_data = true;
        return (ssize_t)n;
    }

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (c->state <= CS_SIZE_LF) {
            if (++c->line_len > HTTP1_CHUNK_LINE_MAX)
                goto bad;
        } else if (c->state >= CS_TRAILER) {
            if (++c->line_len > HTTP1_TRAILERS_MAX)
                goto bad;
        }
        switch (c->state) {
        case CS_SIZE: {
            int d = hex_value(ch);
            if (d >= 0) { /* line_len - 1 digits so far */
                if (c->line_len > 16 || c->remaining > (uint64_t)INT64_MAX >> 4)
                    goto bad;
                c->remaining = c->remaining << 4 | (uint64_t)d;
            } else if (c->line_len == 1) {
                goto bad; /* no digit: sign, space, empty line... */
            } else if (ch == '\r') {
                c->state = CS_SIZE_LF;
            } else if (ch == ';') {
                c->state = CS_EXT_NAME0;
            } else if (IS_OWS(ch)) {
                c->state = CS_SIZE_WS;
            } else {
                goto bad;
            }
            break;
        }
        case CS_SIZE_WS:
            if (ch == ';')
                c->state = CS_EXT_NAME0;
            else if (!IS_OWS(ch))
                goto bad;
            break;
        case CS_EXT_NAME0:
            if (IS(ch, C_TCHAR))
                c->state = CS_EXT_NAME;
            else if (!IS_OWS(ch))
                goto bad;
            break;
        case CS_EXT_NAME:
            if (IS(ch, C_TCHAR))
                break;
            if (ch == '=')
                c->state = CS_EXT_VAL0;
            else if (ch == ';')
                c->state = CS_EXT_NAME0;
            else if (IS_OWS(ch))
                c->state = CS_EXT_NAME_WS;
            else if (ch == '\r')
                c->state = CS_SIZE_LF;
            else
                goto bad;
            break;
        case CS_EXT_NAME_WS:
            if (ch == '=')
                c->state = CS_EXT_VAL0;
            else if (ch == ';')
                c->state = CS_EXT_NAME0;
            else if (!IS_OWS(ch))
                goto bad;
            break;
        case CS_EXT_VAL0:
            if (ch == '"')
                c->state = CS_EXT_QUOTED;
            else if (IS(ch, C_TCHAR))
                c->state = CS_EXT_VAL;
            else if (!IS_OWS(ch))
                goto bad;
            break;
        case CS_EXT_VAL:
            if (IS(ch, C_TCHAR))
                break;
            /* after a token value as after a closing quote */
            /* fall through */
        case CS_EXT_AFTER_QUOTE:
            if (ch == ';')
                c->state = CS_EXT_NAME0;
            else if (IS_OWS(ch))
                c->state = CS_SIZE_WS;
            else if (ch == '\r')
                c->state = CS_SIZE_LF;
            else
                goto bad;
            break;
        case CS_EXT_QUOTED:
            if (ch == '"')
                c->state = CS_EXT_AFTER_QUOTE;
            else if (ch == '\\')
                c->state = CS_EXT_QUOTED_ESC;
            else if (!IS(ch, C_QDTEXT))
                goto bad;
            break;
        case CS_EXT_QUOTED_ESC: /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            if (!IS(ch, C_VALUE))
                goto bad;
            c->state = CS_EXT_QUOTED;
            break;
        case CS_SIZE_LF:
            if (ch != '\n')
                goto bad;
            c->line_len = 0;
            if (c->remaining == 0) {
                c->state = CS_TRAILER;
                break;
            }
            c->state = CS_DATA;
            return (ssize_t)(i + 1); /* the data run is the next call's */
        case CS_DATA_CR:
            if (ch != '\r')
                goto bad;
            c->state = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->state = CS_SIZE;
            c->line_len = 0;
            break;
        case CS_TRAILER:
            if (ch == '\r')
                c->state = CS_END_LF;
            else if (IS(ch, C_TCHAR))
                c->state = CS_TR_NAME;
            else
                goto bad; /* obs-fold, empty name, bare LF, ... */
            break;
        case CS_TR_NAME:
            if (ch == ':')
                c->state = CS_TR_VALUE;
            else if (!IS(ch, C_TCHAR))
                goto bad;
            break;
        case CS_TR_VALUE:
            if (ch == '\r')
                c->state = CS_TR_LF;
            else if (!IS(ch, C_VALUE))
                goto bad;
            break;
        case CS_TR_LF:
            if (ch != '\n')
                goto bad;
            c->state = CS_TRAILER;
            break;
        case CS_END_LF:
            if (ch != '\n')
                goto bad;
            c->state = CS_DONE;
            return (ssize_t)(i + 1);
        default:
            goto bad;
        }
    }
    return (ssize_t)len;
bad:
    c->state = CS_ERROR;
    return -EBADMSG;
}

bool http1_chunked_done(const struct http1_chunked *c)
{
    return c->state == CS_DONE;
}

bool http1_chunked_in_trailers(const struct http1_chunked *c)
{
    return c->state >= CS_TRAILER && c->state < CS_DONE;
}

size_t http1_parse_trailers(const char *buf, size_t len, struct http_field *f, size_t max)
{
    size_t n = 0;
    const char *p = buf, *end = buf + len;
    while (n < max && p < end && *p != '\r') {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *lf = colon ? memchr(colon, '\n', (size_t)(end - colon)) : NULL;
        if (!lf)
            break;
        const char *v = colon + 1, *vend = lf - 1; /* before the CR */
        while (v < vend && IS_OWS(*v))
            v++;
        while (vend > v && IS_OWS(vend[-1]))
            vend--;
        f[n++] = (struct http_field){.name = p,
                                     .name_len = (uint32_t)(colon - p),
                                     .value = v,
                                     .value_len = (uint32_t)(vend - v)};
        p = lf + 1;
    }
    return n;
}

const char *http1_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 511:
        return "Network Authentication Required";
    default:
        return "Unknown";
    }
}
