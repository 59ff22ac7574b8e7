/* livy_api: what is answered before the database is involved (404, 405 with Allow, CSRF,
 * admission, 400s from validation and query parameters, 403 for impersonation), and the 503 when
 * the database is not there. The connection used here has no libpq handle: the engine must never
 * need one for these answers. */
#include "test_engine.h"
#include "livy_api.h"
#include "livy_json.h"

#include <apr_strings.h>

static livy_api_request_t request(const char *method, const char *path, const char *query,
                                  const char *body)
{
    livy_api_request_t req = {0};
    req.method = method;
    req.path = path;
    req.query = query;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    return req;
}

/* The module's defaults: security off, spark.master blocked, mounted at /. */
static livy_api_config_t *config(void)
{
    livy_api_config_t *cfg = apr_pcalloc(test_pool, sizeof *cfg);
    apr_array_header_t *blocked = apr_array_make(test_pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(blocked, const char *) = "spark.master";
    cfg->validate.blocked_conf = blocked;
    cfg->base_path = "";
    return cfg;
}

static apr_array_header_t *users(const char *a, const char *b)
{
    apr_array_header_t *list = apr_array_make(test_pool, 2, sizeof(const char *));
    if (a)
        APR_ARRAY_PUSH(list, const char *) = a;
    if (b)
        APR_ARRAY_PUSH(list, const char *) = b;
    return list;
}

/* ---- livy_api_route ---- */

static const struct {
    const char *method, *path;
} not_found[] = {
    {"GET", "/nope"},
    {"GET", "/"},
    {"GET", ""},
    {"POST", "/batches/1/stop"},
    {"GET", "/batches/1/statements"},
    {"GET", "/batches/1/ui/"},
    {"GET", "/sessions/1/nope"},
    {"DELETE", "/sessions/1/statements/2/cancel/now"},
    {"PUT", "/version/2"},          /* an unknown path is a 404 whatever the method */
    {"GET", "/a\"b\\c\n"},          /* echoed back: must stay valid JSON */
};

START_TEST(route_unknown_path_is_404_with_msg)
{
    livy_api_request_t req = request(not_found[_i].method, not_found[_i].path, NULL, NULL);
    livy_route_t r;
    livy_api_response_t resp;
    ck_assert_int_eq(livy_api_route(config(), &req, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 404);
    ck_assert_ptr_null(resp.allow);
    ck_assert_ptr_null(resp.location);
    const char *msg = test_error_body_msg(resp.body, resp.body_len);
    ck_assert_mentions(msg, not_found[_i].path);
}
END_TEST

static const struct {
    const char *method, *path, *allow;
} not_allowed[] = {
    {"PUT", "/sessions", "GET, HEAD, POST"},
    {"DELETE", "/sessions", "GET, HEAD, POST"},
    {"DELETE", "/version", "GET, HEAD"},
    {"POST", "/version", "GET, HEAD"},
    {"OPTIONS", "/version", "GET, HEAD"},
    {"POST", "/sessions/1", "GET, HEAD, DELETE"},
    {"PATCH", "/sessions/etl", "GET, HEAD, DELETE"},
    {"POST", "/sessions/1/state", "GET, HEAD"},
    {"DELETE", "/sessions/1/log", "GET, HEAD"},
    {"POST", "/sessions/1/logs", "GET, HEAD"},
    {"GET", "/sessions/1/stop", "POST"},
    {"HEAD", "/sessions/1/stop", "POST"},
    {"GET", "/sessions/1/connect", "POST"},
    {"DELETE", "/sessions/1/completion", "POST"},
    {"DELETE", "/sessions/1/statements", "GET, HEAD, POST"},
    {"POST", "/sessions/1/statements/0", "GET, HEAD"},
    {"DELETE", "/sessions/1/statements/0", "GET, HEAD"},
    {"GET", "/sessions/1/statements/0/cancel", "POST"},
    {"PUT", "/batches", "GET, HEAD, POST"},
    {"DELETE", "/batches", "GET, HEAD, POST"},
    {"POST", "/batches/1", "GET, HEAD, DELETE"},
    {"PATCH", "/batches/etl", "GET, HEAD, DELETE"},
    {"DELETE", "/batches/1/state", "GET, HEAD"},
    {"POST", "/batches/1/log", "GET, HEAD"},
    {"DELETE", "/batches/1/logs", "GET, HEAD"},
    {"get", "/version", "GET, HEAD"}, /* methods are case-sensitive */
};

START_TEST(route_wrong_method_is_405_with_allow)
{
    livy_api_request_t req = request(not_allowed[_i].method, not_allowed[_i].path, NULL, NULL);
    livy_route_t r;
    livy_api_response_t resp;
    ck_assert_int_eq(livy_api_route(config(), &req, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 405);
    ck_assert_pstr_eq(resp.allow, not_allowed[_i].allow);
    const char *msg = test_error_body_msg(resp.body, resp.body_len);
    ck_assert_mentions(msg, not_allowed[_i].method);
    ck_assert_mentions(msg, not_allowed[_i].allow);
}
END_TEST

static const struct {
    const char *method, *path;
    livy_route_e route;
} routed[] = {
    {"GET", "/version", LIVY_ROUTE_VERSION},
    {"HEAD", "/version", LIVY_ROUTE_VERSION},
    {"GET", "/sessions", LIVY_ROUTE_SESSIONS},
    {"POST", "/sessions", LIVY_ROUTE_SESSIONS},
    {"GET", "/sessions/1", LIVY_ROUTE_SESSION},
    {"DELETE", "/sessions/etl", LIVY_ROUTE_SESSION},
    {"GET", "/sessions/1/state", LIVY_ROUTE_SESSION_STATE},
    {"GET", "/sessions/1/log", LIVY_ROUTE_SESSION_LOG},
    {"GET", "/sessions/1/logs", LIVY_ROUTE_SESSION_LOG},
    {"POST", "/sessions/1/connect", LIVY_ROUTE_SESSION_CONNECT},
    {"POST", "/sessions/1/stop", LIVY_ROUTE_SESSION_STOP},
    {"POST", "/sessions/1/completion", LIVY_ROUTE_SESSION_COMPLETION},
    {"GET", "/sessions/1/statements", LIVY_ROUTE_STATEMENTS},
    {"POST", "/sessions/1/statements", LIVY_ROUTE_STATEMENTS},
    {"GET", "/sessions/1/statements/0", LIVY_ROUTE_STATEMENT},
    {"POST", "/sessions/1/statements/0/cancel", LIVY_ROUTE_STATEMENT_CANCEL},
    {"GET", "/batches", LIVY_ROUTE_BATCHES},
    {"HEAD", "/batches", LIVY_ROUTE_BATCHES},
    {"POST", "/batches", LIVY_ROUTE_BATCHES},
    {"GET", "/batches/1", LIVY_ROUTE_BATCH},
    {"DELETE", "/batches/etl", LIVY_ROUTE_BATCH},
    {"GET", "/batches/1/state", LIVY_ROUTE_BATCH_STATE},
    {"GET", "/batches/1/log", LIVY_ROUTE_BATCH_LOG},
};

START_TEST(route_allowed_request_is_left_to_handle)
{
    livy_api_request_t req = request(routed[_i].method, routed[_i].path, NULL, NULL);
    livy_route_t r;
    livy_api_response_t resp;
    ck_assert_int_eq(livy_api_route(config(), &req, test_pool, &r, &resp), 0);
    ck_assert_int_eq(r.route, routed[_i].route);
    ck_assert_int_eq(resp.status, 0);
    ck_assert_ptr_null(resp.body);
    ck_assert_ptr_null(resp.allow);
}
END_TEST

/* Follows from the livy_json_msg bug: an undecodable path gives a 404 whose body is "{}". */
START_TEST(route_404_for_non_utf8_path_has_msg)
{
    livy_api_request_t req = request("GET", "/\xff\xfe", NULL, NULL);
    livy_route_t r;
    livy_api_response_t resp;
    ck_assert_int_eq(livy_api_route(config(), &req, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 404);
    test_error_body_msg(resp.body, resp.body_len);
}
END_TEST

/* ---- livy_api_error ---- */

START_TEST(error_sets_status_and_msg)
{
    livy_api_response_t resp = {0};
    livy_api_error(&resp, test_pool, 400, "Field 'code' is required.");
    ck_assert_int_eq(resp.status, 400);
    ck_assert_str_eq(resp.body, "{\"msg\":\"Field 'code' is required.\"}");
    ck_assert_uint_eq(resp.body_len, strlen(resp.body));
}
END_TEST

/* ---- livy_api_handle, up to the database ---- */

/* Routes and handles req with cfg on a connection without a database. */
static livy_api_response_t serve_req(const livy_api_config_t *cfg, livy_conn_t *conn,
                                     const livy_api_request_t *req)
{
    livy_route_t r;
    livy_api_response_t resp;
    if (!livy_api_route(cfg, req, test_pool, &r, &resp))
        livy_api_handle(cfg, req, &r, conn, test_pool, &resp);
    return resp;
}

static livy_api_response_t serve(livy_conn_t *conn, const char *method, const char *path,
                                 const char *query, const char *body)
{
    livy_api_request_t req = request(method, path, query, body);
    return serve_req(config(), conn, &req);
}

static const struct {
    const char *method, *path, *query, *body;
    int status;
    const char *mention;
} answered_without_db[] = {
    /* POST /sessions: the body is checked before anything is stored */
    {"POST", "/sessions", NULL, NULL, 400, "empty"},
    {"POST", "/sessions", NULL, "", 400, "empty"},
    {"POST", "/sessions", NULL, "{", 400, "JSON"},
    {"POST", "/sessions", NULL, "[]", 400, "object"},
    {"POST", "/sessions", NULL, "{\"kind\":\"java\"}", 400, "'java'"},
    {"POST", "/sessions", NULL, "{\"driverCores\":\"2\"}", 400, "'driverCores'"},
    {"POST", "/sessions", NULL, "{\"conf\":{\"spark.master\":\"yarn\"}}", 400, "'spark.master'"},
    {"POST", "/sessions", NULL, "{\"name\":\"42\"}", 400, "42"},
    {"POST", "/sessions", NULL, "{\"ttl\":\"soon\"}", 400, "'ttl'"},
    {"POST", "/sessions", NULL, "{\"bogus\":true}", 400, "'bogus'"},
    /* GET /sessions: the paging parameters are checked first */
    {"GET", "/sessions", "from=-1", NULL, 400, "'from'"},
    {"GET", "/sessions", "size=abc", NULL, 400, "'size'"},
    {"GET", "/sessions", "size=-1", NULL, 400, "'size'"},
    {"GET", "/sessions", "from=99999999999", NULL, 400, "'from'"},
    {"GET", "/sessions", "from=%zz", NULL, 400, "escape"},
    {"GET", "/sessions", "from=1%00", NULL, 400, "escape"},
    /* an all-digit id too large to exist is not looked up */
    {"GET", "/sessions/99999999999999999999", NULL, NULL, 404, "'99999999999999999999'"},
    {"DELETE", "/sessions/99999999999999999999", NULL, NULL, 404, "not found"},
    {"GET", "/sessions/99999999999999999999/statements/0", NULL, NULL, 404, "not found"},
    /* a name that is not UTF-8 cannot have been stored */
    {"GET", "/sessions/caf\xe9", NULL, NULL, 404, "UTF-8"},
    {"POST", "/sessions/\xff\xfe/stop", NULL, NULL, 404, "UTF-8"},
    /* query values must be UTF-8 before they reach PostgreSQL */
    {"GET", "/sessions", "from=%FF", NULL, 400, "UTF-8"},
    {"POST", "/sessions", "doAs=%C3", "{}", 400, "UTF-8"},
    {"POST", "/sessions", "doAs=%zz", "{}", 400, "escape"},
    /* POST /batches: the same, and where the files come from (no LivyBatchAllowedPaths here) */
    {"POST", "/batches", NULL, NULL, 400, "empty"},
    {"POST", "/batches", NULL, "{}", 400, "'file'"},
    {"POST", "/batches", NULL, "[]", 400, "object"},
    {"POST", "/batches", NULL, "{\"file\":\"hdfs:///a.jar\",\"kind\":\"spark\"}", 400, "'kind'"},
    {"POST", "/batches", NULL, "{\"file\":\"hdfs:///a.jar\",\"args\":[1]}", 400, "'args'"},
    {"POST", "/batches", NULL, "{\"file\":\"hdfs:///a.jar\",\"conf\":{\"spark.master\":\"x\"}}",
     400, "'spark.master'"},
    {"POST", "/batches", NULL, "{\"file\":\"/opt/jobs/etl.py\"}", 400, "LivyBatchAllowedPaths"},
    {"POST", "/batches", NULL, "{\"file\":\"ftp://h/etl.py\"}", 400, "'ftp'"},
    {"POST", "/batches", NULL, "{\"file\":\"hdfs:///a.jar\",\"name\":\"7\"}", 400, "Batch name"},
    {"POST", "/batches", "doAs=%C3", "{\"file\":\"hdfs:///a.jar\"}", 400, "UTF-8"},
    {"GET", "/batches", "from=-1", NULL, 400, "'from'"},
    {"GET", "/batches", "size=x", NULL, 400, "'size'"},
    {"GET", "/batches/99999999999999999999", NULL, NULL, 404, "Batch '99999999999999999999'"},
    {"DELETE", "/batches/99999999999999999999", NULL, NULL, 404, "not found"},
    {"GET", "/batches/caf\xe9/log", NULL, NULL, 404, "UTF-8"},
};

START_TEST(handle_answers_without_database)
{
    livy_conn_t conn = {0};
    livy_api_response_t resp = serve(&conn, answered_without_db[_i].method,
                                     answered_without_db[_i].path, answered_without_db[_i].query,
                                     answered_without_db[_i].body);
    ck_assert_int_eq(resp.status, answered_without_db[_i].status);
    ck_assert_int_eq(resp.conn_broken, 0);
    ck_assert_ptr_null(resp.location);
    ck_assert_msg(conn.prepared == 0, "a query was prepared");
    ck_assert_mentions(test_error_body_msg(resp.body, resp.body_len),
                       answered_without_db[_i].mention);
}
END_TEST

/* Valid requests reach the store; without a database they get a 503 and the connection is
 * marked for discarding. */
static const struct {
    const char *method, *path, *query, *body;
} needs_db[] = {
    {"GET", "/version", NULL, NULL},
    {"GET", "/sessions", NULL, NULL},
    {"GET", "/sessions", "from=0&size=10", NULL},
    {"POST", "/sessions", NULL, "{}"},
    {"POST", "/sessions", NULL, "{\"kind\":\"pyspark\",\"name\":\"etl\",\"conf\":{\"a\":1}}"},
    {"GET", "/sessions/1", NULL, NULL},
    {"GET", "/sessions/etl/state", NULL, NULL},
    {"POST", "/sessions/1/statements", NULL, "{\"code\":\"1\"}"},
    {"GET", "/batches", NULL, NULL},
    {"POST", "/batches", NULL, "{\"file\":\"hdfs:///apps/etl.jar\",\"args\":[\"x\"]}"},
    {"GET", "/batches/1", NULL, NULL},
    {"GET", "/batches/etl/state", NULL, NULL},
    {"GET", "/batches/1/log", NULL, NULL},
    {"DELETE", "/batches/1", NULL, NULL},
};

START_TEST(handle_without_database_is_503)
{
    livy_conn_t conn = {0};
    livy_api_response_t resp = serve(&conn, needs_db[_i].method, needs_db[_i].path,
                                     needs_db[_i].query, needs_db[_i].body);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_int_eq(resp.conn_broken, 1);
    ck_assert_ptr_nonnull(resp.log_detail);
    ck_assert_ptr_null(resp.location);
    test_error_body_msg(resp.body, resp.body_len);
}
END_TEST

START_TEST(check_schema_once_per_connection)
{
    livy_conn_t conn = {0};
    livy_api_response_t resp = {0};
    conn.schema_ok = 1;
    ck_assert_int_eq(livy_api_check_schema(&conn, test_pool, &resp), 0);
    ck_assert_int_eq(resp.status, 0);

    conn.schema_ok = 0; /* no database: 503, and the connection is to be discarded */
    ck_assert_int_eq(livy_api_check_schema(&conn, test_pool, &resp), 1);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_int_eq(resp.conn_broken, 1);
    ck_assert_int_eq(conn.schema_ok, 0);
    test_error_body_msg(resp.body, resp.body_len);
}
END_TEST

/* ---- security in livy_api_route: CSRF, the user's name, admission ---- */

static const struct {
    const char *method, *path;
    int has_requested_by;
    int status; /* 0: routed on */
} csrf[] = {
    {"POST", "/sessions", 0, 400},
    {"POST", "/sessions", 1, 0},
    {"DELETE", "/sessions/1", 0, 400},
    {"DELETE", "/sessions/1", 1, 0},
    {"POST", "/sessions/1/statements/0/cancel", 0, 400},
    {"POST", "/sessions/1/stop", 0, 400},
    {"GET", "/sessions", 0, 0},
    {"HEAD", "/sessions/1", 0, 0},
    {"GET", "/sessions/1/log", 0, 0},
    {"POST", "/batches", 0, 400},
    {"POST", "/batches", 1, 0},
    {"DELETE", "/batches/1", 0, 400},
    {"DELETE", "/batches/1", 1, 0},
    {"GET", "/batches/1/log", 0, 0},
    {"PUT", "/sessions", 0, 405}, /* the method is refused before the header is looked for */
    {"POST", "/nope", 0, 404},
};

START_TEST(csrf_writes_need_requested_by)
{
    livy_api_config_t *cfg = config();
    cfg->security.csrf = 1;
    livy_api_request_t req = request(csrf[_i].method, csrf[_i].path, NULL, NULL);
    req.has_requested_by = csrf[_i].has_requested_by;
    livy_route_t r;
    livy_api_response_t resp;
    int answered = livy_api_route(cfg, &req, test_pool, &r, &resp);
    ck_assert_int_eq(answered, csrf[_i].status != 0);
    ck_assert_int_eq(resp.status, csrf[_i].status);
    if (csrf[_i].status == 400)
        ck_assert_mentions(test_error_body_msg(resp.body, resp.body_len), "X-Requested-By");
}
END_TEST

START_TEST(csrf_off_needs_no_header)
{
    livy_api_request_t req = request("POST", "/sessions", NULL, NULL);
    livy_route_t r;
    livy_api_response_t resp;
    ck_assert_int_eq(livy_api_route(config(), &req, test_pool, &r, &resp), 0);
}
END_TEST

START_TEST(user_name_must_be_utf8)
{
    livy_api_request_t req = request("GET", "/sessions", NULL, NULL);
    req.user = "b\xf6se";
    livy_route_t r;
    livy_api_response_t resp;
    ck_assert_int_eq(livy_api_route(config(), &req, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 400);
    ck_assert_mentions(test_error_body_msg(resp.body, resp.body_len), "UTF-8");
    req.user = "b\xc3\xb6se";
    ck_assert_int_eq(livy_api_route(config(), &req, test_pool, &r, &resp), 0);
}
END_TEST

static const struct {
    const char *user;
    int admitted;
} admission[] = {
    {"alice", 1},   /* allowed */
    {"victor", 1},  /* view */
    {"mona", 1},    /* modify */
    {"root", 1},    /* superuser */
    {"mallory", 0},
    {"Alice", 0},   /* names are compared exactly */
    {"", 0},        /* anonymous */
    {NULL, 0},
};

START_TEST(access_control_admits_listed_users)
{
    livy_api_config_t *cfg = config();
    cfg->security.access_control = 1;
    cfg->security.allowed_users = users("alice", NULL);
    cfg->security.view_users = users("victor", NULL);
    cfg->security.modify_users = users("mona", NULL);
    cfg->security.superusers = users("root", NULL);
    livy_api_request_t req = request("GET", "/sessions", NULL, NULL);
    req.user = admission[_i].user;
    livy_route_t r;
    livy_api_response_t resp;
    int answered = livy_api_route(cfg, &req, test_pool, &r, &resp);
    ck_assert_int_eq(answered, !admission[_i].admitted);
    if (!admission[_i].admitted) {
        ck_assert_int_eq(resp.status, 403);
        const char *msg = test_error_body_msg(resp.body, resp.body_len);
        if (admission[_i].user && *admission[_i].user)
            ck_assert_mentions(msg, admission[_i].user);
        else
            ck_assert_mentions(msg, "nonymous");
    }
}
END_TEST

START_TEST(access_control_star_admits_every_authenticated_user)
{
    livy_api_config_t *cfg = config();
    cfg->security.access_control = 1;
    cfg->security.allowed_users = users("*", NULL);
    livy_api_request_t req = request("GET", "/version", NULL, NULL);
    livy_route_t r;
    livy_api_response_t resp;
    req.user = "anyone";
    ck_assert_int_eq(livy_api_route(cfg, &req, test_pool, &r, &resp), 0);
    req.user = NULL;
    ck_assert_int_eq(livy_api_route(cfg, &req, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 403);
}
END_TEST

START_TEST(access_control_off_admits_everyone)
{
    livy_api_config_t *cfg = config();
    cfg->security.allowed_users = users("alice", NULL); /* lists alone change nothing */
    livy_api_request_t req = request("GET", "/version", NULL, NULL);
    livy_route_t r;
    livy_api_response_t resp;
    req.user = "mallory";
    ck_assert_int_eq(livy_api_route(cfg, &req, test_pool, &r, &resp), 0);
    req.user = NULL;
    ck_assert_int_eq(livy_api_route(cfg, &req, test_pool, &r, &resp), 0);
}
END_TEST

/* ---- impersonation on POST /sessions, decided before anything is stored ---- */

static const struct {
    const char *user, *query, *body;
    int status;          /* 403 answered without the database; 503: it went on to the store */
    const char *mention; /* for 403 */
} impersonation[] = {
    {"alice", NULL, "{\"proxyUser\":\"bob\"}", 403, "'bob'"},
    {"alice", "doAs=carol", "{}", 403, "'carol'"},
    {"alice", "doAs=carol", "{\"proxyUser\":\"alice\"}", 403, "'carol'"}, /* doAs comes first */
    {"alice", "doAs=alice", "{\"proxyUser\":\"bob\"}", 503, NULL},
    {"alice", NULL, "{\"proxyUser\":\"alice\"}", 503, NULL},
    {"alice", NULL, "{}", 503, NULL},
    {"root", "doAs=bob", "{}", 503, NULL},   /* a superuser may be anyone */
    {NULL, "doAs=bob", "{}", 503, NULL},     /* anonymous: allowed, as in Livy */
};

/* Case _i of the table on POST /sessions, then on POST /batches (a file added to the body). */
START_TEST(impersonation_checked_before_store)
{
    int i = _i % N_ELEMS(impersonation), batch = _i >= N_ELEMS(impersonation);
    livy_api_config_t *cfg = config();
    cfg->security.impersonation = 1;
    cfg->security.superusers = users("root", NULL);
    livy_conn_t conn = {0};
    const char *body = impersonation[i].body;
    if (batch)
        body = !strcmp(body, "{}") ? "{\"file\":\"hdfs:///a.jar\"}"
                                   : apr_pstrcat(test_pool, "{\"file\":\"hdfs:///a.jar\",",
                                                 body + 1, NULL);
    livy_api_request_t req = request("POST", batch ? "/batches" : "/sessions",
                                     impersonation[i].query, body);
    req.user = impersonation[i].user;
    livy_api_response_t resp = serve_req(cfg, &conn, &req);
    ck_assert_int_eq(resp.status, impersonation[i].status);
    if (impersonation[i].status == 403) {
        ck_assert_msg(conn.prepared == 0, "a query was prepared");
        ck_assert_mentions(test_error_body_msg(resp.body, resp.body_len),
                           impersonation[i].mention);
    }
}
END_TEST

START_TEST(impersonation_off_ignores_proxy_user)
{
    livy_conn_t conn = {0};
    livy_api_request_t req = request("POST", "/sessions", "doAs=bob", "{\"proxyUser\":\"carol\"}");
    req.user = "alice";
    livy_api_response_t resp = serve_req(config(), &conn, &req);
    ck_assert_int_eq(resp.status, 503); /* on to the store, not refused */
}
END_TEST

Suite *api_suite(void)
{
    Suite *s = suite_create("livy_api");
    TCase *tc = test_tcase_with_pool("route");
    tcase_add_loop_test(tc, route_unknown_path_is_404_with_msg, 0, N_ELEMS(not_found));
    tcase_add_loop_test(tc, route_wrong_method_is_405_with_allow, 0, N_ELEMS(not_allowed));
    tcase_add_loop_test(tc, route_allowed_request_is_left_to_handle, 0, N_ELEMS(routed));
    tcase_add_test(tc, route_404_for_non_utf8_path_has_msg);
    tcase_add_test(tc, error_sets_status_and_msg);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("handle");
    tcase_add_loop_test(tc, handle_answers_without_database, 0, N_ELEMS(answered_without_db));
    tcase_add_loop_test(tc, handle_without_database_is_503, 0, N_ELEMS(needs_db));
    tcase_add_test(tc, check_schema_once_per_connection);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("security");
    tcase_add_loop_test(tc, csrf_writes_need_requested_by, 0, N_ELEMS(csrf));
    tcase_add_test(tc, csrf_off_needs_no_header);
    tcase_add_test(tc, user_name_must_be_utf8);
    tcase_add_loop_test(tc, access_control_admits_listed_users, 0, N_ELEMS(admission));
    tcase_add_test(tc, access_control_star_admits_every_authenticated_user);
    tcase_add_test(tc, access_control_off_admits_everyone);
    tcase_add_loop_test(tc, impersonation_checked_before_store, 0, 2 * N_ELEMS(impersonation));
    tcase_add_test(tc, impersonation_off_ignores_proxy_user);
    suite_add_tcase(s, tc);
    return s;
}
