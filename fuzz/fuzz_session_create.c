/* libFuzzer target: the POST /sessions validator. Accepted requests must hold only canonical
 * kinds, string-valued conf without blocked keys, and lists of strings. */
#include "fuzz_common.h"
#include "livy_json.h"
#include "livy_validate.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_pool_create(&p, fuzz_root);
    static const char *blocked_keys[] = {"spark.master", "spark.submit.deployMode"};
    apr_array_header_t blocked = {.pool = p, .elt_size = sizeof(char *), .nelts = 2,
                                  .nalloc = 2, .elts = (char *)blocked_keys};
    livy_validate_opts_t opts = {.blocked_conf = &blocked};
    livy_session_req_t req;
    const char *err = NULL;
    if (livy_validate_session_create((const char *)data, size, &opts, p, &req, &err) == 0) {
        assert(livy_kind_canonical(req.kind, 1) != NULL);
        const char *key;
        json_t *v;
        json_object_foreach(req.spark.conf, key, v) {
            assert(json_is_string(v));
            assert(strcmp(key, "spark.master") != 0);
        }
        json_t *lists[] = {req.spark.jars, req.spark.py_files, req.spark.files,
                           req.spark.archives};
        for (int i = 0; i < 4; i++) {
            size_t j;
            json_array_foreach(lists[i], j, v) assert(json_is_string(v));
        }
        const char *name = req.spark.name;
        if (name)
            assert(*name && strspn(name, "0123456789") < strlen(name));
        /* what gets stored must serialise */
        assert(livy_json_dump(p, req.spark.conf, NULL) != NULL);
    } else {
        assert(err != NULL && *err);
        assert(livy_json_msg(p, err, NULL) != NULL);
    }
    apr_pool_destroy(p);
    return 0;
}
