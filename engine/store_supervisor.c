/* store_supervisor: the supervisor's SQL (claiming, states, results, log, timeouts).
 * Every query is a prepared statement with parameters; prepare once per connection. */
#include "store_supervisor.h"

#include "livy_db.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock key of the purge (the migrations use 1818850937). */
#define LIVY_PURGE_LOCK_SQL "1818850938"

#define SESSION_COLS                                                                            \
    "id, kind, name, proxy_user, driver_memory, driver_cores, executor_memory, executor_cores, " \
    "num_executors, queue, conf::text, jars::text, py_files::text, files::text, "               \
    "archives::text, state, repl_pid, repl_socket, stop_requested, app_id, "                    \
    "ended_at IS NOT NULL, owner, warm, shared_driver"

#define BATCH_COLS                                                                              \
    "id, name, owner, proxy_user, state, app_id, file, class_name, args::text, driver_memory, "  \
    "driver_cores, executor_memory, executor_cores, num_executors, queue, conf::text, "         \
    "jars::text, py_files::text, files::text, archives::text, pid, ended_at IS NOT NULL, "      \
    "stop_requested, log_offset"

/* The session's next state once a statement settles: busy while anything else waits or runs. */
#define NEXT_STATE_EXCEPT(stmt_param)                                                     \
    "(SELECT CASE WHEN EXISTS (SELECT 1 FROM statements WHERE session_id = $1::bigint"    \
    " AND id <> " stmt_param " AND state IN ('waiting','running','cancelling'))"          \
    " THEN 'busy' ELSE 'idle' END AS state)"

enum {
    Q_REGISTER,
    Q_HEARTBEAT,
    Q_MARK_STOPPED,
    Q_PEERS,
    Q_TAKEOVER,
    Q_REAP,
    Q_CLAIM,
    Q_MINE,
    Q_SET_CHILD,
    Q_CLEAR_CHILD,
    Q_READY,
    Q_FLAGS,
    Q_SHUTTING_DOWN,
    Q_END,
    Q_APPEND_LOG,
    Q_TIMEOUTS,
    Q_EXPIRE,
    Q_PURGE,
    Q_PENDING,
    Q_STARTED,
    Q_CANCELLING,
    Q_PROGRESS,
    Q_RESULT,
    Q_B_TAKEOVER,
    Q_B_REAP,
    Q_B_CLAIM,
    Q_B_MINE,
    Q_B_RUNNING,
    Q_B_APP_ID,
    Q_B_FLAGS,
    Q_B_APPEND_LOG,
    Q_B_END,
    Q_B_EXPIRE,
    Q_C_PENDING,
    Q_C_ANSWER,
    Q_WARM_INSERT,
    Q_WARM_STOP,
    Q_COUNT
};

