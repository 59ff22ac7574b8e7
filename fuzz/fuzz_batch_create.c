/* libFuzzer target: the POST /batches validator and the path rule under it. Accepted requests
 * must hold a file, lists of strings, string-valued conf without blocked keys, and no local path
 * outside the allowed directory (as written or %-decoded). */
#include "fuzz_common.h"
#include "livy_json.h"
#include "livy_paths.h"
#include "livy_validate.h"

#include <assert.h>

/* A plain local path the validator let through lies in /opt/jobs and climbs nowhere, checked
 * here without the engine's code: repeated slashes collapsed, then a plain prefix test. */
static void assert_entry_allowed(const char *entry, const apr_array_header_t *dirs,
                                 apr_pool_t *p)
{
    const char *why;
    assert(livy_paths_entry_check(entry, dirs, p, &why) == 0);
    if (entry[0] != '/' || strpbrk(entry, "#%"))
        return;
    char *flat = apr_palloc(p, strlen(entry) + 2), *o = flat;
    for (const char *c = entry; *c; c++)
        if (*c != '/' || o == flat || o[-1] != '/')
            *o++ = *c;
    if (o > flat + 1 && o[-1] == '/')
        o--;
    *o++ = '/';
    *o = '\0';
    assert(!strncmp(flat, "/opt/jobs/", 10));
    assert(!strstr(flat, "/../") && !strstr(flat, "/./"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_pool_create(&p, fuzz_root);
    static const char *blocked_keys[] = {"spark.master", "spark.submit.deployMode"};
    static const char *allowed_dirs[] = {"/opt/jobs"};
    apr_array_header_t blocked = {.pool = p, .elt_size = sizeof(char *), .nelts = 2,
                                  .nalloc = 2, .elts = (char *)blocked_keys};
    apr_array_header_t dirs = {.pool = p, .elt_size = sizeof(char *), .nelts = 1,
                               .nalloc = 1, .elts = (char *)allowed_dirs};
    livy_validate_opts_t opts = {.blocked_conf = &blocked, .batch_allowed_paths = &dirs};
    livy_batch_req_t req;
    const char *err = NULL;
    if (livy_validate_batch_create((const char *)data, size, &opts, p, &req, &err) == 0) {
        assert(req.file && *req.file);
        assert(!req.class_name || *req.class_name);
        assert_entry_allowed(req.file, &dirs, p);
        const char *key;
        json_t *v;
        json_object_foreach(req.spark.conf, key, v) {
            assert(json_is_string(v));
            assert(strcmp(key, "spark.master") != 0);
        }
        json_t *lists[] = {req.args, req.spark.jars, req.spark.py_files, req.spark.files,
                           req.spark.archives};
        for (int i = 0; i < 5; i++) {
            size_t j;
            json_array_foreach(lists[i], j, v) assert(json_is_string(v));
        }
        const char *name = req.spark.name;
        if (name)
            assert(*name && strspn(name, "0123456789") < strlen(name));
        assert(livy_json_dump(p, req.args, NULL) != NULL);
    } else {
        assert(err != NULL && *err);
        assert(livy_json_msg(p, err, NULL) != NULL);
    }
    /* the path rule alone, on the input as one entry */
    const char *why = NULL;
    char *entry = fuzz_cstring(p, data, size);
    if (livy_paths_entry_check(entry, &dirs, p, &why) != 0)
        assert(why && *why);
    apr_pool_destroy(p);
    return 0;
}
