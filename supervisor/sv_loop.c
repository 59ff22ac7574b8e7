/* sv_loop: the supervisor's event loop: poll() over PostgreSQL (LISTEN), the children's
 * sockets, a signal self-pipe and timers; registering, heartbeats, claims, timeouts, recovery. */
#include "livy_db.h"
#include "sv.h"
#include "sv_log.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Reconnecting: a short backoff, so that after an outage every supervisor is back well within
 * supervisor_dead_after of the others. */
#define DB_BACKOFF_MIN_MS 250
#define DB_BACKOFF_MAX_MS 4000
#define DB_CONNECT_LIMIT_MS 10000
/* Purging ended sessions: how often at most, and how many rows per transaction. */
#define PURGE_INTERVAL_MS 60000
#define PURGE_BATCH 100

static const char *const channels_sql =
    "LISTEN livy_sessions; LISTEN livy_statements; LISTEN livy_batches; LISTEN livy_completions";

apr_int64_t sv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

apr_int64_t sv_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (apr_int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sv_db_lost(sv_t *sv, const char *why)
{
    if (sv->db_state == SV_DB_OK)
        sv_error("lost the database connection (%s); the REPL children keep running, "
                 "reconnecting", why);
    why = apr_pstrdup(sv->iter, why);
    if (sv->conn)
        PQfinish(sv->conn);
    sv->conn = NULL;
    sv->db_state = SV_DB_DOWN;
    sv->db_wants_write = 0;
    sv->db_backoff_ms = DB_BACKOFF_MIN_MS;
    sv->db_retry_ms = sv_now_ms(); /* the first attempt at once */
    sv_db_fail_all(sv, why);
}

void sv_db_params(sv_t *sv, const char *const **keys, const char *const **values,
                  apr_pool_t *p)
{
    livy_db_conn_params(sv->cfg->database, "livy-supervisor", 10,
                        (long)sv_statement_timeout_ms(sv->cfg), keys, values, p);
}

/* Nothing of ours takes long: a query still unanswered after this is a database (or a network)
 * that stalls, and the connection is abandoned. It stays well below supervisor_dead_after, so
 * that a stall never makes the other supervisors presume this one dead. */
static long query_bound_ms(const sv_config_t *cfg)
{
    apr_int64_t bound = cfg->supervisor_dead_after_ms / 3;
    if (cfg->db_statement_timeout_ms > 0 && cfg->db_statement_timeout_ms + 2000 < bound)
        bound = cfg->db_statement_timeout_ms + 2000;
    return (long)(bound > 3000 ? bound : 3000);
}

apr_int64_t sv_statement_timeout_ms(const sv_config_t *cfg)
{
    /* The server gives up first, a second before we would stop waiting: an abandoned query is
     * one the server never answered, not one it may have committed behind our back. */
    apr_int64_t limit = query_bound_ms(cfg) - 1000;
    if (cfg->db_statement_timeout_ms <= 0 || cfg->db_statement_timeout_ms > limit)
        return limit;
    return cfg->db_statement_timeout_ms;
}


int sv_live_sessions(sv_t *sv)
{
    int n = 0;
    for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi; hi = apr_hash_next(hi)) {
        sv_session_t *s = apr_hash_this_val(hi);
        if (!s->orphan && !s->done && !s->warm)
            n++;
    }
    for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi; hi = apr_hash_next(hi)) {
        sv_batch_t *b = apr_hash_this_val(hi);
        if (!b->orphan && !b->done)
            n++;
    }
    return n;
}

sv_session_t *sv_find_session(sv_t *sv, apr_int64_t id)
{
    return apr_hash_get(sv->sessions, &id, sizeof id);
}

/* ---- signals: handlers only write the signal number into a pipe the loop polls ---- */

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(signal_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

static int install_signals(sv_t *sv, const char **errmsg)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        *errmsg = apr_psprintf(sv->pool, "pipe: %s", strerror(errno));
        return -1;
    }
    sv->signal_fd = signal_pipe[0];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void reap_children(sv_t *sv)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int known = 0;
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi;
             hi = apr_hash_next(hi)) {
            sv_session_t *s = apr_hash_this_val(hi);
            if (s->own_child && s->pid == pid) {
                sv_debug("session %" APR_INT64_T_FMT ": REPL pid %d %s", s->id, (int)pid,
                         sv_child_describe_status(status, sv->iter));
                sv_session_reaped(s, status);
                known = 1;
            }
        }
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi && !known;
             hi = apr_hash_next(hi)) {
            sv_batch_t *b = apr_hash_this_val(hi);
            if (b->own_child && b->pid == pid) {
                sv_debug("batch %" APR_INT64_T_FMT ": spark-submit pid %d %s", b->id, (int)pid,
                         sv_child_describe_status(status, sv->iter));
                sv_batch_reaped(b, status);
                known = 1;
            }
        }
        if (!known && !sv_identity_reaped(pid))
            sv_debug("reaped pid %d", (int)pid);
    }
}

