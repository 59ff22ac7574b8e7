/* livy_store: the API's SQL, as named prepared statements prepared once per connection. */
#include "livy_store.h"

#include "livy_db.h"

#include <stdio.h>
#include <string.h>

/* The session columns every session query returns (see SC_* in livy_store.h). `s` is the row. */
#define SESSION_COLS \
    "s.id, s.name, s.app_id, s.owner, s.proxy_user, s.state, s.kind, s.driver_log_url, " \
    "s.spark_ui_url, s.ttl, s.idle_timeout, s.driver_memory, s.driver_cores, " \
    "s.executor_memory, s.executor_cores, s.conf, s.archives, s.files, s.heartbeat_timeout_s, " \
    "s.jars, s.num_executors, s.py_files, s.queue, "
/* The last 10 log lines, oldest first, as a JSON array of strings (kept on the row by the
 * log's triggers: see sql/003_log_tails.sql). */
#define SESSION_LOG10 "s.log_tail"
#define SESSION_TAIL ", s.ended_at IS NOT NULL, s.next_statement_id" HEARTBEAT_DUE

/* Whether this per-session request must record a heartbeat: only for sessions that asked for
 * one, and at most once a second, so that polling clients do not turn every GET into a write. */
#define HEARTBEAT_DUE \
    ", s.heartbeat_timeout_s > 0 AND s.ended_at IS NULL" \
    " AND s.last_heartbeat_at < now() - interval '1 second'"

/* The batch columns every batch query returns (see BC_* in livy_store.h). `b` is the row. */
#define BATCH_COLS \
    "b.id, b.name, b.owner, b.proxy_user, b.state, b.app_id, b.driver_log_url, "
#define BATCH_LOG10 "b.log_tail"

#define STATEMENT_COLS "id, code, state, output, progress, started, completed"
#define EPOCH_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"
/* The most code a new statement's NOTIFY carries ("session:id:kind:code"). */
#define LIVY_NOTIFY_CODE_MAX "7680"
#define ENDED_STATES "('shutting_down','error','dead','killed','success')"