static const struct {
    const char *name;
    const char *sql;
} queries[Q_COUNT] = {
    [Q_REGISTER] = {"livy_sv_register",
        "INSERT INTO supervisors (host, pid, capacity) VALUES ($1, $2::int, $3::int) RETURNING id"},
    [Q_HEARTBEAT] = {"livy_sv_heartbeat",
        "WITH old AS (SELECT stopped_at FROM supervisors WHERE id = $1::bigint FOR UPDATE), "
        LIVY_SQL_ASYNC_COMMIT " "
        "UPDATE supervisors v SET heartbeat_at = now(), stopped_at = NULL FROM old, async_commit "
        "WHERE v.id = $1::bigint RETURNING old.stopped_at IS NOT NULL"},
    [Q_MARK_STOPPED] = {"livy_sv_mark_stopped",
        "UPDATE supervisors SET stopped_at = now() WHERE id = $1::bigint"},
    [Q_PEERS] = {"livy_sv_peers",
        "SELECT id, pid, stopped_at IS NOT NULL, "
        "(extract(epoch FROM now() - heartbeat_at) * 1000)::bigint FROM supervisors v "
        "WHERE host = $1 AND id <> $2::bigint AND (stopped_at IS NULL OR EXISTS "
        "(SELECT 1 FROM sessions s WHERE s.supervisor_id = v.id "
        "AND (s.ended_at IS NULL OR s.repl_pid IS NOT NULL)) OR EXISTS "
        "(SELECT 1 FROM batches b WHERE b.supervisor_id = v.id "
        "AND (b.ended_at IS NULL OR b.pid IS NOT NULL))) ORDER BY id"},
    [Q_TAKEOVER] = {"livy_sv_takeover",
        "WITH old AS (UPDATE supervisors SET stopped_at = coalesce(stopped_at, now()) "
        "WHERE id = $1::bigint) "
        "UPDATE sessions SET supervisor_id = $2::bigint WHERE supervisor_id = $1::bigint "
        "AND (ended_at IS NULL OR repl_pid IS NOT NULL) RETURNING " SESSION_COLS},
    /* Row locks make this safe to race: a session already ended by one reaper is skipped by
     * the other when it re-checks ended_at. */
    [Q_REAP] = {"livy_sv_reap",
        "WITH dead AS (UPDATE supervisors SET stopped_at = coalesce(stopped_at, now()) "
        "  WHERE id <> $1::bigint AND heartbeat_at < now() - $2::bigint * interval '1 millisecond' "
        "  AND EXISTS (SELECT 1 FROM sessions s WHERE s.supervisor_id = supervisors.id "
        "              AND s.ended_at IS NULL) "
        "  RETURNING id, host), "
        "s AS (UPDATE sessions SET state = 'dead', ended_at = now(), state_changed_at = now(), "
        "  next_log_seq = next_log_seq + 1 "
        "  WHERE supervisor_id IN (SELECT id FROM dead) AND ended_at IS NULL "
        "  RETURNING id, next_log_seq - 1 AS seq, supervisor_id), "
        "st AS (UPDATE statements t SET state = 'available', progress = 1, completed = $3::bigint, "
        "  output = json_build_object('status', 'error', 'execution_count', t.id, "
        "    'ename', 'SessionDead', 'evalue', 'the supervisor that ran this session stopped "
        "heartbeating; the session is presumed dead', 'traceback', json_build_array()) "
        "  WHERE t.session_id IN (SELECT id FROM s) "
        "  AND t.state IN ('waiting','running','cancelling')) "
        "INSERT INTO session_log (session_id, seq, line) "
        "SELECT s.id, s.seq, 'livy-supervisor: the supervisor that ran this session (host ' "
        "  || dead.host || ', supervisor ' || dead.id || ') stopped heartbeating for more than ' "
        "  || ($2::bigint / 1000) || 's; the session is presumed dead' "
        "FROM s JOIN dead ON dead.id = s.supervisor_id RETURNING session_id"},
    [Q_CLAIM] = {"livy_sv_claim",
        "UPDATE sessions SET supervisor_id = $1::bigint, state = 'starting', started_at = now(), "
        "state_changed_at = now() "
        "WHERE id IN (SELECT id FROM sessions WHERE supervisor_id IS NULL "
        "AND state = 'not_started' AND NOT deleted AND stop_requested IS NULL "
        "ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $2::int) RETURNING " SESSION_COLS},
    [Q_MINE] = {"livy_sv_mine",
        "SELECT " SESSION_COLS " FROM sessions WHERE supervisor_id = $1::bigint "
        "AND (ended_at IS NULL OR repl_pid IS NOT NULL) ORDER BY id"},
    [Q_SET_CHILD] = {"livy_sv_set_child",
        "UPDATE sessions SET repl_pid = $2::int, repl_socket = $3 WHERE id = $1::bigint"},
    [Q_CLEAR_CHILD] = {"livy_sv_clear_child",
        "UPDATE sessions SET repl_pid = NULL WHERE id = $1::bigint"},
    [Q_READY] = {"livy_sv_ready",
        "UPDATE sessions s SET app_id = coalesce($2, s.app_id), "
        "spark_ui_url = coalesce($3, s.spark_ui_url), state = n.state, "
        "state_changed_at = CASE WHEN s.state <> n.state THEN now() ELSE s.state_changed_at END, "
        "last_activity_at = CASE WHEN s.state IN ('starting','recovering') THEN now() "
        "  ELSE s.last_activity_at END, "
        "ready_at = CASE WHEN s.state = 'starting' THEN coalesce(s.ready_at, now()) "
        "  ELSE s.ready_at END "
        "FROM " NEXT_STATE_EXCEPT("-1") " n "
        "WHERE s.id = $1::bigint AND s.ended_at IS NULL "
        "AND s.state IN ('starting','recovering','idle','busy')"},
    [Q_FLAGS] = {"livy_sv_flags",
        "SELECT stop_requested, ended_at IS NOT NULL, deleted, state, warm, kind FROM sessions "
        "WHERE id = $1::bigint"},
    [Q_SHUTTING_DOWN] = {"livy_sv_shutting_down",
        "UPDATE sessions SET state = 'shutting_down', state_changed_at = now() "
        "WHERE id = $1::bigint AND ended_at IS NULL "
        "AND state IN ('not_started','starting','recovering','idle','busy')"},
    /* Unfinished statements: cancelled when the session was stopped, else ($4, why the REPL
     * is gone) available with an error output saying so, in Livy's key order. */
    [Q_END] = {"livy_sv_end",
        "WITH st AS (UPDATE statements SET "
        "  state = CASE WHEN $4::text IS NULL THEN 'cancelled' ELSE 'available' END, "
        "  output = CASE WHEN $4::text IS NULL THEN output ELSE json_build_object("
        "    'status', 'error', 'execution_count', id, 'ename', 'SessionDead', "
        "    'evalue', $4::text, 'traceback', json_build_array()) END, "
        "  progress = 1, completed = $3::bigint WHERE session_id = $1::bigint "
        "  AND state IN ('waiting','running','cancelling')) "
        "UPDATE sessions SET state = CASE WHEN ended_at IS NULL THEN $2::text ELSE state END, "
        "state_changed_at = CASE WHEN ended_at IS NULL THEN now() ELSE state_changed_at END, "
        "ended_at = coalesce(ended_at, now()), repl_pid = NULL WHERE id = $1::bigint"},
    /* seq stays gapless: the batch takes next_log_seq .. next_log_seq + n - 1. */
    [Q_APPEND_LOG] = {"livy_sv_append_log",
        "WITH s AS (UPDATE sessions SET next_log_seq = next_log_seq + json_array_length($2::json) "
        "  WHERE id = $1::bigint "
        "  RETURNING next_log_seq - json_array_length($2::json) AS base, next_log_seq AS next), "
        "ins AS (INSERT INTO session_log (session_id, seq, line) "
        "  SELECT $1::bigint, s.base + l.ord - 1, l.line "
        "  FROM s, json_array_elements_text($2::json) WITH ORDINALITY AS l(line, ord)) "
        "DELETE FROM session_log WHERE session_id = $1::bigint "
        "AND seq < (SELECT next FROM s) - $3::bigint"},
    [Q_TIMEOUTS] = {"livy_sv_timeouts",
        "UPDATE sessions s SET stop_requested = 'stop', state = 'shutting_down', "
        "state_changed_at = now() "
        "FROM (SELECT id, CASE "
        "  WHEN coalesce(ttl_ms, $3::bigint) > 0 "
        "   AND created_at < now() - coalesce(ttl_ms, $3::bigint) * interval '1 millisecond' "
        "   THEN 'ttl' "
        "  WHEN heartbeat_timeout_s > 0 "
        /* the module records a heartbeat at most once a second: allow that second */
        "   AND last_heartbeat_at < now() - (heartbeat_timeout_s + 1) * interval '1 second' "
        "   THEN 'heartbeat' "
        "  WHEN state = 'idle' AND coalesce(idle_timeout_ms, $2::bigint) > 0 "
        "   AND last_activity_at < now() - coalesce(idle_timeout_ms, $2::bigint) "
        "       * interval '1 millisecond' THEN 'idle' END AS reason, "
        "  coalesce(ttl_ms, $3::bigint) AS ttl, heartbeat_timeout_s::bigint * 1000 AS hb, "
        "  coalesce(idle_timeout_ms, $2::bigint) AS idle "
        "  FROM sessions WHERE supervisor_id = $1::bigint AND ended_at IS NULL "
        "  AND stop_requested IS NULL AND NOT warm AND state IN ('starting','idle','busy')) t "
        "WHERE s.id = t.id AND t.reason IS NOT NULL AND s.stop_requested IS NULL "
        "AND s.ended_at IS NULL "
        "RETURNING s.id, t.reason, "
        "CASE t.reason WHEN 'ttl' THEN t.ttl WHEN 'heartbeat' THEN t.hb ELSE t.idle END"},
    [Q_EXPIRE] = {"livy_sv_expire",
        "UPDATE sessions SET deleted = true WHERE NOT deleted AND ended_at IS NOT NULL "
        "AND ended_at < now() - $1::bigint * interval '1 millisecond' RETURNING id"},
    /* One purger at a time (the lock), in bounded batches (the limit) so that no transaction
     * grows long; sessions whose process may still run (repl_pid) wait. */
    [Q_PURGE] = {"livy_sv_purge",
        "WITH lock AS (SELECT pg_try_advisory_xact_lock(" LIVY_PURGE_LOCK_SQL ") AS got), "
        "gone AS (DELETE FROM sessions WHERE id IN (SELECT id FROM sessions "
        "  WHERE (SELECT got FROM lock) AND ended_at IS NOT NULL "
        "  AND ended_at < now() - $1::bigint * interval '1 millisecond' "
        /* a REPL that may still run waits, unless its supervisor stopped that long ago too
         * (a host that never came back after its sessions were reaped) */
        "  AND (repl_pid IS NULL OR NOT EXISTS (SELECT 1 FROM supervisors v "
        "    WHERE v.id = sessions.supervisor_id AND (v.stopped_at IS NULL "
        "    OR v.stopped_at >= now() - $1::bigint * interval '1 millisecond'))) ORDER BY id "
        "  LIMIT $2::int) RETURNING id), "
        "bgone AS (DELETE FROM batches WHERE id IN (SELECT id FROM batches "
        "  WHERE (SELECT got FROM lock) AND ended_at IS NOT NULL "
        "  AND ended_at < now() - $1::bigint * interval '1 millisecond' "
        "  AND (pid IS NULL OR NOT EXISTS (SELECT 1 FROM supervisors v "
        "    WHERE v.id = batches.supervisor_id AND (v.stopped_at IS NULL "
        "    OR v.stopped_at >= now() - $1::bigint * interval '1 millisecond'))) ORDER BY id "
        "  LIMIT $2::int) RETURNING id), "
        /* completions nobody waits for any more (the module drops its own) */
        "cgone AS (DELETE FROM completions WHERE (SELECT got FROM lock) "
        "  AND created_at < now() - interval '5 minutes'), "
        "sv AS (DELETE FROM supervisors v WHERE (SELECT got FROM lock) "
        "  AND stopped_at < now() - $1::bigint * interval '1 millisecond' "
        "  AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.supervisor_id = v.id) "
        "  AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.supervisor_id = v.id) RETURNING id) "
        "SELECT (SELECT got FROM lock), (SELECT count(*) FROM sv), "
        "  (SELECT coalesce(json_agg(id ORDER BY id), '[]') FROM gone)::text, "
        "  (SELECT count(*) FROM bgone)"},
    [Q_PENDING] = {"livy_sv_pending",
        "SELECT id, code, kind, state, cancel_requested FROM statements "
        "WHERE session_id = $1::bigint AND id >= $2::int "
        "AND (state IN ('waiting','running','cancelling') OR cancel_requested) ORDER BY id"},
    [Q_STARTED] = {"livy_sv_started",
        "WITH st AS (UPDATE statements SET state = 'running', started = $3::bigint "
        "  WHERE session_id = $1::bigint AND id = $2::int AND state = 'waiting' RETURNING 1) "
        "UPDATE sessions SET state = 'busy', state_changed_at = now() "
        "WHERE id = $1::bigint AND state = 'idle' AND EXISTS (SELECT 1 FROM st)"},
    [Q_CANCELLING] = {"livy_sv_cancelling",
        "UPDATE statements SET state = 'cancelling' "
        "WHERE session_id = $1::bigint AND id = $2::int AND state = 'running'"},
    [Q_PROGRESS] = {"livy_sv_progress",
        "WITH " LIVY_SQL_ASYNC_COMMIT " "
        "UPDATE statements SET progress = $3::float8 FROM async_commit "
        "WHERE session_id = $1::bigint AND id = $2::int AND state IN ('running','cancelling')"},
    [Q_RESULT] = {"livy_sv_result",
        "WITH st AS (UPDATE statements SET state = $3::text, output = $4::json, progress = 1, "
        "  completed = $5::bigint, "
        "  started = CASE WHEN started <> 0 THEN started WHEN $6::bigint > 0 THEN $6::bigint "
        "    WHEN $3::text = 'available' THEN $5::bigint ELSE 0 END "
        "  WHERE session_id = $1::bigint AND id = $2::int "
        "  AND state NOT IN ('available','cancelled') RETURNING 1) "
        "UPDATE sessions s SET state = n.state, "
        "state_changed_at = CASE WHEN s.state <> n.state THEN now() ELSE s.state_changed_at END, "
        "last_activity_at = now() "
        "FROM " NEXT_STATE_EXCEPT("$2::int") " n "
        "WHERE s.id = $1::bigint AND s.state IN ('idle','busy')"},

    /* ---- batches ---- */
    [Q_B_TAKEOVER] = {"livy_sv_b_takeover",
        "UPDATE batches SET supervisor_id = $2::bigint WHERE supervisor_id = $1::bigint "
        "AND (ended_at IS NULL OR pid IS NOT NULL) RETURNING " BATCH_COLS},
    /* Batches of supervisors that stopped heartbeating end dead, with a log line, as their
     * sessions do (Q_REAP). One row per batch ended. */
    [Q_B_REAP] = {"livy_sv_b_reap",
        "WITH dead AS (SELECT id, host FROM supervisors WHERE id <> $1::bigint "
        "  AND heartbeat_at < now() - $2::bigint * interval '1 millisecond'), "
        "b AS (UPDATE batches SET state = 'dead', ended_at = now(), state_changed_at = now(), "
        "  next_log_seq = next_log_seq + 1 "
        "  WHERE supervisor_id IN (SELECT id FROM dead) AND ended_at IS NULL "
        "  RETURNING id, next_log_seq - 1 AS seq, supervisor_id), "
        "v AS (UPDATE supervisors SET stopped_at = coalesce(stopped_at, now()) "
        "  WHERE id IN (SELECT supervisor_id FROM b)) "
        "INSERT INTO batch_log (batch_id, seq, line) "
        "SELECT b.id, b.seq, 'livy-supervisor: the supervisor that ran this batch (host ' "
        "  || dead.host || ', supervisor ' || dead.id || ') stopped heartbeating for more than ' "
        "  || ($2::bigint / 1000) || 's; the batch is presumed dead' "
        "FROM b JOIN dead ON dead.id = b.supervisor_id RETURNING batch_id"},
    [Q_B_CLAIM] = {"livy_sv_b_claim",
        "UPDATE batches SET supervisor_id = $1::bigint, started_at = now() "
        "WHERE id IN (SELECT id FROM batches WHERE supervisor_id IS NULL "
        "AND state = 'starting' AND NOT deleted AND NOT stop_requested "
        "ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $2::int) RETURNING " BATCH_COLS},
    [Q_B_MINE] = {"livy_sv_b_mine",
        "SELECT " BATCH_COLS " FROM batches WHERE supervisor_id = $1::bigint "
        "AND (ended_at IS NULL OR pid IS NOT NULL) ORDER BY id"},
    [Q_B_RUNNING] = {"livy_sv_b_running",
        "UPDATE batches SET pid = $2::int, "
        "state = CASE WHEN state = 'starting' THEN 'running' ELSE state END, "
        "state_changed_at = CASE WHEN state = 'starting' THEN now() ELSE state_changed_at END "
        "WHERE id = $1::bigint AND ended_at IS NULL"},
    [Q_B_APP_ID] = {"livy_sv_b_app_id",
        "UPDATE batches SET app_id = $2 WHERE id = $1::bigint AND app_id IS DISTINCT FROM $2"},
    [Q_B_FLAGS] = {"livy_sv_b_flags",
        "SELECT stop_requested, ended_at IS NOT NULL, deleted, state FROM batches "
        "WHERE id = $1::bigint"},
    /* As Q_APPEND_LOG, and how far into the output file these lines reach ($4), in the same
     * transaction: a supervisor that takes over reads on from there, neither losing nor
     * repeating a line. */
    [Q_B_APPEND_LOG] = {"livy_sv_b_append_log",
        "WITH b AS (UPDATE batches SET next_log_seq = next_log_seq + json_array_length($2::json), "
        "  log_offset = greatest(log_offset, $4::bigint) WHERE id = $1::bigint "
        "  RETURNING next_log_seq - json_array_length($2::json) AS base, next_log_seq AS next), "
        "ins AS (INSERT INTO batch_log (batch_id, seq, line) "
        "  SELECT $1::bigint, b.base + l.ord - 1, l.line "
        "  FROM b, json_array_elements_text($2::json) WITH ORDINALITY AS l(line, ord)) "
        "DELETE FROM batch_log WHERE batch_id = $1::bigint "
        "AND seq < (SELECT next FROM b) - $3::bigint"},
    [Q_B_END] = {"livy_sv_b_end",
        "UPDATE batches SET state = CASE WHEN ended_at IS NULL THEN $2::text ELSE state END, "
        "state_changed_at = CASE WHEN ended_at IS NULL THEN now() ELSE state_changed_at END, "
        "ended_at = coalesce(ended_at, now()), exit_status = coalesce($3::int, exit_status), "
        "pid = NULL WHERE id = $1::bigint"},
    [Q_B_EXPIRE] = {"livy_sv_b_expire",
        "UPDATE batches SET deleted = true WHERE NOT deleted AND ended_at IS NOT NULL "
        "AND ended_at < now() - $1::bigint * interval '1 millisecond' RETURNING id"},
    [Q_C_PENDING] = {"livy_sv_c_pending",
        "SELECT id, kind, code, cursor_pos FROM completions WHERE session_id = $1::bigint "
        "AND id > $2::bigint AND answered_at IS NULL ORDER BY id"},
    [Q_C_ANSWER] = {"livy_sv_c_answer",
        "UPDATE completions SET candidates = $3::json, answered_at = now() "
        "WHERE session_id = $1::bigint AND id = $2::bigint AND answered_at IS NULL"},
    /* A warm REPL's row: held by us, hidden (deleted) until POST /sessions takes it. */
    [Q_WARM_INSERT] = {"livy_sv_warm_insert",
        "INSERT INTO sessions (kind, supervisor_id, state, started_at, warm, deleted) "
        "VALUES ('pyspark', $1::bigint, 'starting', now(), true, true) RETURNING " SESSION_COLS},
    /* Stops a warm REPL unless a session has taken it meanwhile (no row then). */
    [Q_WARM_STOP] = {"livy_sv_warm_stop",
        "UPDATE sessions SET stop_requested = 'delete', state = 'shutting_down', "
        "state_changed_at = now() WHERE id = $1::bigint AND warm AND ended_at IS NULL "
        "AND stop_requested IS NULL RETURNING id"},
};

