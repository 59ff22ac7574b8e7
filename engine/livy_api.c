/* livy_api: one Livy REST request in, one response out. */
#include "livy_api.h"
#include "livy_db.h"
#include "livy_json.h"
#include "livy_metrics.h"
#include "livy_openapi.h"
#include "livy_params.h"
#include "livy_ui.h"
#include "livy_view.h"
#include "livy_webui.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SESSIONS_PAGE_DEFAULT 100
#define LOG_PAGE_DEFAULT 100
/* GET .../statements: a page is at most this many statements (outputs may be 1 MiB each). */
#define STATEMENTS_PAGE_DEFAULT 100
#define STATEMENTS_PAGE_MAX 1000

void livy_api_error(livy_api_response_t *resp, apr_pool_t *p, int status, const char *msg)
{
    resp->status = status;
    resp->body = livy_json_msg(p, msg, &resp->body_len);
}

static void reply_json(livy_api_response_t *resp, apr_pool_t *p, int status, json_t *j)
{
    livy_json_own(p, j);
    resp->status = status;
    resp->body = livy_json_dump(p, j, &resp->body_len);
}

/* A query that failed: the database is gone (503, discard the connection) or we have a bug
 * (500, with the detail for the error log). */
static void reply_db_failure(livy_api_response_t *resp, livy_conn_t *c, PGresult *res,
                             apr_pool_t *p)
{
    const char *detail = livy_db_error(c->pg, p);
    if (PQstatus(c->pg) != CONNECTION_OK || !strncmp(livy_store_sqlstate(res), "08", 2)
        || !strncmp(livy_store_sqlstate(res), "57P", 3)) {
        resp->conn_broken = 1;
        resp->log_detail = detail;
        livy_api_error(resp, p, 503, "The session database is unavailable; try again shortly.");
    } else {
        resp->log_detail = detail;
        livy_api_error(resp, p, 500, "Internal error in the session store; see the server's "
                                     "error log.");
    }
}

static int ok_tuples(PGresult *res)
{
    return res && PQresultStatus(res) == PGRES_TUPLES_OK;
}

int livy_api_route(const livy_api_config_t *cfg, const livy_api_request_t *req, apr_pool_t *p,
                   livy_route_t *r, livy_api_response_t *resp)
{
    memset(resp, 0, sizeof *resp);
    livy_route_parse(req->path, p, r);
    if (r->route == LIVY_ROUTE_METRICS && !cfg->metrics)
        r->route = LIVY_ROUTE_NONE; /* LivyMetrics Off: nothing new is exposed */
    if (r->route == LIVY_ROUTE_NONE) {
        livy_api_error(resp, p, 404, apr_psprintf(p, "No such resource: %s", req->path));
        return 1;
    }
    if (!(livy_method_from_name(req->method) & r->allowed)) {
        resp->allow = livy_route_allow_header(r->allowed);
        livy_api_error(resp, p, 405, apr_psprintf(p, "Method %s is not allowed here; use %s.",
                                                   req->method, resp->allow));
        return 1;
    }
    if (cfg->security.csrf && livy_method_from_name(req->method) != LIVY_M_GET
        && !req->has_requested_by) {
        livy_api_error(resp, p, 400, "Missing the X-Requested-By header: this server protects "
                                     "against cross-site request forgery, so every request but "
                                     "GET needs one (any value).");
        return 1;
    }
    if (req->user && !livy_utf8_valid(req->user)) {
        livy_api_error(resp, p, 400, "The authenticated user name is not valid UTF-8.");
        return 1;
    }
    if (!livy_access_admitted(&cfg->security, req->user)) {
        livy_api_error(resp, p, 403, req->user && *req->user
                       ? apr_psprintf(p, "User '%s' is not allowed to use this server.", req->user)
                       : "Anonymous requests are not allowed on this server: authenticate first.");
        return 1;
    }
    if (r->route == LIVY_ROUTE_METRICS
        && !livy_access_can_read_metrics(&cfg->security, req->user)) {
        livy_api_error(resp, p, 403, apr_psprintf(p, "User '%s' may not read this server's "
                       "metrics: they are for superusers, view and modify users.",
                       req->user && *req->user ? req->user : "(anonymous)"));
        return 1;
    }
    if (r->route == LIVY_ROUTE_OPENAPI) { /* compiled in: no database, no file */
        resp->status = 200;
        resp->body = (char *)livy_openapi_json;
        resp->body_len = livy_openapi_json_len;
        resp->etag = livy_openapi_etag;
        resp->cache_control = apr_psprintf(p, "max-age=%d", LIVY_OPENAPI_MAX_AGE);
        return 1;
    }
    return 0;
}

int livy_api_check_schema(livy_conn_t *conn, apr_pool_t *p, livy_api_response_t *resp)
{
    if (conn->schema_ok)
        return 0;
    const char *err = NULL;
    int version = livy_db_schema_version(conn->pg, p, &err);
    if (version < 0) {
        reply_db_failure(resp, conn, NULL, p);
        return 1;
    }
    if (version < LIVY_SCHEMA_VERSION) {
        resp->log_detail = apr_psprintf(p, "database schema version %d is older than version %d, "
                                        "which this mod_livy needs: run `livy-supervisor --config "
                                        "FILE --migrate`", version, LIVY_SCHEMA_VERSION);
        livy_api_error(resp, p, 503, apr_psprintf(p, "The session database has schema version "
                       "%d but this server needs version %d: an operator must run "
                       "`livy-supervisor --migrate`.", version, LIVY_SCHEMA_VERSION));
        return 1;
    }
    conn->schema_ok = 1;
    return 0;
}

/* ---- sessions and batches ---- */

/* What differs between sessions and batches where the API treats them alike: their lookups,
 * listing, deletion, log and view, and the columns the access rules read. */
typedef struct {
    const char *noun;            /* "session" or "batch", for messages */
    const char *Noun;            /* the same, capitalised */
    const char *path;            /* the collection's segment: "sessions" or "batches" */
    livy_query_e q_by_id, q_by_name, q_page, q_delete, q_log_total, q_log_page;
    int c_id, c_owner, c_proxy_user, c_state;
    json_t *(*view)(const livy_api_config_t *cfg, const PGresult *res, int row, int c0,
                    int show_log);
    /* the same object, appended as text (listings) */
    void (*text_view)(const livy_api_config_t *cfg, livy_text_t *t, const PGresult *res, int row,
                      int c0, int show_log);
} resource_t;

