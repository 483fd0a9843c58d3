/* jsonw — see jsonw.h. */
#include "jsonw.h"

#include <string.h>
#include <time.h>

void jsonw_raw(struct jsonw *j, const char *s, size_t n)
{
    if (j->overflow || j->len + n > j->cap) {
        j->overflow = true;
        return;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
}

void jsonw_cstr(struct jsonw *j, const char *s)
{
    jsonw_raw(j, s, strlen(s));
}

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

static void escape(struct jsonw *j, const char *s, size_t n, size_t max_bytes, bool json)
{
    const unsigned char *u = (const unsigned char *)s;
    bool cut = false;
    if (max_bytes && n > max_bytes) {
        n = max_bytes;
        cut = true;
    }
    size_t i = 0;
    while (i < n && !j->overflow) {
        /* Copy a run of bytes that need no escaping in one go. */
        size_t run = i;
        while (run < n && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' && u[run] != '\\')
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

void jsonw_u64(struct jsonw *j, uint64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
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
    char frac[7];
    uint64_t f = us % 1000000u;
    for (int i = 5; i >= 0; i--) {
        frac[i] = (char)('0' + f % 10);
        f /= 10;
    }
    frac[6] = '\0';
    jsonw_u64(j, us / 1000000u);
    jsonw_raw(j, ".", 1);
    jsonw_raw(j, frac, 6);
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
