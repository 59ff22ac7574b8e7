/* livy_db: connecting to PostgreSQL, the schema version, and applying migrations. */
#ifndef LIVY_DB_H
#define LIVY_DB_H

#include <apr_pools.h>
#include <libpq-fe.h>

/* The schema version this build of the engine needs (the highest migration in sql/). */
#define LIVY_SCHEMA_VERSION 6

/* A common table expression that commits its statement's transaction without waiting for the
 * WAL to reach disk (synchronous_commit off for this transaction only; the setting is read at
 * commit). For writes whose loss in a database crash costs nothing: heartbeats, activity
 * times, progress. Never for what a client was told happened (statements, results, states).
 * Name it in the UPDATE's FROM list so that it runs. */
#define LIVY_SQL_ASYNC_COMMIT \
    "async_commit AS (SELECT set_config('synchronous_commit', 'off', true) AS off)"

/* Connects with `conninfo`; on failure returns NULL and sets *errmsg (allocated in p). */
PGconn *livy_db_connect(const char *conninfo, apr_pool_t *p, const char **errmsg);

/* Connection defaults for a long-lived connection, as keyword/value arrays for
 * PQconnectdbParams / PQconnectStartParams with expand_dbname = 1: application_name, a
 * connect_timeout (connect_timeout_s), TCP keepalives, a TCP user timeout and (when statement_timeout_ms > 0) a
 * statement_timeout, then `dbname` = conninfo last, so that anything the operator's conninfo
 * says wins. The arrays are NULL-terminated and allocated in p. */
void livy_db_conn_params(const char *conninfo, const char *application_name,
                         int connect_timeout_s, long statement_timeout_ms,
                         const char *const **keys, const char *const **values, apr_pool_t *p);

/* Runs a prepared statement without ever waiting longer than timeout_ms in total (sending
 * included): libpq's asynchronous API and poll(). Returns the last result (the caller
 * PQclear()s), or NULL when the wait timed out or the connection failed; then *timed_out says
 * which, and the connection must be abandoned (its state is unknown). timeout_ms <= 0: wait as
 * long as it takes. The connection should be in nonblocking mode (PQsetnonblocking). */
PGresult *livy_db_exec_prepared(PGconn *conn, const char *name, int nparams,
                                const char *const *params, long timeout_ms, int *timed_out);

/* The same for PQsendPrepare. */
PGresult *livy_db_prepare(PGconn *conn, const char *name, const char *sql, long timeout_ms,
                          int *timed_out);

/* The same for a simple query (one statement or several: the last result is returned). */
PGresult *livy_db_exec_bounded(PGconn *conn, const char *sql, long timeout_ms, int *timed_out);

/* Reads the applied schema version: 0 when the database has no mod_livy schema yet,
 * -1 on error (with *errmsg set). */
int livy_db_schema_version(PGconn *conn, apr_pool_t *p, const char **errmsg);

/* Applies every migration NNN_*.sql in sql_dir whose number is above the applied version, each
 * in its own transaction, in order; serialised across concurrent callers by an advisory lock.
 * Sets *version to the version reached. Returns 0, or -1 with *errmsg set. */
int livy_db_migrate(PGconn *conn, const char *sql_dir, apr_pool_t *p, int *version,
                    const char **errmsg);

/* The text of the last error on conn, trimmed of its trailing newline, allocated in p. */
const char *livy_db_error(PGconn *conn, apr_pool_t *p);

#endif
