/* sv_db: the supervisor's one PostgreSQL connection as a queue of requests. A request is sent
 * without waiting (libpq's asynchronous API, the connection in nonblocking mode); the event
 * loop's poll() tells when the answer has come, and its callback runs then. One request is on
 * the wire at a time, in the order they were made, so that what a session does keeps its order
 * (a result is stored before the state after it is read). A request unanswered for too long, or
 * a connection that fails, fails every request queued: their callbacks see `lost` and leave
 * their flags set for after the reconnect. */
#include "livy_db.h"
#include "sv.h"
#include "sv_log.h"

#include <apr_strings.h>
#include <poll.h>
#include <string.h>

int sv_db_ok(sv_t *sv)
{
    return sv->db_state == SV_DB_OK && sv->conn != NULL;
}

static void op_free(sv_op_t *op)
{
    if (op->free_data && op->data)
        op->free_data(op->data);
    apr_pool_destroy(op->pool);
}

int sv_db_send(sv_t *sv, const store_sv_req_t *r, sv_db_done_fn done, apr_int64_t session,
               int ival, void *data, void (*free_data)(void *))
{
    if (!sv_db_ok(sv)) {
        if (free_data && data)
            free_data(data);
        return -1;
    }
    apr_pool_t *pool;
    apr_pool_create(&pool, sv->pool);
    sv_op_t *op = apr_pcalloc(pool, sizeof *op);
    op->pool = pool;
    op->req = *r;
    for (int i = 0; i < r->nparams; i++)
        op->req.params[i] = r->params[i] ? apr_pstrdup(pool, r->params[i]) : NULL;
    op->done = done;
    op->session = session;
    op->ival = ival;
    op->data = data;
    op->free_data = free_data;
    if (sv->db_tail)
        sv->db_tail->next = op;
    else
        sv->db_head = op;
    sv->db_tail = op;
    sv->db_queued++;
    return 0;
}

int sv_db_send_first(sv_t *sv, const store_sv_req_t *r, sv_db_done_fn done,
                     apr_int64_t session, int ival, void *data, void (*free_data)(void *))
{
    if (sv_db_send(sv, r, done, session, ival, data, free_data) != 0)
        return -1;
    /* Move the new tail to the head, behind a fresh connection's setup (its statements must
     * be prepared first). */
    sv_op_t *op = sv->db_tail, *after = NULL;
    for (sv_op_t *o = sv->db_head; o != op && o->req.sql; o = o->next)
        after = o;
    sv_op_t *next = after ? after->next : sv->db_head;
    if (next == op)
        return 0; /* already there */
    sv_op_t *before = next;
    while (before->next != op)
        before = before->next;
    before->next = NULL;
    sv->db_tail = before;
    op->next = next;
    if (after)
        after->next = op;
    else
        sv->db_head = op;
    return 0;
}

/* Runs an op's callback, then frees it. */
static void deliver(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (op->done)
        op->done(sv, op, res);
    else if (!res && !op->lost)
        sv_error("database: %s", op->err);
    op_free(op);
}

static sv_op_t *pop(sv_t *sv)
{
    sv_op_t *op = sv->db_head;
    if (op) {
        sv->db_head = op->next;
        if (!sv->db_head)
            sv->db_tail = NULL;
        op->next = NULL;
        sv->db_queued--;
    }
    return op;
}

void sv_db_fail_all(sv_t *sv, const char *why)
{
    sv_op_t *op;
    if ((op = sv->db_inflight) != NULL) {
        sv->db_inflight = NULL;
        PQclear(sv->db_result);
        sv->db_result = NULL;
        op->lost = 1;
        op->err = apr_pstrdup(op->pool, why);
        deliver(sv, op, NULL);
    }
    while ((op = pop(sv)) != NULL) {
        op->lost = 1;
        op->err = apr_pstrdup(op->pool, why);
        deliver(sv, op, NULL);
    }
}

/* The connection failed under a request: everything queued fails with it. */
static void connection_failed(sv_t *sv, const char *why)
{
    sv_db_lost(sv, why);
}

