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
    int warm;                    /* a warm REPL no session has taken yet */
    int shared_driver;           /* may share its REPL process (sql/006_shared_drivers.sql) */
} store_sv_session_t;

/* A batch row as the supervisor needs it to run spark-submit, reattach or stop it. */
typedef struct store_sv_batch {
    apr_int64_t id;
    const char *name;            /* NULL when unset, like every optional text below */
    const char *owner;
    const char *proxy_user;
    const char *state;
    const char *app_id;
    const char *file;
    const char *class_name;
    const char *args;            /* JSON array texts */
    const char *driver_memory;
    int driver_cores;            /* 0 when unset, like the other counts */
    const char *executor_memory;
    int executor_cores;
    int num_executors;
    const char *queue;
    const char *conf;            /* JSON object text */
    const char *jars;
    const char *py_files;
    const char *files;
    const char *archives;
    int pid;                     /* spark-submit's process group, 0 when none */
    int ended;
    int stop_requested;
    apr_int64_t log_offset;      /* bytes of the output file already in batch_log */
} store_sv_batch_t;

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
    int warm;                    /* still a warm REPL: no session has taken it */
    const char *kind;
} store_sv_flags_t;

/* All functions return 0, or -1 with *errmsg set (allocated in p). */

int store_sv_prepare(PGconn *conn, apr_pool_t *p, const char **errmsg);
/* Bounds every query from now on (0: no bound). A query that times out fails with the
 * connection still busy (PQtransactionStatus PQTRANS_ACTIVE): the caller abandons it. */
void store_sv_set_query_timeout(long ms);

/* --- at startup, waiting for each answer --- */
int store_sv_register(PGconn *conn, const char *host, int pid, int capacity, apr_int64_t *id,
                      apr_pool_t *p, const char **errmsg);
int store_sv_mark_stopped(PGconn *conn, apr_int64_t id, apr_pool_t *p, const char **errmsg);
/* Rows of the same host other than `me` that still own sessions or have not stopped. */
int store_sv_peers(PGconn *conn, const char *host, apr_int64_t me,
                   apr_array_header_t **peers /* of store_sv_peer_t */, apr_pool_t *p,
                   const char **errmsg);
/* Moves the live sessions (and ended ones whose child may still run) of `old` to `me`. */
int store_sv_takeover(PGconn *conn, apr_int64_t old, apr_int64_t me,
                      apr_array_header_t **sessions /* of store_sv_session_t */, apr_pool_t *p,
                      const char **errmsg);

/* --- in the event loop: requests sent without waiting, answers read when they come ---
 * A request names a prepared statement and its parameters (allocated in the pool given to the
 * builder; sv_db.c copies them). The answer of a request that returns rows is read with the
 * matching store_sv_parse_*. */
typedef struct store_sv_req {
    int q;
    int nparams;
    const char *params[6];
    /* Set for the requests that set up a fresh connection: PREPARE this text under the
     * request's name, or (name NULL) run it as a simple query. */
    const char *sql;
    const char *name;
} store_sv_req_t;

/* The connection's setup, as requests: one PREPARE per query (i from 0 while this returns 1),
 * then the simple query sql (LISTEN) with store_sv_req_simple. */
int store_sv_req_prepare(store_sv_req_t *r, int i);
void store_sv_req_simple(store_sv_req_t *r, const char *sql);

const char *store_sv_req_name(const store_sv_req_t *r);
int store_sv_req_wants_rows(const store_sv_req_t *r);
/* NULL when res is the answer r expects, else what went wrong (allocated in p). */
const char *store_sv_check(PGresult *res, const store_sv_req_t *r, PGconn *conn, apr_pool_t *p);

/* Touches heartbeat_at; the answer says whether someone had presumed us dead. */
void store_sv_req_heartbeat(store_sv_req_t *r, apr_int64_t id, apr_pool_t *p);
int store_sv_parse_heartbeat(PGresult *res, apr_int64_t id, int *was_stopped, apr_pool_t *p,
                             const char **errmsg);
/* Supervisors whose heartbeat is older than dead_after_ms (the database's clock): their live
 * sessions become dead, with a log line and a SessionDead output for unfinished statements.
 * Safe to race: each session is ended once. One row per session ended. */
void store_sv_req_reap(store_sv_req_t *r, apr_int64_t me, apr_int64_t dead_after_ms,
                       apr_int64_t now_ms, apr_pool_t *p);
