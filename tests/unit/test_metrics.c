/* livy_metrics and GET /metrics: the Prometheus text (HELP and TYPE lines, histogram buckets,
 * label escaping), reading the metrics query's rows, the route, LivyMetrics Off as a 404, the
 * 405, and who may read the metrics. */
#include "test_engine.h"
#include "livy_access.h"
#include "livy_api.h"
#include "livy_metrics.h"

#include <apr_strings.h>
#include <libpq-fe.h>

/* ---- label escaping ---- */

static const struct {
    const char *in, *out;
} escapes[] = {
    {"idle", "idle"},
    {"", ""},
    {"say \"hi\"", "say \\\"hi\\\""},
    {"C:\\spark", "C:\\\\spark"},
    {"two\nlines", "two\\nlines"},
    {"\\\"\n", "\\\\\\\"\\n"},
    {"tab\tstays", "tab\tstays"},         /* only \\, \" and \n are escaped */
    {"h\xc3\xb6st", "h\xc3\xb6st"},       /* UTF-8 passes through */
};

START_TEST(escape_label_table)
{
    ck_assert_str_eq(livy_metrics_escape_label(escapes[_i].in, test_pool), escapes[_i].out);
}
END_TEST

START_TEST(escape_label_returns_clean_text_itself_and_null_as_empty)
{
    const char *clean = "spark-host-1";
    ck_assert_ptr_eq(livy_metrics_escape_label(clean, test_pool), clean);
    ck_assert_str_eq(livy_metrics_escape_label(NULL, test_pool), "");
}
END_TEST

START_TEST(bounds_param_is_a_float8_array_literal)
{
    ck_assert_str_eq(livy_metrics_bounds_param(test_pool), "{0.01,0.05,0.1,0.5,1,5,10,60,300}");
    ck_assert_str_eq(livy_metrics_start_bounds_param(test_pool),
                     "{1,2,5,10,20,30,60,120,300}");
}
END_TEST

/* ---- rendering ---- */

static livy_metrics_t *sample_metrics(void)
{
    livy_metrics_t *m = apr_pcalloc(test_pool, sizeof *m);
    livy_metrics_init(m, "1.2.3", test_pool);
    livy_metrics_session_t *s = apr_array_push(m->sessions);
    s->state = "idle", s->kind = "pyspark", s->count = 2;
    s = apr_array_push(m->sessions);
    s->state = "dead", s->kind = "shared", s->count = 1;
    livy_metrics_statement_t *st = apr_array_push(m->statements);
    st->state = "available", st->count = 5;
    st = apr_array_push(m->statements);
    st->state = "waiting", st->count = 1;
    int64_t le[LIVY_METRICS_DURATION_BUCKETS] = {1, 1, 2, 3, 4, 4, 4, 5, 5};
    memcpy(m->duration_le, le, sizeof le);
    m->duration_count = 6;
    m->duration_sum = 412.75;
    livy_metrics_supervisor_t *v = apr_array_push(m->supervisors);
    v->id = "7", v->host = "spark-1", v->heartbeat_age = 1.5, v->capacity = 20, v->sessions = 3;
    v->batches = 2, v->warm_ready = 1, v->warm_starting = 0;
    livy_metrics_statement_t *b = apr_array_push(m->batches);
    b->state = "running", b->count = 2;
    int64_t start_le[LIVY_METRICS_START_BUCKETS] = {0, 1, 3, 3, 3, 3, 4, 4, 4};
    memcpy(m->start_le, start_le, sizeof start_le);
    m->start_count = 4;
    m->start_sum = 52.5;
    m->schema_version = 1;
    return m;
}

