/* config_yaml — the machinery under every section parser of the configuration (see config_yaml.h).
 *
 *   bytes ──libyaml events──▶ node tree (scalar | sequence | mapping, 1-based line:col on each)
 *   node ──typed getters (INT, SECONDS, BOOL, choice, address) against a row──▶ value, or a
 *   diagnostic {line, col, text} kept in the load ──config_yaml_flush──▶ `NAME:LINE:COL: text`
 *
 * The sections (config.c's top level, config_backend.c, config_tls.c, config_lb.c, config_obs.c)
 * call into this file and never the other way: it knows no key but the ones a caller passes in.
 * The messages it writes are listed in config.c's header comment with all the others.
 */
#include "config/config_yaml.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "base/util.h"

#define MAX_DEPTH 64  /* nesting limit: keeps the recursive walk and free shallow */
#define DIAG_MAX 1000 /* diagnostics kept; beyond, only counted (a summary line says so) */

/* ---------------------------------------------------------------------------------------------
 * Node tree
 */

void config_yaml_tree_free(struct config_yaml_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        config_yaml_tree_free(n->kids[i]);
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

bool config_yaml_is_scalar(const struct config_yaml_node *n)
{
    return n->kind == CONFIG_YAML_SCALAR;
}

/* YAML 1.1 null: an empty or ~/null plain scalar. */
bool config_yaml_is_null(const struct config_yaml_node *n)
{
    if (n->kind != CONFIG_YAML_SCALAR || n->quoted)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

/* A scalar usable as a C string: not null, no embedded NUL. */
bool config_yaml_is_string(const struct config_yaml_node *n)
{
    return config_yaml_is_scalar(n) && !config_yaml_is_null(n) && strlen(n->str) == n->len;
}

bool config_yaml_key_is(const struct config_yaml_node *k, const char *name)
{
    return config_yaml_is_scalar(k) && k->len == strlen(name) && memcmp(k->str, name, k->len) == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Diagnostics
 */

struct config_yaml_diag {
    int line, col;
    unsigned seq; /* keeps discovery order among diagnostics at the same position */
    bool warning;
    char *text;
};

static void vdiag(struct config_yaml_load *l, bool warning, int line, int col, const char *fmt,
                  va_list ap)
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
        struct config_yaml_diag *d = realloc(l->diags, cap * sizeof(*d));
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
    l->diags[l->ndiags] = (struct config_yaml_diag){line, col, (unsigned)l->ndiags, warning, text};
    l->ndiags++;
}

void config_yaml_error_lc(struct config_yaml_load *l, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(l, false, line, col, fmt, ap);
    va_end(ap);
}

void config_yaml_error(struct config_yaml_load *l, const struct config_yaml_node *n,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(l, false, n->line, n->col, fmt, ap);
    va_end(ap);
}

void config_yaml_warning(struct config_yaml_load *l, const struct config_yaml_node *n,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(l, true, n->line, n->col, fmt, ap);
    va_end(ap);
}

static int diag_cmp(const void *a, const void *b)
{
    const struct config_yaml_diag *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes every diagnostic sorted by position, frees them; returns -1 if any was an error. */
int config_yaml_flush(struct config_yaml_load *l, FILE *errs)
{
    if (l->oom) {
        l->nerrors++;
        if (errs)
            fprintf(errs, "%s:1:1: out of memory\n", l->name);
    }
    if (l->ndiags)
        qsort(l->diags, l->ndiags, sizeof(*l->diags), diag_cmp);
    for (size_t i = 0; i < l->ndiags; i++) {
        struct config_yaml_diag *d = &l->diags[i];
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

const char *config_yaml_file_name(const struct config_yaml_load *l)
{
    return l->name;
}

char *config_yaml_resolve_path(const struct config_yaml_load *l, const char *path)
{
    const char *file = l->base ? l->base : l->name, *slash = strrchr(file, '/');
    char *out;
    if (path[0] == '/' || !slash)
        return strdup(path);
    if (asprintf(&out, "%.*s/%s", (int)(slash - file), file, path) == -1)
        return NULL;
    return out;
}

void config_yaml_oom(struct config_yaml_load *l)
{
    l->oom = true;
}

/* ---------------------------------------------------------------------------------------------
 * Values in messages
 */

const char *config_yaml_quote_with(struct config_yaml_qbuf *q, const char *prefix, const char *s,
                                   size_t len)
{
    size_t o = (size_t)snprintf(q->s, 32, "%s", prefix);
    size_t shown = 0;
    q->s[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool continuation = (ch & 0xC0) == 0x80;
        if ((shown == CONFIG_YAML_QUOTE_MAX && !continuation) || o + 8 >= sizeof(q->s)) {
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

const char *config_yaml_quote(struct config_yaml_qbuf *q, const char *s, size_t len)
{
    return config_yaml_quote_with(q, "", s, len);
}

/* A scalar already known to hold only digits, '-' and '.': shown as is, cut after
 * CONFIG_YAML_QUOTE_MAX. */
const char *config_yaml_number(struct config_yaml_qbuf *q, const struct config_yaml_node *n)
{
    size_t len = MIN(n->len, (size_t)CONFIG_YAML_QUOTE_MAX);
    memcpy(q->s, n->str, len);
    strcpy(q->s + len, n->len > len ? "..." : "");
    return q->s;
}

/* What a node is, for "got ..." in messages. */
const char *config_yaml_describe(struct config_yaml_qbuf *q, const struct config_yaml_node *n)
{
    switch (n->kind) {
    case CONFIG_YAML_SEQUENCE:
        return "a sequence";
    case CONFIG_YAML_MAPPING:
        return "a mapping";
    case CONFIG_YAML_BAD:
        return "an alias";
    case CONFIG_YAML_SCALAR:
        break;
    }
    if (config_yaml_is_null(n))
        return "null";
    return config_yaml_quote_with(q, n->quoted ? "the quoted string " : "", n->str, n->len);
}

/* ---------------------------------------------------------------------------------------------
 * libyaml events → node tree
 */

static struct config_yaml_node *node_new(struct config_yaml_load *l, enum config_yaml_kind kind,
                                         const yaml_mark_t *m)
{
    struct config_yaml_node *n = calloc(1, sizeof(*n));
    if (!n) {
        l->oom = true;
        return NULL;
    }
    n->kind = kind;
    n->line = mark_num(m->line);
    n->col = mark_num(m->column);
    return n;
}

static int node_add(struct config_yaml_load *l, struct config_yaml_node *parent,
                    struct config_yaml_node *kid)
{
    if (parent->nkids == parent->cap) {
        size_t cap = parent->cap ? 2 * parent->cap : 8;
        struct config_yaml_node **k = realloc(parent->kids, cap * sizeof(*k));
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
static void check_props(struct config_yaml_load *l, const yaml_event_t *ev,
                        const yaml_char_t *anchor, const yaml_char_t *tag)
{
    int line = mark_num(ev->start_mark.line), col = mark_num(ev->start_mark.column);
    struct config_yaml_qbuf q;
    if (anchor) /* libyaml limits anchor names to [0-9A-Za-z_-]: safe to print as they are */
        config_yaml_error_lc(l, line, col, "anchors are not supported (&%s)", (const char *)anchor);
    if (tag) {
        const char *t = (const char *)tag;
        config_yaml_error_lc(l, line, col, "tags are not supported (%s)",
                             config_yaml_quote(&q, t, strlen(t)));
    }
}

/* Line `line` (0-based) of data as [*start, return); NULL when there is no such line or the data is
 * UTF-16 (lines are then not split on the byte '\n'). */
static const char *find_line(const char *data, size_t len, size_t line, const char **start)
{
    if (len >= 2 && ((unsigned char)data[0] == 0xFF || (unsigned char)data[0] == 0xFE))
        return NULL;
    const char *p = data, *end = data + len;
    for (; line > 0; line--) {
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p)
            return NULL;
        p++;
    }
    const char *e = memchr(p, '\n', (size_t)(end - p));
    *start = p;
    return e ? e : end;
}

/* A bracketed IPv6 address ("[::1]", "[2001:db8::5]") written unquoted in the line [s, e): YAML
 * reads its "[" as the start of a list. Returns where the "[" is, or NULL. */
static const char *unquoted_ipv6(const char *s, const char *e)
{
    for (const char *b = s; (b = memchr(b, '[', (size_t)(e - b))); b++) {
        const char *c = b + 1;
        int colons = 0;
        while (c < e && (strchr("0123456789abcdefABCDEF.%", *c) || *c == ':'))
            colons += *c++ == ':';
        if (c < e && *c == ']' && colons >= 2)
            return b;
    }
    return NULL;
}

/* A hint after libyaml's words, for the two mistakes it words worst: a tab in indentation, and an
 * IPv6 address written unquoted ("listen: [::1]:8080" starts a list). Written into buf (empty:
 * no hint). */
static void yaml_hint(const yaml_parser_t *p, const char *data, size_t len, char *buf, size_t cap)
{
    const char *s, *e;
    buf[0] = '\0';
    for (int i = 0; i < 2; i++) { /* the problem's line, then the context's */
        const yaml_mark_t *m = i == 0 ? &p->problem_mark : &p->context_mark;
        if ((i == 1 && !p->context) || !(e = find_line(data, len, m->line, &s)))
            continue;
        const char *t = s;
        while (t < e && (*t == ' ' || *t == '\t' || *t == '-'))
            t++;
        if (memchr(s, '\t', (size_t)(t - s)) || (p->problem && strstr(p->problem, "tab"))) {
            snprintf(buf, cap, "; YAML forbids tabs for indentation: indent with spaces");
            return;
        }
        const char *b = unquoted_ipv6(s, e);
        if (!b)
            continue;
        /* "KEY: [ADDR]:PORT" is shown quoted as it should be written; anything else gets the
         * example. */
        const char *ve = b, *colon = b - t >= 3 ? b - 2 : t, *ks = colon;
        while (ve < e && *ve != ' ' && *ve != '\t' && *ve != '"' && *ve != '\\' && *ve != '#')
            ve++;
        while (ks > t && config_yaml_host_char(ks[-1]))
            ks--;
        if (b - t >= 3 && b[-1] == ' ' && *colon == ':' && ks == t && ks < colon &&
            colon - ks <= 32 && ve - b <= 64) {
            snprintf(buf, cap, "; quote IPv6 addresses: %.*s: \"%.*s\"", (int)(colon - ks), ks,
                     (int)(ve - b), b);
            return;
        }
        snprintf(buf, cap, "; quote IPv6 addresses, e.g. listen: \"[::1]:8080\"");
        return;
    }
}

/* Turns libyaml's error into one diagnostic. Reader errors carry a byte offset, not a mark. */
static void yaml_problem(struct config_yaml_load *l, const yaml_parser_t *p, const char *data,
                         size_t len)
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
            config_yaml_error_lc(l, line, col, "invalid YAML: %s (byte 0x%02X)", problem,
                                 (unsigned)p->problem_value & 0xFFu);
        else
            config_yaml_error_lc(l, line, col, "invalid YAML: %s", problem);
        return;
    }
    int line = mark_num(p->problem_mark.line), col = mark_num(p->problem_mark.column);
    char hint[160];
    yaml_hint(p, data, len, hint, sizeof(hint));
    if (p->context)
        config_yaml_error_lc(l, line, col, "invalid YAML: %s (%s at line %zu column %zu)%s",
                             problem, p->context, p->context_mark.line + 1,
                             p->context_mark.column + 1, hint);
    else
        config_yaml_error_lc(l, line, col, "invalid YAML: %s%s", problem, hint);
}

/* Parses the first document into a tree. *fatal is set when the tree cannot be trusted (syntax
 * error, too deep, out of memory); a second document is reported but the first is still walked. */
struct config_yaml_node *config_yaml_tree_build(struct config_yaml_load *l, const char *data,
                                                size_t len, bool *fatal)
{
    yaml_parser_t p;
    struct config_yaml_node *stack[MAX_DEPTH];
    struct config_yaml_node *root = NULL;
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
        struct config_yaml_node *n = NULL;
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
                config_yaml_error_lc(l, mark_num(ev.start_mark.line),
                                     mark_num(ev.start_mark.column),
                                     "only one YAML document is allowed");
                done = true;
            }
            break;
        case YAML_ALIAS_EVENT:
            config_yaml_error_lc(l, mark_num(ev.start_mark.line), mark_num(ev.start_mark.column),
                                 "aliases are not supported (*%s)",
                                 (const char *)ev.data.alias.anchor);
            n = node_new(l, CONFIG_YAML_BAD, &ev.start_mark);
            break;
        case YAML_SCALAR_EVENT:
            check_props(l, &ev, ev.data.scalar.anchor, ev.data.scalar.tag);
            n = node_new(l, CONFIG_YAML_SCALAR, &ev.start_mark);
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
            n = node_new(l, CONFIG_YAML_SEQUENCE, &ev.start_mark);
            break;
        case YAML_MAPPING_START_EVENT:
            check_props(l, &ev, ev.data.mapping_start.anchor, ev.data.mapping_start.tag);
            n = node_new(l, CONFIG_YAML_MAPPING, &ev.start_mark);
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
                config_yaml_tree_free(
                    n); /* out of memory (a second root cannot happen in one document) */
                n = NULL;
            }
        }
        if (n && (n->kind == CONFIG_YAML_SEQUENCE || n->kind == CONFIG_YAML_MAPPING)) {
            if (depth == MAX_DEPTH) {
                config_yaml_error(l, n, "nesting deeper than %d levels", MAX_DEPTH);
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
 * Keys and rows
 */

void config_yaml_store(void *base, const struct config_yaml_key *k, uint32_t v)
{
    if (k->type == CONFIG_YAML_KT_BOOL)
        *(bool *)(void *)((char *)base + k->off) = v != 0;
    else if (k->type == CONFIG_YAML_KT_INT)
        *(int *)(void *)((char *)base + k->off) = (int)v;
    else
        *(uint32_t *)(void *)((char *)base + k->off) = v;
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
static const char *suggest(const struct config_yaml_node *k, const char *const *names, size_t n)
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
void config_yaml_unknown_key(struct config_yaml_load *l, const struct config_yaml_node *k,
                             const char *const *names, size_t n, const char *where)
{
    struct config_yaml_qbuf q;
    const char *s = l->ndiags < DIAG_MAX ? suggest(k, names, n) : NULL;
    if (s)
        config_yaml_error(l, k, "unknown key %s%s (did you mean \"%s\"?)",
                          config_yaml_quote(&q, k->str, k->len), where, s);
    else
        config_yaml_error(l, k, "unknown key %s%s", config_yaml_quote(&q, k->str, k->len), where);
}

/* Checks that `k` can be a key (a string). Returns false, after reporting, when the pair must be
 * skipped. Duplicates are found through the slot each known key fills: an unknown key is an error
 * anyway, and this keeps a file of many keys linear. */
bool config_yaml_key_ok(struct config_yaml_load *l, const struct config_yaml_node *k)
{
    struct config_yaml_qbuf q;
    if (k->kind == CONFIG_YAML_BAD)
        return false;
    if (!config_yaml_is_scalar(k) || config_yaml_is_null(k)) {
        config_yaml_error(l, k, "keys must be strings, got %s", config_yaml_describe(&q, k));
        return false;
    }
    return true;
}

/* Fills *slot with `k` unless an earlier key took it; reports the duplicate. */
bool config_yaml_key_first(struct config_yaml_load *l, const struct config_yaml_node *k,
                           const struct config_yaml_node **slot)
{
    struct config_yaml_qbuf q;
    if (*slot) {
        config_yaml_error(l, k, "duplicate key %s (first defined at line %d)",
                          config_yaml_quote(&q, k->str, k->len), (*slot)->line);
        return false;
    }
    *slot = k;
    return true;
}

/* The walk every mapping of known keys makes: key_ok, the key's index in names, key_first. */
int config_yaml_key_index(struct config_yaml_load *l, const struct config_yaml_node *k,
                          const char *const *names, size_t n, const struct config_yaml_node **seen,
                          const char *where)
{
    if (!config_yaml_key_ok(l, k))
        return -1;
    size_t j = 0;
    while (j < n && !config_yaml_key_is(k, names[j]))
        j++;
    if (j == n) {
        config_yaml_unknown_key(l, k, names, n, where);
        return -1;
    }
    if (!config_yaml_key_first(l, k, &seen[j]))
        return -1;
    return (int)j;
}

/* ---------------------------------------------------------------------------------------------
 * Scalars: integers, seconds, booleans, choices, names
 */

/* Plain ["-"]DIGITS without a leading zero; saturates far beyond every bound. 0 or -1. */
int config_yaml_parse_int(const struct config_yaml_node *n, int64_t *out)
{
    if (!config_yaml_is_scalar(n) || n->quoted || n->len == 0)
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
 * first three fraction digits are ms, the fourth rounds half up. 0 is OK when zero_ok; above max_ms
 * (before rounding) is TOO_LONG. */
static enum config_yaml_seconds parse_seconds(const struct config_yaml_node *n, bool zero_ok,
                                              uint64_t max_ms, uint64_t *ms)
{
    if (!config_yaml_is_scalar(n) || n->quoted || n->len == 0)
        return CONFIG_YAML_SEC_SYNTAX;
    const char *s = n->str, *end = n->str + n->len;
    bool neg = *s == '-', nonzero = false, rest_nonzero = false;
    uint64_t secs = 0, frac = 0;
    int ndigits = 0, nfrac = 0, round_digit = 0;
    if (neg)
        s++;
    for (; s < end && *s >= '0' && *s <= '9'; s++, ndigits++) {
        if (secs <= max_ms) /* saturates above every bound, never overflows */
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
            rest_nonzero |= nfrac >= 3 && *s != '0';
        }
    }
    if (s != end || ndigits == 0)
        return CONFIG_YAML_SEC_SYNTAX;
    if (neg && nonzero)
        return CONFIG_YAML_SEC_NOT_POSITIVE;
    if (!nonzero) {
        if (!zero_ok)
            return CONFIG_YAML_SEC_NOT_POSITIVE;
        *ms = 0;
        return CONFIG_YAML_SEC_OK;
    }
    for (; nfrac < 3; nfrac++)
        frac *= 10;
    if (secs > max_ms / 1000 + 1)
        return CONFIG_YAML_SEC_TOO_LONG;
    uint64_t exact = secs * 1000 + frac;
    if (exact > max_ms || (exact == max_ms && rest_nonzero))
        return CONFIG_YAML_SEC_TOO_LONG;
    uint64_t v = exact + (round_digit >= 5);
    if (v == 0)
        return CONFIG_YAML_SEC_TOO_SHORT;
    *ms = v;
    return CONFIG_YAML_SEC_OK;
}

enum config_yaml_seconds config_yaml_parse_seconds(const struct config_yaml_node *n, uint32_t *ms)
{
    uint64_t v;
    enum config_yaml_seconds r = parse_seconds(n, false, CONFIG_YAML_DAY_MS, &v);
    if (r == CONFIG_YAML_SEC_OK)
        *ms = (uint32_t)v;
    return r;
}

/* An INT row: type and bounds checked, value returned in *v. 0 or -1 after reporting. */
int config_yaml_get_int(struct config_yaml_load *l, const struct config_yaml_key *k,
                        const struct config_yaml_node *v, uint32_t *out)
{
    struct config_yaml_qbuf q;
    int64_t x;
    if (config_yaml_parse_int(v, &x) == -1) {
        config_yaml_error(l, v, "%s must be a decimal integer, got %s", k->name,
                          config_yaml_describe(&q, v));
        return -1;
    }
    if (x < (int64_t)k->min || x > (int64_t)k->max) {
        config_yaml_error(l, v, "%s must be between %u and %u, got %s", k->name, k->min, k->max,
                          config_yaml_number(&q, v));
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

/* "3600", "0.5": whole milliseconds as seconds, for messages. */
static const char *ms_as_seconds(char buf[32], uint64_t ms)
{
    int n = snprintf(buf, 32, "%llu.%03u", (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
    while (buf[n - 1] == '0')
        buf[--n] = '\0';
    if (buf[n - 1] == '.')
        buf[--n] = '\0';
    return buf;
}

int config_yaml_get_seconds(struct config_yaml_load *l, const char *name,
                            const struct config_yaml_node *v, uint64_t min_ms, uint64_t max_ms,
                            uint64_t *out)
{
    struct config_yaml_qbuf q;
    char most[32];
    ms_as_seconds(most, max_ms);
    enum config_yaml_seconds r = parse_seconds(v, min_ms == 0, max_ms, out);
    if (r == CONFIG_YAML_SEC_OK && *out >= min_ms)
        return 0;
    if (r == CONFIG_YAML_SEC_SYNTAX)
        config_yaml_error(l, v, "%s must be a number of seconds (e.g. 3 or 0.5), got %s", name,
                          config_yaml_describe(&q, v));
    else if (min_ms == 0 && r != CONFIG_YAML_SEC_TOO_SHORT) /* 0 means off: one range */
        config_yaml_error(l, v, "%s must be between 0 and %s seconds, got %s", name, most,
                          config_yaml_number(&q, v));
    else if (r == CONFIG_YAML_SEC_NOT_POSITIVE)
        config_yaml_error(l, v, "%s must be greater than 0, got %s", name,
                          config_yaml_number(&q, v));
    else if (r == CONFIG_YAML_SEC_TOO_LONG)
        config_yaml_error(l, v, "%s must be at most %s seconds%s, got %s", name, most,
                          max_ms == CONFIG_YAML_DAY_MS ? " (1 day)" : "",
                          config_yaml_number(&q, v));
    else
        config_yaml_error(l, v, "%s must be at least 0.001 seconds (1 ms), got %s", name,
                          config_yaml_number(&q, v));
    return -1;
}

int config_yaml_get_duration(struct config_yaml_load *l, const struct config_yaml_key *k,
                             const struct config_yaml_node *v, uint32_t *out)
{
    uint64_t ms;
    if (config_yaml_get_seconds(l, k->name, v, k->min, k->max, &ms) != 0)
        return -1;
    *out = (uint32_t)ms;
    return 0;
}

int config_yaml_get_bool(struct config_yaml_load *l, const char *name,
                         const struct config_yaml_node *v, bool *out)
{
    struct config_yaml_qbuf q;
    if (config_yaml_is_scalar(v) && !v->quoted &&
        (strcmp(v->str, "true") == 0 || strcmp(v->str, "false") == 0)) {
        *out = v->str[0] == 't';
        return 0;
    }
    config_yaml_error(l, v, "%s must be true or false, got %s", name, config_yaml_describe(&q, v));
    return -1;
}

/* One of `choices` (NULL-terminated); returns its index or -1 after reporting. */
int config_yaml_get_choice(struct config_yaml_load *l, const struct config_yaml_key *k,
                           const struct config_yaml_node *v, const char *const *choices,
                           const char *list)
{
    struct config_yaml_qbuf q;
    if (config_yaml_is_string(v))
        for (int i = 0; choices[i]; i++)
            if (strcmp(v->str, choices[i]) == 0)
                return i;
    config_yaml_error(l, v, "%s must be one of %s, got %s", k->name, list,
                      config_yaml_describe(&q, v));
    return -1;
}

/* RFC 9110 tchar: header and cookie names. */
bool config_yaml_http_token(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] > 0x20 && s[i] < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", s[i])))
            return false;
    return true;
}

bool config_yaml_visible_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Secret files
 */

char *config_yaml_read_secret_file(struct config_yaml_load *l, const char *key,
                                   const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    bool ok = config_yaml_is_string(v) && v->len > 0;
    for (size_t i = 0; ok && i < v->len; i++)
        ok = (unsigned char)v->str[i] >= 0x20 && v->str[i] != 0x7f;
    if (!ok) {
        config_yaml_error(l, v, "%s must be a path, got %s", key, config_yaml_describe(&q, v));
        return NULL;
    }
    char *path = config_yaml_resolve_path(l, v->str);
    if (!path) {
        config_yaml_oom(l);
        return NULL;
    }
    char *tok = NULL;
    const char *why = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* a FIFO must not block */
    struct stat st;
    if (fd == -1 || fstat(fd, &st) == -1) {
        config_yaml_error(l, v, "%s: cannot read \"%s\": %s", key, path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        why = "it is not a regular file";
    } else if (!(tok = malloc(CONFIG_YAML_SECRET_FILE_MAX + 2))) {
        config_yaml_oom(l);
    } else {
        size_t len = 0;
        for (;;) {
            ssize_t n = read(fd, tok + len, CONFIG_YAML_SECRET_FILE_MAX + 1 - len);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1)
                why = strerror(errno);
            if (n <= 0)
                break;
            len += (size_t)n;
            if (len > CONFIG_YAML_SECRET_FILE_MAX)
                break;
        }
        bool too_big = len > CONFIG_YAML_SECRET_FILE_MAX;
        while (len > 0 && tok[len - 1] && strchr(" \t\r\n", tok[len - 1]))
            len--;
        tok[len] = '\0'; /* len ≤ CONFIG_YAML_SECRET_FILE_MAX + 1 */
        if (why) {
            /* a read error: reported below */
        } else if (too_big) {
            why = "it is larger than 4096 bytes";
        } else if (len == 0) {
            why = "it is empty";
        } else if (strlen(tok) != len || !config_yaml_visible_ascii(tok, len)) {
            why = "it must hold one token of visible ASCII characters";
        } else if (st.st_mode & S_IROTH) {
            config_yaml_warning(l, v, "%s: \"%s\" is readable by every user (chmod o-r)", key,
                                path);
        }
    }
    if (why) {
        config_yaml_error(l, v, "%s: cannot use \"%s\": %s", key, path, why);
        if (tok)
            explicit_bzero(tok, CONFIG_YAML_SECRET_FILE_MAX + 2);
        free(tok);
        tok = NULL;
    }
    if (fd != -1)
        close(fd);
    free(path);
    return tok;
}

/* ---------------------------------------------------------------------------------------------
 * Addresses
 */

static bool numeric_only;

void config_yaml_set_numeric_only(bool on)
{
    numeric_only = on;
}

#define RESOLVE_DISABLED 1 /* not an EAI_* code (those are negative on glibc) */

/* host:port → the first address getaddrinfo returns (numeric first, then by name unless
 * `numeric`, as for a bracketed IPv6 literal). Returns 0, an EAI_* code, or RESOLVE_DISABLED. */
int config_yaml_resolve(const char *host, uint16_t port, bool numeric, struct sockaddr_storage *ss,
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

const char *config_yaml_resolve_error(int rc)
{
    if (rc == RESOLVE_DISABLED)
        return "name resolution is disabled (numeric addresses and \"localhost\" only)";
    if (rc == EAI_SYSTEM)
        return strerror(errno);
    return gai_strerror(rc);
}

bool config_yaml_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
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
bool config_yaml_parse_port(const char *s, size_t len, uint32_t lo, uint32_t hi, uint16_t *out)
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

bool config_yaml_host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

/* The wildcard IPv4 address on `port`. */
void config_yaml_any_addr(struct config_yaml_load *l, struct sockaddr_storage *ss, socklen_t *sslen,
                          char **name, uint16_t port)
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

/* "ADDR:PORT" | "[IPV6]:PORT" | ":PORT" into *ss and *out_name (replaced). `key` names it in
 * messages, `form` (one %s: the value) is the message for a malformed value. Returns true when
 * it is valid. */
bool config_yaml_parse_addr(struct config_yaml_load *l, const struct config_yaml_node *v,
                            const char *key, const char *form, struct sockaddr_storage *ss,
                            socklen_t *sslen, char **out_name)
{
    struct config_yaml_qbuf q;
    if (!config_yaml_is_string(v) || !config_yaml_visible_ascii(v->str, v->len)) {
        config_yaml_error(l, v, form, config_yaml_describe(&q, v));
        return false;
    }
    const char *s = v->str, *colon = strrchr(s, ':');
    char host[256];
    size_t hlen;
    bool v6 = false;
    if (!colon) {
        config_yaml_error(l, v, form, config_yaml_describe(&q, v));
        return false;
    }
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb + 1 != colon) {
            config_yaml_error(l, v, form, config_yaml_describe(&q, v));
            return false;
        }
        hlen = (size_t)(rb - s - 1);
        memcpy(host, s + 1, MIN(hlen, sizeof(host) - 1));
        v6 = true;
    } else {
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen)) {
            config_yaml_error(l, v, "%s: IPv6 addresses must be in brackets, e.g. \"[::1]:8080\"",
                              key);
            return false;
        }
        memcpy(host, s, MIN(hlen, sizeof(host) - 1));
    }
    if (hlen >= sizeof(host) || (v6 && hlen == 0)) {
        config_yaml_error(l, v, form, config_yaml_describe(&q, v));
        return false;
    }
    host[hlen] = '\0';
    uint16_t port;
    const char *p = colon + 1;
    if (!config_yaml_parse_port(p, strlen(p), 0, 65535, &port)) {
        config_yaml_error(l, v, "%s port must be between 0 and 65535, got %s", key,
                          config_yaml_quote(&q, p, strlen(p)));
        return false;
    }
    if (hlen == 0) { /* ":PORT" */
        config_yaml_any_addr(l, ss, sslen, out_name, port);
        return true;
    }
    int rc = config_yaml_resolve(host, port, v6, ss, sslen);
    if (rc == 0 && v6 && ss->ss_family != AF_INET6)
        rc = EAI_NONAME;
    if (rc != 0) {
        config_yaml_error(l, v, "cannot resolve %s address %s: %s", key,
                          config_yaml_quote(&q, host, hlen), config_yaml_resolve_error(rc));
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

int config_yaml_listen_addr(struct config_yaml_load *l, const char *key,
                            const struct config_yaml_node *v, struct sockaddr_storage *addr,
                            socklen_t *addrlen, char **name)
{
    char form[128];
    snprintf(form, sizeof(form), "%s must be \"ADDR:PORT\", \"[IPv6]:PORT\" or \":PORT\", got %%s",
             key);
    return config_yaml_parse_addr(l, v, key, form, addr, addrlen, name) ? 0 : -1;
}