static void drain_signals(sv_t *sv)
{
    unsigned char buf[64];
    ssize_t n;
    while ((n = read(sv->signal_fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            switch (buf[i]) {
            case SIGCHLD:
                reap_children(sv);
                break;
            case SIGTERM:
            case SIGINT:
                if (!sv->terminate)
                    sv_info("%s: stopping; the REPL children keep running",
                            buf[i] == SIGTERM ? "SIGTERM" : "SIGINT");
                sv->terminate = 1;
                break;
            case SIGHUP:
                sv_info("SIGHUP ignored: restart the supervisor to read its configuration again");
                break;
            }
        }
    }
}

/* ---- the database connection ---- */

/* The first connection, at startup (before the loop): prepared statements and LISTEN, each
 * waited for with the query bound. 0 or -1. A reconnect does the same through the queue. */
static int db_setup(sv_t *sv, const char **errmsg)
{
    if (PQsetnonblocking(sv->conn, 1) != 0) {
        *errmsg = apr_psprintf(sv->iter, "nonblocking mode: %s", livy_db_error(sv->conn, sv->iter));
        return -1;
    }
    store_sv_set_query_timeout(query_bound_ms(sv->cfg));
    sv->db_query_bound_ms = query_bound_ms(sv->cfg);
    if (store_sv_prepare(sv->conn, sv->iter, errmsg) != 0)
        return -1;
    int timed_out;
    PGresult *res = livy_db_exec_bounded(sv->conn, channels_sql, query_bound_ms(sv->cfg),
                                         &timed_out);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        *errmsg = apr_psprintf(sv->iter, "LISTEN: %s",
                               timed_out ? "no answer from the database"
                                         : livy_db_error(sv->conn, sv->iter));
        return -1;
    }
    return 0;
}

/* Whether a request got its answer; a failure the connection did not cause is logged (one lost
 * with the connection was already reported, and its flags wait for the reconnect). */
static int answered(const sv_op_t *op, PGresult *res)
{
    if (res)
        return 1;
    if (!op->lost)
        sv_error("database: %s", op->err);
    return 0;
}

/* After a reconnect: rows that name us but that we do not hold (a claim that committed while
 * its answer was lost with the connection) are adopted like a predecessor's. */
static void mine_read(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (!answered(op, res))
        return;
    if (sv->terminate)
        return;
    apr_array_header_t *rows = store_sv_parse_sessions(res, sv->iter);
    for (int i = 0; i < rows->nelts; i++) {
        store_sv_session_t *row = &APR_ARRAY_IDX(rows, i, store_sv_session_t);
        if (sv_find_session(sv, row->id))
            continue;
        sv_warn("session %" APR_INT64_T_FMT " is this supervisor's in the database but was not "
                "held (its claim's answer was lost with the connection): adopting it", row->id);
        sv_session_t *s = sv_session_create(sv, row->id, row->kind);
        sv_session_adopt(s, row);
    }
}

static void batches_mine_read(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (!answered(op, res) || sv->terminate)
        return;
    apr_array_header_t *rows = store_sv_parse_batches(res, sv->iter);
    for (int i = 0; i < rows->nelts; i++) {
        store_sv_batch_t *row = &APR_ARRAY_IDX(rows, i, store_sv_batch_t);
        if (sv_find_batch(sv, row->id))
            continue;
        sv_warn("batch %" APR_INT64_T_FMT " is this supervisor's in the database but was not "
                "held (its claim's answer was lost with the connection): adopting it", row->id);
        sv_batch_adopt(sv_batch_create(sv, row->id), row);
    }
}

static void db_schedule_retry(sv_t *sv, const char *why);

/* A fresh connection's setup: done when LISTEN is (the backoff starts over); failed, the
 * connection goes and the next attempt waits for the backoff, which grows. */
static void setup_done(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (res) {
        if (!op->req.name)
            sv->db_backoff_ms = DB_BACKOFF_MIN_MS;
        return;
    }
    if (op->lost)
        return;
    apr_int64_t backoff = sv->db_backoff_ms;
    sv_error("after reconnecting: %s", op->err);
    sv_db_lost(sv, op->err);
    sv->db_backoff_ms = backoff;
    db_schedule_retry(sv, op->err);
}

static void db_connected(sv_t *sv)
{
    if (PQsetnonblocking(sv->conn, 1) != 0) {
        db_schedule_retry(sv, apr_psprintf(sv->iter, "nonblocking mode: %s",
                                           livy_db_error(sv->conn, sv->iter)));
        return;
    }
    sv->db_state = SV_DB_OK;
    /* Its setup goes first in the queue, like any request: the loop never waits on it. */
    store_sv_req_t r;
    for (int i = 0; store_sv_req_prepare(&r, i); i++)
        sv_db_send(sv, &r, setup_done, 0, 0, NULL, NULL);
    store_sv_req_simple(&r, channels_sql);
    sv_db_send(sv, &r, setup_done, 0, 0, NULL, NULL);
    sv->db_up_since_ms = sv_now_ms();
    sv_info("reconnected to the database");
    /* Notifications may have been missed, and results may not have been stored: look at every
     * session again, and have every child re-send what it has not had acknowledged (on the
     * same connection: lines it sent meanwhile wait in the socket, none is lost). */
    sv->need_claim = 1;
    sv->next_heartbeat_ms = 0;
    for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi; hi = apr_hash_next(hi)) {
        sv_session_t *s = apr_hash_this_val(hi);
        s->need_flags = 1;
        s->need_statements = 1;
        s->need_completions = 1;
        sv_session_resync(s);
    }
    for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi; hi = apr_hash_next(hi))
        ((sv_batch_t *)apr_hash_this_val(hi))->need_flags = 1;
    store_sv_req_mine(&r, sv->id, sv->iter);
    sv_db_send(sv, &r, mine_read, 0, 0, NULL, NULL);
    store_sv_req_batch_mine(&r, sv->id, sv->iter);
    sv_db_send(sv, &r, batches_mine_read, 0, 0, NULL, NULL);
}

