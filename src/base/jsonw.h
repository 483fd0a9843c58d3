/* jsonw — a tiny append-only JSON and text writer over a caller's fixed buffer.
 *
 * Used where a line must be built fast and never allocate (access log lines on a worker, event
 * lines) and where the admin API writes its answers. Every string value goes through
 * jsonw_str(): quotes, backslashes and every control byte are escaped, and bytes that are not
 * valid UTF-8 become U+FFFD, so nothing a client sends can end a line early, forge a field or make
 * the JSON invalid. A write that does not fit marks the writer truncated and stops writing; the
 * caller decides what to do with a truncated line (the access log cuts long values before that).
 */
#ifndef GOLB_JSONW_H
#define GOLB_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jsonw {
    char *p;
    size_t len, cap;
    bool overflow;
};

static inline void jsonw_init(struct jsonw *j, char *buf, size_t cap)
{
    j->p = buf;
    j->len = 0;
    j->cap = cap;
    j->overflow = false;
}

/* Raw bytes, as they are. Inline: with a literal's length known at compile time the copy becomes
 * a few moves (an access-log line is some sixty of these). */
static inline void jsonw_raw(struct jsonw *j, const char *s, size_t n)
{
    if (__builtin_expect(j->overflow || j->len + n > j->cap, 0)) {
        j->overflow = true;
        return;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
}
/* A string literal, raw. */
#define JSONW_LIT(j, lit) jsonw_raw((j), (lit), sizeof(lit) - 1)
static inline void jsonw_cstr(struct jsonw *j, const char *s) /* raw NUL-terminated */
{
    jsonw_raw(j, s, strlen(s));
}
/* A JSON string literal with its quotes: "..." escaped as described above. At most max_bytes of
 * input are taken (0 = all); a value cut short ends in "..." inside the quotes. */
void jsonw_str(struct jsonw *j, const char *s, size_t n, size_t max_bytes);
/* The same escaping without the quotes, for text log values ("\x1b", "\"", "\\"). In text mode
 * non-ASCII bytes are shown as \xHH. */
void jsonw_text(struct jsonw *j, const char *s, size_t n, size_t max_bytes);
void jsonw_u64(struct jsonw *j, uint64_t v);
void jsonw_i64(struct jsonw *j, int64_t v);
/* Microseconds as seconds with 6 decimals ("0.001250"). */
void jsonw_secs_us(struct jsonw *j, uint64_t us);
/* "2026-11-30T10:08:31.123Z" from wall-clock ms. */
void jsonw_time_ms(struct jsonw *j, int64_t ms);
/* ,"key": — a key with its leading comma unless first is set. */
void jsonw_key(struct jsonw *j, const char *key, bool first);

#endif
