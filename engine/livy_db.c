/* livy_db: connecting to PostgreSQL, the schema version, and applying migrations. */
#include "livy_db.h"

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A fixed advisory lock key so concurrent migrators (two supervisors) take turns. */
#define LIVY_MIGRATE_LOCK 1818850937 /* 0x6c697679, "livy"; decimal: PostgreSQL 15 has no hex literals */

const char *livy_db_error(PGconn *conn, apr_pool_t *p)
{
    char *msg = apr_pstrdup(p, conn ? PQerrorMessage(conn) : "no connection");
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    return msg;
}

PGconn *livy_db_connect(const char *conninfo, apr_pool_t *p, const char **errmsg)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        *errmsg = livy_db_error(conn, p);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

void livy_db_conn_params(const char *conninfo, const char *application_name,
                         int connect_timeout_s, long statement_timeout_ms,
                         const char *const **keys, const char *const **values, apr_pool_t *p)
{
    const char **k = apr_pcalloc(p, 12 * sizeof *k);
    const char **v = apr_pcalloc(p, 12 * sizeof *v);
    int n = 0;
    k[n] = "application_name", v[n++] = application_name;
    k[n] = "connect_timeout", v[n++] = apr_psprintf(p, "%d", connect_timeout_s);
    /* A peer that vanished (a failover, a cut cable) is noticed in about a minute on an idle
     * connection, and in 30 s when data waits unacknowledged. */
    k[n] = "keepalives", v[n++] = "1";
    k[n] = "keepalives_idle", v[n++] = "30";
    k[n] = "keepalives_interval", v[n++] = "10";
    k[n] = "keepalives_count", v[n++] = "3";
    k[n] = "tcp_user_timeout", v[n++] = "30000";
    if (statement_timeout_ms > 0)
        k[n] = "options", v[n++] = apr_psprintf(p, "-c statement_timeout=%ld", statement_timeout_ms);
    k[n] = "dbname", v[n++] = conninfo;
    *keys = k;
    *values = v;
}

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for the socket until the deadline (monotonic ms; <= 0: none). 1 ready, 0 timed out,
 * -1 error. */
static int wait_socket(PGconn *conn, short events, long deadline)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = events};
    if (pfd.fd < 0)
        return -1;
    for (;;) {
        long wait = -1;
        if (deadline > 0) {
            wait = deadline - mono_ms();
            if (wait <= 0)
                return 0;
        }
        int n = poll(&pfd, 1, (int)wait);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* After a PQsend*: flushes, then collects the results. */
static PGresult *finish_send(PGconn *conn, long timeout_ms, int *timed_out)
{
    *timed_out = 0;
    long deadline = timeout_ms > 0 ? mono_ms() + timeout_ms : 0;
    int w;
    for (;;) {
        int f = PQflush(conn);
        if (f == 0)
            break;
        if (f < 0)
            return NULL;
        /* The server may need us to read before it reads more of what we send. */
        if ((w = wait_socket(conn, POLLOUT | POLLIN, deadline)) <= 0) {
            *timed_out = w == 0;
            return NULL;
        }
        if (!PQconsumeInput(conn))
            return NULL;
    }
    PGresult *last = NULL;
    for (;;) {
        while (PQisBusy(conn)) {
            if ((w = wait_socket(conn, POLLIN, deadline)) <= 0) {
                *timed_out = w == 0;
                PQclear(last);
                return NULL;
            }
            if (!PQconsumeInput(conn)) {
                PQclear(last);
                return NULL;
            }
        }
        PGresult *res = PQgetResult(conn);
        if (!res)
            break;
        /* Keep the first error, else the last result. */
        if (last && PQresultStatus(last) == PGRES_FATAL_ERROR)
            PQclear(res);
        else {
            PQclear(last);
            last = res;
        }
    }
    return last;
}

PGresult *livy_db_exec_prepared(PGconn *conn, const char *name, int nparams,
                                const char *const *params, long timeout_ms, int *timed_out)
{
    *timed_out = 0;
    if (!PQsendQueryPrepared(conn, name, nparams, params, NULL, NULL, 0))
        return NULL;
    return finish_send(conn, timeout_ms, timed_out);
}

PGresult *livy_db_prepare(PGconn *conn, const char *name, const char *sql, long timeout_ms,
                          int *timed_out)
{
    *timed_out = 0;
    if (!PQsendPrepare(conn, name, sql, 0, NULL))
        return NULL;
    return finish_send(conn, timeout_ms, timed_out);
}

PGresult *livy_db_exec_bounded(PGconn *conn, const char *sql, long timeout_ms, int *timed_out)
{
    *timed_out = 0;
    if (!PQsendQuery(conn, sql))
        return NULL;
    return finish_send(conn, timeout_ms, timed_out);
}

int livy_db_schema_version(PGconn *conn, apr_pool_t *p, const char **errmsg)
{
    PGresult *res = PQexecParams(conn, "SELECT to_regclass('livy_schema_version') IS NOT NULL",
                                 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        *errmsg = livy_db_error(conn, p);
        PQclear(res);
        return -1;
    }
    int exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists)
        return 0;
    res = PQexecParams(conn, "SELECT coalesce(max(version), 0) FROM livy_schema_version",
                       0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        *errmsg = livy_db_error(conn, p);
        PQclear(res);
        return -1;
    }
    int version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return version;
}

