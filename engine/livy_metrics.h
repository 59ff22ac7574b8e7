/* livy_metrics: GET <mount>/metrics, the Prometheus text exposition (format 0.0.4) of what the
 * session database holds: sessions, statements, statement durations, supervisors. Read from
 * the store's one metrics query into a plain struct, then rendered; no I/O here. */
#ifndef LIVY_METRICS_H
#define LIVY_METRICS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <libpq-fe.h>
#include <stdint.h>

#define LIVY_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Upper bounds (seconds) of livy_statement_duration_seconds' buckets, ascending; +Inf is
 * implied. The metrics query receives them as its parameter (livy_metrics_bounds_param). */
extern const double livy_metrics_duration_bounds[];
#define LIVY_METRICS_DURATION_BUCKETS 9

typedef struct {
    const char *state, *kind;
    int64_t count;
} livy_metrics_session_t;

typedef struct {
    const char *state;
    int64_t count;
} livy_metrics_statement_t;

typedef struct {
    const char *id, *host;
    double heartbeat_age;  /* seconds since its last heartbeat, by the database's clock */
    int64_t capacity;
    int64_t sessions;      /* live sessions it holds */
} livy_metrics_supervisor_t;

typedef struct {
    apr_array_header_t *sessions;    /* of livy_metrics_session_t */
    apr_array_header_t *statements;  /* of livy_metrics_statement_t */
    apr_array_header_t *supervisors; /* of livy_metrics_supervisor_t */
    /* completed statements whose duration is at most each bound (cumulative, as Prometheus
     * buckets are), their number and the sum of their durations in seconds */
    int64_t duration_le[LIVY_METRICS_DURATION_BUCKETS];
    int64_t duration_count;
    double duration_sum;
    const char *version;             /* mod_livy's version */
    int schema_version;              /* the database's applied schema version */
} livy_metrics_t;

/* Empty metrics (no sessions, statements or supervisors) with arrays allocated in p. */
void livy_metrics_init(livy_metrics_t *m, const char *version, apr_pool_t *p);

/* The bucket bounds as a PostgreSQL float8[] literal, "{0.01,0.05,...}", allocated in p. */
const char *livy_metrics_bounds_param(apr_pool_t *p);

/* Columns of the metrics query: each row is one fact, named by its first column. */
enum { MC_FACT = 0, MC_A, MC_B, MC_N1, MC_N2, MC_N3, MC__COUNT };

/* Fills m (initialised by the caller) from the metrics query's result; strings are copied
 * into p. Returns 0, or -1 with *errmsg (in p) when the result is not of the expected shape. */
int livy_metrics_from_result(const PGresult *res, livy_metrics_t *m, apr_pool_t *p,
                             const char **errmsg);

/* The exposition text of m, with # HELP and # TYPE lines for every metric, allocated in p. */
char *livy_metrics_render(const livy_metrics_t *m, apr_pool_t *p, size_t *len);

/* A label value escaped for the exposition format: backslash, double quote and newline become
 * \\, \" and \n. Returns s itself when nothing needs escaping; "" for NULL. */
const char *livy_metrics_escape_label(const char *s, apr_pool_t *p);

#endif
