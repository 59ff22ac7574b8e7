/* store_supervisor: the supervisor's SQL (claiming, states, results, log, timeouts).
 * Every query is a prepared statement with parameters; prepare once per connection. */
#ifndef LIVY_STORE_SUPERVISOR_H
#define LIVY_STORE_SUPERVISOR_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <libpq-fe.h>

/* A session row as the supervisor needs it to start, reattach or stop a REPL child. */
typedef struct store_sv_session {
    apr_int64_t id;
    const char *kind;
    const char *name;            /* NULL when unset, like every optional text below */
    const char *proxy_user;
    const char *owner;           /* NULL for an anonymous session */
    const char *driver_memory;
    int driver_cores;            /* 0 when unset, like the other counts */
    const char *executor_memory;
    int executor_cores;
    int num_executors;
    const char *queue;
    const char *conf;            /* JSON object text */
    const char *jars;            /* JSON array texts */
    const char *py_files;
    const char *files;
    const char *archives;
    const char *state;
    int repl_pid;                /* 0 when none */
    const char *repl_socket;
    const char *stop_requested;  /* NULL, "stop" or "delete" */
    const char *app_id;
    int ended;                   /* ended_at is set */
} store_sv_session_t;

/* A statement the supervisor may have to send, or cancel. */
typedef struct store_sv_statement {
    int id;
    const char *code;
    const char *kind;            /* NULL: the session's kind */
    const char *state;
    int cancel_requested;
} store_sv_statement_t;

/* Another supervisors row with the same host identity. */
typedef struct store_sv_peer {
    apr_int64_t id;
    int pid;
    int stopped;
    apr_int64_t heartbeat_age_ms;
} store_sv_peer_t;

/* A session the timer stopped, and why. */
typedef struct store_sv_timeout {
    apr_int64_t id;
    const char *reason;          /* "idle", "ttl" or "heartbeat" */
    apr_int64_t limit_ms;
} store_sv_timeout_t;

/* The session's flags the supervisor reacts to. */
typedef struct store_sv_flags {
    int found;
    const char *stop_requested;
    int ended;
    int deleted;
    const char *state;
} store_sv_flags_t;

/* All functions return 0, or -1 with *errmsg set (allocated in p). */

int store_sv_prepare(PGconn *conn, apr_pool_t *p, const char **errmsg);
/* Bounds every query from now on (0: no bound). A query that times out fails with the
 * connection still busy (PQtransactionStatus PQTRANS_ACTIVE): the caller abandons it. */
void store_sv_set_query_timeout(long ms);

/* --- the supervisors table --- */
int store_sv_register(PGconn *conn, const char *host, int pid, int capacity, apr_int64_t *id,
                      apr_pool_t *p, const char **errmsg);
/* Touches heartbeat_at; *was_stopped is set when someone had presumed us dead. */
int store_sv_heartbeat(PGconn *conn, apr_int64_t id, int *was_stopped, apr_pool_t *p,
                       const char **errmsg);
int store_sv_mark_stopped(PGconn *conn, apr_int64_t id, apr_pool_t *p, const char **errmsg);
/* Rows of the same host other than `me` that still own sessions or have not stopped. */
int store_sv_peers(PGconn *conn, const char *host, apr_int64_t me,
                   apr_array_header_t **peers /* of store_sv_peer_t */, apr_pool_t *p,
                   const char **errmsg);
/* Moves the live sessions (and ended ones whose child may still run) of `old` to `me`. */
int store_sv_takeover(PGconn *conn, apr_int64_t old, apr_int64_t me,
                      apr_array_header_t **sessions /* of store_sv_session_t */, apr_pool_t *p,
                      const char **errmsg);
/* Supervisors whose heartbeat is older than dead_after_ms: their live sessions become dead
 * with a log line. Safe to race: each session is ended once. *count = sessions ended. */
int store_sv_reap_dead_supervisors(PGconn *conn, apr_int64_t me, apr_int64_t dead_after_ms,
                                   apr_int64_t now_ms, int *count, apr_pool_t *p,
                                   const char **errmsg);

