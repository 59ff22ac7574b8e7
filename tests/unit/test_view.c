/* livy_view: the exact Livy JSON shapes (sessions, batches, statements), key order included,
 * from result rows built by hand with libpq's PQmakeEmptyPGresult/PQsetvalue (no database). */
#include "test_engine.h"
#include "livy_json.h"
#include "livy_store.h"
#include "livy_view.h"

#include <apr_strings.h>

/* One row of ncols text columns; values[i] NULL is SQL NULL. Freed with the test's pool. */
static apr_status_t clear_result(void *res)
{
    PQclear(res);
    return APR_SUCCESS;
}

static PGresult *one_row(int ncols, const char *const *values)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    ck_assert_ptr_nonnull(res);
    apr_pool_cleanup_register(test_pool, res, clear_result, apr_pool_cleanup_null);
    PGresAttDesc *attrs = apr_pcalloc(test_pool, ncols * sizeof *attrs);
    for (int i = 0; i < ncols; i++) {
        attrs[i].name = apr_psprintf(test_pool, "c%d", i);
        attrs[i].typid = 25; /* text */
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    ck_assert_int_eq(PQsetResultAttrs(res, ncols, attrs), 1);
    for (int i = 0; i < ncols; i++) {
        char *v = values[i] ? apr_pstrdup(test_pool, values[i]) : NULL;
        ck_assert_int_eq(PQsetvalue(res, 0, i, v, v ? (int)strlen(v) : -1), 1);
    }
    return res;
}

static const char *view_text(json_t *j)
{
    ck_assert_ptr_nonnull(j);
    return livy_json_dump(test_pool, livy_json_own(test_pool, j), NULL);
}

/* ---- session ---- */

START_TEST(session_all_unset)
{
    const char *values[SC__COUNT] = {0};
    PGresult *res = one_row(SC__COUNT, values);
    ck_assert_str_eq(view_text(livy_view_session(res, 0, 0, 1, NULL)),
        "{\"id\":0,\"name\":null,\"appId\":null,\"owner\":null,\"proxyUser\":null,"
        "\"state\":null,\"kind\":null,"
        "\"appInfo\":{\"driverLogUrl\":null,\"sparkUiUrl\":null,\"executorLogUrls\":null},"
        "\"log\":[],\"ttl\":null,\"idleTimeout\":null,\"driverMemory\":null,\"driverCores\":0,"
        "\"executorMemory\":null,\"executorCores\":0,\"conf\":{},\"archives\":[],\"files\":[],"
        "\"heartbeatTimeoutInSecond\":0,\"jars\":[],\"numExecutors\":0,\"pyFiles\":[],"
        "\"queue\":null}");
}
END_TEST

/* The contract's example object, from a freshly inserted row. */
START_TEST(session_as_livy_shows_it)
{
    const char *values[SC__COUNT] = {0};
    values[SC_ID] = "0";
    values[SC_STATE] = "starting";
    values[SC_KIND] = "shared";
    values[SC_DRIVER_CORES] = "0";
    values[SC_EXECUTOR_CORES] = "0";
    values[SC_NUM_EXECUTORS] = "0";
    values[SC_HEARTBEAT] = "0";
    values[SC_CONF] = "{}";
    values[SC_ARCHIVES] = values[SC_FILES] = values[SC_JARS] = values[SC_PY_FILES] = "[]";
    values[SC_LOG] = "[]";
    values[SC_ENDED] = "f";
    values[SC_NEXT_STATEMENT] = "0";
    PGresult *res = one_row(SC__COUNT, values);
    ck_assert_str_eq(view_text(livy_view_session(res, 0, 0, 1, NULL)),
        "{\"id\":0,\"name\":null,\"appId\":null,\"owner\":null,\"proxyUser\":null,"
        "\"state\":\"starting\",\"kind\":\"shared\","
        "\"appInfo\":{\"driverLogUrl\":null,\"sparkUiUrl\":null,\"executorLogUrls\":null},"
        "\"log\":[],\"ttl\":null,\"idleTimeout\":null,\"driverMemory\":null,\"driverCores\":0,"
        "\"executorMemory\":null,\"executorCores\":0,\"conf\":{},\"archives\":[],\"files\":[],"
        "\"heartbeatTimeoutInSecond\":0,\"jars\":[],\"numExecutors\":0,\"pyFiles\":[],"
        "\"queue\":null}");
}
END_TEST