static const char *const sample_text =
    "# HELP livy_sessions Sessions listed by GET /sessions (ended ones included until they are "
    "no longer listed) and deleted ones still shutting down, by state and kind.\n"
    "# TYPE livy_sessions gauge\n"
    "livy_sessions{state=\"idle\",kind=\"pyspark\"} 2\n"
    "livy_sessions{state=\"dead\",kind=\"shared\"} 1\n"
    "# HELP livy_statements Statements of the sessions counted by livy_sessions, by state.\n"
    "# TYPE livy_statements gauge\n"
    "livy_statements{state=\"available\"} 5\n"
    "livy_statements{state=\"waiting\"} 1\n"
    "# HELP livy_statement_duration_seconds Run time (completed - started) of the completed "
    "statements the database retains; it decreases when ended sessions are purged.\n"
    "# TYPE livy_statement_duration_seconds histogram\n"
    "livy_statement_duration_seconds_bucket{le=\"0.01\"} 1\n"
    "livy_statement_duration_seconds_bucket{le=\"0.05\"} 1\n"
    "livy_statement_duration_seconds_bucket{le=\"0.1\"} 2\n"
    "livy_statement_duration_seconds_bucket{le=\"0.5\"} 3\n"
    "livy_statement_duration_seconds_bucket{le=\"1\"} 4\n"
    "livy_statement_duration_seconds_bucket{le=\"5\"} 4\n"
    "livy_statement_duration_seconds_bucket{le=\"10\"} 4\n"
    "livy_statement_duration_seconds_bucket{le=\"60\"} 5\n"
    "livy_statement_duration_seconds_bucket{le=\"300\"} 5\n"
    "livy_statement_duration_seconds_bucket{le=\"+Inf\"} 6\n"
    "livy_statement_duration_seconds_sum 412.75\n"
    "livy_statement_duration_seconds_count 6\n"
    "# HELP livy_session_start_duration_seconds Time from a session's create to its first idle, "
    "of the sessions the database retains that got there.\n"
    "# TYPE livy_session_start_duration_seconds histogram\n"
    "livy_session_start_duration_seconds_bucket{le=\"1\"} 0\n"
    "livy_session_start_duration_seconds_bucket{le=\"2\"} 1\n"
    "livy_session_start_duration_seconds_bucket{le=\"5\"} 3\n"
    "livy_session_start_duration_seconds_bucket{le=\"10\"} 3\n"
    "livy_session_start_duration_seconds_bucket{le=\"20\"} 3\n"
    "livy_session_start_duration_seconds_bucket{le=\"30\"} 3\n"
    "livy_session_start_duration_seconds_bucket{le=\"60\"} 4\n"
    "livy_session_start_duration_seconds_bucket{le=\"120\"} 4\n"
    "livy_session_start_duration_seconds_bucket{le=\"300\"} 4\n"
    "livy_session_start_duration_seconds_bucket{le=\"+Inf\"} 4\n"
    "livy_session_start_duration_seconds_sum 52.5\n"
    "livy_session_start_duration_seconds_count 4\n"
    "# HELP livy_batches Batches listed by GET /batches (ended ones included until they are no "
    "longer listed) and deleted ones still running, by state.\n"
    "# TYPE livy_batches gauge\n"
    "livy_batches{state=\"running\"} 2\n"
    "# HELP livy_supervisors livy-supervisor processes registered and not stopped.\n"
    "# TYPE livy_supervisors gauge\n"
    "livy_supervisors 1\n"
    "# HELP livy_supervisor_heartbeat_age_seconds Seconds since the supervisor's last "
    "heartbeat, by the database's clock.\n"
    "# TYPE livy_supervisor_heartbeat_age_seconds gauge\n"
    "livy_supervisor_heartbeat_age_seconds{host=\"spark-1\",id=\"7\"} 1.5\n"
    "# HELP livy_supervisor_capacity Sessions the supervisor may run at once.\n"
    "# TYPE livy_supervisor_capacity gauge\n"
    "livy_supervisor_capacity{host=\"spark-1\",id=\"7\"} 20\n"
    "# HELP livy_supervisor_sessions Live sessions the supervisor holds.\n"
    "# TYPE livy_supervisor_sessions gauge\n"
    "livy_supervisor_sessions{host=\"spark-1\",id=\"7\"} 3\n"
    "# HELP livy_supervisor_batches Live batches the supervisor runs (each takes one of its "
    "capacity too).\n"
    "# TYPE livy_supervisor_batches gauge\n"
    "livy_supervisor_batches{host=\"spark-1\",id=\"7\"} 2\n"
    "# HELP livy_supervisor_warm_repls Warm REPLs the supervisor keeps ready (warm_sessions): "
    "a new session that takes one is idle at once.\n"
    "# TYPE livy_supervisor_warm_repls gauge\n"
    "livy_supervisor_warm_repls{host=\"spark-1\",id=\"7\"} 1\n"
    "# HELP livy_supervisor_warm_repls_starting Warm REPLs the supervisor is starting.\n"
    "# TYPE livy_supervisor_warm_repls_starting gauge\n"
    "livy_supervisor_warm_repls_starting{host=\"spark-1\",id=\"7\"} 0\n"
    "# HELP livy_info mod_livy's version and the database's schema version.\n"
    "# TYPE livy_info gauge\n"
    "livy_info{version=\"1.2.3\",schema_version=\"1\"} 1\n";

