/* engine/livy_db.c's connection defaults and engine/store_supervisor.c's requests: what goes to
 * libpq, without a database. */
#include "test_engine.h"
#include "livy_db.h"
#include "store_supervisor.h"

#include <stdlib.h>

static const char *value_of(const char *const *keys, const char *const *values, const char *key)
{
    for (int i = 0; keys[i]; i++)
        if (strcmp(keys[i], key) == 0)
            return values[i];
    return NULL;
}

START_TEST(conn_params_defaults_then_the_operators_conninfo_last)
{
    const char *const *k, *const *v;
    livy_db_conn_params("host=db port=6432 keepalives=0", "mod_livy", 5, 30000, &k, &v,
                        test_pool);
    int n = 0;
    while (k[n])
        n++;
    /* dbname (expanded by libpq) comes last: whatever the conninfo says wins */
    ck_assert_str_eq(k[n - 1], "dbname");
    ck_assert_str_eq(v[n - 1], "host=db port=6432 keepalives=0");
    ck_assert_str_eq(value_of(k, v, "application_name"), "mod_livy");
    ck_assert_str_eq(value_of(k, v, "connect_timeout"), "5");
    ck_assert_str_eq(value_of(k, v, "keepalives"), "1");
    ck_assert_str_eq(value_of(k, v, "keepalives_idle"), "30");
    ck_assert_str_eq(value_of(k, v, "keepalives_interval"), "10");
    ck_assert_str_eq(value_of(k, v, "keepalives_count"), "3");
    ck_assert_str_eq(value_of(k, v, "tcp_user_timeout"), "30000");
    ck_assert_str_eq(value_of(k, v, "options"), "-c statement_timeout=30000");
}
END_TEST

START_TEST(conn_params_without_a_statement_timeout_send_no_options)
{
    const char *const *k, *const *v;
    livy_db_conn_params("dbname=livy", "livy-supervisor", 10, 0, &k, &v, test_pool);
    ck_assert_ptr_null(value_of(k, v, "options"));
    ck_assert_str_eq(value_of(k, v, "application_name"), "livy-supervisor");
    ck_assert_str_eq(value_of(k, v, "connect_timeout"), "10");
}
END_TEST

START_TEST(every_query_has_a_prepare_request_with_its_name_and_text)
{
    store_sv_req_t r;
    int n = 0;
    for (; store_sv_req_prepare(&r, n); n++) {
        ck_assert_ptr_nonnull(r.name);
        ck_assert_msg(strncmp(r.name, "livy_sv_", 8) == 0, "%s", r.name);
        ck_assert_ptr_nonnull(r.sql);
        ck_assert_int_eq(r.nparams, 0);
        ck_assert_int_eq(store_sv_req_wants_rows(&r), 0); /* a PREPARE answers no rows */
        ck_assert_str_eq(store_sv_req_name(&r), r.name);
    }
    ck_assert_int_gt(n, 20);
    ck_assert_int_eq(store_sv_req_prepare(&r, -1), 0);
    store_sv_req_simple(&r, "LISTEN x");
    ck_assert_ptr_null(r.name);
    ck_assert_str_eq(r.sql, "LISTEN x");
    ck_assert_str_eq(store_sv_req_name(&r), "setup");
}
END_TEST

START_TEST(requests_carry_their_parameters_as_text)
{
    store_sv_req_t r;
    store_sv_req_result(&r, 12, 3, "available", "{\"status\":\"ok\"}", 0, 1700000000123LL,
                        test_pool);
    ck_assert_int_eq(r.nparams, 6);
    ck_assert_ptr_null(r.sql);
    ck_assert_str_eq(store_sv_req_name(&r), "livy_sv_result");
    ck_assert_str_eq(r.params[0], "12");
    ck_assert_str_eq(r.params[1], "3");
    ck_assert_str_eq(r.params[2], "available");
    ck_assert_str_eq(r.params[3], "{\"status\":\"ok\"}");
    ck_assert_str_eq(r.params[4], "1700000000123");
    ck_assert_str_eq(r.params[5], "0");
    ck_assert_int_eq(store_sv_req_wants_rows(&r), 0);

    store_sv_req_end(&r, 7, "dead", 5, NULL, test_pool);
    ck_assert_int_eq(r.nparams, 4);
    ck_assert_ptr_null(r.params[3]); /* no reason: a stopped session's statements are cancelled */

    store_sv_req_claim(&r, 2, 4, test_pool);
    ck_assert_int_eq(store_sv_req_wants_rows(&r), 1);
    store_sv_req_heartbeat(&r, 2, test_pool);
    ck_assert_int_eq(store_sv_req_wants_rows(&r), 1);
    store_sv_req_purge(&r, 604800000LL, 100, test_pool);
    ck_assert_str_eq(r.params[0], "604800000");
    ck_assert_str_eq(r.params[1], "100");
    ck_assert_int_eq(store_sv_req_wants_rows(&r), 1);
}
END_TEST

START_TEST(progress_is_clamped_to_zero_one)
{
    store_sv_req_t r;
    store_sv_req_progress(&r, 1, 0, 1.7, test_pool);
    ck_assert_str_eq(r.params[2], "1.000000");
    store_sv_req_progress(&r, 1, 0, -0.5, test_pool);
    ck_assert_str_eq(r.params[2], "0.000000");
    store_sv_req_progress(&r, 1, 0, 0.25, test_pool);
    ck_assert_str_eq(r.params[2], "0.250000");
}
END_TEST

START_TEST(a_missing_answer_is_an_error_naming_the_request)
{
    store_sv_req_t r;
    store_sv_req_flags(&r, 4, test_pool);
    const char *err = store_sv_check(NULL, &r, NULL, test_pool);
    ck_assert_mentions(err, "livy_sv_flags");
    store_sv_req_prepare(&r, 0);
    err = store_sv_check(NULL, &r, NULL, test_pool);
    ck_assert_mentions(err, "preparing ");
}
END_TEST

Suite *db_suite(void)
{
    Suite *s = suite_create("db");
    TCase *tc = test_tcase_with_pool("connection and requests");
    tcase_add_test(tc, conn_params_defaults_then_the_operators_conninfo_last);
    tcase_add_test(tc, conn_params_without_a_statement_timeout_send_no_options);
    tcase_add_test(tc, every_query_has_a_prepare_request_with_its_name_and_text);
    tcase_add_test(tc, requests_carry_their_parameters_as_text);
    tcase_add_test(tc, progress_is_clamped_to_zero_one);
    tcase_add_test(tc, a_missing_answer_is_an_error_naming_the_request);
    suite_add_tcase(s, tc);
    return s;
}