static json_t *session_view(const livy_api_config_t *cfg, const PGresult *res, int row, int c0,
                            int show_log)
{
    return livy_view_session(res, row, c0, show_log, cfg->ui_base);
}

static json_t *batch_view(const livy_api_config_t *cfg, const PGresult *res, int row, int c0,
                          int show_log)
{
    return livy_view_batch(res, row, c0, show_log);
}

static void session_text_view(const livy_api_config_t *cfg, livy_text_t *t,
                              const PGresult *res, int row, int c0, int show_log)
{
    livy_view_session_text(t, res, row, c0, show_log, cfg->ui_base);
}

static void batch_text_view(const livy_api_config_t *cfg, livy_text_t *t, const PGresult *res,
                            int row, int c0, int show_log)
{
    (void)cfg;
    livy_view_batch_text(t, res, row, c0, show_log);
}

static const resource_t sessions = {
    "session", "Session", "sessions", Q_SESSION_BY_ID, Q_SESSION_BY_NAME, Q_SESSIONS_PAGE,
    Q_SESSION_DELETE, Q_LOG_TOTAL, Q_LOG_PAGE, SC_ID, SC_OWNER, SC_PROXY_USER, SC_STATE,
    session_view, session_text_view,
};

static const resource_t batches = {
    "batch", "Batch", "batches", Q_BATCH_BY_ID, Q_BATCH_BY_NAME, Q_BATCHES_PAGE,
    Q_BATCH_DELETE, Q_BATCH_LOG_TOTAL, Q_BATCH_LOG_PAGE, BC_ID, BC_OWNER, BC_PROXY_USER,
    BC_STATE, batch_view, batch_text_view,
};

static const resource_t *resource_of(livy_route_e route)
{
    switch (route) {
    case LIVY_ROUTE_BATCHES:
    case LIVY_ROUTE_BATCH:
    case LIVY_ROUTE_BATCH_STATE:
    case LIVY_ROUTE_BATCH_LOG:
        return &batches;
    default:
        return &sessions;
    }
}

static int state_is_ended(const char *state)
{
    static const char *const ended[] = {"shutting_down", "error", "dead", "killed", "success"};
    for (size_t i = 0; i < sizeof ended / sizeof ended[0]; i++)
        if (!strcmp(state, ended[i]))
            return 1;
    return 0;
}

/* Looks the {id} of r up: by id with rs's query (or q_id, given extra, its second parameter),
 * or by name. Returns the one-row result, or NULL with resp set (404, or a database failure). */
static PGresult *lookup_ref(const resource_t *rs, const livy_route_t *r, livy_query_e q_id,
                            const char *extra, livy_conn_t *c, apr_pool_t *p,
                            livy_api_response_t *resp)
{
    PGresult *res;
    const char *ref = r->session_ref;
    if (r->session_id >= 0) {
        const char *params[2] = {apr_psprintf(p, "%" APR_INT64_T_FMT, r->session_id), extra};
        res = livy_store_exec(c, q_id, extra ? 2 : 1, params);
    } else if (ref[strspn(ref, "0123456789")] == '\0') { /* an id too large to exist */
        livy_api_error(resp, p, 404, apr_psprintf(p, "%s '%s' not found.", rs->Noun, ref));
        return NULL;
    } else if (!livy_utf8_valid(ref)) { /* no such name can have been stored */
        livy_api_error(resp, p, 404, apr_psprintf(p, "%s not found (the name is not valid "
                                                  "UTF-8).", rs->Noun));
        return NULL;
    } else {
        const char *params[1] = {ref};
        res = livy_store_exec(c, rs->q_by_name, 1, params);
    }
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return NULL;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        livy_api_error(resp, p, 404, apr_psprintf(p, "%s '%s' not found.", rs->Noun, ref));
        return NULL;
    }
    return res;
}

/* Looks the session up by id or name (a per-session request: counts as a heartbeat).
 * Returns the one-row result, or NULL with resp set (404, or a database failure). */
static PGresult *lookup_session(const livy_route_t *r, livy_conn_t *c, apr_pool_t *p,
                                livy_api_response_t *resp)
{
    PGresult *res;
    if (r->route == LIVY_ROUTE_STATEMENT && r->statement_id >= 0
        && r->statement_id <= 2147483647) {
        /* the statement comes along, in the columns after the session's */
        res = lookup_ref(&sessions, r, Q_SESSION_STATEMENT,
                         apr_psprintf(p, "%" APR_INT64_T_FMT, r->statement_id), c, p, resp);
    } else {
        res = lookup_ref(&sessions, r, Q_SESSION_BY_ID, NULL, c, p, resp);
    }
    if (res && !strcmp(PQgetvalue(res, 0, SC_HEARTBEAT_DUE), "t")) {
        const char *params[1] = {PQgetvalue(res, 0, SC_ID)};
        PGresult *hb = livy_store_exec(c, Q_SESSION_HEARTBEAT, 1, params);
        int ok = PQresultStatus(hb) == PGRES_COMMAND_OK;
        if (!ok)
            reply_db_failure(resp, c, hb, p);
        PQclear(hb);
        if (!ok) {
            PQclear(res);
            return NULL;
        }
    }
    return res;
}

static void get_version(livy_conn_t *c, apr_pool_t *p, livy_api_response_t *resp)
{
    PGresult *res = livy_store_exec(c, Q_VERSION, 0, NULL);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(LIVY_API_VERSION));
    json_object_set_new(o, "server", json_string(LIVY_SERVER_NAME));
    json_object_set_new(o, "schemaVersion", json_integer(atoi(PQgetvalue(res, 0, 0))));
    PQclear(res);
    reply_json(resp, p, 200, o);
}

