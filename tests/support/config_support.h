/* config_support.h — what the Criterion tests of config/ share: loading a YAML text as "t.yaml"
 * and checking the messages it writes (errors and warnings, "FILE:LINE:COL: ..." lines) against
 * the exact text. Header-only; every function is static inline, so a test file pays nothing for
 * the ones it does not use. Include it after <criterion/criterion.h>. */
#ifndef GOLB_TESTS_CONFIG_SUPPORT_H
#define GOLB_TESTS_CONFIG_SUPPORT_H

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

/* Loads `yaml` as "t.yaml"; returns the rc and what was written to errs (caller frees). */
static inline int load(const char *yaml, struct config **cfg, char **errs)
{
    size_t len = 0;
    FILE *f = open_memstream(errs, &len);
    cr_assert_not_null(f);
    int rc = config_load_buffer("t.yaml", yaml, strlen(yaml), f, cfg);
    fclose(f);
    return rc;
}

/* A config that must load without any message. */
static inline struct config *load_ok(const char *yaml)
{
    struct config *cfg = NULL;
    char *errs = NULL;
    int rc = load(yaml, &cfg, &errs);
    cr_assert_eq(rc, 0, "load failed for:\n%s\nmessages:\n%s", yaml, errs);
    cr_assert_str_eq(errs, "", "unexpected messages for:\n%s", yaml);
    cr_assert_not_null(cfg);
    free(errs);
    return cfg;
}

/* A config that must load, with exactly `want` (warnings) on errs. */
static inline struct config *load_warn(const char *yaml, const char *want)
{
    struct config *cfg = NULL;
    char *errs = NULL;
    int rc = load(yaml, &cfg, &errs);
    cr_assert_eq(rc, 0, "load failed for:\n%s\nmessages:\n%s", yaml, errs);
    cr_expect_str_eq(errs, want, "for input:\n%s\ngot:\n%s\nwant:\n%s", yaml, errs, want);
    free(errs);
    return cfg;
}

/* A config that must fail, leaving *cfg NULL, with exactly `want` on errs. */
static inline void expect_fail(const char *yaml, const char *want)
{
    struct config *cfg = (struct config *)1;
    char *errs = NULL;
    int rc = load(yaml, &cfg, &errs);
    cr_expect_eq(rc, -1, "expected failure for:\n%s", yaml);
    cr_expect_null(cfg, "cfg must be NULL on failure");
    cr_expect_str_eq(errs, want, "for input:\n%s\ngot:\n%s\nwant:\n%s", yaml, errs, want);
    free(errs);
    if (rc == 0)
        config_free(cfg);
}

struct error_case {
    const char *yaml;
    const char *want;
};

static inline void expect_all(const struct error_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_fail(cases[i].yaml, cases[i].want);
}

#endif
