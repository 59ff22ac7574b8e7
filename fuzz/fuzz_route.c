/* libFuzzer target: the route parser (any path, any method). */
#include "fuzz_common.h"
#include "livy_route.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_pool_create(&p, fuzz_root);
    char *path = fuzz_cstring(p, data, size);
    livy_route_t r;
    livy_route_parse(path, p, &r);
    if (r.route != LIVY_ROUTE_NONE) {
        assert(r.allowed != 0);
        assert(livy_route_allow_header(r.allowed) != NULL);
    }
    if (r.session_ref)
        assert(r.session_id == livy_parse_id(r.session_ref));
    livy_method_from_name(path);
    apr_pool_destroy(p);
    return 0;
}