static const char **filled_session(int offset)
{
    const char **v = apr_pcalloc(test_pool, (SC__COUNT + offset) * sizeof *v);
    v[0] = "17"; /* a column before the session's when offset is 1 (the listing's total) */
    const char **s = v + offset;
    s[SC_ID] = "12";
    s[SC_NAME] = "etl";
    s[SC_APP_ID] = "local-1716200000000";
    s[SC_OWNER] = "alice";
    s[SC_PROXY_USER] = "bob";
    s[SC_STATE] = "idle";
    s[SC_KIND] = "pyspark";
    s[SC_DRIVER_LOG_URL] = "http://h/log";
    s[SC_SPARK_UI_URL] = "http://h:4040";
    s[SC_TTL] = "2h";
    s[SC_IDLE_TIMEOUT] = "30m";
    s[SC_DRIVER_MEMORY] = "2g";
    s[SC_DRIVER_CORES] = "2";
    s[SC_EXECUTOR_MEMORY] = "4g";
    s[SC_EXECUTOR_CORES] = "3";
    s[SC_CONF] = "{\"spark.x\": \"1\", \"a\": \"b\"}";
    s[SC_ARCHIVES] = "[\"env.tgz\"]";
    s[SC_FILES] = "[\"f\"]";
    s[SC_HEARTBEAT] = "60";
    s[SC_JARS] = "[\"a.jar\", \"b.jar\"]";
    s[SC_NUM_EXECUTORS] = "5";
    s[SC_PY_FILES] = "[\"x.py\"]";
    s[SC_QUEUE] = "batch";
    s[SC_LOG] = "[\"line 1\", \"line \\\"2\\\"\"]";
    s[SC_ENDED] = "f";
    s[SC_NEXT_STATEMENT] = "3";
    return v;
}

static const char *const filled_json_head =
    "{\"id\":12,\"name\":\"etl\",\"appId\":\"local-1716200000000\",\"owner\":\"alice\","
    "\"proxyUser\":\"bob\",\"state\":\"idle\",\"kind\":\"pyspark\","
    "\"appInfo\":{\"driverLogUrl\":\"http://h/log\",\"sparkUiUrl\":null,"
    "\"executorLogUrls\":null},";
static const char *const filled_json_tail =
    "\"ttl\":\"2h\",\"idleTimeout\":\"30m\",\"driverMemory\":\"2g\",\"driverCores\":2,"
    "\"executorMemory\":\"4g\",\"executorCores\":3,\"conf\":{\"spark.x\":\"1\",\"a\":\"b\"},"
    "\"archives\":[\"env.tgz\"],\"files\":[\"f\"],\"heartbeatTimeoutInSecond\":60,"
    "\"jars\":[\"a.jar\",\"b.jar\"],\"numExecutors\":5,\"pyFiles\":[\"x.py\"],"
    "\"queue\":\"batch\"}";

START_TEST(session_every_field_set)
{
    PGresult *res = one_row(SC__COUNT, filled_session(0));
    ck_assert_str_eq(view_text(livy_view_session(res, 0, 0, 1, NULL)),
                     apr_pstrcat(test_pool, filled_json_head,
                                 "\"log\":[\"line 1\",\"line \\\"2\\\"\"],", filled_json_tail,
                                 NULL));
}
END_TEST

START_TEST(session_log_hidden_without_view_access)
{
    PGresult *res = one_row(SC__COUNT, filled_session(0));
    ck_assert_str_eq(view_text(livy_view_session(res, 0, 0, 0, NULL)),
                     apr_pstrcat(test_pool, filled_json_head, "\"log\":[],", filled_json_tail,
                                 NULL));
}
END_TEST

START_TEST(session_columns_after_an_offset)
{
    PGresult *res = one_row(SC__COUNT + 1, filled_session(1));
    ck_assert_str_eq(view_text(livy_view_session(res, 0, 1, 1, NULL)),
                     apr_pstrcat(test_pool, filled_json_head,
                                 "\"log\":[\"line 1\",\"line \\\"2\\\"\"],", filled_json_tail,
                                 NULL));
}
END_TEST

