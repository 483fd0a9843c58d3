/* grpc — see grpc.h. */
#include "http/grpc.h"

#include <string.h>
#include <strings.h>

#include "http/http.h"

bool grpc_content_type(const char *v, size_t len)
{
    if (len < 16 || strncasecmp(v, "application/grpc", 16) != 0)
        return false;
    return len == 16 || v[16] == '+' || v[16] == ';' || v[16] == '-';
}

int grpc_timeout_parse(const char *v, size_t len, uint64_t *ms)
{
    if (len < 2 || len > 9)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    switch (v[len - 1]) { /* n < 10^8: no product below overflows */
    case 'H':
        *ms = n * 3600000u;
        return 0;
    case 'M':
        *ms = n * 60000u;
        return 0;
    case 'S':
        *ms = n * 1000u;
        return 0;
    case 'm':
        *ms = n;
        return 0;
    case 'u':
        *ms = (n + 999) / 1000;
        return 0;
    case 'n':
        *ms = (n + 999999) / 1000000;
        return 0;
    default:
        return -1;
    }
}

static bool name_is(const struct http_field *f, const char *lit, size_t n)
{
    return f->name_len == n && strncasecmp(f->name, lit, n) == 0;
}

bool grpc_request(const struct http_request *rq, uint64_t *timeout_ms)
{
    bool grpc = false;
    *timeout_ms = UINT64_MAX;
    for (size_t i = 0; i < rq->num_fields; i++) {
        const struct http_field *f = &rq->fields[i];
        if (f->name_len != 12)
            continue;
        if (name_is(f, "content-type", 12))
            grpc = grpc_content_type(f->value, f->value_len);
        else if (name_is(f, "grpc-timeout", 12) &&
                 grpc_timeout_parse(f->value, f->value_len, timeout_ms) != 0)
            *timeout_ms = UINT64_MAX;
    }
    if (!grpc)
        *timeout_ms = UINT64_MAX;
    return grpc;
}

int grpc_status_field(const struct http_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!name_is(&f[i], "grpc-status", 11))
            continue;
        const char *v = f[i].value;
        if (f[i].value_len == 1 && v[0] >= '0' && v[0] <= '9')
            return v[0] - '0';
        if (f[i].value_len == 2 && v[0] >= '1' && v[0] <= '9' && v[1] >= '0' && v[1] <= '9')
            return (v[0] - '0') * 10 + v[1] - '0';
        return -1;
    }
    return -1;
}

int grpc_code_of_http(int status)
{
    switch (status) {
    case 502:
    case 503:
        return GRPC_UNAVAILABLE;
    case 408:
    case 504:
        return GRPC_DEADLINE_EXCEEDED;
    case 429:
        return GRPC_RESOURCE_EXHAUSTED;
    case 401:
        return GRPC_UNAUTHENTICATED;
    case 403:
        return GRPC_PERMISSION_DENIED;
    case 404:
    case 501:
        return GRPC_UNIMPLEMENTED;
    case 400:
    case 414:
    case 431:
        return GRPC_INTERNAL;
    default:
        return GRPC_UNKNOWN;
    }
}

const char *grpc_code_name(int code)
{
    static const char *const names[] = {
        "OK",        "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",   "UNIMPLEMENTED",    "INTERNAL",
        "UNAVAILABLE", "DATA_LOSS",       "UNAUTHENTICATED",
    };
    return code >= 0 && code < (int)(sizeof(names) / sizeof(names[0])) ? names[code] : NULL;
}

size_t grpc_health_request(const char *service, size_t len, uint8_t *out, size_t cap)
{
    size_t vlen = len < 128 ? 1 : 2;
    size_t body = len ? 1 + vlen + len : 0; /* proto3: an empty string is not sent */
    if (len >= 128 * 128 || 5 + body > cap)
        return 0;
    out[0] = 0; /* not compressed */
    out[1] = (uint8_t)(body >> 24);
    out[2] = (uint8_t)(body >> 16);
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    if (!len)
        return 5;
    uint8_t *p = out + 5;
    *p++ = 0x0a; /* field 1, length-delimited */
    if (vlen == 1) {
        *p++ = (uint8_t)len;
    } else {
        *p++ = (uint8_t)(0x80 | (len & 0x7f));
        *p++ = (uint8_t)(len >> 7);
    }
    memcpy(p, service, len);
    return 5 + body;
}

/* A protobuf varint at *p (before end) into *v; false when it is cut or longer than 10 bytes. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p == end)
            return false;
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

int grpc_health_response(const uint8_t *p, size_t len)
{
    if (len < 5 || p[0] != 0)
        return -1;
    size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
    if (n != len - 5)
        return -1;
    const uint8_t *q = p + 5, *end = p + len;
    int status = GRPC_SERVING_UNKNOWN;
    while (q < end) {
        uint64_t tag, v;
        if (!varint(&q, end, &tag))
            return -1;
        switch (tag & 7) {
        case 0: /* varint */
            if (!varint(&q, end, &v))
                return -1;
            if (tag >> 3 == 1)
                status = v > 0x7fffffff ? -1 : (int)v;
            break;
        case 1: /* 64-bit */
            if (end - q < 8)
                return -1;
            q += 8;
            break;
        case 2: /* length-delimited */
            if (!varint(&q, end, &v) || v > (uint64_t)(end - q))
                return -1;
            q += v;
            break;
        case 5: /* 32-bit */
            if (end - q < 4)
                return -1;
            q += 4;
            break;
        default:
            return -1;
        }
        if (tag >> 3 == 0)
            return -1; /* field 0 does not exist */
    }
    return status;
}
