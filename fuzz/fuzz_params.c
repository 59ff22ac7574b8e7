/* libFuzzer target: the query-string parser, integer parameters and durations. */
#include "fuzz_common.h"
#include "livy_params.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_pool_create(&p, fuzz_root);
    char *query = fuzz_cstring(p, data, size);
    const char *err = NULL;
    apr_table_t *t = livy_params_parse(query, p, &err);
    if (t) {
        int64_t v;
        if (livy_param_int(t, "from", 0, 0, &v, p, &err) == 0)
            assert(v >= 0 && v <= LIVY_PARAM_MAX);
        if (livy_param_int(t, "size", 100, -LIVY_PARAM_MAX, &v, p, &err) == 0)
            assert(v >= -LIVY_PARAM_MAX && v <= LIVY_PARAM_MAX);
    } else {
        assert(err != NULL);
    }
    int64_t ms;
    if (livy_parse_duration_ms(query, &ms) == 0)
        assert(ms >= 0);
    apr_pool_destroy(p);
    return 0;
}