/* Claims up to n unclaimed sessions (state starting), in id order: store_sv_parse_sessions. */
void store_sv_req_claim(store_sv_req_t *r, apr_int64_t me, int n, apr_pool_t *p);
/* A warm REPL's row (kind pyspark, state starting, held by me, hidden from clients until a
 * POST /sessions takes it): store_sv_parse_sessions. */
void store_sv_req_warm_insert(store_sv_req_t *r, apr_int64_t me, apr_pool_t *p);
/* Stops a warm REPL's row (shutting_down, stop_requested delete) if no session has taken it:
 * one row (its id) when it did, none when a session has the REPL now. */
void store_sv_req_warm_stop(store_sv_req_t *r, apr_int64_t session, apr_pool_t *p);
/* Every session this supervisor holds (live, or ended with a process that may run). */
void store_sv_req_mine(store_sv_req_t *r, apr_int64_t me, apr_pool_t *p);
apr_array_header_t *store_sv_parse_sessions(PGresult *res, apr_pool_t *p);
void store_sv_req_set_child(store_sv_req_t *r, apr_int64_t session, int pid,
                            const char *socket_path, apr_pool_t *p);
void store_sv_req_clear_child(store_sv_req_t *r, apr_int64_t session, apr_pool_t *p);
/* The REPL is up: idle (busy if statements wait), with its app id and UI URL (NULL keeps). */
void store_sv_req_set_ready(store_sv_req_t *r, apr_int64_t session, const char *app_id,
                            const char *spark_ui_url, apr_pool_t *p);
void store_sv_req_flags(store_sv_req_t *r, apr_int64_t session, apr_pool_t *p);
void store_sv_parse_flags(PGresult *res, store_sv_flags_t *flags, apr_pool_t *p);
void store_sv_req_shutting_down(store_sv_req_t *r, apr_int64_t session, apr_pool_t *p);
/* Terminal, in one statement (clients never see an intermediate state): state (unless already
 * ended), ended_at, repl_pid cleared; unfinished statements cancelled when why is NULL (the
 * session was stopped), else available with a SessionDead error output whose evalue is why. */
void store_sv_req_end(store_sv_req_t *r, apr_int64_t session, const char *state,
                      apr_int64_t now_ms, const char *why, apr_pool_t *p);
/* Appends lines (a JSON array of strings) to the session log, keeping the last max_lines. */
void store_sv_req_append_log(store_sv_req_t *r, apr_int64_t session, const char *lines_json,
                             int max_lines, apr_pool_t *p);
/* Stops (stop_requested = 'stop', shutting_down) every session of `me` past a timeout:
 * store_sv_parse_timeouts. */
void store_sv_req_timeouts(store_sv_req_t *r, apr_int64_t me, apr_int64_t idle_default_ms,
                           apr_int64_t ttl_default_ms, apr_pool_t *p);
apr_array_header_t *store_sv_parse_timeouts(PGresult *res, apr_pool_t *p); /* store_sv_timeout_t */
/* Sessions ended longer ago than list_ms leave the list (deleted = true): store_sv_parse_ids. */
void store_sv_req_expire_ended(store_sv_req_t *r, apr_int64_t list_ms, apr_pool_t *p);
apr_array_header_t *store_sv_parse_ids(PGresult *res, apr_pool_t *p); /* of apr_int64_t */
/* Deletes, under a transaction-scoped advisory lock that only one supervisor gets at a time,
 * up to `limit` sessions ended more than retain_ms ago (their statements and log lines go with
 * them; one whose REPL may still run only when its supervisor stopped that long ago too), and supervisors rows stopped that long ago that no session names. The answer: the
 * session ids deleted, the supervisors rows deleted, and locked = 0 when another supervisor
 * held the lock (nothing was done). */
void store_sv_req_purge(store_sv_req_t *r, apr_int64_t retain_ms, int limit, apr_pool_t *p);
void store_sv_parse_purge(PGresult *res, apr_array_header_t **sessions /* of apr_int64_t */,
                          int *supervisors, int *batches, int *locked, apr_pool_t *p);