START_TEST(session_unreadable_stored_json_falls_back)
{
    const char *values[SC__COUNT] = {0};
    values[SC_ID] = "1";
    values[SC_CONF] = "{broken";
    values[SC_JARS] = "";
    values[SC_LOG] = "not json";
    PGresult *res = one_row(SC__COUNT, values);
    json_t *o = livy_json_own(test_pool, livy_view_session(res, 0, 0, 1, NULL));
    ck_assert_str_eq(livy_json_dump(test_pool, json_object_get(o, "conf"), NULL), "{}");
    ck_assert_str_eq(livy_json_dump(test_pool, json_object_get(o, "jars"), NULL), "[]");
    ck_assert_str_eq(livy_json_dump(test_pool, json_object_get(o, "log"), NULL), "[]");
}
END_TEST

START_TEST(session_big_id)
{
    const char *values[SC__COUNT] = {0};
    values[SC_ID] = "9007199254740993";
    PGresult *res = one_row(SC__COUNT, values);
    json_t *o = livy_json_own(test_pool, livy_view_session(res, 0, 0, 1, NULL));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "id")), 9007199254740993LL);
}
END_TEST

/* The proxied UI's address, never the driver's own (loopback) one. */
START_TEST(session_ui_url_is_the_proxy_path)
{
    PGresult *res = one_row(SC__COUNT, filled_session(0));
    json_t *o = livy_json_own(test_pool, livy_view_session(res, 0, 0, 1,
                                                           "https://livy.example.org:8998/x"));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "appInfo"),
                                                       "sparkUiUrl")),
                     "https://livy.example.org:8998/x/sessions/12/ui/");
}
END_TEST

START_TEST(session_ui_url_null_without_ui_ended_or_unproxied)
{
    const char **v = filled_session(0);
    v[SC_SPARK_UI_URL] = NULL; /* spark.ui.enabled=false, or not up yet */
    json_t *o = livy_json_own(test_pool, livy_view_session(one_row(SC__COUNT, v), 0, 0, 1,
                                                           "http://h:1"));
    ck_assert(json_is_null(json_object_get(json_object_get(o, "appInfo"), "sparkUiUrl")));

    v = filled_session(0);
    v[SC_ENDED] = "t";
    o = livy_json_own(test_pool, livy_view_session(one_row(SC__COUNT, v), 0, 0, 1, "http://h:1"));
    ck_assert(json_is_null(json_object_get(json_object_get(o, "appInfo"), "sparkUiUrl")));

    o = livy_json_own(test_pool, livy_view_session(one_row(SC__COUNT, filled_session(0)), 0, 0,
                                                   1, NULL));
    ck_assert(json_is_null(json_object_get(json_object_get(o, "appInfo"), "sparkUiUrl")));
}
END_TEST

/* ---- batch ---- */

START_TEST(batch_all_unset)
{
    const char *values[BC__COUNT] = {0};
    PGresult *res = one_row(BC__COUNT, values);
    ck_assert_str_eq(view_text(livy_view_batch(res, 0, 0, 1)),
        "{\"id\":0,\"name\":null,\"owner\":null,\"proxyUser\":null,\"state\":null,"
        "\"appId\":null,"
        "\"appInfo\":{\"driverLogUrl\":null,\"sparkUiUrl\":null,\"executorLogUrls\":null},"
        "\"log\":[]}");
}
END_TEST

/* The contract's example object, from a freshly inserted row. */
START_TEST(batch_as_livy_shows_it)
{
    const char *values[BC__COUNT] = {0};
    values[BC_ID] = "0";
    values[BC_STATE] = "starting";
    values[BC_LOG] = "[]";
    PGresult *res = one_row(BC__COUNT, values);
    ck_assert_str_eq(view_text(livy_view_batch(res, 0, 0, 1)),
        "{\"id\":0,\"name\":null,\"owner\":null,\"proxyUser\":null,\"state\":\"starting\","
        "\"appId\":null,"
        "\"appInfo\":{\"driverLogUrl\":null,\"sparkUiUrl\":null,\"executorLogUrls\":null},"
        "\"log\":[]}");
}
END_TEST

