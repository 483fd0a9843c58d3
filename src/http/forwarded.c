/* forwarded — see forwarded.h. */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "base/cidr.h"
#include "base/sock.h"
#include "http/http.h"

/* s[0..len): "1.2.3.4", "2001:db8::1" or "[2001:db8::1]" into *ss. */
static bool parse_ip(const char *s, size_t len, struct sockaddr_storage *ss)
{
    char tmp[INET6_ADDRSTRLEN + 2];
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
        if (!memchr(s, ':', len))
            return false; /* brackets are for IPv6 only */
    }
    if (len == 0 || len >= sizeof(tmp))
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)ss;
    if (inet_pton(AF_INET, tmp, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, tmp, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

bool forwarded_trusted(const struct cidr *trusted, size_t n, const char *ip, size_t len)
{
    struct sockaddr_storage ss;
    return n && parse_ip(ip, len, &ss) && cidr_list_match(trusted, n, (struct sockaddr *)&ss);
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

size_t forwarded_client(const struct http_request *req, const struct cidr *trusted, size_t n,
                        const char *peer, size_t peer_len, char *out, size_t cap)
{
    struct sockaddr_storage cur, e;
    bool have = false; /* cur holds the client so far (a trusted hop) when set */
    if (forwarded_trusted(trusted, n, peer, peer_len)) {
        /* The chain from its right end: fields last to first, each value right to left. */
        for (size_t f = req->num_fields; f-- > 0;) {
            const struct http_field *h = &req->fields[f];
            if (h->id != HTTP_F_X_FORWARDED_FOR)
                continue;
            size_t end = h->value_len;
            while (end > 0) {
                size_t start = end;
                while (start > 0 && h->value[start - 1] != ',')
                    start--;
                size_t a = start, b = end;
                end = start > 0 ? start - 1 : 0;
                while (a < b && ows(h->value[a]))
                    a++;
                while (b > a && ows(h->value[b - 1]))
                    b--;
                if (a == b)
                    continue; /* an empty element */
                if (!parse_ip(h->value + a, b - a, &e))
                    goto done; /* not an address: nothing further left can be believed */
                cur = e;
                have = true;
                if (!cidr_list_match(trusted, n, (struct sockaddr *)&e))
                    goto done; /* the first untrusted entry: the client */
                if (start == 0)
                    break;
            }
        }
    }
done:
    if (have) {
        size_t len = sock_ip_str((struct sockaddr *)&cur, out, cap);
        if (len)
            return len;
    }
    size_t len = peer_len < cap ? peer_len : cap - 1;
    memcpy(out, peer, len);
    out[len] = '\0';
    return len;
}
