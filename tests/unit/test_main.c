/* Unit tests of the engine (engine/): one Check suite per engine file, run in one runner so that
 * `make check` prints one summary line. No database: the integration suite covers the store. */
#include "test_engine.h"
#include "livy_json.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdlib.h>

apr_pool_t *test_pool;

static void pool_setup(void)
{
    ck_assert_int_eq(apr_pool_create(&test_pool, NULL), APR_SUCCESS);
}

static void pool_teardown(void)
{
    apr_pool_destroy(test_pool);
    test_pool = NULL;
}

TCase *test_tcase_with_pool(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, pool_setup, pool_teardown);
    return tc;
}

json_t *test_parse_json(const char *text, size_t len)
{
    json_error_t err;
    ck_assert_msg(text != NULL, "expected JSON text, got NULL");
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &err);
    ck_assert_msg(j != NULL, "not valid JSON (%s): %.*s", err.text, (int)len, text);
    return livy_json_own(test_pool, j);
}

const char *test_error_body_msg(const char *body, size_t len)
{
    json_t *j = test_parse_json(body, len);
    ck_assert_msg(json_is_object(j), "error body is not an object: %.*s", (int)len, body);
    ck_assert_msg(json_is_string(json_object_get(j, "msg")),
                  "error body has no string \"msg\": %.*s", (int)len, body);
    ck_assert_msg(json_object_size(j) == 1, "error body has keys besides \"msg\": %.*s",
                  (int)len, body);
    json_t *msg = json_object_get(j, "msg");
    return apr_pstrmemdup(test_pool, json_string_value(msg), json_string_length(msg));
}

/* In fork mode a failed assertion exits the test's process without its teardown: terminating
 * APR at exit still destroys the test's pool (a child of APR's global pool), so ASan's leak
 * check stays quiet about tests that failed. */
static void terminate_apr(void)
{
    apr_terminate();
}

int main(void)
{
    if (apr_initialize() != APR_SUCCESS)
        return EXIT_FAILURE;
    atexit(terminate_apr);

    SRunner *sr = srunner_create(route_suite());
    srunner_add_suite(sr, params_suite());
    srunner_add_suite(sr, paths_suite());
    srunner_add_suite(sr, validate_suite());
    srunner_add_suite(sr, json_suite());
    srunner_add_suite(sr, view_suite());
    srunner_add_suite(sr, access_suite());
    srunner_add_suite(sr, api_suite());
    srunner_add_suite(sr, ui_suite());
    srunner_add_suite(sr, db_suite());
    srunner_add_suite(sr, metrics_suite());
    srunner_add_suite(sr, webui_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