static void db_schedule_retry(sv_t *sv, const char *why)
{
    sv_warn("cannot reconnect to the database: %s (next attempt in %" APR_INT64_T_FMT " ms)", why,
            sv->db_backoff_ms);
    if (sv->conn)
        PQfinish(sv->conn);
    sv->conn = NULL;
    sv->db_state = SV_DB_DOWN;
    sv->db_retry_ms = sv_now_ms() + sv->db_backoff_ms;
    sv->db_backoff_ms = sv->db_backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS
                                                                    : sv->db_backoff_ms * 2;
}

/* Advances an asynchronous connect (PQconnectStart/PQconnectPoll: the loop never blocks). */
static void db_connect_step(sv_t *sv)
{
    switch (PQconnectPoll(sv->conn)) {
    case PGRES_POLLING_OK:
        db_connected(sv);
        break;
    case PGRES_POLLING_FAILED:
        db_schedule_retry(sv, livy_db_error(sv->conn, sv->iter));
        break;
    case PGRES_POLLING_WRITING:
        sv->db_wants_write = 1;
        break;
    default:
        sv->db_wants_write = 0;
        break;
    }
}

static void db_maintain(sv_t *sv, apr_int64_t now, apr_int64_t *deadline)
{
    if (sv->db_state == SV_DB_DOWN) {
        if (now < sv->db_retry_ms) {
            if (sv->db_retry_ms < *deadline)
                *deadline = sv->db_retry_ms;
            return;
        }
        const char *const *keys, *const *values;
        sv_db_params(sv, &keys, &values, sv->iter);
        sv->conn = PQconnectStartParams(keys, values, 1);
        if (!sv->conn || PQstatus(sv->conn) == CONNECTION_BAD) {
            db_schedule_retry(sv, sv->conn ? livy_db_error(sv->conn, sv->iter) : "out of memory");
            if (sv->db_retry_ms < *deadline)
                *deadline = sv->db_retry_ms;
            return;
        }
        sv->db_state = SV_DB_CONNECTING;
        sv->db_wants_write = 1;
        sv->db_deadline_ms = now + DB_CONNECT_LIMIT_MS;
    }
    if (sv->db_state == SV_DB_CONNECTING) {
        if (now >= sv->db_deadline_ms) {
            db_schedule_retry(sv, "timed out");
            if (sv->db_retry_ms < *deadline)
                *deadline = sv->db_retry_ms;
            return;
        }
        if (sv->db_deadline_ms < *deadline)
            *deadline = sv->db_deadline_ms;
    }
}

/* ---- notifications, heartbeats, claims, timeouts ---- */

static void drain_notifies(sv_t *sv)
{
    PGnotify *n;
    while (sv->conn && (n = PQnotifies(sv->conn)) != NULL) {
        char *end;
        long long id = strtoll(n->extra ? n->extra : "", &end, 10);
        int has_id = n->extra && *n->extra && (*end == '\0' || *end == ':');
        sv_session_t *s = has_id ? sv_find_session(sv, (apr_int64_t)id) : NULL;
        if (strcmp(n->relname, "livy_statements") == 0) {
            /* a new statement may come with the notification: sent at once when it can be */
            if (s && !(*end == ':' && sv_session_dispatch(s, end + 1)))
                s->need_statements = 1;
        }
        else if (strcmp(n->relname, "livy_completions") == 0) {
            if (s)
                s->need_completions = 1;
        }
        else if (strcmp(n->relname, "livy_sessions") == 0) {
            if (s)
                s->need_flags = 1;
            else
                sv->need_claim = 1;
        }
        else if (strcmp(n->relname, "livy_batches") == 0) {
            sv_batch_t *b = has_id ? sv_find_batch(sv, (apr_int64_t)id) : NULL;
            if (b)
                b->need_flags = 1;
            else
                sv->need_claim = 1;
        }
        PQfreemem(n);
    }
}

static void batches_claimed(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv->claim_inflight = 0;
    if (!res) {
        if (op->lost)
            sv->need_claim = 1;
        else
            sv_error("database: %s", op->err);
        return;
    }
    apr_array_header_t *rows = store_sv_parse_batches(res, sv->iter);
    if (sv->terminate) {
        if (rows->nelts > 0)
            sv_info("claimed %d batch(es) while stopping: they are left to the next supervisor",
                    rows->nelts);
        return;
    }
    for (int i = 0; i < rows->nelts; i++) {
        store_sv_batch_t *row = &APR_ARRAY_IDX(rows, i, store_sv_batch_t);
        sv_info("claimed batch %" APR_INT64_T_FMT " (%s)", row->id, row->file);
        sv_batch_spawn(sv_batch_create(sv, row->id), row);
    }
}