static const char *col(const PGresult *res, int row, int c)
{
    return PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

/* May the requester read the log of the session or batch in row, whose columns start at c0? */
static int can_view_row(const resource_t *rs, const livy_api_config_t *cfg,
                        const livy_api_request_t *req, const PGresult *res, int row, int c0)
{
    return livy_access_can_view(&cfg->security, req->user, col(res, row, c0 + rs->c_owner),
                                col(res, row, c0 + rs->c_proxy_user));
}

/* Reads the paging parameters `from` and `size` (at least size_min; the log allows negative). Returns the
 * parsed query, or NULL with a 400 in resp. */
static apr_table_t *paging(const livy_api_request_t *req, int64_t from_default,
                           int64_t size_default, int64_t size_min, int64_t *from, int64_t *size,
                           apr_pool_t *p, livy_api_response_t *resp)
{
    const char *err;
    apr_table_t *qp = livy_params_parse(req->query, p, &err);
    if (!qp || livy_param_int(qp, "from", from_default, 0, from, p, &err) != 0
        || livy_param_int(qp, "size", size_default, size_min, size, p, &err) != 0) {
        livy_api_error(resp, p, 400, err);
        return NULL;
    }
    return qp;
}

/* Room for the JSON text of res's rows: their text, and the keys and escapes around it. */
static size_t text_estimate(const PGresult *res)
{
    size_t n = 64;
    int rows = PQntuples(res), cols = PQnfields(res);
    for (int i = 0; i < rows; i++) {
        n += 512;
        for (int j = 0; j < cols; j++)
            n += (size_t)PQgetlength(res, i, j);
    }
    return n + n / 8;
}

static void reply_text(livy_api_response_t *resp, const livy_text_t *t)
{
    resp->status = 200;
    resp->body = t->buf;
    resp->body_len = t->len;
}

/* GET /sessions and GET /batches: {"from","total","sessions"} (Livy calls a page of batches
 * "sessions" too), written as text from the page's rows. */
static void list_page(const resource_t *rs, const livy_api_config_t *cfg,
                      const livy_api_request_t *req, livy_conn_t *c, apr_pool_t *p,
                      livy_api_response_t *resp)
{
    int64_t from, size;
    if (!paging(req, 0, SESSIONS_PAGE_DEFAULT, 0, &from, &size, p, resp))
        return;
    const char *qp[4] = {apr_psprintf(p, "%" APR_INT64_T_FMT, from),
                         apr_psprintf(p, "%" APR_INT64_T_FMT, size),
                         livy_access_can_view_all(&cfg->security, req->user) ? "t" : "f",
                         req->user && *req->user ? req->user : NULL};
    PGresult *res = livy_store_exec(c, rs->q_page, 4, qp);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return;
    }
    livy_text_t t;
    livy_text_init(&t, p, text_estimate(res));
    livy_text_lit(&t, "{\"from\":");
    livy_text_raw(&t, qp[0], strlen(qp[0]));
    livy_text_lit(&t, ",\"total\":");
    livy_text_integer(&t, PQgetvalue(res, 0, 0));
    livy_text_lit(&t, ",\"sessions\":[");
    for (int i = 0, n = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 1))
            continue;
        if (n++)
            livy_text_lit(&t, ",");
        rs->text_view(cfg, &t, res, i, 1, can_view_row(rs, cfg, req, res, i, 1));
    }
    livy_text_lit(&t, "]}");
    PQclear(res);
    reply_text(resp, &t);
}

static const char *json_text(apr_pool_t *p, json_t *j)
{
    return livy_json_dump(p, j, NULL);
}

static const char *int_text(apr_pool_t *p, int v)
{
    return apr_psprintf(p, "%d", v);
}

/* Admission control for bursts of creates and for one user's share; live sessions and live
 * batches count alike. Returns 1 when resp is set (429, or a database failure). The counts are
 * read just before the insert: two racing creates may both pass, which bounds the overshoot by
 * the number of concurrent requests. */
static int check_create_limits(const livy_api_config_t *cfg, const livy_api_request_t *req,
                               livy_conn_t *c, apr_pool_t *p, livy_api_response_t *resp)
{
    const livy_security_t *sec = &cfg->security;
    if (!sec->max_sessions_per_user && !sec->max_starting_sessions)
        return 0;
    const char *params[1] = {req->user && *req->user ? req->user : NULL};
    PGresult *res = livy_store_exec(c, Q_SESSION_COUNTS, 1, params);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return 1;
    }
    long mine = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    long starting = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    if (sec->max_starting_sessions && starting >= sec->max_starting_sessions) {
        livy_api_error(resp, p, 429, apr_psprintf(p, "Too many sessions and batches are "
                       "starting (%ld, the limit is %d): try again when some are up.", starting,
                       sec->max_starting_sessions));
        return 1;
    }
    if (sec->max_sessions_per_user && params[0] && mine >= sec->max_sessions_per_user) {
        livy_api_error(resp, p, 429, apr_psprintf(p, "User '%s' already has %ld live sessions "
                       "and batches, the limit: delete one first.", params[0], mine));
        return 1;
    }
    return 0;
}

/* What every create checks once its body is valid: the query string (400), whom it runs as
 * (impersonation: 403) and the limits (429). Returns 1 when resp is set; else *proxy_user is
 * decided. */
static int create_allowed(const livy_api_config_t *cfg, const livy_api_request_t *req,
                          const char *body_proxy_user, livy_conn_t *c, apr_pool_t *p,
                          livy_api_response_t *resp, const char **proxy_user)
{
    const char *err;
    apr_table_t *qp = livy_params_parse(req->query, p, &err);
    if (!qp) {
        livy_api_error(resp, p, 400, err);
        return 1;
    }
    if (livy_access_proxy_user(&cfg->security, req->user, apr_table_get(qp, "doAs"),
                               body_proxy_user, p, proxy_user, &err) != 0) {
        livy_api_error(resp, p, 403, err);
        return 1;
    }
    return check_create_limits(cfg, req, c, p, resp);
}

/* The parameters both inserts share, at the places both give them: $1 the name, $3 the owner,
 * $4 the proxy user, $5 to $15 the Spark settings. */
#define CREATE_PARAMS 20
#define SESSION_CREATE_PARAMS 22
static void spark_params(const livy_spark_req_t *s, const livy_api_request_t *req,
                         const char *proxy_user, apr_pool_t *p, const char **params)
{
    params[0] = s->name;
    params[2] = req->user && *req->user ? req->user : NULL;
    params[3] = proxy_user;
    params[4] = s->driver_memory;
    params[5] = int_text(p, s->driver_cores);
    params[6] = s->executor_memory;
    params[7] = int_text(p, s->executor_cores);
    params[8] = int_text(p, s->num_executors);
    params[9] = s->queue;
    params[10] = json_text(p, s->conf);
    params[11] = json_text(p, s->jars);
    params[12] = json_text(p, s->py_files);
    params[13] = json_text(p, s->files);
    params[14] = json_text(p, s->archives);
}