/* Statements from from_id on that wait, run, or carry a cancel request, in id order. */
void store_sv_req_pending(store_sv_req_t *r, apr_int64_t session, int from_id, apr_pool_t *p);
apr_array_header_t *store_sv_parse_pending(PGresult *res, apr_pool_t *p); /* store_sv_statement_t */
/* A completion request the module recorded for a session's REPL. */
typedef struct {
    apr_int64_t id;
    const char *kind;
    const char *code;
    apr_int64_t cursor;          /* -1: the end of code */
} store_sv_completion_t;

/* The session's unanswered completion requests after id `after`, in id order. */
void store_sv_req_completions(store_sv_req_t *r, apr_int64_t session, apr_int64_t after,
                              apr_pool_t *p);
apr_array_header_t *store_sv_parse_completions(PGresult *res, apr_pool_t *p); /* store_sv_completion_t */
/* The REPL's candidates (a JSON array of strings) for a completion request. */
void store_sv_req_completion_answer(store_sv_req_t *r, apr_int64_t session, apr_int64_t id,
                                    const char *candidates_json, apr_pool_t *p);
void store_sv_req_started(store_sv_req_t *r, apr_int64_t session, int id, apr_int64_t started_ms,
                          apr_pool_t *p);
void store_sv_req_cancelling(store_sv_req_t *r, apr_int64_t session, int id, apr_pool_t *p);
void store_sv_req_progress(store_sv_req_t *r, apr_int64_t session, int id, double progress,
                           apr_pool_t *p);
/* A result: state "available" or "cancelled", output JSON text or NULL, started_ms (0: unknown;
 * fills `started` if no `started` message set it). A statement already available or cancelled
 * is left alone. The session becomes idle when nothing else waits. */
void store_sv_req_result(store_sv_req_t *r, apr_int64_t session, int id, const char *state,
                         const char *output_json, apr_int64_t started_ms,
                         apr_int64_t completed_ms, apr_pool_t *p);

/* --- batches --- */
/* Moves the live batches (and ended ones whose spark-submit may still run) of `old` to `me`. */
int store_sv_takeover_batches(PGconn *conn, apr_int64_t old, apr_int64_t me,
                              apr_array_header_t **batches /* of store_sv_batch_t */,
                              apr_pool_t *p, const char **errmsg);
apr_array_header_t *store_sv_parse_batches(PGresult *res, apr_pool_t *p); /* store_sv_batch_t */
/* Batches of supervisors silent for longer than dead_after_ms end dead with a log line. */
void store_sv_req_batch_reap(store_sv_req_t *r, apr_int64_t me, apr_int64_t dead_after_ms,
                             apr_pool_t *p);
/* Claims up to n unclaimed batches, in id order: store_sv_parse_batches. */
void store_sv_req_batch_claim(store_sv_req_t *r, apr_int64_t me, int n, apr_pool_t *p);
/* Every batch this supervisor holds (live, or ended with a process that may run). */
void store_sv_req_batch_mine(store_sv_req_t *r, apr_int64_t me, apr_pool_t *p);
/* spark-submit runs as process group pid: the batch is running. */
void store_sv_req_batch_running(store_sv_req_t *r, apr_int64_t batch, int pid, apr_pool_t *p);
void store_sv_req_batch_app_id(store_sv_req_t *r, apr_int64_t batch, const char *app_id,
                               apr_pool_t *p);
/* stop_requested ("delete" when set), ended, deleted, state: store_sv_parse_batch_flags. */
void store_sv_req_batch_flags(store_sv_req_t *r, apr_int64_t batch, apr_pool_t *p);
void store_sv_parse_batch_flags(PGresult *res, store_sv_flags_t *flags, apr_pool_t *p);
/* Appends lines (a JSON array of strings), keeping the last max_lines, and records that the
 * output file has been read up to offset. */
void store_sv_req_batch_append_log(store_sv_req_t *r, apr_int64_t batch, const char *lines_json,
                                   int max_lines, apr_int64_t offset, apr_pool_t *p);
/* Terminal: state (unless already ended), ended_at, exit_status (< 0: unknown), pid cleared. */
void store_sv_req_batch_end(store_sv_req_t *r, apr_int64_t batch, const char *state,
                            int exit_status, apr_pool_t *p);
/* Batches ended longer ago than list_ms leave the list: store_sv_parse_ids. */
void store_sv_req_batch_expire(store_sv_req_t *r, apr_int64_t list_ms, apr_pool_t *p);

#endif