static const char **filled_batch(int offset)
{
    const char **v = apr_pcalloc(test_pool, (BC__COUNT + offset) * sizeof *v);
    v[0] = "3"; /* the listing's total, before the batch's columns when offset is 1 */
    const char **b = v + offset;
    b[BC_ID] = "8";
    b[BC_NAME] = "nightly";
    b[BC_OWNER] = "alice";
    b[BC_PROXY_USER] = "etl";
    b[BC_STATE] = "running";
    b[BC_APP_ID] = "application_1716200000000_0001";
    b[BC_DRIVER_LOG_URL] = "http://nm:8042/logs/driver";
    b[BC_LOG] = "[\"stdout: 1\", \"stderr: \\\"2\\\"\"]";
    return v;
}

static const char *const filled_batch_head =
    "{\"id\":8,\"name\":\"nightly\",\"owner\":\"alice\",\"proxyUser\":\"etl\","
    "\"state\":\"running\",\"appId\":\"application_1716200000000_0001\","
    "\"appInfo\":{\"driverLogUrl\":\"http://nm:8042/logs/driver\",\"sparkUiUrl\":null,"
    "\"executorLogUrls\":null},";

START_TEST(batch_every_field_set)
{
    PGresult *res = one_row(BC__COUNT, filled_batch(0));
    ck_assert_str_eq(view_text(livy_view_batch(res, 0, 0, 1)),
                     apr_pstrcat(test_pool, filled_batch_head,
                                 "\"log\":[\"stdout: 1\",\"stderr: \\\"2\\\"\"]}", NULL));
}
END_TEST

START_TEST(batch_log_hidden_without_view_access)
{
    PGresult *res = one_row(BC__COUNT, filled_batch(0));
    ck_assert_str_eq(view_text(livy_view_batch(res, 0, 0, 0)),
                     apr_pstrcat(test_pool, filled_batch_head, "\"log\":[]}", NULL));
}
END_TEST

START_TEST(batch_columns_after_an_offset)
{
    PGresult *res = one_row(BC__COUNT + 1, filled_batch(1));
    ck_assert_str_eq(view_text(livy_view_batch(res, 0, 1, 1)),
                     apr_pstrcat(test_pool, filled_batch_head,
                                 "\"log\":[\"stdout: 1\",\"stderr: \\\"2\\\"\"]}", NULL));
}
END_TEST

START_TEST(batch_unreadable_log_falls_back)
{
    const char **v = filled_batch(0);
    v[BC_LOG] = "not json";
    json_t *o = livy_json_own(test_pool, livy_view_batch(one_row(BC__COUNT, v), 0, 0, 1));
    ck_assert_str_eq(livy_json_dump(test_pool, json_object_get(o, "log"), NULL), "[]");
}
END_TEST

/* ---- statement ---- */

START_TEST(statement_available_as_livy_shows_it)
{
    const char *values[] = {
        [ST_ID] = "0",
        [ST_CODE] = "1 + 1",
        [ST_STATE] = "available",
        [ST_OUTPUT] = "{\"status\": \"ok\", \"execution_count\": 0, "
                      "\"data\": {\"text/plain\": \"2\"}}",
        [ST_PROGRESS] = "1",
        [ST_STARTED] = "1716200000000",
        [ST_COMPLETED] = "1716200000420",
    };
    PGresult *res = one_row(N_ELEMS(values), values);
    ck_assert_str_eq(view_text(livy_view_statement(res, 0)),
        "{\"id\":0,\"code\":\"1 + 1\",\"state\":\"available\","
        "\"output\":{\"status\":\"ok\",\"execution_count\":0,\"data\":{\"text/plain\":\"2\"}},"
        "\"progress\":1.0,\"started\":1716200000000,\"completed\":1716200000420}");
}
END_TEST

