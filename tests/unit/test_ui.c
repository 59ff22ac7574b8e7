/* livy_ui: which Spark UI paths are forwarded, which ones kill, the driver's UI address from
 * what the REPL reported, Location headers mapped back to the proxy path, and the kinds of
 * Spark masters. */
#include "test_engine.h"
#include "livy_ui.h"

static const struct {
    const char *path;
    int ok;
} paths[] = {
    {"", 1},
    {"/", 1},
    {"/jobs/", 1},
    {"/jobs/job/", 1},
    {"/static/webui.css", 1},
    {"/api/v1/applications/local-1716200000000/jobs", 1},
    {"/SQL/execution/", 1},
    {"/stages/stage/kill/", 1},
    {"/a:b@c!$&'()*+,;=~_-", 1},
    {"jobs", 0},               /* not below ui/ */
    {"/..", 0},
    {"/../x", 0},
    {"/jobs/../../x", 0},
    {"/jobs/..", 0},
    {"/./jobs", 0},
    {"/jobs/.", 0},
    {"/jobs/%2e%2e", 0},       /* httpd decodes r->uri: a % left is not Spark's */
    {"/jobs\\..\\x", 0},
    {"/jobs/ x", 0},
    {"/jobs/\x01", 0},
    {"/jobs/\xc3\xa9", 0},
    {"/jobs?x=1", 0},          /* the query travels apart */
    {"/jobs#frag", 0},
    {"/.../x", 1},             /* three dots name a file, not a parent */
    {"/.hidden", 1},
};

START_TEST(path_ok_table)
{
    ck_assert_msg(livy_ui_path_ok(paths[_i].path) == paths[_i].ok, "'%s': expected %d",
                  paths[_i].path, paths[_i].ok);
}
END_TEST

START_TEST(path_ok_null_is_not)
{
    ck_assert_int_eq(livy_ui_path_ok(NULL), 0);
}
END_TEST

START_TEST(kill_paths_need_modify)
{
    ck_assert_int_eq(livy_ui_path_kills("/jobs/job/kill/"), 1);
    ck_assert_int_eq(livy_ui_path_kills("/jobs/job/kill"), 1);
    ck_assert_int_eq(livy_ui_path_kills("/stages/stage/kill/"), 1);
    ck_assert_int_eq(livy_ui_path_kills("/stages/stage/KILL"), 1);
    ck_assert_int_eq(livy_ui_path_kills("/jobs//job/kill/"), 1);
    ck_assert_int_eq(livy_ui_path_kills("/api/v1/killAll"), 1);
    ck_assert_int_eq(livy_ui_path_kills("/jobs/"), 0);
    ck_assert_int_eq(livy_ui_path_kills("/stages/stage/"), 0);
    ck_assert_int_eq(livy_ui_path_kills(""), 0);
    ck_assert_int_eq(livy_ui_path_kills(NULL), 0);
}
END_TEST

static const struct {
    const char *url, *backend;
} backends[] = {
    {"http://127.0.0.1:4040", "http://127.0.0.1:4040"},
    {"http://127.0.0.1:4041/", "http://127.0.0.1:4041"},
    {"http://[::1]:4040", "http://[::1]:4040"},
    {"http://spark-host.example.org:4040", "http://spark-host.example.org:4040"},
    {"http://127.0.0.1:65535", "http://127.0.0.1:65535"},
    {"http://127.0.0.1", NULL},           /* no port */
    {"http://127.0.0.1:", NULL},
    {"http://127.0.0.1:0", NULL},
    {"http://127.0.0.1:65536", NULL},
    {"http://127.0.0.1:123456", NULL},
    {"http://127.0.0.1:4040/jobs/", NULL}, /* a path */
    {"http://127.0.0.1:4040?x", NULL},
    {"http://user@127.0.0.1:4040", NULL},
    {"https://127.0.0.1:4040", NULL},     /* Spark's TLS UI: not proxied */
    {"file:///etc/passwd", NULL},
    {"http://:4040", NULL},
    {"http://[::1:4040", NULL},
    {"", NULL},
    {NULL, NULL},
};