static const char *const query_sql[Q__COUNT] = {
    [Q_VERSION] = "SELECT coalesce(max(version), 0) FROM livy_schema_version",

    [Q_SESSION_BY_ID] =
        "SELECT " SESSION_COLS SESSION_LOG10 SESSION_TAIL
        " FROM sessions s WHERE s.id = $1 AND NOT s.deleted",

    /* GET /sessions/{id}/statements/{sid} in one round trip: the session (for the 404 and the
     * access check) and, after its columns, the statement's, NULL when there is none. */
    [Q_SESSION_STATEMENT] =
        "SELECT " SESSION_COLS SESSION_LOG10 SESSION_TAIL
        ", st.id, st.code, st.state, st.output, st.progress, st.started, st.completed"
        " FROM sessions s LEFT JOIN statements st ON st.session_id = s.id AND st.id = $2"
        " WHERE s.id = $1 AND NOT s.deleted",

    [Q_SESSION_BY_NAME] =
        "SELECT " SESSION_COLS SESSION_LOG10 SESSION_TAIL
        " FROM sessions s WHERE s.name = $1 AND NOT s.deleted"
        " ORDER BY s.ended_at IS NULL DESC, s.id DESC LIMIT 1",

    /* total first, then the page; the LEFT JOIN keeps the total when the page is empty. The
     * log is read only where the requester may view it ($3: every session; $4: the requester,
     * who may view the sessions they own or are the proxy user of), NULL elsewhere. */
    [Q_SESSIONS_PAGE] =
        "SELECT c.listed, p.* FROM session_count c LEFT JOIN LATERAL ("
        " SELECT " SESSION_COLS "CASE WHEN $3::boolean OR s.owner = $4 OR s.proxy_user = $4 THEN "
        SESSION_LOG10 " END" SESSION_TAIL
        " FROM sessions s WHERE NOT s.deleted ORDER BY s.id OFFSET $1 LIMIT $2) p ON true",

    /* A ready warm REPL (sql/005_warm_sessions.sql) serves the new session when $21 says its
     * settings allow: its row becomes the session's, idle at once; else a fresh row. Either
     * way its supervisor hears of it (a warm row's: the flags say it was taken). */
    [Q_SESSION_INSERT] =
        "WITH w AS (SELECT id FROM sessions WHERE $21::boolean AND warm AND state = 'idle'"
        " AND ended_at IS NULL AND stop_requested IS NULL ORDER BY id LIMIT 1"
        " FOR UPDATE SKIP LOCKED),"
        " t AS (UPDATE sessions s SET warm = false, deleted = false, name = $1, kind = $2,"
        " owner = $3, heartbeat_timeout_s = $16::int, ttl = $17, idle_timeout = $18,"
        " ttl_ms = $19::bigint, idle_timeout_ms = $20::bigint, created_at = now(),"
        " ready_at = now(), state_changed_at = now(), last_activity_at = now(),"
        " last_heartbeat_at = now() FROM w WHERE s.id = w.id RETURNING s.*),"
        " i AS (INSERT INTO sessions (name, kind, owner, proxy_user, driver_memory,"
        " driver_cores, executor_memory, executor_cores, num_executors, queue, conf, jars,"
        " py_files, files, archives, heartbeat_timeout_s, ttl, idle_timeout, ttl_ms,"
        " idle_timeout_ms, shared_driver) SELECT $1, $2, $3, $4, $5, $6::int, $7, $8::int,"
        " $9::int, $10, $11::json, $12::json, $13::json, $14::json, $15::json, $16::int, $17,"
        " $18, $19::bigint, $20::bigint, $22::boolean WHERE NOT EXISTS (SELECT 1 FROM t)"
        " RETURNING *),"
        " s AS (SELECT * FROM t UNION ALL SELECT * FROM i),"
        " n AS (SELECT pg_notify('livy_sessions', id::text) FROM s)"
        " SELECT " SESSION_COLS SESSION_LOG10 SESSION_TAIL " FROM s, n",

    [Q_SESSION_DELETE] =
        "WITH u AS (UPDATE sessions SET deleted = true,"
        " stop_requested = CASE WHEN ended_at IS NULL THEN 'delete' ELSE stop_requested END,"
        " state = CASE WHEN ended_at IS NOT NULL THEN state"
        "  WHEN supervisor_id IS NULL THEN 'dead' ELSE 'shutting_down' END,"
        " ended_at = CASE WHEN ended_at IS NULL AND supervisor_id IS NULL THEN now()"
        "  ELSE ended_at END,"
        " state_changed_at = now()"
        " WHERE id = $1 AND NOT deleted RETURNING id),"
        " n AS (SELECT pg_notify('livy_sessions', id::text) FROM u)"
        " SELECT count(*) FROM n",

    [Q_SESSION_STOP] =
        "WITH u AS (UPDATE sessions SET stop_requested = 'stop',"
        " state = CASE WHEN supervisor_id IS NULL THEN 'dead' ELSE 'shutting_down' END,"
        " ended_at = CASE WHEN supervisor_id IS NULL THEN now() ELSE NULL END,"
        " state_changed_at = now()"
        " WHERE id = $1 AND NOT deleted AND ended_at IS NULL AND state <> 'shutting_down'"
        " RETURNING id),"
        " n AS (SELECT pg_notify('livy_sessions', id::text) FROM u)"
        " SELECT count(*) FROM n",

    [Q_SESSION_HEARTBEAT] =
        "WITH " LIVY_SQL_ASYNC_COMMIT
        " UPDATE sessions SET last_heartbeat_at = now() FROM async_commit"
        " WHERE id = $1 AND ended_at IS NULL",

    [Q_SESSION_ACTIVITY] =
        "WITH " LIVY_SQL_ASYNC_COMMIT
        " UPDATE sessions SET last_activity_at = now() FROM async_commit"
        " WHERE id = $1 AND NOT deleted",

    [Q_STATEMENT_INSERT] =
        "WITH s AS (UPDATE sessions SET next_statement_id = next_statement_id + 1,"
        " last_activity_at = now()"
        " WHERE id = $1 AND NOT deleted AND ended_at IS NULL AND state NOT IN " ENDED_STATES
        " AND ($3::text IS NOT NULL OR kind <> 'shared')"
        " RETURNING id, next_statement_id - 1 AS sid, kind),"
        " ins AS (INSERT INTO statements (session_id, id, code, kind)"
        " SELECT s.id, s.sid, $2, coalesce($3, s.kind) FROM s"
        " RETURNING session_id, kind, " STATEMENT_COLS "),"
        /* the statement itself rides along when it fits NOTIFY's payload (under 8000 bytes):
         * its supervisor sends it to the REPL without reading it back */
        " n AS (SELECT pg_notify('livy_statements', session_id::text"
        "  || CASE WHEN octet_length(code) <= " LIVY_NOTIFY_CODE_MAX " THEN ':' || id || ':'"
        "  || kind || ':' || code ELSE '' END) FROM ins)"
        " SELECT ins.id, ins.code, ins.state, ins.output, ins.progress, ins.started,"
        " ins.completed FROM ins, n",

    [Q_STATEMENT_GET] =
        "SELECT " STATEMENT_COLS " FROM statements WHERE session_id = $1 AND id = $2",

    [Q_STATEMENTS_ASC] =
        /* ids are gapless from 0: a page is an index range, never an OFFSET scan */
        "SELECT " STATEMENT_COLS " FROM statements WHERE session_id = $1 AND id >= $2::bigint"
        " ORDER BY id LIMIT $3",

    [Q_STATEMENTS_DESC] =
        "SELECT " STATEMENT_COLS " FROM statements WHERE session_id = $1"
        " AND id < $4::bigint - $2::bigint ORDER BY id DESC LIMIT $3",

    /* waiting → cancelled at once; running → the supervisor sees cancel_requested */
    [Q_STATEMENT_CANCEL] =
        "WITH u AS (UPDATE statements SET cancel_requested = true,"
        " state = CASE WHEN state = 'waiting' THEN 'cancelled' ELSE state END,"
        " progress = CASE WHEN state = 'waiting' THEN 1 ELSE progress END,"
        " completed = CASE WHEN state = 'waiting' THEN " EPOCH_MS " ELSE completed END"
        " WHERE session_id = $1 AND id = $2 AND state IN ('waiting','running','cancelling')"
        " RETURNING session_id),"
        " a AS (UPDATE sessions SET last_activity_at = now() WHERE id = $1"
        "  AND EXISTS (SELECT 1 FROM statements WHERE session_id = $1 AND id = $2) RETURNING id),"
        " n AS (SELECT pg_notify('livy_statements', session_id::text) FROM u)"
        " SELECT (SELECT count(*) FROM n), (SELECT count(*) FROM a),"
        " EXISTS (SELECT 1 FROM statements WHERE session_id = $1 AND id = $2)",

    /* One user's share of the servers and the starts under way: live sessions and live batches
     * count alike. */
    [Q_SESSION_COUNTS] =
        "SELECT count(*) FILTER (WHERE owner = $1), count(*) FILTER (WHERE starting) FROM ("
        " SELECT owner, state IN ('not_started','starting') AS starting FROM sessions"
        "  WHERE ended_at IS NULL AND NOT deleted"
        " UNION ALL"
        " SELECT owner, state = 'starting' FROM batches WHERE ended_at IS NULL AND NOT deleted"
        ") live",

    [Q_LOG_TOTAL] = "SELECT count(*) FROM session_log WHERE session_id = $1",

    [Q_LOG_PAGE] =
        "SELECT line FROM session_log WHERE session_id = $1 ORDER BY seq OFFSET $2 LIMIT $3",

    [Q_BATCH_BY_ID] =
        "SELECT " BATCH_COLS BATCH_LOG10 " FROM batches b WHERE b.id = $1 AND NOT b.deleted",

    [Q_BATCH_BY_NAME] =
        "SELECT " BATCH_COLS BATCH_LOG10 " FROM batches b WHERE b.name = $1 AND NOT b.deleted"
        " ORDER BY b.ended_at IS NULL DESC, b.id DESC LIMIT 1",

    /* as Q_SESSIONS_PAGE */
    [Q_BATCHES_PAGE] =
        "SELECT c.listed, p.* FROM batch_count c LEFT JOIN LATERAL ("
        " SELECT " BATCH_COLS "CASE WHEN $3::boolean OR b.owner = $4 OR b.proxy_user = $4 THEN "
        BATCH_LOG10 " END"
        " FROM batches b WHERE NOT b.deleted ORDER BY b.id OFFSET $1 LIMIT $2) p ON true",

    /* starting and unclaimed (supervisor_id NULL): the supervisors' queue. $1 and $3 to $15
     * are in the order of Q_SESSION_INSERT's (the Spark settings both share). */
    [Q_BATCH_INSERT] =
        "WITH b AS (INSERT INTO batches (name, file, owner, proxy_user, driver_memory,"
        " driver_cores, executor_memory, executor_cores, num_executors, queue, conf, jars,"
        " py_files, files, archives, class_name, args, state) VALUES ($1, $2, $3, $4, $5,"
        " $6::int, $7, $8::int, $9::int, $10, $11::json, $12::json, $13::json, $14::json,"
        " $15::json, $16, $17::json, 'starting') RETURNING *),"
        " n AS (SELECT pg_notify('livy_batches', id::text) FROM b)"
        " SELECT " BATCH_COLS "'[]'::json FROM b, n",

    /* Gone from the API at once; an unclaimed batch is killed here, a claimed one by its
     * supervisor, which sees stop_requested and records the end. */
    [Q_BATCH_DELETE] =
        "WITH u AS (UPDATE batches SET deleted = true, stop_requested = true,"
        " state = CASE WHEN supervisor_id IS NULL AND ended_at IS NULL THEN 'killed'"
        "  ELSE state END,"
        " ended_at = CASE WHEN supervisor_id IS NULL AND ended_at IS NULL THEN now()"
        "  ELSE ended_at END,"
        " state_changed_at = CASE WHEN supervisor_id IS NULL AND ended_at IS NULL THEN now()"
        "  ELSE state_changed_at END"
        " WHERE id = $1 AND NOT deleted RETURNING id),"
        " n AS (SELECT pg_notify('livy_batches', id::text) FROM u)"
        " SELECT count(*) FROM n",

    [Q_BATCH_LOG_TOTAL] = "SELECT count(*) FROM batch_log WHERE batch_id = $1",

    [Q_BATCH_LOG_PAGE] =
        "SELECT line FROM batch_log WHERE batch_id = $1 ORDER BY seq OFFSET $2 LIMIT $3",

    /* GET /metrics, one row per fact (MC_* in livy_metrics.h): sessions listed or still live
     * by state and kind, their statements by state, the duration histogram's buckets ($1: the
     * bounds) with its count and sum, the supervisors not stopped, the schema version. */
    [Q_METRICS] =
        "WITH counted AS (SELECT id, state, kind FROM sessions"
        "  WHERE (NOT deleted OR ended_at IS NULL) AND NOT warm),"
        " done AS (SELECT ((completed - started) / 1000.0)::float8 AS d FROM statements"
        "  WHERE started > 0 AND completed > 0 AND completed >= started),"
        " started AS (SELECT extract(epoch FROM ready_at - created_at)::float8 AS d"
        "  FROM sessions WHERE ready_at IS NOT NULL AND NOT warm)"
        " SELECT 'session'::text, state, kind, count(*)::text, NULL::text, NULL::text,"
        "  NULL::text FROM counted GROUP BY state, kind"
        " UNION ALL SELECT 'statement', st.state, NULL, count(*)::text, NULL, NULL, NULL"
        "  FROM statements st JOIN counted c ON c.id = st.session_id GROUP BY st.state"
        " UNION ALL SELECT 'bucket', b.i::text, NULL, count(done.d)::text, NULL, NULL, NULL"
        "  FROM unnest($1::float8[]) WITH ORDINALITY AS b(le, i)"
        "  LEFT JOIN done ON done.d <= b.le GROUP BY b.i"
        " UNION ALL SELECT 'duration', NULL, NULL, count(*)::text, coalesce(sum(d), 0)::text,"
        "  NULL, NULL FROM done"
        " UNION ALL SELECT 'start_bucket', b.i::text, NULL, count(started.d)::text, NULL, NULL,"
        "  NULL FROM unnest($2::float8[]) WITH ORDINALITY AS b(le, i)"
        "  LEFT JOIN started ON started.d <= b.le GROUP BY b.i"
        " UNION ALL SELECT 'start', NULL, NULL, count(*)::text, coalesce(sum(d), 0)::text,"
        "  NULL, NULL FROM started"
        " UNION ALL SELECT 'batch', state, NULL, count(*)::text, NULL, NULL, NULL"
        "  FROM batches WHERE NOT deleted OR ended_at IS NULL GROUP BY state"
        " UNION ALL SELECT 'supervisor', v.id::text, v.host,"
        "  greatest(0, extract(epoch FROM now() - v.heartbeat_at))::text, v.capacity::text,"
        "  coalesce(held.n, 0)::text, coalesce(ran.n, 0)::text"
        "  FROM supervisors v LEFT JOIN (SELECT supervisor_id, count(*) AS n FROM sessions"
        "   WHERE ended_at IS NULL AND NOT warm GROUP BY supervisor_id) held"
        "   ON held.supervisor_id = v.id"
        "  LEFT JOIN (SELECT supervisor_id, count(*) AS n FROM batches"
        "   WHERE ended_at IS NULL GROUP BY supervisor_id) ran ON ran.supervisor_id = v.id"
        "  WHERE v.stopped_at IS NULL"
        " UNION ALL SELECT 'warm', supervisor_id::text, NULL,"
        "  (count(*) FILTER (WHERE state = 'idle'))::text,"
        "  (count(*) FILTER (WHERE state <> 'idle'))::text, NULL, NULL FROM sessions"
        "  WHERE warm AND ended_at IS NULL AND stop_requested IS NULL GROUP BY supervisor_id"
        " UNION ALL SELECT 'info', NULL, NULL,"
        "  (SELECT coalesce(max(version), 0) FROM livy_schema_version)::text, NULL, NULL, NULL"
        " ORDER BY 1, 2, 3", /* stable output: samples sorted by their labels */
    /* The web UI's supervisors page: each supervisor running or stopped within the hour, with
     * its live sessions and batches; epoch milliseconds, the database's clock. */
    [Q_WEBUI_SUPERVISORS] =
        "SELECT v.id, v.host, v.pid, v.capacity,"
        " (extract(epoch from v.started_at) * 1000)::bigint,"
        " (extract(epoch from v.heartbeat_at) * 1000)::bigint,"
        " greatest(0, (extract(epoch from clock_timestamp() - v.heartbeat_at) * 1000)::bigint),"
        " (extract(epoch from v.stopped_at) * 1000)::bigint,"
        " coalesce(s.n, 0), coalesce(b.n, 0), " EPOCH_MS
        " FROM supervisors v"
        " LEFT JOIN (SELECT supervisor_id, count(*) AS n FROM sessions"
        "  WHERE ended_at IS NULL AND NOT deleted GROUP BY supervisor_id) s"
        "  ON s.supervisor_id = v.id"
        " LEFT JOIN (SELECT supervisor_id, count(*) AS n FROM batches"
        "  WHERE ended_at IS NULL AND NOT deleted GROUP BY supervisor_id) b"
        "  ON b.supervisor_id = v.id"
        " WHERE v.stopped_at IS NULL OR v.stopped_at > now() - interval '1 hour'"
        " ORDER BY v.id DESC LIMIT 100",

    /* The web UI's age and idle time of the sessions of a GET /sessions page (same order,
     * same paging): id, created, last activity, ended (epoch ms), then the clock. */
    [Q_WEBUI_SESSION_TIMES] =
        "SELECT s.id, (extract(epoch from s.created_at) * 1000)::bigint,"
        " (extract(epoch from s.last_activity_at) * 1000)::bigint,"
        " (extract(epoch from s.ended_at) * 1000)::bigint, " EPOCH_MS
        " FROM sessions s WHERE NOT s.deleted ORDER BY s.id OFFSET $1 LIMIT $2",

    /* A completion for the session's REPL: recorded (and its supervisor notified) only while
     * the REPL can answer; activity counts in any case. Returns (sessions touched, the
     * request's id or NULL). */
    [Q_COMPLETION_INSERT] =
        "WITH a AS (UPDATE sessions SET last_activity_at = now() WHERE id = $1 AND NOT deleted"
        " RETURNING id, state, ended_at),"
        " ins AS (INSERT INTO completions (session_id, kind, code, cursor_pos)"
        " SELECT id, $2, $3, $4::bigint FROM a"
        " WHERE ended_at IS NULL AND state IN ('idle','busy') RETURNING id, session_id),"
        " n AS (SELECT pg_notify('livy_completions', session_id::text) FROM ins)"
        " SELECT (SELECT count(*) FROM a), (SELECT id FROM ins), (SELECT count(*) FROM n)",

    /* The answer, once there: taken, and the request with it. */
    [Q_COMPLETION_TAKE] =
        "DELETE FROM completions WHERE id = $1 AND answered_at IS NOT NULL"
        " RETURNING candidates::text",

    [Q_COMPLETION_DROP] = "DELETE FROM completions WHERE id = $1",
};

PGresult *livy_store_exec(livy_conn_t *c, livy_query_e q, int nparams, const char *const *params)
{
    char name[24];
    snprintf(name, sizeof name, "livy_q%d", (int)q);
    if (!(c->prepared & (1ULL << q))) {
        PGresult *prep = PQprepare(c->pg, name, query_sql[q], 0, NULL);
        ExecStatusType st = PQresultStatus(prep);
        if (st != PGRES_COMMAND_OK)
            return prep; /* the caller sees the failure in the status */
        PQclear(prep);
        c->prepared |= 1ULL << q;
    }
    return PQexecPrepared(c->pg, name, nparams, params, NULL, NULL, 0);
}

const char *livy_store_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}