/* --- sessions --- */
/* Claims up to n unclaimed sessions (state starting), in id order. */
int store_sv_claim(PGconn *conn, apr_int64_t me, int n,
                   apr_array_header_t **sessions /* of store_sv_session_t */, apr_pool_t *p,
                   const char **errmsg);
int store_sv_set_child(PGconn *conn, apr_int64_t session, int pid, const char *socket_path,
                       apr_pool_t *p, const char **errmsg);
int store_sv_clear_child(PGconn *conn, apr_int64_t session, apr_pool_t *p, const char **errmsg);
/* The REPL is up: idle (busy if statements wait), with its app id and UI URL (NULL keeps). */
int store_sv_set_ready(PGconn *conn, apr_int64_t session, const char *app_id,
                       const char *spark_ui_url, apr_pool_t *p, const char **errmsg);
int store_sv_flags(PGconn *conn, apr_int64_t session, store_sv_flags_t *flags, apr_pool_t *p,
                   const char **errmsg);
int store_sv_set_shutting_down(PGconn *conn, apr_int64_t session, apr_pool_t *p,
                               const char **errmsg);
/* Terminal, in one statement (clients never see an intermediate state): state (unless already
 * ended), ended_at, repl_pid cleared; unfinished statements cancelled when why is NULL (the
 * session was stopped), else available with a SessionDead error output whose evalue is why. */
int store_sv_end(PGconn *conn, apr_int64_t session, const char *state, apr_int64_t now_ms,
                 const char *why, apr_pool_t *p, const char **errmsg);
/* Appends lines (a JSON array of strings) to the session log, keeping the last max_lines. */
int store_sv_append_log(PGconn *conn, apr_int64_t session, const char *lines_json, int max_lines,
                        apr_pool_t *p, const char **errmsg);
/* Stops (stop_requested = 'stop', shutting_down) every session of `me` past a timeout. */
int store_sv_timeouts(PGconn *conn, apr_int64_t me, apr_int64_t idle_default_ms,
                      apr_int64_t ttl_default_ms,
                      apr_array_header_t **stopped /* of store_sv_timeout_t */, apr_pool_t *p,
                      const char **errmsg);
/* Sessions ended longer ago than retain_ms leave the list (deleted = true). */
int store_sv_expire_ended(PGconn *conn, apr_int64_t retain_ms,
                          apr_array_header_t **ids /* of apr_int64_t */, apr_pool_t *p,
                          const char **errmsg);

/* Deletes, under a transaction-scoped advisory lock that only one supervisor gets at a time,
 * up to `limit` sessions ended more than retain_ms ago (their statements and log lines go with
 * them), and supervisors rows stopped that long ago that no session names. *sessions: the ids
 * deleted; *locked = 0 when another supervisor holds the lock (nothing was done). */
int store_sv_purge(PGconn *conn, apr_int64_t retain_ms, int limit,
                   apr_array_header_t **sessions /* of apr_int64_t */, int *supervisors,
                   int *locked, apr_pool_t *p, const char **errmsg);

/* --- statements --- */
/* Statements from from_id on that wait, run, or carry a cancel request, in id order. */
int store_sv_pending(PGconn *conn, apr_int64_t session, int from_id,
                     apr_array_header_t **statements /* of store_sv_statement_t */,
                     apr_pool_t *p, const char **errmsg);
int store_sv_started(PGconn *conn, apr_int64_t session, int id, apr_int64_t started_ms,
                     apr_pool_t *p, const char **errmsg);
int store_sv_cancelling(PGconn *conn, apr_int64_t session, int id, apr_pool_t *p,
                        const char **errmsg);
int store_sv_progress(PGconn *conn, apr_int64_t session, int id, double progress, apr_pool_t *p,
                      const char **errmsg);
/* A result: state "available" or "cancelled", output JSON text or NULL, started_ms (0: unknown;
 * fills `started` if no `started` message set it). A statement already available or cancelled
 * is left alone. The session becomes idle when nothing else waits. */
int store_sv_result(PGconn *conn, apr_int64_t session, int id, const char *state,
                    const char *output_json, apr_int64_t started_ms, apr_int64_t completed_ms,
                    apr_pool_t *p, const char **errmsg);

#endif