/* Runs insert q and answers 201 with the new row's view and its Location, or 400 when a live
 * session or batch already has the name. */
static void insert_created(const resource_t *rs, const livy_api_config_t *cfg, livy_query_e q,
                           int nparams, const char *const *params, livy_conn_t *c,
                           apr_pool_t *p, livy_api_response_t *resp)
{
    PGresult *res = livy_store_exec(c, q, nparams, params);
    if (!ok_tuples(res)) {
        if (!strcmp(livy_store_sqlstate(res), "23505"))
            livy_api_error(resp, p, 400, apr_psprintf(p, "Duplicate %s name '%s': a live %s "
                                                      "already has it.", rs->noun, params[0],
                                                      rs->noun));
        else
            reply_db_failure(resp, c, res, p);
        PQclear(res);
        return;
    }
    json_t *view = rs->view(cfg, res, 0, 0, 1);
    resp->location = apr_psprintf(p, "%s/%s/%s", cfg->base_path, rs->path,
                                  PQgetvalue(res, 0, rs->c_id));
    PQclear(res);
    reply_json(resp, p, 201, view);
}

/* Whether a warm REPL (started with the server's settings alone, as its REPL user, with no
 * proxy user) can be this session's: nothing asked for that needs a JVM of its own. The name
 * can: it names the session, while the Spark application keeps the warm REPL's name. */
static int warm_can_serve(const livy_spark_req_t *s, const char *proxy_user)
{
    return !proxy_user && !s->driver_memory && !s->executor_memory && !s->queue
           && !s->driver_cores && !s->executor_cores && !s->num_executors
           && json_object_size(s->conf) == 0 && json_array_size(s->jars) == 0
           && json_array_size(s->py_files) == 0 && json_array_size(s->files) == 0
           && json_array_size(s->archives) == 0;
}

/* Whether the session asks for a shared driver: the conf entry SHARED_DRIVER_CONF (taken out
 * of its Spark conf), else LivySharedDrivers. Only Python and SQL share a driver: an explicit
 * request for another kind is refused (-1 with *err), the server's default passes it by. */
#define SHARED_DRIVER_CONF "livy.session.sharedDriver"
static int wants_shared_driver(const livy_api_config_t *cfg, livy_session_req_t *s,
                               apr_pool_t *p, const char **err)
{
    int shared = cfg->shared_drivers;
    json_t *v = json_object_get(s->spark.conf, SHARED_DRIVER_CONF);
    int explicit = v != NULL;
    if (v) {
        /* conf values arrive as strings (booleans coerced by validation) */
        const char *text = json_string_value(v);
        if (text && !strcasecmp(text, "true"))
            shared = 1;
        else if (text && !strcasecmp(text, "false"))
            shared = 0;
        else {
            *err = apr_psprintf(p, "Configuration '" SHARED_DRIVER_CONF "' must be true or "
                                   "false, not '%.64s'.", text ? text : "");
            return -1;
        }
        json_object_del(s->spark.conf, SHARED_DRIVER_CONF);
    }
    if (shared && s->kind && (!strcmp(s->kind, "spark") || !strcmp(s->kind, "sparkr"))) {
        if (explicit) {
            *err = apr_psprintf(p, "Sessions of kind %s cannot share a driver ('"
                                   SHARED_DRIVER_CONF "'): only pyspark, sql and shared "
                                   "sessions can.", s->kind);
            return -1;
        }
        shared = 0;
    }
    return shared;
}

static void create_session(const livy_api_config_t *cfg, const livy_api_request_t *req,
                           livy_conn_t *c, apr_pool_t *p, livy_api_response_t *resp)
{
    livy_session_req_t s;
    const char *err, *proxy_user;
    if (livy_validate_session_create(req->body, req->body_len, &cfg->validate, p, &s, &err)) {
        livy_api_error(resp, p, 400, err);
        return;
    }
    int shared = wants_shared_driver(cfg, &s, p, &err);
    if (shared < 0) {
        livy_api_error(resp, p, 400, err);
        return;
    }
    if (create_allowed(cfg, req, s.spark.proxy_user, c, p, resp, &proxy_user))
        return;
    const char *params[SESSION_CREATE_PARAMS];
    spark_params(&s.spark, req, proxy_user, p, params);
    params[1] = s.kind;
    params[15] = int_text(p, s.heartbeat_timeout);
    params[16] = s.ttl;
    params[17] = s.idle_timeout;
    params[18] = s.ttl_ms >= 0 ? apr_psprintf(p, "%" APR_INT64_T_FMT, s.ttl_ms) : NULL;
    params[19] = s.idle_timeout_ms >= 0 ? apr_psprintf(p, "%" APR_INT64_T_FMT, s.idle_timeout_ms)
                                        : NULL;
    /* A shared session joins a driver of its kind, or starts one; never a warm REPL. */
    params[20] = !shared && warm_can_serve(&s.spark, proxy_user) ? "t" : "f";
    params[21] = shared ? "t" : "f";
    insert_created(&sessions, cfg, Q_SESSION_INSERT, SESSION_CREATE_PARAMS, params, c, p, resp);
}

static void create_batch(const livy_api_config_t *cfg, const livy_api_request_t *req,
                         livy_conn_t *c, apr_pool_t *p, livy_api_response_t *resp)
{
    livy_batch_req_t b;
    const char *err, *proxy_user;
    if (livy_validate_batch_create(req->body, req->body_len, &cfg->validate, p, &b, &err)) {
        livy_api_error(resp, p, 400, err);
        return;
    }
    if (create_allowed(cfg, req, b.spark.proxy_user, c, p, resp, &proxy_user))
        return;
    const char *params[CREATE_PARAMS];
    spark_params(&b.spark, req, proxy_user, p, params);
    params[1] = b.file;
    params[15] = b.class_name;
    params[16] = json_text(p, b.args);
    insert_created(&batches, cfg, Q_BATCH_INSERT, 17, params, c, p, resp);
}

/* Runs command q (one parameter: the id) and sets *changed to the rows it changed, or -1 with
 * resp set when it failed. */
static void row_command(livy_query_e q, const char *id, livy_conn_t *c, apr_pool_t *p,
                        livy_api_response_t *resp, int *changed)
{
    const char *params[1] = {id};
    PGresult *res = livy_store_exec(c, q, 1, params);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        reply_db_failure(resp, c, res, p);
        *changed = -1;
    } else {
        *changed = st == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : atoi(PQcmdTuples(res));
    }
    PQclear(res);
}

