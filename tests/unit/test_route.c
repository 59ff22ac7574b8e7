/* livy_route: every path of the Livy contract onto its route, ids vs names, the methods each
 * route answers, and the Allow header a 405 carries. */
#include "test_engine.h"
#include "livy_route.h"

#include <apr_strings.h>

#define GET LIVY_M_GET
#define POST LIVY_M_POST
#define DELETE LIVY_M_DELETE

static const struct route_case {
    const char *path;
    livy_route_e route;
    const char *session_ref; /* NULL: not expected to be set */
    int64_t session_id;
    const char *statement_ref;
    int64_t statement_id;
    unsigned allowed;
} known_routes[] = {
    {"/version", LIVY_ROUTE_VERSION, NULL, -1, NULL, -1, GET},
    {"/sessions", LIVY_ROUTE_SESSIONS, NULL, -1, NULL, -1, GET | POST},
    {"/sessions/0", LIVY_ROUTE_SESSION, "0", 0, NULL, -1, GET | DELETE},
    {"/sessions/42", LIVY_ROUTE_SESSION, "42", 42, NULL, -1, GET | DELETE},
    {"/sessions/etl-nightly", LIVY_ROUTE_SESSION, "etl-nightly", -1, NULL, -1, GET | DELETE},
    {"/sessions/1/state", LIVY_ROUTE_SESSION_STATE, "1", 1, NULL, -1, GET},
    {"/sessions/1/log", LIVY_ROUTE_SESSION_LOG, "1", 1, NULL, -1, GET},
    {"/sessions/1/logs", LIVY_ROUTE_SESSION_LOG, "1", 1, NULL, -1, GET},
    {"/sessions/1/connect", LIVY_ROUTE_SESSION_CONNECT, "1", 1, NULL, -1, POST},
    {"/sessions/1/stop", LIVY_ROUTE_SESSION_STOP, "1", 1, NULL, -1, POST},
    {"/sessions/1/completion", LIVY_ROUTE_SESSION_COMPLETION, "1", 1, NULL, -1, POST},
    {"/sessions/1/statements", LIVY_ROUTE_STATEMENTS, "1", 1, NULL, -1, GET | POST},
    {"/sessions/1/statements/0", LIVY_ROUTE_STATEMENT, "1", 1, "0", 0, GET},
    {"/sessions/7/statements/12", LIVY_ROUTE_STATEMENT, "7", 7, "12", 12, GET},
    {"/sessions/1/statements/0/cancel", LIVY_ROUTE_STATEMENT_CANCEL, "1", 1, "0", 0, POST},
    /* names where ids go */
    {"/sessions/etl/state", LIVY_ROUTE_SESSION_STATE, "etl", -1, NULL, -1, GET},
    {"/sessions/etl/statements/3/cancel", LIVY_ROUTE_STATEMENT_CANCEL, "etl", -1, "3", 3, POST},
    {"/sessions/1/statements/last", LIVY_ROUTE_STATEMENT, "1", 1, "last", -1, GET},
    /* all digits is an id, leading zeros included */
    {"/sessions/007", LIVY_ROUTE_SESSION, "007", 7, NULL, -1, GET | DELETE},
    {"/sessions/9223372036854775807", LIVY_ROUTE_SESSION, "9223372036854775807", INT64_MAX,
     NULL, -1, GET | DELETE},
    /* too big for an id: -1, the reference kept as given */
    {"/sessions/9223372036854775808", LIVY_ROUTE_SESSION, "9223372036854775808", -1, NULL, -1,
     GET | DELETE},
    {"/sessions/99999999999999999999999999", LIVY_ROUTE_SESSION, "99999999999999999999999999",
     -1, NULL, -1, GET | DELETE},
    {"/sessions/1/statements/18446744073709551616", LIVY_ROUTE_STATEMENT, "1", 1,
     "18446744073709551616", -1, GET},
    {"/sessions/-1", LIVY_ROUTE_SESSION, "-1", -1, NULL, -1, GET | DELETE},
    {"/sessions/+1", LIVY_ROUTE_SESSION, "+1", -1, NULL, -1, GET | DELETE},
    {"/sessions/1e3", LIVY_ROUTE_SESSION, "1e3", -1, NULL, -1, GET | DELETE},
    /* the Spark UI: any depth below ui */
    {"/sessions/1/ui", LIVY_ROUTE_SESSION_UI, "1", 1, NULL, -1, GET | POST},
    {"/sessions/1/ui/", LIVY_ROUTE_SESSION_UI, "1", 1, NULL, -1, GET | POST},
    {"/sessions/3/ui/stages/stage/kill/", LIVY_ROUTE_SESSION_UI, "3", 3, NULL, -1, GET | POST},
    {"/sessions/etl/ui/api/v1/applications/a/jobs/1/x/y", LIVY_ROUTE_SESSION_UI, "etl", -1, NULL,
     -1, GET | POST},
    {"//sessions//4//ui//jobs", LIVY_ROUTE_SESSION_UI, "4", 4, NULL, -1, GET | POST},
    {"/sessions/ui", LIVY_ROUTE_SESSION, "ui", -1, NULL, -1, GET | DELETE},
    /* batches: ids or names, state and log */
    {"/batches", LIVY_ROUTE_BATCHES, NULL, -1, NULL, -1, GET | POST},
    {"/batches/", LIVY_ROUTE_BATCHES, NULL, -1, NULL, -1, GET | POST},
    {"/batches/0", LIVY_ROUTE_BATCH, "0", 0, NULL, -1, GET | DELETE},
    {"/batches/nightly-etl", LIVY_ROUTE_BATCH, "nightly-etl", -1, NULL, -1, GET | DELETE},
    {"/batches/3/state", LIVY_ROUTE_BATCH_STATE, "3", 3, NULL, -1, GET},
    {"/batches/etl/state", LIVY_ROUTE_BATCH_STATE, "etl", -1, NULL, -1, GET},
    {"/batches/3/log", LIVY_ROUTE_BATCH_LOG, "3", 3, NULL, -1, GET},
    {"/batches/3/logs", LIVY_ROUTE_BATCH_LOG, "3", 3, NULL, -1, GET},
    {"//batches//9223372036854775808//log//", LIVY_ROUTE_BATCH_LOG, "9223372036854775808", -1,
     NULL, -1, GET},
    /* trailing, repeated and missing slashes */
    {"/version/", LIVY_ROUTE_VERSION, NULL, -1, NULL, -1, GET},
    {"version", LIVY_ROUTE_VERSION, NULL, -1, NULL, -1, GET},
    {"//version//", LIVY_ROUTE_VERSION, NULL, -1, NULL, -1, GET},
    {"/sessions/", LIVY_ROUTE_SESSIONS, NULL, -1, NULL, -1, GET | POST},
    {"/sessions/3/", LIVY_ROUTE_SESSION, "3", 3, NULL, -1, GET | DELETE},
    {"/sessions/1/statements/", LIVY_ROUTE_STATEMENTS, "1", 1, NULL, -1, GET | POST},
    {"///sessions///5///statements///6///cancel///", LIVY_ROUTE_STATEMENT_CANCEL, "5", 5, "6", 6,
     POST},
};

