/* livy_validate: request bodies checked field by field, as Livy does; fuzzable. */
#include "livy_validate.h"
#include "livy_json.h"
#include "livy_params.h"
#include "livy_paths.h"

#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVY_NAME_MAX 1024    /* names are indexed; PostgreSQL caps an index entry near 2.7 kB */
#define INT_FIELD_MAX 1000000 /* cores, executors, heartbeat seconds: beyond this is a typo */

const char *livy_kind_canonical(const char *kind, int allow_shared)
{
    static const struct { const char *alias, *canonical; } kinds[] = {
        {"spark", "spark"}, {"scala", "spark"}, {"pyspark", "pyspark"}, {"python", "pyspark"},
        {"sparkr", "sparkr"}, {"r", "sparkr"}, {"sql", "sql"}, {"shared", "shared"},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (!strcmp(kind, kinds[i].alias)) {
            if (!allow_shared && !strcmp(kinds[i].canonical, "shared"))
                return NULL;
            return kinds[i].canonical;
        }
    }
    return NULL;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Parses body as one JSON object (duplicate keys rejected). Empty body: NULL with a message. */
static json_t *parse_object(const char *body, size_t len, int empty_ok, apr_pool_t *p,
                            const char **errmsg)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) {
        if (empty_ok)
            return livy_json_own(p, json_object());
        *errmsg = "The request body is empty: send a JSON object ({} for the defaults).";
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!root) {
        *errmsg = apr_psprintf(p, "The request body is not valid JSON: %s (at line %d, column %d).",
                               err.text, err.line, err.column);
        return NULL;
    }
    livy_json_own(p, root);
    if (!json_is_object(root)) {
        *errmsg = apr_psprintf(p, "The request body must be a JSON object, not %s.",
                               type_name(root));
        return NULL;
    }
    return root;
}

static int want_string(json_t *v, const char *field, const char **out, apr_pool_t *p,
                       const char **errmsg)
{
    if (json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v)) {
        *errmsg = apr_psprintf(p, "Field '%s' must be a string, not %s.", field, type_name(v));
        return -1;
    }
    *out = apr_pstrmemdup(p, json_string_value(v), json_string_length(v));
    return 0;
}

static int want_int(json_t *v, const char *field, int *out, apr_pool_t *p, const char **errmsg)
{
    if (json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v)) {
        *errmsg = apr_psprintf(p, "Field '%s' must be an integer, not %s.", field, type_name(v));
        return -1;
    }
    json_int_t n = json_integer_value(v);
    if (n < 0 || n > INT_FIELD_MAX) {
        *errmsg = apr_psprintf(p, "Field '%s' must be between 0 and %d, got %" APR_INT64_T_FMT ".",
                               field, INT_FIELD_MAX, (apr_int64_t)n);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static int want_string_list(json_t *v, const char *field, json_t **out, apr_pool_t *p,
                            const char **errmsg)
{
    if (json_is_null(v)) {
        *out = livy_json_own(p, json_array());
        return 0;
    }
    if (!json_is_array(v)) {
        *errmsg = apr_psprintf(p, "Field '%s' must be a list of strings, not %s.", field,
                               type_name(v));
        return -1;
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        if (!json_is_string(item)) {
            *errmsg = apr_psprintf(p, "Field '%s' must be a list of strings; item %" APR_SIZE_T_FMT " is %s.",
                                   field, i, type_name(item));
            return -1;
        }
    }
    *out = v;
    return 0;
}

static int is_blocked(const livy_validate_opts_t *opts, const char *key)
{
    if (!opts || !opts->blocked_conf)
        return 0;
    for (int i = 0; i < opts->blocked_conf->nelts; i++)
        if (!strcmp(APR_ARRAY_IDX(opts->blocked_conf, i, const char *), key))
            return 1;
    return 0;
}

/* The shortest decimal text that reads back as d (0.6 → "0.6", not 0.59999999999999998). C's
 * printf, not APR's, whose %g differs. */
static const char *shortest_double(apr_pool_t *p, double d)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return apr_pstrdup(p, buf);
}

