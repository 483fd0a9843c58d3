/* config_obs — the observability keys: admin {listen, token, tokenFile}, accessLog,
 * accessLogPath, logFormat (accessLog and logFormat are choices config.c reads with
 * config_yaml_get_choice). Entry points in config_int.h; the tree, messages and getters are
 * config_yaml.h's.
 *
 * admin.tokenFile is read here, at load (config_yaml_read_secret_file: so a reload re-reads it, and
 * every problem with it is a FILE:LINE:COL error before golb listens): its content, without
 * trailing whitespace, is the token.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"
#include "base/util.h"

/* True for addresses only this machine can reach: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104. */
static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
    }
    return ss->ss_family == AF_UNIX;
}

static void set_admin_listen(struct config_yaml_load *l, struct config *cfg,
                             const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    static const char form[] = "admin.listen must be \"ADDR:PORT\", \"[IPv6]:PORT\", \":PORT\" or "
                               "\"unix:/PATH\", got %s";
    if (!config_yaml_is_string(v) || !config_yaml_visible_ascii(v->str, v->len)) {
        config_yaml_error(l, v, form, config_yaml_describe(&q, v));
        return;
    }
    if (strncmp(v->str, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)(void *)&cfg->admin_addr;
        const char *path = v->str + 5;
        if (path[0] != '/' || strlen(path) >= sizeof(un->sun_path)) {
            config_yaml_error(l, v, form, config_yaml_describe(&q, v));
            return;
        }
        memset(&cfg->admin_addr, 0, sizeof(cfg->admin_addr));
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        cfg->admin_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
        free(cfg->admin_listen);
        cfg->admin_listen = strdup(v->str);
        if (!cfg->admin_listen)
            config_yaml_oom(l);
        return;
    }
    config_yaml_parse_addr(l, v, "admin.listen", form, &cfg->admin_addr, &cfg->admin_addrlen,
                           &cfg->admin_listen);
}

void config_obs_admin(struct config_yaml_load *l, struct config *cfg,
                      const struct config_yaml_node *v)
{
    static const char *const names[] = {"listen", "token", "tokenFile"};
    struct config_yaml_qbuf q;
    const struct config_yaml_node *listen_k = NULL, *token_k = NULL, *file_k = NULL, *listen = NULL,
                                  *token = NULL, *file = NULL;
    if (v->kind != CONFIG_YAML_MAPPING) {
        config_yaml_error(l, v, "admin must be a mapping with \"listen\" (and \"token\"), got %s",
                          config_yaml_describe(&q, v));
        return;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct config_yaml_node *k = v->kids[i], *val = v->kids[i + 1];
        if (!config_yaml_key_ok(l, k))
            continue;
        if (config_yaml_key_is(k, "listen")) {
            if (config_yaml_key_first(l, k, &listen_k))
                listen = val;
        } else if (config_yaml_key_is(k, "token")) {
            if (config_yaml_key_first(l, k, &token_k))
                token = val;
        } else if (config_yaml_key_is(k, "tokenFile")) {
            if (config_yaml_key_first(l, k, &file_k))
                file = val;
        } else {
            config_yaml_unknown_key(l, k, names, ARRAY_LEN(names), " in admin");
        }
    }
    if (token && token->kind != CONFIG_YAML_BAD) {
        if (!config_yaml_is_string(token) || token->len == 0 ||
            !config_yaml_visible_ascii(token->str, token->len)) {
            config_yaml_error(l, token,
                              "admin.token must be a non-empty string of visible ASCII characters");
        } else if (!(cfg->admin_token = strdup(token->str))) {
            config_yaml_oom(l);
        }
    }
    if (token && file) {
        bool file_later = file_k->line > token_k->line ||
                          (file_k->line == token_k->line && file_k->col > token_k->col);
        const struct config_yaml_node *later = file_later ? file_k : token_k;
        config_yaml_error(l, later,
                          "admin.token and admin.tokenFile are mutually exclusive: give one");
    } else if (file && file->kind != CONFIG_YAML_BAD) {
        cfg->admin_token = config_yaml_read_secret_file(l, "admin.tokenFile", file);
    }
    if (!listen) {
        config_yaml_error(l, v, "admin is missing \"listen\"");
        return;
    }
    if (listen->kind == CONFIG_YAML_BAD)
        return;
    set_admin_listen(l, cfg, listen);
    if (cfg->admin_listen && !token && !file && !is_loopback(&cfg->admin_addr))
        config_yaml_error(l, listen,
                          "admin.token or admin.tokenFile is required when admin.listen is not a "
                          "loopback or unix address");
}

void config_obs_path(struct config_yaml_load *l, struct config *cfg,
                     const struct config_yaml_key *k, const struct config_yaml_node *v)
{
    struct config_yaml_qbuf q;
    if (!config_yaml_is_string(v) || v->str[0] != '/' ||
        !config_yaml_visible_ascii(v->str, v->len)) {
        config_yaml_error(l, v, "%s must be a path, got %s", k->name, config_yaml_describe(&q, v));
        return;
    }
    char **field = (char **)(void *)((char *)cfg + k->off);
    free(*field);
    *field = strdup(v->str);
    if (!*field)
        config_yaml_oom(l);
}
