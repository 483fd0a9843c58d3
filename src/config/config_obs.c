/* config_obs — the observability keys: admin {listen, token, tokenFile}, accessLog,
 * accessLogPath, logFormat. Part of the config module, behind config_int.h.
 *
 * admin.tokenFile is read here, at load (so a reload re-reads it, and every problem with it is a
 * FILE:LINE:COL error before golb listens): its content, without trailing whitespace, is the token.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_int.h"
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

static void set_admin_listen(struct load *l, struct config *cfg, const struct node *v)
{
    struct qbuf q;
    static const char form[] = "admin.listen must be \"ADDR:PORT\", \"[IPv6]:PORT\", \":PORT\" or "
                               "\"unix:/PATH\", got %s";
    if (!is_string(v) || !visible_ascii(v->str, v->len)) {
        error_at(l, v, form, describe(&q, v));
        return;
    }
    if (strncmp(v->str, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)(void *)&cfg->admin_addr;
        const char *path = v->str + 5;
        if (path[0] != '/' || strlen(path) >= sizeof(un->sun_path)) {
            error_at(l, v, form, describe(&q, v));
            return;
        }
        memset(&cfg->admin_addr, 0, sizeof(cfg->admin_addr));
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        cfg->admin_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
        free(cfg->admin_listen);
        cfg->admin_listen = strdup(v->str);
        if (!cfg->admin_listen)
            load_oom(l);
        return;
    }
    parse_addr(l, v, "admin.listen", form, &cfg->admin_addr, &cfg->admin_addrlen,
               &cfg->admin_listen);
}

#define TOKEN_FILE_MAX 4096 /* "it is larger than 4096 bytes" below */

/* PATH made absolute against the config file's directory (as config_tls.c does for its files). */
static char *resolve_against_config(struct load *l, const char *path)
{
    const char *file = load_file_name(l), *slash = strrchr(file, '/');
    char *out;
    if (path[0] == '/' || !slash)
        return strdup(path);
    if (asprintf(&out, "%.*s/%s", (int)(slash - file), file, path) == -1)
        return NULL;
    return out;
}

/* admin.tokenFile: the token is the file's content without trailing whitespace (a newline left by
 * an editor or `echo`). A regular file only (a FIFO would block the load), at most
 * TOKEN_FILE_MAX bytes, one token of visible ASCII. NULL after reporting. */
static char *read_token_file(struct load *l, const struct node *v)
{
    struct qbuf q;
    bool ok = is_string(v) && v->len > 0;
    for (size_t i = 0; ok && i < v->len; i++)
        ok = (unsigned char)v->str[i] >= 0x20 && v->str[i] != 0x7f;
    if (!ok) {
        error_at(l, v, "admin.tokenFile must be a path, got %s", describe(&q, v));
        return NULL;
    }
    char *path = resolve_against_config(l, v->str);
    if (!path) {
        load_oom(l);
        return NULL;
    }
    char *tok = NULL;
    const char *why = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* a FIFO must not block */
    struct stat st;
    if (fd == -1 || fstat(fd, &st) == -1) {
        error_at(l, v, "admin.tokenFile: cannot read \"%s\": %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        why = "it is not a regular file";
    } else if (!(tok = malloc(TOKEN_FILE_MAX + 2))) {
        load_oom(l);
    } else {
        size_t len = 0;
        for (;;) {
            ssize_t n = read(fd, tok + len, TOKEN_FILE_MAX + 1 - len);
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1)
                why = strerror(errno);
            if (n <= 0)
                break;
            len += (size_t)n;
            if (len > TOKEN_FILE_MAX)
                break;
        }
        bool too_big = len > TOKEN_FILE_MAX;
        while (len > 0 && tok[len - 1] && strchr(" \t\r\n", tok[len - 1]))
            len--;
        tok[len] = '\0'; /* len ≤ TOKEN_FILE_MAX + 1 */
        if (why) {
            /* a read error: reported below */
        } else if (too_big) {
            why = "it is larger than 4096 bytes";
        } else if (len == 0) {
            why = "it is empty";
        } else if (strlen(tok) != len || !visible_ascii(tok, len)) {
            why = "it must hold one token of visible ASCII characters";
        } else if (st.st_mode & S_IROTH) {
            warning_at(l, v, "admin.tokenFile: \"%s\" is readable by every user (chmod o-r)", path);
        }
    }
    if (why) {
        error_at(l, v, "admin.tokenFile: cannot use \"%s\": %s", path, why);
        free(tok);
        tok = NULL;
    }
    if (fd != -1)
        close(fd);
    free(path);
    return tok;
}