START_TEST(render_whole_exposition)
{
    size_t len;
    char *text = livy_metrics_render(sample_metrics(), test_pool, &len);
    ck_assert_str_eq(text, sample_text);
    ck_assert_uint_eq(len, strlen(text));
}
END_TEST

/* Nothing in the database: every family is still announced, the histogram is all zeros, and
 * livy_supervisors says 0 rather than nothing. */
START_TEST(render_empty_database)
{
    livy_metrics_t m;
    livy_metrics_init(&m, "0.1.0", test_pool);
    char *text = livy_metrics_render(&m, test_pool, NULL);
    static const char *const families[] = {
        "livy_sessions gauge", "livy_statements gauge",
        "livy_statement_duration_seconds histogram", "livy_supervisors gauge",
        "livy_supervisor_heartbeat_age_seconds gauge", "livy_supervisor_capacity gauge",
        "livy_supervisor_sessions gauge", "livy_supervisor_batches gauge",
        "livy_supervisor_warm_repls gauge", "livy_supervisor_warm_repls_starting gauge",
        "livy_session_start_duration_seconds histogram", "livy_batches gauge", "livy_info gauge",
    };
    for (int i = 0; i < N_ELEMS(families); i++) {
        ck_assert_mentions(text, apr_pstrcat(test_pool, "\n# TYPE ", families[i], "\n", NULL));
        char *name = apr_pstrdup(test_pool, families[i]);
        *strchr(name, ' ') = '\0';
        ck_assert_mentions(text, apr_pstrcat(test_pool, "# HELP ", name, " ", NULL));
    }
    ck_assert_mentions(text, "\nlivy_statement_duration_seconds_bucket{le=\"0.01\"} 0\n");
    ck_assert_mentions(text, "\nlivy_statement_duration_seconds_bucket{le=\"+Inf\"} 0\n");
    ck_assert_mentions(text, "\nlivy_statement_duration_seconds_sum 0\n");
    ck_assert_mentions(text, "\nlivy_statement_duration_seconds_count 0\n");
    ck_assert_mentions(text, "\nlivy_supervisors 0\n");
    ck_assert_mentions(text, "\nlivy_info{version=\"0.1.0\",schema_version=\"0\"} 1\n");
    ck_assert_ptr_null(strstr(text, "livy_sessions{"));
    ck_assert_ptr_null(strstr(text, "livy_supervisor_capacity{"));
}
END_TEST

START_TEST(render_escapes_every_label_value)
{
    livy_metrics_t m;
    livy_metrics_init(&m, "9\"9", test_pool);
    livy_metrics_session_t *s = apr_array_push(m.sessions);
    s->state = "idle", s->kind = "we\"ird\\kind\n", s->count = 1;
    livy_metrics_statement_t *st = apr_array_push(m.statements);
    st->state = "a\nb", st->count = 2;
    livy_metrics_supervisor_t *v = apr_array_push(m.supervisors);
    v->id = "1", v->host = "evil\"} 666\nlivy_fake 1", v->heartbeat_age = 0.25, v->capacity = 4;
    char *text = livy_metrics_render(&m, test_pool, NULL);
    ck_assert_mentions(text, "\nlivy_sessions{state=\"idle\",kind=\"we\\\"ird\\\\kind\\n\"} 1\n");
    ck_assert_mentions(text, "\nlivy_statements{state=\"a\\nb\"} 2\n");
    ck_assert_mentions(text, "\nlivy_supervisor_capacity{host=\"evil\\\"} 666\\nlivy_fake 1\","
                             "id=\"1\"} 4\n");
    ck_assert_mentions(text, "\nlivy_supervisor_heartbeat_age_seconds{host=\"evil\\\"} 666\\n"
                             "livy_fake 1\",id=\"1\"} 0.25\n");
    ck_assert_mentions(text, "\nlivy_info{version=\"9\\\"9\",schema_version=\"0\"} 1\n");
    /* no line starts with the injected name */
    ck_assert_ptr_null(strstr(text, "\nlivy_fake"));
}
END_TEST

