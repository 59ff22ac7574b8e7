/* livy_paths: where a batch's files may come from. Local paths (plain, file:, local:) inside
 * LivyBatchAllowedPaths only, compared component by component, as written and %-decoded;
 * '.', '..', relative paths and control characters refused; remote file systems passed
 * untouched; other schemes refused; no directory configured refuses every local path. */
#include "test_engine.h"
#include "livy_paths.h"

#include <apr_strings.h>

/* The directories of most cases: what an operator would write, canonicalised. */
static const apr_array_header_t *allowed(const char *a, const char *b)
{
    apr_array_header_t *list = apr_array_make(test_pool, 2, sizeof(const char *));
    const char *dirs[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i])
            continue;
        const char *canonical, *err;
        ck_assert_msg(livy_paths_dir_check(dirs[i], test_pool, &canonical, &err) == 0, "%s: %s",
                      dirs[i], err);
        APR_ARRAY_PUSH(list, const char *) = canonical;
    }
    return list;
}

static const apr_array_header_t *jobs_dirs(void)
{
    return allowed("/opt/jobs/", "/srv/spark//apps");
}

/* ---- entries that pass ---- */

static const char *const passes[] = {
    /* inside an allowed directory, in every local form */
    "/opt/jobs/etl.py",
    "/opt/jobs/nightly/etl.jar",
    "/opt/jobs",                          /* the directory itself */
    "/opt/jobs/",
    "//opt//jobs///a.py",                 /* empty components are nothing */
    "/srv/spark/apps/x.jar",
    "file:/opt/jobs/etl.py",
    "file:///opt/jobs/etl.py",
    "FILE:///opt/jobs/etl.py",
    "local:/opt/jobs/lib.jar",
    "local:///opt/jobs/lib.jar",
    "/opt/jobs/env.tar.gz#env",           /* a #fragment names the file, not where it is */
    "file:///opt/jobs/env.tar.gz#env",
    "file:///opt/jobs/my%20job.py",       /* an escape that stays inside */
    "/opt/jobs/.hidden.py",               /* dots inside a name are a name */
    "/opt/jobs/.../x.py",
    "/opt/jobs/a..b.py",
    "/opt/jobs/caf\xc3\xa9.py",
    "/opt/jobs/with space.py",
    /* remote file systems, untouched */
    "hdfs:///apps/etl.jar",
    "hdfs://namenode:8020/apps/etl.jar",
    "hdfs://nn/apps/../../etc/passwd",    /* remote: not ours to judge */
    "s3a://bucket/jobs/etl.py",
    "s3://bucket/x.jar",
    "abfs://c@acct.dfs.core.windows.net/x.jar",
    "abfss://c@acct.dfs.core.windows.net/x.jar",
    "wasb://c@acct.blob.core.windows.net/x.jar",
    "wasbs://c@acct.blob.core.windows.net/x.jar",
    "gs://bucket/x.py",
    "http://repo.example.org/x.jar",
    "https://repo.example.org/x.jar",
    "viewfs://cluster/apps/x.jar",
    "HDFS:///apps/etl.jar",
};

START_TEST(entry_passes)
{
    const char *why = NULL;
    ck_assert_msg(livy_paths_entry_check(passes[_i], jobs_dirs(), test_pool, &why) == 0,
                  "'%s' refused: %s", passes[_i], why);
}
END_TEST

/* ---- entries that are refused, each with what the reason must say ---- */

