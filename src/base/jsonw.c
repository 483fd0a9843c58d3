/* jsonw — see jsonw.h. */
#include "base/jsonw.h"

#include <string.h>
#include <time.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one
 * (overlong forms, surrogates and code points past U+10FFFF are invalid, RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static const char hex[] = "0123456789abcdef";

/* Bytes copied as they are: printable ASCII except the quote and the backslash. A table lookup
 * per byte keeps escaping at well under a nanosecond per byte on the common case. */
static const uint8_t plain[256] = {
    [0x20] = 1, [0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1,
};

static void escape(struct jsonw *j, const char *s, size_t n, size_t max_bytes, bool json)
{
    const unsigned char *u = (const unsigned char *)s;
    bool cut = false;
    if (max_bytes && n > max_bytes) {
        n = max_bytes;
        cut = true;
    }
    size_t i = 0;
    /* Fast path: room for the worst case (6 bytes out per byte in), so plain bytes are stored one
     * by one with no check and no call; the first byte that needs care leaves it. */
    if (!j->overflow && j->cap - j->len >= 6 * n + 3) {
        char *o = j->p + j->len;
        while (i < n && plain[u[i]])
            *o++ = (char)u[i++];
        j->len = (size_t)(o - j->p);
    }
    while (i < n && !j->overflow) {
        /* Copy a run of bytes that need no escaping in one go. */
        size_t run = i;
        while (run < n && plain[u[run]])
            run++;
        if (run > i) {
            jsonw_raw(j, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = u[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            jsonw_raw(j, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            if (json) {
                memcpy(e, "\\u00", 4);
                e[4] = hex[c >> 4];
                e[5] = hex[c & 15];
                jsonw_raw(j, e, 6);
            } else {
                e[0] = '\\';
                e[1] = 'x';
                e[2] = hex[c >> 4];
                e[3] = hex[c & 15];
                jsonw_raw(j, e, 4);
            }
            i++;
        } else if (!json) {
            e[0] = '\\';
            e[1] = 'x';
            e[2] = hex[c >> 4];
            e[3] = hex[c & 15];
            jsonw_raw(j, e, 4);
            i++;
        } else {
            size_t k = utf8_len(u + i, n - i);
            if (k == 0) {
                jsonw_raw(j, "\\ufffd", 6);
                i++;
            } else {
                jsonw_raw(j, s + i, k);
                i += k;
            }
        }
    }
    if (cut)
        jsonw_raw(j, "...", 3);
}

void jsonw_str(struct jsonw *j, const char *s, size_t n, size_t max_bytes)
{
    jsonw_raw(j, "\"", 1);
    escape(j, s, n, max_bytes, true);
    jsonw_raw(j, "\"", 1);
}

void jsonw_text(struct jsonw *j, const char *s, size_t n, size_t max_bytes)
{
    escape(j, s, n, max_bytes, false);
}

/* Writes v's decimal digits ending at end; returns where they start. */
static char *digits(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

void jsonw_u64(struct jsonw *j, uint64_t v)
{
    char tmp[24];
    char *p = digits(tmp + sizeof(tmp), v);
    jsonw_raw(j, p, (size_t)(tmp + sizeof(tmp) - p));
}

void jsonw_i64(struct jsonw *j, int64_t v)
{
    if (v < 0) {
        jsonw_raw(j, "-", 1);
        jsonw_u64(j, (uint64_t)0 - (uint64_t)v);
        return;
    }
    jsonw_u64(j, (uint64_t)v);
}

void jsonw_secs_us(struct jsonw *j, uint64_t us)
{
    if (us < 10000000u && !j->overflow && j->cap - j->len >= 8) { /* under 10 s: "S.UUUUUU" */
        char *o = j->p + j->len;
        uint32_t v = (uint32_t)us;
        o[0] = (char)('0' + v / 1000000u);
        o[1] = '.';
        for (int i = 7; i >= 2; i--) {
            o[i] = (char)('0' + v % 10);
            v /= 10;
        }
        j->len += 8;
        return;
    }
    char tmp[32];
    char *end = tmp + sizeof(tmp);
    uint32_t f = (uint32_t)(us % 1000000u);
    for (int i = 0; i < 6; i++) {
        *--end = (char)('0' + f % 10);
        f /= 10;
    }
    *--end = '.';
    char *p = digits(end, us / 1000000u);
    jsonw_raw(j, p, (size_t)(tmp + sizeof(tmp) - p));
}

void jsonw_time_ms(struct jsonw *j, int64_t ms)
{
    /* gmtime_r and strftime cost more than the rest of an access-log line: each thread keeps the
     * text of the last second it formatted and only writes the milliseconds after it. */
    static __thread int64_t cached_sec = -1;
    static __thread char cached[24];
    static __thread size_t cached_len;
    int64_t sec = ms / 1000;
    if (sec != cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = sec;
    }
    char out[32];
    memcpy(out, cached, cached_len);
    size_t n = cached_len;
    int milli = (int)(ms % 1000);
    out[n++] = '.';
    out[n++] = (char)('0' + milli / 100);
    out[n++] = (char)('0' + milli / 10 % 10);
    out[n++] = (char)('0' + milli % 10);
    out[n++] = 'Z';
    jsonw_raw(j, out, n);
}

void jsonw_key(struct jsonw *j, const char *key, bool first)
{
    if (!first)
        jsonw_raw(j, ",", 1);
    jsonw_raw(j, "\"", 1);
    jsonw_cstr(j, key);
    jsonw_raw(j, "\":", 2);
}
