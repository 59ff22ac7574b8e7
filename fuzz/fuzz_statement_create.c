/* libFuzzer target: the POST /sessions/{id}/statements, completion and empty-body validators. */
#include "fuzz_common.h"
#include "livy_validate.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_pool_create(&p, fuzz_root);
    livy_validate_opts_t opts = {.max_code_bytes = 4096};
    livy_statement_req_t st;
    const char *err = NULL;
    if (livy_validate_statement_create((const char *)data, size, &opts, p, &st, &err) == 0) {
        assert(st.code != NULL && strlen(st.code) <= 4096);
        assert(!st.kind || livy_kind_canonical(st.kind, 0) != NULL);
    } else {
        assert(err != NULL);
    }
    livy_completion_req_t cr;
    if (livy_validate_completion((const char *)data, size, p, &cr, &err) == 0)
        assert(cr.code && cr.kind);
    livy_validate_empty_object((const char *)data, size, p, &err);
    apr_pool_destroy(p);
    return 0;
}