static const struct {
    const char *entry;
    const char *mention;
} refused[] = {
    /* outside the allowed directories */
    {"/etc/passwd", "LivyBatchAllowedPaths (/opt/jobs, /srv/spark/apps)"},
    {"/opt/jobsx/etl.py", "LivyBatchAllowedPaths"},   /* a prefix of a name is not a parent */
    {"/opt/job", "LivyBatchAllowedPaths"},
    {"/opt", "LivyBatchAllowedPaths"},
    {"/", "LivyBatchAllowedPaths"},
    {"/srv/spark/app/x.jar", "LivyBatchAllowedPaths"},
    {"file:///etc/passwd", "LivyBatchAllowedPaths"},
    {"file:/etc/shadow", "LivyBatchAllowedPaths"},
    {"local:///usr/lib/x.jar", "LivyBatchAllowedPaths"},
    {"/opt/jo%62s/x.py", "LivyBatchAllowedPaths"},    /* as written it is outside */
    {"/opt/jobs%2Fx.py", "LivyBatchAllowedPaths"},
    /* '.' and '..', as written and %-encoded */
    {"/opt/jobs/../../etc/passwd", "'..'"},
    {"/opt/jobs/..", "'..'"},
    {"/opt/jobs/./x.py", "'.'"},
    {"/opt/jobs/.", "'.'"},
    {"file:///opt/jobs/../secret", "'..'"},
    {"local:/opt/jobs/sub/../../x", "'..'"},
    {"file:///opt/jobs/%2e%2e/secret", "'..'"},
    {"file:///opt/jobs/%2E%2E/%2e%2E/etc/passwd", "'..'"},
    {"/opt/jobs/%2e%2e/x#frag", "'..'"},
    {"file:///opt/jobs/sub%2F..%2F..%2Fetc", "'..'"},
    /* relative paths */
    {"etl.py", "relative"},
    {"./etl.py", "relative"},
    {"../opt/jobs/etl.py", "relative"},
    {"opt/jobs/etl.py", "relative"},
    {"file:etl.py", "relative"},
    {"file:opt/jobs/x", "relative"},
    {"file://", "relative"},
    {"local:", "relative"},
    {"~/etl.py", "relative"},
    {" /opt/jobs/x.py", "relative"},
    /* control characters, written or encoded */
    {"/opt/jobs/a\nb.py", "control"},
    {"/opt/jobs/a\tb.py", "control"},
    {"/opt/jobs/\x7f", "control"},
    {"file:///opt/jobs/a%0Ab.py", "control"},
    /* malformed escapes, NUL, '?' */
    {"/opt/jobs/100%.py", "%-escape"},
    {"file:///opt/jobs/x%zz", "%-escape"},
    {"file:///opt/jobs/x%00.py", "%-escape"},
    {"/opt/jobs/x.py?y", "'?'"},
    {"file:///opt/jobs/x.py?/../../etc", "'?'"},
    /* a file: URI naming a host */
    {"file://host/opt/jobs/x.py", "host"},
    {"file://localhost/opt/jobs/x.py", "host"},
    {"local://h/opt/jobs/x.py", "host"},
    /* schemes that are neither local nor a known remote file system */
    {"ftp://h/x.jar", "'ftp'"},
    {"jar:file:/opt/jobs/x.jar!/a", "'jar'"},
    {"C:\\jobs\\x.py", "'C'"},
    {"hdfs2://nn/x", "'hdfs2'"},
    {"s3n://bucket/x", "'s3n'"},
    {"data:text/plain,x", "'data'"},
    {"x+y.z-w:/opt/jobs/a", "'x+y.z-w'"},
};

START_TEST(entry_refused)
{
    const char *why = NULL;
    ck_assert_msg(livy_paths_entry_check(refused[_i].entry, jobs_dirs(), test_pool, &why) == -1,
                  "'%s' passed", refused[_i].entry);
    ck_assert_mentions(why, refused[_i].mention);
}
END_TEST

/* With no directory configured, no local path passes, and the reason says so. */
static const char *const local_forms[] = {
    "/opt/jobs/etl.py", "file:///opt/jobs/etl.py", "file:/x", "local:/x.jar", "etl.py",
    "/", "FILE:///x",
};

START_TEST(no_directories_refuse_every_local_path)
{
    const char *why = NULL;
    apr_array_header_t *empty = apr_array_make(test_pool, 1, sizeof(const char *));
    ck_assert_int_eq(livy_paths_entry_check(local_forms[_i], NULL, test_pool, &why), -1);
    ck_assert_mentions(why, "no LivyBatchAllowedPaths");
    ck_assert_mentions(why, "hdfs");
    why = NULL;
    ck_assert_int_eq(livy_paths_entry_check(local_forms[_i], empty, test_pool, &why), -1);
    ck_assert_mentions(why, "no LivyBatchAllowedPaths");
}
END_TEST