START_TEST(parse_known_route)
{
    const struct route_case *c = &known_routes[_i];
    livy_route_t r;
    livy_route_parse(c->path, test_pool, &r);
    ck_assert_msg(r.route == c->route, "%s: route %d, expected %d", c->path, r.route, c->route);
    ck_assert_msg(r.allowed == c->allowed, "%s: allowed %u, expected %u", c->path, r.allowed,
                  c->allowed);
    if (c->session_ref)
        ck_assert_str_eq(r.session_ref, c->session_ref);
    else
        ck_assert_ptr_null(r.session_ref);
    ck_assert_msg(r.session_id == c->session_id, "%s: session_id %lld, expected %lld", c->path,
                  (long long)r.session_id, (long long)c->session_id);
    if (c->statement_ref)
        ck_assert_str_eq(r.statement_ref, c->statement_ref);
    else
        ck_assert_ptr_null(r.statement_ref);
    ck_assert_msg(r.statement_id == c->statement_id, "%s: statement_id %lld, expected %lld",
                  c->path, (long long)r.statement_id, (long long)c->statement_id);
}
END_TEST

static const char *const unknown_paths[] = {
    "",
    "/",
    "//",
    "///",
    "/versions",
    "/Version",
    "/version/1",
    "/version/extra/segments",
    "/session",
    "/SESSIONS",
    "/sessions2",
    "/batch",
    "/Batches",
    "/batches/1/State",
    "/batches/1/statements",
    "/batches/1/statements/0",
    "/batches/1/stop",
    "/batches/1/connect",
    "/batches/1/ui",
    "/batches/1/ui/jobs",
    "/batches/1/state/x",
    "/batches/1/log/2",
    "/batches/1/2/3/4",
    "/sessions/1/unknown",
    "/sessions/1/State",
    "/sessions/1/statement",
    "/sessions/1/state/extra",
    "/sessions/1/log/2",
    "/sessions/1/stop/now",
    "/sessions/1/statements/2/uncancel",
    "/sessions/1/statements/2/cancel/again",
    "/sessions/1/statements/2/cancel/a/b/c",
    "/sessions/1/logs/statements/2",
    "/a/b/c/d/e/f/g/h",
    "/sessions/1/2/3/4/5/6",
    "/ sessions",
    "/sessions\t",
};