START_TEST(statement_waiting_has_null_output_and_zero_times)
{
    const char *values[] = {
        [ST_ID] = "4", [ST_CODE] = "x", [ST_STATE] = "waiting", [ST_OUTPUT] = NULL,
        [ST_PROGRESS] = NULL, [ST_STARTED] = NULL, [ST_COMPLETED] = NULL,
    };
    PGresult *res = one_row(N_ELEMS(values), values);
    ck_assert_str_eq(view_text(livy_view_statement(res, 0)),
        "{\"id\":4,\"code\":\"x\",\"state\":\"waiting\",\"output\":null,\"progress\":0.0,"
        "\"started\":0,\"completed\":0}");
}
END_TEST

START_TEST(statement_error_output_and_partial_progress)
{
    const char *values[] = {
        [ST_ID] = "1",
        [ST_CODE] = "x",
        [ST_STATE] = "running",
        [ST_OUTPUT] = "{\"status\":\"error\",\"execution_count\":1,\"ename\":\"NameError\","
                      "\"evalue\":\"name 'x' is not defined\","
                      "\"traceback\":[\"Traceback (most recent call last):\\n\"]}",
        [ST_PROGRESS] = "0.25",
        [ST_STARTED] = "1716200000000",
        [ST_COMPLETED] = "0",
    };
    PGresult *res = one_row(N_ELEMS(values), values);
    json_t *o = livy_json_own(test_pool, livy_view_statement(res, 0));
    ck_assert_double_eq(json_real_value(json_object_get(o, "progress")), 0.25);
    json_t *out = json_object_get(o, "output");
    ck_assert_str_eq(json_string_value(json_object_get(out, "ename")), "NameError");
    ck_assert_str_eq(json_string_value(json_object_get(out, "evalue")),
                     "name 'x' is not defined");
    ck_assert_int_eq(json_array_size(json_object_get(out, "traceback")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "completed")), 0);
}
END_TEST

START_TEST(statement_code_with_unicode_and_quotes)
{
    const char *values[] = {
        [ST_ID] = "2", [ST_CODE] = "print(\"caf\xc3\xa9\")\n", [ST_STATE] = "cancelled",
        [ST_OUTPUT] = NULL, [ST_PROGRESS] = "1", [ST_STARTED] = "5", [ST_COMPLETED] = "6",
    };
    PGresult *res = one_row(N_ELEMS(values), values);
    json_t *o = livy_json_own(test_pool, livy_view_statement(res, 0));
    ck_assert_str_eq(json_string_value(json_object_get(o, "code")), "print(\"caf\xc3\xa9\")\n");
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "cancelled");
}
END_TEST


/* ---- the same objects as text (listings): byte for byte what the views above serialise ---- */

static const char *session_text(const PGresult *res, int c0, int show_log, const char *ui_base)
{
    livy_text_t t;
    livy_text_init(&t, test_pool, 1); /* grows from the smallest buffer */
    livy_view_session_text(&t, res, 0, c0, show_log, ui_base);
    ck_assert_uint_eq(strlen(t.buf), t.len);
    return t.buf;
}

static void assert_session_text_as_view(const char **v, int offset)
{
    PGresult *res = one_row(SC__COUNT + offset, v);
    const char *const bases[] = {NULL, "https://livy.example.org:8998/x"};
    for (int show = 0; show <= 1; show++)
        for (int b = 0; b < N_ELEMS(bases); b++)
            ck_assert_str_eq(session_text(res, offset, show, bases[b]),
                             view_text(livy_view_session(res, 0, offset, show, bases[b])));
}

/* Strings with every kind of escape, and stored JSON as the database writes it (json_agg's and
 * json_build_object's spacing, lower-case \u escapes). */
static const char **awkward_session(void)
{
    const char **v = filled_session(0);
    v[SC_NAME] = "tab\there \"q\" back\\slash /slash \x01\x1f\x7f caf\xc3\xa9 \xe2\x80\xa8";
    v[SC_OWNER] = "\n\r\b\f";
    v[SC_QUEUE] = "";
    v[SC_CONF] = "{\"spark.a\" : \"x  y\", \"k \\\" q\" : \"\\u001f\xc3\xa9\\\\\", "
                 "\"n\" : [1, -2.5, 0.10000000000000001, true, false, null, {}, []]}";
    v[SC_JARS] = "[ ]";
    v[SC_FILES] = "\n[\"a\",\n \"b\"]\n";
    v[SC_LOG] = "[\"stdout: 1\", \"\\u0001 ctl\", \"tab\\tin \\\"quotes\\\"\", \"\"]";
    return v;
}

