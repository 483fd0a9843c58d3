/* config_listen — the addresses golb listens on: `listen` and `tls.listen`, each one address or a
 * list of them (IPv4 and IPv6 side by side), and the wildcard address of `port`. Entry points in
 * config_int.h; the address syntax and its messages are config_yaml.c's.
 *
 *   listen: 127.0.0.1:8080                      one address: errors at the key, as always
 *   listen: ["127.0.0.1:8080", "[::1]:8080"]    a list: errors at the entry
 *
 * In a list, no address may be another one (duplicate) or lie within another's wildcard on the
 * same port (0.0.0.0:8080 with 127.0.0.1:8080: the kernel would split one address's connections
 * between them); nor may a `tls.listen` address meet a `listen` one so. IPv6 listeners are
 * IPv6-only, so [::]:8080 and 0.0.0.0:8080 do not meet. Port 0 (a port the kernel picks per
 * socket group) meets nothing, but is listed once per list: a reload keeps an address by what the
 * file says.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_int.h"
#include "config/config_yaml.h"

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
}

static bool wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr);
    return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

/* True when listeners on a and b would share connections: the same fixed port, and the same
 * address or one of them the wildcard of the family. */
static bool meets(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || port_of(a) != port_of(b) || port_of(a) == 0)
        return false;
    return config_yaml_same_addr(a, b) || wildcard(a) || wildcard(b);
}

void config_listen_parse(struct config_yaml_load *l, const char *key,
                         const struct config_yaml_node *k, const struct config_yaml_node *v,
                         struct config_listen_list *out)
{
    struct config_yaml_qbuf q;
    config_listen_free(out);
    if (v->kind != CONFIG_YAML_SEQUENCE) { /* one address: a problem with it is at the key */
        struct config_listen *e = &out->at[0];
        if (config_yaml_listen_addr(l, key, v, &e->addr, &e->addrlen, &e->name) == 0) {
            e->line = k->line;
            e->col = k->col;
            out->n = 1;
        }
        return;
    }
    if (v->nkids == 0) {
        config_yaml_error(l, v, "%s must not be an empty list", key);
        return;
    }
    if (v->nkids > CONFIG_LISTEN_MAX) {
        config_yaml_error(l, v, "%s: at most %d addresses, got %zu", key, CONFIG_LISTEN_MAX,
                          v->nkids);
        return;
    }
    for (size_t i = 0; i < v->nkids; i++) {
        const struct config_yaml_node *x = v->kids[i];
        struct config_listen e = {.line = x->line, .col = x->col};
        if (x->kind == CONFIG_YAML_BAD ||
            config_yaml_listen_addr(l, key, x, &e.addr, &e.addrlen, &e.name) != 0)
            continue;
        int other = -1;
        for (int j = 0; j < out->n && other < 0; j++)
            if (config_yaml_same_addr(&out->at[j].addr, &e.addr) ||
                meets(&out->at[j].addr, &e.addr))
                other = j;
        if (other >= 0 && config_yaml_same_addr(&out->at[other].addr, &e.addr)) {
            config_yaml_error(l, x, "duplicate %s address %s (the same as the entry at line %d)",
                              key, config_yaml_quote(&q, e.name, strlen(e.name)),
                              out->at[other].line);
        } else if (other >= 0) {
            struct config_yaml_qbuf q2;
            const char *on = out->at[other].name;
            config_yaml_error(l, x,
                              "%s address %s overlaps %s (line %d): one of them is a wildcard "
                              "address on the same port",
                              key, config_yaml_quote(&q, e.name, strlen(e.name)),
                              config_yaml_quote(&q2, on, strlen(on)), out->at[other].line);
        }
        if (other >= 0) {
            free(e.name);
            continue;
        }
        out->at[out->n++] = e;
    }
}

void config_listen_any(struct config_yaml_load *l, struct config_listen_list *out, uint16_t port,
                       const struct config_yaml_node *k)
{
    config_listen_free(out);
    struct config_listen *e = &out->at[0];
    config_yaml_any_addr(l, &e->addr, &e->addrlen, &e->name, port);
    e->line = k ? k->line : 0;
    e->col = k ? k->col : 0;
    out->n = e->name ? 1 : 0;
}

void config_listen_cross_check(struct config_yaml_load *l, const struct config *cfg)
{
    if (!cfg->tls)
        return;
    for (int i = 0; i < cfg->tls->listen.n; i++) {
        const struct config_listen *t = &cfg->tls->listen.at[i];
        for (int j = 0; j < cfg->listen.n; j++) {
            const struct config_listen *p = &cfg->listen.at[j];
            if (!meets(&t->addr, &p->addr))
                continue;
            struct config_yaml_qbuf q, q2;
            config_yaml_error_lc(l, t->line, t->col,
                                 "tls.listen address %s overlaps listen address %s",
                                 config_yaml_quote(&q, t->name, strlen(t->name)),
                                 config_yaml_quote(&q2, p->name, strlen(p->name)));
            break;
        }
    }
}

void config_listen_free(struct config_listen_list *list)
{
    for (int i = 0; i < list->n; i++)
        free(list->at[i].name);
    memset(list, 0, sizeof(*list));
}