/* Batches take the room that sessions left: a claim of sessions is followed by one of
 * batches, the pair counting as one claim in flight. */
static void claim_batches(sv_t *sv)
{
    int room = sv->cfg->max_sessions - sv_live_sessions(sv);
    store_sv_req_t r;
    if (room <= 0 || sv->terminate || !sv_db_ok(sv))
        return;
    store_sv_req_batch_claim(&r, sv->id, room, sv->iter);
    if (sv_db_send(sv, &r, batches_claimed, 0, 0, NULL, NULL) == 0)
        sv->claim_inflight = 1;
    else
        sv->need_claim = 1;
}

static void claimed(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv->claim_inflight = 0;
    if (!res) {
        if (op->lost)
            sv->need_claim = 1; /* a claim that did commit is found again after the reconnect */
        else
            sv_error("database: %s", op->err); /* the next tick claims again */
        return;
    }
    apr_array_header_t *rows = store_sv_parse_sessions(res, sv->iter);
    if (sv->terminate) {
        /* Leaving: the successor with our host_id takes them over (or, if none comes, they end
         * dead with this supervisor's heartbeat). */
        if (rows->nelts > 0)
            sv_info("claimed %d session(s) while stopping: they are left to the next supervisor",
                    rows->nelts);
        return;
    }
    for (int i = 0; i < rows->nelts; i++) {
        store_sv_session_t *row = &APR_ARRAY_IDX(rows, i, store_sv_session_t);
        sv_info("claimed session %" APR_INT64_T_FMT " (kind %s)", row->id, row->kind);
        sv_session_t *s = sv_session_create(sv, row->id, row->kind);
        sv_session_spawn(s, row);
    }
    claim_batches(sv);
}

static void claim(sv_t *sv)
{
    if (!sv_db_ok(sv) || sv->terminate || sv->claim_inflight)
        return;
    sv->need_claim = 0;
    int room = sv->cfg->max_sessions - sv_live_sessions(sv);
    if (room <= 0)
        return;
    store_sv_req_t r;
    store_sv_req_claim(&r, sv->id, room, sv->iter);
    if (sv_db_send(sv, &r, claimed, 0, 0, NULL, NULL) == 0)
        sv->claim_inflight = 1;
    else
        sv->need_claim = 1;
}

static void reaped(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (!answered(op, res))
        return;
    if (PQntuples(res) > 0)
        sv_warn("marked %d %s of unresponsive supervisors dead", PQntuples(res),
                op->ival ? "batch(es)" : "session(s)");
}

static void heartbeaten(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv->heartbeat_inflight = 0;
    const char *err;
    int was_stopped = 0;
    if (!answered(op, res))
        return;
    if (store_sv_parse_heartbeat(res, sv->id, &was_stopped, sv->iter, &err) != 0) {
        sv_error("heartbeat: %s", err);
        return;
    }
    if (was_stopped) {
        /* Another supervisor presumed us dead and ended our sessions: stop their children. */
        sv_error("another supervisor presumed this one dead (no heartbeat for more than %s); "
                 "its sessions were ended", sv_format_duration(sv->cfg->supervisor_dead_after_ms,
                                                                sv->iter));
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi;
             hi = apr_hash_next(hi))
            ((sv_session_t *)apr_hash_this_val(hi))->need_flags = 1;
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi;
             hi = apr_hash_next(hi))
            ((sv_batch_t *)apr_hash_this_val(hi))->need_flags = 1;
    }
    /* Judge the others only once this supervisor has itself been connected for longer than
     * the limit: after an outage every supervisor's heartbeat is stale, and each must have had
     * the time to reconnect and heartbeat again before anyone is presumed dead. The ages are
     * the database's own clock (now() - heartbeat_at), never this host's. */
    if (sv_now_ms() - sv->db_up_since_ms <= sv->cfg->supervisor_dead_after_ms)
        return;
    store_sv_req_t r;
    store_sv_req_reap(&r, sv->id, sv->cfg->supervisor_dead_after_ms, sv_epoch_ms(), sv->iter);
    sv_db_send(sv, &r, reaped, 0, 0, NULL, NULL);
    store_sv_req_batch_reap(&r, sv->id, sv->cfg->supervisor_dead_after_ms, sv->iter);
    sv_db_send(sv, &r, reaped, 0, 1, NULL, NULL);
}

static void heartbeat(sv_t *sv)
{
    if (!sv_db_ok(sv) || sv->heartbeat_inflight)
        return;
    store_sv_req_t r;
    store_sv_req_heartbeat(&r, sv->id, sv->iter);
    /* First in the queue: a backlog of results and log lines never delays it. */
    if (sv_db_send_first(sv, &r, heartbeaten, 0, 0, NULL, NULL) == 0)
        sv->heartbeat_inflight = 1;
}

