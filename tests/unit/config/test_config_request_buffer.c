/* Unit tests for requestBufferSize: its default, its bounds and its messages (config.c's key
 * table). Numeric hosts only, no DNS. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../support/config_support.h"
#include "config/config.h"

static uint32_t loaded(const char *yaml)
{
    struct config *cfg = NULL;
    char *errs = NULL;
    cr_assert_eq(load(yaml, &cfg, &errs), 0, "%s", errs);
    cr_expect_str_eq(errs, "");
    uint32_t v = cfg->request_buffer_size;
    config_free(cfg);
    free(errs);
    return v;
}

static void fails(const char *yaml, const char *want)
{
    struct config *cfg = NULL;
    char *errs = NULL;
    cr_expect_eq(load(yaml, &cfg, &errs), -1);
    cr_expect_str_eq(errs, want);
    free(errs);
}

Test(config_request_buffer, default_and_bounds)
{
    cr_expect_eq(loaded("backends: [http://127.0.0.1:8081/]\n"), 65536);
    cr_expect_eq(loaded("requestBufferSize: 0\nbackends: [http://127.0.0.1:8081/]\n"), 0);
    cr_expect_eq(loaded("requestBufferSize: 16777216\nbackends: [http://127.0.0.1:8081/]\n"),
                 16777216);
}

Test(config_request_buffer, messages)
{
    fails("requestBufferSize: 16777217\nbackends: [http://127.0.0.1:8081/]\n",
          "t.yaml:1:20: requestBufferSize must be between 0 and 16777216, got 16777217\n");
    fails("requestBufferSize: -1\nbackends: [http://127.0.0.1:8081/]\n",
          "t.yaml:1:20: requestBufferSize must be between 0 and 16777216, got -1\n");
    fails("requestBufferSize: 64k\nbackends: [http://127.0.0.1:8081/]\n",
          "t.yaml:1:20: requestBufferSize must be a decimal integer, got \"64k\"\n");
}