/* conf: an object whose values are strings, numbers or booleans, coerced to strings. */
static int want_conf(json_t *v, const livy_validate_opts_t *opts, const char *noun, json_t **out,
                     apr_pool_t *p, const char **errmsg)
{
    json_t *conf = livy_json_own(p, json_object());
    *out = conf;
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        *errmsg = apr_psprintf(p, "Field 'conf' must be an object of strings, not %s.",
                               type_name(v));
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (is_blocked(opts, key)) {
            *errmsg = apr_psprintf(p, "Configuration '%s' is set by the server and cannot be "
                                   "changed by a %s.", key, noun);
            return -1;
        }
        if (!*key) {
            *errmsg = "Field 'conf' has an empty key.";
            return -1;
        }
        switch (json_typeof(val)) {
        case JSON_STRING:
            json_object_set(conf, key, val);
            break;
        case JSON_INTEGER:
            json_object_set_new(conf, key, json_string(apr_psprintf(p, "%" APR_INT64_T_FMT,
                                                        (apr_int64_t)json_integer_value(val))));
            break;
        case JSON_REAL:
            json_object_set_new(conf, key, json_string(shortest_double(p, json_real_value(val))));
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            json_object_set_new(conf, key, json_string(json_is_true(val) ? "true" : "false"));
            break;
        default:
            *errmsg = apr_psprintf(p, "Configuration '%s' must be a string, number or boolean, "
                                   "not %s.", key, type_name(val));
            return -1;
        }
    }
    return 0;
}

static int want_duration(json_t *v, const char *field, const char **text, int64_t *ms,
                         apr_pool_t *p, const char **errmsg)
{
    *ms = -1;
    if (want_string(v, field, text, p, errmsg) != 0)
        return -1;
    if (*text && livy_parse_duration_ms(*text, ms) != 0) {
        *errmsg = apr_psprintf(p, "Field '%s' must be a duration such as \"500ms\", \"30s\", "
                               "\"10m\", \"1h\" or \"2d\", got \"%s\".", field, *text);
        return -1;
    }
    return 0;
}

/* A name's rules: set (not empty), not all digits (it would read as an id in a URL), bounded,
 * and without '/'. noun: "session" or "batch". */
static int name_is_valid(const char *name, const char *noun, apr_pool_t *p, const char **errmsg)
{
    if (!*name) {
        *errmsg = "Field 'name' must not be empty.";
        return 0;
    }
    const char *c = name;
    while (*c >= '0' && *c <= '9')
        c++;
    if (!*c) {
        *errmsg = apr_psprintf(p, "%c%s name '%s' is all digits, which would read as a %s id: "
                               "choose a name with a letter in it.", noun[0] - 'a' + 'A',
                               noun + 1, name, noun);
        return 0;
    }
    if (strlen(name) > LIVY_NAME_MAX) {
        *errmsg = apr_psprintf(p, "Field 'name' is %" APR_SIZE_T_FMT " bytes long; the limit is %d.", strlen(name),
                               LIVY_NAME_MAX);
        return 0;
    }
    if (strchr(name, '/')) {
        *errmsg = "Field 'name' must not contain '/': names are used in URLs.";
        return 0;
    }
    return 1;
}

static void spark_defaults(livy_spark_req_t *out, apr_pool_t *p)
{
    memset(out, 0, sizeof *out);
    out->conf = livy_json_own(p, json_object());
    out->jars = livy_json_own(p, json_array());
    out->py_files = livy_json_own(p, json_array());
    out->files = livy_json_own(p, json_array());
    out->archives = livy_json_own(p, json_array());
}

/* One of the Spark settings sessions and batches share. Returns 0 when key is one and its value
 * is good, -1 (with *errmsg) when it is not, 1 when key is not one of them. */
