/* unit_support.h — helpers several Criterion unit tests share: counting this process's open file
 * descriptors (leak checks), capturing what is written to fd 2 (the log), counting lines, and
 * polling one fd with a deadline. Header-only; every function is static inline, so a test file
 * pays nothing for the ones it does not use. Include it after <criterion/criterion.h>. */
#ifndef GOLB_TESTS_UNIT_SUPPORT_H
#define GOLB_TESTS_UNIT_SUPPORT_H

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/util.h"

/* How many descriptors this process has open (plus opendir's own, the same at every call). */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Polls fd for events until they show or timeout_ms passes; returns revents (0: timed out). */
static inline short wait_fd(int fd, short events, int timeout_ms)
{
    uint64_t deadline = util_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = util_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return p.revents;
        if (n == -1 && errno != EINTR)
            return 0;
    }
}

/* ---- capturing fd 2 (the log) into a memory file ---- */

struct capture {
    int saved;
    int memfd;
    char *text; /* what was written, NUL-terminated, after capture_end; capture_free frees it */
    size_t len;
};

static inline void capture_begin(struct capture *c)
{
    c->memfd = memfd_create("log", MFD_CLOEXEC);
    cr_assert_neq(c->memfd, -1);
    c->saved = dup(2);
    cr_assert_neq(c->saved, -1);
    /* fd 2 gets its own O_APPEND description of the memory file: concurrent writes then each
     * land at the end (a shared file offset without O_APPEND can lose writes to a race). */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", c->memfd);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    cr_assert_neq(fd, -1);
    cr_assert_neq(dup2(fd, 2), -1);
    close(fd);
    c->text = NULL;
    c->len = 0;
}

/* Puts fd 2 back and reads everything written since capture_begin, however long. */
static inline void capture_end(struct capture *c)
{
    cr_assert_neq(dup2(c->saved, 2), -1);
    close(c->saved);
    off_t size = lseek(c->memfd, 0, SEEK_END);
    cr_assert_geq(size, 0);
    c->text = malloc((size_t)size + 1);
    cr_assert_not_null(c->text);
    cr_assert_eq(pread(c->memfd, c->text, (size_t)size, 0), size);
    c->text[size] = '\0';
    c->len = (size_t)size;
    close(c->memfd);
}

static inline void capture_free(struct capture *c)
{
    free(c->text);
    c->text = NULL;
}

static inline size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

#endif