/* ---- completion ---- */

/* The supervisor stores what the REPL sent: only an array of strings is passed on. */
static json_t *candidates_from(const char *text)
{
    json_t *list = json_loads(text, 0, NULL);
    json_t *out = json_array();
    size_t i;
    json_t *v;
    if (json_is_array(list)) {
        json_array_foreach(list, i, v) {
            if (json_is_string(v))
                json_array_append(out, v);
        }
    }
    json_decref(list);
    return out;
}

int livy_api_completion_poll(livy_conn_t *c, apr_int64_t id, apr_pool_t *p,
                             livy_api_response_t *resp, int *broken)
{
    const char *params[1] = {apr_psprintf(p, "%" APR_INT64_T_FMT, id)};
    PGresult *res = livy_store_exec(c, Q_COMPLETION_TAKE, 1, params);
    int rc = 0;
    *broken = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        *broken = PQstatus(c->pg) != CONNECTION_OK || !strncmp(livy_store_sqlstate(res), "08", 2)
                  || !strncmp(livy_store_sqlstate(res), "57P", 3);
        resp->log_detail = livy_db_error(c->pg, p);
        rc = -1;
    } else if (PQntuples(res) == 1) {
        json_t *o = json_object();
        json_object_set_new(o, "candidates", candidates_from(PQgetvalue(res, 0, 0)));
        reply_json(resp, p, 200, o);
        rc = 1;
    }
    PQclear(res);
    return rc;
}

void livy_api_completion_drop(livy_conn_t *c, apr_int64_t id, apr_pool_t *p, int *broken)
{
    const char *params[1] = {apr_psprintf(p, "%" APR_INT64_T_FMT, id)};
    PGresult *res = livy_store_exec(c, Q_COMPLETION_DROP, 1, params);
    *broken = PQresultStatus(res) != PGRES_COMMAND_OK
              && (PQstatus(c->pg) != CONNECTION_OK || !strncmp(livy_store_sqlstate(res), "08", 2)
                  || !strncmp(livy_store_sqlstate(res), "57P", 3));
    PQclear(res);
}

/* ---- statements ---- */

static void create_statement(const livy_api_config_t *cfg, const livy_api_request_t *req,
                             PGresult *session, livy_conn_t *c, apr_pool_t *p,
                             livy_api_response_t *resp)
{
    livy_statement_req_t st;
    const char *err;
    const char *sid = PQgetvalue(session, 0, SC_ID);
    const char *state = PQgetvalue(session, 0, SC_STATE);
    if (livy_validate_statement_create(req->body, req->body_len, &cfg->validate, p, &st, &err)) {
        livy_api_error(resp, p, 400, err);
        return;
    }
    if (state_is_ended(state)) {
        livy_api_error(resp, p, 400, apr_psprintf(p, "Session %s is %s: it no longer accepts "
                                                  "statements.", sid, state));
        return;
    }
    if (!st.kind && !strcmp(PQgetvalue(session, 0, SC_KIND), "shared")) {
        livy_api_error(resp, p, 400, apr_psprintf(p, "Session %s is a shared session: say which "
                       "interpreter runs the code with 'kind' (spark, pyspark, sparkr or sql).",
                       sid));
        return;
    }
    const char *params[3] = {sid, st.code, st.kind};
    PGresult *res = livy_store_exec(c, Q_STATEMENT_INSERT, 3, params);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return;
    }
    if (PQntuples(res) == 0) { /* the session ended between the lookup and the insert */
        PQclear(res);
        livy_api_error(resp, p, 400, apr_psprintf(p, "Session %s has ended: it no longer accepts "
                                                  "statements.", sid));
        return;
    }
    json_t *view = livy_view_statement(res, 0);
    resp->location = apr_psprintf(p, "%s/sessions/%s/statements/%s", cfg->base_path, sid,
                                  PQgetvalue(res, 0, ST_ID));
    PQclear(res);
    reply_json(resp, p, 201, view);
}

static void list_statements(const livy_api_request_t *req, PGresult *session, livy_conn_t *c,
                            apr_pool_t *p, livy_api_response_t *resp)
{
    int64_t from, size;
    apr_table_t *qp = paging(req, -1, STATEMENTS_PAGE_DEFAULT, 0, &from, &size, p, resp);
    if (!qp)
        return;
    const char *order = apr_table_get(qp, "order");
    if (order && strcmp(order, "desc") != 0 && strcmp(order, "asc") != 0) {
        livy_api_error(resp, p, 400, apr_psprintf(p, "Query parameter 'order' must be 'asc' or "
                                                  "'desc', got '%s'.", order));
        return;
    }
    if (size > STATEMENTS_PAGE_MAX) {
        livy_api_error(resp, p, 400, apr_psprintf(p, "Query parameter 'size' must be at most %d "
                                                  "(page with 'from'), got '%" APR_INT64_T_FMT
                                                  "'.", STATEMENTS_PAGE_MAX, size));
        return;
    }
    int64_t total = strtoll(PQgetvalue(session, 0, SC_NEXT_STATEMENT), NULL, 10);
    /* Neither `from` nor `size`: Livy lists every statement it retains, the most recent ones,
     * so the default page is the newest (in ascending order, the last 100). Otherwise `from`
     * counts from the first in the order asked, as in Livy. */
    if (from < 0)
        from = !apr_table_get(qp, "size") && !(order && !strcmp(order, "desc"))
                   ? (total > size ? total - size : 0) : 0;
    int desc = order && !strcmp(order, "desc");
    const char *params[4] = {PQgetvalue(session, 0, SC_ID),
                             apr_psprintf(p, "%" APR_INT64_T_FMT, from),
                             apr_psprintf(p, "%" APR_INT64_T_FMT, size),
                             apr_psprintf(p, "%" APR_INT64_T_FMT, total)};
    PGresult *res = livy_store_exec(c, desc ? Q_STATEMENTS_DESC : Q_STATEMENTS_ASC, desc ? 4 : 3,
                                    params);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return;
    }
    livy_text_t t;
    livy_text_init(&t, p, text_estimate(res));
    /* ids are gapless from 0, so the next id is the count */
    livy_text_lit(&t, "{\"total_statements\":");
    livy_text_raw(&t, params[3], strlen(params[3]));
    livy_text_lit(&t, ",\"statements\":[");
    for (int i = 0; i < PQntuples(res); i++) {
        if (i)
            livy_text_lit(&t, ",");
        livy_view_statement_text(&t, res, i);
    }
    livy_text_lit(&t, "]}");
    PQclear(res);
    reply_text(resp, &t);
}