static int want_spark_field(const char *key, json_t *v, const livy_validate_opts_t *opts,
                            const char *noun, livy_spark_req_t *out, apr_pool_t *p,
                            const char **errmsg)
{
    if (!strcmp(key, "proxyUser"))
        return want_string(v, key, &out->proxy_user, p, errmsg);
    if (!strcmp(key, "name")) {
        if (want_string(v, key, &out->name, p, errmsg) != 0)
            return -1;
        return out->name && !name_is_valid(out->name, noun, p, errmsg) ? -1 : 0;
    }
    if (!strcmp(key, "driverMemory"))
        return want_string(v, key, &out->driver_memory, p, errmsg);
    if (!strcmp(key, "executorMemory"))
        return want_string(v, key, &out->executor_memory, p, errmsg);
    if (!strcmp(key, "queue"))
        return want_string(v, key, &out->queue, p, errmsg);
    if (!strcmp(key, "driverCores"))
        return want_int(v, key, &out->driver_cores, p, errmsg);
    if (!strcmp(key, "executorCores"))
        return want_int(v, key, &out->executor_cores, p, errmsg);
    if (!strcmp(key, "numExecutors"))
        return want_int(v, key, &out->num_executors, p, errmsg);
    if (!strcmp(key, "jars"))
        return want_string_list(v, key, &out->jars, p, errmsg);
    if (!strcmp(key, "pyFiles"))
        return want_string_list(v, key, &out->py_files, p, errmsg);
    if (!strcmp(key, "files"))
        return want_string_list(v, key, &out->files, p, errmsg);
    if (!strcmp(key, "archives"))
        return want_string_list(v, key, &out->archives, p, errmsg);
    if (!strcmp(key, "conf"))
        return want_conf(v, opts, noun, &out->conf, p, errmsg);
    return 1;
}

/* A create request's fields besides the shared Spark settings, with want_spark_field's
 * returns. */
typedef int (*own_field_fn)(const char *key, json_t *v, void *out, apr_pool_t *p,
                            const char **errmsg);

/* Parses a create request (POST /sessions or /batches) into spark and, through own, the
 * request's own fields; any other field is unknown, as in Livy. */
