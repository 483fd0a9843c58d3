/* config — the YAML configuration file turned into an immutable, validated struct config.
 *
 *   bytes ──libyaml events──▶ node tree (scalar | sequence | mapping, 1-based line:col on each)
 *         ──top mapping walked against keys[] (name, type, offsetof, min, max, default)──▶
 *   struct config (defaults first) ──cross-field checks──▶ *out, or freed and -1
 *
 * Every problem becomes a diagnostic {line, col, text}. Nothing stops at the first one: the whole
 * file is checked, then the diagnostics are sorted by position and written to `errs`, one per line,
 * as `NAME:LINE:COL: text` (errors) or `NAME:LINE:COL: warning: text`. Only a YAML syntax error,
 * nesting deeper than MAX_DEPTH or a second document stops the walk: no tree is left to check.
 *
 * Grammar (a subset of YAML 1.1; anchors, aliases, tags and multiple documents are rejected):
 *   config   := mapping; each known key at most once; unknown keys are errors (an unknown key
 *               written twice is reported twice as unknown, not as a duplicate)
 *   INT      := plain (unquoted) scalar ["-"] DIGITS without a leading zero ("010" is octal in
 *               YAML 1.1); no "0x10", "1e3", "+5", "true". Quoted numbers ("8080") are rejected:
 *               in YAML they are strings. "-" is accepted so that -1 is reported as out of range.
 *   SECONDS  := plain scalar ["-"] DIGITS ["." DIGITS] (also ".5" and "5."), converted exactly
 *               (no floating point) to ms = round(seconds * 1000), halves up; must be > 0,
 *               at most 86400 and round to at least 1 ms
 *   port     := INT 1..65535                  (listen on 0.0.0.0:PORT; default 8080)
 *   listen   := "ADDR:PORT" | "[IPV6]:PORT" | ":PORT", PORT 0..65535 (0 = ephemeral); wins
 *               over port (which then draws a warning)
 *   workers  := INT 1..1024                   (default: online CPUs)
 *   *Timeout, healthCheckPeriod := SECONDS
 *   maxHeaderSize 1024..1048576, maxRequestLine 256..maxHeaderSize (default min(8192,
 *   maxHeaderSize)), maxConnections 1..1000000, retries 0..100, maxFails 0..1000,
 *   upstreamMaxIdle 0..100000 := INT
 *   admin    := mapping {listen: ADDR (required), token: STRING | tokenFile: PATH}; ADDR as
 *               for listen, or "unix:/PATH"; a token is required unless the address is loopback
 *               or unix; tokenFile's content (trailing whitespace removed) is the token
 *   accessLog := off | text | json;  logFormat := text | json;  accessLogPath := "/PATH"
 *   upgradeProtocols := sequence of PROTOCOL (TOKEN ["/" TOKEN]), default [websocket]; [] = off
 *   backends := non-empty sequence of (URL | mapping {url: URL (required), healthPath: "/...",
 *               weight: INT 0..1000 (default 1)})
 *   balance  := roundRobin | leastConnections | random | leastLatency | hash
 *   hashKey  := clientAddress | uri | "header:TOKEN" | "cookie:TOKEN" | "query:NAME"
 *   hashLoadFactor := 0 | decimal > 1 and ≤ 100, kept in thousandths (exactly, as SECONDS are)
 *   slowStart 0..3600 (s), panicThreshold 0..100 (%), healthyThreshold, unhealthyThreshold 1..100
 *               := INT
 *   stickySession := mapping {cookie: TOKEN (required), maxAge: INT 0..315360000, secure: BOOL,
 *               httpOnly: BOOL (default true), sameSite: Strict | Lax | None}; BOOL := true | false
 *   URL      := "http://" HOST [":" PORT] [PATH] ["?" QUERY]; no userinfo, fragment, spaces or
 *               control characters; at most URL_MAX bytes. HOST := name | IPv4 | "[" IPv6 "]",
 *               PORT 1..65535 (default 80). Health path: healthPath, else PATH[?QUERY], else "/".
 *               HOST is resolved at load time (numeric first, then by name; first address).
 *
 * Messages (KEY a key name, V the offending value quoted and escaped, or "null", "a sequence", "a
 * mapping", "the quoted string V"; N a line number):
 *   cannot read: <strerror>                 (at 1:1, config_load only)
 *   file is larger than 1 MiB               (at 1:1, config_load only)
 *   out of memory                           (at 1:1)
 *   too many problems: N more not shown     (after DIAG_MAX, at the first one not shown)
 *   invalid YAML: <libyaml problem>[ (<libyaml context> at line N column C)]
 *   only one YAML document is allowed
 *   nesting deeper than 64 levels
 *   anchors are not supported (&NAME)
 *   aliases are not supported (*NAME)
 *   tags are not supported ("TAG")          (TAG as libyaml expands it: "tag:yaml.org,2002:int")
 *   empty configuration: "backends" is required
 *   top level must be a mapping of keys to values, got V
 *   keys must be strings, got V
 *   unknown key "K"[ (did you mean "KEY"?)]
 *   unknown key "K" in backend[ (did you mean "url"?)]
 *   duplicate key "K" (first defined at line N)
 *   missing required key "backends"
 *   KEY must be a decimal integer, got V
 *   KEY must be between MIN and MAX, got V
 *   KEY must be a number of seconds (e.g. 3 or 0.5), got V
 *   KEY must be greater than 0, got V
 *   KEY must be at most 86400 seconds (1 day), got V
 *   KEY must be at least 0.001 seconds (1 ms), got V
 *   maxRequestLine (N) must not exceed maxHeaderSize (M)
 *   listen must be "ADDR:PORT", "[IPv6]:PORT" or ":PORT", got V
 *   listen port must be between 0 and 65535, got V
 *   listen: IPv6 addresses must be in brackets, e.g. "[::1]:8080"
 *   cannot resolve listen address "HOST": <gai_strerror>
 *   backends must be a sequence of backends, got V
 *   backends must not be empty
 *   backend must be a URL or a mapping with "url", got V
 *   backend is missing "url"
 *   url must be a string, got V
 *   healthPath must be a path starting with "/", got V
 *   healthPath must not contain spaces or control characters
 *   https backends are not supported yet (TLS comes later)
 *   invalid backend URL "U": REASON     REASON is one of:
 *       it must start with "http://" | unsupported scheme "S" (only http is supported) |
 *       spaces and control characters are not allowed | longer than 2048 bytes |
 *       user information ("user@") is not allowed | fragments ("#...") are not allowed |
 *       empty host | invalid host "H" | missing "]" after the IPv6 address |
 *       invalid IPv6 address "[H]" | unexpected "X" after "]" |
 *       IPv6 addresses must be in brackets, e.g. "http://[::1]:8081/" |
 *       invalid port "P" (must be 1..65535)
 *   cannot resolve backend host "HOST": <gai_strerror>   (or, in numeric-only mode: name
 *       resolution is disabled (numeric addresses and "localhost" only))
 *   duplicate backend "NAME" (same address as the backend at line N)
 *   weight must be between 0 and 1000, got V
 *   balance must be roundRobin, leastConnections, random, leastLatency or hash, got V
 *   hashKey must be clientAddress, uri, "header:NAME", "cookie:NAME" or "query:NAME", got V
 *   hashKey: invalid name "N"
 *   hashLoadFactor must be a number (e.g. 1.25), got V
 *   hashLoadFactor must be 0 (off) or above 1 and at most 100, got V
 *   stickySession must be a mapping with "cookie", got V
 *   stickySession is missing "cookie"
 *   stickySession cookie must be a cookie name, got V
 *   unknown key "K" in stickySession[ (did you mean "cookie"?)]
 *   secure must be true or false, got V        (also httpOnly)
 *   sameSite must be Strict, Lax or None, got V
 *   admin must be a mapping with "listen" (and "token"), got V
 *   unknown key "K" in admin[ (did you mean ...?)]
 *   admin is missing "listen"
 *   admin.listen must be "ADDR:PORT", "[IPv6]:PORT", ":PORT" or "unix:/PATH", got V
 *   admin.token must be a non-empty string of visible ASCII characters
 *   admin.token or admin.tokenFile is required when admin.listen is not a loopback or unix address
 *   admin.token and admin.tokenFile are mutually exclusive: give one
 *   admin.tokenFile must be a path, got V
 *   admin.tokenFile: cannot read "PATH": <strerror>
 *   admin.tokenFile: cannot use "PATH": it is not a regular file | it is larger than 4096 bytes |
 *       it is empty | it must hold one token of visible ASCII characters
 *   accessLog must be one of off, text, json, got V
 *   logFormat must be one of text, json, got V
 *   accessLogPath must be a path, got V
 *   upgradeProtocols must be a sequence of protocol names (e.g. [websocket]), got V
 *   upgradeProtocols entry must be a protocol name (a token such as websocket, optionally with
 *       /VERSION), got V
 * Warnings:
 *   hashKey is ignored unless balance is hash   (also hashLoadFactor)
 *   port is ignored because listen is set (line N)
 *   healthCheckTimeout (T s) is not less than healthCheckPeriod (P s); a backend is not checked
 *   again while its previous check is still running
 *   admin.tokenFile: "PATH" is readable by every user (chmod o-r)
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/un.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "config/config_int.h"
#include "net/tls.h"
#include "base/util.h"

#define FILE_MAX (1024 * 1024) /* config_load refuses larger files */
#define MAX_DEPTH 64           /* nesting limit: keeps the recursive walk and free shallow */
#define DAY_MS 86400000u
#define DIAG_MAX 1000 /* diagnostics kept; beyond, only counted (a summary line says so) */

