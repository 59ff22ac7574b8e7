/* livy_validate: parses and checks request bodies field by field (POST /sessions, /batches,
 * statements, completion), as Livy does: wrong types and unknown fields are 400s naming the field.
 * Pure code with no I/O, so it can be fuzzed. */
#ifndef LIVY_VALIDATE_H
#define LIVY_VALIDATE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>
#include <stdint.h>

/* The Spark settings sessions and batches share, checked the same way for both. */
typedef struct {
    const char *proxy_user;      /* NULL when not given */
    const char *name;
    const char *driver_memory;
    const char *executor_memory;
    const char *queue;
    int driver_cores, executor_cores, num_executors;
    /* Owned by the pool: conf is an object of strings, the lists arrays of strings. */
    json_t *conf, *jars, *py_files, *files, *archives;
} livy_spark_req_t;

typedef struct {
    const char *kind;            /* canonical: spark, pyspark, sparkr, sql, shared */
    livy_spark_req_t spark;
    const char *ttl;             /* as written; ttl_ms parsed, -1 when unset */
    const char *idle_timeout;
    int64_t ttl_ms;
    int64_t idle_timeout_ms;
    int heartbeat_timeout;
} livy_session_req_t;

/* POST /batches: spark-submit of `file` with its arguments. */
typedef struct {
    const char *file;            /* required */
    const char *class_name;      /* NULL when not given */
    json_t *args;                /* an array of strings, owned by the pool */
    livy_spark_req_t spark;
} livy_batch_req_t;

typedef struct {
    const char *code;
    const char *kind;            /* canonical, or NULL when not given */
} livy_statement_req_t;

typedef struct {
    const char *code;
    const char *kind;            /* canonical, or NULL */
    int64_t cursor;              /* -1 when not given */
} livy_completion_req_t;

typedef struct {
    /* conf keys only the operator may set (const char *), e.g. spark.master */
    const apr_array_header_t *blocked_conf;
    /* the largest statement `code` accepted, in bytes; 0 = no limit beyond the body limit */
    apr_size_t max_code_bytes;
    /* where a batch's local files may lie (const char *, canonical: livy_paths_dir_check);
     * NULL or empty: nowhere, only remote URIs are accepted */
    const apr_array_header_t *batch_allowed_paths;
} livy_validate_opts_t;

/* Canonical name of a session or statement kind ("python" → "pyspark"), NULL when unknown.
 * `shared` is a session kind only: pass allow_shared = 0 for statements. */
const char *livy_kind_canonical(const char *kind, int allow_shared);

/* Each returns 0, or -1 with *errmsg set to a message naming the problem (allocated in p). */
int livy_validate_session_create(const char *body, size_t len, const livy_validate_opts_t *opts,
                                 apr_pool_t *p, livy_session_req_t *out, const char **errmsg);
int livy_validate_batch_create(const char *body, size_t len, const livy_validate_opts_t *opts,
                               apr_pool_t *p, livy_batch_req_t *out, const char **errmsg);
int livy_validate_statement_create(const char *body, size_t len,
                                   const livy_validate_opts_t *opts, apr_pool_t *p,
                                   livy_statement_req_t *out, const char **errmsg);
int livy_validate_completion(const char *body, size_t len, apr_pool_t *p,
                             livy_completion_req_t *out, const char **errmsg);

/* A body that may be empty or `{}` and nothing else (cancel, connect, stop). */
int livy_validate_empty_object(const char *body, size_t len, apr_pool_t *p, const char **errmsg);

#endif