static void purged(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (!answered(op, res))
        return;
    apr_array_header_t *ids;
    int supervisors = 0, batches = 0, locked = 0;
    store_sv_parse_purge(res, &ids, &supervisors, &batches, &locked, sv->iter);
    if (!locked) {
        sv_debug("purge: another supervisor is purging");
        return;
    }
    if (ids->nelts > 0 || supervisors > 0 || batches > 0)
        sv_info("purged %d session(s) ended more than %s ago (first %" APR_INT64_T_FMT
                ", last %" APR_INT64_T_FMT "), their statements and logs, %d batch(es) and their "
                "logs, and %d stopped supervisor row(s)", ids->nelts,
                sv_format_duration(sv->cfg->retain_ended_ms, sv->iter),
                ids->nelts ? APR_ARRAY_IDX(ids, 0, apr_int64_t) : 0,
                ids->nelts ? APR_ARRAY_IDX(ids, ids->nelts - 1, apr_int64_t) : 0, batches,
                supervisors);
    if (ids->nelts >= PURGE_BATCH || batches >= PURGE_BATCH)
        sv->next_purge_ms = 0;
}

/* Ended sessions older than retain_ended go, with their statements and log. One supervisor
 * purges at a time (an advisory lock); a full batch makes the next tick purge again. */
static void purge(sv_t *sv)
{
    /* A quarter of the retention, between a second and a minute. */
    apr_int64_t every = sv->cfg->retain_ended_ms / 4;
    every = every < 1000 ? 1000 : every > PURGE_INTERVAL_MS ? PURGE_INTERVAL_MS : every;
    sv->next_purge_ms = sv_now_ms() + every;
    store_sv_req_t r;
    store_sv_req_purge(&r, sv->cfg->retain_ended_ms, PURGE_BATCH, sv->iter);
    sv_db_send(sv, &r, purged, 0, 0, NULL, NULL);
}

static const char *timeout_reason(const store_sv_timeout_t *t, apr_pool_t *p)
{
    const char *limit = sv_format_duration(t->limit_ms, p);
    if (strcmp(t->reason, "ttl") == 0)
        return apr_psprintf(p, "its time to live (ttl %s) has passed", limit);
    if (strcmp(t->reason, "heartbeat") == 0)
        return apr_psprintf(p, "no client heartbeat for more than %s (heartbeatTimeoutInSecond)",
                            limit);
    return apr_psprintf(p, "idle for more than %s (idle timeout)", limit);
}

static void timed_out(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (!answered(op, res))
        return;
    apr_array_header_t *rows = store_sv_parse_timeouts(res, sv->iter);
    for (int i = 0; i < rows->nelts; i++) {
        store_sv_timeout_t *t = &APR_ARRAY_IDX(rows, i, store_sv_timeout_t);
        sv_session_t *s = sv_find_session(sv, t->id);
        if (s)
            sv_session_begin_stop(s, timeout_reason(t, sv->iter));
    }
}

static void expired(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv->tick_inflight = 0;
    if (!answered(op, res))
        return;
    apr_array_header_t *rows = store_sv_parse_ids(res, sv->iter);
    for (int i = 0; i < rows->nelts; i++) {
        apr_int64_t id = APR_ARRAY_IDX(rows, i, apr_int64_t);
        sv_debug("session %" APR_INT64_T_FMT " left the list (ended more than %s ago)", id,
                 sv_format_duration(sv->cfg->list_ended_ms, sv->iter));
        unlink(apr_psprintf(sv->iter, "%s/session-%" APR_INT64_T_FMT ".log", sv->cfg->run_dir, id));
    }
}

static void batches_expired(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (!answered(op, res))
        return;
    apr_array_header_t *rows = store_sv_parse_ids(res, sv->iter);
    for (int i = 0; i < rows->nelts; i++)
        sv_debug("batch %" APR_INT64_T_FMT " left the list (ended more than %s ago)",
                 APR_ARRAY_IDX(rows, i, apr_int64_t),
                 sv_format_duration(sv->cfg->list_ended_ms, sv->iter));
}

static void tick(sv_t *sv)
{
    if (!sv_db_ok(sv) || sv->tick_inflight)
        return;
    store_sv_req_t r;
    store_sv_req_timeouts(&r, sv->id, sv->cfg->idle_timeout_ms, sv->cfg->session_ttl_ms,
                          sv->iter);
    if (sv_db_send(sv, &r, timed_out, 0, 0, NULL, NULL) != 0)
        return;
    store_sv_req_batch_expire(&r, sv->cfg->list_ended_ms, sv->iter);
    if (sv_db_send(sv, &r, batches_expired, 0, 0, NULL, NULL) != 0)
        return;
    store_sv_req_expire_ended(&r, sv->cfg->list_ended_ms, sv->iter);
    if (sv_db_send(sv, &r, expired, 0, 0, NULL, NULL) != 0)
        return;
    sv->tick_inflight = 1;
    if (sv->cfg->retain_ended_ms > 0 && sv_now_ms() >= sv->next_purge_ms)
        purge(sv);
    /* A missed notification costs at most one tick. */
    sv->need_claim = 1;
}

/* ---- starting ---- */

#define RUN_LOCK_PREFIX "supervisor "

/* run_dir/livy-supervisor.lock: held (flock) while this supervisor runs, and naming its
 * supervisors row. Whoever gets the lock knows that the row it names has no live process. */