static int validate_create(const char *body, size_t len, const livy_validate_opts_t *opts,
                           const char *noun, livy_spark_req_t *spark, own_field_fn own,
                           void *out, apr_pool_t *p, const char **errmsg)
{
    spark_defaults(spark, p);
    json_t *root = parse_object(body, len, 0, p, errmsg);
    if (!root)
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        int rc = want_spark_field(key, v, opts, noun, spark, p, errmsg);
        if (rc == 1)
            rc = own(key, v, out, p, errmsg);
        if (rc == 1) {
            *errmsg = apr_psprintf(p, "Unknown field '%s' in the %s request.", key, noun);
            rc = -1;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int session_field(const char *key, json_t *v, void *outv, apr_pool_t *p,
                         const char **errmsg)
{
    livy_session_req_t *out = outv;
    if (!strcmp(key, "kind")) {
        const char *kind;
        if (want_string(v, key, &kind, p, errmsg) != 0)
            return -1;
        if (kind && !(out->kind = livy_kind_canonical(kind, 1))) {
            *errmsg = apr_psprintf(p, "Unknown session kind '%s': use spark, pyspark, sparkr, "
                                   "sql or shared.", kind);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "heartbeatTimeoutInSecond"))
        return want_int(v, key, &out->heartbeat_timeout, p, errmsg);
    if (!strcmp(key, "ttl"))
        return want_duration(v, key, &out->ttl, &out->ttl_ms, p, errmsg);
    if (!strcmp(key, "idleTimeout"))
        return want_duration(v, key, &out->idle_timeout, &out->idle_timeout_ms, p, errmsg);
    return 1;
}

int livy_validate_session_create(const char *body, size_t len, const livy_validate_opts_t *opts,
                                 apr_pool_t *p, livy_session_req_t *out, const char **errmsg)
{
    memset(out, 0, sizeof *out);
    out->kind = "shared";
    out->ttl_ms = out->idle_timeout_ms = -1;
    return validate_create(body, len, opts, "session", &out->spark, session_field, out, p,
                           errmsg);
}

/* A string that must not be empty when given (spark-submit cannot use an empty one). */
static int want_nonempty_string(json_t *v, const char *field, const char **out, apr_pool_t *p,
                                const char **errmsg)
{
    if (want_string(v, field, out, p, errmsg) != 0)
        return -1;
    if (*out && !**out) {
        *errmsg = apr_psprintf(p, "Field '%s' must not be empty.", field);
        return -1;
    }
    return 0;
}

static int batch_field(const char *key, json_t *v, void *outv, apr_pool_t *p,
                       const char **errmsg)
{
    livy_batch_req_t *out = outv;
    if (!strcmp(key, "file"))
        return want_nonempty_string(v, key, &out->file, p, errmsg);
    if (!strcmp(key, "className"))
        return want_nonempty_string(v, key, &out->class_name, p, errmsg);
    if (!strcmp(key, "args"))
        return want_string_list(v, key, &out->args, p, errmsg);
    return 1;
}

/* Spark settings that carry the same comma-separated lists as a batch's fields: a conf entry
 * must not bring in what the field would refuse. */
static const char *const path_list_conf[] = {
    "spark.jars", "spark.submit.pyFiles", "spark.files", "spark.archives",
    "spark.yarn.dist.jars", "spark.yarn.dist.pyFiles", "spark.yarn.dist.files",
    "spark.yarn.dist.archives",
};

/* Checks each entry of text, a comma-separated list as spark-submit reads its --jars, --files
 * and the like (split on ',', each entry trimmed of blanks and control characters at its ends,
 * empty ones skipped). Returns the number of entries checked, or -1 with *errmsg naming what
 * (e.g. "Field 'jars'") and the entry refused. */
static int entries_ok(const char *what, const char *text, const livy_validate_opts_t *opts,
                      apr_pool_t *p, const char **errmsg)
{
    int n = 0;
    const char *c = text;
    while (*c) {
        size_t len = strcspn(c, ",");
        const char *start = c, *end = c + len;
        while (start < end && (unsigned char)*start <= ' ')
            start++;
        while (end > start && (unsigned char)end[-1] <= ' ')
            end--;
        if (end > start) {
            const char *entry = apr_pstrmemdup(p, start, (apr_size_t)(end - start)), *why;
            const apr_array_header_t *allowed = opts ? opts->batch_allowed_paths : NULL;
            if (livy_paths_entry_check(entry, allowed, p, &why) != 0) {
                *errmsg = apr_psprintf(p, "%s entry '%s' is refused: %s", what, entry, why);
                return -1;
            }
            n++;
        }
        c += len;
        if (*c == ',')
            c++;
    }
    return n;
}

/* Every file a batch names: where it may come from (livy_paths). */
static int batch_paths_ok(const livy_batch_req_t *b, const livy_validate_opts_t *opts,
                          apr_pool_t *p, const char **errmsg)
{
    const char *why;
    if (livy_paths_entry_check(b->file, opts ? opts->batch_allowed_paths : NULL, p, &why) != 0) {
        *errmsg = apr_psprintf(p, "Field 'file' entry '%s' is refused: %s", b->file, why);
        return 0;
    }
    const struct { const char *field; json_t *list; } lists[] = {
        {"jars", b->spark.jars}, {"pyFiles", b->spark.py_files}, {"files", b->spark.files},
        {"archives", b->spark.archives},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        const char *what = apr_psprintf(p, "Field '%s'", lists[i].field);
        size_t j;
        json_t *item;
        json_array_foreach(lists[i].list, j, item) {
            int n = entries_ok(what, json_string_value(item), opts, p, errmsg);
            if (n < 0)
                return 0;
            if (n == 0) {
                *errmsg = apr_psprintf(p, "Field '%s' item %" APR_SIZE_T_FMT " is empty.",
                                       lists[i].field, j);
                return 0;
            }
        }
    }
    for (size_t i = 0; i < sizeof path_list_conf / sizeof path_list_conf[0]; i++) {
        json_t *v = json_object_get(b->spark.conf, path_list_conf[i]);
        const char *what = apr_psprintf(p, "Configuration '%s'", path_list_conf[i]);
        if (v && entries_ok(what, json_string_value(v), opts, p, errmsg) < 0)
            return 0;
    }
    return 1;
}

int livy_validate_batch_create(const char *body, size_t len, const livy_validate_opts_t *opts,
                               apr_pool_t *p, livy_batch_req_t *out, const char **errmsg)
{
    memset(out, 0, sizeof *out);
    out->args = livy_json_own(p, json_array());
    if (validate_create(body, len, opts, "batch", &out->spark, batch_field, out, p, errmsg))
        return -1;
    if (!out->file) {
        *errmsg = "Field 'file' is required: the application to run (a jar or a Python file).";
        return -1;
    }
    return batch_paths_ok(out, opts, p, errmsg) ? 0 : -1;
}

/* `code`: a string, at most max_bytes long when max_bytes > 0. */
static int want_code(json_t *v, apr_size_t max_bytes, const char **out, apr_pool_t *p,
                     const char **errmsg)
{
    if (!json_is_string(v)) {
        *errmsg = apr_psprintf(p, "Field 'code' must be a string, not %s.", type_name(v));
        return -1;
    }
    if (max_bytes && json_string_length(v) > max_bytes) {
        *errmsg = apr_psprintf(p, "Field 'code' is %" APR_SIZE_T_FMT " bytes, over the limit of %"
                               APR_SIZE_T_FMT " bytes.", json_string_length(v), max_bytes);
        return -1;
    }
    *out = apr_pstrmemdup(p, json_string_value(v), json_string_length(v));
    return 0;
}

/* A statement's `kind`: canonical, or NULL when null. */
static int want_statement_kind(json_t *v, const char **out, apr_pool_t *p, const char **errmsg)
{
    const char *kind;
    if (want_string(v, "kind", &kind, p, errmsg) != 0)
        return -1;
    *out = NULL;
    if (kind && !(*out = livy_kind_canonical(kind, 0))) {
        *errmsg = apr_psprintf(p, "Unknown statement kind '%s': use spark, pyspark, sparkr or "
                               "sql.", kind);
        return -1;
    }
    return 0;
}

int livy_validate_statement_create(const char *body, size_t len,
                                   const livy_validate_opts_t *opts, apr_pool_t *p,
                                   livy_statement_req_t *out, const char **errmsg)
{
    memset(out, 0, sizeof *out);
    json_t *root = parse_object(body, len, 0, p, errmsg);
    if (!root)
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "code")) {
            if (want_code(v, opts ? opts->max_code_bytes : 0, &out->code, p, errmsg) != 0)
                return -1;
        } else if (!strcmp(key, "kind")) {
            if (want_statement_kind(v, &out->kind, p, errmsg) != 0)
                return -1;
        } else {
            *errmsg = apr_psprintf(p, "Unknown field '%s' in the statement request.", key);
            return -1;
        }
    }
    if (!out->code) {
        *errmsg = "Field 'code' is required.";
        return -1;
    }
    return 0;
}

