/* livy_metrics: GET <mount>/metrics, the Prometheus text exposition (format 0.0.4) of what the
 * session database holds (sessions, statements, batches, their durations, supervisors: the
 * same from every node), and of this httpd's own counters (requests, their durations, the
 * connection pools: shared memory of its processes, livy_metrics_http_t). Read from the
 * store's one metrics query and the counters into a plain struct, then rendered; no I/O. */
#ifndef LIVY_METRICS_H
#define LIVY_METRICS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "livy_route.h"

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
    int64_t batches;       /* live batches it runs */
    int64_t warm_ready;    /* warm REPLs ready for a session to take (warm_sessions) */
    int64_t warm_starting; /* ... and on their way up */
} livy_metrics_supervisor_t;

/* Bounds (seconds) of livy_session_start_duration_seconds: from create to the first idle. */
extern const double livy_metrics_start_bounds[];
#define LIVY_METRICS_START_BUCKETS 9

/* ---- this httpd's counters ----
 * The families of routes requests are counted by (the route label). */
typedef enum {
    LIVY_MF_OTHER = 0, /* unknown paths, and requests answered before routing */
    LIVY_MF_VERSION,
    LIVY_MF_SESSIONS,
    LIVY_MF_SESSION,
    LIVY_MF_STATEMENTS,
    LIVY_MF_COMPLETION,
    LIVY_MF_LOG,
    LIVY_MF_SPARK_UI,
    LIVY_MF_BATCHES,
    LIVY_MF_BATCH,
    LIVY_MF_METRICS,
    LIVY_MF_WEBUI,     /* the web UI's files and its own JSON */
    LIVY_MF_OPENAPI,
    LIVY_MF__COUNT
} livy_metrics_family_e;

/* The family of a route (livy_route_e). */
livy_metrics_family_e livy_metrics_family(int route);
const char *livy_metrics_family_name(livy_metrics_family_e f);

/* Status codes counted one by one; any other is counted in the last slot, "other". */
#define LIVY_METRICS_STATUS_SLOTS 19
int livy_metrics_status_slot(int status);

/* Bounds (seconds) of livy_http_request_duration_seconds. */
extern const double livy_metrics_request_bounds[];
#define LIVY_METRICS_REQUEST_BUCKETS 11

/* Counters of one httpd (all its processes): the layout of its shared memory, and a snapshot
 * of it. Buckets are not cumulative here (each request counts in the first that holds it). */
typedef struct {
    uint64_t requests[LIVY_MF__COUNT][LIVY_METRICS_STATUS_SLOTS];
    uint64_t duration_bucket[LIVY_MF__COUNT][LIVY_METRICS_REQUEST_BUCKETS];
    uint64_t duration_count[LIVY_MF__COUNT];
    uint64_t duration_sum_us[LIVY_MF__COUNT];
    int64_t pool_open;          /* connections open (or being opened) in every process */
    int64_t pool_in_use;        /* ... of which borrowed by a request */
    uint64_t pool_waits;        /* acquires that had to wait for a connection */
    uint64_t pool_timeouts;     /* ... that gave up (503) */
    uint64_t pool_connects;     /* connections opened */
    uint64_t pool_connect_failures;
} livy_metrics_http_t;

/* Counts one request (duration in microseconds) into h. Not atomic: the module does its own
 * atomic updates on shared memory; this is for snapshots and tests. */
void livy_metrics_http_count(livy_metrics_http_t *h, livy_metrics_family_e f, int status,
                             int64_t duration_us);

typedef struct {
    apr_array_header_t *sessions;    /* of livy_metrics_session_t */
    apr_array_header_t *statements;  /* of livy_metrics_statement_t */
    apr_array_header_t *supervisors; /* of livy_metrics_supervisor_t */
    /* completed statements whose duration is at most each bound (cumulative, as Prometheus
     * buckets are), their number and the sum of their durations in seconds */
    int64_t duration_le[LIVY_METRICS_DURATION_BUCKETS];
    int64_t duration_count;
    double duration_sum;
    apr_array_header_t *batches;     /* of livy_metrics_statement_t: batches by state */
    /* sessions' start durations (created to first idle), as the statements' above */
    int64_t start_le[LIVY_METRICS_START_BUCKETS];
    int64_t start_count;
    double start_sum;
    const livy_metrics_http_t *http; /* this httpd's counters; NULL: not rendered */
    const char *version;             /* mod_livy's version */
    int schema_version;              /* the database's applied schema version */
} livy_metrics_t;

/* Empty metrics (no sessions, statements or supervisors) with arrays allocated in p. */
void livy_metrics_init(livy_metrics_t *m, const char *version, apr_pool_t *p);

/* The bucket bounds as a PostgreSQL float8[] literal, "{0.01,0.05,...}", allocated in p. */
const char *livy_metrics_bounds_param(apr_pool_t *p);
/* The same for the session start histogram. */
const char *livy_metrics_start_bounds_param(apr_pool_t *p);

/* Columns of the metrics query: each row is one fact, named by its first column. */
enum { MC_FACT = 0, MC_A, MC_B, MC_N1, MC_N2, MC_N3, MC_N4, MC__COUNT };

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