void set_admin(struct load *l, struct config *cfg, const struct node *v)
{
    static const char *const names[] = {"listen", "token", "tokenFile"};
    struct qbuf q;
    const struct node *listen_k = NULL, *token_k = NULL, *file_k = NULL, *listen = NULL,
                      *token = NULL, *file = NULL;
    if (v->kind != NODE_MAPPING) {
        error_at(l, v, "admin must be a mapping with \"listen\" (and \"token\"), got %s",
                 describe(&q, v));
        return;
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct node *k = v->kids[i], *val = v->kids[i + 1];
        if (!key_ok(l, k))
            continue;
        if (key_is(k, "listen")) {
            if (key_first(l, k, &listen_k))
                listen = val;
        } else if (key_is(k, "token")) {
            if (key_first(l, k, &token_k))
                token = val;
        } else if (key_is(k, "tokenFile")) {
            if (key_first(l, k, &file_k))
                file = val;
        } else {
            unknown_key(l, k, names, ARRAY_LEN(names), " in admin");
        }
    }
    if (token && token->kind != NODE_BAD) {
        if (!is_string(token) || token->len == 0 || !visible_ascii(token->str, token->len)) {
            error_at(l, token,
                     "admin.token must be a non-empty string of visible ASCII characters");
        } else if (!(cfg->admin_token = strdup(token->str))) {
            load_oom(l);
        }
    }
    if (token && file) {
        bool file_later = file_k->line > token_k->line ||
                          (file_k->line == token_k->line && file_k->col > token_k->col);
        const struct node *later = file_later ? file_k : token_k;
        error_at(l, later, "admin.token and admin.tokenFile are mutually exclusive: give one");
    } else if (file && file->kind != NODE_BAD) {
        cfg->admin_token = read_token_file(l, file);
    }
    if (!listen) {
        error_at(l, v, "admin is missing \"listen\"");
        return;
    }
    if (listen->kind == NODE_BAD)
        return;
    set_admin_listen(l, cfg, listen);
    if (cfg->admin_listen && !token && !file && !is_loopback(&cfg->admin_addr))
        error_at(l, listen,
                 "admin.token or admin.tokenFile is required when admin.listen is not a loopback "
                 "or unix address");
}

/* One of `choices` (NULL-terminated); returns its index or -1 after reporting. */
int get_choice(struct load *l, const struct key *k, const struct node *v,
               const char *const *choices, const char *list)
{
    struct qbuf q;
    if (is_string(v))
        for (int i = 0; choices[i]; i++)
            if (strcmp(v->str, choices[i]) == 0)
                return i;
    error_at(l, v, "%s must be one of %s, got %s", k->name, list, describe(&q, v));
    return -1;
}

void set_path(struct load *l, struct config *cfg, const struct key *k, const struct node *v)
{
    struct qbuf q;
    if (!is_string(v) || v->str[0] != '/' || !visible_ascii(v->str, v->len)) {
        error_at(l, v, "%s must be a path, got %s", k->name, describe(&q, v));
        return;
    }
    char **field = (char **)(void *)((char *)cfg + k->off);
    free(*field);
    *field = strdup(v->str);
    if (!*field)
        load_oom(l);
}