START_TEST(render_numbers_read_back_exactly)
{
    livy_metrics_t m;
    livy_metrics_init(&m, "x", test_pool);
    m.duration_sum = 0.1 + 0.2; /* 0.30000000000000004: %g alone would lose it */
    m.duration_count = 2;
    livy_metrics_supervisor_t *v = apr_array_push(m.supervisors);
    v->id = "1", v->host = "h", v->heartbeat_age = 12345.678;
    char *text = livy_metrics_render(&m, test_pool, NULL);
    ck_assert_mentions(text, "\nlivy_statement_duration_seconds_sum 0.30000000000000004\n");
    ck_assert_mentions(text, "{host=\"h\",id=\"1\"} 12345.678\n");
}
END_TEST

/* This httpd's counters: requests by family and status (zeros left out), the cumulative
 * duration histogram per family seen, the pools. */
START_TEST(render_http_counters)
{
    livy_metrics_t m;
    livy_metrics_init(&m, "x", test_pool);
    livy_metrics_http_t *h = apr_pcalloc(test_pool, sizeof *h);
    livy_metrics_http_count(h, livy_metrics_family(LIVY_ROUTE_VERSION), 200, 800);
    livy_metrics_http_count(h, livy_metrics_family(LIVY_ROUTE_VERSION), 200, 3000);
    livy_metrics_http_count(h, livy_metrics_family(LIVY_ROUTE_STATEMENT_CANCEL), 404, 20000);
    livy_metrics_http_count(h, livy_metrics_family(LIVY_ROUTE_NONE), 418, 9000000); /* > 5 s */
    h->pool_open = 5;
    h->pool_in_use = 2;
    h->pool_waits = 7;
    h->pool_connects = 9;
    m.http = h;
    char *text = livy_metrics_render(&m, test_pool, NULL);
    ck_assert_mentions(text, "\n# TYPE livy_http_requests_total counter\n");
    ck_assert_mentions(text, "\nlivy_http_requests_total{route=\"version\",code=\"200\"} 2\n");
    ck_assert_mentions(text, "\nlivy_http_requests_total{route=\"statements\",code=\"404\"} 1\n");
    ck_assert_mentions(text, "\nlivy_http_requests_total{route=\"other\",code=\"other\"} 1\n");
    ck_assert_ptr_null(strstr(text, "code=\"500\""));
    ck_assert_mentions(text, "\nlivy_http_request_duration_seconds_bucket{route=\"version\","
                             "le=\"0.001\"} 1\n");
    ck_assert_mentions(text, "\nlivy_http_request_duration_seconds_bucket{route=\"version\","
                             "le=\"0.0025\"} 1\n");
    ck_assert_mentions(text, "\nlivy_http_request_duration_seconds_bucket{route=\"version\","
                             "le=\"0.005\"} 2\n");
    ck_assert_mentions(text, "\nlivy_http_request_duration_seconds_sum{route=\"version\"} "
                             "0.0038\n");
    ck_assert_mentions(text, "\nlivy_http_request_duration_seconds_bucket{route=\"other\","
                             "le=\"5\"} 0\n");
    ck_assert_mentions(text, "\nlivy_http_request_duration_seconds_bucket{route=\"other\","
                             "le=\"+Inf\"} 1\n");
    ck_assert_ptr_null(strstr(text, "duration_seconds_count{route=\"batches\"}"));
    ck_assert_mentions(text, "\nlivy_db_pool_connections{state=\"in_use\"} 2\n"
                             "livy_db_pool_connections{state=\"idle\"} 3\n");
    ck_assert_mentions(text, "\nlivy_db_pool_waits_total 7\n");
    ck_assert_mentions(text, "\nlivy_db_pool_timeouts_total 0\n");
    ck_assert_mentions(text, "\nlivy_db_pool_connects_total 9\n");
    /* before livy_info, which stays last */
    ck_assert_ptr_nonnull(strstr(text, "livy_db_pool_connect_failures_total 0\n# HELP livy_info"));
}
END_TEST