static int statement_ref_ok(const livy_route_t *r, PGresult *session, apr_pool_t *p,
                            livy_api_response_t *resp)
{
    if (r->statement_id < 0 || r->statement_id > 2147483647) {
        livy_api_error(resp, p, 404, apr_psprintf(p, "Statement '%s' not found in session %s.",
                                                  r->statement_ref,
                                                  PQgetvalue(session, 0, SC_ID)));
        return 0;
    }
    return 1;
}

static void get_statement(const livy_route_t *r, PGresult *session, livy_conn_t *c,
                          apr_pool_t *p, livy_api_response_t *resp)
{
    if (!statement_ref_ok(r, session, p, resp))
        return;
    const char *params[2] = {PQgetvalue(session, 0, SC_ID),
                             apr_psprintf(p, "%" APR_INT64_T_FMT, r->statement_id)};
    if (PQnfields(session) > SC__COUNT) { /* the lookup brought the statement along */
        if (PQgetisnull(session, 0, SC__COUNT + ST_ID)) {
            livy_api_error(resp, p, 404, apr_psprintf(p, "Statement '%s' not found in session "
                                                      "%s.", r->statement_ref, params[0]));
        }
        else {
            livy_text_t t;
            livy_text_init(&t, p, text_estimate(session));
            livy_view_statement_text_at(&t, session, 0, SC__COUNT);
            reply_text(resp, &t);
        }
        return;
    }
    PGresult *res = livy_store_exec(c, Q_STATEMENT_GET, 2, params);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
    } else if (PQntuples(res) == 0) {
        livy_api_error(resp, p, 404, apr_psprintf(p, "Statement '%s' not found in session %s.",
                                                  r->statement_ref, params[0]));
    } else {
        reply_json(resp, p, 200, livy_view_statement(res, 0));
    }
    PQclear(res);
}

static void cancel_statement(const livy_api_request_t *req, const livy_route_t *r,
                             PGresult *session, livy_conn_t *c, apr_pool_t *p,
                             livy_api_response_t *resp)
{
    const char *err;
    if (livy_validate_empty_object(req->body, req->body_len, p, &err) != 0) {
        livy_api_error(resp, p, 400, err);
        return;
    }
    if (!statement_ref_ok(r, session, p, resp))
        return;
    const char *params[2] = {PQgetvalue(session, 0, SC_ID),
                             apr_psprintf(p, "%" APR_INT64_T_FMT, r->statement_id)};
    PGresult *res = livy_store_exec(c, Q_STATEMENT_CANCEL, 2, params);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
    } else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        livy_api_error(resp, p, 404, apr_psprintf(p, "Statement '%s' not found in session %s.",
                                                  r->statement_ref, params[0]));
    } else {
        livy_api_error(resp, p, 200, "canceled"); /* Livy's spelling, in its {"msg"} body */
    }
    PQclear(res);
}

/* ---- log ---- */

/* GET .../log of a session or batch (id): size defaults to 100, a negative size is every
 * line, `from` missing is the tail. */
static void get_log(const resource_t *rs, const livy_api_request_t *req, const char *id,
                    livy_conn_t *c, apr_pool_t *p, livy_api_response_t *resp)
{
    int64_t from, size;
    if (!paging(req, -1, LOG_PAGE_DEFAULT, -LIVY_PARAM_MAX, &from, &size, p, resp))
        return;
    const char *tp[1] = {id};
    PGresult *res = livy_store_exec(c, rs->q_log_total, 1, tp);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return;
    }
    int64_t total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (size < 0) /* all lines */
        size = total;
    if (from < 0) /* the tail by default */
        from = total > size ? total - size : 0;
    const char *params[3] = {id, apr_psprintf(p, "%" APR_INT64_T_FMT, from),
                             apr_psprintf(p, "%" APR_INT64_T_FMT, size)};
    res = livy_store_exec(c, rs->q_log_page, 3, params);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return;
    }
    json_t *lines = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(lines, json_string(PQgetvalue(res, i, 0)));
    PQclear(res);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(strtoll(id, NULL, 10)));
    json_object_set_new(o, "from", json_integer(from));
    json_object_set_new(o, "total", json_integer(total));
    json_object_set_new(o, "log", lines);
    reply_json(resp, p, 200, o);
}

/* ---- the Spark UI ---- */

/* Decides where a request for the session's Spark UI goes: resp->proxy_* set (the module
 * proxies it), or an error: the page is not one of Spark's, the UI is not up (409) or gone
 * (404), or this server does not proxy (501). Access was checked by the caller. */
static void spark_ui(const livy_api_config_t *cfg, const livy_api_request_t *req,
                     const livy_route_t *r, PGresult *s, apr_pool_t *p,
                     livy_api_response_t *resp)
{
    const char *id = PQgetvalue(s, 0, SC_ID);
    const char *state = PQgetvalue(s, 0, SC_STATE);
    const char *backend = livy_ui_backend(col(s, 0, SC_SPARK_UI_URL), p);
    if (!livy_ui_path_ok(r->ui_path)) {
        livy_api_error(resp, p, 404, apr_psprintf(p, "No such page in the Spark UI of session "
                                                  "%s.", id));
    } else if (state_is_ended(state) || !strcmp(PQgetvalue(s, 0, SC_ENDED), "t")) {
        livy_api_error(resp, p, 404, apr_psprintf(p, "Session %s has ended (%s): its Spark UI "
                                                  "is gone.", id, state));
    } else if (!backend && (!strcmp(state, "not_started") || !strcmp(state, "starting")
                            || !strcmp(state, "recovering"))) {
        livy_api_error(resp, p, 409, apr_psprintf(p, "Session %s is %s: its Spark UI is not up "
                                                  "yet; try again when it is idle.", id, state));
    } else if (!backend) {
        livy_api_error(resp, p, 404, apr_psprintf(p, "Session %s has no Spark UI (its "
                       "spark.ui.enabled is false, or its driver reported none).", id));
    } else if (!cfg->ui_base) {
        livy_api_error(resp, p, 501, "This server does not proxy Spark UIs: its httpd has no "
                                     "mod_proxy and mod_proxy_http loaded.");
    } else {
        resp->status = 200;
        resp->proxy_backend = backend;
        resp->proxy_context = apr_psprintf(p, "%s/sessions/%s/" LIVY_UI_SEGMENT,
                                           cfg->base_path, id);
        resp->proxy_url = apr_pstrcat(p, backend, *r->ui_path ? r->ui_path : "/",
                                      req->query ? "?" : "", req->query ? req->query : "",
                                      NULL);
    }
}

