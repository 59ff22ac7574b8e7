/* livy_webui: the web UI's routes (a fixed set of files: nothing else under <mount>/ui/ reaches
 * the disk), what the engine answers for them before the database, and the supervisors and
 * session-times views from rows built by hand (PQmakeEmptyPGresult/PQsetvalue). */
#include "test_engine.h"
#include "livy_api.h"
#include "livy_json.h"
#include "livy_webui.h"

#include <apr_strings.h>

static livy_route_t route_of(const char *path)
{
    livy_route_t r;
    livy_route_parse(path, test_pool, &r);
    return r;
}

START_TEST(ui_directory_is_the_sessions_page)
{
    const char *paths[] = {"/ui", "/ui/", "//ui//"};
    for (int i = 0; i < N_ELEMS(paths); i++) {
        livy_route_t r = route_of(paths[i]);
        ck_assert_int_eq(r.route, LIVY_ROUTE_WEBUI_FILE);
        ck_assert_str_eq(r.webui_file, "index.html");
        ck_assert_uint_eq(r.allowed, LIVY_M_GET);
    }
}
END_TEST

START_TEST(every_page_and_asset_is_a_file_route_with_its_type)
{
    const struct { const char *path, *file, *type; } files[] = {
        {"/ui/index.html", "index.html", "text/html; charset=UTF-8"},
        {"/ui/session.html", "session.html", "text/html; charset=UTF-8"},
        {"/ui/supervisors.html", "supervisors.html", "text/html; charset=UTF-8"},
        {"/ui/livy-ui.css", "livy-ui.css", "text/css; charset=UTF-8"},
        {"/ui/session.js", "session.js", "text/javascript; charset=UTF-8"},
    };
    for (int i = 0; i < N_ELEMS(files); i++) {
        livy_route_t r = route_of(files[i].path);
        ck_assert_int_eq(r.route, LIVY_ROUTE_WEBUI_FILE);
        ck_assert_str_eq(r.webui_file, files[i].file);
        ck_assert_str_eq(livy_webui_file_type(r.webui_file), files[i].type);
    }
}
END_TEST

/* Traversal, other files, case and suffix games: no route at all, so a plain 404. */
static const char *const not_ui_files[] = {
    "/ui/../etc/passwd", "/ui/..", "/ui/.", "/ui/.htaccess", "/ui/INDEX.HTML", "/ui/index.html~",
    "/ui/index.html/x", "/ui/sub/index.html", "/ui/api", "/ui/api/", "/ui/api/nope",
    "/ui/api/supervisors/1", "/ui/%2e%2e", "/ui/index.html%00", "/ui/Makefile.am",
    "/ui/index.html/", "/ui/livy-ui.css//", "/ui/api/supervisors/",
};