START_TEST(parse_unknown_path_is_none)
{
    livy_route_t r;
    livy_route_parse(unknown_paths[_i], test_pool, &r);
    ck_assert_msg(r.route == LIVY_ROUTE_NONE, "'%s' routed to %d", unknown_paths[_i], r.route);
    ck_assert_uint_eq(r.allowed, 0);
}
END_TEST

START_TEST(parse_null_path_is_none)
{
    livy_route_t r;
    livy_route_parse(NULL, test_pool, &r);
    ck_assert_int_eq(r.route, LIVY_ROUTE_NONE);
    ck_assert_int_eq(r.session_id, -1);
    ck_assert_int_eq(r.statement_id, -1);
}
END_TEST

START_TEST(parse_resets_previous_contents)
{
    livy_route_t r;
    livy_route_parse("/sessions/1/statements/2/cancel", test_pool, &r);
    livy_route_parse("/nope", test_pool, &r);
    ck_assert_int_eq(r.route, LIVY_ROUTE_NONE);
    ck_assert_ptr_null(r.statement_ref);
    ck_assert_int_eq(r.statement_id, -1);
    ck_assert_uint_eq(r.allowed, 0);
}
END_TEST

START_TEST(parse_copies_segments_into_the_pool)
{
    char *path = apr_pstrdup(test_pool, "/sessions/etl/statements/4");
    livy_route_t r;
    livy_route_parse(path, test_pool, &r);
    memset(path, 'x', strlen(path)); /* the request's buffer may be reused */
    ck_assert_str_eq(r.session_ref, "etl");
    ck_assert_str_eq(r.statement_ref, "4");
}
END_TEST

START_TEST(parse_many_segments_and_slashes_without_trouble)
{
    /* 10000 segments and a run of 10000 slashes: not a route, and no deep work per segment */
    char *many = apr_palloc(test_pool, 20001);
    for (int i = 0; i < 10000; i++) {
        many[2 * i] = '/';
        many[2 * i + 1] = 'a';
    }
    many[20000] = '\0';
    livy_route_t r;
    livy_route_parse(many, test_pool, &r);
    ck_assert_int_eq(r.route, LIVY_ROUTE_NONE);

    char *slashes = apr_palloc(test_pool, 10000 + sizeof "version");
    memset(slashes, '/', 10000);
    strcpy(slashes + 10000, "version");
    livy_route_parse(slashes, test_pool, &r);
    ck_assert_int_eq(r.route, LIVY_ROUTE_VERSION);
}
END_TEST

START_TEST(parse_name_with_unicode_and_quotes)
{
    livy_route_t r;
    livy_route_parse("/sessions/caf\xc3\xa9 \"q\"/log", test_pool, &r);
    ck_assert_int_eq(r.route, LIVY_ROUTE_SESSION_LOG);
    ck_assert_str_eq(r.session_ref, "caf\xc3\xa9 \"q\"");
    ck_assert_int_eq(r.session_id, -1);
}
END_TEST

/* ---- livy_parse_id ---- */

static const struct {
    const char *text;
    int64_t id;
} ids[] = {
    {"0", 0},
    {"1", 1},
    {"42", 42},
    {"007", 7},
    {"2147483648", 2147483648LL},
    {"9223372036854775807", INT64_MAX},
    {"9223372036854775808", -1},
    {"9223372036854775810", -1},
    {"18446744073709551616", -1},
    {"000000000000000000000000000001", 1},
    {"", -1},
    {"-1", -1},
    {"+1", -1},
    {" 1", -1},
    {"1 ", -1},
    {"1a", -1},
    {"a1", -1},
    {"0x10", -1},
    {"1.0", -1},
    {"\xd9\xa1", -1}, /* ARABIC-INDIC DIGIT ONE */
};

START_TEST(parse_id_table)
{
    int64_t got = livy_parse_id(ids[_i].text);
    ck_assert_msg(got == ids[_i].id, "livy_parse_id(\"%s\") = %lld, expected %lld", ids[_i].text,
                  (long long)got, (long long)ids[_i].id);
}
END_TEST

START_TEST(parse_id_null_is_minus_one)
{
    ck_assert_int_eq(livy_parse_id(NULL), -1);
}
END_TEST

/* ---- methods ---- */

static const struct {
    const char *name;
    livy_method_e method;
} methods[] = {
    {"GET", LIVY_M_GET},       {"HEAD", LIVY_M_GET},       {"POST", LIVY_M_POST},
    {"DELETE", LIVY_M_DELETE}, {"PUT", LIVY_M_OTHER},      {"PATCH", LIVY_M_OTHER},
    {"OPTIONS", LIVY_M_OTHER}, {"TRACE", LIVY_M_OTHER},    {"CONNECT", LIVY_M_OTHER},
    {"get", LIVY_M_OTHER},     {"Post", LIVY_M_OTHER},     {"", LIVY_M_OTHER},
    {"GETX", LIVY_M_OTHER},    {"GE", LIVY_M_OTHER},
};