START_TEST(route_families_and_status_slots)
{
    ck_assert_str_eq(livy_metrics_family_name(livy_metrics_family(LIVY_ROUTE_BATCH_LOG)), "log");
    ck_assert_str_eq(livy_metrics_family_name(livy_metrics_family(LIVY_ROUTE_SESSION_LOG)), "log");
    ck_assert_str_eq(livy_metrics_family_name(livy_metrics_family(LIVY_ROUTE_BATCH_STATE)),
                     "batch");
    ck_assert_str_eq(livy_metrics_family_name(livy_metrics_family(LIVY_ROUTE_SESSION_UI)),
                     "spark_ui");
    ck_assert_str_eq(livy_metrics_family_name(livy_metrics_family(LIVY_ROUTE_WEBUI_FILE)),
                     "webui");
    ck_assert_str_eq(livy_metrics_family_name(livy_metrics_family(LIVY_ROUTE_NONE)), "other");
    ck_assert_str_eq(livy_metrics_family_name(livy_metrics_family(12345)), "other");
    ck_assert_int_eq(livy_metrics_status_slot(200), 0);
    ck_assert_int_eq(livy_metrics_status_slot(504), LIVY_METRICS_STATUS_SLOTS - 2);
    ck_assert_int_eq(livy_metrics_status_slot(418), LIVY_METRICS_STATUS_SLOTS - 1);
    ck_assert_int_eq(livy_metrics_status_slot(-1), LIVY_METRICS_STATUS_SLOTS - 1);
}
END_TEST

/* ---- reading the query's rows ---- */

/* A result of the metrics query's shape holding rows (NULL cells as NULL), owned by the test. */
static PGresult *metrics_result(const char *const (*rows)[MC__COUNT], int nrows, int ncols)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    ck_assert_ptr_nonnull(res);
    PGresAttDesc attrs[MC__COUNT + 1];
    memset(attrs, 0, sizeof attrs);
    for (int c = 0; c < ncols; c++) {
        attrs[c].name = apr_psprintf(test_pool, "c%d", c);
        attrs[c].typid = 25; /* text */
        attrs[c].typlen = -1;
        attrs[c].atttypmod = -1;
    }
    ck_assert(PQsetResultAttrs(res, ncols, attrs));
    for (int r = 0; r < nrows; r++)
        for (int c = 0; c < ncols && c < MC__COUNT; c++)
            ck_assert(PQsetvalue(res, r, c, (char *)rows[r][c],
                                 rows[r][c] ? (int)strlen(rows[r][c]) : -1));
    return res;
}

static const char *const good_rows[][MC__COUNT] = {
    {"session", "idle", "pyspark", "2", NULL, NULL},
    {"session", "not_started", "shared", "1", NULL, NULL},
    {"statement", "available", NULL, "5", NULL, NULL},
    {"bucket", "1", NULL, "1", NULL, NULL},
    {"bucket", "9", NULL, "5", NULL, NULL},
    {"bucket", "3", NULL, "2", NULL, NULL},
    {"duration", NULL, NULL, "6", "412.75", NULL},
    {"supervisor", "7", "spark-1", "1.5", "20", "3", "2"},
    {"batch", "running", NULL, "4", NULL, NULL},
    {"start_bucket", "2", NULL, "1", NULL, NULL},
    {"start_bucket", "9", NULL, "3", NULL, NULL},
    {"start", NULL, NULL, "3", "17.25", NULL},
    {"warm", "7", NULL, "1", "2", NULL},
    {"warm", "99", NULL, "5", "5", NULL}, /* a supervisor no longer listed: left out */
    {"info", NULL, NULL, "1", NULL, NULL},
};

