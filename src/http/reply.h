/* reply — whole responses golb answers itself, built once and shared read-only by every worker:
 * one per status (a short text/plain body, Connection: close) and the answer to plain HTTP
 * sent to the HTTPS port. */
#ifndef GOLB_REPLY_H
#define GOLB_REPLY_H

#include <stdint.h>

/* The response for `status` (100..599, anything else is 500); *len gets its length. */
const char *reply_text(int status, uint32_t *len);

/* What a plain-HTTP client that reached the TLS port gets (nginx answers the same way). */
extern const char reply_plain_on_tls[];

#endif
