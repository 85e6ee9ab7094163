/* SPDX-License-Identifier: MIT */
/* What every libFuzzer target here shares: the entry points (replay.c
 * calls them too), a CHECK that aborts with the failing condition, and a
 * reader that takes the input a byte at a time (0 once it is used up). */
#ifndef TH_FUZZ_H
#define TH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: check failed at line %d: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct th_input {
    const uint8_t *p;
    size_t left;
};

static inline unsigned th_next(struct th_input *in)
{
    if (!in->left)
        return 0;
    in->left--;
    return *in->p++;
}

#endif /* TH_FUZZ_H */