START_TEST(from_result_reads_every_fact)
{
    PGresult *res = metrics_result(good_rows, N_ELEMS(good_rows), MC__COUNT);
    livy_metrics_t m;
    const char *err = NULL;
    livy_metrics_init(&m, "v", test_pool);
    int rc = livy_metrics_from_result(res, &m, test_pool, &err);
    PQclear(res); /* the strings were copied into the pool */
    ck_assert_msg(rc == 0, "failed: %s", err);
    ck_assert_int_eq(m.sessions->nelts, 2);
    livy_metrics_session_t *s = &APR_ARRAY_IDX(m.sessions, 1, livy_metrics_session_t);
    ck_assert_str_eq(s->state, "not_started");
    ck_assert_str_eq(s->kind, "shared");
    ck_assert_int_eq(s->count, 1);
    ck_assert_int_eq(m.statements->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(m.statements, 0, livy_metrics_statement_t).count, 5);
    ck_assert_int_eq(m.duration_le[0], 1);
    ck_assert_int_eq(m.duration_le[2], 2);
    ck_assert_int_eq(m.duration_le[8], 5);
    ck_assert_int_eq(m.duration_count, 6);
    ck_assert_double_eq(m.duration_sum, 412.75);
    ck_assert_int_eq(m.supervisors->nelts, 1);
    livy_metrics_supervisor_t *v = &APR_ARRAY_IDX(m.supervisors, 0, livy_metrics_supervisor_t);
    ck_assert_str_eq(v->id, "7");
    ck_assert_str_eq(v->host, "spark-1");
    ck_assert_double_eq(v->heartbeat_age, 1.5);
    ck_assert_int_eq(v->capacity, 20);
    ck_assert_int_eq(v->sessions, 3);
    ck_assert_int_eq(v->batches, 2);
    ck_assert_int_eq(v->warm_ready, 1);
    ck_assert_int_eq(v->warm_starting, 2);
    ck_assert_int_eq(m.batches->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(m.batches, 0, livy_metrics_statement_t).state, "running");
    ck_assert_int_eq(APR_ARRAY_IDX(m.batches, 0, livy_metrics_statement_t).count, 4);
    ck_assert_int_eq(m.start_le[1], 1);
    ck_assert_int_eq(m.start_le[8], 3);
    ck_assert_int_eq(m.start_count, 3);
    ck_assert_double_eq(m.start_sum, 17.25);
    ck_assert_int_eq(m.schema_version, 1);
    ck_assert_str_eq(m.version, "v");
}
END_TEST

static const char *const bad_rows[][MC__COUNT] = {
    {"sessions", "idle", "pyspark", "2", NULL, NULL},  /* an unknown fact */
    {"session", "idle", "pyspark", "two", NULL, NULL},
    {"session", "idle", "pyspark", NULL, NULL, NULL},
    {"session", "idle", "pyspark", "", NULL, NULL},
    {"statement", "waiting", NULL, "1.5", NULL, NULL},
    {"bucket", "0", NULL, "1", NULL, NULL},              /* positions count from 1 */
    {"bucket", "10", NULL, "1", NULL, NULL},             /* one past the last bound */
    {"bucket", "x", NULL, "1", NULL, NULL},
    {"duration", NULL, NULL, "6", NULL, NULL},
    {"duration", NULL, NULL, "6", "1e999", NULL},        /* out of range */
    {"supervisor", "7", "h", "1.5", "20", NULL},
    {"supervisor", "7", "h", "1.5", "20", "1", NULL},  /* no batches count */
    {"start_bucket", "10", NULL, "1", NULL, NULL},       /* one past the last bound */
    {"start", NULL, NULL, "1", NULL, NULL},
    {"batch", "running", NULL, "x", NULL, NULL},
    {"info", NULL, NULL, "-1", NULL, NULL},
    {"info", NULL, NULL, "99999999999999999999", NULL, NULL},
};

START_TEST(from_result_refuses_a_bad_row)
{
    PGresult *res = metrics_result(&bad_rows[_i], 1, MC__COUNT);
    livy_metrics_t m;
    const char *err = NULL;
    livy_metrics_init(&m, "v", test_pool);
    int rc = livy_metrics_from_result(res, &m, test_pool, &err);
    PQclear(res);
    ck_assert_int_eq(rc, -1);
    ck_assert_mentions(err, "unexpected row 0");
}
END_TEST