START_TEST(backend_table)
{
    const char *got = livy_ui_backend(backends[_i].url, test_pool);
    if (backends[_i].backend)
        ck_assert_pstr_eq(got, backends[_i].backend);
    else
        ck_assert_msg(got == NULL, "'%s' gave '%s'", backends[_i].url, got);
}
END_TEST

#define BACKEND "http://127.0.0.1:4040"
#define PUBLIC "https://livy.example.org:8998/livy/sessions/3/ui"
#define CONTEXT "/livy/sessions/3/ui"

static const struct {
    const char *location, *mapped;
} locations[] = {
    {BACKEND "/jobs/", PUBLIC "/jobs/"},
    {BACKEND, PUBLIC "/"},
    {BACKEND "/", PUBLIC "/"},
    {BACKEND "?x=1", PUBLIC "/?x=1"},
    {"HTTP://127.0.0.1:4040/stages/", PUBLIC "/stages/"},
    {"/jobs/", PUBLIC "/jobs/"},                      /* an absolute path on the UI */
    {CONTEXT "/jobs/", PUBLIC "/jobs/"},              /* built from X-Forwarded-Context */
    {BACKEND CONTEXT "/jobs/?id=1", PUBLIC "/jobs/?id=1"},
    {CONTEXT, PUBLIC "/"},
    {BACKEND "0/jobs/", BACKEND "0/jobs/"},           /* port 40400: another server */
    {"http://elsewhere.example.org/x", "http://elsewhere.example.org/x"},
    {"//elsewhere.example.org/x", "//elsewhere.example.org/x"},
    {"jobs/", "jobs/"},                               /* relative: the client resolves it */
};

START_TEST(location_table)
{
    ck_assert_str_eq(livy_ui_map_location(locations[_i].location, BACKEND, PUBLIC, CONTEXT,
                                          test_pool),
                     locations[_i].mapped);
}
END_TEST

START_TEST(location_null_stays_null)
{
    ck_assert_ptr_null(livy_ui_map_location(NULL, BACKEND, PUBLIC, CONTEXT, test_pool));
}
END_TEST

START_TEST(master_kinds)
{
    ck_assert_int_eq(livy_spark_master_kind("local"), LIVY_MASTER_LOCAL);
    ck_assert_int_eq(livy_spark_master_kind("local[1]"), LIVY_MASTER_LOCAL);
    ck_assert_int_eq(livy_spark_master_kind("local[*]"), LIVY_MASTER_LOCAL);
    ck_assert_int_eq(livy_spark_master_kind("local[4,2]"), LIVY_MASTER_LOCAL);
    ck_assert_int_eq(livy_spark_master_kind("local-cluster[2,1,1024]"), LIVY_MASTER_LOCAL);
    ck_assert_int_eq(livy_spark_master_kind("yarn"), LIVY_MASTER_YARN);
    ck_assert_int_eq(livy_spark_master_kind("k8s://https://k:6443"), LIVY_MASTER_K8S);
    ck_assert_int_eq(livy_spark_master_kind("spark://m:7077"), LIVY_MASTER_STANDALONE);
    ck_assert_int_eq(livy_spark_master_kind("localhost"), LIVY_MASTER_OTHER);
    ck_assert_int_eq(livy_spark_master_kind("mesos://m:5050"), LIVY_MASTER_OTHER);
    ck_assert_int_eq(livy_spark_master_kind(""), LIVY_MASTER_OTHER);
    ck_assert_int_eq(livy_spark_master_kind(NULL), LIVY_MASTER_OTHER);
}
END_TEST

Suite *ui_suite(void)
{
    Suite *s = suite_create("livy_ui");
    TCase *tc = test_tcase_with_pool("paths");
    tcase_add_loop_test(tc, path_ok_table, 0, N_ELEMS(paths));
    tcase_add_test(tc, path_ok_null_is_not);
    tcase_add_test(tc, kill_paths_need_modify);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("backend");
    tcase_add_loop_test(tc, backend_table, 0, N_ELEMS(backends));
    tcase_add_loop_test(tc, location_table, 0, N_ELEMS(locations));
    tcase_add_test(tc, location_null_stays_null);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("master");
    tcase_add_test(tc, master_kinds);
    suite_add_tcase(s, tc);
    return s;
}