START_TEST(method_from_name_table)
{
    ck_assert_msg(livy_method_from_name(methods[_i].name) == methods[_i].method,
                  "livy_method_from_name(\"%s\") = %d, expected %d", methods[_i].name,
                  livy_method_from_name(methods[_i].name), methods[_i].method);
}
END_TEST

/* ---- Allow header ---- */

START_TEST(allow_header_per_method_set)
{
    ck_assert_str_eq(livy_route_allow_header(GET), "GET, HEAD");
    ck_assert_str_eq(livy_route_allow_header(POST), "POST");
    ck_assert_str_eq(livy_route_allow_header(GET | POST), "GET, HEAD, POST");
    ck_assert_str_eq(livy_route_allow_header(GET | DELETE), "GET, HEAD, DELETE");
}
END_TEST

/* For every route, a method is listed in Allow exactly when the route answers it. */
START_TEST(allow_header_matches_allowed_methods)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "DELETE"};
    const struct route_case *c = &known_routes[_i];
    const char *allow = livy_route_allow_header(c->allowed);
    char *padded = apr_pstrcat(test_pool, ", ", allow, ",", NULL);
    for (int m = 0; m < N_ELEMS(names); m++) {
        int listed = strstr(padded, apr_pstrcat(test_pool, " ", names[m], ",", NULL)) != NULL;
        int answered = (livy_method_from_name(names[m]) & c->allowed) != 0;
        ck_assert_msg(listed == answered, "%s: Allow \"%s\" %s %s", c->path, allow,
                      listed ? "lists" : "omits", names[m]);
    }
}
END_TEST

static const struct {
    const char *path, *ui_path;
} ui_paths[] = {
    {"/sessions/1/ui", ""},
    {"/sessions/1/ui/", "/"},
    {"/sessions/1/ui/jobs/job/?id=1", "/jobs/job/?id=1"},
    {"/sessions/1//ui//a//b", "//a//b"},
};

START_TEST(parse_ui_keeps_the_path_below_ui)
{
    livy_route_t r;
    livy_route_parse(ui_paths[_i].path, test_pool, &r);
    ck_assert_int_eq(r.route, LIVY_ROUTE_SESSION_UI);
    ck_assert_str_eq(r.ui_path, ui_paths[_i].ui_path);
}
END_TEST

START_TEST(parse_not_quite_ui_is_not_ui)
{
    static const char *const paths[] = {"/sessions/1/uix", "/sessions/1/statements/ui",
                                        "/sessions//ui/jobs", "/sessionsx/1/ui", "/ui"};
    for (size_t i = 0; i < N_ELEMS(paths); i++) {
        livy_route_t r;
        livy_route_parse(paths[i], test_pool, &r);
        ck_assert_msg(r.route != LIVY_ROUTE_SESSION_UI, "%s parsed as the UI", paths[i]);
        ck_assert_ptr_null(r.ui_path);
    }
}
END_TEST

Suite *route_suite(void)
{
    Suite *s = suite_create("livy_route");
    TCase *tc = test_tcase_with_pool("parse");
    tcase_add_loop_test(tc, parse_known_route, 0, N_ELEMS(known_routes));
    tcase_add_loop_test(tc, parse_unknown_path_is_none, 0, N_ELEMS(unknown_paths));
    tcase_add_test(tc, parse_null_path_is_none);
    tcase_add_test(tc, parse_resets_previous_contents);
    tcase_add_test(tc, parse_copies_segments_into_the_pool);
    tcase_add_test(tc, parse_many_segments_and_slashes_without_trouble);
    tcase_add_test(tc, parse_name_with_unicode_and_quotes);
    tcase_add_loop_test(tc, parse_ui_keeps_the_path_below_ui, 0, N_ELEMS(ui_paths));
    tcase_add_test(tc, parse_not_quite_ui_is_not_ui);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("ids");
    tcase_add_loop_test(tc, parse_id_table, 0, N_ELEMS(ids));
    tcase_add_test(tc, parse_id_null_is_minus_one);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("methods");
    tcase_add_loop_test(tc, method_from_name_table, 0, N_ELEMS(methods));
    tcase_add_test(tc, allow_header_per_method_set);
    tcase_add_loop_test(tc, allow_header_matches_allowed_methods, 0, N_ELEMS(known_routes));
    suite_add_tcase(s, tc);
    return s;
}
