/* libFuzzer target for the access-log line formats (obs_format_line, jsonw escaping).
 *
 * Input: the request's method, target, User-Agent and request id, separated by 0xff 0x00 pairs
 * (any bytes at all otherwise, as a hostile client could send them or more). Invariants:
 *   json: the line ends with its only newline, holds no control byte, and parses (jansson) as one
 *         object whose user_agent.original and url.path are strings;
 *   text: the line ends with its only newline and holds only printable ASCII. */
#include <jansson.h>

#include "core/accesslog.h"
#include "fuzz_support.h"
#include "core/obs.h"

static size_t take(const uint8_t **p, size_t *left, char *out, size_t cap)
{
    size_t n = 0;
    while (*left > 0) {
        if (*left >= 2 && (*p)[0] == 0xff && (*p)[1] == 0x00) {
            *p += 2;
            *left -= 2;
            break;
        }
        if (n < cap)
            out[n++] = (char)**p;
        (*p)++;
        (*left)--;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct obs_req r;
    memset(&r, 0, sizeof(r));
    const uint8_t *p = data;
    size_t left = size;
    r.method_len = (uint8_t)take(&p, &left, r.method, sizeof(r.method));
    r.target_len = (uint16_t)take(&p, &left, r.target, sizeof(r.target));
    r.ua_len = (uint8_t)take(&p, &left, r.ua, sizeof(r.ua));
    r.reqid_len = (uint8_t)take(&p, &left, r.reqid, sizeof(r.reqid));
    r.status = size % 2 ? 200 : 0;
    r.start_wall_ms = (int64_t)size * 1234567;
    r.total_us = size;
    char line[ACCESSLOG_LINE_MAX];

    size_t n = obs_format_line(ACCESSLOG_JSON, line, sizeof(line), &r, "127.0.0.1:8081",
                                     "::1", "CD", "client_abort");
    CHECK(n > 0 && line[n - 1] == '\n');
    for (size_t i = 0; i + 1 < n; i++)
        CHECK((unsigned char)line[i] >= 0x20 && line[i] != 0x7f);
    json_error_t err;
    json_t *obj = json_loadb(line, n, JSON_ALLOW_NUL, &err); /* "\u0000" is valid JSON */
    CHECK(obj && json_is_object(obj));
    CHECK(json_is_string(json_object_get(obj, "user_agent.original")) || r.ua_len == 0);
    CHECK(json_is_string(json_object_get(obj, "url.path")) || r.target_len == 0 ||
          r.target[0] == '?');
    json_decref(obj);

    n = obs_format_line(ACCESSLOG_TEXT, line, sizeof(line), &r, NULL, "::1", "--", NULL);
    CHECK(n > 0 && line[n - 1] == '\n');
    for (size_t i = 0; i + 1 < n; i++)
        CHECK((unsigned char)line[i] >= 0x20 && (unsigned char)line[i] < 0x7f);
    return 0;
}
