/* Fuzz target for the configuration loader: arbitrary bytes through config_load_buffer.
 * Host names are not resolved (config_set_resolve_numeric_only), so no input waits on DNS;
 * diagnostics go to /dev/null, opened once. Every accepted config is freed (LSan checks leaks),
 * after its route table is built (core/route.c compiles what the loader accepted). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "core/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    struct config *cfg = NULL;

    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        if (!devnull)
            abort();
        config_set_resolve_numeric_only(true);
    }
    if (config_load_buffer("fuzz.yaml", (const char *)data, size, devnull, &cfg) == 0) {
        if (!cfg || cfg->nbackends < 1 || !cfg->path ||
            (cfg->plain_off ? cfg->listen.n != 0 : cfg->listen.n < 1) ||
            cfg->listen.n > CONFIG_LISTEN_MAX)
            abort(); /* success must mean a complete config */
        for (int i = 0; i < cfg->listen.n; i++)
            if (!cfg->listen.at[i].name)
                abort();
        for (int i = 0; i < cfg->nbackends; i++)
            if (!cfg->backends[i].name || cfg->backends[i].health_path[0] != '/')
                abort();
        if (cfg->max_request_line > cfg->max_header_size)
            abort();
        if (cfg->npools < 1 || !cfg->pools[0].is_default || cfg->pools[0].backends != cfg->backends)
            abort(); /* pools[0] is always the top-level backends */
        for (int i = 0; i < cfg->nroutes; i++) {
            const struct config_route *r = &cfg->routes[i];
            if (r->action == CONFIG_ROUTE_POOL && (r->pool < 0 || r->pool >= cfg->npools))
                abort();
            for (int j = 0; j < r->nsplit; j++)
                if (r->split[j].pool < 0 || r->split[j].pool >= cfg->npools)
                    abort();
        }
        struct route_table *t = route_table_build(cfg);
        if (!t)
            abort();
        route_table_free(t);
    } else if (cfg) {
        abort(); /* failure must leave *out NULL */
    }
    config_free(cfg);
    return 0;
}