/* ---- metrics ---- */

/* GET /metrics: one query, rendered as Prometheus text. Nothing is cached: every node of a
 * cluster reports the same values, read from the database at each scrape. */
static void get_metrics(const livy_api_config_t *cfg, livy_conn_t *c, apr_pool_t *p,
                        livy_api_response_t *resp)
{
    const char *params[2] = {livy_metrics_bounds_param(p), livy_metrics_start_bounds_param(p)};
    PGresult *res = livy_store_exec(c, Q_METRICS, 2, params);
    if (!ok_tuples(res)) {
        reply_db_failure(resp, c, res, p);
        PQclear(res);
        return;
    }
    livy_metrics_t m;
    const char *err;
    livy_metrics_init(&m, LIVY_PACKAGE_VERSION, p);
    if (cfg->http_metrics) {
        livy_metrics_http_t *http = apr_pcalloc(p, sizeof *http);
        cfg->http_metrics(http);
        m.http = http;
    }
    int rc = livy_metrics_from_result(res, &m, p, &err);
    PQclear(res);
    if (rc != 0) {
        resp->log_detail = err;
        livy_api_error(resp, p, 500, "Internal error reading the metrics; see the server's "
                                     "error log.");
        return;
    }
    resp->status = 200;
    resp->content_type = LIVY_METRICS_CONTENT_TYPE;
    resp->body = livy_metrics_render(&m, p, &resp->body_len);
}

/* ---- the web UI's JSON (read-only; for anyone admitted, like GET /sessions) ---- */

static void webui_supervisors(livy_conn_t *c, apr_pool_t *p, livy_api_response_t *resp)
{
    PGresult *res = livy_store_exec(c, Q_WEBUI_SUPERVISORS, 0, NULL);
    if (ok_tuples(res))
        reply_json(resp, p, 200, livy_webui_supervisors_view(res));
    else
        reply_db_failure(resp, c, res, p);
    PQclear(res);
}

/* The ages and idle times of the sessions of the GET /sessions page with the same from and size
 * (no log, no settings: nothing that view access guards). */
static void webui_session_times(const livy_api_request_t *req, livy_conn_t *c, apr_pool_t *p,
                                livy_api_response_t *resp)
{
    int64_t from, size;
    if (!paging(req, 0, SESSIONS_PAGE_DEFAULT, 0, &from, &size, p, resp))
        return;
    const char *params[2] = {apr_psprintf(p, "%" APR_INT64_T_FMT, from),
                             apr_psprintf(p, "%" APR_INT64_T_FMT, size)};
    PGresult *res = livy_store_exec(c, Q_WEBUI_SESSION_TIMES, 2, params);
    if (ok_tuples(res))
        reply_json(resp, p, 200, livy_webui_session_times_view(res, from));
    else
        reply_db_failure(resp, c, res, p);
    PQclear(res);
}

/* ---- dispatch ---- */

/* Livy's view and modify rules per route; GET /sessions/{id}, /batches/{id} and their /state
 * are never refused. */
static int access_ok(const resource_t *rs, const livy_api_config_t *cfg,
                     const livy_api_request_t *req, const livy_route_t *r, livy_method_e m,
                     PGresult *row, int can_view, apr_pool_t *p, livy_api_response_t *resp)
{
    int need_modify = 0, need_view = 0;
    switch (r->route) {
    case LIVY_ROUTE_SESSION:
    case LIVY_ROUTE_BATCH:
        need_modify = m == LIVY_M_DELETE;
        break;
    case LIVY_ROUTE_SESSION_STATE:
    case LIVY_ROUTE_BATCH_STATE:
        break;
    case LIVY_ROUTE_SESSION_LOG:
    case LIVY_ROUTE_BATCH_LOG:
    case LIVY_ROUTE_STATEMENT:
        need_view = 1;
        break;
    case LIVY_ROUTE_SESSION_UI: /* Spark's kill links stop the owner's jobs */
        need_view = 1;
        need_modify = livy_ui_path_kills(r->ui_path);
        break;
    case LIVY_ROUTE_STATEMENTS:
        need_view = m != LIVY_M_POST;
        need_modify = m == LIVY_M_POST;
        break;
    default: /* connect, stop, completion, cancel */
        need_modify = 1;
    }
    const char *user = req->user && *req->user ? req->user : NULL;
    if (need_view && !can_view) {
        livy_api_error(resp, p, 403, apr_psprintf(p, "User '%s' may not view %s %s.",
                       user ? user : "(anonymous)", rs->noun, PQgetvalue(row, 0, rs->c_id)));
        return 0;
    }
    if (need_modify && !livy_access_can_modify(&cfg->security, user, col(row, 0, rs->c_owner),
                                               col(row, 0, rs->c_proxy_user))) {
        livy_api_error(resp, p, 403, apr_psprintf(p, "User '%s' may not modify %s %s.",
                       user ? user : "(anonymous)", rs->noun, PQgetvalue(row, 0, rs->c_id)));
        return 0;
    }
    return 1;
}