START_TEST(session_text_as_view)
{
    const char *unset[SC__COUNT] = {0};
    assert_session_text_as_view(unset, 0);
    assert_session_text_as_view(filled_session(0), 0);
    assert_session_text_as_view(filled_session(1), 1);
    assert_session_text_as_view(awkward_session(), 0);
    const char **ended = filled_session(0);
    ended[SC_ENDED] = "t";
    assert_session_text_as_view(ended, 0);
    const char **no_ui = filled_session(0);
    no_ui[SC_SPARK_UI_URL] = NULL;
    assert_session_text_as_view(no_ui, 0);
}
END_TEST

START_TEST(session_text_log_hidden_and_ui_url)
{
    PGresult *res = one_row(SC__COUNT, filled_session(0));
    ck_assert_str_eq(session_text(res, 0, 0, NULL),
                     apr_pstrcat(test_pool, filled_json_head, "\"log\":[],", filled_json_tail,
                                 NULL));
    ck_assert_ptr_nonnull(strstr(session_text(res, 0, 1, "http://h:1/p"),
                                 "\"sparkUiUrl\":\"http://h:1/p/sessions/12/ui/\""));
}
END_TEST

START_TEST(batch_text_as_view)
{
    const char *unset[BC__COUNT] = {0};
    const char **awkward = filled_batch(0);
    awkward[BC_NAME] = "a\x02\"b\"";
    awkward[BC_LOG] = "[\"x\", \"\\u001b[0m\", \"caf\xc3\xa9\"]";
    const char **rows[] = {unset, filled_batch(0), filled_batch(1), awkward};
    const int offsets[] = {0, 0, 1, 0};
    for (int i = 0; i < N_ELEMS(rows); i++) {
        PGresult *res = one_row(BC__COUNT + offsets[i], rows[i]);
        for (int show = 0; show <= 1; show++) {
            livy_text_t t;
            livy_text_init(&t, test_pool, 1);
            livy_view_batch_text(&t, res, 0, offsets[i], show);
            ck_assert_str_eq(t.buf, view_text(livy_view_batch(res, 0, offsets[i], show)));
        }
    }
}
END_TEST

START_TEST(statement_text_as_view)
{
    const char *const progress[] = {NULL, "0", "1", "0.25", "0.3333333333333333", "1e-07",
                                    "0.1"};
    const char *const outputs[] = {
        NULL,
        "{\"status\":\"ok\",\"execution_count\":0,\"data\":{\"text/plain\":\"2\"}}",
        /* as the supervisor's json_build_object writes a dead session's statements */
        "{\"status\" : \"error\", \"execution_count\" : 3, \"ename\" : \"SessionDead\", "
        "\"evalue\" : \"gone\\n\\u0007\", \"traceback\" : []}",
    };
    const char *const codes[] = {"1 + 1", "print(\"caf\xc3\xa9\")\n\t\x1b[1m\\", ""};
    for (int i = 0; i < N_ELEMS(progress); i++)
        for (int j = 0; j < N_ELEMS(outputs); j++)
            for (int k = 0; k < N_ELEMS(codes); k++) {
                const char *values[] = {
                    [ST_ID] = "7", [ST_CODE] = codes[k], [ST_STATE] = "available",
                    [ST_OUTPUT] = outputs[j], [ST_PROGRESS] = progress[i],
                    [ST_STARTED] = "1716200000000", [ST_COMPLETED] = NULL,
                };
                PGresult *res = one_row(N_ELEMS(values), values);
                livy_text_t t;
                livy_text_init(&t, test_pool, 8);
                livy_view_statement_text(&t, res, 0);
                ck_assert_str_eq(t.buf, view_text(livy_view_statement(res, 0)));
            }
}
END_TEST