static int take_run_lock(sv_t *sv, const char **errmsg)
{
    const char *path = apr_pstrcat(sv->pool, sv->cfg->run_dir, "/livy-supervisor.lock", NULL);
    sv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (sv->lock_fd < 0) {
        *errmsg = apr_psprintf(sv->pool, "%s: %s", path, strerror(errno));
        return -1;
    }
    sv_identity_close_in_children = sv->lock_fd;
    if (flock(sv->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        *errmsg = errno == EWOULDBLOCK
            ? apr_psprintf(sv->pool, "another livy-supervisor runs with run_dir %s (it holds %s)",
                           sv->cfg->run_dir, path)
            : apr_psprintf(sv->pool, "locking %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The row our lock file names, -1 when none. */
static apr_int64_t previous_run(sv_t *sv)
{
    char buf[64];
    ssize_t n = pread(sv->lock_fd, buf, sizeof buf - 1, 0);
    if (n <= (ssize_t)strlen(RUN_LOCK_PREFIX))
        return -1;
    buf[n] = '\0';
    if (strncmp(buf, RUN_LOCK_PREFIX, strlen(RUN_LOCK_PREFIX)) != 0)
        return -1;
    char *end;
    long long id = strtoll(buf + strlen(RUN_LOCK_PREFIX), &end, 10);
    return end != buf + strlen(RUN_LOCK_PREFIX) && id > 0 ? (apr_int64_t)id : -1;
}

static void record_run_lock(sv_t *sv)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, RUN_LOCK_PREFIX "%" APR_INT64_T_FMT "\n", sv->id);
    if (ftruncate(sv->lock_fd, 0) != 0 || pwrite(sv->lock_fd, buf, (size_t)n, 0) != n)
        sv_warn("cannot record this supervisor in livy-supervisor.lock: %s", strerror(errno));
}

/* Waits up to ms for a signal; 1 when told to stop. */
static int pause_for_signals(sv_t *sv, int ms)
{
    struct pollfd pfd = {.fd = sv->signal_fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) > 0)
        drain_signals(sv);
    return sv->terminate;
}

/* The earlier rows of our host_id whose sessions we are to take over. A row is ours to take
 * when it has stopped, when our run lock names it (its process is gone: we hold the lock), or
 * when its heartbeat is older than supervisor_dead_after by the database's clock. A row whose
 * process runs here is an error; any other fresh row (a supervisor elsewhere with the same
 * host_id, or one in a database outage) is waited for, never taken from under it. */
static int same_host_peers(sv_t *sv, apr_array_header_t **out, const char **errmsg)
{
    const sv_config_t *cfg = sv->cfg;
    apr_int64_t mine = previous_run(sv);
    apr_int64_t waiting_for = -1;
    const char *err;
    for (;;) {
        apr_array_header_t *peers;
        apr_pool_t *tmp; /* one per look; kept (under sv->pool) for the answer returned */
        apr_pool_create(&tmp, sv->pool);
        if (store_sv_peers(sv->conn, cfg->host_id, -1, &peers, tmp, &err) != 0) {
            *errmsg = apr_pstrdup(sv->pool, err);
            return -1;
        }
        store_sv_peer_t *fresh = NULL;
        for (int i = 0; i < peers->nelts; i++) {
            store_sv_peer_t *peer = &APR_ARRAY_IDX(peers, i, store_sv_peer_t);
            if (peer->stopped || peer->id == mine)
                continue;
            if (peer->pid != (int)getpid() && sv_child_alive(peer->pid)
                && sv_child_cmdline_contains(peer->pid, "livy-supervisor")) {
                *errmsg = apr_psprintf(sv->pool,
                    "another livy-supervisor (pid %d, supervisors row %" APR_INT64_T_FMT ") runs "
                    "with host_id \"%s\": stop it first, or give each supervisor on this host its "
                    "own host_id", peer->pid, peer->id, cfg->host_id);
                return -1;
            }
            if (peer->heartbeat_age_ms <= cfg->supervisor_dead_after_ms)
                fresh = peer;
        }
        if (!fresh) {
            *out = peers;
            return 0;
        }
        if (waiting_for != fresh->id)
            sv_warn("supervisor %" APR_INT64_T_FMT " (pid %d) has host_id \"%s\" too and "
                    "heartbeated %" APR_INT64_T_FMT " ms ago; it is not this run_dir's previous "
                    "supervisor (it may run on another machine): waiting until its heartbeat is "
                    "older than supervisor_dead_after (%s) before taking over its sessions",
                    fresh->id, fresh->pid, cfg->host_id, fresh->heartbeat_age_ms,
                    sv_format_duration(cfg->supervisor_dead_after_ms, tmp));
        waiting_for = fresh->id;
        apr_pool_destroy(tmp);
        if (pause_for_signals(sv, 1000)) {
            *errmsg = "stopped while waiting for another supervisor's heartbeat to go stale";
            return -1;
        }
    }
}

int sv_start(sv_t *sv, const char **errmsg)
{
    const sv_config_t *cfg = sv->cfg;
    if (install_signals(sv, errmsg) != 0)
        return -1;
    const char *err;
    if (take_run_lock(sv, errmsg) != 0)
        return -1;
    const char *const *keys, *const *values;
    sv_db_params(sv, &keys, &values, sv->pool);
    sv->conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(sv->conn) != CONNECTION_OK) {
        *errmsg = apr_psprintf(sv->pool, "cannot connect to the database: %s",
                               livy_db_error(sv->conn, sv->pool));
        return -1;
    }
    int version = livy_db_schema_version(sv->conn, sv->pool, &err);
    if (version < 0) {
        *errmsg = apr_psprintf(sv->pool, "cannot read the schema version: %s", err);
        return -1;
    }
    if (version < LIVY_SCHEMA_VERSION) {
        *errmsg = apr_psprintf(sv->pool,
            "the database schema is at version %d, this livy-supervisor needs version %d: "
            "run `livy-supervisor --migrate --config %s` first", version, LIVY_SCHEMA_VERSION,
            cfg->path ? cfg->path : "FILE");
        return -1;
    }
    if (db_setup(sv, &err) != 0) {
        *errmsg = err;
        return -1;
    }
    sv->db_state = SV_DB_OK;

    /* Rows with our identity: a previous run of this supervisor whose children may live on. */
    apr_array_header_t *peers;
    if (same_host_peers(sv, &peers, errmsg) != 0)
        return -1;
    if (store_sv_register(sv->conn, cfg->host_id, (int)getpid(), cfg->max_sessions, &sv->id,
                          sv->pool, &err) != 0) {
        *errmsg = err;
        return -1;
    }
    record_run_lock(sv);
    sv->db_up_since_ms = sv_now_ms(); /* the wait above does not count as time connected */
    sv_info("registered as supervisor %" APR_INT64_T_FMT " (host_id %s, max_sessions %d, "
            "spark_master %s)", sv->id, cfg->host_id, cfg->max_sessions, cfg->spark_master);
    for (int i = 0; i < peers->nelts; i++) {
        store_sv_peer_t *peer = &APR_ARRAY_IDX(peers, i, store_sv_peer_t);
        apr_array_header_t *rows;
        if (store_sv_takeover(sv->conn, peer->id, sv->id, &rows, sv->pool, &err) != 0) {
            *errmsg = err;
            return -1;
        }
        if (rows->nelts > 0)
            sv_info("taking over %d session(s) from supervisor %" APR_INT64_T_FMT " (pid %d)",
                    rows->nelts, peer->id, peer->pid);
        for (int j = 0; j < rows->nelts; j++) {
            store_sv_session_t *row = &APR_ARRAY_IDX(rows, j, store_sv_session_t);
            sv_session_t *s = sv_session_create(sv, row->id, row->kind);
            sv_session_adopt(s, row);
            sv_session_flush_log(s);
        }
        if (store_sv_takeover_batches(sv->conn, peer->id, sv->id, &rows, sv->pool, &err) != 0) {
            *errmsg = err;
            return -1;
        }
        if (rows->nelts > 0)
            sv_info("taking over %d batch(es) from supervisor %" APR_INT64_T_FMT " (pid %d)",
                    rows->nelts, peer->id, peer->pid);
        for (int j = 0; j < rows->nelts; j++) {
            store_sv_batch_t *row = &APR_ARRAY_IDX(rows, j, store_sv_batch_t);
            sv_batch_t *b = sv_batch_create(sv, row->id);
            sv_batch_adopt(b, row);
            sv_batch_flush_log(b);
        }
    }
    sv->need_claim = 1;
    return 0;
}

