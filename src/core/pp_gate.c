/* pp_gate — see pp_gate.h. */
#include "core/pp_gate.h"

#include <errno.h>
#include <netinet/in.h>

#include "base/cidr.h"
#include "config/config.h"
#include "core/obs.h"
#include "core/worker_ctx.h"
#include "net/proxy_proto.h"

bool pp_gate_trusted(const struct worker_ctx *w, const struct sockaddr *peer)
{
    const struct config *cfg = w->cfg;
    return cidr_list_match(cfg->pp_trusted, (size_t)cfg->npp_trusted, peer);
}

enum pp_gate_step pp_gate_check(struct worker_ctx *w, bool trusted, const char *buf, size_t n,
                                size_t *hdr_len, struct sockaddr_storage *client,
                                socklen_t *clientlen)
{
    *hdr_len = 0;
    int d = proxy_proto_detect(buf, n);
    if (!trusted) {
        if (d == 1 || d == 2) {
            obs_proxy_header_error(w, OBS_PP_UNTRUSTED);
            return PP_GATE_CLOSE;
        }
        return PP_GATE_DONE;
    }
    if (d == 0) {
        if (w->cfg->pp_required) {
            obs_proxy_header_error(w, OBS_PP_MISSING);
            return PP_GATE_CLOSE;
        }
        return PP_GATE_DONE;
    }
    if (d == -EAGAIN)
        return PP_GATE_WAIT;
    struct proxy_proto_result res;
    ssize_t r = proxy_proto_parse(buf, n, PP_GATE_MAX, &res);
    if (r == -EAGAIN)
        return PP_GATE_WAIT;
    if (r < 0) {
        obs_proxy_header_error(w, OBS_PP_MALFORMED);
        return PP_GATE_CLOSE;
    }
    *hdr_len = (size_t)r;
    obs_proxy_header(w, res.version);
    if (res.command == PROXY_PROTO_CMD_PROXY &&
        (res.family == AF_INET || res.family == AF_INET6)) {
        *client = res.src;
        *clientlen = res.family == AF_INET ? sizeof(struct sockaddr_in)
                                           : sizeof(struct sockaddr_in6);
    }
    return PP_GATE_DONE;
}