/* After a session's columns (GET .../statements/{sid} brings both in one row). */
START_TEST(statement_text_after_the_session_columns)
{
    const char *values[SC__COUNT + ST_COMPLETED + 1] = {0};
    values[SC_ID] = "3";
    values[SC_STATE] = "idle";
    values[SC__COUNT + ST_ID] = "12";
    values[SC__COUNT + ST_CODE] = "x = \"\u00e9\"";
    values[SC__COUNT + ST_STATE] = "running";
    values[SC__COUNT + ST_PROGRESS] = "0.5";
    values[SC__COUNT + ST_STARTED] = "1716200000000";
    PGresult *res = one_row(N_ELEMS(values), values);
    livy_text_t t;
    livy_text_init(&t, test_pool, 8);
    livy_view_statement_text_at(&t, res, 0, SC__COUNT);
    ck_assert_str_eq(t.buf, view_text(livy_view_statement_at(res, 0, SC__COUNT)));
    ck_assert_str_eq(t.buf, "{\"id\":12,\"code\":\"x = \\\"\u00e9\\\"\",\"state\":\"running\","
                            "\"output\":null,\"progress\":0.5,\"started\":1716200000000,"
                            "\"completed\":0}");
}
END_TEST

/* Appending keeps what came before, across growth, and text stays NUL-terminated. */
START_TEST(text_appends_and_grows)
{
    livy_text_t t;
    livy_text_init(&t, test_pool, 1);
    livy_text_lit(&t, "[");
    for (int i = 0; i < 200; i++) {
        livy_text_string(&t, i % 2 ? "\x01\x02\x03" : NULL);
        livy_text_lit(&t, ",");
    }
    livy_text_stored(&t, " { \"a b\" : \"c \\\" d\" } ", "null");
    livy_text_lit(&t, ",");
    livy_text_stored(&t, NULL, "{}");
    livy_text_lit(&t, ",");
    livy_text_integer(&t, NULL);
    livy_text_lit(&t, "]");
    ck_assert_uint_eq(strlen(t.buf), t.len);
    const char *end = "\",{\"a b\":\"c \\\" d\"},{},0]";
    ck_assert_str_eq(t.buf + t.len - strlen(end), end);
    ck_assert_ptr_nonnull(strstr(t.buf, "[null,\"\\u0001\\u0002\\u0003\",null,"));
    json_t *all = test_parse_json(t.buf, t.len);
    ck_assert_int_eq(json_array_size(all), 203);
}
END_TEST

Suite *view_suite(void)
{
    Suite *s = suite_create("livy_view");
    TCase *tc = test_tcase_with_pool("session");
    tcase_add_test(tc, session_all_unset);
    tcase_add_test(tc, session_as_livy_shows_it);
    tcase_add_test(tc, session_every_field_set);
    tcase_add_test(tc, session_log_hidden_without_view_access);
    tcase_add_test(tc, session_columns_after_an_offset);
    tcase_add_test(tc, session_unreadable_stored_json_falls_back);
    tcase_add_test(tc, session_big_id);
    tcase_add_test(tc, session_ui_url_is_the_proxy_path);
    tcase_add_test(tc, session_ui_url_null_without_ui_ended_or_unproxied);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("batch");
    tcase_add_test(tc, batch_all_unset);
    tcase_add_test(tc, batch_as_livy_shows_it);
    tcase_add_test(tc, batch_every_field_set);
    tcase_add_test(tc, batch_log_hidden_without_view_access);
    tcase_add_test(tc, batch_columns_after_an_offset);
    tcase_add_test(tc, batch_unreadable_log_falls_back);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("statement");
    tcase_add_test(tc, statement_available_as_livy_shows_it);
    tcase_add_test(tc, statement_waiting_has_null_output_and_zero_times);
    tcase_add_test(tc, statement_error_output_and_partial_progress);
    tcase_add_test(tc, statement_code_with_unicode_and_quotes);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("text");
    tcase_add_test(tc, session_text_as_view);
    tcase_add_test(tc, session_text_log_hidden_and_ui_url);
    tcase_add_test(tc, batch_text_as_view);
    tcase_add_test(tc, statement_text_as_view);
    tcase_add_test(tc, statement_text_after_the_session_columns);
    tcase_add_test(tc, text_appends_and_grows);
    suite_add_tcase(s, tc);
    return s;
}