/* ---- the loop ---- */

static void forget_done_batches(sv_t *sv)
{
    for (;;) {
        sv_batch_t *victim = NULL;
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi && !victim;
             hi = apr_hash_next(hi)) {
            sv_batch_t *b = apr_hash_this_val(hi);
            if (b->done)
                victim = b;
        }
        if (!victim)
            return;
        sv_batch_destroy(victim);
    }
}

static void forget_done_sessions(sv_t *sv)
{
    for (;;) {
        sv_session_t *victim = NULL;
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi && !victim;
             hi = apr_hash_next(hi)) {
            sv_session_t *s = apr_hash_this_val(hi);
            if (s->done)
                victim = s;
        }
        if (!victim)
            return;
        sv_session_destroy(victim);
    }
}

int sv_run(sv_t *sv)
{
    const sv_config_t *cfg = sv->cfg;
    apr_array_header_t *pollfds = apr_array_make(sv->pool, 16, sizeof(struct pollfd));
    apr_array_header_t *polled = apr_array_make(sv->pool, 16, sizeof(sv_session_t *));
    sv->next_heartbeat_ms = 0;
    sv->next_tick_ms = 0;
    sv->next_purge_ms = sv_now_ms() + 2000; /* not in the way of starting up */

    while (!sv->terminate) {
        apr_pool_clear(sv->iter);
        drain_signals(sv);
        if (sv->terminate)
            break;
        apr_int64_t now = sv_now_ms();
        apr_int64_t deadline = now + 60000;

        db_maintain(sv, now, &deadline);
        if (sv_db_ok(sv)) {
            drain_notifies(sv);
            if (now >= sv->next_heartbeat_ms) {
                heartbeat(sv);
                sv->next_heartbeat_ms = now + cfg->heartbeat_interval_ms;
            }
            if (now >= sv->next_tick_ms) {
                tick(sv);
                sv->next_tick_ms = now + cfg->check_interval_ms;
            }
        }
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi;
             hi = apr_hash_next(hi))
            sv_session_work(apr_hash_this_val(hi), now, &deadline);
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi;
             hi = apr_hash_next(hi))
            sv_batch_work(apr_hash_this_val(hi), now, &deadline);
        if (sv->need_claim)
            claim(sv); /* after the work: sessions that just ended have made room */
        sv_warm_work(sv, now, &deadline);
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi;
             hi = apr_hash_next(hi))
            sv_session_flush_log(apr_hash_this_val(hi));
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi;
             hi = apr_hash_next(hi))
            sv_batch_flush_log(apr_hash_this_val(hi));
        forget_done_sessions(sv);
        forget_done_batches(sv);
        sv_db_pump(sv);
        sv_db_check_timeout(sv, sv_now_ms(), &deadline);
        /* Lost anywhere during this iteration (a stalled answer, a failed send): reconnect on
         * time, not after the poll's longest sleep. */
        if (sv->db_state == SV_DB_DOWN && sv->db_retry_ms < deadline)
            deadline = sv->db_retry_ms;
        else if (sv->db_state == SV_DB_CONNECTING && sv->db_deadline_ms < deadline)
            deadline = sv->db_deadline_ms;
        if (sv_db_ok(sv)) {
            /* Answers may have carried notifications. */
            drain_notifies(sv);
            if (sv->need_claim && !sv->claim_inflight)
                deadline = now;
            for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi;
                 hi = apr_hash_next(hi)) {
                sv_session_t *s = apr_hash_this_val(hi);
                if (sv_session_has_work(s))
                    deadline = now;
            }
            for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi;
                 hi = apr_hash_next(hi))
                if (sv_batch_has_work(apr_hash_this_val(hi)))
                    deadline = now;
            if (sv->next_heartbeat_ms < deadline)
                deadline = sv->next_heartbeat_ms;
            if (sv->next_tick_ms < deadline)
                deadline = sv->next_tick_ms;
        }

        pollfds->nelts = 0;
        polled->nelts = 0;
        struct pollfd *pfd = apr_array_push(pollfds);
        pfd->fd = sv->signal_fd;
        pfd->events = POLLIN;
        int db_index = -1;
        if (sv->conn && (sv->db_state == SV_DB_OK || sv->db_state == SV_DB_CONNECTING)
            && PQsocket(sv->conn) >= 0) {
            db_index = pollfds->nelts;
            pfd = apr_array_push(pollfds);
            pfd->fd = PQsocket(sv->conn);
            pfd->events = sv->db_state == SV_DB_CONNECTING
                              ? (sv->db_wants_write ? POLLOUT : POLLIN)
                              : sv_db_poll_events(sv);
        }
        for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi;
             hi = apr_hash_next(hi)) {
            sv_session_t *s = apr_hash_this_val(hi);
            short ev = sv_session_poll_events(s);
            if (!ev)
                continue;
            pfd = apr_array_push(pollfds);
            pfd->fd = s->fd;
            pfd->events = ev;
            APR_ARRAY_PUSH(polled, sv_session_t *) = s;
        }
        int first_session = pollfds->nelts - polled->nelts;

        apr_int64_t wait = deadline - sv_now_ms();
        if (wait < 0)
            wait = 0;
        int n = poll((struct pollfd *)pollfds->elts, (nfds_t)pollfds->nelts, (int)wait);
        if (n < 0) {
            if (errno != EINTR)
                sv_error("poll: %s", strerror(errno));
            continue;
        }
        if (n == 0)
            continue;
        struct pollfd *fds = (struct pollfd *)pollfds->elts;
        if (db_index >= 0 && fds[db_index].revents) {
            if (sv->db_state == SV_DB_CONNECTING) {
                db_connect_step(sv);
            }
            else if (sv->db_state == SV_DB_OK) {
                sv_db_on_poll(sv, fds[db_index].revents);
                drain_notifies(sv);
            }
        }
        for (int i = 0; i < polled->nelts; i++) {
            if (fds[first_session + i].revents)
                sv_session_on_poll(APR_ARRAY_IDX(polled, i, sv_session_t *),
                                   fds[first_session + i].revents);
        }
    }

    /* Leaving: everything read has been stored; the children live on for the next supervisor. */
    for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi; hi = apr_hash_next(hi))
        sv_session_detach(apr_hash_this_val(hi));
    for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->batches); hi; hi = apr_hash_next(hi))
        sv_batch_detach(apr_hash_this_val(hi));
    sv_db_drain(sv, sv->db_query_bound_ms);
    const char *err;
    if (!sv_db_ok(sv) || sv->db_inflight || sv->db_head)
        sv_warn("leaving without marking this supervisor stopped (the database did not answer "
                "in time): its sessions wait for a supervisor with host_id %s, or end dead after "
                "supervisor_dead_after", sv->cfg->host_id);
    else if (store_sv_mark_stopped(sv->conn, sv->id, sv->iter, &err) != 0)
        sv_error("marking this supervisor stopped: %s", err);
    sv_db_fail_all(sv, "the supervisor is stopping");
    if (sv->conn)
        PQfinish(sv->conn);
    sv->conn = NULL;
    sv_info("stopped (supervisor %" APR_INT64_T_FMT ")", sv->id);
    return 0;
}