/* Puts the next request on the wire when none is. */
void sv_db_pump(sv_t *sv)
{
    while (sv_db_ok(sv) && !sv->db_inflight && sv->db_head) {
        sv_op_t *op = pop(sv);
        int sent = op->req.sql && op->req.name
                       ? PQsendPrepare(sv->conn, op->req.name, op->req.sql, 0, NULL)
                   : op->req.sql ? PQsendQuery(sv->conn, op->req.sql)
                                 : PQsendQueryPrepared(sv->conn, store_sv_req_name(&op->req),
                                                       op->req.nparams, op->req.params, NULL,
                                                       NULL, 0);
        if (!sent) {
            const char *why = livy_db_error(sv->conn, sv->iter);
            op->lost = 1;
            op->err = apr_pstrdup(op->pool, why);
            deliver(sv, op, NULL);
            connection_failed(sv, why);
            return;
        }
        sv->db_inflight = op;
        op->sent_ms = sv_now_ms();
    }
    if (sv_db_ok(sv) && sv->db_inflight) {
        int f = PQflush(sv->conn);
        if (f < 0)
            connection_failed(sv, livy_db_error(sv->conn, sv->iter));
        else
            sv->db_wants_write = f == 1;
    }
}

short sv_db_poll_events(sv_t *sv)
{
    if (!sv_db_ok(sv))
        return 0;
    return (short)(POLLIN | (sv->db_wants_write ? POLLOUT : 0));
}

void sv_db_on_poll(sv_t *sv, short revents)
{
    if (!sv_db_ok(sv))
        return;
    if (revents & POLLOUT) {
        int f = PQflush(sv->conn);
        if (f < 0) {
            connection_failed(sv, livy_db_error(sv->conn, sv->iter));
            return;
        }
        sv->db_wants_write = f == 1;
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    if (!PQconsumeInput(sv->conn)) {
        connection_failed(sv, livy_db_error(sv->conn, sv->iter));
        return;
    }
    /* Answers: each request's results (the first error, else the last), then NULL. */
    while (sv_db_ok(sv) && sv->db_inflight && !PQisBusy(sv->conn)) {
        PGresult *res = PQgetResult(sv->conn);
        if (res) {
            if (sv->db_result && PQresultStatus(sv->db_result) == PGRES_FATAL_ERROR)
                PQclear(res);
            else {
                PQclear(sv->db_result);
                sv->db_result = res;
            }
            continue;
        }
        sv_op_t *op = sv->db_inflight;
        PGresult *answer = sv->db_result;
        sv->db_inflight = NULL;
        sv->db_result = NULL;
        const char *err = store_sv_check(answer, &op->req, sv->conn, op->pool);
        if (err) {
            op->err = err;
            const char *state = answer ? PQresultErrorField(answer, PG_DIAG_SQLSTATE) : NULL;
            op->sqlstate = state ? apr_pstrdup(op->pool, state) : NULL;
            op->lost = PQstatus(sv->conn) == CONNECTION_BAD;
            deliver(sv, op, NULL);
        }
        else {
            deliver(sv, op, answer);
        }
        PQclear(answer);
        if (!sv_db_ok(sv))
            return; /* the callback gave the connection up (a failed setup) */
        if (PQstatus(sv->conn) == CONNECTION_BAD) {
            connection_failed(sv, livy_db_error(sv->conn, sv->iter));
            return;
        }
        sv_db_pump(sv);
    }
}

void sv_db_check_timeout(sv_t *sv, apr_int64_t now, apr_int64_t *deadline)
{
    if (!sv_db_ok(sv) || !sv->db_inflight)
        return;
    apr_int64_t limit = sv->db_inflight->sent_ms + sv->db_query_bound_ms;
    if (now >= limit) {
        connection_failed(sv, apr_psprintf(sv->iter, "%s: no answer within %" APR_INT64_T_FMT
                                           " ms", store_sv_req_name(&sv->db_inflight->req),
                                           sv->db_query_bound_ms));
        return;
    }
    if (limit < *deadline)
        *deadline = limit;
}

void sv_db_drain(sv_t *sv, apr_int64_t ms)
{
    apr_int64_t until = sv_now_ms() + ms;
    for (;;) {
        sv_db_pump(sv);
        apr_int64_t left = until - sv_now_ms();
        if (!sv_db_ok(sv) || !sv->db_inflight || left <= 0)
            return;
        struct pollfd pfd = {.fd = PQsocket(sv->conn), .events = sv_db_poll_events(sv)};
        if (poll(&pfd, 1, (int)left) > 0)
            sv_db_on_poll(sv, pfd.revents);
    }
}
