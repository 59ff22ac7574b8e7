/* livy_store: the API's SQL. Every query is a named prepared statement, prepared once per
 * connection on first use; parameters only, never SQL built from request text. */
#ifndef LIVY_STORE_H
#define LIVY_STORE_H

#include <apr_pools.h>
#include <libpq-fe.h>

typedef enum {
    Q_VERSION = 0,
    Q_SESSION_BY_ID,
    Q_SESSION_STATEMENT,
    Q_SESSION_BY_NAME,
    Q_SESSIONS_PAGE,
    Q_SESSION_INSERT,
    Q_SESSION_DELETE,
    Q_SESSION_STOP,
    Q_SESSION_HEARTBEAT,
    Q_SESSION_ACTIVITY,
    Q_STATEMENT_INSERT,
    Q_STATEMENT_GET,
    Q_STATEMENTS_ASC,
    Q_STATEMENTS_DESC,
    Q_STATEMENT_CANCEL,
    Q_SESSION_COUNTS,
    Q_LOG_TOTAL,
    Q_LOG_PAGE,
    Q_BATCH_BY_ID,
    Q_BATCH_BY_NAME,
    Q_BATCHES_PAGE,
    Q_BATCH_INSERT,
    Q_BATCH_DELETE,
    Q_BATCH_LOG_TOTAL,
    Q_BATCH_LOG_PAGE,
    Q_METRICS,
    Q_WEBUI_SUPERVISORS,
    Q_WEBUI_SESSION_TIMES,
    Q_COMPLETION_INSERT,
    Q_COMPLETION_TAKE,
    Q_COMPLETION_DROP,
    Q__COUNT
} livy_query_e;

/* A pooled connection: the libpq handle and what has been prepared on it. */
typedef struct {
    PGconn *pg;
    unsigned long long prepared; /* bit i: query i is prepared */
    int schema_ok;               /* the schema version has been checked on this connection */
} livy_conn_t;

/* Columns of the session queries, in this order (views read them by index). */
enum {
    SC_ID = 0, SC_NAME, SC_APP_ID, SC_OWNER, SC_PROXY_USER, SC_STATE, SC_KIND,
    SC_DRIVER_LOG_URL, SC_SPARK_UI_URL, SC_TTL, SC_IDLE_TIMEOUT, SC_DRIVER_MEMORY,
    SC_DRIVER_CORES, SC_EXECUTOR_MEMORY, SC_EXECUTOR_CORES, SC_CONF, SC_ARCHIVES, SC_FILES,
    SC_HEARTBEAT, SC_JARS, SC_NUM_EXECUTORS, SC_PY_FILES, SC_QUEUE, SC_LOG, SC_ENDED,
    SC_NEXT_STATEMENT, SC_HEARTBEAT_DUE, SC__COUNT
};

/* Columns of the batch queries, in this order (views read them by index). */
enum {
    BC_ID = 0, BC_NAME, BC_OWNER, BC_PROXY_USER, BC_STATE, BC_APP_ID, BC_DRIVER_LOG_URL, BC_LOG,
    BC__COUNT
};

/* Columns of Q_WEBUI_SUPERVISORS (the web UI's supervisors page). */
enum {
    SV_ID = 0, SV_HOST, SV_PID, SV_CAPACITY, SV_STARTED, SV_HEARTBEAT, SV_HEARTBEAT_AGE,
    SV_STOPPED, SV_SESSIONS, SV_BATCHES, SV_NOW, SV__COUNT
};

/* Columns of the statement queries. */
enum { ST_ID = 0, ST_CODE, ST_STATE, ST_OUTPUT, ST_PROGRESS, ST_STARTED, ST_COMPLETED };

/* Runs prepared query q with text parameters (NULL = SQL NULL). Prepares it on first use.
 * Returns the result (caller PQclear()s it) or NULL when preparing failed; check the status. */
PGresult *livy_store_exec(livy_conn_t *c, livy_query_e q, int nparams, const char *const *params);

/* SQLSTATE of a failed result, or "" */
const char *livy_store_sqlstate(const PGresult *res);

#endif
