/* Shared setup for the libFuzzer targets: APR initialised once, a pool per input. */
#ifndef LIVY_FUZZ_COMMON_H
#define LIVY_FUZZ_COMMON_H

#include <apr_general.h>
#include <apr_pools.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static apr_pool_t *fuzz_root;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    apr_pool_create(&fuzz_root, NULL);
    return 0;
}

/* The input as a NUL-terminated string (inputs may hold NULs: the string stops at the first). */
static char *fuzz_cstring(apr_pool_t *p, const uint8_t *data, size_t size)
{
    char *s = apr_palloc(p, size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
