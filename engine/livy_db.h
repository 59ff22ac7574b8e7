/* livy_db: connecting to PostgreSQL, the schema version, and applying migrations. */
#ifndef LIVY_DB_H
#define LIVY_DB_H

#include <apr_pools.h>
#include <libpq-fe.h>

/* The schema version this build of the engine needs (the highest migration in sql/). */
#define LIVY_SCHEMA_VERSION 1

/* Connects with `conninfo`; on failure returns NULL and sets *errmsg (allocated in p). */
PGconn *livy_db_connect(const char *conninfo, apr_pool_t *p, const char **errmsg);

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
