/* reply — see reply.h. */
#include "http/reply.h"

#include <pthread.h>
#include <stdio.h>

#include "http/http1.h"
#include "base/util.h"

/* Whole responses golb sends itself: short plain-text body, always Connection: close. Built once
 * for every status at first use (pthread_once), then shared read-only by all workers. */
#define REPLY_MAX 192
static char reply_table[600][REPLY_MAX];
static uint16_t reply_len_table[600];
static pthread_once_t reply_once = PTHREAD_ONCE_INIT;

static void build_replies(void)
{
    for (int status = 100; status < 600; status++) {
        char body[96];
        int bl = snprintf(body, sizeof(body), "%d %s\n", status, http1_reason(status));
        int n = snprintf(reply_table[status], REPLY_MAX,
                         "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         "Connection: close\r\n\r\n%s",
                         status, http1_reason(status), bl, body);
        reply_len_table[status] = (uint16_t)MIN(n, REPLY_MAX - 1);
    }
}

const char *reply_text(int status, uint32_t *len)
{
    pthread_once(&reply_once, build_replies);
    if (status < 100 || status >= 600)
        status = 500;
    *len = reply_len_table[status];
    return reply_table[status];
}

/* What a plain-HTTP client that reached the TLS port gets (nginx answers the same way): the
 * request cannot be served there, and a silent close would leave the user guessing. */
const char reply_plain_on_tls[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 45\r\n"
    "Connection: close\r\n\r\nThis port speaks HTTPS: use https:// instead.\n";
