/* fuzz_support.h — what the HTTP/1 libFuzzer targets (fuzz_request.c, fuzz_response.c,
 * fuzz_chunked.c) share: the entry point's prototype, CHECK (a failed invariant traps, so
 * libFuzzer reports it with the input), exact-size heap copies (so ASan sees any read past the
 * end), and the split points derived from the input for the prefix-then-whole comparisons. */
#ifndef GOLB_FUZZ_SUPPORT_H
#define GOLB_FUZZ_SUPPORT_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* A heap copy of exactly n bytes (one byte allocated for n = 0); the caller frees it. */
static inline char *fuzz_dup(const void *p, size_t n)
{
    char *copy = malloc(n ? n : 1);
    CHECK(copy);
    memcpy(copy, p, n);
    return copy;
}

/* Where to cut an input of `size` bytes into a prefix: the middle, a point chosen by the input's
 * last bytes, and one byte short of the end. */
#define FUZZ_NSPLITS 3

static inline void fuzz_splits(const uint8_t *data, size_t size, size_t out[FUZZ_NSPLITS])
{
    size_t seed = 0;
    for (size_t i = 0; i < size && i < 16; i++)
        seed = seed * 131 + data[size - 1 - i];
    out[0] = size / 2;
    out[1] = size ? seed % size : 0;
    out[2] = size ? size - 1 : 0;
}

#endif