START_TEST(no_directories_still_pass_remote_uris)
{
    const char *why = NULL;
    ck_assert_int_eq(livy_paths_entry_check("hdfs:///x.jar", NULL, test_pool, &why), 0);
    ck_assert_int_eq(livy_paths_entry_check("s3a://b/x.py", NULL, test_pool, &why), 0);
    ck_assert_int_eq(livy_paths_entry_check("ftp://h/x", NULL, test_pool, &why), -1);
    ck_assert_mentions(why, "'ftp'");
}
END_TEST

START_TEST(root_directory_allows_every_absolute_path)
{
    const char *why = NULL;
    const apr_array_header_t *root = allowed("/", NULL);
    ck_assert_int_eq(livy_paths_entry_check("/etc/passwd", root, test_pool, &why), 0);
    ck_assert_int_eq(livy_paths_entry_check("file:///x", root, test_pool, &why), 0);
    /* but never a '..' or a relative path */
    ck_assert_int_eq(livy_paths_entry_check("/a/../b", root, test_pool, &why), -1);
    ck_assert_int_eq(livy_paths_entry_check("b", root, test_pool, &why), -1);
}
END_TEST

/* ---- the directories themselves ---- */

static const struct {
    const char *dir, *canonical;
} good_dirs[] = {
    {"/opt/jobs", "/opt/jobs"},
    {"/opt/jobs/", "/opt/jobs"},
    {"//opt///jobs//", "/opt/jobs"},
    {"/", "/"},
    {"///", "/"},
    {"/srv/caf\xc3\xa9 x", "/srv/caf\xc3\xa9 x"},
    {"/opt/.jobs", "/opt/.jobs"},
};

START_TEST(dir_canonical)
{
    const char *canonical = NULL, *err = NULL;
    ck_assert_msg(livy_paths_dir_check(good_dirs[_i].dir, test_pool, &canonical, &err) == 0,
                  "%s: %s", good_dirs[_i].dir, err);
    ck_assert_str_eq(canonical, good_dirs[_i].canonical);
}
END_TEST

static const struct {
    const char *dir, *mention;
} bad_dirs[] = {
    {"opt/jobs", "relative"},
    {"", "relative"},
    {"./jobs", "relative"},
    {"/opt/../etc", "'..'"},
    {"/opt/jobs/..", "'..'"},
    {"/opt/./jobs", "'.'"},
    {"/opt/jo\nbs", "control"},
};

START_TEST(dir_refused)
{
    const char *canonical = NULL, *err = NULL;
    ck_assert_msg(livy_paths_dir_check(bad_dirs[_i].dir, test_pool, &canonical, &err) == -1,
                  "'%s' accepted", bad_dirs[_i].dir);
    ck_assert_mentions(err, bad_dirs[_i].mention);
    ck_assert_mentions(err, bad_dirs[_i].dir);
}
END_TEST

Suite *paths_suite(void)
{
    Suite *s = suite_create("livy_paths");
    TCase *tc = test_tcase_with_pool("entries");
    tcase_add_loop_test(tc, entry_passes, 0, N_ELEMS(passes));
    tcase_add_loop_test(tc, entry_refused, 0, N_ELEMS(refused));
    tcase_add_loop_test(tc, no_directories_refuse_every_local_path, 0, N_ELEMS(local_forms));
    tcase_add_test(tc, no_directories_still_pass_remote_uris);
    tcase_add_test(tc, root_directory_allows_every_absolute_path);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("directories");
    tcase_add_loop_test(tc, dir_canonical, 0, N_ELEMS(good_dirs));
    tcase_add_loop_test(tc, dir_refused, 0, N_ELEMS(bad_dirs));
    suite_add_tcase(s, tc);
    return s;
}