START_TEST(from_result_refuses_another_shape)
{
    PGresult *res = metrics_result(good_rows, 1, MC__COUNT - 1);
    livy_metrics_t m;
    const char *err = NULL;
    livy_metrics_init(&m, "v", test_pool);
    int rc = livy_metrics_from_result(res, &m, test_pool, &err);
    PQclear(res);
    ck_assert_int_eq(rc, -1);
    ck_assert_mentions(err, "columns");
}
END_TEST

/* ---- the route and who may read it ---- */

START_TEST(route_metrics_is_get_only)
{
    livy_route_t r;
    livy_route_parse("/metrics", test_pool, &r);
    ck_assert_int_eq(r.route, LIVY_ROUTE_METRICS);
    ck_assert_uint_eq(r.allowed, LIVY_M_GET);
    livy_route_parse("//metrics/", test_pool, &r);
    ck_assert_int_eq(r.route, LIVY_ROUTE_METRICS);
    static const char *const not_metrics[] = {"/metrics/x", "/Metrics", "/metric",
                                              "/sessions/metrics/x", "/metrics.txt"};
    for (int i = 0; i < N_ELEMS(not_metrics); i++) {
        livy_route_parse(not_metrics[i], test_pool, &r);
        ck_assert_msg(r.route != LIVY_ROUTE_METRICS, "%s routed to metrics", not_metrics[i]);
    }
    livy_route_parse("/sessions/metrics", test_pool, &r); /* a session named metrics */
    ck_assert_int_eq(r.route, LIVY_ROUTE_SESSION);
}
END_TEST

static livy_api_config_t *metrics_config(int on)
{
    livy_api_config_t *cfg = apr_pcalloc(test_pool, sizeof *cfg);
    cfg->base_path = "";
    cfg->metrics = on;
    return cfg;
}

static livy_api_response_t route(const livy_api_config_t *cfg, const char *method,
                                 const char *user, int *answered)
{
    livy_api_request_t req = {0};
    req.method = method;
    req.path = "/metrics";
    req.user = user;
    livy_route_t r;
    livy_api_response_t resp;
    *answered = livy_api_route(cfg, &req, test_pool, &r, &resp);
    if (!*answered)
        ck_assert_int_eq(r.route, LIVY_ROUTE_METRICS);
    return resp;
}

START_TEST(metrics_off_is_the_usual_404)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT"};
    for (int i = 0; i < N_ELEMS(methods); i++) {
        int answered;
        livy_api_response_t resp = route(metrics_config(0), methods[i], NULL, &answered);
        ck_assert_int_eq(answered, 1);
        ck_assert_int_eq(resp.status, 404);
        ck_assert_ptr_null(resp.allow);
        ck_assert_ptr_null(resp.content_type);
        ck_assert_mentions(test_error_body_msg(resp.body, resp.body_len), "No such resource");
    }
}
END_TEST

START_TEST(metrics_on_other_methods_are_405)
{
    static const char *const methods[] = {"POST", "DELETE", "PUT", "OPTIONS"};
    for (int i = 0; i < N_ELEMS(methods); i++) {
        int answered;
        livy_api_response_t resp = route(metrics_config(1), methods[i], NULL, &answered);
        ck_assert_int_eq(answered, 1);
        ck_assert_int_eq(resp.status, 405);
        ck_assert_str_eq(resp.allow, "GET, HEAD");
        ck_assert_mentions(test_error_body_msg(resp.body, resp.body_len), methods[i]);
    }
    int answered;
    route(metrics_config(1), "HEAD", NULL, &answered);
    ck_assert_int_eq(answered, 0);
}
END_TEST