/* How long one query may take, from sending to the last byte of its answer (0: no limit). */
static long query_timeout_ms;

void store_sv_set_query_timeout(long ms)
{
    query_timeout_ms = ms;
}

static const char *timeout_text(apr_pool_t *p)
{
    return apr_psprintf(p, "no answer from the database within %ld ms", query_timeout_ms);
}

int store_sv_prepare(PGconn *conn, apr_pool_t *p, const char **errmsg)
{
    for (int i = 0; i < Q_COUNT; i++) {
        int timed_out;
        PGresult *res = livy_db_prepare(conn, queries[i].name, queries[i].sql, query_timeout_ms,
                                        &timed_out);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            *errmsg = apr_psprintf(p, "preparing %s: %s", queries[i].name,
                                   timed_out ? timeout_text(p) : livy_db_error(conn, p));
            return -1;
        }
    }
    return 0;
}

/* Runs prepared query q; returns the result when its status is the expected one, else NULL with
 * *errmsg set. The caller PQclear()s. */
static PGresult *run(PGconn *conn, int q, int nparams, const char *const *params,
                     ExecStatusType want, apr_pool_t *p, const char **errmsg)
{
    int timed_out;
    PGresult *res = livy_db_exec_prepared(conn, queries[q].name, nparams, params,
                                          query_timeout_ms, &timed_out);
    if (PQresultStatus(res) != want) {
        *errmsg = apr_psprintf(p, "%s: %s", queries[q].name,
                               timed_out ? timeout_text(p) : livy_db_error(conn, p));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int run_command(PGconn *conn, int q, int nparams, const char *const *params, apr_pool_t *p,
                       const char **errmsg)
{
    PGresult *res = run(conn, q, nparams, params, PGRES_COMMAND_OK, p, errmsg);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

static const char *i64(apr_int64_t v, apr_pool_t *p)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

static const char *int_text(int v, apr_pool_t *p)
{
    return apr_psprintf(p, "%d", v);
}

/* A nullable text column, copied into p. */
static const char *text_or_null(PGresult *res, int row, int col, apr_pool_t *p)
{
    return PQgetisnull(res, row, col) ? NULL : apr_pstrdup(p, PQgetvalue(res, row, col));
}

static int int_col(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : atoi(PQgetvalue(res, row, col));
}

static apr_int64_t i64_col(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : apr_atoi64(PQgetvalue(res, row, col));
}

static int bool_col(PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

static int compare_session_ids(const void *a, const void *b)
{
    apr_int64_t x = ((const store_sv_session_t *)a)->id, y = ((const store_sv_session_t *)b)->id;
    return x < y ? -1 : x > y;
}

/* Reads SESSION_COLS rows, sorted by id (RETURNING has no order). */
static apr_array_header_t *session_rows(PGresult *res, apr_pool_t *p)
{
    int n = PQntuples(res);
    apr_array_header_t *a = apr_array_make(p, n > 0 ? n : 1, sizeof(store_sv_session_t));
    for (int r = 0; r < n; r++) {
        store_sv_session_t *s = apr_array_push(a);
        s->id = i64_col(res, r, 0);
        s->kind = text_or_null(res, r, 1, p);
        s->name = text_or_null(res, r, 2, p);
        s->owner = text_or_null(res, r, 21, p);
        s->proxy_user = text_or_null(res, r, 3, p);
        s->driver_memory = text_or_null(res, r, 4, p);
        s->driver_cores = int_col(res, r, 5);
        s->executor_memory = text_or_null(res, r, 6, p);
        s->executor_cores = int_col(res, r, 7);
        s->num_executors = int_col(res, r, 8);
        s->queue = text_or_null(res, r, 9, p);
        s->conf = text_or_null(res, r, 10, p);
        s->jars = text_or_null(res, r, 11, p);
        s->py_files = text_or_null(res, r, 12, p);
        s->files = text_or_null(res, r, 13, p);
        s->archives = text_or_null(res, r, 14, p);
        s->state = text_or_null(res, r, 15, p);
        s->repl_pid = int_col(res, r, 16);
        s->repl_socket = text_or_null(res, r, 17, p);
        s->stop_requested = text_or_null(res, r, 18, p);
        s->app_id = text_or_null(res, r, 19, p);
        s->ended = bool_col(res, r, 20);
        s->warm = bool_col(res, r, 22);
        s->shared_driver = bool_col(res, r, 23);
    }
    qsort(a->elts, (size_t)a->nelts, sizeof(store_sv_session_t), compare_session_ids);
    return a;
}

int store_sv_register(PGconn *conn, const char *host, int pid, int capacity, apr_int64_t *id,
                      apr_pool_t *p, const char **errmsg)
{
    const char *params[] = {host, int_text(pid, p), int_text(capacity, p)};
    PGresult *res = run(conn, Q_REGISTER, 3, params, PGRES_TUPLES_OK, p, errmsg);
    if (!res)
        return -1;
    *id = i64_col(res, 0, 0);
    PQclear(res);
    return 0;
}

int store_sv_mark_stopped(PGconn *conn, apr_int64_t id, apr_pool_t *p, const char **errmsg)
{
    const char *params[] = {i64(id, p)};
    return run_command(conn, Q_MARK_STOPPED, 1, params, p, errmsg);
}

int store_sv_peers(PGconn *conn, const char *host, apr_int64_t me, apr_array_header_t **peers,
                   apr_pool_t *p, const char **errmsg)
{
    const char *params[] = {host, i64(me, p)};
    PGresult *res = run(conn, Q_PEERS, 2, params, PGRES_TUPLES_OK, p, errmsg);
    if (!res)
        return -1;
    int n = PQntuples(res);
    *peers = apr_array_make(p, n > 0 ? n : 1, sizeof(store_sv_peer_t));
    for (int r = 0; r < n; r++) {
        store_sv_peer_t *peer = apr_array_push(*peers);
        peer->id = i64_col(res, r, 0);
        peer->pid = int_col(res, r, 1);
        peer->stopped = bool_col(res, r, 2);
        peer->heartbeat_age_ms = i64_col(res, r, 3);
    }
    PQclear(res);
    return 0;
}

int store_sv_takeover(PGconn *conn, apr_int64_t old, apr_int64_t me, apr_array_header_t **sessions,
                      apr_pool_t *p, const char **errmsg)
{
    const char *params[] = {i64(old, p), i64(me, p)};
    PGresult *res = run(conn, Q_TAKEOVER, 2, params, PGRES_TUPLES_OK, p, errmsg);
    if (!res)
        return -1;
    *sessions = session_rows(res, p);
    PQclear(res);
    return 0;
}

/* ---- requests the supervisor sends without waiting (sv_db.c), and their answers ---- */

static void req(store_sv_req_t *r, int q, int nparams)
{
    memset(r, 0, sizeof *r);
    r->q = q;
    r->nparams = nparams;
}

int store_sv_req_prepare(store_sv_req_t *r, int i)
{
    if (i < 0 || i >= Q_COUNT)
        return 0;
    req(r, i, 0);
    r->name = queries[i].name;
    r->sql = queries[i].sql;
    return 1;
}

void store_sv_req_simple(store_sv_req_t *r, const char *sql)
{
    req(r, 0, 0);
    r->sql = sql;
}

const char *store_sv_req_name(const store_sv_req_t *r)
{
    if (r->sql)
        return r->name ? r->name : "setup";
    return queries[r->q].name;
}

int store_sv_req_wants_rows(const store_sv_req_t *r)
{
    if (r->sql)
        return 0;
    switch (r->q) {
    case Q_HEARTBEAT:
    case Q_REAP:
    case Q_CLAIM:
    case Q_MINE:
    case Q_FLAGS:
    case Q_TIMEOUTS:
    case Q_EXPIRE:
    case Q_PURGE:
    case Q_PENDING:
    case Q_B_REAP:
    case Q_B_CLAIM:
    case Q_B_MINE:
    case Q_B_FLAGS:
    case Q_B_EXPIRE:
    case Q_C_PENDING:
    case Q_WARM_INSERT:
    case Q_WARM_STOP:
        return 1;
    default:
        return 0;
    }
}

const char *store_sv_check(PGresult *res, const store_sv_req_t *r, PGconn *conn, apr_pool_t *p)
{
    ExecStatusType want = store_sv_req_wants_rows(r) ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
    if (res && PQresultStatus(res) == want)
        return NULL;
    const char *why = res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                          : livy_db_error(conn, p);
    char *msg = apr_psprintf(p, "%s%s: %s", r->sql && r->name ? "preparing " : "",
                             store_sv_req_name(r), why);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    return msg;
}

void store_sv_req_heartbeat(store_sv_req_t *r, apr_int64_t id, apr_pool_t *p)
{
    req(r, Q_HEARTBEAT, 1);
    r->params[0] = i64(id, p);
}

int store_sv_parse_heartbeat(PGresult *res, apr_int64_t id, int *was_stopped, apr_pool_t *p,
                             const char **errmsg)
{
    if (PQntuples(res) != 1) {
        *errmsg = apr_psprintf(p, "the supervisors row %" APR_INT64_T_FMT " has disappeared", id);
        return -1;
    }
    *was_stopped = bool_col(res, 0, 0);
    return 0;
}

void store_sv_req_reap(store_sv_req_t *r, apr_int64_t me, apr_int64_t dead_after_ms,
                       apr_int64_t now_ms, apr_pool_t *p)
{
    req(r, Q_REAP, 3);
    r->params[0] = i64(me, p);
    r->params[1] = i64(dead_after_ms, p);
    r->params[2] = i64(now_ms, p);
}

void store_sv_req_claim(store_sv_req_t *r, apr_int64_t me, int n, apr_pool_t *p)
{
    req(r, Q_CLAIM, 2);
    r->params[0] = i64(me, p);
    r->params[1] = int_text(n, p);
}

void store_sv_req_warm_insert(store_sv_req_t *r, apr_int64_t me, apr_pool_t *p)
{
    req(r, Q_WARM_INSERT, 1);
    r->params[0] = i64(me, p);
}

void store_sv_req_warm_stop(store_sv_req_t *r, apr_int64_t session, apr_pool_t *p)
{
    req(r, Q_WARM_STOP, 1);
    r->params[0] = i64(session, p);
}

void store_sv_req_mine(store_sv_req_t *r, apr_int64_t me, apr_pool_t *p)
{
    req(r, Q_MINE, 1);
    r->params[0] = i64(me, p);
}

apr_array_header_t *store_sv_parse_sessions(PGresult *res, apr_pool_t *p)
{
    return session_rows(res, p);
}

void store_sv_req_set_child(store_sv_req_t *r, apr_int64_t session, int pid,
                            const char *socket_path, apr_pool_t *p)
{
    req(r, Q_SET_CHILD, 3);
    r->params[0] = i64(session, p);
    r->params[1] = int_text(pid, p);
    r->params[2] = socket_path;
}

void store_sv_req_clear_child(store_sv_req_t *r, apr_int64_t session, apr_pool_t *p)
{
    req(r, Q_CLEAR_CHILD, 1);
    r->params[0] = i64(session, p);
}

void store_sv_req_set_ready(store_sv_req_t *r, apr_int64_t session, const char *app_id,
                            const char *spark_ui_url, apr_pool_t *p)
{
    req(r, Q_READY, 3);
    r->params[0] = i64(session, p);
    r->params[1] = app_id;
    r->params[2] = spark_ui_url;
}

void store_sv_req_flags(store_sv_req_t *r, apr_int64_t session, apr_pool_t *p)
{
    req(r, Q_FLAGS, 1);
    r->params[0] = i64(session, p);
}

void store_sv_parse_flags(PGresult *res, store_sv_flags_t *flags, apr_pool_t *p)
{
    memset(flags, 0, sizeof *flags);
    if (PQntuples(res) == 1) {
        flags->found = 1;
        flags->stop_requested = text_or_null(res, 0, 0, p);
        flags->ended = bool_col(res, 0, 1);
        flags->deleted = bool_col(res, 0, 2);
        flags->state = text_or_null(res, 0, 3, p);
        flags->warm = bool_col(res, 0, 4);
        flags->kind = text_or_null(res, 0, 5, p);
    }
}

void store_sv_req_shutting_down(store_sv_req_t *r, apr_int64_t session, apr_pool_t *p)
{
    req(r, Q_SHUTTING_DOWN, 1);
    r->params[0] = i64(session, p);
}

void store_sv_req_end(store_sv_req_t *r, apr_int64_t session, const char *state,
                      apr_int64_t now_ms, const char *why, apr_pool_t *p)
{
    req(r, Q_END, 4);
    r->params[0] = i64(session, p);
    r->params[1] = state;
    r->params[2] = i64(now_ms, p);
    r->params[3] = why;
}

void store_sv_req_append_log(store_sv_req_t *r, apr_int64_t session, const char *lines_json,
                             int max_lines, apr_pool_t *p)
{
    req(r, Q_APPEND_LOG, 3);
    r->params[0] = i64(session, p);
    r->params[1] = lines_json;
    r->params[2] = int_text(max_lines, p);
}

void store_sv_req_timeouts(store_sv_req_t *r, apr_int64_t me, apr_int64_t idle_default_ms,
                           apr_int64_t ttl_default_ms, apr_pool_t *p)
{
    req(r, Q_TIMEOUTS, 3);
    r->params[0] = i64(me, p);
    r->params[1] = i64(idle_default_ms, p);
    r->params[2] = i64(ttl_default_ms, p);
}

apr_array_header_t *store_sv_parse_timeouts(PGresult *res, apr_pool_t *p)
{
    int n = PQntuples(res);
    apr_array_header_t *a = apr_array_make(p, n > 0 ? n : 1, sizeof(store_sv_timeout_t));
    for (int r = 0; r < n; r++) {
        store_sv_timeout_t *t = apr_array_push(a);
        t->id = i64_col(res, r, 0);
        t->reason = text_or_null(res, r, 1, p);
        t->limit_ms = i64_col(res, r, 2);
    }
    return a;
}

void store_sv_req_expire_ended(store_sv_req_t *r, apr_int64_t list_ms, apr_pool_t *p)
{
    req(r, Q_EXPIRE, 1);
    r->params[0] = i64(list_ms, p);
}

apr_array_header_t *store_sv_parse_ids(PGresult *res, apr_pool_t *p)
{
    int n = PQntuples(res);
    apr_array_header_t *a = apr_array_make(p, n > 0 ? n : 1, sizeof(apr_int64_t));
    for (int r = 0; r < n; r++)
        APR_ARRAY_PUSH(a, apr_int64_t) = i64_col(res, r, 0);
    return a;
}

void store_sv_req_purge(store_sv_req_t *r, apr_int64_t retain_ms, int limit, apr_pool_t *p)
{
    req(r, Q_PURGE, 2);
    r->params[0] = i64(retain_ms, p);
    r->params[1] = int_text(limit, p);
}

void store_sv_parse_purge(PGresult *res, apr_array_header_t **sessions, int *supervisors,
                          int *batches, int *locked, apr_pool_t *p)
{
    *locked = bool_col(res, 0, 0);
    *supervisors = int_col(res, 0, 1);
    *batches = int_col(res, 0, 3);
    *sessions = apr_array_make(p, 8, sizeof(apr_int64_t));
    const char *ids = PQgetvalue(res, 0, 2);
    for (const char *c = ids; *c;) {
        if (*c >= '0' && *c <= '9') {
            char *end;
            APR_ARRAY_PUSH(*sessions, apr_int64_t) = strtoll(c, &end, 10);
            c = end;
        }
        else
            c++;
    }
}

void store_sv_req_pending(store_sv_req_t *r, apr_int64_t session, int from_id, apr_pool_t *p)
{
    req(r, Q_PENDING, 2);
    r->params[0] = i64(session, p);
    r->params[1] = int_text(from_id, p);
}

apr_array_header_t *store_sv_parse_pending(PGresult *res, apr_pool_t *p)
{
    int n = PQntuples(res);
    apr_array_header_t *a = apr_array_make(p, n > 0 ? n : 1, sizeof(store_sv_statement_t));
    for (int r = 0; r < n; r++) {
        store_sv_statement_t *st = apr_array_push(a);
        st->id = int_col(res, r, 0);
        st->code = text_or_null(res, r, 1, p);
        st->kind = text_or_null(res, r, 2, p);
        st->state = text_or_null(res, r, 3, p);
        st->cancel_requested = bool_col(res, r, 4);
    }
    return a;
}

void store_sv_req_started(store_sv_req_t *r, apr_int64_t session, int id, apr_int64_t started_ms,
                          apr_pool_t *p)
{
    req(r, Q_STARTED, 3);
    r->params[0] = i64(session, p);
    r->params[1] = int_text(id, p);
    r->params[2] = i64(started_ms, p);
}

void store_sv_req_cancelling(store_sv_req_t *r, apr_int64_t session, int id, apr_pool_t *p)
{
    req(r, Q_CANCELLING, 2);
    r->params[0] = i64(session, p);
    r->params[1] = int_text(id, p);
}

void store_sv_req_progress(store_sv_req_t *r, apr_int64_t session, int id, double progress,
                           apr_pool_t *p)
{
    if (progress < 0)
        progress = 0;
    if (progress > 1)
        progress = 1;
    req(r, Q_PROGRESS, 3);
    r->params[0] = i64(session, p);
    r->params[1] = int_text(id, p);
    r->params[2] = apr_psprintf(p, "%.6f", progress);
}

void store_sv_req_result(store_sv_req_t *r, apr_int64_t session, int id, const char *state,
                         const char *output_json, apr_int64_t started_ms,
                         apr_int64_t completed_ms, apr_pool_t *p)
{
    req(r, Q_RESULT, 6);
    r->params[0] = i64(session, p);
    r->params[1] = int_text(id, p);
    r->params[2] = state;
    r->params[3] = output_json;
    r->params[4] = i64(completed_ms, p);
    r->params[5] = i64(started_ms, p);
}

/* ---- completions ---- */

void store_sv_req_completions(store_sv_req_t *r, apr_int64_t session, apr_int64_t after,
                              apr_pool_t *p)
{
    req(r, Q_C_PENDING, 2);
    r->params[0] = i64(session, p);
    r->params[1] = i64(after, p);
}

apr_array_header_t *store_sv_parse_completions(PGresult *res, apr_pool_t *p)
{
    int n = PQntuples(res);
    apr_array_header_t *a = apr_array_make(p, n > 0 ? n : 1, sizeof(store_sv_completion_t));
    for (int r = 0; r < n; r++) {
        store_sv_completion_t *c = apr_array_push(a);
        c->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        c->kind = text_or_null(res, r, 1, p);
        c->code = text_or_null(res, r, 2, p);
        c->cursor = strtoll(PQgetvalue(res, r, 3), NULL, 10);
    }
    return a;
}

void store_sv_req_completion_answer(store_sv_req_t *r, apr_int64_t session, apr_int64_t id,
                                    const char *candidates_json, apr_pool_t *p)
{
    req(r, Q_C_ANSWER, 3);
    r->params[0] = i64(session, p);
    r->params[1] = i64(id, p);
    r->params[2] = candidates_json;
}

/* ---- batches ---- */

static int compare_batch_ids(const void *a, const void *b)
{
    apr_int64_t x = ((const store_sv_batch_t *)a)->id, y = ((const store_sv_batch_t *)b)->id;
    return x < y ? -1 : x > y;
}

/* Reads BATCH_COLS rows, sorted by id. */
apr_array_header_t *store_sv_parse_batches(PGresult *res, apr_pool_t *p)
{
    int n = PQntuples(res);
    apr_array_header_t *a = apr_array_make(p, n > 0 ? n : 1, sizeof(store_sv_batch_t));
    for (int r = 0; r < n; r++) {
        store_sv_batch_t *b = apr_array_push(a);
        b->id = i64_col(res, r, 0);
        b->name = text_or_null(res, r, 1, p);
        b->owner = text_or_null(res, r, 2, p);
        b->proxy_user = text_or_null(res, r, 3, p);
        b->state = text_or_null(res, r, 4, p);
        b->app_id = text_or_null(res, r, 5, p);
        b->file = text_or_null(res, r, 6, p);
        b->class_name = text_or_null(res, r, 7, p);
        b->args = text_or_null(res, r, 8, p);
        b->driver_memory = text_or_null(res, r, 9, p);
        b->driver_cores = int_col(res, r, 10);
        b->executor_memory = text_or_null(res, r, 11, p);
        b->executor_cores = int_col(res, r, 12);
        b->num_executors = int_col(res, r, 13);
        b->queue = text_or_null(res, r, 14, p);
        b->conf = text_or_null(res, r, 15, p);
        b->jars = text_or_null(res, r, 16, p);
        b->py_files = text_or_null(res, r, 17, p);
        b->files = text_or_null(res, r, 18, p);
        b->archives = text_or_null(res, r, 19, p);
        b->pid = int_col(res, r, 20);
        b->ended = bool_col(res, r, 21);
        b->stop_requested = bool_col(res, r, 22);
        b->log_offset = i64_col(res, r, 23);
    }
    qsort(a->elts, (size_t)a->nelts, sizeof(store_sv_batch_t), compare_batch_ids);
    return a;
}

int store_sv_takeover_batches(PGconn *conn, apr_int64_t old, apr_int64_t me,
                              apr_array_header_t **batches, apr_pool_t *p, const char **errmsg)
{
    const char *params[] = {i64(old, p), i64(me, p)};
    PGresult *res = run(conn, Q_B_TAKEOVER, 2, params, PGRES_TUPLES_OK, p, errmsg);
    if (!res)
        return -1;
    *batches = store_sv_parse_batches(res, p);
    PQclear(res);
    return 0;
}

void store_sv_req_batch_reap(store_sv_req_t *r, apr_int64_t me, apr_int64_t dead_after_ms,
                             apr_pool_t *p)
{
    req(r, Q_B_REAP, 2);
    r->params[0] = i64(me, p);
    r->params[1] = i64(dead_after_ms, p);
}

void store_sv_req_batch_claim(store_sv_req_t *r, apr_int64_t me, int n, apr_pool_t *p)
{
    req(r, Q_B_CLAIM, 2);
    r->params[0] = i64(me, p);
    r->params[1] = int_text(n, p);
}

void store_sv_req_batch_mine(store_sv_req_t *r, apr_int64_t me, apr_pool_t *p)
{
    req(r, Q_B_MINE, 1);
    r->params[0] = i64(me, p);
}

void store_sv_req_batch_running(store_sv_req_t *r, apr_int64_t batch, int pid, apr_pool_t *p)
{
    req(r, Q_B_RUNNING, 2);
    r->params[0] = i64(batch, p);
    r->params[1] = int_text(pid, p);
}

void store_sv_req_batch_app_id(store_sv_req_t *r, apr_int64_t batch, const char *app_id,
                               apr_pool_t *p)
{
    req(r, Q_B_APP_ID, 2);
    r->params[0] = i64(batch, p);
    r->params[1] = app_id;
}

void store_sv_req_batch_flags(store_sv_req_t *r, apr_int64_t batch, apr_pool_t *p)
{
    req(r, Q_B_FLAGS, 1);
    r->params[0] = i64(batch, p);
}

void store_sv_parse_batch_flags(PGresult *res, store_sv_flags_t *flags, apr_pool_t *p)
{
    memset(flags, 0, sizeof *flags);
    if (PQntuples(res) == 1) {
        flags->found = 1;
        flags->stop_requested = bool_col(res, 0, 0) ? "delete" : NULL;
        flags->ended = bool_col(res, 0, 1);
        flags->deleted = bool_col(res, 0, 2);
        flags->state = text_or_null(res, 0, 3, p);
        flags->warm = bool_col(res, 0, 4);
        flags->kind = text_or_null(res, 0, 5, p);
    }
}

void store_sv_req_batch_append_log(store_sv_req_t *r, apr_int64_t batch, const char *lines_json,
                                   int max_lines, apr_int64_t offset, apr_pool_t *p)
{
    req(r, Q_B_APPEND_LOG, 4);
    r->params[0] = i64(batch, p);
    r->params[1] = lines_json;
    r->params[2] = int_text(max_lines, p);
    r->params[3] = i64(offset, p);
}

void store_sv_req_batch_end(store_sv_req_t *r, apr_int64_t batch, const char *state,
                            int exit_status, apr_pool_t *p)
{
    req(r, Q_B_END, 3);
    r->params[0] = i64(batch, p);
    r->params[1] = state;
    r->params[2] = exit_status >= 0 ? int_text(exit_status, p) : NULL;
}

void store_sv_req_batch_expire(store_sv_req_t *r, apr_int64_t list_ms, apr_pool_t *p)
{
    req(r, Q_B_EXPIRE, 1);
    r->params[0] = i64(list_ms, p);
}