static int exec_simple(PGconn *conn, const char *sql, apr_pool_t *p, const char **errmsg)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        *errmsg = livy_db_error(conn, p);
        return -1;
    }
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lists NNN_*.sql in dir, sorted by name (the numbers are zero-padded). */
static apr_array_header_t *list_migrations(const char *dir, apr_pool_t *p, const char **errmsg)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_array_header_t *names = apr_array_make(p, 8, sizeof(const char *));
    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "cannot open the migrations directory %s", dir);
        return NULL;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
        size_t n = strlen(fi.name);
        if (fi.filetype == APR_REG && n > 8 && fi.name[0] >= '0' && fi.name[0] <= '9'
            && strcmp(fi.name + n - 4, ".sql") == 0)
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, fi.name);
    }
    apr_dir_close(d);
    qsort(names->elts, names->nelts, sizeof(const char *), compare_names);
    return names;
}

static int apply_one(PGconn *conn, const char *dir, const char *name, int number, apr_pool_t *p,
                     const char **errmsg)
{
    char *path = apr_pstrcat(p, dir, "/", name, NULL);
    apr_file_t *f;
    apr_finfo_t fi;
    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS
        || apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "cannot read %s", path);
        return -1;
    }
    char *sql = apr_palloc(p, (apr_size_t)fi.size + 1);
    apr_size_t got = (apr_size_t)fi.size;
    apr_status_t rv = apr_file_read_full(f, sql, got, &got);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        *errmsg = apr_psprintf(p, "cannot read %s", path);
        return -1;
    }
    sql[got] = '\0';

    if (exec_simple(conn, "BEGIN", p, errmsg) != 0)
        return -1;
    if (exec_simple(conn, sql, p, errmsg) != 0) {
        *errmsg = apr_psprintf(p, "migration %s failed: %s", name, *errmsg);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    /* Each file records its own version; make sure the number landed even if it forgot. */
    char num[16];
    apr_snprintf(num, sizeof num, "%d", number);
    const char *params[1] = {num};
    PGresult *res = PQexecParams(conn,
        "INSERT INTO livy_schema_version (version) VALUES ($1::int) ON CONFLICT DO NOTHING",
        1, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        *errmsg = livy_db_error(conn, p);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    return exec_simple(conn, "COMMIT", p, errmsg);
}

int livy_db_migrate(PGconn *conn, const char *sql_dir, apr_pool_t *p, int *version,
                    const char **errmsg)
{
    apr_array_header_t *names = list_migrations(sql_dir, p, errmsg);
    if (!names)
        return -1;
    if (exec_simple(conn, "SELECT pg_advisory_lock(" APR_STRINGIFY(LIVY_MIGRATE_LOCK) ")", p,
                    errmsg) != 0)
        return -1;
    int rc = 0;
    int current = livy_db_schema_version(conn, p, errmsg);
    if (current < 0)
        rc = -1;
    for (int i = 0; rc == 0 && i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        int number = atoi(name);
        if (number <= current)
            continue;
        if (apply_one(conn, sql_dir, name, number, p, errmsg) != 0)
            rc = -1;
        else
            current = number;
    }
    const char *unlock_err;
    exec_simple(conn, "SELECT pg_advisory_unlock(" APR_STRINGIFY(LIVY_MIGRATE_LOCK) ")", p,
                &unlock_err);
    *version = current;
    return rc;
}