/* The routes only sessions have, on session s. */
static void session_only(const livy_api_config_t *cfg, const livy_api_request_t *req,
                         const livy_route_t *r, PGresult *s, int can_view, livy_conn_t *c,
                         apr_pool_t *p, livy_api_response_t *resp)
{
    livy_method_e m = livy_method_from_name(req->method);
    const char *err;
    const char *id = PQgetvalue(s, 0, SC_ID);
    const char *state = PQgetvalue(s, 0, SC_STATE);
    int changed = 0;
    switch (r->route) {
    case LIVY_ROUTE_SESSION_STOP:
        if (livy_validate_empty_object(req->body, req->body_len, p, &err) != 0) {
            livy_api_error(resp, p, 400, err);
            break;
        }
        row_command(Q_SESSION_STOP, id, c, p, resp, &changed);
        if (changed >= 0) {
            resp->status = 204;
            resp->body = NULL;
            resp->body_len = 0;
        }
        break;
    case LIVY_ROUTE_SESSION_CONNECT:
        if (livy_validate_empty_object(req->body, req->body_len, p, &err) != 0) {
            livy_api_error(resp, p, 400, err);
        } else if (state_is_ended(state)) {
            livy_api_error(resp, p, 400, apr_psprintf(p, "Session %s is %s: it cannot be "
                                                      "connected to.", id, state));
        } else {
            row_command(Q_SESSION_ACTIVITY, id, c, p, resp, &changed);
            if (changed >= 0)
                reply_json(resp, p, 200, livy_view_session(s, 0, 0, can_view, cfg->ui_base));
        }
        break;
    case LIVY_ROUTE_SESSION_COMPLETION: {
        livy_completion_req_t cr;
        if (livy_validate_completion(req->body, req->body_len, p, &cr, &err) != 0) {
            livy_api_error(resp, p, 400, err);
        } else if (state_is_ended(state)) {
            livy_api_error(resp, p, 400, apr_psprintf(p, "Session %s is %s.", id, state));
        } else if (!cfg->completion) {
            row_command(Q_SESSION_ACTIVITY, id, c, p, resp, &changed);
            if (changed >= 0) {
                json_t *o = json_object();
                json_object_set_new(o, "candidates", json_array());
                reply_json(resp, p, 200, o);
            }
        } else {
            /* Asked of the REPL when it can answer; the module waits for the candidates
             * (livy_api_completion_poll) without holding this connection. Until then, and
             * whenever none come in time, the answer is no candidates. */
            const char *params[4] = {id, cr.kind, cr.code,
                                     apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)cr.cursor)};
            PGresult *res = livy_store_exec(c, Q_COMPLETION_INSERT, 4, params);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                reply_db_failure(resp, c, res, p);
            } else {
                json_t *o = json_object();
                json_object_set_new(o, "candidates", json_array());
                reply_json(resp, p, 200, o);
                if (!PQgetisnull(res, 0, 1))
                    resp->completion_id = apr_atoi64(PQgetvalue(res, 0, 1));
            }
            PQclear(res);
        }
        break;
    }
    case LIVY_ROUTE_STATEMENTS:
        if (m == LIVY_M_POST)
            create_statement(cfg, req, s, c, p, resp);
        else
            list_statements(req, s, c, p, resp);
        break;
    case LIVY_ROUTE_STATEMENT:
        get_statement(r, s, c, p, resp);
        break;
    case LIVY_ROUTE_STATEMENT_CANCEL:
        cancel_statement(req, r, s, c, p, resp);
        break;
    case LIVY_ROUTE_SESSION_UI:
        spark_ui(cfg, req, r, s, p, resp);
        break;
    default:
        livy_api_error(resp, p, 404, "No such resource.");
    }
}

/* A route below /sessions/{id} or /batches/{id}: the lookup, the access rules, then the
 * route's answer. */
static void per_resource(const livy_api_config_t *cfg, const livy_api_request_t *req,
                         const livy_route_t *r, livy_conn_t *c, apr_pool_t *p,
                         livy_api_response_t *resp)
{
    const resource_t *rs = resource_of(r->route);
    livy_method_e m = livy_method_from_name(req->method);
    PGresult *row = rs == &sessions ? lookup_session(r, c, p, resp)
                                    : lookup_ref(rs, r, rs->q_by_id, NULL, c, p, resp);
    if (!row)
        return;
    const char *id = PQgetvalue(row, 0, rs->c_id);
    int changed = 0;
    int can_view = can_view_row(rs, cfg, req, row, 0, 0);
    if (!access_ok(rs, cfg, req, r, m, row, can_view, p, resp)) {
        PQclear(row);
        return;
    }

    switch (r->route) {
    case LIVY_ROUTE_SESSION:
    case LIVY_ROUTE_BATCH:
        if (m == LIVY_M_DELETE) {
            row_command(rs->q_delete, id, c, p, resp, &changed);
            if (changed >= 0)
                livy_api_error(resp, p, 200, "deleted");
        } else {
            /* as text, the listings' writer: no JSON tree built and dumped again */
            livy_text_t t;
            livy_text_init(&t, p, text_estimate(row));
            rs->text_view(cfg, &t, row, 0, 0, can_view);
            reply_text(resp, &t);
        }
        break;
    case LIVY_ROUTE_SESSION_STATE:
    case LIVY_ROUTE_BATCH_STATE: {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(strtoll(id, NULL, 10)));
        json_object_set_new(o, "state", json_string(PQgetvalue(row, 0, rs->c_state)));
        reply_json(resp, p, 200, o);
        break;
    }
    case LIVY_ROUTE_SESSION_LOG:
    case LIVY_ROUTE_BATCH_LOG:
        get_log(rs, req, id, c, p, resp);
        break;
    default:
        session_only(cfg, req, r, row, can_view, c, p, resp);
    }
    PQclear(row);
}

void livy_api_handle(const livy_api_config_t *cfg, const livy_api_request_t *req,
                     const livy_route_t *r, livy_conn_t *conn, apr_pool_t *p,
                     livy_api_response_t *resp)
{
    livy_method_e m = livy_method_from_name(req->method);
    switch (r->route) {
    case LIVY_ROUTE_VERSION:
        get_version(conn, p, resp);
        return;
    case LIVY_ROUTE_METRICS:
        get_metrics(cfg, conn, p, resp);
        return;
    case LIVY_ROUTE_SESSIONS:
        if (m == LIVY_M_POST)
            create_session(cfg, req, conn, p, resp);
        else
            list_page(&sessions, cfg, req, conn, p, resp);
        return;
    case LIVY_ROUTE_BATCHES:
        if (m == LIVY_M_POST)
            create_batch(cfg, req, conn, p, resp);
        else
            list_page(&batches, cfg, req, conn, p, resp);
        return;
    case LIVY_ROUTE_WEBUI_SUPERVISORS:
        webui_supervisors(conn, p, resp);
        return;
    case LIVY_ROUTE_WEBUI_SESSION_TIMES:
        webui_session_times(req, conn, p, resp);
        return;
    case LIVY_ROUTE_WEBUI_FILE: /* the module serves the files; never here */
        livy_api_error(resp, p, 404, "No such resource.");
        return;
    default:
        per_resource(cfg, req, r, conn, p, resp);
    }
}