static apr_array_header_t *one(const char *user)
{
    apr_array_header_t *list = apr_array_make(test_pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(list, const char *) = user;
    return list;
}

/* Access control on: alice is allowed, victor may view, mona may modify, root is superuser. */
static const struct {
    const char *user;
    int may_read;
    const char *mention; /* in the 403 */
} readers[] = {
    {"root", 1, NULL},
    {"victor", 1, NULL},
    {"mona", 1, NULL},
    {"alice", 0, "metrics"},      /* admitted, but sees only her own sessions */
    {"mallory", 0, "not allowed"},/* not admitted at all */
    {"", 0, "nonymous"},
    {NULL, 0, "nonymous"},
};

START_TEST(metrics_readers_under_access_control)
{
    livy_api_config_t *cfg = metrics_config(1);
    livy_security_t *sec = &cfg->security;
    sec->access_control = 1;
    sec->allowed_users = one("alice");
    sec->view_users = one("victor");
    sec->modify_users = one("mona");
    sec->superusers = one("root");
    ck_assert_int_eq(livy_access_can_read_metrics(sec, readers[_i].user), readers[_i].may_read);
    int answered;
    livy_api_response_t resp = route(cfg, "GET", readers[_i].user, &answered);
    ck_assert_int_eq(answered, !readers[_i].may_read);
    if (!readers[_i].may_read) {
        ck_assert_int_eq(resp.status, 403);
        ck_assert_mentions(test_error_body_msg(resp.body, resp.body_len), readers[_i].mention);
    }
    sec->access_control = 0; /* off: everyone, anonymous included */
    ck_assert_int_eq(livy_access_can_read_metrics(sec, readers[_i].user), 1);
    route(cfg, "GET", readers[_i].user, &answered);
    ck_assert_int_eq(answered, 0);
}
END_TEST

START_TEST(metrics_star_view_users_lets_every_authenticated_user_read)
{
    livy_security_t sec = {0};
    sec.access_control = 1;
    sec.view_users = one("*");
    ck_assert(livy_access_can_read_metrics(&sec, "anyone"));
    ck_assert(!livy_access_can_read_metrics(&sec, NULL));
}
END_TEST

START_TEST(metrics_without_database_is_503)
{
    livy_conn_t conn = {0};
    livy_api_config_t *cfg = metrics_config(1);
    livy_api_request_t req = {0};
    req.method = "GET";
    req.path = "/metrics";
    req.query = "whatever=1&%zz"; /* ignored, as /version ignores it */
    livy_route_t r;
    livy_api_response_t resp;
    ck_assert_int_eq(livy_api_route(cfg, &req, test_pool, &r, &resp), 0);
    livy_api_handle(cfg, &req, &r, &conn, test_pool, &resp);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_int_eq(resp.conn_broken, 1);
    ck_assert_ptr_null(resp.content_type); /* errors stay JSON */
    test_error_body_msg(resp.body, resp.body_len);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("livy_metrics");
    TCase *tc = test_tcase_with_pool("escape");
    tcase_add_loop_test(tc, escape_label_table, 0, N_ELEMS(escapes));
    tcase_add_test(tc, escape_label_returns_clean_text_itself_and_null_as_empty);
    tcase_add_test(tc, bounds_param_is_a_float8_array_literal);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("render");
    tcase_add_test(tc, render_whole_exposition);
    tcase_add_test(tc, render_empty_database);
    tcase_add_test(tc, render_escapes_every_label_value);
    tcase_add_test(tc, render_numbers_read_back_exactly);
    tcase_add_test(tc, render_http_counters);
    tcase_add_test(tc, route_families_and_status_slots);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("from_result");
    tcase_add_test(tc, from_result_reads_every_fact);
    tcase_add_loop_test(tc, from_result_refuses_a_bad_row, 0, N_ELEMS(bad_rows));
    tcase_add_test(tc, from_result_refuses_another_shape);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("api");
    tcase_add_test(tc, route_metrics_is_get_only);
    tcase_add_test(tc, metrics_off_is_the_usual_404);
    tcase_add_test(tc, metrics_on_other_methods_are_405);
    tcase_add_loop_test(tc, metrics_readers_under_access_control, 0, N_ELEMS(readers));
    tcase_add_test(tc, metrics_star_view_users_lets_every_authenticated_user_read);
    tcase_add_test(tc, metrics_without_database_is_503);
    suite_add_tcase(s, tc);
    return s;
}
