/* livy_json: jansson values owned by APR pools, and the small helpers the views share. */
#include "livy_json.h"

#include <apr_strings.h>
#include <string.h>

static apr_status_t json_release(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *livy_json_own(apr_pool_t *p, json_t *j)
{
    if (j)
        apr_pool_cleanup_register(p, j, json_release, apr_pool_cleanup_null);
    return j;
}

char *livy_json_dump(apr_pool_t *p, const json_t *j, size_t *len)
{
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *buf = apr_palloc(p, n + 1);
    json_dumpb(j, buf, n, JSON_COMPACT | JSON_PRESERVE_ORDER);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *livy_json_msg(apr_pool_t *p, const char *msg, size_t *len)
{
    json_t *o = livy_json_own(p, json_object());
    json_object_set_new(o, "msg", json_string(msg));
    return livy_json_dump(p, o, len);
}

json_t *livy_json_string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *livy_json_parse_stored(const char *text, json_t *fallback)
{
    if (!text) {
        return fallback;
    }
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!j)
        return fallback;
    json_decref(fallback);
    return j;
}