int livy_validate_completion(const char *body, size_t len, apr_pool_t *p,
                             livy_completion_req_t *out, const char **errmsg)
{
    memset(out, 0, sizeof *out);
    out->cursor = -1;
    json_t *root = parse_object(body, len, 0, p, errmsg);
    if (!root)
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "code")) {
            if (want_code(v, 0, &out->code, p, errmsg) != 0)
                return -1;
        } else if (!strcmp(key, "kind")) {
            if (want_statement_kind(v, &out->kind, p, errmsg) != 0)
                return -1;
        } else if (!strcmp(key, "cursor")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                *errmsg = "Field 'cursor' must be a non-negative integer.";
                return -1;
            }
            out->cursor = json_integer_value(v);
        } else {
            *errmsg = apr_psprintf(p, "Unknown field '%s' in the completion request.", key);
            return -1;
        }
    }
    if (!out->code) {
        *errmsg = "Field 'code' is required.";
        return -1;
    }
    if (!out->kind) {
        *errmsg = "Field 'kind' is required.";
        return -1;
    }
    return 0;
}

int livy_validate_empty_object(const char *body, size_t len, apr_pool_t *p, const char **errmsg)
{
    json_t *root = parse_object(body, len, 1, p, errmsg);
    if (!root)
        return -1;
    if (json_object_size(root) != 0) {
        const char *key = json_object_iter_key(json_object_iter(root));
        *errmsg = apr_psprintf(p, "Unknown field '%s': this request takes no fields.", key);
        return -1;
    }
    return 0;
}