START_TEST(names_outside_the_fixed_set_are_no_route)
{
    livy_route_t r = route_of(not_ui_files[_i]);
    ck_assert_msg(r.route == LIVY_ROUTE_NONE, "%s routed to %d", not_ui_files[_i], r.route);
    livy_api_request_t req = {.method = "GET", .path = not_ui_files[_i]};
    livy_api_config_t cfg = {.base_path = ""};
    livy_api_response_t resp;
    ck_assert_int_eq(livy_api_route(&cfg, &req, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 404);
    test_error_body_msg(resp.body, resp.body_len);
}
END_TEST

START_TEST(file_type_refuses_anything_but_a_listed_name)
{
    ck_assert_ptr_null(livy_webui_file_type(NULL));
    ck_assert_ptr_null(livy_webui_file_type(""));
    ck_assert_ptr_null(livy_webui_file_type("../index.html"));
    ck_assert_ptr_null(livy_webui_file_type("index.html/"));
    ck_assert_ptr_nonnull(livy_webui_file_type("batches.js"));
}
END_TEST

START_TEST(the_json_endpoints_are_get_only_and_need_admission)
{
    livy_route_t r = route_of("/ui/api/supervisors");
    ck_assert_int_eq(r.route, LIVY_ROUTE_WEBUI_SUPERVISORS);
    ck_assert_int_eq(route_of("/ui/api/sessions").route, LIVY_ROUTE_WEBUI_SESSION_TIMES);

    livy_api_config_t cfg = {.base_path = ""};
    livy_api_response_t resp;
    livy_api_request_t post = {.method = "POST", .path = "/ui/api/supervisors"};
    ck_assert_int_eq(livy_api_route(&cfg, &post, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 405);
    ck_assert_str_eq(resp.allow, "GET, HEAD");
    livy_api_request_t del = {.method = "DELETE", .path = "/ui/index.html"};
    ck_assert_int_eq(livy_api_route(&cfg, &del, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 405);

    /* access control on, eve in no list: the supervisors are refused like GET /sessions */
    apr_array_header_t *allowed = apr_array_make(test_pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(allowed, const char *) = "alice";
    cfg.security.access_control = 1;
    cfg.security.allowed_users = allowed;
    livy_api_request_t get = {.method = "GET", .path = "/ui/api/supervisors", .user = "eve"};
    ck_assert_int_eq(livy_api_route(&cfg, &get, test_pool, &r, &resp), 1);
    ck_assert_int_eq(resp.status, 403);
    get.user = "alice";
    ck_assert_int_eq(livy_api_route(&cfg, &get, test_pool, &r, &resp), 0);
    ck_assert_int_eq(r.route, LIVY_ROUTE_WEBUI_SUPERVISORS);
}
END_TEST

static apr_status_t clear_result(void *res)
{
    PQclear(res);
    return APR_SUCCESS;
}

static PGresult *rows(int ncols, int nrows, const char *const *values)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    apr_pool_cleanup_register(test_pool, res, clear_result, apr_pool_cleanup_null);
    PGresAttDesc *attrs = apr_pcalloc(test_pool, ncols * sizeof *attrs);
    for (int i = 0; i < ncols; i++) {
        attrs[i].name = apr_psprintf(test_pool, "c%d", i);
        attrs[i].typid = 25;
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    ck_assert_int_eq(PQsetResultAttrs(res, ncols, attrs), 1);
    for (int row = 0; row < nrows; row++)
        for (int i = 0; i < ncols; i++) {
            const char *v = values[row * ncols + i];
            char *copy = v ? apr_pstrdup(test_pool, v) : NULL;
            ck_assert_int_eq(PQsetvalue(res, row, i, copy, copy ? (int)strlen(copy) : -1), 1);
        }
    return res;
}

static const char *dump(json_t *j)
{
    return livy_json_dump(test_pool, livy_json_own(test_pool, j), NULL);
}

START_TEST(supervisors_view_has_every_field_in_order)
{
    const char *values[2 * SV__COUNT] = {
        "7", "spark-1", "4242", "4", "1700000000000", "1700000100000", "1500", NULL, "2", "1",
        "1700000101500",
        "3", "spark-2", "99", "2", "1699990000000", "1699990500000", "612345", "1699990600000",
        "0", "0", "1700000101500",
    };
    ck_assert_str_eq(dump(livy_webui_supervisors_view(rows(SV__COUNT, 2, values))),
        "{\"now\":1700000101500,\"supervisors\":["
        "{\"id\":7,\"host\":\"spark-1\",\"pid\":4242,\"capacity\":4,\"sessions\":2,\"batches\":1,"
        "\"started\":1700000000000,\"heartbeat\":1700000100000,\"heartbeatAgeMs\":1500,"
        "\"stopped\":null},"
        "{\"id\":3,\"host\":\"spark-2\",\"pid\":99,\"capacity\":2,\"sessions\":0,\"batches\":0,"
        "\"started\":1699990000000,\"heartbeat\":1699990500000,\"heartbeatAgeMs\":612345,"
        "\"stopped\":1699990600000}]}");
}
END_TEST

START_TEST(supervisors_view_of_none_is_an_empty_list_with_a_clock)
{
    json_t *j = livy_json_own(test_pool, livy_webui_supervisors_view(rows(SV__COUNT, 0, NULL)));
    ck_assert_int_eq(json_array_size(json_object_get(j, "supervisors")), 0);
    ck_assert(json_integer_value(json_object_get(j, "now")) > 1700000000000LL);
}
END_TEST

START_TEST(session_times_view_gives_ages_and_activity)
{
    const char *values[] = {"4", "1700000000000", "1700000050000", NULL, "1700000060000",
                            "5", "1700000001000", "1700000002000", "1700000003000", "1700000060000"};
    ck_assert_str_eq(dump(livy_webui_session_times_view(rows(5, 2, values), 25)),
        "{\"from\":25,\"now\":1700000060000,\"sessions\":["
        "{\"id\":4,\"created\":1700000000000,\"lastActivity\":1700000050000,\"ended\":null},"
        "{\"id\":5,\"created\":1700000001000,\"lastActivity\":1700000002000,"
        "\"ended\":1700000003000}]}");
}
END_TEST

Suite *webui_suite(void)
{
    Suite *s = suite_create("webui");
    TCase *tc = test_tcase_with_pool("routes and views");
    tcase_add_test(tc, ui_directory_is_the_sessions_page);
    tcase_add_test(tc, every_page_and_asset_is_a_file_route_with_its_type);
    tcase_add_loop_test(tc, names_outside_the_fixed_set_are_no_route, 0, N_ELEMS(not_ui_files));
    tcase_add_test(tc, file_type_refuses_anything_but_a_listed_name);
    tcase_add_test(tc, the_json_endpoints_are_get_only_and_need_admission);
    tcase_add_test(tc, supervisors_view_has_every_field_in_order);
    tcase_add_test(tc, supervisors_view_of_none_is_an_empty_list_with_a_clock);
    tcase_add_test(tc, session_times_view_gives_ages_and_activity);
    suite_add_tcase(s, tc);
    return s;
}
