/* livy_json: jansson values owned by APR pools, and the small helpers the views share. */
#include "livy_json.h"
#include "livy_params.h"

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

/* Copies s with every byte that is not part of well-formed UTF-8 replaced by U+FFFD, so that
 * messages echoing client input always serialise. */
static const char *utf8_sanitize(apr_pool_t *p, const char *s)
{
    if (livy_utf8_valid(s))
        return s;
    size_t n = strlen(s);
    char *out = apr_palloc(p, n * 3 + 1), *o = out;
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        size_t len = *u < 0x80 ? 1 : (*u & 0xE0) == 0xC0 ? 2 : (*u & 0xF0) == 0xE0 ? 3
                   : (*u & 0xF8) == 0xF0 ? 4 : 0;
        char one[5] = {0};
        int ok = len > 0;
        for (size_t i = 0; ok && i < len; i++) {
            if (!u[i] || (i > 0 && (u[i] & 0xC0) != 0x80))
                ok = 0;
            else
                one[i] = (char)u[i];
        }
        if (ok && livy_utf8_valid(one)) {
            memcpy(o, one, len);
            o += len;
            u += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            u += 1;
        }
    }
    *o = '\0';
    return out;
}

char *livy_json_msg(apr_pool_t *p, const char *msg, size_t *len)
{
    json_t *o = livy_json_own(p, json_object());
    json_object_set_new(o, "msg", json_string(utf8_sanitize(p, msg)));
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