/* ---------------------------------------------------------------------------------------------
 * Node tree
 */

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

static int tolower_ascii(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : (unsigned char)ch;
}

/* libyaml marks are 0-based size_t; ours are 1-based int. */
static int mark_num(size_t v)
{
    return (int)MIN(v, (size_t)INT32_MAX - 1) + 1;
}

bool is_scalar(const struct node *n)
{
    return n->kind == NODE_SCALAR;
}

/* YAML 1.1 null: an empty or ~/null plain scalar. */
bool is_null(const struct node *n)
{
    if (n->kind != NODE_SCALAR || n->quoted)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

/* A scalar usable as a C string: not null, no embedded NUL. */
bool is_string(const struct node *n)
{
    return is_scalar(n) && !is_null(n) && strlen(n->str) == n->len;
}

bool key_is(const struct node *k, const char *name)
{
    return is_scalar(k) && k->len == strlen(name) && memcmp(k->str, name, k->len) == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Diagnostics
 */

struct diag {
    int line, col;
    unsigned seq; /* keeps discovery order among diagnostics at the same position */
    bool warning;
    char *text;
};

struct load {
    const char *name; /* file name shown in messages */
    struct diag *diags;
    size_t ndiags, cap;
    int nerrors;
    size_t dropped;          /* diagnostics beyond DIAG_MAX */
    int drop_line, drop_col; /* where the first of them is */
    bool oom;

    /* filled while walking the top mapping: index = row in keys[] */
    const struct node *key_at[48];
    const struct node *val_at[48];
    int port; /* from `port`, -1 when absent or invalid */
    bool listen_ok;
};

static void vdiag(struct load *l, bool warning, int line, int col, const char *fmt, va_list ap)
{
    if (!warning)
        l->nerrors++;
    if (l->ndiags == DIAG_MAX) {
        if (!l->dropped++) {
            l->drop_line = line;
            l->drop_col = col;
        }
        return;
    }
    if (l->ndiags == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct diag *d = realloc(l->diags, cap * sizeof(*d));
        if (!d) {
            l->oom = true;
            return;
        }
        l->diags = d;
        l->cap = cap;
    }
    char *text;
    if (vasprintf(&text, fmt, ap) == -1) {
        l->oom = true;
        return;
    }
    l->diags[l->ndiags] = (struct diag){line, col, (unsigned)l->ndiags, warning, text};
    l->ndiags++;
}

__attribute__((format(printf, 4, 5))) static void error_lc(struct load *l, int line, int col,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(l, false, line, col, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) void error_at(struct load *l, const struct node *n,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(l, false, n->line, n->col, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) void warning_at(struct load *l, const struct node *n,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(l, true, n->line, n->col, fmt, ap);
    va_end(ap);
}

static int diag_cmp(const void *a, const void *b)
{
    const struct diag *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes every diagnostic sorted by position, frees them; returns -1 if any was an error. */
static int diag_flush(struct load *l, FILE *errs)
{
    if (l->oom) {
        l->nerrors++;
        if (errs)
            fprintf(errs, "%s:1:1: out of memory\n", l->name);
    }
    if (l->ndiags)
        qsort(l->diags, l->ndiags, sizeof(*l->diags), diag_cmp);
    for (size_t i = 0; i < l->ndiags; i++) {
        struct diag *d = &l->diags[i];
        if (errs)
            fprintf(errs, "%s:%d:%d: %s%s\n", l->name, d->line, d->col,
                    d->warning ? "warning: " : "", d->text);
        free(d->text);
    }
    if (l->dropped && errs)
        fprintf(errs, "%s:%d:%d: too many problems: %zu more not shown\n", l->name, l->drop_line,
                l->drop_col, l->dropped);
    free(l->diags);
    l->diags = NULL;
    l->ndiags = l->cap = 0;
    if (errs)
        fflush(errs);
    return l->nerrors ? -1 : 0;
}


const char *quote_with(struct qbuf *q, const char *prefix, const char *s, size_t len)
{
    size_t o = (size_t)snprintf(q->s, 32, "%s", prefix);
    size_t shown = 0;
    q->s[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool continuation = (ch & 0xC0) == 0x80;
        if ((shown == QUOTE_MAX && !continuation) || o + 8 >= sizeof(q->s)) {
            memcpy(q->s + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            q->s[o++] = '\\';
            q->s[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(q->s + o, 5, "\\x%02X", ch);
        } else {
            q->s[o++] = (char)ch;
        }
        if (!continuation)
            shown++;
    }
    q->s[o++] = '"';
    q->s[o] = '\0';
    return q->s;
}

const char *quote(struct qbuf *q, const char *s, size_t len)
{
    return quote_with(q, "", s, len);
}

/* A scalar already known to hold only digits, '-' and '.': shown as is, cut after QUOTE_MAX. */
const char *number(struct qbuf *q, const struct node *n)
{
    size_t len = MIN(n->len, (size_t)QUOTE_MAX);
    memcpy(q->s, n->str, len);
    strcpy(q->s + len, n->len > len ? "..." : "");
    return q->s;
}

/* What a node is, for "got ..." in messages. */
const char *describe(struct qbuf *q, const struct node *n)
{
    switch (n->kind) {
    case NODE_SEQUENCE:
        return "a sequence";
    case NODE_MAPPING:
        return "a mapping";
    case NODE_BAD:
        return "an alias";
    case NODE_SCALAR:
        break;
    }
    if (is_null(n))
        return "null";
    return quote_with(q, n->quoted ? "the quoted string " : "", n->str, n->len);
}

/* "5", "0.5", "1.25": milliseconds as seconds for messages. */
static const char *seconds_str(char buf[24], uint32_t ms)
{
    int n = snprintf(buf, 24, "%u.%03u", ms / 1000, ms % 1000);
    while (n > 0 && buf[n - 1] == '0')
        buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '.')
        buf[--n] = '\0';
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * libyaml events → node tree
 */

static struct node *node_new(struct load *l, enum node_kind kind, const yaml_mark_t *m)
{
    struct node *n = calloc(1, sizeof(*n));
    if (!n) {
        l->oom = true;
        return NULL;
    }
    n->kind = kind;
    n->line = mark_num(m->line);
    n->col = mark_num(m->column);
    return n;
}

static int node_add(struct load *l, struct node *parent, struct node *kid)
{
    if (parent->nkids == parent->cap) {
        size_t cap = parent->cap ? 2 * parent->cap : 8;
        struct node **k = realloc(parent->kids, cap * sizeof(*k));
        if (!k) {
            l->oom = true;
            return -1;
        }
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->nkids++] = kid;
    return 0;
}

/* Reports anchors and tags on a node event (aliases are reported where they appear). */
static void check_props(struct load *l, const yaml_event_t *ev, const yaml_char_t *anchor,
                        const yaml_char_t *tag)
{
    int line = mark_num(ev->start_mark.line), col = mark_num(ev->start_mark.column);
    struct qbuf q;
    if (anchor) /* libyaml limits anchor names to [0-9A-Za-z_-]: safe to print as they are */
        error_lc(l, line, col, "anchors are not supported (&%s)", (const char *)anchor);
    if (tag) {
        const char *t = (const char *)tag;
        error_lc(l, line, col, "tags are not supported (%s)", quote(&q, t, strlen(t)));
    }
}

/* Turns libyaml's error into one diagnostic. Reader errors carry a byte offset, not a mark. */
static void yaml_problem(struct load *l, const yaml_parser_t *p, const char *data, size_t len)
{
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_MEMORY_ERROR) {
        l->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        int line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (data[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (p->problem_value != -1)
            error_lc(l, line, col, "invalid YAML: %s (byte 0x%02X)", problem,
                     (unsigned)p->problem_value & 0xFFu);
        else
            error_lc(l, line, col, "invalid YAML: %s", problem);
        return;
    }
    int line = mark_num(p->problem_mark.line), col = mark_num(p->problem_mark.column);
    if (p->context)
        error_lc(l, line, col, "invalid YAML: %s (%s at line %zu column %zu)", problem, p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    else
        error_lc(l, line, col, "invalid YAML: %s", problem);
}

/* Parses the first document into a tree. *fatal is set when the tree cannot be trusted (syntax
 * error, too deep, out of memory); a second document is reported but the first is still walked. */
static struct node *tree_build(struct load *l, const char *data, size_t len, bool *fatal)
{
    yaml_parser_t p;
    struct node *stack[MAX_DEPTH];
    struct node *root = NULL;
    int depth = 0, docs = 0;
    bool done = false;

    if (!yaml_parser_initialize(&p)) {
        l->oom = true;
        *fatal = true;
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    while (!done) {
        yaml_event_t ev;
        struct node *n = NULL;
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_problem(l, &p, data, len);
            *fatal = true;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                error_lc(l, mark_num(ev.start_mark.line), mark_num(ev.start_mark.column),
                         "only one YAML document is allowed");
                done = true;
            }
            break;
        case YAML_ALIAS_EVENT:
            error_lc(l, mark_num(ev.start_mark.line), mark_num(ev.start_mark.column),
                     "aliases are not supported (*%s)", (const char *)ev.data.alias.anchor);
            n = node_new(l, NODE_BAD, &ev.start_mark);
            break;
        case YAML_SCALAR_EVENT:
            check_props(l, &ev, ev.data.scalar.anchor, ev.data.scalar.tag);
            n = node_new(l, NODE_SCALAR, &ev.start_mark);
            if (!n)
                break;
            n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
            n->len = ev.data.scalar.length;
            n->str = malloc(n->len + 1);
            if (!n->str) {
                l->oom = true;
                free(n);
                n = NULL;
                break;
            }
            memcpy(n->str, ev.data.scalar.value, n->len);
            n->str[n->len] = '\0';
            break;
        case YAML_SEQUENCE_START_EVENT:
            check_props(l, &ev, ev.data.sequence_start.anchor, ev.data.sequence_start.tag);
            n = node_new(l, NODE_SEQUENCE, &ev.start_mark);
            break;
        case YAML_MAPPING_START_EVENT:
            check_props(l, &ev, ev.data.mapping_start.anchor, ev.data.mapping_start.tag);
            n = node_new(l, NODE_MAPPING, &ev.start_mark);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        default:
            break;
        }
        if (n) {
            if (depth == 0 && !root) {
                root = n;
            } else if (depth == 0 || node_add(l, stack[depth - 1], n) == -1) {
                node_free(n); /* out of memory (a second root cannot happen in one document) */
                n = NULL;
            }
        }
        if (n && (n->kind == NODE_SEQUENCE || n->kind == NODE_MAPPING)) {
            if (depth == MAX_DEPTH) {
                error_at(l, n, "nesting deeper than %d levels", MAX_DEPTH);
                *fatal = true;
                done = true;
            } else {
                stack[depth++] = n;
            }
        }
        yaml_event_delete(&ev);
        if (l->oom) {
            *fatal = true;
            done = true;
        }
    }
    yaml_parser_delete(&p);
    return root;
}

/* ---------------------------------------------------------------------------------------------
 * Known keys
 */


#define DURATION(name, field, secs)                                                                \
    {                                                                                              \
        name, KT_DURATION, offsetof(struct config, field), 1, DAY_MS, (secs)*1000u                 \
    }
#define COUNT(name, field, lo, hi, d)                                                              \
    {                                                                                              \
        name, KT_UINT, offsetof(struct config, field), lo, hi, d                                   \
    }

static const struct key keys[] = {
    {"port", KT_PORT, NO_FIELD, 1, 65535, 8080},
    {"listen", KT_LISTEN, NO_FIELD, 0, 65535, 0},
    {"workers", KT_INT, offsetof(struct config, workers), 1, 1024, 0 /* online CPUs */},
    DURATION("healthCheckTimeout", health_check_timeout_ms, 3),
    DURATION("healthCheckPeriod", health_check_period_ms, 5),
    DURATION("connectTimeout", connect_timeout_ms, 3),
    DURATION("upstreamTimeout", upstream_timeout_ms, 30),
    DURATION("bodyTimeout", body_timeout_ms, 60),
    DURATION("clientHeaderTimeout", client_header_timeout_ms, 10),
    DURATION("keepAliveTimeout", keepalive_timeout_ms, 60),
    DURATION("tunnelTimeout", tunnel_timeout_ms, 300),
    DURATION("shutdownTimeout", shutdown_timeout_ms, 10),
    DURATION("upstreamIdleTimeout", upstream_idle_timeout_ms, 60),
    COUNT("maxHeaderSize", max_header_size, 1024, 1048576, 16384),
    COUNT("maxRequestLine", max_request_line, 256, 1048576, 8192), /* and ≤ maxHeaderSize */
    COUNT("maxConnections", max_connections, 1, 1000000, 10000),
    COUNT("retries", retries, 0, 100, 2),
    COUNT("maxFails", max_fails, 0, 1000, 3),
    COUNT("upstreamMaxIdle", upstream_max_idle, 0, 100000, 64),
    {"backends", KT_BACKENDS, NO_FIELD, 0, 0, 0},
    {"tls", KT_TLS, NO_FIELD, 0, 0, 0},
    {"balance", KT_BALANCE, NO_FIELD, 0, 0, 0},
    {"hashKey", KT_HASHKEY, NO_FIELD, 0, 0, 0},
    {"hashLoadFactor", KT_FACTOR, offsetof(struct config, hash_load_factor), 0, 100000, 0},
    COUNT("slowStart", slow_start_s, 0, 3600, 0),
    COUNT("panicThreshold", panic_threshold, 0, 100, 0),
    COUNT("healthyThreshold", healthy_threshold, 1, 100, 1),
    COUNT("unhealthyThreshold", unhealthy_threshold, 1, 100, 1),
    {"stickySession", KT_STICKY, NO_FIELD, 0, 0, 0},
    {"admin", KT_ADMIN, NO_FIELD, 0, 0, 0},
    {"accessLog", KT_ACCESS_LOG, NO_FIELD, 0, 0, 0},
    {"accessLogPath", KT_PATH, offsetof(struct config, access_log_path), 0, 0, 0},
    {"logFormat", KT_LOG_FORMAT, NO_FIELD, 0, 0, 0},
    {"upgradeProtocols", KT_UPGRADE, NO_FIELD, 0, 0, 0},
};

_Static_assert(ARRAY_LEN(keys) <= 48, "load.key_at is too small");

const struct key *config_top_keys(size_t *n)
{
    *n = ARRAY_LEN(keys);
    return keys;
}

static int key_index(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

void store(struct config *cfg, const struct key *k, uint32_t v)
{
    if (k->type == KT_INT)
        *(int *)(void *)((char *)cfg + k->off) = (int)v;
    else
        *(uint32_t *)(void *)((char *)cfg + k->off) = v;
}

static uint32_t fetch(const struct config *cfg, const char *name)
{
    const struct key *k = &keys[key_index(name)];
    return *(const uint32_t *)(const void *)((const char *)cfg + k->off);
}

/* Optimal string alignment distance, ASCII case-insensitive (so "Port" suggests "port"). */
static size_t edit_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    size_t d[3][40]; /* rows i-2, i-1, i, rotating; lb < 40 for every known key */
    if (lb >= 40 || la > lb + 3 || lb > la + 3)
        return SIZE_MAX; /* too far apart to be suggested anyway */
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *cur = d[i % 3], *prev = d[(i - 1) % 3], *prev2 = d[(i + 1) % 3];
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower_ascii(a[i - 1]), cb = tolower_ascii(b[j - 1]);
            size_t cost = ca != cb;
            size_t v = MIN(prev[j] + 1, cur[j - 1] + 1);
            v = MIN(v, prev[j - 1] + cost);
            if (i > 1 && j > 1 && ca == tolower_ascii(b[j - 2]) && tolower_ascii(a[i - 2]) == cb)
                v = MIN(v, prev2[j - 2] + 1);
            cur[j] = v;
        }
    }
    return d[la % 3][lb];
}

/* The known name closest to `k`, or NULL when none is close enough to be a likely typo. */
static const char *suggest(const struct node *k, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    if (k->len > 64)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(k->str, k->len, names[i]);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    /* up to one edit per three characters, at most 3: "prot" → "port", not "foo" → "port" */
    if (best && best_d <= 3 && best_d * 3 <= strlen(best) + 1)
        return best;
    return NULL;
}

/* Reports an unknown key `k`; `where` is "" or " in backend". */
void unknown_key(struct load *l, const struct node *k, const char *const *names, size_t n,
                        const char *where)
{
    struct qbuf q;
    const char *s = l->ndiags < DIAG_MAX ? suggest(k, names, n) : NULL;
    if (s)
        error_at(l, k, "unknown key %s%s (did you mean \"%s\"?)", quote(&q, k->str, k->len), where,
                 s);
    else
        error_at(l, k, "unknown key %s%s", quote(&q, k->str, k->len), where);
}

/* Checks that `k` can be a key (a string). Returns false, after reporting, when the pair must be
 * skipped. Duplicates are found through the slot each known key fills: an unknown key is an error
 * anyway, and this keeps a file of many keys linear. */
bool key_ok(struct load *l, const struct node *k)
{
    struct qbuf q;
    if (k->kind == NODE_BAD)
        return false;
    if (!is_scalar(k) || is_null(k)) {
        error_at(l, k, "keys must be strings, got %s", describe(&q, k));
        return false;
    }
    return true;
}

/* Fills *slot with `k` unless an earlier key took it; reports the duplicate. */
bool key_first(struct load *l, const struct node *k, const struct node **slot)
{
    struct qbuf q;
    if (*slot) {
        error_at(l, k, "duplicate key %s (first defined at line %d)", quote(&q, k->str, k->len),
                 (*slot)->line);
        return false;
    }
    *slot = k;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Scalars: integers and seconds
 */

/* Plain ["-"]DIGITS without a leading zero; saturates far beyond every bound. 0 or -1. */
int parse_int(const struct node *n, int64_t *out)
{
    if (!is_scalar(n) || n->quoted || n->len == 0)
        return -1;
    const char *s = n->str, *end = n->str + n->len;
    bool neg = *s == '-';
    if (neg)
        s++;
    if (s == end || (*s == '0' && s + 1 != end))
        return -1;
    int64_t v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v < 1000000000000LL)
            v = v * 10 + (*s - '0');
    }
    *out = neg ? -v : v;
    return 0;
}


/* Plain ["-"]DIGITS["."DIGITS] seconds → ms, exactly (decimal digits, no floating point): the
 * first three fraction digits are ms, the fourth rounds half up. */
enum seconds_result parse_seconds(const struct node *n, uint32_t *ms)
{
    if (!is_scalar(n) || n->quoted || n->len == 0)
        return SEC_SYNTAX;
    const char *s = n->str, *end = n->str + n->len;
    bool neg = *s == '-', nonzero = false, frac_nonzero = false;
    uint64_t secs = 0, frac = 0;
    int ndigits = 0, nfrac = 0, round_digit = 0;
    if (neg)
        s++;
    for (; s < end && *s >= '0' && *s <= '9'; s++, ndigits++) {
        if (secs <= DAY_MS)
            secs = secs * 10 + (uint64_t)(*s - '0');
        nonzero |= *s != '0';
    }
    if (s < end && *s == '.') {
        for (s++; s < end && *s >= '0' && *s <= '9'; s++, ndigits++, nfrac++) {
            if (nfrac < 3)
                frac = frac * 10 + (uint64_t)(*s - '0');
            else if (nfrac == 3)
                round_digit = *s - '0';
            nonzero |= *s != '0';
            frac_nonzero |= *s != '0';
        }
    }
    if (s != end || ndigits == 0)
        return SEC_SYNTAX;
    if (neg || !nonzero)
        return SEC_NOT_POSITIVE;
    if (secs > DAY_MS / 1000 || (secs == DAY_MS / 1000 && frac_nonzero))
        return SEC_TOO_LONG;
    for (; nfrac < 3; nfrac++)
        frac *= 10;
    uint64_t v = secs * 1000 + frac + (round_digit >= 5);
    if (v == 0)
        return SEC_TOO_SHORT;
    *ms = (uint32_t)v;
    return SEC_OK;
}

/* An INT row: type and bounds checked, value returned in *v. 0 or -1 after reporting. */
int get_int(struct load *l, const struct key *k, const struct node *v, uint32_t *out)
{
    struct qbuf q;
    int64_t x;
    if (parse_int(v, &x) == -1) {
        error_at(l, v, "%s must be a decimal integer, got %s", k->name, describe(&q, v));
        return -1;
    }
    if (x < (int64_t)k->min || x > (int64_t)k->max) {
        error_at(l, v, "%s must be between %u and %u, got %s", k->name, k->min, k->max,
                 number(&q, v));
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

static int get_duration(struct load *l, const struct key *k, const struct node *v, uint32_t *out)
{
    struct qbuf q;
    switch (parse_seconds(v, out)) {
    case SEC_OK:
        return 0;
    case SEC_SYNTAX:
        error_at(l, v, "%s must be a number of seconds (e.g. 3 or 0.5), got %s", k->name,
                 describe(&q, v));
        break;
    case SEC_NOT_POSITIVE:
        error_at(l, v, "%s must be greater than 0, got %s", k->name, number(&q, v));
        break;
    case SEC_TOO_LONG:
        error_at(l, v, "%s must be at most 86400 seconds (1 day), got %s", k->name, number(&q, v));
        break;
    case SEC_TOO_SHORT:
        error_at(l, v, "%s must be at least 0.001 seconds (1 ms), got %s", k->name, number(&q, v));
        break;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Addresses
 */

static bool numeric_only;

void config_set_resolve_numeric_only(bool on)
{
    numeric_only = on;
}

#define RESOLVE_DISABLED 1 /* not an EAI_* code (those are negative on glibc) */

/* host:port → the first address getaddrinfo returns (numeric first, then by name unless
 * `numeric`, as for a bracketed IPv6 literal). Returns 0, an EAI_* code, or RESOLVE_DISABLED. */
int resolve(const char *host, uint16_t port, bool numeric, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc == EAI_NONAME && !numeric) {
        if (numeric_only && strcasecmp(host, "localhost") != 0)
            return RESOLVE_DISABLED;
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(host, portstr, &hints, &ai);
    }
    if (rc != 0)
        return rc;
    if (ai->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(ai);
        return EAI_FAMILY;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

const char *resolve_error(int rc)
{
    if (rc == RESOLVE_DISABLED)
        return "name resolution is disabled (numeric addresses and \"localhost\" only)";
    if (rc == EAI_SYSTEM)
        return strerror(errno);
    return gai_strerror(rc);
}

bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* DIGITS only, no sign, value in lo..hi. */
bool parse_port(const char *s, size_t len, uint32_t lo, uint32_t hi, uint16_t *out)
{
    uint32_t v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (uint16_t)v;
    return true;
}

bool host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

bool visible_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* The wildcard IPv4 address on `port`. */
static void set_any(struct load *l, struct sockaddr_storage *ss, socklen_t *sslen, char **name,
                    uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(INADDR_ANY);
    *sslen = sizeof(*sin);
    free(*name);
    if (asprintf(name, "0.0.0.0:%u", port) == -1) {
        *name = NULL;
        l->oom = true;
    }
}

/* The wildcard IPv4 address on `port`, as `port: N` and the default mean. */
static void set_listen_any(struct load *l, struct config *cfg, uint16_t port)
{
    set_any(l, &cfg->listen_addr, &cfg->listen_addrlen, &cfg->listen_name, port);
}

/* "ADDR:PORT" | "[IPV6]:PORT" | ":PORT" into *ss and *out_name (replaced). `key` names it in
 * messages, `form` (one %s: the value) is the message for a malformed value. Returns true when
 * it is valid. */
bool parse_addr(struct load *l, const struct node *v, const char *key, const char *form,
                       struct sockaddr_storage *ss, socklen_t *sslen, char **out_name)
{
    struct qbuf q;
    if (!is_string(v) || !visible_ascii(v->str, v->len)) {
        error_at(l, v, form, describe(&q, v));
        return false;
    }
    const char *s = v->str, *colon = strrchr(s, ':');
    char host[256];
    size_t hlen;
    bool v6 = false;
    if (!colon) {
        error_at(l, v, form, describe(&q, v));
        return false;
    }
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb + 1 != colon) {
            error_at(l, v, form, describe(&q, v));
            return false;
        }
        hlen = (size_t)(rb - s - 1);
        memcpy(host, s + 1, MIN(hlen, sizeof(host) - 1));
        v6 = true;
    } else {
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen)) {
            error_at(l, v, "%s: IPv6 addresses must be in brackets, e.g. \"[::1]:8080\"", key);
            return false;
        }
        memcpy(host, s, MIN(hlen, sizeof(host) - 1));
    }
    if (hlen >= sizeof(host) || (v6 && hlen == 0)) {
        error_at(l, v, form, describe(&q, v));
        return false;
    }
    host[hlen] = '\0';
    uint16_t port;
    const char *p = colon + 1;
    if (!parse_port(p, strlen(p), 0, 65535, &port)) {
        error_at(l, v, "%s port must be between 0 and 65535, got %s", key,
                 quote(&q, p, strlen(p)));
        return false;
    }
    if (hlen == 0) { /* ":PORT" */
        set_any(l, ss, sslen, out_name, port);
        return true;
    }
    int rc = resolve(host, port, v6, ss, sslen);
    if (rc == 0 && v6 && ss->ss_family != AF_INET6)
        rc = EAI_NONAME;
    if (rc != 0) {
        error_at(l, v, "cannot resolve %s address %s: %s", key, quote(&q, host, hlen),
                 resolve_error(rc));
        return false;
    }
    char *name;
    if (asprintf(&name, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port) == -1) {
        l->oom = true;
        return false;
    }
    free(*out_name);
    *out_name = name;
    return true;
}

int parse_listen_addr(struct load *l, const char *key, const struct node *v,
                      struct sockaddr_storage *addr, socklen_t *addrlen, char **name)
{
    char form[128];
    snprintf(form, sizeof(form), "%s must be \"ADDR:PORT\", \"[IPv6]:PORT\" or \":PORT\", got %%s",
             key);
    return parse_addr(l, v, key, form, addr, addrlen, name) ? 0 : -1;
}

/* listen: an address, or "off" (HTTPS only: no plain listener; tls.listen is then required). */
static void set_listen(struct load *l, struct config *cfg, const struct node *v)
{
    if (is_string(v) && strcmp(v->str, "off") == 0) {
        cfg->plain_off = true;
        l->listen_ok = true;
        return;
    }
    if (parse_listen_addr(l, "listen", v, &cfg->listen_addr, &cfg->listen_addrlen,
                          &cfg->listen_name) == 0)
        l->listen_ok = true;
}

const char *load_file_name(const struct load *l)
{
    return l->name;
}

void load_oom(struct load *l)
{
    l->oom = true;
}

/* ---------------------------------------------------------------------------------------------
 * The walk
 */

static void set_defaults(struct config *cfg)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (keys[i].off != NO_FIELD && keys[i].type != KT_PATH)
            store(cfg, &keys[i], keys[i].def);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus < 1 ? 1 : cpus > 1024 ? 1024 : (int)cpus;
}

/* One top-level pair whose key is the row `k`. */
static void set_key(struct load *l, struct config *cfg, const struct key *k, const struct node *v)
{
    uint32_t x;
    if (v->kind == NODE_BAD)
        return;
    switch (k->type) {
    case KT_PORT:
        if (get_int(l, k, v, &x) == 0)
            l->port = (int)x;
        break;
    case KT_LISTEN:
        set_listen(l, cfg, v);
        break;
    case KT_INT:
    case KT_UINT:
        if (get_int(l, k, v, &x) == 0)
            store(cfg, k, x);
        break;
    case KT_DURATION:
        if (get_duration(l, k, v, &x) == 0)
            store(cfg, k, x);
        break;
    case KT_BACKENDS:
        set_backends(l, cfg, v);
        break;
    case KT_TLS:
        config_tls_section(l, cfg, v);
        break;
    case KT_BALANCE:
        set_balance(l, cfg, v);
        break;
    case KT_HASHKEY:
        set_hash_key(l, cfg, v);
        break;
    case KT_FACTOR:
        set_factor(l, cfg, k, v);
        break;
    case KT_STICKY:
        set_sticky(l, cfg, v);
        break;
    case KT_ADMIN:
        set_admin(l, cfg, v);
        break;
    case KT_ACCESS_LOG: {
        static const char *const c[] = {"off", "text", "json", NULL};
        int i = get_choice(l, k, v, c, "off, text, json");
        if (i >= 0)
            cfg->access_log = i;
        break;
    }
    case KT_LOG_FORMAT: {
        static const char *const c[] = {"text", "json", NULL};
        int i = get_choice(l, k, v, c, "text, json");
        if (i >= 0)
            cfg->log_json = i == 1;
        break;
    }
    case KT_PATH:
        set_path(l, cfg, k, v);
        break;
    case KT_UPGRADE:
        set_upgrade_protocols(l, cfg, v);
        break;
    }
}

/* Checks that span keys: listen vs port, maxRequestLine vs maxHeaderSize, timeout vs period. */
static void cross_check(struct load *l, struct config *cfg, const struct node *root)
{
    int port_i = key_index("port");
    const struct node *port_k = l->key_at[port_i];
    const struct node *listen_k = l->key_at[key_index("listen")];
    if (listen_k && port_k)
        warning_at(l, port_k, "port is ignored because listen is set (line %d)", listen_k->line);
    if (!listen_k)
        set_listen_any(l, cfg, (uint16_t)(l->port > 0 ? (uint32_t)l->port : keys[port_i].def));

    int rl = key_index("maxRequestLine");
    if (!l->val_at[rl] && cfg->max_request_line > cfg->max_header_size)
        cfg->max_request_line = cfg->max_header_size; /* default follows a smaller head limit */
    if (cfg->max_request_line > cfg->max_header_size)
        error_at(l, l->val_at[rl], "maxRequestLine (%u) must not exceed maxHeaderSize (%u)",
                 cfg->max_request_line, cfg->max_header_size);

    const struct node *t = l->val_at[key_index("healthCheckTimeout")];
    const struct node *p = l->val_at[key_index("healthCheckPeriod")];
    uint32_t tms = fetch(cfg, "healthCheckTimeout"), pms = fetch(cfg, "healthCheckPeriod");
    if ((t || p) && tms >= pms) {
        char a[24], b[24];
        warning_at(l, t ? t : p,
                   "healthCheckTimeout (%s s) is not less than healthCheckPeriod (%s s); a backend "
                   "is not checked again while its previous check is still running",
                   seconds_str(a, tms), seconds_str(b, pms));
    }

    bool hash = cfg->balance && strcmp(cfg->balance, "hash") == 0;
    const char *hash_only[] = {"hashKey", "hashLoadFactor"};
    for (size_t i = 0; i < ARRAY_LEN(hash_only); i++) {
        const struct node *hk = l->key_at[key_index(hash_only[i])];
        if (hk && !hash)
            warning_at(l, hk, "%s is ignored unless balance is hash", hash_only[i]);
    }

    if (!l->key_at[key_index("backends")])
        error_at(l, root, "missing required key \"backends\"");
    config_tls_cross_check(l, cfg, root, l->val_at[key_index("listen")]);
    config_http_defaults(l, cfg);
}

static void walk(struct load *l, struct config *cfg, const struct node *root)
{
    const char *names[ARRAY_LEN(keys)];
    struct qbuf q;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        names[i] = keys[i].name;

    if (!root || is_null(root)) {
        error_lc(l, root ? root->line : 1, root ? root->col : 1,
                 "empty configuration: \"backends\" is required");
        return;
    }
    if (root->kind == NODE_BAD)
        return;
    if (root->kind != NODE_MAPPING) {
        error_at(l, root, "top level must be a mapping of keys to values, got %s",
                 describe(&q, root));
        return;
    }
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct node *k = root->kids[i], *v = root->kids[i + 1];
        if (!key_ok(l, k))
            continue;
        int idx = k->len == strlen(k->str) ? key_index(k->str) : -1;
        if (idx == -1) {
            unknown_key(l, k, names, ARRAY_LEN(names), "");
            continue;
        }
        if (!key_first(l, k, &l->key_at[idx]))
            continue;
        l->val_at[idx] = v;
        set_key(l, cfg, &keys[idx], v);
    }
    cross_check(l, cfg, root);
}

/* ---------------------------------------------------------------------------------------------
 * API
 */

int config_load_buffer(const char *name, const char *data, size_t len, FILE *errs,
                       struct config **out)
{
    struct load l = {.name = name ? name : "<config>", .port = -1};
    bool fatal = false;
    struct config *cfg = NULL;

    *out = NULL;
    struct node *root = tree_build(&l, data ? data : "", data ? len : 0, &fatal);
    if (!fatal) {
        cfg = calloc(1, sizeof(*cfg));
        if (cfg && (cfg->path = strdup(l.name))) {
            set_defaults(cfg);
            walk(&l, cfg, root);
        } else {
            l.oom = true;
        }
    }
    node_free(root);
    if (diag_flush(&l, errs) == -1) {
        config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

int config_load(const char *path, FILE *errs, struct config **out)
{
    size_t len = 0, cap = 64 * 1024;
    char *buf = NULL;
    int err = 0;

    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        err = errno;
    } else {
        for (;;) {
            if (len == cap || !buf) {
                if (buf)
                    cap *= 2;
                char *nb = len > FILE_MAX ? NULL : realloc(buf, MIN(cap, (size_t)FILE_MAX + 1));
                if (!nb) {
                    err = len > FILE_MAX ? EFBIG : ENOMEM;
                    break;
                }
                buf = nb;
                cap = MIN(cap, (size_t)FILE_MAX + 1);
            }
            ssize_t n = read(fd, buf + len, cap - len);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1) {
                err = errno;
                break;
            }
            if (n == 0)
                break;
            len += (size_t)n;
            if (len > FILE_MAX) {
                err = EFBIG;
                break;
            }
        }
        close(fd);
    }
    if (err) {
        if (errs) {
            if (err == EFBIG)
                fprintf(errs, "%s:1:1: file is larger than 1 MiB\n", path);
            else
                fprintf(errs, "%s:1:1: cannot read: %s\n", path, strerror(err));
            fflush(errs);
        }
        free(buf);
        return -1;
    }
    int rc = config_load_buffer(path, buf, len, errs, out);
    free(buf);
    return rc;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < cfg->nbackends; i++)
        config_backend_clear(&cfg->backends[i]);
    free(cfg->backends);
    config_tls_free(cfg);
    free(cfg->balance);
    free(cfg->hash_key_name);
    free(cfg->sticky.cookie);
    free(cfg->sticky.same_site);
    free(cfg->listen_name);
    free(cfg->admin_listen);
    free(cfg->admin_token);
    free(cfg->access_log_path);
    config_http_free(cfg);
    free(cfg->path);
    free(cfg);
}
